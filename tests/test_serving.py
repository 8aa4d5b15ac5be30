"""``local_server.serving.serve``: an app on a free port, cleaned up however the block ends."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from conftest import needs_ipv6_loopback

from local_server.serving import captured_server_errors, refused_url, serve

EVENTS = web.AppKey("events", list)


def _app() -> web.Application:
    app = web.Application()
    app[EVENTS] = []

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["name"]})

    async def lifecycle(app: web.Application):
        app[EVENTS].append("startup")
        yield
        app[EVENTS].append("cleanup")

    app.router.add_get("/hello/{name}", hello)
    app.cleanup_ctx.append(lifecycle)
    return app


@needs_ipv6_loopback
async def test_an_ipv6_host_is_bracketed_in_the_url():
    async with serve(_app(), host="::1") as url:
        assert url.startswith("http://[::1]:")
        async with aiohttp.ClientSession(url) as session:
            async with session.get("/hello/ada") as response:
                assert response.status == 200


async def test_serves_on_a_free_loopback_port_then_cleans_up():
    app = _app()
    async with serve(app) as url:
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        async with aiohttp.ClientSession(url) as session:
            async with session.get("/hello/ada") as response:
                assert response.status == 200
                assert await response.json() == {"hello": "ada"}
        assert app[EVENTS] == ["startup"]
    assert app[EVENTS] == ["startup", "cleanup"]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/hello/ada")


async def test_two_apps_at_once_get_different_ports():
    async with serve(_app()) as first, serve(_app()) as second:
        assert first != second


async def test_cleans_up_when_the_block_raises():
    app = _app()
    with pytest.raises(RuntimeError, match="boom"):
        async with serve(app):
            raise RuntimeError("boom")
    assert app[EVENTS] == ["startup", "cleanup"]


async def test_failing_handler_is_captured_not_printed(capsys):
    async def broken(request: web.Request) -> web.Response:
        raise ZeroDivisionError("no")

    app = web.Application()
    app.router.add_get("/broken", broken)
    with captured_server_errors() as errors:
        async with serve(app) as url, aiohttp.ClientSession(url) as session:
            async with session.get("/broken") as response:
                assert response.status == 500
    assert [record.exc_info[0] for record in errors] == [ZeroDivisionError]
    assert capsys.readouterr().err == ""
    assert logging.getLogger("aiohttp.server").propagate


async def test_a_failed_start_up_still_exits_the_contexts_that_started():
    app = _app()

    async def broken_start(app: web.Application):
        raise ConnectionError("upstream down")
        yield  # pragma: no cover

    app.cleanup_ctx.append(broken_start)
    with pytest.raises(ConnectionError, match="upstream down"):
        async with serve(app):
            pytest.fail("the body must not run when start-up fails")
    assert app[EVENTS] == ["startup", "cleanup"]


async def test_refused_url_names_a_port_nothing_listens_on():
    url = refused_url("/get")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/get")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)
