"""Checks for exercise 02, connection pooling.

In the notebook: ``from local_server.checks import connection_pooling as check``.

The checks watch the pool from both sides: the server counts the requests it is handling at
once (per server, and two servers merged into one timeline), and a ``TraceConfig`` on the
session a check hands over records what the client's pool did (connections created, reused,
requests queued for a free connection, bodies read).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..runner import LocalServer, start_server
from ..stats import StatsSnapshot
from .harness import (
    Mistake,
    SessionSpy,
    call_async,
    check,
    expect_one_result_per_url,
    peak_overlap,
    plural,
)

DELAY_SECONDS = 0.05

# Task 1: two servers are two hosts to the connector (another port is another host).
POOL_LIMIT = 3
POOL_LIMIT_PER_HOST = 2
URLS_PER_HOST = 6

# Task 2: the application's shared session has a pool of 10; the API allows 4 at once.
SHARED_POOL_LIMIT = 10
MAX_IN_FLIGHT = 4
BOUNDED_URL_COUNT = 16

# Task 3: large files, so a response nobody reads or releases never reaches its end.
STATUS_POOL_LIMIT = 2
BIG_FILE_BYTES = 16 * 1024 * 1024
STATUS_PATHS = (
    f"/files/{BIG_FILE_BYTES}?name=a.bin",
    f"/files/{BIG_FILE_BYTES}?name=b.bin",
    "/status/404",
    f"/files/{BIG_FILE_BYTES}?name=c.bin",
    "/status/503",
    f"/files/{BIG_FILE_BYTES}?name=d.bin",
)
EXPECTED_STATUSES = [200, 200, 404, 200, 503, 200]
# Correct code answers in milliseconds; a starved pool never answers.
STARVED_AFTER_SECONDS = 1.0
# Reading more than this of the files counts as downloading them.
DOWNLOADED_BYTES = 1024 * 1024


# --- Watching the client's pool ------------------------------------------------------------


@dataclass
class PoolWatch:
    """What a session's pool did, recorded through ``TraceConfig`` signals."""

    requests: int = 0
    created: int = 0
    reused: int = 0
    queued: int = 0
    waiting: int = 0  # requests queued for a connection and not yet given one
    body_bytes: int = 0
    responses: list[aiohttp.ClientResponse] = field(default_factory=list)

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def request_start(*_: Any) -> None:
            self.requests += 1

        async def create_start(*_: Any) -> None:
            self.created += 1

        async def reuse(*_: Any) -> None:
            self.reused += 1

        async def queued_start(*_: Any) -> None:
            self.queued += 1
            self.waiting += 1

        async def queued_end(*_: Any) -> None:
            self.waiting -= 1

        async def chunk(_session: Any, _ctx: Any, params: Any) -> None:
            self.body_bytes += len(params.chunk)

        async def request_end(_session: Any, _ctx: Any, params: Any) -> None:
            self.responses.append(params.response)

        config.on_request_start.append(request_start)
        config.on_connection_create_start.append(create_start)
        config.on_connection_reuseconn.append(reuse)
        config.on_connection_queued_start.append(queued_start)
        config.on_connection_queued_end.append(queued_end)
        config.on_response_chunk_received.append(chunk)
        config.on_request_end.append(request_end)
        return config

    def release_all(self) -> None:
        """Give back every connection the learner's responses still hold."""
        for response in self.responses:
            response.close()


async def run_learner(task: str, learner: Any, *args: Any, within: float | None = None) -> Any:
    """Call the learner's coroutine function; afterwards stop any task it left running.

    Returns the result, or raises what the learner raised; ``within`` seconds exceeded
    raises ``TimeoutError`` after the learner's work has been cancelled.
    """
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(call_async(task, learner, *args))
    try:
        done, _ = await asyncio.wait({run}, timeout=within)
        if not done:
            raise TimeoutError
        return run.result()
    finally:
        strays = [task for task in asyncio.all_tasks() - before if task is not run]
        for stray in [run, *strays]:
            stray.cancel()
        await asyncio.gather(run, *strays, return_exceptions=True)


def max_in_flight_together(snapshots: Sequence[StatsSnapshot]) -> int:
    """The most requests the servers were handling at the same moment, all servers together.

    Each server's times count from its last ``reset_stats()``; the check resets them one
    right after the other, microseconds apart, far less than a request takes to start.
    """
    return peak_overlap(
        (record.start, math.inf if record.end is None else record.end)
        for snapshot in snapshots
        for record in snapshot.timeline
    )


def _expect_json_in_order(task: str, bodies: Any, count: int) -> None:
    bodies = expect_one_result_per_url(task, bodies, count, "dicts")
    first = bodies[0]
    if isinstance(first, aiohttp.ClientResponse):
        raise Mistake(
            "returned-responses",
            f"{task} returned response objects, not their bodies.",
            "read each body inside its `async with` block: `return await response.json()`.",
        )
    if not all(isinstance(body, dict) for body in bodies):
        raise Mistake(
            "not-json",
            f"{task} returned a list of {type(first).__name__}; expected parsed JSON (dicts).",
            "use `await response.json()`.",
        )
    items = [body.get("args", {}).get("item") for body in bodies]
    if items != [str(i) for i in range(count)]:
        raise Mistake(
            "wrong-order",
            "the bodies came back in a different order than the URLs.",
            "asyncio.gather returns results in the order of its arguments; "
            "asyncio.as_completed yields them as they finish.",
        )


# --- Task 1: connector limits --------------------------------------------------------------


@check("fetch_pooled")
async def fetch_pooled(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_pooled(urls, limit, limit_per_host)``: the bounds hold and are reached, reused."""
    second = start_server()
    try:
        hosts = [server, second]
        urls = [
            f"{host.url}/delay/{DELAY_SECONDS}?item={n * URLS_PER_HOST + i}"
            for n, host in enumerate(hosts)
            for i in range(URLS_PER_HOST)
        ]
        for host in hosts:
            host.reset_stats()
        bodies = await run_learner("fetch_pooled", learner, urls, POOL_LIMIT, POOL_LIMIT_PER_HOST)
        snapshots = [host.stats() for host in hosts]
    finally:
        await asyncio.to_thread(second.stop)
    _expect_json_in_order("fetch_pooled", bodies, len(urls))
    if spy.left_open:
        raise Mistake(
            "session-left-open",
            "the session was still open after fetch_pooled returned.",
            "use `async with aiohttp.ClientSession(connector=...) as session:`; closing the "
            "session closes its connector too.",
        )
    _judge_bounds(snapshots)
    _judge_reuse(snapshots)
    return (
        f"{len(urls)} bodies in order; never more than {POOL_LIMIT} requests in flight in "
        f"total or {POOL_LIMIT_PER_HOST} per host, both limits reached, and each host's "
        "connections were reused."
    )


def _judge_bounds(snapshots: Sequence[StatsSnapshot]) -> None:
    together = max_in_flight_together(snapshots)
    per_host = max(snapshot.max_in_flight for snapshot in snapshots)
    seen = (
        f"the two servers saw up to {together} requests at once together and {per_host} "
        "on one server"
    )
    allowed = f"the task allows {POOL_LIMIT} in total and {POOL_LIMIT_PER_HOST} per host"
    if together > POOL_LIMIT and per_host > POOL_LIMIT_PER_HOST:
        raise Mistake(
            "no-bound",
            f"{seen}; {allowed}.",
            "give the session a connector: `aiohttp.TCPConnector(limit=limit, "
            "limit_per_host=limit_per_host)`. The default pool allows 100 at once.",
        )
    if together > POOL_LIMIT:
        raise Mistake(
            "no-total-bound",
            f"{seen}; {allowed}: the total was not bounded.",
            "limit_per_host bounds each host separately; add `limit=limit` to bound the sum.",
        )
    if per_host > POOL_LIMIT_PER_HOST:
        raise Mistake(
            "no-per-host-bound",
            f"{seen}; {allowed}: one host got more than its share.",
            "`limit` bounds the total only; add `limit_per_host=limit_per_host`.",
        )
    if together == 1:
        raise Mistake(
            "sequential",
            "the servers received the requests one at a time.",
            "awaiting each request in a loop waits for one before starting the next: start "
            "them all with `asyncio.gather` and let the connector's limits do the bounding.",
        )
    if together < POOL_LIMIT:
        raise Mistake(
            "bound-never-reached",
            f"at most {together} requests were in flight at once; the task allows "
            f"{POOL_LIMIT}, so the job took longer than it needed.",
            "pass the limits you are given to the connector, `limit=limit, "
            "limit_per_host=limit_per_host`, and start every request at once with "
            "`asyncio.gather`: the connector holds back the rest.",
        )


def _judge_reuse(snapshots: Sequence[StatsSnapshot]) -> None:
    opened = [snapshot.connections_opened for snapshot in snapshots]
    if max(opened) > POOL_LIMIT_PER_HOST:
        raise Mistake(
            "connections-not-reused",
            f"the servers saw {' and '.join(map(str, opened))} TCP connections for "
            f"{URLS_PER_HOST} requests each, where {POOL_LIMIT_PER_HOST} per host could "
            "carry them all.",
            "share one session and one connector for the whole job, without "
            "`force_close=True`, so a finished request leaves its connection in the pool.",
        )


# --- Task 2: a semaphore -------------------------------------------------------------------


@check("fetch_bounded")
async def fetch_bounded(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_bounded(session, urls, max_in_flight)``: at most, and at least once exactly, N."""
    watch = PoolWatch()
    urls = [f"{server.url}/delay/{DELAY_SECONDS}?item={i}" for i in range(BOUNDED_URL_COUNT)]
    connector = aiohttp.TCPConnector(limit=SHARED_POOL_LIMIT)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[watch.trace_config()]
    ) as session:
        try:
            bodies = await run_learner("fetch_bounded", learner, session, urls, MAX_IN_FLIGHT)
        finally:
            watch.release_all()
        closed_by_learner = session.closed
    _expect_json_in_order("fetch_bounded", bodies, len(urls))
    if watch.requests < len(urls):
        raise Mistake(
            "not-the-given-session",
            f"only {watch.requests} of the {len(urls)} requests went through the session "
            "you were given.",
            "send every request with `session.get(...)` on the session passed in: it is the "
            "application's shared pool. Bound the work with `asyncio.Semaphore` instead of "
            "making a session with a smaller pool.",
        )
    if closed_by_learner:
        raise Mistake(
            "closed-shared-session",
            "the session you were given was closed when fetch_bounded returned.",
            "the caller owns the session, so the caller closes it: do not use `async with "
            "session:` on a session you were handed.",
        )
    _judge_semaphore_bound(server.stats())
    return (
        f"{len(urls)} bodies in order through the shared session, never more than "
        f"{MAX_IN_FLIGHT} requests in flight, and the bound was reached."
    )


def _judge_semaphore_bound(stats: StatsSnapshot) -> None:
    most = stats.max_in_flight
    if most > MAX_IN_FLIGHT:
        raise Mistake(
            "no-bound",
            f"the server saw {most} requests at once; the task allows {MAX_IN_FLIGHT}.",
            f"create one `asyncio.Semaphore({MAX_IN_FLIGHT})` before starting the tasks and "
            "make every request `async with` it. A semaphore created inside each task bounds "
            "nothing, and requests beyond the pool's size wait in its queue, where the wait "
            "counts against the connect timeout (ConnectionTimeoutError).",
        )
    if most == 1:
        raise Mistake(
            "sequential",
            "the server received the requests one at a time.",
            "start every request with `asyncio.gather` and let the semaphore hold back all "
            f"but {MAX_IN_FLIGHT}.",
        )
    if most < MAX_IN_FLIGHT:
        raise Mistake(
            "bound-never-reached",
            f"at most {most} requests were in flight at once; the task allows "
            f"{MAX_IN_FLIGHT}, so the job took longer than it needed.",
            "size the semaphore with the `max_in_flight` argument.",
        )


# --- Task 3: release every response --------------------------------------------------------


@check("statuses")
async def statuses(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``statuses(session, urls)``: every status, bodies not downloaded, connections released."""
    watch = PoolWatch()
    urls = [f"{server.url}{path}" for path in STATUS_PATHS]
    connector = aiohttp.TCPConnector(limit=STATUS_POOL_LIMIT)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[watch.trace_config()]
    ) as session:
        try:
            result = await run_learner(
                "statuses", learner, session, urls, within=STARVED_AFTER_SECONDS
            )
        except TimeoutError:
            _judge_starved_pool(watch, server.stats())
            raise
        finally:
            watch.release_all()
        closed_by_learner = session.closed
    _expect_statuses(result)
    if watch.requests < len(urls):
        raise Mistake(
            "not-the-given-session",
            f"only {watch.requests} of the {len(urls)} requests went through the session "
            "you were given.",
            "send every request with the session passed in: its small pool is what the task "
            "is about.",
        )
    if closed_by_learner:
        raise Mistake(
            "closed-shared-session",
            "the session you were given was closed when statuses returned.",
            "the caller owns the session: leave it open.",
        )
    if watch.body_bytes > DOWNLOADED_BYTES:
        raise Mistake(
            "bodies-downloaded",
            f"statuses downloaded {watch.body_bytes // (1024 * 1024)} MiB of files to learn "
            f"{len(urls)} status codes.",
            "the status arrives with the headers: leaving `async with session.get(url) as "
            "response:` gives the connection back without reading the body (aiohttp closes "
            "a connection whose body is unread). `session.head(url)` asks for no body at all.",
        )
    return (
        f"{len(urls)} status codes in order from a pool of {STATUS_POOL_LIMIT} connections: "
        "every response was released, and no file was downloaded."
    )


def _judge_starved_pool(watch: PoolWatch, stats: StatsSnapshot) -> None:
    if watch.waiting:
        raise Mistake(
            "responses-unreleased",
            f"after {plural(stats.requests, 'request')} the pool's {STATUS_POOL_LIMIT} "
            f"connections were all held by responses, and the next request waited "
            f"{STARVED_AFTER_SECONDS:g} s for a connection that never came back.",
            "a response keeps its connection until it is released: use `async with "
            "session.get(url) as response:` (or call `response.release()` in a `finally`). "
            "Small bodies hide this bug, because aiohttp frees the connection once a body "
            "has fully arrived; large or slow ones never arrive while nobody reads them.",
        )
    raise Mistake(
        "timeout",
        f"statuses was still running after {STARVED_AFTER_SECONDS:g} s, so the check stopped it.",
        "each status arrives in milliseconds: is something waiting for the whole body?",
    )


def _expect_statuses(result: Any) -> None:
    if isinstance(result, tuple):
        result = list(result)
    if isinstance(result, list) and result and isinstance(result[0], aiohttp.ClientResponse):
        raise Mistake(
            "returned-responses",
            "statuses returned response objects, not their status codes.",
            "return `response.status` from inside the `async with` block.",
        )
    if result != EXPECTED_STATUSES:
        raise Mistake(
            "wrong-statuses",
            f"statuses returned {result!r:.80}; expected {EXPECTED_STATUSES}.",
            "return `response.status` for each URL, in the order of the URLs, and do not "
            "raise for 4xx/5xx: they are answers too.",
        )
