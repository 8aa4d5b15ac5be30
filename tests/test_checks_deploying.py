"""Exercise 20's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Task 1's answers are middleware factories; tasks 2 and 3 take a module file, so their answers
are module sources (``module_file`` writes each into a folder of its own), most of them
``SERVICE`` with one thing changed, so that each breaks one rule. ``test_rule_tables`` checks
that every rule has a wrong answer here or in ``adversarial/ex20_deploying.py``.
"""

from __future__ import annotations

import ipaddress

import psutil
import pytest
from adversarial import answer_id, answers_in, correct, judge, module_file, wrong
from aiohttp import web

from local_server import processes
from local_server.checks import deploying as check

pytestmark = pytest.mark.skipif(not processes.POSIX, reason="signals and gunicorn need POSIX")

# --- Task 1 · trust_forwarded ----------------------------------------------------------------


def forwarded_with(*, check_peer=True, walk=True, join_lines=True, scheme=True,
                   validate=True, leftmost=False, empty_ok=True, on_bad=400):  # fmt: skip
    """A trust_forwarded factory with one part of it switched off."""

    def trust_forwarded(trusted):
        trusted = frozenset(trusted)

        @web.middleware
        async def middleware(request, handler):
            if check_peer and request.remote not in trusted:
                return await handler(request)
            if join_lines:
                lines = request.headers.getall("X-Forwarded-For", [])
            else:
                lines = [request.headers["X-Forwarded-For"]] if empty_ok is not None and (
                    "X-Forwarded-For" in request.headers) else []
            if not lines and empty_ok:
                return await handler(request)
            entries = [e.strip() for e in ",".join(lines).split(",")]
            if leftmost:
                entries = entries[:1]
            client = request.remote
            for entry in reversed(entries):
                if validate:
                    try:
                        client = str(ipaddress.ip_address(entry))
                    except ValueError:
                        if on_bad != 400:
                            return await handler(request)  # believe none of it
                        raise web.HTTPBadRequest(text="bad X-Forwarded-For") from None
                else:
                    client = entry
                if not walk or client not in trusted:
                    break
            changes = {"remote": client}
            if scheme:
                changes["scheme"] = request.headers.get("X-Forwarded-Proto", request.scheme)
            return await handler(request.clone(**changes))

        return middleware

    return trust_forwarded


correct(check.forwarded, "walks X-Forwarded-For from the right, skipping trusted proxies")(
    forwarded_with()
)
correct(check.forwarded, "a bad entry: the request handed on unchanged, as in the lesson")(
    forwarded_with(on_bad="unchanged")
)


@correct(check.forwarded, "a class whose instances are the middleware, `ipaddress` objects")
def trust_forwarded_class(trusted):
    class Forwarded:
        __middleware_version__ = 1

        def __init__(self, proxies):
            self.proxies = {ipaddress.ip_address(p) for p in proxies}

        def _trusted(self, address):
            try:
                return ipaddress.ip_address(address) in self.proxies
            except (TypeError, ValueError):
                return False

        async def __call__(self, request, handler):
            if not self._trusted(request.remote):
                return await handler(request)
            chain = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
            chain = [hop.strip() for hop in chain if hop.strip()]
            if not chain:
                return await handler(request)
            while chain:
                hop = chain.pop()
                try:
                    address = ipaddress.ip_address(hop)
                except ValueError:
                    raise web.HTTPBadRequest(reason="Bad X-Forwarded-For") from None
                if address not in self.proxies:
                    break
            proto = request.headers.get("X-Forwarded-Proto")
            clone = {"remote": str(address)} | ({"scheme": proto} if proto else {})
            return await handler(request.clone(**clone))

    return Forwarded(trusted)


wrong(check.forwarded, "believes X-Forwarded-For from every peer",
      problem="believed-untrusted-peer")(forwarded_with(check_peer=False))  # fmt: skip


@wrong(check.forwarded, "never applies the headers", problem="trusted-ignored")
def trust_forwarded_never(trusted):
    @web.middleware
    async def middleware(request, handler):
        return await handler(request)

    return middleware


wrong(check.forwarded, "takes the left-most entry, the one the client wrote",
      problem="took-client-entry")(forwarded_with(leftmost=True))  # fmt: skip
wrong(check.forwarded, "takes the right-most entry even when it is a trusted proxy",
      problem="chain-not-walked")(forwarded_with(walk=False))  # fmt: skip
wrong(check.forwarded, "reads only the first X-Forwarded-For line (headers[...])",
      problem="lines-not-joined")(forwarded_with(join_lines=False))  # fmt: skip
wrong(check.forwarded, "leaves request.scheme alone", problem="scheme-ignored")(
    forwarded_with(scheme=False)
)
wrong(check.forwarded, "believes an entry without parsing it", problem="bad-entry")(
    forwarded_with(validate=False)
)


@wrong(check.forwarded, "parses with ipaddress but lets ValueError escape: 500",
       problem="bad-entry")  # fmt: skip
def trust_forwarded_crashes(trusted):
    inner = forwarded_with()(trusted)

    @web.middleware
    async def middleware(request, handler):
        try:
            return await inner(request, handler)
        except web.HTTPBadRequest:
            raise ValueError("not an IP address") from None

    return middleware


wrong(check.forwarded, "a trusted peer without the header gets a 400",
      problem="no-header-broke")(forwarded_with(empty_ok=False))  # fmt: skip


@wrong(check.forwarded, "turns every HTTP error into a JSON 200", problem="answer-changed")
def trust_forwarded_swallows(trusted):
    inner = forwarded_with()(trusted)

    @web.middleware
    async def middleware(request, handler):
        try:
            return await inner(request, handler)
        except web.HTTPException as exc:
            return web.json_response({"error": exc.reason})

    return middleware


TRUSTED: set[str] = set()


@wrong(check.forwarded, "keeps the trusted set in a module variable: the last app's wins",
       problem="believed-untrusted-peer")  # fmt: skip
def trust_forwarded_global(trusted):
    global TRUSTED
    TRUSTED = set(trusted)
    inner = forwarded_with()

    @web.middleware
    async def middleware(request, handler):
        return await inner(TRUSTED)(request, handler)

    return middleware


# --- Tasks 2 and 3 · the module -----------------------------------------------------------------

SERVICE = '''\
"""service.py: counts visits in a store that every worker shares."""

import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

STORE = web.AppKey("store", aiohttp.ClientSession)
READY_TIMEOUT = aiohttp.ClientTimeout(total=0.5)


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
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise web.HTTPServiceUnavailable(text=type(exc).__name__) from None
    return web.json_response({"visits": value})


async def store_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(os.environ["STORE_URL"]) as session:
        app[STORE] = session
        yield


async def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(store_session)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/visits", visits)
    return app


if __name__ == "__main__":
    web.run_app(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        shutdown_timeout=10,
    )
'''


def service(name: str, *changes: tuple[str, str]) -> str:
    """``SERVICE`` with each (old, new) replaced once; the file's path, for the checks."""
    source = SERVICE
    for old, new in changes:
        assert old in source, (name, old)
        source = source.replace(old, new, 1)
    return module_file(source, name, module=__name__)


def deployable_wrong(name: str, mistake: str, problem: str, *changes: tuple[str, str]) -> None:
    wrong(check.deployable, mistake, problem=problem)(service(name, *changes))


def stop_wrong(name: str, mistake: str, problem: str, *changes: tuple[str, str]) -> None:
    wrong(check.graceful_stop, mistake, problem=problem)(service(name, *changes))


MAIN = '''    web.run_app(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        shutdown_timeout=10,
    )
'''
ON_HOOKS = (
    '''async def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(store_session)''',
    '''async def open_store(app: web.Application) -> None:
    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])


async def close_store(app: web.Application) -> None:
    await app[STORE].close()


async def create_app() -> web.Application:
    app = web.Application()
    app.on_startup.append(open_store)
    app.on_cleanup.append(close_store)''',
)

correct(check.deployable, "the model module")(service("model"))
correct(check.deployable, "on_startup and on_cleanup instead of cleanup_ctx; asyncio.timeout")(
    service("hooks", ON_HOOKS, (
        '''        async with request.app[STORE].get("/ping", timeout=READY_TIMEOUT) as response:
            response.raise_for_status()''',
        '''        async with asyncio.timeout(0.4):
            async with request.app[STORE].get("/ping") as response:
                response.raise_for_status()'''), ("import os\n", "import asyncio\nimport os\n"))
)  # fmt: skip
correct(check.graceful_stop, "the model module")(service("model"))
correct(check.graceful_stop, "its own AppRunner, TCPSite and signal handlers")(
    service("runner", (MAIN, '''    import asyncio
    import signal

    async def main() -> None:
        runner = web.AppRunner(await create_app(), shutdown_timeout=10)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
'''))
)
correct(check.graceful_stop, "run_app's default shutdown_timeout (60 s)")(
    service("default_timeout", ("        shutdown_timeout=10,\n", ""))
)

for _check in (check.deployable, check.graceful_stop):
    wrong(_check, "passes the module's name without .py", problem="no-module")(
        module_file(SERVICE, "no_suffix", module=__name__, filename="service")
    )
deployable_wrong("syntax_error", "a syntax error", "import-failed",
                 ("async def healthz(", "async def healthz(request) ->:\nasync def _x("))
deployable_wrong("logs_store_failures", "logs each store failure at ERROR", "logged-error",
                 ("    except (aiohttp.ClientError, TimeoutError) as exc:\n        raise",
                  "    except (aiohttp.ClientError, TimeoutError) as exc:\n"
                  "        import logging\n"
                  "        logging.getLogger('service').error('store failed: %s', exc)\n"
                  "        raise"))  # fmt: skip
deployable_wrong("never_closed", "opens the session in create_app and never closes it",
                 "session-left-open",
                 ("    app.cleanup_ctx.append(store_session)",
                  '    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])'))  # fmt: skip
deployable_wrong("unguarded_run_app", "calls web.run_app at module level, unguarded",
                 "bound-at-import", ('if __name__ == "__main__":\n', "if True:\n"))
deployable_wrong("session_at_import", "makes the session at import time", "opened-at-import",
                 ("READY_TIMEOUT =", "SESSION = aiohttp.ClientSession()\nREADY_TIMEOUT ="))
deployable_wrong("plain_factory", "a plain def create_app()", "factory-not-async",
                 ("async def create_app()", "def create_app()"))
deployable_wrong("returns_nothing", "forgets to return the app", "factory-returned",
                 ("    return app\n", ""))
deployable_wrong("store_url_at_factory", "reads a variable the environment does not have",
                 "factory-raised",
                 ("    app = web.Application()\n",
                  '    app = web.Application()\n'
                  '    app["url"] = os.environ["STORE"]\n'))  # fmt: skip
deployable_wrong("visits_as_get", "serves /visits for GET, not POST", "route-missing",
                 ('add_post("/visits"', 'add_get("/visits"'))
deployable_wrong("healthz_asks_store", "/healthz pings the store", "liveness-asks",
                 ('    return web.json_response({"status": "alive"})',
                  '    async with request.app[STORE].get("/ping") as response:\n'
                  '        response.raise_for_status()\n'
                  '    return web.json_response({"status": "alive"})'))  # fmt: skip
deployable_wrong("readyz_always_ok", "/readyz says 200 without asking", "readiness-lies",
                 ('    try:\n        async with request.app[STORE].get("/ping", '
                  'timeout=READY_TIMEOUT) as response:\n            response.raise_for_status()\n'
                  '    except (aiohttp.ClientError, TimeoutError):\n'
                  '        return web.json_response({"status": "not ready"}, status=503)\n',
                  ""))  # fmt: skip
deployable_wrong("readyz_no_timeout", "/readyz waits as long as the store does",
                 "readiness-hangs", ('get("/ping", timeout=READY_TIMEOUT)', 'get("/ping")'))
deployable_wrong("counter_in_app", "counts in app state, one copy per worker",
                 "state-per-worker",
                 ('''    try:
        async with request.app[STORE].post("/incr/visits") as response:
            response.raise_for_status()
            value = (await response.json())["value"]
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise web.HTTPServiceUnavailable(text=type(exc).__name__) from None
''', '''    request.app["counter"]["visits"] += 1
    value = request.app["counter"]["visits"]
'''), ("    app = web.Application()\n",
       '    app = web.Application()\n    app["counter"] = {"visits": 0}\n'))  # fmt: skip
deployable_wrong("store_error_escapes", "lets the store's 503 escape as a 500",
                 "store-failure-500",
                 ("    except (aiohttp.ClientError, TimeoutError) as exc:\n"
                  "        raise web.HTTPServiceUnavailable",
                  "    except TimeoutError as exc:\n        raise web.HTTPServiceUnavailable"))
deployable_wrong("session_per_request", "opens a session for every visit",
                 "session-per-request",
                 ('        async with request.app[STORE].post("/incr/visits") as response:',
                  '        async with aiohttp.ClientSession(os.environ["STORE_URL"]) as s, '
                  's.post("/incr/visits") as response:'))  # fmt: skip
deployable_wrong("cleanup_awaits_forever", "awaits a background task at clean-up, never "
                 "cancelled: the workers never stop", "unclean-exit",
                 ("        app[STORE] = session\n        yield\n",
                  "        app[STORE] = session\n"
                  "        import asyncio\n"
                  "        ticker = asyncio.create_task(asyncio.Event().wait())\n"
                  "        yield\n"
                  "        await ticker\n"))  # fmt: skip

stop_wrong("main_raises", "reads a variable the environment does not have", "import-failed",
           ('port=int(os.environ["PORT"])', 'port=int(os.environ["SERVICE_PORT"])'))
stop_wrong("logs_at_startup", "logs at ERROR when it starts", "logged-error",
           ("        yield\n", "        import logging\n"
            "        logging.getLogger('service').error('started')\n        yield\n"))
stop_wrong("never_closed_main", "opens the session in create_app and never closes it",
           "session-left-open",
           ("    app.cleanup_ctx.append(store_session)",
            '    app[STORE] = aiohttp.ClientSession(os.environ["STORE_URL"])'))  # fmt: skip
stop_wrong("no_main", "no __main__ block: the script defines and exits", "main-missing",
           (MAIN, "    pass\n"))
stop_wrong("any_port", "port=0: a free port of the system's choosing, not PORT's",
           "port-ignored", ('port=int(os.environ["PORT"])', "port=0"))
stop_wrong("all_interfaces", "host 0.0.0.0", "binds-everywhere",
           ('host=os.environ.get("HOST", "127.0.0.1")', 'host="0.0.0.0"'))
stop_wrong("no_signal_handling", "handle_signals=False: SIGTERM kills the process",
           "signal-kills", ("shutdown_timeout=10,", "shutdown_timeout=10, handle_signals=False,"))
stop_wrong("short_shutdown", "shutdown_timeout=0.5, shorter than a request", "cut-in-flight",
           ("shutdown_timeout=10,", "shutdown_timeout=0.5,"))
stop_wrong("closes_on_shutdown", "closes the session in on_shutdown", "closed-too-early",
           ON_HOOKS, ("app.on_cleanup.append(close_store)", "app.on_shutdown.append(close_store)"))


# --- running them all ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_a_function_is_not_a_module():
    async def create_app() -> web.Application:
        return web.Application()

    assert check.deployable.diagnose(create_app).problem == "no-module"


def test_the_stubs_are_not_implemented():
    stub = 'raise NotImplementedError("your code here")'
    for what, changes in {
        "healthz": [('    return web.json_response({"status": "alive"})', "    " + stub)],
        "factory": [("    app = web.Application()\n", f"    {stub}\n")],
        "main": [(MAIN, f"    {stub}\n")],
    }.items():
        path = service(f"stub_{what}", *changes)
        verdict = (check.graceful_stop if what == "main" else check.deployable).diagnose(path)
        assert verdict.problem == "not-implemented", verdict.render()


def test_no_process_or_file_is_left_behind(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    path = service("left_behind")
    assert check.deployable.diagnose(path).passed
    assert check.graceful_stop.diagnose(path).passed
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert list(tmp_path.iterdir()) == []
