"""A simulated Colab runtime: Colab's Python and package versions, the notebooks'
own install cell, each notebook alone in an empty folder with a fresh HOME.

    python tests/colab/colab_sim.py venv        # build (or reuse) the runtime, print its path

The runtime is a virtual environment in the course's cache folder
(``~/.cache/how-attention-learns/colab-runtime``, ``COURSE_COLAB_VENV`` overrides), built once from
``colab-constraints.txt`` (Colab's ``pip freeze``) and rebuilt when that file, the list of
preinstalled packages below, or the interpreter changes.  ``test_colab.py`` uses it; see
``README.md`` in this folder for what differs from the real Colab.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONSTRAINTS = HERE / "colab-constraints.txt"


def _default_venv() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "how-attention-learns" / "colab-runtime"


# In the course's cache folder, so a fresh clone on the same machine (CI) reuses it.
VENV = Path(os.environ.get("COURSE_COLAB_VENV") or _default_venv())
# Colab's Python is 3.13; this machine's is pyenv's 3.13.0 (COURSE_COLAB_PYTHON overrides).
PYTHON_CANDIDATES = ("/root/.pyenv/versions/3.13.0/bin/python", "python3.13")
# What a Colab runtime holds that a course notebook touches; their dependencies come along, every
# one at Colab's version (the constraints file).
PREINSTALLED = (
    "pip",
    "setuptools",
    "wheel",
    "torch",
    "numpy",
    "scipy",
    "matplotlib",
    "scikit-learn",
    "ipywidgets",
    "widgetsnbextension",
    "jupyterlab_widgets",
    "ipykernel",
    "ipython",
    "jupyter_client",
    "pandas",
    "pillow",
    "packaging",
    "tqdm",
)


def colab_python() -> str:
    override = os.environ.get("COURSE_COLAB_PYTHON")
    candidates = [override] if override else PYTHON_CANDIDATES
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found:
            return found
    raise SystemExit(
        "the Colab simulation needs Python 3.13 (Colab's): install it (e.g. pyenv install 3.13) "
        "or set COURSE_COLAB_PYTHON to its path"
    )


def stamp(python: str) -> str:
    text = CONSTRAINTS.read_text() + "\n".join(PREINSTALLED) + python
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(log=print) -> Path:
    """Build the simulated runtime unless an up-to-date one exists; return its python."""
    python = colab_python()
    marker = VENV / ".colab-stamp"
    if marker.exists() and marker.read_text() == stamp(python) and venv_python().exists():
        return venv_python()
    log(
        f"building the simulated Colab runtime in {VENV} "
        "(Python 3.13, Colab's versions; a few minutes)"
    )
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pip += ["-c", str(CONSTRAINTS)]
    subprocess.run(pip + ["pip"], check=True)  # Colab's pip first, then everything with it
    subprocess.run(pip + list(PREINSTALLED), check=True)
    marker.write_text(stamp(python))
    return venv_python()


def freeze(python: Path) -> dict[str, str]:
    """``{name: version}`` of every package in the runtime (``pip freeze --all``)."""
    command = [str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    packages = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, version = line.split(" @ ", 1)
        else:
            continue
        packages[name.strip().lower().replace("_", "-")] = version.strip()
    return packages


if __name__ == "__main__":
    if sys.argv[1:] == ["venv"]:
        print(ensure_venv())
    elif sys.argv[1:] == ["freeze"]:
        print(json.dumps(freeze(ensure_venv()), indent=1))
    else:
        sys.exit(__doc__)
