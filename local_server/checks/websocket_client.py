"""Exercise 10 checks (WebSocket client): ``from local_server.checks import websocket_client``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from ..runner import LocalServer
from .harness import Mistake, SessionSpy, call_async, check, plural

PUSH_COUNT = 5
PUSH_INTERVAL_SECONDS = 0.01
# How long a correct answer may take before the check calls the loop endless.
PUSH_LIMIT_SECONDS = 2.0
# A dead peer must be noticed within this; the task asks for about one second.
SILENT_LIMIT_SECONDS = 2.5
CHAT_LINES = ["hello", "how are you?", "see you"]
CHAT_PAUSE_SECONDS = 0.15
PARTNER_LINES = ["hi from bot", "fine, thanks", "bye"]
PARTNER_PAUSE_SECONDS = 0.1
CHAT_LIMIT_SECONDS = 3.0
# A message must reach on_message this soon after the partner sent it, or receiving waited.
CHAT_LATENCY_LIMIT_SECONDS = 0.2


# receive() on a closed socket returns CLOSED at once, without waiting: a loop that ignores it
# spins and blocks the event loop. After this many such calls the check stops the loop.
RECEIVES_AFTER_CLOSE_LIMIT = 100
_ENDED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
_CLOSE_IGNORED_HINT = (
    "a loop that waits for TEXT only never ends: stop on CLOSE, CLOSING and CLOSED, "
    "or use `async for msg in ws:`, which stops by itself when the socket closes."
)


@contextlib.contextmanager
def _stop_loops_that_ignore_close(task: str) -> Iterator[None]:
    """Raise Mistake("close-ignored") in a loop that keeps receiving from a closed socket.

    Only this thread's sockets are watched, so checks running in other threads are unaffected.
    """
    original = aiohttp.ClientWebSocketResponse.receive
    thread = threading.get_ident()
    counts: dict[int, int] = {}

    async def watched_receive(ws: aiohttp.ClientWebSocketResponse, *args: Any, **kwargs: Any):
        msg = await original(ws, *args, **kwargs)
        if threading.get_ident() == thread and msg.type in _ENDED:
            counts[id(ws)] = counts.get(id(ws), 0) + 1
            if counts[id(ws)] > RECEIVES_AFTER_CLOSE_LIMIT:
                raise Mistake(
                    "close-ignored",
                    f"{task} kept calling receive() after the socket had closed: "
                    f"{RECEIVES_AFTER_CLOSE_LIMIT} close messages went unnoticed, so the "
                    "check stopped the loop.",
                    _CLOSE_IGNORED_HINT,
                )
        return msg

    aiohttp.ClientWebSocketResponse.receive = watched_receive  # type: ignore[method-assign]
    try:
        yield
    finally:
        aiohttp.ClientWebSocketResponse.receive = original  # type: ignore[method-assign]


def _session_closed(spy: SessionSpy, task: str) -> None:
    if spy.left_open:
        raise Mistake(
            "session-left-open",
            f"the session was still open after {task} returned.",
            "open it with `async with aiohttp.ClientSession() as session:` and the socket with "
            "`async with session.ws_connect(url) as ws:`, so both are closed on every path.",
        )


@check("collect_push")
async def collect_push(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``collect_push(url)`` returns the pushed JSON messages and the server's close code."""
    url = f"{server.url}/ws/push?count={PUSH_COUNT}&interval={PUSH_INTERVAL_SECONDS}"
    try:
        with _stop_loops_that_ignore_close("collect_push"):
            result = await asyncio.wait_for(
                call_async("collect_push", learner, url), PUSH_LIMIT_SECONDS
            )
    except TimeoutError:
        raise Mistake(
            "close-ignored",
            f"collect_push was still receiving {PUSH_LIMIT_SECONDS:g} s after the server had "
            "closed the socket, so the check stopped it.",
            _CLOSE_IGNORED_HINT,
        ) from None
    except RuntimeError as exc:
        if "closed" not in str(exc):
            raise
        raise Mistake(
            "close-ignored",
            "collect_push kept calling receive() after the server closed the socket, and "
            "aiohttp raised RuntimeError('WebSocket connection is closed.').",
            _CLOSE_IGNORED_HINT,
        ) from None
    if not isinstance(result, tuple) or len(result) != 2:
        raise Mistake(
            "wrong-return-type",
            f"collect_push returned {type(result).__name__}; expected (messages, close_code).",
            "return a tuple: the list of decoded messages and `ws.close_code`.",
        )
    messages, close_code = result
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Mistake(
            "not-json",
            "the messages are not a list of dicts.",
            "decode each TEXT message with `msg.json()` (or `json.loads(msg.data)`).",
        )
    expected = [{"seq": seq, "count": PUSH_COUNT} for seq in range(1, PUSH_COUNT + 1)]
    if messages != expected:
        raise Mistake(
            "wrong-messages",
            f"got {plural(len(messages), 'message')}; the server pushed {PUSH_COUNT}, "
            "seq 1 to 5, in that order.",
            "collect every TEXT message until the socket closes.",
        )
    if close_code != 1000:
        raise Mistake(
            "wrong-close-code",
            f"the close code returned was {close_code!r}; the server closed with 1000.",
            "read `ws.close_code` after the loop has seen the server's CLOSE.",
        )
    _session_closed(spy, "collect_push")
    return (
        f"{PUSH_COUNT} messages in order and close code 1000; the loop ended on the server's "
        "close and the session was closed."
    )


@check("receive_texts")
async def receive_texts(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``receive_texts(url)`` returns texts until close, and raises on a dead peer."""
    url = f"{server.url}/ws/push?count=3&interval={PUSH_INTERVAL_SECONDS}"
    try:
        with _stop_loops_that_ignore_close("receive_texts"):
            texts = await asyncio.wait_for(
                call_async("receive_texts", learner, url), PUSH_LIMIT_SECONDS
            )
    except TimeoutError:
        raise Mistake(
            "close-ignored",
            "receive_texts never returned after the server closed the socket.",
            "stop the loop on WSMsgType.CLOSE, CLOSING and CLOSED.",
        ) from None
    expected = [json.dumps({"seq": seq, "count": 3}) for seq in (1, 2, 3)]
    if texts != expected:
        raise Mistake(
            "wrong-messages",
            f"receive_texts returned {texts!r:.80}; expected the 3 texts the server pushed.",
            "append `msg.data` of each TEXT message, in order.",
        )
    _session_closed(spy, "receive_texts")
    silent = f"{server.url}/ws/silent"
    started = time.monotonic()
    try:
        await asyncio.wait_for(call_async("receive_texts", learner, silent), SILENT_LIMIT_SECONDS)
    except (aiohttp.ClientError, ConnectionError) as exc:
        detected = type(exc).__name__
    except TimeoutError:
        if time.monotonic() - started >= SILENT_LIMIT_SECONDS - 0.1:
            raise Mistake(
                "no-heartbeat",
                f"against a peer that never answers, receive_texts was still waiting after "
                f"{SILENT_LIMIT_SECONDS:g} s, so the check stopped it.",
                "pass `heartbeat=0.5` to ws_connect: aiohttp pings, and without a pong the "
                "receive returns WSMsgType.ERROR.",
            ) from None
        detected = "TimeoutError"
    else:
        raise Mistake(
            "error-swallowed",
            "against a peer that never answers, receive_texts returned normally instead of "
            "raising: the caller cannot tell a dead peer from a finished conversation.",
            "on WSMsgType.ERROR, `raise ws.exception()`; do not just break.",
        )
    _session_closed(spy, "receive_texts")
    return (
        f"3 texts from a normal conversation; a silent peer raised {detected} "
        "within the limit, and the session was closed."
    )


async def _partner(
    session: aiohttp.ClientSession, url: str, joined: asyncio.Event, log: dict[str, Any]
) -> None:
    """A bot that waits for the learner to join, then talks while the learner talks."""
    async with session.ws_connect(url + "&name=bot") as ws:
        joined.set()
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            event = msg.json()
            if event["type"] == "join":
                break
        for line in PARTNER_LINES:
            await asyncio.sleep(PARTNER_PAUSE_SECONDS)
            log["sent"][line] = time.monotonic()
            await ws.send_str(line)
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            event = msg.json()
            if event["type"] == "message":
                log["heard"].append(event["text"])
            elif event["type"] == "leave":
                log["left"] = True
                break


@check("chat")
async def chat(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``chat(url, lines, pause, on_message)`` talks and listens at once, then leaves."""
    url = f"{server.url}/ws/chat?room=check-{secrets.token_hex(4)}"
    received: list[tuple[str, str, float]] = []
    log: dict[str, Any] = {"sent": {}, "heard": [], "left": False}

    def on_message(sender: str, text: str) -> None:
        received.append((sender, text, time.monotonic()))

    joined = asyncio.Event()
    async with aiohttp.ClientSession() as own:
        partner = asyncio.create_task(_partner(own, url, joined, log))
        await joined.wait()
        learner_url = url + "&name=you"
        try:
            await asyncio.wait_for(
                call_async(
                    "chat", learner, learner_url, CHAT_LINES, CHAT_PAUSE_SECONDS, on_message
                ),
                CHAT_LIMIT_SECONDS,
            )
        except TimeoutError:
            partner.cancel()
            if not log["heard"]:
                raise Mistake(
                    "sending-blocked",
                    "chat never sent a line: it was stuck receiving, so the check stopped it "
                    f"after {CHAT_LIMIT_SECONDS:g} s.",
                    "receive in one task and send in another (asyncio.TaskGroup or gather); "
                    "an `async for msg in ws` loop only ends when the socket closes.",
                ) from None
            raise Mistake(
                "never-left",
                f"chat was still connected {CHAT_LIMIT_SECONDS:g} s after its last line.",
                "after the last line and a final pause, `await ws.close()`: the receiving "
                "loop then ends too.",
            ) from None
        finally:
            if not partner.done():
                await asyncio.wait([partner], timeout=1.0)
            partner.cancel()
    if log["heard"] != CHAT_LINES:
        raise Mistake(
            "lines-not-sent",
            f"the other member heard {log['heard']!r:.80}; expected {CHAT_LINES!r}.",
            "send each line with `await ws.send_str(line)`, pausing `pause` seconds between.",
        )
    got = [(sender, text) for sender, text, _ in received]
    if got != [("bot", line) for line in PARTNER_LINES]:
        raise Mistake(
            "messages-missed",
            f"on_message was called with {got!r:.100}; expected the bot's 3 lines.",
            "for each TEXT whose JSON has type 'message', call on_message(data['from'], "
            "data['text']); skip welcome, join and leave notices.",
        )
    latency = max(at - log["sent"][text] for _, text, at in received)
    if latency > CHAT_LATENCY_LIMIT_SECONDS:
        raise Mistake(
            "sequential",
            "messages reached on_message only after chat had finished sending: receiving "
            "waited behind sending.",
            "run the sender and the receiver as two tasks (asyncio.TaskGroup), so a message "
            "is handled as soon as it arrives.",
        )
    if not log["left"]:
        raise Mistake(
            "never-left",
            "the other member never saw you leave.",
            "close the socket when you are done: `await ws.close()`.",
        )
    _session_closed(spy, "chat")
    return (
        "3 lines sent while the bot's 3 lines were handled as they arrived; you left cleanly "
        "and the session was closed."
    )
