"""``make bench``'s workshop figures: the course server under a room of simulated learners.

The server runs as an instructor runs it (``python -m local_server``) on one core; the load
runs in another process on the other core: N learners, each with its own ``X-Learner`` and
session, each repeating a realistic mix without pause (echo, JSON, a delay, fail-and-retry, a
stream, a 1 MiB file, a WebSocket round trip, ``/stats``) for a fixed time. Reported: requests
per second, p50/p95/p99 per kind, errors, and the server's resident memory before and after;
then its memory after 20,000 distinct learners. ``python -m coursetools.workshop`` runs it all.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import aiohttp
import psutil

LEARNER_COUNTS = (30, 100)
LOAD_SECONDS = 10
DISTINCT_LEARNERS = 20_000
# What one real learner asks of the server: about one request every few seconds.
SECONDS_BETWEEN_A_LEARNERS_REQUESTS = 3.0
MIX = {
    "echo": 30,
    "json": 20,
    "delay": 10,
    "retry": 10,
    "stream": 10,
    "file": 5,
    "websocket": 10,
    "stats": 5,
}

Job = Callable[[aiohttp.ClientSession, str, random.Random], Awaitable[int]]


async def _echo(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.get(f"{url}/get", params={"q": str(rng.random())}) as response:
        await response.read()
        response.raise_for_status()
    return 1


async def _json(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.post(f"{url}/post", json={"n": rng.randrange(1000)}) as response:
        await response.read()
        response.raise_for_status()
    return 1


async def _delay(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.get(f"{url}/delay/0.05") as response:
        await response.read()
        response.raise_for_status()
    return 1


async def _retry(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    key = f"k{rng.randrange(8)}"
    async with session.post(f"{url}/fail/{key}/reset") as response:
        await response.read()
    for attempt in range(1, 5):
        async with session.get(f"{url}/fail/{key}/2") as response:
            await response.read()
            if response.status == 200:
                return attempt + 1
        await asyncio.sleep(0.01)
    raise RuntimeError("fail-and-retry never succeeded")


async def _stream(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.get(f"{url}/stream/20") as response:
        async for _ in response.content:
            pass
        response.raise_for_status()
    return 1


async def _file(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.get(f"{url}/files/1048576") as response:
        async for _ in response.content.iter_chunked(65536):
            pass
        response.raise_for_status()
    return 1


async def _websocket(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.ws_connect(f"{url}/ws/echo") as ws:
        for i in range(3):
            await ws.send_str(f"hello {i}")
            await ws.receive_str()
    return 1


async def _stats(session: aiohttp.ClientSession, url: str, rng: random.Random) -> int:
    async with session.get(f"{url}/stats") as response:
        await response.read()
        response.raise_for_status()
    return 1


JOBS: dict[str, Job] = {
    "echo": _echo,
    "json": _json,
    "delay": _delay,
    "retry": _retry,
    "stream": _stream,
    "file": _file,
    "websocket": _websocket,
    "stats": _stats,
}


async def learner_loop(
    url: str, name: str, seconds: float, seed: int
) -> tuple[dict[str, list[float]], int, int]:
    """One learner: the mix, over and over; (latencies by kind, requests, errors)."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    latencies: dict[str, list[float]] = defaultdict(list)
    requests = errors = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(headers={"X-Learner": name}, timeout=timeout) as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                requests += await JOBS[kind](session, url, rng)
                latencies[kind].append(time.perf_counter() - started)
            except (aiohttp.ClientError, RuntimeError, TimeoutError):
                errors += 1
    return latencies, requests, errors


async def room(url: str, learners: int, seconds: float) -> dict:
    """Run ``learners`` learners at once; the figures of the whole room."""
    started = time.perf_counter()
    results = await asyncio.gather(
        *(learner_loop(url, f"learner{i}", seconds, i) for i in range(learners))
    )
    elapsed = time.perf_counter() - started
    merged: dict[str, list[float]] = defaultdict(list)
    for latencies, _, _ in results:
        for kind, values in latencies.items():
            merged[kind].extend(values)
    return {
        "requests": sum(r[1] for r in results),
        "errors": sum(r[2] for r in results),
        "seconds": elapsed,
        "latencies": merged,
    }


async def distinct_learners(url: str, count: int, concurrency: int = 50) -> None:
    """``count`` requests, each from a learner the server has never seen."""
    names = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for i in names:
                headers = {"X-Learner": f"visitor{i}"}
                async with session.get(f"{url}/get", headers=headers) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _pin(core: int) -> Callable[[], None] | None:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {core})


@contextmanager
def course_server() -> Iterator[tuple[str, psutil.Process]]:
    """``python -m local_server --port 0`` on core 0; its URL and process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=_pin(0),
    )
    try:
        assert process.stdout is not None
        port = int(re.search(r":(\d+)\s", process.stdout.readline()).group(1))
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "   n/a"
    cuts = statistics.quantiles(values, n=100)
    return f"{cuts[49] * 1000:7.1f} {cuts[94] * 1000:7.1f} {cuts[98] * 1000:7.1f}"


def report() -> None:
    """Print the workshop figures (the load in a second process, on core 1)."""
    with course_server() as (url, server):
        for learners in LEARNER_COUNTS:
            before = server.memory_info().rss / 2**20
            load = subprocess.run(
                [sys.executable, "-m", "coursetools.workshop", "load", url, str(learners),
                 str(LOAD_SECONDS)],
                capture_output=True, text=True, check=True, preexec_fn=_pin(1),
            )  # fmt: skip
            after = server.memory_info().rss / 2**20
            print(load.stdout, end="")
            print(f"  server resident memory: {before:.0f} MiB before, {after:.0f} MiB after")
        before = server.memory_info().rss / 2**20
        subprocess.run(
            [sys.executable, "-m", "coursetools.workshop", "visitors", url,
             str(DISTINCT_LEARNERS)],
            check=True, preexec_fn=_pin(1),
        )  # fmt: skip
        after = server.memory_info().rss / 2**20
        print(f"{DISTINCT_LEARNERS} distinct learners, one request each: resident memory "
              f"{before:.0f} MiB before, {after:.0f} MiB after")  # fmt: skip


def _load(url: str, learners: int, seconds: float) -> None:
    figures = asyncio.run(room(url, learners, seconds))
    rate = figures["requests"] / figures["seconds"]
    print(f"{learners} learners, {seconds:g} s, no pause between requests: {rate:.0f} requests/s, "
          f"{figures['errors']} errors; about {rate * SECONDS_BETWEEN_A_LEARNERS_REQUESTS:.0f} "
          f"real learners at one request every {SECONDS_BETWEEN_A_LEARNERS_REQUESTS:g} s")
    print(f"  {'kind':<10} {'count':>6}   p50 ms  p95 ms  p99 ms")
    for kind in MIX:
        values = figures["latencies"].get(kind, [])
        print(f"  {kind:<10} {len(values):6d} {_percentiles(values)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        _load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "visitors":
        asyncio.run(distinct_learners(sys.argv[2], int(sys.argv[3])))
    else:
        report()
