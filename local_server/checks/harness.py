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
import functools
import inspect
import io
import itertools
import sys
import sysconfig
import threading
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiohttp

from ..runner import LocalServer, start_server

DEFAULT_TIMEOUT_SECONDS = 10.0
# Extra time a blocked event loop gets before the check gives up on its thread.
BLOCKED_LOOP_GRACE_SECONDS = 5.0


class Mistake(Exception):
    """A specific mistake the check observed, with a hint toward the fix."""

    def __init__(self, problem: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.hint = hint


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
        """The text a learner reads under the check cell."""
        if self.passed:
            return f"✅ {self.task}: {self.message}"
        if self.problem == "not-implemented":
            return f"⏳ {self.task}: {self.message}"
        lines = [f"❌ {self.task}: {self.message}"]
        if self.hint:
            lines.append(f"   Hint: {self.hint}")
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
    return await result


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


def check(task: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Callable[[CheckBody], Any]:
    """Turn an async check body into the notebook-facing ``check.<task>(learner_fn)``.

    The returned function prints the verdict and returns None, so a check cell shows only
    the verdict. ``.diagnose(fn, timeout=...)`` returns the ``Verdict`` for tests.
    """

    def decorate(body: CheckBody) -> Callable[[Any], None]:
        def diagnose(learner: Any, *, timeout: float = timeout) -> Verdict:
            return _run_in_thread(task, body, learner, timeout)

        @functools.wraps(body)
        def run(learner: Any) -> None:
            # One write, not print(): print writes the newline separately, and a kernel that
            # flushes in between stores the verdict as two outputs.
            sys.stdout.write(diagnose(learner).render() + "\n")

        run.diagnose = diagnose  # type: ignore[attr-defined]
        run.task = task  # type: ignore[attr-defined]
        return run

    return decorate


def _run_in_thread(task: str, body: CheckBody, learner: Any, timeout: float) -> Verdict:
    """Run the check in a thread with its own loop, so it works inside a running notebook loop."""
    outcome: list[Verdict] = []
    worker = threading.Thread(
        target=lambda: outcome.append(asyncio.run(_guarded(task, body, learner, timeout))),
        name=f"check-{task}",
        daemon=True,
    )
    worker.start()
    worker.join(timeout + BLOCKED_LOOP_GRACE_SECONDS)
    if outcome:
        return outcome[0]
    return Verdict(
        task,
        "blocked-loop",
        f"{task} did not return within {timeout:g} s and could not be stopped.",
        "something blocks the event loop: use `await asyncio.sleep()`, never `time.sleep()`, "
        "and aiohttp, never a blocking HTTP library, inside `async def`.",
    )


# Frames from these places are not the learner's: the standard library, installed packages,
# the course's own package (its checks and their probe handlers included) and code generated
# with exec() (from Python 3.13, unittest.mock's autospec wrappers run as "<string>").
_NOT_LEARNER = (
    sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"],
    str(Path(__file__).resolve().parent.parent),
    "<string>",
)


def learner_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback in the learner's own code, if any."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(_NOT_LEARNER)
    ]
    return frames[-1] if frames else None


def _where_in_learner(exc: BaseException) -> str:
    """'the error came from line N of f().' for the learner's innermost frame."""
    frame = learner_frame(exc)
    if frame is None:
        return ""
    return f"the error came from line {frame.lineno} of {frame.name}()."


async def _guarded(task: str, body: CheckBody, learner: Any, timeout: float) -> Verdict:
    if not callable(learner):
        return Verdict(
            task, "not-callable", f"expected your {task}, got {type(learner).__name__}."
        )
    server = start_server()
    spy = SessionSpy()
    try:
        with spy:
            message = await asyncio.wait_for(body(learner, server, spy), timeout)
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
    except TimeoutError:
        return Verdict(
            task,
            "timeout",
            f"{task} was still running after {timeout:g} s, so the check stopped it.",
            "a request that never completes, or an await on something that never happens? "
            "Read every response inside `async with` and check what you await.",
        )
    except Exception as exc:
        return Verdict(
            task, "raised", f"{task} raised {type(exc).__name__}: {exc}", _where_in_learner(exc)
        )
    finally:
        await spy.close_leaked()
        server.stop()
