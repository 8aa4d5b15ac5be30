"""Run the course server in a background thread, so a notebook (or a test) can call it.

The server gets its own thread and its own event loop: a cell that blocks the notebook's loop
cannot freeze it, and ``start_server()`` works the same in a notebook, a script or a test.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import threading
from types import TracebackType

from aiohttp import web

from . import hardening
from .app import create_app
from .stats import ServerStats, StatsSnapshot

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0
# How long stop() lets requests still in flight finish before closing their connections.
SHUTDOWN_GRACE_SECONDS = 0.5

_live_servers: set[LocalServer] = set()
_live_lock = threading.Lock()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: addresses other machines cannot reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(host: str, port: int) -> str:
    """``http://host:port`` without a trailing slash; an IPv6 address goes in brackets."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class LocalServer:
    """A running course server: its ``url``, its ``stats()``, and ``stop()``."""

    def __init__(
        self, host: str, port: int, seed: int | None, limits: hardening.Limits
    ) -> None:
        self._requested = (host, port)
        self._limits = limits
        self._stats = ServerStats()
        self._app = create_app(stats=self._stats, seed=seed)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self._app, **hardening.runner_options(limits))
        self._thread = threading.Thread(target=self._serve, name="local_server", daemon=True)
        self.host = host
        self.port = 0

    def _serve(self) -> None:
        """The thread's body: run the loop until stop(), then close it here, in its own thread."""
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # Handlers whose client has gone are no longer awaited by aiohttp
            # (aio-libs/aiohttp#7551): cancel them here, or asyncio logs them as destroyed.
            leftovers = asyncio.all_tasks(self._loop)
            for task in leftovers:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def _start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._bind(), self._loop)
        try:
            self.port = future.result(timeout=START_TIMEOUT_SECONDS)
        except BaseException:
            self._shut_loop()
            raise

    async def _bind(self) -> int:
        await self._runner.setup()
        hardening.install(self._runner, self._limits)
        site = web.TCPSite(self._runner, *self._requested)
        await site.start()
        return site.port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: ``server.url + "/get"``."""
        return base_url(self.host, self.port)

    @property
    def thread_ident(self) -> int | None:
        """The identifier of the server's own thread."""
        return self._thread.ident

    @property
    def running(self) -> bool:
        """True until ``stop()``."""
        return self._thread.is_alive()

    def stats(self) -> StatsSnapshot:
        """A copy of what the server has seen since it started or was last reset."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and restart the timeline's clock."""
        self._stats.reset()

    def stop(self) -> None:
        """Close the listening socket and every connection, then end the thread. Idempotent."""
        with _live_lock:
            _live_servers.discard(self)
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            future.result(timeout=SHUTDOWN_GRACE_SECONDS + 5)
        finally:
            self._shut_loop()

    def _shut_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalServer {self.url} {state}>"


def start_server(
    host: str = LOOPBACK,
    port: int = 0,
    *,
    seed: int | None = None,
    keepalive: float = hardening.Limits.keepalive,
) -> LocalServer:
    """Start the course server in a background thread and return its handle.

    ``port=0`` (the default) lets the operating system pick a free port, so notebooks and
    tests running at the same time never collide. ``keepalive`` is how long the server keeps
    an idle connection open (shorter than aiohttp's client, 15 s, shows a stale connection).
    The server stops at ``stop()``, at the end of a ``with`` block, or when the Python process
    (the kernel) exits.
    """
    limits = hardening.Limits(keepalive=keepalive, shutdown=SHUTDOWN_GRACE_SECONDS)
    server = LocalServer(host, port, seed, limits)
    server._start()
    with _live_lock:
        _live_servers.add(server)
    return server


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server.stop()
