"""Checks for exercise 11, an aiohttp server: ``from local_server.checks import aiohttp_server``.

The learner builds a small in-memory JSON API for items. Every check serves what the learner
wrote with ``serve()`` on its own loop, calls it over HTTP with a ``ClientSession``, and judges
the answers: status codes, headers, JSON bodies and, when a handler crashed, the exception
aiohttp logged for the 500 (collected with ``captured_server_errors()``, quoted as evidence).

- ``item_fields(request)`` is served inside a probe app of the checker's own;
- ``create_app()`` and ``create_full_app()`` must return a fresh ``web.Application``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from ..runner import LocalServer
from ..serving import captured_server_errors, logged_exceptions, serve
from .harness import Mistake, SessionSpy, check, learner_frame

_NO_BODY = object()
_ERROR_CLASSES = {400: "HTTPBadRequest", 404: "HTTPNotFound"}


def json_error_hint(status: int) -> str:
    """How to raise a JSON error of ``status``."""
    name = _ERROR_CLASSES.get(status, "HTTPBadRequest")
    return (
        f'raise it with a JSON body: `raise web.{name}(text=json.dumps({{"error": message}}), '
        'content_type="application/json")`; a `json_error(...)` helper keeps it short.'
    )


@dataclass
class Reply:
    """What one request got back, and what the server logged while answering it."""

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
        """The body, short, for a message."""
        body = self.text if len(self.text) <= 70 else self.text[:67] + "..."
        return f"{self.status} {self.content_type} {body!r}"

    def is_json_error(self) -> bool:
        return (
            self.is_json
            and self.content_type == "application/json"
            and isinstance(self.data, dict)
            and isinstance(self.data.get("error"), str)
            and bool(self.data["error"].strip())
        )


def _describe(exc: BaseException) -> str:
    """``KeyError: 'name' (line 4 of create_item())`` for the exception behind a 500."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frame = learner_frame(exc)
    if frame is not None:
        text += f" (line {frame.lineno} of {frame.name}())"
    return text


@contextlib.asynccontextmanager
async def _served(app: web.Application) -> AsyncIterator[Api]:
    """Serve ``app`` and yield an ``Api`` on it; aiohttp's error log is captured meanwhile."""
    with captured_server_errors() as records:
        async with serve(app) as url, aiohttp.ClientSession(base_url=url) as session:
            yield Api(session, records)


class Api:
    """Calls one served app and pairs each answer with the exception its handler raised."""

    def __init__(self, session: aiohttp.ClientSession, records: list[logging.LogRecord]) -> None:
        self.session = session
        self.records = records

    async def call(
        self, method: str, path: str, body: Any = _NO_BODY, *, raw: str | None = None
    ) -> Reply:
        """Send ``body`` as JSON, or ``raw`` as a body labelled JSON, and read the answer."""
        before = len(self.records)
        options: dict[str, Any] = {}
        if raw is not None:
            options = {"data": raw.encode(), "headers": {"Content-Type": "application/json"}}
        elif body is not _NO_BODY:
            options = {"json": body}
        async with self.session.request(method, path, allow_redirects=False, **options) as resp:
            text = await resp.text()
            reply = Reply(
                method, path, resp.status, resp.content_type, text, resp.headers.get("Location")
            )
        raised = logged_exceptions(self.records[before:])
        if raised:
            reply.raised = raised[-1]
        if isinstance(reply.raised, NotImplementedError):
            raise NotImplementedError
        try:
            reply.data, reply.is_json = json.loads(text), True
        except ValueError:
            pass
        return reply


def crashed(reply: Reply, problem: str, what: str, hint: str) -> Mistake:
    """The Mistake for a 500, quoting what the handler raised."""
    cause = _describe(reply.raised) if reply.raised else "an exception"
    message = f"{what}: {reply.request} answered 500, the handler raised {cause}."
    return Mistake(problem, message, hint)


def not_a_json_error(reply: Reply, what: str) -> Mistake:
    """The Mistake for an error answer that is not ``{"error": "..."}`` labelled JSON."""
    if reply.content_type != "application/json":
        why = f"the body is labelled {reply.content_type}, not application/json"
    elif not reply.is_json:
        why = "the body is not valid JSON (str() of a dict is not JSON: use json.dumps)"
    else:
        why = 'the JSON has no "error" key with a sentence in it'
    return Mistake(
        "error-not-json",
        f"{what}: {reply.request} answered {reply.shown()}: {why}. A JSON API explains its "
        'errors as {"error": "..."} with Content-Type application/json.',
        json_error_hint(reply.status),
    )


def no_route(reply: Reply, route: str) -> Mistake:
    return Mistake(
        "route-missing",
        f"{reply.request} answered {reply.shown()}: the router found no handler for it.",
        f"register the route: `app.router.add_{reply.method.lower()}({route!r}, handler)` or "
        f"`@routes.{reply.method.lower()}({route!r})`.",
    )


def _router_answer(reply: Reply) -> bool:
    """aiohttp's own 404/405 (plain text): no route matched."""
    return reply.status in (404, 405) and reply.content_type == "text/plain"


def _app_from(learner: Any, name: str) -> web.Application:
    app = learner()
    if not isinstance(app, web.Application):
        raise Mistake(
            "not-an-app",
            f"{name}() returned {type(app).__name__}; expected a web.Application.",
            "build one with `app = web.Application()`, add the routes, and `return app`.",
        )
    return app


# --- task 1: item_fields ----------------------------------------------------------------------

VALID_BODIES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"name": "pen", "price": 1.5}, {"name": "pen", "price": 1.5}),
    ({"price": 3, "name": "ink"}, {"name": "ink", "price": 3}),
    ({"name": "cap", "price": 0.5, "id": 99, "owner": "me"}, {"name": "cap", "price": 0.5}),
]
# (what, JSON body or None, raw body or None, hint when it was accepted)
BAD_BODIES: list[tuple[str, Any, str | None, str]] = [
    ("invalid JSON", None, '{"name": "pen",', ""),
    ("an empty body", None, "", ""),
    ("a JSON list", ["pen", 1.5], None, "check `isinstance(data, dict)` first."),
    ("a JSON string", "pen", None, "check `isinstance(data, dict)` first."),
    ("no name", {"price": 1.5}, None, "a missing field is an error, not None."),
    ("no price", {"name": "pen"}, None, "a missing field is an error, not None."),
    ("a name that is a number", {"name": 42, "price": 1.5}, None, "check `isinstance(name, str)`."),
    ("an empty name", {"name": " ", "price": 1.5}, None, "reject a name that is blank."),
    ("a price that is text", {"name": "pen", "price": "cheap"}, None, "check the price's type."),
    (
        "a price that is a number in a string",
        {"name": "pen", "price": "1.5"},
        None,
        'the JSON string "1.5" is text, not a number: check the type with isinstance(); do '
        "not convert it with float().",
    ),
    (
        "a price that is true",
        {"name": "pen", "price": True},
        None,
        "JSON `true` arrives as Python True, and bool is a subclass of int: reject bool "
        "explicitly, e.g. `isinstance(price, bool) or not isinstance(price, (int, float))`.",
    ),
]


def _probe_app(learner: Any, results: list[Any]) -> web.Application:
    async def probe(request: web.Request) -> web.Response:
        outcome = learner(request)
        if not inspect.isawaitable(outcome):
            results.append(("not-async", outcome))
            return web.json_response({})
        results.append(("fields", await outcome))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/probe", probe)
    return app


async def _judge_valid_body(
    api: Api, results: list[Any], body: dict[str, Any], expected: dict[str, Any]
) -> None:
    """A valid item must parse to exactly ``expected``."""
    results.clear()
    reply = await api.call("POST", "/probe", body)
    what = f"a valid item {json.dumps(body)}"
    if reply.status == 500:
        raise crashed(reply, "server-error", what, "")
    if results and results[0][0] == "not-async":
        raise Mistake(
            "not-async",
            f"item_fields(request) returned {type(results[0][1]).__name__}, not a coroutine.",
            "define it with `async def`: reading the body is `await request.json()`.",
        )
    if reply.status != 200:
        raise Mistake(
            "valid-rejected",
            f"{what} was refused: {reply.shown()}.",
            "a name that is a non-blank string and a price that is a number (int or float) "
            "are valid.",
        )
    fields = results[0][1]
    if not isinstance(fields, dict):
        raise Mistake(
            "wrong-return",
            f"for {what} item_fields returned {fields!r:.60}; expected a dict.",
            'return `{"name": name, "price": price}`.',
        )
    if set(fields) - {"name", "price"} and set(fields) >= {"name", "price"}:
        raise Mistake(
            "extra-fields-kept",
            f"for {what} item_fields returned {fields}: the client's extra fields came "
            "through, so a client could choose its own id.",
            "return a new dict with only the fields you accept: name and price.",
        )
    if fields != expected:
        raise Mistake(
            "wrong-return",
            f"for {what} item_fields returned {fields}; expected {expected}.",
            'return `{"name": name, "price": price}` with the values as sent.',
        )


async def _judge_bad_body(
    api: Api, results: list[Any], what: str, body: Any, raw: str | None, hint: str
) -> None:
    """A body the server cannot use must be refused with a 400 JSON error."""
    results.clear()
    reply = await api.call("POST", "/probe", _NO_BODY if body is None else body, raw=raw)
    sent = f"a request with {what} ({repr(raw) if raw is not None else json.dumps(body)})"
    if reply.status == 500:
        raise crashed(
            reply,
            "bad-json-500" if raw is not None else "bad-input-500",
            sent,
            "bad input is the client's mistake: catch it and raise web.HTTPBadRequest (400) "
            "with a JSON body"
            + (
                "; `request.json()` raises json.JSONDecodeError (a ValueError)."
                if raw is not None
                else "; check each field before you use it."
            ),
        )
    if 200 <= reply.status < 300:
        got = results[0][1] if results else None
        if isinstance(got, web.HTTPException):
            raise Mistake(
                "returned-not-raised",
                f"{sent}: item_fields returned {got!r} instead of raising it, so the "
                "handler carried on as if the body were valid.",
                "`raise json_error(web.HTTPBadRequest, ...)`: raising stops the handler and "
                "aiohttp sends the error as the answer.",
            )
        raise Mistake(
            "bad-input-accepted",
            f"{sent} was accepted: item_fields returned {got!r}.",
            hint or "answer it with a 400 JSON error.",
        )
    if reply.status != 400:
        raise Mistake(
            "wrong-status",
            f"{sent} answered {reply.status}; expected 400 Bad Request.",
            "a body the server cannot use is a 400: `web.HTTPBadRequest`.",
        )
    if not reply.is_json_error():
        raise not_a_json_error(reply, sent)


@check("item_fields")
async def item_fields(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Serve the learner's parser behind POST /probe; valid bodies parse, bad ones get 400."""
    results: list[Any] = []
    async with _served(_probe_app(learner, results)) as api:
        for body, expected in VALID_BODIES:
            await _judge_valid_body(api, results, body, expected)
        for what, body, raw, hint in BAD_BODIES:
            await _judge_bad_body(api, results, what, body, raw, hint)
    return (
        "valid items parsed to exactly name and price; invalid JSON, a non-object, missing, "
        "blank and wrongly typed fields each answered 400 with a JSON error."
    )


# --- task 2: create_and_list -----------------------------------------------------------------


def _handled(reply: Reply, route: str, what: str) -> Reply:
    """``reply`` if the learner's handler for ``route`` answered it without crashing."""
    if _router_answer(reply):
        raise no_route(reply, route)
    if reply.status == 500:
        raise crashed(reply, "server-error", what, "")
    return reply


async def create(api: Api, body: dict[str, Any], what: str) -> dict[str, Any]:
    """POST /items and judge the answer: 201, the item with an int id, a Location header."""
    reply = _handled(await api.call("POST", "/items", body), "/items", what)
    if reply.status == 200:
        raise Mistake(
            "create-not-201",
            f"{what}: POST /items answered 200 OK; a request that created something answers "
            "201 Created.",
            "`web.json_response(item, status=201, headers={'Location': f'/items/{item_id}'})`.",
        )
    if reply.status != 201:
        raise Mistake(
            "create-failed", f"{what}: POST /items answered {reply.shown()}; expected 201.", ""
        )
    item = reply.data
    if not reply.is_json or not isinstance(item, dict):
        raise Mistake(
            "not-json",
            f"{what}: POST /items answered {reply.shown()}; expected the new item as a JSON "
            "object.",
            "return `web.json_response(item, status=201, ...)`.",
        )
    item_id = item.get("id")
    if not isinstance(item_id, int) or isinstance(item_id, bool):
        raise Mistake(
            "wrong-item",
            f"{what}: the new item {item} has no integer id.",
            "give each item an integer id, e.g. from a counter kept on the app.",
        )
    if {key: item.get(key) for key in body} != body or set(item) != {"id", *body}:
        raise Mistake(
            "wrong-item",
            f"{what}: sent {json.dumps(body)}, got back {json.dumps(item)}.",
            "answer the stored item: its id plus the name and price that were sent.",
        )
    if reply.location is None:
        raise Mistake(
            "no-location",
            f"{what}: the 201 has no Location header; it tells the client where the new item "
            "lives.",
            "add `headers={'Location': f'/items/{item_id}'}` to the response.",
        )
    if URL(reply.location).path != f"/items/{item_id}":
        raise Mistake(
            "wrong-location",
            f"{what}: Location is {reply.location!r} for the item with id {item_id}; expected "
            f"'/items/{item_id}'.",
            "the Location is the path of the new item: `f'/items/{item_id}'`.",
        )
    return item


async def list_items(api: Api, what: str) -> list[Any]:
    reply = _handled(await api.call("GET", "/items"), "/items", what)
    if reply.status != 200 or not reply.is_json or not isinstance(reply.data, list):
        raise Mistake(
            "list-wrong",
            f"{what}: GET /items answered {reply.shown()}; expected 200 and a JSON list of items.",
            "`web.json_response(list(items.values()))`.",
        )
    return reply.data


def _by_id(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda item: item.get("id", 0) if isinstance(item, dict) else 0)


@check("create_and_list")
async def create_and_list(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Two apps from create_app(): create and list on one; the other must stay empty."""
    first, second = _app_from(learner, "create_app"), _app_from(learner, "create_app")
    if first is second:
        raise Mistake(
            "same-app",
            "create_app() returned the same Application object twice.",
            "build a new `web.Application()` inside create_app(), on each call.",
        )
    async with _served(first) as a, _served(second) as b:
        if await list_items(a, "a new app") != []:
            raise Mistake(
                "not-empty",
                "GET /items on a new app did not answer an empty list.",
                "start each app with an empty store: `app[ITEMS] = {}` in create_app().",
            )
        pen = await create(a, {"name": "pen", "price": 1.5}, "creating a pen")
        ink = await create(a, {"name": "ink", "price": 3}, "creating ink")
        if pen["id"] == ink["id"]:
            raise Mistake(
                "same-id",
                f"two items created one after the other both got id {pen['id']}.",
                "take each id from a counter that moves on: `next(app[NEXT_ID])`.",
            )
        listed = await list_items(a, "after creating two items")
        if _by_id(listed) != _by_id([pen, ink]):
            raise Mistake(
                "list-wrong",
                f"after creating {json.dumps(pen)} and {json.dumps(ink)}, GET /items "
                f"answered {json.dumps(listed)[:120]}.",
                "list every stored item: `list(request.app[ITEMS].values())`.",
            )
        reply = await a.call("POST", "/items", raw='{"name": "cap", ')
        if reply.status == 500:
            raise crashed(
                reply,
                "bad-json-500",
                "invalid JSON",
                "read the body with your item_fields(request) from task 1.",
            )
        if reply.status != 400:
            raise Mistake(
                "not-validated",
                f"POST /items with invalid JSON answered {reply.shown()}; expected 400.",
                "read the body with your item_fields(request) from task 1.",
            )
        if not reply.is_json_error():
            raise not_a_json_error(reply, "invalid JSON")
        if len(await list_items(a, "after a refused POST")) != 2:
            raise Mistake(
                "bad-input-stored",
                "a POST /items answered 400 but GET /items then listed a new item.",
                "validate first, store only a valid item.",
            )
        seen_by_second = await list_items(b, "on a second app")
        if seen_by_second:
            raise Mistake(
                "shared-state",
                f"two items were created on one app, and a second app from "
                f"create_app() lists {len(seen_by_second)} items too: they share one "
                "store (a module-level dict?).",
                "create the store inside create_app() and keep it on the app: "
                "`app[ITEMS] = {}`; handlers read `request.app[ITEMS]`.",
            )
    return (
        "POST /items answers 201 with the new item and its Location; GET /items lists them; "
        "each app from create_app() has its own store."
    )


# --- task 3: read_update_delete --------------------------------------------------------------


def _expect_unknown(reply: Reply, what: str) -> None:
    """An id that does not exist: a 404 with a JSON error."""
    if reply.status == 500:
        raise crashed(
            reply,
            "unknown-id-500",
            what,
            "look the id up with `items.get(item_id)` or `in`, and raise web.HTTPNotFound "
            "(404) with a JSON body when it is missing.",
        )
    if reply.status != 404:
        raise Mistake(
            "unknown-id-not-404",
            f"{what}: {reply.request} answered {reply.shown()}; expected 404 Not Found.",
            "an id that is not in the store is a 404: raise web.HTTPNotFound with a JSON body.",
        )
    if not reply.is_json_error():
        raise not_a_json_error(reply, what)


def _expect_bad_id(reply: Reply) -> None:
    what = "an id that is not a number"
    if reply.status == 500:
        raise crashed(
            reply,
            "bad-id-500",
            what,
            "`int(request.match_info['id'])` raises ValueError for 'abc': catch it and raise "
            "web.HTTPBadRequest (400) with a JSON body.",
        )
    if reply.status == 404 and not reply.is_json_error():
        raise Mistake(
            "bad-id-not-400",
            f"{what}: {reply.request} answered {reply.shown()}, the router's own 404: the "
            "route pattern refused it before your handler ran.",
            "match `/items/{id}` and convert the id in the handler, raising a 400 JSON error "
            "when it is not an integer.",
        )
    if reply.status != 400:
        raise Mistake(
            "bad-id-not-400",
            f"{what}: {reply.request} answered {reply.shown()}; expected 400 Bad Request.",
            "raise web.HTTPBadRequest with a JSON body when int() of the id fails.",
        )
    if not reply.is_json_error():
        raise not_a_json_error(reply, what)


async def _read(api: Api, item_id: int, what: str) -> Reply:
    return _handled(await api.call("GET", f"/items/{item_id}"), "/items/{id}", what)


async def _check_reads(api: Api, items: list[dict[str, Any]]) -> None:
    """Each id gives its own item (the middle one first: it is neither end)."""
    ids = [item["id"] for item in items]
    for index in (1, 0, 2):
        item = items[index]
        reply = await _read(api, ids[index], f"reading item {ids[index]}")
        if reply.status == 200 and reply.is_json and reply.data != item:
            other = reply.data.get("id") if isinstance(reply.data, dict) else None
            if other in ids:
                raise Mistake(
                    "ignores-id",
                    f"GET /items/{ids[index]} answered the item with id {other}: the handler "
                    "does not use the id in the path.",
                    "read it from the path: `int(request.match_info['id'])`.",
                )
        if reply.status == 404:
            raise Mistake(
                "existing-not-found",
                f"GET /items/{ids[index]} answered {reply.shown()}, yet POST /items has just "
                f"created the item with id {ids[index]}.",
                "`request.match_info['id']` is a string ('2'), and the store's keys are ints: "
                "convert it with `int(...)` before the lookup.",
            )
        if reply.status != 200 or reply.data != item:
            raise Mistake(
                "read-wrong",
                f"GET /items/{ids[index]} answered {reply.shown()}; expected 200 and "
                f"{json.dumps(item)}.",
                "`web.json_response(items[item_id])`.",
            )
    unknown = max(ids) + 100
    _expect_unknown(await api.call("GET", f"/items/{unknown}"), "reading an unknown id")
    _expect_bad_id(await api.call("GET", "/items/abc"))


async def _check_replace(api: Api, items: list[dict[str, Any]]) -> dict[str, Any]:
    """PUT replaces the middle item, keeping the path's id; returns the replaced item."""
    ids = [item["id"] for item in items]
    new = {"name": "gel pen", "price": 2.5}
    reply = await api.call("PUT", f"/items/{ids[1]}", {**new, "id": 999})
    _handled(reply, "/items/{id}", "replacing an item")
    expected = {"id": ids[1], **new}
    if reply.status != 200 or reply.data != expected:
        raise Mistake(
            "update-wrong",
            f"PUT /items/{ids[1]} with {json.dumps(new)} answered {reply.shown()}; expected "
            f"200 and {json.dumps(expected)} (the id stays the one in the path).",
            "replace the stored item with `{'id': item_id, **fields}` and answer it.",
        )
    now = [(await _read(api, item_id, "reading after PUT")).data for item_id in ids]
    if now != [items[0], expected, items[2]]:
        raise Mistake(
            "update-wrong",
            f"after PUT /items/{ids[1]}, the three items read back as {json.dumps(now)[:150]}.",
            "store the new item under the id from the path; leave the others alone.",
        )
    _expect_unknown(
        await api.call("PUT", f"/items/{max(ids) + 100}", new), "replacing an unknown id"
    )
    reply = await api.call("PUT", f"/items/{ids[1]}", raw="{oops")
    if reply.status == 500:
        raise crashed(reply, "bad-json-500", "PUT with invalid JSON", "use item_fields(request).")
    if reply.status != 400 or not reply.is_json_error():
        raise Mistake(
            "not-validated",
            f"PUT /items/{ids[1]} with invalid JSON answered {reply.shown()}; expected a 400 "
            "JSON error.",
            "read the body with your item_fields(request) from task 1.",
        )
    _expect_bad_id(await api.call("PUT", "/items/abc", new))
    return expected


async def _check_delete(api: Api, kept: list[dict[str, Any]], deleted: int) -> None:
    """DELETE the item with id ``deleted``: 204, then gone; ``kept`` stay."""
    reply = await api.call("DELETE", f"/items/{deleted}")
    _handled(reply, "/items/{id}", "deleting an item")
    if reply.status != 204:
        raise Mistake(
            "delete-not-204",
            f"DELETE /items/{deleted} answered {reply.status}; a delete with nothing to say "
            "answers 204 No Content.",
            "`return web.Response(status=204)`.",
        )
    gone = await _read(api, deleted, "reading a deleted item")
    if gone.status == 200:
        raise Mistake(
            "not-deleted",
            f"DELETE /items/{deleted} answered 204, yet GET /items/{deleted} still answers 200.",
            "remove it from the store: `del items[item_id]`.",
        )
    _expect_unknown(gone, "reading a deleted item")
    left = await list_items(api, "after a delete")
    if _by_id(left) != kept:
        raise Mistake(
            "deleted-wrong-item",
            f"after DELETE /items/{deleted}, GET /items lists {json.dumps(_by_id(left))[:150]}.",
            "delete the item whose id is in the path.",
        )
    _expect_unknown(await api.call("DELETE", f"/items/{deleted}"), "deleting an item twice")
    _expect_bad_id(await api.call("DELETE", "/items/abc"))


async def _check_new_id_after_delete(api: Api, kept: list[dict[str, Any]]) -> None:
    """An item created after a delete must not take the id of an item still stored."""
    fresh = await create(api, {"name": "ruler", "price": 4}, "creating an item after a delete")
    overwritten = [item for item in kept if item["id"] == fresh["id"]]
    if overwritten:
        raise Mistake(
            "id-reused",
            f"after a delete left the items with ids {[item['id'] for item in kept]}, a new "
            f"item got id {fresh['id']}, the id of {json.dumps(overwritten[0])}: that item "
            "was overwritten.",
            "`len(items) + 1` gives an id still in use once an item was deleted: take ids "
            "from a counter kept on the app, `next(request.app[NEXT_ID])`.",
        )


@check("read_update_delete")
async def read_update_delete(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Three items; each read, replaced and deleted by its id, unknown and bad ids refused."""
    app = _app_from(learner, "create_full_app")
    async with _served(app) as api:
        items = [
            await create(api, {"name": name, "price": price}, f"creating {name}")
            for name, price in (("pen", 1.5), ("ink", 3), ("cap", 0.5))
        ]
        await _check_reads(api, items)
        items[1] = await _check_replace(api, items)
        kept = [items[0], items[2]]
        await _check_delete(api, kept, items[1]["id"])
        await _check_new_id_after_delete(api, kept)
    return (
        "GET, PUT and DELETE /items/{id} each act on the item named in the path; 204 on "
        "delete; an unknown id is a 404 and a non-numeric one a 400, both in JSON; a new item "
        "never takes an id still in use."
    )
