"""Checks for exercise 18, rate limits and tracing.

In the notebook: ``from local_server.checks import rate_limits_tracing as check``.

- ``fetch_all`` runs against the course server's ``/ratelimit/{key}`` endpoint, which the check
  sets to accept everything (``rate=1000``): two calls at once with different limits, and one
  with a URL that fails mid-job. The rate the code kept is judged from the arrival times in
  the server's log, confirmed by the start times a ``TraceConfig`` on the check's session saw
  (a loaded machine only makes a client slower, and delays that bunch requests up on the
  server's side do not show on the client's). Which mistake made a burst is told from effects:
  the limiter objects made during the call (``AsyncLimiter`` and the learner's own classes),
  the sleeps the tasks asked for (``observe``), the requests in flight.
- ``fetch_politely`` runs against keys with ``pause=1``: a burst, then 429 with
  ``Retry-After: 1`` and a one-second pause, two calls at once and one with a URL that fails.
  The check's ``TraceConfig`` records each request's task, start, status and ``Retry-After``;
  a request sent during a pause the code had been told about is attributed to the refused task
  (``Retry-After`` ignored) or to another task (a pause per task); how the tasks came back is
  judged from the moments their ``asyncio.sleep`` calls asked to wake at.
- ``fetch_with_phases`` runs against two servers of the check's own, on its own loop: it
  resolves names ending in ``.test`` itself (slowly for some), slows the TCP connect to one
  port, and serves a slow first byte and a slow body, each by a seeded amount. A
  ``TraceConfig`` of the check's, added to every session the code makes, records the same
  signals: the learner's figures are compared with those, request by request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import json
import math
import random
import socket
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiolimiter
from aiohttp import web
from yarl import URL

from ..runner import LocalServer
from ..serving import refused_url, serve
from . import observe
from .evidence import clip, exception_text, is_learner_file, learner_line
from .harness import Mistake, SessionSpy, call_async, check, plural
from .rules import Rule, Task

SEED = 0
# Seconds a request may arrive early or late by the server's clock (the first one opens a
# connection, later ones reuse theirs); and how many requests over the limit are forgiven.
LATENCY_SLACK = 0.05
TOLERATED_EXTRA = 1.0
# A stretch of time this short, holding too many requests, is a burst.
BURST_WINDOW = 0.1

_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("rate_check_call", default=None)


# --- what one call of the learner's code did -------------------------------------------------


@dataclass
class Sent:
    """One request the learner's code made, as the check's TraceConfig saw it."""

    url: str
    task: asyncio.Task[Any] | None
    start: float
    end: float | None = None
    status: int | None = None
    retry_after: float | None = None
    error: BaseException | None = None


@dataclass
class Call:
    """One call of the learner's function in one scenario, and what was seen during it."""

    name: str
    urls: list[str]
    options: dict[str, Any]
    key: str = ""
    sent: list[Sent] = field(default_factory=list)
    sleeps: list[tuple[float, float, asyncio.Task[Any] | None]] = field(default_factory=list)
    limiters: dict[str, int] = field(default_factory=dict)
    result: Any = None
    error: BaseException | None = None
    finished_at: float | None = None
    finished: bool = False
    # Set when the call's own sleeps show it will run far longer than it may: stop waiting.
    overrun: asyncio.Event = field(default_factory=asyncio.Event)
    # How late the loop ran a task that was due while the calls ran (its 90th percentile):
    # the slack a loaded machine adds between an answer and the start it lets go.
    lateness: float = 0.0
    log: dict[str, Any] = field(default_factory=dict)
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def starts(self) -> list[float]:
        return sorted(s.start for s in self.sent)

    def most_in_flight(self) -> int:
        """The most requests between their start and their response's headers at once."""
        intervals = [(s.start, s.end if s.end is not None else math.inf) for s in self.sent]
        events = sorted(e for a, b in intervals for e in ((a, 1), (b, -1)))
        return max(itertools.accumulate(step for _, step in events), default=0)


def _recording(call: Call) -> aiohttp.TraceConfig:
    """A TraceConfig that records every request of ``call``: task, start, end, status."""
    config = aiohttp.TraceConfig()

    async def started(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        ctx.sent = Sent(str(params.url), asyncio.current_task(), asyncio.get_running_loop().time())
        call.sent.append(ctx.sent)

    async def ended(session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        sent = getattr(ctx, "sent", None)
        if sent is None:
            return
        sent.end = asyncio.get_running_loop().time()
        sent.status = params.response.status
        sent.retry_after = _seconds(params.response.headers.get("Retry-After"))

    async def failed(session: Any, ctx: Any, params: aiohttp.TraceRequestExceptionParams) -> None:
        sent = getattr(ctx, "sent", None)
        if sent is not None and sent.end is None:
            sent.end = asyncio.get_running_loop().time()
            sent.error = params.exception

    config.on_request_start.append(started)
    config.on_request_end.append(ended)
    config.on_request_exception.append(failed)
    return config


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _note_sleep(sleep: observe.Sleep) -> None:
    call = _CALL.get()
    if call is None:
        return
    wake = sleep.at + sleep.delay
    call.sleeps.append((sleep.at, wake, sleep.task))
    jitter = call.options.get("jitter")
    refusals = [s for s in call.sent if s.status == 429 and s.end is not None]
    if jitter is not None and refusals:
        until = max((s.end or 0.0) + (s.retry_after or 1.0) for s in refusals)
        if wake > until + jitter + 1.0:
            call.overrun.set()  # asked to sleep far past the pause: judge now


@contextlib.contextmanager
def _listening() -> Iterator[None]:
    obs = observe.current()
    obs.on_sleep.append(_note_sleep)
    try:
        yield
    finally:
        obs.on_sleep.remove(_note_sleep)


# --- limiter objects made during a call ---------------------------------------------------------


def _limiter_classes(learner: Any) -> list[type]:
    """aiolimiter's AsyncLimiter, and the learner's own classes that look like limiters.

    A class of the learner's (defined in a notebook cell or a script of theirs) with an async
    method or ``__aenter__``, found among the names the learner's function can see.
    """
    found: list[type] = [aiolimiter.AsyncLimiter]
    names = dict(getattr(learner, "__globals__", {}))
    closure = getattr(learner, "__closure__", None) or ()
    for cell in closure:
        with contextlib.suppress(ValueError):
            names[f"<closure {len(names)}>"] = cell.cell_contents
    for value in names.values():
        if not isinstance(value, type) or value in found:
            continue
        functions = [f for f in vars(value).values() if inspect.isfunction(f)]
        if not any(is_learner_file(f.__code__.co_filename) for f in functions):
            continue  # not a class of the learner's (or one without methods)
        if any(inspect.iscoroutinefunction(f) for f in functions) or "__aenter__" in vars(value):
            found.append(value)
    return found


@contextlib.contextmanager
def _counting_limiters(classes: list[type]) -> Iterator[None]:
    """Count, per call, the objects of ``classes`` made on this thread while the block runs."""
    thread = threading.get_ident()
    saved: list[tuple[type, Any]] = []
    for cls in classes:
        original = cls.__dict__.get("__init__")
        base_init = cls.__init__

        def counting_init(self: Any, *args: Any, _base: Any = base_init, _cls: type = cls,
                          **kwargs: Any) -> None:  # fmt: skip
            _base(self, *args, **kwargs)
            call = _CALL.get()
            if call is not None and threading.get_ident() == thread and type(self) is _cls:
                call.limiters[_cls.__name__] = call.limiters.get(_cls.__name__, 0) + 1

        try:
            cls.__init__ = counting_init  # type: ignore[misc]
        except (TypeError, AttributeError):
            continue
        saved.append((cls, original))
    try:
        yield
    finally:
        for cls, original in saved:
            if original is None:
                with contextlib.suppress(AttributeError, TypeError):
                    del cls.__init__  # type: ignore[misc]
            else:
                cls.__init__ = original  # type: ignore[misc]


# --- running calls ----------------------------------------------------------------------------


async def _run_calls(
    task: str,
    learner: Any,
    calls: list[Call],
    make_args: Callable[[Call], tuple[Any, ...]],
    patience: float,
    *,
    partial: bool = False,
) -> bool:
    """Run every call at once, each in its own context; leave no learner task behind.

    Returns whether some call was still running after ``patience`` seconds (with ``partial``;
    otherwise that is the timeout Mistake): the check then judges what it saw so far.
    """
    loop = asyncio.get_running_loop()
    late: list[float] = []
    probe = asyncio.ensure_future(_measure_lateness(late))
    before = asyncio.all_tasks(loop)

    async def one(call: Call) -> None:
        _CALL.set(call)
        fn = functools.partial(learner, **call.options)
        try:
            call.result = await call_async(task, fn, *make_args(call))
        except (NotImplementedError, Mistake):
            raise
        except Exception as exc:
            call.error = exc
        call.finished = True
        call.finished_at = loop.time()

    runners = [asyncio.ensure_future(one(call)) for call in calls]
    overruns = [asyncio.ensure_future(call.overrun.wait()) for call in calls]
    try:
        everything = asyncio.ensure_future(asyncio.wait(runners))
        await asyncio.wait([everything, *overruns], timeout=patience, return_when="FIRST_COMPLETED")
        everything.cancel()
        done = {runner for runner in runners if runner.done()}
        pending = set(runners) - done
        for runner in done:
            error = runner.exception()
            if isinstance(error, (NotImplementedError, Mistake)):
                raise error
        if pending and not partial:
            raise _timed_out(task, patience)
        if not pending:
            await asyncio.sleep(0.3)  # time for a task left running to show itself
        return bool(pending)
    finally:
        probe.cancel()
        lateness = statistics.quantiles(late, n=10)[-1] if len(late) >= 10 else 0.0
        for call in calls:
            call.lateness = lateness
        for waiter in overruns:
            waiter.cancel()
        for runner in runners:
            runner.cancel()
        leftovers = [t for t in asyncio.all_tasks(loop) - before if t is not asyncio.current_task()]
        for leftover in leftovers:
            leftover.cancel()
        await asyncio.wait([probe, *runners, *overruns, *leftovers], timeout=2.0)
        for leftover in leftovers:
            if leftover.done() and not leftover.cancelled():
                leftover.exception()  # retrieved: a leftover's error is not the verdict's


async def _measure_lateness(late: list[float], every: float = 0.005) -> None:
    """Append, every ``every`` seconds, how much later than asked the loop woke this task."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + every
        await asyncio.sleep(every)
        late.append(max(0.0, loop.time() - asked))


def _timed_out(task: str, patience: float) -> Mistake:
    return Mistake(
        "timeout",
        f"{task} was still running {patience:g} s after it was called, so the check stopped it.",
        "a loop that never ends (a 429 retried forever?), or an await on something that never "
        "happens: every URL must get an answer.",
    )


async def _reset(session: aiohttp.ClientSession, server: LocalServer, key: str,
                 **policy: Any) -> None:  # fmt: skip
    async with session.post(f"{server.url}/ratelimit/{key}/reset", params=policy) as response:
        response.raise_for_status()


async def _log(session: aiohttp.ClientSession, server: LocalServer, key: str) -> dict[str, Any]:
    async with session.get(f"{server.url}/ratelimit/{key}/log") as response:
        return await response.json()


def _path(url: str) -> str:
    return str(URL(url).relative())


def _expect_results(table: Task, call: Call, what: str) -> None:
    """The call returned one JSON body per URL, in order (each names the path it answered)."""
    name = table.name
    result = call.result
    if inspect.iscoroutine(result):
        result.close()
        raise table.broken("wrong-result", f"{name} returned a coroutine: an `await` is missing.")
    if not isinstance(result, (list, tuple)):
        raise table.broken(
            "wrong-result",
            f"{what}, {name} returned {type(result).__name__} {clip(repr(result), 60)}; expected "
            f"a list of {len(call.urls)} JSON bodies.",
        )
    if len(result) != len(call.urls):
        raise table.broken(
            "wrong-result",
            f"{what}, {name} returned {len(result)} results for {len(call.urls)} URLs.",
        )
    for index, (url, body) in enumerate(zip(call.urls, result, strict=True)):
        if isinstance(body, dict) and body.get("url") == _path(url):
            continue
        if isinstance(body, dict) and any(
            isinstance(other, dict) and other.get("url") == _path(url) for other in result
        ):
            raise table.broken(
                "wrong-result",
                f"{what}, result {index} is the answer to another URL: return the bodies in the "
                "order of `urls` (gather keeps it; a list filled as answers come does not).",
            )
        if isinstance(body, BaseException):
            got = f"an exception, {exception_text(body)}"
        elif isinstance(body, aiohttp.ClientResponse):
            got = "the response object"
        else:
            got = clip(repr(body), 80)
        raise table.broken(
            "wrong-result", f"{what}, result {index} (for {_path(url)}) was {got}."
        )


def _own_sessions(table: Task, spy: SessionSpy, mine: int) -> None:
    made = spy.created - mine
    if made:
        raise table.broken(
            "own-session",
            f"{table.name} created {plural(made, 'ClientSession')} of its own instead of using "
            "the `session` it was given.",
        )


# --- task 1: fetch_all -------------------------------------------------------------------------

FETCH_ALL = Task(
    "fetch_all",
    Rule(
        "own-session",
        "GET every URL with the `session` you are given",
        "sessions created while it ran",
        "send every request with the `session` argument: it is the caller's (the check's "
        "records what is sent).",
    ),
    Rule(
        "wrong-result",
        "return the JSON bodies in the order of `urls`",
        "the path each returned body says it answered, compared with its URL",
        "return `await response.json()` for each URL, in the order of `urls`: `gather` or a "
        "TaskGroup's tasks in creation order keep it.",
    ),
    Rule(
        "burst",
        "at most `burst + rate * T` requests over any stretch of T seconds: no more than "
        "`burst` at once",
        "the server's arrival times: the most requests in a stretch of 0.1 s or less, confirmed "
        "by the start times the check's TraceConfig saw",
        "a token bucket bounds the burst and the rate together: `AsyncLimiter(burst, burst / "
        "rate)` (its max_rate is its burst), or your own bucket holding at most `burst` tokens.",
    ),
    Rule(
        "too-fast",
        "at most `burst + rate * T` requests over any stretch of T seconds",
        "the server's arrival times over longer stretches, confirmed by the client's start "
        "times",
        "the limiter's rate is `rate` a second: `AsyncLimiter(burst, burst / rate)`, made from "
        "this call's `rate` and `burst`, and every request goes through it.",
    ),
    Rule(
        "semaphore-as-limiter",
        "keep to the limit with one limiter (a semaphore bounds how many, not how fast)",
        "too many requests a second, while the requests in flight stayed under a fixed bound "
        "and the code never waited for time to pass",
        "a semaphore lets the next request start as soon as one ends, so the rate follows the "
        "server's speed: use a rate limiter (`AsyncLimiter(burst, burst / rate)`).",
    ),
    Rule(
        "limiter-per-task",
        "one limiter, made inside `fetch_all` and shared by every task",
        "limiter objects made during the call (AsyncLimiter, your own classes), and sleeps "
        "several tasks asked to end at the same moment",
        "make ONE limiter before you start the tasks and use it in all of them: a fresh limiter "
        "is full, and a limit per task is no limit.",
    ),
    Rule(
        "not-concurrent",
        "still send them concurrently",
        "the most requests in flight at once, from the check's TraceConfig",
        "start every request as a task (`TaskGroup` or `gather`), each waiting for the limiter: "
        "the limiter paces their starts, and their answers overlap.",
    ),
    Rule(
        "error-swallowed",
        "if a request fails, raise its error (`response.raise_for_status()`)",
        "what came back from a call whose URLs include one that answers 500",
        "call `response.raise_for_status()` and let the error propagate: no "
        "`return_exceptions=True`, no try/except that returns something else.",
    ),
    Rule(
        "wrong-error",
        "raise its error",
        "the type and status of what it raised",
        "let the `aiohttp.ClientResponseError` from `raise_for_status()` propagate as it is.",
    ),
    Rule(
        "left-running",
        "leave nothing running: no request may start after `fetch_all` has returned or raised",
        "requests the check's TraceConfig saw start after the call had raised",
        "run the tasks in an `async with asyncio.TaskGroup()`: when one fails, it cancels the "
        "others before the error reaches your caller (plain `gather` leaves them running).",
    ),
)

ANSWER_SECONDS = 0.15
# (name, rate, burst, requests): run at the same time, each on its own key and session.
RATE_SCENARIOS = (("a", 10.0, 3, 14), ("b", 2.0, 1, 4))
MID_JOB = ("mid", 20.0, 2, 10, 4)  # name, rate, burst, requests, the index that fails


@check(FETCH_ALL, timeout=20)
async def fetch_all(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Two limits at once and a failure mid-job, judged from the server's arrival times."""
    calls: list[Call] = []
    async with contextlib.AsyncExitStack() as stack:
        helper = await stack.enter_async_context(aiohttp.ClientSession())
        for name, rate, burst, count in RATE_SCENARIOS:
            key = f"t1-{name}"
            await _reset(helper, server, key, rate=1000, burst=1000)
            base = f"{server.url}/ratelimit/{key}?delay={ANSWER_SECONDS}"
            urls = [f"{base}&i={i}" for i in range(count)]
            calls.append(Call(name, urls, {"rate": rate, "burst": burst}, key))
        name, rate, burst, count, failing = MID_JOB
        key = f"t1-{name}"
        await _reset(helper, server, key, rate=1000, burst=1000)
        urls = [f"{server.url}/ratelimit/{key}?delay={ANSWER_SECONDS}&i={i}" for i in range(count)]
        urls[failing] = f"{server.url}/fail/t1-mid/1?status=500"
        calls.append(Call(name, urls, {"rate": rate, "burst": burst}, key))
        sessions = {}
        for call in calls:
            timeout = aiohttp.ClientTimeout(total=15)
            sessions[call.name] = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=timeout, trace_configs=[_recording(call)])
            )
        mine = spy.created
        with _listening(), _counting_limiters(_limiter_classes(learner)):
            await _run_calls(
                "fetch_all", learner, calls, lambda call: (sessions[call.name], call.urls), 12.0
            )
        for call in calls:
            call.log = await _log(helper, server, call.key)
    _own_sessions(FETCH_ALL, spy, mine)
    by_name = {call.name: call for call in calls}
    for name, rate, burst, _count in RATE_SCENARIOS:
        call = by_name[name]
        what = f"with rate={rate:g}, burst={burst}"
        if call.error is not None:
            raise _raised(FETCH_ALL, call, what)
        _expect_results(FETCH_ALL, call, what)
        _judge_rate(call, rate, burst)
    _judge_concurrency(by_name["a"])
    _judge_mid_job(by_name["mid"])
    return (
        "two limits kept at once (10/s with bursts of 3, 2/s with bursts of 1), judged from "
        "the server's arrival times, with requests overlapping; a failure mid-job raised its "
        "500 and left nothing running."
    )


def _raised(table: Task, call: Call, what: str) -> Mistake:
    error = _unwrapped(call.error)
    assert error is not None
    where = learner_line(error)
    origin = f" ({where})" if where else ""
    if isinstance(error, aiohttp.ClientResponseError) and error.status == 429 and (
        "gave-up" in table.rules
    ):
        return table.broken(
            "gave-up",
            f"{what}, {table.name} raised the server's 429 Too Many Requests{origin} instead of "
            "waiting and trying again.",
        )
    return Mistake(
        "raised",
        f"{what}, {table.name} raised {exception_text(error)}{origin}; every URL of this call "
        "answers 200.",
        "",
    )


def _excess(times: list[float], rate: float, burst: int, longest: float = math.inf
            ) -> tuple[float, int, int]:  # fmt: skip
    """The most requests over the limit in any stretch (no longer than ``longest``), and where."""
    worst = (-math.inf, 0, 0)
    for i in range(len(times)):
        for j in range(i, len(times)):
            span = times[j] - times[i]
            if span > longest:
                break
            over = j - i + 1 - (burst + rate * (span + LATENCY_SLACK))
            if over > worst[0]:
                worst = (over, i, j)
    return worst


def _judge_rate(call: Call, rate: float, burst: int) -> None:
    server = sorted(entry["t"] for entry in call.log.get("log", []))
    client = call.starts
    limit = f"with rate={rate:g}, burst={burst}"
    over_server, i, j = _excess(server, rate, burst)
    over_client, ci, cj = _excess(client, rate, burst)
    if over_server <= TOLERATED_EXTRA or over_client <= TOLERATED_EXTRA:
        return  # within the limit, or bunched up by the server's side only
    count, span = j - i + 1, server[j] - server[i]
    made = sum(call.limiters.values())
    if made > 1:
        kinds = ", ".join(f"{n} {name}" for name, n in call.limiters.items())
        raise FETCH_ALL.broken(
            "limiter-per-task",
            f"{limit}, {count} requests reached the server within {_ms(span)}, and the call made "
            f"{kinds} objects for {len(call.urls)} URLs: a limiter per task (or per request) "
            "limits nothing.",
        )
    together = _woke_together(call, client[ci], client[cj])
    if together >= 3:
        raise FETCH_ALL.broken(
            "limiter-per-task",
            f"{limit}, {together} tasks asked asyncio.sleep to wake them at the same moment, and "
            f"{count} requests reached the server within {_ms(span)}: each task paced itself, so "
            "together they went as fast as all of them at once.",
        )
    bound = call.most_in_flight()
    unpaced = made == 0 and not call.sleeps  # no limiter, no sleep: nothing waits for time
    paced_by_ends = _follows_ends(call) or (unpaced and _keeps_a_bound(call))
    if 1 <= bound < len(call.urls) and _rate_of(server) > 1.25 * rate and paced_by_ends:
        raise FETCH_ALL.broken(
            "semaphore-as-limiter",
            f"{limit}, your requests arrived at {_rate_of(server):.0f} a second, with never more "
            f"than {bound} in flight and no wait for time: a semaphore bounds how many run at "
            "once, and the rate then follows the server's speed (answers took 0.15 s).",
        )
    short, k, m = _excess(server, rate, burst, BURST_WINDOW)
    elsewhere = " (no limiter of its own: one made for another call, with that call's limit?)"
    hint_more = elsewhere if made == 0 and not call.sleeps else ""
    if short > TOLERATED_EXTRA:
        count, span = m - k + 1, server[m] - server[k]
        average = _rate_of(server)
        kept = (
            f"; over the whole call you kept {average:.1f} a second, under the limit"
            if average <= 1.2 * rate
            else ""
        )
        raise FETCH_ALL.broken(
            "burst",
            f"{limit}, {count} requests reached the server within {_ms(span)} (at "
            f"{server[k]:.2f} s): the limit allows {burst + rate * span:.1f}{kept}{hint_more}.",
        )
    raise FETCH_ALL.broken(
        "too-fast",
        f"{limit}, {count} requests reached the server in {span:.2f} s (from {server[i]:.2f} s): "
        f"the limit allows {burst + rate * span:.1f}, about {_rate_of(server):.1f} a second "
        f"against {rate:g}{hint_more}.",
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _rate_of(times: list[float]) -> float:
    """Requests a second from the first arrival to the last."""
    if len(times) < 2 or times[-1] <= times[0]:
        return math.inf
    return (len(times) - 1) / (times[-1] - times[0])


def _keeps_a_bound(call: Call) -> bool:
    """Most starts (after the first few) filled the one slot an answer had just freed: the
    requests in flight went back to the same bound each time. Counted in order, not in time,
    so the late wake-ups of a loaded machine do not hide a semaphore."""
    bound = call.most_in_flight()
    events = sorted(
        [(s.start, 1) for s in call.sent] + [(s.end, -1) for s in call.sent if s.end is not None]
    )
    level = starts = at_bound = 0
    for _, step in events:  # at equal times an end comes first: its slot is the one refilled
        level += step
        if step == 1:
            starts += 1
            at_bound += starts > bound and level == bound
    later = starts - bound
    return later >= 3 and at_bound >= 0.6 * later


def _follows_ends(call: Call) -> bool:
    """Most requests (after the first few) started just as another one's answer came.

    That is how a semaphore paces: a slot frees, the next request goes. A rate limiter's
    starts keep to the clock instead, whatever the answers do.
    """
    ends = sorted(s.end for s in call.sent if s.end is not None)
    starts = sorted(s.start for s in call.sent)[call.most_in_flight():]
    if len(starts) < 3:
        return False
    slack = 0.01 + min(call.lateness, 0.03)  # a limiter's starts keep 50 ms from the answers
    coupled = sum(any(0 <= start - end <= slack for end in ends) for start in starts)
    return coupled >= 0.8 * len(starts)


def _woke_together(call: Call, first: float, last: float) -> int:
    """The most tasks that asked asyncio.sleep to wake them together, in [first, last]: sleeps
    that end within 2 ms of each other, or the same delay asked within 20 ms (a loaded machine
    spreads the moments at which a batch of tasks reaches its sleep). A task starts its request
    when its sleep ends, or later on a loaded machine: up to 100 ms later is counted."""
    asked = sorted(
        (end, end - at, at, id(task)) for at, end, task in call.sleeps
        if end - at > 0.001 and first - 0.1 <= end <= last + 0.005
    )  # fmt: skip
    best = 0
    for index, (end, delay, at, _) in enumerate(asked):
        tasks = {
            task for other_end, other_delay, other_at, task in asked[index:]
            if other_end - end <= 0.002
            or (abs(other_delay - delay) < 1e-4 and abs(other_at - at) <= 0.02)
        }  # fmt: skip
        best = max(best, len(tasks))
    return best


def _judge_concurrency(call: Call) -> None:
    if call.most_in_flight() <= 1:
        raise FETCH_ALL.broken(
            "not-concurrent",
            f"with rate={call.options['rate']:g}, burst={call.options['burst']}, your requests "
            "went one at a time: each started after the answer before it had come (0.15 s), so "
            f"the call took {call.finished_at - min(call.starts):.1f} s where the limit allowed "
            f"{(len(call.urls) - call.options['burst']) / call.options['rate'] + 0.15:.1f}.",
        )


def _unwrapped(error: BaseException | None) -> BaseException | None:
    """The error itself, or the one error an ExceptionGroup (a TaskGroup's) carries."""
    while isinstance(error, BaseExceptionGroup):
        leaves = [e for e in error.exceptions if not isinstance(e, asyncio.CancelledError)]
        if len(leaves) != 1:
            break
        error = leaves[0]
    return error


def _judge_mid_job(call: Call) -> None:
    failing = MID_JOB[4]
    what = f"when URL {failing} of {len(call.urls)} answers 500"
    error = _unwrapped(call.error)
    if error is None:
        raise FETCH_ALL.broken(
            "error-swallowed",
            f"{what}, fetch_all returned {clip(repr(call.result), 80)} instead of raising.",
        )
    if not isinstance(error, aiohttp.ClientResponseError) or error.status != 500:
        where = learner_line(error)
        raise FETCH_ALL.broken(
            "wrong-error",
            f"{what}, fetch_all raised {exception_text(error)}"
            + (f" ({where})" if where else "")
            + "; expected the aiohttp.ClientResponseError with status 500.",
        )
    late = [s for s in call.sent if call.finished_at is not None and s.start > call.finished_at]
    if late:
        raise FETCH_ALL.broken(
            "left-running",
            f"{what}, fetch_all raised, and then {plural(len(late), 'more request')} started "
            "anyway: the other tasks were left running.",
        )


# --- task 2: fetch_politely ---------------------------------------------------------------------

POLITELY = Task(
    "fetch_politely",
    Rule(
        "own-session",
        "GET every URL with the `session` you are given",
        "sessions created while it ran",
        "send every request with the `session` argument: it is the caller's.",
    ),
    Rule(
        "wrong-result",
        "return the JSON bodies in the order of `urls`",
        "the path each returned body says it answered, compared with its URL",
        "return `await response.json()` of each URL's successful answer, in the order of `urls`.",
    ),
    Rule(
        "gave-up",
        "the refused URL is tried again",
        "a 429 that reached the caller: raised, or returned as a result",
        "on a 429, wait for the pause, then send the same request again (a `while True` loop "
        "around the request); raise only for other error statuses.",
    ),
    Rule(
        "too-concurrent",
        "at most `concurrency` requests at a time",
        "the most requests in flight at once, from the check's TraceConfig",
        "`asyncio.Semaphore(concurrency)` around each request (or that many workers).",
    ),
    Rule(
        "not-concurrent",
        "at most `concurrency` requests at a time (use that many)",
        "the most requests in flight at once",
        "run the URLs as tasks with a `Semaphore(concurrency)`: one at a time is too slow.",
    ),
    Rule(
        "retry-after-ignored",
        "none of your tasks sends a request until `Retry-After` seconds have passed since your "
        "code read that answer",
        "requests the refused task itself sent before its Retry-After had passed",
        "read `Retry-After` (seconds) and wait that long before sending again: "
        "`paused_until = loop.time() + float(response.headers['Retry-After'])`.",
    ),
    Rule(
        "pause-not-shared",
        "every task pauses: one \"paused until\" moment shared by all the tasks, checked right "
        "before each request",
        "requests other tasks sent while a pause the code had read was still on",
        "keep ONE `paused_until` for all the tasks (a variable of fetch_politely), and wait for "
        "it right before each request, after the semaphore: a check made earlier goes stale.",
    ),
    Rule(
        "no-jitter",
        "when the pause is over, each task waits an extra `random.uniform(0, jitter)`",
        "the moments the tasks asked `asyncio.sleep` to wake them when a pause ended (or, with "
        "no sleep, when they sent): their spread",
        "add `random.uniform(0, jitter)` to each task's own wait: "
        "`await asyncio.sleep(paused_until - loop.time() + random.uniform(0, jitter))`.",
    ),
    Rule(
        "waited-too-long",
        "until `Retry-After` seconds have passed ... an extra `random.uniform(0, jitter)`",
        "wakes asked later than the pause's end plus `jitter`",
        "wait `Retry-After` seconds plus `random.uniform(0, jitter)`, no more: no doubling, no "
        "backoff on top.",
    ),
    Rule(
        "error-swallowed",
        "any other error status is raised (`response.raise_for_status()`)",
        "what came back from a call whose URLs include one that answers 500",
        "call `response.raise_for_status()` for any status other than 429, and let it "
        "propagate.",
    ),
)

# (name, rate, burst, delay, requests, concurrency, jitter): keys with pause=1.
POLITE_SCENARIOS = (
    # Slow answers: when the pause starts, one task's accepted request is still on its way,
    # and another task waits for the semaphore; both would send during the pause.
    ("a", 4.0, 4, 0.3, 9, 4, 0.3),
    # Quick answers: five tasks are refused together, and come back together unless jittered.
    ("b", 5.0, 5, 0.05, 10, 5, 0.5),
)
POLITE_FAILING = ("mid", 6, 2, 3)  # name, requests, concurrency, the index that fails
# A request this soon after a pause's end counts as coming back from it.
GRACE = 0.02
# A correct call takes about two seconds; after this, the check judges what it has seen.
POLITE_PATIENCE = 6.0


@check(POLITELY, timeout=20)
async def fetch_politely(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Two paused keys at once and a failure, judged from each task's requests and sleeps."""
    calls: list[Call] = []
    async with contextlib.AsyncExitStack() as stack:
        helper = await stack.enter_async_context(aiohttp.ClientSession())
        for name, rate, burst, delay, count, concurrency, jitter in POLITE_SCENARIOS:
            key = f"t2-{name}"
            await _reset(helper, server, key, rate=rate, burst=burst, pause=1)
            urls = [f"{server.url}/ratelimit/{key}?delay={delay}&i={i}" for i in range(count)]
            calls.append(Call(name, urls, {"concurrency": concurrency, "jitter": jitter}, key))
        name, count, concurrency, failing = POLITE_FAILING
        key = f"t2-{name}"
        await _reset(helper, server, key, rate=1000, burst=1000)
        urls = [f"{server.url}/ratelimit/{key}?delay=0.05&i={i}" for i in range(count)]
        urls[failing] = f"{server.url}/fail/t2-mid/1?status=500"
        calls.append(Call(name, urls, {"concurrency": concurrency, "jitter": 0.2}, key))
        sessions = {}
        for call in calls:
            sessions[call.name] = await stack.enter_async_context(
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=15), trace_configs=[_recording(call)]
                )
            )
        mine = spy.created
        saved = random.getstate()
        random.seed(f"{SEED}-fetch_politely")  # the learner's jitter: a verdict repeats
        try:
            with _listening():
                overtime = await _run_calls(
                    "fetch_politely", learner, calls, lambda c: (sessions[c.name], c.urls),
                    POLITE_PATIENCE, partial=True,
                )
        finally:
            random.setstate(saved)
        for call in calls:
            call.log = await _log(helper, server, call.key)
    _own_sessions(POLITELY, spy, mine)
    by_name = {call.name: call for call in calls}
    scenarios = [by_name[name] for name, *_rest in POLITE_SCENARIOS]
    for call in scenarios:
        _judge_concurrency_limit(call)
    for call in scenarios:
        _judge_gave_up(call)
    _judge_pauses(scenarios)
    for call in scenarios:
        _judge_resumption(call)
    if overtime:
        raise _timed_out("fetch_politely", POLITE_PATIENCE)
    for call in scenarios:
        _expect_results(POLITELY, call, _polite_what(call))
    _judge_polite_failure(by_name["mid"])
    return (
        "two calls at once met 429s: no request sent during a pause the code had read, by "
        "any task; the tasks came back jittered, no later than asked; concurrency kept to "
        "its bound; a 500 raised."
    )


def _judge_gave_up(call: Call) -> None:
    what = _polite_what(call)
    if call.error is not None:
        raise _raised(POLITELY, call, what)
    if isinstance(call.result, list) and any(
        isinstance(body, dict) and body.get("error") == "Too Many Requests"
        for body in call.result
    ):
        raise POLITELY.broken(
            "gave-up",
            f"{what}, fetch_politely returned the server's 429 error body as a result instead "
            "of trying again.",
        )


def _polite_what(call: Call) -> str:
    return (
        f"with concurrency={call.options['concurrency']}, jitter={call.options['jitter']:g}"
    )


def _judge_concurrency_limit(call: Call) -> None:
    most, allowed = call.most_in_flight(), call.options["concurrency"]
    what = _polite_what(call)
    if most > allowed:
        raise POLITELY.broken(
            "too-concurrent",
            f"{what}, {most} of your requests were in flight at once.",
        )
    if most < allowed and len(call.sent) >= allowed:
        raise POLITELY.broken(
            "not-concurrent",
            f"{what}, never more than {plural(most, 'request')} of yours were in flight at once.",
        )


def _refusals(call: Call) -> list[Sent]:
    return sorted(
        (s for s in call.sent if s.status == 429 and s.end is not None), key=lambda s: s.end or 0
    )


def _judge_pauses(calls: list[Call]) -> None:
    """Requests sent during a pause the code had read: by a refused task first, then others."""
    found = [(call, refusal, early) for call in calls for refusal, early in _early_sends(call)]
    for call, refusal, early in found:
        own = [s for s in early if s.task is refusal.task]
        if own:
            told = refusal.retry_after if refusal.retry_after is not None else 1.0
            origin = min(call.starts)
            raise POLITELY.broken(
                "retry-after-ignored",
                f"{_polite_what(call)}, a task was refused at {(refusal.end or 0) - origin:.2f} s "
                f"with `Retry-After: {told:g}`, and sent again "
                f"{own[0].start - (refusal.end or 0):.2f} s later.",
            )
    for call, refusal, early in found:
        told = refusal.retry_after if refusal.retry_after is not None else 1.0
        tasks = {id(s.task) for s in early}
        raise POLITELY.broken(
            "pause-not-shared",
            f"{_polite_what(call)}, after a 429 with `Retry-After: {told:g}` was read at "
            f"{(refusal.end or 0) - min(call.starts):.2f} s, {plural(len(tasks), 'other task')} "
            f"sent {plural(len(early), 'request')} before the pause was over (the server "
            "refused them all).",
        )


def _early_sends(call: Call) -> list[tuple[Sent, list[Sent]]]:
    """For each 429, the requests started after it was read and before its Retry-After passed.

    Strictly after the read: a task that checks the pause right before it sends cannot start a
    request between another task's reading a 429 and its setting the pause.
    """
    found = []
    for refusal in _refusals(call):
        told = refusal.retry_after if refusal.retry_after is not None else 1.0
        read, until = refusal.end or 0.0, (refusal.end or 0.0) + told
        early = [s for s in call.sent if read < s.start < until - 0.005]
        if early:
            found.append((refusal, early))
    return found


def _episodes(call: Call) -> list[tuple[float, list[Sent]]]:
    """Each pause: the moment it ends (the latest Retry-After read), and its refusals."""
    episodes: list[tuple[float, list[Sent]]] = []
    for refusal in _refusals(call):
        told = refusal.retry_after if refusal.retry_after is not None else 1.0
        ends = (refusal.end or 0.0) + told
        if episodes and (refusal.end or 0.0) < episodes[-1][0]:
            end, members = episodes[-1]
            episodes[-1] = (max(end, ends), [*members, refusal])
        else:
            episodes.append((ends, [refusal]))
    return episodes


def _judge_resumption(call: Call) -> None:
    what = _polite_what(call)
    jitter = call.options["jitter"]
    origin = min(call.starts, default=0.0)
    for end, members in _episodes(call):
        first_read = min(m.end or 0.0 for m in members)
        asked_late = [
            wake for at, wake, _task in call.sleeps
            if first_read <= at <= end and wake > end + jitter + 0.1
        ]  # fmt: skip
        if asked_late:
            raise POLITELY.broken(
                "waited-too-long",
                f"{what}, a pause ended at {end - origin:.2f} s, and a task asked to sleep until "
                f"{max(asked_late) - origin:.2f} s: more than `jitter` after the end.",
            )
        moments: dict[int, tuple[float, bool]] = {}
        for sent in sorted(call.sent, key=lambda s: s.start):
            if sent.start < end - GRACE or id(sent.task) in moments:
                continue
            asked = [
                wake for at, wake, task in call.sleeps
                if task is sent.task and at <= sent.start and wake >= end - 0.05
            ]  # fmt: skip
            moments[id(sent.task)] = (max(asked), True) if asked else (sent.start, False)
        if not moments:
            continue
        late = [wake for wake, asked in moments.values() if asked and wake > end + jitter + 0.1]
        if late:
            raise POLITELY.broken(
                "waited-too-long",
                f"{what}, a pause ended at {end - origin:.2f} s, and a task asked to sleep until "
                f"{max(late) - origin:.2f} s: more than `jitter` after the end.",
            )
        if len(moments) < 3:
            continue
        wakes = sorted(wake for wake, _asked in moments.values())
        spread = wakes[-1] - wakes[0]
        if spread < max(0.01, 0.05 * jitter):
            slept = any(asked for _wake, asked in moments.values())
            how = "asked asyncio.sleep to wake them" if slept else "sent"
            raise POLITELY.broken(
                "no-jitter",
                f"{what}, when the pause ended at {end - origin:.2f} s, {len(moments)} tasks {how} "
                f"within {spread * 1000:.0f} ms of each other: a herd.",
            )


def _judge_polite_failure(call: Call) -> None:
    failing = POLITE_FAILING[3]
    what = f"when URL {failing} of {len(call.urls)} answers 500"
    error = _unwrapped(call.error)
    if error is None:
        raise POLITELY.broken(
            "error-swallowed",
            f"{what}, fetch_politely returned {clip(repr(call.result), 80)} instead of raising.",
        )
    if not isinstance(error, aiohttp.ClientResponseError) or error.status != 500:
        where = learner_line(error)
        raise POLITELY.broken(
            "error-swallowed",
            f"{what}, fetch_politely raised {exception_text(error)}"
            + (f" ({where})" if where else "")
            + "; expected the aiohttp.ClientResponseError with status 500.",
        )


# --- task 3: fetch_with_phases ------------------------------------------------------------------

PHASES = Task(
    "fetch_with_phases",
    Rule(
        "wrong-shape",
        'one dict per URL, in the order of `urls`: `{"status", "dns", "connect", "wait", '
        '"body"}`, the phases in seconds (floats)',
        "the type, length, keys and values of what came back",
        'return a list with one dict per URL: `{"status": response.status, "dns": ..., '
        '"connect": ..., "wait": ..., "body": ...}`, each a number of seconds.',
    ),
    Rule(
        "status-wrong",
        "return the status whatever it is (a 404 is a result here)",
        "each dict's status, compared with the status the server sent",
        'put `response.status` in each dict: `"status": response.status`.',
    ),
    Rule(
        "not-concurrent",
        "GET all the URLs **at once** (concurrently)",
        "the requests' start and end times, from the check's own TraceConfig",
        "start them all before waiting for any: `await asyncio.gather(*(one(url) for url in "
        "urls))`.",
    ),
    Rule(
        "session-left-open",
        "in one session of your own that you close",
        "the sessions it made, open or closed after the call (the failing call included)",
        "use `async with aiohttp.ClientSession(trace_configs=[...]) as session:` so the session "
        "closes however the call ends.",
    ),
    Rule(
        "stopwatch",
        "measured with a `TraceConfig`'s signals",
        "URLs with a slow name lookup or connect: phases that lump them into `wait`",
        "a stopwatch around `session.get()` adds DNS, connect and the wait together: stamp the "
        "times in TraceConfig callbacks (`on_dns_resolvehost_start`, ...), per request.",
    ),
    Rule(
        "connect-includes-dns",
        "`connect`: `on_connection_create_start` to `on_connection_create_end`, minus `dns`",
        "the connect reported for a URL with a slow name lookup",
        "aiohttp looks the name up inside its connection step: subtract `dns` from the "
        "connection's time.",
    ),
    Rule(
        "dns-wrong",
        "`dns`: `on_dns_resolvehost_start` to `on_dns_resolvehost_end` (0.0 when no lookup)",
        "each URL's dns, compared with the check's own trace of the same signals",
        "stamp `on_dns_resolvehost_start` and `on_dns_resolvehost_end` into the request's own "
        "dict (`context.trace_request_ctx`), and report 0.0 when they did not fire.",
    ),
    Rule(
        "connect-wrong",
        "`connect`: `on_connection_create_start` to `on_connection_create_end`, minus `dns` "
        "(0.0 on a reused connection)",
        "each URL's connect, compared with the check's trace",
        "stamp `on_connection_create_start` and `on_connection_create_end`, subtract dns, and "
        "report 0.0 when they did not fire.",
    ),
    Rule(
        "wait-wrong",
        "`wait`: `on_request_headers_sent` to `on_request_end`",
        "each URL's wait, compared with the check's trace",
        "start the wait at `on_request_headers_sent` (not `on_request_start`, which comes "
        "before the lookup and the connect) and end it at `on_request_end`.",
    ),
    Rule(
        "body-wrong",
        "`body`: `on_request_end` to the last `on_response_chunk_received`",
        "each URL's body, compared with the check's trace",
        "the body starts when the headers have come (`on_request_end`) and ends at the last "
        "`on_response_chunk_received`: read it with `await response.read()`.",
    ),
    Rule(
        "mixed-up",
        "keep each request's times apart (`trace_request_ctx=`)",
        "phases that match another URL's, or the same figures for URLs that took different "
        "times",
        "give each request its own dict, `session.get(url, trace_request_ctx=marks)`, and write "
        "into `context.trace_request_ctx` in the callbacks: never into one shared variable.",
    ),
    Rule(
        "milliseconds",
        "the phases in seconds (floats)",
        "values about a thousand times the check's",
        "report seconds, as `loop.time()` and `time.monotonic()` give them: do not multiply "
        "by 1000.",
    ),
    Rule(
        "error-swallowed",
        "if a request cannot be made at all, raise its error",
        "a call with a URL whose port refuses connections",
        "let the `aiohttp.ClientConnectorError` propagate (no try/except that returns a row).",
    ),
)

PHASE_KEYS = ("dns", "connect", "wait", "body")
TRACED = ("request_start", "dns_resolvehost_start", "dns_resolvehost_end",
          "connection_create_start", "connection_create_end", "request_headers_sent",
          "request_end", "response_chunk_received", "connection_reuseconn")  # fmt: skip


@dataclass
class Truth:
    """The check's own trace of one request."""

    url: str
    marks: dict[str, list[float]] = field(default_factory=dict)
    status: int | None = None

    def between(self, first: str, last: str) -> float:
        if first in self.marks and last in self.marks:
            return self.marks[last][-1] - self.marks[first][0]
        return 0.0

    def phases(self) -> dict[str, float]:
        dns = self.between("dns_resolvehost_start", "dns_resolvehost_end")
        return {
            "dns": dns,
            "connect": self.between("connection_create_start", "connection_create_end") - dns,
            "wait": self.between("request_headers_sent", "request_end"),
            "body": self.between("request_end", "response_chunk_received"),
        }

    @property
    def start(self) -> float:
        return self.marks.get("request_start", [math.inf])[0]

    @property
    def end(self) -> float:
        marks = self.marks
        return (marks.get("response_chunk_received") or marks.get("request_end") or [math.inf])[-1]


class PhaseWorld:
    """The check's servers, name lookups and connect delays, and its trace of every request."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.dns_delays: dict[str, float] = {}
        self.connect_delays: dict[int, float] = {}
        self.truths: dict[str, Truth] = {}
        self.sessions: dict[int, list[aiohttp.ClientSession]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/phase/fast", self.fast)
        app.router.add_get("/phase/first-byte", self.first_byte)
        app.router.add_get("/phase/body", self.body)
        app.router.add_get("/phase/missing", self.missing)
        return app

    async def fast(self, request: web.Request) -> web.Response:
        return web.json_response({"path": request.path_qs})

    async def first_byte(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["d"]))
        return web.json_response({"path": request.path_qs})

    async def missing(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "Not Found", "detail": "on purpose"}, status=404)

    async def body(self, request: web.Request) -> web.StreamResponse:
        data = json.dumps({"path": request.path_qs, "pad": "x" * 2000}).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(data)
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write(data[:100])
            await asyncio.sleep(float(request.query["d"]))
            await response.write(data[100:])
        return response

    def delay(self) -> float:
        return round(self.rng.uniform(0.2, 0.35), 3)

    def tracing(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        for name in TRACED:
            async def stamp(session: Any, ctx: Any, params: Any, name: str = name) -> None:
                now = asyncio.get_running_loop().time()
                if name == "request_start":
                    ctx.truth = self.truths.setdefault(str(params.url), Truth(str(params.url)))
                truth = getattr(ctx, "truth", None)
                if truth is None:
                    return
                truth.marks.setdefault(name, []).append(now)
                if name == "request_end":
                    truth.status = params.response.status
            getattr(config, f"on_{name}").append(stamp)
        return config

    @contextlib.contextmanager
    def installed(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Slow name lookups and connects on ``loop``; the check's trace in every new session."""
        real_getaddrinfo, real_connect = loop.getaddrinfo, loop.sock_connect

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if not name.endswith(".test"):
                return await real_getaddrinfo(host, port, *args, **kwargs)
            await asyncio.sleep(self.dns_delays.get(name, 0.0))
            number = int(port) if port else 0
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", number))]

        async def sock_connect(sock: socket.socket, address: Any) -> None:
            port = address[1] if isinstance(address, tuple) and len(address) >= 2 else None
            pause = self.connect_delays.get(port, 0.0) if isinstance(port, int) else 0.0
            if pause:
                await asyncio.sleep(pause)
            await real_connect(sock, address)

        thread = threading.get_ident()
        original_init = aiohttp.ClientSession.__init__
        world = self

        @functools.wraps(original_init)
        def traced_init(session: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
            if threading.get_ident() == thread:
                configs = list(kwargs.get("trace_configs") or [])
                kwargs["trace_configs"] = [*configs, world.tracing()]
            original_init(session, *args, **kwargs)
            call = _CALL.get()
            if threading.get_ident() == thread and call is not None:
                call.sessions.append(session)

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        loop.sock_connect = sock_connect  # type: ignore[method-assign]
        aiohttp.ClientSession.__init__ = traced_init  # type: ignore[method-assign]
        try:
            yield
        finally:
            aiohttp.ClientSession.__init__ = original_init  # type: ignore[method-assign]
            del loop.getaddrinfo, loop.sock_connect


@check(PHASES, timeout=20)
async def fetch_with_phases(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Slow lookups, connects, first bytes and bodies, compared with the check's own trace."""
    world = PhaseWorld(random.Random(f"{SEED}-fetch_with_phases"))
    loop = asyncio.get_running_loop()
    async with serve(world.app()) as plain, serve(world.app()) as slowed:
        port_a, port_b = int(plain.rsplit(":", 1)[1]), int(slowed.rsplit(":", 1)[1])
        world.connect_delays[port_b] = world.delay()
        for name in ("lookup.test", "both.test"):
            world.dns_delays[name] = world.delay()
        first = Call("first", [
            f"http://lookup.test:{port_a}/phase/fast?i=0",
            f"http://127.0.0.1:{port_b}/phase/fast?i=1",
            f"http://127.0.0.1:{port_a}/phase/first-byte?i=2&d={world.delay()}",
            f"http://127.0.0.1:{port_a}/phase/body?i=3&d={world.delay()}",
            f"http://quick.test:{port_a}/phase/missing?i=4",
        ], {})  # fmt: skip
        second = Call("second", [
            f"http://both.test:{port_a}/phase/body?i=5&d={world.delay()}",
            f"http://127.0.0.1:{port_b}/phase/first-byte?i=6&d={world.delay()}",
            f"http://127.0.0.1:{port_a}/phase/fast?i=7",
        ], {})  # fmt: skip
        failing = Call("failing", [
            f"http://127.0.0.1:{port_a}/phase/fast?i=8", refused_url("/phase/fast?i=9"),
        ], {})  # fmt: skip
        calls = [first, second, failing]
        with world.installed(loop):
            await _run_calls("fetch_with_phases", learner, calls, lambda c: (c.urls,), 12.0)
        open_sessions = [call for call in calls if any(not s.closed for s in call.sessions)]
    if open_sessions:
        call = open_sessions[0]
        raise PHASES.broken(
            "session-left-open",
            f"after a call with {plural(len(call.urls), 'URL')}"
            + (" (one of them refused)" if call is failing else "")
            + f", {plural(sum(not s.closed for s in call.sessions), 'session')} of the call's "
            "was still open.",
        )
    for call in (first, second):
        if call.error is not None:
            where = learner_line(call.error)
            raise Mistake(
                "raised",
                f"fetch_with_phases raised {exception_text(call.error)}"
                + (f" ({where})" if where else "")
                + f" for URLs that all answer ({', '.join(_short(u) for u in call.urls[:3])}...).",
                "",
            )
        rows = _expect_rows(call)
        _judge_concurrent(call, world)
        _judge_statuses(call, rows, world)
        _judge_phases(call, rows, world)
    if failing.error is None:
        raise PHASES.broken(
            "error-swallowed",
            "with a URL whose port refuses connections, fetch_with_phases returned "
            f"{clip(repr(failing.result), 80)} instead of raising.",
        )
    return (
        "8 requests at once over two calls: slow lookups, a slow connect, slow first bytes and "
        "slow bodies each reported in the right phase and the right row, matching the "
        "signals; a 404 reported; a refused port raised; every session closed."
    )


def _short(url: str) -> str:
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port}{parsed.path}"


def _expect_rows(call: Call) -> list[dict[str, Any]]:
    result = call.result
    if inspect.iscoroutine(result):
        result.close()
        raise PHASES.broken("wrong-shape", "fetch_with_phases returned a coroutine: `await` it.")
    if not isinstance(result, (list, tuple)) or len(result) != len(call.urls):
        got = (
            f"{len(result)} items" if isinstance(result, (list, tuple))
            else f"{type(result).__name__} {clip(repr(result), 60)}"
        )  # fmt: skip
        raise PHASES.broken(
            "wrong-shape",
            f"for {len(call.urls)} URLs, fetch_with_phases returned {got}; expected one dict per "
            "URL.",
        )
    for index, row in enumerate(result):
        if not isinstance(row, dict):
            raise PHASES.broken(
                "wrong-shape",
                f"result {index} is {type(row).__name__} {clip(repr(row), 60)}, not a dict.",
            )
        missing = [key for key in ("status", *PHASE_KEYS) if key not in row]
        if missing:
            raise PHASES.broken(
                "wrong-shape",
                f"result {index} has no {', '.join(repr(k) for k in missing)} (it has "
                f"{', '.join(map(repr, row)) or 'nothing'}).",
            )
        for key in PHASE_KEYS:
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise PHASES.broken(
                    "wrong-shape",
                    f"result {index}'s {key!r} is {clip(repr(value), 40)}; expected seconds, a "
                    "float.",
                )
    return list(result)


def _truths(call: Call, world: PhaseWorld) -> list[Truth]:
    return [world.truths.get(url, Truth(url)) for url in call.urls]


def _judge_concurrent(call: Call, world: PhaseWorld) -> None:
    truths = _truths(call, world)
    intervals = [(t.start, t.end) for t in truths if t.start < math.inf]
    events = sorted(e for a, b in intervals for e in ((a, 1), (b, -1)))
    most = max(itertools.accumulate(step for _, step in events), default=0)
    if most <= 1 and len(intervals) > 1:
        raise PHASES.broken(
            "not-concurrent",
            f"the {len(call.urls)} requests ran one after another: each started after the one "
            "before had read its body.",
        )


def _judge_statuses(call: Call, rows: list[dict[str, Any]], world: PhaseWorld) -> None:
    for index, (row, truth) in enumerate(zip(rows, _truths(call, world), strict=True)):
        if row["status"] != truth.status:
            raise PHASES.broken(
                "status-wrong",
                f"result {index} ({_short(truth.url)}) says status {clip(repr(row['status']), 20)}"
                f"; the server sent {truth.status}.",
            )


def _close(value: float, truth: float) -> bool:
    # 50 ms: a loaded machine runs the learner's callbacks and the check's tens of ms apart,
    # and the scenarios' slow phases (0.15 s and more) stay far outside it.
    return abs(value - truth) <= 0.05 + 0.1 * truth


def _judge_phases(call: Call, rows: list[dict[str, Any]], world: PhaseWorld) -> None:
    truths = [t.phases() for t in _truths(call, world)]
    traces = _truths(call, world)
    slow = [(i, key) for i, t in enumerate(truths) for key in PHASE_KEYS if t[key] >= 0.15]
    if slow and all(rows[i][key] > 100 * truths[i][key] for i, key in slow):
        i, key = slow[0]
        raise PHASES.broken(
            "milliseconds",
            f"result {i}'s {key} is {rows[i][key]:.4g}, where the signals say "
            f"{truths[i][key]:.3f} s: milliseconds, not seconds?",
        )
    _expect_apart(rows, truths, traces)
    for i, (row, truth) in enumerate(zip(rows, truths, strict=True)):
        label = f"result {i} ({_short(traces[i].url)})"
        if all(_close(row[key], truth[key]) for key in PHASE_KEYS):
            continue
        lumped = truth["dns"] + truth["connect"]
        if (
            lumped >= 0.15
            and row["dns"] <= 0.01
            and row["connect"] <= 0.01
            and _close(row["wait"], lumped + truth["wait"])
        ):
            raise PHASES.broken(
                "stopwatch",
                f"{label}: its lookup and connect took {lumped:.2f} s and the server answered in "
                f"{truth['wait'] * 1000:.0f} ms, yet you report dns {row['dns']:.3f}, connect "
                f"{row['connect']:.3f} and wait {row['wait']:.2f} s: timed around the request.",
            )
        if not _close(row["dns"], truth["dns"]):
            raise _phase_off("dns-wrong", label, "dns", row, truth)
        if not _close(row["connect"], truth["connect"]):
            if truth["dns"] >= 0.15 and _close(row["connect"], truth["connect"] + truth["dns"]):
                raise PHASES.broken(
                    "connect-includes-dns",
                    f"{label}: you report connect {row['connect']:.3f} s, the lookup "
                    f"({truth['dns']:.3f} s) included; the connect itself took "
                    f"{truth['connect']:.3f} s.",
                )
            raise _phase_off("connect-wrong", label, "connect", row, truth)
        if not _close(row["wait"], truth["wait"]):
            since_start = traces[i].between("request_start", "request_end")
            if _close(row["wait"], since_start) and since_start - truth["wait"] >= 0.1:
                raise PHASES.broken(
                    "wait-wrong",
                    f"{label}: you report wait {row['wait']:.3f} s, from the request's start: "
                    f"that includes the lookup and the connect; the wait itself took "
                    f"{truth['wait']:.3f} s.",
                )
            raise _phase_off("wait-wrong", label, "wait", row, truth)
        raise _phase_off("body-wrong", label, "body", row, truth)


def _phase_off(code: str, label: str, key: str, row: dict[str, Any], truth: dict[str, float]
               ) -> Mistake:  # fmt: skip
    return PHASES.broken(
        code,
        f"{label}: you report {key} {row[key]:.3f} s; the signals say {truth[key]:.3f} s "
        f"(dns {truth['dns']:.3f}, connect {truth['connect']:.3f}, wait {truth['wait']:.3f}, "
        f"body {truth['body']:.3f}).",
    )


def _expect_apart(rows: list[dict[str, Any]], truths: list[dict[str, float]],
                  traces: list[Truth]) -> None:  # fmt: skip
    """Rows that repeat one another, or that match another URL's phases, were mixed up."""
    for i, row in enumerate(rows):
        negative = [key for key in PHASE_KEYS if row[key] < -0.001]
        if negative:
            key = negative[0]
            raise PHASES.broken(
                "mixed-up",
                f"result {i} ({_short(traces[i].url)}) has a negative {key}, {row[key]:.3f} s: its "
                "start and end were stamped by different requests.",
            )
    for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2):
        same = all(abs(a[key] - b[key]) < 1e-9 for key in PHASE_KEYS)
        differ = any(not _close(truths[i][key], truths[j][key]) for key in PHASE_KEYS)
        if same and differ and any(a[key] > 0 for key in PHASE_KEYS):
            raise PHASES.broken(
                "mixed-up",
                f"results {i} and {j} ({_short(traces[i].url)}, {_short(traces[j].url)}) have the "
                "same phases to the last digit, though one took "
                f"{max(truths[i].values()):.2f} s and the other {max(truths[j].values()):.2f} s in "
                "their slowest phase: their times were written into one shared place.",
            )
    for i, row in enumerate(rows):
        if all(_close(row[key], truths[i][key]) for key in PHASE_KEYS):
            continue
        for j, other in enumerate(truths):
            if j == i or all(_close(rows[j][key], other[key]) for key in PHASE_KEYS):
                continue  # row j has its own phases: row i merely looks like them
            if all(_close(row[key], other[key]) for key in PHASE_KEYS):
                raise PHASES.broken(
                    "mixed-up",
                    f"result {i} ({_short(traces[i].url)}) holds the phases of "
                    f"{_short(traces[j].url)}: the requests' times were swapped.",
                )
