"""Shared fixtures. Server fixtures only here; other test files add their own."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from local_server import ServerStats, create_app

SEED = 1234


@pytest.fixture
def server_stats() -> ServerStats:
    """The stats object the ``server_client`` app records into."""
    return ServerStats()


@pytest.fixture
async def server_client(aiohttp_client, server_stats: ServerStats) -> TestClient:
    """A test client for ``create_app(seed=SEED)``, served on 127.0.0.1 by pytest-aiohttp."""
    return await aiohttp_client(create_app(stats=server_stats, seed=SEED))
