"""``python -m coursetools.execute [folder-or-notebook ...]``: regenerate stored outputs.

Executes each notebook top to bottom in a fresh kernel and writes it back in place, so no one
edits outputs by hand. Defaults to every lesson and solution.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .notebooks import LESSONS, SOLUTIONS, execute, notebooks_in, read, write


def targets(args: list[str]) -> list[Path]:
    paths = [Path(arg) for arg in args] or [LESSONS, SOLUTIONS]
    found: list[Path] = []
    for path in paths:
        found.extend(notebooks_in(path) if path.is_dir() else [path])
    return found


def main(args: list[str]) -> None:
    for path in targets(args):
        started = time.perf_counter()
        notebook = execute(read(path), path.parent.resolve())
        write(notebook, path)
        print(f"executed {path} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
