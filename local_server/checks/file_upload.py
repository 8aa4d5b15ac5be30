"""Checks for exercise 08, file upload.

In the notebook: ``from local_server.checks import file_upload as check``.

Each check writes its own file in a temporary directory (removed afterwards) and, while the
learner's code runs, makes ``open()`` of that one file (``open``, ``io.open``, ``Path.open``,
and IPython's ``open`` in a notebook) return a tracked reader: it records how many bytes were
read on the check's event-loop thread (reads there block the loop) and whether the handle was
closed. The server's ``/upload``
report (each part's name, filename, size and SHA-256) says what arrived.

- ``upload_form`` sends a file and text fields as ``multipart/form-data``.
- ``upload_large`` streams a 16 MiB file while ``tracemalloc`` records the peak memory.
- ``upload_with_progress`` streams a 4 MiB file and reports progress through a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import os
import secrets
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import aiohttp

from ..runner import LocalServer
from .harness import (
    ORIGINAL_OPEN,
    Mistake,
    PeakMemory,
    SessionSpy,
    call_async,
    check,
    open_replaced_by,
)

FORM_FIELD = "document"
LARGE_SIZE = 16 * 1024 * 1024
PROGRESS_SIZE = 4 * 1024 * 1024
# Reading more than this on the event loop's thread is reported as blocking the loop.
LOOP_READ_LIMIT = 1024 * 1024
# aiohttp closes a file it was given from a worker thread, just after the response: wait
# this long for it before calling the handle left open.
CLOSE_GRACE_SECONDS = 1.0
MIN_PROGRESS_CALLS = 4


class _ReadLog:
    """What happened to the tracked file: handles opened, bytes read on the loop's thread."""

    def __init__(self, path: str, loop_thread: int) -> None:
        self.path = os.path.realpath(path)
        self.loop_thread = loop_thread
        self.handles: list[_TrackedFile] = []
        self.bytes_on_loop = 0
        self.bytes_read = 0

    def record(self, count: int) -> None:
        self.bytes_read += count
        if threading.get_ident() == self.loop_thread:
            self.bytes_on_loop += count

    @property
    def open_handles(self) -> int:
        return sum(not handle.closed for handle in self.handles)


class _TrackedFile(io.BufferedReader):
    """A binary reader that reports every read to its ``_ReadLog``."""

    def __init__(self, path: str, log: _ReadLog) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._log = log
        log.handles.append(self)

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._log.record(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self._log.record(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self._log.record(count or 0)
        return count


@contextlib.contextmanager
def _tracked_open(log: _ReadLog) -> Iterator[None]:
    """Make ``open(log.path, "rb")`` (however it is spelled) return a ``_TrackedFile``."""
    def tracking_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if (
            isinstance(file, (str, os.PathLike))
            and set(mode) <= set("rb")
            and "b" in mode
            and os.path.realpath(os.fspath(file)) == log.path
        ):
            return _TrackedFile(os.fspath(file), log)
        return ORIGINAL_OPEN(file, mode, *args, **kwargs)

    # aiohttp warns (ResourceWarning) when given a large bytes body: the memory check reports
    # that mistake in words, so the warning is recorded here, not raised.
    try:
        with open_replaced_by(tracking_open), warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            yield
    finally:
        for handle in log.handles:  # close what the learner left open, after judging it
            if not handle.closed:
                handle.close()
        for handle in log.handles:  # close what the learner left open, after judging it
            if not handle.closed:
                handle.close()


@contextlib.contextmanager
def _temporary_file(name: str, size: int) -> Iterator[tuple[str, str]]:
    """A file of ``size`` random bytes named ``name`` in a fresh temporary directory."""
    with tempfile.TemporaryDirectory(prefix="upload-check-") as directory:
        path = os.path.join(directory, name)
        digest = hashlib.sha256()
        with open(path, "wb") as file:
            remaining = size
            while remaining:
                block = os.urandom(min(remaining, 1024 * 1024))
                digest.update(block)
                file.write(block)
                remaining -= len(block)
        yield path, digest.hexdigest()


async def _expect_closed(task: str, log: _ReadLog) -> None:
    """The learner's code closed every handle it opened (aiohttp may close it a bit later)."""
    deadline = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
    while log.open_handles and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    if log.open_handles:
        raise Mistake(
            "file-left-open",
            f"{task} returned with the file still open.",
            'open it with `with open(path, "rb") as file:` around the request, so it is '
            "closed even when the upload fails.",
        )


def _expect_not_blocking(task: str, log: _ReadLog) -> None:
    if log.bytes_on_loop > LOOP_READ_LIMIT:
        raise Mistake(
            "blocked-loop",
            f"{task} read {log.bytes_on_loop // 1024} KiB of the file on the event loop's "
            "thread: while each read runs, no other task can.",
            "pass the open file to aiohttp (`data=file`), which reads it in a worker thread, "
            "or read chunks with `await asyncio.to_thread(file.read, size)`.",
        )


def _expect_report(task: str, report: Any) -> dict[str, Any]:
    if not isinstance(report, dict) or "kind" not in report:
        raise Mistake(
            "wrong-return",
            f"{task} returned {type(report).__name__}; expected the server's JSON report.",
            "return `await response.json()` from inside `async with session.post(...)`.",
        )
    return report


def _expect_opened(task: str, log: _ReadLog) -> None:
    if not log.handles:
        raise Mistake(
            "file-not-opened",
            f"{task} never opened the file at `path` in binary mode.",
            'open it with `open(path, "rb")`: the bytes must come from that file.',
        )


# --- Task 1: upload_form -------------------------------------------------------------------


@check("upload_form")
async def upload_form(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_form(session, url, path, fields)``: the file as part "document", plus fields."""
    token = secrets.token_hex(3)
    fields = {"title": f"Quarterly report {token}", "author": "Ada"}
    name = f"report-{token}.csv"
    with _temporary_file(name, 64 * 1024) as (path, sha256):
        log = _ReadLog(path, threading.get_ident())
        with _tracked_open(log):
            async with aiohttp.ClientSession() as session:
                report = await call_async(
                    "upload_form", learner, session, f"{server.url}/upload", path, dict(fields)
                )
            _expect_opened("upload_form", log)
            await _expect_closed("upload_form", log)
    report = _expect_report("upload_form", report)
    if report.get("kind") != "multipart":
        raise Mistake(
            "not-multipart",
            f"the server received a {report.get('content_type')} body, not multipart/form-data.",
            "build an `aiohttp.FormData()`, `add_field()` each field and the file, and pass it "
            "as `data=`.",
        )
    parts = report["parts"]
    files = [part for part in parts if part["filename"] is not None]
    if not files:
        raise Mistake(
            "no-filename",
            "no part of the upload had a filename, so the server sees no file.",
            '`add_field("document", file, filename=...)` marks the part as a file.',
        )
    by_name = {part["name"]: part for part in files}
    if FORM_FIELD not in by_name:
        raise Mistake(
            "wrong-field-name",
            f"the file arrived in a part named {files[0]['name']!r}; the form expects "
            f"{FORM_FIELD!r}.",
            "the first argument of `add_field()` is the form field the server reads.",
        )
    part = by_name[FORM_FIELD]
    if part["filename"] != name:
        raise Mistake(
            "wrong-filename",
            f"the file was sent as {part['filename']!r}; its name is {name!r}.",
            "use the file's own name, `os.path.basename(path)` (never a fixed name like the "
            "seed's 'upload.txt', and never the full path).",
        )
    if part["size"] != 64 * 1024 or part["sha256"] != sha256:
        raise Mistake(
            "wrong-content",
            f"the {FORM_FIELD!r} part arrived with {part['size']} bytes and a different "
            "SHA-256 from the file's.",
            'send the file opened in binary mode (`"rb"`), from its start.',
        )
    received = {p["name"]: p["value"] for p in parts if p["filename"] is None}
    for key, value in fields.items():
        if received.get(key) != value:
            raise Mistake(
                "missing-field",
                f"the field {key!r} arrived as {received.get(key)!r}, expected {value!r}.",
                "add every entry of `fields` with `form.add_field(key, value)`.",
            )
    _expect_not_blocking("upload_form", log)
    return (
        f"the server received {FORM_FIELD!r} under the file's own name with the right size "
        "and SHA-256, both fields, and the file was closed."
    )


# --- Task 2: upload_large ------------------------------------------------------------------


def _expect_whole_file(task: str, report: dict[str, Any], size: int, sha256: str) -> None:
    if report.get("kind") == "multipart":
        parts = [part for part in report["parts"] if part["size"] == size]
        received = parts[0] if parts else {"size": None, "sha256": None}
    else:
        received = report
    if received.get("size") != size or received.get("sha256") != sha256:
        raise Mistake(
            "wrong-content",
            f"the server received {report.get('size')} bytes, not the file's {size} bytes "
            "with its SHA-256.",
            "send every byte of the file, opened in binary mode, from its start.",
        )


@check("upload_large", timeout=20)
async def upload_large(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_large(session, url, path)`` streams a 16 MiB file in bounded memory."""
    with _temporary_file(f"large-{secrets.token_hex(3)}.bin", LARGE_SIZE) as (path, sha256):
        log = _ReadLog(path, threading.get_ident())
        with _tracked_open(log):
            async with aiohttp.ClientSession() as session:
                with PeakMemory() as memory:
                    report = await call_async(
                        "upload_large", learner, session, f"{server.url}/upload", path
                    )
            _expect_opened("upload_large", log)
            await _expect_closed("upload_large", log)
    report = _expect_report("upload_large", report)
    _expect_whole_file("upload_large", report, LARGE_SIZE, sha256)
    if memory.peak > LARGE_SIZE // 2:
        raise Mistake(
            "whole-file-in-memory",
            f"memory peaked at {memory.peak / 2**20:.0f} MiB for a "
            f"{LARGE_SIZE // 2**20} MiB file: the whole file was held in memory.",
            "never `file.read()` it whole: pass the open file as `data=file`, or an async "
            "generator that yields chunks.",
        )
    _expect_not_blocking("upload_large", log)
    return (
        f"all {LARGE_SIZE // 2**20} MiB arrived with the right SHA-256, in bounded memory, "
        "read off the event loop, and the file was closed."
    )


# --- Task 3: upload_with_progress ---------------------------------------------------------


@check("upload_with_progress", timeout=15)
async def upload_with_progress(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_with_progress(session, url, path, on_progress)`` reports bytes sent so far."""
    calls: list[tuple[Any, Any]] = []

    def on_progress(sent: Any, total: Any) -> None:
        calls.append((sent, total))

    name = f"progress-{secrets.token_hex(3)}.bin"
    with _temporary_file(name, PROGRESS_SIZE) as (path, sha256):
        log = _ReadLog(path, threading.get_ident())
        with _tracked_open(log):
            async with aiohttp.ClientSession() as session:
                report = await call_async(
                    "upload_with_progress",
                    learner,
                    session,
                    f"{server.url}/upload",
                    path,
                    on_progress,
                )
            _expect_opened("upload_with_progress", log)
            await _expect_closed("upload_with_progress", log)
    report = _expect_report("upload_with_progress", report)
    _expect_whole_file("upload_with_progress", report, PROGRESS_SIZE, sha256)
    _expect_not_blocking("upload_with_progress", log)
    if len(calls) < MIN_PROGRESS_CALLS:
        raise Mistake(
            "too-few-progress-calls",
            f"on_progress was called {len(calls)} times for a {PROGRESS_SIZE // 2**20} MiB "
            "upload; a learner watching a bar would see it jump.",
            "call it once per chunk as each chunk is handed to aiohttp, from an async "
            "generator passed as `data=`.",
        )
    sent = [call[0] for call in calls]
    if any(later < earlier for earlier, later in itertools.pairwise(sent)) or (
        sent[-1] != PROGRESS_SIZE and sum(sent) == PROGRESS_SIZE
    ):
        raise Mistake(
            "progress-not-cumulative",
            "the first argument of on_progress was each chunk's size, not the bytes sent so far.",
            "pass the running total of bytes sent so far, not each chunk's size.",
        )
    if sent[-1] != PROGRESS_SIZE:
        raise Mistake(
            "progress-incomplete",
            f"the last progress call said {sent[-1]} bytes; the file has {PROGRESS_SIZE}.",
            "add each chunk's length to the running total, and report after every chunk.",
        )
    if any(call[1] != PROGRESS_SIZE for call in calls):
        raise Mistake(
            "wrong-total",
            f"on_progress was given a total of {calls[0][1]!r}; the file has "
            f"{PROGRESS_SIZE} bytes.",
            "take the total from `os.path.getsize(path)` before the upload starts.",
        )
    return (
        f"the {PROGRESS_SIZE // 2**20} MiB file arrived whole, progress rose steadily to its "
        "size, reads stayed off the event loop, and the file was closed."
    )
