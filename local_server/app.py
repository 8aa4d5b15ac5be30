"""The course server's application factory."""

from __future__ import annotations

import html
import random

from aiohttp import web

from . import faults, files, httpbin, httpbin_auth, httpbin_formats, ratelimit, websockets
from .errors import json_errors
from .hardening import close_unread_compressed
from .learners import PerLearner
from .middleware import LEARNER_STATS, STATS, record_stats, stats_for
from .params import query_int
from .state import RANDOM
from .stats import (
    LEARNER_DISTINCT_PATHS,
    LEARNER_TIMELINE,
    LEARNER_TRACKED_CONNECTIONS,
    MAX_TIMELINE,
    ServerStats,
)

MAX_BODY_BYTES = 1024 * 1024

# Each module holds one family of endpoints: a ``routes`` table, and optionally a
# ``setup(app)`` that adds the state and start-up/shutdown hooks those endpoints need.
ENDPOINT_MODULES = (httpbin, httpbin_auth, httpbin_formats, faults, files, websockets, ratelimit)


def create_app(
    *, stats: ServerStats | None = None, seed: int | None = None, max_body: int = MAX_BODY_BYTES
) -> web.Application:
    """Build the course server.

    ``stats`` lets the caller read what the server saw (a fresh one is made if omitted);
    ``seed`` makes the random choices (``/status/200:0.5,500:0.5``) repeatable; ``max_body``
    bounds every request body (a larger one gets a JSON 413).
    """
    # Outermost first: a compressed body left unread closes the connection, errors become
    # JSON, every request is counted, OPTIONS gets CORS answers.
    middlewares = [close_unread_compressed, json_errors, record_stats, httpbin.options_preflight]
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app[STATS] = stats if stats is not None else ServerStats()
    app[LEARNER_STATS] = PerLearner(learner_stats)
    app[RANDOM] = random.Random(seed)
    app.router.add_get("/", index)
    app.router.add_get("/stats", stats_view)
    app.router.add_post("/stats/reset", stats_reset)
    for module in ENDPOINT_MODULES:
        app.router.add_routes(module.routes)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    return app


def learner_stats() -> ServerStats:
    """A learner's own stats: smaller bounds than the server-wide ones."""
    return ServerStats(LEARNER_TIMELINE, LEARNER_DISTINCT_PATHS, LEARNER_TRACKED_CONNECTIONS)


# What GET /stats returns of the timeline, by default and at most (?timeline=N).
STATS_TIMELINE_DEFAULT = 1_000


def endpoint_index(app: web.Application) -> list[dict[str, str]]:
    """Every route with its methods and the first line of its handler's docstring."""
    by_path: dict[str, dict[str, str]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        doc = (route.handler.__doc__ or "").strip().splitlines()
        entry = by_path.setdefault(path, {"path": path, "methods": "", "description": ""})
        if route.method != "HEAD":
            methods = [m for m in entry["methods"].split(",") if m]
            entry["methods"] = ",".join(sorted({*methods, route.method}))
        entry["description"] = entry["description"] or (doc[0] if doc else "")
    return list(by_path.values())


async def index(request: web.Request) -> web.Response:
    """This list of endpoints: JSON, or an HTML page for a browser."""
    endpoints = endpoint_index(request.app)
    if _prefers_html(request.headers.get("Accept", "")):
        return web.Response(text=_index_html(endpoints), content_type="text/html")
    return web.json_response({"endpoints": endpoints})


def _prefers_html(accept: str) -> bool:
    """A browser asks for text/html first; aiohttp and curl send */* or application/json."""
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first in {"text/html", "application/xhtml+xml"}


def _index_html(endpoints: list[dict[str, str]]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(e['methods'])}</td><td><code>{html.escape(e['path'])}</code>"
        f"</td><td>{html.escape(e['description'])}</td></tr>"
        for e in endpoints
    )
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        "<title>aiohttp course server</title></head><body>\n"
        "<h1>aiohttp course server</h1>\n"
        "<p>Send <code>X-Learner: your-name</code> to keep your own counters.</p>\n"
        "<table border=\"1\" cellpadding=\"4\">\n"
        "<tr><th>methods</th><th>path</th><th>what it does</th></tr>\n"
        f"{rows}\n</table>\n</body></html>\n"
    )


async def stats_view(request: web.Request) -> web.Response:
    """What the server saw (your X-Learner's share): connections, in flight, a timeline."""
    limit = query_int(request, "timeline", STATS_TIMELINE_DEFAULT, 0, MAX_TIMELINE)
    return web.json_response(stats_for(request).snapshot().as_dict(limit))


async def stats_reset(request: web.Request) -> web.Response:
    """Zero the stats (your X-Learner's only, if sent) and restart their clock."""
    stats_for(request).reset()
    return web.json_response({"reset": True})
