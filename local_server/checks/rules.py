"""The rules of each task, declared as a table, and the mistakes a check may report.

A task's table lists, for every rule the task text gives the learner, the problem code a
verdict carries when the rule is broken, the rule in the task's own words, how the check
observes it, and the hint shown under the verdict (the way Kaggle's learntools declares its
problems). A check reports a broken rule with ``TABLE.broken(problem, message)``; a problem
code missing from the table is a bug in the check, and the harness says so.

    FETCH_ALL = Task(
        "fetch_all",
        Rule("session-per-request", "open **one** `ClientSession`",
             "sessions created while it ran, counted", "create one session and share it"),
    )
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


class Mistake(Exception):
    """A specific mistake the check observed, with a hint toward the fix."""

    def __init__(self, problem: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Rule:
    """One rule of a task: what breaking it is called, says, and how the check sees it."""

    problem: str
    rule: str
    observed: str
    hint: str


class Task:
    """A task's rule table: the rules its text states, and the shape its answer must have."""

    def __init__(self, name: str, *rules: Rule) -> None:
        self.name = name
        self.rules: dict[str, Rule] = {}
        for rule in rules:
            if rule.problem in self.rules:
                raise ValueError(f"{name}: problem code {rule.problem!r} declared twice")
            self.rules[rule.problem] = rule
        self._own = list(rules)
        for rule in COMMON:  # a task may state a shared rule in its own words instead
            self.rules.setdefault(rule.problem, rule)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules.values())

    def own_rules(self) -> list[Rule]:
        """The rules the task itself declares (a shared one restated included)."""
        return list(self._own)

    def broken(self, problem: str, message: str, hint: str | None = None) -> Mistake:
        """The Mistake for breaking ``problem``: the rule's hint unless ``hint`` is given."""
        rule = self.rules.get(problem)
        if rule is None:
            raise KeyError(f"{self.name}: problem {problem!r} is not in the task's rule table")
        return Mistake(problem, message, rule.hint if hint is None else hint)

    def __repr__(self) -> str:
        return f"<Task {self.name}: {', '.join(self.rules)}>"


# Rules every task has; the harness observes them for every check.
COMMON = (
    Rule(
        "not-implemented",
        "replace `raise NotImplementedError` with your code",
        "the stub's NotImplementedError reached the check",
        "",
    ),
    Rule(
        "not-callable",
        "pass your function (or class) to the check",
        "the check was given something that cannot be called",
        "pass the name itself, without calling it: `check.task(task)`.",
    ),
    Rule(
        "not-async",
        "define the function with `async def`",
        "calling it returned something that cannot be awaited",
        "define it with `async def` so it can await the requests.",
    ),
    Rule(
        "missing-await",
        "await every coroutine",
        "a coroutine object reached the check, or Python warned one was never awaited",
        "put `await` in front of the call.",
    ),
    Rule(
        "asyncio-run-in-loop",
        "await coroutines; never start a second event loop",
        "RuntimeError: asyncio.run() cannot be called from a running event loop",
        "your code already runs inside an event loop: `await` the coroutine instead of "
        "passing it to `asyncio.run()` (lesson 00).",
    ),
    Rule(
        "blocked-loop",
        "do not block the event loop",
        "a blocking call (time.sleep, a blocking socket) on the loop's thread, or the loop "
        "stalled, measured by a ticking task",
        "inside `async def`, wait with `await asyncio.sleep()`, never `time.sleep()`, and use "
        "aiohttp, never a blocking HTTP library.",
    ),
    Rule(
        "runaway-loop",
        "every loop must wait for something",
        "the event loop stopped running for seconds while your code ran; the check sampled "
        "where and stopped the thread",
        "a loop that never awaits anything that waits (or awaits a closed socket) never lets "
        "the loop run: find its exit condition.",
    ),
    Rule(
        "timeout",
        "return once the work is done",
        "still running when the check's time was up",
        "a request that never completes, or an await on something that never happens? "
        "Read every response inside `async with` and check what you await.",
    ),
    Rule(
        "task-exception-lost",
        "handle the failure of every task you start",
        "asyncio reported a task whose exception was never retrieved",
        "await every task you create (`asyncio.gather`, `TaskGroup`), so its error reaches "
        "you instead of vanishing.",
    ),
    Rule(
        "needs-posix",
        "(the check runs processes and sends them signals: Linux, macOS or WSL)",
        "the check found itself on a system without POSIX signals or fork",
        "run this exercise on Linux or macOS, or in WSL on Windows.",
    ),
    Rule(
        "raised",
        "return normally where the task expects a result",
        "the exception your code raised, and the line it came from",
        "",
    ),
)
