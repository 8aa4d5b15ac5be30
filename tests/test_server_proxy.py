"""The forward proxy of lesson 17 (``local_server.proxy``), with real sockets: what it forwards
and records, its 403/407/4xx/5xx answers, its bounds, and that it cleans up after itself."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import logging
import os
import socket
import ssl
import threading
import time
import warnings

import aiohttp
import psutil
import pytest

from local_server import proxy as proxy_module
from local_server import start_server
from local_server.proxy import VIA, ProxyLimits, ProxyServer, start_proxy
from local_server.tls import start_tls_servers


@pytest.fixture(scope="module")
def origin():
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls():
    servers = start_tls_servers()
    yield servers
    servers.stop()


@pytest.fixture
def proxy():
    proxy = start_proxy()
    yield proxy
    proxy.stop()


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` to 127.0.0.1:``port`` and read until the other side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def wait_idle(proxy: ProxyServer, patience: float = 10.0) -> None:
    """Wait until the proxy has finished every request and tunnel (its records are final)."""
    give_up = time.monotonic() + patience
    while proxy.stats().in_flight and time.monotonic() < give_up:
        time.sleep(0.01)
    stats = proxy.stats()
    assert not stats.in_flight, f"{stats.in_flight} still in flight after {patience:g} s: {stats}"


# --- starting -------------------------------------------------------------------------------


def test_starts_on_a_free_loopback_port_only():
    proxy = start_proxy()
    try:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        assert proxy.running and proxy.ca_pem is None
        listening = {
            c.laddr for c in psutil.Process().net_connections("tcp") if c.status == "LISTEN"
        }
        assert ("127.0.0.1", proxy.port) in listening
        assert not any(a.port == proxy.port and a.ip != "127.0.0.1" for a in listening)
    finally:
        proxy.stop()


def test_it_refuses_to_listen_beyond_loopback():
    with pytest.raises(ValueError, match="loopback only"):
        start_proxy(host="0.0.0.0")


def test_two_proxies_get_two_ports():
    with start_proxy() as one, start_proxy() as two:
        assert one.port != two.port


# --- plain HTTP in absolute form ---------------------------------------------------------


async def test_forwards_absolute_form_and_records_what_passed(origin, proxy):
    async with aiohttp.ClientSession() as session:
        for query in ("a=1", "b=2"):
            async with session.get(
                f"{origin.url}/get?{query}",
                proxy=proxy.url,
                headers={"Proxy-Connection": "keep-alive", "X-Mine": "kept"},
            ) as response:
                data = await response.json()
                assert response.status == 200
    received = data["headers"]
    assert received["Via"] == VIA
    assert received["X-Mine"] == "kept"
    assert "Proxy-Connection" not in received
    wait_idle(proxy)
    stats = proxy.stats()
    assert stats.targets() == [
        f"GET {origin.url}/get?a=1 200",
        f"GET {origin.url}/get?b=2 200",
    ]
    first, second = stats.records
    assert first.kind == "http" and first.authorized is None and first.detail is None
    assert first.bytes_up > 100 and first.bytes_down > 200
    assert first.connection == second.connection  # the client's keep-alive connection, reused
    assert stats.connections_opened == 1 and stats.tunnels_opened == 0
    assert first.header("x-mine") == "kept" and first.end is not None


async def test_bodies_reach_the_origin_intact_both_framings(origin, proxy):
    body = os.urandom(300_001)

    async def chunks():
        for start in range(0, len(body), 65_000):
            yield body[start : start + 65_000]

    async with aiohttp.ClientSession() as session:
        for data in (body, chunks()):
            async with session.post(origin.url + "/upload", data=data, proxy=proxy.url) as r:
                result = await r.json()
            assert result["sha256"] == hashlib.sha256(body).hexdigest()
        async with session.get(origin.url + "/stream/7", proxy=proxy.url) as r:
            lines = (await r.text()).splitlines()  # a chunked answer
        assert len(lines) == 7
        async with session.head(origin.url + "/get", proxy=proxy.url) as r:
            assert r.status == 200
        async with session.get(origin.url + "/status/204", proxy=proxy.url) as r:
            assert r.status == 204 and await r.read() == b""
        async with session.get(origin.url + "/status/418", proxy=proxy.url) as r:
            assert r.status == 418
    wait_idle(proxy)
    records = proxy.stats().records
    assert [r.status for r in records] == [200, 200, 200, 200, 204, 418]
    assert records[0].bytes_up > len(body) and records[1].bytes_up > len(body)
    assert len({r.connection for r in records}) == 1


async def test_an_unreachable_origin_is_a_json_502(proxy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/x", proxy=proxy.url) as r:
            assert r.status == 502
            data = await r.json()
    assert data["error"] == "Bad Gateway" and "could not connect" in data["detail"]
    assert proxy.stats().records[-1].status == 502


# --- CONNECT ------------------------------------------------------------------------------


async def test_connect_tunnels_https_and_sees_only_host_and_port(tls, proxy):
    context = ssl.create_default_context(cafile=tls.ca_pem)
    async with aiohttp.ClientSession() as session:
        for path in ("/get?secret=1", "/headers"):
            async with session.get(tls.good + path, proxy=proxy.url, ssl=context) as r:
                data = await r.json()
    assert "Via" not in data["headers"]  # the proxy never read the request
    wait_idle(proxy)
    stats = proxy.stats()
    (tunnel,) = stats.records
    assert tunnel.kind == "connect" and tunnel.method == "CONNECT"
    assert tunnel.target == f"localhost:{tls.port('good')}" == tunnel.host_port
    assert tunnel.status == 200 and stats.tunnels_opened == 1
    assert tunnel.bytes_up > 500 and tunnel.bytes_down > 1000  # TLS records, both ways
    assert "secret" not in json.dumps(stats.as_dict())


async def test_wss_goes_through_a_tunnel(tls, proxy):
    context = ssl.create_default_context(cafile=tls.ca_pem)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                tls.good + "/ws/echo", proxy=proxy.url, ssl=context
            ) as ws:
                await ws.send_str("through")
                assert (await ws.receive()).data == "through"
        gc.collect()
    assert proxy.stats().records[0].kind == "connect"
    # aiohttp 3.14 leaves the tunnel's plain transport (under the TLS one) unclosed after a
    # WebSocket through a proxy; collected here, its warning is this test's, and it names only
    # a socket to the proxy (found when it failed whichever test the collector next ran in).
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    sockets = [leak for leak in leaks if "socket.socket" in leak]
    to_proxy = f"raddr=('127.0.0.1', {proxy.url.rsplit(':', 1)[1].strip('/')})"
    assert all(to_proxy in leak for leak in sockets), leaks
    assert len(leaks) <= 2 * len(sockets), leaks  # a transport only with its socket


# --- never an open proxy --------------------------------------------------------------------


async def test_anything_but_loopback_is_a_403_logged_once_and_never_looked_up(
    proxy, caplog, monkeypatch
):
    looked_up: list[str] = []
    original = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        looked_up.append(str(host))
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    caplog.set_level(logging.INFO, logger="local_server.proxy")
    proxy_module_log = proxy._forwarder.log
    proxy_module_log.interval = 0  # one line per refusal, for the count below
    async with aiohttp.ClientSession() as session:
        async with session.get("http://example.com/", proxy=proxy.url) as r:
            assert r.status == 403
            data = await r.json()
        with pytest.raises(aiohttp.ClientHttpProxyError) as refused:
            await session.get("https://10.0.0.1/", proxy=proxy.url)
    assert refused.value.status == 403
    assert data["error"] == "Forbidden" and "only to loopback" in data["detail"]
    lines = [r for r in caplog.records if r.name == "local_server.proxy"]
    assert len(lines) == 2 and all(r.levelno == logging.WARNING for r in lines)
    assert "example.com" in lines[0].getMessage() and "\n" not in lines[0].getMessage()
    assert not [name for name in looked_up if name in ("example.com", "10.0.0.1")]
    assert proxy.stats().refused == 2


def test_the_log_is_rate_limited(proxy, caplog):
    caplog.set_level(logging.INFO, logger="local_server.proxy")
    for _ in range(5):
        raw_exchange(proxy.port, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
    lines = [r for r in caplog.records if r.name == "local_server.proxy"]
    assert len(lines) == 1 and proxy.stats().refused == 5


def test_a_request_to_the_proxy_itself_is_refused(proxy):
    status, data = status_and_json(
        raw_exchange(proxy.port, f"GET {proxy.url}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    )
    assert status == 403 and "loop" in data["detail"]
    status, _ = status_and_json(
        raw_exchange(proxy.port, f"CONNECT 127.0.0.1:{proxy.port} HTTP/1.1\r\n\r\n".encode())
    )
    assert status == 403


# --- proxy authentication ---------------------------------------------------------------


async def test_basic_proxy_auth_407_then_accepted_and_never_forwarded(origin, tls):
    good = aiohttp.encode_basic_auth("ada", "s3cret")
    with start_proxy(auth=("ada", "s3cret")) as proxy:
        async with aiohttp.ClientSession() as session:
            async with session.get(origin.url + "/get", proxy=proxy.url) as r:
                assert r.status == 407
                assert r.headers["Proxy-Authenticate"] == 'Basic realm="course proxy"'
                assert "wants credentials" in (await r.json())["detail"]
            wrong = proxy.url.replace("http://", "http://ada:nope@")
            async with session.get(origin.url + "/get", proxy=wrong) as r:
                assert r.status == 407
            right = proxy.url.replace("http://", "http://ada:s3cret@")
            async with session.get(origin.url + "/get", proxy=right) as r:
                assert r.status == 200
                received = (await r.json())["headers"]
            with pytest.raises(aiohttp.ClientHttpProxyError) as refused:
                await session.get(tls.good + "/get", proxy=proxy.url)
            assert refused.value.status == 407
            context = ssl.create_default_context(cafile=tls.ca_pem)
            async with session.get(
                tls.good + "/get",
                proxy=proxy.url,
                proxy_headers={"Proxy-Authorization": good},
                ssl=context,
            ) as r:
                assert r.status == 200
        assert "Proxy-Authorization" not in received and "Authorization" not in received
        wait_idle(proxy)
        records = proxy.stats().records
    assert [(r.kind, r.status, r.authorized) for r in records] == [
        ("http", 407, False),
        ("http", 407, False),
        ("http", 200, True),
        ("connect", 407, False),
        ("connect", 200, True),
    ]


def test_malformed_credentials_are_a_407_not_a_crash(origin):
    with start_proxy(auth=("ada", "pw")) as proxy:
        for value in ("Basic !!!", "Basic " + base64.b64encode(b"\xff\xfe").decode(), "Bearer x",
                      "Basic " + base64.b64encode(b"no-colon").decode()):  # fmt: skip
            request = (
                f"GET {origin.url}/get HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {value}\r\n\r\n"
            )
            status, data = status_and_json(raw_exchange(proxy.port, request.encode()))
            assert status == 407 and "not the proxy's" in data["detail"]


def test_a_user_name_with_a_colon_is_refused_at_start():
    with pytest.raises(ValueError):
        start_proxy(auth=("a:b", "pw"))


# --- TLS interception -------------------------------------------------------------------


async def test_intercepting_needs_its_ca_and_records_the_decrypted_requests(tls):
    with start_proxy(intercept=True, upstream_cafile=tls.ca_pem) as proxy:
        assert proxy.ca_pem is not None and os.path.exists(proxy.ca_pem)
        origin_ca = ssl.create_default_context(cafile=tls.ca_pem)
        proxy_ca = ssl.create_default_context(cafile=proxy.ca_pem)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
                await session.get(tls.good + "/get", proxy=proxy.url, ssl=origin_ca)
            assert refused.value.certificate_error.verify_code == 20
            async with session.get(
                tls.good + "/get?q=1", proxy=proxy.url, ssl=proxy_ca,
                headers={"Authorization": "Bearer t"},
            ) as r:  # fmt: skip
                received = (await r.json())["headers"]
            async with session.get(tls.expired + "/get", proxy=proxy.url, ssl=proxy_ca) as r:
                assert r.status == 502
                assert "certificate has expired" in (await r.json())["detail"]
        wait_idle(proxy)
        records = proxy.stats().records
        directory = os.path.dirname(proxy.ca_pem)
    assert received["Via"] == VIA and received["Authorization"] == "Bearer t"
    assert [(r.kind, r.target, r.status) for r in records] == [
        ("connect", f"localhost:{tls.port('good')}", 200),
        ("connect", f"localhost:{tls.port('good')}", 200),
        ("intercepted", f"{tls.good}/get?q=1", 200),
        ("connect", f"localhost:{tls.port('expired')}", 200),
        ("intercepted", f"{tls.expired}/get", 502),
    ]
    assert "did not complete" in records[0].detail
    assert records[2].header("Authorization") == "Bearer t"  # what the proxy could read
    assert not os.path.exists(directory)


async def test_the_intercepting_proxy_issues_a_certificate_for_the_host_asked(tls):
    with start_proxy(intercept=True, upstream_cafile=tls.ca_pem) as proxy:
        context = ssl.create_default_context(cafile=proxy.ca_pem)
        async with aiohttp.ClientSession() as session:
            url = f"https://127.0.0.1:{tls.port('good')}/get"  # the origin's own is for localhost
            async with session.get(url, proxy=proxy.url, ssl=context) as r:
                assert r.status == 502  # the proxy checks the origin's name as a client would
            async with session.get(tls.good + "/tls", proxy=proxy.url, ssl=context) as r:
                assert (await r.json())["tls"] is True


# --- malformed input and bounds -----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n", 400, "absolute URL"),
        (b"GET https://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "CONNECT"),
        (b"GET ftp://127.0.0.1/ HTTP/1.1\r\n\r\n", 400, "http:// URLs only"),
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400, "request line"),
        (b"get http://127.0.0.1:1/ HTTP/1.1\r\n\r\n", 400, "method"),
        (b"CONNECT nowhere HTTP/1.1\r\n\r\n", 400, "host:port"),
        (b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", 400, "host:port"),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nBad header\r\n\r\n", 400, "malformed header"),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "folds"),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade"
         b"\r\n\r\n", 501, "upgrades"),
        (b"POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "Content-Length"),
        (b"POST http://127.0.0.1:1/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "chunked"),
        (b"POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413, "over"),
    ],
)
def test_malformed_requests_get_json_errors_and_no_traceback(
    proxy, caplog, request_bytes, status, words
):
    caplog.set_level(logging.DEBUG)
    got, data = status_and_json(raw_exchange(proxy.port, request_bytes))
    assert got == status and words in data["detail"], data
    assert set(data) == {"error", "detail"}
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


def test_head_size_and_header_count_are_capped():
    limits = ProxyLimits(head_bytes=1024, headers=5)
    with start_proxy(limits=limits) as proxy:
        big = b"GET http://127.0.0.1:1/ HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n"
        assert status_and_json(raw_exchange(proxy.port, big))[0] == 431
        many = b"GET http://127.0.0.1:1/ HTTP/1.1\r\n" + b"X: 1\r\n" * 6 + b"\r\n"
        assert status_and_json(raw_exchange(proxy.port, many))[0] == 431


def test_a_slow_head_gets_408_and_an_idle_keepalive_is_closed(origin):
    with start_proxy(limits=ProxyLimits(head_timeout=0.3, idle_timeout=0.3)) as proxy:
        started = time.monotonic()
        assert status_and_json(raw_exchange(proxy.port, b"GET http://127"))[0] == 408
        assert time.monotonic() - started < 3
        request = f"GET {origin.url}/get HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        answer = raw_exchange(proxy.port, request)  # then nothing: closed after 0.3 s
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in answer


def test_an_idle_tunnel_is_closed_and_its_bytes_are_counted(origin):
    with start_proxy(limits=ProxyLimits(idle_timeout=0.3)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 200 Connection Established")
            sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            started = time.monotonic()
            while chunk := sock.recv(65536):
                received += chunk
            assert time.monotonic() - started < 4
        assert received.startswith(b"HTTP/1.1 200")
        wait_idle(proxy)
        (tunnel,) = proxy.stats().records
        assert "without a byte" in tunnel.detail
        assert tunnel.bytes_down > len(received)  # its 200 line too


def test_a_tunnel_carrying_too_much_is_cut(origin):
    with start_proxy(limits=ProxyLimits(tunnel_bytes=50_000)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
            sock.recv(100)
            sock.sendall(b"GET /files/1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            received = 0
            while chunk := sock.recv(65536):
                received += len(chunk)
        assert received < 1_000_000
        wait_idle(proxy)
        assert "bytes one way" in proxy.stats().records[0].detail


def test_connections_over_the_cap_get_503(origin):
    with start_proxy(limits=ProxyLimits(connections=2)) as proxy:
        held = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(2)]
        try:
            time.sleep(0.1)
            status, data = status_and_json(raw_exchange(proxy.port, b""))
            assert status == 503 and "connections open" in data["detail"]
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        request = f"GET {origin.url}/get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert raw_exchange(proxy.port, request.encode()).startswith(b"HTTP/1.1 200")


async def test_a_slow_origin_is_a_504(origin):
    with start_proxy(limits=ProxyLimits(response_timeout=0.3)) as proxy:
        async with aiohttp.ClientSession() as session:
            async with session.get(origin.url + "/delay/2", proxy=proxy.url) as r:
                assert r.status == 504
                assert "did not answer" in (await r.json())["detail"]


def test_records_are_bounded_and_reset():
    with start_proxy(limits=ProxyLimits(records=3)) as proxy:
        for _ in range(5):
            raw_exchange(proxy.port, b"GET http://example.com/ HTTP/1.1\r\n\r\n")
        stats = proxy.stats()
        assert stats.requests == 3 and stats.records_omitted == 2 and stats.refused == 5
        json.dumps(stats.as_dict())
        proxy.reset_stats()
        assert proxy.stats().requests == 0 and proxy.stats().connections_opened == 0


def test_long_header_values_are_cut_in_the_records(origin, proxy):
    request = f"GET {origin.url}/get HTTP/1.1\r\nHost: x\r\nX-Long: {'a' * 5000}\r\n"
    raw_exchange(proxy.port, (request + "Connection: close\r\n\r\n").encode())
    assert len(proxy.stats().records[0].header("X-Long")) == proxy_module.HEADER_VALUE_LIMIT


# --- stopping ---------------------------------------------------------------------------


def test_stop_closes_every_connection_and_tunnel_and_ends_the_thread(origin, tls):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    proxy = start_proxy(intercept=True, upstream_cafile=tls.ca_pem)
    port, ca_directory = proxy.port, os.path.dirname(proxy.ca_pem)
    keepalive = socket.create_connection(("127.0.0.1", port))
    keepalive.sendall(f"GET {origin.url}/get HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert keepalive.recv(12) == b"HTTP/1.1 200"
    tunnel = socket.create_connection(("127.0.0.1", port))
    tunnel.sendall(f"CONNECT localhost:{tls.port('good')} HTTP/1.1\r\n\r\n".encode())
    assert tunnel.recv(12) == b"HTTP/1.1 200"
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"GET http://127.0.0.1")  # a head never finished
    time.sleep(0.1)
    proxy.stop()
    proxy.stop()  # idempotent
    for sock in (keepalive, tunnel, half):
        sock.settimeout(3)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        sock.close()
    assert not proxy.running and not os.path.exists(ca_directory)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    mine = [
        c for c in psutil.Process().net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status != "TIME_WAIT"
    ]  # fmt: skip
    assert not mine, mine
    assert "local_server-proxy" not in {t.name for t in threading.enumerate()}
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert proxy not in proxy_module._live_proxies
    assert "stopped" in repr(proxy)


def test_a_proxy_left_running_is_stopped_at_exit():
    proxy = start_proxy()
    assert proxy in proxy_module._live_proxies
    proxy_module._stop_all()
    assert not proxy.running


async def test_nothing_reaches_stderr_when_used_from_a_loop(origin, capfd):
    with start_proxy() as proxy:

        async def fetch(session: aiohttp.ClientSession, n: int) -> int:
            async with session.get(origin.url + f"/get?n={n}", proxy=proxy.url) as response:
                await response.read()
                return response.status

        async with aiohttp.ClientSession() as session:
            statuses = await asyncio.gather(*(fetch(session, n) for n in range(20)))
        assert statuses == [200] * 20
    assert capfd.readouterr().err == ""
