"""Checks for exercise 05, response handling.

In the notebook: ``from local_server.checks import response_handling as check``.

Each check serves its own scenarios (``PlanServer``, from the timeouts checks: each URL plays
a plan of writes, pauses and breaks) and passes the learner's function a session of its own:

- ``stream_records`` reads NDJSON feeds whose lines are split across writes (once inside a
  character) and merged in one write, the last line without a newline. The first feed sends
  its second record only once the first has been yielded, so a generator that waits for the
  whole body is seen waiting; two generators are read in turns; one is closed after two
  records (the server sees whether its connection was let go); one feed breaks off.
- ``sha256_of`` hashes a body that fits in one chunk, a text body in several writes and a
  binary one of 16 MiB and a few bytes while ``tracemalloc`` records the peak memory of the
  process; which of them come out right, and the digests of parts of the body, say what a
  wrong digest hashed; one download breaks off.
- ``fetch_json`` gets JSON bodies that lie about their content type or their charset, with
  and without an ``encoding`` argument, and one cut short.

Every check also counts the sessions the learner's code opened (it must use the one given)
and looks whether the given session is still open afterwards (it is the caller's).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import random
import traceback
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from ..runner import LocalServer
from .evidence import clip, exception_text, learner_line
from .harness import PeakMemory, SessionSpy, call_async, check, plural
from .rules import Mistake, Rule, Task
from .timeouts import PlanRecord, PlanServer, Step, lines_every

SEED = 0
# An honest label, with its charset; the course server's /stream/{n} says application/json.
NDJSON = "application/x-ndjson; charset=utf-8"
JSON = "application/json"
# How long a feed waits for the first record to be yielded before it sends the rest anyway:
# a generator that streams yields it within milliseconds.
FEED_GRACE_SECONDS = 1.0
# A pause between two pieces of a line: the client reads the first before the second comes.
PIECE_GAP_SECONDS = 0.03
# More records than this from one feed: stop reading, something is wrong.
MAX_RECORDS_READ = 200
# How long a connection may stay open after the generator was closed early.
RELEASE_PATIENCE_SECONDS = 0.5

SHARED_STATE_HINT = (
    "keep each generator's buffer in a local variable of the generator, not in a global or "
    "on a shared object: two generators may run at once."
)
OWN_SESSION_HINT = (
    "make the request with the `session` argument: `async with session.get(url) as "
    "response:`. The caller chose its settings and its connection pool."
)
CLOSED_SESSION_HINT = (
    "the session belongs to the caller: use it, do not close it (no `async with session:` "
    "and no `session.close()` in your function)."
)


def _own_session_rule() -> Rule:
    return Rule(
        "own-session",
        "requests `url` with the given session",
        "sessions your code created while it ran",
        OWN_SESSION_HINT,
    )


def _closed_session_rule() -> Rule:
    return Rule(
        "closed-session",
        "the session is the caller's: leave it open",
        "whether the session the check passed is still open afterwards",
        CLOSED_SESSION_HINT,
    )


class _Session:
    """The session the check passes, and what the learner's code did with sessions."""

    def __init__(self, table: Task, spy: SessionSpy) -> None:
        self.table = table
        self.spy = spy
        self.session = aiohttp.ClientSession()
        self._mark = spy.created

    def mark(self) -> None:
        self._mark = self.spy.created

    def judge(self, what: str) -> None:
        """After a call: the given session was used, and is still open."""
        table, task = self.table, self.table.name
        made = self.spy.sessions[self._mark :]
        if made:
            raise table.broken(
                "own-session",
                f"{task} created {plural(len(made), 'session')} of its own for {what}, "
                "instead of using the session it was given.",
            )
        if self.session.closed:
            raise table.broken(
                "closed-session",
                f"{task} closed the session it was given (for {what}): the caller cannot "
                "make another request with it.",
            )

    async def close(self) -> None:
        if not self.session.closed:
            await self.session.close()


def _preview(value: Any, width: int = 60) -> str:
    return clip(repr(value), width)


def _raised_in_response_json(error: BaseException) -> bool:
    """True if the error came out of aiohttp's ``ClientResponse.json()``."""
    return any(
        frame.name == "json"
        and frame.filename.endswith(os.path.join("aiohttp", "client_reqrep.py"))
        for frame in traceback.extract_tb(error.__traceback__)
    )


def _where(error: BaseException) -> str:
    where = learner_line(error)
    return f" ({where})" if where else ""


# --- Task 1: stream_records ------------------------------------------------------------------

STREAM_RECORDS = Task(
    "stream_records",
    Rule(
        "not-a-generator",
        "an **async generator** that yields each record",
        "what calling it returned: an async generator, or a coroutine that returned once",
        "make it an async generator: inside `async with session.get(url) as response:`, "
        "`yield` each record (an `async def` with `yield` in it).",
    ),
    Rule(
        "not-parsed",
        "yields each record as a parsed `dict`",
        "the type of each record yielded",
        "yield `json.loads(line)`, not the line itself.",
    ),
    Rule(
        "json-on-ndjson",
        "NDJSON is one JSON document per line",
        "ContentTypeError or JSONDecodeError raised inside aiohttp's `response.json()`",
        "NDJSON is one JSON document per line, not one document: read it line by line "
        "(`async for line in response.content`) and `json.loads` each line.",
    ),
    Rule(
        "not-line-by-line",
        "one JSON document per line: parse each line",
        "a JSONDecodeError, and what json.loads was given (part of a line, several lines)",
        "parse one line at a time. Pieces from iter_chunked() or iter_any() follow the "
        "network, not the lines: one may hold several records, or half of one. "
        "`async for line in response.content` yields whole lines.",
    ),
    Rule(
        "blank-line",
        "one record per line: the empty piece after the last newline is not a record",
        "json.loads given an empty string",
        "skip empty lines (`if line.strip():`), or read with `async for line in "
        "response.content`, which never yields the empty piece after the final newline.",
    ),
    Rule(
        "wrong-records",
        "yields each record, in order (the last line may not end in a newline)",
        "the records yielded, compared with the records sent, on three feeds (two read in "
        "turns on one session)",
        "yield one record per non-empty line, every line, in the order they arrive; "
        "`async for line in response.content` also gives a last line without a newline.",
    ),
    Rule(
        "read-whole-stream",
        "**as soon as its line has arrived**",
        "a feed that sends its second record only after the first was yielded (it waits "
        f"{FEED_GRACE_SECONDS:g} s, then sends the rest anyway)",
        "read the body line by line and yield each record as its line arrives: "
        "`async for line in response.content: ...`. `text()`, `read()` and `json()` wait "
        "for the end of the body, which a live feed may never reach.",
    ),
    Rule(
        "not-released",
        "when the caller stops early, the connection is let go",
        "a generator closed (`aclose()`) after two records of a long feed: the server sees "
        "whether its connection was closed",
        "make the request with `async with session.get(url) as response:` around the "
        "loop: closing the generator then releases the response and its connection.",
    ),
    Rule(
        "error-swallowed",
        "when the stream breaks off, the error reaches the caller",
        "a feed cut in the middle of a record: iterating must raise, not simply end",
        "do not catch the error: a feed that ends quietly looks complete to the caller.",
    ),
    _own_session_rule(),
    _closed_session_rule(),
)


def _record(rng: random.Random, index: int, tag: str) -> dict[str, Any]:
    words = ["café", "naïve", "Zürich", "crème brûlée", "smörgåsbord", "☕ break", "Grüße"]
    return {"id": rng.randrange(10**6), "n": index, "feed": tag, "word": rng.choice(words)}


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _inside_character(line: bytes) -> int:
    """An offset inside the first multi-byte character of ``line`` (or its middle)."""
    for index, byte in enumerate(line):
        if byte >= 0x80:
            return index + 1
    return len(line) // 2


class _Feeds:
    """The records a check's feeds send, and the plans that send them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def paced(self, yielded: Callable[[], int]) -> tuple[list[Step], list[dict[str, Any]]]:
        """Record 0 alone; the rest once it was yielded: split, merged, the last unterminated."""
        records = [_record(self.rng, i, "paced") for i in range(6)]
        lines = [_line(record) for record in records]
        cut = _inside_character(lines[1])
        plan: list[Step] = [
            ("head", NDJSON, None),
            ("write", lines[0]),
            ("until", lambda: yielded() >= 1, FEED_GRACE_SECONDS),
            ("write", lines[1][:cut]),
            ("sleep", PIECE_GAP_SECONDS),
            ("write", lines[1][cut:] + lines[2] + lines[3]),
            ("sleep", PIECE_GAP_SECONDS),
            ("write", lines[4]),
            ("sleep", PIECE_GAP_SECONDS),
            ("write", lines[5].rstrip(b"\n")),
        ]
        return plan, records

    def plain(
        self, tag: str, count: int, content_type: str
    ) -> tuple[list[Step], list[dict[str, Any]]]:
        records = [_record(self.rng, i, tag) for i in range(count)]
        data = b"".join(_line(record) for record in records)
        cuts = sorted(self.rng.sample(range(1, len(data)), 4))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        return [("head", content_type, None), *lines_every(pieces, PIECE_GAP_SECONDS)], records

    def long(self, count: int) -> list[Step]:
        lines = [_line(_record(self.rng, i, "long")) for i in range(count)]
        return [("head", JSON, None), *lines_every(lines, 0.02)]

    def broken(self) -> tuple[list[Step], list[dict[str, Any]]]:
        records = [_record(self.rng, i, "broken") for i in range(3)]
        data = b"".join(_line(record) for record in records)
        half = _line(_record(self.rng, 3, "broken"))
        return [
            ("head", JSON, len(data) + 4 * len(half)),
            ("write", data),
            ("sleep", PIECE_GAP_SECONDS),
            ("write", half[: len(half) // 2]),
            ("sleep", PIECE_GAP_SECONDS),
            ("reset",),
        ], records


class _Reader:
    """Iterates over what the learner's function returned, naming what goes wrong.

    When reading fails, what the session spy saw first (a session of its own, the given one
    closed) is the earlier evidence, and is reported first.
    """

    task = "stream_records"
    table = STREAM_RECORDS

    def __init__(self, learner: Any, given: _Session, url: str, what: str) -> None:
        self.records: list[Any] = []
        self.given = given
        self.what = what
        self.produced = learner(given.session, url)

    async def start(self) -> None:
        task, table, produced = self.task, self.table, self.produced
        if inspect.iscoroutine(produced):
            try:  # an `async def` without `yield`: run it, for a stub's NotImplementedError
                result = await produced
            except NotImplementedError:
                raise
            except Exception as error:
                result = error
            raise table.broken(
                "not-a-generator",
                f"calling {task}(session, url) gave a coroutine, not an async generator: an "
                "`async def` without `yield` returns once, at the end (here "
                f"{clip(type(result).__name__, 30)}), instead of yielding the records one by "
                "one.",
            )
        if inspect.isawaitable(produced) or not hasattr(produced, "__anext__"):
            raise table.broken(
                "not-async",
                f"{task} returned {type(produced).__name__}, not an async generator.",
                "define it with `async def stream_records(session, url):` and `yield` each "
                "record.",
            )

    async def next(self) -> bool:
        """Take one record; False at the end of the stream."""
        try:
            record = await self.produced.__anext__()
        except StopAsyncIteration:
            return False
        except (json.JSONDecodeError, UnicodeDecodeError, aiohttp.ContentTypeError) as error:
            self.given.judge(self.what)
            raise _not_line_by_line(error) from None
        except Exception:
            self.given.judge(self.what)
            raise
        self.records.append(record)
        return len(self.records) <= MAX_RECORDS_READ

    async def all(self) -> list[Any]:
        try:
            while await self.next():
                pass
        finally:
            await self.close()
        return self.records

    async def close(self) -> None:
        aclose = getattr(self.produced, "aclose", None)
        if aclose is not None:
            await aclose()


def _json_on_ndjson(observed: str) -> Exception:
    return STREAM_RECORDS.broken(
        "json-on-ndjson",
        f"stream_records called response.json() on an NDJSON stream: {observed}.",
    )


def _not_line_by_line(error: Exception) -> Exception:
    """Name what went to the JSON parser (or the decoder): the whole body, or not one line."""
    table = STREAM_RECORDS
    if isinstance(error, aiohttp.ContentTypeError):
        return _json_on_ndjson("response.json() refused the feed's type, application/x-ndjson")
    if _raised_in_response_json(error):
        return _json_on_ndjson(f"the parser stopped with {exception_text(error)}")
    where = learner_line(error)
    at = f" at {where}" if where else ""
    if isinstance(error, UnicodeDecodeError):
        parsed = any(frame.filename.endswith(os.path.join("json", "__init__.py"))
                     for frame in traceback.extract_tb(error.__traceback__))
        given = "json.loads was given" if parsed else "your code decoded"
        return table.broken(
            "not-line-by-line",
            f"{given} a piece of data that ends in the middle of a character{at} "
            f"(UnicodeDecodeError: {error.reason}): the server split a line inside 'é' or "
            "'ü', which are two bytes in UTF-8.",
        )
    assert isinstance(error, json.JSONDecodeError)
    document = error.doc if isinstance(error.doc, str) else ""
    if not document.strip():
        return table.broken(
            "blank-line",
            f"json.loads was given {document!r}{at}: the empty piece after the last newline "
            "is not a record.",
        )
    lines = [line for line in document.splitlines() if line.strip()]
    if len(lines) > 1:
        seen = f"{len(lines)} lines at once"
    else:
        seen = f"part of a line ({len(document.encode())} bytes)"
    return table.broken(
        "not-line-by-line",
        f"json.loads was given {seen}{at}, and stopped with {error.msg!r}.",
    )


@check(STREAM_RECORDS)
async def stream_records(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``stream_records(session, url)`` yields each NDJSON record, parsed, as it arrives."""
    table = STREAM_RECORDS
    rng = random.Random(f"{SEED}-stream_records")
    feeds = _Feeds(rng)
    given = _Session(table, spy)
    try:
        async with PlanServer().serving() as plans, PlanServer().serving() as long_plans:
            reader: _Reader | None = None
            plan, paced = feeds.paced(lambda: len(reader.records) if reader else 0)
            url, paced_record = plans.add(plan)
            given.mark()
            reader = _Reader(learner, given, url, "a feed")
            await reader.start()
            try:
                records = await reader.all()
                given.judge("a feed")
            except Mistake as mistake:
                if mistake.problem != "json-on-ndjson":  # json() reads it all, by its nature
                    _expect_streamed(paced_record)  # the earlier evidence, when there is some
                raise
            except Exception:
                _expect_streamed(paced_record)
                raise
            if not (records and records[0] == paced[0]):
                _expect_records(records, paced, "the first feed")  # record 0 never came
            _expect_streamed(paced_record)
            _expect_records(records, paced, "the first feed")
            await _expect_turns(learner, given, feeds, plans)
            await _expect_release(learner, given, feeds, long_plans)
            await _expect_feed_break(learner, given, feeds, plans)
    finally:
        await given.close()
    return (
        "every record parsed in order (lines split and merged across writes, a last line "
        "without a newline), each yielded as its line arrived; two feeds read in turns "
        "kept apart; an early stop let the connection go, and a broken feed raised."
    )


def _expect_streamed(record: PlanRecord) -> None:
    if record.waited_out:
        raise STREAM_RECORDS.broken(
            "read-whole-stream",
            "stream_records yielded nothing while the stream was open: record 0 waited "
            f"{FEED_GRACE_SECONDS:g} s for you to yield it, and came out only after the whole "
            "body had arrived.",
        )


def _expect_parsed(records: list[Any]) -> None:
    table = STREAM_RECORDS
    for record in records:
        if isinstance(record, (bytes, bytearray, str)):
            raise table.broken(
                "not-parsed",
                f"stream_records yielded {type(record).__name__} ({_preview(record, 50)}); "
                "expected each record parsed into a dict.",
            )
        if not isinstance(record, dict):
            raise table.broken(
                "not-parsed",
                f"stream_records yielded {type(record).__name__}; expected a dict per record.",
            )


def _expect_records(records: list[Any], expected: list[dict[str, Any]], what: str) -> None:
    table = STREAM_RECORDS
    _expect_parsed(records)
    if records == expected:
        return
    if records == expected[:-1]:
        raise table.broken(
            "wrong-records",
            f"from {what} stream_records yielded {len(records)} of {len(expected)} records: "
            "the last one, whose line has no newline after it, was dropped.",
        )
    ids = [record.get("n") for record in records]
    if ids == [record["n"] for record in expected]:
        got, sent = next((a, b) for a, b in zip(records, expected, strict=True) if a != b)
        key = next((k for k in sent if got.get(k) != sent[k]), None)
        shown = (
            f"{got.get(key)!r} where the server sent {sent[key]!r}" if key else f"{got!r:.60}"
        )
        raise table.broken(
            "wrong-records",
            f"from {what} stream_records yielded every record, in order, but record "
            f"{sent['n']} holds {clip(shown, 80)}"
            + (": the UTF-8 bytes were decoded some other way." if key == "word" else "."),
        )
    raise table.broken(
        "wrong-records",
        f"from {what} stream_records yielded {plural(len(records), 'record')} numbered "
        f"{_preview(ids, 40)}; expected {len(expected)}, numbered 0 to {len(expected) - 1}, "
        "in order.",
    )


async def _expect_turns(learner: Any, given: _Session, feeds: _Feeds, plans: PlanServer) -> None:
    """Two generators on one session, read in turns, each yield their own feed."""
    plan_a, records_a = feeds.plain("A", 5, JSON)
    plan_b, records_b = feeds.plain("B", 7, NDJSON)
    url_a, _ = plans.add(plan_a)
    url_b, _ = plans.add(plan_b)
    given.mark()
    readers = [_Reader(learner, given, url, "two feeds read in turns") for url in (url_a, url_b)]
    try:
        for reader in readers:
            await reader.start()
        going = list(readers)
        while going:
            for reader in list(going):
                if not await reader.next():
                    going.remove(reader)
    except Mistake as mistake:
        if mistake.problem != "not-line-by-line":
            raise
        raise STREAM_RECORDS.broken(
            "wrong-records",
            "a feed read alone was parsed right, but two feeds read in turns on one session "
            f"were not: {mistake.message[0].lower()}{mistake.message[1:]} The generators "
            "share state.",
            SHARED_STATE_HINT,
        ) from None
    finally:
        for reader in readers:
            await reader.close()
    given.judge("two feeds read in turns")
    for reader, expected, name in zip(
        readers, (records_a, records_b), ("feed A", "feed B"), strict=True
    ):
        if any(isinstance(r, dict) and r.get("feed") not in (None, expected[0]["feed"])
               for r in reader.records):
            raise STREAM_RECORDS.broken(
                "wrong-records",
                f"two generators read in turns on one session got each other's records: "
                f"{name}'s generator yielded a record of the other feed. The generators share "
                "state.",
                SHARED_STATE_HINT,
            )
        _expect_records(reader.records, expected, f"{name} (two feeds read in turns)")


async def _expect_release(
    learner: Any, given: _Session, feeds: _Feeds, plans: PlanServer
) -> None:
    """Closing the generator after two records lets the server see the connection go."""
    url, record = plans.add(feeds.long(100))
    given.mark()
    reader = _Reader(learner, given, url, "a feed closed after two records")
    await reader.start()
    await reader.next()
    await reader.next()
    await reader.close()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + RELEASE_PATIENCE_SECONDS
    while not record.gone and not record.complete and loop.time() < give_up_at:
        await asyncio.sleep(0.02)
    given.judge("a feed closed after two records")
    if not record.gone:
        raise STREAM_RECORDS.broken(
            "not-released",
            "after the caller closed the generator (`aclose()`) at the second record of a "
            f"long feed, its connection stayed open for {RELEASE_PATIENCE_SECONDS:g} s: the "
            "response was never released.",
        )


async def _expect_feed_break(
    learner: Any, given: _Session, feeds: _Feeds, plans: PlanServer
) -> None:
    """A feed cut mid-record must raise, after the records before the cut."""
    plan, expected = feeds.broken()
    url, _ = plans.add(plan)
    given.mark()
    reader = _Reader(learner, given, url, "a feed that broke off")
    await reader.start()
    try:
        await reader.all()
    except (aiohttp.ClientError, HttpProcessingError, OSError):
        given.judge("a feed that broke off")
        _expect_records(reader.records, expected, "a feed that broke off after 3 records")
        return
    given.judge("a feed that broke off")
    raise STREAM_RECORDS.broken(
        "error-swallowed",
        f"a feed that broke off in the middle of its fourth record ended quietly after "
        f"{plural(len(reader.records), 'record')}: the caller cannot tell it from a feed "
        "that ended.",
    )


# --- Task 2: sha256_of -----------------------------------------------------------------------

SHA256_OF = Task(
    "sha256_of",
    Rule(
        "digest-not-hex",
        "returns the SHA-256 of the body as a hex string",
        "the type of what it returned: raw digest bytes",
        "return `digest.hexdigest()`, not `digest.digest()`.",
    ),
    Rule(
        "wrong-type",
        "returns the SHA-256 of the body as a hex string",
        "the type of what it returned",
        "return `hashlib.sha256(...)` fed with every chunk, then `.hexdigest()`.",
    ),
    Rule(
        "digest-of-nothing",
        "the SHA-256 of the body",
        "the digest returned equals the SHA-256 of zero bytes",
        "the body can be read only once: after `read()`, `text()` or `json()` the stream is "
        "at its end and iter_chunked() yields nothing. Stream it, without reading it first.",
    ),
    Rule(
        "wrong-digest",
        "the SHA-256 of the body",
        "the digest compared with the body's and with the digests of its first and last "
        "chunks, on a body in one piece, a text body in pieces and binary bodies: which of "
        "them come out right says what was hashed",
        "create one `hashlib.sha256()` before the loop, `update()` it with every chunk of "
        "bytes as it comes, and call `hexdigest()` once, after the loop.",
    ),
    Rule(
        "read-whole-body",
        "**without ever holding the whole body in memory**",
        "tracemalloc's peak while binary bodies of 4 and 20 MiB (and a few bytes) download: a "
        "peak of half the big body or more that grew with the body fails",
        "update the hash chunk by chunk and keep no chunk: `async for chunk in "
        "response.content.iter_chunked(64 * 1024): digest.update(chunk)`. `read()`, "
        "`text()` and a list of chunks all hold the whole body.",
    ),
    Rule(
        "error-swallowed",
        "when the download breaks off, the error reaches the caller",
        "a download cut in the middle: it must raise, not return a digest",
        "do not catch the error: a digest of part of the body looks like a real one.",
    ),
    _own_session_rule(),
    _closed_session_rule(),
)

# Two binary bodies: streaming holds what the stream buffers plus a chunk or two (under 1 MiB
# with 64 KiB chunks, 8 MiB with readexactly(4 MiB)) whatever the size; reading the whole body
# holds about twice the body. A peak of half the big body or more, that grew with the body by
# half the difference or more, is a body held whole.
SMALL_BINARY_SIZE = 4 * 1024 * 1024 + 3_333
BIG_SIZE = 20 * 1024 * 1024 + 7_777
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHUNK_SIZES = tuple(2**k for k in range(10, 21))  # 1 KiB to 1 MiB


def _text_body(rng: random.Random, size: int) -> bytes:
    words = [b"alpha", b"beta", b"gamma", b"delta", b"response", b"stream", b"chunk"]
    lines = []
    total = 0
    while total < size:
        line = b" ".join(rng.choice(words) for _ in range(8)) + b"\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def _binary_body(rng: random.Random, size: int) -> bytes:
    # Every byte value, often ones that are not valid UTF-8 on their own.
    return rng.randbytes(size)


def _pieces(data: bytes, size: int, gap: bool = False) -> list[Step]:
    """``data`` in writes of ``size`` bytes; with ``gap``, the client reads each one alone."""
    view = memoryview(data)
    steps: list[Step] = []
    for start in range(0, len(data), size):
        steps.append(("write", view[start : start + size]))
        if gap:
            steps.append(("sleep", 0.005))
    return steps


@check(SHA256_OF)
async def sha256_of(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``sha256_of(session, url)`` returns the body's SHA-256 in hex, in bounded memory."""
    table = SHA256_OF
    rng = random.Random(f"{SEED}-sha256_of")
    small = _text_body(rng, 500 + rng.randrange(1, 500))
    text = _text_body(rng, 300_000 + rng.randrange(1, 4096))
    binary = _binary_body(rng, BIG_SIZE)
    given = _Session(table, spy)
    try:
        async with PlanServer().serving() as plans:
            right: list[str] = []
            for body, what, content_type, piece in (
                (small, "a text body of {size} bytes, in one piece", "text/plain", len(small)),
                (text, "a text body of {size} bytes", "text/plain; charset=utf-8", 50_000),
            ):
                url, _ = plans.add(
                    [("head", content_type, len(body)), *_pieces(body, piece, gap=True)]
                )
                given.mark()
                digest = await _hashed(learner, given.session, url)
                given.judge(what.format(size=len(body)))
                _expect_digest(digest, body, what, right, piece)
                right.append(what.format(size=len(body)))
            peaks = []
            for body in (_binary_body(rng, SMALL_BINARY_SIZE), binary):
                url, _ = plans.add(
                    [("head", "application/octet-stream", None), *_pieces(body, 256 * 1024)]
                )
                given.mark()
                with PeakMemory() as memory:
                    digest = await _hashed(learner, given.session, url)
                given.judge(f"a binary body of {_mib(len(body))}")
                _expect_digest(digest, body, "a binary body of {size} bytes", right, 256 * 1024)
                peaks.append(memory.peak)
            small, big = peaks
            if big >= BIG_SIZE // 2 and big - small >= (BIG_SIZE - SMALL_BINARY_SIZE) // 2:
                raise table.broken(
                    "read-whole-body",
                    f"memory peaked at {_mib(small)} while hashing a {_mib(SMALL_BINARY_SIZE)} "
                    f"download and at {_mib(big)} for a {_mib(BIG_SIZE)} one: it grew with the "
                    "body, which was held whole, not streamed.",
                )
            await _expect_download_break(learner, given, plans, rng)
    finally:
        await given.close()
    return (
        f"the SHA-256 of two text bodies and of binary ones of {_mib(SMALL_BINARY_SIZE)} and "
        f"{_mib(BIG_SIZE)} match, memory did not grow with the body, and a download that broke "
        "off raised."
    )


async def _hashed(learner: Any, session: aiohttp.ClientSession, url: str) -> Any:
    """The learner's digest of ``url``; decoding the body as text is named."""
    try:
        return await call_async("sha256_of", learner, session, url)
    except UnicodeDecodeError as error:
        where = learner_line(error)
        raise SHA256_OF.broken(
            "wrong-digest",
            f"sha256_of raised UnicodeDecodeError ({error.reason}) on a binary body"
            + (f", at {where}" if where else "")
            + ": it decoded the body as text. A SHA-256 is of the bytes, and a binary body is "
            "not text.",
            "hash the bytes exactly as they arrive: `digest.update(chunk)`, with no "
            "`text()`, decode() or encode() in between.",
        ) from None


async def _expect_download_break(
    learner: Any, given: _Session, plans: PlanServer, rng: random.Random
) -> None:
    data = _binary_body(rng, 100_000)
    url, _ = plans.add(
        [("head", "application/octet-stream", 3 * len(data)), ("write", data),
         ("sleep", PIECE_GAP_SECONDS), ("reset",)]
    )
    given.mark()
    try:
        returned = await call_async("sha256_of", learner, given.session, url)
    except (aiohttp.ClientError, HttpProcessingError, OSError):
        given.judge("a download that broke off")
        return
    given.judge("a download that broke off")
    raise SHA256_OF.broken(
        "error-swallowed",
        f"a download that broke off after {len(data)} of {3 * len(data)} bytes returned "
        f"{_preview(returned, 30)} instead of raising: the caller takes it for the digest of "
        "the whole body.",
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size < 2**20 else f"{size / 2**20:.0f} MiB"


def _expect_digest(
    digest: Any, body: bytes, what: str, right: list[str], piece: int
) -> None:
    """The digest must be the body's; if not, say what it is the digest of, if anything.

    ``right`` names the bodies whose digest came out right before (a body in one piece, a
    text body), ``piece`` the size of the server's writes.
    """
    table = SHA256_OF
    what = what.format(size=len(body))
    if isinstance(digest, (bytes, bytearray)):
        raise table.broken(
            "digest-not-hex",
            f"sha256_of returned {len(digest)} raw bytes; expected the digest as hex text.",
        )
    if not isinstance(digest, str):
        raise table.broken(
            "wrong-type",
            f"sha256_of returned {type(digest).__name__}; expected a hex string.",
        )
    digest = digest.lower()
    if digest == hashlib.sha256(body).hexdigest():
        return
    if digest == EMPTY_SHA256:
        raise table.broken(
            "digest-of-nothing",
            f"for {what} sha256_of returned the SHA-256 of zero bytes: the loop over the "
            "body saw nothing.",
        )
    for size in sorted({piece, *(size for size in CHUNK_SIZES if size < piece)}):
        if size < len(body) and digest == hashlib.sha256(body[:size]).hexdigest():
            raise table.broken(
                "wrong-digest",
                f"for {what} sha256_of returned the SHA-256 of its first {size} bytes only: "
                "the loop stopped after one chunk (a `return` inside the loop?).",
                "return after the loop, once every chunk has been hashed.",
            )
    last = len(body) % piece or piece
    tails = {last, *(last % size or size for size in CHUNK_SIZES)}
    if any(digest == hashlib.sha256(body[-tail:]).hexdigest() for tail in tails):
        raise table.broken(
            "wrong-digest",
            f"for {what} sha256_of returned the SHA-256 of the last chunk only: each chunk "
            "got a hash of its own, and the last one was kept.",
            "create the hash object once, before the loop, and `update()` that one object "
            "with every chunk.",
        )
    if right and "text" in right[-1] and "binary" in what:
        raise table.broken(
            "wrong-digest",
            f"for {what} sha256_of returned a wrong digest, though it was right for text "
            "bodies: the bytes were changed on the way (decoded as text and encoded again?). "
            "A binary body is not text.",
            "hash the bytes exactly as they arrive: `digest.update(chunk)`, with no "
            "decode() or encode() in between.",
        )
    if right:
        raise table.broken(
            "wrong-digest",
            f"for {what} sha256_of returned a wrong digest, though it was right for {right[0]}:"
            " only part of the body made it into the hash (a new hash object for each chunk? "
            "a `return` inside the loop?).",
        )
    raise table.broken(
        "wrong-digest",
        f"for {what} sha256_of returned {digest[:16]}..., not the SHA-256 of the body.",
    )


# --- Task 3: fetch_json ----------------------------------------------------------------------

FETCH_JSON = Task(
    "fetch_json",
    Rule(
        "content-type-crash",
        "returns the parsed JSON body whatever the `Content-Type` says",
        "ContentTypeError raised for JSON labelled text/plain or text/html",
        "`response.json()` refuses any Content-Type but application/json. For an API you "
        "know sends JSON, skip the check: `await response.json(content_type=None)`.",
    ),
    Rule(
        "gave-up",
        "returns the parsed JSON body whatever the `Content-Type` says",
        "None or {} returned for valid JSON with a misleading label",
        "the body is valid JSON with a misleading Content-Type: parse it anyway with "
        "`await response.json(content_type=None)` rather than catching the error.",
    ),
    Rule(
        "ignored-charset-label",
        "decoded with the response's own charset when `encoding` is `None`",
        "honestly labelled Latin-1 and cp1252 bodies: a UnicodeDecodeError, or characters "
        "decoded wrongly",
        "without an `encoding` argument, decode with the response's charset: "
        "`response.json()` and `response.text()` do that when you pass encoding=None.",
    ),
    Rule(
        "wrong-charset",
        "decoded with `encoding` when one is given (the server's label is wrong then)",
        "bodies whose label is wrong or missing, with the right `encoding` passed in",
        "the server's label is wrong here: pass the encoding on, "
        "`await response.json(encoding=encoding, content_type=None)` (or "
        "`response.text(encoding=encoding)`).",
    ),
    Rule(
        "not-parsed",
        "returns the parsed JSON body",
        "the type of what it returned: text or bytes",
        "return `await response.json(...)`, not the text.",
    ),
    Rule(
        "wrong-data",
        "the parsed JSON body of `url`",
        "the value returned, compared with the JSON the server sent (seeded, non-ASCII)",
        "request exactly the `url` argument and return the parsed body.",
    ),
    Rule(
        "error-swallowed",
        "when the body breaks off, the error reaches the caller",
        "a JSON body cut short: it must raise, not return",
        "do not catch the error: the caller cannot tell a default from real data.",
    ),
    _own_session_rule(),
    _closed_session_rule(),
)


def _document(rng: random.Random, euro: bool) -> dict[str, Any]:
    document = {
        "city": rng.choice(["Zürich", "Genève", "Köln", "Málaga", "Besançon"]),
        "greeting": rng.choice(["Grüße", "¡Hola!", "Ça va", "Hyvää päivää"]),
        "dish": rng.choice(["crème brûlée", "smørrebrød", "paëlla", "Käsespätzle"]),
        "n": rng.randrange(10**6),
    }
    if euro:
        document["price"] = f"{rng.randrange(2, 99)} €"  # cp1252 has €, Latin-1 does not
    return document


@check(FETCH_JSON)
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(session, url, encoding=None)`` parses JSON whatever the body claims."""
    rng = random.Random(f"{SEED}-fetch_json")
    # (what, the bytes' encoding, Content-Type, the encoding argument or None)
    cases = [
        ("a plain JSON answer", "utf-8", "application/json", None),
        ("JSON served as text/plain", "utf-8", "text/plain; charset=utf-8", None),
        ("JSON served as text/html", "utf-8", "text/html", None),
        ("Latin-1 JSON labelled charset=latin-1", "latin-1",
         "application/json; charset=latin-1", None),
        ("cp1252 JSON labelled charset=cp1252", "cp1252", "text/plain; charset=cp1252", None),
        ("Latin-1 JSON labelled charset=utf-8, with encoding='latin-1'", "latin-1",
         "application/json; charset=utf-8", "latin-1"),
        ("UTF-8 JSON labelled charset=latin-1, with encoding='utf-8'", "utf-8",
         "application/json; charset=latin-1", "utf-8"),
        ("cp1252 JSON labelled text/plain with no charset, with encoding='cp1252'", "cp1252",
         "text/plain", "cp1252"),
    ]
    given = _Session(FETCH_JSON, spy)
    try:
        async with PlanServer().serving() as plans:
            for what, encoding, content_type, argument in cases:
                document = _document(rng, euro=encoding == "cp1252")
                body = json.dumps(document, ensure_ascii=False).encode(encoding)
                url, _ = plans.add(
                    [("head", content_type, len(body)), *_pieces(body, max(1, len(body) // 2))]
                )
                given.mark()
                data = await _fetch_case(learner, given.session, url, argument, what)
                given.judge(what)
                _expect_data(data, document, argument, what)
            await _expect_json_break(learner, given, plans, rng)
    finally:
        await given.close()
    return (
        f"parsed all {len(cases)} bodies: wrong content types, honest charset labels and wrong "
        "ones (with the encoding given) were all handled, and a body cut short raised."
    )


async def _fetch_case(
    learner: Any, session: aiohttp.ClientSession, url: str, encoding: str | None, what: str
) -> Any:
    table = FETCH_JSON
    try:
        if encoding is None:
            return await call_async("fetch_json", learner, session, url)
        return await call_async("fetch_json", learner, session, url, encoding)
    except aiohttp.ContentTypeError as error:
        raise table.broken(
            "content-type-crash",
            f"fetch_json raised ContentTypeError ({clip(error.message, 80)}) on {what}"
            f"{_at(error)}.",
        ) from None
    except UnicodeDecodeError as error:
        observed = f"raised UnicodeDecodeError ({error.encoding}: {error.reason})"
        raise _charset_mistake(what, encoding, observed + " on", _at(error)) from None
    except json.JSONDecodeError as error:
        raise table.broken(
            "wrong-charset" if encoding else "ignored-charset-label",
            f"fetch_json raised JSONDecodeError ({error.msg}) on {what}{_at(error)}.",
        ) from None


def _at(error: BaseException) -> str:
    where = learner_line(error)
    return f", at {where}" if where else ""


def _charset_mistake(what: str, encoding: str | None, observed: str, at: str = "") -> Exception:
    if encoding is None:
        return FETCH_JSON.broken(
            "ignored-charset-label",
            f"fetch_json {observed} {what}{at}: with no encoding given, the response's own "
            "charset label is the right one.",
        )
    return FETCH_JSON.broken(
        "wrong-charset",
        f"fetch_json {observed} {what}{at}: this body must be decoded with the encoding "
        "you were given, not with its label.",
    )


def _expect_data(data: Any, expected: dict[str, Any], encoding: str | None, what: str) -> None:
    table = FETCH_JSON
    if data == expected:
        return
    if isinstance(data, (str, bytes, bytearray)):
        raise table.broken(
            "not-parsed",
            f"fetch_json returned {type(data).__name__} for {what}; expected the parsed JSON.",
        )
    if data is None or data == {}:
        raise table.broken(
            "gave-up",
            f"fetch_json returned {data!r} for {what}, a valid JSON body.",
        )
    if isinstance(data, dict) and data.keys() == expected.keys():
        key = next(key for key in expected if data[key] != expected[key])
        raise _charset_mistake(
            what, encoding, f"decoded {expected[key]!r} as {data[key]!r} for"
        )
    raise table.broken(
        "wrong-data",
        f"fetch_json returned {_preview(data)} for {what}; expected {_preview(expected)}.",
    )


async def _expect_json_break(
    learner: Any, given: _Session, plans: PlanServer, rng: random.Random
) -> None:
    document = _document(rng, euro=False)
    body = json.dumps(document, ensure_ascii=False).encode()
    url, _ = plans.add(
        [("head", "application/json", len(body) + 100), ("write", body[: len(body) // 2]),
         ("sleep", PIECE_GAP_SECONDS), ("reset",)]
    )
    given.mark()
    try:
        returned = await call_async("fetch_json", learner, given.session, url)
    except (aiohttp.ClientError, HttpProcessingError, OSError):
        given.judge("a body cut short")
        return
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        given.judge("a body cut short")
        raise FETCH_JSON.broken(
            "error-swallowed",
            f"for a body cut short, fetch_json raised {exception_text(error)}: the "
            "connection error was caught and the half body parsed anyway.",
        ) from None
    given.judge("a body cut short")
    raise FETCH_JSON.broken(
        "error-swallowed",
        f"for a body cut short, fetch_json returned {_preview(returned, 40)} instead of "
        "raising.",
    )

