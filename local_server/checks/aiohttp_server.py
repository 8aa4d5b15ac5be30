"""Checks for exercise 11, an aiohttp server: ``from local_server.checks import aiohttp_server``.

The learner builds a small in-memory JSON API for items. Every check serves what the learner
wrote with ``serve()`` on its own loop, calls it over HTTP with a ``ClientSession``, and judges
the answers: status codes, headers, JSON bodies and, when a handler crashed, the exception
aiohttp logged for the 500 (quoted with the learner's own line).

Each task's rules are a table (``ITEM_FIELDS``, ``CREATE_AND_LIST``, ``READ_UPDATE_DELETE``),
observed on seeded scenarios: valid items with non-ASCII names, integer, float and zero
prices, in any key order, sent whole or in two pieces; every kind of bad body; two apps from
one factory (a store or a counter shared between apps shows); two POSTs at once (an id
computed before the body arrived is taken twice); a refused POST or PUT in the middle of a
job (it must leave the store as it was); and a delete that is not of the last item (so an id
from ``len(items) + 1`` collides).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from ..runner import LocalServer
from ..serving import captured_server_errors, logged_exceptions, serve
from .evidence import clip, exception_text, learner_line
from .harness import SessionSpy, check
from .rules import Mistake, Rule, Task

SEED = 0
_NO_BODY = object()
# Two pieces of a body sent this far apart: a handler that reads only what has arrived sees half.
PIECE_GAP_SECONDS = 0.03
# How long the check waits for two concurrent requests to both reach the app.
BOTH_ARRIVED_SECONDS = 2.0

# --- rules shared by several tasks --------------------------------------------------------------

ERROR_NOT_JSON = Rule(
    "error-not-json",
    'A JSON error is `{"error": "a sentence for a human"}` with `Content-Type: application/json`',
    "the error answer's Content-Type, whether its body parses as JSON, and its `error` key",
    'raise it with a JSON body: `raise web.HTTPBadRequest(text=json.dumps({"error": message}), '
    'content_type="application/json")`; your `json_error(...)` helper keeps it short.',
)
RETURNED_NOT_RAISED = Rule(
    "returned-not-raised",
    "`json_error(...)` returns an exception: you `raise` what it returns",
    "a web.HTTPException object that came back as a value: returned by item_fields, or found "
    "by the TypeError aiohttp logged when it reached `json_response` or `{**fields}`",
    "`raise json_error(web.HTTPBadRequest, ...)`: raising stops the handler and aiohttp sends "
    "the error as the answer; a returned one is just a value the handler carries on with.",
)
NOT_AN_APP = Rule(
    "not-an-app",
    "returns a **new** `web.Application`",
    "the type of what the factory returned",
    "build one with `app = web.Application()`, add the routes, and `return app` (a plain "
    "`def`, not `async def`).",
)
ROUTE_MISSING = Rule(
    "route-missing",
    "the routes of the table at the top",
    "aiohttp's own plain-text 404/405: no handler matched the request",
    "register the route: `app.router.add_post('/items', create_item)` (or `add_get`, "
    "`add_put`, `add_delete`, or `@routes.post(...)` with a RouteTableDef).",
)
SERVER_ERROR = Rule(
    "server-error",
    "a valid request gets its answer",
    "a 500 on a valid request, with the exception aiohttp logged and your line",
    "the exception and the line it came from are quoted above: fix that line.",
)
BAD_JSON_500 = Rule(
    "bad-json-500",
    "invalid JSON is a **400** with a JSON error (use `item_fields` for the body)",
    "a body that is not JSON: a 500, with the exception aiohttp logged",
    "read the body with your `item_fields(request)` from task 1: `request.json()` raises "
    "json.JSONDecodeError (a ValueError), which it turns into a 400.",
)
NOT_VALIDATED = Rule(
    "not-validated",
    "invalid JSON, a missing or wrongly typed field is a **400** (use `item_fields`)",
    "an invalid body, and the status it got",
    "read the body with your `item_fields(request)` from task 1, and store nothing until it "
    "returned.",
)


def _is_json_error(reply: Reply) -> bool:
    return (
        reply.is_json
        and reply.content_type == "application/json"
        and isinstance(reply.data, dict)
        and isinstance(reply.data.get("error"), str)
        and bool(reply.data["error"].strip())
    )


@dataclass
class Reply:
    """What one request got back, and the exception its handler raised, if any."""

    method: str
    path: str
    status: int
    content_type: str
    text: str
    location: str | None
    raised: BaseException | None = None
    data: Any = field(default=None)
    is_json: bool = False

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}"

    def shown(self) -> str:
        """The answer, short, for a message: ``404 text/plain '404: Not Found'``."""
        text = json.dumps(self.data, ensure_ascii=False) if self.is_json else self.text
        return f"{self.status} {self.content_type} {clip(text, 70)!r}"


def _cause(exc: BaseException) -> str:
    """``KeyError: 'name' (line 4 of create_item(): `data["name"]`)`` for a 500's exception."""
    where = learner_line(exc)
    return f"{exception_text(exc)}" + (f" ({where})" if where else "")


# A TypeError naming an HTTP error class: an HTTPException object used as data.
_HTTP_CLASS = re.compile(r"\b(HTTP[A-Z][A-Za-z]+)\b")


def _returned_exception(exc: BaseException | None) -> str | None:
    """The name of the web.HTTPException class a crash shows was used as a value, if any."""
    if not isinstance(exc, TypeError):
        return None
    match = _HTTP_CLASS.search(str(exc))
    if match and isinstance(getattr(web, match.group(1), None), type):
        if issubclass(getattr(web, match.group(1)), web.HTTPException):
            return match.group(1)
    return None


def crashed(table: Task, reply: Reply, problem: str, what: str, hint: str | None = None) -> Mistake:
    """The Mistake for a 500, quoting what the handler raised (and naming a returned error)."""
    name = _returned_exception(reply.raised)
    if name is not None and "returned-not-raised" in table.rules:
        assert reply.raised is not None
        return table.broken(
            "returned-not-raised",
            f"{what}: {reply.request} answered 500 with {_cause(reply.raised)}: the {name} "
            "was returned, not raised, and then used as data.",
        )
    cause = _cause(reply.raised) if reply.raised else "an exception aiohttp did not log"
    return table.broken(
        problem, f"{what}: {reply.request} answered 500, the handler raised {cause}.", hint
    )


def not_a_json_error(table: Task, reply: Reply, what: str) -> Mistake:
    """The Mistake for an error answer that is not ``{"error": "..."}`` labelled JSON."""
    if reply.content_type != "application/json":
        why = f"the body is labelled {reply.content_type}, not application/json"
    elif not reply.is_json:
        why = "the body is not valid JSON (str() of a dict is not JSON: use json.dumps)"
    else:
        why = 'the JSON has no "error" key with a sentence in it'
    return table.broken(
        "error-not-json", f"{what}: {reply.request} answered {reply.shown()}: {why}."
    )


class Api:
    """Calls one served app and pairs each answer with the exception its handler raised."""

    def __init__(self, session: aiohttp.ClientSession, records: list[logging.LogRecord]) -> None:
        self.session = session
        self.records = records

    async def call(
        self,
        method: str,
        path: str,
        body: Any = _NO_BODY,
        *,
        raw: str | None = None,
        pieces: int = 1,
        between: Callable[[], Any] | None = None,
    ) -> Reply:
        """Send ``body`` as JSON (or ``raw`` labelled JSON), in ``pieces``; read the answer.

        A body in two pieces is sent chunked, ``PIECE_GAP_SECONDS`` apart, or once the
        ``between`` coroutine function has returned.
        """
        before = len(self.records)
        options: dict[str, Any] = {}
        encoded: bytes | None = None
        if raw is not None:
            encoded = raw.encode()
        elif body is not _NO_BODY:
            encoded = json.dumps(body, ensure_ascii=False).encode()
        if encoded is not None:
            options["headers"] = {"Content-Type": "application/json"}
            options["data"] = encoded if pieces == 1 else _in_two(encoded, between)
        async with self.session.request(method, path, allow_redirects=False, **options) as resp:
            text = await resp.text(errors="replace")
            reply = Reply(
                method, path, resp.status, resp.content_type, text, resp.headers.get("Location")
            )
        raised = logged_exceptions(self.records[before:])
        if raised:
            reply.raised = raised[-1]
        if any(isinstance(error, NotImplementedError) for error in raised):
            raise NotImplementedError
        try:
            reply.data, reply.is_json = json.loads(text), True
        except ValueError:
            pass
        return reply


async def _in_two(encoded: bytes, between: Callable[[], Any] | None) -> AsyncIterator[bytes]:
    cut = max(1, len(encoded) // 2)
    yield encoded[:cut]
    if between is not None:
        await between()
    else:
        await asyncio.sleep(PIECE_GAP_SECONDS)
    yield encoded[cut:]


@contextlib.asynccontextmanager
async def _served(app: web.Application) -> AsyncIterator[Api]:
    """Serve ``app`` and yield an ``Api`` on it; aiohttp's error log is captured meanwhile."""
    with captured_server_errors() as records:
        async with serve(app) as url, aiohttp.ClientSession(base_url=url) as session:
            yield Api(session, records)


def _app_from(table: Task, learner: Any, name: str) -> web.Application:
    app = learner()
    if inspect.iscoroutine(app):
        app.close()  # never run: no "never awaited" warning
        raise table.broken(
            "not-an-app",
            f"{name}() returned a coroutine: it is an `async def`, and an app factory is a "
            "plain `def` that returns the app.",
        )
    if not isinstance(app, web.Application):
        raise table.broken(
            "not-an-app", f"{name}() returned {type(app).__name__}; expected a web.Application."
        )
    return app


def _router_answer(reply: Reply) -> bool:
    """aiohttp's own 404/405 (plain text): no route matched."""
    return reply.status in (404, 405) and reply.content_type == "text/plain"


# --- task 1: item_fields ------------------------------------------------------------------------

ITEM_FIELDS = Task(
    "item_fields",
    Rule(
        "valid-rejected",
        "returns the name and price of a valid body (a non-blank name, a number for price, "
        "0 included, sent in one piece or several)",
        "valid items with non-ASCII names, int, float and zero prices, extra fields, any key "
        "order, one sent in two pieces: each must be answered",
        "a non-blank string name and an int or float price (0 too) are valid; read the whole "
        "body with `await request.json()`.",
    ),
    Rule(
        "wrong-return",
        "returns a **new** dict with exactly `name` and `price`, as sent",
        "what item_fields returned for each valid body, compared with the body's values",
        'return `{"name": name, "price": price}` with the values as they were sent.',
    ),
    Rule(
        "extra-fields-kept",
        "Extra fields are dropped (a client must not choose its own `id`)",
        "a valid body with `id` and `owner` fields: what came back",
        'return a new dict with only the fields you accept: `{"name": name, "price": price}`.',
    ),
    Rule(
        "bad-json-500",
        "raises a 400 JSON error when the body is not JSON",
        "invalid JSON and an empty body: a 500, with the exception aiohttp logged",
        "`request.json()` raises json.JSONDecodeError (a ValueError) for a body that is not "
        "JSON: catch it and raise a 400 JSON error.",
    ),
    Rule(
        "bad-input-500",
        "raises a 400 JSON error when the body is not a JSON object, or a field is missing or "
        "wrongly typed",
        "a JSON list, string, null, missing and wrongly typed fields: a 500, with the exception",
        "check before you use: `isinstance(data, dict)` first, then `data.get(...)` and the "
        "type of each field; raise a 400 JSON error for anything else.",
    ),
    Rule(
        "bad-input-accepted",
        "raises a 400 JSON error when the body is not a JSON object, `name` is not a string, "
        "or `price` is not a number",
        "bodies of the wrong shape or with a missing or wrongly typed field: answered, not refused",
        "check `isinstance(data, dict)`, `isinstance(name, str)` and the price's type, and "
        "raise a 400 JSON error when one fails.",
    ),
    Rule(
        "blank-name-accepted",
        "`name` is a **non-blank** string",
        "names that are empty or only spaces, tabs and newlines",
        'reject a name that is blank once stripped: `not name.strip()` ("   " is not empty, '
        "but it is blank).",
    ),
    Rule(
        "bool-price-accepted",
        "Careful: JSON `true` arrives as Python `True`, and `bool` is a subclass of `int`",
        "prices `true` and `false`",
        "reject bool explicitly: `isinstance(price, bool) or not isinstance(price, (int, float))`.",
    ),
    Rule(
        "price-converted",
        '`price` is a number (a JSON string is text, even `"1.5"`)',
        'the price `"1.5"` (a string): accepted and converted',
        "check the type with isinstance(); do not convert it with float(): the JSON string "
        '"1.5" is text, and the client must send a number.',
    ),
    Rule(
        "wrong-status",
        "a bad body is a **400**",
        "the status a bad body got",
        "a body the server cannot use is a 400: `web.HTTPBadRequest`.",
    ),
    ERROR_NOT_JSON,
    RETURNED_NOT_RAISED,
    Rule(
        "not-async",
        "`async def item_fields(request)`",
        "calling it returned something that cannot be awaited",
        "define it with `async def`: reading the body is `await request.json()`.",
    ),
)

NAMES = ["pen", "ink", "crème brûlée", "日本茶", "Ölfarbe", "naïve café", "rubber duck"]


def _valid_bodies(rng: random.Random) -> list[tuple[str, dict[str, Any], dict[str, Any], int]]:
    """(what, body sent, fields expected, pieces): seeded names, prices and key orders."""
    names = rng.sample(NAMES, 4)
    float_price = round(rng.uniform(0.5, 99), 2)
    int_price = rng.randrange(2, 10_000)
    bodies = [
        ("a valid item", {"name": names[0], "price": float_price}, 1),
        ("a valid item, price first", {"price": int_price, "name": names[1]}, 1),
        ("a valid item priced 0", {"name": names[2], "price": 0}, 1),
        (
            "a valid item with extra fields",
            {"name": names[3], "price": 0.5, "id": rng.randrange(50, 999), "owner": "me"},
            1,
        ),
        ("a valid item sent in two pieces", {"name": names[0], "price": int_price}, 2),
    ]
    return [
        (what, body, {"name": body["name"], "price": body["price"]}, pieces)
        for what, body, pieces in bodies
    ]


# (what, JSON body or None, raw body or None, code for a 500, code when answered as valid)
_NOT_JSON, _BAD_INPUT = "bad-json-500", "bad-input-500"
BAD_BODIES: list[tuple[str, Any, str | None, str, str]] = [
    ("invalid JSON", None, '{"name": "pen",', _NOT_JSON, "bad-input-accepted"),
    ("an empty body", None, "", _NOT_JSON, "bad-input-accepted"),
    ("a JSON list", ["pen", 1.5], None, _BAD_INPUT, "bad-input-accepted"),
    ("a JSON string", "pen", None, _BAD_INPUT, "bad-input-accepted"),
    ("JSON null", None, "null", _BAD_INPUT, "bad-input-accepted"),
    ("no name", {"price": 1.5}, None, _BAD_INPUT, "bad-input-accepted"),
    ("no price", {"name": "pen"}, None, _BAD_INPUT, "bad-input-accepted"),
    ("a name that is a number", {"name": 42, "price": 1.5}, None, _BAD_INPUT, "bad-input-accepted"),
    ("a name that is null", {"name": None, "price": 1.5}, None, _BAD_INPUT, "bad-input-accepted"),
    ("an empty name", {"name": "", "price": 1.5}, None, _BAD_INPUT, "blank-name-accepted"),
    ("a name of spaces", {"name": "   ", "price": 1.5}, None, _BAD_INPUT, "blank-name-accepted"),
    (
        "a name of a tab and a newline",
        {"name": "\t\n", "price": 2},
        None,
        _BAD_INPUT,
        "blank-name-accepted",
    ),
    (
        "a price that is text",
        {"name": "pen", "price": "cheap"},
        None,
        _BAD_INPUT,
        "bad-input-accepted",
    ),
    (
        "a price that is null",
        {"name": "pen", "price": None},
        None,
        _BAD_INPUT,
        "bad-input-accepted",
    ),
    (
        "a price that is a list",
        {"name": "pen", "price": [1.5]},
        None,
        _BAD_INPUT,
        "bad-input-accepted",
    ),
    (
        "a price that is true",
        {"name": "pen", "price": True},
        None,
        _BAD_INPUT,
        "bool-price-accepted",
    ),
    (
        "a price that is false",
        {"name": "pen", "price": False},
        None,
        _BAD_INPUT,
        "bool-price-accepted",
    ),
    (
        'a price that is the string "1.5"',
        {"name": "pen", "price": "1.5"},
        None,
        _BAD_INPUT,
        "price-converted",
    ),
]


def _probe_app(
    learner: Any, results: list[tuple[str, Any]], entered: asyncio.Event
) -> web.Application:
    """An app whose POST /probe calls the learner's item_fields and notes what it returned."""

    async def probe(request: web.Request) -> web.Response:
        entered.set()
        outcome = learner(request)
        if not inspect.isawaitable(outcome):
            results.append(("not-async", outcome))
            return web.json_response({})
        results.append(("fields", await outcome))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/probe", probe)
    return app


def _returned_error(results: list[tuple[str, Any]]) -> Any:
    """An error item_fields returned as a value (an HTTPException, an error response)."""
    got = results[0][1] if results else None
    if isinstance(got, web.HTTPException) or (
        isinstance(got, web.StreamResponse) and got.status >= 400
    ):
        return got
    return None


async def _judge_valid_body(
    api: Api,
    results: list[tuple[str, Any]],
    entered: asyncio.Event,
    valid: tuple[str, dict, dict, int],
) -> None:
    """A valid item must parse to exactly ``expected``; a second piece is sent only once the
    handler runs, so code that reads only what has arrived sees half the body, whatever the load.
    """
    what, body, expected, pieces = valid
    results.clear()
    entered.clear()

    async def once_entered() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entered.wait(), BOTH_ARRIVED_SECONDS)

    reply = await api.call("POST", "/probe", body, pieces=pieces, between=once_entered)
    sent = f"{what} {clip(json.dumps(body, ensure_ascii=False), 80)}"
    if results and results[0][0] == "not-async":
        raise ITEM_FIELDS.broken(
            "not-async",
            f"item_fields(request) returned {type(results[0][1]).__name__}, not a coroutine.",
        )
    if reply.status == 500:
        raise crashed(ITEM_FIELDS, reply, "valid-rejected", sent)
    returned = _returned_error(results)
    if returned is not None:
        raise ITEM_FIELDS.broken(
            "valid-rejected",
            f"{sent}: item_fields returned {type(returned).__name__} "
            f"{clip(returned.text or '', 60)!r} (and did not raise it): the body was taken for a "
            "bad one.",
        )
    if reply.status != 200:
        extra = (
            " It came in two pieces: read the whole body with `await request.json()`, not "
            "what has arrived so far."
            if pieces > 1
            else ""
        )
        raise ITEM_FIELDS.broken("valid-rejected", f"{sent} was refused: {reply.shown()}.{extra}")
    fields = results[0][1]
    if not isinstance(fields, dict):
        raise ITEM_FIELDS.broken(
            "wrong-return",
            f"for {sent} item_fields returned {clip(repr(fields), 60)}; expected a dict.",
        )
    if set(fields) > {"name", "price"}:
        raise ITEM_FIELDS.broken(
            "extra-fields-kept",
            f"for {sent} item_fields returned {clip(repr(fields), 120)}: the client's extra fields "
            "came through, so a client could choose its own id.",
        )
    price = fields.get("price")
    if price == expected["price"] and type(price) is not type(expected["price"]):
        raise ITEM_FIELDS.broken(
            "price-converted",
            f"for {sent} item_fields returned the price {price!r} for {expected['price']!r}: "
            "it converted the price instead of checking its type.",
        )
    if fields != expected or type(fields.get("name")) is not str:
        raise ITEM_FIELDS.broken(
            "wrong-return",
            f"for {sent} item_fields returned {clip(repr(fields), 100)}; expected "
            f"{clip(repr(expected), 100)}.",
        )


async def _judge_bad_body(
    api: Api,
    results: list[tuple[str, Any]],
    what: str,
    body: Any,
    raw: str | None,
    crash_code: str,
    code: str,
) -> None:
    """A body the server cannot use must be refused with a 400 JSON error."""
    results.clear()
    reply = await api.call("POST", "/probe", _NO_BODY if body is None else body, raw=raw)
    shown = repr(raw) if raw is not None else json.dumps(body)
    sent = f"a request with {what} ({clip(shown, 50)})"
    if results and results[0][0] == "not-async":
        raise ITEM_FIELDS.broken(
            "not-async",
            f"item_fields(request) returned {type(results[0][1]).__name__}, not a coroutine.",
        )
    if reply.status == 500:
        raise crashed(ITEM_FIELDS, reply, crash_code, sent)
    returned = _returned_error(results)
    if returned is not None:
        raise ITEM_FIELDS.broken(
            "returned-not-raised",
            f"{sent}: item_fields returned {type(returned).__name__} instead of raising it, so "
            "the handler carried on as if the body were valid.",
        )
    if 200 <= reply.status < 300:
        got = results[0][1] if results else None
        raise ITEM_FIELDS.broken(
            code, f"{sent} was accepted: item_fields returned {clip(repr(got), 80)}."
        )
    if reply.status != 400:
        raise ITEM_FIELDS.broken(
            "wrong-status", f"{sent} answered {reply.shown()}; expected 400 Bad Request."
        )
    if not _is_json_error(reply):
        raise not_a_json_error(ITEM_FIELDS, reply, sent)


@check(ITEM_FIELDS)
async def item_fields(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Serve the learner's parser behind POST /probe; valid bodies parse, bad ones get 400."""
    rng = random.Random(f"{SEED}-item_fields")
    results: list[tuple[str, Any]] = []
    entered = asyncio.Event()
    valid = _valid_bodies(rng)
    bad = BAD_BODIES  # in the order a learner meets them: JSON, shape, fields, the traps
    async with _served(_probe_app(learner, results, entered)) as api:
        for one in valid[:2]:
            await _judge_valid_body(api, results, entered, one)
        for what, body, raw, crash_code, code in bad:
            await _judge_bad_body(api, results, what, body, raw, crash_code, code)
        # After every kind of refusal, valid bodies still parse (nothing kept from a bad one).
        for one in valid[2:]:
            await _judge_valid_body(api, results, entered, one)
    return (
        f"{len(valid)} valid items (non-ASCII names, a price of 0, extra fields, one in two "
        f"pieces) parsed to exactly name and price; {len(bad)} bad bodies each answered 400 "
        "with a JSON error."
    )


# --- task 2: create_and_list --------------------------------------------------------------------

CREATE_AND_LIST = Task(
    "create_and_list",
    NOT_AN_APP,
    Rule(
        "same-app",
        "returns a **new** `web.Application` on each call",
        "two calls of create_app(): two different objects",
        "build a new `web.Application()` inside create_app(), on each call.",
    ),
    ROUTE_MISSING,
    SERVER_ERROR,
    RETURNED_NOT_RAISED,
    Rule(
        "create-not-201",
        "`POST /items` answers **201**",
        "the status of each valid POST",
        "`web.json_response(item, status=201, headers={'Location': f'/items/{item_id}'})`.",
    ),
    Rule(
        "not-json",
        "`POST /items` answers the new item (JSON)",
        "the body of each 201: a JSON object",
        "return `web.json_response(item, status=201, ...)`.",
    ),
    Rule(
        "wrong-item",
        'the new item `{"id": 1, "name": "pen", "price": 1.5}`: an integer id, the name and '
        "price sent",
        "the item each POST answered, compared with the body sent",
        "answer the stored item: its integer id plus the name and price that were sent.",
    ),
    Rule(
        "first-id-not-1",
        "each app numbers its items from 1: `app[NEXT_ID] = itertools.count(1)`",
        "the id of the first item created on each app",
        "start each app's counter at 1: `app[NEXT_ID] = itertools.count(1)` inside create_app().",
    ),
    Rule(
        "same-id",
        "each item gets its own id (two POSTs at once included)",
        "the ids of items created one after the other, and of two POSTs sent at once whose "
        "bodies arrive in two pieces",
        "take the id with `next(request.app[NEXT_ID])` once the body is read, and store the "
        "item before the next await.",
    ),
    Rule(
        "no-location",
        "a `Location` header with its path",
        "the Location header of each 201",
        "add `headers={'Location': f'/items/{item_id}'}` to the response.",
    ),
    Rule(
        "wrong-location",
        "header `Location: /items/1`: the path of the new item",
        "the path of each Location, compared with the new item's id",
        "the Location is the path of the new item: `f'/items/{item_id}'`.",
    ),
    Rule(
        "list-wrong",
        "`GET /items` answers 200 and a JSON list of every item",
        "the list after each step, compared (by id) with the items created",
        "`web.json_response(list(request.app[ITEMS].values()))`.",
    ),
    Rule(
        "not-empty",
        "its own **empty** store on each call",
        "GET /items on a new app",
        "start each app with an empty store: `app[ITEMS] = {}` in create_app().",
    ),
    BAD_JSON_500,
    NOT_VALIDATED,
    ERROR_NOT_JSON,
    Rule(
        "bad-input-stored",
        "a refused POST stores nothing",
        "GET /items after a POST answered 400 (invalid JSON, a blank name)",
        "validate first (`await item_fields(request)`), store only a valid item.",
    ),
    Rule(
        "shared-state",
        "its own empty store on each call: `app[ITEMS] = {}`",
        "two apps from create_app(): items created on one must not be listed by the other",
        "create the store inside create_app() and keep it on the app: `app[ITEMS] = {}`; "
        "handlers read `request.app[ITEMS]`.",
    ),
    Rule(
        "shared-counter",
        "a counter for the ids of each app: `app[NEXT_ID] = itertools.count(1)`",
        "two apps from create_app(): the first item of the second app must get id 1",
        "make the counter inside create_app(), one per app: `app[NEXT_ID] = "
        "itertools.count(1)`, and read it with `next(request.app[NEXT_ID])`.",
    ),
    Rule(
        "string-key",
        "`app[ITEMS] = {}` and `app[NEXT_ID] = ...`: the typed keys, not strings",
        "the keys of the app's state after create_app(): a plain string key (aiohttp warns "
        "NotAppKeyWarning)",
        "use the typed keys of the first cell: `app[ITEMS] = {}`, `app[NEXT_ID] = "
        "itertools.count(1)`, and `request.app[ITEMS]` in the handlers.",
    ),
)


def _handled(table: Task, reply: Reply, what: str) -> Reply:
    """``reply`` if the learner's handler answered it without crashing."""
    if _router_answer(reply):
        raise table.broken(
            "route-missing",
            f"{what}: {reply.request} answered {reply.shown()}, aiohttp's own answer: no route "
            "matched it.",
        )
    if reply.status == 500:
        raise crashed(table, reply, "server-error", what)
    return reply


async def create(
    table: Task, api: Api, body: dict[str, Any], what: str, **options: Any
) -> dict[str, Any]:
    """POST /items and judge the answer: 201, the item with an int id, a Location header."""
    reply = _handled(table, await api.call("POST", "/items", body, **options), what)
    sent = json.dumps(body, ensure_ascii=False)
    if reply.status == 200:
        raise table.broken(
            "create-not-201",
            f"{what}: POST /items answered 200 OK; a request that created something answers "
            "201 Created.",
        )
    if reply.status != 201:
        raise table.broken(
            "create-not-201", f"{what}: POST /items {sent} answered {reply.shown()}; expected 201."
        )
    item = reply.data
    if not reply.is_json or not isinstance(item, dict):
        raise table.broken(
            "not-json",
            f"{what}: POST /items answered {reply.shown()}; expected the new item as a JSON "
            "object.",
        )
    item_id = item.get("id")
    if not isinstance(item_id, int) or isinstance(item_id, bool):
        raise table.broken(
            "wrong-item",
            f"{what}: the new item {clip(json.dumps(item, ensure_ascii=False), 100)} has no "
            "integer id.",
        )
    if {key: item.get(key) for key in body} != body or set(item) != {"id", *body}:
        raise table.broken(
            "wrong-item",
            f"{what}: sent {sent}, got back {clip(json.dumps(item, ensure_ascii=False), 120)}.",
        )
    if reply.location is None:
        raise table.broken(
            "no-location",
            f"{what}: the 201 has no Location header; it tells the client where the new item "
            "lives.",
        )
    if URL(reply.location).path != f"/items/{item_id}":
        raise table.broken(
            "wrong-location",
            f"{what}: Location is {clip(reply.location, 60)!r} for the item with id {item_id}; "
            f"expected '/items/{item_id}'.",
        )
    return item


async def list_items(table: Task, api: Api, what: str) -> list[Any]:
    reply = _handled(table, await api.call("GET", "/items"), what)
    if reply.status != 200 or not reply.is_json or not isinstance(reply.data, list):
        raise table.broken(
            "list-wrong",
            f"{what}: GET /items answered {reply.shown()}; expected 200 and a JSON list of items.",
        )
    return reply.data


def _by_id(items: list[Any]) -> list[Any]:
    return sorted(
        items,
        key=lambda item: str(item.get("id", "")) if isinstance(item, dict) else "",
    )


def _shown(items: list[Any], limit: int = 140) -> str:
    return clip(json.dumps(items, ensure_ascii=False), limit)


async def _expect_listed(table: Task, api: Api, expected: list[dict[str, Any]], when: str) -> None:
    listed = await list_items(table, api, when)
    if _by_id(listed) != _by_id(expected):
        raise table.broken(
            "list-wrong",
            f"{when}, GET /items answered {_shown(listed)}; expected {_shown(expected)}.",
        )


async def _expect_refused(
    table: Task, api: Api, what: str, body: Any = _NO_BODY, *, raw: str | None = None
) -> None:
    """A body item_fields refuses: a 400 JSON error, not a crash, not a success."""
    reply = await api.call("POST", "/items", body, raw=raw)
    if reply.status == 500:
        problem = "bad-json-500" if raw is not None else "not-validated"
        raise crashed(table, reply, problem, what)
    if reply.status != 400:
        raise table.broken("not-validated", _accepted(reply, what))
    if not _is_json_error(reply):
        raise not_a_json_error(table, reply, what)


def _accepted(reply: Reply, what: str) -> str:
    """The message for a body item_fields should have refused, and what it became."""
    message = f"{what}: {reply.request} answered {reply.shown()}; expected 400."
    if 200 <= reply.status < 300 and isinstance(reply.data, dict) and "name" not in reply.data:
        message += (
            " The item has no name: does the handler call item_fields, and does item_fields "
            "raise its error (not return it)?"
        )
    return message


def _string_keys(app: web.Application) -> list[str]:
    return [key for key in app if isinstance(key, str)]


class _Arrivals:
    """The check's own outermost middleware: it notes each request reaching the app.

    Installed before the app is served (a running app's middlewares are frozen); armed, it
    lets two concurrent requests send the rest of their bodies once both are inside the app,
    so both handlers are waiting for their bodies at the same time, whatever the load.
    """

    def __init__(self, app: web.Application) -> None:
        self.count = 0
        self.both = asyncio.Event()
        self.installed = False
        with contextlib.suppress(RuntimeError):  # an app already frozen: fall back to a gap
            app.middlewares.insert(0, self.middleware)  # type: ignore[arg-type]
            self.installed = True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.count += 1
        if self.count >= 2:
            self.both.set()
        return await handler(request)

    def arm(self) -> None:
        self.count = 0
        self.both.clear()

    async def wait_for_both(self) -> None:
        if not self.installed:
            await asyncio.sleep(PIECE_GAP_SECONDS)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.both.wait(), BOTH_ARRIVED_SECONDS)


async def _create_two_at_once(
    table: Task, api: Api, bodies: list[dict[str, Any]], arrivals: _Arrivals
) -> list[dict[str, Any]]:
    """Two POSTs whose bodies arrive in two pieces, the second once both reached the app."""
    arrivals.arm()
    what = "two POSTs sent at once"
    return list(
        await asyncio.gather(
            *(
                create(table, api, body, what, pieces=2, between=arrivals.wait_for_both)
                for body in bodies
            )
        )
    )


def _items(rng: random.Random, count: int) -> list[dict[str, Any]]:
    names = rng.sample(NAMES, count)
    return [
        {"name": name, "price": rng.choice([rng.randrange(1, 500), round(rng.uniform(0.1, 99), 2)])}
        for name in names
    ]


@check(CREATE_AND_LIST)
async def create_and_list(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Two apps from create_app(): each its own store and counter; refusals store nothing."""
    rng = random.Random(f"{SEED}-create_and_list")
    table = CREATE_AND_LIST
    first = _app_from(table, learner, "create_app")
    second = _app_from(table, learner, "create_app")
    if first is second:
        raise table.broken("same-app", "create_app() returned the same Application object twice.")
    bodies = _items(rng, 6)
    keys = _string_keys(first)
    arrivals = _Arrivals(first)
    async with _served(first) as a, _served(second) as b:
        if await list_items(table, a, "a new app") != []:
            raise table.broken("not-empty", "GET /items on a new app did not answer an empty list.")
        made = [await create(table, a, bodies[0], "creating an item on a new app")]
        if made[0]["id"] != 1:
            raise table.broken(
                "first-id-not-1",
                f"the first item created on a new app got id {made[0]['id']}; each app numbers "
                "its items from 1, as in the table above.",
            )
        made.append(await create(table, a, bodies[1], "creating a second item"))
        if made[0]["id"] == made[1]["id"]:
            raise table.broken(
                "same-id", f"two items created one after the other both got id {made[0]['id']}."
            )
        await _expect_listed(table, a, made, "after creating two items")
        # A second app: its own store, its own counter.
        seen_by_second = await list_items(table, b, "on a second app")
        if seen_by_second:
            raise table.broken(
                "shared-state",
                f"after two items were created on one app, a second app from create_app() "
                f"lists {len(seen_by_second)} items too: they share one store (a module-level "
                "dict?).",
            )
        other = await create(table, b, bodies[2], "creating the first item on a second app")
        if other["id"] != 1:
            shared = other["id"] == max(item["id"] for item in made) + 1
            raise table.broken(
                "shared-counter" if shared else "first-id-not-1",
                f"the first item of a second app from create_app() got id {other['id']}"
                + (
                    ", the next id of the first app: both apps take ids from one counter."
                    if shared
                    else "; each app numbers its items from 1."
                ),
            )
        await _expect_listed(table, b, [other], "on the second app, after creating one item")
        await _expect_listed(
            table, a, made, "on the first app, after an item was created on the second"
        )
        # A refused POST in the middle of the job stores nothing.
        await _expect_refused(table, a, "invalid JSON", raw='{"name": "cap", ')
        await _expect_refused(table, a, "a blank name", {"name": " ", "price": 2})
        listed = await list_items(table, a, "after two refused POSTs")
        if len(listed) != len(made):
            raise table.broken(
                "bad-input-stored",
                f"two POSTs answered 400, yet GET /items then listed {len(listed)} items "
                f"instead of {len(made)}: {_shown(listed, 120)}.",
            )
        # Two POSTs at once, their bodies in two pieces.
        pair = await _create_two_at_once(table, a, bodies[3:5], arrivals)
        given = [item["id"] for item in made]
        taken = [item["id"] for item in pair if item["id"] in given]
        if pair[0]["id"] == pair[1]["id"]:
            taken.append(pair[0]["id"])
        if taken:
            raise table.broken(
                "same-id",
                f"two POSTs sent at once got the ids {pair[0]['id']} and {pair[1]['id']}, and "
                f"{taken[0]} was already given out: the id was chosen before the body arrived, "
                "so both requests took the same one.",
            )
        made += pair
        await _expect_listed(table, a, made, "after two POSTs sent at once")
        keys = keys or _string_keys(first)
        if keys:
            raise table.broken(
                "string-key",
                f"create_app() keeps its state under the string key{'s' if len(keys) > 1 else ''} "
                f"{', '.join(repr(k) for k in keys[:3])} (`app[{keys[0]!r}] = ...`), and aiohttp "
                "warns NotAppKeyWarning: a string key can collide with another library's.",
            )
    return (
        "POST /items answers 201 with the new item and its Location, ids from 1 in each app; "
        "GET /items lists them; two apps share nothing; refused POSTs store nothing; two POSTs "
        "at once get their own ids."
    )


# --- task 3: read_update_delete -----------------------------------------------------------------

READ_UPDATE_DELETE = Task(
    "read_update_delete",
    NOT_AN_APP,
    ROUTE_MISSING,
    SERVER_ERROR,
    RETURNED_NOT_RAISED,
    Rule(
        "create-broken",
        "start from `create_app()`: `POST /items` and `GET /items` work as in task 2",
        "the answers to POST /items and GET /items, judged as in task 2",
        "run `check.create_and_list(create_app)` first: it says what is wrong with task 2.",
    ),
    Rule(
        "ignores-id",
        "`GET /items/{id}` answers the item whose id is in the path",
        "three items read in a seeded order: the item each answer holds",
        "read the id from the path: `item_id(request)` turns `request.match_info['id']` into "
        "an int.",
    ),
    Rule(
        "existing-not-found",
        "`stored_item(request)` returns the item whose id is in the path",
        "a 404 for an id POST /items has just answered",
        "`request.match_info['id']` is a string ('2'), and the store's keys are ints: convert "
        "it with `int(...)` before the lookup.",
    ),
    Rule(
        "read-wrong",
        "`GET /items/{id}` answers 200, that item",
        "the status and body of each read",
        "`web.json_response(stored_item(request))`.",
    ),
    Rule(
        "unknown-id-500",
        "an id that does not exist is a **404** with a JSON error",
        "an unknown id with each method: a 500, with the exception aiohttp logged",
        "look the id up with `in` (or `items.get(item_id)`), and raise your 404 JSON error "
        "when it is missing.",
    ),
    Rule(
        "unknown-id-not-404",
        "an id that does not exist is a **404** with a JSON error (PUT does not create it)",
        "an unknown id with GET, PUT and DELETE, a deleted id: the status",
        "every handler starts with `stored_item(request)`, which raises a 404 JSON error for "
        "an id that is not in the store.",
    ),
    Rule(
        "bad-id-500",
        "`item_id(request)` raises a **400** JSON error when the id is not a number",
        "ids such as `abc` and `1.5` with each method: a 500, with the exception aiohttp logged",
        "`int('abc')` raises ValueError: catch it and raise a 400 JSON error.",
    ),
    Rule(
        "bad-id-not-400",
        "an id that is not a number is a **400** (match `/items/{id}`, not `/items/{id:\\d+}`)",
        "ids such as `abc` and `1.5` with each method: the status",
        "match `/items/{id}` and convert the id in `item_id(request)`, raising a 400 JSON error "
        "when `int()` fails.",
    ),
    ERROR_NOT_JSON,
    Rule(
        "update-wrong",
        "`PUT` replaces the item with the body's name and price and keeps the id of the path; "
        "it answers 200, that item",
        "a PUT whose body carries another id: the answer and every item read back",
        "store `{'id': item_id, **fields}` under the id from the path, answer it, and leave "
        "the other items alone.",
    ),
    BAD_JSON_500,
    NOT_VALIDATED,
    Rule(
        "bad-update-stored",
        "`PUT` goes through `item_fields`: a refused PUT leaves the item as it was",
        "the item read back after a PUT answered 400",
        "call `await item_fields(request)` before you change anything: when it raises, the "
        "stored item must be untouched.",
    ),
    Rule(
        "delete-not-204",
        "`DELETE` removes it and answers **204** with no body",
        "the status and body of the DELETE",
        "`return web.Response(status=204)`.",
    ),
    Rule(
        "not-deleted",
        "`DELETE` removes it",
        "a GET of the deleted id",
        "remove it from the store: `del request.app[ITEMS][item_id]`.",
    ),
    Rule(
        "deleted-wrong-item",
        "`DELETE /items/{id}` removes the item whose id is in the path",
        "GET /items after the delete",
        "delete the item whose id is in the path.",
    ),
    Rule(
        "id-reused",
        "the id of a new item must not be one that a stored item still has",
        "an item created after deleting one that was not the last",
        "`len(items) + 1` gives an id still in use once an item was deleted: take ids from "
        "the app's counter, `next(request.app[NEXT_ID])`.",
    ),
)


class _CreateBroken:
    """Task-2 mistakes met while task 3 sets up its items, reported as ``create-broken``."""

    table = READ_UPDATE_DELETE

    async def create(self, api: Api, body: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return await create(CREATE_AND_LIST, api, body, what)
        except Mistake as mistake:
            raise self._moved(mistake) from None

    async def listed(self, api: Api, what: str) -> list[Any]:
        try:
            return await list_items(CREATE_AND_LIST, api, what)
        except Mistake as mistake:
            raise self._moved(mistake) from None

    def _moved(self, mistake: Mistake) -> Mistake:
        if mistake.problem in ("route-missing", "server-error", "returned-not-raised"):
            return self.table.broken(mistake.problem, mistake.message, mistake.hint)
        return self.table.broken("create-broken", f"task 2 first: {mistake.message}")


def _no_method(reply: Reply, what: str) -> None:
    """aiohttp's own 405: the path has routes, but none for this method."""
    if reply.status == 405 and reply.content_type == "text/plain":
        raise READ_UPDATE_DELETE.broken(
            "route-missing",
            f"{what}: {reply.request} answered {reply.shown()}, aiohttp's own answer: no "
            f"{reply.method} route for /items/{{id}}.",
        )


def _expect_unknown(reply: Reply, what: str) -> None:
    """An id that does not exist: a 404 with a JSON error."""
    table = READ_UPDATE_DELETE
    _no_method(reply, what)
    if reply.status == 500:
        hint = None
        if reply.raised is not None and not isinstance(reply.raised, KeyError):
            hint = (
                "the exception and your line are quoted above; an unknown id must reach your "
                "404 JSON error before anything uses the item."
            )
        raise crashed(table, reply, "unknown-id-500", what, hint)
    if reply.status != 404:
        raise table.broken(
            "unknown-id-not-404",
            f"{what}: {reply.request} answered {reply.shown()}; expected 404 Not Found.",
        )
    if not _is_json_error(reply):
        raise not_a_json_error(table, reply, what)


def _expect_bad_id(reply: Reply, raw: str) -> None:
    table = READ_UPDATE_DELETE
    what = f"an id that is not a number ({raw!r})"
    _no_method(reply, what)
    if reply.status == 500:
        raise crashed(table, reply, "bad-id-500", what)
    if reply.status == 404 and _router_answer(reply):
        raise table.broken(
            "bad-id-not-400",
            f"{what}: {reply.request} answered {reply.shown()}, the router's own 404: the "
            "route pattern refused it before your handler ran.",
        )
    if reply.status != 400:
        raise table.broken(
            "bad-id-not-400", f"{what}: {reply.request} answered {reply.shown()}; expected 400."
        )
    if not _is_json_error(reply):
        raise not_a_json_error(table, reply, what)


async def _read(api: Api, item_id: int, what: str) -> Reply:
    return _handled(READ_UPDATE_DELETE, await api.call("GET", f"/items/{item_id}"), what)


async def _check_reads(api: Api, items: list[dict[str, Any]], order: list[int]) -> None:
    """Each id gives its own item, in a seeded order that starts with neither end."""
    table = READ_UPDATE_DELETE
    ids = [item["id"] for item in items]
    for index in order:
        item = items[index]
        reply = await _read(api, ids[index], f"reading item {ids[index]}")
        if reply.status == 200 and reply.is_json and reply.data != item:
            other = reply.data.get("id") if isinstance(reply.data, dict) else None
            if other in ids:
                raise table.broken(
                    "ignores-id",
                    f"GET /items/{ids[index]} answered the item with id {other}: the handler "
                    "does not use the id in the path.",
                )
        if reply.status == 404:
            raise table.broken(
                "existing-not-found",
                f"GET /items/{ids[index]} answered {reply.shown()}, yet POST /items has just "
                f"created the item with id {ids[index]}.",
            )
        if reply.status != 200 or reply.data != item:
            raise table.broken(
                "read-wrong",
                f"GET /items/{ids[index]} answered {reply.shown()}; expected 200 and "
                f"{clip(json.dumps(item, ensure_ascii=False), 80)}.",
            )


async def _check_replace(
    api: Api, items: list[dict[str, Any]], target: int, new: dict[str, Any]
) -> dict[str, Any]:
    """PUT replaces ``items[target]``, keeping the path's id; returns the replaced item."""
    table = READ_UPDATE_DELETE
    ids = [item["id"] for item in items]
    item_id = ids[target]
    reply = await api.call("PUT", f"/items/{item_id}", {**new, "id": max(ids) + 50})
    _handled(table, reply, "replacing an item")
    expected = {"id": item_id, **new}
    if reply.status != 200 or reply.data != expected:
        raise table.broken(
            "update-wrong",
            f"PUT /items/{item_id} with {clip(json.dumps(new, ensure_ascii=False), 60)} (and an "
            f"`id` of {max(ids) + 50} in the body) answered {reply.shown()}; expected 200 and "
            f"{clip(json.dumps(expected, ensure_ascii=False), 80)} (the id stays the path's).",
        )
    now_items = [*items]
    now_items[target] = expected
    now = [(await _read(api, ident, "reading after PUT")).data for ident in ids]
    if now != now_items:
        raise table.broken(
            "update-wrong",
            f"after PUT /items/{item_id}, the three items read back as {_shown(now, 150)}.",
        )
    return expected


async def _check_refused_update(api: Api, item: dict[str, Any]) -> None:
    """A PUT item_fields refuses (invalid JSON, then a bad field) leaves the item untouched."""
    table = READ_UPDATE_DELETE
    path = f"/items/{item['id']}"
    for what, body, raw in (
        ("PUT with invalid JSON", _NO_BODY, "{oops"),
        ("PUT with a price that is text", {"name": "gel pen", "price": "cheap"}, None),
    ):
        reply = await api.call("PUT", path, body, raw=raw)
        if reply.status == 500:
            raise crashed(
                table, reply, "bad-json-500" if raw is not None else "not-validated", what
            )
        if reply.status != 400:
            raise table.broken("not-validated", _accepted(reply, what))
        if not _is_json_error(reply):
            raise not_a_json_error(table, reply, what)
        after = await _read(api, item["id"], f"reading after a refused {what}")
        if after.data != item:
            raise table.broken(
                "bad-update-stored",
                f"{what} answered 400, yet GET {path} then answered {after.shown()} instead of "
                f"{clip(json.dumps(item, ensure_ascii=False), 70)}.",
            )


async def _check_delete(
    api: Api, creator: _CreateBroken, kept: list[dict[str, Any]], deleted: int
) -> None:
    """DELETE the item with id ``deleted``: 204, then gone; ``kept`` stay."""
    table = READ_UPDATE_DELETE
    reply = await api.call("DELETE", f"/items/{deleted}")
    _handled(table, reply, "deleting an item")
    if reply.status != 204 or reply.text:
        raise table.broken(
            "delete-not-204",
            f"DELETE /items/{deleted} answered {reply.shown()}; a delete with nothing to say "
            "answers 204 No Content, with no body.",
        )
    gone = await _read(api, deleted, "reading a deleted item")
    if gone.status == 200:
        raise table.broken(
            "not-deleted",
            f"DELETE /items/{deleted} answered 204, yet GET /items/{deleted} still answers 200.",
        )
    _expect_unknown(gone, "reading a deleted item")
    left = await creator.listed(api, "after a delete")
    if _by_id(left) != _by_id(kept):
        raise table.broken(
            "deleted-wrong-item",
            f"after DELETE /items/{deleted}, GET /items lists {_shown(_by_id(left), 120)}; "
            f"expected {_shown(_by_id(kept), 120)}: only item {deleted} goes.",
        )
    _expect_unknown(await api.call("DELETE", f"/items/{deleted}"), "deleting an item twice")


@check(READ_UPDATE_DELETE)
async def read_update_delete(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Three items; each read, replaced and deleted by its id, unknown and bad ids refused."""
    rng = random.Random(f"{SEED}-read_update_delete")
    table = READ_UPDATE_DELETE
    app = _app_from(table, learner, "create_full_app")
    creator = _CreateBroken()
    bodies = _items(rng, 5)
    order = [1, *rng.sample([0, 2], 2)]
    replaced = rng.choice([0, 1])
    deleted_index = 1 - replaced  # never the last item: len(items) + 1 then collides
    bad_ids = rng.sample(["abc", "1.5", "one", "12a"], 2)
    async with _served(app) as api:
        items = [await creator.create(api, body, "creating an item") for body in bodies[:3]]
        ids = [item["id"] for item in items]
        await _check_reads(api, items, order)
        unknown = [max(ids) + rng.randrange(50, 150), rng.randrange(10**5, 10**6)]
        for method in ("GET", "PUT", "DELETE"):
            body = bodies[3] if method == "PUT" else _NO_BODY
            for ident in unknown:
                _expect_unknown(
                    await api.call(method, f"/items/{ident}", body), f"{method} of an unknown id"
                )
            for raw in bad_ids:
                _expect_bad_id(await api.call(method, f"/items/{raw}", body), raw)
        items[replaced] = await _check_replace(api, items, replaced, bodies[3])
        await _check_refused_update(api, items[replaced])
        deleted = items[deleted_index]["id"]
        kept = [item for item in items if item["id"] != deleted]
        await _check_delete(api, creator, kept, deleted)
        fresh = await creator.create(api, bodies[4], "creating an item after a delete")
        overwritten = [item for item in kept if item["id"] == fresh["id"]]
        if overwritten:
            raise table.broken(
                "id-reused",
                f"after a delete left the items with ids {[item['id'] for item in kept]}, a new "
                f"item got id {fresh['id']}, the id of "
                f"{clip(json.dumps(overwritten[0], ensure_ascii=False), 60)}: that item was "
                "overwritten.",
            )
    return (
        "GET, PUT and DELETE /items/{id} each act on the item named in the path; a refused PUT "
        "changes nothing; 204 on delete; unknown ids are 404s and non-numeric ones 400s, in "
        "JSON; a new item never takes an id still in use."
    )
