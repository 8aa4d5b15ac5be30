"""Exercise 07's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import email.utils
import random
from datetime import UTC, datetime

import aiohttp
import pytest

from local_server.checks import retry_backoff as check

# --- Task 1: backoff_delay -------------------------------------------------------------------


def full_jitter(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def equal_jitter(attempt, base, cap):
    ceiling = min(cap, base * 2.0 ** min(attempt, 100))
    return ceiling / 2 + random.random() * ceiling / 2


@pytest.mark.parametrize("answer", [full_jitter, equal_jitter])
def test_backoff_delay_accepts_correct_alternatives(answer):
    verdict = check.backoff_delay.diagnose(answer)
    assert verdict.passed, verdict.render()


def no_jitter(attempt, base, cap):
    return min(cap, base * 2 ** min(attempt, 64))


def no_cap(attempt, base, cap):
    return random.uniform(0, base * 2 ** min(attempt, 64))


def overflows(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2.0**attempt))


def constant(attempt, base, cap):
    return random.uniform(0, base)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (no_jitter, "no-jitter"),
        (no_cap, "no-cap"),
        (overflows, "overflow"),
        (constant, "not-exponential"),
    ],
)
def test_backoff_delay_diagnoses_each_mistake(answer, problem):
    verdict = check.backoff_delay.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 2: parse_retry_after ---------------------------------------------------------------


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


def parse_seconds_only(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_crashing(value):
    if value.isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


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


def test_parse_retry_after_accepts_a_correct_answer():
    verdict = check.parse_retry_after.diagnose(parse_good)
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (parse_seconds_only, "date-not-parsed"),
        (parse_crashing, "crashes-on-bad-value"),
        (parse_negative_past, "past-date-negative"),
    ],
)
def test_parse_retry_after_diagnoses_each_mistake(answer, problem):
    verdict = check.parse_retry_after.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: fetch_with_retry ------------------------------------------------------------------

TRANSIENT = {408, 429, 500, 502, 503, 504}


def make_fetch(
    *,
    statuses=TRANSIENT,
    methods=("GET", "HEAD", "OPTIONS", "PUT", "DELETE"),
    jitter=True,
    cap=True,
    honour_retry_after=True,
    limit=True,
    extra_attempts=0,
    sleep=True,
    exceptions=(aiohttp.ClientConnectionError, asyncio.TimeoutError),
):
    """A configurable retry loop: the defaults are correct, each flag is one mistake."""

    async def fetch(session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0):
        attempts = max_attempts + extra_attempts if limit else 10_000
        for attempt in range(attempts):
            last = attempt == attempts - 1 or method not in methods
            ceiling = base_delay * 2 ** min(attempt, 64)
            if cap:
                ceiling = min(max_delay, ceiling)
            wait = random.uniform(0, ceiling) if jitter else ceiling
            try:
                async with session.request(method, url) as response:
                    if response.status not in statuses or last:
                        response.raise_for_status()
                        return await response.json()
                    told = response.headers.get("Retry-After")
                    if honour_retry_after and told is not None:
                        wait = max(wait, float(told))
            except exceptions:
                if last:
                    raise
            if sleep:
                await asyncio.sleep(wait)
        return None

    return fetch


async def fetch_with_while_loop(
    session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0
):
    """Correct too: a while loop, exceptions from raise_for_status used for control flow."""
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
            if error.headers and "Retry-After" in error.headers:
                wait = max(wait, float(error.headers["Retry-After"]))
        except aiohttp.ClientConnectionError:
            if attempt >= max_attempts:
                raise
            wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
        await asyncio.sleep(wait)


@pytest.mark.parametrize("answer", [make_fetch(), fetch_with_while_loop])
def test_fetch_with_retry_accepts_correct_alternatives(answer):
    verdict = check.fetch_with_retry.diagnose(answer)
    assert verdict.passed, verdict.render()


async def seed_retry(session, url, *, method="GET", max_attempts=5, base_delay=0.1, max_delay=2.0):
    """The seed's loop with the delay scaled down: it retries everything."""
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


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (seed_retry, "retried-4xx"),
        (make_fetch(statuses=TRANSIENT | {400, 404}), "retried-4xx"),
        (make_fetch(methods=("GET", "POST")), "retried-post"),
        (make_fetch(sleep=False), "no-backoff"),
        (make_fetch(jitter=False), "no-jitter"),
        (make_fetch(honour_retry_after=False), "ignored-retry-after"),
        (make_fetch(cap=False), "no-cap"),
        (make_fetch(limit=False), "no-attempt-limit"),
        (make_fetch(extra_attempts=-1), "gave-up-early"),
        (make_fetch(exceptions=()), "connection-error-not-retried"),
    ],
)
def test_fetch_with_retry_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_with_retry.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_fetch_with_retry_stub_is_not_implemented():
    async def stub(session, url, **options):
        raise NotImplementedError

    assert check.fetch_with_retry.diagnose(stub).problem == "not-implemented"


# --- Task 4: retry_middleware ------------------------------------------------------------------


def make_middleware(*, methods=("GET", "HEAD", "PUT", "DELETE"), statuses=TRANSIENT, limit=True):
    """A factory of retry middlewares: the defaults are correct, each flag is one mistake."""

    def factory(max_attempts, base_delay, max_delay):
        async def middleware(request, handler):
            attempt = 0
            while True:
                response = await handler(request)
                attempt += 1
                retry = request.method in methods and response.status in statuses
                if not retry or (limit and attempt >= max_attempts):
                    return response
                response.release()
                await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))

        return middleware

    return factory


class RetryMiddlewareClass:
    """Correct too: a callable object, raising for a final bad status."""

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


@pytest.mark.parametrize("answer", [make_middleware(), RetryMiddlewareClass])
def test_retry_middleware_accepts_correct_alternatives(answer):
    verdict = check.retry_middleware.diagnose(answer)
    assert verdict.passed, verdict.render()


def middleware_that_is_not(max_attempts, base_delay, max_delay):
    return None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (make_middleware(methods=("GET", "POST")), "retried-post"),
        (make_middleware(statuses=TRANSIENT | {404}), "retried-4xx"),
        (make_middleware(limit=False), "no-attempt-limit"),
        (make_middleware(statuses=()), "gave-up-early"),
        (middleware_that_is_not, "not-a-middleware"),
    ],
)
def test_retry_middleware_diagnoses_each_mistake(answer, problem):
    verdict = check.retry_middleware.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
