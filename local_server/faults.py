"""Fault injection the lessons need and httpbin lacks: fail N times then succeed, Retry-After,
seeded failure rates, slow headers vs slow body, resets, short bodies, wrong content types.

URL shapes (every number is checked; out of range is a JSON 400):

- ``/fail/{key}/{n}`` (any method): the first ``n`` calls (n ≤ 100) for your (learner, key)
  answer ``?status=`` (400-599, default 503) with a JSON ``{"error", "detail"}`` body; later
  calls answer 200. ``?retry_after=S`` (0-3600) adds ``Retry-After: S`` to the failures,
  ``&date=1`` gives it as an HTTP date instead. Each answer carries ``X-Attempt``. The attempt
  number counts every call to the key, whatever ``n`` the call names.
  ``GET /fail/{key}`` shows the call log (attempt, method, status, seconds since the first
  call); ``POST /fail/{key}/reset`` or ``DELETE /fail/{key}`` starts the key again.
  A learner keeps at most 32 keys (the least recently used is forgotten) and the log keeps
  the first 120 calls of a key.
- ``/retry-after/{status}?seconds=S&date=1`` (any method): always 429 or 503 with
  ``Retry-After``. It keeps no state: to refuse N times and then succeed, use
  ``/fail/{key}/{n}?status=429&retry_after=S``.
- ``/flaky/{rate}?seed=N`` (any method): fails a fraction ``rate`` (0..1) of calls with
  ``?status=`` (default 503). With a seed the draws come from your own ``random.Random(seed)``,
  so the same seed gives the same sequence (``POST /flaky/reset`` restarts it); without one,
  from the server's seeded generator. A learner keeps at most 32 seeded sequences.
- ``/slow/headers/{seconds}``: sends nothing for ``seconds`` (≤ 10), then a small JSON body.
- ``/slow/body/{seconds}?chunks=N``: headers (with Content-Length) at once, then N lines
  (≤ 100), one every ``seconds / N``.
- ``/fault/reset``: the connection is reset (TCP RST) without any answer.
- ``/fault/short-body?length=L&send=S``: ``Content-Length: L`` but only S < L bytes, then
  the connection is closed.
- ``/fault/close-after/{n}``: a chunked body (no Content-Length) closed after n bytes.
- ``/fault/wrong-content-type?type=text/html``: JSON text labelled with another type.
- ``/fault/charset?encoding=latin-1&label=utf-8``: JSON encoded with one charset and
  labelled with another.

A deliberately broken connection never answers 500 and never logs an error.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from . import timing
from .errors import bad_request, error_body
from .learners import PerLearner, learner_of
from .params import parse_float, parse_int, path_int, query_int
from .state import RANDOM

routes = web.RouteTableDef()

MAX_FAILURES = 100
MAX_KEYS_PER_LEARNER = 32
# Enough for a retry loop against the largest n (100 failures, then success).
MAX_LOG_ENTRIES = 120
MAX_SEEDS_PER_LEARNER = 32
MAX_SEED = 2**32 - 1
MAX_RETRY_AFTER_SECONDS = 3600
MAX_SLOW_SECONDS = 10.0
MAX_SLOW_CHUNKS = 100
MAX_FAULT_BYTES = 1024 * 1024
DEFAULT_FAIL_STATUS = 503
RETRY_AFTER_STATUSES = (429, 503)
KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A media type without parameters: type "/" subtype, each an RFC 9110 token.
MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,50}/[A-Za-z0-9!#$&^_.+-]{1,50}")
# The charsets /fault/charset offers: enough to show a mismatch, nothing exotic.
CHARSETS = ("utf-8", "latin-1", "cp1252", "utf-16")
CHARSET_SAMPLE = {"city": "Zürich", "greeting": "Grüße", "dish": "crème brûlée"}
# nginx's status for "closed the connection without a response": what the stats record
# for /fault/reset, whose answer is never sent.
NO_RESPONSE = 444


# --- per-learner state -----------------------------------------------------------------------


@dataclass
class FailCounter:
    """The calls made to one /fail key: how many, when the first came, and the first few."""

    calls: int = 0
    first_call: float = 0.0
    # (attempt, method, status, seconds since the first call): tuples, as there may be many.
    log: list[tuple[int, str, int, float]] = field(default_factory=list)

    def record(self, method: str, status: int, now: float) -> int:
        """Count one call and return its attempt number (1 for the first)."""
        if self.calls == 0:
            self.first_call = now
        self.calls += 1
        if len(self.log) < MAX_LOG_ENTRIES:
            self.log.append((self.calls, method, status, round(now - self.first_call, 4)))
        return self.calls

    def log_as_json(self) -> list[dict[str, Any]]:
        """The log as ``GET /fail/{key}`` shows it."""
        fields = ("attempt", "method", "status", "t")
        return [dict(zip(fields, entry, strict=True)) for entry in self.log]

    def reset(self) -> None:
        """Forget every call, so the next one is attempt 1 again."""
        self.calls = 0
        self.first_call = 0.0
        self.log = []


@dataclass
class FlakySequence:
    """One learner's ``random.Random(seed)`` for /flaky and the number of draws made."""

    rng: random.Random | None = None
    draws: int = 0

    def draw(self, seed: int) -> tuple[int, float]:
        """The next number in [0, 1) of this seed's sequence, with its 1-based index."""
        if self.rng is None:
            self.rng = random.Random(seed)
        self.draws += 1
        return self.draws, self.rng.random()


class LearnerFaults:
    """A learner's /fail keys and /flaky sequences, each bounded (least recently used goes)."""

    def __init__(self) -> None:
        self.counters: PerLearner[FailCounter] = PerLearner(FailCounter, MAX_KEYS_PER_LEARNER)
        self.reset_sequences()

    def reset_sequences(self) -> None:
        """Forget every seeded /flaky sequence."""
        self.sequences: PerLearner[FlakySequence] = PerLearner(FlakySequence, MAX_SEEDS_PER_LEARNER)


FAULTS = web.AppKey("faults", PerLearner[LearnerFaults])


def setup(app: web.Application) -> None:
    """Give the app its per-learner fault counters."""
    app[FAULTS] = PerLearner(LearnerFaults)


def _faults(request: web.Request) -> LearnerFaults:
    """The fault state of the request's learner."""
    return request.app[FAULTS].get(learner_of(request))


def _key(request: web.Request) -> str:
    """The ``{key}`` path parameter, or a 400 if it is not 1-64 safe characters."""
    key = request.match_info["key"]
    if not KEY.fullmatch(key):
        bad_request(f"a key is 1 to 64 letters, digits, '_', '-' or '.', got {key[:70]!r}")
    return key


# --- Retry-After -----------------------------------------------------------------------------


def retry_after_value(seconds: int, as_date: bool) -> str:
    """``Retry-After`` as delta-seconds, or as an HTTP date rounded up to a whole second."""
    if not as_date:
        return str(seconds)
    when = datetime.fromtimestamp(math.ceil(time.time()) + seconds, tz=UTC)
    return email.utils.format_datetime(when, usegmt=True)


def _retry_after_headers(request: web.Request, name: str, default: int | None) -> dict[str, str]:
    """The Retry-After header the query asks for (``name`` in seconds, ``date=1``), if any."""
    text = request.query.get(name)
    if text is None and default is None:
        return {}
    seconds = default if text is None else parse_int(text, name, 0, MAX_RETRY_AFTER_SECONDS)
    as_date = query_int(request, "date", 0, 0, 1) == 1
    return {"Retry-After": retry_after_value(seconds, as_date)}


def _failure(status: int, detail: str, headers: dict[str, str]) -> web.Response:
    """A deliberate failure: ``status`` with the usual JSON error body."""
    return web.json_response(error_body(status, detail), status=status, headers=headers)


# --- /fail -----------------------------------------------------------------------------------


@routes.get("/fail/{key}")
async def fail_log(request: web.Request) -> web.Response:
    """A /fail key's call log: attempt, method, status, time; DELETE resets the key."""
    key = _key(request)
    counters = _faults(request).counters
    counter = counters.get(key) if key in counters else FailCounter()
    return web.json_response(
        {
            "key": key,
            "calls": counter.calls,
            "log": counter.log_as_json(),
            "log_limit": MAX_LOG_ENTRIES,
        }
    )


@routes.post("/fail/{key}/reset")
@routes.delete("/fail/{key}")
async def fail_reset(request: web.Request) -> web.Response:
    """Forgets a /fail key's calls, so it fails again from attempt 1."""
    key = _key(request)
    counters = _faults(request).counters
    if key in counters:
        counters.get(key).reset()
    return web.json_response({"key": key, "reset": True})


@dataclass(frozen=True)
class CountedCall:
    """One call to a fail-N-times key: its attempt number, and the failure to send, if any."""

    attempt: int
    failure: web.Response | None


def count_call(request: web.Request, key: str, failures: int, ok_status: int) -> CountedCall:
    """Count a call for ``key``, which fails its first ``failures`` calls, in the key's log.

    A failing call gets ``?status=`` (503) with a JSON error, ``X-Attempt`` and the
    ``Retry-After`` that ``?retry_after=`` asks for; a later call is logged with ``ok_status``.
    Shared by ``/fail/{key}/{n}`` and ``/files/{size}?fail=N&key=K``.
    """
    status = query_int(request, "status", DEFAULT_FAIL_STATUS, 400, 599)
    retry_after = _retry_after_headers(request, "retry_after", None)
    counter = _faults(request).counters.get(key)
    now = asyncio.get_running_loop().time()
    failing = counter.calls < failures
    attempt = counter.record(request.method, status if failing else ok_status, now)
    if not failing:
        return CountedCall(attempt, None)
    detail = f"attempt {attempt} failed on purpose: key {key!r} fails its first {failures} calls"
    headers = {"X-Attempt": str(attempt), **retry_after}
    return CountedCall(attempt, _failure(status, detail, headers))


@routes.route("*", "/fail/{key}/{n}")
async def fail(request: web.Request) -> web.Response:
    """Fails the first n calls (≤100) per key with ?status= (503), then answers 200."""
    key = _key(request)
    n = path_int(request, "n", 0, MAX_FAILURES)
    call = count_call(request, key, n, 200)
    if call.failure is not None:
        return call.failure
    body = {"key": key, "attempt": call.attempt, "failures": n, "method": request.method}
    return web.json_response(body, headers={"X-Attempt": str(call.attempt)})


# --- /retry-after ----------------------------------------------------------------------------


@routes.route("*", "/retry-after/{status}")
async def retry_after(request: web.Request) -> web.Response:
    """429 or 503 with Retry-After: ?seconds=N (≤3600, default 1); ?date=1 for a date."""
    status = path_int(request, "status", 0, 999)
    if status not in RETRY_AFTER_STATUSES:
        bad_request(f"status must be 429 or 503, got {status}")
    headers = _retry_after_headers(request, "seconds", 1)
    detail = f"try again later; Retry-After says when ({headers['Retry-After']})"
    return _failure(status, detail, headers)


# --- /flaky ----------------------------------------------------------------------------------


@routes.post("/flaky/reset")
async def flaky_reset(request: web.Request) -> web.Response:
    """Restarts your seeded /flaky sequences from their first draw."""
    _faults(request).reset_sequences()
    return web.json_response({"reset": True})


@routes.route("*", "/flaky/{rate}")
async def flaky(request: web.Request) -> web.Response:
    """Fails a fraction rate (0..1) of calls with ?status= (503); ?seed=N repeats them."""
    rate = parse_float(request.match_info["rate"], "rate", 0.0, 1.0)
    status = query_int(request, "status", DEFAULT_FAIL_STATUS, 400, 599)
    seed_text = request.query.get("seed")
    if seed_text is None:
        call, draw = None, request.app[RANDOM].random()
        seed = None
    else:
        seed = parse_int(seed_text, "seed", 0, MAX_SEED)
        call, draw = _faults(request).sequences.get(str(seed)).draw(seed)
    if draw < rate:
        where = f" (seed {seed}, call {call})" if seed is not None else ""
        return _failure(status, f"a random failure at rate {rate:g}{where}", {})
    return web.json_response({"rate": rate, "seed": seed, "call": call})


# --- slow headers, slow body -----------------------------------------------------------------


def _seconds(request: web.Request) -> float:
    """The ``{seconds}`` path parameter: a number from 0 to 10."""
    return parse_float(request.match_info["seconds"], "seconds", 0.0, MAX_SLOW_SECONDS)


@routes.get("/slow/headers/{seconds}")
async def slow_headers(request: web.Request) -> web.Response:
    """Sends nothing for the given seconds (≤10), then a small JSON body."""
    seconds = _seconds(request)
    await timing.sleep(seconds)
    return web.json_response({"waited": seconds})


@routes.get("/slow/body/{seconds}")
async def slow_body(request: web.Request) -> web.StreamResponse:
    """Headers at once, then ?chunks=N lines (≤100, default 5) over seconds (≤10)."""
    seconds = _seconds(request)
    chunks = query_int(request, "chunks", 5, 1, MAX_SLOW_CHUNKS)
    lines = [f"chunk {i} of {chunks}\n".encode() for i in range(1, chunks + 1)]
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    resp.content_length = sum(map(len, lines))
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    try:
        for line in lines:
            await timing.sleep(seconds / chunks)
            await resp.write(line)
    except ConnectionError:  # the client gave up (its timeout, most likely)
        pass
    return resp


# --- broken connections ----------------------------------------------------------------------


def _reset_connection(request: web.Request) -> None:
    """Abort the connection so the peer gets a TCP RST: no answer, no FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:  # linger on, timeout 0: close() discards unsent data and sends RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _hang_up(request: web.Request) -> None:
    """Close the connection once what was written has been sent (a FIN, not a reset).

    aiohttp's own attempt to finish the response afterwards meets a closing transport,
    which it treats as a client that went away: nothing more is sent and nothing is logged.
    """
    if request.transport is not None:
        request.transport.close()


def _pattern(length: int) -> bytes:
    """``length`` bytes of a readable repeating pattern."""
    unit = b"0123456789abcdef"
    return (unit * (length // len(unit) + 1))[:length]


@routes.route("*", "/fault/reset")
async def fault_reset(request: web.Request) -> web.Response:
    """Resets the connection (TCP RST) without answering: the client gets an error."""
    _reset_connection(request)
    return web.Response(status=NO_RESPONSE)  # never sent: recorded in the stats only


@routes.route("*", "/fault/short-body")
async def short_body(request: web.Request) -> web.StreamResponse:
    """Says Content-Length ?length= (1000) but sends ?send= bytes (half), then closes."""
    length = query_int(request, "length", 1000, 1, MAX_FAULT_BYTES)
    send = query_int(request, "send", length // 2, 0, MAX_FAULT_BYTES)
    if send >= length:
        bad_request(f"send must be less than length ({length}), got {send}")
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = length
    await resp.prepare(request)
    if request.method != "HEAD":
        await _write_then_hang_up(request, resp, _pattern(send))
    return resp


@routes.route("*", "/fault/close-after/{n}")
async def close_after(request: web.Request) -> web.StreamResponse:
    """Streams n bytes (≤1 MiB) of a chunked body, then closes the connection mid-body."""
    n = path_int(request, "n", 0, MAX_FAULT_BYTES)
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    if request.method != "HEAD":
        await _write_then_hang_up(request, resp, _pattern(n))
    return resp


async def _write_then_hang_up(request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
    """Write ``data`` in pieces of 64 KiB, then close the connection before the body ends."""
    try:
        for start in range(0, len(data), 65536):
            await resp.write(data[start : start + 65536])
    except ConnectionError:
        return
    _hang_up(request)


# --- bodies that lie about themselves --------------------------------------------------------


@routes.get("/fault/wrong-content-type")
async def wrong_content_type(request: web.Request) -> web.Response:
    """JSON text served as text/html (or ?type=): resp.json() raises ContentTypeError."""
    media_type = request.query.get("type", "text/html")
    if not MEDIA_TYPE.fullmatch(media_type):
        bad_request(f"type must be a media type like text/html, got {media_type[:60]!r}")
    text = f'{{"message": "this is JSON, but the Content-Type says {media_type}"}}'
    return web.Response(body=text.encode(), content_type=media_type)


def _charset(request: web.Request, name: str, default: str, extra: tuple[str, ...] = ()) -> str:
    """The query parameter ``name`` as one of CHARSETS (or ``extra``), or a 400."""
    value = request.query.get(name, default).lower()
    if value not in CHARSETS + extra:
        bad_request(f"{name} must be one of {', '.join(CHARSETS + extra)}, got {value[:40]!r}")
    return value


@routes.get("/fault/charset")
async def charset_mismatch(request: web.Request) -> web.Response:
    """JSON encoded as ?encoding= (latin-1) but labelled charset ?label= (utf-8)."""
    encoding = _charset(request, "encoding", "latin-1")
    label = _charset(request, "label", "utf-8", ("none",))
    body = json.dumps(CHARSET_SAMPLE, ensure_ascii=False).encode(encoding)
    content_type = "application/json" if label == "none" else f"application/json; charset={label}"
    return web.Response(body=body, headers={"Content-Type": content_type})
