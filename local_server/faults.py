"""Fault injection the lessons need and httpbin lacks: fail N times then succeed, Retry-After,
seeded failure rates, slow headers vs slow body, resets, short bodies, wrong content types.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
