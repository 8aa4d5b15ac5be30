"""Serve any aiohttp application on a free loopback port for the length of an ``async with``.

Lesson 11 writes this out by hand (``AppRunner`` + ``TCPSite``); later lessons and the
server-side checkers reuse it::

    async with serve(app) as url:
        async with aiohttp.ClientSession(url) as session:
            ...

It runs on the caller's event loop (in a notebook: the kernel's), so the application's
``on_startup``, ``cleanup_ctx`` and ``on_cleanup`` run there too, and leaving the block always
cleans the application up, even when the body raised.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager

from aiohttp import web

from .runner import LOOPBACK, SHUTDOWN_GRACE_SECONDS, base_url


@asynccontextmanager
async def serve(
    app: web.Application,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    shutdown_timeout: float = SHUTDOWN_GRACE_SECONDS,
) -> AsyncIterator[str]:
    """Start ``app`` on ``host``/``port`` (0: any free port); yield its base URL; clean up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        # Inside the try: when a start-up step fails, the cleanup contexts that did start
        # are still exited (aiohttp skips on_cleanup then: the app never finished starting).
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield site.name  # http://host:port, the port bound; an IPv6 host in brackets
    finally:
        await runner.cleanup()


@contextmanager
def captured_server_errors(
    names: tuple[str, ...] = ("aiohttp.server", "aiohttp.web"),
) -> Iterator[list[logging.LogRecord]]:
    """Collect what aiohttp logs about failing handlers instead of printing it to stderr.

    An exception that escapes a handler becomes a 500 *and* an "Error handling request" log
    record with its traceback. A checker wants that record as evidence, and a notebook must
    not show it as stray stderr output; this context manager gives both.
    """
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.ERROR)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield records
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


def logged_exceptions(records: Iterable[logging.LogRecord]) -> list[BaseException]:
    """The exceptions that log records carry (a handler's crash, for aiohttp's), oldest first."""
    return [
        record.exc_info[1]
        for record in records
        if record.exc_info and record.exc_info[1] is not None
    ]


def refused_url(path: str = "") -> str:
    """A loopback URL on a port nothing listens on: bind a socket, note its port, close it."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    return base_url(LOOPBACK, port) + path
