"""Run a server in a child process for the length of an ``async with``, and leave nothing behind.

Lesson 20 runs an app the way production does: a script that calls ``web.run_app``, and
gunicorn with aiohttp's worker and several worker processes. Each starts on a free port
(``--bind 127.0.0.1:0``, or ``port=0``), and its URL is read back from the line it logs once it
listens::

    async with run_script("shop.py") as server:          # python -u shop.py
        server.url, server.pid, server.started_in         # the port it bound, from its banner
    async with run_gunicorn("shop:create_app", workers=3, cwd=folder) as server:
        server.workers()                                  # the worker processes' PIDs

Leaving the block stops the server however the block ends: SIGTERM (gunicorn forwards it to
its workers), a few seconds' grace, then SIGKILL to the whole process group, so no worker
outlives its master; the pipes are closed and the process is reaped. A server still running
when Python exits (a kernel restart) is killed the same way. Signals and gunicorn are POSIX:
``run_gunicorn`` raises ``PosixOnly`` on Windows, and the lesson's cells say so and skip.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

POSIX = os.name == "posix"
# The line each server logs once it listens, with the URL of the port it bound.
RUN_APP_READY = re.compile(r"Running on (?P<url>https?://\S+)")
GUNICORN_READY = re.compile(r"Listening at: (?P<url>https?://\S+)")
# How long a server may take to listen: generous, so a loaded machine is not a failure.
READY_TIMEOUT_SECONDS = 30.0
# How long a server gets to exit after SIGTERM when its block ends, before SIGKILL.
STOP_GRACE_SECONDS = 5.0
# Lines of output kept per server (the oldest are dropped first).
OUTPUT_LINES = 5000
# Set in every child's environment: tests find any process a notebook left behind by it.
TAG_VARIABLE = "LOCAL_SERVER_PROCESS_TAG"

# On Linux each child is started through this launcher: it asks the kernel to send the child
# SIGTERM if its parent dies (a kernel killed outright cannot run its clean-up), then execs the
# real command, so the child keeps the launcher's PID.
_LINUX_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)  # the parent is already gone\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)

_live: set[ServerProcess] = set()


class PosixOnly(RuntimeError):
    """What needs POSIX signals or fork (gunicorn) was asked for on Windows."""


class ServerFailed(RuntimeError):
    """The server exited, or never said it was listening; ``output`` is what it printed."""

    def __init__(self, message: str, output: str) -> None:
        tail = "\n".join(output.rstrip("\n").splitlines()[-15:])
        super().__init__(f"{message}; it printed:\n{tail}" if tail else message)
        self.output = output


class ServerProcess:
    """A server in a child process: ``url``, ``pid``, ``output``; ``send_signal()``, ``wait()``."""

    def __init__(self, command: Sequence[str], ready: re.Pattern[str] | None) -> None:
        self.command = list(command)
        self.url: str | None = None
        self.started_in: float | None = None  # seconds from spawn to the ready line
        self._ready_pattern = ready
        self._ready: asyncio.Future[str] | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES)
        self._line_seen = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._spawned_at = 0.0

    # --- what a lesson reads ---------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def spawned_at(self) -> float:
        """When the process was started, on the ``time.perf_counter()`` clock."""
        return self._spawned_at

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (``-15`` killed by SIGTERM), else None."""
        return None if self._process is None else self._process.returncode

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr), one string."""
        return "".join(self._lines)

    def lines(self) -> list[str]:
        return [line.rstrip("\n") for line in self._lines]

    def workers(self) -> list[int]:
        """The PIDs of the server's child processes (gunicorn's workers), oldest first."""
        import psutil

        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.pid).children()
            return [child.pid for child in sorted(children, key=lambda c: c.create_time())]
        return []

    def describe(self) -> str:
        """The command line as a shell would show it, with ``python`` for this Python's path."""
        return shlex.join([Path(self.command[0]).name, *self.command[1:]])

    # --- what a lesson does ----------------------------------------------------------------

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the server's main process (gunicorn's master forwards it)."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit (at most ``timeout`` s) and return its status."""
        assert self._process is not None, "not started"
        async with asyncio.timeout(timeout):
            code = await self._process.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=2)
        return code

    async def wait_for_output(
        self, pattern: str | re.Pattern[str], timeout: float
    ) -> re.Match[str]:
        """The first line (old or new) matching ``pattern``; TimeoutError after ``timeout`` s."""
        regex = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                for line in list(self._lines):
                    match = regex.search(line)
                    if match:
                        return match
                if self._reader is None or self._reader.done():
                    raise ServerFailed(
                        f"the server exited without printing {regex.pattern!r}", self.output
                    )
                self._line_seen.clear()
                await self._line_seen.wait()

    # --- lifecycle -------------------------------------------------------------------------

    async def _start(
        self, cwd: str | os.PathLike[str] | None, env: dict[str, str], ready_timeout: float
    ) -> None:
        if self._ready_pattern is not None:
            self._ready = asyncio.get_running_loop().create_future()
        self._spawned_at = time.perf_counter()
        command = self.command
        if sys.platform == "linux":
            command = [sys.executable, "-c", _LINUX_LAUNCHER, str(os.getpid()), *command]
        self._process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=POSIX,  # its own process group: one killpg reaches every worker
        )
        _live.add(self)
        self._reader = asyncio.create_task(self._read())
        if self._ready is None:
            return
        try:
            async with asyncio.timeout(ready_timeout):
                self.url = await self._ready
        except TimeoutError:
            self._ready.cancel()
            raise ServerFailed(
                f"the server did not say it was listening within {ready_timeout:g} s",
                self.output,
            ) from None

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        try:
            while line := await stream.readline():
                text = line.decode("utf-8", "replace")
                self._lines.append(text)
                self._line_seen.set()
                if self._ready is not None and not self._ready.done():
                    assert self._ready_pattern is not None
                    match = self._ready_pattern.search(text)
                    if match:
                        self.started_in = time.perf_counter() - self._spawned_at
                        self._ready.set_result(match.group("url"))
        except ValueError:  # a line over the stream's limit: keep what fits, read on
            self._lines.append("(a line too long to keep)\n")
        finally:
            self._line_seen.set()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    ServerFailed(
                        "the server closed its output (it exited?) before listening", self.output
                    )
                )

    async def stop(self, signum: int = signal.SIGTERM, grace: float = STOP_GRACE_SECONDS) -> int:
        """Send ``signum``, wait ``grace`` s, then kill the whole group; reap; close the pipes."""
        process = self._process
        if process is None:
            return 0
        try:
            if process.returncode is None:
                self.send_signal(signum)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await process.wait()
        finally:
            self._kill_group()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(self._reader)
            self._reader.cancel()
        self._close_pipes()
        _live.discard(self)
        return process.returncode if process.returncode is not None else -signal.SIGKILL

    def _kill_group(self) -> None:
        """SIGKILL every process left in the server's group (workers that outlived the master)."""
        process = self._process
        if process is None:
            return
        if POSIX:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        elif process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def _close_pipes(self) -> None:
        process = self._process
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<ServerProcess {self.url or '(not listening)'} {state}>"


def child_environment(
    extra: dict[str, str] | None = None, *, unbuffered: bool = True
) -> dict[str, str]:
    """This process's environment for a child: unbuffered output unless asked otherwise."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env.update(extra or {})
    return env


@contextlib.asynccontextmanager
async def run_process(
    command: Sequence[str],
    *,
    ready: re.Pattern[str] | None,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    unbuffered: bool = True,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> AsyncIterator[ServerProcess]:
    """Start ``command``; wait for the line ``ready`` matches (its ``url`` group); clean up.

    The block's end stops the process (``stop()``) however it ends; if the block is cancelled
    or interrupted, the group is killed at once, before anything is awaited.
    """
    server = ServerProcess(command, ready)
    try:
        await server._start(cwd, child_environment(env, unbuffered=unbuffered), ready_timeout)
        yield server
    except BaseException:
        server._kill_group()  # first, synchronously: an interrupted cell must not leak
        raise
    finally:
        await server.stop()


def python_command(script: str | os.PathLike[str], *args: str) -> list[str]:
    """``python script args``, with this Python (the kernel's, so the venv's packages)."""
    return [sys.executable, str(script), *args]


def gunicorn_command(
    app: str,
    *,
    workers: int = 2,
    bind: str = "127.0.0.1:0",
    worker_class: str = "aiohttp.GunicornWebWorker",
    options: Sequence[str] = (),
) -> list[str]:
    """``gunicorn APP --worker-class ... --workers N --bind HOST:PORT``, run with this Python.

    ``--no-control-socket``: gunicorn 27 otherwise opens a control socket at one fixed path
    in the home directory, which two servers running at once would fight over.
    """
    return [
        sys.executable, "-m", "gunicorn", app,
        "--worker-class", worker_class,
        "--workers", str(workers),
        "--bind", bind,
        "--no-control-socket",
        *options,
    ]  # fmt: skip


def run_script(
    script: str | os.PathLike[str],
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    unbuffered: bool = True,
    ready: re.Pattern[str] | None = RUN_APP_READY,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """Run a script that serves with ``web.run_app``; its URL comes from run_app's banner."""
    return run_process(
        python_command(script, *args),
        ready=ready,
        cwd=cwd,
        env=env,
        unbuffered=unbuffered,
        ready_timeout=ready_timeout,
    )


def run_gunicorn(
    app: str,
    *,
    workers: int = 2,
    options: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """Run gunicorn with aiohttp's worker on a free loopback port; its URL from its log."""
    if not POSIX:
        raise PosixOnly("gunicorn needs a POSIX system (Linux, macOS, WSL): it forks workers")
    command = gunicorn_command(app, workers=workers, options=options)
    return run_process(
        command, ready=GUNICORN_READY, cwd=cwd, env=env, ready_timeout=ready_timeout
    )


@atexit.register
def _kill_all() -> None:
    for server in list(_live):
        server._kill_group()
