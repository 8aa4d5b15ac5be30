"""Learner answers to exercise 00 (asyncio in Jupyter), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request

import aiohttp

from adversarial import correct, wrong
from local_server.checks import asyncio_basics as check


async def _get_json(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.json()


# --- Task 1 · fetch_json -------------------------------------------------------------------


@correct(check.fetch_json, "session closed in try/finally instead of async with")
async def fetch_json_try_finally(url):
    session = aiohttp.ClientSession()
    try:
        async with session.get(url) as response:
            return await response.json()
    finally:
        await session.close()


@correct(check.fetch_json, "reads the text and parses it with json.loads")
async def fetch_json_text_then_loads(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            response.raise_for_status()
            return json.loads(await response.text())


@correct(check.fetch_json, "session.request('GET', ...) and a raising session")
async def fetch_json_request_method(url):
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with session.request("GET", url) as response:
            data = await response.json()
    return data


@correct(check.fetch_json, "awaits the response without async with, then reads it fully")
async def fetch_json_plain_await(url):
    async with aiohttp.ClientSession() as session:
        response = await session.get(url)
        try:
            return await response.json()
        finally:
            response.release()


@wrong(check.fetch_json, "forgot to await response.json(): returns a coroutine",
       rule="returns the response body parsed as JSON (a `dict`)",
       problem="missing-await")
async def fetch_json_forgot_await(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.json()


@wrong(check.fetch_json, "returns the body as text, not parsed",
       rule="returns the response body parsed as JSON (a `dict`)",
       problem="returned-text")
async def fetch_json_returns_text(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return await response.text()


@wrong(check.fetch_json, "creates the session and never closes it",
       rule="Open a session with `async with` so it is closed when you are done",
       problem="session-left-open")
async def fetch_json_never_closed(url):
    session = aiohttp.ClientSession()
    async with session.get(url) as response:
        return await response.json()


@wrong(check.fetch_json, "closes the session only after a successful read (no finally)",
       rule="Open a session with `async with` so it is closed when you are done",
       problem="session-left-open-on-error")
async def fetch_json_close_on_success_only(url):
    session = aiohttp.ClientSession()
    response = await session.get(url)
    data = await response.json()
    await session.close()
    return data


@wrong(check.fetch_json, "script habit: asyncio.run() inside code that already runs in a loop",
       rule="lesson 00: in a notebook, asyncio.run(main()) becomes await main()")
async def fetch_json_asyncio_run(url):
    return asyncio.run(_get_json(url))


@wrong(check.fetch_json, "blocking urllib instead of aiohttp, holding the event loop",
       rule="a GET request ... Open a session with `async with`",
       problem="blocked-loop")
async def fetch_json_urllib(url):
    with urllib.request.urlopen(url) as raw:
        return json.load(raw)


@wrong(check.fetch_json, "sends a POST instead of a GET",
       rule="a GET request to `url`",
       problem="wrong-data")
async def fetch_json_post(url):
    async with aiohttp.ClientSession() as session:
        async with session.post(url) as response:
            return await response.json()


@wrong(check.fetch_json, "reads the body after the session's async with block has closed it",
       rule="lesson 01: using a session after its `async with` block; keep the work inside",
       problem="read-after-close")
async def fetch_json_read_after_close(url):
    async with aiohttp.ClientSession() as session:
        response = await session.get(url)
    return await response.json()


# --- Task 2 · fetch_both -------------------------------------------------------------------


@correct(check.fetch_both, "asyncio.TaskGroup, results taken from the tasks")
async def fetch_both_taskgroup(url_a, url_b):
    async with asyncio.TaskGroup() as group:
        task_a = group.create_task(_get_json(url_a))
        task_b = group.create_task(_get_json(url_b))
    return task_a.result(), task_b.result()


@correct(check.fetch_both, "one shared session, gather, converted to a tuple")
async def fetch_both_shared_session(url_a, url_b):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.json()

        data_a, data_b = await asyncio.gather(one(url_a), one(url_b))
    return data_a, data_b


@correct(check.fetch_both, "create_task for both first, then await each")
async def fetch_both_create_tasks(url_a, url_b):
    task_a = asyncio.create_task(_get_json(url_a))
    task_b = asyncio.create_task(_get_json(url_b))
    return await task_a, await task_b


@correct(check.fetch_both, "asyncio.wait on two tasks, results read per task")
async def fetch_both_wait(url_a, url_b):
    task_a = asyncio.ensure_future(_get_json(url_a))
    task_b = asyncio.ensure_future(_get_json(url_b))
    await asyncio.wait({task_a, task_b})
    return (task_a.result(), task_b.result())


@wrong(check.fetch_both, "awaits one after the other",
       rule="fetched **at the same time**, 200 ms",
       problem="sequential")
async def fetch_both_sequential(url_a, url_b):
    data_a = await _get_json(url_a)
    data_b = await _get_json(url_b)
    return data_a, data_b


@wrong(check.fetch_both, "awaits each task right after creating it: still sequential",
       rule="fetched **at the same time**, 200 ms",
       problem="sequential")
async def fetch_both_await_each_task(url_a, url_b):
    data_a = await asyncio.create_task(_get_json(url_a))
    data_b = await asyncio.create_task(_get_json(url_b))
    return data_a, data_b


@wrong(check.fetch_both, "results in completion order (as_completed), not in argument order",
       rule="returns `(data_a, data_b)` ... in that order",
       problem="wrong-order")
async def fetch_both_as_completed(url_a, url_b):
    results = []
    for next_done in asyncio.as_completed([_get_json(url_a), _get_json(url_b)]):
        results.append(await next_done)
    return tuple(results)


@wrong(check.fetch_both, "iterates asyncio.wait's done set, whose order is arbitrary",
       rule="returns `(data_a, data_b)` ... in that order",
       problem="wrong-order")
async def fetch_both_done_set(url_a, url_b):
    done, _ = await asyncio.wait(
        [asyncio.create_task(_get_json(url_b)), asyncio.create_task(_get_json(url_a))]
    )
    return tuple(task.result() for task in done)


@wrong(check.fetch_both, "forgot to await gather: returns a future",
       rule="returns `(data_a, data_b)`, the JSON of both URLs",
       problem="missing-await")
async def fetch_both_forgot_await(url_a, url_b):
    return asyncio.gather(_get_json(url_a), _get_json(url_b))


@wrong(check.fetch_both, "blocking urllib calls inside gather: no overlap",
       rule="fetched **at the same time**, 200 ms",
       problem="blocked-loop")
async def fetch_both_blocking_urllib(url_a, url_b):
    async def fetch(url):
        with urllib.request.urlopen(url) as raw:
            return json.load(raw)

    data_a, data_b = await asyncio.gather(fetch(url_a), fetch(url_b))
    return data_a, data_b


@wrong(check.fetch_both, "copy-paste slip: fetches url_a twice",
       rule="returns `(data_a, data_b)`, the JSON of both URLs",
       problem="wrong-data")
async def fetch_both_url_a_twice(url_a, url_b):
    data_a, data_b = await asyncio.gather(_get_json(url_a), _get_json(url_a))
    return data_a, data_b


@correct(check.fetch_both, "gather's list: the task text accepts a tuple or a list")
async def fetch_both_returns_list(url_a, url_b):
    return await asyncio.gather(_get_json(url_a), _get_json(url_b))


# --- Task 3 · pause ------------------------------------------------------------------------


@correct(check.pause, "time.sleep moved to a worker thread with asyncio.to_thread")
async def pause_to_thread(seconds):
    await asyncio.to_thread(time.sleep, seconds)


@correct(check.pause, "a future resolved by loop.call_later")
async def pause_call_later(seconds):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    handle = loop.call_later(seconds, done.set_result, None)
    try:
        await done
    finally:
        handle.cancel()


@correct(check.pause, "waits on an Event that never fires, with a timeout")
async def pause_event_timeout(seconds):
    try:
        await asyncio.wait_for(asyncio.Event().wait(), timeout=seconds)
    except TimeoutError:
        pass


@correct(check.pause, "short asyncio.sleep steps until a monotonic deadline")
async def pause_steps_to_deadline(seconds):
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 0.01))


@wrong(check.pause, "time.sleep blocks the loop", rule="lets every other task keep running",
       problem="blocked-loop")
async def pause_time_sleep(seconds):
    time.sleep(seconds)


@wrong(check.pause, "forgot await on asyncio.sleep: returns at once",
       rule="returns after `seconds` seconds",
       problem="missing-await")
async def pause_forgot_await(seconds):
    asyncio.sleep(seconds)


@wrong(check.pause, "busy-waits on the clock, holding the loop",
       rule="lets every other task keep running meanwhile",
       problem="blocked-loop")
async def pause_busy_wait(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@wrong(check.pause, "treats seconds as milliseconds: returns far too early",
       rule="returns after `seconds` seconds",
       problem="wrong-duration")
async def pause_milliseconds(seconds):
    await asyncio.sleep(seconds / 1000)


@wrong(check.pause, "run_in_executor without await: returns at once",
       rule="returns after `seconds` seconds",
       problem="did-not-wait")
async def pause_executor_not_awaited(seconds):
    asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


@wrong(check.pause, "threading.Event().wait() blocks the loop's thread",
       rule="lets every other task keep running meanwhile",
       problem="blocked-loop")
async def pause_threading_event(seconds):
    threading.Event().wait(seconds)


@wrong(check.pause, "int(seconds) truncates fractions: pause(0.5) returns at once",
       rule="returns after `seconds` seconds",
       problem="did-not-wait")
async def pause_int_seconds(seconds):
    await asyncio.sleep(int(seconds))


@wrong(check.pause, "asyncio.run inside a running loop",
       rule="lesson 00: asyncio.run() cannot be called from a running event loop",
       problem="asyncio-run-in-loop")
async def pause_asyncio_run(seconds):
    asyncio.run(asyncio.sleep(seconds))


@wrong(check.pause, "ignores its argument: always sleeps 0.2 s",
       rule="returns after `seconds` seconds",
       problem="wrong-duration")
async def pause_hard_coded(seconds):
    await asyncio.sleep(0.2)
