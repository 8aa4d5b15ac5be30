"""Checks for exercise 06, error handling.

In the notebook: ``from local_server.checks import error_handling as check``. The exercise's
result types live here too, so the learner's code and the checks agree on them:
``Outcome``, ``FetchResult`` and ``ApiError``.

- ``safe_fetch`` meets 18 cases in a seeded order: a 200 and a 201; five 4xx and 5xx, with
  and without a body; a ``total``, a ``sock_read`` and a ``connect`` timeout (the pool filled
  for that one); a refused port, an unknown host, a reset and a hang-up; two bodies cut short;
  JSON under two wrong labels. It must classify each, then raise for a session with a bug.
- ``fetch_json`` must return the JSON of a 200 and a 201, and raise ``ApiError`` carrying the
  status and the error body exactly as sent, JSON, plain text or HTML; a refused port raises.
- ``api_session`` must return a session that raises ``ClientResponseError`` for a dozen 4xx
  and 5xx statuses, with several methods, and not for a 2xx, a 3xx or a redirect.

The unknown host is resolved by the check's own resolver, which fails at once: what a
resolver does with ``.invalid`` (and how long it takes) varies between machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import json
import random
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from ..runner import LocalServer
from ..serving import refused_url, serve
from .evidence import (
    clip,
    exception_text,
    explain,
    is_learner_file,
    learner_line,
    learner_line_at,
)
from .harness import SessionSpy, call_async, check
from .rules import Mistake, Rule, Task

SEED = 0

# --- The exercise's types ----------------------------------------------------------------


class Outcome(enum.Enum):
    """What happened to one request, in the terms a caller acts on."""

    OK = "ok"  # a 2xx with a parsed JSON body: use result.data
    HTTP_ERROR = "http_error"  # the server answered 4xx/5xx: see result.status
    TIMEOUT = "timeout"  # no answer in time: maybe retry later
    CONNECTION_ERROR = "connection_error"  # no connection, or it broke: maybe retry
    INVALID_RESPONSE = "invalid_response"  # a 2xx whose body is not labelled JSON


@dataclass(frozen=True)
class FetchResult:
    """The outcome of ``safe_fetch``, with what the caller needs to act on it."""

    outcome: Outcome
    data: Any = None  # the parsed body, for OK
    status: int | None = None  # the HTTP status, whenever a response arrived
    detail: str = ""  # a short description of the error, for a log line


class ApiError(Exception):
    """An HTTP error with the body the server sent to explain it."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.body = body


# --- The check's own app: what the course server does not serve ---------------------------

CREATED = {"id": 4242, "title": "Crème brûlée ☕", "tags": [], "in_print": False}
NOT_FOUND_TEXT = "no book with id 42 (was it “Crème brûlée”?)\n"
BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><h1>Bad Gateway</h1><p>the upstream “books” did not answer.</p></body></html>\n"
)


def _error_document(status: int, key: str) -> str:
    return json.dumps(
        {"error": f"HTTP {status}", "detail": f"request {key} failed: the field 'title' is empty"},
        ensure_ascii=False,
    )


HELD = web.AppKey("held", asyncio.Event)
RELEASE = web.AppKey("release", asyncio.Event)


def _extra_app() -> web.Application:
    """``/created`` (201 JSON), ``/hang-up`` (closes without answering), ``/ok/{key}``,
    ``/error/{status}/{key}?kind=json|text|html`` (an error with a body that says which),
    ``/slow`` (sets ``app[HELD]``, then answers once ``app[RELEASE]`` is set, at most after
    SLOW_SECONDS: the check releases every slow answer when it is done with them)."""

    async def slow(request: web.Request) -> web.Response:
        request.app[HELD].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(request.app[RELEASE].wait(), SLOW_SECONDS)
        return web.json_response({"slow": True})

    async def created(request: web.Request) -> web.Response:
        return web.json_response(CREATED, status=201, dumps=_dumps)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response(_ok_document(request.match_info["key"]), dumps=_dumps)

    async def hang_up(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=444)  # never sent

    async def error(request: web.Request) -> web.Response:
        status, key = int(request.match_info["status"]), request.match_info["key"]
        body, content_type = _error_body(status, key, request.query.get("kind", "json"))
        return web.Response(status=status, text=body, content_type=content_type, charset="utf-8")

    app = web.Application()
    app[HELD] = asyncio.Event()
    app[RELEASE] = asyncio.Event()
    app.router.add_get("/slow", slow)
    app.router.add_get("/created", created)
    app.router.add_get("/ok/{key}", ok)
    app.router.add_get("/hang-up", hang_up)
    app.router.add_get("/error/{status}/{key}", error)
    return app


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ok_document(key: str) -> dict[str, Any]:
    return {"key": key, "café": "naïve ☕", "in_stock": True, "isbn": None, "pages": [1, 2.5]}


def _error_body(status: int, key: str, kind: str) -> tuple[str, str]:
    """The body, and its Content-Type, of the check's error answer of this kind."""
    if kind == "text":
        return f"{key}: {NOT_FOUND_TEXT}", "text/plain"
    if kind == "html":
        return BAD_GATEWAY_HTML.replace("</p>", f" ({key})</p>"), "text/html"
    return _error_document(status, key), "application/json"


class _NoSuchHost(AbstractResolver):
    """A resolver for which no name exists: the unknown host fails at once, on any machine."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        raise OSError(socket.EAI_NONAME, f"Name or service not known: {host}")

    async def close(self) -> None:
        pass


# --- Task 1: safe_fetch ------------------------------------------------------------------

OK = Outcome.OK.value
HTTP_ERROR = Outcome.HTTP_ERROR.value
TIMEOUT = Outcome.TIMEOUT.value
CONNECTION_ERROR = Outcome.CONNECTION_ERROR.value
INVALID_RESPONSE = Outcome.INVALID_RESPONSE.value

SAFE_FETCH = Task(
    "safe_fetch",
    Rule(
        "wrong-return-type",
        "return a `FetchResult`",
        "the type of what safe_fetch returned, for every case",
        "return `FetchResult(Outcome.…, ...)` in every case, never None or a bare value.",
    ),
    Rule(
        "client-timeout-clause",
        "It must not raise for any of those",
        "a TypeError 'catching classes that do not inherit from BaseException' at the "
        "learner's except line",
        "`aiohttp.ClientTimeout` is the settings class, not an exception: catch "
        "`TimeoutError` (the builtin; it also covers aiohttp's ServerTimeoutError family).",
    ),
    Rule(
        "timeout-not-caught",
        "`Outcome.TIMEOUT` for any timeout ... It must not raise",
        "a TimeoutError that escaped, for a total, a sock_read or a connect timeout",
        "a `total` timeout raises the builtin TimeoutError, which is not an "
        "aiohttp.ClientError: `except TimeoutError:` catches every timeout.",
    ),
    Rule(
        "not-caught",
        "It must not raise for any of those",
        "an aiohttp.ClientError that escaped, and the case it came from",
        "catch it and return a FetchResult; lesson 06's tree shows which clause catches "
        "which class.",
    ),
    Rule(
        "one-generic-case",
        "each kind of failure gets its own outcome",
        "the outcomes returned for 18 failures of four kinds: all the same",
        "catch specific classes, most specific first: ContentTypeError, ClientResponseError, "
        "TimeoutError, ClientConnectionError, ClientPayloadError; one broad `except` "
        "hides the difference.",
    ),
    Rule(
        "no-data",
        "`Outcome.OK` with `data=` the parsed JSON body",
        "the data of the results for a 200 and a 201, compared with the JSON served",
        "return `FetchResult(Outcome.OK, data=await response.json())`: the parsed body, "
        "not its text.",
    ),
    Rule(
        "success-as-error",
        "`Outcome.OK` ... for a 2xx",
        "the outcome for a 201 Created with a JSON body",
        "every 2xx is a success: test `response.ok` (or call `raise_for_status()`), not "
        "`status == 200`.",
    ),
    Rule(
        "http-error-as-success",
        "`Outcome.HTTP_ERROR` ... for a 4xx or 5xx",
        "the outcome for 404, 422, 429, 500 and 503, with empty and JSON bodies",
        "a 4xx/5xx is a normal response to aiohttp: call `response.raise_for_status()` (or "
        "test `response.ok`) before reading the body, for any error status.",
    ),
    Rule(
        "no-status",
        "`Outcome.HTTP_ERROR` with `status=` the status",
        "the status on the results for the HTTP errors",
        "put the response's status on the result: `FetchResult(Outcome.HTTP_ERROR, "
        "status=error.status)`.",
    ),
    Rule(
        "wrong-status",
        "`status=` the status",
        "the status on each HTTP error result, compared with the one the server sent",
        "use the status of this response (`error.status` or `response.status`), as an int.",
    ),
    Rule(
        "timeout-as-connection-error",
        "`Outcome.TIMEOUT` for any timeout, whichever `ClientTimeout` field fired",
        "the outcomes for a total, a sock_read and a connect timeout",
        "`except TimeoutError:` catches every timeout; put it before "
        "`except aiohttp.ClientConnectionError:` (sock_read and connect timeouts are both) "
        "and before any broader clause.",
    ),
    Rule(
        "timeout-misclassified",
        "`Outcome.TIMEOUT` for any timeout",
        "the outcomes for a total, a sock_read and a connect timeout",
        "`except TimeoutError:` catches every timeout, the builtin one `total` raises and "
        "aiohttp's ServerTimeoutError family: return Outcome.TIMEOUT there.",
    ),
    Rule(
        "connection-error-misclassified",
        "`Outcome.CONNECTION_ERROR` when no connection could be made, or it broke",
        "the outcomes for a refused port, an unknown host, a reset and a hang-up",
        "refused, unknown host (ClientConnectorDNSError), reset and disconnect are all "
        "ClientConnectionError: return Outcome.CONNECTION_ERROR for them.",
    ),
    Rule(
        "content-type-as-http-error",
        "`Outcome.INVALID_RESPONSE` when a 2xx arrived whose Content-Type is not JSON",
        "the outcome for JSON labelled text/html and text/plain: HTTP_ERROR (status 200)",
        "ContentTypeError is a subclass of ClientResponseError: catch it first, or the "
        "ClientResponseError clause reports an HTTP error the server never sent.",
    ),
    Rule(
        "content-type-not-checked",
        "`Outcome.INVALID_RESPONSE` when ... `response.json()` refuses it, even if the text "
        "inside is JSON",
        "the outcome for JSON labelled text/html and text/plain: OK",
        "keep `response.json()`'s Content-Type check (no `content_type=None`, no text() + "
        "json.loads): catch its ContentTypeError as INVALID_RESPONSE.",
    ),
    Rule(
        "wrong-outcome",
        "each failure gets the outcome the list gives",
        "the outcome of every case compared with the list, bodies cut short included",
        "compare each case with the list in the task, and lesson 06's table of which "
        "exception each failure raises.",
    ),
    Rule(
        "swallows-bugs",
        "must not hide anything else: a bug in your code should still raise",
        "a session whose get() raises an ordinary exception: safe_fetch must raise",
        "catch only the classes you can name (ClientResponseError, TimeoutError, "
        "ClientConnectionError, ContentTypeError, ClientPayloadError) and let the rest raise.",
    ),
)

# The slow endpoint answers after this long (or when the check releases it); the timeouts
# below fire long before, however loaded the machine.
SLOW_SECONDS = 3
LONG = aiohttp.ClientTimeout(total=10)  # every case that must not time out


@dataclass(frozen=True)
class _Case:
    what: str
    kind: str  # "ok", "created", "http", "timeout", "connection", "payload", "content-type"
    url: str
    timeout: aiohttp.ClientTimeout = LONG
    status: int | None = None
    expected_data: Any = None
    resolver: bool = False  # the unknown host: the check's own resolver
    pool_full: bool = False  # the connect timeout: the session's only connection is busy
    short: str = ""  # its name in a list of cases ("the total timeout"); ``what`` if ""

    @property
    def name(self) -> str:
        return self.short or self.what

    @property
    def expected(self) -> frozenset[str]:
        return {
            "ok": frozenset({OK}),
            "created": frozenset({OK}),
            "http": frozenset({HTTP_ERROR}),
            "timeout": frozenset({TIMEOUT}),
            "connection": frozenset({CONNECTION_ERROR}),
            "payload": frozenset({CONNECTION_ERROR, INVALID_RESPONSE}),
            "content-type": frozenset({INVALID_RESPONSE}),
        }[self.kind]


def _cases(base: str, extra: str, token: str) -> list[_Case]:
    slow = f"{extra}/slow"
    return [
        _Case("a 200 with JSON", "ok", f"{base}/get?token={token}", expected_data=token),
        _Case("a 201 Created with JSON", "created", f"{extra}/created", expected_data=CREATED),
        _Case("a 404 (empty body)", "http", f"{base}/status/404", status=404),
        _Case("a 503 (JSON body)", "http", f"{base}/fail/{token}-503/1?status=503", status=503),
        _Case("a 422 (JSON body)", "http", f"{base}/fail/{token}-422/1?status=422", status=422),
        _Case("a 429 (Retry-After)", "http", f"{base}/retry-after/429?seconds=1", status=429),
        _Case("a 500 (empty body)", "http", f"{base}/status/500", status=500),
        _Case(
            "a total timeout (ClientTimeout(total=0.2), builtin TimeoutError)",
            "timeout",
            slow,
            aiohttp.ClientTimeout(total=0.2),
            short="the total timeout",
        ),
        _Case(
            "a sock_read timeout (ClientTimeout(sock_read=0.1), SocketTimeoutError)",
            "timeout",
            slow,
            aiohttp.ClientTimeout(total=None, sock_read=0.1),
            short="the sock_read timeout",
        ),
        _Case(
            "a connect timeout (ClientTimeout(connect=0.1), the pool full: ConnectionTimeoutError)",
            "timeout",
            f"{base}/get",
            aiohttp.ClientTimeout(total=None, connect=0.1),
            pool_full=True,
            short="the connect timeout",
        ),
        _Case("a refused port", "connection", refused_url("/get"), short="the refused port"),
        _Case(
            "an unknown host (ClientConnectorDNSError)",
            "connection",
            "http://no-such-host.invalid/get",
            resolver=True,
            short="the unknown host",
        ),
        _Case(
            "a connection reset (/fault/reset)",
            "connection",
            f"{base}/fault/reset",
            short="the reset",
        ),
        _Case(
            "a server that hangs up without answering",
            "connection",
            f"{extra}/hang-up",
            short="the hang-up",
        ),
        _Case("a body cut short (/fault/short-body)", "payload", f"{base}/fault/short-body"),
        _Case(
            "a chunked body cut short (/fault/close-after/100)",
            "payload",
            f"{base}/fault/close-after/100",
        ),
        _Case(
            "a 200 whose JSON is labelled text/html",
            "content-type",
            f"{base}/fault/wrong-content-type",
        ),
        _Case(
            "a 200 whose JSON is labelled text/plain",
            "content-type",
            f"{base}/fault/wrong-content-type?type=text/plain",
        ),
    ]


@dataclass
class _Run:
    case: _Case
    result: Any = None
    error: BaseException | None = None

    @property
    def outcome(self) -> str:
        outcome = getattr(self.result, "outcome", self.result)
        return str(getattr(outcome, "value", outcome)).lower()


@check(SAFE_FETCH, timeout=15)
async def safe_fetch(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``safe_fetch(session, url)`` returns a FetchResult with the right outcome for each case."""
    rng = random.Random(f"{SEED}-safe_fetch")
    token = f"{rng.getrandbits(32):08x}"
    app = _extra_app()
    async with serve(app) as extra:
        cases = _cases(server.url, extra, token)
        order = list(range(len(cases)))
        rng.shuffle(order)
        runs = {}
        for index in order:
            runs[index] = await _run_case(learner, app, extra, cases[index])
        app[RELEASE].set()
    judged = [runs[index] for index in range(len(cases))]
    _judge_raised(judged)
    _judge_types(judged)
    _judge_outcomes(judged)
    await _expect_bug_to_raise(learner)
    return (
        f"all {len(cases)} cases classified: a 200 and a 201 with their data, five HTTP "
        "errors with their status, three kinds of timeout, four connection failures, two "
        "bodies cut short and two mislabelled bodies; a bug still raised."
    )


async def _run_case(learner: Any, app: web.Application, extra: str, case: _Case) -> _Run:
    connector = aiohttp.TCPConnector(
        resolver=_NoSuchHost() if case.resolver else None, limit=1 if case.pool_full else 100
    )
    run = _Run(case)
    async with aiohttp.ClientSession(timeout=case.timeout, connector=connector) as session:
        holder = await _fill_the_pool(session, app, extra) if case.pool_full else None
        try:
            run.result = await call_async("safe_fetch", learner, session, case.url)
        except (Mistake, NotImplementedError):
            raise
        except Exception as error:  # judged with the others, in the task's order
            run.error = error
        finally:
            if holder is not None:
                holder.cancel()
                await asyncio.wait([holder])  # unlike `await holder`, lets a cancel of ours through
                if not holder.cancelled():
                    holder.exception()  # retrieved, so asyncio never reports it
    if inspect.iscoroutine(run.result):
        run.result.close()
        raise SAFE_FETCH.broken(
            "missing-await",
            f"safe_fetch returned a coroutine object for {case.what}: an await is missing.",
            "await the coroutine you return: `return FetchResult(..., data=await "
            "response.json())`.",
        )
    return run


async def _fill_the_pool(
    session: aiohttp.ClientSession, app: web.Application, extra: str
) -> asyncio.Future:
    """Take the session's only connection with a slow request, so the next one must queue."""

    async def hold() -> None:
        async with session.get(f"{extra}/slow", timeout=aiohttp.ClientTimeout(total=5)) as r:
            await r.read()

    app[HELD].clear()
    holder = asyncio.ensure_future(hold())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[HELD].wait(), 5)
    return holder


def _returned(runs: list[_Run]) -> str:
    """ "'x' for A and B; 'y' for C": what safe_fetch returned for these cases, grouped."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(run.outcome, []).append(run.case.name)
    return "; ".join(f"{outcome!r} for {_and(names)}" for outcome, names in groups.items())


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _judge_raised(runs: list[_Run]) -> None:
    for run in runs:
        error, case = run.error, run.case
        if error is None:
            continue
        where = learner_line(error)
        at = f" at {where}" if where else ""
        if isinstance(error, TypeError) and "do not inherit from BaseException" in str(error):
            raise SAFE_FETCH.broken(
                "client-timeout-clause",
                f"safe_fetch raised TypeError for {case.what}{at}: an except clause names "
                "a class that is not an exception (`aiohttp.ClientTimeout` is the settings "
                "class of lesson 03), and Python fails when an exception reaches it.",
            )
        if isinstance(error, TimeoutError):
            raise SAFE_FETCH.broken(
                "timeout-not-caught",
                f"safe_fetch let {type(error).__name__} escape for {case.what}.",
            )
        if isinstance(error, aiohttp.ClientError):
            raise SAFE_FETCH.broken(
                "not-caught",
                f"safe_fetch let {exception_text(error)} escape for {case.what}{at}.",
            )
        problem, message, hint = explain(error)
        raise SAFE_FETCH.broken(problem, f"for {case.what}, safe_fetch {message}", hint)


def _judge_types(runs: list[_Run]) -> None:
    for run in runs:
        if not hasattr(run.result, "outcome"):
            raise SAFE_FETCH.broken(
                "wrong-return-type",
                f"safe_fetch returned {clip(repr(run.result), 60)} for {run.case.what}; "
                "expected a FetchResult.",
            )


def _judge_outcomes(runs: list[_Run]) -> None:
    failures = [run for run in runs if run.case.kind not in ("ok", "created")]
    outcomes = {run.outcome for run in failures}
    if len(outcomes) == 1:
        raise SAFE_FETCH.broken(
            "one-generic-case",
            f"safe_fetch gave the same outcome, {outcomes.pop()!r}, for all {len(failures)} "
            "failures: the caller cannot tell a 404 from a timeout or a dead host.",
        )
    by_kind: dict[str, list[_Run]] = {}
    for run in runs:
        by_kind.setdefault(run.case.kind, []).append(run)
    _judge_successes(by_kind["ok"] + by_kind["created"])
    _judge_http_errors(by_kind["http"])
    _judge_timeouts(by_kind["timeout"])
    _judge_connection_errors(by_kind["connection"])
    _judge_content_types(by_kind["content-type"])
    for run in by_kind["payload"]:
        if run.outcome not in run.case.expected:
            raise SAFE_FETCH.broken(
                "wrong-outcome",
                f"safe_fetch returned {run.outcome!r} for {run.case.what}; expected "
                "'connection_error' or 'invalid_response' (ClientPayloadError: the body broke "
                "on the way).",
                "ClientPayloadError means the body broke on the way, whatever the status "
                "said: return CONNECTION_ERROR or INVALID_RESPONSE for it.",
            )


def _judge_successes(runs: list[_Run]) -> None:
    for run in runs:
        case = run.case
        if run.outcome == HTTP_ERROR and case.kind == "created":
            raise SAFE_FETCH.broken(
                "success-as-error",
                f"safe_fetch returned 'http_error' for {case.what}: a 201 is a success, as "
                "every 2xx is.",
            )
        if run.outcome != OK:
            raise SAFE_FETCH.broken(
                "wrong-outcome",
                f"safe_fetch returned {run.outcome!r} for {case.what}; expected 'ok'.",
                "a 2xx with a JSON body is a success: return `FetchResult(Outcome.OK, "
                "data=await response.json())`.",
            )
        data = getattr(run.result, "data", None)
        if case.kind == "ok":
            right = isinstance(data, dict) and data.get("args", {}).get("token") == (
                case.expected_data
            )
        else:
            right = data == case.expected_data
        if not right:
            if isinstance(data, (str, bytes)):
                what = f"the body as {type(data).__name__} ({clip(repr(data), 40)})"
            elif isinstance(data, aiohttp.ClientResponse):
                what = "the response object"
            else:
                what = clip(repr(data), 60)
            raise SAFE_FETCH.broken(
                "no-data",
                f"for {case.what}, the result's data was {what}, not the parsed JSON body.",
            )


def _judge_http_errors(runs: list[_Run]) -> None:
    as_success = [run for run in runs if run.outcome in (OK, INVALID_RESPONSE)]
    if as_success:
        named = ", ".join(f"{run.outcome!r} for {run.case.what}" for run in as_success[:3])
        raised = [run.case.status for run in runs if run not in as_success]
        also = f"; the others ({clip(str(raised), 30)}) were HTTP errors" if raised else ""
        raise SAFE_FETCH.broken(
            "http-error-as-success",
            f"safe_fetch returned {named}{also}: the status was not checked before the body "
            "was read.",
        )
    for run in runs:
        if run.outcome != HTTP_ERROR:
            raise SAFE_FETCH.broken(
                "wrong-outcome",
                f"safe_fetch returned {run.outcome!r} for {run.case.what}; expected "
                "'http_error' with its status.",
                "a 4xx/5xx raises ClientResponseError from raise_for_status(): catch it "
                "before any broader clause (`except aiohttp.ClientError`, `except "
                "Exception`), or test `response.ok` yourself.",
            )
        status = getattr(run.result, "status", None)
        if status is None:
            raise SAFE_FETCH.broken(
                "no-status",
                f"safe_fetch classified {run.case.what} as an HTTP error, but the result's "
                "status was None.",
            )
        if status != run.case.status or not isinstance(status, int):
            raise SAFE_FETCH.broken(
                "wrong-status",
                f"safe_fetch gave {run.case.what} the status {status!r}.",
            )


def _judge_timeouts(runs: list[_Run]) -> None:
    wrong = [run for run in runs if run.outcome != TIMEOUT]
    if not wrong:
        return
    named = _returned(wrong)
    if all(run.outcome == CONNECTION_ERROR for run in wrong):
        if len(wrong) == len(runs):
            why = (
                "even the builtin TimeoutError of `total`, which is no ClientConnectionError, "
                "so a broader clause before `except TimeoutError` caught them (`except "
                "OSError`? TimeoutError is one)"
            )
        elif len(wrong) == 1 and wrong[0].case.pool_full:
            why = (
                "ConnectionTimeoutError is a ClientConnectionError and a TimeoutError: a "
                "clause for one timeout class only (SocketTimeoutError?) misses it"
            )
        else:
            why = (
                "SocketTimeoutError and ConnectionTimeoutError are ClientConnectionErrors "
                "too, so a ClientConnectionError clause before `except TimeoutError` "
                "takes them"
            )
        raise SAFE_FETCH.broken(
            "timeout-as-connection-error", f"safe_fetch returned {named}: {why}."
        )
    raise SAFE_FETCH.broken(
        "timeout-misclassified", f"safe_fetch returned {named}; expected 'timeout'."
    )


def _judge_connection_errors(runs: list[_Run]) -> None:
    wrong = [run for run in runs if run.outcome != CONNECTION_ERROR]
    if wrong:
        named = _returned(wrong)
        raise SAFE_FETCH.broken(
            "connection-error-misclassified",
            f"safe_fetch returned {named}; expected 'connection_error'.",
        )


def _judge_content_types(runs: list[_Run]) -> None:
    for run in runs:
        case = run.case
        if run.outcome == HTTP_ERROR:
            raise SAFE_FETCH.broken(
                "content-type-as-http-error",
                f"safe_fetch returned 'http_error' (status "
                f"{getattr(run.result, 'status', None)!r}) for {case.what}: json() raised "
                "ContentTypeError there, and the server sent no error.",
            )
        if run.outcome == OK:
            raise SAFE_FETCH.broken(
                "content-type-not-checked",
                f"safe_fetch returned 'ok' with its data for {case.what}: the label was not "
                "checked. The task asks for INVALID_RESPONSE: from a server you do not know, "
                "a body not labelled JSON is as likely an HTML error page.",
            )
        if run.outcome != INVALID_RESPONSE:
            raise SAFE_FETCH.broken(
                "wrong-outcome",
                f"safe_fetch returned {run.outcome!r} for {case.what}; expected "
                "'invalid_response' (json() raised ContentTypeError).",
                "catch ContentTypeError first, before ClientResponseError and any broader "
                "clause, and return Outcome.INVALID_RESPONSE.",
            )


class _PlantedBug(Exception):
    """Stands for a bug in the program: no request failure, nothing to classify."""


class _BuggySession:
    """A stand-in session whose every method raises _PlantedBug, as a bug in your code would."""

    def __getattr__(self, name: str) -> Any:
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise _PlantedBug(f"session.{name}() hit a bug")

        return broken


async def _expect_bug_to_raise(learner: Any) -> None:
    try:
        result = await call_async("safe_fetch", learner, _BuggySession(), "http://example.invalid/")
    except (Mistake, NotImplementedError):
        raise
    except Exception:
        return  # it raised (_PlantedBug, or what the learner made of it): as a bug should
    outcome = getattr(result, "outcome", result)
    raise SAFE_FETCH.broken(
        "swallows-bugs",
        "given a session whose get() raises an ordinary bug (not a request failure), "
        f"safe_fetch returned {getattr(outcome, 'value', outcome)!r} instead of letting it "
        "raise: a broad `except` turns your own bugs into network failures.",
    )


# --- Task 2: fetch_json ------------------------------------------------------------------

FETCH_JSON = Task(
    "fetch_json",
    Rule(
        "no-data",
        "returns the parsed JSON of a 2xx",
        "what fetch_json returned for a 200 and a 201, compared with the JSON served",
        "return `await response.json()`: the parsed body, not its text or the response.",
    ),
    Rule(
        "success-as-error",
        "returns the parsed JSON of a 2xx",
        "a 201 Created with a JSON body: fetch_json raised",
        "every 2xx is a success: test `response.ok` (or `raise_for_status()`), not "
        "`status == 200`.",
    ),
    Rule(
        "http-error-as-success",
        "for a 4xx or 5xx raises `ApiError(status, body)`",
        "what fetch_json did for a 422, a 503, a 404 and a 502: returned instead of raising",
        "check `response.ok` (or catch `raise_for_status()`'s error) and `raise` "
        "ApiError(...), with the body.",
    ),
    Rule(
        "body-lost",
        "raises `ApiError(status, body)` with the body",
        "the exception raised for an error: ClientResponseError, or an ApiError whose body "
        "is not what the server sent (the reason phrase, empty)",
        "read the body inside the `async with` block, before raising: "
        "`raise ApiError(response.status, await response.text())`.",
    ),
    Rule(
        "body-not-text",
        "with the body as text, exactly as the server sent it",
        "ApiError.body compared with the text served: bytes, the parsed JSON, its str() or a "
        "re-encoding, stripped; json() on an HTML or plain-text error body",
        "pass `await response.text()`: the body as the server sent it, whatever its "
        "Content-Type (an error body need not be JSON).",
    ),
    Rule(
        "body-read-after-block",
        "raises `ApiError(status, body)` with the body",
        "reading the body after the `async with` block released the response: "
        "'Connection closed' at the learner's line",
        "read the error body inside the `async with` block: once it ends, the response is "
        "released and its body is gone.",
    ),
    Rule(
        "api-error-arguments",
        "`ApiError(status, body)`",
        "ApiError's own __init__ failing on what it was given: the arguments swapped",
        "ApiError takes the status first, then the body: `ApiError(response.status, await "
        "response.text())`.",
    ),
    Rule(
        "wrong-status",
        "`ApiError(status, ...)`",
        "ApiError.status compared with the status the server sent",
        "pass the response's status, `response.status`, as an int.",
    ),
    Rule(
        "wrong-exception",
        "raises `ApiError`",
        "the class of the exception raised for an HTTP error",
        "raise the ApiError imported from local_server.checks.error_handling (the notebook's "
        "first cell imports it): `raise ApiError(response.status, body)`.",
    ),
    Rule(
        "error-swallowed",
        "Any other failure ... let it raise",
        "a URL whose port refuses connections: fetch_json must raise",
        "catch nothing but what you turn into ApiError; let a connection error propagate.",
    ),
)


@dataclass(frozen=True)
class _Answer:
    what: str
    path: str
    status: int
    body: str = ""  # the error body exactly as served
    data: Any = None  # the JSON of a success


def _answers(key: str) -> list[_Answer]:
    answers = [
        _Answer("a 200 with JSON", f"/ok/{key}", 200, data=_ok_document(key)),
        _Answer("a 201 Created with JSON", "/created", 201, data=CREATED),
    ]
    for status, kind, what in (
        (422, "json", "a 422 with a JSON error body"),
        (503, "json", "a 503 with a JSON error body"),
        (404, "text", "a 404 with a plain-text body"),
        (502, "html", "a 502 with an HTML page (a proxy's)"),
    ):
        body, _ = _error_body(status, f"{key}-{status}", kind)
        answers.append(
            _Answer(what, f"/error/{status}/{key}-{status}?kind={kind}", status, body=body)
        )
    return answers


@check(FETCH_JSON)
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(session, url)`` returns JSON, or raises ApiError(status, body)."""
    rng = random.Random(f"{SEED}-fetch_json")
    key = f"{rng.getrandbits(32):08x}"
    async with serve(_extra_app()) as base:
        for answer in _answers(key):
            async with aiohttp.ClientSession() as session:
                await _judge_fetch(learner, session, base + answer.path, answer)
        async with aiohttp.ClientSession() as session:
            try:
                returned = await call_async("fetch_json", learner, session, refused_url("/get"))
            except (Mistake, NotImplementedError):
                raise
            except Exception:
                pass
            else:
                raise FETCH_JSON.broken(
                    "error-swallowed",
                    f"for a URL whose port refuses connections, fetch_json returned "
                    f"{clip(repr(returned), 60)} instead of raising.",
                )
    return (
        "the JSON of a 200 and a 201 returned; a 422 and a 503 (JSON), a 404 (plain text) and "
        "a 502 (HTML) raised ApiError with their status and body as sent; a refused "
        "connection raised."
    )


async def _judge_fetch(
    learner: Any, session: aiohttp.ClientSession, url: str, answer: _Answer
) -> None:
    try:
        returned = await call_async("fetch_json", learner, session, url)
    except (Mistake, NotImplementedError):
        raise
    except ApiError as error:
        if answer.status < 400:
            raise FETCH_JSON.broken(
                "success-as-error",
                f"fetch_json raised {clip(str(error), 60)!r} for {answer.what}: a 201 is a "
                "success, as every 2xx is.",
            ) from None
        _judge_api_error(error, answer)
        return
    except Exception as error:
        _judge_other_error(error, answer)
        return
    if inspect.iscoroutine(returned):
        returned.close()
        raise FETCH_JSON.broken(
            "missing-await",
            f"fetch_json returned a coroutine object for {answer.what}: an await is missing.",
            "`return await response.json()`.",
        )
    if answer.status >= 400:
        what = (
            "the ApiError (instead of raising it)"
            if isinstance(returned, Exception)
            else (clip(repr(returned), 60))
        )
        raise FETCH_JSON.broken(
            "http-error-as-success",
            f"fetch_json returned {what} for {answer.what}, instead of raising ApiError.",
        )
    if returned != answer.data:
        if isinstance(returned, (str, bytes)):
            what = f"the body as {type(returned).__name__}"
        elif isinstance(returned, aiohttp.ClientResponse):
            what = "the response object"
        else:
            what = clip(repr(returned), 60)
        raise FETCH_JSON.broken(
            "no-data", f"for {answer.what}, fetch_json returned {what}, not the parsed JSON."
        )


def _judge_api_error(error: ApiError, answer: _Answer) -> None:
    if error.status != answer.status or not isinstance(error.status, int):
        raise FETCH_JSON.broken(
            "wrong-status",
            f"the ApiError for {answer.what} had the status {clip(repr(error.status), 40)}.",
        )
    body = error.body
    if isinstance(body, str) and body == answer.body:
        return
    parsed = _loads(answer.body)
    if isinstance(body, (bytes, bytearray)):
        how = (
            "bytes (from read()), not text"
            if bytes(body) == answer.body.encode()
            else "bytes that are not the body"
        )
    elif not isinstance(body, str):
        how = f"a {type(body).__name__} (the parsed JSON?), not text"
    elif parsed is not None and body == str(parsed):
        how = "str() of the parsed JSON (Python's repr, single quotes), not the text sent"
    elif parsed is not None and _loads(body) == parsed:
        how = "the JSON re-encoded, not the text as sent"
    elif body.strip() == answer.body.strip():
        how = "the text with its leading or trailing whitespace cut"
    else:
        raise FETCH_JSON.broken(
            "body-lost",
            f"the ApiError for {answer.what} had the body {clip(repr(body), 60)}, not what "
            f"the server sent ({clip(repr(answer.body), 60)}).",
        )
    raise FETCH_JSON.broken("body-not-text", f"for {answer.what}, ApiError.body was {how}.")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _judge_other_error(error: Exception, answer: _Answer) -> None:
    where = learner_line(error)
    at = f" at {where}" if where else ""
    if answer.status < 400:
        problem, message, hint = explain(error)
        raise FETCH_JSON.broken(problem, f"for {answer.what}, fetch_json {message}", hint)
    if isinstance(error, TypeError) and _raised_in_api_error(error):
        raise FETCH_JSON.broken(
            "api-error-arguments",
            f"ApiError(...) itself failed with {exception_text(error)}{at}: it was given "
            "the arguments in another order than (status, body).",
        )
    if isinstance(error, (aiohttp.ContentTypeError, json.JSONDecodeError)):
        raise FETCH_JSON.broken(
            "body-not-text",
            f"for {answer.what}, reading the error body as JSON raised "
            f"{type(error).__name__}{at}: an error body need not be JSON, and ApiError takes "
            "it as text.",
        )
    if isinstance(error, aiohttp.ClientResponseError):
        raise FETCH_JSON.broken(
            "body-lost",
            f"fetch_json raised ClientResponseError ({error.status}, {error.message!r}) for "
            f"{answer.what}: it carries the status, not the body the server sent to explain "
            "the error. The task asks for ApiError(status, body).",
        )
    if isinstance(error, aiohttp.ClientConnectionError) and "Connection closed" in str(error):
        raise FETCH_JSON.broken(
            "body-read-after-block",
            f"for {answer.what}, fetch_json raised {exception_text(error)}{at}: the body was "
            "read after the `async with` block had released the response.",
        )
    if isinstance(error, (AttributeError, NameError, KeyError, IndexError, TypeError)):
        problem, message, hint = explain(error)
        raise FETCH_JSON.broken(problem, f"for {answer.what}, fetch_json {message}", hint)
    also = ""
    if type(error).__name__ == "ApiError":
        also = " (an ApiError of your own, not the one imported from the check module)"
    raise FETCH_JSON.broken(
        "wrong-exception",
        f"fetch_json raised {exception_text(error)}{also} for {answer.what}; the task asks "
        "for ApiError(status, body).",
    )


def _raised_in_api_error(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code is ApiError.__init__.__code__:
            return True
        tb = tb.tb_next
    return False


# --- Task 3: api_session -----------------------------------------------------------------

API_SESSION = Task(
    "api_session",
    Rule(
        "not-a-session",
        "returns a new `aiohttp.ClientSession`",
        "the type of what api_session returned",
        "return `aiohttp.ClientSession(base_url=base_url, raise_for_status=True)`.",
    ),
    Rule(
        "session-closed",
        "returns a new `aiohttp.ClientSession` (the check closes it)",
        "the returned session was already closed",
        "return the session without closing it (no `async with` around it in "
        "api_session): its caller closes it.",
    ),
    Rule(
        "no-base-url",
        "a session for `base_url`",
        "a request for a relative path on the session",
        "pass `base_url=base_url` to ClientSession.",
    ),
    Rule(
        "sync-callback",
        "in which every 4xx or 5xx raises",
        "TypeError 'can't be used in an await expression' for a 200, and the callback given "
        "as raise_for_status= is a plain function",
        "aiohttp awaits a raise_for_status= callback: define it with `async def`, or pass "
        "`raise_for_status=True`.",
    ),
    Rule(
        "raises-for-success",
        "a 2xx or 3xx does not raise",
        "a 201, a 204, a 304 and a redirect to a 200, each must come back as a response",
        "raise only for `status >= 400` (that is `not response.ok`): "
        "`raise_for_status=True` does exactly that.",
    ),
    Rule(
        "session-does-not-raise",
        "**every** 4xx or 5xx raises `ClientResponseError` without any call in the request's code",
        "a dozen error statuses from 400 to 5xx, with several methods: each must raise",
        "give the session `raise_for_status=True`: every response is then checked when it "
        "arrives, with no call to remember per request.",
    ),
    Rule(
        "wrong-exception",
        "raises `ClientResponseError`",
        "the class of the exception raised for an error status",
        "raise ClientResponseError (what `raise_for_status=True` and "
        "`response.raise_for_status()` raise), not an exception of your own.",
    ),
    Rule(
        "wrong-status",
        "raises `ClientResponseError` (with that status)",
        "the status on each ClientResponseError, compared with the one the server sent",
        "`response.raise_for_status()` builds the error with the response's own status.",
    ),
)

SUCCESSES = (
    ("GET", "/get", "a 200"),
    ("POST", "/status/201", "a 201"),
    ("GET", "/status/204", "a 204"),
    ("GET", "/status/304", "a 304"),
    ("GET", "/redirect/1", "a redirect to a 200"),
)
ERRORS = (400, 401, 403, 404, 409, 422, 429, 500, 502, 503)
MORE_ERRORS = (402, 405, 406, 410, 418, 451, 501, 504, 507)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")


@dataclass
class _Probe:
    method: str
    path: str
    what: str
    status: int | None = None  # the status of the response that came back, if one did
    error: BaseException | None = None


@check(API_SESSION)
async def api_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``api_session(base_url)`` returns a session that raises for every 4xx/5xx."""
    rng = random.Random(f"{SEED}-api_session")
    session = learner(server.url)
    if inspect.isawaitable(session):
        session = await session
    if not isinstance(session, aiohttp.ClientSession):
        raise API_SESSION.broken(
            "not-a-session",
            f"api_session returned {clip(repr(session), 60)}; expected an aiohttp.ClientSession.",
        )
    if session.closed:
        raise API_SESSION.broken(
            "session-closed",
            "api_session returned a session that was already closed (an `async with` block "
            "around it ends before the caller can use it).",
        )
    statuses = [*ERRORS, *rng.sample(MORE_ERRORS, 2)]
    errors = [
        _Probe(rng.choice(METHODS), f"/status/{status}", f"a {status}") for status in statuses
    ]
    successes = [_Probe(*probe) for probe in SUCCESSES]
    try:
        for probe in successes + errors:
            await _send(session, probe)
    finally:
        await session.close()
    _judge_session(session, successes, errors)
    return (
        f"the session answered {len(successes)} successes (a 200, 201, 204, 304 and a "
        f"redirect) and raised ClientResponseError with the right status for {len(errors)} "
        "error statuses, with several methods."
    )


async def _send(session: aiohttp.ClientSession, probe: _Probe) -> None:
    try:
        async with session.request(probe.method, probe.path) as response:
            probe.status = response.status
            await response.read()
    except Exception as error:  # judged below, with all the probes
        probe.error = error


def _judge_session(
    session: aiohttp.ClientSession, successes: list[_Probe], errors: list[_Probe]
) -> None:
    first = successes[0].error
    if isinstance(first, ValueError):
        raise API_SESSION.broken(
            "no-base-url",
            f"a request for the relative path /get failed: {exception_text(first)}.",
        )
    for probe in successes + errors:
        error = probe.error
        if isinstance(error, TypeError) and "can't be used in 'await' expression" in str(error):
            raise API_SESSION.broken("sync-callback", _sync_callback(session, probe, error))
    raised = [p for p in successes if p.error is not None]
    if raised:
        named = ", ".join(f"{p.what} ({_what_raised(p.error)})" for p in raised[:3])
        raise API_SESSION.broken(
            "raises-for-success", f"the session raised for {named}: they are not errors."
        )
    quiet = [p for p in errors if p.error is None]
    if quiet:
        named = ", ".join(f"{p.what} ({p.method})" for p in quiet[:4])
        caught = len(errors) - len(quiet)
        came = (
            "came back as a normal response"
            if len(quiet) == 1
            else ("came back as normal responses")
        )
        hint = None
        if callable(getattr(session, "_raise_for_status", None)):
            hint = (
                "your raise_for_status= callback must raise for every status from 400 up: "
                "`if not response.ok: response.raise_for_status()` (or pass "
                "`raise_for_status=True`)."
            )
        raise API_SESSION.broken(
            "session-does-not-raise",
            f"{named} {came} from the session"
            + (f" ({caught} other error statuses did raise)" if caught else "")
            + ".",
            hint,
        )
    for probe in errors:
        error = probe.error
        if not isinstance(error, aiohttp.ClientResponseError):
            raise API_SESSION.broken(
                "wrong-exception",
                f"{probe.what} raised {exception_text(error)}"
                f"{_at(error)}; the task asks for ClientResponseError.",
            )
        if error.status != int(probe.path.rsplit("/", 1)[1]):
            raise API_SESSION.broken(
                "wrong-status",
                f"{probe.what} raised ClientResponseError with the status {error.status!r}.",
            )


def _at(error: BaseException | None) -> str:
    where = learner_line(error) if error is not None else None
    return f" ({where})" if where else ""


def _what_raised(error: BaseException | None) -> str:
    if isinstance(error, aiohttp.ClientResponseError):
        return f"ClientResponseError {error.status}"
    return exception_text(error) if error is not None else ""


def _sync_callback(session: aiohttp.ClientSession, probe: _Probe, error: BaseException) -> str:
    callback = getattr(session, "_raise_for_status", None)
    name, where = "the callback", ""
    code = getattr(callback, "__code__", None)
    if callable(callback) and code is not None and not inspect.iscoroutinefunction(callback):
        name = f"`{callback.__name__}`"
        if is_learner_file(code.co_filename):
            where = f" ({learner_line_at(code.co_filename, code.co_name, code.co_firstlineno)})"
    return (
        f"{probe.what} raised {exception_text(error)}: the session's raise_for_status= "
        f"callback, {name}{where}, is a plain function. aiohttp awaits what it returns, and "
        "for a success that is None."
    )
