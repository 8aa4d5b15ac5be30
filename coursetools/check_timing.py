"""``make bench``: how long each check takes to pass a correct answer (one run each).

The correct alternatives are the ones ``tests/adversarial`` registers for every task. A check's
time is a benchmark, not a test: on a loaded machine it stretches, and the verdict must not.
"""

from __future__ import annotations

import importlib
import sys
import time

from .notebooks import ROOT


def correct_answer_seconds() -> dict[str, list[float]]:
    """For each ``exercise::task``, the seconds each of its correct answers took to pass."""
    sys.path.insert(0, str(ROOT / "tests"))
    from adversarial import ANSWERS  # tests/ joins the path just above

    for path in sorted((ROOT / "tests" / "adversarial").glob("ex*.py")):
        importlib.import_module(f"adversarial.{path.stem}")
    seconds: dict[str, list[float]] = {}
    for answer in ANSWERS:
        if not answer.correct:
            continue
        started = time.perf_counter()
        passed = answer.check.diagnose(answer.fn).passed
        took = time.perf_counter() - started
        key = f"{answer.exercise}::{answer.task}" + ("" if passed else " (FAILED)")
        seconds.setdefault(key, []).append(took)
    return seconds


def report() -> None:
    seconds = correct_answer_seconds()
    width = max(len(key) for key in seconds)
    print(f"{'check (correct answers)':<{width}}  answers  slowest s")
    for key, times in seconds.items():
        print(f"{key:<{width}}  {len(times):7}  {max(times):9.2f}")
    slowest = max(max(times) for times in seconds.values())
    over = sum(max(times) >= 3 for times in seconds.values())
    print(f"{len(seconds)} checks; the slowest took {slowest:.2f} s; {over} took 3 s or more")


if __name__ == "__main__":
    report()
