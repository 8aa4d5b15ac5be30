"""The course server over HTTPS, behind certificates made at start-up by ``trustme`` (lesson 16).

In a notebook::

    from local_server.tls import start_tls_servers

    tls = start_tls_servers()   # one HTTPS server per kind of certificate, in a background thread
    tls.good                    # 'https://localhost:PORT': a certificate the test CA signed
    tls.ca_pem                  # the test CA's certificate (a temporary PEM file)
    ctx = ssl.create_default_context(cafile=tls.ca_pem)
    async with session.get(tls.good + "/get", ssl=ctx) as response: ...
    tls.stop()                  # or leave it: it stops when the kernel exits

Every server serves the course app (``create_app()``: every endpoint works over HTTPS) plus
``GET /tls`` (the TLS version, the cipher, and the client certificate it received). Each kind
of certificate gets its own port on 127.0.0.1 and its own stats:

- ``good``: for ``localhost``, signed by the test CA;
- ``wrong_host``: signed by the test CA, but for another name (``elsewhere.test``);
- ``expired``: for ``localhost``, signed by the test CA, expired yesterday;
- ``self_signed``: for ``localhost``, signed by its own key: no CA vouches for it;
- ``missing_intermediate``: for ``localhost``, signed by an intermediate CA that the server
  does not send, so the chain from it to the test CA cannot be built;
- ``client_cert``: the good certificate, and it requires a client certificate signed by the
  test CA (mutual TLS): ``tls.client_cert_pem`` and ``tls.client_key_pem`` are one.

The URLs name ``localhost`` because the certificates do; the servers listen on 127.0.0.1 only.
Every certificate has an ECDSA key, so making all of them takes milliseconds, not seconds.
The temporary files are removed at ``stop()``. The servers are bounded like the course server
(``hardening``), and a connection that has not finished its TLS handshake in
``HANDSHAKE_TIMEOUT_SECONDS`` is closed.

``Certificates`` and ``serve_https(app, context)`` let a check serve an app of its own over TLS.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import hardening
from .app import create_app
from .runner import LOOPBACK, SHUTDOWN_GRACE_SECONDS, START_TIMEOUT_SECONDS
from .stats import ServerStats, StatsSnapshot

KINDS = ("good", "wrong_host", "expired", "self_signed", "missing_intermediate", "client_cert")
HOSTNAME = "localhost"
WRONG_HOSTNAME = "elsewhere.test"
CLIENT_IDENTITY = "learner@example.test"
CLIENT_NAME = "learner"
CA_NAME = "aiohttp course test CA"
# A client that connects and never finishes its TLS handshake is dropped after this long.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
# How long a closing TLS connection waits for the peer's close_notify before it is aborted.
TLS_SHUTDOWN_TIMEOUT_SECONDS = 1.0

_live_servers: set[TLSServers] = set()
_live_lock = threading.Lock()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Certificates:
    """A test CA of its own, the certificate of each kind of server, and a client certificate.

    Every PEM file lives in one temporary directory, removed by ``cleanup()``:
    ``ca_pem`` (the CA to trust), ``intermediate_pem`` (the CA the ``missing_intermediate``
    server's certificate was signed by), ``client_cert_pem`` and ``client_key_pem``.
    ``server_context(kind)`` is the ``ssl.SSLContext`` a server of that kind serves with.
    """

    def __init__(self, client_identity: str = CLIENT_IDENTITY) -> None:
        self.directory = tempfile.mkdtemp(prefix="aiohttp-course-tls-")
        try:
            self._make(client_identity)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _make(self, client_identity: str) -> None:
        self.ca = trustme.CA(organization_name=CA_NAME)
        self.intermediate = self.ca.create_child_ca()
        now = _utcnow()
        self.leaves: dict[str, trustme.LeafCert] = {
            "good": self.ca.issue_cert(HOSTNAME),
            "wrong_host": self.ca.issue_cert(WRONG_HOSTNAME),
            "expired": self.ca.issue_cert(
                HOSTNAME,
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            ),
            "missing_intermediate": self.intermediate.issue_cert(HOSTNAME),
        }
        self.client = self.ca.issue_cert(client_identity, common_name=CLIENT_NAME)
        self.client_identity = client_identity
        self.ca_pem = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.intermediate_pem = self._write("intermediate.pem", self.intermediate.cert_pem.bytes())
        self.client_cert_pem = self._write("client.pem", self.client.cert_chain_pems[0].bytes())
        self.client_key_pem = self._write("client.key", self.client.private_key_pem.bytes())
        # The server files: key + the certificate chain it sends (only the leaf, for the
        # server whose intermediate is missing).
        self._server_files: dict[str, str] = {}
        for kind, leaf in self.leaves.items():
            chain = leaf.cert_chain_pems
            if kind == "missing_intermediate":
                chain = chain[:1]
            pem = leaf.private_key_pem.bytes() + b"".join(blob.bytes() for blob in chain)
            self._server_files[kind] = self._write(f"{kind}.pem", pem)
        self._server_files["self_signed"] = self._write("self_signed.pem", _self_signed(HOSTNAME))
        self._server_files["client_cert"] = self._server_files["good"]

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as file:
            file.write(data)
        return path

    def server_file(self, kind: str) -> str:
        """The PEM file (private key, then the certificates sent) a ``kind`` server loads."""
        return self._server_files[kind]

    def server_context(self, kind: str) -> ssl.SSLContext:
        """The server-side ``ssl.SSLContext`` of a server of ``kind`` (one of ``KINDS``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of certificate {kind!r}; one of {', '.join(KINDS)}")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._server_files[kind])
        # No TLS 1.3 session tickets: aiohttp's client never resumes a session, and without
        # them the server speaks only when the handshake or a request asks it to, so a
        # handshake's round trips can be counted from outside (lesson 16 counts them).
        context.num_tickets = 0
        if kind == "client_cert":
            context.load_verify_locations(cafile=self.ca_pem)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def cleanup(self) -> None:
        """Remove every file. Idempotent."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _self_signed(hostname: str) -> bytes:
    """A private key and a certificate for ``hostname`` signed by that same key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = _utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)


class TLSSite(web.TCPSite):
    """A ``TCPSite`` whose TLS handshakes and shutdowns are bounded in time."""

    __slots__ = ()

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS,
            ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT_SECONDS,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


def abort_open_transports(loop: asyncio.AbstractEventLoop) -> int:
    """Abort every connection still registered with ``loop``'s selector; how many there were.

    Listening sockets are the loop's own, not transports: they are left alone. A loop without
    a selector (Windows' Proactor) has nothing to sweep here.
    """
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return 0
    transports = set()
    for key in list(selector.get_map().values()):
        for handle in key.data or ():
            owner = getattr(getattr(handle, "_callback", None), "__self__", None)
            if isinstance(owner, asyncio.BaseTransport):
                transports.add(owner)
    for transport in transports:
        transport.abort()  # type: ignore[attr-defined]
    return len(transports)


def https_url(port: int) -> str:
    """``https://localhost:PORT``: the name the certificates are for."""
    return f"https://{HOSTNAME}:{port}"


async def tls_info(request: web.Request) -> web.Response:
    """This connection's TLS: version, cipher, and the client certificate you sent (if any)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return web.json_response({"tls": False})
    peer = ssl_object.getpeercert() or None
    client = None
    if peer:
        subject = {key: value for rdn in peer.get("subject", ()) for key, value in rdn}
        client = {
            "subject": subject,
            "subject_alt_names": [value for _, value in peer.get("subjectAltName", ())],
            "not_after": peer.get("notAfter"),
        }
    cipher = ssl_object.cipher()
    return web.json_response(
        {
            "tls": True,
            "version": ssl_object.version(),
            "cipher": cipher[0] if cipher else None,
            "client_certificate": client,
        }
    )


def create_tls_app(stats: ServerStats, seed: int | None = None) -> web.Application:
    """The course app, plus ``GET /tls``."""
    app = create_app(stats=stats, seed=seed)
    app.router.add_get("/tls", tls_info)
    return app


@asynccontextmanager
async def serve_https(
    app: web.Application,
    context: ssl.SSLContext,
    *,
    port: int = 0,
    shutdown_timeout: float = SHUTDOWN_GRACE_SECONDS,
) -> AsyncIterator[str]:
    """Serve ``app`` over TLS on 127.0.0.1 (on the caller's loop); yield ``https://localhost:PORT``."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        site = TLSSite(runner, LOOPBACK, port, ssl_context=context)
        await site.start()
        yield https_url(site.port)
    finally:
        await runner.cleanup()


class TLSServers:
    """The running HTTPS servers: a URL per kind, the CA's PEM, a client certificate, stats."""

    def __init__(self, seed: int | None, limits: hardening.Limits) -> None:
        self._limits = limits
        self.certificates = Certificates()
        self._stats = {kind: ServerStats() for kind in KINDS}
        self._runners = {
            kind: web.AppRunner(
                create_tls_app(self._stats[kind], seed), **hardening.runner_options(limits)
            )
            for kind in KINDS
        }
        self._ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="local_server-tls", daemon=True)

    # --- what a notebook uses ---------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        """``{kind: "https://localhost:PORT"}`` for every kind of certificate."""
        return {kind: https_url(port) for kind, port in self._ports.items()}

    def url(self, kind: str) -> str:
        """The base URL of the ``kind`` server, without a trailing slash."""
        if kind not in self._ports:
            raise KeyError(f"no {kind!r} server; the kinds are {', '.join(KINDS)}")
        return https_url(self._ports[kind])

    good = property(lambda self: self.url("good"), doc="A certificate the CA signed.")
    wrong_host = property(lambda self: self.url("wrong_host"), doc="Signed, for another name.")
    expired = property(lambda self: self.url("expired"), doc="Signed, expired yesterday.")
    self_signed = property(lambda self: self.url("self_signed"), doc="Signed by no CA.")
    missing_intermediate = property(
        lambda self: self.url("missing_intermediate"), doc="The chain lacks its intermediate."
    )
    client_cert = property(
        lambda self: self.url("client_cert"), doc="Requires a client certificate (mutual TLS)."
    )

    @property
    def ca_pem(self) -> str:
        """The path of the test CA's certificate (PEM): trust it with ``cafile=``."""
        return self.certificates.ca_pem

    @property
    def intermediate_pem(self) -> str:
        """The intermediate CA's certificate, which the ``missing_intermediate`` server omits."""
        return self.certificates.intermediate_pem

    @property
    def client_cert_pem(self) -> str:
        """A client certificate the CA signed, for ``ctx.load_cert_chain(cert, key)``."""
        return self.certificates.client_cert_pem

    @property
    def client_key_pem(self) -> str:
        """The private key of ``client_cert_pem``."""
        return self.certificates.client_key_pem

    def port(self, kind: str) -> int:
        return self._ports[kind]

    def stats(self, kind: str = "good") -> StatsSnapshot:
        """What the ``kind`` server has seen (a request only arrives after a handshake)."""
        return self._stats[kind].snapshot()

    def reset_stats(self) -> None:
        """Zero every server's counters."""
        for stats in self._stats.values():
            stats.reset()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread_ident(self) -> int | None:
        return self._thread.ident

    # --- life cycle -------------------------------------------------------------------------

    def _serve(self) -> None:
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
            future.result(timeout=START_TIMEOUT_SECONDS)
        except BaseException:
            self._cleanup_after_failed_start()
            raise

    async def _bind(self) -> None:
        for kind, runner in self._runners.items():
            await runner.setup()
            hardening.install(runner, self._limits)
            site = TLSSite(
                runner, LOOPBACK, 0, ssl_context=self.certificates.server_context(kind)
            )
            await site.start()
            self._ports[kind] = site.port

    async def _cleanup(self) -> None:
        await asyncio.gather(*(runner.cleanup() for runner in self._runners.values()))
        # A closed TLS connection waits for the peer's close_notify, and one still in its
        # handshake is no handler's to close: once this loop stops, either would leak its
        # socket. The server is stopping, so every connection left is aborted now.
        await asyncio.sleep(0)
        abort_open_transports(asyncio.get_running_loop())
        for _ in range(3):
            await asyncio.sleep(0)

    def _cleanup_after_failed_start(self) -> None:
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop)
            try:
                future.result(timeout=SHUTDOWN_GRACE_SECONDS + 5)
            finally:
                self._shut_loop()
        self.certificates.cleanup()

    def stop(self) -> None:
        """Close every server and connection, end the thread, remove the files. Idempotent."""
        with _live_lock:
            _live_servers.discard(self)
        try:
            if self._thread.is_alive():
                future = asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop)
                try:
                    future.result(timeout=SHUTDOWN_GRACE_SECONDS + 5)
                finally:
                    self._shut_loop()
        finally:
            self.certificates.cleanup()

    def _shut_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> TLSServers:
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
        urls = ", ".join(f"{kind}={url}" for kind, url in self.urls.items())
        return f"<TLSServers {state}: {urls}>"


def start_tls_servers(
    *, seed: int | None = None, keepalive: float = hardening.Limits.keepalive
) -> TLSServers:
    """Make a test CA and its certificates, and serve the course app over HTTPS with each.

    A sibling of ``start_server()``: a background thread with its own loop, free ports on
    127.0.0.1, the same bounds; ``stop()``, a ``with`` block or the end of the process stops it
    and removes the certificate files.
    """
    limits = hardening.Limits(keepalive=keepalive, shutdown=SHUTDOWN_GRACE_SECONDS)
    servers = TLSServers(seed, limits)
    try:
        servers._start()
    except BaseException:
        servers.certificates.cleanup()
        raise
    with _live_lock:
        _live_servers.add(servers)
    return servers


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server.stop()
