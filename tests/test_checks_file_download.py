"""Exercise 09's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import file_download as check

CHUNK = 64 * 1024


class Mismatch(Exception):
    pass


# --- Task 1: download ----------------------------------------------------------------------


@correct(check.download, "iter_chunked, each write in asyncio.to_thread")
async def download_to_thread(session, url, dest):
    async with session.get(url) as response:
        response.raise_for_status()
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


@correct(check.download, "Path.open in a thread, iter_any, the loop's default executor")
async def download_iter_any_pathlib(session, url, dest):
    loop = asyncio.get_running_loop()
    file = await asyncio.to_thread(Path(dest).open, "wb")
    try:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                await loop.run_in_executor(None, file.write, chunk)
    finally:
        await asyncio.to_thread(file.close)


@correct(check.download, "os.open + os.fdopen, iter_chunks(), writes in a thread")
async def download_fdopen_iter_chunks(session, url, dest):
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as file:
        async with session.get(url) as response:
            async for data, _ in response.content.iter_chunks():
                await asyncio.to_thread(file.write, data)


@correct(check.download, "its own one-thread executor, 512 KiB batches")
async def download_own_executor_batches(session, url, dest):
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, open(dest, "wb") as file:
        batch = bytearray()
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(CHUNK):
                batch += chunk
                if len(batch) >= 512 * 1024:
                    await loop.run_in_executor(pool, file.write, bytes(batch))
                    batch.clear()
        await loop.run_in_executor(pool, file.write, bytes(batch))


@wrong(check.download, "the seed: file.write on the loop", problem="blocked-loop")
async def download_seed(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb") as f:
            async for chunk in response.content.iter_chunked(8192):
                f.write(chunk)


@wrong(check.download, "writes on the loop, in 1 MiB batches", problem="blocked-loop")
async def download_batches_on_loop(session, url, dest):
    with open(dest, "wb") as file:
        batch = bytearray()
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(CHUNK):
                batch += chunk
                if len(batch) >= 1024 * 1024:
                    file.write(batch)
                    batch.clear()
        await asyncio.to_thread(file.write, bytes(batch))


@wrong(
    check.download, "reads the whole body, writes it in a thread",
    problem="whole-body-in-memory",
)
async def download_read_whole(session, url, dest):
    async with session.get(url) as response:
        body = await response.read()
    await asyncio.to_thread(Path(dest).write_bytes, body)


@wrong(check.download, "a bytearray buffer written at the end", problem="whole-body-in-memory")
async def download_buffer_never_emptied(session, url, dest):
    buffer = bytearray()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK):
            buffer += chunk
    with open(dest, "wb") as file:
        await asyncio.to_thread(file.write, buffer)


@wrong(check.download, "peeks at the body first: that chunk is lost", problem="wrong-content")
async def download_skips_first_chunk(session, url, dest):
    async with session.get(url) as response:
        await response.content.readany()
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


@wrong(check.download, "readexactly() chunks: drops the last, shorter one", problem="wrong-content")
async def download_drops_last_chunk(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb") as file:
            while True:
                try:
                    chunk = await response.content.readexactly(CHUNK)
                except asyncio.IncompleteReadError:
                    break
                await asyncio.to_thread(file.write, chunk)


@wrong(check.download, "writes to dest + '.tmp' and never renames it", problem="no-file")
async def download_to_other_name(session, url, dest):
    async with session.get(url) as response:
        with open(dest + ".tmp", "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


@wrong(check.download, "catches ClientPayloadError and returns", problem="failure-swallowed")
async def download_swallows_cut(session, url, dest):
    try:
        await download_to_thread(session, url, dest)
    except aiohttp.ClientPayloadError:
        pass


@wrong(check.download, "never closes the file", problem="file-left-open")
async def download_never_closes(session, url, dest):
    file = open(dest, "wb")  # the mistake under test: never closed
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK):
            await asyncio.to_thread(file.write, chunk)
    await asyncio.to_thread(file.flush)


@wrong(check.download, "closes the file only when nothing failed", problem="file-left-open")
async def download_closes_on_success_only(session, url, dest):
    file = await asyncio.to_thread(open, dest, "wb")
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK):
            await asyncio.to_thread(file.write, chunk)
    await asyncio.to_thread(file.close)


@wrong(check.download, "the stub", problem="not-implemented")
async def download_stub(session, url, dest):
    raise NotImplementedError


# --- Task 2: download_verified -------------------------------------------------------------


async def _stream(response, path, digest=None, mode="wb"):
    with open(path, mode) as file:
        async for chunk in response.content.iter_chunked(CHUNK):
            if digest is not None:
                digest.update(chunk)
            await asyncio.to_thread(file.write, chunk)


@correct(check.download_verified, ".part, digest while streaming, os.replace")
async def verified_part_then_replace(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream(response, temp, digest)
        if digest.hexdigest() != sha256:
            raise Mismatch("checksum mismatch")
        os.replace(temp, dest)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


@correct(check.download_verified, "mkstemp beside dest, the digest of the file afterwards")
async def verified_mkstemp_hash_after(session, url, dest, sha256):
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(dest), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            async with session.get(url) as response:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await asyncio.to_thread(file.write, chunk)

        def file_digest() -> str:
            with open(temp, "rb") as source:
                return hashlib.file_digest(source, "sha256").hexdigest()

        if await asyncio.to_thread(file_digest) != sha256:
            raise RuntimeError("corrupt download")
        await asyncio.to_thread(os.replace, temp, dest)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


@correct(check.download_verified, "Path.with_suffix, raise_for_status=True, Path.replace")
async def verified_pathlib_suffix(session, url, dest, sha256):
    final = Path(dest)
    part = final.with_suffix(final.suffix + ".partial")
    digest = hashlib.sha256()
    try:
        async with session.get(url, raise_for_status=True) as response:
            await _stream(response, str(part), digest)
        if digest.hexdigest() != sha256:
            raise ValueError(f"{final.name}: SHA-256 mismatch")
        part.replace(final)
    finally:
        part.unlink(missing_ok=True)


@correct(check.download_verified, "shutil.move within the directory (a rename there)")
async def verified_shutil_move(session, url, dest, sha256):
    temp = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".download")
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, temp, digest)
    if digest.hexdigest() != sha256:
        os.remove(temp)
        raise Mismatch(dest)
    shutil.move(temp, dest)


@wrong(
    check.download_verified, "writes dest directly, checks afterwards",
    problem="writes-final-name",
)
async def verified_writes_final_name(session, url, dest, sha256):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        await _stream(response, dest, digest)
    if digest.hexdigest() != sha256:
        raise ValueError("checksum mismatch")


@wrong(
    check.download_verified, "writes dest, deletes it on any failure",
    problem="writes-final-name",
)
async def verified_writes_dest_removes_on_failure(session, url, dest, sha256):
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream(response, dest, digest)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(dest)
        raise


@wrong(check.download_verified, "never compares the checksum", problem="checksum-ignored")
async def verified_ignores_checksum(session, url, dest, sha256):
    temp = dest + ".part"
    async with session.get(url) as response:
        await _stream(response, temp)
    os.replace(temp, dest)


@wrong(check.download_verified, "catches every error and prints it", problem="failure-swallowed")
async def verified_swallows_errors(session, url, dest, sha256):
    try:
        await verified_part_then_replace(session, url, dest, sha256)
    except Exception as exc:
        print("download failed:", type(exc).__name__)


@wrong(
    check.download_verified, "renames before comparing the checksum",
    problem="unverified-file-left",
)
async def verified_checks_after_rename(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        await _stream(response, temp, digest)
    os.replace(temp, dest)
    if digest.hexdigest() != sha256:
        raise ValueError("checksum mismatch")


@wrong(
    check.download_verified, "os.replace in a finally: a cut file is renamed too",
    problem="partial-file-left",
)
async def verified_replaces_in_finally(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream(response, temp, digest)
    finally:
        os.replace(temp, dest)
    if digest.hexdigest() != sha256:
        os.remove(dest)
        raise Mismatch(dest)


@wrong(
    check.download_verified, "compares the hex digest with sha256.encode()",
    problem="healthy-download-failed",
)
async def verified_compares_with_bytes(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        await _stream(response, temp, digest)
    if digest.hexdigest() != sha256.encode():
        os.remove(temp)
        raise Mismatch(dest)
    os.replace(temp, dest)


@wrong(check.download_verified, "verifies, then forgets the os.replace", problem="no-file")
async def verified_forgets_rename(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, temp, digest)
    if digest.hexdigest() != sha256:
        raise Mismatch(dest)


@wrong(
    check.download_verified, "reopens the temporary file per chunk: only the last survives",
    problem="wrong-content",
)
async def verified_reopens_per_chunk(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK):
            digest.update(chunk)
            await asyncio.to_thread(Path(temp).write_bytes, chunk)
    if digest.hexdigest() != sha256:
        os.remove(temp)
        raise Mismatch(dest)
    os.replace(temp, dest)


@wrong(
    check.download_verified, "a relative temporary name: lands in the working directory",
    problem="temp-elsewhere",
)
async def verified_temp_in_cwd(session, url, dest, sha256):
    temp = os.path.basename(dest) + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream(response, temp, digest)
        if digest.hexdigest() != sha256:
            raise Mismatch(dest)
        os.replace(temp, dest)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


@wrong(check.download_verified, "NamedTemporaryFile without dir=", problem="temp-elsewhere")
async def verified_named_temporary_default_dir(session, url, dest, sha256):
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(delete=False) as temp:
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(CHUNK):
                digest.update(chunk)
                await asyncio.to_thread(temp.write, chunk)
    if digest.hexdigest() != sha256:
        os.remove(temp.name)
        raise Mismatch(dest)
    shutil.move(temp.name, dest)


# --- Task 3: resume_download ---------------------------------------------------------------


@correct(check.resume_download, "Range and If-Range, the mode from the status")
async def resume_with_if_range(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@correct(check.resume_download, "r+b, seek to the Content-Range start, truncate")
async def resume_seek_and_truncate(session, url, path, etag):
    offset = await asyncio.to_thread(os.path.getsize, path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        start = 0
        if response.status == 206:
            start = int(response.headers["Content-Range"].split()[1].split("-")[0])
        with open(path, "r+b") as file:
            await asyncio.to_thread(file.seek, start)
            await asyncio.to_thread(file.truncate)
            async for chunk in response.content.iter_any():
                await asyncio.to_thread(file.write, chunk)


@correct(check.resume_download, "HEAD first, then an explicit end: bytes=<size>-<last>")
async def resume_head_then_explicit_range(session, url, path, etag):
    async with session.head(url) as head:
        total = head.content_length
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-{total - 1}", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@correct(check.resume_download, "the mode from Content-Range, raise_for_status=True")
async def resume_content_range_header(session, url, path, etag):
    size = Path(path).stat().st_size
    headers = {"Range": f"bytes={size}-", "If-Range": etag}
    async with session.get(url, headers=headers, raise_for_status=True) as response:
        partial = "Content-Range" in response.headers
        await _stream(response, path, mode="ab" if partial else "wb")


@wrong(check.resume_download, "no Range: downloads from zero", problem="restarted-from-zero")
async def resume_from_zero(session, url, path, etag):
    async with session.get(url) as response:
        await _stream(response, path)


@wrong(check.resume_download, "'wb' whatever the status", problem="overwrote-partial")
async def resume_overwrites(session, url, path, etag):
    offset = os.path.getsize(path)
    async with session.get(url, headers={"Range": f"bytes={offset}-", "If-Range": etag}) as resp:
        await _stream(resp, path, mode="wb")


@wrong(check.resume_download, "bytes=<size + 1>-", problem="wrong-range")
async def resume_off_by_one(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset + 1}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        await _stream(response, path, mode="ab")


@wrong(check.resume_download, "bytes=0-<size>: the range of what it has", problem="wrong-range")
async def resume_asks_for_what_it_has(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes=0-{offset}", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "always appends, a 200 too", problem="appended-whole-file")
async def resume_always_appends(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        await _stream(response, path, mode="ab")


@wrong(check.resume_download, "Range without If-Range", problem="no-if-range")
async def resume_without_if_range(session, url, path, etag):
    offset = os.path.getsize(path)
    async with session.get(url, headers={"Range": f"bytes={offset}-"}) as response:
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "sends the ETag as a weak one, W/...", problem="if-range-mismatch")
async def resume_weak_etag(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": f"W/{etag}"}
    async with session.get(url, headers=headers) as response:
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "file.write on the loop", problem="blocked-loop")
async def resume_blocking_writes(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        with open(path, "ab" if response.status == 206 else "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                file.write(chunk)


@wrong(
    check.resume_download, "r+b without a seek: the rest overwrites the start",
    problem="overwrote-partial",
)
async def resume_writes_over_the_start(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        with open(path, "r+b") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


@wrong(
    check.resume_download, "peeks at the 206 body first: that piece is lost",
    problem="resume-corrupt",
)
async def resume_skips_first_piece(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        await response.content.readany()
        await _stream(response, path, mode="ab" if response.status == 206 else "wb")


@wrong(
    check.resume_download, "catches the broken connection and returns",
    problem="failure-swallowed",
)
async def resume_swallows_cut(session, url, path, etag):
    try:
        await resume_with_if_range(session, url, path, etag)
    except aiohttp.ClientPayloadError:
        return


@wrong(check.resume_download, "deletes the file when the resume fails", problem="partial-lost")
async def resume_deletes_on_failure(session, url, path, etag):
    try:
        await resume_with_if_range(session, url, path, etag)
    except aiohttp.ClientError:
        os.remove(path)
        raise


@wrong(check.resume_download, "empties the file when the resume fails", problem="partial-lost")
async def resume_empties_on_failure(session, url, path, etag):
    try:
        await resume_with_if_range(session, url, path, etag)
    except aiohttp.ClientPayloadError:
        with open(path, "wb"):  # "start clean next time"
            pass
        raise


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_loop_writes_name_the_line_and_the_bytes():
    verdict = check.download.diagnose(download_seed)
    assert "on the event loop's thread" in verdict.message
    assert "`f.write(chunk)`" in verdict.message
    assert "MiB" in verdict.message


def test_no_if_range_says_what_the_server_received():
    verdict = check.resume_download.diagnose(resume_without_if_range)
    assert "without If-Range" in verdict.message
    assert "Range: bytes=" in verdict.message


def test_a_rejected_good_download_is_named_as_such():
    verdict = check.download_verified.diagnose(verified_compares_with_bytes)
    assert "good download" in verdict.message
    assert "hexdigest" in verdict.hint


def test_verdicts_repeat():
    first = check.resume_download.diagnose(resume_off_by_one)
    assert first == check.resume_download.diagnose(resume_off_by_one)
