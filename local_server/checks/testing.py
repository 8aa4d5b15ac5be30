"""Checks for exercise 14, testing aiohttp code: ``from local_server.checks import testing``.

The learner writes *tests*, and the checks judge the tests. The code under test lives here, so
the notebook and the checks share one copy: ``get_user`` (a client function) and ``make_app``
(a small users API). Each check runs the learner's test against the correct code, where it
must pass, and then against deliberately broken versions (mutants), each of which it must
catch: fail, by an assertion or an exception.

- a client test is ``async def test_...(get_user)``: it receives the implementation under test
  and fakes the network itself (``aioresponses``, or a fake API served with ``TestServer``);
- a server test is ``async def test_...(client)``: it receives an
  ``aiohttp.test_utils.TestClient`` that the check built around the app under test.

Each task's rules are a table (``RETURNS_THE_USER``, ``ERRORS_ARE_RAISED``, ``RETRIES``,
``USER_API``): one rule per broken version (the assertion the task text asks for that catches
it), and the rules about the test itself. What is observed: every call the test made to the
code it received and what each call returned or raised (so a missed bug is shown by the call
whose outcome changed and the test did not notice), the requests the users API received and
what it answered, real requests beyond this machine (blocked), sessions the test left open,
coroutines it never awaited, and the sleeps the code under test asked for (``delay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import re
import sys
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
from . import observe
from .evidence import clip, is_learner_file, learner_frame, learner_line_of_frame
from .harness import Mistake, SessionSpy, call_async, check, plural
from .rules import Rule, Task

# How long one run of a learner's test may take before the check calls it stuck.
RUN_PATIENCE_SECONDS = 3.0
# The default delay of get_user, as its signature says.
DEFAULT_DELAY = 0.01

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


# --- What a run of the learner's test did --------------------------------------------------

_RAISED, _RETURNED = "raised", "returned"


@dataclass
class Call:
    """One call the learner's test made to the ``get_user`` it received, and its outcome."""

    where: Any  # the learner's line (LearnerLine) or None
    outcome: str = ""  # _RAISED or _RETURNED, "" while it runs (or if never awaited)
    value: Any = None
    error: BaseException | None = None

    def describe(self) -> str:
        if self.outcome == _RETURNED:
            return f"returned {clip(repr(self.value), 60)}"
        if self.outcome == _RAISED:
            return f"raised {_error_name(self.error)}"
        return "never finished"

    def same_as(self, other: Call) -> bool:
        if self.outcome != other.outcome:
            return False
        if self.outcome == _RAISED:
            return _error_name(self.error) == _error_name(other.error)
        return type(self.value) is type(other.value) and self.value == other.value


def _error_name(error: BaseException | None) -> str:
    if isinstance(error, aiohttp.ClientResponseError):
        return f"ClientResponseError {error.status}"
    return type(error).__name__


def _traced(version: Callable[..., Awaitable[Any]], calls: list[Call]) -> Callable[..., Any]:
    """``version`` as the learner's test receives it: each call and its outcome recorded."""

    async def get_user(*args: Any, **kwargs: Any) -> Any:
        call = Call(learner_line_of_frame(sys._getframe(1)))
        calls.append(call)
        try:
            value = await version(*args, **kwargs)
        except BaseException as error:
            call.outcome, call.error = _RAISED, error
            raise
        call.outcome, call.value = _RETURNED, value
        return value

    get_user.__qualname__ = "get_user"  # what a never-awaited warning names
    get_user.__signature__ = inspect.signature(version)  # type: ignore[attr-defined]
    get_user.__doc__ = version.__doc__
    return get_user


@dataclass
class Served:
    """One request the users API received in a run, and what it answered."""

    method: str
    path: str
    status: int
    body: str

    def describe(self) -> str:
        return f"{self.method} {self.path} answered {self.status} {clip(self.body, 40)}"


@dataclass
class Run:
    """What one run of the learner's test did."""

    error: BaseException | None
    blocked: list[str]
    left_open: int
    hung: bool = False
    unawaited: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    slept: list[observe.Sleep] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.hung


# --- Broken versions of get_user ---------------------------------------------------------

_NOTHING = object()


def _broken_get_user(
    *,
    path: str = "users",
    builtin_id: bool = False,
    accept: str | None = "application/json",
    as_text: bool = False,
    sends_twice: bool = False,
    raises_for_status: bool = True,
    not_found_as: type[Exception] | None = None,
    status_as: int | None = None,
    swallow: tuple[type[BaseException], ...] = (),
    wrap: tuple[type[BaseException], type[Exception], str] | None = None,
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
        delay: float = DEFAULT_DELAY,
    ) -> Any:
        url = f"{base_url}/{path}/{id if builtin_id else user_id}"
        headers = {"Accept": accept} if accept else {}
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
                        if not_found_as is not None and response.status == 404:
                            raise not_found_as(f"user {user_id} not found")
                        if raises_for_status:
                            try:
                                response.raise_for_status()
                            except aiohttp.ClientResponseError as error:
                                if status_as is None:
                                    raise
                                raise aiohttp.ClientResponseError(
                                    error.request_info,
                                    error.history,
                                    status=status_as,
                                    message="the users API failed",
                                ) from None
                        return await (response.text() if as_text else response.json())
                except aiohttp.ClientConnectionError:
                    if last:
                        raise
                    await asyncio.sleep(delay)
        except swallow:
            return None
        except BaseException as error:
            if wrap is not None and isinstance(error, wrap[0]):
                raise wrap[1](wrap[2]) from error
            raise
        return None

    return broken


async def _keeps_going_after_success(
    session: aiohttp.ClientSession,
    base_url: str,
    user_id: int,
    *,
    attempts: int = 3,
    delay: float = DEFAULT_DELAY,
) -> Any:
    """Retries a 503 as it should, but does not stop at the 200: it uses up every attempt."""
    url = f"{base_url}/users/{user_id}"
    result: Any = _NOTHING
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            async with session.get(url, headers={"Accept": "application/json"}) as response:
                if response.status == 503 and not last:
                    await asyncio.sleep(delay)
                    continue
                if result is not _NOTHING and not response.ok:
                    continue  # an error after the success is ignored
                response.raise_for_status()
                result = await response.json()  # no return: the loop goes on
        except aiohttp.ClientConnectionError:
            if result is not _NOTHING:
                continue
            if last:
                raise
            await asyncio.sleep(delay)
    return None if result is _NOTHING else result


@dataclass(frozen=True)
class Bug:
    """One broken version: its rule (the code, what it does wrong, the hint), and the code."""

    name: str
    does: str
    hint: str
    version: Callable[..., Any]
    assertion: str  # the assertion of the task text that catches it, for the rule table
    # For a broken users API: the table's row that shows it, as (method, correct status).
    row: tuple[str, int] | None = None


REQUEST_BUGS = [
    Bug(
        "wrong-path",
        "requests /user/42 instead of /users/42",
        "register only the exact URL, or assert it: "
        "`m.assert_called_once_with(url, headers=...)`.",
        _broken_get_user(path="user"),
        "it requested exactly that URL",
    ),
    Bug(
        "wrong-id",
        "requests /users/<built-in function id> (the builtin `id` instead of user_id)",
        "a regex or a catch-all route answers any URL: assert the URL the code requested "
        "(`m.requests[('GET', URL(USER_URL))]`, or the path your fake server saw).",
        _broken_get_user(builtin_id=True),
        "it requested exactly that URL",
    ),
    Bug(
        "no-accept-header",
        "does not send the `Accept: application/json` header",
        "look at what the request carried: "
        "`m.requests[('GET', URL(url))][0].kwargs['headers']`, or "
        "`m.assert_called_once_with(url, headers={'Accept': 'application/json'})`.",
        _broken_get_user(accept=None),
        "the request carried the header `Accept: application/json`",
    ),
    Bug(
        "wrong-accept-header",
        "sends `Accept: */*` instead of `Accept: application/json`",
        "compare the header's value, not only its presence: "
        "`headers['Accept'] == 'application/json'`.",
        _broken_get_user(accept="*/*"),
        "the request carried the header `Accept: application/json`",
    ),
    Bug(
        "returns-text",
        "returns the body as a string instead of the decoded JSON",
        "compare the return value with the payload you registered: `assert user == payload`.",
        _broken_get_user(as_text=True),
        "the function returns the decoded JSON, equal to the payload",
    ),
    Bug(
        "sends-twice",
        "sends the request twice",
        "count the calls: `m.assert_called_once()`, or `len(m.requests[key]) == 1` "
        "(a response registered with `repeat=True` answers any number of calls).",
        _broken_get_user(sends_twice=True),
        "it requested exactly that URL, **once**",
    ),
]

ERROR_BUGS = [
    Bug(
        "ignores-status",
        "ignores a 404 (it returns the error body instead of raising)",
        "register `status=404` and expect the error: "
        "`with pytest.raises(aiohttp.ClientResponseError) as info:`.",
        _broken_get_user(raises_for_status=False),
        "the server answers 404: get_user must raise",
    ),
    Bug(
        "wrong-class-for-404",
        "raises LookupError for a 404 instead of aiohttp.ClientResponseError",
        "name the class the task asks for: "
        "`pytest.raises(aiohttp.ClientResponseError)`, not `pytest.raises(Exception)`.",
        _broken_get_user(not_found_as=LookupError),
        "`aiohttp.ClientResponseError`",
    ),
    Bug(
        "wrong-status",
        "raises ClientResponseError with status 500 for a 404 (every error reported as 500)",
        "check the status it carries: `with pytest.raises(aiohttp.ClientResponseError) as "
        "info:`, then `assert info.value.status == 404`.",
        _broken_get_user(status_as=500),
        "with `.status == 404`",
    ),
    Bug(
        "swallows-connection-errors",
        "returns None when the connection fails on every attempt",
        "register `exception=aiohttp.ClientConnectionError(...)` with `repeat=True` and "
        "expect it to be raised: `pytest.raises(aiohttp.ClientConnectionError)`.",
        _broken_get_user(swallow=(aiohttp.ClientConnectionError,)),
        "the connection fails, on every attempt: get_user must raise",
    ),
    Bug(
        "wrong-class-for-connection-error",
        "raises RuntimeError('API unreachable') when the connection fails, instead of "
        "aiohttp.ClientConnectionError",
        "name the class the task asks for: `pytest.raises(aiohttp.ClientConnectionError)`.",
        _broken_get_user(wrap=(aiohttp.ClientConnectionError, RuntimeError, "API unreachable")),
        "`aiohttp.ClientConnectionError`",
    ),
    Bug(
        "swallows-timeouts",
        "returns None when the request times out",
        "register `timeout=True` (aioresponses raises TimeoutError) and expect it: "
        "`pytest.raises(TimeoutError)`.",
        _broken_get_user(swallow=(TimeoutError,)),
        "the request times out: get_user must raise",
    ),
    Bug(
        "wrong-class-for-timeout",
        "raises aiohttp.ClientError('timed out') when the request times out, instead of "
        "TimeoutError",
        "name the class the task asks for: `pytest.raises(TimeoutError)`.",
        _broken_get_user(wrap=(TimeoutError, aiohttp.ClientError, "timed out")),
        "`TimeoutError`",
    ),
]

RETRY_BUGS = [
    Bug(
        "no-retry",
        "does not retry a 503",
        "register a 503 and then a 200 for the same URL: the function must return the "
        "200's payload, after 2 calls.",
        _broken_get_user(retry_statuses=lambda status: False),
        "a 503 then a 200: the 200's payload is returned",
    ),
    Bug(
        "retries-4xx",
        "retries a 404 as well (3 calls instead of 1)",
        "register a 404 with `repeat=True` and assert it was requested once: "
        "`len(m.requests[('GET', URL(url))]) == 1`.",
        _broken_get_user(retry_statuses=lambda status: status >= 400),
        "a 404 (registered with `repeat=True`): **1** call",
    ),
    Bug(
        "gives-up-silently",
        "returns None when every attempt got a 503, instead of raising",
        "expect `aiohttp.ClientResponseError` with status 503 once the attempts run out: "
        "`with pytest.raises(aiohttp.ClientResponseError) as info:`.",
        _broken_get_user(silent_give_up=True),
        "503 every time, with `attempts=3`: `ClientResponseError` with status 503",
    ),
    Bug(
        "too-many-attempts",
        "makes 4 calls when attempts=3 (an off-by-one)",
        "register a 503 with `repeat=True` and assert exactly `attempts` calls; or register "
        "exactly 3 and expect `ClientResponseError` 503, not any `ClientError`.",
        _broken_get_user(extra_attempts=1),
        "`ClientResponseError` with status 503, after exactly **3** calls",
    ),
    Bug(
        "keeps-going-after-success",
        "keeps requesting after the 200 until its attempts run out (3 calls for a 503 then "
        "a 200), ignoring what comes after",
        "count the calls of the 503-then-200 case: exactly 2 (`len(m.requests[key]) == 2`).",
        _keeps_going_after_success,
        "a 503 then a 200: ... after **2** calls",
    ),
]

# --- Broken versions of the users API ----------------------------------------------------


def _broken_app(
    *,
    unknown_ok: bool = False,
    unknown_plain: bool = False,
    validates_id: bool = True,
    bad_id_key: str = "error",
    wrapped: bool = False,
    created_status: int = 201,
    created_without_id: bool = False,
    validates_name: bool = True,
    no_name_plain: bool = False,
) -> Callable[[], web.Application]:
    async def read(request: web.Request) -> web.Response:
        raw = request.match_info["user_id"]
        if validates_id and not raw.lstrip("-").isdigit():
            raise web.HTTPBadRequest(
                text=json.dumps({bad_id_key: "user id must be an integer"}),
                content_type="application/json",
            )
        user_id = int(raw)  # without validation: ValueError, a 500
        user = request.app[USERS].get(user_id)
        if user is None and not unknown_ok:
            if unknown_plain:
                raise web.HTTPNotFound()  # aiohttp's own body: "404: Not Found", text/plain
            raise _json_error(web.HTTPNotFound, f"user {user_id} not found")
        return web.json_response({"user": user} if wrapped else user)

    async def create(request: web.Request) -> web.Response:
        if not validates_name:
            name = (await request.json())["name"]  # KeyError on {}: a 500
        else:
            try:
                data = await request.json()
            except ValueError:
                if no_name_plain:
                    raise web.HTTPBadRequest(text="the body must be JSON") from None
                raise _json_error(web.HTTPBadRequest, "the body must be JSON") from None
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str) or not name:
                if no_name_plain:
                    raise web.HTTPBadRequest(text="name is required")
                raise _json_error(web.HTTPBadRequest, "name must be a non-empty string")
        users = request.app[USERS]
        user = {"id": max(users, default=0) + 1, "name": name}
        users[user["id"]] = user
        body = {"name": name} if created_without_id else user
        return web.json_response(body, status=created_status)

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
        "`GET /users/999` (unknown) | 404",
        ("GET", 404),
    ),
    Bug(
        "no-id-validation",
        "answers 500 for `/users/abc` (the handler raised ValueError), instead of 400",
        "request `/users/abc` and assert `resp.status == 400`.",
        _broken_app(validates_id=False),
        "`GET /users/abc` (not a number) | 400",
        ("GET", 400),
    ),
    Bug(
        "wrong-shape",
        'answers `{"user": {"id": 1, "name": "Ada"}}` instead of `{"id": 1, "name": "Ada"}`',
        'compare the whole body: `assert await resp.json() == {"id": 1, "name": "Ada"}`.',
        _broken_app(wrapped=True),
        '`GET /users/1` | 200, `{"id": 1, "name": "Ada"}`',
        ("GET", 200),
    ),
    Bug(
        "created-200",
        "answers 200 to a successful POST /users, instead of 201 Created",
        "assert the status of the POST: `resp.status == 201`.",
        _broken_app(created_status=200),
        "`POST /users` with `{\"name\": \"Grace\"}` | 201",
        ("POST", 201),
    ),
    Bug(
        "no-name-validation",
        "answers 500 to a POST /users without a name (the handler raised KeyError), instead "
        "of 400",
        "POST `json={}` and assert `resp.status == 400`.",
        _broken_app(validates_name=False),
        "`POST /users` without a non-empty `name` | 400",
        ("POST", 400),
    ),
    Bug(
        "unknown-user-body",
        'answers 404 with aiohttp\'s plain-text "404: Not Found" for an unknown user, '
        'instead of `{"error": ...}`',
        "check the error row's body too: `assert \"error\" in await resp.json()`.",
        _broken_app(unknown_plain=True),
        "`GET /users/999` (unknown) | 404, `{\"error\": ...}`",
        ("GET", 404),
    ),
    Bug(
        "bad-id-body",
        'answers 400 with `{"message": ...}` for `/users/abc`, instead of `{"error": ...}`',
        "check the error row's body too: `assert \"error\" in await resp.json()`.",
        _broken_app(bad_id_key="message"),
        "`GET /users/abc` (not a number) | 400, `{\"error\": ...}`",
        ("GET", 400),
    ),
    Bug(
        "created-without-id",
        'answers a POST /users with `{"name": "Grace"}`, without the new id',
        'compare the whole body of the creation: `{"id": 2, "name": "Grace"}`.',
        _broken_app(created_without_id=True),
        "`POST /users` ... | 201, the new user: `{\"id\": 2, \"name\": \"Grace\"}`",
        ("POST", 201),
    ),
    Bug(
        "no-name-body",
        'answers 400 with the plain text "name is required" to a POST without a name, '
        'instead of `{"error": ...}`',
        "check the error row's body too: `assert \"error\" in await resp.json()`.",
        _broken_app(no_name_plain=True),
        "`POST /users` without a non-empty `name` | 400, `{\"error\": ...}`",
        ("POST", 400),
    ),
]

# --- The rules ---------------------------------------------------------------------------


def _bug_rules(bugs: list[Bug]) -> list[Rule]:
    return [
        Rule(
            bug.name,
            bug.assertion,
            f"the test must fail against a version that {bug.does}",
            bug.hint,
        )
        for bug in bugs
    ]


def _test_rules(argument: str, *, raising: bool = False, sleeps: bool = False) -> list[Rule]:
    rules = [
        Rule(
            "fails-on-correct-code",
            "a good test passes against correct code",
            "the test run against the correct code: the exception it raised and its line",
            "a test must pass against correct code: check what you expect.",
        ),
        Rule(
            "real-network",
            "fake the network: nothing may leave this machine",
            "requests to any host but this machine, blocked by the check",
            "a unit test must not depend on the outside world: wrap the calls in "
            "`with aioresponses() as m:` and register every URL, or serve a fake on "
            "127.0.0.1 (`TestServer`).",
        ),
        Rule(
            "test-hangs",
            "the test finishes",
            f"the test still running after {RUN_PATIENCE_SECONDS:g} s",
            "does it wait for something that never comes? With aioresponses nothing is slow.",
        ),
        Rule(
            "missing-await",
            "`await` every call of an `async def` function",
            "a coroutine the test created and never awaited",
            "put `await` before every call of an `async def` function: "
            "`await get_user(session, BASE, 42)`, `await resp.json()`.",
        ),
        Rule(
            "unclosed-session",
            "a session your test opens is closed",
            "sessions the test created and left open",
            "create it with `async with aiohttp.ClientSession() as session:` so it is closed "
            "even when an assertion fails.",
        ),
        Rule(
            "ignores-argument",
            f"the test receives the code under test as `{argument}`: test that",
            f"the calls made through `{argument}` while the test ran: none",
            f"use the `{argument}` your test receives: the check passes each broken version "
            "through it, so a test of another copy can catch nothing.",
        ),
        Rule(
            "asserts-nothing",
            "a good test fails against broken code",
            "the test passed against every broken version",
            "a test must fail when the code is wrong: assert what the code returns or raises, "
            "and what it requested.",
        ),
    ]
    if raising:
        rules.append(
            Rule(
                "passes-without-raise",
                "get_user must **raise**: the test fails when nothing is raised",
                "a call that raised against the correct code returned against a broken "
                "version, and the test passed",
                "expect the error with `with pytest.raises(...)`, which fails when nothing "
                "is raised; a `try`/`except` needs an `else: raise AssertionError(...)`.",
            )
        )
    if sleeps:
        rules.append(
            Rule(
                "test-sleeps",
                "Pass `delay=0` so the test does not sleep",
                "the asyncio.sleep delays get_user asked for while the test ran it",
                "pass `delay=0` to every call that retries: `await get_user(session, BASE, "
                "42, delay=0)`; the test then never waits.",
            )
        )
    return rules


RETURNS_THE_USER = Task(
    "test_returns_the_user", *_bug_rules(REQUEST_BUGS), *_test_rules("get_user")
)
ERRORS_ARE_RAISED = Task(
    "test_errors_are_raised", *_bug_rules(ERROR_BUGS), *_test_rules("get_user", raising=True)
)
RETRIES = Task(
    "test_retries", *_bug_rules(RETRY_BUGS), *_test_rules("get_user", raising=True, sleeps=True)
)
USER_API = Task("test_user_api", *_bug_rules(APP_BUGS), *_test_rules("client"))

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
    line = f": `{clip(frame.line.strip(), 80)}`" if frame.line else ""
    return f" at line {frame.lineno} of {frame.name}(){line}"


def _raised_by_own_line(exc: BaseException) -> bool:
    """True when the learner's line itself raised, not code it called (a bad call, a bad key)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and learner_frame(exc) == frames[-1]


def _library_assert(exc: BaseException) -> traceback.FrameSummary | None:
    """The library frame an AssertionError came from, when it was not the learner's `assert`."""
    if not isinstance(exc, AssertionError):
        return None
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or is_learner_file(frames[-1].filename) or learner_frame(exc) is None:
        return None
    return frames[-1]


def _describe(exc: BaseException) -> str:
    text = clip(str(exc).strip(), 160)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_NEVER_AWAITED = re.compile(r"coroutine '([\w.<>]+)' was never awaited")


@contextlib.contextmanager
def _never_awaited() -> Iterator[list[str]]:
    """Names of the coroutines the block created and dropped unawaited.

    Their "never awaited" warnings become evidence instead of stderr; other warnings are
    shown as usual (the check's Quiet collects them).
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


async def _run_once(
    task: str,
    learner: Any,
    argument: Any,
    spy: SessionSpy,
    guard_blocked: list[str],
    sleeps_of: Callable[[], list[observe.Sleep]] | None = None,
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
    kind: str  # "get_user" or "users API", in "a get_user that ..."
    argument: str
    unexpected_hint: str  # "{error}" is replaced by the class of the unexpected exception


CLIENT = Subject(
    "the correct get_user",
    "get_user",
    "get_user",
    "the correct code led to {error} where your test did not expect it: expect the class "
    "the code really raises, or fix the mock.",
)
APP = Subject(
    "the correct users API",
    "users API",
    "client",
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


def _failure(error: BaseException, subject: Subject) -> tuple[str, str]:
    """(what failed, the hint) for a test that failed against the correct code with ``error``."""
    library = _library_assert(error)
    if library is not None:
        package = "aioresponses" if "aioresponses" in library.filename else "aiohttp"
        message = (
            f"an `assert` inside {package} failed ({library.filename.rsplit('/', 1)[-1]}, "
            f"line {library.lineno}: `{clip(library.line or '', 50)}`), not one of yours,"
            f"{_where(error)}"
        )
        hint = (
            "a mocked response lacks something aiohttp relies on."
            + (
                " `raise_for_status()` needs a reason phrase: "
                "`CallbackResult(status=503, reason='Service Unavailable')` (`m.get(url, "
                "status=503)` fills it in)."
                if "reason" in (library.line or "")
                else " Build it with `m.get(url, status=..., payload=...)`."
            )
        )
        return message, hint
    message = f"{_where(error)}: {_describe(error)}"
    if _is_string_url_key(error):
        return message, (
            "`m.requests` is keyed by the method and a `yarl.URL`, not a string: "
            "`m.requests[('GET', URL(url))]`, with `from yarl import URL`."
        )
    if isinstance(error, AssertionError):
        return message, "a test must pass against correct code: check what you expect."
    if _raised_by_own_line(error):
        return message, (
            f"that line of your test raised {type(error).__name__} itself, not the code under "
            "test: check it (the arguments of the call, the names and keys it uses)."
        )
    if _no_answer_left(error):
        return message, (
            "aioresponses had no response left for that request: register the exact URL "
            "the code requests (each registered response answers once, unless you pass "
            "`repeat=True`)."
        )
    return message, subject.unexpected_hint.format(error=type(error).__name__)


def _judge_correct_run(table: Task, run: Run, subject: Subject, *, sleeps: bool) -> None:
    """Raise the Mistake a run against the correct code shows, if any."""
    if run.blocked:
        raise table.broken(
            "real-network",
            f"your test made a real request to {run.blocked[0]} (the check blocked it).",
        )
    if run.hung:
        raise table.broken(
            "test-hangs",
            f"your test did not finish within {RUN_PATIENCE_SECONDS:g} s against {subject.name}.",
        )
    if run.unawaited:
        where = _where(run.error) if run.error is not None else ""
        raise table.broken(
            "missing-await",
            f"your test called `{run.unawaited[0]}()` without `await`{where}: the call "
            "returned a coroutine object, not the result, and its code never ran.",
        )
    if run.error is not None:
        message, hint = _failure(run.error, subject)
        raise table.broken(
            "fails-on-correct-code", f"your test failed against {subject.name}{message}.", hint
        )
    if run.left_open:
        raise table.broken(
            "unclosed-session", f"your test left {plural(run.left_open, 'ClientSession')} open."
        )
    if subject is CLIENT and not run.calls:
        raise table.broken(
            "ignores-argument",
            "your test passed without calling the get_user it received (0 calls): it tested "
            "another copy.",
        )
    if subject is APP and not run.served:
        raise table.broken(
            "ignores-argument",
            "your test passed, but the users API behind the `client` it received got no "
            "request: it tested another server.",
        )
    if sleeps and run.slept:
        total = sum(sleep.delay for sleep in run.slept)
        where = f" ({run.slept[0].where})" if run.slept[0].where else ""
        raise table.broken(
            "test-sleeps",
            f"against the correct get_user your test let it sleep "
            f"{plural(len(run.slept), 'time')}, {total:.2g} s in all{where}: `delay` was "
            f"left at its default, {DEFAULT_DELAY:g} s.",
        )


def _changed_call(correct: Run, broken: Run) -> tuple[Call, Call] | None:
    """The first call whose outcome differs between the correct run and a broken one."""
    for right, wrong in zip(correct.calls, broken.calls, strict=False):
        if not right.same_as(wrong):
            return right, wrong
    return None


def _row_evidence(correct: Run, broken: Run, bug: Bug) -> str:
    """What the broken app answered to the request of ``bug``'s row, or that none was sent."""
    if bug.row is None:
        return ""
    method, status = bug.row
    indexes = [
        i for i, served in enumerate(correct.served) if (served.method, served.status) == bug.row
    ]
    if not indexes:
        return f" Your test sent no {method} that the correct app answers {status}."
    index = indexes[0]
    if index < len(broken.served):
        return (
            f" There, {broken.served[index].describe()} (the correct app: {status} "
            f"{clip(correct.served[index].body, 30)}), and your test went on."
        )
    return ""


def _call_evidence(correct: Run, broken: Run) -> str:
    change = _changed_call(correct, broken)
    if change is None:
        if correct.calls:
            return (
                " Its calls returned or raised what the correct one's did: only what it "
                "requested differs."
            )
        return ""
    right, wrong = change
    where = f" at {wrong.where}" if wrong.where else ""
    return (
        f" There, the call{where} {wrong.describe()} (the correct one "
        f"{right.describe()}), and your test went on."
    )


def _returned_instead_of_raising(correct: Run, broken: Run) -> tuple[Call, Call] | None:
    change = _changed_call(correct, broken)
    if change and change[0].outcome == _RAISED and change[1].outcome == _RETURNED:
        return change
    return None


async def _judge(
    table: Task,
    learner: Any,
    subject: Subject,
    bugs: list[Bug],
    run_with: Callable[[Any, Any], Awaitable[Run]],
    *,
    sleeps: bool = False,
) -> None:
    """Run against the correct code, then each bug; raise the Mistake for what was missed."""
    correct = await run_with(learner, subject)
    _judge_correct_run(table, correct, subject, sleeps=sleeps)
    missed: list[tuple[Bug, Run]] = []
    for bug in bugs:
        run = await run_with(learner, bug)
        if run.blocked:
            _judge_correct_run(table, run, subject, sleeps=False)
        if run.passed:
            missed.append((bug, run))
    if not missed:
        return
    kind = subject.kind
    if "passes-without-raise" in table.rules:
        for bug, run in missed:
            change = _returned_instead_of_raising(correct, run)
            if change is not None:
                right, wrong = change
                where = f"the call at {wrong.where}" if wrong.where else "a call"
                raise table.broken(
                    "passes-without-raise",
                    _fit(
                        f"your test passed against a {kind} that {bug.does}: {where} "
                        f"{wrong.describe()} where the correct one {right.describe()}, and "
                        "your test did not fail.",
                        _also(missed, bug),
                    ),
                )
    bug, run = missed[0]
    if len(missed) == len(bugs):
        raise table.broken(
            "asserts-nothing",
            _fit(
                f"your test passed against all {len(bugs)} broken versions as well as the "
                "correct one: it checks nothing that tells them apart.",
                f" Among them: one that {bug.does}; one that {missed[1][0].does}.",
            ),
        )
    evidence = _row_evidence(correct, run, bug) if bug.row else _call_evidence(correct, run)
    raise table.broken(
        bug.name,
        _fit(f"your test did not notice a {kind} that {bug.does}.{evidence}", _also(missed, bug)),
    )


# A verdict's message stays within this many characters; the least telling parts go first.
MESSAGE_BUDGET = 400


def _also(missed: list[tuple[Bug, Run]], first: Bug) -> str:
    others = [bug.does for bug, _ in missed if bug is not first]
    if not others:
        return ""
    return f" It also missed {plural(len(others), 'other bug')}: one that " + "; one that ".join(
        others
    ) + "."


def _fit(main: str, extra: str, limit: int = MESSAGE_BUDGET) -> str:
    """``main`` (clipped if it must be), then as much of ``extra`` as fits, ending in '…'."""
    main = clip(main, limit)
    room = limit - len(main) - 1
    if not extra or room < 40:
        return main
    return f"{main} {clip(extra, room)}"


def _sleeps_by(version: Callable[..., Any]) -> Callable[[observe.Sleep], None] | None:
    """A listener that keeps the sleeps asked for from inside ``version`` (get_user's code)."""
    code = getattr(version, "__code__", None)
    kept: list[observe.Sleep] = []

    def listen(sleep: observe.Sleep) -> None:
        if sleep.delay <= 0:
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code is code:
                kept.append(sleep)
                return
            frame = frame.f_back

    listen.kept = kept  # type: ignore[attr-defined]
    return listen


async def _judge_client_test(
    table: Task, learner: Any, spy: SessionSpy, bugs: list[Bug], *, sleeps: bool = False
) -> None:
    obs = observe.current()
    with _outside_requests_blocked() as blocked:

        async def run_with(learner: Any, what: Any) -> Run:
            version = get_user if what is CLIENT else what.version
            calls: list[Call] = []
            listener = _sleeps_by(version)
            obs.on_sleep.append(listener)
            try:
                run = await _run_once(table.name, learner, _traced(version, calls), spy, blocked)
            finally:
                obs.on_sleep.remove(listener)
            run.calls = calls
            run.slept = listener.kept  # type: ignore[attr-defined]
            return run

        await _judge(table, learner, CLIENT, bugs, run_with, sleeps=sleeps)


# --- Task 1: the request and the result --------------------------------------------------


@check(RETURNS_THE_USER, timeout=30)
async def test_returns_the_user(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch a wrong URL or header, text, and a double call."""
    await _judge_client_test(RETURNS_THE_USER, learner, spy, REQUEST_BUGS)
    return (
        f"passes against get_user and catches all {len(REQUEST_BUGS)} broken versions: a wrong "
        "path, a wrong id, a missing or wrong Accept header, text instead of JSON, a request "
        "sent twice."
    )


# --- Task 2: errors ------------------------------------------------------------------------


@check(ERRORS_ARE_RAISED, timeout=30)
async def test_errors_are_raised(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch each error swallowed, misclassed or mislabelled."""
    await _judge_client_test(ERRORS_ARE_RAISED, learner, spy, ERROR_BUGS)
    return (
        f"passes against get_user and catches all {len(ERROR_BUGS)} broken versions: a 404 "
        "ignored, raised as the wrong class or with the wrong status; a connection error or "
        "a timeout swallowed or raised as the wrong class."
    )


# --- Task 3: retries -----------------------------------------------------------------------


@check(RETRIES, timeout=30)
async def test_retries(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test must catch each retry bug, without letting get_user sleep."""
    await _judge_client_test(RETRIES, learner, spy, RETRY_BUGS, sleeps=True)
    return (
        f"passes against get_user without sleeping, and catches all {len(RETRY_BUGS)} broken "
        "versions: no retry, a retried 404, one attempt too many, going on after the 200, "
        "giving up without raising."
    )


# --- Task 4: the users API -----------------------------------------------------------------


def _recording(served: list[Served]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            served.append(Served(request.method, request.path, error.status, error.text or ""))
            raise
        except Exception:
            served.append(Served(request.method, request.path, 500, "(the handler raised)"))
            raise
        body = response.text if isinstance(response, web.Response) and response.body else ""
        served.append(Served(request.method, request.path, response.status, body or ""))
        return response

    return record


@check(USER_API, timeout=40)
async def test_user_api(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's test gets a TestClient around the correct app, then each broken app."""
    with _outside_requests_blocked() as blocked:

        async def run_with(learner: Any, what: Any) -> Run:
            app = make_app() if what is APP else what.version()
            served: list[Served] = []
            app.middlewares.append(_recording(served))
            with captured_server_errors():
                async with TestClient(TestServer(app)) as client:
                    run = await _run_once(USER_API.name, learner, client, spy, blocked)
            run.served = served
            return run

        await _judge(USER_API, learner, APP, APP_BUGS, run_with)
    return (
        f"passes against the users API and catches all {len(APP_BUGS)} broken versions: a "
        "wrong status or a wrong body for an unknown user, a bad id, a creation and a "
        "missing name, and a wrapped user."
    )
