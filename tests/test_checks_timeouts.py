"""Exercise 03's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. A few more tests look at what a message says.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import attr
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import timeouts as check
from local_server.checks.timeouts import ANSWERED, STALLED, TOO_SLOW

# --- Task 1: fetch_with_deadline ---------------------------------------------------------------


@correct(check.fetch_with_deadline, "ClientTimeout(total=deadline) on the session")
async def deadline_on_session(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.text()


@correct(check.fetch_with_deadline, "the session default evolved per request")
async def deadline_per_request(url, deadline):
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, total=deadline)
        async with session.get(url, timeout=timeout) as response:
            return await response.text()


@correct(check.fetch_with_deadline, "asyncio.timeout around the session")
async def deadline_with_asyncio_timeout(url, deadline):
    async with asyncio.timeout(deadline):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()


@correct(check.fetch_with_deadline, "asyncio.wait_for over an inner coroutine")
async def deadline_with_wait_for(url, deadline):
    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()

    return await asyncio.wait_for(fetch(), deadline)


@correct(check.fetch_with_deadline, "logs the timeout, then re-raises it")
async def deadline_that_logs_and_reraises(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError:
        print("timed out")  # a learner's log line
        raise


@correct(check.fetch_with_deadline, "a number as the per-request timeout (means total)")
async def deadline_as_a_number(url, deadline):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=deadline) as response:
            return await response.text()


@correct(check.fetch_with_deadline, "asyncio.timeout_at, computed from the loop's clock")
async def deadline_timeout_at(url, deadline):
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + deadline):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()


@correct(check.fetch_with_deadline, "total and sock_read both set to the deadline")
async def deadline_total_and_sock_read(url, deadline):
    timeout = aiohttp.ClientTimeout(total=deadline, sock_read=deadline, sock_connect=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@correct(check.fetch_with_deadline, "retries a refused connection, inside one deadline")
async def deadline_retry_inside_one_deadline(url, deadline):
    async with asyncio.timeout(deadline), aiohttp.ClientSession() as session:
        for attempt in range(2):
            try:
                async with session.get(url) as response:
                    return await response.text()
            except aiohttp.ClientConnectorError:
                if attempt:
                    raise
    raise AssertionError("unreachable")


@wrong(check.fetch_with_deadline, "no timeout at all (the default 300 s)", problem="too-late")
async def deadline_none(url, deadline):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "limits only connecting", problem="connect-only")
async def deadline_on_connect_only(url, deadline):
    timeout = aiohttp.ClientTimeout(connect=deadline, sock_connect=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "sock_read as the deadline", problem="silence-limit")
async def deadline_as_sock_read(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=deadline)) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "returns '' on a timeout", problem="swallowed-timeout")
async def deadline_swallowed(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError:
        return ""


@wrong(check.fetch_with_deadline, "except aiohttp.ClientTimeout", problem="except-clienttimeout")
async def deadline_caught_as_client_timeout(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except aiohttp.ClientTimeout:  # the seed's bug
        raise TimeoutError from None


@wrong(check.fetch_with_deadline, "turns the timeout into RuntimeError", problem="wrong-exception")
async def deadline_converted(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError as error:
        raise RuntimeError("the server is slow") from error


@wrong(check.fetch_with_deadline, "returns bytes", problem="not-text")
async def deadline_returning_bytes(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.read()


@wrong(check.fetch_with_deadline, "cancels itself", problem="cancelled")
async def deadline_cancelling_itself(url, deadline):
    raise asyncio.CancelledError


@wrong(check.fetch_with_deadline, "a plain def", problem="not-async")
def deadline_not_async(url, deadline):
    return "not fetched"


@wrong(check.fetch_with_deadline, "the stub", problem="not-implemented")
async def deadline_stub(url, deadline):
    raise NotImplementedError("your code here")


@wrong(check.fetch_with_deadline, "milliseconds: total=deadline / 1000", problem="gave-up-early")
async def deadline_in_milliseconds(url, deadline):
    timeout = aiohttp.ClientTimeout(total=deadline / 1000)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "a fixed 0.3 s limit, whatever the deadline",
       problem="gave-up-early")
async def deadline_fixed(url, deadline):
    async with asyncio.timeout(0.3), aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_with_deadline, "asyncio.timeout around the headers only",
       problem="body-not-covered")
async def deadline_headers_only(url, deadline):
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(deadline):
            response = await session.get(url)
        async with response:
            return await response.text()


@wrong(check.fetch_with_deadline, "asyncio.timeout around the body only, not the wait for it",
       problem="too-late")
async def deadline_body_only(url, deadline):
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        async with asyncio.timeout(deadline):
            return await response.text()


@wrong(check.fetch_with_deadline, "wait_for around each read, not the whole",
       problem="silence-limit")
async def deadline_per_read(url, deadline):
    async with aiohttp.ClientSession() as session:
        response = await asyncio.wait_for(session.get(url), deadline)
        async with response:
            body = b""
            while chunk := await asyncio.wait_for(response.content.readany(), deadline):
                body += chunk
            return body.decode()


@wrong(check.fetch_with_deadline, "a deadline twice too long", problem="too-late")
async def deadline_doubled(url, deadline):
    return await deadline_on_session(url, deadline * 2)


@wrong(check.fetch_with_deadline, "tries twice, each try with the whole deadline",
       problem="too-late")
async def deadline_each_try(url, deadline):
    for attempt in range(2):
        try:
            async with asyncio.timeout(deadline), aiohttp.ClientSession() as session:
                async with session.get(url) as response:
                    return await response.text()
        except TimeoutError:
            if attempt:
                raise
    raise AssertionError("unreachable")


@wrong(check.fetch_with_deadline, "three tries, each with half the deadline", problem="too-late")
async def deadline_three_short_tries(url, deadline):
    for attempt in range(3):
        try:
            return await deadline_on_session(url, deadline / 2)
        except TimeoutError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@wrong(check.fetch_with_deadline, "closes the session only on success",
       problem="session-left-open")
async def deadline_closes_on_success(url, deadline):
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline))
    async with session.get(url) as response:
        text = await response.text()
    await session.close()
    return text


@wrong(check.fetch_with_deadline, "never closes its session", problem="session-left-open")
async def deadline_leaks_session(url, deadline):
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline))
    async with session.get(url) as response:
        return await response.text()


@wrong(check.fetch_with_deadline, "decodes the body as Latin-1", problem="wrong-body")
async def deadline_latin1(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.text(encoding="latin-1")


@wrong(check.fetch_with_deadline, "returns None on a timeout", problem="swallowed-timeout")
async def deadline_none_on_timeout(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError:
        return None


@wrong(check.fetch_with_deadline, "turns the timeout into a ClientError",
       problem="wrong-exception")
async def deadline_as_client_error(url, deadline):
    try:
        return await deadline_with_asyncio_timeout(url, deadline)
    except TimeoutError:
        raise aiohttp.ClientError("deadline passed") from None


# --- Task 2: fetch_and_explain -----------------------------------------------------------------


@correct(check.fetch_and_explain, "a stage variable, sock_read on the session")
async def explain_with_stage(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@correct(check.fetch_and_explain, "two try blocks, ServerTimeoutError, evolved per request")
async def explain_with_two_tries(url, patience):
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, total=None, sock_read=patience)
        try:
            response = await session.get(url, timeout=timeout)
        except aiohttp.ServerTimeoutError:
            return TOO_SLOW
        async with response:
            try:
                async for _chunk in response.content.iter_any():
                    pass
            except aiohttp.ServerTimeoutError:
                return STALLED
    return ANSWERED


@correct(check.fetch_and_explain, "asyncio.timeout for the headers, wait_for on each readany")
async def explain_with_asyncio_timeouts(url, patience):
    async with aiohttp.ClientSession() as session:
        try:
            async with asyncio.timeout(patience):
                response = await session.get(url)
        except TimeoutError:
            return TOO_SLOW
        async with response:
            try:
                while await asyncio.wait_for(response.content.readany(), patience):
                    pass
            except TimeoutError:
                return STALLED
    return ANSWERED


@correct(check.fetch_and_explain, "TimeoutError first, then connection errors re-raised")
async def explain_timeout_clause_first(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    except aiohttp.ClientConnectionError:
        raise
    return ANSWERED


@correct(check.fetch_and_explain, "one asyncio.timeout rescheduled on every piece of data")
async def explain_rescheduled(url, patience):
    loop = asyncio.get_running_loop()
    stage = TOO_SLOW
    try:
        async with asyncio.timeout(patience) as silence, aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                stage = STALLED
                silence.reschedule(loop.time() + patience)
                async for _chunk in response.content.iter_any():
                    silence.reschedule(loop.time() + patience)
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "no timeout at all", problem="no-timeout")
async def explain_without_timeout(url, patience):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            await response.read()
    return ANSWERED


@wrong(check.fetch_and_explain, "total=patience", problem="patience-as-deadline")
async def explain_with_total(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "no stage: every timeout is too slow", problem="cannot-tell-apart")
async def explain_without_stage(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                await response.read()
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


@wrong(check.fetch_and_explain, "never reads the body", problem="body-not-read")
async def explain_without_reading(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url):
                pass
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


@wrong(check.fetch_and_explain, "except Exception", problem="catches-too-much")
async def explain_catching_everything(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except Exception:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "except aiohttp.ClientError, with total", problem="timeout-escaped")
async def explain_catching_client_error_with_total(url, patience):
    stage = TOO_SLOW
    timeout = aiohttp.ClientTimeout(total=patience)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ClientError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "except aiohttp.ConnectionTimeoutError", problem="timeout-escaped")
async def explain_catching_connection_timeouts(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ConnectionTimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "except aiohttp.ClientTimeout", problem="except-clienttimeout")
async def explain_catching_client_timeout(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ClientTimeout:  # the seed's bug
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "drops the timeout and says answered", problem="swallowed-timeout")
async def explain_swallowing(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                await response.read()
    except TimeoutError:
        pass
    return ANSWERED


@wrong(check.fetch_and_explain, "the two timeout labels swapped", problem="wrong-label")
async def explain_swapped(url, patience):
    answer = await explain_with_stage(url, patience)
    return {TOO_SLOW: STALLED, STALLED: TOO_SLOW}.get(answer, answer)


@wrong(check.fetch_and_explain, "labels of its own", problem="unknown-label")
async def explain_in_own_words(url, patience):
    answer = await explain_with_stage(url, patience)
    return "ok" if answer == ANSWERED else "timeout"


@wrong(check.fetch_and_explain, "ClientConnectionError re-raised before TimeoutError",
       problem="timeout-escaped")
async def explain_connection_clause_first(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except aiohttp.ClientConnectionError:
        raise
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "wait_for on each readline(): a limit per line",
       problem="limit-per-line")
async def explain_per_line(url, patience):
    async with aiohttp.ClientSession() as session:
        try:
            response = await asyncio.wait_for(session.get(url), patience)
        except TimeoutError:
            return TOO_SLOW
        async with response:
            try:
                while await asyncio.wait_for(response.content.readline(), patience):
                    pass
            except TimeoutError:
                return STALLED
    return ANSWERED


@wrong(check.fetch_and_explain, "a fixed sock_read of 0.3 s", problem="gave-up-early")
async def explain_fixed_patience(url, patience):
    return await explain_with_stage(url, 0.3)


@wrong(check.fetch_and_explain, "except (TimeoutError, OSError)", problem="catches-too-much")
async def explain_catching_oserror(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                stage = STALLED
                await response.read()
    except (TimeoutError, OSError):
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "asyncio.timeout(patience) around the whole request",
       problem="patience-as-deadline")
async def explain_asyncio_timeout_whole(url, patience):
    stage = TOO_SLOW
    try:
        async with asyncio.timeout(patience), aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "the session is closed only when the body arrives",
       problem="session-left-open")
async def explain_leaks_on_timeout(url, patience):
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience))
    stage = TOO_SLOW
    try:
        async with session.get(url) as response:
            stage = STALLED
            await response.read()
    except TimeoutError:
        return stage
    await session.close()
    return ANSWERED


@wrong(check.fetch_and_explain, "connect=patience: a silent server is never stopped",
       problem="no-timeout")
async def explain_connect_only(url, patience):
    return await explain_with_stage_timeout(url, aiohttp.ClientTimeout(connect=patience))


async def explain_with_stage_timeout(url, timeout):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@correct(check.fetch_and_explain, "sock_read evolved from the session default, total=300 kept: "
         "the task is about silence, and its bodies take about a second (unlike stream_lines, "
         "whose text asks for no limit on the whole stream)")
async def explain_keeps_default_total(url, patience):
    stage = TOO_SLOW
    try:
        async with aiohttp.ClientSession() as session:
            timeout = attr.evolve(session.timeout, sock_read=patience)
            async with session.get(url, timeout=timeout) as response:
                stage = STALLED
                await response.read()
    except TimeoutError:
        return stage
    return ANSWERED


@wrong(check.fetch_and_explain, "cancels itself after patience", problem="cancelled")
async def explain_cancels_itself(url, patience):
    task = asyncio.current_task()
    asyncio.get_running_loop().call_later(patience, task.cancel)
    return await explain_with_stage_timeout(url, aiohttp.ClientTimeout())


# --- Task 3: stream_lines ----------------------------------------------------------------------


@correct(check.stream_lines, "async for over the content, sock_read on the session")
async def stream_with_sock_read(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@correct(check.stream_lines, "readline() with the session default evolved, total=None")
async def stream_readline_evolved(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, total=None, sock_read=max_silence)
        async with session.get(url, timeout=timeout) as response:
            while line := await response.content.readline():
                handle_line(line.decode("utf-8").rstrip("\n"))
                count += 1
    return count


@correct(check.stream_lines, "own buffer of bytes over iter_chunked(5), decoded per line")
async def stream_own_byte_buffer(url, max_silence, handle_line):
    count, pending = 0, b""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(5):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    handle_line(line.decode())
                    count += 1
            if pending:
                handle_line(pending.decode())
                count += 1
    return count


@correct(check.stream_lines, "asyncio.timeout rescheduled on each piece, an incremental decoder")
async def stream_rescheduled_with_decoder(url, max_silence, handle_line):
    import codecs

    loop = asyncio.get_running_loop()
    decoder = codecs.getincrementaldecoder("utf-8")()
    count, pending = 0, ""
    async with asyncio.timeout(max_silence) as silence:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            async with session.get(url) as response:
                silence.reschedule(loop.time() + max_silence)
                async for chunk in response.content.iter_any():
                    silence.reschedule(loop.time() + max_silence)
                    pending += decoder.decode(chunk)
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        handle_line(line)
                        count += 1
    if pending:
        handle_line(pending)
        count += 1
    return count


@correct(check.stream_lines, "hands each line over from a worker thread")
async def stream_handing_over_in_a_thread(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                await asyncio.to_thread(handle_line, line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "asyncio.timeout around each readline(): a limit per line",
       problem="limit-per-line")
async def stream_with_asyncio_timeout_per_line(url, max_silence, handle_line):
    # Correct under the old task text; a line whose bytes keep coming slowly is not a stall.
    count = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.get(url) as response:
            while True:
                async with asyncio.timeout(max_silence):
                    line = await response.content.readline()
                if not line:
                    return count
                handle_line(line.decode().rstrip("\n"))
                count += 1


@wrong(check.stream_lines, "decodes each piece of data before splitting it",
       problem="decoded-pieces")
async def stream_splitting_chunks_itself(url, max_silence, handle_line):
    # Correct under the old task text; a character split between two pieces breaks it.
    count, pending = 0, ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=max_silence)) as s:
        async with s.get(url) as response:
            async for chunk in response.content.iter_any():
                pending += chunk.decode()
                *lines, pending = pending.split("\n")
                for line in lines:
                    handle_line(line)
                    count += 1
    return count


@wrong(check.stream_lines, "total=max_silence", problem="overall-limit")
async def stream_with_total(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "no timeout at all", problem="no-stall-detection")
async def stream_without_timeout(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "catches the stall and returns", problem="swallowed-timeout")
async def stream_swallowing_the_stall(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            try:
                async for line in response.content:
                    handle_line(line.decode())
                    count += 1
            except TimeoutError:
                pass
    return count


@wrong(check.stream_lines, "reads everything, then splits", problem="not-streamed")
async def stream_reading_everything_first(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            lines = (await response.text()).splitlines()
    for line in lines:
        handle_line(line)
    return len(lines)


@wrong(check.stream_lines, "hands over bytes", problem="not-text")
async def stream_handing_bytes(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line)
                count += 1
    return count


@wrong(check.stream_lines, "returns nothing", problem="wrong-count")
async def stream_returning_nothing(url, max_silence, handle_line):
    await stream_with_sock_read(url, max_silence, handle_line)


@wrong(check.stream_lines, "except aiohttp.ClientTimeout", problem="except-clienttimeout")
async def stream_catching_client_timeout(url, max_silence, handle_line):
    try:
        return await stream_with_sock_read(url, max_silence, handle_line)
    except aiohttp.ClientTimeout:  # the seed's bug
        raise


@wrong(check.stream_lines, "sock_read, but the session default total=300 kept",
       problem="overall-limit")
async def stream_keeps_default_total(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, sock_read=max_silence)
        async with session.get(url, timeout=timeout) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "sock_read, plus asyncio.timeout(60) around it all",
       problem="overall-limit")
async def stream_with_an_hour_cap(url, max_silence, handle_line):
    async with asyncio.timeout(60):
        return await stream_with_sock_read(url, max_silence, handle_line)


@wrong(check.stream_lines, "iter_chunked(64) pieces taken for lines", problem="wrong-lines")
async def stream_chunks_as_lines(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(64):
                handle_line(chunk.decode(errors="replace"))
                count += 1
    return count


@wrong(check.stream_lines, "own line buffer that forgets the last line", problem="wrong-lines")
async def stream_drops_the_tail(url, max_silence, handle_line):
    count, pending = 0, b""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    handle_line(line.decode())
                    count += 1
    return count


@wrong(check.stream_lines, "decodes pieces with errors='replace'", problem="decoded-pieces")
async def stream_decodes_with_replacement(url, max_silence, handle_line):
    count, pending = 0, ""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                pending += chunk.decode(errors="replace")
                *lines, pending = pending.split("\n")
                for line in lines:
                    handle_line(line)
                    count += 1
            if pending:
                handle_line(pending)
                count += 1
    return count


@wrong(check.stream_lines, "turns the stall into RuntimeError", problem="wrong-exception")
async def stream_converting_the_stall(url, max_silence, handle_line):
    try:
        return await stream_with_sock_read(url, max_silence, handle_line)
    except TimeoutError as error:
        raise RuntimeError("the stream stalled") from error


@wrong(check.stream_lines, "closes the session only when the stream ends",
       problem="session-left-open")
async def stream_leaks_on_stall(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    session = aiohttp.ClientSession(timeout=timeout)
    count = 0
    async with session.get(url) as response:
        async for line in response.content:
            handle_line(line.decode())
            count += 1
    await session.close()
    return count


@wrong(check.stream_lines, "only sock_connect: a stall is never detected",
       problem="no-stall-detection")
async def stream_connect_limit_only(url, max_silence, handle_line):
    count = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "cancels itself at the first silence", problem="cancelled")
async def stream_cancels_itself(url, max_silence, handle_line):
    try:
        return await stream_with_sock_read(url, max_silence, handle_line)
    except TimeoutError:
        raise asyncio.CancelledError from None


@wrong(check.stream_lines, "a silence limit of its own, far shorter than max_silence",
       problem="limit-per-line")
async def stream_with_a_tiny_sock_read(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.02)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


@wrong(check.stream_lines, "hands over str(line): the repr of bytes", problem="not-text")
async def stream_handing_bytes_repr(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(str(line))
                count += 1
    return count


# --- every answer, then what some messages say ------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_a_request_without_timeout_is_stopped_by_the_check_itself():
    started = time.perf_counter()
    verdict = check.fetch_with_deadline.diagnose(deadline_none)
    assert "the check stopped it" in verdict.message, verdict.render()
    assert "aiohttp's `total` of 300 s" in verdict.message
    assert time.perf_counter() - started < check.NEVER_SECONDS


def test_the_sock_read_mistake_names_the_field():
    verdict = check.fetch_with_deadline.diagnose(deadline_as_sock_read)
    assert "`sock_read` of" in verdict.message and "total" in verdict.hint, verdict.render()


def test_a_retry_is_named_from_the_requests_the_server_received():
    verdict = check.fetch_with_deadline.diagnose(deadline_each_try)
    assert "received 2 requests" in verdict.message, verdict.render()
    assert "asyncio.timeout(deadline)" in verdict.hint


def test_a_deadline_that_starts_after_the_headers_is_named():
    verdict = check.fetch_with_deadline.diagnose(deadline_body_only)
    assert "covers reading the body, not waiting for the answer" in verdict.message, (
        verdict.render()
    )


def test_a_limit_that_is_not_the_deadline_is_named():
    verdict = check.fetch_with_deadline.diagnose(deadline_fixed)
    assert "`asyncio.timeout()` of 0.3 s" in verdict.message, verdict.render()


def test_an_escaped_total_timeout_is_named_with_its_source():
    verdict = check.fetch_and_explain.diagnose(explain_catching_client_error_with_total)
    assert verdict.message.startswith("TimeoutError (from aiohttp's `total`) escaped")
    assert "except aiohttp.ClientError" in verdict.hint


def test_the_clause_that_took_a_timeout_first_is_quoted():
    verdict = check.fetch_and_explain.diagnose(explain_connection_clause_first)
    assert "`except aiohttp.ClientConnectionError:`" in verdict.message, verdict.render()
    assert "both a TimeoutError and a ClientConnectionError" in verdict.message
    assert "raised it again" in verdict.message


def test_a_limit_on_the_whole_stream_is_seen_without_waiting_for_it():
    started = time.perf_counter()
    verdict = check.stream_lines.diagnose(stream_keeps_default_total)
    assert "aiohttp's `total` of 300 s" in verdict.message, verdict.render()
    assert time.perf_counter() - started < 60  # not the 300 s


def test_correct_answers_pass():
    for task_check, answer in (
        (check.fetch_with_deadline, deadline_on_session),
        (check.fetch_and_explain, explain_with_stage),
        (check.stream_lines, stream_with_sock_read),
    ):
        assert task_check.diagnose(answer).passed, task_check.task


def test_verdicts_repeat():
    first = check.fetch_and_explain.diagnose(explain_per_line)
    assert first == check.fetch_and_explain.diagnose(explain_per_line)


def test_a_timing_verdict_met_by_a_lagging_loop_is_judged_again(monkeypatch):
    calls = []

    async def counted(url, max_silence, handle_line):
        calls.append(url)
        return await stream_with_total(url, max_silence, handle_line)

    monkeypatch.setattr(check, "LAG_TOLERANCE_SECONDS", -1.0)  # as if the loop always lagged
    verdict = check.stream_lines.diagnose(counted)
    assert verdict.problem == "overall-limit", verdict.render()
    assert len(calls) == 4 * check.TIMING_ATTEMPTS
