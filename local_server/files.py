"""Deterministic downloadable files (Content-Length, ETag, Range) and an upload endpoint that
reports sizes and SHA-256.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
