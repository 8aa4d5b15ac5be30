"""httpbin-compatible payloads and streams: /bytes, /stream, /stream-bytes, /range, /drip, /json,
/html, /xml, /encoding/utf8, /gzip, /deflate, /uuid, /base64, /redirect-to.

Every size, count and wait is capped (the constants below, also named in each docstring); past
a cap the answer is a JSON 400 rather than a silently shorter body. Waits go through
``timing.sleep``. /brotli is not offered: no Brotli encoder is installed.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import random
import re
import uuid
import zlib
from collections.abc import Iterable

from aiohttp import web
from yarl import URL

from . import timing
from .errors import bad_request
from .httpbin import echo, headers_to_json, origin_of, request_url
from .params import path_int, query_float, query_int
from .state import RANDOM

routes = web.RouteTableDef()

MAX_BYTES = 100 * 1024  # /bytes, /stream-bytes, /range
DEFAULT_CHUNK_SIZE = 10 * 1024
MAX_STREAM_LINES = 100
MAX_WAIT_SECONDS = 10.0  # /drip duration and delay, /range duration
MAX_DRIP_BYTES = 10 * 1024 * 1024
MAX_CHUNKS = 1024  # /stream-bytes and /range: a smaller chunk_size would hog the event loop
MAX_DRIP_WRITES = 1000  # a big drip is sent in at most this many evenly sized pieces
MAX_REDIRECTS = 20
SEED_RANGE = (-(2**63), 2**63 - 1)
# Status codes /drip cannot use: they must not carry a body.
BODYLESS_STATUSES = frozenset({204, 205, 304})
# Status codes /redirect-to accepts (304 and 306 are not redirects).
REDIRECT_STATUSES = (300, 301, 302, 303, 305, 307, 308)
OCTET_STREAM = "application/octet-stream"
_JSON = "application/json"


# --- helpers -----------------------------------------------------------------------------------


def _random(request: web.Request) -> random.Random:
    """A generator seeded by ``?seed=`` if given, else the app's seeded one."""
    if "seed" not in request.query:
        return request.app[RANDOM]
    return random.Random(query_int(request, "seed", 0, *SEED_RANGE))


def _chunk_size(request: web.Request, length: int) -> int:
    """``?chunk_size=`` (1 to 102400, default 10240), refused if it makes over 1024 chunks."""
    size = query_int(request, "chunk_size", DEFAULT_CHUNK_SIZE, 1, MAX_BYTES)
    if -(-length // size) > MAX_CHUNKS:
        bad_request(
            f"{length} bytes in chunks of {size} would be over {MAX_CHUNKS} chunks: "
            f"use a chunk_size of at least {-(-length // MAX_CHUNKS)}"
        )
    return size


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    chunks: Iterable[bytes],
    seconds_per_byte: float = 0.0,
) -> web.StreamResponse:
    """Send the headers, then each chunk (pausing after it); HEAD gets the headers only.

    A client that leaves mid-stream ends the handler quietly: it is not a server error.
    """
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    try:
        for chunk in chunks:
            await response.write(chunk)
            if seconds_per_byte > 0:
                await timing.sleep(seconds_per_byte * len(chunk))
        await response.write_eof()
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError: the client left
        pass
    return response


# --- random bytes and streams ------------------------------------------------------------------


@routes.get("/bytes/{n}")
async def random_bytes(request: web.Request) -> web.Response:
    """n random bytes (n at most 102400); ?seed= makes them repeatable."""
    n = path_int(request, "n", 0, MAX_BYTES)
    return web.Response(body=_random(request).randbytes(n), content_type=OCTET_STREAM)


@routes.get("/stream/{n}")
async def stream_lines(request: web.Request) -> web.StreamResponse:
    """n lines of JSON (n at most 100), each the /get echo plus "id", sent chunked."""
    n = path_int(request, "n", 0, MAX_STREAM_LINES)
    line = await echo(request, with_body=False, with_method=False)
    lines = (json.dumps({**line, "id": i}).encode() + b"\n" for i in range(n))
    response = web.StreamResponse(headers={"Content-Type": _JSON})
    return await _stream(request, response, lines)


@routes.get("/stream-bytes/{n}")
async def stream_bytes(request: web.Request) -> web.StreamResponse:
    """n random bytes (<=102400) sent chunked, ?chunk_size= (<=1024 chunks); ?seed=."""
    n = path_int(request, "n", 0, MAX_BYTES)
    chunk_size = _chunk_size(request, n)
    data = _random(request).randbytes(n)
    response = web.StreamResponse(headers={"Content-Type": OCTET_STREAM})
    return await _stream(request, response, _pieces(data, chunk_size))


# --- /range ------------------------------------------------------------------------------------

# At most 20 digits: a longer number is ignored like any Range this server does not understand.
_RANGE = re.compile(r"bytes=([0-9]{0,20})-([0-9]{0,20})")


def _abc(start: int, end: int) -> bytes:
    """Bytes ``start..end-1`` of the endless a-z sequence that /range serves."""
    return bytes(ord("a") + i % 26 for i in range(start, end))


def _byte_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """The single byte range asked for, as (first, last) inclusive, or None for everything.

    A Range header this server does not understand (another unit, several ranges, garbage) or
    an If-Range that does not match is ignored, as RFC 9110 allows; an unsatisfiable one is 416.
    """
    header = request.headers.get("Range")
    if header is None or request.headers.get("If-Range", etag) != etag:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if not first_text:  # bytes=-k: the last k bytes
        first, last = max(0, size - int(last_text)), size - 1
        satisfiable = int(last_text) > 0
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        satisfiable = first < size and (not last_text or int(last_text) >= first)
    if not satisfiable:
        raise web.HTTPRequestRangeNotSatisfiable(
            text=f"the range {header[:60]!r} is outside the {size} bytes",
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes", "ETag": etag},
        )
    return first, last


@routes.get("/range/{n}")
async def byte_range(request: web.Request) -> web.StreamResponse:
    """n bytes a-z (<=102400), Range → 206/416; ?duration= (<=10 s), ?chunk_size=."""
    n = path_int(request, "n", 1, MAX_BYTES)
    duration = query_float(request, "duration", 0.0, 0.0, MAX_WAIT_SECONDS)
    etag = f'"range{n}"'
    wanted = _byte_range(request, n, etag)
    first, last = wanted if wanted is not None else (0, n - 1)
    chunk_size = _chunk_size(request, last + 1 - first)
    response = web.StreamResponse(
        status=200 if wanted is None else 206,
        headers={"Content-Type": OCTET_STREAM, "Accept-Ranges": "bytes", "ETag": etag},
    )
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{n}"
    response.content_length = last + 1 - first
    chunks = (_abc(i, min(i + chunk_size, last + 1)) for i in range(first, last + 1, chunk_size))
    return await _stream(request, response, chunks, duration / n)


# --- /drip -------------------------------------------------------------------------------------


def _drip_status(request: web.Request) -> int:
    code = query_int(request, "code", 200, 200, 599)
    if code in BODYLESS_STATUSES:
        bad_request(f"code {code} cannot carry the bytes /drip sends; choose another")
    return code


def _even_pieces(total: int, count: int) -> list[int]:
    """``total`` split into ``count`` sizes that differ by at most one."""
    size, extra = divmod(total, count)
    return [size + 1 if i < extra else size for i in range(count)]


@routes.get("/drip")
async def drip(request: web.Request) -> web.StreamResponse:
    """numbytes '*' (<=10 MiB) over ?duration= after ?delay= (<=10 s each); ?code=."""
    duration = query_float(request, "duration", 2.0, 0.0, MAX_WAIT_SECONDS)
    numbytes = query_int(request, "numbytes", 10, 1, MAX_DRIP_BYTES)
    code = _drip_status(request)
    delay = query_float(request, "delay", 0.0, 0.0, MAX_WAIT_SECONDS)
    if delay > 0:
        await timing.sleep(delay)
    response = web.StreamResponse(status=code, headers={"Content-Type": OCTET_STREAM})
    response.content_length = numbytes
    sizes = _even_pieces(numbytes, min(numbytes, MAX_DRIP_WRITES))
    return await _stream(request, response, (b"*" * s for s in sizes), duration / numbytes)


# --- fixed documents ---------------------------------------------------------------------------

SLIDESHOW = {
    "slideshow": {
        "author": "Yours Truly",
        "date": "date of publication",
        "slides": [
            {"title": "Wake up to WonderWidgets!", "type": "all"},
            {
                "items": [
                    "Why <em>WonderWidgets</em> are great",
                    "Who <em>buys</em> WonderWidgets",
                ],
                "title": "Overview",
                "type": "all",
            },
        ],
        "title": "Sample Slide Show",
    }
}

SLIDESHOW_XML = """<?xml version='1.0' encoding='us-ascii'?>

<!--  A SAMPLE set of slides  -->

<slideshow
    title="Sample Slide Show"
    date="Date of publication"
    author="Yours Truly"
    >

    <!-- TITLE SLIDE -->
    <slide type="all">
      <title>Wake up to WonderWidgets!</title>
    </slide>

    <!-- OVERVIEW -->
    <slide type="all">
        <title>Overview</title>
        <item>Why <em>WonderWidgets</em> are great</item>
        <item/>
        <item>Who <em>buys</em> WonderWidgets</item>
    </slide>

</slideshow>
"""

# Herman Melville, Moby-Dick, chapter 112 (public domain): httpbin's page, shortened.
MOBY_HTML = """<!DOCTYPE html>
<html lang="en">
  <head>
    <title>Herman Melville - Moby-Dick</title>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Availing himself of the mild, summer-cool weather that now reigned in these latitudes,
          and in preparation for the peculiarly active pursuits shortly to be anticipated, Perth,
          the begrimed, blistered old blacksmith, had not removed his portable forge to the hold
          again, after concluding his contributory work for Ahab's leg, but still retained it on
          deck, fast lashed to ringbolts by the foremast; being now almost incessantly invoked by
          the headsmen, and harpooneers, and bowsmen to do some little job for them; altering, or
          repairing, or new shaping their various weapons and boat furniture.
        </p>
        <p>
          Often he would be surrounded by an eager circle, all waiting to be served; holding
          boat-spades, pike-heads, harpoons, and lances, and jealously watching his every sooty
          movement, as he toiled.
        </p>
      </div>
  </body>
</html>
"""

UTF8_DEMO_HTML = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Unicode Demo</title>
  </head>
  <body>
    <h1>Unicode Demo: one page, many scripts, all UTF-8</h1>
    <ul>
      <li>English: The quick brown fox jumps over the lazy dog.</li>
      <li>French: Voix ambiguë d'un cœur qui, au zéphyr, préfère les jattes de kiwis.</li>
      <li>German: Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.</li>
      <li>Polish: Pchnąć w tę łódź jeża lub ośm skrzyń fig.</li>
      <li>Greek: Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο.</li>
      <li>Russian: Съешь же ещё этих мягких французских булок, да выпей чаю.</li>
      <li>Hebrew: דג סקרן שט בים מאוכזב ולפתע מצא חברה.</li>
      <li>Arabic: نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر.</li>
      <li>Hindi: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले।</li>
      <li>Thai: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า</li>
      <li>Georgian: გთხოვთ ახლავე გაიაროთ რეგისტრაცია.</li>
      <li>Armenian: Բարեւ աշխարհ</li>
      <li>Chinese: 我能吞下玻璃而不伤身体。</li>
      <li>Japanese: いろはにほへと ちりぬるを わかよたれそ つねならむ</li>
      <li>Korean: 다람쥐 헌 쳇바퀴에 타고파</li>
      <li>Mathematics: ∮ E⋅da = Q,  n → ∞, ∑ f(i) = ∏ g(i), ∀x∈ℝ: ⌈x⌉ = −⌊−x⌋</li>
      <li>Symbols and emoji: € £ ¥ © ® ™ ← ↑ → ↓ ☃ ♥ 🐍 🎉 👩‍💻</li>
      <li>Runes: ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ</li>
    </ul>
  </body>
</html>
"""


@routes.get("/json")
async def json_document(request: web.Request) -> web.Response:
    """httpbin's sample JSON document (a slideshow)."""
    return web.json_response(SLIDESHOW)


@routes.get("/html")
async def html_document(request: web.Request) -> web.Response:
    """A short HTML page (an excerpt of Moby-Dick), as text/html."""
    return web.Response(text=MOBY_HTML, content_type="text/html")


@routes.get("/xml")
async def xml_document(request: web.Request) -> web.Response:
    """httpbin's sample XML document (a slideshow), as application/xml."""
    return web.Response(text=SLIDESHOW_XML, content_type="application/xml")


@routes.get("/encoding/utf8")
async def utf8_document(request: web.Request) -> web.Response:
    """An HTML page in many scripts, as text/html; charset=utf-8."""
    return web.Response(text=UTF8_DEMO_HTML, content_type="text/html", charset="utf-8")


# --- compressed bodies -------------------------------------------------------------------------


def _echo_json(request: web.Request, flag: str) -> bytes:
    """httpbin's /gzip and /deflate document: origin, headers, method and the flag."""
    document = {
        "origin": origin_of(request),
        "headers": headers_to_json(request),
        "method": request.method,
        flag: True,
    }
    return json.dumps(document, indent=2).encode() + b"\n"


@routes.get("/gzip")
async def gzipped(request: web.Request) -> web.Response:
    """The request's origin, headers and method as JSON, gzip-compressed (always)."""
    body = gzip.compress(_echo_json(request, "gzipped"), mtime=0)
    return web.Response(body=body, headers={"Content-Encoding": "gzip"}, content_type=_JSON)


@routes.get("/deflate")
async def deflated(request: web.Request) -> web.Response:
    """The request's origin, headers and method as JSON, deflate-compressed (always)."""
    body = zlib.compress(_echo_json(request, "deflated"))  # zlib framing: HTTP's "deflate"
    return web.Response(body=body, headers={"Content-Encoding": "deflate"}, content_type=_JSON)


# --- small things ------------------------------------------------------------------------------


@routes.get("/uuid")
async def new_uuid(request: web.Request) -> web.Response:
    """A fresh random UUID (version 4)."""
    return web.json_response({"uuid": str(uuid.uuid4())})


@routes.get("/base64/{value}")
async def base64_decode(request: web.Request) -> web.Response:
    """The URL-safe base64 value decoded, as UTF-8 text/html (padding optional)."""
    value = request.match_info["value"]
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):  # bad base64, non-ASCII input, or not UTF-8 inside
        bad_request(f"{value[:60]!r} is not URL-safe base64 of UTF-8 text; try SFRUUEJJTg")
    # The text is the caller's: the browser must not run it on this server's origin.
    headers = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
    return web.Response(text=text, content_type="text/html", headers=headers)


# --- redirects ---------------------------------------------------------------------------------


def _safe_redirect_target(request: web.Request, url: str) -> str:
    """``url`` if it stays on this server: a path ('/...') or an http(s) URL to this host:port.

    This server must never be an open redirector on a classroom network.
    """
    if not url.isprintable() or "\\" in url:
        bad_request("url must not contain control characters or backslashes")
    try:
        target = URL(url)
    except (ValueError, TypeError) as exc:
        bad_request(f"url is not a valid URL: {exc}")
    if not target.is_absolute():
        if not url.startswith("/") or url.startswith("//"):
            bad_request("url must be a path starting with '/' or an absolute URL to this server")
        return str(target)
    here = request_url(request)
    if target.scheme not in ("http", "https"):
        bad_request(f"url must be http or https, got {target.scheme!r}")
    if (target.host or "").lower() != (here.host or "").lower() or target.port != here.port:
        bad_request(f"url must point to this server ({here.host}:{here.port}), not elsewhere")
    return str(target)


@routes.get("/redirect-to")
@routes.post("/redirect-to")
@routes.put("/redirect-to")
@routes.patch("/redirect-to")
@routes.delete("/redirect-to")
async def redirect_to(request: web.Request) -> web.Response:
    """Redirects to ?url= (a path or this server only); ?status_code= (default 302)."""
    url = request.query.get("url")
    if url is None:
        bad_request("give the target as ?url=/get (a path, or an absolute URL to this server)")
    location = _safe_redirect_target(request, url)
    code = query_int(request, "status_code", 302, 300, 308)
    if code not in REDIRECT_STATUSES:
        bad_request(f"status_code must be one of {', '.join(map(str, REDIRECT_STATUSES))}")
    return web.Response(status=code, headers={"Location": location})


@routes.get("/relative-redirect/{n}")
async def relative_redirect(request: web.Request) -> web.Response:
    """Redirects n times (at most 20) with relative Locations, then lands on /get."""
    n = path_int(request, "n", 1, MAX_REDIRECTS)
    target = "/get" if n == 1 else f"/relative-redirect/{n - 1}"
    return web.Response(status=302, headers={"Location": target})


@routes.get("/absolute-redirect/{n}")
async def absolute_redirect(request: web.Request) -> web.Response:
    """Redirects n times (at most 20) with absolute Locations, then lands on /get."""
    n = path_int(request, "n", 1, MAX_REDIRECTS)
    path = "/get" if n == 1 else f"/absolute-redirect/{n - 1}"
    return web.Response(status=302, headers={"Location": str(request_url(request).with_path(path))})
