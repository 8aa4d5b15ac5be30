"""Exercises are generated from solutions, up to date, and run cleanly as stubs."""

from __future__ import annotations

import pytest

from coursetools.make_exercises import (
    STUB,
    MarkerError,
    exercise_from,
    exercise_path,
    render,
    strip_solutions,
)
from coursetools.notebooks import EXERCISES, ROOT, SOLUTIONS, execute, notebooks_in, read

SOLUTION_NOTEBOOKS = notebooks_in(SOLUTIONS)


def _id(path):
    return str(path.relative_to(ROOT))


def test_strip_solutions_keeps_indentation_and_surroundings():
    source = (
        "async def f(x):\n"
        '    """Doc."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return x * 2\n"
        "    ### END SOLUTION\n"
        "\n"
        "print('after')"
    )
    assert strip_solutions(source) == (
        f"async def f(x):\n    \"\"\"Doc.\"\"\"\n    {STUB}\n\nprint('after')"
    )


def test_strip_solutions_handles_several_regions():
    source = (
        "### BEGIN SOLUTION\na = 1\n### END SOLUTION\n"
        "  ### BEGIN SOLUTION\n  b\n  ### END SOLUTION"
    )
    assert strip_solutions(source) == f"{STUB}\n  {STUB}"


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    ],
)
def test_unpaired_markers_are_an_error(source):
    with pytest.raises(MarkerError):
        strip_solutions(source)


@pytest.mark.parametrize("solution", SOLUTION_NOTEBOOKS, ids=_id)
def test_exercise_is_up_to_date_with_its_solution(solution):
    stored = exercise_path(solution)
    assert stored.exists(), f"missing {stored.name}: run `make exercises`"
    expected = render(exercise_from(read(solution)))
    assert stored.read_text(encoding="utf-8") == expected, (
        f"{_id(stored)} is stale: run `make exercises`"
    )


@pytest.mark.parametrize("solution", SOLUTION_NOTEBOOKS, ids=_id)
def test_exercise_holds_no_answer(solution):
    exercise = read(exercise_path(solution))
    text = "\n".join(cell.source for cell in exercise.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert STUB in text


@pytest.mark.parametrize("path", notebooks_in(EXERCISES), ids=_id)
def test_exercise_runs_and_every_check_says_not_implemented(path):
    """Executed as a learner first opens it: no traceback, each check prints its stub verdict."""
    notebook = execute(read(path), path.parent)
    check_cells = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.strip().startswith("check.")
    ]
    assert check_cells
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{out.get('ename')}: {out.get('evalue')}"
            assert out.get("name") != "stderr", out.get("text")
    for cell in check_cells:
        text = "".join(out.get("text", "") for out in cell.outputs)
        assert "not implemented yet" in text, f"{cell.source!r} printed {text!r}"


def test_every_exercise_has_a_solution():
    for path in notebooks_in(EXERCISES):
        assert (SOLUTIONS / path.name).exists(), f"{path.name} has no solution to come from"
