"""What the learner's code did while a check ran it, seen from outside, whatever API it used.

An ``Observation`` is made for every check and filled while the learner's code runs on the
check's own thread and event loop:

- **blocking calls on the loop's thread**, seen by a profile hook on that thread: ``time.sleep``,
  an operation on a blocking socket (``requests``, ``urllib``), and file reads and writes
  (``open().write``, ``os.write``, ``Path.write_bytes``...), each with its duration, bytes and
  the learner's line. Work done in another thread (``asyncio.to_thread``, an executor) is not
  on the loop's thread and is not counted;
- **stalls**: a ticking task measures the loop's lag, and a watchdog samples the learner's line
  while the loop stands still;
- **sleeps the code asked for**: every ``asyncio.sleep(delay)`` from learner code, with its
  delay and when it was asked, recorded by the check's event loop itself, so backoff and
  ``Retry-After`` are judged from what was asked, not from wall-clock gaps a loaded machine
  stretches;
- **files**: every file opened for writing, renamed or removed by learner code on any thread
  (an audit hook), so a leftover temporary file is found wherever it was made.

``current()`` gives the running check's observation; ``obs.window()`` collects one call's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import sys
import sysconfig
import threading
import time
from asyncio import futures
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .evidence import LearnerLine, learner_line_of_frame

TICK_SECONDS = 0.01
# A loop that has not ticked for this long is sampled: where is the learner's code?
STALL_SAMPLE_SECONDS = 0.15

_FILE_TYPES = (io.FileIO, io.BufferedWriter, io.BufferedReader, io.BufferedRandom, io.TextIOWrapper)
_FILE_METHODS = frozenset(
    {"write", "writelines", "flush", "read", "readinto", "readline", "readlines"}
)
# flush() writes what a buffered file holds: disk I/O on the loop's thread too.
_WRITE_METHODS = frozenset({"write", "writelines", "flush"})
_OS_FILE_CALLS = {
    os.write: "os.write",
    os.read: "os.read",
    os.fsync: "os.fsync",
    getattr(os, "pwrite", os.write): "os.pwrite",
    getattr(os, "pread", os.read): "os.pread",
}
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_SOCKET_METHODS = frozenset(
    {"recv", "recv_into", "recvfrom", "send", "sendall", "sendto", "connect", "accept"}
)


@dataclass
class BlockingCall:
    """Calls of one kind from one learner line on the loop's thread, added up."""

    kind: str  # "time.sleep", "socket", "lock-wait", "file-write", "file-read"
    target: str  # the file's name, the socket's peer, or the function
    where: LearnerLine | None
    calls: int = 0
    seconds: float = 0.0
    bytes: int = 0

    def describe(self) -> str:
        what = {
            "time.sleep": f"time.sleep() blocked for {self.seconds:.2f} s",
            "socket": f"a blocking socket call ({self.target})"
            + (f" took {self.seconds:.2f} s" if self.seconds >= 0.01 else ""),
            "lock-wait": f"waiting on a thread lock (threading.Event.wait(), a future's "
            f".result()?) held the loop for {self.seconds:.2f} s",
            "file-write": f"{self.calls} file write(s) to {os.path.basename(self.target)!r}",
            "file-read": f"{self.calls} file read(s) of {os.path.basename(self.target)!r}",
        }[self.kind]
        return f"{what} at {self.where}" if self.where else what


@dataclass(frozen=True)
class Sleep:
    """One ``asyncio.sleep(delay)`` learner code asked for, at loop time ``at``, in ``task``."""

    delay: float
    at: float
    where: LearnerLine | None
    task: asyncio.Task[Any] | None = None


@dataclass(frozen=True)
class FileEvent:
    """A file opened for writing, renamed or removed by learner code."""

    action: str  # "open-write", "open-read", "rename", "remove"
    path: str
    target: str | None
    on_loop_thread: bool
    where: LearnerLine | None


@dataclass
class Stall:
    """A time the loop stood still, the learner line it stood on, and whether that was the
    code's doing: ``busy`` when the loop's thread ran on the CPU most of the time (a busy
    loop) or sat in a blocking call; a thread the machine's load merely kept waiting is not."""

    seconds: float
    where: LearnerLine | None
    busy: bool = True
    # The loop thread's CPU seconds in the stretch (None: unknown), and whether it sat in a
    # blocking call when last sampled.
    cpu: float | None = None
    blocking: bool = False


@dataclass
class Observation:
    """Everything seen while one check ran; windows give one call's share."""

    loop_thread: int
    blocking: dict[tuple, BlockingCall] = field(default_factory=dict)
    sleeps: list[Sleep] = field(default_factory=list)
    files: list[FileEvent] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    last_tick: float = field(default_factory=time.perf_counter)
    # The loop thread's CPU time at its last tick, to tell a busy stall from a starved one.
    tick_cpu: float = 0.0
    max_lag: float = 0.0
    # The blocking call under way on the loop's thread: (kind, started, caller, function).
    in_call: tuple[str, float, FrameType, Any] | None = None
    on_sleep: list[Callable[[Sleep], None]] = field(default_factory=list)
    # Threads whose file events are never the learner's: the course server's own.
    quiet_threads: set[int] = field(default_factory=set)
    # What would have reached stderr so far (a ``quiet.Quiet``): warnings, log records.
    quiet: Any = None
    active: bool = False

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        """Collect what happens inside the block into a ``Window``."""
        window = Window(self)
        try:
            yield window
        finally:
            window.close()

    def lag(self) -> float:
        """The longest the loop has stood still, the stretch going on now included."""
        return max(self.max_lag, time.perf_counter() - self.last_tick - TICK_SECONDS)

    def blocking_calls(self, *kinds: str) -> list[BlockingCall]:
        """The learner's blocking calls on the loop's thread, of these kinds (default: all)."""
        return [
            call
            for call in self.blocking.values()
            if call.where is not None and (not kinds or call.kind in kinds)
        ]


class Window:
    """One stretch of an ``Observation``: the sleeps, files and stalls inside it."""

    def __init__(self, observation: Observation) -> None:
        self._observation = observation
        self._start = (len(observation.sleeps), len(observation.files), len(observation.stalls))
        self._end: tuple[int, int, int] | None = None

    def close(self) -> None:
        obs = self._observation
        self._end = (len(obs.sleeps), len(obs.files), len(obs.stalls))

    def _slice(self, items: list[Any], index: int) -> list[Any]:
        end = None if self._end is None else self._end[index]
        return items[self._start[index] : end]

    @property
    def sleeps(self) -> list[Sleep]:
        return self._slice(self._observation.sleeps, 0)

    @property
    def files(self) -> list[FileEvent]:
        return self._slice(self._observation.files, 1)

    @property
    def stalls(self) -> list[Stall]:
        return self._slice(self._observation.stalls, 2)


# The observations of the checks running now, by their loop's thread: one, unless a check's
# thread was stopped and has not ended yet. Work in other threads goes to the newest.
_running: dict[int, Observation] = {}


def current() -> Observation:
    """The observation of the check that is running now."""
    obs = current_or_none()
    if obs is None:
        raise RuntimeError("no check is running")
    return obs


def current_or_none() -> Observation | None:
    """The running check's observation (this thread's, else the newest), or None."""
    obs = _running.get(threading.get_ident())
    if obs is None and _running:
        obs = next(reversed(_running.values()))
    return obs


# --- the profile hook on the loop's thread -----------------------------------------------


def _classify(function: Any) -> tuple[str, str] | None:
    """(kind, target) when ``function`` is a blocking call worth recording, else None."""
    if function is time.sleep:
        return "time.sleep", "time.sleep"
    name = _OS_FILE_CALLS.get(function)
    if name is not None:
        return ("file-write" if "write" in name else "file-read"), name
    owner = getattr(function, "__self__", None)
    if owner is None:
        return None
    method = getattr(function, "__name__", "")
    if isinstance(owner, _FILE_TYPES) and method in _FILE_METHODS:
        path = getattr(owner, "name", None)
        if not isinstance(path, str) or path.startswith("<"):
            return None  # a standard stream, not a file on disk
        return ("file-write" if method in _WRITE_METHODS else "file-read"), path
    if isinstance(owner, _LOCK_TYPES) and method == "acquire":
        return "lock-wait", "a thread lock"
    if isinstance(owner, socket.socket) and method in _SOCKET_METHODS:
        try:
            if owner.gettimeout() == 0.0:
                return None  # asyncio's own non-blocking sockets
        except OSError:
            return None
        return "socket", f"{method}()"
    return None


def _starting_a_worker(frame: FrameType | None) -> bool:
    """Whether a lock is taken by an executor starting a thread for ``run_in_executor`` or
    ``to_thread``: ``Thread.start()`` waits for the new thread to run, which a loaded machine
    can stretch to a fraction of a second, and that is no blocking call of the learner's."""
    for _ in range(8):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name in ("_adjust_thread_count", "submit") and code.co_filename.endswith(
            os.path.join("concurrent", "futures", "thread.py")
        ):
            return True
        frame = frame.f_back
    return False


def _tell(function: Any) -> int | None:
    owner = getattr(function, "__self__", None)
    if isinstance(owner, _FILE_TYPES):
        with contextlib.suppress(OSError, ValueError):
            return owner.tell()
    return None


class _Profiler:
    """``sys.setprofile`` hook recording blocking C calls made on the loop's thread."""

    def __init__(self, observation: Observation) -> None:
        self.obs = observation
        self._pending: tuple[Any, str, str, FrameType, float, int | None] | None = None

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            kind = _classify(arg)
            if kind is not None and not (kind[0] == "lock-wait" and _starting_a_worker(frame)):
                started = time.perf_counter()
                self._pending = (arg, *kind, frame, started, _tell(arg))
                self.obs.in_call = (kind[0], started, frame, arg)
        elif event in ("c_return", "c_exception") and self._pending is not None:
            function, kind, target, caller, started, position = self._pending
            # Python 3.12+ binds a method afresh for each event: the same call, another object.
            if function is not arg and function != arg:
                return
            self._pending = None
            self.obs.in_call = None
            self._record(kind, target, caller, time.perf_counter() - started, position, arg)

    def _record(
        self,
        kind: str,
        target: str,
        caller: FrameType,
        seconds: float,
        position: int | None,
        function: Any,
    ) -> None:
        where = learner_line_of_frame(caller)
        key = (kind, target, where)
        call = self.obs.blocking.get(key)
        if call is None:
            call = self.obs.blocking[key] = BlockingCall(kind, target, where)
        call.calls += 1
        call.seconds += seconds
        if position is not None:
            after = _tell(function)
            if after is not None:
                call.bytes += max(0, after - position)


# --- the event loop that records sleeps --------------------------------------------------


class RecordingLoop(asyncio.SelectorEventLoop):
    """An event loop that notes every ``asyncio.sleep`` learner code asks for.

    ``asyncio.sleep(delay)`` schedules ``futures._set_result_unless_cancelled`` with
    ``call_later``; the delay and the learner's line are recorded, nothing else changes.
    """

    observation: Observation | None = None

    def call_later(self, delay: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        # Recorded here, with the delay exactly as asked: call_at sees it only as a deadline.
        self._note_sleep(delay, callback)
        return super().call_at(self.time() + delay, callback, *args, **kwargs)

    def call_at(self, when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        self._note_sleep(when - self.time(), callback)
        return super().call_at(when, callback, *args, **kwargs)

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:
        # Work handed to a thread (asyncio.to_thread, run_in_executor) is the learner's when
        # the learner's code handed it over: files it opens there are charged to that line.
        where = learner_line_of_frame(sys._getframe(1)) if self.observation else None
        if where is None:
            return super().run_in_executor(executor, func, *args)

        def on_behalf_of_the_learner(*call_args: Any) -> Any:
            _submitted.where = where
            try:
                return func(*call_args)
            finally:
                _submitted.where = None

        return super().run_in_executor(executor, on_behalf_of_the_learner, *args)

    def _note_sleep(self, delay: float, callback: Any) -> None:
        obs = self.observation
        if obs is None or callback is not futures._set_result_unless_cancelled:
            return
        where = learner_line_of_frame(sys._getframe(2))
        if where is None:
            return
        sleep = Sleep(max(0.0, delay), self.time(), where, asyncio.current_task(self))
        obs.sleeps.append(sleep)
        for listener in list(obs.on_sleep):
            listener(sleep)


# --- files, from an audit hook ----------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


_in_audit = threading.local()
# In a worker thread running work the learner's code handed over: the learner's line.
_submitted = threading.local()
# Reads of these are Python importing modules, never the learner's file I/O.
_IMPORT_PLACES = tuple(
    {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _is_import(path: str, args: tuple[Any, ...]) -> bool:
    """A module file Python reads while importing (a .pyc, a stdlib or package source)."""
    mode, flags = args[1], args[2]
    writing = bool(set(mode or "") & set("wax+")) or bool((flags or 0) & _WRITE_FLAGS)
    return not writing and (path.endswith((".pyc", ".py")) or path.startswith(_IMPORT_PLACES))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _running or event not in ("open", "os.rename", "os.remove"):
        return
    obs = current_or_none()
    if obs is None:
        return
    if getattr(_in_audit, "busy", False):
        return
    _in_audit.busy = True
    try:
        _record_file_event(obs, event, args)
    finally:
        _in_audit.busy = False


def _record_file_event(obs: Observation, event: str, args: tuple[Any, ...]) -> None:
    thread = threading.get_ident()
    if thread in obs.quiet_threads:
        return
    path = args[0]
    if isinstance(path, int) or path is None:
        return
    where = learner_line_of_frame(sys._getframe(2)) or getattr(_submitted, "where", None)
    if where is None:
        return
    path = os.path.abspath(os.fsdecode(path))
    if event == "open" and _is_import(path, args):
        return
    target = None
    if event == "open":
        mode, flags = args[1], args[2]
        writing = bool(set(mode or "") & set("wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        action = "open-write" if writing else "open-read"
    elif event == "os.rename":
        action, target = "rename", os.path.abspath(os.fsdecode(args[1]))
    else:
        action = "remove"
    obs.files.append(FileEvent(action, path, target, thread == obs.loop_thread, where))


_audit_installed = False


def _install_audit_hook() -> None:
    global _audit_installed
    if not _audit_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed: it does nothing between checks
        _audit_installed = True


# --- the ticker and the watchdog's sampling ---------------------------------------------


async def _tick(observation: Observation) -> None:
    while True:
        now = time.perf_counter()
        observation.max_lag = max(observation.max_lag, now - observation.last_tick - TICK_SECONDS)
        observation.last_tick = now
        observation.tick_cpu = time.thread_time()
        await asyncio.sleep(TICK_SECONDS)


# The share of a stall the loop's thread must have spent on the CPU for it to be the code's.
BUSY_SHARE = 0.25
BLOCKING_KINDS = frozenset({"time.sleep", "socket", "lock-wait"})


def thread_cpu_seconds(ident: int) -> float | None:
    """CPU time used so far by the thread ``ident`` (a ``threading.get_ident()``), if known."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError):  # no per-thread clock here (Windows): ask the system
        pass
    thread = next((t for t in threading.enumerate() if t.ident == ident), None)
    native = getattr(thread, "native_id", None)
    try:
        import psutil

        for info in psutil.Process().threads():
            if info.id == native:
                return info.user_time + info.system_time
    except Exception:  # psutil missing or the thread gone: unknown
        return None
    return None


def sample_stall(observation: Observation) -> Stall | None:
    """Called by the watchdog: if the loop stands still, note where the learner's code is."""
    standing = time.perf_counter() - observation.last_tick
    if standing < STALL_SAMPLE_SECONDS:
        return None
    frame = sys._current_frames().get(observation.loop_thread)
    where = learner_line_of_frame(frame)
    in_call = observation.in_call
    now_cpu = thread_cpu_seconds(observation.loop_thread)
    cpu = None if now_cpu is None else now_cpu - observation.tick_cpu
    blocking = in_call is not None and in_call[0] in BLOCKING_KINDS
    busy = blocking or cpu is None or cpu >= BUSY_SHARE * standing
    last = observation.stalls[-1] if observation.stalls else None
    if last is not None and last.where == where and standing > last.seconds:
        last.seconds, last.busy, last.cpu, last.blocking = standing, busy, cpu, blocking
    else:
        observation.stalls.append(Stall(standing, where, busy, cpu, blocking))
    return observation.stalls[-1]


@contextlib.contextmanager
def observing(observation: Observation) -> Iterator[None]:
    """Make ``observation`` current and fill it while the block runs on the loop's thread."""
    _install_audit_hook()
    loop = asyncio.get_running_loop()
    if isinstance(loop, RecordingLoop):
        loop.observation = observation
    ticker = loop.create_task(_tick(observation), name="check-ticker")
    previous_profile = sys.getprofile()
    sys.setprofile(_Profiler(observation))
    _running[observation.loop_thread] = observation
    observation.active = True
    observation.last_tick = time.perf_counter()
    observation.tick_cpu = time.thread_time()
    try:
        yield
    finally:
        observation.active = False
        _running.pop(observation.loop_thread, None)
        sys.setprofile(previous_profile)
        ticker.cancel()
        if isinstance(loop, RecordingLoop):
            loop.observation = None
