"""Checks for exercise 02, connection pooling.

In the notebook: ``from local_server.checks import connection_pooling as check``.

Each task's rules are declared in a table (``FETCH_POOLED``, ``FETCH_BOUNDED``, ``STATUSES``)
and observed on seeded scenarios served by the check itself, on the check's own loop. The
servers count the requests they are handling at once, in total and per server (another port
is another host to the pool), and a ``Gate`` holds each request until the client's bound has
shown itself, so a peak is the client's own, never a lucky timing; it answers in a shuffled
order, so completion order is never argument order.

- ``fetch_pooled``: limit=3/limit_per_host=2 on two servers (URLs grouped by server), then
  limit=5/limit_per_host=3 on three servers (URLs shuffled), then a job in which one
  response is cut off mid-body;
- ``fetch_bounded``: max_in_flight=4 (16 URLs), 6 (12 URLs), 3 with bodies that arrive
  slowly (a request is in flight until its body has arrived), then a job in which one
  response is cut off; the session's connector is compared before and after;
- ``statuses``: two lists of 16 MiB files and error pages that the server sends slowly (so
  an unreleased error response holds its connection too), through a pool of 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from .client_sessions import (
    CONNECTOR_HINT,
    POLL_SECONDS,
    SETTLE_SECONDS,
    Gate,
    Seen,
    Waiting,
    close_all,
    close_coroutines,
    connector_settings,
    cut_off,
    describe_waiting,
    expect_list,
    expect_propagated,
    learner_tasks,
    orphans,
    run_catching,
    seen_of,
    serve_all,
    shown,
    sockets_open_to,
    tasks_waiting,
    wait_until,
)
from .evidence import clip, learner_line
from .harness import SessionSpy, call_async, check, plural
from .rules import Mistake, Rule, Task

SEED = 0
# The cut response waits for the others to end (at most this long) before it breaks.
CUT_WAIT_SECONDS = 1.0
NOTE = "naïve café ☕ Grüße"


# --- watching a session the check hands over --------------------------------------------


@dataclass
class PoolWatch:
    """What a session the check made did, recorded through ``TraceConfig`` signals."""

    requests: int = 0
    waiting: int = 0  # requests queued for a connection and not yet given one
    responses: list[aiohttp.ClientResponse] = field(default_factory=list)

    def trace_config(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def request_start(*_: Any) -> None:
            self.requests += 1

        async def queued_start(*_: Any) -> None:
            self.waiting += 1

        async def queued_end(*_: Any) -> None:
            self.waiting -= 1

        async def request_end(_session: Any, _ctx: Any, params: Any) -> None:
            self.responses.append(params.response)

        config.on_request_start.append(request_start)
        config.on_connection_queued_start.append(queued_start)
        config.on_connection_queued_end.append(queued_end)
        config.on_request_end.append(request_end)
        return config

    def holding(self) -> list[aiohttp.ClientResponse]:
        """The responses delivered to the learner that still hold their connection."""
        return [r for r in self.responses if r.connection is not None]

    def release_all(self) -> None:
        """Give back every connection the learner's responses still hold."""
        for response in self.responses:
            response.close()


async def stop_strays(before: set[asyncio.Task[Any]]) -> None:
    """Cancel the tasks the learner's code started and left running, and wait for them."""
    strays = [t for t in learner_tasks() if t not in before and t is not asyncio.current_task()]
    for stray in strays:
        stray.cancel()
    await asyncio.gather(*strays, return_exceptions=True)


def _item_app(host: str, gate: Gate, scenario: Any) -> web.Application:
    """``/item/{index}``: JSON naming the host and item, held by the gate; maybe cut or slow."""

    async def item(request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["index"])
        seen = seen_of(request, host)
        try:
            await gate.enter(seen)
            body = scenario.body(host, index)
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            if index == scenario.cut:
                await wait_until(lambda: scenario.others_done(gate, seen), CUT_WAIT_SECONDS)
                gate.leave(seen)
                await cut_off(request, response, body[: len(body) // 2])
                return response
            if scenario.slow:
                # The body follows once no new request has arrived for a while: a client that
                # lets go of its slot when the headers arrive has sent its next one by then.
                loop = asyncio.get_running_loop()
                await response.write(body[:1])
                await wait_until(
                    lambda: loop.time() - gate.last_arrival >= SETTLE_SECONDS, CUT_WAIT_SECONDS
                )
                gate.leave(seen)  # just before the last bytes: see Gate.leave
                await response.write(body[1:])
            else:
                gate.leave(seen)
                await response.write(body)
            await response.write_eof()
            return response
        except ConnectionError:
            return web.Response()
        finally:
            gate.leave(seen)

    app = web.Application()
    app.router.add_get("/item/{index}", item)
    return app


@dataclass
class ItemScenario:
    """A job of JSON URLs on ``hosts`` servers; ``cut``: the item whose body is cut off."""

    rng: random.Random
    count: int
    hosts: int = 1
    grouped: bool = True
    cut: int | None = None
    slow: bool = False
    tokens: dict[tuple[str, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [chr(ord("A") + n) for n in range(self.hosts)]
        if self.grouped:
            self.plan = [names[i * self.hosts // self.count] for i in range(self.count)]
        else:
            self.plan = [names[i % self.hosts] for i in range(self.count)]
            self.rng.shuffle(self.plan)
        self.names = names

    def body(self, host: str, index: int) -> bytes:
        return _json_bytes(self.expected(host, index))

    def expected(self, host: str, index: int) -> dict[str, Any]:
        token = self.tokens.setdefault((host, index), f"{self.rng.getrandbits(32):08x}")
        return {"server": host, "item": index, "token": token, "note": NOTE}

    def urls(self, bases: Sequence[str]) -> list[str]:
        by_name = dict(zip(self.names, bases, strict=True))
        return [f"{by_name[host]}/item/{i}" for i, host in enumerate(self.plan)]

    def expected_bodies(self) -> list[dict[str, Any]]:
        return [self.expected(host, i) for i, host in enumerate(self.plan)]

    def others_done(self, gate: Gate, seen: Seen) -> bool:
        done = [s for s in gate.seen if s is not seen and s.end is not None]
        return len(done) >= self.count - 1


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _judge_json(table: Task, task: str, bodies: Any, expected: list[dict[str, Any]]) -> None:
    bodies = expect_list(table, task, bodies, len(expected), "dicts")
    for body in bodies:
        if isinstance(body, aiohttp.ClientResponse):
            raise table.broken(
                "returned-responses", f"{task} returned response objects, not their bodies."
            )
        if not isinstance(body, dict):
            raise table.broken(
                "not-json",
                f"{task} returned a list of {type(body).__name__}; expected parsed JSON (dicts).",
            )
    if bodies == expected:
        return
    positions = {body["token"]: i for i, body in enumerate(expected)}
    got = [positions.get(body.get("token")) for body in bodies]
    if sorted(p for p in got if p is not None) == list(range(len(expected))):
        raise table.broken(
            "wrong-order",
            "the bodies came back in another order than their URLs; the servers answered in "
            "a shuffled order, so the list follows the order the requests finished.",
        )
    index = next(
        i for i, pair in enumerate(zip(bodies, expected, strict=True)) if pair[0] != pair[1]
    )
    raise table.broken(
        "not-json",
        f"{task}'s item {index} is {clip(repr(bodies[index]), 70)}, not the JSON that URL "
        "answered.",
    )


@dataclass
class PeakSnapshot:
    """What the learner's code was doing at the servers' highest count of requests at once."""

    waiting: list[Waiting] = field(default_factory=list)
    connectors: list[aiohttp.BaseConnector | None] = field(default_factory=list)
    # Where the learner's tasks stood when the count first reached each value.
    at: dict[int, list[Waiting]] = field(default_factory=dict)

    def take(self, gate: Gate) -> None:
        self.waiting = tasks_waiting()
        self.at.setdefault(gate.peak, self.waiting)


# === Task 1: fetch_pooled ================================================================

FETCH_POOLED = Task(
    "fetch_pooled",
    Rule(
        "wrong-return-type",
        "returns the parsed JSON bodies, a list",
        "the type of what fetch_pooled returned",
        "return `await asyncio.gather(...)`: a list, in the order of its arguments.",
    ),
    Rule(
        "wrong-count",
        "returns the parsed JSON bodies (one per URL)",
        "the length of the list, against the number of URLs",
        "return one body per URL, every URL included.",
    ),
    Rule(
        "returned-responses",
        "returns the parsed JSON bodies (`await response.json()`)",
        "the type of each item",
        "read each body inside its `async with` block: `return await response.json()`.",
    ),
    Rule(
        "not-json",
        "returns the parsed JSON bodies (`await response.json()`)",
        "each item compared with the JSON its URL answered",
        "use `await response.json()`, and return the JSON of every URL.",
    ),
    Rule(
        "wrong-order",
        "in the order of `urls`",
        "the servers answer in a shuffled order, never the order the requests came",
        "asyncio.gather returns results in the order of its arguments; "
        "asyncio.as_completed yields them as they finish.",
    ),
    Rule(
        "no-bound",
        "never more than `limit` in total, and never more than `limit_per_host` to one host",
        "the requests the servers handled at once, in total and per server",
        "give the session a connector: `aiohttp.TCPConnector(limit=limit, "
        "limit_per_host=limit_per_host)`. The default pool allows 100 at once.",
    ),
    Rule(
        "no-total-bound",
        "never more than `limit` requests are in flight at once in total",
        "the requests the servers handled at once, all servers together",
        "`limit_per_host` bounds each host separately: `limit=limit` bounds the sum. A "
        "semaphore created inside each task bounds nothing.",
    ),
    Rule(
        "no-per-host-bound",
        "never more than `limit_per_host` to any one host",
        "the requests each server handled at once",
        "`limit` bounds the total only: add `limit_per_host=limit_per_host` (or one "
        "semaphore per host, shared by that host's requests).",
    ),
    Rule(
        "sequential",
        "the requests run concurrently, not one after another",
        "the first request is held until a second one arrives (up to 1 s)",
        "start every request before waiting for any (`asyncio.gather`) and let the "
        "connector's limits hold back the rest.",
    ),
    Rule(
        "ignored-arguments",
        "use the `limit` and `limit_per_host` you are given",
        "a second job with other limits: the peaks match the first job's numbers",
        "build the connector from the arguments: `TCPConnector(limit=limit, "
        "limit_per_host=limit_per_host)`, not from the example's numbers.",
    ),
    Rule(
        "bound-never-reached",
        "both bounds are **used**",
        "the most requests in flight at once, in total and on one server, against the limits",
        "pass the limits you are given to the connector, `limit=limit, "
        "limit_per_host=limit_per_host`, and start every request at once with "
        "`asyncio.gather`: the connector holds back the rest.",
    ),
    Rule(
        "connections-not-reused",
        "connections are reused",
        "the TCP connections each server saw: one per request, beyond `limit_per_host`?",
        "share one session and one connector for the whole job, without "
        "`force_close=True`, so a finished request leaves its connection in the pool.",
    ),
    Rule(
        "session-left-open",
        "the session is closed before the function returns",
        "sessions created by fetch_pooled and still open after it returned, and sockets "
        "still connected to the servers",
        "use `async with aiohttp.ClientSession(connector=...) as session:`; closing the "
        "session closes its connector too.",
    ),
    Rule(
        "session-left-open-on-error",
        "the session is closed, also when a request fails",
        "one response is cut off mid-body: the session must be closed after fetch_pooled raised",
        "`async with aiohttp.ClientSession(...) as session:` closes the session however the "
        "block ends; a `close()` after the requests is skipped when one of them raises.",
    ),
    Rule(
        "error-swallowed",
        "a failed request's error propagates",
        "one response is cut off mid-body: fetch_pooled must raise, not return",
        "let the exception propagate (no `return_exceptions=True`, no `except` that returns "
        "a default).",
    ),
)

# (limit, limit_per_host, servers, URLs, grouped by server)
POOLED_JOBS = ((3, 2, 2, 12, True), (5, 3, 3, 15, False))
EXAMPLE_LIMITS = (3, 2)


@check(FETCH_POOLED)
async def fetch_pooled(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_pooled(urls, limit, limit_per_host)``: the bounds hold and are reached, reused."""
    rng = random.Random(f"{SEED}-fetch_pooled")
    for job, (limit, per_host, hosts, count, grouped) in enumerate(POOLED_JOBS):
        scenario = ItemScenario(rng, count, hosts, grouped)
        gate = Gate(rng, cap=limit)
        before = spy.created
        peak = PeakSnapshot()

        def snapshot(peak: PeakSnapshot = peak, before: int = before, gate: Gate = gate) -> None:
            peak.take(gate)
            peak.connectors = [s.connector for s in spy.sessions[before:]]

        gate.on_peak = snapshot
        apps = [_item_app(name, gate, scenario) for name in scenario.names]
        async with serve_all(apps) as bases:
            try:
                bodies = await call_async(
                    "fetch_pooled", learner, scenario.urls(bases), limit, per_host
                )
            finally:
                await gate.close()
            sockets = sockets_open_to(bases)
            left = orphans(peak.connectors, spy.sessions[before:])
            await close_all(left)
        _judge_json(FETCH_POOLED, "fetch_pooled", bodies, scenario.expected_bodies())
        sessions = spy.sessions[before:]
        if any(not session.closed for session in sessions):
            raise FETCH_POOLED.broken(
                "session-left-open", "the session was still open after fetch_pooled returned."
            )
        if left or sockets:
            still = f" ({plural(sockets, 'connection')} to the servers still open)"
            raise FETCH_POOLED.broken(
                "session-left-open",
                f"the session was closed, but not its connector{still if sockets else ''} "
                "after fetch_pooled returned: a connector made with `connector_owner=False` "
                "is not closed with its session.",
                CONNECTOR_HINT,
            )
        _judge_bounds(gate, scenario, limit, per_host, peak, first_job=job == 0)
        _judge_reuse(gate, scenario, per_host, len(sessions), peak)
    await _pooled_failure(learner, spy, rng)
    return (
        "two jobs (limits 3/2 on two servers, 5/3 on three): bodies in order, never more in "
        "flight than the limits, both limits reached, connections reused, the session "
        "closed; a body cut off mid-way raised, with the session closed too."
    )


def _connectors_text(peak: PeakSnapshot) -> str:
    settings = [connector_settings(c) for c in peak.connectors if c is not None]
    if not settings:
        return ""
    if len(settings) == 1:
        return f" Your session's connector has {settings[0]}."
    common = Counter(settings).most_common(1)[0][0]
    return f" Your code had {len(settings)} sessions open (connectors: {common}, ...)."


def _judge_bounds(
    gate: Gate,
    scenario: ItemScenario,
    limit: int,
    per_host: int,
    peak: PeakSnapshot,
    first_job: bool,
) -> None:
    together = gate.in_flight_at_once()
    on_one = max(gate.peak_by_host.values(), default=0)
    connectors = _connectors_text(peak)
    # aiohttp's connector can let one more through than its own limit: a request that finds
    # an idle pooled connection takes it without checking the limit, while a waiter woken
    # for the same freed slot opens a new one (aio-libs/aiohttp#4936, still so in 3.14.5).
    # A peak above a bound that the learner's only connector enforces is aiohttp's doing.
    own = [c for c in peak.connectors if c is not None]
    connector = own[0] if len(own) == 1 else None
    if connector is not None and connector.limit == limit:
        together = min(together, limit)
    if connector is not None and connector.limit_per_host == per_host:
        on_one = min(on_one, per_host)
    seen = (
        f"with limit={limit} and limit_per_host={per_host}, the {scenario.hosts} servers saw "
        f"up to {plural(together, 'request')} at once together and {on_one} on one server"
    )
    if together > limit and on_one > per_host:
        raise FETCH_POOLED.broken("no-bound", f"{seen}: neither limit held.{connectors}")
    if together > limit:
        queued = describe_waiting(
            peak.at.get(limit) or peak.at.get(limit + 1) or peak.waiting, ("semaphore",)
        )
        extra = f" Meanwhile {queued}." if queued else ""
        raise FETCH_POOLED.broken(
            "no-total-bound", f"{seen}: the total was not bounded.{connectors}{extra}"
        )
    if on_one > per_host:
        raise FETCH_POOLED.broken(
            "no-per-host-bound", f"{seen}: one server got more than its share.{connectors}"
        )
    if together <= 1:
        raise FETCH_POOLED.broken(
            "sequential",
            f"{seen}: the requests came one at a time (the first was held "
            "1 s and no second one arrived).",
        )
    if not first_job and (together, on_one) == EXAMPLE_LIMITS:
        raise FETCH_POOLED.broken(
            "ignored-arguments",
            f"{seen}: the first job's limits (3 and 2), not these.{connectors}",
        )
    if together < limit:
        swapped = ""
        if connector is not None and (connector.limit, connector.limit_per_host) == (
            per_host,
            limit,
        ):
            swapped = " The connector has limit and limit_per_host the other way round."
        raise FETCH_POOLED.broken(
            "bound-never-reached",
            f"{seen}: the total limit was never used.{swapped or connectors}",
        )
    if on_one < per_host:
        raise FETCH_POOLED.broken(
            "bound-never-reached",
            f"{seen}: no server ever got its {per_host}.{connectors}",
        )


def _judge_reuse(
    gate: Gate, scenario: ItemScenario, per_host: int, sessions: int, peak: PeakSnapshot
) -> None:
    ports: dict[str, set[int | None]] = {}
    requests: Counter[str] = Counter()
    for seen in gate.seen:
        ports.setdefault(seen.host, set()).add(seen.port)
        requests[seen.host] += 1
    opened = [len(ports.get(name, ())) for name in scenario.names]
    # Not reused: some server got a new connection for every request it received. (One
    # connection more than limit_per_host can be aiohttp's own doing: see _judge_bounds.)
    if not any(
        len(ports.get(name, ())) > per_host and len(ports.get(name, ())) >= requests[name]
        for name in scenario.names
    ):
        return
    seen = (
        f"the servers saw {' + '.join(map(str, opened))} TCP connections for "
        f"{scenario.count} requests, where {per_host} per server could carry them all"
    )
    connector = next((c for c in peak.connectors if c is not None), None)
    if sessions > 1:
        cause = f": your code created {sessions} sessions, each with its own pool."
    elif connector is not None and connector.force_close:
        cause = ": the connector has force_close=True."
    else:
        cause = "."
    raise FETCH_POOLED.broken("connections-not-reused", seen + cause)


async def _pooled_failure(learner: Any, spy: SessionSpy, rng: random.Random) -> None:
    scenario = ItemScenario(rng, 6, hosts=2, grouped=False)
    scenario.cut = rng.randrange(1, 5)
    gate = Gate(rng, cap=3)
    before = spy.created
    apps = [_item_app(name, gate, scenario) for name in scenario.names]
    async with serve_all(apps) as bases:
        try:
            returned, raised = await run_catching(
                FETCH_POOLED, "fetch_pooled", learner, scenario.urls(bases), 3, 2
            )
        finally:
            await gate.close()
    if raised is None:
        raise expect_propagated(
            FETCH_POOLED, "fetch_pooled", returned, scenario.cut, scenario.count
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise FETCH_POOLED.broken(
            "session-left-open-on-error",
            f"one response was cut off mid-body; fetch_pooled raised {type(raised).__name__} "
            "(rightly), and the session stayed open.",
        )


# === Task 2: fetch_bounded ===============================================================

FETCH_BOUNDED = Task(
    "fetch_bounded",
    Rule(
        "wrong-return-type",
        "returns the parsed JSON bodies, a list",
        "the type of what fetch_bounded returned",
        "return `await asyncio.gather(...)`: a list, in the order of its arguments.",
    ),
    Rule(
        "wrong-count",
        "returns the parsed JSON bodies (one per URL)",
        "the length of the list, against the number of URLs",
        "return one body per URL, every URL included.",
    ),
    Rule(
        "returned-responses",
        "returns the parsed JSON bodies",
        "the type of each item",
        "read each body inside its `async with` block: `return await response.json()`.",
    ),
    Rule(
        "not-json",
        "returns the parsed JSON bodies",
        "each item compared with the JSON its URL answered",
        "use `await response.json()`, and return the JSON of every URL.",
    ),
    Rule(
        "wrong-order",
        "in the order of `urls`",
        "the server answers in a shuffled order, never the order the requests came",
        "asyncio.gather returns results in the order of its arguments; "
        "asyncio.as_completed yields them as they finish.",
    ),
    Rule(
        "not-the-given-session",
        "sends every request through the `session` it is given",
        "the requests the given session sent (a TraceConfig on it), and sessions created",
        "send every request with `session.get(...)` on the session passed in: it is the "
        "application's shared pool. Bound the work with `asyncio.Semaphore` instead of "
        "making a session with a smaller pool.",
    ),
    Rule(
        "closed-shared-session",
        "does not close it (the caller owns it)",
        "whether the given session was still open after fetch_bounded returned or raised",
        "the caller owns the session, so the caller closes it: no `async with session:` and "
        "no `session.close()` on a session you were handed.",
    ),
    Rule(
        "connector-changed",
        "You cannot change the session's connector",
        "the connector and its limits, compared before and after the call",
        "leave `session.connector` as it is (it is shared by the whole application): put "
        "the bound in your own code, with one `asyncio.Semaphore(max_in_flight)`.",
    ),
    Rule(
        "no-bound",
        "never has more than `max_in_flight` requests in flight",
        "the requests the server handled at once (a request is in flight until its body has "
        "arrived: one job sends slow bodies)",
        "create one `asyncio.Semaphore(max_in_flight)`, shared by every request, and keep "
        "each whole request, `async with session.get(...)` and the body read, inside "
        "`async with semaphore:`; one made per task, or held only while creating the "
        "request, bounds nothing.",
    ),
    Rule(
        "ignored-arguments",
        "use the `max_in_flight` you are given",
        "jobs with max_in_flight 4, 6 and 3: the peak stays at the example's 4",
        "size the semaphore with the `max_in_flight` argument, not the example's number.",
    ),
    Rule(
        "sequential",
        "does reach that many (the requests run concurrently)",
        "the first request is held until a second one arrives (up to 1 s)",
        "start every request with `asyncio.gather` and let the semaphore hold back all but "
        "`max_in_flight`.",
    ),
    Rule(
        "bound-never-reached",
        "does reach that many",
        "the most requests the server handled at once, against `max_in_flight`",
        "size the semaphore with the `max_in_flight` argument, and start every request at "
        "once (`asyncio.gather`): the semaphore holds back the rest.",
    ),
    Rule(
        "error-swallowed",
        "a failed request's error propagates",
        "one response is cut off mid-body: fetch_bounded must raise, not return",
        "let the exception propagate (no `return_exceptions=True`, no `except` that returns "
        "a default).",
    ),
)

SHARED_POOL_LIMIT = 10
# (max_in_flight, URLs, slow bodies)
BOUNDED_JOBS = ((4, 16, False), (6, 12, False), (3, 5, True))
EXAMPLE_MAX_IN_FLIGHT = 4


@dataclass
class SharedSession:
    """The application's session the check hands over, and what it can compare afterwards."""

    session: aiohttp.ClientSession
    watch: PoolWatch
    connector: aiohttp.BaseConnector
    settings: tuple[int, int, bool]

    def changed(self) -> str:
        connector = self.session.connector
        if self.session.closed:
            return ""
        if connector is not self.connector:
            return "the session's connector was replaced"
        now = (connector.limit, connector.limit_per_host, connector.force_close)
        if now != self.settings:
            return (
                f"the shared connector's settings changed from "
                f"{_settings_text(self.settings)} to {_settings_text(now)}"
            )
        return ""


def _settings_text(settings: tuple[int, int, bool]) -> str:
    limit, per_host, force_close = settings
    text = f"limit={limit}, limit_per_host={per_host}"
    return text + (", force_close=True" if force_close else "")


@contextlib.asynccontextmanager
async def shared_session(limit: int) -> Any:
    watch = PoolWatch()
    connector = aiohttp.TCPConnector(limit=limit)
    session = aiohttp.ClientSession(connector=connector, trace_configs=[watch.trace_config()])
    try:
        yield SharedSession(
            session, watch, connector, (connector.limit, connector.limit_per_host, False)
        )
    finally:
        watch.release_all()
        await session.close()
        await connector.close()


@check(FETCH_BOUNDED)
async def fetch_bounded(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_bounded(session, urls, max_in_flight)``: at most, and at least once exactly, N."""
    rng = random.Random(f"{SEED}-fetch_bounded")
    for most, count, slow in BOUNDED_JOBS:
        scenario = ItemScenario(rng, count, slow=slow)
        gate = Gate(rng, cap=most)
        peak = PeakSnapshot()
        gate.on_peak = lambda peak=peak, gate=gate: peak.take(gate)
        before = spy.created
        async with serve_all([_item_app("A", gate, scenario)]) as bases:
            async with shared_session(SHARED_POOL_LIMIT) as shared:
                try:
                    bodies = await call_async(
                        "fetch_bounded", learner, shared.session, scenario.urls(bases), most
                    )
                finally:
                    await gate.close()
                _judge_closed(shared)
                _judge_json(FETCH_BOUNDED, "fetch_bounded", bodies, scenario.expected_bodies())
                _judge_shared(shared, spy, before, count)
        _judge_bound(gate, most, slow, peak)
    await _bounded_failure(learner, spy, rng)
    return (
        "jobs with max_in_flight 4, 6 and 3 (slow bodies): bodies in order through the "
        "shared session, never more in flight than allowed, the bound reached each time, "
        "the session left open and its connector unchanged; a failed request raised."
    )


def _judge_closed(shared: SharedSession) -> None:
    if shared.session.closed:
        raise FETCH_BOUNDED.broken(
            "closed-shared-session",
            "the session you were given was closed when fetch_bounded was done.",
        )


def _judge_shared(shared: SharedSession, spy: SessionSpy, before: int, count: int) -> None:
    own = [s for s in spy.sessions[before:] if s is not shared.session]
    if shared.watch.requests < count:
        made = f" (it created {plural(len(own), 'session')} of its own)" if own else ""
        raise FETCH_BOUNDED.broken(
            "not-the-given-session",
            f"only {shared.watch.requests} of the {count} requests went through the session "
            f"you were given{made}.",
        )
    changed = shared.changed()
    if changed:
        raise FETCH_BOUNDED.broken("connector-changed", f"{changed}: the task forbids it.")


def _judge_bound(gate: Gate, most: int, slow: bool, peak: PeakSnapshot) -> None:
    together = gate.in_flight_at_once()
    seen = f"with max_in_flight={most}, the server saw {plural(together, 'request')} at once"
    if together > most:
        # Where the tasks stood when the bound was first reached (then the rest are all
        # waiting, whatever the timing; later, every task may be through).
        held = describe_waiting(
            peak.at.get(most) or peak.at.get(most + 1) or peak.waiting, ("semaphore",)
        )
        hint = None
        if held and slow:
            detail = (
                f" (their bodies arrive slowly) while {held}: the semaphore was let go before "
                "those requests had their bodies"
            )
            hint = (
                "keep the whole request inside `async with semaphore:`, the body read "
                "included: a request is in flight until its body has arrived."
            )
        elif held:
            detail = f" while {held}: it lets too many through"
            hint = "size the semaphore with `max_in_flight` itself."
        else:
            detail = ": nothing in your code held the others back"
        raise FETCH_BOUNDED.broken("no-bound", f"{seen}{detail}.", hint)
    if together <= 1:
        raise FETCH_BOUNDED.broken(
            "sequential",
            f"{seen}: they came one at a time (the first was held 1 s and no second one arrived).",
        )
    if together < most:
        if together == EXAMPLE_MAX_IN_FLIGHT:
            raise FETCH_BOUNDED.broken("ignored-arguments", f"{seen}: the example's 4, not {most}.")
        raise FETCH_BOUNDED.broken("bound-never-reached", f"{seen}; {most} are allowed.")


async def _bounded_failure(learner: Any, spy: SessionSpy, rng: random.Random) -> None:
    scenario = ItemScenario(rng, 6)
    scenario.cut = rng.randrange(1, 5)
    gate = Gate(rng, cap=2)
    before = spy.created
    async with serve_all([_item_app("A", gate, scenario)]) as bases:
        async with shared_session(SHARED_POOL_LIMIT) as shared:
            try:
                returned, raised = await run_catching(
                    FETCH_BOUNDED, "fetch_bounded", learner, shared.session, scenario.urls(bases), 2
                )
            finally:
                await gate.close()
            if shared.session.closed:
                raise FETCH_BOUNDED.broken(
                    "closed-shared-session",
                    "when one response was cut off mid-body, the session you were given was "
                    "closed: the caller owns it, on the error path too.",
                )
            _judge_shared(shared, spy, before, 0)
    if raised is None:
        raise expect_propagated(
            FETCH_BOUNDED, "fetch_bounded", returned, scenario.cut, scenario.count
        )


# === Task 3: statuses ====================================================================

STATUSES = Task(
    "statuses",
    Rule(
        "wrong-return-type",
        "returns the status code of each URL, a list",
        "the type of what statuses returned",
        "return a list of `response.status`, one per URL.",
    ),
    Rule(
        "returned-responses",
        "returns the status code of each URL",
        "the type of each item",
        "return `response.status` from inside the `async with` block.",
    ),
    Rule(
        "wrong-statuses",
        "returns the status code of each URL, in order",
        "each item compared with the status the server sent for that URL",
        "return `response.status` (an int) for each URL, in the order of the URLs.",
    ),
    Rule(
        "raised-for-status",
        "404 or 503 are answers too (do not raise for them)",
        "error statuses among the URLs: statuses must return them, not raise",
        "read `response.status` and return it; `raise_for_status()` (or "
        "`raise_for_status=True`) turns an answer into an exception.",
    ),
    Rule(
        "responses-unreleased",
        "release every response (a response that keeps its connection starves the pool)",
        "a pool of 2: the responses still holding a connection while a request waits for "
        "one, and after statuses returned",
        "use `async with session.get(url) as response:` (or `response.release()` in a "
        "`finally`) for every response, error statuses included: an unread body that has "
        "not fully arrived keeps its connection.",
    ),
    Rule(
        "bodies-downloaded",
        "without downloading the bodies",
        "the bodies the server sent to their end, and where your code waited",
        "the status arrives with the headers: leave `async with session.get(url) as "
        "response:` without reading the body (aiohttp closes a connection whose body is "
        "unread), or ask with `session.head(url)`.",
    ),
    Rule(
        "not-the-given-session",
        "The session you are given",
        "the requests the given session sent (a TraceConfig on it)",
        "send every request with the session passed in: its small pool is what the task is about.",
    ),
    Rule(
        "closed-shared-session",
        "the session you are given (the caller owns it)",
        "whether the given session was still open after statuses returned",
        "the caller owns the session: leave it open.",
    ),
)

STATUS_POOL_LIMIT = 2
BIG_FILE_BYTES = 16 * 1024 * 1024
FILE_CHUNK = 256 * 1024
ERROR_BODY_BYTES = 200 * 1024
# An error page's first bytes come at once, the rest after this long (or never, once the
# client has gone): unread and unreleased, it keeps its connection.
SLOW_BODY_SECONDS = 5.0
# Correct code answers in milliseconds; at this point the check looks at what holds the pool.
LOOK_AFTER_SECONDS = 1.0
GIVE_UP_SECONDS = 6.0
# Two looks this far apart that see the same responses holding the pool: it is starved.
STARVED_CONFIRM_SECONDS = 0.3
STATUS_LISTS = (
    (200, 200, 404, 200, 503, 500, 200, 204),
    (410, 429, 404, 503, 200, 204, 200),
)


@dataclass
class StatusScenario:
    codes: Sequence[int]
    sent_to_end: list[str] = field(default_factory=list)


def _status_app(scenario: StatusScenario) -> web.Application:
    async def url(request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["index"])
        code = scenario.codes[index]
        name = f"{'file' if code == 200 else 'error page'} {index} ({code})"
        response = web.StreamResponse(status=code)
        if code == 204:
            await response.prepare(request)
            return response
        size = BIG_FILE_BYTES if code == 200 else ERROR_BODY_BYTES
        response.content_type = "application/octet-stream" if code == 200 else "text/html"
        response.content_length = size
        try:
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            if code == 200:
                block = b"\x5a" * FILE_CHUNK
                for _ in range(size // FILE_CHUNK):
                    await response.write(block)
            else:
                await response.write(b"<p>" + b"e" * 1021)
                loop = asyncio.get_running_loop()
                give_up = loop.time() + SLOW_BODY_SECONDS
                while loop.time() < give_up:
                    if request.transport is None or request.transport.is_closing():
                        return response
                    await asyncio.sleep(0.02)
                await response.write(b"e" * (size - 1024))
            await response.write_eof()
            scenario.sent_to_end.append(name)
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/url/{index}", url)
    return app


@check(STATUSES)
async def statuses(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``statuses(session, urls)``: every status, bodies not downloaded, connections released."""
    for codes in STATUS_LISTS:
        scenario = StatusScenario(codes)
        async with serve_all([_status_app(scenario)]) as (base,):
            urls = [f"{base}/url/{i}" for i in range(len(codes))]
            async with shared_session(STATUS_POOL_LIMIT) as shared:
                result, holding = await _run_statuses(learner, shared, urls, scenario)
                _judge_statuses(result, list(codes))
                if holding:
                    raise STATUSES.broken(
                        "responses-unreleased",
                        f"after statuses returned, {_responses_text(holding)} still held "
                        "a connection of the pool: nobody released it.",
                    )
                if shared.session.closed:
                    raise STATUSES.broken(
                        "closed-shared-session",
                        "the session you were given was closed when statuses returned.",
                    )
                if shared.watch.requests < len(urls):
                    raise STATUSES.broken(
                        "not-the-given-session",
                        f"only {shared.watch.requests} of the {len(urls)} requests went "
                        "through the session you were given.",
                    )
        if scenario.sent_to_end:
            sent = len(scenario.sent_to_end)
            raise STATUSES.broken(
                "bodies-downloaded",
                f"the server sent {sent} {'body' if sent == 1 else 'bodies'} to the end "
                f"({', '.join(scenario.sent_to_end[:2])}{', ...' if sent > 2 else ''}) to "
                f"learn {len(codes)} status codes.",
            )
    return (
        "two lists (16 MiB files, slow error pages, a 204) through a pool of 2: every "
        "status in order, every response released, and no body downloaded."
    )


def _responses_text(responses: Sequence[aiohttp.ClientResponse]) -> str:
    codes = Counter(r.status for r in responses)
    parts = [f"{n} × {code}" if n > 1 else f"a {code}" for code, n in sorted(codes.items())]
    noun = "response" if len(responses) == 1 else "responses"
    return f"{len(responses)} {noun} ({', '.join(parts)})"


async def _run_statuses(
    learner: Any, shared: SharedSession, urls: list[str], scenario: StatusScenario
) -> tuple[Any, list[aiohttp.ClientResponse]]:
    """The learner's result, and the responses still holding a connection once it returned."""
    before = asyncio.all_tasks()
    run = asyncio.ensure_future(call_async("statuses", learner, shared.session, urls))
    loop = asyncio.get_running_loop()
    started = loop.time()
    previous: list[aiohttp.ClientResponse] | None = None
    try:
        while not run.done():
            await asyncio.wait({run}, timeout=POLL_SECONDS * 10)
            if run.done() or loop.time() - started < LOOK_AFTER_SECONDS:
                continue
            verdict = _stuck(shared, scenario, previous)
            if isinstance(verdict, Mistake):
                raise verdict
            previous = verdict
            if loop.time() - started > GIVE_UP_SECONDS:
                raise STATUSES.broken(
                    "timeout",
                    f"statuses was still running after {GIVE_UP_SECONDS:g} s, so the check "
                    "stopped it.",
                    "each status arrives in milliseconds: what is your code waiting for?",
                )
            await asyncio.sleep(STARVED_CONFIRM_SECONDS)
        return _statuses_result(run), shared.watch.holding()
    finally:
        if not run.done():
            run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        shared.watch.release_all()
        await stop_strays(before)


def _statuses_result(run: asyncio.Future[Any]) -> Any:
    exc = run.exception()
    if isinstance(exc, aiohttp.ClientResponseError):
        raise STATUSES.broken(
            "raised-for-status",
            f"statuses raised ClientResponseError for a {exc.status} "
            f"({learner_line(exc) or 'in your code'}): an error status is an answer too.",
        ) from None
    return run.result()


def _stuck(
    shared: SharedSession,
    scenario: StatusScenario,
    previous: list[aiohttp.ClientResponse] | None,
) -> Mistake | list[aiohttp.ClientResponse]:
    """The Mistake a stuck call shows, or what holds the pool now (to compare next time)."""
    waiting = tasks_waiting()
    reading = describe_waiting(waiting, ("body",))
    if reading:
        return STATUSES.broken(
            "bodies-downloaded",
            f"statuses was reading bodies: {reading} (the error pages here arrive slowly, "
            "the files are 16 MiB).",
        )
    holding = shared.watch.holding()
    if shared.watch.waiting and len(holding) >= STATUS_POOL_LIMIT:
        if previous is not None and set(map(id, previous)) >= set(map(id, holding)):
            queued = describe_waiting(waiting, ("pool",))
            return STATUSES.broken(
                "responses-unreleased",
                f"after {plural(len(shared.watch.responses), 'response')}, the pool's "
                f"{STATUS_POOL_LIMIT} connections were held by {_responses_text(holding)} "
                "that your code kept unreleased (their bodies are large or slow), while "
                + (queued if queued else "the next request waited")
                + " for a connection that never came back.",
            )
        return holding
    return []


def _judge_statuses(result: Any, expected: list[int]) -> None:
    if inspect.isawaitable(result) or (
        isinstance(result, (list, tuple)) and close_coroutines(result)
    ):
        close_coroutines([result])
        raise STATUSES.broken(
            "missing-await",
            "statuses returned coroutines, not status codes: an `await` is missing.",
        )
    if not isinstance(result, (list, tuple)):
        raise STATUSES.broken(
            "wrong-return-type",
            f"statuses returned {shown(result)}; expected a list of {len(expected)} ints.",
        )
    result = list(result)
    if any(isinstance(item, aiohttp.ClientResponse) for item in result):
        raise STATUSES.broken(
            "returned-responses", "statuses returned response objects, not their status codes."
        )
    errors = [item for item in result if isinstance(item, aiohttp.ClientResponseError)]
    if errors:
        raise STATUSES.broken(
            "raised-for-status",
            f"statuses returned a ClientResponseError object in place of the {errors[0].status}: "
            "an error status is an answer too.",
        )
    if sorted(map(str, result)) == sorted(map(str, expected)) and result != expected:
        raise STATUSES.broken(
            "wrong-statuses",
            "statuses returned the right codes in another order: the order the responses "
            "arrived, not the order of the URLs.",
        )
    if result != expected or any(type(item) is not int for item in result):
        raise STATUSES.broken(
            "wrong-statuses",
            f"statuses returned {clip(repr(result), 90)}; expected {expected}.",
        )
