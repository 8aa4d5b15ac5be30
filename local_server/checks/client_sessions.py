"""Checks for exercise 01, client sessions: ``from local_server.checks import client_sessions``.

Each task's rules are declared in a table (``FETCH_ALL``, ``MAKE_API_SESSION``, ``API_CLIENT``)
and observed on seeded scenarios served by the check itself, on the check's own loop:

- ``fetch_all``: 20 URLs, then 13 with bodies that are not ASCII (one labelled ISO-8859-1,
  some sent in two pieces), answered in a shuffled order by a ``Gate`` that holds each request
  until the client's concurrency has shown itself (so a verdict never rests on a lucky
  timing), then a batch in which one response is cut off mid-body: the error must propagate
  and the session be closed on that path too;
- ``make_api_session``: two servers and two tokens, each session used as
  ``async with make_api_session(...) as session`` (exactly as the task says);
- ``ApiClient``: one block of sequential calls (the server counts the TCP connections), two
  clients on two servers at once (state shared through the class shows), and a block that
  raises.

The ``Gate``, ``serve_all`` and ``tasks_waiting`` are used by exercise 02's checks as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from yarl import URL

from ..runner import LocalServer
from ..serving import serve
from .evidence import (
    LearnerLine,
    clip,
    exception_text,
    is_learner_file,
    learner_line,
    learner_line_at,
)
from .harness import SessionSpy, call_async, check, plural
from .rules import Mistake, Rule, Task

SEED = 0

# --- serving scenario apps, and the gate that makes concurrency show -----------------------

# The first request waits this long for a second one; none comes: the client is sequential.
FIRST_WAIT_SECONDS = 1.0
# Held requests are released once no new one has arrived for this long (or the cap is hit).
SETTLE_SECONDS = 0.25
# Released requests are answered this far apart, in a shuffled order.
RELEASE_GAP_SECONDS = 0.004
POLL_SECONDS = 0.004


@dataclass
class Seen:
    """One request as a scenario app saw it: where it came from, and when."""

    host: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    port: int | None
    start: float
    end: float | None = None


def seen_of(request: web.Request, host: str) -> Seen:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Seen(
        host,
        request.method,
        request.path,
        dict(request.query),
        dict(request.headers),
        peer[1] if peer else None,
        asyncio.get_running_loop().time(),
    )


class Gate:
    """Holds every request until the client's concurrency has shown itself.

    The first request waits until a second one is in flight (at most FIRST_WAIT_SECONDS: a
    client that sends one request at a time is sequential, and nothing is held after that).
    Then held requests are released when ``cap`` are in flight (without one, the first
    batch's size), or when no new request has arrived for SETTLE_SECONDS, in a seeded
    shuffled order (never the order they came in), a few milliseconds apart. So the peak
    the servers see is the client's own bound, not a lucky timing, and completion order is
    never argument order.
    """

    def __init__(self, rng: random.Random, cap: int | None = None) -> None:
        self.rng = rng
        self.cap = cap
        self.seen: list[Seen] = []
        self.total = 0
        self.peak = 0
        self.by_host: Counter[str] = Counter()
        self.peak_by_host: Counter[str] = Counter()
        self.sequential = False
        self.gated = True
        # Called once, when the first request has waited alone for FIRST_WAIT_SECONDS.
        self.on_alone: Callable[[], None] | None = None
        # Called at every new peak of requests in flight together.
        self.on_peak: Callable[[], None] | None = None
        self._held: list[asyncio.Future[None]] = []
        self._first_done = False
        self._last_arrival = 0.0
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def enter(self, seen: Seen) -> None:
        """Count ``seen`` in flight and wait until the gate lets it be answered."""
        loop = asyncio.get_running_loop()
        self.seen.append(seen)
        self.total += 1
        self.by_host[seen.host] += 1
        self.peak_by_host[seen.host] = max(self.peak_by_host[seen.host], self.by_host[seen.host])
        if self.total > self.peak:
            self.peak = self.total
            if self.on_peak is not None:
                self.on_peak()
        self._last_arrival = loop.time()
        if not self.gated:
            return
        waiter = loop.create_future()
        self._held.append(waiter)
        self._wake.set()
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._release())
        await waiter

    def leave(self, seen: Seen) -> None:
        """``seen`` is answered: call it just before the response's last bytes are written.

        Not after: the client runs on this loop, and between the last write and the
        handler's return it can read the whole body, release the connection and send its
        next request, which would then seem to overlap this one. ``transport.write`` is
        synchronous, so nothing runs between this call and the last bytes going out.
        """
        if seen.end is None:
            seen.end = asyncio.get_running_loop().time()
            self.total -= 1
            self.by_host[seen.host] -= 1

    @property
    def last_arrival(self) -> float:
        """Loop time of the latest request's arrival."""
        return self._last_arrival

    def in_flight_at_once(self, host: str | None = None) -> int:
        return self.peak if host is None else self.peak_by_host[host]

    async def _release(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._held:
                continue
            if not self._first_done:
                give_up = loop.time() + FIRST_WAIT_SECONDS
                while self.total < 2 and loop.time() < give_up:
                    await asyncio.sleep(POLL_SECONDS)
                self._first_done = True
                if self.total < 2:
                    self.sequential = True
                    self.gated = False
                    if self.on_alone is not None:
                        self.on_alone()
            if self.gated:
                while (self.cap is None or self.total < self.cap) and (
                    loop.time() - self._last_arrival < SETTLE_SECONDS
                ):
                    await asyncio.sleep(POLL_SECONDS)
            batch, self._held = self._held, []
            if self.cap is None:
                # The first batch shows the client's bound: later ones are let go at that size.
                self.cap = max(2, len(batch))
            order = batch[:]
            self.rng.shuffle(order)
            if len(order) > 1 and order == batch:
                order.reverse()
            for waiter in order:
                if not waiter.done():
                    waiter.set_result(None)
                await asyncio.sleep(RELEASE_GAP_SECONDS)
            if self._held:
                self._wake.set()

    async def close(self) -> None:
        self.gated = False
        for waiter in self._held:
            if not waiter.done():
                waiter.set_result(None)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


@contextlib.asynccontextmanager
async def serve_all(apps: Sequence[web.Application]) -> AsyncIterator[list[str]]:
    """Serve every app on its own loopback port (another port: another host to a pool)."""
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(app, shutdown_timeout=0.2)) for app in apps]
        yield urls


async def cut_off(request: web.Request, response: web.StreamResponse, sent: bytes) -> None:
    """Send ``sent``, the start of a longer body, then break the connection: a failure mid-body."""
    await response.write(sent)
    await asyncio.sleep(0.02)
    if request.transport is not None:
        request.transport.abort()


def sockets_open_to(urls: Iterable[str]) -> int:
    """This process's TCP connections still established to the servers at ``urls``.

    Both ends are in this process: a connection whose remote port is a scenario server's is
    a client's socket. A closed session whose connector stays open (``connector_owner=False``)
    keeps them.
    """
    ports = {URL(url).port for url in urls}
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port in ports and conn.status == psutil.CONN_ESTABLISHED
    )


def wait_until(condition: Callable[[], bool], patience: float) -> Awaitable[None]:
    """Wait until ``condition()`` holds, at most ``patience`` seconds (loop time)."""

    async def waiting() -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + patience
        while not condition() and loop.time() < give_up:
            await asyncio.sleep(POLL_SECONDS)

    return waiting()


# --- where the learner's tasks wait --------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Where one of the learner's tasks stood: what it waited for, and on which of its lines."""

    kind: str  # "semaphore", "pool", "connect", "response", "body", "sleep", "other"
    line: LearnerLine


def _await_frames(task: asyncio.Task[Any]) -> list[Any]:
    """The frames of ``task``'s coroutine and of everything it awaits, outermost first."""
    frames = []
    coro: Any = task.get_coro()
    for _ in range(64):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        frame = frame or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
        if type(awaited).__name__ == "coroutine_wrapper":
            # `await obj` where obj.__await__() returns a coroutine's wrapper (aiohttp's
            # `await session.get(url)`): the wrapper refers to the coroutine, nothing else.
            awaited = next((r for r in gc.get_referents(awaited) if inspect.iscoroutine(r)), None)
        coro = awaited
    return frames


# What a task waits for, by the library frames after the learner's innermost one: the most
# specific first (a request queued for the pool is also inside the connector).
_WAIT_MARKERS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("semaphore", lambda path, name: path.endswith("locks.py") and name == "acquire"),
    ("pool", lambda path, name: name == "_wait_for_available_connection"),
    ("response", lambda path, name: path.endswith("client_reqrep.py") and name == "start"),
    ("body", lambda path, name: "aiohttp" in path and name in ("read", "text", "json")),
    ("body", lambda path, name: path.endswith("streams.py")),
    ("connect", lambda path, name: path.endswith("connector.py")),
    ("sleep", lambda path, name: path.endswith("tasks.py") and name == "sleep"),
)


def _kind(frames: Sequence[Any]) -> str:
    """What the frames after the learner's innermost one are waiting for."""
    names = [(frame.f_code.co_filename, frame.f_code.co_name) for frame in frames]
    for kind, marks in _WAIT_MARKERS:
        if any(marks(path, name) for path, name in names):
            return kind
    return "other"


def learner_tasks() -> list[asyncio.Task[Any]]:
    """The pending tasks with learner code on their await chain."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done()
        and any(is_learner_file(f.f_code.co_filename) for f in _await_frames(task))
    ]


def tasks_waiting() -> list[Waiting]:
    """Every pending task with learner code on its await chain, and what it waits for."""
    found = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        frames = _await_frames(task)
        learner = [i for i, f in enumerate(frames) if is_learner_file(f.f_code.co_filename)]
        if not learner:
            continue
        inner = frames[learner[-1]]
        line = learner_line_at(inner.f_code.co_filename, inner.f_code.co_name, inner.f_lineno)
        found.append(Waiting(_kind(frames[learner[-1] + 1 :]), line))
    return found


def describe_waiting(waiting: Iterable[Waiting], kinds: Iterable[str]) -> str:
    """E.g. "5 tasks of yours waited on a semaphore at line 4 of one(): ...", or ''."""
    wanted = set(kinds)
    counts = Counter(w for w in waiting if w.kind in wanted)
    if not counts:
        return ""
    (first, count), *_ = counts.most_common(1)
    what = {
        "semaphore": "on a semaphore",
        "pool": "for a free connection in the pool",
        "connect": "for a connection",
        "response": "for a response",
        "body": "for a body",
        "sleep": "in asyncio.sleep",
        "other": "",
    }[first.kind]
    tasks = "1 task of yours" if count == 1 else f"{count} tasks of yours"
    return f"{tasks} waited {what} at {first.line}".replace("  ", " ")


# --- shared judging ----------------------------------------------------------------------


def shown(value: Any, limit: int = 60) -> str:
    """``value`` for a message: a short repr for plain data, the type for anything else.

    An object's repr holds a memory address and a URL a port, and a verdict must repeat.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return clip(repr(value), limit)
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return clip(repr(value), limit)
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def close_coroutines(values: Iterable[Any]) -> bool:
    """Close every coroutine in ``values`` (so Python does not warn later); True if any."""
    found = False
    for value in values:
        if inspect.iscoroutine(value):
            value.close()
            found = True
    return found


def expect_list(table: Task, task: str, result: Any, count: int, each: str) -> list[Any]:
    """``result`` as a list of ``count`` items, or the Mistake that says what came back."""
    if inspect.isawaitable(result):
        close_coroutines([result])
        raise table.broken(
            "missing-await",
            f"{task} returned {type(result).__name__} instead of a list: an `await` is missing "
            "(`return await asyncio.gather(...)`).",
        )
    if not isinstance(result, (list, tuple)):
        raise table.broken(
            "wrong-return-type",
            f"{task} returned {shown(result)}; expected a list of {count} {each}.",
        )
    if close_coroutines(result):
        raise table.broken(
            "missing-await",
            f"{task} returned a list of coroutines: each one needs an `await` (or "
            "`await asyncio.gather(*coroutines)`).",
        )
    if len(result) != count:
        raise table.broken(
            "wrong-count", f"{task} returned {len(result)} results for {count} URLs."
        )
    return list(result)


def expect_propagated(table: Task, task: str, returned: Any, cut_at: int, count: int) -> Mistake:
    """The ``error-swallowed`` Mistake for a call that returned although URL ``cut_at`` failed."""
    seen = f"the response for URL {cut_at} was cut off mid-body, and {task} returned"
    if isinstance(returned, (list, tuple)):
        errors = [item for item in returned if isinstance(item, BaseException)]
        if errors:
            return table.broken(
                "error-swallowed",
                f"{seen} a list holding a {type(errors[0]).__name__} object instead of "
                "raising (`return_exceptions=True`?).",
            )
        if len(returned) != count:
            return table.broken(
                "error-swallowed",
                f"{seen} a list of {len(returned)} results for {count} URLs instead of "
                "raising: the failed one was left out.",
            )
        if len(returned) > cut_at:
            return table.broken(
                "error-swallowed",
                f"{seen} a list whose item {cut_at} is {clip(repr(returned[cut_at]), 60)} "
                "instead of raising.",
            )
    return table.broken("error-swallowed", f"{seen} {shown(returned, 70)} instead of raising.")


async def run_catching(
    table: Task, task: str, learner: Any, *args: Any
) -> tuple[Any, BaseException | None]:
    """Call the learner where a request fails: (result, None), or (None, the error it let out).

    Only an aiohttp client error, or one that carries it, counts as the failed request's;
    any other error is the code's own, and is reported as raised.
    """
    try:
        return await call_async(task, learner, *args), None
    except Mistake:
        raise
    except Exception as exc:
        if isinstance(exc, TypeError) and "do not inherit from BaseException" in str(exc):
            raise table.broken(
                "raised",
                f"when a request failed, {task} raised {exception_text(exc)} "
                f"({learner_line(exc) or 'in your code'}): an `except` clause names "
                "something that is not an exception class.",
                "`aiohttp.ClientTimeout` is a settings class, not an exception: catch "
                "`TimeoutError` or `aiohttp.ClientError` (here, let the error through).",
            ) from None
        if not _from_client_error(exc):
            raise
        return None, exc


def _from_client_error(exc: BaseException) -> bool:
    """True if ``exc`` is an aiohttp client error, wraps one, or groups one."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, aiohttp.ClientError):
            return True
        if isinstance(error, TypeError) and "do not inherit from BaseException" in str(error):
            return False  # the except clause itself is broken, whatever it was handling
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        pending.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    return False


def connector_settings(connector: aiohttp.BaseConnector | None) -> str:
    """E.g. "limit=1, limit_per_host=0" for a connector, or '' for None."""
    if connector is None:
        return ""
    parts = [f"limit={connector.limit}", f"limit_per_host={connector.limit_per_host}"]
    if connector.force_close:
        parts.append("force_close=True")
    return ", ".join(parts)


# === Task 1: fetch_all ==================================================================

FETCH_ALL = Task(
    "fetch_all",
    Rule(
        "wrong-return-type",
        "returns the response bodies as text, a list",
        "the type of what fetch_all returned",
        "return `await asyncio.gather(...)`: a list, in the order of its arguments.",
    ),
    Rule(
        "wrong-count",
        "returns the response bodies (one per URL)",
        "the length of the list, against the number of URLs",
        "return one body per URL, every URL included.",
    ),
    Rule(
        "bytes-not-text",
        "returns the response bodies as text",
        "the type of each body",
        "use `await response.text()`, which decodes with the response's charset; "
        "`.read()` gives bytes.",
    ),
    Rule(
        "not-text",
        "returns the response bodies as text",
        "the type of each body",
        "use `await response.text()` (not `.json()`, and not the response object itself).",
    ),
    Rule(
        "wrong-text",
        "the bodies as text (`response.text()` decodes each with its charset)",
        "each body compared with what the server sent: bodies that are not ASCII, one "
        "labelled charset=iso-8859-1",
        "`await response.text()` decodes each body with the charset its response names; "
        "decoding the bytes yourself with a fixed codec gets some bodies wrong.",
    ),
    Rule(
        "read-after-close",
        "read every body while the session is open",
        "bodies sent in two pieces: a body read after the session closed cannot arrive",
        "read each body inside `async with session.get(url) as response:`, inside the "
        "session's block: once the session is closed, the rest of a body cannot arrive.",
    ),
    Rule(
        "wrong-order",
        "in the same order as `urls`",
        "the server answers the requests in a shuffled order, never the order they came",
        "asyncio.gather returns results in the order of its arguments; "
        "asyncio.as_completed yields them as they finish.",
    ),
    Rule(
        "sequential",
        "run the requests **concurrently**, not one after another",
        "the server holds the first request until a second one arrives (up to 1 s)",
        "start every request before waiting for any: `await asyncio.gather(*coroutines)`, "
        "with no limit of 1 on the pool or a semaphore.",
    ),
    Rule(
        "session-per-request",
        "open **one** `ClientSession`",
        "sessions created while fetch_all ran, counted",
        "create one ClientSession in fetch_all and pass it to every request: a session "
        "owns the connection pool, so a new one per request starts from nothing each time.",
    ),
    Rule(
        "no-session-created",
        "open one `ClientSession` (in fetch_all)",
        "sessions created while fetch_all ran, counted",
        "open the session inside fetch_all with `async with aiohttp.ClientSession() as "
        "session:` so it is closed when fetch_all is done.",
    ),
    Rule(
        "session-left-open",
        "close it before returning",
        "sessions created by fetch_all and still open after it returned, and sockets still "
        "connected to the server",
        "use `async with aiohttp.ClientSession() as session:`, which closes it however the "
        "block ends (or `await session.close()` in a `finally`).",
    ),
    Rule(
        "session-left-open-on-error",
        "close it before returning, also when a request fails",
        "one response is cut off mid-body: the session must be closed after fetch_all raised",
        "`async with aiohttp.ClientSession() as session:` closes the session however the "
        "block ends; a `close()` after the requests is skipped when one of them raises.",
    ),
    Rule(
        "error-swallowed",
        "a failed request's exception propagates",
        "one response is cut off mid-body: fetch_all must raise, not return",
        "let the exception propagate (no `return_exceptions=True`, no `except` that returns "
        "a default): a caller cannot tell a placeholder from a body.",
    ),
)

FETCH_ALL_WORDS = ("café", "naïve", "Grüße", "東京", "☕", "crème brûlée", "smörgåsbord")
LATIN_WORDS = ("Ærøskøbing", "café", "naïve", "Grüße", "señor", "façade")
# A body this long is sent in two pieces, PIECE_GAP apart: read after close, it is cut.
PIECE_GAP_SECONDS = 0.03
# The cut response waits for the others to end (at most this long) before it breaks.
CUT_WAIT_SECONDS = 1.0


@dataclass
class TextItem:
    """One URL of a fetch_all scenario: the text its body holds and how it is sent."""

    text: str
    charset: str = "utf-8"
    pieces: int = 1
    cut: bool = False


@dataclass
class TextScenario:
    label: str
    items: list[TextItem]
    gate: Gate
    prepared: int = 0
    app: web.Application = field(init=False)

    def others_done(self, seen: Seen) -> bool:
        """Every other request of the scenario has been answered."""
        done = [s for s in self.gate.seen if s is not seen and s.end is not None]
        return len(done) >= len(self.items) - 1

    def __post_init__(self) -> None:
        self.app = _text_app(self)


def _text_app(scenario: TextScenario) -> web.Application:
    async def item(request: web.Request) -> web.StreamResponse:
        index = int(request.match_info["index"])
        spec = scenario.items[index]
        seen = seen_of(request, "text")
        try:
            await scenario.gate.enter(seen)
            body = spec.text.encode(spec.charset)
            response = web.StreamResponse(
                headers={"Content-Type": f"text/plain; charset={spec.charset}"}
            )
            response.content_length = len(body)
            await response.prepare(request)
            scenario.prepared += 1
            if spec.cut:
                await wait_until(lambda: scenario.others_done(seen), CUT_WAIT_SECONDS)
                scenario.gate.leave(seen)
                await cut_off(request, response, body[: len(body) // 3])
                return response
            step = -(-len(body) // spec.pieces)
            for start in range(0, len(body), step):
                if start + step >= len(body):
                    scenario.gate.leave(seen)  # see ``last_write``
                await response.write(body[start : start + step])
                if start + step < len(body):
                    # Only once every response has its headers: a body read after the
                    # session closed is then still on its way, whatever the timing.
                    await wait_until(
                        lambda: scenario.prepared >= len(scenario.items), CUT_WAIT_SECONDS
                    )
                    await asyncio.sleep(PIECE_GAP_SECONDS)
            await response.write_eof()
            return response
        except ConnectionError:  # the client went away (released an unread body)
            return web.Response()
        finally:
            scenario.gate.leave(seen)

    app = web.Application()
    app.router.add_get("/text/{index}", item)
    return app


def _fetch_all_scenarios(rng: random.Random) -> list[TextScenario]:
    def text(i: int, n: int, words: Sequence[str], length: int = 0) -> str:
        token = f"{rng.getrandbits(40):010x}"
        line = f"item {i} of {n} · {token} · {rng.choice(words)} · {rng.choice(words)}\n"
        return line * max(1, length // len(line))

    first = [TextItem(text(i, 20, FETCH_ALL_WORDS)) for i in range(20)]
    second = []
    latin_at, pieces_at = rng.sample(range(13), 2)
    for i in range(13):
        if i == latin_at:
            second.append(TextItem(text(i, 13, LATIN_WORDS, 3000), charset="iso-8859-1"))
        elif i == pieces_at or i % 4 == 1:
            second.append(TextItem(text(i, 13, FETCH_ALL_WORDS, 70_000 + 977 * i), pieces=2))
        else:
            second.append(TextItem(text(i, 13, FETCH_ALL_WORDS, rng.randrange(10, 900))))
    cut_at = rng.randrange(2, 6)
    third = [TextItem(text(i, 8, FETCH_ALL_WORDS, 500), cut=i == cut_at) for i in range(8)]
    return [
        TextScenario("20 URLs", first, Gate(rng)),
        TextScenario("13 URLs", second, Gate(rng)),
        TextScenario("8 URLs, one cut off", third, Gate(rng)),
    ]


@check(FETCH_ALL)
async def fetch_all(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_all(urls)``: every body as text, in order, concurrently, one session, closed."""
    rng = random.Random(f"{SEED}-fetch_all")
    *happy, failing = _fetch_all_scenarios(rng)
    for scenario in happy:
        alone: list[Alone] = []
        before = spy.created
        connectors: list[aiohttp.BaseConnector] = []
        scenario.gate.on_alone = lambda alone=alone, before=before: alone.append(
            Alone(tasks_waiting(), [s.connector for s in spy.sessions[before:]])
        )
        scenario.gate.on_peak = lambda kept=connectors, before=before: kept.extend(
            s.connector for s in spy.sessions[before:] if s.connector not in (None, *kept)
        )
        async with serve_all([scenario.app]) as (url,):
            urls = [f"{url}/text/{i}" for i in range(len(scenario.items))]
            try:
                bodies = await call_async("fetch_all", learner, urls)
            except aiohttp.ContentTypeError as exc:
                raise FETCH_ALL.broken(
                    "not-text",
                    f"fetch_all parsed the bodies as JSON ({learner_line(exc) or 'in your code'})"
                    ", and these are text/plain: ContentTypeError. The task asks for the text.",
                    "use `await response.text()`, which returns the body as a str, decoded with "
                    "its charset.",
                ) from None
            except UnicodeDecodeError as exc:
                raise FETCH_ALL.broken(
                    "wrong-text",
                    f"decoding a body labelled charset=iso-8859-1 failed with "
                    f"{exception_text(exc)} ({learner_line(exc) or 'in your code'}): it was "
                    "decoded with a fixed codec, not its own charset.",
                ) from None
            except (aiohttp.ClientConnectionError, RuntimeError) as exc:
                # aiohttp: "Connection closed." (a RuntimeError when the body is read after
                # its connection was closed with the session).
                closed = spy.sessions[before:] and all(s.closed for s in spy.sessions[before:])
                if closed and "closed" in str(exc).lower():
                    raise FETCH_ALL.broken(
                        "read-after-close",
                        f"a body sent in two pieces failed with {exception_text(exc)} at "
                        f"{learner_line(exc) or 'your code'}: it was read after the session "
                        "closed.",
                    ) from None
                raise
            finally:
                await scenario.gate.close()
            sockets = sockets_open_to([url])
            left = orphans(connectors, spy.sessions[before:])
            await close_all(left)
        sessions = spy.sessions[before:]
        _judge_bodies(scenario, bodies)
        _judge_sessions(sessions, len(urls))
        if left or sockets:
            raise FETCH_ALL.broken(
                "session-left-open", _sockets_left(sockets, "returned"), CONNECTOR_HINT
            )
        if scenario.gate.peak < 2:
            raise _sequential(scenario, alone)
    await _expect_failure_handled(learner, spy, failing)
    return (
        "33 bodies in order (the server answered in a shuffled order; some not ASCII, one "
        "ISO-8859-1), fetched concurrently through one session, closed afterwards; a body "
        "cut off mid-way raised, with the session closed too."
    )


def _judge_bodies(scenario: TextScenario, bodies: Any) -> None:
    expected = [item.text for item in scenario.items]
    bodies = expect_list(FETCH_ALL, "fetch_all", bodies, len(expected), "strings")
    for body in bodies:
        if isinstance(body, (bytes, bytearray)):
            raise FETCH_ALL.broken(
                "bytes-not-text", "fetch_all returned bytes; the task asks for text."
            )
        if isinstance(body, aiohttp.ClientResponse):
            raise FETCH_ALL.broken(
                "not-text", "fetch_all returned the response objects, not their text."
            )
        if not isinstance(body, str):
            raise FETCH_ALL.broken(
                "not-text",
                f"fetch_all returned a list of {type(body).__name__}; the task asks for the "
                "text of each body.",
            )
    if bodies == expected:
        return
    positions = {text: i for i, text in enumerate(expected)}
    if sorted(bodies) == sorted(expected):
        raise FETCH_ALL.broken(
            "wrong-order",
            "the bodies came back in another order than their URLs; the server answered in "
            "a shuffled order, so the list follows the order the requests finished.",
        )
    index = next(
        i for i, pair in enumerate(zip(bodies, expected, strict=True)) if pair[0] != pair[1]
    )
    body, want, spec = bodies[index], expected[index], scenario.items[index]
    if body in positions:
        raise FETCH_ALL.broken(
            "wrong-order",
            f"the body in place {index} is the body of URL {positions[body]}: the list is not "
            "in the order of `urls`.",
        )
    first_diff = next(
        (i for i, (a, b) in enumerate(zip(body, want, strict=False)) if a != b),
        min(len(body), len(want)),
    )
    context = max(0, first_diff - 12)
    raise FETCH_ALL.broken(
        "wrong-text",
        f"the body of URL {index} (charset={spec.charset}) came back as "
        f"{clip(repr(body[context : context + 30]), 50)} where the server sent "
        f"{clip(repr(want[context : context + 30]), 50)}.",
    )


def _sockets_left(sockets: int, how: str) -> str:
    still = f" ({plural(sockets, 'connection')} to the server still open)" if sockets else ""
    return (
        f"the session was closed, but not its connector{still} after the call {how}: a "
        "connector made with `connector_owner=False` is not closed with its session."
    )


CONNECTOR_HINT = (
    "let the session own its connector (leave out `connector_owner=False`), or close the "
    "connector yourself when you are done: `await connector.close()`."
)


def orphans(
    connectors: Iterable[aiohttp.BaseConnector | None], sessions: Iterable[aiohttp.ClientSession]
) -> list[aiohttp.BaseConnector]:
    """The connectors still open that no open session owns (``connector_owner=False``, left)."""
    owned = {id(s.connector) for s in sessions if not s.closed}
    return [c for c in connectors if c is not None and not c.closed and id(c) not in owned]


async def close_all(connectors: Iterable[aiohttp.BaseConnector]) -> None:
    """Close orphaned connectors once seen (no warning later). A session still open is the
    harness's to close: closing its connector here would make it look closed."""
    for connector in connectors:
        with contextlib.suppress(Exception):
            await connector.close()


def _judge_sessions(sessions: Sequence[aiohttp.ClientSession], urls: int) -> None:
    if len(sessions) > 1:
        raise FETCH_ALL.broken(
            "session-per-request",
            f"{plural(len(sessions), 'session')} were created for {urls} URLs.",
        )
    if not sessions:
        raise FETCH_ALL.broken(
            "no-session-created",
            "fetch_all created no ClientSession while it ran: it used one made elsewhere "
            "(at module level, or in an earlier call).",
        )
    if not sessions[0].closed:
        raise FETCH_ALL.broken(
            "session-left-open", "the session was still open after fetch_all returned."
        )


@dataclass
class Alone:
    """What the learner's code was doing while the first request waited alone."""

    waiting: list[Waiting]
    connectors: list[aiohttp.BaseConnector | None]


def _sequential(scenario: TextScenario, alone: list[Alone]) -> Mistake:
    seen = (
        f"the server held the first of the {len(scenario.items)} requests for "
        f"{FIRST_WAIT_SECONDS:g} s and no second one arrived: they came one at a time"
    )
    snapshot = alone[0] if alone else Alone([], [])
    connector = next((c for c in snapshot.connectors if c is not None), None)
    if connector is not None and 1 in (connector.limit, connector.limit_per_host):
        return FETCH_ALL.broken(
            "sequential",
            f"{seen}. Your session's connector has {connector_settings(connector)}: one "
            "connection, so one request, at a time.",
            "leave the connector's default limit (100), or set one above 1: the requests "
            "queue in the pool otherwise.",
        )
    waiting = snapshot.waiting
    queued = describe_waiting(waiting, ("semaphore", "pool"))
    if queued:
        return FETCH_ALL.broken(
            "sequential",
            f"{seen}; meanwhile {queued}: something lets one request through at a time.",
            "a semaphore (or a pool) of 1 serialises the requests: allow more, or none.",
        )
    started = [w for w in waiting if w.kind in ("response", "body", "connect", "other")]
    if len(started) <= 1:
        where = f" (it waited at {started[0].line})" if started else ""
        return FETCH_ALL.broken(
            "sequential",
            f"{seen}: no other request of yours had started{where}.",
            "awaiting each request before starting the next runs them one after another: "
            "create all the coroutines first, then `await asyncio.gather(*coroutines)`.",
        )
    return FETCH_ALL.broken("sequential", f"{seen}.")


async def _expect_failure_handled(learner: Any, spy: SessionSpy, scenario: TextScenario) -> None:
    before = spy.created
    cut_at = next(i for i, item in enumerate(scenario.items) if item.cut)
    async with serve_all([scenario.app]) as (url,):
        urls = [f"{url}/text/{i}" for i in range(len(scenario.items))]
        try:
            returned, raised = await run_catching(FETCH_ALL, "fetch_all", learner, urls)
        finally:
            await scenario.gate.close()
        sockets = sockets_open_to([url])
    if raised is None:
        raise expect_propagated(FETCH_ALL, "fetch_all", returned, cut_at, len(urls))
    if sockets and all(session.closed for session in spy.sessions[before:]):
        raise FETCH_ALL.broken(
            "session-left-open-on-error", _sockets_left(sockets, "raised"), CONNECTOR_HINT
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise FETCH_ALL.broken(
            "session-left-open-on-error",
            f"one response was cut off mid-body; fetch_all raised {type(raised).__name__} "
            "(rightly), and the session stayed open.",
        )


# === Task 2: make_api_session ==========================================================

MAKE_API_SESSION = Task(
    "make_api_session",
    Rule(
        "async-def",
        "the check uses it as `async with make_api_session(...) as session:`",
        "what calling make_api_session returned: a coroutine cannot be used in `async with`",
        "define it with plain `def`: creating a session needs no `await`, and a coroutine "
        "is not a session (`async with` on it raises TypeError).",
    ),
    Rule(
        "not-a-session",
        "**returns** (does not close) a `ClientSession`",
        "the type of what make_api_session returned, and whether it is still open",
        "return `aiohttp.ClientSession(base_url=..., headers=...)` itself, unclosed: the "
        "caller's `async with` closes it.",
    ),
    Rule(
        "same-session-twice",
        "returns a new session for each call",
        "two calls with two servers and two tokens: the same object returned twice?",
        "create a new `aiohttp.ClientSession(...)` in every call; keeping one in a global "
        "gives every caller the first caller's settings (and closes it for all of them).",
    ),
    Rule(
        "spare-session",
        "returns a `ClientSession` (the only one it creates)",
        "sessions created by each call, and whether the spare ones were closed",
        "create exactly one session and return it: any other one you create stays open "
        '(aiohttp warns "Unclosed client session").',
    ),
    Rule(
        "no-base-url",
        '`session.get("/headers")` goes to `base_url` + `/headers`',
        "a request with a relative path: it fails without a base URL",
        "pass `base_url=base_url` to `aiohttp.ClientSession`.",
    ),
    Rule(
        "wrong-url",
        '`session.get("/headers")` goes to `base_url` + `/headers`',
        "which of two servers, and which path, the request reached",
        "pass the `base_url` argument itself, unchanged, as `base_url=`; request paths "
        "then resolve against it.",
    ),
    Rule(
        "no-auth-header",
        "every request carries `Authorization: Bearer <token>`",
        "the headers the server received",
        "pass `headers={'Authorization': f'Bearer {token}', ...}` to ClientSession: session "
        "headers are sent with every request.",
    ),
    Rule(
        "wrong-auth-header",
        "`Authorization: Bearer <token>`",
        "the Authorization header the server received, for two tokens",
        "the value is the word Bearer, one space, then the `token` argument itself.",
    ),
    Rule(
        "wrong-accept-header",
        "`Accept: application/json`",
        "the Accept header the server received",
        "add `'Accept': 'application/json'` to the session's headers.",
    ),
)


def _headers_app(host: str, seen: list[Seen]) -> web.Application:
    async def any_path(request: web.Request) -> web.Response:
        seen.append(seen_of(request, host))
        if request.path != "/headers":
            return web.json_response({"detail": f"no such path: {request.path}"}, status=404)
        return web.json_response({"headers": dict(request.headers)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    return app


@check(MAKE_API_SESSION)
async def make_api_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``make_api_session(base_url, token)`` returns a new session with base_url and headers."""
    rng = random.Random(f"{SEED}-make_api_session")
    seen: list[Seen] = []
    apps = [_headers_app("A", seen), _headers_app("B", seen)]
    tokens = [f"tk-{rng.getrandbits(48):012x}", f"tk-{rng.getrandbits(48):012x}"]
    returned: list[aiohttp.ClientSession] = []
    async with serve_all(apps) as urls:
        for call, (url, token, host) in enumerate(zip(urls, tokens, "AB", strict=True)):
            before = spy.created
            session = learner(url, token)
            await _expect_session(session, returned, call)
            returned.append(session)
            extra = [s for s in spy.sessions[before:] if s is not session]
            count = len(seen)
            async with session:
                try:
                    async with session.get("/headers") as response:
                        await response.read()
                except aiohttp.ClientResponseError:
                    pass  # raise_for_status on a wrong path: judged from what the server saw
                except aiohttp.ClientConnectorError as exc:
                    raise MAKE_API_SESSION.broken(
                        "wrong-url",
                        f"session.get('/headers') tried to connect to {exc.host}:{exc.port} "
                        f"and failed ({type(exc).__name__}), not to the base_url it was given.",
                    ) from None
                except aiohttp.InvalidURL as exc:
                    raise MAKE_API_SESSION.broken(
                        "no-base-url",
                        f"session.get('/headers') failed with {type(exc).__name__}: a "
                        "relative path needs a base URL.",
                    ) from None
            if any(not s.closed for s in extra):
                raise MAKE_API_SESSION.broken(
                    "spare-session",
                    f"make_api_session created {plural(len(extra) + 1, 'session')} and "
                    f"returned one; {plural(sum(not s.closed for s in extra), 'other')} "
                    "stayed open after the returned one was closed.",
                )
            _judge_request(seen[count:], host, token)
    return (
        "two calls, two servers, two tokens: each new session sent `/headers` to its own "
        "base URL with Authorization: Bearer <token> and Accept: application/json."
    )


async def _expect_session(session: Any, returned: list[aiohttp.ClientSession], call: int) -> None:
    if inspect.isawaitable(session):
        value = await session
        closed = isinstance(value, aiohttp.ClientSession) and value.closed
        if isinstance(value, aiohttp.ClientSession) and not value.closed:
            await value.close()
        raise MAKE_API_SESSION.broken(
            "async-def",
            "calling make_api_session returned a coroutine, not a session (it is an `async "
            "def`): `async with make_api_session(...) as session:` raises TypeError on it"
            + (" (and the session it gives is already closed)." if closed else "."),
        )
    if any(session is earlier for earlier in returned):
        raise MAKE_API_SESSION.broken(
            "same-session-twice",
            "the second call (another server, another token) returned the first call's "
            "session" + (", already closed by its caller." if session.closed else "."),
        )
    if not isinstance(session, aiohttp.ClientSession):
        raise MAKE_API_SESSION.broken(
            "not-a-session",
            f"make_api_session returned {shown(session)}; expected a ClientSession.",
        )
    if session.closed:
        raise MAKE_API_SESSION.broken(
            "not-a-session",
            f"the {'first' if call == 0 else 'second'} call returned a session that is "
            "already closed.",
        )


def _judge_request(requests: list[Seen], host: str, token: str) -> None:
    if not requests:
        raise MAKE_API_SESSION.broken(
            "wrong-url", f"session.get('/headers') never reached server {host}, its base_url."
        )
    request = requests[-1]
    if request.host != host or request.path != "/headers":
        where = "the other server" if request.host != host else "that server"
        raise MAKE_API_SESSION.broken(
            "wrong-url",
            f"with the base_url of server {host}, session.get('/headers') reached {where} as "
            f"{request.method} {clip(request.path, 50)}.",
        )
    headers = {name.lower(): value for name, value in request.headers.items()}
    authorization = headers.get("authorization")
    if authorization is None:
        raise MAKE_API_SESSION.broken(
            "no-auth-header", "the server received no Authorization header."
        )
    if authorization != f"Bearer {token}":
        raise MAKE_API_SESSION.broken(
            "wrong-auth-header",
            f"for token {token!r} the server received Authorization: "
            f"{clip(repr(authorization), 60)}.",
        )
    accept = headers.get("accept")
    if accept is None or accept.strip() != "application/json":
        raise MAKE_API_SESSION.broken(
            "wrong-accept-header",
            f"the server received Accept: {accept!r}, expected 'application/json'.",
        )


# === Task 3: ApiClient =================================================================

API_CLIENT = Task(
    "ApiClient",
    Rule(
        "aenter-not-self",
        "`async with ApiClient(base_url) as api:` gives the client",
        "what `as api` received, and whether it has get_json",
        "`__aenter__` must `return self`.",
    ),
    Rule(
        "wrong-json",
        "`get_json` returns the parsed JSON",
        "each result compared with the JSON the server sent (not ASCII), for two servers",
        "return `await response.json()` from a GET to the path, relative to the base URL.",
    ),
    Rule(
        "no-session-created",
        "`ApiClient` wraps one session for the lifetime of an `async with` block",
        "sessions created while the block ran, counted",
        "create the session in `__init__` or `__aenter__` and store it on `self`.",
    ),
    Rule(
        "session-per-call",
        "all calls share **one** session",
        "sessions created while one block made several calls, counted",
        "create the session once, in `__init__` or `__aenter__`, store it on `self`, and "
        "use it in `get_json`.",
    ),
    Rule(
        "clients-share-state",
        "each `ApiClient` wraps its own session",
        "two clients on two servers used at once: each call must reach its own client's server",
        "keep the session and the base URL on the instance (`self.session = ...` in "
        "`__aenter__`), not on the class: a class attribute is shared by every client.",
    ),
    Rule(
        "connections-not-reused",
        "one pooled connection when the calls are sequential",
        "the TCP connections the server saw for several sequential calls",
        "one session, a default connector (no `force_close=True`), no `Connection: close` "
        "header, and each response read to its end or released before the next call.",
    ),
    Rule(
        "not-closed-on-exit",
        "the session is closed when the block ends",
        "sessions created by ApiClient and still open after the block",
        "close it in `__aexit__`: `await self.session.close()`.",
    ),
    Rule(
        "not-closed-on-error",
        "closed when the block ends, **also when the block raises**",
        "a block that raises: the session must be closed afterwards",
        "close the session in `__aexit__` whatever its arguments say: it runs on errors too.",
    ),
    Rule(
        "swallowed-exception",
        "Exceptions from the block must not be swallowed",
        "a block that raises: the exception must reach the code around `async with`",
        "`__aexit__` must return None (or False): a true value tells Python to swallow the "
        "block's exception.",
    ),
)

API_CALLS = 4


class _Probe(Exception):
    """Raised by the check inside the learner's ``async with`` block."""


def _json_app(host: str, seen: list[Seen]) -> web.Application:
    async def any_path(request: web.Request) -> web.Response:
        record = seen_of(request, host)
        seen.append(record)
        return web.json_response(_reply(host, record.path, record.query))

    app = web.Application()
    app.router.add_get("/{tail:.*}", any_path)
    return app


def _reply(host: str, path: str, query: dict[str, str]) -> dict[str, Any]:
    return {"server": host, "path": path, "args": query, "note": "naïve café ☕ Grüße"}


@check(API_CLIENT)
async def ApiClient(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``async with ApiClient(base_url) as api`` opens one session and always closes it."""
    rng = random.Random(f"{SEED}-ApiClient")
    seen: list[Seen] = []
    async with serve_all([_json_app("A", seen), _json_app("B", seen)]) as (url_a, url_b):
        await _one_block(learner, spy, seen, url_a, rng)
        await _two_at_once(learner, spy, seen, (url_a, url_b), rng)
        await _block_that_raises(learner, spy, url_b)
    return (
        f"{API_CALLS} calls through one session and one connection, two clients at once "
        "each on its own server, and the session closed on exit, even when the block raised "
        "(and the exception reached the caller)."
    )


def _api_of(api: Any) -> Any:
    if api is None or not callable(getattr(api, "get_json", None)):
        raise API_CLIENT.broken(
            "aenter-not-self",
            f"`async with ApiClient(...) as api` gave api = {shown(api)}, which has no get_json.",
        )
    return api


async def _get_json(api: Any, path: str, host: str, query: dict[str, str]) -> None:
    result = await api.get_json(path)
    if inspect.isawaitable(result):
        close_coroutines([result])
        raise API_CLIENT.broken(
            "missing-await",
            f"get_json({path!r}) returned {type(result).__name__}, not the JSON: an `await` "
            "is missing (`return await response.json()`).",
        )
    expected = _reply(host, path.split("?")[0], query)
    if result == expected:
        return
    if isinstance(result, dict) and result.get("server") not in (None, host):
        raise API_CLIENT.broken(
            "clients-share-state",
            f"with two clients open at once, get_json({path!r}) on the client for server "
            f"{host} returned server {result.get('server')}'s JSON: the clients share state.",
        )
    got = type(result).__name__ if isinstance(result, (str, bytes)) else clip(repr(result), 70)
    raise API_CLIENT.broken(
        "wrong-json", f"get_json({path!r}) returned {got}; expected the server's parsed JSON."
    )


async def _one_block(
    learner: Any, spy: SessionSpy, seen: list[Seen], url: str, rng: random.Random
) -> None:
    before, count = spy.created, len(seen)
    async with learner(url) as api:
        api = _api_of(api)
        for call in range(API_CALLS):
            token = f"{rng.getrandbits(24):06x}"
            query = {"call": str(call), "t": token}
            await _get_json(api, f"/get?call={call}&t={token}", "A", query)
        sessions = spy.sessions[before:]
        connectors = [session.connector for session in sessions]
    requests = seen[count:]
    sockets = sockets_open_to([url])
    await close_all(orphans(connectors, sessions))
    if not sessions:
        raise API_CLIENT.broken(
            "no-session-created",
            "ApiClient created no ClientSession: its calls went through one made before the "
            "block (at module or class level?).",
        )
    if len(sessions) >= API_CALLS:
        raise API_CLIENT.broken(
            "session-per-call",
            f"{API_CALLS} calls in one block created {plural(len(sessions), 'session')}.",
        )
    left = [s for s in sessions if not s.closed]
    if left:
        raise API_CLIENT.broken(
            "not-closed-on-exit",
            f"ApiClient created {plural(len(sessions), 'session')}; "
            f"{plural(len(left), 'session')} still open after the `async with` block ended"
            + (" (only one is needed)." if len(sessions) > 1 else "."),
        )
    if len(sessions) > 1:
        raise API_CLIENT.broken(
            "session-per-call",
            f"{API_CALLS} calls in one block created {plural(len(sessions), 'session')}.",
        )
    if sockets:
        raise API_CLIENT.broken(
            "not-closed-on-exit",
            f"the session was closed, but {plural(sockets, 'connection')} to the server "
            "stayed open after the block: a connector made with `connector_owner=False` is "
            "not closed with its session.",
            CONNECTOR_HINT,
        )
    ports = {r.port for r in requests}
    if len(ports) > 1:
        raise API_CLIENT.broken(
            "connections-not-reused", _not_reused_message(connectors[0], requests, len(ports))
        )


def _not_reused_message(
    connector: aiohttp.BaseConnector | None, requests: list[Seen], ports: int
) -> str:
    seen = f"{API_CALLS} sequential calls reached the server on {ports} TCP connections"
    if connector is not None and connector.force_close:
        return f"{seen}: the session's connector has force_close=True."
    if any(r.headers.get("Connection", "").lower() == "close" for r in requests):
        return f"{seen}: the requests carried `Connection: close`."
    return f"{seen} instead of 1."


async def _two_at_once(
    learner: Any, spy: SessionSpy, seen: list[Seen], urls: tuple[str, str], rng: random.Random
) -> None:
    before = spy.created
    async with learner(urls[0]) as first, learner(urls[1]) as second:
        clients = (_api_of(first), _api_of(second))
        for call in range(2):
            for api, host in zip(clients, "AB", strict=True):
                token = f"{rng.getrandbits(24):06x}"
                query = {"pair": str(call), "t": token}
                await _get_json(api, f"/pair?pair={call}&t={token}", host, query)
    sessions = spy.sessions[before:]
    if len(sessions) < 2:
        raise API_CLIENT.broken(
            "clients-share-state",
            f"two clients open at once created {plural(len(sessions), 'session')} between "
            "them: they share one.",
        )
    if any(not s.closed for s in sessions):
        raise API_CLIENT.broken(
            "not-closed-on-exit",
            "with two clients open at once, a session was still open after both blocks ended.",
        )


async def _block_that_raises(learner: Any, spy: SessionSpy, url: str) -> None:
    before = spy.created
    try:
        async with learner(url) as api:
            await _api_of(api).get_json("/get?before=raise")
            raise _Probe("raised inside the block by the check")
    except _Probe:
        pass
    else:
        raise API_CLIENT.broken(
            "swallowed-exception",
            "an exception raised inside `async with ApiClient(...)` never reached the code "
            "around the block.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise API_CLIENT.broken(
            "not-closed-on-error",
            "when the `async with` block raised, the session stayed open.",
        )
