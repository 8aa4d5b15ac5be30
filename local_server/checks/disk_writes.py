"""What download code does to the disk, seen whatever API it uses, and a file server whose
every answer a check scripts. Shared by the download checks (exercise 09) and the capstone's
(exercise 15).

- ``FileServer`` serves ``Remote`` files on the check's own loop: deterministic bytes (the
  course server's content, ``files.iter_content``) written in uneven pieces, with
  ``Content-Length``, a strong ``ETag``, ``Range`` and ``If-Range``; per request a scripted
  fault (an error status with its page and ``Retry-After``, a reset before the headers, silent
  headers, a connection cut at byte N), a file whose every request from byte 0 is cut, a file
  that is republished (new bytes, new ETag) after its first request, a throttled rate. Each
  request is recorded as the server saw it: ``Range``/``If-Range`` received, status, bytes
  sent, when it started and ended (loop time, the clock ``asyncio.sleep`` uses).
- ``DiskWatch`` watches, while the learner's code runs, every file opened for writing,
  renamed or removed in this process (any thread, any API: ``open``, ``os.open``,
  ``os.fdopen``, ``tempfile``, ``pathlib``, ``shutil``), with the file's size when it was
  renamed or removed and whether it was still open then; the files left open; the files left
  unclosed for the garbage collector; and the bytes written or read on the event loop's
  thread: the observation's ``file-write``/``file-read`` calls plus what it cannot see, a
  ``flush()`` or a ``with`` block's close that writes a buffer, and ``os.write``'s bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
from aiohttp import web

from ..files import RangeIgnored, iter_content, parse_range
from ..serving import serve
from . import observe
from .evidence import LearnerLine, learner_line_of_frame
from .rules import Mistake, Task

# More than this read or written on the event loop's thread, in all, blocks the loop.
LOOP_IO_LIMIT = 1024 * 1024
# The server waits this long after the last byte before it cuts a connection, so that the
# client reads (nearly) all of it: aiohttp drops received bytes it had not handed over yet.
CUT_GRACE_SECONDS = 0.05

# The scenario a piece of the learner's work belongs to, when a check runs several at once;
# copied into the tasks (and ``asyncio.to_thread`` threads) the learner's code starts.
SCENARIO: contextvars.ContextVar[str | None] = contextvars.ContextVar("scenario", default=None)


def sha256_of(path: str) -> str:
    """The SHA-256 of a file on disk, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def mib(count: float) -> str:
    """``16 MiB``, ``1.5 MiB``, ``300 KiB``, ``12 bytes``: a byte count for a message."""
    if count >= 1024 * 1024:
        return f"{count / 2**20:.3g} MiB"
    if count >= 1024:
        return f"{count / 1024:.3g} KiB"
    return f"{int(count)} bytes"


# --- the scenario file server --------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What the server does to one request: ``ok``, ``status``, ``reset``, ``stall``, ``cut``."""

    kind: str
    status: int = 0
    retry_after: int | None = None
    at: int = 0  # cut: the byte of the file where the connection drops
    seconds: float = 0.0  # stall: how long the headers take

    def describe(self) -> str:
        return {
            "ok": "the file",
            "status": f"{self.status}"
            + (f" with Retry-After: {self.retry_after}" if self.retry_after else ""),
            "reset": "a reset before the headers",
            "stall": f"nothing for {self.seconds:g} s",
            "cut": f"the connection cut at byte {self.at}",
        }[self.kind]


OK = Fault("ok")
RESET = Fault("reset")


def status(code: int, retry_after: int | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


def cut(at: int) -> Fault:
    return Fault("cut", at=at)


def stall(seconds: float) -> Fault:
    return Fault("stall", seconds=seconds)


@dataclass
class Served:
    """One request as the scenario server saw it."""

    index: int
    method: str
    range: str | None
    if_range: str | None
    if_none_match: str | None
    version: int
    fault: Fault
    start: float
    status: int | None = None
    first: int = 0  # the first byte of the file sent
    sent: int = 0  # body bytes sent
    complete: bool = False
    end: float | None = None


@dataclass
class Remote:
    """A file on the scenario server, and what each request for it meets.

    ``faults[i]`` is done to the i-th GET (``then`` to every later one); ``cut_from_zero=N``
    drops every response of version 1 that starts at byte 0 at byte N; ``changes_after=k``
    republishes the file (new bytes, new ETag) after its k-th request.
    """

    name: str
    size: int
    faults: list[Fault] = field(default_factory=list)
    then: Fault = OK
    cut_from_zero: int | None = None
    changes_after: int | None = None
    rate: int | None = None
    pieces: tuple[int, int] = (1_000, 90_000)
    requests: list[Served] = field(default_factory=list)
    url: str = ""

    def version(self, index: int | None = None) -> int:
        """The version served to request ``index`` (default: the next one)."""
        index = len(self.gets()) if index is None else index
        return 2 if self.changes_after is not None and index >= self.changes_after else 1

    @property
    def latest(self) -> int:
        return 1 if self.changes_after is None else 2

    def content_name(self, version: int) -> str:
        return self.name if version == 1 else f"{self.name}~v{version}"

    def sha256(self, version: int | None = None) -> str:
        """The SHA-256 of ``version`` (default: the latest), as a publisher would announce it."""
        return _file_sha256(self.size, self.content_name(version or self.latest))

    def etag(self, version: int = 1) -> str:
        name = self.content_name(version)
        return '"' + hashlib.sha256(f"{name}\n{self.size}".encode()).hexdigest()[:24] + '"'

    def content(self, version: int | None = None) -> bytes:
        return b"".join(iter_content(self.size, self.content_name(version or self.latest)))

    def gets(self) -> list[Served]:
        return [served for served in self.requests if served.method == "GET"]

    def statuses(self) -> list[int | None]:
        return [served.status for served in self.gets()]


_sha256_cache: dict[tuple[int, str], str] = {}


def _file_sha256(size: int, name: str) -> str:
    key = (size, name)
    if key not in _sha256_cache:
        digest = hashlib.sha256()
        for piece in iter_content(size, name):
            digest.update(piece)
        _sha256_cache[key] = digest.hexdigest()
    return _sha256_cache[key]


def error_page(code: int, name: str) -> bytes:
    """An error status's body: a JSON document, as an API or a CDN would send."""
    reason = web.Response(status=code).reason
    return json.dumps(
        {"error": reason, "status": code, "detail": f"{name}: {reason.lower()}", "pad": "." * 600}
    ).encode()


class FileServer:
    """Serves ``Remote`` files on the check's loop, at ``{url}/{name}``, for an ``async with``."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.remotes: dict[str, Remote] = {}
        self.app = web.Application()
        self.app.router.add_get("/{name}", self._handle)
        self._serving: Any = None
        self.url = ""

    async def __aenter__(self) -> FileServer:
        self._serving = serve(self.app, shutdown_timeout=0.05)
        self.url = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._serving.__aexit__(*exc_info)

    def add(self, remote: Remote) -> Remote:
        if remote.name in self.remotes:
            raise ValueError(f"two remotes named {remote.name}")
        self.remotes[remote.name] = remote
        remote.url = f"{self.url}/{remote.name}"
        return remote

    async def idle(self) -> None:
        """Wait (at most 2 s) until no request is in flight."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + 2
        while loop.time() < give_up_at and any(
            served.end is None for remote in self.remotes.values() for served in remote.requests
        ):
            await asyncio.sleep(0.01)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        remote = self.remotes.get(request.match_info["name"])
        if remote is None:
            raise web.HTTPNotFound(text="no such file")
        loop = asyncio.get_running_loop()
        index = len(remote.gets())
        head = request.method == "HEAD"
        if head:
            fault = OK
        else:
            fault = remote.faults[index] if index < len(remote.faults) else remote.then
        version = remote.version(index)
        served = Served(
            index, request.method, request.headers.get("Range"),
            request.headers.get("If-Range"), request.headers.get("If-None-Match"), version,
            fault, loop.time(),
        )  # fmt: skip
        remote.requests.append(served)
        try:
            return await self._answer(request, remote, served, fault, version, index)
        except ConnectionError:  # the client went away (a stall outlived its timeout)
            return web.Response(status=499)
        finally:
            if served.end is None:
                served.end = loop.time()

    async def _answer(
        self, request: web.Request, remote: Remote, served: Served, fault: Fault, version: int,
        index: int,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        if fault.kind == "reset":
            served.end = loop.time()
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client gave up: nothing to send
        if fault.kind == "status":
            served.status = fault.status
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            served.end = loop.time()
            return web.Response(
                status=fault.status, body=error_page(fault.status, remote.name), headers=headers
            )
        etag = remote.etag(version)
        headers = {
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        first, last = 0, remote.size - 1
        partial = False
        wanted = request.headers.get("Range")
        if wanted is not None and (served.if_range is None or served.if_range.strip() == etag):
            try:
                first, last = parse_range(wanted, remote.size)
                partial = True
            except RangeIgnored:
                pass
            except web.HTTPRequestRangeNotSatisfiable:
                served.status = 416
                served.end = loop.time()
                raise
        if partial:
            headers["Content-Range"] = f"bytes {first}-{last}/{remote.size}"
        served.status = 206 if partial else 200
        served.first = first
        response = web.StreamResponse(status=served.status, headers=headers)
        response.content_length = last - first + 1
        await response.prepare(request)
        if request.method == "HEAD":
            served.end = loop.time()
            return response
        stop = last
        cuts = fault.kind == "cut" or (
            remote.cut_from_zero is not None and first == 0 and version == 1
        )
        if cuts:
            at = fault.at if fault.kind == "cut" else remote.cut_from_zero
            if first < at <= last:
                stop = at - 1
            else:
                cuts = False
        rng = random.Random(f"{self.seed}-{remote.name}-{index}")
        total = stop - first + 1
        source = iter_content(remote.size, remote.content_name(version), first, stop)
        pending = b""
        try:
            while served.sent < total:
                size = min(rng.randint(*remote.pieces), total - served.sent)
                while len(pending) < size:
                    pending += next(source)
                piece, pending = pending[:size], pending[size:]
                if remote.rate is not None:
                    await asyncio.sleep(len(piece) / remote.rate)
                if served.sent + len(piece) >= total and not cuts:
                    served.end = loop.time()  # before the last byte can reach the client
                await response.write(piece)
                served.sent += len(piece)
        except (ConnectionError, RuntimeError):
            return response  # the client went away
        if cuts:
            await asyncio.sleep(CUT_GRACE_SECONDS)
            served.end = loop.time()
            if request.transport is not None:
                request.transport.close()
            return response
        served.complete = True
        await response.write_eof()
        return response


# --- what the learner's code does to the disk -----------------------------------------------


@dataclass
class DiskEvent:
    """A file opened for writing, renamed or removed while the learner's code ran."""

    action: str  # "open-write", "rename", "remove"
    path: str
    target: str | None
    size: int | None  # rename, remove: the file's size at that moment
    still_open: bool  # rename: the file was open in this process at that moment
    scenario: str | None
    on_loop_thread: bool


@dataclass
class LoopIO:
    """Bytes read or written on the event loop's thread from one learner line."""

    where: LearnerLine | None
    what: str  # "write", "read", "flush", "os.write"
    target: str
    calls: int = 0
    bytes: int = 0


_BUFFERED = (io.BufferedWriter, io.BufferedRandom)
_FLUSHING = frozenset({"flush", "close", "__exit__"})
_OS_WRITES = tuple(f for f in (os.write, getattr(os, "pwrite", None)) if f is not None)
_WATCHES: list[DiskWatch] = []
_hook_installed = False
_busy = threading.local()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHES or event not in ("open", "os.rename", "os.remove"):
        return
    if getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        for watch in list(_WATCHES):
            if watch.active:
                watch._record(event, args)
    finally:
        _busy.on = False


def open_paths() -> set[str]:
    """The real paths of every file this process has open now."""
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        paths = set()
        for name in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                paths.add(os.readlink(os.path.join(fd_dir, name)))
        return paths
    try:
        return {f.path for f in psutil.Process().open_files()}
    except psutil.Error:
        return set()


def _real(path: Any) -> str:
    return os.path.realpath(os.fsdecode(path))


class DiskWatch:
    """What the learner's code did to files while ``calling()`` blocks ran, on any thread.

    Use it around the whole check: it also collects the warnings that name a file left for
    the garbage collector to close, and passes every warning on when it ends.
    """

    def __init__(self) -> None:
        self.events: list[DiskEvent] = []
        self.active = 0
        self.loop_io: dict[tuple, LoopIO] = {}
        self.loop_thread = threading.get_ident()
        self._previous_profile: Any = None
        self._pending: tuple | None = None
        self._warnings: Any = None
        self.caught: list[warnings.WarningMessage] = []

    # -- setting up

    def __enter__(self) -> DiskWatch:
        global _hook_installed
        if not _hook_installed:
            sys.addaudithook(_audit)  # never removed: it returns at once when nothing watches
            _hook_installed = True
        _WATCHES.append(self)
        self._previous_profile = sys.getprofile()
        sys.setprofile(self._profile)
        self._warnings = warnings.catch_warnings(record=True)
        self.caught = self._warnings.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        sys.setprofile(self._previous_profile)
        with contextlib.suppress(ValueError):
            _WATCHES.remove(self)
        self._warnings.__exit__(None, None, None)
        for w in self.caught:  # for the check's own collector: a coroutine never awaited...
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

    @contextlib.contextmanager
    def calling(self, scenario: str | None = None) -> Iterator[int]:
        """Watch the block (the learner's call); yields where its events start."""
        token = SCENARIO.set(scenario)
        self.active += 1
        try:
            yield len(self.events)
        finally:
            self.active -= 1
            SCENARIO.reset(token)

    def settle(self) -> None:
        """Let the garbage collector close what the learner's code dropped, and warn of it."""
        gc.collect()

    # -- recording

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        real = _real(path)
        on_loop = threading.get_ident() == self.loop_thread
        scenario = SCENARIO.get()
        if event == "open":
            mode, flags = args[1], args[2]
            writing = bool(set(mode or "") & set("wax+")) or bool(
                (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
            )
            if writing:
                self.events.append(DiskEvent("open-write", real, None, None, False, scenario,
                                             on_loop))  # fmt: skip
            return
        size = None
        with contextlib.suppress(OSError):
            size = os.stat(real).st_size
        if event == "os.rename":
            still_open = real in open_paths()
            self.events.append(
                DiskEvent("rename", real, _real(args[1]), size, still_open, scenario, on_loop)
            )
        else:
            self.events.append(DiskEvent("remove", real, None, size, False, scenario, on_loop))

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        previous = self._previous_profile
        if previous is not None:
            previous(frame, event, arg)
        if event == "c_call":
            if arg in _OS_WRITES:
                self._pending = (arg, frame, "os.write", "os.write", self._written_size())
                return
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, _BUFFERED) and getattr(arg, "__name__", "") in _FLUSHING:
                with contextlib.suppress(OSError, ValueError):
                    buffered = owner.tell() - owner.raw.tell()
                    if buffered > 0:
                        name = getattr(owner, "name", "?")
                        self._pending = (arg, frame, "flush", str(name), buffered)
                        return
            self._pending = None
        elif event in ("c_return", "c_exception"):
            pending = self._pending
            if pending is None or pending[0] is not arg:
                return
            self._pending = None
            _, caller, what, target, before = pending
            count = before if what == "flush" else max(0, self._written_size() - before)
            where = learner_line_of_frame(caller)
            if where is None or count == 0:
                return
            entry = self.loop_io.setdefault((what, target, where), LoopIO(where, what, target))
            entry.calls += 1
            entry.bytes += count

    def _written_size(self) -> int:
        """The total size of the files the learner's code has opened for writing."""
        total = 0
        for path in {e.path for e in self.events if e.action == "open-write"}:
            with contextlib.suppress(OSError):
                total += os.stat(path).st_size
        return total

    # -- reading what was seen

    def since(self, start: int, scenario: str | None = None) -> list[DiskEvent]:
        """The events from index ``start``; of ``scenario`` and of no known scenario."""
        return [
            e for e in self.events[start:]
            if scenario is None or e.scenario in (scenario, None)
        ]  # fmt: skip

    def unclosed(self) -> list[str]:
        """Files the garbage collector had to close: the paths its warnings name."""
        paths = []
        for w in self.caught:
            if issubclass(w.category, ResourceWarning) and "unclosed file" in str(w.message):
                text = str(w.message)
                if "name='" in text:
                    paths.append(_real(text.split("name='", 1)[1].split("'", 1)[0]))
                else:
                    paths.append(text)
        return paths

    def written(self) -> set[str]:
        """Every path the learner's code opened for writing or renamed to."""
        return {e.path for e in self.events if e.action == "open-write"} | {
            e.target for e in self.events if e.action == "rename" and e.target
        }

    def loop_io_seen(self, obs: observe.Observation, directories: list[str]) -> list[LoopIO]:
        """Learner lines that read or wrote its files on the loop's thread, biggest first.

        Only the files the learner's code wrote, or that sit in ``directories``, count: a
        module imported on the loop's thread is read there too, and is not the learner's I/O.
        """
        mine = self.written()
        roots = [_real(directory) + os.sep for directory in directories]
        seen = list(self.loop_io.values())
        for call in obs.blocking_calls("file-write", "file-read"):
            if call.target in ("os.write", "os.pwrite"):
                continue  # counted here, with the bytes
            what = "write" if call.kind == "file-write" else "read"
            seen.append(LoopIO(call.where, what, call.target, call.calls, call.bytes))
        kept = [
            io_ for io_ in seen
            if io_.what == "os.write" or _real(io_.target) in mine
            or any(_real(io_.target).startswith(root) for root in roots)
        ]  # fmt: skip
        return sorted(kept, key=lambda io_: io_.bytes, reverse=True)


def learner_lines(obs: observe.Observation, path: str, action: str) -> list[LearnerLine]:
    """The learner's lines the observation saw doing ``action`` to ``path``."""
    real = _real(path)
    return [
        e.where for e in obs.files
        if e.action == action and e.where is not None and _real(e.path) == real
    ]  # fmt: skip


def expect_off_loop(
    table: Task, watch: DiskWatch, task: str, directories: list[str], problem: str = "blocked-loop"
) -> None:
    """``problem`` if more than LOOP_IO_LIMIT was read or written on the loop's thread."""
    seen = watch.loop_io_seen(observe.current(), directories)
    total = sum(io_.bytes for io_ in seen)
    if total <= LOOP_IO_LIMIT:
        return
    top = seen[0]
    target = os.path.basename(top.target) if os.sep in top.target else top.target
    verb = {
        "write": f"wrote {mib(top.bytes)} to {target!r}",
        "read": f"read {mib(top.bytes)} of {target!r}",
        "flush": f"flushed {mib(top.bytes)} of buffered data to {target!r}",
        "os.write": f"wrote {mib(top.bytes)} with os.write()",
    }[top.what]
    others = f" ({mib(total)} in all)" if total > top.bytes * 1.05 else ""
    hint = {
        "write": "write each chunk in a worker thread: `await asyncio.to_thread(file.write, "
        "chunk)`.",
        "read": "read the file in a worker thread (`await asyncio.to_thread(...)`), in pieces, "
        "or hash the chunks as they arrive instead of reading the file again.",
        "flush": "flush() writes the buffer to disk: call it in the worker thread too (`await "
        "asyncio.to_thread(file.flush)`), or leave it to close().",
        "os.write": "call it in a worker thread: `await asyncio.to_thread(os.write, fd, chunk)`.",
    }[top.what]
    raise table.broken(
        problem,
        f"{task} {verb} on the event loop's thread, {top.calls} call(s) at {top.where}{others}: "
        "while the disk works, no other task can run.",
        hint,
    )


def read_back(watch: DiskWatch, directories: list[str], size: int) -> str:
    """The learner line that read a file back on the loop's thread, in big pieces, or ''."""
    for io_ in watch.loop_io_seen(observe.current(), directories):
        if io_.what == "read" and io_.bytes >= size // 2 and io_.bytes / io_.calls >= size // 4:
            name = os.path.basename(io_.target)
            return f"{io_.where} read {mib(io_.bytes)} of {name!r} at once"
    return ""


READ_BACK_HINT = (
    "hash the chunks as they arrive (`digest.update(chunk)`); to hash the file afterwards, "
    "read it in pieces (`hashlib.file_digest`) in a worker thread."
)


def memory_verdict(task: str, peak: int, size: int, watch: DiskWatch,
                   directories: list[str]) -> tuple[str, str | None]:  # fmt: skip
    """Why memory peaked, and a hint for it: a file read back whole, if that was seen."""
    read = read_back(watch, directories, size)
    if read:
        return (f"memory peaked at {mib(peak)} while {task} downloaded {mib(size)}: {read}, "
                "the whole file in memory (and on the event loop's thread).",
                READ_BACK_HINT)  # fmt: skip
    return (f"memory peaked at {mib(peak)} while {task} downloaded {mib(size)}: the whole "
            "body was in memory at once.", None)  # fmt: skip


def describe_file(path: str, expected: bytes) -> str:
    """How the file at ``path`` differs from ``expected``, in words."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        data = file.read()
    want = len(expected)
    if size == 0:
        return "is empty"
    if size < want and expected.startswith(data):
        return f"holds only the first {size} of {want} bytes"
    if size < want and expected.endswith(data):
        return f"holds only the last {size} of {want} bytes"
    if size > want and data.startswith(expected):
        return f"has {size} bytes: the {want} of the download, then {size - want} more"
    if size == want:
        first = next(i for i, (a, b) in enumerate(zip(data, expected, strict=True)) if a != b)
        return f"has the right size ({want} bytes) but differs from byte {first} on"
    return f"has {size} bytes instead of {want}, and not the download's bytes"


def expect_content(
    table: Task, task: str, path: str, remote: Remote, what: str = "`dest`",
    version: int | None = None, hint: str | None = None,
) -> None:
    """``no-file`` or ``wrong-content`` unless ``path`` holds ``remote``'s bytes."""
    if not os.path.exists(path):
        raise table.broken(
            "no-file", f"{task} returned, but there is no file at {what} ({remote.name}).",
        )
    if os.path.getsize(path) == remote.size and sha256_of(path) == remote.sha256(version):
        return
    how = describe_file(path, remote.content(version))
    raise table.broken(
        "wrong-content", f"after {task} returned, the file at {what} {how} ({remote.name}).", hint
    )


def leftovers(events: list[DiskEvent], keep: set[str]) -> list[str]:
    """Files the learner's code created (or renamed to) that still exist, other than ``keep``."""
    keep = {_real(path) for path in keep}
    made: list[str] = []
    for event in events:
        path = event.path if event.action == "open-write" else event.target
        if path and path not in made:
            made.append(path)
    return [path for path in made if path not in keep and os.path.isfile(path)]


def remove_quietly(paths: list[str]) -> None:
    """Remove the learner's leftover files (in the system temp dir too): the check made them."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


def where_is(path: str, directory: str) -> str:
    """A path for a message: its name if it is in ``directory``, else where it is."""
    if os.path.dirname(path) == _real(directory):
        return os.path.basename(path)
    temp = _real(tempfile.gettempdir())
    if path.startswith(temp + os.sep):
        return f"{os.path.basename(path)} in the system temp dir ({temp})"
    return path


def still_open(paths: set[str]) -> list[str]:
    """Which of ``paths`` this process still has open."""
    now_open = open_paths()
    return sorted(path for path in paths if path in now_open)


__all__ = [
    "LOOP_IO_LIMIT",
    "OK",
    "RESET",
    "SCENARIO",
    "DiskEvent",
    "DiskWatch",
    "Fault",
    "FileServer",
    "Mistake",
    "Remote",
    "Served",
    "cut",
    "describe_file",
    "error_page",
    "expect_content",
    "expect_off_loop",
    "leftovers",
    "memory_verdict",
    "mib",
    "open_paths",
    "remove_quietly",
    "sha256_of",
    "stall",
    "status",
    "still_open",
    "where_is",
]
