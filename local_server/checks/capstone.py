"""Checks for exercise 15, the capstone downloader: ``from local_server.checks import capstone``.

Each check gives the learner's code destinations in a fresh temporary directory (removed
afterwards) and watches, as exercise 09's checks do, every file opened for writing there:
how many bytes were written on the event loop's thread, which names were opened, and whether
each was closed. The faults come from the course server: ``/files/{size}?fail=N&key=K`` (503
or 429, with ``Retry-After``, N times), ``?break_at=N`` (the connection drops at byte N of a
request from byte 0; a resumed one completes), ``?name=`` (other bytes than the announced
SHA-256), a path that is a 404, and ``/slow/headers/{s}`` (a server that says nothing). The
verdicts rest on what the server saw (its call log and timeline, its ``max_in_flight``), on
what is on disk, and on what the learner returned or raised.

- ``download_file(session, url, dest, sha256) -> int``: one file, streamed off the loop in
  bounded memory, verified, and atomic (nothing under ``dest`` unless it is complete, and no
  temporary file left behind).
- ``download_with_retry(session, url, dest, sha256, *, max_attempts, base_delay, max_delay)
  -> int`` (attempts made): transient faults retried with backoff and ``Retry-After``, a
  dropped connection resumed with ``Range``, a 404 never retried, the attempt limit kept. The
  quick faults come first; the 1 s ``Retry-After`` and the stalled server run side by side.
- ``download_all(jobs, concurrency) -> list[dict]``: one session, at most ``concurrency``
  downloads at a time but more than one, no ``connect`` timeout spent queueing for the pool,
  no slot held while a file waits out a ``Retry-After``, and a report with one entry per job.
"""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import threading
from typing import Any

import aiohttp

from ..files import file_sha256
from ..runner import LocalServer
from .disk_writes import (
    ATOMIC_HINT,
    WriteLog,
    completed_statuses,
    expect_absent,
    expect_file,
    expect_not_blocking,
    tracked_writes,
)
from .harness import (
    Mistake,
    PeakMemory,
    SessionSpy,
    call_async,
    check,
    expect_one_result_per_url,
    fail_log,
    gaps,
    learner_frame,
    peak_overlap,
    plural,
    until_idle,
)

LARGE_SIZE = 8 * 1024 * 1024
SMALL_SIZE = 300_000
CUT_SIZE = 1024 * 1024
CUT_AT = 400_000
# Throttled so that no byte is lost in aiohttp's buffer when the connection drops.
CUT_RATE = 4 * 1024 * 1024
# The session the checks of tasks 1 and 2 lend: long downloads allowed, stalls caught.
CHECK_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=0.3)
# Well past CHECK_TIMEOUT.sock_read, so that a late timer on a loaded machine still fires first.
STALL_SECONDS = 0.8
# The retry options task 2 is called with.
RETRY = {"max_attempts": 5, "base_delay": 0.1, "max_delay": 0.5}
# Three full-jitter waits of RETRY sum to 0.35 s on average and stay under this once in
# about 6000 runs; three retries that do not wait take a few milliseconds.
NO_BACKOFF_SECONDS = 0.02
RETRY_AFTER = 1
# Task 3: throttled files so that downloads that run together overlap on the server.
ALL_SIZES = (96_000, 97_000, 98_000, 99_000, 100_000, 101_000)
ALL_RATE = 640_000
CONCURRENCY = 3
# Task 3: the file that answers 429 with Retry-After once; while it waits, the others should
# have every slot.
LIMITED_SIZE = 92_000
LONG_DOWNLOAD_SECONDS = 3600


def _opened(log: WriteLog) -> list[str]:
    """The real paths of the files the learner opened for writing in the check's directory."""
    return [os.path.realpath(handle.name) for handle in log.handles if isinstance(handle.name, str)]


def _expect_closed(task: str, log: WriteLog) -> None:
    open_files = [handle for handle in log.handles if not handle.closed]
    if open_files:
        raise Mistake(
            "file-left-open",
            f"{task} returned with {plural(len(open_files), 'file')} it opened for writing "
            "still open: its last bytes may not be on disk yet, and the handle leaks.",
            "open the file with `with open(path, 'wb') as file:` so it is closed whatever happens.",
        )


def _short(error: BaseException) -> str:
    """``Type: message`` of an error, without a ClientResponseError's long request details."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__}: {error.status} {error.message}"
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 160 else text[:157] + "..."


async def _outcome(call: Any) -> tuple[Any, BaseException | None]:
    """Await the learner's coroutine: (its result, None), or (None, what it raised)."""
    try:
        return await call, None
    except (NotImplementedError, Mistake):
        raise
    except Exception as exc:
        return None, exc


async def _raised(call: Any) -> BaseException | None:
    """Await the learner's coroutine; what it raised, or None if it returned."""
    return (await _outcome(call))[1]


def _swallowed(task: str, what: str, problem: str = "failure-swallowed") -> Mistake:
    return Mistake(
        problem,
        f"{task} returned normally after {what}; the caller believes the download worked.",
        "let the failure propagate as an exception (no bare `except`), and compare the "
        "SHA-256 of what arrived with `sha256` before giving the file its final name.",
    )


def _healthy_download_raised(task: str, error: BaseException) -> Mistake:
    frame = learner_frame(error)
    where = f" (line {frame.lineno} of {frame.name}())" if frame is not None else ""
    return Mistake(
        "healthy-download-failed",
        f"{task} raised {_short(error)}{where} for a healthy {LARGE_SIZE // 2**20} MiB "
        "download whose SHA-256 is exactly `sha256`.",
        "`sha256` is hex text: compare it with `digest.hexdigest()` (not `digest.digest()`), "
        "and raise only when the status is an error or the digests differ.",
    )


def _expect_no_leftovers(directory: str, finished: set[str]) -> None:
    """Only the finished downloads remain in ``directory``: no temporary file was left."""
    leftovers = sorted(set(os.listdir(directory)) - finished)
    if leftovers:
        raise Mistake(
            "temp-file-left",
            f"after the failed downloads, {', '.join(leftovers)} "
            f"{'is' if len(leftovers) == 1 else 'are'} still in the destination's directory: "
            "temporary files pile up with every failure.",
            "remove the temporary file whatever happens: "
            "`finally: if os.path.exists(part): os.remove(part)`.",
        )


RAISE_FIRST_HINT = "call `response.raise_for_status()` before writing anything."


# --- Task 1: download_file -------------------------------------------------------------------


@check("download_file", timeout=20)
async def download_file(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_file(session, url, dest, sha256) -> int``: streamed, verified, atomic."""
    task = "download_file"
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as directory:
        log = WriteLog(directory, threading.get_ident())
        with tracked_writes(log):
            async with aiohttp.ClientSession(timeout=CHECK_TIMEOUT) as session:
                name = "large.bin"
                dest = os.path.join(directory, name)
                url = f"{server.url}/files/{LARGE_SIZE}?name={name}"
                with PeakMemory() as memory:
                    result, error = await _outcome(
                        call_async(task, learner, session, url, dest, file_sha256(LARGE_SIZE, name))
                    )
                if error is not None:
                    raise _healthy_download_raised(task, error)
                _expect_closed(task, log)
                expect_file(task, dest, LARGE_SIZE, name)
                if memory.peak > LARGE_SIZE // 2:
                    raise Mistake(
                        "whole-body-in-memory",
                        f"memory peaked at {memory.peak / 2**20:.0f} MiB for a "
                        f"{LARGE_SIZE // 2**20} MiB download: the whole body was held in memory.",
                        "never `await response.read()` a file: "
                        "`async for chunk in response.content.iter_chunked(64 * 1024):`.",
                    )
                expect_not_blocking(task, log)
                if os.path.realpath(dest) in _opened(log):
                    raise Mistake(
                        "writes-final-name",
                        f"{task} wrote the bytes straight into `dest`: while it runs, or if the "
                        "program dies halfway, a partial file sits under the final name.",
                        ATOMIC_HINT,
                    )
                if result != LARGE_SIZE:
                    raise Mistake(
                        "wrong-return",
                        f"{task} returned {result!r}; expected the number of bytes written, "
                        f"{LARGE_SIZE}.",
                        "count `len(chunk)` as you write, and return the total.",
                    )
                os.remove(dest)

                missing = f"{server.url}/downloads/missing.bin"
                error = await _raised(
                    call_async(task, learner, session, missing, dest, file_sha256(SMALL_SIZE))
                )
                if error is None and not os.path.exists(dest):
                    raise _swallowed(task, "a 404")
                expect_absent(dest, "error-page-saved", "a 404", RAISE_FIRST_HINT)

                name = "cut.bin"
                cut = f"{server.url}/files/{SMALL_SIZE}?name={name}&break_at={SMALL_SIZE // 2}"
                error = await _raised(
                    call_async(task, learner, session, cut, dest, file_sha256(SMALL_SIZE, name))
                )
                expect_absent(dest, "partial-file-left", "a dropped connection")
                if error is None:
                    raise _swallowed(task, "the connection dropped halfway")

                tampered = f"{server.url}/files/{SMALL_SIZE}?name=tampered.bin"
                error = await _raised(
                    call_async(
                        task, learner, session, tampered, dest, file_sha256(SMALL_SIZE, "real.bin")
                    )
                )
                if error is None:
                    raise _swallowed(
                        task, "a download whose bytes do not match `sha256`", "checksum-ignored"
                    )
                expect_absent(
                    dest,
                    "unverified-file-left",
                    "a SHA-256 mismatch",
                    "compare the digest before `os.replace(temp, dest)`, and remove the "
                    "temporary file when it does not match.",
                )
                _expect_closed(task, log)
                _expect_no_leftovers(directory, set())
    return (
        f"{LARGE_SIZE // 2**20} MiB streamed in bounded memory, written off the event loop "
        "and verified; a 404, a dropped connection and a wrong checksum each raised and left "
        "nothing under the final name."
    )


# --- Task 2: download_with_retry -------------------------------------------------------------


RETRY_HINT = (
    "retry transient failures (408, 429, 5xx from `raise_for_status()`, "
    "`ClientConnectionError`, `ClientPayloadError`, `TimeoutError`) until `max_attempts` "
    "calls were made."
)


def _gave_up(task: str, calls: int, error: BaseException, what: str, problem: str) -> Mistake:
    return Mistake(
        problem,
        f"{task} gave up after {plural(calls, 'call')} to a URL that {what} ({_short(error)}).",
        RETRY_HINT,
    )


class _RetryRun:
    """One run of the learner's download_with_retry against each fault, one step at a time.

    The cheap steps come first, so that most mistakes are found before the 1 s Retry-After
    wait; the two slow steps (Retry-After and the stalled server) run side by side.
    """

    task = "download_with_retry"

    def __init__(
        self, learner: Any, server: LocalServer, session: aiohttp.ClientSession, directory: str
    ) -> None:
        self.learner, self.server, self.session = learner, server, session
        self.directory = directory

    def dest(self, name: str) -> str:
        return os.path.join(self.directory, name)

    async def call(self, url: str, dest: str, sha256: str, **options: Any) -> Any:
        """(result, None) or (None, what it raised), called with RETRY and ``options``."""
        retrying = functools.partial(self.learner, **{**RETRY, **options})
        return await _outcome(call_async(self.task, retrying, self.session, url, dest, sha256))

    async def not_found(self) -> None:
        """A 404: one call, an exception, no file."""
        dest = self.dest("gone.bin")
        _, error = await self.call(f"{self.server.url}/downloads/gone.bin", dest, "0" * 64)
        requests = self.server.stats().by_path.get("/downloads/gone.bin", 0)
        if requests > 1:
            raise Mistake(
                "retried-404",
                f"a 404 was requested {requests} times: it will be a 404 every time.",
                "retry only 408, 429 and 5xx statuses; raise any other error at once.",
            )
        if error is None:
            raise _swallowed(self.task, "a 404")
        expect_absent(dest, "error-page-saved", "a 404", RAISE_FIRST_HINT)

    async def always_failing(self) -> None:
        """A server that keeps failing: max_attempts calls, then an exception."""
        dest = self.dest("down.bin")
        url = f"{self.server.url}/files/200003?fail=100&key=down"
        _, error = await self.call(url, dest, file_sha256(200_003), max_attempts=3)
        calls = await fail_log(self.session, self.server, "down")
        if len(calls) > 3:
            raise Mistake(
                "attempt-limit-ignored",
                f"with max_attempts=3, a URL that always answers 503 was called "
                f"{len(calls)} times.",
                "make at most `max_attempts` calls in all, then raise the last error.",
            )
        if error is None:
            raise _swallowed(self.task, "three 503s in a row")
        expect_absent(dest, "partial-file-left", "three 503s")

    async def busy(self) -> None:
        """Three 503s, then the file: retried, with backoff, and the attempts counted."""
        name, size = "busy.bin", 200_001
        dest = self.dest(name)
        url = f"{self.server.url}/files/{size}?name={name}&fail=3&key=busy"
        result, error = await self.call(url, dest, file_sha256(size, name))
        calls = await fail_log(self.session, self.server, "busy")
        if error is not None:
            if len(calls) == 1:
                raise _gave_up(self.task, 1, error, "answered 503", "no-retry-503")
            if len(calls) < 4:
                limit = RETRY["max_attempts"]
                what = f"answered 503 three times, with max_attempts={limit}"
                raise _gave_up(self.task, len(calls), error, what, "gave-up-early")
            raise error
        expect_file(self.task, dest, size, name)
        waited = sum(gaps(calls))
        if waited < NO_BACKOFF_SECONDS:
            raise Mistake(
                "no-backoff",
                f"the {len(calls)} calls came within {waited * 1000:.1f} ms: the "
                "retries did not wait.",
                "sleep `random.uniform(0, min(max_delay, base_delay * 2 ** attempt))` "
                "between attempts, with `await asyncio.sleep()`.",
            )
        if result != len(calls):
            raise Mistake(
                "wrong-return",
                f"{self.task} returned {result!r} after {len(calls)} calls; expected the "
                f"number of attempts, {len(calls)}.",
                "return the attempt number that succeeded (1 for the first).",
            )

    async def cut(self) -> None:
        """The connection drops at CUT_AT of a request from byte 0: resumed with Range."""
        name = "cut.bin"
        dest = self.dest(name)
        url = f"{self.server.url}/files/{CUT_SIZE}?name={name}&break_at={CUT_AT}&rate={CUT_RATE}"
        _, error = await self.call(url, dest, file_sha256(CUT_SIZE, name))
        statuses = await completed_statuses(self.server, f"/files/{CUT_SIZE}")
        if 206 not in statuses:
            if len(statuses) <= 1:
                what = "dropped the connection halfway"
                raise _gave_up(
                    self.task, len(statuses), error or Exception("?"), what, "no-retry-drop"
                )
            raise Mistake(
                "restarted-from-zero",
                f"after the connection dropped, each retry asked for the whole file "
                f"again (the server answered {statuses}, never 206), and it dropped at "
                "the same byte every time.",
                "keep the partial file and ask for the rest: `Range: bytes=<its size>-` "
                "with `If-Range: <etag>`; append on a 206, start over on a 200.",
            )
        if error is not None:
            raise Mistake(
                "resume-failed",
                f"the resume asked for the rest (206), then {self.task} raised {_short(error)}.",
                "on a 206 append to the partial file (`'ab'`) and keep hashing: the "
                "digest must cover the bytes already on disk too.",
            )
        expect_file(self.task, dest, CUT_SIZE, name)

    async def limited_and_stalled(self) -> None:
        """A 429 with Retry-After, and a server that says nothing, side by side."""
        name, size = "limited.bin", 200_002
        limited = (
            f"{self.server.url}/files/{size}?name={name}&fail=1&key=limited&status=429"
            f"&retry_after={RETRY_AFTER}"
        )
        stalled = f"{self.server.url}/slow/headers/{STALL_SECONDS}"
        limited_outcome, stalled_outcome = await asyncio.gather(
            self.call(limited, self.dest(name), file_sha256(size, name)),
            self.call(stalled, self.dest("stalled.bin"), "0" * 64, max_attempts=2),
        )
        await until_idle(self.server)
        await self.judge_limited(limited_outcome[1], name, size)
        self.judge_stalled(stalled_outcome[1])

    async def judge_limited(self, error: BaseException | None, name: str, size: int) -> None:
        """A 429 with Retry-After: 1, then the file: the retry waited at least that long."""
        calls = await fail_log(self.session, self.server, "limited")
        if error is not None:
            if len(calls) == 1:
                raise _gave_up(self.task, 1, error, "answered 429", "no-retry-429")
            raise error
        gap = gaps(calls)[0]
        if gap < RETRY_AFTER * 0.9:
            raise Mistake(
                "ignored-retry-after",
                f"the server answered 429 with `Retry-After: {RETRY_AFTER}`, and the "
                f"retry came {gap * 1000:.0f} ms later.",
                "read `error.headers.get('Retry-After')` from the "
                "`ClientResponseError` and wait at least that many seconds.",
            )
        expect_file(self.task, self.dest(name), size, name)

    def judge_stalled(self, error: BaseException | None) -> None:
        """A server that says nothing: a timeout, retried, then raised."""
        requests = self.server.stats().by_path.get(f"/slow/headers/{STALL_SECONDS}", 0)
        if requests < 2:
            what = (
                f"sent nothing for {STALL_SECONDS} s (the session's sock_read is "
                f"{CHECK_TIMEOUT.sock_read} s)"
            )
            raise _gave_up(self.task, requests, error or Exception("?"), what, "no-retry-timeout")
        if error is None:
            raise _swallowed(self.task, "two timeouts")


@check("download_with_retry", timeout=25)
async def download_with_retry(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_with_retry(session, url, dest, sha256, **RETRY) -> int``: attempts made."""
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as directory:
        log = WriteLog(directory, threading.get_ident())
        with tracked_writes(log):
            async with aiohttp.ClientSession(timeout=CHECK_TIMEOUT) as session:
                run = _RetryRun(learner, server, session, directory)
                await run.not_found()
                await run.always_failing()
                await run.busy()
                await run.cut()
                await run.limited_and_stalled()
        _expect_closed(run.task, log)
        _expect_no_leftovers(directory, {"busy.bin", "cut.bin", "limited.bin"})
        expect_not_blocking(run.task, log)
    return (
        "the 404 requested once, the attempt limit kept, 503s retried with backoff, the "
        "dropped connection resumed with Range, Retry-After honoured, and a stalled server "
        "retried."
    )


# --- Task 3: download_all --------------------------------------------------------------------


REPORT_KEYS = ("ok", "bytes", "attempts", "error")


def _expect_report(task: str, report: Any, jobs: list[tuple[str, str, str]]) -> list[dict]:
    entries = expect_one_result_per_url(task, report, len(jobs), "dicts")
    for entry in entries:
        if not isinstance(entry, dict) or not set(REPORT_KEYS) <= set(entry):
            raise Mistake(
                "wrong-report",
                f"a report entry is {entry!r}; expected a dict with the keys "
                f"{', '.join(REPORT_KEYS)}.",
                "return one dict per job, in the order of `jobs`.",
            )
    return entries


def _expect_no_queue_timeouts(
    spy: SessionSpy, jobs: list, entries: list[dict], expected: list[int | None]
) -> None:
    """Healthy files that needed retries, with a ``connect`` timeout: the pool's queue timed out."""
    connect = spy.sessions[0].timeout.connect if spy.sessions else None
    if connect is None:
        return
    troubled = [
        os.path.basename(job[1])
        for job, entry, attempts in zip(jobs, entries, expected, strict=True)
        if attempts == 1 and (not entry["ok"] or entry["attempts"] != 1)
    ]
    if troubled:
        raise Mistake(
            "connect-timeout-in-queue",
            f"healthy files ({', '.join(troubled)}) needed retries or failed. The session's "
            f"timeout has connect={connect:g} s, and `connect` also counts the time a request "
            "waits for a free connection in the pool: queued downloads time out against a "
            "healthy server.",
            "let the downloads wait in an `asyncio.Semaphore(concurrency)` instead of the "
            "pool's queue, and use `sock_connect` rather than `connect`.",
        )


def _expect_slot_freed_while_waiting(server: LocalServer) -> None:
    """While limited.bin waited out its Retry-After, the other downloads had every slot."""
    timeline = server.stats().timeline
    limited = f"/files/{LIMITED_SIZE}"
    own = [record for record in timeline if record.path.split("?")[0] == limited]
    if len(own) < 2 or own[0].end is None:
        return  # not retried: the report's checks have said so already
    waited_from, waited_to = own[0].end, own[1].start
    clipped = [
        (max(record.start, waited_from), min(waited_to, record.end or waited_to))
        for record in timeline
        if record not in own  # the other downloads, cut to the wait
    ]
    peak = peak_overlap((start, end) for start, end in clipped if start < end)
    if peak < CONCURRENCY:
        raise Mistake(
            "slot-held-while-waiting",
            f"limited.bin answered 429 with `Retry-After: {RETRY_AFTER}`, and while it "
            f"waited, the server never had more than {plural(peak, 'other download')} in "
            f"flight although {CONCURRENCY} slots were allowed and files were queued: the "
            "waiting file kept its slot through the sleep.",
            "hold the semaphore only around each attempt, not around the retries: pass "
            "`slots` to download_with_retry and wrap each request in `async with slots:`, "
            "with the `asyncio.sleep()` outside it.",
        )


@check("download_all", timeout=25)
async def download_all(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_all(jobs, concurrency) -> list[dict]``: one session, bounded, reported."""
    task = "download_all"
    with tempfile.TemporaryDirectory(prefix="capstone-check-") as directory:
        good = []
        on_disk: dict[str, tuple[int, str]] = {}  # dest: (size, name) of each good download
        for index, size in enumerate(ALL_SIZES):
            name = f"file-{index}.bin"
            url = f"{server.url}/files/{size}?name={name}&rate={ALL_RATE}"
            good.append((url, os.path.join(directory, name), file_sha256(size, name)))
            on_disk[good[-1][1]] = (size, name)
        busy = (
            f"{server.url}/files/95000?name=busy.bin&fail=1&key=all-busy",
            os.path.join(directory, "busy.bin"),
            file_sha256(95_000, "busy.bin"),
        )
        on_disk[busy[1]] = (95_000, "busy.bin")
        limited = (
            f"{server.url}/files/{LIMITED_SIZE}?name=limited.bin&fail=1&key=all-limited"
            f"&status=429&retry_after={RETRY_AFTER}",
            os.path.join(directory, "limited.bin"),
            file_sha256(LIMITED_SIZE, "limited.bin"),
        )
        on_disk[limited[1]] = (LIMITED_SIZE, "limited.bin")
        missing = (
            f"{server.url}/downloads/missing.bin",
            os.path.join(directory, "missing.bin"),
            file_sha256(94_000),
        )
        tampered = (
            f"{server.url}/files/93000?name=tampered.bin",
            os.path.join(directory, "corrupt.bin"),
            file_sha256(93_000, "corrupt.bin"),
        )
        jobs = [limited, *good[:3], missing, busy, tampered, *good[3:]]
        # The attempts each entry must report; None for the failures.
        expected = [2, 1, 1, 1, None, 2, None, 1, 1, 1]
        expected_ok = [attempts is not None for attempts in expected]
        log = WriteLog(directory, threading.get_ident())
        with tracked_writes(log):
            report, error = await _outcome(call_async(task, learner, jobs, CONCURRENCY))
            left_open = spy.left_open
            if error is not None:
                raise Mistake(
                    "one-failure-stops-all",
                    f"{task} raised {_short(error)}; one failed file must not "
                    f"take the report of the other {len(jobs) - 1} with it.",
                    "catch the failure per file, inside the coroutine you gather, and put it "
                    "in that file's report entry.",
                )
            _expect_closed(task, log)
        stats = server.stats()
        if spy.created > 1:
            raise Mistake(
                "session-per-file",
                f"{plural(spy.created, 'session')} were created for {len(jobs)} files: each "
                "opens its own connections, and no bound is shared.",
                "create one `aiohttp.ClientSession` in download_all and pass it to every download.",
            )
        if left_open:
            raise Mistake(
                "session-left-open",
                f"{task} returned with its session still open.",
                "use `async with aiohttp.ClientSession(...) as session:`.",
            )
        if spy.sessions:
            timeout = spy.sessions[0].timeout
            if timeout.total is not None and timeout.total < LONG_DOWNLOAD_SECONDS:
                raise Mistake(
                    "total-timeout",
                    f"the session's timeout has total={timeout.total:g} s: any download that "
                    "takes longer is killed, however healthy, and again on every retry.",
                    "`aiohttp.ClientTimeout(total=None, sock_connect=..., sock_read=...)`: "
                    "catch stalls, not long downloads.",
                )
            if timeout.sock_read is None:
                raise Mistake(
                    "no-stall-timeout",
                    "the session's timeout has no `sock_read` (and no useful `total`): a "
                    "server that stops sending mid-file hangs the download forever.",
                    "set `sock_read` (for example 30 s): the longest wait for the next bytes.",
                )
        if stats.max_in_flight > CONCURRENCY:
            raise Mistake(
                "unbounded",
                f"the server had {stats.max_in_flight} downloads in flight at once; "
                f"concurrency was {CONCURRENCY}.",
                "share one `asyncio.Semaphore(concurrency)` (and/or "
                "`TCPConnector(limit_per_host=concurrency)`) across the downloads.",
            )
        if stats.max_in_flight < 2:
            raise Mistake(
                "sequential",
                f"the server never had more than one download in flight: the {len(jobs)} "
                "files went one after the other.",
                "start every download at once with `asyncio.gather(...)` and let the "
                "semaphore hold back all but `concurrency` of them.",
            )
        entries = _expect_report(task, report, jobs)
        _expect_no_queue_timeouts(spy, jobs, entries, expected)
        got_ok = [bool(entry["ok"]) for entry in entries]
        if got_ok != expected_ok:
            wrong = [
                os.path.basename(job[1])
                for job, got, want in zip(jobs, got_ok, expected_ok, strict=True)
                if got != want
            ]
            raise Mistake(
                "wrong-report",
                f"the report's `ok` is wrong for {', '.join(wrong)} (a 404 and a wrong "
                "checksum must fail; a 503 or a 429 once, then the file, must succeed).",
                "set `ok` from whether download_with_retry returned or raised.",
            )
        for (_url, dest, _sha256), entry in zip(jobs, entries, strict=True):
            name = os.path.basename(dest)
            if entry["ok"]:
                size = os.path.getsize(dest) if os.path.exists(dest) else None
                if entry["bytes"] != size or entry["error"]:
                    raise Mistake(
                        "wrong-report",
                        f"{name} succeeded, but its entry says bytes={entry['bytes']!r}, "
                        f"error={entry['error']!r} (its file has {size} bytes).",
                        "for a success: `bytes` is the file's size and `error` is None.",
                    )
            elif not isinstance(entry["error"], str) or not entry["error"]:
                error = entry["error"]
                what = repr(error) if error in (None, "") else f"a {type(error).__name__} object"
                raise Mistake(
                    "wrong-report",
                    f"{name} failed, but its entry's `error` is {what}, not a short text.",
                    "for a failure, `error` says why in words, e.g. "
                    "`f'{type(exc).__name__}: {exc}'`.",
                )
        for job, entry, attempts in zip(jobs, entries, expected, strict=True):
            if attempts == 2 and entry["attempts"] != 2:
                raise Mistake(
                    "wrong-report",
                    f"{os.path.basename(job[1])} failed once (503 or 429), then sent the file, "
                    f"but its entry says attempts={entry['attempts']!r}.",
                    "put the number download_with_retry returned in `attempts`.",
                )
        for _url, dest, _sha256 in jobs:
            if dest in on_disk:
                expect_file(task, dest, *on_disk[dest])
            else:
                expect_absent(dest, "partial-file-left", "a failed download")
        _expect_no_leftovers(directory, {os.path.basename(dest) for dest in on_disk})
        expect_not_blocking(task, log)
        _expect_slot_freed_while_waiting(server)
    return (
        f"one session, never more than {CONCURRENCY} downloads at a time but not one by one, "
        "no slot held through a Retry-After wait, and a report in which the 404 and the "
        "wrong checksum failed and the rest succeeded."
    )
