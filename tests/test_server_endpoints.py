"""Every endpoint of the course server answers in httpbin's shape."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest
from conftest import json_error_detail
from multidict import CIMultiDict

from local_server import create_app, httpbin

ECHO_KEYS = {"args", "headers", "origin", "url"}
BODY_KEYS = ECHO_KEYS | {"data", "files", "form", "json"}


# --- / ---------------------------------------------------------------------------------------


async def test_index_lists_every_endpoint(server_client):
    """GET / lists each route with its methods and a one-line description."""
    resp = await server_client.get("/")
    assert resp.status == 200
    endpoints = {e["path"]: e for e in (await resp.json())["endpoints"]}
    expected = {
        "/", "/get", "/post", "/put", "/patch", "/delete", "/anything", "/anything/{anything}",
        "/headers", "/delay/{seconds}", "/status/{codes}", "/redirect/{n}", "/stats",
        "/stats/reset",
    }  # fmt: skip
    assert expected <= set(endpoints)
    assert endpoints["/get"]["methods"] == "GET"  # HEAD is implied, not listed
    assert endpoints["/post"]["methods"] == "POST"
    assert endpoints["/stats/reset"]["methods"] == "POST"
    assert endpoints["/anything"]["methods"] == "*"
    assert all(e["description"] for e in endpoints.values())
    assert "at most 10" in endpoints["/delay/{seconds}"]["description"]


# --- /get ------------------------------------------------------------------------------------


async def test_get_shape(server_client):
    """/get has exactly httpbin's keys: no body, no method."""
    data = await (await server_client.get("/get")).json()
    assert set(data) == ECHO_KEYS


async def test_get_args_repeated_key_becomes_list(server_client):
    resp = await server_client.get("/get", params=[("a", "1"), ("a", "2"), ("b", "x y"), ("c", "")])
    assert resp.status == 200
    assert (await resp.json())["args"] == {"a": ["1", "2"], "b": "x y", "c": ""}


async def test_get_unicode_args(server_client):
    data = await (await server_client.get("/get", params={"q": "é日本"})).json()
    assert data["args"] == {"q": "é日本"}


async def test_get_headers_are_title_cased(server_client):
    resp = await server_client.get("/get", headers={"x-custom-header": "v1", "ACCEPT": "a/b"})
    headers = (await resp.json())["headers"]
    assert headers["X-Custom-Header"] == "v1"
    assert headers["Accept"] == "a/b"
    assert "x-custom-header" not in headers


async def test_get_repeated_header_is_joined(server_client):
    headers = CIMultiDict([("X-Dup", "1"), ("X-Dup", "2")])
    data = await (await server_client.get("/get", headers=headers)).json()
    assert data["headers"]["X-Dup"] == "1, 2"


async def test_get_origin_and_url(server_client):
    data = await (await server_client.get("/get", params={"a": "1"})).json()
    assert data["origin"] == "127.0.0.1"
    assert data["url"] == f"http://127.0.0.1:{server_client.port}/get?a=1"


async def test_head_on_get(server_client):
    resp = await server_client.head("/get")
    assert resp.status == 200
    assert await resp.read() == b""


# --- /post /put /patch /delete ---------------------------------------------------------------

BODY_METHODS = [("POST", "/post"), ("PUT", "/put"), ("PATCH", "/patch"), ("DELETE", "/delete")]


@pytest.mark.parametrize(("method", "path"), BODY_METHODS)
async def test_json_body(server_client, method, path):
    payload = {"name": "é", "n": [1, 2.5, None, True]}
    resp = await server_client.request(method, path, json=payload, params={"q": "1"})
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == BODY_KEYS
    assert data["json"] == payload
    assert json.loads(data["data"]) == payload
    assert data["form"] == {} and data["files"] == {}
    assert data["args"] == {"q": "1"}
    assert data["headers"]["Content-Type"] == "application/json"


async def test_json_with_plus_json_content_type(server_client):
    body = b'{"a": 1}'
    resp = await server_client.post(
        "/post", data=body, headers={"Content-Type": "application/vnd.api+json"}
    )
    assert (await resp.json())["json"] == {"a": 1}


async def test_empty_json_body_is_null(server_client):
    resp = await server_client.post("/post", data=b"", headers={"Content-Type": "application/json"})
    assert resp.status == 200
    data = await resp.json()
    assert data["json"] is None and data["data"] == ""


@pytest.mark.parametrize(("method", "path"), BODY_METHODS)
async def test_urlencoded_form_with_repeated_fields(server_client, method, path):
    form = [("f", "1"), ("f", "2"), ("g", "é z")]
    resp = await server_client.request(method, path, data=form)
    assert resp.status == 200
    data = await resp.json()
    assert data["form"] == {"f": ["1", "2"], "g": "é z"}
    assert data["json"] is None and data["data"] == "" and data["files"] == {}


async def test_multipart_fields_and_files(server_client):
    form = aiohttp.FormData()
    form.add_field("name", "value")
    form.add_field("tag", "1")
    form.add_field("tag", "2")
    form.add_field("upload", b"hello file", filename="a.txt", content_type="text/plain")
    form.add_field(
        "blob", b"\xff\x00\x01", filename="b.bin", content_type="application/octet-stream"
    )
    resp = await server_client.post("/post", data=form)
    assert resp.status == 200
    data = await resp.json()
    assert data["form"] == {"name": "value", "tag": ["1", "2"]}
    blob = base64.b64encode(b"\xff\x00\x01").decode()
    assert data["files"] == {
        "upload": "hello file",
        "blob": f"data:application/octet-stream;base64,{blob}",
    }
    assert data["json"] is None


async def test_multipart_repeated_file_field_is_list(server_client):
    form = aiohttp.FormData()
    form.add_field("f", b"one", filename="1.txt", content_type="text/plain")
    form.add_field("f", b"two", filename="2.txt", content_type="text/plain")
    data = await (await server_client.put("/put", data=form)).json()
    assert data["files"] == {"f": ["one", "two"]}


async def test_utf8_bytes_are_text(server_client):
    resp = await server_client.post(
        "/post", data="héllo".encode(), headers={"Content-Type": "text/plain"}
    )
    data = await resp.json()
    assert data["data"] == "héllo" and data["json"] is None


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
async def test_non_utf8_bytes_become_data_url(server_client, content_type):
    raw = b"\x89PNG\xff\xfe\x00"
    resp = await server_client.post("/post", data=raw, headers={"Content-Type": content_type})
    data = await resp.json()
    assert data["data"] == f"data:{content_type};base64,{base64.b64encode(raw).decode()}"


# --- /anything -------------------------------------------------------------------------------

ANY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.mark.parametrize("method", ANY_METHODS)
@pytest.mark.parametrize("path", ["/anything", "/anything/a/b"])
async def test_anything_echoes_method_and_url(server_client, method, path):
    resp = await server_client.request(method, path, params={"k": "v"})
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == BODY_KEYS | {"method"}
    assert data["method"] == method
    assert data["url"] == f"http://127.0.0.1:{server_client.port}{path}?k=v"
    assert data["args"] == {"k": "v"}


async def test_anything_with_body(server_client):
    resp = await server_client.patch("/anything/x", json={"a": 1})
    data = await resp.json()
    assert data["method"] == "PATCH" and data["json"] == {"a": 1}


@pytest.mark.parametrize("path", ["/anything", "/anything/a/b"])
async def test_anything_head(server_client, path):
    resp = await server_client.head(path)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert int(resp.headers["Content-Length"]) > 0  # the size the GET body would have
    assert await resp.read() == b""


# --- /headers --------------------------------------------------------------------------------


async def test_headers(server_client):
    resp = await server_client.get("/headers", headers={"x-token": "abc"})
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == {"headers"}
    assert data["headers"]["X-Token"] == "abc"
    assert data["headers"]["Host"] == f"127.0.0.1:{server_client.port}"


# --- /delay ----------------------------------------------------------------------------------


async def test_delay_waits(server_client):
    start = time.perf_counter()
    resp = await server_client.get("/delay/0.2", params={"a": "1"})
    elapsed = time.perf_counter() - start
    assert resp.status == 200
    assert (await resp.json())["args"] == {"a": "1"}
    assert elapsed >= 0.19


async def test_delay_echoes_body_for_any_method(server_client):
    resp = await server_client.post("/delay/0", json={"x": 1})
    assert resp.status == 200
    assert (await resp.json())["json"] == {"x": 1}


async def test_concurrent_delays_overlap(server_client, server_stats):
    """Two /delay/0.25 at once take about 0.25 s, not 0.5 s: a delay never blocks the loop."""
    start = time.perf_counter()
    responses = await asyncio.gather(
        server_client.get("/delay/0.25"), server_client.get("/delay/0.25")
    )
    elapsed = time.perf_counter() - start
    assert [r.status for r in responses] == [200, 200]
    first, second = server_stats.snapshot().timeline
    assert second.start < first.end and first.start < second.end  # the server ran them together
    assert elapsed < 0.5  # done one after the other they could not take less than 0.5 s


async def test_delay_does_not_block_other_requests(server_client):
    slow = asyncio.ensure_future(server_client.get("/delay/1"))
    try:
        await asyncio.sleep(0.05)
        resp = await server_client.get("/get")
        assert resp.status == 200
        assert not slow.done()
    finally:
        resp = await slow
    assert resp.status == 200


@pytest.mark.parametrize(
    ("seconds", "expected"), [("0", 0.0), ("0.5", 0.5), ("2", 2.0), ("10", 10.0)]
)
async def test_delay_waits_up_to_ten_seconds(server_client, fake_sleep, seconds, expected):
    assert httpbin.MAX_DELAY_SECONDS == 10
    resp = await server_client.get(f"/delay/{seconds}")
    assert resp.status == 200
    assert fake_sleep.slept == [expected]


@pytest.mark.parametrize("seconds", ["10.5", "11", "3600", "1e30", "inf", "nan", "-1"])
async def test_a_delay_over_the_cap_is_refused_not_shortened(server_client, fake_sleep, seconds):
    detail = await json_error_detail(await server_client.get(f"/delay/{seconds}"), 400)
    assert "between 0 and 10" in detail
    assert fake_sleep.slept == []


# --- /status ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 400, 404, 418, 429, 500, 503, 599])
async def test_status_single(server_client, code):
    resp = await server_client.get(f"/status/{code}")
    assert resp.status == code


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_status_any_method(server_client, method):
    assert (await server_client.request(method, "/status/201")).status == 201


async def test_status_list_picks_from_the_list(server_client):
    seen = {(await server_client.get("/status/200,201,418")).status for _ in range(40)}
    assert seen == {200, 201, 418}


async def test_status_zero_weight_is_never_chosen(server_client):
    seen = {(await server_client.get("/status/200:0,503:1")).status for _ in range(20)}
    assert seen == {503}


async def _status_sequence(aiohttp_client, seed: int, n: int = 30) -> list[int]:
    client = await aiohttp_client(create_app(seed=seed))
    return [(await client.get("/status/200:0.5,500:0.5")).status for _ in range(n)]


async def test_status_weighted_is_reproducible_with_a_seed(aiohttp_client):
    first = await _status_sequence(aiohttp_client, seed=7)
    again = await _status_sequence(aiohttp_client, seed=7)
    other = await _status_sequence(aiohttp_client, seed=8)
    assert first == again
    assert set(first) == {200, 500}  # really random, not stuck on one code
    assert other != first  # the seed matters


async def test_status_weights_are_respected(server_client):
    statuses = [(await server_client.get("/status/200:0.9,500:0.1")).status for _ in range(200)]
    assert 150 <= statuses.count(200) <= 197


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_status_redirect_has_location(server_client, code):
    resp = await server_client.get(f"/status/{code}", allow_redirects=False)
    assert resp.status == code
    assert resp.headers["Location"] == "/redirect/1"


async def test_status_401_has_www_authenticate(server_client):
    resp = await server_client.get("/status/401")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="Fake Realm"'


async def test_status_204_has_no_body(server_client):
    resp = await server_client.get("/status/204")
    assert resp.status == 204
    assert "Content-Length" not in resp.headers
    assert "Content-Type" not in resp.headers
    assert await resp.read() == b""


async def test_status_plain_code_has_no_extra_headers(server_client):
    resp = await server_client.get("/status/200")
    assert "Location" not in resp.headers and "WWW-Authenticate" not in resp.headers
    assert await resp.read() == b""


# --- /redirect -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "location"), [(1, "/get"), (2, "/redirect/1"), (20, "/redirect/19")])
async def test_redirect_one_step(server_client, n, location):
    resp = await server_client.get(f"/redirect/{n}", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == location


async def test_redirect_followed_lands_on_get(server_client):
    resp = await server_client.get("/redirect/3", params={"a": "1"})
    assert resp.status == 200
    assert [r.status for r in resp.history] == [302, 302, 302]
    assert resp.url.path == "/get"
    assert set(await resp.json()) == ECHO_KEYS


# --- /stats ----------------------------------------------------------------------------------


async def test_stats_shape(server_client):
    await server_client.get("/get")
    resp = await server_client.get("/stats")
    assert resp.status == 200
    data = await resp.json()
    assert set(data) == {
        "connections_opened", "requests", "requests_per_connection", "in_flight",
        "max_in_flight", "by_path", "timeline", "timeline_omitted",
    }  # fmt: skip
    assert data["requests"] == 1
    assert data["by_path"] == {"/get": 1}
    (record,) = data["timeline"]
    assert set(record) == {
        "id", "method", "path", "connection", "client_port", "start", "end", "status",
    }  # fmt: skip
    assert (record["method"], record["path"], record["status"]) == ("GET", "/get", 200)


async def test_stats_reset(server_client):
    await server_client.get("/get")
    resp = await server_client.post("/stats/reset")
    assert resp.status == 200
    assert await resp.json() == {"reset": True}
    data = await (await server_client.get("/stats")).json()
    assert data["requests"] == 0 and data["timeline"] == [] and data["by_path"] == {}
