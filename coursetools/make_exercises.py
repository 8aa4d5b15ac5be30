"""``python -m coursetools.make_exercises``: write ``exercises/`` from ``solutions/``.

A solution notebook is the single source of its exercise. In its code cells, the answer sits
between two marker lines::

    async def fetch_all(urls):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

In the exercise each marked region becomes ``raise NotImplementedError`` at the marker's
indentation. Cells tagged ``solution-only`` are dropped. Every output and execution count is
cleared, so exercises are stored without outputs.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

from .notebooks import EXERCISES, SOLUTIONS, notebooks_in, read

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
STUB = 'raise NotImplementedError("your code here")'
SOLUTION_ONLY_TAG = "solution-only"


class MarkerError(ValueError):
    """A solution cell whose markers do not pair up."""


def strip_solutions(source: str) -> str:
    """Replace each marked answer region in ``source`` with a stub at the same indentation."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise MarkerError(f"line {number}: BEGIN SOLUTION inside another region")
            inside = True
            out.append(begin.group("indent") + STUB)
        elif END.match(line):
            if not inside:
                raise MarkerError(f"line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError("BEGIN SOLUTION is never closed")
    return "\n".join(out)


def exercise_from(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The exercise notebook for a solution notebook: answers stubbed, outputs cleared."""
    exercise = copy.deepcopy(solution)
    exercise.cells = [
        cell
        for cell in exercise.cells
        if SOLUTION_ONLY_TAG not in cell.get("metadata", {}).get("tags", [])
    ]
    for cell in exercise.cells:
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source)
        cell.outputs = []
        cell.execution_count = None
    return exercise


def exercise_path(solution_path: Path) -> Path:
    return EXERCISES / solution_path.name


def render(notebook: nbformat.NotebookNode) -> str:
    """The exact text ``nbformat.write`` stores, for comparing a stored exercise."""
    return nbformat.writes(notebook) + "\n"


def main(args: list[str]) -> None:
    """Regenerate the exercise of each solution named in ``args`` (default: every solution)."""
    solutions = [Path(arg) for arg in args] or notebooks_in(SOLUTIONS)
    for solution_path in solutions:
        target = exercise_path(solution_path)
        text = render(exercise_from(read(solution_path)))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(EXERCISES.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
