"""Deterministic downloads (Content-Length, ETag, Range, throttle, broken transfers) and the
streaming upload endpoint (sizes, SHA-256, caps, malformed multipart)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from conftest import json_error_detail

from local_server import files
from local_server.files import BLOCK_SIZE, file_etag, file_sha256, iter_content

pytestmark = pytest.mark.usefixtures("no_errors_logged")

LOGGERS_THAT_MUST_STAY_QUIET = ("aiohttp", "local_server", "asyncio")
MiB = 1024 * 1024


def content(size: int, name: str | None = None) -> bytes:
    return b"".join(iter_content(size, name))


# --- the content itself ----------------------------------------------------------------------


def test_content_is_deterministic_sized_and_seeded_by_name_and_size():
    size = 3 * BLOCK_SIZE + 123
    data = content(size)
    assert len(data) == size
    assert data == content(size)
    assert data != content(size, "other.bin")[:size]
    assert content(size + 1)[:size] != data  # the size is part of the seed
    assert file_sha256(size) == hashlib.sha256(data).hexdigest()
    assert file_sha256(size, "other.bin") != file_sha256(size)


def test_no_two_blocks_are_equal_and_pieces_are_small():
    pieces = list(iter_content(8 * BLOCK_SIZE))
    assert len(set(pieces)) == len(pieces) == 8
    assert all(len(piece) <= BLOCK_SIZE for piece in pieces)
    # a resume one block too late or too early changes the bytes
    data = b"".join(pieces)
    assert data[BLOCK_SIZE:] != data[: 7 * BLOCK_SIZE]


@pytest.mark.parametrize(
    ("first", "last"),
    [(0, 0), (0, 99), (5, 5), (BLOCK_SIZE - 1, BLOCK_SIZE), (100, 3 * BLOCK_SIZE + 7)],
)
def test_any_slice_matches_the_whole(first, last):
    size = 4 * BLOCK_SIZE
    assert b"".join(iter_content(size, None, first, last)) == content(size)[first : last + 1]


def test_empty_file():
    assert content(0) == b""
    assert file_sha256(0) == hashlib.sha256(b"").hexdigest()


def test_etag_is_strong_and_depends_on_name_and_size():
    etag = file_etag(1000)
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert etag == file_etag(1000, "file-1000.bin")  # the default name
    assert len({etag, file_etag(1001), file_etag(1000, "x.bin")}) == 3


# --- GET /files/{size} -----------------------------------------------------------------------


async def test_download_body_and_headers(server_client):
    size = 2 * BLOCK_SIZE + 10
    resp = await server_client.get(f"/files/{size}")
    body = await resp.read()
    assert resp.status == 200
    assert body == content(size)
    assert resp.headers["Content-Length"] == str(size)
    assert resp.headers["ETag"] == file_etag(size)
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="file-{size}.bin"'
    assert "X-Range-Ignored" not in resp.headers


async def test_download_with_a_name(server_client):
    resp = await server_client.get("/files/5000", params={"name": "report_v2.csv"})
    assert await resp.read() == content(5000, "report_v2.csv")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="report_v2.csv"'
    assert resp.headers["ETag"] == file_etag(5000, "report_v2.csv")


async def test_download_streamed_in_pieces_matches_sha256_endpoint(server_client):
    size = 5 * MiB + 17
    resp = await server_client.get(f"/files/{size}")
    digest = hashlib.sha256()
    received = 0
    async for chunk in resp.content.iter_chunked(256 * 1024):
        digest.update(chunk)
        received += len(chunk)
    assert received == size
    info = await (await server_client.get(f"/files/{size}/sha256")).json()
    assert info == {
        "name": f"file-{size}.bin", "size": size, "sha256": digest.hexdigest(),
        "etag": file_etag(size),
    }  # fmt: skip


async def test_sha256_endpoint_with_name(server_client):
    info = await (await server_client.get("/files/100/sha256", params={"name": "a.bin"})).json()
    assert info["sha256"] == hashlib.sha256(content(100, "a.bin")).hexdigest()


def _peak_memory() -> int | None:
    """This process's peak resident memory in bytes, where the platform tells it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


async def test_largest_file_streams_without_building_it(server_client):
    """The 256 MiB file arrives intact: the server makes it block by block as it sends."""
    size = files.MAX_FILE_BYTES
    peak_before = _peak_memory()
    resp = await server_client.get(f"/files/{size}")
    digest = hashlib.sha256()
    async for chunk in resp.content.iter_chunked(MiB):
        digest.update(chunk)
    assert digest.hexdigest() == file_sha256(size)
    if peak_before is not None:
        assert _peak_memory() - peak_before < size // 2  # nowhere near the whole file


async def test_head_gives_the_headers_only(server_client):
    resp = await server_client.head("/files/123456")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "123456"
    assert resp.headers["ETag"] == file_etag(123456)
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert await resp.read() == b""
    resp = await server_client.head("/files/1000", headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == "bytes 10-19/1000"
    assert resp.headers["Content-Length"] == "10"


async def test_empty_file_download(server_client):
    resp = await server_client.get("/files/0")
    assert resp.status == 200
    assert await resp.read() == b""
    assert resp.headers["Content-Length"] == "0"


@pytest.mark.parametrize(
    "path",
    [
        "/files/-1", f"/files/{files.MAX_FILE_BYTES + 1}", "/files/abc", "/files/1.5",
        "/files/1e3", "/files/99999999999999999999999", "/files/-1/sha256",
        f"/files/{files.MAX_FILE_BYTES + 1}/sha256",
    ],
)  # fmt: skip
async def test_bad_size_is_400(server_client, path):
    detail = await json_error_detail(await server_client.get(path), 400)
    assert "size" in detail


@pytest.mark.parametrize("name", ["../etc/passwd", ".hidden", "-x", "a b", "a" * 65, "é.bin", ""])
async def test_bad_name_is_400(server_client, name):
    for path in ("/files/10", "/files/10/sha256"):
        detail = await json_error_detail(await server_client.get(path, params={"name": name}), 400)
        assert "name" in detail


# --- Range -----------------------------------------------------------------------------------

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-10", 10, 10),
        ("bytes=990-", 990, 999),
        ("bytes=0-", 0, 999),
        ("bytes=-5", 995, 999),
        ("bytes=-5000", 0, 999),  # a suffix longer than the file: all of it
        ("bytes=500-5000", 500, 999),  # an end past the end is clipped
        ("BYTES=1-2", 1, 2),
        ("bytes= 3-4 ", 3, 4),
    ],
)
async def test_range_206(server_client, header, first, last):
    resp = await server_client.get(f"/files/{SIZE}", headers={"Range": header})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert resp.headers["Content-Length"] == str(last - first + 1)
    assert resp.headers["ETag"] == file_etag(SIZE)
    assert await resp.read() == content(SIZE)[first : last + 1]


@pytest.mark.parametrize(
    ("size", "header"),
    [(SIZE, "bytes=1000-"), (SIZE, "bytes=1000-2000"), (SIZE, "bytes=-0"), (0, "bytes=0-"),
     (0, "bytes=-1")],
)  # fmt: skip
async def test_unsatisfiable_range_is_416(server_client, size, header):
    resp = await server_client.get(f"/files/{size}", headers={"Range": header})
    detail = await json_error_detail(resp, 416)
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert "not satisfiable" in detail


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("bytes=0-1,5-6", "several ranges"),
        ("bytes=abc", "malformed"),
        ("bytes=5", "malformed"),
        ("bytes=-", "malformed"),
        ("bytes=5-2", "end comes before the start"),
        ("bytes=1-2-3", "malformed"),
        ("bytes=" + "9" * 30 + "-", "malformed"),
        ("bytes=１-2", "malformed"),  # not ASCII digits
        ("items=0-1", "not a bytes range"),
        ("0-1", "not a bytes range"),
    ],
)
async def test_ignored_range_sends_the_whole_file(server_client, header, why):
    resp = await server_client.get(f"/files/{SIZE}", headers={"Range": header})
    assert resp.status == 200
    assert why in resp.headers["X-Range-Ignored"]
    assert "Content-Range" not in resp.headers
    assert await resp.read() == content(SIZE)


async def test_if_range_with_the_etag_honours_the_range(server_client):
    headers = {"Range": "bytes=100-199", "If-Range": file_etag(SIZE)}
    resp = await server_client.get(f"/files/{SIZE}", headers=headers)
    assert resp.status == 206
    assert await resp.read() == content(SIZE)[100:200]


@pytest.mark.parametrize(
    "if_range", ['"not-the-etag"', "Mon, 23 Nov 2026 10:00:00 GMT", "W/" + file_etag(SIZE)]
)
async def test_if_range_that_does_not_match_sends_everything(server_client, if_range):
    headers = {"Range": "bytes=100-199", "If-Range": if_range}
    resp = await server_client.get(f"/files/{SIZE}", headers=headers)
    assert resp.status == 200
    assert "If-Range" in resp.headers["X-Range-Ignored"]
    assert await resp.read() == content(SIZE)


# --- ?rate= ----------------------------------------------------------------------------------


async def test_rate_paces_the_body(server_client, fake_sleep):
    size, rate = 100_000, 10_000  # 10 s at that rate: the fake sleep makes it instant
    resp = await server_client.get(f"/files/{size}", params={"rate": rate})
    assert await resp.read() == content(size)
    assert len(fake_sleep.slept) >= 10  # small pieces, so a progress bar moves
    assert sum(fake_sleep.slept) == pytest.approx(size / rate)


async def test_rate_really_throttles(server_client):
    started = time.perf_counter()
    resp = await server_client.get("/files/30000", params={"rate": 100_000})
    assert await resp.read() == content(30000)
    assert time.perf_counter() - started >= 0.25


@pytest.mark.parametrize(
    ("size", "rate", "word"),
    [(1000, "1023", "rate"), (1000, "x", "rate"), (1000, "-5", "rate"),
     (10 * MiB, "1024", "60 s"), (61 * 1024, "1024", "60 s")],
)  # fmt: skip
async def test_bad_rate_is_400(server_client, size, rate, word):
    detail = await json_error_detail(
        await server_client.get(f"/files/{size}", params={"rate": rate}), 400
    )
    assert word in detail


async def test_rate_limit_counts_only_the_range_asked_for(server_client, fake_sleep):
    resp = await server_client.get(
        f"/files/{10 * MiB}", params={"rate": 1024}, headers={"Range": "bytes=0-9999"}
    )
    assert resp.status == 206
    assert await resp.read() == content(10 * MiB)[:10000]


# --- ?break_at= and resuming -----------------------------------------------------------------


async def test_break_at_cuts_the_body_short(server_client):
    size = 3 * BLOCK_SIZE
    resp = await server_client.get(f"/files/{size}", params={"break_at": 70_000})
    assert resp.headers["Content-Length"] == str(size)
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in resp.content.iter_any():
            received.extend(chunk)
    assert bytes(received) == content(size)[:70_000]


async def test_break_at_the_end_or_before_the_range_does_nothing(server_client):
    size = 10_000
    resp = await server_client.get(f"/files/{size}", params={"break_at": size})
    assert await resp.read() == content(size)
    resp = await server_client.get(
        f"/files/{size}", params={"break_at": 500}, headers={"Range": "bytes=500-"}
    )
    assert resp.status == 206
    assert await resp.read() == content(size)[500:]


async def test_break_at_cuts_a_range_from_byte_zero(server_client):
    """``Range: bytes=0-`` is a download from the start, not a resume: it breaks too."""
    size = 3 * BLOCK_SIZE
    resp = await server_client.get(
        f"/files/{size}", params={"break_at": 70_000}, headers={"Range": "bytes=0-"}
    )
    assert resp.status == 206
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_a_resume_from_before_break_at_completes(server_client):
    """A client that lost the last bytes before the break resumes short of it: no second cut."""
    size = 3 * BLOCK_SIZE
    resp = await server_client.get(
        f"/files/{size}", params={"break_at": 70_000}, headers={"Range": "bytes=65536-"}
    )
    assert resp.status == 206
    assert await resp.read() == content(size)[65_536:]


async def test_break_at_waits_before_closing(server_client, fake_sleep):
    """The grace before the close gives a loaded client time to read the last bytes."""
    resp = await server_client.get("/files/10000", params={"break_at": 5000})
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert fake_sleep.slept == [files.BREAK_GRACE]


@pytest.mark.parametrize("break_at", ["0", "-1", "10001", "x"])
async def test_bad_break_at_is_400(server_client, break_at):
    resp = await server_client.get("/files/10000", params={"break_at": break_at})
    await json_error_detail(resp, 400)


async def _resumable_download(session: aiohttp.ClientSession, url: str) -> tuple[bytes, int]:
    """What a lesson's downloader does: on a broken body, ask for the rest with Range and
    If-Range. Returns the bytes and the number of requests made."""
    data = bytearray()
    etag = None
    for attempt in range(1, 5):
        headers = {}
        if data:
            headers = {"Range": f"bytes={len(data)}-", "If-Range": etag}
        try:
            async with session.get(url, headers=headers) as resp:
                if data and resp.status != 206:
                    data.clear()  # the server sent the whole file again
                etag = resp.headers["ETag"]
                async for chunk in resp.content.iter_chunked(16 * 1024):
                    data.extend(chunk)
            return bytes(data), attempt
        except aiohttp.ClientPayloadError:
            continue
    raise AssertionError("never completed")


async def test_resumed_download_reproduces_the_sha256(server_client):
    size, cut = 1 * MiB + 5, 400_000
    url = str(server_client.make_url(f"/files/{size}").with_query(break_at=cut))
    async with aiohttp.ClientSession() as session:
        data, requests = await _resumable_download(session, url)
        info = await (
            await session.get(str(server_client.make_url(f"/files/{size}/sha256")))
        ).json()
    assert requests == 2
    assert hashlib.sha256(data).hexdigest() == info["sha256"] == file_sha256(size)


# --- ?fail=N&key=K: transient failures before the file ---------------------------------------


async def test_fail_answers_503_n_times_then_the_file(server_client):
    size = 5000
    params = {"fail": 2, "key": "busy", "retry_after": 1}
    for attempt in (1, 2):
        resp = await server_client.get(f"/files/{size}", params=params)
        await json_error_detail(resp, 503)
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["X-Attempt"] == str(attempt)
    resp = await server_client.get(f"/files/{size}", params=params)
    assert resp.status == 200
    assert resp.headers["X-Attempt"] == "3"
    assert hashlib.sha256(await resp.read()).hexdigest() == file_sha256(size)
    log = (await (await server_client.get("/fail/busy")).json())["log"]
    assert [(entry["attempt"], entry["status"]) for entry in log] == [(1, 503), (2, 503), (3, 200)]


async def test_fail_counts_ranges_and_keeps_learners_apart(server_client):
    params = {"fail": 1, "key": "k", "status": 429}
    resp = await server_client.get("/files/1000", params=params, headers={"Range": "bytes=10-"})
    await json_error_detail(resp, 429)
    assert "Retry-After" not in resp.headers
    resp = await server_client.get("/files/1000", params=params, headers={"Range": "bytes=10-"})
    assert resp.status == 206
    assert await resp.read() == content(1000)[10:]
    ada = await server_client.get("/files/1000", params=params, headers={"X-Learner": "ada"})
    await json_error_detail(ada, 429)
    log = (await (await server_client.get("/fail/k")).json())["log"]
    assert [entry["status"] for entry in log] == [429, 206]


async def test_fail_zero_and_key_alone_change_nothing(server_client):
    resp = await server_client.get("/files/100", params={"fail": 0, "key": "z"})
    assert resp.status == 200 and resp.headers["X-Attempt"] == "1"
    assert await resp.read() == content(100)
    resp = await server_client.get("/files/100", params={"key": "z"})
    assert resp.status == 200 and "X-Attempt" not in resp.headers


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"fail": "-1", "key": "k"}, "fail"),
        ({"fail": "101", "key": "k"}, "fail"),
        ({"fail": "x", "key": "k"}, "fail"),
        ({"fail": "1"}, "key"),
        ({"fail": "1", "key": ""}, "key"),
        ({"fail": "1", "key": "a/b"}, "key"),
        ({"fail": "1", "key": "k" * 65}, "key"),
        ({"fail": "1", "key": "k", "status": "200"}, "status"),
        ({"fail": "1", "key": "k", "retry_after": "-1"}, "retry_after"),
        ({"fail": "1", "key": "k", "retry_after": "1", "date": "2"}, "date"),
    ],
)
async def test_bad_fail_parameters_are_400_and_not_counted(server_client, params, word):
    resp = await server_client.get("/files/100", params=params)
    assert word in await json_error_detail(resp, 400)
    log = (await (await server_client.get("/fail/k")).json())["log"]
    assert log == []


# --- uploads: raw bodies ---------------------------------------------------------------------


async def _generate(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """``total`` bytes of a known pattern, streamed in chunks (the client sends it chunked)."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def _generated(total: int, chunk: int = 256 * 1024) -> bytes:
    block = bytes(range(256)) * (chunk // 256)
    return (block * (total // len(block) + 1))[:total]


async def test_upload_raw_bytes(server_client):
    body = b"hello upload"
    resp = await server_client.post("/upload", data=body, headers={"Content-Type": "text/plain"})
    assert resp.status == 200
    assert await resp.json() == {
        "method": "POST", "kind": "raw", "content_type": "text/plain", "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }  # fmt: skip


async def test_upload_put_and_empty_body(server_client):
    resp = await server_client.put("/upload")
    data = await resp.json()
    assert data["method"] == "PUT"
    assert data["size"] == 0
    assert data["sha256"] == hashlib.sha256(b"").hexdigest()


async def test_upload_streamed_from_an_async_generator(server_client):
    total = 12 * MiB + 3  # well past the app's 1 MiB client_max_size: that bound is for read()
    resp = await server_client.post("/upload", data=_generate(total))
    data = await resp.json()
    assert resp.status == 200, data
    assert data["kind"] == "raw"
    assert data["size"] == total
    assert data["sha256"] == hashlib.sha256(_generated(total)).hexdigest()


async def test_upload_counts_the_decoded_body(server_client):
    body = b"a" * 100_000
    resp = await server_client.post(
        "/upload", data=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    data = await resp.json()
    assert data["size"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("body", [b"this is not gzip", b"x" * 100, b"x" * (3 * MiB)])
async def test_upload_undecodable_body_is_400_and_closes(server_client, encoding, body):
    """The answer is sent, then the connection closed, and nothing is logged as an error
    (left to itself, aiohttp would read the rest of the body and log the decoding error)."""
    resp = await server_client.post(
        "/upload", data=io.BytesIO(body), headers={"Content-Encoding": encoding}
    )
    detail = await json_error_detail(resp, 400)
    assert "could not be read" in detail
    assert resp.headers["Connection"] == "close"
    await asyncio.sleep(0.05)  # time for anything the server would log
    assert (await server_client.post("/upload", data=b"next")).status == 200


async def test_upload_get_is_405(server_client):
    await json_error_detail(await server_client.get("/upload"), 405)


# --- uploads: multipart ----------------------------------------------------------------------


async def test_upload_multipart_reports_each_part(server_client):
    big = _generated(3 * MiB)
    form = aiohttp.FormData()
    form.add_field("title", "Grüße")
    form.add_field("notes", "n" * 2000)  # too long to echo
    form.add_field("doc", b"%PDF-1.4 tiny", filename="report.pdf", content_type="application/pdf")
    form.add_field("blob", io.BytesIO(big), filename="big.bin")
    resp = await server_client.post("/upload", data=form)
    data = await resp.json()
    assert resp.status == 200, data
    assert data["kind"] == "multipart"
    assert data["content_type"] == "multipart/form-data"
    parts = {p["name"]: p for p in data["parts"]}
    assert [p["name"] for p in data["parts"]] == ["title", "notes", "doc", "blob"]
    assert parts["title"]["value"] == "Grüße"
    assert parts["title"]["filename"] is None
    assert parts["title"]["size"] == len("Grüße".encode())
    assert parts["notes"]["value"] is None and parts["notes"]["size"] == 2000
    assert parts["doc"] == {
        "name": "doc", "filename": "report.pdf", "content_type": "application/pdf",
        "size": 13, "sha256": hashlib.sha256(b"%PDF-1.4 tiny").hexdigest(), "value": None,
    }  # fmt: skip
    assert parts["blob"]["size"] == len(big)
    assert parts["blob"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert data["size"] == sum(p["size"] for p in data["parts"])


def _multipart(*parts: bytes, boundary: bytes = b"xx") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + b"--\r\n"


MULTIPART = {"Content-Type": "multipart/form-data; boundary=xx"}


async def test_upload_filenames_are_only_echoed(server_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = _multipart(
        b'Content-Disposition: form-data; name="f"; filename="../../etc/passwd"\r\n\r\nroot',
        b'Content-Disposition: form-data; name="g"; filename="..\\\\..\\\\boot.ini"\r\n\r\nx',
    )
    resp = await server_client.post("/upload", data=body, headers=MULTIPART)
    parts = (await resp.json())["parts"]
    assert [p["filename"] for p in parts] == ["../../etc/passwd", "..\\..\\boot.ini"]
    assert list(tmp_path.iterdir()) == []


async def test_upload_undecodable_field_has_no_value(server_client):
    body = _multipart(
        b"Content-Disposition: form-data; name=a\r\n\r\n\xff\xfe",
        b"Content-Disposition: form-data; name=b\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nv",
        b"Content-Disposition: form-data; name=c\r\n"
        b"Content-Type: text/plain; charset=latin-1\r\n\r\n\xe9",
    )
    parts = (await (await server_client.post("/upload", data=body, headers=MULTIPART)).json())[
        "parts"
    ]
    assert [(p["name"], p["size"], p["value"]) for p in parts] == [
        ("a", 2, None), ("b", 1, None), ("c", 1, "é")
    ]  # fmt: skip


async def test_upload_empty_multipart(server_client):
    resp = await server_client.post("/upload", data=b"--xx--\r\n", headers=MULTIPART)
    assert (await resp.json())["parts"] == []


PART = b'Content-Disposition: form-data; name="a"\r\n\r\nvalue\r\n'


@pytest.mark.parametrize(
    ("content_type", "body", "word"),
    [
        ("multipart/form-data", b"--xx\r\n" + PART + b"--xx--\r\n", "boundary"),
        ("multipart/form-data; boundary=xx", b"garbage without any boundary", "boundary"),
        ("multipart/form-data; boundary=xx", b"--xx\r\n" + PART[:30], "name"),
        ("multipart/form-data; boundary=xx", b"--xx\r\n\r\nvalue\r\n--xx--\r\n", "name"),
        ("multipart/form-data; boundary=xx", b"--xx\r\nContent-Disposition: form-data; name=f"
         b"\r\n\r\n" + b"z" * 20, "multipart"),
        ("multipart/form-data; boundary=" + "b" * 80, b"--xx--\r\n", "too long"),
        ("multipart/form-data; boundary=xx", b"--xx\r\n" + b"X-H: 1\r\n" * 200 + b"\r\nv\r\n"
         b"--xx--\r\n", "headers"),
        ("multipart/form-data; boundary=xx", b"--xx\r\nX: " + b"h" * 10000 + b"\r\n\r\nv\r\n"
         b"--xx--\r\n", "multipart"),
        ("multipart/mixed; boundary=xx", b"--xx\r\nContent-Type: multipart/mixed; boundary=yy"
         b"\r\n\r\n--yy\r\n\r\nx\r\n--yy--\r\n--xx--\r\n", "itself multipart"),
    ],
)  # fmt: skip
async def test_malformed_multipart_is_400(server_client, content_type, body, word):
    resp = await server_client.post("/upload", data=body, headers={"Content-Type": content_type})
    detail = await json_error_detail(resp, 400)
    assert word in detail
    assert (await server_client.post("/upload", data=b"next")).status == 200


# --- uploads: caps ---------------------------------------------------------------------------


@pytest.fixture
def small_cap(monkeypatch) -> int:
    """Uploads capped at 1 MiB, so over-cap tests stay quick."""
    monkeypatch.setattr(files, "MAX_UPLOAD_BYTES", MiB)
    return MiB


async def test_upload_exactly_at_the_cap_is_fine(server_client, small_cap):
    resp = await server_client.post("/upload", data=_generate(small_cap))
    assert (await resp.json())["size"] == small_cap


@pytest.mark.parametrize(
    "data",
    [
        lambda: io.BytesIO(b"x" * (MiB + 1)),  # Content-Length says it at once
        lambda: _generate(MiB + 1),  # chunked: found while reading
        lambda: _generate(5 * MiB),
    ],
    ids=["declared", "streamed", "streamed-far-over"],
)
async def test_upload_over_the_cap_is_413(server_client, small_cap, data):
    resp = await server_client.post("/upload", data=data())
    detail = await json_error_detail(resp, 413)
    assert str(small_cap) in detail
    assert "Connection" not in resp.headers  # the rest was read, so the connection stays
    assert (await server_client.post("/upload", data=b"next")).status == 200


async def test_multipart_over_the_cap_is_413(server_client, small_cap):
    form = aiohttp.FormData()
    form.add_field("a", b"x" * (MiB // 2), filename="a.bin")
    form.add_field("b", b"x" * (MiB // 2), filename="b.bin")  # the framing tips it over
    resp = await server_client.post("/upload", data=form)
    await json_error_detail(resp, 413)


async def test_too_many_parts_is_413(server_client, monkeypatch):
    monkeypatch.setattr(files, "MAX_UPLOAD_PARTS", 3)
    parts = [b"Content-Disposition: form-data; name=p%d\r\n\r\nv" % i for i in range(4)]
    resp = await server_client.post("/upload", data=_multipart(*parts), headers=MULTIPART)
    detail = await json_error_detail(resp, 413)
    assert "more than 3 parts" in detail
    resp = await server_client.post("/upload", data=_multipart(*parts[:3]), headers=MULTIPART)
    assert len((await resp.json())["parts"]) == 3


async def test_far_over_the_cap_gets_413_and_connection_close(server_client, monkeypatch):
    """Past the discard budget too the server stops reading and says it will close."""
    monkeypatch.setattr(files, "MAX_UPLOAD_BYTES", MiB)
    monkeypatch.setattr(files, "MAX_DISCARD_BYTES", MiB)
    resp = await server_client.post("/upload", data=io.BytesIO(b"x" * (3 * MiB)))
    await json_error_detail(resp, 413)
    assert resp.headers["Connection"] == "close"
    assert (await server_client.post("/upload", data=b"next")).status == 200


async def test_real_cap_streamed(server_client):
    """The real 64 MiB cap, found while streaming (no Content-Length)."""
    resp = await server_client.post("/upload", data=_generate(files.MAX_UPLOAD_BYTES + 1, MiB))
    detail = await json_error_detail(resp, 413)
    assert "64 MiB" in detail


# --- the endpoint index ----------------------------------------------------------------------


async def test_index_lists_file_endpoints(server_client):
    endpoints = {e["path"]: e for e in (await (await server_client.get("/")).json())["endpoints"]}
    expected = {"/files/{size}": "GET", "/files/{size}/sha256": "GET", "/upload": "POST,PUT"}
    for path, methods in expected.items():
        assert endpoints[path]["methods"] == methods
        assert 20 < len(endpoints[path]["description"]) <= 80, path
