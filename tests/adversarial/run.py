"""``python -m adversarial.run ex01_client_sessions [...]`` (from tests/): every answer's verdict.

Prints one block per answer: expected, what the check said, and a summary per exercise.
A maintainer's tool for writing answers; ``tests/test_adversarial.py`` is the test.
"""

from __future__ import annotations

import importlib
import sys

from adversarial import ANSWERS


def main(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(f"adversarial.{module}")
    totals: dict[str, list[int]] = {}
    for answer in ANSWERS:
        verdict = answer.check.diagnose(answer.fn)
        ok = verdict.passed if answer.correct else not verdict.passed
        code_ok = answer.correct or answer.problem is None or verdict.problem == answer.problem
        row = totals.setdefault(answer.exercise, [0, 0, 0, 0])
        row[0 if answer.correct else 2] += 1
        row[1 if answer.correct else 3] += int(ok and code_ok)
        expected = "pass" if answer.correct else f"fail ({answer.problem or '?'}): {answer.mistake}"
        mark = "ok " if ok and code_ok else "BAD"
        print(f"{mark} {answer.name}\n    expected: {expected}\n    got: {verdict.render()}\n")
    for exercise, (n_ok, ok_ok, n_bad, bad_ok) in totals.items():
        print(f"{exercise}: correct accepted {ok_ok}/{n_ok}, wrong handled {bad_ok}/{n_bad}")


if __name__ == "__main__":
    main(sys.argv[1:])
