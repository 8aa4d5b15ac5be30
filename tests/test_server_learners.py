"""Learner namespaces: a shared workshop server keeps each learner's counters apart."""

from __future__ import annotations

import pytest

from local_server import learners
from local_server.learners import PerLearner


async def _stats(client, **kwargs) -> dict:
    response = await client.get("/stats", **kwargs)
    assert response.status == 200
    return await response.json()


async def test_each_learner_sees_only_their_own_requests(server_client):
    for _ in range(3):
        await server_client.get("/get", headers={"X-Learner": "ada"})
    await server_client.get("/get?learner=grace")
    await server_client.get("/get")

    ada = await _stats(server_client, headers={"X-Learner": "ada"})
    grace = await _stats(server_client, params={"learner": "grace"})
    everyone = await _stats(server_client)
    assert (ada["requests"], grace["requests"], everyone["requests"]) == (3, 1, 5)
    assert ada["by_path"] == {"/get": 3}


async def test_a_learner_reset_leaves_the_others_alone(server_client):
    await server_client.get("/get", headers={"X-Learner": "ada"})
    await server_client.get("/get", headers={"X-Learner": "grace"})
    await server_client.post("/stats/reset", headers={"X-Learner": "ada"})

    assert (await _stats(server_client, headers={"X-Learner": "ada"}))["requests"] == 0
    assert (await _stats(server_client, headers={"X-Learner": "grace"}))["requests"] == 1
    assert (await _stats(server_client))["requests"] == 2


async def test_a_learner_counts_connections_of_their_own(server_client):
    await server_client.get("/get", headers={"X-Learner": "ada"})
    await server_client.get("/get", headers={"X-Learner": "ada"})
    ada = await _stats(server_client, headers={"X-Learner": "ada"})
    assert ada["connections_opened"] == 1
    assert ada["requests_per_connection"] == {"1": 2}


@pytest.mark.parametrize("name", ["", "a" * 33, "has space", "semi;colon", "../etc", "é"])
async def test_a_malformed_learner_name_is_a_400(server_client, name):
    response = await server_client.get("/get", params={"learner": name} if name else None,
                                       headers={"X-Learner": name} if name else None)
    if not name:
        assert response.status == 200  # no learner at all is the shared namespace
        return
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "Bad Request"
    assert "learner name" in body["detail"]


@pytest.mark.parametrize("name", ["ada", "A-1", "x.y_z", "9" * 32])
async def test_valid_learner_names(server_client, name):
    response = await server_client.get("/get", headers={"X-Learner": name})
    assert response.status == 200


def test_per_learner_state_is_bounded_and_least_recently_used_goes_first():
    store = PerLearner(list, limit=2)
    store.get("ada").append(1)
    store.get("grace").append(2)
    store.get("ada")  # ada is now the most recently used
    store.get("linus")
    assert "ada" in store and "linus" in store and "grace" not in store
    assert store.get("ada") == [1]


def test_the_default_cap_is_a_classroom():
    assert 30 <= learners.MAX_LEARNERS <= 10_000


async def test_index_is_json_for_clients_and_html_for_browsers(server_client):
    as_json = await (await server_client.get("/")).json()
    paths = {entry["path"] for entry in as_json["endpoints"]}
    assert {"/", "/get", "/stats", "/delay/{seconds}"} <= paths
    assert all(entry["description"] for entry in as_json["endpoints"])

    browser = await server_client.get(
        "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert browser.content_type == "text/html"
    page = await browser.text()
    assert "<code>/delay/{seconds}</code>" in page and "X-Learner" in page
