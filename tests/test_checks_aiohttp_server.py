"""Exercise 11's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from aiohttp import web

from local_server.checks import aiohttp_server as check

ITEMS = web.AppKey("items", dict[int, dict[str, Any]])
NEXT_ID = web.AppKey("next_id", itertools.count)


def json_error(error_class: type[web.HTTPException], message: str) -> web.HTTPException:
    return error_class(text=json.dumps({"error": message}), content_type="application/json")


# --- Task 1: item_fields ----------------------------------------------------------------------


async def fields_good(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "not an object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "bad name")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise json_error(web.HTTPBadRequest, "bad price")
    return {"name": name, "price": price}


async def fields_from_text(request):
    """Correct too: the text parsed by hand, its own error helper, type() instead of bool."""

    def bad(message):
        return web.HTTPBadRequest(
            text=json.dumps({"error": message}), content_type="application/json"
        )

    try:
        data = json.loads(await request.text())
    except json.JSONDecodeError:
        raise bad("invalid JSON") from None
    try:
        name, price = data["name"], data["price"]
    except (TypeError, KeyError):
        raise bad("name and price are required") from None
    if type(name) is not str or name.strip() == "" or type(price) not in (int, float):
        raise bad("name must be text, price a number")
    return {"name": name, "price": price}


async def fields_by_pattern(request):
    """Correct too: request.read() + json.loads, and a match statement for the shape."""
    try:
        data = json.loads(await request.read())
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    match data:
        case {"name": str(name), "price": int() | float() as price} if (
            name.strip() and not isinstance(price, bool)
        ):
            return {"name": name, "price": price}
    raise json_error(web.HTTPBadRequest, "a name and a numeric price are required")


@pytest.mark.parametrize("answer", [fields_good, fields_from_text, fields_by_pattern])
def test_item_fields_accepts_correct_alternatives(answer):
    verdict = check.item_fields.diagnose(answer)
    assert verdict.passed, verdict.render()


async def fields_unguarded_json(request):
    data = await request.json()
    return {"name": data["name"], "price": data["price"]}


async def fields_unchecked_shape(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    return {"name": data["name"], "price": data["price"]}


async def fields_bool_price(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "not an object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name.strip() or not isinstance(price, (int, float)):
        raise json_error(web.HTTPBadRequest, "bad fields")
    return {"name": name, "price": price}


async def fields_keeps_extras(request):
    data = await fields_good(request)
    data.update(await request.json())
    return data


async def fields_plain_errors(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        raise web.HTTPBadRequest() from None


async def fields_422(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        raise json_error(web.HTTPUnprocessableEntity, "bad") from None


async def fields_returns_the_error(request):
    try:
        data = await request.json()
    except ValueError:
        return json_error(web.HTTPBadRequest, "not JSON")
    return {"name": data["name"], "price": data["price"]}


async def fields_float_price(request):
    try:
        data = await request.json()
        name, price = data["name"], float(data["price"])
    except (ValueError, KeyError, TypeError):
        raise json_error(web.HTTPBadRequest, "bad item") from None
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "bad name")
    return {"name": name, "price": price}


async def fields_str_of_dict(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        body = str({"error": "bad"})  # single quotes: not JSON
        raise web.HTTPBadRequest(text=body, content_type="application/json") from None


async def fields_rejects_all(request):
    raise json_error(web.HTTPBadRequest, "no")


def fields_not_async(request):
    return {"name": "pen", "price": 1.5}


async def fields_stub(request):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (fields_unguarded_json, "bad-json-500"),
        (fields_unchecked_shape, "bad-input-500"),
        (fields_bool_price, "bad-input-accepted"),
        (fields_keeps_extras, "extra-fields-kept"),
        (fields_plain_errors, "error-not-json"),
        (fields_422, "wrong-status"),
        (fields_rejects_all, "valid-rejected"),
        (fields_returns_the_error, "returned-not-raised"),
        (fields_float_price, "bad-input-accepted"),
        (fields_str_of_dict, "error-not-json"),
        (fields_not_async, "not-async"),
        (fields_stub, "not-implemented"),
    ],
)
def test_item_fields_diagnoses_each_mistake(answer, problem):
    verdict = check.item_fields.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_a_converted_price_is_named_as_a_number_in_a_string():
    verdict = check.item_fields.diagnose(fields_float_price)
    assert '"1.5"' in verdict.message and "float()" in verdict.hint, verdict.render()


def test_an_error_that_is_not_json_says_why():
    not_json = check.item_fields.diagnose(fields_str_of_dict)
    assert "not valid JSON" in not_json.message, not_json.render()
    plain = check.item_fields.diagnose(fields_plain_errors)
    assert "labelled text/plain" in plain.message, plain.render()


def test_a_500_quotes_the_exception_the_handler_raised():
    verdict = check.item_fields.diagnose(fields_unchecked_shape)
    assert "TypeError" in verdict.message and "fields_unchecked_shape()" in verdict.message


# --- An item API, correct by default; each flag is one mistake --------------------------------


def make_api(
    *,
    style: str = "add_get",
    create_status: int = 201,
    location: str | None = "/items/{id}",
    shared_store: bool = False,
    validate: bool = True,
    list_shape: str = "list",
    constant_id: bool = False,
    read_which: str = "path",
    unknown: str = "404-json",
    bad_id: str = "400",
    pattern: str = "/items/{id}",
    delete_status: int = 204,
    really_delete: bool = True,
    put_which: str = "path",
    upsert: bool = False,
    with_put: bool = True,
    id_from: str = "counter",
    convert_id: bool = True,
):
    """A ``create_full_app`` (and ``.create_app``) for the item API, mistakes switched on."""

    async def fields(request):
        if validate:
            return await fields_good(request)
        data = await request.json()
        return {"name": data["name"], "price": data["price"]}

    def number(request):
        raw = request.match_info["id"]
        if not convert_id:
            return raw  # a str: never equal to the int keys of the store
        if bad_id == "500":
            return int(raw)
        try:
            return int(raw)
        except ValueError:
            raise json_error(web.HTTPBadRequest, "id must be an integer") from None

    def lookup(request):
        items = request.app[ITEMS]
        key = number(request)
        if unknown == "keyerror":
            return items[key]
        if key not in items:
            if unknown == "null":
                return None
            if unknown == "404-text":
                raise web.HTTPNotFound()
            raise json_error(web.HTTPNotFound, f"no item {key}")
        if read_which == "first":
            return next(iter(items.values()))
        if read_which == "last":
            return list(items.values())[-1]
        return items[key]

    async def create_item(request):
        item_fields = await fields(request)
        if constant_id:
            item_id = 1
        elif id_from == "len":
            item_id = len(request.app[ITEMS]) + 1
        elif id_from == "max":
            item_id = max(request.app[ITEMS], default=0) + 1
        else:
            item_id = next(request.app[NEXT_ID])
        item = {"id": item_id, **item_fields}
        request.app[ITEMS][item_id] = item
        headers = {"Location": location.format(id=item_id)} if location else {}
        return web.json_response(item, status=create_status, headers=headers)

    async def list_items(request):
        items = list(request.app[ITEMS].values())
        return web.json_response(items if list_shape == "list" else {"items": items})

    async def read_item(request):
        return web.json_response(lookup(request))

    async def replace_item(request):
        items = request.app[ITEMS]
        key = number(request)
        if upsert and key not in items:
            new = {"id": key, **await fields(request)}
            items[key] = new
            return web.json_response(new, status=201)
        item = lookup(request)
        if put_which == "first":
            key = next(iter(items))
        new = {"id": key if put_which == "first" else item["id"], **await fields(request)}
        items[new["id"]] = new
        return web.json_response(new)

    async def delete_item(request):
        item = lookup(request)
        if really_delete:
            del request.app[ITEMS][item["id"]]
        if delete_status == 204:
            return web.Response(status=204)
        return web.json_response({"deleted": item["id"]}, status=delete_status)

    store_for_all: dict[int, dict[str, Any]] = {}  # one dict for every app: like a global

    def base_app():
        app = web.Application()
        app[ITEMS] = store_for_all if shared_store else {}
        app[NEXT_ID] = itertools.count(1)
        return app

    def create_app():
        app = base_app()
        if style == "routes":
            routes = web.RouteTableDef()
            routes.post("/items")(create_item)
            routes.get("/items")(list_items)
            app.add_routes(routes)
        else:
            app.router.add_post("/items", create_item)
            app.router.add_get("/items", list_items)
        return app

    def create_full_app():
        app = create_app()
        if style == "view":

            class ItemView(web.View):
                async def get(self):
                    return await read_item(self.request)

                async def put(self):
                    return await replace_item(self.request)

                async def delete(self):
                    return await delete_item(self.request)

            app.router.add_view(pattern, ItemView)
            return app
        app.router.add_get(pattern, read_item)
        if with_put:
            app.router.add_put(pattern, replace_item)
        app.router.add_delete(pattern, delete_item)
        return app

    create_full_app.create_app = create_app
    return create_full_app


def module_app_factory():
    app = make_api().create_app()
    return lambda: app


# --- Task 2: create_and_list ------------------------------------------------------------------


@pytest.mark.parametrize("style", ["add_get", "routes", "view"])
def test_create_and_list_accepts_correct_alternatives(style):
    verdict = check.create_and_list.diagnose(make_api(style=style).create_app)
    assert verdict.passed, verdict.render()


def test_create_and_list_accepts_an_absolute_location():
    answer = make_api(location="http://example.test/items/{id}").create_app
    verdict = check.create_and_list.diagnose(answer)
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (make_api(create_status=200).create_app, "create-not-201"),
        (make_api(location=None).create_app, "no-location"),
        (make_api(location="/items").create_app, "wrong-location"),
        (make_api(shared_store=True).create_app, "shared-state"),
        (make_api(validate=False).create_app, "bad-json-500"),
        (make_api(list_shape="dict").create_app, "list-wrong"),
        (make_api(constant_id=True).create_app, "same-id"),
        (module_app_factory(), "same-app"),
        (lambda: None, "not-an-app"),
        (lambda: web.Application(), "route-missing"),
    ],
)
def test_create_and_list_diagnoses_each_mistake(answer, problem):
    verdict = check.create_and_list.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: read_update_delete ---------------------------------------------------------------


@pytest.mark.parametrize("style", ["add_get", "routes", "view"])
def test_read_update_delete_accepts_correct_alternatives(style):
    verdict = check.read_update_delete.diagnose(make_api(style=style))
    assert verdict.passed, verdict.render()


def test_read_update_delete_accepts_ids_from_the_largest_one_plus_one():
    verdict = check.read_update_delete.diagnose(make_api(id_from="max"))
    assert verdict.passed, verdict.render()


def test_read_update_delete_accepts_one_catch_all_handler_per_path():
    """Correct too: ``add_route("*", ...)`` and a handler that dispatches on the method."""
    api = make_api()

    def create_full_app():
        table = {
            (route.method, route.resource.canonical): route.handler
            for route in api().router.routes()
        }

        async def dispatch(request):
            key = (request.method, request.match_info.route.resource.canonical)
            if key not in table:
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "PUT", "DELETE"])
            return await table[key](request)

        app = web.Application()
        app[ITEMS] = {}
        app[NEXT_ID] = itertools.count(1)
        app.router.add_route("*", "/items", dispatch)
        app.router.add_route("*", "/items/{id}", dispatch)
        return app

    verdict = check.read_update_delete.diagnose(create_full_app)
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"read_which": "first"}, "ignores-id"),
        ({"read_which": "last"}, "ignores-id"),
        ({"unknown": "keyerror"}, "unknown-id-500"),
        ({"unknown": "null"}, "unknown-id-not-404"),
        ({"unknown": "404-text"}, "error-not-json"),
        ({"bad_id": "500"}, "bad-id-500"),
        ({"pattern": r"/items/{id:\d+}"}, "bad-id-not-400"),
        ({"delete_status": 200}, "delete-not-204"),
        ({"really_delete": False}, "not-deleted"),
        ({"put_which": "first"}, "update-wrong"),
        ({"upsert": True}, "unknown-id-not-404"),
        ({"with_put": False}, "route-missing"),
        ({"validate": False}, "bad-json-500"),
        ({"convert_id": False}, "existing-not-found"),
        ({"id_from": "len"}, "id-reused"),
    ],
)
def test_read_update_delete_diagnoses_each_mistake(options, problem):
    verdict = check.read_update_delete.diagnose(make_api(**options))
    assert verdict.problem == problem, verdict.render()


def test_unknown_id_500_quotes_the_key_error():
    verdict = check.read_update_delete.diagnose(make_api(unknown="keyerror"))
    assert "KeyError" in verdict.message, verdict.render()


def test_read_update_delete_reports_a_stub_as_not_implemented():
    def create_full_app():
        raise NotImplementedError("your code here")

    verdict = check.read_update_delete.diagnose(create_full_app)
    assert verdict.problem == "not-implemented", verdict.render()


def test_a_handler_stub_is_not_implemented_too():
    async def stub(request):
        raise NotImplementedError("your code here")

    def create_app():
        app = web.Application()
        app.router.add_post("/items", stub)
        app.router.add_get("/items", stub)
        return app

    verdict = check.create_and_list.diagnose(create_app)
    assert verdict.problem == "not-implemented", verdict.render()
