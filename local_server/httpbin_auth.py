"""httpbin-compatible cookies and authentication: /cookies, /basic-auth, /bearer, /response-
headers, /user-agent, /ip.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
