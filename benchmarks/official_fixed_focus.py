"""Run the official fixed-focus scripts and write their curves to a CSV (chapter 4).

The official code of Vashisht & Ramaswamy (ECAI 2023),
github.com/vashishtrahul/On-the-Learning-Dynamics-of-Attention-Networks, trains the classifier
with the focus held fixed at alpha on the foreground segment, for the three losses, in
``Fixed Focus Setting/Linear orthogonal Setting/{Soft_Attention,Hard_Attention,LVML}.py``.
This script runs those three files from a checkout given on the command line, on the CPU and
without a display, and writes per loss, alpha and epoch the two quantities they compute:

- ``L``: the mean over the epoch's batches of the loss on each batch, evaluated right after the
  SGD step on that batch (their ``loss_list``);
- ``diff``: the same running mean at alpha minus at alpha + 0.01 (their ``loss_diff_dict``; at
  alpha = 1 they use alpha itself, so diff is 0 there by construction);

and the flow time ``t = epoch * batches_per_epoch * lr / (1 - momentum)``, with lr, momentum and
batches per epoch read from the objects the script built.

Nothing of the official code is copied here.  The scripts' text is read from the checkout and
changed at run time, only as far as needed to run headless on a CPU with today's packages
(``patch_source``; ``--write-patched DIR`` writes the changed scripts for inspection):

1. a header is prepended that selects matplotlib's non-interactive Agg backend (their cells end
   in ``plt.show()``), hides CUDA (runs on the CPU), puts the checkout's root on ``sys.path``
   (their ``sys.path.append`` names the authors' home folder), defines ``get_ipython`` (their
   ``models.py``, ``train.py`` and ``generate_data.py`` call
   ``get_ipython().run_line_magic('matplotlib', 'inline')`` at import), stands in for
   ``pandas``, ``torchvision`` and ``tqdm`` when they are not installed (imported, never used,
   except ``tqdm`` as a plain iterator wrapper), and seeds NumPy's global generator with 0
   (their base data are drawn unseeded, so each run of theirs draws different background
   noise; the seed makes this CSV reproducible);
2. ``np.compat.long`` (removed in NumPy 2) becomes ``np.int64``;
3. only with ``--epochs`` / ``--alphas`` (for a cost estimate): the epoch count and the alpha
   list are replaced.

Their figures are saved as PDFs in a working folder (a temporary one unless ``--workdir``).
This is a manual comparison run, not a registered benchmark and not part of the tests: it needs
the official code, which the repository does not contain.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/official_fixed_focus.py /path/to/checkout
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import os
import sys
import tempfile
import time
from pathlib import Path

FOLDER = Path("Fixed Focus Setting") / "Linear orthogonal Setting"
# loss name -> (script, name of its epoch-count variable, name of its optimizer variable)
SCRIPTS = {
    "soft": ("Soft_Attention.py", "nos_epochs", "classification_optimizer"),
    "hard": ("Hard_Attention.py", "nos_epochs", "classification_optimizer"),
    "lvml": ("LVML.py", "n_epochs", "optimizer_classification"),
}
OFFICIAL_ALPHAS = "alphas = [0.2,0.4,0.6,0.8,1]"
COLUMNS = ("loss", "alpha", "epoch", "batches_per_epoch", "lr", "momentum", "t", "L", "diff")
# Shipped with course_lib (chapter 4 reads it through course_lib.data.official, also on Colab).
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "course_lib"
    / "data"
    / "files"
    / "official_fixed_focus.csv.gz"
)

HEADER = """# --- added by benchmarks/official_fixed_focus.py: run headless on a CPU ---
import builtins as _b, importlib.machinery as _im, os as _os, sys as _sys, types as _t
_os.environ["CUDA_VISIBLE_DEVICES"] = ""
import matplotlib as _mpl
_mpl.use("Agg")
_sys.path.insert(0, {root!r})
class _NoIPython:
    def run_line_magic(self, *args, **kwargs):
        return None
_b.get_ipython = lambda: _NoIPython()
def _stand_in(name, **attributes):
    try:
        __import__(name)
    except ImportError:
        module = _t.ModuleType(name)
        module.__spec__ = _im.ModuleSpec(name, None)
        module.__dict__.update(attributes)
        _sys.modules[name] = module
        return module
_stand_in("pandas")
_tv = _stand_in("torchvision")
if _tv is not None:
    _tv.transforms = _stand_in("torchvision.transforms")
_stand_in("tqdm", tqdm=lambda iterable=None, *args, **kwargs: iterable)
import numpy as _np
_np.random.seed({seed})
# --- end of the added header ---
"""


def patch_source(
    text: str,
    root: str,
    *,
    seed: int = 0,
    epochs: int | None = None,
    epoch_variable: str = "nos_epochs",
    alphas: list[float] | None = None,
) -> str:
    """The official script's text with the changes listed in the module docstring."""
    if not isinstance(text, str) or "classification" not in text:
        raise ValueError("text must be the source of an official fixed-focus script")

    def replace_once(source: str, old: str, new: str) -> str:
        if source.count(old) < 1:
            raise ValueError(f"the official script no longer contains {old!r}: update the patch")
        return source.replace(old, new)

    text = replace_once(text, "np.compat.long", "np.int64")
    if epochs is not None:
        text = replace_once(text, f"{epoch_variable} = 100", f"{epoch_variable} = {int(epochs)}")
    if alphas is not None:
        text = replace_once(text, OFFICIAL_ALPHAS, f"alphas = {list(alphas)!r}")
    return HEADER.format(root=str(root), seed=int(seed)) + text


def run_script(checkout: Path, loss: str, workdir: Path, **patch) -> list[dict]:
    """Execute one official script (patched) in ``workdir``; return its rows for the CSV."""
    script, epoch_variable, optimizer_name = SCRIPTS[loss]
    path = checkout / FOLDER / script
    source = patch_source(path.read_text(), str(checkout), epoch_variable=epoch_variable, **patch)
    namespace = {"__name__": "__main__", "__file__": str(path)}
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        exec(compile(source, str(path), "exec"), namespace)
    finally:
        os.chdir(previous)
    import matplotlib.pyplot as plt

    plt.close("all")
    group = namespace[optimizer_name].param_groups[0]
    lr, momentum = float(group["lr"]), float(group["momentum"])
    batches = len(namespace["train_loader"])
    rows = []
    for alpha in namespace["alphas"]:
        losses = namespace["loss_dict"][str(alpha)]
        diffs = namespace["loss_diff_dict"][str(alpha)]
        for epoch, (value, diff) in enumerate(zip(losses, diffs)):
            rows.append(
                {
                    "loss": loss,
                    "alpha": alpha,
                    "epoch": epoch,
                    "batches_per_epoch": batches,
                    "lr": lr,
                    "momentum": momentum,
                    "t": epoch * batches * lr / (1 - momentum),
                    "L": float(value),
                    "diff": float(diff),
                }
            )
    return rows


def write_csv(rows: list[dict], out: Path) -> None:
    """Write the rows as CSV, gzip-compressed when ``out`` ends in .gz (byte-reproducible)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
    data = buffer.getvalue().encode()
    if out.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of the official repository")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="the CSV to write (.gz: compressed; default: course_lib's copy)",
    )
    parser.add_argument("--losses", nargs="+", choices=list(SCRIPTS), default=list(SCRIPTS))
    parser.add_argument("--epochs", type=int, help="replace their 100 epochs (cost estimates)")
    parser.add_argument("--alphas", type=float, nargs="+", help="replace their alphas")
    parser.add_argument("--seed", type=int, default=0, help="NumPy seed for their base data")
    parser.add_argument("--workdir", type=Path, help="where their PDFs go (default: a temp dir)")
    parser.add_argument(
        "--write-patched",
        type=Path,
        metavar="DIR",
        help="write the patched scripts to DIR and exit",
    )
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    if not (checkout / FOLDER).is_dir():
        parser.error(f"checkout: no folder {FOLDER} under {checkout}")
    patch = {"seed": args.seed, "epochs": args.epochs, "alphas": args.alphas}
    if args.write_patched:
        args.write_patched.mkdir(parents=True, exist_ok=True)
        for script, epoch_variable, _ in SCRIPTS.values():
            text = (checkout / FOLDER / script).read_text()
            patched = patch_source(text, str(checkout), epoch_variable=epoch_variable, **patch)
            (args.write_patched / script).write_text(patched)
        return
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        for loss in args.losses:
            start = time.perf_counter()
            rows += run_script(checkout, loss, workdir, **patch)
            write_csv(rows, args.out)  # partial results as soon as each loss is done
            print(
                f"{loss}: {time.perf_counter() - start:.1f} s; wrote {args.out}",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    main()
