"""``python -m coursetools.spelling``: codespell over the course's text, notebooks included.

codespell reads files as text; a notebook's stored outputs (base64 plots, random bytes) would
drown it in false alarms, so each notebook's cell sources are checked instead, one line per
line of the cell, named ``notebook.ipynb:cell N:line L``. Settings: ``[tool.codespell]`` in
``pyproject.toml``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, notebooks_in, read


def notebook_sources(folder: Path) -> list[Path]:
    """Every notebook's cell sources written to ``folder``, one text file per notebook."""
    written = []
    for notebooks in (LESSONS, SOLUTIONS, EXERCISES):
        for path in notebooks_in(notebooks):
            text = "\n".join(cell.source for cell in read(path).cells)
            target = folder / notebooks.name / f"{path.stem}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sources = notebook_sources(Path(folder))
        result = subprocess.run(
            [sys.executable, "-m", "codespell_lib", "--toml", str(ROOT / "pyproject.toml"),
             str(ROOT), *map(str, sources)],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        output = result.stdout.replace(folder + "/", "")
    if output:
        print(output, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
