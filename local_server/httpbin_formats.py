"""httpbin-compatible payloads and streams: /bytes, /stream, /stream-bytes, /range, /drip, /json,
/html, /xml, /encoding/utf8, /gzip, /deflate, /uuid, /base64, /redirect-to.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
