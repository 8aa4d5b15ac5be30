"""Learner answers to exercise 02 (connection pooling), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import aiohttp
from yarl import URL

from adversarial import correct, wrong
from local_server.checks import connection_pooling as check


async def _json(session, url):
    async with session.get(url) as response:
        return await response.json()


async def _gather_json(session, urls):
    return list(await asyncio.gather(*(_json(session, url) for url in urls)))


# --- Task 1 · fetch_pooled -----------------------------------------------------------------


@correct(check.fetch_pooled, "TCPConnector limits and a TaskGroup")
async def fetch_pooled_taskgroup(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_json(session, url)) for url in urls]
    return [task.result() for task in tasks]


@correct(check.fetch_pooled, "connector limits, session closed in try/finally")
async def fetch_pooled_try_finally(urls, limit, limit_per_host):
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    )
    try:
        return await _gather_json(session, urls)
    finally:
        await session.close()


@correct(check.fetch_pooled, "semaphores: one per host (taken first), then one for the total")
async def fetch_pooled_semaphores(urls, limit, limit_per_host):
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))

    async with aiohttp.ClientSession() as session:

        async def one(url):
            origin = URL(url).origin()
            async with per_host[origin], total:
                return await _json(session, url)

        return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_pooled, "connector limits plus a job semaphore of the same total")
async def fetch_pooled_connector_and_semaphore(urls, limit, limit_per_host):
    slots = asyncio.Semaphore(limit)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url):
            async with slots:
                return await _json(session, url)

        return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_pooled, "sets only limit, forgets limit_per_host",
       rule="never more than `limit_per_host` to any one host",
       problem="no-per-host-bound")
async def fetch_pooled_only_limit(urls, limit, limit_per_host):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit)) as session:
        return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "sets only limit_per_host, forgets the total limit",
       rule="never more than `limit` requests are in flight at once in total",
       problem="no-total-bound")
async def fetch_pooled_only_per_host(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "hard-codes the example's limit=3, limit_per_host=2",
       rule="never more than `limit` ... never more than `limit_per_host`",
       problem="ignored-arguments")
async def fetch_pooled_hard_coded(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=3, limit_per_host=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "swaps the two arguments: limit=limit_per_host, limit_per_host=limit",
       rule="both bounds are **used**",
       problem="bound-never-reached")
async def fetch_pooled_swapped(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit_per_host, limit_per_host=limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "right connector, but requests awaited one by one",
       rule="the requests run concurrently, not one after another",
       problem="sequential")
async def fetch_pooled_sequential(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await _json(session, url) for url in urls]


@wrong(check.fetch_pooled, "force_close=True: every request opens a new connection",
       rule="connections are reused",
       problem="connections-not-reused")
async def fetch_pooled_force_close(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "the total semaphore is created inside each task: bounds nothing",
       rule="never more than `limit` requests are in flight at once in total",
       problem="no-total-bound")
async def fetch_pooled_semaphore_per_task(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url):
            async with asyncio.Semaphore(limit):
                return await _json(session, url)

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_pooled, "collects the bodies in completion order",
       rule="in the order of `urls`",
       problem="wrong-order")
async def fetch_pooled_completion_order(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await done for done in asyncio.as_completed([_json(session, u) for u in urls])]


@wrong(check.fetch_pooled, "never closes the session (nor its connector)",
       rule="the session is closed before the function returns",
       problem="session-left-open")
async def fetch_pooled_not_closed(urls, limit, limit_per_host):
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    )
    return await _gather_json(session, urls)


@wrong(check.fetch_pooled, "returns the bodies as text instead of parsed JSON",
       rule="returns the parsed JSON bodies (`await response.json()`)",
       problem="not-json")
async def fetch_pooled_text(urls, limit, limit_per_host):
    async def one(session, url):
        async with session.get(url) as response:
            return await response.text()

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(one(session, url) for url in urls))


# --- Task 2 · fetch_bounded ----------------------------------------------------------------


@correct(check.fetch_bounded, "semaphore and TaskGroup")
async def fetch_bounded_taskgroup(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with slots:
            return await _json(session, url)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(url)) for url in urls]
    return [task.result() for task in tasks]


@correct(check.fetch_bounded, "max_in_flight workers taking indexes from a queue")
async def fetch_bounded_workers(session, urls, max_in_flight):
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(urls)):
        queue.put_nowait(index)
    results: list = [None] * len(urls)

    async def worker():
        while not queue.empty():
            index = queue.get_nowait()
            results[index] = await _json(session, urls[index])

    await asyncio.gather(*(worker() for _ in range(max_in_flight)))
    return results


@correct(check.fetch_bounded, "BoundedSemaphore with explicit acquire/release in try/finally")
async def fetch_bounded_acquire_release(session, urls, max_in_flight):
    slots = asyncio.BoundedSemaphore(max_in_flight)

    async def one(url):
        await slots.acquire()
        try:
            async with session.get(url) as response:
                return await response.json()
        finally:
            slots.release()

    return await asyncio.gather(*[one(url) for url in urls])


@wrong(check.fetch_bounded, "creates the semaphore inside each task: nothing is bounded",
       rule="never has more than `max_in_flight` requests in flight",
       problem="no-bound")
async def fetch_bounded_semaphore_per_task(session, urls, max_in_flight):
    async def one(url):
        async with asyncio.Semaphore(max_in_flight):
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "hard-codes Semaphore(4), the example's value",
       rule="never has more than `max_in_flight` requests in flight, and does reach that many",
       problem="ignored-arguments")
async def fetch_bounded_hard_coded(session, urls, max_in_flight):
    slots = asyncio.Semaphore(4)

    async def one(url):
        async with slots:
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "no bound at all: gathers every request",
       rule="never has more than `max_in_flight` requests in flight",
       problem="no-bound")
async def fetch_bounded_unbounded(session, urls, max_in_flight):
    return await _gather_json(session, urls)


@wrong(check.fetch_bounded, "uses the given session in async with: closes the caller's session",
       rule="does not close it (the caller owns it)",
       problem="closed-shared-session")
async def fetch_bounded_closes_session(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with slots:
            return await _json(session, url)

    async with session:
        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "opens its own session with TCPConnector(limit=max_in_flight)",
       rule="sends every request through the `session` it is given",
       problem="not-the-given-session")
async def fetch_bounded_own_session(session, urls, max_in_flight):
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as own:
        return await _gather_json(own, urls)


@wrong(check.fetch_bounded, "off by one: Semaphore(max_in_flight - 1) never reaches the bound",
       rule="and does reach that many",
       problem="bound-never-reached")
async def fetch_bounded_off_by_one(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight - 1)

    async def one(url):
        async with slots:
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "holds the semaphore only while creating the request, not sending it",
       rule="never has more than `max_in_flight` requests in flight",
       problem="no-bound")
async def fetch_bounded_semaphore_around_call(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with slots:
            request = session.get(url)
        async with request as response:
            return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "changes the shared connector's limit instead of using a semaphore",
       rule="You cannot change the session's connector",
       problem="connector-changed")
async def fetch_bounded_patches_connector(session, urls, max_in_flight):
    session.connector._limit = max_in_flight
    return await _gather_json(session, urls)


@wrong(check.fetch_bounded, "appends results in completion order",
       rule="returns the parsed JSON bodies in the order of `urls`",
       problem="wrong-order")
async def fetch_bounded_completion_order(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with slots:
            return await _json(session, url)

    return [await done for done in asyncio.as_completed([one(url) for url in urls])]


# --- Task 3 · statuses ---------------------------------------------------------------------


@correct(check.statuses, "HEAD requests: headers only, nothing to release but the block")
async def statuses_head(session, urls):
    codes = []
    for url in urls:
        async with session.head(url) as response:
            codes.append(response.status)
    return codes


@correct(check.statuses, "concurrent gets with async with, via gather")
async def statuses_gather(session, urls):
    async def one(url):
        async with session.get(url) as response:
            return response.status

    return list(await asyncio.gather(*(one(url) for url in urls)))


@correct(check.statuses, "plain await, then release() in a finally")
async def statuses_release_in_finally(session, urls):
    codes = []
    for url in urls:
        response = await session.get(url)
        try:
            codes.append(response.status)
        finally:
            response.release()
    return codes


@correct(check.statuses, "raise_for_status, and the status taken from the error")
async def statuses_from_error(session, urls):
    codes = []
    for url in urls:
        try:
            async with session.get(url) as response:
                response.raise_for_status()
                codes.append(response.status)
        except aiohttp.ClientResponseError as error:
            codes.append(error.status)
    return codes


@wrong(check.statuses, "keeps every response unreleased: the pool of 2 runs dry",
       rule="any response that keeps its connection ... the next request waits forever",
       problem="responses-unreleased")
async def statuses_unreleased(session, urls):
    codes = []
    for url in urls:
        response = await session.get(url)
        codes.append(response.status)
    return codes


@wrong(check.statuses, "raise_for_status() lets a 404 escape as an exception",
       rule="some answer 404 or 503, which are answers too (do not raise for them)",
       problem="raised-for-status")
async def statuses_raise_for_status(session, urls):
    codes = []
    for url in urls:
        async with session.get(url) as response:
            response.raise_for_status()
            codes.append(response.status)
    return codes


@wrong(check.statuses, "reads every body to free the connection: downloads the 16 MiB files",
       rule="without downloading the bodies",
       problem="bodies-downloaded")
async def statuses_reads_bodies(session, urls):
    codes = []
    for url in urls:
        response = await session.get(url)
        await response.read()
        codes.append(response.status)
    return codes


@wrong(check.statuses, "statuses in completion order",
       rule="returns the status code of each URL, in order",
       problem="wrong-statuses")
async def statuses_completion_order(session, urls):
    async def one(url):
        async with session.get(url) as response:
            return response.status

    return [await done for done in asyncio.as_completed([one(url) for url in urls])]


@wrong(check.statuses, "releases only the 200 responses, keeps the error ones",
       rule="any response that keeps its connection shows up at once",
       problem="responses-unreleased")
async def statuses_release_only_ok(session, urls):
    codes = []
    for url in urls:
        response = await session.get(url)
        codes.append(response.status)
        if response.status == 200:
            response.release()
    return codes


@wrong(check.statuses, "ignores the given session and opens a session per URL",
       rule="The session you are given",
       problem="not-the-given-session")
async def statuses_own_sessions(session, urls):
    codes = []
    for url in urls:
        async with aiohttp.ClientSession() as own:
            async with own.get(url) as response:
                codes.append(response.status)
    return codes


@wrong(check.statuses, "session.get with raise_for_status=True: 404 and 503 raise",
       rule="some answer 404 or 503, which are answers too (do not raise for them)",
       problem="raised-for-status")
async def statuses_raise_per_request(session, urls):
    async def one(url):
        async with session.get(url, raise_for_status=True) as response:
            return response.status

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.statuses, "returns response.ok booleans instead of the codes",
       rule="returns the status code of each URL",
       problem="wrong-statuses")
async def statuses_ok_flags(session, urls):
    codes = []
    for url in urls:
        async with session.get(url) as response:
            codes.append(response.ok)
    return codes
