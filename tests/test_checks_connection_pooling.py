"""Exercise 02's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import aiohttp
import pytest
from yarl import URL

from local_server import start_server
from local_server.checks import connection_pooling as check

# --- Task 1: fetch_pooled ----------------------------------------------------------------


async def _json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        return await response.json()


async def pooled_connector(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_tasks_and_wait(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.ensure_future(_json(session, url)) for url in urls]
        await asyncio.wait(tasks)
        return [task.result() for task in tasks]


async def pooled_semaphores_host_first(urls, limit, limit_per_host):
    """Correct too: semaphores on a default connector, the per-host one taken first."""
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))

    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with per_host[URL(url).origin()], total:
                return await _json(session, url)

        return await asyncio.gather(*(one(url) for url in urls))


@pytest.mark.parametrize(
    "answer", [pooled_connector, pooled_tasks_and_wait, pooled_semaphores_host_first]
)
def test_fetch_pooled_accepts_correct_alternatives(answer):
    verdict = check.fetch_pooled.diagnose(answer)
    assert verdict.passed, verdict.render()


async def pooled_default_connector(urls, limit, limit_per_host):
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_total_only(urls, limit, limit_per_host):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit)) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_per_host_only(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_sequential(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await _json(session, url) for url in urls]


async def pooled_limit_too_small(urls, limit, limit_per_host):
    return await pooled_connector(urls, limit_per_host, limit_per_host)


async def pooled_force_close(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_session_per_request(urls, limit, limit_per_host):
    """Bounded by semaphores, but every request opens (and throws away) its own pool."""
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))

    async def one(url):
        async with per_host[URL(url).origin()], total:
            async with aiohttp.ClientSession() as session:
                return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


async def pooled_never_closed(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    session = aiohttp.ClientSession(connector=connector)
    return await asyncio.gather(*(_json(session, url) for url in urls))


async def pooled_as_completed(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await done for done in asyncio.as_completed([_json(session, u) for u in urls])]


async def pooled_stub(urls, limit, limit_per_host):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (pooled_default_connector, "no-bound"),
        (pooled_total_only, "no-per-host-bound"),
        (pooled_per_host_only, "no-total-bound"),
        (pooled_sequential, "sequential"),
        (pooled_limit_too_small, "bound-never-reached"),
        (pooled_force_close, "connections-not-reused"),
        (pooled_session_per_request, "connections-not-reused"),
        (pooled_never_closed, "session-left-open"),
        (pooled_as_completed, "wrong-order"),
        (pooled_stub, "not-implemented"),
    ],
)
def test_fetch_pooled_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_pooled.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
    assert verdict.message


def test_fetch_pooled_names_what_the_servers_saw():
    verdict = check.fetch_pooled.diagnose(pooled_default_connector)
    seen = re.match(r"the two servers saw up to (\d+) requests at once together", verdict.message)
    assert seen and int(seen[1]) > 3, verdict.message  # 12 unless the machine is very busy
    assert verdict.message.endswith("the task allows 3 in total and 2 per host.")


def test_max_in_flight_together_merges_the_timelines():
    with start_server() as first, start_server() as second:
        first.reset_stats()
        second.reset_stats()

        async def both() -> None:
            async with aiohttp.ClientSession() as session:
                await asyncio.gather(
                    *(_json(session, f"{first.url}/delay/0.3") for _ in range(2)),
                    _json(session, f"{second.url}/delay/0.3"),
                )
                await _json(session, f"{second.url}/get")

        asyncio.run(both())
        snapshots = [first.stats(), second.stats()]
    assert check.max_in_flight_together(snapshots) == 3
    assert [snapshot.max_in_flight for snapshot in snapshots] == [2, 1]


# --- Task 2: fetch_bounded ---------------------------------------------------------------


async def bounded_semaphore(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit:
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


async def bounded_workers(session, urls, max_in_flight):
    """Correct too: a fixed number of workers taking URLs from a queue."""
    queue = asyncio.Queue()
    for index, url in enumerate(urls):
        queue.put_nowait((index, url))
    results = [None] * len(urls)

    async def worker():
        while not queue.empty():
            index, url = queue.get_nowait()
            results[index] = await _json(session, url)

    await asyncio.gather(*(worker() for _ in range(max_in_flight)))
    return results


async def bounded_acquire_release(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        await limit.acquire()
        try:
            return await _json(session, url)
        finally:
            limit.release()

    return list(await asyncio.gather(*(one(url) for url in urls)))


@pytest.mark.parametrize("answer", [bounded_semaphore, bounded_workers, bounded_acquire_release])
def test_fetch_bounded_accepts_correct_alternatives(answer):
    verdict = check.fetch_bounded.diagnose(answer)
    assert verdict.passed, verdict.render()


async def bounded_nothing(session, urls, max_in_flight):
    return await asyncio.gather(*(_json(session, url) for url in urls))


async def bounded_semaphore_per_task(session, urls, max_in_flight):
    async def one(url):
        async with asyncio.Semaphore(max_in_flight):
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


async def bounded_sequential(session, urls, max_in_flight):
    return [await _json(session, url) for url in urls]


async def bounded_too_small(session, urls, max_in_flight):
    return await bounded_semaphore(session, urls, 2)


async def bounded_own_session(session, urls, max_in_flight):
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as own:
        return await asyncio.gather(*(_json(own, url) for url in urls))


async def bounded_closes_the_session(session, urls, max_in_flight):
    async with session:
        return await bounded_semaphore(session, urls, max_in_flight)


async def bounded_stub(session, urls, max_in_flight):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (bounded_nothing, "no-bound"),
        (bounded_semaphore_per_task, "no-bound"),
        (bounded_sequential, "sequential"),
        (bounded_too_small, "bound-never-reached"),
        (bounded_own_session, "not-the-given-session"),
        (bounded_closes_the_session, "closed-shared-session"),
        (bounded_stub, "not-implemented"),
    ],
)
def test_fetch_bounded_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_bounded.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_fetch_bounded_names_the_count_the_server_saw():
    verdict = check.fetch_bounded.diagnose(bounded_nothing)
    shape = r"the server saw (\d+) requests at once; the task allows 4\."
    seen = re.fullmatch(shape, verdict.message)
    assert seen and 4 < int(seen[1]) <= 10, verdict.message  # the pool's 10 at most
    assert "ConnectionTimeoutError" in verdict.hint


# --- Task 3: statuses --------------------------------------------------------------------


async def statuses_async_with(session, urls):
    async def status(url):
        async with session.get(url) as response:
            return response.status

    return await asyncio.gather(*(status(url) for url in urls))


async def statuses_head_in_a_loop(session, urls):
    results = []
    for url in urls:
        async with session.head(url) as response:
            results.append(response.status)
    return results


async def statuses_release_in_finally(session, urls):
    async def status(url):
        response = await session.get(url)
        try:
            return response.status
        finally:
            response.release()

    return await asyncio.gather(*(status(url) for url in urls))


async def statuses_close(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        results.append(response.status)
        response.close()
    return results


@pytest.mark.parametrize(
    "answer",
    [statuses_async_with, statuses_head_in_a_loop, statuses_release_in_finally, statuses_close],
)
def test_statuses_accepts_correct_alternatives(answer):
    verdict = check.statuses.diagnose(answer)
    assert verdict.passed, verdict.render()


async def statuses_never_released(session, urls):
    async def status(url):
        response = await session.get(url)
        return response.status

    return await asyncio.gather(*(status(url) for url in urls))


async def statuses_released_only_on_errors(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        if response.status != 200:
            response.release()
        results.append(response.status)
    return results


async def statuses_read_the_bodies(session, urls):
    async def status(url):
        async with session.get(url) as response:
            await response.read()
            return response.status

    return await asyncio.gather(*(status(url) for url in urls))


async def statuses_own_session(session, urls):
    async with aiohttp.ClientSession() as own:
        return await statuses_async_with(own, urls)


async def statuses_raise_for_status(session, urls):
    async def status(url):
        async with session.get(url, raise_for_status=True) as response:
            return response.status

    return await asyncio.gather(*(status(url) for url in urls), return_exceptions=True)


async def statuses_returns_responses(session, urls):
    async def response_of(url):
        async with session.get(url) as response:
            return response

    return await asyncio.gather(*(response_of(url) for url in urls))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (statuses_released_only_on_errors, "responses-unreleased"),
        (statuses_read_the_bodies, "bodies-downloaded"),
        (statuses_own_session, "not-the-given-session"),
        (statuses_raise_for_status, "wrong-statuses"),
        (statuses_returns_responses, "returned-responses"),
    ],
)
def test_statuses_diagnoses_each_mistake(answer, problem):
    verdict = check.statuses.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_statuses_says_the_pool_ran_dry():
    verdict = check.statuses.diagnose(statuses_never_released)
    assert verdict.problem == "responses-unreleased", verdict.render()
    assert verdict.message.startswith("after 2 requests the pool's 2 connections")
    assert "async with" in verdict.hint


def test_statuses_stub_is_not_implemented():
    async def stub(session, urls):
        raise NotImplementedError("your code here")

    assert check.statuses.diagnose(stub).problem == "not-implemented"
