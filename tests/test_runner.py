"""start_server(): the course server in a background thread, as a notebook uses it."""

from __future__ import annotations

import http.client
import re
import socket
import time

import aiohttp
import pytest
from conftest import needs_ipv6_loopback

from local_server import LocalServer, StatsSnapshot, start_server


@pytest.fixture
def server():
    """A started server, always stopped afterwards."""
    server = start_server()
    yield server
    server.stop()


def _refused(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _status(port: int, path: str = "/get") -> int:
    """GET ``path`` with the standard library (no proxy, no event loop) and return the status.

    Checking that a server listens with a whole request, not a bare connect, matters: a bare
    connection the server has not finished accepting when it stops trips CPython's
    asyncio.Server close race (python/cpython#109564) and leaks a socket.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


async def _get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


def test_starts_fast_on_a_free_loopback_port():
    start = time.perf_counter()
    server = start_server()
    try:
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0  # it takes milliseconds; the margin is for a loaded CI machine
        assert isinstance(server, LocalServer)
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", server.url)
        assert match and int(match.group(1)) == server.port
        assert 0 < server.port < 65536
        assert server.host == "127.0.0.1"
        assert server.running
        assert _status(server.port) == 200
    finally:
        server.stop()


async def test_answers_a_real_client(server):
    data = await _get_json(server.url + "/get?a=1")
    assert data["url"] == f"{server.url}/get?a=1"
    assert data["origin"] == "127.0.0.1"


def test_two_servers_get_different_ports():
    with start_server() as first, start_server() as second:
        assert first.port != second.port
        assert first.url != second.url
        assert _status(first.port) == _status(second.port) == 200


async def test_two_servers_keep_separate_stats():
    with start_server() as first, start_server() as second:
        await _get_json(first.url + "/get")
        assert first.stats().requests == 1
        assert second.stats().requests == 0


async def test_stats_seen_from_a_real_client(server):
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(server.url + "/get") as resp:
                assert resp.status == 200
                await resp.read()
    snap = server.stats()
    assert isinstance(snap, StatsSnapshot)
    assert (snap.connections_opened, snap.requests) == (1, 3)
    assert snap.requests_per_connection == {1: 3}
    assert snap.in_flight == 0
    assert [r.status for r in snap.timeline] == [200, 200, 200]
    assert (await _get_json(server.url + "/stats"))["requests"] == 3


async def test_reset_stats(server):
    await _get_json(server.url + "/get")
    server.reset_stats()
    assert server.stats().requests == 0
    assert server.stats().timeline == []


async def test_seed_makes_random_statuses_repeatable():
    async def sequence(server: LocalServer) -> list[int]:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(20):
                async with session.get(server.url + "/status/200:0.5,503:0.5") as resp:
                    statuses.append(resp.status)
            return statuses

    with start_server(seed=11) as first, start_server(seed=11) as second:
        assert await sequence(first) == await sequence(second)


def test_stop_closes_the_port_and_is_idempotent():
    server = start_server()
    port = server.port
    server.stop()
    assert not server.running
    assert _refused(port)
    server.stop()  # a second stop is harmless
    assert not server.running


async def test_stop_closes_open_connections():
    """A keep-alive connection does not keep a stopped server reachable."""
    server = start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/get") as resp:
                assert resp.status == 200
            server.stop()
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.get(server.url + "/get") as resp:
                    await resp.read()
    finally:
        server.stop()


def test_context_manager():
    with start_server() as server:
        assert server.running
        port = server.port
    assert not server.running
    assert _refused(port)


def test_context_manager_stops_on_error():
    with pytest.raises(RuntimeError), start_server() as server:
        raise RuntimeError("boom")
    assert not server.running


def test_repr():
    server = start_server()
    try:
        assert repr(server) == f"<LocalServer http://127.0.0.1:{server.port} running>"
    finally:
        server.stop()
    assert repr(server) == f"<LocalServer http://127.0.0.1:{server.port} stopped>"


def test_a_port_in_use_raises():
    with start_server() as first:
        with pytest.raises(OSError):
            start_server(port=first.port)
        assert _status(first.port) == 200  # the first server is unharmed


@needs_ipv6_loopback
async def test_ipv6_url_has_brackets():
    with start_server(host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        data = await _get_json(server.url + "/get")
        assert data["origin"] == "::1"


def test_stop_with_a_handler_whose_client_left_logs_no_error(caplog):
    """aiohttp stops awaiting a handler whose client has gone; stop() must still end it
    quietly, not leave asyncio to log 'Task was destroyed but it is pending!'."""
    import asyncio
    import gc
    import logging

    import aiohttp

    caplog.set_level(logging.ERROR)
    server = start_server()

    async def impatient() -> None:
        timeout = aiohttp.ClientTimeout(total=0.1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.get(server.url + "/slow/headers/2"):
                    pass
            except TimeoutError:
                pass

    asyncio.run(impatient())
    server.stop()
    gc.collect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
