"""Checks for exercise 19, serving more than JSON: ``from local_server.checks import serving_more``.

The learner writes four application factories; each check builds **two** of them (state kept
outside the app shows as one app answering with the other's data), serves them with
``serve()`` on the check's own loop, and talks to them with clients of its own:

- ``static_app(create_static_app)``: two folders made for the check (non-ASCII names, odd
  sizes, a 24 MiB file, a symlink that leads out, a secret beside each folder and in a sibling
  folder whose name starts like the root's). Traversal attempts travel as raw bytes, since
  aiohttp's client removes ``..`` before sending. Observed: every status and body, the
  caching headers and conditional answers before and after a file changes, a Range answer,
  the peak of traced memory while the big file downloads, file reads on the loop's thread,
  files still open and records logged after a download dropped half-way.
- ``export_app(create_export_app)``: record sources that count what the handler pulled from
  them: one that waits after five records until the client has read the first line, one of
  10 MiB read by a raw client that reads nothing (small socket buffers on both ends), one that
  never ends, whose client vanishes mid-stream.
- ``feed_app(create_feed_app)``: two ``Feed``\\ s whose ids do not start at 1 and have gaps;
  history, live events, a disconnect, events published meanwhile, a reconnect with
  ``Last-Event-ID``, a malformed one; the feed's own subscriber count.
- ``room_app(create_room_app)``: fast members (aiohttp clients), a member that stops reading
  and one that vanishes (raw WebSocket clients with small buffers), 400 messages of 8 KiB in
  bursts of 20, what every member got, and the close frame each one saw at shutdown.

Every verdict is judged from effects: what the clients received, what the sources gave, what
was logged, what stayed open. Waits count only time in which the loop kept running, so a
loaded machine cannot turn a correct answer into a stall.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import email.utils
import gc
import hashlib
import inspect
import json
import logging
import os
import random
import socket
import struct
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..runner import LocalServer
from ..serving import captured_server_errors, serve
from . import observe
from .evidence import clip, exception_text, learner_line
from .harness import PeakMemory, SessionSpy, check, plural
from .rules import Rule, Task

__all__ = ["Event", "Feed", "export_app", "feed_app", "room_app", "static_app"]

SEED = 0
# What a socket buffer is set to, on both ends, where the check makes a client that lags.
SMALL_BUFFER = 16 * 1024
# The header by which the check's lagging clients ask for a small send buffer on the server.
LAGGING = "X-Check-Lagging"
# How long a shutdown may wait for handlers still running.
SHUTDOWN_SECONDS = 0.5
# A wait for something that a correct answer does at once gives up after this long, counted
# only while the loop kept running (see ``_responsive_wait``).
PATIENCE_SECONDS = 2.0


# --- the feed that task 3 streams ---------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event of a ``Feed``: its whole-number id and its text (which may hold newlines)."""

    id: int
    data: str


class Feed:
    """Events with increasing whole-number ids, kept in memory.

    ``publish(data)`` adds an event and returns its id. ``subscribe(after=n)`` is an async
    iterator: every stored event with an id above ``n``, in order, then each new one as it is
    published, until ``close()``. ``subscribers`` counts the iterators running now.

    ``Feed()`` numbers events 1, 2, 3...; ``Feed(first_id=7301, rng=random.Random(1))``
    starts elsewhere and leaves gaps, as ids from a database do.
    """

    def __init__(self, first_id: int = 1, rng: random.Random | None = None) -> None:
        self.events: list[Event] = []
        self.subscribers = 0
        self._next_id = first_id
        self._rng = rng
        self._wakers: set[asyncio.Event] = set()
        self._closed = False

    def publish(self, data: str) -> int:
        """Add an event with ``data``; return its id."""
        if not isinstance(data, str):
            raise TypeError(f"an event's data is a str, not {type(data).__name__}")
        event = Event(self._next_id, data)
        self._next_id += 1 if self._rng is None else self._rng.randint(1, 4)
        self.events.append(event)
        self._wake()
        return event.id

    def close(self) -> None:
        """End every subscription (each iterator stops after the events it has not sent)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        for waker in list(self._wakers):
            waker.set()

    def _after(self, event_id: int) -> list[Event]:
        ids = [event.id for event in self.events]
        return self.events[bisect.bisect_right(ids, event_id) :]

    async def subscribe(self, after: int = 0) -> AsyncIterator[Event]:
        """Every event with an id above ``after``, then each new one; ends at ``close()``."""
        if isinstance(after, bool) or not isinstance(after, int):
            raise TypeError(f"after is an int (an event id), not {type(after).__name__}")
        waker = asyncio.Event()
        self._wakers.add(waker)
        self.subscribers += 1
        try:
            last = after
            while True:
                for event in self._after(last):
                    last = event.id
                    yield event
                if self._closed:
                    return
                waker.clear()
                if not self._after(last):
                    await waker.wait()
        finally:
            self.subscribers -= 1
            self._wakers.discard(waker)

    def __repr__(self) -> str:
        return f"<Feed: {plural(len(self.events), 'event')}, {self.subscribers} subscribed>"


# --- rules shared by the four tasks --------------------------------------------------------------


def _app_rules(factory: str) -> list[Rule]:
    return [
        Rule(
            "not-an-application",
            f"`{factory}` returns a `web.Application`",
            "the type of what the factory returned",
            "build `app = web.Application()`, add the routes, `return app`.",
        ),
        Rule(
            "start-up-failed",
            "the application starts",
            "the exception its start-up raised, and the learner's line",
            "a start-up step raised: read the message and the line above.",
        ),
        Rule(
            "handler-raised",
            "the handler answers (no 500)",
            "the exception aiohttp logged for a request that answered 500, and its line",
            "read the exception and the line above; a handler must not let it escape.",
        ),
    ]


# --- building, serving and watching the learner's apps ------------------------------------------


@dataclass
class Probe:
    """What the check's instrumentation saw of one app: requests in flight, and so on."""

    label: str
    in_flight: int = 0
    handled: int = 0


def _instrument(app: web.Application, probe: Probe) -> None:
    """Count the app's requests in flight; shrink the send buffer of a lagging client's
    connection (one whose request carries ``LAGGING``), so that back-pressure shows at once."""

    @web.middleware
    async def counting(request: web.Request, handler: Any) -> web.StreamResponse:
        probe.in_flight += 1
        try:
            return await handler(request)
        finally:
            probe.in_flight -= 1
            probe.handled += 1

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        transport = request.transport
        if LAGGING in request.headers and transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)

    app.middlewares.append(counting)
    app.on_response_prepare.append(on_prepare)


# aiohttp 3.14.5's AppKey() names itself after the nearest module-level frame and fails
# (UnboundLocalError) when there is none, as in a check's thread. A factory that makes a key is
# therefore called from module-level code, as it would be in a notebook cell or a script.
_AS_MODULE = compile("result = factory(*args)", "<string>", "exec")


def _call_as_module(factory: Callable[..., Any], *args: Any) -> Any:
    namespace: dict[str, Any] = {"__name__": "__main__", "factory": factory, "args": args}
    exec(_AS_MODULE, namespace)
    return namespace["result"]


async def _build(table: Task, factory: Callable[..., Any], *args: Any) -> web.Application:
    """Call the factory (awaiting an async one) and insist on a web.Application."""
    result = _call_as_module(factory, *args)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, web.Application):
        name = getattr(factory, "__name__", "the factory")
        raise table.broken(
            "not-an-application",
            f"{name}() returned {type(result).__name__}; expected a web.Application.",
        )
    return result


@contextlib.asynccontextmanager
async def _serving(table: Task, apps: list[web.Application]) -> AsyncIterator[list[str]]:
    """Serve every app on its own port; a start-up that fails is the learner's mistake."""
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for app in apps:
            try:
                urls.append(
                    await stack.enter_async_context(serve(app, shutdown_timeout=SHUTDOWN_SECONDS))
                )
            except NotImplementedError:
                raise
            except Exception as error:
                where = learner_line(error)
                raise table.broken(
                    "start-up-failed",
                    f"the app did not start: {exception_text(error)}"
                    f"{f' ({where})' if where else ''}.",
                ) from None
        yield urls


@dataclass(frozen=True)
class Logged:
    """Something that would have been logged: its text and the exception it carries."""

    text: str
    exc: BaseException | None


class Logs:
    """Everything logged while the check ran: aiohttp's records, other loggers' (ERROR and
    up), and the errors asyncio's loop reported (a task's exception never retrieved)."""

    def __init__(self, server_records: list[logging.LogRecord]) -> None:
        self._server = server_records
        self._quiet = observe.current().quiet

    def mark(self) -> tuple[int, int, int]:
        gc.collect()  # a lost task's error is reported when the task is collected
        return (len(self._server), len(self._quiet.records), len(self._quiet.loop_errors))

    def since(self, mark: tuple[int, int, int] = (0, 0, 0)) -> list[Logged]:
        gc.collect()
        found = [
            Logged(r.getMessage(), r.exc_info[1] if r.exc_info else None)
            for r in self._server[mark[0] :]
        ]
        found += [
            Logged(r.getMessage(), r.exc_info[1] if r.exc_info else None)
            for r in self._quiet.records[mark[1] :]
            if r.levelno >= logging.ERROR
        ]
        found += [
            Logged(str(c.get("message", "")), c.get("exception"))
            for c in self._quiet.loop_errors[mark[2] :]
        ]
        for item in found:
            if isinstance(item.exc, NotImplementedError):
                raise NotImplementedError  # a handler or hook still holds the exercise's stub
        return found


def _describe(item: Logged) -> str:
    if item.exc is None:
        return f"“{clip(item.text, 80)}”"
    where = learner_line(item.exc)
    return f"{exception_text(item.exc)}{f' ({where})' if where else ''}"


def _is_disconnect(item: Logged) -> bool:
    return isinstance(item.exc, (ConnectionError, aiohttp.ClientConnectionResetError))


def _raise_handler_errors(table: Task, logs: Logs, mark: tuple[int, int, int], what: str) -> None:
    """A 500 (an exception aiohttp logged) during requests that should all have succeeded."""
    errors = [
        item for item in logs.since(mark) if item.exc is not None and not _is_disconnect(item)
    ]
    if errors:
        raise table.broken(
            "handler-raised", f"while {what}, a handler raised {_describe(errors[0])}."
        )


def _server_error(table: Task, logs: Logs, mark: tuple[int, int, int], request: str,
                  status: int) -> Exception:  # fmt: skip
    """The Mistake for a 5xx answer: the exception logged for it, if any."""
    errors = [item for item in logs.since(mark) if item.exc is not None]
    if errors:
        return table.broken(
            "handler-raised", f"{request} answered {status}: the handler raised "
            f"{_describe(errors[0])}."
        )
    return table.broken("handler-raised", f"{request} answered {status}.")


async def _responsive_wait(
    condition: Callable[[], bool], seconds: float = PATIENCE_SECONDS
) -> bool:
    """Wait until ``condition()`` holds; False after ``seconds`` of a loop that kept running.

    A stretch in which the machine's load kept the loop from running counts as one short
    step, so only time the learner's code had to act is counted against it.
    """
    loop = asyncio.get_running_loop()
    step, waited = 0.01, 0.0
    while not condition():
        if waited >= seconds:
            return False
        before = loop.time()
        await asyncio.sleep(step)
        waited += min(loop.time() - before, 3 * step)
    return True


async def _responsive_result(
    future: asyncio.Future[Any], seconds: float = PATIENCE_SECONDS
) -> bool:
    """Wait for ``future`` (True as soon as it is done), counting time as ``_responsive_wait``."""
    loop = asyncio.get_running_loop()
    step, waited = 0.05, 0.0
    while not future.done():
        if waited >= seconds:
            return False
        before = loop.time()
        await asyncio.wait({future}, timeout=step)
        waited += min(loop.time() - before, 3 * step)
    return True


def _small_socket(*_: Any) -> socket.socket:
    """A socket that receives into a small buffer (set before connecting, as it must be)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    return sock


async def _open(
    url: str, *, small: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to the app at ``url`` (with a small receive buffer if asked)."""
    target = URL(url)
    if not small:
        return await asyncio.open_connection(target.host, target.port)
    sock = _small_socket()
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (target.host, target.port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def _vanish(writer: asyncio.StreamWriter) -> None:
    """Drop a connection the way a crashed client does: a reset, no goodbye."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _request_bytes(url: str, target: str, headers: dict[str, str] | None = None) -> bytes:
    """A GET for ``target`` as raw bytes (a client that lags says so, see ``_instrument``)."""
    host = URL(url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {host.host}:{host.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class RawAnswer:
    status: int
    headers: CIMultiDict[str]
    body: bytes


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


async def _raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> RawAnswer:
    """GET ``target`` exactly as written (no client normalises it), read until the close."""
    reader, writer = await _open(url)
    try:
        writer.write(_request_bytes(url, target, headers))
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawAnswer(status, headers, body)


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


# =============================================================================================
# Task 1 · static_app
# =============================================================================================

BIG_FILE_BYTES = 24 * 2**20
# The memory the app may hold while the big file downloads (chunks, buffers, the client's).
MEMORY_LIMIT_BYTES = 4 * 2**20

STATIC_APP = Task(
    "static_app",
    *_app_rules("create_static_app(root)"),
    Rule(
        "bad-status",
        "serves the files under `root` at `/files/<path inside root>`, subfolders included",
        "the status of a GET for each file of the folder",
        "route `/files/{path:.*}` (or `add_static('/files', root)`), so that subfolders match.",
    ),
    Rule(
        "wrong-body",
        "answers with the file",
        "each answer's bytes compared with the file's",
        "return `web.FileResponse(path)`: it sends the file's bytes as they are.",
    ),
    Rule(
        "wrong-content-type",
        "each file's `Content-Type` follows its name",
        "the Content-Type of a .json and a .txt answer",
        "`web.FileResponse` (and `add_static`) guess it from the name with `mimetypes`.",
    ),
    Rule(
        "wrong-root",
        "each app serves its own `root`",
        "two apps for two folders served at once: a file of the other folder in an answer",
        "keep the folder in the app (a closure, an AppKey), never in a module-level variable "
        "that the second app overwrites.",
    ),
    Rule(
        "traversal",
        "nothing outside `root`: `..` in any spelling, an absolute path, a symlink out",
        "raw requests for a secret beside the folder, in a sibling folder and through a "
        "symlink: a body holding the secret",
        "resolve the path (symlinks too) and refuse what is not inside the resolved root: "
        "`path.resolve().is_relative_to(root.resolve())`, or `add_static` with "
        "follow_symlinks=False.",
    ),
    Rule(
        "missing-not-404",
        "a missing file is 404",
        "the status of a GET for a file that does not exist",
        "answer 404 (`raise web.HTTPNotFound()`; `web.FileResponse` of a missing path does).",
    ),
    Rule(
        "folder-listed",
        "a folder is 403 or 404 (no listing)",
        "the status of a GET for a subfolder",
        "serve only files: check `path.is_file()` (or keep add_static's show_index=False).",
    ),
    Rule(
        "no-caching-headers",
        "every file answer carries `Last-Modified` and `ETag`",
        "the headers of a file answer",
        "`web.FileResponse` sets both from the file's time and size.",
    ),
    Rule(
        "no-304",
        "`If-Modified-Since` no older than the file, or its `ETag` in `If-None-Match`: 304",
        "the status and body of conditional GETs that must get 304",
        "let `web.FileResponse` answer conditional requests (it compares the file's "
        "time and ETag), rather than building the answer yourself.",
    ),
    Rule(
        "wrong-304",
        "an older date, another ETag, or a file changed since: 200 with the file",
        "conditional GETs that must get the file, before and after the file changed",
        "compare against the file as it is now, at each request: do not cache the answer, "
        "and give a changed file a new ETag.",
    ),
    Rule(
        "no-range",
        "`Range: bytes=a-b` gets 206 with exactly those bytes",
        "the status, Content-Range and bytes of a Range request",
        "`web.FileResponse` answers Range requests itself.",
    ),
    Rule(
        "whole-file-in-memory",
        "never hold a whole file in memory (4 MiB allowed)",
        f"the peak of traced memory while a {BIG_FILE_BYTES // 2**20} MiB file downloaded",
        "send the file in pieces: `web.FileResponse(path)` (sendfile, no copy in Python), "
        "not `path.read_bytes()`.",
    ),
    Rule(
        "reads-on-loop",
        "never read a file on the event loop's thread",
        "file reads made by your code on the loop's thread, with the line",
        "`web.FileResponse` reads in a thread (or with sendfile); "
        "`await asyncio.to_thread(file.read, n)` if you read yourself.",
    ),
    Rule(
        "file-left-open",
        "after a download dropped half-way, no file is left open",
        "the process's open files inside the folder, after a client vanished mid-download",
        "open the file in `with` (or let FileResponse do it), so it closes on every way out.",
    ),
    Rule(
        "error-logged",
        "a download dropped half-way logs nothing",
        "what was logged after a client vanished mid-download",
        "a client that leaves is not an error: catch `ConnectionError` around the writes "
        "and return.",
    ),
)


@dataclass
class Tree:
    """One folder the check made for an app: its files, and the secrets around it."""

    label: str
    root: Path
    files: dict[str, bytes]  # relative path -> content
    secrets: dict[str, str]  # what the probes try to reach -> token
    big: Path | None = None
    big_digest: str = ""


def _make_tree(base: Path, label: str, rng: random.Random, *, big: bool) -> Tree:
    """A folder ``public-<label>`` in ``base``, a secret beside it and one in its sibling."""
    name = f"public-{label}"
    root = base / name
    (root / "notes" / "deep").mkdir(parents=True)
    sibling = base / f"{name}-private"
    sibling.mkdir()
    token = f"SECRET-{label}-{rng.getrandbits(64):016x}"
    (base / f"secret-{label}.txt").write_text(token)
    (sibling / "secret.txt").write_text(token)
    os.symlink(base / f"secret-{label}.txt", root / "link-out.txt")
    files = {
        "data.json": json.dumps(
            {"app": label, "n": rng.randrange(10**6), "note": "grüß dich, café ☕"},
            ensure_ascii=False,
        ).encode(),
        "notes/café ☕.txt": f"notes of {label}: ünïcödé\n".encode() * rng.randint(3, 9),
        "notes/deep/plan.txt": f"plan {label} {rng.random()}\n".encode(),
        "blob.bin": rng.randbytes(70_001 + rng.randrange(9_000)),
    }
    for relative, content in files.items():
        (root / relative).write_bytes(content)
    tree = Tree(label, root, files, {"beside": token})
    if big:
        tree.big = root / "big.bin"
        head, tail = rng.randbytes(65_537), rng.randbytes(65_539)
        with open(tree.big, "wb") as file:  # sparse in the middle: quick to make
            file.write(head)
            file.truncate(BIG_FILE_BYTES)
            file.seek(BIG_FILE_BYTES - len(tail))
            file.write(tail)
        digest = hashlib.sha256(head)
        digest.update(bytes(BIG_FILE_BYTES - len(head) - len(tail)))
        digest.update(tail)
        tree.big_digest = digest.hexdigest()
    day_ago = time.time() - 86_400
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (day_ago, day_ago))
    return tree


def _url_path(relative: str) -> str:
    return "/files/" + urllib.parse.quote(relative)


def _probes(tree: Tree) -> list[tuple[str, str]]:
    """(what it tries, the raw request target) for each way out of the folder."""
    secret_beside = tree.root.parent / f"secret-{tree.label}.txt"
    sibling = f"{tree.root.name}-private"
    absolute = urllib.parse.quote(str(secret_beside))
    return [
        ("`..`", f"/files/../secret-{tree.label}.txt"),
        ("`%2e%2e`", f"/files/%2e%2e/secret-{tree.label}.txt"),
        ("`%2e%2e` from a subfolder", f"/files/notes/%2e%2e/%2e%2e/secret-{tree.label}.txt"),
        ("`..%2f`", f"/files/..%2fsecret-{tree.label}.txt"),
        ("`%2E%2E%2F`", f"/files/%2E%2E%2Fsecret-{tree.label}.txt"),
        ("the sibling folder whose name starts like the root's",
         f"/files/../{sibling}/secret.txt"),
        ("an absolute path", f"/files/{absolute}"),
        ("an absolute path, `/` encoded", "/files/" + absolute.replace("/", "%2F")),
        ("a symlink inside the folder that points outside it", "/files/link-out.txt"),
    ]  # fmt: skip


async def _get(client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None,
               ) -> tuple[int, CIMultiDict[str], bytes]:  # fmt: skip
    async with client.get(URL(url, encoded=True), headers=headers, allow_redirects=False) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def _static_files(table: Task, client: aiohttp.ClientSession, urls: list[str],
                        trees: list[Tree], logs: Logs) -> None:  # fmt: skip
    """Every file of each folder, from its own app: status, bytes, type, and whose it is."""
    mark = logs.mark()
    for url, tree, other in zip(urls, trees, reversed(trees), strict=True):
        for relative, content in tree.files.items():
            status, headers, body = await _get(client, url + _url_path(relative))
            if status >= 500:
                raise _server_error(table, logs, mark, f"GET /files/{relative}", status)
            if status != 200:
                raise table.broken(
                    "bad-status",
                    f"GET /files/{relative} answered {status}, for a file that is in the folder"
                    f"{' (in a subfolder)' if '/' in relative else ''}.",
                )
            if body != content:
                if body == other.files.get(relative):
                    raise table.broken(
                        "wrong-root",
                        f"the app made for folder {tree.label} answered GET /files/{relative} "
                        f"with the file of folder {other.label}: both apps ran at once, and "
                        "state they share was overwritten by the second.",
                    )
                raise table.broken(
                    "wrong-body",
                    f"GET /files/{relative} answered {len(body):,} bytes that are not the "
                    f"file's {len(content):,}.",
                )
            expected = {"json": "application/json", "txt": "text/plain"}.get(
                relative.rsplit(".", 1)[-1]
            )
            got = _media_type(headers.get("Content-Type"))
            if expected and got != expected:
                raise table.broken(
                    "wrong-content-type",
                    f"GET /files/{relative} answered Content-Type "
                    f"{headers.get('Content-Type')!r}; its name says {expected}.",
                )


async def _static_traversal(table: Task, urls: list[str], trees: list[Tree], logs: Logs) -> int:
    """Every way out, raw, against each app: a 4xx, never a secret. Returns the probes sent."""
    sent, mark = 0, logs.mark()
    for url, tree in zip(urls, trees, strict=True):
        tokens = [t.secrets["beside"] for t in trees]
        for what, target in _probes(tree):
            answer = await _raw_get(url, target)
            sent += 1
            leaked = any(token.encode() in answer.body for token in tokens)
            if leaked or 200 <= answer.status < 300:
                shown = target if len(target) < 60 else target[:30] + "…" + target[-20:]
                raise table.broken(
                    "traversal",
                    f"`GET {shown}` ({what}) answered {answer.status}"
                    f"{' with the secret file that sits outside the folder' if leaked else ''}: "
                    "a path that leaves the folder must get 404 or 403.",
                )
            if answer.status >= 500:
                raise _server_error(table, logs, mark, f"`GET {clip(target, 60)}` ({what})",
                                    answer.status)  # fmt: skip
    return sent


async def _static_missing_and_folders(table: Task, client: aiohttp.ClientSession, url: str,
                                      rng: random.Random, logs: Logs) -> None:  # fmt: skip
    mark = logs.mark()
    name = f"nothing-here-{rng.randrange(10**6)}.txt"
    status, _, _ = await _get(client, f"{url}/files/{name}")
    if status >= 500:
        raise _server_error(table, logs, mark, f"GET /files/{name} (a missing file)", status)
    if status != 404:
        raise table.broken(
            "missing-not-404", f"GET /files/{name}, a file that does not exist, answered {status}."
        )
    for folder in ("/files/notes", "/files/notes/", "/files/notes/deep"):
        status, _, body = await _get(client, url + folder)
        if status >= 500:
            raise _server_error(table, logs, mark, f"GET {folder} (a folder)", status)
        if status < 300:
            listed = b"plan.txt" in body or "café".encode() in body
            raise table.broken(
                "folder-listed",
                f"GET {folder}, a folder, answered {status}"
                f"{' with a listing of its files' if listed else ''}: a folder is 403 or 404.",
            )


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


async def _static_caching(table: Task, client: aiohttp.ClientSession, url: str,
                          tree: Tree) -> None:  # fmt: skip
    """Conditional GETs before and after the file changes (its time moves on by an hour)."""
    relative = "data.json"
    path, target = tree.root / relative, url + _url_path(relative)
    _, headers, _ = await _get(client, target)
    missing = [name for name in ("Last-Modified", "ETag") if name not in headers]
    if missing:
        raise table.broken(
            "no-caching-headers",
            f"GET /files/{relative} answered without {' and without '.join(missing)}: a "
            "client cannot ask whether its copy is still good.",
        )
    modified, etag = headers["Last-Modified"], headers["ETag"]
    mtime = path.stat().st_mtime
    must_304 = [
        ({"If-Modified-Since": modified}, "If-Modified-Since equal to its Last-Modified"),
        ({"If-Modified-Since": _http_date(mtime + 3600)}, "If-Modified-Since an hour later"),
        ({"If-None-Match": etag}, "If-None-Match with its ETag"),
    ]
    for sent, what in must_304:
        status, _, body = await _get(client, target, sent)
        if status != 304 or body:
            raise table.broken(
                "no-304",
                f"GET /files/{relative} with {what} answered {status}"
                f"{f' and {len(body):,} bytes' if body else ''}: the client's copy is "
                "current, so the answer is 304 with no body.",
            )
    must_200 = [
        ({"If-Modified-Since": _http_date(mtime - 86_400)}, "If-Modified-Since a day older"),
        ({"If-None-Match": '"not-its-etag"'}, "If-None-Match with another ETag"),
    ]
    await _expect_file(table, client, target, relative, tree.files[relative], must_200)
    changed = tree.files[relative] + b"\n" + json.dumps({"changed": True}).encode()
    path.write_bytes(changed)
    os.utime(path, (mtime + 3600, mtime + 3600))
    tree.files[relative] = changed
    after_change = [
        ({"If-Modified-Since": modified}, "the old Last-Modified, after the file changed"),
        ({"If-None-Match": etag}, "the old ETag, after the file changed"),
    ]
    await _expect_file(table, client, target, relative, changed, after_change)


async def _expect_file(
    table: Task,
    client: aiohttp.ClientSession,
    target: str,
    relative: str,
    content: bytes,
    cases: list[tuple[dict[str, str], str]],
) -> None:
    for sent, what in cases:
        status, _, body = await _get(client, target, sent)
        if status != 200 or body != content:
            got = f"{status}" + (f" and {len(body):,} bytes" if body else " and no body")
            raise table.broken(
                "wrong-304",
                f"GET /files/{relative} with {what} answered {got}: the client's copy is "
                f"not current, so the answer is 200 with the file as it is now "
                f"({len(content):,} bytes).",
            )


async def _static_range(table: Task, client: aiohttp.ClientSession, url: str, tree: Tree,
                        rng: random.Random) -> None:  # fmt: skip
    content = tree.files["blob.bin"]
    first = rng.randrange(1, len(content) // 2)
    last = first + rng.randrange(100, 20_000)
    status, _, body = await _get(
        client, url + _url_path("blob.bin"), {"Range": f"bytes={first}-{last}"}
    )
    expected = content[first : last + 1]
    if status != 206 or body != expected:
        got = f"{status} with {len(body):,} bytes"
        if body and body == content[first:first + len(body)] and len(body) != len(expected):
            got += " (the right start, the wrong length)"
        raise table.broken(
            "no-range",
            f"GET /files/blob.bin with `Range: bytes={first}-{last}` answered {got}; "
            f"expected 206 with those {len(expected):,} bytes.",
        )


async def _static_big(table: Task, client: aiohttp.ClientSession, url: str, tree: Tree) -> None:
    """Download the big file, counting the memory traced meanwhile and its file reads."""
    assert tree.big is not None
    digest, size = hashlib.sha256(), 0
    with PeakMemory() as memory:
        async with client.get(url + "/files/big.bin") as response:
            status = response.status
            async for chunk in response.content.iter_chunked(64 * 1024):
                digest.update(chunk)
                size += len(chunk)
    if status != 200 or digest.hexdigest() != tree.big_digest:
        if status >= 500:
            return
        raise table.broken(
            "wrong-body" if status == 200 else "bad-status",
            f"GET /files/big.bin ({BIG_FILE_BYTES // 2**20} MiB) answered {status} with "
            f"{size:,} bytes that are not the file's.",
        )
    if memory.peak > MEMORY_LIMIT_BYTES:
        raise table.broken(
            "whole-file-in-memory",
            f"while GET /files/big.bin ({BIG_FILE_BYTES // 2**20} MiB) downloaded, the memory "
            f"Python traced rose by {memory.peak / 2**20:.0f} MiB at its peak: the file was "
            "held in memory whole (or in huge pieces).",
        )


def _loop_reads(root: Path) -> list[observe.BlockingCall]:
    base = str(root.parent.resolve())
    return [
        call
        for call in observe.current().blocking_calls("file-read")
        if os.path.realpath(call.target).startswith(base)
    ]


def _open_files_in(base: Path) -> list[str]:
    where = str(base.resolve())
    return sorted(
        os.path.relpath(f.path, where)
        for f in psutil.Process().open_files()
        if os.path.realpath(f.path).startswith(where + os.sep)
    )


async def _static_drop(table: Task, url: str, probe: Probe, base: Path, logs: Logs) -> None:
    """A client that reads 100 KiB of the big file and vanishes: nothing open, nothing logged."""
    mark = logs.mark()
    reader, writer = await _open(url, small=True)
    try:
        writer.write(_request_bytes(url, "/files/big.bin", {LAGGING: "1"}))
        got = 0
        async with asyncio.timeout(5):
            while got < 100_000:
                chunk = await reader.read(65_536)
                if not chunk:
                    break
                got += len(chunk)
    finally:
        _vanish(writer)
    await _responsive_wait(lambda: probe.in_flight == 0)
    await asyncio.sleep(0.05)  # let the handler's clean-up run
    left = _open_files_in(base)
    if left:
        raise table.broken(
            "file-left-open",
            f"after a client vanished half-way through GET /files/big.bin, the process still "
            f"had {', '.join(left[:2])} open: the handler never closed it.",
        )
    logged = logs.since(mark)
    if logged:
        raise table.broken(
            "error-logged",
            f"a client that vanished half-way through a download made the app log "
            f"{_describe(logged[0])}.",
        )


@check(STATIC_APP)
async def static_app(create_static_app: Any, server: LocalServer, spy: SessionSpy) -> str:
    rng = random.Random(f"{SEED}-static_app")
    with tempfile.TemporaryDirectory(prefix="ex19-") as folder:
        base = Path(folder)
        trees = [_make_tree(base, "a", rng, big=True), _make_tree(base, "b", rng, big=False)]
        apps = [await _build(STATIC_APP, create_static_app, tree.root) for tree in trees]
        probes = [Probe(tree.label) for tree in trees]
        for app, probe in zip(apps, probes, strict=True):
            _instrument(app, probe)
        with captured_server_errors() as records:
            logs = Logs(records)
            async with _serving(STATIC_APP, apps) as urls, aiohttp.ClientSession() as client:
                mark = logs.mark()
                await _static_files(STATIC_APP, client, urls, trees, logs)
                sent = await _static_traversal(STATIC_APP, urls, trees, logs)
                await _static_missing_and_folders(STATIC_APP, client, urls[0], rng, logs)
                _raise_handler_errors(STATIC_APP, logs, mark, "files and folders were asked for")
                await _static_caching(STATIC_APP, client, urls[0], trees[0])
                await _static_range(STATIC_APP, client, urls[1], trees[1], rng)
                _raise_handler_errors(
                    STATIC_APP, logs, mark, "conditional and Range requests were sent"
                )
                await _static_big(STATIC_APP, client, urls[0], trees[0])
                _raise_handler_errors(STATIC_APP, logs, mark, "the big file downloaded")
                reads = _loop_reads(trees[0].root)
                if reads:
                    raise STATIC_APP.broken(
                        "reads-on-loop",
                        f"{reads[0].describe()}, on the event loop's thread: every other "
                        "request waits while the disk answers.",
                    )
                await _static_drop(STATIC_APP, urls[0], probes[0], base, logs)
    return (
        f"two folders served at once, each file with its own type, Last-Modified and ETag; "
        f"304 and 200 right before and after a file changed, a Range answered 206; "
        f"{sent} ways out of the folder refused; a {BIG_FILE_BYTES // 2**20} MiB file sent "
        "in bounded memory off the loop, and a dropped download left nothing open or logged."
    )


# =============================================================================================
# Task 2 · export_app
# =============================================================================================

# A handler may pull at most this much from the source beyond what the connection holds.
PULL_AHEAD_LIMIT_BYTES = 5 * 2**20 // 4  # 1 MiB allowed, plus 0.25 MiB for the buffers
BACK_PRESSURE_RECORDS = 2_500  # of about 4 KiB each: 10 MiB in all
# The content scenario's source waits after this many records until the first line was read.
HOLD_AFTER = 5
HELD_BACK_SECONDS = 3.0

EXPORT_APP = Task(
    "export_app",
    *_app_rules("create_export_app(records)"),
    Rule(
        "bad-status",
        "`GET /export` answers 200",
        "the status of GET /export",
        "register the route with `app.router.add_get('/export', export)`.",
    ),
    Rule(
        "wrong-content-type",
        "`Content-Type: application/x-ndjson`",
        "the Content-Type of the answer",
        'set `response.content_type = "application/x-ndjson"` before `prepare()`.',
    ),
    Rule(
        "not-ndjson",
        "one JSON document per line (`json.dumps(record) + \"\\n\"`)",
        "each line of the body parsed as JSON, and the body's last byte",
        'write `json.dumps(record).encode() + b"\\n"` for each record: a newline after every '
        "record, the last one too.",
    ),
    Rule(
        "wrong-records",
        "streams the records, in order",
        "the records the client read, compared with those the source gave",
        "write every record the source gives, once, in the order it gives them.",
    ),
    Rule(
        "wrong-source",
        "each app streams its own `records`",
        "two apps for two sources served at once: records of the other source in an answer",
        "keep `records` in the app (a closure, an AppKey), never in a module-level variable "
        "that the second app overwrites.",
    ),
    Rule(
        "held-back",
        "send each record as soon as you have it",
        f"a source that waits after {HOLD_AFTER} records until the client has read the "
        f"first line; no line within {HELD_BACK_SECONDS:g} s",
        "write each record as soon as the source gives it, with `await response.write(...)` "
        "inside the `async for`: no list, no joined body, no batches.",
    ),
    Rule(
        "no-back-pressure",
        "stop pulling records while the client does not read (1 MiB ahead at most)",
        "records pulled from the source while the check's client read nothing, with small "
        "socket buffers on both ends",
        "pull the next record only once `await response.write(...)` has returned; a task "
        "that fills an unbounded queue or list runs ahead of the client.",
    ),
    Rule(
        "keeps-streaming",
        "a client that goes away: stop pulling, return",
        "records pulled, and the handler still running, after the client vanished from an "
        "endless source",
        "a ConnectionError from `write()` means nobody is left to read: leave the loop and "
        "return, do not carry on.",
    ),
    Rule(
        "error-logged",
        "a client that goes away is not an error: log nothing",
        "what was logged after the client vanished mid-stream",
        "catch `ConnectionError` around the loop (not inside it) and return the response.",
    ),
)


class Source:
    """The ``records`` a check hands to the learner's factory, counting what was pulled.

    Calling it, as the handler does, starts the current plan: a list of records (optionally
    waiting after ``HOLD_AFTER`` of them until ``hold_until`` is set), or an endless stream.
    ``plan()`` switches the same app to another scenario and resets the counts.
    """

    def __init__(
        self, records: list[dict[str, Any]] | None, *, hold_until: asyncio.Event | None = None
    ) -> None:
        self.plan(records, hold_until=hold_until)
        self.calls = 0

    def plan(
        self, records: list[dict[str, Any]] | None, *, hold_until: asyncio.Event | None = None
    ) -> None:
        self.records = records  # None: endless
        self.hold_until = hold_until
        self.held_back = False
        self.pulled = 0
        self.pulled_bytes = 0
        self.stop = False

    def __call__(self) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        return self._records()

    async def _records(self) -> AsyncIterator[dict[str, Any]]:
        index = 0
        while not self.stop:
            if self.records is None:
                record: dict[str, Any] = {"seq": index, "pad": "é" * 60}
            elif index < len(self.records):
                record = self.records[index]
            else:
                return
            if self.hold_until is not None and index == HOLD_AFTER:
                try:
                    await asyncio.wait_for(self.hold_until.wait(), HELD_BACK_SECONDS)
                except TimeoutError:
                    self.held_back = True
            self.pulled += 1
            self.pulled_bytes += len(json.dumps(record)) + 1
            index += 1
            yield record
            await asyncio.sleep(0)  # records arrive over time: let the loop run between them


def _export_records(rng: random.Random, label: str, count: int) -> list[dict[str, Any]]:
    words = ["café", "naïve", "東京", "grüß", "line\nbreak", 'quote "q"', "tab\tstop", "☕"]
    return [
        {
            "source": label,
            "seq": index,
            "name": f"{rng.choice(words)} {rng.randrange(1000)}",
            "tags": rng.sample(words, rng.randint(0, 3)),
            "price": round(rng.uniform(0, 500), 2),
            "in_stock": rng.random() < 0.5,
            "note": None if rng.random() < 0.3 else "x" * rng.randrange(1, 300),
        }
        for index in range(count)
    ]


def _big_records(rng: random.Random) -> list[dict[str, Any]]:
    pad = "".join(rng.choice("abcdefgh") for _ in range(4_000))
    return [{"seq": index, "pad": pad} for index in range(BACK_PRESSURE_RECORDS)]


async def _read_export(client: aiohttp.ClientSession, url: str, seen_first: asyncio.Event,
                       ) -> tuple[int, str, bytes]:  # fmt: skip
    async with client.get(url + "/export") as response:
        body = bytearray()
        first = True
        while True:
            try:
                line = await response.content.readline()
            except (aiohttp.ClientError, ConnectionError):
                break  # the connection was cut mid-body: the logs tell why
            if not line:
                break
            body += line
            if first:
                first = False
                seen_first.set()
        return response.status, response.headers.get("Content-Type", ""), bytes(body)


def _parse_ndjson(table: Task, body: bytes) -> list[Any]:
    if body and not body.endswith(b"\n"):
        last = clip(body.rsplit(b"\n", 1)[-1].decode("utf-8", "replace"), 60)
        raise table.broken(
            "not-ndjson",
            f"the body's last line, {last!r}, has no newline after it: every record ends "
            "with one, the last too.",
        )
    values = []
    for number, line in enumerate(body.split(b"\n")[:-1], 1):
        try:
            values.append(json.loads(line))
        except ValueError:
            raise table.broken(
                "not-ndjson",
                f"line {number} of the body is not a JSON document: "
                f"{clip(line.decode('utf-8', 'replace'), 70)!r}.",
            ) from None
    return values


async def _export_content(table: Task, client: aiohttp.ClientSession, urls: list[str],
                          sources: list[Source], logs: Logs) -> None:  # fmt: skip
    """Both apps at once, each source holding back until its client has the first line."""
    mark = logs.mark()
    gates = [source.hold_until for source in sources]
    answers = await asyncio.gather(
        *(_read_export(client, url, gate) for url, gate in zip(urls, gates, strict=True))  # type: ignore[arg-type]
    )
    _raise_handler_errors(table, logs, mark, "two exports streamed")
    for (status, content_type, body), source, other in zip(
        answers, sources, reversed(sources), strict=True
    ):
        if status >= 500:
            raise _server_error(table, logs, mark, "GET /export", status)
        if status != 200:
            raise table.broken("bad-status", f"GET /export answered {status}.")
        if source.held_back:
            raise table.broken(
                "held-back",
                f"the source had given {HOLD_AFTER} records and waited "
                f"{HELD_BACK_SECONDS:g} s for the client to read the first line, which never "
                "came: the handler held the records back instead of sending each at once.",
            )
        if _media_type(content_type) != "application/x-ndjson":
            raise table.broken(
                "wrong-content-type",
                f"GET /export answered Content-Type {content_type!r}; NDJSON is "
                "application/x-ndjson.",
            )
        values = _parse_ndjson(table, body)
        expected = source.records or []
        if values != expected:
            assert other.records is not None
            if values and values[0] == other.records[0]:
                raise table.broken(
                    "wrong-source",
                    f"one app answered the other app's records ({values[0].get('source')!r} "
                    "instead of its own): both ran at once, and state they share was "
                    "overwritten by the second.",
                )
            raise table.broken("wrong-records", _records_difference(values, expected))
    _raise_handler_errors(table, logs, mark, "two exports streamed")


def _records_difference(got: list[Any], expected: list[dict[str, Any]]) -> str:
    if len(got) != len(expected):
        return f"the client read {len(got)} records; the source gave {len(expected)}."
    index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
    return (
        f"record {index + 1} arrived as {clip(json.dumps(got[index], ensure_ascii=False), 70)}; "
        f"the source gave {clip(json.dumps(expected[index], ensure_ascii=False), 70)}."
    )


async def _export_back_pressure(table: Task, url: str, probe: Probe, source: Source) -> None:
    """A raw client that sends the request and reads nothing: how far does the handler pull?"""
    _, writer = await _open(url, small=True)
    try:
        writer.transport.pause_reading()
        writer.write(_request_bytes(url, "/export", {LAGGING: "1"}))
        last = -1

        def settled() -> bool:
            nonlocal last
            if source.pulled_bytes > PULL_AHEAD_LIMIT_BYTES:
                return True
            same, last = source.pulled == last, source.pulled
            return same and source.pulled > 0

        # Settled: nothing more pulled over a quarter of a second of a running loop.
        await _responsive_wait(lambda: source.pulled > 0)
        while not settled():
            await _responsive_wait(lambda: False, 0.25)
        if source.pulled_bytes > PULL_AHEAD_LIMIT_BYTES:
            await _responsive_wait(lambda: False, 0.2)
            raise table.broken(
                "no-back-pressure",
                f"while the check's client read nothing, the handler pulled "
                f"{plural(source.pulled, 'record')} ({source.pulled_bytes / 2**20:.1f} MiB) from "
                "the source, far more than the connection holds: they waited in the server's "
                "memory.",
            )
    finally:
        source.stop = True
        _vanish(writer)
    await _responsive_wait(lambda: probe.in_flight == 0)


async def _export_vanish(table: Task, url: str, probe: Probe, source: Source, logs: Logs) -> None:
    """A client that reads 20 lines of an endless export and vanishes."""
    mark = logs.mark()
    reader, writer = await _open(url)
    try:
        writer.write(_request_bytes(url, "/export"))
        async with asyncio.timeout(5):
            data = b""
            while data.count(b"\n") < 30:  # the status line and headers, then some records
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
    finally:
        _vanish(writer)
    at_vanish = source.pulled
    stopped = await _responsive_wait(lambda: probe.in_flight == 0)
    after = source.pulled - at_vanish
    source.stop = True  # ends the source for a handler that would never stop
    if not stopped:
        await _responsive_wait(lambda: probe.in_flight == 0)
        raise table.broken(
            "keeps-streaming",
            f"after the client vanished, the handler went on pulling from the endless source "
            f"({plural(after, 'more record')} in {PATIENCE_SECONDS:g} s) and never returned.",
        )
    logged = logs.since(mark)
    if logged:
        raise table.broken(
            "error-logged",
            f"a client that went away mid-stream made the app log {_describe(logged[0])}.",
        )


@check(EXPORT_APP)
async def export_app(create_export_app: Any, server: LocalServer, spy: SessionSpy) -> str:
    rng = random.Random(f"{SEED}-export_app")
    sources = [
        Source(_export_records(rng, label, rng.randint(40, 70)), hold_until=asyncio.Event())
        for label in ("a", "b")
    ]
    apps = [await _build(EXPORT_APP, create_export_app, source) for source in sources]
    probes = [Probe(label) for label in ("a", "b")]
    for app, probe in zip(apps, probes, strict=True):
        _instrument(app, probe)
    with captured_server_errors() as records:
        logs = Logs(records)
        async with _serving(EXPORT_APP, apps) as urls, aiohttp.ClientSession() as client:
            await _export_content(EXPORT_APP, client, urls, sources, logs)
            # The same apps, their sources switched: 10 MiB for a client that reads nothing,
            # then an endless one for a client that vanishes.
            sources[0].plan(_big_records(rng))
            await _export_back_pressure(EXPORT_APP, urls[0], probes[0], sources[0])
            sources[1].plan(None)
            await _export_vanish(EXPORT_APP, urls[1], probes[1], sources[1], logs)
    return (
        "two exports streamed at once, each record as it came, as NDJSON; while a client "
        "read nothing, the handler stopped pulling records; "
        "a client that vanished mid-stream ended the handler, and nothing was logged."
    )


# =============================================================================================
# Task 3 · feed_app
# =============================================================================================

FEED_APP = Task(
    "feed_app",
    *_app_rules("create_feed_app(feed)"),
    Rule(
        "bad-status",
        "`GET /events` answers an event stream (200)",
        "the status of GET /events",
        "register the route with `app.router.add_get('/events', events)`.",
    ),
    Rule(
        "wrong-content-type",
        "a server-sent event stream: `text/event-stream`",
        "the Content-Type of the answer",
        "`sse_response(request)` sets it; on a StreamResponse of your own, set "
        '`content_type = "text/event-stream"` before `prepare()`.',
    ),
    Rule(
        "history-missing",
        "without `Last-Event-ID`, start from the first event",
        "the events a client without the header read first, compared with the feed's",
        "subscribe with `after=0` when the request has no Last-Event-ID header.",
    ),
    Rule(
        "not-live",
        "then each new event as it is published",
        "events published while the client was connected, and what it read",
        "keep iterating `feed.subscribe(...)`: after the stored events it waits for new ones.",
    ),
    Rule(
        "no-ids",
        "sends each event with its `id`",
        "each event the client read: its id: field",
        "send the id with each event: `await stream.send(event.data, id=str(event.id))`.",
    ),
    Rule(
        "wrong-ids",
        "each event's id is the feed's `event.id`",
        "the ids the client read, compared with the feed's (which do not start at 1)",
        "send `id=str(event.id)`, the feed's own id, not a count of what this connection sent.",
    ),
    Rule(
        "data-mangled",
        "an event's data may hold several lines: each is one `data:` line",
        "events with several lines (one empty) read back by an SSE parser",
        "let `stream.send(data)` split the lines, or write `data: <line>` for each line of "
        "`data.split('\\n')`, then a blank line.",
    ),
    Rule(
        "not-resumed",
        "a client that reconnects with `Last-Event-ID: n` gets the events after `n`",
        "the first events after a reconnect with the last id the client had read",
        "read the request's Last-Event-ID header and subscribe with `after=int(...)`.",
    ),
    Rule(
        "resumed-wrong",
        "exactly the events after `n`: none twice, none missed",
        "the first events after a reconnect, compared with those published after `n`",
        "`feed.subscribe(after=n)` already starts after `n`: pass the header's value itself.",
    ),
    Rule(
        "bad-last-event-id",
        "a `Last-Event-ID` that is not a whole number gets 400 (or the whole feed), never 500",
        "the status of GET /events with `Last-Event-ID: abc`",
        "convert it inside `try`/`except ValueError` and raise `web.HTTPBadRequest` (or start "
        "from the first event).",
    ),
    Rule(
        "wrong-feed",
        "each app streams its own `feed`",
        "two apps for two feeds served at once: events of the other feed in an answer",
        "keep the feed in the app (a closure, an AppKey), never in a module-level variable "
        "that the second app overwrites.",
    ),
    Rule(
        "keeps-subscribed",
        "a client that leaves ends the stream (the feed counts its subscribers)",
        "the feed's subscribers after the client left and more events were published",
        "a ConnectionError from a write means the client left: let it end the loop over "
        "`feed.subscribe(...)`.",
    ),
    Rule(
        "error-logged",
        "a client that leaves: nothing logged",
        "what was logged after the client left",
        "catch `ConnectionError` around the stream (around `async with sse_response(...)`) "
        "and return.",
    ),
)


@dataclass
class SseEvent:
    """One event as an EventSource would dispatch it, and whether it carried an id: field."""

    data: str
    id: str | None  # this event's own id: field (None when it had none)


class SseReader:
    """Reads a text/event-stream line by line and dispatches events as a browser does."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.raw = bytearray()

    async def next(self, seconds: float = PATIENCE_SECONDS) -> SseEvent | None:
        """The next event, or None if none came (the stream ended, or nothing for a while)."""
        data: list[str] = []
        event_id: str | None = None
        while True:
            line_task = asyncio.ensure_future(self.response.content.readline())
            done = await _responsive_result(line_task, seconds)
            if not done:
                line_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                    await line_task
                return None
            try:
                raw = line_task.result()
            except (aiohttp.ClientError, ConnectionError):
                return None
            if not raw:
                return None
            self.raw += raw
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data or event_id is not None:
                    return SseEvent("\n".join(data), event_id)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


def _event_data(rng: random.Random, label: str, index: int) -> str:
    kinds = [
        lambda: f"{label}: plain event {index}",
        lambda: f"{label}: two lines {index}\nand the second, ünïcödé",
        lambda: f"{label}: with an empty line {index}\n\nafter the gap",
        lambda: f"{label}: café ☕ {index} {rng.randrange(1000)}",
    ]
    return kinds[index % len(kinds)]()


@dataclass
class FeedRun:
    label: str
    feed: Feed
    url: str = ""


async def _feed_read(table: Task, reader: SseReader, feed: Feed, events: list[Event], what: str,
                     other: Feed, logs: Logs) -> SseEvent:  # fmt: skip
    """Read ``events`` in order from ``reader``; the last one read."""
    last: SseEvent | None = None
    mark = logs.mark()
    for number, expected in enumerate(events):
        got = await reader.next()
        if got is None:
            _raise_handler_errors(table, logs, (0, 0, 0) if number == 0 else mark,
                                  _what(what))  # fmt: skip
            problem = "history-missing" if what == "history" else "not-live"
            if what == "resume":
                problem = "not-resumed"
            raise table.broken(
                problem,
                f"{_what(what)}: the client read {plural(number, 'event')}, then nothing "
                f"more for {PATIENCE_SECONDS:g} s; expected {len(events)}.",
            )
        if got.data != expected.data:
            _feed_mismatch(table, got, expected, feed, other, what)
        if got.id is None:
            raise table.broken(
                "no-ids",
                f"{_what(what)}: the event {clip(repr(got.data), 50)} arrived without an "
                "id: field, so a client that reconnects cannot say where it was.",
            )
        if got.id != str(expected.id):
            raise table.broken(
                "wrong-ids",
                f"{_what(what)}: the event with the feed's id {expected.id} arrived "
                f"with id: {clip(got.id, 30)}: a client that reconnects with that id "
                "would resume from the wrong place.",
            )
        last = got
    assert last is not None
    return last


def _what(what: str) -> str:
    return {
        "history": "reading the feed from the start (no Last-Event-ID)",
        "live": "reading events published while connected",
        "resume": "after reconnecting with Last-Event-ID",
    }[what]


def _feed_mismatch(table: Task, got: SseEvent, expected: Event, feed: Feed, other: Feed,
                   what: str) -> None:  # fmt: skip
    if any(event.data == got.data for event in other.events):
        raise table.broken(
            "wrong-feed",
            f"one app sent an event of the other app's feed ({clip(repr(got.data), 50)}): "
            "both ran at once, and state they share was overwritten by the second.",
        )
    flattened = [" ".join(e.data.split("\n")) for e in feed.events]
    parts = [e.data.split("\n")[0] for e in feed.events]
    if "\n" in expected.data and (
        got.data in parts or got.data in flattened or got.data == expected.data.split("\n")[0]
    ):
        raise table.broken(
            "data-mangled",
            f"the event {expected.data!r} was read back as {got.data!r}: each line of the "
            "data must be its own data: line (a newline inside one ends the field).",
        )
    known = [event for event in feed.events if event.data == got.data]
    if what == "resume" and known:
        position = known[0].id
        if position <= feed.events[0].id:
            problem, why = "not-resumed", "the feed started again from its first event"
        else:
            problem, why = "resumed-wrong", f"it started at the feed's event {position}"
        raise table.broken(
            problem,
            f"{_what(what)} {expected.id - 1 if False else ''}".rstrip()
            + f": expected the event with id {expected.id} first, but {why}.",
        )
    if what == "history" and known:
        raise table.broken(
            "history-missing",
            f"{_what(what)}: the first event read was the feed's event {known[0].id}, not its "
            f"first, {feed.events[0].id}.",
        )
    raise table.broken(
        "data-mangled",
        f"{_what(what)}: expected the event {clip(repr(expected.data), 60)}, read "
        f"{clip(repr(got.data), 60)}.",
    )


@contextlib.asynccontextmanager
async def _events(table: Task, client: aiohttp.ClientSession, url: str, logs: Logs,
                  headers: dict[str, str] | None = None) -> AsyncIterator[SseReader]:  # fmt: skip
    mark = logs.mark()
    async with client.get(url + "/events", headers=headers) as response:
        if response.status >= 500:
            raise _server_error(table, logs, mark, "GET /events", response.status)
        if response.status != 200:
            raise table.broken(
                "bad-status",
                f"GET /events{' with ' + str(headers) if headers else ''} answered "
                f"{response.status}.",
            )
        content_type = response.headers.get("Content-Type", "")
        if _media_type(content_type) != "text/event-stream":
            raise table.broken(
                "wrong-content-type",
                f"GET /events answered Content-Type {content_type!r}; an EventSource "
                "accepts only text/event-stream.",
            )
        yield SseReader(response)


async def _feed_scenario(client: aiohttp.ClientSession, a: FeedRun, b: FeedRun, logs: Logs,
                         rng: random.Random) -> None:  # fmt: skip
    """History, live events, a client that leaves, a reconnect, a bad Last-Event-ID."""
    # The other app first: a feed kept at module level shows in its answer.
    async with _events(FEED_APP, client, b.url, logs) as reader:
        await _feed_read(FEED_APP, reader, b.feed, b.feed.events[:2], "history", a.feed, logs)
    b.feed.publish(_event_data(rng, b.label, 99))  # its handler notices at this write
    mark = logs.mark()
    history = list(a.feed.events)
    async with _events(FEED_APP, client, a.url, logs) as reader:
        await _feed_read(FEED_APP, reader, a.feed, history, "history", b.feed, logs)
        for index in range(3):
            a.feed.publish(_event_data(rng, a.label, 100 + index))
        live = a.feed.events[len(history) :]
        last = await _feed_read(FEED_APP, reader, a.feed, live, "live", b.feed, logs)
    last_id = int(last.id or 0)
    # Away: each event published while nobody listens makes the handler write, and notice.
    published_away = 0
    loop = asyncio.get_running_loop()
    waited, step = 0.0, 0.1
    while a.feed.subscribers and waited < PATIENCE_SECONDS:
        a.feed.publish(_event_data(rng, a.label, 200 + published_away))
        published_away += 1
        before = loop.time()
        await _responsive_wait(lambda: a.feed.subscribers == 0, step)
        waited += min(loop.time() - before, 3 * step)
    if a.feed.subscribers:
        raise FEED_APP.broken(
            "keeps-subscribed",
            f"the client left, and {plural(published_away, 'event')} published since were "
            f"written to nobody: the feed still had {plural(a.feed.subscribers, 'subscriber')}.",
        )
    logged = logs.since(mark)
    if logged:
        raise FEED_APP.broken(
            "error-logged", f"a client that left made the app log {_describe(logged[0])}."
        )
    if published_away < 2:
        for index in range(2 - published_away):
            a.feed.publish(_event_data(rng, a.label, 250 + index))
    away = [event for event in a.feed.events if event.id > last_id]
    async with _events(FEED_APP, client, a.url, logs, {"Last-Event-ID": str(last_id)}) as reader:
        await _feed_read(FEED_APP, reader, a.feed, away, "resume", b.feed, logs)
        a.feed.publish(_event_data(rng, a.label, 400))
        await _feed_read(FEED_APP, reader, a.feed, a.feed.events[-1:], "live", b.feed, logs)
    a.feed.publish(_event_data(rng, a.label, 401))
    mark = logs.mark()
    async with client.get(a.url + "/events", headers={"Last-Event-ID": "abc"}) as bad:
        status = bad.status
    if status not in (200, 400):
        errors = [item for item in logs.since(mark) if item.exc is not None]
        raise FEED_APP.broken(
            "bad-last-event-id",
            f"GET /events with `Last-Event-ID: abc` answered {status}"
            f"{': the handler raised ' + _describe(errors[0]) if errors else ''}.",
        )


@check(FEED_APP)
async def feed_app(create_feed_app: Any, server: LocalServer, spy: SessionSpy) -> str:
    rng = random.Random(f"{SEED}-feed_app")
    runs = [
        FeedRun(label, Feed(first_id=rng.randrange(1_000, 9_000), rng=rng)) for label in "ab"
    ]
    for run in runs:
        for index in range(rng.randint(5, 7)):
            run.feed.publish(_event_data(rng, run.label, index))
    apps = [await _build(FEED_APP, create_feed_app, run.feed) for run in runs]
    probes = [Probe(run.label) for run in runs]
    for app, probe in zip(apps, probes, strict=True):
        _instrument(app, probe)
    a, b = runs
    with captured_server_errors() as records:
        logs = Logs(records)
        async with _serving(FEED_APP, apps) as urls, aiohttp.ClientSession() as client:
            a.url, b.url = urls
            try:
                await _feed_scenario(client, a, b, logs, rng)
            finally:
                for run in runs:  # ends every subscription, so every handler can return
                    run.feed.close()
    return (
        "two feeds served at once; the history, then live events, each with the feed's id "
        "and its lines intact; a client that left ended its stream quietly, and one that "
        "came back with Last-Event-ID got exactly the events it had missed."
    )


# =============================================================================================
# Task 4 · room_app
# =============================================================================================

FLOOD_MESSAGES = 400
BURST = 20
MESSAGE_BYTES = 8 * 1024
# More than this many of the flood reaching the member that stopped reading means the server
# kept far more for it than 100 messages and the sockets' buffers (about 100 more) hold.
SLOW_MEMBER_LIMIT = 300
# The burst at which the vanishing member vanishes (it stops reading two bursts before).
VANISH_AFTER_BURST = 5

ROOM_APP = Task(
    "room_app",
    *_app_rules("create_room_app()"),
    Rule(
        "not-broadcast",
        "each text message a member sends goes to every other member",
        "a message from one member, and what each other member received",
        "for each text message, put it in the outbox of every member but the sender.",
    ),
    Rule(
        "echoes-sender",
        "to every **other** member",
        "what the sender itself received of its own messages",
        "skip the sender: `if other is not me:`.",
    ),
    Rule(
        "lost-or-reordered",
        "unchanged, in the order it was sent",
        "the 400 messages each fast member received, compared with those sent",
        "one queue and one sending task per member keep the order; never drop a message for "
        "a member that keeps up.",
    ),
    Rule(
        "slow-member-stalls",
        "a slow member must not slow the room",
        "fast members' progress while one member read nothing; then whether they moved on "
        "as soon as it read again",
        "never await a member's send in the loop that reads another member: queue it "
        "(`put_nowait`) in that member's outbox, and let its own task send it.",
    ),
    Rule(
        "unbounded-outbox",
        "let at most 100 messages wait for a member",
        f"how many of the {FLOOD_MESSAGES} messages reached the member that read nothing, once "
        "it read again",
        "bound each outbox (`asyncio.Queue(maxsize=100)`) and, when it is full, close that "
        "member (1008) or drop the message: never let its pile grow.",
    ),
    Rule(
        "fast-member-dropped",
        "at least 20 may wait (the check sends bursts of 20)",
        "a member that read everything at once, closed (or starved) during the flood",
        "let up to 100 messages wait before you give up on a member: a burst is not a slow "
        "member.",
    ),
    Rule(
        "wrong-eviction-code",
        "close a member whose outbox is full with code 1008",
        "the close frame the slow member received",
        "`await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b'too slow')`.",
    ),
    Rule(
        "member-left-breaks",
        "a member that leaves, even by vanishing, is removed, and the others carry on",
        "the room after a member vanished without a close: the others' progress, the "
        "sender's connection",
        "a send to a member that vanished raises ConnectionError: catch it in that member's "
        "own task, and remove the member when its handler ends (`finally:`).",
    ),
    Rule(
        "error-logged",
        "a member that leaves: nothing logged",
        "what was logged (a handler's exception, a task's exception never retrieved) after a "
        "member vanished",
        "catch ConnectionError in each member's sending task, and cancel (then await) that "
        "task when the member leaves.",
    ),
    Rule(
        "rooms-shared",
        "each application has its own room",
        "a member of a second app, and what it received of the first app's traffic",
        "keep the members in the app (`app[ROOM] = set()` in create_room_app), never in a "
        "module-level variable.",
    ),
    Rule(
        "not-closed-at-shutdown",
        "at shutdown, close every member's socket in an `on_shutdown` hook",
        "what each member still connected received when the app stopped",
        "append a hook to `app.on_shutdown` that closes every member's socket with 1001: "
        "without it, the sockets are cut after shutdown_timeout, with no close frame.",
    ),
    Rule(
        "wrong-shutdown-code",
        "with code 1001 (going away)",
        "the close code each member received at shutdown",
        "`ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b'server shutdown')`.",
    ),
)


class Listener:
    """A fast member: an aiohttp WebSocket client whose task reads everything at once."""

    def __init__(self, name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.name = name
        self.ws = ws
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.ended = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.texts.append(message.data)
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    self.close_code = int(message.data)
                elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.ERROR):  # fmt: skip
                    return
        except (aiohttp.ClientError, ConnectionError):
            return
        finally:
            self.ended = True

    def flood(self) -> list[str]:
        return [text for text in self.texts if text.startswith("flood:")]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.ws.close()


class RawMember:
    """A member over a raw socket with small buffers: it reads only when told to, or vanishes."""

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ) -> None:  # fmt: skip
        self.name = name
        self.reader, self.writer = reader, writer
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.ended = False
        self.draining: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, name: str, url: str) -> RawMember:
        reader, writer = await _open(url, small=True)
        key = base64.b64encode(os.urandom(16)).decode()
        host = URL(url)
        writer.write(
            (
                f"GET /room HTTP/1.1\r\nHost: {host.host}:{host.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{LAGGING}: 1\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status_line + b" ":
            writer.close()
            raise ConnectionError(f"the upgrade was refused: {status_line!r}")
        return cls(name, reader, writer)

    async def _frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", await self.reader.readexactly(8))
        mask = await self.reader.readexactly(4) if second & 0x80 else b""
        payload = await self.reader.readexactly(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return first & 0x0F, payload

    async def read_one(self) -> None:
        """Read frames until a text arrives (or the connection ends)."""
        while not self.ended:
            if await self._take():
                return

    def _send(self, opcode: int, payload: bytes) -> None:
        """A client frame (masked, as a client's must be)."""
        mask = os.urandom(4)
        header = bytes([0x80 | opcode, 0x80 | len(payload)])  # control frames: <= 125 bytes
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.writer.write(header + mask + masked)

    async def _take(self) -> bool:
        """Read one frame; answer a ping and a close as a browser does. True for a text."""
        try:
            opcode, payload = await self._frame()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.ended = True
            return False
        if opcode == 1:
            self.texts.append(payload.decode("utf-8", "replace"))
            return True
        if opcode == 9:
            self._send(10, payload[:125])
        elif opcode == 8:
            self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._send(8, payload[:2])
            self.ended = True
            self.writer.transport.close()  # the closing handshake is done: hang up, as browsers do
        return False

    def drain(self) -> None:
        """Start reading everything, in a task of its own."""

        async def run() -> None:
            while not self.ended:
                await self._take()

        if self.draining is None:
            self.draining = asyncio.ensure_future(run())

    async def pause(self) -> None:
        """Stop reading (a drain under way ends)."""
        if self.draining is not None:
            self.draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.draining
            self.draining = None

    def vanish(self) -> None:
        self.ended = True
        _vanish(self.writer)

    async def stop(self) -> None:
        if self.draining is not None:
            self.draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.draining
        self.writer.transport.abort()

    def flood(self) -> list[str]:
        return [text for text in self.texts if text.startswith("flood:")]


def _flood_text(seq: int) -> str:
    head = f"flood:{seq:04d}:"
    return head + "é" * ((MESSAGE_BYTES - len(head)) // 2)


@dataclass
class Room:
    """The members the check joined to the learner's two apps."""

    speaker: Listener
    fast: list[Listener]
    slow: RawMember
    vanisher: RawMember
    other_app: Listener
    vanished_at: int = 0


async def _join(table: Task, client: aiohttp.ClientSession, url: str, name: str, logs: Logs,
                ) -> Listener:  # fmt: skip
    mark = logs.mark()
    try:
        ws = await client.ws_connect(url + "/room", autoclose=True)
    except aiohttp.WSServerHandshakeError as error:
        if error.status >= 500:
            raise _server_error(table, logs, mark, "GET /room (a WebSocket upgrade)",
                                error.status) from None  # fmt: skip
        raise table.broken(
            "not-broadcast",
            f"the WebSocket upgrade of GET /room was refused with {error.status}.",
        ) from None
    return Listener(name, ws)


async def _room_warm_up(table: Task, room: Room, logs: Logs) -> None:
    """Each of two members says hello; every other member must hear it, the sender not."""
    mark = logs.mark()
    fast_a = room.fast[0]
    senders = [(fast_a, "hello from A"), (room.speaker, "hello from the speaker")]
    for sender, text in senders:
        await sender.ws.send_str(text)
        hearers: list[Listener | RawMember] = [
            m for m in (room.speaker, *room.fast) if m is not sender
        ]
        readings = [asyncio.ensure_future(raw.read_one()) for raw in (room.slow, room.vanisher)]
        everyone = [*hearers, room.slow, room.vanisher]
        heard = await _responsive_wait(
            lambda text=text, everyone=everyone: all(text in m.texts for m in everyone)
        )
        for reading in readings:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        if not heard:
            _raise_handler_errors(table, logs, mark, "members said hello")
            changed = [t for m in everyone for t in m.texts if text in t and t != text]
            if changed:
                raise table.broken(
                    "lost-or-reordered",
                    f"{sender.name} sent {text!r}; the others received {clip(changed[0], 60)!r}: "
                    "a message goes to the others unchanged.",
                )
            deaf = [m.name for m in everyone if text not in m.texts]
            raise table.broken(
                "not-broadcast",
                f"{sender.name} sent {text!r}; after {PATIENCE_SECONDS:g} s, "
                f"{', '.join(deaf)} had not received it.",
            )


async def _room_flood(table: Task, room: Room, logs: Logs) -> None:
    """400 messages from the speaker in bursts of 20, each burst waited for by the fast.

    The speaker sends from a task of its own: a room that stops reading it (because it waits
    for the slow member) would otherwise stop the check's own loop here.
    """
    mark = logs.mark()
    fast = room.fast
    sent = 0

    async def send_burst(first: int) -> None:
        for seq in range(first, first + BURST):
            await room.speaker.ws.send_str(_flood_text(seq))

    for burst in range(FLOOD_MESSAGES // BURST):
        if burst == VANISH_AFTER_BURST - 2:
            await room.vanisher.pause()  # messages pile up for it: the server is mid-send...
        if burst == VANISH_AFTER_BURST:
            room.vanished_at = sent
            room.vanisher.vanish()  # ...when it vanishes
        sending = asyncio.ensure_future(send_burst(sent + 1))
        sent += BURST
        target = sent

        def delivered(sending: asyncio.Future[None] = sending, target: int = target) -> bool:
            return sending.done() and all(len(m.flood()) >= target or m.ended for m in fast)

        arrived = await _responsive_wait(delivered)
        if sending.done() and sending.exception() is not None:
            await _speaker_lost(table, room, logs, mark, sent)
        dropped = [m for m in fast if m.ended]
        if dropped:
            m = dropped[0]
            raise table.broken(
                "fast-member-dropped",
                f"member {m.name}, which read everything at once, was closed"
                f"{f' with {m.close_code}' if m.close_code else ''} after "
                f"{plural(len(m.flood()), 'message')} of the flood: bursts of {BURST} are not "
                "a slow member.",
            )
        if arrived:
            continue
        if room.speaker.ended:
            sending.cancel()
            await _speaker_lost(table, room, logs, mark, sent)
        got = min(len(m.flood()) for m in fast)
        room.slow.drain()  # the member that read nothing now reads
        moved = await _responsive_wait(
            lambda got=got: all(len(m.flood()) > got for m in fast), 1.5
        )
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
            await sending
        if moved:
            raise table.broken(
                "slow-member-stalls",
                f"while one member read nothing, the fast members stopped at message {got} "
                f"of {sent} sent, for {PATIENCE_SECONDS:g} s; they got more only once that "
                "member read again: the room waited for its slowest member.",
            )
        _raise_room_errors(table, room, logs, mark)
        raise table.broken(
            "member-left-breaks" if room.vanished_at else "not-broadcast",
            f"the fast members stopped at message {got} of {sent} sent"
            f"{' after a member vanished' if room.vanished_at else ''}, and did not move on.",
        )


async def _speaker_lost(table: Task, room: Room, logs: Logs, mark: tuple[int, int, int],
                        sent: int) -> None:  # fmt: skip
    _raise_room_errors(table, room, logs, mark)
    after = f" after a member vanished (at message {room.vanished_at})" if room.vanished_at else ""
    raise table.broken(
        "member-left-breaks" if room.vanished_at else "not-broadcast",
        f"the speaker's connection was closed{after}, at message {sent} of the flood"
        f"{f' (code {room.speaker.close_code})' if room.speaker.close_code else ''}.",
    )


def _raise_room_errors(table: Task, room: Room, logs: Logs, mark: tuple[int, int, int]) -> None:
    logged = logs.since(mark)
    if logged:
        code = "error-logged" if room.vanished_at else "handler-raised"
        raise table.broken(
            code,
            f"{'after a member vanished, ' if room.vanished_at else ''}the app logged "
            f"{_describe(logged[0])}.",
        )


def _room_delivery(table: Task, room: Room) -> None:
    expected = [_flood_text(seq) for seq in range(1, FLOOD_MESSAGES + 1)]
    for member in room.fast:
        got = member.flood()
        if got != expected:
            if len(got) != len(expected):
                detail = f"{len(got)} of the {len(expected)}"
            else:
                pairs = enumerate(zip(got, expected, strict=True))
                index = next(i for i, (a, b) in pairs if a != b)
                detail = f"all {len(got)}, but message {index + 1} was {clip(got[index], 20)!r}"
            raise table.broken(
                "lost-or-reordered",
                f"member {member.name}, which read everything at once, received {detail}: "
                "each message goes unchanged, in order, to every member that keeps up.",
            )
    own = [t for t in room.speaker.texts if t.startswith("flood:")]
    if own or "hello from A" in room.fast[0].texts:
        who = "the speaker" if own else "member A"
        raise table.broken(
            "echoes-sender",
            f"{who} received its own messages back ({plural(len(own) or 1, 'message')}): a "
            "message goes to every member but its sender.",
        )
    if room.other_app.texts:
        raise table.broken(
            "rooms-shared",
            f"a member of the second app received {plural(len(room.other_app.texts), 'message')} "
            "sent in the first app's room: the two apps share one room.",
        )


async def _room_slow_member(table: Task, room: Room) -> int:
    """Let the slow member read everything it is still given: how much was kept for it?"""
    slow = room.slow
    slow.drain()
    count = -1
    while count != len(slow.texts) and not slow.ended:
        count = len(slow.texts)
        await _responsive_wait(lambda: False, 0.3)
    received = len(slow.flood())
    if received > SLOW_MEMBER_LIMIT:
        raise table.broken(
            "unbounded-outbox",
            f"the member that read nothing received {received} of the {FLOOD_MESSAGES} messages "
            f"once it read again: the server kept them all for it "
            f"({received * MESSAGE_BYTES // 2**20} MiB), where at most 100 may wait.",
        )
    if slow.close_code is not None and slow.close_code not in (1008, 1001):
        raise table.broken(
            "wrong-eviction-code",
            f"the member that read nothing was closed with code {slow.close_code}; a member "
            "closed for falling behind gets 1008 (policy violation).",
        )
    return received


def _room_shutdown(table: Task, members: list[Listener]) -> None:
    for member in members:
        if member.close_code is None:
            raise table.broken(
                "not-closed-at-shutdown",
                f"when the app stopped, member {member.name} got no close frame: its "
                "connection was cut once shutdown_timeout ran out.",
            )
        if member.close_code != 1001:
            raise table.broken(
                "wrong-shutdown-code",
                f"when the app stopped, member {member.name} was closed with code "
                f"{member.close_code}; a server going away says 1001.",
            )


@check(ROOM_APP)
async def room_app(create_room_app: Any, server: LocalServer, spy: SessionSpy) -> str:
    apps = [await _build(ROOM_APP, create_room_app) for _ in range(2)]
    probes = [Probe(label) for label in ("a", "b")]
    for app, probe in zip(apps, probes, strict=True):
        _instrument(app, probe)
    members: list[Listener | RawMember] = []
    with captured_server_errors() as records:
        logs = Logs(records)
        async with aiohttp.ClientSession() as client:
            try:
                async with _serving(ROOM_APP, apps) as (url, other_url):
                    speaker = await _join(ROOM_APP, client, url, "the speaker", logs)
                    members.append(speaker)
                    for name in ("A", "B"):
                        members.append(await _join(ROOM_APP, client, url, name, logs))
                    for name in ("the slow member", "the vanishing member"):
                        members.append(await RawMember.join(name, url))
                    members.append(
                        await _join(ROOM_APP, client, other_url, "of the second app", logs)
                    )
                    fast_a, fast_b, slow, vanisher, other = members[1:]
                    room = Room(speaker, [fast_a, fast_b], slow, vanisher, other)  # type: ignore[arg-type]
                    await _responsive_wait(lambda: False, 0.05)  # let every handler register
                    await _room_warm_up(ROOM_APP, room, logs)
                    vanisher.drain()  # it keeps up, until it vanishes
                    await _room_flood(ROOM_APP, room, logs)
                    _room_delivery(ROOM_APP, room)
                    await _room_slow_member(ROOM_APP, room)
                    _raise_room_errors(ROOM_APP, room, logs, (0, 0, 0))
                    still_open = [
                        m for m in (speaker, fast_a, fast_b, other) if not m.ended
                    ]
                await _responsive_wait(lambda: all(m.ended for m in still_open))
                _room_shutdown(ROOM_APP, still_open)  # type: ignore[arg-type]
                _raise_room_errors(ROOM_APP, room, logs, (0, 0, 0))
            finally:
                for member in members:
                    await member.stop()
    return (
        f"{FLOOD_MESSAGES} messages of {MESSAGE_BYTES // 1024} KiB reached every fast member "
        "in order, while one member read nothing (what it got once it read again was "
        "bounded) and one vanished without a word; nothing was logged, the second app's "
        "room stayed apart, and every member got 1001 at shutdown."
    )
