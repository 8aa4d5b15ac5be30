"""Exercise 13's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.

The three tasks build on each other (task 2 adds a route to task 1's app, task 3 a health
check to task 2's), so every check judges the whole app and every task's table holds the
session rules. ``app_for(task, ...)`` builds an answer for any task from the same pieces, and
``for_each_task`` registers one mistake as a wrong answer to all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiohttp import web

from local_server.checks import app_state as check

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
CHECKS = {1: check.shared_session, 2: check.second_route, 3: check.fail_fast}


# --- the pieces of a correct answer --------------------------------------------------------------


def relay(path: str, session_of: Callable[[web.Request], aiohttp.ClientSession] | None = None):
    """A handler that answers the upstream's ``path`` through the app's session (full URL)."""

    async def handler(request: web.Request) -> web.Response:
        session = session_of(request) if session_of else request.app[SESSION]
        async with session.get(request.app[UPSTREAM] + path) as response:
            return web.json_response(await response.json())

    handler.__name__ = f"proxy_{path.strip('/')}"
    return handler


proxy_json, proxy_uuid = relay("/json"), relay("/uuid")


async def session_generator(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[SESSION] = session
        yield


async def session_generator_finally(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession()
    app[SESSION] = session
    try:
        yield
    finally:
        await session.close()


class SessionContext:
    """cleanup_ctx also takes a callable that returns an async context manager (3.14)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def __aenter__(self) -> None:
        self.app[SESSION] = aiohttp.ClientSession()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.app[SESSION].close()


@contextlib.asynccontextmanager
async def session_acm(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[SESSION] = session
        yield


async def health(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    yield


def app_for(
    task: int,
    upstream_url: str,
    *,
    ctx: Callable | None = session_generator,
    json_handler: Callable = proxy_json,
    uuid_handler: Callable = proxy_uuid,
    health_step: Callable | None = health,
    store_url: bool = True,
) -> web.Application:
    """Task ``task``'s app: the json route; the uuid route from task 2; the check in task 3."""
    app = web.Application()
    if store_url:
        app[UPSTREAM] = upstream_url
    if ctx is not None:
        app.cleanup_ctx.append(ctx)
    app.router.add_get("/proxy/json", json_handler)
    if task >= 2:
        app.router.add_get("/proxy/uuid", uuid_handler)
    if task >= 3 and health_step is not None:
        app.cleanup_ctx.append(health_step)
    return app


def factory(task: int, name: str, build: Callable[[int, str], web.Application]) -> Callable:
    def create_app(upstream_url: str) -> web.Application:
        return build(task, upstream_url)

    create_app.__name__ = create_app.__qualname__ = f"{name}_task{task}"
    return create_app


def for_each_task(
    name: str,
    mistake: str,
    problem: str,
    build: Callable[[int, str], web.Application],
    tasks: tuple[int, ...] = (1, 2, 3),
    codes: dict[int, str] | None = None,
) -> None:
    """Register ``build`` as a wrong answer to each task, expecting ``problem`` (or codes[task])."""
    for task in tasks:
        code = (codes or {}).get(task, problem)
        wrong(CHECKS[task], mistake, problem=code)(factory(task, name, build))


def correct_for_each_task(name: str, why: str, build: Callable[[int, str], web.Application]):
    for task in (1, 2, 3):
        correct(CHECKS[task], why)(factory(task, name, build))


# --- correct answers: each form of cleanup_ctx, each task ----------------------------------------

correct_for_each_task("generator", "async generator with async with", app_for)
correct_for_each_task(
    "generator_finally",
    "try/finally around the yield",
    lambda task, url: app_for(task, url, ctx=session_generator_finally),
)
correct_for_each_task(
    "context_manager_class",
    "a class with __aenter__/__aexit__ (3.14)",
    lambda task, url: app_for(task, url, ctx=SessionContext),
)
correct_for_each_task(
    "asynccontextmanager",
    "@contextlib.asynccontextmanager (3.14)",
    lambda task, url: app_for(task, url, ctx=session_acm),
)


async def base_url_ctx(app: web.Application) -> AsyncIterator[None]:
    """One context that opens a base_url session and checks the upstream before yielding."""
    async with aiohttp.ClientSession(app[UPSTREAM]) as session:
        async with session.get("/get") as response:
            response.raise_for_status()
        app[SESSION] = session
        yield


async def base_url_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get("/json") as response:
        return web.Response(body=await response.read(), content_type="application/json")


class UuidView(web.View):
    async def get(self) -> web.Response:
        async with self.request.config_dict[SESSION].get("/uuid") as response:
            return web.Response(text=await response.text(), content_type="application/json")


@correct(check.fail_fast, "one context opens a base_url session and checks; bytes passed through")
def base_url_app(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(base_url_ctx)
    app.router.add_get("/proxy/json", base_url_json)
    app.router.add_view("/proxy/uuid", UuidView)
    return app


@correct(check.second_route, "a base_url session, a web.View over config_dict for the uuid route")
def base_url_two_routes(upstream_url: str) -> web.Application:
    return base_url_app(upstream_url)


async def check_upstream_on_startup(app: web.Application) -> None:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        if not response.ok:
            raise RuntimeError(f"upstream answered {response.status}")


@correct(check.fail_fast, "the check as an on_startup callback (contexts start before it)")
def session_ctx_then_on_startup_check(upstream_url: str) -> web.Application:
    app = app_for(3, upstream_url, health_step=None)
    app.on_startup.append(check_upstream_on_startup)
    return app


@correct(check.fail_fast, "an async factory")
async def async_factory(upstream_url: str) -> web.Application:
    return app_for(3, upstream_url)


async def careful_on_startup(app: web.Application) -> None:
    """on_startup written carefully: if the health check fails, close what was opened."""
    session = aiohttp.ClientSession()
    try:
        async with session.get(app[UPSTREAM] + "/get") as response:
            response.raise_for_status()
    except BaseException:
        await session.close()
        raise
    app[SESSION] = session


async def close_session(app: web.Application) -> None:
    await app[SESSION].close()


@correct(check.fail_fast, "the seed's on_startup/on_cleanup, but closing the session on failure")
def careful_signals(upstream_url: str) -> web.Application:
    app = app_for(3, upstream_url, ctx=None, health_step=None)
    app.on_startup.append(careful_on_startup)
    app.on_cleanup.append(close_session)
    return app


async def status_class_check(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        if response.status // 100 != 2:
            raise web.HTTPServiceUnavailable(text=f"upstream answered {response.status}")
    yield


@correct(check.fail_fast, "status // 100 != 2, raising an HTTPException")
def status_class_app(upstream_url: str) -> web.Application:
    return app_for(3, upstream_url, health_step=status_class_check)


SHARED_SESSION_TOO: dict[str, aiohttp.ClientSession] = {}


async def session_in_app_and_global(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[SESSION] = session
        SHARED_SESSION_TOO["last"] = session  # kept for debugging; the handlers use the app's
        yield


@correct(check.shared_session, "also keeps the session in a global, but reads the app's")
def session_also_in_a_global(upstream_url: str) -> web.Application:
    return app_for(1, upstream_url, ctx=session_in_app_and_global)


# --- shape: what aiohttp cannot run --------------------------------------------------------------


def returns_none(task: int, upstream_url: str) -> None:
    app_for(task, upstream_url)
    return None


for_each_task("returns_none", "forgets `return app`", "not-an-application", returns_none)


def context_already_called(task: int, upstream_url: str) -> web.Application:
    app = app_for(task, upstream_url, ctx=None)
    app.cleanup_ctx.insert(0, session_generator(app))
    return app


for_each_task(
    "context_already_called",
    "appends session_generator(app), the generator object, to cleanup_ctx",
    "called-the-step",
    context_already_called,
)


async def session_without_yield(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession()


async def health_without_yield(app: web.Application) -> None:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()


for_each_task(
    "step_without_yield",
    "a cleanup_ctx step with no yield",
    "no-yield",
    lambda task, url: app_for(task, url, ctx=session_without_yield)
    if task < 3
    else app_for(task, url, health_step=health_without_yield),
)


def generator_in_on_startup(task: int, upstream_url: str) -> web.Application:
    app = app_for(task, upstream_url, ctx=None)
    app.on_startup.append(session_generator)
    return app


for_each_task(
    "generator_in_on_startup",
    "a cleanup_ctx generator appended to on_startup",
    "generator-in-signal",
    generator_in_on_startup,
)


# --- state: keys, the URL, the session's birthplace ----------------------------------------------


async def str_key_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app["session"] = session
        yield


async def str_key_health(app: web.Application) -> AsyncIterator[None]:
    async with app["session"].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    yield


str_key_session = {"session_of": lambda request: request.app["session"]}

for_each_task(
    "string_keys",
    "the seed's pattern: app['session'] with a str key",
    "string-keys",
    lambda task, url: app_for(
        task,
        url,
        ctx=str_key_ctx,
        json_handler=relay("/json", **str_key_session),
        uuid_handler=relay("/uuid", **str_key_session),
        health_step=str_key_health,
    ),
)


def string_keys_warning_silenced(upstream_url: str) -> web.Application:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return factory(1, "string_keys", lambda task, url: app_for(
            task, url, ctx=str_key_ctx, json_handler=relay("/json", **str_key_session)
        ))(upstream_url)


wrong(check.shared_session, "string keys, NotAppKeyWarning silenced", problem="string-keys")(
    string_keys_warning_silenced
)


def closure_ctx(upstream_url: str) -> Callable:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(base_url=upstream_url) as session:
            app[SESSION] = session
            yield

    return ctx


def relative(path: str) -> Callable:
    async def handler(request: web.Request) -> web.Response:
        async with request.app[SESSION].get(path) as response:
            return web.json_response(await response.json())

    return handler


async def relative_health(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get("/get") as response:
        response.raise_for_status()
    yield


for_each_task(
    "url_in_a_closure",
    "never stores the URL in the app: a closure keeps it",
    "url-not-in-app",
    lambda task, url: app_for(
        task,
        url,
        ctx=closure_ctx(url),
        json_handler=relative("/json"),
        uuid_handler=relative("/uuid"),
        health_step=relative_health,
        store_url=False,
    ),
)


def session_in_factory(task: int, upstream_url: str) -> web.Application:
    app = app_for(task, upstream_url, ctx=None)
    app[SESSION] = aiohttp.ClientSession()  # works here only because a loop already runs
    app.on_cleanup.append(close_session)
    return app


for_each_task(
    "session_in_factory", "creates the session in create_app", "session-in-factory",
    session_in_factory,
)

WRONG_KEY = web.AppKey("upstream_url", str)


async def reads_another_key(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(base_url=app[WRONG_KEY]) as session:
        app[SESSION] = session
        yield


for_each_task(
    "reads_another_key",
    "client_session reads a key create_app never set: KeyError at start-up",
    "start-up-failed",
    lambda task, url: app_for(task, url, ctx=reads_another_key),
    codes={3: "refuses-healthy-upstream"},
)


# --- handlers ------------------------------------------------------------------------------------


class ForeignSession:
    """A session made on another loop, as a module-level session in a notebook cell is."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        thread = threading.Thread(target=self._make)
        thread.start()
        thread.join()

    def _make(self) -> None:
        async def make() -> aiohttp.ClientSession:
            return aiohttp.ClientSession()

        self.session = self.loop.run_until_complete(make())

    def close(self) -> None:
        thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.session.close())
        )
        thread.start()
        thread.join()
        self.loop.close()


_FOREIGN: list[ForeignSession] = []


def foreign_session() -> aiohttp.ClientSession:
    if not _FOREIGN:
        _FOREIGN.append(ForeignSession())
    return _FOREIGN[0].session


@pytest.fixture(autouse=True, scope="module")
def _close_foreign_sessions():
    yield
    while _FOREIGN:
        _FOREIGN.pop().close()


def module_level_session(task: int, upstream_url: str) -> web.Application:
    session = foreign_session()
    return app_for(
        task,
        upstream_url,
        ctx=None,
        json_handler=relay("/json", lambda request: session),
        uuid_handler=relay("/uuid", lambda request: session),
        health_step=None,
    )


for_each_task(
    "module_level_session",
    "a session made at module level, on another loop",
    "session-from-elsewhere",
    module_level_session,
    tasks=(1, 2),
)


def module_level_session_checked(upstream_url: str) -> web.Application:
    app = module_level_session(3, upstream_url)
    app.cleanup_ctx.append(session_generator)  # the health check's own, correct session
    app.cleanup_ctx.append(health)
    return app


wrong(check.fail_fast, "handlers use a module-level session made on another loop",
      problem="session-from-elsewhere")(module_level_session_checked)


async def json_raises(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response((await response.json())["slideshow"])


for_each_task(
    "handler_raises",
    "the handler indexes a key the document lacks",
    "handler-raised",
    lambda task, url: app_for(task, url, json_handler=json_raises),
)


def json_route_at(task: int, upstream_url: str, path: str = "/json") -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(session_generator)
    app.router.add_get(path, proxy_json)
    if task >= 2:
        app.router.add_get("/proxy/uuid", proxy_uuid)
    if task >= 3:
        app.cleanup_ctx.append(health)
    return app


for_each_task(
    "route_at_wrong_path",
    "registers the route at /json instead of /proxy/json",
    "bad-status",
    json_route_at,
)


async def wrapped_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response({"data": await response.json()})


for_each_task(
    "wraps_the_body",
    'wraps the document: {"data": ...}',
    "wrong-body",
    lambda task, url: app_for(task, url, json_handler=wrapped_json),
)


async def latin1_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        text = (await response.read()).decode("latin-1")  # the wrong charset
        return web.json_response(json.loads(text))


wrong(check.shared_session, "decodes the upstream's UTF-8 body as Latin-1", problem="wrong-body")(
    factory(1, "latin1", lambda task, url: app_for(task, url, json_handler=latin1_json))
)


async def json_as_string(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.text())


wrong(check.shared_session, "json_response(await response.text()): a JSON string",
      problem="wrong-body")(
    factory(1, "json_as_string", lambda task, url: app_for(task, url, json_handler=json_as_string))
)

CONFIG: dict[str, str] = {}


def url_also_in_a_global(task: int, upstream_url: str) -> web.Application:
    CONFIG["upstream"] = upstream_url  # the second app overwrites it

    async def from_config(request: web.Request) -> web.Response:
        path = "/json" if request.path.endswith("json") else "/uuid"
        async with request.app[SESSION].get(CONFIG["upstream"] + path) as response:
            return web.json_response(await response.json())

    return app_for(task, upstream_url, json_handler=from_config, uuid_handler=from_config)


for_each_task(
    "url_in_a_global",
    "stores the URL in the app but the handlers read a module-level copy",
    "wrong-upstream",
    url_also_in_a_global,
)

_CURRENT: list[aiohttp.ClientSession] = []


async def session_in_global_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        _CURRENT[:] = [session]
        yield


async def global_health(app: web.Application) -> AsyncIterator[None]:
    async with _CURRENT[0].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    yield


for_each_task(
    "session_in_a_global",
    "the session is opened at start-up but kept in a module global, not in the app",
    "session-not-in-app",
    lambda task, url: app_for(
        task,
        url,
        ctx=session_in_global_ctx,
        json_handler=relay("/json", lambda request: _CURRENT[0]),
        uuid_handler=relay("/uuid", lambda request: _CURRENT[0]),
        health_step=global_health,
    ),
)


def session_in_a_closure(task: int, upstream_url: str) -> web.Application:
    """Per app, not shared between apps, but not in the app's state either."""
    holder: dict[str, aiohttp.ClientSession] = {}

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            holder["session"] = session
            yield

    async def held_health(app: web.Application) -> AsyncIterator[None]:
        async with holder["session"].get(app[UPSTREAM] + "/get") as response:
            response.raise_for_status()
        yield

    return app_for(
        task,
        upstream_url,
        ctx=ctx,
        json_handler=relay("/json", lambda request: holder["session"]),
        uuid_handler=relay("/uuid", lambda request: holder["session"]),
        health_step=held_health,
    )


for_each_task(
    "session_in_a_closure",
    "each app's session lives in a closure, not in the app's state",
    "session-not-in-app",
    session_in_a_closure,
)


# --- sessions: how many, when made, when closed --------------------------------------------------


async def per_request(request: web.Request) -> web.Response:
    path = "/json" if request.path.endswith("json") else "/uuid"
    async with aiohttp.ClientSession() as session:
        async with session.get(request.app[UPSTREAM] + path) as response:
            return web.json_response(await response.json())


for_each_task(
    "session_per_request",
    "a ClientSession per request in the handlers",
    "session-per-request",
    lambda task, url: app_for(task, url, json_handler=per_request, uuid_handler=per_request),
)

_LAZY: dict[str, aiohttp.ClientSession] = {}


def lazy_session(request: web.Request) -> aiohttp.ClientSession:
    key = request.app[UPSTREAM]
    if key not in _LAZY or _LAZY[key].closed:
        _LAZY[key] = aiohttp.ClientSession()
    return _LAZY[key]


for_each_task(
    "lazy_session",
    "a session made on first use, per upstream, never closed",
    "session-made-lazily",
    lambda task, url: app_for(
        task,
        url,
        json_handler=relay("/json", lazy_session),
        uuid_handler=relay("/uuid", lazy_session),
    ),
)


async def probe_with_own_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as probe:
        async with probe.get(app[UPSTREAM] + "/get") as response:
            response.raise_for_status()
    yield


async def two_sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session, aiohttp.ClientSession() as spare:
        app[SESSION] = session
        app[SPARE] = spare
        yield


SPARE = web.AppKey("spare", aiohttp.ClientSession)

for_each_task(
    "several_sessions",
    "opens two sessions at start-up (one spare)",
    "several-sessions",
    lambda task, url: app_for(task, url, ctx=two_sessions_ctx),
    tasks=(1, 3),
)
wrong(check.fail_fast, "the health check opens a session of its own", problem="several-sessions")(
    factory(3, "own_probe_session", lambda task, url: app_for(
        task, url, health_step=probe_with_own_session
    ))
)


async def three_sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as a, aiohttp.ClientSession() as b:
        async with aiohttp.ClientSession() as c:
            app[SESSION], app[SPARE], app[UUID_SESSION] = a, b, c
            yield


UUID_SESSION = web.AppKey("uuid_session", aiohttp.ClientSession)

wrong(check.second_route, "opens three sessions at start-up", problem="several-sessions")(
    factory(2, "three_sessions", lambda task, url: app_for(task, url, ctx=three_sessions_ctx))
)


def fetch_in_thread(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def urllib_relay(path: str) -> Callable:
    async def handler(request: web.Request) -> web.Response:
        status, body = await asyncio.to_thread(fetch_in_thread, request.app[UPSTREAM] + path)
        return web.Response(body=body, status=status, content_type="application/json")

    return handler


async def urllib_health(app: web.Application) -> AsyncIterator[None]:
    status, _ = await asyncio.to_thread(fetch_in_thread, app[UPSTREAM] + "/get")
    if status >= 400:
        raise RuntimeError(f"upstream answered {status}")
    yield


for_each_task(
    "no_session",
    "no ClientSession at all: urllib in a thread",
    "no-session-created",
    lambda task, url: app_for(
        task,
        url,
        ctx=None,
        json_handler=urllib_relay("/json"),
        uuid_handler=urllib_relay("/uuid"),
        health_step=urllib_health,
    ),
)


async def open_session(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession()


def closed_in_on_shutdown(task: int, upstream_url: str) -> web.Application:
    app = app_for(task, upstream_url, ctx=None, health_step=None)
    app.on_startup.append(open_session)
    app.on_shutdown.append(close_session)
    if task >= 3:
        app.on_startup.append(check_upstream_on_startup)
    return app


for_each_task(
    "closed_in_on_shutdown",
    "closes the session in on_shutdown, before in-flight requests end",
    "closed-at-shutdown",
    closed_in_on_shutdown,
)


async def never_closed(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession()
    yield


for_each_task(
    "never_closed",
    "the cleanup_ctx never closes the session",
    "session-left-open",
    lambda task, url: app_for(task, url, ctx=never_closed),
)


def with_signals(task: int, upstream_url: str) -> web.Application:
    """The seed's shape: open in on_startup, close in on_cleanup (and check in on_startup)."""
    app = app_for(task, upstream_url, ctx=None, health_step=None)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    if task >= 3:
        app.on_startup.append(check_upstream_on_startup)
    return app


for_each_task(
    "startup_cleanup_signals",
    "on_startup/on_cleanup: after a failed start-up on_cleanup never runs",
    "leak-after-failed-start",
    with_signals,
)


async def open_then_check_no_finally(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession()
    async with session.get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    app[SESSION] = session
    yield
    await session.close()


wrong(check.fail_fast, "checks inside the session's context, no try/finally: a 503 leaks it",
      problem="leak-after-failed-start")(
    factory(3, "check_inside_context", lambda task, url: app_for(
        task, url, ctx=open_then_check_no_finally, health_step=None
    ))
)


async def forced_close_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


for_each_task(
    "forced_close",
    "a connector with force_close=True: a new connection per request",
    "no-reuse",
    lambda task, url: app_for(task, url, ctx=forced_close_ctx),
)


async def unread_json(request: web.Request) -> web.Response:
    """No async with: text() reads the whole body, which releases the connection."""
    response = await request.app[SESSION].get(request.app[UPSTREAM] + "/json")
    return web.json_response(json.loads(await response.text()))


@correct(check.shared_session, "reads the body without async with: it is released once read")
def unreleased_but_read(upstream_url: str) -> web.Application:
    return app_for(1, upstream_url, json_handler=unread_json)


# --- kept from the earlier tests ---------------------------------------------------------------


def no_route(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(session_generator)
    return app


wrong(check.shared_session, "no route at all", problem="bad-status")(no_route)

_ONE_LAZY: dict[str, aiohttp.ClientSession] = {}


async def lazy_global_json(request: web.Request) -> web.Response:
    if "session" not in _ONE_LAZY or _ONE_LAZY["session"].closed:
        _ONE_LAZY["session"] = aiohttp.ClientSession()
    async with _ONE_LAZY["session"].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.json())


def lazy_global_session(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.router.add_get("/proxy/json", lazy_global_json)
    return app


wrong(check.shared_session, "one module-level session made on first use, never closed",
      problem="session-made-lazily")(lazy_global_session)


def uuid_per_request(upstream_url: str) -> web.Application:
    """Task 1's app is right; only the new handler opens a session per request."""
    return app_for(2, upstream_url, uuid_handler=per_request)


wrong(check.second_route, "proxy_uuid opens a session per request",
      problem="session-per-request")(uuid_per_request)


# --- task 2: the second route --------------------------------------------------------------------


async def uuid_own_session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[UUID_SESSION] = session
        yield


def uuid_own_session(upstream_url: str) -> web.Application:
    app = app_for(
        2, upstream_url, uuid_handler=relay("/uuid", lambda request: request.app[UUID_SESSION])
    )
    app.cleanup_ctx.append(uuid_own_session_ctx)
    return app


wrong(check.second_route, "a second app-owned session for the uuid route", problem="not-shared")(
    uuid_own_session
)


def uuid_cached(upstream_url: str) -> web.Application:
    first: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        if not first:
            async with request.app[SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
                first.append(await response.json())
        return web.json_response(first[0])

    return app_for(2, upstream_url, uuid_handler=handler)


wrong(check.second_route, "keeps the first UUID (per app) and answers it every time",
      problem="cached-answer")(uuid_cached)


async def uuid_renamed(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
        return web.json_response({"id": (await response.json())["uuid"]})


wrong(check.second_route, 'answers {"id": ...} instead of {"uuid": ...}', problem="wrong-body")(
    factory(2, "uuid_renamed", lambda task, url: app_for(task, url, uuid_handler=uuid_renamed))
)


async def uuid_made_up(request: web.Request) -> web.Response:
    import uuid

    return web.json_response({"uuid": str(uuid.uuid4())})


wrong(check.second_route, "makes up its own UUID instead of calling the upstream",
      problem="wrong-body")(
    factory(2, "uuid_made_up", lambda task, url: app_for(task, url, uuid_handler=uuid_made_up))
)


def uuid_missing(upstream_url: str) -> web.Application:
    return app_for(1, upstream_url)


wrong(check.second_route, "never adds the uuid route", problem="bad-status")(uuid_missing)


async def uuid_str_key(request: web.Request) -> web.Response:
    return web.json_response(request.app["session"])


wrong(check.second_route, "reads request.app['session'], a key nobody set",
      problem="handler-raised")(
    factory(2, "uuid_str_key", lambda task, url: app_for(task, url, uuid_handler=uuid_str_key))
)

# --- task 3: the health check --------------------------------------------------------------------


def check_before_session(upstream_url: str) -> web.Application:
    """The health check as a cleanup_ctx, the session in on_startup: the check runs first."""
    app = with_signals(2, upstream_url)
    app.cleanup_ctx.append(health)
    return app


wrong(check.fail_fast, "the check is a context, the session is opened in on_startup: KeyError",
      problem="refuses-healthy-upstream")(check_before_session)


async def only_200(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        if response.status != 200:
            raise RuntimeError(f"upstream answered {response.status}")
    yield


wrong(check.fail_fast, "treats only 200 as healthy: a 204 refuses to start",
      problem="refuses-healthy-upstream")(
    factory(3, "only_200", lambda task, url: app_for(task, url, health_step=only_200))
)


async def unchecked_status(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get"):
        pass  # no raise_for_status(): a 503 passes
    yield


async def only_5xx(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        if response.status >= 500:
            raise RuntimeError(f"upstream answered {response.status}")
    yield


async def only_503(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        if response.status == 503:
            raise RuntimeError("upstream is unavailable")
    yield


async def health_of_another_path(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/json") as response:
        response.raise_for_status()
    yield


for name, step, mistake in (
    ("ignores_status", unchecked_status, "requests /get but never looks at the status"),
    ("only_5xx", only_5xx, "raises only for a 5xx"),
    ("only_503", only_503, "raises only for a 503"),
    ("checks_json", health_of_another_path, "checks /json, not /get"),
):
    wrong(check.fail_fast, mistake, problem="starts-anyway")(
        factory(3, name, lambda task, url, step=step: app_for(task, url, health_step=step))
    )
wrong(check.fail_fast, "no health check at all", problem="starts-anyway")(
    factory(3, "no_check", lambda task, url: app_for(2, url))
)


async def poll_until_healthy(app: web.Application) -> AsyncIterator[None]:
    while True:
        try:
            async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
                if response.ok:
                    break
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.3)
    yield


wrong(check.fail_fast, "waits for the upstream to recover, polling forever",
      problem="waits-for-upstream")(
    factory(3, "polls", lambda task, url: app_for(task, url, health_step=poll_until_healthy))
)


async def retry_for_a_minute(app: web.Application) -> AsyncIterator[None]:
    for _ in range(60):
        async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
            if response.ok:
                break
        await asyncio.sleep(1)
    else:
        raise RuntimeError("upstream never came up")
    yield


wrong(check.fail_fast, "retries for a minute before giving up", problem="waits-for-upstream")(
    factory(3, "a_minute", lambda task, url: app_for(task, url, health_step=retry_for_a_minute))
)


async def closer(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SESSION].close()


def cleanup_of_what_never_opened(upstream_url: str) -> web.Application:
    """A cleanup context that closes app[SESSION], which a later step never set."""
    app = app_for(3, upstream_url, ctx=closer, health_step=None)
    app.on_startup.append(careful_on_startup)
    return app


wrong(check.fail_fast, "a clean-up step closes app[SESSION], which start-up never set",
      problem="cleanup-crashed")(cleanup_of_what_never_opened)


async def stub_handler(request: web.Request) -> web.Response:
    raise NotImplementedError("your code here")


async def stub_step(app: web.Application) -> AsyncIterator[None]:
    raise NotImplementedError("your code here")
    yield


async def stub_context_without_yield(app: web.Application) -> AsyncIterator[None]:
    """The exercise's stub as make_exercises leaves it: an async def with no yield."""
    raise NotImplementedError("your code here")


def create_app_stub(upstream_url: str) -> web.Application:
    raise NotImplementedError("your code here")


for task, fn in (
    (1, create_app_stub),
    (1, factory(1, "stub_context", lambda t, url: app_for(t, url, ctx=stub_context_without_yield))),
    (2, factory(2, "stub_route", lambda task, url: app_for(task, url, uuid_handler=stub_handler))),
    (3, factory(3, "stub_health", lambda task, url: app_for(task, url, health_step=stub_step))),
    (3, factory(3, "stub_health_no_yield", lambda task, url: app_for(
        task, url, health_step=stub_context_without_yield
    ))),
):
    wrong(CHECKS[task], "the exercise's stub", problem="not-implemented")(fn)


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.fail_fast.diagnose(factory(3, "only_5xx", lambda task, url: app_for(
        task, url, health_step=only_5xx
    )))
    assert first == check.fail_fast.diagnose(factory(3, "only_5xx", lambda task, url: app_for(
        task, url, health_step=only_5xx
    )))


def test_a_4xx_that_starts_the_app_gets_the_4xx_hint():
    verdict = check.fail_fast.diagnose(factory(3, "only_5xx", lambda task, url: app_for(
        task, url, health_step=only_5xx
    )))
    assert "404" in verdict.message and "401" in verdict.message, verdict.render()
    assert "a 4xx is an error status too" in verdict.hint, verdict.render()


def test_on_cleanup_is_named_when_a_failed_start_leaks():
    for task in (1, 3):
        verdict = CHECKS[task].diagnose(factory(task, "signals", with_signals))
        assert verdict.problem == "leak-after-failed-start"
        assert "on_cleanup" in verdict.message, verdict.render()


def test_a_json_string_is_shown_as_a_string():
    verdict = check.shared_session.diagnose(
        factory(1, "json_as_string", lambda t, url: app_for(t, url, json_handler=json_as_string))
    )
    assert "a JSON string (str" in verdict.message, verdict.render()


def test_a_health_check_in_the_wrong_order_explains_the_order():
    verdict = check.fail_fast.diagnose(check_before_session)
    assert "of health()" in verdict.message, verdict.render()
    assert "before every on_startup" in verdict.hint, verdict.render()


def test_waiting_for_the_upstream_quotes_the_sleep():
    verdict = check.fail_fast.diagnose(
        factory(3, "polls", lambda task, url: app_for(task, url, health_step=poll_until_healthy))
    )
    assert "GET /get requests" in verdict.message, verdict.render()
    assert "await asyncio.sleep(0.3)" in verdict.message, verdict.render()


def test_a_written_create_app_around_the_stub_context_leaves_no_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verdict = check.shared_session.diagnose(
            factory(1, "stub_context", lambda task, url: app_for(
                task, url, ctx=stub_context_without_yield
            ))
        )
        gc.collect()
    assert verdict.problem == "not-implemented"
    assert not [w for w in caught if "never awaited" in str(w.message)]
