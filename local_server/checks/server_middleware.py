"""Checks for exercise 12, server middleware: ``from local_server.checks import server_middleware``.

Each check wraps a small test application in the learner's middleware(s), serves it with
``serve()`` on the check's own loop and sends it one request of each kind a middleware must
handle: a success, a slow success (30 ms), ``HTTPNotFound`` and ``HTTPBadRequest`` raised by a
handler, a redirect raised as ``HTTPFound``, an unknown path, a wrong method (405) and an
unexpected exception. It judges from what the client received (status, headers, body) and
from what the server logged: every log record the check's thread emits is collected (and kept
out of the notebook), so the diagnosis rests on behaviour, whatever logger the learner uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from ..serving import logged_exceptions, serve
from .harness import Mistake, SessionSpy, check

SLOW_SECONDS = 0.03
# A timing of the slow route under this many milliseconds measured (almost) nothing.
SLOW_AT_LEAST_MS = SLOW_SECONDS * 1000 * 0.7
# Above this, the "duration" is not a duration (a timestamp, or microseconds).
SLOW_AT_MOST_MS = 10_000.0
SECRET = "could not reach ledger-db.internal:5432 as user ledger_admin"
PREFIX = "/check"


class LedgerOutOfSync(RuntimeError):
    """The unexpected exception the /check/crash route raises."""


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: str
    content_type: str

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Observed:
    """What the server logged, printed and warned while the requests ran."""

    records: list[logging.LogRecord] = field(default_factory=list)
    stdout: io.StringIO = field(default_factory=io.StringIO)
    warned: list[warnings.WarningMessage] = field(default_factory=list)

    def learner_records(self) -> list[logging.LogRecord]:
        return [r for r in self.records if not r.name.startswith(("aiohttp", "asyncio"))]

    def aiohttp_errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name.startswith("aiohttp") and r.exc_info]

    def escaped(self) -> list[BaseException]:
        """What escaped the handlers and middlewares, as aiohttp logged it."""
        return logged_exceptions(self.aiohttp_errors())


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a learner's format string that does not match its arguments
        return str(record.msg)


def _full_text(record: logging.LogRecord) -> str:
    """The message, the extra attributes and the traceback text, if any."""
    parts = [_message(record)]
    parts += [str(value) for key, value in vars(record).items() if key not in ("msg", "args")]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
    return "\n".join(parts)


@contextlib.contextmanager
def _observed() -> Iterator[Observed]:
    """Collect this thread's log records, prints and warnings, and keep them from the notebook.

    Every ``Logger.handle`` call made on this thread is recorded instead of handled, and the
    root level is lowered so INFO records are created at all. A handler on the root logger
    would not do: it misses a logger with ``propagate = False`` (lesson 12's own ``shop``
    logger) and cannot stop the learner's own handlers from writing into the notebook.
    Other threads' records are handled as usual; everything is restored on the way out.
    """
    seen = Observed()
    thread = threading.get_ident()
    original_handle = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.thread == thread:
            seen.records.append(record)
        else:
            original_handle(self, record)

    root = logging.getLogger()
    level = root.level
    logging.Logger.handle = handle  # type: ignore[method-assign]
    root.setLevel(logging.DEBUG)
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(seen.stdout),
        ):
            warnings.simplefilter("always")
            try:
                yield seen
            finally:
                seen.warned = list(caught)
    finally:
        root.setLevel(level)
        logging.Logger.handle = original_handle  # type: ignore[method-assign]


# --- the test application ---------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_SECONDS)
    return web.json_response({"slow": True})


async def _missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text="no such record")


async def _invalid(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="the id must be a number")


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PREFIX}/ok")


async def _crash(request: web.Request) -> web.Response:
    raise LedgerOutOfSync(SECRET)


def add_test_routes(app: web.Application) -> None:
    """The routes every check sends its requests to, under /check/."""
    app.router.add_get(f"{PREFIX}/ok", _ok)
    app.router.add_get(f"{PREFIX}/slow", _slow)
    app.router.add_get(f"{PREFIX}/missing", _missing)
    app.router.add_get(f"{PREFIX}/invalid", _invalid)
    app.router.add_get(f"{PREFIX}/moved", _moved)
    app.router.add_get(f"{PREFIX}/crash", _crash)


REQUESTS = [
    ("GET", f"{PREFIX}/ok"),
    ("GET", f"{PREFIX}/slow"),
    ("GET", f"{PREFIX}/missing"),
    ("GET", f"{PREFIX}/invalid"),
    ("GET", f"{PREFIX}/nowhere"),
    ("POST", f"{PREFIX}/ok"),
    ("GET", f"{PREFIX}/moved"),
    ("GET", f"{PREFIX}/crash"),
    ("GET", f"{PREFIX}/crash"),
]
# What aiohttp itself answers without any middleware.
EXPECTED_STATUS = {
    f"{PREFIX}/ok": 200,
    f"{PREFIX}/slow": 200,
    f"{PREFIX}/missing": 404,
    f"{PREFIX}/invalid": 400,
    f"{PREFIX}/nowhere": 404,
    f"{PREFIX}/moved": 302,
}
WHY = {
    f"{PREFIX}/missing": "raised web.HTTPNotFound",
    f"{PREFIX}/invalid": "raised web.HTTPBadRequest",
    f"{PREFIX}/nowhere": "has no route (the router raises web.HTTPNotFound)",
    f"{PREFIX}/moved": "raised web.HTTPFound (a redirect)",
}


async def _run(app: web.Application) -> tuple[list[Answer], Observed]:
    answers = []
    broken: tuple[str, aiohttp.ClientError] | None = None
    with _observed() as seen:
        async with serve(app) as url, aiohttp.ClientSession(base_url=url) as session:
            for method, path in REQUESTS:
                try:
                    answers.append(await _ask(session, method, path))
                except aiohttp.ClientError as exc:  # the server hung up instead of answering
                    broken = (f"{method} {path}", exc)
                    break
    if any(isinstance(error, NotImplementedError) for error in seen.escaped()):
        # The exercise's stub raised inside the server: report "not implemented yet".
        raise NotImplementedError
    if broken is not None:
        _no_answer(*broken, seen)
    return answers, seen


async def _ask(session: aiohttp.ClientSession, method: str, path: str) -> Answer:
    async with session.request(method, path, allow_redirects=False) as response:
        body = await response.text(errors="replace")
    headers = dict(response.headers)
    return Answer(method, path, response.status, headers, body, response.content_type)


def _no_answer(request: str, error: aiohttp.ClientError, seen: Observed) -> None:
    """The Mistake for a request the server closed the connection on, with aiohttp's reason."""
    logged = seen.escaped()
    cause = logged[0] if logged else error
    reason = f"{'aiohttp logged' if logged else 'the client saw'} {_named(cause)}"
    hint = "aiohttp could not send the response your middleware returned: see the error above."
    if isinstance(cause, TypeError) and "non-str" in str(cause):
        hint = 'every header value must be a str: `f"app;dur={ms:.1f}"`, not the float `ms`.'
    raise Mistake(
        "no-answer",
        f"{request} got no response: the server closed the connection ({reason}).",
        hint,
    )


def _find(answers: list[Answer], method: str, name: str) -> list[Answer]:
    return [a for a in answers if a.method == method and a.path == f"{PREFIX}/{name}"]


def _require_middleware(fn: Any, name: str) -> None:
    if getattr(fn, "__middleware_version__", None) != 1:
        raise Mistake(
            "not-decorated",
            f"{name} has no @web.middleware: aiohttp 3 takes an undecorated function for an "
            "old-style middleware factory, calls it with (app, handler), and every request "
            "fails with 500.",
            f"put `@web.middleware` on the line above `async def {name}(request, handler):`.",
        )


def _short(text: str, limit: int = 120) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"


def _named(error: BaseException) -> str:
    return f"{type(error).__name__}: {_short(str(error), 80)}"


def _escaped(seen: Observed) -> str:
    """' (aiohttp logged TypeError: ...)' from aiohttp's own error log, if it has one."""
    logged = seen.escaped()
    return f" (aiohttp logged {_named(logged[0])})" if logged else ""


# --- error middleware judgements -------------------------------------------------------------


def _judge_success(answers: list[Answer], seen: Observed, names: str) -> None:
    for answer in _find(answers, "GET", "ok"):
        if answer.status != 200 or answer.body != '{"ok": true}':
            raise Mistake(
                "breaks-success",
                f'GET {answer.path} should answer 200 {{"ok": true}}; with {names} it answered '
                f"{answer.status} {_short(answer.body)!r}{_escaped(seen)}.",
                "on success, `return await handler(request)`: the response must come back out "
                "unchanged (a middleware that forgets `return` answers 500).",
            )


def _judge_http_errors(answers: list[Answer], names: str) -> None:
    for answer in answers:
        expected = EXPECTED_STATUS.get(answer.path)
        if answer.method == "POST":
            expected = 405
        if expected is None or answer.status == expected:
            continue
        why = WHY.get(answer.path, "has no POST route (the router raises HTTPMethodNotAllowed)")
        if expected == 302:
            raise Mistake(
                "redirect-broken",
                f"GET {answer.path} {why}; with {names} the client got {answer.status} instead "
                "of 302.",
                "a redirect is a web.HTTPException but not a web.HTTPError: re-raise every "
                "`web.HTTPException` (if you convert errors to JSON, only those with status "
                ">= 400).",
            )
        raise Mistake(
            "http-error-to-500" if answer.status == 500 else "http-error-status",
            f"{answer.request} {why}, which aiohttp answers with {expected}; with {names} the "
            f"client got {answer.status}.",
            "catch `web.HTTPException` before `Exception` and re-raise it (or turn it into a "
            "JSON response with `status=exc.status`): it was raised on purpose and keeps its "
            "status.",
        )
    for answer in answers:
        if answer.path.endswith("/moved") and "Location" not in answer.headers:
            raise Mistake(
                "redirect-broken",
                f"GET {answer.path} {WHY[answer.path]}; the client got a 302 without its "
                f"`Location` header, so it cannot follow it: {_short(answer.body)!r}.",
                "a redirect is not an error: re-raise every web.HTTPException with a status "
                "below 400 as it is.",
            )
    for answer in answers:
        if answer.method == "POST" and "Allow" not in answer.headers:
            raise Mistake(
                "lost-headers",
                f"POST {answer.path} answered 405 without the `Allow` header that "
                "web.HTTPMethodNotAllowed carries.",
                "re-raise the exception, or copy its headers into your JSON response: "
                "`headers=exc.headers` (without its Content-Type).",
            )


def _judge_returned_exceptions(seen: Observed, names: str) -> None:
    """aiohttp warns when the middleware chain returns a web.HTTPException instead of raising it."""
    if any("returning HTTPException" in str(w.message) for w in seen.warned):
        raise Mistake(
            "returns-http-exception",
            f"with {names}, a web.HTTPException came back as the response instead of being "
            "raised, and aiohttp warned: 'returning HTTPException object is deprecated (#2415) "
            "and will be removed, please raise the exception instead'.",
            "re-raise it: a bare `raise` in the `except web.HTTPException` block (set a header "
            "on it first if you need to), never `return exc`.",
        )


def _judge_crash(answers: list[Answer], seen: Observed, names: str) -> None:
    crashes = _find(answers, "GET", "crash")
    first = crashes[0]
    default_body = first.body.startswith("500 Internal Server Error")
    if first.status == 500 and default_body and seen.aiohttp_errors():
        raise Mistake(
            "exception-escaped",
            f"GET {first.path} raised LedgerOutOfSync and it went through {names}: aiohttp "
            f"answered with its own plain-text 500 {_short(first.body)!r}.",
            "catch `Exception` (after re-raising web.HTTPException) and return "
            '`web.json_response({"error": ..., "error_id": ...}, status=500)`.',
        )
    if first.status != 500:
        raise Mistake(
            "crash-status",
            f"GET {first.path} raised an unexpected LedgerOutOfSync; the client got "
            f"{first.status} instead of 500.",
            "an exception nobody raised on purpose is a server error: status=500.",
        )
    leaks = [
        what
        for what, sign in (
            ("the exception's message", "ledger-db.internal"),
            ("the exception's type", "LedgerOutOfSync"),
            ("a traceback", "Traceback"),
            ("a source line", 'File "'),
        )
        if sign in first.body
    ]
    if leaks:
        raise Mistake(
            "leaks-details",
            f"the 500 for GET {first.path} sends {' and '.join(leaks)} to the client: "
            f"{_short(first.body)!r}.",
            "the client gets a generic message and an error id only; the details go to the "
            "server's log with `logger.exception(...)`.",
        )
    try:
        data = json.loads(first.body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or first.content_type != "application/json":
        raise Mistake(
            "not-json-500",
            f"the 500 for GET {first.path} is {first.content_type} {_short(first.body)!r}, "
            "not a JSON object.",
            'return `web.json_response({"error": "Internal Server Error", "error_id": ...}, '
            "status=500)`.",
        )
    ids = []
    for crash in crashes:
        try:
            body = json.loads(crash.body)
        except ValueError:
            body = {}
        ids.append(body.get("error_id") if isinstance(body, dict) else None)
    if not ids[0] or not isinstance(ids[0], (str, int)) or isinstance(ids[0], bool):
        raise Mistake(
            "no-error-id",
            f"the 500 for GET {first.path} has no `error_id`: {_short(first.body)!r}.",
            'add an id, e.g. `error_id = uuid.uuid4().hex`, to the body: `{"error": ..., '
            '"error_id": error_id}`, and log it with the traceback.',
        )
    if ids[0] == ids[1]:
        raise Mistake(
            "same-error-id",
            f"two crashes got the same error_id {ids[0]!r}: it cannot lead to one traceback.",
            "make a new id for each error: `uuid.uuid4().hex`.",
        )
    logged = [
        r
        for r in seen.learner_records()
        if (r.exc_info and r.exc_info[1] is not None and isinstance(r.exc_info[1], LedgerOutOfSync))
        or ("Traceback" in _message(r) and "LedgerOutOfSync" in _message(r))
    ]
    if not logged:
        printed = seen.stdout.getvalue()
        if "LedgerOutOfSync" in printed or "Traceback" in printed:
            raise Mistake(
                "printed-not-logged",
                "the traceback was printed, not logged: a server's stdout is not its log.",
                "`logger.exception(...)` inside `except Exception:` (logger = "
                "`logging.getLogger(__name__)`) logs the message with the traceback.",
            )
        messages = [_short(_message(r), 60) for r in seen.learner_records()]
        also = f" (it logged {messages[0]!r}, without the exception)" if messages else ""
        raise Mistake(
            "not-logged",
            f"GET {first.path} crashed and the server logged no traceback{also}: the client "
            "got an id, and nothing on the server leads from it to the bug.",
            'inside `except Exception:` call `logger.exception("error %s on %s %s", error_id, '
            "request.method, request.path)`: it logs at ERROR with the traceback.",
        )
    if not any(str(ids[0]) in _full_text(r) for r in logged):
        raise Mistake(
            "id-not-logged",
            f"the traceback was logged, but not with the error_id {ids[0]!r} the client got: "
            "a bug report quoting the id cannot be matched to it.",
            'put the id in the log message: `logger.exception("error %s ...", error_id, ...)`.',
        )


@check("error_middleware")
async def error_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """HTTP errors keep their status; a crash is a generic JSON 500 with a logged id."""
    _require_middleware(learner, "error_middleware")
    app = web.Application(middlewares=[learner])
    add_test_routes(app)
    answers, seen = await _run(app)
    _judge_success(answers, seen, "error_middleware")
    _judge_http_errors(answers, "error_middleware")
    _judge_returned_exceptions(seen, "error_middleware")
    _judge_crash(answers, seen, "error_middleware")
    converted = _find(answers, "GET", "missing")[0].content_type == "application/json"
    how = "turned into JSON with their own status" if converted else "re-raised"
    return (
        f"404, 400, 405 and the redirect {how}; the crash became a JSON 500 with an error id, "
        "and its traceback was logged with that id."
    )


# --- timing middleware judgements ------------------------------------------------------------

NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"


def _timing(answer: Answer) -> tuple[str | None, float | None]:
    """(the header as sent, its value in milliseconds or None if it is not a number)."""
    if "Server-Timing" in answer.headers:
        raw = answer.headers["Server-Timing"]
        match = re.search(rf'dur="?({NUMBER})"?', raw)
        return f"Server-Timing: {raw}", float(match.group(1)) if match else None
    if "X-Response-Time" in answer.headers:
        raw = answer.headers["X-Response-Time"]
        match = re.fullmatch(rf"\s*({NUMBER})\s*(ms|s)?\s*", raw)
        if not match:
            return f"X-Response-Time: {raw}", None
        value = float(match.group(1))
        return f"X-Response-Time: {raw}", value * 1000 if match.group(2) == "s" else value
    return None, None


def _judge_timing_headers(answers: list[Answer], names: str, order: bool = False) -> None:
    ok = _find(answers, "GET", "ok")[0]
    if _timing(ok)[0] is None:
        raise Mistake(
            "no-header",
            f"GET {ok.path} answered {ok.status} with no `Server-Timing` or `X-Response-Time` "
            f"header (with {names}).",
            'set it on the response: `response.headers["Server-Timing"] = f"app;dur={ms:.1f}"`.',
        )
    for answer in answers:
        if _timing(answer)[0] is not None:
            continue
        if order and answer.status == 500:
            raise Mistake(
                "wrong-order",
                f"the 500 for {answer.request} has no timing header, while GET {ok.path} has "
                "one: the timing middleware sits inside the error middleware, so it saw the raw "
                "exception and never the 500 response the error middleware made of it.",
                "list the timing middleware first (outermost): "
                "`web.Application(middlewares=[timing_middleware, error_middleware])`.",
            )
        raise Mistake(
            "no-header-on-errors",
            f"{answer.request} answered {answer.status} with no timing header, while "
            f"GET {ok.path} has one: the error was raised as a web.HTTPException, and the "
            "code after `await handler(request)` never ran.",
            "catch `web.HTTPException as exc`, set the header on `exc` (it is a response "
            "too) and re-raise it; or set it in a `finally:` block.",
        )
    for answer in answers:
        header, value = _timing(answer)
        if value is None:
            raise Mistake(
                "not-a-number",
                f"the timing header of {answer.request} is `{header}`: no number of "
                "milliseconds in it.",
                "write milliseconds as a number: `Server-Timing: app;dur=12.3` or "
                "`X-Response-Time: 12.3ms`.",
            )
    slow = _find(answers, "GET", "slow")[0]
    header, value = _timing(slow)
    assert value is not None
    if SLOW_AT_LEAST_MS / 1000 <= value < 10:
        raise Mistake(
            "seconds-not-ms",
            f"GET {slow.path} sleeps {SLOW_SECONDS * 1000:.0f} ms and its header says "
            f"`{header}`: that looks like seconds written where milliseconds belong.",
            "multiply by 1000: `(time.perf_counter() - start) * 1000`.",
        )
    if value < SLOW_AT_LEAST_MS:
        raise Mistake(
            "measures-nothing",
            f"GET {slow.path} takes at least {SLOW_SECONDS * 1000:.0f} ms, and its timing "
            f"header says `{header}`: the clock did not run around the handler.",
            "read the clock before `await handler(request)` and again after it, e.g. "
            "`request[START] = time.perf_counter()` first thing in the middleware.",
        )
    ok_value = _timing(ok)[1]
    if value >= SLOW_AT_LEAST_MS * 1000 and ok_value is not None and ok_value < value / 2:
        raise Mistake(
            "microseconds-not-ms",
            f"GET {slow.path} sleeps {SLOW_SECONDS * 1000:.0f} ms and its header says "
            f"`{header}`: about 1000 times too much, microseconds where milliseconds belong.",
            "seconds times 1000 are milliseconds: `(time.perf_counter() - start) * 1000`.",
        )
    if value > SLOW_AT_MOST_MS:
        raise Mistake(
            "wrong-value",
            f"GET {slow.path} took about {SLOW_SECONDS * 1000:.0f} ms, and its timing header "
            f"says `{header}`: that is not a duration in milliseconds.",
            "subtract the start from the end: `(time.perf_counter() - start) * 1000`.",
        )


def _judge_access_log(answers: list[Answer], seen: Observed) -> None:
    records = seen.learner_records()
    printed = seen.stdout.getvalue()
    targets = [
        _find(answers, "GET", "ok")[0],
        _find(answers, "GET", "missing")[0],
        _find(answers, "POST", "ok")[0],
        _find(answers, "GET", "crash")[0],
        _find(answers, "GET", "slow")[0],
    ]
    for answer in targets:
        about = [r for r in records if answer.path in _message(r) and answer.method in _message(r)]
        if not about:
            if answer.path in printed:
                raise Mistake(
                    "printed-not-logged",
                    f"{answer.request} was printed, not logged: `print` has no level and no "
                    "logger name, and cannot be routed or filtered in production.",
                    'log it: `logging.getLogger("access").info("%s %s %s %.1f ms", '
                    "request.method, request.path, status, ms)`.",
                )
            if answer.status < 400:
                raise Mistake(
                    "not-logged",
                    f"{answer.request} answered {answer.status}, and no log record names "
                    "its method and path.",
                    "log one line per request with `logging`: method, path, status, duration.",
                )
            raise Mistake(
                "not-logged-on-error",
                f"{answer.request} answered {answer.status}, and no log record names it, "
                "while successful requests are logged: the log line is skipped when the "
                "handler raises.",
                "write the log line in a `finally:` block (or in the `except "
                "web.HTTPException` branch too), so failed requests are logged.",
            )
        if not any(re.search(rf"\b{answer.status}\b", _message(r)) for r in about):
            raise Mistake(
                "log-missing-status",
                f"the log line for {answer.request} does not hold its status {answer.status}: "
                f"{_short(_message(about[-1]))!r}.",
                "for a raised web.HTTPException the status is `exc.status`; for a response, "
                "`response.status`.",
            )
    slow = targets[-1]
    about = [r for r in records if slow.path in _message(r)]
    for record in about:
        text = _message(record).replace(slow.path, "")
        numbers = [float(n) for n in re.findall(NUMBER, text)]
        if any(
            SLOW_AT_LEAST_MS <= n <= SLOW_AT_MOST_MS or SLOW_AT_LEAST_MS / 1000 <= n < 10
            for n in numbers
            if n != slow.status
        ):
            return
    raise Mistake(
        "log-missing-duration",
        f"the log line for {slow.request} (a {SLOW_SECONDS * 1000:.0f} ms request) holds no "
        f"duration: {_short(_message(about[-1]))!r}.",
        'log the milliseconds too: `log.info("%s %s %s %.1f ms", method, path, status, ms)`.',
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


def _judge_request_keys(found: list[Any]) -> None:
    if found:
        raise Mistake(
            "string-key",
            f"the middleware stores per-request state under the plain key {found[0]!r} "
            f"(`request[{found[0]!r}] = ...`), and aiohttp warns about it: a plain key can "
            "collide with another library's.",
            'declare a typed key once, `START = web.RequestKey("start", float)`, and use '
            "`request[START]`.",
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


@check("timing_middleware")
async def timing_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """A timing header and an access-log line for every request, failed ones included."""
    _require_middleware(learner, "timing_middleware")
    plain_keys: list[Any] = []
    watcher = _key_watcher(plain_keys)
    app = web.Application(middlewares=[watcher, learner, reference_error_middleware])
    add_test_routes(app)
    answers, seen = await _run(app)
    names = "timing_middleware, outside the lesson's error middleware"
    _judge_success(answers, seen, names)
    _judge_http_errors(answers, names)
    _judge_returned_exceptions(seen, names)
    _judge_timing_headers(answers, names)
    _judge_access_log(answers, seen)
    _judge_request_keys(plain_keys)
    header, _ = _timing(_find(answers, "GET", "slow")[0])
    name = str(header).split(":")[0]
    return (
        f"every response had a {name} header, and every request, the 404, 405 and 500 "
        "included, was logged with its status and duration."
    )


# --- create_app -------------------------------------------------------------------------------


def _build(learner: Callable[[], Any]) -> web.Application:
    app = learner()
    if inspect.isawaitable(app):
        if inspect.iscoroutine(app):
            app.close()
        raise Mistake(
            "not-an-application",
            "create_app() returned a coroutine; expected a web.Application.",
            "define it with a plain `def create_app() -> web.Application:`.",
        )
    if not isinstance(app, web.Application):
        raise Mistake(
            "not-an-application",
            f"create_app() returned {type(app).__name__}; expected a web.Application.",
            "`return web.Application(middlewares=[...])`.",
        )
    return app


@check("create_app")
async def create_app(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Both middlewares installed, timing outermost so that even the 500 is timed and logged."""
    app = _build(learner)
    for middleware in app.middlewares:
        _require_middleware(middleware, getattr(middleware, "__name__", repr(middleware)))
    add_test_routes(app)
    answers, seen = await _run(app)
    names = "create_app()'s middlewares"
    _judge_success(answers, seen, names)
    _judge_http_errors(answers, names)
    _judge_returned_exceptions(seen, names)
    crash = _find(answers, "GET", "crash")[0]
    if crash.body.startswith("500 Internal Server Error") and seen.aiohttp_errors():
        raise Mistake(
            "missing-error-middleware",
            f"GET {crash.path} raised LedgerOutOfSync and aiohttp answered with its own "
            "plain-text 500: no error middleware caught it.",
            "install both: `web.Application(middlewares=[timing_middleware, error_middleware])`.",
        )
    if _timing(_find(answers, "GET", "ok")[0])[0] is None:
        raise Mistake(
            "missing-timing-middleware",
            f"GET {PREFIX}/ok has no timing header: the timing middleware is not installed.",
            "install both: `web.Application(middlewares=[timing_middleware, error_middleware])`.",
        )
    _judge_timing_headers(answers, names, order=True)
    _judge_crash(answers, seen, names)
    _judge_access_log(answers, seen)
    return (
        "timing outside, error handling inside: the crash became a JSON 500 that was timed and "
        "logged with its status, like every other request."
    )
