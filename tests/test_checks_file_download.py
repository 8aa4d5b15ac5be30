"""Exercise 09's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from local_server.checks import file_download as check

CHUNK = 64 * 1024

# --- Task 1: download ----------------------------------------------------------------------


async def download_to_thread(session, url, dest):
    async with session.get(url) as response:
        response.raise_for_status()
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def download_iter_any_pathlib(session, url, dest):
    """Correct too: Path.open in a thread, iter_any, the loop's default executor."""
    loop = asyncio.get_running_loop()
    file = await asyncio.to_thread(Path(dest).open, "wb")
    try:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                await loop.run_in_executor(None, file.write, chunk)
    finally:
        await asyncio.to_thread(file.close)


@pytest.mark.parametrize("answer", [download_to_thread, download_iter_any_pathlib])
def test_download_accepts_correct_alternatives(answer):
    verdict = check.download.diagnose(answer)
    assert verdict.passed, verdict.render()


async def download_seed(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb") as f:
            async for chunk in response.content.iter_chunked(8192):
                f.write(chunk)


async def download_read_whole(session, url, dest):
    async with session.get(url) as response:
        body = await response.read()
    await asyncio.to_thread(Path(dest).write_bytes, body)


async def download_skips_first_chunk(session, url, dest):
    async with session.get(url) as response:
        await response.content.readany()  # "peek" at the body: that chunk is gone
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (download_seed, "blocked-loop"),
        (download_read_whole, "whole-body-in-memory"),
        (download_skips_first_chunk, "wrong-content"),
    ],
)
def test_download_diagnoses_mistakes(answer, problem):
    assert check.download.diagnose(answer).problem == problem


async def download_stub(session, url, dest):
    raise NotImplementedError


def test_stub_is_not_implemented():
    assert check.download.diagnose(download_stub).problem == "not-implemented"


# --- Task 2: download_verified -------------------------------------------------------------


async def verified_part_then_replace(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(temp, "wb") as file:
                async for chunk in response.content.iter_chunked(CHUNK):
                    digest.update(chunk)
                    await asyncio.to_thread(file.write, chunk)
        if digest.hexdigest() != sha256:
            raise ValueError("checksum mismatch")
        os.replace(temp, dest)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


async def verified_mkstemp_hash_after(session, url, dest, sha256):
    """Correct too: tempfile.mkstemp beside dest, the digest computed from the file after."""
    import tempfile

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


@pytest.mark.parametrize("answer", [verified_part_then_replace, verified_mkstemp_hash_after])
def test_download_verified_accepts_correct_alternatives(answer):
    verdict = check.download_verified.diagnose(answer)
    assert verdict.passed, verdict.render()


async def verified_writes_final_name(session, url, dest, sha256):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                digest.update(chunk)
                await asyncio.to_thread(file.write, chunk)
    if digest.hexdigest() != sha256:
        raise ValueError("checksum mismatch")


async def verified_ignores_checksum(session, url, dest, sha256):
    temp = dest + ".part"
    async with session.get(url) as response:
        with open(temp, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)
    os.replace(temp, dest)


async def verified_swallows_errors(session, url, dest, sha256):
    try:
        await verified_part_then_replace(session, url, dest, sha256)
    except Exception as exc:
        print("download failed:", type(exc).__name__)


async def verified_checks_after_rename(session, url, dest, sha256):
    temp = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        with open(temp, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                digest.update(chunk)
                await asyncio.to_thread(file.write, chunk)
    os.replace(temp, dest)
    if digest.hexdigest() != sha256:
        raise ValueError("checksum mismatch")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (verified_writes_final_name, "partial-file-left"),
        (verified_ignores_checksum, "checksum-ignored"),
        (verified_swallows_errors, "failure-swallowed"),
        (verified_checks_after_rename, "unverified-file-left"),
    ],
)
def test_download_verified_diagnoses_mistakes(answer, problem, capsys):
    # capsys: verified_swallows_errors prints
    assert check.download_verified.diagnose(answer).problem == problem


# --- Task 3: resume_download ---------------------------------------------------------------


async def resume_with_if_range(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        mode = "ab" if response.status == 206 else "wb"
        with open(path, mode) as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_seek_and_truncate(session, url, path, etag):
    """Correct too: r+b, seek to the start Content-Range names, truncate on a full answer."""
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


@pytest.mark.parametrize("answer", [resume_with_if_range, resume_seek_and_truncate])
def test_resume_download_accepts_correct_alternatives(answer):
    verdict = check.resume_download.diagnose(answer)
    assert verdict.passed, verdict.render()


async def resume_from_zero(session, url, path, etag):
    async with session.get(url) as response:
        with open(path, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_overwrites(session, url, path, etag):
    offset = os.path.getsize(path)
    async with session.get(url, headers={"Range": f"bytes={offset}-", "If-Range": etag}) as resp:
        with open(path, "wb") as file:
            async for chunk in resp.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_off_by_one(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset + 1}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        with open(path, "ab") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_always_appends(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        with open(path, "ab") as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_without_if_range(session, url, path, etag):
    offset = os.path.getsize(path)
    async with session.get(url, headers={"Range": f"bytes={offset}-"}) as response:
        mode = "ab" if response.status == 206 else "wb"
        with open(path, mode) as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                await asyncio.to_thread(file.write, chunk)


async def resume_blocking_writes(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        mode = "ab" if response.status == 206 else "wb"
        with open(path, mode) as file:
            async for chunk in response.content.iter_chunked(CHUNK):
                file.write(chunk)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (resume_from_zero, "restarted-from-zero"),
        (resume_overwrites, "resume-corrupt"),
        (resume_off_by_one, "resume-corrupt"),
        (resume_always_appends, "appended-whole-file"),
        (resume_without_if_range, "no-if-range"),
        (resume_blocking_writes, "blocked-loop"),
    ],
)
def test_resume_download_diagnoses_mistakes(answer, problem):
    assert check.resume_download.diagnose(answer).problem == problem
