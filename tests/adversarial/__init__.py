"""Answers to the exercises written from the exercise notebooks alone, as a learner would.

Each module ``exNN_topic.py`` holds realistic correct alternatives and wrong answers for the
tasks of exercise NN, written from the task text (and the lesson) before reading the checker.
``tests/test_adversarial.py`` runs every one through its check: a correct answer must pass, a
wrong one must fail, and with the problem code of the rule it breaks.

    from adversarial import correct, wrong
    from local_server.checks import client_sessions as check

    @wrong(check.fetch_all, "closes the session only when every request succeeds",
           problem="session-left-open")
    async def fetch_all_closes_only_on_success(urls): ...

``problem`` is the problem code the check should give; ``rule`` quotes the task text the
answer breaks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One answer to one task, and what its check should say about it."""

    exercise: str
    task: str
    fn: Any
    check: Any
    correct: bool
    mistake: str = ""
    rule: str = ""
    problem: str | None = None

    @property
    def name(self) -> str:
        return f"{self.exercise}::{self.task}::{self.fn.__name__}"


ANSWERS: list[Answer] = []


def _exercise_of(fn: Any) -> str:
    module = inspect.getmodule(fn).__name__.rsplit(".", 1)[-1]
    return module.removeprefix("ex")


def _task_of(check: Any) -> str:
    return getattr(check, "task", check.__name__)


def correct(check: Any, why: str = "") -> Callable[[Any], Any]:
    """Register a correct alternative for ``check``'s task; ``why`` says how it differs."""

    def register(fn: Any) -> Any:
        ANSWERS.append(Answer(_exercise_of(fn), _task_of(check), fn, check, True, why))
        return fn

    return register


def wrong(
    check: Any, mistake: str, *, rule: str = "", problem: str | None = None
) -> Callable[[Any], Any]:
    """Register a wrong answer: ``mistake`` in plain words, the problem code it should get."""

    def register(fn: Any) -> Any:
        ANSWERS.append(
            Answer(_exercise_of(fn), _task_of(check), fn, check, False, mistake, rule, problem)
        )
        return fn

    return register


# A verdict's message and hint stay short enough to read under a cell.
MESSAGE_LIMIT = 400
HINT_LIMIT = 320


def answers_in(module: str) -> list[Answer]:
    """The answers registered by the module named ``module`` (a test module's ``__name__``)."""
    return [a for a in ANSWERS if a.fn.__module__ == module]


def answer_id(answer: Answer) -> str:
    return f"{answer.exercise}-{answer.fn.__name__}"


def judge(answer: Answer) -> None:
    """Run ``answer`` through its check and assert the verdict it must get."""
    verdict = answer.check.diagnose(answer.fn)
    if answer.correct:
        assert verdict.passed, f"a correct answer ({answer.mistake}) failed:\n{verdict.render()}"
        return
    assert not verdict.passed, f"a wrong answer ({answer.mistake}) passed:\n{verdict.render()}"
    if answer.problem is not None:
        assert verdict.problem == answer.problem, (
            f"{answer.mistake}: expected {answer.problem}, got:\n{verdict.render()}"
        )
    assert len(verdict.message) <= MESSAGE_LIMIT, verdict.message
    assert len(verdict.hint) <= HINT_LIMIT, verdict.hint


class ModuleFile(str):
    """An answer that is a module file (exercise 20): the file's name, which its check takes.

    ``module_file(source, "wrong_port", module=__name__)`` writes ``service.py`` into a folder
    of its own and returns its path; ``__name__`` names the answer in test ids.
    """

    __name__: str
    __module__: str


_MODULE_FOLDER: list[str] = []


def module_file(source: str, name: str, *, module: str, filename: str = "service.py") -> ModuleFile:
    """Write ``source`` as ``filename`` in a folder for answer ``name``; the file's path."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    if not _MODULE_FOLDER:
        _MODULE_FOLDER.append(tempfile.mkdtemp(prefix="answers20-"))
        atexit.register(shutil.rmtree, _MODULE_FOLDER[0], True)
    folder = Path(_MODULE_FOLDER[0]) / module.rsplit(".", 1)[-1] / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(source)
    answer = ModuleFile(str(path))
    answer.__name__ = name
    answer.__module__ = module
    return answer
