"""How much a switch-point sweep of the chapter-6 hybrid costs: one batched call against a loop.

* ``hybrid_switch_sweep``: K hybrids of the linear-mosaic model (C = 10, m = 10, linear focus and
  classifier, minibatch SGD with momentum 0.9, batch 250), each switching from soft to hard at a
  different epoch, trained by ``train_hybrid_runs`` as one batched computation against K
  sequential ``train_hybrid`` runs (the plain loop: two ``train_mosaic`` calls each), on the
  CPU (and on a GPU when present).
"""

from __future__ import annotations

import math

import torch

from course_lib.focus import LinearClassifier, LinearFocus
from course_lib.mosaic import make_linear_mosaics
from course_lib.mosaic_training import train_hybrid, train_hybrid_runs
from harness import Result, benchmark, check_size, time_call


@benchmark(
    "hybrid_switch_sweep",
    "K switch points of the chapter-6 hybrid on linear mosaics "
    "as one batched computation (train_hybrid_runs) against K train_hybrid runs.",
)
def hybrid_switch_sweep(size: str) -> Result:
    check_size(size)
    n, epochs, ks = {
        "tiny": (64, 2, (2,)),
        "quick": (1000, 10, (1, 4, 16)),
        "full": (5000, 20, (1, 4, 16)),
    }[size]
    repeats, warmup = (1, 0) if size == "tiny" else (2, 1)
    data = make_linear_mosaics(n, 10, 10, seed=0)
    steps = math.ceil(n / 250)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        on_device = data.to(device)
        for k in ks:
            switches = [round(epochs * (r + 1) / (k + 1)) for r in range(k)]

            def models():
                return (
                    [LinearFocus(11).to(device) for _ in range(k)],
                    [LinearClassifier(11, 10).to(device) for _ in range(k)],
                )

            def sequential(switches=switches, models=models):
                for (f, c), e in zip(zip(*models()), switches):
                    train_hybrid(f, c, on_device, e, epochs - e, 0.2, batch_size=250)

            def batched(switches=switches, models=models, k=k):
                train_hybrid_runs(
                    *models(),
                    on_device,
                    ["hybrid"] * k,
                    epochs=epochs,
                    lr=0.2,
                    batch_size=250,
                    switch_step=[e * steps for e in switches],
                )

            seq = time_call(sequential, repeats=repeats, warmup=warmup, device=device)
            bat = time_call(batched, repeats=repeats, warmup=warmup, device=device)
            rows.append(
                {
                    "device": device,
                    "K": k,
                    "steps": epochs * steps,
                    "sequential_s": round(seq, 3),
                    "batched_s": round(bat, 3),
                    "speedup": round(seq / bat, 2),
                }
            )
    best = [r for r in rows if r["K"] == max(ks)]
    summary = "; ".join(
        f"K={r['K']} on {r['device']}: batched {r['speedup']}x faster "
        f"({r['batched_s']} s vs {r['sequential_s']} s)"
        for r in best
    )
    return Result(
        rows=rows,
        summary=summary,
        notes=[
            "Times are minima over repeats; on a loaded machine the ratio is the "
            "load-robust figure."
        ],
    )
