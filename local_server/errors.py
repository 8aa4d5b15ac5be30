"""Every error the server sends is JSON: ``{"error": ..., "detail": ...}`` with a 4xx status."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import NoReturn

from aiohttp import web

log = logging.getLogger(__name__)


def error_body(status: int, detail: str) -> dict[str, str]:
    """The JSON body for an error: the status's reason phrase and a sentence for a human."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return {"error": reason, "detail": detail}


class UnreadableBody(web.HTTPBadRequest):
    """The request body cannot be read (a corrupt encoding, a client gone mid-body).

    ``json_errors`` sends the JSON 400 at once and then closes the connection: the rest of the
    body cannot be skipped, and aiohttp would otherwise try to read it after the handler
    returned, meet the same error, and log it as an unhandled exception.
    """


def bad_request(detail: str) -> NoReturn:
    """Stop the handler with a 400 whose JSON body says what was wrong."""
    raise web.HTTPBadRequest(text=detail)


@web.middleware
async def json_errors(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Turn raised HTTP errors into JSON, keeping their status and headers.

    A response a handler *returns* (``/status/404``) passes through untouched. An unexpected
    exception becomes a JSON 500 without a traceback; the tests make sure none happens.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = _detail(request, exc)
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        body = error_body(exc.status, detail)
        response = web.json_response(body, status=exc.status, headers=headers)
        if isinstance(exc, UnreadableBody):
            return await send_then_close(request, response)
        return response
    except ConnectionError:
        # The client went away while the handler wrote to it: nobody is left to answer, and
        # it is not a server error. aiohttp finds the connection closed and moves on quietly.
        log.debug("client left during %s %s", request.method, request.path)
        request.protocol.force_close()
        return web.Response(status=CLIENT_GONE)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return web.json_response(
            error_body(500, "the course server hit a bug; please report it"), status=500
        )


_BODY_HEADERS = {"content-type", "content-length"}
# The status a request ends with when its client left before the answer (nginx's 499).
CLIENT_GONE = 499


async def send_then_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` now, then close the connection instead of reading the rest of the body."""
    response.headers["Connection"] = "close"
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:  # the client has gone already
        pass
    request.protocol.force_close()
    return response


def _detail(request: web.Request, exc: web.HTTPException) -> str:
    """The handler's own message, or a helpful one for errors raised by the router."""
    default_text = f"{exc.status}: {exc.reason}"
    if exc.text and exc.text != default_text:
        return exc.text
    if isinstance(exc, web.HTTPNotFound):
        return f"no endpoint at {request.path}; GET / lists every endpoint"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    return exc.reason
