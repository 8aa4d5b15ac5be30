"""Checks for exercise 16, TLS and certificates.

In the notebook: ``from local_server.checks import tls_certificates as check``.

Every check makes a test CA of its own (``local_server.tls.Certificates``) and serves apps over
TLS on its own loop: a paged items API, a server that asks for a client certificate, and one
server of each kind of certificate (good, wrong host, expired, self-signed, missing
intermediate, another CA's). What the learner's code did is judged from what the servers saw
(which server received a request, on how many TLS connections, with which client
certificate), from what the code returned or raised, from the sessions it left open, and from
the process itself: while a request is under way and after every call, the check asks whether
a fresh default context (``ssl.create_default_context()``, certifi's bundle, aiohttp's own
default) now trusts the CA, with an in-memory TLS handshake. Whatever the code changed for the
whole process (``SSL_CERT_FILE``, a patched ``ssl`` function, an edited certifi bundle) is put
back when the check ends.
"""

from __future__ import annotations

import contextlib
import os
import random
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import trustme
from aiohttp import web

from ..runner import LocalServer
from ..serving import refused_url
from ..tls import HOSTNAME, Certificates, serve_https
from .evidence import clip, exception_text, learner_line
from .harness import SessionSpy, call_async, check, plural
from .rules import Rule, Task

SEED = 0
LABELS = ("ok", "expired", "wrong-host", "untrusted")
# What could make the whole process trust a CA: put back after every check.
TRUST_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
SSL_NAMES = (
    "create_default_context",
    "_create_default_https_context",
    "_create_unverified_context",
    "SSLContext",
)

# --- shared rules ------------------------------------------------------------------------


def _rule_verification_off(what: str) -> Rule:
    return Rule(
        "verification-off",
        "keep verification on",
        f"a server whose certificate no CA signed (self-signed) {what}",
        "never `ssl=False` or `verify_mode = CERT_NONE`: trust the CA instead, with "
        "`ssl.create_default_context(cafile=ca_pem)`.",
    )


RULE_PROCESS_WIDE = Rule(
    "process-wide",
    "trust the CA for this session only",
    "while a request is under way and after each call, a fresh `ssl.create_default_context()`, "
    "one made from certifi's bundle and aiohttp's default context each try a TLS handshake "
    "with the check's server: none may trust the CA",
    "make one context, `ssl.create_default_context(cafile=ca_pem)`, and give it to this "
    "session (`ssl=` or `TCPConnector(ssl=...)`); change no environment variable, `ssl` "
    "function or bundle file.",
)
RULE_HOSTNAME = Rule(
    "hostname-unchecked",
    "keep verification on (the name too)",
    "a server with a certificate the CA signed for another name: it must receive no request",
    "leave `check_hostname` as `create_default_context()` sets it (True): a certificate "
    "for another name is as good as none.",
)
RULE_NOT_TRUSTED = Rule(
    "not-trusted",
    "trust the CA in `ca_pem`",
    "the server whose certificate the CA signed: its certificate must be accepted",
    "neither aiohttp's default (ssl=True), certifi nor the system store knows a private CA: "
    "`ssl.create_default_context(cafile=ca_pem)`, passed as `ssl=`.",
)


# --- the process: who trusts the CA ------------------------------------------------------


def _handshake_ok(client: ssl.SSLContext, server: ssl.SSLContext) -> bool:
    """Whether ``client`` accepts ``server``'s certificate for HOSTNAME, in memory (no socket)."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    try:
        near = client.wrap_bio(bios[0], bios[1], server_hostname=HOSTNAME)
        far = server.wrap_bio(bios[2], bios[3], server_side=True)
    except (ssl.SSLError, ValueError, TypeError, AttributeError):
        return False
    near_done = far_done = False
    for _ in range(10):
        if not near_done:
            try:
                near.do_handshake()
                near_done = True
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, OSError, ValueError):
                return False
        bios[2].write(bios[1].read())
        if not far_done:
            try:
                far.do_handshake()
                far_done = True
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLError, OSError, ValueError):
                far_done = True  # the server's own view is not what is asked
        bios[0].write(bios[3].read())
        if near_done:
            return True
    return False


class TrustGuard:
    """What the process trusts: probed while and after the learner's code runs, then restored."""

    def __init__(self, certificates: Certificates) -> None:
        self._server = certificates.server_context("good")
        self._ca_pem = certificates.ca_pem
        self.env = {name: os.environ.get(name) for name in TRUST_ENV}
        self.ssl_attrs = {name: getattr(ssl, name, None) for name in SSL_NAMES}
        self._certifi = sys.modules.get("certifi") or _import_certifi()
        self.certifi_where = getattr(self._certifi, "where", None)
        self.certifi_path = self.certifi_where() if self.certifi_where else None
        self.certifi_bytes = _read(self.certifi_path)
        self.evidence: list[str] = []
        self._probed_with: tuple[Any, ...] | None = None
        self._made_now: list[str] = []

    def probe(self) -> list[str]:
        """The ways a context made now, not by the learner's session, trusts the CA."""
        key = self._inputs()
        if key != self._probed_with:  # what a fresh context is made from has changed
            self._probed_with, self._made_now = key, self._fresh_contexts_trust()
        found = list(self._made_now)
        connector = sys.modules.get("aiohttp.connector")
        shared = getattr(connector, "_SSL_CONTEXT_VERIFIED", None)
        if isinstance(shared, ssl.SSLContext) and _handshake_ok(shared, self._server):
            found.append(
                "aiohttp's shared default context trusts the CA (every session's ssl=True)"
            )
        for reason in found:
            if reason not in self.evidence:
                self.evidence.append(reason)
        return found

    def _inputs(self) -> tuple[Any, ...]:
        """Everything a fresh default or certifi context is built from (loading one costs
        tens of milliseconds: the probe makes new ones only when one of these changed)."""
        paths = ssl.get_default_verify_paths()
        try:
            bundle = self._certifi.where() if self._certifi is not None else None
        except Exception:  # a learner's replacement that fails
            bundle = None
        files = [paths.cafile, paths.capath, bundle, *(os.environ.get(n) for n in TRUST_ENV)]
        return (
            tuple(os.environ.get(name) for name in TRUST_ENV),
            tuple(id(getattr(ssl, name, None)) for name in SSL_NAMES),
            bundle,
            tuple(_stamp(path) for path in files),
        )

    def _fresh_contexts_trust(self) -> list[str]:
        found: list[str] = []
        made = self._made(lambda: ssl.create_default_context())
        if made is not None and _handshake_ok(made, self._server):
            found.append(self._why_default())
        original = self.ssl_attrs["create_default_context"]
        if self._certifi is not None and original is not None:
            try:
                bundle = self._certifi.where()
            except Exception:  # a learner's replacement that fails: not a trust
                bundle = None
            made = self._made(lambda: original(cafile=bundle)) if bundle else None
            if made is not None and _handshake_ok(made, self._server):
                found.append(
                    "certifi's bundle now holds the CA (every `cafile=certifi.where()` trusts it)"
                )
        return found

    def _made(self, make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext | None:
        try:
            made = make()
        except Exception:
            return None
        return made if isinstance(made, ssl.SSLContext) else None

    def _why_default(self) -> str:
        changed = [n for n in TRUST_ENV if os.environ.get(n) != self.env[n]]
        if changed:
            value = _what_path(os.environ.get(changed[0]), self._ca_pem)
            return (
                f"{changed[0]} was set (to {value}), so every `ssl.create_default_context()` "
                "made since trusts the CA"
            )
        if ssl.create_default_context is not self.ssl_attrs["create_default_context"]:
            return "`ssl.create_default_context` was replaced, for every caller in the process"
        if ssl.SSLContext is not self.ssl_attrs["SSLContext"]:
            return "`ssl.SSLContext` was replaced, for every caller in the process"
        return "a fresh `ssl.create_default_context()` trusts the CA"

    def restore(self) -> None:
        """Put back what the learner's code changed for the whole process."""
        for name, value in self.env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        truststore = sys.modules.get("truststore")
        if truststore is not None and ssl.SSLContext is not self.ssl_attrs["SSLContext"]:
            with contextlib.suppress(Exception):
                truststore.extract_from_ssl()
        for name, value in self.ssl_attrs.items():
            if value is not None and getattr(ssl, name, None) is not value:
                setattr(ssl, name, value)
        if self._certifi is not None and self.certifi_where is not None:
            self._certifi.where = self.certifi_where
        if self.certifi_path and self.certifi_bytes is not None:
            if _read(self.certifi_path) != self.certifi_bytes:
                with open(self.certifi_path, "wb") as bundle:
                    bundle.write(self.certifi_bytes)
        connector = sys.modules.get("aiohttp.connector")
        shared = getattr(connector, "_SSL_CONTEXT_VERIFIED", None)
        if isinstance(shared, ssl.SSLContext) and _handshake_ok(shared, self._server):
            connector._SSL_CONTEXT_VERIFIED = connector._make_ssl_context(True)  # type: ignore[union-attr]


def _import_certifi() -> Any:
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi is installed with the course
        return None
    return certifi


def _stamp(path: str | None) -> tuple[Any, ...] | None:
    """A file's or folder's identity and last change, or None if there is none."""
    if not path:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (path, info.st_ino, info.st_size, info.st_mtime_ns)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return None


def _what_path(value: str | None, ca_pem: str) -> str:
    if value == ca_pem:
        return "the CA's file"
    return "a file of yours" if value else "nothing"


def _expect_not_process_wide(table: Task, guard: TrustGuard, task: str) -> None:
    guard.probe()
    if guard.evidence:
        raise table.broken(
            "process-wide",
            f"after {task} ran, code that is not your session trusts the CA: {guard.evidence[0]}.",
        )


# --- servers -----------------------------------------------------------------------------


@dataclass
class Seen:
    """One request a check's server received."""

    server: str
    path: str
    connection: int
    client: str | None


@dataclass
class Lab:
    """The check's servers, what they saw, and the process's trust guard."""

    certificates: Certificates
    guard: TrustGuard
    urls: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)
    probe_next: bool = False
    _transports: list[Any] = field(default_factory=list)

    def record(self, server: str, request: web.Request) -> Seen:
        if self.probe_next:  # while the learner's request is under way
            self.probe_next = False
            self.guard.probe()
        transport = request.transport
        if transport not in self._transports:
            self._transports.append(transport)
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        peer = ssl_object.getpeercert() if ssl_object is not None else None
        names = [value for _, value in (peer or {}).get("subjectAltName", ())]
        seen = Seen(
            server, request.path, self._transports.index(transport), names[0] if names else None
        )
        self.seen.append(seen)
        return seen

    def reached(self, server: str, since: int = 0) -> list[Seen]:
        return [s for s in self.seen[since:] if s.server == server]

    def app(self, server: str) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            seen = self.record(server, request)
            route = self.routes.get(request.path)
            if route is None:
                return web.json_response({"error": "Not Found"}, status=404)
            return route(request, seen)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def _server_context(certificates: Certificates, kind: str, ask: bool = False) -> ssl.SSLContext:
    context = certificates.server_context(kind)
    if ask:  # ask for a client certificate; answer 401 in the handler if none came
        context.load_verify_locations(cafile=certificates.ca_pem)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _other_ca_context() -> ssl.SSLContext:
    """A server context for ``localhost`` signed by a CA the learner was not given."""
    leaf = trustme.CA(organization_name="someone else's CA").issue_cert(HOSTNAME)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


@contextlib.asynccontextmanager
async def _lab(
    servers: dict[str, ssl.SSLContext | str], certificates: Certificates
) -> AsyncIterator[Lab]:
    """Serve the lab's app under each name with its context; restore the process afterwards."""
    lab = Lab(certificates, TrustGuard(certificates))
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name, context in servers.items():
                if isinstance(context, str):
                    context = _server_context(certificates, context)
                lab.urls[name] = await stack.enter_async_context(
                    serve_https(lab.app(name), context, shutdown_timeout=0.1)
                )
            yield lab
    finally:
        lab.guard.restore()


def _certificate_error(exc: BaseException) -> aiohttp.ClientConnectorCertificateError | None:
    """The certificate error in ``exc``'s chain (raised, or raised from), if any."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            return error
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                found = _certificate_error(inner)
                if found is not None:
                    return found
        error = error.__cause__ or error.__context__
    return None


def _verify_message(error: aiohttp.ClientConnectorCertificateError) -> str:
    inner = error.certificate_error
    return getattr(inner, "verify_message", None) or clip(str(inner), 80)


async def _outcome(task: str, learner: Any, *args: Any) -> tuple[Any, BaseException | None]:
    """(returned, None) or (None, the exception): the learner's call, never raising."""
    try:
        return await call_async(task, learner, *args), None
    except aiohttp.ClientError as exc:
        return None, exc
    except ssl.SSLError as exc:
        return None, exc


def _where(exc: BaseException) -> str:
    line = learner_line(exc)
    return f" ({line})" if line else ""


# --- Task 1 · fetch_items ----------------------------------------------------------------

FETCH_ITEMS = Task(
    "fetch_items",
    RULE_NOT_TRUSTED,
    _rule_verification_off("behind the first page, or a `next` link: it must receive no request"),
    RULE_HOSTNAME,
    RULE_PROCESS_WIDE,
    Rule(
        "wrong-data",
        "return every page's items in one list, in page order",
        "two APIs of 5 and 3 pages (an empty page among them): the list is compared with what "
        "the pages held",
        "GET `url`, then each page's `next` until it is null, adding each page's `items` in turn.",
    ),
    Rule(
        "session-per-request",
        "use one session",
        "the sessions created during one call, counted",
        "open one `ClientSession` before the first page and follow every `next` with it.",
    ),
    Rule(
        "context-per-request",
        "let it reuse its connection: five pages need one",
        "the TLS connections the server saw for five pages fetched one after another",
        "make the `ssl.SSLContext` once, before the loop: a new context is a new pool key, so "
        "every page paid for a new connection and TLS handshake.",
    ),
    Rule(
        "error-swallowed",
        "raise the `aiohttp.ClientConnectorCertificateError` (let it propagate)",
        "servers with a certificate the CA did not sign, or signed for another name, and a "
        "`next` link to an expired one after two pages: each call must raise that error",
        "do not catch the certificate error: a partial list looks like a whole one to the caller.",
    ),
    Rule(
        "session-left-open",
        "close the session",
        "sessions still open after a call that succeeded",
        "`async with aiohttp.ClientSession(...) as session:` closes it however the block ends.",
    ),
    Rule(
        "session-left-open-on-error",
        "with its session closed (when a certificate is refused)",
        "sessions still open after a call that raised the certificate error",
        "`async with aiohttp.ClientSession(...)` closes the session when the error leaves "
        "the block; a `close()` after the loop is skipped by the exception.",
    ),
)
PAGES_A = 5
PAGES_B = 3


def _item_names(rng: random.Random, count: int) -> list[Any]:
    words = ("café", "naïve", "日本", "Ωmega", "plain", "x")
    return [{"id": rng.randrange(10**6), "name": rng.choice(words)} for _ in range(count)]


def _add_pages(
    lab: Lab, rng: random.Random, servers: list[str], sizes: list[int], tail: str | None = None
) -> tuple[str, list[Any]]:
    """Pages on ``servers`` (one a page) holding ``sizes`` items; ``tail``: a last link there.

    Returns the first page's URL and every item, in order.
    """
    token = f"{rng.getrandbits(32):08x}"
    paths = [f"/items/{token}/{n}" for n in range(len(sizes))]
    urls = [lab.urls[server] + path for server, path in zip(servers, paths, strict=True)]
    if tail is not None:
        urls.append(lab.urls[tail] + f"/items/{token}/{len(sizes)}")
        paths.append(f"/items/{token}/{len(sizes)}")
    everything: list[Any] = []
    for index, size in enumerate(sizes):
        items = _item_names(rng, size)
        everything.extend(items)
        following = urls[index + 1] if index + 1 < len(urls) else None
        lab.routes[paths[index]] = _page(items, following)
    if tail is not None:
        lab.routes[paths[-1]] = _page(_item_names(rng, 2), None)
    return urls[0], everything


def _page(items: list[Any], following: str | None) -> Callable[..., web.Response]:
    def answer(request: web.Request, seen: Seen) -> web.Response:
        return web.json_response({"items": items, "next": following})

    return answer


@check(FETCH_ITEMS)
async def fetch_items(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_items(url, ca_pem)`` follows every page through one verified, CA-only session."""
    rng = random.Random(f"{SEED}-fetch_items")
    certificates = Certificates()
    try:
        servers = {
            "good": "good",
            "other-good": "good",
            "self-signed": "self_signed",
            "wrong-host": "wrong_host",
            "expired": "expired",
        }
        async with _lab(servers, certificates) as lab:
            sizes_a = [rng.randrange(1, 5) for _ in range(PAGES_A)]
            sizes_a[2] = 0  # an empty page is not the last one
            url, expected = _add_pages(lab, rng, ["good"] * PAGES_A, sizes_a)
            await _fetch_good(learner, spy, lab, url, expected, count_connections=True)
            for name in ("self-signed", "wrong-host"):
                url, _ = _add_pages(lab, rng, [name], [2])
                await _fetch_refused(learner, spy, lab, url, name)
            url, _ = _add_pages(lab, rng, ["good", "good"], [2, 1], tail="expired")
            await _fetch_refused(learner, spy, lab, url, "expired", mid_job=True)
            url, expected = _add_pages(lab, rng, ["other-good"] * PAGES_B, [3, 1, 2])
            await _fetch_good(learner, spy, lab, url, expected, count_connections=False)
    finally:
        certificates.cleanup()
    return (
        f"followed {PAGES_A} and {PAGES_B} pages, each API on one TLS connection of one "
        "session trusting the CA; a self-signed server, a certificate for another name and "
        "an expired one reached mid-job were refused with the session closed, and nothing "
        "else in the process trusted the CA."
    )


async def _fetch_good(
    learner: Any,
    spy: SessionSpy,
    lab: Lab,
    url: str,
    expected: list[Any],
    *,
    count_connections: bool,
) -> None:
    before, seen_before = spy.created, len(lab.seen)
    lab.probe_next = True
    result, exc = await _outcome("fetch_items", learner, url, lab.certificates.ca_pem)
    _expect_not_process_wide(FETCH_ITEMS, lab.guard, "fetch_items")
    requests = lab.seen[seen_before:]
    if exc is not None:
        error = _certificate_error(exc)
        if error is not None:
            raise FETCH_ITEMS.broken(
                "not-trusted",
                f"the first page's server has a certificate the CA signed, and your session "
                f"refused it: {_verify_message(error)}{_where(exc)}.",
            )
        raise exc
    if not requests:
        raise FETCH_ITEMS.broken(
            "not-trusted",
            f"no request reached the server (its TLS handshake failed?) and fetch_items "
            f"returned {clip(repr(result), 60)}: trust the CA and let errors raise.",
        )
    _judge_items(result, expected, requests)
    created = spy.created - before
    if created > 1:
        raise FETCH_ITEMS.broken(
            "session-per-request",
            f"{plural(created, 'session')} were created for {len(requests)} pages.",
        )
    if spy.left_open:
        raise FETCH_ITEMS.broken("session-left-open", "the session was still open after the call.")
    connections = {s.connection for s in requests}
    if count_connections and len(connections) > 1:
        session = spy.sessions[before] if created else None
        connector = getattr(session, "connector", None) if session is not None else None
        if connector is not None and getattr(connector, "force_close", False):
            raise FETCH_ITEMS.broken(
                "context-per-request",
                f"{len(requests)} pages came on {len(connections)} TLS connections: the "
                "connector was made with force_close=True, which closes each one.",
                "drop `force_close=True`: a pooled connection saves a TCP and a TLS handshake "
                "per request.",
            )
        raise FETCH_ITEMS.broken(
            "context-per-request",
            f"{len(requests)} pages, one after another in one session, came on "
            f"{len(connections)} TLS connections: each request had its own ssl= context.",
        )


def _judge_items(result: Any, expected: list[Any], requests: list[Seen]) -> None:
    if not isinstance(result, list):
        raise FETCH_ITEMS.broken(
            "wrong-data",
            f"fetch_items returned {type(result).__name__}, not a list of the items.",
        )
    if result == expected:
        return
    pages = len({s.path for s in requests})
    if pages == 1 and len(requests) == 1:
        detail = "only the first page was requested: follow each page's `next`"
    elif len(result) == len(expected) and sorted(map(repr, result)) == sorted(map(repr, expected)):
        detail = "the items are all there, but not in page order"
    else:
        detail = f"{len(result)} items came back for {len(expected)} on {pages} pages"
    raise FETCH_ITEMS.broken("wrong-data", f"{detail}.")


async def _fetch_refused(
    learner: Any, spy: SessionSpy, lab: Lab, url: str, server: str, *, mid_job: bool = False
) -> None:
    before, seen_before = spy.created, len(lab.seen)
    lab.probe_next = True
    result, exc = await _outcome("fetch_items", learner, url, lab.certificates.ca_pem)
    _expect_not_process_wide(FETCH_ITEMS, lab.guard, "fetch_items")
    reached = lab.reached(server, seen_before)
    if reached:
        what = {
            "self-signed": ("verification-off", "a self-signed certificate, signed by no CA"),
            "wrong-host": ("hostname-unchecked", f"a certificate for another name, not {HOSTNAME}"),
            "expired": ("verification-off", "a certificate that has expired"),
        }[server]
        raise FETCH_ITEMS.broken(
            what[0],
            f"your session sent {reached[0].path} to a server with {what[1]}: it accepted "
            "that certificate.",
        )
    where = " after two good pages" if mid_job else ""
    if exc is None:
        raise FETCH_ITEMS.broken(
            "error-swallowed",
            f"the {server} server's certificate was refused{where}, and fetch_items returned "
            f"{clip(repr(result), 60)} instead of raising.",
        )
    if _certificate_error(exc) is None:
        raise exc
    if any(not session.closed for session in spy.sessions[before:]):
        raise FETCH_ITEMS.broken(
            "session-left-open-on-error",
            f"when the {server} server's certificate was refused{where}, the session stayed open.",
        )


# --- Task 2 · fetch_with_client_cert -----------------------------------------------------

CLIENT_CERT = Task(
    "fetch_with_client_cert",
    Rule(
        "no-client-cert",
        "present the client certificate",
        "the server asks for a client certificate: which one it received, if any",
        "`context.load_cert_chain(cert_pem, key_pem)` on the context you pass as `ssl=`.",
    ),
    Rule(
        "wrong-identity",
        "present **that** certificate (`cert_pem`)",
        "two calls with two different certificates: the identity the server saw each time",
        "build the context from this call's `cert_pem` and `key_pem`: a context kept from an "
        "earlier call presents the earlier certificate.",
    ),
    RULE_NOT_TRUSTED,
    _rule_verification_off(
        "that asks for a client certificate: it must receive no request, and no certificate"
    ),
    RULE_HOSTNAME,
    RULE_PROCESS_WIDE,
    Rule(
        "wrong-data",
        "return the JSON body",
        "what the call returned, compared with what the server sent",
        "`return await response.json()` inside the response's `async with`.",
    ),
    Rule(
        "error-swallowed",
        "a server the CA did not sign must raise `ClientConnectorCertificateError`",
        "a self-signed server: the call must raise that error",
        "let the certificate error propagate: returning a default hides it.",
    ),
    Rule(
        "session-left-open",
        "close the session",
        "sessions still open after a call that succeeded",
        "`async with aiohttp.ClientSession() as session:`.",
    ),
    Rule(
        "session-left-open-on-error",
        "the session must still be closed",
        "sessions still open after the call that raised the certificate error",
        "`async with aiohttp.ClientSession()` closes it when the error leaves the block.",
    ),
)


def _whoami(request: web.Request, seen: Seen) -> web.Response:
    if seen.client is None:
        return web.json_response(
            {"error": "Unauthorized", "detail": "no client certificate"}, status=401
        )
    return web.json_response({"you": seen.client, "path": request.path})


def _add_client(certificates: Certificates, identity: str) -> tuple[str, str]:
    leaf = certificates.ca.issue_cert(identity, common_name=identity.split("@")[0])
    cert = os.path.join(certificates.directory, f"{identity}.pem")
    key = os.path.join(certificates.directory, f"{identity}.key")
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    return cert, key


@check(CLIENT_CERT)
async def fetch_with_client_cert(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_with_client_cert(url, ca_pem, cert_pem, key_pem)``: mutual TLS, verified."""
    rng = random.Random(f"{SEED}-fetch_with_client_cert")
    certificates = Certificates()
    try:
        identities = [certificates.client_identity, f"ops-{rng.getrandbits(24):06x}@example.test"]
        clients = [
            (certificates.client_cert_pem, certificates.client_key_pem),
            _add_client(certificates, identities[1]),
        ]
        servers = {
            "asks": _server_context(certificates, "good", ask=True),
            "plain": "good",
            "self-signed": _server_context(certificates, "self_signed", ask=True),
            "wrong-host": _server_context(certificates, "wrong_host", ask=True),
        }
        async with _lab(servers, certificates) as lab:
            for index, (identity, files) in enumerate(zip(identities, clients, strict=True)):
                path = f"/admin/{rng.getrandbits(32):08x}"
                lab.routes[path] = _whoami
                await _mutual(learner, spy, lab, lab.urls["asks"] + path, files, identity, index)
            path = f"/public/{rng.getrandbits(32):08x}"
            lab.routes[path] = lambda request, seen: web.json_response({"public": request.path})
            result, exc = await _outcome(
                "fetch_with_client_cert",
                learner,
                lab.urls["plain"] + path,
                certificates.ca_pem,
                *clients[0],
            )
            if exc is not None:
                raise exc
            if result != {"public": path}:
                raise CLIENT_CERT.broken(
                    "wrong-data",
                    "from a server that asks for no certificate, it returned "
                    f"{clip(repr(result), 60)}.",
                )
            for name in ("self-signed", "wrong-host"):
                path = f"/admin/{rng.getrandbits(32):08x}"
                lab.routes[path] = _whoami
                await _mutual_refused(learner, spy, lab, lab.urls[name] + path, clients[0], name)
    finally:
        certificates.cleanup()
    return (
        "presented the certificate it was given (the server saw both identities), verified "
        "the server against the CA for this session only, worked with a server that asks for "
        "none, refused a self-signed server and another name's certificate, and closed every "
        "session."
    )


async def _mutual(
    learner: Any,
    spy: SessionSpy,
    lab: Lab,
    url: str,
    files: tuple[str, str],
    identity: str,
    index: int,
) -> None:
    seen_before = len(lab.seen)
    lab.probe_next = True
    result, exc = await _outcome(
        "fetch_with_client_cert", learner, url, lab.certificates.ca_pem, *files
    )
    _expect_not_process_wide(CLIENT_CERT, lab.guard, "fetch_with_client_cert")
    reached = lab.reached("asks", seen_before)
    if exc is not None and _certificate_error(exc) is not None:
        raise CLIENT_CERT.broken(
            "not-trusted",
            f"the server's certificate, signed by the CA in ca_pem, was refused: "
            f"{_verify_message(_certificate_error(exc))}{_where(exc)}.",
        )
    if reached and all(s.client is None for s in reached):
        raise CLIENT_CERT.broken(
            "no-client-cert",
            "the server asked for a client certificate and received none "
            f"(it answered 401{'; your code raised ' + exception_text(exc) if exc else ''}).",
        )
    if exc is not None:
        raise exc
    if not reached:
        raise CLIENT_CERT.broken(
            "not-trusted",
            f"no request reached the server, and it returned {clip(repr(result), 60)}.",
        )
    got = reached[-1].client
    if got != identity:
        raise CLIENT_CERT.broken(
            "wrong-identity",
            f"this call was given the certificate of {identity}, but the server saw {got}.",
        )
    expected = {"you": identity, "path": reached[-1].path}
    if result != expected:
        raise CLIENT_CERT.broken(
            "wrong-data", f"it returned {clip(repr(result), 80)}, not the server's JSON."
        )
    if spy.left_open:
        raise CLIENT_CERT.broken("session-left-open", "the session was still open after the call.")


async def _mutual_refused(
    learner: Any, spy: SessionSpy, lab: Lab, url: str, files: tuple[str, str], server: str
) -> None:
    before, seen_before = spy.created, len(lab.seen)
    lab.probe_next = True
    result, exc = await _outcome(
        "fetch_with_client_cert", learner, url, lab.certificates.ca_pem, *files
    )
    _expect_not_process_wide(CLIENT_CERT, lab.guard, "fetch_with_client_cert")
    reached = lab.reached(server, seen_before)
    if reached:
        gave = f", and your certificate ({reached[0].client})" if reached[0].client else ""
        if server == "self-signed":
            raise CLIENT_CERT.broken(
                "verification-off",
                f"a server with a self-signed certificate received your request{gave}: the "
                "session accepted a certificate no CA signed.",
            )
        raise CLIENT_CERT.broken(
            "hostname-unchecked",
            f"a server whose certificate names another host received your request{gave}.",
        )
    if exc is None:
        raise CLIENT_CERT.broken(
            "error-swallowed",
            f"the {server} server's certificate was refused, and the call returned "
            f"{clip(repr(result), 60)} instead of raising.",
        )
    if _certificate_error(exc) is None:
        raise exc
    if any(not session.closed for session in spy.sessions[before:]):
        raise CLIENT_CERT.broken(
            "session-left-open-on-error",
            f"when the {server} server's certificate was refused, the session stayed open.",
        )


# --- Task 3 · classify_tls ---------------------------------------------------------------

CLASSIFY = Task(
    "classify_tls",
    Rule(
        "verification-off",
        "trusts the CA in `ca_pem` (verification on)",
        "a self-signed server: 'untrusted', and no request may reach it",
        "verify with `ssl.create_default_context(cafile=ca_pem)`; `ssl=False` makes every "
        "certificate look fine.",
    ),
    RULE_NOT_TRUSTED,
    RULE_PROCESS_WIDE,
    Rule(
        "not-a-certificate-error",
        "any other failure is not a certificate problem: it must raise as it is",
        "a refused port and a plain-HTTP port (its TLS fails with ClientConnectorSSLError, "
        "which is no certificate error): each must raise, not return a label",
        "catch `aiohttp.ClientConnectorCertificateError` only: `ClientError`, `ClientSSLError` "
        "or `Exception` also catch failures no certificate caused.",
    ),
    Rule(
        "status-not-ok",
        '"ok": an answer came back, whatever its status',
        "a good server answering 503: 'ok'",
        "the certificate was fine, so it is 'ok': do not raise for the status here "
        "(no `raise_for_status`).",
    ),
    Rule(
        "hostname-as-expired",
        '"wrong-host": valid, but not for the host in the URL',
        "a certificate for another name, and the good one reached by IP address: 'wrong-host'",
        "a name mismatch is verify_code 62 ('Hostname mismatch') or 64 ('IP address "
        "mismatch'); expiry is 10 ('certificate has expired'): read `certificate_error`.",
    ),
    Rule(
        "wrong-label",
        'return one of "ok", "expired", "wrong-host", "untrusted"',
        "what it returned for each certificate",
        "map the error to one of the four strings; anything else is not an answer.",
    ),
    Rule(
        "misclassified",
        "each kind of certificate gets its label",
        "one server of each kind (expired, another name, by IP address, self-signed, missing "
        "intermediate, another CA's), each label compared",
        "`error.certificate_error.verify_code`: 10 expired; 62 and 64 a wrong host; anything "
        "else (18, 19, 20, 21...) a chain that does not reach the CA.",
    ),
    Rule(
        "session-left-open",
        "every session must be closed",
        "sessions still open after each call, a failed one included",
        "`async with aiohttp.ClientSession(...)`: the block closes it when you return or raise.",
    ),
)


@dataclass(frozen=True)
class Case:
    label: str  # what the server is, in words
    server: str | None  # the lab's server name, if it is one
    expected: str | None  # the label, or None: must raise
    url: str


@check(CLASSIFY)
async def classify_tls(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``classify_tls(url, ca_pem)`` names each certificate failure and lets the rest raise."""
    rng = random.Random(f"{SEED}-classify_tls")
    certificates = Certificates()
    try:
        servers: dict[str, ssl.SSLContext | str] = {
            "good": "good",
            "expired": "expired",
            "wrong-host": "wrong_host",
            "self-signed": "self_signed",
            "missing-intermediate": "missing_intermediate",
            "other-ca": _other_ca_context(),
        }
        async with _lab(servers, certificates) as lab:
            for path in ("/get", "/busy"):
                lab.routes[path] = _answer_for(path)
            cases = _cases(lab, server, rng)
            for case in cases:
                await _classify_one(learner, spy, lab, case)
    finally:
        certificates.cleanup()
    return (
        f"{len(cases)} URLs: each kind of certificate got its label (a name mismatch by IP "
        "address too, a 503 as 'ok'), a refused port and a plain-HTTP port raised, and every "
        "session was closed."
    )


def _answer_for(path: str) -> Callable[..., web.Response]:
    status = 503 if path == "/busy" else 200

    def answer(request: web.Request, seen: Seen) -> web.Response:
        return web.json_response({"path": request.path}, status=status)

    return answer


def _cases(lab: Lab, server: LocalServer, rng: random.Random) -> list[Case]:
    good_port = lab.urls["good"].rsplit(":", 1)[1]
    cases = [
        Case("the good server", "good", "ok", lab.urls["good"] + "/get"),
        Case("an expired certificate", "expired", "expired", lab.urls["expired"] + "/get"),
        Case(
            "a certificate for another name",
            "wrong-host",
            "wrong-host",
            lab.urls["wrong-host"] + "/get",
        ),
        Case(
            "the good certificate reached by IP address (127.0.0.1)",
            "good",
            "wrong-host",
            f"https://127.0.0.1:{good_port}/get",
        ),
        Case(
            "a self-signed certificate",
            "self-signed",
            "untrusted",
            lab.urls["self-signed"] + "/get",
        ),
        Case(
            "a chain missing its intermediate",
            "missing-intermediate",
            "untrusted",
            lab.urls["missing-intermediate"] + "/get",
        ),
        Case(
            "a certificate from another CA", "other-ca", "untrusted", lab.urls["other-ca"] + "/get"
        ),
        Case("the good server answering 503", "good", "ok", lab.urls["good"] + "/busy"),
        Case("a refused port", None, None, refused_url("/get").replace("http://", "https://")),
        Case(
            "a port that speaks plain HTTP",
            None,
            None,
            server.url.replace("http://", "https://") + "/get",
        ),
    ]
    first, rest = cases[:1], cases[1:]
    rng.shuffle(rest)
    return first + rest + [cases[1], cases[2]]  # the first is the good one; two asked twice


async def _classify_one(learner: Any, spy: SessionSpy, lab: Lab, case: Case) -> None:
    seen_before, before = len(lab.seen), spy.created
    lab.probe_next = True
    result, exc = await _outcome("classify_tls", learner, case.url, lab.certificates.ca_pem)
    _expect_not_process_wide(CLASSIFY, lab.guard, "classify_tls")
    reached = case.server is not None and bool(lab.reached(case.server, seen_before))
    refusable = case.expected not in (None, "ok")
    if refusable and reached and (result == "ok" or case.server == "self-signed"):
        what = "no CA vouches for" if case.expected == "untrusted" else "it should refuse"
        if case.expected == "wrong-host":
            what += " (the name was not checked: check_hostname=False?)"
        raise CLASSIFY.broken(
            "verification-off",
            f"for {case.label} it returned {result!r}: the request reached a server {what}.",
        )
    got = repr(result) if exc is None else f"raised {exception_text(exc)}"
    if case.expected is None:
        if exc is None:
            raise CLASSIFY.broken(
                "not-a-certificate-error",
                f"for {case.label} it returned {result!r}: no certificate was involved, "
                "so it must raise.",
            )
    elif case.expected == "ok" and case.label.endswith("503") and result != "ok":
        raise CLASSIFY.broken(
            "status-not-ok",
            f"for {case.label} (its certificate verified) it {_said(got)}, not 'ok'.",
        )
    elif case.expected == "ok" and result != "ok":
        cause = (
            f": {_verify_message(_certificate_error(exc))}"
            if exc is not None and _certificate_error(exc) is not None
            else ""
        )
        raise CLASSIFY.broken(
            "not-trusted",
            f"for {case.label}, whose certificate the CA signed, it {_said(got)}{cause}.",
        )
    elif result != case.expected:
        if exc is not None and _certificate_error(exc) is None:
            raise exc
        if case.expected == "wrong-host" and result == "expired":
            raise CLASSIFY.broken(
                "hostname-as-expired",
                f"for {case.label} it returned 'expired'; the error said: {_said_error(case)}.",
            )
        if exc is None and result not in LABELS:
            raise CLASSIFY.broken(
                "wrong-label",
                f"for {case.label} it returned {clip(repr(result), 60)}, which is not one of "
                f"{', '.join(map(repr, LABELS))}.",
            )
        raise CLASSIFY.broken(
            "misclassified",
            f"for {case.label} it {_said(got)}, not {case.expected!r}; the error said: "
            f"{_said_error(case)}.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise CLASSIFY.broken(
            "session-left-open",
            f"after the call for {case.label}, its session was still open.",
        )


def _said(got: str) -> str:
    return got if got.startswith("raised") else f"returned {got}"


_MESSAGES = {
    "an expired certificate": "certificate has expired (verify_code 10)",
    "a certificate for another name": "Hostname mismatch, certificate is not valid for "
    "'localhost' (verify_code 62)",
    "the good certificate reached by IP address (127.0.0.1)": "IP address mismatch, "
    "certificate is not valid for '127.0.0.1' (verify_code 64)",
    "a self-signed certificate": "self-signed certificate (verify_code 18)",
    "a chain missing its intermediate": "unable to get local issuer certificate (verify_code 20)",
    "a certificate from another CA": "unable to get local issuer certificate (verify_code 20)",
}


def _said_error(case: Case) -> str:
    return f"'{_MESSAGES.get(case.label, case.label)}'"
