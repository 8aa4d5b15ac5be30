"""Learner answers to exercise 13 (app state and lifecycle), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from adversarial import correct, wrong
from local_server.checks import app_state as check

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_URL = web.AppKey("upstream_url", str)


# --- shared, correct pieces ------------------------------------------------------------------


async def client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(base_url=app[UPSTREAM_URL]) as session:
        app[SESSION] = session
        yield


async def proxy_json(request: web.Request) -> web.Response:
    async with request.app[SESSION].get("/json") as response:
        return web.json_response(await response.json())


async def proxy_uuid(request: web.Request) -> web.Response:
    async with request.app[SESSION].get("/uuid") as response:
        return web.json_response(await response.json())


def create_app(upstream_url: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/proxy/json", proxy_json)
    return app


def create_app_two_routes(upstream_url: str) -> web.Application:
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", proxy_uuid)
    return app


async def check_upstream(app: web.Application) -> AsyncIterator[None]:
    async with app[SESSION].get("/get") as response:
        response.raise_for_status()
    yield


def create_checked_app(upstream_url: str) -> web.Application:
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(check_upstream)
    return app


def _app(upstream_url, ctx=client_session, handler=proxy_json) -> web.Application:
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.cleanup_ctx.append(ctx)
    app.router.add_get("/proxy/json", handler)
    return app


# --- Task 1 · shared_session -----------------------------------------------------------------


@correct(check.shared_session, "async with ClientSession(base_url=...) around the yield")
def shared_session_async_with(upstream_url):
    return create_app(upstream_url)


async def _session_try_finally(app):
    session = aiohttp.ClientSession(base_url=app[UPSTREAM_URL])
    app[SESSION] = session
    try:
        yield
    finally:
        await session.close()


async def _proxy_raw_bytes(request):
    async with request.app[SESSION].get("/json") as response:
        body = await response.read()
        return web.Response(body=body, status=response.status, content_type="application/json")


@correct(check.shared_session, "try/finally close; passes the upstream's bytes through unchanged")
def shared_session_try_finally(upstream_url):
    return _app(upstream_url, ctx=_session_try_finally, handler=_proxy_raw_bytes)


@contextlib.asynccontextmanager
async def _session_cm(app):
    async with aiohttp.ClientSession(base_url=app[UPSTREAM_URL]) as session:
        app[SESSION] = session
        yield


@correct(check.shared_session, "cleanup_ctx as an @asynccontextmanager (aiohttp 3.14)")
def shared_session_asynccontextmanager(upstream_url):
    return _app(upstream_url, ctx=_session_cm)


class _SessionContext:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def __aenter__(self) -> None:
        self.session = aiohttp.ClientSession(base_url=self.app[UPSTREAM_URL])
        self.app[SESSION] = self.session

    async def __aexit__(self, *exc_info: object) -> None:
        await self.session.close()


routes = web.RouteTableDef()


@routes.get("/proxy/json")
async def _rt_proxy_json(request):
    session = request.config_dict[SESSION]
    async with session.get("/json") as response:
        response.raise_for_status()
        return web.json_response(await response.json())


@correct(check.shared_session, "a class with __aenter__/__aexit__, RouteTableDef, config_dict")
def shared_session_class_context(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.cleanup_ctx.append(_SessionContext)
    app.add_routes(routes)
    return app


async def _proxy_session_per_request(request):
    async with aiohttp.ClientSession(base_url=request.app[UPSTREAM_URL]) as session:
        async with session.get("/json") as response:
            return web.json_response(await response.json())


@wrong(check.shared_session, "opens a ClientSession in the handler, per request",
       rule="one `ClientSession` owned by the application ... never one of its own",
       problem="session-per-request")
def shared_session_per_request(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.router.add_get("/proxy/json", _proxy_session_per_request)
    return app


@wrong(check.shared_session, "creates the session in create_app, closes it at clean-up",
       rule="The session is created **at start-up** ..., not in `create_app`",
       problem="session-in-factory")
def shared_session_made_in_factory(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app[SESSION] = aiohttp.ClientSession(base_url=upstream_url)

    async def close(app):
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(close)
    app.router.add_get("/proxy/json", proxy_json)
    return app


_lazy: dict[str, aiohttp.ClientSession] = {}


async def _proxy_module_session(request):
    if "session" not in _lazy or _lazy["session"].closed:
        _lazy["session"] = aiohttp.ClientSession()
    async with _lazy["session"].get(request.app[UPSTREAM_URL] + "/json") as response:
        return web.json_response(await response.json())


@wrong(check.shared_session, "a module-level session made on first use, never closed",
       rule="not at module level, and it is **closed at clean-up**",
       problem="session-made-lazily")
def shared_session_module_level(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.router.add_get("/proxy/json", _proxy_module_session)
    return app


async def _session_never_closed(app):
    app[SESSION] = aiohttp.ClientSession(base_url=app[UPSTREAM_URL])
    yield


@wrong(check.shared_session, "the cleanup_ctx opens the session and never closes it",
       rule="it is **closed at clean-up**",
       problem="session-left-open")
def shared_session_never_closed(upstream_url):
    return _app(upstream_url, ctx=_session_never_closed)


async def _open_on_startup(app):
    app[SESSION] = aiohttp.ClientSession(base_url=app[UPSTREAM_URL])


async def _close_on_shutdown(app):
    await app[SESSION].close()


@wrong(check.shared_session, "closes the session in on_shutdown, before in-flight requests end",
       rule="it is **closed at clean-up**",
       problem="closed-at-shutdown")
def shared_session_closed_on_shutdown(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.on_startup.append(_open_on_startup)
    app.on_shutdown.append(_close_on_shutdown)
    app.router.add_get("/proxy/json", proxy_json)
    return app


async def _close_on_cleanup(app):
    await app[SESSION].close()


@wrong(check.shared_session, "on_startup + on_cleanup instead of a cleanup_ctx",
       rule="write `client_session` as a `cleanup_ctx`",
       problem="leak-after-failed-start")
def shared_session_startup_cleanup_hooks(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.on_startup.append(_open_on_startup)
    app.on_cleanup.append(_close_on_cleanup)
    app.router.add_get("/proxy/json", proxy_json)
    return app


async def _session_string_key(app):
    async with aiohttp.ClientSession(base_url=app["upstream_url"]) as session:
        app["session"] = session
        yield


async def _proxy_string_key(request):
    async with request.app["session"].get("/json") as response:
        return web.json_response(await response.json())


@wrong(check.shared_session, "string keys app['session'] / app['upstream_url']",
       rule="The application's state keys: use them, and no string keys.",
       problem="string-keys")
def shared_session_string_keys(upstream_url):
    app = web.Application()
    app["upstream_url"] = upstream_url
    app.cleanup_ctx.append(_session_string_key)
    app.router.add_get("/proxy/json", _proxy_string_key)
    return app


async def _session_without_base_url(app):
    async with aiohttp.ClientSession() as session:
        app[SESSION] = session
        yield


async def _proxy_full_url(request):
    url = request.app[UPSTREAM_URL] + "/json"
    async with request.app[SESSION].get(url) as response:
        return web.json_response(await response.json())


@correct(check.shared_session, "no base_url=: the handler builds the full URL from UPSTREAM_URL "
         "(re-categorised: the upstream receives the same requests either way, so the "
         "reworked task text allows both)")
def shared_session_no_base_url(upstream_url):
    return _app(upstream_url, ctx=_session_without_base_url, handler=_proxy_full_url)


async def _proxy_wrapped(request):
    async with request.app[SESSION].get("/json") as response:
        return web.json_response({"upstream": await response.json()})


@wrong(check.shared_session, 'wraps the document: {"upstream": ...}',
       rule="answers with that JSON document, unchanged",
       problem="wrong-body")
def shared_session_wraps_document(upstream_url):
    return _app(upstream_url, handler=_proxy_wrapped)


def _closure_ctx(upstream_url):
    async def ctx(app):
        async with aiohttp.ClientSession(base_url=upstream_url) as session:
            app[SESSION] = session
            yield

    return ctx


@wrong(check.shared_session, "never stores UPSTREAM_URL: the context closes over the argument",
       rule="Store the upstream's URL in the app too (`UPSTREAM_URL`)",
       problem="url-not-in-app")
def shared_session_url_not_stored(upstream_url):
    app = web.Application()
    app.cleanup_ctx.append(_closure_ctx(upstream_url))
    app.router.add_get("/proxy/json", proxy_json)
    return app


# --- Task 2 · second_route -------------------------------------------------------------------


@correct(check.second_route, "proxy_uuid through request.app[SESSION]")
def second_route_app_session(upstream_url):
    return create_app_two_routes(upstream_url)


def _relay(path: str):
    async def handler(request: web.Request) -> web.Response:
        async with request.app[SESSION].get(path) as response:
            return web.json_response(await response.json(), status=response.status)

    handler.__name__ = f"relay_{path.strip('/')}"
    return handler


@correct(check.second_route, "one handler factory for both routes")
def second_route_handler_factory(upstream_url):
    app = _app(upstream_url, handler=_relay("/json"))
    app.router.add_get("/proxy/uuid", _relay("/uuid"))
    return app


class _UuidView(web.View):
    async def get(self):
        session = self.request.config_dict[SESSION]
        async with session.get("/uuid") as response:
            return web.Response(text=await response.text(), content_type="application/json")


@correct(check.second_route, "a web.View over config_dict, the body passed through as text")
def second_route_class_view(upstream_url):
    app = create_app(upstream_url)
    app.router.add_view("/proxy/uuid", _UuidView)
    return app


async def _uuid_per_request(request):
    async with aiohttp.ClientSession(base_url=request.app[UPSTREAM_URL]) as session:
        async with session.get("/uuid") as response:
            return web.json_response(await response.json())


@wrong(check.second_route, "proxy_uuid opens its own session per request",
       rule="It must use the **same** session as `proxy_json`",
       problem="session-per-request")
def second_route_uuid_per_request(upstream_url):
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", _uuid_per_request)
    return app


UUID_SESSION = web.AppKey("uuid_session", aiohttp.ClientSession)


async def _second_session(app):
    async with aiohttp.ClientSession(base_url=app[UPSTREAM_URL]) as session:
        app[UUID_SESSION] = session
        yield


async def _uuid_second_session(request):
    async with request.app[UUID_SESSION].get("/uuid") as response:
        return web.json_response(await response.json())


@wrong(check.second_route, "a second app-owned session, under its own key, for the uuid route",
       rule="It must use the **same** session as `proxy_json`",
       problem="not-shared")
def second_route_second_session(upstream_url):
    app = create_app(upstream_url)
    app.cleanup_ctx.append(_second_session)
    app.router.add_get("/proxy/uuid", _uuid_second_session)
    return app


async def _uuid_copy_paste(request):
    async with request.app[SESSION].get("/json") as response:
        return web.json_response(await response.json())


@wrong(check.second_route, "copy-pasted proxy_json: /proxy/uuid fetches /json",
       rule="it fetches `upstream_url + \"/uuid\"`",
       problem="wrong-body")
def second_route_fetches_json(upstream_url):
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", _uuid_copy_paste)
    return app


CACHED_UUID = web.AppKey("cached_uuid", dict)


async def _uuid_cached(request):
    cache = request.app[CACHED_UUID]
    if "doc" not in cache:
        async with request.app[SESSION].get("/uuid") as response:
            cache["doc"] = await response.json()
    return web.json_response(cache["doc"])


@wrong(check.second_route, "caches the first uuid on the app and answers it every time",
       rule="(a fresh `{\"uuid\": ...}` on every call)",
       problem="cached-answer")
def second_route_caches_uuid(upstream_url):
    app = create_app(upstream_url)
    app[CACHED_UUID] = {}
    app.router.add_get("/proxy/uuid", _uuid_cached)
    return app


async def _uuid_as_text(request):
    async with request.app[SESSION].get("/uuid") as response:
        return web.json_response(await response.text())


@wrong(check.second_route, "answers json_response(await response.text()): a JSON string",
       rule="answers with that document",
       problem="wrong-body")
def second_route_json_string(upstream_url):
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", _uuid_as_text)
    return app


async def _uuid_borrowed_connector(request):
    shared = request.app[SESSION]
    async with aiohttp.ClientSession(base_url=request.app[UPSTREAM_URL],
                                     connector=shared.connector, connector_owner=False) as s:
        async with s.get("/uuid") as response:
            return web.json_response(await response.json())


@wrong(check.second_route, "a new session per request that borrows the app session's connector",
       rule="It must use the **same** session as `proxy_json`",
       problem="session-per-request")
def second_route_borrowed_connector(upstream_url):
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", _uuid_borrowed_connector)
    return app


async def _uuid_forgets_await(request):
    async with request.app[SESSION].get("/uuid") as response:
        return web.json_response(response.json())


@wrong(check.second_route, "forgets `await` on response.json()",
       rule="answers with that document",
       problem="missing-await")
def second_route_forgets_await(upstream_url):
    app = create_app(upstream_url)
    app.router.add_get("/proxy/uuid", _uuid_forgets_await)
    return app


# --- Task 3 · fail_fast ----------------------------------------------------------------------


@correct(check.fail_fast, "check_upstream as a second cleanup_ctx, raise_for_status")
def fail_fast_second_context(upstream_url):
    return create_checked_app(upstream_url)


async def _check_on_startup(app):
    async with app[SESSION].get("/get") as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"upstream unhealthy: {response.status}")


@correct(check.fail_fast, "the check as an on_startup callback: contexts start before it")
def fail_fast_on_startup_check(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.on_startup.append(_check_on_startup)
    return app


@contextlib.asynccontextmanager
async def _check_cm(app):
    async with app[SESSION].get("/get") as response:
        if response.status // 100 != 2:
            raise web.HTTPServiceUnavailable(text="upstream is down")
    yield


@correct(check.fail_fast, "an @asynccontextmanager check, status // 100")
def fail_fast_asynccontextmanager(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_cm)
    return app


class _UpstreamCheck:
    def __init__(self, app):
        self.app = app

    async def __aenter__(self):
        response = await self.app[SESSION].get("/get")
        try:
            if not response.ok:
                raise ConnectionError(f"upstream answered {response.status}")
        finally:
            response.release()

    async def __aexit__(self, *exc_info):
        return None


@correct(check.fail_fast, "a class context, response.ok, released in finally")
def fail_fast_class_check(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_UpstreamCheck)
    return app


@wrong(check.fail_fast, "appends check_upstream before client_session: the key is missing",
       rule="in which order the hooks start",
       problem="refuses-healthy-upstream")
def fail_fast_check_before_session(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.cleanup_ctx.append(check_upstream)
    app.cleanup_ctx.append(client_session)
    app.router.add_get("/proxy/json", proxy_json)
    app.router.add_get("/proxy/uuid", proxy_uuid)
    return app


async def _check_own_session_leaks(app):
    session = aiohttp.ClientSession(base_url=app[UPSTREAM_URL])
    async with session.get("/get") as response:
        response.raise_for_status()
    await session.close()
    yield


@wrong(check.fail_fast, "the check opens a session of its own and leaks it when it raises",
       rule="sends `GET upstream_url + \"/get\"` **with the app's session** ... no session "
       "is left open",
       problem="several-sessions")
def fail_fast_own_session_leaks(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_own_session_leaks)
    return app


async def _check_own_session_closed(app):
    async with aiohttp.ClientSession() as session:
        async with session.get(app[UPSTREAM_URL] + "/get") as response:
            response.raise_for_status()
    yield


@wrong(check.fail_fast, "the check opens (and closes) a second session instead of the app's",
       rule="sends `GET upstream_url + \"/get\"` **with the app's session**",
       problem="several-sessions")
def fail_fast_own_session_closed(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_own_session_closed)
    return app


async def _check_connection_only(app):
    async with app[SESSION].get("/get"):
        pass
    yield


@wrong(check.fail_fast, "checks only that the upstream answers: a 503 starts the app",
       rule="raises if the upstream does not answer 2xx",
       problem="starts-anyway")
def fail_fast_ignores_status(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_connection_only)
    return app


log = logging.getLogger("exercise13")


async def _check_logs_and_goes_on(app):
    try:
        async with app[SESSION].get("/get") as response:
            response.raise_for_status()
    except aiohttp.ClientError:
        log.exception("upstream is down")
    yield


@wrong(check.fail_fast, "logs the failure and starts anyway",
       rule="A service whose upstream is down should refuse to start",
       problem="starts-anyway")
def fail_fast_logs_and_starts(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_logs_and_goes_on)
    return app


async def _check_on_startup_hook(app):
    async with app[SESSION].get("/get") as response:
        response.raise_for_status()


@wrong(check.fail_fast, "session in on_startup/on_cleanup: a failed start never closes it",
       rule="expects ... that **no session is left open** (which hooks run after a failed "
       "start-up)",
       problem="leak-after-failed-start")
def fail_fast_startup_cleanup_session(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.on_startup.append(_open_on_startup)
    app.on_startup.append(_check_on_startup_hook)
    app.on_cleanup.append(_close_on_cleanup)
    app.router.add_get("/proxy/json", proxy_json)
    app.router.add_get("/proxy/uuid", proxy_uuid)
    return app


async def _check_5xx_only(app):
    async with app[SESSION].get("/get") as response:
        if response.status >= 500:
            raise RuntimeError(f"upstream answered {response.status}")
    yield


@wrong(check.fail_fast, "raises only for a 5xx: a 404 or 401 from /get would start the app",
       rule="raises if the upstream does not answer 2xx",
       problem="starts-anyway")
def fail_fast_5xx_only(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_5xx_only)
    return app


async def _check_refused_swallowed(app):
    try:
        async with app[SESSION].get("/get") as response:
            response.raise_for_status()
    except aiohttp.ClientConnectionError:
        pass
    yield


@wrong(check.fail_fast, "catches the connection error: a refusing upstream starts the app",
       rule="with one that refuses connections (start-up must fail ...)",
       problem="starts-anyway")
def fail_fast_swallows_refused(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_refused_swallowed)
    return app


async def _session_closed_after_bare_yield_then_check(app):
    session = aiohttp.ClientSession(base_url=app[UPSTREAM_URL])
    app[SESSION] = session
    async with session.get("/get") as response:
        response.raise_for_status()
    yield
    await session.close()


@wrong(check.fail_fast, "checks inside client_session before the yield, no try/finally: "
       "when the check raises, the session it just opened is never closed",
       rule="without leaking what it had already opened ... **no session is left open**",
       problem="leak-after-failed-start")
def fail_fast_check_inside_session_ctx(upstream_url):
    app = web.Application()
    app[UPSTREAM_URL] = upstream_url
    app.cleanup_ctx.append(_session_closed_after_bare_yield_then_check)
    app.router.add_get("/proxy/json", proxy_json)
    app.router.add_get("/proxy/uuid", proxy_uuid)
    return app


async def _check_waits_for_upstream(app):
    while True:
        try:
            async with app[SESSION].get("/get") as response:
                if response.ok:
                    break
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.5)
    yield


@wrong(check.fail_fast, "waits (forever) for the upstream to come up instead of failing",
       rule="should refuse to start, loudly",
       problem="waits-for-upstream")
def fail_fast_waits_forever(upstream_url):
    app = create_app_two_routes(upstream_url)
    app.cleanup_ctx.append(_check_waits_for_upstream)
    return app


# --- more probes -----------------------------------------------------------------------------

_current: list[aiohttp.ClientSession] = []


async def _session_in_global(app):
    async with aiohttp.ClientSession(base_url=app[UPSTREAM_URL]) as session:
        _current[:] = [session]
        yield
    _current.clear()


async def _proxy_global(request):
    async with _current[0].get("/json") as response:
        return web.json_response(await response.json())


@wrong(check.shared_session, "opens the session at start-up but keeps it in a module global, "
       "not under SESSION", rule="found under `SESSION` (`request.app[SESSION]`)",
       problem="session-not-in-app")
def shared_session_global_not_app_key(upstream_url):
    return _app(upstream_url, ctx=_session_in_global, handler=_proxy_global)
