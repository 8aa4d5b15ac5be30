"""The stats middleware: counts connections and requests, and times each request."""

from __future__ import annotations

from aiohttp import web

from .stats import ServerStats

STATS = web.AppKey("stats", ServerStats)

# The status recorded for a request whose handler was cancelled (the client went away, or
# the server stopped): nginx's "client closed request". An unexpected error records 500.
CANCELLED = 499

# Reading the stats must not change them.
UNCOUNTED_PATHS = frozenset({"/stats", "/stats/reset"})


@web.middleware
async def record_stats(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Record the request's connection, start, end and status in the app's ``ServerStats``."""
    if request.path in UNCOUNTED_PATHS:
        return await handler(request)
    stats = request.app[STATS]
    peer = request.transport.get_extra_info("peername") if request.transport else None
    client_port = peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else None
    request_id = stats.request_started(request.transport, request.method, request.path, client_port)
    status = CANCELLED
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception:
        status = 500
        raise
    finally:
        stats.request_ended(request_id, status)
