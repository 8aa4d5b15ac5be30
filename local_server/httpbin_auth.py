"""httpbin-compatible cookies and authentication: /cookies, /basic-auth, /bearer, /response-
headers, /user-agent, /ip.

Errors are JSON like everywhere else: a failed login is a JSON 401 (404 on /hidden-basic-auth)
that keeps httpbin's ``WWW-Authenticate`` header. Cookies are set on the redirect to /cookies;
remember that aiohttp's default ``CookieJar`` ignores cookies from an IP address such as
127.0.0.1: use ``aiohttp.CookieJar(unsafe=True)`` against this server.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from http.cookies import CookieError

from aiohttp import web
from multidict import CIMultiDict

from .errors import bad_request
from .httpbin import multi_to_json, origin_of

routes = web.RouteTableDef()

MAX_COOKIES = 20  # cookies set or deleted by one request
MAX_RESPONSE_HEADERS = 20  # headers one /response-headers request may set

BASIC_CHALLENGE = 'Basic realm="Fake Realm"'
# RFC 9110 token: what a header or cookie name may be made of.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What aiohttp refuses in a header value (it would raise while sending: a 500 for us).
FORBIDDEN_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that frame the message: a caller who set them could corrupt the connection.
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te"}
)
# Headers that would turn a reflected response into a page that acts in a browser: a refresh
# to another site, or a lifted sandbox. Every /response-headers answer is sandboxed instead.
SAFETY_HEADERS = frozenset({"refresh", "content-security-policy", "x-content-type-options"})
SANDBOX = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}


# --- who is asking -----------------------------------------------------------------------------


@routes.get("/user-agent")
async def user_agent(request: web.Request) -> web.Response:
    """The request's User-Agent header (null if none was sent)."""
    return web.json_response({"user-agent": request.headers.get("User-Agent")})


@routes.get("/ip")
async def ip(request: web.Request) -> web.Response:
    """The client's IP address, as this server sees it."""
    return web.json_response({"origin": origin_of(request)})


# --- cookies -----------------------------------------------------------------------------------


@routes.get("/cookies")
async def cookies(request: web.Request) -> web.Response:
    """The cookies the request sent."""
    return web.json_response({"cookies": dict(request.cookies)})


def _to_cookies() -> web.Response:
    """The 302 to /cookies that carries the cookie changes."""
    return web.Response(status=302, headers={"Location": "/cookies"})


def _check_cookie(name: str, value: str) -> None:
    if not TOKEN.fullmatch(name):
        bad_request(f"a cookie name is letters, digits and !#$%&'*+-.^_`|~, got {name[:40]!r}")
    if not value.isascii() or not value.isprintable():
        bad_request(f"cookie {name!r}: the value must be printable ASCII (percent-encode the rest)")


def _set_cookies(response: web.Response, pairs: list[tuple[str, str]]) -> None:
    if len(pairs) > MAX_COOKIES:
        bad_request(f"at most {MAX_COOKIES} cookies at a time, got {len(pairs)}")
    for name, value in pairs:
        _check_cookie(name, value)
        try:
            response.set_cookie(name, value)
        except CookieError as exc:  # a reserved name: expires, path, domain, ...
            bad_request(f"cookie {name!r} cannot be set: {exc}")


@routes.get("/cookies/set")
async def cookies_set(request: web.Request) -> web.Response:
    """Sets the cookies given as ?name=value (at most 20), then redirects to /cookies."""
    response = _to_cookies()
    _set_cookies(response, list(request.query.items()))
    return response


@routes.get("/cookies/set/{name}/{value}")
async def cookies_set_one(request: web.Request) -> web.Response:
    """Sets the cookie name=value, then redirects to /cookies."""
    response = _to_cookies()
    _set_cookies(response, [(request.match_info["name"], request.match_info["value"])])
    return response


@routes.get("/cookies/delete")
async def cookies_delete(request: web.Request) -> web.Response:
    """Expires the cookies named in ?a&b (at most 20), then redirects to /cookies."""
    names = list(dict.fromkeys(request.query.keys()))
    if len(names) > MAX_COOKIES:
        bad_request(f"at most {MAX_COOKIES} cookies at a time, got {len(names)}")
    response = _to_cookies()
    for name in names:
        _check_cookie(name, "")
        try:
            response.del_cookie(name)
        except CookieError as exc:
            bad_request(f"cookie {name!r} cannot be deleted: {exc}")
    return response


# --- authentication ----------------------------------------------------------------------------


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """The user and password of a Basic Authorization header, or None if absent or malformed.

    The credentials are read as UTF-8 (what ``aiohttp.encode_basic_auth`` sends), falling back
    to Latin-1 (the old ``BasicAuth`` default).
    """
    scheme, _, encoded = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _basic_auth_ok(request: web.Request) -> bool:
    credentials = _basic_credentials(request)
    if credentials is None:
        return False
    user, password = credentials
    expected_user, expected_password = request.match_info["user"], request.match_info["passwd"]
    return _same(user, expected_user) & _same(password, expected_password)


@routes.get("/basic-auth/{user}/{passwd}")
async def basic_auth(request: web.Request) -> web.Response:
    """Basic auth must match user/passwd in the path: else 401 with a Basic challenge."""
    if not _basic_auth_ok(request):
        raise web.HTTPUnauthorized(
            text="send Authorization: Basic with the user and password in the path",
            headers={"WWW-Authenticate": BASIC_CHALLENGE},
        )
    return web.json_response({"authenticated": True, "user": request.match_info["user"]})


@routes.get("/hidden-basic-auth/{user}/{passwd}")
async def hidden_basic_auth(request: web.Request) -> web.Response:
    """Like /basic-auth, but a wrong login gets a 404 with no challenge."""
    if not _basic_auth_ok(request):
        raise web.HTTPNotFound(text="not found (or wrong credentials: this one does not say)")
    return web.json_response({"authenticated": True, "user": request.match_info["user"]})


@routes.get("/bearer")
async def bearer(request: web.Request) -> web.Response:
    """Needs Authorization: Bearer <token> (any non-empty token), else 401."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise web.HTTPUnauthorized(
            text="send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    return web.json_response({"authenticated": True, "token": token})


# --- response headers --------------------------------------------------------------------------


def _chosen_headers(request: web.Request) -> CIMultiDict[str]:
    """The query as response headers, refusing what would break or forge the HTTP framing."""
    chosen: CIMultiDict[str] = CIMultiDict()
    if len(request.query) > MAX_RESPONSE_HEADERS:
        bad_request(f"at most {MAX_RESPONSE_HEADERS} headers at a time, got {len(request.query)}")
    for name, value in request.query.items():
        if not TOKEN.fullmatch(name):
            bad_request(f"a header name is letters, digits and !#$%&'*+-.^_`|~, got {name[:40]!r}")
        if name.lower() in FRAMING_HEADERS:
            bad_request(f"{name} frames the HTTP message: the server sets it, you cannot")
        if name.lower() in SAFETY_HEADERS:
            bad_request(
                f"{name} is not settable here: it would make this page act in a browser "
                "(a redirect elsewhere, or no sandbox)"
            )
        if FORBIDDEN_IN_HEADER.search(value):
            bad_request(f"header {name!r}: control characters (CR, LF, ...) are not allowed")
        chosen.add(name, value)
    return chosen


def _headers_body(headers: CIMultiDict[str]) -> bytes:
    """httpbin's body: the response's own headers as JSON, Content-Length included.

    The body's length appears in the body, so iterate until it no longer changes.
    """
    body = b""
    for _ in range(10):  # settles in two or three rounds: only the digit count can change
        shown: CIMultiDict[str] = CIMultiDict(headers)
        shown["Content-Length"] = str(len(body))
        previous, body = body, json.dumps(multi_to_json(shown), indent=2).encode() + b"\n"
        if len(body) == len(previous):
            break
    return body


@routes.get("/response-headers")
@routes.post("/response-headers")
async def response_headers(request: web.Request) -> web.Response:
    """Sets response headers from ?Name=value (at most 20) and echoes them as JSON."""
    chosen = _chosen_headers(request)
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json", **SANDBOX})
    if "Content-Type" in chosen:  # the caller's Content-Type replaces ours
        del headers["Content-Type"]
    headers.extend(chosen)
    return web.Response(body=_headers_body(headers), headers=headers)
