"""How fast the chapter-1 engines are: batched seeds, the training step, the paper's experiment.

* ``batched_seeds``: K seeds trained as one computation (``train_full_batch`` given K models)
  against K sequential runs, for each engine, on the CPU and on a GPU when present.
* ``training_step``: one full-batch gradient step of the vectorised model against a plain
  per-sentence Python loop (``naive_loss`` below, checked equal in tests/test_benchmarks.py).
* ``paper_experiment``: Lu et al.'s chapter-1 settings (classifiers fixed, linear and MLP, 5000
  full-batch steps each at lr 0.1 on ``make_topic_corpus()``'s 4000 training sentences) as one
  job in a fresh process: wall time and the process's peak memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import _sparse_attention
from course_lib.topic import TopicAttention, make_topic_corpus
from course_lib.training import accuracy, train_full_batch
from harness import Result, benchmark, check_size, time_call

HERE = Path(__file__).resolve().parent
CLASSIFIERS = ("fixed", "linear", "mlp")


def _corpus(size: str):
    if size == "tiny":
        return make_topic_corpus(n_background=40, m=5, n_sentences=40)
    return (
        make_topic_corpus()
    )  # the paper's: 5000 sentences (4000 train), m = 20, 5000 background words


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- the naive reference


def naive_loss(model: TopicAttention, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The chapter-1 loss written the obvious way: one sentence at a time, in Python.

    For each sentence: look up its keys, score them against the query, softmax, average its
    embeddings with those weights, classify, cross-entropy; then the mean over sentences.
    """
    total = 0.0
    for sentence, label in zip(tokens, labels):
        scores = model.keys.weight[sentence] @ model.query  # (length,)
        attention = torch.softmax(scores, dim=0)
        context = attention @ model.embedding.weight[sentence]  # (embed_dim,)
        logits = model.classifier(context)  # (n_classes,)
        total = total + F.cross_entropy(logits.unsqueeze(0), label.unsqueeze(0))
    return total / len(tokens)


def _sgd_step(model: TopicAttention, loss: torch.Tensor, lr: float) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)


def naive_step(model, tokens, labels, lr=0.1) -> None:
    _sgd_step(model, naive_loss(model, tokens, labels), lr)


def vectorised_step(model, tokens, labels, lr=0.1) -> None:
    _sgd_step(model, F.cross_entropy(model(tokens), labels), lr)


# --------------------------------------------------------------------------- batched seeds


@benchmark(
    "batched_seeds",
    "K seeds of the chapter-1 model trained as one batched computation "
    "(train_full_batch given K models) against K sequential runs, per engine and device.",
)
def batched_seeds(size: str) -> Result:
    check_size(size)
    corpus = _corpus(size)
    tokens, labels = corpus.train
    topic_mask = corpus.topic_mask(tokens)
    ks = {"tiny": (1, 2), "quick": (1, 4, 16), "full": (1, 4, 16)}[size]
    steps = {"tiny": 2, "quick": 20, "full": 100}[size]
    repeats, warmup = (1, 0) if size == "tiny" else (2, 1)
    rows, notes = [], []
    for device in _devices():
        for engine in ("sparse", "autograd"):
            for k in ks:

                def models():
                    return [
                        TopicAttention(
                            corpus.vocab_size, corpus.n_topics, classifier="fixed", seed=s
                        ).to(device)
                        for s in range(k)
                    ]

                kwargs = dict(
                    topic_mask=topic_mask,
                    topic_word_ids=corpus.topic_word_ids,
                    record_every=10,
                    device=device,
                    engine=engine,
                )

                def sequential():
                    for model in models():
                        train_full_batch(model, tokens, labels, steps, **kwargs)

                def batched():
                    train_full_batch(models(), tokens, labels, steps, **kwargs)

                try:
                    t_seq = time_call(sequential, repeats=repeats, warmup=warmup, device=device)
                    t_bat = time_call(batched, repeats=repeats, warmup=warmup, device=device)
                except Exception as exc:  # e.g. an engine a device lacks: say so, measure the rest
                    notes.append(f"{device}/{engine}/K={k}: {type(exc).__name__}: {exc}")
                    continue
                rows.append(
                    {
                        "device": device,
                        "engine": engine,
                        "K": k,
                        "steps": steps,
                        "sequential_s": t_seq,
                        "batched_s": t_bat,
                        "speedup": t_seq / t_bat,
                        "batched_model_steps_per_s": k * steps / t_bat,
                    }
                )
    best = {}
    for r in rows:
        key = r["device"]
        if r["K"] == max(ks) and r["speedup"] > best.get(key, (0, ""))[0]:
            best[key] = (r["speedup"], r["engine"])
    summary = "; ".join(
        f"{dev}: K={max(ks)} batched is {s:.1f}x sequential ({eng})"
        for dev, (s, eng) in best.items()
    )
    notes.append(
        f"{len(tokens)} sentences, record_every=10, topic statistics recorded; time of a whole run "
        f"(setup included), minimum of {repeats}.  On a CPU the step is compute-bound: batching "
        "saves "
        "per-step Python and dispatch overhead, not arithmetic, so the ratio stays far below K "
        "(on a 2-core CPU it can be about 1).  'sparse' batches by offsetting word ids into "
        "stacked "
        "tables; 'autograd' uses torch.func.vmap over the model's forward."
    )
    return Result(rows=rows, summary=summary, notes=notes)


# --------------------------------------------------------------------------- one training step


@benchmark(
    "training_step",
    "One full-batch gradient step of the chapter-1 model: a per-sentence "
    "Python loop against the course's vectorised model and train_full_batch's engines.",
)
def training_step(size: str) -> Result:
    check_size(size)
    corpus = _corpus(size)
    n = {"tiny": 8, "quick": 4000, "full": 4000}[size]  # 4000: the paper's training set
    tokens, labels = corpus.train.tokens[:n], corpus.train.labels[:n]
    rows = []
    for device in _devices():
        toks, labs = tokens.to(device), labels.to(device)
        model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier="linear", seed=0).to(
            device
        )
        reps, warmup = (1, 0) if size == "tiny" else (3, 1)
        naive_s = time_call(
            lambda: naive_step(model, toks, labs), repeats=min(reps, 2), warmup=0, device=device
        )
        vec_s = time_call(
            lambda: vectorised_step(model, toks, labs),
            repeats=5 * reps,
            warmup=warmup,
            device=device,
        )
        rows.append(
            {
                "device": device,
                "implementation": "per-sentence Python loop (naive_loss)",
                "sentences": n,
                "ms_per_step": 1e3 * naive_s,
                "speedup_vs_loop": 1.0,
            }
        )
        rows.append(
            {
                "device": device,
                "implementation": "vectorised TopicAttention.forward + autograd",
                "sentences": n,
                "ms_per_step": 1e3 * vec_s,
                "speedup_vs_loop": naive_s / vec_s,
            }
        )
        steps = 5 if size == "tiny" else 50
        for engine in ("autograd", "sparse"):

            def run():
                train_full_batch(
                    model, toks, labs, steps, record_every=steps, device=device, engine=engine
                )

            try:
                per = time_call(run, repeats=reps, warmup=warmup, device=device) / steps
            except Exception as exc:
                rows.append(
                    {
                        "device": device,
                        "implementation": f"train_full_batch engine={engine}",
                        "sentences": n,
                        "ms_per_step": None,
                        "speedup_vs_loop": None,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
                continue
            rows.append(
                {
                    "device": device,
                    "implementation": f"train_full_batch engine={engine}",
                    "sentences": n,
                    "ms_per_step": 1e3 * per,
                    "speedup_vs_loop": naive_s / per,
                }
            )
    cpu = [r for r in rows if r["device"] == "cpu" and r["ms_per_step"]]
    best = max(cpu, key=lambda r: r["speedup_vs_loop"])
    summary = (
        f"CPU, {n} sentences: loop {cpu[0]['ms_per_step']:.0f} ms/step; vectorised "
        f"{cpu[0]['ms_per_step'] / cpu[1]['ms_per_step']:.0f}x faster; "
        f"fastest: {best['implementation']} "
        f"({best['speedup_vs_loop']:.0f}x)"
    )
    notes = [
        "linear classifier; train_full_batch per step is a whole run of "
        f"{5 if size == 'tiny' else 50} steps (recording only the last) divided by the steps"
    ]
    return Result(rows=rows, summary=summary, notes=notes)


# --------------------------------------------------------------------------- the context's layout


@benchmark(
    "context_layout",
    "Forward and backward of the attention-weighted context v = sum_i a_i w_(x_i) "
    "alone: gathering embedding rows, gathering columns (TopicAttention), the sparse engine.",
)
def context_layout(size: str) -> Result:
    check_size(size)
    corpus = _corpus(size)
    tokens = corpus.train.tokens
    n, length = tokens.shape
    reps = 1 if size == "tiny" else 20
    rows = []
    for device in _devices():
        toks = tokens.to(device)
        gen = torch.Generator().manual_seed(0)
        table = (
            (0.1 * torch.randn(corpus.vocab_size, 10, generator=gen)).to(device).requires_grad_()
        )
        scores = torch.randn(n, length, generator=gen).to(device)
        attention = torch.softmax(scores, -1).requires_grad_()
        grad = torch.randn(n, 10, generator=gen).to(device)
        model = TopicAttention(corpus.vocab_size, corpus.n_topics).to(device)
        plan = _sparse_attention.SparsePlan(toks.unsqueeze(0), corpus.vocab_size)
        word_scores = torch.randn(corpus.vocab_size, generator=gen).to(device).requires_grad_()

        def rows_gather():
            v = torch.einsum("bl,bld->bd", attention, table[toks])
            torch.autograd.grad(v, (attention, table), grad)

        def columns_gather():  # what TopicAttention.forward does
            with torch.no_grad():
                model.embedding.weight.copy_(table)
            v = model._context(toks, attention)
            torch.autograd.grad(v, (attention, model.embedding.weight), grad)

        def sparse():  # includes the scores' gather and softmax, which the others are given
            v, _ = _sparse_attention._AttentionContext.apply(
                word_scores, table, plan, (1, n, length), None
            )
            torch.autograd.grad(v, (word_scores, table), grad)

        times = {}
        for name, fn in (
            ("gather rows + einsum", rows_gather),
            ("gather columns (TopicAttention._context)", columns_gather),
            ("sparse engine (+ score gather and softmax)", sparse),
        ):
            times[name] = (
                time_call(
                    lambda: [fn() for _ in range(reps)],
                    repeats=3 if size != "tiny" else 1,
                    warmup=0 if size == "tiny" else 1,
                    device=device,
                )
                / reps
            )
        base = times["gather rows + einsum"]
        for name, t in times.items():
            rows.append(
                {
                    "device": device,
                    "implementation": name,
                    "sentences": n,
                    "ms_fwd_bwd": 1e3 * t,
                    "speedup_vs_rows": base / t,
                }
            )
    cpu = {r["implementation"]: r for r in rows if r["device"] == "cpu"}
    summary = "CPU, forward + backward: " + ", ".join(
        f"{k.split(' (')[0]} {v['ms_fwd_bwd']:.2f} ms" for k, v in cpu.items()
    )
    return Result(
        rows=rows,
        summary=summary,
        notes=[
            "embedding dimension 10; the backward pass computes "
            "the gradients of the attention (or scores) and the table"
        ],
    )


# --------------------------------------------------------------------------- the paper's experiment


def paper_experiment(steps: int, tiny: bool, device: str, engine: str, record_every: int) -> dict:
    """Run the three classifier variants for ``steps`` steps each; return timings and results."""
    start = time.perf_counter()
    corpus = _corpus("tiny" if tiny else "quick")
    tokens, labels = corpus.train
    topic_mask = corpus.topic_mask(tokens)
    out = {"variants": {}}
    train_start = time.perf_counter()
    for kind in CLASSIFIERS:
        model = TopicAttention(corpus.vocab_size, corpus.n_topics, classifier=kind, seed=0)
        model, history = train_full_batch(
            model,
            tokens,
            labels,
            steps,
            lr=0.1,
            topic_mask=topic_mask,
            topic_word_ids=corpus.topic_word_ids,
            record_every=record_every,
            device=device,
            engine=engine,
        )
        out["variants"][kind] = {
            "final_loss": float(history.loss[-1]),
            "test_accuracy": accuracy(model, *corpus.test),
            "attention_on_topic": float(history.attention_on_topic[-1]),
        }
    _sync(device)
    out["train_s"] = time.perf_counter() - train_start
    out["total_s"] = time.perf_counter() - start
    return out


def _own_peak_rss_mib() -> float:
    """This process's peak resident memory.  ``VmHWM`` belongs to the process image, whereas
    Linux's ``ru_maxrss`` keeps the parent's peak across fork and exec (the benchmark runner's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _paper_child(args: list[str]) -> None:
    steps, tiny, device, engine, record_every = (
        int(args[0]),
        args[1] == "1",
        args[2],
        args[3],
        int(args[4]),
    )
    threads = int(args[5]) if len(args) > 5 else 0
    if threads:
        torch.set_num_threads(threads)
    out = paper_experiment(steps, tiny, device, engine, record_every)
    out["peak_rss_mib"] = _own_peak_rss_mib()
    out["torch_threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(out))


def run_paper_job(
    steps: int, tiny: bool, device: str, engine: str, record_every: int, threads: int = 0
) -> dict:
    """The experiment in a fresh Python process (so its peak memory is its own); ``threads``:
    torch's intra-op threads there (0: torch's default)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--paper-child",
        str(steps),
        "1" if tiny else "0",
        device,
        engine,
        str(record_every),
        str(threads),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, env=os.environ.copy())
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"paper job failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    out = json.loads(lines[-1][len("RESULT ") :])
    out["process_wall_s"] = wall
    return out


@benchmark(
    "paper_experiment",
    "Chapter 1 at the paper's settings: classifiers fixed, linear and MLP, "
    "5000 full-batch steps each, lr 0.1, make_topic_corpus() defaults, in a fresh process.",
)
def paper_experiment_benchmark(size: str) -> Result:
    check_size(size)
    steps = {"tiny": 5, "quick": 5000, "full": 5000}[size]
    configs = [("sparse", 1, 0)]
    if size != "tiny":  # also: recording less often; the autograd engine; one thread
        configs += [("sparse", 10, 0), ("autograd", 1, 0)]
        if torch.get_num_threads() > 1:
            configs.append(("sparse", 1, 1))
    rows, failures = [], []
    for device in _devices():
        for engine, record_every, threads in configs:
            if device == "cuda" and (record_every != 1 or threads):
                continue
            try:
                out = run_paper_job(steps, size == "tiny", device, engine, record_every, threads)
            except (
                RuntimeError
            ) as exc:  # one configuration failing (a GPU without an op) is reported
                if size == "tiny":
                    raise
                failures.append(f"{device}/{engine}/record_every={record_every}: {exc}")
                continue
            row = {
                "device": device,
                "engine": engine,
                "record_every": record_every,
                "steps": 3 * steps,
                "train_s": out["train_s"],
                "process_s": out["process_wall_s"],
                "ms_per_step": 1e3 * out["train_s"] / (3 * steps),
                "peak_rss_mib": out["peak_rss_mib"],
                "threads": out["torch_threads"],
            }
            for kind, v in out["variants"].items():
                row[f"{kind}_loss"] = v["final_loss"]
                row[f"{kind}_test_acc"] = v["test_accuracy"]
            rows.append(row)
    first = rows[0]
    summary = (
        f"{first['device']}, engine {first['engine']}: {first['train_s']:.0f} s training "
        f"({first['ms_per_step']:.2f} ms/step), {first['process_s']:.0f} s for the whole process, "
        f"peak {first['peak_rss_mib']:.0f} MiB"
    )
    slow = next(
        (r for r in rows if r["engine"] == "autograd" and r["device"] == first["device"]), None
    )
    if slow:
        ratio = slow["train_s"] / first["train_s"]
        summary += f"; the autograd engine takes {slow['train_s']:.0f} s ({ratio:.1f}x)"
    for r in rows:
        if r["device"] != "cpu":
            summary += (
                f"; {r['device']} engine {r['engine']}: {r['train_s']:.0f} s "
                f"({r['ms_per_step']:.2f} ms/step)"
            )
    notes = [
        "record_every=1 records the loss, topic scores and norms and the attention statistics at "
        "every step, as chapter 1 does by default; process_s includes starting Python, importing "
        "torch and generating the corpus"
    ] + failures
    return Result(rows=rows, summary=summary, notes=notes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--paper-child":
        _paper_child(sys.argv[2:])
    else:
        print("run the benchmarks with benchmarks/run.py", file=sys.stderr)
        sys.exit(2)
