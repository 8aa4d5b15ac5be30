"""The stored notebooks follow the course's rules (DEVELOPERS.md, COURSE.md)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from coursetools.notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, notebooks_in, read

ALL = [*notebooks_in(LESSONS), *notebooks_in(SOLUTIONS), *notebooks_in(EXERCISES)]
EXECUTED = [*notebooks_in(LESSONS), *notebooks_in(SOLUTIONS)]
KNOWN_TAGS = {"raises-exception", "nbval-ignore-output", "nbval-skip", "solution-only"}

WARNING_TEXT = re.compile(
    r"\w*Warning\b|Unclosed (client session|connector)|was never awaited|Traceback \(most recent"
)
MACHINE_PATH = re.compile(r"(/root/|/home/\w|/Users/\w|/work/|/tmp/|site-packages|\\\\Users\\\\)")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _output_text(output) -> str:
    if "text" in output:
        return output["text"]
    if output.get("output_type") == "error":
        return "\n".join([output.get("evalue", ""), *output.get("traceback", [])])
    data = output.get("data", {})
    return "\n".join(str(data[kind]) for kind in ("text/plain", "text/html") if kind in data)


def test_the_course_has_notebooks():
    assert notebooks_in(LESSONS) and notebooks_in(SOLUTIONS) and notebooks_in(EXERCISES)


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_valid_nbformat_with_python3_kernel(path):
    notebook = read(path)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_only_known_cell_tags(path):
    for cell in read(path).cells:
        assert _tags(cell) <= KNOWN_TAGS, f"unknown tags {_tags(cell) - KNOWN_TAGS}"


@pytest.mark.parametrize("path", EXECUTED, ids=_id)
def test_executed_top_to_bottom_in_one_run(path):
    counts = [cell.execution_count for cell in _code_cells(read(path))]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}"


@pytest.mark.parametrize("path", notebooks_in(EXERCISES), ids=_id)
def test_exercises_are_stored_without_outputs(path):
    for cell in _code_cells(read(path)):
        assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", EXECUTED, ids=_id)
def test_no_stderr_warnings_or_unexpected_tracebacks(path):
    for number, cell in enumerate(read(path).cells):
        outputs = cell.get("outputs", [])
        errors = [out for out in outputs if out.output_type == "error"]
        if "raises-exception" in _tags(cell):
            assert errors, f"cell {number} is marked to raise but did not"
        else:
            assert not errors, f"cell {number} raised: {errors[0].get('evalue')}"
        for out in outputs:
            assert out.get("name") != "stderr", f"cell {number} wrote to stderr: {out['text']!r}"
            if out.output_type != "error":
                match = WARNING_TEXT.search(_output_text(out))
                assert not match, f"cell {number} output contains {match.group(0)!r}"


@pytest.mark.parametrize("path", EXECUTED, ids=_id)
def test_no_paths_from_the_authors_machine(path):
    for number, cell in enumerate(read(path).cells):
        for out in cell.get("outputs", []):
            match = MACHINE_PATH.search(_output_text(out))
            assert not match, f"cell {number} output contains the path {match.group(0)!r}"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_relative_links_point_to_files_that_exist(path):
    for cell in read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", cell.source):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"broken link {target}"


@pytest.mark.parametrize("path", notebooks_in(LESSONS), ids=_id)
def test_lessons_have_objectives_common_mistakes_and_summary(path):
    text = "\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    assert "**You will learn to**" in text
    assert "## Common mistakes" in text
    assert "## Summary" in text
    exercise = EXERCISES / path.name
    if exercise.exists():
        assert f"../exercises/{path.name}" in text, "the lesson does not link its exercise"


@pytest.mark.parametrize("path", notebooks_in(SOLUTIONS), ids=_id)
def test_each_solution_has_its_lesson_and_exercise(path):
    assert (LESSONS / path.name).exists()
    assert (EXERCISES / path.name).exists()


# A check cell: ``check.task(answer)``, or ``check.task("module.py")`` for an answer that is a
# module file (exercise 20).
CHECK_CELL = re.compile(r"check\.\w+\((\w+|\"[\w.]+\.py\")\)$")


@pytest.mark.parametrize("path", notebooks_in(SOLUTIONS), ids=_id)
def test_solutions_mark_answers_and_check_each_task(path):
    sources = [cell.source for cell in _code_cells(read(path))]
    assert any("### BEGIN SOLUTION" in source for source in sources)
    checks = [s for s in sources if CHECK_CELL.match(s.strip())]
    assert len(checks) >= 3, "an exercise has at least three checked tasks"
    verdicts = [
        out.get("text", "")
        for cell in _code_cells(read(path))
        if CHECK_CELL.match(cell.source.strip())
        for out in cell.outputs
    ]
    assert verdicts and all(text.startswith("✅") for text in verdicts), verdicts


@pytest.mark.parametrize("path", EXECUTED, ids=_id)
def test_every_plot_has_alternative_text(path):
    """A stored plot says what it shows (local_server.plots.show): to JupyterLab, an HTML
    ``<img alt>``; to nbconvert and the website, the PNG's ``alt`` metadata."""
    for number, cell in enumerate(read(path).cells):
        for out in cell.get("outputs", []):
            if "image/png" not in out.get("data", {}):
                continue
            alt = out.get("metadata", {}).get("image/png", {}).get("alt", "")
            assert len(alt.split()) >= 5, f"cell {number}: a plot without alternative text"
            assert 'alt="' in out["data"].get("text/html", ""), f"cell {number}: no <img alt>"


NAVIGATION = re.compile(
    r"\b(?:on to|next|back to|previous)\b[^.\n\]]{0,30}\b(?:lesson|exercise)\b[:*\s]*\d\d\b", re.I
)
LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_references_to_neighbours_are_links(path):
    for number, cell in enumerate(read(path).cells):
        if cell.cell_type == "markdown":
            match = NAVIGATION.search(LINK.sub("", cell.source))
            assert not match, f"cell {number}: {match.group(0)!r} is not a link"
