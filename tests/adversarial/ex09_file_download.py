"""Learner answers to exercise 09 (file download), right and wrong, written from the task text."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import tempfile
import threading
from pathlib import Path

from adversarial import correct, wrong
from local_server.checks import file_download as check

CHUNK_SIZE = 64 * 1024


class ChecksumMismatch(Exception):
    """The downloaded bytes do not have the expected SHA-256."""


async def _stream(response, path, mode="wb", digest=None):
    """Write the body to ``path`` in chunks, off the loop, feeding ``digest`` if given."""
    with open(path, mode) as file:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            if digest is not None:
                digest.update(chunk)
            await asyncio.to_thread(file.write, chunk)


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- Task 1 · download ---------------------------------------------------------------------


@correct(check.download, "opens the file and writes each chunk with run_in_executor")
async def download_run_in_executor(session, url, dest):
    loop = asyncio.get_running_loop()
    async with session.get(url) as response:
        response.raise_for_status()
        file = await loop.run_in_executor(None, open, dest, "wb")
        try:
            async for chunk in response.content.iter_chunked(256 * 1024):
                await loop.run_in_executor(None, file.write, chunk)
        finally:
            await loop.run_in_executor(None, file.close)


@correct(check.download, "os.write on an fd, in a worker thread, with iter_any")
async def download_os_write_fd(session, url, dest):
    async with session.get(url) as response:
        response.raise_for_status()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            async for chunk in response.content.iter_any():
                view = memoryview(chunk)
                while view:
                    written = await asyncio.to_thread(os.write, fd, view)
                    view = view[written:]
        finally:
            os.close(fd)


@correct(check.download, "a writer thread fed through a bounded queue.Queue")
async def download_writer_thread(session, url, dest):
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)

    def writer():
        with open(dest, "wb") as file:
            while (chunk := chunks.get()) is not None:
                file.write(chunk)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                await asyncio.to_thread(chunks.put, chunk)
    finally:
        await asyncio.to_thread(chunks.put, None)
        await asyncio.to_thread(thread.join)


@correct(check.download, "pathlib open, readchunk() loop, batches of 1 MiB written in a thread")
async def download_batched_pathlib(session, url, dest):
    async with session.get(url) as response:
        response.raise_for_status()
        with Path(dest).open("wb") as file:
            buffer = bytearray()
            while True:
                chunk, _ = await response.content.readchunk()
                if chunk:
                    buffer += chunk
                if buffer and (len(buffer) >= 1024 * 1024 or not chunk):
                    await asyncio.to_thread(file.write, bytes(buffer))
                    buffer.clear()
                if not chunk:
                    break


@wrong(check.download, "the seed: file.write(chunk) on the event loop",
       rule="no more than 1 MiB may be written on the event loop's thread",
       problem="blocked-loop")
async def download_blocking_write(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                file.write(chunk)


@wrong(check.download, "os.write(fd, chunk) on the loop, thinking a raw syscall is cheap",
       rule="no more than 1 MiB may be written on the event loop's thread",
       problem="blocked-loop")
async def download_os_write_on_loop(session, url, dest):
    async with session.get(url) as response:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                os.write(fd, chunk)
        finally:
            os.close(fd)


@wrong(check.download, "await response.read() of the whole body, written in a thread",
       rule="it must stay below half the file's size, so read the body in chunks",
       problem="whole-body-in-memory")
async def download_read_whole(session, url, dest):
    async with session.get(url) as response:
        body = await response.read()
    with open(dest, "wb") as file:
        await asyncio.to_thread(file.write, body)


@wrong(check.download, "collects every chunk in a list and writes them at the end",
       rule="it must stay below half the file's size",
       problem="whole-body-in-memory")
async def download_collects_chunks(session, url, dest):
    chunks = []
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            chunks.append(chunk)
    with open(dest, "wb") as file:
        await asyncio.to_thread(file.write, b"".join(chunks))


@wrong(check.download, "forgot to await asyncio.to_thread: nothing is written",
       rule="writes the body to the file `dest`",
       problem="missing-await")
async def download_forgot_await(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                asyncio.to_thread(file.write, chunk)


@wrong(check.download, "reopens dest with 'wb' for every chunk: only the last chunk survives",
       rule="writes the body to the file `dest`",
       problem="wrong-content")
async def download_reopens_per_chunk(session, url, dest):
    def write(chunk):
        with open(dest, "wb") as file:
            file.write(chunk)

    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            await asyncio.to_thread(write, chunk)


@wrong(check.download, "writes in a thread, but flushes the file on the loop after each chunk",
       rule="no more than 1 MiB may be written on the event loop's thread",
       problem="blocked-loop")
async def download_flush_on_loop(session, url, dest):
    async with session.get(url) as response:
        with open(dest, "wb", buffering=4 * 1024 * 1024) as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                await asyncio.to_thread(file.write, chunk)
                if file.tell() % (1024 * 1024) == 0:
                    file.flush()


# --- Task 2 · download_verified ------------------------------------------------------------


@correct(check.download_verified, "NamedTemporaryFile(dir=..., delete=False) + os.replace")
async def download_verified_named_temporary(session, url, dest, sha256):
    directory = os.path.dirname(dest) or "."
    digest = hashlib.sha256()
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix=".dl-", delete=False)
    try:
        with tmp:
            async with session.get(url) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    digest.update(chunk)
                    await asyncio.to_thread(tmp.write, chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(dest)
        os.replace(tmp.name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp.name)
        raise


@correct(check.download_verified, "hashes afterwards by re-reading the .part in a thread")
async def download_verified_hash_after(session, url, dest, sha256):
    part = dest + ".part"
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, part)
    if await asyncio.to_thread(_sha256_of, part) != sha256:
        os.remove(part)
        raise ChecksumMismatch(url)
    os.replace(part, dest)


@correct(check.download_verified, "mkstemp in the same directory, os.write in a thread")
async def download_verified_mkstemp(session, url, dest, sha256):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), suffix=".part")
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                digest.update(chunk)
                await asyncio.to_thread(os.write, fd, chunk)
    finally:
        os.close(fd)
    if digest.hexdigest() != sha256:
        os.remove(tmp)
        raise ValueError("checksum mismatch")
    os.replace(tmp, dest)


@correct(check.download_verified, "a small class with pathlib; Path.replace does os.replace")
async def download_verified_class(session, url, dest, sha256):
    class Download:
        def __init__(self) -> None:
            self.final = Path(dest)
            self.part = self.final.with_name(self.final.name + ".tmp")
            self.digest = hashlib.sha256()

        async def run(self) -> None:
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    await _stream(response, str(self.part), digest=self.digest)
                if self.digest.hexdigest() != sha256:
                    raise ChecksumMismatch(self.final.name)
            except BaseException:
                self.part.unlink(missing_ok=True)
                raise
            self.part.replace(self.final)

    await Download().run()


@wrong(check.download_verified, "writes straight to dest and removes it only on a bad checksum",
       rule="nothing is left under the name `dest`: write to a temporary name",
       problem="writes-final-name")
async def download_verified_writes_dest(session, url, dest, sha256):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, dest, digest=digest)
    if digest.hexdigest() != sha256:
        os.remove(dest)
        raise ChecksumMismatch(dest)


@wrong(check.download_verified, "renames to dest before comparing the checksum",
       rule="rename it to `dest` ... only after every byte arrived and the checksum matched",
       problem="unverified-file-left")
async def download_verified_rename_before_check(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, part, digest=digest)
    os.replace(part, dest)
    if digest.hexdigest() != sha256:
        raise ChecksumMismatch(dest)


@wrong(check.download_verified, "swallows the cut connection and returns as if it worked",
       rule="When anything goes wrong it raises",
       problem="failure-swallowed")
async def download_verified_swallows_error(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            await _stream(response, part, digest=digest)
    except Exception:
        return
    if digest.hexdigest() != sha256:
        os.remove(part)
        raise ChecksumMismatch(dest)
    os.replace(part, dest)


@wrong(check.download_verified, "never compares the checksum",
       rule="its SHA-256 (hex) equals `sha256`",
       problem="checksum-ignored")
async def download_verified_no_checksum(session, url, dest, sha256):
    part = dest + ".part"
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, part)
    os.replace(part, dest)


@wrong(check.download_verified, "compares digest() (bytes) with the hex string: always differs",
       rule="its SHA-256 (hex) equals `sha256`",
       problem="healthy-download-failed")
async def download_verified_bytes_digest(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, part, digest=digest)
    if digest.digest() != sha256:
        os.remove(part)
        raise ChecksumMismatch(dest)
    os.replace(part, dest)


@wrong(check.download_verified, "creates a new sha256() for every chunk: hashes the last one only",
       rule="its SHA-256 (hex) equals `sha256`",
       problem="healthy-download-failed")
async def download_verified_digest_per_chunk(session, url, dest, sha256):
    part = dest + ".part"
    hexdigest = ""
    async with session.get(url) as response:
        response.raise_for_status()
        with open(part, "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                hexdigest = hashlib.sha256(chunk).hexdigest()
                await asyncio.to_thread(file.write, chunk)
    if hexdigest != sha256:
        os.remove(part)
        raise ChecksumMismatch(dest)
    os.replace(part, dest)


@wrong(check.download_verified, "returns False on a bad checksum instead of raising",
       rule="When anything goes wrong it raises",
       problem="checksum-ignored")
async def download_verified_returns_false(session, url, dest, sha256):
    part = dest + ".part"
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, part, digest=digest)
    if digest.hexdigest() != sha256:
        os.remove(part)
        return False
    os.replace(part, dest)
    return True


@wrong(check.download_verified, "the temporary file goes to the system temp dir, not dest's",
       rule="write to a temporary name in the same directory",
       problem="temp-elsewhere")
async def download_verified_tmp_elsewhere(session, url, dest, sha256):
    fd, tmp = tempfile.mkstemp(suffix=".part")
    os.close(fd)
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        await _stream(response, tmp, digest=digest)
    if digest.hexdigest() != sha256:
        os.remove(tmp)
        raise ChecksumMismatch(dest)
    os.replace(tmp, dest)


# --- Task 3 · resume_download --------------------------------------------------------------


@correct(check.resume_download, "opens r+b, seeks to the Content-Range start or truncates on 200")
async def resume_download_seek(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        with open(path, "r+b") as file:
            if response.status == 206:
                start = int(response.headers["Content-Range"].split()[1].split("-")[0])
                await asyncio.to_thread(file.seek, start)
            else:
                await asyncio.to_thread(file.truncate, 0)
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(file.truncate)


@correct(check.resume_download, "os.open with O_APPEND or O_TRUNC, os.write in a thread")
async def resume_download_os_flags(session, url, path, etag):
    size = Path(path).stat().st_size
    async with session.get(
        url, headers={"Range": f"bytes={size}-", "If-Range": etag}
    ) as response:
        response.raise_for_status()
        flags = os.O_WRONLY | (os.O_APPEND if response.status == 206 else os.O_TRUNC)
        fd = os.open(path, flags)
        try:
            async for chunk in response.content.iter_any():
                await asyncio.to_thread(os.write, fd, chunk)
        finally:
            os.close(fd)


@correct(check.resume_download, "picks the mode from a dict, writes with run_in_executor")
async def resume_download_mode_table(session, url, path, etag):
    loop = asyncio.get_running_loop()
    headers = {"Range": f"bytes={os.path.getsize(path)}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        mode = {206: "ab", 200: "wb"}[response.status]
        with open(path, mode) as file:
            async for chunk in response.content.iter_chunked(256 * 1024):
                await loop.run_in_executor(None, file.write, chunk)


@wrong(check.resume_download, "sends Range but no If-Range",
       rule="send it as `If-Range`, so that if the file changed ... the server sends the whole",
       problem="no-if-range")
async def resume_download_no_if_range(session, url, path, etag):
    offset = os.path.getsize(path)
    async with session.get(url, headers={"Range": f"bytes={offset}-"}) as response:
        response.raise_for_status()
        await _stream(response, path, "ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "always appends, even when the server answered 200",
       rule="On a **200**, start the file over with what arrives",
       problem="appended-whole-file")
async def resume_download_always_append(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "ab")


@wrong(check.resume_download, "off by one: asks for bytes=<size + 1>-",
       rule="`Range: bytes=<size of the file>-`",
       problem="wrong-range")
async def resume_download_off_by_one(session, url, path, etag):
    offset = os.path.getsize(path) + 1
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "no Range at all: downloads again from byte 0",
       rule="asking only for the missing bytes: `Range: bytes=<size of the file>-`",
       problem="restarted-from-zero")
async def resume_download_from_zero(session, url, path, etag):
    async with session.get(url, headers={"If-Range": etag}) as response:
        response.raise_for_status()
        await _stream(response, path, "wb")


@wrong(check.resume_download, "opens with 'wb' on a 206: the partial file is overwritten",
       rule="On a **206**, append what arrives to the file",
       problem="overwrote-partial")
async def resume_download_overwrites_on_206(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "wb")


@wrong(check.resume_download, "sends the ETag as If-None-Match instead of If-Range",
       rule="send it as `If-Range`",
       problem="no-if-range")
async def resume_download_if_none_match(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-None-Match": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "strips the ETag's quotes: If-Range never matches",
       rule="`etag` is the ETag the first attempt received: send it as `If-Range`",
       problem="if-range-mismatch")
async def resume_download_unquoted_etag(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag.strip('"')}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "the Range value without its dash: 'bytes=<size>'",
       rule="`Range: bytes=<size of the file>-`",
       problem="wrong-range")
async def resume_download_range_without_dash(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        await _stream(response, path, "ab" if response.status == 206 else "wb")


@wrong(check.resume_download, "appends with blocking file.write on the loop",
       rule="[intro] the check watches how many bytes are written on the event loop's thread",
       problem="blocked-loop")
async def resume_download_blocking_write(session, url, path, etag):
    offset = os.path.getsize(path)
    headers = {"Range": f"bytes={offset}-", "If-Range": etag}
    async with session.get(url, headers=headers) as response:
        response.raise_for_status()
        with open(path, "ab" if response.status == 206 else "wb") as file:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                file.write(chunk)
