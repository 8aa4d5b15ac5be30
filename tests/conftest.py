"""Shared fixtures. Server fixtures only here; other test files add their own."""

from __future__ import annotations

import json
import logging
import socket
from http import HTTPStatus

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from local_server import ServerStats, create_app, timing

SEED = 1234


@pytest.fixture
def server_stats() -> ServerStats:
    """The stats object the ``server_client`` app records into."""
    return ServerStats()


@pytest.fixture
async def server_client(aiohttp_client, server_stats: ServerStats) -> TestClient:
    """A test client for ``create_app(seed=SEED)``, served on 127.0.0.1 by pytest-aiohttp."""
    return await aiohttp_client(create_app(stats=server_stats, seed=SEED))


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


async def assert_json_error(resp: aiohttp.ClientResponse, status: int) -> dict[str, str]:
    """The response is ``status`` with the server's JSON error: exactly ``error`` and ``detail``."""
    body = await resp.text()
    assert resp.status == status, body
    assert resp.content_type == "application/json"
    data = json.loads(body)
    assert set(data) == {"error", "detail"}
    assert data["error"] == HTTPStatus(status).phrase
    assert isinstance(data["detail"], str) and data["detail"]
    return data


async def json_error_detail(resp: aiohttp.ClientResponse, status: int) -> str:
    """``assert_json_error``, returning just the detail sentence."""
    return (await assert_json_error(resp, status))["detail"]


class FakeSleep:
    """Stands in for ``timing.sleep``: returns at once and records what was asked."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def fake_sleep(monkeypatch) -> FakeSleep:
    """Every deliberate wait in the server returns at once; ``.slept`` says what was asked."""
    fake = FakeSleep()
    monkeypatch.setattr(timing, "sleep", fake)
    return fake


LOGGERS_THAT_MUST_STAY_QUIET = ("aiohttp", "local_server", "asyncio")


@pytest.fixture
def no_errors_logged(caplog):
    """The test must not make the server log an error (a traceback, a destroyed task)."""
    caplog.set_level(logging.INFO)
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    errors = [
        r for r in records
        if r.levelno >= logging.ERROR and r.name.startswith(LOGGERS_THAT_MUST_STAY_QUIET)
    ]  # fmt: skip
    assert not errors, [r.getMessage() for r in errors]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (``item.rep_call``), for fixtures to read."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
