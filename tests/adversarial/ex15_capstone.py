"""Learner answers to exercise 15 (capstone downloader), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import os
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from adversarial import correct, wrong
from local_server.checks import capstone as check

CHUNK_SIZE = 64 * 1024
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ChecksumMismatch(Exception):
    """The downloaded bytes are not the ones announced."""


# The exercise's own helpers (given in the task 2 cell).


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def retry_after_seconds(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, (aiohttp.ClientConnectorDNSError, aiohttp.ClientConnectorCertificateError)):
        return False  # an unknown host or an untrusted certificate fails again (lesson 06)
    return isinstance(
        exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
    )


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- Task 1 · download_file ----------------------------------------------------------------


@correct(check.download_file, "a class; writes and close through run_in_executor")
async def download_file_class(session, url, dest, sha256):
    class OneFile:
        def __init__(self) -> None:
            self.part = dest + ".part"
            self.digest = hashlib.sha256()
            self.size = 0

        async def fetch(self) -> int:
            loop = asyncio.get_running_loop()
            async with session.get(url) as response:
                response.raise_for_status()
                file = await loop.run_in_executor(None, open, self.part, "wb")
                try:
                    async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                        await loop.run_in_executor(None, file.write, chunk)
                        self.digest.update(chunk)
                        self.size += len(chunk)
                finally:
                    await loop.run_in_executor(None, file.close)
            if self.digest.hexdigest() != sha256:
                raise ChecksumMismatch(url)
            os.replace(self.part, dest)
            return self.size

    job = OneFile()
    try:
        return await job.fetch()
    except BaseException:
        _remove(job.part)
        raise


@correct(check.download_file, "os.open/os.write on an fd in a thread, pathlib cleanup in finally")
async def download_file_fd(session, url, dest, sha256):
    part = Path(dest + ".part")
    digest = hashlib.sha256()
    size = 0
    done = False
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                async for chunk in response.content.iter_any():
                    await asyncio.to_thread(os.write, fd, chunk)
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
        os.replace(part, dest)
        done = True
        return size
    finally:
        if not done:
            part.unlink(missing_ok=True)


@correct(check.download_file, "NamedTemporaryFile(dir=..., delete=False) and os.replace")
async def download_file_named_temporary(session, url, dest, sha256):
    async with session.get(url) as response:
        response.raise_for_status()
        tmp = tempfile.NamedTemporaryFile(dir=os.path.dirname(dest), suffix=".part", delete=False)
        try:
            digest = hashlib.sha256()
            with tmp:
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    await asyncio.to_thread(tmp.write, chunk)
                    digest.update(chunk)
                written = tmp.tell()
            if digest.hexdigest() != sha256:
                raise ChecksumMismatch(dest)
        except BaseException:
            _remove(tmp.name)
            raise
    os.replace(tmp.name, dest)
    return written


async def _stream_part(response, part, digest):
    """Write the body to ``part`` off the loop, hashing it; return the bytes written."""
    written = 0
    with open(part, "wb") as file:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            await asyncio.to_thread(file.write, chunk)
            digest.update(chunk)
            written += len(chunk)
    return written


@wrong(check.download_file, "removes the .part only after a checksum mismatch, not a cut",
       rule="Remove the temporary file after a failure",
       problem="temp-file-left")
async def download_file_cleanup_only_on_mismatch(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        written = await _stream_part(response, part, digest)
    if digest.hexdigest() != sha256:
        os.remove(part)
        raise ChecksumMismatch(dest)
    os.replace(part, dest)
    return written


@wrong(check.download_file, "cleans up on a network error, but raises the mismatch outside",
       rule="Remove the temporary file after a failure",
       problem="temp-file-left")
async def download_file_mismatch_leaves_part(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            written = await _stream_part(response, part, digest)
    except aiohttp.ClientError:
        _remove(part)
        raise
    if digest.hexdigest() != sha256:
        raise ChecksumMismatch(dest)
    os.replace(part, dest)
    return written


@wrong(check.download_file, "never checks the status: the 404 page is written to the .part",
       rule="Check the status before writing anything",
       problem="error-page-saved")
async def download_file_no_status_check(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            written = await _stream_part(response, part, digest)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@correct(check.download_file, "opens the .part before raise_for_status(), removes it on failure: "
         "no byte of the error page reaches the disk (re-categorised: the reworked task says "
         "opening the temporary file first is fine when a failure removes it)")
async def download_file_opens_before_status(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    written = 0
    try:
        async with session.get(url) as response:
            with open(part, "wb") as file:
                response.raise_for_status()
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@wrong(check.download_file, "writes each chunk with a blocking file.write on the loop",
       rule="write each chunk off the event loop (`await asyncio.to_thread(file.write, chunk)`)")
async def download_file_blocking_write(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    written = 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    file.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@wrong(check.download_file, "counts `written += CHUNK_SIZE` instead of the chunk's length",
       rule="returns the number of bytes written",
       problem="wrong-return")
async def download_file_counts_chunk_size(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    written = 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += CHUNK_SIZE
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@wrong(check.download_file, "os.replace inside the `with open(...)`: renamed before it is closed",
       rule="Write to a temporary name ... close it, and give it the final name",
       problem="renamed-while-open")
async def download_file_replace_before_close(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    written = 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
                if digest.hexdigest() != sha256:
                    raise ChecksumMismatch(dest)
                os.replace(part, dest)
    except BaseException:
        _remove(part)
        raise
    return written


@wrong(check.download_file, "await response.read() of the whole body",
       rule="Stream the body in chunks (`iter_chunked`); memory must stay under half of it",
       problem="whole-body-in-memory")
async def download_file_read_whole(session, url, dest, sha256):
    part = dest + ".part"
    async with session.get(url) as response:
        response.raise_for_status()
        body = await response.read()
    if hashlib.sha256(body).hexdigest() != sha256:
        raise ChecksumMismatch(dest)
    with open(part, "wb") as file:
        await asyncio.to_thread(file.write, body)
    os.replace(part, dest)
    return len(body)


@wrong(check.download_file, "hashes afterwards by reading the whole .part at once on the loop",
       rule="hash it as it goes; memory must stay under half of it",
       problem="whole-body-in-memory")
async def download_file_hash_whole_file(session, url, dest, sha256):
    part = dest + ".part"
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            written = await _stream_part(response, part, hashlib.sha256())
        if hashlib.sha256(Path(part).read_bytes()).hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@wrong(check.download_file, "catches every error and returns 0",
       rule="When anything goes wrong it **raises**",
       problem="failure-swallowed")
async def download_file_swallows(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            written = await _stream_part(response, part, digest)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except Exception:
        _remove(part)
        return 0
    os.replace(part, dest)
    return written


@wrong(check.download_file, "the temporary file goes to the system temp dir",
       rule="Write to a temporary name in the same directory (`dest + \".part\"`)",
       problem="temp-elsewhere")
async def download_file_tmp_elsewhere(session, url, dest, sha256):
    fd, part = tempfile.mkstemp(suffix=".part")
    os.close(fd)
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            written = await _stream_part(response, part, digest)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)
    return written


@wrong(check.download_file, "forgot the return: returns None",
       rule="returns the number of bytes written",
       problem="wrong-return")
async def download_file_forgot_return(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream_part(response, part, digest)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
    except BaseException:
        _remove(part)
        raise
    os.replace(part, dest)


# --- Task 2 · download_with_retry ----------------------------------------------------------


async def _one_attempt(session, url, part, state, slots, *, resume=True, if_range=True,
                       fresh_digest=False):
    """One request, holding a slot: the whole file, or the rest of ``part``."""
    headers = {}
    if resume and state["size"] and state["etag"]:
        headers["Range"] = f"bytes={state['size']}-"
        if if_range:
            headers["If-Range"] = state["etag"]
    if fresh_digest:
        state["digest"] = hashlib.sha256()
    async with slots or contextlib.nullcontext(), session.get(url, headers=headers) as response:
        response.raise_for_status()
        if response.status != 206:
            state.update(size=0, etag=response.headers.get("ETag"), digest=hashlib.sha256())
        with open(part, "ab" if response.status == 206 else "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                await asyncio.to_thread(file.write, chunk)
                state["digest"].update(chunk)
                state["size"] += len(chunk)


def _make_retry(*, retryable=is_transient, honour_retry_after=True, combine=max, resume=True,
                if_range=True, fresh_digest=False, extra_attempt=False, zero_based=False,
                give_up=None, sleep=True, cleanup=True):
    """A download_with_retry that differs from the right one only where a keyword says."""

    async def download_with_retry(session, url, dest, sha256, *, slots=None, max_attempts=5,
                                  base_delay=0.05, max_delay=1.0):
        part = dest + ".part"
        state = {"size": 0, "etag": None, "digest": hashlib.sha256()}
        attempts = max_attempts + 1 if extra_attempt else max_attempts
        try:
            for attempt in range(attempts):
                try:
                    await _one_attempt(session, url, part, state, slots, resume=resume,
                                       if_range=if_range, fresh_digest=fresh_digest)
                    break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if not retryable(exc):
                        raise
                    if attempt == attempts - 1:
                        if give_up is not None:
                            raise give_up from exc
                        raise
                    wait = backoff_delay(attempt, base_delay, max_delay)
                    told = retry_after_seconds(exc) if honour_retry_after else None
                    if told is not None:
                        wait = combine(wait, told)
                if sleep:
                    await asyncio.sleep(wait)
            if state["digest"].hexdigest() != sha256:
                raise ChecksumMismatch(url)
            os.replace(part, dest)
        except BaseException:
            if cleanup:
                _remove(part)
            raise
        return attempt if zero_based else attempt + 1

    return download_with_retry


download_with_retry_reference = _make_retry()


@correct(check.download_with_retry, "a dict holds size, ETag and digest between attempts")
async def download_with_retry_dict_state(session, url, dest, sha256, *, slots=None,
                                         max_attempts=5, base_delay=0.05, max_delay=1.0):
    return await download_with_retry_reference(
        session, url, dest, sha256, slots=slots, max_attempts=max_attempts,
        base_delay=base_delay, max_delay=max_delay,
    )


class _Resumable:
    """One file's download: the .part on disk, its ETag, and a running digest."""

    def __init__(self, session, url, dest, slots):
        self.session, self.url, self.slots = session, url, slots or contextlib.nullcontext()
        self.part = Path(dest + ".part")
        self.dest = Path(dest)
        self.etag: str | None = None
        self.digest = hashlib.sha256()

    async def attempt(self):
        size = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={size}-", "If-Range": self.etag} if size and self.etag else {}
        async with self.slots:
            async with self.session.get(self.url, headers=headers) as response:
                response.raise_for_status()
                partial = response.status == 206
                if not partial:
                    self.etag, self.digest = response.headers.get("ETag"), hashlib.sha256()
                file = await asyncio.to_thread(self.part.open, "ab" if partial else "wb")
                try:
                    async for chunk in response.content.iter_any():
                        self.digest.update(chunk)
                        await asyncio.to_thread(file.write, chunk)
                finally:
                    await asyncio.to_thread(file.close)


@correct(check.download_with_retry, "a class; a while loop; the resume offset from the disk")
async def download_with_retry_class(session, url, dest, sha256, *, slots=None, max_attempts=5,
                                    base_delay=0.05, max_delay=1.0):
    job = _Resumable(session, url, dest, slots)
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                await job.attempt()
            except Exception as exc:
                if attempts >= max_attempts or not is_transient(exc):
                    raise
                delay = backoff_delay(attempts - 1, base_delay, max_delay)
                await asyncio.sleep(max(delay, retry_after_seconds(exc) or 0.0))
            else:
                break
        if job.digest.hexdigest() != sha256:
            raise ChecksumMismatch(url)
        job.part.replace(job.dest)
        return attempts
    finally:
        job.part.unlink(missing_ok=True)


@correct(check.download_with_retry, "hashes the finished .part in a thread instead of streaming")
async def download_with_retry_hash_at_end(session, url, dest, sha256, *, slots=None,
                                          max_attempts=5, base_delay=0.05, max_delay=1.0):
    part = dest + ".part"
    slot = slots if slots is not None else contextlib.nullcontext()
    etag = None
    try:
        for attempt in range(1, max_attempts + 1):
            offset = os.path.getsize(part) if os.path.exists(part) else 0
            headers = {"Range": f"bytes={offset}-", "If-Range": etag} if offset and etag else {}
            try:
                async with slot:
                    async with session.get(url, headers=headers) as response:
                        response.raise_for_status()
                        if response.status != 206:
                            etag = response.headers.get("ETag")
                        with open(part, "ab" if response.status == 206 else "wb") as file:
                            async for chunk in response.content.iter_chunked(256 * 1024):
                                await asyncio.to_thread(file.write, chunk)
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == max_attempts or not is_transient(exc):
                    raise
                wait = backoff_delay(attempt - 1, base_delay, max_delay)
                wait = max(wait, retry_after_seconds(exc) or 0)
            await asyncio.sleep(wait)
        if await asyncio.to_thread(_sha256_of, part) != sha256:
            raise ChecksumMismatch(url)
        os.replace(part, dest)
        return attempt
    except BaseException:
        _remove(part)
        raise


def _everything(exc):
    return True


def _status_only(exc):
    return isinstance(exc, aiohttp.ClientResponseError) and exc.status in RETRY_STATUSES


@wrong(check.download_with_retry, "retries every error, the 404 included",
       rule="Retry only **transient** failures ... A 404 is raised at once",
       problem="retried-404")
async def download_with_retry_retries_404(session, url, dest, sha256, **options):
    return await _make_retry(retryable=_everything)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "ignores Retry-After: only the jittered backoff",
       rule="or at least what a `Retry-After` header says",
       problem="ignored-retry-after")
async def download_with_retry_ignores_retry_after(session, url, dest, sha256, **options):
    return await _make_retry(honour_retry_after=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "takes min() of the backoff and Retry-After",
       rule="wait ... at least what a `Retry-After` header says",
       problem="ignored-retry-after")
async def download_with_retry_min_retry_after(session, url, dest, sha256, **options):
    return await _make_retry(combine=min)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "no resume: every attempt starts again from byte 0",
       rule="After a dropped connection, **resume** ... `Range: bytes=<its size>-`",
       problem="restarted-from-zero")
async def download_with_retry_no_resume(session, url, dest, sha256, **options):
    return await _make_retry(resume=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "resumes with Range but without If-Range",
       rule="`If-Range: <the ETag of the first answer>`",
       problem="no-if-range")
async def download_with_retry_no_if_range(session, url, dest, sha256, **options):
    return await _make_retry(if_range=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "starts a new digest on every attempt, also on a 206",
       rule="On a 206 append (and keep hashing)",
       problem="resume-failed")
async def download_with_retry_digest_reset(session, url, dest, sha256, **options):
    return await _make_retry(fresh_digest=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "max_attempts retries after the first try: one attempt too many",
       rule="At most `max_attempts` attempts",
       problem="attempt-limit-ignored")
async def download_with_retry_one_too_many(session, url, dest, sha256, **options):
    return await _make_retry(extra_attempt=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "retries only HTTP statuses: a dropped body is raised at once",
       rule="Retry ... `ClientConnectionError`, `ClientPayloadError` (a body cut short) and "
            "`TimeoutError`",
       problem="no-retry-reset")
async def download_with_retry_statuses_only(session, url, dest, sha256, **options):
    return await _make_retry(retryable=_status_only)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "returns the 0-based attempt index",
       rule="It returns the number of attempts it made (1 when the first one worked)",
       problem="wrong-return")
async def download_with_retry_zero_based(session, url, dest, sha256, **options):
    return await _make_retry(zero_based=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "raises a new RuntimeError instead of the last error",
       rule="At most `max_attempts` attempts; then raise the last error",
       problem="wrong-error-raised")
async def download_with_retry_raises_new_error(session, url, dest, sha256, **options):
    retry = _make_retry(give_up=RuntimeError("download failed after retries"))
    return await retry(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "no wait at all between attempts",
       rule="Between attempts wait `random.uniform(0, min(max_delay, base_delay * 2 ** attempt))`")
async def download_with_retry_no_sleep(session, url, dest, sha256, **options):
    return await _make_retry(sleep=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "keeps the .part file after the final failure",
       rule="the same promise as task 1 (remove the temporary file after a failure)",
       problem="temp-file-left")
async def download_with_retry_keeps_part(session, url, dest, sha256, **options):
    return await _make_retry(cleanup=False)(session, url, dest, sha256, **options)


# --- Task 3 · download_all -----------------------------------------------------------------


def _long_timeout():
    return aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=10)


def _outcome(dest, result):
    if isinstance(result, BaseException):
        return {"ok": False, "bytes": 0, "attempts": None,
                "error": f"{type(result).__name__}: {result}"}
    return {"ok": True, "bytes": os.path.getsize(dest), "attempts": result, "error": None}


async def _report_one(session, url, dest, sha256, slots, retry=download_with_retry_reference):
    try:
        attempts = await retry(session, url, dest, sha256, slots=slots)
    except Exception as exc:
        return _outcome(dest, exc)
    return _outcome(dest, attempts)


@correct(check.download_all, "a TaskGroup of per-file wrappers that never raise")
async def download_all_taskgroup(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=_long_timeout()) as session:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_report_one(session, *job, slots)) for job in jobs]
    return [task.result() for task in tasks]


@correct(check.download_all, "gather(return_exceptions=True), the report built afterwards")
async def download_all_gather_exceptions(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(
            *(download_with_retry_class(session, url, dest, sha, slots=slots)
              for url, dest, sha in jobs),
            return_exceptions=True,
        )
    return [_outcome(dest, result) for (_, dest, _), result in zip(jobs, results, strict=True)]


@correct(check.download_all, "as_completed over indexed tasks, the report filled by index")
async def download_all_as_completed(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    report: list[dict] = [{} for _ in jobs]

    async def one(index, url, dest, sha256, session):
        report[index] = await _report_one(session, url, dest, sha256, slots,
                                          retry=download_with_retry_hash_at_end)

    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        for finished in asyncio.as_completed(
            [one(index, *job, session) for index, job in enumerate(jobs)]
        ):
            await finished
    return report


@wrong(check.download_all, "wraps the whole download_with_retry call in `async with slots:`",
       rule="so that a file waiting between attempts holds no slot",
       problem="slot-held-while-waiting")
async def download_all_slot_around_retries(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:

        async def one(url, dest, sha256):
            async with slots:
                return await _report_one(session, url, dest, sha256, None)

        return await asyncio.gather(*(one(*job) for job in jobs))


@wrong(check.download_all, "downloads one file after another",
       rule="run the downloads **concurrently**",
       problem="sequential")
async def download_all_sequential(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return [await _report_one(session, *job, slots) for job in jobs]


@wrong(check.download_all, "gather without a per-file catch: the 404 ends the whole job",
       rule="never let one file's failure stop the others or the report",
       problem="one-failure-stops-all")
async def download_all_failure_escapes(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        attempts = await asyncio.gather(
            *(download_with_retry_reference(session, url, dest, sha, slots=slots)
              for url, dest, sha in jobs)
        )
    return [_outcome(dest, n) for (_, dest, _), n in zip(jobs, attempts, strict=True)]


@wrong(check.download_all, "a new session for every file",
       rule="Use **one** session for all of them",
       problem="session-per-file")
async def download_all_session_per_file(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(url, dest, sha256):
        async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
            return await _report_one(session, url, dest, sha256, slots)

    return await asyncio.gather(*(one(*job) for job in jobs))


@wrong(check.download_all, "keeps the default timeout (total=300, no sock_read)",
       rule="with a timeout fit for long downloads (`total=None`, and `sock_read`)",
       problem="total-timeout")
async def download_all_default_timeout(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_report_one(session, *job, slots) for job in jobs))


@wrong(check.download_all, "a total=2 timeout: a slow download is cut",
       rule="with a timeout fit for long downloads (`total=None`, ...)",
       problem="total-timeout")
async def download_all_total_timeout(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        return await asyncio.gather(*(_report_one(session, *job, slots) for job in jobs))


@wrong(check.download_all, "reports in the order the files finished",
       rule="one dict per job, in the order of `jobs`",
       problem="report-order")
async def download_all_completion_order(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return [await done for done in asyncio.as_completed(
            [_report_one(session, *job, slots) for job in jobs])]


@wrong(check.download_all, "hard-codes Semaphore(3), as in the lesson",
       rule="never more than `concurrency` at a time: one `asyncio.Semaphore(concurrency)`",
       problem="unbounded")
async def download_all_semaphore_three(jobs, concurrency):
    slots = asyncio.Semaphore(3)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return await asyncio.gather(*(_report_one(session, *job, slots) for job in jobs))


@wrong(check.download_all, "no semaphore: every file at once",
       rule="never more than `concurrency` at a time",
       problem="unbounded")
async def download_all_unbounded(jobs, concurrency):
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return await asyncio.gather(*(_report_one(session, *job, None) for job in jobs))


@wrong(check.download_all, "never closes the session",
       rule="Close the session before returning",
       problem="session-left-open")
async def download_all_session_left_open(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    session = aiohttp.ClientSession(timeout=_long_timeout())
    return await asyncio.gather(*(_report_one(session, *job, slots) for job in jobs))


@wrong(check.download_all, "catches only aiohttp.ClientError per file: the checksum error escapes",
       rule="never let one file's failure stop the others or the report",
       problem="one-failure-stops-all")
async def download_all_catches_client_errors_only(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(session, url, dest, sha256):
        try:
            attempts = await download_with_retry_reference(session, url, dest, sha256,
                                                           slots=slots)
        except aiohttp.ClientError as exc:
            return _outcome(dest, exc)
        return _outcome(dest, attempts)

    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return await asyncio.gather(*(one(session, *job) for job in jobs))


@wrong(check.download_all, "leaves the failures out of the report",
       rule="return a report: one dict per job",
       problem="wrong-count")
async def download_all_successes_only(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        report = await asyncio.gather(*(_report_one(session, *job, slots) for job in jobs))
    return [row for row in report if row["ok"]]


@wrong(check.download_all, "puts the exception object, not a string, in `error`",
       rule="`error`: None for a success, a short string saying why for a failure",
       problem="wrong-report")
async def download_all_error_object(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(session, url, dest, sha256):
        try:
            attempts = await download_with_retry_reference(session, url, dest, sha256,
                                                           slots=slots)
        except Exception as exc:
            return {"ok": False, "bytes": 0, "attempts": None, "error": exc}
        return _outcome(dest, attempts)

    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        return await asyncio.gather(*(one(session, *job) for job in jobs))


@wrong(check.download_all, "`concurrency` worker tasks pulling from a queue, no semaphore",
       rule="one `asyncio.Semaphore(concurrency)`, passed ... as `slots`, so that a file "
            "waiting between attempts holds no slot",
       problem="slot-held-while-waiting")
async def download_all_worker_pool(jobs, concurrency):
    pending: asyncio.Queue = asyncio.Queue()
    for index, job in enumerate(jobs):
        pending.put_nowait((index, job))
    report: list[dict] = [{} for _ in jobs]

    async def worker(session):
        while not pending.empty():
            index, job = pending.get_nowait()
            report[index] = await _report_one(session, *job, None)

    async with aiohttp.ClientSession(timeout=_long_timeout()) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return report
