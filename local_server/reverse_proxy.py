"""A small reverse proxy for lesson 20: what nginx or a load balancer does in front of an app.

It forwards every request to one upstream and adds the headers a real proxy adds, so a lesson
(or a check) can watch an application behind it::

    async with reverse_proxy(app_url, client_address="198.51.100.23", proto="https") as proxy:
        async with aiohttp.ClientSession(proxy.url) as session:
            ...                         # the app sees the proxy's address as request.remote

- ``X-Forwarded-For``: the address of the client the proxy saw. ``forwarded_for="append"``
  (nginx's ``$proxy_add_x_forwarded_for``) adds it to whatever the client sent, so entries on
  the left were written by the client and prove nothing; ``"replace"`` (``$remote_addr``)
  sends only it; ``"separate"`` adds it as a header line of its own; ``"none"`` leaves the
  header as the client sent it (a proxy that was never told to set it).
- ``X-Forwarded-Proto``: the scheme the client used (``proto="https"`` stands for a proxy
  that terminates TLS), replacing any the client sent; ``X-Forwarded-Host``: the client's
  ``Host``, likewise.
- Everything on loopback looks like 127.0.0.1, so ``client_address`` lets the proxy report
  the client as coming from elsewhere (a documentation address such as 198.51.100.23).

Bodies stream both ways (at most ``max_body`` bytes up); hop-by-hop headers are dropped; an
upstream that refuses or breaks is a JSON 502, one too slow a JSON 504; no WebSocket upgrade
(a JSON 501). ``proxy.records`` keeps what it forwarded (the last 1,000 requests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from .errors import error_body
from .runner import LOOPBACK

ForwardedFor = Literal["append", "replace", "separate", "none"]
# Headers that belong to one connection, never forwarded (RFC 9110 7.6.1), plus Host.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "Host",
    )
)  # fmt: skip
MAX_BODY_BYTES = 16 * 2**20
RECORDS_KEPT = 1000
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=30)
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ProxyRecord:
    """One forwarded request: what came in, what the proxy added, what the upstream answered."""

    method: str
    path: str
    peer: str | None
    forwarded: dict[str, str]
    status: int


@dataclass
class ReverseProxy:
    """A proxy's settings, its ``url`` once serving, and ``records`` of what it forwarded."""

    upstream: str
    forwarded_for: ForwardedFor = "append"
    client_address: str | None = None
    proto: str | None = None
    forwarded_host: bool = True
    max_body: int = MAX_BODY_BYTES
    url: str = ""
    records: collections.deque[ProxyRecord] = field(
        default_factory=lambda: collections.deque(maxlen=RECORDS_KEPT)
    )

    def forwarded_headers(self, request: web.BaseRequest) -> CIMultiDict[str]:
        """The request's headers as the proxy sends them upstream."""
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items()
            if name.lower() not in HOP_BY_HOP
            and name.lower() not in ("x-forwarded-proto", "x-forwarded-host")
        )  # fmt: skip
        client = self.client_address or request.remote or "unknown"
        sent = request.headers.getall(hdrs.X_FORWARDED_FOR, [])
        if self.forwarded_for in ("append", "replace"):
            headers.popall(hdrs.X_FORWARDED_FOR, None)
            chain = [*sent, client] if self.forwarded_for == "append" else [client]
            headers[hdrs.X_FORWARDED_FOR] = ", ".join(chain)
        elif self.forwarded_for == "separate":
            headers.add(hdrs.X_FORWARDED_FOR, client)
        headers[hdrs.X_FORWARDED_PROTO] = self.proto or request.scheme
        if self.forwarded_host and request.host:
            headers[hdrs.X_FORWARDED_HOST] = request.host
        return headers

    def app(self) -> web.Application:
        """The proxy as an aiohttp application (serve it with ``reverse_proxy()``)."""
        app = web.Application(client_max_size=self.max_body)
        app[_PROXY] = self
        app.cleanup_ctx.append(_upstream_session)
        app.router.add_route("*", "/{tail:.*}", _forward)
        return app


_PROXY = web.AppKey("proxy", ReverseProxy)
_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(
        timeout=UPSTREAM_TIMEOUT, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        app[_SESSION] = session
        yield


def _json_error(status: int, detail: str) -> web.Response:
    return web.json_response(error_body(status, detail), status=status)


class _TooLarge(Exception):
    pass


async def _body(request: web.BaseRequest, limit: int) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        sent += len(chunk)
        if sent > limit:
            raise _TooLarge
        yield chunk


async def _forward(request: web.Request) -> web.StreamResponse:
    proxy = request.app[_PROXY]
    if request.headers.get(hdrs.UPGRADE):
        return _json_error(501, "this proxy does not forward upgrades (WebSocket)")
    if (request.content_length or 0) > proxy.max_body:
        return _json_error(413, f"bodies are limited to {proxy.max_body} bytes")
    headers = proxy.forwarded_headers(request)
    body = _body(request, proxy.max_body) if request.body_exists else None
    target = proxy.upstream.rstrip("/") + request.rel_url.raw_path_qs
    forwarded = {k: v for k, v in headers.items() if k.lower().startswith("x-forwarded-")}
    try:
        async with request.app[_SESSION].request(
            request.method, target, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                    await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError):
                # Headers are sent: the only honest signal left is to cut the connection.
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write_eof()
    except _TooLarge:
        return _json_error(413, f"bodies are limited to {proxy.max_body} bytes")
    except TimeoutError:
        return _json_error(504, "the upstream did not answer in time")
    except aiohttp.ClientError as exc:
        return _json_error(502, f"the upstream could not be reached: {type(exc).__name__}")
    proxy.records.append(
        ProxyRecord(request.method, request.path, request.remote, forwarded, upstream.status)
    )
    return response


@contextlib.asynccontextmanager
async def reverse_proxy(
    upstream: str,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    forwarded_for: ForwardedFor = "append",
    client_address: str | None = None,
    proto: str | None = None,
    forwarded_host: bool = True,
    max_body: int = MAX_BODY_BYTES,
) -> AsyncIterator[ReverseProxy]:
    """Serve a reverse proxy to ``upstream`` on ``host`` (loopback) for the block's length."""
    proxy = ReverseProxy(upstream, forwarded_for, client_address, proto, forwarded_host, max_body)
    runner = web.AppRunner(proxy.app(), access_log=None, shutdown_timeout=1.0)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        proxy.url = site.name
        yield proxy
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
