"""The HTTPS servers of lesson 16 (``local_server.tls``): each certificate fails as it should,
the course endpoints work over TLS, the servers are bounded, quiet and cleaned up."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time

import aiohttp
import psutil
import pytest
from aiohttp import web

from local_server import hardening, tls
from local_server.tls import KINDS, Certificates, TLSServers, serve_https, start_tls_servers


@pytest.fixture(scope="module")
def servers():
    servers = start_tls_servers()
    yield servers
    servers.stop()


def trusting(servers, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=servers.ca_pem)
    if client_cert:
        context.load_cert_chain(servers.client_cert_pem, servers.client_key_pem)
    return context


async def outcome(url: str, context) -> str:
    """'200' or the verify code / exception class the request ended with."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context) as response:
                await response.read()
                return str(response.status)
        except aiohttp.ClientConnectorCertificateError as error:
            return f"verify {error.certificate_error.verify_code}"
        except aiohttp.ClientError as error:
            return type(error).__name__


def test_certificates_are_made_well_under_a_second():
    started = time.perf_counter()
    certificates = Certificates()
    made = time.perf_counter() - started
    try:
        assert made < 0.5, made
        for kind in KINDS:
            certificates.server_context(kind)
    finally:
        certificates.cleanup()
    assert not os.path.exists(certificates.directory)


def test_starts_with_a_localhost_url_per_kind_on_loopback(servers):
    other = start_tls_servers()
    try:
        assert set(other.urls) == set(KINDS)
        for kind, url in other.urls.items():
            assert url == f"https://localhost:{other.port(kind)}"
            assert getattr(other, kind) == url
        ports = set(other.urls.values()) | set(servers.urls.values())
        assert len(ports) == 2 * len(KINDS)  # every server its own port
        listening = {
            c.laddr for c in psutil.Process().net_connections("tcp") if c.status == "LISTEN"
        }
        for kind in KINDS:
            assert ("127.0.0.1", other.port(kind)) in listening
            assert not any(addr.port == other.port(kind) and addr.ip != "127.0.0.1"
                           for addr in listening)
    finally:
        other.stop()


async def test_each_kind_of_certificate_fails_as_its_name_says(servers):
    context = trusting(servers)
    got = {kind: await outcome(url + "/get", context) for kind, url in servers.urls.items()}
    assert got == {
        "good": "200",
        "wrong_host": "verify 62",  # Hostname mismatch
        "expired": "verify 10",  # certificate has expired
        "self_signed": "verify 18",  # self-signed certificate
        "missing_intermediate": "verify 20",  # unable to get local issuer certificate
        "client_cert": "ServerDisconnectedError",  # no client certificate sent (TLS 1.3)
    }


async def test_the_ca_is_needed_and_the_intermediate_completes_the_chain(servers):
    assert await outcome(servers.good + "/get", True) == "verify 20"
    context = trusting(servers)
    context.load_verify_locations(servers.intermediate_pem)
    assert await outcome(servers.missing_intermediate + "/get", context) == "200"


async def test_a_client_certificate_is_accepted_and_reported(servers):
    context = trusting(servers, client_cert=True)
    async with aiohttp.ClientSession() as session:
        async with session.get(servers.client_cert + "/tls", ssl=context) as response:
            data = await response.json()
        async with session.get(servers.good + "/tls", ssl=context) as response:
            plain = await response.json()
    assert data["tls"] is True and data["version"].startswith("TLSv1.")
    assert data["client_certificate"]["subject"]["commonName"] == tls.CLIENT_NAME
    assert data["client_certificate"]["subject_alt_names"] == [tls.CLIENT_IDENTITY]
    assert plain["client_certificate"] is None  # a server that does not ask gets none


async def test_every_course_endpoint_works_over_https_with_json_errors(servers):
    context = trusting(servers)
    async with aiohttp.ClientSession(servers.good) as session:
        async with session.get("/get?lesson=16", ssl=context) as response:
            assert (await response.json())["args"] == {"lesson": "16"}
        async with session.post("/post", json={"a": 1}, ssl=context) as response:
            assert (await response.json())["json"] == {"a": 1}
        async with session.get("/no/such/path", ssl=context) as response:
            assert response.status == 404
            assert set(await response.json()) == {"error", "detail"}
        async with session.get("/status/418", ssl=context) as response:
            assert response.status == 418
        async with session.get("/delay/abc", ssl=context) as response:
            assert response.status == 400
        async with session.get("/", ssl=context) as response:
            paths = {e["path"] for e in (await response.json())["endpoints"]}
            assert {"/tls", "/get", "/stats"} <= paths


async def test_each_server_counts_its_own_connections(servers):
    servers.reset_stats()
    a, b = trusting(servers), trusting(servers)
    async with aiohttp.ClientSession() as session:
        for context in (a, a, b, b, a):
            async with session.get(servers.good + "/get", ssl=context) as response:
                await response.read()
    assert servers.stats("good").requests == 5
    assert servers.stats("good").connections_opened == 2  # one pool per ssl= context
    assert servers.stats("wrong_host").requests == 0


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the peer closes ``sock`` within ``seconds`` (what it still sends is read)."""
    give_up_at = time.monotonic() + seconds
    try:
        while (left := give_up_at - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return False


def test_a_connection_that_never_handshakes_is_dropped(monkeypatch):
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT_SECONDS", 0.5)
    with start_tls_servers() as servers, socket.create_connection(
        ("127.0.0.1", servers.port("good"))
    ) as sock:
        started = time.monotonic()
        assert _closed_within(sock, 5)
        assert time.monotonic() - started < 3


def test_an_idle_tls_connection_is_closed_after_the_keepalive():
    with start_tls_servers(keepalive=0.5) as servers:
        context = trusting(servers)
        with socket.create_connection(("127.0.0.1", servers.port("good"))) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                assert _closed_within(sock, 3)


def test_one_address_cannot_hold_more_than_its_share():
    limits = hardening.Limits(keepalive=5, per_client=2, total=10, shutdown=0.5)
    servers = TLSServers(None, limits)
    servers._start()
    try:
        context = trusting(servers)
        held = []
        for _ in range(2):
            raw = socket.create_connection(("127.0.0.1", servers.port("good")))
            held.append(context.wrap_socket(raw, server_hostname="localhost"))
        raw = socket.create_connection(("127.0.0.1", servers.port("good")))
        extra = context.wrap_socket(raw, server_hostname="localhost")
        assert _closed_within(extra, 2)
        extra.close()
        for sock in held:
            sock.close()
    finally:
        servers.stop()


def test_bad_handshakes_and_plain_http_log_no_traceback(servers, caplog):
    caplog.set_level(logging.DEBUG)
    port = servers.port("good")
    with socket.create_connection(("127.0.0.1", port)) as sock:  # plain HTTP on a TLS port
        sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\n")
        _closed_within(sock, 2)
    with socket.create_connection(("127.0.0.1", port)) as sock:  # garbage
        sock.sendall(os.urandom(512))
        _closed_within(sock, 2)
    refused = ssl.create_default_context()  # trusts only the system store: refuses the CA
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
        refused.wrap_socket(raw, server_hostname="localhost")
    asyncio.run(outcome(servers.client_cert + "/get", trusting(servers)))  # no client cert
    time.sleep(0.1)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage()[:160] for r in loud]


def test_stop_frees_every_port_removes_the_files_and_ends_the_thread():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    servers = start_tls_servers()
    ports = [servers.port(kind) for kind in KINDS]
    directory = servers.certificates.directory
    files = [servers.ca_pem, servers.client_cert_pem, servers.client_key_pem]
    assert all(os.path.exists(path) for path in files)
    context = trusting(servers)
    kept = context.wrap_socket(
        socket.create_connection(("127.0.0.1", ports[0])), server_hostname="localhost"
    )
    kept.sendall(b"GET /get HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert kept.recv(12).startswith(b"HTTP/1.1 200")  # a keep-alive connection left open
    servers.stop()
    servers.stop()  # idempotent
    assert _closed_within(kept, 3)
    kept.close()
    assert not servers.running and not os.path.exists(directory)
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    mine = [
        c for c in psutil.Process().net_connections("tcp")
        if c.laddr and c.laddr.port in ports and c.status != "TIME_WAIT"
    ]
    assert not mine, mine
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
    assert servers not in tls._live_servers
    assert "stopped" in repr(servers)


async def test_serve_https_serves_any_app_and_cleans_up():
    certificates = Certificates()
    try:

        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"hello": "tls"})

        app = web.Application()
        app.router.add_get("/", hello)
        async with serve_https(app, certificates.server_context("good")) as url:
            port = int(url.rsplit(":", 1)[1])
            assert url == f"https://localhost:{port}"
            context = ssl.create_default_context(cafile=certificates.ca_pem)
            async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as r:
                assert await r.json() == {"hello": "tls"}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        certificates.cleanup()


def test_an_unknown_kind_is_refused_clearly(servers):
    with pytest.raises(KeyError, match="kinds are"):
        servers.url("nope")
    certificates = Certificates()
    try:
        with pytest.raises(ValueError, match="unknown kind"):
            certificates.server_context("nope")
    finally:
        certificates.cleanup()
