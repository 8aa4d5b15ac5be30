"""Checks for exercise 00, asyncio in Jupyter.

In the notebook: ``from local_server.checks import asyncio_basics as check``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import secrets
import time
from typing import Any

import aiohttp

from ..runner import LocalServer
from .harness import Mistake, SessionSpy, call_async, check

SLOW_SECONDS = 0.2
TICK_SECONDS = 0.01
# A gap between ticks this long means something held the event loop.
BLOCKED_GAP_SECONDS = 0.1


@check("fetch_json")
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(url)`` returns the parsed JSON body of a GET, awaited, session closed."""
    token = secrets.token_hex(4)
    data = await call_async("fetch_json", learner, f"{server.url}/get?token={token}")
    _expect_echo(data, token, "fetch_json(url)")
    if spy.left_open:
        raise Mistake(
            "session-left-open",
            "the session was still open after fetch_json returned.",
            "use `async with aiohttp.ClientSession() as session:`.",
        )
    return "returned the parsed JSON, and closed its session."


def _expect_echo(data: Any, token: str, call: str) -> None:
    if inspect.iscoroutine(data):
        data.close()  # never run: close it so Python does not warn about it later
        raise Mistake(
            "missing-await",
            f"{call} returned a coroutine object instead of data: an await is missing.",
            "`response.json()` is a coroutine function: `return await response.json()`.",
        )
    if isinstance(data, aiohttp.ClientResponse):
        raise Mistake(
            "returned-response",
            f"{call} returned the response object, not its body.",
            "read the body inside the `async with` block: `return await response.json()`.",
        )
    if isinstance(data, (str, bytes)):
        raise Mistake(
            "returned-text",
            f"{call} returned {type(data).__name__}; expected the parsed JSON (a dict).",
            "use `await response.json()` rather than `.text()` or `.read()`.",
        )
    if not isinstance(data, dict) or data.get("args", {}).get("token") != token:
        raise Mistake(
            "wrong-data",
            f"{call} returned {data!r:.80}, not the JSON the server sent for that URL.",
            "request exactly the URL you were given, and return `await response.json()`.",
        )


@check("fetch_both")
async def fetch_both(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_both(url_a, url_b)`` fetches two slow URLs at the same time, results in order."""
    tokens = (secrets.token_hex(4), secrets.token_hex(4))
    urls = [f"{server.url}/delay/{SLOW_SECONDS}?token={token}" for token in tokens]
    result = await call_async("fetch_both", learner, *urls)
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise Mistake(
            "wrong-shape",
            f"fetch_both returned {result!r:.80}; expected two results, (a, b).",
            "`return await asyncio.gather(fetch_json(url_a), fetch_json(url_b))` gives both.",
        )
    if any(inspect.iscoroutine(data) for data in result):
        for data in result:
            if inspect.iscoroutine(data):
                data.close()  # never run: close it so Python does not warn about it later
        raise Mistake(
            "missing-await",
            "fetch_both returned coroutine objects instead of data: an await is missing.",
            "`await asyncio.gather(fetch_json(url_a), fetch_json(url_b))` runs both and "
            "returns their results.",
        )
    for data, token, name in zip(result, tokens, ("url_a", "url_b"), strict=True):
        if isinstance(data, dict) and data.get("args", {}).get("token") in tokens:
            if data["args"]["token"] != token:
                raise Mistake(
                    "wrong-order",
                    "the two results came back swapped.",
                    "asyncio.gather returns results in the order of its arguments.",
                )
        _expect_echo(data, token, f"fetch_both's result for {name}")
    if server.stats().max_in_flight < 2:
        raise Mistake(
            "sequential",
            "the server received the second request only after answering the first.",
            "awaiting one call, then the other, runs them one after another: start both "
            "with `asyncio.gather(...)` and await that once.",
        )
    return "both slow requests were in flight at the same time, results in order."


@check("pause")
async def pause(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``pause(seconds)`` waits that long while letting other tasks run."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(TICK_SECONDS)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    try:
        await call_async("pause", learner, SLOW_SECONDS)
    finally:
        ended = time.perf_counter()
        ticking.cancel()
    waited = ended - started
    longest_gap = max(later - earlier for earlier, later in itertools.pairwise([*ticks, ended]))
    if longest_gap >= BLOCKED_GAP_SECONDS:
        raise Mistake(
            "blocked-loop",
            f"while pause({SLOW_SECONDS}) ran, no other task could run: it blocked the loop.",
            "`time.sleep()` holds the whole thread; `await asyncio.sleep(seconds)` lets "
            "other tasks run while it waits.",
        )
    if waited < SLOW_SECONDS * 0.9:
        raise Mistake(
            "did-not-wait",
            f"pause({SLOW_SECONDS}) returned almost at once.",
            "calling `asyncio.sleep(seconds)` without `await` creates a coroutine and never "
            "runs it: write `await asyncio.sleep(seconds)`.",
        )
    return "waited the full time while other tasks kept running."
