"""The course's forward proxy (lesson 17): what a client sends through a proxy, made visible.

In a notebook::

    from local_server.proxy import start_proxy

    proxy = start_proxy()                        # a free port on 127.0.0.1, in a background thread
    proxy.url                                    # 'http://127.0.0.1:PORT': pass it as proxy=
    async with session.get(server.url + "/get", proxy=proxy.url) as response: ...
    proxy.stats().records                        # what passed through, one record a request
    proxy.stop()                                 # or leave it: it stops when the kernel exits

It speaks HTTP/1.1 as a forward proxy does:

- a plain-HTTP request in **absolute form** (``GET http://127.0.0.1:8080/get HTTP/1.1``) is
  forwarded to the origin, with the hop-by-hop headers (``Connection``, ``Proxy-*``...)
  removed and a ``Via: 1.1 course-proxy`` header added, as RFC 9110 asks of a proxy: the
  proxy sees (and records) the whole request;
- ``CONNECT host:port`` opens a **tunnel**: the proxy answers 200 and relays bytes both ways
  without reading them, so for HTTPS it sees only the host and the port;
- ``start_proxy(auth=("user", "password"))`` asks for Basic proxy credentials: a request
  without them gets **407** with ``Proxy-Authenticate: Basic realm="course proxy"``;
- ``start_proxy(intercept=True, upstream_cafile=...)`` **intercepts** TLS, as corporate
  proxies do: it answers the CONNECT, then completes the TLS handshake itself with a
  certificate for the requested host signed by its own CA (``proxy.ca_pem``, made by
  ``trustme`` at start-up), decrypts each request, records it, and forwards it to the origin
  over a new TLS connection that it verifies against ``upstream_cafile``. A client that does
  not trust ``proxy.ca_pem`` refuses the proxy's certificate and sends nothing.

Every record (``ProxyRecord``) says what passed through: the kind (``http``, ``connect``,
``intercepted``), the method, the absolute URL or ``host:port``, the status the proxy
answered, the bytes each way, the client connection, the request's headers as the proxy
received them, whether it carried valid proxy credentials, and why it was refused, if it was.

**Never an open proxy.** It listens on loopback only and forwards only to loopback addresses
(``127.0.0.0/8``, ``::1`` and the name ``localhost``, looked up locally and checked again):
anything else gets a JSON **403** and one log line on ``local_server.proxy`` (at most one a
second; the lines left out are counted into the next), and a request aimed at the proxy
itself too. No other name is ever looked up. It is bounded: ``ProxyLimits`` caps the
connections open at once (more are answered 503), the size of a request's head (431), a
body or a tunnel's bytes each way, the time to send a request's head, to reach the origin
(504) and to answer, and the time a tunnel or a keep-alive connection may stay idle. Errors
are JSON ``{"error", "detail"}`` with the right status, never a traceback in a log.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any

import trustme
from yarl import URL

from .runner import LOOPBACK, START_TIMEOUT_SECONDS, base_url, is_loopback

LOG = logging.getLogger("local_server.proxy")
LOG.addHandler(logging.NullHandler())  # a notebook shows nothing unless logging is configured
REALM = "course proxy"
VIA = "1.1 course-proxy"
CA_NAME = "aiohttp course intercepting proxy CA"
# Request and response headers a proxy consumes, never forwards (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
LOG_INTERVAL_SECONDS = 1.0
HEADER_VALUE_LIMIT = 300  # a recorded header value is cut to this many characters

_live_proxies: set[ProxyServer] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class ProxyLimits:
    """How much the proxy gives its clients."""

    connections: int = 64  # client connections open at once (a tunnel is one); more get 503
    head_bytes: int = 16 * 1024  # a request's line and headers; more get 431
    headers: int = 100  # header lines in a request or a response
    body_bytes: int = 16 * 1024 * 1024  # a request's or a response's body; more: 413 / cut
    tunnel_bytes: int = 64 * 1024 * 1024  # each way, through one tunnel; then it is closed
    head_timeout: float = 10.0  # to send a request's line and headers, and a TLS handshake
    idle_timeout: float = 10.0  # a keep-alive connection or a tunnel with no bytes either way
    connect_timeout: float = 5.0  # to reach the origin; then 504
    response_timeout: float = 30.0  # for the origin to start answering; then 504
    records: int = 10_000  # the most recent records kept


@dataclass(frozen=True)
class ProxyRecord:
    """One request the proxy received (a CONNECT, or a request in absolute form or intercepted).

    ``target`` is the absolute URL, or ``host:port`` for a CONNECT. ``status`` is what the proxy
    answered (200 for a tunnel opened; the origin's status for a forwarded request). Bytes are
    counted on the wire, head included: ``bytes_up`` from the client toward the origin,
    ``bytes_down`` back. ``authorized`` is None when the proxy asks for no credentials.
    Times are seconds since the stats were reset.
    """

    id: int
    kind: str  # "http", "connect" or "intercepted"
    method: str
    target: str
    connection: int
    client_port: int | None
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    start: float
    end: float | None = None
    status: int | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    authorized: bool | None = None
    detail: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case) as the proxy received it, or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def host_port(self) -> str:
        """``host:port`` of the target, whatever the kind."""
        if self.kind == "connect":
            return self.target
        url = URL(self.target)
        return f"{url.host}:{url.port}"

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["headers"] = [list(pair) for pair in self.headers]
        return data


@dataclass(frozen=True)
class ProxySnapshot:
    """A copy of the proxy's counters and records at one moment."""

    connections_opened: int
    tunnels_opened: int
    refused: int
    in_flight: int  # requests and tunnels not finished yet
    records: list[ProxyRecord] = field(repr=False)
    records_omitted: int = 0

    @property
    def requests(self) -> int:
        return len(self.records)

    def of_kind(self, kind: str) -> list[ProxyRecord]:
        return [record for record in self.records if record.kind == kind]

    def targets(self) -> list[str]:
        """``"METHOD target status"`` for each record, oldest first: what passed through."""
        return [f"{r.method} {r.target} {r.status}" for r in self.records]

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections_opened": self.connections_opened,
            "tunnels_opened": self.tunnels_opened,
            "refused": self.refused,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "records_omitted": self.records_omitted,
            "records": [record.as_dict() for record in self.records],
        }


class ProxyStats:
    """What the proxy saw, written by its thread and read from any thread."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._t0 = time.monotonic()
            self._records: deque[ProxyRecord] = deque(maxlen=self._limit)
            self._open: dict[int, ProxyRecord] = {}
            self._next_id = 0
            self._omitted = 0
            self.connections_opened = 0
            self.tunnels_opened = 0
            self.refused = 0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def connection_opened(self) -> int:
        with self._lock:
            self.connections_opened += 1
            return self.connections_opened - 1

    def tunnel_opened(self) -> None:
        with self._lock:
            self.tunnels_opened += 1

    def started(self, **values: Any) -> int:
        with self._lock:
            record_id = self._next_id
            self._next_id += 1
            if len(self._records) == self._limit:
                self._omitted += 1
            record = ProxyRecord(id=record_id, start=self.now(), **values)
            self._records.append(record)
            self._open[record_id] = record
            return record_id

    def update(self, record_id: int, **values: Any) -> None:
        with self._lock:
            self._update_locked(record_id, values)

    def add(self, record_id: int, name: str, count: int) -> None:
        """Add ``count`` to the record's ``name`` (``bytes_up`` or ``bytes_down``)."""
        with self._lock:
            record = self._open.get(record_id)
            if record is not None:
                self._update_locked(record_id, {name: getattr(record, name) + count})

    def update_ended(self, record_id: int, **values: Any) -> None:
        """Change a record that has ended already (what happened after a CONNECT's 200)."""
        with self._lock:
            for index in range(len(self._records) - 1, -1, -1):
                if self._records[index].id == record_id:
                    self._records[index] = replace(self._records[index], **values)
                    break

    def _update_locked(self, record_id: int, values: dict[str, Any]) -> None:
        record = self._open.get(record_id)
        if record is None:  # reset since, or pushed out by newer records
            return
        if values.get("status") == HTTPStatus.FORBIDDEN and record.status != 403:
            self.refused += 1
        new = replace(record, **values)
        self._open[record_id] = new
        for index in range(len(self._records) - 1, -1, -1):
            if self._records[index].id == record_id:
                self._records[index] = new
                break

    def ended(self, record_id: int, **values: Any) -> None:
        with self._lock:
            self._update_locked(record_id, {"end": self.now(), **values})
            self._open.pop(record_id, None)

    def snapshot(self) -> ProxySnapshot:
        with self._lock:
            return ProxySnapshot(
                self.connections_opened,
                self.tunnels_opened,
                self.refused,
                len(self._open),
                list(self._records),
                self._omitted,
            )


class _RateLimitedLog:
    """One log line a second at most; the lines left out are counted into the next."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last = -float("inf")
        self.left_out = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self.left_out += 1
            return
        self._last = now
        more = f" (and {self.left_out} more since the last line)" if self.left_out else ""
        self.left_out = 0
        LOG.warning("%s%s", message, more)


class _Refused(Exception):
    """An answer the proxy gives instead of forwarding: its status, detail and headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass
class _Head:
    """A request's or a response's first line and headers, as received."""

    first: str
    headers: list[tuple[str, str]]
    size: int

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every ``name`` header, lower-cased."""
        wanted = name.lower()
        return {
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == wanted
            for token in value.split(",")
            if token.strip()
        }


async def _read_head(reader: asyncio.StreamReader, limits: ProxyLimits, what: str) -> _Head | None:
    """Read a head (line and headers) bounded in size; None at a clean end of the stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as incomplete:
        if not incomplete.partial.strip():
            return None
        raise _Refused(400, f"the {what} ended before its headers did") from None
    except asyncio.LimitOverrunError:
        raise _Refused(
            431, f"the {what}'s line and headers exceed {limits.head_bytes} bytes"
        ) from None
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _Refused(400, f"the {what}'s headers are not text") from None
    lines = text[:-4].split("\r\n")
    first, rest = lines[0], lines[1:]
    if len(rest) > limits.headers:
        raise _Refused(431, f"the {what} has more than {limits.headers} header lines")
    headers: list[tuple[str, str]] = []
    for line in rest:
        if line[:1] in (" ", "\t"):
            raise _Refused(400, f"the {what} folds a header over two lines (obsolete)")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or any(c in name for c in " \t"):
            raise _Refused(400, f"the {what} has a malformed header line: {line[:60]!r}")
        headers.append((name, value.strip()))
    return _Head(first, headers, len(raw))


def _json_answer(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"error": HTTPStatus(status).phrase, "detail": detail}).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _split_authority(authority: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) → (host, port); ValueError if malformed."""
    if authority.startswith("["):
        host, bracket, rest = authority[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(authority)
        port_text = rest[1:]
    else:
        host, colon, port_text = authority.rpartition(":")
        if not colon or ":" in host:
            raise ValueError(authority)
    port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError(authority)
    return host, port


def _loopback_only(host: str) -> None:
    """Raise the 403 for a host that is not a loopback address (no name is looked up)."""
    if not is_loopback(host.strip("[]")):
        raise _Refused(
            403,
            f"this proxy forwards only to loopback addresses (127.0.0.1, ::1, localhost), "
            f"not to {host}",
        )


class _Forwarder:
    """The proxy's side of its connections, on the proxy's own loop."""

    def __init__(
        self,
        *,
        stats: ProxyStats,
        limits: ProxyLimits,
        auth: tuple[str, str] | None,
        intercept: bool,
        upstream_context: ssl.SSLContext,
        certificates: _InterceptCertificates | None,
    ) -> None:
        self.stats = stats
        self.limits = limits
        self.auth = auth
        self.intercept = intercept
        self.upstream_context = upstream_context
        self.certificates = certificates
        self.own_port = 0
        self.open = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.log = _RateLimitedLog()

    # --- a client connection ----------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.writers.add(writer)
        self.open += 1
        peer = writer.get_extra_info("peername")
        client_port = peer[1] if isinstance(peer, tuple) and len(peer) > 1 else None
        try:
            if self.open > self.limits.connections:
                writer.write(
                    _json_answer(
                        503,
                        f"the proxy has {self.limits.connections} connections open: "
                        "close some, then try again",
                    )
                )
                await writer.drain()
                return
            connection = self.stats.connection_opened()
            await self._serve(reader, writer, connection, client_port)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio's stream callback would report a cancelled
            # handler as an error on Python 3.11)
            pass
        finally:
            self.open -= 1
            self.writers.discard(writer)
            writer.close()
            if task is not None:
                self.tasks.discard(task)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: int,
        client_port: int | None,
    ) -> None:
        first = True
        while True:
            timeout = self.limits.head_timeout if first else self.limits.idle_timeout
            record_id: int | None = None
            try:
                try:
                    async with asyncio.timeout(timeout):
                        head = await _read_head(reader, self.limits, "request")
                except TimeoutError:
                    if first:
                        raise _Refused(408, f"no complete request within {timeout:g} s") from None
                    return  # an idle keep-alive connection: close it quietly
                if head is None:
                    return
                first = False
                method, target, version = self._request_line(head)
                kind = "connect" if method == "CONNECT" else "http"
                record_id = self.stats.started(
                    kind=kind,
                    method=method,
                    target=target,
                    connection=connection,
                    client_port=client_port,
                    headers=_recorded(head.headers),
                    bytes_up=head.size,
                    authorized=None if self.auth is None else self._authorized(head),
                )
                if method == "CONNECT":
                    await self._connect(
                        reader, writer, head, target, record_id, connection, client_port
                    )
                    return
                keep = await self._forward_absolute(
                    reader, writer, head, method, target, version, record_id, client_port
                )
                if not keep:
                    return
            except _Refused as refusal:
                await self._refuse(writer, refusal, record_id, client_port)
                return

    def _request_line(self, head: _Head) -> tuple[str, str, str]:
        parts = head.first.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(400, f"not an HTTP/1.x request line: {head.first[:60]!r}")
        method, target, version = parts
        if not method.isalpha() or not method.isupper():
            raise _Refused(400, f"not a request method: {method[:20]!r}")
        return method, target, version

    def _authorized(self, head: _Head) -> bool:
        assert self.auth is not None
        value = head.get("Proxy-Authorization") or ""
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, colon, password = decoded.partition(":")
        expected_user, expected_password = self.auth
        return (
            bool(colon)
            & hmac.compare_digest(user.encode(), expected_user.encode())
            & (hmac.compare_digest(password.encode(), expected_password.encode()))
        )

    def _require_auth(self, head: _Head) -> None:
        if self.auth is not None and not self._authorized(head):
            given = head.get("Proxy-Authorization")
            detail = (
                "the Proxy-Authorization header's credentials are not the proxy's"
                if given
                else "this proxy wants credentials: send a Proxy-Authorization header (Basic)"
            )
            raise _Refused(407, detail, {"Proxy-Authenticate": f'Basic realm="{REALM}"'})

    async def _refuse(
        self,
        writer: asyncio.StreamWriter,
        refusal: _Refused,
        record_id: int | None,
        client_port: int | None,
    ) -> None:
        answer = _json_answer(refusal.status, refusal.detail, refusal.headers)
        if record_id is not None:
            self.stats.ended(
                record_id, status=refusal.status, detail=refusal.detail, bytes_down=len(answer)
            )
        if refusal.status == 403:
            self.log.warning(f"refused a request from 127.0.0.1:{client_port}: {refusal.detail}")
        if writer.is_closing():
            return
        writer.write(answer)
        await writer.drain()

    async def _target_address(self, host: str, port: int) -> str:
        """The loopback address to connect to for ``host`` (403 if it is none)."""
        _loopback_only(host)
        bare = host.strip("[]")
        if port == self.own_port and is_loopback(bare):
            raise _Refused(403, "a request to the proxy itself would loop: refused")
        if bare.lower() != "localhost":
            return bare
        infos = await asyncio.get_running_loop().getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        addresses = [info[4][0] for info in infos if ipaddress.ip_address(info[4][0]).is_loopback]
        if not addresses:  # pragma: no cover - a system whose localhost is not loopback
            raise _Refused(403, "localhost does not resolve to a loopback address here")
        return addresses[0] if "127.0.0.1" not in addresses else "127.0.0.1"

    async def _open_upstream(
        self, host: str, port: int, context: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = await self._target_address(host, port)
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                return await asyncio.open_connection(
                    address,
                    port,
                    ssl=context,
                    server_hostname=host.strip("[]") if context is not None else None,
                    limit=self.limits.head_bytes,
                    ssl_handshake_timeout=self.limits.head_timeout if context else None,
                )
        except TimeoutError:
            raise _Refused(
                504,
                f"{host}:{port} did not accept a connection within "
                f"{self.limits.connect_timeout:g} s",
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise _Refused(
                502,
                f"the origin {host}:{port}'s certificate was refused by the proxy: "
                f"{error.verify_message}",
            ) from None
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise _Refused(502, f"could not connect to {host}:{port}: {reason}") from None

    # --- CONNECT: a tunnel ---------------------------------------------------------------------

    async def _connect(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: _Head,
        target: str,
        record_id: int,
        connection: int,
        client_port: int | None,
    ) -> None:
        try:
            host, port = _split_authority(target)
        except ValueError:
            raise _Refused(400, f"CONNECT wants host:port, not {target[:60]!r}") from None
        _loopback_only(host)
        self._require_auth(head)
        if self.intercept:
            await self._target_address(host, port)  # the same refusals as a tunnel gets
            established = b"HTTP/1.1 200 Connection Established\r\n\r\n"
            writer.write(established)
            await writer.drain()
            self.stats.tunnel_opened()
            self.stats.ended(record_id, status=200, bytes_down=len(established),
                             detail="intercepted")  # fmt: skip
            await self._intercept(reader, writer, host, port, record_id, connection, client_port)
            return
        upstream_reader, upstream_writer = await self._open_upstream(host, port, None)
        self.writers.add(upstream_writer)
        try:
            established = b"HTTP/1.1 200 Connection Established\r\n\r\n"
            writer.write(established)
            await writer.drain()
            self.stats.tunnel_opened()
            self.stats.update(record_id, status=200, bytes_down=len(established))
            why = await self._relay(reader, writer, upstream_reader, upstream_writer, record_id)
            self.stats.ended(record_id, detail=why)
        finally:
            self.writers.discard(upstream_writer)
            upstream_writer.close()

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
        record_id: int,
    ) -> str | None:
        """Copy bytes both ways until both ends close, the tunnel idles or carries too much.

        The bytes are counted into the record as they pass; the reason it was cut, if it was,
        is returned.
        """
        counts = [0, 0]
        last = [time.monotonic()]
        why: list[str | None] = [None]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, way: int) -> None:
            field = ("bytes_up", "bytes_down")[way]
            try:
                while data := await source.read(65536):
                    counts[way] += len(data)
                    last[0] = time.monotonic()
                    if counts[way] > self.limits.tunnel_bytes:
                        why[0] = f"closed after {self.limits.tunnel_bytes} bytes one way"
                        return
                    self.stats.add(record_id, field, len(data))
                    sink.write(data)
                    await sink.drain()
                if sink.can_write_eof():
                    sink.write_eof()
            except (ConnectionError, OSError):
                return

        pumps = {
            asyncio.ensure_future(pump(client_reader, upstream_writer, 0)),
            asyncio.ensure_future(pump(upstream_reader, client_writer, 1)),
        }
        try:
            pending = pumps
            while pending:
                _, pending = await asyncio.wait(
                    pending, timeout=min(1.0, self.limits.idle_timeout / 4)
                )
                if why[0] is not None:
                    break
                if time.monotonic() - last[0] > self.limits.idle_timeout:
                    why[0] = f"closed after {self.limits.idle_timeout:g} s without a byte"
                    break
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        return why[0]

    # --- TLS interception --------------------------------------------------------------------

    async def _intercept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        connect_id: int,
        connection: int,
        client_port: int | None,
    ) -> None:
        assert self.certificates is not None
        try:
            await writer.start_tls(
                self.certificates.context_for(host.strip("[]")),
                ssl_handshake_timeout=self.limits.head_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as error:
            self._handshake_failed(connect_id, error)
            return
        authority = f"{host}:{port}"
        first = True
        while True:
            record_id: int | None = None
            try:
                try:
                    async with asyncio.timeout(self.limits.idle_timeout):
                        head = await _read_head(reader, self.limits, "request")
                except TimeoutError:
                    return
                except (ssl.SSLError, OSError) as error:
                    if first:  # TLS 1.3: the client's verdict on the certificate comes now
                        self._handshake_failed(connect_id, error)
                    return
                first = False
                if head is None:
                    return
                method, path, version = self._request_line(head)
                url = f"https://{authority}{path}" if path.startswith("/") else path
                record_id = self.stats.started(
                    kind="intercepted",
                    method=method,
                    target=url,
                    connection=connection,
                    client_port=client_port,
                    headers=_recorded(head.headers),
                    bytes_up=head.size,
                    authorized=None,
                )
                if not path.startswith("/"):
                    raise _Refused(400, f"inside a tunnel, a request names a path: {path[:60]!r}")
                keep = await self._forward(
                    reader, writer, head, method, host, port, path, version, record_id,
                    self.upstream_context,
                )  # fmt: skip
                if not keep:
                    return
            except _Refused as refusal:
                await self._refuse(writer, refusal, record_id, client_port)
                return

    def _handshake_failed(self, connect_id: int, error: BaseException) -> None:
        reason = str(getattr(error, "reason", None) or type(error).__name__)
        self.stats.update_ended(
            connect_id,
            detail=f"intercepted; the TLS handshake with the client did not complete ({reason})",
        )

    # --- plain HTTP in absolute form ----------------------------------------------------------

    async def _forward_absolute(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: _Head,
        method: str,
        target: str,
        version: str,
        record_id: int,
        client_port: int | None,
    ) -> bool:
        if target.startswith("/") or target == "*":
            raise _Refused(
                400,
                "this is a forward proxy: ask it for an absolute URL (GET http://host:port/path) "
                "or CONNECT host:port",
            )
        try:
            url = URL(target)
        except ValueError:
            raise _Refused(400, f"not a URL: {target[:60]!r}") from None
        if url.scheme == "https":
            raise _Refused(400, "an https:// URL goes through a tunnel: send CONNECT host:443")
        if url.scheme != "http" or not url.host or not url.is_absolute():
            raise _Refused(400, f"this proxy forwards http:// URLs only, not {target[:60]!r}")
        host = url.host if ":" not in url.host else f"[{url.host}]"
        _loopback_only(host)
        self._require_auth(head)
        if head.tokens("Upgrade") or "upgrade" in head.tokens("Connection"):
            raise _Refused(
                501, "this proxy does not relay protocol upgrades (WebSocket) over plain HTTP"
            )
        path = url.raw_path_qs or "/"
        assert url.port is not None
        return await self._forward(
            reader, writer, head, method, host, url.port, path, version, record_id, None
        )

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: _Head,
        method: str,
        host: str,
        port: int,
        path: str,
        version: str,
        record_id: int,
        context: ssl.SSLContext | None,
    ) -> bool:
        """Send one request to the origin and its answer back; True to keep the connection."""
        length = self._request_length(head)
        upstream_reader, upstream_writer = await self._open_upstream(host, port, context)
        self.writers.add(upstream_writer)
        try:
            upstream_writer.write(self._upstream_head(head, method, path, host, port))
            up = _Meter(upstream_writer, self.stats, record_id, "bytes_up")  # the body received
            if length is None:
                await self._copy_chunked(reader, up, "request")
            elif length:
                await self._copy_exactly(reader, up, length)
            await upstream_writer.drain()
            return await self._answer(upstream_reader, writer, head, method, version, record_id)
        finally:
            self.writers.discard(upstream_writer)
            upstream_writer.close()

    def _request_length(self, head: _Head) -> int | None:
        """The body's length; None for a chunked body."""
        codings = head.tokens("Transfer-Encoding")
        if codings:
            if codings != {"chunked"}:
                raise _Refused(501, "this proxy relays only a chunked Transfer-Encoding")
            if head.get("Content-Length") is not None:
                raise _Refused(400, "a request with both Content-Length and Transfer-Encoding")
            return None
        lengths = {value.strip() for key, value in head.headers if key.lower() == "content-length"}
        if not lengths:
            return 0
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise _Refused(400, "the request's Content-Length is not one whole number")
        length = int(next(iter(lengths)))
        if length > self.limits.body_bytes:
            raise _Refused(413, f"the body is over the proxy's {self.limits.body_bytes} bytes")
        return length

    def _upstream_head(self, head: _Head, method: str, path: str, host: str, port: int) -> bytes:
        dropped = HOP_BY_HOP | head.tokens("Connection")
        lines = [f"{method} {path} HTTP/1.1"]
        has_host = False
        for name, value in head.headers:
            lower = name.lower()
            if lower == "transfer-encoding":
                lines.append(f"{name}: {value}")  # the body is relayed as it came
                continue
            if lower in dropped or lower == "via":
                continue
            has_host |= lower == "host"
            lines.append(f"{name}: {value}")
        if not has_host:
            lines.append(f"Host: {host}:{port}")
        earlier_via = [value for name, value in head.headers if name.lower() == "via"]
        lines.append("Via: " + ", ".join([*earlier_via, VIA]))
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _copy_exactly(self, source: asyncio.StreamReader, sink: _Meter, length: int) -> int:
        left = length
        while left:
            async with asyncio.timeout(self.limits.idle_timeout):
                data = await source.read(min(65536, left))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            sink.write(data)
            await sink.drain()
        return length

    async def _copy_chunked(self, source: asyncio.StreamReader, sink: _Meter, what: str) -> int:
        """Relay a chunked body as it is, frame by frame; the bytes relayed."""
        copied = body = 0
        while True:
            async with asyncio.timeout(self.limits.idle_timeout):
                line = await source.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Refused(400, f"the {what}'s chunked body has a bad chunk size") from None
            body += size
            if body > self.limits.body_bytes:
                raise _Refused(413, f"the body is over the proxy's {self.limits.body_bytes} bytes")
            sink.write(line)
            copied += len(line)
            if size == 0:
                while True:  # trailers, then the empty line
                    async with asyncio.timeout(self.limits.idle_timeout):
                        trailer = await source.readuntil(b"\r\n")
                    sink.write(trailer)
                    copied += len(trailer)
                    if trailer == b"\r\n":
                        await sink.drain()
                        return copied
            copied += await self._copy_exactly(source, sink, size + 2)

    async def _answer(
        self,
        upstream: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: _Head,
        method: str,
        version: str,
        record_id: int,
    ) -> bool:
        """Relay the origin's answer; True if the client's connection may carry another.

        What is sent is counted into the record before it is sent, so a client that has its
        answer reads a record that already says so.
        """
        down = _Meter(writer, self.stats, record_id, "bytes_down")
        while True:
            try:
                async with asyncio.timeout(self.limits.response_timeout):
                    head = await _read_head(upstream, self.limits, "origin's answer")
            except TimeoutError:
                raise _Refused(
                    504, f"the origin did not answer within {self.limits.response_timeout:g} s"
                ) from None
            except _Refused as refusal:
                raise _Refused(502, refusal.detail) from None
            if head is None:
                raise _Refused(502, "the origin closed the connection without an answer")
            parts = head.first.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise _Refused(502, f"the origin's answer is not HTTP: {head.first[:60]!r}")
            status = int(parts[1])
            if 100 <= status < 200:  # 100 Continue and friends: relay, then read the real one
                down.write((head.first + "\r\n\r\n").encode("latin-1"))
                continue
            break
        no_body = method == "HEAD" or status in (204, 304)
        codings = head.tokens("Transfer-Encoding")
        length_text = head.get("Content-Length")
        if length_text is not None and not length_text.strip().isdigit():
            raise _Refused(502, "the origin's Content-Length is not a number")
        client_close = "close" in request.tokens("Connection") or version == "HTTP/1.0"
        until_close = not no_body and not codings and length_text is None
        keep = not (client_close or until_close)
        dropped = HOP_BY_HOP | head.tokens("Connection")
        lines = [head.first]
        for name, value in head.headers:
            lower = name.lower()
            if lower == "transfer-encoding" or lower not in dropped:
                lines.append(f"{name}: {value}")
        lines.append("Connection: " + ("keep-alive" if keep else "close"))
        self.stats.update(record_id, status=status)
        down.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            if no_body:
                pass
            elif codings:
                await self._copy_chunked(upstream, down, "origin's answer")
            elif length_text is not None:
                length = int(length_text)
                if length > self.limits.body_bytes:
                    keep = False
                    length = self.limits.body_bytes  # cut: the client sees a short body
                await self._copy_exactly(upstream, down, length)
            else:
                body = 0
                while data := await upstream.read(65536):
                    body += len(data)
                    if body > self.limits.body_bytes:
                        break
                    down.write(data)
                    await down.drain()
        except _Refused:
            keep = False  # the answer has begun: it can only be cut short
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
            keep = False
        await writer.drain()
        self.stats.ended(record_id)
        return keep

    # --- stopping --------------------------------------------------------------------------

    async def close_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*list(self.tasks), return_exceptions=True)


class _Meter:
    """A writer that counts what it sends into a record's ``field`` before it sends it."""

    def __init__(
        self, writer: asyncio.StreamWriter, stats: ProxyStats, record_id: int, field: str
    ) -> None:
        self.writer = writer
        self.stats = stats
        self.record_id = record_id
        self.field = field

    def write(self, data: bytes) -> None:
        self.stats.add(self.record_id, self.field, len(data))
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()


def _recorded(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value[:HEADER_VALUE_LIMIT]) for name, value in headers)


class _InterceptCertificates:
    """The intercepting proxy's CA, and a certificate per host signed by it, made on demand."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="aiohttp-course-proxy-")
        try:
            self.ca = trustme.CA(organization_name=CA_NAME)
            self.ca_pem = os.path.join(self.directory, "proxy-ca.pem")
            self.ca.cert_pem.write_to_path(self.ca_pem)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._contexts: dict[str, ssl.SSLContext] = {}

    def context_for(self, host: str) -> ssl.SSLContext:
        context = self._contexts.get(host)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(host).configure_cert(context)
            self._contexts[host] = context
        return context

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class ProxyServer:
    """A running forward proxy: ``url``, ``stats()``, ``ca_pem`` if it intercepts, ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        auth: tuple[str, str] | None,
        intercept: bool,
        upstream_cafile: str | None,
        limits: ProxyLimits,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the course proxy listens on loopback only, not on {host!r}")
        if auth is not None:
            if ":" in auth[0]:
                raise ValueError("a Basic user name cannot contain ':'")
        self.host = host
        self.port = 0
        self._requested_port = port
        self.limits = limits
        self.auth = auth
        self.intercept = intercept
        self._stats = ProxyStats(limits.records)
        self._certificates = _InterceptCertificates() if intercept else None
        upstream = ssl.create_default_context(cafile=upstream_cafile)
        self._forwarder = _Forwarder(
            stats=self._stats,
            limits=limits,
            auth=auth,
            intercept=intercept,
            upstream_context=upstream,
            certificates=self._certificates,
        )
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="local_server-proxy", daemon=True)

    # --- what a notebook uses ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the proxy's URL, for ``proxy=`` or ``HTTP_PROXY``."""
        return base_url(self.host, self.port)

    @property
    def ca_pem(self) -> str | None:
        """The intercepting proxy's CA certificate (PEM file); None for a plain proxy."""
        return None if self._certificates is None else self._certificates.ca_pem

    def stats(self) -> ProxySnapshot:
        """What passed through since the start or the last ``reset_stats()``."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread_ident(self) -> int | None:
        return self._thread.ident

    # --- life cycle -------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
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
            self.stop()
            raise

    async def _bind(self) -> int:
        self._server = await asyncio.start_server(
            self._forwarder.handle,
            self.host,
            self._requested_port,
            limit=self.limits.head_bytes,
            reuse_address=True,
        )
        port = self._server.sockets[0].getsockname()[1]
        self._forwarder.own_port = port
        return port

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._forwarder.close_all()
        if self._server is not None:
            await self._server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)

    def stop(self) -> None:
        """Close the listening socket and every connection and tunnel, end the thread, remove
        the CA's files. Idempotent."""
        with _live_lock:
            _live_proxies.discard(self)
        try:
            if self._thread.is_alive():
                future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
                try:
                    future.result(timeout=5)
                finally:
                    self._loop.call_soon_threadsafe(self._loop.stop)
                    self._thread.join(timeout=5)
        finally:
            if self._certificates is not None:
                self._certificates.cleanup()

    def __enter__(self) -> ProxyServer:
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
        what = "intercepting proxy" if self.intercept else "proxy"
        return f"<ProxyServer {what} {self.url} {state}>"


def start_proxy(
    *,
    auth: tuple[str, str] | None = None,
    intercept: bool = False,
    upstream_cafile: str | None = None,
    host: str = LOOPBACK,
    port: int = 0,
    limits: ProxyLimits | None = None,
) -> ProxyServer:
    """Start a forward proxy in a background thread on a free loopback port; return its handle.

    ``auth=(user, password)`` asks for Basic proxy credentials (407 without them).
    ``intercept=True`` decrypts HTTPS with a CA of its own (``handle.ca_pem``), verifying the
    origins against ``upstream_cafile`` (e.g. lesson 16's ``tls.ca_pem``; the system's CAs if
    None). It stops at ``stop()``, at the end of a ``with`` block, or when the process exits.
    """
    proxy = ProxyServer(
        host,
        port,
        auth=auth,
        intercept=intercept,
        upstream_cafile=upstream_cafile,
        limits=limits or ProxyLimits(),
    )
    proxy._start()
    with _live_lock:
        _live_proxies.add(proxy)
    return proxy


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        proxies = list(_live_proxies)
    for proxy in proxies:
        proxy.stop()
