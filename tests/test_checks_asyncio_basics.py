"""Exercise 00's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import asyncio_basics as check

# --- Task 1: fetch_json ------------------------------------------------------------------


@correct(check.fetch_json, "nested async with blocks")
async def fetch_json_nested(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.json()


@correct(check.fetch_json, "explicit close in finally, response released by hand")
async def fetch_json_explicit_close(url):
    session = aiohttp.ClientSession()
    try:
        response = await session.get(url)
        data = await response.json()
        response.release()
        return data
    finally:
        await session.close()


@wrong(check.fetch_json, "returns response.json() without await", problem="missing-await")
async def fetch_json_missing_await(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.json()


@wrong(check.fetch_json, "returns the response object", problem="returned-response")
async def fetch_json_returns_response(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response


@wrong(check.fetch_json, "returns the text", problem="returned-text")
async def fetch_json_returns_text(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_json, "drops the query string from the URL", problem="wrong-data")
async def fetch_json_wrong_url(url):
    return await fetch_json_nested(url.split("?")[0])


@wrong(check.fetch_json, "never closes its session", problem="session-left-open")
async def fetch_json_leaks_session(url):
    session = aiohttp.ClientSession()
    async with session.get(url) as response:
        return await response.json()


@wrong(check.fetch_json, "closes the session only on success", problem="session-left-open-on-error")
async def fetch_json_closes_on_success(url):
    session = aiohttp.ClientSession()
    async with session.get(url) as response:
        data = await response.json()
    await session.close()
    return data


@wrong(check.fetch_json, "returns None when the request fails", problem="error-swallowed")
async def fetch_json_swallows_errors(url):
    try:
        return await fetch_json_nested(url)
    except aiohttp.ClientError:
        return None


@wrong(check.fetch_json, "reads the body after the session closed", problem="read-after-close")
async def fetch_json_reads_after_close(url):
    async with aiohttp.ClientSession() as session:
        response = await session.get(url)
    return await response.json()


@wrong(check.fetch_json, "a plain def", problem="not-async")
def fetch_json_not_async(url):
    return {}


@wrong(check.fetch_json, "asyncio.run() inside the running loop", problem="asyncio-run-in-loop")
async def fetch_json_asyncio_run(url):
    return asyncio.run(fetch_json_nested(url))


@wrong(check.fetch_json, "blocks the loop with time.sleep", problem="blocked-loop")
async def fetch_json_time_sleep(url):
    time.sleep(0.02)
    return await fetch_json_nested(url)


@wrong(check.fetch_json, "the stub", problem="not-implemented")
async def fetch_json_stub(url):
    raise NotImplementedError("your code here")


# --- Task 2: fetch_both ------------------------------------------------------------------


@correct(check.fetch_both, "gather, made a tuple")
async def fetch_both_gather(url_a, url_b):
    return tuple(await asyncio.gather(fetch_json_nested(url_a), fetch_json_nested(url_b)))


@correct(check.fetch_both, "two tasks, awaited in order")
async def fetch_both_tasks(url_a, url_b):
    task_a = asyncio.create_task(fetch_json_nested(url_a))
    task_b = asyncio.create_task(fetch_json_nested(url_b))
    return await task_a, await task_b


@correct(check.fetch_both, "one shared session, gather's list returned as it is")
async def fetch_both_shared_session(url_a, url_b):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(one(url_a), one(url_b))


@wrong(check.fetch_both, "awaits one, then the other", problem="sequential")
async def fetch_both_sequential(url_a, url_b):
    return await fetch_json_nested(url_a), await fetch_json_nested(url_b)


@wrong(check.fetch_both, "returns the results swapped", problem="wrong-order")
async def fetch_both_swapped(url_a, url_b):
    data_a, data_b = await asyncio.gather(fetch_json_nested(url_a), fetch_json_nested(url_b))
    return data_b, data_a


@wrong(check.fetch_both, "results in the order they finish", problem="wrong-order")
async def fetch_both_as_completed(url_a, url_b):
    jobs = [fetch_json_nested(url_a), fetch_json_nested(url_b)]
    return [await job for job in asyncio.as_completed(jobs)]


@wrong(check.fetch_both, "returns only the first result", problem="wrong-shape")
async def fetch_both_only_one(url_a, url_b):
    return await fetch_json_nested(url_a)


@wrong(check.fetch_both, "returns the coroutines", problem="missing-await")
async def fetch_both_coroutines(url_a, url_b):
    return fetch_json_nested(url_a), fetch_json_nested(url_b)


@wrong(check.fetch_both, "fetches url_a twice", problem="wrong-data")
async def fetch_both_url_a_twice(url_a, url_b):
    return await asyncio.gather(fetch_json_nested(url_a), fetch_json_nested(url_a))


@wrong(check.fetch_both, "returns the responses", problem="returned-response")
async def fetch_both_responses(url_a, url_b):
    return await asyncio.gather(
        fetch_json_returns_response(url_a), fetch_json_returns_response(url_b)
    )


@wrong(check.fetch_both, "returns the texts", problem="returned-text")
async def fetch_both_texts(url_a, url_b):
    return await asyncio.gather(fetch_json_returns_text(url_a), fetch_json_returns_text(url_b))


# --- Task 3: pause -----------------------------------------------------------------------


@correct(check.pause, "asyncio.sleep")
async def pause_sleep(seconds):
    await asyncio.sleep(seconds)


@correct(check.pause, "ten steps")
async def pause_in_steps(seconds):
    for _ in range(10):
        await asyncio.sleep(seconds / 10)


@correct(check.pause, "a timeout on an event that never fires")
async def pause_with_wait_for(seconds):
    try:
        await asyncio.wait_for(asyncio.Event().wait(), seconds)
    except TimeoutError:
        pass


@wrong(check.pause, "time.sleep", problem="blocked-loop")
async def pause_blocking(seconds):
    time.sleep(seconds)


@wrong(check.pause, "busy-waits on the clock", problem="blocked-loop")
async def pause_busy_wait(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@wrong(check.pause, "asyncio.sleep without await", problem="missing-await")
async def pause_forgets_await(seconds):
    asyncio.sleep(seconds)


@wrong(check.pause, "an executor job started and not awaited", problem="did-not-wait")
async def pause_blocking_in_a_thread_wrongly(seconds):
    asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


@wrong(check.pause, "milliseconds, not seconds", problem="wrong-duration")
async def pause_milliseconds(seconds):
    await asyncio.sleep(seconds / 1000)


@wrong(check.pause, "always 0.2 s", problem="wrong-duration")
async def pause_constant(seconds):
    await asyncio.sleep(0.2)


@wrong(check.pause, "twice as long", problem="wrong-duration")
async def pause_twice(seconds):
    await asyncio.sleep(seconds)
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.fetch_both.diagnose(fetch_both_swapped)
    assert first == check.fetch_both.diagnose(fetch_both_swapped)
    assert "url_a answered last" in first.message
