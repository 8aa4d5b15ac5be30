"""A small keep-alive HTTP load generator, used by ``make bench`` when wrk is not installed.

``python -m coursetools.loadgen URL CONNECTIONS SECONDS`` prints ``requests/s: N``.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp


async def hammer(url: str, connections: int, seconds: float) -> float:
    """Keep ``connections`` requests in flight for ``seconds``; return completed requests/s."""
    done = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(url) as response:
                    await response.read()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - started)


if __name__ == "__main__":
    url, connections, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(f"requests/s: {asyncio.run(hammer(url, connections, seconds)):.0f}")
