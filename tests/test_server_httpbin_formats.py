"""httpbin's payload, stream and redirect endpoints, plus HEAD and OPTIONS on every route."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import socket
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from conftest import assert_json_error

from local_server import create_app, httpbin_formats, start_server, timing
from local_server.app import endpoint_index

ECHO_KEYS = {"args", "headers", "origin", "url"}


def abc(start: int, end: int) -> bytes:
    return bytes(ord("a") + i % 26 for i in range(start, end))


# --- /bytes ----------------------------------------------------------------------------------


async def test_bytes(server_client):
    resp = await server_client.get("/bytes/1000")
    assert resp.status == 200
    assert resp.content_type == "application/octet-stream"
    assert resp.headers["Content-Length"] == "1000"
    assert len(await resp.read()) == 1000


async def test_bytes_zero_and_the_cap(server_client):
    assert await (await server_client.get("/bytes/0")).read() == b""
    assert len(await (await server_client.get("/bytes/102400")).read()) == 102400


async def test_bytes_seed_is_repeatable(server_client):
    first = await (await server_client.get("/bytes/64?seed=7")).read()
    again = await (await server_client.get("/bytes/64?seed=7")).read()
    other = await (await server_client.get("/bytes/64?seed=8")).read()
    assert first == again == random.Random(7).randbytes(64)
    assert other != first


async def test_bytes_without_seed_follow_the_server_seed(aiohttp_client):
    """Two servers started with the same seed send the same bytes; calls differ."""
    bodies = []
    for _ in range(2):
        client = await aiohttp_client(create_app(seed=4321))
        bodies.append([await (await client.get("/bytes/32")).read() for _ in range(2)])
    assert bodies[0] == bodies[1]
    assert bodies[0][0] != bodies[0][1]


@pytest.mark.parametrize("path", ["/bytes/-1", "/bytes/102401", "/bytes/1e3", "/bytes/abc",
                                  "/bytes/10?seed=x", "/bytes/10?seed=1.5",
                                  "/bytes/10?seed=99999999999999999999"])  # fmt: skip
async def test_bytes_bad_input_is_400(server_client, path):
    await assert_json_error(await server_client.get(path), 400)


# --- /stream ---------------------------------------------------------------------------------


async def test_stream_lines_are_get_echoes_with_ids(server_client):
    resp = await server_client.get("/stream/5", params={"q": "1"}, headers={"X-Test": "y"})
    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in resp.headers
    assert resp.content_type == "application/json"
    lines = [json.loads(line) async for line in resp.content]
    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4]
    for line in lines:
        assert set(line) == ECHO_KEYS | {"id"}
        assert line["args"] == {"q": "1"}
        assert line["headers"]["X-Test"] == "y"
        assert line["url"] == f"http://127.0.0.1:{server_client.port}/stream/5?q=1"


async def test_stream_zero_and_the_cap(server_client):
    assert await (await server_client.get("/stream/0")).read() == b""
    body = await (await server_client.get("/stream/100")).read()
    assert body.count(b"\n") == 100


@pytest.mark.parametrize("n", ["101", "-1", "abc", "1.0"])
async def test_stream_bad_n_is_400(server_client, n):
    await assert_json_error(await server_client.get(f"/stream/{n}"), 400)


async def test_stream_bad_host_is_400_before_streaming(server_client):
    resp = await server_client.get("/stream/2", headers={"Host": "x:99999"})
    await assert_json_error(resp, 400)


async def test_stream_over_http_1_0(server_client):
    """No chunked encoding in HTTP/1.0: the body ends when the connection closes."""
    reader, writer = await asyncio.open_connection(server_client.host, server_client.port)
    try:
        writer.write(b"GET /stream/2 HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
    assert [json.loads(line)["id"] for line in body.splitlines()] == [0, 1]


# --- /stream-bytes ---------------------------------------------------------------------------


async def test_stream_bytes_arrive_in_http_chunks_of_chunk_size(server_client):
    resp = await server_client.get("/stream-bytes/95?chunk_size=10&seed=3")
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert await http_chunk_sizes(resp) == [10] * 9 + [5]


async def http_chunk_sizes(resp: aiohttp.ClientResponse) -> list[int]:
    """The sizes of the HTTP chunks as sent (``iter_chunks`` marks where each one ends)."""
    sizes, total = [], 0
    async for data, end_of_http_chunk in resp.content.iter_chunks():
        total += len(data)
        if end_of_http_chunk:
            sizes.append(total - sum(sizes))
    return sizes


async def test_stream_bytes_seed_is_repeatable(server_client):
    data = await (await server_client.get("/stream-bytes/95?chunk_size=10&seed=3")).read()
    assert data == random.Random(3).randbytes(95)


async def test_stream_bytes_with_a_seed_match_bytes(server_client):
    streamed = await (await server_client.get("/stream-bytes/5000?seed=11")).read()
    whole = await (await server_client.get("/bytes/5000?seed=11")).read()
    assert streamed == whole and len(whole) == 5000


async def test_stream_bytes_default_chunk_size(server_client):
    resp = await server_client.get("/stream-bytes/25000")
    assert await http_chunk_sizes(resp) == [10240, 10240, 4520]


@pytest.mark.parametrize(
    "path",
    [
        "/stream-bytes/102401",
        "/stream-bytes/-1",
        "/stream-bytes/10?chunk_size=0",
        "/stream-bytes/10?chunk_size=-5",
        "/stream-bytes/10?chunk_size=102401",
        "/stream-bytes/10?chunk_size=x",
        "/stream-bytes/102400?chunk_size=1",  # over 1024 chunks
        "/stream-bytes/10?seed=nan",
    ],
)
async def test_stream_bytes_bad_input_is_400(server_client, path):
    await assert_json_error(await server_client.get(path), 400)


async def test_stream_bytes_chunk_cap_is_exact(server_client):
    resp = await server_client.get("/stream-bytes/1024?chunk_size=1")
    assert len(await resp.read()) == 1024
    data = await assert_json_error(await server_client.get("/stream-bytes/1025?chunk_size=1"), 400)
    assert "chunk_size of at least 2" in data["detail"]


# --- /range ----------------------------------------------------------------------------------


async def test_range_whole(server_client):
    resp = await server_client.get("/range/60")
    assert resp.status == 200
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["ETag"] == '"range60"'
    assert resp.headers["Content-Length"] == "60"
    assert "Content-Range" not in resp.headers
    assert await resp.read() == abc(0, 60)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=26-27", 26, 27),
        ("bytes=95-", 95, 99),
        ("bytes=-3", 97, 99),
        ("bytes=-500", 0, 99),
        ("bytes=90-1000", 90, 99),
        ("bytes=99-99", 99, 99),
        (" bytes = 1 - 2 ", 1, 2),
    ],
)
async def test_range_partial_is_206(server_client, header, first, last):
    resp = await server_client.get("/range/100", headers={"Range": header})
    assert resp.status == 206  # even when the range covers everything
    body = await resp.read()
    assert body == abc(first, last + 1)
    assert resp.headers["Content-Length"] == str(last + 1 - first)
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/100"


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=5-2",
                                    "bytes=99999999999999999999-"])  # fmt: skip
async def test_range_unsatisfiable_is_416(server_client, header):
    resp = await server_client.get("/range/100", headers={"Range": header})
    await assert_json_error(resp, 416)
    assert resp.headers["Content-Range"] == "bytes */100"
    assert resp.headers["ETag"] == '"range100"'


@pytest.mark.parametrize("header", ["items=0-1", "bytes=0-1,5-6", "garbage", "bytes=-", "bytes=",
                                    "bytes=a-b", "bytes=" + "1" * 5000 + "-"])  # fmt: skip
async def test_range_not_understood_is_ignored(server_client, header):
    resp = await server_client.get("/range/100", headers={"Range": header})
    assert resp.status == 200
    assert await resp.read() == abc(0, 100)


@pytest.mark.parametrize(
    ("if_range", "status"),
    [('"range100"', 206), ('"other"', 200), ("Wed, 21 Oct 2015 07:28:00 GMT", 200)],
)
async def test_range_if_range(server_client, if_range, status):
    headers = {"Range": "bytes=10-19", "If-Range": if_range}
    resp = await server_client.get("/range/100", headers=headers)
    assert resp.status == status
    assert len(await resp.read()) == (10 if status == 206 else 100)


async def test_range_resumes_an_interrupted_download(server_client):
    """The client way: read part, then ask for the rest with Range and If-Range."""
    async with server_client.get("/range/50000?chunk_size=1000") as resp:
        etag = resp.headers["ETag"]
        part = await resp.content.readexactly(12345)
    headers = {"Range": f"bytes={len(part)}-", "If-Range": etag}
    async with server_client.get("/range/50000", headers=headers) as resp:
        assert resp.status == 206
        rest = await resp.read()
    assert part + rest == abc(0, 50000)


async def test_range_duration_spreads_the_bytes(server_client, fake_sleep):
    resp = await server_client.get("/range/1000?duration=2&chunk_size=100")
    assert len(await resp.read()) == 1000
    assert len(fake_sleep.slept) == 10
    assert sum(fake_sleep.slept) == pytest.approx(2.0)


async def test_range_partial_duration_is_proportional(server_client, fake_sleep):
    resp = await server_client.get("/range/1000?duration=2", headers={"Range": "bytes=0-249"})
    assert len(await resp.read()) == 250
    assert sum(fake_sleep.slept) == pytest.approx(0.5)


async def test_range_head(server_client):
    resp = await server_client.head("/range/100", headers={"Range": "bytes=0-4"})
    assert resp.status == 206 and resp.headers["Content-Length"] == "5"
    assert await resp.read() == b""


@pytest.mark.parametrize(
    "path",
    [
        "/range/0",
        "/range/102401",
        "/range/x",
        "/range/10?duration=10.5",
        "/range/10?duration=-1",
        "/range/10?duration=nan",
        "/range/10?chunk_size=0",
        "/range/102400?chunk_size=10",  # over 1024 chunks
    ],
)
async def test_range_bad_input_is_400(server_client, path):
    await assert_json_error(await server_client.get(path), 400)


# --- /drip -----------------------------------------------------------------------------------


async def test_drip_defaults(server_client, fake_sleep):
    """httpbin's defaults: 10 bytes over 2 seconds, no delay, status 200."""
    resp = await server_client.get("/drip")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "10"
    assert resp.content_type == "application/octet-stream"
    assert await resp.read() == b"*" * 10
    assert fake_sleep.slept == pytest.approx([0.2] * 10)


async def test_drip_delay_comes_first_and_code_is_used(server_client, fake_sleep):
    resp = await server_client.get("/drip?numbytes=4&duration=1&delay=3&code=503")
    assert resp.status == 503
    assert await resp.read() == b"****"
    assert fake_sleep.slept == pytest.approx([3, 0.25, 0.25, 0.25, 0.25])


async def test_drip_big_and_instant(server_client, fake_sleep):
    resp = await server_client.get(f"/drip?numbytes={10 * 1024 * 1024}&duration=0")
    assert len(await resp.read()) == 10 * 1024 * 1024
    assert fake_sleep.slept == []


async def test_drip_big_and_slow_is_a_bounded_number_of_writes(server_client, fake_sleep):
    resp = await server_client.get("/drip?numbytes=5000&duration=10")
    assert len(await resp.read()) == 5000
    assert len(fake_sleep.slept) == httpbin_formats.MAX_DRIP_WRITES
    assert sum(fake_sleep.slept) == pytest.approx(10)


async def test_drip_head_sends_no_body(server_client, fake_sleep):
    resp = await server_client.head("/drip?numbytes=7")
    assert resp.status == 200 and resp.headers["Content-Length"] == "7"
    assert await resp.read() == b""


async def test_drip_really_drips(server_client):
    """With real time: the headers come after the delay, the bytes one by one after that.

    A ``sock_read`` timeout shorter than the delay fires; one longer than each gap does not.
    """
    started = time.monotonic()
    async with server_client.get("/drip?numbytes=3&duration=0.15&delay=0.1") as resp:
        headers_after = time.monotonic() - started
        body = await resp.read()
    assert body == b"***"
    assert 0.09 <= headers_after < 0.25
    # The last byte completes the Content-Length: 0.1 s delay + two 0.05 s gaps before it.
    assert time.monotonic() - started >= 0.19
    with pytest.raises(aiohttp.SocketTimeoutError):
        timeout = aiohttp.ClientTimeout(sock_read=0.03)
        async with server_client.get("/drip?numbytes=1&duration=0&delay=0.2", timeout=timeout):
            pass


@pytest.mark.parametrize(
    "path", ["/drip?numbytes=1000&duration=10", "/range/100000?duration=10&chunk_size=100"]
)
def test_client_leaving_mid_stream_is_not_a_server_error(monkeypatch, caplog, path):
    """The course's runner does not cancel handlers (pytest-aiohttp's test server does), so a
    streaming handler sees its client go as a failed write: it must end quietly, not as a 500."""

    async def short_sleep(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.01))

    monkeypatch.setattr(timing, "sleep", short_sleep)
    with start_server() as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        for _ in range(200):  # wait (at most 2 s) for the server to notice
            timeline = server.stats().timeline
            if timeline and timeline[0].end is not None:
                break
            time.sleep(0.01)
        (record,) = server.stats().timeline
    assert record.status == 200
    assert not [r for r in caplog.records if r.name.startswith("local_server")]


@pytest.mark.parametrize(
    "query",
    [
        "duration=10.1",
        "duration=-1",
        "duration=inf",
        "duration=abc",
        "delay=11",
        "delay=-0.1",
        "delay=nan",
        "numbytes=0",
        "numbytes=-1",
        f"numbytes={10 * 1024 * 1024 + 1}",
        "numbytes=1e3",
        "code=199",
        "code=600",
        "code=204",
        "code=304",
        "code=abc",
    ],
)
async def test_drip_bad_input_is_400(server_client, fake_sleep, query):
    await assert_json_error(await server_client.get(f"/drip?{query}"), 400)
    assert fake_sleep.slept == []  # refused before any wait


# --- /json /html /xml /encoding/utf8 ---------------------------------------------------------


async def test_json_slideshow(server_client):
    resp = await server_client.get("/json")
    assert resp.content_type == "application/json"
    show = (await resp.json())["slideshow"]
    assert show["title"] == "Sample Slide Show" and show["author"] == "Yours Truly"
    assert [s["title"] for s in show["slides"]] == ["Wake up to WonderWidgets!", "Overview"]
    assert len(show["slides"][1]["items"]) == 2


async def test_html_moby_dick(server_client):
    resp = await server_client.get("/html")
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<h1>Herman Melville - Moby-Dick</h1>" in text and "blacksmith" in text


async def test_xml_slideshow(server_client):
    resp = await server_client.get("/xml")
    assert resp.content_type == "application/xml"
    root = ET.fromstring(await resp.read())
    assert root.tag == "slideshow" and root.get("title") == "Sample Slide Show"
    assert [s.findtext("title") for s in root.findall("slide")] == [
        "Wake up to WonderWidgets!",
        "Overview",
    ]


async def test_encoding_utf8(server_client):
    resp = await server_client.get("/encoding/utf8")
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    raw = await resp.read()
    text = raw.decode("utf-8")
    for sample in ["Γαζέες", "Съешь", "我能吞下玻璃", "いろは", "다람쥐", "🐍", "∮", "ᚠᛇᚻ"]:
        assert sample in text
    assert len(raw) > len(text)  # really multi-byte


# --- /gzip /deflate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "flag", "coding"),
    [("/gzip", "gzipped", "gzip"), ("/deflate", "deflated", "deflate")],
)
async def test_compressed_echo_is_decompressed_by_the_client(server_client, path, flag, coding):
    resp = await server_client.get(path, headers={"X-Test": "z"})
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == coding
    data = await resp.json()
    assert data == {
        "origin": "127.0.0.1",
        "headers": data["headers"],
        "method": "GET",
        flag: True,
    }
    assert data["headers"]["X-Test"] == "z"


async def test_compressed_bodies_really_are_compressed(server_client):
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(server_client.make_url("/gzip")) as resp:
            raw = await resp.read()
            assert int(resp.headers["Content-Length"]) == len(raw)
        assert raw[:2] == b"\x1f\x8b"
        assert json.loads(gzip.decompress(raw))["gzipped"] is True
        async with session.get(server_client.make_url("/deflate")) as resp:
            raw = await resp.read()
        assert json.loads(zlib.decompress(raw))["deflated"] is True


async def test_compressed_even_without_accept_encoding(server_client):
    resp = await server_client.get("/gzip", skip_auto_headers=["Accept-Encoding"])
    assert resp.headers["Content-Encoding"] == "gzip"
    assert (await resp.json())["gzipped"] is True


async def test_brotli_is_not_offered(server_client):
    await assert_json_error(await server_client.get("/brotli"), 404)


# --- /uuid /base64 ---------------------------------------------------------------------------


async def test_uuid(server_client):
    first = await (await server_client.get("/uuid")).json()
    second = await (await server_client.get("/uuid")).json()
    assert set(first) == {"uuid"}
    assert uuid.UUID(first["uuid"]).version == 4
    assert first != second


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("SFRUUEJJTiBpcyBhd2Vzb21l", "HTTPBIN is awesome"),
        ("aGk", "hi"),  # padding left off
        ("aGk%3D", "hi"),  # padding sent
        ("w6k", "é"),
        ("Pz8_", "???"),  # URL-safe alphabet: '_' for '/'
        ("Pj4-", ">>>"),  # '-' for '+'
    ],
)
async def test_base64(server_client, value, text):
    resp = await server_client.get(f"/base64/{value}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    assert await resp.text() == text


@pytest.mark.parametrize("value", ["a", "!!!!", "aGk==%3D", "%C3%A9", "_w", "aG%20k", "aGk%00"])
async def test_base64_invalid_is_400(server_client, value):
    data = await assert_json_error(await server_client.get(f"/base64/{value}"), 400)
    assert "base64" in data["detail"]


# --- /redirect-to ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [("/get", "/get"), ("/get?a=1&b=2", "/get?a=1&b=2"), ("/anything/é", "/anything/%C3%A9")],
)
async def test_redirect_to_a_path(server_client, url, location):
    resp = await server_client.get("/redirect-to", params={"url": url}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == location


async def test_redirect_to_this_server_absolute(server_client):
    url = f"http://127.0.0.1:{server_client.port}/get?x=1"
    resp = await server_client.get("/redirect-to", params={"url": url})
    assert resp.status == 200
    assert (await resp.json())["args"] == {"x": "1"}
    assert resp.history[0].headers["Location"] == url


@pytest.mark.parametrize("code", [300, 301, 302, 303, 305, 307, 308])
async def test_redirect_to_status_code(server_client, code):
    params = {"url": "/get", "status_code": str(code)}
    resp = await server_client.get("/redirect-to", params=params, allow_redirects=False)
    assert resp.status == code and resp.headers["Location"] == "/get"


async def test_redirect_to_307_keeps_the_method_and_body(server_client):
    params = {"url": "/post", "status_code": "307"}
    resp = await server_client.post("/redirect-to", params=params, json={"a": 1})
    assert resp.status == 200
    assert (await resp.json())["json"] == {"a": 1}


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://evil.example/get",
        "//evil.example/get",  # protocol-relative: another host
        "///evil.example",
        "/\\evil.example",  # browsers read a backslash as a slash
        "\\\\evil.example",
        "get",  # relative to the current path: not allowed
        "javascript:alert(1)",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:PORT@evil.example/",  # userinfo trick
        "http://127.0.0.1:1/get",  # same host, another port
        "http://localhost:PORT/get",  # another name for it: refused, as documented
        "/get\r\nSet-Cookie: a=1",
        "/get\x00",
        "http://[::1/",
        "",
    ],
)
async def test_redirect_to_elsewhere_is_400(server_client, url):
    url = url.replace("PORT", str(server_client.port))
    resp = await server_client.get("/redirect-to", params={"url": url}, allow_redirects=False)
    await assert_json_error(resp, 400)
    assert "Location" not in resp.headers


@pytest.mark.parametrize(
    "query",
    [
        "",
        "status_code=302",  # no url
        "url=/get&status_code=304",
        "url=/get&status_code=306",
        "url=/get&status_code=200",
        "url=/get&status_code=abc",
        "url=/get&status_code=399",
    ],
)
async def test_redirect_to_bad_arguments_are_400(server_client, query):
    resp = await server_client.get(f"/redirect-to?{query}", allow_redirects=False)
    await assert_json_error(resp, 400)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_redirect_to_methods(server_client, method):
    resp = await server_client.request(
        method, "/redirect-to?url=/get", allow_redirects=False, data=b"x"
    )
    assert resp.status == 302


# --- /relative-redirect /absolute-redirect ---------------------------------------------------


@pytest.mark.parametrize(("n", "location"), [(1, "/get"), (2, "/relative-redirect/1")])
async def test_relative_redirect_one_step(server_client, n, location):
    resp = await server_client.get(f"/relative-redirect/{n}", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == location


@pytest.mark.parametrize(("n", "path"), [(1, "/get"), (3, "/absolute-redirect/2")])
async def test_absolute_redirect_one_step(server_client, n, path):
    resp = await server_client.get(f"/absolute-redirect/{n}?x=1", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == f"http://127.0.0.1:{server_client.port}{path}"


@pytest.mark.parametrize("kind", ["relative", "absolute"])
async def test_redirects_followed_land_on_get(server_client, kind):
    resp = await server_client.get(f"/{kind}-redirect/5")
    assert resp.status == 200 and resp.url.path == "/get"
    assert len(resp.history) == 5


async def test_too_many_redirects_for_the_client(server_client):
    with pytest.raises(aiohttp.TooManyRedirects):
        await server_client.get("/relative-redirect/20", max_redirects=3)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
@pytest.mark.parametrize("n", ["0", "21", "-1", "x"])
async def test_redirect_bad_n_is_400(server_client, kind, n):
    resp = await server_client.get(f"/{kind}-redirect/{n}", allow_redirects=False)
    await assert_json_error(resp, 400)


async def test_absolute_redirect_bad_host_is_400(server_client):
    resp = await server_client.get(
        "/absolute-redirect/2", headers={"Host": "x:port"}, allow_redirects=False
    )
    await assert_json_error(resp, 400)


# --- every route: HEAD, OPTIONS, the index ---------------------------------------------------

NEW_GET_PATHS = ["/user-agent", "/ip", "/cookies", "/bytes/10", "/stream/2", "/stream-bytes/10",
                 "/range/10", "/drip?duration=0&numbytes=3", "/json", "/html", "/xml",
                 "/encoding/utf8", "/gzip", "/deflate", "/uuid", "/base64/aGk",
                 "/response-headers?X-A=1", "/headers", "/get"]  # fmt: skip


def test_every_get_route_also_answers_head():
    """aiohttp adds HEAD to add_get() routes by default; check none of them opted out."""
    app = create_app()
    methods: dict[str, set[str]] = {}
    for route in app.router.routes():
        methods.setdefault(route.resource.canonical, set()).add(route.method)
    missing = [path for path, found in methods.items() if "GET" in found and "HEAD" not in found]
    assert not missing


@pytest.mark.parametrize("path", NEW_GET_PATHS)
async def test_head_matches_get(server_client, path):
    got = await server_client.get(path)
    await got.read()
    head = await server_client.head(path)
    assert head.status == got.status == 200
    assert head.headers.get("Content-Type") == got.headers.get("Content-Type")
    assert await head.read() == b""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/get", "GET, HEAD, OPTIONS"),
        ("/headers", "GET, HEAD, OPTIONS"),
        ("/post", "OPTIONS, POST"),
        ("/put", "OPTIONS, PUT"),
        ("/patch", "OPTIONS, PATCH"),
        ("/delete", "DELETE, OPTIONS"),
        ("/response-headers", "GET, HEAD, OPTIONS, POST"),
        ("/bytes/5", "GET, HEAD, OPTIONS"),
    ],
)
async def test_options_is_a_cors_preflight(server_client, path, allowed):
    headers = {
        "Origin": "http://example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-token, content-type",
    }
    resp = await server_client.options(path, headers=headers)
    assert resp.status == 200
    assert resp.headers["Allow"] == allowed
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Access-Control-Allow-Methods"] == allowed
    assert resp.headers["Access-Control-Allow-Headers"] == "x-token, content-type"
    assert resp.headers["Access-Control-Max-Age"] == "3600"
    assert await resp.read() == b""


async def test_options_without_preflight_headers(server_client):
    resp = await server_client.options("/get")
    assert resp.status == 200 and "Access-Control-Allow-Headers" not in resp.headers


async def test_options_leaves_other_routes_alone(server_client):
    """Routes that take any method still echo OPTIONS; unknown paths are still 404; other
    wrong methods are still 405 with the router's own Allow."""
    resp = await server_client.options("/anything")
    assert (await resp.json())["method"] == "OPTIONS"
    await assert_json_error(await server_client.options("/nope"), 404)
    resp = await server_client.post("/get")
    await assert_json_error(resp, 405)
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}


NEW_PATHS = {
    "/user-agent", "/ip", "/cookies", "/cookies/set", "/cookies/set/{name}/{value}",
    "/cookies/delete", "/basic-auth/{user}/{passwd}", "/hidden-basic-auth/{user}/{passwd}",
    "/bearer", "/response-headers", "/bytes/{n}", "/stream/{n}", "/stream-bytes/{n}",
    "/range/{n}", "/drip", "/json", "/html", "/xml", "/encoding/utf8", "/gzip", "/deflate",
    "/uuid", "/base64/{value}", "/redirect-to", "/relative-redirect/{n}",
    "/absolute-redirect/{n}",
}  # fmt: skip


def test_index_lists_the_new_endpoints_with_short_descriptions():
    endpoints = {e["path"]: e for e in endpoint_index(create_app())}
    assert NEW_PATHS <= set(endpoints)
    for path in NEW_PATHS:
        description = endpoints[path]["description"]
        assert description and len(description) <= 80, (path, description)
    assert endpoints["/response-headers"]["methods"] == "GET,POST"
    assert endpoints["/redirect-to"]["methods"] == "DELETE,GET,PATCH,POST,PUT"


# --- seeded fuzz over the new routes ---------------------------------------------------------

FUZZ_SEED = 20_261_124
FUZZ_ROUTES = [
    "user-agent", "ip", "cookies", "cookies/set", "cookies/set/a/b", "cookies/delete",
    "basic-auth/u/p", "hidden-basic-auth/u/p", "bearer", "response-headers", "bytes/10",
    "bytes/102400", "stream/3", "stream-bytes/100", "range/100", "drip", "json", "html", "xml",
    "encoding/utf8", "gzip", "deflate", "uuid", "base64/aGk", "redirect-to",
    "relative-redirect/2", "absolute-redirect/2",
]  # fmt: skip
FUZZ_KEYS = ["seed", "chunk_size", "duration", "delay", "numbytes", "code", "url", "status_code",
             "a", "Content-Type", "Set-Cookie", "expires", "X-A", "Content-Length"]  # fmt: skip
FUZZ_VALUES = ["", "0", "1", "-1", "10", "1e400", "nan", "99999999999999999999", "abc", "é",
               "/get", "//x", "http://x/", "\r\n", "\x00", "a b", "302", "204", "1024"]  # fmt: skip
FUZZ_HEADERS = ["Range", "If-Range", "Authorization", "Cookie", "Access-Control-Request-Headers"]
FUZZ_HEADER_VALUES = ["bytes=0-1", "bytes=-1", "bytes=9-2", "bytes=1-2,3-4", "Basic !!", "Bearer",
                      "Basic dTpw", "a=1; b", '"range100"', "", "x" * 500]  # fmt: skip


def _fuzz_request(rng: random.Random) -> tuple[str, yarl.URL, dict[str, str]]:
    path = "/" + rng.choice(FUZZ_ROUTES)
    if rng.random() < 0.2:
        path += "/" + quote(rng.choice(FUZZ_VALUES), safe="")
    pairs = [(rng.choice(FUZZ_KEYS), rng.choice(FUZZ_VALUES)) for _ in range(rng.randint(0, 4))]
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)
    url = yarl.URL(f"{path}?{query}" if query else path, encoded=True)
    headers = {h: rng.choice(FUZZ_HEADER_VALUES) for h in rng.sample(FUZZ_HEADERS, 2)}
    method = rng.choice(["GET", "GET", "HEAD", "POST", "OPTIONS", "DELETE"])
    return method, url, headers


async def test_fuzz_new_routes_never_5xx(server_client, server_stats, fake_sleep, caplog):
    rng = random.Random(FUZZ_SEED)
    seen: set[int] = set()
    for i in range(300):
        method, url, headers = _fuzz_request(rng)
        resp = await server_client.request(method, url, headers=headers, allow_redirects=False)
        body = await resp.read()
        where = f"request {i}: {method} {url} {headers} -> {resp.status} {body[:200]!r}"
        assert resp.status < 500 or url.path == "/drip", where  # /drip?code=503 is chosen
        seen.add(resp.status)
        if resp.status >= 400 and method != "HEAD" and url.path != "/drip":
            assert set(json.loads(body)) == {"error", "detail"}, where
    assert {200, 302, 400, 401, 404, 405} <= seen
    assert not [r for r in caplog.records if r.name.startswith("local_server")]
    assert server_stats.snapshot().in_flight == 0

