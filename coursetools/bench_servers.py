"""Servers for the throughput benchmark, each in its own process.

``python -m coursetools.bench_servers KIND`` listens on a free loopback port, prints
``listening on PORT`` and serves until killed. KIND is ``bare`` (aiohttp hello-world),
``course`` (the course server as learners run it) or ``uninstrumented`` (the course's
endpoints without the stats and error middlewares, to isolate what the instrumentation costs).
"""

from __future__ import annotations

import asyncio
import random
import sys

from aiohttp import web

from local_server import create_app, httpbin
from local_server.state import RANDOM


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def make_app(kind: str) -> web.Application:
    if kind == "course":
        return create_app()
    app = web.Application()
    if kind == "bare":
        app.router.add_get("/", hello)
        app.router.add_get("/get", hello)
    elif kind == "uninstrumented":
        app[RANDOM] = random.Random()
        app.router.add_routes(httpbin.routes)
    else:
        raise SystemExit(f"unknown server kind {kind!r}: bare, course or uninstrumented")
    return app


async def serve(kind: str) -> None:
    runner = web.AppRunner(make_app(kind), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening on {site.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(serve(sys.argv[1]))
    except KeyboardInterrupt:
        pass
