"""The course server's application factory."""

from __future__ import annotations

import random

from aiohttp import web

from . import faults, files, httpbin, httpbin_auth, httpbin_formats, websockets
from .errors import json_errors
from .learners import PerLearner
from .middleware import LEARNER_STATS, STATS, record_stats, stats_for
from .state import RANDOM
from .stats import ServerStats

MAX_BODY_BYTES = 1024 * 1024

# Each module holds one family of endpoints: a ``routes`` table, and optionally a
# ``setup(app)`` that adds the state and start-up/shutdown hooks those endpoints need.
ENDPOINT_MODULES = (httpbin, httpbin_auth, httpbin_formats, faults, files, websockets)


def create_app(
    *, stats: ServerStats | None = None, seed: int | None = None, max_body: int = MAX_BODY_BYTES
) -> web.Application:
    """Build the course server.

    ``stats`` lets the caller read what the server saw (a fresh one is made if omitted);
    ``seed`` makes the random choices (``/status/200:0.5,500:0.5``) repeatable; ``max_body``
    bounds every request body (a larger one gets a JSON 413).
    """
    app = web.Application(middlewares=[json_errors, record_stats], client_max_size=max_body)
    app[STATS] = stats if stats is not None else ServerStats()
    app[LEARNER_STATS] = PerLearner(ServerStats)
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
    """This list of endpoints."""
    return web.json_response({"endpoints": endpoint_index(request.app)})


async def stats_view(request: web.Request) -> web.Response:
    """What the server saw (your X-Learner's share, if sent): connections, concurrency, timeline."""
    return web.json_response(stats_for(request).snapshot().as_dict())


async def stats_reset(request: web.Request) -> web.Response:
    """Zero the stats (your X-Learner's only, if sent) and restart their clock."""
    stats_for(request).reset()
    return web.json_response({"reset": True})
