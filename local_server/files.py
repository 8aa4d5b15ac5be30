"""Deterministic downloadable files (Content-Length, ETag, Range) and an upload endpoint that
reports sizes and SHA-256.

Downloads: ``GET /files/{size}`` (``size`` bytes, at most 256 MiB; ``?name=`` changes the
file name and its content). Nothing is stored: block ``i`` (64 KiB) of a file is
SHA-256(name, size, i) followed by the start of one SHAKE-128 stream of (name, size), so any
offset is cheap to produce, and no two blocks are equal, so a resume at the wrong offset
changes the checksum. ``file_sha256(size, name)`` (and ``GET /files/{size}/sha256``) give the
digest a download must have.

- Headers: ``Content-Length``, a strong ``ETag``, ``Accept-Ranges: bytes``,
  ``Content-Disposition: attachment; filename="<name>"``. HEAD works.
- ``Range: bytes=a-b``, ``bytes=a-`` or ``bytes=-n``: 206 with ``Content-Range``. A range
  that starts past the end (or ``-0``, or any range of an empty file) is 416 with
  ``Content-Range: bytes */size``. As RFC 9110 requires or allows, these are ignored (200
  and the whole file, with an ``X-Range-Ignored`` header saying why): a malformed range, a
  unit other than bytes, several ranges, and an ``If-Range`` that is not the current ETag
  (a date never matches: there is no Last-Modified).
- ``?rate=B`` sends at most B bytes per second (at least 1024) for progress-bar demos, as
  long as the body then takes at most 60 s.
- ``?break_at=N`` (1 to size) closes the connection when the body reaches byte N of the
  file, after announcing the full Content-Length: the client sees ``ClientPayloadError``.
  Only a response that starts at byte 0 breaks: a resumed request (``Range: bytes=K-`` with
  K > 0) on the same URL completes, wherever the client resumes from. aiohttp drops bytes it
  had received but not yet handed over when the connection breaks, so a client may hold a
  little less than N; the server waits ``BREAK_GRACE`` seconds before closing to make that
  rare, and it then still resumes in one request.
- ``?fail=N&key=K`` (N ≤ 100): the first N calls for your (learner, key) answer 503 (or
  ``?status=``) with a JSON error, plus ``Retry-After`` if ``?retry_after=S`` (``&date=1``);
  later calls get the file. It is the counter of ``/fail/{key}/{n}``: every answer carries
  ``X-Attempt``, and ``GET /fail/{key}`` shows the key's call log.

Uploads: ``POST /upload`` or ``PUT /upload``. A multipart body is reported part by part
(name, filename, content type, size, SHA-256, and the value of small text fields); any other
body as a whole (size, SHA-256). Bodies are read as a stream and never stored or written to
disk; filenames are only echoed, never used. At most 64 MiB (counted after Content-Encoding
is undone, multipart framing included) and 100 parts, else 413; a malformed multipart body
is a 400. After a 4xx the rest of the body is still read and dropped (up to 256 MiB) so the
client can finish sending and read the answer; past that the answer says Connection: close.
A body that cannot be decoded (bad gzip) gets its 400, then the connection is closed.
The app's ``client_max_size`` does not apply here (it bounds ``request.read()``/``post()``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Any, NoReturn

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from . import timing
from .errors import UnreadableBody, bad_request
from .faults import KEY, MAX_FAILURES, count_call
from .params import parse_int, path_int, query_int

routes = web.RouteTableDef()

MAX_FILE_BYTES = 256 * 1024 * 1024
BLOCK_SIZE = 64 * 1024
MIN_RATE = 1024
BREAK_GRACE = 0.05  # seconds between byte N and closing: time for the client to read it
MAX_RATE = 2**40
MAX_THROTTLED_SECONDS = 60
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_UPLOAD_PARTS = 100
# Past the cap the rest of a body is still read and dropped, up to this much, so that a
# client still sending can finish and read the 413 (and keep its connection).
MAX_DISCARD_BYTES = 256 * 1024 * 1024
MAX_FIELD_VALUE_BYTES = 1024
READ_CHUNK = 64 * 1024
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Part of every digest and ETag: bump it if the content ever changes.
CONTENT_VERSION = 1


# --- the content -----------------------------------------------------------------------------


def default_name(size: int) -> str:
    """The file name (and content seed) when ``?name=`` is not given."""
    return f"file-{size}.bin"


def _seed(name: str, size: int) -> bytes:
    """What every block, digest and ETag of the file derives from."""
    return f"{CONTENT_VERSION}\n{name}\n{size}\n".encode()


@lru_cache(maxsize=16)
def _filler(name: str, size: int) -> bytes:
    """The 64 KiB that every block of the file shares after its own 32-byte tag."""
    return hashlib.shake_128(_seed(name, size) + b"filler").digest(BLOCK_SIZE - 32)


def _block(name: str, size: int, index: int) -> bytes:
    """Block ``index`` of the file: its SHA-256 tag, then the shared filler (cut at the end)."""
    tag = hashlib.sha256(_seed(name, size) + str(index).encode()).digest()
    return (tag + _filler(name, size))[: max(0, min(BLOCK_SIZE, size - index * BLOCK_SIZE))]


def iter_content(
    size: int, name: str | None = None, first: int = 0, last: int | None = None
) -> Iterator[bytes]:
    """Bytes ``first`` to ``last`` (inclusive; default: to the end) of the file, in pieces."""
    name = default_name(size) if name is None else name
    last = size - 1 if last is None else last
    position = first
    while position <= last:
        index, offset = divmod(position, BLOCK_SIZE)
        piece = _block(name, size, index)[offset : offset + last - position + 1]
        yield piece
        position += len(piece)


@lru_cache(maxsize=64)
def file_sha256(size: int, name: str | None = None) -> str:
    """The hex SHA-256 of the whole file: what a checker compares a download against."""
    digest = hashlib.sha256()
    for piece in iter_content(size, name):
        digest.update(piece)
    return digest.hexdigest()


def file_etag(size: int, name: str | None = None) -> str:
    """The file's strong ETag (quoted), derived from its name and size."""
    name = default_name(size) if name is None else name
    return '"' + hashlib.sha256(_seed(name, size) + b"etag").hexdigest()[:32] + '"'


# --- ranges ----------------------------------------------------------------------------------


class RangeIgnored(Exception):
    """The Range header is to be ignored (the whole file is sent); the message says why."""


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One ``bytes=`` range as (first, last) inclusive, clipped to the file.

    Raises ``RangeIgnored`` for what RFC 9110 says to ignore (or lets a server ignore), and
    a 416 for a well-formed range that the file cannot satisfy.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeIgnored("not a bytes range")
    if "," in spec:
        raise RangeIgnored("several ranges are not supported")
    start_text, dash, end_text = spec.strip().partition("-")
    if not dash or not _digits(start_text, end_text):
        raise RangeIgnored("malformed range")
    if not start_text:  # bytes=-n: the last n bytes
        suffix = int(end_text)
        if suffix == 0 or size == 0:
            _unsatisfiable(size, f"the last {suffix} bytes of a {size}-byte file")
        return max(0, size - suffix), size - 1
    first = int(start_text)
    last = int(end_text) if end_text else size - 1
    if end_text and last < first:
        raise RangeIgnored("malformed range: the end comes before the start")
    if first >= size:
        _unsatisfiable(size, f"the range starts at {first}, past the end of a {size}-byte file")
    return first, min(last, size - 1)


def _digits(*texts: str) -> bool:
    """Every text is empty or ASCII digits, at most 20 of them, and not both are empty."""
    return any(texts) and all(re.fullmatch(r"[0-9]{0,20}", text) for text in texts)


def _unsatisfiable(size: int, detail: str) -> NoReturn:
    """Stop with a 416 whose Content-Range gives the file's size."""
    raise web.HTTPRequestRangeNotSatisfiable(
        text=f"Range not satisfiable: {detail}", headers={"Content-Range": f"bytes */{size}"}
    )


def _requested_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | str:
    """The range to send, or why the whole file is sent instead (empty if no Range came)."""
    header = request.headers.get("Range")
    if header is None:
        return ""
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return "If-Range does not match the current ETag"
    try:
        return parse_range(header, size)
    except RangeIgnored as why:
        return str(why)


# --- downloads -------------------------------------------------------------------------------


def _name(request: web.Request, size: int) -> str:
    """``?name=`` (a safe file name), or the default name for ``size``."""
    name = request.query.get("name")
    if name is None:
        return default_name(size)
    if not NAME.fullmatch(name):
        bad_request(
            "name must be 1 to 64 letters, digits, '_', '-' or '.', not starting with '.' "
            f"or '-', got {name[:70]!r}"
        )
    return name


def _rate(request: web.Request, length: int) -> int | None:
    """``?rate=`` in bytes per second, or None; a 400 if the body would take over 60 s."""
    text = request.query.get("rate")
    if text is None:
        return None
    rate = parse_int(text, "rate", MIN_RATE, MAX_RATE)
    if length / rate > MAX_THROTTLED_SECONDS:
        bad_request(
            f"at {rate} bytes/s the {length} bytes would take {length / rate:.0f} s; "
            f"the limit is {MAX_THROTTLED_SECONDS} s: raise the rate or ask for less"
        )
    return rate


@routes.get("/files/{size}")
async def download(request: web.Request) -> web.StreamResponse:
    """Fixed data (≤256 MiB): Range, ETag, ?name=, ?rate=, ?break_at=, ?fail=&key=."""
    size = path_int(request, "size", 0, MAX_FILE_BYTES)
    name = _name(request, size)
    break_at = query_int(request, "break_at", size, 1, max(1, size))
    etag = file_etag(size, name)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    wanted = _requested_range(request, size, etag)
    first, last = (0, size - 1) if isinstance(wanted, str) else wanted
    if isinstance(wanted, tuple):
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    elif wanted:
        headers["X-Range-Ignored"] = wanted
    rate = _rate(request, last - first + 1)
    status = 206 if isinstance(wanted, tuple) else 200
    failure = _injected_failure(request, status, headers)
    if failure is not None:
        return failure
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = last - first + 1
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    breaks = first == 0 and break_at <= last  # a resumed request always completes
    end = break_at - 1 if breaks else last
    complete = await _send(resp, iter_content(size, name, first, end), rate)
    if complete and breaks and request.transport is not None:
        await timing.sleep(BREAK_GRACE)
        if request.transport is not None:
            request.transport.close()  # the body stops short of its Content-Length
    return resp


def _injected_failure(
    request: web.Request, status: int, headers: dict[str, str]
) -> web.Response | None:
    """``?fail=N&key=K``: the failure for one of the key's first N calls, else None.

    Every call is counted in the key's ``/fail/{key}`` log and gets ``X-Attempt`` (added to
    ``headers`` for the file's own answer).
    """
    if "fail" not in request.query:
        return None
    n = query_int(request, "fail", 0, 0, MAX_FAILURES)
    key = request.query.get("key", "")
    if not KEY.fullmatch(key):
        bad_request(f"fail= needs key=: 1 to 64 letters, digits, '_', '-' or '.', got {key[:70]!r}")
    call = count_call(request, key, n, status)
    headers["X-Attempt"] = str(call.attempt)
    return call.failure


async def _send(resp: web.StreamResponse, pieces: Iterator[bytes], rate: int | None) -> bool:
    """Write the pieces; False if the client went away.

    With a ``rate``, pieces of a tenth of a second each, each sent after waiting its share,
    so the last byte arrives after about length / rate seconds.
    """
    step = BLOCK_SIZE if rate is None else max(1, min(BLOCK_SIZE, rate // 10))
    try:
        for piece in pieces:
            for start in range(0, len(piece), step):
                chunk = piece[start : start + step]
                if rate is not None:
                    await timing.sleep(len(chunk) / rate)
                await resp.write(chunk)
    except ConnectionError:
        return False
    return True


@routes.get("/files/{size}/sha256")
async def download_sha256(request: web.Request) -> web.Response:
    """SHA-256 and ETag of /files/{size} (same ?name=): what a download must match."""
    size = path_int(request, "size", 0, MAX_FILE_BYTES)
    name = _name(request, size)
    digest = await asyncio.to_thread(file_sha256, size, name)
    return web.json_response(
        {"name": name, "size": size, "sha256": digest, "etag": file_etag(size, name)}
    )


# --- uploads ---------------------------------------------------------------------------------


class UploadTooLarge(Exception):
    """The upload went past MAX_UPLOAD_BYTES or MAX_UPLOAD_PARTS."""


@routes.post("/upload")
@routes.put("/upload")
async def upload(request: web.Request) -> web.Response:
    """Size and SHA-256 of the body, or of each multipart part (≤64 MiB, ≤100 parts)."""
    try:
        report = await _read_upload(request)
    except web.HTTPClientError as exc:
        return await _refuse(request, exc)
    return web.json_response({"method": request.method, **report})


async def _read_upload(request: web.Request) -> dict[str, Any]:
    """The report for a multipart or raw body; 413 past the caps, 400 if unreadable."""
    declared = request.content_length
    try:
        if declared is not None and declared > MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"the body is {declared} bytes")
        if request.content_type.startswith("multipart/"):
            return await _read_multipart(request)
        return await _read_raw(request)
    except UploadTooLarge as exc:
        _too_large(str(exc))
    except (web.RequestPayloadError, ConnectionResetError) as exc:
        # A body that cannot be decoded (bad gzip), or a client that left mid-body.
        bad_request(f"the request body could not be read: {exc}")


async def _refuse(request: web.Request, exc: web.HTTPClientError) -> NoReturn:
    """Answer a 4xx once the rest of the body is read and dropped, so a client still sending
    can finish and read the answer; if it cannot all be read, say the connection closes."""
    try:
        complete = await _discard_rest(request)
    except (web.RequestPayloadError, ConnectionResetError):  # corrupt, or the client left
        raise UnreadableBody(text=exc.text or exc.reason) from None
    if not complete:
        exc.headers["Connection"] = "close"
    raise exc


async def _discard_rest(request: web.Request) -> bool:
    """Read and drop what is left of the body, up to MAX_DISCARD_BYTES; True if all of it.

    A compressed body is never read on: inflating the rest of a bomb costs seconds of CPU.
    """
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        return False
    content = request.content
    budget = MAX_DISCARD_BYTES
    declared = request.content_length
    if declared is not None and declared - content.total_bytes > budget:
        return False
    while not content.at_eof() and budget > 0:
        budget -= len(await content.readany())
    return content.at_eof()


def _too_large(what: str) -> NoReturn:
    """Stop with a 413 that says what went past which cap."""
    raise web.HTTPRequestEntityTooLarge(
        MAX_UPLOAD_BYTES,
        text=f"{what}; /upload takes at most {MAX_UPLOAD_BYTES} bytes "
        f"({MAX_UPLOAD_BYTES / 2**20:g} MiB) and {MAX_UPLOAD_PARTS} parts",
    )


def _check_received(request: web.Request) -> None:
    """Stop once more than MAX_UPLOAD_BYTES have arrived (multipart framing included)."""
    received = request.content.total_bytes
    if received > MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"more than {MAX_UPLOAD_BYTES} bytes arrived")


async def _read_raw(request: web.Request) -> dict[str, Any]:
    """Size and SHA-256 of a non-multipart body, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"more than {MAX_UPLOAD_BYTES} bytes arrived")
        digest.update(chunk)
    return {
        "kind": "raw",
        "content_type": request.headers.get("Content-Type"),
        "size": size,
        "sha256": digest.hexdigest(),
    }


async def _read_multipart(request: web.Request) -> dict[str, Any]:
    """A report for each part of a multipart body; a 400 if it is malformed."""
    try:
        reader = await request.multipart()
        parts = [report async for report in _part_reports(request, reader)]
    except (ValueError, LookupError, RuntimeError, HttpProcessingError) as exc:
        reason = exc.message if isinstance(exc, HttpProcessingError) else exc
        bad_request(f"the multipart body could not be parsed: {reason}")
    return {
        "kind": "multipart",
        "content_type": request.content_type,
        "size": sum(part["size"] for part in parts),
        "parts": parts,
    }


async def _part_reports(
    request: web.Request, reader: MultipartReader
) -> AsyncIterator[dict[str, Any]]:
    """Yield one report per part, reading each as a stream."""
    count = 0
    while (part := await reader.next()) is not None:
        count += 1
        if count > MAX_UPLOAD_PARTS:
            raise UploadTooLarge(f"more than {MAX_UPLOAD_PARTS} parts")
        if not isinstance(part, BodyPartReader):
            bad_request("a part that is itself multipart is not supported")
        if part.name is None and request.content_type == "multipart/form-data":
            bad_request("every form-data part needs a Content-Disposition with a name")
        yield await _part_report(request, part)
        _check_received(request)


async def _part_report(request: web.Request, part: BodyPartReader) -> dict[str, Any]:
    """Name, filename, content type, size, SHA-256 and (small text fields) value of a part."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    while chunk := await part.read_chunk(READ_CHUNK):
        size += len(chunk)
        digest.update(chunk)
        if len(head) <= MAX_FIELD_VALUE_BYTES:
            head += chunk[: MAX_FIELD_VALUE_BYTES + 1 - len(head)]
        _check_received(request)
    return {
        "name": part.name,
        "filename": part.filename,
        "content_type": part.headers.get("Content-Type"),
        "size": size,
        "sha256": digest.hexdigest(),
        "value": _field_value(part, head) if part.filename is None else None,
    }


def _field_value(part: BodyPartReader, data: bytes) -> str | None:
    """A small text field's value, decoded with its charset; None if large or undecodable."""
    if len(data) > MAX_FIELD_VALUE_BYTES:
        return None
    try:
        return data.decode(part.get_charset(default="utf-8"))
    except (LookupError, UnicodeDecodeError):
        return None
