"""ServerStats: connections, requests per connection, concurrency, timeline, and their bounds."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import threading

import aiohttp

from local_server import ServerStats, create_app, timing
from local_server import stats as stats_module


class FakeTransport:
    """Stands for one TCP connection (ServerStats only needs a weak-referenceable object)."""


# --- ServerStats on its own ------------------------------------------------------------------


def test_fresh_stats_are_empty():
    snap = ServerStats().snapshot()
    assert (snap.connections_opened, snap.requests, snap.in_flight, snap.max_in_flight) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert snap.requests_per_connection == {} and snap.by_path == {} and snap.timeline == []


def test_requests_on_one_transport_are_one_connection():
    stats = ServerStats()
    conn = FakeTransport()
    for _ in range(3):
        stats.request_ended(stats.request_started(conn, "GET", "/get", 5000), 200)
    snap = stats.snapshot()
    assert snap.connections_opened == 1
    assert snap.requests == 3
    assert snap.requests_per_connection == {1: 3}
    assert [r.connection for r in snap.timeline] == [1, 1, 1]


def test_separate_transports_are_separate_connections():
    stats = ServerStats()
    conns = [FakeTransport() for _ in range(3)]
    for conn in [*conns, conns[0]]:
        stats.request_ended(stats.request_started(conn, "GET", "/get", None), 200)
    snap = stats.snapshot()
    assert snap.connections_opened == 3
    assert snap.requests_per_connection == {1: 2, 2: 1, 3: 1}


def test_a_new_transport_never_reuses_a_dead_ones_id():
    """Connection ids stay unique even when a closed transport's memory is reused."""
    stats = ServerStats()
    first = FakeTransport()
    stats.request_ended(stats.request_started(first, "GET", "/a", None), 200)
    del first
    gc.collect()
    stats.request_ended(stats.request_started(FakeTransport(), "GET", "/b", None), 200)
    assert [r.connection for r in stats.snapshot().timeline] == [1, 2]


def test_in_flight_and_max_in_flight():
    stats = ServerStats()
    ids = [stats.request_started(FakeTransport(), "GET", "/delay/1", None) for _ in range(3)]
    assert stats.snapshot().in_flight == 3
    stats.request_ended(ids[0], 200)
    snap = stats.snapshot()
    assert (snap.in_flight, snap.max_in_flight) == (2, 3)
    stats.request_started(FakeTransport(), "GET", "/get", None)  # 3 again, not more
    for request_id in ids[1:]:
        stats.request_ended(request_id, 200)
    snap = stats.snapshot()
    assert (snap.in_flight, snap.max_in_flight) == (1, 3)


def test_timeline_records():
    stats = ServerStats()
    conn = FakeTransport()
    first = stats.request_started(conn, "POST", "/post", 41000)
    second = stats.request_started(conn, "GET", "/nope", 41000)
    stats.request_ended(second, 404)
    timeline = stats.snapshot().timeline
    assert [r.id for r in timeline] == [first, second]  # in arrival order, open ones included
    open_record, done = timeline
    assert (open_record.method, open_record.path, open_record.status) == ("POST", "/post", None)
    assert open_record.end is None and open_record.duration is None
    assert (done.method, done.path, done.status, done.client_port) == ("GET", "/nope", 404, 41000)
    assert 0 <= done.start <= done.end
    assert done.duration == done.end - done.start


def test_snapshot_is_a_copy():
    stats = ServerStats()
    snap = stats.snapshot()
    stats.request_ended(stats.request_started(FakeTransport(), "GET", "/get", None), 200)
    assert snap.requests == 0 and snap.timeline == []


def test_as_dict_is_json_ready():
    stats = ServerStats()
    stats.request_ended(stats.request_started(FakeTransport(), "GET", "/get", 1), 200)
    data = json.loads(json.dumps(stats.snapshot().as_dict()))
    assert data["requests_per_connection"] == {"1": 1}
    assert data["timeline"][0]["status"] == 200


def test_reset_clears_everything():
    stats = ServerStats()
    conn = FakeTransport()
    stats.request_ended(stats.request_started(conn, "GET", "/a", None), 200)
    running = stats.request_started(conn, "GET", "/b", None)
    stats.reset()
    snap = stats.snapshot()
    assert (snap.connections_opened, snap.requests, snap.in_flight, snap.max_in_flight) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert snap.timeline == [] and snap.by_path == {}
    stats.request_ended(running, 200)  # a request from before the reset ends: ignored
    assert stats.snapshot().timeline == []
    stats.request_ended(stats.request_started(conn, "GET", "/c", None), 200)
    snap = stats.snapshot()
    assert snap.requests_per_connection == {1: 1}  # the connection is counted afresh
    assert snap.timeline[0].id == 1 and snap.timeline[0].start < 1.0  # clock restarted


def test_timeline_is_bounded(monkeypatch):
    monkeypatch.setattr(stats_module, "MAX_TIMELINE", 5)
    stats = ServerStats()
    for i in range(12):
        stats.request_ended(stats.request_started(FakeTransport(), "GET", f"/p{i % 2}", None), 200)
    snap = stats.snapshot()
    assert snap.requests == 12  # counted, even when no longer in the timeline
    assert [r.id for r in snap.timeline] == [8, 9, 10, 11, 12]


def test_by_path_is_bounded(monkeypatch):
    monkeypatch.setattr(stats_module, "MAX_DISTINCT_PATHS", 3)
    stats = ServerStats()
    for path in ["/a", "/b", "/c", "/d", "/e", "/a", "/f"]:
        stats.request_ended(stats.request_started(FakeTransport(), "GET", path, None), 200)
    by_path = stats.snapshot().by_path
    assert by_path == {"/a": 2, "/b": 1, "/c": 1, stats_module.OTHER_PATHS: 3}


def test_requests_per_connection_is_bounded_but_connections_are_all_counted(monkeypatch):
    monkeypatch.setattr(stats_module, "MAX_TRACKED_CONNECTIONS", 3)
    stats = ServerStats()
    transports = [FakeTransport() for _ in range(5)]
    for transport in transports:
        stats.request_ended(stats.request_started(transport, "GET", "/get", None), 200)
    snap = stats.snapshot()
    assert snap.connections_opened == 5
    assert snap.requests_per_connection == {3: 1, 4: 1, 5: 1}


def test_counts_from_many_threads():
    """The lock keeps counts exact when several threads record at once."""
    stats = ServerStats()

    def work() -> None:
        conn = FakeTransport()
        for _ in range(500):
            stats.request_ended(stats.request_started(conn, "GET", "/get", None), 200)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = stats.snapshot()
    assert snap.requests == 2000 and snap.in_flight == 0
    assert snap.connections_opened == 4
    assert sorted(snap.requests_per_connection.values()) == [500] * 4
    assert len({r.id for r in snap.timeline}) == 2000


# --- through the app -------------------------------------------------------------------------


async def test_keep_alive_session_is_one_connection(server_client, server_stats):
    for _ in range(3):
        assert (await server_client.get("/get")).status == 200
    snap = server_stats.snapshot()
    assert snap.connections_opened == 1
    assert snap.requests_per_connection == {1: 3}
    data = await (await server_client.get("/stats")).json()
    assert data["connections_opened"] == 1
    assert data["requests_per_connection"] == {"1": 3}


async def test_separate_sessions_are_separate_connections(server_client, server_stats):
    url = server_client.make_url("/get")
    for _ in range(3):
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
    snap = server_stats.snapshot()
    assert snap.connections_opened == 3
    assert snap.requests_per_connection == {1: 1, 2: 1, 3: 1}
    assert len({r.client_port for r in snap.timeline}) == 3


class Barrier:
    """Replaces /delay's sleep: every delayed request waits until the test releases them."""

    def __init__(self) -> None:
        self.waiting = 0
        self.release = asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        await asyncio.wait_for(self.release.wait(), 10)


async def test_max_in_flight_with_concurrent_delays(server_client, server_stats, monkeypatch):
    barrier = Barrier()
    monkeypatch.setattr(timing, "sleep", barrier.sleep)
    tasks = [asyncio.ensure_future(server_client.get("/delay/1")) for _ in range(4)]
    try:
        for _ in range(500):  # at most 5 s for the four requests to arrive
            if barrier.waiting == 4:
                break
            await asyncio.sleep(0.01)
        data = await (await server_client.get("/stats")).json()
        assert data["in_flight"] == 4
        assert data["max_in_flight"] == 4
        assert [r["end"] for r in data["timeline"]] == [None] * 4
    finally:
        barrier.release.set()
        responses = await asyncio.gather(*tasks)
    assert [r.status for r in responses] == [200] * 4
    snap = server_stats.snapshot()
    assert (snap.in_flight, snap.max_in_flight) == (0, 4)
    assert snap.connections_opened == 4  # concurrent requests need their own connections


async def test_sequential_requests_never_overlap(server_client, server_stats):
    for _ in range(3):
        await server_client.get("/delay/0")
    snap = server_stats.snapshot()
    assert (snap.in_flight, snap.max_in_flight) == (0, 1)


async def test_timeline_through_the_app(server_client, server_stats):
    await server_client.get("/get")
    await server_client.get("/nope")
    await server_client.get("/delay/abc")
    await server_client.post("/get")
    await server_client.get("/redirect/1", allow_redirects=False)
    timeline = server_stats.snapshot().timeline
    assert [(r.method, r.path, r.status) for r in timeline] == [
        ("GET", "/get", 200),
        ("GET", "/nope", 404),
        ("GET", "/delay/abc", 400),
        ("POST", "/get", 405),
        ("GET", "/redirect/1", 302),
    ]
    assert {r.connection for r in timeline} == {1}  # errors keep the connection alive
    assert len({r.client_port for r in timeline}) == 1
    assert all(isinstance(r.client_port, int) for r in timeline)
    assert all(r.start < r.end for r in timeline)
    assert all(a.end <= b.start for a, b in itertools.pairwise(timeline))


async def test_stats_endpoints_are_not_counted(server_client, server_stats):
    await server_client.get("/get")
    for _ in range(3):
        await server_client.get("/stats")
    data = await (await server_client.get("/stats")).json()
    assert data["requests"] == 1 and data["by_path"] == {"/get": 1}
    await server_client.post("/stats/reset")
    await server_client.get("/stats")
    snap = server_stats.snapshot()
    assert snap.requests == 0 and snap.timeline == [] and snap.connections_opened == 0


async def test_reset_through_the_app(server_client, server_stats):
    for _ in range(2):
        await server_client.get("/get")
    assert (await server_client.post("/stats/reset")).status == 200
    await server_client.get("/headers")
    snap = server_stats.snapshot()
    assert snap.requests == 1
    assert snap.by_path == {"/headers": 1}
    assert snap.requests_per_connection == {1: 1}  # the same connection, counted afresh


async def test_bounds_through_the_app(aiohttp_client, monkeypatch):
    n_paths = 10
    monkeypatch.setattr(stats_module, "MAX_TIMELINE", 4)
    monkeypatch.setattr(stats_module, "MAX_DISTINCT_PATHS", 3)
    stats = ServerStats()
    client = await aiohttp_client(create_app(stats=stats))
    for i in range(n_paths):
        await client.get(f"/anything/{i}")
    data = await (await client.get("/stats")).json()
    assert data["requests"] == n_paths
    assert len(data["timeline"]) == 4
    assert [r["path"] for r in data["timeline"]] == [f"/anything/{i}" for i in range(6, 10)]
    assert data["by_path"] == {
        "/anything/0": 1, "/anything/1": 1, "/anything/2": 1,
        stats_module.OTHER_PATHS: n_paths - 3,
    }  # fmt: skip
