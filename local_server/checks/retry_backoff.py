"""Checks for exercise 07, retry with backoff: ``from local_server.checks import retry_backoff``.

``backoff_delay`` and ``parse_retry_after`` are called directly, many times. ``fetch_with_retry``
is run against ``/fail/{key}/{n}`` (the first n calls to a key fail) and judged from the
server's own call log (``GET /fail/{key}``: attempt, method, status and the time of each call),
so the diagnosis rests on what reached the server, not on how the code is written. The delays
the checks ask for are milliseconds, and every timing threshold has a wide margin.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import time
from typing import Any

import aiohttp

from ..runner import LocalServer
from .harness import Mistake, SessionSpy, call_async, check, fail_log, gaps, plural

SAMPLES = 400
# fetch_with_retry's schedule in the timing checks: 6 failures, then success.
FAILURES = 6
BASE = 0.02
CAP = 0.1
ATTEMPTS = 8
# Six waits of a correct full-jitter schedule sum to ~0.2 s; under this, nothing waited.
NO_BACKOFF_SECONDS = 0.04
# Two runs of a schedule without jitter differ only by noise: under this, in every gap.
SAME_GAP_SECONDS = 0.008
# The attempt limit and cap check: a key that always fails, 16 attempts, a 20 ms cap.
LIMIT_ATTEMPTS = 16
LIMIT_BASE = 0.005
LIMIT_CAP = 0.02
# A capped run takes ~0.3 s at most; an uncapped one needs far longer than this.
LIMIT_PATIENCE = 1.0
RETRY_AFTER = 1


async def _run(
    learner: Any,
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    patience: float = LIMIT_PATIENCE,
    **options: Any,
) -> tuple[Any, BaseException | None, bool]:
    """(result, error, finished): the learner's call, stopped after ``patience`` seconds."""
    call = asyncio.ensure_future(
        call_async(
            "fetch_with_retry", functools.partial(learner, method=method, **options), session, url
        )
    )
    done, _ = await asyncio.wait({call}, timeout=patience)
    if not done:
        call.cancel()
        await asyncio.wait({call}, timeout=1.0)
        return None, None, False
    error = call.exception()
    if isinstance(error, (NotImplementedError, Mistake)):
        raise error
    return (None if error else call.result()), error, True


# --- task 1: backoff_delay ------------------------------------------------------------------


@check("backoff_delay")
async def backoff_delay(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Full jitter: each delay in [0, min(cap, base * 2**attempt)], random, growing, capped."""
    base, cap = 0.1, 3.0
    samples: dict[int, list[float]] = {}
    for attempt in (0, 1, 2, 3, 10, 60, 2000):
        try:
            values = [learner(attempt, base, cap) for _ in range(SAMPLES)]
        except OverflowError:
            raise Mistake(
                "overflow",
                f"backoff_delay({attempt}, {base}, {cap}) raised OverflowError.",
                "cap the exponent before computing it, or compute `min(cap, ...)` without "
                "floats that overflow: e.g. `base * 2 ** min(attempt, 32)`.",
            ) from None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise Mistake(
                "not-a-number",
                f"backoff_delay returned {values[0]!r}; expected a number of seconds.",
                "return a float, e.g. `random.uniform(0, ceiling)`.",
            )
        samples[attempt] = [float(v) for v in values]
    if any(v < 0 for vs in samples.values() for v in vs):
        raise Mistake(
            "negative", "backoff_delay returned a negative delay.", "draw from [0, ceiling]."
        )
    if len(set(samples[3])) == 1:
        raise Mistake(
            "no-jitter",
            f"backoff_delay(3, {base}, {cap}) returned {samples[3][0]:g} every time.",
            "many clients that failed together retry together unless each draws its own delay: "
            "`random.uniform(0, min(cap, base * 2 ** attempt))` (full jitter).",
        )
    for attempt, values in samples.items():
        ceiling = min(cap, base * 2 ** min(attempt, 64))
        if max(values) > ceiling * 1.001 and max(values) > cap * 1.001:
            raise Mistake(
                "no-cap",
                f"backoff_delay({attempt}, {base}, {cap}) returned {max(values):g}, more than "
                f"the cap of {cap:g} s.",
                "limit the ceiling: `min(cap, base * 2 ** attempt)`.",
            )
        if max(values) > ceiling * 1.001:
            raise Mistake(
                "too-long",
                f"backoff_delay({attempt}, {base}, {cap}) returned {max(values):g}, above "
                f"min(cap, base * 2**attempt) = {ceiling:g}.",
                "attempt 0 is the first retry: its ceiling is `base`.",
            )
    mean = {attempt: sum(values) / len(values) for attempt, values in samples.items()}
    if not mean[3] > 4 * mean[0]:
        raise Mistake(
            "not-exponential",
            f"delays do not grow with the attempt: on average {mean[0]:.3f} s at attempt 0 and "
            f"{mean[3]:.3f} s at attempt 3.",
            "double the ceiling with each attempt: `base * 2 ** attempt`.",
        )
    if not mean[10] > cap * 0.3:
        raise Mistake(
            "cap-never-reached",
            f"at attempt 10 the delays average {mean[10]:.3f} s, far below the cap of {cap:g} s.",
            "the ceiling is `min(cap, base * 2 ** attempt)`: it reaches the cap.",
        )
    return (
        "random delays in [0, min(cap, base * 2**attempt)]: they grow exponentially, stop at "
        "the cap, and differ from call to call."
    )


# --- task 2: parse_retry_after --------------------------------------------------------------


@check("parse_retry_after")
async def parse_retry_after(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Seconds from a Retry-After value: delta-seconds or an HTTP date; None when unusable."""
    async with aiohttp.ClientSession() as session:
        headers = {}
        for query in ("seconds=7", "seconds=30&date=1"):
            async with session.get(f"{server.url}/retry-after/503?{query}") as response:
                headers[query] = response.headers["Retry-After"]
    seconds = learner(headers["seconds=7"])
    if seconds is None or not isinstance(seconds, (int, float)):
        raise Mistake(
            "seconds-not-parsed",
            f"parse_retry_after({headers['seconds=7']!r}) returned {seconds!r}; expected 7.",
            "a number of seconds is the common form: `float(value)`.",
        )
    if abs(seconds - 7) > 1e-9:
        raise Mistake("seconds-wrong", f"parse_retry_after('7') returned {seconds!r}.", "")
    as_date = headers["seconds=30&date=1"]
    try:
        from_date = learner(as_date)
    except ValueError:
        from_date = "ValueError"
    if not isinstance(from_date, (int, float)) or not 27 <= from_date <= 32:
        raise Mistake(
            "date-not-parsed",
            f"parse_retry_after({as_date!r}) gave {from_date!r}; expected about 30 (seconds "
            "from now).",
            "Retry-After may be an HTTP date: `email.utils.parsedate_to_datetime(value)`, "
            "minus `datetime.now(timezone.utc)`.",
        )
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    cases = {past: 0, "soon": None, "": None, None: None, "-5": None}
    for value, expected in cases.items():
        try:
            got = learner(value)
        except Exception as error:
            raise Mistake(
                "crashes-on-bad-value",
                f"parse_retry_after({value!r}) raised {type(error).__name__}.",
                "a header you do not understand is not a reason to crash: return None.",
            ) from None
        if expected is None and got is not None:
            raise Mistake(
                "bad-value-accepted",
                f"parse_retry_after({value!r}) returned {got!r}; expected None.",
                "only a non-negative number of seconds or an HTTP date is valid.",
            )
        if expected == 0 and (not isinstance(got, (int, float)) or got != 0):
            raise Mistake(
                "past-date-negative",
                f"a date in the past gave {got!r}; expected 0 (retry now).",
                "clamp: `max(0.0, seconds)`.",
            )
    return "seconds and HTTP dates both parsed; a past date gives 0; garbage gives None."


# --- task 3: fetch_with_retry ---------------------------------------------------------------


@check("fetch_with_retry", timeout=20)
async def fetch_with_retry(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Observe the call log of /fail keys for each situation a retry loop must get right."""
    async with aiohttp.ClientSession() as session:
        options = {"max_attempts": ATTEMPTS, "base_delay": BASE, "max_delay": CAP}
        # 1. a 4xx is not transient: one call, then an error
        for status in (404, 400):
            key = f"client{status}"
            url = f"{server.url}/fail/{key}/1?status={status}"
            result, error, finished = await _run(learner, session, url, "GET", **options)
            calls = len(await fail_log(session, server, key))
            if calls > 1:
                raise Mistake(
                    "retried-4xx",
                    f"a {status} answer was retried: the server got {calls} calls.",
                    "a 4xx says the request is wrong; sending it again will not fix it. Retry "
                    "only 408, 429 and 5xx (and connection errors, timeouts).",
                )
            _expect_error(error, status, "a 4xx")
        # 2. a POST is not idempotent: never sent twice
        key = "post"
        url = f"{server.url}/fail/{key}/2"
        result, error, finished = await _run(learner, session, url, "POST", **options)
        calls = len(await fail_log(session, server, key))
        if calls > 1:
            raise Mistake(
                "retried-post",
                f"a POST that failed with 503 was sent {calls} times.",
                "the first POST may have done its work before failing: retry only idempotent "
                "methods (GET, HEAD, OPTIONS, PUT, DELETE).",
            )
        _expect_error(error, 503, "a failed POST")
        # 3. a key that always fails: exactly max_attempts calls, with capped delays
        key = "down"
        url = f"{server.url}/fail/{key}/100"
        limits = {"max_attempts": LIMIT_ATTEMPTS, "base_delay": LIMIT_BASE, "max_delay": LIMIT_CAP}
        result, error, finished = await _run(learner, session, url, "GET", **limits)
        log = await fail_log(session, server, key)
        if len(log) > LIMIT_ATTEMPTS:
            raise Mistake(
                "no-attempt-limit",
                f"with max_attempts={LIMIT_ATTEMPTS}, a URL that always fails got "
                f"{len(log)} calls{'' if finished else ' and counting'}.",
                "stop after max_attempts and raise the last error.",
            )
        if not finished:
            longest = max(gaps(log), default=0.0)
            raise Mistake(
                "no-cap",
                f"with max_delay={LIMIT_CAP}, a wait of {longest:.2f} s came between attempts.",
                "cap each delay: `min(max_delay, base_delay * 2 ** attempt)`.",
            )
        if len(log) < LIMIT_ATTEMPTS:
            raise Mistake(
                "gave-up-early",
                f"with max_attempts={LIMIT_ATTEMPTS}, your function stopped after "
                f"{plural(len(log), 'call')}.",
                "max_attempts counts every call, the first included.",
            )
        _expect_error(error, 503, "the last failure")
        # 4. a transient failure: retried with backoff until it succeeds
        logs = []
        for run in range(2):
            key = f"transient{run}"
            url = f"{server.url}/fail/{key}/{FAILURES}"
            result, error, finished = await _run(learner, session, url, "GET", **options)
            log = await fail_log(session, server, key)
            calls = len(log)
            if finished and error is not None and calls <= FAILURES:
                raise Mistake(
                    "gave-up-early",
                    f"a URL that fails {FAILURES} times and then answers was given "
                    f"{ATTEMPTS} attempts, but your function raised "
                    f"{type(error).__name__} after {plural(calls, 'call')}.",
                    "count attempts, not retries: `for attempt in range(max_attempts)`, and "
                    "retry 5xx answers too, not only exceptions.",
                )
            if calls > FAILURES + 1:
                raise Mistake(
                    "retried-success",
                    f"the server answered 200 on call {FAILURES + 1} but got {calls} calls.",
                    "return as soon as a response is good.",
                )
            if not finished:
                raise Mistake(
                    "too-slow",
                    f"after {LIMIT_PATIENCE:g} s fetch_with_retry was still waiting on a URL "
                    f"that answers on call {FAILURES + 1}.",
                    "use the base_delay and max_delay you are given.",
                )
            if error is not None:
                raise Mistake(
                    "raised",
                    f"fetch_with_retry raised {type(error).__name__} on a URL that succeeds "
                    f"on call {FAILURES + 1}.",
                    "retry 503 answers.",
                )
            if not isinstance(result, dict) or result.get("attempt") != FAILURES + 1:
                raise Mistake(
                    "wrong-result",
                    f"fetch_with_retry returned {result!r:.80}; expected the JSON of the "
                    "successful answer.",
                    "return `await response.json()` from the response that succeeded.",
                )
            span = log[-1]["t"]
            if span < NO_BACKOFF_SECONDS:
                raise Mistake(
                    "no-backoff",
                    f"{plural(calls, 'call')} reached the server within "
                    f"{span * 1000:.0f} ms: the retries came back to back.",
                    "sleep between attempts: `await asyncio.sleep(backoff_delay(...))`.",
                )
            logs.append(log)
        first, second = (gaps(log) for log in logs)
        if all(abs(a - b) < SAME_GAP_SECONDS for a, b in zip(first, second, strict=True)):
            raise Mistake(
                "no-jitter",
                "two runs waited the same delays between attempts: "
                + ", ".join(f"{g * 1000:.0f}" for g in first)
                + " ms.",
                "clients that fail together then retry together. Draw each delay at random: "
                "`random.uniform(0, min(max_delay, base_delay * 2 ** attempt))`.",
            )
        # 5. a connection error is transient too. aiohttp itself resends an idempotent
        # request once when its connection breaks, so one attempt may be several calls.
        reset_url = f"{server.url}/fault/reset"
        server.reset_stats()
        try:
            async with session.get(reset_url) as response:
                await response.read()
        except aiohttp.ClientError:
            pass
        calls_per_attempt = max(1, server.stats().by_path.get("/fault/reset", 0))
        server.reset_stats()
        reset_options = {"max_attempts": 3, "base_delay": LIMIT_BASE, "max_delay": LIMIT_CAP}
        result, error, finished = await _run(learner, session, reset_url, "GET", **reset_options)
        attempts = server.stats().by_path.get("/fault/reset", 0) // calls_per_attempt
        if attempts < 3:
            raise Mistake(
                "connection-error-not-retried",
                f"with max_attempts=3, a connection reset by the server was tried "
                f"{plural(attempts, 'time')}.",
                "retry aiohttp.ClientConnectionError and TimeoutError as well as 5xx.",
            )
        if not isinstance(error, aiohttp.ClientError):
            raise Mistake(
                "error-swallowed",
                f"after 3 connection resets fetch_with_retry gave {result!r:.60} instead of "
                "raising.",
                "when the attempts run out, raise the last error.",
            )
        # 6. 429 with Retry-After: wait what the server says
        key = "throttled"
        url = f"{server.url}/fail/{key}/1?status=429&retry_after={RETRY_AFTER}"
        result, error, finished = await _run(
            learner, session, url, "GET", RETRY_AFTER + 1.5, **options
        )
        log = await fail_log(session, server, key)
        if len(log) == 1:
            raise Mistake(
                "429-not-retried",
                "a 429 Too Many Requests was not retried.",
                "429 is transient: wait (Retry-After says how long) and try again.",
            )
        if log[1]["t"] < RETRY_AFTER * 0.8:
            raise Mistake(
                "ignored-retry-after",
                f"the server said `Retry-After: {RETRY_AFTER}` but the retry came after "
                f"{log[1]['t'] * 1000:.0f} ms.",
                "when a 429 or 503 carries Retry-After, wait at least that long.",
            )
    return (
        "5xx, 429 and connection errors retried with capped, jittered backoff and Retry-After "
        "honoured; 4xx and POST never retried; the attempt limit kept."
    )


def _expect_error(error: BaseException | None, status: int, what: str) -> None:
    if not isinstance(error, aiohttp.ClientResponseError) or error.status != status:
        got = "returned normally" if error is None else f"raised {type(error).__name__}"
        raise Mistake(
            "no-error-raised",
            f"after {what} (status {status}) fetch_with_retry {got}; expected "
            f"aiohttp.ClientResponseError with status {status}.",
            "call `response.raise_for_status()` when you stop retrying, so the caller knows.",
        )


# --- task 4: retry_middleware ---------------------------------------------------------------


@check("retry_middleware")
async def retry_middleware(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Use the learner's middleware in a session; the call log shows what each request sent."""
    middleware = learner(4, LIMIT_BASE, LIMIT_CAP)
    if not callable(middleware):
        raise Mistake(
            "not-a-middleware",
            f"retry_middleware(...) returned {type(middleware).__name__}, not a middleware.",
            "return an `async def middleware(request, handler)` defined inside it.",
        )
    cases = [  # (key, method, failures and query, calls the server should see, final status)
        ("recovers", "GET", "2", 3, 200),
        ("post", "POST", "2", 1, 503),
        ("missing", "GET", "1?status=404", 1, 404),
        ("down", "GET", "100", 4, 503),
    ]
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        for key, method, tail, expected_calls, expected_status in cases:
            url = f"{server.url}/fail/{key}/{tail}"
            call = asyncio.ensure_future(session.request(method, url))
            done, _ = await asyncio.wait({call}, timeout=LIMIT_PATIENCE)
            if not done:
                call.cancel()
                await asyncio.wait({call}, timeout=1.0)
            status = None
            if done and call.exception() is None:
                response = call.result()
                status = response.status
                response.release()
            elif done and isinstance(call.exception(), aiohttp.ClientResponseError):
                status = call.exception().status
            elif done:
                raise call.exception()
            async with aiohttp.ClientSession() as plain:
                calls = len(await fail_log(plain, server, key))
            if calls > expected_calls:
                problem, hint = {
                    "post": (
                        "retried-post",
                        "retry only idempotent methods: check request.method.",
                    ),
                    "missing": ("retried-4xx", "retry only 408, 429 and 5xx."),
                    "down": ("no-attempt-limit", "stop after max_attempts calls of handler()."),
                    "recovers": ("retried-success", "return the first good response."),
                }[key]
                raise Mistake(
                    problem,
                    f"{method} /fail/{key}/{tail} reached the server {calls} times; expected "
                    f"{expected_calls}.",
                    hint,
                )
            if calls < expected_calls:
                raise Mistake(
                    "gave-up-early",
                    f"{method} /fail/{key}/{tail} reached the server {plural(calls, 'time')}; "
                    f"expected {expected_calls}.",
                    "call `await handler(request)` again for a transient failure, up to "
                    "max_attempts calls in all.",
                )
            if status != expected_status:
                raise Mistake(
                    "wrong-response",
                    f"{method} /fail/{key}/{tail} ended with status {status}; expected "
                    f"{expected_status}.",
                    "return the last response you got from handler().",
                )
    return (
        "the session retried a 503 until it answered, sent the POST and the 404 once, and "
        "stopped after max_attempts."
    )
