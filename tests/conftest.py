"""Shared fixtures. Server fixtures only here; other test files add their own."""

from __future__ import annotations

import socket

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


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
