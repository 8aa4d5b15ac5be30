"""Checks for exercise 08, file upload.

In the notebook: ``from local_server.checks import file_upload as check``.

Each task's rules are declared in a table (``UPLOAD_FORM``, ``UPLOAD_LARGE``,
``UPLOAD_WITH_PROGRESS``) and observed on seeded scenarios. The check writes its own files
(binary and non-ASCII text, sizes that are no multiple of any chunk size) in a fresh temporary
directory and serves its own upload endpoint, on the check's event loop, that records what
arrived (the query, each part's name, filename, size and SHA-256) and answers the same JSON
report as the course server's ``POST /upload``. Effects are observed, whatever API the code
uses: whether the file is still open afterwards (the process's open files, and Python's
"unclosed file" warning), the bytes read on the event loop's thread (``observe``), the peak
of Python's memory (``tracemalloc``), and, for progress, how many bytes had been handed to
aiohttp when each call came (the session's ``on_request_chunk_sent`` trace). One scenario of
each task fails on purpose (a refused connection, a server that drops the connection
mid-body): the code must raise and the file still be closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import inspect
import itertools
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
import psutil
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..runner import LOOPBACK, LocalServer
from ..serving import refused_url
from . import observe
from .evidence import clip, exception_text, explain, is_learner_file, learner_line
from .harness import PeakMemory, SessionSpy, check, expect_loop_not_blocked, plural
from .rules import Mistake, Rule, Task

SEED = 0
# The check's endpoint reads the body in pieces of this size.
READ_CHUNK = 64 * 1024
# Reading more of the file than this on the event loop's thread blocks the loop.
LOOP_READ_LIMIT = 1024 * 1024
# os.read() calls on the loop's thread (their size cannot be seen) that count as blocking.
LOOP_OS_READ_CALLS = 4
# aiohttp closes a file it has sent from a worker thread just after the response: wait this
# long for the process to show it closed before calling it left open.
CLOSE_GRACE_SECONDS = 1.0
# A failed upload: the server drops the connection once this much of the body has arrived.
ABORT_AT = 1024 * 1024
# A throttled scenario: the endpoint reads this many bytes per second, through small socket
# buffers, so the upload lasts most of a second and progress has time to show.
THROTTLE_BYTES_PER_SECOND = 4 * 1024 * 1024
SMALL_BUFFER = 32 * 1024
MIN_PROGRESS_CALLS = 4
MIN_CALLS_DURING_UPLOAD = 2

SESSION_HINT = (
    "send the request with the `session` your function is given (`session.post(...)`): it "
    "is the caller's pool, and a session of your own is one more to close."
)
TEXT_MODE_HINT = (
    'open the file in binary mode, `open(path, "rb")`: text mode decodes the bytes (and '
    "fails on a byte that is not UTF-8) and may change line endings."
)
CLOSED_HINT = (
    '`with open(path, "rb") as file:` around the whole request closes the file however '
    "the request ends; a `close()` after the request is skipped when it raises."
)
ERROR_HINT = (
    "let the exception propagate (no `except` that returns): the caller must learn that "
    "the upload failed."
)


FORM_FAILURES = "a session that is already closed (nothing is sent), and a refused port"
STREAM_FAILURES = "a server that drops the connection mid-body, and a session already closed"


def _rule_own_session() -> Rule:
    return Rule(
        "own-session",
        "POSTs ... with the `session` it is given",
        "sessions created while the function ran, counted",
        SESSION_HINT,
    )


def _rule_error_swallowed(when: str) -> Rule:
    return Rule(
        "error-swallowed",
        "if the upload fails, your function raises",
        f"{when}: the function must raise",
        ERROR_HINT,
    )


def _rule_left_open_on_error(when: str) -> Rule:
    return Rule(
        "file-left-open-on-error",
        "the file is closed when your function returns, whatever happens",
        f"{when}: the process's open files afterwards, and Python's 'unclosed file' warning",
        CLOSED_HINT,
    )


def _rule_text_mode() -> Rule:
    return Rule(
        "text-mode",
        "open the file in binary mode",
        "a binary file: text mode fails to decode it (a UnicodeDecodeError in what was "
        "raised); the line that opened the file is quoted",
        TEXT_MODE_HINT,
    )


def _rule_wrong_return() -> Rule:
    return Rule(
        "wrong-return",
        "returns the server's JSON report (`await response.json()`)",
        "the type and content of what the function returned",
        "return `await response.json()` from inside `async with session.post(...)`.",
    )


# --- observing one call ------------------------------------------------------------------


@dataclass
class Received:
    """What the check's endpoint saw of one upload."""

    method: str = ""
    query: dict[str, str] = field(default_factory=dict)
    content_type: str = ""
    declared: int | None = None
    body_bytes: int = 0
    report: dict[str, Any] | None = None
    aborted: bool = False
    error: str = ""


@dataclass
class Scenario:
    """One upload the check makes the code do."""

    name: str
    content: bytes
    fields: dict[str, str] = field(default_factory=dict)
    rate: float | None = None
    abort_at: int | None = None
    # How the scenario fails on purpose: "refused" (no server listens), "closed-session" (the
    # session given is already closed: the request fails before anything is sent), "dropped"
    # (the server drops the connection once ``abort_at`` bytes have arrived).
    fails: str = ""

    @property
    def how_it_failed(self) -> str:
        return {
            "refused": "when the connection was refused",
            "closed-session": "when the request failed before sending (the session given was "
            "already closed)",
            "dropped": f"when the server dropped the connection after {ABORT_AT // 2**20} MiB",
        }[self.fails]

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.size:,} bytes)"


@dataclass
class Failure:
    """An exception the learner's code let escape, summed up (no traceback kept alive)."""

    text: str
    where: str
    decoded: str  # the UnicodeDecodeError in its chain, if any: the file was read as text
    problem: str
    message: str
    hint: str


def _failure(exc: BaseException) -> Failure:
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    where = learner_line(exc)
    problem, message, hint = explain(exc)
    decoded = next((exception_text(e) for e in chain if isinstance(e, UnicodeDecodeError)), "")
    return Failure(exception_text(exc), str(where or ""), decoded, problem, message, hint)


@dataclass
class Call:
    """One call of the learner's function: what it returned or raised, and its effects."""

    result: Any = None
    failure: Failure | None = None
    received: Received = field(default_factory=Received)
    left_open: str = ""  # how the file was seen left open, or ""
    own_sessions: int = 0
    peak: int = 0
    handed: list[int] = field(default_factory=list)  # bytes handed to aiohttp at each call
    loop_read: int = 0  # bytes of the file read on the event loop's thread
    loop_os_reads: int = 0  # os.read() calls on the loop's thread (their size is not seen)
    loop_where: str = ""
    opened_at: str = ""  # the learner's line that opened the file


class _Endpoint:
    """The check's upload endpoint: records what arrived and answers the JSON report."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.received = Received()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", "/upload", self.handle)
        app.router.add_route("PUT", "/upload", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got = self.received
        got.method = request.method
        got.query = dict(request.query)
        got.content_type = request.content_type
        got.declared = request.content_length
        try:
            if request.content_type.startswith("multipart/"):
                report = await self._multipart(request)
            else:
                report = await self._raw(request)
        except _Aborted:
            got.aborted = True
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=400)
        except (ValueError, LookupError, RuntimeError, HttpProcessingError) as exc:
            got.error = clip(str(exc), 80)
            detail = f"the multipart body could not be parsed: {got.error}"
            return web.json_response({"error": "bad request", "detail": detail}, status=400)
        got.report = {"method": request.method, **report}
        return web.json_response(got.report)

    async def _pace(self, request: web.Request, count: int) -> None:
        got = self.received
        got.body_bytes += count
        scenario = self.scenario
        if scenario.abort_at is not None and got.body_bytes >= scenario.abort_at:
            raise _Aborted
        if scenario.rate:
            await asyncio.sleep(count / scenario.rate)

    async def _raw(self, request: web.Request) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        while chunk := await request.content.read(READ_CHUNK):
            size += len(chunk)
            digest.update(chunk)
            await self._pace(request, len(chunk))
        return {"kind": "raw", "content_type": request.headers.get("Content-Type"),
                "size": size, "sha256": digest.hexdigest()}  # fmt: skip

    async def _multipart(self, request: web.Request) -> dict[str, Any]:
        reader = await request.multipart()
        parts = []
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                raise ValueError("a part that is itself multipart")
            digest, size, head = hashlib.sha256(), 0, b""
            while chunk := await part.read_chunk(READ_CHUNK):
                size += len(chunk)
                digest.update(chunk)
                if len(head) <= 1024:
                    head += chunk[: 1025 - len(head)]
                await self._pace(request, len(chunk))
            value = None
            if part.filename is None and len(head) <= 1024:
                with contextlib.suppress(UnicodeDecodeError, LookupError):
                    value = head.decode(part.get_charset(default="utf-8"))
            parts.append({
                "name": part.name,
                "filename": unquote(part.filename) if part.filename is not None else None,
                "content_type": part.headers.get("Content-Type"),
                "size": size,
                "sha256": digest.hexdigest(),
                "value": value,
            })  # fmt: skip
        return {"kind": "multipart", "content_type": request.content_type,
                "size": sum(p["size"] for p in parts), "parts": parts}  # fmt: skip


class _Aborted(Exception):
    """The scenario drops the connection here."""


@contextlib.asynccontextmanager
async def _serving(endpoint: _Endpoint, small_buffers: bool) -> AsyncIterator[str]:
    """Serve ``endpoint`` on this loop; yield its /upload URL (a refused one if asked)."""
    if endpoint.scenario.fails in ("refused", "closed-session"):
        yield refused_url("/upload")
        return
    runner = web.AppRunner(endpoint.app(), access_log=None, handle_signals=False)
    await runner.setup()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if small_buffers:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        listener.bind((LOOPBACK, 0))
        site = web.SockSite(runner, listener, shutdown_timeout=0.5)
        await site.start()
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}/upload"
    finally:
        await runner.cleanup()
        listener.close()


def _small_send_buffer(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    return sock


@contextlib.contextmanager
def _scenario_file(scenario: Scenario) -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="upload-check-")
    path = os.path.join(directory, scenario.name)
    try:
        with open(path, "wb") as file:
            file.write(scenario.content)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _open_paths() -> set[str]:
    try:
        return {os.path.realpath(f.path) for f in psutil.Process().open_files()}
    except psutil.Error:
        return set()


def _unclosed_warning(caught: list[warnings.WarningMessage], path: str) -> bool:
    """Python warned that a file of the check's (by name, or by fd) was never closed."""
    directory = os.path.dirname(path)
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, ResourceWarning) and "unclosed file" in text:
            if directory in text or ("name=" in text and "name='" not in text):
                return True
    return False


# A learner's line that hands work to a thread: the executor's own short lock (taken while
# submitting, and held by a worker for microseconds) is no blocking of the learner's.
_HANDOFF = re.compile(r"\bto_thread\(|\brun_in_executor\(")


def _forget_executor_handoffs() -> None:
    """Drop lock waits and stalls recorded at lines that only submit work to a thread pool.

    ``asyncio.to_thread`` takes the pool's internal locks on the loop's thread; on a loaded
    machine a worker holding one for a moment can be descheduled, and the wait (GIL included)
    then looks like a blocked loop. A shared version belongs in ``observe``: skip acquires
    made inside ``concurrent.futures`` on behalf of ``run_in_executor``.
    """
    obs = observe.current()
    for key, call in list(obs.blocking.items()):
        if call.kind == "lock-wait" and call.where is not None and _HANDOFF.search(call.where.text):
            del obs.blocking[key]
    obs.stalls[:] = [
        stall for stall in obs.stalls
        if stall.where is None or not _HANDOFF.search(stall.where.text)
    ]  # fmt: skip


async def _call(task: str, learner: Any, *args: Any) -> Any:
    """``harness.call_async``, with the executor's own lock waits forgotten before judging."""
    result = learner(*args)
    if not inspect.isawaitable(result):
        raise Mistake(
            "not-async",
            f"{task}() returned {type(result).__name__} instead of a coroutine.",
            f"define it with `async def {task}(...)` so it can await the requests.",
        )
    try:
        value = await result
    finally:
        _forget_executor_handoffs()
    expect_loop_not_blocked()
    return value


@contextlib.contextmanager
def _generators_seen() -> Iterator[weakref.WeakSet]:
    """Note every async generator of the learner's that this thread starts iterating."""
    hooks = sys.get_asyncgen_hooks()
    seen: weakref.WeakSet = weakref.WeakSet()

    def firstiter(generator: Any) -> None:
        if is_learner_file(generator.ag_code.co_filename):
            seen.add(generator)
        if hooks.firstiter is not None:
            hooks.firstiter(generator)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=hooks.finalizer)
    try:
        yield seen
    finally:
        sys.set_asyncgen_hooks(*hooks)


async def _close_generators(generators: weakref.WeakSet) -> None:
    """Close the learner's async generators that a failed request left suspended.

    aiohttp stops iterating a body generator when the connection breaks, but does not close
    it; asyncio.run() (or the next garbage collection) would. Closing them here, as that
    would, lets a ``with`` inside the generator close the file, and shows a file that only
    the end of the loop would have closed.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + CLOSE_GRACE_SECONDS
    for generator in list(generators):
        while generator.ag_running and loop.time() < give_up_at:
            await asyncio.sleep(0.01)  # a read in a worker thread, cancelled when it returns
        if generator.ag_frame is not None and not generator.ag_running:
            with contextlib.suppress(Exception):
                await generator.aclose()


async def _settle() -> None:
    """Let finalizers and the loop's async-generator clean-up run."""
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)


async def _run(
    task: str, learner: Any, scenario: Scenario, spy: SessionSpy, *extra: Any,
    memory: bool = False, on_progress: Any = None,
) -> Call:  # fmt: skip
    """Call the learner's function once on ``scenario``; observe what it did and left."""
    call = Call()
    obs = observe.current()
    endpoint = _Endpoint(scenario)
    call.received = endpoint.received
    handed = [0]

    async def chunk_sent(session: Any, context: Any, params: Any) -> None:
        handed[0] += len(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(chunk_sent)
    throttled = scenario.rate is not None
    connector = aiohttp.TCPConnector(socket_factory=_small_send_buffer if throttled else None)
    args: list[Any] = list(extra)
    if on_progress is not None:

        def progress(*values: Any) -> Any:
            call.handed.append(handed[0])
            return on_progress(*values)

        args.append(progress)
    with _scenario_file(scenario) as path:
        async with _serving(endpoint, throttled) as url, aiohttp.ClientSession(
            connector=connector, trace_configs=[trace]
        ) as session:
            if scenario.fails == "closed-session":
                await session.close()
            before = spy.created
            _, os_reads_before, _ = _loop_reads(path)
            with warnings.catch_warnings(record=True) as caught, obs.window() as window:
                warnings.simplefilter("always")
                meter = PeakMemory() if memory else contextlib.nullcontext()
                with meter, _generators_seen() as generators:
                    try:
                        call.result = await _call(task, learner, session, url, path, *args)
                    except (Mistake, NotImplementedError):
                        raise
                    except Exception as exc:  # the scenario judges it
                        call.failure = _failure(exc)
                        del exc
                if isinstance(meter, PeakMemory):
                    call.peak = meter.peak
                await _close_generators(generators)
                await _settle()
                call.left_open = await _still_open(path, caught)
            call.own_sessions = spy.created - before
            real = os.path.realpath(path)
            opened = [e.where for e in window.files if e.path == real and e.where is not None]
            call.opened_at = str(opened[0]) if opened else ""
            call.loop_read, os_reads, call.loop_where = _loop_reads(path)
            call.loop_os_reads = os_reads - os_reads_before
    return call


async def _still_open(path: str, caught: list[warnings.WarningMessage]) -> str:
    """How the file was seen left open ("" if it was closed)."""
    real = os.path.realpath(path)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + CLOSE_GRACE_SECONDS
    while real in _open_paths() and loop.time() < give_up_at:
        await asyncio.sleep(0.02)
    if real in _open_paths():
        return "the file was still open after it returned"
    if _unclosed_warning(caught, path):
        return "the file was never closed (Python warned: 'unclosed file')"
    return ""


def _loop_reads(path: str) -> tuple[int, int, str]:
    """Bytes of ``path`` read on the loop's thread so far, os.read calls there, a line."""
    real = os.path.realpath(path)
    read_bytes, os_calls, where = 0, 0, ""
    for call in observe.current().blocking_calls("file-read"):
        if call.target in ("os.read", "os.pread"):
            os_calls += call.calls
        elif os.path.realpath(call.target) == real:
            read_bytes += call.bytes
        else:
            continue
        where = where or str(call.where)
    return read_bytes, os_calls, where


# --- judging what one call did -----------------------------------------------------------


def _judge_common(table: Task, task: str, call: Call, scenario: Scenario) -> dict[str, Any]:
    """Own session, an exception, the shape of the report: the report, or the Mistake."""
    if call.own_sessions:
        raise table.broken(
            "own-session",
            f"{task} created {plural(call.own_sessions, 'session')} of its own instead of "
            "using the `session` it was given.",
        )
    failure = call.failure
    if failure is not None:
        if failure.decoded and "text-mode" in table.rules:
            where = call.opened_at or failure.where
            raise table.broken(
                "text-mode",
                f"uploading the binary file {scenario.label} failed with "
                f"{clip(failure.decoded, 90)}: the file was opened in text mode"
                f"{' at ' + where if where else ''}.",
            )
        raise table.broken(
            failure.problem if failure.problem in table.rules else "raised",
            f"uploading {scenario.label}, {task} {failure.message}",
            failure.hint or None,
        )
    report = call.result
    if inspect.iscoroutine(report):
        report.close()
        raise table.broken(
            "missing-await",
            f"{task} returned a coroutine instead of the report: an await is missing.",
            "`return await response.json()`: json() is a coroutine function.",
        )
    received = call.received
    if received.report is None:
        if received.error:
            raise table.broken(
                "wrong-content",
                f"for {scenario.label}, the server could not parse the body ({received.error}): "
                "it was not as long as aiohttp announced from the file's size, as happens "
                "when the file is opened in text mode.",
            )
        if not received.method:
            raise table.broken(
                "wrong-content", f"{task} returned, but nothing was uploaded to `url`."
            )
    if isinstance(report, aiohttp.ClientResponse):
        raise table.broken("wrong-return", f"{task} returned the response object.")
    if isinstance(report, (str, bytes)):
        raise table.broken(
            "wrong-return", f"{task} returned {type(report).__name__}, not the parsed JSON."
        )
    if not isinstance(report, dict) or report != call.received.report:
        raise table.broken(
            "wrong-return",
            f"{task} returned {clip(repr(report), 80)}; expected the server's JSON report.",
        )
    return report


def _judge_bytes(table: Task, task: str, call: Call, scenario: Scenario) -> None:
    """The whole file arrived, byte for byte (raw, or as one part of a form)."""
    report = call.received.report or {}
    if report.get("kind") == "multipart":
        candidates = [p for p in report["parts"] if p["filename"] is not None] or report["parts"]
    else:
        candidates = [report]
    if any(p.get("sha256") == scenario.sha256 for p in candidates):
        return
    sizes = [p.get("size") for p in candidates]
    _wrong_content(table, task, scenario, sizes[0] if sizes else 0)


def _wrong_content(table: Task, task: str, scenario: Scenario, size: Any) -> None:
    if isinstance(size, int) and size == scenario.size:
        detail = "the right size but different bytes (read in text mode? not from the start?)"
    elif isinstance(size, int) and size < scenario.size:
        detail = f"{size:,} bytes of its {scenario.size:,}: part of the file was not sent"
    else:
        detail = f"{size!r} bytes for a file of {scenario.size:,}"
    raise table.broken(
        "wrong-content", f"for {scenario.label}, the server received {detail}."
    )


async def _judge_failed_upload(
    table: Task, task: str, learner: Any, scenario: Scenario, spy: SessionSpy, *extra: Any,
    on_progress: Any = None,
) -> None:  # fmt: skip
    """A scenario that fails: the code must raise, and the file must be closed then too."""
    call = await _run(task, learner, scenario, spy, *extra, on_progress=on_progress)
    how = scenario.how_it_failed
    if call.own_sessions:
        _judge_common(table, task, call, scenario)
    if call.failure is None:
        raise table.broken(
            "error-swallowed",
            f"{how}, {task} returned {clip(repr(call.result), 60)} instead of raising.",
        )
    if call.left_open:
        raise table.broken(
            "file-left-open-on-error",
            f"{how}, {task} raised ({clip(call.failure.text, 70)}), and {call.left_open}"
            + (
                ": aiohttp closes a file it was given only once the request is under way."
                if scenario.fails == "closed-session"
                else "."
            ),
        )


def _seeded_text(rng: random.Random, size: int) -> bytes:
    """UTF-8 CSV text with non-ASCII names, exactly ``size`` bytes, LF line endings."""
    names = ["Zoë", "Ada", "Łukasz", "Chloé", "Søren", "Ana"]
    rows = ["name,city,amount €"]
    length = len(rows[0].encode()) + 1
    while length < size:
        row = f"{rng.choice(names)},{rng.choice(['Köln', 'Kraków', 'Nice'])},{rng.randrange(10**5)}"
        rows.append(row)
        length += len(row.encode()) + 1
    text = ("\n".join(rows) + "\n").encode()
    return text[: size - 1] + b"\n"


# --- Task 1: upload_form -------------------------------------------------------------------

FORM_FIELD = "document"

UPLOAD_FORM = Task(
    "upload_form",
    _rule_own_session(),
    Rule(
        "not-multipart",
        "POSTs a `multipart/form-data` form",
        "the Content-Type of the body the check's endpoint received",
        "build an `aiohttp.FormData()`, `add_field()` each field and the file, and pass it "
        "as `data=`.",
    ),
    Rule(
        "wrong-field-name",
        "the file at `path`, in the field named **`document`**",
        "the name of the part that holds the file's bytes",
        'the first argument of `add_field()` is the form field: `form.add_field("document", '
        "file, filename=...)`.",
    ),
    Rule(
        "no-filename",
        "the file ... under the file's own name",
        "the 'document' part arrived with no filename: a text field, not a file",
        "pass the open file, or bytes with `filename=`: a str is sent as a text field.",
    ),
    Rule(
        "wrong-filename",
        "under the file's own name (not the full path)",
        "the filename of the 'document' part, on two files (one with a non-ASCII name)",
        "use `os.path.basename(path)` (never a fixed name like the seed's 'upload.txt', and "
        "never the full path), or leave `filename=` out for an open file.",
    ),
    _rule_text_mode(),
    Rule(
        "wrong-content",
        "the file at `path` (its bytes, unchanged)",
        "the size and SHA-256 of the 'document' part, compared with the file's",
        'send the file opened in binary mode (`"rb"`), from its start.',
    ),
    Rule(
        "field-not-text",
        "every entry of the dict `fields` as a text field",
        "a field arrived as a file part (with a filename): it was given as bytes",
        "pass each value as the str it is: `form.add_field(key, value)`; bytes are sent as "
        "a file.",
    ),
    Rule(
        "missing-field",
        "every entry of the dict `fields` as a text field",
        "each field's value in the form, on two dicts (two and three fields, non-ASCII)",
        "add every entry of `fields` to the form: `aiohttp.FormData(fields)`, or "
        "`form.add_field(key, value)` for each.",
    ),
    _rule_wrong_return(),
    Rule(
        "file-left-open",
        "make sure the file is closed when your function returns",
        "the process's open files after the call, and Python's 'unclosed file' warning",
        CLOSED_HINT,
    ),
    _rule_left_open_on_error(FORM_FAILURES),
    _rule_error_swallowed(FORM_FAILURES),
)


def _form_scenarios() -> list[Scenario]:
    rng = random.Random(f"{SEED}-upload_form")
    token = f"{rng.getrandbits(24):06x}"
    scan = Scenario(
        f"scan-{token}.pdf",
        b"%PDF-1.7\n\xe2\xe3\xcf\xd3\n" + rng.randbytes(70_001 + rng.randrange(5_000)),
        {"title": f"Scan {token}", "author": "Ada"},
    )
    report = Scenario(
        f"résumé été {token}.csv",
        _seeded_text(rng, 40_003 + rng.randrange(5_000)),
        {"title": "Rapport trimestriel — été", "author": "Zoë", "tags": f"q3,{token}"},
    )
    return [scan, report]


@check(UPLOAD_FORM)
async def upload_form(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_form(session, url, path, fields)``: the file as part "document", plus fields."""
    for scenario in _form_scenarios():
        call = await _run("upload_form", learner, scenario, spy, dict(scenario.fields))
        _judge_common(UPLOAD_FORM, "upload_form", call, scenario)
        _judge_form(call, scenario)
        if call.left_open:
            raise UPLOAD_FORM.broken(
                "file-left-open", f"after uploading {scenario.label}, {call.left_open}."
            )
    for fails in FAILURES:
        scenario = Scenario(f"notes-{fails}.txt", b"short notes\n", {"title": "x"}, fails=fails)
        await _judge_failed_upload(
            UPLOAD_FORM, "upload_form", learner, scenario, spy, dict(scenario.fields)
        )
    return (
        "two files (binary, and text with a non-ASCII name) arrived as 'document' under their "
        "own names, byte for byte, with every field as text; the file was closed each time, "
        "also when the request failed before sending or was refused, and the error reached "
        "the caller."
    )


# The failures every upload_form check makes happen.
FAILURES = ("closed-session", "refused")


def _judge_form(call: Call, scenario: Scenario) -> None:
    table, received = UPLOAD_FORM, call.received
    report = received.report or {}
    if report.get("kind") != "multipart":
        kind = received.content_type or "no Content-Type"
        raise table.broken(
            "not-multipart",
            f"the server received a body of type {kind}, not multipart/form-data"
            + (
                ": a FormData (or dict) of text values only is sent urlencoded."
                if kind == "application/x-www-form-urlencoded"
                else "."
            ),
        )
    parts = report["parts"]
    by_content = [p for p in parts if p["sha256"] == scenario.sha256]
    documents = [p for p in parts if p["name"] == FORM_FIELD]
    if by_content and all(p["name"] != FORM_FIELD for p in by_content):
        raise table.broken(
            "wrong-field-name",
            f"the file arrived in a part named {by_content[0]['name']!r}; the form expects "
            f"{FORM_FIELD!r}.",
        )
    if not documents:
        names = ", ".join(repr(p["name"]) for p in parts) or "none"
        raise table.broken(
            "wrong-field-name", f"no part was named {FORM_FIELD!r} (parts: {clip(names, 80)})."
        )
    named = [p for p in by_content if p["name"] == FORM_FIELD]
    document = (named or documents)[0]
    if document["filename"] is None:
        raise table.broken(
            "no-filename",
            f"the {FORM_FIELD!r} part arrived as a text field (no filename): the server sees "
            "no file.",
        )
    if document["sha256"] != scenario.sha256:
        _wrong_content(table, "upload_form", scenario, document["size"])
    if document["filename"] != scenario.name:
        raise table.broken(
            "wrong-filename",
            f"the file was sent as {clip(document['filename'], 60)!r}; its own name is "
            f"{scenario.name!r}.",
        )
    _judge_fields(call, scenario, parts)


def _judge_fields(call: Call, scenario: Scenario, parts: list[dict[str, Any]]) -> None:
    table = UPLOAD_FORM
    texts = {p["name"]: p["value"] for p in parts if p["filename"] is None}
    files = {p["name"]: p for p in parts if p["filename"] is not None}
    for key, value in scenario.fields.items():
        if texts.get(key) == value:
            continue
        if key in files:
            raise table.broken(
                "field-not-text",
                f"the field {key!r} arrived as a file part (filename "
                f"{clip(str(files[key]['filename']), 30)!r}), not as a text field.",
            )
        if key in call.received.query:
            raise table.broken(
                "missing-field",
                f"the field {key!r} came in the URL's query string, not in the form.",
                "add every entry of `fields` to the FormData (`aiohttp.FormData(fields)`), "
                "not to `params=`.",
            )
        if key in texts:
            raise table.broken(
                "missing-field",
                f"the field {key!r} arrived as {clip(repr(texts[key]), 50)}, expected "
                f"{value!r}.",
            )
        raise table.broken(
            "missing-field",
            f"the field {key!r} of `fields` ({plural(len(scenario.fields), 'field')}) never "
            "arrived.",
        )


# --- Task 2: upload_large ------------------------------------------------------------------

UPLOAD_LARGE = Task(
    "upload_large",
    _rule_own_session(),
    _rule_text_mode(),
    Rule(
        "wrong-content",
        "POSTs the file at `path` as the request body",
        "the size and SHA-256 the server computed, on two files whose sizes are no multiple "
        "of any chunk size",
        "send every byte of the file, opened in binary mode, from its start to its end "
        "(the last chunk is shorter).",
    ),
    _rule_wrong_return(),
    Rule(
        "whole-file-in-memory",
        "memory ... must stay below half the file's size",
        "tracemalloc's peak of Python's memory while the function ran",
        "never read the file whole (`read()` without a size, `read_bytes()`): pass the open "
        "file as `data=file`, or an async generator that yields chunks.",
    ),
    Rule(
        "blocked-loop",
        "no more than 1 MiB of the file may be read on the event loop's thread",
        "the file reads made on the loop's thread, with their bytes and your line",
        "pass the open file to aiohttp (`data=file`), which reads it in a worker thread, or "
        "read each chunk with `await asyncio.to_thread(file.read, size)`.",
    ),
    Rule(
        "file-left-open",
        "the file is closed when your function returns",
        "the process's open files after the call, and Python's 'unclosed file' warning",
        CLOSED_HINT + " In an async generator, put the `with` inside it.",
    ),
    _rule_left_open_on_error(STREAM_FAILURES),
    _rule_error_swallowed(STREAM_FAILURES),
)
LARGE_SIZES = (12 * 2**20 + 12_345, 7 * 2**20 + 777)


def _binary(rng: random.Random, size: int) -> bytes:
    return b"\x89BIN\r\n\x1a\n" + rng.randbytes(size - 8)


def _failing_scenarios(rng: random.Random) -> list[Scenario]:
    """A drop after ABORT_AT of a 3 MiB body, and a session closed before anything is sent."""
    dropped = Scenario(f"cut-{rng.getrandbits(24):06x}.bin", _binary(rng, 3 * 2**20 + 3),
                       abort_at=ABORT_AT, fails="dropped")  # fmt: skip
    early = Scenario(f"early-{rng.getrandbits(24):06x}.bin", _binary(rng, 70_001),
                     fails="closed-session")  # fmt: skip
    return [dropped, early]


@check(UPLOAD_LARGE, timeout=20)
async def upload_large(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_large(session, url, path)`` streams a large file in bounded memory."""
    rng = random.Random(f"{SEED}-upload_large")
    for size in LARGE_SIZES:
        scenario = Scenario(f"large-{rng.getrandbits(24):06x}.bin", _binary(rng, size))
        call = await _run("upload_large", learner, scenario, spy, memory=True)
        _judge_streamed(UPLOAD_LARGE, "upload_large", call, scenario)
    for failing in _failing_scenarios(rng):
        await _judge_failed_upload(UPLOAD_LARGE, "upload_large", learner, failing, spy)
    return (
        f"two files ({', '.join(f'{s / 2**20:.1f} MiB' for s in LARGE_SIZES)}) arrived whole, "
        "in bounded memory, read off the event loop, and closed; a dropped connection "
        "raised, with the file closed."
    )


def _judge_streamed(table: Task, task: str, call: Call, scenario: Scenario) -> None:
    _judge_common(table, task, call, scenario)
    _judge_bytes(table, task, call, scenario)
    if call.peak > scenario.size // 2:
        held = "the whole file" if call.peak >= scenario.size else "more than half the file"
        raise table.broken(
            "whole-file-in-memory",
            f"memory peaked at {call.peak / 2**20:.1f} MiB for {scenario.label}: {held} was "
            "held in memory at once (read whole, or in chunks that large).",
        )
    read, os_calls = call.loop_read, call.loop_os_reads
    if read > LOOP_READ_LIMIT or os_calls >= LOOP_OS_READ_CALLS:
        amount = f"{read / 2**20:.1f} MiB of the file" if read else f"{os_calls} os.read() calls"
        raise table.broken(
            "blocked-loop",
            f"{amount} were read on the event loop's thread, at {call.loop_where}: while "
            "each read runs, no other task can.",
        )
    if call.left_open:
        raise table.broken(
            "file-left-open", f"after uploading {scenario.label}, {call.left_open}."
        )


# --- Task 3: upload_with_progress ---------------------------------------------------------

UPLOAD_WITH_PROGRESS = Task(
    "upload_with_progress",
    _rule_own_session(),
    _rule_text_mode(),
    Rule(
        "wrong-content",
        "uploads the file like task 2",
        "the size and SHA-256 the server computed, on files whose sizes are no multiple of "
        "any chunk size",
        "send every byte of the file, opened in binary mode, from its start to its end.",
    ),
    _rule_wrong_return(),
    Rule(
        "whole-file-in-memory",
        "bounded memory: below half the file's size",
        "tracemalloc's peak of Python's memory, on an 8 MiB file",
        "never read the file whole: yield chunks read one at a time, "
        "`await asyncio.to_thread(file.read, size)`.",
    ),
    Rule(
        "blocked-loop",
        "reads off the event loop",
        "the file reads made on the loop's thread, with their bytes and your line",
        "read each chunk with `await asyncio.to_thread(file.read, size)`: a plain "
        "`file.read(size)` in the generator blocks the loop on every chunk.",
    ),
    Rule(
        "file-left-open",
        "the file closed",
        "the process's open files after the call, and Python's 'unclosed file' warning",
        CLOSED_HINT + " In an async generator, put the `with` inside it.",
    ),
    _rule_left_open_on_error(STREAM_FAILURES),
    _rule_error_swallowed(STREAM_FAILURES),
    Rule(
        "too-few-progress-calls",
        "calls `on_progress(sent, total)` as the upload goes (at least 4 times), not only "
        "at the end",
        "the calls made, and how many came while bytes were still being handed to aiohttp",
        "call it after each chunk you hand to aiohttp (an async generator passed as "
        "`data=`), not once the upload is over.",
    ),
    Rule(
        "arguments-swapped",
        "`on_progress(sent, total)`",
        "the first argument stayed at the file's size while the second rose",
        "the bytes sent so far come first, the file's size second: "
        "`on_progress(sent, total)`.",
    ),
    Rule(
        "wrong-total",
        "`total` the file's size",
        "the second argument of every call, compared with the file's size",
        "take the total from `os.path.getsize(path)` before the upload starts.",
    ),
    Rule(
        "progress-not-cumulative",
        "`sent` is the number of bytes sent so far",
        "the first argument of each call: it must never go down",
        "keep a running total (`sent += len(chunk)`) and pass it, not each chunk's size.",
    ),
    Rule(
        "progress-overcounted",
        "`sent` is the number of bytes sent so far; the last call says `sent == total`",
        "files whose size is no multiple of any chunk size: `sent` must never pass the "
        "file's size",
        "add `len(chunk)`, not the chunk size you asked for: the last chunk is shorter.",
    ),
    Rule(
        "progress-ahead",
        "after each chunk is handed to aiohttp",
        "at each call, the bytes aiohttp had been handed so far (the session's "
        "on_request_chunk_sent trace): `sent` must not be ahead of them",
        "yield the chunk first, then count it and call on_progress: code after `yield` "
        "runs once aiohttp has taken the chunk and asks for the next.",
    ),
    Rule(
        "progress-incomplete",
        "the last call says `sent == total`",
        "the first argument of the last call, compared with the file's size",
        "count every chunk, the last (shorter) one too, and call on_progress after it.",
    ),
)
PROGRESS_SIZES = (3 * 2**20 + 4_321, 8 * 2**20 + 1)


@check(UPLOAD_WITH_PROGRESS, timeout=15)
async def upload_with_progress(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``upload_with_progress(session, url, path, on_progress)`` reports bytes sent so far."""
    rng = random.Random(f"{SEED}-upload_with_progress")
    task, table = "upload_with_progress", UPLOAD_WITH_PROGRESS
    for index, size in enumerate(PROGRESS_SIZES):
        scenario = Scenario(
            f"progress-{rng.getrandbits(24):06x}.bin",
            _binary(rng, size),
            rate=THROTTLE_BYTES_PER_SECOND if index == 0 else None,
        )
        calls: list[tuple[Any, ...]] = []
        call = await _run(
            task, learner, scenario, spy, memory=index == 1, on_progress=_recorder(calls)
        )
        _judge_streamed(table, task, call, scenario)
        _judge_progress(calls, call.handed, scenario, throttled=index == 0)
    for failing in _failing_scenarios(rng):
        await _judge_failed_upload(
            table, task, learner, failing, spy, on_progress=_recorder([])
        )
    return (
        "two files (3 MiB on a slow server, 8 MiB) arrived whole, in bounded memory, read off "
        "the loop and closed; progress rose with what aiohttp had been given, up to the "
        "file's size; a dropped connection raised, with the file closed."
    )


def _recorder(calls: list[tuple[Any, ...]]) -> Any:
    def on_progress(*values: Any) -> None:
        calls.append(values)

    return on_progress


def _judge_progress(
    calls: list[tuple[Any, ...]], handed: list[int], scenario: Scenario, *, throttled: bool
) -> None:
    table, total = UPLOAD_WITH_PROGRESS, scenario.size
    during = sum(1 for count in handed if count < total)
    too_few = len(calls) < MIN_PROGRESS_CALLS or during < MIN_CALLS_DURING_UPLOAD
    if not calls or (throttled and too_few):
        when = f", {during} of them while the upload ran" if calls else ""
        raise table.broken(
            "too-few-progress-calls",
            f"on_progress was called {plural(len(calls), 'time')}{when}, for "
            f"{scenario.label}; a bar would jump instead of filling.",
        )
    if any(len(values) != 2 for values in calls):
        raise table.broken(
            "wrong-total",
            f"on_progress was called with {len(calls[0])} arguments; expected (sent, total).",
        )
    sent = [values[0] for values in calls]
    totals = [values[1] for values in calls]
    if len(set(sent)) == 1 and sent[0] == total and len(set(totals)) > 1:
        raise table.broken(
            "arguments-swapped",
            f"on_progress got ({total}, …) every time, with the second value rising: the "
            "arguments are swapped.",
        )
    wrong = [t for t in totals if t != total]
    if wrong:
        raise table.broken(
            "wrong-total",
            f"on_progress was given a total of {clip(repr(wrong[0]), 30)}; {scenario.label} "
            f"has {total} bytes.",
        )
    if not all(isinstance(value, int) for value in sent):
        raise table.broken(
            "progress-not-cumulative",
            f"on_progress's first argument was {clip(repr(sent[0]), 40)}, not a byte count.",
        )
    if any(later < earlier for earlier, later in itertools.pairwise(sent)) or (
        len(sent) > 1 and len(set(sent)) == 1 and sent[0] < total
    ):
        raise table.broken(
            "progress-not-cumulative",
            f"on_progress's first argument went {', '.join(map(str, sent[:4]))}…: each "
            "chunk's size, not the bytes sent so far.",
        )
    over = [value for value in sent if value > total]
    if over:
        raise table.broken(
            "progress-overcounted",
            f"on_progress said {over[0]:,} bytes sent of a file of {total:,}: a chunk was "
            "counted bigger than it was (the last one is shorter).",
        )
    ahead = [(value, given) for value, given in zip(sent, handed, strict=False) if value > given]
    if ahead:
        value, given = ahead[0]
        raise table.broken(
            "progress-ahead",
            f"on_progress said {value:,} bytes sent when aiohttp had been handed {given:,}: "
            "a chunk was reported before it was handed over.",
        )
    if sent[-1] != total:
        raise table.broken(
            "progress-incomplete",
            f"the last call said {sent[-1]:,} bytes sent; {scenario.label} has {total:,}.",
        )
