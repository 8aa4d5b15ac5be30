"""Fault endpoints: fail N times, Retry-After, seeded flakiness, slow headers and bodies,
broken connections, and bodies that lie about their type or charset."""

from __future__ import annotations

import asyncio
import email.utils
import errno
import json
import random
import time
from urllib.parse import quote

import aiohttp
import pytest
import yarl
from conftest import json_error_detail

from local_server import create_app, faults

pytestmark = pytest.mark.usefixtures("no_errors_logged")

# --- /fail -----------------------------------------------------------------------------------


async def test_fail_n_times_then_succeed(server_client):
    for attempt in (1, 2, 3):
        resp = await server_client.get("/fail/k/3")
        detail = await json_error_detail(resp, 503)
        assert f"attempt {attempt} failed" in detail and "first 3 calls" in detail
        assert resp.headers["X-Attempt"] == str(attempt)
        assert "Retry-After" not in resp.headers
    for attempt in (4, 5):
        resp = await server_client.get("/fail/k/3")
        assert resp.status == 200
        data = await resp.json()
        assert data == {"key": "k", "attempt": attempt, "failures": 3, "method": "GET"}
        assert resp.headers["X-Attempt"] == str(attempt)


@pytest.mark.parametrize("status", [400, 404, 429, 500, 502, 503, 504, 599])
async def test_fail_with_chosen_status(server_client, status):
    resp = await server_client.post(f"/fail/s{status}/1", params={"status": status})
    assert resp.status == status
    resp = await server_client.post(f"/fail/s{status}/1", params={"status": status})
    assert resp.status == 200
    assert (await resp.json())["method"] == "POST"


async def test_fail_zero_never_fails(server_client):
    for _ in range(3):
        assert (await server_client.get("/fail/zero/0")).status == 200


async def test_fail_counts_calls_whatever_n_says(server_client):
    """The attempt number counts every call to the key: n only decides which fail."""
    assert (await server_client.get("/fail/k/1")).status == 503  # attempt 1
    assert (await server_client.get("/fail/k/1")).status == 200  # attempt 2
    assert (await server_client.get("/fail/k/3")).status == 503  # attempt 3 <= 3
    assert (await server_client.get("/fail/k/3")).status == 200  # attempt 4


async def test_fail_keys_and_learners_are_separate(server_client):
    assert (await server_client.get("/fail/a/1")).status == 503
    assert (await server_client.get("/fail/a/1")).status == 200
    assert (await server_client.get("/fail/b/1")).status == 503  # another key
    ada = {"X-Learner": "ada"}
    assert (await server_client.get("/fail/a/1", headers=ada)).status == 503  # another learner
    assert (await server_client.get("/fail/a/1", params={"learner": "bob"})).status == 503
    assert (await server_client.get("/fail/a/1", headers=ada)).status == 200


@pytest.mark.parametrize("how", ["post", "delete"])
async def test_fail_reset(server_client, how):
    await server_client.get("/fail/k/1")
    assert (await server_client.get("/fail/k/1")).status == 200
    if how == "post":
        resp = await server_client.post("/fail/k/reset")
    else:
        resp = await server_client.delete("/fail/k")
    assert resp.status == 200
    assert await resp.json() == {"key": "k", "reset": True}
    assert (await server_client.get("/fail/k/1")).status == 503
    assert (await (await server_client.get("/fail/k")).json())["calls"] == 1


async def test_fail_reset_of_unknown_key_is_fine(server_client):
    assert (await server_client.delete("/fail/never-used")).status == 200


async def test_fail_log_shows_attempts_methods_and_timing(server_client):
    await server_client.get("/fail/k/2")
    await asyncio.sleep(0.05)
    await server_client.post("/fail/k/2")
    await server_client.put("/fail/k/2")
    data = await (await server_client.get("/fail/k")).json()
    assert data["key"] == "k"
    assert data["calls"] == 3
    log = data["log"]
    assert [(e["attempt"], e["method"], e["status"]) for e in log] == [
        (1, "GET", 503), (2, "POST", 503), (3, "PUT", 200)
    ]  # fmt: skip
    assert log[0]["t"] == 0
    assert log[1]["t"] >= 0.05 - 0.005
    assert log[2]["t"] >= log[1]["t"]


async def test_fail_log_of_unknown_key_is_empty(server_client):
    data = await (await server_client.get("/fail/nothing")).json()
    assert data["calls"] == 0 and data["log"] == []


async def test_fail_log_is_bounded(server_client, monkeypatch):
    monkeypatch.setattr(faults, "MAX_LOG_ENTRIES", 3)
    for _ in range(5):
        await server_client.get("/fail/k/0")
    data = await (await server_client.get("/fail/k")).json()
    assert data["calls"] == 5
    assert [e["attempt"] for e in data["log"]] == [1, 2, 3]


async def test_fail_keys_per_learner_are_bounded(server_client):
    """Past the cap the least recently used key is forgotten (its log is empty again)."""
    for i in range(faults.MAX_KEYS_PER_LEARNER + 1):
        await server_client.get(f"/fail/key{i}/0")
    first = await (await server_client.get("/fail/key0")).json()
    last = await (await server_client.get(f"/fail/key{faults.MAX_KEYS_PER_LEARNER}")).json()
    assert first["calls"] == 0
    assert last["calls"] == 1


async def test_fail_retry_after_seconds(server_client):
    resp = await server_client.get("/fail/k/1", params={"status": 429, "retry_after": 2})
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"
    resp = await server_client.get("/fail/k/1", params={"status": 429, "retry_after": 2})
    assert resp.status == 200
    assert "Retry-After" not in resp.headers  # only the failures carry it


async def test_fail_retry_after_date(server_client):
    before = time.time()
    resp = await server_client.get("/fail/k/1", params={"retry_after": 5, "date": 1})
    assert resp.status == 503
    when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
    assert resp.headers["Retry-After"].endswith(" GMT")
    assert before + 5 <= when <= time.time() + 6  # rounded up to a whole second


@pytest.mark.parametrize(
    ("path", "params", "word"),
    [
        ("/fail/k/101", {}, "n"),
        ("/fail/k/-1", {}, "n"),
        ("/fail/k/abc", {}, "n"),
        ("/fail/k/1.5", {}, "n"),
        ("/fail/k/1", {"status": "200"}, "status"),
        ("/fail/k/1", {"status": "600"}, "status"),
        ("/fail/k/1", {"status": "x"}, "status"),
        ("/fail/k/1", {"retry_after": "-1"}, "retry_after"),
        ("/fail/k/1", {"retry_after": "3601"}, "retry_after"),
        ("/fail/k/1", {"retry_after": "1.5"}, "retry_after"),
        ("/fail/k/1", {"retry_after": "1", "date": "2"}, "date"),
        ("/fail/" + "k" * 65 + "/1", {}, "key"),
        ("/fail/k%20k/1", {}, "key"),
        ("/fail/%C3%A9/1", {}, "key"),
        ("/fail/" + "k" * 65, {}, "key"),
        ("/fail/k/reset", {}, "n"),  # GET: only POST resets
    ],
)
async def test_fail_bad_input_is_400(server_client, path, params, word):
    resp = await server_client.get(yarl.URL(path, encoded=True), params=params)
    detail = await json_error_detail(resp, 400)
    assert word in detail
    # and nothing was counted
    assert (await (await server_client.get("/fail/k")).json())["calls"] == 0


# --- /retry-after ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds(server_client, status):
    resp = await server_client.get(f"/retry-after/{status}", params={"seconds": 7})
    detail = await json_error_detail(resp, status)
    assert resp.headers["Retry-After"] == "7"
    assert "Retry-After" in detail


async def test_retry_after_defaults_to_one_second_any_method(server_client):
    resp = await server_client.post("/retry-after/503", data=b"body")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"


async def test_retry_after_as_date(server_client):
    before = time.time()
    resp = await server_client.get("/retry-after/429", params={"seconds": 3, "date": 1})
    assert resp.status == 429
    text = resp.headers["Retry-After"]
    assert not text.isdigit() and text.endswith(" GMT")
    when = email.utils.parsedate_to_datetime(text).timestamp()
    assert before + 3 <= when <= time.time() + 4


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/retry-after/500", {}),
        ("/retry-after/200", {}),
        ("/retry-after/abc", {}),
        ("/retry-after/429", {"seconds": "-1"}),
        ("/retry-after/429", {"seconds": "3601"}),
        ("/retry-after/429", {"seconds": "soon"}),
        ("/retry-after/429", {"date": "yes"}),
    ],
)
async def test_retry_after_bad_input_is_400(server_client, path, params):
    await json_error_detail(await server_client.get(path, params=params), 400)


# --- /flaky ----------------------------------------------------------------------------------


async def _flaky_statuses(client, rate: float, count: int, **params) -> list[int]:
    statuses = []
    for _ in range(count):
        resp = await client.get(f"/flaky/{rate}", params=params)
        await resp.read()
        statuses.append(resp.status)
    return statuses


async def test_flaky_seeded_sequence_is_python_random(server_client):
    """With ?seed= the calls fail exactly when random.Random(seed).random() < rate."""
    rng = random.Random(42)
    expected = [503 if rng.random() < 0.4 else 200 for _ in range(30)]
    assert await _flaky_statuses(server_client, 0.4, 30, seed=42) == expected
    assert {200, 503} <= set(expected)


async def test_flaky_same_seed_same_sequence_for_each_learner_and_after_reset(server_client):
    first = await _flaky_statuses(server_client, 0.5, 12, seed=7)
    again = await _flaky_statuses(server_client, 0.5, 12, seed=7, learner="ada")
    assert again == first
    resp = await server_client.post("/flaky/reset")
    assert await resp.json() == {"reset": True}
    assert await _flaky_statuses(server_client, 0.5, 12, seed=7) == first
    assert await _flaky_statuses(server_client, 0.5, 12, seed=8) != first


async def test_flaky_success_body_and_chosen_status(server_client):
    resp = await server_client.get("/flaky/0", params={"seed": 3})
    assert await resp.json() == {"rate": 0.0, "seed": 3, "call": 1}
    resp = await server_client.get("/flaky/1", params={"status": 500})
    detail = await json_error_detail(resp, 500)
    assert "rate 1" in detail


async def test_flaky_rate_bounds(server_client):
    assert set(await _flaky_statuses(server_client, 0, 20)) == {200}
    assert set(await _flaky_statuses(server_client, 1, 20)) == {503}


async def test_flaky_without_seed_follows_the_app_seed(aiohttp_client):
    """Unseeded draws come from the app's generator: the same app seed, the same answers."""
    runs = []
    for _ in range(2):
        client = await aiohttp_client(create_app(seed=99))
        runs.append(await _flaky_statuses(client, 0.5, 20))
    assert runs[0] == runs[1]
    assert {200, 503} <= set(runs[0])


@pytest.mark.parametrize(
    ("rate", "params"),
    [
        ("1.5", {}), ("-0.1", {}), ("nan", {}), ("inf", {}), ("abc", {}), ("50%", {}),
        ("0.5", {"seed": "-1"}), ("0.5", {"seed": "x"}), ("0.5", {"seed": str(2**32)}),
        ("0.5", {"status": "302"}),
    ],
)  # fmt: skip
async def test_flaky_bad_input_is_400(server_client, rate, params):
    resp = await server_client.get(yarl.URL(f"/flaky/{rate}", encoded=True), params=params)
    await json_error_detail(resp, 400)


# --- slow headers, slow body -----------------------------------------------------------------


async def test_slow_headers_waits_through_timing_sleep(server_client, fake_sleep):
    resp = await server_client.get("/slow/headers/2.5")
    assert resp.status == 200
    assert await resp.json() == {"waited": 2.5}
    assert fake_sleep.slept == [2.5]


async def test_slow_body_spreads_its_chunks(server_client, fake_sleep):
    resp = await server_client.get("/slow/body/3", params={"chunks": 4})
    body = await resp.text()
    assert resp.status == 200
    assert body == "chunk 1 of 4\nchunk 2 of 4\nchunk 3 of 4\nchunk 4 of 4\n"
    assert int(resp.headers["Content-Length"]) == len(body)
    assert fake_sleep.slept == [0.75] * 4


async def test_slow_body_head_sends_no_body_and_does_not_wait(server_client, fake_sleep):
    resp = await server_client.head("/slow/body/3")
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) > 0
    assert await resp.read() == b""
    assert fake_sleep.slept == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/slow/headers/10.5", {}), ("/slow/headers/-1", {}), ("/slow/headers/nan", {}),
        ("/slow/headers/x", {}), ("/slow/body/11", {}), ("/slow/body/1", {"chunks": "0"}),
        ("/slow/body/1", {"chunks": "101"}), ("/slow/body/1", {"chunks": "two"}),
    ],
)  # fmt: skip
async def test_slow_bad_input_is_400(server_client, fake_sleep, path, params):
    await json_error_detail(await server_client.get(path, params=params), 400)
    assert fake_sleep.slept == []


async def test_short_total_trips_on_slow_headers(server_client):
    """``total`` raises the builtin TimeoutError, which is not an aiohttp.ClientError."""
    timeout = aiohttp.ClientTimeout(total=0.05)
    started = time.perf_counter()
    with pytest.raises(TimeoutError) as caught:
        await server_client.get("/slow/headers/2", timeout=timeout)
    assert time.perf_counter() - started < 1.5  # long before the headers would come
    assert not isinstance(caught.value, aiohttp.ClientError)


async def test_sock_read_trips_on_slow_body_chunks_when_total_is_generous(server_client):
    timeout = aiohttp.ClientTimeout(total=10, sock_read=0.05)
    resp = await server_client.get("/slow/body/0.4", params={"chunks": 4}, timeout=timeout)
    assert resp.status == 200  # the headers came at once
    with pytest.raises(aiohttp.SocketTimeoutError) as caught:
        await resp.read()
    assert isinstance(caught.value, aiohttp.ServerTimeoutError)
    assert isinstance(caught.value, TimeoutError)


async def test_total_trips_on_a_slow_body_whose_gaps_suit_sock_read(server_client):
    """Each gap (0.1 s) is within sock_read, but the whole body (0.4 s) is not within total."""
    timeout = aiohttp.ClientTimeout(total=0.2, sock_read=0.3)
    resp = await server_client.get("/slow/body/0.4", params={"chunks": 4}, timeout=timeout)
    with pytest.raises(TimeoutError) as caught:
        await resp.read()
    assert not isinstance(caught.value, aiohttp.ServerTimeoutError)


async def test_slow_body_arrives_whole_when_timeouts_allow(server_client):
    timeout = aiohttp.ClientTimeout(total=5, sock_read=0.3)
    started = time.perf_counter()
    resp = await server_client.get("/slow/body/0.2", params={"chunks": 2}, timeout=timeout)
    assert await resp.text() == "chunk 1 of 2\nchunk 2 of 2\n"
    assert time.perf_counter() - started >= 0.19


# --- broken connections ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_reset_raises_client_os_error(server_client, server_stats, method):
    with pytest.raises(aiohttp.ClientOSError) as caught:
        await server_client.request(method, "/fault/reset", data=b"x" * 1000)
    assert caught.value.errno == errno.ECONNRESET  # a reset, not a clean close
    # the session recovers with a new connection
    assert (await server_client.get("/get")).status == 200
    statuses = [r.status for r in server_stats.snapshot().timeline if r.path == "/fault/reset"]
    assert statuses == [faults.NO_RESPONSE]


async def _read_until_broken(resp: aiohttp.ClientResponse) -> tuple[bytes, BaseException]:
    """Read the body chunk by chunk until it fails; what arrived and the exception."""
    received = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError) as caught:
        async for chunk in resp.content.iter_any():
            received.extend(chunk)
    return bytes(received), caught.value


async def test_short_body_raises_client_payload_error(server_client):
    resp = await server_client.get("/fault/short-body", params={"length": 5000, "send": 1200})
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "5000"
    received, error = await _read_until_broken(resp)
    assert len(received) == 1200
    assert "1200 of 5000" in str(error)
    assert (await server_client.get("/get")).status == 200


async def test_short_body_defaults_and_read(server_client):
    resp = await server_client.get("/fault/short-body")
    assert resp.headers["Content-Length"] == "1000"
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


@pytest.mark.parametrize("n", [0, 100, 200_000])
async def test_close_after_raises_client_payload_error(server_client, n):
    resp = await server_client.get(f"/fault/close-after/{n}")
    assert resp.status == 200
    assert "Content-Length" not in resp.headers
    assert resp.headers["Transfer-Encoding"] == "chunked"
    received, error = await _read_until_broken(resp)
    assert len(received) == n
    assert received == faults._pattern(n)
    assert "transfer length" in str(error)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/fault/short-body", {"length": "0"}),
        ("/fault/short-body", {"length": str(2**20 + 1)}),
        ("/fault/short-body", {"length": "10", "send": "10"}),
        ("/fault/short-body", {"length": "10", "send": "-1"}),
        ("/fault/short-body", {"send": "x"}),
        ("/fault/close-after/-1", {}),
        ("/fault/close-after/1048577", {}),
        ("/fault/close-after/lots", {}),
    ],
)
async def test_broken_body_bad_input_is_400(server_client, path, params):
    await json_error_detail(await server_client.get(path, params=params), 400)


async def test_broken_connections_log_nothing(server_client):
    """Every deliberately broken connection, repeated: no 500s, no errors in the logs
    (the autouse fixture checks the logs), and the server still answers afterwards."""
    for _ in range(3):
        for path in ("/fault/reset", "/fault/short-body", "/fault/close-after/10"):
            with pytest.raises(aiohttp.ClientError):
                resp = await server_client.post(path, data=b"body")
                await resp.read()
    assert (await server_client.get("/get")).status == 200


async def test_broken_connections_with_the_course_runner(caplog):
    """The same through ``start_server`` (the notebooks' server, its own thread and loop)."""
    from local_server import start_server

    with start_server() as server:
        async with aiohttp.ClientSession(server.url) as session:
            for path in ("/fault/reset", "/fault/short-body", "/fault/close-after/10"):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(path) as resp:
                        await resp.read()
            async with session.get("/get") as resp:
                assert resp.status == 200
        statuses = {r.path: r.status for r in server.stats().timeline}
    assert statuses["/fault/reset"] == faults.NO_RESPONSE
    assert statuses["/fault/short-body"] == 200


# --- bodies that lie about themselves --------------------------------------------------------


async def test_wrong_content_type_trips_resp_json(server_client):
    resp = await server_client.get("/fault/wrong-content-type")
    assert resp.content_type == "text/html"
    with pytest.raises(aiohttp.ContentTypeError):
        await resp.json()
    data = await resp.json(content_type=None)
    assert "text/html" in data["message"]


async def test_wrong_content_type_can_be_chosen(server_client):
    resp = await server_client.get("/fault/wrong-content-type", params={"type": "text/plain"})
    assert resp.content_type == "text/plain"
    with pytest.raises(aiohttp.ContentTypeError):
        await resp.json()


@pytest.mark.parametrize("bad", ["text", "text/html; charset=x", "a/b/c", "", "x" * 60 + "/y"])
async def test_wrong_content_type_bad_type_is_400(server_client, bad):
    resp = await server_client.get("/fault/wrong-content-type", params={"type": bad})
    await json_error_detail(resp, 400)


async def test_charset_mismatch_latin1_labelled_utf8(server_client):
    resp = await server_client.get("/fault/charset")
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    with pytest.raises(UnicodeDecodeError):
        await resp.json()
    assert json.loads(await resp.text(encoding="latin-1")) == faults.CHARSET_SAMPLE


async def test_charset_mismatch_utf8_labelled_latin1_is_mojibake(server_client):
    resp = await server_client.get(
        "/fault/charset", params={"encoding": "utf-8", "label": "latin-1"}
    )
    data = await resp.json()
    assert data["city"] == "ZÃ¼rich"
    assert json.loads(await resp.text(encoding="utf-8")) == faults.CHARSET_SAMPLE


async def test_charset_without_label(server_client):
    resp = await server_client.get("/fault/charset", params={"label": "none", "encoding": "utf-8"})
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == faults.CHARSET_SAMPLE


@pytest.mark.parametrize(
    "params", [{"encoding": "rot13"}, {"encoding": "none"}, {"label": "zlib"}, {"label": "x"}]
)
async def test_charset_bad_input_is_400(server_client, params):
    await json_error_detail(await server_client.get("/fault/charset", params=params), 400)


# --- the endpoint index ----------------------------------------------------------------------

FAULT_PATHS = {
    "/fail/{key}/{n}": "*", "/fail/{key}/reset": "POST", "/fail/{key}": "DELETE,GET",
    "/retry-after/{status}": "*", "/flaky/reset": "POST", "/flaky/{rate}": "*",
    "/slow/headers/{seconds}": "GET", "/slow/body/{seconds}": "GET", "/fault/reset": "*",
    "/fault/short-body": "*", "/fault/close-after/{n}": "*",
    "/fault/wrong-content-type": "GET", "/fault/charset": "GET",
}  # fmt: skip


async def test_index_lists_fault_endpoints(server_client):
    endpoints = {e["path"]: e for e in (await (await server_client.get("/")).json())["endpoints"]}
    for path, methods in FAULT_PATHS.items():
        assert endpoints[path]["methods"] == methods, path
        assert 20 < len(endpoints[path]["description"]) <= 80, path


# --- random input ----------------------------------------------------------------------------

FUZZ_TEMPLATES = [
    "/fail/{s}/{s}", "/fail/{s}/reset", "/fail/{s}", "/retry-after/{s}", "/flaky/{s}",
    "/flaky/reset", "/slow/headers/{s}", "/slow/body/{s}", "/fault/short-body",
    "/fault/close-after/{s}", "/fault/wrong-content-type", "/fault/charset",
]  # fmt: skip
FUZZ_SEGMENTS = [
    "0", "1", "3", "-1", "0.5", "1.0", "10", "11", "100", "101", "429", "503", "1e3", "nan",
    "inf", "abc", "k", "reset", "%2e%2e", "%00", "é", "a" * 100,
]  # fmt: skip
FUZZ_KEYS = [
    "status", "retry_after", "date", "seed", "chunks", "length", "send", "type", "encoding",
    "label", "seconds", "learner",
]  # fmt: skip
FUZZ_VALUES = [
    "0", "1", "2", "-1", "429", "503", "200", "1e9", "x", "", "text/html", "utf-8", "latin-1",
    "none", "%ff", "9" * 30,
]  # fmt: skip
ASKS_FOR_AN_ERROR = ("/fail/", "/flaky/", "/retry-after/")


async def test_fault_endpoints_under_random_input(server_client, fake_sleep):
    """Seeded random requests: quick answers (sleeps patched), no unexpected 5xx, JSON errors;
    only /fault/short-body and /fault/close-after break the body."""
    rng = random.Random(2024)
    base = f"http://{server_client.host}:{server_client.port}"
    started = time.perf_counter()
    seen: set[int | str] = set()
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(300):
            path = rng.choice(FUZZ_TEMPLATES).replace("{s}", "%s")
            segments = (quote(rng.choice(FUZZ_SEGMENTS), safe="%") for _ in range(path.count("%s")))
            path = path % tuple(segments)
            query = "&".join(
                f"{rng.choice(FUZZ_KEYS)}={rng.choice(FUZZ_VALUES)}"
                for _ in range(rng.randint(0, 3))
            )
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD"])
            url = yarl.URL(f"{base}{path}?{query}", encoded=True)
            where = f"request {i}: {method} {path}?{query}"
            try:
                async with session.request(method, url, data=b"x" * rng.randint(0, 3)) as resp:
                    body = await resp.read()
            except aiohttp.ClientPayloadError:
                assert path.startswith(("/fault/short-body", "/fault/close-after/")), where
                seen.add("broken body")
                continue
            seen.add(resp.status)
            if resp.status >= 500:
                assert path.startswith(ASKS_FOR_AN_ERROR), where
            if resp.status >= 400 and method != "HEAD":
                assert set(json.loads(body)) == {"error", "detail"}, where
    assert {200, 400, 405, 503, "broken body"} <= seen  # it reached the endpoints
    assert time.perf_counter() - started < 5
