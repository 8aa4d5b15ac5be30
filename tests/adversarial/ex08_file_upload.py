"""Learner answers to exercise 08 (file upload), right and wrong, written from the task text."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from adversarial import correct, wrong
from local_server.checks import file_upload as check

CHUNK = 256 * 1024


async def _chunks_in_thread(path: str, size: int = CHUNK) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, size):
            yield chunk


# --- Task 1 · upload_form ------------------------------------------------------------------


@correct(check.upload_form, "FormData(fields) first, pathlib for the name, explicit content type")
async def upload_form_pathlib(session, url, path, fields):
    with Path(path).open("rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=Path(path).name,
                       content_type="application/octet-stream")
        async with session.post(url, data=form) as response:
            response.raise_for_status()
            return await response.json()


@correct(check.upload_form, "leaves filename= out: aiohttp takes the base name from the file")
async def upload_form_guessed_name(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("document", file)
        for key, value in fields.items():
            form.add_field(key, value)
        async with session.post(url, data=form) as response:
            return await response.json()


@correct(check.upload_form, "reads the bytes in a worker thread and sends them with a filename")
async def upload_form_bytes_in_thread(session, url, path, fields):
    content = await asyncio.to_thread(Path(path).read_bytes)
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    form.add_field("document", content, filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        return await response.json()


@correct(check.upload_form, "builds the body with MultipartWriter by hand, try/finally close")
async def upload_form_multipart_writer(session, url, path, fields):
    file = open(path, "rb")
    try:
        with aiohttp.MultipartWriter("form-data") as writer:
            for key, value in fields.items():
                part = writer.append(value)
                part.set_content_disposition("form-data", name=key)
            part = writer.append(file)
            part.set_content_disposition(
                "form-data", name="document", filename=os.path.basename(path)
            )
            async with session.post(url, data=writer) as response:
                return await response.json()
    finally:
        file.close()


@wrong(check.upload_form, "sends the full path as the file name",
       rule="under the file's own name (not the full path)",
       problem="wrong-filename")
async def upload_form_full_path_name(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=path)
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "keeps the seed's invented file name 'upload.txt'",
       rule="under the file's own name",
       problem="wrong-filename")
async def upload_form_seed_filename(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename="upload.txt")
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "puts the file in the seed's field 'file' instead of 'document'",
       rule="in the field named **`document`**",
       problem="wrong-field-name")
async def upload_form_field_named_file(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "sends the fields as bytes, which aiohttp turns into file parts",
       rule="every entry of the dict `fields` as a text field",
       problem="field-not-text")
async def upload_form_fields_as_bytes(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value.encode())
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "sends the fields as the query string, not in the form",
       rule="every entry of the dict `fields` as a text field",
       problem="missing-field")
async def upload_form_fields_in_query(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form, params=fields) as response:
            return await response.json()


@wrong(check.upload_form, "opens the file without `with` and closes it only on success",
       rule="Make sure the file is closed when your function returns, whatever happens",
       problem="file-left-open-on-error")
async def upload_form_close_on_success_only(session, url, path, fields):
    file = open(path, "rb")
    form = aiohttp.FormData(fields)
    form.add_field("document", file, filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        report = await response.json()
    file.close()
    return report


@wrong(check.upload_form, "never closes the file (leans on aiohttp closing it after sending)",
       rule="Make sure the file is closed when your function returns, whatever happens",
       problem="file-left-open-on-error")
async def upload_form_never_closes(session, url, path, fields):
    form = aiohttp.FormData(fields)
    form.add_field("document", open(path, "rb"), filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.upload_form, "opens the file in text mode",
       rule="open the file safely (`with`, binary mode) [lesson]",
       problem="text-mode")
async def upload_form_text_mode(session, url, path, fields):
    with open(path, encoding="utf-8") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "forgets to await response.json(): returns a coroutine",
       rule="returns the server's JSON report (`await response.json()`)",
       problem="missing-await")
async def upload_form_forgot_await(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return response.json()


# --- Task 2 · upload_large -----------------------------------------------------------------


@correct(check.upload_large, "the open file as a FormData field")
async def upload_large_form_file(session, url, path):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@correct(check.upload_large, "an async generator reading an fd with os.read in run_in_executor")
async def upload_large_os_read_executor(session, url, path):
    loop = asyncio.get_running_loop()

    async def body():
        fd = os.open(path, os.O_RDONLY)
        try:
            while chunk := await loop.run_in_executor(None, os.read, fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)

    async with session.post(url, data=body()) as response:
        return await response.json()


class _ThreadedChunks:
    """An async iterable of the file's chunks, each read in a worker thread."""

    def __init__(self, path: str, size: int = 512 * 1024) -> None:
        self.path, self.size = path, size

    async def __aiter__(self):
        file = await asyncio.to_thread(open, self.path, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, self.size):
                yield chunk
        finally:
            await asyncio.to_thread(file.close)


@correct(check.upload_large, "a class with __aiter__ as the body, open and read in threads")
async def upload_large_class_iterable(session, url, path):
    async with session.post(url, data=_ThreadedChunks(path)) as response:
        return await response.json()


@correct(check.upload_large, "the pathlib-opened file object as the raw body")
async def upload_large_pathlib_raw(session, url, path):
    with Path(path).open("rb") as file:
        async with session.post(url, data=file) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.upload_large, "reads the whole file on the loop and posts the bytes",
       rule="peak memory ... must stay below half the file's size; no more than 1 MiB ... read "
            "on the event loop's thread",
       problem="whole-file-in-memory")
async def upload_large_read_whole(session, url, path):
    with open(path, "rb") as file:
        content = file.read()
    async with session.post(url, data=content) as response:
        return await response.json()


@wrong(check.upload_large, "reads the whole file in a worker thread, then posts the bytes",
       rule="it must stay below half the file's size",
       problem="whole-file-in-memory")
async def upload_large_whole_in_thread(session, url, path):
    content = await asyncio.to_thread(Path(path).read_bytes)
    async with session.post(url, data=content) as response:
        return await response.json()


@wrong(check.upload_large, "an async generator that reads each chunk with a blocking file.read",
       rule="no more than 1 MiB of the file may be read on the event loop's thread",
       problem="blocked-loop")
async def upload_large_generator_blocking_read(session, url, path):
    async def body():
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_large, "to_thread(file.read) without a size: the first chunk is the file",
       rule="it must stay below half the file's size",
       problem="whole-file-in-memory")
async def upload_large_read_without_size(session, url, path):
    async def body():
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read):
                yield chunk

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_large, "wraps the file's content in a BytesIO (read whole on the loop)",
       rule="peak memory ... below half the file's size; reads off the loop",
       problem="whole-file-in-memory")
async def upload_large_bytesio(session, url, path):
    with open(path, "rb") as file:
        buffer = io.BytesIO(file.read())
    async with session.post(url, data=buffer) as response:
        return await response.json()


@wrong(check.upload_large, "the generator opens the file without `with`: it is never closed",
       rule="the file closed (intro: the check watches whether it is closed)",
       problem="file-left-open")
async def upload_large_generator_never_closes(session, url, path):
    async def body():
        file = open(path, "rb")
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_large, "reads chunks in a thread but collects them before posting",
       rule="it must stay below half the file's size",
       problem="whole-file-in-memory")
async def upload_large_collects_chunks(session, url, path):
    chunks = [chunk async for chunk in _chunks_in_thread(path)]
    async with session.post(url, data=b"".join(chunks)) as response:
        return await response.json()


@wrong(check.upload_large, "returns the response text instead of the JSON report",
       rule="returns the server's JSON report",
       problem="wrong-return")
async def upload_large_returns_text(session, url, path):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.text()


# --- Task 3 · upload_with_progress ---------------------------------------------------------


@correct(check.upload_with_progress, "a class-based async iterator that reports after yielding")
async def upload_with_progress_class(session, url, path, on_progress):
    class Body:
        def __init__(self) -> None:
            self.total = os.path.getsize(path)
            self.sent = 0

        async def __aiter__(self):
            with open(path, "rb") as file:
                while chunk := await asyncio.to_thread(file.read, CHUNK):
                    yield chunk
                    self.sent += len(chunk)
                    on_progress(self.sent, self.total)

    async with session.post(url, data=Body()) as response:
        return await response.json()


@correct(check.upload_with_progress, "os.read on an fd in run_in_executor, 128 KiB chunks")
async def upload_with_progress_os_read(session, url, path, on_progress):
    loop = asyncio.get_running_loop()
    total = os.path.getsize(path)

    async def body():
        fd = os.open(path, os.O_RDONLY)
        sent = 0
        try:
            while chunk := await loop.run_in_executor(None, os.read, fd, 128 * 1024):
                yield chunk
                sent += len(chunk)
                on_progress(sent, total)
        finally:
            os.close(fd)

    async with session.post(url, data=body()) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.upload_with_progress, "the generator as a FormData file field, pathlib stat")
async def upload_with_progress_form_field(session, url, path, on_progress):
    total = Path(path).stat().st_size

    async def body():
        sent = 0
        async for chunk in _chunks_in_thread(path, 512 * 1024):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)

    form = aiohttp.FormData()
    form.add_field("file", body(), filename=Path(path).name,
                   content_type="application/octet-stream")
    async with session.post(url, data=form) as response:
        return await response.json()


def _progress_body(path, on_progress, *, report):
    """A generator of chunks read in threads; ``report(sent, chunk, total)`` picks the call."""
    total = os.path.getsize(path)

    async def body():
        sent = 0
        async for chunk in _chunks_in_thread(path):
            yield chunk
            sent += len(chunk)
            report(on_progress, sent, chunk, total)

    return body()


@wrong(check.upload_with_progress, "counts `sent += CHUNK` instead of the chunk's length",
       rule="`sent` is the number of bytes sent so far; the last call says `sent == total`",
       problem="progress-overcounted")
async def upload_with_progress_counts_chunk_size(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def body():
        sent = 0
        async for chunk in _chunks_in_thread(path):
            yield chunk
            sent += CHUNK
            on_progress(sent, total)

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "passes each chunk's size instead of the running total",
       rule="`sent` is the number of bytes sent so far",
       problem="progress-not-cumulative")
async def upload_with_progress_passes_delta(session, url, path, on_progress):
    body = _progress_body(path, on_progress, report=lambda cb, s, c, t: cb(len(c), t))
    async with session.post(url, data=body) as response:
        return await response.json()


@wrong(check.upload_with_progress, "calls on_progress once, after the upload",
       rule="calls `on_progress(sent, total)` after each chunk ... expects a call per chunk",
       problem="too-few-progress-calls")
async def upload_with_progress_once_at_end(session, url, path, on_progress):
    total = os.path.getsize(path)
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            report = await response.json()
    on_progress(total, total)
    return report


@wrong(check.upload_with_progress, "swaps the arguments: on_progress(total, sent)",
       rule="calls `on_progress(sent, total)`",
       problem="arguments-swapped")
async def upload_with_progress_swapped_args(session, url, path, on_progress):
    body = _progress_body(path, on_progress, report=lambda cb, s, c, t: cb(t, s))
    async with session.post(url, data=body) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reads each chunk with a blocking file.read in the generator",
       rule="reads off the event loop",
       problem="blocked-loop")
async def upload_with_progress_blocking_read(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def body():
        sent = 0
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
                sent += len(chunk)
                on_progress(sent, total)

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reads the whole file in a thread, then yields slices of it",
       rule="bounded memory",
       problem="whole-file-in-memory")
async def upload_with_progress_slices_whole_file(session, url, path, on_progress):
    content = await asyncio.to_thread(Path(path).read_bytes)
    total = len(content)

    async def body():
        for start in range(0, total, CHUNK):
            yield content[start:start + CHUNK]
            on_progress(min(start + CHUNK, total), total)

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reports the chunk before handing it to aiohttp",
       rule="calls `on_progress(sent, total)` after each chunk is handed to aiohttp",
       problem="progress-ahead")
async def upload_with_progress_reports_before_yield(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def body():
        sent = 0
        async for chunk in _chunks_in_thread(path):
            sent += len(chunk)
            on_progress(sent, total)
            yield chunk

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "the generator opens the file without `with`: never closed",
       rule="the file closed",
       problem="file-left-open")
async def upload_with_progress_never_closes(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def body():
        file = open(path, "rb")
        sent = 0
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)

    async with session.post(url, data=body()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "a 4 MiB chunk size: one call for the whole file",
       rule="expects a call per chunk (at least 4); bounded memory",
       problem="too-few-progress-calls")
async def upload_with_progress_one_big_chunk(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def body():
        sent = 0
        async for chunk in _chunks_in_thread(path, 4 * 1024 * 1024):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)

    async with session.post(url, data=body()) as response:
        return await response.json()
