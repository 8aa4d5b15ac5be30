"""Checks for exercise 15, the capstone downloader: ``from local_server.checks import capstone``.

Each task's rules are declared in a table (``DOWNLOAD_FILE``, ``DOWNLOAD_WITH_RETRY``,
``DOWNLOAD_ALL``). The checks serve their own files (``disk_writes.FileServer``: deterministic
bytes in uneven pieces, ETag, Range, If-Range, and per request a scripted fault: an error
status with its page and ``Retry-After``, a reset before the headers, silent headers, a
connection cut at byte N, a file republished between two attempts, a throttled rate) and
record what each request carried. ``DiskWatch`` sees every file the learner's code writes,
renames or removes, on any thread and whatever the API, and the bytes read or written on the
event loop's thread. Tasks 1 and 2 lend a session whose resolver knows an unknown host and
a host whose TLS certificate no one trusts, and whose trace counts the learner's requests;
the delays the code asks ``asyncio.sleep`` for are read from the check's loop, so backoff and
``Retry-After`` are judged from what was asked, never from wall-clock gaps.

- ``download_file(session, url, dest, sha256) -> int``: a file of an odd size in uneven
  pieces, 8 MiB under ``tracemalloc``, a 404 and a 5xx, a connection cut halfway, wrong bytes.
- ``download_with_retry(...) -> int``: a 404 and another 4xx, an unknown host and an
  untrusted certificate (never retried); three retryable statuses and a reset, then the
  file, at exactly ``max_attempts``; a connection cut (resumed with Range); a file republished
  between two attempts (If-Range); a server that fails for good after a cut; a 429 with
  ``Retry-After: 1`` and a server that stalls, side by side with the others.
- ``download_all(jobs, concurrency) -> list[dict]``: two calls at once, with concurrency 2
  and 4, on throttled files whose first ones finish last, with failures of every kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import random
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import abc, web

from ..runner import LocalServer
from . import observe
from .disk_writes import (
    RESET,
    SCENARIO,
    DiskEvent,
    DiskWatch,
    FileServer,
    Remote,
    cut,
    describe_file,
    error_page,
    expect_content,
    expect_off_loop,
    leftovers,
    memory_verdict,
    mib,
    remove_quietly,
    stall,
    status,
    still_open,
    where_is,
)
from .evidence import clip, exception_text, learner_line
from .harness import (
    PeakMemory,
    SessionSpy,
    call_async,
    check,
    peak_overlap,
    plural,
    stretched,
)
from .rules import Mistake, Rule, Task

SEED = 0
CHUNK = 64 * 1024
LARGE_SIZE = 8 * 1024 * 1024
# The session tasks 1 and 2 lend: long downloads allowed, stalls caught. Its sock_read is
# 1.5 s on a machine with a core to spare, longer (at most 4 s) while other processes keep every
# core busy: a loaded machine's loop stood still for over a second and timed out healthy
# transfers. The stalled server says nothing for three times it, so a late timer still fires.
READ_SECONDS = 1.5


def _check_timeout() -> aiohttp.ClientTimeout:
    read = min(4.0, stretched(READ_SECONDS))
    return aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=read)


# The retry options task 2 is called with (not the signature's defaults).
RETRY = {"max_attempts": 5, "base_delay": 0.02, "max_delay": 0.1}
RETRY_AFTER = 1
RETRYABLE = (408, 500, 502, 503, 504)
# A scenario still running after this long is stopped (a retry loop without an end); longer
# on a loaded machine (stretched), and for a scenario whose attempts each wait out sock_read.
SCENARIO_SECONDS = 6.0
UNKNOWN_HOST = "no-such-host.invalid"
UNTRUSTED_HOST = "untrusted.test"

# A throwaway self-signed certificate for UNTRUSTED_HOST that no trust store holds: its only
# use is to fail verification. Not a secret.
UNTRUSTED_CERT = """-----BEGIN CERTIFICATE-----
MIIBpDCCAUqgAwIBAgIUSelZd/hyI38l3Q8ogt703eiOn1MwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOdW50cnVzdGVkLnRlc3QwIBcNMjYxMjAyMDYzMzA2WhgPMjEy
NjExMDgwNjMzMDZaMBkxFzAVBgNVBAMMDnVudHJ1c3RlZC50ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEbq6MyXl+mxXRxbV7l4EEO0bZCSm1Owa5RYdCQv9w
XXJw+uEXl2JyKl2jDbqzsPnCZjmiii9K9LG/2krn6H7B+6NuMGwwHQYDVR0OBBYE
FMpQj/fwcs7f2Ki5lmT/FJ/ZwaNYMB8GA1UdIwQYMBaAFMpQj/fwcs7f2Ki5lmT/
FJ/ZwaNYMA8GA1UdEwEB/wQFMAMBAf8wGQYDVR0RBBIwEIIOdW50cnVzdGVkLnRl
c3QwCgYIKoZIzj0EAwIDSAAwRQIgS1J4emUtZAVSYZZhRmvnRbYjuDO8hdlf7LLP
9GLrJMMCIQDMGlgma05NBLPOVlfVnhQAlkg7L6gCa9bgm4rXSMggow==
-----END CERTIFICATE-----
"""
UNTRUSTED_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDEHvJPT/XN6JgwdL
wv9SafxVxm74ak2+gmOklHL3RvehRANCAARurozJeX6bFdHFtXuXgQQ7RtkJKbU7
BrlFh0JC/3BdcnD64ReXYnIqXaMNurOw+cJmOaKKL0r0sb/aSufofsH7
-----END PRIVATE KEY-----
"""


def _short(error: BaseException) -> str:
    """``Type: message`` of an error, without a ClientResponseError's long request details."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__}: {error.status} {error.message}"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "ClientPayloadError (the body was cut short)"
    return exception_text(error)


def _where(error: BaseException) -> str:
    line = learner_line(error)
    return f" ({line})" if line else ""


async def _outcome(call: Any) -> tuple[Any, BaseException | None]:
    """Await the learner's call: (its result, None), or (None, the exception it raised)."""
    try:
        return await call, None
    except (NotImplementedError, Mistake):
        raise
    except Exception as exc:
        return None, exc


def _page_written(events: list[DiskEvent], page: int) -> DiskEvent | None:
    """A file the learner removed holding bytes, after the server sent only an error page."""
    for event in events:
        if event.action in ("remove", "rename") and event.size:
            return event
    return None


def _left_open(watch: DiskWatch, events: list[DiskEvent]) -> list[str]:
    written = {e.path for e in events if e.action == "open-write" and not os.path.isdir(e.path)}
    return sorted(set(still_open(written)) | (set(watch.unclosed()) & written))


def _files_rules() -> tuple[Rule, ...]:
    """The rules on files that the three tasks share (task 1 states them, 2 and 3 refer)."""
    return (
        Rule(
            "file-left-open",
            "close it",
            "files the learner opened for writing still open after the call, or closed by the "
            "garbage collector (its ResourceWarning)",
            "open the file with `with open(part, 'wb') as file:` so it is closed however the "
            "block ends.",
        ),
        Rule(
            "partial-file-left",
            "nothing is left under the name `dest`",
            "whether a file sits at `dest` after a failed download",
            "write to `dest + '.part'` and `os.replace(part, dest)` only once every byte "
            "arrived and the checksum matched.",
        ),
        Rule(
            "temp-file-left",
            "Remove the temporary file after a failure",
            "the files the learner's code wrote (anywhere, the system temp dir included) still "
            "there after each failed download, each under its own name",
            "remove the temporary file whatever happens: `finally: if os.path.exists(part): "
            "os.remove(part)`.",
        ),
    )


def _expect_no_leftovers(table: Task, events: list[DiskEvent], keep: set[str], directory: str,
                         after: str) -> None:  # fmt: skip
    left = leftovers(events, keep)
    if left:
        names = ", ".join(where_is(path, directory) for path in left)
        remove_quietly(left)
        raise table.broken(
            "temp-file-left",
            f"after {after}, {names} {'is' if len(left) == 1 else 'are'} still there: "
            "temporary files pile up with every failure.",
        )


def _expect_closed(table: Task, watch: DiskWatch, events: list[DiskEvent], when: str) -> None:
    left = _left_open(watch, events)
    if left:
        names = ", ".join(os.path.basename(path) for path in left)
        raise table.broken(
            "file-left-open",
            f"after {when}, {names} was still open (or left for the garbage collector to "
            "close): its last bytes may not be on disk yet, and the handle leaks.",
        )


# --- the session tasks 1 and 2 lend -------------------------------------------------------------


class _Resolver(abc.AbstractResolver):
    """Resolves UNTRUSTED_HOST to the local TLS server; UNKNOWN_HOST does not exist."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        if host not in self.ports:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": "127.0.0.1", "port": self.ports[host],
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]  # fmt: skip

    async def close(self) -> None:
        pass


@dataclass
class _Lent:
    """The session lent to the learner, and the requests its trace saw, by URL path."""

    session: aiohttp.ClientSession
    resolver: _Resolver
    starts: dict[str, list[float]] = field(default_factory=dict)

    def attempts(self, url: str) -> list[float]:
        return self.starts.get(_path(url), [])


def _path(url: str) -> str:
    return str(aiohttp.client.URL(url).with_query(None))


@contextlib.asynccontextmanager
async def _lent_session() -> AsyncIterator[_Lent]:
    resolver = _Resolver()
    trace = aiohttp.TraceConfig()
    lent: _Lent | None = None

    async def on_start(session: Any, context: Any, params: Any) -> None:
        assert lent is not None
        key = str(params.url.with_query(None))
        lent.starts.setdefault(key, []).append(asyncio.get_running_loop().time())

    trace.on_request_start.append(on_start)
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=_check_timeout(), trace_configs=[trace]
    ) as session:
        lent = _Lent(session, resolver)
        yield lent


@contextlib.asynccontextmanager
async def _untrusted_site() -> AsyncIterator[int]:
    """An HTTPS server on a free port whose certificate no trust store knows."""
    with tempfile.TemporaryDirectory(prefix="capstone-tls-") as directory:
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert, "w") as file:
            file.write(UNTRUSTED_CERT)
        with open(key, "w") as file:
            file.write(UNTRUSTED_KEY)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    app = web.Application()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


# --- Task 1: download_file -----------------------------------------------------------------------

HEALTHY_HINT = (
    "`sha256` is hex text: compare it with `digest.hexdigest()` (not `.digest()`); one "
    "`hashlib.sha256()` for the whole file, `update()`d with every chunk; raise only for an "
    "error status or digests that differ."
)
ATOMIC_HINT = (
    "write to `dest + '.part'` (same directory), close it, and `os.replace(part, dest)` only "
    "when the digest matched."
)

DOWNLOAD_FILE = Task(
    "download_file",
    Rule(
        "healthy-download-failed",
        "When it returns, `dest` is complete and its SHA-256 (hex) is `sha256`",
        "two good downloads whose SHA-256 is exactly `sha256` (8 MiB, and an odd size in "
        "uneven pieces): download_file must return",
        HEALTHY_HINT,
    ),
    Rule(
        "no-file",
        "When it returns, `dest` is complete",
        "whether a file exists at `dest` after a good download returned",
        "rename the verified temporary file to `dest`: `os.replace(part, dest)`.",
    ),
    Rule(
        "wrong-content",
        "`dest` is complete and its SHA-256 (hex) is `sha256`",
        "the bytes at `dest` compared with the download's",
        "open the temporary file once, in binary mode (`'wb'`), write every chunk in order.",
    ),
    Rule(
        "whole-body-in-memory",
        "Stream the body in chunks (`iter_chunked`): memory must stay under half of it",
        "tracemalloc's peak while 8 MiB are downloaded",
        "`async for chunk in response.content.iter_chunked(64 * 1024):`, write and hash each "
        "chunk as it comes; `await response.read()`, a list of chunks, or reading the file "
        "back in one piece holds it all.",
    ),
    Rule(
        "blocked-loop",
        "write each chunk off the event loop (no more than 1 MiB read or written there)",
        "the bytes the learner's lines read or wrote on the loop's thread, whatever the API "
        "(file.write, os.write, a flush(), reading the file back to hash it)",
        "write each chunk in a worker thread: `await asyncio.to_thread(file.write, chunk)`.",
    ),
    Rule(
        "writes-final-name",
        "Write to a temporary name",
        "the files the learner's code opened for writing: `dest` itself must not be one",
        ATOMIC_HINT,
    ),
    Rule(
        "temp-elsewhere",
        "a temporary name in the same directory",
        "where the files the learner's code wrote, and renamed to `dest`, were (any thread, "
        "any API, the system temp dir included)",
        "`dest + '.part'`, or `tempfile.mkstemp(dir=os.path.dirname(dest))`: a rename is "
        "atomic only within one file system, and the system temp dir may be another.",
    ),
    Rule(
        "renamed-while-open",
        "close it, and give it the final name with `os.replace()`",
        "whether the temporary file was still open in this process when it was renamed",
        "leave the `with open(...)` block (the file is then closed and flushed) before "
        "`os.replace(part, dest)`.",
    ),
    Rule(
        "wrong-return",
        "returns the number of bytes written",
        "the value returned for a file of an odd size sent in uneven pieces",
        "add `len(chunk)` for every chunk written, and return the total.",
    ),
    Rule(
        "failure-swallowed",
        "When anything goes wrong it **raises**",
        "an error status and a connection cut halfway: download_file must raise",
        "let the failure propagate as an exception (no bare `except`): the caller must know "
        "the download failed.",
    ),
    Rule(
        "error-page-saved",
        "Check the status before writing anything",
        "a 404 and a 5xx: the bytes that reached any file the learner's code wrote (its size "
        "when removed or left), and `dest`",
        "call `response.raise_for_status()` before the first write: not one byte of an error "
        "page may reach the disk.",
    ),
    Rule(
        "checksum-ignored",
        "When anything goes wrong it **raises** (bytes that are not the announced ones)",
        "a download whose bytes do not match `sha256`: download_file must raise",
        "compare `digest.hexdigest()` with `sha256` after the last chunk, and raise when they "
        "differ.",
    ),
    Rule(
        "unverified-file-left",
        "give it the final name with `os.replace()` only when the digest matches",
        "whether a file sits at `dest` after the download with the wrong bytes",
        "compare the digest before `os.replace(part, dest)`, and raise instead of renaming "
        "when it differs.",
    ),
    *_files_rules(),
)


@dataclass
class _Call:
    """One call of the learner's function in one scenario, and what it left."""

    key: str
    dest: str
    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    seconds: float = 0.0  # how long the check let it run
    events: list[DiskEvent] = field(default_factory=list)


async def _call(
    watch: DiskWatch, key: str, dest: str, fn: Callable[[], Any], seconds: float
) -> _Call:
    """Run the learner's ``fn()`` for scenario ``key`` under the watch, for ``seconds`` at most
    (stretched on a loaded machine)."""
    seconds = stretched(seconds)
    outcome = _Call(key, dest, seconds=seconds)
    with watch.calling(key) as start:
        try:
            outcome.result, outcome.error = await asyncio.wait_for(_outcome(fn()), seconds)
        except TimeoutError:
            outcome.timed_out = True
    watch.settle()
    outcome.events = watch.since(start, key)
    return outcome


@check(DOWNLOAD_FILE, timeout=20)
async def download_file(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_file(session, url, dest, sha256) -> int``: streamed, verified, atomic."""
    task = "download_file"
    rng = random.Random(f"{SEED}-{task}")
    odd = Remote("odd.bin", 300_000 + rng.randrange(1, CHUNK))
    large = Remote("large.bin", LARGE_SIZE, pieces=(CHUNK // 2, 3 * CHUNK))
    missing = Remote("missing.bin", 200_000, faults=[status(404)])
    broken_status = rng.choice((500, 502, 503))
    broken = Remote("unavailable.bin", 200_000, faults=[status(broken_status)])
    size = 400_000 + rng.randrange(1, CHUNK)
    cut_file = Remote("cut.bin", size, faults=[cut(size // 2 + rng.randrange(1, 999))])
    tampered = Remote("tampered.bin", 250_000 + rng.randrange(1, CHUNK))
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as directory, DiskWatch() as watch:
        async with FileServer(f"{SEED}-{task}") as files, _lent_session() as lent:
            for remote in (odd, large, missing, broken, cut_file, tampered):
                files.add(remote)

            async def run(remote: Remote, sha256: str) -> _Call:
                dest = os.path.join(directory, remote.name)
                return await _call(
                    watch, remote.name, dest,
                    lambda: call_async(task, learner, lent.session, remote.url, dest, sha256),
                    SCENARIO_SECONDS,
                )  # fmt: skip

            for remote in (odd, large):
                with PeakMemory() as memory:
                    done = await run(remote, remote.sha256())
                _judge_healthy(watch, done, remote, directory, memory.peak)
            for remote in (missing, broken):
                done = await run(remote, remote.sha256())
                _judge_error_status(watch, done, remote, directory)
            done = await run(cut_file, cut_file.sha256())
            _judge_failed(watch, done, directory, "a connection cut halfway", "failure-swallowed",
                          "partial-file-left")  # fmt: skip
            done = await run(tampered, Remote("published.bin", tampered.size).sha256())
            _judge_failed(watch, done, directory, "a download whose bytes are not `sha256`",
                          "checksum-ignored", "unverified-file-left")  # fmt: skip
    return (
        f"{mib(LARGE_SIZE)} and an odd size streamed in bounded memory, written off the event "
        f"loop, verified, closed and renamed; a 404, a {broken_status}, a cut connection and "
        "wrong bytes each raised and left nothing behind."
    )


def _judge_timed_out(table: Task, done: _Call, task: str) -> None:
    if done.timed_out:
        raise table.broken(
            "timeout",
            f"{task} was still running after {done.seconds:g} s for {done.key}, so the "
            "check stopped it.",
        )


def _judge_healthy(
    watch: DiskWatch, done: _Call, remote: Remote, directory: str, peak: int
) -> None:
    task, table = "download_file", DOWNLOAD_FILE
    _judge_timed_out(table, done, task)
    if done.error is not None:
        raise table.broken(
            "healthy-download-failed",
            f"for a good download of {remote.size} bytes whose SHA-256 is exactly `sha256`, "
            f"{task} raised {_short(done.error)}{_where(done.error)}: it rejected the right "
            "file.",
        )
    if remote.size == LARGE_SIZE and peak > LARGE_SIZE // 2:
        raise table.broken(
            "whole-body-in-memory", *memory_verdict(task, peak, LARGE_SIZE, watch, [directory])
        )
    expect_off_loop(table, watch, task, [directory])
    _expect_atomic(table, task, done.events, done.dest, directory)
    _expect_closed(table, watch, done.events, f"a good download ({remote.name})")
    renamed_open = [e for e in done.events if e.action == "rename" and e.still_open]
    if renamed_open:
        raise table.broken(
            "renamed-while-open",
            f"{os.path.basename(renamed_open[0].path)} was still open when it was renamed to "
            "`dest`: its last buffered bytes reach the disk only when it is closed, after "
            "`dest` already looks complete (and on Windows the rename fails).",
        )
    expect_content(table, task, done.dest, remote)
    if done.result != remote.size:
        raise table.broken(
            "wrong-return",
            f"{task} returned {clip(repr(done.result), 40)} for a file of {remote.size} bytes "
            "sent in uneven pieces; expected the number of bytes written.",
        )
    _expect_no_leftovers(table, done.events, {done.dest}, directory, "a good download")


def _expect_atomic(table: Task, task: str, events: list[DiskEvent], dest: str,
                   directory: str) -> None:  # fmt: skip
    real_dest, real_dir = os.path.realpath(dest), os.path.realpath(directory)
    for event in events:
        if event.action == "rename" and event.target == real_dest:
            if os.path.dirname(event.path) != real_dir:
                raise table.broken(
                    "temp-elsewhere",
                    f"the file renamed to `dest` was written at {where_is(event.path, directory)}"
                    ", not in `dest`'s directory: a rename is atomic only within one file system.",
                )
    if any(e.action == "open-write" and e.path == real_dest for e in events):
        raise table.broken(
            "writes-final-name",
            f"{task} opened `dest` itself for writing: while it runs, or if the program dies "
            "halfway, a partial file sits under the final name.",
        )
    elsewhere = [
        e.path for e in events
        if e.action == "open-write" and not os.path.isdir(e.path)
        and os.path.dirname(e.path) != real_dir
    ]  # fmt: skip
    if elsewhere:
        remove_quietly([p for p in elsewhere if os.path.isfile(p)])
        raise table.broken(
            "temp-elsewhere",
            f"{task} wrote {where_is(elsewhere[0], directory)}, not a file in `dest`'s "
            "directory: a rename is atomic only within one file system.",
        )


def _judge_error_status(watch: DiskWatch, done: _Call, remote: Remote, directory: str) -> None:
    task, table = "download_file", DOWNLOAD_FILE
    _judge_timed_out(table, done, task)
    code = remote.faults[0].status
    page = len(error_page(code, remote.name))
    if os.path.exists(done.dest):
        raise table.broken(
            "error-page-saved",
            f"the server answered {code} with a {page}-byte error page, and `dest` now holds "
            f"{os.path.getsize(done.dest)} bytes: the error page was saved as the file.",
        )
    written = _page_written(done.events, page)
    if written is not None:
        raise table.broken(
            "error-page-saved",
            f"the server answered {code}, and its {page}-byte error page was written to "
            f"{os.path.basename(written.path)} ({written.size} bytes there) before {task} "
            f"{'raised ' + _short(done.error) if done.error else 'returned'}.",
        )
    left = [p for p in leftovers(done.events, set()) if os.path.getsize(p) > 0]
    if left:
        remove_quietly(left)
        raise table.broken(
            "error-page-saved",
            f"the server answered {code}, and its error page was written to "
            f"{where_is(left[0], directory)}.",
        )
    if done.error is None:
        raise table.broken(
            "failure-swallowed",
            f"the server answered {code} and {task} returned {clip(repr(done.result), 40)}: "
            "the caller believes the download worked.",
        )
    _expect_no_leftovers(table, done.events, set(), directory, f"a {code}")
    _expect_closed(table, watch, done.events, f"a {code}")


def _judge_failed(watch: DiskWatch, done: _Call, directory: str, what: str, swallowed: str,
                  under_dest: str) -> None:  # fmt: skip
    task, table = "download_file", DOWNLOAD_FILE
    _judge_timed_out(table, done, task)
    if done.error is None:
        raise table.broken(
            swallowed,
            f"after {what}, {task} returned {clip(repr(done.result), 40)}: the caller believes "
            "the download worked.",
        )
    if os.path.exists(done.dest):
        raise table.broken(
            under_dest,
            f"after {what}, {task} raised {_short(done.error)}, but `dest` holds "
            f"{os.path.getsize(done.dest)} bytes: a file that looks finished and is not.",
        )
    expect_off_loop(table, watch, task, [directory])
    _expect_no_leftovers(table, done.events, set(), directory, what)
    _expect_closed(table, watch, done.events, what)


# --- Task 2: download_with_retry -----------------------------------------------------------------

RETRY_HINT = (
    "retry 408, 429 and 5xx statuses, `ClientConnectionError` (but not an unknown host or a "
    "bad certificate), `ClientPayloadError` and `TimeoutError`, until `max_attempts` attempts "
    "were made."
)

DOWNLOAD_WITH_RETRY = Task(
    "download_with_retry",
    Rule(
        "retried-404",
        "A 404 (or any other 4xx but 408 and 429) is raised at once",
        "a 404 and another 4xx: the requests the server received for each",
        "retry only 408, 429 and 5xx statuses; raise any other error status at once: it "
        "will be the same every time.",
    ),
    Rule(
        "retried-permanent",
        "an unknown host (`ClientConnectorDNSError`) or a certificate that fails verification "
        "(`ClientConnectorCertificateError`) is raised at once",
        "the requests the lent session's trace counted for a host that does not exist and "
        "for a host whose certificate no one trusts",
        "both are `ClientConnectionError`s that a retry cannot fix: test for them first "
        "(`isinstance(exc, (aiohttp.ClientConnectorDNSError, "
        "aiohttp.ClientConnectorCertificateError))`) and raise.",
    ),
    Rule(
        "no-retry-status",
        "Retry ... a 408, 429 or 5xx status",
        "a file that answers three of 408/500/502/503/504 and a reset before it comes: the "
        "attempts made",
        RETRY_HINT,
    ),
    Rule(
        "no-retry-reset",
        "Retry ... `ClientConnectionError`",
        "a reset before the headers (ServerDisconnectedError) among the failures",
        "`aiohttp.ClientConnectionError` (a reset, a refused or dropped connection) is "
        "transient: retry it.",
    ),
    Rule(
        "gave-up-early",
        "At most `max_attempts` attempts",
        "a file that needs exactly `max_attempts` (5) attempts: download_with_retry must make "
        "them all",
        "count attempts, not retries: `for attempt in range(max_attempts):`, and raise only "
        "after the last one failed.",
    ),
    Rule(
        "no-retry-drop",
        "Retry ... `ClientPayloadError` (a body cut short)",
        "a connection cut halfway: the attempts made",
        "`ClientPayloadError` is not a `ClientConnectionError`: catch it too, and retry.",
    ),
    Rule(
        "no-retry-timeout",
        "Retry ... `TimeoutError`",
        "a server that sends nothing for longer than the session's sock_read (1.5 s): the "
        "requests it received",
        "`except TimeoutError` catches every aiohttp timeout; retry it like the others.",
    ),
    Rule(
        "no-retry-429",
        "Retry ... a 429 status",
        "a 429 with Retry-After: 1: the attempts made",
        "429 Too Many Requests is transient: wait what Retry-After says, then try again.",
    ),
    Rule(
        "no-backoff",
        "Between attempts wait `random.uniform(0, min(max_delay, base_delay * 2 ** attempt))`",
        "the delays the code passed to asyncio.sleep between the attempts (none)",
        "`await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2 ** attempt)))` "
        "before each new attempt.",
    ),
    Rule(
        "backoff-over-cap",
        "`min(max_delay, ...)`: never more than `max_delay`",
        "the delays the code passed to asyncio.sleep, compared with max_delay (0.1 s in the "
        "check)",
        "cap the exponential: `min(max_delay, base_delay * 2 ** attempt)`, then jitter it.",
    ),
    Rule(
        "no-jitter",
        "`random.uniform(0, ...)`",
        "the delays the code passed to asyncio.sleep: all equal, or exactly the exponential "
        "steps",
        "full jitter spreads the clients out: `random.uniform(0, cap)`, not `cap` itself.",
    ),
    Rule(
        "ignored-retry-after",
        "or at least what a `Retry-After` header says",
        "the delays the code passed to asyncio.sleep between a 429 with Retry-After: 1 and "
        "the next attempt",
        "read `exc.headers.get('Retry-After')` from the `ClientResponseError` and wait at "
        "least that many seconds (`max(backoff, retry_after)`).",
    ),
    Rule(
        "restarted-from-zero",
        "After a dropped connection, **resume**: keep the partial file and ask for the rest "
        "with `Range: bytes=<its size>-`",
        "a URL that cuts every request from byte 0: the Range headers the server received",
        "keep the partial file and ask for the rest: `Range: bytes=<its size>-` with "
        "`If-Range: <etag>`; append on a 206, start over on a 200.",
    ),
    Rule(
        "if-range-mismatch",
        "`If-Range: <the ETag of the first answer>`",
        "the If-Range header the server received, compared with the ETag it had sent",
        "send the ETag exactly as the first answer's `response.headers['ETag']` gave it, "
        "quotes included.",
    ),
    Rule(
        "no-if-range",
        "`If-Range: <the ETag of the first answer>`",
        "a file republished between two attempts (new bytes, new ETag): the headers of the "
        "resume",
        "send `If-Range` with the Range: when the file changed, the server then sends the "
        "whole new file (200) instead of the rest of another one.",
    ),
    Rule(
        "resume-failed",
        "On a 206 append (and keep hashing)",
        "a resume the server answered 206, with the rest of the file, after which the code "
        "raised",
        "on a 206 append to the partial file (`'ab'`) and keep the same digest: it must "
        "cover the bytes already on disk too.",
    ),
    Rule(
        "restart-mishandled",
        "on a 200 start over",
        "a file republished between two attempts: the server sent the whole new version "
        "(200), after which the code raised or kept the wrong bytes",
        "on a 200 the body is the whole file: open the partial file with `'wb'`, and start a "
        "new digest (and count from 0).",
    ),
    Rule(
        "attempt-limit-ignored",
        "At most `max_attempts` attempts",
        "a server that fails for good, with max_attempts=3: the requests it received",
        "make at most `max_attempts` attempts in all, then raise the last error.",
    ),
    Rule(
        "wrong-error-raised",
        "then raise the last error",
        "a server that fails for good (a cut, then two statuses): the exception raised "
        "must be the last attempt's",
        "keep the exception of the last attempt and `raise` it (a bare `raise` in the "
        "`except` block does).",
    ),
    Rule(
        "failure-swallowed",
        "then raise the last error",
        "every failure scenario: download_with_retry must raise",
        "let the last error propagate: the caller must know the download failed.",
    ),
    Rule(
        "error-page-saved",
        "the same promise as task 1 (check the status before writing anything)",
        "a 404 and another 4xx: the bytes that reached any file the learner's code wrote",
        "call `response.raise_for_status()` before the first write.",
    ),
    Rule(
        "wrong-content",
        "the same promise as task 1 (`dest` complete, SHA-256 `sha256`)",
        "the bytes at `dest` after each download that should succeed",
        "on a 206 append the rest after the bytes already there; on a 200 start over.",
    ),
    Rule(
        "no-file",
        "the same promise as task 1 (`dest` complete when it returns)",
        "whether a file exists at `dest` after a download that should succeed",
        "rename the verified temporary file to `dest`: `os.replace(part, dest)`.",
    ),
    Rule(
        "wrong-return",
        "It returns the number of attempts it made (1 when the first one worked)",
        "the value returned after five attempts, and after two",
        "return the number of the attempt that succeeded, counting from 1.",
    ),
    *_files_rules(),
)


@dataclass
class _Scenario:
    """One call of download_with_retry in the check, and everything seen about it."""

    key: str
    url: str
    dest: str
    sha256: str
    remote: Remote | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = SCENARIO_SECONDS
    done: _Call | None = None


class _RetryCheck:
    """Task 2's scenarios against one learner function, and their verdicts."""

    task = "download_with_retry"
    table = DOWNLOAD_WITH_RETRY

    def __init__(self, learner: Any, lent: _Lent, files: FileServer, directory: str,
                 watch: DiskWatch, rng: random.Random) -> None:  # fmt: skip
        self.learner, self.lent, self.files = learner, lent, files
        self.directory, self.watch = directory, watch
        self.sleeps: list[tuple[str | None, observe.Sleep]] = []
        statuses = list(RETRYABLE)
        rng.shuffle(statuses)
        self.busy_statuses, self.down_statuses = statuses[:3], statuses[3:]
        self.other_4xx = rng.choice((400, 403, 410))
        self.rng = rng

    def listen(self, sleep: observe.Sleep) -> None:
        self.sleeps.append((SCENARIO.get(), sleep))

    def scenario(self, remote: Remote, sha256: str | None = None, **options: Any) -> _Scenario:
        self.files.add(remote)
        dest = os.path.join(self.directory, remote.name)
        return _Scenario(remote.name, remote.url, dest, sha256 or remote.sha256(), remote, options)

    async def run(self, scenario: _Scenario) -> _Scenario:
        retrying = functools.partial(self.learner, **{**RETRY, **scenario.options})
        scenario.done = await _call(
            self.watch, scenario.key, scenario.dest,
            lambda: call_async(self.task, retrying, self.lent.session, scenario.url,
                               scenario.dest, scenario.sha256),
            scenario.seconds,
        )  # fmt: skip
        return scenario

    def attempts(self, scenario: _Scenario) -> list[float]:
        return self.lent.attempts(scenario.url)

    def waits(self, scenario: _Scenario) -> list[float]:
        """The delays asked of asyncio.sleep between consecutive attempts of ``scenario``."""
        starts = self.attempts(scenario)
        asked = [s for key, s in self.sleeps if key == scenario.key]
        return [
            sum(s.delay for s in asked if earlier <= s.at < later)
            for earlier, later in itertools.pairwise(starts)
        ]

    # -- the verdicts, one scenario at a time

    def broken(self, problem: str, message: str, hint: str | None = None) -> Mistake:
        return self.table.broken(problem, message, hint)

    def raised_text(self, done: _Call) -> str:
        return f"raised {_short(done.error)}" if done.error else "returned"

    def expect_ended(self, scenario: _Scenario, what: str) -> _Call:
        done = scenario.done
        assert done is not None
        if done.timed_out and scenario.key != "down.bin":
            raise self.broken(
                "timeout",
                f"{self.task} was still running after {done.seconds:g} s against {what}, "
                "so the check stopped it.",
            )
        return done

    def expect_raised(self, scenario: _Scenario, what: str) -> None:
        done = scenario.done
        assert done is not None
        if done.error is None and not done.timed_out:
            raise self.broken(
                "failure-swallowed",
                f"against {what}, {self.task} returned {clip(repr(done.result), 40)}: the caller "
                "believes the download worked.",
            )

    def expect_nothing_left(self, scenario: _Scenario, what: str) -> None:
        done = scenario.done
        assert done is not None
        if os.path.exists(scenario.dest):
            raise self.broken(
                "partial-file-left",
                f"after {what}, `dest` holds {os.path.getsize(scenario.dest)} bytes: a file that "
                "looks finished and is not.",
            )
        _expect_no_leftovers(self.table, done.events, set(), self.directory, what)

    def judge_4xx(self, scenario: _Scenario) -> None:
        assert scenario.remote is not None
        code = scenario.remote.faults[0].status
        done = self.expect_ended(scenario, f"a {code}")
        requests = len(scenario.remote.gets())
        if requests > 1:
            raise self.broken(
                "retried-404",
                f"a {code} was requested {requests} times: it will be a {code} every time.",
            )
        if os.path.exists(scenario.dest) or _page_written(done.events, 0):
            raise self.broken(
                "error-page-saved",
                f"the server answered {code}, and its error page was written to a file before "
                f"{self.task} {self.raised_text(done)}.",
            )
        self.expect_raised(scenario, f"a {code}")
        self.expect_nothing_left(scenario, f"a {code}")

    def judge_permanent(self, scenario: _Scenario, what: str, error_class: str) -> None:
        done = self.expect_ended(scenario, what)
        attempts = len(self.attempts(scenario))
        if attempts > 1:
            raise self.broken(
                "retried-permanent",
                f"{what} was tried {attempts} times ({error_class} each time): a retry "
                "cannot fix it, and each attempt makes the caller wait for the same error.",
            )
        self.expect_raised(scenario, what)
        _expect_no_leftovers(self.table, done.events, set(), self.directory, what)

    def judge_busy(self, scenario: _Scenario) -> None:
        done = self.expect_ended(scenario, "a file that fails four times")
        starts = self.attempts(scenario)
        attempts = len(starts)
        limit = RETRY["max_attempts"]
        met = self.busy_faults()
        if done.error is not None:
            last = met[attempts - 1] if 0 < attempts <= len(met) else None
            said = f"{self.task} {self.raised_text(done)}{_where(done.error)}"
            if attempts == 1:
                raise self.broken(
                    "no-retry-status",
                    f"the server answered {met[0]} and {said} after 1 attempt.",
                )
            if last is not None and last == "a reset":
                raise self.broken(
                    "no-retry-reset",
                    f"attempt {attempts} met a reset before the headers (aiohttp raises "
                    f"ServerDisconnectedError), and {said}.",
                )
            if attempts < limit:
                raise self.broken(
                    "gave-up-early",
                    f"the server answered {', '.join(met[:attempts])}; {said} after "
                    f"{attempts} attempts, with max_attempts={limit} (the fifth would have "
                    "worked).",
                )
            raise done.error
        self.expect_file(scenario, "after four failures")
        self.judge_backoff(scenario)
        if done.result != attempts:
            raise self.broken(
                "wrong-return",
                f"{self.task} returned {clip(repr(done.result), 40)} after {attempts} attempts "
                f"(the server answered {', '.join(met[:-1])}, then sent the file).",
            )

    def busy_faults(self) -> list[str]:
        first, second, third = self.busy_statuses
        return [str(first), "a reset", str(second), str(third), "the file"]

    def judge_backoff(self, scenario: _Scenario) -> None:
        waits = self.waits(scenario)
        base, cap = RETRY["base_delay"], RETRY["max_delay"]
        if not any(waits):
            raise self.broken(
                "no-backoff",
                f"between its {len(waits) + 1} attempts, {self.task} asked asyncio.sleep for no "
                "delay at all: the retries came back at once.",
            )
        over = [wait for wait in waits if wait > cap * 1.01 + 1e-6]
        if over:
            raise self.broken(
                "backoff-over-cap",
                f"between attempts {self.task} asked asyncio.sleep for {_delays(waits)} s; "
                f"with max_delay={cap} no wait may be longer (there was no Retry-After).",
            )
        # The loop records a delay a few microseconds short of what was asked.
        steps = {min(cap, base * 2**k) for k in range(12)}
        fixed = max(waits) - min(waits) < 1e-4 or all(
            any(abs(wait - step) < 1e-4 for step in steps) for wait in waits
        )
        if len(waits) >= 3 and fixed:
            raise self.broken(
                "no-jitter",
                f"between attempts {self.task} asked asyncio.sleep for exactly {_delays(waits)} "
                "s: no randomness, so clients that failed together retry together.",
            )

    def expect_file(self, scenario: _Scenario, when: str) -> None:
        assert scenario.remote is not None and scenario.done is not None
        expect_content(
            self.table, self.task, scenario.dest, scenario.remote,
            hint="on a 206 append the rest after the bytes already there (and keep hashing); "
            "on a 200 start the file over.",
        )  # fmt: skip
        _expect_no_leftovers(self.table, scenario.done.events, {scenario.dest}, self.directory,
                             f"a download that worked {when}")  # fmt: skip

    def judge_cut(self, scenario: _Scenario) -> None:
        remote = scenario.remote
        assert remote is not None
        done = self.expect_ended(scenario, "a connection cut halfway")
        gets = remote.gets()
        if done.error is not None:
            said = f"{self.task} {self.raised_text(done)}"
            if len(gets) <= 1:
                raise self.broken(
                    "no-retry-drop",
                    f"the connection was cut at byte {remote.cut_from_zero} of {remote.size} "
                    f"(aiohttp raises ClientPayloadError), and {said} after 1 attempt.",
                )
            self.judge_resume_headers(remote, said)
            partial = [served for served in gets if served.status == 206]
            if partial and partial[-1].complete:
                raise self.broken(
                    "resume-failed",
                    f"the resume `Range: {partial[-1].range}` got the rest of the file (206, "
                    f"{partial[-1].sent} bytes), then {said}{_where(done.error)}.",
                )
            raise done.error
        self.expect_file(scenario, "after a cut connection")
        attempts = len(self.attempts(scenario))
        if done.result != attempts:
            raise self.broken(
                "wrong-return",
                f"{self.task} returned {clip(repr(done.result), 40)} after {attempts} "
                "attempts (a cut, then the rest).",
            )

    def judge_resume_headers(self, remote: Remote, said: str) -> None:
        """The headers of the requests after a cut, as the server received them."""
        later = remote.gets()[1:]
        if all(served.range is None for served in later):
            raise self.broken(
                "restarted-from-zero",
                f"after the connection dropped, each retry asked for the whole file again (no "
                f"Range header; the server answered {_statuses(later)}), and it was cut at the "
                f"same byte every time; then {said}.",
            )
        for served in later:
            if served.if_range is not None and served.if_range.strip() != remote.etag(1):
                raise self.broken(
                    "if-range-mismatch",
                    f"the resume carried `If-Range: {clip(served.if_range, 40)}`, but the ETag "
                    f"the server sent was `{remote.etag(1)}`: it did not match, so the server "
                    "ignored the Range and sent the whole file again.",
                )

    def judge_changed(self, scenario: _Scenario) -> None:
        remote = scenario.remote
        assert remote is not None
        done = self.expect_ended(scenario, "a file republished between two attempts")
        later = remote.gets()[1:]
        spliced = [s for s in later if s.range is not None and s.if_range is None]
        if spliced and (done.error is not None or not _holds(scenario.dest, remote)):
            raise self.broken(
                "no-if-range",
                f"the file was republished after the cut (its ETag changed from "
                f"{remote.etag(1)} to {remote.etag(2)}); the resume carried `Range: "
                f"{spliced[0].range}` without If-Range, so the server sent the rest of the NEW "
                f"version (206) for the start of the old one; {self.task} "
                f"{self.raised_text(done)}.",
            )
        if done.error is not None:
            if not later:
                raise self.broken(
                    "no-retry-drop",
                    f"the connection was cut at byte {remote.cut_from_zero} and {self.task} "
                    f"{self.raised_text(done)} after 1 attempt.",
                )
            whole = [s for s in later if s.status == 200 and s.complete]
            if whole:
                raise self.broken(
                    "restart-mishandled",
                    f"after the cut the server sent the whole new version (200: the If-Range "
                    f"no longer matched), then {self.task} {self.raised_text(done)}"
                    f"{_where(done.error)}.",
                )
            raise done.error
        if not _holds(scenario.dest, remote):
            raise self.broken(
                "restart-mishandled",
                "after the cut the server sent the whole new version (200), and `dest` does "
                "not hold it: on a 200, start the file and the digest over.",
            )
        self.expect_file(scenario, "after the file was republished")

    def judge_down(self, scenario: _Scenario) -> None:
        remote = scenario.remote
        assert remote is not None and scenario.done is not None
        done = scenario.done
        limit = scenario.options["max_attempts"]
        attempts = len(self.attempts(scenario)) or len(remote.gets())
        if attempts > limit:
            going = " (still going when the check stopped it)" if done.timed_out else ""
            raise self.broken(
                "attempt-limit-ignored",
                f"with max_attempts={limit}, a server that keeps failing was requested "
                f"{attempts} times{going}.",
            )
        self.expect_ended(scenario, "a server that fails for good")
        self.expect_raised(scenario, f"{limit} failed attempts")
        last = self.down_statuses[-1]
        if attempts < limit:
            raise self.broken(
                "gave-up-early",
                f"with max_attempts={limit}, {self.task} {self.raised_text(done)} after "
                f"{attempts} attempts.",
            )
        error = done.error
        if not (isinstance(error, aiohttp.ClientResponseError) and error.status == last):
            raise self.broken(
                "wrong-error-raised",
                f"the last attempt got a {last}, but {self.task} raised {_short(error)}"  # type: ignore[arg-type]
                f"{_where(error)}: the caller must see the last error.",  # type: ignore[arg-type]
            )
        self.expect_nothing_left(scenario, f"{limit} failed attempts (the first cut halfway)")

    def judge_limited(self, scenario: _Scenario) -> None:
        done = self.expect_ended(scenario, "a 429 with Retry-After")
        if done.error is not None:
            if len(self.attempts(scenario)) <= 1:
                raise self.broken(
                    "no-retry-429",
                    f"the server answered 429 with `Retry-After: {RETRY_AFTER}`, and "
                    f"{self.task} {self.raised_text(done)} after 1 attempt.",
                )
            raise done.error
        waits = self.waits(scenario)
        if waits and waits[0] < RETRY_AFTER * 0.99:
            raise self.broken(
                "ignored-retry-after",
                f"the server answered 429 with `Retry-After: {RETRY_AFTER}`, and {self.task} "
                f"asked asyncio.sleep for {waits[0]:.3g} s before the next attempt.",
            )
        self.expect_file(scenario, "after a 429")

    def judge_stalled(self, scenario: _Scenario) -> None:
        remote = scenario.remote
        assert remote is not None
        limit = scenario.options["max_attempts"]
        read = self.lent.session.timeout.sock_read
        done = self.expect_ended(scenario, "a server that says nothing")
        requests = len(remote.gets())
        if requests < limit:
            raise self.broken(
                "no-retry-timeout",
                f"the server sent nothing for {3 * read:g} s (the session's sock_read is "
                f"{read:g} s) and {self.task} {self.raised_text(done)} after "
                f"{plural(requests, 'attempt')}, with max_attempts={limit}.",
            )
        if requests > limit:
            raise self.broken(
                "attempt-limit-ignored",
                f"with max_attempts={limit}, a server that stalls was requested {requests} "
                "times.",
            )
        self.expect_raised(scenario, f"{limit} timeouts")
        self.expect_nothing_left(scenario, f"{limit} timeouts")


def _holds(path: str, remote: Remote) -> bool:
    if not os.path.exists(path) or os.path.getsize(path) != remote.size:
        return False
    with open(path, "rb") as file:
        return file.read() == remote.content()


def _delays(waits: list[float]) -> str:
    return ", ".join(f"{wait:.3g}" for wait in waits)


def _statuses(requests: list[Any]) -> str:
    return ", ".join(str(served.status) for served in requests) or "nothing"


@check(DOWNLOAD_WITH_RETRY, timeout=25)
async def download_with_retry(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_with_retry(session, url, dest, sha256, **RETRY) -> int``: attempts made."""
    task = "download_with_retry"
    rng = random.Random(f"{SEED}-{task}")
    obs = observe.current()
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as directory, DiskWatch() as watch:
        async with FileServer(f"{SEED}-{task}") as files, _lent_session() as lent, \
                _untrusted_site() as tls_port:  # fmt: skip
            lent.resolver.ports[UNTRUSTED_HOST] = tls_port
            run = _RetryCheck(learner, lent, files, directory, watch, rng)
            obs.on_sleep.append(run.listen)
            slow: list[asyncio.Task] = []
            try:
                limited = run.scenario(Remote(
                    "limited.bin", 200_000 + rng.randrange(1, CHUNK),
                    faults=[status(429, RETRY_AFTER)],
                ))  # fmt: skip
                read = lent.session.timeout.sock_read
                stalled = run.scenario(
                    Remote("stalled.bin", 100_000, faults=[], then=stall(3 * read)),
                    max_attempts=2,
                )
                # Two attempts, each waiting out sock_read, with room to spare.
                stalled.seconds = SCENARIO_SECONDS + 2 * read
                slow = [asyncio.create_task(run.run(s)) for s in (limited, stalled)]
                await _quick_scenarios(run, rng, directory)
                await asyncio.gather(*slow)
                await files.idle()
                run.judge_limited(limited)
                run.judge_stalled(stalled)
            finally:
                for job in slow:
                    job.cancel()
                await asyncio.gather(*slow, return_exceptions=True)
                obs.on_sleep.remove(run.listen)
            expect_off_loop(run.table, watch, task, [directory])
            _expect_closed(run.table, watch, watch.events, "the downloads")
    return (
        "a 404, another 4xx, an unknown host and an untrusted certificate raised at once; "
        "statuses and a reset retried with jittered, capped backoff; a cut resumed with Range "
        "and If-Range; a republished file started over; Retry-After honoured; the limit kept."
    )


async def _quick_scenarios(run: _RetryCheck, rng: random.Random, directory: str) -> None:
    gone = run.scenario(Remote("gone.bin", 100_000, faults=[status(404)]))
    denied = run.scenario(Remote("denied.bin", 100_000, faults=[status(run.other_4xx)]))
    for scenario in (gone, denied):
        run.judge_4xx(await run.run(scenario))
    unknown = _Scenario("dns.bin", f"http://{UNKNOWN_HOST}/dns.bin",
                        os.path.join(directory, "dns.bin"), "0" * 64)  # fmt: skip
    port = run.lent.resolver.ports[UNTRUSTED_HOST]
    untrusted = _Scenario("cert.bin", f"https://{UNTRUSTED_HOST}:{port}/cert.bin",
                          os.path.join(directory, "cert.bin"), "0" * 64)  # fmt: skip
    run.judge_permanent(await run.run(unknown), "an unknown host", "ClientConnectorDNSError")
    run.judge_permanent(
        await run.run(untrusted), "a server whose certificate no one trusts",
        "ClientConnectorCertificateError",
    )  # fmt: skip
    first, second, third = run.busy_statuses
    busy = run.scenario(Remote(
        "busy.bin", 150_000 + rng.randrange(1, CHUNK),
        # aiohttp resends a GET once after a reset, so one reset the learner sees is two here
        faults=[status(first), RESET, RESET, status(second), status(third)],
    ))  # fmt: skip
    run.judge_busy(await run.run(busy))
    size = 500_000 + rng.randrange(1, CHUNK)
    cut_file = run.scenario(Remote("cut.bin", size, cut_from_zero=size // 2 + rng.randrange(999)))
    run.judge_cut(await run.run(cut_file))
    size = 400_000 + rng.randrange(1, CHUNK)
    changed = run.scenario(Remote(
        "changed.bin", size, cut_from_zero=size // 3 + rng.randrange(999), changes_after=1,
    ))  # fmt: skip
    run.judge_changed(await run.run(changed))
    size = 300_000 + rng.randrange(1, CHUNK)
    fourth, fifth = run.down_statuses
    down = run.scenario(
        Remote("down.bin", size, faults=[cut(size // 2), status(fourth)], then=status(fifth)),
        max_attempts=3,
    )
    run.judge_down(await run.run(down))


# --- Task 3: download_all ------------------------------------------------------------------------

REPORT_KEYS = ("ok", "bytes", "attempts", "error")

DOWNLOAD_ALL = Task(
    "download_all",
    Rule(
        "one-failure-stops-all",
        "never let one file's failure stop the others or the report",
        "download_all with a 404 and wrong bytes among the jobs: it must return a report",
        "catch the failure per file, inside the coroutine you gather, and put it in that "
        "file's report entry.",
    ),
    Rule(
        "session-per-file",
        "Use **one** session for all of them",
        "the sessions created while download_all ran (two calls at once: two sessions)",
        "create one `aiohttp.ClientSession` in download_all and pass it to every download.",
    ),
    Rule(
        "session-left-open",
        "Close the session before returning",
        "the sessions still open after download_all returned",
        "use `async with aiohttp.ClientSession(...) as session:`.",
    ),
    Rule(
        "total-timeout",
        "a timeout fit for long downloads (`total=None`",
        "the timeout of the session download_all created",
        "`aiohttp.ClientTimeout(total=None, sock_connect=..., sock_read=...)`: catch stalls, "
        "not long downloads.",
    ),
    Rule(
        "no-stall-timeout",
        "and `sock_read` to catch a stalled server",
        "the timeout of the session download_all created",
        "set `sock_read` (for example 30 s): the longest wait for the next bytes.",
    ),
    Rule(
        "unbounded",
        "never more than `concurrency` at a time",
        "the downloads in flight at once on the server, with concurrency 2 and 4",
        "one `asyncio.Semaphore(concurrency)`, made from the argument (not a number), shared "
        "by every download.",
    ),
    Rule(
        "sequential",
        "run the downloads **concurrently**",
        "the downloads in flight at once on the server: more than one",
        "start every download at once with `asyncio.gather(...)` and let the semaphore hold "
        "back all but `concurrency` of them.",
    ),
    Rule(
        "slot-held-while-waiting",
        "so that a file waiting between attempts holds no slot",
        "while a file waits out `Retry-After: 1`, the other downloads in flight on the server "
        "(concurrency 4, files queued): there must be 4",
        "hold the semaphore only around each attempt, not around the retries: pass `slots` "
        "to download_with_retry and keep the `asyncio.sleep()` outside `async with slots:`.",
    ),
    Rule(
        "connect-timeout-in-queue",
        "a timeout fit for long downloads",
        "healthy files that failed or needed retries while the session's timeout had "
        "`connect`, which counts the wait for a pooled connection",
        "let the downloads wait in the semaphore, not in the pool's queue, and use "
        "`sock_connect` rather than `connect`.",
    ),
    Rule(
        "wrong-return-type",
        "return a report: one dict per job",
        "the type of what download_all returned",
        "return a list: `await asyncio.gather(...)` of one dict per job.",
    ),
    Rule(
        "wrong-count",
        "one dict per job",
        "the number of entries in the report",
        "return one entry per job, failures included.",
    ),
    Rule(
        "report-order",
        "in the order of `jobs`",
        "the report's entries matched to the jobs by their sizes: the first files finish "
        "last",
        "`asyncio.gather` returns results in the order of its arguments; `as_completed` and "
        "appending as files finish do not.",
    ),
    Rule(
        "wrong-report",
        "the keys `ok`, `bytes`, `attempts`, `error`",
        "each entry's keys and values, compared with what happened to its file",
        "for a success: ok=True, bytes=its size, attempts=what download_with_retry returned, "
        "error=None; for a failure: ok=False, bytes=0, attempts=None, error a short text.",
    ),
    Rule(
        "blocked-loop",
        "with your `download_with_retry` (its writes off the loop)",
        "the bytes read or written on the loop's thread",
        "write each chunk in a worker thread: `await asyncio.to_thread(file.write, chunk)`.",
    ),
    *_files_rules(),
)


@dataclass
class _Batch:
    """One call of download_all: its jobs, what each should end as, and its remotes."""

    key: str
    concurrency: int
    directory: str
    remotes: list[Remote]
    jobs: list[tuple[str, str, str]]
    attempts: list[int | None]  # what each entry must report; None for a failure
    limited: Remote | None = None
    report: Any = None
    error: BaseException | None = None
    events: list[DiskEvent] = field(default_factory=list)

    def peak(self) -> int:
        return peak_overlap(
            (served.start, served.end if served.end is not None else served.start + 1e9)
            for remote in self.remotes for served in remote.gets()
        )  # fmt: skip


def _batches(files: FileServer, root: str, rng: random.Random) -> list[_Batch]:
    """Concurrency 2 and 4, throttled files whose first ones take longest, every failure."""
    batches = []
    for key, concurrency, count, with_429 in (("a", 2, 4, False), ("b", 4, 7, True)):
        directory = os.path.join(root, key)
        os.mkdir(directory)
        specs: list[tuple[Remote, int | None, str | None]] = []
        if with_429:
            specs.append((Remote(f"{key}-limited.bin", 40_000 + rng.randrange(999),
                                 faults=[status(429, RETRY_AFTER)]), 2, None))  # fmt: skip
        for index in range(count):
            size = 120_000 + 14_000 * (count - index) + rng.randrange(999)
            rate = 400_000 + 120_000 * index  # the first files are the slowest
            specs.append((Remote(f"{key}-file{index}.bin", size, rate=rate), 1, None))
        specs.insert(2, (Remote(f"{key}-missing.bin", 30_000, faults=[status(404)]), None, None))
        specs.insert(4, (Remote(f"{key}-busy.bin", 50_000 + rng.randrange(999),
                                faults=[status(503)], rate=300_000), 2, None))  # fmt: skip
        tampered = Remote(f"{key}-tampered.bin", 45_000 + rng.randrange(999))
        specs.insert(5, (tampered, None, Remote(f"{key}-other.bin", tampered.size).sha256()))
        if not with_429:
            size = 90_000 + rng.randrange(999)
            specs.append((Remote(f"{key}-cut.bin", size, cut_from_zero=size // 2, rate=400_000),
                          2, None))  # fmt: skip
        remotes = [files.add(remote) for remote, _, _ in specs]
        jobs = [
            (remote.url, os.path.join(directory, remote.name.split("-", 1)[1]),
             sha256 or remote.sha256())
            for remote, _, sha256 in specs
        ]  # fmt: skip
        batch = _Batch(key, concurrency, directory, remotes, jobs, [a for _, a, _ in specs])
        if with_429:
            batch.limited = remotes[0]
        batches.append(batch)
    return batches


@check(DOWNLOAD_ALL, timeout=25)
async def download_all(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_all(jobs, concurrency) -> list[dict]``: one session, bounded, reported."""
    task = "download_all"
    rng = random.Random(f"{SEED}-{task}")
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as root, DiskWatch() as watch:
        async with FileServer(f"{SEED}-{task}") as files:
            batches = _batches(files, root, rng)

            async def run(batch: _Batch) -> None:
                done = await _call(
                    watch, batch.key, "",
                    lambda: call_async(task, learner, batch.jobs, batch.concurrency), 20,
                )  # fmt: skip
                batch.report, batch.error, batch.events = done.result, done.error, done.events
                if done.timed_out:
                    raise DOWNLOAD_ALL.broken(
                        "timeout",
                        f"{task} was still running after {done.seconds:g} s, so the check "
                        "stopped it.",
                    )

            await asyncio.gather(*(run(batch) for batch in batches))
            await files.idle()
            left_open = spy.left_open
        for batch in batches:
            if batch.error is not None:
                raise DOWNLOAD_ALL.broken(
                    "one-failure-stops-all",
                    f"{task} raised {_short(batch.error)}{_where(batch.error)}: one failed file "
                    f"must not take the report of the other {len(batch.jobs) - 1} with it.",
                )
        _judge_sessions(spy, left_open, len(batches))
        for batch in batches:
            _judge_bound(batch)
        for batch in batches:
            entries = _judge_report_shape(batch)
            _judge_queue_timeouts(spy, batch, entries)
            _judge_entries(batch, entries)
        for batch in batches:
            _judge_disk(watch, batch)
        expect_off_loop(DOWNLOAD_ALL, watch, task, [b.directory for b in batches])
        for batch in batches:
            _judge_slot(batch)
    return (
        "one session per call, never more than `concurrency` downloads at a time but not one "
        "by one (2 and 4), no slot held through a Retry-After wait, and a report in the order "
        "of the jobs in which the 404 and the wrong checksum failed and the rest succeeded."
    )


def _judge_sessions(spy: SessionSpy, left_open: int, calls: int) -> None:
    if spy.created > calls:
        raise DOWNLOAD_ALL.broken(
            "session-per-file",
            f"{plural(spy.created, 'session')} were created for {calls} calls of download_all: "
            "each session opens its own connections, and no bound is shared.",
        )
    if left_open:
        raise DOWNLOAD_ALL.broken(
            "session-left-open", f"download_all returned with {plural(left_open, 'session')} "
            "still open.",
        )  # fmt: skip
    for session in spy.sessions:
        timeout = session.timeout
        if timeout.total is not None:
            raise DOWNLOAD_ALL.broken(
                "total-timeout",
                f"the session's timeout has total={timeout.total:g} s: any download that takes "
                "longer is killed, however healthy, and again on every retry.",
            )
        if timeout.sock_read is None:
            raise DOWNLOAD_ALL.broken(
                "no-stall-timeout",
                "the session's timeout has no `sock_read`: a server that stops sending "
                "mid-file hangs the download forever.",
            )


def _judge_bound(batch: _Batch) -> None:
    peak = batch.peak()
    if peak > batch.concurrency:
        raise DOWNLOAD_ALL.broken(
            "unbounded",
            f"with concurrency={batch.concurrency}, the server had {peak} downloads in flight at "
            f"once (of {len(batch.jobs)} jobs).",
        )
    if peak < 2:
        raise DOWNLOAD_ALL.broken(
            "sequential",
            f"with concurrency={batch.concurrency}, the server never had more than one download "
            f"in flight: the {len(batch.jobs)} files went one after the other.",
        )


def _judge_report_shape(batch: _Batch) -> list[dict]:
    report = batch.report
    if not isinstance(report, (list, tuple)):
        raise DOWNLOAD_ALL.broken(
            "wrong-return-type",
            f"download_all returned {type(report).__name__}; expected a list of "
            f"{len(batch.jobs)} dicts.",
        )
    if len(report) != len(batch.jobs):
        raise DOWNLOAD_ALL.broken(
            "wrong-count",
            f"download_all returned {len(report)} entries for {len(batch.jobs)} jobs.",
        )
    for entry in report:
        if not isinstance(entry, dict) or not set(REPORT_KEYS) <= set(entry):
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"a report entry is {clip(repr(entry), 100)}; expected a dict with the keys "
                f"{', '.join(REPORT_KEYS)}.",
            )
    return list(report)


def _expected(batch: _Batch) -> list[tuple[bool, int, int | None]]:
    rows = []
    for remote, attempts in zip(batch.remotes, batch.attempts, strict=True):
        rows.append((attempts is not None, remote.size if attempts else 0, attempts))
    return rows


def _judge_queue_timeouts(spy: SessionSpy, batch: _Batch, entries: list[dict]) -> None:
    connects = [s.timeout.connect for s in spy.sessions if s.timeout.connect is not None]
    if not connects:
        return
    troubled = [
        remote.name.split("-", 1)[1]
        for remote, entry, attempts in zip(batch.remotes, entries, batch.attempts, strict=True)
        if attempts == 1 and (not entry["ok"] or entry["attempts"] != 1)
    ]
    if troubled:
        raise DOWNLOAD_ALL.broken(
            "connect-timeout-in-queue",
            f"healthy files ({', '.join(troubled[:3])}) needed retries or failed. The session's "
            f"timeout has connect={connects[0]:g} s, and `connect` also counts the time a "
            "request waits for a free connection in the pool.",
        )


def _judge_entries(batch: _Batch, entries: list[dict]) -> None:
    expected = _expected(batch)
    got = [(bool(e["ok"]), e["bytes"], e["attempts"]) for e in entries]
    names = [remote.name.split("-", 1)[1] for remote in batch.remotes]
    if got != expected and sorted(got, key=repr) == sorted(expected, key=repr):
        order = [names[expected.index(row)] for row in got[:4]]
        raise DOWNLOAD_ALL.broken(
            "report-order",
            f"the report's entries are those of the jobs, in another order: it starts with "
            f"{', '.join(order)}, but the jobs start with {', '.join(names[:4])} (the first "
            "ones finish last).",
        )
    for name, entry, (ok, size, attempts) in zip(names, entries, expected, strict=True):
        if bool(entry["ok"]) != ok:
            what = "failed" if not ok else "succeeded"
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"{name} {what}, but its entry says ok={entry['ok']!r} (a 404 and a wrong "
                "checksum fail; a 503 or a 429 once, or a cut connection, then the file, "
                "succeed).",
            )
        if ok and (entry["bytes"] != size or entry["error"] is not None):
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"{name} succeeded, but its entry says bytes={clip(repr(entry['bytes']), 30)}, "
                f"error={clip(repr(entry['error']), 40)} (its file has {size} bytes).",
            )
        if ok and entry["attempts"] != attempts:
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"{name} took {attempts} attempts, but its entry says "
                f"attempts={clip(repr(entry['attempts']), 30)}: put what download_with_retry "
                "returned there.",
            )
        if not ok and (not isinstance(entry["error"], str) or not entry["error"].strip()):
            error = entry["error"]
            what = repr(error) if error in (None, "") else f"a {type(error).__name__} object"
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"{name} failed, but its entry's `error` is {what}, not a short text.",
            )
        if not ok and (entry["bytes"] != 0 or entry["attempts"] is not None):
            raise DOWNLOAD_ALL.broken(
                "wrong-report",
                f"{name} failed, but its entry says bytes={clip(repr(entry['bytes']), 30)}, "
                f"attempts={clip(repr(entry['attempts']), 30)} (expected 0 and None).",
            )


def _judge_disk(watch: DiskWatch, batch: _Batch) -> None:
    keep = set()
    for remote, (_url, dest, _sha), attempts in zip(batch.remotes, batch.jobs, batch.attempts,
                                                    strict=True):  # fmt: skip
        if attempts is not None:
            keep.add(dest)
            if not _holds(dest, remote):
                how = describe_file(dest, remote.content()) if os.path.exists(dest) else "is absent"
                raise DOWNLOAD_ALL.broken(
                    "wrong-report",
                    f"{os.path.basename(dest)} is reported ok, but the file at its `dest` {how}.",
                    "`ok` is True only when download_with_retry returned for that job's own "
                    "`dest` and `sha256`.",
                )
        elif os.path.exists(dest):
            raise DOWNLOAD_ALL.broken(
                "partial-file-left",
                f"{os.path.basename(dest)} failed, yet a file of {os.path.getsize(dest)} bytes "
                "sits under its name.",
            )
    events = [e for e in batch.events if e.path.startswith(os.path.realpath(batch.directory))
              or e.scenario == batch.key]  # fmt: skip
    _expect_no_leftovers(DOWNLOAD_ALL, events, keep, batch.directory, "the failed downloads")
    _expect_closed(DOWNLOAD_ALL, watch, events, "download_all")


def _judge_slot(batch: _Batch) -> None:
    """While the 429's file waited out its Retry-After, the other downloads had every slot."""
    limited = batch.limited
    if limited is None:
        return
    own = limited.gets()
    if len(own) < 2 or own[0].end is None:
        return  # not retried: the report's checks have said so already
    waited_from, waited_to = own[0].end, own[1].start
    others = [
        (max(served.start, waited_from),
         min(waited_to, served.end if served.end is not None else waited_to))
        for remote in batch.remotes if remote is not limited for served in remote.gets()
    ]  # fmt: skip
    peak = peak_overlap((start, end) for start, end in others if start < end)
    if peak < batch.concurrency:
        raise DOWNLOAD_ALL.broken(
            "slot-held-while-waiting",
            f"{limited.name.split('-', 1)[1]} answered 429 with `Retry-After: {RETRY_AFTER}`, "
            f"and while it waited the server never had more than "
            f"{plural(peak, 'other download')} in flight although {batch.concurrency} slots "
            "were allowed and files were queued: the waiting file kept its slot.",
        )
