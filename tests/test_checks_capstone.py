"""Exercise 15's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import tempfile

import aiohttp
import pytest

from local_server.checks import capstone as check

CHUNK = 64 * 1024
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class Mismatch(Exception):
    pass


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


# --- Task 1: download_file -------------------------------------------------------------------


async def file_hash_while_streaming(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


async def file_hash_afterwards_in_thread(session, url, dest, sha256):
    """Another shape: mkstemp in the same directory, hash the file afterwards in a thread."""
    fd, part = tempfile.mkstemp(dir=os.path.dirname(dest), suffix=".tmp")
    os.close(fd)
    try:
        async with session.get(url, raise_for_status=True) as response:
            with open(part, "wb") as file:
                async for chunk in response.content.iter_any():
                    await asyncio.to_thread(file.write, chunk)
        if await asyncio.to_thread(sha256_of, part) != sha256:
            raise ValueError("checksum")
        os.replace(part, dest)
        return os.path.getsize(dest)
    except BaseException:
        remove(part)
        raise


async def file_in_executor_with_iter_chunks(session, url, dest, sha256):
    """Unusual but correct: run_in_executor, iter_chunks(), another temporary suffix."""
    loop = asyncio.get_running_loop()
    part, digest, written = dest + ".download", hashlib.sha256(), 0
    try:
        async with session.get(url, raise_for_status=True) as response:
            with open(part, "wb") as file:
                async for data, _end_of_chunk in response.content.iter_chunks():
                    await loop.run_in_executor(None, file.write, data)
                    digest.update(data)
                    written += len(data)
        if digest.hexdigest() != sha256:
            raise ValueError("checksum")
        os.replace(part, dest)
        return written
    finally:
        if os.path.exists(part):
            os.unlink(part)


@pytest.mark.parametrize(
    "answer",
    [file_hash_while_streaming, file_hash_afterwards_in_thread, file_in_executor_with_iter_chunks],
)
def test_download_file_accepts_correct_alternatives(answer):
    verdict = check.download_file.diagnose(answer)
    assert verdict.passed, verdict.render()


async def file_read_whole(session, url, dest, sha256):
    part = dest + ".part"
    async with session.get(url) as response:
        response.raise_for_status()
        body = await response.read()
    if hashlib.sha256(body).hexdigest() != sha256:
        raise Mismatch(dest)
    with open(part, "wb") as file:
        await asyncio.to_thread(file.write, body)
    os.replace(part, dest)
    return len(body)


async def file_blocking_writes(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


async def file_writes_final_name(session, url, dest, sha256):
    """Verified, and cleans up after itself, but the partial file has the final name."""
    digest, written = hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(dest, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
    except BaseException:
        remove(dest)
        raise
    return written


async def file_left_open(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    async with session.get(url) as response:
        response.raise_for_status()
        file = open(part, "wb")  # the mistake under test: never closed
        async for chunk in response.content.iter_chunked(CHUNK):
            await asyncio.to_thread(file.write, chunk)
            digest.update(chunk)
            written += len(chunk)
    await asyncio.to_thread(file.flush)
    if digest.hexdigest() != sha256:
        raise Mismatch(dest)
    os.replace(part, dest)
    return written


async def file_returns_nothing(session, url, dest, sha256):
    await file_hash_while_streaming(session, url, dest, sha256)


async def file_no_status_no_checksum(session, url, dest, sha256):
    part, written = dest + ".part", 0
    async with session.get(url) as response:
        with open(part, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)
                written += len(chunk)
    os.replace(part, dest)
    return written


async def file_no_checksum(session, url, dest, sha256):
    part, written = dest + ".part", 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    written += len(chunk)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


async def file_swallows_errors(session, url, dest, sha256):
    try:
        return await file_hash_while_streaming(session, url, dest, sha256)
    except Exception:
        return 0


async def file_replaces_in_finally(session, url, dest, sha256):
    """Renames whatever arrived, even after the connection dropped."""
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
    finally:
        os.replace(part, dest)
    if digest.hexdigest() != sha256:
        os.remove(dest)
        raise Mismatch(dest)
    return written


async def file_verifies_after_rename(session, url, dest, sha256):
    """Raises on a mismatch, but only after giving the file its final name."""
    written = await file_no_checksum(session, url, dest, sha256)
    if await asyncio.to_thread(sha256_of, dest) != sha256:
        raise Mismatch(dest)
    return written


async def file_compares_raw_digest(session, url, dest, sha256):
    """Compares the raw bytes of the digest with the hex text: every download 'fails'."""
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.digest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


async def file_cleans_up_client_errors_only(session, url, dest, sha256):
    """Removes the temporary file after a ClientError, not after a checksum mismatch."""
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
    except aiohttp.ClientError:
        remove(part)
        raise
    if digest.hexdigest() != sha256:
        raise Mismatch(dest)
    os.replace(part, dest)
    return written


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (file_read_whole, "whole-body-in-memory"),
        (file_compares_raw_digest, "healthy-download-failed"),
        (file_cleans_up_client_errors_only, "temp-file-left"),
        (file_blocking_writes, "blocked-loop"),
        (file_writes_final_name, "writes-final-name"),
        (file_left_open, "file-left-open"),
        (file_returns_nothing, "wrong-return"),
        (file_no_status_no_checksum, "error-page-saved"),
        (file_no_checksum, "checksum-ignored"),
        (file_swallows_errors, "failure-swallowed"),
        (file_replaces_in_finally, "partial-file-left"),
        (file_verifies_after_rename, "unverified-file-left"),
    ],
)
def test_download_file_diagnoses_each_mistake(answer, problem):
    verdict = check.download_file.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_download_file_stub_is_not_implemented():
    async def stub(session, url, dest, sha256):
        raise NotImplementedError

    assert check.download_file.diagnose(stub).problem == "not-implemented"


# --- Task 2: download_with_retry -------------------------------------------------------------


def backoff(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def told(exc):
    value = (getattr(exc, "headers", None) or {}).get("Retry-After")
    return float(value) if value and value.isdigit() else None


def transient(exc):
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                            TimeoutError))  # fmt: skip


def make_retry(
    *,
    resume=True,
    if_range=True,
    retry_after=True,
    wait=True,
    retry_all=False,
    retry_timeouts=True,
    retry_429=True,
    limit=None,
    swallow=False,
    returns_attempts=True,
):
    """A download_with_retry with each behaviour switchable, to make one mistake at a time."""

    def retryable(exc):
        if retry_all:
            return True
        if not retry_timeouts and isinstance(exc, TimeoutError):
            return False
        if not retry_429 and isinstance(exc, aiohttp.ClientResponseError):
            return exc.status >= 500
        return transient(exc)

    async def download_with_retry(
        session, url, dest, sha256, *, slots=None, max_attempts=5, base_delay=0.05, max_delay=1.0
    ):
        attempts_allowed = max_attempts if limit is None else limit
        part = dest + ".part"
        size, etag, digest = 0, None, hashlib.sha256()
        try:
            for attempt in range(attempts_allowed):
                headers = {}
                if resume and size:
                    headers["Range"] = f"bytes={size}-"
                    if if_range and etag:
                        headers["If-Range"] = etag
                try:
                    async with slots or contextlib.nullcontext():  # a slot per attempt
                        async with session.get(url, headers=headers) as response:
                            response.raise_for_status()
                            if response.status != 206:
                                size, etag = 0, response.headers.get("ETag")
                                digest = hashlib.sha256()
                            with open(part, "ab" if response.status == 206 else "wb") as file:
                                async for chunk in response.content.iter_chunked(CHUNK):
                                    await asyncio.to_thread(file.write, chunk)
                                    digest.update(chunk)
                                    size += len(chunk)
                    break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if not retryable(exc) or attempt == attempts_allowed - 1:
                        raise
                    delay = backoff(attempt, base_delay, max_delay) if wait else 0
                    if retry_after and told(exc) is not None:
                        delay = max(delay, told(exc))
                await asyncio.sleep(delay)
            if digest.hexdigest() != sha256:
                raise Mismatch(dest)
            os.replace(part, dest)
            return attempt + 1 if returns_attempts else None
        except Exception:
            if swallow:
                return 0
            raise
        finally:
            remove(part)

    return download_with_retry


async def retry_middleware_style(
    session, url, dest, sha256, *, max_attempts=5, base_delay=0.05, max_delay=1.0
):
    """Another shape: a helper per attempt, the partial's size read from the disk."""
    part = dest + ".part"
    etag = None

    async def attempt_once():
        nonlocal etag
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        headers = {"Range": f"bytes={offset}-", "If-Range": etag} if offset and etag else {}
        async with session.get(url, headers=headers) as response:
            if response.status in RETRY_STATUSES:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, headers=response.headers
                )
            response.raise_for_status()
            etag = response.headers.get("ETag", etag)
            with open(part, "ab" if response.status == 206 else "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)

    try:
        for attempt in range(1, max_attempts + 1):
            try:
                await attempt_once()
                break
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not transient(exc) or attempt == max_attempts:
                    raise
                await asyncio.sleep(max(backoff(attempt - 1, base_delay, max_delay),
                                        told(exc) or 0))  # fmt: skip
        if await asyncio.to_thread(sha256_of, part) != sha256:
            raise ValueError("checksum mismatch")
        os.replace(part, dest)
        return attempt
    finally:
        remove(part)


async def retry_recursively(
    session, url, dest, sha256, *, max_attempts=5, base_delay=0.05, max_delay=1.0, _attempt=1
):
    """Unusual but correct: recursion, Range without If-Range from the size on disk, and the
    SHA-256 of the finished file computed afterwards."""
    part = dest + ".part"
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        async with session.get(url, headers={"Range": f"bytes={offset}-"} if offset else {}) as r:
            r.raise_for_status()
            with open(part, "ab" if r.status == 206 else "wb") as file:
                async for chunk in r.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        if not transient(exc) or _attempt >= max_attempts:
            remove(part)
            raise
        await asyncio.sleep(max(backoff(_attempt - 1, base_delay, max_delay), told(exc) or 0))
        return await retry_recursively(
            session, url, dest, sha256, max_attempts=max_attempts, base_delay=base_delay,
            max_delay=max_delay, _attempt=_attempt + 1,
        )  # fmt: skip
    if await asyncio.to_thread(sha256_of, part) != sha256:
        remove(part)
        raise Mismatch(dest)
    os.replace(part, dest)
    return _attempt


@pytest.mark.parametrize("answer", [make_retry(), retry_middleware_style, retry_recursively])
def test_download_with_retry_accepts_correct_alternatives(answer):
    verdict = check.download_with_retry.diagnose(answer)
    assert verdict.passed, verdict.render()


async def retry_never(session, url, dest, sha256, **options):
    await file_hash_while_streaming(session, url, dest, sha256)
    return 1


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (retry_never, "no-retry-503"),
        (make_retry(limit=3), "gave-up-early"),
        (make_retry(wait=False), "no-backoff"),
        (make_retry(returns_attempts=False), "wrong-return"),
        (make_retry(retry_after=False), "ignored-retry-after"),
        (make_retry(retry_429=False), "no-retry-429"),
        (make_retry(retry_all=True), "retried-404"),
        (make_retry(resume=False), "restarted-from-zero"),
        (make_retry(limit=8), "attempt-limit-ignored"),
        (make_retry(swallow=True), "failure-swallowed"),
        (make_retry(retry_timeouts=False), "no-retry-timeout"),
    ],
)
def test_download_with_retry_diagnoses_each_mistake(answer, problem):
    verdict = check.download_with_retry.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_download_with_retry_stub_is_not_implemented():
    async def stub(session, url, dest, sha256, **options):
        raise NotImplementedError

    assert check.download_with_retry.diagnose(stub).problem == "not-implemented"


def test_download_with_retry_sees_a_resume_that_appends_wrongly():
    async def overwrites_on_206(session, url, dest, sha256, **options):
        part, size, etag, attempts = dest + ".part", 0, None, 0
        while attempts < options.get("max_attempts", 5):
            attempts += 1
            headers = {"Range": f"bytes={size}-", "If-Range": etag} if size else {}
            try:
                async with session.get(url, headers=headers) as response:
                    response.raise_for_status()
                    etag = response.headers.get("ETag", etag)
                    with open(part, "wb") as file:  # the mistake: "wb" on a 206
                        async for chunk in response.content.iter_chunked(CHUNK):
                            await asyncio.to_thread(file.write, chunk)
                            size += len(chunk)
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not transient(exc):
                    raise
                await asyncio.sleep(max(0.01, told(exc) or 0))
        if sha256_of(part) != sha256:
            remove(part)
            raise Mismatch(dest)
        os.replace(part, dest)
        return attempts

    verdict = check.download_with_retry.diagnose(overwrites_on_206)
    assert verdict.problem == "resume-failed", verdict.render()


# --- Task 3: download_all --------------------------------------------------------------------


REFERENCE = make_retry()
GOOD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)


def report_entry(attempts=None, dest=None, exc=None):
    if exc is not None:
        return {"ok": False, "bytes": 0, "attempts": None, "error": f"{type(exc).__name__}"}
    return {"ok": True, "bytes": os.path.getsize(dest), "attempts": attempts, "error": None}


async def guarded(session, url, dest, sha256, slots=None):
    try:
        return report_entry(await REFERENCE(session, url, dest, sha256, slots=slots), dest)
    except Exception as exc:
        return report_entry(exc=exc)


async def all_with_semaphore(jobs, concurrency):
    """The model answer's shape: the semaphore goes into the retry loop, a slot per attempt."""
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job, slots) for job in jobs))


async def all_with_semaphore_and_connector_limit(jobs, concurrency):
    """Both bounds, as the lesson does; the session made inside a helper."""
    slots = asyncio.BoundedSemaphore(concurrency)
    connector = aiohttp.TCPConnector(limit_per_host=concurrency)
    session = aiohttp.ClientSession(connector=connector, timeout=GOOD_TIMEOUT)
    try:
        tasks = [asyncio.create_task(guarded(session, *job, slots)) for job in jobs]
        return [await task for task in tasks]
    finally:
        await session.close()


async def all_with_connector_limit(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_with_workers(jobs, concurrency):
    """`concurrency` workers taking jobs from a queue: a worker is a slot, and it sleeps
    through its file's retries, so the bound holds but a slot idles during each wait."""
    queue: asyncio.Queue = asyncio.Queue()
    for index, job in enumerate(jobs):
        queue.put_nowait((index, job))
    report: list = [None] * len(jobs)
    timeout = aiohttp.ClientTimeout(sock_read=30)  # total is None when only sock_read is given

    async def worker(session):
        while not queue.empty():
            index, job = queue.get_nowait()
            report[index] = await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return report


async def all_with_return_exceptions(jobs, concurrency):
    """Another shape: gather(return_exceptions=True), then the report from the results."""
    slots = asyncio.Semaphore(concurrency)

    async def one(session, url, dest, sha256):
        return await REFERENCE(session, url, dest, sha256, slots=slots)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        results = await asyncio.gather(
            *(one(session, *job) for job in jobs), return_exceptions=True
        )
    return [
        report_entry(exc=result)
        if isinstance(result, BaseException)
        else report_entry(result, dest)
        for result, (_url, dest, _sha256) in zip(results, jobs, strict=True)
    ]


@pytest.mark.parametrize(
    "answer",
    [
        all_with_semaphore,
        all_with_semaphore_and_connector_limit,
        all_with_connector_limit,
        all_with_return_exceptions,
    ],
)
def test_download_all_accepts_correct_alternatives(answer):
    verdict = check.download_all.diagnose(answer)
    assert verdict.passed, verdict.render()


async def all_slot_held_through_retries(jobs, concurrency):
    """The semaphore around the whole retry loop: the waits between attempts hold a slot."""
    slots = asyncio.Semaphore(concurrency)

    async def one(session, job):
        async with slots:
            return await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, job) for job in jobs))


async def all_session_per_file(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(job):
        async with slots, aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
            return await guarded(session, *job)

    return await asyncio.gather(*(one(job) for job in jobs))


async def all_session_left_open(jobs, concurrency):
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=GOOD_TIMEOUT
    )
    return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_default_timeout(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_no_timeout_at_all(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_unbounded(jobs, concurrency):
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_bound_too_big(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency * 2)

    async def one(session, job):
        async with slots:
            return await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, job) for job in jobs))


async def all_semaphore_per_job(jobs, concurrency):
    async def one(session, job):
        async with asyncio.Semaphore(concurrency):  # a new one each time: bounds nothing
            return await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, job) for job in jobs))


async def all_queue_in_pool_with_connect_timeout(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, connect=0.05, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


async def all_error_as_exception_object(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [entry if entry["ok"] else {**entry, "error": ValueError("x")} for entry in report]


async def all_sequential(jobs, concurrency):
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return [await guarded(session, *job) for job in jobs]


async def all_lets_failures_escape(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(session, url, dest, sha256):
        async with slots:
            return report_entry(await REFERENCE(session, url, dest, sha256), dest)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, *job) for job in jobs))


async def all_reports_every_file_ok(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{**entry, "ok": True} for entry in report]


async def all_without_attempts(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{key: value for key, value in entry.items() if key != "attempts"} for entry in report]


async def all_attempts_always_one(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{**entry, "attempts": 1} if entry["ok"] else entry for entry in report]


async def all_in_completion_order(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    report = []

    async def one(session, job):
        async with slots:
            report.append(await guarded(session, *job))

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        await asyncio.gather(*(one(session, job) for job in jobs))
    return report


async def all_returns_a_dict(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return {job[1]: entry for job, entry in zip(jobs, report, strict=True)}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (all_session_per_file, "session-per-file"),
        (all_session_left_open, "session-left-open"),
        (all_default_timeout, "total-timeout"),
        (all_no_timeout_at_all, "no-stall-timeout"),
        (all_unbounded, "unbounded"),
        (all_bound_too_big, "unbounded"),
        (all_semaphore_per_job, "unbounded"),
        (all_queue_in_pool_with_connect_timeout, "connect-timeout-in-queue"),
        (all_error_as_exception_object, "wrong-report"),
        (all_sequential, "sequential"),
        (all_lets_failures_escape, "one-failure-stops-all"),
        (all_reports_every_file_ok, "wrong-report"),
        (all_without_attempts, "wrong-report"),
        (all_attempts_always_one, "wrong-report"),
        (all_in_completion_order, "wrong-report"),
        (all_returns_a_dict, "wrong-return-type"),
        (all_slot_held_through_retries, "slot-held-while-waiting"),
        (all_with_workers, "slot-held-while-waiting"),
    ],
)
def test_download_all_diagnoses_each_mistake(answer, problem):
    verdict = check.download_all.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_download_all_stub_is_not_implemented():
    async def stub(jobs, concurrency):
        raise NotImplementedError

    assert check.download_all.diagnose(stub).problem == "not-implemented"
