"""Checks for exercise 04, request methods: ``from local_server.checks import request_methods``.

Each task gives the learner a session and a URL on an echo endpoint and expects the echo back
(``await response.json()``). The check serves its own copy of the course server's
``/anything`` (``EchoApp``), which records every request as it arrived: the method and path,
the query string as sent and as decoded, the headers, the body's bytes, and the status and
``detail`` it answered. A verdict is drawn from those bytes, never from the code's text, so any
way of building the right request passes.

Every task runs on two seeded scenarios (the example's values, and values with spaces at both
ends, a repeated tag, ``&`` in a name, a non-ASCII user...) and once against a port that
refuses connections: the error must propagate.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import random
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from ..errors import json_errors
from ..httpbin import echo as echo_of
from ..runner import LocalServer
from ..serving import refused_url, serve
from .evidence import clip, exception_text, learner_line
from .harness import SessionSpy, call_async, check
from .rules import Mistake, Rule, Task

SEED = 0

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


# --- the echo app that records the bytes it received -----------------------------------------


@dataclass
class Received:
    """One request as the check's echo app received it, and what it answered."""

    method: str
    path: str
    raw_query: str  # as it went over the wire, percent-encoded
    query: list[tuple[str, str]]  # decoded, in order
    headers: CIMultiDict[str]
    body: bytes
    status: int = 0
    detail: str = ""
    echo: Any = None

    @property
    def mimetype(self) -> str:
        """The Content-Type without its parameters, lower case ("" if none was sent)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def is_json(self) -> bool:
        return self.mimetype == JSON or self.mimetype.endswith("+json")

    def values(self, key: str) -> list[str]:
        return [value for name, value in self.query if name == key]


@dataclass
class EchoApp:
    """An ``/anything`` echo that keeps what it received: ``received``, oldest first."""

    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            body = await request.read()
            seen = Received(
                request.method,
                request.path,
                request.rel_url.raw_query_string,
                list(request.query.items()),
                CIMultiDict(request.headers),
                body,
            )
            self.received.append(seen)
            response = await handler(request)
            seen.status = response.status
            if response.status >= 400 and isinstance(response, web.Response) and response.body:
                parsed = _loads(bytes(response.body))
                if isinstance(parsed, dict):
                    seen.detail = str(parsed.get("detail", ""))
            return response

        async def anything(request: web.Request) -> web.Response:
            echo = await echo_of(request, with_body=True, with_method=True)
            self.received[-1].echo = echo
            return web.json_response(echo)

        app = web.Application(middlewares=[record, json_errors])
        app.router.add_route("*", "/anything/{tail:.*}", anything)
        return app


def _loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        return None


_MISSING = object()


def _loads_or_missing(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        return _MISSING


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (True is not 1, 2024 is not 2024.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _pasted(value: str) -> str:
    """What the server reads for ``value`` pasted unencoded after ``key=`` in a query string:
    cut at '&' (the next pair) or '#' (the fragment, never sent), '+' read as a space."""
    query = URL("http://h/p?k=" + value).query
    return query.get("k", "")


def _form_pasted(value: str) -> str:
    """What a form parser reads for ``value`` pasted unencoded after ``key=`` in a body."""
    pairs = parse_qsl("k=" + value, keep_blank_values=True)
    return pairs[0][1] if pairs else ""


def _encoded_twice(received: str, original: str) -> bool:
    return received != original and original in (unquote(received), unquote_plus(received))


def _describe_change(received: str, original: str) -> str:
    """A few words on how ``received`` differs from ``original``."""
    if received == original.strip():
        return "the spaces at either end were cut off"
    if received.lower() == original.lower():
        return "its letter case changed"
    if received == original.replace("\n", " ") or received == " ".join(original.split()):
        return "its line breaks (or runs of spaces) were flattened"
    if original.startswith(received):
        return "it was cut short"
    return "the text changed"


# --- what each check shares ------------------------------------------------------------------


async def _call(task: str, learner: Any, url: str, *args: Any) -> Any:
    """The learner's function, called with a fresh session of the check's own."""
    async with aiohttp.ClientSession() as session:
        return await call_async(task, learner, session, url, *args)


def _not_a_coroutine(table: Task, task: str, returned: Any) -> None:
    if inspect.iscoroutine(returned):
        returned.close()  # never run: close it so Python does not warn about it later
        raise table.broken(
            "missing-await",
            f"{task} returned a coroutine object instead of the echo: an await is missing.",
            "`response.json()` is a coroutine function: `return await response.json()`.",
        )


def _the_request(
    table: Task, task: str, app: EchoApp, path: str, method: str, returned: Any
) -> Received:
    """The request ``task`` sent to ``path``; the wrong method or none at all is a Mistake."""
    on_path = [seen for seen in app.received if seen.path == path]
    if not on_path:
        seen = ", ".join(f"{r.method} {r.path}" for r in app.received[:3]) or "nothing at all"
        raise table.broken(
            "no-request",
            f"the server received no request on {path} (the `url` given); it saw {seen}.",
        )
    right = [seen for seen in on_path if seen.method == method]
    if not right:
        methods = " and ".join(dict.fromkeys(seen.method for seen in on_path))
        raise table.broken(
            "wrong-method", f"the server received {methods} on {path}, expected {method}."
        )
    for seen in right:
        if returned is not None and returned == seen.echo:
            return seen
    return right[-1]


def _expect_the_echo(table: Task, task: str, returned: Any, request: Received) -> None:
    if isinstance(returned, dict) and returned == request.echo:
        return
    if isinstance(returned, aiohttp.ClientResponse):
        what = "the response object"
    elif isinstance(returned, (str, bytes)):
        what = f"the body as {type(returned).__name__} ({clip(repr(returned), 40)})"
    elif isinstance(returned, dict):
        what = f"a dict that is not the echo (its keys: {clip(str(sorted(returned)), 60)})"
    else:
        what = f"{clip(repr(returned), 60)}"
    raise table.broken(
        "not-the-echo",
        f"the request was right, but {task} returned {what}, not the echo the server sent "
        "(the parsed JSON: args, headers, form, json...).",
    )


async def _expect_failure_to_raise(table: Task, task: str, learner: Any, *args: Any) -> None:
    """Against a port that refuses connections, the learner's function must raise."""
    try:
        returned = await _call(task, learner, refused_url("/anything/x"), *args)
    except (Mistake, NotImplementedError):
        raise
    except Exception:  # it raised, as a failed request should (whatever it made of it)
        return
    if inspect.iscoroutine(returned):
        returned.close()
    raise table.broken(
        "error-swallowed",
        f"for a URL whose port refuses connections, {task} returned {clip(repr(returned), 60)} "
        "instead of raising: its caller cannot tell the failure from an answer.",
    )


def _content_type_mistake(
    table: Task,
    request: Received,
    what: str,
    effect: str,
    hint: str | None = None,
    wrong_hint: str | None = None,
) -> Mistake:
    """missing-content-type (with ``hint``) or wrong-content-type (with ``wrong_hint``); each
    defaults to its rule's hint."""
    mimetype = request.mimetype
    if mimetype in ("", "text/plain", "application/octet-stream"):
        label = f"aiohttp labelled it {mimetype}" if mimetype else "it went without one"
        return table.broken(
            "missing-content-type",
            f"{what}, but no Content-Type was given: {label}, {effect}.",
            hint,
        )
    return table.broken(
        "wrong-content-type",
        f"{what}, but labelled Content-Type {mimetype!r}, {effect}.",
        wrong_hint,
    )


def _refused(request: Received) -> str:
    """ ", and the server answered 400: '...'" when it refused the request, else ""."""
    if request.status >= 400:
        return f", and the server answered {request.status}: {clip(request.detail, 90)!r}"
    return ""


# --- task 1: GET with query parameters -------------------------------------------------------

SEARCH = Task(
    "search",
    Rule(
        "no-request",
        "sends a request to `url`",
        "the paths the check's echo app received",
        "send the request to the `url` argument as it is, with the session you are given.",
    ),
    Rule(
        "wrong-method",
        "It sends a **GET**",
        "the method the echo app received on the path",
        "a search reads and changes nothing: `session.get(url, params=...)`.",
    ),
    Rule(
        "params-in-body",
        "whose query string holds `q` and `tag`",
        "an empty query string and a body",
        "`data=` and `json=` fill the body; the query string is `params=`.",
    ),
    Rule(
        "unencoded-query",
        "the text exactly as given: `&`, `#`, `+`... mean something in a URL",
        "the decoded values match what pasting the text unencoded gives: cut at '&' or '#', "
        "'+' read as a space",
        "pass the values as `params=[('q', query), ...]` and let aiohttp percent-encode "
        "them; never build `?q=...` with an f-string.",
    ),
    Rule(
        "double-encoded-query",
        "`q`: the search text, exactly as given",
        "the value decodes to the text once more: it was percent-encoded twice",
        "give params= the plain text; aiohttp encodes it once, as the URL needs.",
    ),
    Rule(
        "missing-query",
        "`q`: the search text",
        "no q key in the decoded query string",
        "send the search text as the q parameter: `params=[('q', query), ...]`.",
    ),
    Rule(
        "wrong-query",
        "`q`: the search text, exactly as given (spaces at either end included)",
        "the decoded q compared with the text, on two texts (one with spaces at both ends)",
        "send the query text exactly as given, once: do not strip, change or re-encode it.",
    ),
    Rule(
        "missing-tags",
        "`tag`: once per tag",
        "no tag key in the decoded query string",
        "send one `('tag', tag)` pair per tag in params.",
    ),
    Rule(
        "tags-not-repeated",
        "`tag`: once **per tag**",
        "a single tag value where there were several tags",
        "send one ('tag', tag) pair per tag; a dict keeps one value per key, so use a list of "
        "pairs, `[('q', query)] + [('tag', t) for t in tags]`, or a MultiDict.",
    ),
    Rule(
        "wrong-tags",
        "`tag`: once per tag in `tags`, in the order given (a repeated tag repeated too)",
        "the decoded tag values compared with the tags, on two lists (one with a repeat)",
        "send every tag you were given, each once, in order, without sorting or removing "
        "repeats: `[('tag', t) for t in tags]`.",
    ),
    Rule(
        "not-the-echo",
        "returns the echo, `await response.json()`",
        "what the function returned, compared with the JSON the echo app sent",
        "return `await response.json()` inside the `async with` block: it is what the "
        "server received.",
    ),
    Rule(
        "error-swallowed",
        "let an error propagate",
        "a URL whose port refuses connections: the function must raise",
        "let the exception propagate (no `try`/`except` that returns a default): the "
        "caller cannot tell a default from a real answer.",
    ),
)

SEARCH_PATH = "/anything/search"
# A space, '&', '+', '#', '%' and '=' mean something in a URL; the accents are not ASCII.
SEARCH_SCENARIOS = (
    ("crème brûlée & co. #1+2", ("dessert", "french", "classic")),
    ("  50% off: tea & cakes = 2+2 ☕  ", ("rock & roll", "c++", "tea", "c++")),
)


@check(SEARCH)
async def search(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``search(session, url, query, tags)``: GET with ``q`` once and ``tag`` once per tag."""
    rng = random.Random(f"{SEED}-search")
    echo = EchoApp()
    async with serve(echo.app()) as base:
        for query, tags in SEARCH_SCENARIOS:
            tags = list(tags)
            if len(set(tags)) == len(tags):
                rng.shuffle(tags)
            echo.received.clear()
            given = list(tags)  # the learner's copy: changing it changes nothing here
            returned = await _call("search", learner, base + SEARCH_PATH, query, given)
            _not_a_coroutine(SEARCH, "search", returned)
            request = _the_request(SEARCH, "search", echo, SEARCH_PATH, "GET", returned)
            _judge_search(request, query, tags)
            _expect_the_echo(SEARCH, "search", returned, request)
    await _expect_failure_to_raise(SEARCH, "search", learner, "x", ["y"])
    return (
        "GET with the query text intact (accents, spaces at both ends, &, +, %, = and # "
        "percent-encoded) and one tag= per tag, in order and with a repeat, for two searches; "
        "a refused connection raised."
    )


def _judge_search(request: Received, query: str, tags: list[str]) -> None:
    if not request.query and request.body:
        raise SEARCH.broken(
            "params-in-body",
            f"the query string was empty and a {len(request.body)}-byte body arrived "
            f"({clip(request.body.decode('utf-8', 'replace'), 60)!r}).",
        )
    _judge_query(request, query)
    _judge_tags(request, tags)


def _judge_query(request: Received, query: str) -> None:
    values = request.values("q")
    raw = f" (sent as ?{clip(request.raw_query, 70)})"
    if values == [query]:
        return
    if not values:
        keys = sorted({name for name, _ in request.query})
        raise SEARCH.broken(
            "missing-query",
            f"the server received no q parameter; the query string held {keys}{raw}.",
        )
    received = values[0]
    if len(values) > 1:
        raise SEARCH.broken(
            "wrong-query", f"the server received q {len(values)} times: {clip(str(values), 90)}."
        )
    if received in (_pasted(query), _pasted(query.replace(" ", "+"))):
        strays = sorted({name for name, _ in request.query} - {"q", "tag"})
        extra = f" and stray keys {clip(str(strays), 50)}" if strays else ""
        raise SEARCH.broken(
            "unencoded-query",
            f"the server received q = {received!r}{extra} for {query!r}{raw}: the query "
            "string was pasted together without encoding, so '&' split it, '+' became a "
            "space and '#' cut off the rest.",
        )
    if _encoded_twice(received, query):
        raise SEARCH.broken(
            "double-encoded-query",
            f"the server received q = {clip(repr(received), 90)}: percent-encoded twice.",
        )
    raise SEARCH.broken(
        "wrong-query",
        f"the server received q = {received!r}, for the text {query!r}: "
        f"{_describe_change(received, query)}.",
    )


def _judge_tags(request: Received, tags: list[str]) -> None:
    received = request.values("tag")
    if received == tags:
        return
    raw = f" (sent as ?{clip(request.raw_query, 70)})"
    if not received:
        keys = sorted({name for name, _ in request.query} - {"q"})
        also = f"; it held {keys}" if keys else ""
        raise SEARCH.broken("missing-tags", f"the server received no tag parameter{also}{raw}.")
    if len(received) == len(tags) and all(
        got == _pasted(tag) for got, tag in zip(received, tags, strict=True)
    ):
        raise SEARCH.broken(
            "unencoded-query",
            f"the server received the tags {received!r} for {tags!r}{raw}: they were pasted "
            "into the query string without encoding, so '&' split one and '+' became a space.",
        )
    pairs = list(zip(received, tags, strict=False))
    if (
        len(received) == len(tags)
        and any(_encoded_twice(got, tag) for got, tag in pairs)
        and all(_encoded_twice(got, tag) or got == tag for got, tag in pairs)
    ):
        raise SEARCH.broken(
            "double-encoded-query",
            f"the server received the tags {received!r}: percent-encoded twice.",
        )
    if len(received) == 1 and len(set(tags)) > 1:
        joined = received[0] in (",".join(tags), " ".join(tags), ", ".join(tags))
        how = "all the tags joined in one value" if joined else "one value only"
        raise SEARCH.broken(
            "tags-not-repeated",
            f"the server received a single tag = {received[0]!r} ({how}) for {len(tags)} "
            f"tags {tags!r}; expected tag= once per tag.",
        )
    if sorted(received) == sorted(tags):
        how = "in another order"
    elif sorted(dict.fromkeys(received)) == sorted(dict.fromkeys(tags)):
        how = "with the repeated tag sent once" if len(received) < len(tags) else "with repeats"
    else:
        how = "not the tags given"
    raise SEARCH.broken(
        "wrong-tags",
        f"the server received the tags {received!r}, {how}; expected {tags!r}, in that order.",
    )


# --- the JSON body, for tasks 2 and 4 --------------------------------------------------------


def _json_rules(create: bool) -> tuple[Rule, ...]:
    body = "book" if create else "{'title': title}"
    return (
        Rule(
            "no-body",
            "as a JSON body" if create else 'the JSON body `{"title": title}`',
            "the number of body bytes the echo app received",
            f"put it in the body as JSON: `json={body}`.",
        ),
        Rule(
            "data-instead-of-json",
            "as a JSON body (`Content-Type: application/json`), not a form",
            "the Content-Type received, or a body that is a form whatever its label",
            f"`data=` encodes a dict as a form, and a form holds only text; `json={body}` "
            "sends JSON.",
        ),
        Rule(
            "double-encoded-json",
            "the JSON object itself, encoded once",
            "the body parses to a string that parses to the expected object",
            f"`json=` encodes for you: pass the object itself, `json={body}`, not "
            f"`json=json.dumps({body})`.",
        ),
        Rule(
            "missing-content-type",
            "`Content-Type: application/json`",
            "a body that is the right JSON, sent without a Content-Type of its own",
            f"use `json={body}`, which sets Content-Type: application/json; a body you encode "
            "yourself needs that header too.",
        ),
        Rule(
            "wrong-content-type",
            "`Content-Type: application/json`",
            "a body that is the right JSON, under another Content-Type",
            f"the label must be application/json: `json={body}` sets it by itself; a body you "
            "encode yourself needs exactly that header.",
        ),
        Rule(
            "not-json-body",
            "a JSON body",
            "a body that does not parse as UTF-8 JSON, and the server's 400 detail",
            "encode with `json.dumps` (or pass the object as `json=`): str() gives Python's "
            "repr, and JSON on the wire is UTF-8.",
        ),
        Rule(
            "wrong-body",
            "the server must read each value back with its type"
            if create
            else "a JSON body holding only the new title",
            "the JSON received compared with what was given, types included (True is not 1 "
            "or 'True'), on two scenarios",
            f"send exactly `json={body}`, with the values you were given, unchanged.",
        ),
    )


def _judge_json_body(table: Task, request: Received, expected: Any, body: str) -> None:
    """``body`` is the expression the learner should pass as ``json=``, for the messages."""
    if not request.body:
        where = f" (the query string held {clip(request.raw_query, 60)!r})" if request.query else ""
        raise table.broken("no-body", f"the request had no body{where}.")
    text = request.body.decode("utf-8", "replace")
    form = dict(parse_qsl(text, keep_blank_values=True)) if "=" in text else {}
    parsed = _loads_or_missing(request.body)
    if request.mimetype in (FORM, MULTIPART) and parsed is not _MISSING and _same(parsed, expected):
        raise _content_type_mistake(
            table,
            request,
            "the body was the right JSON",
            _effect(request, "so the server read it as a form"),
            wrong_hint=f"`json={body}` sets Content-Type: application/json by itself: do not "
            "override it with another header.",
        )
    if request.mimetype in (FORM, MULTIPART):
        fields = request.echo.get("form", {}) if isinstance(request.echo, dict) else {}
        kind = "an HTML form" if request.mimetype == FORM else "a multipart form"
        raise table.broken(
            "data-instead-of-json",
            f"the server received {kind} ({request.mimetype}) with the fields "
            f"{clip(str(sorted(fields)), 80)}, not JSON: a form holds only text, so numbers, "
            "True and None lose their types.",
        )
    if request.is_json and parsed is _MISSING:
        if isinstance(expected, dict) and form and set(form) == set(expected):
            raise table.broken(
                "data-instead-of-json",
                f"the body was a form ({clip(text, 50)!r}) labelled {request.mimetype}"
                f"{_refused(request)}: `data=` with a dict encodes a form, whatever header "
                "you add.",
            )
        raise table.broken("not-json-body", _not_json(request, expected, text))
    if isinstance(parsed, str) and _same(_loads(parsed), expected):
        raise table.broken(
            "double-encoded-json",
            "the server received a JSON string that contains JSON: the body was encoded twice.",
        )
    if not request.is_json:
        if parsed is not _MISSING and _same(parsed, expected):
            raise _content_type_mistake(
                table,
                request,
                "the body was the right JSON",
                "so the server did not read it as JSON",
            )
        raise table.broken(
            "not-json-body",
            f"the body ({clip(text, 60)!r}) is not the JSON expected, and it was labelled "
            f"{request.mimetype or 'nothing'}, not application/json.",
        )
    if not _same(parsed, expected):
        raise table.broken(
            "wrong-body",
            f"the server received the JSON {clip(repr(parsed), 110)}: "
            f"{_first_difference(parsed, expected)}.",
        )


def _not_json(request: Received, expected: Any, text: str) -> str:
    if text in (str(expected), repr(expected)):
        why = "it is str() of the dict, Python's repr (single quotes, True, None), not JSON"
    elif _same(_loads_latin1(request.body), expected):
        why = "it is JSON encoded as Latin-1; JSON on the wire is UTF-8"
    else:
        why = "it does not parse as JSON"
    return f"the body labelled {request.mimetype} was {clip(text, 60)!r}{_refused(request)}: {why}."


def _loads_latin1(body: bytes) -> Any:
    try:
        return json.loads(body.decode("latin-1"))
    except ValueError:
        return None


def _first_difference(received: Any, expected: Any, where: str = "") -> str:
    """The first place where two JSON values differ, in words."""
    if isinstance(expected, dict) and isinstance(received, dict):
        missing = [key for key in expected if key not in received]
        if missing:
            return f"{where}{missing[0]!r} is missing"
        extra = [key for key in received if key not in expected]
        if extra:
            return f"{where}{extra[0]!r} was not in what you were given"
        for key in expected:
            if not _same(received[key], expected[key]):
                return _first_difference(received[key], expected[key], f"{where}{key!r}: ")
    if isinstance(expected, list) and isinstance(received, list) and len(expected) == len(received):
        for index, (got, want) in enumerate(zip(received, expected, strict=True)):
            if not _same(got, want):
                return _first_difference(got, want, f"{where}item {index}: ")
    return (
        f"{where}{clip(repr(received), 40)} ({type(received).__name__}) arrived for "
        f"{clip(repr(expected), 40)} ({type(expected).__name__})"
    )


# --- task 2: POST a JSON body ----------------------------------------------------------------

CREATE_BOOK = Task(
    "create_book",
    Rule(
        "no-request",
        "sends a request to `url`",
        "the paths the check's echo app received",
        "send the request to the `url` argument as it is, with the session you are given.",
    ),
    Rule(
        "wrong-method",
        "It **POST**s the dict `book`",
        "the method the echo app received on the path",
        "creating a resource in a collection is a POST: `session.post(url, json=book)`.",
    ),
    *_json_rules(create=True),
    SEARCH.rules["not-the-echo"],
    SEARCH.rules["error-swallowed"],
)

BOOKS_PATH = "/anything/books"
BOOKS = (
    {
        "title": "Crème brûlée, 2nd ed.",
        "authors": ["Ada", "Grace"],
        "year": 2024,
        "in_print": True,
        "isbn": None,
    },
    {
        "title": "Tea & “cakes” ☕",
        "authors": [],
        "price": 12.5,
        "in_print": False,
        "series": {"name": "Baking", "volume": 3, "isbn": None},
        "ratings": [5, 4.5, 0],
    },
)


@check(CREATE_BOOK)
async def create_book(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``create_book(session, url, book)``: POST the dict as JSON."""
    rng = random.Random(f"{SEED}-create_book")
    echo = EchoApp()
    async with serve(echo.app()) as base:
        for original in BOOKS:
            keys = list(original)
            rng.shuffle(keys)
            expected = {key: original[key] for key in keys}
            echo.received.clear()
            book = json.loads(json.dumps(expected))  # a copy: the learner may change it
            returned = await _call("create_book", learner, base + BOOKS_PATH, book)
            _not_a_coroutine(CREATE_BOOK, "create_book", returned)
            request = _the_request(CREATE_BOOK, "create_book", echo, BOOKS_PATH, "POST", returned)
            _judge_json_body(CREATE_BOOK, request, expected, "book")
            _expect_the_echo(CREATE_BOOK, "create_book", returned, request)
    await _expect_failure_to_raise(CREATE_BOOK, "create_book", learner, {"title": "x"})
    return (
        "POST with a JSON body (Content-Type: application/json) for two books; every value "
        "kept its type (True, False, None, numbers, a nested object); a refused connection "
        "raised."
    )


# --- task 3: POST an HTML form ---------------------------------------------------------------

SEND_FEEDBACK = Task(
    "send_feedback",
    Rule(
        "no-request",
        "sends a request to `url`",
        "the paths the check's echo app received",
        "send the request to the `url` argument as it is, with the session you are given.",
    ),
    Rule(
        "wrong-method",
        "It **POST**s two fields",
        "the method the echo app received on the path",
        "an HTML form with method=post sends a POST: `session.post(url, data={...})`.",
    ),
    Rule(
        "json-instead-of-data",
        "encoded the way a browser sends an HTML form",
        "a JSON Content-Type, or a body that is JSON whatever its label",
        "`json=` sends JSON; `data={'name': name, 'message': message}` sends a form.",
    ),
    Rule(
        "multipart-instead-of-urlencoded",
        "an HTML form without files: `application/x-www-form-urlencoded`",
        "the Content-Type received",
        "a plain dict in `data=` is form-encoded; FormData turns multipart when it holds a "
        "file or `default_to_multipart=True`.",
    ),
    Rule(
        "fields-in-query",
        "It **POST**s two fields in the body",
        "the fields found in the query string, and an empty body",
        "`params=` is the query string; a form's fields go in the body with `data=`.",
    ),
    Rule(
        "no-body",
        "It **POST**s two fields",
        "the number of body bytes received",
        "send the fields in the body: `data={'name': name, 'message': message}`.",
    ),
    Rule(
        "missing-content-type",
        "`Content-Type: application/x-www-form-urlencoded`",
        "a body that is the right form, sent without a Content-Type of its own",
        "pass a dict, `data={'name': name, 'message': message}`: aiohttp encodes it and sets "
        "the Content-Type (a body you encode yourself needs that header too).",
    ),
    Rule(
        "wrong-content-type",
        "`Content-Type: application/x-www-form-urlencoded`",
        "a body that is the right form, under another Content-Type",
        "the label must be application/x-www-form-urlencoded: `data=` with a dict sets it by "
        "itself, so add no Content-Type header of your own; a body you encode yourself needs "
        "that exact header.",
    ),
    Rule(
        "unencoded-form-body",
        "The message contains `+`, `=`, `&`, `%`...: the server must read each field back",
        "the fields read match what pasting the values unencoded gives: cut at '&', '+' read "
        "as a space",
        "let aiohttp encode it: `data={'name': name, 'message': message}`.",
    ),
    Rule(
        "double-encoded-form",
        "the server must read each field back exactly",
        "a field decodes to its value once more: it was percent-encoded twice",
        "give `data=` the plain values; aiohttp encodes them once.",
    ),
    Rule(
        "wrong-fields",
        "two fields, `name` and `message`, read back exactly",
        "the fields the form parser read, compared with the values given, on two scenarios "
        "(spaces at either end, line breaks)",
        "send exactly two fields, name and message, with the values you were given, unchanged.",
    ),
    SEARCH.rules["not-the-echo"],
    SEARCH.rules["error-swallowed"],
)

FEEDBACK_PATH = "/anything/feedback"
FEEDBACKS = (
    ("Zoë", "5+5=10 & 100% merci!\nSecond line."),
    ("Ana & Bo = 2", " a+b=c; 50%25 off?\r\nthird line #3\n"),
)


@check(SEND_FEEDBACK)
async def send_feedback(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``send_feedback(session, url, name, message)``: POST name and message, form-encoded."""
    echo = EchoApp()
    async with serve(echo.app()) as base:
        for name, message in FEEDBACKS:
            echo.received.clear()
            returned = await _call("send_feedback", learner, base + FEEDBACK_PATH, name, message)
            _not_a_coroutine(SEND_FEEDBACK, "send_feedback", returned)
            request = _the_request(
                SEND_FEEDBACK, "send_feedback", echo, FEEDBACK_PATH, "POST", returned
            )
            _judge_form(request, {"name": name, "message": message})
            _expect_the_echo(SEND_FEEDBACK, "send_feedback", returned, request)
    await _expect_failure_to_raise(SEND_FEEDBACK, "send_feedback", learner, "x", "y")
    return (
        "POST, form-encoded (application/x-www-form-urlencoded), both fields intact for two "
        "forms (&, =, +, %, line breaks, spaces at either end); a refused connection raised."
    )


def _judge_form(request: Received, expected: dict[str, str]) -> None:
    if not request.body:
        if any(key in expected for key, _ in request.query):
            raise SEND_FEEDBACK.broken(
                "fields-in-query",
                f"the fields arrived in the query string ({clip(request.raw_query, 60)!r}) and "
                "the body was empty.",
            )
        raise SEND_FEEDBACK.broken("no-body", "the request had no body.")
    text = request.body.decode("utf-8", "replace")
    fields = parse_qsl(text, keep_blank_values=True)
    if request.mimetype != FORM and dict(fields) == expected and len(fields) == len(expected):
        raise _content_type_mistake(
            SEND_FEEDBACK,
            request,
            "the body was the right form",
            _effect(request, "so the server found no form fields in it"),
        )
    parsed = _loads_or_missing(request.body)
    if request.is_json or (parsed is not _MISSING and _same(parsed, expected)):
        label = "" if request.is_json else f", labelled {request.mimetype or 'nothing'}"
        raise SEND_FEEDBACK.broken(
            "json-instead-of-data",
            f"the server received JSON ({clip(text, 50)!r}{label}); the form asks for "
            "application/x-www-form-urlencoded.",
        )
    if request.mimetype == MULTIPART:
        raise SEND_FEEDBACK.broken(
            "multipart-instead-of-urlencoded",
            "the server received multipart/form-data; this form is "
            "application/x-www-form-urlencoded (what a browser sends for a form without "
            "files).",
        )
    if request.mimetype != FORM:
        raise SEND_FEEDBACK.broken(
            "wrong-content-type",
            f"the body ({clip(text, 60)!r}) was labelled {request.mimetype or 'nothing'}, not "
            "application/x-www-form-urlencoded, and is not the form expected.",
        )
    _judge_fields(fields, expected, text)


def _effect(request: Received, otherwise: str) -> str:
    """What the wrong label did: the server's refusal when there was one."""
    if request.status >= 400:
        return f"so the server answered {request.status}: {clip(request.detail, 80)!r}"
    return otherwise


def _judge_fields(fields: list[tuple[str, str]], expected: dict[str, str], text: str) -> None:
    form = dict(fields)
    if form == expected and len(fields) == len(expected):
        return
    shown = clip(repr(form), 110)
    if any(form.get(key) == _form_pasted(value) != value for key, value in expected.items()):
        raise SEND_FEEDBACK.broken(
            "unencoded-form-body",
            f"the server read the fields {shown}: the body ({clip(text, 50)!r}) was pasted "
            "together without encoding, so '&', '=' and '+' inside the values changed "
            "their meaning.",
        )
    if (
        all(key in form for key in expected)
        and any(_encoded_twice(form[key], value) for key, value in expected.items())
        and all(_encoded_twice(form[key], v) or form[key] == v for key, v in expected.items())
    ):
        raise SEND_FEEDBACK.broken(
            "double-encoded-form",
            f"the server read the fields {shown}: the values were percent-encoded twice.",
        )
    missing = [key for key in expected if key not in form]
    extra = [key for key in form if key not in expected]
    if missing:
        detail = f"{missing[0]!r} is missing"
    elif extra:
        detail = f"the extra field {extra[0]!r} was not asked for"
    elif len(fields) > len(expected):
        detail = "a field was sent twice"
    elif form.get("name") == expected["message"] and form.get("message") == expected["name"]:
        detail = "name and message are swapped"
    else:
        key = next(key for key in expected if form[key] != expected[key])
        detail = f"{key}: {_describe_change(form[key], expected[key])}"
    raise SEND_FEEDBACK.broken("wrong-fields", f"the server read the fields {shown}: {detail}.")


# --- task 4: PATCH with authorization and a conditional header -------------------------------

RENAME_BOOK = Task(
    "rename_book",
    Rule(
        "no-request",
        "sends a request to `url`",
        "the paths the check's echo app received",
        "send the request to the `url` argument as it is, with the session you are given.",
    ),
    Rule(
        "wrong-method",
        "it is a **PATCH** to `url`",
        "the method the echo app received on the path",
        "PATCH changes part of a resource; PUT replaces all of it and POST creates: "
        "`session.patch(url, ...)`.",
    ),
    Rule(
        "deprecated-basic-auth",
        "built with `aiohttp.encode_basic_auth`, not the deprecated `BasicAuth`/`auth=`",
        "the DeprecationWarning aiohttp 3.14 gives for BasicAuth and auth=",
        "`headers={'Authorization': aiohttp.encode_basic_auth(user, password)}`.",
    ),
    Rule(
        "missing-auth",
        "`Authorization: Basic ...`",
        "the headers received",
        "`headers={'Authorization': aiohttp.encode_basic_auth(user, password)}`.",
    ),
    Rule(
        "wrong-auth-scheme",
        "`Authorization: Basic ...`",
        "the first word of the Authorization value received",
        "`aiohttp.encode_basic_auth(user, password)` builds the whole value, 'Basic ...'.",
    ),
    Rule(
        "auth-scheme-doubled",
        "`Authorization: Basic ...`, once",
        "an Authorization value starting 'Basic Basic'",
        "`aiohttp.encode_basic_auth(user, password)` already returns the whole value, "
        "'Basic ' included: use it as it is.",
    ),
    Rule(
        "basic-not-base64",
        "Basic credentials: base64 of `user:password`",
        "the text after 'Basic' is the user and password in plain text",
        "Basic credentials are base64 of 'user:password': `aiohttp.encode_basic_auth(user, "
        "password)` does it.",
    ),
    Rule(
        "credentials-not-utf8",
        "base64 of `user:password` in UTF-8",
        "the credentials decode to user:password from Latin-1 bytes, not UTF-8 (a password "
        "that is not ASCII)",
        "`aiohttp.encode_basic_auth(user, password)` encodes as UTF-8, as RFC 7617 asks; "
        "`BasicAuth` and `.encode('latin-1')` do not.",
    ),
    Rule(
        "wrong-credentials",
        "for `user` and `password`",
        "the base64 decoded and compared with user:password, on two scenarios",
        "`aiohttp.encode_basic_auth(user, password)` with the two arguments, unchanged and "
        "in that order.",
    ),
    Rule(
        "missing-header",
        "`If-Match: <etag>`",
        "the headers received",
        "add `'If-Match': etag` to the request's headers, unchanged.",
    ),
    Rule(
        "wrong-header",
        "the etag exactly as given (quotes included)",
        "the If-Match value received, compared with the etag",
        "add `'If-Match': etag` to the request's headers, unchanged: the quotes are part of "
        "the etag.",
    ),
    *_json_rules(create=False),
    SEARCH.rules["not-the-echo"],
    SEARCH.rules["error-swallowed"],
)

RENAMES = (
    # (path, title, etag, user, password): a colon is allowed in a password, not in a user
    ("/anything/books/42", "Crème brûlée, 3rd ed.", '"v7-3f2a"', "ada", "brûlée:42"),
    ("/anything/books/7", "Tea & “cakes”, 2nd ed.", '"5e2b-ab"', "zoë", "pä:ss wörd"),
)


@check(RENAME_BOOK)
async def rename_book(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``rename_book(session, url, title, etag, user, password)``: an authorised JSON PATCH."""
    echo = EchoApp()
    async with serve(echo.app()) as base:
        for path, title, etag, user, password in RENAMES:
            echo.received.clear()
            with _deprecations() as deprecated:
                try:
                    returned = await _call(
                        "rename_book", learner, base + path, title, etag, user, password
                    )
                except ValueError as error:
                    _colon_in_login(error)
                    raise
            _not_a_coroutine(RENAME_BOOK, "rename_book", returned)
            request = _the_request(RENAME_BOOK, "rename_book", echo, path, "PATCH", returned)
            if deprecated:
                raise RENAME_BOOK.broken(
                    "deprecated-basic-auth",
                    f"aiohttp warned: {clip(deprecated[0], 110)!r}. BasicAuth and auth= are "
                    "deprecated in 3.14 and removed in 4.0 (and BasicAuth encodes as "
                    "Latin-1 by default).",
                )
            _judge_basic_auth(request, user, password)
            _judge_if_match(request, etag)
            _judge_json_body(RENAME_BOOK, request, {"title": title}, "{'title': title}")
            _expect_the_echo(RENAME_BOOK, "rename_book", returned, request)
    await _expect_failure_to_raise(RENAME_BOOK, "rename_book", learner, "t", '"e"', "u", "p")
    return (
        "PATCH with Authorization: Basic (base64 of the UTF-8 'user:password', non-ASCII "
        "included), If-Match as given, and a JSON body holding only the new title, for two "
        "books; a refused connection raised."
    )


class _deprecations:
    """Collect the texts of aiohttp's BasicAuth/auth= deprecation warnings in the block.

    Every other warning is given back to the warnings machinery afterwards, so the harness
    still sees it (a coroutine never awaited, for one).
    """

    def __enter__(self) -> list[str]:
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        self.found: list[str] = []
        return self.found

    def __exit__(self, *exc_info: object) -> None:
        self._catcher.__exit__(*exc_info)
        for caught in self._caught:
            text = str(caught.message)
            if issubclass(caught.category, DeprecationWarning) and (
                "BasicAuth" in text or "'auth'" in text
            ):
                self.found.append(text)
            else:
                warnings.warn_explicit(
                    caught.message, caught.category, caught.filename, caught.lineno
                )


def _judge_basic_auth(request: Received, user: str, password: str) -> None:
    values = request.headers.getall("Authorization", [])
    if not values:
        elsewhere = [
            name for name, value in request.headers.items() if value.lower().startswith("basic ")
        ]
        also = f"; a Basic value arrived in {elsewhere[0]!r} instead" if elsewhere else ""
        raise RENAME_BOOK.broken(
            "missing-auth", f"the server received no Authorization header{also}."
        )
    value = values[0]
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "basic" and credentials.lower().startswith("basic "):
        raise RENAME_BOOK.broken(
            "auth-scheme-doubled",
            f"the server received Authorization: {clip(value, 40)!r}: the scheme twice, "
            "'Basic Basic'.",
        )
    if scheme.lower() != "basic":
        if _decoded(value) is not None:
            what = f"{clip(value, 30)!r}, the base64 token alone, with no scheme before it"
        else:
            what = f"{clip(value, 30)!r}: the scheme {scheme!r}"
        raise RENAME_BOOK.broken(
            "wrong-auth-scheme", f"the server received Authorization: {what}; this API takes Basic."
        )
    expected = f"{user}:{password}"
    if credentials == expected:
        raise RENAME_BOOK.broken(
            "basic-not-base64",
            "the server received the user and password as plain text after 'Basic'.",
        )
    raw = _decoded(credentials)
    if raw == expected.encode("utf-8"):
        return
    if (
        raw is not None
        and raw == expected.encode("latin-1", "replace")
        and raw.decode("latin-1") == expected
    ):
        raise RENAME_BOOK.broken(
            "credentials-not-utf8",
            f"the credentials decode to {expected!r} only from Latin-1 bytes: the password is "
            "not ASCII, and Basic credentials are UTF-8.",
        )
    if raw is None and credentials[:2] in ("b'", 'b"'):
        raise RENAME_BOOK.broken(
            "wrong-credentials",
            f"the server received Authorization: Basic {clip(credentials, 30)}: the repr of "
            "a bytes object, quotes and all. base64.b64encode returns bytes: `.decode()` "
            "them before putting them in the header.",
            "`aiohttp.encode_basic_auth(user, password)` returns the whole header value as text.",
        )
    if raw is None:
        seen = "text that is not base64"
    else:
        decoded = raw.decode("utf-8", "replace")
        seen = f"{clip(decoded, 40)!r}"
        if decoded == f"{password}:{user}":
            seen += " (the password first)"
    raise RENAME_BOOK.broken(
        "wrong-credentials",
        f"the Authorization credentials decode to {seen}; expected {expected!r} (user "
        f"{user!r}, password {password!r}).",
    )


def _colon_in_login(error: ValueError) -> None:
    """encode_basic_auth refuses a user name with a colon: the password passed as the user?"""
    if "not allowed in login" in str(error):
        raise RENAME_BOOK.broken(
            "wrong-credentials",
            f"{exception_text(error)}, at {learner_line(error) or 'your code'}: a user name "
            "cannot hold a colon, and the password here does. Were user and password swapped?",
        ) from None


def _decoded(token: str) -> bytes | None:
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _judge_if_match(request: Received, etag: str) -> None:
    values = request.headers.getall("If-Match", [])
    if not values:
        elsewhere = [name for name, value in request.headers.items() if etag.strip('"') in value]
        also = f"; the etag arrived in {elsewhere[0]!r} instead" if elsewhere else ""
        raise RENAME_BOOK.broken("missing-header", f"the server received no If-Match{also}.")
    value = values[0]
    if value == etag:
        return
    if value == etag.strip('"'):
        how = "its quotes were removed"
    elif value.strip('"') == etag.strip('"'):
        how = "it has extra quotes"
    else:
        how = "it is not the etag given"
    raise RENAME_BOOK.broken(
        "wrong-header",
        f"the server received If-Match: {clip(value, 40)!r} for the etag {etag!r}: {how}.",
    )
