"""Every deliberate wait in the server goes through ``sleep`` here, so tests can speed it up."""

from __future__ import annotations

import asyncio


async def sleep(seconds: float) -> None:
    """Wait without blocking the loop (``asyncio.sleep``); tests replace this one function."""
    await asyncio.sleep(seconds)
