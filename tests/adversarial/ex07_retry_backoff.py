"""Learner answers to exercise 07 (retry with backoff), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from datetime import UTC, datetime

import aiohttp

from adversarial import correct, wrong
from local_server.checks import retry_backoff as check

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


# The learner's own answers to tasks 1 and 2, as the notebook's later cells would call them.
def backoff_delay(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def parse_retry_after(value):
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- Task 1 · backoff_delay ----------------------------------------------------------------


@correct(check.backoff_delay, "random.random() times the ceiling, exponent capped at 1000")
def backoff_delay_random_times_ceiling(attempt, base, cap):
    return random.random() * min(cap, base * 2.0 ** min(attempt, 1000))


@correct(check.backoff_delay, "compares the exponent in log space before computing any power")
def backoff_delay_log_space(attempt, base, cap):
    if base <= 0 or attempt >= math.log2(cap / base):
        ceiling = cap
    else:
        ceiling = base * 2**attempt
    return random.uniform(0.0, ceiling)


@correct(check.backoff_delay, "doubles in a loop and stops at the cap")
def backoff_delay_doubling_loop(attempt, base, cap):
    ceiling = min(base, cap)
    for _ in range(attempt):
        if ceiling >= cap:
            break
        ceiling = min(cap, ceiling * 2)
    return random.uniform(0, ceiling)


@correct(check.backoff_delay, "catches OverflowError and falls back to the cap, SystemRandom")
def backoff_delay_overflow_fallback(attempt, base, cap):
    try:
        ceiling = min(cap, base * 2**attempt)
    except OverflowError:
        ceiling = cap
    return random.SystemRandom().uniform(0, ceiling)


@wrong(check.backoff_delay, "no jitter: always the ceiling itself",
       rule="It must be **random** ... each call draws its own value",
       problem="no-jitter")
def backoff_delay_no_jitter(attempt, base, cap):
    return min(cap, base * 2 ** min(attempt, 64))


@wrong(check.backoff_delay, "no cap: the exponent is bounded but the delay is not",
       rule="never exceeds `cap`",
       problem="above-cap")
def backoff_delay_no_cap(attempt, base, cap):
    return random.uniform(0, base * 2 ** min(attempt, 64))


@wrong(check.backoff_delay, "float overflow for a large attempt",
       rule="It must not overflow for a large `attempt` (try 2000)",
       problem="overflow")
def backoff_delay_overflows(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2**attempt))


@wrong(check.backoff_delay, "jitter added on top of the capped ceiling: can exceed the cap",
       rule="random in `[0, min(cap, base * 2**attempt)]`",
       problem="above-ceiling")
def backoff_delay_jitter_on_top(attempt, base, cap):
    return min(cap, base * 2 ** min(attempt, 64)) + random.uniform(0, base)


@wrong(check.backoff_delay, "equal jitter: never below half the ceiling",
       rule="A backoff delay with full jitter ... random in `[0, min(cap, base * 2**attempt)]`",
       problem="not-full-jitter")
def backoff_delay_equal_jitter(attempt, base, cap):
    ceiling = min(cap, base * 2 ** min(attempt, 64))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@wrong(check.backoff_delay, "off by one: attempt 0 already has a ceiling of 2 * base",
       rule="`min(cap, base * 2**attempt)` (0 for the first retry)",
       problem="above-ceiling")
def backoff_delay_off_by_one(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt + 1, 64)))


@wrong(check.backoff_delay, "seeds the generator with the attempt: the same value every call",
       rule="each call draws its own value",
       problem="no-jitter")
def backoff_delay_seeded_by_attempt(attempt, base, cap):
    return random.Random(attempt).uniform(0, min(cap, base * 2 ** min(attempt, 64)))


@wrong(check.backoff_delay, "lower bound is base instead of 0",
       rule="random in `[0, min(cap, base * 2**attempt)]`",
       problem="not-full-jitter")
def backoff_delay_from_base(attempt, base, cap):
    return random.uniform(base, min(cap, base * 2 ** min(attempt, 64)))


_JITTER = random.random()


@wrong(check.backoff_delay, "draws the jitter once at import, then reuses it",
       rule="each call draws its own value",
       problem="no-jitter")
def backoff_delay_jitter_drawn_once(attempt, base, cap):
    return _JITTER * min(cap, base * 2 ** min(attempt, 64))


# --- Task 2 · parse_retry_after ------------------------------------------------------------


@correct(check.parse_retry_after, "float() first, then parsedate_tz + mktime_tz")
def parse_retry_after_float_then_mktime_tz(value):
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


@correct(check.parse_retry_after, "int() for the seconds, datetime.timestamp() for the date")
def parse_retry_after_int_and_timestamp(value):
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = int(text)
    except ValueError:
        pass
    else:
        return float(seconds) if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


@correct(check.parse_retry_after, "strptime of the IMF-fixdate format, regex-free digits test")
def parse_retry_after_strptime(value):
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@correct(check.parse_retry_after, "a broad except around the whole parse")
def parse_retry_after_broad_except(value):
    try:
        if value.strip().isdigit():
            return float(value)
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except Exception:
        return None


@wrong(check.parse_retry_after, "understands only the seconds form",
       rule="or an HTTP date (`\"Wed, 21 Oct 2026 07:28:00 GMT\"`)",
       problem="date-not-parsed")
def parse_retry_after_seconds_only(value):
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


@wrong(check.parse_retry_after, "a date in the past gives a negative number",
       rule="a date in the past means 0",
       problem="past-date-not-zero")
def parse_retry_after_negative_for_past(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when - datetime.now(UTC)).total_seconds()


@wrong(check.parse_retry_after, "a negative number is returned as it is",
       rule="Return `None` for ... a negative number",
       problem="bad-value-accepted")
def parse_retry_after_accepts_negative(value):
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@wrong(check.parse_retry_after, "raises ValueError for a value it cannot read",
       rule="anything else you cannot read; never raise",
       problem="raised-on-bad-value")
def parse_retry_after_raises_on_garbage(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@wrong(check.parse_retry_after, "returns the date as an absolute timestamp, not seconds from now",
       rule='which means "that many seconds from now"',
       problem="date-not-relative")
def parse_retry_after_absolute_timestamp(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


@wrong(check.parse_retry_after, "naive datetime.now(): subtracting raises TypeError for a date",
       rule="never raise",
       problem="date-not-parsed")
def parse_retry_after_naive_now(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now()).total_seconds())


@wrong(check.parse_retry_after, "returns an int for the seconds form", rule="as a float",
       problem="not-a-float")
def parse_retry_after_returns_int(value):
    if not value:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@wrong(check.parse_retry_after, "no None test: None.strip() raises AttributeError",
       rule="Return `None` for `None` ... never raise",
       problem="raised-on-bad-value")
def parse_retry_after_no_none_test(value):
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@wrong(check.parse_retry_after, "a date in the past gives None instead of 0",
       rule="a date in the past means 0",
       problem="past-date-not-zero")
def parse_retry_after_past_is_none(value):
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return seconds if seconds >= 0 else None


@wrong(check.parse_retry_after, "time.mktime reads the date as local time, not GMT",
       rule='an HTTP date ... which means "that many seconds from now"',
       problem="date-read-as-local")
def parse_retry_after_mktime_local(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate(value)
    if parsed is None:
        return None
    return max(0.0, time.mktime(parsed) - time.time())


# --- Task 3 · fetch_with_retry -------------------------------------------------------------


@correct(check.fetch_with_retry, "while loop with an attempt counter")
async def fetch_with_retry_while(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    retryable = method.upper() in IDEMPOTENT
    attempt = 0
    while True:
        final = attempt + 1 >= max_attempts or not retryable
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or final:
                    response.raise_for_status()
                    return await response.json()
                if response.status in (429, 503):
                    told = parse_retry_after(response.headers.get("Retry-After"))
                    if told is not None:
                        wait = max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if final:
                raise
        await asyncio.sleep(wait)
        attempt += 1


@correct(check.fetch_with_retry, "raise_for_status() always, decisions in the except clauses")
async def fetch_with_retry_via_exceptions(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                response.raise_for_status()
                return await response.json()
        except aiohttp.ClientResponseError as error:
            if error.status not in RETRY_STATUSES or last:
                raise
            told = parse_retry_after((error.headers or {}).get("Retry-After"))
            if told is not None:
                wait = max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


@correct(check.fetch_with_retry, "no async with: release() in a finally, Retry-After replaces wait")
async def fetch_with_retry_explicit_release(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    may_retry = method.upper() in IDEMPOTENT
    for attempt in range(max_attempts):
        give_up = not may_retry or attempt == max_attempts - 1
        try:
            response = await session.request(method, url)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if give_up:
                raise
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
            continue
        try:
            if give_up or response.status not in RETRY_STATUSES:
                response.raise_for_status()
                return await response.json()
            told = parse_retry_after(response.headers.get("Retry-After"))
        finally:
            response.release()
        wait = told if told is not None else backoff_delay(attempt, base_delay, max_delay)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


async def _one_try(session, method, url, final):
    """(True, data) for a good answer; (False, seconds the server asked to wait) otherwise."""
    async with session.request(method, url) as response:
        if response.status in RETRY_STATUSES and not final:
            return False, parse_retry_after(response.headers.get("Retry-After"))
        response.raise_for_status()
        return True, await response.json()


@correct(check.fetch_with_retry, "a helper for one try; the loop only decides and sleeps")
async def fetch_with_retry_helper(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    attempts = max_attempts if method.upper() in IDEMPOTENT else 1
    for attempt in range(attempts):
        final = attempt == attempts - 1
        try:
            ok, value = await _one_try(session, method, url, final)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if final:
                raise
            ok, value = False, None
        if ok:
            return value
        await asyncio.sleep(max(backoff_delay(attempt, base_delay, max_delay), value or 0))
    raise AssertionError("unreachable")


@wrong(check.fetch_with_retry, "retries every error raise_for_status() raises, 4xx included",
       rule="retry only **transient** failures: connection errors, timeouts, 408, 429 and 5xx",
       problem="retried-4xx")
async def fetch_with_retry_retries_4xx(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                told = parse_retry_after(response.headers.get("Retry-After"))
                if told is not None:
                    wait = max(wait, told)
                response.raise_for_status()
                return await response.json()
        except (aiohttp.ClientError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "retries a POST like any other method",
       rule="retry only **idempotent** methods ... a POST is sent once",
       problem="retried-non-idempotent")
async def fetch_with_retry_retries_post(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "retries only 503, not 408/429/500/502/504",
       rule="408, 429 and 5xx",
       problem="status-not-retried")
async def fetch_with_retry_only_503(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status != 503 or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "ignores Retry-After", rule="when a 429 or 503 carries "
       "`Retry-After`, wait at least that long instead",
       problem="ignored-retry-after")
async def fetch_with_retry_ignores_retry_after(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))


@wrong(check.fetch_with_retry, "reads Retry-After with float(): the HTTP-date form is ignored",
       rule="when a 429 or 503 carries `Retry-After`, wait at least that long (task 2: seconds "
       "or an HTTP date)",
       problem="retry-after-date-ignored")
async def fetch_with_retry_retry_after_seconds_only(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                try:
                    wait = max(wait, float(response.headers.get("Retry-After", "")))
                except ValueError:
                    pass
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "sleeps inside async with, still holding the failed response",
       rule="release each failed response **before** it sleeps",
       problem="slept-holding-response")
async def fetch_with_retry_sleeps_holding(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                await asyncio.sleep(wait if told is None else max(wait, told))
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
            await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "time.sleep() for the backoff blocks the event loop",
       rule="waiting `backoff_delay(...)` between them",
       problem="blocked-loop")
async def fetch_with_retry_time_sleep(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        time.sleep(wait)


@wrong(check.fetch_with_retry, "max_attempts retries after the first call: one call too many",
       rule="make at most `max_attempts` calls in all",
       problem="too-many-attempts")
async def fetch_with_retry_one_call_too_many(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts + 1):
        last = attempt == max_attempts or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "returns None once the attempts are used up",
       rule="when it stops (... attempts used up), raise",
       problem="error-swallowed")
async def fetch_with_retry_returns_none(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        if attempt and method.upper() not in IDEMPOTENT:
            return None
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            pass
        if attempt < max_attempts - 1:
            await asyncio.sleep(wait)
    return None


@wrong(check.fetch_with_retry, "raises its own RuntimeError when it gives up",
       rule="raise: `aiohttp.ClientResponseError` for a bad status, the last exception otherwise",
       problem="wrong-error")
async def fetch_with_retry_raises_runtime_error(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    attempts = max_attempts if method.upper() in IDEMPOTENT else 1
    for attempt in range(attempts):
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            pass
        if attempt < attempts - 1:
            await asyncio.sleep(wait)
    raise RuntimeError(f"{method} {url} failed {attempts} times")


@wrong(check.fetch_with_retry, "does not retry connection errors or timeouts",
       rule="retry only **transient** failures: connection errors, timeouts, ...",
       problem="connection-error-not-retried")
async def fetch_with_retry_no_connection_retry(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        async with session.request(method, url) as response:
            if response.status not in RETRY_STATUSES or last:
                response.raise_for_status()
                return await response.json()
            told = parse_retry_after(response.headers.get("Retry-After"))
            wait = wait if told is None else max(wait, told)
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "retries connection errors but not timeouts (total raises the "
       "builtin TimeoutError)", rule="connection errors, timeouts, 408, 429 and 5xx",
       problem="timeout-not-retried")
async def fetch_with_retry_no_timeout_retry(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except aiohttp.ClientConnectionError:
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "retries at once, no backoff between the calls",
       rule="waiting `backoff_delay(...)` between them",
       problem="no-backoff")
async def fetch_with_retry_no_backoff(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
            told = None
        if told is not None:
            await asyncio.sleep(told)


@wrong(check.fetch_with_retry, "always sends a GET, whatever `method` says",
       rule="sends the request (`method=`)",
       problem="wrong-method")
async def fetch_with_retry_always_get(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.get(url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "a POST is sent once but its error answer is returned as data",
       rule="when it stops (a 4xx, a POST, ...), raise `aiohttp.ClientResponseError`",
       problem="error-swallowed")
async def fetch_with_retry_post_not_raised(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    if method.upper() not in IDEMPOTENT:
        async with session.request(method, url) as response:
            return await response.json()
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "honours Retry-After for a 429 only, not for a 503",
       rule="when a 429 or 503 carries `Retry-After`, wait at least that long",
       problem="retry-after-503-ignored")
async def fetch_with_retry_retry_after_429_only(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = backoff_delay(attempt, base_delay, max_delay)
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                if response.status == 429:
                    told = parse_retry_after(response.headers.get("Retry-After"))
                    wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "sleeps a fixed base_delay: no exponential backoff",
       rule="waiting `backoff_delay(...)` between them (your task 1, with `base_delay` and "
       "`max_delay`)",
       problem="no-jitter")
async def fetch_with_retry_fixed_delay(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = base_delay
        try:
            async with session.request(method, url) as response:
                if response.status not in RETRY_STATUSES or last:
                    response.raise_for_status()
                    return await response.json()
                told = parse_retry_after(response.headers.get("Retry-After"))
                wait = wait if told is None else max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


# --- Task 4 · retry_middleware -------------------------------------------------------------


@correct(check.retry_middleware, "while loop, counting calls")
def retry_middleware_while(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        calls = 1
        response = await handler(request)
        while (
            calls < max_attempts
            and request.method in IDEMPOTENT
            and response.status in RETRY_STATUSES
        ):
            response.release()
            await asyncio.sleep(backoff_delay(calls - 1, base_delay, max_delay))
            response = await handler(request)
            calls += 1
        return response

    return middleware


class _RetryMiddleware:
    def __init__(self, max_attempts, base_delay, max_delay):
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def should_retry(self, request, response):
        return request.method.upper() in IDEMPOTENT and response.status in RETRY_STATUSES

    async def __call__(self, request, handler):
        for attempt in range(self.max_attempts):
            response = await handler(request)
            if attempt == self.max_attempts - 1 or not self.should_retry(request, response):
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt, self.base_delay, self.max_delay))
        raise AssertionError("unreachable")


@correct(check.retry_middleware, "a class instance with __call__")
def retry_middleware_class(max_attempts, base_delay, max_delay):
    return _RetryMiddleware(max_attempts, base_delay, max_delay)


# Re-categorised (was correct): it retries dropped connections itself, and aiohttp's own resend
# after a reset runs the whole middleware again: max_attempts=5 made 10 calls (issue 11, item 3).
# The reworked task text says to let the handler's exceptions propagate.
@wrong(check.retry_middleware, "also honours Retry-After, but retries connection errors "
       "itself: aiohttp's resend re-runs its loop, doubling the calls after a reset",
       rule="let exceptions from the handler propagate: aiohttp resends a dropped connection "
       "once by itself", problem="retried-dropped-connection")
def retry_middleware_retry_after(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            last = attempt == max_attempts - 1 or request.method not in IDEMPOTENT
            wait = backoff_delay(attempt, base_delay, max_delay)
            try:
                response = await handler(request)
            except (aiohttp.ClientConnectionError, TimeoutError):
                if last:
                    raise
                await asyncio.sleep(wait)
                continue
            if last or response.status not in RETRY_STATUSES:
                return response
            told = parse_retry_after(response.headers.get("Retry-After"))
            response.release()
            await asyncio.sleep(wait if told is None else max(wait, told))
        raise AssertionError("unreachable")

    return middleware


@correct(check.retry_middleware, "the response of every failed try is kept until the next, "
         "then released; status test split into a helper")
def retry_middleware_helper(max_attempts, base_delay, max_delay):
    def transient(request, response):
        return request.method in IDEMPOTENT and (
            response.status in (408, 429) or 500 <= response.status <= 599
        )

    async def middleware(request, handler):
        attempt = 0
        while True:
            response = await handler(request)
            attempt += 1
            if attempt >= max_attempts or not transient(request, response):
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt - 1, base_delay, max_delay))

    return middleware


@wrong(check.retry_middleware, "sleeps without releasing the failed response",
       rule="releases the response, waits `backoff_delay(...)`",
       problem="slept-holding-response")
def retry_middleware_no_release(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if (attempt == max_attempts - 1 or request.method not in IDEMPOTENT
                    or response.status not in RETRY_STATUSES):
                return response
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "retries a POST", rule="on an idempotent method",
       problem="retried-non-idempotent")
def retry_middleware_retries_post(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if attempt == max_attempts - 1 or response.status not in RETRY_STATUSES:
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "retries every error status, 4xx included",
       rule="for a transient status (408, 429, 5xx)",
       problem="retried-4xx")
def retry_middleware_retries_4xx(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if attempt == max_attempts - 1 or request.method not in IDEMPOTENT or response.ok:
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "raise_for_status() on the last response instead of returning it",
       rule="It returns the last response (the caller decides ... whether it is an error)",
       problem="raised-instead-of-returning")
def retry_middleware_raises_on_last(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if request.method not in IDEMPOTENT or response.status not in RETRY_STATUSES:
                return response
            if attempt == max_attempts - 1:
                response.raise_for_status()
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "max_attempts retries after the first call: one call too many",
       rule="at most `max_attempts` times in all",
       problem="too-many-attempts")
def retry_middleware_one_call_too_many(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        response = await handler(request)
        for attempt in range(max_attempts):
            if request.method not in IDEMPOTENT or response.status not in RETRY_STATUSES:
                break
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
            response = await handler(request)
        return response

    return middleware


@wrong(check.retry_middleware, "time.sleep() in the middleware blocks the loop",
       rule="waits `backoff_delay(...)`",
       problem="blocked-loop")
def retry_middleware_time_sleep(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if (attempt == max_attempts - 1 or request.method not in IDEMPOTENT
                    or response.status not in RETRY_STATUSES):
                return response
            response.release()
            time.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "falls off the loop and returns None when every call failed",
       rule="It returns the last response",
       problem="returned-none")
def retry_middleware_returns_none(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if request.method not in IDEMPOTENT or response.status not in RETRY_STATUSES:
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        return None

    return middleware


@wrong(check.retry_middleware, "is the middleware itself instead of returning one",
       rule="which **returns** a client middleware",
       problem="not-a-factory")
async def retry_middleware_not_a_factory(request, handler):
    for attempt in range(4):
        response = await handler(request)
        if request.method not in IDEMPOTENT or response.status not in RETRY_STATUSES:
            return response
        response.release()
        await asyncio.sleep(backoff_delay(attempt, 0.005, 0.02))
    return response


@wrong(check.retry_middleware, "retries only 503", rule="a transient status (408, 429, 5xx)",
       problem="status-not-retried")
def retry_middleware_only_503(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if (attempt == max_attempts - 1 or request.method not in IDEMPOTENT
                    or response.status != 503):
                return response
            response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "releases every response in a finally, the returned one too",
       rule="It returns the last response (the caller decides, with `raise_for_status()`, ...)",
       problem="returned-released")
def retry_middleware_releases_returned(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            try:
                if (attempt == max_attempts - 1 or request.method not in IDEMPOTENT
                        or response.status not in RETRY_STATUSES):
                    return response
            finally:
                response.release()
            await asyncio.sleep(backoff_delay(attempt, base_delay, max_delay))
        raise AssertionError("unreachable")

    return middleware


@wrong(check.retry_middleware, "retries at once, no wait between calls",
       rule="waits `backoff_delay(...)` and calls the handler again",
       problem="no-backoff")
def retry_middleware_no_backoff(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if (attempt == max_attempts - 1 or request.method not in IDEMPOTENT
                    or response.status not in RETRY_STATUSES):
                return response
            response.release()
        raise AssertionError("unreachable")

    return middleware
