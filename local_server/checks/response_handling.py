"""Checks for exercise 05, response handling.

In the notebook: ``from local_server.checks import response_handling as check``.

- ``stream_records`` reads NDJSON from the course server's ``/stream/{n}``, then from a small
  feed this module serves itself, which sends the second record only once the first has been
  yielded: a generator that waits for the whole body is seen waiting.
- ``sha256_of`` downloads ``/files/{size}`` while ``tracemalloc`` records the peak memory
  of the process (the check's thread runs nothing else meanwhile): reading the whole body
  shows up as a peak of about twice the file size.
- ``fetch_json`` gets JSON bodies that lie about their content type or their charset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import os
import secrets
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from ..faults import CHARSET_SAMPLE
from ..files import file_sha256
from ..runner import LocalServer
from ..serving import serve
from .harness import Mistake, PeakMemory, SessionSpy, call_async, check

# --- Task 1: stream_records ----------------------------------------------------------------

STREAM_RECORDS = 25
FEED_RECORDS = 6
# How long the feed waits for the first record to be yielded before it gives up and sends
# the rest: a generator that streams yields it within milliseconds.
FEED_GRACE_SECONDS = 1.0
# The feed sends half of a record, waits this long, then the rest: pieces are not lines.
FEED_SPLIT_PAUSE_SECONDS = 0.05
# More records than this from a stream of STREAM_RECORDS: stop reading, something is wrong.
MAX_RECORDS_READ = 2 * STREAM_RECORDS


@check("stream_records")
async def stream_records(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``stream_records(session, url)`` yields each NDJSON record, parsed, as it arrives."""
    token = secrets.token_hex(4)
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/stream/{STREAM_RECORDS}?token={token}"
        records = await _collect_records(learner, session, url, lambda count: None)
        _expect_stream_records(records, token)
        feed = _PacedFeed(token)
        async with feed.serving() as feed_url:
            records = await _collect_records(learner, session, feed_url, feed.seen)
        _expect_feed_records(records, token)
    if feed.waited_out:
        raise Mistake(
            "read-whole-stream",
            f"stream_records yielded nothing while the stream was open: record 0 waited "
            f"{FEED_GRACE_SECONDS:g} s for you to yield it, and came out only after the "
            "whole body had arrived.",
            "read the body line by line and yield each record as its line arrives: "
            "`async for line in response.content: yield json.loads(line)`. `text()`, "
            "`read()` and `json()` wait for the end of the body, which a live feed may "
            "never reach.",
        )
    return (
        f"{STREAM_RECORDS} records parsed in order, and each record of a slow feed was "
        "yielded as soon as its line arrived."
    )


async def _collect_records(
    learner: Any, session: aiohttp.ClientSession, url: str, seen: Callable[[int], None]
) -> list[Any]:
    """Every record the learner yields for ``url``, telling ``seen`` the count after each."""
    produced = learner(session, url)
    if inspect.isawaitable(produced):
        result = await produced
        raise Mistake(
            "not-a-generator",
            f"stream_records returned {type(result).__name__} once the stream had ended, "
            "instead of yielding the records one by one.",
            "make it an async generator: inside `async with session.get(url) as response:`, "
            "`yield` each record (an `async def` with `yield` in it).",
        )
    if not hasattr(produced, "__aiter__"):
        raise Mistake(
            "not-async",
            f"stream_records returned {type(produced).__name__}, not an async iterator.",
            "define it with `async def stream_records(session, url):` and `yield` each record.",
        )
    records: list[Any] = []
    try:
        async for record in produced:
            records.append(record)
            seen(len(records))
            if len(records) > MAX_RECORDS_READ:
                break
    except json.JSONDecodeError as error:
        raise _not_line_by_line(error) from None
    except aiohttp.ContentTypeError:
        raise _json_on_ndjson(
            "response.json() refused the feed's application/x-ndjson type"
        ) from None
    finally:
        aclose = getattr(produced, "aclose", None)
        if aclose is not None:
            await aclose()
    return records


def _json_on_ndjson(observed: str) -> Mistake:
    return Mistake(
        "json-on-ndjson",
        f"stream_records called response.json() on an NDJSON stream: {observed}.",
        "NDJSON is one JSON document per line, not one document: read it line by line "
        "(`async for line in response.content`) and `json.loads` each line.",
    )


def _raised_in_response_json(error: BaseException) -> bool:
    """True if the error came out of aiohttp's ``ClientResponse.json()``."""
    return any(
        frame.name == "json"
        and frame.filename.endswith(os.path.join("aiohttp", "client_reqrep.py"))
        for frame in traceback.extract_tb(error.__traceback__)
    )


def _not_line_by_line(error: json.JSONDecodeError) -> Mistake:
    """Name what went to the JSON parser: the whole body, a blank line, or not one line."""
    if _raised_in_response_json(error):
        return _json_on_ndjson(f"the parser stopped with {error.msg!r} after the first record")
    document = error.doc if isinstance(error.doc, str) else ""
    if not document.strip():
        return Mistake(
            "blank-line",
            "json.loads was given an empty string: the empty piece after the last newline.",
            "skip blank lines (`if line.strip():`), or read with `async for line in "
            "response.content`, which never yields the empty piece after the final newline.",
        )
    lines = len([line for line in document.splitlines() if line.strip()])
    if lines >= STREAM_RECORDS:
        seen = f"the whole stream, {lines} lines, at once"
    elif lines > 1:
        seen = f"{lines} lines at once"
    elif not document.rstrip("\r").endswith("}") and not document.endswith("\n"):
        seen = f"part of a line ({len(document)} characters)"
    else:
        seen = "a line that is not valid JSON"
    return Mistake(
        "not-line-by-line",
        f"json.loads was given {seen}, and stopped with {error.msg!r}.",
        "parse one line at a time. Chunks from iter_chunked() or iter_any() follow the "
        "network, not the lines: one chunk may hold several records, or half of one. "
        "`async for line in response.content` yields whole lines.",
    )


def _expect_stream_records(records: list[Any], token: str) -> None:
    _expect_parsed(records)
    ids = [record.get("id") for record in records]
    if ids != list(range(STREAM_RECORDS)):
        raise Mistake(
            "wrong-records",
            f"for /stream/{STREAM_RECORDS} stream_records yielded {len(records)} records "
            f"with ids {_preview(ids)}; expected ids 0 to {STREAM_RECORDS - 1}, in order.",
            "yield one record per line, every line, in the order they arrive.",
        )
    if any(record.get("args", {}).get("token") != token for record in records):
        raise Mistake(
            "wrong-url",
            "the records are not from the URL the check gave (its query string is missing).",
            "request exactly the `url` argument.",
        )


def _expect_feed_records(records: list[Any], token: str) -> None:
    _expect_parsed(records)
    expected = [{"id": i, "token": token} for i in range(FEED_RECORDS)]
    if records != expected:
        raise Mistake(
            "wrong-records",
            f"from the check's slow feed stream_records yielded {_preview(records)}; "
            f"expected {FEED_RECORDS} records, {{'id': 0, ...}} to {{'id': "
            f"{FEED_RECORDS - 1}, ...}}.",
            "yield one record per line; a line may arrive in several pieces, so let "
            "`async for line in response.content` put it together.",
        )


def _expect_parsed(records: list[Any]) -> None:
    for record in records:
        if isinstance(record, (bytes, bytearray, str)):
            raise Mistake(
                "not-parsed",
                f"stream_records yielded {type(record).__name__} ({_preview(record)}); "
                "expected each record parsed into a dict.",
                "yield `json.loads(line)`, not the line itself.",
            )
        if not isinstance(record, dict):
            raise Mistake(
                "not-parsed",
                f"stream_records yielded {type(record).__name__}; expected a dict per record.",
                "yield `json.loads(line)` for each line.",
            )


def _preview(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


class _PacedFeed:
    """An NDJSON feed that waits for the learner to yield record 0 before sending more.

    Record 0 goes alone. If the learner's generator yields it within FEED_GRACE_SECONDS, the
    next record follows in two pieces (a line split across reads), then the rest at once.
    Otherwise ``waited_out`` is set and the rest is sent, so a learner who reads the whole body
    still gets an answer, and the check can say what it saw.
    """

    def __init__(self, token: str) -> None:
        self.lines = [
            json.dumps({"id": i, "token": token}).encode() + b"\n" for i in range(FEED_RECORDS)
        ]
        self.records_seen = 0
        self.waited_out = False
        self._progress = asyncio.Event()

    def seen(self, count: int) -> None:
        self.records_seen = count
        self._progress.set()

    async def _until_seen(self, count: int) -> bool:
        """True once the learner has yielded ``count`` records, False after the grace time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FEED_GRACE_SECONDS
        while self.records_seen < count:
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())
            except TimeoutError:
                return False
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        first, second, *rest = self.lines
        half = len(second) // 2
        with contextlib.suppress(ConnectionError):
            await response.write(first)
            if await self._until_seen(1):
                await response.write(second[:half])
                await asyncio.sleep(FEED_SPLIT_PAUSE_SECONDS)
                await response.write(second[half:] + b"".join(rest))
            else:
                self.waited_out = True
                await response.write(b"".join([second, *rest]))
            await response.write_eof()
        return response

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve the feed on a free loopback port for the duration of the block."""
        app = web.Application()
        app.router.add_get("/feed", self._handle)
        async with serve(app, shutdown_timeout=0.2) as url:
            yield f"{url}/feed"


# --- Task 2: sha256_of ---------------------------------------------------------------------

FILE_SIZE = 16 * 1024 * 1024
# Streaming holds what the stream buffers plus a chunk or two: under 1 MiB with 64 KiB chunks,
# a few MiB with 1 MiB chunks and a slow loop. Reading the whole body holds twice the file.
MEMORY_LIMIT = FILE_SIZE // 2
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@check("sha256_of")
async def sha256_of(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``sha256_of(session, url)`` returns the body's SHA-256 in hex, in bounded memory."""
    url = f"{server.url}/files/{FILE_SIZE}"
    expected = await asyncio.to_thread(file_sha256, FILE_SIZE)
    async with aiohttp.ClientSession() as session:
        with PeakMemory() as memory:
            digest = await call_async("sha256_of", learner, session, url)
    _expect_digest(digest, expected)
    if memory.peak >= MEMORY_LIMIT:
        raise Mistake(
            "read-whole-body",
            f"memory peaked at {_mib(memory.peak)} while hashing the {_mib(FILE_SIZE)} "
            "download: half the file or more was held at once, so it was not streamed.",
            "update the hash chunk by chunk and keep no chunk: `async for chunk in "
            "response.content.iter_chunked(64 * 1024): digest.update(chunk)`. `read()`, "
            "`text()` and a list of chunks all hold the whole body.",
        )
    return (
        f"the SHA-256 of the {_mib(FILE_SIZE)} download matches, and memory stayed well "
        "below the size of the file."
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size < 2**20 else f"{size / 2**20:.0f} MiB"


def _expect_digest(digest: Any, expected: str) -> None:
    if isinstance(digest, (bytes, bytearray)):
        raise Mistake(
            "digest-not-hex",
            f"sha256_of returned {len(digest)} raw bytes; expected the digest as hex text.",
            "return `digest.hexdigest()`, not `digest.digest()`.",
        )
    if not isinstance(digest, str):
        raise Mistake(
            "wrong-type",
            f"sha256_of returned {type(digest).__name__}; expected a hex string.",
            "return `hashlib.sha256(...)` fed with every chunk, then `.hexdigest()`.",
        )
    if digest.lower() == EMPTY_SHA256:
        raise Mistake(
            "digest-of-nothing",
            "sha256_of returned the SHA-256 of zero bytes: the loop over the body saw nothing.",
            "the body can be read only once: after `read()`, `text()` or `json()` the "
            "stream is at its end and iter_chunked() yields nothing. Stream it, without "
            "reading it first.",
        )
    if digest.lower() != expected:
        raise Mistake(
            "wrong-digest",
            f"sha256_of returned {digest[:16]}..., not the SHA-256 of the file.",
            "create one `hashlib.sha256()` before the loop, `update()` it with every chunk, "
            "and call `hexdigest()` once, after the loop.",
        )


# --- Task 3: fetch_json --------------------------------------------------------------------


@check("fetch_json")
async def fetch_json(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_json(session, url, encoding=None)`` parses JSON whatever the body claims."""
    token = secrets.token_hex(4)
    wrong_type = "this is JSON, but the Content-Type says {}"
    cases = [
        ("a plain JSON answer", f"/get?token={token}", None, None),
        (
            "JSON served as text/plain",
            "/fault/wrong-content-type?type=text/plain",
            None,
            {"message": wrong_type.format("text/plain")},
        ),
        (
            "JSON served as text/html",
            "/fault/wrong-content-type?type=text/html",
            None,
            {"message": wrong_type.format("text/html")},
        ),
        (
            "Latin-1 JSON labelled charset=latin-1",
            "/fault/charset?encoding=latin-1&label=latin-1",
            None,
            CHARSET_SAMPLE,
        ),
        (
            "Latin-1 JSON labelled charset=utf-8, with encoding='latin-1'",
            "/fault/charset?encoding=latin-1&label=utf-8",
            "latin-1",
            CHARSET_SAMPLE,
        ),
        (
            "UTF-8 JSON labelled charset=latin-1, with encoding='utf-8'",
            "/fault/charset?encoding=utf-8&label=latin-1",
            "utf-8",
            CHARSET_SAMPLE,
        ),
    ]
    async with aiohttp.ClientSession() as session:
        for what, path, encoding, expected in cases:
            data = await _fetch_case(learner, session, f"{server.url}{path}", encoding, what)
            if expected is None:
                _expect_echo(data, token, what)
            else:
                _expect_data(data, expected, encoding, what)
    return (
        f"parsed all {len(cases)} bodies: a wrong content type and a wrong charset label "
        "were both handled."
    )


async def _fetch_case(
    learner: Any, session: aiohttp.ClientSession, url: str, encoding: str | None, what: str
) -> Any:
    try:
        if encoding is None:
            return await call_async("fetch_json", learner, session, url)
        return await call_async("fetch_json", learner, session, url, encoding)
    except aiohttp.ContentTypeError as error:
        raise Mistake(
            "content-type-crash",
            f"fetch_json raised ContentTypeError on {what}: {error.message}.",
            "`response.json()` refuses any Content-Type but application/json. For an API you "
            "know sends JSON, skip the check: `await response.json(content_type=None)`.",
        ) from None
    except UnicodeDecodeError as error:
        observed = f"raised UnicodeDecodeError ({error.reason})"
        raise _charset_mistake(what, encoding, observed) from None
    except json.JSONDecodeError as error:
        raise Mistake(
            "not-json",
            f"fetch_json raised JSONDecodeError on {what}: {error.msg}.",
            "parse the body itself: `await response.json(content_type=None)`.",
        ) from None


def _charset_mistake(what: str, encoding: str | None, observed: str) -> Mistake:
    if encoding is None:
        return Mistake(
            "ignored-charset-label",
            f"fetch_json {observed} on {what}, with no encoding given.",
            "without an `encoding` argument, decode with the response's charset: "
            "`response.json()` and `response.text()` do that when you pass encoding=None.",
        )
    return Mistake(
        "wrong-charset",
        f"fetch_json {observed} on {what}: this body must be decoded with the encoding "
        "you were given, not with its label.",
        "the server's label is wrong here: pass the encoding on, "
        "`await response.json(encoding=encoding, content_type=None)` (or "
        "`response.text(encoding=encoding)`).",
    )


def _expect_echo(data: Any, token: str, what: str) -> None:
    if isinstance(data, (str, bytes, bytearray)):
        raise Mistake(
            "not-parsed",
            f"fetch_json returned {type(data).__name__} for {what}; expected the parsed JSON.",
            "return `await response.json(...)`, not the text.",
        )
    if not isinstance(data, dict) or data.get("args", {}).get("token") != token:
        raise Mistake(
            "wrong-data",
            f"fetch_json returned {_preview(data)} for {what}; expected the server's JSON.",
            "request exactly the `url` argument and return the parsed body.",
        )


def _expect_data(data: Any, expected: dict[str, str], encoding: str | None, what: str) -> None:
    if data == expected:
        return
    if isinstance(data, (str, bytes, bytearray)):
        raise Mistake(
            "not-parsed",
            f"fetch_json returned {type(data).__name__} for {what}; expected the parsed JSON.",
            "return `await response.json(...)`, not the text.",
        )
    if expected is CHARSET_SAMPLE and isinstance(data, dict) and data.keys() == expected.keys():
        key = next(key for key in expected if data[key] != expected[key])
        raise _charset_mistake(what, encoding, f"decoded {expected[key]!r} as {data[key]!r}")
    if data is None or data == {}:
        raise Mistake(
            "gave-up",
            f"fetch_json returned {data!r} for {what}.",
            "the body is valid JSON with a misleading Content-Type: parse it anyway with "
            "`await response.json(content_type=None)` rather than catching the error.",
        )
    raise Mistake(
        "wrong-data",
        f"fetch_json returned {_preview(data)} for {what}; expected {_preview(expected)}.",
        "request exactly the `url` argument and return the parsed body.",
    )
