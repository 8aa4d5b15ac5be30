"""WebSocket endpoints: echo, broadcast chat, server push, server-initiated close, and a peer that
stops answering pings.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
