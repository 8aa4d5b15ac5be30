"""Checks for exercise 04, request methods: ``from local_server.checks import request_methods``.

Each task gives the learner a session and a URL on the echo endpoint (``/anything/...``) and
expects the echo back (``await response.json()``). A check reads two views of the request: the
server's own timeline (method and path, which the learner cannot fake) and the echo (query,
headers and body as the server parsed them), then names the first thing that differs from the
specification: the method, the query's encoding, the body's encoding, a header.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import warnings
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp

from ..runner import LocalServer
from .harness import Mistake, SessionSpy, call_async, check

# --- what the checks send ------------------------------------------------------------------------

SEARCH_PATH = "/anything/search"
# A space, '&', '+' and '#' mean something in a URL, and the accents are not ASCII: a query
# string pasted together by hand loses part of this; params= sends it intact.
SEARCH_QUERY = "crème brûlée & co. #1+2"
SEARCH_TAGS = ("dessert", "french", "classic")

BOOKS_PATH = "/anything/books"
NEW_BOOK: dict[str, Any] = {
    "title": "Crème brûlée, 2nd ed.",
    "authors": ["Ada", "Grace"],
    "year": 2024,
    "in_print": True,
    "isbn": None,
}

FEEDBACK_PATH = "/anything/feedback"
FEEDBACK_NAME = "Zoë"
FEEDBACK_MESSAGE = "5+5=10 & 100% merci!\nSecond line."

BOOK_PATH = "/anything/books/42"
NEW_TITLE = "Crème brûlée, 3rd ed."
ETAG = '"v7-3f2a"'
USER, PASSWORD = "ada", "brûlée:42"  # a colon is allowed in the password

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


# --- shared observations -----------------------------------------------------------------------


async def _learner_call(task: str, learner: Any, path: str, server: LocalServer, *args: Any) -> Any:
    """Call the learner with a fresh session and the URL, and return what it returned."""
    async with aiohttp.ClientSession() as session:
        return await call_async(task, learner, session, f"{server.url}{path}", *args)


def _expect_method(server: LocalServer, path: str, method: str, hint: str) -> None:
    """The server's timeline, not the echo, decides which method arrived on ``path``."""
    records = server.stats().timeline
    methods = [record.method for record in records if record.path == path]
    if not methods:
        seen = ", ".join(f"{r.method} {r.path}" for r in records[:3]) or "nothing at all"
        raise Mistake(
            "no-request",
            f"the server received no request on {path}; it saw {seen}.",
            "send the request to the `url` argument as it is, with the session you are given.",
        )
    if method not in methods:
        raise Mistake(
            "wrong-method",
            f"the server received {' and '.join(dict.fromkeys(methods))} on {path}, "
            f"expected {method}.",
            hint,
        )


def _expect_echo(task: str, echo: Any) -> dict[str, Any]:
    if inspect.iscoroutine(echo):
        echo.close()  # never run: close it so Python does not warn about it later
        raise Mistake(
            "missing-await",
            f"{task} returned a coroutine object instead of the echo: an await is missing.",
            "`response.json()` is a coroutine function: `return await response.json()`.",
        )
    if isinstance(echo, aiohttp.ClientResponse):
        raise Mistake(
            "not-the-echo",
            f"{task} returned the response object, not the JSON the server sent back.",
            "read the body inside the `async with` block: `return await response.json()`.",
        )
    if not isinstance(echo, dict) or not {"args", "headers", "form", "json"} <= echo.keys():
        shown = f"a {type(echo).__name__}" if not isinstance(echo, dict) else "another dict"
        raise Mistake(
            "not-the-echo",
            f"{task} returned {shown}; expected the echo endpoint's JSON, with its "
            "args, headers, form and json.",
            "return `await response.json()`: it is what the server received.",
        )
    return echo


def _header(echo: dict[str, Any], name: str) -> str | None:
    """A header from the echo, whatever the case of its name."""
    for key, value in echo["headers"].items():
        if key.lower() == name.lower():
            return value
    return None


def _mimetype(echo: dict[str, Any]) -> str:
    """The Content-Type the server received, without its parameters ("" if none)."""
    return (_header(echo, "Content-Type") or "").split(";")[0].strip().lower()


def _body_text(echo: dict[str, Any]) -> str:
    return echo.get("data") or ""


def _has_body(echo: dict[str, Any]) -> bool:
    """Whether a body arrived (the server parses no form on a GET, but counts its bytes)."""
    length = _header(echo, "Content-Length") or "0"
    return bool(echo["form"] or echo["files"] or _body_text(echo)) or length.strip() != "0"


def _mangled(received: Any, original: str) -> bool:
    """What a value left unencoded in a URL or form becomes: '+' read as a space, and cut at
    the first '&' (next field) or '#' (the fragment, never sent)."""
    return (
        isinstance(received, str)
        and received != original
        and original.replace("+", " ").startswith(received)
    )


def _unlabelled(mimetype: str) -> bool:
    """The Content-Type aiohttp picks for a str or bytes body when the caller gives none."""
    return mimetype in ("", "text/plain", "application/octet-stream")


# --- task 1: GET with query parameters ---------------------------------------------------------


@check("search")
async def search(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``search(session, url, query, tags)``: GET with ``q`` once and ``tag`` once per tag."""
    tags = list(SEARCH_TAGS)
    echo = await _learner_call("search", learner, SEARCH_PATH, server, SEARCH_QUERY, tags)
    _expect_method(
        server,
        SEARCH_PATH,
        "GET",
        "a search reads and changes nothing: `session.get(url, params=...)`.",
    )
    echo = _expect_echo("search", echo)
    args: dict[str, Any] = echo["args"]
    if not args and _has_body(echo):
        raise Mistake(
            "params-in-body",
            "the search terms arrived in the request body and the query string was empty.",
            "`data=` and `json=` fill the body; the query string is `params=`.",
        )
    _judge_query(args)
    _judge_tags(args.get("tag"))
    return (
        "GET with the query text intact (accents, space, &, + and # percent-encoded) and one "
        f"tag= per tag, {len(SEARCH_TAGS)} in order."
    )


def _judge_query(args: dict[str, Any]) -> None:
    received = args.get("q")
    if received == SEARCH_QUERY:
        return
    strays = sorted(set(args) - {"q", "tag"})
    if isinstance(received, str) and received in (quote(SEARCH_QUERY), quote_plus(SEARCH_QUERY)):
        raise Mistake(
            "double-encoded-query",
            f"the server received q = {received!r}: percent-encoded twice.",
            "give params= the plain text; aiohttp encodes it once, as the URL needs.",
        )
    if _mangled(received, SEARCH_QUERY):
        extra = f" and stray keys {strays}" if strays else ""
        raise Mistake(
            "unencoded-query",
            f"the server received q = {received!r}{extra} for {SEARCH_QUERY!r}: the query "
            "string was pasted together without encoding, so '&' split it, '+' became a space "
            "and '#' cut off the rest.",
            "pass the values as `params=[('q', query), ...]` and let aiohttp percent-encode "
            "them; never build `?q=...` with an f-string.",
        )
    if received is None:
        raise Mistake(
            "missing-query",
            f"the server received no q parameter; the query string held {sorted(args)}.",
            "send the search text as the q parameter: `params=[('q', query), ...]`.",
        )
    raise Mistake(
        "wrong-query",
        f"the server received q = {received!r}, expected {SEARCH_QUERY!r}.",
        "send the query text exactly as given, once.",
    )


def _judge_tags(received: Any) -> None:
    expected = list(SEARCH_TAGS)
    if received == expected:
        return
    if received is None:
        raise Mistake(
            "missing-tags",
            "the server received no tag parameter.",
            "send one `('tag', tag)` pair per tag in params.",
        )
    if isinstance(received, str):
        raise Mistake(
            "tags-not-repeated",
            f"the server received a single tag = {received!r}; expected tag= once per tag, "
            f"{len(expected)} times.",
            "send one ('tag', tag) pair per tag; a dict keeps one value per key, so use a list "
            "of pairs, `[('q', query)] + [('tag', t) for t in tags]`, or a MultiDict.",
        )
    raise Mistake(
        "wrong-tags",
        f"the server received the tags {received!r}, expected {expected!r} in that order.",
        "send every tag you were given, each once, in order.",
    )


# --- task 2: POST a JSON body ------------------------------------------------------------------


@check("create_book")
async def create_book(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``create_book(session, url, book)``: POST the dict as JSON."""
    book = json.loads(json.dumps(NEW_BOOK))  # a copy: the learner may change it
    echo = await _learner_call("create_book", learner, BOOKS_PATH, server, book)
    _expect_method(
        server,
        BOOKS_PATH,
        "POST",
        "creating a resource in a collection is a POST: `session.post(url, json=book)`.",
    )
    echo = _expect_echo("create_book", echo)
    _judge_json_body(echo, NEW_BOOK, "book")
    return "POST with a JSON body (Content-Type: application/json); every value kept its type."


def _judge_json_body(echo: dict[str, Any], expected: Any, body: str) -> None:
    """``body`` is the expression the learner should pass as ``json=``, for the hints."""
    mimetype = _mimetype(echo)
    is_json = mimetype == JSON or mimetype.endswith("+json")
    received = echo["json"]
    if mimetype in (FORM, MULTIPART):
        encoding = "an HTML form" if mimetype == FORM else "a multipart form"
        raise Mistake(
            "data-instead-of-json",
            f"the server received {encoding} ({mimetype}) with fields {sorted(echo['form'])}, "
            "not JSON: a form holds only text, so numbers, True and None lose their types.",
            f"`data=` encodes a dict as a form; `json={body}` sends JSON.",
        )
    if not echo["form"] and not _body_text(echo) and not echo["files"]:
        where = " (the values went into the query string)" if echo["args"] else ""
        raise Mistake(
            "no-body",
            f"the request had no body{where}.",
            f"put it in the body as JSON: `json={body}`.",
        )
    if isinstance(received, str) and _loads(received) == expected:
        raise Mistake(
            "double-encoded-json",
            "the server received a JSON string that contains JSON: the body was encoded twice.",
            f"`json=` encodes for you: pass the dict itself, `json={body}`, "
            f"not `json=json.dumps({body})`.",
        )
    if not is_json and _loads(_body_text(echo)) == expected:
        raise _content_type_mistake(
            mimetype,
            "the body was the right JSON",
            "so the server did not read it as JSON",
            f"use `json={body}`, which sets Content-Type: application/json; a body you encode "
            "yourself needs that header too.",
        )
    if received != expected:
        raise Mistake(
            "wrong-body",
            f"the server received the JSON {received!r:.120}, expected {expected!r:.120}.",
            f"send exactly `json={body}`, with the values you were given, unchanged.",
        )


def _content_type_mistake(mimetype: str, what: str, effect: str, hint: str) -> Mistake:
    if _unlabelled(mimetype):
        label = f"aiohttp labelled it {mimetype}" if mimetype else "it went without one"
        return Mistake(
            "missing-content-type",
            f"{what}, but no Content-Type was given: {label}, {effect}.",
            hint,
        )
    return Mistake(
        "wrong-content-type", f"{what}, but as Content-Type {mimetype!r}, {effect}.", hint
    )


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# --- task 3: POST an HTML form -----------------------------------------------------------------


@check("send_feedback")
async def send_feedback(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``send_feedback(session, url, name, message)``: POST name and message, form-encoded."""
    echo = await _learner_call(
        "send_feedback", learner, FEEDBACK_PATH, server, FEEDBACK_NAME, FEEDBACK_MESSAGE
    )
    _expect_method(
        server,
        FEEDBACK_PATH,
        "POST",
        "an HTML form with method=post sends a POST: `session.post(url, data={...})`.",
    )
    echo = _expect_echo("send_feedback", echo)
    expected = {"name": FEEDBACK_NAME, "message": FEEDBACK_MESSAGE}
    mimetype = _mimetype(echo)
    if mimetype == JSON or mimetype.endswith("+json"):
        raise Mistake(
            "json-instead-of-data",
            "the server received JSON; the form asks for application/x-www-form-urlencoded.",
            "`json=` sends JSON; `data={'name': name, 'message': message}` sends a form.",
        )
    if mimetype == MULTIPART:
        raise Mistake(
            "multipart-instead-of-urlencoded",
            "the server received multipart/form-data; this form is "
            "application/x-www-form-urlencoded (what a browser sends for a form without files).",
            "a plain dict in `data=` is form-encoded; FormData turns multipart when it holds a "
            "file or `default_to_multipart=True`.",
        )
    if mimetype != FORM and not echo["form"]:
        if echo["args"] and not _body_text(echo):
            raise Mistake(
                "fields-in-query",
                "the fields arrived in the query string and the body was empty.",
                "`params=` is the query string; a form's fields go in the body with `data=`.",
            )
        raise _content_type_mistake(
            mimetype,
            "a body arrived",
            "so the server found no form fields in it",
            "pass a dict, `data={'name': name, 'message': message}`: aiohttp encodes it and "
            "sets Content-Type: application/x-www-form-urlencoded (a body you encode yourself "
            "needs that header too).",
        )
    form = echo["form"]
    if form != expected:
        if _mangled(form.get("message"), FEEDBACK_MESSAGE):
            raise Mistake(
                "unencoded-form-body",
                f"the server read the fields {form!r:.120}: the body was pasted together "
                "without encoding, so '&', '=' and '+' inside the message changed its meaning.",
                "let aiohttp encode it: `data={'name': name, 'message': message}`.",
            )
        raise Mistake(
            "wrong-fields",
            f"the server read the fields {form!r:.120}, expected name and message as given.",
            "send exactly two fields, name and message, with the values you were given.",
        )
    return "POST, form-encoded (application/x-www-form-urlencoded), both fields intact."


# --- task 4: PATCH with authorization and a conditional header ---------------------------------


@check("rename_book")
async def rename_book(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``rename_book(session, url, title, etag, user, password)``: an authorised JSON PATCH."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        echo = await _learner_call(
            "rename_book", learner, BOOK_PATH, server, NEW_TITLE, ETAG, USER, PASSWORD
        )
    _expect_method(
        server,
        BOOK_PATH,
        "PATCH",
        "PATCH changes part of a resource; PUT replaces all of it and POST creates: "
        "`session.patch(url, ...)`.",
    )
    echo = _expect_echo("rename_book", echo)
    if any("BasicAuth" in str(w.message) or "'auth'" in str(w.message) for w in caught):
        raise Mistake(
            "deprecated-basic-auth",
            "the credentials were sent with aiohttp.BasicAuth / auth=, which aiohttp 3.14 "
            "deprecates and 4.0 removes (and which encodes as Latin-1, not UTF-8, by default).",
            "`headers={'Authorization': aiohttp.encode_basic_auth(user, password)}`.",
        )
    _judge_basic_auth(_header(echo, "Authorization"))
    if_match = _header(echo, "If-Match")
    if if_match != ETAG:
        raise Mistake(
            "missing-header" if if_match is None else "wrong-header",
            f"the server received If-Match: {if_match!r}, expected the etag exactly as given, "
            "quotes included.",
            "add `'If-Match': etag` to the request's headers, unchanged.",
        )
    _judge_json_body(echo, {"title": NEW_TITLE}, "{'title': title}")
    return (
        "PATCH with Authorization: Basic (encoded by encode_basic_auth), If-Match as given, "
        "and a JSON body holding only the new title."
    )


def _judge_basic_auth(authorization: str | None) -> None:
    if authorization is None:
        raise Mistake(
            "missing-auth",
            "the server received no Authorization header.",
            "`headers={'Authorization': aiohttp.encode_basic_auth(user, password)}`.",
        )
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise Mistake(
            "wrong-auth-scheme",
            f"the server received Authorization: {scheme} ...; this API takes Basic.",
            "`aiohttp.encode_basic_auth(user, password)` builds the whole value, 'Basic ...'.",
        )
    if credentials == f"{USER}:{PASSWORD}":
        raise Mistake(
            "basic-not-base64",
            "the server received the user and password as plain text after 'Basic'.",
            "Basic credentials are base64 of 'user:password': "
            "`aiohttp.encode_basic_auth(user, password)` does it.",
        )
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = None
    if decoded != f"{USER}:{PASSWORD}":
        raise Mistake(
            "wrong-credentials",
            "the Authorization header did not carry the user and password you were given "
            "(UTF-8, base64-encoded).",
            "`aiohttp.encode_basic_auth(user, password)` with the two arguments, in that order.",
        )
