"""Exercise 08's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import file_upload as check

CHUNK = 256 * 1024


async def _chunks(path: str, size: int = CHUNK):
    with open(path, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, size):
            yield chunk


# --- Task 1: upload_form -------------------------------------------------------------------


@correct(check.upload_form, "fields added one by one, then the open file")
async def form_with_open_file(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@correct(check.upload_form, "FormData(fields), Path.open, the filename guessed from the file")
async def form_with_dict_fields_and_pathlib(session, url, path, fields):
    with Path(path).open("rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, content_type="text/csv")
        async with session.post(url, data=form) as response:
            response.raise_for_status()
            return await response.json()


@correct(check.upload_form, "the bytes read in a worker thread, sent with a filename")
async def form_read_in_thread(session, url, path, fields):
    content = await asyncio.to_thread(Path(path).read_bytes)
    form = aiohttp.FormData()
    form.add_field("document", content, filename=Path(path).name)
    for key, value in fields.items():
        form.add_field(key, value)
    async with session.post(url, data=form) as response:
        return await response.json()


@correct(check.upload_form, "try/finally close, PUT, the document part first")
async def form_try_finally_put(session, url, path, fields):
    file = open(path, "rb")
    try:
        form = aiohttp.FormData()
        form.add_field("document", file, filename=os.path.basename(path),
                       content_type="application/octet-stream")  # fmt: skip
        for key in fields:
            form.add_field(key, fields[key])
        async with session.put(url, data=form) as response:
            return await response.json()
    finally:
        file.close()


@correct(check.upload_form, "os.open + os.fdopen, the name given explicitly")
async def form_fdopen(session, url, path, fields):
    with os.fdopen(os.open(path, os.O_RDONLY), "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.split(path)[1])
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "the seed's invented 'upload.txt'", problem="wrong-filename")
async def form_seed_filename(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename="upload.txt")
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "the full path as filename", problem="wrong-filename")
async def form_full_path_as_filename(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=path)
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "the seed's field name 'file'", problem="wrong-field-name")
async def form_wrong_field_name(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "opens the file without closing it, sends its bytes",
       problem="file-left-open")  # fmt: skip
async def form_file_left_open(session, url, path, fields):
    file = open(path, "rb")  # the mistake under test
    form = aiohttp.FormData(fields)
    form.add_field("document", file.read(), filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.upload_form, "forgets the fields", problem="missing-field")
async def form_missing_fields(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "only the first field", problem="missing-field")
async def form_first_field_only(session, url, path, fields):
    key, value = next(iter(fields.items()))
    with open(path, "rb") as file:
        form = aiohttp.FormData({key: value})
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "the file as the raw body, no form", problem="not-multipart")
async def form_raw_body(session, url, path, fields):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.json()


@wrong(check.upload_form, "fields and file as a urlencoded dict", problem="not-multipart")
async def form_urlencoded(session, url, path, fields):
    content = await asyncio.to_thread(Path(path).read_bytes)
    data = {**fields, "document": content.hex()}
    async with session.post(url, data=data) as response:
        return await response.json()


@wrong(check.upload_form, "returns the status", problem="wrong-return")
async def form_returns_status(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return response.status


@wrong(check.upload_form, "opens a session of its own", problem="own-session")
async def form_own_session(session, url, path, fields):
    async with aiohttp.ClientSession() as own:
        return await form_with_open_file(own, url, path, fields)


@wrong(check.upload_form, "the file decoded to str: a text field", problem="no-filename")
async def form_file_as_text(session, url, path, fields):
    content = await asyncio.to_thread(Path(path).read_bytes)
    form = aiohttp.FormData(fields)
    form.add_field("document", content.decode("latin-1"), content_type="application/pdf")
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.upload_form, "text mode", problem="text-mode")
async def form_text_mode(session, url, path, fields):
    with open(path) as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "sniffs the first bytes, then sends the rest of the file",
       problem="wrong-content")  # fmt: skip
async def form_sniffs_first(session, url, path, fields):
    with open(path, "rb") as file:
        file.read(16)  # looks at the magic number and forgets to seek back
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "field values encoded to bytes", problem="field-not-text")
async def form_fields_as_bytes(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value.encode(), content_type="text/plain")
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "closes the file only after a successful request",
       problem="file-left-open-on-error")  # fmt: skip
async def form_closes_on_success(session, url, path, fields):
    file = open(path, "rb")
    form = aiohttp.FormData(fields)
    form.add_field("document", file, filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        report = await response.json()
    file.close()
    return report


@wrong(check.upload_form, "returns an empty report when the request fails",
       problem="error-swallowed")  # fmt: skip
async def form_swallows_errors(session, url, path, fields):
    try:
        return await form_with_open_file(session, url, path, fields)
    except (aiohttp.ClientError, RuntimeError):
        return {}


@wrong(check.upload_form, "text mode with latin-1: nothing fails to decode, bytes change",
       problem="wrong-content")  # fmt: skip
async def form_latin1_text(session, url, path, fields):
    with open(path, encoding="latin-1") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@wrong(check.upload_form, "a dict with the open file as data=, never closed",
       problem="file-left-open-on-error")  # fmt: skip
async def form_dict_data(session, url, path, fields):
    async with session.post(url, data={"document": open(path, "rb"), **fields}) as response:
        return await response.json()


@wrong(check.upload_form, "time.sleep before the request", problem="blocked-loop")
async def form_time_sleep(session, url, path, fields):
    time.sleep(0.05)
    return await form_with_open_file(session, url, path, fields)


@wrong(check.upload_form, "a plain def returning the coroutine", problem="not-async")
def form_not_async(session, url, path, fields):
    return 42


@wrong(check.upload_form, "the stub", problem="not-implemented")
async def form_stub(session, url, path, fields):
    raise NotImplementedError


# --- Task 2: upload_large ------------------------------------------------------------------


@correct(check.upload_large, "the open file as the raw body")
async def large_file_object(session, url, path):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.json()


@correct(check.upload_large, "PUT with an async generator reading in a thread")
async def large_chunks_in_thread(session, url, path):
    async with session.put(url, data=_chunks(path)) as response:
        return await response.json()


@correct(check.upload_large, "the open file as a form field")
async def large_in_form(session, url, path):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@correct(check.upload_large, "os.pread at offsets in an executor, 1 MiB chunks")
async def large_pread(session, url, path):
    loop = asyncio.get_running_loop()

    async def body():
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
        try:
            offset = 0
            while chunk := await loop.run_in_executor(None, os.pread, fd, 2**20, offset):
                offset += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async with session.post(url, data=body()) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.upload_large, "the file opened in a thread, closed by an AsyncExitStack")
async def large_exit_stack(session, url, path):
    import contextlib

    async with contextlib.AsyncExitStack() as stack:
        file = await asyncio.to_thread(open, path, "rb")
        stack.callback(file.close)
        response = await stack.enter_async_context(session.post(url, data=file))
        return await response.json()


@wrong(check.upload_large, "the whole file read in a thread, posted as bytes",
       problem="whole-file-in-memory")  # fmt: skip
async def large_read_whole(session, url, path):
    with open(path, "rb") as file:
        content = await asyncio.to_thread(file.read)
    async with session.post(url, data=content) as response:
        return await response.json()


@wrong(check.upload_large, "8 MiB chunks: more than half the file at once",
       problem="whole-file-in-memory")  # fmt: skip
async def large_huge_chunks(session, url, path):
    async with session.post(url, data=_chunks(path, 8 * 2**20)) as response:
        return await response.json()


@wrong(check.upload_large, "a blocking read per chunk in the generator", problem="blocked-loop")
async def large_blocking_chunks(session, url, path):
    async def chunks():
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):  # blocks the loop on every read
                yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_large, "os.read on the loop's thread", problem="blocked-loop")
async def large_os_read_on_loop(session, url, path):
    async def chunks():
        fd = os.open(path, os.O_RDONLY)
        try:
            while chunk := os.read(fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_large, "the file opened outside the generator, never closed",
       problem="file-left-open")  # fmt: skip
async def large_left_open(session, url, path):
    file = open(path, "rb")  # the mistake under test

    async def chunks():
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_large, "an fd from os.open, never closed", problem="file-left-open")
async def large_fd_never_closed(session, url, path):
    fd = os.open(path, os.O_RDONLY)

    async def chunks():
        while chunk := await asyncio.to_thread(os.read, fd, CHUNK):
            yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_large, "sends only the first chunk", problem="wrong-content")
async def large_truncated(session, url, path):
    with open(path, "rb") as file:
        first = await asyncio.to_thread(file.read, CHUNK)
    async with session.post(url, data=first) as response:
        return await response.json()


@wrong(check.upload_large, "counts whole chunks: the shorter tail is never sent",
       problem="wrong-content")  # fmt: skip
async def large_whole_chunks_only(session, url, path):
    size = os.path.getsize(path)

    async def chunks():
        with open(path, "rb") as file:
            for _ in range(size // CHUNK):
                yield await asyncio.to_thread(file.read, CHUNK)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_large, "text mode", problem="text-mode")
async def large_text_mode(session, url, path):
    with open(path, encoding="utf-8") as file:
        async with session.post(url, data=file) as response:
            return await response.json()


@wrong(check.upload_large, "returns the response's text", problem="wrong-return")
async def large_returns_text(session, url, path):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.text()


@wrong(check.upload_large, "a session of its own", problem="own-session")
async def large_own_session(session, url, path):
    async with aiohttp.ClientSession() as own:
        return await large_file_object(own, url, path)


@wrong(check.upload_large, "no `with`: relies on aiohttp closing the file it sent",
       problem="file-left-open-on-error")  # fmt: skip
async def large_relies_on_aiohttp(session, url, path):
    async with session.post(url, data=open(path, "rb")) as response:
        return await response.json()


@wrong(check.upload_large, "returns None when the connection drops", problem="error-swallowed")
async def large_swallows_errors(session, url, path):
    try:
        return await large_file_object(session, url, path)
    except aiohttp.ClientError:
        return None


# --- Task 3: upload_with_progress ---------------------------------------------------------


@correct(check.upload_with_progress, "counted before the yield, reported after it")
async def progress_generator(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                sent += len(chunk)
                yield chunk
                on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@correct(check.upload_with_progress, "aiohttp.UploadTracker polled every 50 ms")
async def progress_upload_tracker(session, url, path, on_progress):
    total = os.path.getsize(path)
    tracker = aiohttp.UploadTracker()

    async def report():
        while not tracker.upload_complete.done():
            on_progress(tracker.bytes_written, total)
            await asyncio.sleep(0.05)

    with open(path, "rb") as file:
        reporter = asyncio.create_task(report())
        try:
            async with session.post(url, data=file, upload_tracker=tracker) as response:
                result = await response.json()
        finally:
            reporter.cancel()
    on_progress(total, total)
    return result


@correct(check.upload_with_progress, "reports (0, total) first, then after every chunk")
async def progress_starts_at_zero(session, url, path, on_progress):
    total = (await asyncio.to_thread(os.stat, path)).st_size
    on_progress(0, total)

    async def chunks():
        sent = 0
        async for chunk in _chunks(path, 100_000):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)

    async with session.put(url, data=chunks()) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.upload_with_progress, "a wrapper class counting each chunk handed over")
async def progress_counting_wrapper(session, url, path, on_progress):
    class Counted:
        def __init__(self, source, total):
            self.source, self.total, self.sent = source, total, 0

        def __aiter__(self):
            return self

        async def __anext__(self):
            if self.sent:
                on_progress(self.sent, self.total)
            chunk = await self.source.__anext__()
            self.sent += len(chunk)
            return chunk

    body = Counted(_chunks(path), os.path.getsize(path))

    async def with_last_call():
        async for chunk in body:
            yield chunk
        on_progress(body.sent, body.total)

    async with session.post(url, data=with_last_call()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reports before handing the chunk to aiohttp",
       problem="progress-ahead")  # fmt: skip
async def progress_loop_executor(session, url, path, on_progress):
    # Registered as correct before the task said "after each chunk is handed to aiohttp":
    # it reports each chunk before yielding it.
    total = (await asyncio.to_thread(os.stat, path)).st_size
    loop = asyncio.get_running_loop()

    async def chunks():
        sent = 0
        with open(path, "rb") as file:
            while True:
                chunk = await loop.run_in_executor(None, file.read, 64 * 1024)
                if not chunk:
                    return
                sent += len(chunk)
                on_progress(sent, total)
                yield chunk

    async with session.put(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "calls on_progress once, after the upload",
       problem="too-few-progress-calls")  # fmt: skip
async def progress_once_at_end(session, url, path, on_progress):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            report = await response.json()
    on_progress(report["size"], os.path.getsize(path))
    return report


@wrong(check.upload_with_progress, "fakes ten calls after the upload is over",
       problem="too-few-progress-calls")  # fmt: skip
async def progress_faked_after(session, url, path, on_progress):
    total = os.path.getsize(path)
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            report = await response.json()
    for step in range(1, 11):
        on_progress(total * step // 10, total)
    return report


@wrong(check.upload_with_progress, "percentages instead of bytes", problem="wrong-total")
async def progress_percent(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        async for chunk in _chunks(path):
            yield chunk
            sent += len(chunk)
            on_progress(round(100 * sent / total), 100)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reports only at whole MiB", problem="too-few-progress-calls")
async def progress_every_mib(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        async for chunk in _chunks(path):
            yield chunk
            sent += len(chunk)
            if sent % 2**20 == 0:
                on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "each chunk's size instead of the running total",
       problem="progress-not-cumulative")  # fmt: skip
async def progress_chunk_sizes(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk
                on_progress(len(chunk), total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "counts CHUNK before reading: overshoots at the end",
       problem="progress-overcounted")  # fmt: skip
async def progress_before_sending(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        with open(path, "rb") as file:
            while True:
                sent += CHUNK
                on_progress(sent, total)
                chunk = await asyncio.to_thread(file.read, CHUNK)
                if not chunk:
                    return
                yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reports the count before adding the chunk",
       problem="progress-incomplete")  # fmt: skip
async def progress_one_behind(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        async for chunk in _chunks(path):
            yield chunk
            on_progress(sent, total)
            sent += len(chunk)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "passes the chunk size as the total", problem="wrong-total")
async def progress_total_is_chunk(session, url, path, on_progress):
    async def chunks():
        sent = 0
        async for chunk in _chunks(path):
            yield chunk
            sent += len(chunk)
            on_progress(sent, CHUNK)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "on_progress(total, sent)", problem="arguments-swapped")
async def progress_swapped(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        async for chunk in _chunks(path):
            yield chunk
            sent += len(chunk)
            on_progress(total, sent)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "reads the whole file, then yields slices",
       problem="whole-file-in-memory")  # fmt: skip
async def progress_slices(session, url, path, on_progress):
    content = await asyncio.to_thread(Path(path).read_bytes)

    async def chunks():
        for start in range(0, len(content), CHUNK):
            piece = content[start : start + CHUNK]
            yield piece
            on_progress(start + len(piece), len(content))

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "a blocking read per chunk", problem="blocked-loop")
async def progress_blocking(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
                sent += len(chunk)
                on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "the file closed only when the loop ends normally",
       problem="file-left-open-on-error")  # fmt: skip
async def progress_close_after_loop(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        file = open(path, "rb")
        sent = 0
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)
        file.close()

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "never closes the file", problem="file-left-open")
async def progress_never_closes(session, url, path, on_progress):
    total = os.path.getsize(path)
    file = open(path, "rb")

    async def chunks():
        sent = 0
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk
            sent += len(chunk)
            on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "text mode, encoded back to bytes", problem="text-mode")
async def progress_text_mode(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        with open(path, encoding="utf-8") as file:
            while text := await asyncio.to_thread(file.read, CHUNK):
                chunk = text.encode()
                yield chunk
                sent += len(chunk)
                on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "stops one chunk early", problem="wrong-content")
async def progress_drops_tail(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        sent = 0
        with open(path, "rb") as file:
            while len(chunk := await asyncio.to_thread(file.read, CHUNK)) == CHUNK:
                yield chunk
                sent += len(chunk)
                on_progress(sent, total)

    async with session.post(url, data=chunks()) as response:
        return await response.json()


@wrong(check.upload_with_progress, "returns the status", problem="wrong-return")
async def progress_returns_status(session, url, path, on_progress):
    result = await progress_generator(session, url, path, on_progress)
    return 200 if result else 500


@wrong(check.upload_with_progress, "a session of its own", problem="own-session")
async def progress_own_session(session, url, path, on_progress):
    async with aiohttp.ClientSession() as own:
        return await progress_generator(own, url, path, on_progress)


@wrong(check.upload_with_progress, "returns None if the upload fails", problem="error-swallowed")
async def progress_swallows(session, url, path, on_progress):
    try:
        return await progress_generator(session, url, path, on_progress)
    except (aiohttp.ClientError, RuntimeError):
        return None


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.upload_with_progress.diagnose(progress_before_sending)
    assert first == check.upload_with_progress.diagnose(progress_before_sending)


def test_text_mode_is_named_with_the_learners_open_line():
    verdict = check.upload_form.diagnose(form_text_mode)
    assert "UnicodeDecodeError" in verdict.message
    assert "`with open(path) as file:`" in verdict.message
    assert len(verdict.message) < 400


def test_a_file_aiohttp_would_close_is_still_named_on_the_early_failure():
    verdict = check.upload_large.diagnose(large_relies_on_aiohttp)
    assert "already closed" in verdict.message
    assert "only once the request is under way" in verdict.message
