"""Rate-limited endpoints (lesson 18): a token bucket per learner and key, its 429s, its log.

A key is a token bucket: it holds up to ``burst`` tokens, starts full, and gains ``rate``
tokens a second. Each request takes one token; a request that finds none is refused with 429
Too Many Requests and ``Retry-After``. The key's log says when each request arrived and
whether it was accepted, so a lesson can plot the rate a client kept, and a check can judge it
from the server's side.

URL shapes (every number is checked; out of range is a JSON 400):

- ``/ratelimit/{key}`` (any method): one request against the key's bucket. The key's policy
  comes from its first request, or from ``POST /ratelimit/{key}/reset``, and is then fixed:

  - ``?rate=R``: tokens per second, 0.01 to 1000 (default 5), a whole number of requests per
    1 to 60 seconds (10, 0.5 and 2.5 are fine; 1/3 is not);
  - ``?burst=B``: the bucket's size, the most requests accepted at once, 1 to 1000
    (default 5);
  - ``?pause=P``: whole seconds, 0 to 60 (default 0). With 0, a refused request is told to
    come back when the next token is due (``Retry-After``, rounded up to whole seconds). With
    P > 0, a refusal starts a pause of P seconds during which every request is refused, as
    many APIs do; ``Retry-After`` then says how much of the pause is left.

  A request that names a policy other than the key's gets a 409. ``?delay=S`` (0 to 10 s,
  any request) makes an accepted answer wait S seconds, like a slow API: a client that wants
  a rate must then send requests concurrently. An accepted request gets 200 with JSON
  ``{"key", "n", "t", "url"}`` (its number among the key's requests, its arrival in seconds
  since the key's first request, and the path it asked for); a refused one gets the server's
  JSON error. Both carry the draft's headers (below).
- ``GET /ratelimit/{key}/log``: the key's policy, the counts of accepted and refused
  requests, and the log: one ``{"t", "status", "in_flight"}`` per request, oldest first
  (``in_flight``: how many of the key's accepted requests were still being answered when it
  arrived, so concurrency shows too). The log keeps the first 1,000 requests of a key;
  ``omitted`` counts the rest.
- ``POST /ratelimit/{key}/reset``: forget the key; with ``?rate=&burst=&pause=`` it starts
  again at once with that policy (a full bucket), without spending a token, so a check can set
  a limit that a learner's code then meets.

A learner (``X-Learner``) keeps at most 16 keys (the least recently used is forgotten).

**The headers** follow the IETF httpapi working group's draft "RateLimit header fields for
HTTP", draft-ietf-httpapi-ratelimit-headers-11 (May 2026; its field syntax is that of -10):
two Structured Field lists whose items name a policy, here ``"bucket"``.

- ``RateLimit-Policy: "bucket";q=10;w=1;course-burst=3``: the quota, ``q`` requests per
  ``w`` seconds (the smallest whole window for which the rate is a whole number of requests:
  the draft has no sub-second windows), and the bucket's size as a vendor parameter (the
  draft defines no burst field and lets a service add prefixed parameters of its own).
- ``RateLimit: "bucket";r=2;t=1``: ``r``, the requests available now (the whole tokens
  left); ``t``, the seconds, rounded up, within which no more than that is available (until
  the next token). On a 429 ``r`` is 0 and ``t`` equals ``Retry-After``, which the draft
  says takes precedence.
"""

from __future__ import annotations

import math
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import timing
from .errors import bad_request, error_body
from .learners import PerLearner, learner_of
from .params import parse_float, parse_int, query_float

routes = web.RouteTableDef()

POLICY_NAME = "bucket"
DEFAULT_RATE = 5.0
DEFAULT_BURST = 5
DEFAULT_PAUSE = 0
MIN_RATE, MAX_RATE = 0.01, 1000.0
MAX_BURST = 1000
MAX_PAUSE_SECONDS = 60
MAX_WINDOW_SECONDS = 60
MAX_DELAY_SECONDS = 10.0
MAX_KEYS_PER_LEARNER = 16
# The log keeps the first requests of a key, in compact arrays: 1,000 x 16 keys x 256 learners
# is at most about 50 MB, and a lesson's or a check's run needs a few hundred.
MAX_LOG_ENTRIES = 1000
KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
POLICY_PARAMETERS = ("rate", "burst", "pause")
# Floating-point slack when a bucket is asked whether it holds a whole token.
EPSILON = 1e-9


def now() -> float:
    """The buckets' clock, in seconds (``time.monotonic``); tests replace this one function."""
    return time.monotonic()


@dataclass(frozen=True)
class Policy:
    """A key's limit: ``rate`` tokens a second, ``burst`` at most, ``pause`` after a refusal."""

    rate: float
    burst: int
    pause: int

    @property
    def window(self) -> int:
        """The smallest whole number of seconds in which the rate is a whole number of requests."""
        return _window(self.rate) or MAX_WINDOW_SECONDS

    @property
    def quota(self) -> int:
        """Requests per ``window``: the draft's ``q``."""
        return round(self.rate * self.window)

    def header(self) -> str:
        """The ``RateLimit-Policy`` field value."""
        return f'"{POLICY_NAME}";q={self.quota};w={self.window};course-burst={self.burst}'

    def as_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "pause": self.pause,
            "q": self.quota,
            "w": self.window,
        }

    def describe(self) -> str:
        pause = f", pause={self.pause}" if self.pause else ""
        return f"rate={self.rate:g}, burst={self.burst}{pause}"


def _window(rate: float) -> int | None:
    """The smallest whole window (1 to 60 s) holding a whole number of requests at ``rate``."""
    for window in range(1, MAX_WINDOW_SECONDS + 1):
        requests = rate * window
        if requests >= 1 - EPSILON and abs(requests - round(requests)) < 1e-6:
            return window
    return None


@dataclass(frozen=True)
class Decision:
    """What the bucket said to one request."""

    accepted: bool
    number: int  # the request's number among the key's requests, 1 for the first
    arrived: float  # seconds since the key's first request
    available: int  # the draft's r: whole tokens left
    within: int  # the draft's t: seconds until more than ``available`` is there
    retry_after: int | None = None
    paused: bool = False


@dataclass
class Bucket:
    """One key's token bucket, its counts and its log."""

    policy: Policy
    tokens: float
    updated: float
    first: float | None = None
    paused_until: float = -math.inf
    accepted: int = 0
    refused: int = 0
    in_flight: int = 0
    times: array = field(default_factory=lambda: array("d"))
    statuses: array = field(default_factory=lambda: array("H"))
    flights: array = field(default_factory=lambda: array("H"))

    @classmethod
    def full(cls, policy: Policy, at: float) -> Bucket:
        return cls(policy, float(policy.burst), at)

    @property
    def requests(self) -> int:
        return self.accepted + self.refused

    def take(self, at: float) -> Decision:
        """Spend a token for a request arriving at ``at``, or refuse it."""
        policy = self.policy
        if self.first is None:
            self.first = at
        self.tokens = min(float(policy.burst), self.tokens + policy.rate * (at - self.updated))
        self.updated = at
        arrived = at - self.first
        number = self.requests + 1
        if at < self.paused_until:
            wait = _whole_seconds(self.paused_until - at)
            return self._refuse(arrived, number, wait, paused=True)
        if self.tokens >= 1 - EPSILON:
            self.tokens = max(0.0, self.tokens - 1)
            self.accepted += 1
            self._log(arrived, 200)
            available = math.floor(self.tokens + EPSILON)
            return Decision(True, number, arrived, available, self._until_more(available))
        if policy.pause:
            self.paused_until = at + policy.pause
            return self._refuse(arrived, number, policy.pause, paused=False)
        wait = _whole_seconds((1 - self.tokens) / policy.rate)
        return self._refuse(arrived, number, wait, paused=False)

    def _refuse(self, arrived: float, number: int, wait: int, paused: bool) -> Decision:
        self.refused += 1
        self._log(arrived, 429)
        return Decision(False, number, arrived, 0, wait, retry_after=wait, paused=paused)

    def _until_more(self, available: int) -> int:
        return _whole_seconds((available + 1 - self.tokens) / self.policy.rate)

    def _log(self, arrived: float, status: int) -> None:
        if len(self.times) < MAX_LOG_ENTRIES:
            self.times.append(round(arrived, 6))
            self.statuses.append(status)
            self.flights.append(min(self.in_flight, 65535))

    def log_as_json(self) -> list[dict[str, Any]]:
        return [
            {"t": t, "status": status, "in_flight": flight}
            for t, status, flight in zip(self.times, self.statuses, self.flights, strict=True)
        ]


def _whole_seconds(seconds: float) -> int:
    """Seconds rounded up to a whole number, at least 1 (Retry-After has no fractions)."""
    return max(1, math.ceil(seconds - EPSILON))


@dataclass
class Slot:
    """A learner's key: its bucket once a request or a reset has made one."""

    bucket: Bucket | None = None


def _learner_keys() -> PerLearner[Slot]:
    return PerLearner(Slot, MAX_KEYS_PER_LEARNER)


BUCKETS = web.AppKey("ratelimit_buckets", PerLearner[PerLearner[Slot]])


def setup(app: web.Application) -> None:
    """Give the app its per-learner buckets."""
    app[BUCKETS] = PerLearner(_learner_keys)


def _slot(request: web.Request, key: str) -> Slot:
    return request.app[BUCKETS].get(learner_of(request)).get(key)


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not KEY.fullmatch(key):
        bad_request(f"a key is 1 to 64 letters, digits, '_', '-' or '.', got {key[:70]!r}")
    return key


def _given_policy(request: web.Request) -> dict[str, Any]:
    """The policy parameters the query names, each checked."""
    given: dict[str, Any] = {}
    text = request.query.get("rate")
    if text is not None:
        rate = parse_float(text, "rate", MIN_RATE, MAX_RATE)
        if _window(rate) is None:
            bad_request(
                "rate must be a whole number of requests per 1 to 60 seconds (such as 10, 0.5 "
                f"or 2.5), got {text[:20]!r}"
            )
        given["rate"] = rate
    text = request.query.get("burst")
    if text is not None:
        given["burst"] = parse_int(text, "burst", 1, MAX_BURST)
    text = request.query.get("pause")
    if text is not None:
        given["pause"] = parse_int(text, "pause", 0, MAX_PAUSE_SECONDS)
    return given


def _policy(given: dict[str, Any]) -> Policy:
    return Policy(
        given.get("rate", DEFAULT_RATE),
        given.get("burst", DEFAULT_BURST),
        given.get("pause", DEFAULT_PAUSE),
    )


def _conflicts(policy: Policy, given: dict[str, Any]) -> bool:
    return any(getattr(policy, name) != value for name, value in given.items())


def _headers(policy: Policy, decision: Decision) -> dict[str, str]:
    headers = {
        "RateLimit-Policy": policy.header(),
        "RateLimit": f'"{POLICY_NAME}";r={decision.available};t={decision.within}',
    }
    if decision.retry_after is not None:
        headers["Retry-After"] = str(decision.retry_after)
    return headers


@routes.route("*", "/ratelimit/{key}")
async def limited(request: web.Request) -> web.Response:
    """A token bucket per key: ?rate=R/s ?burst=B ?pause=S; 429 + Retry-After when empty."""
    key = _key(request)
    given = _given_policy(request)
    delay = query_float(request, "delay", 0.0, 0.0, MAX_DELAY_SECONDS)
    slot = _slot(request, key)
    bucket = slot.bucket
    if bucket is None:
        bucket = slot.bucket = Bucket.full(_policy(given), now())
    elif _conflicts(bucket.policy, given):
        raise web.HTTPConflict(
            text=f"key {key!r} already has the policy {bucket.policy.describe()}; send that, "
            f"or nothing, or start it again with POST /ratelimit/{key}/reset?"
            + "&".join(f"{name}=..." for name in POLICY_PARAMETERS)
        )
    decision = bucket.take(now())
    headers = _headers(bucket.policy, decision)
    if not decision.accepted:
        policy = bucket.policy
        if decision.paused:
            detail = f"key {key!r} is paused after a refusal: come back in {decision.retry_after} s"
        else:
            pause = f"; a pause of {policy.pause} s starts now" if policy.pause else ""
            detail = (
                f"key {key!r} has no token left ({policy.describe()}){pause}: retry "
                f"after {decision.retry_after} s"
            )
        return web.json_response(error_body(429, detail), status=429, headers=headers)
    body = {
        "key": key,
        "n": decision.number,
        "t": round(decision.arrived, 6),
        "url": request.path_qs,
    }
    bucket.in_flight += 1
    try:
        if delay:
            await timing.sleep(delay)
    finally:
        bucket.in_flight -= 1
    return web.json_response(body, headers=headers)


@routes.get("/ratelimit/{key}/log")
async def limited_log(request: web.Request) -> web.Response:
    """A rate-limited key's policy and log: when each request came, 200 or 429, in flight."""
    key = _key(request)
    keys = request.app[BUCKETS].get(learner_of(request))
    bucket = keys.get(key).bucket if key in keys else None
    if bucket is None:
        empty = {"key": key, "policy": None, "accepted": 0, "refused": 0, "log": [],
                 "log_limit": MAX_LOG_ENTRIES, "omitted": 0}  # fmt: skip
        return web.json_response(empty)
    return web.json_response(
        {
            "key": key,
            "policy": bucket.policy.as_json(),
            "accepted": bucket.accepted,
            "refused": bucket.refused,
            "log": bucket.log_as_json(),
            "log_limit": MAX_LOG_ENTRIES,
            "omitted": bucket.requests - len(bucket.times),
        }
    )


@routes.post("/ratelimit/{key}/reset")
async def limited_reset(request: web.Request) -> web.Response:
    """Forgets a rate-limited key; ?rate=&burst=&pause= start it again with that policy."""
    key = _key(request)
    given = _given_policy(request)
    slot = _slot(request, key)
    slot.bucket = Bucket.full(_policy(given), now()) if given else None
    policy = slot.bucket.policy.as_json() if slot.bucket is not None else None
    return web.json_response({"key": key, "reset": True, "policy": policy})
