"""httpbin-compatible endpoints: same paths, same JSON shapes, so documentation examples work.

Echo bodies carry ``args, data, files, form, headers, json, method, origin, url``. A query key
or form field sent more than once becomes a list of its values (``?a=1&a=2`` → ``"a": ["1",
"2"]``); a header sent more than once is joined with ``", "``, as httpbin does.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy
from yarl import URL

from . import timing
from .errors import UnreadableBody, bad_request
from .params import parse_float, path_int
from .state import RANDOM

routes = web.RouteTableDef()

MAX_DELAY_SECONDS = 10.0


def multi_to_json(values: MultiDictProxy[Any]) -> dict[str, Any]:
    """A multidict as httpbin shows it: one value as itself, repeated keys as a list."""
    result: dict[str, Any] = {}
    for key in values.keys():
        if key in result:
            continue
        all_values = values.getall(key)
        result[key] = all_values[0] if len(all_values) == 1 else list(all_values)
    return result


def headers_to_json(request: web.Request) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in request.headers.items():
        title = "-".join(part.capitalize() for part in name.split("-"))
        result[title] = f"{result[title]}, {value}" if title in result else value
    return result


def origin_of(request: web.Request) -> str:
    return request.remote or ""


def _as_text_or_data_url(raw: bytes, content_type: str = "application/octet-stream") -> str:
    """Text if it decodes as UTF-8, otherwise a base64 ``data:`` URL, as httpbin does."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        encoded = base64.b64encode(raw).decode("ascii")
        return f"data:{content_type};base64,{encoded}"


async def _read_body(request: web.Request) -> dict[str, Any]:
    """Parse the body the way httpbin reports it: ``data``, ``files``, ``form`` and ``json``."""
    body: dict[str, Any] = {"data": "", "files": {}, "form": {}, "json": None}
    if not request.body_exists:
        return body
    try:
        await _parse_body(request, body)
    except (web.RequestPayloadError, ConnectionResetError) as exc:
        # A body that cannot be decoded (bad gzip) or a client that left mid-body.
        raise UnreadableBody(text=f"the request body could not be read: {exc}") from None
    return body


async def _parse_body(request: web.Request, body: dict[str, Any]) -> None:
    content_type = request.content_type
    if content_type == "multipart/form-data":
        await _read_multipart(request, body)
    elif content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.post()
        except (ValueError, LookupError) as exc:  # LookupError: an unknown charset
            bad_request(f"the form body could not be decoded: {exc}")
        body["form"] = multi_to_json(form)
    else:
        raw = await request.read()
        body["data"] = _as_text_or_data_url(raw, content_type)
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                body["json"] = json.loads(raw) if raw else None
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
                bad_request(f"the body is not valid JSON: {exc}")


async def _read_multipart(request: web.Request, body: dict[str, Any]) -> None:
    try:
        post = await request.post()
    except (ValueError, LookupError) as exc:  # LookupError: an unknown charset
        bad_request(f"the multipart body could not be parsed: {exc}")
    except HttpProcessingError as exc:  # LineTooLong: a part's line longer than aiohttp reads
        bad_request(f"the multipart body could not be parsed: {exc.message}")
    form: dict[str, list[str]] = {}
    files: dict[str, list[str]] = {}
    for name, value in post.items():
        if isinstance(value, web.FileField):
            raw = value.file.read()
            files.setdefault(name, []).append(_as_text_or_data_url(raw, value.content_type))
        else:
            form.setdefault(name, []).append(str(value))
    body["form"] = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    body["files"] = {k: v[0] if len(v) == 1 else v for k, v in files.items()}


async def echo(request: web.Request, *, with_body: bool, with_method: bool) -> dict[str, Any]:
    """What the server received, in httpbin's shape."""
    result: dict[str, Any] = {"args": multi_to_json(request.query)}
    if with_body:
        result.update(await _read_body(request))
    result["headers"] = headers_to_json(request)
    if with_method:
        result["method"] = request.method
    result["origin"] = origin_of(request)
    result["url"] = _url(request)
    return result


def _url(request: web.Request) -> str:
    return str(request_url(request))


def request_url(request: web.Request) -> URL:
    """The request's absolute URL; a 400 if its Host header is not a valid host[:port]."""
    try:
        return request.url
    except ValueError:  # a Host header that is not a host[:port] (UnicodeError is a ValueError)
        bad_request(f"the Host header is not a valid host[:port]: {request.host!r}")


@routes.get("/get")
async def get(request: web.Request) -> web.Response:
    """The query string and headers of a GET request."""
    return web.json_response(await echo(request, with_body=False, with_method=False))


@routes.post("/post")
@routes.put("/put")
@routes.patch("/patch")
@routes.delete("/delete")
async def with_body(request: web.Request) -> web.Response:
    """The query, headers and parsed body (data, form, files, json) of the request."""
    return web.json_response(await echo(request, with_body=True, with_method=False))


@routes.route("*", "/anything")
@routes.route("*", "/anything/{anything:.*}")
async def anything(request: web.Request) -> web.Response:
    """Everything about the request, for any method: like /post plus the method."""
    return web.json_response(await echo(request, with_body=True, with_method=True))


@routes.get("/headers")
async def headers(request: web.Request) -> web.Response:
    """The request's headers."""
    return web.json_response({"headers": headers_to_json(request)})


@routes.route("*", "/delay/{seconds}")
async def delay(request: web.Request) -> web.Response:
    """Waits the given seconds (a float, at most 10) without blocking, then echoes the request."""
    seconds = parse_float(request.match_info["seconds"], "delay", 0.0, MAX_DELAY_SECONDS)
    await timing.sleep(seconds)
    return web.json_response(await echo(request, with_body=True, with_method=False))


def _parse_status_choices(text: str) -> tuple[list[int], list[float]]:
    """``"200"``, ``"200,404"`` or weighted ``"200:0.9,500:0.1"`` → codes and weights."""
    codes: list[int] = []
    weights: list[float] = []
    for item in text.split(","):
        code_text, _, weight_text = item.partition(":")
        try:
            code = int(code_text)
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            bad_request(f"expected status codes like 200 or 200:0.9,500:0.1, got {text!r}")
        if not 200 <= code <= 599:
            bad_request(f"status codes must be between 200 and 599, got {code}")
        if not math.isfinite(weight) or weight < 0:
            bad_request(f"weights must be finite numbers >= 0, got {weight_text!r}")
        codes.append(code)
        weights.append(weight)
    if sum(weights) <= 0:
        bad_request("at least one weight must be above zero")
    if not math.isfinite(sum(weights)):
        bad_request("the weights are too large: their sum must be a finite number")
    return codes, weights


_STATUS_HEADERS = {
    301: {"Location": "/redirect/1"},
    302: {"Location": "/redirect/1"},
    303: {"Location": "/redirect/1"},
    305: {"Location": "/redirect/1"},
    307: {"Location": "/redirect/1"},
    308: {"Location": "/redirect/1"},
    401: {"WWW-Authenticate": 'Basic realm="Fake Realm"'},
}


@routes.route("*", "/status/{codes}")
async def status(request: web.Request) -> web.Response:
    """Answers with the given status code, or one chosen at random by weight (200:0.9,500:0.1)."""
    codes, weights = _parse_status_choices(request.match_info["codes"])
    code = request.app[RANDOM].choices(codes, weights)[0] if len(codes) > 1 else codes[0]
    body = None if code in (204, 304) else b""
    return web.Response(status=code, headers=_STATUS_HEADERS.get(code, {}), body=body)


@routes.get("/redirect/{n}")
async def redirect(request: web.Request) -> web.Response:
    """Redirects n times (at most 20), then lands on /get."""
    n = path_int(request, "n", 1, 20)
    target = "/get" if n == 1 else f"/redirect/{n - 1}"
    raise web.HTTPFound(target)


# --- OPTIONS (CORS preflight) ----------------------------------------------------------------

CORS_MAX_AGE_SECONDS = 3600


@web.middleware
async def options_preflight(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """OPTIONS on a route that has no OPTIONS handler: 200 with Allow and CORS headers.

    It only replaces the router's 405 for OPTIONS, so every other method keeps its 405 (and
    its exact ``Allow``), and routes that accept any method (/anything) still echo OPTIONS.
    """
    exception = request.match_info.http_exception
    if request.method != "OPTIONS" or not isinstance(exception, web.HTTPMethodNotAllowed):
        return await handler(request)
    methods = ", ".join(sorted({*exception.allowed_methods, "OPTIONS"}))
    headers = {
        "Allow": methods,
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
    }
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested is not None:
        headers["Access-Control-Allow-Headers"] = requested
    return web.Response(status=200, headers=headers)
