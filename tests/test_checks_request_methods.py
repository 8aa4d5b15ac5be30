"""Exercise 04's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. The answers marked "mine" were written from the
task text before the checks were rebuilt.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus, urlencode

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from multidict import CIMultiDict, MultiDict
from yarl import URL

from local_server.checks import request_methods as check

# --- Task 1: search ----------------------------------------------------------------------


@correct(check.search, "a list of pairs")
async def search_pairs(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


@correct(check.search, "a MultiDict extended with the tags")
async def search_multidict(session, url, query, tags):
    params = MultiDict([("q", query)])
    params.extend(("tag", tag) for tag in tags)
    async with session.get(url, params=params) as response:
        return await response.json()


@correct(check.search, "a list as a dict's value")
async def search_list_value(session, url, query, tags):
    async with session.get(url, params={"q": query, "tag": tags}) as response:
        return await response.json()


@correct(check.search, "yarl's with_query")
async def search_yarl(session, url, query, tags):
    target = URL(url).with_query([("q", query)] + [("tag", tag) for tag in tags])
    async with session.get(target) as response:
        return await response.json()


@correct(check.search, "urlencode pasted onto the URL: it encodes each value")
async def search_urlencode(session, url, query, tags):
    query_string = urlencode([("q", query)] + [("tag", tag) for tag in tags])
    async with session.get(f"{url}?{query_string}") as response:
        response.raise_for_status()
        return await response.json()


@correct(check.search, "a session of its own")
async def search_own_session(session, url, query, tags):
    async with aiohttp.ClientSession() as own:
        return await search_pairs(own, url, query, tags)


@correct(check.search, "mine: yarl extend_query on a URL object, via session.request")
async def search_extend_query(session, url, query, tags):
    target = URL(url).extend_query([("q", query)] + [("tag", t) for t in tags])
    async with session.request("GET", target) as response:
        return await response.json()


@correct(check.search, "mine: urlencode with quote_via=quote (%20 for spaces)")
async def search_quote_via(session, url, query, tags):
    query_string = urlencode([("q", query)] + [("tag", t) for t in tags], quote_via=quote)
    async with session.get(f"{url}?{query_string}") as response:
        return await response.json()


@wrong(check.search, "pastes the query into an f-string", problem="unencoded-query")
async def search_by_hand(session, url, query, tags):
    tag_part = "&".join(f"tag={tag}" for tag in tags)
    async with session.get(f"{url}?q={query}&{tag_part}") as response:
        return await response.json()


@wrong(check.search, "quotes the text, then params= encodes it again",
       problem="double-encoded-query")
async def search_quoted_then_params(session, url, query, tags):
    params = [("q", quote(query))] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


@wrong(check.search, "a dict: the last tag wins", problem="tags-not-repeated")
async def search_dict_last_tag_wins(session, url, query, tags):
    params = {"q": query}
    for tag in tags:
        params["tag"] = tag
    async with session.get(url, params=params) as response:
        return await response.json()


@wrong(check.search, "the tags joined with commas", problem="tags-not-repeated")
async def search_tags_joined(session, url, query, tags):
    async with session.get(url, params={"q": query, "tag": ",".join(tags)}) as response:
        return await response.json()


@wrong(check.search, "the first tag only", problem="tags-not-repeated")
async def search_first_tag_only(session, url, query, tags):
    async with session.get(url, params=[("q", query), ("tag", tags[0])]) as response:
        return await response.json()


@wrong(check.search, "the tags reversed", problem="wrong-tags")
async def search_tags_reversed(session, url, query, tags):
    return await search_pairs(session, url, query, list(reversed(tags)))


@wrong(check.search, "a POST", problem="wrong-method")
async def search_post(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.post(url, params=params) as response:
        return await response.json()


@wrong(check.search, "the terms in the body", problem="params-in-body")
async def search_in_body(session, url, query, tags):
    data = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, data=data) as response:
        return await response.json()


@wrong(check.search, "the key 'query' instead of 'q'", problem="missing-query")
async def search_wrong_key(session, url, query, tags):
    params = [("query", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


@wrong(check.search, "the text upper-cased", problem="wrong-query")
async def search_uppercased(session, url, query, tags):
    return await search_pairs(session, url, query.upper(), tags)


@wrong(check.search, "a slash added to the URL", problem="no-request")
async def search_wrong_path(session, url, query, tags):
    return await search_pairs(session, url + "/", query, tags)


@wrong(check.search, "returns the text", problem="not-the-echo")
async def search_returns_text(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.text()


@wrong(check.search, "returns response.json() without await", problem="missing-await")
async def search_forgot_await(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        await response.read()
        return response.json()


@wrong(check.search, "returns the response object", problem="not-the-echo")
async def search_returns_response(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        await response.read()
        return response


@wrong(check.search, "a plain def", problem="not-async")
def search_not_async(session, url, query, tags):
    return {}


@wrong(check.search, "the stub", problem="not-implemented")
async def search_stub(session, url, query, tags):
    raise NotImplementedError("your code here")


@wrong(check.search, "mine: the tags sorted", problem="wrong-tags")
async def search_sorted_tags(session, url, query, tags):
    return await search_pairs(session, url, query, sorted(tags))


@wrong(check.search, "mine: q encoded with quote_plus, tags pasted by hand",
       problem="unencoded-query")
async def search_tags_pasted(session, url, query, tags):
    tag_part = "".join(f"&tag={t}" for t in tags)
    async with session.get(f"{url}?q={quote_plus(query)}{tag_part}") as response:
        return await response.json()


@wrong(check.search, "mine: a repeated tag dropped with dict.fromkeys", problem="wrong-tags")
async def search_dedup_tags(session, url, query, tags):
    return await search_pairs(session, url, query, list(dict.fromkeys(tags)))


@wrong(check.search, "mine: the query sent as a header", problem="missing-query")
async def search_query_header(session, url, query, tags):
    params = [("tag", t) for t in tags]
    async with session.get(url, params=params, headers={"q": quote(query)}) as response:
        return await response.json()


@wrong(check.search, "mine: a failed request returns an empty dict", problem="error-swallowed")
async def search_swallows(session, url, query, tags):
    try:
        return await search_pairs(session, url, query, tags)
    except aiohttp.ClientError:
        return {}


@wrong(check.search, "mine: the text encoded to Latin-1 before quoting", problem="wrong-query")
async def search_latin1(session, url, query, tags):
    query_string = urlencode([("q", query)] + [("tag", t) for t in tags], encoding="latin-1")
    async with session.get(f"{url}?{query_string}") as response:
        return await response.json()


@wrong(check.search, "sorts the caller's list in place", problem="wrong-tags")
async def search_sorts_in_place(session, url, query, tags):
    tags.sort()
    return await search_pairs(session, url, query, tags)


@wrong(check.search, "mine: the text stripped", problem="wrong-query")
async def search_stripped(session, url, query, tags):
    return await search_pairs(session, url, query.strip(), tags)


# --- Task 2: create_book -----------------------------------------------------------------


@correct(check.create_book, "json=")
async def create_json(session, url, book):
    async with session.post(url, json=book) as response:
        return await response.json()


@correct(check.create_book, "json.dumps with the Content-Type header")
async def create_dumps_with_header(session, url, book):
    body = json.dumps(book)
    async with session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return await response.json()


@correct(check.create_book, "UTF-8 bytes labelled with a charset")
async def create_bytes_with_charset(session, url, book):
    body = json.dumps(book, ensure_ascii=False).encode("utf-8")
    headers = {"content-type": "application/json; charset=utf-8"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.create_book, "session.request with a status check")
async def create_with_request(session, url, book):
    async with session.request("POST", url, json=book) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.create_book, "mine: json.dumps(sort_keys=True), charset in the label")
async def create_sorted(session, url, book):
    body = json.dumps(book, sort_keys=True)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.create_book, "mine: a BytesPayload labelled JSON, lower-case method name")
async def create_bytes_payload(session, url, book):
    payload = aiohttp.BytesPayload(json.dumps(book).encode(), content_type="application/json")
    async with session.request("post", url, data=payload) as response:
        return await response.json()


@wrong(check.create_book, "data=book sends a form", problem="data-instead-of-json")
async def create_with_data(session, url, book):
    async with session.post(url, data=book) as response:
        return await response.json()


@wrong(check.create_book, "a multipart FormData", problem="data-instead-of-json")
async def create_with_formdata(session, url, book):
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in book.items():
        form.add_field(key, str(value))
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.create_book, "json.dumps without a Content-Type", problem="missing-content-type")
async def create_dumps_without_header(session, url, book):
    async with session.post(url, data=json.dumps(book)) as response:
        return await response.json()


@wrong(check.create_book, "json.dumps labelled text/json", problem="wrong-content-type")
async def create_dumps_wrong_header(session, url, book):
    headers = {"Content-Type": "text/json"}
    async with session.post(url, data=json.dumps(book), headers=headers) as response:
        return await response.json()


@wrong(check.create_book, "json=json.dumps(book)", problem="double-encoded-json")
async def create_double_encoded(session, url, book):
    async with session.post(url, json=json.dumps(book)) as response:
        return await response.json()


@wrong(check.create_book, "a PUT", problem="wrong-method")
async def create_with_put(session, url, book):
    async with session.put(url, json=book) as response:
        return await response.json()


@wrong(check.create_book, "the values in the query string", problem="no-body")
async def create_in_query(session, url, book):
    params = {
        key: str(value) for key, value in book.items() if isinstance(value, (str, int, float))
    }
    async with session.post(url, params=params) as response:
        return await response.json()


@wrong(check.create_book, "a None value dropped", problem="wrong-body")
async def create_drops_none(session, url, book):
    book = {key: value for key, value in book.items() if value is not None}
    return await create_json(session, url, book)


@wrong(check.create_book, "True sent as 1", problem="wrong-body")
async def create_bools_as_ints(session, url, book):
    book = {k: int(v) if isinstance(v, bool) else v for k, v in book.items()}
    return await create_json(session, url, book)


@wrong(check.create_book, "mine: JSON bytes without a Content-Type", problem="missing-content-type")
async def create_bytes_unlabelled(session, url, book):
    async with session.post(url, data=json.dumps(book).encode()) as response:
        return await response.json()


@wrong(check.create_book, "mine: a PATCH", problem="wrong-method")
async def create_patch(session, url, book):
    async with session.patch(url, json=book) as response:
        return await response.json()


@wrong(check.create_book, "mine: the book wrapped in another object", problem="wrong-body")
async def create_wrapped(session, url, book):
    async with session.post(url, json={"book": book}) as response:
        return await response.json()


@wrong(check.create_book, "mine: a failed request returns None", problem="error-swallowed")
async def create_swallows(session, url, book):
    try:
        return await create_json(session, url, book)
    except aiohttp.ClientError:
        return None


@wrong(check.create_book, "mine: Latin-1 bytes labelled JSON", problem="not-json-body")
async def create_latin1(session, url, book):
    body = json.dumps(book, ensure_ascii=False).encode("latin-1", "replace")
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        return await r.json()


@wrong(check.create_book, "mine: the JSON in the query string", problem="no-body")
async def create_json_in_query(session, url, book):
    async with session.post(url, params={"json": json.dumps(book)}) as response:
        return await response.json()


@wrong(check.create_book, "mine: returns the echo's json part only", problem="not-the-echo")
async def create_returns_json_part(session, url, book):
    async with session.post(url, json=book) as response:
        return (await response.json())["json"]


@wrong(check.create_book, "posts to the parent path", problem="no-request")
async def create_wrong_path(session, url, book):
    return await create_json(session, url.rsplit("/", 1)[0], book)


@wrong(check.create_book, "json= under a form Content-Type header", problem="wrong-content-type")
async def create_json_labelled_form(session, url, book):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, json=book, headers=headers) as response:
        return await response.json()


# --- Task 3: send_feedback ---------------------------------------------------------------


@correct(check.send_feedback, "a dict")
async def feedback_dict(session, url, name, message):
    async with session.post(url, data={"name": name, "message": message}) as response:
        return await response.json()


@correct(check.send_feedback, "a list of pairs")
async def feedback_pairs(session, url, name, message):
    async with session.post(url, data=[("name", name), ("message", message)]) as response:
        return await response.json()


@correct(check.send_feedback, "a FormData without files stays urlencoded")
async def feedback_formdata_fields(session, url, name, message):
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("message", message)
    async with session.post(url, data=form) as response:
        return await response.json()


@correct(check.send_feedback, "urlencode by hand, with the Content-Type")
async def feedback_urlencode_by_hand(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.send_feedback, "mine: urlencode(quote_via=quote), bytes, charset in the label")
async def feedback_quote_via(session, url, name, message):
    body = urlencode({"name": name, "message": message}, quote_via=quote).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.send_feedback, "mine: a FormData built from a dict")
async def feedback_formdata_dict(session, url, name, message):
    form = aiohttp.FormData({"name": name, "message": message})
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.send_feedback, "json=", problem="json-instead-of-data")
async def feedback_json(session, url, name, message):
    async with session.post(url, json={"name": name, "message": message}) as response:
        return await response.json()


@wrong(check.send_feedback, "multipart forced", problem="multipart-instead-of-urlencoded")
async def feedback_multipart(session, url, name, message):
    form = aiohttp.FormData({"name": name, "message": message}, default_to_multipart=True)
    async with session.post(url, data=form) as response:
        return await response.json()


@wrong(check.send_feedback, "the body pasted together", problem="unencoded-form-body")
async def feedback_body_by_hand(session, url, name, message):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"name={name}&message={message}"
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@wrong(check.send_feedback, "urlencode without a Content-Type", problem="missing-content-type")
async def feedback_body_without_type(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    async with session.post(url, data=body) as response:
        return await response.json()


@wrong(check.send_feedback, "urlencode labelled text/html", problem="wrong-content-type")
async def feedback_body_wrong_type(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    async with session.post(url, data=body, headers={"Content-Type": "text/html"}) as response:
        return await response.json()


@wrong(check.send_feedback, "the fields in the query string", problem="fields-in-query")
async def feedback_in_query(session, url, name, message):
    async with session.post(url, params={"name": name, "message": message}) as response:
        return await response.json()


@wrong(check.send_feedback, "a GET", problem="wrong-method")
async def feedback_get(session, url, name, message):
    async with session.get(url, params={"name": name, "message": message}) as response:
        return await response.json()


@wrong(check.send_feedback, "name and message swapped", problem="wrong-fields")
async def feedback_swapped(session, url, name, message):
    return await feedback_dict(session, url, message, name)


@wrong(check.send_feedback, "the name only", problem="wrong-fields")
async def feedback_name_only(session, url, name, message):
    async with session.post(url, data={"name": name}) as response:
        return await response.json()


@wrong(check.send_feedback, "a POST with no body at all", problem="no-body")
async def feedback_no_body(session, url, name, message):
    async with session.post(url) as response:
        return await response.json()


@wrong(check.send_feedback, "each value quoted before data=", problem="double-encoded-form")
async def feedback_double_encoded(session, url, name, message):
    data = {"name": quote_plus(name), "message": quote_plus(message)}
    async with session.post(url, data=data) as response:
        return await response.json()


@wrong(check.send_feedback, "mine: the values stripped", problem="wrong-fields")
async def feedback_stripped(session, url, name, message):
    return await feedback_dict(session, url, name.strip(), message.strip())


@wrong(check.send_feedback, "mine: message quoted, name pasted", problem="unencoded-form-body")
async def feedback_name_pasted(session, url, name, message):
    body = f"name={name}&message={quote_plus(message)}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@wrong(check.send_feedback, "mine: JSON text labelled as a form", problem="json-instead-of-data")
async def feedback_json_labelled_form(session, url, name, message):
    body = json.dumps({"name": name, "message": message})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@wrong(check.send_feedback, "mine: a third field, the submit button", problem="wrong-fields")
async def feedback_extra_field(session, url, name, message):
    data = {"name": name, "message": message, "submit": "Send"}
    async with session.post(url, data=data) as response:
        return await response.json()


@wrong(check.send_feedback, "mine: a failed request returns {}", problem="error-swallowed")
async def feedback_swallows(session, url, name, message):
    try:
        return await feedback_dict(session, url, name, message)
    except aiohttp.ClientError:
        return {}


@wrong(check.send_feedback, "mine: returns the parsed form only", problem="not-the-echo")
async def feedback_returns_form(session, url, name, message):
    return (await feedback_dict(session, url, name, message))["form"]


@wrong(check.send_feedback, "a slash added to the URL", problem="no-request")
async def feedback_wrong_path(session, url, name, message):
    return await feedback_dict(session, url + "/", name, message)


@wrong(check.send_feedback, "data= under a JSON Content-Type header", problem="wrong-content-type")
async def feedback_form_labelled_json(session, url, name, message):
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data={"name": name, "message": message}, headers=headers) as r:
        return await r.json()


# --- Task 4: rename_book -----------------------------------------------------------------


@correct(check.rename_book, "headers with encode_basic_auth")
async def rename_headers(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password), "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@correct(check.rename_book, "a JSON merge patch says so in its Content-Type")
async def rename_merge_patch(session, url, title, etag, user, password):
    headers = {
        "authorization": aiohttp.encode_basic_auth(user, password),
        "if-match": etag,
        "Content-Type": "application/merge-patch+json",
    }
    async with session.request("PATCH", url, json={"title": title}, headers=headers) as response:
        return await response.json()


@correct(check.rename_book, "base64 of the UTF-8 credentials by hand: the same bytes")
async def rename_own_base64(session, url, title, etag, user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@correct(check.rename_book, "mine: a JsonPayload via session.request, CIMultiDict headers")
async def rename_json_payload(session, url, title, etag, user, password):
    headers = CIMultiDict({"Authorization": aiohttp.encode_basic_auth(user, password)})
    headers.add("If-Match", etag)
    body = aiohttp.JsonPayload({"title": title})
    async with session.request("PATCH", url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.rename_book, "mine: UTF-8 JSON bytes with a charset label")
async def rename_utf8_bytes(session, url, title, etag, user, password):
    headers = {
        "Authorization": aiohttp.encode_basic_auth(user, password),
        "If-Match": etag,
        "Content-Type": "application/json; charset=utf-8",
    }
    body = json.dumps({"title": title}, ensure_ascii=False).encode()
    async with session.patch(url, data=body, headers=headers) as response:
        return await response.json()


def _auth(user, password):
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


@wrong(check.rename_book, "a PUT", problem="wrong-method")
async def rename_put(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.put(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "auth=aiohttp.BasicAuth(...)", problem="deprecated-basic-auth")
async def rename_deprecated_auth(session, url, title, etag, user, password):
    auth = aiohttp.BasicAuth(user, password, encoding="utf-8")
    async with session.patch(
        url, json={"title": title}, headers={"If-Match": etag}, auth=auth
    ) as response:
        return await response.json()


@wrong(check.rename_book, "no Authorization at all", problem="missing-auth")
async def rename_no_auth(session, url, title, etag, user, password):
    async with session.patch(url, json={"title": title}, headers={"If-Match": etag}) as response:
        return await response.json()


@wrong(check.rename_book, "user:password in plain text", problem="basic-not-base64")
async def rename_plain_credentials(session, url, title, etag, user, password):
    headers = {"Authorization": f"Basic {user}:{password}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "a Bearer token", problem="wrong-auth-scheme")
async def rename_bearer(session, url, title, etag, user, password):
    headers = {"Authorization": f"Bearer {password}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "the user upper-cased", problem="wrong-credentials")
async def rename_changed_user(session, url, title, etag, user, password):
    return await rename_headers(session, url, title, etag, user.upper(), password)


@wrong(check.rename_book, "no If-Match", problem="missing-header")
async def rename_no_if_match(session, url, title, etag, user, password):
    async with session.patch(url, json={"title": title}, headers=_auth(user, password)) as resp:
        return await resp.json()


@wrong(check.rename_book, "the etag's quotes stripped", problem="wrong-header")
async def rename_etag_unquoted(session, url, title, etag, user, password):
    return await rename_headers(session, url, title, etag.strip('"'), user, password)


@wrong(check.rename_book, "the title as a form", problem="data-instead-of-json")
async def rename_with_data(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, data={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "more than the title in the body", problem="wrong-body")
async def rename_whole_book(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    body = {"title": title, "year": 2024}
    async with session.patch(url, json=body, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "'Basic ' + encode_basic_auth(...)", problem="auth-scheme-doubled")
async def rename_basic_twice(session, url, title, etag, user, password):
    headers = {"Authorization": "Basic " + aiohttp.encode_basic_auth(user, password),
               "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "base64 of Latin-1 bytes", problem="credentials-not-utf8")
async def rename_latin1(session, url, title, etag, user, password):
    token = base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()
    headers = {"Authorization": f"Basic {token}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "json=json.dumps({...})", problem="double-encoded-json")
async def rename_double_encoded(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, json=json.dumps({"title": title}), headers=headers) as r:
        return await r.json()


@wrong(check.rename_book, "JSON text without a Content-Type", problem="missing-content-type")
async def rename_dumps_unlabelled(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, data=json.dumps({"title": title}), headers=headers) as r:
        return await r.json()


@wrong(check.rename_book, "JSON text labelled text/json", problem="wrong-content-type")
async def rename_dumps_text_json(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag, "Content-Type": "text/json"}
    async with session.patch(url, data=json.dumps({"title": title}), headers=headers) as r:
        return await r.json()


@wrong(check.rename_book, "str() of the dict labelled JSON", problem="not-json-body")
async def rename_repr_body(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag, "Content-Type": "application/json"}
    async with session.patch(url, data=str({"title": title}), headers=headers) as r:
        return await r.json()


@wrong(check.rename_book, "the repr of b64encode's bytes in the header",
       problem="wrong-credentials")
async def rename_bytes_repr(session, url, title, etag, user, password):
    token = base64.b64encode(f"{user}:{password}".encode())
    headers = {"Authorization": f"Basic {token}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: the base64 token without the scheme", problem="wrong-auth-scheme")
async def rename_no_scheme(session, url, title, etag, user, password):
    token = aiohttp.encode_basic_auth(user, password).removeprefix("Basic ")
    headers = {"Authorization": token, "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: the title in the query string", problem="no-body")
async def rename_title_in_query(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, params={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: the etag sent as ETag, not If-Match", problem="missing-header")
async def rename_etag_header(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "ETag": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: POST with X-HTTP-Method-Override", problem="wrong-method")
async def rename_override(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag, "X-HTTP-Method-Override": "PATCH"}
    async with session.post(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: a failed request returns None", problem="error-swallowed")
async def rename_swallows(session, url, title, etag, user, password):
    try:
        return await rename_headers(session, url, title, etag, user, password)
    except aiohttp.ClientError:
        return None


@wrong(check.rename_book, "mine: non-ASCII characters dropped from the credentials",
       problem="wrong-credentials")
async def rename_ascii_only(session, url, title, etag, user, password):
    raw = f"{user}:{password}".encode("ascii", "ignore")
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode(), "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@wrong(check.rename_book, "mine: the etag echoed into the body too", problem="wrong-body")
async def rename_etag_in_body(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, json={"title": title, "etag": etag}, headers=headers) as r:
        return await r.json()


@wrong(check.rename_book, "PATCHes the collection, not the book's URL", problem="no-request")
async def rename_collection(session, url, title, etag, user, password):
    return await rename_headers(session, url.rsplit("/", 1)[0], title, etag, user, password)


@wrong(check.rename_book, "returns the status, not the echo", problem="not-the-echo")
async def rename_returns_status(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return response.status


@wrong(check.create_book, "the stub", problem="not-implemented")
async def create_book_stub(session, url, book):
    raise NotImplementedError("your code here")


@wrong(check.send_feedback, "the stub", problem="not-implemented")
async def send_feedback_stub(session, url, name, message):
    raise NotImplementedError("your code here")


@wrong(check.rename_book, "the stub", problem="not-implemented")
async def rename_book_stub(session, url, title, etag, user, password):
    raise NotImplementedError("your code here")


# --- every answer, and the messages that matter -------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_search_shows_the_mangled_query():
    verdict = check.search.diagnose(search_by_hand)
    assert "q = 'crème brûlée '" in verdict.message
    assert "params=" in verdict.hint


def test_search_names_the_stripped_spaces():
    verdict = check.search.diagnose(search_stripped)
    assert "spaces at either end were cut off" in verdict.message


def test_search_success_message_is_deterministic():
    first = check.search.diagnose(search_pairs)
    assert first == check.search.diagnose(search_multidict)
    assert first.render().startswith("✅ PASS search: GET")


def test_create_book_names_the_form_content_type():
    verdict = check.create_book.diagnose(create_with_data)
    assert "application/x-www-form-urlencoded" in verdict.message
    assert "json=book" in verdict.hint


def test_create_book_quotes_the_servers_refusal():
    async def repr_labelled_json(session, url, book):
        headers = {"Content-Type": "application/json"}
        async with session.post(url, data=str(book), headers=headers) as response:
            return await response.json()

    verdict = check.create_book.diagnose(repr_labelled_json)
    assert verdict.problem == "not-json-body"
    assert "the server answered 400: 'the body is not valid JSON" in verdict.message
    assert "Python's repr" in verdict.message


def test_rename_book_points_at_the_doubled_scheme():
    verdict = check.rename_book.diagnose(rename_basic_twice)
    assert "'Basic Basic" in verdict.message
    assert "already returns the whole value" in verdict.hint


def test_rename_book_never_claims_how_the_header_was_built():
    verdict = check.rename_book.diagnose(rename_own_base64)
    assert verdict.passed
    assert "encode_basic_auth" not in verdict.message


def test_rename_book_hint_names_the_json_body():
    verdict = check.rename_book.diagnose(rename_with_data)
    assert "json={'title': title}" in verdict.hint
