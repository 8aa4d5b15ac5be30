"""Exercise 13's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from local_server.checks import app_state as check

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def proxy_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.json())


async def proxy_uuid(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
        return web.json_response(await response.json())


async def health(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    yield


# --- ways to own the session: each a factory for create_app -----------------------------------


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


def with_ctx(ctx: Callable, *, uuid_route: bool = False, checked: bool = False) -> Callable:
    def create_app(upstream_url: str) -> web.Application:
        app = web.Application()
        app[UPSTREAM] = upstream_url
        app.cleanup_ctx.append(ctx)
        if checked:
            app.cleanup_ctx.append(health)
        app.router.add_get("/proxy/json", proxy_json)
        if uuid_route:
            app.router.add_get("/proxy/uuid", proxy_uuid)
        return app

    return create_app


async def open_session(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession()


async def close_session(app: web.Application) -> None:
    await app[SESSION].close()


async def open_and_check(app: web.Application) -> None:
    """on_startup written carefully: if the health check fails, close what was opened."""
    session = aiohttp.ClientSession()
    try:
        async with session.get(app[UPSTREAM] + "/get") as response:
            response.raise_for_status()
    except BaseException:
        await session.close()
        raise
    app[SESSION] = session


def with_signals(*, uuid_route: bool = False, checked: bool = False) -> Callable:
    def create_app(upstream_url: str) -> web.Application:
        app = web.Application()
        app[UPSTREAM] = upstream_url
        app.on_startup.append(open_and_check if checked else open_session)
        app.on_cleanup.append(close_session)
        app.router.add_get("/proxy/json", proxy_json)
        if uuid_route:
            app.router.add_get("/proxy/uuid", proxy_uuid)
        return app

    return create_app


async def base_url_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(app[UPSTREAM]) as session:
        async with session.get("/get") as response:
            response.raise_for_status()
        app[SESSION] = session
        yield


async def base_url_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get("/json") as response:
        return web.json_response(await response.json())


async def base_url_uuid(request: web.Request) -> web.Response:
    async with request.app[SESSION].get("/uuid") as response:
        return web.json_response(await response.json())


def base_url_app(upstream_url: str) -> web.Application:
    """One context that opens the session and checks the upstream; a base_url session."""
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(base_url_ctx)
    app.add_routes([web.get("/proxy/json", base_url_json), web.get("/proxy/uuid", base_url_uuid)])
    return app


CORRECT = {
    "generator": session_generator,
    "generator-finally": session_generator_finally,
    "context-manager-class": SessionContext,
    "asynccontextmanager": session_acm,
}


@pytest.mark.parametrize("ctx", CORRECT.values(), ids=CORRECT.keys())
def test_shared_session_accepts_each_cleanup_ctx_form(ctx):
    verdict = check.shared_session.diagnose(with_ctx(ctx))
    assert verdict.passed, verdict.render()


def test_shared_session_accepts_on_startup_and_on_cleanup():
    verdict = check.shared_session.diagnose(with_signals())
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize("ctx", CORRECT.values(), ids=CORRECT.keys())
def test_second_route_accepts_each_cleanup_ctx_form(ctx):
    verdict = check.second_route.diagnose(with_ctx(ctx, uuid_route=True))
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    "create_app",
    [with_signals(uuid_route=True), base_url_app],
    ids=["signals", "base-url"],
)
def test_second_route_accepts_other_shapes(create_app):
    verdict = check.second_route.diagnose(create_app)
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    "create_app",
    [
        *(with_ctx(ctx, uuid_route=True, checked=True) for ctx in CORRECT.values()),
        with_signals(uuid_route=True, checked=True),
        base_url_app,
    ],
    ids=[*CORRECT.keys(), "careful-on-startup", "one-context"],
)
def test_fail_fast_accepts_correct_alternatives(create_app):
    verdict = check.fail_fast.diagnose(create_app)
    assert verdict.passed, verdict.render()


# --- task 1 mistakes ------------------------------------------------------------------------


async def str_key_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app["session"] = session
        yield


async def str_key_json(request: web.Request) -> web.Response:
    async with request.app["session"].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.json())


def string_keys(upstream_url: str) -> web.Application:
    """The seed's pattern: app['session'] with a str key."""
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(str_key_ctx)
    app.router.add_get("/proxy/json", str_key_json)
    return app


def string_keys_warning_silenced(upstream_url: str) -> web.Application:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return string_keys(upstream_url)


async def per_request_json(request: web.Request) -> web.Response:
    async with aiohttp.ClientSession() as session:
        async with session.get(request.app[UPSTREAM] + "/json") as response:
            return web.json_response(await response.json())


def session_per_request(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.router.add_get("/proxy/json", per_request_json)
    return app


async def never_closed(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession()
    yield


def session_in_factory(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app[SESSION] = aiohttp.ClientSession()  # works only because a loop already runs
    app.on_cleanup.append(close_session)
    app.router.add_get("/proxy/json", proxy_json)
    return app


_LAZY: dict[str, aiohttp.ClientSession] = {}


async def lazy_global_json(request: web.Request) -> web.Response:
    if "session" not in _LAZY:
        _LAZY["session"] = aiohttp.ClientSession()
    async with _LAZY["session"].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.json())


def lazy_global_session(upstream_url: str) -> web.Application:
    _LAZY.clear()
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.router.add_get("/proxy/json", lazy_global_json)
    return app


_GLOBAL: dict[str, aiohttp.ClientSession] = {}


async def global_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        _GLOBAL["session"] = session
        yield


async def global_json(request: web.Request) -> web.Response:
    async with _GLOBAL["session"].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response(await response.json())


def session_in_a_global(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(global_ctx)
    app.router.add_get("/proxy/json", global_json)
    return app


async def wrapped_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get(request.app[UPSTREAM] + "/json") as response:
        return web.json_response({"data": await response.json()})


def wraps_the_body(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(session_generator)
    app.router.add_get("/proxy/json", wrapped_json)
    return app


def no_route(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(session_generator)
    return app


def returns_none(upstream_url: str) -> None:
    return None


async def forced_close_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


class ForeignSession:
    """A session made on another loop, as a module-level session in a notebook cell is."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._make())

    @staticmethod
    async def _make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


@pytest.fixture
def foreign_session():
    foreign = ForeignSession()
    yield foreign.session
    foreign.close()


def module_level_app(session: aiohttp.ClientSession, *, uuid_only: bool = False) -> Callable:
    async def json_handler(request: web.Request) -> web.Response:
        async with session.get(request.app[UPSTREAM] + "/json") as response:
            return web.json_response(await response.json())

    async def uuid_handler(request: web.Request) -> web.Response:
        async with session.get(request.app[UPSTREAM] + "/uuid") as response:
            return web.json_response(await response.json())

    def create_app(upstream_url: str) -> web.Application:
        app = web.Application()
        app[UPSTREAM] = upstream_url
        app.cleanup_ctx.append(session_generator)
        app.router.add_get("/proxy/json", proxy_json if uuid_only else json_handler)
        app.router.add_get("/proxy/uuid", uuid_handler)
        return app

    return create_app


@pytest.mark.parametrize(
    ("create_app", "problem"),
    [
        (string_keys, "string-keys"),
        (string_keys_warning_silenced, "string-keys"),
        (session_per_request, "session-per-request"),
        (with_ctx(never_closed), "session-left-open"),
        (session_in_factory, "session-in-factory"),
        (lazy_global_session, "session-left-open"),
        (session_in_a_global, "session-not-in-app"),
        (wraps_the_body, "wrong-body"),
        (no_route, "bad-status"),
        (returns_none, "not-an-application"),
        (with_ctx(forced_close_ctx), "no-reuse"),
    ],
)
def test_shared_session_diagnoses_each_mistake(create_app, problem):
    verdict = check.shared_session.diagnose(create_app)
    assert verdict.problem == problem, verdict.render()


def test_shared_session_diagnoses_a_session_made_on_another_loop(foreign_session):
    verdict = check.shared_session.diagnose(module_level_app(foreign_session))
    assert verdict.problem == "session-from-elsewhere", verdict.render()


def test_shared_session_reports_a_stub_as_not_implemented():
    def create_app(upstream_url: str) -> web.Application:
        raise NotImplementedError("your code here")

    assert check.shared_session.diagnose(create_app).problem == "not-implemented"


# --- task 2 mistakes ------------------------------------------------------------------------


def uuid_per_request(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)

    async def handler(request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            async with session.get(request.app[UPSTREAM] + "/uuid") as response:
                return web.json_response(await response.json())

    app.router.add_get("/proxy/uuid", handler)
    return app


UUID_SESSION = web.AppKey("uuid_session", aiohttp.ClientSession)


async def uuid_session_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[UUID_SESSION] = session
        yield


def uuid_own_session(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)
    app.cleanup_ctx.append(uuid_session_ctx)

    async def handler(request: web.Request) -> web.Response:
        async with request.app[UUID_SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
            return web.json_response(await response.json())

    app.router.add_get("/proxy/uuid", handler)
    return app


def uuid_cached(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)
    first: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        if not first:
            async with request.app[SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
                first.append(await response.json())
        return web.json_response(first[0])

    app.router.add_get("/proxy/uuid", handler)
    return app


def uuid_wrong_shape(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)

    async def handler(request: web.Request) -> web.Response:
        async with request.app[SESSION].get(request.app[UPSTREAM] + "/uuid") as response:
            return web.json_response({"id": (await response.json())["uuid"]})

    app.router.add_get("/proxy/uuid", handler)
    return app


def uuid_missing(upstream_url: str) -> web.Application:
    return with_ctx(session_generator)(upstream_url)


def uuid_raises(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(request.app["session"])

    app.router.add_get("/proxy/uuid", handler)
    return app


@pytest.mark.parametrize(
    ("create_app", "problem"),
    [
        (uuid_per_request, "session-per-request"),
        (uuid_own_session, "not-shared"),
        (uuid_cached, "cached-answer"),
        (uuid_wrong_shape, "wrong-body"),
        (uuid_missing, "bad-status"),
        (uuid_raises, "handler-raised"),
    ],
)
def test_second_route_diagnoses_each_mistake(create_app, problem):
    verdict = check.second_route.diagnose(create_app)
    assert verdict.problem == problem, verdict.render()


def test_second_route_diagnoses_a_module_level_session(foreign_session):
    verdict = check.second_route.diagnose(module_level_app(foreign_session, uuid_only=True))
    assert verdict.problem == "session-from-elsewhere", verdict.render()


# --- task 3 mistakes ------------------------------------------------------------------------


async def check_upstream(app: web.Application) -> None:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()


def signals_then_check(upstream_url: str) -> web.Application:
    """The seed's shape: open in on_startup, check in on_startup, close in on_cleanup."""
    app = with_signals(uuid_route=True)(upstream_url)
    app.on_startup.append(check_upstream)
    return app


def check_before_session(upstream_url: str) -> web.Application:
    """The health check as a cleanup_ctx, the session in on_startup: the check runs first."""
    app = with_signals(uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(health)
    return app


async def unchecked_status(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get(app[UPSTREAM] + "/get"):
        pass  # no raise_for_status(): a 503 passes
    yield


def ignores_status(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(unchecked_status)
    return app


def no_check(upstream_url: str) -> web.Application:
    return with_ctx(session_generator, uuid_route=True)(upstream_url)


async def open_then_check_no_finally(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession()
    async with session.get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()
    app[SESSION] = session
    yield
    await session.close()


def leaks_in_context(upstream_url: str) -> web.Application:
    app = with_ctx(open_then_check_no_finally, uuid_route=True)(upstream_url)
    return app


async def closer(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[SESSION].close()


def cleanup_of_what_never_opened(upstream_url: str) -> web.Application:
    """A cleanup context that closes app[SESSION], which a later step never set."""
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(closer)
    app.on_startup.append(open_and_check)
    app.add_routes([web.get("/proxy/json", proxy_json), web.get("/proxy/uuid", proxy_uuid)])
    return app


@pytest.mark.parametrize(
    ("create_app", "problem"),
    [
        (signals_then_check, "leak-after-failed-start"),
        (leaks_in_context, "leak-after-failed-start"),
        (check_before_session, "refuses-healthy-upstream"),
        (ignores_status, "starts-anyway"),
        (no_check, "starts-anyway"),
        (cleanup_of_what_never_opened, "cleanup-crashed"),
        (string_keys, "string-keys"),
    ],
)
def test_fail_fast_diagnoses_each_mistake(create_app, problem):
    verdict = check.fail_fast.diagnose(create_app)
    assert verdict.problem == problem, verdict.render()


def test_leak_after_failed_start_explains_on_cleanup_when_it_was_used():
    verdict = check.fail_fast.diagnose(signals_then_check)
    assert "no on_cleanup callback" in verdict.hint, verdict.render()


async def probe_with_own_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as probe:
        async with probe.get(app[UPSTREAM] + "/get") as response:
            response.raise_for_status()
    yield


def health_check_with_its_own_session(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(probe_with_own_session)
    return app


def test_fail_fast_diagnoses_a_second_session_for_the_health_check():
    verdict = check.fail_fast.diagnose(health_check_with_its_own_session)
    assert verdict.problem == "several-sessions", verdict.render()


async def stub_handler(request: web.Request) -> web.Response:
    raise NotImplementedError("your code here")


async def stub_step(app: web.Application) -> AsyncIterator[None]:
    raise NotImplementedError("your code here")
    yield


def stub_route(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator)(upstream_url)
    app.router.add_get("/proxy/uuid", stub_handler)
    return app


def stub_health(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(stub_step)
    return app


def test_a_stub_handler_or_start_up_step_is_not_implemented_yet():
    assert check.second_route.diagnose(stub_route).problem == "not-implemented"
    assert check.fail_fast.diagnose(stub_health).problem == "not-implemented"


# --- the exercise's own stubs, and hooks aiohttp cannot run ---------------------------------


async def stub_context_without_yield(app: web.Application) -> AsyncIterator[None]:
    """The exercise's stub as make_exercises leaves it: an async def with no yield."""
    raise NotImplementedError("your code here")


def create_app_around_a_stub_context(upstream_url: str) -> web.Application:
    return with_ctx(stub_context_without_yield)(upstream_url)


def stub_check_upstream_without_yield(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(stub_context_without_yield)
    return app


def test_a_written_create_app_around_the_stub_context_is_not_implemented_yet():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verdicts = [
            check.shared_session.diagnose(create_app_around_a_stub_context),
            check.fail_fast.diagnose(stub_check_upstream_without_yield),
        ]
        gc.collect()
    assert [verdict.problem for verdict in verdicts] == ["not-implemented"] * 2
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def health_without_yield(app: web.Application) -> None:
    async with app[SESSION].get(app[UPSTREAM] + "/get") as response:
        response.raise_for_status()


def health_check_without_yield(upstream_url: str) -> web.Application:
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.cleanup_ctx.append(health_without_yield)
    return app


def generator_in_on_startup(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.on_startup.append(session_generator)
    app.router.add_get("/proxy/json", proxy_json)
    return app


def context_already_called(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.cleanup_ctx.append(session_generator(app))
    app.router.add_get("/proxy/json", proxy_json)
    return app


def closed_in_on_shutdown(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.on_startup.append(open_session)
    app.on_shutdown.append(close_session)
    app.router.add_get("/proxy/json", proxy_json)
    return app


@pytest.mark.parametrize(
    ("task", "create_app", "problem"),
    [
        ("fail_fast", health_check_without_yield, "no-yield"),
        ("shared_session", generator_in_on_startup, "generator-in-signal"),
        ("shared_session", context_already_called, "called-the-step"),
        ("shared_session", closed_in_on_shutdown, "closed-at-shutdown"),
    ],
)
def test_hooks_aiohttp_cannot_run_or_run_too_early_are_named(task, create_app, problem):
    verdict = getattr(check, task).diagnose(create_app)
    assert verdict.problem == problem, verdict.render()


def test_refuses_healthy_upstream_points_at_the_learners_line():
    verdict = check.fail_fast.diagnose(check_before_session)
    assert "of health()" in verdict.message, verdict.render()


def session_ctx_then_on_startup_check(upstream_url: str) -> web.Application:
    """Contexts start before on_startup callbacks, so the check finds the session."""
    app = with_ctx(session_generator, uuid_route=True)(upstream_url)
    app.on_startup.append(check_upstream)
    return app


async def async_factory(upstream_url: str) -> web.Application:
    return with_ctx(session_generator, uuid_route=True, checked=True)(upstream_url)


@pytest.mark.parametrize("create_app", [session_ctx_then_on_startup_check, async_factory])
def test_fail_fast_accepts_unusual_correct_answers(create_app):
    verdict = check.fail_fast.diagnose(create_app)
    assert verdict.passed, verdict.render()
