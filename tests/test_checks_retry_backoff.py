"""Exercise 07's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. ``make_fetch`` and ``make_middleware`` build
answers from switches: their defaults are correct, and each switch is one mistake.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import functools
import math
import random
import re
import time
from datetime import UTC, datetime

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server import start_server
from local_server.checks import retry_backoff as check

TRANSIENT = {408, 429, 500, 502, 503, 504}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}

# --- Task 1: backoff_delay -------------------------------------------------------------------


@correct(check.backoff_delay, "random.uniform, exponent capped at 64")
def full_jitter(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


@correct(check.backoff_delay, "random() times the ceiling, computed with math.ldexp")
def full_jitter_ldexp(attempt, base, cap):
    return random.random() * min(cap, math.ldexp(base, min(attempt, 60)))


_SYSTEM = random.SystemRandom()


@correct(check.backoff_delay, "a module-level SystemRandom, the cap tested before the power")
def full_jitter_system_random(attempt, base, cap):
    ceiling = cap if attempt >= 60 else min(cap, base * 2**attempt)
    return _SYSTEM.uniform(0.0, ceiling)


@wrong(check.backoff_delay, "equal jitter: half the ceiling plus a random half",
       problem="not-full-jitter")  # fmt: skip
def equal_jitter(attempt, base, cap):
    ceiling = min(cap, base * 2.0 ** min(attempt, 100))
    return ceiling / 2 + random.random() * ceiling / 2


@wrong(check.backoff_delay, "triangular: values near the middle more likely",
       problem="not-full-jitter")  # fmt: skip
def triangular_jitter(attempt, base, cap):
    return random.triangular(0, min(cap, base * 2 ** min(attempt, 64)))


@wrong(check.backoff_delay, "no jitter: the ceiling itself", problem="no-jitter")
def no_jitter(attempt, base, cap):
    return min(cap, base * 2 ** min(attempt, 64))


@wrong(check.backoff_delay, "no cap on the delay", problem="above-cap")
def no_cap(attempt, base, cap):
    return random.uniform(0, base * 2 ** min(attempt, 64))


@wrong(check.backoff_delay, "the power overflows for a large attempt", problem="overflow")
def overflows(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2.0**attempt))


@wrong(check.backoff_delay, "a random base only: never grows", problem="not-exponential")
def constant(attempt, base, cap):
    return random.uniform(0, base)


@wrong(check.backoff_delay, "linear growth: base * (attempt + 1)", problem="not-exponential")
def linear(attempt, base, cap):
    return random.uniform(0, min(cap, base * (attempt + 1)))


@wrong(check.backoff_delay, "the exponent capped at 4: the cap is never reached",
       problem="cap-not-reached")  # fmt: skip
def exponent_capped_too_low(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 4)))


@wrong(check.backoff_delay, "three to the power attempt", problem="above-ceiling")
def tripling(attempt, base, cap):
    return random.uniform(0, min(cap, base * 3 ** min(attempt, 40)))


@wrong(check.backoff_delay, "jitter of +-ceiling: negative delays", problem="negative")
def plus_minus(attempt, base, cap):
    ceiling = min(cap, base * 2 ** min(attempt, 64))
    return random.uniform(-ceiling, ceiling)


@wrong(check.backoff_delay, "returns the delay as text", problem="not-a-number")
def as_text(attempt, base, cap):
    return f"{random.uniform(0, min(cap, base * 2 ** min(attempt, 64))):.3f}"


@wrong(check.backoff_delay, "async def: returns a coroutine", problem="not-a-number")
async def async_backoff(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def test_backoff_messages_name_the_cause():
    jitter_on_top = check.backoff_delay.diagnose(
        lambda a, b, c: min(c, b * 2 ** min(a, 64)) + random.uniform(0, b)
    )
    assert jitter_on_top.problem == "above-ceiling"
    assert "added on top" in jitter_on_top.hint and "off" not in jitter_on_top.hint
    off_by_one = check.backoff_delay.diagnose(
        lambda a, b, c: random.uniform(0, min(c, b * 2 ** min(a + 1, 64)))
    )
    assert off_by_one.problem == "above-ceiling" and "2 ** 1" in off_by_one.hint
    from_base = check.backoff_delay.diagnose(
        lambda a, b, c: random.uniform(b, min(c, b * 2 ** min(a, 64)))
    )
    assert from_base.problem == "not-full-jitter" and "starts at `base`" in from_base.hint


# --- Task 2: parse_retry_after ---------------------------------------------------------------


@correct(check.parse_retry_after, "isdigit, then parsedate_to_datetime minus now(UTC)")
def parse_good(value):
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@correct(check.parse_retry_after, "calendar.timegm of email.utils.parsedate")
def parse_timegm(value):
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    parsed = email.utils.parsedate(text)
    if parsed is None:
        return None
    try:
        when = calendar.timegm(parsed)
    except (ValueError, OverflowError):
        return None
    return max(0.0, when - time.time())


@correct(check.parse_retry_after, "a regex for the digits, strptime with %Z, utcnow-free")
def parse_regex_strptime(value):
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"\s*\d+\s*", value):
        return float(value)
    try:
        when = datetime.strptime(value.strip(), "%a, %d %b %Y %H:%M:%S %Z").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, when.timestamp() - time.time())


@wrong(check.parse_retry_after, "reads only the seconds form", problem="date-not-parsed")
def parse_seconds_only(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@wrong(check.parse_retry_after, "no try/except around the date", problem="raised-on-bad-value")
def parse_crashing(value):
    if value.isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@wrong(check.parse_retry_after, "a past date gives a negative number",
       problem="past-date-not-zero")  # fmt: skip
def parse_negative_past(value):
    if not value or value.startswith("-"):
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (when - datetime.now(UTC)).total_seconds()


@wrong(check.parse_retry_after, "`or None` turns '0' into None", problem="seconds-wrong")
def parse_zero_is_none(value):
    if value and value.isdigit():
        return float(value) or None
    return parse_good(value)


@wrong(check.parse_retry_after, "returns the digits as text", problem="not-a-float")
def parse_returns_text(value):
    if value and value.strip().isdigit():
        return value.strip()
    return parse_good(value)


@wrong(check.parse_retry_after, "a naive datetime against naive local now()",
       problem="date-read-as-local")  # fmt: skip
def parse_naive_local(value):
    if value and value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate(value) if value else None
    if parsed is None:
        return None
    return max(0.0, (datetime(*parsed[:6]) - datetime.now()).total_seconds())


@wrong(check.parse_retry_after, "the date's wait in minutes", problem="date-not-relative")
def parse_minutes(value):
    seconds = parse_good(value)
    if value and not value.strip().isdigit() and seconds:
        return seconds / 60
    return seconds


@wrong(check.parse_retry_after, "a regex that accepts leading digits ('12abc')",
       problem="bad-value-accepted")  # fmt: skip
def parse_leading_digits(value):
    if value and (found := re.match(r"\d+", value)):
        return float(found.group())
    return parse_good(value)


# --- Task 3: fetch_with_retry ------------------------------------------------------------------


def parse_retry_after(value):
    """The learner's task 2, as fetch_with_retry answers use it."""
    return parse_good(value)


def make_fetch(
    *,
    statuses=TRANSIENT,
    methods=IDEMPOTENT,
    jitter=True,
    cap=True,
    use_base=True,
    honour_retry_after=True,
    retry_after_for=(429, 503),
    parse=parse_retry_after,
    limit=True,
    extra_attempts=0,
    sleep=True,
    sleep_inside=False,
    exceptions=(aiohttp.ClientConnectionError, TimeoutError),
    raise_at_end=True,
):
    """A configurable retry loop: the defaults are correct, each switch is one mistake."""

    async def fetch(session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0):
        attempts = max_attempts + extra_attempts if limit else 10_000
        for attempt in range(attempts):
            last = attempt == attempts - 1 or method.upper() not in methods
            ceiling = (base_delay if use_base else max_delay) * 2 ** min(attempt, 64)
            if cap:
                ceiling = min(max_delay, ceiling)
            wait = random.uniform(0, ceiling) if jitter else ceiling
            try:
                async with session.request(method, url) as response:
                    if response.status not in statuses or last:
                        if raise_at_end:
                            response.raise_for_status()
                        return await response.json()
                    told = parse(response.headers.get("Retry-After"))
                    if honour_retry_after and response.status in retry_after_for and told:
                        wait = max(wait, float(told))
                    if sleep and sleep_inside:
                        await asyncio.sleep(wait)
                        continue
            except exceptions:
                if last:
                    raise
            if sleep:
                await asyncio.sleep(wait)
        return None

    return fetch


correct(check.fetch_with_retry, "a for loop, Retry-After as max(), every switch off")(make_fetch())


@correct(check.fetch_with_retry, "a while loop, raise_for_status() as control flow")
async def fetch_with_while_loop(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    attempt = 0
    while True:
        attempt += 1
        try:
            async with session.request(method, url) as response:
                response.raise_for_status()
                return await response.json()
        except aiohttp.ClientResponseError as error:
            transient = error.status in TRANSIENT and method.upper() in IDEMPOTENT
            if not transient or attempt >= max_attempts:
                raise
            wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            told = parse_retry_after((error.headers or {}).get("Retry-After"))
            if told is not None:
                wait = max(wait, told)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if attempt >= max_attempts or method.upper() not in IDEMPOTENT:
                raise
            wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "the old tests' while loop: only POST is exempt, PATCH retried",
       problem="retried-non-idempotent")  # fmt: skip
async def fetch_with_while_loop_post_only(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    attempt = 0
    while True:
        attempt += 1
        try:
            async with session.request(method, url) as response:
                response.raise_for_status()
                return await response.json()
        except aiohttp.ClientResponseError as error:
            transient = error.status in TRANSIENT and method != "POST"
            if not transient or attempt >= max_attempts:
                raise
            wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            told = parse_retry_after((error.headers or {}).get("Retry-After"))
            if told is not None:
                wait = max(wait, told)
        except aiohttp.ClientConnectionError:
            if attempt >= max_attempts:
                raise
            wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
        await asyncio.sleep(wait)


@correct(check.fetch_with_retry, "reads each failed body (to log it) before leaving the block; "
         "Retry-After replaces the backoff")  # fmt: skip
async def fetch_reading_error_bodies(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    may_retry = method.upper() in IDEMPOTENT
    for attempt in range(max_attempts):
        final = attempt + 1 == max_attempts or not may_retry
        try:
            async with session.request(method, url) as response:
                if response.ok or response.status not in TRANSIENT or final:
                    response.raise_for_status()
                    return await response.json()
                await response.read()  # the error text, for a log
                told = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientConnectionError, TimeoutError):
            if final:
                raise
            told = None
        wait = told if told is not None else full_jitter(attempt, base_delay, max_delay)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")


@correct(check.fetch_with_retry, "recursive: one attempt per call")
async def fetch_recursive(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0, _attempt=0
):
    final = _attempt + 1 >= max_attempts or method.upper() not in IDEMPOTENT
    wait = full_jitter(_attempt, base_delay, max_delay)
    try:
        async with session.request(method, url) as response:
            if response.status not in TRANSIENT or final:
                response.raise_for_status()
                return await response.json()
            told = parse_retry_after(response.headers.get("Retry-After"))
            wait = max(wait, told or 0.0)
    except (aiohttp.ClientConnectionError, TimeoutError):
        if final:
            raise
    await asyncio.sleep(wait)
    return await fetch_recursive(
        session, url, method=method, max_attempts=max_attempts, base_delay=base_delay,
        max_delay=max_delay, _attempt=_attempt + 1,
    )  # fmt: skip


@wrong(check.fetch_with_retry, "the seed: retries every ClientError", problem="retried-4xx")
async def seed_retry(session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0):
    for attempt in range(max_attempts):
        try:
            async with session.request(method, url) as response:
                response.raise_for_status()
                return await response.json()
        except (TimeoutError, aiohttp.ClientError):
            if attempt == max_attempts - 1:
                raise
            await asyncio.sleep(base_delay * 2**attempt)
    return None


wrong(check.fetch_with_retry, "retries 400 and 404 too", problem="retried-4xx")(
    make_fetch(statuses=TRANSIENT | {400, 404})
)
wrong(check.fetch_with_retry, "POST in the retryable methods", problem="retried-non-idempotent")(
    make_fetch(methods=IDEMPOTENT | {"POST"})
)
wrong(check.fetch_with_retry, "only POST is exempt: PATCH retried",
      problem="retried-non-idempotent")(make_fetch(methods=IDEMPOTENT | {"PATCH"}))  # fmt: skip
wrong(check.fetch_with_retry, "no sleep at all", problem="no-backoff")(make_fetch(sleep=False))
wrong(check.fetch_with_retry, "the ceiling, no jitter", problem="no-jitter")(
    make_fetch(jitter=False)
)
wrong(check.fetch_with_retry, "ignores Retry-After", problem="ignored-retry-after")(
    make_fetch(honour_retry_after=False)
)
wrong(check.fetch_with_retry, "Retry-After for 429 only", problem="retry-after-503-ignored")(
    make_fetch(retry_after_for=(429,))
)
wrong(check.fetch_with_retry, "Retry-After for 503 only", problem="ignored-retry-after")(
    make_fetch(retry_after_for=(503,))
)
wrong(check.fetch_with_retry, "float() of Retry-After: a date raises ValueError",
      problem="retry-after-date-ignored")(make_fetch(parse=lambda v: v))  # fmt: skip
wrong(check.fetch_with_retry, "no cap on the wait", problem="no-cap")(make_fetch(cap=False))
wrong(check.fetch_with_retry, "max_delay used as the base", problem="not-exponential")(
    make_fetch(use_base=False)
)
wrong(check.fetch_with_retry, "no attempt limit", problem="too-many-attempts")(
    make_fetch(limit=False)
)
wrong(check.fetch_with_retry, "one attempt too few", problem="gave-up-early")(
    make_fetch(extra_attempts=-1)
)
wrong(check.fetch_with_retry, "retries no exception", problem="connection-error-not-retried")(
    make_fetch(exceptions=())
)
wrong(check.fetch_with_retry, "retries ClientConnectionError, not the builtin TimeoutError",
      problem="timeout-not-retried")(
    make_fetch(exceptions=(aiohttp.ClientConnectionError,))
)  # fmt: skip
wrong(check.fetch_with_retry, "retries ClientOSError only: a hang-up is not one",
      problem="connection-error-not-retried")(
    make_fetch(exceptions=(aiohttp.ClientOSError, TimeoutError))
)  # fmt: skip
wrong(check.fetch_with_retry, "sleeps inside `async with`", problem="slept-holding-response")(
    make_fetch(sleep_inside=True)
)
wrong(check.fetch_with_retry, "returns the error's JSON instead of raising",
      problem="error-swallowed")(make_fetch(raise_at_end=False))  # fmt: skip


@wrong(check.fetch_with_retry, "a session of its own", problem="own-session")
async def fetch_own_session(session, url, **options):
    async with aiohttp.ClientSession() as own:
        return await make_fetch()(own, url, **options)


@wrong(check.fetch_with_retry, "session.get whatever the method", problem="wrong-method")
async def fetch_always_get(session, url, *, method="GET", **options):
    class GetOnly:
        def request(self, _method, target):
            return session.get(target)

    return await make_fetch()(GetOnly(), url, method=method, **options)


@wrong(check.fetch_with_retry, "its own RuntimeError when it gives up", problem="wrong-error")
async def fetch_runtime_error(session, url, **options):
    try:
        return await make_fetch()(session, url, **options)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RuntimeError(f"giving up on {url}") from error


@wrong(check.fetch_with_retry, "returns the text, not the JSON", problem="wrong-result")
async def fetch_returns_text(session, url, **options):
    fetch = make_fetch()

    class TextSession:
        def request(self, method, target):
            return _TextContext(session.request(method, target))

    return await fetch(TextSession(), url, **options)


class _TextContext:
    """Wraps a request so `.json()` returns the text, as a learner's `response.text()` would."""

    def __init__(self, inner):
        self.inner = inner

    async def __aenter__(self):
        response = await self.inner.__aenter__()
        response.json = response.text
        return response

    async def __aexit__(self, *exc):
        return await self.inner.__aexit__(*exc)


@wrong(check.fetch_with_retry, "reads the JSON after leaving `async with`", problem="wrong-result")
async def fetch_reads_after_release(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        try:
            async with session.request(method, url) as response:
                ok = response.status not in TRANSIENT or last
                if ok:
                    response.raise_for_status()
                told = parse_retry_after(response.headers.get("Retry-After"))
            if ok:
                return await response.json()
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
            told = None
        await asyncio.sleep(max(full_jitter(attempt, base_delay, max_delay), told or 0))


@wrong(check.fetch_with_retry, "linear waits: base_delay * (attempt + 1)",
       problem="not-exponential")  # fmt: skip
async def fetch_linear(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    linear_delay = functools.partial(random.uniform, 0)
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        wait = linear_delay(min(max_delay, base_delay * (attempt + 1)))
        try:
            async with session.request(method, url) as response:
                if response.status not in TRANSIENT or last:
                    response.raise_for_status()
                    return await response.json()
                wait = max(wait, parse_retry_after(response.headers.get("Retry-After")) or 0)
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        await asyncio.sleep(wait)


@wrong(check.fetch_with_retry, "asyncio.sleep() without await", problem="missing-await")
async def fetch_sleep_not_awaited(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    for attempt in range(max_attempts):
        last = attempt == max_attempts - 1 or method.upper() not in IDEMPOTENT
        try:
            async with session.request(method, url) as response:
                if response.status not in TRANSIENT or last:
                    response.raise_for_status()
                    return await response.json()
        except (aiohttp.ClientConnectionError, TimeoutError):
            if last:
                raise
        asyncio.sleep(full_jitter(attempt, base_delay, max_delay))


@wrong(check.fetch_with_retry, "time.sleep() for the backoff", problem="blocked-loop")
async def fetch_time_sleep(session, url, **options):
    return await make_fetch()(_TimeSleepSession(session), url, **options)


class _TimeSleepSession:
    def __init__(self, session):
        self.session = session

    def request(self, method, target):
        time.sleep(0.01)
        return self.session.request(method, target)


@wrong(check.fetch_with_retry, "retries only 503", problem="status-not-retried")
async def fetch_only_503(session, url, **options):
    return await make_fetch(statuses={503})(session, url, **options)


def test_fetch_with_retry_stub_is_not_implemented():
    async def stub(session, url, **options):
        raise NotImplementedError

    assert check.fetch_with_retry.diagnose(stub).problem == "not-implemented"


def test_holding_is_quoted_at_the_learners_sleep():
    verdict = check.fetch_with_retry.diagnose(make_fetch(sleep_inside=True))
    assert verdict.problem == "slept-holding-response"
    assert "`await asyncio.sleep(wait)`" in verdict.message, verdict.message


# --- Task 4: retry_middleware ------------------------------------------------------------------


def make_middleware(
    *,
    methods=IDEMPOTENT,
    statuses=TRANSIENT,
    limit=True,
    extra=0,
    release=True,
    sleep=True,
    jitter=True,
    cap=True,
    catch=(),
    raise_last=False,
    release_returned=False,
    return_first=False,
):
    """A factory of retry middlewares: the defaults are correct, each switch is one mistake."""

    def factory(max_attempts, base_delay, max_delay):
        async def middleware(request, handler):
            attempt, first = 0, None
            while True:
                try:
                    response = await handler(request)
                except catch:
                    attempt += 1
                    if attempt >= max_attempts:
                        raise
                    await asyncio.sleep(full_jitter(attempt - 1, base_delay, max_delay))
                    continue
                attempt += 1
                retry = request.method in methods and response.status in statuses
                if not retry or (limit and attempt >= max_attempts + extra):
                    if raise_last:
                        response.raise_for_status()
                    if release_returned:
                        response.release()
                    if return_first and first is not None:
                        response.release()
                        return first
                    return response
                if return_first and first is None:
                    first = response
                elif release:
                    response.release()
                ceiling = base_delay * 2 ** min(attempt - 1, 64)
                ceiling = min(max_delay, ceiling) if cap else ceiling
                if sleep:
                    await asyncio.sleep(random.uniform(0, ceiling) if jitter else ceiling)

        return middleware

    return factory


correct(check.retry_middleware, "a while loop, every switch off")(make_middleware())
correct(check.retry_middleware, "also retries refused connections, which aiohttp never resends")(
    make_middleware(catch=(aiohttp.ClientConnectorError,))
)


class RetryMiddleware:
    """Correct: a callable object."""

    def __init__(self, max_attempts, base_delay, max_delay):
        self.max_attempts, self.base, self.cap = max_attempts, base_delay, max_delay

    async def __call__(self, request, handler):
        for attempt in range(self.max_attempts):
            response = await handler(request)
            final = attempt == self.max_attempts - 1 or request.method not in IDEMPOTENT
            if response.status not in TRANSIENT or final:
                return response
            response.release()
            await asyncio.sleep(random.uniform(0, min(self.cap, self.base * 2**attempt)))
        raise AssertionError("unreachable")


correct(check.retry_middleware, "a class whose instances are the middleware")(RetryMiddleware)


@correct(check.retry_middleware, "functools.partial of a module-level coroutine function")
def retry_middleware_partial(max_attempts, base_delay, max_delay):
    return functools.partial(_retrying, max_attempts, base_delay, max_delay)


async def _retrying(max_attempts, base_delay, max_delay, request, handler):
    response = await handler(request)
    for attempt in range(max_attempts - 1):
        if request.method not in IDEMPOTENT or response.status not in TRANSIENT:
            break
        await response.read()  # reading the failed body gives its connection back too
        await asyncio.sleep(full_jitter(attempt, base_delay, max_delay))
        response = await handler(request)
    return response


class OldRetryMiddlewareClass:
    """The old tests' "correct" class: PATCH retried, 408 and 429 never (status < 500)."""

    def __init__(self, max_attempts, base_delay, max_delay):
        self.max_attempts, self.base, self.cap = max_attempts, base_delay, max_delay

    async def __call__(self, request, handler):
        for attempt in range(self.max_attempts):
            response = await handler(request)
            final = attempt == self.max_attempts - 1 or request.method == "POST"
            if response.status < 500 or final:
                return response
            response.release()
            await asyncio.sleep(random.uniform(0, min(self.cap, self.base * 2**attempt)))
        return None


wrong(check.retry_middleware, "only POST exempt (PATCH retried), 408/429 not retried",
      problem="retried-non-idempotent")(OldRetryMiddlewareClass)  # fmt: skip
wrong(check.retry_middleware, "POST retried", problem="retried-non-idempotent")(
    make_middleware(methods=IDEMPOTENT | {"POST"})
)
wrong(check.retry_middleware, "404 retried", problem="retried-4xx")(
    make_middleware(statuses=TRANSIENT | {404})
)
wrong(check.retry_middleware, "no attempt limit", problem="too-many-attempts")(
    make_middleware(limit=False)
)
wrong(check.retry_middleware, "one call too many", problem="too-many-attempts")(
    make_middleware(extra=1)
)
wrong(check.retry_middleware, "retries nothing", problem="status-not-retried")(
    make_middleware(statuses=())
)
wrong(check.retry_middleware, "retries 5xx only", problem="status-not-retried")(
    make_middleware(statuses={500, 502, 503, 504})
)
wrong(check.retry_middleware, "one call too few", problem="gave-up-early")(
    make_middleware(extra=-1)
)
wrong(check.retry_middleware, "never releases a failed response",
      problem="slept-holding-response")(make_middleware(release=False))  # fmt: skip
wrong(check.retry_middleware, "no wait between calls", problem="no-backoff")(
    make_middleware(sleep=False)
)
wrong(check.retry_middleware, "waits the ceiling, no jitter", problem="no-jitter")(
    make_middleware(jitter=False)
)
wrong(check.retry_middleware, "no cap on the wait", problem="no-cap")(make_middleware(cap=False))
wrong(check.retry_middleware, "retries dropped connections itself",
      problem="retried-dropped-connection")(
    make_middleware(catch=(aiohttp.ClientConnectionError,))
)  # fmt: skip
wrong(check.retry_middleware, "raise_for_status() on the last response",
      problem="raised-instead-of-returning")(make_middleware(raise_last=True))  # fmt: skip
wrong(check.retry_middleware, "releases the response it returns", problem="returned-released")(
    make_middleware(release_returned=True)
)
wrong(check.retry_middleware, "returns the first failed response", problem="wrong-response")(
    make_middleware(return_first=True)
)


@wrong(check.retry_middleware, "waits max_delay every time", problem="not-exponential")
def retry_middleware_fixed(max_attempts, base_delay, max_delay):
    return make_middleware()(max_attempts, max_delay, max_delay)


@wrong(check.retry_middleware, "the attempt counter lives in the factory", problem="counter-shared")
def retry_middleware_shared_counter(max_attempts, base_delay, max_delay):
    calls = 0

    async def middleware(request, handler):
        nonlocal calls
        while True:
            response = await handler(request)
            calls += 1
            retry = request.method in IDEMPOTENT and response.status in TRANSIENT
            if not retry or calls >= max_attempts:
                return response
            response.release()
            await asyncio.sleep(full_jitter(calls - 1, base_delay, max_delay))

    return middleware


@wrong(check.retry_middleware, "a for loop that falls off its end", problem="returned-none")
def retry_middleware_falls_off(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        for attempt in range(max_attempts):
            response = await handler(request)
            if request.method not in IDEMPOTENT or response.status not in TRANSIENT:
                return response
            response.release()
            await asyncio.sleep(full_jitter(attempt, base_delay, max_delay))

    return middleware


@wrong(check.retry_middleware, "the middleware itself, not a factory", problem="not-a-factory")
async def retry_middleware_itself(request, handler):
    return await handler(request)


@wrong(check.retry_middleware, "an async factory", problem="not-a-factory")
async def retry_middleware_async_factory(max_attempts, base_delay, max_delay):
    return make_middleware()(max_attempts, base_delay, max_delay)


@wrong(check.retry_middleware, "returns None", problem="not-a-factory")
def middleware_that_is_not(max_attempts, base_delay, max_delay):
    return None


@wrong(check.retry_middleware, "forgets to return the middleware", problem="not-a-factory")
def retry_middleware_no_return(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        return await handler(request)


@wrong(check.retry_middleware, "returns handler(request) without await", problem="missing-await")
def retry_middleware_no_await(max_attempts, base_delay, max_delay):
    async def middleware(request, handler):
        return handler(request)

    return middleware


# --- every registered answer -------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.retry_middleware.diagnose(make_middleware(jitter=False))
    assert first == check.retry_middleware.diagnose(make_middleware(jitter=False))


def test_correct_answers_pass():
    """How long each check takes is `make bench`'s (the solutions' run times)."""
    for task, answer in (
        (check.backoff_delay, full_jitter),
        (check.parse_retry_after, parse_good),
        (check.fetch_with_retry, fetch_with_while_loop),
        (check.retry_middleware, RetryMiddleware),
    ):
        assert task.diagnose(answer).passed, task.task


def test_aiohttp_resends_a_reset_through_the_whole_middleware_chain():
    """Issue 11, item 3, by running code: a reset re-runs a retry middleware's loop."""

    def retrying_connection_errors(max_attempts):
        async def middleware(request, handler):
            for attempt in range(max_attempts):
                try:
                    return await handler(request)
                except aiohttp.ClientConnectionError:
                    if attempt == max_attempts - 1:
                        raise
                    await asyncio.sleep(0.001)
            raise AssertionError("unreachable")

        return middleware

    async def calls_for(middleware):
        server.reset_stats()
        async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
            with pytest.raises(aiohttp.ClientOSError):
                async with session.get(f"{server.url}/fault/reset"):
                    pass
        return server.stats().by_path["/fault/reset"]

    async def passthrough(request, handler):
        return await handler(request)

    with start_server() as server:
        assert asyncio.run(calls_for(retrying_connection_errors(3))) == 6
        assert asyncio.run(calls_for(passthrough)) == 2
