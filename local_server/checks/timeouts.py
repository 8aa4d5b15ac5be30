"""Checks for exercise 03, timeouts: ``from local_server.checks import timeouts as check``.

Each check calls the learner's function against endpoints that are slow on purpose
(``/slow/headers/{s}``: nothing for s seconds; ``/slow/body/{s}?chunks=N``: headers at once,
then N lines over s seconds) and judges what it did: returned, raised which exception, and
when. A call that is still running well past the limit it was given is stopped by the check
itself (``run_bounded``), and that is reported as "no timeout", not as a hang of the check.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..runner import LocalServer
from .harness import Mistake, SessionSpy, call_async, check, plural

# The limit each task is given: a deadline (task 1), patience (task 2), a longest silence (3).
LIMIT_SECONDS = 0.25
# How long past its limit a call may run before the check stops it itself.
GRACE_SECONDS = 0.6
# How long a cancelled call gets to unwind before the check moves on without it.
UNWIND_SECONDS = 1.0
# A server that never answers in time: far longer than any limit plus grace.
NEVER_SECONDS = 5
# A healthy but long body: a line every 0.05 s, 0.6 s in all. No silence comes near the limit
# (a loaded machine can delay a line by well over 0.1 s without a false timeout), yet
# the whole takes more than twice the limit.
STEADY_LINES = 12
STEADY_SECONDS = 0.6
STEADY_INTERVAL = STEADY_SECONDS / STEADY_LINES
STEADY_PATH = f"/slow/body/{STEADY_SECONDS}?chunks={STEADY_LINES}"
# Headers at once, then silence for NEVER_SECONDS / 2 before the first line.
STALLING_PATH = f"/slow/body/{NEVER_SECONDS}?chunks=2"
SILENT_PATH = f"/slow/headers/{NEVER_SECONDS}"

ANSWERED = "answered"
TOO_SLOW = "too slow to answer"
STALLED = "stalled mid-body"
LABELS = (ANSWERED, TOO_SLOW, STALLED)

CLIENT_TIMEOUT_TYPE_ERROR = "do not inherit from BaseException"


@dataclass
class Run:
    """How one call of the learner's function ended."""

    finished: bool
    seconds: float
    value: Any = None
    error: BaseException | None = None


async def run_bounded(task: str, learner: Any, args: tuple, give_up_after: float) -> Run:
    """Call ``learner(*args)``; stop it after ``give_up_after`` seconds if it is still running.

    A stub's NotImplementedError and the harness's own ``Mistake`` (for a plain ``def``) are
    raised again, so the harness reports them as usual; any other exception is returned.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    call = asyncio.ensure_future(call_async(task, learner, *args))
    done, _ = await asyncio.wait({call}, timeout=give_up_after)
    seconds = loop.time() - started
    if not done:
        call.cancel()
        await asyncio.wait({call}, timeout=UNWIND_SECONDS)
        return Run(False, give_up_after)
    if call.cancelled():
        raise Mistake(
            "cancelled",
            f"{task} ended with CancelledError: something cancelled your own code.",
            "to give up after a while, use a timeout (it raises TimeoutError); do not cancel "
            "the task you are running in.",
        )
    error = call.exception()
    if isinstance(error, (NotImplementedError, Mistake)):
        raise error
    return Run(True, seconds, None if error else call.result(), error)


def _caused_by_timeout(error: BaseException) -> bool:
    """True when a TimeoutError is the error or anywhere in its cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _judge_unexpected_error(task: str, error: BaseException) -> None:
    """Name the timeout-related mistakes behind an error; let anything else reach the harness."""
    if isinstance(error, TypeError) and CLIENT_TIMEOUT_TYPE_ERROR in str(error):
        raise Mistake(
            "except-clienttimeout",
            f"{task} raised TypeError: {error}. An `except` clause names something that is not "
            "an exception, most likely `aiohttp.ClientTimeout`, the settings class: Python "
            "raises TypeError as soon as an exception reaches that clause.",
            "catch `TimeoutError` instead: every timeout aiohttp raises is one.",
        )
    if _caused_by_timeout(error):
        raise Mistake(
            "wrong-exception",
            f"{task} turned the timeout into {type(error).__name__}; the caller expects a "
            "TimeoutError.",
            "let the TimeoutError propagate (or re-raise it with a bare `raise`).",
        )
    raise error


def _stopped_by_the_check(task: str, waited: float, what: str, hint: str) -> Mistake:
    return Mistake(
        "no-timeout",
        f"{task} was still waiting after {waited:g} s, with a limit of {LIMIT_SECONDS:g} s, "
        f"for {what}; nothing stopped the request, so the check stopped it itself.",
        hint,
    )


def _sessions_limit_only_connecting(spy: SessionSpy) -> bool:
    """A session whose ClientTimeout sets a short connect/sock_connect and nothing that reads."""
    short = LIMIT_SECONDS + GRACE_SECONDS

    def is_short(value: float | None) -> bool:
        return value is not None and value < short

    return any(
        (is_short(t.connect) or is_short(t.sock_connect))
        and not is_short(t.total)
        and not is_short(t.sock_read)
        for t in (session.timeout for session in spy.sessions)
    )


# --- Task 1: fetch_with_deadline ---------------------------------------------------------------


@check("fetch_with_deadline")
async def fetch_with_deadline(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The body within ``deadline`` seconds, whatever the server does, or a TimeoutError."""
    task = "fetch_with_deadline"
    token = secrets.token_hex(4)
    quick = await run_bounded(task, learner, (f"{server.url}/get?probe={token}", 1.0), 3.0)
    _expect_body(task, quick, token)

    silent = await run_bounded(
        task, learner, (server.url + SILENT_PATH, LIMIT_SECONDS), LIMIT_SECONDS + GRACE_SECONDS
    )
    if not silent.finished:
        if _sessions_limit_only_connecting(spy):
            raise Mistake(
                "wrong-field",
                f"{task} was still waiting after {silent.seconds:g} s for a server that "
                "accepted the connection at once and then sent nothing; the check stopped it "
                "itself. Your ClientTimeout only limits connecting (connect / sock_connect).",
                "a deadline for the whole request, answer and body included, is "
                "`ClientTimeout(total=deadline)`.",
            )
        raise _stopped_by_the_check(
            task,
            silent.seconds,
            "a server that never answered",
            "give the session `timeout=aiohttp.ClientTimeout(total=deadline)`.",
        )
    _expect_timeout(task, silent, "a server that never answered")

    steady = await run_bounded(
        task, learner, (server.url + STEADY_PATH, LIMIT_SECONDS), STEADY_SECONDS + GRACE_SECONDS
    )
    if not steady.finished:
        raise _stopped_by_the_check(
            task,
            steady.seconds,
            f"a body that takes {STEADY_SECONDS:g} s",
            "give the session `timeout=aiohttp.ClientTimeout(total=deadline)`.",
        )
    if steady.error is None and _is_complete_steady_body(steady.value):
        raise Mistake(
            "wrong-field",
            f"{task} returned a body that took {STEADY_SECONDS:g} s to arrive, with a "
            f"{LIMIT_SECONDS:g} s deadline. The server sent a line every {STEADY_INTERVAL:g} s, "
            "so a limit on each silence (sock_read) never fired.",
            "sock_read limits the gap between two pieces of data; a deadline for the whole "
            "request is `total`.",
        )
    _expect_timeout(task, steady, f"a body that takes {STEADY_SECONDS:g} s")
    return (
        "the body came back in time; a server that never answered and a body that outlasted "
        "the deadline both ended in a TimeoutError that reached the caller."
    )


def _expect_body(task: str, run: Run, token: str) -> None:
    if not run.finished:
        raise Mistake(
            "hangs-on-fast-answer",
            f"{task} did not return within {run.seconds:g} s for a server that answers at once.",
            "read the body inside `async with session.get(url) as response:` and return it.",
        )
    if run.error is not None:
        _judge_unexpected_error(task, run.error)
    if not isinstance(run.value, str):
        raise Mistake(
            "not-text",
            f"{task} returned {type(run.value).__name__}; the task asks for the body as text.",
            "return `await response.text()`.",
        )
    if token not in run.value:
        raise Mistake(
            "wrong-body",
            f"{task} returned {run.value[:60]!r}, not the body of the URL it was given.",
            "return `await response.text()` of a GET to `url`.",
        )


def _is_complete_steady_body(value: Any) -> bool:
    return isinstance(value, str) and f"chunk {STEADY_LINES} of {STEADY_LINES}" in value


def _expect_timeout(task: str, run: Run, what: str) -> None:
    """The run must have raised a TimeoutError (any subclass)."""
    if run.error is None:
        raise Mistake(
            "swallowed-timeout",
            f"{task} returned {run.value!r:.60} for {what}, as if nothing had gone wrong: the "
            "timeout was caught and dropped, so the caller cannot tell it from an answer.",
            "let the TimeoutError reach the caller: remove the `except` that catches it, or "
            "re-raise it with a bare `raise` after logging.",
        )
    if not isinstance(run.error, TimeoutError):
        _judge_unexpected_error(task, run.error)


# --- Task 2: fetch_and_explain -----------------------------------------------------------------


@check("fetch_and_explain")
async def fetch_and_explain(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Says "answered", "too slow to answer" or "stalled mid-body"; other errors propagate."""
    task = "fetch_and_explain"
    quick = await run_bounded(task, learner, (f"{server.url}/get", LIMIT_SECONDS), 3.0)
    _expect_label(task, quick, ANSWERED, "a server that answers at once")

    silent = await _explained(task, learner, server.url + SILENT_PATH)
    if not silent.finished:
        raise _stopped_by_the_check(
            task,
            silent.seconds,
            "a server that never answered",
            "give the session `timeout=aiohttp.ClientTimeout(sock_read=patience)`: it fires "
            "when the server stays silent that long.",
        )
    _expect_label(task, silent, TOO_SLOW, "a server that sent nothing at all")

    stalling = await _explained(task, learner, server.url + STALLING_PATH)
    if not stalling.finished:
        raise _stopped_by_the_check(
            task,
            stalling.seconds,
            "a body that had stopped coming",
            "`sock_read=patience` also covers the body: read it (`await response.read()`) "
            "inside the `try`.",
        )
    if stalling.error is None and stalling.value == ANSWERED:
        if stalling.seconds < LIMIT_SECONDS * 0.8:
            raise Mistake(
                "body-not-read",
                f"{task} said {ANSWERED!r} as soon as the headers arrived, but the body then "
                "stalled: without reading the body you cannot know it will come.",
                "read the body (`await response.read()`) before deciding it was answered.",
            )
        raise Mistake(
            "swallowed-timeout",
            f"{task} said {ANSWERED!r} for a body that stalled: a timeout fired and was dropped.",
            f"return {STALLED!r} when a timeout fires while you read the body.",
        )
    if stalling.error is None and stalling.value == TOO_SLOW:
        raise Mistake(
            "cannot-tell-apart",
            f"{task} said {TOO_SLOW!r} for a server that sent its headers at once and then "
            f"stalled in the body: it should be {STALLED!r}.",
            "note how far the request got: a timeout before `session.get(...)` returns means "
            "no answer; one while you read the body means a stall. Keep a `stage` variable, "
            "or use two try blocks.",
        )
    _expect_label(task, stalling, STALLED, "a body that stopped after the headers")

    steady = await _explained_steadily(task, learner, server.url + STEADY_PATH)
    if steady.finished and steady.error is None and steady.value in (TOO_SLOW, STALLED):
        raise Mistake(
            "wrong-field",
            f"{task} said {steady.value!r} for a body that arrived steadily, a line every "
            f"{STEADY_INTERVAL:g} s for {STEADY_SECONDS:g} s: it never went quiet for "
            f"{LIMIT_SECONDS:g} s. A deadline on the whole request (total) cut a healthy answer.",
            "patience is about silence: `ClientTimeout(sock_read=patience)`, with no `total` "
            "that a long body could reach.",
        )
    _expect_label(task, steady, ANSWERED, f"a body that arrived steadily over {STEADY_SECONDS:g} s")

    await _expect_other_errors_propagate(task, learner, server)
    return (
        "a silent server was 'too slow to answer', a body that stopped was 'stalled mid-body', "
        "a long but steady body was 'answered', and a connection reset was not mistaken for "
        "a timeout."
    )


async def _explained(task: str, learner: Any, url: str) -> Run:
    return await run_bounded(task, learner, (url, LIMIT_SECONDS), LIMIT_SECONDS + GRACE_SECONDS)


async def _explained_steadily(task: str, learner: Any, url: str) -> Run:
    return await run_bounded(task, learner, (url, LIMIT_SECONDS), STEADY_SECONDS + GRACE_SECONDS)


def _expect_label(task: str, run: Run, expected: str, what: str) -> None:
    if not run.finished:
        raise Mistake(
            "hangs",
            f"{task} did not return within {run.seconds:g} s for {what}.",
            "read the body inside `async with session.get(url) as response:`.",
        )
    if run.error is not None:
        if isinstance(run.error, TimeoutError):
            raise Mistake(
                "timeout-escaped",
                f"{type(run.error).__name__} escaped from {task} for {what}: the `except` "
                "clause did not catch it.",
                "catch `TimeoutError`, which every timeout is: `total` raises the builtin "
                "TimeoutError, `sock_read` aiohttp.SocketTimeoutError, `connect` "
                "aiohttp.ConnectionTimeoutError. `except aiohttp.ClientError` misses the first; "
                "`except aiohttp.ConnectionTimeoutError` misses the other two.",
            )
        _judge_unexpected_error(task, run.error)
    if run.value not in LABELS:
        raise Mistake(
            "unknown-label",
            f"{task} returned {run.value!r:.60} for {what}; expected one of {list(LABELS)}.",
            f"return exactly {ANSWERED!r}, {TOO_SLOW!r} or {STALLED!r}.",
        )
    if run.value != expected:
        stages = (
            "a timeout before the response headers arrive means no answer; one while reading "
            "the body means a stall."
        )
        if run.value == ANSWERED:
            raise Mistake(
                "swallowed-timeout",
                f"{task} said {ANSWERED!r} for {what}; expected {expected!r}: a timeout fired "
                "and was dropped.",
                f"never report {ANSWERED!r} when a timeout fired: {stages}",
            )
        raise Mistake(
            "wrong-label",
            f"{task} said {run.value!r} for {what}; expected {expected!r}.",
            stages,
        )


async def _expect_other_errors_propagate(task: str, learner: Any, server: LocalServer) -> None:
    reset = await run_bounded(task, learner, (f"{server.url}/fault/reset", LIMIT_SECONDS), 3.0)
    if reset.finished and reset.error is None and reset.value in LABELS:
        raise Mistake(
            "catches-too-much",
            f"a connection reset (aiohttp.ClientOSError, not a timeout) was reported as "
            f"{reset.value!r}: the `except` clause catches more than timeouts.",
            "catch `TimeoutError` only (`except Exception`, `OSError` or `aiohttp.ClientError` "
            "also catch connection errors, which are not slowness) and let the rest propagate.",
        )


# --- Task 3: stream_lines ----------------------------------------------------------------------


@dataclass
class LineRecorder:
    """The ``handle_line`` callback the check passes: when each line was handed over."""

    started: float
    lines: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __call__(self, line: Any) -> None:
        self.lines.append(line)
        self.times.append(asyncio.get_running_loop().time() - self.started)


@check("stream_lines")
async def stream_lines(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Every line handed over as it arrives, however long the stream; a stall raises."""
    task = "stream_lines"
    recorder = LineRecorder(asyncio.get_running_loop().time())
    steady = await run_bounded(
        task,
        learner,
        (server.url + STEADY_PATH, LIMIT_SECONDS, recorder),
        STEADY_SECONDS + GRACE_SECONDS,
    )
    _expect_whole_stream(task, steady, recorder)

    recorder = LineRecorder(asyncio.get_running_loop().time())
    stalled = await run_bounded(
        task,
        learner,
        (server.url + STALLING_PATH, LIMIT_SECONDS, recorder),
        LIMIT_SECONDS + GRACE_SECONDS,
    )
    if not stalled.finished:
        raise _stopped_by_the_check(
            task,
            stalled.seconds,
            "a stream that had gone silent",
            "`aiohttp.ClientTimeout(total=None, sock_read=max_silence)` fires when no data "
            "arrives for max_silence seconds.",
        )
    _expect_timeout(task, stalled, "a stream that went silent")
    return (
        f"{STEADY_LINES} lines handed over as they arrived over {STEADY_SECONDS:g} s, more "
        "than twice the limit; a stream that went silent ended in a TimeoutError."
    )


def _expect_whole_stream(task: str, run: Run, recorder: LineRecorder) -> None:
    expected = [f"chunk {i} of {STEADY_LINES}" for i in range(1, STEADY_LINES + 1)]
    if not run.finished:
        raise Mistake(
            "hangs",
            f"{task} did not return within {run.seconds:g} s for a stream that ends after "
            f"{STEADY_SECONDS:g} s.",
            "iterate over `response.content` inside `async with session.get(url) as "
            "response:`; the loop ends with the body.",
        )
    if run.error is not None:
        if isinstance(run.error, TimeoutError):
            raise Mistake(
                "wrong-field",
                f"{task} was stopped by {type(run.error).__name__} after "
                f"{plural(len(recorder.lines), 'line')} of a healthy stream that sent a line "
                f"every {STEADY_INTERVAL:g} s: a deadline on the whole request (total) cut it.",
                "a stream may take as long as it needs: `total=None`, and "
                "`sock_read=max_silence` to catch a stall.",
            )
        _judge_unexpected_error(task, run.error)
    if len(recorder.lines) < STEADY_LINES and run.value != STEADY_LINES:
        raise Mistake(
            "wrong-field",
            f"{task} returned after {plural(len(recorder.lines), 'line')} of "
            f"{STEADY_LINES}, without an error, from a healthy stream: a timeout cut it and "
            "was dropped.",
            "a stream may take as long as it needs: `total=None`, and "
            "`sock_read=max_silence` to catch a stall; and let the TimeoutError propagate.",
        )
    if any(isinstance(line, (bytes, bytearray)) for line in recorder.lines):
        raise Mistake(
            "not-text",
            f"{task} handed over bytes; the task asks for each line as text.",
            "decode each line: `line.decode(response.get_encoding())`.",
        )
    handed = [line.rstrip("\r\n") if isinstance(line, str) else line for line in recorder.lines]
    if handed != expected:
        raise Mistake(
            "wrong-lines",
            f"{task} handed over {handed[:3]!r:.80}...; expected the lines of the body, one "
            f"call per line ({expected[0]!r}, {expected[1]!r}, ...).",
            "`async for line in response.content:` yields one line at a time.",
        )
    if run.value != STEADY_LINES:
        raise Mistake(
            "wrong-count",
            f"{task} returned {run.value!r:.40}; expected the number of lines, {STEADY_LINES}.",
            "count the lines you hand over and return the count.",
        )
    if recorder.times[0] > STEADY_SECONDS * 0.8:
        raise Mistake(
            "not-streamed",
            f"{task} handed over its first line only after the whole body had arrived: it "
            "read everything, then split it.",
            "iterate over `response.content` (line by line) instead of `await "
            "response.text()`, and hand each line over as it comes.",
        )
