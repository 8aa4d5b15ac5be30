"""Learner answers to exercise 03 (timeouts), right and wrong, written from the task text."""

from __future__ import annotations

import asyncio

import aiohttp
import attr

from adversarial import correct, wrong
from local_server.checks import timeouts as check

# --- Task 1 · fetch_with_deadline ----------------------------------------------------------


@correct(check.fetch_with_deadline, "asyncio.timeout() around the session and the request")
async def fetch_with_deadline_asyncio_timeout(url, deadline):
    async with asyncio.timeout(deadline):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()


@correct(check.fetch_with_deadline, "a per-request ClientTimeout(total=deadline)")
async def fetch_with_deadline_per_request(url, deadline):
    async with aiohttp.ClientSession() as session:
        timeout = aiohttp.ClientTimeout(total=deadline)
        async with session.get(url, timeout=timeout) as response:
            return await response.text()


@correct(check.fetch_with_deadline, "asyncio.wait_for over an inner coroutine")
async def fetch_with_deadline_wait_for(url, deadline):
    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()

    return await asyncio.wait_for(fetch(), deadline)


@correct(check.fetch_with_deadline, "session timeout built with attr.evolve from the default")
async def fetch_with_deadline_evolved(url, deadline):
    timeout = attr.evolve(aiohttp.ClientTimeout(), total=deadline, sock_connect=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "uses sock_read as the deadline: a trickling body never trips",
       rule="The whole request, from connecting to the last byte of the body, must take at most "
       "`deadline` seconds",
       problem="silence-limit")
async def fetch_with_deadline_sock_read(url, deadline):
    timeout = aiohttp.ClientTimeout(sock_read=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "the deadline covers only getting the headers, not the body",
       rule="from connecting to the last byte of the body",
       problem="body-not-covered")
async def fetch_with_deadline_headers_only(url, deadline):
    async with aiohttp.ClientSession() as session:
        response = await asyncio.wait_for(session.get(url), deadline)
        async with response:
            return await response.text()


@wrong(check.fetch_with_deadline, "limits only the connection phase with connect=",
       rule="The whole request ... must take at most `deadline` seconds",
       problem="connect-only")
async def fetch_with_deadline_connect_only(url, deadline):
    timeout = aiohttp.ClientTimeout(connect=deadline, sock_connect=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "catches the TimeoutError and returns an empty string",
       rule="the caller must see a `TimeoutError`: do not catch it, and do not return anything "
       "in its place",
       problem="swallowed-timeout")
async def fetch_with_deadline_swallows_timeout(url, deadline):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
            async with session.get(url) as response:
                return await response.text()
    except TimeoutError:
        return ""


@wrong(check.fetch_with_deadline, "converts the timeout into a RuntimeError",
       rule="the caller must see a `TimeoutError`",
       problem="wrong-exception")
async def fetch_with_deadline_reraises_runtime_error(url, deadline):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
            async with session.get(url) as response:
                return await response.text()
    except TimeoutError as error:
        raise RuntimeError(f"{url} took longer than {deadline} s") from error


@wrong(check.fetch_with_deadline, "retries once after a timeout, so it can take twice the deadline",
       rule="must take at most `deadline` seconds",
       problem="too-late")
async def fetch_with_deadline_retries_once(url, deadline):
    timeout = aiohttp.ClientTimeout(total=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt in range(2):
            try:
                async with session.get(url) as response:
                    return await response.text()
            except TimeoutError:
                if attempt == 1:
                    raise
    raise AssertionError("unreachable")


@wrong(check.fetch_with_deadline, "hard-codes the quarter second of the example, ignores deadline",
       rule="must take at most `deadline` seconds",
       problem="gave-up-early")
async def fetch_with_deadline_hard_coded(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.25)) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "returns the body as bytes (read()) instead of text",
       rule="returns the body as text",
       problem="not-text")
async def fetch_with_deadline_returns_bytes(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.read()


@wrong(check.fetch_with_deadline, "seed bug: except aiohttp.ClientTimeout turns the timeout "
       "into a TypeError", rule="the caller must see a `TimeoutError`",
       problem="except-clienttimeout")
async def fetch_with_deadline_except_client_timeout(url, deadline):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
            async with session.get(url) as response:
                return await response.text()
    except aiohttp.ClientTimeout:
        raise


# --- Task 2 · fetch_and_explain ------------------------------------------------------------

ANSWERED = "answered"
TOO_SLOW = "too slow to answer"
STALLED = "stalled mid-body"


@correct(check.fetch_and_explain, "one except clause and a stage variable")
async def fetch_and_explain_stage_variable(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@correct(check.fetch_and_explain, "asyncio.wait_for on the headers and on each readany()")
async def fetch_and_explain_wait_for_each_read(url, patience):
    async with aiohttp.ClientSession() as session:
        try:
            response = await asyncio.wait_for(session.get(url), patience)
        except TimeoutError:
            return TOO_SLOW
        async with response:
            try:
                while await asyncio.wait_for(response.content.readany(), patience):
                    pass
            except TimeoutError:
                return STALLED
    return ANSWERED


@correct(check.fetch_and_explain, "catches aiohttp.SocketTimeoutError, nested try blocks")
async def fetch_and_explain_socket_timeout_error(url, patience):
    async with aiohttp.ClientSession() as session:
        timeout = aiohttp.ClientTimeout(sock_read=patience)
        try:
            async with session.get(url, timeout=timeout) as response:
                try:
                    async for _chunk in response.content.iter_any():
                        pass
                except aiohttp.SocketTimeoutError:
                    return STALLED
        except aiohttp.SocketTimeoutError:
            return TOO_SLOW
    return ANSWERED


@correct(check.fetch_and_explain, "a helper that reads the body, with response None as the stage")
async def fetch_and_explain_helper(url, patience):
    async def drain(response):
        async for _line in response.content:
            pass

    response = None
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=patience, sock_read=patience)
        ) as session:
            async with session.get(url) as response:
                await drain(response)
    except TimeoutError:
        return TOO_SLOW if response is None else STALLED
    return ANSWERED


@wrong(check.fetch_and_explain, "uses total=patience: a slow but steady body is reported stalled",
       rule='"answered": the body arrived completely, however long that took',
       problem="patience-as-deadline")
async def fetch_and_explain_total(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=patience)) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "one except for every timeout: a mid-body stall is 'too slow'",
       rule='"stalled mid-body": the headers arrived, then the body stopped',
       problem="cannot-tell-apart")
async def fetch_and_explain_no_stage(url, patience):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                await response.read()
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


@wrong(check.fetch_and_explain, "never reads the body: answered as soon as the headers arrive",
       rule="GETs `url`, reads the whole body",
       problem="body-not-read")
async def fetch_and_explain_skips_body(url, patience):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                response.raise_for_status()
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


@wrong(check.fetch_and_explain, "except aiohttp.ClientError also turns a refused connection into "
       "'too slow to answer'", rule="Anything that is not a timeout ... let it propagate",
       problem="catches-too-much")
async def fetch_and_explain_catches_client_error(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except (TimeoutError, aiohttp.ClientError):
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "re-raises ClientConnectionError before the TimeoutError clause, "
       "so sock_read timeouts escape", rule="returns exactly one of ...",
       problem="timeout-escaped")
async def fetch_and_explain_connection_error_first(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ClientConnectionError:
        raise  # not slowness
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "seed bug: except aiohttp.ClientTimeout raises TypeError",
       rule="returns exactly one of ...",
       problem="except-clienttimeout")
async def fetch_and_explain_except_client_timeout(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ClientTimeout:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "except Exception: every failure becomes a timeout answer",
       rule="Anything that is not a timeout ... let it propagate to the caller",
       problem="catches-too-much")
async def fetch_and_explain_catches_everything(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except Exception:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "times the stage with connect= instead of sock_read: a silent "
       "server is never detected", rule='"too slow to answer": the server sent nothing ... for '
       "`patience` seconds",
       problem="no-timeout")
async def fetch_and_explain_connect_timeout(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=None, connect=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "guesses the stage from the elapsed time instead of whether the "
       "headers arrived", rule='"stalled mid-body": the headers arrived, then the body stopped',
       problem="cannot-tell-apart")
async def fetch_and_explain_guesses_from_elapsed(url, patience):
    loop = asyncio.get_running_loop()
    started = loop.time()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                await response.read()
    except TimeoutError:
        return TOO_SLOW if loop.time() - started < 1.5 * patience else STALLED
    return ANSWERED


# --- Task 3 · stream_lines -----------------------------------------------------------------


@correct(check.stream_lines, "readline() in a while loop, per-request timeout")
async def stream_lines_readline(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
        async with session.get(url, timeout=timeout) as response:
            while line := await response.content.readline():
                handle_line(line.decode())
                count += 1
    return count


@correct(check.stream_lines, "asyncio.timeout rescheduled on every chunk, lines split by hand")
async def stream_lines_rescheduled_timeout(url, max_silence, handle_line):
    loop = asyncio.get_running_loop()
    count = 0
    buffer = b""
    async with asyncio.timeout(max_silence) as silence:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            async with session.get(url) as response:
                silence.reschedule(loop.time() + max_silence)
                async for chunk in response.content.iter_any():
                    silence.reschedule(loop.time() + max_silence)
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        handle_line(line.decode())
                        count += 1
                if buffer:
                    handle_line(buffer.decode())
                    count += 1
    return count


@correct(check.stream_lines, "attr.evolve of the session default with total=None made explicit")
async def stream_lines_evolved(url, max_silence, handle_line):
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, total=None, sock_read=max_silence)
        count = 0
        async with session.get(url, timeout=timeout) as response:
            async for line in response.content:
                handle_line(line.decode("utf-8").rstrip("\n"))
                count += 1
        return count


@correct(check.stream_lines, "enumerate over the lines, session-wide timeout")
async def stream_lines_enumerate(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(sock_connect=max_silence, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for index, line in _aenumerate(response.content, start=1):
                handle_line(line.decode())
                count = index
    return count


async def _aenumerate(iterable, start=0):
    index = start
    async for item in iterable:
        yield index, item
        index += 1


@wrong(check.stream_lines, "total=max_silence: a long healthy stream is cut off",
       rule="The stream may take as long as it needs",
       problem="overall-limit")
async def stream_lines_total(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max_silence)) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "treats iter_any() chunks as lines",
       rule="reads the body of `url` **line by line**",
       problem="wrong-lines")
async def stream_lines_iter_any_as_lines(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                handle_line(chunk.decode())
                count += 1
    return count


@wrong(check.stream_lines, "reads the whole text, then splits it: lines only at the end",
       rule="calls `handle_line(line)` ... as soon as it arrives",
       problem="not-streamed")
async def stream_lines_text_then_split(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            text = await response.text()
    lines = text.splitlines()
    for line in lines:
        handle_line(line)
    return len(lines)


@wrong(check.stream_lines, "catches the TimeoutError and returns the lines read so far",
       rule="the function must raise a `TimeoutError`",
       problem="swallowed-timeout")
async def stream_lines_swallows_timeout(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                async for line in response.content:
                    handle_line(line.decode())
                    count += 1
    except TimeoutError:
        pass
    return count


@wrong(check.stream_lines, "passes bytes to handle_line instead of text",
       rule="calls `handle_line(line)` with each line as text",
       problem="not-text")
async def stream_lines_passes_bytes(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line)
                count += 1
    return count


@wrong(check.stream_lines, "no sock_read at all: a stall is not detected",
       rule="if no data arrives for `max_silence` seconds, the function must raise a "
       "`TimeoutError`",
       problem="no-stall-detection")
async def stream_lines_no_stall_detection(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "evolves the session default without total=None: still cut at 300 s",
       rule="The stream may take as long as it needs, minutes if the server keeps sending",
       problem="overall-limit")
async def stream_lines_keeps_default_total(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, sock_read=max_silence)
        async with session.get(url, timeout=timeout) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "wait_for per whole line: a line arriving in slow pieces times out "
       "although data keeps arriving", rule="if no data arrives for `max_silence` seconds",
       problem="limit-per-line")
async def stream_lines_wait_for_each_line(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        response = await asyncio.wait_for(session.get(url), max_silence)
        async with response:
            while line := await asyncio.wait_for(response.content.readline(), max_silence):
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "asyncio.timeout(max_silence) around the whole stream: a deadline",
       rule="The stream may take as long as it needs",
       problem="overall-limit")
async def stream_lines_asyncio_timeout_whole(url, max_silence, handle_line):
    count = 0
    async with asyncio.timeout(max_silence):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                async for line in response.content:
                    handle_line(line.decode())
                    count += 1
    return count
