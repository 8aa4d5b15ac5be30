"""Learner answers to exercise 11 (aiohttp server), right and wrong, from the task text."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from aiohttp import web

from adversarial import correct, wrong
from local_server.checks import aiohttp_server as check

ITEMS = web.AppKey("items", dict[int, dict[str, Any]])
NEXT_ID = web.AppKey("next_id", itertools.count)


# --- shared, correct pieces (what a learner has after task 1) -------------------------------


def json_error(error_class: type[web.HTTPException], message: str) -> web.HTTPException:
    return error_class(text=json.dumps({"error": message}), content_type="application/json")


def _valid_price(price: object) -> bool:
    return isinstance(price, int | float) and not isinstance(price, bool)


async def item_fields(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


def item_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the id must be a number") from None


def stored_item(request: web.Request) -> dict[str, Any]:
    ident = item_id(request)
    try:
        return request.app[ITEMS][ident]
    except KeyError:
        raise json_error(web.HTTPNotFound, f"no item {ident}") from None


async def create_item(request: web.Request) -> web.Response:
    fields = await item_fields(request)
    item = {"id": next(request.app[NEXT_ID]), **fields}
    request.app[ITEMS][item["id"]] = item
    return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})


async def list_items(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[ITEMS].values()))


async def read_item(request: web.Request) -> web.Response:
    return web.json_response(stored_item(request))


async def replace_item(request: web.Request) -> web.Response:
    item = stored_item(request)
    fields = await item_fields(request)
    new = {"id": item["id"], **fields}
    request.app[ITEMS][item["id"]] = new
    return web.json_response(new)


async def delete_item(request: web.Request) -> web.Response:
    item = stored_item(request)
    del request.app[ITEMS][item["id"]]
    return web.Response(status=204)


def _app_with(create=create_item, listing=list_items) -> web.Application:
    app = web.Application()
    app[ITEMS] = {}
    app[NEXT_ID] = itertools.count(1)
    app.router.add_post("/items", create)
    app.router.add_get("/items", listing)
    return app


def _full_app_with(read=read_item, replace=replace_item, delete=delete_item,
                   create=create_item) -> web.Application:
    app = _app_with(create=create)
    app.router.add_get("/items/{id}", read)
    app.router.add_put("/items/{id}", replace)
    app.router.add_delete("/items/{id}", delete)
    return app


def _probe(fields_reader):
    """What a check of item_fields would see: the reader's result as JSON."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await fields_reader(request))

    return echo


# --- Task 1 · item_fields --------------------------------------------------------------------


@correct(check.item_fields, "the lesson's try/except ValueError, isinstance checks, bool excluded")
async def item_fields_isinstance(request):
    return await item_fields(request)


@correct(check.item_fields, "structural pattern matching, type() in (int, float)")
async def item_fields_match(request):
    try:
        data = await request.json()
    except json.JSONDecodeError:
        raise json_error(web.HTTPBadRequest, "invalid JSON") from None
    match data:
        case {"name": str(name), "price": price} if name.strip() and type(price) in (int, float):
            return {"name": name, "price": price}
        case dict():
            raise json_error(web.HTTPBadRequest, "need a non-blank name and a numeric price")
        case _:
            raise json_error(web.HTTPBadRequest, "the body must be a JSON object")


def _json_error_via_header(error_class, message):
    return error_class(text=json.dumps({"error": message}),
                       headers={"Content-Type": "application/json"})


@correct(check.item_fields, "json_error sets Content-Type through headers=, errors collected")
async def item_fields_collects_problems(request):
    try:
        data = await request.json()
    except ValueError:
        raise _json_error_via_header(web.HTTPBadRequest, "the body is not JSON") from None
    if type(data) is not dict:
        raise _json_error_via_header(web.HTTPBadRequest, "expected a JSON object")
    problems = []
    if not (isinstance(data.get("name"), str) and data["name"].strip()):
        problems.append("name must be a non-blank string")
    if isinstance(data.get("price"), bool) or not isinstance(data.get("price"), int | float):
        problems.append("price must be a number")
    if problems:
        raise _json_error_via_header(web.HTTPBadRequest, "; ".join(problems))
    return {key: data[key] for key in ("name", "price")}


@correct(check.item_fields, "json_error builds the body bytes with body= and content_type=")
async def item_fields_body_bytes(request):
    def error(message):
        payload = json.dumps({"error": message}).encode()
        return web.HTTPBadRequest(body=payload, content_type="application/json")

    try:
        data = await request.json()
    except ValueError:
        raise error("malformed JSON") from None
    if not isinstance(data, dict):
        raise error("not an object")
    name = data.get("name")
    price = data.get("price")
    if not isinstance(name, str) or name.strip() == "":
        raise error("bad name")
    if not _valid_price(price):
        raise error("bad price")
    return dict(name=name, price=price)


@wrong(check.item_fields, "does not catch invalid JSON: request.json() raises, a 500",
       rule="raises a 400 JSON error when the body is not JSON",
       problem="bad-json-500")
async def item_fields_unguarded_json(request):
    data = await request.json()
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "accepts true as a price: isinstance(True, int) is True",
       rule="Careful: JSON `true` arrives as Python `True`, and `bool` is a subclass of `int`",
       problem="bool-price-accepted")
async def item_fields_accepts_bool(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not isinstance(price, int | float):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "validates, then returns the whole body: a client `id` stays",
       rule="returns a **new** dict with exactly `name` and `price` ... Extra fields are dropped",
       problem="extra-fields-kept")
async def item_fields_keeps_extra_fields(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(data.get("price")):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return data


@wrong(check.item_fields, "checks `if not name`: a name of spaces passes",
       rule="`name` is not a non-blank string",
       problem="blank-name-accepted")
async def item_fields_blank_name_passes(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name:
        raise json_error(web.HTTPBadRequest, "name is required")
    if not _valid_price(price):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "never checks the body is an object: a JSON list crashes into a 500",
       rule="raises a 400 JSON error when the body is ... not a JSON object",
       problem="bad-input-500")
async def item_fields_list_body_crashes(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "coerces the price with float(): the string \"1.5\" is accepted",
       rule="raises a 400 JSON error when ... `price` is not a number",
       problem="price-converted")
async def item_fields_coerces_price(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    try:
        price = float(data.get("price"))
    except (TypeError, ValueError):
        raise json_error(web.HTTPBadRequest, "price must be a number") from None
    return {"name": name, "price": price}


@wrong(check.item_fields, "reads fields with data['name']: a missing field is a KeyError 500",
       rule="raises a 400 JSON error when ... a missing or wrongly typed field",
       problem="bad-input-500")
async def item_fields_missing_field_crashes(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data["name"], data["price"]
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "answers a bad field with 422 Unprocessable Entity instead of 400",
       rule="raises a 400 JSON error when ... `name` is not a non-blank string, or `price` ...",
       problem="wrong-status")
async def item_fields_422_for_bad_fields(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPUnprocessableEntity, "name must be a non-blank string")
    if not _valid_price(price):
        raise json_error(web.HTTPUnprocessableEntity, "price must be a number")
    return {"name": name, "price": price}


def _json_error_plain_text(error_class, message):
    return error_class(text=json.dumps({"error": message}))


@wrong(check.item_fields, "json_error forgets content_type=: the error body is JSON in text/plain",
       rule='A JSON error is `{"error": ...}` with `Content-Type: application/json`',
       problem="error-not-json")
async def item_fields_error_in_text_plain(request):
    try:
        data = await request.json()
    except ValueError:
        raise _json_error_plain_text(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _json_error_plain_text(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise _json_error_plain_text(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise _json_error_plain_text(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


def _json_error_message_key(error_class, message):
    return error_class(text=json.dumps({"message": message}), content_type="application/json")


@wrong(check.item_fields, 'json_error writes {"message": ...} instead of {"error": ...}',
       rule='whose body is `{"error": message}` as JSON',
       problem="error-not-json")
async def item_fields_message_key(request):
    try:
        data = await request.json()
    except ValueError:
        raise _json_error_message_key(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _json_error_message_key(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise _json_error_message_key(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        raise _json_error_message_key(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "returns the 400 error object instead of raising it",
       rule="raises a 400 JSON error ... you `raise` what it returns",
       problem="returned-not-raised")
async def item_fields_returns_error(request):
    try:
        data = await request.json()
    except ValueError:
        return json_error(web.HTTPBadRequest, "the body is not valid JSON")
    if not isinstance(data, dict):
        return json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        return json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not _valid_price(price):
        return json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


# --- Task 2 · create_and_list ----------------------------------------------------------------


@correct(check.create_and_list, "add_post/add_get with plain handlers")
def create_app_add_routes():
    return _app_with()


_routes = web.RouteTableDef()


@_routes.post("/items")
async def _rt_create(request):
    fields = await item_fields(request)
    ident = next(request.app[NEXT_ID])
    request.app[ITEMS][ident] = item = {"id": ident, **fields}
    return web.json_response(item, status=web.HTTPCreated.status_code,
                             headers={"Location": f"/items/{ident}"})


@_routes.get("/items")
async def _rt_list(request):
    return web.json_response([item for _, item in sorted(request.app[ITEMS].items())])


@correct(check.create_and_list, "a RouteTableDef, the status from web.HTTPCreated, sorted list")
def create_app_route_table():
    app = web.Application()
    app[ITEMS] = {}
    app[NEXT_ID] = itertools.count(1)
    app.add_routes(_routes)
    return app


class _ItemsView(web.View):
    async def get(self):
        return web.json_response(list(self.request.app[ITEMS].values()))

    async def post(self):
        fields = await item_fields(self.request)
        ident = next(self.request.app[NEXT_ID])
        item = self.request.app[ITEMS][ident] = {"id": ident, **fields}
        response = web.json_response(item, status=201)
        response.headers["Location"] = f"/items/{ident}"
        return response


@correct(check.create_and_list, "a class-based web.View for /items, Location set after building")
def create_app_class_view():
    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_view("/items", _ItemsView)
    return app


def _named_resource_app():
    app = web.Application()
    app[ITEMS] = {}
    app[NEXT_ID] = itertools.count(1)

    async def create(request):
        fields = await item_fields(request)
        ident = next(request.app[NEXT_ID])
        item = {"id": ident, **fields}
        request.app[ITEMS][ident] = item
        url = request.app.router["one_item"].url_for(id=str(ident))
        return web.json_response(item, status=201, headers={"Location": str(url)})

    app.router.add_post("/items", create)
    app.router.add_get("/items", list_items)
    app.router.add_get("/items/{id}", read_item, name="one_item")
    return app


@correct(check.create_and_list, "Location built with url_for on a named route")
def create_app_url_for():
    return _named_resource_app()


async def _create_200(request):
    fields = await item_fields(request)
    item = {"id": next(request.app[NEXT_ID]), **fields}
    request.app[ITEMS][item["id"]] = item
    return web.json_response(item, headers={"Location": f"/items/{item['id']}"})


@wrong(check.create_and_list, "answers a creation with 200 instead of 201",
       rule="`POST /items` ... **201**",
       problem="create-not-201")
def create_app_answers_200():
    return _app_with(create=_create_200)


async def _create_no_location(request):
    fields = await item_fields(request)
    item = {"id": next(request.app[NEXT_ID]), **fields}
    request.app[ITEMS][item["id"]] = item
    return web.json_response(item, status=201)


@wrong(check.create_and_list, "forgets the Location header",
       rule="a `Location` header with its path",
       problem="no-location")
def create_app_no_location():
    return _app_with(create=_create_no_location)


async def _create_location_collection(request):
    fields = await item_fields(request)
    item = {"id": next(request.app[NEXT_ID]), **fields}
    request.app[ITEMS][item["id"]] = item
    return web.json_response(item, status=201, headers={"Location": "/items"})


@wrong(check.create_and_list, "Location points at the collection, /items, not at /items/1",
       rule="header `Location: /items/1`",
       problem="wrong-location")
def create_app_location_is_collection():
    return _app_with(create=_create_location_collection)


_GLOBAL_ITEMS: dict[int, dict[str, Any]] = {}
_GLOBAL_IDS = itertools.count(1)


async def _create_global(request):
    fields = await item_fields(request)
    item = {"id": next(_GLOBAL_IDS), **fields}
    _GLOBAL_ITEMS[item["id"]] = item
    return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})


async def _list_global(request):
    return web.json_response(list(_GLOBAL_ITEMS.values()))


@wrong(check.create_and_list, "keeps the store in a module-level dict that every app shares",
       rule="returns a **new** `web.Application` with its own empty store on each call",
       problem="shared-state")
def create_app_module_global_store():
    app = web.Application()
    app.router.add_post("/items", _create_global)
    app.router.add_get("/items", _list_global)
    return app


_SHARED_STORE: dict[int, dict[str, Any]] = {}


@wrong(check.create_and_list, "puts the same module-level dict under ITEMS in every app",
       rule="its own empty store on each call: `app[ITEMS] = {}`",
       problem="shared-state")
def create_app_shared_dict_under_key():
    app = web.Application()
    app[ITEMS] = _SHARED_STORE
    app[NEXT_ID] = itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_items)
    return app


async def _list_as_dict(request):
    return web.json_response({str(k): v for k, v in request.app[ITEMS].items()})


@wrong(check.create_and_list, "GET /items answers the store dict {id: item}, not a list",
       rule="`GET /items` (a JSON list of every item)",
       problem="list-wrong")
def create_app_lists_a_dict():
    return _app_with(listing=_list_as_dict)


async def _list_wrapped(request):
    return web.json_response({"items": list(request.app[ITEMS].values())})


@wrong(check.create_and_list, 'GET /items wraps the list: {"items": [...]}',
       rule="`GET /items` (a JSON list of every item)",
       problem="list-wrong")
def create_app_list_wrapped():
    return _app_with(listing=_list_wrapped)


async def _create_without_validation(request):
    data = await request.json()
    item = {"id": next(request.app[NEXT_ID]), "name": data["name"], "price": data["price"]}
    request.app[ITEMS][item["id"]] = item
    return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})


@wrong(check.create_and_list, "reads the body with request.json() directly, not item_fields",
       rule="Use `item_fields` for the body.",
       problem="bad-json-500")
def create_app_skips_item_fields():
    return _app_with(create=_create_without_validation)


async def _create_without_id(request):
    fields = await item_fields(request)
    ident = next(request.app[NEXT_ID])
    request.app[ITEMS][ident] = {"id": ident, **fields}
    return web.json_response(fields, status=201, headers={"Location": f"/items/{ident}"})


@wrong(check.create_and_list, "answers the creation with the fields only, without the new id",
       rule='**201**, the new item `{"id": 1, "name": "pen", "price": 1.5}`',
       problem="wrong-item")
def create_app_answer_lacks_id():
    return _app_with(create=_create_without_id)


async def _create_string_keys(request):
    fields = await item_fields(request)
    item = {"id": next(request.app["next_id"]), **fields}
    request.app["items"][item["id"]] = item
    return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})


async def _list_string_keys(request):
    return web.json_response(list(request.app["items"].values()))


@wrong(check.create_and_list, "stores the state under string keys app['items'], not the AppKeys",
       rule="`app[ITEMS] = {}` and ... `app[NEXT_ID] = itertools.count(1)`",
       problem="string-key")
def create_app_string_keys():
    app = web.Application()
    app["items"] = {}
    app["next_id"] = itertools.count(1)
    app.router.add_post("/items", _create_string_keys)
    app.router.add_get("/items", _list_string_keys)
    return app


# --- Task 3 · read_update_delete -------------------------------------------------------------


@correct(check.read_update_delete, "add_get/add_put/add_delete on /items/{id}")
def create_full_app_plain():
    return _full_app_with()


class _ItemView(web.View):
    def _id(self):
        raw = self.request.match_info["id"]
        if not re.fullmatch(r"[0-9]+", raw):
            raise json_error(web.HTTPBadRequest, f"id must be a number, got {raw!r}")
        return int(raw)

    def _item(self):
        ident = self._id()
        if ident not in self.request.app[ITEMS]:
            raise json_error(web.HTTPNotFound, f"item {ident} does not exist")
        return self.request.app[ITEMS][ident]

    async def get(self):
        return web.json_response(self._item())

    async def put(self):
        ident = self._item()["id"]
        self.request.app[ITEMS][ident] = {"id": ident, **await item_fields(self.request)}
        return web.json_response(self.request.app[ITEMS][ident])

    async def delete(self):
        self.request.app[ITEMS].pop(self._item()["id"])
        return web.Response(status=204)


@correct(check.read_update_delete, "a class-based web.View, the id checked with a regex")
def create_full_app_class_view():
    app = _app_with()
    app.router.add_view("/items/{id}", _ItemView)
    return app


_item_routes = web.RouteTableDef()


@_item_routes.get("/items/{id}")
async def _rt_read(request):
    return web.json_response(stored_item(request))


@_item_routes.put("/items/{id}")
async def _rt_replace(request):
    item = stored_item(request)
    fields = await item_fields(request)
    item.clear()
    item.update({"id": item_id(request), **fields})
    return web.json_response(item)


@_item_routes.delete("/items/{id}")
async def _rt_delete(request):
    request.app[ITEMS].pop(stored_item(request)["id"])
    raise web.HTTPNoContent()


@correct(check.read_update_delete, "RouteTableDef, PUT updates the dict in place, DELETE raises "
         "HTTPNoContent")
def create_full_app_route_table():
    app = _app_with()
    app.add_routes(_item_routes)
    return app


async def _create_max_plus_one(request):
    fields = await item_fields(request)
    ident = max(request.app[ITEMS], default=0) + 1
    request.app[ITEMS][ident] = item = {"id": ident, **fields}
    return web.json_response(item, status=201, headers={"Location": f"/items/{ident}"})


@correct(check.read_update_delete, "ids from max(stored ids) + 1: never one a stored item has")
def create_full_app_max_plus_one():
    return _full_app_with(create=_create_max_plus_one)


@wrong(check.read_update_delete, "matches /items/{id:\\d+}: `abc` gets the router's plain 404",
       rule="so match `/items/{id}`, not `/items/{id:\\d+}`",
       problem="bad-id-not-400")
def create_full_app_digit_pattern():
    app = _app_with()
    app.router.add_get(r"/items/{id:\d+}", read_item)
    app.router.add_put(r"/items/{id:\d+}", replace_item)
    app.router.add_delete(r"/items/{id:\d+}", delete_item)
    return app


def _stored_unguarded_id(request):
    ident = int(request.match_info["id"])
    if ident not in request.app[ITEMS]:
        raise json_error(web.HTTPNotFound, f"no item {ident}")
    return request.app[ITEMS][ident]


async def _read_unguarded(request):
    return web.json_response(_stored_unguarded_id(request))


async def _replace_unguarded(request):
    item = _stored_unguarded_id(request)
    new = {"id": item["id"], **await item_fields(request)}
    request.app[ITEMS][item["id"]] = new
    return web.json_response(new)


async def _delete_unguarded(request):
    del request.app[ITEMS][_stored_unguarded_id(request)["id"]]
    return web.Response(status=204)


@wrong(check.read_update_delete, "int(match_info['id']) unguarded: /items/abc is a 500",
       rule="`item_id(request)` ... raises a **400** JSON error when it is not a number",
       problem="bad-id-500")
def create_full_app_id_unguarded():
    return _full_app_with(read=_read_unguarded, replace=_replace_unguarded,
                          delete=_delete_unguarded)


def _stored_keyerror(request):
    return request.app[ITEMS][item_id(request)]


async def _read_keyerror(request):
    return web.json_response(_stored_keyerror(request))


async def _replace_keyerror(request):
    item = _stored_keyerror(request)
    new = {"id": item["id"], **await item_fields(request)}
    request.app[ITEMS][item["id"]] = new
    return web.json_response(new)


async def _delete_keyerror(request):
    del request.app[ITEMS][_stored_keyerror(request)["id"]]
    return web.Response(status=204)


@wrong(check.read_update_delete, "looks the id up with app[ITEMS][id]: an unknown id is a 500",
       rule="`stored_item(request)` ... raises a **404** JSON error when that id is not in "
       "the store",
       problem="unknown-id-500")
def create_full_app_unknown_id_500():
    return _full_app_with(read=_read_keyerror, replace=_replace_keyerror, delete=_delete_keyerror)


def _stored_400(request):
    ident = item_id(request)
    if ident not in request.app[ITEMS]:
        raise json_error(web.HTTPBadRequest, f"no item {ident}")
    return request.app[ITEMS][ident]


async def _read_400(request):
    return web.json_response(_stored_400(request))


async def _replace_400(request):
    item = _stored_400(request)
    new = {"id": item["id"], **await item_fields(request)}
    request.app[ITEMS][item["id"]] = new
    return web.json_response(new)


async def _delete_400(request):
    del request.app[ITEMS][_stored_400(request)["id"]]
    return web.Response(status=204)


@wrong(check.read_update_delete, "answers an unknown id with 400 instead of 404",
       rule="an id that does not exist | **404** with a JSON error",
       problem="unknown-id-not-404")
def create_full_app_unknown_id_400():
    return _full_app_with(read=_read_400, replace=_replace_400, delete=_delete_400)


async def _delete_200_with_body(request):
    item = stored_item(request)
    del request.app[ITEMS][item["id"]]
    return web.json_response(item)


@wrong(check.read_update_delete, "DELETE answers 200 with the deleted item, not 204 with no body",
       rule="`DELETE` removes it and answers **204** with no body",
       problem="delete-not-204")
def create_full_app_delete_200():
    return _full_app_with(delete=_delete_200_with_body)


async def _replace_drops_id(request):
    item = stored_item(request)
    fields = await item_fields(request)
    request.app[ITEMS][item["id"]] = fields
    return web.json_response(fields)


@wrong(check.read_update_delete, "PUT stores and answers the body's fields, the id is lost",
       rule="`PUT` replaces the item ... and keeps the id of the path",
       problem="update-wrong")
def create_full_app_put_drops_id():
    return _full_app_with(replace=_replace_drops_id)


async def _create_len_plus_one(request):
    fields = await item_fields(request)
    ident = len(request.app[ITEMS]) + 1
    request.app[ITEMS][ident] = item = {"id": ident, **fields}
    return web.json_response(item, status=201, headers={"Location": f"/items/{ident}"})


@wrong(check.read_update_delete, "new ids are len(store) + 1: after a delete, an id is reused",
       rule="its id must not be one that a stored item still has",
       problem="id-reused")
def create_full_app_len_ids():
    return _full_app_with(create=_create_len_plus_one)


async def _replace_upsert(request):
    ident = item_id(request)
    new = {"id": ident, **await item_fields(request)}
    request.app[ITEMS][ident] = new
    return web.json_response(new)


@wrong(check.read_update_delete, "PUT on an unknown id creates the item (an upsert), not a 404",
       rule="`stored_item(request)` ... the three handlers start with it",
       problem="unknown-id-not-404")
def create_full_app_put_upserts():
    return _full_app_with(replace=_replace_upsert)


async def _delete_idempotent(request):
    request.app[ITEMS].pop(item_id(request), None)
    return web.Response(status=204)


@wrong(check.read_update_delete, "DELETE of an unknown id answers 204 (pop with a default)",
       rule="an id that does not exist | **404** with a JSON error",
       problem="unknown-id-not-404")
def create_full_app_delete_unknown_204():
    return _full_app_with(delete=_delete_idempotent)


async def _replace_merges_body(request):
    item = stored_item(request)
    item.update(await request.json())
    return web.json_response(item)


@wrong(check.read_update_delete, "PUT merges the raw body into the item: no validation, the body "
       "can change the id", rule="`PUT` replaces the item with the body's name and price "
       "(through `item_fields`) and keeps the id of the path",
       problem="update-wrong")
def create_full_app_put_merges_raw_body():
    return _full_app_with(replace=_replace_merges_body)


def _stored_returns_error(request):
    ident = item_id(request)
    if ident not in request.app[ITEMS]:
        return json_error(web.HTTPNotFound, f"no item {ident}")
    return request.app[ITEMS][ident]


async def _read_returns_error(request):
    return web.json_response(_stored_returns_error(request))


@wrong(check.read_update_delete, "stored_item returns the 404 instead of raising it (GET)",
       rule="`stored_item(request)` ... raises a **404** JSON error",
       problem="returned-not-raised")
def create_full_app_stored_item_returns_404():
    return _full_app_with(read=_read_returns_error)


# --- more probes -----------------------------------------------------------------------------


@wrong(check.item_fields, "accepts only float prices: an integer price such as 3 is rejected",
       rule="`price` is not a number",
       problem="valid-rejected")
async def item_fields_float_only(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "the body must be a JSON object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "name must be a non-blank string")
    if not isinstance(price, float):
        raise json_error(web.HTTPBadRequest, "price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "rejects a body with extra fields (400) instead of dropping them",
       rule="Extra fields are dropped",
       problem="valid-rejected")
async def item_fields_rejects_extra_fields(request):
    fields = await item_fields(request)
    data = await request.json()
    if set(data) - {"name", "price"}:
        raise json_error(web.HTTPBadRequest, "unexpected fields")
    return fields


async def _create_absolute_location(request):
    fields = await item_fields(request)
    item = {"id": next(request.app[NEXT_ID]), **fields}
    request.app[ITEMS][item["id"]] = item
    location = str(request.url.join(request.app.router["item"].url_for(id=str(item["id"]))))
    return web.json_response(item, status=201, headers={"Location": location})


@correct(check.create_and_list, "an absolute Location URL (RFC 9110 allows either form)")
def create_app_absolute_location():
    app = _app_with(create=_create_absolute_location)
    app.router.add_get("/items/{id}", read_item, name="item")
    return app


_SHARED_IDS = itertools.count(1)


@wrong(check.create_and_list, "one module-level id counter shared by every app",
       rule="a **new** `web.Application` with its own empty store on each call: ... and a "
       "counter for the ids, `app[NEXT_ID] = itertools.count(1)`",
       problem="shared-counter")
def create_app_shared_counter():
    app = web.Application()
    app[ITEMS] = {}
    app[NEXT_ID] = _SHARED_IDS
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_items)
    return app


async def _replace_204(request):
    item = stored_item(request)
    request.app[ITEMS][item["id"]] = {"id": item["id"], **await item_fields(request)}
    return web.Response(status=204)


@wrong(check.read_update_delete, "PUT answers 204 with no body instead of 200 and the item",
       rule="`PUT /items/{id}` with a name and a price | 200, the item replaced (same id)",
       problem="update-wrong")
def create_full_app_put_204():
    return _full_app_with(replace=_replace_204)


async def _replace_unvalidated(request):
    item = stored_item(request)
    data = await request.json()
    new = {"id": item["id"], "name": data.get("name"), "price": data.get("price")}
    request.app[ITEMS][item["id"]] = new
    return web.json_response(new)


@wrong(check.read_update_delete, "PUT does not validate through item_fields: a bad body is stored",
       rule="`PUT` replaces the item with the body's name and price (through `item_fields`)",
       problem="bad-json-500")
def create_full_app_put_unvalidated():
    return _full_app_with(replace=_replace_unvalidated)
