"""Exercise 10's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from local_server.checks import websocket_client as check

WS = aiohttp.WSMsgType
ENDED = (WS.CLOSE, WS.CLOSING, WS.CLOSED)

# --- Task 1: collect_push --------------------------------------------------------------------


async def collect_async_for(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        messages = [msg.json() async for msg in ws if msg.type is WS.TEXT]
        return messages, ws.close_code


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


async def collect_close_message(url):
    """Correct too: the code taken from the CLOSE message itself (autoclose off)."""
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


@pytest.mark.parametrize("answer", [collect_async_for, collect_while_loop, collect_close_message])
def test_collect_push_accepts_correct_alternatives(answer):
    verdict = check.collect_push.diagnose(answer)
    assert verdict.passed, verdict.render()


async def collect_ignoring_close(url):
    messages = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while True:
            msg = await ws.receive()
            if msg.type is WS.TEXT:
                messages.append(msg.json())
    return messages, ws.close_code


async def collect_waiting_for_more(url):
    """Waits for TEXT forever with autoclose off: the CLOSE frame is never answered."""
    messages = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, autoclose=False) as ws:
            while len(messages) < 100:
                msg = await ws.receive()
                if msg.type is WS.TEXT:
                    messages.append(msg.json())
    return messages, ws.close_code


async def collect_session_left_open(url):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    messages = [msg.json() async for msg in ws]
    return messages, ws.close_code


async def collect_code_too_early(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        code = ws.close_code
        messages = [msg.json() async for msg in ws]
        return messages, code


async def collect_raw_text(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        return [msg.data async for msg in ws], ws.close_code


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (collect_ignoring_close, "close-ignored"),
        (collect_waiting_for_more, "close-ignored"),
        (collect_session_left_open, "session-left-open"),
        (collect_code_too_early, "wrong-close-code"),
        (collect_raw_text, "not-json"),
    ],
)
def test_collect_push_diagnoses_mistakes(answer, problem):
    verdict = check.collect_push.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


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


async def texts_heartbeat(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            return await _texts_loop(ws)


async def texts_ws_timeout(url):
    timeout = aiohttp.ClientWSTimeout(ws_receive=0.8)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, timeout=timeout) as ws:
            return await _texts_loop(ws)


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


@pytest.mark.parametrize("answer", [texts_heartbeat, texts_ws_timeout, texts_receive_timeout])
def test_receive_texts_accepts_correct_alternatives(answer):
    verdict = check.receive_texts.diagnose(answer)
    assert verdict.passed, verdict.render()


async def texts_no_heartbeat(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        return await _texts_loop(ws)


async def texts_seed_break_on_error(url):
    """The seed's loop: ERROR ends the loop quietly, so a dead peer looks like the end."""
    texts = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=0.3) as ws:
            async for msg in ws:
                if msg.type is WS.TEXT:
                    texts.append(msg.data)
                elif msg.type is WS.ERROR:
                    break
    return texts


async def texts_timeout_swallowed(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(_texts_loop(ws), 0.8)
        return []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (texts_no_heartbeat, "no-heartbeat"),
        (texts_seed_break_on_error, "error-swallowed"),
        (texts_timeout_swallowed, "error-swallowed"),
    ],
)
def test_receive_texts_diagnoses_mistakes(answer, problem):
    verdict = check.receive_texts.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


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


async def chat_taskgroup(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async with asyncio.TaskGroup() as group:
            group.create_task(_send_then_leave(ws, lines, pause))
            group.create_task(_listen(ws, on_message))


async def chat_gather(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await asyncio.gather(_send_then_leave(ws, lines, pause), _listen(ws, on_message))


async def chat_background_listener(url, lines, pause, on_message):
    """Correct too: a background receiver, cancelled after the sender leaves."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        listener = asyncio.create_task(_listen(ws, on_message))
        for line in lines:
            await ws.send_str(line)
            await asyncio.sleep(pause)
        await ws.close()
        await listener


@pytest.mark.parametrize("answer", [chat_taskgroup, chat_gather, chat_background_listener])
def test_chat_accepts_correct_alternatives(answer):
    verdict = check.chat.diagnose(answer)
    assert verdict.passed, verdict.render()


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


async def chat_receive_then_send(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await _listen(ws, on_message)
        for line in lines:
            await ws.send_str(line)


async def chat_never_leaves(url, lines, pause, on_message):
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:

        async def send() -> None:
            for line in lines:
                await ws.send_str(line)
                await asyncio.sleep(pause)

        await asyncio.gather(send(), _listen(ws, on_message))


async def chat_session_left_open(url, lines, pause, on_message):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    await asyncio.gather(_send_then_leave(ws, lines, pause), _listen(ws, on_message))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (chat_send_then_receive, "sequential"),
        (chat_receive_then_send, "sending-blocked"),
        (chat_never_leaves, "never-left"),
        (chat_session_left_open, "session-left-open"),
    ],
)
def test_chat_diagnoses_mistakes(answer, problem):
    verdict = check.chat.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
