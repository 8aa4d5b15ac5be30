"""App-wide state shared by several endpoint modules."""

from __future__ import annotations

import random

from aiohttp import web

# The server's random choices (weighted /status, seeded failure rates): seeded by
# ``create_app(seed=...)`` or ``python -m local_server --seed N`` so a run can be repeated.
RANDOM = web.AppKey("random", random.Random)
