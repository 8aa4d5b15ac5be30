"""WebSocket endpoints: echo, broadcast chat, server push, server-initiated close, and a peer that
stops answering pings.

Connect with ``session.ws_connect(url)``. Every endpoint checks its query parameters *before*
the upgrade, so a bad value (or a plain HTTP request without ``Upgrade: websocket``) gets the
usual JSON 400 ``{"error", "detail"}``, and ``ws_connect`` raises
``aiohttp.WSServerHandshakeError`` with ``status == 400``.

=====================================  =======================================================
``/ws/echo``                           text back as text, binary as binary (JSON text comes
                                       back unchanged, so ``send_json``/``receive_json``
                                       round-trip); the text ``close`` makes the server close
                                       with 1000; messages up to 1 MiB (larger: closed, 1009)
``/ws/chat?name=N&room=R``             broadcast chat: each text goes to every *other* member
                                       as ``{"type": "message", "from", "text"}``, with
                                       ``welcome``/``join``/``leave`` notices; rooms are per
                                       learner namespace (``X-Learner``); at most 20 members
                                       (then 409); messages up to 64 KiB
``/ws/push?count=N&interval=S``        N (0-1000, default 10) JSON messages ``{"seq", "count"}``
                                       (seq 1..N), S (0-10, default 0.1) seconds apart, then
                                       close 1000; stops at once if the client leaves
``/ws/close?code=C&reason=R&after=S``  the server closes with code C (1000, 1001, 1003,
                                       1007-1011, 3000-4999; default 1000) and reason R (at
                                       most 123 bytes of UTF-8) after S (0-10) seconds
``/ws/silent``                         never answers pings (``autoping=False``) and never
                                       sends: a dead peer for a client's ``heartbeat=``
``/ws/ticks?interval=S``               ``{"type": "tick", "seq"}`` every S (0.01-10, default
                                       1) seconds while answering each text with
                                       ``{"type": "echo", "text"}`` (binary echoed as is);
                                       after 1000 ticks, close 1000
=====================================  =======================================================

When the server stops, every open WebSocket is closed with 1001 (going away) first, each within
a quarter of a second, so a shutdown never waits on connected clients.
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
# At shutdown, how long each socket's close may wait for the client before the connection drops.
SHUTDOWN_CLOSE_SECONDS = 0.25

MAX_PUSH_COUNT = 1000
MAX_INTERVAL_SECONDS = 10.0
MIN_TICK_SECONDS = 0.01
MAX_TICKS = 1000
MAX_CLOSE_AFTER_SECONDS = 10.0
# A close frame's payload is at most 125 bytes: the 2-byte code, then the reason.
MAX_REASON_BYTES = 123

MAX_CHAT_MEMBERS = 20
# A chat member counts as not reading, and is disconnected, when one message has waited this
# long to be taken by its connection, or this many bytes wait for it.
CHAT_SEND_SECONDS = 3.0
CHAT_OUTBOX_BYTES = 8 * 1024 * 1024
MAX_NAME_CHARS = 32
DEFAULT_ROOM = "lobby"
ROOM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")

# The codes /ws/close may send: those RFC 6455 (section 7.4.1) lets an endpoint send, except
# 1002, which is for protocol errors, plus the registered (3000-3999) and private (4000-4999)
# ranges. 1004-1006 and 1015 must never appear in a close frame.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1003, *range(1007, 1012), *range(3000, 5000)})

OnData = Callable[[WSMessage], Awaitable[None]]


class Conversation:
    """One open server-side WebSocket and the task that reads what its client sends.

    Reading happens in one task for the socket's whole life, so a client's close or
    disconnect is noticed even while the handler is busy sending or waiting.
    """

    def __init__(self, ws: web.WebSocketResponse, on_data: OnData | None) -> None:
        self.ws = ws
        self.reader = asyncio.ensure_future(_receive_until_closed(ws, on_data))
        self.going_away = False
        self.finished = asyncio.get_running_loop().create_future()

    def go_away(self) -> None:
        """Stop reading because the server is shutting down; the handler then closes (1001)."""
        self.going_away = True
        self.reader.cancel()

    async def until(self, job: Coroutine[Any, Any, None] | None = None) -> bool:
        """Wait until the client leaves or the server shuts down, or until ``job`` is done.

        True if ``job`` finished first (reading stops then, so that the handler's ``close()``
        can read the client's answering close frame itself). Otherwise ``job`` is cancelled at
        once: sending stops promptly when nobody listens.
        """
        if job is None:
            await asyncio.wait({self.reader})
            _raise_unexpected(self.reader)
            return False
        job_task = asyncio.ensure_future(job)
        try:
            await asyncio.wait({job_task, self.reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            job_task.cancel()
            self.reader.cancel()
            await asyncio.wait({job_task, self.reader})
        _raise_unexpected(self.reader)
        if job_task.cancelled() or isinstance(job_task.exception(), ConnectionError):
            return False
        job_task.result()  # an unexpected error in the job is a bug: let it be seen
        return True

    async def finish(self) -> None:
        """Stop reading, then close: with 1001, briefly, if the server is shutting down."""
        self.reader.cancel()
        await asyncio.wait({self.reader})
        if not self.reader.cancelled():
            self.reader.exception()  # retrieved here; until() already raised a bug it carries
        if self.going_away:
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(
                    self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"),
                    SHUTDOWN_CLOSE_SECONDS,
                )
        else:
            with contextlib.suppress(ConnectionError):  # the client vanished meanwhile
                await self.ws.close()  # does nothing if the socket is closed already


class OpenSockets:
    """The app's open WebSockets, and whether the server has started shutting down."""

    def __init__(self) -> None:
        self.conversations: set[Conversation] = set()
        self.shutting_down = False

    def add(self, conversation: Conversation) -> None:
        self.conversations.add(conversation)
        if self.shutting_down:  # upgraded while the shutdown hook ran: leave at once
            conversation.go_away()

    async def close_all(self) -> None:
        """Close every open WebSocket with 1001, and wait (briefly) until they are closed."""
        self.shutting_down = True
        conversations = list(self.conversations)
        for conversation in conversations:
            conversation.go_away()
        if conversations:
            await asyncio.wait(
                {c.finished for c in conversations}, timeout=SHUTDOWN_CLOSE_SECONDS + 0.25
            )


class Member:
    """One chat member: its socket, its name, and a bounded outbox that its own task sends.

    Nobody waits on a member: a message for it is queued, and a member that does not read (one
    message waited CHAT_SEND_SECONDS, or CHAT_OUTBOX_BYTES wait) is disconnected with 1008
    instead of slowing the room down.
    """

    def __init__(self, ws: web.WebSocketResponse, name: str, request: web.Request) -> None:
        self.ws = ws
        self.name = name
        self._request = request
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.queued_bytes = 0
        self.sender: asyncio.Task[None] | None = None
        self.evicting: asyncio.Task[None] | None = None
        self.evicted = False

    @property
    def joined(self) -> bool:
        return self.ws.prepared and not self.evicted

    def start(self) -> None:
        self.sender = asyncio.ensure_future(self._send_all())

    def tell(self, text: str) -> None:
        """Queue ``text`` for this member; disconnect the member if it has fallen behind."""
        if not self.joined or self.ws.closed:
            return
        if self.queued_bytes + len(text) > CHAT_OUTBOX_BYTES:
            self._start_eviction(f"over {CHAT_OUTBOX_BYTES // 2**20} MiB waiting")
            return
        self.queued_bytes += len(text)
        self.outbox.put_nowait(text)

    def _start_eviction(self, why: str) -> None:
        if not self.evicted:
            self.evicted = True
            self.evicting = asyncio.ensure_future(self._evict(why))

    async def _send_all(self) -> None:
        with contextlib.suppress(ConnectionError):  # the member vanished: its handler tidies up
            while True:
                text = await self.outbox.get()
                self.queued_bytes -= len(text)
                try:
                    await asyncio.wait_for(self.ws.send_str(text), CHAT_SEND_SECONDS)
                except TimeoutError:
                    self._start_eviction(f"a message waited {CHAT_SEND_SECONDS:g} s")
                    return

    async def _evict(self, why: str) -> None:
        if self.sender is not None and self.sender is not asyncio.current_task():
            self.sender.cancel()
        reason = f"too slow: {why}".encode()
        try:
            await asyncio.wait_for(
                self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason),
                SHUTDOWN_CLOSE_SECONDS,
            )
        except (TimeoutError, ConnectionError):
            transport = self._request.transport
            if transport is not None:  # it does not read even its close frame: drop it
                transport.abort()

    async def stop(self) -> None:
        """End the member's sending (and an eviction under way) when its handler ends."""
        tasks = {task for task in (self.sender, self.evicting) if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


ChatRoom = dict[web.WebSocketResponse, Member]

OPEN_SOCKETS = web.AppKey("websockets_open", OpenSockets)
CHAT_ROOMS = web.AppKey("websockets_chat_rooms", dict[tuple[str, str], ChatRoom])


def setup(app: web.Application) -> None:
    """Track open WebSockets and chat rooms; close every socket with 1001 at shutdown."""
    app[OPEN_SOCKETS] = OpenSockets()
    app[CHAT_ROOMS] = {}
    app.on_shutdown.append(close_all)


async def close_all(app: web.Application) -> None:
    """The on_shutdown hook: close every open WebSocket with 1001 (going away)."""
    await app[OPEN_SOCKETS].close_all()


# --- helpers ---------------------------------------------------------------------------------


def _raise_unexpected(task: asyncio.Future[None]) -> None:
    """Re-raise what ``task`` (done) raised, unless it was cancelled."""
    if not task.cancelled():
        task.result()


async def _upgrade(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Answer the handshake, or a JSON 400 that says a WebSocket upgrade is required."""
    try:
        await ws.prepare(request)
    except web.HTTPBadRequest as exc:
        if request.headers.get("Upgrade", "").strip().lower() != "websocket":
            why = "this request has no 'Upgrade: websocket' header"
        else:
            why = f"the handshake is invalid ({(exc.text or '').splitlines()[0]})"
        bad_request(
            f"{request.path} is a WebSocket endpoint and needs a WebSocket upgrade: "
            f"connect with session.ws_connect(url); {why}"
        )


@contextlib.asynccontextmanager
async def _serving(
    request: web.Request, ws: web.WebSocketResponse, on_data: OnData | None = None
) -> AsyncIterator[Conversation]:
    """Upgrade, read in the background (passing data messages to ``on_data``), close at the end.

    A client that vanishes while the server sends (``ConnectionError``: reset, or lost while
    the server waited to write) ends the body quietly: a client leaving is not a server error.
    """
    await _upgrade(request, ws)
    sockets = request.app[OPEN_SOCKETS]
    conversation = Conversation(ws, on_data)
    sockets.add(conversation)
    try:
        try:
            yield conversation
        except ConnectionError:
            pass
        except BaseException:
            conversation.reader.cancel()
            raise
        await conversation.finish()
    finally:
        sockets.conversations.discard(conversation)
        conversation.finished.set_result(None)


def _new_socket(
    max_message_bytes: int = SMALL_MAX_MESSAGE_BYTES, **options: Any
) -> web.WebSocketResponse:
    """A server-side WebSocket that accepts messages of up to ``max_message_bytes``."""
    return web.WebSocketResponse(
        timeout=CLOSE_HANDSHAKE_SECONDS,
        # aiohttp 3.14 rejects a message whose size *equals* max_msg_size (1009), hence + 1.
        max_msg_size=max_message_bytes + 1,
        **options,
    )


async def _receive_until_closed(ws: web.WebSocketResponse, on_data: OnData | None) -> None:
    """Read until the client closes or the connection ends, passing data messages to ``on_data``.

    Ping and pong are not passed on. After an error (a message over the size limit, say)
    aiohttp has already closed the socket, so reading ends too.
    """
    with contextlib.suppress(ConnectionError):  # the client vanished while we answered
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                return
            if on_data is not None and msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await on_data(msg)


# --- /ws/echo --------------------------------------------------------------------------------


@routes.get("/ws/echo")
async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    """WebSocket echo: text, JSON, binary sent back; text "close" closes 1000; ≤ 1 MiB."""
    ws = _new_socket(ECHO_MAX_MESSAGE_BYTES)

    async def echo(msg: WSMessage) -> None:
        if msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.data == "close":
            await ws.close(code=WSCloseCode.OK, message=b"closed on request")
        else:
            await ws.send_str(msg.data)

    async with _serving(request, ws, echo) as conversation:
        await conversation.until()
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


def _join(app: web.Application, key: tuple[str, str], member: Member) -> ChatRoom:
    """Take a place in the room (before the upgrade), or answer 409 if the room is full."""
    room = app[CHAT_ROOMS].setdefault(key, {})
    if len(room) >= MAX_CHAT_MEMBERS:
        raise web.HTTPConflict(
            text=f"chat room {key[1]!r} is full ({MAX_CHAT_MEMBERS} members); try another room="
        )
    room[member.ws] = member
    return room


def _leave(app: web.Application, key: tuple[str, str], ws: web.WebSocketResponse) -> None:
    rooms = app[CHAT_ROOMS]
    room = rooms.get(key, {})
    room.pop(ws, None)
    if not room:
        rooms.pop(key, None)


def _count(room: ChatRoom) -> int:
    """How many members have joined (a member is counted once its upgrade is done)."""
    return sum(1 for member in room.values() if member.joined)


def _tell_others(room: ChatRoom, me: Member, payload: dict[str, Any]) -> None:
    """Queue ``payload`` as JSON for every member of the room but ``me`` that has joined."""
    text = json.dumps(payload)
    for member in list(room.values()):
        if member is not me:
            member.tell(text)


@routes.get("/ws/chat")
async def ws_chat(request: web.Request) -> web.WebSocketResponse:
    """WebSocket chat room (?name=, ?room=, per learner): texts go to the others; ≤ 20."""
    name = _chat_name(request)
    key = (learner_of(request), _chat_room_name(request))
    me = Member(_new_socket(), name, request)
    room = _join(request.app, key, me)

    async def relay(msg: WSMessage) -> None:
        if msg.type is WSMsgType.TEXT:
            _tell_others(room, me, {"type": "message", "from": name, "text": msg.data})
        else:
            me.tell(json.dumps({"type": "error", "detail": "chat messages must be text"}))

    try:
        async with _serving(request, me.ws, relay) as conversation:
            me.start()
            members = [m.name for m in room.values() if m is not me and m.joined]
            welcome = {"type": "welcome", "room": key[1], "name": name, "members": members}
            me.tell(json.dumps(welcome))
            _tell_others(room, me, {"type": "join", "name": name, "members": _count(room)})
            await conversation.until()
    finally:
        _leave(request.app, key, me.ws)
        await me.stop()
        # Said here rather than in the body: a server made with handler_cancellation=True (as
        # aiohttp's test server is) cancels the handler once its client has disconnected.
        if me.ws.prepared and not request.app[OPEN_SOCKETS].shutting_down:
            _tell_others(room, me, {"type": "leave", "name": name, "members": _count(room)})
    return me.ws


# --- /ws/push --------------------------------------------------------------------------------


async def _push(ws: web.WebSocketResponse, count: int, interval: float) -> None:
    for seq in range(1, count + 1):
        if seq > 1:
            await timing.sleep(interval)
        await ws.send_json({"seq": seq, "count": count})


@routes.get("/ws/push")
async def ws_push(request: web.Request) -> web.WebSocketResponse:
    """WebSocket push: ?count= (≤ 1000) {"seq"} messages ?interval= s apart, then 1000."""
    count = query_int(request, "count", 10, 0, MAX_PUSH_COUNT)
    interval = query_float(request, "interval", 0.1, 0.0, MAX_INTERVAL_SECONDS)
    ws = _new_socket()
    async with _serving(request, ws) as conversation:
        if await conversation.until(_push(ws, count, interval)):
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
    """WebSocket closed by the server with ?code= and ?reason= after ?after= s (≤ 10)."""
    code = _close_code(request)
    reason = _close_reason(request)
    after = query_float(request, "after", 0.0, 0.0, MAX_CLOSE_AFTER_SECONDS)
    ws = _new_socket()
    async with _serving(request, ws) as conversation:
        if await conversation.until(timing.sleep(after)):
            await ws.close(code=code, message=reason)
    return ws


# --- /ws/silent ------------------------------------------------------------------------------


@routes.get("/ws/silent")
async def ws_silent(request: web.Request) -> web.WebSocketResponse:
    """WebSocket peer that never answers pings or sends: for heartbeat= to catch."""
    ws = _new_socket(autoping=False)  # pings reach the reader, which drops them: no pong
    async with _serving(request, ws) as conversation:
        await conversation.until()
    return ws


# --- /ws/ticks -------------------------------------------------------------------------------


async def _tick(ws: web.WebSocketResponse, interval: float) -> None:
    for seq in range(1, MAX_TICKS + 1):
        await timing.sleep(interval)
        await ws.send_json({"type": "tick", "seq": seq})


@routes.get("/ws/ticks")
async def ws_ticks(request: web.Request) -> web.WebSocketResponse:
    """WebSocket ticks every ?interval= s (0.01-10), echoing you meanwhile; ≤ 1000."""
    interval = query_float(request, "interval", 1.0, MIN_TICK_SECONDS, MAX_INTERVAL_SECONDS)
    ws = _new_socket()

    async def echo(msg: WSMessage) -> None:
        if msg.type is WSMsgType.TEXT:
            await ws.send_json({"type": "echo", "text": msg.data})
        else:
            await ws.send_bytes(msg.data)

    async with _serving(request, ws, echo) as conversation:
        if await conversation.until(_tick(ws, interval)):
            await ws.close(code=WSCloseCode.OK, message=b"tick limit reached")
    return ws
