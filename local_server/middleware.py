"""The stats middleware: counts connections and requests, and times each request."""

from __future__ import annotations

from aiohttp import web

from .errors import CLIENT_GONE
from .learners import DEFAULT, PerLearner, learner_of
from .stats import ServerStats

STATS = web.AppKey("stats", ServerStats)
LEARNER_STATS = web.AppKey("learner_stats", PerLearner[ServerStats])

# The status recorded for a request whose handler was cancelled (the client went away, or
# the server stopped): nginx's "client closed request". An unexpected error records 500.
CANCELLED = CLIENT_GONE

# Reading the stats must not change them.
UNCOUNTED_PATHS = frozenset({"/stats", "/stats/reset"})


def stats_for(request: web.Request) -> ServerStats:
    """The stats of the request's learner, or the server-wide stats if it names none."""
    learner = learner_of(request)
    if learner == DEFAULT:
        return request.app[STATS]
    return request.app[LEARNER_STATS].get(learner)


@web.middleware
async def record_stats(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Record the request in the server-wide stats, and in its learner's if it names one."""
    if request.path in UNCOUNTED_PATHS:
        return await handler(request)
    server_wide = request.app[STATS]
    learner_stats = stats_for(request)
    books = (server_wide,) if learner_stats is server_wide else (server_wide, learner_stats)
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    client_port = peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else None
    method, path = request.method, request.path
    started = [(book, book.request_started(transport, method, path, client_port)) for book in books]
    status = CANCELLED
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ConnectionError:  # the client went away mid-answer: as if it closed the request
        raise
    except Exception:
        status = 500
        raise
    finally:
        for book, request_id in started:
            book.request_ended(request_id, status)
