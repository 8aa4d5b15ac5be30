"""Exercise 18's checks: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here or in ``adversarial/ex18_rate_limits_tracing.py`` that breaks it alone.
A few tests below look at the judging itself: a burst the server saw but the client did not
make (the server's side bunched the requests up) is not the learner's.
"""

from __future__ import annotations

import asyncio
import random
import time
from types import SimpleNamespace

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiolimiter import AsyncLimiter
from yarl import URL

from local_server.checks import rate_limits_tracing as check
from local_server.checks.rate_limits_tracing import Call, Sent


async def _get_json(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def _in_task_group(make, urls):
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(make(url)) for url in urls]
    return [t.result() for t in tasks]


# --- Task 1 · fetch_all ----------------------------------------------------------------------


@correct(check.fetch_all, "AsyncLimiter(1, 1 / rate): a burst of 1 is within the limit")
async def fetch_all_burst_of_one(session, urls, *, rate, burst):
    limiter = AsyncLimiter(1, 1 / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    return await _in_task_group(one, urls)


@correct(check.fetch_all, "gather, cancelling the other tasks itself when one fails")
async def fetch_all_gather_and_cancel(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    tasks = [asyncio.ensure_future(one(url)) for url in urls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@correct(check.fetch_all, "a token bucket that refills in whole ticks of 1/rate")
async def fetch_all_ticking_bucket(session, urls, *, rate, burst):
    loop = asyncio.get_running_loop()
    state = {"tokens": burst, "last": loop.time()}
    lock = asyncio.Lock()

    async def take():
        async with lock:
            while True:
                ticks = int((loop.time() - state["last"]) * rate)
                if ticks:
                    state["tokens"] = min(burst, state["tokens"] + ticks)
                    state["last"] += ticks / rate
                if state["tokens"] >= 1:
                    state["tokens"] -= 1
                    if state["tokens"] == burst - 1:
                        state["last"] = max(state["last"], loop.time() - 1 / rate)
                    return
                await asyncio.sleep(state["last"] + 1 / rate - loop.time())

    async def one(url):
        await take()
        return await _get_json(session, url)

    return await _in_task_group(one, urls)


@wrong(check.fetch_all, "results in the order the answers came", problem="wrong-result")
async def fetch_all_completion_order(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    results = []
    for future in asyncio.as_completed([one(url) for url in urls]):
        results.append(await future)
    return results


@wrong(check.fetch_all, "wraps the failure in its own RuntimeError", problem="wrong-error")
async def fetch_all_wraps_error(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    try:
        return await _in_task_group(one, urls)
    except BaseException as error:
        raise RuntimeError("fetch_all failed") from error


@wrong(check.fetch_all, "twice the rate: time_period halved", problem="too-fast")
async def fetch_all_double_rate(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / (2 * rate))

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    return await _in_task_group(one, urls)


@wrong(check.fetch_all, "a token bucket that starts with twice the burst", problem="burst")
async def fetch_all_bucket_starts_overfull(session, urls, *, rate, burst):
    loop = asyncio.get_running_loop()
    state = {"tokens": 2.0 * burst + 1, "last": loop.time()}
    lock = asyncio.Lock()

    async def take():
        async with lock:
            while True:
                now = loop.time()
                state["tokens"] += (now - state["last"]) * rate  # capped only at the start
                state["last"] = now
                if state["tokens"] >= 1:
                    state["tokens"] -= 1
                    return
                await asyncio.sleep((1 - state["tokens"]) / rate)

    async def one(url):
        await take()
        return await _get_json(session, url)

    return await _in_task_group(one, urls)


@wrong(check.fetch_all, "Semaphore(rate): ten at a time, as fast as the server answers",
       problem="semaphore-as-limiter")  # fmt: skip
async def fetch_all_semaphore_of_rate(session, urls, *, rate, burst):
    semaphore = asyncio.Semaphore(max(2, int(rate)))

    async def one(url):
        async with semaphore:
            return await _get_json(session, url)

    return await _in_task_group(one, urls)


@wrong(check.fetch_all, "asyncio.wait(FIRST_EXCEPTION), raising without cancelling the rest",
       problem="left-running")  # fmt: skip
async def fetch_all_wait_first_exception(session, urls, *, rate, burst):
    limiter = AsyncLimiter(burst, burst / rate)

    async def one(url):
        async with limiter:
            return await _get_json(session, url)

    tasks = [asyncio.ensure_future(one(url)) for url in urls]
    done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            raise task.exception()
    return [task.result() for task in tasks]


class Bucket:
    """A learner's bucket class, made once per request below."""

    def __init__(self, rate, burst):
        self.rate, self.tokens, self.stamp = rate, burst, time.monotonic()

    async def acquire(self):
        while self.tokens < 1:
            await asyncio.sleep(1 / self.rate)
            self.tokens += 1
        self.tokens -= 1


@wrong(check.fetch_all, "a hand-written Bucket made inside each task", problem="limiter-per-task")
async def fetch_all_bucket_per_task(session, urls, *, rate, burst):
    async def one(url):
        bucket = Bucket(rate, burst)
        await bucket.acquire()
        return await _get_json(session, url)

    return await _in_task_group(one, urls)


@wrong(check.fetch_all, "each task sleeps its index / rate, but the first `burst` all at once "
       "... and then `burst` per second", problem="burst")  # fmt: skip
async def fetch_all_bursts_each_second(session, urls, *, rate, burst):
    async def one(index, url):
        await asyncio.sleep((index // int(rate)) * 1.0)
        return await _get_json(session, url)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(i, url)) for i, url in enumerate(urls)]
    return [t.result() for t in tasks]


# --- Task 2 · fetch_politely -------------------------------------------------------------------


@correct(check.fetch_politely, "a pause object with an asyncio.Lock, jitter drawn per wait")
async def fetch_politely_locked_pause(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    pause = SimpleNamespace(until=0.0, lock=asyncio.Lock())

    async def refused(response):
        async with pause.lock:
            pause.until = max(pause.until, loop.time() + float(response.headers["Retry-After"]))

    async def one(url):
        async with semaphore:
            while True:
                while loop.time() < pause.until:
                    await asyncio.sleep(pause.until - loop.time() + random.uniform(0, jitter))
                async with session.get(url) as response:
                    if response.status == 429:
                        await refused(response)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await _in_task_group(one, urls)


@correct(check.fetch_politely, "workers pulling indexes from a shared iterator, time.monotonic")
async def fetch_politely_iterator_workers(session, urls, *, concurrency, jitter):
    pending = iter(enumerate(urls))
    results = [None] * len(urls)
    resume = [0.0]

    async def worker():
        for index, url in pending:
            while True:
                if (left := resume[0] - time.monotonic()) > 0:
                    await asyncio.sleep(left + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        told = int(response.headers.get("Retry-After", "1"))
                        resume[0] = max(resume[0], time.monotonic() + told)
                        continue
                    response.raise_for_status()
                    results[index] = await response.json()
                    break

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return results


@wrong(check.fetch_politely, "its own session", problem="own-session")
async def fetch_politely_own_session(session, urls, *, concurrency, jitter):
    async with aiohttp.ClientSession() as mine:
        return await fetch_politely_locked_pause(mine, urls, concurrency=concurrency,
                                                 jitter=jitter)  # fmt: skip


@wrong(check.fetch_politely, "results in completion order", problem="wrong-result")
async def fetch_politely_completion_order(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}
    results = []

    async def one(url):
        async with semaphore:
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
                    results.append(await response.json())
                    return

    await asyncio.gather(*(one(url) for url in urls))
    return results


@wrong(check.fetch_politely, "a 500 becomes None in the results", problem="error-swallowed")
async def fetch_politely_swallows_500(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with semaphore:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        told = float(response.headers["Retry-After"])
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    if response.status >= 400:
                        return None  # "skip the broken ones"
                    return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_politely, "a jitter of at most a millisecond", problem="no-jitter")
async def fetch_politely_tiny_jitter(session, urls, *, concurrency, jitter):
    return await fetch_politely_locked_pause(session, urls, concurrency=concurrency, jitter=0.001)


@wrong(check.fetch_politely, "a shared pause of a fixed 0.5 s, whatever Retry-After says",
       problem="retry-after-ignored")  # fmt: skip
async def fetch_politely_fixed_pause(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    state = {"until": 0.0}

    async def one(url):
        async with semaphore:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        state["until"] = max(state["until"], loop.time() + 0.5)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await _in_task_group(one, urls)


@wrong(check.fetch_politely, "a backoff of 2**n seconds on top of Retry-After",
       problem="waited-too-long")  # fmt: skip
async def fetch_politely_backoff_on_top(session, urls, *, concurrency, jitter):
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(concurrency)
    state = {"until": 0.0, "refusals": 0}

    async def one(url):
        async with semaphore:
            while True:
                if (wait := state["until"] - loop.time()) > 0:
                    await asyncio.sleep(wait + random.uniform(0, jitter))
                    continue
                async with session.get(url) as response:
                    if response.status == 429:
                        state["refusals"] += 1
                        backoff = 2 ** min(state["refusals"], 3)
                        told = float(response.headers["Retry-After"]) + backoff
                        state["until"] = max(state["until"], loop.time() + told)
                        continue
                    response.raise_for_status()
                    return await response.json()

    return await _in_task_group(one, urls)


@wrong(check.fetch_politely, "returns the 429's JSON body when refused", problem="gave-up")
async def fetch_politely_returns_429(session, urls, *, concurrency, jitter):
    semaphore = asyncio.Semaphore(concurrency)

    async def one(url):
        async with semaphore:
            async with session.get(url) as response:
                if response.status != 429:
                    response.raise_for_status()
                return await response.json()

    return await _in_task_group(one, urls)


# --- Task 3 · fetch_with_phases -----------------------------------------------------------------

SIGNALS = ("dns_resolvehost_start", "dns_resolvehost_end", "connection_create_start",
           "connection_create_end", "request_headers_sent", "request_end",
           "response_chunk_received")  # fmt: skip


def _config(clock=None):
    config = aiohttp.TraceConfig()
    for name in SIGNALS:
        async def stamp(session, ctx, params, name=name):
            ctx.trace_request_ctx[name] = (clock or asyncio.get_running_loop().time)()
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


async def _rows(urls, transform=None, clock=None):
    async with aiohttp.ClientSession(trace_configs=[_config(clock)]) as session:

        async def one(url):
            marks = {}
            async with session.get(url, trace_request_ctx=marks) as response:
                await response.read()
            row = {"status": response.status, **_phases(marks)}
            return transform(row, marks) if transform else row

        return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_with_phases, "per-request state in trace_config_ctx, copied out")
async def fetch_with_phases_config_ctx(urls):
    config = aiohttp.TraceConfig()

    def at(name):
        async def stamp(session, ctx, params):
            if not hasattr(ctx, "marks"):
                ctx.marks = ctx.trace_request_ctx["marks"]
            ctx.marks[name] = time.monotonic()
        return stamp

    for name in SIGNALS:
        getattr(config, f"on_{name}").append(at(name))
    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            holder = {"marks": {}}
            async with session.get(url, trace_request_ctx=holder) as response:
                await response.read()
            return {"status": response.status, **_phases(holder["marks"])}

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(url)) for url in urls]
    return [t.result() for t in tasks]


@correct(check.fetch_with_phases, "time.time() as the clock")
async def fetch_with_phases_wall_clock_stamps(urls):
    return list(await _rows(urls, clock=time.time))


@wrong(check.fetch_with_phases, "the phases as formatted strings", problem="wrong-shape")
async def fetch_with_phases_strings(urls):
    rows = await _rows(urls)
    return [{k: (v if k == "status" else f"{v:.3f}") for k, v in row.items()} for row in rows]


@wrong(check.fetch_with_phases, "status left out: always 200", problem="status-wrong")
async def fetch_with_phases_status_200(urls):
    return await _rows(urls, lambda row, marks: {**row, "status": 200})


@wrong(check.fetch_with_phases, "dns always 0.0", problem="dns-wrong")
async def fetch_with_phases_no_dns(urls):
    return await _rows(urls, lambda row, marks: {**row, "dns": 0.0})


@wrong(check.fetch_with_phases, "connect always 0.0", problem="connect-wrong")
async def fetch_with_phases_no_connect(urls):
    return await _rows(urls, lambda row, marks: {**row, "connect": 0.0})


@wrong(check.fetch_with_phases, "wait until the body's end, not the headers", problem="wait-wrong")
async def fetch_with_phases_wait_until_body(urls):
    def until_body(row, marks):
        return {**row, "wait": marks["response_chunk_received"] - marks["request_headers_sent"]}

    return await _rows(urls, until_body)


@wrong(check.fetch_with_phases, "body never timed: 0.0", problem="body-wrong")
async def fetch_with_phases_no_body(urls):
    return await _rows(urls, lambda row, marks: {**row, "body": 0.0})


@wrong(check.fetch_with_phases, "times kept per host:port, not per request", problem="mixed-up")
async def fetch_with_phases_per_host(urls):
    by_host: dict[str, dict[str, float]] = {}
    config = aiohttp.TraceConfig()
    for name in SIGNALS:
        async def stamp(session, ctx, params, name=name):
            url = getattr(params, "url", None) or ctx.url
            ctx.url = url
            by_host.setdefault(f"{url.host}:{url.port}", {})[name] = time.monotonic()
        getattr(config, f"on_{name}").append(stamp)

    async def remember(session, ctx, params):
        ctx.url = params.url

    config.on_request_start.append(remember)
    async with aiohttp.ClientSession(trace_configs=[config]) as session:

        async def one(url):
            async with session.get(url) as response:
                await response.read()
            key = f"{response.url.host}:{response.url.port}"
            return {"status": response.status, **_phases(dict(by_host[key]))}

        results = await asyncio.gather(*(one(url) for url in urls))
    # read once more at the end: each host's last request overwrote the others' times
    return [{**row, **_phases(by_host[f"{URL(u).host}:{URL(u).port}"])}
            for row, u in zip(results, urls, strict=True)]


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


# --- the judging itself -------------------------------------------------------------------------


def _call(server_times, client_times, rate=10.0, burst=3):
    call = Call("a", [f"http://x/ratelimit/k?i={i}" for i in range(len(server_times))],
                {"rate": rate, "burst": burst}, "k")  # fmt: skip
    call.sent = [Sent("u", None, t, t + 0.15, 200) for t in client_times]
    call.log = {"log": [{"t": t, "status": 200, "in_flight": 0} for t in server_times]}
    return call


def test_a_burst_only_the_servers_side_shows_is_not_the_learners():
    """Five requests sent 0.1 s apart but bunched on arrival (a stalled server thread)."""
    client = [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    server = [0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    check._judge_rate(_call(server, client), 10.0, 3)  # no Mistake


def test_a_burst_both_sides_show_is_the_learners():
    bunched = [0.0] * 8
    with pytest.raises(check.Mistake) as caught:
        check._judge_rate(_call(bunched, bunched), 10.0, 3)
    assert caught.value.problem == "burst"
    assert "8 requests reached the server within 0 ms" in caught.value.message


def test_one_request_early_by_the_servers_clock_is_forgiven():
    """The first request opened a connection and arrived late: the next look early."""
    client = [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]
    server = [0.04, 0.001, 0.001, 0.1, 0.2, 0.3]
    check._judge_rate(_call(sorted(server), client), 10.0, 3)


def test_fetch_all_names_the_semaphore_and_its_bound():
    verdict = check.fetch_all.diagnose(fetch_all_semaphore_of_rate)
    assert verdict.problem == "semaphore-as-limiter"
    assert "never more than 10 in flight" in verdict.message


def test_fetch_politely_names_the_refused_task_and_the_pause():
    from adversarial.ex18_rate_limits_tracing import fetch_politely_ignores

    verdict = check.fetch_politely.diagnose(fetch_politely_ignores)
    assert verdict.problem == "retry-after-ignored"
    assert "`Retry-After: 1`" in verdict.message and "sent again 0.1" in verdict.message


def test_verdicts_repeat():
    first = check.fetch_with_phases.diagnose(fetch_with_phases_no_connect)
    second = check.fetch_with_phases.diagnose(fetch_with_phases_no_connect)
    assert first.problem == second.problem == "connect-wrong"
    assert first.message.split(":")[0] == second.message.split(":")[0]


def test_the_checks_leave_the_loop_and_aiohttp_as_they_found_them():
    init = aiohttp.ClientSession.__init__
    limiter_init = AsyncLimiter.__init__
    check.fetch_with_phases.diagnose(fetch_with_phases_config_ctx)
    check.fetch_all.diagnose(fetch_all_burst_of_one)
    assert aiohttp.ClientSession.__init__ is init
    assert AsyncLimiter.__init__ is limiter_init
    assert Bucket.__dict__.get("__init__") is not None
