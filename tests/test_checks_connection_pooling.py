"""Exercise 02's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. The answers marked "own" were written from the
exercise notebook alone, before the checks were rebuilt.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import defaultdict
from urllib.parse import urlsplit

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiohttp import web
from yarl import URL

from local_server.checks import client_sessions
from local_server.checks import connection_pooling as check

# --- Task 1: fetch_pooled ----------------------------------------------------------------


async def _json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        return await response.json()


@correct(check.fetch_pooled, "the connector's limits and gather")
async def pooled_connector(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@correct(check.fetch_pooled, "tasks and asyncio.wait")
async def pooled_tasks_and_wait(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.ensure_future(_json(session, url)) for url in urls]
        await asyncio.wait(tasks)
        return [task.result() for task in tasks]


@correct(check.fetch_pooled, "semaphores on a default connector, the per-host one taken first")
async def pooled_semaphores_host_first(urls, limit, limit_per_host):
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))

    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with per_host[URL(url).origin()], total:
                return await _json(session, url)

        return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_pooled, "own: semaphores, the total taken first (wastes slots, still bounded)")
async def own_pooled_semaphores_total_first(urls, limit, limit_per_host):
    total = asyncio.Semaphore(limit)
    per_host = {}
    async with aiohttp.ClientSession() as session:

        async def one(url):
            host = urlsplit(url).netloc
            sem = per_host.setdefault(host, asyncio.Semaphore(limit_per_host))
            async with total, sem:
                return await _json(session, url)

        return await asyncio.gather(*map(one, urls))


@correct(check.fetch_pooled, "own: connector limits, a TaskGroup")
async def own_pooled_taskgroup(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_json(session, url)) for url in urls]
    return [task.result() for task in tasks]


@correct(
    check.fetch_pooled,
    "the connector's total limit and per-host semaphores: aiohttp's connector may let one "
    "more through (aio-libs/aiohttp#4936), its bound all the same",
)
async def pooled_connector_total_semaphores_per_host(urls, limit, limit_per_host):
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url):
            async with per_host[(URL(url).host, URL(url).port)]:
                return await _json(session, url)

        return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_pooled, "the default connector", problem="no-bound")
async def pooled_default_connector(urls, limit, limit_per_host):
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "only limit", problem="no-per-host-bound")
async def pooled_total_only(urls, limit, limit_per_host):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit)) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "only limit_per_host", problem="no-total-bound")
async def pooled_per_host_only(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "own: a session (and a pool) per host", problem="no-total-bound")
async def own_pooled_session_per_host(urls, limit, limit_per_host):
    by_host = defaultdict(list)
    for url in urls:
        by_host[urlsplit(url).netloc].append(url)
    bodies = {}

    async def host_job(host_urls):
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(*(_json(session, url) for url in host_urls))
        bodies.update(zip(host_urls, results, strict=True))

    await asyncio.gather(*map(host_job, by_host.values()))
    return [bodies[url] for url in urls]


@wrong(check.fetch_pooled, "awaits the requests one by one", problem="sequential")
async def pooled_sequential(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await _json(session, url) for url in urls]


@wrong(check.fetch_pooled, "limit=limit_per_host: the total is never reached",
       problem="bound-never-reached")  # fmt: skip
async def pooled_limit_too_small(urls, limit, limit_per_host):
    return await pooled_connector(urls, limit_per_host, limit_per_host)


@wrong(check.fetch_pooled, "own: the two limits swapped", problem="bound-never-reached")
async def own_pooled_swapped(urls, limit, limit_per_host):
    return await pooled_connector(urls, limit_per_host, limit)


@wrong(check.fetch_pooled, "own: limit_per_host hard-coded to 2", problem="bound-never-reached")
async def own_pooled_per_host_hard_coded(urls, limit, limit_per_host):
    return await pooled_connector(urls, limit, 2)


@wrong(check.fetch_pooled, "own: the example's 3 and 2 hard-coded", problem="ignored-arguments")
async def own_pooled_hard_coded(urls, limit, limit_per_host):
    return await pooled_connector(urls, 3, 2)


@wrong(check.fetch_pooled, "force_close=True", problem="connections-not-reused")
async def pooled_force_close(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "bounded by semaphores, but a session per request",
       problem="connections-not-reused")  # fmt: skip
async def pooled_session_per_request(urls, limit, limit_per_host):
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))

    async def one(url):
        async with per_host[URL(url).origin()], total:
            async with aiohttp.ClientSession() as session:
                return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_pooled, "never closes the session", problem="session-left-open")
async def pooled_never_closed(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    session = aiohttp.ClientSession(connector=connector)
    return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "own: connector_owner=False, and the connector is never closed",
       problem="session-left-open")  # fmt: skip
async def own_pooled_connector_not_owned(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector, connector_owner=False) as session:
        return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_pooled, "own: per-host semaphores keyed by host name: both servers are one",
       problem="bound-never-reached")  # fmt: skip
async def own_pooled_semaphore_per_host_name(urls, limit, limit_per_host):
    total = asyncio.Semaphore(limit)
    per_host = defaultdict(lambda: asyncio.Semaphore(limit_per_host))
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with per_host[URL(url).host], total:
                return await _json(session, url)

        return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_pooled, "own: close() after gather, skipped when a request raises",
       problem="session-left-open-on-error")  # fmt: skip
async def own_pooled_close_on_success(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    session = aiohttp.ClientSession(connector=connector)
    bodies = await asyncio.gather(*(_json(session, url) for url in urls))
    await session.close()
    return bodies


@wrong(check.fetch_pooled, "own: return_exceptions=True", problem="error-swallowed")
async def own_pooled_return_exceptions(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(_json(session, u) for u in urls), return_exceptions=True)


@wrong(check.fetch_pooled, "results in completion order", problem="wrong-order")
async def pooled_as_completed(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        return [await done for done in asyncio.as_completed([_json(session, u) for u in urls])]


@wrong(check.fetch_pooled, "returns the responses", problem="returned-responses")
async def pooled_responses(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url):
            async with session.get(url) as response:
                await response.read()
                return response

        return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_pooled, "returns the text", problem="not-json")
async def pooled_text(urls, limit, limit_per_host):
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.text()

        return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_pooled, "returns a dict keyed by URL", problem="wrong-return-type")
async def pooled_dict(urls, limit, limit_per_host):
    return dict(zip(urls, await pooled_connector(urls, limit, limit_per_host), strict=True))


@wrong(check.fetch_pooled, "drops duplicate hosts' URLs: one per server", problem="wrong-count")
async def pooled_one_per_host(urls, limit, limit_per_host):
    firsts = list({urlsplit(url).netloc: url for url in urls}.values())
    return await pooled_connector(firsts, limit, limit_per_host)


@wrong(check.fetch_pooled, "the stub", problem="not-implemented")
async def pooled_stub(urls, limit, limit_per_host):
    raise NotImplementedError("your code here")


def test_fetch_pooled_names_what_the_servers_saw():
    verdict = check.fetch_pooled.diagnose(pooled_default_connector)
    seen = re.match(
        r"with limit=3 and limit_per_host=2, the 2 servers saw up to (\d+) requests at once "
        r"together and (\d+) on one server: neither limit held\.",
        verdict.message,
    )
    assert seen and int(seen[1]) > 3 and int(seen[2]) > 2, verdict.message
    assert "limit=100, limit_per_host=0" in verdict.message  # the connector, as evidence


def test_fetch_pooled_says_the_limits_were_swapped():
    verdict = check.fetch_pooled.diagnose(own_pooled_swapped)
    assert "other way round" in verdict.message


def test_the_gate_shows_a_clients_bound_whatever_the_timing():
    """A client bounded at N reaches N at the servers; one bounded at 1 is seen alone."""

    async def peak_of(bound: int) -> tuple[int, bool]:
        gate = client_sessions.Gate(random.Random(0), cap=None)

        async def handler(request):
            seen = client_sessions.seen_of(request, "A")
            try:
                await gate.enter(seen)
                await asyncio.sleep(random.random() / 100)  # uneven handler times
                return web.json_response({})
            finally:
                gate.leave(seen)

        app = web.Application()
        app.router.add_get("/", handler)
        async with client_sessions.serve_all([app]) as (url,):
            slots = asyncio.Semaphore(bound)
            async with aiohttp.ClientSession() as session:

                async def one():
                    async with slots:
                        await _json(session, url + "/")

                await asyncio.gather(*(one() for _ in range(3 * bound)))
            await gate.close()
        return gate.peak, gate.sequential

    assert asyncio.run(peak_of(5)) == (5, False)
    assert asyncio.run(peak_of(1)) == (1, True)


# --- Task 2: fetch_bounded ---------------------------------------------------------------


@correct(check.fetch_bounded, "one semaphore, gather")
async def bounded_semaphore(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit:
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_bounded, "max_in_flight workers taking URLs from a queue")
async def bounded_workers(session, urls, max_in_flight):
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


@correct(check.fetch_bounded, "acquire and release in try/finally")
async def bounded_acquire_release(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        await limit.acquire()
        try:
            return await _json(session, url)
        finally:
            limit.release()

    return list(await asyncio.gather(*(one(url) for url in urls)))


@correct(check.fetch_bounded, "own: batches of max_in_flight, one gather per batch")
async def own_bounded_batches(session, urls, max_in_flight):
    results = []
    for start in range(0, len(urls), max_in_flight):
        batch = urls[start : start + max_in_flight]
        results += await asyncio.gather(*(_json(session, url) for url in batch))
    return results


@correct(check.fetch_bounded, "own: a BoundedSemaphore and a TaskGroup")
async def own_bounded_taskgroup(session, urls, max_in_flight):
    slots = asyncio.BoundedSemaphore(max_in_flight)

    async def one(url):
        async with slots, session.get(url) as response:
            return await response.json()

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(url)) for url in urls]
    return [task.result() for task in tasks]


@wrong(check.fetch_bounded, "no bound at all", problem="no-bound")
async def bounded_nothing(session, urls, max_in_flight):
    return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_bounded, "a semaphore per task", problem="no-bound")
async def bounded_semaphore_per_task(session, urls, max_in_flight):
    async def one(url):
        async with asyncio.Semaphore(max_in_flight):
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_bounded, "own: the slot let go when the headers arrive, body read outside",
       problem="no-bound")  # fmt: skip
async def own_bounded_body_outside(session, urls, max_in_flight):
    slots = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with slots:
            response = await session.get(url)
        try:
            return await response.json()
        finally:
            response.release()

    return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_bounded, "own: Semaphore(max_in_flight + 1)", problem="no-bound")
async def own_bounded_plus_one(session, urls, max_in_flight):
    return await bounded_semaphore(session, urls, max_in_flight + 1)


@wrong(check.fetch_bounded, "own: Semaphore(4) hard-coded", problem="ignored-arguments")
async def own_bounded_hard_coded(session, urls, max_in_flight):
    return await bounded_semaphore(session, urls, 4)


@wrong(check.fetch_bounded, "awaits the requests one by one", problem="sequential")
async def bounded_sequential(session, urls, max_in_flight):
    return [await _json(session, url) for url in urls]


@wrong(check.fetch_bounded, "Semaphore(2): the bound is never reached",
       problem="bound-never-reached")  # fmt: skip
async def bounded_too_small(session, urls, max_in_flight):
    return await bounded_semaphore(session, urls, 2)


@wrong(check.fetch_bounded, "its own session with a pool of max_in_flight",
       problem="not-the-given-session")  # fmt: skip
async def bounded_own_session(session, urls, max_in_flight):
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as own:
        return await asyncio.gather(*(_json(own, url) for url in urls))


@wrong(check.fetch_bounded, "closes the given session", problem="closed-shared-session")
async def bounded_closes_the_session(session, urls, max_in_flight):
    async with session:
        return await bounded_semaphore(session, urls, max_in_flight)


@wrong(check.fetch_bounded, "own: sets the shared connector's limit",
       problem="connector-changed")  # fmt: skip
async def own_bounded_patches_limit(session, urls, max_in_flight):
    session.connector._limit = max_in_flight  # the mistake under test
    return await asyncio.gather(*(_json(session, url) for url in urls))


@wrong(check.fetch_bounded, "own: return_exceptions=True", problem="error-swallowed")
async def own_bounded_return_exceptions(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit:
            return await _json(session, url)

    return await asyncio.gather(*(one(url) for url in urls), return_exceptions=True)


@wrong(check.fetch_bounded, "results in completion order", problem="wrong-order")
async def bounded_as_completed(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit:
            return await _json(session, url)

    return [await done for done in asyncio.as_completed([one(url) for url in urls])]


@wrong(check.fetch_bounded, "returns the responses", problem="returned-responses")
async def bounded_responses(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit, session.get(url) as response:
            await response.read()
            return response

    return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_bounded, "returns the bodies' bytes", problem="not-json")
async def bounded_bytes(session, urls, max_in_flight):
    limit = asyncio.Semaphore(max_in_flight)

    async def one(url):
        async with limit, session.get(url) as response:
            return await response.read()

    return await asyncio.gather(*map(one, urls))


@wrong(check.fetch_bounded, "returns a generator", problem="wrong-return-type")
async def bounded_generator(session, urls, max_in_flight):
    bodies = await bounded_semaphore(session, urls, max_in_flight)
    return (body for body in bodies)


@wrong(check.fetch_bounded, "skips the last URL (range off by one)", problem="wrong-count")
async def bounded_skips_last(session, urls, max_in_flight):
    return await bounded_semaphore(session, urls[:-1], max_in_flight)


@wrong(check.fetch_bounded, "the stub", problem="not-implemented")
async def bounded_stub(session, urls, max_in_flight):
    raise NotImplementedError("your code here")


def test_fetch_bounded_names_the_count_the_server_saw():
    verdict = check.fetch_bounded.diagnose(bounded_nothing)
    shape = (
        r"with max_in_flight=4, the server saw (\d+) requests at once: nothing in your code "
        r"held the others back\."
    )
    seen = re.fullmatch(shape, verdict.message)
    assert seen and 4 < int(seen[1]) <= 10, verdict.message  # the pool's 10 at most
    assert "one made per task" in verdict.hint


def test_a_semaphore_let_go_early_is_named_from_where_the_tasks_waited():
    verdict = check.fetch_bounded.diagnose(own_bounded_body_outside)
    assert "max_in_flight=3" in verdict.message
    assert "waited on a semaphore" in verdict.message
    assert "`async with slots:`" in verdict.message


# --- Task 3: statuses --------------------------------------------------------------------


@correct(check.statuses, "async with, gather")
async def statuses_async_with(session, urls):
    async def status(url):
        async with session.get(url) as response:
            return response.status

    return await asyncio.gather(*(status(url) for url in urls))


@correct(check.statuses, "HEAD in a loop")
async def statuses_head_in_a_loop(session, urls):
    results = []
    for url in urls:
        async with session.head(url) as response:
            results.append(response.status)
    return results


@correct(check.statuses, "release() in a finally")
async def statuses_release_in_finally(session, urls):
    async def status(url):
        response = await session.get(url)
        try:
            return response.status
        finally:
            response.release()

    return await asyncio.gather(*(status(url) for url in urls))


@correct(check.statuses, "close() after reading the status")
async def statuses_close(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        results.append(response.status)
        response.close()
    return results


@correct(check.statuses, "own: HEAD requests, gathered")
async def own_statuses_head(session, urls):
    async def one(url):
        async with session.head(url) as response:
            return response.status

    return await asyncio.gather(*map(one, urls))


@correct(check.statuses, "own: reads one byte of each body, then leaves the block")
async def own_statuses_peek(session, urls):
    async def one(url):
        async with session.get(url) as response:
            await response.content.read(1)
            return response.status

    return await asyncio.gather(*map(one, urls))


@wrong(check.statuses, "never releases", problem="responses-unreleased")
async def statuses_never_released(session, urls):
    async def status(url):
        response = await session.get(url)
        return response.status

    return await asyncio.gather(*(status(url) for url in urls))


@wrong(check.statuses, "releases only the error responses", problem="responses-unreleased")
async def statuses_released_only_on_errors(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        if response.status != 200:
            response.release()
        results.append(response.status)
    return results


@wrong(check.statuses, "own: releases only the 200s (error pages are slow here)",
       problem="responses-unreleased")  # fmt: skip
async def own_statuses_release_only_ok(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        results.append(response.status)
        if response.ok:
            response.release()
    return results


@wrong(check.statuses, "own: `del response` (not a release)", problem="responses-unreleased")
async def own_statuses_del(session, urls):
    results = []
    for url in urls:
        response = await session.get(url)
        results.append(response.status)
        del response
    return results


@wrong(check.statuses, "own: keeps the last response open after returning",
       problem="responses-unreleased")  # fmt: skip
async def own_statuses_last_kept(session, urls):
    results = []
    for url in urls[:-1]:
        async with session.get(url) as response:
            results.append(response.status)
    last = await session.get(urls[-1])
    return [*results, last.status]


@wrong(check.statuses, "reads every body", problem="bodies-downloaded")
async def statuses_read_the_bodies(session, urls):
    async def status(url):
        async with session.get(url) as response:
            await response.read()
            return response.status

    return await asyncio.gather(*(status(url) for url in urls))


@wrong(check.statuses, "own: reads the 200 files to the end", problem="bodies-downloaded")
async def own_statuses_reads_files(session, urls):
    results = []
    for url in urls:
        async with session.get(url) as response:
            if response.status == 200:
                async for _ in response.content.iter_chunked(1 << 16):
                    pass
            results.append(response.status)
    return results


@wrong(check.statuses, "its own session", problem="not-the-given-session")
async def statuses_own_session(session, urls):
    async with aiohttp.ClientSession() as own:
        return await statuses_async_with(own, urls)


@wrong(check.statuses, "own: closes the given session", problem="closed-shared-session")
async def own_statuses_closes_session(session, urls):
    async with session:
        return await statuses_head_in_a_loop(session, urls)


@wrong(check.statuses, "raise_for_status=True, exceptions returned", problem="raised-for-status")
async def statuses_raise_for_status(session, urls):
    async def status(url):
        async with session.get(url, raise_for_status=True) as response:
            return response.status

    return await asyncio.gather(*(status(url) for url in urls), return_exceptions=True)


@wrong(check.statuses, "own: raise_for_status() lets a 404 escape", problem="raised-for-status")
async def own_statuses_raises(session, urls):
    async def one(url):
        async with session.get(url) as response:
            response.raise_for_status()
            return response.status

    return await asyncio.gather(*map(one, urls))


@wrong(check.statuses, "returns the responses", problem="returned-responses")
async def statuses_returns_responses(session, urls):
    async def response_of(url):
        async with session.get(url) as response:
            return response

    return await asyncio.gather(*(response_of(url) for url in urls))


@wrong(check.statuses, "own: returns reason phrases", problem="wrong-statuses")
async def own_statuses_reason(session, urls):
    async def one(url):
        async with session.get(url) as response:
            return response.reason

    return await asyncio.gather(*map(one, urls))


@wrong(check.statuses, "own: statuses in completion order", problem="wrong-statuses")
async def own_statuses_completion_order(session, urls):
    async def one(url):
        async with session.get(url) as response:
            return response.status

    return [await done for done in asyncio.as_completed([one(url) for url in urls])]


@wrong(check.statuses, "returns a dict of URL to status", problem="wrong-return-type")
async def statuses_dict(session, urls):
    return dict(zip(urls, await statuses_async_with(session, urls), strict=True))


@wrong(check.statuses, "the stub", problem="not-implemented")
async def statuses_stub(session, urls):
    raise NotImplementedError("your code here")


def test_statuses_says_the_pool_ran_dry():
    verdict = check.statuses.diagnose(statuses_never_released)
    assert verdict.problem == "responses-unreleased", verdict.render()
    assert "the pool's 2 connections were held by 2 responses" in verdict.message
    assert "async with" in verdict.hint


def test_statuses_names_the_error_pages_kept():
    verdict = check.statuses.diagnose(own_statuses_release_only_ok)
    assert "held by 2 responses (a 404, a 503)" in verdict.message


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""
