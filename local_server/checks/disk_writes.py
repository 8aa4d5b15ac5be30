"""Watching what a learner's download code writes to disk, and judging the file it leaves.

Shared by the download checks (exercise 09) and the capstone's (exercise 15). While a check
runs the learner's code inside ``tracked_writes(log)``, ``open()`` of any file in the check's
directory for writing (``open``, ``io.open``, ``Path.open``, and IPython's ``open`` in a
notebook) returns a tracked writer that records how many bytes were written on the check's
event-loop thread: writes there block the loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from ..files import file_sha256
from ..runner import LocalServer
from .harness import ORIGINAL_OPEN, Mistake, open_replaced_by, until_idle

# Writing more than this on the event loop's thread is reported as blocking the loop.
LOOP_WRITE_LIMIT = 1024 * 1024
WRITE_MODES = set("wax+")


class WriteLog:
    """Files opened for writing in the check's directory; bytes written on the loop's thread."""

    def __init__(self, directory: str, loop_thread: int) -> None:
        self.directory = os.path.realpath(directory)
        self.loop_thread = loop_thread
        self.bytes_on_loop = 0
        self.handles: list[Any] = []

    def record(self, count: int) -> None:
        if threading.get_ident() == self.loop_thread:
            self.bytes_on_loop += count

    def watches(self, file: Any, mode: str) -> bool:
        if not isinstance(file, (str, os.PathLike)) or not set(mode) & WRITE_MODES:
            return False
        parent = os.path.dirname(os.path.realpath(os.fspath(file)))
        return parent == self.directory


class TrackedWriter:
    """A file object that reports each write to its ``WriteLog``; the rest is delegated."""

    def __init__(self, file: Any, log: WriteLog) -> None:
        self._file = file
        self._log = log
        log.handles.append(file)

    def write(self, data: Any) -> int:
        count = self._file.write(data)
        self._log.record(count if isinstance(count, int) else len(data))
        return count

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> TrackedWriter:
        self._file.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self._file.__exit__(*exc_info)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._file)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@contextlib.contextmanager
def tracked_writes(log: WriteLog) -> Iterator[None]:
    """Make ``open(path, "wb")`` of files in ``log.directory`` return a ``TrackedWriter``."""

    def tracking_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = ORIGINAL_OPEN(file, mode, *args, **kwargs)
        if log.watches(file, mode):
            return TrackedWriter(handle, log)
        return handle

    try:
        with open_replaced_by(tracking_open):
            yield
    finally:
        for handle in log.handles:  # close what the learner left open, after judging it
            if not handle.closed:
                handle.close()


def sha256_of(path: str) -> str:
    """The SHA-256 of a file on disk, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def expect_not_blocking(task: str, log: WriteLog) -> None:
    """A Mistake if the learner wrote over LOOP_WRITE_LIMIT bytes on the loop's thread."""
    if log.bytes_on_loop > LOOP_WRITE_LIMIT:
        raise Mistake(
            "blocked-loop",
            f"{task} wrote {log.bytes_on_loop // 1024} KiB to disk on the event loop's thread: "
            "while each write runs, no other task can.",
            "write each chunk in a worker thread: `await asyncio.to_thread(file.write, chunk)`.",
        )


ATOMIC_HINT = (
    "write to a temporary name in the same directory (`dest + '.part'`) and "
    "`os.replace(temp, dest)` only when every byte arrived and the checksum matched."
)


def expect_absent(dest: str, problem: str, what: str, hint: str = ATOMIC_HINT) -> None:
    """A Mistake ``problem`` if a file sits under ``dest`` after ``what`` (a failed download)."""
    if os.path.exists(dest):
        raise Mistake(
            problem,
            f"after {what}, a file of {os.path.getsize(dest)} bytes sits under the final name: "
            "it looks like a finished download.",
            hint,
        )


def expect_file(task: str, dest: str, size: int, name: str) -> None:
    """A Mistake unless ``dest`` holds exactly the course file ``size``/``name``."""
    if not os.path.exists(dest):
        raise Mistake(
            "no-file",
            f"{task} returned, but there is no file at `dest`.",
            "write the body to `dest` (or to a temporary name, then `os.replace(temp, dest)`).",
        )
    actual = os.path.getsize(dest)
    if actual != size or sha256_of(dest) != file_sha256(size, name):
        raise Mistake(
            "wrong-content",
            f"the file at `dest` has {actual} bytes and a SHA-256 that is not the download's "
            f"({size} bytes).",
            'open it in binary mode for writing (`"wb"`) and write every chunk, in order.',
        )


async def completed_statuses(server: LocalServer, path: str) -> list[int]:
    """The statuses of the finished requests for ``path``, in the order they arrived.

    Waits for the server to be idle first: the learner's code may have every byte of the
    last response before the server has logged that request as complete.
    """
    await until_idle(server)
    return [
        record.status
        for record in server.stats().timeline
        if record.path.split("?")[0] == path and record.status is not None
    ]
