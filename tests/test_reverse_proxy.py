"""``local_server.reverse_proxy``: the X-Forwarded-* headers it adds, its records and errors."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from local_server.reverse_proxy import reverse_proxy
from local_server.serving import refused_url, serve


async def echo(request: web.Request) -> web.Response:
    return web.json_response({
        "remote": request.remote,
        "xff": request.headers.getall("X-Forwarded-For", []),
        "proto": request.headers.get("X-Forwarded-Proto"),
        "host": request.headers.get("X-Forwarded-Host"),
        "body": (await request.read()).decode(),
    })  # fmt: skip


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def through(mode: str, headers: dict[str, str] | None = None, **options) -> dict:
    async with serve(echo_app()) as upstream, reverse_proxy(
        upstream, forwarded_for=mode, **options
    ) as proxy, aiohttp.ClientSession() as session:
        async with session.post(proxy.url + "/x", data=b"hi", headers=headers or {}) as r:
            assert r.status == 200
            seen = await r.json()
        assert proxy.records[-1].path == "/x" and proxy.records[-1].status == 200
        return seen


CLIENT = "198.51.100.23"
FORGED = {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https"}


async def test_append_adds_the_client_right_of_what_it_sent():
    seen = await through("append", FORGED, client_address=CLIENT)
    assert seen["xff"] == [f"203.0.113.66, {CLIENT}"]
    assert seen["proto"] == "http"  # the client's own X-Forwarded-Proto is replaced
    assert seen["remote"] == "127.0.0.1" and seen["body"] == "hi"
    assert seen["host"].startswith("127.0.0.1:")


async def test_replace_sends_only_the_client():
    assert (await through("replace", FORGED, client_address=CLIENT))["xff"] == [CLIENT]


async def test_separate_adds_a_header_line_of_its_own():
    assert (await through("separate", FORGED, client_address=CLIENT))["xff"] == [
        "203.0.113.66", CLIENT]


async def test_none_passes_the_client_header_through():
    assert (await through("none", FORGED))["xff"] == ["203.0.113.66"]


async def test_proto_stands_for_tls_termination_and_the_peer_defaults_to_loopback():
    seen = await through("append", proto="https")
    assert seen["proto"] == "https" and seen["xff"] == ["127.0.0.1"]


async def test_forwarded_host_can_be_left_out():
    assert (await through("append", forwarded_host=False))["host"] is None


async def test_an_upstream_that_refuses_is_a_json_502():
    async with reverse_proxy(refused_url()) as proxy, aiohttp.ClientSession() as session:
        async with session.get(proxy.url + "/") as response:
            assert response.status == 502
            assert response.content_type == "application/json"


@pytest.mark.parametrize("size", [2048])
async def test_a_body_over_max_body_is_refused_with_a_4xx(size):
    async with serve(echo_app()) as upstream, reverse_proxy(upstream, max_body=1024) as proxy:
        async with aiohttp.ClientSession() as session:
            async with session.post(proxy.url + "/", data=b"x" * size) as response:
                assert 400 <= response.status < 500
