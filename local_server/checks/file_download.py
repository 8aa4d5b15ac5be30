"""Checks for exercise 09, file download.

In the notebook: ``from local_server.checks import file_download as check``.

Each task's rules are declared in a table (``DOWNLOAD``, ``DOWNLOAD_VERIFIED``, ``RESUME``).
Each check serves its own files (``disk_writes.FileServer``: deterministic bytes written in
uneven pieces, ETag, Range, If-Range, scripted faults) and gives the learner's code
destinations in a fresh temporary directory, a new name for every call. ``DiskWatch`` sees
every file the code opens for writing, renames or removes, on any thread and whatever the
API, and the bytes it reads or writes on the event loop's thread (``flush()`` and
``os.write`` included); the server records the headers each request carried.

- ``download``: a file of an odd size, 16 MiB under ``tracemalloc``, and a connection cut
  halfway (the error must propagate and the file be closed).
- ``download_verified``: a file smaller than one chunk, one of an odd size, a cut connection
  and wrong bytes: the good ones arrive whole, the bad ones raise and leave nothing under
  ``dest``; the temporary file is in ``dest``'s directory, never ``dest`` itself.
- ``resume_download``: a resume the server cuts again if it starts from byte 0, a partial
  file whose file was republished since (stale ETag), and a resume whose connection breaks.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import aiohttp

from ..files import parse_range
from ..runner import LocalServer
from .disk_writes import (
    DiskEvent,
    DiskWatch,
    FileServer,
    Remote,
    cut,
    describe_file,
    expect_content,
    expect_off_loop,
    leftovers,
    memory_verdict,
    mib,
    remove_quietly,
    still_open,
    where_is,
)
from .evidence import exception_text, learner_line
from .harness import PeakMemory, SessionSpy, call_async, check
from .rules import Mistake, Rule, Task

SEED = 0
CHUNK = 64 * 1024
LARGE_SIZE = 16 * 1024 * 1024


def _where(exc: BaseException) -> str:
    line = learner_line(exc)
    return f" ({line})" if line else ""


async def _outcome(call: Any) -> tuple[Any, BaseException | None]:
    """Await the learner's call: (its result, None), or (None, the exception it raised)."""
    try:
        return await call, None
    except (NotImplementedError, Mistake):
        raise
    except Exception as exc:
        return None, exc


def _opened_dest(events: list[DiskEvent], dest: str) -> bool:
    real = os.path.realpath(dest)
    return any(e.action == "open-write" and e.path == real for e in events)


def _left_open(watch: DiskWatch, events: list[DiskEvent]) -> list[str]:
    """Files the learner's code opened for writing and did not close."""
    written = {e.path for e in events if e.action == "open-write" and not os.path.isdir(e.path)}
    return sorted(set(still_open(written)) | (set(watch.unclosed()) & written))


# --- Task 1: download ----------------------------------------------------------------------

DOWNLOAD = Task(
    "download",
    Rule(
        "no-file",
        "writes the body to the file `dest`",
        "whether a file exists at `dest` after download returned",
        "open `dest` for writing in binary mode (`open(dest, 'wb')`) and write every chunk.",
    ),
    Rule(
        "wrong-content",
        "writes the body to the file `dest`",
        "the file's bytes compared with the download's, for a file of an odd size sent in "
        "uneven pieces and for 16 MiB: which part is missing or extra",
        "open the file once, in binary mode (`'wb'`), and write every chunk in order.",
    ),
    Rule(
        "whole-body-in-memory",
        "memory must stay below half the file's size, so read the body in chunks",
        "tracemalloc's peak while 16 MiB are downloaded",
        "`async for chunk in response.content.iter_chunked(64 * 1024):` and write each chunk "
        "as it comes; `await response.read()`, or keeping the chunks in a list or a buffer, "
        "holds the whole body.",
    ),
    Rule(
        "blocked-loop",
        "no more than 1 MiB may be read or written on the event loop's thread",
        "the bytes the learner's lines read or wrote on the loop's thread, whatever the API "
        "(file.write, os.write, Path.write_bytes, a flush())",
        "write each chunk in a worker thread: `await asyncio.to_thread(file.write, chunk)`.",
    ),
    Rule(
        "failure-swallowed",
        "If the connection breaks, let the exception propagate",
        "a connection cut halfway: download must raise",
        "do not catch the error (no bare `except`): the caller must know the file is "
        "incomplete.",
    ),
    Rule(
        "file-left-open",
        "close the file (a `with` block does)",
        "files the learner opened for writing still open after the call, or closed by the "
        "garbage collector (its ResourceWarning), after a good download and after a cut",
        "open the file with `with open(dest, 'wb') as file:`: it is closed however the block "
        "ends, an exception included.",
    ),
)


@check(DOWNLOAD, timeout=20)
async def download(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download(session, url, dest)`` streams to disk in bounded memory, off the loop."""
    rng = random.Random(f"{SEED}-download")
    odd = Remote("odd.bin", 1_000_000 + rng.randrange(1, CHUNK))
    large = Remote("large.bin", LARGE_SIZE, pieces=(CHUNK // 2, 3 * CHUNK))
    size = 600_000 + rng.randrange(1, CHUNK)
    broken = Remote("broken.bin", size, faults=[cut(size // 2 + rng.randrange(1, 999))])
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory, DiskWatch() as watch:
        async with FileServer(f"{SEED}-download") as files, aiohttp.ClientSession() as session:
            for remote in (odd, large, broken):
                files.add(remote)
            for remote in (odd, large):
                dest = os.path.join(directory, remote.name)
                with watch.calling() as start, PeakMemory() as memory:
                    await call_async("download", learner, session, remote.url, dest)
                watch.settle()
                if remote is large and memory.peak > LARGE_SIZE // 2:
                    raise DOWNLOAD.broken(
                        "whole-body-in-memory",
                        *memory_verdict("download", memory.peak, LARGE_SIZE, watch, [directory]),
                    )
                expect_off_loop(DOWNLOAD, watch, "download", [directory])
                expect_content(DOWNLOAD, "download", dest, remote)
                _expect_closed(watch, watch.since(start), "a good download")
            dest = os.path.join(directory, broken.name)
            with watch.calling() as start:
                _, error = await _outcome(
                    call_async("download", learner, session, broken.url, dest)
                )
            watch.settle()
            if error is None:
                raise DOWNLOAD.broken(
                    "failure-swallowed",
                    f"the connection was cut after {broken.faults[0].at} of {broken.size} bytes "
                    "and download returned normally: the caller believes the file is complete.",
                )
            expect_off_loop(DOWNLOAD, watch, "download", [directory])
            _expect_closed(watch, watch.since(start), "the connection was cut")
    return (
        f"a file of {odd.size} bytes in uneven pieces and {mib(LARGE_SIZE)} reached the disk "
        "intact, in bounded memory, written off the event loop; a cut connection raised, "
        "with the file closed."
    )


def _expect_closed(watch: DiskWatch, events: list[DiskEvent], when: str) -> None:
    left = _left_open(watch, events)
    if left:
        names = ", ".join(os.path.basename(path) for path in left)
        raise DOWNLOAD.broken(
            "file-left-open",
            f"after {when}, {names} was still open (or left for the garbage collector to "
            "close): its last bytes may not be on disk yet, and the handle leaks.",
        )


# --- Task 2: download_verified -------------------------------------------------------------

HEALTHY_HINT = (
    "`sha256` is hex text: compare it with `digest.hexdigest()` (not `.digest()`); make one "
    "`hashlib.sha256()` before the loop and `update()` it with every chunk; raise only when "
    "they differ."
)

DOWNLOAD_VERIFIED = Task(
    "download_verified",
    Rule(
        "healthy-download-failed",
        "When it returns, the file at `dest` is complete and its SHA-256 (hex) equals `sha256`",
        "two good downloads whose SHA-256 is exactly `sha256` (one smaller than a chunk, one "
        "of an odd size in uneven pieces): download_verified must not raise",
        HEALTHY_HINT,
    ),
    Rule(
        "no-file",
        "When it returns, the file at `dest` is complete",
        "whether a file exists at `dest` after a good download returned",
        "rename the temporary file to `dest` with `os.replace(temp, dest)` once it is verified.",
    ),
    Rule(
        "wrong-content",
        "the file at `dest` is complete and its SHA-256 equals `sha256`",
        "the bytes at `dest` after a good download, compared with the download's",
        "open the temporary file once, in binary mode (`'wb'`), write every chunk in order, "
        "and rename that file.",
    ),
    Rule(
        "failure-swallowed",
        "When anything goes wrong it raises",
        "a connection cut halfway: download_verified must raise",
        "let the exception propagate (no bare `except`): the caller must know the download "
        "failed.",
    ),
    Rule(
        "checksum-ignored",
        "When anything goes wrong it raises (a SHA-256 that is not `sha256`)",
        "a download whose bytes do not match `sha256`: download_verified must raise",
        "compare `digest.hexdigest()` with `sha256` after the last chunk, and raise when they "
        "differ.",
    ),
    Rule(
        "partial-file-left",
        "**nothing** is left under the name `dest`",
        "whether a file sits at `dest` after the cut connection",
        "write to a temporary name (`dest + '.part'`) and `os.replace(temp, dest)` only after "
        "the last byte arrived and the checksum matched.",
    ),
    Rule(
        "unverified-file-left",
        "rename it to `dest` only after ... the checksum matched",
        "whether a file sits at `dest` after the download with the wrong bytes",
        "compare the digest before `os.replace(temp, dest)`, and raise instead of renaming "
        "when it differs.",
    ),
    Rule(
        "writes-final-name",
        "write to a temporary name",
        "the files the learner's code opened for writing: `dest` itself must not be one",
        "open `dest + '.part'` for writing, never `dest`: while the download runs (or if the "
        "program dies) a partial file would sit under the final name.",
    ),
    Rule(
        "temp-elsewhere",
        "a temporary name in the same directory",
        "where the files the learner's code wrote, and renamed to `dest`, were",
        "`dest + '.part'`, or `tempfile.mkstemp(dir=os.path.dirname(dest))`: a rename is "
        "atomic only within one file system, and the system temp dir may be another.",
    ),
)


@check(DOWNLOAD_VERIFIED, timeout=15)
async def download_verified(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_verified(session, url, dest, sha256)``: verified and atomic."""
    task = "download_verified"
    rng = random.Random(f"{SEED}-{task}")
    small = Remote("small.bin", 20_000 + rng.randrange(1, 9_999))
    odd = Remote("odd.bin", 2 * 1024 * 1024 + rng.randrange(1, CHUNK))
    size = 700_000 + rng.randrange(1, CHUNK)
    broken = Remote("broken.bin", size, faults=[cut(size // 2 + rng.randrange(1, 999))])
    wrong = Remote("tampered.bin", 300_000 + rng.randrange(1, CHUNK))
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory, DiskWatch() as watch:
        async with FileServer(f"{SEED}-{task}") as files, aiohttp.ClientSession() as session:
            for remote in (small, odd, broken, wrong):
                files.add(remote)

            async def run(remote: Remote, sha256: str) -> tuple[str, Any, Any, list[DiskEvent]]:
                dest = os.path.join(directory, remote.name)
                with watch.calling() as start:
                    result, error = await _outcome(
                        call_async(task, learner, session, remote.url, dest, sha256)
                    )
                watch.settle()
                events = watch.since(start)
                _expect_atomic_writes(events, dest, directory)
                expect_off_loop(DOWNLOAD_VERIFIED, watch, task, [directory])
                return dest, result, error, events

            made: list[DiskEvent] = []
            for remote in (small, odd):
                dest, _, error, events = await run(remote, remote.sha256())
                made += events
                if error is not None:
                    raise DOWNLOAD_VERIFIED.broken(
                        "healthy-download-failed",
                        f"for a good download of {remote.size} bytes whose SHA-256 is exactly "
                        f"`sha256`, download_verified raised {exception_text(error)}"
                        f"{_where(error)}: it rejected the right file.",
                    )
                expect_content(DOWNLOAD_VERIFIED, task, dest, remote)

            dest, _, error, events = await run(broken, broken.sha256())
            made += events
            if error is None:
                raise DOWNLOAD_VERIFIED.broken(
                    "failure-swallowed",
                    f"the connection was cut after {broken.faults[0].at} of {broken.size} bytes "
                    "and download_verified returned normally: the caller believes it worked.",
                )
            if os.path.exists(dest):
                raise DOWNLOAD_VERIFIED.broken(
                    "partial-file-left",
                    f"after the connection was cut, `dest` holds {os.path.getsize(dest)} bytes "
                    "(the file has "
                    f"{broken.size}): a file that looks finished and is not.",
                )

            dest, _, error, events = await run(wrong, _other(wrong))
            made += events
            if error is None:
                raise DOWNLOAD_VERIFIED.broken(
                    "checksum-ignored",
                    "for a download whose SHA-256 is not `sha256`, download_verified returned "
                    "normally: the caller believes the bytes are the published ones.",
                )
            if os.path.exists(dest):
                raise DOWNLOAD_VERIFIED.broken(
                    "unverified-file-left",
                    f"the SHA-256 did not match `sha256` and download_verified raised "
                    f"{exception_text(error)}, yet the file was renamed to `dest` first.",
                )
        remove_quietly(leftovers(made, set()))  # the temporary files of the failures
    return (
        "two good downloads arrived whole under `dest`, through a temporary file beside it; "
        "a cut connection and a wrong checksum each raised and left nothing under `dest`."
    )


def _other(remote: Remote) -> str:
    """A SHA-256 that is not ``remote``'s: what the publisher announced for other bytes."""
    return Remote(f"published-{remote.name}", remote.size).sha256()


def _expect_atomic_writes(events: list[DiskEvent], dest: str, directory: str) -> None:
    """The learner wrote a temporary file beside ``dest``, never ``dest`` itself."""
    real_dest = os.path.realpath(dest)
    real_dir = os.path.realpath(directory)
    for event in events:
        if event.action == "rename" and event.target == real_dest:
            if os.path.dirname(event.path) != real_dir:
                raise DOWNLOAD_VERIFIED.broken(
                    "temp-elsewhere",
                    f"the file renamed to `dest` was written at {where_is(event.path, directory)}"
                    ", not in `dest`'s directory: a rename is atomic only within one file "
                    "system, and across two os.replace fails or copies.",
                )
    if _opened_dest(events, dest):
        raise DOWNLOAD_VERIFIED.broken(
            "writes-final-name",
            "download_verified opened `dest` itself for writing: while the download runs, or "
            "if the program dies halfway, a partial file sits under the final name.",
        )
    elsewhere = [
        e.path for e in events
        if e.action == "open-write" and not os.path.isdir(e.path)
        and os.path.dirname(e.path) != real_dir
    ]  # fmt: skip
    if elsewhere:
        raise DOWNLOAD_VERIFIED.broken(
            "temp-elsewhere",
            f"download_verified wrote {where_is(elsewhere[0], directory)}, not a file in "
            "`dest`'s directory: a rename is atomic only within one file system.",
        )


# --- Task 3: resume_download ---------------------------------------------------------------

RESUME = Task(
    "resume_download",
    Rule(
        "restarted-from-zero",
        "asking only for the missing bytes: `Range: bytes=<size of the file>-`",
        "the Range header the server received (none), on a URL that cuts every request "
        "from byte 0 where the partial file ends",
        "send `Range: bytes=<size of the partial file>-` (`os.path.getsize(path)`) and append "
        "what comes back.",
    ),
    Rule(
        "wrong-range",
        "`Range: bytes=<size of the file>-`",
        "the Range header the server received, compared with the partial file's size",
        "the first missing byte is the file's size (bytes are counted from 0): "
        "`f'bytes={os.path.getsize(path)}-'`, with its dash.",
    ),
    Rule(
        "no-if-range",
        "send it as `If-Range`, so that if the file changed ... the server sends the whole",
        "a partial file whose file was republished since (its ETag is stale): the headers "
        "the server received",
        "send `If-Range: <etag>` with the Range: a server whose file changed then sends the "
        "whole new file (200) instead of the rest of another one.",
    ),
    Rule(
        "if-range-mismatch",
        "`etag` is the ETag the first attempt received: send it as `If-Range`",
        "the If-Range header the server received, compared with `etag`",
        "send `etag` exactly as you were given it, quotes included: `headers={'Range': ..., "
        "'If-Range': etag}`.",
    ),
    Rule(
        "overwrote-partial",
        "On a **206**, append what arrives to the file",
        "the file after a 206: it must be the partial file followed by the rest",
        "on a 206 open the file with `'ab'` (append): `'wb'` empties it first, and `'r+b'` "
        "writes from byte 0 unless you seek to the end.",
    ),
    Rule(
        "appended-whole-file",
        "On a **200**, start the file over with what arrives",
        "the file after a 200 (the stale ETag): it must be the new file alone",
        "choose the mode from `response.status`: `'ab'` for 206, `'wb'` for 200.",
    ),
    Rule(
        "resume-corrupt",
        "completes it",
        "the file's bytes after the resume, compared with the download's",
        "append exactly the bytes of the 206 body after the partial file, in order.",
    ),
    Rule(
        "failure-swallowed",
        "If the connection breaks again, let the exception propagate",
        "a resume whose connection is cut: resume_download must raise",
        "do not catch the error: the caller must know the file is still incomplete.",
    ),
    Rule(
        "partial-lost",
        "the file keeps what arrived, ready for the next resume",
        "after a resume whose connection broke, the file must be a longer (or equal) start "
        "of the download",
        "keep the file when the connection breaks: do not delete or truncate it; what was "
        "appended is valid.",
    ),
)


@check(RESUME, timeout=15)
async def resume_download(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``resume_download(session, url, path, etag)`` completes the partial file at ``path``."""
    task = "resume_download"
    rng = random.Random(f"{SEED}-{task}")
    size = 3 * 1024 * 1024 + rng.randrange(1, CHUNK)
    held = 1_500_000 + rng.randrange(1, CHUNK)
    resumable = Remote("resumable.bin", size, cut_from_zero=held)
    old_size = 2 * 1024 * 1024 + rng.randrange(1, CHUNK)
    republished = Remote("republished.bin", old_size, changes_after=0)
    old_held = 700_000 + rng.randrange(1, CHUNK)
    again_size = 2 * 1024 * 1024 + rng.randrange(1, CHUNK)
    again_held = 600_000 + rng.randrange(1, CHUNK)
    again_cut = again_held + 500_000 + rng.randrange(1, CHUNK)
    again = Remote("again.bin", again_size, faults=[cut(again_cut)], cut_from_zero=again_held)
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory, DiskWatch() as watch:
        async with FileServer(f"{SEED}-{task}") as files, aiohttp.ClientSession() as session:
            for remote in (resumable, republished, again):
                files.add(remote)

            async def run(remote: Remote, held: int, version: int) -> tuple[str, Any]:
                path = os.path.join(directory, remote.name)
                with open(path, "wb") as file:
                    file.write(remote.content(version)[:held])
                with watch.calling():
                    _, error = await _outcome(
                        call_async(task, learner, session, remote.url, path, remote.etag(version))
                    )
                watch.settle()
                await files.idle()
                expect_off_loop(RESUME, watch, task, [directory])
                return path, error

            path, error = await run(resumable, held, 1)
            _judge_request(resumable, held, error)
            if error is not None:
                raise error
            _judge_resumed(path, resumable, held)

            path, error = await run(republished, old_held, 1)
            _judge_request(republished, old_held, error, stale=True)
            if error is not None:
                raise error
            _judge_restarted(path, republished, old_held)

            path, error = await run(again, again_held, 1)
            _judge_request(again, again_held, error)
            if error is None:
                raise RESUME.broken(
                    "failure-swallowed",
                    f"the resume's connection was cut at byte {again_cut} of {again_size} and "
                    "resume_download returned normally: the caller believes the file is "
                    "complete.",
                )
            _judge_kept(path, again, again_held)
    return (
        "the resume asked for the missing bytes only (206) and appended them; with a stale "
        "ETag the whole new file (200) replaced the old partial; a resume cut again raised "
        "and kept what arrived."
    )


def _judge_request(
    remote: Remote, held: int, error: BaseException | None, *, stale: bool = False
) -> None:
    """The first request's headers, as the server received them."""
    gets = remote.gets()
    if not gets:
        what = f"raised {exception_text(error)}{_where(error)}" if error else "returned"
        raise RESUME.broken(
            "restarted-from-zero", f"resume_download {what} without requesting {remote.name}.",
            "request `url` with `session.get(url, headers={'Range': f'bytes={size}-', "
            "'If-Range': etag})`.",
        )
    first = gets[0]
    if first.range is None:
        raise RESUME.broken(
            "restarted-from-zero",
            f"the request carried no Range header, so the server sent {remote.name} from byte "
            f"0{' and cut it again where the partial file ends' if not stale else ''}: the "
            f"partial file's {held} bytes were downloaded again.",
        )
    try:
        asked = parse_range(first.range, remote.size)
    except Exception:
        asked = None
    if asked is None or asked[0] != held or asked[1] != remote.size - 1:
        raise RESUME.broken(
            "wrong-range",
            f"the request carried `Range: {first.range}`, and the partial file has {held} "
            f"bytes: the missing ones are `bytes={held}-`.",
        )
    etag = remote.etag(1)
    if first.if_range is not None and first.if_range.strip() != etag:
        raise RESUME.broken(
            "if-range-mismatch",
            f"the request carried `If-Range: {first.if_range}`, but `etag` is `{etag}`: the "
            "server did not recognise it, so it ignored the Range and sent the whole file "
            f"({first.status}).",
        )
    if stale and first.if_range is None:
        instead = " (it had If-None-Match instead)" if first.if_none_match else ""
        raise RESUME.broken(
            "no-if-range",
            f"{remote.name} was republished since the partial file was written (its ETag "
            f"changed), and the request carried `Range: {first.range}` without If-Range"
            f"{instead}, so the server sent the rest of the NEW version (206) for the start of "
            "the old one.",
        )


def _judge_resumed(path: str, remote: Remote, held: int) -> None:
    expected = remote.content()
    if not os.path.exists(path):
        raise RESUME.broken(
            "resume-corrupt", "after resume_download returned, there is no file at `path`."
        )
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        data = file.read()
    if data == expected:
        return
    if data == expected[held:]:
        raise RESUME.broken(
            "overwrote-partial",
            f"after the 206, the file holds only the {size} bytes of the rest: the partial "
            f"file's {held} bytes were overwritten.",
        )
    raise RESUME.broken(
        "resume-corrupt",
        f"after the 206 (bytes {held}-), the file {describe_file(path, expected)}.",
    )


def _judge_restarted(path: str, remote: Remote, held: int) -> None:
    new = remote.content(2)
    if not os.path.exists(path):
        raise RESUME.broken("resume-corrupt", "after resume_download returned, there is no file.")
    with open(path, "rb") as file:
        data = file.read()
    if data == new:
        return
    statuses = remote.statuses()
    if data == remote.content(1)[:held] + new:
        raise RESUME.broken(
            "appended-whole-file",
            f"the ETag no longer matched, so the server sent the whole new file ({statuses[0]}), "
            f"and it was appended to the old partial file ({len(data)} bytes now).",
        )
    raise RESUME.broken(
        "resume-corrupt",
        f"after the server sent the whole new file ({statuses[0]}), the file "
        f"{describe_file(path, new)}.",
        "on a 200, start the file over: open it with `'wb'` and write the whole body.",
    )


def _judge_kept(path: str, remote: Remote, held: int) -> None:
    expected = remote.content()
    if not os.path.exists(path):
        raise RESUME.broken(
            "partial-lost",
            "after the resume's connection broke, the file at `path` was gone: the next "
            f"resume must download all {remote.size} bytes again.",
        )
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < held or not expected.startswith(data):
        raise RESUME.broken(
            "partial-lost",
            f"after the resume's connection broke, the file {describe_file(path, expected)}: "
            f"it had the first {held} bytes before the call.",
        )
