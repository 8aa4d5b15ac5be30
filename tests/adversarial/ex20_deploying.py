"""Learner answers to exercise 20 (deploying), right and wrong, from the task text.

Written from the exercise notebook and lesson 20 alone, before reading the checks: what a
learner who read the lesson would plausibly write. Task 1's answers are functions; tasks 2
and 3 are whole ``service.py`` modules, built from one correct module with ``str.replace``.
"""

from __future__ import annotations

import ipaddress

import aiohttp_remotes
from aiohttp import web

from adversarial import correct, module_file, wrong
from local_server.checks import deploying as check

# --- Task 1 · trust_forwarded -------------------------------------------------------------------


def _entries(request: web.Request) -> list[str]:
    return [e.strip() for e in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]


@correct(check.forwarded, "a loop from the right, skips trusted, hands on unchanged when bad")
def trust_forwarded_loop(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted:
            return await handler(request)
        changes = {}
        if "X-Forwarded-For" in request.headers:
            for entry in reversed(_entries(request)):
                try:
                    address = str(ipaddress.ip_address(entry))
                except ValueError:
                    return await handler(request)
                if address not in trusted:
                    changes["remote"] = address
                    break
        if "X-Forwarded-Proto" in request.headers:
            changes["scheme"] = request.headers["X-Forwarded-Proto"]
        if changes:
            request = request.clone(**changes)
        return await handler(request)

    return forwarded


@correct(check.forwarded, "a class with __call__, answers 400 for a bad entry")
def trust_forwarded_class(trusted: set[str]):
    class TrustForwarded:
        def __init__(self, proxies: set[str]) -> None:
            self.proxies = set(proxies)

        def client(self, request: web.Request) -> str | None:
            lines = request.headers.getall("X-Forwarded-For", [])
            entries = [part.strip() for line in lines for part in line.split(",")]
            while entries:
                entry = entries.pop()
                try:
                    ipaddress.ip_address(entry)
                except ValueError:
                    raise web.HTTPBadRequest(text="bad X-Forwarded-For entry") from None
                if entry not in self.proxies:
                    return entry
            return None

        async def __call__(self, request: web.Request, handler):
            if request.remote not in self.proxies:
                return await handler(request)
            changes = {}
            client = self.client(request)
            if client is not None:
                changes["remote"] = client
            if scheme := request.headers.get("X-Forwarded-Proto"):
                changes["scheme"] = scheme
            return await handler(request.clone(**changes) if changes else request)

    return web.middleware(TrustForwarded(trusted))


@correct(check.forwarded, "ip_address objects, so '::1' and '0:0::1' are the same proxy")
def trust_forwarded_ip_objects(trusted: set[str]):
    proxies = {ipaddress.ip_address(address) for address in trusted}

    @web.middleware
    async def forwarded(request: web.Request, handler):
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return await handler(request)
        if peer not in proxies:
            return await handler(request)
        overrides = {}
        for entry in reversed(_entries(request) if "X-Forwarded-For" in request.headers else []):
            try:
                address = ipaddress.ip_address(entry)
            except ValueError:
                return await handler(request)
            if address not in proxies:
                overrides["remote"] = str(address)
                break
        proto = request.headers.get("X-Forwarded-Proto")
        if proto is not None:
            overrides["scheme"] = proto.strip()
        return await handler(request.clone(**overrides) if overrides else request)

    return forwarded


@wrong(check.forwarded, "XForwardedFiltered behind a peer check: 400 for a second XFF line",
       problem="lines-not-joined")
def trust_forwarded_remotes(trusted: set[str]):
    filtered = aiohttp_remotes.XForwardedFiltered(set(trusted))

    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted:
            return await handler(request)
        return await filtered.middleware(request, handler)

    return forwarded


@wrong(check.forwarded, "believes the headers from every peer", problem="believed-untrusted-peer")
def trust_forwarded_every_peer(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "takes the left-most entry, the one the client wrote",
       problem="took-client-entry")
def trust_forwarded_leftmost(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        try:
            client = str(ipaddress.ip_address(_entries(request)[0]))
        except ValueError:
            return await handler(request)
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded


@wrong(check.forwarded, "headers.get reads only the first X-Forwarded-For line",
       problem="lines-not-joined")
def trust_forwarded_get_not_getall(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        header = request.headers.get("X-Forwarded-For")
        if request.remote not in trusted or header is None:
            return await handler(request)
        for entry in reversed([e.strip() for e in header.split(",")]):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "the lesson's middleware: right-most entry, own proxies not skipped",
       problem="chain-not-walked")
def trust_forwarded_no_skip(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted:
            return await handler(request)
        try:
            client = str(ipaddress.ip_address(_entries(request)[-1]))
        except ValueError:
            return await handler(request)
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded


@wrong(check.forwarded, "ip_address() of a bad entry is not caught: a 500", problem="bad-entry")
def trust_forwarded_bad_entry_500(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            address = str(ipaddress.ip_address(entry))
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "finds the client's address but forgets X-Forwarded-Proto",
       problem="scheme-ignored")
def trust_forwarded_no_scheme(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                return await handler(request.clone(remote=address))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "wraps everything in try/except to answer 400: the handler's 404 too",
       problem="answer-changed")
def trust_forwarded_swallows_http_errors(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        try:
            if request.remote in trusted and "X-Forwarded-For" in request.headers:
                for entry in reversed(_entries(request)):
                    address = str(ipaddress.ip_address(entry))
                    if address not in trusted:
                        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                        request = request.clone(remote=address, scheme=scheme)
                        break
            return await handler(request)
        except Exception as exc:
            raise web.HTTPBadRequest(text=f"bad request: {exc}") from exc

    return forwarded


@wrong(check.forwarded, "never checks that an entry is an IP address: 'unknown' is believed",
       problem="bad-entry")
def trust_forwarded_no_validation(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            if entry not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=entry, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "strips a ':port' from an entry and believes what is left",
       problem="bad-entry")
def trust_forwarded_strips_port(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            if entry.count(":") == 1:  # 203.0.113.5:4711, an IPv4 address with a port
                entry = entry.split(":")[0]
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "takes entries[-2], thinking the last one is the proxy itself",
       problem="trusted-ignored")
def trust_forwarded_second_from_right(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        entries = _entries(request)
        if request.remote not in trusted or len(entries) < 2:
            return await handler(request)
        try:
            client = str(ipaddress.ip_address(entries[-2]))
        except ValueError:
            return await handler(request)
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded


@wrong(check.forwarded, "checks the peer for X-Forwarded-For only: any peer may claim https",
       problem="believed-untrusted-peer")
def trust_forwarded_proto_from_anyone(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if "X-Forwarded-Proto" in request.headers:
            request = request.clone(scheme=request.headers["X-Forwarded-Proto"])
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                return await handler(request.clone(remote=address))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "IPv4Address only: an IPv6 client is never found",
       problem="trusted-ignored")
def trust_forwarded_ipv4_only(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.IPv4Address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "splits on ',' without strip(): ' 198.51.100.23' is no address",
       problem="took-client-entry")
def trust_forwarded_no_strip(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        entries = ",".join(request.headers.getall("X-Forwarded-For")).split(",")
        for entry in reversed(entries):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@correct(check.forwarded, "clone(remote=..., scheme=None) without headers: None changes nothing")
def trust_forwarded_scheme_none(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted:
            return await handler(request)
        client = request.remote
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                break
            if address not in trusted:
                client = address
                break
        scheme = request.headers.get("X-Forwarded-Proto")
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded


@correct(check.forwarded, "applies X-Forwarded-Proto only when X-Forwarded-For is there too "
         "(the text asks for the scheme from a peer that sent X-Forwarded-For)")
def trust_forwarded_proto_needs_xff(trusted: set[str]):
    @web.middleware
    async def forwarded(request: web.Request, handler):
        if request.remote not in trusted or "X-Forwarded-For" not in request.headers:
            return await handler(request)
        for entry in reversed(_entries(request)):
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                return await handler(request)
            if address not in trusted:
                scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
                return await handler(request.clone(remote=address, scheme=scheme))
        return await handler(request)

    return forwarded


@wrong(check.forwarded, "clones twice: the second clone(scheme=) starts again from the peer",
       problem="trusted-ignored")
def trust_forwarded_class_clones_twice(trusted: set[str]):
    class TrustForwarded:
        def __init__(self, proxies: set[str]) -> None:
            self.proxies = set(proxies)

        def client(self, request: web.Request) -> str | None:
            lines = request.headers.getall("X-Forwarded-For", [])
            entries = [part.strip() for line in lines for part in line.split(",")]
            while entries:
                entry = entries.pop()
                try:
                    ipaddress.ip_address(entry)
                except ValueError:
                    raise web.HTTPBadRequest(text="bad X-Forwarded-For entry") from None
                if entry not in self.proxies:
                    return entry
            return None

        async def __call__(self, request: web.Request, handler):
            if request.remote not in self.proxies:
                return await handler(request)
            client = self.client(request)
            scheme = request.headers.get("X-Forwarded-Proto")
            if client is not None:
                request = request.clone(remote=client)
            if scheme:
                request = request.clone(scheme=scheme)
            return await handler(request)

    return web.middleware(TrustForwarded(trusted))


# --- Task 2 · deployable: service.py under gunicorn ---------------------------------------------

APP = '''\
"""service.py: counts visits in a store that every worker shares."""

import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

STORE = web.AppKey("store", aiohttp.ClientSession)  # this worker's session for the store
READY_TIMEOUT = aiohttp.ClientTimeout(total=0.5)  # a probe gives up after 1 s: answer first


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[STORE].get("/ping", timeout=READY_TIMEOUT) as response:
            response.raise_for_status()
    except (aiohttp.ClientError, TimeoutError):
        return web.json_response({"status": "not ready"}, status=503)
    return web.json_response({"status": "ready"})


async def visits(request: web.Request) -> web.Response:
    try:
        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
    except (aiohttp.ClientError, TimeoutError):
        raise web.HTTPServiceUnavailable(text="the store is not answering") from None
    return web.json_response({"visits": value})


async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield


async def create_app() -> web.Application:
    """The factory: gunicorn's aiohttp worker awaits it in each worker; run_app once."""
    app = web.Application()
    app.cleanup_ctx.append(store_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/visits", visits)
    return app


'''
MAIN = '''

if __name__ == "__main__":  # task 3: `python service.py`, never when gunicorn imports it
    web.run_app(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
    )
'''
SERVICE = APP + MAIN


def _variant(old: str, new: str, source: str = SERVICE) -> str:
    """``source`` with ``old`` replaced by ``new``; ``old`` must be there, once."""
    assert source.count(old) == 1, old
    return source.replace(old, new)


def deployable(source: str, name: str) -> str:
    return module_file(source, name, module=__name__)


correct(check.deployable, "base_url session in cleanup_ctx, raise_for_status, run_app defaults")(
    deployable(SERVICE, "service_base_url")
)

SERVICE_FSTRINGS = '''\
import asyncio
import os
import signal

import aiohttp
from aiohttp import web

STORE = web.AppKey("store", aiohttp.ClientSession)
STORE_URL = web.AppKey("store_url", str)  # configuration, the same in every worker


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(0.8):
            async with request.app[STORE].get(f"{request.app[STORE_URL]}/ping") as response:
                status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = None
    if status != 200:
        return web.Response(status=503, text="not ready")
    return web.Response(text="ready")


async def visits(request: web.Request) -> web.Response:
    url = f"{request.app[STORE_URL]}/incr/visits"
    try:
        async with request.app[STORE].post(url) as response:
            if response.status != 200:
                raise web.HTTPServiceUnavailable()
            data = await response.json()
    except (aiohttp.ClientError, TimeoutError):
        raise web.HTTPServiceUnavailable() from None
    return web.json_response({"visits": data["value"]})


async def store_session(app: web.Application):
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[STORE] = session
        yield


async def create_app() -> web.Application:
    app = web.Application()
    app[STORE_URL] = os.environ["STORE_URL"].rstrip("/")
    app.cleanup_ctx.append(store_session)
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.post("/visits", visits),
    ])
    return app


async def main() -> None:
    runner = web.AppRunner(await create_app())
    await runner.setup()
    site = web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"]),
                       shutdown_timeout=10)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
'''

correct(check.deployable, "f-string URLs, asyncio.timeout, status compared by hand")(
    deployable(SERVICE_FSTRINGS, "service_fstrings_runner")
)

SERVICE_HOOKS = _variant(
    '''async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield
''',
    '''async def open_store(app: web.Application) -> None:
    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])


async def close_store(app: web.Application) -> None:
    await app[STORE].close()
''',
)
SERVICE_HOOKS = _variant(
    "    app.cleanup_ctx.append(store_session)\n",
    "    app.on_startup.append(open_store)\n    app.on_cleanup.append(close_store)\n",
    SERVICE_HOOKS,
)
correct(check.deployable, "on_startup opens the session, on_cleanup closes it")(
    deployable(SERVICE_HOOKS, "service_startup_cleanup_hooks")
)



def wrong_deployable(mistake: str, problem: str, source: str, name: str) -> None:
    wrong(check.deployable, mistake, problem=problem)(deployable(source, name))


wrong_deployable(
    "web.run_app at module level, no __main__ guard: importing the module serves",
    "bound-at-import",
    APP + '''
web.run_app(create_app(), port=int(os.environ.get("PORT", "8080")))
''',
    "service_run_app_unguarded",
)

wrong_deployable(
    "one session for the module, opened at import",
    "opened-at-import",
    _variant(
        '''async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield
''',
        '''SESSION = aiohttp.ClientSession(os.environ["STORE_URL"])


async def store_session(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = SESSION
    yield
    await SESSION.close()
''',
    ),
    "service_session_at_import",
)

wrong_deployable(
    "waits for the store at import, with urllib: a connection when the module is imported",
    "opened-at-import",
    _variant(
        "STORE = web.AppKey(",
        '''import urllib.request  # noqa: E402

with urllib.request.urlopen(os.environ["STORE_URL"] + "/ping", timeout=2) as reply:
    print("store answers", reply.status, flush=True)

STORE = web.AppKey(''',
    ),
    "service_pings_store_at_import",
)

wrong_deployable(
    "a plain def create_app: gunicorn's aiohttp worker refuses it",
    "factory-not-async",
    _variant("async def create_app()", "def create_app()"),
    "service_sync_factory",
)

wrong_deployable(
    "liveness asks the store",
    "liveness-asks",
    _variant(
        '''async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})
''',
        '''async def healthz(request: web.Request) -> web.Response:
    return await readyz(request)  # alive means the store answers
''',
    ),
    "service_liveness_asks_store",
)

wrong_deployable(
    "readiness always says 200",
    "readiness-lies",
    _variant(
        '''    try:
        async with request.app[STORE].get("/ping", timeout=READY_TIMEOUT) as response:
            response.raise_for_status()
    except (aiohttp.ClientError, TimeoutError):
        return web.json_response({"status": "not ready"}, status=503)
    return web.json_response({"status": "ready"})
''',
        '''    return web.json_response({"status": "ready"})  # we are up, so we are ready
''',
    ),
    "service_readiness_lies",
)

wrong_deployable(
    "readiness looks only at exceptions: a 503 from the store is 'ready'",
    "readiness-lies",
    _variant(
        "            response.raise_for_status()\n    except (aiohttp.ClientError, TimeoutError):\n"
        '        return web.json_response({"status": "not ready"}, status=503)',
        "            await response.read()\n    except (aiohttp.ClientError, TimeoutError):\n"
        '        return web.json_response({"status": "not ready"}, status=503)',
    ),
    "service_readiness_ignores_status",
)

wrong_deployable(
    "readiness without a timeout: a hanging store hangs the probe",
    "readiness-hangs",
    _variant('.get("/ping", timeout=READY_TIMEOUT)', '.get("/ping")'),
    "service_readiness_no_timeout",
)

wrong_deployable(
    "readiness with a 2 s timeout: longer than the probe waits",
    "readiness-hangs",
    _variant("ClientTimeout(total=0.5)", "ClientTimeout(total=2)"),
    "service_readiness_timeout_too_long",
)

wrong_deployable(
    "readiness catches ClientError only: the timeout's TimeoutError is a 500 (504)",
    "readiness-lies",
    _variant(
        '            response.raise_for_status()\n    except (aiohttp.ClientError, TimeoutError):\n'
        '        return web.json_response({"status": "not ready"}, status=503)',
        '            response.raise_for_status()\n    except aiohttp.ClientError:\n'
        '        return web.json_response({"status": "not ready"}, status=503)',
    ),
    "service_readiness_timeout_is_500",
)

wrong_deployable(
    "counts in a module variable: each worker its own count",
    "state-per-worker",
    _variant(
        '''async def visits(request: web.Request) -> web.Response:
    try:
        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
    except (aiohttp.ClientError, TimeoutError):
        raise web.HTTPServiceUnavailable(text="the store is not answering") from None
    return web.json_response({"visits": value})
''',
        '''count = 0


async def visits(request: web.Request) -> web.Response:
    global count
    count += 1
    return web.json_response({"visits": count})
''',
    ),
    "service_count_in_module_variable",
)

SERVICE_APP_COUNT = _variant(
    '''    try:
        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
    except (aiohttp.ClientError, TimeoutError):
        raise web.HTTPServiceUnavailable(text="the store is not answering") from None
    return web.json_response({"visits": value})
''',
    '''    request.app[COUNT]["visits"] += 1
    return web.json_response({"visits": request.app[COUNT]["visits"]})
''',
)
SERVICE_APP_COUNT = _variant(
    "READY_TIMEOUT =", 'COUNT = web.AppKey("count", dict)\nREADY_TIMEOUT =', SERVICE_APP_COUNT
)
SERVICE_APP_COUNT = _variant(
    "    app = web.Application()\n",
    '    app = web.Application()\n    app[COUNT] = {"visits": 0}\n',
    SERVICE_APP_COUNT,
)
wrong_deployable(
    "counts in app[...]: each worker's app its own count",
    "state-per-worker",
    SERVICE_APP_COUNT,
    "service_count_in_app",
)

wrong_deployable(
    "no error handling in /visits: a failing store is a 500",
    "store-failure-500",
    _variant(
        '''    try:
        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
    except (aiohttp.ClientError, TimeoutError):
        raise web.HTTPServiceUnavailable(text="the store is not answering") from None
''',
        '''    async with request.app[STORE].post("/incr/visits") as response:
        response.raise_for_status()
        value = (await response.json())["value"]
''',
    ),
    "service_visits_500",
)

wrong_deployable(
    "/visits never looks at the status: the store's error body has no 'value', a KeyError",
    "store-failure-500",
    _variant("            response.raise_for_status()\n            value = (await response.json())",
             "            value = (await response.json(content_type=None))"),
    "service_visits_ignores_status",
)

wrong_deployable(
    "logs the store's failure with logging.exception: an ERROR line",
    "logged-error",
    _variant(
        "    except (aiohttp.ClientError, TimeoutError):\n"
        "        raise web.HTTPServiceUnavailable(",
        "    except (aiohttp.ClientError, TimeoutError):\n"
        '        logging.getLogger("service").exception("the store failed")\n'
        "        raise web.HTTPServiceUnavailable(",
        _variant("import os\n", "import logging\nimport os\n"),
    ),
    "service_logs_error",
)

wrong_deployable(
    "a new ClientSession for every request",
    "session-per-request",
    _variant(
        '''        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
''',
        '''        async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
            async with session.post("/incr/visits") as response:
                response.raise_for_status()
                value = (await response.json())["value"]
''',
    ),
    "service_session_per_request",
)

wrong_deployable(
    "opens the session on start-up and never closes it",
    "session-left-open",
    _variant(
        '''async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield
''',
        '''async def store_session(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])
    yield
''',
    ),
    "service_session_never_closed",
)

wrong_deployable(
    "the store's address written into the code, not read from STORE_URL",
    "readiness-lies",
    _variant('aiohttp.ClientSession(os.environ["STORE_URL"])',
             'aiohttp.ClientSession("http://127.0.0.1:8000")'),
    "service_store_url_fixed",
)

wrong_deployable(
    "answers /visits with the store's own body, {'value': n}",
    "visits-shape",
    _variant('json_response({"visits": value})', 'json_response({"value": value})'),
    "service_visits_wrong_key",
)


# --- Task 3 · graceful_stop: python service.py and SIGTERM --------------------------------------


def stoppable(main: str, name: str, app: str = APP) -> str:
    return module_file(app + main, name, module=__name__)


correct(check.graceful_stop, "run_app with its defaults: SIGTERM handled, 60 s to finish")(
    stoppable(MAIN, "stop_run_app_defaults")
)

correct(check.graceful_stop, "AppRunner + TCPSite, a SIGTERM handler that sets an Event")(
    module_file(SERVICE_FSTRINGS, "stop_runner_signal_handler", module=__name__)
)

correct(check.graceful_stop, "run_app with shutdown_timeout=10 and a PORT default")(
    stoppable(
        '''

if __name__ == "__main__":
    web.run_app(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8080")),
        shutdown_timeout=10,
        access_log=None,
    )
''',
        "stop_run_app_timeout_10",
    )
)

correct(check.graceful_stop, "on_startup/on_cleanup hooks, run_app")(
    module_file(SERVICE_HOOKS, "stop_startup_cleanup_hooks", module=__name__)
)


def wrong_stop(mistake: str, problem: str, source: str, name: str) -> None:
    wrong(check.graceful_stop, mistake, problem=problem)(
        module_file(source, name, module=__name__)
    )


wrong_stop(
    "closes the session in on_shutdown: the requests in flight lose it",
    "closed-too-early",
    _variant(
        "    app.cleanup_ctx.append(store_session)\n",
        "    app.on_startup.append(open_store)\n    app.on_shutdown.append(close_store)\n",
        _variant(
            '''async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield
''',
            '''async def open_store(app: web.Application) -> None:
    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])


async def close_store(app: web.Application) -> None:
    await app[STORE].close()  # on the way out
''',
        ),
    ),
    "stop_session_closed_on_shutdown",
)

# Written as a wrong answer; it is not, by its effect: aiohttp 3.14's run_app waits about twice
# shutdown_timeout (measured: with 1 s, 2.0 s requests complete, 2.6 s ones are cut at 2.1 s),
# and 0.5 s (a wrong answer in test_checks_deploying) is cut.
correct(check.graceful_stop, "shutdown_timeout=1, which run_app stretches to about 2 s")(
    module_file(
        _variant('port=int(os.environ["PORT"]),\n', 'port=int(os.environ["PORT"]),\n'
                 "        shutdown_timeout=1,\n"),
        "stop_short_shutdown_timeout",
        module=__name__,
    )
)

wrong_stop(
    "handle_signals=False: SIGTERM kills the process",
    "signal-kills",
    _variant('port=int(os.environ["PORT"]),\n', 'port=int(os.environ["PORT"]),\n'
             "        handle_signals=False,\n"),
    "stop_no_signal_handling",
)

wrong_stop(
    "a fixed port, 8080, whatever PORT says",
    "port-ignored",
    _variant('port=int(os.environ["PORT"])', "port=8080"),
    "stop_fixed_port",
)

wrong_stop(
    "host 0.0.0.0 by default: every interface, not 127.0.0.1",
    "binds-everywhere",
    _variant('os.environ.get("HOST", "127.0.0.1")', 'os.environ.get("HOST", "0.0.0.0")'),
    "stop_all_interfaces",
)

wrong_stop(
    "AppRunner and TCPSite, then waits forever: no signal handler, SIGTERM kills it",
    "signal-kills",
    APP + '''

async def main() -> None:
    runner = web.AppRunner(await create_app())
    await runner.setup()
    await web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
''',
    "stop_runner_no_signal_handler",
)

wrong_stop(
    "a SIGTERM handler that stops the loop: run() fails, requests dropped",
    "cut-in-flight",
    _variant(
        "        loop.add_signal_handler(signum, stop.set)",
        "        loop.add_signal_handler(signum, loop.stop)",
        SERVICE_FSTRINGS,
    ),
    "stop_signal_stops_loop",
)

wrong_stop(
    "the SIGTERM handler ends main() without runner.cleanup(): handlers cancelled, session open",
    "cut-in-flight",
    _variant(
        "    try:\n        await stop.wait()\n    finally:\n        await runner.cleanup()\n",
        "    await stop.wait()\n",
        SERVICE_FSTRINGS,
    ),
    "stop_runner_no_cleanup",
)

# run_app treats any SystemExit as its own GracefulExit (a SystemExit): it cancels its main task,
# whose clean-up waits for the handlers, so this exits gracefully too.
SERVICE_SYS_EXIT = _variant(
    "gunicorn imports it\n",
    "gunicorn imports it\n"
    "    import signal\n    import sys\n\n"
    "    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n",
    _variant('port=int(os.environ["PORT"]),\n',
             'port=int(os.environ["PORT"]),\n        handle_signals=False,\n'),
)
correct(check.graceful_stop, "handle_signals=False, signal.signal(SIGTERM, sys.exit(0))")(
    module_file(SERVICE_SYS_EXIT, "stop_sys_exit_handler", module=__name__)
)
