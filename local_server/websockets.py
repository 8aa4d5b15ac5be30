"""WebSocket endpoints: echo, broadcast chat, server push, server-initiated close, and a peer that
stops answering pings.

Connect with ``session.ws_connect(url)``. Every endpoint checks its query parameters *before*
the upgrade, so a bad value (or a plain HTTP request without ``Upgrade: websocket``) gets the
usual JSON 400 ``{"error", "detail"}`` and the client's ``ws_connect`` raises
``aiohttp.WSServerHandshakeError`` with ``status == 400``.

==========================================  ==================================================
``/ws/echo``                                text back as text, binary as binary (so JSON text
                                            round-trips with ``send_json``/``receive_json``);
                                            the text ``close`` closes with 1000; messages up
                                            to 1 MiB (larger: closed with 1009)
``/ws/chat?name=N&room=R``                  broadcast chat in a room of the caller's learner
                                            namespace; at most 20 clients a room (then 409)
``/ws/push?count=N&interval=S``             N (≤ 1000) JSON messages ``{"seq", "count"}``,
                                            S (≤ 10) seconds apart, then close 1000
``/ws/close?code=C&reason=R&after=S``       the server closes with code C and reason R after
                                            S (≤ 10) seconds
``/ws/silent``                              never answers pings or sends anything: a dead peer
                                            for a client's ``heartbeat=``
``/ws/ticks?interval=S``                    a tick every S seconds while echoing what it gets
==========================================  ==================================================

When the server stops, every open WebSocket is closed with 1001 (going away) first, so a
shutdown never waits on connected clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from . import timing
from .errors import bad_request
from .learners import learner_of
from .params import query_float, query_int

routes = web.RouteTableDef()

ECHO_MAX_MESSAGE_BYTES = 1024 * 1024
# Chat, silent and ticks need no large messages; chat messages are copied to every member.
SMALL_MAX_MESSAGE_BYTES = 64 * 1024
# How long the server's own ``close()`` waits for the client's answering close frame.
CLOSE_HANDSHAKE_SECONDS = 2.0
# How long the shutdown hook waits for each socket's close before dropping the connection.
SHUTDOWN_CLOSE_SECONDS = 0.25

MAX_PUSH_COUNT = 1000
MAX_INTERVAL_SECONDS = 10.0
MIN_TICK_SECONDS = 0.01
MAX_TICKS = 1000
MAX_CLOSE_AFTER_SECONDS = 10.0
# A close frame's payload is at most 125 bytes: the 2-byte code and the reason.
MAX_REASON_BYTES = 123

MAX_CHAT_CLIENTS = 20
MAX_NAME_CHARS = 32
DEFAULT_ROOM = "lobby"
ROOM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")

# Close codes a client may ask /ws/close for: the ones an endpoint may send (RFC 6455 §7.4.1,
# not 1002, which is for protocol errors, nor 1004-1006, 1015, which must never be sent) plus
# the registered (3000-3999) and private (4000-4999) ranges.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1003, *range(1007, 1012), *range(3000, 5000)})

ChatRoom = dict[web.WebSocketResponse, str]

OPEN_SOCKETS = web.AppKey("websockets_open", set[web.WebSocketResponse])
CHAT_ROOMS = web.AppKey("websockets_chat_rooms", dict[tuple[str, str], ChatRoom])


def setup(app: web.Application) -> None:
    """Track open WebSockets and chat rooms; close every socket with 1001 at shutdown."""
    app[OPEN_SOCKETS] = set()
    app[CHAT_ROOMS] = {}
    app.on_shutdown.append(close_all)


async def close_all(app: web.Application) -> None:
    """Close every open WebSocket with 1001 (going away), each within a short time limit."""
    sockets = list(app[OPEN_SOCKETS])
    await asyncio.gather(*(_going_away(ws) for ws in sockets), return_exceptions=True)


async def _going_away(ws: web.WebSocketResponse) -> None:
    await asyncio.wait_for(
        ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"),
        SHUTDOWN_CLOSE_SECONDS,
    )


# --- helpers ---------------------------------------------------------------------------------


async def _upgrade(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Answer the handshake, or a JSON 400 that says a WebSocket upgrade is required."""
    try:
        await ws.prepare(request)
    except web.HTTPBadRequest as exc:
        upgrade = request.headers.get("Upgrade", "")
        if upgrade.strip().lower() != "websocket":
            why = "this request has no 'Upgrade: websocket' header"
        else:
            why = f"the handshake is invalid ({(exc.text or '').splitlines()[0]})"
        bad_request(
            f"{request.path} is a WebSocket endpoint and needs a WebSocket upgrade: "
            f"connect with session.ws_connect(url); {why}"
        )


@contextlib.asynccontextmanager
async def _serving(
    request: web.Request, ws: web.WebSocketResponse
) -> AsyncIterator[web.WebSocketResponse]:
    """Upgrade, keep ``ws`` among the open sockets while the body runs, close it at the end.

    A client that vanishes mid-send (``ConnectionResetError``) ends the body quietly: a client
    leaving is not a server error.
    """
    await _upgrade(request, ws)
    sockets = request.app[OPEN_SOCKETS]
    sockets.add(ws)
    try:
        yield ws
        await ws.close()  # does nothing if the body closed it already
    except ConnectionResetError:
        pass
    finally:
        sockets.discard(ws)


def _new_socket(
    max_msg_size: int = SMALL_MAX_MESSAGE_BYTES, **options: Any
) -> web.WebSocketResponse:
    return web.WebSocketResponse(
        timeout=CLOSE_HANDSHAKE_SECONDS, max_msg_size=max_msg_size, **options
    )


def _is_data(msg: WSMessage) -> bool:
    return msg.type in (WSMsgType.TEXT, WSMsgType.BINARY)


async def _receive_until_closed(
    ws: web.WebSocketResponse, on_data: Callable[[WSMessage], Awaitable[None]] | None = None
) -> None:
    """Read until the client closes or the connection ends, passing data messages to ``on_data``.

    Ping, pong and error messages are not passed on. After an error (a message over the size
    limit, say) aiohttp has already closed the socket, so the loop ends too.
    """
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            return
        if on_data is not None and _is_data(msg):
            await on_data(msg)


async def _while_connected(
    ws: web.WebSocketResponse,
    job: Coroutine[Any, Any, None],
    on_data: Callable[[WSMessage], Awaitable[None]] | None = None,
) -> bool:
    """Run ``job`` while reading what the client sends; True if ``job`` finished first.

    If the client leaves (or the socket is closed at shutdown) first, ``job`` is cancelled at
    once and the answer is False: sending stops promptly when nobody listens.
    """
    job_task = asyncio.ensure_future(job)
    reader = asyncio.ensure_future(_receive_until_closed(ws, on_data))
    try:
        await asyncio.wait({job_task, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (job_task, reader):
            task.cancel()
        results = await asyncio.gather(job_task, reader, return_exceptions=True)
    for result in results:
        if isinstance(result, ConnectionResetError):
            return False
        if isinstance(result, Exception):
            raise result
    return not job_task.cancelled()


async def _send_json_quietly(ws: web.WebSocketResponse, text: str) -> None:
    """Send JSON ``text`` to one peer; a peer that is leaving is skipped (its handler tidies up)."""
    if ws.closed:
        return
    with contextlib.suppress(ConnectionResetError):
        await ws.send_str(text)


# --- /ws/echo --------------------------------------------------------------------------------


@routes.get("/ws/echo")
async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    """WebSocket echo: text, JSON and binary back unchanged; "close" closes (1000); ≤ 1 MiB."""
    ws = _new_socket(max_msg_size=ECHO_MAX_MESSAGE_BYTES)
    async with _serving(request, ws):
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                if msg.data == "close":
                    await ws.close(code=WSCloseCode.OK, message=b"closed on request")
                    break
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type is WSMsgType.ERROR:
                break
    return ws


# --- /ws/chat --------------------------------------------------------------------------------


def _chat_name(request: web.Request) -> str:
    name = request.query.get("name")
    if name is None:
        bad_request("name is required: /ws/chat?name=ada")
    if not 1 <= len(name) <= MAX_NAME_CHARS or not name.isprintable():
        bad_request(f"name must be 1 to {MAX_NAME_CHARS} printable characters, got {name[:40]!r}")
    return name


def _chat_room_name(request: web.Request) -> str:
    room = request.query.get("room", DEFAULT_ROOM)
    if not ROOM_NAME.fullmatch(room):
        bad_request(f"room is 1 to 32 letters, digits, '_', '-' or '.', got {room[:40]!r}")
    return room


def _join(request: web.Request, key: tuple[str, str], ws: web.WebSocketResponse, name: str) -> None:
    """Reserve a place in the room before the upgrade, or answer 409 if the room is full."""
    room = request.app[CHAT_ROOMS].setdefault(key, {})
    if len(room) >= MAX_CHAT_CLIENTS:
        raise web.HTTPConflict(
            text=f"chat room {key[1]!r} is full ({MAX_CHAT_CLIENTS} clients); try another room="
        )
    room[ws] = name


def _leave(request: web.Request, key: tuple[str, str], ws: web.WebSocketResponse) -> None:
    rooms = request.app[CHAT_ROOMS]
    room = rooms.get(key, {})
    room.pop(ws, None)
    if not room:
        rooms.pop(key, None)


async def _tell_others(room: ChatRoom, me: web.WebSocketResponse, payload: dict[str, Any]) -> None:
    """Send ``payload`` to every member of the room but ``me`` that has finished joining."""
    text = json.dumps(payload)
    peers = [ws for ws in room if ws is not me and ws.prepared]
    await asyncio.gather(*(_send_json_quietly(ws, text) for ws in peers))


@routes.get("/ws/chat")
async def ws_chat(request: web.Request) -> web.WebSocketResponse:
    """WebSocket chat: ?name= (and ?room=) per learner; text goes to the others; ≤ 20 a room."""
    name = _chat_name(request)
    key = (learner_of(request), _chat_room_name(request))
    ws = _new_socket()
    _join(request, key, ws, name)
    room = request.app[CHAT_ROOMS][key]
    try:
        async with _serving(request, ws):
            others = [other for peer, other in room.items() if peer is not ws and peer.prepared]
            await ws.send_json({"type": "welcome", "room": key[1], "name": name, "members": others})
            await _tell_others(room, ws, {"type": "join", "name": name, "members": len(room)})

            async def relay(msg: WSMessage) -> None:
                if msg.type is WSMsgType.TEXT:
                    await _tell_others(
                        room, ws, {"type": "message", "from": name, "text": msg.data}
                    )
                else:
                    await ws.send_json({"type": "error", "detail": "chat messages must be text"})

            await _receive_until_closed(ws, relay)
            room.pop(ws, None)
            await _tell_others(room, ws, {"type": "leave", "name": name, "members": len(room)})
    finally:
        _leave(request, key, ws)
    return ws


# --- /ws/push --------------------------------------------------------------------------------


async def _push(ws: web.WebSocketResponse, count: int, interval: float) -> None:
    for seq in range(1, count + 1):
        if seq > 1:
            await timing.sleep(interval)
        await ws.send_json({"seq": seq, "count": count})


@routes.get("/ws/push")
async def ws_push(request: web.Request) -> web.WebSocketResponse:
    """WebSocket push: ?count=N (≤ 1000) JSON {"seq"} every ?interval= s (≤ 10), then 1000."""
    count = query_int(request, "count", 10, 0, MAX_PUSH_COUNT)
    interval = query_float(request, "interval", 0.1, 0.0, MAX_INTERVAL_SECONDS)
    ws = _new_socket()
    async with _serving(request, ws):
        if await _while_connected(ws, _push(ws, count, interval)):
            await ws.close(code=WSCloseCode.OK, message=b"push complete")
    return ws


# --- /ws/close -------------------------------------------------------------------------------


def _close_code(request: web.Request) -> int:
    code = query_int(request, "code", int(WSCloseCode.OK), 1000, 4999)
    if code not in SENDABLE_CLOSE_CODES:
        bad_request(
            f"code {code} cannot be sent in a close frame; use 1000, 1001, 1003, 1007-1011 "
            "or 3000-4999"
        )
    return code


def _close_reason(request: web.Request) -> bytes:
    reason = request.query.get("reason", "").encode("utf-8")
    if len(reason) > MAX_REASON_BYTES:
        bad_request(f"reason must be at most {MAX_REASON_BYTES} bytes of UTF-8, got {len(reason)}")
    return reason


@routes.get("/ws/close")
async def ws_close(request: web.Request) -> web.WebSocketResponse:
    """WebSocket closed by the server with ?code= and ?reason= after ?after= seconds (≤ 10)."""
    code = _close_code(request)
    reason = _close_reason(request)
    after = query_float(request, "after", 0.0, 0.0, MAX_CLOSE_AFTER_SECONDS)
    ws = _new_socket()
    async with _serving(request, ws):
        if await _while_connected(ws, timing.sleep(after)):
            await ws.close(code=code, message=reason)
    return ws


# --- /ws/silent ------------------------------------------------------------------------------


@routes.get("/ws/silent")
async def ws_silent(request: web.Request) -> web.WebSocketResponse:
    """WebSocket peer that never answers pings or sends: a dead peer for heartbeat= to find."""
    ws = _new_socket(autoping=False)
    async with _serving(request, ws):
        await _receive_until_closed(ws)  # pings arrive here and are dropped: no pong goes back
    return ws


# --- /ws/ticks -------------------------------------------------------------------------------


async def _tick(ws: web.WebSocketResponse, interval: float) -> None:
    for seq in range(1, MAX_TICKS + 1):
        await timing.sleep(interval)
        await ws.send_json({"type": "tick", "seq": seq})


@routes.get("/ws/ticks")
async def ws_ticks(request: web.Request) -> web.WebSocketResponse:
    """WebSocket ticks every ?interval= s (0.01-10) while echoing you; 1000 ticks, then 1000."""
    interval = query_float(request, "interval", 1.0, MIN_TICK_SECONDS, MAX_INTERVAL_SECONDS)
    ws = _new_socket()

    async def echo(msg: WSMessage) -> None:
        if msg.type is WSMsgType.TEXT:
            await ws.send_json({"type": "echo", "text": msg.data})
        else:
            await ws.send_bytes(msg.data)

    async with _serving(request, ws):
        if await _while_connected(ws, _tick(ws, interval), echo):
            await ws.close(code=WSCloseCode.OK, message=b"tick limit reached")
    return ws
