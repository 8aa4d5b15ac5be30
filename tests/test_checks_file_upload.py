"""Exercise 08's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from local_server.checks import file_upload as check

CHUNK = 256 * 1024

# --- Task 1: upload_form -------------------------------------------------------------------


async def form_with_open_file(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


async def form_with_dict_fields_and_pathlib(session, url, path, fields):
    """Correct too: FormData(fields), Path.open, the filename guessed from the file's name."""
    with Path(path).open("rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, content_type="text/csv")
        async with session.post(url, data=form) as response:
            response.raise_for_status()
            return await response.json()


async def form_read_in_thread(session, url, path, fields):
    """Correct too for a small file: its bytes read in a worker thread."""
    content = await asyncio.to_thread(Path(path).read_bytes)
    form = aiohttp.FormData()
    form.add_field("document", content, filename=Path(path).name)
    for key, value in fields.items():
        form.add_field(key, value)
    async with session.post(url, data=form) as response:
        return await response.json()


@pytest.mark.parametrize(
    "answer", [form_with_open_file, form_with_dict_fields_and_pathlib, form_read_in_thread]
)
def test_upload_form_accepts_correct_alternatives(answer):
    verdict = check.upload_form.diagnose(answer)
    assert verdict.passed, verdict.render()


async def form_seed_filename(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename="upload.txt")
        async with session.post(url, data=form) as response:
            return await response.json()


async def form_full_path_as_filename(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=path)
        async with session.post(url, data=form) as response:
            return await response.json()


async def form_wrong_field_name(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


async def form_file_left_open(session, url, path, fields):
    file = open(path, "rb")  # the mistake under test
    form = aiohttp.FormData(fields)
    form.add_field("document", file.read(), filename=os.path.basename(path))
    async with session.post(url, data=form) as response:
        return await response.json()


async def form_missing_fields(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


async def form_raw_body(session, url, path, fields):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.json()


async def form_returns_status(session, url, path, fields):
    with open(path, "rb") as file:
        form = aiohttp.FormData(fields)
        form.add_field("document", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return response.status


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (form_seed_filename, "wrong-filename"),
        (form_full_path_as_filename, "wrong-filename"),
        (form_wrong_field_name, "wrong-field-name"),
        (form_file_left_open, "file-left-open"),
        (form_missing_fields, "missing-field"),
        (form_raw_body, "not-multipart"),
        (form_returns_status, "wrong-return"),
    ],
)
def test_upload_form_diagnoses_mistakes(answer, problem):
    verdict = check.upload_form.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 2: upload_large ------------------------------------------------------------------


async def large_file_object(session, url, path):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            return await response.json()


async def large_chunks_in_thread(session, url, path):
    async def chunks():
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk

    async with session.put(url, data=chunks()) as response:
        return await response.json()


async def large_in_form(session, url, path):
    with open(path, "rb") as file:
        form = aiohttp.FormData()
        form.add_field("file", file, filename=os.path.basename(path))
        async with session.post(url, data=form) as response:
            return await response.json()


@pytest.mark.parametrize("answer", [large_file_object, large_chunks_in_thread, large_in_form])
def test_upload_large_accepts_correct_alternatives(answer):
    verdict = check.upload_large.diagnose(answer)
    assert verdict.passed, verdict.render()


async def large_read_whole(session, url, path):
    with open(path, "rb") as file:
        content = await asyncio.to_thread(file.read)
    async with session.post(url, data=content) as response:
        return await response.json()


async def large_blocking_chunks(session, url, path):
    async def chunks():
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):  # blocks the loop on every read
                yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


async def large_left_open(session, url, path):
    file = open(path, "rb")  # the mistake under test

    async def chunks():
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


async def large_truncated(session, url, path):
    with open(path, "rb") as file:
        first = await asyncio.to_thread(file.read, CHUNK)
    async with session.post(url, data=first) as response:
        return await response.json()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (large_read_whole, "whole-file-in-memory"),
        (large_blocking_chunks, "blocked-loop"),
        (large_left_open, "file-left-open"),
        (large_truncated, "wrong-content"),
    ],
)
def test_upload_large_diagnoses_mistakes(answer, problem):
    verdict = check.upload_large.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: upload_with_progress ---------------------------------------------------------


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


async def progress_loop_executor(session, url, path, on_progress):
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


@pytest.mark.parametrize("answer", [progress_generator, progress_loop_executor])
def test_upload_with_progress_accepts_correct_alternatives(answer):
    verdict = check.upload_with_progress.diagnose(answer)
    assert verdict.passed, verdict.render()


async def progress_once_at_end(session, url, path, on_progress):
    with open(path, "rb") as file:
        async with session.post(url, data=file) as response:
            report = await response.json()
    on_progress(report["size"], os.path.getsize(path))
    return report


async def progress_chunk_sizes(session, url, path, on_progress):
    total = os.path.getsize(path)

    async def chunks():
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                on_progress(len(chunk), total)
                yield chunk

    async with session.post(url, data=chunks()) as response:
        return await response.json()


async def progress_before_sending(session, url, path, on_progress):
    """Counts a chunk before it is read: the last call overshoots the size."""
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


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (progress_once_at_end, "too-few-progress-calls"),
        (progress_chunk_sizes, "progress-not-cumulative"),
        (progress_before_sending, "progress-incomplete"),
    ],
)
def test_upload_with_progress_diagnoses_mistakes(answer, problem):
    verdict = check.upload_with_progress.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_a_stub_is_not_implemented():
    async def stub(session, url, path, fields):
        raise NotImplementedError

    assert check.upload_form.diagnose(stub).problem == "not-implemented"
