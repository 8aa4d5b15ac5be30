"""Exercise 00's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from local_server.checks import asyncio_basics as check

# --- Task 1: fetch_json ------------------------------------------------------------------


async def fetch_json_nested(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.json()


async def fetch_json_explicit_close(url):
    session = aiohttp.ClientSession()
    try:
        response = await session.get(url)
        data = await response.json()
        response.release()
        return data
    finally:
        await session.close()


@pytest.mark.parametrize("answer", [fetch_json_nested, fetch_json_explicit_close])
def test_fetch_json_accepts_correct_alternatives(answer):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.passed, verdict.render()


async def fetch_json_missing_await(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.json()


async def fetch_json_returns_response(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response


async def fetch_json_returns_text(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


async def fetch_json_wrong_url(url):
    return await fetch_json_nested(url.split("?")[0])


async def fetch_json_leaks_session(url):
    session = aiohttp.ClientSession()
    async with session.get(url) as response:
        return await response.json()


def fetch_json_not_async(url):
    return {}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (fetch_json_missing_await, "missing-await"),
        (fetch_json_returns_response, "returned-response"),
        (fetch_json_returns_text, "returned-text"),
        (fetch_json_wrong_url, "wrong-data"),
        (fetch_json_leaks_session, "session-left-open"),
        (fetch_json_not_async, "not-async"),
    ],
)
def test_fetch_json_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 2: fetch_both ------------------------------------------------------------------


async def fetch_both_gather(url_a, url_b):
    return tuple(await asyncio.gather(fetch_json_nested(url_a), fetch_json_nested(url_b)))


async def fetch_both_tasks(url_a, url_b):
    task_a = asyncio.create_task(fetch_json_nested(url_a))
    task_b = asyncio.create_task(fetch_json_nested(url_b))
    return await task_a, await task_b


async def fetch_both_shared_session(url_a, url_b):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(one(url_a), one(url_b))


@pytest.mark.parametrize(
    "answer", [fetch_both_gather, fetch_both_tasks, fetch_both_shared_session]
)
def test_fetch_both_accepts_correct_alternatives(answer):
    verdict = check.fetch_both.diagnose(answer)
    assert verdict.passed, verdict.render()


async def fetch_both_sequential(url_a, url_b):
    return await fetch_json_nested(url_a), await fetch_json_nested(url_b)


async def fetch_both_swapped(url_a, url_b):
    data_a, data_b = await asyncio.gather(fetch_json_nested(url_a), fetch_json_nested(url_b))
    return data_b, data_a


async def fetch_both_only_one(url_a, url_b):
    return await fetch_json_nested(url_a)


async def fetch_both_coroutines(url_a, url_b):
    return fetch_json_nested(url_a), fetch_json_nested(url_b)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (fetch_both_sequential, "sequential"),
        (fetch_both_swapped, "wrong-order"),
        (fetch_both_only_one, "wrong-shape"),
        (fetch_both_coroutines, "missing-await"),
    ],
)
def test_fetch_both_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_both.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: pause -----------------------------------------------------------------------


async def pause_sleep(seconds):
    await asyncio.sleep(seconds)


async def pause_in_steps(seconds):
    for _ in range(10):
        await asyncio.sleep(seconds / 10)


async def pause_with_wait_for(seconds):
    try:
        await asyncio.wait_for(asyncio.Event().wait(), seconds)
    except TimeoutError:
        pass


@pytest.mark.parametrize("answer", [pause_sleep, pause_in_steps, pause_with_wait_for])
def test_pause_accepts_correct_alternatives(answer):
    verdict = check.pause.diagnose(answer)
    assert verdict.passed, verdict.render()


async def pause_blocking(seconds):
    time.sleep(seconds)


async def pause_forgets_await(seconds):
    coroutine = asyncio.sleep(seconds)
    coroutine.close()  # what a missing await amounts to, without the warning in the test log


async def pause_blocking_in_a_thread_wrongly(seconds):
    asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (pause_blocking, "blocked-loop"),
        (pause_forgets_await, "did-not-wait"),
        (pause_blocking_in_a_thread_wrongly, "did-not-wait"),
    ],
)
def test_pause_diagnoses_each_mistake(answer, problem):
    verdict = check.pause.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_stubs_say_not_implemented():
    async def stub(*args):
        raise NotImplementedError("your code here")

    for task in (check.fetch_json, check.fetch_both, check.pause):
        assert task.diagnose(stub).problem == "not-implemented"
