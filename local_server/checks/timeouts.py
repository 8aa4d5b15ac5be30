"""Checks for exercise 03, timeouts: ``from local_server.checks import timeouts as check``.

Each check serves its own scenarios (``PlanServer``: each URL plays a plan of steps, such as
"nothing for 0.45 s, then the headers, then a line every 0.05 s", "the headers, one line,
then silence", "a reset") and calls the learner's function on several of them at once, with
seeded limits that differ from the example's quarter second. It judges what came back, what
was raised and when, and how many requests the server received; and it notes every limit
the learner's code set (aiohttp's ``total`` and ``sock_read``, ``asyncio.timeout``,
``wait_for``: ``Limits``), when it was set and whether it fired, so a verdict names the
mechanism seen rather than guessing it. A call still running well past its limit is stopped
by the check itself (``run_bounded``).

Durations are compared with wall time only with generous bounds: a correct timeout ends a
call at its limit, and a call counts as late only past ``LATE_FACTOR`` times it, and then only
with evidence (no limit at the deadline, a second request) unless past three times it. A
timing verdict reached while the check's ticker saw the loop stand still (a loaded machine)
is not trusted: the batch of calls runs again (``judged_with_retries``).
"""

from __future__ import annotations

import ast
import asyncio
import asyncio.tasks
import asyncio.timeouts
import builtins
import contextlib
import contextvars
import linecache
import random
import secrets
import socket
import struct
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import client_proto, web
from aiohttp.helpers import TimeoutHandle

from ..runner import LocalServer
from ..serving import refused_url, serve
from . import observe
from .evidence import clip, exception_text, is_learner_file, learner_line
from .harness import Mistake, SessionSpy, call_async, check, plural
from .rules import Rule, Task

SEED = 0
# A timeout that works ends the call at its limit; one that ends it later than this many
# times the limit did not hold (a retry doubles it; a loaded machine adds far less).
LATE_FACTOR = 1.8
# A call still running this long after LATE_FACTOR x its limit is stopped by the check.
STOP_GRACE_SECONDS = 1.0
# How long a cancelled call gets to unwind before the check moves on without it.
UNWIND_SECONDS = 1.0
# A handler told to wait for the client gives up after this long.
NEVER_SECONDS = 6.0

ANSWERED = "answered"
TOO_SLOW = "too slow to answer"
STALLED = "stalled mid-body"
LABELS = (ANSWERED, TOO_SLOW, STALLED)

CLIENT_TIMEOUT_TYPE_ERROR = "do not inherit from BaseException"
UTF8_TEXT = "text/plain; charset=utf-8"


# --- the scenario server ---------------------------------------------------------------------

Step = tuple[Any, ...]


@dataclass
class PlanRecord:
    """What the server did for one plan: requests received, bytes sent, whether it ended."""

    requests: int = 0
    sent: int = 0
    complete: bool = False
    gone: bool = False  # the client went away before the plan ended
    waited_out: bool = False  # an "until" step's condition never came true


class PlanServer:
    """An app whose ``/plan/{token}`` plays a plan of steps, recorded per token.

    Steps: ``("sleep", s)``; ``("head", content_type, content_length or None)``;
    ``("write", bytes)``; ``("hold",)`` (wait until the client goes away, then stop);
    ``("reset",)`` (abort the connection with a TCP RST); ``("until", condition, seconds)``
    (wait until ``condition()`` is true, at most ``seconds``). A plan that runs to its end
    finishes the body.
    """

    def __init__(self) -> None:
        self.plans: dict[str, list[Step]] = {}
        self.records: dict[str, PlanRecord] = {}
        self.url = ""

    def add(self, plan: list[Step]) -> tuple[str, PlanRecord]:
        token = secrets.token_hex(6)
        self.plans[token] = plan
        record = self.records[token] = PlanRecord()
        return f"{self.url}/plan/{token}", record

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token not in self.plans:
            raise web.HTTPNotFound(text="no such plan: request the URL the check gave")
        plan, record = self.plans[token], self.records[token]
        record.requests += 1
        response: web.StreamResponse | None = None
        try:
            for step in plan:
                kind = step[0]
                if kind == "sleep":
                    await asyncio.sleep(step[1])
                elif kind == "head":
                    response = web.StreamResponse(headers={"Content-Type": step[1]})
                    if step[2] is not None:
                        response.content_length = step[2]
                    await response.prepare(request)
                elif kind == "write":
                    assert response is not None
                    await response.write(step[1])
                    record.sent += len(step[1])
                elif kind == "hold":
                    await _until_gone(request)
                    record.gone = True
                    return response or web.Response()
                elif kind == "until":
                    record.waited_out |= not await _until(step[1], step[2])
                elif kind == "reset":
                    _reset(request)
                    return response or web.Response()
            if response is not None:
                await response.write_eof()
            record.complete = True
        except ConnectionError:
            record.gone = True  # the client went away: what it saw is what counts
        return response or web.Response()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[PlanServer]:
        app = web.Application()
        app.router.add_get("/plan/{token}", self._handle)
        async with serve(app, shutdown_timeout=0.3) as url:
            self.url = url
            yield self


async def _until_gone(request: web.Request) -> None:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + NEVER_SECONDS
    while loop.time() < give_up_at:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.02)


async def _until(condition: Callable[[], bool], seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + seconds
    while not condition():
        if loop.time() >= give_up_at:
            return False
        await asyncio.sleep(0.01)
    return True


def _reset(request: web.Request) -> None:
    """Abort the connection so the client gets a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def lines_every(lines: Iterable[bytes], gap: float) -> list[Step]:
    """Write each of ``lines``, ``gap`` seconds apart."""
    steps: list[Step] = []
    for line in lines:
        steps += [("write", line), ("sleep", gap)]
    return steps


# --- the limits the learner's code set -------------------------------------------------------

# The learner call a timer belongs to (its tasks inherit it, so do its connections' callbacks).
_CALL: contextvars.ContextVar[int | None] = contextvars.ContextVar("check_call", default=None)
_KIND_NAMES = {
    "total": "aiohttp's `total`",
    "sock_read": "`sock_read`",
    "connect": "`connect`/`sock_connect`",
    "asyncio.timeout": "`asyncio.timeout()`",
    "wait_for": "`asyncio.wait_for()`",
}


@dataclass
class Limit:
    """One timer a learner call set: what kind, for how long, and whether it fired."""

    kind: str
    seconds: float
    set_at: float
    call: int
    handle: asyncio.TimerHandle | None = None
    fired_at: float | None = None

    def pending(self, now: float) -> bool:
        return (
            self.fired_at is None
            and self.handle is not None
            and not self.handle.cancelled()
            and self.handle.when() > now
        )

    def describe(self) -> str:
        return f"{_KIND_NAMES[self.kind]} of {_seconds(self.seconds)} s"


def _seconds(value: float) -> str:
    """0.25 -> "0.25"; 59.9999 -> "60"; 0.0033 -> "0.0033"."""
    if value >= 5:
        return f"{value:.0f}"
    if value >= 0.01:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def _timer_kind(callback: Any) -> str | None:
    """Which timeout a timer's callback is, or None for a timer that is not a timeout."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, TimeoutHandle):
        return "total"
    if isinstance(owner, client_proto.ResponseHandler):
        return "sock_read" if callback.__name__ == "_on_read_timeout" else None
    if isinstance(owner, asyncio.timeouts.Timeout):
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name.endswith(("aiohttp/connector.py", "aiohttp\\connector.py")):
                return "connect"
            if frame.f_code.co_name == "wait_for" and name.endswith("tasks.py"):
                return "wait_for"
            frame = frame.f_back
        return "asyncio.timeout"
    if callback is asyncio.tasks._release_waiter:
        return "wait_for"
    return None


class Limits:
    """Every timeout timer the learner's calls set on the check's loop, per call.

    The loop's ``call_at`` and ``call_later`` are wrapped for the check: a timer scheduled
    while a learner call runs (in its tasks, or in its connections' callbacks) whose callback
    is a timeout's is recorded, and its callback notes when it fired. Nothing else changes.
    """

    def __init__(self) -> None:
        self.limits: list[Limit] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_call = 0

    def __enter__(self) -> Limits:
        loop = self._loop = asyncio.get_running_loop()
        original_at, original_later = loop.call_at, loop.call_later
        nested = [False]  # a call_later that goes through call_at is recorded once

        def schedule(
            schedule_original: Callable[..., Any], delay: float, when: float, callback: Any,
            args: tuple, kwargs: dict,
        ) -> Any:
            call = _CALL.get()
            kind = _timer_kind(callback) if call is not None and not nested[0] else None
            if kind is None:
                return schedule_original(when, callback, *args, **kwargs)
            owner = getattr(callback, "__self__", None)
            seconds = max(0.0, delay)
            if isinstance(owner, TimeoutHandle) and owner._timeout:
                seconds = owner._timeout  # what was asked: aiohttp rounds a long one up
            limit = Limit(kind, seconds, loop.time(), call)

            def fired(*fired_args: Any) -> Any:
                limit.fired_at = loop.time()
                return callback(*fired_args)

            nested[0] = True
            try:
                limit.handle = schedule_original(when, fired, *args, **kwargs)
            finally:
                nested[0] = False
            self.limits.append(limit)
            return limit.handle

        def call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            return schedule(original_at, when - loop.time(), when, callback, args, kwargs)

        def call_later(delay: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
            return schedule(
                lambda _, cb, *a, **kw: original_later(delay, cb, *a, **kw),
                delay, loop.time() + delay, callback, args, kwargs,
            )

        loop.call_at = call_at  # type: ignore[method-assign]
        loop.call_later = call_later  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            for name in ("call_at", "call_later"):
                with contextlib.suppress(AttributeError):
                    delattr(self._loop, name)

    def new_call(self) -> int:
        self._next_call += 1
        return self._next_call

    def of(self, call: int) -> list[Limit]:
        return [limit for limit in self.limits if limit.call == call]

    def set_by(self, call: int) -> str:
        """The limits call ``call`` set, in words: "aiohttp's `total` of 0.25 s (twice)"."""
        seen: dict[tuple[str, float], int] = {}
        for limit in self.of(call):
            if limit.kind == "connect" and limit.seconds >= 10:
                continue  # the session default (sock_connect=30): not a choice of the code's
            key = (limit.kind, round(limit.seconds, 2))
            if limit.kind == "sock_read" and key in seen:
                continue  # rescheduled with every piece of data: one limit
            seen[key] = seen.get(key, 0) + 1
        parts = []
        for (kind, seconds), count in seen.items():
            times = "" if count == 1 else " (twice)" if count == 2 else f" ({count} times)"
            default = " (the session default)" if kind == "total" and seconds == 300 else ""
            parts.append(f"{_KIND_NAMES[kind]} of {_seconds(seconds)} s{default}{times}")
        return ", ".join(parts)

    def fired(self, call: int) -> list[Limit]:
        return [limit for limit in self.of(call) if limit.fired_at is not None]


@dataclass
class Run:
    """How one call of the learner's function ended."""

    finished: bool
    seconds: float
    value: Any = None
    error: BaseException | None = None
    call: int = 0


async def run_bounded(
    table: Task, learner: Any, args: tuple, give_up_after: float, limits: Limits | None = None
) -> Run:
    """Call ``learner(*args)``; stop it after ``give_up_after`` seconds if it is still running.

    A stub's NotImplementedError and the harness's own ``Mistake`` (for a plain ``def``) are
    raised again, so the harness reports them as usual; any other exception is returned.
    """
    task = table.name
    loop = asyncio.get_running_loop()
    call_id = limits.new_call() if limits is not None else 0
    context = contextvars.copy_context()
    context.run(_CALL.set, call_id)
    started = loop.time()
    call = loop.create_task(call_async(task, learner, *args), context=context)
    done, _ = await asyncio.wait({call}, timeout=give_up_after)
    seconds = loop.time() - started
    if not done:
        call.cancel()
        await asyncio.wait({call}, timeout=UNWIND_SECONDS)
        if call.done() and not call.cancelled():
            call.exception()  # retrieved, so asyncio does not report it as lost
        return Run(False, seconds, call=call_id)
    if call.cancelled():
        raise table.broken(
            "cancelled", f"{task} ended with CancelledError: something cancelled your own code."
        )
    error = call.exception()
    if isinstance(error, (NotImplementedError, Mistake)):
        raise error
    return Run(True, seconds, None if error else call.result(), error, call_id)


async def run_all(calls: list[Any]) -> list[Run]:
    """Await several ``run_bounded`` calls at once; a Mistake is raised once all have ended."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


# A loop that stood still this long while a batch of calls ran may have fired a correct limit
# late, or a silence limit in a healthy stream: the batch's timing verdicts are run again.
LAG_TOLERANCE_SECONDS = 0.1
TIMING_ATTEMPTS = 3


async def judged_with_retries(batch: Callable[[], Awaitable[None]], timing: set[str]) -> None:
    """Run ``batch`` (calls, then verdicts); run it again if a timing verdict met a lagging loop.

    The check's own ticker measures how long the loop stood still (a loaded machine, another
    thread holding the GIL); a verdict about when something happened is trusted only when the
    loop kept ticking, or after the last attempt.
    """
    obs = observe.current()
    for attempt in range(TIMING_ATTEMPTS):
        obs.max_lag = 0.0
        try:
            await batch()
            return
        except Mistake as mistake:
            last = attempt == TIMING_ATTEMPTS - 1
            if last or mistake.problem not in timing or obs.lag() < LAG_TOLERANCE_SECONDS:
                raise


# --- evidence about timeouts and except clauses ----------------------------------------------


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


def _where(error: BaseException) -> str:
    where = learner_line(error)
    return f" ({where})" if where else ""


def _timeout_source(error: BaseException) -> str:
    """Which mechanism raised a TimeoutError, read from where it was raised."""
    if isinstance(error, aiohttp.SocketTimeoutError):
        return "`sock_read`"
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return "`connect`/`sock_connect`"
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        name = frame.filename.replace("\\", "/")
        if name.endswith("aiohttp/helpers.py"):
            return "aiohttp's `total`"
        if name.endswith("asyncio/timeouts.py"):
            return "`asyncio.timeout()`"
        if name.endswith("asyncio/tasks.py"):
            return "`asyncio.wait_for()`"
    return type(error).__name__


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> list[type] | None:
    """The exception classes an ``except`` clause names, looked up in the learner's module."""
    if isinstance(node, ast.Tuple):
        classes: list[type] = []
        for element in node.elts:
            resolved = _resolve(element, namespace)
            if resolved is None:
                return None
            classes += resolved
        return classes
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    value = namespace.get(node.id, getattr(builtins, node.id, None))
    for name in reversed(names):
        value = getattr(value, name, None)
    return [value] if isinstance(value, type) else None


@dataclass(frozen=True)
class Clause:
    """An ``except`` clause of the learner's: its line, its text, and whether it re-raises."""

    lineno: int
    text: str
    reraises: bool


def catching_clause(error: BaseException, namespace: dict[str, Any]) -> Clause | None:
    """The learner's first ``except`` clause that took ``error``, read from their source.

    Looks at the ``try`` statements around each learner line the error passed through,
    innermost first, and their clauses in order.
    """
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if not is_learner_file(frame.filename) or not frame.lineno:
            continue
        source = "".join(linecache.getlines(frame.filename))
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        tries = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Try)
            and node.body
            and node.body[0].lineno <= frame.lineno <= (node.body[-1].end_lineno or 0)
        ]
        for node in sorted(tries, key=lambda n: n.lineno, reverse=True):
            for handler in node.handlers:
                classes = [BaseException] if handler.type is None else _resolve(
                    handler.type, namespace
                )
                if classes is None:
                    continue
                if any(isinstance(error, cls) for cls in classes):
                    text = linecache.getline(frame.filename, handler.lineno).strip()
                    reraises = any(isinstance(n, ast.Raise) for n in ast.walk(handler))
                    return Clause(handler.lineno, text, reraises)
    return None


def _namespace(learner: Any) -> dict[str, Any]:
    return getattr(learner, "__globals__", {}) or {}


def _judge_unexpected_error(table: Task, task: str, error: BaseException) -> None:
    """Name the timeout-related mistakes behind an error; let anything else reach the harness."""
    if isinstance(error, TypeError) and CLIENT_TIMEOUT_TYPE_ERROR in str(error):
        where = learner_line(error)
        raise table.broken(
            "except-clienttimeout",
            f"{task} raised TypeError ({clip(str(error), 80)})"
            + (f" at {where}" if where else "")
            + ": that `except` names a class that is not an exception (`aiohttp.ClientTimeout` "
            "holds settings), so Python fails as soon as an exception reaches it.",
        )
    if _caused_by_timeout(error) and "wrong-exception" in table.rules:
        raise table.broken(
            "wrong-exception",
            f"{task} turned the timeout into {exception_text(error)}{_where(error)}; the "
            "caller expects a TimeoutError.",
        )
    raise error


def _expect_sessions_closed(
    table: Task, task: str, spy: SessionSpy, before: int, when: str
) -> None:
    left = [session for session in spy.sessions[before:] if not session.closed]
    if left:
        verb = "was" if len(left) == 1 else "were"
        raise table.broken(
            "session-left-open",
            f"{plural(len(left), 'session')} your code opened {verb} still open {when}.",
        )


def _stopped(seconds: float) -> str:
    return f"still running after {seconds:.1f} s"


def _late(run: Run, limit: float, limits: Limits, requests: int = 1) -> bool:
    """Ended later than LATE_FACTOR x ``limit``, and the evidence says it was not the machine.

    A call that set a limit of at most ``limit`` (which fired) and made one request is late
    only past three times the limit: a loaded machine stretches the rest.
    """
    if run.seconds <= LATE_FACTOR * limit:
        return False
    kept = any(
        lim.seconds <= limit * 1.05 and lim.fired_at is not None for lim in limits.of(run.call)
    )
    return requests > 1 or not kept or run.seconds > 3 * limit


def _give_up(limit: float) -> float:
    return LATE_FACTOR * limit + STOP_GRACE_SECONDS


def _connect_only(limits: Limits, call: int) -> bool:
    """True when every short limit the call set only times connecting."""
    short = [limit for limit in limits.of(call) if limit.seconds < 10]
    return bool(short) and all(limit.kind == "connect" for limit in short)


# --- Task 1: fetch_with_deadline -------------------------------------------------------------

FETCH_WITH_DEADLINE = Task(
    "fetch_with_deadline",
    Rule(
        "not-text",
        "returns the body as text",
        "the type of what it returned for a fast answer",
        "return `await response.text()`.",
    ),
    Rule(
        "wrong-body",
        "GETs `url` and returns the body",
        "the text returned is compared with the body the server sent (non-ASCII, UTF-8, in "
        "two pieces)",
        "return `await response.text()` of a GET to `url`, read inside `async with`.",
    ),
    Rule(
        "gave-up-early",
        "when the answer arrives within `deadline`, return it",
        "a server that answers after 0.45 s and finishes by 0.8 s, with a deadline of "
        "about 1.5 s: a TimeoutError there, and the limit that fired",
        "use the `deadline` you are given, in seconds: `ClientTimeout(total=deadline)`; no "
        "limit of your own that is shorter.",
    ),
    Rule(
        "too-late",
        "the whole request must take at most `deadline` seconds",
        "a server that never answers, with a seeded deadline near 0.35 s: the TimeoutError "
        f"must come within {LATE_FACTOR:g} x the deadline; the limits set and the requests "
        "the server received say why not",
        "give the request one deadline for everything: `ClientTimeout(total=deadline)` on "
        "the session, or `async with asyncio.timeout(deadline):` around it.",
    ),
    Rule(
        "connect-only",
        "from connecting to the last byte of the body",
        "a server that accepts the connection and never answers, and a ClientTimeout that "
        "sets only connect/sock_connect",
        "`connect` and `sock_connect` stop only the connecting; a deadline for the whole "
        "request is `ClientTimeout(total=deadline)`.",
    ),
    Rule(
        "body-not-covered",
        "from connecting to the last byte of the body",
        "a server that sends its headers at once and then stops in the body, after a server "
        "that never answered was stopped in time",
        "the body is part of the request: put the whole `async with session.get(...)` block, "
        "`await response.text()` included, inside the deadline.",
    ),
    Rule(
        "silence-limit",
        "the whole request must take at most `deadline` seconds",
        "a body that keeps coming, a line every 0.05 s, for over three times the deadline, "
        "returned whole",
        "a limit on each silence (`sock_read`, or a timeout around each read) never fires "
        "while data keeps coming; a deadline for the whole request is `total`.",
    ),
    Rule(
        "swallowed-timeout",
        "the caller must see a `TimeoutError`: do not return anything in its place",
        "what came back for a server that never answers",
        "let the TimeoutError reach the caller: remove the `except` that catches it, or "
        "re-raise it with a bare `raise` after logging.",
    ),
    Rule(
        "wrong-exception",
        "the caller must see a `TimeoutError`",
        "the class of the exception raised when the deadline passed",
        "let the TimeoutError propagate (or re-raise it with a bare `raise`).",
    ),
    Rule(
        "except-clienttimeout",
        "the caller must see a `TimeoutError`",
        "TypeError: catching classes that do not inherit from BaseException",
        "catch `TimeoutError` instead: `aiohttp.ClientTimeout` is a settings class, and every "
        "timeout aiohttp raises is a TimeoutError.",
    ),
    Rule(
        "session-left-open",
        "close the session however the call ends, timeouts included",
        "sessions your code opened, still open after a call that succeeded and after calls "
        "that timed out",
        "`async with aiohttp.ClientSession(...) as session:` closes it on every path; a "
        "`close()` after the request is skipped when the request raises.",
    ),
    Rule(
        "cancelled",
        "the caller must see a `TimeoutError`",
        "the call ended with CancelledError",
        "to give up after a while, use a timeout (it raises TimeoutError); do not cancel "
        "the task you are running in.",
    ),
)


def _body_plan(rng: random.Random, token: str) -> tuple[list[Step], str]:
    words = ["café", "naïve", "Zürich", "☕", "déjà vu", "smörgåsbord"]
    rng.shuffle(words)
    text = f"token {token}: " + ", ".join(words) + "\n" + "".join(
        f"line {i}: {rng.choice(words)}\n" for i in range(rng.randrange(3, 7))
    )
    data = text.encode()
    cut = data.index("é".encode()) + 1 if "é" in text else len(data) // 2  # inside a character
    return [
        ("head", UTF8_TEXT, len(data)),
        ("write", data[:cut]),
        ("sleep", 0.03),
        ("write", data[cut:]),
    ], text


@check(FETCH_WITH_DEADLINE)
async def fetch_with_deadline(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The body within ``deadline`` seconds, whatever the server does, or a TimeoutError."""
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    rng = random.Random(f"{SEED}-{task}")
    plans = PlanServer()
    with Limits() as limits:
        async with plans.serving():
            token = secrets.token_hex(4)
            plan, text = _body_plan(rng, token)
            fast_url, _ = plans.add(plan)
            fast_deadline = round(rng.uniform(2.5, 3.5), 2)
            before = spy.created
            fast = await run_bounded(table, learner, (fast_url, fast_deadline), 4.0, limits)
            _expect_body(fast, text, fast_deadline, limits)
            _expect_sessions_closed(table, task, spy, before, "after a call that succeeded")

            async def batch() -> None:
                await _deadline_batch(learner, spy, rng, plans, limits)

            await judged_with_retries(
                batch, {"gave-up-early", "too-late", "body-not-covered", "connect-only"}
            )
    return (
        "returned the body of a fast answer and of one that came in time; a server that never "
        "answered, a body that stopped and a body that kept coming past the deadline each "
        "ended in a TimeoutError at the deadline, and every session was closed."
    )


async def _deadline_batch(
    learner: Any, spy: SessionSpy, rng: random.Random, plans: PlanServer, limits: Limits
) -> None:
    """An answer in time, a silent server, a stall and a long trickle, at once; the verdicts."""
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    in_time_deadline = round(rng.uniform(1.4, 1.7), 2)
    lines = [f"late line {i}\n".encode() for i in range(3)]
    in_time_url, in_time_record = plans.add(
        [("sleep", 0.45), ("head", UTF8_TEXT, None), *lines_every(lines, 0.1)]
    )
    deadlines = [round(rng.uniform(0.3, 0.4), 2) for _ in range(3)]
    silent_url, silent_record = plans.add([("hold",)])
    stall_url, _ = plans.add(
        [("head", UTF8_TEXT, None), ("write", b"the first line\n"), ("hold",)]
    )
    trickle_lines = [f"line {i} of 24\n".encode() for i in range(1, 25)]
    trickle_url, _ = plans.add([("head", UTF8_TEXT, None), *lines_every(trickle_lines, 0.05)])
    before = spy.created
    in_time, silent, stall, trickle = await run_all(
        [
            run_bounded(
                table, learner, (in_time_url, in_time_deadline), in_time_deadline + 1.5, limits
            ),
            *(
                run_bounded(table, learner, (url, deadline), _give_up(deadline), limits)
                for url, deadline in zip(
                    (silent_url, stall_url, trickle_url), deadlines, strict=True
                )
            ),
        ]
    )
    _expect_in_time(in_time, in_time_deadline, limits, in_time_record)
    stall_in_time = (
        stall.finished
        and isinstance(stall.error, TimeoutError)
        and not _late(stall, deadlines[1], limits)
    )
    _expect_silent_timeout(silent, deadlines[0], silent_record, limits, stall_in_time)
    _expect_stall_timeout(stall, deadlines[1], limits)
    _expect_trickle_timeout(trickle, deadlines[2], b"".join(trickle_lines), limits)
    _expect_sessions_closed(table, task, spy, before, "after calls that timed out")


def _expect_body(run: Run, text: str, deadline: float, limits: Limits) -> None:
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    if not run.finished:
        raise table.broken(
            "timeout",
            f"{task} did not return within {run.seconds:.1f} s for a server that answers at "
            f"once (deadline {deadline} s).",
        )
    if isinstance(run.error, TimeoutError):
        fired = limits.fired(run.call)
        raise table.broken(
            "gave-up-early",
            f"{task} raised {type(run.error).__name__} after {run.seconds:.2f} s for a server "
            f"that answers at once, with a deadline of {deadline} s: "
            + (f"the limit that fired was {fired[0].describe()}." if fired else
               "a limit shorter than the deadline fired."),
        )
    if run.error is not None:
        _judge_unexpected_error(table, task, run.error)
    value = run.value
    if isinstance(value, (bytes, bytearray)):
        raise table.broken(
            "not-text",
            f"{task} returned {type(value).__name__}; the task asks for the body as text.",
        )
    if not isinstance(value, str):
        raise table.broken(
            "not-text",
            f"{task} returned {type(value).__name__}; the task asks for the body as text "
            "(a str).",
        )
    if value != text:
        what = (
            "the first part of the body" if text.startswith(value) and value else
            "a body that differs from the one the server sent"
        )
        raise table.broken(
            "wrong-body",
            f"{task} returned {clip(repr(value), 70)}: {what} ({len(value)} characters "
            f"instead of {len(text)}).",
        )


def _expect_in_time(run: Run, deadline: float, limits: Limits, record: PlanRecord) -> None:
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    what = (
        "a server that answered after 0.45 s and finished by 0.8 s, with a deadline of "
        f"{deadline} s"
    )
    if not run.finished:
        raise table.broken("timeout", f"{task} was {_stopped(run.seconds)}, for {what}.")
    if run.error is not None and isinstance(run.error, TimeoutError):
        fired = limits.fired(run.call)
        if record.requests > 1 and run.seconds > deadline:
            raise table.broken(
                "too-late",
                f"{task} raised {type(run.error).__name__} only after {run.seconds:.2f} s for "
                f"{what}: the server received {record.requests} requests during that one call. "
                + (f"Each try had {fired[0].describe()}, and " if fired else "")
                + "the tries together outlasted the deadline.",
                "one deadline for the whole call: no limit per try that is shorter, no new "
                "deadline for a retry (put the tries inside one `asyncio.timeout(deadline)`).",
            )
        evidence = (
            f": the limit that fired was {fired[0].describe()}, not the deadline you were given"
            if fired else ""
        )
        raise table.broken(
            "gave-up-early",
            f"{task} raised {type(run.error).__name__} after {run.seconds:.2f} s for {what}"
            f"{evidence}.",
        )
    if run.error is not None:
        _judge_unexpected_error(table, task, run.error)
    if not isinstance(run.value, str) or "late line 2" not in run.value:
        raise table.broken(
            "gave-up-early" if run.value in ("", None) else "wrong-body",
            f"{task} returned {clip(repr(run.value), 60)} for {what}, not its body.",
        )


def _expect_timeout(run: Run, what: str) -> None:
    """A finished call must have raised a TimeoutError (any subclass)."""
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    if run.error is None:
        raise table.broken(
            "swallowed-timeout",
            f"{task} returned {clip(repr(run.value), 50)} for {what}, as if nothing had gone "
            "wrong: the timeout was caught and dropped, so the caller cannot tell it from an "
            "answer.",
        )
    if not isinstance(run.error, TimeoutError):
        _judge_unexpected_error(FETCH_WITH_DEADLINE, task, run.error)


def _expect_silent_timeout(
    run: Run, deadline: float, record: PlanRecord, limits: Limits, stall_in_time: bool
) -> None:
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    what = f"a server that never answers (deadline {deadline} s)"
    set_by = limits.set_by(run.call)
    if not run.finished:
        if _connect_only(limits, run.call):
            raise table.broken(
                "connect-only",
                f"{task} was {_stopped(run.seconds)}, for a server that accepted the "
                "connection at once and then sent nothing; the check stopped it. Your "
                "ClientTimeout limits only connecting (connect / sock_connect).",
            )
        if stall_in_time:
            raise table.broken(
                "too-late",
                f"{task} was {_stopped(run.seconds)}, for {what}; the check stopped it. A body "
                "that stopped after the headers did raise in time: your deadline covers "
                "reading the body, not waiting for the answer.",
                "start the deadline before the request: `session.get(...)` itself must be "
                "inside it (`ClientTimeout(total=deadline)`, or `asyncio.timeout` around the "
                "whole `async with session.get(...)` block).",
            )
        raise table.broken(
            "too-late",
            f"{task} was {_stopped(run.seconds)}, for {what}; the check stopped it. "
            + (f"The limits your code set: {set_by}." if set_by else
               "Your code set no timeout at all."),
        )
    _expect_timeout(run, what)
    if _late(run, deadline, limits, record.requests):
        if record.requests > 1:
            why = (
                f"the server received {record.requests} requests during that one call: it "
                "tried again after the timeout, and each try got a deadline of its own"
            )
            hint = (
                "one deadline for the whole call: do not retry after the timeout, or put the "
                "tries inside one `async with asyncio.timeout(deadline):`."
            )
        else:
            why = f"the limits your code set: {set_by or 'none that fired in time'}"
            hint = None
        raise table.broken(
            "too-late",
            f"{task} raised {type(run.error).__name__} only after {run.seconds:.2f} s for "
            f"{what}: {why}.",
            hint,
        )


def _expect_stall_timeout(run: Run, deadline: float, limits: Limits) -> None:
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    what = f"a body that stopped after the headers and one line (deadline {deadline} s)"
    if not run.finished:
        raise table.broken(
            "body-not-covered",
            f"{task} was {_stopped(run.seconds)}, for {what}; the check stopped it. "
            "A server that never answered was stopped in time, so your deadline covers "
            "waiting for the answer but not reading the body.",
        )
    _expect_timeout(run, what)
    if _late(run, deadline, limits):
        raise table.broken(
            "too-late",
            f"{task} raised {type(run.error).__name__} only after {run.seconds:.2f} s for "
            f"{what}. The limits your code set: {limits.set_by(run.call) or 'none'}.",
        )


def _expect_trickle_timeout(run: Run, deadline: float, body: bytes, limits: Limits) -> None:
    task, table = "fetch_with_deadline", FETCH_WITH_DEADLINE
    what = (
        f"a body that kept coming, a line every 0.05 s for 1.2 s, with a deadline of "
        f"{deadline} s"
    )
    if not run.finished:
        raise table.broken(
            "too-late",
            f"{task} was {_stopped(run.seconds)}, for {what}; the check stopped it.",
        )
    if run.error is None and isinstance(run.value, str) and run.value == body.decode():
        set_by = limits.set_by(run.call)
        raise table.broken(
            "silence-limit",
            f"{task} returned the whole body after {run.seconds:.2f} s, for {what}: no "
            "silence came near your limits, so none fired."
            + (f" Your code set: {set_by}." if set_by else ""),
        )
    _expect_timeout(run, what)
    if _late(run, deadline, limits):
        raise table.broken(
            "too-late",
            f"{task} raised {type(run.error).__name__} only after {run.seconds:.2f} s for "
            f"{what}. The limits your code set: {limits.set_by(run.call) or 'none'}.",
        )


# --- Task 2: fetch_and_explain ---------------------------------------------------------------

FETCH_AND_EXPLAIN = Task(
    "fetch_and_explain",
    Rule(
        "unknown-label",
        'returns exactly one of "answered", "too slow to answer", "stalled mid-body"',
        "the value returned, compared with the three labels",
        f"return exactly {ANSWERED!r}, {TOO_SLOW!r} or {STALLED!r}.",
    ),
    Rule(
        "wrong-label",
        "the label that says how the server behaved",
        "the label returned for each scenario",
        "a timeout before `session.get(...)` returns means no answer; one while you read "
        "the body means a stall.",
    ),
    Rule(
        "swallowed-timeout",
        '"answered": the body arrived completely',
        '"answered" returned although one of your limits fired (the check notes which '
        "timers your code set and whether they fired)",
        f"never report {ANSWERED!r} when a timeout fired: return the stage it fired in.",
    ),
    Rule(
        "body-not-read",
        "GETs `url`, reads the whole body",
        '"answered" for a body that stalled, with no limit of yours having fired: the body '
        "was never read",
        "read the body (`await response.read()`) before deciding it was answered.",
    ),
    Rule(
        "cannot-tell-apart",
        '"stalled mid-body": the headers arrived, then the body stopped',
        '"too slow to answer" for a server that sent its headers at once and then stopped '
        "in the body",
        "note how far the request got: a timeout before `session.get(...)` returns means "
        "no answer; one while you read the body means a stall. Keep a `stage` variable, "
        "or use two try blocks.",
    ),
    Rule(
        "no-timeout",
        '"too slow to answer": the server sent nothing for `patience` seconds',
        f"a server that never answers: a label must come within {LATE_FACTOR:g} x patience",
        "give the request `timeout=aiohttp.ClientTimeout(sock_read=patience)`: it fires "
        "when the server stays silent that long, before the headers or in the body.",
    ),
    Rule(
        "patience-as-deadline",
        '"answered": the body arrived completely, however long that took',
        "a body that arrives steadily for three times the patience, and the limit that "
        "fired",
        "patience is about silence: `ClientTimeout(sock_read=patience)`, with no `total` "
        "(and no `asyncio.timeout`) that a long body could reach.",
    ),
    Rule(
        "limit-per-line",
        "stalled only when the body stopped for `patience` seconds",
        "a line sent in small pieces 0.1 s apart, taking longer than patience in all",
        "a limit per line (`wait_for(readline(), patience)`) fires while bytes keep coming; "
        "limit each silence: `sock_read=patience`, or a timeout around each `readany()`.",
    ),
    Rule(
        "gave-up-early",
        "too slow or stalled only after `patience` seconds of silence",
        "a server that answers after 0.45 s, with patience of about 1 s",
        "use the `patience` you are given, in seconds, and no shorter limit of your own.",
    ),
    Rule(
        "timeout-escaped",
        "returns one of the labels when a timeout fires",
        "a TimeoutError that escaped, and the learner's except clause that took it first",
        "catch `TimeoutError`, which every timeout is, before any `except` for "
        "`aiohttp.ClientError`, `ClientConnectionError` or `OSError`.",
    ),
    Rule(
        "except-clienttimeout",
        "returns one of the labels when a timeout fires",
        "TypeError: catching classes that do not inherit from BaseException",
        "catch `TimeoutError` instead: `aiohttp.ClientTimeout` is a settings class.",
    ),
    Rule(
        "catches-too-much",
        "anything that is not a timeout (a refused or reset connection) must propagate",
        "a refused port, a connection reset before the headers and one cut mid-body: each "
        "must raise, not return a label",
        "catch `TimeoutError` only (`except Exception`, `OSError` or `aiohttp.ClientError` "
        "also catch connection errors, which are not slowness) and let the rest propagate.",
    ),
    Rule(
        "session-left-open",
        "close the session however the call ends",
        "sessions your code opened, still open after the calls",
        "`async with aiohttp.ClientSession(...) as session:` closes it on every path.",
    ),
    Rule(
        "cancelled",
        "return a label when a timeout fires",
        "the call ended with CancelledError",
        "to give up after a while, use a timeout (it raises TimeoutError); do not cancel "
        "the task you are running in.",
    ),
)


@check(FETCH_AND_EXPLAIN)
async def fetch_and_explain(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Says "answered", "too slow to answer" or "stalled mid-body"; other errors propagate."""
    rng = random.Random(f"{SEED}-fetch_and_explain")
    plans = PlanServer()
    with Limits() as limits:
        async with plans.serving():

            async def batch() -> None:
                await _explain_batch(learner, spy, rng, plans, limits)

            await judged_with_retries(
                batch, {"no-timeout", "patience-as-deadline", "limit-per-line", "gave-up-early"}
            )
    return (
        "a silent server was 'too slow to answer', a body that stopped was 'stalled mid-body', "
        "long but steady bodies (one a line in slow pieces) and a slow start within patience "
        "were 'answered', and a refused port, a reset and a cut body propagated."
    )


async def _explain_batch(
    learner: Any, spy: SessionSpy, rng: random.Random, plans: PlanServer, limits: Limits
) -> None:
    """Every scenario at once, then the verdicts in a fixed order."""
    task, table = "fetch_and_explain", FETCH_AND_EXPLAIN
    patience = [round(rng.uniform(0.3, 0.4), 2) for _ in range(5)]
    slow_patience = round(rng.uniform(0.9, 1.1), 2)
    steady_lines = [f"line {i} of 20\n".encode() for i in range(1, 21)]
    pieces = [bytes([byte]) for byte in b"a long line, sent a few bytes at a time"]
    piece_steps = lines_every([b"".join(pieces[i : i + 4]) for i in range(0, len(pieces), 4)], 0.1)
    head: Step = ("head", UTF8_TEXT, None)
    scenarios: dict[str, tuple[list[Step], float]] = {
        "quick": ([head, ("write", b"ok\n")], patience[0]),
        "silent": ([("hold",)], patience[1]),
        "stall": ([head, ("write", b"the first line\n"), ("hold",)], patience[2]),
        "steady": ([head, *lines_every(steady_lines, 0.06)], patience[3]),
        "slow-line": (
            [head, ("write", b"line 1\n"), *piece_steps, ("write", b"\nline 3\n")],
            patience[4],
        ),
        "slow-start": (
            [("sleep", 0.45), head, *lines_every([b"late 1\n", b"late 2\n"], 0.05)],
            slow_patience,
        ),
        "reset": ([("reset",)], patience[0]),
        "cut": (
            [("head", UTF8_TEXT, 4000), ("write", b"the first line\n"), ("sleep", 0.05),
             ("reset",)],
            patience[0],
        ),
    }
    urls = {name: plans.add(plan)[0] for name, (plan, _) in scenarios.items()}
    urls["refused"] = refused_url("/get")
    scenarios["refused"] = ([], patience[0])
    before = spy.created
    results = await run_all(
        [
            run_bounded(
                table, learner, (urls[name], scenarios[name][1]),
                max(_give_up(scenarios[name][1]), 2.0), limits,
            )
            for name in urls
        ]
    )
    runs = dict(zip(urls, results, strict=True))
    judge = _Explain(learner, limits)
    judge.label(runs["quick"], ANSWERED, "a server that answers at once")
    judge.label(runs["silent"], TOO_SLOW, "a server that sent nothing at all")
    judge.label(runs["stall"], STALLED, "a body that stopped after the headers")
    judge.label(
        runs["steady"], ANSWERED,
        "a body that arrived steadily, a line every 0.06 s for about 1.2 s",
    )
    judge.label(
        runs["slow-line"], ANSWERED, "a line sent in small pieces 0.1 s apart, over about 1 s"
    )
    judge.label(
        runs["slow-start"], ANSWERED,
        f"a server that answered after 0.45 s, with patience {slow_patience} s",
    )
    for name, what in (
        ("refused", "a port that refuses connections"),
        ("reset", "a connection reset before the headers"),
        ("cut", "a connection cut in the middle of the body"),
    ):
        judge.propagates(runs[name], what)
    _expect_sessions_closed(table, task, spy, before, "after the calls")


class _Explain:
    """Judges fetch_and_explain's runs, scenario by scenario."""

    task = "fetch_and_explain"
    table = FETCH_AND_EXPLAIN

    def __init__(self, learner: Any, limits: Limits) -> None:
        self.learner = learner
        self.limits = limits

    def label(self, run: Run, expected: str, what: str) -> None:
        task, table = self.task, self.table
        if not run.finished:
            if expected == ANSWERED and what.startswith("a server that answers at once"):
                raise table.broken("timeout", f"{task} did not return within "
                                   f"{run.seconds:.1f} s for {what}.")
            set_by = self.limits.set_by(run.call)
            if _connect_only(self.limits, run.call):
                set_by += ", which time only connecting"
            raise table.broken(
                "no-timeout",
                f"{task} was still waiting after {run.seconds:.1f} s for {what}; the check "
                "stopped it. "
                + (f"The limits your code set: {set_by}." if set_by else
                   "Your code set no timeout at all."),
            )
        if run.error is not None:
            self._escaped(run, what)
        value = run.value
        if value not in LABELS:
            raise table.broken(
                "unknown-label",
                f"{task} returned {clip(repr(value), 50)} for {what}; expected one of "
                f"{list(LABELS)}.",
            )
        if value == expected:
            return
        fired = self.limits.fired(run.call)
        if expected == ANSWERED:
            if "slow-start" in what or "answered after" in what:
                raise table.broken(
                    "gave-up-early",
                    f"{task} said {value!r} for {what}"
                    + (f": the limit that fired was {fired[0].describe()}" if fired else "")
                    + ".",
                )
            if "small pieces" in what:
                raise table.broken(
                    "limit-per-line",
                    f"{task} said {value!r} for {what}: the body never stopped for "
                    "patience seconds"
                    + (f", but {fired[0].describe()} fired" if fired else "")
                    + ". A limit on a whole line (or a whole read) is not a limit on "
                    "silence.",
                )
            raise table.broken(
                "patience-as-deadline",
                f"{task} said {value!r} for {what}: it never went quiet for patience seconds"
                + (f", yet {fired[0].describe()} fired" if fired else "")
                + ". A limit on the whole request cut a healthy answer.",
            )
        if value == ANSWERED:
            if fired:
                raise table.broken(
                    "swallowed-timeout",
                    f"{task} said {ANSWERED!r} for {what}, though {fired[0].describe()} "
                    "fired: a timeout was caught and dropped.",
                )
            raise table.broken(
                "body-not-read",
                f"{task} said {ANSWERED!r} for {what}, and none of your limits fired: the "
                "body was never read to its end, so the stall went unnoticed.",
            )
        if expected == STALLED and value == TOO_SLOW:
            raise table.broken(
                "cannot-tell-apart",
                f"{task} said {TOO_SLOW!r} for a server that sent its headers at once and then "
                f"stopped in the body: it should be {STALLED!r}.",
            )
        raise table.broken(
            "wrong-label", f"{task} said {value!r} for {what}; expected {expected!r}."
        )

    def _escaped(self, run: Run, what: str) -> None:
        task, table, error = self.task, self.table, run.error
        assert error is not None
        if isinstance(error, TimeoutError):
            clause = catching_clause(error, _namespace(self.learner))
            name = type(error).__name__
            if clause is not None and clause.text and "TimeoutError" not in clause.text:
                families = [
                    cls.__name__
                    for cls in (aiohttp.ClientConnectionError, aiohttp.ClientError, OSError)
                    if isinstance(error, cls)
                ]
                also = f"{name} is both a TimeoutError and a {families[0]}, so " if families else ""
                raise table.broken(
                    "timeout-escaped",
                    f"{name} (from {_timeout_source(error)}) escaped from {task} for {what}: "
                    f"{also}`{clip(clause.text, 60)}` (line {clause.lineno}) took it first"
                    + (" and raised it again." if clause.reraises else "."),
                    "put `except TimeoutError:` before the clause that catches connection "
                    "errors (`ClientConnectionError`, `ClientError`, `OSError`).",
                )
            raise table.broken(
                "timeout-escaped",
                f"{name} (from {_timeout_source(error)}) escaped from {task} for {what}: no "
                "`except` clause of yours caught it.",
                "catch `TimeoutError`, which every timeout is: `total` raises the builtin "
                "TimeoutError, which `except aiohttp.ClientError` misses; `sock_read` raises "
                "SocketTimeoutError, which `except aiohttp.ConnectionTimeoutError` misses.",
            )
        _judge_unexpected_error(table, task, error)

    def propagates(self, run: Run, what: str) -> None:
        task, table = self.task, self.table
        if not run.finished:
            raise table.broken(
                "timeout", f"{task} did not return within {run.seconds:.1f} s for {what}."
            )
        if run.error is None:
            raise table.broken(
                "catches-too-much",
                f"{task} returned {clip(repr(run.value), 40)} for {what}, an error that is "
                "not a timeout: the `except` clause catches more than timeouts.",
            )
        if isinstance(run.error, TypeError) and CLIENT_TIMEOUT_TYPE_ERROR in str(run.error):
            _judge_unexpected_error(table, task, run.error)


# --- Task 3: stream_lines --------------------------------------------------------------------

STREAM_LINES = Task(
    "stream_lines",
    Rule(
        "not-text",
        "calls `handle_line(line)` with each line as text",
        "the type of what handle_line received",
        "decode each line: `line.decode(response.get_encoding())`.",
    ),
    Rule(
        "decoded-pieces",
        "each line as text (UTF-8; a character may be split between two pieces of data)",
        "a character split between two writes: a UnicodeDecodeError, or U+FFFD in a line",
        "decode whole lines, not pieces of data: `async for line in response.content` gives "
        "whole lines (bytes); decode each one.",
    ),
    Rule(
        "wrong-lines",
        "reads the body **line by line**, one call per line",
        "the lines handle_line received, compared with the lines sent in writes that split "
        "and merge lines",
        "`async for line in response.content:` yields one line at a time; pieces of data "
        "from `iter_any()` or `iter_chunked()` are not lines.",
    ),
    Rule(
        "wrong-count",
        "returns the number of lines",
        "the value returned, compared with the lines sent",
        "count the lines you hand over and return the count.",
    ),
    Rule(
        "not-streamed",
        "as soon as it arrives",
        "what the server had sent when handle_line received the first line",
        "iterate over `response.content` (line by line) instead of `await "
        "response.text()`, and hand each line over as it comes.",
    ),
    Rule(
        "overall-limit",
        "the stream may take as long as it needs: no limit on the whole stream",
        "a healthy stream over three times max_silence, and the timers your code set: one "
        "that would end the whole stream (aiohttp's `total`, 300 s by default; "
        "`asyncio.timeout` around it)",
        "set `total=None` explicitly (the session default is 300 s) and no timeout around the "
        "whole stream; `sock_read=max_silence` catches a stall.",
    ),
    Rule(
        "limit-per-line",
        "only a silence of `max_silence` is a stall, not a slow line",
        "a line sent in small pieces 0.09 s apart, taking longer than max_silence in all; "
        "a silence limit that fired in a healthy stream",
        "a limit per line (`wait_for(readline(), max_silence)`) fires while bytes keep "
        "coming: limit each silence, `sock_read=max_silence`.",
    ),
    Rule(
        "no-stall-detection",
        "if no data arrives for `max_silence` seconds, raise a `TimeoutError`",
        "a stream that goes silent after two lines, and a server that never answers",
        "`aiohttp.ClientTimeout(total=None, sock_read=max_silence)` fires when no data "
        "arrives for max_silence seconds.",
    ),
    Rule(
        "swallowed-timeout",
        "raise a `TimeoutError`",
        "what came back from a stream that went silent",
        "let the TimeoutError reach the caller: do not catch it in the loop.",
    ),
    Rule(
        "wrong-exception",
        "raise a `TimeoutError`",
        "the class of the exception raised by a stall",
        "let the TimeoutError propagate (or re-raise it with a bare `raise`).",
    ),
    Rule(
        "except-clienttimeout",
        "raise a `TimeoutError`",
        "TypeError: catching classes that do not inherit from BaseException",
        "catch `TimeoutError` if you must: `aiohttp.ClientTimeout` is a settings class.",
    ),
    Rule(
        "session-left-open",
        "close the session however the call ends",
        "sessions your code opened, still open after the calls (a stall included)",
        "`async with aiohttp.ClientSession(...) as session:` closes it on every path.",
    ),
    Rule(
        "cancelled",
        "raise a `TimeoutError` when the stream stalls",
        "the call ended with CancelledError",
        "to give up after a while, use a timeout (it raises TimeoutError); do not cancel "
        "the task you are running in.",
    ),
)


@dataclass
class LineRecorder:
    """The ``handle_line`` callback the check passes: each line, and what had been sent then."""

    record: PlanRecord
    loop: asyncio.AbstractEventLoop
    limits: Limits | None = None
    max_silence: float = 0.0
    lines: list[Any] = field(default_factory=list)
    sent_then: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    overall: list[Limit] = field(default_factory=list)

    def __call__(self, line: Any) -> None:
        now = self.loop.time()  # handle_line may be called from another thread
        self.lines.append(line)
        self.times.append(now)
        self.sent_then.append(self.record.sent if not self.record.complete else -1)
        if self.limits is not None and not self.overall:
            call = _CALL.get()
            self.overall = [
                limit
                for limit in self.limits.of(call or 0)
                if limit.kind in ("total", "asyncio.timeout", "wait_for")
                and limit.pending(now)
                and limit.handle is not None
                and limit.handle.when() - now > 2 * self.max_silence
            ]


def _split_plan(rng: random.Random, lines: list[bytes], gap: float) -> list[Step]:
    """Write ``lines`` in pieces that merge some lines and split others, one inside a character.

    The first pieces are fixed, so every answer meets the same evidence in the same order:
    line 1 alone, lines 2 and 3 in one write, line 4 cut in half, line 5 cut inside "é".
    The rest are seeded. The server runs on the check's loop, so the client always reads a
    piece before the next one is written.
    """
    pieces = [lines[0], lines[1] + lines[2]]
    pending = b""
    for index, line in enumerate(lines[3:], start=3):
        line = pending + line
        pending = b""
        choice = "half" if index == 3 else "inside" if index == 4 else rng.choice(
            ["alone", "alone", "merge", "half", "inside"]
        )
        if choice == "merge" and index < len(lines) - 1:
            pending = line
        elif choice == "half":
            pieces += [line[: len(line) // 2], line[len(line) // 2 :]]
        elif choice == "inside" and "é".encode() in line:
            cut = line.rindex("é".encode()) + 1
            pieces += [line[:cut], line[cut:]]
        else:
            pieces.append(line)
    if pending:
        pieces.append(pending)
    return lines_every(pieces, gap)


STREAM_LINE_COUNT = 14


@check(STREAM_LINES)
async def stream_lines(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Every line handed over as it arrives, however long the stream; a silence raises."""
    rng = random.Random(f"{SEED}-stream_lines")
    plans = PlanServer()
    with Limits() as limits:
        async with plans.serving():

            async def batch() -> None:
                await _stream_batch(learner, spy, rng, plans, limits)

            await judged_with_retries(
                batch, {"overall-limit", "limit-per-line", "no-stall-detection"}
            )
    return (
        f"{STREAM_LINE_COUNT} lines (split and merged across writes, non-ASCII, the last "
        "without a newline) handed over as they arrived, over three times max_silence, with no "
        "limit on the whole stream; a slow line in pieces was fine; a silence mid-stream and "
        "before the headers each raised TimeoutError in time."
    )


async def _stream_batch(
    learner: Any, spy: SessionSpy, rng: random.Random, plans: PlanServer, limits: Limits
) -> None:
    """A healthy stream, a slow line, a stall and a silent server, at once; the verdicts."""
    task, table = "stream_lines", STREAM_LINES
    silences = [round(rng.uniform(0.3, 0.4), 2) for _ in range(4)]
    words = ["café", "naïve", "Zürich", "crème brûlée", "déjà vu", "smörgåsbord", "☕"]
    texts = [f"record {i}: {rng.choice(words)} é" for i in range(1, STREAM_LINE_COUNT + 1)]
    texts[-1] = f"record {len(texts)}: the last line, with no newline, café"
    data_lines = [f"{text}\n".encode() for text in texts[:-1]] + [texts[-1].encode()]
    healthy_url, healthy_record = plans.add(
        [("head", UTF8_TEXT, None), *_split_plan(rng, data_lines, 0.05)]
    )
    slow_pieces = [b"line 2 comes ", b"in small ", b"pieces, ", b"slowly, ", b"but it ",
                   b"never ", b"stops ", b"for long\n"]
    slow_url, slow_record = plans.add(
        [("head", UTF8_TEXT, None), ("write", b"line 1\n"), *lines_every(slow_pieces, 0.09),
         ("write", b"line 3\n")]
    )
    stall_url, stall_record = plans.add(
        [("head", UTF8_TEXT, None), ("write", b"line 1\nline 2\n"), ("hold",)]
    )
    silent_url, silent_record = plans.add([("hold",)])
    loop = asyncio.get_running_loop()
    recorders = [
        LineRecorder(healthy_record, loop, limits, silences[0]),
        LineRecorder(slow_record, loop),
        LineRecorder(stall_record, loop),
        LineRecorder(silent_record, loop),
    ]
    urls = (healthy_url, slow_url, stall_url, silent_url)
    give_ups = (3.0, 3.0, _give_up(silences[2]), _give_up(silences[3]))
    before = spy.created
    healthy, slow, stall, silent = await run_all(
        [
            run_bounded(table, learner, (url, silence, recorder), give_up, limits)
            for url, silence, recorder, give_up in zip(
                urls, silences, recorders, give_ups, strict=True
            )
        ]
    )
    judge = _Stream(limits, silences)
    judge.healthy(healthy, recorders[0], texts)
    judge.slow_line(slow, recorders[1])
    judge.stall(stall, "a stream that went silent after two lines", silences[2])
    judge.stall(silent, "a server that never sent its headers", silences[3])
    judge.no_overall_limit(recorders[0])
    _expect_sessions_closed(table, task, spy, before, "after the calls (a stall included)")


class _Stream:
    task = "stream_lines"
    table = STREAM_LINES

    def __init__(self, limits: Limits, silences: list[float]) -> None:
        self.limits = limits
        self.silences = silences

    def healthy(self, run: Run, recorder: LineRecorder, texts: list[str]) -> None:
        task, table = self.task, self.table
        if not run.finished:
            raise table.broken(
                "timeout",
                f"{task} did not return within {run.seconds:.1f} s for a healthy stream of "
                f"{len(texts)} lines that ends after about 1.4 s.",
                "iterate over `response.content` inside `async with session.get(url) as "
                "response:`; the loop ends with the body.",
            )
        handed = recorder.lines
        if run.error is not None:
            error = run.error
            if isinstance(error, UnicodeDecodeError):
                self._merged_lines(handed)
                where = learner_line(error)
                raise table.broken(
                    "decoded-pieces",
                    f"{task} raised UnicodeDecodeError: {error.reason}"
                    + (f", at {where}" if where else "")
                    + ". It decoded a piece of data that ended in the middle of a character "
                    "(é is two bytes in UTF-8, and the server split them).",
                )
            if isinstance(error, TimeoutError):
                self._cut(run, error, recorder)
            _judge_unexpected_error(table, task, error)
        if any(isinstance(line, (bytes, bytearray)) for line in handed):
            raise table.broken(
                "not-text",
                f"{task} handed over {type(handed[0]).__name__}; the task asks for each line as "
                "text.",
            )
        got = [line.rstrip("\r\n") if isinstance(line, str) else line for line in handed]
        if got and all(isinstance(line, str) and line[:2] in ("b'", 'b"') for line in got):
            raise table.broken(
                "not-text",
                f"{task} handed over {clip(repr(got[0]), 50)}: the text of a bytes object "
                "(`str(line)`), not the line decoded.",
            )
        if got != texts:
            self._wrong_lines(got, texts)
        if run.value != len(texts):
            raise table.broken(
                "wrong-count",
                f"{task} returned {clip(repr(run.value), 30)}; it handed over {len(texts)} "
                "lines, and should return that number.",
            )
        if recorder.sent_then and recorder.sent_then[0] == -1:
            raise table.broken(
                "not-streamed",
                f"{task} handed over its first line only after the server had sent the whole "
                "body: it read everything first, then split it.",
            )

    def _cut(self, run: Run, error: BaseException, recorder: LineRecorder) -> None:
        """A timeout ended a healthy stream: a limit on the whole stream, or on too little."""
        task, table, silence = self.task, self.table, self.silences[0]
        what = (
            f"{task} raised {type(error).__name__} after {plural(len(recorder.lines), 'line')} "
            f"of a healthy stream that never went quiet for max_silence ({silence} s)"
        )
        fired = self.limits.fired(run.call)
        last_line = recorder.times[-1] if recorder.times else None
        # A limit on each silence is set again with each piece of data; one on the whole
        # stream saw lines arrive after it was set, and was not set again.
        overall = [
            limit for limit in fired
            if limit.kind != "sock_read" and (last_line is None or last_line - limit.set_at > 0.1)
        ]
        if overall or not fired:
            source = overall[0].describe() if overall else _timeout_source(error)
            raise table.broken("overall-limit", f"{what}: {source} ended it, a limit on the "
                               "whole stream.")
        raise table.broken(
            "limit-per-line",
            f"{what}: {fired[0].describe()} fired"
            + (", shorter than max_silence." if fired[0].seconds < 0.9 * silence else "."),
            "raise only after max_silence seconds with no data at all: "
            "`sock_read=max_silence`, with the very value you were given.",
        )

    def no_overall_limit(self, recorder: LineRecorder) -> None:
        """No timer of the learner's was counting down for the whole healthy stream."""
        if recorder.overall:
            limit = recorder.overall[0]
            raise self.table.broken(
                "overall-limit",
                f"while the stream was flowing, {limit.describe()} was still counting down "
                f"for the whole stream: a stream longer than {_seconds(limit.seconds)} s would "
                "be cut off, however steadily it arrives.",
            )

    def _merged_lines(self, handed: list[Any]) -> None:
        """A handed-over "line" holding several lines is a piece of data taken for a line."""
        merged = [
            line for line in handed if isinstance(line, str) and "\n" in line.rstrip("\r\n")
        ]
        if merged:
            raise self.table.broken(
                "wrong-lines",
                f"{self.task} handed over {clip(repr(merged[0]), 60)} in one call: several "
                "lines at once. A piece of data is not a line: the server sent those lines "
                "in one write.",
            )

    def _wrong_lines(self, got: list[Any], texts: list[str]) -> None:
        task, table = self.task, self.table
        for line in got:  # the first wrong line the learner handed over names the mistake
            if not isinstance(line, str):
                continue
            if "\n" in line.rstrip("\r\n"):
                self._merged_lines([line])
            if "\ufffd" in line:
                raise table.broken(
                    "decoded-pieces",
                    f"{task} handed over {clip(repr(line), 60)}: a character split between "
                    "two pieces of data was decoded in halves (U+FFFD).",
                )
        if len(got) > len(texts):
            raise table.broken(
                "wrong-lines",
                f"{task} called handle_line {len(got)} times for {len(texts)} lines: a line "
                "sent in two pieces was handed over as two (a piece of data is not a line).",
            )
        if len(got) == len(texts) - 1 and got == texts[:-1]:
            raise table.broken(
                "wrong-lines",
                f"{task} handed over {len(got)} of {len(texts)} lines: the last one, which "
                "has no newline after it, was dropped.",
                "after the loop, hand over what is left in your buffer: the last line may "
                "have no newline after it (`async for line in response.content` gives it).",
            )
        raise table.broken(
            "wrong-lines",
            f"{task} handed over {len(got)} lines starting {clip(repr(got[:2]), 70)}; "
            f"expected {len(texts)}, starting {clip(repr(texts[:2]), 70)}.",
        )

    def slow_line(self, run: Run, recorder: LineRecorder) -> None:
        task, table = self.task, self.table
        what = (
            f"a line sent in small pieces 0.09 s apart, 0.7 s in all, with max_silence "
            f"{self.silences[1]} s"
        )
        if not run.finished:
            raise table.broken("timeout", f"{task} did not return within "
                               f"{run.seconds:.1f} s for {what}.")
        if run.error is not None:
            if isinstance(run.error, TimeoutError):
                fired = self.limits.fired(run.call)
                source = fired[0].describe() if fired else _timeout_source(run.error)
                raise table.broken(
                    "limit-per-line",
                    f"{task} raised {type(run.error).__name__} for {what}: data never stopped "
                    f"for max_silence, but {source} fired. A limit on a whole line is not a "
                    "limit on silence.",
                )
            _judge_unexpected_error(table, task, run.error)
        got = [line.rstrip("\r\n") if isinstance(line, str) else line for line in recorder.lines]
        if len(got) != 3 or run.value != 3:
            raise table.broken(
                "wrong-lines",
                f"for {what}, {task} handed over {len(got)} lines and returned "
                f"{clip(repr(run.value), 20)}; expected 3 (one call per whole line).",
            )

    def stall(self, run: Run, what: str, silence: float) -> None:
        task, table = self.task, self.table
        what = f"{what} (max_silence {silence} s)"
        if not run.finished:
            set_by = self.limits.set_by(run.call)
            raise table.broken(
                "no-stall-detection",
                f"{task} was {_stopped(run.seconds)}, for {what}; the check stopped "
                "it. " + (f"The limits your code set: {set_by}." if set_by else
                          "Your code set no timeout at all."),
            )
        if run.error is None:
            raise table.broken(
                "swallowed-timeout",
                f"{task} returned {clip(repr(run.value), 30)} for {what}, as if the stream had "
                "ended: the timeout was caught and dropped.",
            )
        if not isinstance(run.error, TimeoutError):
            _judge_unexpected_error(table, task, run.error)
        if _late(run, silence, self.limits):
            raise table.broken(
                "no-stall-detection",
                f"{task} raised {type(run.error).__name__} only after {run.seconds:.2f} s for "
                f"{what}. The limits your code set: {self.limits.set_by(run.call) or 'none'}.",
            )
