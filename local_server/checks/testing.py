"""Checks for exercise 14, testing aiohttp code: ``from local_server.checks import testing``.

The learner writes *tests*, and the checks judge the tests. The code under test lives here, so
the notebook and the checks share one copy: ``get_user`` (a client function) and ``make_app``
(a small users API). Each check runs the learner's test against the correct code, where it
must pass, and then against deliberately broken versions, each of which it must catch:

- a client test is ``async def test_...(get_user)``: it receives the implementation under test
  and mocks the network itself, with ``aioresponses``;
- a server test is ``async def test_...(client)``: it receives an
  ``aiohttp.test_utils.TestClient`` that the check built around the app under test.

Besides the bugs a test missed, a check names a test that fails against the correct code
(quoting the line and the exception), a test that asserts nothing (it passes against every
broken version), a test that makes a real request beyond this machine, and a test that leaves
a ``ClientSession`` open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import re
import threading
import traceback
import types
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ..runner import LocalServer, is_loopback
from ..serving import captured_server_errors
from .harness import Mistake, SessionSpy, call_async, check, learner_frame, plural

# How long one run of a learner's test may take before the check calls it stuck.
RUN_PATIENCE_SECONDS = 3.0

# --- The code under test: a client function ----------------------------------------------


async def get_user(
    session: aiohttp.ClientSession,
    base_url: str,
    user_id: int,
    *,
    attempts: int = 3,
    delay: float = 0.01,
) -> dict:
    """GET ``{base_url}/users/{user_id}`` asking for JSON, and return the decoded JSON.

    A 503 or a connection error is retried, up to ``attempts`` calls in all, ``delay`` seconds
    apart; when they run out, the last error is raised. Any other 4xx/5xx raises
    ``aiohttp.ClientResponseError`` at once. A timeout is not retried: it propagates.
    """
    url = f"{base_url}/users/{user_id}"
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            async with session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status == 503 and not last:
                    await asyncio.sleep(delay)
                    continue
                response.raise_for_status()
                return await response.json()
        except aiohttp.ClientConnectionError:
            if last:
                raise
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


# --- The code under test: a users API ----------------------------------------------------

USERS = web.AppKey("users", dict)


def _json_error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def read_user(request: web.Request) -> web.Response:
    """GET /users/{user_id}: 200 with the user, 404 if unknown, 400 if the id is not a number."""
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError:
        raise _json_error(web.HTTPBadRequest, "user id must be an integer") from None
    user = request.app[USERS].get(user_id)
    if user is None:
        raise _json_error(web.HTTPNotFound, f"user {user_id} not found")
    return web.json_response(user)


async def create_user(request: web.Request) -> web.Response:
    """POST /users with ``{"name": ...}``: 201 with the new user; 400 for a missing name."""
    try:
        data = await request.json()
    except ValueError:
        raise _json_error(web.HTTPBadRequest, "the body must be JSON") from None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise _json_error(web.HTTPBadRequest, "name must be a non-empty string")
    users = request.app[USERS]
    user = {"id": max(users, default=0) + 1, "name": name}
    users[user["id"]] = user
    return web.json_response(user, status=201)


def make_app() -> web.Application:
    """The users API, with one user already stored: ``{"id": 1, "name": "Ada"}``."""
    app = web.Application()
    app[USERS] = {1: {"id": 1, "name": "Ada"}}
    app.router.add_get("/users/{user_id}", read_user)
    app.router.add_post("/users", create_user)
    return app


# --- Broken versions of get_user ---------------------------------------------------------


def _broken_get_user(
    *,
    path: str = "users",
    accept: bool = True,
    as_text: bool = False,
    sends_twice: bool = False,
    raises_for_status: bool = True,
    swallow: tuple[type[BaseException], ...] = (),
    retry_statuses: Callable[[int], bool] = lambda status: status == 503,
    extra_attempts: int = 0,
    silent_give_up: bool = False,
) -> Callable[..., Awaitable[Any]]:
    """``get_user`` with one bug switched on; the defaults behave like the correct one."""

    async def broken(
        session: aiohttp.ClientSession,
        base_url: str,
        user_id: int,
        *,
        attempts: int = 3,
        delay: float = 0.01,
    ) -> Any:
        url = f"{base_url}/{path}/{user_id}"
        headers = {"Accept": "application/json"} if accept else {}
        attempts += extra_attempts
        try:
            for attempt in range(1, attempts + 1):
                last = attempt == attempts
                try:
                    if sends_twice:
                        async with session.get(url, headers=headers) as response:
                            await response.read()
                    async with session.get(url, headers=headers) as response:
                        if retry_statuses(response.status) and not last:
                            await asyncio.sleep(delay)
                            continue
                        if silent_give_up and retry_statuses(response.status):
                            return None
                        if raises_for_status:
                            response.raise_for_status()
                        return await (response.text() if as_text else response.json())
                except aiohttp.ClientConnectionError:
                    if last:
                        raise
                    await asyncio.sleep(delay)
        except swallow:
            return None
        return None

    return broken


@dataclass(frozen=True)
class Bug:
    """One broken version: what it does wrong, in the words a learner reads, and a hint."""

    name: str
    does: str
    hint: str
    version: Callable[..., Any]


REQUEST_BUGS = [
    Bug(
        "wrong-path",
        "requests /user/42 instead of /users/42",
        "register only the exact URL with aioresponses, or assert it: "
        "`m.assert_called_once_with(url, headers=...)`.",
        _broken_get_user(path="user"),
    ),
    Bug(
        "no-accept-header",
        "does not send the `Accept: application/json` header",
        "look at what the request carried: "
        "`m.requests[('GET', URL(url))][0].kwargs['headers']`, or "
        "`m.assert_called_once_with(url, headers={'Accept': 'application/json'})`.",
        _broken_get_user(accept=False),
    ),
    Bug(
        "returns-text",
        "returns the body as a string instead of the decoded JSON",
        "compare the return value with the payload you registered: `assert user == payload`.",
        _broken_get_user(as_text=True),
    ),
    Bug(
        "sends-twice",
        "sends the request twice",
        "count the calls: `m.assert_called_once()`, or `len(m.requests[key]) == 1` "
        "(a response registered with `repeat=True` answers any number of calls).",
        _broken_get_user(sends_twice=True),
    ),
]

ERROR_BUGS = [
    Bug(
        "ignores-status",
        "ignores a 404 (it returns the error body instead of raising)",
        "register `status=404` and expect the error: "
        "`with pytest.raises(aiohttp.ClientResponseError) as info:` then check "
        "`info.value.status == 404`.",
        _broken_get_user(raises_for_status=False),
    ),
    Bug(
        "swallows-connection-errors",
        "returns None when the connection fails on every attempt",
        "register `exception=aiohttp.ClientConnectionError(...)` (with `repeat=True`, it is "
        "retried) and expect it to be raised: `pytest.raises(aiohttp.ClientConnectionError)`.",
        _broken_get_user(swallow=(aiohttp.ClientConnectionError,)),
    ),
    Bug(
        "swallows-timeouts",
        "returns None when the request times out",
        "register `timeout=True` (aioresponses raises TimeoutError) and expect it: "
        "`pytest.raises(TimeoutError)`.",
        _broken_get_user(swallow=(TimeoutError,)),
    ),
]

RETRY_BUGS = [
    Bug(
        "no-retry",
        "does not retry a 503",
        "register a 503 and then a 200 for the same URL: the function must return the "
        "200's payload, after 2 calls.",
        _broken_get_user(retry_statuses=lambda status: False),
    ),
    Bug(
        "retries-4xx",
        "retries a 404 as well (3 calls instead of 1)",
        "register a 404 with `repeat=True` and assert it was requested once: "
        "`len(m.requests[('GET', URL(url))]) == 1`.",
        _broken_get_user(retry_statuses=lambda status: status >= 400),
    ),
    Bug(
        "too-many-attempts",
        "makes 5 calls when attempts=3",
        "register a 503 with `repeat=True` and count the calls: exactly `attempts` of them.",
        _broken_get_user(extra_attempts=2),
    ),
    Bug(
        "gives-up-silently",
        "returns None when every attempt got a 503, instead of raising",
        "expect `aiohttp.ClientResponseError` with status 503 once the attempts run out.",
        _broken_get_user(silent_give_up=True),
    ),
]

# --- Broken versions of the users API ----------------------------------------------------


def _broken_app(
    *,
    unknown_ok: bool = False,
    validates_id: bool = True,
    wrapped: bool = False,
    created_status: int = 201,
    validates_name: bool = True,
) -> Callable[[], web.Application]:
    async def read(request: web.Request) -> web.Response:
        raw = request.match_info["user_id"]
        if validates_id and not raw.lstrip("-").isdigit():
            raise _json_error(web.HTTPBadRequest, "user id must be an integer")
        user_id = int(raw)  # without validation: ValueError, a 500
        user = request.app[USERS].get(user_id)
        if user is None and not unknown_ok:
            raise _json_error(web.HTTPNotFound, f"user {user_id} not found")
        return web.json_response({"user": user} if wrapped else user)

    async def create(request: web.Request) -> web.Response:
        if not validates_name:
            name = (await request.json())["name"]  # KeyError on {}: a 500
        else:
            try:
                data = await request.json()
            except ValueError:
                raise _json_error(web.HTTPBadRequest, "the body must be JSON") from None
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or not name:
                raise _json_error(web.HTTPBadRequest, "name must be a non-empty string")
        users = request.app[USERS]
        user = {"id": max(users, default=0) + 1, "name": name}
        users[user["id"]] = user
        return web.json_response(user, status=created_status)

    def factory() -> web.Application:
        app = web.Application()
        app[USERS] = {1: {"id": 1, "name": "Ada"}}
        app.router.add_get("/users/{user_id}", read)
        app.router.add_post("/users", create)
        return app

    return factory


APP_BUGS = [
    Bug(
        "unknown-user-200",
        "answers 200 with `null` for an unknown user, instead of 404",
        "request a user that does not exist (`/users/999`) and assert `resp.status == 404`.",
        _broken_app(unknown_ok=True),
    ),
    Bug(
        "no-id-validation",
        "answers 500 for `/users/abc` (the handler raised ValueError), instead of 400",
        "request `/users/abc` and assert `resp.status == 400`.",
        _broken_app(validates_id=False),
    ),
    Bug(
        "wrong-shape",
        'answers `{"user": {"id": 1, "name": "Ada"}}` instead of `{"id": 1, "name": "Ada"}`',
        'compare the whole body: `assert await resp.json() == {"id": 1, "name": "Ada"}`.',
        _broken_app(wrapped=True),
    ),
    Bug(
        "created-200",
        "answers 200 to a successful POST /users, instead of 201 Created",
        "assert the status of the POST: `resp.status == 201`.",
        _broken_app(created_status=200),
    ),
    Bug(
        "no-name-validation",
        "answers 500 to a POST /users without a name (the handler raised KeyError), instead of 400",
        "POST `json={}` and assert `resp.status == 400`.",
        _broken_app(validates_name=False),
    ),
]

# --- Guarding the network ----------------------------------------------------------------

@contextlib.contextmanager
def _outside_requests_blocked() -> Iterator[list[str]]:
    """Refuse real requests to anything but this machine, from this thread; list them.

    It wraps ``ClientSession._request``, the method aioresponses replaces while it is active,
    so a mocked request never reaches it; only a request that would really go out does.
    """
    blocked: list[str] = []
    thread = threading.get_ident()
    original = aiohttp.ClientSession._request

    @functools.wraps(original)
    async def guarded(session: aiohttp.ClientSession, method: str, str_or_url: Any, **kw: Any):
        if threading.get_ident() == thread:
            url = session._build_url(str_or_url)
            if url.host is None or not is_loopback(url.host):
                blocked.append(f"{method} {url}")
                raise aiohttp.ClientConnectionError(f"the check blocked a real request to {url}")
        return await original(session, method, str_or_url, **kw)

    aiohttp.ClientSession._request = guarded  # type: ignore[method-assign]
    try:
        yield blocked
    finally:
        aiohttp.ClientSession._request = original  # type: ignore[method-assign]


# --- Running a learner's test ------------------------------------------------------------


def _latest_raise(exc: BaseException) -> BaseException:
    """``exc`` with the traceback of its latest raise only.

    aioresponses raises the same exception object on every call a ``repeat=True`` answer
    gets, and each raise adds its frames in front of those of the earlier ones, so the
    innermost learner frame would be the line of an earlier call. A frame seen twice marks
    where the earlier raise begins.
    """
    entries: list[types.TracebackType] = []
    seen: set[int] = set()
    tb = exc.__traceback__
    while tb is not None and id(tb.tb_frame) not in seen:
        seen.add(id(tb.tb_frame))
        entries.append(tb)
        tb = tb.tb_next
    if tb is None:
        return exc
    latest = None
    for entry in reversed(entries):
        latest = types.TracebackType(latest, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return exc.with_traceback(latest)


def _where(exc: BaseException) -> str:
    """' at line N of test_x(): `source`' for the innermost frame of the learner's code."""
    frame = learner_frame(exc)
    if frame is None:
        return ""
    line = f": `{frame.line.strip()}`" if frame.line else ""
    return f" at line {frame.lineno} of {frame.name}(){line}"


def _raised_by_own_line(exc: BaseException) -> bool:
    """True when the learner's line itself raised, not code it called (a bad call, a bad key)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and learner_frame(exc) == frames[-1]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_NEVER_AWAITED = re.compile(r"coroutine '([\w.<>]+)' was never awaited")


@contextlib.contextmanager
def _never_awaited() -> Iterator[list[str]]:
    """Names of the coroutines the block created and dropped unawaited.

    Their "never awaited" warnings become evidence instead of stderr; other warnings are
    shown as usual.
    """
    names: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", _NEVER_AWAITED.pattern, RuntimeWarning)
        yield names
    for record in caught:
        match = _NEVER_AWAITED.search(str(record.message))
        if match:
            names.append(match[1])
        else:
            warnings.showwarning(record.message, record.category, record.filename, record.lineno)


def _close_unawaited(error: BaseException | None) -> list[str]:
    """Close the never-started coroutines the failed test's frames still hold; their names.

    ``user = get_user(...)`` without ``await`` keeps the coroutine alive in the frame that the
    error's traceback keeps alive, so its warning would come later, outside the check.
    """
    names = []
    tb = error.__traceback__ if error is not None else None
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if inspect.iscoroutine(value) and inspect.getcoroutinestate(value) == "CORO_CREATED":
                value.close()
                names.append(value.__qualname__)
        tb = tb.tb_next
    return names


@dataclass
class Run:
    """What one run of the learner's test did."""

    error: BaseException | None
    blocked: list[str]
    left_open: int
    hung: bool = False
    unawaited: list[str] = field(default_factory=list)


async def _run_once(
    task: str, learner: Any, argument: Any, spy: SessionSpy, guard_blocked: list[str]
) -> Run:
    before = len(guard_blocked)
    known = len(spy.sessions)
    with _never_awaited() as unawaited:
        call = asyncio.ensure_future(call_async(task, learner, argument))
        done, _ = await asyncio.wait({call}, timeout=RUN_PATIENCE_SECONDS)
        if not done:
            call.cancel()
            await asyncio.wait({call}, timeout=1.0)
        error = call.exception() if done else None
        unawaited.extend(_close_unawaited(error))
    # Sessions the learner's test opened and left open (not the check's own TestClient).
    leaked = [session for session in spy.sessions[known:] if not session.closed]
    for session in leaked:
        await session.close()
    if isinstance(error, (NotImplementedError, Mistake)):
        raise error
    if error is not None:
        error = _latest_raise(error)
    return Run(error, guard_blocked[before:], len(leaked), not done, unawaited)


@dataclass(frozen=True)
class Subject:
    """The correct code a check runs the learner's test against, and how to talk about it."""

    name: str
    correct: Any
    nothing_hint: str
    unexpected_hint: str  # "{error}" is replaced by the class of the unexpected exception


CLIENT = Subject(
    "the correct get_user",
    get_user,
    "a test must fail when the code is wrong: assert what the function returns or raises, "
    "and what it requested (`m.requests`, `m.assert_called_once_with(...)`).",
    "the correct code led to {error} where your test did not expect it: expect the class "
    "the code really raises, or fix the mock.",
)
APP = Subject(
    "the correct users API",
    make_app,
    "a test must fail when the code is wrong: assert each response's status and body.",
    "the correct app led to {error} where your test did not expect it: reach the app "
    "through the `client` your test receives, with a path: `client.get('/users/1')`.",
)


def _is_string_url_key(error: BaseException) -> bool:
    """A KeyError for ``m.requests[("GET", "http://...")]``: the URL given as a string."""
    key = error.args[0] if isinstance(error, KeyError) and error.args else None
    return isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str)


def _no_answer_left(error: BaseException) -> bool:
    """aioresponses' error for a request that nothing registered answers."""
    return type(error) is aiohttp.ClientConnectionError and str(error).startswith(
        "Connection refused: "
    )


def _failure_hint(error: BaseException, subject: Subject) -> str:
    """The hint for a test that failed against the correct code with ``error``."""
    if _is_string_url_key(error):
        return (
            "`m.requests` is keyed by the method and a `yarl.URL`, not a string: "
            "`m.requests[('GET', URL(url))]`, with `from yarl import URL`."
        )
    if isinstance(error, AssertionError):
        return "a test must pass against correct code: check what you expect."
    if _raised_by_own_line(error):
        return (
            f"that line of your test raised {type(error).__name__} itself, not the code under "
            "test: check it (the arguments of the call, the names and keys it uses)."
        )
    if _no_answer_left(error):
        return (
            "aioresponses had no response left for that request: register the exact URL "
            "the code requests (each registered response answers once, unless you pass "
            "`repeat=True`)."
        )
    return subject.unexpected_hint.format(error=type(error).__name__)


def _judge_correct_run(run: Run, subject: Subject) -> None:
    """Raise the Mistake a run against the correct code shows, if any."""
    if run.blocked:
        raise Mistake(
            "real-network",
            f"your test made a real request to {run.blocked[0]} (the check blocked it).",
            "a unit test must not depend on the outside world: wrap the calls in "
            "`with aioresponses() as m:` and register every URL the code requests.",
        )
    if run.hung:
        raise Mistake(
            "test-hangs",
            f"your test did not finish within {RUN_PATIENCE_SECONDS:g} s against {subject.name}.",
            "does it wait for something that never comes? With aioresponses nothing is slow.",
        )
    if run.unawaited:
        where = _where(run.error) if run.error is not None else ""
        raise Mistake(
            "missing-await",
            f"your test called `{run.unawaited[0]}()` without `await`{where}: the call "
            "returned a coroutine object, not the result, and its code never ran.",
            "put `await` before every call of an `async def` function: "
            "`await get_user(session, BASE, 42)`, `await resp.json()`.",
        )
    if run.error is not None:
        raise Mistake(
            "fails-on-correct-code",
            f"your test failed against {subject.name}{_where(run.error)}: {_describe(run.error)}.",
            _failure_hint(run.error, subject),
        )
    if run.left_open:
        raise Mistake(
            "unclosed-session",
            f"your test left {plural(run.left_open, 'ClientSession')} open.",
            "create it with `async with aiohttp.ClientSession() as session:` so it is closed "
            "even when an assertion fails.",
        )


async def _judge(
    learner: Any,
    subject: Subject,
    bugs: list[Bug],
    run_with: Callable[[Any, Any], Awaitable[Run]],
) -> None:
    """Run against the correct code, then each bug; raise the Mistake for what was missed."""
    _judge_correct_run(await run_with(learner, subject.correct), subject)
    missed = []
    for bug in bugs:
        run = await run_with(learner, bug.version)
        if run.blocked:
            _judge_correct_run(run, subject)
        if run.error is None and not run.hung:
            missed.append(bug)
    if missed and len(missed) == len(bugs):
        raise Mistake(
            "asserts-nothing",
            f"your test passed against all {len(bugs)} broken versions as well as the correct "
            "one: it does not check anything that matters.",
            subject.nothing_hint,
        )
    if missed:
        names = "; ".join(f"one that {bug.does}" for bug in missed[1:])
        also = f" (it also missed {names})" if len(missed) > 1 else ""
        raise Mistake(
            missed[0].name,
            f"your test did not notice a {subject.name.removeprefix('the correct ')} that "
            f"{missed[0].does}{also}.",
            missed[0].hint,
        )


async def _judge_client_test(task: str, learner: Any, spy: SessionSpy, bugs: list[Bug]) -> None:
    with _outside_requests_blocked() as blocked:

        async def run_with(learner: Any, version: Any) -> Run:
            return await _run_once(task, learner, version, spy, blocked)

        await _judge(learner, CLIENT, bugs, run_with)


# --- Task 1: the request and the result --------------------------------------------------


@check("test_returns_the_user", timeout=30)
async def test_returns_the_user(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch a wrong path, a missing header, text, and a double call."""
    await _judge_client_test("test_returns_the_user", learner, spy, REQUEST_BUGS)
    return (
        f"passes against get_user and catches all {len(REQUEST_BUGS)} broken versions: a wrong "
        "path, a missing Accept header, text instead of JSON, a request sent twice."
    )


# --- Task 2: errors ------------------------------------------------------------------------


@check("test_errors_are_raised", timeout=30)
async def test_errors_are_raised(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch an ignored 404, a swallowed connection error or timeout."""
    await _judge_client_test("test_errors_are_raised", learner, spy, ERROR_BUGS)
    return (
        f"passes against get_user and catches all {len(ERROR_BUGS)} broken versions: an "
        "ignored 404, a swallowed connection error, a swallowed timeout."
    )


# --- Task 3: retries -----------------------------------------------------------------------


@check("test_retries", timeout=30)
async def test_retries(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch no retry, a retried 404, extra attempts, a silent give-up."""
    await _judge_client_test("test_retries", learner, spy, RETRY_BUGS)
    return (
        f"passes against get_user and catches all {len(RETRY_BUGS)} broken versions: no retry, "
        "a retried 404, too many attempts, giving up without raising."
    )


# --- Task 4: the users API -----------------------------------------------------------------


@check("test_user_api", timeout=40)
async def test_user_api(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test gets a TestClient around the correct app, then each broken app."""
    task = "test_user_api"
    with _outside_requests_blocked() as blocked:

        async def run_with(learner: Any, factory: Callable[[], web.Application]) -> Run:
            with captured_server_errors():
                async with TestClient(TestServer(factory())) as client:
                    return await _run_once(task, learner, client, spy, blocked)

        await _judge(learner, APP, APP_BUGS, run_with)
    return (
        f"passes against the users API and catches all {len(APP_BUGS)} broken versions: a 200 "
        "for an unknown user, a 500 for a bad id, a wrapped body, a 200 for a creation, a 500 "
        "for a missing name."
    )
