"""The WebSocket endpoints (/ws/...): what lesson 10's client code relies on.

Also pins down what an aiohttp 3.14 *client* does when a peer stops answering pings
(``heartbeat=``) and when ``ClientWSTimeout(ws_receive=...)`` runs out, since the lesson
teaches exactly that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from conftest import assert_json_error

from local_server import create_app, start_server, timing, websockets
from local_server.app import endpoint_index

SEED = 1234
# Every path with query parameters that are valid: used for plain-HTTP and shutdown checks.
WS_PATHS = [
    "/ws/echo",
    "/ws/chat?name=ada",
    "/ws/push?count=1000&interval=5",
    "/ws/close?code=4000&after=10",
    "/ws/silent",
    "/ws/ticks?interval=5",
]


@pytest.fixture(autouse=True)
def no_error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No test here may make anything (server, client, asyncio) log an error."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The server's deliberate waits, recorded instead of waited for."""
    asked: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(timing, "sleep", fake_sleep)
    return asked


@pytest.fixture
async def client(aiohttp_client) -> TestClient:
    """A fresh course app on pytest-aiohttp's test server (which, unlike the course's runner,
    cancels a handler once its client has disconnected)."""
    return await aiohttp_client(create_app(seed=SEED))


def open_count(client: TestClient) -> int:
    """How many WebSockets the server has open now."""
    return len(client.server.app[websockets.OPEN_SOCKETS].conversations)


async def eventually_closed(client: TestClient, within: float = 1.0) -> float:
    """Wait until the server has no WebSocket open; return how long that took."""
    start = time.perf_counter()
    while open_count(client) and time.perf_counter() - start < within:
        await asyncio.sleep(0.005)
    assert open_count(client) == 0, "the server still holds a WebSocket open"
    return time.perf_counter() - start


async def receive_until_close(ws: aiohttp.ClientWebSocketResponse) -> list[aiohttp.WSMessage]:
    """Every message up to and including the CLOSE (or CLOSED/ERROR) one."""
    messages = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        messages.append(msg)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            return messages


# --- /ws/echo --------------------------------------------------------------------------------


async def test_echo_text_binary_and_json(client):
    async with client.ws_connect("/ws/echo") as ws:
        await ws.send_str("héllo")
        assert await ws.receive_str() == "héllo"
        await ws.send_bytes(b"\x00\xffbytes")
        msg = await ws.receive()
        assert msg.type is WSMsgType.BINARY and msg.data == b"\x00\xffbytes"
        payload = {"n": 1, "list": [1.5, None, True], "text": "日本"}
        await ws.send_json(payload)
        assert await ws.receive_json() == payload
        await ws.send_str("Close")  # only the exact text "close" closes
        assert await ws.receive_str() == "Close"
    assert ws.close_code == 1000  # the client closed, the server answered


async def test_echo_close_command_closes_with_1000(client):
    async with client.ws_connect("/ws/echo") as ws:
        await ws.send_str("close")
        msg = await ws.receive()
        assert msg.type is WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (1000, "closed on request")
        assert ws.closed and ws.close_code == 1000
        assert (await ws.receive()).type is WSMsgType.CLOSED
    await eventually_closed(client)


async def test_echo_message_size_limit(client):
    limit = websockets.ECHO_MAX_MESSAGE_BYTES
    async with client.ws_connect("/ws/echo") as ws:
        await ws.send_bytes(b"x" * limit)
        assert len(await ws.receive_bytes()) == limit
        await ws.send_bytes(b"x" * (limit + 1))  # one byte over
        msg = await ws.receive()
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1009)  # MESSAGE_TOO_BIG
    assert ws.close_code == 1009
    await eventually_closed(client)


# --- /ws/chat --------------------------------------------------------------------------------


async def join(client: TestClient, query: str, **kwargs) -> aiohttp.ClientWebSocketResponse:
    """Connect to the chat and read the welcome: from then on the server counts us in."""
    ws = await client.ws_connect(f"/ws/chat?{query}", **kwargs)
    welcome = await ws.receive_json(timeout=2)
    assert welcome["type"] == "welcome"
    return ws


async def test_chat_among_three(client):
    ada = await join(client, "name=ada")
    bob = await join(client, "name=bob")
    try:
        assert await ada.receive_json(timeout=2) == {"type": "join", "name": "bob", "members": 2}
        cy = await client.ws_connect("/ws/chat?name=cy")
        welcome = await cy.receive_json(timeout=2)
        assert welcome == {
            "type": "welcome",
            "room": "lobby",
            "name": "cy",
            "members": ["ada", "bob"],
        }
        for ws in (ada, bob):
            assert await ws.receive_json(timeout=2) == {"type": "join", "name": "cy", "members": 3}

        await ada.send_str("hi all")
        expected = {"type": "message", "from": "ada", "text": "hi all"}
        assert await bob.receive_json(timeout=2) == expected
        assert await cy.receive_json(timeout=2) == expected

        await cy.close()
        for ws in (ada, bob):
            assert await ws.receive_json(timeout=2) == {"type": "leave", "name": "cy", "members": 2}
        await bob.send_str("bye cy")
        # ada's next message is bob's: she never got her own "hi all" back
        assert await ada.receive_json(timeout=2) == {
            "type": "message", "from": "bob", "text": "bye cy"
        }  # fmt: skip
    finally:
        await ada.close()
        await bob.close()
    await eventually_closed(client)
    assert client.server.app[websockets.CHAT_ROOMS] == {}  # empty rooms are forgotten


async def test_chat_rooms_are_separate_per_learner_and_room(client):
    ada = await join(client, "name=ada")
    other_learner = await join(client, "name=eve", headers={"X-Learner": "eve"})
    other_room = await join(client, "name=max&room=second")
    via_query = await join(client, "name=ida&learner=eve")
    try:
        # eve and ida share the learner namespace "eve": ida's arrival is announced to eve only
        assert await other_learner.receive_json(timeout=2) == {
            "type": "join", "name": "ida", "members": 2
        }  # fmt: skip
        await ada.send_str("anyone?")
        await via_query.send_str("hello eve")
        assert await other_learner.receive_json(timeout=2) == {
            "type": "message", "from": "ida", "text": "hello eve"
        }  # fmt: skip
        for ws in (ada, other_room):  # nothing reached the other rooms
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.1)
    finally:
        for ws in (ada, other_learner, other_room, via_query):
            await ws.close()


async def test_chat_leave_on_a_real_server(session):
    """The course's runner does not cancel handlers (the test server does): same notices."""
    with start_server() as server:
        async with session.ws_connect(server.url + "/ws/chat?name=ada&room=r") as ada:
            assert (await ada.receive_json(timeout=2))["type"] == "welcome"
            async with session.ws_connect(server.url + "/ws/chat?name=bob&room=r") as bob:
                assert (await bob.receive_json(timeout=2))["members"] == ["ada"]
                assert (await ada.receive_json(timeout=2))["type"] == "join"
            assert await ada.receive_json(timeout=2) == {
                "type": "leave", "name": "bob", "members": 1
            }  # fmt: skip


async def test_chat_binary_gets_an_error_message(client):
    ada = await join(client, "name=ada")
    try:
        await ada.send_bytes(b"\x01")
        assert await ada.receive_json(timeout=2) == {
            "type": "error", "detail": "chat messages must be text"
        }  # fmt: skip
    finally:
        await ada.close()


async def test_chat_room_is_bounded(client, monkeypatch):
    monkeypatch.setattr(websockets, "MAX_CHAT_MEMBERS", 2)
    first = await join(client, "name=a")
    second = await join(client, "name=b")
    try:
        resp = await client.get(
            "/ws/chat?name=c",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        data = await assert_json_error(resp, 409)
        assert "full" in data["detail"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect("/ws/chat?name=c")
        assert info.value.status == 409
        third = await join(client, "name=c&room=other")  # another room still has space
        await third.close()
    finally:
        await first.close()
        await second.close()


# --- /ws/push --------------------------------------------------------------------------------


async def test_push_sends_count_messages_in_order_then_closes_1000(client, sleeps):
    async with client.ws_connect("/ws/push?count=5&interval=0.25") as ws:
        messages = await receive_until_close(ws)
    assert [json.loads(m.data) for m in messages[:-1]] == [
        {"seq": i, "count": 5} for i in range(1, 6)
    ]
    close = messages[-1]
    assert (close.type, close.data, close.extra) == (WSMsgType.CLOSE, 1000, "push complete")
    assert ws.close_code == 1000
    assert sleeps == [0.25] * 4  # between messages, not before the first or after the last


async def test_push_defaults_and_zero(client, sleeps):
    async with client.ws_connect("/ws/push") as ws:
        messages = await receive_until_close(ws)
    assert len(messages) == 11 and sleeps == [0.1] * 9
    async with client.ws_connect("/ws/push?count=0") as ws:
        (close,) = await receive_until_close(ws)
    assert (close.type, close.data) == (WSMsgType.CLOSE, 1000)


async def test_push_stops_when_the_client_leaves(client):
    async with client.ws_connect("/ws/push?count=1000&interval=0.02") as ws:
        assert (await ws.receive_json(timeout=2))["seq"] == 1
        assert (await ws.receive_json(timeout=2))["seq"] == 2
    assert await eventually_closed(client, within=0.5) < 0.5


# --- /ws/close -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1008, 1011, 3000, 4000, 4999])
async def test_close_with_chosen_code_and_reason(client, sleeps, code):
    async with client.ws_connect(f"/ws/close?code={code}&reason=bye%20now&after=2.5") as ws:
        (msg,) = await receive_until_close(ws)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, code, "bye now")
    assert ws.close_code == code
    assert sleeps == [2.5]


async def test_close_after_a_real_delay_and_defaults(client):
    start = time.perf_counter()
    async with client.ws_connect("/ws/close?after=0.1") as ws:
        (msg,) = await receive_until_close(ws)
    assert 0.09 <= time.perf_counter() - start < 5  # it closed after the delay, not never
    assert (msg.data, msg.extra) == (1000, "")


async def test_close_reason_of_123_bytes_is_the_limit(client):
    async with client.ws_connect("/ws/close?reason=" + "é" * 61 + "x") as ws:  # 123 bytes
        (msg,) = await receive_until_close(ws)
    assert msg.extra == "é" * 61 + "x"


@pytest.mark.parametrize(
    "query",
    ["code=999", "code=1002", "code=1004", "code=1005", "code=1006", "code=1012", "code=1015",
     "code=2999", "code=5000", "code=-1", "code=abc", "code=1e3", "code=", "after=-1",
     "after=11", "after=nan", "after=inf", "reason=" + "x" * 124],
)  # fmt: skip
async def test_close_bad_query_is_400_before_the_upgrade(client, query):
    data = await assert_json_error(await client.get(f"/ws/close?{query}"), 400)
    assert "code" in data["detail"] or "after" in data["detail"] or "reason" in data["detail"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(f"/ws/close?{query}")
    assert info.value.status == 400


# --- bad input on every endpoint -------------------------------------------------------------


@pytest.mark.parametrize("path", WS_PATHS)
async def test_plain_http_get_is_400_json(client, path):
    data = await assert_json_error(await client.get(path), 400)
    assert "WebSocket upgrade" in data["detail"] and "ws_connect" in data["detail"]


async def test_broken_handshake_is_400_json(client):
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "99"}
    data = await assert_json_error(await client.get("/ws/echo", headers=headers), 400)
    assert "handshake is invalid" in data["detail"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_other_methods_are_405_json(client, method):
    await assert_json_error(await client.request(method, "/ws/echo"), 405)


@pytest.mark.parametrize(
    "path",
    ["/ws/push?count=1001", "/ws/push?count=-1", "/ws/push?count=x", "/ws/push?interval=10.5",
     "/ws/push?interval=-0.1", "/ws/push?interval=nan", "/ws/ticks?interval=0",
     "/ws/ticks?interval=11", "/ws/chat", "/ws/chat?name=", "/ws/chat?name=" + "n" * 33,
     "/ws/chat?name=a%0Ab", "/ws/chat?name=a&room=bad%20room", "/ws/chat?name=a&room=",
     "/ws/chat?name=a&learner=bad%20name", "/ws/echo?learner=" + "x" * 40],
)  # fmt: skip
async def test_bad_query_is_400_before_the_upgrade(client, path):
    await assert_json_error(await client.get(path), 400)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(path)
    assert info.value.status == 400
    assert open_count(client) == 0
    assert client.server.app[websockets.CHAT_ROOMS] == {}


def test_every_ws_handler_is_listed_with_a_short_description():
    entries = {e["path"]: e for e in endpoint_index(create_app()) if e["path"].startswith("/ws")}
    assert set(entries) == {path.split("?")[0] for path in WS_PATHS}
    for entry in entries.values():
        assert entry["methods"] == "GET"
        assert entry["description"].startswith("WebSocket")
        assert len(entry["description"]) <= 80, entry


# --- /ws/silent: what an aiohttp client does with a dead peer --------------------------------


async def test_heartbeat_finds_the_silent_peer(client):
    """heartbeat=0.1: a ping after 0.1 s of silence, and no pong within 0.05 s more."""
    async with client.ws_connect("/ws/silent", heartbeat=0.1) as ws:
        start = time.perf_counter()
        msg = await ws.receive()
        elapsed = time.perf_counter() - start
        assert msg.type is WSMsgType.ERROR
        assert isinstance(msg.data, aiohttp.ServerTimeoutError)
        assert str(msg.data) == "No PONG received after 0.05 seconds"
        assert ws.exception() is msg.data
        assert ws.closed and ws.close_code == 1006  # ABNORMAL_CLOSURE: no close handshake
        assert (await ws.receive()).type is WSMsgType.CLOSED
    assert 0.1 <= elapsed < 0.6
    await eventually_closed(client)  # the client dropped the connection; the server noticed


async def test_receive_timeout_raises_timeout_error_and_leaves_the_socket_open(client):
    """ClientWSTimeout(ws_receive=...) raises the builtin TimeoutError, not a ClientError."""
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.1)
    async with client.ws_connect("/ws/silent", timeout=timeout) as ws:
        start = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError) as info:  # builtin TimeoutError since 3.11
            await ws.receive()
        assert 0.09 <= time.perf_counter() - start < 0.6
        assert info.type is asyncio.TimeoutError  # exactly: not aiohttp's ServerTimeoutError
        assert not isinstance(info.value, aiohttp.ClientError)
        assert not ws.closed
        assert ws.close_code == 1006  # set already, although the socket is still open
        start = time.perf_counter()
        assert await ws.close() is True
        assert time.perf_counter() - start < 0.5  # close() no longer waits for the server
    assert ws.close_code == 1006
    await eventually_closed(client)


async def test_socket_still_works_after_a_receive_timeout(client):
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.05)
    async with client.ws_connect("/ws/echo", timeout=timeout) as ws:
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive()
        await ws.send_str("still here")
        assert await ws.receive_str() == "still here"


async def test_silent_peer_never_sends_and_ends_when_the_client_closes(client):
    async with client.ws_connect("/ws/silent", autoping=False) as ws:
        waiting = asyncio.ensure_future(ws.receive())  # autoping=False: a PONG would show here
        await ws.ping(b"anyone?")
        await ws.send_str("hello?")
        await asyncio.sleep(0.15)
        assert not waiting.done()  # no pong, no echo, nothing
        # Not receive(timeout=...): an interrupted receive() makes close() skip the handshake.
    assert (await waiting).type is WSMsgType.CLOSING  # close() ended our receive()
    assert ws.close_code == 1000  # the silent peer still answers the closing handshake
    await eventually_closed(client)


# --- /ws/ticks -------------------------------------------------------------------------------


async def test_ticks_while_echoing(client):
    async with client.ws_connect("/ws/ticks?interval=0.02") as ws:
        await ws.send_str("ping me")
        await ws.send_bytes(b"raw")
        seen: list[object] = []
        while len([m for m in seen if isinstance(m, dict) and m["type"] == "tick"]) < 3:
            msg = await ws.receive(timeout=2)
            seen.append(json.loads(msg.data) if msg.type is WSMsgType.TEXT else msg.data)
    assert {"type": "echo", "text": "ping me"} in seen and b"raw" in seen
    ticks = [m["seq"] for m in seen if isinstance(m, dict) and m["type"] == "tick"]
    assert ticks == [1, 2, 3]
    await eventually_closed(client)


async def test_ticks_stop_at_the_limit(client, sleeps, monkeypatch):
    monkeypatch.setattr(websockets, "MAX_TICKS", 3)
    async with client.ws_connect("/ws/ticks?interval=0.5") as ws:
        messages = await receive_until_close(ws)
    assert [json.loads(m.data)["seq"] for m in messages[:-1]] == [1, 2, 3]
    assert (messages[-1].data, messages[-1].extra) == (1000, "tick limit reached")
    assert sleeps == [0.5] * 3


# --- shutdown with clients connected ---------------------------------------------------------


async def connect_all(session: aiohttp.ClientSession, base: str) -> list:
    return [await session.ws_connect(base + path) for path in WS_PATHS]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_stop_closes_every_socket_with_1001(session):
    """Clients still reading while the server stops (in another thread) see a clean 1001."""
    server = start_server()
    try:
        sockets = await connect_all(session, server.url)
        readers = [asyncio.ensure_future(receive_until_close(ws)) for ws in sockets]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await asyncio.to_thread(server.stop)
        assert time.perf_counter() - start < 2.0
    finally:
        server.stop()
    for ws, reader in zip(sockets, readers, strict=True):
        close = (await reader)[-1]
        assert (close.type, close.data, close.extra) == (
            WSMsgType.CLOSE, 1001, "server shutting down"
        )  # fmt: skip
        assert ws.close_code == 1001
        await ws.close()


async def test_stop_from_a_blocked_loop_is_prompt(session):
    """As in a notebook: stop() blocks the loop the clients run on, so they cannot answer the
    close frame; the server waits a quarter of a second for them, then drops them."""
    server = start_server()
    try:
        sockets = await connect_all(session, server.url)
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        server.stop()
        assert time.perf_counter() - start < 2.0
    finally:
        server.stop()
    for ws in sockets:
        close = (await receive_until_close(ws))[-1]
        assert (close.type, close.data) == (WSMsgType.CLOSE, 1001)
        await ws.close()


async def test_runner_cleanup_does_not_wait_for_the_grace_period(session):
    """Like ``python -m local_server``: a runner with a long shutdown_timeout still stops at
    once, because every handler ends by itself after its socket is closed."""
    runner = web.AppRunner(create_app(seed=SEED), shutdown_timeout=30)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        sockets = await connect_all(session, f"http://127.0.0.1:{site.port}")
        readers = [asyncio.ensure_future(receive_until_close(ws)) for ws in sockets]
        await asyncio.sleep(0.05)
    except BaseException:
        await runner.cleanup()
        raise
    start = time.perf_counter()
    await runner.cleanup()
    assert time.perf_counter() - start < 1.0
    for ws, reader in zip(sockets, readers, strict=True):
        assert (await reader)[-1].data == 1001
        assert ws.close_code == 1001
        await ws.close()
