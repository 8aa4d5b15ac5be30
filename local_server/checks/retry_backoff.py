"""Checks for exercise 07, retry with backoff: ``from local_server.checks import retry_backoff``.

Each task's rules are declared in a table (``BACKOFF``, ``RETRY_AFTER``, ``FETCH``,
``MIDDLEWARE``) and observed on seeded scenarios:

- ``backoff_delay`` is sampled 2,000 times per attempt, for two (base, cap) pairs, up to attempt
  100,000: the spread of the values, not one lucky draw, is judged.
- ``parse_retry_after`` gets both forms of the header (a date from the course server among
  them), a date in the past and unusable values, with the local time zone set to UTC-3:30,
  so a date read as local time shows.
- ``fetch_with_retry`` and ``retry_middleware`` run against a scripted app served by the check
  (``Scripted``): every retryable status, every non-retryable 4xx, a POST and a PATCH, a PUT and
  a DELETE, a reset, a hang-up, a refused port, a timeout, Retry-After in both forms on 429 and
  503, an error body still arriving while the code sleeps, and a failure mid-job. Everything runs
  at once, each call in its own context, so one check takes about a second.
  Delays are judged from the ``asyncio.sleep`` calls the code asked for
  (``observe.current().on_sleep``), never from wall-clock gaps; attempts are counted with a
  ``TraceConfig`` (a call of ``fetch_with_retry``) or probe middlewares around the learner's
  (a call of ``handler``), so aiohttp's own resend after a dropped connection is told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import functools
import inspect
import json
import math
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from ..serving import refused_url, serve
from . import observe
from .evidence import LearnerLine, clip, exception_text, learner_line
from .harness import Mistake, SessionSpy, call_async, check, plural
from .rules import Rule, Task

SEED = 0

# --- task 1: backoff_delay --------------------------------------------------------------------

BACKOFF = Task(
    "backoff_delay",
    Rule(
        "not-a-number",
        "the seconds to wait before retry number `attempt` (a number)",
        "the type of every value returned",
        "return a number of seconds from a plain `def`: `return random.uniform(0, ceiling)`.",
    ),
    Rule(
        "overflow",
        "It must not overflow for a large `attempt` (try 2000)",
        "attempts 1100, 2000 and 100000",
        "cap the exponent before computing the power: `base * 2 ** min(attempt, 64)`; "
        "`2.0 ** 2000` is too large for a float.",
    ),
    Rule(
        "negative",
        "random in `[0, min(cap, base * 2**attempt)]`",
        "the smallest of 2,000 values per attempt",
        "draw from 0 up to the ceiling: `random.uniform(0, ceiling)`.",
    ),
    Rule(
        "no-jitter",
        "each call draws its own value",
        "2,000 calls with the same arguments: how many different values came back",
        "draw a new random number on every call: `random.uniform(0, ceiling)`, with the "
        "module's `random` (not a generator seeded on each call, not a value drawn once).",
    ),
    Rule(
        "above-cap",
        "never exceeds `cap`",
        "the largest of 2,000 values per attempt, for two (base, cap) pairs",
        "take the minimum before drawing: `random.uniform(0, min(cap, base * 2 ** attempt))`.",
    ),
    Rule(
        "above-ceiling",
        "random in `[0, min(cap, base * 2**attempt)]`",
        "the largest and smallest of 2,000 values, compared with that attempt's ceiling",
        "draw the whole delay from `[0, min(cap, base * 2 ** attempt)]`, with attempt 0 for the "
        "first retry; add nothing on top.",
    ),
    Rule(
        "not-exponential",
        "the ceiling doubles with each attempt",
        "the largest of 2,000 values per attempt, compared with base * 2**attempt",
        "the ceiling is `base * 2 ** attempt`: base, 2 base, 4 base, ... (not linear, not "
        "constant).",
    ),
    Rule(
        "cap-not-reached",
        "`min(cap, base * 2**attempt)`: for a large attempt the ceiling is `cap` itself",
        "the largest of 2,000 values at attempts where base * 2**attempt is above cap",
        "once `base * 2 ** attempt` passes `cap`, the ceiling is `cap`: values up to `cap`.",
    ),
    Rule(
        "not-full-jitter",
        "drawn **uniformly** from the whole range, 0 included (full jitter)",
        "the share of 2,000 values in the lowest and highest quarter of [0, ceiling], per "
        "attempt (a quarter each, for full jitter)",
        "full jitter is `random.uniform(0, ceiling)`: values near 0 are as likely as values "
        "near the ceiling.",
    ),
)

BACKOFF_PAIRS = ((0.1, 3.0), (0.37, 5.0))
BACKOFF_ATTEMPTS = (0, 1, 2, 3, 4, 5, 7, 10, 30, 64, 100, 1100, 2000, 100_000)
BACKOFF_SAMPLES = 2000
# From this attempt on the ceiling is the cap for both pairs: fewer values are enough.
CAPPED_FROM, CAPPED_SAMPLES = 30, 400
# Values drawn between two ticks of the loop.
BACKOFF_BATCH = 100


@check(BACKOFF)
async def backoff_delay(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], a new value on every call."""
    saved = random.getstate()
    random.seed(f"{SEED}-backoff_delay")
    try:
        samples = {pair: await _sample_backoff(learner, *pair) for pair in BACKOFF_PAIRS}
    finally:
        random.setstate(saved)
    for (base, cap), by_attempt in samples.items():
        _judge_backoff(base, cap, by_attempt)
    return (
        f"{BACKOFF_SAMPLES:,} delays per attempt, for attempts 0 to 100,000 and two (base, cap) "
        "pairs: uniform over [0, min(cap, base * 2**attempt)], new on every call, doubling, "
        "capped, no overflow."
    )


async def _sample_backoff(learner: Any, base: float, cap: float) -> dict[int, list[float]]:
    by_attempt: dict[int, list[float]] = {}
    for attempt in BACKOFF_ATTEMPTS:
        call = f"backoff_delay({attempt}, {base}, {cap})"
        values: list[Any] = []
        wanted = BACKOFF_SAMPLES if attempt < CAPPED_FROM else CAPPED_SAMPLES
        try:
            while len(values) < wanted:
                values += [learner(attempt, base, cap) for _ in range(BACKOFF_BATCH)]
                await asyncio.sleep(0)  # let the loop tick: a slow answer is not a blocked loop
        except OverflowError as exc:
            raise BACKOFF.broken(
                "overflow",
                f"{call} raised {exception_text(exc)} ({learner_line(exc) or 'your code'}).",
            ) from None
        coroutines = [value for value in values if inspect.iscoroutine(value)]
        for coroutine in coroutines:
            coroutine.close()  # never to run: closed, so Python does not warn about them
        for value in values:
            if inspect.iscoroutine(value):
                raise BACKOFF.broken(
                    "not-a-number",
                    f"{call} returned a coroutine: backoff_delay is defined with `async def`.",
                    "define it with a plain `def`: it only computes a number, nothing to await.",
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BACKOFF.broken(
                    "not-a-number",
                    f"{call} returned {type(value).__name__} {clip(repr(value), 60)}; expected a "
                    "number of seconds.",
                )
            if math.isnan(value):
                raise BACKOFF.broken("not-a-number", f"{call} returned nan.")
        by_attempt[attempt] = [float(value) for value in values]
    return by_attempt


def _ceiling(attempt: int, base: float, cap: float) -> float:
    return min(cap, base * 2.0 ** min(attempt, 1000))


def _judge_backoff(base: float, cap: float, by_attempt: dict[int, list[float]]) -> None:
    args = f"base={base}, cap={cap}"
    for attempt, values in by_attempt.items():
        if min(values) < 0:
            raise BACKOFF.broken(
                "negative",
                f"backoff_delay({attempt}, {base}, {cap}) returned {min(values):.4g}: a wait "
                "cannot be negative.",
            )
    _expect_jitter(base, cap, by_attempt)
    for attempt, values in by_attempt.items():
        ceiling = _ceiling(attempt, base, cap)
        top, bottom = max(values), min(values)
        call = f"backoff_delay({attempt}, {base}, {cap})"
        if top > cap * (1 + 1e-9):
            raise BACKOFF.broken(
                "above-cap", f"{call} returned {top:.4g}, more than the cap of {cap:g} s."
            )
        if top > ceiling * (1 + 1e-9):
            raise BACKOFF.broken(
                "above-ceiling",
                f"{call} returned values from {bottom:.4g} to {top:.4g}, above its ceiling "
                f"min(cap, base * 2**{attempt}) = {ceiling:.4g}.",
                _above_ceiling_hint(attempt, base, cap, by_attempt),
            )
    for attempt, values in by_attempt.items():
        ceiling = _ceiling(attempt, base, cap)
        top = max(values)
        if top < 0.9 * ceiling:
            if base * 2.0 ** min(attempt, 1000) >= cap and all(
                max(v) >= 0.9 * _ceiling(a, base, cap)
                for a, v in by_attempt.items()
                if base * 2.0 ** min(a, 1000) < cap
            ):
                raise BACKOFF.broken(
                    "cap-not-reached",
                    f"with {args}, from attempt {attempt} the ceiling is the cap, {cap:g} s, but "
                    f"2,000 delays reached only {top:.4g}.",
                )
            growth = ", ".join(
                f"{max(by_attempt[a]):.3g}" for a in (0, 1, 2, 3, 4, 5) if a in by_attempt
            )
            raise BACKOFF.broken(
                "not-exponential",
                f"with {args}, the largest delays at attempts 0-5 were {growth}; the ceilings "
                "double: " + ", ".join(f"{_ceiling(a, base, cap):.3g}" for a in range(6)) + ".",
            )
    _expect_uniform(base, cap, by_attempt)


def _expect_jitter(base: float, cap: float, by_attempt: dict[int, list[float]]) -> None:
    constant = {a: v[0] for a, v in by_attempt.items() if len(set(v)) == 1}
    if len(constant) < len(by_attempt):
        return
    shown = ", ".join(f"{constant[a]:.4g}" for a in (0, 1, 2, 3))
    fractions = {round(constant[a] / _ceiling(a, base, cap), 9) for a in constant}
    if fractions == {1.0}:
        cause = "the ceiling itself, with no random part"
        hint = (
            "draw the delay at random below the ceiling: "
            "`random.uniform(0, min(cap, base * 2 ** attempt))`."
        )
    elif len(fractions) == 1:
        cause = "the same fraction of the ceiling every time: a random number drawn once?"
        hint = None
    else:
        cause = "a generator seeded on every call (`random.Random(attempt)`)?"
        hint = None
    raise BACKOFF.broken(
        "no-jitter",
        f"2,000 calls with the same arguments returned one value each time (attempts 0-3: "
        f"{shown}): {cause}",
        hint,
    )


def _above_ceiling_hint(
    attempt: int, base: float, cap: float, by_attempt: dict[int, list[float]]
) -> str:
    low = [min(v) / _ceiling(a, base, cap) for a, v in by_attempt.items()]
    high = [max(v) / _ceiling(a, base, cap) for a, v in by_attempt.items()]
    if min(low) >= 0.999:
        return (
            "every delay was at or above its ceiling, as if a random part were added on top: "
            "draw the whole delay, `random.uniform(0, ceiling)`."
        )
    first = max(by_attempt[0]) / base if 0 in by_attempt else 0.0
    if 1.8 <= first <= 2.0 + 1e-9 and max(high) <= 2.0 + 1e-9:
        return (
            "the delays reach twice the ceiling, as if attempt 0 used `2 ** 1`: attempt 0 is "
            "the first retry, and its ceiling is `base * 2 ** 0 = base`."
        )
    return (
        "the ceiling is `min(cap, base * 2 ** attempt)` with attempt 0 for the first retry; "
        "draw below it with `random.uniform(0, ceiling)`."
    )


def _quarters(values: list[float], ceiling: float) -> tuple[float, float]:
    """The shares of ``values`` in the lowest and the highest quarter of [0, ceiling]."""
    low = sum(v < ceiling / 4 for v in values) / len(values)
    high = sum(v > 3 * ceiling / 4 for v in values) / len(values)
    return low, high


def _expect_uniform(base: float, cap: float, by_attempt: dict[int, list[float]]) -> None:
    failing = []
    for attempt, values in by_attempt.items():
        low, high = _quarters(values, _ceiling(attempt, base, cap))
        # Uniform draws put 25 % in each quarter; five standard deviations either side.
        margin = 5 * math.sqrt(0.25 * 0.75 / len(values))
        if abs(low - 0.25) > margin or abs(high - 0.25) > margin:
            failing.append(attempt)
    if not failing:
        return
    # Quote the attempt with the widest range below the cap: the pattern shows best there.
    below = [a for a in failing if base * 2.0 ** min(a, 1000) < cap] or failing
    attempt = below[-1]
    values, ceiling = by_attempt[attempt], _ceiling(attempt, base, cap)
    low, high = _quarters(values, ceiling)
    bottoms = {a: min(by_attempt[a]) for a in failing}
    if all(abs(bottom - base) <= 0.02 * base for bottom in bottoms.values()):
        hint = "the range starts at `base`, not 0: full jitter is `random.uniform(0, ceiling)`."
    elif all(bottoms[a] >= 0.45 * _ceiling(a, base, cap) for a in failing):
        hint = (
            "no value fell below half its ceiling: that is equal jitter. Full jitter draws from "
            "the whole range: `random.uniform(0, ceiling)`."
        )
    else:
        hint = None
    raise BACKOFF.broken(
        "not-full-jitter",
        f"of {len(values):,} values of backoff_delay({attempt}, {base}, {cap}) (ceiling "
        f"{ceiling:.3g}), {low:.0%} were in the lowest quarter of [0, ceiling] and {high:.0%} in "
        f"the highest (about 25 % each when uniform); the smallest was {min(values):.3g}.",
        hint,
    )


# --- task 2: parse_retry_after ----------------------------------------------------------------

RETRY_AFTER = Task(
    "parse_retry_after",
    Rule(
        "seconds-wrong",
        'a number of seconds (`"120"`) is that many seconds',
        "'7', '0', '120' and '3600'",
        "a whole number of seconds is the common form: `float(value)` when `value.isdigit()`.",
    ),
    Rule(
        "not-a-float",
        "seconds to wait, as a float",
        "the type returned for '7' and for a date ahead (0 for a past date may be an int)",
        "return `float(...)`: `float(value)` for seconds, `timedelta.total_seconds()` for a date.",
    ),
    Rule(
        "date-not-parsed",
        'or an HTTP date (`"Wed, 21 Oct 2026 07:28:00 GMT"`)',
        "a date 30 s ahead (the course server's own header) and one 2 hours ahead",
        "`email.utils.parsedate_to_datetime(value)` reads an HTTP date; subtract "
        "`datetime.now(UTC)` and take `.total_seconds()`.",
    ),
    Rule(
        "date-not-relative",
        'which means "that many seconds from now"',
        "the value returned for a date 30 s ahead, compared with 30",
        "return the seconds from now until the date: `(when - datetime.now(UTC)).total_seconds()`.",
    ),
    Rule(
        "date-read-as-local",
        "an HTTP date is in GMT (the check sets the local time zone to UTC-3:30)",
        "the error for a date ahead compared with the local zone's offset (3.5 h)",
        "`time.mktime` and a naive `datetime.now()` use the local time zone; HTTP dates are "
        "GMT: `parsedate_to_datetime(value) - datetime.now(UTC)`, or `email.utils.mktime_tz`.",
    ),
    Rule(
        "past-date-not-zero",
        "a date in the past means 0",
        "a date an hour ago",
        "clamp: `max(0.0, seconds)`.",
    ),
    Rule(
        "bad-value-accepted",
        "Return `None` for `None`, an empty string, a negative number or anything else you "
        "cannot read",
        "None, '', '-5', 'soon', '12abc' and a date with an impossible day",
        "accept only digits (`value.isdigit()`) or a date `parsedate_to_datetime` can read; "
        "return None for everything else.",
    ),
    Rule(
        "raised-on-bad-value",
        "never raise",
        "the same unusable values: any exception",
        "wrap the parsing in `try: ... except (TypeError, ValueError): return None`, and "
        "test for None before calling string methods.",
    ),
)
# UTC-3:30 with no daylight saving, as a POSIX TZ string (no time zone database needed).
LOCAL_ZONE = "<-0330>+03:30"
LOCAL_OFFSET_SECONDS = 3.5 * 3600


@contextlib.contextmanager
def _local_time_zone(zone: str) -> Iterator[None]:
    """Run the block with the process's local time zone set to ``zone``, then restore it."""
    if not hasattr(time, "tzset"):  # Windows: leave the zone alone
        yield
        return
    saved = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _http_date(offset: float) -> tuple[str, float]:
    """An HTTP date ``offset`` seconds from now (whole seconds), and the epoch it names."""
    when = math.ceil(time.time() + offset)
    return email.utils.format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True), when


@check(RETRY_AFTER)
async def parse_retry_after(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Seconds from a Retry-After value: delta-seconds or an HTTP date; None when unusable."""
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/retry-after/503?seconds=30&date=1"
        async with session.get(url) as response:
            served = response.headers["Retry-After"]
    with _local_time_zone(LOCAL_ZONE):
        for value, expected in (("7", 7.0), ("0", 0.0), ("120", 120.0), ("3600", 3600.0)):
            _judge_seconds(learner, value, expected)
        ahead, when = _http_date(7200)
        for value, epoch in ((served, None), (ahead, when)):
            _judge_date(learner, value, epoch)
        past, _ = _http_date(-3600)
        _judge_past(learner, past)
        bad = [None, "", "-5", "soon", "12abc", "Wed, 99 Foo 2026 07:28:00 GMT"]
        for value in bad:
            _judge_bad(learner, value)
    return (
        "seconds and HTTP dates (GMT, read in a UTC-3:30 zone) both parsed as floats; a past "
        "date gives 0; None, '', '-5' and garbage give None, and nothing raised."
    )


def _call(learner: Any, value: str | None) -> tuple[Any, BaseException | None]:
    try:
        result = learner(value)
    except NotImplementedError:
        raise
    except Exception as exc:
        return None, exc
    if inspect.iscoroutine(result):
        result.close()
        raise RETRY_AFTER.broken(
            "not-a-float",
            f"parse_retry_after({value!r}) returned a coroutine: it is defined with `async def`.",
            "define it with a plain `def`: parsing a header awaits nothing.",
        )
    return result, None


def _raised(call: str, exc: BaseException) -> str:
    return f"{call} raised {exception_text(exc)} ({learner_line(exc) or 'your code'})"


def _judge_seconds(learner: Any, value: str, expected: float) -> None:
    call = f"parse_retry_after({value!r})"
    result, exc = _call(learner, value)
    if exc is not None:
        raise RETRY_AFTER.broken("seconds-wrong", _raised(call, exc) + ".")
    if result is None:
        cause = " (`if not seconds:` treats 0 as missing?)" if expected == 0 else ""
        raise RETRY_AFTER.broken("seconds-wrong", f"{call} returned None{cause}.")
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise RETRY_AFTER.broken(
            "not-a-float", f"{call} returned {type(result).__name__} {clip(repr(result), 40)}."
        )
    if result != expected:
        raise RETRY_AFTER.broken("seconds-wrong", f"{call} returned {result!r}.")
    if not isinstance(result, float) and expected != 0:
        raise RETRY_AFTER.broken(
            "not-a-float",
            f"{call} returned the int {result!r}; the task asks for the seconds as a float.",
        )


def _judge_date(learner: Any, value: str, epoch: float | None) -> None:
    call = f"parse_retry_after({value!r})"
    result, exc = _call(learner, value)
    expected = (epoch or email.utils.parsedate_to_datetime(value).timestamp()) - time.time()
    if exc is not None:
        hint = None
        if isinstance(exc, TypeError) and "offset-naive and offset-aware" in str(exc):
            hint = (
                "`datetime.now()` has no time zone and the parsed date has one: subtract "
                "`datetime.now(UTC)` instead."
            )
        raise RETRY_AFTER.broken("date-not-parsed", _raised(call, exc) + ".", hint)
    if result is None:
        raise RETRY_AFTER.broken(
            "date-not-parsed", f"{call}, a date {expected:.0f} s ahead, returned None."
        )
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise RETRY_AFTER.broken(
            "not-a-float", f"{call} returned {type(result).__name__} {clip(repr(result), 40)}."
        )
    if abs(result - expected) <= 2:
        if not isinstance(result, float):
            raise RETRY_AFTER.broken(
                "not-a-float", f"{call} returned the int {result!r}; expected a float."
            )
        return
    seconds = f"for a date {expected:.0f} s ahead, parse_retry_after returned {result:.6g}"
    if result > 1e9:
        raise RETRY_AFTER.broken(
            "date-not-relative",
            f"{seconds}: a timestamp (seconds since 1970), not seconds from now.",
        )
    if abs(abs(result - expected) - LOCAL_OFFSET_SECONDS) <= 2:
        raise RETRY_AFTER.broken(
            "date-read-as-local",
            f"{seconds}, off by 3.5 hours: the check set the local time zone to UTC-3:30, and "
            "the GMT date was read as local time.",
        )
    if result == 0 and expected > 0:
        raise RETRY_AFTER.broken(
            "date-not-relative", f"{seconds}: a date in the future means a wait."
        )
    raise RETRY_AFTER.broken("date-not-relative", f"{seconds}.")


def _judge_past(learner: Any, value: str) -> None:
    call = f"parse_retry_after({value!r})"
    result, exc = _call(learner, value)
    if exc is not None:
        raise RETRY_AFTER.broken("past-date-not-zero", _raised(call, exc) + ", for a past date.")
    if isinstance(result, (int, float)) and not isinstance(result, bool) and result == 0:
        return
    if isinstance(result, (int, float)) and abs(result - (LOCAL_OFFSET_SECONDS - 3600)) <= 2:
        raise RETRY_AFTER.broken(
            "date-read-as-local",
            f"for a date an hour ago, parse_retry_after returned {result:.6g}: the GMT date was "
            "read in the local time zone (UTC-3:30).",
        )
    raise RETRY_AFTER.broken(
        "past-date-not-zero",
        f"for a date an hour ago, parse_retry_after returned {clip(repr(result), 40)}; expected 0 "
        "(retry now).",
    )


def _judge_bad(learner: Any, value: str | None) -> None:
    call = f"parse_retry_after({value!r})"
    result, exc = _call(learner, value)
    if exc is not None:
        raise RETRY_AFTER.broken("raised-on-bad-value", _raised(call, exc) + "; expected None.")
    if result is not None:
        raise RETRY_AFTER.broken(
            "bad-value-accepted", f"{call} returned {clip(repr(result), 40)}; expected None."
        )


# --- the scripted app that tasks 3 and 4 run against ----------------------------------------


@dataclass(frozen=True)
class Act:
    """What the scripted app does for one call to a key."""

    kind: str  # "ok", "status", "slow-status", "reset", "hangup", "hang"
    status: int = 200
    retry_after: str | None = None  # "1", or "date" for an HTTP date


@dataclass
class Hit:
    """One call that reached the scripted app."""

    key: str
    method: str
    index: int
    act: Act
    at: float
    retry_at: float | None = None  # the epoch a Retry-After date named


OK = Act("ok")
# An error body that is still arriving while the code sleeps: 256 bytes, then the rest after
# SLOW_BODY_SECONDS, or as soon as the client hangs up.
SLOW_BODY_SECONDS = 1.0
SLOW_BODY_BYTES = 4096
# A "hang" waits this long for the client's timeout to give up before answering anyway.
HANG_SECONDS = 3.0
# The body of a 200 comes in two pieces this far apart, so a released response cannot be read.
PIECE_GAP_SECONDS = 0.03
# A key called this many times more than its attempt limit stops the check: a loop without one.
OVERRUN_CALLS = 12


class Scripted:
    """An app whose ``/s/{key}`` follows a script per key and records every call."""

    def __init__(self) -> None:
        self.scripts: dict[str, tuple[Act, ...]] = {}
        self.limits: dict[str, int] = {}
        self.hits: dict[str, list[Hit]] = {}
        self.overrun = asyncio.Event()

    def add(self, key: str, *acts: Act, limit: int = 10) -> str:
        self.scripts[key] = acts
        self.limits[key] = limit
        self.hits[key] = []
        return f"/s/{key}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/s/{key}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        hits = self.hits[key]
        script = self.scripts[key]
        act = script[min(len(hits), len(script) - 1)]
        hit = Hit(key, request.method, len(hits), act, asyncio.get_running_loop().time())
        hits.append(hit)
        if len(hits) > self.limits[key] + OVERRUN_CALLS:
            self.overrun.set()
        if act.kind == "ok":
            return await _pieces(request, {"key": key, "call": hit.index + 1, "token": _token(hit)})
        if act.kind == "status":
            return web.json_response(
                {"error": act.status, "detail": f"call {hit.index + 1} fails on purpose"},
                status=act.status,
                headers=_retry_after(act, hit),
            )
        if act.kind == "slow-status":
            return await _slow_error(request, act.status)
        if act.kind == "reset":
            _reset(request)
            return web.Response(status=444)
        if act.kind == "hangup":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=444)
        await _until_closed(request, HANG_SECONDS)  # "hang"
        return web.json_response({"key": key, "call": hit.index + 1, "token": _token(hit)})


def _story(acts: tuple[Act, ...]) -> str:
    """How a script reads in a verdict: "a URL that answers 503, a reset, then 200"."""

    def one(act: Act) -> str:
        if act.kind in ("status", "slow-status"):
            extra = {None: "", "date": " with a Retry-After date"}.get(
                act.retry_after, f" with Retry-After: {act.retry_after}"
            )
            return f"{act.status}{extra}"
        return {"ok": "200", "reset": "a reset", "hangup": "a hang-up", "hang": "a timeout"}[
            act.kind
        ]

    if len(acts) == 1:
        return f"a URL that always answers {one(acts[0])}"
    *first, last = (one(act) for act in acts)
    return f"a URL that answers {', '.join(first)}, then {last}"


def _token(hit: Hit) -> str:
    return f"{hit.key}-{hit.index + 1}"


def _retry_after(act: Act, hit: Hit) -> dict[str, str]:
    if act.retry_after is None:
        return {}
    if act.retry_after != "date":
        return {"Retry-After": act.retry_after}
    value, hit.retry_at = _http_date(0.3)
    return {"Retry-After": value}


async def _pieces(request: web.Request, document: dict[str, Any]) -> web.StreamResponse:
    body = json.dumps(document).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
        await response.prepare(request)
        await response.write(body[:10])
        await asyncio.sleep(PIECE_GAP_SECONDS)
        await response.write(body[10:])
    return response


async def _slow_error(request: web.Request, status: int) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers={"Content-Type": "text/plain"})
    response.content_length = SLOW_BODY_BYTES
    with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
        await response.prepare(request)
        await response.write(b"e" * 256)
        if await _until_closed(request, SLOW_BODY_SECONDS):
            return response
        await response.write(b"e" * (SLOW_BODY_BYTES - 256))
    return response


async def _until_closed(request: web.Request, patience: float) -> bool:
    """Wait until the client hangs up (True) or ``patience`` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + patience
    while loop.time() < give_up_at:
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        await asyncio.sleep(0.01)
    return False


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST, no answer (as the course server's /fault/reset)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --- what one call of the learner's code did ------------------------------------------------


@dataclass(frozen=True)
class Asked:
    """One asyncio.sleep the learner's code asked for, and what it held at that moment."""

    delay: float
    at: float
    wall: float
    where: LearnerLine | None
    holding: int  # failed responses still holding a connection


@dataclass
class Run:
    """One call of the learner's code in a scenario, and what was seen during it."""

    name: str
    key: str
    method: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    story: str = "a URL"
    session: aiohttp.ClientSession | None = None
    result: Any = None
    error: BaseException | None = None
    finished: bool = False
    starts: list[float] = field(default_factory=list)  # attempts / handler calls, loop time
    responses: list[aiohttp.ClientResponse] = field(default_factory=list)
    asked: list[Asked] = field(default_factory=list)
    passes: int = 0  # task 4: how often aiohttp ran the middleware chain
    returned: Any = None  # task 4: what the learner's middleware returned
    status: int | None = None  # task 4: the status the caller got
    body: bytes | None = None  # task 4: the body the caller read

    @property
    def attempts(self) -> int:
        return len(self.starts)

    def holding(self) -> int:
        return sum(r.status >= 400 and r.connection is not None for r in self.responses)

    def gaps(self) -> list[float]:
        """The seconds of sleep asked between consecutive attempts."""
        edges = [*self.starts, math.inf]
        return [
            sum(a.delay for a in self.asked if edges[i] <= a.at < edges[i + 1])
            for i in range(len(self.starts) - 1)
        ]

    def asked_after(self, index: int) -> list[Asked]:
        """The sleeps asked after attempt ``index`` began and before the next one."""
        edges = [*self.starts, math.inf]
        return [a for a in self.asked if edges[index] <= a.at < edges[index + 1]]


_RUN: contextvars.ContextVar[Run | None] = contextvars.ContextVar("retry_check_run", default=None)


def _record_sleep(sleep: observe.Sleep) -> None:
    run = _RUN.get()
    if run is not None:
        delay = _delay_asked(sys._getframe(1), sleep.delay)
        run.asked.append(Asked(delay, sleep.at, time.time(), sleep.where, run.holding()))


def _delay_asked(frame: FrameType | None, recorded: float) -> float:
    """The ``delay`` asyncio.sleep was called with, read from its frame.

    ``Sleep.delay`` is measured when the timer is scheduled, a few microseconds (more under
    load) after asyncio.sleep was called: a tiny delay can read as 0.0, and a fixed one varies.
    """
    for _ in range(8):
        if frame is None:
            break
        if frame.f_code is asyncio.tasks.sleep.__code__:
            delay = frame.f_locals.get("delay")
            if isinstance(delay, (int, float)) and not isinstance(delay, bool):
                return float(delay)
            break
        frame = frame.f_back
    return recorded


@contextlib.contextmanager
def _listening() -> Iterator[None]:
    obs = observe.current()
    obs.on_sleep.append(_record_sleep)
    try:
        yield
    finally:
        obs.on_sleep.remove(_record_sleep)


def _tracing(run: Run) -> aiohttp.TraceConfig:
    """Counts the attempts of ``run`` (one per ``session.request``) and keeps the responses."""
    config = aiohttp.TraceConfig()

    async def started(session: Any, ctx: Any, params: Any) -> None:
        run.starts.append(asyncio.get_running_loop().time())

    async def ended(session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        run.responses.append(params.response)

    config.on_request_start.append(started)
    config.on_request_end.append(ended)
    return config


async def _run_all(runs: list[Run], call: Callable[[Run], Any], scripted: Scripted) -> None:
    """Run every scenario at once; stop early when a key is called far beyond its limit."""

    async def one(run: Run) -> None:
        _RUN.set(run)
        try:
            await call(run)
        finally:
            run.finished = True

    tasks = [asyncio.ensure_future(one(run)) for run in runs]
    everything = asyncio.gather(*tasks, return_exceptions=True)
    overrun = asyncio.ensure_future(scripted.overrun.wait())
    try:
        await asyncio.wait(
            {everything, overrun}, timeout=RUN_PATIENCE, return_when="FIRST_COMPLETED"
        )
    finally:
        overrun.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.wait({everything}, timeout=2.0)
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if isinstance(error, (NotImplementedError, Mistake)):
                raise error


# All the scenarios of one check end within this (a Retry-After of 1 s is the longest wait).
RUN_PATIENCE = 6.0


def _judge_waits(table: Task, runs: list[Run], base: float, cap: float, what: str) -> None:
    """Backoff between attempts, from the sleeps asked, for runs of an always-failing URL."""
    waits = [run.gaps() for run in runs]
    for run, gaps in zip(runs, waits, strict=True):
        bare = [i for i in range(len(gaps)) if not run.asked_after(i)]
        if bare:
            i = bare[0]
            slept = (
                "no asyncio.sleep() at all"
                if len(bare) == len(gaps)
                else f"no asyncio.sleep() between {what} {i + 1} and {i + 2}"
            )
            raise table.broken(
                "no-backoff",
                f"against a URL that always answers 503, {plural(run.attempts, what)} came "
                f"with {slept}: the retries came back to back.",
            )
    for run, gaps in zip(runs, waits, strict=True):
        for i, gap in enumerate(gaps):
            if gap > cap * 1.05 + 1e-4:
                where = _where(run.asked_after(i))
                raise table.broken(
                    "no-cap",
                    f"with max_delay={cap}, the code asked to sleep {gap:.3g} s between {what} "
                    f"{i + 1} and {i + 2}{where}.",
                )
    for gaps in waits:
        for i, gap in enumerate(gaps[:3]):
            ceiling = _ceiling(i, base, cap)
            if gap > 2.05 * ceiling + 1e-4:
                raise table.broken(
                    "not-exponential",
                    f"with base_delay={base}, the wait before retry {i + 1} was {gap:.3g} s; "
                    f"backoff_delay({i}, {base}, {cap}) is at most {ceiling:.3g}.",
                    "wait `backoff_delay(attempt, base_delay, max_delay)` with attempt 0 for the "
                    "first retry: it starts small and doubles (check the order of the arguments).",
                )
    if len({tuple(round(g, 9) for g in gaps) for gaps in waits}) == 1:
        raise table.broken(
            "no-jitter",
            f"{len(runs)} runs against a URL that always fails waited exactly the same delays: "
            + ", ".join(f"{g:.3g}" for g in waits[0][:6])
            + " s.",
        )
    late = [gap / _ceiling(i, base, cap) for gaps in waits for i, gap in enumerate(gaps) if i >= 4]
    if late and sum(late) / len(late) < 0.2:
        shown = ", ".join(f"{g:.3g}" for g in waits[0])
        raise table.broken(
            "not-exponential",
            f"with base_delay={base} and max_delay={cap}, the waits did not grow: {shown} s "
            f"(the ceilings double to {cap:g}).",
            "wait `backoff_delay(attempt, base_delay, max_delay)`, with the attempt number: the "
            "ceiling doubles with each retry, up to max_delay.",
        )


def _where(asked: list[Asked]) -> str:
    lines = [a.where for a in asked if a.where is not None]
    return f" ({lines[0]})" if lines else ""


# --- task 3: fetch_with_retry -----------------------------------------------------------------

FETCH = Task(
    "fetch_with_retry",
    Rule(
        "own-session",
        "sends the request with the `session` it is given",
        "sessions created while it ran",
        "use the `session` argument: it is the caller's, with the caller's settings (the "
        "check's has a timeout).",
    ),
    Rule(
        "wrong-method",
        "sends the request (`method=`)",
        "the method the server received for PUT, DELETE, POST and PATCH",
        "send `session.request(method, url)`, not `session.get(url)`.",
    ),
    Rule(
        "retried-4xx",
        "retry only **transient** failures: a 4xx other than 408 and 429 is sent once",
        "400, 401, 403, 404 and 422, each on its own URL: calls the server got",
        "a 4xx says the request itself is wrong: resending cannot help. Retry only 408, 429, "
        "500, 502, 503, 504 (and connection errors, timeouts).",
    ),
    Rule(
        "retried-non-idempotent",
        "retry only **idempotent** methods (GET, HEAD, OPTIONS, PUT, DELETE): a POST is sent once",
        "a POST and a PATCH to URLs that answer 503: calls the server got",
        "a POST or PATCH may have done its work before failing: retry only when "
        "`method.upper()` is GET, HEAD, OPTIONS, PUT or DELETE.",
    ),
    Rule(
        "too-many-attempts",
        "make at most `max_attempts` calls in all",
        "URLs that always fail, with max_attempts 1, 3 and 10: attempts counted by a "
        "TraceConfig on the session",
        "count every call, the first included: `for attempt in range(max_attempts)`, and stop "
        "after the last one.",
    ),
    Rule(
        "status-not-retried",
        "retry transient failures: 408, 429, 500, 502, 503, 504",
        "each of those statuses twice, then 200",
        "retry each of 408, 429, 500, 502, 503 and 504: all of them are transient.",
    ),
    Rule(
        "gave-up-early",
        "make at most `max_attempts` calls (use them all while the failure is transient)",
        "a URL that always answers 503, with max_attempts=10",
        "stop only after `max_attempts` calls in all: `range(max_attempts)`, not "
        "`range(max_attempts - 1)`.",
    ),
    Rule(
        "connection-error-not-retried",
        "retry connection errors",
        "a reset, a server hang-up (aiohttp resends once by itself: one attempt may be two "
        "calls), a refused port, and a reset mid-job",
        "catch `aiohttp.ClientConnectionError` (resets, hang-ups, refused connections) and "
        "retry it like a 503.",
    ),
    Rule(
        "timeout-not-retried",
        "retry timeouts",
        "a session with `ClientTimeout(total=0.75)` and a URL that hangs once: `total` raises "
        "the builtin TimeoutError",
        "`total` raises the builtin `TimeoutError`, which is not an aiohttp.ClientError: "
        "catch `(aiohttp.ClientConnectionError, TimeoutError)`.",
    ),
    Rule(
        "error-swallowed",
        "when it stops, raise",
        "what came back from a 404, a POST, exhausted attempts and a persistent reset",
        "when you stop retrying, raise: `response.raise_for_status()` for a bad status, "
        "`raise` for the last exception. Never return None or the error's JSON.",
    ),
    Rule(
        "wrong-error",
        "`aiohttp.ClientResponseError` for a bad status (`raise_for_status()`), the last "
        "exception otherwise",
        "the type and status of what it raised",
        "for a bad status call `response.raise_for_status()`; for an exception, re-raise it "
        "with a bare `raise`. Do not wrap either in your own exception.",
    ),
    Rule(
        "wrong-result",
        "returns `await response.json()` of the first good answer",
        "the JSON returned, compared with the body of the 200 (a token per call)",
        "return `await response.json()` of the response that succeeded, read inside its "
        "`async with` block.",
    ),
    Rule(
        "no-backoff",
        "waiting `backoff_delay(...)` between them, with `await asyncio.sleep(...)`",
        "the asyncio.sleep calls asked for between attempts (read by the check's event loop)",
        "sleep between attempts: `await asyncio.sleep(backoff_delay(attempt, base_delay, "
        "max_delay))`.",
    ),
    Rule(
        "no-cap",
        "`backoff_delay(...)` with `max_delay` as the cap",
        "the largest sleep asked between attempts, with max_delay=0.03",
        "pass `max_delay` as the cap: `backoff_delay(attempt, base_delay, max_delay)`, not the "
        "defaults or your own numbers.",
    ),
    Rule(
        "not-exponential",
        "`backoff_delay(...)` with `base_delay`: the waits start at base_delay and double",
        "the sleeps asked in six runs of ten attempts, compared with min(max_delay, "
        "base_delay * 2**attempt)",
        "wait `backoff_delay(attempt, base_delay, max_delay)` with the attempt number, so the "
        "ceiling doubles with each retry.",
    ),
    Rule(
        "no-jitter",
        "`backoff_delay(...)`: random waits (task 1)",
        "the sleeps asked in six runs against URLs that always fail: all the same?",
        "call your `backoff_delay` from task 1, which draws a new random delay each time.",
    ),
    Rule(
        "ignored-retry-after",
        "when a 429 or 503 carries `Retry-After`, wait at least that long",
        "a 429 and a 503 with `Retry-After: 1`: the sleeps asked before the next attempt",
        'read `parse_retry_after(response.headers.get("Retry-After"))` and sleep at least '
        "that long: `max(wait, told)` or `told` alone.",
    ),
    Rule(
        "retry-after-503-ignored",
        "a 429 **or 503** carrying `Retry-After`",
        "a 503 with `Retry-After: 1` next to a 429 with the same header",
        "a 503 Service Unavailable can say when to come back too: honour Retry-After for both.",
    ),
    Rule(
        "retry-after-date-ignored",
        "`Retry-After` in either form (task 2: seconds or an HTTP date)",
        "a 429 whose Retry-After is an HTTP date: the sleep asked must last until that date",
        "parse the header with your `parse_retry_after` from task 2: it reads HTTP dates too.",
    ),
    Rule(
        "slept-holding-response",
        "release each failed response **before** it sleeps",
        "a 503 whose body is still arriving: at each asyncio.sleep the code asks for, is that "
        "response still holding its connection?",
        "leave the `async with` block (or call `response.release()`) before "
        "`await asyncio.sleep(...)`: sleeping inside it keeps the connection from everyone else.",
    ),
)

CLIENT_ERRORS = (400, 401, 403, 404, 422)
TRANSIENT = (408, 429, 500, 502, 503, 504)
FETCH_DEFAULTS = {"max_attempts": 4, "base_delay": 0.002, "max_delay": 0.02}
# The runs judged for backoff: ten attempts each, with ceilings that double and then cap.
WAIT_RUNS, WAIT_ATTEMPTS, WAIT_BASE, WAIT_CAP = 6, 10, 0.0005, 0.03
TIMEOUT_TOTAL = 1.0
# A sleep that ends this long before a Retry-After date still counts as waiting until it.
DATE_SLACK_SECONDS = 0.05


def _fetch_plan(scripted: Scripted, base: str) -> list[Run]:
    """Every scenario of the fetch_with_retry check, as runs with a URL each."""
    runs: list[Run] = []

    def add(name: str, method: str, acts: tuple[Act, ...], limit: int = 4, **options: Any) -> Run:
        key = f"f-{name}"
        url = base + scripted.add(key, *acts, limit=limit)
        options = {**FETCH_DEFAULTS, "max_attempts": limit, **options}
        run = Run(name, key, method, url, options, _story(acts))
        runs.append(run)
        return run

    for status in TRANSIENT:
        add(f"status-{status}", "GET", (Act("status", status), Act("status", status), OK))
    for status in CLIENT_ERRORS:
        add(f"client-{status}", "GET", (Act("status", status),))
    add("post", "POST", (Act("status", 503), Act("status", 503), OK))
    add("patch", "PATCH", (Act("status", 503), OK))
    add("put", "PUT", (Act("status", 503), OK))
    add("delete", "DELETE", (Act("status", 502), OK))
    for n in range(WAIT_RUNS):
        add(f"wait-{n}", "GET", (Act("status", 503),), limit=WAIT_ATTEMPTS,
            base_delay=WAIT_BASE, max_delay=WAIT_CAP)  # fmt: skip
    add("single", "GET", (Act("status", 503),), limit=1)
    add("reset", "GET", (Act("reset"),), limit=3)
    add("hangup", "GET", (Act("hangup"), Act("hangup"), OK))
    add("timeout", "GET", (Act("hang"), OK))
    add("ra-429", "GET", (Act("status", 429, "1"), OK))
    add("ra-503", "GET", (Act("status", 503, "1"), OK))
    add("ra-date", "GET", (Act("status", 429, "date"), OK))
    add("slow-body", "GET", (Act("slow-status", 503), OK))
    add("mid-job", "GET", (Act("status", 503), Act("reset"), Act("reset"), OK))
    refused = Run(
        "refused", "", "GET", refused_url("/s/refused"), {**FETCH_DEFAULTS, "max_attempts": 3}
    )
    runs.append(refused)
    return runs


@check(FETCH, timeout=20)
async def fetch_with_retry(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Every scenario at once against a scripted app: what was sent, waited, held and raised."""
    scripted = Scripted()
    saved = random.getstate()
    random.seed(f"{SEED}-fetch_with_retry")
    try:
        async with serve(scripted.app()) as base, contextlib.AsyncExitStack() as stack:
            runs = _fetch_plan(scripted, base)
            for run in runs:
                timeout = aiohttp.ClientTimeout(
                    total=TIMEOUT_TOTAL if run.name == "timeout" else 30
                )
                run.session = await stack.enter_async_context(
                    aiohttp.ClientSession(timeout=timeout, trace_configs=[_tracing(run)])
                )
            mine = spy.created

            async def call(run: Run) -> None:
                fn = functools.partial(learner, method=run.method, **run.options)
                try:
                    run.result = await call_async("fetch_with_retry", fn, run.session, run.url)
                except (NotImplementedError, Mistake):
                    raise
                except Exception as exc:
                    run.error = exc

            with _listening():
                await _run_all(runs, call, scripted)
            by_name = {run.name: run for run in runs}
            _judge_fetch(by_name, scripted, spy.created - mine)
    finally:
        random.setstate(saved)
    return (
        f"{len(runs)} calls at once: 408, 429 and 5xx, resets, a hang-up, a refused port and a "
        "timeout retried with capped, jittered, doubling waits; Retry-After honoured (seconds and "
        "date, 429 and 503); 4xx, POST and PATCH sent once; attempts kept to max_attempts; each "
        "failed response released before the sleep."
    )


def _hits(scripted: Scripted, run: Run) -> list[Hit]:
    return scripted.hits.get(run.key, [])


def _judge_fetch(runs: dict[str, Run], scripted: Scripted, own_sessions: int) -> None:
    if own_sessions:
        raise FETCH.broken(
            "own-session",
            f"fetch_with_retry created {plural(own_sessions, 'ClientSession')} of its own "
            "instead of using the `session` it was given.",
        )
    _expect_methods(runs, scripted)
    for status in CLIENT_ERRORS:
        run = runs[f"client-{status}"]
        calls = len(_hits(scripted, run))
        if calls > 1:
            raise FETCH.broken(
                "retried-4xx", f"a {status} answer was retried: the server got {calls} calls."
            )
    for name in ("post", "patch"):
        run = runs[name]
        calls = len(_hits(scripted, run))
        if calls > 1:
            raise FETCH.broken(
                "retried-non-idempotent",
                f"a {run.method} that failed with 503 was sent {calls} times.",
            )
    _expect_attempt_limits(runs, scripted)
    for status in TRANSIENT:
        run = runs[f"status-{status}"]
        calls = len(_hits(scripted, run))
        if calls == 1:
            raise FETCH.broken(
                "status-not-retried",
                f"a {status} was not retried: one call, then {_outcome(run)}.",
            )
        if calls < 3:
            raise FETCH.broken(
                "gave-up-early",
                f"with max_attempts=4, a URL that answers {status} twice and then 200 got "
                f"{plural(calls, 'call')}, then {_outcome(run)}.",
            )
    run = runs["wait-0"]
    if run.attempts < WAIT_ATTEMPTS:
        raise FETCH.broken(
            "gave-up-early",
            f"with max_attempts={WAIT_ATTEMPTS}, a URL that always answers 503 got "
            f"{plural(run.attempts, 'call')}.",
        )
    _expect_connection_retries(runs)
    run = runs["timeout"]
    if isinstance(run.error, TimeoutError):
        raise FETCH.broken(
            "timeout-not-retried",
            f"the first call timed out (ClientTimeout(total={TIMEOUT_TOTAL})) and was not retried: "
            f"{_outcome(run)}.",
        )
    _expect_raised(runs)
    waits = [runs[f"wait-{n}"] for n in range(WAIT_RUNS)]
    _judge_waits(FETCH, waits, WAIT_BASE, WAIT_CAP, "call")
    _expect_retry_after(runs, scripted)
    for name, run in runs.items():
        if name.startswith(("status-", "put", "delete", "hangup", "timeout", "ra-", "slow", "mid")):
            _expect_result(run, scripted)
    _expect_released(FETCH, runs["slow-body"])


def _outcome(run: Run) -> str:
    if run.error is not None:
        return f"it raised {exception_text(run.error)}"
    if not run.finished:
        return "it was still running"
    return f"it returned {clip(repr(run.result), 60)}"


def _expect_methods(runs: dict[str, Run], scripted: Scripted) -> None:
    for name in ("put", "delete", "post", "patch"):
        run = runs[name]
        sent = [hit.method for hit in _hits(scripted, run)]
        if any(method != run.method for method in sent):
            raise FETCH.broken(
                "wrong-method",
                f"fetch_with_retry(..., method={run.method!r}) sent {', '.join(sent)}.",
            )


def _expect_attempt_limits(runs: dict[str, Run], scripted: Scripted) -> None:
    for name in ("single", "reset", "refused", *(f"wait-{n}" for n in range(WAIT_RUNS))):
        run = runs[name]
        limit = run.options["max_attempts"]
        if run.attempts > limit:
            what = {"reset": "whose connection is always reset", "refused": "on a refused port"}
            more = "" if run.finished else " and counting"
            raise FETCH.broken(
                "too-many-attempts",
                f"with max_attempts={limit}, a URL {what.get(name, 'that always answers 503')} "
                f"got {run.attempts} attempts{more}.",
            )


def _expect_connection_retries(runs: dict[str, Run]) -> None:
    cases = (
        ("reset", "a connection reset", 3),
        ("refused", "a refused connection", 3),
    )
    for name, what, limit in cases:
        run = runs[name]
        if run.attempts < limit:
            raise FETCH.broken(
                "connection-error-not-retried",
                f"with max_attempts={limit}, {what} was tried {plural(run.attempts, 'time')}, "
                f"then {_outcome(run)}.",
            )
    for name, what, needed in (
        ("hangup", "the server hung up twice (ServerDisconnectedError) before answering", 2),
        ("mid-job", "a 503, then a connection reset, then 200", 3),
    ):
        run = runs[name]
        if run.error is not None and run.attempts < needed:
            raise FETCH.broken(
                "connection-error-not-retried",
                f"{what}: fetch_with_retry raised {exception_text(run.error)} after "
                f"{plural(run.attempts, 'attempt')} instead of trying again.",
            )


def _expect_raised(runs: dict[str, Run]) -> None:
    stops = [(f"client-{s}", s, f"a {s}") for s in CLIENT_ERRORS]
    stops += [("post", 503, "a failed POST"), ("patch", 503, "a failed PATCH")]
    stops += [("single", 503, "max_attempts=1 and a 503"), ("wait-0", 503, "10 failed attempts")]
    for name, status, what in stops:
        run = runs[name]
        error = run.error
        if error is None:
            raise FETCH.broken(
                "error-swallowed",
                f"after {what} fetch_with_retry returned {clip(repr(run.result), 60)} instead of "
                "raising.",
            )
        if not isinstance(error, aiohttp.ClientResponseError) or error.status != status:
            raise FETCH.broken(
                "wrong-error",
                f"after {what} fetch_with_retry raised {exception_text(error)}"
                f"{_origin(error)}; expected aiohttp.ClientResponseError with status {status}.",
            )
    for name, what in (("reset", "3 connection resets"), ("refused", "3 refused connections")):
        run = runs[name]
        if run.error is None:
            raise FETCH.broken(
                "error-swallowed",
                f"after {what} fetch_with_retry returned {clip(repr(run.result), 60)} instead of "
                "raising the last error.",
            )
        if not isinstance(run.error, aiohttp.ClientConnectionError):
            raise FETCH.broken(
                "wrong-error",
                f"after {what} fetch_with_retry raised {exception_text(run.error)}"
                f"{_origin(run.error)}; expected the last exception, an aiohttp "
                "ClientConnectionError.",
            )


def _origin(error: BaseException) -> str:
    where = learner_line(error)
    return f" ({where})" if where else ""


def _expect_result(run: Run, scripted: Scripted) -> None:
    hits = _hits(scripted, run)
    good = [hit for hit in hits if hit.act.kind in ("ok", "hang")]
    what = f"for {run.story}"
    if run.error is not None:
        late = isinstance(run.error, aiohttp.ClientConnectionError) and "closed" in str(run.error)
        raise FETCH.broken(
            "wrong-result",
            f"{what}, fetch_with_retry raised {exception_text(run.error)}{_origin(run.error)}"
            + (
                ": the body was read after the response was released (outside `async with`?)."
                if late
                else "."
            ),
        )
    result = run.result
    if inspect.iscoroutine(result):
        result.close()
        raise FETCH.broken(
            "missing-await",
            f"{what}, fetch_with_retry returned a coroutine: `await response.json()`.",
        )
    expected = {"key": run.key, "call": len(hits), "token": _token(good[-1])} if good else None
    if result == expected:
        return
    if isinstance(result, aiohttp.ClientResponse):
        got = "the response object"
    elif isinstance(result, (str, bytes)):
        got = f"{type(result).__name__} (the body unparsed)"
    else:
        got = clip(repr(result), 80)
    raise FETCH.broken("wrong-result", f"{what}, fetch_with_retry returned {got}.")


def _expect_retry_after(runs: dict[str, Run], scripted: Scripted) -> None:
    for name, code in (("ra-date", "retry-after-date-ignored"), ("ra-429", "ignored-retry-after"),
                       ("ra-503", "retry-after-503-ignored")):  # fmt: skip
        run = runs[name]
        if run.error is not None and run.attempts < 2:
            raise FETCH.broken(
                code,
                f"for {run.story}, fetch_with_retry raised {exception_text(run.error)}"
                f"{_origin(run.error)} instead of waiting and trying again.",
            )
    honoured = {}
    for name in ("ra-429", "ra-503"):
        run = runs[name]
        if run.attempts < 2:
            raise FETCH.broken(
                "status-not-retried",
                f"a {run.name[3:]} with `Retry-After: 1` was not retried: {_outcome(run)}.",
            )
        honoured[name] = sum(a.delay for a in run.asked_after(0)) >= 1.0 - 1e-3
    if not any(honoured.values()):
        asked = sum(a.delay for a in runs["ra-429"].asked_after(0))
        raise FETCH.broken(
            "ignored-retry-after",
            f"a 429 said `Retry-After: 1`; the code asked to sleep {asked:.3g} s before the next "
            "call.",
        )
    if not honoured["ra-503"]:
        asked = sum(a.delay for a in runs["ra-503"].asked_after(0))
        raise FETCH.broken(
            "retry-after-503-ignored",
            f"a 429 with `Retry-After: 1` was waited for, but after a 503 with the same header "
            f"the code slept {asked:.3g} s.",
        )
    if not honoured["ra-429"]:
        asked = sum(a.delay for a in runs["ra-429"].asked_after(0))
        raise FETCH.broken(
            "ignored-retry-after",
            f"a 503 with `Retry-After: 1` was waited for, but after a 429 with the same header "
            f"the code slept {asked:.3g} s.",
            "a 429 Too Many Requests says how long to wait in Retry-After: honour it for 429 "
            "and 503.",
        )
    run = runs["ra-date"]
    hits = _hits(scripted, run)
    if run.attempts < 2:
        raise FETCH.broken(
            "status-not-retried",
            f"a 429 with a Retry-After date was not retried: {_outcome(run)}.",
        )
    until = hits[0].retry_at if hits and hits[0].retry_at else 0.0
    asked = run.asked_after(0)
    slept_until = max((a.wall + a.delay for a in asked), default=0.0)
    if slept_until < until - DATE_SLACK_SECONDS:
        short = until - max(slept_until, min((a.wall for a in asked), default=time.time()))
        raise FETCH.broken(
            "retry-after-date-ignored",
            f"a 429 said `Retry-After: {email.utils.formatdate(until, usegmt=True)}` (an HTTP "
            f"date); the code's sleep ended about {short:.2f} s before that date.",
        )


def _expect_released(table: Task, run: Run) -> None:
    held = [a for a in run.asked if a.holding]
    if held:
        where = f" ({held[0].where})" if held[0].where else ""
        raise table.broken(
            "slept-holding-response",
            f"the code asked to sleep {held[0].delay:.3g} s{where} while a failed 503, whose body "
            "was still arriving, held its connection.",
        )


# --- task 4: retry_middleware -----------------------------------------------------------------

MIDDLEWARE = Task(
    "retry_middleware",
    Rule(
        "not-a-factory",
        "`retry_middleware(max_attempts, base_delay, max_delay)` **returns** a client middleware",
        "what calling retry_middleware(5, 0.001, 0.02) gave",
        "write a plain `def retry_middleware(...)` that defines `async def middleware(request, "
        "handler)` inside it and ends with `return middleware`.",
    ),
    Rule(
        "returned-none",
        "It returns the last response",
        "what the middleware returned to aiohttp (a probe middleware around it)",
        "every path must end with `return response`: a loop that falls off its end returns None.",
    ),
    Rule(
        "counter-shared",
        "at most `max_attempts` calls **for each request**",
        "two requests one after the other through the same session, each to a URL that always "
        "fails: handler calls for each",
        "count the attempts inside `middleware`, per call: a counter in `retry_middleware` "
        "itself is shared by every request of the session.",
    ),
    Rule(
        "retried-4xx",
        "retry only a transient status (408, 429, 500, 502, 503, 504)",
        "400, 401, 403, 404 and 422: calls of handler()",
        "a 4xx other than 408 and 429 is final: return it at once.",
    ),
    Rule(
        "retried-non-idempotent",
        "on an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE)",
        "a POST and a PATCH to URLs that answer 503: calls of handler()",
        "look at `request.method` before retrying: never retry POST or PATCH.",
    ),
    Rule(
        "too-many-attempts",
        "at most `max_attempts` calls of the handler in all",
        "URLs that always answer 503, with max_attempts 5 and 10: calls of handler(), counted "
        "by a probe middleware inside yours",
        "count every call of `handler`, the first included, and return the response of the "
        "last one.",
    ),
    Rule(
        "status-not-retried",
        "for a transient status (408, 429, 500, 502, 503, 504) ... calls the handler again",
        "each of those statuses twice, then 200",
        "retry each of 408, 429, 500, 502, 503 and 504: all of them are transient.",
    ),
    Rule(
        "gave-up-early",
        "calls the handler again, up to `max_attempts` times in all",
        "a URL that always answers 503, with max_attempts=5 and 10",
        "keep calling `handler` until it has been called `max_attempts` times.",
    ),
    Rule(
        "raised-instead-of-returning",
        "It returns the last response (the caller decides, with `raise_for_status()`)",
        "what the session call gave when the attempts ran out, and for a 404",
        "return the last response as it is: do not call `raise_for_status()` in the middleware.",
    ),
    Rule(
        "returned-released",
        "returns the last response **unreleased** (the caller reads it)",
        "the caller reads the body of the response the middleware returned",
        "release only the responses you retry; the one you return is the caller's to read.",
    ),
    Rule(
        "wrong-response",
        "It returns the **last** response",
        "the status the caller got, compared with the last one the handler returned",
        "return the response of the last `handler` call, not an earlier one.",
    ),
    Rule(
        "retried-dropped-connection",
        "let exceptions from the handler propagate: aiohttp resends a dropped connection once "
        "by itself",
        "URLs whose connection is always reset, or closed without an answer: calls of "
        "handler() (2 with aiohttp's resend)",
        "do not catch ClientOSError or ServerDisconnectedError: aiohttp resends the request "
        "once and runs your whole middleware again, so retrying them too multiplies the calls.",
    ),
    Rule(
        "no-backoff",
        "waits `backoff_delay(...)` (`await asyncio.sleep`) and calls the handler again",
        "the asyncio.sleep calls asked for between calls of handler()",
        "sleep before each retry: `await asyncio.sleep(backoff_delay(attempt, base_delay, "
        "max_delay))`.",
    ),
    Rule(
        "no-cap",
        "`backoff_delay(...)` with `max_delay` as the cap",
        "the largest sleep asked between calls, with max_delay=0.03",
        "pass `max_delay` as the cap: `backoff_delay(attempt, base_delay, max_delay)`.",
    ),
    Rule(
        "not-exponential",
        "`backoff_delay(...)` with `base_delay`: waits that start small and double",
        "the sleeps asked in six requests of ten calls, compared with the ceilings",
        "wait `backoff_delay(attempt, base_delay, max_delay)` with the attempt number.",
    ),
    Rule(
        "no-jitter",
        "`backoff_delay(...)`: random waits (task 1)",
        "the sleeps asked in six requests to URLs that always fail: all the same?",
        "call your `backoff_delay` from task 1, which draws a new random delay each time.",
    ),
    Rule(
        "slept-holding-response",
        "releases the response, waits `backoff_delay(...)`",
        "a 503 whose body is still arriving: at each asyncio.sleep, is it still holding its "
        "connection?",
        "call `response.release()` before `await asyncio.sleep(...)`.",
    ),
)
MIDDLEWARE_MAIN = (5, 0.001, 0.02)
MIDDLEWARE_WAITS = (WAIT_ATTEMPTS, WAIT_BASE, WAIT_CAP)


def _middleware_from(learner: Any, args: tuple[int, float, float]) -> Any:
    """Call the learner's factory; the Mistake that says what it gave instead of a middleware."""
    call = f"retry_middleware{args}"
    try:
        made = learner(*args)
    except TypeError as exc:
        if "positional argument" in str(exc):
            raise MIDDLEWARE.broken(
                "not-a-factory",
                f"{call} raised {exception_text(exc)}: retry_middleware looks like the "
                "middleware itself, taking (request, handler).",
            ) from None
        raise
    if inspect.iscoroutine(made):
        made.close()
        raise MIDDLEWARE.broken(
            "not-a-factory",
            f"{call} returned a coroutine: retry_middleware is `async def`; it must be a plain "
            "`def` that returns the middleware.",
        )
    if not callable(made):
        raise MIDDLEWARE.broken(
            "not-a-factory", f"{call} returned {clip(repr(made), 60)}, not a middleware."
        )
    return made


class Probe:
    """Middlewares around the learner's: what aiohttp gave it, and what it did with it."""

    async def outer(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        run = _RUN.get()
        if run is not None:
            run.passes += 1
        response = await handler(request)
        if not isinstance(response, aiohttp.ClientResponse):
            if inspect.iscoroutine(response):
                response.close()
                raise MIDDLEWARE.broken(
                    "missing-await",
                    "the middleware returned a coroutine: `return await handler(request)`.",
                )
            raise MIDDLEWARE.broken(
                "returned-none",
                f"for {request.method} {request.url.path}, after "
                f"{plural(run.attempts if run else 0, 'call')} of handler(), the middleware "
                f"returned {clip(repr(response), 60)} instead of a response.",
            )
        if run is not None:
            run.returned = response
        return response

    async def inner(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        run = _RUN.get()
        if run is not None:
            run.starts.append(asyncio.get_running_loop().time())
        response = await handler(request)
        if run is not None:
            run.responses.append(response)
        return response


async def _send(run: Run) -> None:
    """The caller's side: the request through the session, its body read inside async with."""
    assert run.session is not None
    try:
        async with run.session.request(run.method, run.url) as response:
            run.status = response.status
            run.body = await response.read()
    except (Mistake, NotImplementedError):
        raise
    except Exception as exc:
        run.error = exc


def _middleware_plan(scripted: Scripted, base: str) -> tuple[list[Run], list[Run], list[Run]]:
    """(the sequential pair, the runs at once through the main session, the waits' runs)."""

    def run(name: str, method: str, *acts: Act, limit: int = MIDDLEWARE_MAIN[0]) -> Run:
        key = f"m-{name}"
        url = base + scripted.add(key, *acts, limit=limit)
        return Run(name, key, method, url, story=_story(acts))

    pair_path = scripted.add("m-pair", Act("status", 503), limit=2 * MIDDLEWARE_MAIN[0])
    pair = [Run(f"pair-{n}", "m-pair", "GET", base + pair_path) for n in (1, 2)]
    main = [run(f"status-{s}", "GET", Act("status", s), Act("status", s), OK) for s in TRANSIENT]
    main += [run(f"client-{s}", "GET", Act("status", s)) for s in CLIENT_ERRORS]
    main += [
        run("post", "POST", Act("status", 503), Act("status", 503), OK),
        run("patch", "PATCH", Act("status", 503), OK),
        run("put", "PUT", Act("status", 503), OK),
        run("delete", "DELETE", Act("status", 502), OK),
        run("down", "GET", Act("status", 503)),
        run("varied", "GET", *(Act("status", s) for s in (503, 502, 500, 504, 500))),
        run("reset", "GET", Act("reset")),
        run("hangup", "GET", Act("hangup")),
        run("slow-body", "GET", Act("slow-status", 503), OK),
        run("mid-job", "GET", Act("status", 503), Act("reset"), OK),
    ]
    waits = [
        run(f"wait-{n}", "GET", Act("status", 503), limit=WAIT_ATTEMPTS) for n in range(WAIT_RUNS)
    ]
    return pair, main, waits


@check(MIDDLEWARE, timeout=20)
async def retry_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """The learner's middleware in real sessions, between two probes, against a scripted app."""
    main_mw = _middleware_from(learner, MIDDLEWARE_MAIN)
    waits_mw = _middleware_from(learner, MIDDLEWARE_WAITS)
    probe = Probe()
    scripted = Scripted()
    saved = random.getstate()
    random.seed(f"{SEED}-retry_middleware")
    try:
        async with serve(scripted.app()) as base, contextlib.AsyncExitStack() as stack:
            pair, main, waits = _middleware_plan(scripted, base)

            async def session(mw: Any) -> aiohttp.ClientSession:
                return await stack.enter_async_context(
                    aiohttp.ClientSession(middlewares=(probe.outer, mw, probe.inner))
                )

            main_session, waits_session = await session(main_mw), await session(waits_mw)
            for run in (*pair, *main):
                run.session = main_session
            for run in waits:
                run.session = waits_session
            with _listening():
                for run in pair:
                    await _run_all([run], _send, scripted)
                await _run_all([*main, *waits], _send, scripted)
            _judge_middleware(pair, {r.name: r for r in main}, waits)
    finally:
        random.setstate(saved)
    return (
        "through real sessions: 408, 429 and 5xx retried with capped, jittered, doubling waits, "
        "each failed response released first; 4xx, POST and PATCH sent once; max_attempts kept "
        "per request; the last response returned unreleased; resets left to aiohttp's own resend."
    )


def _judge_middleware(pair: list[Run], runs: dict[str, Run], waits: list[Run]) -> None:
    limit = MIDDLEWARE_MAIN[0]
    first, second = pair
    if first.attempts == limit and second.attempts < limit:
        raise MIDDLEWARE.broken(
            "counter-shared",
            f"two requests one after the other through one session, to a URL that always "
            f"answers 503: the first made {first.attempts} calls of handler(), the second only "
            f"{second.attempts} (max_attempts={limit}).",
        )
    for status in CLIENT_ERRORS:
        run = runs[f"client-{status}"]
        if run.attempts > 1:
            raise MIDDLEWARE.broken(
                "retried-4xx", f"a {status} was retried: {run.attempts} calls of handler()."
            )
    for name in ("post", "patch"):
        run = runs[name]
        if run.attempts > 1:
            raise MIDDLEWARE.broken(
                "retried-non-idempotent",
                f"a {run.method} that failed with 503 was sent {run.attempts} times.",
            )
    for run in (runs["down"], *pair, *waits):
        cap = WAIT_ATTEMPTS if run in waits else limit
        if run.attempts > cap:
            more = "" if run.finished else " and counting"
            raise MIDDLEWARE.broken(
                "too-many-attempts",
                f"with max_attempts={cap}, a URL that always answers 503 got {run.attempts} "
                f"calls of handler(){more}.",
            )
    for status in TRANSIENT:
        run = runs[f"status-{status}"]
        if run.attempts == 1:
            raise MIDDLEWARE.broken(
                "status-not-retried",
                f"a {status} was not retried: one call of handler(), then {_m_outcome(run)}.",
            )
        if run.attempts < 3:
            raise MIDDLEWARE.broken(
                "gave-up-early",
                f"a URL that answers {status} twice, then 200, got {run.attempts} calls of "
                f"handler() (max_attempts={limit}).",
            )
    for run in (runs["down"], waits[0]):
        cap = WAIT_ATTEMPTS if run is waits[0] else limit
        if run.attempts < cap:
            raise MIDDLEWARE.broken(
                "gave-up-early",
                f"with max_attempts={cap}, a URL that always answers 503 got only "
                f"{run.attempts} calls of handler().",
            )
    _expect_returned(runs)
    _expect_dropped_connections(runs)
    _judge_waits(MIDDLEWARE, waits, WAIT_BASE, WAIT_CAP, "call")
    _expect_released(MIDDLEWARE, runs["slow-body"])


def _m_outcome(run: Run) -> str:
    if run.error is not None:
        return f"the caller got {exception_text(run.error)}"
    return f"the caller got {run.status}"


def _expect_returned(runs: dict[str, Run]) -> None:
    final = [(f"client-{s}", s) for s in CLIENT_ERRORS] + [("down", 503), ("post", 503)]
    final += [("varied", 500)]
    final += [(f"status-{s}", 200) for s in TRANSIENT] + [("put", 200), ("delete", 200)]
    for name, status in final:
        run = runs[name]
        error = run.error
        if isinstance(error, aiohttp.ClientResponseError) and run.status is None:
            raise MIDDLEWARE.broken(
                "raised-instead-of-returning",
                f"for {run.method} {_path(run)} the caller got {exception_text(error)}"
                f"{_origin(error)} instead of the {error.status} response.",
            )
        if error is not None and run.status is not None:
            raise MIDDLEWARE.broken(
                "returned-released",
                f"reading the {run.status} response the middleware returned failed with "
                f"{exception_text(error)}: it had been released.",
            )
        if error is not None:
            raise MIDDLEWARE.broken(
                "raised",
                f"for {run.method} {_path(run)} the session raised {exception_text(error)}"
                f"{_origin(error)}.",
            )
        last = run.responses[-1].status if run.responses else None
        if run.status != last:
            raise MIDDLEWARE.broken(
                "wrong-response",
                f"for {run.method} {_path(run)} the handler's last response was {last}, but "
                f"the caller got {run.status}.",
            )
        if run.status != status:
            raise MIDDLEWARE.broken(
                "wrong-response",
                f"for {run.method} {_path(run)} the caller got {run.status}; expected {status}.",
            )


def _path(run: Run) -> str:
    return "/" + run.url.split("/", 3)[-1]


def _expect_dropped_connections(runs: dict[str, Run]) -> None:
    for name, what in (
        ("reset", "whose connection is always reset (ClientOSError)"),
        ("hangup", "whose server always closes without answering (ServerDisconnectedError)"),
    ):
        run = runs[name]
        if run.attempts > run.passes:
            raise MIDDLEWARE.broken(
                "retried-dropped-connection",
                f"a URL {what} got {run.attempts} calls of handler(): aiohttp resent it once "
                f"itself and ran your middleware {plural(run.passes, 'time')}, and your loop "
                "retried each time.",
            )
        if run.error is None:
            raise MIDDLEWARE.broken(
                "wrong-response",
                f"a URL {what} gave the caller status {run.status} instead of the exception.",
            )
    run = runs["mid-job"]
    if run.error is not None:
        raise MIDDLEWARE.broken(
            "raised",
            f"{run.story} (aiohttp resends the reset): the caller got "
            f"{exception_text(run.error)}{_origin(run.error)}.",
        )
    if run.status != 200:
        raise MIDDLEWARE.broken(
            "wrong-response",
            f"{run.story} (aiohttp resends the reset): the caller got {run.status}.",
        )
