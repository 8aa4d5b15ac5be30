"""Learner answers to exercise 10 (WebSocket client), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from urllib.parse import parse_qs, urlparse

import aiohttp
from aiohttp import WSMsgType

from adversarial import correct, wrong
from local_server.checks import websocket_client as check

ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


# --- Task 1 · collect_push -----------------------------------------------------------------


@correct(check.collect_push, "while True over receive(), the code from the CLOSE message's data")
async def collect_push_close_message_data(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
            elif msg.type is WSMsgType.CLOSE:
                return messages, msg.data
            elif msg.type is WSMsgType.ERROR:
                raise ws.exception()
            elif msg.type in ENDED:
                return messages, ws.close_code


async def _pushed(ws):
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            raise ws.exception()
        yield msg.json()


@correct(check.collect_push, "an async generator over the socket, AsyncExitStack for cleanup")
async def collect_push_async_generator(url):
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        ws = await stack.enter_async_context(session.ws_connect(url, heartbeat=5))
        messages = [message async for message in _pushed(ws)]
        return messages, ws.close_code


@correct(check.collect_push, "a class owning the session, closed in finally")
async def collect_push_class(url):
    class Collector:
        def __init__(self) -> None:
            self.session = aiohttp.ClientSession()
            self.messages: list[dict] = []

        async def run(self):
            try:
                async with self.session.ws_connect(url) as ws:
                    async for msg in ws:
                        if msg.type is WSMsgType.TEXT:
                            self.messages.append(msg.json())
                        elif msg.type is WSMsgType.ERROR:
                            raise ws.exception()
                    return self.messages, ws.close_code
            finally:
                await self.session.close()

    return await Collector().run()


@wrong(check.collect_push, "stops after `count` messages (read from the URL) and closes itself",
       rule="The loop must end **because the server closed**",
       problem="typed-receive")
async def collect_push_stops_at_count(url):
    count = int(parse_qs(urlparse(url).query).get("count", ["10"])[0])
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for _ in range(count):
            messages.append(await ws.receive_json())
        await ws.close()
        return messages, ws.close_code


@wrong(check.collect_push, "returns a hard-coded 1000 instead of the code the server sent",
       rule="the close code the server sent",
       problem="wrong-close-code")
async def collect_push_hardcoded_code(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            messages.append(msg.json())
    return messages, 1000


@wrong(check.collect_push, "never closes the session",
       rule="the session must be closed when you return",
       problem="session-left-open")
async def collect_push_session_left_open(url):
    session = aiohttp.ClientSession()
    messages = []
    async with session.ws_connect(url) as ws:
        async for msg in ws:
            messages.append(msg.json())
    return messages, ws.close_code


@wrong(check.collect_push, "returns the raw text of each message, not the decoded dicts",
       rule="the decoded messages (dicts)",
       problem="not-json")
async def collect_push_raw_strings(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        messages = [msg.data async for msg in ws]
        return messages, ws.close_code


@wrong(check.collect_push, "returns after the first message",
       rule="the decoded messages (dicts) in order ... The loop must end because the server closed",
       problem="ended-early")
async def collect_push_first_only(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            return [msg.json()], ws.close_code
    return [], None


@wrong(check.collect_push, "treats a short receive timeout as the end of the stream",
       rule="The loop must end **because the server closed**",
       problem="ended-early")
async def collect_push_timeout_as_end(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            try:
                msg = await ws.receive(timeout=0.15)
            except TimeoutError:
                break
            if msg.type is not WSMsgType.TEXT:
                break
            messages.append(msg.json())
        return messages, ws.close_code


@wrong(check.collect_push, "reads the close code before the loop has ended",
       rule="the close code the server sent",
       problem="wrong-close-code")
async def collect_push_code_read_early(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        code = ws.close_code
        async for msg in ws:
            messages.append(msg.json())
        return messages, code


@wrong(check.collect_push, "receive_json() until it raises; the close is caught as an error",
       rule="The loop must end **because the server closed**",
       problem="wrong-close-code")
async def collect_push_receive_json_until_error(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        try:
            while True:
                messages.append(await ws.receive_json())
        except Exception:
            return messages, None


# --- Task 2 · receive_texts ----------------------------------------------------------------


@correct(check.receive_texts, "heartbeat=0.3 and a match statement over the message type")
async def receive_texts_match(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while True:
                msg = await ws.receive()
                match msg.type:
                    case WSMsgType.TEXT:
                        texts.append(msg.data)
                    case WSMsgType.BINARY:
                        pass
                    case WSMsgType.CLOSE | WSMsgType.CLOSING | WSMsgType.CLOSED:
                        return texts
                    case WSMsgType.ERROR:
                        raise ws.exception()


@correct(check.receive_texts, "no heartbeat; a ClientWSTimeout(ws_receive=0.6) raises instead")
async def receive_texts_receive_timeout(url):
    texts = []
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.6, ws_close=1.0)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    texts.append(msg.data)
                elif msg.type is WSMsgType.ERROR:
                    raise ws.exception()
                elif msg.type in ENDED:
                    return texts


@correct(check.receive_texts, "a dispatch table of handlers; heartbeat 0.2 s")
async def receive_texts_dispatch_table(url):
    texts: list[str] = []
    stop = object()

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.2) as ws:

            def fail(msg):
                raise ws.exception()

            handlers = {
                WSMsgType.TEXT: lambda msg: texts.append(msg.data),
                WSMsgType.BINARY: lambda msg: None,
                WSMsgType.ERROR: fail,
                WSMsgType.CLOSE: lambda msg: stop,
                WSMsgType.CLOSING: lambda msg: stop,
                WSMsgType.CLOSED: lambda msg: stop,
            }
            while True:
                msg = await ws.receive()
                if handlers.get(msg.type, lambda msg: None)(msg) is stop:
                    return texts


def _loop(*, heartbeat, on_error="raise", binary="ignore"):
    """A receive_texts that differs from the right one in one place."""

    async def receive_texts(url):
        texts = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, heartbeat=heartbeat) as ws:
                while True:
                    msg = await ws.receive()
                    if msg.type is WSMsgType.TEXT:
                        texts.append(msg.data)
                    elif msg.type is WSMsgType.BINARY:
                        if binary == "keep":
                            texts.append(msg.data)
                        elif binary == "stop":
                            return texts
                    elif msg.type is WSMsgType.ERROR:
                        if on_error == "break":
                            break
                        if on_error == "generic":
                            raise RuntimeError("websocket error")
                        raise ws.exception()
                    elif msg.type in ENDED:
                        return texts
        return texts

    return receive_texts


@wrong(check.receive_texts, "no heartbeat at all: waits forever on a silent peer",
       rule="`receive_texts` must **raise** within about a second there, not hang",
       problem="no-heartbeat")
async def receive_texts_no_heartbeat(url):
    return await _loop(heartbeat=None)(url)


@wrong(check.receive_texts, "heartbeat=5: the dead peer is found after 7.5 s",
       rule="must **raise** within about a second there",
       problem="no-heartbeat")
async def receive_texts_slow_heartbeat(url):
    return await _loop(heartbeat=5.0)(url)


@wrong(check.receive_texts, "the seed's `break` on ERROR: returns as if all were well",
       rule="ERROR (raise `ws.exception()`) ... not return as if all were well",
       problem="error-swallowed")
async def receive_texts_break_on_error(url):
    return await _loop(heartbeat=0.3, on_error="break")(url)


@wrong(check.receive_texts, "raises a generic RuntimeError instead of ws.exception()",
       rule="ERROR (raise `ws.exception()`)",
       problem="error-replaced")
async def receive_texts_generic_error(url):
    return await _loop(heartbeat=0.3, on_error="generic")(url)


@wrong(check.receive_texts, "keeps BINARY messages' bytes with the texts",
       rule="returns the `data` of every TEXT message ... BINARY (ignore it)",
       problem="binary-not-ignored")
async def receive_texts_keeps_binary(url):
    return await _loop(heartbeat=0.3, binary="keep")(url)


@wrong(check.receive_texts, "stops at the first BINARY message",
       rule="BINARY (ignore it), CLOSE / CLOSING / CLOSED (stop)",
       problem="binary-not-ignored")
async def receive_texts_stops_on_binary(url):
    return await _loop(heartbeat=0.3, binary="stop")(url)


@wrong(check.receive_texts, "catches the heartbeat's ServerTimeoutError and returns the list",
       rule="must **raise** ... not return as if all were well",
       problem="error-swallowed")
async def receive_texts_swallows_timeout(url):
    try:
        return await _loop(heartbeat=0.3)(url)
    except aiohttp.ServerTimeoutError:
        return []


@wrong(check.receive_texts, "a receive_str() loop: the close (or a BINARY) raises a type error",
       rule="Handle **every** message type in one `while True` loop over `await ws.receive()`",
       problem="typed-receive")
async def receive_texts_receive_str(url):
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            while not ws.closed:
                texts.append(await ws.receive_str())
    return texts


# --- Task 3 · chat -------------------------------------------------------------------------


def _handle(msg, on_message):
    data = msg.json()
    if data.get("type") == "message":
        on_message(data["from"], data["text"])


@correct(check.chat, "receiver as a background task, sender inline, receiver awaited after close")
async def chat_background_receiver(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=5) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.ERROR:
                        raise ws.exception()
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)

            task = asyncio.create_task(receiver())
            for index, line in enumerate(lines):
                if index:
                    await asyncio.sleep(pause)
                await ws.send_str(line)
            await asyncio.sleep(pause)
            await ws.close()
            await task


@correct(check.chat, "asyncio.gather of receiver and sender")
async def chat_gather(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                while True:
                    msg = await ws.receive()
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)
                    elif msg.type is WSMsgType.ERROR:
                        raise ws.exception()
                    elif msg.type in ENDED:
                        return

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_str(line)
                await asyncio.sleep(pause)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@correct(check.chat, "one loop: send, then receive with a deadline until the next line is due")
async def chat_single_loop_deadlines(url, lines, pause, on_message):
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            for line in lines:
                await ws.send_str(line)
                deadline = loop.time() + pause
                while (remaining := deadline - loop.time()) > 0:
                    try:
                        msg = await ws.receive(timeout=remaining)
                    except TimeoutError:
                        break
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)
                    elif msg.type is WSMsgType.ERROR:
                        raise ws.exception()
                    elif msg.type in ENDED:
                        return
            await ws.close()


@correct(check.chat, "a TaskGroup; the sender cancels the receiver instead of waiting for it")
async def chat_taskgroup_cancel(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=5) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)
                    elif msg.type is WSMsgType.ERROR:
                        raise ws.exception()

            async with asyncio.TaskGroup() as group:
                listening = group.create_task(receiver())
                for line in lines[:1]:
                    await ws.send_str(line)
                for line in lines[1:]:
                    await asyncio.sleep(pause)
                    await ws.send_str(line)
                await asyncio.sleep(pause)
                await ws.close()
                await listening


@wrong(check.chat, "sends every line first, then reads what came in",
       rule="**meanwhile** ... call `on_message(...)` as soon as it arrives",
       problem="sequential")
async def chat_send_then_receive(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            for index, line in enumerate(lines):
                if index:
                    await asyncio.sleep(pause)
                await ws.send_str(line)
            await asyncio.sleep(pause)
            while True:
                try:
                    msg = await ws.receive(timeout=0.05)
                except TimeoutError:
                    break
                if msg.type is not WSMsgType.TEXT:
                    break
                _handle(msg, on_message)


@wrong(check.chat, "time.sleep(pause) in the sender: blocks the receiver too",
       rule="**meanwhile** ... as soon as it arrives",
       problem="blocked-loop")
async def chat_time_sleep(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        time.sleep(pause)
                    await ws.send_str(line)
                time.sleep(pause)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "calls on_message for every event (welcome, join, leave) too",
       rule="for every chat message from another member (a TEXT whose JSON has "
            "`\"type\": \"message\"`)",
       problem="not-a-message")
async def chat_no_type_filter(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    data = msg.json()
                    on_message(data.get("from", data.get("name", "")), data.get("text", ""))

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_str(line)
                await asyncio.sleep(pause)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "closes right after the last line, without the final pause",
       rule="after the last line, wait `pause` seconds more, then leave",
       problem="no-final-pause")
async def chat_no_final_pause(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_str(line)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "the sender never closes: the receiver waits for ever (gather hangs)",
       rule="then leave: close the socket",
       problem="never-left")
async def chat_never_closes(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_str(line)
                await asyncio.sleep(pause)

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "sends each line as JSON ({'text': line}) instead of as text",
       rule="send each of `lines`",
       problem="lines-not-sent")
async def chat_sends_json(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        _handle(msg, on_message)

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_json({"text": line})
                await asyncio.sleep(pause)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "the receiver returns after the first chat message",
       rule="for every chat message from another member ... call `on_message`",
       problem="messages-missed")
async def chat_receiver_stops_early(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:

            async def receiver():
                async for msg in ws:
                    data = msg.json()
                    if data.get("type") == "message":
                        on_message(data["from"], data["text"])
                        return

            async def sender():
                for index, line in enumerate(lines):
                    if index:
                        await asyncio.sleep(pause)
                    await ws.send_str(line)
                await asyncio.sleep(pause)
                await ws.close()

            await asyncio.gather(receiver(), sender())


@wrong(check.chat, "passes the arguments swapped: on_message(text, from)",
       rule="call `on_message(data[\"from\"], data[\"text\"])`",
       problem="wrong-message-args")
async def chat_swapped_arguments(url, lines, pause, on_message):
    async def receiver(ws):
        async for msg in ws:
            data = msg.json()
            if data.get("type") == "message":
                on_message(data["text"], data["from"])

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            listening = asyncio.create_task(receiver(ws))
            for index, line in enumerate(lines):
                if index:
                    await asyncio.sleep(pause)
                await ws.send_str(line)
            await asyncio.sleep(pause)
            await ws.close()
            await listening
