"""How fast the chapter-4 engine is: K seeds of the digit-mosaic model as one computation.

* ``mosaic_batched_seeds``: K runs of the digit-mosaic model (MLP focus 64 -> 32 -> 1, MLP
  classifier 64 -> 32 -> 3, m = 5 segments, minibatch SGD with momentum, batch 256) trained by
  ``train_mosaic_runs`` as one batched computation against K sequential ``train_mosaic`` runs
  (the plain loop), on the CPU (and on a GPU when present).  Two loss mixes: every run hard
  attention, and the chapter's mix (seeds cycling through soft, hard and LVML, so every batched
  run also computes the other two losses, weighted 0); and every run hard with batch 32, where
  a step does less work and the per-step overhead that batching removes weighs more.
"""

from __future__ import annotations

import copy

import torch

from course_lib.focus import MLPClassifier, MLPFocus
from course_lib.law import LOSS_NAMES
from course_lib.mosaic import load_digit_images, make_image_mosaics
from course_lib.mosaic_training import train_mosaic, train_mosaic_runs
from harness import Result, benchmark, check_size, time_call


def _models(k: int, device: str):
    focus, classifiers = [], []
    for seed in range(k):
        torch.manual_seed(seed)
        focus.append(MLPFocus(64, 32).to(device))
        classifiers.append(MLPClassifier(64, 3, 32).to(device))
    return focus, classifiers


@benchmark(
    "mosaic_batched_seeds",
    "K seeds of the chapter-4 digit-mosaic model trained as one "
    "batched computation (train_mosaic_runs) against K sequential train_mosaic runs.",
)
def mosaic_batched_seeds(size: str) -> Result:
    check_size(size)
    n, epochs, ks = {
        "tiny": (64, 1, (2,)),
        "quick": (1024, 2, (1, 4, 16)),
        "full": (3000, 3, (1, 4, 16)),
    }[size]
    repeats, warmup = (1, 1) if size == "tiny" else (2, 1)
    images, labels = load_digit_images("train")
    data = make_image_mosaics(images, labels, [0, 1, 2], m=5, n=n, seed=0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows, notes = [], []
    cases = [(mix, k, 256) for mix in ("hard", "mixed") for k in ks]
    cases.append(("hard", max(ks), 32))  # a smaller batch: less work per step, more overhead
    for device in devices:
        for mix, k, batch_size in cases:
            losses = ["hard"] * k if mix == "hard" else [LOSS_NAMES[r % 3] for r in range(k)]
            focus, classifiers = _models(k, device)
            kwargs = {"epochs": epochs, "lr": 0.05, "batch_size": batch_size}

            def sequential(focus=focus, classifiers=classifiers, losses=losses, kw=kwargs):
                for f, c, loss in zip(focus, classifiers, losses):
                    train_mosaic(copy.deepcopy(f), copy.deepcopy(c), data, loss, **kw)

            def batched(focus=focus, classifiers=classifiers, losses=losses, kw=kwargs):
                train_mosaic_runs(
                    [copy.deepcopy(f) for f in focus],
                    [copy.deepcopy(c) for c in classifiers],
                    data,
                    losses,
                    **kw,
                )

            seq = time_call(sequential, repeats=repeats, warmup=warmup, device=device)
            bat = time_call(batched, repeats=repeats, warmup=warmup, device=device)
            rows.append(
                {
                    "device": device,
                    "losses": mix,
                    "K": k,
                    "batch": batch_size,
                    "steps": epochs * -(-n // batch_size),
                    "sequential_s": round(seq, 3),
                    "batched_s": round(bat, 3),
                    "speedup": round(seq / bat, 2),
                }
            )
    best = [r for r in rows if r["device"] == "cpu" and r["K"] == max(ks)]
    summary = "; ".join(
        f"K={r['K']} {r['losses']} batch {r['batch']} on cpu: batched "
        f"{r['speedup']}x faster ({r['batched_s']} s vs {r['sequential_s']} s)"
        for r in best
    )
    notes.append(
        "Times are minima over repeats; on a loaded machine the ratio is the load-robust figure."
    )
    return Result(rows=rows, summary=summary, notes=notes)
