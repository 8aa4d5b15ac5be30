"""Learner answers to exercise 18 (rate limits and tracing), right and wrong, from the task text.

Written from the exercise's task texts before its checks existed; ``problem`` names the
diagnosis each wrong answer deserves.
"""

from __future__ import annotations

import asyncio
import random
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter

from adversarial import correct, wrong
from local_server.checks import rate_limits_tracing as check

# --- Task 1 · fetch_all: keep to a rate, concurrently -----------------------------------------


class Bucket:
    """A learner's token bucket: full at the start, `rate` tokens a second, never above burst."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self):
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


async def _get_json(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.fetch_all, "a hand-written token bucket with a lock, TaskGroup")
async def fetch_all_token_bucket(session, urls, *, rate, burst):
    bucket = Bucket(rate, burst)

    async def one(url):
        await bucket.take()
        return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@correct(check.fetch_all, "aiolimiter plus a semaphore of 8 for concurrency")
async def fetch_all_limiter_and_semaphore(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)
    semaphore = asyncio.Semaphore(8)

    async def one(url):
        async with semaphore:
            async with limiter:
                return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@correct(check.fetch_all, "five workers pulling from a queue, one shared limiter")
async def fetch_all_workers(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)
    queue: asyncio.Queue = asyncio.Queue()
    for index, url in enumerate(urls):
        queue.put_nowait((index, url))
    results: list[Any] = [None] * len(urls)

    async def worker():
        while not queue.empty():
            index, url = queue.get_nowait()
            async with limiter:
                results[index] = await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        for _ in range(5):
            tg.create_task(worker())
    return results


@correct(check.fetch_all, "GCRA: each request reserves its own start time, no lock")
async def fetch_all_gcra(session, urls, *, rate, burst):
    loop = asyncio.get_running_loop()
    interval = 1 / rate
    state = {"tat": loop.time()}  # theoretical arrival time

    async def one(url):
        now = loop.time()
        tat = max(state["tat"], now)
        start = tat - (burst - 1) * interval  # up to burst early
        state["tat"] = tat + interval
        if start > now:
            await asyncio.sleep(start - now)
        return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "a semaphore of `burst` as the rate limiter",
       problem="semaphore-as-limiter")
async def fetch_all_semaphore(session, urls, *, rate, burst):
    semaphore = asyncio.Semaphore(burst)

    async def one(url):
        async with semaphore:
            return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "batches of `rate` requests, then a one-second sleep: the average kept",
       problem="burst")
async def fetch_all_batches(session, urls, *, rate, burst):
    size = max(1, int(rate))
    results = []
    for start in range(0, len(urls), size):
        results += await asyncio.gather(*(_get_json(session, u) for u in urls[start:start + size]))
        if start + size < len(urls):
            await asyncio.sleep(1)
    return results


@wrong(check.fetch_all, "AsyncLimiter(rate, 1): its burst is `rate`, not `burst`",
       problem="burst")
async def fetch_all_limiter_rate_per_second(session, urls, *, rate, burst):
    limiter = AsyncLimiter(rate, 1)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "a new AsyncLimiter inside each task", problem="limiter-per-task")
async def fetch_all_limiter_in_task(session, urls, *, rate, burst):
    async def one(url):
        limiter = AsyncLimiter(burst, burst / rate)
        async with limiter:
            return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "each task sleeps 1/rate before its request: they all wake together",
       problem="limiter-per-task")
async def fetch_all_sleep_per_task(session, urls, *, rate, burst):
    async def one(url):
        await asyncio.sleep(1 / rate)
        return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "one request at a time through the limiter", problem="not-concurrent")
async def fetch_all_sequential(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)
    results = []
    for url in urls:
        async with limiter:
            results.append(await _get_json(session, url))
    return results


@wrong(check.fetch_all, "gather without cancelling: after a failure the others keep going",
       problem="left-running")
async def fetch_all_gather_no_cancel(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "return_exceptions=True: the failure comes back as a list item",
       problem="error-swallowed")
async def fetch_all_return_exceptions(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    return await asyncio.gather(*(one(url) for url in urls), return_exceptions=True)


_shared_limiter: list[AsyncLimiter] = []


@wrong(check.fetch_all, "one limiter for every call, made by the first call with its limit",
       problem="too-fast")
async def fetch_all_global_limiter(session, urls, *, rate, burst):
    if not _shared_limiter:
        _shared_limiter.append(AsyncLimiter(burst, burst / rate))
    limiter = _shared_limiter[0]

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_all, "its own session instead of the one given", problem="own-session")
async def fetch_all_own_session(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)
    async with aiohttp.ClientSession() as mine:

        async def one(url):
            async with limiter:
                return await _get_json(mine, url)

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


# --- Task 2 · fetch_politely: 429 with one shared pause ---------------------------------------


@correct(check.fetch_politely, "a semaphore and one shared paused-until moment, with jitter")
async def fetch_politely_shared(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with sem:
            while True:
                wait = state["until"] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        seconds = int(response.headers["Retry-After"])
                        state["until"] = max(state["until"], loop.time() + seconds)
                        continue
                    response.raise_for_status()
                    return await response.json()

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


class Gate:
    """A learner's pause object: every worker asks it before each request."""

    def __init__(self, jitter):
        self.jitter = jitter
        self.resume_at = 0.0

    def close_for(self, seconds):
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)

    async def enter(self):
        while (left := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(left + random.random() * self.jitter)


@correct(check.fetch_politely, "`concurrency` workers on a queue and a Gate object")
async def fetch_politely_workers(session, urls, *, concurrency, jitter):
    gate = Gate(jitter)
    queue: asyncio.Queue = asyncio.Queue()
    for item in enumerate(urls):
        queue.put_nowait(item)
    results: list[Any] = [None] * len(urls)

    async def worker():
        while not queue.empty():
            index, url = queue.get_nowait()
            while True:
                await gate.enter()
                async with session.get(url) as response:
                    if response.status == 429:
                        gate.close_for(float(response.headers.get("Retry-After", 1)))
                        continue
                    response.raise_for_status()
                    results[index] = await response.json()
                    break

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return results


@correct(check.fetch_politely, "the pause kept in a SimpleNamespace, gather, a for-loop of tries")
async def fetch_politely_namespace(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    pause = SimpleNamespace(until=0.0)
    sem = asyncio.Semaphore(concurrency)

    async def one(url):
        async with sem:
            for _ in range(20):
                delay = pause.until - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay + random.uniform(0, jitter))
                if pause.until > loop.time():
                    continue
                async with session.get(url) as response:
                    if response.status != 429:
                        response.raise_for_status()
                        return await response.json()
                    told = float(response.headers["Retry-After"])
                    pause.until = max(pause.until, loop.time() + told)
            raise RuntimeError(f"still refused: {url}")

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "retries a 429 after 0.1 s, whatever Retry-After says",
       problem="retry-after-ignored")
async def fetch_politely_ignores(session, urls, *, concurrency, jitter):
    sem = asyncio.Semaphore(concurrency)

    async def one(url):
        async with sem:
            while True:
                async with session.get(url) as response:
                    if response.status != 429:
                        response.raise_for_status()
                        return await response.json()
                await asyncio.sleep(0.1)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "only the refused task sleeps Retry-After; the others carry on",
       problem="pause-not-shared")
async def fetch_politely_per_task(session, urls, *, concurrency, jitter):
    sem = asyncio.Semaphore(concurrency)

    async def one(url):
        async with sem:
            while True:
                async with session.get(url) as response:
                    if response.status != 429:
                        response.raise_for_status()
                        return await response.json()
                    wait = float(response.headers["Retry-After"])
                await asyncio.sleep(wait + random.uniform(0, jitter))

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "one shared pause, but every task wakes at the same instant",
       problem="no-jitter")
async def fetch_politely_no_jitter(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with sem:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait)
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        told = float(response.headers["Retry-After"])
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely,
       "checks the pause before waiting for the semaphore, not right before sending",
       problem="pause-not-shared")
async def fetch_politely_checks_too_early(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        while True:
            if (wait := state["until"] - loop.time()) > 0:
                await asyncio.sleep(wait + random.uniform(0, jitter))
            async with sem:
                async with session.get(url) as response:
                    if response.status == 429:
                        told = float(response.headers["Retry-After"])
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "raise_for_status on everything: a 429 is not retried",
       problem="gave-up")
async def fetch_politely_no_retry(session, urls, *, concurrency, jitter):
    sem = asyncio.Semaphore(concurrency)

    async def one(url):
        async with sem:
            return await _get_json(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "no semaphore: every URL at once", problem="too-concurrent")
async def fetch_politely_unbounded(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    state = {"until": 0.0}

    async def one(url):
        while True:
            if (wait := state["until"] - loop.time()) > 0:
                await asyncio.sleep(wait + random.uniform(0, jitter))
                continue
            async with session.get(url) as response:
                if response.status == 429:
                    told = float(response.headers["Retry-After"])
                    state["until"] = max(state["until"], loop.time() + told)
                    continue
                response.raise_for_status()
                return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "one URL after another: concurrency unused", problem="not-concurrent")
async def fetch_politely_sequential(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    until = 0.0
    results = []
    for url in urls:
        while True:
            if (wait := until - loop.time()) > 0:
                await asyncio.sleep(wait + random.uniform(0, jitter))
            async with session.get(url) as response:
                if response.status == 429:
                    until = loop.time() + float(response.headers["Retry-After"])
                    continue
                response.raise_for_status()
                results.append(await response.json())
                break
    return results


@wrong(check.fetch_politely, "waits twice Retry-After plus jitter: far longer than asked",
       problem="waited-too-long")
async def fetch_politely_too_long(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with sem:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        told = 2 * float(response.headers["Retry-After"])
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "reads Retry-After as milliseconds", problem="retry-after-ignored")
async def fetch_politely_milliseconds(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with sem:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        told = float(response.headers["Retry-After"]) / 1000
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


# --- Task 3 · fetch_with_phases ---------------------------------------------------------------

PHASE_SIGNALS = ("dns_resolvehost_start", "dns_resolvehost_end", "connection_create_start",
                 "connection_create_end", "request_headers_sent", "request_end",
                 "response_chunk_received")


def _stamping_config(clock=None):
    config = aiohttp.TraceConfig()
    for name in PHASE_SIGNALS:
        async def stamp(session, ctx, params, name=name):
            now = clock() if clock else asyncio.get_running_loop().time()
            ctx.trace_request_ctx[name] = now
        getattr(config, f"on_{name}").append(stamp)
    return config


def _phases(marks):
    def span(a, b):
        return marks[b] - marks[a] if a in marks and b in marks else 0.0

    dns = span("dns_resolvehost_start", "dns_resolvehost_end")
    return {
        "dns": dns,
        "connect": span("connection_create_start", "connection_create_end") - dns,
        "wait": span("request_headers_sent", "request_end"),
        "body": span("request_end", "response_chunk_received"),
    }


@correct(check.fetch_with_phases, "a dict per request through trace_request_ctx, gather")
async def fetch_with_phases_dicts(urls):
    async with aiohttp.ClientSession(trace_configs=[_stamping_config()]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
                status = response.status
            return {"status": status, **_phases(marks)}

        return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_with_phases, "perf_counter clock, connect from the DNS end when there is one")
async def fetch_with_phases_perf_counter(urls):
    config = _stamping_config(time.perf_counter)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            dns = 0.0
            if "dns_resolvehost_start" in marks:
                dns = marks["dns_resolvehost_end"] - marks["dns_resolvehost_start"]
            if "connection_create_start" in marks:
                begin = marks.get("dns_resolvehost_end", marks["connection_create_start"])
                connect = marks["connection_create_end"] - begin
            else:
                connect = 0.0
            return {
                "status": response.status,
                "dns": dns,
                "connect": connect,
                "wait": marks["request_end"] - marks["request_headers_sent"],
                "body": marks["response_chunk_received"] - marks["request_end"],
            }

        return list(await asyncio.gather(*(one(url) for url in urls)))


@correct(check.fetch_with_phases, "durations computed inside the callbacks, TaskGroup")
async def fetch_with_phases_in_callbacks(urls):
    config = aiohttp.TraceConfig()

    async def dns_start(session, ctx, params):
        ctx.dns0 = time.monotonic()

    async def dns_end(session, ctx, params):
        ctx.trace_request_ctx["dns"] = time.monotonic() - ctx.dns0

    async def conn_start(session, ctx, params):
        ctx.conn0 = time.monotonic()

    async def conn_end(session, ctx, params):
        out = ctx.trace_request_ctx
        out["connect"] = time.monotonic() - ctx.conn0 - out["dns"]

    async def sent(session, ctx, params):
        ctx.sent = time.monotonic()

    async def end(session, ctx, params):
        ctx.headers = time.monotonic()
        ctx.trace_request_ctx["wait"] = ctx.headers - ctx.sent

    async def chunk(session, ctx, params):
        ctx.trace_request_ctx["body"] = time.monotonic() - ctx.headers

    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(conn_start)
    config.on_connection_create_end.append(conn_end)
    config.on_request_headers_sent.append(sent)
    config.on_request_end.append(end)
    config.on_response_chunk_received.append(chunk)

    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            out = {"dns": 0.0, "connect": 0.0, "wait": 0.0, "body": 0.0}
            async with session.get(url, trace_request_ctx=out) as response:
                await response.read()
                out["status"] = response.status
            return out

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@wrong(check.fetch_with_phases, "a stopwatch around session.get and around read()",
       problem="stopwatch")
async def fetch_with_phases_stopwatch(urls):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            t0 = time.perf_counter()
            async with session.get(url) as response:
                t1 = time.perf_counter()
                await response.read()
                t2 = time.perf_counter()
            return {"status": response.status, "dns": 0.0, "connect": 0.0,
                    "wait": t1 - t0, "body": t2 - t1}

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_with_phases, "connect left with the DNS lookup inside",
       problem="connect-includes-dns")
async def fetch_with_phases_connect_with_dns(urls):
    async with aiohttp.ClientSession(trace_configs=[_stamping_config()]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            phases = _phases(marks)
            phases["connect"] += phases["dns"]
            return {"status": response.status, **phases}

        return await asyncio.gather(*(one(url) for url in urls))


_GLOBAL_MARKS: dict[str, float] = {}


@wrong(check.fetch_with_phases, "one global dict of times for every request", problem="mixed-up")
async def fetch_with_phases_global(urls):
    config = aiohttp.TraceConfig()
    for name in PHASE_SIGNALS:
        async def stamp(session, ctx, params, name=name):
            _GLOBAL_MARKS[name] = asyncio.get_running_loop().time()
        getattr(config, f"on_{name}").append(stamp)

    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            async with session.get(url) as response:
                await response.read()
            return {"status": response.status, **_phases(dict(_GLOBAL_MARKS))}

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_with_phases, "phases in milliseconds", problem="milliseconds")
async def fetch_with_phases_ms(urls):
    results = await fetch_with_phases_dicts(urls)
    return [{k: (v * 1000 if k != "status" else v) for k, v in r.items()} for r in results]


@wrong(check.fetch_with_phases, "one URL after another", problem="not-concurrent")
async def fetch_with_phases_sequential(urls):
    results = []
    async with aiohttp.ClientSession(trace_configs=[_stamping_config()]) as session:
        for url in urls:
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            results.append({"status": response.status, **_phases(marks)})
    return results


@wrong(check.fetch_with_phases, "wait measured from on_request_start", problem="wait-wrong")
async def fetch_with_phases_wait_from_start(urls):
    config = _stamping_config()

    async def start(session, ctx, params):
        ctx.trace_request_ctx["request_start"] = asyncio.get_running_loop().time()

    config.on_request_start.append(start)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            phases = _phases(marks)
            phases["wait"] = marks["request_end"] - marks["request_start"]
            return {"status": response.status, **phases}

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_with_phases, "body from the request's start to the last chunk",
       problem="body-wrong")
async def fetch_with_phases_body_from_start(urls):
    config = _stamping_config()

    async def start(session, ctx, params):
        ctx.trace_request_ctx["request_start"] = asyncio.get_running_loop().time()

    config.on_request_start.append(start)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            phases = _phases(marks)
            phases["body"] = marks["response_chunk_received"] - marks["request_start"]
            return {"status": response.status, **phases}

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_with_phases, "the session is never closed", problem="session-left-open")
async def fetch_with_phases_unclosed(urls):
    session = aiohttp.ClientSession(trace_configs=[_stamping_config()])

    async def one(url):
        marks = {}
        async with session.get(url, trace_request_ctx=marks) as response:
            await response.read()
        return {"status": response.status, **_phases(marks)}

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_with_phases, "a failed request becomes a row of zeros",
       problem="error-swallowed")
async def fetch_with_phases_swallows(urls):
    async with aiohttp.ClientSession(trace_configs=[_stamping_config()]) as session:

        async def one(url):
            marks = {}
            try:
                async with session.get(url, trace_request_ctx=marks) as response:
                    await response.read()
            except aiohttp.ClientError:
                return {"status": 0, "dns": 0.0, "connect": 0.0, "wait": 0.0, "body": 0.0}
            return {"status": response.status, **_phases(marks)}

        return await asyncio.gather(*(one(url) for url in urls))
