"""Checks for exercise 00, asyncio in Jupyter.

In the notebook: ``from local_server.checks import asyncio_basics as check``.

Each task's rules are declared in a table (``FETCH_JSON``, ``FETCH_BOTH``, ``PAUSE``) and
observed on several seeded scenarios: different URLs and durations, a body sent in pieces,
reversed delays so completion order is not argument order, and a request that fails, so the
session must be closed on the error path too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from ..serving import refused_url, serve
from . import observe
from .evidence import exception_text, learner_line
from .harness import SessionSpy, call_async, check
from .rules import Rule, Task

SEED = 0
# A body sent in pieces, this far apart: read before the session closes, or lose it.
PIECE_GAP_SECONDS = 0.05

FETCH_JSON = Task(
    "fetch_json",
    Rule(
        "returned-response",
        "returns the response body parsed as JSON",
        "the type of what fetch_json returned",
        "read the body inside the `async with` block: `return await response.json()`.",
    ),
    Rule(
        "returned-text",
        "returns the response body parsed as JSON (a `dict`)",
        "the type of what fetch_json returned",
        "use `await response.json()` rather than `.text()` or `.read()`.",
    ),
    Rule(
        "wrong-data",
        "a GET request to `url`",
        "the JSON returned is compared with what the server answered for that URL, on "
        "three URLs; the server reports the method it received",
        "send `session.get(url)` to exactly the URL you were given, and return its JSON.",
    ),
    Rule(
        "read-after-close",
        "read the body while the session is open",
        "a body sent in pieces: reading it after the session closed fails at the learner's "
        "line with 'Connection closed'",
        "return the JSON from inside both `async with` blocks: once the session is closed, "
        "the rest of the body can no longer arrive.",
    ),
    Rule(
        "session-left-open",
        "Open a session with `async with` so it is closed when you are done",
        "sessions created and still open after fetch_json returned",
        "use `async with aiohttp.ClientSession() as session:`.",
    ),
    Rule(
        "session-left-open-on-error",
        "so it is closed when you are done (also when the request fails)",
        "a URL whose port refuses connections: the session must be closed after the error",
        "`async with aiohttp.ClientSession() as session:` closes the session however the "
        "block ends; a `close()` after the request is skipped when the request raises.",
    ),
    Rule(
        "error-swallowed",
        "a failed request raises (the task asks for the JSON, not a default)",
        "a URL whose port refuses connections: fetch_json must raise, not return",
        "let the exception propagate: the caller cannot tell a default from real data.",
    ),
)


def _probe_app(pieces: list[bytes]) -> web.Application:
    """An app whose ``/piece`` answers a JSON body in ``pieces``, PIECE_GAP_SECONDS apart."""

    async def piecewise(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = sum(len(piece) for piece in pieces)
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(PIECE_GAP_SECONDS)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/piece", piecewise)
    return app


@check(FETCH_JSON)
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(url)`` returns the parsed JSON body of a GET, awaited, session closed."""
    rng = random.Random(f"{SEED}-fetch_json")
    for _ in range(2):
        token = f"{rng.getrandbits(32):08x}"
        data = await call_async("fetch_json", learner, f"{server.url}/get?token={token}")
        _expect_echo(data, token, "fetch_json(url)")
    _expect_closed(spy, "session-left-open", "after fetch_json returned")
    document = {"café": "naïve ☕", "n": rng.randrange(10**6), "list": list(range(50))}
    encoded = json.dumps(document).encode()
    cut = len(encoded) // 2
    async with serve(_probe_app([encoded[:cut], encoded[cut:]])) as url:
        try:
            data = await call_async("fetch_json", learner, f"{url}/piece")
        except (aiohttp.ClientError, RuntimeError) as exc:  # aiohttp: "Connection closed."
            raise FETCH_JSON.broken(
                "read-after-close",
                f"a JSON body sent in two pieces failed with {exception_text(exc)} at "
                f"{learner_line(exc) or 'your code'}: it was read after the session closed.",
            ) from None
    if data != document:
        raise FETCH_JSON.broken(
            "wrong-data", f"for a body sent in two pieces, fetch_json returned {data!r:.80}."
        )
    await _expect_failure_closes_the_session(learner, spy)
    return (
        "returned the parsed JSON for three URLs (one sent in pieces), closed its session, "
        "and let a refused connection raise with the session closed."
    )


async def _expect_failure_closes_the_session(learner: Any, spy: SessionSpy) -> None:
    before = spy.created
    try:
        returned = await call_async("fetch_json", learner, refused_url("/get"))
    except aiohttp.ClientError:
        pass
    else:
        raise FETCH_JSON.broken(
            "error-swallowed",
            f"for a URL whose port refuses connections, fetch_json returned {returned!r:.60} "
            "instead of raising.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise FETCH_JSON.broken(
            "session-left-open-on-error",
            "when the request failed (connection refused), the session stayed open.",
        )


def _expect_closed(spy: SessionSpy, problem: str, when: str) -> None:
    if spy.left_open:
        raise FETCH_JSON.broken(problem, f"the session was still open {when}.")


def _expect_echo(data: Any, token: str, call: str, table: Task = FETCH_JSON) -> None:
    if inspect.iscoroutine(data):
        data.close()  # never run: close it so Python does not warn about it later
        raise table.broken(
            "missing-await",
            f"{call} returned a coroutine object instead of data: an await is missing.",
            "`response.json()` is a coroutine function: `return await response.json()`.",
        )
    if isinstance(data, aiohttp.ClientResponse):
        raise table.broken("returned-response", f"{call} returned the response object.")
    if isinstance(data, (str, bytes)):
        raise table.broken(
            "returned-text", f"{call} returned {type(data).__name__}, not the parsed JSON."
        )
    if not isinstance(data, dict) or data.get("args", {}).get("token") != token:
        raise table.broken(
            "wrong-data", f"{call} returned {data!r:.80}, not the JSON of that URL."
        )


FETCH_BOTH = Task(
    "fetch_both",
    Rule(
        "wrong-shape",
        "returns `(data_a, data_b)`",
        "what fetch_both returned: two results, a tuple or a list",
        "`return await asyncio.gather(fetch_json(url_a), fetch_json(url_b))` gives both.",
    ),
    Rule(
        "returned-response",
        "the JSON of both URLs",
        "the type of each result",
        "return the parsed JSON of each URL, read with `await response.json()`.",
    ),
    Rule(
        "returned-text",
        "the JSON of both URLs",
        "the type of each result",
        "return the parsed JSON of each URL, not its text.",
    ),
    Rule(
        "wrong-data",
        "the JSON of both URLs",
        "each result is compared with what the server answered for that URL",
        "fetch `url_a` for the first result and `url_b` for the second.",
    ),
    Rule(
        "wrong-order",
        "in that order",
        "nine pairs of URLs, the first of each pair answered last, so completion order is "
        "never argument order",
        "`asyncio.gather` returns results in the order of its arguments; `as_completed` "
        "and `asyncio.wait`'s sets do not.",
    ),
    Rule(
        "sequential",
        "fetched **at the same time**",
        "the server's count of requests in flight at once",
        "awaiting one call, then the other, runs them one after another: start both with "
        "`asyncio.gather(...)` and await that once.",
    ),
)
# The slow pair shows the overlap; the quick pairs, reversed, catch an order left to luck.
SLOW_PAIR = (0.2, 0.05)
QUICK_PAIRS = 8


@check(FETCH_BOTH)
async def fetch_both(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_both(url_a, url_b)`` fetches two slow URLs at the same time, results in order."""
    rng = random.Random(f"{SEED}-fetch_both")
    pairs = [SLOW_PAIR] + [(0.03, 0.0)] * QUICK_PAIRS
    for index, delays in enumerate(pairs):
        tokens = (f"a{rng.getrandbits(24):06x}", f"b{rng.getrandbits(24):06x}")
        urls = [f"{server.url}/delay/{d}?token={t}" for d, t in zip(delays, tokens, strict=True)]
        server.reset_stats()
        # Tasks made here shift where the learner's tasks are allocated, so an order taken
        # from a set (`asyncio.wait`'s done set) changes from pair to pair, as it can anywhere.
        ballast = [asyncio.ensure_future(asyncio.sleep(0)) for _ in range(rng.randrange(1, 40))]
        result = await call_async("fetch_both", learner, *urls)
        await asyncio.gather(*ballast)
        _judge_pair(result, tokens)
        if index == 0 and server.stats().max_in_flight < 2:
            raise FETCH_BOTH.broken(
                "sequential",
                "the server received the second request only after answering the first.",
            )
    return (
        f"{len(pairs)} pairs of URLs, each pair in flight at the same time, and every result "
        "in argument order, though the first URL always answered last."
    )


def _judge_pair(result: Any, tokens: tuple[str, str]) -> None:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise FETCH_BOTH.broken(
            "missing-await",
            f"fetch_both returned {type(result).__name__} instead of data: an await is missing.",
            "`return await asyncio.gather(...)`: gather returns an awaitable to wait on.",
        )
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise FETCH_BOTH.broken(
            "wrong-shape", f"fetch_both returned {result!r:.80}; expected two results."
        )
    seen = [
        data.get("args", {}).get("token") if isinstance(data, dict) else None for data in result
    ]
    if seen == [tokens[1], tokens[0]]:
        raise FETCH_BOTH.broken(
            "wrong-order",
            "the results came back swapped: url_b's JSON first. url_a answered last, so the "
            "results are in the order the requests finished.",
        )
    names = ("url_a", "url_b")
    for index, (data, token) in enumerate(zip(result, tokens, strict=True)):
        if inspect.iscoroutine(data):
            data.close()
        if seen[index] == tokens[1 - index]:
            raise FETCH_BOTH.broken(
                "wrong-data",
                f"fetch_both's result for {names[index]} is the JSON of {names[1 - index]}.",
            )
        _expect_echo(data, token, f"fetch_both's result for {names[index]}", FETCH_BOTH)


PAUSE = Task(
    "pause",
    Rule(
        "did-not-wait",
        "returns after `seconds` seconds",
        "how long the call took, and the asyncio.sleep it asked for (none)",
        "await something that takes `seconds`: `await asyncio.sleep(seconds)`.",
    ),
    Rule(
        "wrong-duration",
        "returns after `seconds` seconds",
        "three durations; the delay each call asked asyncio.sleep for is compared with "
        "`seconds`, so a loaded machine cannot make a verdict",
        "sleep for exactly `seconds`: not a constant, not milliseconds, not rounded.",
    ),
    Rule(
        "blocked-loop",
        "lets every other task keep running meanwhile",
        "a ticking task beside pause: the loop's longest stall while pause ran, counted "
        "only when the loop's thread spent it on the CPU (a loaded machine cannot make it), "
        "and any time.sleep or thread wait on the loop's thread",
        "`time.sleep()`, a busy loop or a thread's `wait()` hold the whole thread: "
        "`await asyncio.sleep(seconds)` lets other tasks run while it waits.",
    ),
)
DURATIONS = (0.23, 0.07, 0.15)
# A stall counts only if the loop's thread spent at least this share of the pause on the CPU.
BUSY_SHARE = 0.25
# Outside the sleeps the code asked for, its wall time may exceed `seconds` by this much.
LATE_SECONDS = 0.5


@check(PAUSE)
async def pause(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``pause(seconds)`` waits that long while letting other tasks run."""
    obs = observe.current()
    for seconds in DURATIONS:
        obs.max_lag = 0.0
        with obs.window() as window:
            started, cpu = time.perf_counter(), time.thread_time()
            await call_async("pause", learner, seconds)
            waited, busy = time.perf_counter() - started, time.thread_time() - cpu
        _judge_pause(seconds, waited, window, obs.lag() if busy >= BUSY_SHARE * seconds else 0.0)
    return (
        f"pause({', '.join(map(str, DURATIONS))}) each waited its full time, asked asyncio "
        "for exactly that, and other tasks kept running."
    )


def _judge_pause(seconds: float, waited: float, window: observe.Window, lag: float) -> None:
    if lag >= 0.6 * seconds:
        stalled = [stall.where for stall in window.stalls if stall.where is not None]
        where = f" at {stalled[0]}" if stalled else ""
        raise PAUSE.broken(
            "blocked-loop",
            f"while pause({seconds}) ran, no other task ran for {lag:.2f} s{where}: it held "
            "the loop.",
        )
    asked = sum(sleep.delay for sleep in window.sleeps)
    if asked > seconds * 1.02 + 0.01:
        raise PAUSE.broken(
            "wrong-duration",
            f"pause({seconds}) asked asyncio.sleep for {asked:.4g} s in all, not {seconds} s.",
        )
    if waited < 0.95 * seconds:
        if window.sleeps:
            raise PAUSE.broken(
                "wrong-duration",
                f"pause({seconds}) asked asyncio.sleep for {asked:.4g} s and returned after "
                f"{waited:.3f} s.",
            )
        raise PAUSE.broken(
            "did-not-wait",
            f"pause({seconds}) returned after {waited:.3f} s without asking asyncio to sleep "
            "at all (a sleep of 0 s, from `int(seconds)`? work started but not awaited?).",
        )
    if not window.sleeps and waited > seconds + LATE_SECONDS:
        raise PAUSE.broken("wrong-duration", f"pause({seconds}) took {waited:.2f} s.")
