"""Exercise 11's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. The item API is built by ``make_api``, correct by
default, with one switch per mistake.
"""

from __future__ import annotations

import itertools
import json
import numbers
from typing import Any

import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiohttp import web

from local_server.checks import aiohttp_server as check

ITEMS = web.AppKey("items", dict[int, dict[str, Any]])
NEXT_ID = web.AppKey("next_id", itertools.count)


def json_error(error_class: type[web.HTTPException], message: str) -> web.HTTPException:
    return error_class(text=json.dumps({"error": message}), content_type="application/json")


def named(fn: Any, name: str) -> Any:
    fn.__name__ = fn.__qualname__ = name
    return fn


# --- Task 1: item_fields ----------------------------------------------------------------------


@correct(check.item_fields, "the lesson's isinstance checks, bool excluded")
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


@correct(check.item_fields, "the text parsed by hand, its own error helper, type() instead of bool")
async def fields_from_text(request):
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


@correct(check.item_fields, "request.read() + json.loads, and a match statement for the shape")
async def fields_by_pattern(request):
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


@correct(check.item_fields, "numbers.Real for the price, errors collected, non-ASCII messages")
async def fields_numbers_real(request):
    try:
        data = await request.json()
    except json.JSONDecodeError:
        raise json_error(web.HTTPBadRequest, "corps illisible : ce n'est pas du JSON") from None
    problems = []
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "un objet JSON est attendu")  # codespell:ignore
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        problems.append("nom vide")
    if not isinstance(data.get("price"), numbers.Real) or isinstance(data.get("price"), bool):
        problems.append("prix non numérique")
    if problems:
        raise json_error(web.HTTPBadRequest, ", ".join(problems))
    return {"name": data["name"], "price": data["price"]}


@correct(check.item_fields, "raises a subclass of HTTPBadRequest that builds its own JSON body")
async def fields_error_subclass(request):
    class BadItem(web.HTTPBadRequest):
        def __init__(self, message: str) -> None:
            super().__init__(text=json.dumps({"error": message}), content_type="application/json")

    try:
        data = await request.json()
    except ValueError:
        raise BadItem("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadItem("the body is not an object")
    name, price = data.get("name"), data.get("price")
    if not (isinstance(name, str) and name.strip()):
        raise BadItem("name is required")
    if not (isinstance(price, (int, float)) and not isinstance(price, bool)):
        raise BadItem("price must be a number")
    return {"name": name, "price": price}


@wrong(check.item_fields, "request.json() unguarded", problem="bad-json-500")
async def fields_unguarded_json(request):
    data = await request.json()
    return {"name": data["name"], "price": data["price"]}


@wrong(check.item_fields, "never checks the shape: a list crashes", problem="bad-input-500")
async def fields_unchecked_shape(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    return {"name": data["name"], "price": data["price"]}


@wrong(check.item_fields, "isinstance(price, (int, float)) lets True through",
       problem="bool-price-accepted")  # fmt: skip
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


@wrong(check.item_fields, "validates, then returns the body with its extra fields",
       problem="extra-fields-kept")  # fmt: skip
async def fields_keeps_extras(request):
    data = await fields_good(request)
    data.update(await request.json())
    return data


@wrong(check.item_fields, "errors without a body: text/plain", problem="error-not-json")
async def fields_plain_errors(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        raise web.HTTPBadRequest() from None


@wrong(check.item_fields, "422 instead of 400", problem="wrong-status")
async def fields_422(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        raise json_error(web.HTTPUnprocessableEntity, "bad") from None


@wrong(check.item_fields, "returns the error instead of raising it", problem="returned-not-raised")
async def fields_returns_the_error(request):
    try:
        data = await request.json()
    except ValueError:
        return json_error(web.HTTPBadRequest, "not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return json_error(web.HTTPBadRequest, "bad item")
    return {"name": data["name"], "price": data.get("price")}


@wrong(check.item_fields, "float() converts the price", problem="price-converted")
async def fields_float_price(request):
    try:
        data = await request.json()
        name, price = data["name"], float(data["price"])
    except (ValueError, KeyError, TypeError):
        raise json_error(web.HTTPBadRequest, "bad item") from None
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "bad name")
    return {"name": name, "price": price}


@wrong(check.item_fields, "str() of a dict as the error body", problem="error-not-json")
async def fields_str_of_dict(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        body = str({"error": "bad"})  # single quotes: not JSON
        raise web.HTTPBadRequest(text=body, content_type="application/json") from None


@wrong(check.item_fields, "rejects everything", problem="valid-rejected")
async def fields_rejects_all(request):
    raise json_error(web.HTTPBadRequest, "no")


@wrong(check.item_fields, "a plain def", problem="not-async")
def fields_not_async(request):
    return {"name": "pen", "price": 1.5}


@wrong(check.item_fields, "the stub", problem="not-implemented")
async def fields_stub(request):
    raise NotImplementedError("your code here")


@wrong(check.item_fields, "`if not price`: a price of 0 is refused", problem="valid-rejected")
async def fields_falsy_price(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    if not isinstance(data, dict) or not data.get("name") or not data.get("price"):
        raise json_error(web.HTTPBadRequest, "name and price are required")
    name, price = data["name"], data["price"]
    if not isinstance(name, str) or not name.strip():
        raise json_error(web.HTTPBadRequest, "bad name")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise json_error(web.HTTPBadRequest, "bad price")
    return {"name": name, "price": price}


@wrong(check.item_fields, "reads only the first chunk of the body (readany)",
       problem="valid-rejected")  # fmt: skip
async def fields_first_chunk_only(request):
    try:
        data = json.loads(await request.content.readany())
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


@wrong(check.item_fields, "`if not name`: a name of spaces passes", problem="blank-name-accepted")
async def fields_spaces_name(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "not an object")
    name, price = data.get("name"), data.get("price")
    if not isinstance(name, str) or not name:
        raise json_error(web.HTTPBadRequest, "bad name")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        raise json_error(web.HTTPBadRequest, "bad price")
    return {"name": name, "price": price}


@wrong(check.item_fields, "checks only that the keys exist, not their types",
       problem="bad-input-accepted")  # fmt: skip
async def fields_keys_only(request):
    try:
        data = await request.json()
    except ValueError:
        raise json_error(web.HTTPBadRequest, "not JSON") from None
    if not isinstance(data, dict) or "name" not in data or "price" not in data:
        raise json_error(web.HTTPBadRequest, "name and price are required")
    if isinstance(data["name"], str) and not data["name"].strip():
        raise json_error(web.HTTPBadRequest, "blank name")
    if isinstance(data["price"], bool):
        raise json_error(web.HTTPBadRequest, "bad price")
    return {"name": data["name"], "price": data["price"]}


@wrong(check.item_fields, "raises web.json_response(...): not an exception",
       problem="bad-json-500")  # fmt: skip
async def fields_raises_a_response(request):
    try:
        data = await request.json()
    except ValueError:
        raise web.json_response({"error": "not JSON"}, status=400) from None
    return {"name": data["name"], "price": data["price"]}


@wrong(check.item_fields, "the error's JSON has an empty message", problem="error-not-json")
async def fields_empty_error_message(request):
    try:
        return await fields_good(request)
    except web.HTTPBadRequest:
        raise json_error(web.HTTPBadRequest, "") from None


@wrong(check.item_fields, "returns the name stripped of nothing but the price as a string",
       problem="wrong-return")  # fmt: skip
async def fields_price_as_text(request):
    fields = await fields_good(request)
    return {"name": fields["name"], "price": str(fields["price"])}


@wrong(check.item_fields, "request.json() without await", problem="missing-await")
async def fields_json_not_awaited(request):
    data = request.json()
    if not isinstance(data, dict):
        raise json_error(web.HTTPBadRequest, "not an object")
    return {"name": data.get("name"), "price": data.get("price")}


@wrong(check.create_and_list, "time.sleep in the POST handler", problem="blocked-loop")
def create_app_sleeps():
    async def create_item(request):
        import time

        time.sleep(0.01)
        fields = await fields_good(request)
        item = {"id": next(request.app[NEXT_ID]), **fields}
        request.app[ITEMS][item["id"]] = item
        return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


def test_a_converted_price_is_named():
    verdict = check.item_fields.diagnose(fields_float_price)
    assert "converted the price" in verdict.message and "float()" in verdict.hint, verdict.render()


def test_an_error_that_is_not_json_says_why():
    not_json = check.item_fields.diagnose(fields_str_of_dict)
    assert "not valid JSON" in not_json.message, not_json.render()
    plain = check.item_fields.diagnose(fields_plain_errors)
    assert "labelled text/plain" in plain.message, plain.render()


def test_a_500_quotes_the_exception_and_the_learners_line():
    verdict = check.item_fields.diagnose(fields_unchecked_shape)
    assert "fields_unchecked_shape()" in verdict.message, verdict.render()
    assert "`return {" in verdict.message, verdict.render()


def test_a_body_in_two_pieces_is_named_when_only_the_first_is_read():
    verdict = check.item_fields.diagnose(fields_first_chunk_only)
    assert "two pieces" in verdict.message, verdict.render()


# --- An item API, correct by default; each switch is one mistake ------------------------------


def make_api(
    *,
    style: str = "add_get",
    create_status: int = 201,
    location: str | None = "/items/{id}",
    shared_store: bool = False,
    shared_counter: bool = False,
    first_id: int = 1,
    seed_item: bool = False,
    string_keys: bool = False,
    validate: str = "item_fields",
    store_first: bool = False,
    create_body: str = "json",
    list_shape: str = "list",
    constant_id: bool = False,
    id_before_body: bool = False,
    read_shape: str = "item",
    read_which: str = "path",
    unknown: str = "404-json",
    bad_id: str = "400",
    pattern: str = "/items/{id}",
    delete_status: int = 204,
    really_delete: bool = True,
    delete_extra: bool = False,
    put_which: str = "path",
    put_validate: str = "item_fields",
    put_partial: bool = False,
    upsert: bool = False,
    with_put: bool = True,
    with_list: bool = True,
    id_from: str = "counter",
    convert_id: bool = True,
    name: str = "create_full_app",
):
    """A ``create_full_app`` (and ``.create_app``) for the item API, mistakes switched on."""
    items_key: Any = "items" if string_keys else ITEMS
    next_key: Any = "next_id" if string_keys else NEXT_ID

    async def weak_fields(request):
        try:
            data = await request.json()
        except ValueError:
            raise json_error(web.HTTPBadRequest, "not JSON") from None
        if not isinstance(data, dict) or "name" not in data or "price" not in data:
            raise json_error(web.HTTPBadRequest, "name and price are required")
        return {"name": data["name"], "price": data["price"]}

    async def fields(request, how=validate):
        if how == "item_fields":
            return await fields_good(request)
        if how == "weak":
            return await weak_fields(request)
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
        items = request.app[items_key]
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

    def next_id(request):
        if constant_id:
            return 1
        if id_from == "len":
            return len(request.app[items_key]) + 1
        if id_from == "max":
            return max(request.app[items_key], default=0) + 1
        return next(request.app[next_key])

    async def create_item(request):
        items = request.app[items_key]
        if id_before_body:
            item_id = max(items, default=0) + 1
        if store_first:
            item_id = next_id(request)
            items[item_id] = {"id": item_id}
            items[item_id].update(await fields(request))
            item = items[item_id]
        else:
            item_fields = await fields(request)
            if not id_before_body:
                item_id = next_id(request)
            item = {"id": item_id, **item_fields}
            items[item_id] = item
        headers = {"Location": location.format(id=item_id)} if location else {}
        if create_body == "text":
            return web.Response(text=str(item), status=create_status, headers=headers)
        return web.json_response(item, status=create_status, headers=headers)

    async def list_items(request):
        items = list(request.app[items_key].values())
        return web.json_response(items if list_shape == "list" else {"items": items})

    async def read_item(request):
        item = lookup(request)
        if read_shape == "wrapped":
            return web.json_response({"item": item})
        if read_shape == "crash":
            return web.json_response(text=item)  # text= wants a str: a TypeError, a 500
        return web.json_response(item)

    async def replace_item(request):
        items = request.app[items_key]
        key = number(request)
        if upsert and key not in items:
            new = {"id": key, **await fields(request, put_validate)}
            items[key] = new
            return web.json_response(new, status=201)
        item = lookup(request)
        if put_partial:
            item.clear()
            item["id"] = key
            item.update(await fields(request, put_validate))
            return web.json_response(item)
        if put_which == "first":
            key = next(iter(items))
        new = {
            "id": key if put_which == "first" else item["id"],
            **await fields(request, put_validate),
        }
        items[new["id"]] = new
        return web.json_response(new)

    async def delete_item(request):
        item = lookup(request)
        items = request.app[items_key]
        if really_delete:
            del items[item["id"]]
        if delete_extra and items:
            del items[next(iter(items))]
        if delete_status == 204:
            return web.Response(status=204)
        return web.json_response({"deleted": item["id"]}, status=delete_status)

    store_for_all: dict[int, dict[str, Any]] = {}  # one dict for every app: like a global
    counter_for_all = itertools.count(first_id)

    def base_app():
        app = web.Application()
        app[items_key] = store_for_all if shared_store else {}
        app[next_key] = counter_for_all if shared_counter else itertools.count(first_id)
        if seed_item:
            app[items_key][next(app[next_key])] = {"id": 1, "name": "example", "price": 1}
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
            if with_list:
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

    named(create_full_app, name)
    create_full_app.create_app = named(create_app, name.replace("full_app", "app"))
    return create_full_app


def module_app_factory():
    app = make_api().create_app()
    return named(lambda: app, "create_app_same_object")


# --- Task 2: create_and_list ------------------------------------------------------------------

for _style in ("add_get", "routes", "view"):
    correct(check.create_and_list, f"the item API with {_style}")(
        make_api(style=_style, name=f"create_full_app_{_style}").create_app
    )
correct(check.create_and_list, "an absolute Location")(
    make_api(location="http://example.test/items/{id}", name="create_full_app_abs").create_app
)
correct(check.create_and_list, "ids from max(stored) + 1, taken after the body was read")(
    make_api(id_from="max", name="create_full_app_max").create_app
)


@correct(check.create_and_list, "a closure store per app instead of AppKeys, a View class")
def create_app_closure_store():
    store: dict[int, dict[str, Any]] = {}
    ids = itertools.count(1)

    class Items(web.View):
        async def get(self):
            return web.json_response(list(store.values()))

        async def post(self):
            fields = await fields_good(self.request)
            item = {"id": next(ids), **fields}
            store[item["id"]] = item
            raise web.HTTPCreated(
                text=json.dumps(item),
                content_type="application/json",
                headers={"Location": f"/items/{item['id']}"},
            )

    app = web.Application()
    app.router.add_view("/items", Items)
    return app


_CREATE_MISTAKES = [
    ("answers 200", {"create_status": 200}, "create-not-201"),
    ("no Location", {"location": None}, "no-location"),
    ("Location /items", {"location": "/items"}, "wrong-location"),
    ("one store for every app", {"shared_store": True}, "shared-state"),
    ("one counter for every app", {"shared_counter": True}, "shared-counter"),
    ("ids from 0", {"first_id": 0}, "first-id-not-1"),
    ("an example item in every new store", {"seed_item": True}, "not-empty"),
    ("string keys app['items']", {"string_keys": True}, "string-key"),
    ("request.json() unguarded", {"validate": "none"}, "bad-json-500"),
    ("its own weaker validation: a blank name is stored", {"validate": "weak"}, "not-validated"),
    ("stores the id first, then reads the body", {"store_first": True}, "bad-input-stored"),
    ("the 201's body is str(item)", {"create_body": "text"}, "not-json"),
    ("GET /items wraps the list", {"list_shape": "dict"}, "list-wrong"),
    ("every item gets id 1", {"constant_id": True}, "same-id"),
    ("the id is chosen before the body arrives", {"id_before_body": True}, "same-id"),
    ("no GET /items route", {"with_list": False}, "route-missing"),
]
for _index, (_mistake, _options, _problem) in enumerate(_CREATE_MISTAKES):
    wrong(check.create_and_list, _mistake, problem=_problem)(
        make_api(**_options, name=f"create_full_app_mistake{_index}").create_app
    )
wrong(check.create_and_list, "returns one module-level app", problem="same-app")(
    module_app_factory()
)
wrong(check.create_and_list, "returns None", problem="not-an-app")(
    named(lambda: None, "create_app_none")
)


@wrong(check.create_and_list, "an async def factory", problem="not-an-app")
async def create_app_async():
    return make_api().create_app()


async def list_all(request):
    return web.json_response(list(request.app[ITEMS].values()))


@wrong(check.create_and_list, "item_fields returns its errors", problem="returned-not-raised")
def create_app_with_returned_errors():
    async def create_item(request):
        fields = await fields_returns_the_error(request)
        item = fields | {"id": next(request.app[NEXT_ID])}
        request.app[ITEMS][item["id"]] = item
        return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


@wrong(check.create_and_list, "POST crashes on a valid item (appends to a dict)",
       problem="server-error")  # fmt: skip
def create_app_crashes():
    async def create_item(request):
        fields = await fields_good(request)
        request.app[ITEMS].append(fields)
        return web.json_response(fields, status=201)

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


@wrong(check.create_and_list, "invalid JSON answered with aiohttp's plain 400",
       problem="error-not-json")  # fmt: skip
def create_app_plain_400():
    async def create_item(request):
        try:
            fields = await fields_good(request)
        except web.HTTPBadRequest:
            raise web.HTTPBadRequest() from None
        item = {"id": next(request.app[NEXT_ID]), **fields}
        request.app[ITEMS][item["id"]] = item
        return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


@wrong(check.create_and_list, "the handler stubs", problem="not-implemented")
def create_app_handler_stubs():
    async def stub(request):
        raise NotImplementedError("your code here")

    app = web.Application()
    app.router.add_post("/items", stub)
    app.router.add_get("/items", stub)
    return app


@wrong(check.create_and_list, "item_fields returns its errors, spread into the item",
       problem="not-validated")  # fmt: skip
def create_app_spreads_returned_errors():
    async def create_item(request):
        fields = await fields_returns_the_error(request)
        item = {"id": next(request.app[NEXT_ID]), **fields}  # a Response is a mapping too
        request.app[ITEMS][item["id"]] = item
        return web.json_response(item, status=201, headers={"Location": f"/items/{item['id']}"})

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


@wrong(check.create_and_list, "the 201 echoes the price as a string", problem="wrong-item")
def create_app_price_as_text():
    async def create_item(request):
        fields = await fields_good(request)
        item = {"id": next(request.app[NEXT_ID]), **fields}
        request.app[ITEMS][item["id"]] = item
        shown = {**item, "price": str(item["price"])}
        return web.json_response(shown, status=201, headers={"Location": f"/items/{item['id']}"})

    app = web.Application()
    app[ITEMS], app[NEXT_ID] = {}, itertools.count(1)
    app.router.add_post("/items", create_item)
    app.router.add_get("/items", list_all)
    return app


def test_a_returned_error_spread_into_the_item_is_suspected():
    verdict = check.create_and_list.diagnose(create_app_spreads_returned_errors)
    assert "raise its error (not return it)" in verdict.message, verdict.render()


def test_a_shared_counter_is_named():
    answer = make_api(shared_counter=True).create_app
    verdict = check.create_and_list.diagnose(answer)
    assert "one counter" in verdict.message, verdict.render()


# --- Task 3: read_update_delete ---------------------------------------------------------------

for _style in ("add_get", "routes", "view"):
    correct(check.read_update_delete, f"the item API with {_style}")(
        make_api(style=_style, name=f"create_full_app_rud_{_style}")
    )
correct(check.read_update_delete, "ids from the largest one plus one")(
    make_api(id_from="max", name="create_full_app_rud_max")
)


@correct(check.read_update_delete, "one catch-all handler per path, dispatching on the method")
def create_full_app_dispatch():
    api = make_api()

    table = {
        (route.method, route.resource.canonical): route.handler for route in api().router.routes()
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


@correct(check.read_update_delete, "isdecimal() before int(), dict.pop, PUT validates first")
def create_full_app_isdecimal():
    def ident(request):
        raw = request.match_info["id"]
        if not raw.isdecimal():
            raise json_error(web.HTTPBadRequest, f"{raw!r} is not an id")
        return int(raw)

    def stored(request):
        item = request.app[ITEMS].get(ident(request))
        if item is None:
            raise json_error(web.HTTPNotFound, "no such item")
        return item

    async def read(request):
        return web.json_response(stored(request))

    async def replace(request):
        old = stored(request)
        fields = await fields_good(request)
        request.app[ITEMS][old["id"]] = new = {"id": old["id"], **fields}
        return web.json_response(new)

    async def delete(request):
        request.app[ITEMS].pop(stored(request)["id"])
        return web.Response(status=204)

    app = make_api().create_app()
    app.router.add_get("/items/{id}", read)
    app.router.add_put("/items/{id}", replace)
    app.router.add_delete("/items/{id}", delete)
    return app


_RUD_MISTAKES = [
    ("GET answers the first item", {"read_which": "first"}, "ignores-id"),
    ("GET answers the last item", {"read_which": "last"}, "ignores-id"),
    ("GET wraps the item", {"read_shape": "wrapped"}, "read-wrong"),
    ("GET crashes on an existing item", {"read_shape": "crash"}, "server-error"),
    ("items[id]: an unknown id is a KeyError", {"unknown": "keyerror"}, "unknown-id-500"),
    ("an unknown id answers null", {"unknown": "null"}, "unknown-id-not-404"),
    ("an unknown id is a plain 404", {"unknown": "404-text"}, "error-not-json"),
    ("int() unguarded", {"bad_id": "500"}, "bad-id-500"),
    ("the route pattern {id:\\d+}", {"pattern": r"/items/{id:\d+}"}, "bad-id-not-400"),
    ("DELETE answers 200", {"delete_status": 200}, "delete-not-204"),
    ("DELETE removes nothing", {"really_delete": False}, "not-deleted"),
    ("DELETE removes another item too", {"delete_extra": True}, "deleted-wrong-item"),
    ("PUT replaces the first item", {"put_which": "first"}, "update-wrong"),
    ("PUT creates an unknown id", {"upsert": True}, "unknown-id-not-404"),
    ("no PUT route", {"with_put": False}, "route-missing"),
    ("PUT reads the body unguarded", {"put_validate": "none"}, "bad-json-500"),
    ("PUT validates only that the keys exist", {"put_validate": "weak"}, "not-validated"),
    ("PUT clears the item before validating", {"put_partial": True}, "bad-update-stored"),
    ("the id is not converted to int", {"convert_id": False}, "existing-not-found"),
    ("ids from len(items) + 1", {"id_from": "len"}, "id-reused"),
    ("POST /items answers 200", {"create_status": 200}, "create-broken"),
]
for _index, (_mistake, _options, _problem) in enumerate(_RUD_MISTAKES):
    wrong(check.read_update_delete, _mistake, problem=_problem)(
        make_api(**_options, name=f"create_full_app_rud_mistake{_index}")
    )
wrong(check.read_update_delete, "returns a list of routes", problem="not-an-app")(
    named(lambda: [], "create_full_app_list")
)


@wrong(check.read_update_delete, "stored_item returns its 404", problem="returned-not-raised")
def create_full_app_returned_404():
    def stored(request):
        ident = int(request.match_info["id"])
        if ident not in request.app[ITEMS]:
            return json_error(web.HTTPNotFound, "no such item")
        return request.app[ITEMS][ident]

    async def read(request):
        return web.json_response(stored(request))

    app = make_api().create_app()
    app.router.add_get("/items/{id}", read)
    return app


@wrong(check.read_update_delete, "the stub", problem="not-implemented")
def create_full_app_stub():
    raise NotImplementedError("your code here")


def test_unknown_id_500_quotes_the_key_error():
    verdict = check.read_update_delete.diagnose(make_api(unknown="keyerror"))
    assert "KeyError" in verdict.message and "items.get" in verdict.hint, verdict.render()


def test_a_returned_404_is_named_from_the_type_error():
    verdict = check.read_update_delete.diagnose(create_full_app_returned_404)
    assert "HTTPNotFound" in verdict.message and "not raised" in verdict.message, verdict.render()


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    answer = make_api(id_from="len")
    assert check.read_update_delete.diagnose(answer) == check.read_update_delete.diagnose(answer)
