"""Exercise 15's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import random
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import capstone as check

CHUNK = 64 * 1024
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
PERMANENT = (aiohttp.ClientConnectorDNSError, aiohttp.ClientConnectorCertificateError)


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


@correct(check.download_file, "the model answer's shape: hash while streaming, finally removes")
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


@correct(check.download_file, "mkstemp in the same directory, the hash afterwards in a thread")
async def file_hash_afterwards_in_thread(session, url, dest, sha256):
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


@correct(check.download_file, "run_in_executor, iter_chunks(), another temporary suffix")
async def file_in_executor_with_iter_chunks(session, url, dest, sha256):
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


@correct(check.download_file, "O_EXCL on a uuid name, os.write in a thread, Path.unlink")
async def file_os_write_uuid_name(session, url, dest, sha256):
    part = Path(dest).with_name(f".{Path(dest).name}.{uuid.uuid4().hex}")
    digest, written = hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    view = memoryview(chunk)
                    while view:
                        view = view[await asyncio.to_thread(os.write, fd, view) :]
                    digest.update(chunk)
                    written += len(chunk)
            finally:
                os.close(fd)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
        return written
    except BaseException:
        part.unlink(missing_ok=True)
        raise


@correct(check.download_file, "a writer thread fed by a bounded queue; the size from tell()")
async def file_writer_thread(session, url, dest, sha256):
    part = dest + ".part"
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    sizes: list[int] = []

    def writer() -> None:
        with open(part, "wb") as file:
            while (chunk := chunks.get()) is not None:
                file.write(chunk)
            sizes.append(file.tell())

    thread = threading.Thread(target=writer)
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            thread.start()
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    digest.update(chunk)
                    await asyncio.to_thread(chunks.put, chunk)
            finally:
                await asyncio.to_thread(chunks.put, None)
                await asyncio.to_thread(thread.join)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
        return sizes[0]
    finally:
        remove(part)


@wrong(check.download_file, "reads the whole body", problem="whole-body-in-memory")
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


@wrong(check.download_file, "file.write on the loop", problem="blocked-loop")
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


@wrong(
    check.download_file,
    "hashes afterwards on the loop, 1 MiB at a time",
    problem="blocked-loop",
)
async def file_hashes_back_on_the_loop(session, url, dest, sha256):
    part, written = dest + ".part", 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    written += len(chunk)
        if sha256_of(part) != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


@wrong(
    check.download_file,
    "writes dest itself, removes it on failure",
    problem="writes-final-name",
)
async def file_writes_final_name(session, url, dest, sha256):
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


@wrong(check.download_file, "never closes the .part", problem="file-left-open")
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


@wrong(check.download_file, "os.replace inside the with block", problem="renamed-while-open")
async def file_renamed_inside_with(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
                await asyncio.to_thread(file.flush)
                if digest.hexdigest() != sha256:
                    raise Mismatch(dest)
                os.replace(part, dest)
    finally:
        remove(part)
    return written


@wrong(check.download_file, "returns nothing", problem="wrong-return")
async def file_returns_nothing(session, url, dest, sha256):
    await file_hash_while_streaming(session, url, dest, sha256)


@wrong(check.download_file, "returns the number of chunks", problem="wrong-return")
async def file_returns_chunk_count(session, url, dest, sha256):
    part, digest, chunks = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    chunks += 1
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return chunks


@wrong(check.download_file, "no status check, no checksum", problem="error-page-saved")
async def file_no_status_no_checksum(session, url, dest, sha256):
    part, written = dest + ".part", 0
    async with session.get(url) as response:
        with open(part, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)
                written += len(chunk)
    os.replace(part, dest)
    return written


@wrong(
    check.download_file,
    "checks the status only after writing the body",
    problem="error-page-saved",
)
async def file_status_after_writing(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            with open(part, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
            response.raise_for_status()
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


@wrong(check.download_file, "never compares the checksum", problem="checksum-ignored")
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


@wrong(check.download_file, "catches every error and returns 0", problem="failure-swallowed")
async def file_swallows_errors(session, url, dest, sha256):
    try:
        return await file_hash_while_streaming(session, url, dest, sha256)
    except Exception:
        return 0


@wrong(
    check.download_file,
    "returns what arrived when the connection drops",
    problem="failure-swallowed",
)
async def file_swallows_the_cut(session, url, dest, sha256):
    try:
        return await file_hash_while_streaming(session, url, dest, sha256)
    except aiohttp.ClientPayloadError:
        return -1


@wrong(
    check.download_file,
    "os.replace in a finally: renames what arrived",
    problem="partial-file-left",
)
async def file_replaces_in_finally(session, url, dest, sha256):
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
        if os.path.exists(part):
            os.replace(part, dest)
    if digest.hexdigest() != sha256:
        os.remove(dest)
        raise Mismatch(dest)
    return written


@wrong(check.download_file, "verifies after the rename", problem="unverified-file-left")
async def file_verifies_after_rename(session, url, dest, sha256):
    written = await file_no_checksum(session, url, dest, sha256)
    if await asyncio.to_thread(sha256_of, dest) != sha256:
        raise Mismatch(dest)
    return written


@wrong(
    check.download_file,
    "compares digest() bytes with the hex text",
    problem="healthy-download-failed",
)
async def file_compares_raw_digest(session, url, dest, sha256):
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


@wrong(check.download_file, "compares with sha256.upper()", problem="healthy-download-failed")
async def file_compares_upper(session, url, dest, sha256):
    return await file_hash_while_streaming(session, url, dest, sha256.upper())


@wrong(check.download_file, "removes the .part after a ClientError only", problem="temp-file-left")
async def file_cleans_up_client_errors_only(session, url, dest, sha256):
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


@wrong(
    check.download_file,
    "keeps the .part after a cut, for a resume never made",
    problem="temp-file-left",
)
async def file_keeps_part_after_cut(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    async with session.get(url) as response:
        response.raise_for_status()
        with open(part, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)
                digest.update(chunk)
                written += len(chunk)
    if digest.hexdigest() != sha256:
        os.remove(part)
        raise Mismatch(dest)
    os.replace(part, dest)
    return written


@wrong(check.download_file, "NamedTemporaryFile in the system temp dir", problem="temp-elsewhere")
async def file_named_temporary_elsewhere(session, url, dest, sha256):
    digest, written = hashlib.sha256(), 0
    temp = tempfile.NamedTemporaryFile(suffix=".part", delete=False)
    try:
        with temp:
            async with session.get(url) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(temp.write, chunk)
                    digest.update(chunk)
                    written += len(chunk)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(temp.name, dest)
    finally:
        remove(temp.name)
    return written


@wrong(check.download_file, "verifies, then forgets the os.replace", problem="no-file")
async def file_forgets_rename(session, url, dest, sha256):
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
    finally:
        remove(part)
    return written


@wrong(
    check.download_file,
    "reopens the .part per chunk: only the last survives",
    problem="wrong-content",
)
async def file_reopens_per_chunk(session, url, dest, sha256):
    part, digest, written = dest + ".part", hashlib.sha256(), 0
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(Path(part).write_bytes, chunk)
                digest.update(chunk)
                written += len(chunk)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
    finally:
        remove(part)
    return written


@wrong(check.download_file, "the stub", problem="not-implemented")
async def file_stub(session, url, dest, sha256):
    raise NotImplementedError


# --- Task 2: download_with_retry -------------------------------------------------------------


def backoff(attempt, base, cap):
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 64)))


def told(exc):
    value = (getattr(exc, "headers", None) or {}).get("Retry-After")
    return float(value) if value and value.isdigit() else None


def transient(exc):
    """The exercise's is_transient: statuses, connection errors but DNS/certificate, drops."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, PERMANENT):
        return False
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                            TimeoutError))  # fmt: skip


def make_retry(
    *,
    resume=True,
    if_range=True,
    etag_quotes=True,
    retry_after=True,
    wait=True,
    delay=backoff,
    retry_all=False,
    retryable=transient,
    limit=None,
    swallow=False,
    returns=lambda attempt, size: attempt + 1,
    new_digest_on_200=True,
    raise_first=False,
    cleanup=True,
    sleep=asyncio.sleep,
    blocking=False,
    leave_open=False,
    rename=True,
):
    """A download_with_retry with each behaviour switchable, to make one mistake at a time."""

    async def download_with_retry(
        session, url, dest, sha256, *, slots=None, max_attempts=5, base_delay=0.05, max_delay=1.0
    ):
        attempts_allowed = max_attempts if limit is None else limit
        part = dest + ".part"
        size, etag, digest = 0, None, hashlib.sha256()
        first_error = None
        try:
            for attempt in range(attempts_allowed):
                headers = {}
                if resume and size:
                    headers["Range"] = f"bytes={size}-"
                    if if_range and etag:
                        headers["If-Range"] = etag if etag_quotes else etag.strip('"')
                try:
                    async with slots or contextlib.nullcontext():  # a slot per attempt
                        async with session.get(url, headers=headers) as response:
                            response.raise_for_status()
                            if response.status != 206:
                                size, etag = 0, response.headers.get("ETag")
                                if new_digest_on_200:
                                    digest = hashlib.sha256()
                            file = open(part, "ab" if response.status == 206 else "wb")
                            try:
                                async for chunk in response.content.iter_chunked(CHUNK):
                                    if blocking:
                                        file.write(chunk)
                                    else:
                                        await asyncio.to_thread(file.write, chunk)
                                    digest.update(chunk)
                                    size += len(chunk)
                            finally:
                                if leave_open:
                                    await asyncio.to_thread(file.flush)
                                else:
                                    file.close()
                    break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    first_error = first_error or exc
                    if not (retry_all or retryable(exc)) or attempt == attempts_allowed - 1:
                        if raise_first:
                            raise first_error from None
                        raise
                    pause = delay(attempt, base_delay, max_delay) if wait else 0
                    if retry_after and told(exc) is not None:
                        pause = max(pause, told(exc))
                await sleep(pause)
            if digest.hexdigest() != sha256:
                raise Mismatch(dest)
            if rename:
                os.replace(part, dest)
            return returns(attempt, size)
        except Exception:
            if swallow:
                return 0
            raise
        finally:
            if cleanup:
                remove(part)

    return download_with_retry


@correct(check.download_with_retry, "the model answer's shape, with switches all set right")
async def retry_reference(session, url, dest, sha256, **options):
    return await make_retry()(session, url, dest, sha256, **options)


@correct(check.download_with_retry, "a helper per attempt, the partial's size read from the disk")
async def retry_middleware_style(
    session, url, dest, sha256, *, slots=None, max_attempts=5, base_delay=0.05, max_delay=1.0
):
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


@dataclass
class _Partial:
    path: str
    size: int = 0
    etag: str | None = None
    digest: Any = field(default_factory=hashlib.sha256)


@correct(check.download_with_retry, "a dataclass for the partial, while True, os.fdopen")
async def retry_dataclass_while_true(
    session, url, dest, sha256, *, slots=None, max_attempts=5, base_delay=0.05, max_delay=1.0
):
    part = _Partial(dest + ".part")
    attempt = 0
    try:
        while True:
            attempt += 1
            headers = {}
            if part.size and part.etag:
                headers = {"Range": f"bytes={part.size}-", "If-Range": part.etag}
            try:
                async with slots or contextlib.nullcontext():
                    async with session.get(url, headers=headers) as response:
                        response.raise_for_status()
                        if response.status == 200:
                            part = _Partial(part.path, etag=response.headers.get("ETag"))
                        flags = os.O_WRONLY | os.O_CREAT
                        flags |= os.O_APPEND if response.status == 206 else os.O_TRUNC
                        with os.fdopen(os.open(part.path, flags, 0o644), "wb") as file:
                            async for chunk in response.content.iter_any():
                                await asyncio.to_thread(file.write, chunk)
                                part.digest.update(chunk)
                                part.size += len(chunk)
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= max_attempts or not transient(exc):
                    raise
                pause = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
                pause = max(pause, told(exc) or 0)
            await asyncio.sleep(pause)
        if part.digest.hexdigest() != sha256:
            raise Mismatch(url)
        os.replace(part.path, dest)
        return attempt
    except BaseException:
        remove(part.path)
        raise


async def _sleep_in_steps(seconds):
    for _ in range(4):
        await asyncio.sleep(seconds / 4)


@correct(check.download_with_retry, "waits in four asyncio.sleep steps per pause")
async def retry_sleeps_in_steps(session, url, dest, sha256, **options):
    return await make_retry(sleep=_sleep_in_steps)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "never retries", problem="no-retry-status")
async def retry_never(session, url, dest, sha256, **options):
    await file_hash_while_streaming(session, url, dest, sha256)
    return 1


@wrong(
    check.download_with_retry,
    "three attempts whatever max_attempts says",
    problem="gave-up-early",
)
async def retry_three_attempts(session, url, dest, sha256, **options):
    return await make_retry(limit=3)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "no wait between attempts", problem="no-backoff")
async def retry_without_waiting(session, url, dest, sha256, **options):
    return await make_retry(wait=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "returns None", problem="wrong-return")
async def retry_returns_none(session, url, dest, sha256, **options):
    return await make_retry(returns=lambda attempt, size: None)(session, url, dest, sha256,
                                                                **options)  # fmt: skip


@wrong(check.download_with_retry, "returns the bytes written, as task 1", problem="wrong-return")
async def retry_returns_bytes(session, url, dest, sha256, **options):
    return await make_retry(returns=lambda attempt, size: size)(session, url, dest, sha256,
                                                                **options)  # fmt: skip


@wrong(check.download_with_retry, "ignores Retry-After", problem="ignored-retry-after")
async def retry_ignores_retry_after(session, url, dest, sha256, **options):
    return await make_retry(retry_after=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "retries 5xx only, not 429", problem="no-retry-429")
async def retry_5xx_only(session, url, dest, sha256, **options):
    def retryable(exc):
        if isinstance(exc, aiohttp.ClientResponseError):
            return exc.status >= 500 or exc.status == 408
        return transient(exc)

    return await make_retry(retryable=retryable)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "retries everything, a 404 too", problem="retried-404")
async def retry_everything(session, url, dest, sha256, **options):
    return await make_retry(retry_all=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "every ClientConnectionError, DNS and certificate too",
       problem="retried-permanent")  # fmt: skip
async def retry_every_connection_error(session, url, dest, sha256, **options):
    def retryable(exc):
        if isinstance(exc, aiohttp.ClientResponseError):
            return exc.status in RETRY_STATUSES
        return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                                TimeoutError))  # fmt: skip

    return await make_retry(retryable=retryable)(session, url, dest, sha256, **options)


@wrong(
    check.download_with_retry,
    "no resume: every attempt from byte 0",
    problem="restarted-from-zero",
)
async def retry_without_resume(session, url, dest, sha256, **options):
    return await make_retry(resume=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "eight attempts whatever max_attempts says",
       problem="attempt-limit-ignored")  # fmt: skip
async def retry_eight_attempts(session, url, dest, sha256, **options):
    return await make_retry(limit=8)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "returns 0 for every failure", problem="failure-swallowed")
async def retry_swallows(session, url, dest, sha256, **options):
    return await make_retry(swallow=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "does not retry timeouts", problem="no-retry-timeout")
async def retry_not_timeouts(session, url, dest, sha256, **options):
    def retryable(exc):
        return not isinstance(exc, TimeoutError) and transient(exc)

    return await make_retry(retryable=retryable)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "does not retry ClientPayloadError", problem="no-retry-drop")
async def retry_not_payload_errors(session, url, dest, sha256, **options):
    def retryable(exc):
        return not isinstance(exc, aiohttp.ClientPayloadError) and transient(exc)

    return await make_retry(retryable=retryable)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "retries statuses, drops and timeouts, not a reset",
       problem="no-retry-reset")  # fmt: skip
async def retry_not_connection_errors(session, url, dest, sha256, **options):
    def retryable(exc):
        return not isinstance(exc, aiohttp.ServerDisconnectedError) and transient(exc)

    return await make_retry(retryable=retryable)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "exponential plus jitter, no cap", problem="backoff-over-cap")
async def retry_uncapped(session, url, dest, sha256, **options):
    def delay(attempt, base, cap):
        step = base * 2**attempt
        return step + random.uniform(0, step)

    return await make_retry(delay=delay)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "the capped exponential without jitter", problem="no-jitter")
async def retry_without_jitter(session, url, dest, sha256, **options):
    return await make_retry(delay=lambda attempt, base, cap: min(cap, base * 2**attempt))(
        session, url, dest, sha256, **options
    )


@wrong(
    check.download_with_retry,
    "strips the ETag's quotes in If-Range",
    problem="if-range-mismatch",
)
async def retry_unquoted_etag(session, url, dest, sha256, **options):
    return await make_retry(etag_quotes=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "Range without If-Range", problem="no-if-range")
async def retry_without_if_range(session, url, dest, sha256, **options):
    return await make_retry(if_range=False)(session, url, dest, sha256, **options)


@wrong(
    check.download_with_retry,
    "recursion, Range without If-Range from the size on disk (was correct while the check's "
    "file never changed: a republished file now gets spliced)",
    problem="no-if-range",
)
async def retry_recursively(
    session, url, dest, sha256, *, max_attempts=5, base_delay=0.05, max_delay=1.0, _attempt=1
):
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


@wrong(check.download_with_retry, "'wb' on a 206: the resume overwrites", problem="resume-failed")
async def retry_overwrites_on_206(session, url, dest, sha256, **options):
    part, size, etag, attempts = dest + ".part", 0, None, 0
    try:
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
                if not transient(exc) or attempts >= options.get("max_attempts", 5):
                    raise
                await asyncio.sleep(max(backoff(attempts, 0.01, 0.05), told(exc) or 0))
        if await asyncio.to_thread(sha256_of, part) != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
        return attempts
    finally:
        remove(part)


@wrong(check.download_with_retry, "keeps the old digest on a 200", problem="restart-mishandled")
async def retry_keeps_digest_on_200(session, url, dest, sha256, **options):
    return await make_retry(new_digest_on_200=False)(session, url, dest, sha256, **options)


@wrong(
    check.download_with_retry,
    "raises the first error, not the last",
    problem="wrong-error-raised",
)
async def retry_raises_first_error(session, url, dest, sha256, **options):
    return await make_retry(raise_first=True)(session, url, dest, sha256, **options)


@wrong(
    check.download_with_retry,
    "keeps the .part after the last failure",
    problem="temp-file-left",
)
async def retry_keeps_part(session, url, dest, sha256, **options):
    return await make_retry(cleanup=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "os.replace in a finally, after a failure too",
       problem="partial-file-left")  # fmt: skip
async def retry_replaces_in_finally(session, url, dest, sha256, **options):
    part = dest + ".part"
    try:
        return await make_retry(cleanup=False)(session, url, dest, sha256, **options)
    finally:
        if os.path.exists(part):
            os.replace(part, dest)


@wrong(
    check.download_with_retry,
    "checks the status after writing the page",
    problem="error-page-saved",
)
async def retry_status_after_write(
    session, url, dest, sha256, *, slots=None, max_attempts=5, base_delay=0.05, max_delay=1.0
):
    part = dest + ".part"
    try:
        for attempt in range(max_attempts):
            try:
                async with session.get(url) as response:
                    with open(part, "wb") as file:
                        async for chunk in response.content.iter_chunked(CHUNK):
                            await asyncio.to_thread(file.write, chunk)
                    response.raise_for_status()
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not transient(exc) or attempt == max_attempts - 1:
                    raise
                await asyncio.sleep(max(backoff(attempt, base_delay, max_delay), told(exc) or 0))
        if await asyncio.to_thread(sha256_of, part) != sha256:
            raise Mismatch(dest)
        os.replace(part, dest)
        return attempt + 1
    finally:
        remove(part)


@wrong(check.download_with_retry, "never verifies, and 'wb' on a 206", problem="wrong-content")
async def retry_unverified_overwrite(session, url, dest, sha256, **options):
    part, size, etag, attempts = dest + ".part", 0, None, 0
    try:
        while attempts < options.get("max_attempts", 5):
            attempts += 1
            headers = {"Range": f"bytes={size}-", "If-Range": etag} if size else {}
            try:
                async with session.get(url, headers=headers) as response:
                    response.raise_for_status()
                    etag = response.headers.get("ETag", etag)
                    with open(part, "wb") as file:
                        async for chunk in response.content.iter_chunked(CHUNK):
                            await asyncio.to_thread(file.write, chunk)
                            size += len(chunk)
                break
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not transient(exc) or attempts >= options.get("max_attempts", 5):
                    raise
                await asyncio.sleep(max(backoff(attempts, 0.01, 0.05), told(exc) or 0))
        os.replace(part, dest)
        return attempts
    finally:
        remove(part)


@wrong(check.download_with_retry, "verifies, then forgets the os.replace", problem="no-file")
async def retry_forgets_rename(session, url, dest, sha256, **options):
    return await make_retry(rename=False)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "never closes the .part it opens", problem="file-left-open")
async def retry_leaves_files_open(session, url, dest, sha256, **options):
    return await make_retry(leave_open=True)(session, url, dest, sha256, **options)


@wrong(check.download_with_retry, "the stub", problem="not-implemented")
async def retry_stub(session, url, dest, sha256, **options):
    raise NotImplementedError


# --- Task 3: download_all --------------------------------------------------------------------


REFERENCE = make_retry()
GOOD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)


def report_entry(attempts=None, dest=None, exc=None):
    if exc is not None:
        return {"ok": False, "bytes": 0, "attempts": None, "error": f"{type(exc).__name__}"}
    return {"ok": True, "bytes": os.path.getsize(dest), "attempts": attempts, "error": None}


async def guarded(session, url, dest, sha256, slots=None, retry=REFERENCE):
    try:
        return report_entry(await retry(session, url, dest, sha256, slots=slots), dest)
    except Exception as exc:
        return report_entry(exc=exc)


@correct(check.download_all, "the model answer's shape: a slot per attempt, inside the retry")
async def all_with_semaphore(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job, slots) for job in jobs))


@correct(check.download_all, "both bounds, as the lesson does; the session closed in finally")
async def all_with_semaphore_and_connector_limit(jobs, concurrency):
    slots = asyncio.BoundedSemaphore(concurrency)
    connector = aiohttp.TCPConnector(limit_per_host=concurrency)
    session = aiohttp.ClientSession(connector=connector, timeout=GOOD_TIMEOUT)
    try:
        tasks = [asyncio.create_task(guarded(session, *job, slots)) for job in jobs]
        return [await task for task in tasks]
    finally:
        await session.close()


@correct(check.download_all, "only the connector's limit: a waiting file holds no connection")
async def all_with_connector_limit(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@correct(check.download_all, "gather(return_exceptions=True), then the report")
async def all_with_return_exceptions(jobs, concurrency):
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


class _Downloader:
    """A class holding the session and the slots for one job list."""

    def __init__(self, concurrency):
        self.slots = asyncio.Semaphore(concurrency)
        self.session = None

    async def __aenter__(self):
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=20)
        )
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()

    async def fetch(self, url, dest, sha256):
        try:
            attempts = await REFERENCE(self.session, url, dest, sha256, slots=self.slots)
        except (aiohttp.ClientError, TimeoutError, Mismatch) as exc:
            return {"ok": False, "bytes": 0, "attempts": None, "error": f"{exc!r}"[:80]}
        size = await asyncio.to_thread(os.path.getsize, dest)
        return {"ok": True, "bytes": size, "attempts": attempts, "error": None}


@correct(check.download_all, "a class with __aenter__, named tasks in a TaskGroup")
async def all_with_a_class(jobs, concurrency):
    async with _Downloader(concurrency) as downloader, asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(downloader.fetch(*job), name=os.path.basename(job[1]))
            for job in jobs
        ]
    return [task.result() for task in tasks]


@correct(check.download_all, "limit_per_host only, as_completed into a list by index")
async def all_limit_per_host_as_completed(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=15)
    report: list[dict | None] = [None] * len(jobs)

    async def indexed(index, session, job):
        return index, await guarded(session, *job)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for done in asyncio.as_completed(
            [indexed(index, session, job) for index, job in enumerate(jobs)]
        ):
            index, entry = await done
            report[index] = entry
    return report


@wrong(
    check.download_all,
    "the semaphore around the whole retry loop",
    problem="slot-held-while-waiting",
)
async def all_slot_held_through_retries(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(session, job):
        async with slots:
            return await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, job) for job in jobs))


@wrong(check.download_all, "`concurrency` workers, each sleeping through its retries",
       problem="slot-held-while-waiting")  # fmt: skip
async def all_with_workers(jobs, concurrency):
    pending: asyncio.Queue = asyncio.Queue()
    for index, job in enumerate(jobs):
        pending.put_nowait((index, job))
    report: list = [None] * len(jobs)
    timeout = aiohttp.ClientTimeout(sock_read=30)  # total is None when only sock_read is given

    async def worker(session):
        while not pending.empty():
            index, job = pending.get_nowait()
            report[index] = await guarded(session, *job)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return report


@wrong(check.download_all, "a session per file", problem="session-per-file")
async def all_session_per_file(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(job):
        async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
            return await guarded(session, *job, slots)

    return await asyncio.gather(*(one(job) for job in jobs))


@wrong(check.download_all, "never closes its session", problem="session-left-open")
async def all_session_left_open(jobs, concurrency):
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=GOOD_TIMEOUT
    )
    return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@wrong(check.download_all, "the default timeout (total=300)", problem="total-timeout")
async def all_default_timeout(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@wrong(check.download_all, "total=None and nothing else", problem="no-stall-timeout")
async def all_no_timeout_at_all(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@wrong(check.download_all, "no bound at all", problem="unbounded")
async def all_unbounded(jobs, concurrency):
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@wrong(check.download_all, "Semaphore(concurrency * 2)", problem="unbounded")
async def all_bound_too_big(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency * 2)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job, slots) for job in jobs))


@wrong(check.download_all, "a new semaphore per job: bounds nothing", problem="unbounded")
async def all_semaphore_per_job(jobs, concurrency):
    async def one(session, job):
        return await guarded(session, *job, asyncio.Semaphore(concurrency))

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, job) for job in jobs))


@wrong(
    check.download_all,
    "queues in the pool with a connect timeout",
    problem="connect-timeout-in-queue",
)
async def all_queue_in_pool_with_connect_timeout(jobs, concurrency):
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=None, connect=0.05, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(guarded(session, *job) for job in jobs))


@wrong(check.download_all, "the exception object in `error`", problem="wrong-report")
async def all_error_as_exception_object(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [entry if entry["ok"] else {**entry, "error": ValueError("x")} for entry in report]


@wrong(check.download_all, "one file after another", problem="sequential")
async def all_sequential(jobs, concurrency):
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return [await guarded(session, *job) for job in jobs]


@wrong(check.download_all, "no per-file catch", problem="one-failure-stops-all")
async def all_lets_failures_escape(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)

    async def one(session, url, dest, sha256):
        return report_entry(await REFERENCE(session, url, dest, sha256, slots=slots), dest)

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(one(session, *job) for job in jobs))


@wrong(check.download_all, "every entry ok", problem="wrong-report")
async def all_reports_every_file_ok(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{**entry, "ok": True} for entry in report]


@wrong(check.download_all, "no `attempts` key", problem="wrong-report")
async def all_without_attempts(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{key: value for key, value in entry.items() if key != "attempts"} for entry in report]


@wrong(check.download_all, "attempts always 1", problem="wrong-report")
async def all_attempts_always_one(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [{**entry, "attempts": 1} if entry["ok"] else entry for entry in report]


@wrong(check.download_all, "bytes from Content-Length of the job list: None for failures",
       problem="wrong-report")  # fmt: skip
async def all_failure_bytes_none(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return [entry if entry["ok"] else {**entry, "bytes": None} for entry in report]


@wrong(check.download_all, "appends each entry as its file finishes", problem="report-order")
async def all_in_completion_order(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    report = []

    async def one(session, job):
        report.append(await guarded(session, *job, slots))

    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        await asyncio.gather(*(one(session, job) for job in jobs))
    return report


@wrong(check.download_all, "a dict keyed by dest", problem="wrong-return-type")
async def all_returns_a_dict(jobs, concurrency):
    report = await all_with_semaphore(jobs, concurrency)
    return {job[1]: entry for job, entry in zip(jobs, report, strict=True)}


@wrong(check.download_all, "only the successes", problem="wrong-count")
async def all_successes_only(jobs, concurrency):
    return [entry for entry in await all_with_semaphore(jobs, concurrency) if entry["ok"]]


@wrong(check.download_all, "passes dest + '.part' and forgets to rename", problem="wrong-report")
async def all_downloads_under_another_name(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        entries = await asyncio.gather(
            *(guarded(session, url, dest + ".tmp", sha, slots) for url, dest, sha in jobs)
        )
    return entries


@wrong(
    check.download_all,
    "a retry that keeps the .part of a wrong checksum",
    problem="temp-file-left",
)
async def all_retry_keeps_part(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    retry = make_retry(cleanup=False)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(
            *(guarded(session, *job, slots, retry=retry) for job in jobs)
        )


@wrong(check.download_all, "a retry that renames in finally", problem="partial-file-left")
async def all_retry_renames_failures(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(
            *(guarded(session, *job, slots, retry=retry_replaces_in_finally) for job in jobs)
        )


@wrong(check.download_all, "a retry that never closes its files", problem="file-left-open")
async def all_retry_leaves_files_open(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    retry = make_retry(leave_open=True)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job, slots, retry=retry) for job in jobs))


@wrong(check.download_all, "a retry that writes on the loop", problem="blocked-loop")
async def all_retry_blocks(jobs, concurrency):
    slots = asyncio.Semaphore(concurrency)
    retry = make_retry(blocking=True)
    async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
        return await asyncio.gather(*(guarded(session, *job, slots, retry=retry) for job in jobs))


@wrong(check.download_all, "the stub", problem="not-implemented")
async def all_stub(jobs, concurrency):
    raise NotImplementedError


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_the_404_page_written_to_the_part_is_named():
    verdict = check.download_file.diagnose(file_status_after_writing)
    assert "error page was written to" in verdict.message
    assert "missing.bin.part" in verdict.message


def test_retry_after_is_judged_from_the_sleep_asked_for():
    verdict = check.download_with_retry.diagnose(retry_ignores_retry_after)
    assert "asked asyncio.sleep for" in verdict.message
    assert "Retry-After: 1" in verdict.message


def test_a_republished_file_without_if_range_is_explained():
    verdict = check.download_with_retry.diagnose(retry_without_if_range)
    assert "republished" in verdict.message
    assert "without If-Range" in verdict.message


def test_a_hard_coded_bound_is_caught_by_another_concurrency():
    async def all_semaphore_three(jobs, concurrency):
        slots = asyncio.Semaphore(3)
        async with aiohttp.ClientSession(timeout=GOOD_TIMEOUT) as session:
            return await asyncio.gather(*(guarded(session, *job, slots) for job in jobs))

    verdict = check.download_all.diagnose(all_semaphore_three)
    assert verdict.problem == "unbounded", verdict.render()
    assert "concurrency=2" in verdict.message
