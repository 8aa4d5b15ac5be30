"""Checks for exercise 20, deploying an aiohttp app: ``from local_server.checks import deploying``.

- ``forwarded(trust_forwarded)``: the learner's middleware factory, in two applications with
  different trusted proxies (state kept outside the middleware shows as one app believing the
  other's proxies). The check's handler reports what it saw; requests come straight from an
  untrusted or a trusted peer, and through the course's reverse proxy in each of its ways of
  writing ``X-Forwarded-For`` (appended to what the client forged, a header line of its own,
  behind a second trusted proxy), with IPv4 and IPv6 clients drawn from a seeded pool.
- ``deployable("service.py")``: the learner's module under gunicorn with aiohttp's worker and
  two workers, through ``app_probe`` (which reports what importing the module did, what the
  factory gave, what was logged, which sessions were left open, and stamps each answer with
  the PID of the worker). A store of the check's (in this process) holds the shared count and
  answers, fails and hangs on the check's word; it records every request and the connection
  it came on. Then SIGTERM, and the exit.
- ``graceful_stop("service.py")``: the module run as ``python service.py`` (its own
  ``web.run_app``), on a port the check picks; SIGTERM while requests wait on a slow store.

Every verdict comes from effects: what the clients got, what the store saw, what the worker
processes reported and logged, their exit status.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import math
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from multidict import CIMultiDict

from .. import processes
from ..app_probe import PID_HEADER
from ..reverse_proxy import reverse_proxy
from ..serving import captured_server_errors, logged_exceptions, serve
from .evidence import clip, exception_text, learner_line
from .harness import check, plural, stretched
from .rules import Mistake, Rule, Task

__all__ = ["deployable", "forwarded", "graceful_stop"]

SEED = 20
PROBE = Path(__file__).resolve().parent.parent / "app_probe.py"
WORKERS = 2
# The store's slow answer while requests are in flight at SIGTERM; the task allows 2 s.
IN_FLIGHT_SECONDS = 2.0
IN_FLIGHT = 4
# gunicorn's --graceful-timeout: a worker that has not stopped by then is killed.
GRACEFUL_SECONDS = 5.0
# What the task gives /readyz to answer in, whatever the store does.
READY_WITHIN_SECONDS = 1.0


# --- task 1: the middleware -----------------------------------------------------------------

FORWARDED = Task(
    "forwarded",
    Rule(
        "believed-untrusted-peer",
        "believe the headers only when the peer (`request.remote`) is in `trusted`",
        "a request straight from an untrusted peer, with a forged X-Forwarded-For and "
        "X-Forwarded-Proto: the address and scheme the handler saw",
        "compare `request.remote` with `trusted` first: a peer that is not your proxy can "
        "write any header it likes, so hand the request on unchanged.",
    ),
    Rule(
        "trusted-ignored",
        "from a trusted peer, the client is what X-Forwarded-For says",
        "through the check's reverse proxy (a trusted peer): the address the handler saw",
        "when `request.remote` is in `trusted`, pass the handler "
        "`request.clone(remote=client, scheme=...)`.",
    ),
    Rule(
        "took-client-entry",
        "the client is the right-most entry that is not a trusted proxy",
        "through the proxy, for a client that sent its own X-Forwarded-For: the address the "
        "handler saw",
        "the proxy appends what it saw at the right; everything to its left was written by "
        "the client. Walk the entries from the right.",
    ),
    Rule(
        "chain-not-walked",
        "skip the entries of trusted proxies, from the right",
        "a client behind two trusted proxies: the handler must see the client, not the first proxy",
        "from the right, drop each entry that is itself in `trusted`; the first one that "
        "is not is the client.",
    ),
    Rule(
        "lines-not-joined",
        "several X-Forwarded-For lines are one list, in order",
        "a proxy that sends its entry as a header line of its own, after the client's line",
        "`request.headers.getall('X-Forwarded-For', [])` gives every line; join them with "
        "',' before splitting (`headers.get` gives only the first).",
    ),
    Rule(
        "scheme-ignored",
        "from a trusted peer, the scheme is X-Forwarded-Proto",
        "request.scheme in the handler behind a proxy that terminates TLS",
        "pass `scheme=request.headers['X-Forwarded-Proto']` to `request.clone()` when the "
        "peer is trusted and the header is there.",
    ),
    Rule(
        "bad-entry",
        "an entry that is not an IP address is never believed: a 400, or the request "
        "unchanged; never a 500",
        "X-Forwarded-For values such as 'unknown' or an address with a port, from the trusted peer",
        "parse the entry with `ipaddress.ip_address()`; on ValueError raise "
        "`web.HTTPBadRequest` with a short reason (or hand the request on unchanged).",
    ),
    Rule(
        "no-header-broke",
        "a request from a trusted peer without the headers reaches the handler unchanged",
        "a request from the trusted peer with no X-Forwarded-* header: status, address, scheme",
        "no X-Forwarded-For: call the handler with the request as it is.",
    ),
    Rule(
        "answer-changed",
        "change nothing else: the handler's status, headers and body pass through",
        "a handler's 404, and a header and body it set",
        "return what `await handler(request)` returns; let HTTP errors propagate.",
    ),
)

# Addresses from the documentation ranges (RFC 5737, RFC 3849): they reach nobody.
CLIENTS = ["198.51.100.23", "203.0.113.7", "192.0.2.145", "2001:db8::17", "2001:db8:4:2::9",
           "198.51.100.250", "203.0.113.61"]  # fmt: skip
FORGED = "203.0.113.66"
BAD_ENTRIES = ["unknown", "203.0.113.5:4711", "999.10.1.1", "_hidden", "localhost"]


def _whoami_app(middleware: Any) -> web.Application:
    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote, "scheme": request.scheme})

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text="nothing here", headers={"X-Check": "kept"})

    async def made(request: web.Request) -> web.Response:
        return web.Response(text="made by the handler", status=201, headers={"X-Check": "own"})

    app = web.Application(middlewares=[middleware])
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/missing", missing)
    app.router.add_get("/made", made)
    return app


def _same_address(seen: Any, expected: str) -> bool:
    try:
        return ipaddress.ip_address(str(seen)) == ipaddress.ip_address(expected)
    except ValueError:
        return False


@dataclass
class _Seen:
    status: int
    remote: Any = None
    scheme: Any = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


async def _ask(session: aiohttp.ClientSession, url: str, headers: Any = None) -> _Seen:
    async with session.get(url, headers=headers) as response:
        body = await response.text()
        seen = _Seen(response.status, body=body, headers=dict(response.headers))
    if seen.status == 200 and url.endswith("/whoami"):
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            seen.remote, seen.scheme = data.get("remote"), data.get("scheme")
    return seen


def _crash(problem: str, what: str, seen: _Seen, records: list) -> Mistake:
    """The verdict for a 500: the exception aiohttp logged for it, and the learner's line."""
    errors = logged_exceptions(records)
    if errors:
        where = learner_line(errors[-1])
        at = f" ({where})" if where else ""
        return FORWARDED.broken(problem, f"{what} got 500: {exception_text(errors[-1])}{at}.")
    return FORWARDED.broken(problem, f"{what} got 500 ({clip(seen.body, 80)}).")


def _expect_whoami(
    what: str, seen: _Seen, remote: str, scheme: str, records: list, problem: str, wrongly: str
) -> None:
    """``seen`` must be a 200 with ``remote`` and ``scheme``; else ``problem``'s verdict."""
    if seen.status == 500:
        raise _crash(problem, what, seen, records)
    if seen.status != 200:
        raise FORWARDED.broken(
            problem, f"{what} got {seen.status} ({clip(seen.body, 60)}), not the handler's 200."
        )
    if not _same_address(seen.remote, remote):
        if _same_address(seen.remote, "127.0.0.1"):  # the peer: nothing was applied
            wrongly = "the peer's own address, as if no entry could be used (spaces around it?)"
        raise FORWARDED.broken(
            problem,
            f"{what}, the handler saw request.remote = {seen.remote!r}: {wrongly}; "
            f"expected {remote}.",
        )
    if seen.scheme != scheme:
        raise FORWARDED.broken(
            "scheme-ignored" if scheme == "https" else problem,
            f"{what}, the handler saw request.scheme = {seen.scheme!r}, expected {scheme!r}.",
        )


@check(FORWARDED, timeout=20)
async def forwarded(trust_forwarded: Callable[[set[str]], Any], server: Any, spy: Any) -> str:
    """Two apps, each with its own trusted proxies, asked directly and through proxies."""
    rng = random.Random(SEED)
    # IPv4 and IPv6 clients, alternating, in a seeded order.
    v4 = rng.sample([c for c in CLIENTS if ":" not in c], 2)
    v6 = rng.sample([c for c in CLIENTS if ":" in c], 2)
    clients = [v4[0], v6[0], v4[1], v6[1]]
    upstream_proxy = f"10.{rng.randint(1, 250)}.{rng.randint(1, 250)}.{rng.randint(1, 250)}"
    elsewhere = {"192.0.2.10", f"10.0.0.{rng.randint(2, 250)}"}  # loopback is not trusted
    here = {"127.0.0.1", "::1", upstream_proxy}
    far_app = _whoami_app(trust_forwarded(elsewhere))
    near_app = _whoami_app(trust_forwarded(here))
    forged = CIMultiDict({"X-Forwarded-For": FORGED, "X-Forwarded-Proto": "https"})
    with captured_server_errors() as records:
        async with serve(far_app) as far, serve(near_app) as near:
            async with aiohttp.ClientSession() as session:
                # An untrusted peer, straight and through a proxy it put in front.
                seen = await _ask(session, far + "/whoami", forged)
                _expect_whoami(
                    f"straight from 127.0.0.1 (not in trusted) with X-Forwarded-For: {FORGED}",
                    seen, "127.0.0.1", "http", records, "believed-untrusted-peer",
                    "a forged header was believed",
                )  # fmt: skip
                async with reverse_proxy(far, client_address=clients[0], proto="https") as px:
                    seen = await _ask(session, px.url + "/whoami")
                _expect_whoami(
                    "through a proxy at 127.0.0.1 that is not in trusted",
                    seen, "127.0.0.1", "http", records, "believed-untrusted-peer",
                    "an untrusted proxy's header was believed",
                )  # fmt: skip
                # The trusted proxy, appending.
                async with reverse_proxy(near, client_address=clients[1], proto="https") as px:
                    seen = await _ask(session, px.url + "/whoami")
                    _expect_whoami(
                        f"through the trusted proxy for client {clients[1]}",
                        seen, clients[1], "https", records, "trusted-ignored",
                        "the proxy's X-Forwarded-For was not applied",
                    )  # fmt: skip
                    headers = {"X-Forwarded-For": FORGED}
                    seen = await _ask(session, px.url + "/whoami", headers)
                    sent = f"{FORGED}, {clients[1]}"
                    _expect_whoami(
                        f"through the trusted proxy, for a client that forged "
                        f"X-Forwarded-For: {FORGED} (the app got '{sent}')",
                        seen, clients[1], "https", records, "took-client-entry",
                        "that is the entry the client wrote",
                    )  # fmt: skip
                # Behind two trusted proxies: the first one's address is the near proxy's peer.
                async with reverse_proxy(near, client_address=upstream_proxy, proto="https") as px:
                    headers = {"X-Forwarded-For": f"{FORGED}, {clients[2]}"}
                    seen = await _ask(session, px.url + "/whoami", headers)
                    sent = f"{FORGED}, {clients[2]}, {upstream_proxy}"
                    _expect_whoami(
                        f"behind two trusted proxies ({upstream_proxy}, then 127.0.0.1), "
                        f"the app got X-Forwarded-For: {sent}",
                        seen, clients[2], "https", records, "chain-not-walked",
                        "that is not the client" if _same_address(seen.remote, upstream_proxy)
                        is False else "that is the first proxy, which is trusted",
                    )  # fmt: skip
                # A proxy that adds its own header line.
                async with reverse_proxy(
                    near, client_address=clients[3], proto="http", forwarded_for="separate"
                ) as px:
                    headers = {"X-Forwarded-For": FORGED}
                    seen = await _ask(session, px.url + "/whoami", headers)
                    _expect_whoami(
                        f"through a proxy that adds its own line 'X-Forwarded-For: {clients[3]}' "
                        f"after the client's 'X-Forwarded-For: {FORGED}'",
                        seen, clients[3], "http", records, "lines-not-joined",
                        "only the first line was read",
                    )  # fmt: skip
                # Straight from a trusted peer: without the header.
                seen = await _ask(session, near + "/whoami")
                _expect_whoami(
                    "straight from the trusted 127.0.0.1, without X-Forwarded-For",
                    seen, "127.0.0.1", "http", records, "no-header-broke",
                    "the request was changed",
                )  # fmt: skip
                # The handler's own answers pass through.
                for app_url in (far, near):
                    seen = await _ask(session, app_url + "/missing")
                    if seen.status == 500:
                        raise _crash("answer-changed", "GET /missing (its handler raises 404)",
                                     seen, records)  # fmt: skip
                    if seen.status != 404 or seen.headers.get("X-Check") != "kept":
                        raise FORWARDED.broken(
                            "answer-changed",
                            f"GET /missing, whose handler raises HTTPNotFound with the header "
                            f"X-Check: kept, got {seen.status} with X-Check: "
                            f"{seen.headers.get('X-Check')!r}.",
                        )
                    seen = await _ask(session, app_url + "/made")
                    if seen.status == 500:
                        raise _crash("answer-changed", "GET /made", seen, records)
                    if (seen.status, seen.body, seen.headers.get("X-Check")) != (
                        201,
                        "made by the handler",
                        "own",
                    ):
                        raise FORWARDED.broken(
                            "answer-changed",
                            f"GET /made, whose handler answers 201 'made by the handler' with "
                            f"X-Check: own, got {seen.status} {clip(seen.body, 40)!r} with "
                            f"X-Check: {seen.headers.get('X-Check')!r}.",
                        )
                # A bad entry from a trusted peer.
                with_port = "203.0.113.5:4711"  # an address with a port is no address
                for bad in [with_port, rng.choice([b for b in BAD_ENTRIES if b != with_port])]:
                    headers = {"X-Forwarded-For": f"{clients[0]}, {bad}"}
                    seen = await _ask(session, near + "/whoami", headers)
                    what = f"from the trusted peer with X-Forwarded-For: {clients[0]}, {bad}"
                    if seen.status == 500:
                        raise _crash("bad-entry", what, seen, records)
                    unchanged = seen.status == 200 and _same_address(seen.remote, "127.0.0.1")
                    if seen.status != 400 and not unchanged:
                        believed = f" and the handler saw {seen.remote!r}" if seen.remote else ""
                        raise FORWARDED.broken(
                            "bad-entry",
                            f"{what} got {seen.status}{believed}: {bad!r} is no address.",
                        )
    return (
        "an untrusted peer's forged headers were ignored, straight and through a proxy; "
        "behind trusted proxies the handler saw the real client (IPv4 and IPv6), past a "
        "forged entry, a second proxy and a separate header line, with the proxy's scheme; "
        "bad entries were never believed, and the handler's own answers passed through "
        "unchanged."
    )


# --- the store that tasks 2 and 3 share -----------------------------------------------------


@dataclass
class StoreRecord:
    """One request the store received: its path, the connection's port, when it arrived."""

    path: str
    port: int | None
    at: float


class Store:
    """The shared state every worker must use: ``POST /incr/{key}`` and ``GET /ping``.

    ``mode`` is "up", "failing" (503 to everything) or "hanging" (no answer until the mode
    changes or 5 s pass); ``slow`` delays ``/incr`` answers. ``records`` keeps every request.
    """

    HANG_AT_MOST = 5.0

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.mode = "up"
        self.slow = 0.0
        self.records: list[StoreRecord] = []
        self._changed = asyncio.Event()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._changed.set()
        self._changed = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_post("/incr/{key}", self._incr)
        return app

    def count(self, path: str) -> int:
        return sum(1 for record in self.records if record.path == path)

    async def _gate(self, request: web.Request) -> web.Response | None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.records.append(StoreRecord(request.path, peer[1] if peer else None, time.monotonic()))
        if self.mode == "hanging":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.HANG_AT_MOST)
        if self.mode != "up":
            return web.json_response({"error": "the store is down"}, status=503)
        return None

    async def _ping(self, request: web.Request) -> web.Response:
        return await self._gate(request) or web.json_response({"pong": True})

    async def _incr(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        if self.slow:
            await asyncio.sleep(self.slow)
        key = request.match_info["key"]
        self.counts[key] += 1
        return web.json_response({"key": key, "value": self.counts[key]})


# --- what the probe reported -----------------------------------------------------------------


class Report:
    """The events the module's processes wrote to the probe's report file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return [e for e in events if kind is None or e.get("event") == kind]


def _where(error: dict[str, Any] | None) -> str:
    where = (error or {}).get("where")
    if not where:
        return ""
    return f" (line {where['line']}, in {where['function']}: `{where['text']}`)"


def _quote(error: dict[str, Any]) -> str:
    return f"{error['text']}{_where(error)}"


def _not_implemented(events: list[dict[str, Any]]) -> None:
    for event in events:
        for error in (event.get("error"),):
            if error and error.get("not_implemented"):
                where = error.get("where") or {}
                raise NotImplementedError(where.get("function", ""))


# Rules both module tasks share.
def _module_rules() -> list[Rule]:
    """The rules tasks 2 and 3 share: they run the same module."""
    return [
        Rule(
            "no-module",
            "pass the file name of the module the cell wrote",
            "the check was given something that is not an existing .py file",
            'pass the name the `%%writefile` line wrote: `check.task("service.py")`.',
        ),
        Rule(
            "import-failed",
            "the module imports, and runs, without an exception",
            "the exception importing or running it raised, and its line",
            "read the line quoted: run `python service.py` in a terminal to see the whole "
            "traceback.",
        ),
        Rule(
            "logged-error",
            "nothing is logged at ERROR while it serves",
            "every ERROR record of the processes (aiohttp's 'Error handling request'), with "
            "the module's line",
            "a handler that raises is a 500 and a traceback in the log: answer the failure "
            "yourself (`web.HTTPServiceUnavailable`). A store that is down is expected: log "
            "it at WARNING, if at all, never with `logger.error`/`logger.exception`.",
        ),
        Rule(
            "session-left-open",
            "close the session when the app stops",
            "sessions the module made and had not closed when the app's clean-up ended, "
            "and the line that made each",
            "open it in a `cleanup_ctx` generator with `async with aiohttp.ClientSession(...) "
            "as session:` around the `yield`.",
        ),
    ]


DEPLOYABLE = Task(
    "deployable",
    *_module_rules(),
    Rule(
        "bound-at-import",
        "importing the module opens no port",
        "ports bound while gunicorn's worker imported the module (refused), and the line",
        'call `web.run_app()` only under `if __name__ == "__main__":`; gunicorn imports '
        "the module and calls the factory itself.",
    ),
    Rule(
        "opened-at-import",
        "importing the module opens no session or connection",
        "sessions made, connections and threads started while the module was imported",
        "open the session in a `cleanup_ctx` generator: it runs in each worker's own "
        "event loop, once the app starts.",
    ),
    Rule(
        "factory-not-async",
        "`create_app` is an `async def` that returns the application",
        "what `create_app` is, as aiohttp's gunicorn worker sees it",
        "gunicorn's aiohttp worker takes a `web.Application` or an `async def` returning "
        "one: write `async def create_app() -> web.Application:`.",
    ),
    Rule(
        "factory-returned",
        "`create_app()` returns a `web.Application`",
        "what awaiting `create_app()` returned",
        "build the app and `return app`.",
    ),
    Rule(
        "factory-raised",
        "`create_app()` returns without error",
        "the exception awaiting it raised, and its line",
        "the factory runs in each worker before it serves: everything it needs must be "
        "there (STORE_URL is read when the app starts, from the environment).",
    ),
    Rule(
        "route-missing",
        "serve GET /healthz, GET /readyz and POST /visits",
        "the status each path answered",
        "add each route in `create_app`.",
    ),
    Rule(
        "liveness-asks",
        "/healthz answers 200 and asks nothing outside the process",
        "/healthz's status while the store failed, and the requests the store got meanwhile",
        "liveness says only that the process can answer: return 200 without asking the "
        "store (readiness asks it).",
    ),
    Rule(
        "readiness-lies",
        "/readyz answers 503 when the store fails, 200 when it answers",
        "/readyz's status while the store answered, and while it answered 503",
        "ask the store's /ping in /readyz, and answer 503 unless it answered 200.",
    ),
    Rule(
        "readiness-hangs",
        "/readyz answers within 1 s even when the store hangs",
        "how long /readyz took while the store never answered",
        "give the store request its own short timeout "
        "(`timeout=aiohttp.ClientTimeout(total=0.5)`) and answer 503 on `TimeoutError`.",
    ),
    Rule(
        "state-per-worker",
        "the count lives in the store: every worker agrees",
        "the counts /visits answered, from which worker, against the store's own count",
        "a variable (or `app[...]`) is one copy per worker process: ask the store "
        "(`POST {STORE_URL}/incr/visits`) and answer its value.",
    ),
    Rule(
        "visits-shape",
        '/visits answers `{"visits": n}`, the number the store gave',
        "the body of each /visits answer",
        'the store answers `{"value": n}`: answer `web.json_response({"visits": n})`.',
    ),
    Rule(
        "store-failure-500",
        "when the store fails, /visits answers 503, never 500",
        "/visits's status while the store answered 503",
        "catch `aiohttp.ClientError` (and `TimeoutError`) around the store call and answer "
        "`web.HTTPServiceUnavailable`.",
    ),
    Rule(
        "session-per-request",
        "one `ClientSession` per worker, shared by its requests",
        "the connections the store's requests came on, counted",
        "a session per request opens a connection per request: open one in `cleanup_ctx` "
        "and keep it in `app[STORE]`.",
    ),
    Rule(
        "unclean-exit",
        "gunicorn's workers start and serve, and after SIGTERM gunicorn exits with status 0",
        "whether both workers answered, gunicorn's exit status and its last lines",
        "a worker that never finishes starting (an `on_startup` that waits forever) or "
        "never stops keeps gunicorn from serving or from exiting.",
    ),
)


async def _module_under_check(task: Task, learner: Any) -> Path:
    if not processes.POSIX:
        raise task.broken("needs-posix", "this check starts processes and sends them SIGTERM, "
                          "which needs a POSIX system.")  # fmt: skip
    path = Path(os.fspath(learner)) if isinstance(learner, (str, os.PathLike)) else None
    if path is None or path.suffix != ".py" or not path.is_file():
        raise task.broken("no-module", f"expected the name of the module's file, got "
                          f"{clip(repr(learner), 60)}.")  # fmt: skip
    return path.resolve()


def _import_problems(task: Task, report: Report) -> None:
    """The verdict for what importing the module did, if it did anything wrong."""
    for event in report.events("import"):
        if event.get("binds"):
            bind = event["binds"][0]
            raise task.broken(
                "bound-at-import",
                f"importing the module bound {bind['address']} (line {bind['where']['line']}: "
                f"`{bind['where']['text']}`), so a worker would serve that instead of the app.",
            )
        opened = event.get("sessions") or event.get("connects")
        if opened:
            what = "made a ClientSession" if event.get("sessions") else "opened a connection"
            where = opened[0]["where"]
            raise task.broken(
                "opened-at-import",
                f"importing the module {what} (line {where['line']}: `{where['text']}`): "
                "it belongs to no worker's event loop.",
            )
        if event.get("threads"):
            raise task.broken(
                "opened-at-import",
                f"importing the module started a thread ({event['threads'][0]}).",
            )
        if not event.get("ok"):
            error = event.get("error") or {}
            if error.get("not_implemented"):
                raise NotImplementedError
            raise task.broken("import-failed", f"importing the module raised {_quote(error)}.")


def _factory_problems(report: Report) -> None:
    for event in report.events("factory"):
        kind = event.get("kind")
        if kind == "missing":
            raise DEPLOYABLE.broken("factory-not-async", "the module has no `create_app`.")
        if kind not in ("coroutine-function", "application"):
            raise DEPLOYABLE.broken(
                "factory-not-async",
                f"`create_app` is a {kind}, not an `async def`: aiohttp's gunicorn worker "
                "refuses it, and no worker boots.",
            )
        error = event.get("error")
        if error:
            if error.get("not_implemented"):
                raise NotImplementedError
            raise DEPLOYABLE.broken("factory-raised", f"`await create_app()` raised "
                                    f"{_quote(error)}.")  # fmt: skip
        if not event.get("ok"):
            raise DEPLOYABLE.broken(
                "factory-returned",
                f"`await create_app()` returned {event.get('returned')}, not a web.Application.",
            )


def _evidence(report: Report) -> str:
    """``: <the last exception logged, with its line>``, or ''."""
    errors = [e["error"] for e in report.events("logged") if e.get("error")]
    return f": the worker logged {_quote(errors[-1])}" if errors else ""


def _logged_problems(task: Task, report: Report) -> None:
    logged = report.events("logged")
    _not_implemented(logged)
    for event in logged:
        error = event.get("error")
        what = _quote(error) if error else clip(event.get("message", ""), 120)
        raise task.broken("logged-error", f"a process logged {what}.")


def _session_problems(task: Task, report: Report) -> None:
    for event in report.events("sessions"):
        if event.get("open"):
            where = event["open"][0] or {}
            line = f" (made at line {where['line']}: `{where['text']}`)" if where else ""
            count = plural(len(event["open"]), "session")
            raise task.broken(
                "session-left-open",
                f"when the app's clean-up had run, {count} of the module's were still open{line}.",
            )


@dataclass
class _Answer:
    status: int
    body: Any
    pid: str | None
    seconds: float


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    timeout: float,
    report: Report | None = None,
) -> _Answer:
    """One request; a 500 from a stub's NotImplementedError (in ``report``) is "to do"."""
    answer = await _timed_request(session, method, url, timeout)
    if answer.status == 500 and report is not None:
        _not_implemented(report.events("logged"))
    return answer


async def _timed_request(
    session: aiohttp.ClientSession, method: str, url: str, timeout: float
) -> _Answer:
    started = time.monotonic()
    async with session.request(
        method, url, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = clip(text, 80)
        return _Answer(response.status, body, response.headers.get(PID_HEADER),
                       time.monotonic() - started)  # fmt: skip


def _why_not_ready(report: Report) -> None:
    """Turn what gunicorn's workers reported into the verdict for a server that is not up."""
    _import_problems(DEPLOYABLE, report)
    _factory_problems(report)
    _logged_problems(DEPLOYABLE, report)


def _probe_env(module: Path, report_path: Path, store_url: str, **extra: str) -> dict[str, str]:
    return {"PROBE_MODULE": str(module), "PROBE_REPORT": str(report_path),
            "STORE_URL": store_url, **extra}  # fmt: skip


@contextlib.asynccontextmanager
async def _store() -> AsyncIterator[tuple[Store, str]]:
    store = Store()
    with captured_server_errors():
        async with serve(store.app()) as url:
            try:
                yield store, url
            finally:
                store.set_mode("up")  # let anything still hanging go


async def _first_answers(
    session: aiohttp.ClientSession, url: str, gunicorn: processes.ServerProcess, report: Report
) -> dict[str, _Answer]:
    """GET /healthz until every worker has answered once; the answers, by PID."""
    by_pid: dict[str, _Answer] = {}
    give_up = time.monotonic() + stretched(10)
    while len(by_pid) < WORKERS:
        if gunicorn.returncode is not None or time.monotonic() > give_up:
            _why_not_ready(report)
            if gunicorn.returncode is not None:
                state = f"exited with status {gunicorn.returncode}"
            else:
                state = f"had {plural(len(by_pid), 'worker')} answering after {stretched(10):g} s"
            raise DEPLOYABLE.broken(
                "unclean-exit", f"gunicorn {state}; its last line: {_last_line(gunicorn)}"
            )
        try:
            answer = await _request(session, "GET", url + "/healthz", stretched(5), report)
        except (aiohttp.ClientConnectionError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        _why_not_ready(report)
        if answer.pid is None:
            await asyncio.sleep(0.05)
            continue
        by_pid.setdefault(answer.pid, answer)
    return by_pid


GUNICORN_PREFIX = re.compile(r"^(\[[^\]]*\] )+")


def _without_prefix(line: str) -> str:
    """A gunicorn log line without its date, PID and level."""
    return clip(GUNICORN_PREFIX.sub("", line), 120)


def _last_line(server: processes.ServerProcess) -> str:
    lines = [line for line in server.lines() if line.strip()]
    return _without_prefix(lines[-1]) if lines else "(nothing)"


def _expect_route(answer: _Answer, method: str, path: str) -> None:
    if answer.status in (404, 405):
        raise DEPLOYABLE.broken("route-missing", f"{method} {path} answered {answer.status}.")


@check(DEPLOYABLE, timeout=45, takes_path=True)
async def deployable(module: Any, server: Any, spy: Any) -> str:
    """The module under gunicorn with two workers, against the check's store."""
    path = await _module_under_check(DEPLOYABLE, module)
    rng = random.Random(SEED + 1)
    graceful = math.ceil(stretched(GRACEFUL_SECONDS))  # gunicorn takes whole seconds
    with tempfile.TemporaryDirectory(prefix="check20-") as folder:
        report = Report(Path(folder) / "report.jsonl")
        async with _store() as (store, store_url):
            command = processes.gunicorn_command(
                "app_probe:gunicorn_app", workers=WORKERS,
                options=["--pythonpath", str(PROBE.parent), "--graceful-timeout", f"{graceful:g}"],
            )  # fmt: skip
            # PORT as a platform sets it: a run_app left outside the __main__ guard binds it.
            env = _probe_env(path, report.path, store_url, PORT=str(_free_port()))
            try:
                async with processes.run_process(
                    command, ready=processes.GUNICORN_READY, cwd=path.parent, env=env,
                    ready_timeout=stretched(20),
                ) as gunicorn:  # fmt: skip
                    assert gunicorn.url is not None
                    summary = await _exercise_workers(gunicorn, gunicorn.url, store, report, rng)
                    gunicorn.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                    status = await gunicorn.wait(timeout=graceful + stretched(10))
                    stopping = time.monotonic() - signalled
            except processes.ServerFailed as failed:
                _why_not_ready(report)
                raise DEPLOYABLE.broken(
                    "unclean-exit", f"gunicorn did not start: {clip(str(failed), 200)}"
                ) from None
            _session_problems(DEPLOYABLE, report)
            _logged_problems(DEPLOYABLE, report)
            if status != 0:
                raise DEPLOYABLE.broken(
                    "unclean-exit",
                    f"after SIGTERM gunicorn exited with status {status}; its last line: "
                    f"{_last_line(gunicorn)}",
                )
            if stopping >= graceful - 0.25:  # gunicorn kills what is left then, silently
                raise DEPLOYABLE.broken(
                    "unclean-exit",
                    f"with no request in flight, gunicorn took {stopping:.1f} s to exit after "
                    f"SIGTERM: its whole --graceful-timeout ({graceful:g} s), after which it "
                    "kills the workers that have not stopped.",
                )
    return summary


async def _exercise_workers(
    gunicorn: processes.ServerProcess,
    url: str,
    store: Store,
    report: Report,
    rng: random.Random,
) -> str:
    fresh = aiohttp.TCPConnector(force_close=True)  # a new connection a request: both workers
    async with aiohttp.ClientSession(connector=fresh) as session:
        first = await _first_answers(session, url, gunicorn, report)
        for answer in first.values():
            _expect_route(answer, "GET", "/healthz")
            if answer.status != 200:
                raise DEPLOYABLE.broken(
                    "liveness-asks", f"GET /healthz answered {answer.status} ({answer.body}) "
                    "while the store was up."
                )  # fmt: skip
        ready = await _request(session, "GET", url + "/readyz", stretched(5), report)
        _expect_route(ready, "GET", "/readyz")
        if ready.status != 200:
            raise DEPLOYABLE.broken(
                "readiness-lies", f"GET /readyz answered {ready.status} while the store "
                f"answered /ping with 200 ({plural(store.count('/ping'), 'ping')} reached "
                f"it){_evidence(report)}."
            )  # fmt: skip
        _logged_problems(DEPLOYABLE, report)

        store.set_mode("failing")
        pings_before = len(store.records)
        live = [
            await _request(session, "GET", url + "/healthz", stretched(5), report) for _ in range(3)
        ]
        asked = store.records[pings_before:]
        if any(a.status != 200 for a in live) or asked:
            statuses = ", ".join(str(a.status) for a in live)
            what = f"and the store got {plural(len(asked), 'request')} from it" if asked else ""
            raise DEPLOYABLE.broken(
                "liveness-asks", f"while the store failed, GET /healthz answered {statuses} "
                f"{what}".rstrip() + "."
            )  # fmt: skip
        down = await _request(session, "GET", url + "/readyz", stretched(5), report)
        if down.status != 503:
            raise DEPLOYABLE.broken(
                "readiness-lies", f"GET /readyz answered {down.status} while the store answered "
                f"every request with 503{_evidence(report)}."
            )  # fmt: skip
        _logged_problems(DEPLOYABLE, report)
        visits_before = store.count("/incr/visits")
        failing = await _request(session, "POST", url + "/visits", stretched(5), report)
        _expect_route(failing, "POST", "/visits")
        if failing.status != 503:
            if store.count("/incr/visits") == visits_before:
                raise DEPLOYABLE.broken(
                    "state-per-worker", f"POST /visits answered {failing.status} "
                    f"({clip(str(failing.body), 60)}) without asking the store."
                )  # fmt: skip
            raise DEPLOYABLE.broken(
                "store-failure-500", f"while the store answered 503, POST /visits answered "
                f"{failing.status}{_evidence(report)}."
            )  # fmt: skip
        _logged_problems(DEPLOYABLE, report)

        store.set_mode("hanging")
        limit = stretched(READY_WITHIN_SECONDS)
        try:
            hung = await _request(session, "GET", url + "/readyz", limit + 1.0, report)
        except TimeoutError:
            hung = None
        store.set_mode("up")
        if hung is None or hung.seconds > limit:
            took = "no answer" if hung is None else f"{hung.seconds:.1f} s"
            raise DEPLOYABLE.broken(
                "readiness-hangs", f"while the store did not answer, GET /readyz took {took} "
                f"(at most {READY_WITHIN_SECONDS:g} s: a probe gives up then)."
            )  # fmt: skip
        if hung.status != 503:
            raise DEPLOYABLE.broken(
                "readiness-lies", f"GET /readyz answered {hung.status} while the store hung."
            )
        _logged_problems(DEPLOYABLE, report)

        # The shared count, over fresh connections, until both workers have counted.
        counted: list[tuple[int | None, str | None]] = []
        pids: set[str | None] = set()
        start = store.counts["visits"]
        store_ports_before = len(store.records)
        wanted = rng.randint(9, 13)
        while len(counted) < wanted or (len(pids) < WORKERS and len(counted) < 40):
            answer = await _request(session, "POST", url + "/visits", stretched(5), report)
            if answer.status != 200:
                _logged_problems(DEPLOYABLE, report)
                raise DEPLOYABLE.broken(
                    "store-failure-500" if answer.status == 500 else "state-per-worker",
                    f"POST /visits answered {answer.status} ({clip(str(answer.body), 60)}) "
                    "while the store was up.",
                )
            value = answer.body.get("visits") if isinstance(answer.body, dict) else None
            if not isinstance(value, int):
                raise DEPLOYABLE.broken(
                    "visits-shape",
                    f"POST /visits answered {clip(str(answer.body), 60)}, with no whole number "
                    "under `visits`.",
                )
            counted.append((value, answer.pid))
            pids.add(answer.pid)
        expected = list(range(start + 1, start + len(counted) + 1))
        got = [value for value, _ in counted]
        if got != expected:
            per_pid = collections.defaultdict(list)
            for value, pid in counted:
                per_pid[pid].append(value)
            shown = "; ".join(f"worker {pid}: {values[:6]}" for pid, values in per_pid.items())
            raise DEPLOYABLE.broken(
                "state-per-worker",
                f"{len(counted)} POST /visits in a row answered {shown}, while the store's count "
                f"went {start + 1}..{start + len(counted)}"
                f"{'' if store.counts['visits'] > start else ' (it was never asked)'}.",
            )
        ports = {r.port for r in store.records[store_ports_before:] if r.path == "/incr/visits"}
        if len(ports) > WORKERS + 2:
            raise DEPLOYABLE.broken(
                "session-per-request",
                f"the store got {len(counted)} requests for /visits over {len(ports)} different "
                f"connections, from {WORKERS} workers.",
            )
        _logged_problems(DEPLOYABLE, report)
    return (
        f"under gunicorn, both workers answered; importing the module opened nothing; "
        f"/healthz stayed 200 without asking the store, /readyz said 200, then 503 when the "
        f"store failed and within {READY_WITHIN_SECONDS:g} s when it hung; every visit was "
        "counted once by the store, whichever worker answered, each worker on one session; "
        "a store failure was a 503; after SIGTERM, exit status 0 and every session closed."
    )


# --- task 3: SIGTERM with requests in flight ------------------------------------------------

GRACEFUL_STOP = Task(
    "graceful_stop",
    *_module_rules(),
    Rule(
        "main-missing",
        "`python service.py` serves the app with `web.run_app`",
        "whether the process listened, or what it did instead",
        'under `if __name__ == "__main__":` call `web.run_app(create_app(), ...)`: '
        "run_app accepts the coroutine a factory returns.",
    ),
    Rule(
        "port-ignored",
        "listen on the port the environment variable PORT names",
        "the ports the process listened on, against the one the check gave",
        '`port=int(os.environ["PORT"])`.',
    ),
    Rule(
        "binds-everywhere",
        "listen on 127.0.0.1 unless HOST says otherwise",
        "the address the process listened on",
        '`host=os.environ.get("HOST", "127.0.0.1")`: 0.0.0.0 serves every network.',
    ),
    Rule(
        "signal-kills",
        "SIGTERM stops the app gracefully and the process exits with status 0",
        "the exit status after SIGTERM (-15: killed by the signal)",
        "leave run_app's signal handling on (`handle_signals=True`, the default); a SIGTERM "
        "handler of your own must stop the app gracefully, never end the process.",
    ),
    Rule(
        "cut-in-flight",
        "requests in flight at SIGTERM complete (they need up to 2 s more)",
        "what each of the requests waiting on the store at the signal got",
        "`shutdown_timeout` is how long run_app (or your AppRunner) waits for them: a few "
        "seconds more than your slowest request; with your own runner, `await "
        "runner.cleanup()` after the signal, before the loop ends.",
    ),
    Rule(
        "closed-too-early",
        "what handlers use stays open until they are done",
        "the in-flight requests' failure, and the error logged for it",
        "`on_shutdown` runs *before* run_app waits for requests in flight: close the session "
        "in `cleanup_ctx` (or `on_cleanup`), which runs after.",
    ),
)


def _listening(pid: int) -> list[tuple[str, int]]:
    try:
        process = psutil.Process(pid)
        connections = process.net_connections(kind="tcp")
    except psutil.Error:
        return []
    return [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@check(GRACEFUL_STOP, timeout=40, takes_path=True)
async def graceful_stop(module: Any, server: Any, spy: Any) -> str:
    """``python service.py``; SIGTERM while requests wait on a slow store."""
    path = await _module_under_check(GRACEFUL_STOP, module)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="check20-") as folder:
        report = Report(Path(folder) / "report.jsonl")
        async with _store() as (store, store_url):
            env = _probe_env(path, report.path, store_url, PORT=str(port))
            env.pop("HOST", None)
            command = [sys.executable, str(PROBE), "main"]
            async with processes.run_process(command, ready=None, cwd=path.parent,
                                             env=env) as script:  # fmt: skip
                listening = await _wait_listening(script, report, path.name, port)
                ports = sorted({p for _, p in listening})
                if port not in ports:
                    shown = ", ".join(map(str, ports))
                    raise GRACEFUL_STOP.broken(
                        "port-ignored",
                        f"the process listened on port {shown}, not on {port}, the one PORT gave.",
                    )
                hosts = sorted({h for h, p in listening if p == port})
                if any(not ipaddress.ip_address(h).is_loopback for h in hosts):
                    raise GRACEFUL_STOP.broken(
                        "binds-everywhere", f"the process listened on {', '.join(hosts)}, "
                        "with HOST unset."
                    )  # fmt: skip
                url = f"http://127.0.0.1:{port}"
                outcomes, status, exited_after = await _stop_while_busy(script, url, store, report)
        _not_implemented(report.events("logged"))
        failed = [(o, at) for o, at in outcomes if not o.startswith("200")]
        if status == -signal.SIGTERM:
            raise GRACEFUL_STOP.broken(
                "signal-kills",
                f"SIGTERM killed the process (exit status {status}), so "
                f"{len(failed)} of {IN_FLIGHT} requests in flight were cut.",
            )
        if failed:
            kinds = ", ".join(sorted({o for o, _ in failed}))
            early = [e for e in report.events("session-closed") if e.get("cut")]
            if early:
                where = early[0].get("where") or {}
                line = f" (line {where['line']}, in {where['function']}: `{where['text']}`)"
                raise GRACEFUL_STOP.broken(
                    "closed-too-early",
                    f"{len(failed)} of {IN_FLIGHT} requests in flight at SIGTERM failed "
                    f"({kinds}): the session they used was closed while "
                    f"{plural(early[0]['cut'], 'request')} of theirs still waited on the store"
                    f"{line if where else ''}.",
                )
            raise GRACEFUL_STOP.broken(
                "cut-in-flight",
                f"{len(failed)} of {IN_FLIGHT} requests waiting on the store at SIGTERM did "
                f"not complete ({kinds}); the process exited "
                f"{exited_after:.1f} s after the signal, with status {status}.",
            )
        if status != 0:
            raise GRACEFUL_STOP.broken(
                "signal-kills",
                f"after SIGTERM the process exited with status {status}"
                + (" (killed by SIGTERM)" if status == -signal.SIGTERM else "")
                + ".",
            )
        _session_problems(GRACEFUL_STOP, report)
        _logged_problems(GRACEFUL_STOP, report)
    return (
        f"`python {path.name}` listened on 127.0.0.1 at the port PORT gave; SIGTERM came "
        f"while {IN_FLIGHT} requests waited on a slow store: all {IN_FLIGHT} completed, then "
        "the process exited with status 0, its session closed and nothing logged."
    )


async def _wait_listening(
    script: processes.ServerProcess, report: Report, script_name: str, port: int
) -> list[tuple[str, int]]:
    give_up = time.monotonic() + stretched(15)
    while True:
        listening = _listening(script.pid)
        if listening:
            return listening
        if script.returncode is not None or time.monotonic() > give_up:
            for event in report.events("main"):
                error = event.get("error")
                if error and error.get("not_implemented"):
                    raise NotImplementedError
                if error:
                    # A port of its own that was taken: the address is in the error's text.
                    bound = re.search(r"address \('[^']*', (\d+)\)", error["text"])
                    if bound and int(bound.group(1)) != port:
                        raise GRACEFUL_STOP.broken(
                            "port-ignored",
                            f"`python {script_name}` tried port {bound.group(1)}, not {port}, "
                            f"the one PORT gave: {_quote(error)}.",
                        )
                    raise GRACEFUL_STOP.broken(
                        "import-failed", f"`python {script_name}` raised {_quote(error)}."
                    )
            _logged_problems(GRACEFUL_STOP, report)
            if script.returncode is not None:
                tail = " | ".join(script.lines()[-2:])
                said = f": {clip(tail, 120)}" if tail else "."
                raise GRACEFUL_STOP.broken(
                    "main-missing",
                    f"`python {script_name}` exited with status {script.returncode} without "
                    f"listening{said}",
                )
            raise GRACEFUL_STOP.broken(
                "main-missing", f"`python {script_name}` was running but listened on no port "
                f"after {stretched(15):g} s."
            )  # fmt: skip
        await asyncio.sleep(0.05)


async def _stop_while_busy(
    script: processes.ServerProcess, url: str, store: Store, report: Report
) -> tuple[list[tuple[str, float]], int, float]:
    store.slow = IN_FLIGHT_SECONDS
    before = store.count("/incr/visits")
    async with aiohttp.ClientSession(url) as session:
        healthy = await _request(session, "GET", url + "/healthz", stretched(5), report)
        if healthy.status != 200:
            _logged_problems(GRACEFUL_STOP, report)
            raise GRACEFUL_STOP.broken(
                "main-missing", f"GET /healthz answered {healthy.status}: is it the app of "
                "task 2 that run_app serves?"
            )  # fmt: skip

        async def one() -> tuple[str, float]:
            """What one request got, and when (the wall clock: the probe's clock too)."""
            try:
                answer = await _request(session, "POST", url + "/visits", stretched(15), report)
            except aiohttp.ClientError as exc:
                return type(exc).__name__, time.time()
            except TimeoutError:
                return "no answer", time.time()
            return str(answer.status), time.time()

        tasks = [asyncio.create_task(one()) for _ in range(IN_FLIGHT)]
        give_up = time.monotonic() + stretched(5)
        while store.count("/incr/visits") - before < IN_FLIGHT and time.monotonic() < give_up:
            if all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.02)
        arrived = store.count("/incr/visits") - before
        if arrived < IN_FLIGHT:
            done = [t.result()[0] for t in tasks if t.done()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            _logged_problems(GRACEFUL_STOP, report)
            raise GRACEFUL_STOP.broken(
                "main-missing", f"{IN_FLIGHT} POST /visits reached the store only {arrived} times "
                f"({', '.join(done) or 'still waiting'}): is it the app of task 2?"
            )  # fmt: skip
        script.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        outcomes = list(await asyncio.gather(*tasks))
    try:
        status = await script.wait(timeout=stretched(15))
    except TimeoutError:
        status = -1
    store.slow = 0.0
    return outcomes, status, time.monotonic() - signalled
