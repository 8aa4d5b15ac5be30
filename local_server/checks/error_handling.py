"""Checks for exercise 06, error handling.

In the notebook: ``from local_server.checks import error_handling as check``. The exercise's
result types live here too, so the learner's code and the checks agree on them:
``Outcome``, ``FetchResult`` and ``ApiError``.

- ``safe_fetch`` meets every kind of failure (a 4xx and a 5xx, a total timeout and a read
  timeout, a refused port, an unknown host, a reset connection, a body cut short, JSON under
  the wrong content type) and must classify each into the right ``Outcome``.
- ``fetch_json`` must raise ``ApiError`` carrying the status and the error body of a 4xx/5xx.
- ``api_session`` must return a session that raises for every 4xx/5xx by itself.
"""

from __future__ import annotations

import enum
import inspect
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..runner import LocalServer
from ..serving import refused_url
from .harness import Mistake, SessionSpy, call_async, check

# --- The exercise's types ----------------------------------------------------------------


class Outcome(enum.Enum):
    """What happened to one request, in the terms a caller acts on."""

    OK = "ok"  # a 2xx with a parsed JSON body: use result.data
    HTTP_ERROR = "http_error"  # the server answered 4xx/5xx: see result.status
    TIMEOUT = "timeout"  # no answer in time: maybe retry later
    CONNECTION_ERROR = "connection_error"  # no connection, or it broke: maybe retry
    INVALID_RESPONSE = "invalid_response"  # an answer we cannot use (not JSON...)


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


# --- Task 1: safe_fetch ------------------------------------------------------------------

SLOW_SECONDS = 1  # /slow/headers/{s}: the server answers after this long
TOTAL_TIMEOUT = aiohttp.ClientTimeout(total=0.2)
READ_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=0.1)
UNKNOWN_HOST = "http://no-such-host.invalid/get"  # .invalid never resolves (RFC 2606)

OK = Outcome.OK.value
HTTP_ERROR = Outcome.HTTP_ERROR.value
TIMEOUT = Outcome.TIMEOUT.value
CONNECTION_ERROR = Outcome.CONNECTION_ERROR.value
INVALID_RESPONSE = Outcome.INVALID_RESPONSE.value


@dataclass(frozen=True)
class _Case:
    what: str
    url: str
    timeout: aiohttp.ClientTimeout
    expected: frozenset[str]
    status: int | None = None


def _cases(server: LocalServer, token: str) -> list[_Case]:
    base = server.url
    return [
        _Case("a 200 with JSON", f"{base}/get?token={token}", TOTAL_TIMEOUT, frozenset({OK})),
        _Case("a 404", f"{base}/status/404", TOTAL_TIMEOUT, frozenset({HTTP_ERROR}), 404),
        _Case("a 503", f"{base}/status/503", TOTAL_TIMEOUT, frozenset({HTTP_ERROR}), 503),
        _Case(
            "a server too slow for ClientTimeout(total=0.2)",
            f"{base}/slow/headers/{SLOW_SECONDS}",
            TOTAL_TIMEOUT,
            frozenset({TIMEOUT}),
        ),
        _Case(
            "a server too slow for ClientTimeout(sock_read=0.1)",
            f"{base}/slow/headers/{SLOW_SECONDS}",
            READ_TIMEOUT,
            frozenset({TIMEOUT}),
        ),
        _Case("a refused port", refused_url("/get"), TOTAL_TIMEOUT, frozenset({CONNECTION_ERROR})),
        _Case("an unknown host", UNKNOWN_HOST, TOTAL_TIMEOUT, frozenset({CONNECTION_ERROR})),
        _Case(
            "a connection reset (/fault/reset)",
            f"{base}/fault/reset",
            TOTAL_TIMEOUT,
            frozenset({CONNECTION_ERROR}),
        ),
        _Case(
            "a body cut short (/fault/short-body)",
            f"{base}/fault/short-body",
            TOTAL_TIMEOUT,
            frozenset({CONNECTION_ERROR, INVALID_RESPONSE}),
        ),
        _Case(
            "JSON labelled text/html (/fault/wrong-content-type)",
            f"{base}/fault/wrong-content-type",
            TOTAL_TIMEOUT,
            frozenset({INVALID_RESPONSE}),
        ),
    ]


def _outcome_name(result: Any, what: str) -> str:
    if not hasattr(result, "outcome"):
        raise Mistake(
            "wrong-return-type",
            f"safe_fetch returned {type(result).__name__} for {what}; expected a FetchResult.",
            "return `FetchResult(Outcome.…, ...)` in every case, never None or a bare value.",
        )
    outcome = result.outcome
    return str(getattr(outcome, "value", outcome)).lower()


async def _run_case(learner: Any, case: _Case) -> Any:
    async with aiohttp.ClientSession(timeout=case.timeout) as session:
        try:
            return await call_async("safe_fetch", learner, session, case.url)
        except TypeError as error:
            if "do not inherit from BaseException" in str(error):
                raise Mistake(
                    "client-timeout-clause",
                    f"safe_fetch raised TypeError for {case.what}: {error}. An `except "
                    "aiohttp.ClientTimeout:` clause was reached, and ClientTimeout is the "
                    "settings class for timeouts, not an exception.",
                    "catch the exception a timeout raises: `except TimeoutError:` (the "
                    "builtin; it also catches aiohttp's ServerTimeoutError subclasses).",
                ) from None
            raise
        except TimeoutError as error:
            raise Mistake(
                "timeout-not-caught",
                f"safe_fetch let {type(error).__name__} escape for {case.what}.",
                "a `total` timeout raises the builtin TimeoutError, which is not an "
                "aiohttp.ClientError: add `except TimeoutError:` and return Outcome.TIMEOUT.",
            ) from None
        except aiohttp.ClientError as error:
            raise Mistake(
                "not-caught",
                f"safe_fetch let {type(error).__name__} escape for {case.what}.",
                "catch it and return a FetchResult; lesson 06's tree shows which clause "
                "catches which class.",
            ) from None


@check("safe_fetch", timeout=15)
async def safe_fetch(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``safe_fetch(session, url)`` returns a FetchResult with the right outcome for each case."""
    token = secrets.token_hex(4)
    cases = _cases(server, token)
    results = [(case, await _run_case(learner, case)) for case in cases]
    named = [(case, result, _outcome_name(result, case.what)) for case, result in results]
    failures = {name for case, _, name in named if OK not in case.expected}
    if len(failures) == 1:
        (only,) = failures
        raise Mistake(
            "one-generic-case",
            f"safe_fetch gave the same outcome, {only!r}, for all {len(cases) - 1} kinds of "
            "failure: the caller cannot tell a 404 from a timeout or a dead host.",
            "catch specific classes, most specific first: ClientResponseError (HTTP "
            "errors), TimeoutError, ClientConnectionError, then ContentTypeError/"
            "ClientPayloadError; a single `except Exception` hides the difference.",
        )
    for case, _, name in named:
        if case.status is not None and name == OK:
            raise Mistake(
                "http-error-as-success",
                f"safe_fetch returned outcome 'ok' for {case.what}.",
                "a 4xx/5xx is a normal response to aiohttp: call `response.raise_for_status()`"
                " (or test `response.ok`) before reading the body.",
            )
    for case, _, name in named:
        if case.expected == {TIMEOUT} and name != TIMEOUT:
            problem = "timeout-misclassified"
            if name == CONNECTION_ERROR:
                problem = "timeout-as-connection-error"
            raise Mistake(
                problem,
                f"safe_fetch returned {name!r} for {case.what}; expected 'timeout'.",
                "a read timeout raises SocketTimeoutError, which is both a "
                "ClientConnectionError and a TimeoutError: put `except TimeoutError:` "
                "before `except aiohttp.ClientConnectionError:`, or the connection clause "
                "catches it first.",
            )
    for case, result, name in named:
        if name not in case.expected:
            expected = " or ".join(repr(value) for value in sorted(case.expected))
            hint = "catch the classes in order, most specific first."
            if case.status is not None:
                hint = (
                    "call `response.raise_for_status()` before reading the body, and catch "
                    "ClientResponseError as an HTTP error with its status."
                )
            if case.expected == {INVALID_RESPONSE} and name == HTTP_ERROR:
                hint = (
                    "ContentTypeError is a subclass of ClientResponseError: catch it before "
                    "ClientResponseError (its status is 200, the server did not refuse)."
                )
            raise Mistake(
                "wrong-outcome",
                f"safe_fetch returned {name!r} for {case.what}; expected {expected}.",
                hint,
            )
        if case.status is not None and getattr(result, "status", None) != case.status:
            raise Mistake(
                "no-status",
                f"safe_fetch classified {case.what} as an HTTP error but its status was "
                f"{getattr(result, 'status', None)!r}.",
                "put the response's status on the result: `FetchResult(Outcome.HTTP_ERROR, "
                "status=error.status)`.",
            )
    data = getattr(named[0][1], "data", None)
    if not isinstance(data, dict) or data.get("args", {}).get("token") != token:
        raise Mistake(
            "no-data",
            "for a 200 the result's data was not the parsed JSON body.",
            "return `FetchResult(Outcome.OK, data=await response.json())`.",
        )
    await _expect_bug_to_raise(learner)
    return (
        f"all {len(cases)} cases classified: success, HTTP errors with their status, both "
        "timeouts, connection failures and an invalid body each told apart; a bug still "
        "raises."
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
    except Exception:
        return  # it raised (_PlantedBug, or what the learner made of it): as a bug should
    outcome = getattr(result, "outcome", result)
    raise Mistake(
        "swallows-bugs",
        "given a session whose get() raises an ordinary bug (not a request failure), "
        f"safe_fetch returned {getattr(outcome, 'value', outcome)!r} instead of letting it "
        "raise: a broad `except Exception` turns your own bugs into network failures.",
        "catch only the classes you can name (ClientResponseError, TimeoutError, "
        "ClientConnectionError, ContentTypeError, ClientPayloadError) and let the rest raise.",
    )


# --- Task 2: fetch_json ------------------------------------------------------------------


@check("fetch_json")
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(session, url)`` returns JSON, or raises ApiError(status, body)."""
    token = secrets.token_hex(4)
    async with aiohttp.ClientSession() as session:
        data = await call_async("fetch_json", learner, session, f"{server.url}/get?t={token}")
        if not isinstance(data, dict) or data.get("args", {}).get("t") != token:
            raise Mistake(
                "no-data",
                f"for a 200 fetch_json returned {type(data).__name__}, not the parsed body.",
                "return `await response.json()`.",
            )
        for status in (422, 503):
            key = f"{token}-{status}"
            url = f"{server.url}/fail/{key}/1?status={status}"
            await _expect_api_error(learner, session, url, status, key)
    return "the JSON of a 200 returned; a 422 and a 503 raised ApiError with status and body."


async def _expect_api_error(
    learner: Any, session: aiohttp.ClientSession, url: str, status: int, key: str
) -> None:
    try:
        returned = await call_async("fetch_json", learner, session, url)
    except ApiError as error:
        body = error.body.decode() if isinstance(error.body, bytes) else str(error.body)
        if error.status != status:
            raise Mistake(
                "wrong-status",
                f"ApiError.status was {error.status!r} for a {status}.",
                "pass `response.status` to ApiError.",
            ) from None
        if key not in body:
            raise Mistake(
                "body-lost",
                f"the ApiError for a {status} had the body {body[:60]!r}, not what the "
                "server sent.",
                "read the body (`await response.text()`) inside the `async with` block, "
                "before raising: `ApiError(response.status, await response.text())`.",
            ) from None
        return
    except aiohttp.ClientResponseError as error:
        raise Mistake(
            "body-lost",
            f"fetch_json raised {type(error).__name__} for a {error.status}: it carries the "
            "status but not the body the server sent to explain the error.",
            "when `not response.ok`, read `await response.text()` and raise "
            "`ApiError(response.status, body)`.",
        ) from None
    raise Mistake(
        "http-error-as-success",
        f"fetch_json returned {type(returned).__name__} for a {status} instead of raising.",
        "check `response.ok` (or catch raise_for_status()) and raise ApiError with the body.",
    )


# --- Task 3: api_session -----------------------------------------------------------------


@check("api_session")
async def api_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``api_session(base_url)`` returns a session that raises for every 4xx/5xx."""
    session = learner(server.url)
    if inspect.isawaitable(session):
        session = await session
    if not isinstance(session, aiohttp.ClientSession):
        raise Mistake(
            "not-a-session",
            f"api_session returned {type(session).__name__}; expected an aiohttp.ClientSession.",
            "return `aiohttp.ClientSession(base_url=base_url, raise_for_status=True)`.",
        )
    async with session:
        try:
            async with session.get("/get") as response:
                await response.read()
        except ValueError as error:
            raise Mistake(
                "no-base-url",
                f"a relative path failed on the session: {error}.",
                "pass `base_url=base_url` to ClientSession.",
            ) from None
        for status in (404, 500):
            try:
                async with session.get(f"/status/{status}") as response:
                    got = response.status
            except aiohttp.ClientResponseError as error:
                if error.status != status:
                    raise Mistake(
                        "wrong-status", f"a {status} raised with status {error.status}."
                    ) from None
                continue
            raise Mistake(
                "session-does-not-raise",
                f"a {got} came back as a normal response from the session.",
                "give the session `raise_for_status=True`: every response is then checked "
                "when it arrives, with no call to remember per request.",
            )
    return "the session answered a 200 and raised ClientResponseError for a 404 and a 500."
