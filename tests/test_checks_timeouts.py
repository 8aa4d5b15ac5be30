"""Exercise 03's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

These checks wait on purpose (a quarter of a second per limit, longer for the cases where the
learner's code has no timeout and the check must stop it), so the file would take half a
minute one check at a time. Each check runs in its own thread, loop and server, so the module
runs them all at once in a small thread pool (``verdicts``) and each test reads its verdict.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import attr
import pytest

from local_server.checks import timeouts as check
from local_server.checks.harness import Verdict
from local_server.checks.timeouts import ANSWERED, STALLED, TOO_SLOW

PARALLEL_CHECKS = 8

# --- Task 1: fetch_with_deadline ---------------------------------------------------------------


async def deadline_on_session(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.text()


async def deadline_per_request(url, deadline):
    async with aiohttp.ClientSession() as session:
        timeout = attr.evolve(session.timeout, total=deadline)
        async with session.get(url, timeout=timeout) as response:
            return await response.text()


async def deadline_with_asyncio_timeout(url, deadline):
    async with asyncio.timeout(deadline):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()


async def deadline_with_wait_for(url, deadline):
    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()

    return await asyncio.wait_for(fetch(), deadline)


async def deadline_that_logs_and_reraises(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError:
        print("timed out")  # a learner's log line
        raise


DEADLINE_CORRECT = [
    deadline_on_session,
    deadline_per_request,
    deadline_with_asyncio_timeout,
    deadline_with_wait_for,
    deadline_that_logs_and_reraises,
]


async def deadline_none(url, deadline):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


async def deadline_on_connect_only(url, deadline):
    timeout = aiohttp.ClientTimeout(connect=deadline, sock_connect=deadline)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            return await response.text()


async def deadline_as_sock_read(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=deadline)) as session:
        async with session.get(url) as response:
            return await response.text()


async def deadline_swallowed(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError:
        return ""


async def deadline_caught_as_client_timeout(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except aiohttp.ClientTimeout:  # the seed's bug
        raise TimeoutError from None


async def deadline_converted(url, deadline):
    try:
        return await deadline_on_session(url, deadline)
    except TimeoutError as error:
        raise RuntimeError("the server is slow") from error


async def deadline_returning_bytes(url, deadline):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session:
        async with session.get(url) as response:
            return await response.read()


async def deadline_cancelling_itself(url, deadline):
    raise asyncio.CancelledError


def deadline_not_async(url, deadline):
    return "not fetched"


async def deadline_stub(url, deadline):
    raise NotImplementedError("your code here")


DEADLINE_MISTAKES = [
    (deadline_none, "no-timeout"),
    (deadline_on_connect_only, "wrong-field"),
    (deadline_as_sock_read, "wrong-field"),
    (deadline_swallowed, "swallowed-timeout"),
    (deadline_caught_as_client_timeout, "except-clienttimeout"),
    (deadline_converted, "wrong-exception"),
    (deadline_returning_bytes, "not-text"),
    (deadline_cancelling_itself, "cancelled"),
    (deadline_not_async, "not-async"),
    (deadline_stub, "not-implemented"),
]


# --- Task 2: fetch_and_explain -----------------------------------------------------------------


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


EXPLAIN_CORRECT = [explain_with_stage, explain_with_two_tries, explain_with_asyncio_timeouts]


async def explain_without_timeout(url, patience):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            await response.read()
    return ANSWERED


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


async def explain_without_stage(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                await response.read()
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


async def explain_without_reading(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url):
                pass
    except TimeoutError:
        return TOO_SLOW
    return ANSWERED


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


async def explain_swallowing(url, patience):
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=patience)) as s:
            async with s.get(url) as response:
                await response.read()
    except TimeoutError:
        pass
    return ANSWERED


async def explain_swapped(url, patience):
    answer = await explain_with_stage(url, patience)
    return {TOO_SLOW: STALLED, STALLED: TOO_SLOW}.get(answer, answer)


async def explain_in_own_words(url, patience):
    answer = await explain_with_stage(url, patience)
    return "ok" if answer == ANSWERED else "timeout"


EXPLAIN_MISTAKES = [
    (explain_without_timeout, "no-timeout"),
    (explain_with_total, "wrong-field"),
    (explain_without_stage, "cannot-tell-apart"),
    (explain_without_reading, "body-not-read"),
    (explain_catching_everything, "catches-too-much"),
    (explain_catching_client_error_with_total, "timeout-escaped"),
    (explain_catching_connection_timeouts, "timeout-escaped"),
    (explain_catching_client_timeout, "except-clienttimeout"),
    (explain_swallowing, "swallowed-timeout"),
    (explain_swapped, "wrong-label"),
    (explain_in_own_words, "unknown-label"),
]


# --- Task 3: stream_lines ----------------------------------------------------------------------


async def stream_with_sock_read(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


async def stream_with_asyncio_timeout_per_line(url, max_silence, handle_line):
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


async def stream_splitting_chunks_itself(url, max_silence, handle_line):
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


STREAM_CORRECT = [
    stream_with_sock_read,
    stream_with_asyncio_timeout_per_line,
    stream_splitting_chunks_itself,
]


async def stream_with_total(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


async def stream_without_timeout(url, max_silence, handle_line):
    count = 0
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line.decode())
                count += 1
    return count


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


async def stream_reading_everything_first(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            lines = (await response.text()).splitlines()
    for line in lines:
        handle_line(line)
    return len(lines)


async def stream_handing_bytes(url, max_silence, handle_line):
    timeout = aiohttp.ClientTimeout(total=None, sock_read=max_silence)
    count = 0
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as response:
            async for line in response.content:
                handle_line(line)
                count += 1
    return count


async def stream_returning_nothing(url, max_silence, handle_line):
    await stream_with_sock_read(url, max_silence, handle_line)


async def stream_catching_client_timeout(url, max_silence, handle_line):
    try:
        return await stream_with_sock_read(url, max_silence, handle_line)
    except aiohttp.ClientTimeout:  # the seed's bug
        raise


STREAM_MISTAKES = [
    (stream_with_total, "wrong-field"),
    (stream_without_timeout, "no-timeout"),
    (stream_swallowing_the_stall, "swallowed-timeout"),
    (stream_reading_everything_first, "not-streamed"),
    (stream_handing_bytes, "not-text"),
    (stream_returning_nothing, "wrong-count"),
    (stream_catching_client_timeout, "except-clienttimeout"),
]


async def stub(*args):
    raise NotImplementedError("your code here")


# --- every check at once, then one test per verdict ----------------------------------------

TASKS = {
    "fetch_with_deadline": (check.fetch_with_deadline, DEADLINE_CORRECT, DEADLINE_MISTAKES),
    "fetch_and_explain": (check.fetch_and_explain, EXPLAIN_CORRECT, EXPLAIN_MISTAKES),
    "stream_lines": (check.stream_lines, STREAM_CORRECT, STREAM_MISTAKES),
}
CORRECT = [(task, answer) for task, (_, good, _) in TASKS.items() for answer in good]
MISTAKES = [(task, *case) for task, (_, _, bad) in TASKS.items() for case in bad]
STUBS = [(task, stub, "not-implemented") for task in TASKS]


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, object], tuple[Verdict, float]]:
    """Every (task, answer) diagnosed, several at a time; each with its wall time."""

    def timed(task: str, answer: object) -> tuple[Verdict, float]:
        started = time.perf_counter()
        verdict = TASKS[task][0].diagnose(answer)
        return verdict, time.perf_counter() - started

    cases = {(task, answer) for task, answer, *_ in [*CORRECT, *MISTAKES, *STUBS]}
    with ThreadPoolExecutor(PARALLEL_CHECKS) as pool:
        futures = {case: pool.submit(timed, *case) for case in cases}
        return {case: future.result() for case, future in futures.items()}


def _id(case: tuple) -> str:
    return f"{case[0]}-{case[1].__name__}"


@pytest.mark.parametrize("case", CORRECT, ids=_id)
def test_correct_alternatives_pass(verdicts, case):
    verdict, _ = verdicts[case]
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize("case", [*MISTAKES, *STUBS], ids=_id)
def test_each_mistake_gets_its_diagnosis(verdicts, case):
    task, answer, problem = case
    verdict, _ = verdicts[(task, answer)]
    assert verdict.problem == problem, verdict.render()
    assert verdict.message
    if problem != "not-implemented":
        assert verdict.hint


def test_a_request_without_timeout_is_stopped_by_the_check_itself(verdicts):
    verdict, seconds = verdicts[("fetch_with_deadline", deadline_none)]
    assert "the check stopped it itself" in verdict.message
    assert seconds < check.NEVER_SECONDS  # it did not wait for the server to answer


def test_the_sock_read_mistake_names_the_field(verdicts):
    verdict, _ = verdicts[("fetch_with_deadline", deadline_as_sock_read)]
    assert "sock_read" in verdict.message and "total" in verdict.hint


def test_an_escaped_total_timeout_is_named_with_its_class(verdicts):
    verdict, _ = verdicts[("fetch_and_explain", explain_catching_client_error_with_total)]
    assert verdict.message.startswith("TimeoutError escaped")
    assert "except aiohttp.ClientError" in verdict.hint


def test_success_messages_are_the_same_for_every_correct_answer(verdicts):
    for task, _ in TASKS.items():
        messages = {verdicts[case][0].message for case in CORRECT if case[0] == task}
        assert len(messages) == 1, messages
