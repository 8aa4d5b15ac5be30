"""Checks for exercise 12, server middleware: ``from local_server.checks import server_middleware``.

Each check wraps a small test application in the learner's middleware(s), serves it with
``serve()`` on the check's own loop and sends it one request of each kind a middleware must
handle, in a seeded order: a success, two slow successes of seeded lengths, ``HTTPNotFound``,
``HTTPBadRequest`` and a 401 or 429 with its own header raised by handlers, two redirects, an
unknown path, a wrong method (405) and two different unexpected exceptions. The timing checks
also send two requests at once (a start time kept in a global shows) and set the wall clock
back an hour during one request (a duration taken from ``time.time()`` shows).

It judges from what the client received (status, headers, body) and from what the server
logged: every log record the check's thread makes, of any logger, is collected (and kept out
of the notebook); a record is the learner's when the line that logged it is theirs, so
``request.app.logger`` (aiohttp's own "aiohttp.web" logger) counts, aiohttp's own
"Error handling request" records do not.

Durations are judged only against load-proof bounds: at least the sleep the handler asked
for, at most the time the client waited for the whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import logging
import random
import re
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from ..serving import serve
from .evidence import clip, exception_text, is_learner_file, learner_line
from .harness import SessionSpy, check
from .rules import Mistake, Rule, Task

SEED = 0
PREFIX = "/check"
SECRET_HOST = "ledger-db.internal"
SECRET = f"could not reach {SECRET_HOST}:5432 as user ledger_admin"
# The clock is set back this much during one request: a time server may do that any day.
CLOCK_SET_BACK_SECONDS = 3600.0
# A measured duration may exceed the client's wait by this much (rounding, clock reads).
SLACK_MS = 2.0
# How long the check waits for a held request to arrive, or to be released.
HOLD_PATIENCE_SECONDS = 3.0


class LedgerOutOfSync(RuntimeError):
    """The first unexpected exception the test application raises."""


# --- what the server logged, printed and warned ------------------------------------------------

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
_LIBRARY_DIRS = tuple(
    str(__import__("pathlib").Path(module.__file__).resolve().parent)
    for module in (aiohttp, asyncio)
)


@dataclass
class Observed:
    """What the server logged, printed and warned while the requests ran."""

    records: list[logging.LogRecord] = field(default_factory=list)
    stacks: dict[int, tuple[types.CodeType, ...]] = field(default_factory=dict)  # innermost first
    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)
    warned: list[warnings.WarningMessage] = field(default_factory=list)

    def printed(self) -> str:
        """What the code printed, to stdout or stderr (``traceback.print_exc()``)."""
        return self.stdout.getvalue() + self.stderr.getvalue()

    def learners(
        self, records: Iterable[logging.LogRecord] | None = None
    ) -> list[logging.LogRecord]:
        """The records logged by the learner's own lines, whatever the logger's name."""
        return [r for r in (self.records if records is None else records) if _is_learners(r)]

    def aiohttp_errors(self) -> list[logging.LogRecord]:
        """aiohttp's own error records (an exception escaped every middleware)."""
        return [r for r in self.records if _is_aiohttps(r) and r.exc_info]

    def escaped(self, records: Iterable[logging.LogRecord] | None = None) -> list[BaseException]:
        chosen = self.records if records is None else records
        return [
            r.exc_info[1]
            for r in chosen
            if _is_aiohttps(r) and r.exc_info and r.exc_info[1] is not None
        ]


def _is_aiohttps(record: logging.LogRecord) -> bool:
    return record.pathname.startswith(_LIBRARY_DIRS)


def _is_learners(record: logging.LogRecord) -> bool:
    return is_learner_file(record.pathname)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a learner's format string that does not match its arguments
        return str(record.msg)


def _text(record: logging.LogRecord) -> str:
    """The message and the learner's own ``extra=`` fields (not the record's bookkeeping)."""
    parts = [_message(record)]
    parts += [f"{k}={v}" for k, v in vars(record).items() if k not in _RECORD_FIELDS]
    return " ".join(parts)


def _carries(record: logging.LogRecord, raised: BaseException) -> bool:
    """True when ``record`` holds the traceback of ``raised`` (attached, or as text)."""
    if record.exc_info and record.exc_info[1] is not None:
        error: BaseException | None = record.exc_info[1]
        seen = set()
        while error is not None and id(error) not in seen:
            if error is raised:
                return True
            seen.add(id(error))
            error = error.__cause__ or error.__context__
    text = _message(record)
    return "Traceback" in text and type(raised).__name__ in text


def _has_traceback(record: logging.LogRecord) -> bool:
    return bool(record.exc_info and record.exc_info[1] is not None) or (
        "Traceback (most recent call last)" in _message(record)
    )


@contextlib.contextmanager
def _observed() -> Iterator[Observed]:
    """Collect this thread's log records, prints (stdout and stderr) and warnings, and keep
    them from the notebook.

    Every ``Logger.handle`` call made on this thread is recorded instead of handled, with the
    code objects on its stack (which middleware logged it), and the root level is lowered so
    DEBUG and INFO records are made at all. A handler on the root logger would not do: it
    misses a logger with ``propagate = False`` (lesson 12's own ``shop`` logger) and cannot
    stop the learner's own handlers from writing into the notebook. Other threads' records
    are handled as usual; everything is restored on the way out.
    """
    seen = Observed()
    thread = threading.get_ident()
    original_handle = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.thread != thread:
            original_handle(self, record)
            return
        codes = []
        frame = sys._getframe(1)
        while frame is not None and len(codes) < 60:
            codes.append(frame.f_code)
            frame = frame.f_back
        seen.stacks[id(record)] = tuple(codes)
        seen.records.append(record)

    root = logging.getLogger()
    level = root.level
    logging.Logger.handle = handle  # type: ignore[method-assign]
    root.setLevel(logging.DEBUG)
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(seen.stdout),
            contextlib.redirect_stderr(seen.stderr),
        ):
            warnings.simplefilter("always")
            try:
                yield seen
            finally:
                seen.warned = list(caught)
    finally:
        root.setLevel(level)
        logging.Logger.handle = original_handle  # type: ignore[method-assign]


# --- a wall clock the check can set back ---------------------------------------------------------


class _WallClock:
    """``time.time()`` and ``time.time_ns()``, set back on the check's thread on demand.

    A time server (NTP) may set the system clock at any moment; a duration taken from the
    wall clock then jumps. The check simulates that: while installed, the check's thread
    reads a wall clock ``offset`` seconds off, and so do the learner's functions that took
    ``time`` or ``time_ns`` by name (``from time import time``, a clock passed to a factory).
    ``time.perf_counter()`` and ``time.monotonic()`` are never touched: they cannot be set.
    """

    def __init__(self, learner_functions: Iterable[Any]) -> None:
        self.offset = 0.0
        self._thread = threading.get_ident()
        self._real = {"time": time.time, "time_ns": time.time_ns}
        self._fake = {"time": self._time, "time_ns": self._time_ns}
        self._undo: list[Callable[[], None]] = []
        self._functions = list(learner_functions)

    def _time(self) -> float:
        real = self._real["time"]()
        return real + self.offset if threading.get_ident() == self._thread else real

    def _time_ns(self) -> int:
        real = self._real["time_ns"]()
        if threading.get_ident() != self._thread:
            return real
        return real + int(self.offset * 1e9)

    def set_back(self, seconds: float) -> None:
        self.offset -= seconds

    def __enter__(self) -> _WallClock:
        for name, fake in self._fake.items():
            setattr(time, name, fake)
            self._undo.append(lambda name=name: setattr(time, name, self._real[name]))
        seen: set[int] = set()
        for function in self._functions:
            self._rebind(function, seen, depth=0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _swap(self, value: Any) -> Any:
        for name, real in self._real.items():
            if value is real:
                return self._fake[name]
        return None

    def _rebind(self, function: Any, seen: set[int], depth: int) -> None:
        """Point the learner's own references to the wall clock at the settable one."""
        function = getattr(function, "__func__", function)
        if not isinstance(function, types.FunctionType) or id(function) in seen or depth > 3:
            return
        seen.add(id(function))
        if not is_learner_file(function.__code__.co_filename):
            return
        namespace = function.__globals__
        for name, value in list(namespace.items()):
            fake = self._swap(value)
            if fake is not None:
                namespace[name] = fake
                self._undo.append(lambda ns=namespace, n=name, v=value: ns.__setitem__(n, v))
        for cell in function.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            fake = self._swap(value)
            if fake is not None:
                cell.cell_contents = fake
                self._undo.append(lambda c=cell, v=value: setattr(c, "cell_contents", v))
            else:
                self._rebind(value, seen, depth + 1)


# --- the test application ------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request the check sends, and what aiohttp answers it without any middleware."""

    method: str
    path: str
    status: int
    why: str = ""
    kind: str = "ok"  # "ok", "slow", "error" (an HTTP error), "router", "redirect", "crash"
    sleep_ms: float = 0.0
    keeps: str | None = None  # the header an HTTP error carries, which a conversion keeps

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Reply:
    """What one request got back, and which log records were made while it ran."""

    probe: Probe
    status: int
    headers: dict[str, str]
    body: str
    content_type: str
    waited_ms: float
    records: tuple[int, int] = (0, 0)

    @property
    def request(self) -> str:
        return self.probe.request

    def shown(self) -> str:
        return f"{self.status} {self.content_type} {clip(self.body, 70)!r}"


@dataclass
class Scenario:
    """The seeded variations of one check's run."""

    slow_ms: tuple[float, float]
    held_ms: float
    crash_again: BaseException
    locked: web.HTTPException
    locked_header: str
    moved_again: type[web.HTTPException]
    rng: random.Random

    @classmethod
    def seeded(cls, task: str) -> Scenario:
        rng = random.Random(f"{SEED}-{task}")
        crash_again = rng.choice(
            [
                ValueError(f"{SECRET_HOST} refused the query for user ledger_admin"),
                KeyError(f"{SECRET_HOST}/ledger_admin/password"),
                OSError(f"{SECRET_HOST}: connection reset"),
            ]
        )
        if rng.random() < 0.5:
            locked: web.HTTPException = web.HTTPUnauthorized(
                headers={"WWW-Authenticate": 'Bearer realm="check"'}, text="log in first"
            )
            header = "WWW-Authenticate"
        else:
            locked = web.HTTPTooManyRequests(headers={"Retry-After": "7"}, text="slow down")
            header = "Retry-After"
        return cls(
            slow_ms=(float(rng.randrange(30, 45)), float(rng.randrange(55, 80))),
            held_ms=float(rng.randrange(90, 130)),
            crash_again=crash_again,
            locked=locked,
            locked_header=header,
            moved_again=rng.choice(
                [web.HTTPSeeOther, web.HTTPTemporaryRedirect, web.HTTPPermanentRedirect]
            ),
            rng=rng,
        )


class ProbeApp:
    """The routes every check sends its requests to, under /check/, and the probes."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock: _WallClock | None = None
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()
        s = scenario
        again = type(s.crash_again).__name__
        self.probes = [
            Probe("GET", f"{PREFIX}/ok", 200),
            Probe(
                "GET", f"{PREFIX}/slow?ms={s.slow_ms[0]:g}", 200, kind="slow", sleep_ms=s.slow_ms[0]
            ),
            Probe("GET", f"{PREFIX}/missing", 404, "raised web.HTTPNotFound", "error"),
            Probe("GET", f"{PREFIX}/invalid", 400, "raised web.HTTPBadRequest", "error"),
            Probe(
                "GET",
                f"{PREFIX}/locked",
                s.locked.status,
                f"raised web.{type(s.locked).__name__} with a {s.locked_header} header",
                "error",
                keeps=s.locked_header,
            ),
            Probe(
                "GET",
                f"{PREFIX}/nowhere",
                404,
                "has no route (the router raises web.HTTPNotFound)",
                "router",
            ),
            Probe(
                "POST",
                f"{PREFIX}/ok",
                405,
                "has no POST route (the router raises web.HTTPMethodNotAllowed)",
                "router",
                keeps="Allow",
            ),
            Probe(
                "GET",
                f"{PREFIX}/moved",
                302,
                "raised web.HTTPFound (a redirect)",
                "redirect",
                keeps="Location",
            ),
            Probe(
                "GET",
                f"{PREFIX}/moved-too",
                s.moved_again.status_code,
                f"raised web.{s.moved_again.__name__} (a redirect)",
                "redirect",
                keeps="Location",
            ),
            Probe("GET", f"{PREFIX}/crash", 500, "raised LedgerOutOfSync", "crash"),
            Probe("GET", f"{PREFIX}/crash-again", 500, f"raised {again}", "crash"),
            Probe(
                "GET", f"{PREFIX}/slow?ms={s.slow_ms[1]:g}", 200, kind="slow", sleep_ms=s.slow_ms[1]
            ),
        ]
        self.order = list(range(len(self.probes)))
        s.rng.shuffle(self.order)
        self.held = Probe("GET", f"{PREFIX}/held", 200, kind="slow", sleep_ms=s.held_ms)
        self.quick = Probe("GET", f"{PREFIX}/ok?while=held", 200)
        self.jumped = Probe(
            "GET", f"{PREFIX}/slow?ms={s.slow_ms[0]:g}&clock=back", 200, kind="slow",
            sleep_ms=s.slow_ms[0],
        )  # fmt: skip
        self.after_jump = Probe("GET", f"{PREFIX}/ok?clock=after", 200)

    def install(self, app: web.Application) -> None:
        s = self.scenario

        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        async def slow(request: web.Request) -> web.Response:
            ms = float(request.query["ms"])
            if request.query.get("clock") == "back" and self.clock is not None:
                self.clock.set_back(CLOCK_SET_BACK_SECONDS)
            await asyncio.sleep(ms / 1000)
            return web.json_response({"slow": ms})

        async def held(request: web.Request) -> web.Response:
            await asyncio.sleep(s.held_ms / 1000)
            self.arrived.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), HOLD_PATIENCE_SECONDS)
            return web.json_response({"slow": s.held_ms})

        async def missing(request: web.Request) -> web.Response:
            raise web.HTTPNotFound(text="no such record")

        async def invalid(request: web.Request) -> web.Response:
            raise web.HTTPBadRequest(text="the id must be a number")

        async def locked(request: web.Request) -> web.Response:
            raise type(s.locked)(headers=dict(s.locked.headers), text=s.locked.text)

        async def moved(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{PREFIX}/ok")

        async def moved_too(request: web.Request) -> web.Response:
            raise s.moved_again(f"{PREFIX}/ok?from=moved")

        async def crash(request: web.Request) -> web.Response:
            raise LedgerOutOfSync(SECRET)

        async def crash_again(request: web.Request) -> web.Response:
            raise type(s.crash_again)(*s.crash_again.args)

        for path, handler in [
            ("ok", ok), ("slow", slow), ("held", held), ("missing", missing),
            ("invalid", invalid), ("locked", locked), ("moved", moved),
            ("moved-too", moved_too), ("crash", crash), ("crash-again", crash_again),
        ]:  # fmt: skip
            app.router.add_get(f"{PREFIX}/{path}", handler)

    def reply_to(self, replies: list[Reply], method: str, name: str) -> Reply:
        return next(
            r for r in replies if r.probe.method == method and r.probe.path == f"{PREFIX}/{name}"
        )


@dataclass
class Run:
    """Everything one check's requests showed."""

    app: ProbeApp
    replies: list[Reply]  # the sequential ones, in the probes' order (not the order sent)
    seen: Observed
    url: str = ""
    held: Reply | None = None
    quick: Reply | None = None
    jumped: Reply | None = None
    after_jump: Reply | None = None

    def reply(self, method: str, name: str) -> Reply:
        return self.app.reply_to(self.replies, method, name)

    def of_kind(self, *kinds: str) -> list[Reply]:
        return [r for r in self.replies if r.probe.kind in kinds]

    def records_of(self, reply: Reply) -> list[logging.LogRecord]:
        start, end = reply.records
        return self.seen.records[start:end]


async def _ask(session: aiohttp.ClientSession, probe: Probe, seen: Observed) -> Reply:
    before = len(seen.records)
    started = time.perf_counter()
    async with session.request(probe.method, probe.path, allow_redirects=False) as response:
        body = await response.text(errors="replace")
    waited = (time.perf_counter() - started) * 1000
    # Let a log line written as the response goes out land in this request's window.
    await asyncio.sleep(0)
    headers = {key: value for key, value in response.headers.items()}
    reply = Reply(probe, response.status, headers, body, response.content_type, waited)
    reply.records = (before, len(seen.records))
    return reply


async def _run(
    app: web.Application, test_app: ProbeApp, *, timing: bool, learner_functions: Iterable[Any] = ()
) -> Run:
    """Send every probe (and, for timing, the concurrent pair and the clock jump)."""
    test_app.install(app)
    replies: dict[int, Reply] = {}
    broken: tuple[str, aiohttp.ClientError] | None = None
    run: Run | None = None
    clock = _WallClock(learner_functions) if timing else contextlib.nullcontext()
    with _observed() as seen, clock as wall:
        test_app.clock = wall if isinstance(wall, _WallClock) else None
        run = Run(test_app, [], seen)
        async with serve(app) as url, aiohttp.ClientSession(base_url=url) as session:
            run.url = url
            try:
                for index in test_app.order:
                    replies[index] = await _ask(session, test_app.probes[index], seen)
                if timing:
                    await _ask_two_at_once(session, test_app, run)
                    run.jumped = await _ask(session, test_app.jumped, seen)
                    run.after_jump = await _ask(session, test_app.after_jump, seen)
            except aiohttp.ClientError as exc:  # the server hung up instead of answering
                broken = (_current_request(test_app, replies, run), exc)
    if any(isinstance(error, NotImplementedError) for error in seen.escaped()):
        raise NotImplementedError  # the exercise's stub raised inside the server
    if broken is not None:
        _no_answer(*broken, seen)
    run.replies = [replies[i] for i in range(len(test_app.probes))]
    return run


def _current_request(test_app: ProbeApp, replies: dict[int, Reply], run: Run) -> str:
    for index in test_app.order:
        if index not in replies:
            return test_app.probes[index].request
    for probe, got in [(test_app.held, run.held), (test_app.jumped, run.jumped)]:
        if got is None:
            return probe.request
    return test_app.after_jump.request


async def _ask_two_at_once(session: aiohttp.ClientSession, test_app: ProbeApp, run: Run) -> None:
    """A held request, and a quick one sent once the held one has slept its time."""
    task = asyncio.ensure_future(_ask(session, test_app.held, run.seen))
    arrived = asyncio.ensure_future(test_app.arrived.wait())
    try:
        # The held request may fail before its handler runs: then there is no pair to send.
        await asyncio.wait(
            {task, arrived}, timeout=HOLD_PATIENCE_SECONDS, return_when="FIRST_COMPLETED"
        )
        if test_app.arrived.is_set():
            run.quick = await _ask(session, test_app.quick, run.seen)
    finally:
        arrived.cancel()
        test_app.released.set()
        run.held = await task


def _no_answer(request: str, error: aiohttp.ClientError, seen: Observed) -> None:
    """The Mistake for a request the server closed the connection on, with aiohttp's reason."""
    logged = seen.escaped()
    cause = logged[0] if logged else error
    reason = f"{'aiohttp logged' if logged else 'the client saw'} {exception_text(cause)}"
    hint = "aiohttp could not send the response your middleware returned: see the error above."
    if isinstance(cause, TypeError) and "non-str" in str(cause):
        hint = 'every header value must be a str: `f"app;dur={ms:.1f}"`, not the float `ms`.'
    raise Mistake(
        "no-answer",
        f"{request} got no response: the server closed the connection ({reason}).",
        hint,
    )


def _require_middleware(table: Task, fn: Any, name: str) -> None:
    if getattr(fn, "__middleware_version__", None) != 1:
        raise table.broken(
            "not-decorated",
            f"{name} has no @web.middleware: aiohttp 3 takes an undecorated function for an "
            "old-style middleware factory, calls it with (app, handler), and every request "
            "fails with 500.",
            f"put `@web.middleware` on the line above `async def {name}(request, handler):`.",
        )


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


# --- rules --------------------------------------------------------------------------------------

R = {
    rule.problem: rule
    for rule in (
        Rule(
            "not-decorated",
            "The `@web.middleware` line above each stub is already written: keep it",
            "the middleware's `@web.middleware` mark, which aiohttp reads",
            "put `@web.middleware` on the line above `async def ...(request, handler):`.",
        ),
        Rule(
            "breaks-success",
            "returns the handler's response unchanged when it succeeds",
            "GET /check/ok and two slow successes: status and body, as the handler made them",
            "on success, `return await handler(request)`: the response must come back out "
            "unchanged (a middleware that forgets `return` answers 500).",
        ),
        Rule(
            "http-error-to-500",
            "lets every `web.HTTPException` keep its status: a 404, 400, 401/429 or 405",
            "each HTTP error raised by a handler or the router: the status the client got",
            "catch `web.HTTPException` before `Exception` and re-raise it (or turn it into a "
            "JSON response with `status=exc.status`): it was raised on purpose.",
        ),
        Rule(
            "http-error-status",
            "lets every `web.HTTPException` keep its status",
            "each HTTP error raised by a handler or the router: the status the client got",
            "keep the exception's own status: re-raise it, or `web.json_response(..., "
            "status=exc.status, headers=...)`.",
        ),
        Rule(
            "middleware-crashed",
            "handles every request without crashing itself",
            "an exception aiohttp logged that no handler raised: the middleware's own, with "
            "its line",
            "the exception and your line are quoted above: that line fails for this request.",
        ),
        Rule(
            "redirect-broken",
            "a redirect keeps its status and its `Location` (it is an `HTTPException`, not an "
            "`HTTPError`)",
            "two redirects (302 and a 303, 307 or 308): status and Location",
            "a redirect is a web.HTTPException but not a web.HTTPError: re-raise every "
            "`web.HTTPException` (convert only those with status >= 400).",
        ),
        Rule(
            "redirect-converted",
            "re-raise anything below 400 (a redirect is not an error) unchanged",
            "the redirects' bodies: a JSON error body on a 3xx",
            "convert only errors: `if exc.status < 400: raise` first in the "
            "`except web.HTTPException` block.",
        ),
        Rule(
            "lost-headers",
            "convert it: return a JSON response with the exception's status **and its headers**",
            "the Allow of the 405 and the WWW-Authenticate or Retry-After of the 401/429",
            "copy the exception's headers into your JSON response, without its Content-Type: "
            "`{k: v for k, v in exc.headers.items() if k != 'Content-Type'}`.",
        ),
        Rule(
            "returns-http-exception",
            "Re-raise it with `raise` (returning the exception object instead is deprecated)",
            "aiohttp's DeprecationWarning 'returning HTTPException object is deprecated'",
            "re-raise it: a bare `raise` in the `except web.HTTPException` block (set a "
            "header on it first if you need to), never `return exc`.",
        ),
        Rule(
            "no-answer",
            "every request gets an answer",
            "a request the server closed the connection on, and the error aiohttp logged",
            "aiohttp could not send the response your middleware returned: see the error.",
        ),
        # error middleware
        Rule(
            "exception-escaped",
            "turns any other exception into `web.json_response(..., status=500)`",
            "the two crashes: aiohttp's own plain-text 500 and its error log",
            "catch `Exception` (after re-raising web.HTTPException) and return "
            '`web.json_response({"error": ..., "error_id": ...}, status=500)`.',
        ),
        Rule(
            "crash-status",
            "turns any other exception into a response with `status=500`",
            "the status of the two crashes",
            "an exception nobody raised on purpose is a server error: status=500.",
        ),
        Rule(
            "leaks-details",
            "a generic message that says nothing about the exception (no message, no type, no "
            "traceback), in the body or in a header",
            "the 500s' bodies and every header: the exception's message, its type's name, "
            "'Traceback', a source line",
            "the client gets a generic message and an error id only; the details go to the "
            "server's log with `errors_log.exception(...)`.",
        ),
        Rule(
            "not-json-500",
            '`web.json_response({"error": ..., "error_id": ...}, status=500)`',
            "the 500s' Content-Type and body",
            'return `web.json_response({"error": "Internal Server Error", "error_id": ...}, '
            "status=500)`.",
        ),
        Rule(
            "no-error-id",
            'an `"error_id"` in the JSON body',
            "the 500s' JSON: an `error_id` string or number",
            'add an id, e.g. `error_id = uuid.uuid4().hex`, to the body: `{"error": ..., '
            '"error_id": error_id}`, and log it with the traceback.',
        ),
        Rule(
            "same-error-id",
            "an `error_id` that is new for each error",
            "two crashes: their error ids",
            "make a new id for each error, inside the `except` block: `uuid.uuid4().hex`.",
        ),
        Rule(
            "traceback-not-logged",
            "logs the traceback on the server: `errors_log.exception(...)` (any logger)",
            "log records of any logger made by your code while a crash was answered: one "
            "holding that exception's traceback",
            'inside `except Exception:` call `errors_log.exception("error %s on %s %s", '
            "error_id, request.method, request.path)`: it logs at ERROR with the traceback.",
        ),
        Rule(
            "traceback-printed",
            "logs the traceback (with a logger, not `print`)",
            "what your code printed while a crash was answered",
            "a server's stdout is not its log: `errors_log.exception(...)` inside `except "
            "Exception:` logs the message with the traceback.",
        ),
        Rule(
            "traceback-not-error",
            "logs the traceback at level **ERROR**",
            "the level of the record holding the traceback",
            "`errors_log.exception(...)` logs at ERROR; a server configured for WARNING or "
            "INFO drops a DEBUG record, and alerts watch ERROR.",
        ),
        Rule(
            "id-not-logged",
            "logs the traceback with that id in the message",
            "the record holding the traceback: the error_id the client got, in its message",
            'put the id in the log message: `errors_log.exception("error %s ...", error_id, '
            "...)`, the same id as in the body.",
        ),
        # timing middleware
        Rule(
            "no-header",
            "adds a timing header to every response: `Server-Timing: app;dur=12.3` (or "
            "`X-Response-Time: 12.3ms`)",
            "the headers of GET /check/ok",
            'set it on the response: `response.headers["Server-Timing"] = f"app;dur={ms:.1f}"`.',
        ),
        Rule(
            "no-header-on-errors",
            "to every response it can, the errors included: set the header on a raised "
            "`web.HTTPException` and re-raise it",
            "the headers of every HTTP error, redirect and 500",
            "catch `web.HTTPException as exc`, set the header on `exc` (it is a response too) "
            "and re-raise it; or set it in a `finally:` block.",
        ),
        Rule(
            "not-a-number",
            "a timing header in milliseconds: `app;dur=12.3`",
            "the header's value: a number of milliseconds",
            "write milliseconds as a number: `Server-Timing: app;dur=12.3` or "
            "`X-Response-Time: 12.3ms`.",
        ),
        Rule(
            "seconds-not-ms",
            "a timing header in **milliseconds**",
            "slow requests of seeded lengths: the value, between the sleep asked for and the "
            "client's whole wait, once multiplied by 1000",
            "multiply by 1000: `(time.perf_counter() - request[START]) * 1000`.",
        ),
        Rule(
            "microseconds-not-ms",
            "a timing header in **milliseconds**",
            "slow requests of seeded lengths: the value, once divided by 1000",
            "seconds times 1000 are milliseconds: `(time.perf_counter() - start) * 1000`.",
        ),
        Rule(
            "measures-nothing",
            "times the request: from before `await handler(request)` to after it",
            "slow requests of seeded lengths: the value is at least the sleep the handler asked "
            "for",
            "read the clock before `await handler(request)` and again after it, e.g. "
            "`request[START] = time.perf_counter()` first thing in the middleware.",
        ),
        Rule(
            "wrong-value",
            "a duration in milliseconds: the time the request took",
            "every value: not negative, and at most the time the client waited for the answer",
            "`(time.perf_counter() - request[START]) * 1000`: the end minus the start, in "
            "parentheses, times 1000.",
        ),
        Rule(
            "wall-clock",
            "measures with a clock that never jumps, `time.perf_counter()`",
            "the wall clock set back an hour during one slow request: its duration",
            "`time.time()` follows the system clock, which can be set at any moment: use "
            "`time.perf_counter()` (or `time.monotonic()`) for durations.",
        ),
        Rule(
            "start-shared",
            "keeps the start time per request: on the request (`request[START]`) or in a "
            "local variable, never in a global",
            "two requests at once: the first one's duration, at least its handler's sleep",
            "a global (or a module-level attribute) is one start for every request: keep it "
            "on the request, `request[START] = time.perf_counter()`, or in a local variable.",
        ),
        Rule(
            "string-key",
            "with the typed key `START`, never a string key",
            "every key on each request: a plain string key (aiohttp warns about it)",
            'declare a typed key once, `START = web.RequestKey("start", float)`, and use '
            "`request[START]`.",
        ),
        Rule(
            "not-logged",
            "logs one line per request with a logger (`access_log`)",
            "log records of any logger made by your code while each request ran",
            'log one line per request: `access_log.info("%s %s %s %.1f ms", request.method, '
            "request.path, status, ms)`.",
        ),
        Rule(
            "not-logged-on-error",
            "for failed requests too (a `finally:` block runs in every case)",
            "the records made while each HTTP error, redirect and 500 ran",
            "write the log line in a `finally:` block, so failed requests are logged too.",
        ),
        Rule(
            "printed-not-logged",
            "logs one line per request with a logger (`access_log`), not `print`",
            "what your code printed while the requests ran",
            'log it: `access_log.info("%s %s %s %.1f ms", request.method, request.path, '
            "status, ms)`.",
        ),
        Rule(
            "logged-twice",
            "logs **one** line per request",
            "the records each middleware made while one request ran",
            "write the line once, when the request is done (in the `finally:` block), and "
            "list each middleware once.",
        ),
        Rule(
            "logged-at-debug",
            "at level INFO (or above)",
            "the level of each access record",
            "use `access_log.info(...)`: a server configured for INFO drops DEBUG records.",
        ),
        Rule(
            "log-missing-request",
            "holding the method, the path",
            "the access line of each request: its method and path",
            "put `request.method` and `request.path` in the line.",
        ),
        Rule(
            "log-missing-status",
            "holding ... the status",
            "the access line of each request: its status as a number",
            "for a raised web.HTTPException the status is `exc.status`; for a response, "
            "`response.status`.",
        ),
        Rule(
            "log-missing-duration",
            "holding ... the duration",
            "the access line of each slow request: a number between its sleep and the "
            "client's wait, in ms (or in s)",
            'log the milliseconds too: `access_log.info("%s %s %s %.1f ms", method, path, '
            "status, ms)`.",
        ),
        # create_app
        Rule(
            "not-an-application",
            "returns a `web.Application`",
            "the type of what create_app() returned",
            "define it with a plain `def create_app()` that returns "
            "`web.Application(middlewares=[...])`.",
        ),
        Rule(
            "missing-error-middleware",
            "your two middlewares installed: the error middleware",
            "the crashes: aiohttp's own plain-text 500, so no middleware caught them",
            "install both: `web.Application(middlewares=[timing_middleware, error_middleware])`.",
        ),
        Rule(
            "missing-timing-middleware",
            "your two middlewares installed: the timing middleware",
            "GET /check/ok: no timing header",
            "install both: `web.Application(middlewares=[timing_middleware, error_middleware])`.",
        ),
        Rule(
            "wrong-order",
            "the 500 the error middleware makes of a crash is still timed and logged with its "
            "status: the first middleware in the list is the outermost",
            "the crashes' 500s: a timing header and a logged status",
            "list the timing middleware first (outermost): "
            "`web.Application(middlewares=[timing_middleware, error_middleware])`.",
        ),
    )
}

_HTTP = [
    "not-decorated",
    "breaks-success",
    "http-error-to-500",
    "http-error-status",
    "middleware-crashed",
    "redirect-broken",
    "redirect-converted",
    "lost-headers",
    "returns-http-exception",
    "no-answer",
]
_ERRORS = [
    "exception-escaped",
    "crash-status",
    "leaks-details",
    "not-json-500",
    "no-error-id",
    "same-error-id",
    "traceback-not-logged",
    "traceback-printed",
    "traceback-not-error",
    "id-not-logged",
]
_TIMING = [
    "no-header",
    "no-header-on-errors",
    "not-a-number",
    "seconds-not-ms",
    "microseconds-not-ms",
    "measures-nothing",
    "wrong-value",
    "wall-clock",
    "start-shared",
    "string-key",
    "not-logged",
    "not-logged-on-error",
    "printed-not-logged",
    "logged-twice",
    "logged-at-debug",
    "log-missing-request",
    "log-missing-status",
    "log-missing-duration",
]
_APP = [
    "not-an-application",
    "missing-error-middleware",
    "missing-timing-middleware",
    "wrong-order",
]

ERROR_MIDDLEWARE = Task("error_middleware", *(R[code] for code in _HTTP + _ERRORS))
TIMING_MIDDLEWARE = Task("timing_middleware", *(R[code] for code in _HTTP + _TIMING))
CREATE_APP = Task(
    "create_app",
    *(
        R[code]
        for code in _APP
        + _HTTP
        + [c for c in _ERRORS if c != "exception-escaped"]
        + [c for c in _TIMING if c != "no-header"]
    ),
)


# --- judging what every middleware must leave alone ---------------------------------------------


_DEFAULT_500 = "500 Internal Server Error"


def _escaped_for(run: Run, reply: Reply) -> BaseException | None:
    """The exception aiohttp logged for ``reply`` (it escaped every middleware), if any."""
    escaped = run.seen.escaped(run.records_of(reply))
    return escaped[-1] if escaped else None


def _raised_by_route(reply: Reply, error: BaseException) -> bool:
    """True for the exception the route itself raised (an HTTP error, or the planned crash)."""
    if reply.probe.kind == "crash":
        return isinstance(error, (LedgerOutOfSync, ValueError, KeyError, OSError)) and (
            SECRET_HOST in str(error)
        )
    return isinstance(error, web.HTTPException)


def _middleware_crash(table: Task, run: Run, reply: Reply, names: str) -> Mistake | None:
    """The Mistake when a middleware raised an exception of its own while handling ``reply``."""
    if reply.status != 500:
        return None
    error = _escaped_for(run, reply)
    if error is None or _raised_by_route(reply, error):
        return None
    where = learner_line(error)
    origin = f" at {where}" if where else ""
    hint = None
    if isinstance(error, ValueError) and "Content-Type" in str(error):
        hint = (
            "`exc.headers` holds the error's own Content-Type (text/plain), and json_response "
            "sets its own: copy the headers without it, `{k: v for k, v in exc.headers.items() "
            "if k != 'Content-Type'}`."
        )
    elif isinstance(error, AttributeError) and "NoneType" in str(error) and "prepare" in str(error):
        return table.broken(
            "breaks-success",
            f"{reply.request} {reply.probe.why or 'succeeds'}; with {names}, the client got "
            "aiohttp's plain 500, and aiohttp logged 'Missing return statement on request "
            "handler': a middleware returned None instead of the response.",
        )
    elif isinstance(error, UnboundLocalError):
        hint = (
            "a variable set only on success was used after the handler raised: set it before "
            "the `try:` (e.g. `response = None`), or use the exception in its `except` block."
        )
    return table.broken(
        "middleware-crashed",
        f"{reply.request} {reply.probe.why or 'succeeds'}; with {names}, the client got "
        f"aiohttp's plain 500, because the middleware raised {exception_text(error)}{origin}.",
        hint,
    )


def _judge_success(table: Task, run: Run, names: str) -> None:
    for reply in run.of_kind("ok", "slow"):
        if reply.probe.kind == "ok":
            expected = '{"ok": true}'
        else:
            expected = json.dumps({"slow": reply.probe.sleep_ms})
        if reply.status == 200 and reply.body == expected:
            continue
        crash = _middleware_crash(table, run, reply, names)
        if crash is not None:
            raise crash
        raise table.broken(
            "breaks-success",
            f"{reply.request} answers 200 {expected}; with {names}, it answered {reply.shown()}.",
        )


def _judge_http_errors(table: Task, run: Run, names: str) -> None:
    for reply in run.of_kind("error", "router", "redirect"):
        if reply.status == reply.probe.status:
            continue
        crash = _middleware_crash(table, run, reply, names)
        if crash is not None:
            raise crash
        if reply.probe.kind == "redirect":
            raise table.broken(
                "redirect-broken",
                f"{reply.request} {reply.probe.why}; with {names}, the client got "
                f"{reply.status} instead of {reply.probe.status}.",
            )
        raise table.broken(
            "http-error-to-500" if reply.status == 500 else "http-error-status",
            f"{reply.request} {reply.probe.why}, which aiohttp answers with {reply.probe.status}; "
            f"with {names}, the client got {reply.shown()}.",
        )
    for reply in run.of_kind("redirect"):
        if reply.probe.keeps not in reply.headers:
            raise table.broken(
                "redirect-broken",
                f"{reply.request} {reply.probe.why}; the client got a {reply.status} without "
                f"its `Location` header, so it cannot follow it: {clip(reply.body, 60)!r}.",
            )
        data = _json(reply.body)
        if isinstance(data, dict) and "error" in data:
            raise table.broken(
                "redirect-converted",
                f"{reply.request} {reply.probe.why}; with {names}, its {reply.status} came with "
                f"the JSON error body {clip(reply.body, 60)!r}: a redirect is not an error.",
            )
    for reply in run.of_kind("error", "router"):
        if reply.probe.keeps and reply.probe.keeps not in reply.headers:
            raise table.broken(
                "lost-headers",
                f"{reply.request} answered {reply.status} without the `{reply.probe.keeps}` "
                f"header the exception carries ({reply.probe.why}).",
            )


def _judge_returned_exceptions(table: Task, run: Run, names: str) -> None:
    """aiohttp warns when the middleware chain returns a web.HTTPException instead of raising it."""
    if any("returning HTTPException" in str(w.message) for w in run.seen.warned):
        raise table.broken(
            "returns-http-exception",
            f"with {names}, a web.HTTPException came back as the response instead of being "
            "raised, and aiohttp warned: 'returning HTTPException object is deprecated (#2415) "
            "and will be removed, please raise the exception instead'.",
        )


def _judge_answers(table: Task, run: Run, names: str) -> None:
    _judge_success(table, run, names)
    _judge_http_errors(table, run, names)
    _judge_returned_exceptions(table, run, names)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# --- error middleware judgements -------------------------------------------------------------


def _leaks(reply: Reply, raised: type[BaseException]) -> list[str]:
    """What a 500 tells the client about the exception, in its body or in a header."""
    places = {
        "the body": reply.body,
        **{f"the {k} header": f"{k}: {v}" for k, v in reply.headers.items()},
    }
    found = []
    for what, sign in (
        ("the exception's message", SECRET_HOST),
        ("the exception's type", raised.__name__),
        ("a traceback", "Traceback"),
        ("a source line", 'File "'),
    ):
        where = [place for place, text in places.items() if sign in text]
        if where:
            found.append(f"{what} (in {where[0]})")
    return found


def _judge_crashes(table: Task, run: Run, names: str) -> None:
    crashes = run.of_kind("crash")
    raised = [LedgerOutOfSync, type(run.app.scenario.crash_again)]
    for reply in crashes:
        crash = _middleware_crash(table, run, reply, names)
        if crash is not None:
            raise crash
        if reply.status == 500 and reply.body.startswith(_DEFAULT_500):
            if "exception-escaped" in table.rules:
                raise table.broken(
                    "exception-escaped",
                    f"{reply.request} {reply.probe.why} and it went through {names}: aiohttp "
                    f"answered with its own plain-text 500 {clip(reply.body, 40)!r}.",
                )
            raise table.broken(
                "missing-error-middleware",
                f"{reply.request} {reply.probe.why} and aiohttp answered with its own "
                "plain-text 500: no middleware caught it.",
            )
    for reply, kind in zip(crashes, raised, strict=True):
        if reply.status != 500:
            raise table.broken(
                "crash-status",
                f"{reply.request} {reply.probe.why}, an unexpected exception; the client got "
                f"{reply.status} instead of 500.",
            )
        leaks = _leaks(reply, kind)
        if leaks:
            raise table.broken(
                "leaks-details",
                f"the 500 for {reply.request} tells the client {' and '.join(leaks[:2])}: "
                f"{clip(reply.body, 90)!r}.",
            )
        data = _json(reply.body)
        if not isinstance(data, dict) or reply.content_type != "application/json":
            raise table.broken(
                "not-json-500",
                f"the 500 for {reply.request} is {reply.content_type} {clip(reply.body, 60)!r}, "
                "not a JSON object.",
            )
    ids = []
    for reply in crashes:
        data = _json(reply.body)
        error_id = data.get("error_id") if isinstance(data, dict) else None
        if not error_id or not isinstance(error_id, (str, int)) or isinstance(error_id, bool):
            raise table.broken(
                "no-error-id",
                f"the 500 for {reply.request} has no `error_id`: {clip(reply.body, 80)!r}.",
            )
        ids.append(error_id)
    if ids[0] == ids[1]:
        raise table.broken(
            "same-error-id",
            f"two different crashes got the same error_id {clip(str(ids[0]), 40)!r}: it cannot "
            "lead to one traceback.",
        )
    for reply, error_id in zip(crashes, ids, strict=True):
        _judge_crash_logged(table, run, reply, error_id)


def _judge_crash_logged(table: Task, run: Run, reply: Reply, error_id: Any) -> None:
    records = run.seen.learners(run.records_of(reply))
    name = reply.probe.why.removeprefix("raised ")
    holding = [
        r
        for r in records
        if (r.exc_info and r.exc_info[1] is not None and type(r.exc_info[1]).__name__ == name)
        or ("Traceback" in _message(r) and name in _message(r))
        or (r.exc_info and r.exc_info[1] is not None and _chained_name(r.exc_info[1], name))
    ]
    if not holding:
        printed = run.seen.printed()
        if name in printed or "Traceback" in printed:
            raise table.broken(
                "traceback-printed",
                f"the traceback of {reply.request} was printed (to stdout or stderr), not "
                "logged: what a server prints is not its log, and no handler, level or file "
                "applies to it.",
            )
        said = [clip(_message(r), 60) for r in records]
        also = f" (it logged {said[0]!r}, without the exception)" if said else ""
        raise table.broken(
            "traceback-not-logged",
            f"{reply.request} {reply.probe.why}, and no log record of any logger holds its "
            f"traceback{also}: the client got an id, and nothing on the server leads from it "
            "to the bug.",
        )
    if not any(str(error_id) in _text(r) for r in holding):
        raise table.broken(
            "id-not-logged",
            f"the traceback of {reply.request} was logged, but not with the error_id "
            f"{clip(str(error_id), 40)!r} the client got: a bug report quoting the id cannot "
            "be matched to it.",
        )
    if max(r.levelno for r in holding) < logging.ERROR:
        level = logging.getLevelName(max(r.levelno for r in holding))
        raise table.broken(
            "traceback-not-error",
            f"the traceback of {reply.request} was logged at {level}: a server configured "
            "for WARNING drops it, and nothing alerts on it.",
        )


def _chained_name(error: BaseException, name: str) -> bool:
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if type(current).__name__ == name:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@check(ERROR_MIDDLEWARE)
async def error_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """HTTP errors keep their status; a crash is a generic JSON 500 with a logged id."""
    table = ERROR_MIDDLEWARE
    _require_middleware(table, learner, "error_middleware")
    test_app = ProbeApp(Scenario.seeded("error_middleware"))
    app = web.Application(middlewares=[learner])
    run = await _run(app, test_app, timing=False)
    names = "error_middleware"
    _judge_answers(table, run, names)
    _judge_crashes(table, run, names)
    converted = run.reply("GET", "missing").content_type == "application/json"
    how = "turned into JSON with their own status and headers" if converted else "re-raised"
    return (
        f"404, 400, {run.reply('GET', 'locked').status} and 405 {how}, both redirects untouched; "
        "two different crashes became JSON 500s with their own error ids, and each traceback "
        "was logged at ERROR with its id."
    )


# --- timing middleware judgements ------------------------------------------------------------

NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"


def _timing(reply: Reply) -> tuple[str | None, float | None]:
    """(the header as sent, its value in milliseconds or None if it is not a number)."""
    if "Server-Timing" in reply.headers:
        raw = reply.headers["Server-Timing"]
        values = [float(v) for v in re.findall(rf'dur="?({NUMBER})"?', raw)]
        return f"Server-Timing: {raw}", max(values, key=abs) if values else None
    if "X-Response-Time" in reply.headers:
        raw = reply.headers["X-Response-Time"]
        match = re.fullmatch(rf"\s*({NUMBER})\s*(ms|s)?\s*", raw)
        if not match:
            return f"X-Response-Time: {raw}", None
        value = float(match.group(1))
        return f"X-Response-Time: {raw}", value * 1000 if match.group(2) == "s" else value
    return None, None


def _bounds(reply: Reply) -> tuple[float, float]:
    """The load-proof range of a true duration: its sleep, to the client's whole wait."""
    return reply.probe.sleep_ms * 0.95, reply.waited_ms * 1.05 + SLACK_MS


def _within(value: float, reply: Reply) -> bool:
    low, high = _bounds(reply)
    return low <= value <= high


def _judge_timing_headers(table: Task, run: Run, names: str) -> None:
    ok = run.reply("GET", "ok")
    if _timing(ok)[0] is None:
        code = "no-header" if "no-header" in table.rules else "missing-timing-middleware"
        raise table.broken(
            code,
            f"GET {ok.probe.path} answered {ok.status} with no `Server-Timing` or "
            f"`X-Response-Time` header (with {names}).",
        )
    for reply in run.replies:
        if _timing(reply)[0] is not None:
            continue
        if reply.probe.kind == "crash" and "wrong-order" in table.rules:
            raise table.broken(
                "wrong-order",
                f"the 500 for {reply.request} has no timing header, while GET {ok.probe.path} "
                "has one: the timing middleware sits inside the error middleware, so it saw "
                "the raw exception and never the 500 the error middleware made of it.",
            )
        raise table.broken(
            "no-header-on-errors",
            f"{reply.request} answered {reply.status} with no timing header, while "
            f"GET {ok.probe.path} has one: the error was raised as a web.HTTPException, and "
            "the code after `await handler(request)` never ran.",
        )
    for reply in run.replies:
        header, value = _timing(reply)
        if value is None:
            raise table.broken(
                "not-a-number",
                f"the timing header of {reply.request} is `{clip(str(header), 60)}`: no number "
                "of milliseconds in it.",
            )
    negative = [r for r in run.replies if (_timing(r)[1] or 0) < 0]
    if negative:
        header = _timing(negative[0])[0]
        every = " on every request" if len(negative) == len(run.replies) else ""
        raise table.broken(
            "wrong-value",
            f"the timing header of {negative[0].request} says `{clip(str(header), 60)}`, a "
            f"negative duration{every}: is `* 1000` applied to the start alone (parentheses "
            "missing), or the start subtracted from the end the wrong way round?",
        )
    for reply in run.of_kind("slow"):
        _judge_duration(table, reply)
    for reply in run.replies:
        header, value = _timing(reply)
        assert value is not None
        if value > _bounds(reply)[1]:
            _judge_duration(table, reply)
    _judge_concurrent(table, run)
    _judge_jump(table, run)


def _judge_duration(table: Task, reply: Reply) -> None:
    """One request's header value against its load-proof bounds, with the likely slip named."""
    header, value = _timing(reply)
    assert value is not None
    if _within(value, reply):
        return
    low = _bounds(reply)[0]
    took = (
        f"its handler sleeps {reply.probe.sleep_ms:g} ms and the client waited "
        f"{reply.waited_ms:.0f} ms"
        if reply.probe.sleep_ms
        else f"the client waited {reply.waited_ms:.1f} ms for it"
    )
    shown = clip(str(header), 60)
    if reply.probe.sleep_ms and _within(value * 1000, reply):
        raise table.broken(
            "seconds-not-ms",
            f"{reply.request}: {took}, and its header says `{shown}`: seconds written where "
            "milliseconds belong.",
        )
    if reply.probe.sleep_ms and _within(value / 1000, reply):
        raise table.broken(
            "microseconds-not-ms",
            f"{reply.request}: {took}, and its header says `{shown}`: about 1000 times too "
            "much, microseconds where milliseconds belong.",
        )
    if value < low:
        raise table.broken(
            "measures-nothing",
            f"{reply.request}: {took}, and its header says `{shown}`: the clock did not run "
            "around the handler.",
        )
    raise table.broken(
        "wrong-value",
        f"{reply.request}: {took}, and its header says `{shown}`: more than the whole "
        "answer took, so not its duration (a constant? a timestamp?).",
    )


def _judge_concurrent(table: Task, run: Run) -> None:
    held, quick = run.held, run.quick
    if held is None or quick is None:
        return
    header, value = _timing(held)
    if value is None:
        return
    if value < _bounds(held)[0]:
        raise table.broken(
            "start-shared",
            f"while {held.request} ran (its handler sleeps {held.probe.sleep_ms:g} ms), "
            f"{quick.request} came in; then {held.request}'s header said "
            f"`{clip(str(header), 40)}`: both requests used one start time, the later one's.",
        )


def _judge_jump(table: Task, run: Run) -> None:
    jumped = run.jumped
    if jumped is None:
        return
    header, value = _timing(jumped)
    if value is None or _within(value, jumped):
        return
    if abs(value + CLOCK_SET_BACK_SECONDS * 1000) < CLOCK_SET_BACK_SECONDS * 100:
        raise table.broken(
            "wall-clock",
            f"the check set the system clock back an hour while {jumped.request} ran (as a "
            f"time server may), and its header said `{clip(str(header), 50)}`: the duration "
            "was taken from the wall clock, time.time().",
        )
    _judge_duration(table, jumped)


# --- access-log judgements -------------------------------------------------------------------


def _access_lines(
    run: Run, reply: Reply, codes: dict[types.CodeType, str]
) -> dict[str, list[logging.LogRecord]]:
    """The learner's non-traceback records made while ``reply`` ran, by the middleware that
    made them: the innermost of ``codes`` on the record's stack ("" when none is on it)."""
    lines: dict[str, list[logging.LogRecord]] = {}
    for record in run.seen.learners(run.records_of(reply)):
        if _has_traceback(record):
            continue
        stack = run.seen.stacks.get(id(record), ())
        owner = next((codes[code] for code in stack if code in codes), "")
        lines.setdefault(owner, []).append(record)
    return lines


def _numbers(text: str, reply: Reply, base: str) -> list[float]:
    """The numbers in a log line, but those of its URL: its port, its path, its query."""
    path = reply.probe.path.partition("?")[0]
    for noise in sorted({base, reply.probe.path, path} - {""}, key=len, reverse=True):
        text = text.replace(noise, " ")
    return [float(n) for n in re.findall(NUMBER, text)]


def _judge_access_log(
    table: Task, run: Run, codes: dict[types.CodeType, str], duplicated: list[str]
) -> None:
    replies = sorted(run.replies, key=lambda r: r.status >= 400 or r.probe.kind == "redirect")
    logged_successes = False
    printed = run.seen.printed()
    base = run.url.removeprefix("http://")
    for reply in replies:
        groups = _access_lines(run, reply, codes)
        lines = [record for group in groups.values() for record in group]
        failed = reply.status >= 300
        if not lines:
            if reply.probe.path.split("?")[0] in printed:
                raise table.broken(
                    "printed-not-logged",
                    f"{reply.request} was printed, not logged: `print` has no level and no "
                    "logger name, and cannot be routed or filtered in production.",
                )
            if not failed or not logged_successes:
                raise table.broken(
                    "not-logged",
                    f"{reply.request} answered {reply.status}, and your code made no log "
                    "record (of any logger) while it ran.",
                )
            raise table.broken(
                "not-logged-on-error",
                f"{reply.request} answered {reply.status}, and no log record was made while it "
                "ran, while successful requests are logged: the line is skipped when the "
                "handler raises.",
            )
        if not failed:
            logged_successes = True
        twice = [(owner, group) for owner, group in groups.items() if len(group) > 1]
        if twice:
            owner, group = twice[0]
            listed = f" ({owner} is listed twice in the middlewares)" if owner in duplicated else ""
            said = " | ".join(clip(_message(r), 50) for r in group[:2])
            raise table.broken(
                "logged-twice",
                f"{reply.request} was logged {len(group)} times{listed}: {said!r}; one line per "
                "request holds everything about it.",
            )
        _judge_line(table, reply, lines, base)


def _judge_line(table: Task, reply: Reply, lines: list[logging.LogRecord], base: str) -> None:
    """Some line made while ``reply`` ran holds its method, path, status (and duration)."""
    if all(line.levelno < logging.INFO for line in lines):
        raise table.broken(
            "logged-at-debug",
            f"the line for {reply.request} is logged at {lines[-1].levelname}: "
            f"{clip(_message(lines[-1]), 60)!r}; a server configured for INFO drops it.",
        )
    path = reply.probe.path.split("?")[0]
    named = [r for r in lines if reply.probe.method in _text(r) and path in _text(r)]
    if not named:
        raise table.broken(
            "log-missing-request",
            f"the line logged for {reply.request} does not name its method and path: "
            f"{clip(_message(lines[-1]), 80)!r}.",
        )
    status = re.compile(rf"(?<![\d.]){reply.status}(?![\d.])")
    with_status = [r for r in named if status.search(_text(r))]
    if not with_status:
        raise table.broken(
            "log-missing-status",
            f"the line logged for {reply.request} does not hold its status {reply.status}: "
            f"{clip(_message(named[-1]), 80)!r}.",
        )
    if reply.probe.kind != "slow":
        return
    for record in with_status:
        numbers = [n for n in _numbers(_text(record), reply, base) if n != reply.status]
        if any(_within(n, reply) or _within(n * 1000, reply) for n in numbers):
            return
    raise table.broken(
        "log-missing-duration",
        f"the line logged for {reply.request} (its handler sleeps {reply.probe.sleep_ms:g} ms) "
        f"holds no duration: {clip(_message(with_status[-1]), 80)!r}.",
    )


def _key_watcher(found: list[Any]) -> Any:
    """An outermost middleware that notes every key on the request that is not a RequestKey.

    aiohttp warns about such a key only once per key and process, so the warning is no
    evidence on a second run; the request's own keys are, every time.
    """

    @web.middleware
    async def watch_request_keys(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            found.extend(key for key in request if not isinstance(key, web.RequestKey))

    return watch_request_keys


def _judge_request_keys(table: Task, found: list[Any]) -> None:
    if found:
        raise table.broken(
            "string-key",
            f"the middleware stores per-request state under the plain key {found[0]!r} "
            f"(`request[{found[0]!r}] = ...`), and aiohttp warns about it: a plain key can "
            "collide with another library's.",
        )


@web.middleware
async def reference_error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """The lesson's error middleware: HTTP errors re-raised, a crash a logged JSON 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        logging.getLogger("check.errors").exception("error on %s", request.path)
        return web.json_response({"error": "Internal Server Error", "error_id": "x"}, status=500)


def _middleware_codes(middlewares: Iterable[Any]) -> dict[types.CodeType, str]:
    """The code object of each learner middleware, to tell whose a log record is."""
    codes: dict[types.CodeType, str] = {}
    for middleware in middlewares:
        function = getattr(middleware, "__func__", middleware)
        code = getattr(function, "__code__", None)
        if code is not None and is_learner_file(code.co_filename):
            codes.setdefault(code, _name(middleware))
    return codes


@check(TIMING_MIDDLEWARE)
async def timing_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """A timing header and an access-log line for every request, failed ones included."""
    table = TIMING_MIDDLEWARE
    _require_middleware(table, learner, "timing_middleware")
    plain_keys: list[Any] = []
    test_app = ProbeApp(Scenario.seeded("timing_middleware"))
    app = web.Application(
        middlewares=[_key_watcher(plain_keys), learner, reference_error_middleware]
    )
    run = await _run(app, test_app, timing=True, learner_functions=[learner])
    names = "timing_middleware, outside the lesson's error middleware"
    _judge_answers(table, run, names)
    _judge_timing_headers(table, run, names)
    _judge_access_log(table, run, _middleware_codes([learner]), [])
    _judge_request_keys(table, plain_keys)
    header, _ = _timing(run.reply("GET", "ok"))
    name = str(header).split(":")[0]
    return (
        f"every response had a {name} header in milliseconds, right for slow requests, two at "
        "once and a clock set back; every request, the errors and 500 included, was logged "
        "once with its status and duration."
    )


# --- create_app -------------------------------------------------------------------------------


def _build(learner: Callable[[], Any]) -> web.Application:
    app = learner()
    if inspect.isawaitable(app):
        if inspect.iscoroutine(app):
            app.close()
        raise CREATE_APP.broken(
            "not-an-application",
            "create_app() returned a coroutine; expected a web.Application.",
        )
    if not isinstance(app, web.Application):
        raise CREATE_APP.broken(
            "not-an-application",
            f"create_app() returned {type(app).__name__}; expected a web.Application.",
        )
    return app


def _duplicated(middlewares: list[Any]) -> list[str]:
    seen: list[Any] = []
    twice = []
    for middleware in middlewares:
        function = getattr(middleware, "__func__", middleware)
        if any(function is getattr(m, "__func__", m) for m in seen):
            twice.append(_name(middleware))
        seen.append(middleware)
    return twice


@check(CREATE_APP)
async def create_app(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Both middlewares, once each, timing outermost so that even the 500 is timed and logged."""
    table = CREATE_APP
    app = _build(learner)
    middlewares = list(app.middlewares)
    for middleware in middlewares:
        _require_middleware(table, middleware, _name(middleware))
    plain_keys: list[Any] = []
    with contextlib.suppress(RuntimeError):  # a frozen app: no key watcher
        app.middlewares.insert(0, _key_watcher(plain_keys))  # type: ignore[arg-type]
    test_app = ProbeApp(Scenario.seeded("create_app"))
    run = await _run(app, test_app, timing=True, learner_functions=middlewares)
    names = "create_app()'s middlewares"
    _judge_answers(table, run, names)
    _judge_crashes_escaped(table, run)
    _judge_timing_headers(table, run, names)
    _judge_crashes(table, run, names)
    _judge_access_log(table, run, _middleware_codes(middlewares), _duplicated(middlewares))
    _judge_request_keys(table, plain_keys)
    return (
        "timing outside, error handling inside: the crashes became JSON 500s that were timed "
        "and logged once with their status, like every other request."
    )


def _judge_crashes_escaped(table: Task, run: Run) -> None:
    for reply in run.of_kind("crash"):
        if _middleware_crash(table, run, reply, "create_app()'s middlewares") is None and (
            reply.status == 500 and reply.body.startswith(_DEFAULT_500)
        ):
            raise table.broken(
                "missing-error-middleware",
                f"{reply.request} {reply.probe.why} and aiohttp answered with its own "
                "plain-text 500: no middleware caught it.",
            )
