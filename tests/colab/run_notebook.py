"""Execute one notebook with the simulated Colab kernel (``colab-sim``) and save it executed.

    python run_notebook.py IN.ipynb OUT.ipynb

Run by test_colab.py in a clean environment (fresh HOME, no course variables), from the notebook's
own empty folder.  Prints the failing cell's error and exits 1 when a cell fails.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(source: str, target: str) -> int:
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="colab-sim",
        timeout=600,
        resources={"metadata": {"path": str(Path(source).parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        nbformat.write(nb, target)
        print(f"FAILED after {time.perf_counter() - start:.0f} s:\n{str(error)[-4000:]}")
        return 1
    nbformat.write(nb, target)
    print(f"executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
