"""Exercise 10's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import websocket_client as check

WS = aiohttp.WSMsgType
ENDED = (WS.CLOSE, WS.CLOSING, WS.CLOSED)

# --- Task 1: collect_push --------------------------------------------------------------------


@correct(check.collect_push, "a comprehension over `async for`")
async def collect_async_for(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        messages = [msg.json() async for msg in ws if msg.type is WS.TEXT]
        return messages, ws.close_code


@correct(check.collect_push, "a while loop over receive() with a heartbeat")
async def collect_while_loop(url):
    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=1.0) as ws:
            while True:
                msg = await ws.receive()
                if msg.type is WS.TEXT:
                    messages.append(msg.json())
                elif msg.type is WS.ERROR:
                    raise ws.exception()
                elif msg.type in ENDED:
                    break
        return messages, ws.close_code


@correct(check.collect_push, "autoclose off: the code from the CLOSE message, closed by hand")
async def collect_close_message(url):
    messages = []
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, autoclose=False)
        while True:
            msg = await ws.receive()
            if msg.type is WS.CLOSE:
                await ws.close()
                return messages, msg.data
            messages.append(msg.json())
    finally:
        await session.close()


@correct(check.collect_push, "json.loads, a generous receive timeout, `while not ws.closed`")
async def collect_not_closed(url):
    messages = []
    timeout = aiohttp.ClientWSTimeout(ws_receive=5, ws_close=2)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            while not ws.closed:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(msg.data))
            code = ws.close_code
    return messages, code


@correct(check.collect_push, "receive_json() until the CLOSE's type error, caught; then the code")
async def collect_catches_type_error(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        try:
            while True:
                messages.append(await ws.receive_json())
        except aiohttp.WSMessageTypeError:
            if not ws.closed and ws.close_code is None:
                raise
        return messages, ws.close_code


@wrong(check.collect_push, "waits for TEXT only: spins on CLOSED", problem="runaway-loop")
async def collect_ignoring_close(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            msg = await ws.receive()
            if msg.type is WS.TEXT:
                messages.append(msg.json())
    return messages, ws.close_code


@wrong(check.collect_push, "autoclose off, waits for more TEXT: spins on CLOSED",
       problem="runaway-loop")  # fmt: skip
async def collect_waiting_for_more(url):
    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, autoclose=False) as ws:
            while len(messages) < 100:
                msg = await ws.receive()
                if msg.type is WS.TEXT:
                    messages.append(msg.json())
    return messages, ws.close_code


@wrong(check.collect_push, "never closes its session", problem="session-left-open")
async def collect_session_left_open(url):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    messages = [msg.json() async for msg in ws]
    return messages, ws.close_code


@wrong(check.collect_push, "reads the close code before the loop", problem="wrong-close-code")
async def collect_code_too_early(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        code = ws.close_code
        messages = [msg.json() async for msg in ws]
        return messages, code


@wrong(check.collect_push, "the raw text of each message", problem="not-json")
async def collect_raw_text(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        return [msg.data async for msg in ws], ws.close_code


@wrong(check.collect_push, "newest first", problem="wrong-messages")
async def collect_reversed(url):
    messages, code = await collect_async_for(url)
    return messages[::-1], code


@wrong(check.collect_push, "drops the first message (a 'hello' it assumed)",
       problem="wrong-messages")  # fmt: skip
async def collect_drops_first(url):
    messages, code = await collect_async_for(url)
    return messages[1:], code


@wrong(check.collect_push, "returns only the messages", problem="wrong-return-type")
async def collect_messages_only(url):
    messages, _ = await collect_async_for(url)
    return messages


@wrong(check.collect_push, "stops after 5 messages, the example's count", problem="ended-early")
async def collect_five(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            messages.append(msg.json())
            if len(messages) == 5:
                break
        return messages, ws.close_code


@wrong(check.collect_push, "a receive timeout of 0.2 s taken as the end", problem="ended-early")
async def collect_short_timeout(url):
    messages = []
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.2)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            with contextlib.suppress(TimeoutError):
                async for msg in ws:
                    messages.append(msg.json())
            return messages, ws.close_code


@wrong(check.collect_push, "receive_json() until the close raises", problem="typed-receive")
async def collect_receive_json(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            messages.append(await ws.receive_json())


@wrong(check.collect_push, "returns the close reason, not the code", problem="wrong-close-code")
async def collect_reason(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            messages.append(msg.json())
        while True:
            msg = await ws.receive()
            if msg.type in ENDED:
                return messages, msg.extra


@wrong(check.collect_push, "returns ([], None) when the upgrade fails", problem="error-swallowed")
async def collect_swallows_refusal(url):
    try:
        return await collect_async_for(url)
    except aiohttp.WSServerHandshakeError:
        return [], None


@wrong(check.collect_push, "closes the session only after a good conversation",
       problem="session-left-open-on-error")  # fmt: skip
async def collect_closes_on_success(url):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    messages = [msg.json() async for msg in ws]
    await session.close()
    return messages, ws.close_code


@wrong(check.collect_push, "time.sleep between receives", problem="blocked-loop")
async def collect_time_sleep(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            messages.append(msg.json())
            time.sleep(0.01)
        return messages, ws.close_code


@wrong(check.collect_push, "the stub", problem="not-implemented")
async def collect_stub(url):
    raise NotImplementedError


# --- Task 2: receive_texts -------------------------------------------------------------------


async def _texts_loop(ws):
    texts = []
    while True:
        msg = await ws.receive()
        if msg.type is WS.TEXT:
            texts.append(msg.data)
        elif msg.type is WS.ERROR:
            raise ws.exception()
        elif msg.type in ENDED:
            return texts


@correct(check.receive_texts, "heartbeat=0.3")
async def texts_heartbeat(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            return await _texts_loop(ws)


@correct(check.receive_texts, "ClientWSTimeout(ws_receive=0.8), no heartbeat")
async def texts_ws_timeout(url):
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.8)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            return await _texts_loop(ws)


@correct(check.receive_texts, "receive(timeout=0.8) on every call")
async def texts_receive_timeout(url):
    texts = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            msg = await ws.receive(timeout=0.8)
            if msg.type is WS.TEXT:
                texts.append(msg.data)
            elif msg.type is WS.ERROR:
                raise ws.exception()
            elif msg.type in ENDED:
                return texts


@correct(check.receive_texts, "heartbeat=1, its own error raised from ws.exception()")
async def texts_wrapped_error(url):
    class PeerGone(Exception):
        pass

    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=1) as ws:
            while True:
                msg = await ws.receive()
                if msg.type == WS.BINARY:
                    continue
                if msg.type == WS.TEXT:
                    texts.append(msg.data)
                    continue
                if msg.type == WS.ERROR:
                    raise PeerGone("the peer stopped answering") from ws.exception()
                return texts


@correct(check.receive_texts, "a shared session passed in by default, closed in finally")
async def texts_finally(url):
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, heartbeat=0.5)
        try:
            return await _texts_loop(ws)
        finally:
            await ws.close()
    finally:
        await session.close()


@wrong(check.receive_texts, "no heartbeat, no timeout", problem="no-heartbeat")
async def texts_no_heartbeat(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        return await _texts_loop(ws)


@wrong(check.receive_texts, "the seed's break on ERROR", problem="error-swallowed")
async def texts_seed_break_on_error(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.ERROR:
                    break
    return texts


@wrong(check.receive_texts, "a wait_for timeout swallowed: returns []", problem="error-swallowed")
async def texts_timeout_swallowed(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(_texts_loop(ws), 0.8)
        return []


@wrong(check.receive_texts, "keeps BINARY data too", problem="binary-not-ignored")
async def texts_keeps_bytes(url):
    data = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type in (WS.TEXT, WS.BINARY):
                    data.append(msg.data)
                elif msg.type is WS.ERROR:
                    raise ws.exception()
    return data


@wrong(check.receive_texts, "stops at anything that is not TEXT", problem="binary-not-ignored")
async def texts_stops_on_other(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while True:
                msg = await ws.receive()
                if msg.type is WS.ERROR:
                    raise ws.exception()
                if msg.type is not WS.TEXT:
                    return texts
                texts.append(msg.data)


@wrong(check.receive_texts, "returns the WSMessage objects", problem="wrong-messages")
async def texts_messages(url):
    kept = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    kept.append(msg)
                elif msg.type is WS.ERROR:
                    raise ws.exception()
    return kept


@wrong(check.receive_texts, "strips each text", problem="wrong-messages")
async def texts_stripped_upper(url):
    texts = await texts_heartbeat(url)
    return [text.strip().lower() for text in texts]


@wrong(check.receive_texts, "stops after the first TEXT", problem="ended-early")
async def texts_first_only(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while True:
                msg = await ws.receive()
                if msg.type is WS.TEXT:
                    return [msg.data]
                if msg.type is WS.ERROR:
                    raise ws.exception()
                if msg.type in ENDED:
                    return []


@wrong(check.receive_texts, "a while loop that ignores CLOSED", problem="runaway-loop")
async def texts_ignores_closed(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while True:
                msg = await ws.receive()
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.CLOSE:
                    return texts
                elif msg.type is WS.ERROR:
                    raise ws.exception()


@wrong(check.receive_texts, "receive_str() in a loop", problem="typed-receive")
async def texts_receive_str(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while not ws.closed:
                texts.append(await ws.receive_str())
    return texts


@wrong(check.receive_texts, "raises an error of its own on ERROR", problem="error-replaced")
async def texts_own_error(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.ERROR:
                    raise ValueError("connection problem")
    return texts


@wrong(check.receive_texts, "BINARY decoded and kept as text", problem="binary-not-ignored")
async def texts_decodes_binary(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.BINARY:
                    texts.append(msg.data.decode(errors="replace"))
                elif msg.type is WS.ERROR:
                    raise ws.exception()
    return texts


@wrong(check.receive_texts, "a receive timeout whose TimeoutError is caught and ignored",
       problem="no-heartbeat")  # fmt: skip
async def texts_ignores_timeout(url):
    texts = []
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.5)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            while True:
                try:
                    msg = await ws.receive()
                except TimeoutError:
                    continue
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type in ENDED:
                    return texts
                elif msg.type is WS.ERROR:
                    raise ws.exception()


@wrong(check.receive_texts, "Exception(ws.exception()): a new error, the cause only in its text",
       problem="error-replaced")  # fmt: skip
async def texts_exception_wrapped(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.ERROR:
                    raise Exception(ws.exception())
    return texts


@wrong(check.receive_texts, "never closes its session", problem="session-left-open")
async def texts_session_left_open(url):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url, heartbeat=0.3)
    return await _texts_loop(ws)


@wrong(check.receive_texts, "closes the session only when the loop returns",
       problem="session-left-open-on-error")  # fmt: skip
async def texts_closes_on_success(url):
    session = aiohttp.ClientSession()
    async with session.ws_connect(url, heartbeat=0.3) as ws:
        texts = await _texts_loop(ws)
    await session.close()
    return texts


@wrong(check.receive_texts, "heartbeat=2.5: found after 3.75 s", problem="no-heartbeat")
async def texts_slow_heartbeat(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=2.5) as ws:
            return await _texts_loop(ws)


@wrong(check.receive_texts, "a plain def", problem="not-async")
def texts_not_async(url):
    return []


# --- Task 3: chat ----------------------------------------------------------------------------


async def _send_then_leave(ws, lines, pause):
    for index, line in enumerate(lines):
        if index:
            await asyncio.sleep(pause)
        await ws.send_str(line)
    await asyncio.sleep(pause)
    await ws.close()


async def _listen(ws, on_message):
    async for msg in ws:
        if msg.type is WS.TEXT and msg.json()["type"] == "message":
            on_message(msg.json()["from"], msg.json()["text"])


@correct(check.chat, "a TaskGroup of sender and receiver")
async def chat_taskgroup(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async with asyncio.TaskGroup() as group:
            group.create_task(_send_then_leave(ws, lines, pause))
            group.create_task(_listen(ws, on_message))


@correct(check.chat, "gather of sender and receiver")
async def chat_gather(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await asyncio.gather(_send_then_leave(ws, lines, pause), _listen(ws, on_message))


@correct(check.chat, "a background receiver; a pause after every line, the last included")
async def chat_background_listener(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        listener = asyncio.create_task(_listen(ws, on_message))
        for line in lines:
            await ws.send_str(line)
            await asyncio.sleep(pause)
        await ws.close()
        await listener


@correct(check.chat, "a pause before every line, the receiver handing events through a queue")
async def chat_queue(url, lines, pause, on_message):
    events: asyncio.Queue = asyncio.Queue()

    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def receive():
            async for msg in ws:
                if msg.type is WS.TEXT:
                    await events.put(msg.json())
            await events.put(None)

        async def dispatch():
            while (event := await events.get()) is not None:
                if event.get("type") == "message":
                    on_message(event["from"], event["text"])

        async def send():
            for line in lines:
                await asyncio.sleep(pause)
                await ws.send_str(line)
            await asyncio.sleep(pause)
            await ws.close()

        await asyncio.gather(receive(), dispatch(), send())


@correct(check.chat, "the sender cancels the receiver once it has closed")
async def chat_cancel_receiver(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=2) as ws:
            receiver = asyncio.create_task(_listen(ws, on_message))
            try:
                await _send_then_leave(ws, lines, pause)
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver


@wrong(check.chat, "sends every line, then reads what came", problem="sequential")
async def chat_send_then_receive(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for line in lines:
            await ws.send_str(line)
            await asyncio.sleep(pause)
        with contextlib.suppress(TimeoutError):
            while True:
                msg = await ws.receive(timeout=0.3)
                if msg.type is WS.TEXT and msg.json()["type"] == "message":
                    on_message(msg.json()["from"], msg.json()["text"])


@wrong(check.chat, "receives until the close, then sends", problem="sending-blocked")
async def chat_receive_then_send(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await _listen(ws, on_message)
        for line in lines:
            await ws.send_str(line)


@wrong(check.chat, "never closes the socket: the receiver never ends", problem="never-left")
async def chat_never_leaves(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send() -> None:
            for line in lines:
                await ws.send_str(line)
                await asyncio.sleep(pause)

        await asyncio.gather(send(), _listen(ws, on_message))


@wrong(check.chat, "never closes its session", problem="session-left-open")
async def chat_session_left_open(url, lines, pause, on_message):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    await asyncio.gather(_send_then_leave(ws, lines, pause), _listen(ws, on_message))


@wrong(check.chat, "sends every line at once", problem="sends-too-fast")
async def chat_no_pauses(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send():
            for line in lines:
                await ws.send_str(line)
            await asyncio.sleep(pause)
            await ws.close()

        await asyncio.gather(send(), _listen(ws, on_message))


@wrong(check.chat, "calls on_message for every TEXT, notices included", problem="not-a-message")
async def chat_every_text(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def listen():
            async for msg in ws:
                if msg.type is WS.TEXT:
                    event = msg.json()
                    on_message(event.get("from") or event.get("name"), event.get("text"))

        await asyncio.gather(_send_then_leave(ws, lines, pause), listen())


@wrong(check.chat, "passes the whole event to on_message", problem="wrong-message-args")
async def chat_passes_event(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def listen():
            async for msg in ws:
                event = msg.json()
                if event["type"] == "message":
                    on_message(event)

        await asyncio.gather(_send_then_leave(ws, lines, pause), listen())


@wrong(check.chat, "sends each line as bytes", problem="lines-not-sent")
async def chat_sends_bytes(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send():
            for index, line in enumerate(lines):
                if index:
                    await asyncio.sleep(pause)
                await ws.send_bytes(line.encode())
            await asyncio.sleep(pause)
            await ws.close()

        await asyncio.gather(send(), _listen(ws, on_message))


@wrong(check.chat, "skips the first line", problem="lines-not-sent")
async def chat_skips_first(url, lines, pause, on_message):
    await chat_gather(url, lines[1:], pause, on_message)


@wrong(check.chat, "leaves right after the last line", problem="no-final-pause")
async def chat_leaves_at_once(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send():
            for index, line in enumerate(lines):
                if index:
                    await asyncio.sleep(pause)
                await ws.send_str(line)
            await ws.close()

        await asyncio.gather(send(), _listen(ws, on_message))


@wrong(check.chat, "the receiver stops after two messages", problem="messages-missed")
async def chat_two_messages(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def listen():
            count = 0
            async for msg in ws:
                event = msg.json()
                if event["type"] == "message":
                    on_message(event["from"], event["text"])
                    count += 1
                    if count == 2:
                        return

        await asyncio.gather(_send_then_leave(ws, lines, pause), listen())


@wrong(check.chat, "returns None when the upgrade fails", problem="error-swallowed")
async def chat_swallows_refusal(url, lines, pause, on_message):
    try:
        await chat_gather(url, lines, pause, on_message)
    except aiohttp.WSServerHandshakeError:
        return None


@wrong(check.chat, "closes the session only after a chat that worked",
       problem="session-left-open-on-error")  # fmt: skip
async def chat_closes_on_success(url, lines, pause, on_message):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    await asyncio.gather(_send_then_leave(ws, lines, pause), _listen(ws, on_message))
    await session.close()


@wrong(check.chat, "time.sleep between lines", problem="blocked-loop")
async def chat_time_sleep(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send():
            for line in lines:
                await ws.send_str(line)
                time.sleep(pause)
            await ws.close()

        await asyncio.gather(send(), _listen(ws, on_message))


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.collect_push.diagnose(collect_five)
    assert first == check.collect_push.diagnose(collect_five)
    assert "after all 5 messages" in first.message or "after message 5 of 8" in first.message


def test_a_spinning_loop_is_stopped_quickly():
    started = time.monotonic()
    verdict = check.collect_push.diagnose(collect_ignoring_close)
    assert verdict.problem == "runaway-loop"
    assert "collect_ignoring_close()" in verdict.message
    assert time.monotonic() - started < 6


def test_the_typed_receive_names_what_arrived():
    verdict = check.receive_texts.diagnose(texts_receive_str)
    assert "a BINARY message arrived" in verdict.message
