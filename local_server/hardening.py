"""Bounds that keep one course server usable by a whole room, whatever a client sends.

- **Connections**: at most ``per_client`` open at once from one address and ``total`` in all;
  one over either cap is closed at once. An idle keep-alive connection, or one that has not
  finished sending a request's headers, is closed after ``keepalive`` seconds (aiohttp's own
  keep-alive timer runs from the connection's start and from each response, and partial
  headers do not reset it).
- **Compressed bodies left unread**: aiohttp reads ("lingers" on) what a handler left of a
  body so the connection can be reused, inflating a compressed one as it goes: a 1 MB gzip
  body that expands to 1 GiB costs seconds of CPU after its 413. A response to such a request
  is sent, then the connection is closed instead.
- **Log lines**: a request aiohttp's parser rejects (or a client that vanished mid-answer) is
  logged as one short WARNING line, at most once a second with a count of those left out,
  not as an ERROR with a traceback: an easy log flood otherwise.

``runner_options(limits)`` gives the ``AppRunner`` keyword arguments, ``install(runner, limits)``
the connection caps once the runner is set up.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import send_then_close

# The logger of the course server's HTTP connections (aiohttp's is "aiohttp.server").
HTTP_LOG = logging.getLogger("local_server.http")
# At most one tamed line this often; the lines left out are counted into the next.
LOG_INTERVAL_SECONDS = 1.0
IDENTITY = {"", "identity"}
# A log record with this attribute set is rate-limited like a tamed parser error.
RATE_LIMITED = "local_server_rate_limited"


@dataclass(frozen=True)
class Limits:
    """How much one server gives its clients (the CLI's flags set them)."""

    # Longer than aiohttp's client keeps an idle connection (15 s), so a client never reuses
    # one the server is closing; also how long a client may take to send a request's headers.
    keepalive: float = 20.0
    per_client: int = 256
    total: int = 2048
    shutdown: float = 2.0


def runner_options(limits: Limits) -> dict[str, Any]:
    """``AppRunner`` keyword arguments for ``limits``: timers, and the tamed connection log."""
    return {
        "keepalive_timeout": limits.keepalive,
        "shutdown_timeout": limits.shutdown,
        "logger": HTTP_LOG,
        "access_log": None,
    }


class ConnectionCaps:
    """Counts open connections by client address and closes those over the caps."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.by_client: Counter[str] = Counter()
        self.open = 0
        self.refused = 0

    def made(self, transport: Any) -> bool:
        """Count a new connection; False (and the connection closed) if it is over a cap."""
        client = _client_of(transport)
        if self.by_client[client] >= self.limits.per_client or self.open >= self.limits.total:
            self.refused += 1
            HTTP_LOG.warning(
                "refused a connection from %s: %d open from it, %d in all (caps %d and %d)",
                client,
                self.by_client[client],
                self.open,
                self.limits.per_client,
                self.limits.total,
                extra={RATE_LIMITED: True},
            )
            transport.abort()
            return False
        self.by_client[client] += 1
        self.open += 1
        return True

    def lost(self, transport: Any) -> None:
        client = _client_of(transport)
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]
        self.open -= 1


def _client_of(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def install(runner: web.AppRunner, limits: Limits) -> ConnectionCaps:
    """Put the connection caps on ``runner``'s server (call after ``runner.setup()``)."""
    server = runner.server
    if server is None:
        raise RuntimeError("install() needs a runner that has been set up")
    caps = ConnectionCaps(limits)
    accepted: dict[int, Any] = {}
    original_made, original_lost = server.connection_made, server.connection_lost

    def connection_made(handler: Any, transport: Any) -> None:
        original_made(handler, transport)
        if caps.made(transport):
            accepted[id(handler)] = transport

    def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
        transport = accepted.pop(id(handler), None)
        if transport is not None:
            caps.lost(transport)
        original_lost(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]
    return caps


@web.middleware
async def close_unread_compressed(
    request: web.Request, handler: web.Handler
) -> web.StreamResponse:
    """Send the response, then close, when a compressed body was left partly unread."""
    response = await handler(request)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in IDENTITY or not request.body_exists or request.content.at_eof():
        return response
    if isinstance(response, web.Response) and not response.prepared:
        return await send_then_close(request, response)
    request.protocol.force_close()
    return response


class TameParserErrors(logging.Filter):
    """Turn aiohttp's "Error handling request" traceback for a bad request into one line."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self._last = -float("inf")
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        tamed = isinstance(error, (HttpProcessingError, ConnectionError))
        if not tamed and not getattr(record, RATE_LIMITED, False):
            return True  # anything else is a bug worth its traceback
        now = time.monotonic()
        if now - self._last < self.interval:
            self.left_out += 1
            return False
        self._last = now
        more = f" (and {self.left_out} more since the last line)" if self.left_out else ""
        self.left_out = 0
        if tamed:
            reason = getattr(error, "message", "") or str(error) or type(error).__name__
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed request from %s: %s"
            record.args = (peer, " ".join(str(reason).split())[:160])
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = f"{record.msg}{more}"
        return True


TAMER = TameParserErrors()
if not any(isinstance(f, TameParserErrors) for f in HTTP_LOG.filters):
    HTTP_LOG.addFilter(TAMER)
