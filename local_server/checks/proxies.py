"""Checks for exercise 17, proxies and the environment.

In the notebook: ``from local_server.checks import proxies as check``.

Every check serves its own origin app on its own loop, over plain HTTP and over HTTPS (a test
CA of its own, ``local_server.tls.Certificates``), and starts the course's forward proxies
(``local_server.proxy``): one that asks for Basic credentials, plain ones for the environment,
an intercepting one (the "company proxy") and an impostor with a CA of its own. What the
learner's code did is judged from the proxies' records (which requests and tunnels reached
them, with which ``Proxy-Authorization``, whether they accepted it, what an interceptor
read), from what the origin received (its headers), from what the code returned or raised
(and whether its text carries the password), from the warnings it caused, the sessions it
left open, and the process: the environment is set around each call and restored exactly
afterwards, and after every call of task 3 a fresh default context must not trust the
company CA.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from ..proxy import ProxyRecord, ProxyServer, start_proxy
from ..runner import LocalServer
from ..serving import serve
from ..tls import Certificates, serve_https
from .evidence import clip, exception_text, is_learner_file, learner_line
from .harness import SessionSpy, call_async, check, plural
from .observe import current_or_none
from .rules import Rule, Task
from .tls_certificates import TrustGuard, _certificate_error, _verify_message

SEED = 0
# The proxy variables a check clears and sets around each call (any case).
PROXY_VARIABLES = {"http_proxy", "https_proxy", "no_proxy", "all_proxy", "ws_proxy", "wss_proxy"}

# --- the origin, the proxies, the environment --------------------------------------------


@dataclass
class Seen:
    """One request the origin received."""

    scheme: str
    path: str
    headers: dict[str, str]


@dataclass
class Origin:
    """The check's origin app, served over HTTP and HTTPS, and what it received."""

    http: str = ""
    https: str = ""
    self_signed: str = ""  # an HTTPS origin whose certificate no CA signed
    seen: list[Seen] = field(default_factory=list)
    on_request: Callable[[], Any] | None = None  # called while a request is under way

    def app(self, scheme: str) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen.append(Seen(scheme, request.path_qs, dict(request.headers)))
            if self.on_request is not None:
                self.on_request()
            if request.path.startswith("/broken/"):
                return web.json_response(
                    {"error": "Internal Server Error", "detail": "broken on purpose"}, status=500
                )
            return web.json_response(answer_for(request.path_qs))

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    def since(self, start: int) -> list[Seen]:
        return self.seen[start:]


def answer_for(path: str) -> dict[str, Any]:
    """The JSON the origin answers to ``path``: what a correct answer returns."""
    return {"path": path, "token": path.rsplit("/", 1)[-1]}


@contextlib.asynccontextmanager
async def _origin(certificates: Certificates) -> AsyncIterator[Origin]:
    origin = Origin()
    async with contextlib.AsyncExitStack() as stack:
        origin.http = await stack.enter_async_context(
            serve(origin.app("http"), shutdown_timeout=0.1)
        )
        origin.https = await stack.enter_async_context(
            serve_https(
                origin.app("https"), certificates.server_context("good"), shutdown_timeout=0.1
            )
        )
        origin.self_signed = await stack.enter_async_context(
            serve_https(
                origin.app("self-signed"),
                certificates.server_context("self_signed"),
                shutdown_timeout=0.1,
            )
        )
        yield origin


@contextlib.contextmanager
def _proxies(*made: ProxyServer) -> Iterator[tuple[ProxyServer, ...]]:
    try:
        yield made
    finally:
        for proxy in made:
            proxy.stop()


def _records(proxy: ProxyServer, start: int) -> list[ProxyRecord]:
    return proxy.stats().records[start:]


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """The proxy variables for the block only (none but these); ``os.environ`` restored exactly."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.lower() in PROXY_VARIABLES:
                del os.environ[name]
        os.environ.update(variables)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _outcome(task: str, learner: Any, *args: Any) -> tuple[Any, BaseException | None]:
    """(returned, None) or (None, the exception): the learner's call, never raising."""
    try:
        return await call_async(task, learner, *args), None
    except (aiohttp.ClientError, ssl.SSLError, ValueError, ExceptionGroup) as exc:
        return None, exc


async def _fetch_through(
    learner: Any, url: str, locked: Locked, certificates: Certificates
) -> tuple[Any, BaseException | None]:
    """The learner's fetch_through of ``url`` via the locked proxy, in a clean environment."""
    with environment():
        return await _outcome(
            "fetch_through",
            learner,
            url,
            locked.proxy.url,
            locked.user,
            locked.password,
            certificates.ca_pem,
        )


def _where(exc: BaseException) -> str:
    line = learner_line(exc)
    return f" ({line})" if line else ""


def _warnings_since(start: int) -> list[Any]:
    obs = current_or_none()
    quiet = getattr(obs, "quiet", None)
    return list(quiet.warnings[start:]) if quiet is not None else []


def _warning_count() -> int:
    obs = current_or_none()
    quiet = getattr(obs, "quiet", None)
    return len(quiet.warnings) if quiet is not None else 0


def _quote_warning(warning: Any) -> str:
    text = clip(str(warning.message), 90)
    if is_learner_file(warning.filename):
        line = linecache.getline(warning.filename, warning.lineno).strip()
        if line:
            return f"{text} (line {warning.lineno}: `{clip(line, 70)}`)"
    return text


# --- Task 1 · fetch_through --------------------------------------------------------------

THROUGH = Task(
    "fetch_through",
    Rule(
        "not-through-proxy",
        "send the request through `proxy`",
        "the proxy's records for each call: the origin must receive nothing the proxy did not "
        "forward",
        "pass `proxy=proxy` to the request (or to `ClientSession(proxy=...)`).",
    ),
    Rule(
        "http-without-credentials",
        "for an `http://` URL, send the `Proxy-Authorization` header on the request itself",
        "the proxy's record of the plain-HTTP request: its Proxy-Authorization header and "
        "whether the proxy accepted it",
        "aiohttp does not send `proxy_headers=` for http:// URLs (aio-libs/aiohttp#4422): put "
        "the header in `headers=` there; the proxy consumes it.",
    ),
    Rule(
        "connect-without-credentials",
        "for an `https://` URL, send it on the `CONNECT` (`proxy_headers=`)",
        "the proxy's record of the CONNECT: its Proxy-Authorization header and whether the "
        "proxy accepted it",
        "for https:// the proxy sees only the CONNECT: "
        "`proxy_headers={'Proxy-Authorization': aiohttp.encode_basic_auth(user, password)}`.",
    ),
    Rule(
        "header-leaked-to-origin",
        "the origin must never receive the proxy's credentials",
        "the headers the HTTPS origin received through the tunnel",
        "for https:// the header goes in `proxy_headers=` only: in `headers=` it travels "
        "inside the tunnel to the origin.",
    ),
    Rule(
        "credentials-in-url",
        "not in the proxy URL",
        "a proxy that refuses the credentials (and a password with `/` and `@`): the text of "
        "the error your code raised must not contain the password",
        "a URL ends up in error messages and logs: send a `Proxy-Authorization` header, built "
        "with `aiohttp.encode_basic_auth(user, password)`.",
    ),
    Rule(
        "proxy-auth-deprecated",
        "not the deprecated `proxy_auth=`",
        "the DeprecationWarnings your call caused",
        "`proxy_auth=` and `BasicAuth` are deprecated in aiohttp 3.14: send the header "
        "yourself, `aiohttp.encode_basic_auth(user, password)`.",
    ),
    Rule(
        "not-trusted",
        "for an `https://` URL, trust the CA in `ca_pem` (the origin's)",
        "the HTTPS origin, whose certificate that CA signed: it must be accepted",
        "`ssl=ssl.create_default_context(cafile=ca_pem)` on the request: the TLS handshake "
        "through the tunnel is with the origin.",
    ),
    Rule(
        "verification-off",
        "keep verification on",
        "an HTTPS origin with a self-signed certificate, behind the same proxy: it must "
        "receive no request",
        "never `ssl=False` or `CERT_NONE`: trust the CA with "
        "`ssl.create_default_context(cafile=ca_pem)`.",
    ),
    Rule(
        "error-swallowed",
        "let any other error raise",
        "the self-signed origin: the call must raise its `aiohttp.ClientConnectorCertificateError`",
        "catch nothing you cannot handle: returning a default hides the failure.",
    ),
    Rule(
        "wrong-data",
        "return the origin's JSON body",
        "what each call returned, compared with what the origin sent",
        "`return await response.json()` inside the response's `async with`.",
    ),
    Rule(
        "407-swallowed",
        "raise `aiohttp.ClientResponseError` on a `407`",
        "a proxy that refuses the credentials, for an http:// and an https:// URL: the call "
        "must raise an error with status 407, not return",
        "for http:// a 407 is an ordinary response: call `response.raise_for_status()` before "
        "reading it (for https:// aiohttp raises ClientHttpProxyError itself).",
    ),
    Rule(
        "407-retried",
        "a `407` is not worth retrying",
        "the requests the refusing proxy received for one call",
        "the same credentials get the same 407: raise at once.",
    ),
    Rule(
        "session-left-open",
        "close the session, however the call ends",
        "sessions still open after each call, one that raised included",
        "`async with aiohttp.ClientSession() as session:` closes it when you return or raise.",
    ),
)


@dataclass
class Locked:
    """A proxy that asks for credentials, and the ones it accepts."""

    proxy: ProxyServer
    user: str
    password: str


def _credentials(rng: random.Random) -> tuple[str, str]:
    user = rng.choice(("ada", "grace", "linus", "guido"))
    password = f"{rng.choice(('pa', 'se', 'ke'))}/{rng.getrandbits(16):04x}@{rng.randrange(99)}"
    return user, password


@check(THROUGH)
async def fetch_through(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_through(url, proxy, user, password, ca_pem)``: one GET through a locked proxy."""
    rng = random.Random(f"{SEED}-fetch_through")
    certificates = Certificates()
    first, second = _credentials(rng), _credentials(rng)
    try:
        with _proxies(start_proxy(auth=first), start_proxy(auth=second)) as (one, two):
            async with _origin(certificates) as origin:
                lockeds = [Locked(one, *first), Locked(two, *second)]
                calls = [(locked, scheme) for locked in lockeds for scheme in ("http", "https")]
                rng.shuffle(calls)
                for locked, scheme in calls:
                    await _through_good(learner, spy, origin, certificates, locked, scheme, rng)
                refusing = Locked(one, first[0], _credentials(rng)[1])  # a password it refuses
                schemes = ["https", "http"]
                rng.shuffle(schemes)
                for scheme in schemes:
                    await _through_refused(learner, spy, origin, certificates, refusing, scheme)
                await _through_impostor(learner, spy, origin, certificates, lockeds[0])
    finally:
        certificates.cleanup()
    return (
        "4 GETs (http:// and https://, two proxies, two users) went through the proxy with "
        "the credentials where each scheme carries them, and the origin never received them; "
        "no deprecation warning; a refused password raised its 407 at once without showing "
        "the password; a self-signed origin was refused; every session was closed."
    )


def _url(origin: Origin, scheme: str, rng: random.Random) -> str:
    base = origin.https if scheme == "https" else origin.http
    return f"{base}/data/{rng.getrandbits(32):08x}"


async def _through_good(
    learner: Any,
    spy: SessionSpy,
    origin: Origin,
    certificates: Certificates,
    locked: Locked,
    scheme: str,
    rng: random.Random,
) -> None:
    url = _url(origin, scheme, rng)
    start, seen_start = len(locked.proxy.stats().records), len(origin.seen)
    warned, before = _warning_count(), spy.created
    result, exc = await _fetch_through(learner, url, locked, certificates)
    records = _records(locked.proxy, start)
    _judge_password(exc, locked.password)
    _judge_credentials(records, scheme, exc)
    if exc is not None and _certificate_error(exc) is not None:
        raise THROUGH.broken(
            "not-trusted",
            f"the HTTPS origin's certificate, signed by the CA in ca_pem, was refused: "
            f"{_verify_message(_certificate_error(exc))}{_where(exc)}.",
        )
    _judge_origin(origin.since(seen_start), records, url)
    _judge_deprecations(_warnings_since(warned))
    if exc is not None:
        raise exc
    path = url.split("/", 3)[3]
    if result != answer_for("/" + path):
        raise THROUGH.broken(
            "wrong-data",
            f"for {scheme}:// it returned {clip(repr(result), 70)}, not the origin's JSON.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise THROUGH.broken("session-left-open", "the session was still open after the call.")


def _judge_password(exc: BaseException | None, password: str) -> None:
    if exc is None:
        return
    text = f"{exc!s} {exc!r}"
    for shown in (password, quote(password, safe="")):
        if shown in text:
            raise THROUGH.broken(
                "credentials-in-url",
                f"your code raised {type(exc).__name__}, and its text holds the password: "
                f"{_masked(clip(str(exc).replace(shown, '<the password>'), 110))}{_where(exc)}.",
            )


def _judge_credentials(records: list[ProxyRecord], scheme: str, exc: BaseException | None) -> None:
    kind = "connect" if scheme == "https" else "http"
    for record in records:
        if record.kind != kind or record.authorized is not False:
            continue
        sent = record.header("Proxy-Authorization")
        what = (
            f"a Proxy-Authorization it refused ({clip(sent, 30)})"
            if sent
            else ("no Proxy-Authorization header")
        )
        code = "connect-without-credentials" if kind == "connect" else "http-without-credentials"
        raised = f"; your code raised {exception_text(exc)}" if exc is not None else ""
        raise THROUGH.broken(
            code,
            f"the proxy received {record.method} {_masked(record.target)} with {what} and "
            f"answered {record.status}{_masked(raised)}.",
        )


def _judge_origin(seen: list[Seen], records: list[ProxyRecord], url: str) -> None:
    if seen and not records:
        raise THROUGH.broken(
            "not-through-proxy",
            f"the origin received GET {seen[0].path} directly: the proxy recorded nothing.",
        )
    for request in seen:
        leaked = request.headers.get("Proxy-Authorization")
        if leaked is not None:
            raise THROUGH.broken(
                "header-leaked-to-origin",
                f"the {request.scheme.upper()} origin received a Proxy-Authorization header "
                f"({leaked.split(' ')[0]} …) with GET {request.path}: the proxy's credentials "
                "travelled past the proxy, to the origin.",
            )


def _judge_deprecations(caught: list[Any]) -> None:
    for warning in caught:
        if issubclass(warning.category, DeprecationWarning) and (
            "proxy_auth" in str(warning.message) or "BasicAuth" in str(warning.message)
        ):
            raise THROUGH.broken(
                "proxy-auth-deprecated",
                f"the call caused a DeprecationWarning: {_quote_warning(warning)}.",
            )


async def _through_refused(
    learner: Any,
    spy: SessionSpy,
    origin: Origin,
    certificates: Certificates,
    locked: Locked,
    scheme: str,
) -> None:
    rng = random.Random(f"{SEED}-refused-{scheme}")
    url = _url(origin, scheme, rng)
    start, warned, before = len(locked.proxy.stats().records), _warning_count(), spy.created
    result, exc = await _fetch_through(learner, url, locked, certificates)
    records = _records(locked.proxy, start)
    _judge_password(exc, locked.password)
    _judge_deprecations(_warnings_since(warned))
    if not records:
        raise THROUGH.broken(
            "not-through-proxy", f"the call for {_masked(url)} sent nothing to the proxy."
        )
    refused = [r for r in records if r.status == 407]
    if exc is None:
        raise THROUGH.broken(
            "407-swallowed",
            f"the proxy refused the password and answered 407 to {records[0].method} "
            f"{_masked(records[0].target)}; fetch_through returned {clip(repr(result), 60)} "
            "instead of raising.",
        )
    if _status_error(exc, 407) is None:
        raise exc
    if len(refused) > 1:
        raise THROUGH.broken(
            "407-retried",
            f"the proxy answered 407 to {plural(len(refused), 'request')} for one call: the "
            "same credentials get the same answer.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise THROUGH.broken(
            "session-left-open",
            f"after the 407 for {scheme}://, the session was still open.",
        )


# --- Task 2 · fetch_from_environment -----------------------------------------------------

ENVIRONMENT = Task(
    "fetch_from_environment",
    Rule(
        "trust-env-off",
        "take the proxy from the environment (`HTTP_PROXY` or `http_proxy`)",
        "the proxy's records: every URL whose host is not in NO_PROXY must pass through it",
        "`aiohttp.ClientSession(trust_env=True)`: without it aiohttp ignores the variables "
        "without a word.",
    ),
    Rule(
        "no-proxy-ignored",
        "honour `NO_PROXY`: its hosts are fetched directly",
        "the proxy's records: no URL whose host is in NO_PROXY may pass through it",
        "let aiohttp read the variables (`trust_env=True`) instead of passing `proxy=` "
        "yourself: an explicit proxy skips NO_PROXY.",
    ),
    Rule(
        "env-changed",
        "leave the environment as you found it",
        "`os.environ` after each call, compared with before",
        "read the variables, do not set or delete them: `trust_env=True` reads them at each "
        "request.",
    ),
    Rule(
        "session-per-url",
        "use one session for all the URLs",
        "the sessions created during one call, counted",
        "open one `ClientSession(trust_env=True)` before the loop and make every request with it.",
    ),
    Rule(
        "wrong-data",
        "return the JSON bodies, one per URL, in the order of `urls`",
        "the list returned, compared with what the origin sent",
        "`results.append(await response.json())` for each URL in turn (or `asyncio.gather`).",
    ),
    Rule(
        "error-swallowed",
        "raise `aiohttp.ClientResponseError` if a URL answers an error status",
        "a call whose third URL answers 500: it must raise, not return",
        "`response.raise_for_status()` before reading each body.",
    ),
    Rule(
        "session-left-open",
        "close the session, however the call ends",
        "sessions still open after each call, the one that raised included",
        "`async with aiohttp.ClientSession(trust_env=True) as session:`.",
    ),
)


@dataclass(frozen=True)
class Setting:
    """The variables of one call, and which of its URLs must pass the proxy."""

    variables: dict[str, str]
    urls: list[str]
    proxied: list[bool]
    proxy: ProxyServer
    failing: int | None = None


@check(ENVIRONMENT)
async def fetch_from_environment(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_from_environment(urls)``: the proxy and NO_PROXY taken from the environment."""
    rng = random.Random(f"{SEED}-fetch_from_environment")
    certificates = Certificates()
    try:
        with _proxies(start_proxy(), start_proxy()) as (one, two):
            async with _origin(certificates) as origin:
                for setting in _settings(origin, one, two, rng):
                    await _from_environment(learner, spy, origin, setting)
    finally:
        certificates.cleanup()
    return (
        "three calls with the proxy set in HTTP_PROXY, then http_proxy: every URL went through "
        "the proxy but those on NO_PROXY's host, one session per call, the bodies in order, "
        "a 500 mid-job raised, the environment untouched, every session closed."
    )


def _settings(
    origin: Origin, one: ProxyServer, two: ProxyServer, rng: random.Random
) -> list[Setting]:
    port = origin.http.rsplit(":", 1)[1]
    direct_base, proxied_base = f"http://localhost:{port}", f"http://127.0.0.1:{port}"

    def urls(count: int) -> tuple[list[str], list[bool]]:
        flags = [True, False] + [rng.random() < 0.5 for _ in range(count - 2)]
        rng.shuffle(flags)
        made = [
            f"{proxied_base if through else direct_base}/data/{rng.getrandbits(32):08x}"
            for through in flags
        ]
        return made, flags

    first, second, third = urls(5), urls(4), urls(4)
    broken = third[0][2].replace("/data/", "/broken/")
    third_urls = [*third[0][:2], broken, *third[0][3:]]
    return [
        Setting({"HTTP_PROXY": one.url, "NO_PROXY": "localhost"}, *first, one),
        Setting({"http_proxy": two.url, "no_proxy": "example.test, localhost"}, *second, two),
        Setting({"HTTP_PROXY": one.url, "NO_PROXY": "localhost"}, third_urls, third[1], one, 2),
    ]


async def _from_environment(
    learner: Any, spy: SessionSpy, origin: Origin, setting: Setting
) -> None:
    start, before = len(setting.proxy.stats().records), spy.created
    with environment(**setting.variables):
        inside = dict(os.environ)
        result, exc = await _outcome("fetch_from_environment", learner, list(setting.urls))
        after = dict(os.environ)
    _judge_environment(inside, after)
    records = _records(setting.proxy, start)
    targets = [record.target for record in records]
    shown = ", ".join(f"{name}={value}" for name, value in setting.variables.items())
    for url, through in zip(setting.urls, setting.proxied, strict=True):
        passed = url in targets
        if through and not passed and setting.failing is None:
            raise ENVIRONMENT.broken(
                "trust-env-off",
                f"with {_masked(shown)}, GET {_masked(url)} went directly: the proxy recorded "
                f"{plural(len(records), 'request')}.",
            )
        if passed and not through:
            raise ENVIRONMENT.broken(
                "no-proxy-ignored",
                f"with {_masked(shown)}, GET {_masked(url)} went through the proxy: its host "
                "is in NO_PROXY.",
            )
    created = spy.created - before
    if created > 1:
        raise ENVIRONMENT.broken(
            "session-per-url",
            f"{plural(created, 'session')} were created for {len(setting.urls)} URLs.",
        )
    if setting.failing is not None:
        _judge_failing(result, exc, setting)
    else:
        if exc is not None:
            raise exc
        expected = [answer_for("/" + url.split("/", 3)[3]) for url in setting.urls]
        if result != expected:
            raise ENVIRONMENT.broken(
                "wrong-data",
                f"for {len(setting.urls)} URLs it returned {clip(repr(result), 90)}; expected "
                "each one's JSON body, in order.",
            )
    if any(not session.closed for session in spy.sessions[before:]):
        raise ENVIRONMENT.broken("session-left-open", "the session was still open after the call.")


def _masked(text: str) -> str:
    """Ports hidden, so that a verdict reads the same on every run."""
    return re.sub(r":\d{2,5}\b", ":PORT", text)


def _judge_environment(inside: dict[str, str], after: dict[str, str]) -> None:
    changed = sorted(
        name for name in set(inside) | set(after) if inside.get(name) != after.get(name)
    )
    if changed:
        name = changed[0]
        how = "deleted" if name not in after else ("set" if name not in inside else "changed")
        raise ENVIRONMENT.broken(
            "env-changed",
            f"your call {how} {name}"
            f"{' (and ' + str(len(changed) - 1) + ' more)' if len(changed) > 1 else ''} in "
            "os.environ.",
        )


def _judge_failing(result: Any, exc: BaseException | None, setting: Setting) -> None:
    failing = _masked(setting.urls[setting.failing or 0])
    if exc is None:
        raise ENVIRONMENT.broken(
            "error-swallowed",
            f"GET {failing} answered 500, and the call returned {clip(repr(result), 60)} "
            "instead of raising.",
        )
    if _status_error(exc, 500) is None:
        raise exc


def _status_error(exc: BaseException, status: int) -> aiohttp.ClientResponseError | None:
    """The ``ClientResponseError`` with ``status`` that ``exc`` is, or groups (a TaskGroup's)."""
    if isinstance(exc, aiohttp.ClientResponseError) and exc.status == status:
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _status_error(inner, status)
            if found is not None:
                return found
    return None


# --- Task 3 · fetch_via_inspecting_proxy -------------------------------------------------

INSPECTING = Task(
    "fetch_via_inspecting_proxy",
    Rule(
        "not-through-proxy",
        "GET the URL through the proxy whose URL is `proxy`",
        "the company proxy's records for each call: it must have read the request",
        "pass `proxy=proxy` to the request (or to `ClientSession(proxy=...)`).",
    ),
    Rule(
        "not-trusted",
        "trust `company_ca`, the intercepting proxy's CA",
        "the company proxy's certificate, which that CA signed: it must be accepted",
        "`ssl.create_default_context(cafile=company_ca)` (or the default context plus "
        "`load_verify_locations(company_ca)`), passed as `ssl=`.",
    ),
    Rule(
        "verification-off",
        "keep verification on: a proxy with another CA must read nothing",
        "an impostor proxy that intercepts with a CA of its own: its records must show no "
        "request it decrypted",
        "never `ssl=False` or `CERT_NONE`: it accepts any interceptor, for every host. Trust "
        "`company_ca` instead.",
    ),
    Rule(
        "process-wide",
        "trust it for this session only",
        "after each call, a fresh `ssl.create_default_context()` and aiohttp's shared default "
        "context each try a TLS handshake with the proxy's certificate: none may trust it",
        "make one context with `cafile=company_ca` and give it to this session; change no "
        "environment variable, `ssl` function or shared context.",
    ),
    Rule(
        "error-swallowed",
        "raise the `aiohttp.ClientConnectorCertificateError` when the certificate is refused",
        "the impostor proxy: the call must raise that error",
        "do not catch the certificate error: returning a default hides an attack.",
    ),
    Rule(
        "wrong-data",
        "return the origin's JSON body",
        "what each call returned, compared with what the origin sent",
        "`return await response.json()` inside the response's `async with`.",
    ),
    Rule(
        "session-left-open",
        "close the session, however the call ends",
        "sessions still open after each call, the refused one included",
        "`async with aiohttp.ClientSession() as session:`.",
    ),
)


class _ProxyCertificates:
    """What ``TrustGuard`` needs to probe trust in an intercepting proxy's CA."""

    def __init__(self, proxy: ProxyServer) -> None:
        self._proxy = proxy
        self.ca_pem = proxy.ca_pem

    def server_context(self, kind: str) -> ssl.SSLContext:
        return self._proxy._certificates.context_for("localhost")  # type: ignore[union-attr]


@check(INSPECTING)
async def fetch_via_inspecting_proxy(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_via_inspecting_proxy(url, proxy, company_ca)``: trust the company CA, no more."""
    rng = random.Random(f"{SEED}-fetch_via_inspecting_proxy")
    certificates = Certificates()
    try:
        company = start_proxy(intercept=True, upstream_cafile=certificates.ca_pem)
        impostor = start_proxy(intercept=True, upstream_cafile=certificates.ca_pem)
        with _proxies(company, impostor):
            guard = TrustGuard(_ProxyCertificates(company))  # type: ignore[arg-type]
            try:
                async with _origin(certificates) as origin:
                    origin.on_request = guard.probe  # while a request is under way, too
                    plan = ["company", "company", "impostor", "company"]
                    for who in plan:
                        through = company if who == "company" else impostor
                        await _inspected(learner, spy, origin, through, company, guard, rng)
            finally:
                guard.restore()
    finally:
        certificates.cleanup()
    return (
        "3 GETs through the company's intercepting proxy trusted its CA, for this session "
        "only; an impostor with another CA was refused before it read anything, and the "
        "certificate error raised; every session was closed."
    )


async def _inspected(
    learner: Any,
    spy: SessionSpy,
    origin: Origin,
    through: ProxyServer,
    company: ProxyServer,
    guard: TrustGuard,
    rng: random.Random,
) -> None:
    url = _url(origin, "https", rng)
    start, before = len(through.stats().records), spy.created
    with environment():
        result, exc = await _outcome(
            "fetch_via_inspecting_proxy", learner, url, through.url, company.ca_pem
        )
        guard.probe()  # before the environment is put back
    if guard.evidence:
        raise INSPECTING.broken(
            "process-wide",
            f"after the call, code that is not your session trusts the company CA: "
            f"{guard.evidence[0]}.",
        )
    records = _records(through, start)
    read = [r for r in records if r.kind == "intercepted"]
    if through is not company:
        _judge_impostor(result, exc, read, spy, before)
        return
    if not records:
        raise INSPECTING.broken(
            "not-through-proxy",
            f"the company proxy recorded nothing for {_masked(url)}"
            f"{'; your code raised ' + type(exc).__name__ if exc else ''}: the request went "
            "directly to the origin.",
        )
    if exc is not None and _certificate_error(exc) is not None:
        raise INSPECTING.broken(
            "not-trusted",
            f"the company proxy's certificate, signed by company_ca, was refused: "
            f"{_verify_message(_certificate_error(exc))}{_where(exc)}.",
        )
    if exc is not None:
        raise exc
    if result != answer_for("/" + url.split("/", 3)[3]):
        raise INSPECTING.broken(
            "wrong-data", f"it returned {clip(repr(result), 70)}, not the origin's JSON."
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise INSPECTING.broken("session-left-open", "the session was still open after the call.")


def _judge_impostor(
    result: Any, exc: BaseException | None, read: list[ProxyRecord], spy: SessionSpy, before: int
) -> None:
    if read:
        token = read[0].header("Authorization")
        extra = f", with Authorization {clip(token, 20)}" if token else ""
        raise INSPECTING.broken(
            "verification-off",
            f"an impostor proxy with a CA of its own decrypted and read {read[0].method} "
            f"{_masked(read[0].target)}{extra}: your session accepted its certificate.",
        )
    if exc is None:
        raise INSPECTING.broken(
            "error-swallowed",
            f"the impostor's certificate was refused, and the call returned "
            f"{clip(repr(result), 60)} instead of raising.",
        )
    if _certificate_error(exc) is None:
        raise exc
    if any(not session.closed for session in spy.sessions[before:]):
        raise INSPECTING.broken(
            "session-left-open",
            "when the impostor's certificate was refused, the session stayed open.",
        )


async def _through_impostor(
    learner: Any, spy: SessionSpy, origin: Origin, certificates: Certificates, locked: Locked
) -> None:
    """A self-signed HTTPS origin, through a proxy that accepts the credentials: refused."""
    url = f"{origin.self_signed}/data/{random.Random(f'{SEED}-self-signed').getrandbits(32):08x}"
    seen_start, before = len(origin.seen), spy.created
    result, exc = await _fetch_through(learner, url, locked, certificates)
    reached = [s for s in origin.since(seen_start) if s.scheme == "self-signed"]
    if reached:
        raise THROUGH.broken(
            "verification-off",
            f"an HTTPS origin with a self-signed certificate received GET {reached[0].path}: "
            "your session accepted a certificate no CA signed.",
        )
    if exc is None:
        raise THROUGH.broken(
            "error-swallowed",
            f"the self-signed origin's certificate was refused, and fetch_through returned "
            f"{clip(repr(result), 60)} instead of raising.",
        )
    if _certificate_error(exc) is None:
        raise exc
    if any(not session.closed for session in spy.sessions[before:]):
        raise THROUGH.broken(
            "session-left-open", "after the self-signed origin was refused, the session was open."
        )
