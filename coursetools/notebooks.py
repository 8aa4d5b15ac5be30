"""Where the course's notebooks live, and how to read, run and write them."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
KERNEL = "python3"
CELL_TIMEOUT_SECONDS = 60


def notebooks_in(folder: Path) -> list[Path]:
    """The course notebooks in ``folder``, in lesson order."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def execute(notebook: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run every cell top to bottom in a fresh ``python3`` kernel started in ``folder``.

    Cells tagged ``raises-exception`` may raise; any other error stops the run.
    """
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(folder)}},
        record_timing=False,
    )
    client.execute()
    return notebook
