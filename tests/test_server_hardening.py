"""The course server for a room: each finding of the hostile-client review, reproduced first.

Real sockets where the finding needs them: a raw client that speaks HTTP or the WebSocket
handshake by hand, reads nothing, trickles bytes, or resets the connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import threading
import time
import zlib

import aiohttp
import psutil
import pytest
from aiohttp import web

from local_server import hardening, start_server
from local_server.app import create_app
from local_server.hardening import Limits

# --- raw clients -------------------------------------------------------------------------


def raw_request(server, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send ``head`` + ``body`` on a new connection; everything the server answers until close
    or ``timeout``."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def json_of(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def ws_handshake(server, path: str) -> socket.socket:
    """A socket upgraded to a WebSocket by hand; the caller decides whether it ever reads."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)  # one byte at a time: leave any frame after the head unread
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def reset(sock: socket.socket) -> None:
    """Close with an RST, as a client that crashes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture
def server():
    with start_server() as running:
        yield running


@pytest.fixture
def errors_logged():
    """Every record at ERROR or above, from any logger and any thread, during the test."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                records.append(record)

    handler = Keep()
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)


def server_cpu_seconds(server) -> float:
    """CPU time the server's own thread has used so far."""
    native = server._thread.native_id
    for thread in psutil.Process().threads():
        if thread.id == native:
            return thread.user_time + thread.system_time
    raise AssertionError("the server thread is gone")


# --- 1. multipart lines longer than aiohttp reads: 400, never 500 ---------------------------


@pytest.mark.parametrize("path", ["/post", "/anything", "/put", "/upload"])
@pytest.mark.parametrize("shape", ["no-newline", "long-part-header"])
def test_an_over_long_multipart_line_is_a_400(server, path, shape, errors_logged):
    if shape == "no-newline":
        body = b"--b\r\n" + b"x" * 600_000
    else:
        body = b"--b\r\nX-Long: " + b"y" * 10_000 + b"\r\n\r\nv\r\n--b--\r\n"
    method = "PUT" if path == "/put" else "POST"
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = raw_request(server, head, body)
    assert status_of(answer) in (400, 413), answer[:200]
    assert json_of(answer)["detail"]
    assert not errors_logged


# --- 2. a WebSocket client that resets mid-send is not a server error ----------------------


def test_an_echo_client_that_floods_then_resets_logs_nothing(server, errors_logged):
    sock = ws_handshake(server, "/ws/echo")
    frame = ws_frame(b"z" * (512 * 1024))
    try:
        for _ in range(40):  # 20 MiB echoed back to a client that never reads
            sock.sendall(frame)
    except OSError:
        pass  # the server stopped reading: its writes to us are stuck
    reset(sock)
    _until_idle(server)
    assert not errors_logged, [r.getMessage() for r in errors_logged]


def _until_idle(server, patience: float = 5.0) -> None:
    give_up = time.monotonic() + patience
    while server.stats().in_flight and time.monotonic() < give_up:
        time.sleep(0.02)


# --- 3. one stuck chat member cannot stall the room ----------------------------------------

CHAT_MESSAGES = 400
# 400 of these (24 MB) are more than loopback's socket buffers can hide from the server.
MESSAGE_BYTES = 60 * 1024


async def test_a_chat_member_that_never_reads_stalls_nobody(server, errors_logged):
    stuck = ws_handshake(server, "/ws/chat?name=stuck&room=r")  # never reads a byte
    try:
        async with aiohttp.ClientSession() as session:
            reader = await session.ws_connect(f"{server.url}/ws/chat?name=reader&room=r")
            sender = await session.ws_connect(f"{server.url}/ws/chat?name=sender&room=r")

            async def read_all() -> int:
                got = 0
                while got < CHAT_MESSAGES:
                    message = await reader.receive()
                    assert message.type is aiohttp.WSMsgType.TEXT, message
                    got += json.loads(message.data)["type"] == "message"
                return got

            async def send_all() -> None:
                for _ in range(CHAT_MESSAGES):
                    await sender.send_str("m" * MESSAGE_BYTES)
                    await asyncio.sleep(0.001)  # a fast chat, not a loop that starves the reader

            async with asyncio.timeout(20):
                got, _ = await asyncio.gather(read_all(), send_all())
            assert got == CHAT_MESSAGES
            await reader.close()
            await sender.close()
    finally:
        stuck.close()
    assert not errors_logged, [r.getMessage() for r in errors_logged]


async def test_the_stuck_member_is_the_one_disconnected(server):
    stuck = ws_handshake(server, "/ws/chat?name=stuck&room=s")
    try:
        async with aiohttp.ClientSession() as session:
            sender = await session.ws_connect(f"{server.url}/ws/chat?name=sender&room=s")
            text = "m" * MESSAGE_BYTES
            for _ in range(CHAT_MESSAGES):
                await sender.send_str(text)
            # The stuck member left the room: the sender is told, and keeps its connection.
            async with asyncio.timeout(10):
                while True:
                    message = json.loads((await sender.receive()).data)
                    if message["type"] == "leave" and message["name"] == "stuck":
                        break
            assert not sender.closed
            await sender.close()
    finally:
        stuck.close()


# --- 5. a compressed body left unread is not inflated ---------------------------------------


def _gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(inflated >> 20)), packer.flush()])


BOMB = _gzip_bomb(1 << 30)  # 1 GiB of zeros in about 1 MB


@pytest.mark.parametrize("path", ["/post", "/status/200", "/upload", "/anything"])
def test_a_decompression_bomb_costs_the_server_no_cpu(server, path, errors_logged):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(BOMB)}\r\n\r\n"
    ).encode()
    before = server_cpu_seconds(server)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        try:
            sock.sendall(head + BOMB)
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = b""
        while chunk := _recv(sock):
            answer += chunk
    assert status_of(answer) in (200, 413)
    # Inflating 1 GiB takes seconds of CPU; refusing it, milliseconds.
    assert server_cpu_seconds(server) - before < 0.5
    assert not errors_logged


def _recv(sock: socket.socket) -> bytes:
    """The next bytes, or b"" once the server closed (or reset) the connection."""
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


# --- 6. state per learner stays bounded, and /stats cheap -----------------------------------


async def test_distinct_long_paths_keep_the_stats_small(server):
    async with aiohttp.ClientSession(headers={"X-Learner": "flood"}) as session:
        for i in range(600):
            async with session.get(f"{server.url}/{i:04d}{'p' * 8000}") as response:
                assert response.status == 404
        async with session.get(f"{server.url}/stats") as response:
            raw = await response.read()
    stats = json.loads(raw)
    assert len(raw) < 300_000
    assert all(len(path) <= 100 for path in stats["by_path"])
    assert len(stats["by_path"]) <= 201  # 200 distinct paths, then "(other paths)"
    assert len(stats["timeline"]) == 600


async def test_stats_timeline_is_the_most_recent_and_says_what_it_left_out(server):
    async with aiohttp.ClientSession(headers={"X-Learner": "many"}) as session:
        for i in range(30):
            async with session.get(f"{server.url}/get?i={i}") as response:
                await response.read()
        async with session.get(f"{server.url}/stats", params={"timeline": "10"}) as response:
            stats = await response.json()
        async with session.get(f"{server.url}/stats", params={"timeline": "-1"}) as response:
            assert response.status == 400
    assert len(stats["timeline"]) == 10 and stats["timeline_omitted"] == 20
    assert stats["timeline"][-1]["path"] == "/get"


# --- 7. slow and idle clients are cut off, and one address cannot take every socket --------


@pytest.fixture
def tight_server():
    """The course server with short, small limits: 0.5 s keep-alive, 4 connections a client."""
    limits = Limits(keepalive=0.5, per_client=4, total=8, shutdown=0.5)
    ready = threading.Event()
    holder: dict = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        runner = web.AppRunner(create_app(), **hardening.runner_options(limits))
        await runner.setup()
        holder["caps"] = hardening.install(runner, limits)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["port"] = site.port
        holder["runner"] = runner
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(5)
    ready.wait(5)
    yield holder
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_idle_connection_is_closed_after_the_keepalive(tight_server):
    with socket.create_connection(("127.0.0.1", tight_server["port"])) as sock:
        assert _closed_within(sock, 3)


def test_headers_sent_one_byte_at_a_time_are_cut_off(tight_server):
    with socket.create_connection(("127.0.0.1", tight_server["port"])) as sock:
        started = time.monotonic()
        request = b"GET /get HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.02)
                if time.monotonic() - started > 3:
                    break
        except OSError:
            pass  # cut off: the point
        assert _closed_within(sock, 1)
        assert time.monotonic() - started < 3


def test_one_address_cannot_hold_more_than_its_share(tight_server):
    port = tight_server["port"]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed_within(extra, 2)
        extra.close()
        assert tight_server["caps"].refused >= 1
    finally:
        for sock in held:
            sock.close()


# --- 8. what the parser rejects is one short line, not a traceback per request -------------

MALFORMED = [
    b"GET\t/get HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET /get HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
    b"GET /get HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /get HTTP/9.9\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


def test_malformed_requests_log_one_short_line(server, caplog, monkeypatch):
    monkeypatch.setattr(hardening.TAMER, "_last", -float("inf"))  # no line from an earlier test
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        for request in MALFORMED:
            answer = raw_request(server, request, timeout=2)
            if answer:
                assert status_of(answer) == 400, answer[:120]
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "local_server"))]
    loud = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [r.getMessage()[:120] for r in loud]
    lines = [r for r in records if r.levelno == logging.WARNING]
    assert 1 <= len(lines) <= 5  # rate-limited: about one a second
    assert all("\n" not in r.getMessage() and len(r.getMessage()) < 300 for r in lines)
