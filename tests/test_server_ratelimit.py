"""Rate-limited endpoints: the token bucket, its 429s and headers, its log, its bounds.

Time is faked: ``ratelimit.now`` is the buckets' clock and ``timing.sleep`` every wait the
server makes (``fake_sleep``), so no test depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import assert_json_error, json_error_detail

from local_server import create_app, ratelimit
from local_server.app import endpoint_index

pytestmark = pytest.mark.usefixtures("no_errors_logged")


class FakeClock:
    """The buckets' clock, moved by hand."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit, "now", fake)
    return fake


async def _statuses(client, url: str, count: int, **kwargs) -> list[int]:
    statuses = []
    for _ in range(count):
        resp = await client.get(url, **kwargs)
        await resp.read()
        statuses.append(resp.status)
    return statuses


# --- the bucket ------------------------------------------------------------------------------


async def test_a_full_bucket_accepts_burst_requests_then_refuses(server_client, clock):
    url = "/ratelimit/k?rate=2&burst=3"
    assert await _statuses(server_client, url, 4) == [200, 200, 200, 429]
    resp = await server_client.get(url)
    detail = await json_error_detail(resp, 429)
    assert "no token left" in detail and "rate=2, burst=3" in detail
    assert resp.headers["Retry-After"] == "1"


async def test_tokens_come_back_at_the_rate(server_client, clock):
    url = "/ratelimit/k?rate=4&burst=2"
    assert await _statuses(server_client, url, 3) == [200, 200, 429]
    clock.advance(0.24)  # 0.96 of a token
    assert await _statuses(server_client, url, 1) == [429]
    clock.advance(0.02)  # 1.04 tokens
    assert await _statuses(server_client, url, 2) == [200, 429]
    clock.advance(10)  # full again, never more than burst
    assert await _statuses(server_client, url, 3) == [200, 200, 429]


async def test_an_accepted_answer_says_who_and_when(server_client, clock):
    resp = await server_client.get("/ratelimit/k?rate=10&burst=5&i=1")
    url = "/ratelimit/k?rate=10&burst=5&i=1"
    assert await resp.json() == {"key": "k", "n": 1, "t": 0.0, "url": url}
    clock.advance(0.25)
    resp = await server_client.post("/ratelimit/k", params={"i": "2"})
    assert await resp.json() == {"key": "k", "n": 2, "t": 0.25, "url": "/ratelimit/k?i=2"}


@pytest.mark.parametrize(
    ("rate", "retry_after"), [(2, "1"), (0.5, "2"), (0.2, "5"), (1000, "1")]
)
async def test_retry_after_is_the_wait_for_the_next_token_rounded_up(
    server_client, clock, rate, retry_after
):
    url = f"/ratelimit/k?rate={rate}&burst=1"
    assert await _statuses(server_client, url, 1) == [200]
    resp = await server_client.get(url)
    await assert_json_error(resp, 429)
    assert resp.headers["Retry-After"] == retry_after
    assert resp.headers["RateLimit"] == f'"bucket";r=0;t={retry_after}'


async def test_a_pause_refuses_everything_until_it_ends(server_client, clock):
    url = "/ratelimit/k?rate=10&burst=2&pause=3"
    assert await _statuses(server_client, url, 3) == [200, 200, 429]
    paused = await server_client.get(url)
    assert "pause of 3 s starts now" not in await json_error_detail(paused, 429)
    clock.advance(0.4)  # 4 tokens' worth, yet paused
    resp = await server_client.get(url)
    detail = await json_error_detail(resp, 429)
    assert "paused" in detail
    assert resp.headers["Retry-After"] == "3"  # 2.6 s left, rounded up
    clock.advance(1.7)
    resp = await server_client.get(url)
    await resp.read()
    assert resp.headers["Retry-After"] == "1"  # 0.9 s left
    clock.advance(0.9)
    assert await _statuses(server_client, url, 3) == [200, 200, 429]  # refilled to burst


async def test_the_refusal_that_starts_a_pause_says_so(server_client, clock):
    url = "/ratelimit/p?rate=1&burst=1&pause=2"
    assert await _statuses(server_client, url, 1) == [200]
    resp = await server_client.get(url)
    assert "a pause of 2 s starts now" in await json_error_detail(resp, 429)
    assert resp.headers["Retry-After"] == "2"


async def test_any_method_takes_a_token(server_client, clock):
    url = "/ratelimit/m?rate=1&burst=4"
    for method in ("GET", "POST", "PUT", "HEAD"):
        resp = await server_client.request(method, url)
        await resp.read()
        assert resp.status == 200, method
    resp = await server_client.delete(url)
    await assert_json_error(resp, 429)


# --- the draft's headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "policy"),
    [
        ("10", "3", '"bucket";q=10;w=1;course-burst=3'),
        ("0.5", "1", '"bucket";q=1;w=2;course-burst=1'),
        ("2.5", "5", '"bucket";q=5;w=2;course-burst=5'),
        ("0.1", "2", '"bucket";q=1;w=10;course-burst=2'),
        ("0.05", "2", '"bucket";q=1;w=20;course-burst=2'),
    ],
)
async def test_ratelimit_policy_names_a_whole_quota_per_whole_window(
    server_client, clock, rate, burst, policy
):
    resp = await server_client.get(f"/ratelimit/k?rate={rate}&burst={burst}")
    assert resp.status == 200
    assert resp.headers["RateLimit-Policy"] == policy


async def test_ratelimit_says_what_is_left_and_when_more_comes(server_client, clock):
    url = "/ratelimit/k?rate=2&burst=3"
    seen = []
    for _ in range(3):
        resp = await server_client.get(url)
        seen.append(resp.headers["RateLimit"])
    assert seen == ['"bucket";r=2;t=1', '"bucket";r=1;t=1', '"bucket";r=0;t=1']
    clock.advance(0.5)  # one token back, and this request takes it
    resp = await server_client.get(url)
    assert resp.headers["RateLimit"] == '"bucket";r=0;t=1'
    resp = await server_client.get("/ratelimit/slow?rate=0.25&burst=2")
    assert resp.headers["RateLimit"] == '"bucket";r=1;t=4'


# --- policies: set once, checked, reset --------------------------------------------------------


async def test_the_first_request_sets_the_policy_and_later_ones_may_omit_it(server_client, clock):
    assert await _statuses(server_client, "/ratelimit/k?rate=1&burst=2", 1) == [200]
    assert await _statuses(server_client, "/ratelimit/k", 2) == [200, 429]
    assert await _statuses(server_client, "/ratelimit/k?burst=2", 1) == [429]


async def test_a_request_naming_another_policy_is_a_conflict(server_client, clock):
    assert await _statuses(server_client, "/ratelimit/k?rate=1&burst=2", 1) == [200]
    resp = await server_client.get("/ratelimit/k?rate=2")
    detail = await json_error_detail(resp, 409)
    assert "already has the policy rate=1, burst=2" in detail and "reset" in detail
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert log["accepted"] == 1 and log["refused"] == 0  # a conflict spends nothing


async def test_the_default_policy(server_client, clock):
    statuses = await _statuses(server_client, "/ratelimit/d", ratelimit.DEFAULT_BURST + 1)
    assert statuses == [200] * ratelimit.DEFAULT_BURST + [429]
    log = await (await server_client.get("/ratelimit/d/log")).json()
    assert log["policy"] == {"rate": 5.0, "burst": 5, "pause": 0, "q": 5, "w": 1}


async def test_reset_with_a_policy_sets_the_limit_without_spending_a_token(server_client, clock):
    resp = await server_client.post("/ratelimit/k/reset", params={"rate": "3", "burst": "2"})
    body = await resp.json()
    assert body == {
        "key": "k", "reset": True,
        "policy": {"rate": 3.0, "burst": 2, "pause": 0, "q": 3, "w": 1},
    }  # fmt: skip
    clock.advance(5)
    assert await _statuses(server_client, "/ratelimit/k", 3) == [200, 200, 429]
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert [entry["t"] for entry in log["log"]] == [0.0, 0.0, 0.0]  # time runs from request 1


async def test_reset_without_a_policy_forgets_the_key(server_client, clock):
    assert await _statuses(server_client, "/ratelimit/k?rate=1&burst=1", 2) == [200, 429]
    resp = await server_client.post("/ratelimit/k/reset")
    assert await resp.json() == {"key": "k", "reset": True, "policy": None}
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert log["policy"] is None and log["log"] == []
    assert await _statuses(server_client, "/ratelimit/k?rate=2&burst=1", 2) == [200, 429]


# --- the log ---------------------------------------------------------------------------------


async def test_the_log_says_when_each_request_came_and_how_it_ended(server_client, clock):
    url = "/ratelimit/k?rate=1&burst=2"
    await _statuses(server_client, url, 3)
    clock.advance(1.5)
    await _statuses(server_client, url, 2)
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert log["accepted"] == 3 and log["refused"] == 2 and log["omitted"] == 0
    assert log["log"] == [
        {"t": 0.0, "status": 200, "in_flight": 0},
        {"t": 0.0, "status": 200, "in_flight": 0},
        {"t": 0.0, "status": 429, "in_flight": 0},
        {"t": 1.5, "status": 200, "in_flight": 0},
        {"t": 1.5, "status": 429, "in_flight": 0},
    ]
    assert log["log_limit"] == ratelimit.MAX_LOG_ENTRIES


async def test_an_unknown_key_has_an_empty_log(server_client):
    resp = await server_client.get("/ratelimit/never/log")
    assert await resp.json() == {
        "key": "never", "policy": None, "accepted": 0, "refused": 0, "log": [],
        "log_limit": ratelimit.MAX_LOG_ENTRIES, "omitted": 0,
    }  # fmt: skip


async def test_the_log_is_bounded(server_client, clock, monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_LOG_ENTRIES", 4)
    await _statuses(server_client, "/ratelimit/k?rate=1&burst=3", 7)
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert len(log["log"]) == 4 and log["omitted"] == 3
    assert log["accepted"] == 3 and log["refused"] == 4


class HeldSleep:
    """A ``timing.sleep`` that holds every delayed answer until released."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        await self.release.wait()


async def test_delay_holds_accepted_answers_and_the_log_shows_them_in_flight(
    server_client, clock, monkeypatch
):
    from local_server import timing

    held = HeldSleep()
    monkeypatch.setattr(timing, "sleep", held)
    url = "/ratelimit/k?rate=10&burst=3&delay=0.25"
    first = [asyncio.ensure_future(server_client.get(url)) for _ in range(3)]
    while len(held.slept) < 3:
        await asyncio.sleep(0.001)
    refused = await server_client.get(url)  # no token: answered at once, never delayed
    await assert_json_error(refused, 429)
    held.release.set()
    responses = await asyncio.gather(*first)
    assert sorted(r.status for r in responses) == [200, 200, 200]
    for resp in responses:
        resp.release()
    assert held.slept == [0.25, 0.25, 0.25]
    log = await (await server_client.get("/ratelimit/k/log")).json()
    assert [entry["in_flight"] for entry in log["log"]] == [0, 1, 2, 3]
    assert [entry["status"] for entry in log["log"]] == [200, 200, 200, 429]


async def test_delay_goes_through_timing_sleep(server_client, clock, fake_sleep):
    resp = await server_client.get("/ratelimit/k?delay=2.5")
    assert resp.status == 200
    assert fake_sleep.slept == [2.5]


# --- learners and bounds ---------------------------------------------------------------------


async def test_each_learner_has_their_own_buckets(server_client, clock):
    url = "/ratelimit/k?rate=1&burst=1"
    assert await _statuses(server_client, url, 2, headers={"X-Learner": "ada"}) == [200, 429]
    assert await _statuses(server_client, url, 1, headers={"X-Learner": "bob"}) == [200]
    assert await _statuses(server_client, url + "&learner=bob", 1) == [429]
    assert await _statuses(server_client, url, 1) == [200]  # the shared default namespace
    log = await (await server_client.get("/ratelimit/k/log", headers={"X-Learner": "ada"})).json()
    assert log["accepted"] == 1 and log["refused"] == 1


async def test_a_learner_keeps_a_bounded_number_of_keys(server_client, clock):
    for n in range(ratelimit.MAX_KEYS_PER_LEARNER + 1):
        await _statuses(server_client, f"/ratelimit/key{n}?rate=1&burst=1", 1)
    first = await (await server_client.get("/ratelimit/key0/log")).json()
    newest = f"/ratelimit/key{ratelimit.MAX_KEYS_PER_LEARNER}/log"
    last = await (await server_client.get(newest)).json()
    assert first["policy"] is None  # the least recently used key was forgotten
    assert last["accepted"] == 1


# --- bad input: JSON 400s ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("rate=fast", "rate must be a number"),
        ("rate=0", "rate must be a number between 0.01 and 1000"),
        ("rate=1001", "between 0.01 and 1000"),
        ("rate=nan", "rate must be a number between"),
        ("rate=0.333", "whole number of requests per 1 to 60 seconds"),
        ("rate=0.01", "whole number of requests per 1 to 60 seconds"),
        ("burst=0", "burst must be between 1 and 1000"),
        ("burst=2.5", "burst must be a whole number"),
        ("pause=61", "pause must be between 0 and 60"),
        ("pause=-1", "pause must be between 0 and 60"),
        ("delay=11", "delay must be a number between 0 and 10"),
        ("delay=inf", "delay must be a number between 0 and 10"),
    ],
)
async def test_bad_parameters_are_a_json_400(server_client, query, words):
    resp = await server_client.get(f"/ratelimit/k?{query}")
    assert words in await json_error_detail(resp, 400)
    resp = await server_client.get("/ratelimit/k/log")
    assert (await resp.json())["policy"] is None  # nothing was made


async def test_a_bad_policy_in_a_reset_is_a_json_400(server_client):
    resp = await server_client.post("/ratelimit/k/reset?burst=1001")
    assert "burst must be between 1 and 1000" in await json_error_detail(resp, 400)


@pytest.mark.parametrize("key", ["a" * 65, "a%20b", "%C3%A9", "a;b"])
async def test_a_bad_key_is_a_json_400(server_client, key):
    for path in (f"/ratelimit/{key}", f"/ratelimit/{key}/log"):
        resp = await server_client.get(path)
        assert "a key is 1 to 64" in await json_error_detail(resp, 400)


async def test_the_log_and_reset_take_only_their_own_methods(server_client):
    resp = await server_client.post("/ratelimit/k/log")
    await assert_json_error(resp, 405)
    resp = await server_client.get("/ratelimit/k/reset")
    await assert_json_error(resp, 405)


def test_the_index_lists_the_endpoints():
    paths = {entry["path"]: entry for entry in endpoint_index(create_app())}
    assert paths["/ratelimit/{key}"]["methods"] == "*"
    assert "429 + Retry-After" in paths["/ratelimit/{key}"]["description"]
    assert paths["/ratelimit/{key}/log"]["methods"] == "GET"
    assert paths["/ratelimit/{key}/reset"]["methods"] == "POST"


# --- in real time: the bucket's rate, as a client sees it ---------------------------------------


async def test_in_real_time_a_bucket_refills_at_its_rate(server_client):
    """Without a fake clock: 2/s with a burst of 1 refuses at once, accepts 0.55 s later."""
    url = "/ratelimit/real?rate=2&burst=1"
    assert await _statuses(server_client, url, 2) == [200, 429]
    await asyncio.sleep(0.55)
    assert await _statuses(server_client, url, 1) == [200]
