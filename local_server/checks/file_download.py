"""Checks for exercise 09, file download.

In the notebook: ``from local_server.checks import file_download as check``.

Each check gives the learner's code a destination in a fresh temporary directory (removed
afterwards) and, while the code runs, makes ``open()`` of any file in that directory for
writing (``open``, ``io.open``, ``Path.open``, and IPython's ``open`` in a notebook) return a
tracked writer: it records how many bytes were written on the check's event-loop thread
(writes there block the loop). The server's request log says which responses were 200 (the
whole file) and which 206 (a ``Range``); ``file_sha256`` gives the digest the file must have.

- ``download`` streams a 16 MiB file to disk while ``tracemalloc`` records the peak memory.
- ``download_verified`` must be atomic and verify the SHA-256: a cut connection
  (``?break_at=``) and a wrong digest must raise and leave nothing under the final name.
- ``resume_download`` completes a partial file with ``Range`` and ``If-Range``; with a stale
  ETag the server sends the whole file, which must replace the partial, not extend it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import aiohttp

from ..files import file_etag, file_sha256
from ..runner import LocalServer
from .disk_writes import (
    WriteLog,
    completed_statuses,
    expect_absent,
    expect_file,
    expect_not_blocking,
    sha256_of,
    tracked_writes,
)
from .harness import (
    Mistake,
    PeakMemory,
    SessionSpy,
    call_async,
    check,
)

LARGE_SIZE = 16 * 1024 * 1024
VERIFIED_SIZE = 2 * 1024 * 1024
RESUME_SIZE = 4 * 1024 * 1024
RESUME_FROM = 1536 * 1024


# --- Task 1: download ----------------------------------------------------------------------


@check("download", timeout=20)
async def download(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download(session, url, dest)`` streams a 16 MiB file to disk in bounded memory."""
    name = "large.bin"
    url = f"{server.url}/files/{LARGE_SIZE}?name={name}"
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory:
        dest = os.path.join(directory, name)
        log = WriteLog(directory, threading.get_ident())
        with tracked_writes(log):
            async with aiohttp.ClientSession() as session:
                with PeakMemory() as memory:
                    await call_async("download", learner, session, url, dest)
        expect_file("download", dest, LARGE_SIZE, name)
    if memory.peak > LARGE_SIZE // 2:
        raise Mistake(
            "whole-body-in-memory",
            f"memory peaked at {memory.peak / 2**20:.0f} MiB for a "
            f"{LARGE_SIZE // 2**20} MiB download: the whole body was held in memory.",
            "never `await response.read()` a large body: "
            "`async for chunk in response.content.iter_chunked(64 * 1024):` and write each.",
        )
    expect_not_blocking("download", log)
    return (
        f"all {LARGE_SIZE // 2**20} MiB reached the disk with the right SHA-256, in bounded "
        "memory, written off the event loop."
    )


# --- Task 2: download_verified -------------------------------------------------------------


async def _expect_failure(
    task: str, learner: Any, session: aiohttp.ClientSession, url: str, dest: str, sha256: str,
    what: str,
) -> None:
    try:
        await call_async(task, learner, session, url, dest, sha256)
    except NotImplementedError:
        raise
    except Mistake:
        raise
    except Exception:
        return
    raise Mistake(
        "failure-swallowed" if "cut" in what else "checksum-ignored",
        f"{task} returned normally after {what}; the caller believes the download worked.",
        "let the exception propagate (no bare `except`), and compare the SHA-256 of what you "
        "wrote with `sha256`: raise when they differ.",
    )


@check("download_verified", timeout=15)
async def download_verified(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``download_verified(session, url, dest, sha256)``: verified and atomic."""
    name = "verified.bin"
    base = f"{server.url}/files/{VERIFIED_SIZE}"
    sha256 = file_sha256(VERIFIED_SIZE, name)
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory:
        dest = os.path.join(directory, name)
        log = WriteLog(directory, threading.get_ident())
        with tracked_writes(log):
            async with aiohttp.ClientSession() as session:
                await call_async(
                    "download_verified", learner, session, f"{base}?name={name}", dest, sha256
                )
                expect_file("download_verified", dest, VERIFIED_SIZE, name)
                os.remove(dest)

                cut = f"{base}?name={name}&break_at={VERIFIED_SIZE // 2}"
                await _expect_failure(
                    "download_verified", learner, session, cut, dest, sha256,
                    "the connection was cut halfway",
                )
                expect_absent(dest, "partial-file-left", "the connection was cut")

                other = f"{base}?name=other-{name}"
                await _expect_failure(
                    "download_verified", learner, session, other, dest, sha256,
                    "downloading a file whose SHA-256 is not `sha256`",
                )
                if os.path.exists(dest):
                    raise Mistake(
                        "unverified-file-left",
                        "the file's SHA-256 did not match `sha256`, yet it was moved to the "
                        "final name.",
                        "check the digest before `os.replace(temp, dest)`, and remove the "
                        "temporary file when it does not match.",
                    )
    expect_not_blocking("download_verified", log)
    return (
        "the good download arrived whole; a cut connection and a wrong checksum each raised "
        "and left nothing under the final name."
    )


# --- Task 3: resume_download ---------------------------------------------------------------


@check("resume_download", timeout=15)
async def resume_download(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``resume_download(session, url, path, etag)`` completes the partial file at ``path``."""
    name = "resume.bin"
    path_url = f"/files/{RESUME_SIZE}"
    # The first attempt broke at RESUME_FROM: the same URL breaks there again when asked from
    # the start, and completes from there with ``Range: bytes=RESUME_FROM-``.
    url = f"{server.url}{path_url}?name={name}&break_at={RESUME_FROM}"
    with tempfile.TemporaryDirectory(prefix="download-check-") as directory:
        path = os.path.join(directory, name)
        async with aiohttp.ClientSession() as session:
            async with session.get(
                url, headers={"Range": f"bytes=0-{RESUME_FROM - 1}"}
            ) as response:
                partial = await response.read()
            with open(path, "wb") as file:
                file.write(partial)
            server.reset_stats()
            log = WriteLog(directory, threading.get_ident())
            with tracked_writes(log):
                try:
                    await call_async(
                        "resume_download", learner, session, url, path,
                        file_etag(RESUME_SIZE, name),
                    )
                except aiohttp.ClientPayloadError:
                    statuses = await completed_statuses(server, path_url)
                    if 206 not in statuses:
                        raise Mistake(
                            "restarted-from-zero",
                            "the resume asked for the whole file again (the server answered "
                            f"{statuses or 'nothing'}, no 206), and the connection broke at "
                            "the same place.",
                            "send `Range: bytes=<size of the partial file>-` and append what "
                            "comes back.",
                        ) from None
                    raise
            statuses = await completed_statuses(server, path_url)
            if 206 not in statuses:
                raise Mistake(
                    "restarted-from-zero",
                    "the server saw no `Range` request: the resume downloaded everything again.",
                    "send `Range: bytes=<size of the partial file>-` and append what comes back.",
                )
            size = os.path.getsize(path)
            if size != RESUME_SIZE or sha256_of(path) != file_sha256(RESUME_SIZE, name):
                raise Mistake(
                    "resume-corrupt",
                    f"after the resume the file has {size} bytes (expected {RESUME_SIZE}) or "
                    "the wrong SHA-256: the new bytes were not appended at the right place.",
                    'open the partial file with `"ab"` (append) and ask for '
                    "`bytes=<its size>-`, exactly.",
                )

            # A partial file from an older version: If-Range makes the server send it all.
            stale = os.path.join(directory, "stale.bin")
            fresh_url = f"{server.url}{path_url}?name=stale.bin"
            with open(stale, "wb") as file:
                file.write(partial)
            server.reset_stats()
            with tracked_writes(log):
                await call_async(
                    "resume_download", learner, session, fresh_url, stale, '"an-old-version"'
                )
            if 206 in await completed_statuses(server, path_url):
                raise Mistake(
                    "no-if-range",
                    "the partial file came from an older version (its ETag no longer matches) "
                    "but the server was not told, so it sent only the rest: the file mixes "
                    "two versions.",
                    "send `If-Range: <etag>` with the Range; the server then sends the whole "
                    "file when the ETag changed.",
                )
            size = os.path.getsize(stale)
            if size != RESUME_SIZE or sha256_of(stale) != file_sha256(RESUME_SIZE, "stale.bin"):
                if size == RESUME_FROM + RESUME_SIZE:
                    raise Mistake(
                        "appended-whole-file",
                        "with an ETag that no longer matched, the server sent the whole file "
                        "(200) and it was appended to the old partial file.",
                        "send `If-Range: <etag>` with the Range; on a 200 answer start the file "
                        'over (`"wb"`), on a 206 append (`"ab"`).',
                    )
                raise Mistake(
                    "resume-corrupt",
                    "with a stale ETag, the file did not end up as the server's current file "
                    f"({size} bytes, wrong SHA-256).",
                    "send `If-Range: <etag>`; on a 200 answer start the file over, on a 206 "
                    "append.",
                )
    expect_not_blocking("resume_download", log)
    return (
        "the resume asked for the missing bytes only (206) and the file's SHA-256 matched; "
        "with a stale ETag the whole new file replaced the old partial."
    )
