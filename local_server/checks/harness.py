"""How a check runs a learner's code and reports what it observed.

Each check is an ``async def`` that receives the learner's function, a fresh course server
and a ``SessionSpy``; it returns a sentence on success or raises ``Mistake`` with the specific
problem it saw. ``@check("task")`` wraps it into the function a notebook calls,
``check.fetch_all(fetch_all)``, which runs it in its own thread and event loop, stops code that
hangs, turns a stub's ``NotImplementedError`` into "not implemented yet", and prints a verdict
instead of a traceback.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ctypes
import functools
import gc
import inspect
import io
import itertools
import os
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from ..runner import LocalServer, start_server
from .evidence import (
    exception_text,
    explain,
    is_learner_file,
    learner_frame,
    learner_line,
    learner_line_at,
    wrap,
)
from .observe import (
    Observation,
    RecordingLoop,
    Stall,
    observing,
    sample_stall,
)
from .observe import current_or_none as current_observation
from .quiet import Quiet
from .rules import COMMON, Mistake, Rule, Task

__all__ = [
    "Mistake",
    "Rule",
    "SessionSpy",
    "Task",
    "Verdict",
    "call_async",
    "check",
    "learner_frame",
]

COMMON_RULES = {rule.problem: rule for rule in COMMON}
DEFAULT_TIMEOUT_SECONDS = 10.0
# Extra time a blocked event loop gets before the check gives up on its thread.
BLOCKED_LOOP_GRACE_SECONDS = 5.0


# The marker of each outcome, in a colour emoji and in plain text for a font without one.
PASS_MARK, FAIL_MARK, TODO_MARK = "✅ PASS", "❌ FAIL", "⏳ TO DO"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``problem`` is None when the learner's code passed."""

    task: str
    problem: str | None
    message: str
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.problem is None

    def render(self) -> str:
        """The text a learner reads under the check cell, wrapped for 80 columns."""
        if self.passed:
            mark = PASS_MARK
        elif self.problem == "not-implemented":
            mark = TODO_MARK
        else:
            mark = FAIL_MARK
        lines = [wrap(f"{mark} {self.task}: {self.message}")]
        if self.hint and not self.passed:
            lines.append(wrap(f"Hint: {self.hint}", first="   "))
        return "\n".join(lines)


class SessionSpy:
    """Records every ``aiohttp.ClientSession`` its thread creates while it is active.

    It wraps ``ClientSession.__init__`` while any spy is active, so it sees sessions made
    however the learner imported the class. Each check runs in its own thread and records only
    that thread's sessions, so a check still stuck in a blocked thread cannot pollute the next.
    Afterwards ``close_leaked()`` closes what the learner left open, so a mistake is reported
    once and not as a ResourceWarning later.
    """

    _active: ClassVar[dict[int, SessionSpy]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _original_init: ClassVar[Callable[..., None] | None] = None

    def __init__(self) -> None:
        self.sessions: list[aiohttp.ClientSession] = []
        self._thread = threading.get_ident()

    def __enter__(self) -> SessionSpy:
        with SessionSpy._lock:
            if not SessionSpy._active:
                SessionSpy._install()
            SessionSpy._active[self._thread] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        with SessionSpy._lock:
            SessionSpy._active.pop(self._thread, None)
            if not SessionSpy._active:
                SessionSpy._uninstall()

    @classmethod
    def _install(cls) -> None:
        original = aiohttp.ClientSession.__init__
        cls._original_init = original

        @functools.wraps(original)
        def recording_init(session: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
            original(session, *args, **kwargs)
            spy = cls._active.get(threading.get_ident())
            if spy is not None:
                spy.sessions.append(session)

        aiohttp.ClientSession.__init__ = recording_init  # type: ignore[method-assign]

    @classmethod
    def _uninstall(cls) -> None:
        if cls._original_init is not None:
            aiohttp.ClientSession.__init__ = cls._original_init  # type: ignore[method-assign]
            cls._original_init = None

    @property
    def created(self) -> int:
        return len(self.sessions)

    @property
    def left_open(self) -> int:
        return sum(not session.closed for session in self.sessions)

    async def close_leaked(self) -> None:
        for session in self.sessions:
            if not session.closed:
                await session.close()


CheckBody = Callable[[Any, LocalServer, SessionSpy], Awaitable[str]]


async def call_async(task: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the learner's coroutine function; a plain ``def`` is a mistake worth naming."""
    result = fn(*args)
    if not inspect.isawaitable(result):
        raise Mistake(
            "not-async",
            f"{task}() returned {type(result).__name__} instead of a coroutine.",
            f"define it with `async def {task}(...)` so it can await the requests.",
        )
    value = await result
    expect_loop_not_blocked()
    return value


def expect_loop_not_blocked() -> None:
    """Raise the ``blocked-loop`` Mistake now if the learner's code has blocked the loop.

    ``call_async`` calls it after every call, so a check stops at the first evidence instead
    of running on (a blocking client against a server on the same loop would deadlock).
    """
    obs = current_observation()
    if obs is not None:
        evidence = _blocking_evidence(obs)
        if evidence:
            raise Mistake("blocked-loop", evidence, COMMON_RULES["blocked-loop"].hint)


def expect_one_result_per_url(task: str, results: Any, count: int, each: str) -> list[Any]:
    """``results`` as a list of ``count`` items, or the Mistake that says what came back.

    ``each`` names one expected item ("strings", "dicts") for the message.
    """
    if not isinstance(results, (list, tuple)):
        raise Mistake(
            "wrong-return-type",
            f"{task} returned {type(results).__name__}; expected a list of {count} {each}.",
            "return `await asyncio.gather(...)`, a list in the order of its arguments.",
        )
    if len(results) != count:
        raise Mistake(
            "wrong-count",
            f"{task} returned {len(results)} results for {count} URLs.",
            "return one result per URL.",
        )
    return list(results)


class PeakMemory:
    """The peak of Python's traced memory above its level at the start of the block.

    Works whether or not tracemalloc was already running (a learner may have started it).
    """

    def __enter__(self) -> PeakMemory:
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]
        self.peak = 0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak = tracemalloc.get_traced_memory()[1] - self._start
        if not self._was_tracing:
            tracemalloc.stop()


@contextlib.contextmanager
def open_replaced_by(tracking_open: Callable[..., Any]) -> Iterator[None]:
    """Route every spelling of ``open`` to ``tracking_open`` for the block, then restore it.

    That is ``builtins.open``, ``io.open`` and, in a notebook, IPython's own ``open`` (which
    calls its module's ``io_open``). ``tracking_open`` may call ``ORIGINAL_OPEN`` itself.
    """
    ipython = sys.modules.get("IPython.core.interactiveshell")
    patched = [(builtins, "open"), (io, "open")]
    if ipython is not None and hasattr(ipython, "io_open"):
        patched.append((ipython, "io_open"))
    saved = [(module, name, getattr(module, name)) for module, name in patched]
    for module, name in patched:
        setattr(module, name, tracking_open)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


ORIGINAL_OPEN = builtins.open


async def until_idle(server: LocalServer, patience: float = 3.0) -> None:
    """Wait (at most ``patience`` s) until the server has no request in flight.

    A client can have every byte before the server's handler has returned and its request
    is logged as complete, and a handler whose client gave up may sleep on; read the server's
    request log, or stop it, only once it is idle.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + patience
    while server.stats().in_flight and loop.time() < give_up_at:
        await asyncio.sleep(0.02)


async def fail_log(session: aiohttp.ClientSession, server: LocalServer, key: str) -> list[dict]:
    """The server's call log for ``/fail/{key}/{n}`` (and ``/files/...?key=``): one dict a call."""
    async with session.get(f"{server.url}/fail/{key}") as response:
        return (await response.json())["log"]


def gaps(log: list[dict]) -> list[float]:
    """Seconds between consecutive calls of a ``fail_log``."""
    return [later["t"] - earlier["t"] for earlier, later in itertools.pairwise(log)]


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most ``(start, end)`` intervals open at one moment; an end at a start frees it first."""
    events = sorted(event for start, end in intervals for event in ((start, 1), (end, -1)))
    return max(itertools.accumulate(step for _, step in events), default=0)


def plural(count: int, word: str) -> str:
    """``plural(1, "session")`` → "1 session"; ``plural(3, "session")`` → "3 sessions"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def check(
    task: str | Task, timeout: float = DEFAULT_TIMEOUT_SECONDS, *, takes_path: bool = False
) -> Callable[[CheckBody], Any]:
    """Turn an async check body into the notebook-facing ``check.<task>(learner_fn)``.

    ``task`` is the task's rule table (a bare name only for a check without one). The
    returned function prints the verdict and returns None, so a check cell shows only the
    verdict. ``.diagnose(fn, timeout=...)`` returns the ``Verdict`` for tests, and ``.rules``
    is the task's table. ``takes_path``: the learner passes a file's name (a module the
    notebook wrote), not a function; the check body says what it makes of it.
    """
    table = task if isinstance(task, Task) else None
    name = task.name if isinstance(task, Task) else task
    declared = timeout

    def decorate(body: CheckBody) -> Callable[[Any], None]:
        body.takes_path = takes_path  # type: ignore[attr-defined]

        def diagnose(learner: Any, *, timeout: float | None = None) -> Verdict:
            seconds = stretched(declared) if timeout is None else timeout
            return _run_in_thread(name, table, body, learner, seconds)

        @functools.wraps(body)
        def run(learner: Any) -> None:
            # One write, not print(): print writes the newline separately, and a kernel that
            # flushes in between stores the verdict as two outputs.
            sys.stdout.write(diagnose(learner).render() + "\n")

        run.diagnose = diagnose  # type: ignore[attr-defined]
        run.task = name  # type: ignore[attr-defined]
        run.rules = table  # type: ignore[attr-defined]
        return run

    return decorate


# A check's time limit grows at most this many times on a machine whose every core is busy.
MOST_STRETCH = 4.0


def stretched(seconds: float) -> float:
    """``seconds`` on a machine with a core to spare; longer while other processes keep every
    core busy (the one-minute load average per core, at most ``MOST_STRETCH`` times), so that a
    correct answer on a crowded machine is not stopped as a hang. Rounded to half a second."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on Windows
        return seconds
    return round(seconds * min(MOST_STRETCH, max(1.0, load)) * 2) / 2


# How often the caller's thread looks at the check's loop while it runs.
WATCH_INTERVAL_SECONDS = 0.05
# A loop that stood still this long is stopped: the learner's code never gives it back.
RUNAWAY_SECONDS = 2.5
# ... and its thread spent at least this much CPU in that stretch (unless it sits in a blocking
# call): on a loaded machine a legitimate stretch of work can stand still 2.5 s while the thread
# waits for a core, but a loop that never awaits burns whatever CPU it is given.
RUNAWAY_CPU_SECONDS = 1.5
# How long a reaper waits for a learner's long time.sleep to end before leaving it be.
REAPER_PATIENCE_SECONDS = 600.0
# A stall of the loop this long, on a learner's line, is a blocked loop.
STALL_LIMIT_SECONDS = 0.5
# time.sleep on the loop's thread for at least this long, in all, is a blocked loop.
SLEEP_LIMIT_SECONDS = 0.005
# Waiting on thread locks on the loop's thread for this long, in all, is a blocked loop.
LOCK_LIMIT_SECONDS = 0.05
# A verdict's message and hint are cut to this many characters: one screenful, at most.
MESSAGE_LIMIT, HINT_LIMIT = 480, 320
# How deep Python keeps the origin of coroutines the check's thread creates.
COROUTINE_ORIGIN_DEPTH = 6


class _Stopped(BaseException):
    """Raised into a check's thread whose loop the learner's code never gives back."""


@dataclass
class _Run:
    """One check's run, shared by its thread and the thread that watches it."""

    task: str
    table: Task | None
    quiet: Quiet | None = None
    observation: Observation | None = None
    verdict: Verdict | None = None
    stopped: Verdict | None = None


def _run_in_thread(
    task: str, table: Task | None, body: CheckBody, learner: Any, timeout: float
) -> Verdict:
    """Run the check in a thread with its own loop, so it works inside a running notebook loop.

    This thread watches it: it samples where the learner's code stands when the loop stops
    ticking, and stops a thread whose loop never comes back. Nothing reaches stderr.
    """
    quiet = Quiet()
    run = _Run(task, table, quiet)

    def target() -> None:
        sys.set_coroutine_origin_tracking_depth(COROUTINE_ORIGIN_DEPTH)
        try:
            with asyncio.Runner(loop_factory=RecordingLoop) as runner:
                runner.get_loop().set_exception_handler(quiet.loop_exception_handler)
                run.verdict = runner.run(_guarded(run, body, learner, timeout))
        except _Stopped:
            pass

    with quiet.collecting():
        worker = threading.Thread(target=target, name=f"check-{task}", daemon=True)
        worker.start()
        _watch(worker, run, timeout)
        gc.collect()  # so a coroutine never awaited, or a task never retrieved, is reported now
    verdict = run.stopped or run.verdict
    if verdict is None:
        verdict = Verdict(
            task,
            "blocked-loop",
            f"{task} did not return within {timeout:g} s and could not be stopped.",
            "something blocks the event loop: use `await asyncio.sleep()`, never "
            "`time.sleep()`, and aiohttp, never a blocking HTTP library, inside `async def`.",
        )
    verdict = _judge_effects(verdict, run.observation, quiet)
    return _checked(verdict, table)


def _watch(worker: threading.Thread, run: _Run, timeout: float) -> None:
    """Wait for ``worker``; stop it if its loop stands still for RUNAWAY_SECONDS."""
    give_up_at = time.monotonic() + timeout + BLOCKED_LOOP_GRACE_SECONDS
    while worker.is_alive() and time.monotonic() < give_up_at:
        worker.join(WATCH_INTERVAL_SECONDS)
        obs = run.observation
        if obs is None or not obs.active:
            continue
        stall = sample_stall(obs)
        if _runaway(stall):
            run.stopped = _stop(worker, run.task, obs, stall)
            return


def _runaway(stall: Stall | None) -> bool:
    """Whether the loop has stood still long enough, on the learner's own work, to be stopped."""
    if stall is None or not stall.busy or stall.seconds < RUNAWAY_SECONDS:
        return False
    return stall.blocking or stall.cpu is None or stall.cpu >= RUNAWAY_CPU_SECONDS


def _stop(worker: threading.Thread, task: str, obs: Observation, stall: Stall) -> Verdict:
    """The verdict for a loop that never came back, after raising ``_Stopped`` into it."""
    in_call = obs.in_call
    where = f" at {stall.where}" if stall.where else ""
    blocking = {"time.sleep": "time.sleep()", "socket": "a blocking socket call",
                "lock-wait": "waiting on a thread lock"}  # fmt: skip
    if in_call is not None and in_call[0] in blocking:
        what = blocking[in_call[0]]
        verdict = Verdict(
            task,
            "blocked-loop",
            f"{what} had blocked the event loop for {stall.seconds:.1f} s{where}, so the "
            "check stopped it.",
            COMMON_RULES["blocked-loop"].hint,
        )
    else:
        verdict = Verdict(
            task,
            "runaway-loop",
            f"the event loop stood still for {stall.seconds:.1f} s while your code ran{where}: "
            "it never awaited anything that waits, so the check stopped it.",
            COMMON_RULES["runaway-loop"].hint,
        )
    _interrupt(worker, obs)
    return verdict


def _interrupt(worker: threading.Thread, obs: Observation) -> None:
    """Raise ``_Stopped`` into ``worker`` once it runs Python code again.

    An exception raised into a thread that sits in a blocking C call stays pending, and a
    pending one slows every other thread of the process, so it is raised only after the call
    returns: a blocking socket is shut down to make it return; a long ``time.sleep`` or lock
    wait is waited out by a reaper thread, after the verdict is given.
    """

    def stop_when_free(patience: float) -> bool:
        give_up_at = time.monotonic() + patience
        while worker.is_alive() and time.monotonic() < give_up_at:
            in_call = obs.in_call
            if in_call is None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(worker.ident or 0), ctypes.py_object(_Stopped)
                )
                worker.join(BLOCKED_LOOP_GRACE_SECONDS)
                return True
            owner = getattr(in_call[3], "__self__", None)
            if isinstance(owner, socket.socket):
                with contextlib.suppress(OSError):
                    owner.shutdown(socket.SHUT_RDWR)
            time.sleep(WATCH_INTERVAL_SECONDS)
        return not worker.is_alive()

    if not stop_when_free(BLOCKED_LOOP_GRACE_SECONDS):
        threading.Thread(
            target=stop_when_free, args=(REAPER_PATIENCE_SECONDS,), name="check-reaper", daemon=True
        ).start()


# Verdicts that already name the root cause: nothing seen elsewhere in the run replaces them.
_DEFINITIVE = ("not-implemented", "not-callable", "runaway-loop", "asyncio-run-in-loop")


def _judge_effects(verdict: Verdict, obs: Observation | None, quiet: Quiet) -> Verdict:
    """What the whole run showed outweighs what one step concluded: a root cause first."""
    if verdict.problem in _DEFINITIVE:
        return verdict
    task = verdict.task
    if obs is not None and verdict.problem != "blocked-loop":
        blocked = _blocking_evidence(obs)
        if blocked:
            return Verdict(task, "blocked-loop", blocked, COMMON_RULES["blocked-loop"].hint)
    unawaited = _never_awaited(quiet)
    if unawaited:
        return Verdict(task, "missing-await", unawaited, COMMON_RULES["missing-await"].hint)
    if verdict.passed or verdict.problem in ("timeout", "raised"):
        lost = [exc for exc in quiet.lost_task_errors() if learner_line(exc) is not None]
        if lost:
            return Verdict(
                task,
                "task-exception-lost",
                f"a task your code started failed with {exception_text(lost[0])} "
                f"({learner_line(lost[0])}), and nothing awaited it.",
                COMMON_RULES["task-exception-lost"].hint,
            )
    return verdict


def _blocking_evidence(obs: Observation) -> str:
    """The sentence that says how the learner's code blocked the loop, or ''."""
    sleeps = obs.blocking_calls("time.sleep")
    slept = sum(call.seconds for call in sleeps)
    if sleeps and slept >= SLEEP_LIMIT_SECONDS:
        return f"{sleeps[0].describe()}: while it sleeps, no other task can run."
    locks = obs.blocking_calls("lock-wait")
    if locks and sum(call.seconds for call in locks) >= LOCK_LIMIT_SECONDS:
        longest = max(locks, key=lambda call: call.seconds)
        return f"{longest.describe()}: no other task could run meanwhile."
    sockets = obs.blocking_calls("socket")
    if sockets:
        return (
            f"{sockets[0].describe()} on the event loop's thread: a blocking HTTP "
            "library (requests, urllib) stops every other task while it waits."
        )
    stalls = [
        s for s in obs.stalls if s.busy and s.where is not None and s.seconds >= STALL_LIMIT_SECONDS
    ]
    if stalls:
        return (
            f"the event loop stood still for {stalls[0].seconds:.1f} s at {stalls[0].where}: "
            "no other task could run meanwhile."
        )
    return ""


def _never_awaited(quiet: Quiet) -> str:
    """A sentence naming a coroutine the learner's code never awaited, or ''."""
    for message in quiet.never_awaited():
        if "Coroutine created at" not in message:
            continue  # made before the check ran: not this answer's
        name = message.split("'")[1] if message.count("'") >= 2 else "a coroutine"
        where = _origin_line(message)
        if "<locals>" in name and where:  # a function the check handed over: quote the call
            return f"{where} calls a coroutine function without `await`, so it never ran."
        return (
            f"`{name}()` was called without `await`{' at ' + where if where else ''}, so it "
            "never ran."
        )
    return ""


def _origin_line(message: str) -> str:
    """The learner's line in a never-awaited warning's "Coroutine created at" trace."""
    lines = message.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if line.startswith('File "'):
            filename = line.split('"')[1]
            if is_learner_file(filename):
                lineno = int(line.split("line ")[1].split(",")[0])
                function = line.rsplit(" in ", 1)[-1]
                return str(learner_line_at(filename, function, lineno))
    return ""


def _checked(verdict: Verdict, table: Task | None) -> Verdict:
    """The verdict, cut to size, or a loud one if the check used an undeclared problem."""
    if table is not None and verdict.problem is not None and verdict.problem not in table.rules:
        return Verdict(
            verdict.task,
            f"undeclared:{verdict.problem}",
            f"(a bug in the check: {verdict.problem!r} is not in its rule table) "
            + verdict.message,
            verdict.hint,
        )
    return Verdict(
        verdict.task,
        verdict.problem,
        _cut(verdict.message, MESSAGE_LIMIT),
        _cut(verdict.hint, HINT_LIMIT),
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


async def _guarded(run: _Run, body: CheckBody, learner: Any, timeout: float) -> Verdict:
    task = run.task
    if not callable(learner) and not getattr(body, "takes_path", False):
        return Verdict(
            task, "not-callable", f"expected your {task}, got {type(learner).__name__}."
        )
    server = start_server()
    spy = SessionSpy()
    run.observation = obs = Observation(threading.get_ident(), quiet=run.quiet)
    if server.thread_ident is not None:
        obs.quiet_threads.add(server.thread_ident)
    deadline = asyncio.timeout(timeout)
    try:
        with spy, observing(obs):
            async with deadline:
                message = await body(learner, server, spy)
        return Verdict(task, None, message)
    except NotImplementedError:
        return Verdict(
            task,
            "not-implemented",
            "not implemented yet. Replace the `raise NotImplementedError` line with your "
            "code, then run this cell again.",
        )
    except Mistake as mistake:
        return Verdict(task, mistake.problem, mistake.message, mistake.hint)
    except TimeoutError as exc:
        if not deadline.expired():  # a timeout of the learner's own code fired, not ours
            problem, message, hint = explain(exc)
            return Verdict(task, problem, f"{task} {message}", hint)
        return Verdict(
            task,
            "timeout",
            f"{task} was still running after {timeout:g} s, so the check stopped it.",
            COMMON_RULES["timeout"].hint,
        )
    except Exception as exc:
        problem, message, hint = explain(exc)
        return Verdict(task, problem, f"{task} {message}", hint)
    finally:
        await spy.close_leaked()
        server.stop()
