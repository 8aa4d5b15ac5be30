"""Checks for exercise 10, WebSocket client.

In the notebook: ``from local_server.checks import websocket_client as check``.

Each task's rules are declared in a table (``COLLECT_PUSH``, ``RECEIVE_TEXTS``, ``CHAT``) and
observed on seeded scenarios, against WebSocket endpoints the check serves itself on its own
event loop, so it sees the conversation from the server's side: which frames it sent, whether
the client closed first (and after which frame), when PINGs arrived, which lines a chat member
sent and when it left. Scenarios differ in what a lucky bug depends on: the number of messages
(never in the URL), non-ASCII text, a pause in the stream, BINARY frames among the TEXT ones,
a close code other than 1000, a peer that goes silent, a member who joins and leaves during a
chat, two pause lengths. One scenario of each task refuses the upgrade: the code must raise,
with its session closed. A receive loop that ignores CLOSED spins without awaiting anything
that waits; the harness stops it and names it (runaway-loop).

Delays are judged from the server's record of what arrived in which order, or with generous
bounds (a dead peer must be noticed within 3 s), never from tight wall-clock gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from ..runner import LocalServer
from ..serving import serve
from .evidence import clip, exception_text, explain, learner_line
from .harness import SessionSpy, call_async, check, plural
from .rules import Mistake, Rule, Task

SEED = 0
# A silent peer must be noticed within this (a heartbeat of about 1 s notices it in 1.5 s).
SILENT_LIMIT_SECONDS = 3.0
# How long the check waits for an answer that should have returned by now.
PATIENCE_SECONDS = 2.0
# The status the refusing endpoint answers the upgrade with.
REFUSED_STATUS = 403

SESSION_HINT = (
    "open it with `async with aiohttp.ClientSession() as session:` and the socket with "
    "`async with session.ws_connect(url) as ws:`, so both are closed on every path."
)
ERROR_PATH_HINT = (
    "`async with aiohttp.ClientSession() as session:` closes the session however the block "
    "ends; a `close()` after the conversation is skipped when ws_connect raises."
)
TYPED_RECEIVE_HINT = (
    "`receive_str()`/`receive_json()` accept one type only and raise on anything else (a "
    "CLOSE, a BINARY): loop over `msg = await ws.receive()` (or `async for msg in ws`) and "
    "look at `msg.type`."
)


def _rule_session_left_open() -> Rule:
    return Rule(
        "session-left-open",
        "the session must be closed when you return",
        "sessions created by your code and still open after it returned",
        SESSION_HINT,
    )


def _rule_session_left_open_on_error() -> Rule:
    return Rule(
        "session-left-open-on-error",
        "the session closed also when the connection fails",
        f"an endpoint that refuses the upgrade ({REFUSED_STATUS}): the session must be closed "
        "after the error",
        ERROR_PATH_HINT,
    )


def _rule_refusal_swallowed() -> Rule:
    return Rule(
        "error-swallowed",
        "if the connection fails, your function raises",
        f"an endpoint that refuses the upgrade ({REFUSED_STATUS}): the function must raise",
        "let `WSServerHandshakeError` propagate: returning a default hides the failure.",
    )


# --- the check's endpoints --------------------------------------------------------------


@dataclass
class Frame:
    """One message the endpoint sends, after waiting ``gap`` seconds."""

    data: str | bytes
    gap: float = 0.0


@dataclass
class Stream:
    """A scenario: what the endpoint sends, and how it ends."""

    frames: list[Frame]
    code: int = 1000
    reason: str = ""
    refuse: bool = False
    silent: bool = False
    drop: bool = False  # end by dropping the connection, with no close frame (CLOSED)
    close_after: float = 0.1  # the pause between the last message and the close

    @property
    def texts(self) -> list[str]:
        return [f.data for f in self.frames if isinstance(f.data, str)]


@dataclass
class StreamLog:
    """What the endpoint saw of one conversation."""

    connected: bool = False
    sent: int = 0
    client_closed_after: int | None = None  # the client closed first, after this many frames
    client_code: int | None = None
    server_closed: bool = False
    pings: list[float] = field(default_factory=list)  # seconds after the connection
    connected_at: float = 0.0


class _StreamEndpoint:
    """Serves one ``Stream`` at ``/ws`` and records the conversation in ``log``."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.log = StreamLog()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        stream, log = self.stream, self.log
        loop = asyncio.get_running_loop()
        if stream.refuse:
            return web.json_response(
                {"error": "forbidden", "detail": "this socket refuses every client"},
                status=REFUSED_STATUS,
            )
        ws = web.WebSocketResponse(autoping=not stream.silent, max_msg_size=1024 * 1024)
        await ws.prepare(request)
        log.connected, log.connected_at = True, loop.time()
        reader = asyncio.ensure_future(self._read(ws))
        try:
            for frame in stream.frames:
                if frame.gap:
                    await asyncio.wait([reader], timeout=frame.gap)
                if reader.done():
                    break
                if isinstance(frame.data, str):
                    await ws.send_str(frame.data)
                else:
                    await ws.send_bytes(frame.data)
                log.sent += 1
            if stream.silent:
                await reader  # until the client gives up
            if not reader.done() and stream.close_after:
                await asyncio.wait([reader], timeout=stream.close_after)
            if stream.drop and not reader.done() and request.transport is not None:
                log.server_closed = True
                request.transport.abort()
            if not reader.done():
                reader.cancel()
                await asyncio.wait([reader])
                if not ws.closed:
                    log.server_closed = True
                    await ws.close(code=stream.code, message=stream.reason.encode())
        except (ConnectionError, RuntimeError):
            pass  # the client went away mid-send
        finally:
            reader.cancel()
        return ws

    async def _read(self, ws: web.WebSocketResponse) -> None:
        log = self.log
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type is WSMsgType.PING:
                log.pings.append(loop.time() - log.connected_at)
        if log.client_closed_after is None:
            log.client_closed_after = log.sent
            log.client_code = ws.close_code


@contextlib.asynccontextmanager
async def _serving(endpoint: Any) -> AsyncIterator[str]:
    async with serve(endpoint.app(), shutdown_timeout=0.2) as base:
        yield base.replace("http://", "ws://") + "/ws"


async def _attempt(task: str, learner: Any, *args: Any, limit: float) -> tuple[str, Any]:
    """The learner's call: ("returned", value), ("raised", exc) or, after ``limit`` seconds,
    ("running", None) once it has been cancelled."""
    job = asyncio.ensure_future(call_async(task, learner, *args))
    await asyncio.wait([job], timeout=limit)
    if not job.done():
        job.cancel()
        await asyncio.wait([job], timeout=PATIENCE_SECONDS)
        if not job.done() or job.cancelled():
            return "running", None
    if job.cancelled():
        return "running", None
    exc = job.exception()
    if exc is None:
        return "returned", job.result()
    if isinstance(exc, (Mistake, NotImplementedError)):
        raise exc
    return "raised", exc


def _expect_closed(table: Task, spy: SessionSpy, before: int, task: str) -> None:
    left = [s for s in spy.sessions[before:] if not s.closed]
    if left:
        raise table.broken(
            "session-left-open", f"{plural(len(left), 'session')} still open after {task} returned."
        )


async def _judge_refused(
    table: Task, task: str, learner: Any, spy: SessionSpy, *extra: Any
) -> None:
    """An endpoint that refuses the upgrade: the code raises, with its session closed."""
    endpoint = _StreamEndpoint(Stream([], refuse=True))
    before = spy.created
    async with _serving(endpoint) as url:
        outcome, value = await _attempt(task, learner, url, *extra, limit=PATIENCE_SECONDS)
    if outcome == "returned":
        raise table.broken(
            "error-swallowed",
            f"when the server refused the upgrade ({REFUSED_STATUS}), {task} returned "
            f"{clip(repr(value), 60)} instead of raising.",
        )
    if outcome == "running":
        raise table.broken(
            "timeout",
            f"when the server refused the upgrade ({REFUSED_STATUS}), {task} was still running "
            f"{PATIENCE_SECONDS:g} s later.",
        )
    if any(not s.closed for s in spy.sessions[before:]):
        raise table.broken(
            "session-left-open-on-error",
            f"when the server refused the upgrade, {task} raised ({exception_text(value)}) "
            "and left its session open.",
        )


def _raised(table: Task, task: str, exc: BaseException, when: str) -> Mistake:
    """The Mistake for an exception the learner's code let escape in a normal scenario."""
    if isinstance(exc, aiohttp.WSMessageTypeError) and "typed-receive" in table.rules:
        return table.broken(
            "typed-receive",
            f"{when}, {task} raised WSMessageTypeError at {learner_line(exc) or 'your code'}: "
            f"a {_met(exc)} arrived, and a typed receive accepts one type only.",
        )
    problem, message, hint = explain(exc)
    return table.broken(
        problem if problem in table.rules else "raised", f"{when}, {task} {message}", hint or None
    )


_TYPE_NAMES = {str(int(t)): t.name for t in WSMsgType}


def _met(exc: BaseException) -> str:
    """The message type a typed receive met, from "Received message 8:1000 is not ..."."""
    text = str(exc)
    code = text.removeprefix("Received message ").split(":", 1)[0]
    name = _TYPE_NAMES.get(code)
    return f"{name} message" if name else "message of another type"


def _json_texts(rng: random.Random, count: int, label: str) -> list[dict[str, Any]]:
    words = ["naïve ☕", "Zoë", "straße", "déjà vu", "日本", "plain"]
    return [
        {"seq": index, "event": label, "text": rng.choice(words), "value": rng.randrange(10**4)}
        for index in range(1, count + 1)
    ]


# --- Task 1: collect_push ------------------------------------------------------------------

COLLECT_PUSH = Task(
    "collect_push",
    Rule(
        "wrong-return-type",
        "Return a tuple `(messages, close_code)`",
        "the type and length of what collect_push returned",
        "return a tuple: the list of decoded messages and `ws.close_code`.",
    ),
    Rule(
        "not-json",
        "the decoded messages (dicts)",
        "the type of each message returned",
        "decode each TEXT message with `msg.json()` (or `json.loads(msg.data)`).",
    ),
    Rule(
        "ended-early",
        "The loop must end **because the server closed**",
        "the server's record: did your code close the socket (or stop reading) before the "
        "server closed it, and after which message; the stream pauses once",
        "keep receiving until the server's CLOSE arrives: `async for msg in ws:` ends then by "
        "itself. Do not stop after a count, on a short timeout, or after the first message.",
    ),
    Rule(
        "typed-receive",
        "The loop must end because the server closed (and then return)",
        "receive_json()/receive_str() raised WSMessageTypeError when the CLOSE arrived",
        TYPED_RECEIVE_HINT,
    ),
    Rule(
        "wrong-messages",
        "the decoded messages (dicts) in order",
        "the list returned, compared with what the server sent (5 and 8 messages, "
        "non-ASCII text)",
        "append every TEXT message's `msg.json()`, in the order they arrive.",
    ),
    Rule(
        "wrong-close-code",
        "the close code the server sent",
        "two scenarios, closed with 1000 and with an application code (4000-4999)",
        "return `ws.close_code` after the loop has seen the server's CLOSE (or the CLOSE "
        "message's `msg.data`), never a constant.",
    ),
    _rule_session_left_open(),
    _rule_session_left_open_on_error(),
    _rule_refusal_swallowed(),
)


def _push_streams() -> list[Stream]:
    rng = random.Random(f"{SEED}-collect_push")
    short = [Frame(json.dumps(m), gap=0.01) for m in _json_texts(rng, 5, "tick")]
    long = [Frame(json.dumps(m, ensure_ascii=False), gap=rng.choice((0.0, 0.02, 0.05)))
            for m in _json_texts(rng, 8, "news")]  # fmt: skip
    long[3].gap = 0.35  # a pause: a short receive timeout takes it for the end
    code = 4000 + rng.randrange(1, 999)
    return [Stream(short, 1000, "push complete"), Stream(long, code, "feed over")]


@check(COLLECT_PUSH)
async def collect_push(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``collect_push(url)`` returns the pushed JSON messages and the server's close code."""
    table, task = COLLECT_PUSH, "collect_push"
    for stream in _push_streams():
        endpoint = _StreamEndpoint(stream)
        before = spy.created
        async with _serving(endpoint) as url:
            outcome, value = await _attempt(task, learner, url, limit=PATIENCE_SECONDS + 1)
        log = endpoint.log
        when = f"on a stream of {plural(len(stream.frames), 'message')}"
        if outcome == "running":
            raise table.broken(
                "timeout",
                f"{when}, collect_push was still running {PATIENCE_SECONDS + 1:g} s after the "
                f"server {'had closed the socket' if log.server_closed else 'connected'}.",
                "the loop must end when the CLOSE arrives: `async for msg in ws:` stops by "
                "itself; a `while` loop must stop on CLOSE, CLOSING and CLOSED.",
            )
        if outcome == "raised":
            if not log.server_closed and log.client_closed_after is not None:
                raise table.broken(
                    "ended-early",
                    f"{when}, collect_push raised {exception_text(value)} after message "
                    f"{log.client_closed_after}, before the server had closed"
                    f"{_pause_note(stream, log)}.",
                )
            raise _raised(table, task, value, when)
        _judge_push(value, stream, log)
        _expect_closed(table, spy, before, task)
    await _judge_refused(table, task, learner, spy)
    return (
        "two streams (5 and 8 messages, one with a pause) returned whole and in order with the "
        "close codes the server sent (1000 and an application code); each loop ended on the "
        "server's close, the session was closed, and a refused upgrade raised."
    )


def _pause_note(stream: Stream, log: StreamLog) -> str:
    count = log.client_closed_after
    if count is not None and count < len(stream.frames) and stream.frames[count].gap >= 0.2:
        return f" (the server paused {stream.frames[count].gap:g} s there: a receive timeout?)"
    return ""


def _judge_push(result: Any, stream: Stream, log: StreamLog) -> None:
    table = COLLECT_PUSH
    if inspect.iscoroutine(result):
        result.close()
        raise table.broken(
            "missing-await", "collect_push returned a coroutine: an await is missing."
        )
    if not isinstance(result, tuple) or len(result) != 2:
        raise table.broken(
            "wrong-return-type",
            f"collect_push returned {clip(repr(result), 60)}; expected (messages, close_code).",
        )
    messages, code = result
    expected = [json.loads(frame.data) for frame in stream.frames]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        sample = messages[0] if isinstance(messages, list) and messages else messages
        raise table.broken(
            "not-json",
            f"the messages returned are not dicts: the first is {clip(repr(sample), 60)}.",
        )
    if log.client_closed_after is not None and not log.server_closed:
        count = log.client_closed_after
        of = f"message {count} of {len(stream.frames)}" if count < len(stream.frames) else (
            f"all {count} messages"
        )
        raise table.broken(
            "ended-early",
            f"collect_push closed the socket after {of}, before the server closed it"
            f"{_pause_note(stream, log)}: the loop did not end on the server's close.",
        )
    if messages != expected:
        raise table.broken(
            "wrong-messages",
            f"collect_push returned {plural(len(messages), 'message')}; the server sent "
            f"{len(expected)}, seq 1 to {len(expected)}, in that order"
            + (": the same messages, in another order." if sorted(map(repr, messages)) == sorted(
                map(repr, expected)) else "."),
        )
    if code != stream.code:
        raise table.broken(
            "wrong-close-code",
            f"the close code returned was {clip(repr(code), 20)}; the server closed with "
            f"{stream.code}.",
        )


# --- Task 2: receive_texts -------------------------------------------------------------------

RECEIVE_TEXTS = Task(
    "receive_texts",
    Rule(
        "wrong-messages",
        "returns the `data` of every TEXT message",
        "the list returned, compared with the texts the server sent (non-ASCII, one that "
        "looks like JSON)",
        "append `msg.data` of each TEXT message, in order, and return the list.",
    ),
    Rule(
        "binary-not-ignored",
        "BINARY (ignore it)",
        "BINARY frames among the TEXT ones: none may be returned, and the loop must go on",
        "for BINARY, do nothing and keep receiving: `continue` (not `break`, not append).",
    ),
    Rule(
        "ended-early",
        "returns ... until the server closes; CLOSE / CLOSING / CLOSED (stop)",
        "the server's record: did your code close the socket before the server closed it",
        "stop only on CLOSE, CLOSING and CLOSED; keep receiving after TEXT and BINARY.",
    ),
    Rule(
        "typed-receive",
        "Handle **every** message type in one `while True` loop over `await ws.receive()`",
        "receive_str()/receive_json() raised WSMessageTypeError on a BINARY or CLOSE message",
        TYPED_RECEIVE_HINT,
    ),
    Rule(
        "no-heartbeat",
        "`receive_texts` must **raise** within about a second there, not hang",
        f"a peer that never sends nor answers a ping: still waiting after "
        f"{SILENT_LIMIT_SECONDS:g} s, and the PINGs the server saw",
        "pass `heartbeat=0.5` to ws_connect (aiohttp pings; without a PONG, receive() returns "
        "ERROR), or bound each wait with `timeout=aiohttp.ClientWSTimeout(ws_receive=1)`.",
    ),
    Rule(
        "error-swallowed",
        "not return as if all were well",
        "a peer that never answers: receive_texts must raise, not return",
        "on WSMsgType.ERROR, `raise ws.exception()`; do not `break` or return.",
    ),
    Rule(
        "error-replaced",
        "ERROR (raise `ws.exception()`)",
        "the exception raised for a dead peer must be aiohttp's own (ServerTimeoutError, or "
        "TimeoutError from a receive timeout), not one your code made up",
        "`raise ws.exception()`: it is aiohttp's error, with the cause (no PONG received); a "
        "RuntimeError of your own hides it.",
    ),
    _rule_session_left_open(),
    Rule(
        "session-left-open-on-error",
        "the session closed also when receive_texts raises",
        "the peer that never answers: the session must be closed after the error",
        SESSION_HINT,
    ),
)


def _text_streams() -> list[Stream]:
    rng = random.Random(f"{SEED}-receive_texts")
    first = [
        Frame(f"alpha {rng.randrange(10**4)}"),
        Frame(b"\x00\x01binary" + rng.randbytes(8), gap=0.01),
        Frame("naïve ☕ déjà vu", gap=0.02),
        Frame(json.dumps({"type": "close", "seq": rng.randrange(100)}), gap=0.0),
        Frame(rng.randbytes(40), gap=0.03),
        Frame(f"  Omega {rng.randrange(10**4)}\n", gap=0.01),
    ]
    second = [
        Frame(rng.randbytes(16)),
        Frame("日本語のテキスト", gap=0.02),
        Frame(rng.randbytes(3), gap=0.01),
        Frame(rng.randbytes(5), gap=0.0),
        Frame("last words", gap=0.05),
    ]
    dropped = [Frame("before the drop"), Frame(rng.randbytes(7), gap=0.01), Frame("  Last one ")]
    return [
        Stream(first, 1000),
        Stream(second, 4000 + rng.randrange(1, 999), "done"),
        Stream(dropped, drop=True),
    ]


@check(RECEIVE_TEXTS)
async def receive_texts(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``receive_texts(url)`` returns texts until close, and raises on a dead peer."""
    table, task = RECEIVE_TEXTS, "receive_texts"
    for stream in _text_streams():
        endpoint = _StreamEndpoint(stream)
        before = spy.created
        async with _serving(endpoint) as url:
            outcome, value = await _attempt(task, learner, url, limit=PATIENCE_SECONDS + 1)
        when = (
            f"on a stream of {plural(len(stream.texts), 'text')} and "
            f"{plural(len(stream.frames) - len(stream.texts), 'binary message')}"
            + (" that the server then dropped (no close frame: CLOSED)" if stream.drop else "")
        )
        if outcome == "running":
            raise table.broken(
                "timeout",
                f"{when}, receive_texts was still running {PATIENCE_SECONDS + 1:g} s after "
                "the server had closed.",
            )
        if outcome == "raised":
            raise _raised(table, task, value, when)
        _judge_texts(value, stream, endpoint.log)
        _expect_closed(table, spy, before, task)
    detected = await _judge_silent(learner, spy)
    return (
        "three streams (one dropped without a close frame) returned every text in order, "
        f"BINARY messages ignored, up to the end; a silent peer raised {detected} within "
        f"{SILENT_LIMIT_SECONDS:g} s; every session was closed."
    )


def _judge_texts(result: Any, stream: Stream, log: StreamLog) -> None:
    table = RECEIVE_TEXTS
    if inspect.iscoroutine(result):
        result.close()
        raise table.broken(
            "missing-await", "receive_texts returned a coroutine: an await is missing."
        )
    if not isinstance(result, list):
        raise table.broken(
            "wrong-messages",
            f"receive_texts returned {clip(repr(result), 60)}; expected a list of str.",
        )
    kept = [item for item in result if isinstance(item, (bytes, bytearray))]
    if kept:
        raise table.broken(
            "binary-not-ignored",
            f"the list returned holds {plural(len(kept), 'bytes object')} "
            f"({clip(repr(kept[0]), 30)}): BINARY messages were kept.",
        )
    binary = len(stream.frames) - len(stream.texts)
    if binary and len(result) == len(stream.frames):
        raise table.broken(
            "binary-not-ignored",
            f"receive_texts returned {len(result)} items for {len(stream.texts)} texts and "
            f"{plural(binary, 'BINARY message')}: the BINARY ones were kept (converted).",
        )
    count = log.client_closed_after
    if count is not None and not log.server_closed:
        after = stream.frames[count - 1].data if 0 < count <= len(stream.frames) else None
        if isinstance(after, bytes):
            raise table.broken(
                "binary-not-ignored",
                f"receive_texts stopped right after a BINARY message (message {count} of "
                f"{len(stream.frames)}), before the server closed.",
            )
        raise table.broken(
            "ended-early",
            f"receive_texts closed the socket after message {count} of {len(stream.frames)}, "
            "before the server closed it.",
        )
    if result != stream.texts:
        sent = stream.texts
        if result and all(isinstance(item, aiohttp.WSMessage) for item in result):
            detail = "WSMessage objects, not their `data`"
        elif len(result) != len(sent):
            detail = f"{plural(len(result), 'item')} for {plural(len(sent), 'text')} sent"
        else:
            index = next(i for i, (a, b) in enumerate(zip(result, sent, strict=True)) if a != b)
            detail = (
                f"item {index} is {clip(repr(result[index]), 40)}, but the server sent "
                f"{clip(repr(sent[index]), 40)} (texts are returned as they arrived)"
            )
        raise table.broken("wrong-messages", f"receive_texts returned {detail}.")


# What may come out of a dead peer: aiohttp's error (heartbeat), a receive timeout.
_DEAD_PEER_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError, aiohttp.WebSocketError)


async def _judge_silent(learner: Any, spy: SessionSpy) -> str:
    table, task = RECEIVE_TEXTS, "receive_texts"
    endpoint = _StreamEndpoint(Stream([], silent=True))
    before = spy.created
    async with _serving(endpoint) as url:
        outcome, value = await _attempt(task, learner, url, limit=SILENT_LIMIT_SECONDS)
    pings = endpoint.log.pings
    if outcome == "running":
        seen = (
            f"the first PING came {pings[0]:.1f} s after connecting (a heartbeat that long "
            "notices a dead peer after 1.5 times that)"
            if pings
            else f"no PING came in {SILENT_LIMIT_SECONDS:g} s (no heartbeat, or a longer one), and "
            "no error ended the call (no receive timeout, or its TimeoutError caught)"
        )
        raise table.broken(
            "no-heartbeat",
            f"against a peer that never sends nor answers, receive_texts was still waiting "
            f"after {SILENT_LIMIT_SECONDS:g} s, so the check stopped it; {seen}.",
        )
    if outcome == "returned":
        raise table.broken(
            "error-swallowed",
            f"against a peer that never answers, receive_texts returned {clip(repr(value), 40)}"
            " instead of raising: the caller cannot tell a dead peer from a finished "
            "conversation.",
        )
    chain = _chain(value)
    if not any(isinstance(error, _DEAD_PEER_ERRORS) for error in chain):
        if isinstance(value, TypeError) and "derive from BaseException" in str(value):
            raise _raised(table, task, value, "against a peer that never answers")
        raise table.broken(
            "error-replaced",
            f"against a peer that never answers, receive_texts raised {exception_text(value)} "
            f"at {learner_line(value) or 'your code'}, an error of its own: aiohttp's (from "
            "`ws.exception()`) says what happened.",
        )
    if any(not s.closed for s in spy.sessions[before:]):
        raise table.broken(
            "session-left-open-on-error",
            f"receive_texts raised ({exception_text(value)}) and left its session open.",
        )
    return type(value).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


# --- Task 3: chat ------------------------------------------------------------------------------

CHAT = Task(
    "chat",
    Rule(
        "lines-not-sent",
        "send each of `lines`",
        "the TEXT frames the server received from you, compared with `lines` (3 and 4 lines, "
        "non-ASCII, one that looks like JSON)",
        "send each line as it is, `await ws.send_str(line)`, in order.",
    ),
    Rule(
        "sends-too-fast",
        "send `lines`, one every `pause` seconds",
        "the server's arrival times: two lines less than a quarter of `pause` apart",
        "`await asyncio.sleep(pause)` between two lines.",
    ),
    Rule(
        "sequential",
        "**meanwhile** ... call `on_message(...)` as soon as it arrives",
        "how many of your lines the server had received when on_message was first called: a "
        "message arrives at once, your lines come `pause` apart",
        "receive in one task and send in another (asyncio.TaskGroup or gather): a loop that "
        "sends everything first handles messages only at the end.",
    ),
    Rule(
        "sending-blocked",
        "send each of `lines` ... **meanwhile** receive",
        "no line reached the server while your code was receiving (the server closes after "
        "1 s of silence)",
        "an `async for msg in ws` loop only ends when the socket closes: run it as a task of "
        "its own (asyncio.TaskGroup or gather) beside the sender.",
    ),
    Rule(
        "not-a-message",
        'for every chat message from another member (a TEXT whose JSON has `"type": '
        '"message"`)',
        "on_message must not be called for welcome, join or leave notices (a member joins and "
        "leaves during the chat)",
        'parse each TEXT with `msg.json()` and call on_message only when `data["type"] == '
        '"message"`.',
    ),
    Rule(
        "wrong-message-args",
        'call `on_message(data["from"], data["text"])`',
        "the arguments of each call, compared with the sender and text of a message sent",
        'pass the sender first, then the text: `on_message(data["from"], data["text"])`.',
    ),
    Rule(
        "messages-missed",
        "for every chat message from another member ... call on_message",
        "every message the server sent you while you were connected must reach on_message",
        "keep receiving until the socket closes: `async for msg in ws:` in the receiver "
        "task; do not return after the first message.",
    ),
    Rule(
        "no-final-pause",
        "after the last line, wait `pause` seconds more, then leave",
        "the server's record: how soon after your last line you closed (a reply to it comes "
        "at once)",
        "after the last line, `await asyncio.sleep(pause)`, then `await ws.close()`: the reply "
        "to your last line arrives meanwhile.",
    ),
    Rule(
        "never-left",
        "then leave: close the socket",
        f"still connected {PATIENCE_SECONDS:g} s after the last line and pause",
        "after the final pause, `await ws.close()`: the receiving loop then ends too.",
    ),
    _rule_session_left_open(),
    _rule_session_left_open_on_error(),
    _rule_refusal_swallowed(),
)
# The server closes a chat in which no line arrived for this long after the client joined.
FIRST_LINE_PATIENCE_SECONDS = 1.0


@dataclass
class ChatScenario:
    lines: list[str]
    pause: float
    replies: list[str]
    greeting: str
    guest: str
    guest_line: str
    room: str


@dataclass
class ChatLog:
    """What the chat endpoint saw, and what on_message was called with."""

    heard: list[tuple[str, float]] = field(default_factory=list)  # your lines, loop time
    sent: list[tuple[str, str]] = field(default_factory=list)  # (from, text) sent to you
    calls: list[tuple[tuple[Any, ...], int]] = field(default_factory=list)  # args, lines heard
    left_at: float | None = None
    joined: bool = False
    gave_up: bool = False
    non_text: int = 0
    sent_after_leave: int = 0


class _ChatEndpoint:
    """A /ws/chat room with a bot in it, played by the server itself."""

    def __init__(self, scenario: ChatScenario, refuse: bool = False) -> None:
        self.scenario = scenario
        self.refuse = refuse
        self.log = ChatLog()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        return app

    async def _say(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        if ws.closed or self.log.left_at is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(payload, ensure_ascii=False))
            if payload["type"] == "message":
                self.log.sent.append((payload["from"], payload["text"]))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scenario, log = self.scenario, self.log
        if self.refuse:
            return web.json_response(
                {"error": "conflict", "detail": f"chat room {scenario.room!r} is full"}, status=409
            )
        name = request.query.get("name", "you")
        loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(max_msg_size=64 * 1024)
        await ws.prepare(request)
        log.joined = True
        await self._say(ws, {"type": "welcome", "room": scenario.room, "name": name,
                             "members": ["bot"]})  # fmt: skip
        await self._say(ws, {"type": "message", "from": "bot", "text": scenario.greeting})
        waiting = asyncio.ensure_future(ws.receive())
        try:
            while True:
                silent = not log.heard and not log.non_text
                timeout = FIRST_LINE_PATIENCE_SECONDS if silent else None
                done, _ = await asyncio.wait([waiting], timeout=timeout)
                if not done:
                    log.gave_up = True
                    waiting.cancel()
                    await asyncio.wait([waiting])
                    await ws.close(code=1000, message=b"nobody spoke")
                    break
                msg = waiting.result()
                if msg.type is not WSMsgType.TEXT:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                    WSMsgType.ERROR):  # fmt: skip
                        log.left_at = loop.time()
                        break
                    log.non_text += 1
                    await self._say(ws, {"type": "error", "detail": "chat messages must be text"})
                else:
                    log.heard.append((msg.data, loop.time()))
                    index = len(log.heard) - 1
                    reply = scenario.replies[index % len(scenario.replies)]
                    await self._say(ws, {"type": "message", "from": "bot", "text": reply})
                    if index == 1:
                        await self._guest_visit(ws)
                waiting = asyncio.ensure_future(ws.receive())
        except (ConnectionError, RuntimeError):
            log.left_at = log.left_at or loop.time()
        finally:
            waiting.cancel()
        return ws

    async def _guest_visit(self, ws: web.WebSocketResponse) -> None:
        scenario = self.scenario
        await self._say(ws, {"type": "join", "name": scenario.guest, "members": 3})
        line = {"type": "message", "from": scenario.guest, "text": scenario.guest_line}
        await self._say(ws, line)
        await self._say(ws, {"type": "leave", "name": scenario.guest, "members": 2})


def _chat_scenarios() -> list[ChatScenario]:
    rng = random.Random(f"{SEED}-chat")
    token = f"{rng.getrandbits(24):06x}"
    first = ChatScenario(
        lines=["hello", "how are you?", "see you"],
        pause=0.15,
        replies=["hi there", "fine, thanks", "bye!"],
        greeting=f"welcome, I am bot {token}",
        guest="eve",
        guest_line="just passing through",
        room=f"check-{token}",
    )
    second = ChatScenario(
        lines=["grüß dich ☕", '{"type": "leave"}', "¿qué tal?", "à bientôt"],
        pause=0.1,
        replies=["ça va", '{"type": "join"}', "日本からこんにちは", "ciao"],
        greeting="bot here",
        guest="Zoë",
        guest_line="salut à tous",
        room=f"room-{rng.getrandbits(16):04x}",
    )
    return [first, second]


@check(CHAT)
async def chat(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``chat(url, lines, pause, on_message)`` talks and listens at once, then leaves."""
    table, task = CHAT, "chat"
    scenarios = _chat_scenarios()
    for scenario in scenarios:
        endpoint = _ChatEndpoint(scenario)
        log = endpoint.log

        def on_message(*args: Any, log: ChatLog = log) -> None:
            log.calls.append((args, len(log.heard)))

        before = spy.created
        limit = (
            len(scenario.lines) * scenario.pause + FIRST_LINE_PATIENCE_SECONDS + PATIENCE_SECONDS
        )
        async with _serving(endpoint) as url:
            url = url.replace("/ws", f"/ws?name=you&room={scenario.room}")
            outcome, value = await _attempt(
                task, learner, url, list(scenario.lines), scenario.pause, on_message, limit=limit
            )
        _judge_chat(outcome, value, scenario, log)
        _expect_closed(table, spy, before, task)
    refusing = _ChatEndpoint(scenarios[0], refuse=True)
    before = spy.created
    async with _serving(refusing) as url:
        outcome, value = await _attempt(
            task, learner, url + "?name=you&room=full", ["x"], 0.05, lambda *a: None,
            limit=PATIENCE_SECONDS,
        )  # fmt: skip
    _judge_refused_chat(outcome, value, spy, before)
    return (
        "in two rooms (3 lines 0.15 s apart, 4 lines 0.1 s apart) every line reached the "
        "server, messages were handled while you were still sending, notices were skipped, "
        "you left after the final pause; sessions closed, and a refused upgrade raised."
    )


def _judge_refused_chat(outcome: str, value: Any, spy: SessionSpy, before: int) -> None:
    table = CHAT
    if outcome == "returned":
        raise table.broken(
            "error-swallowed",
            f"when the server refused the upgrade (409, room full), chat returned "
            f"{clip(repr(value), 40)} instead of raising.",
        )
    if outcome == "running":
        raise table.broken(
            "timeout",
            f"when the server refused the upgrade, chat was still running "
            f"{PATIENCE_SECONDS:g} s later.",
        )
    if any(not s.closed for s in spy.sessions[before:]):
        raise table.broken(
            "session-left-open-on-error",
            f"when the server refused the upgrade, chat raised ({exception_text(value)}) and "
            "left its session open.",
        )


def _judge_chat(outcome: str, value: Any, scenario: ChatScenario, log: ChatLog) -> None:
    table = CHAT
    lines = scenario.lines
    heard = [text for text, _ in log.heard]
    where = f"in a chat of {len(lines)} lines, {scenario.pause:g} s apart"
    if not heard and log.calls and not log.non_text:
        raise table.broken(
            "sending-blocked",
            f"{where}, no line reached the server: chat handled "
            f"{plural(len(log.calls), 'message')} but never sent, so the server closed after "
            f"{FIRST_LINE_PATIENCE_SECONDS:g} s of silence.",
        )
    if outcome == "raised" and not (heard == lines and log.left_at is not None):
        raise _raised(table, "chat", value, where)
    if heard != lines:
        if log.non_text:
            detail = f": {plural(log.non_text, 'frame')} arrived as BINARY, not text"
        else:
            detail = f": the server received {clip(repr(heard), 80)}"
        raise table.broken("lines-not-sent", f"{where}, the lines sent were not `lines`{detail}.")
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(log.heard)]
    if gaps and min(gaps) < scenario.pause / 4:
        raise table.broken(
            "sends-too-fast",
            f"{where}, two lines reached the server {min(gaps) * 1000:.0f} ms apart: there was "
            "no pause between them.",
        )
    messages = list(log.sent)
    notices = [args for args, _ in log.calls if tuple(args) not in messages]
    swapped = [args for args in notices if tuple(reversed(args)) in messages]
    if swapped:
        raise table.broken(
            "wrong-message-args",
            f"on_message was called with {clip(repr(swapped[0]), 60)}: the text came first and "
            "the sender second.",
        )
    odd = [args for args in notices if len(args) != 2]
    if odd:
        raise table.broken(
            "wrong-message-args",
            f"on_message was called with {plural(len(odd[0]), 'argument')}, "
            f"{clip(repr(odd[0]), 60)}; expected on_message(sender, text).",
        )
    if notices:
        raise table.broken(
            "not-a-message",
            f"on_message was called with {clip(repr(notices[0]), 60)}, which is no chat message "
            "(a welcome, join or leave notice?).",
        )
    first_call = log.calls[0][1] if log.calls else None
    if first_call is not None and first_call >= len(lines) and len(lines) > 1:
        raise table.broken(
            "sequential",
            f"{where}, on_message was first called only after all {len(lines)} lines were "
            "sent, though the bot's greeting had arrived before the first: receiving waited "
            "behind sending.",
        )
    if outcome == "running":
        raise table.broken(
            "never-left",
            f"{where}, chat was still connected long after its last line and pause, so the "
            "check stopped it.",
        )
    last = log.heard[-1][1]
    if log.left_at is not None and log.left_at - last < scenario.pause / 4:
        raise table.broken(
            "no-final-pause",
            f"{where}, you left {(log.left_at - last) * 1000:.0f} ms after your last line, not "
            f"after a final pause of {scenario.pause:g} s: the bot's reply to it comes just "
            "after it.",
        )
    got = [tuple(args) for args, _ in log.calls]
    missed = [message for message in log.sent if message not in got]
    if missed:
        stopped = len(got) and all(message not in got for message in log.sent[len(got):])
        raise table.broken(
            "messages-missed",
            f"{where}, on_message was called for {len(got)} of the {len(log.sent)} messages "
            f"the server sent you, the first missed being {clip(repr(missed[0]), 50)}"
            + (": the receiver stopped early." if stopped else "."),
        )
    if log.left_at is None:
        raise table.broken(
            "never-left",
            f"{where}, chat returned without closing the socket: the server never saw you "
            "leave.",
        )
