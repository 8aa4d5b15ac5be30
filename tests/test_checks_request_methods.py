"""Exercise 04's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from multidict import MultiDict
from yarl import URL

from local_server.checks import request_methods as check

# --- Task 1: search ----------------------------------------------------------------------------


async def search_pairs(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


async def search_multidict(session, url, query, tags):
    params = MultiDict([("q", query)])
    params.extend(("tag", tag) for tag in tags)
    async with session.get(url, params=params) as response:
        return await response.json()


async def search_list_value(session, url, query, tags):
    async with session.get(url, params={"q": query, "tag": tags}) as response:
        return await response.json()


async def search_yarl(session, url, query, tags):
    target = URL(url).with_query([("q", query)] + [("tag", tag) for tag in tags])
    async with session.get(target) as response:
        return await response.json()


async def search_urlencode(session, url, query, tags):
    """Correct too: urlencode does encode each value."""
    query_string = urlencode([("q", query)] + [("tag", tag) for tag in tags])
    async with session.get(f"{url}?{query_string}") as response:
        response.raise_for_status()
        return await response.json()


async def search_own_session(session, url, query, tags):
    async with aiohttp.ClientSession() as own:
        return await search_pairs(own, url, query, tags)


@pytest.mark.parametrize(
    "answer",
    [
        search_pairs,
        search_multidict,
        search_list_value,
        search_yarl,
        search_urlencode,
        search_own_session,
    ],
)
def test_search_accepts_correct_alternatives(answer):
    verdict = check.search.diagnose(answer)
    assert verdict.passed, verdict.render()


async def search_by_hand(session, url, query, tags):
    tag_part = "&".join(f"tag={tag}" for tag in tags)
    async with session.get(f"{url}?q={query}&{tag_part}") as response:
        return await response.json()


async def search_quoted_then_params(session, url, query, tags):
    params = [("q", quote(query))] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


async def search_dict_last_tag_wins(session, url, query, tags):
    params = {"q": query}
    for tag in tags:
        params["tag"] = tag
    async with session.get(url, params=params) as response:
        return await response.json()


async def search_tags_joined(session, url, query, tags):
    async with session.get(url, params={"q": query, "tag": ",".join(tags)}) as response:
        return await response.json()


async def search_first_tag_only(session, url, query, tags):
    async with session.get(url, params=[("q", query), ("tag", tags[0])]) as response:
        return await response.json()


async def search_tags_reversed(session, url, query, tags):
    return await search_pairs(session, url, query, list(reversed(tags)))


async def search_post(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.post(url, params=params) as response:
        return await response.json()


async def search_in_body(session, url, query, tags):
    data = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, data=data) as response:
        return await response.json()


async def search_wrong_key(session, url, query, tags):
    params = [("query", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


async def search_lowercased(session, url, query, tags):
    return await search_pairs(session, url, query.lower().upper(), tags)


async def search_wrong_path(session, url, query, tags):
    return await search_pairs(session, url + "/", query, tags)


async def search_returns_text(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.text()


async def search_forgot_await(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        await response.read()
        return response.json()


async def search_returns_response(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        await response.read()
        return response


def search_not_async(session, url, query, tags):
    return {}


async def search_stub(session, url, query, tags):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (search_by_hand, "unencoded-query"),
        (search_quoted_then_params, "double-encoded-query"),
        (search_dict_last_tag_wins, "tags-not-repeated"),
        (search_tags_joined, "tags-not-repeated"),
        (search_first_tag_only, "tags-not-repeated"),
        (search_tags_reversed, "wrong-tags"),
        (search_post, "wrong-method"),
        (search_in_body, "params-in-body"),
        (search_wrong_key, "missing-query"),
        (search_lowercased, "wrong-query"),
        (search_wrong_path, "no-request"),
        (search_returns_text, "not-the-echo"),
        (search_forgot_await, "missing-await"),
        (search_returns_response, "not-the-echo"),
        (search_not_async, "not-async"),
        (search_stub, "not-implemented"),
    ],
)
def test_search_diagnoses_each_mistake(answer, problem):
    verdict = check.search.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
    assert verdict.message


def test_search_shows_the_mangled_query():
    verdict = check.search.diagnose(search_by_hand)
    assert "q = 'crème brûlée '" in verdict.message
    assert "params=" in verdict.hint


def test_search_success_message_is_deterministic():
    first = check.search.diagnose(search_pairs).render()
    assert first == check.search.diagnose(search_multidict).render()
    assert first.startswith("✅ PASS search: GET")


# --- Task 2: create_book -----------------------------------------------------------------------


async def create_json(session, url, book):
    async with session.post(url, json=book) as response:
        return await response.json()


async def create_dumps_with_header(session, url, book):
    body = json.dumps(book)
    async with session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return await response.json()


async def create_bytes_with_charset(session, url, book):
    body = json.dumps(book, ensure_ascii=False).encode("utf-8")
    headers = {"content-type": "application/json; charset=utf-8"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


async def create_with_request(session, url, book):
    async with session.request("POST", url, json=book) as response:
        response.raise_for_status()
        return await response.json()


@pytest.mark.parametrize(
    "answer",
    [create_json, create_dumps_with_header, create_bytes_with_charset, create_with_request],
)
def test_create_book_accepts_correct_alternatives(answer):
    verdict = check.create_book.diagnose(answer)
    assert verdict.passed, verdict.render()


async def create_with_data(session, url, book):
    async with session.post(url, data=book) as response:
        return await response.json()


async def create_with_formdata(session, url, book):
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in book.items():
        form.add_field(key, str(value))
    async with session.post(url, data=form) as response:
        return await response.json()


async def create_dumps_without_header(session, url, book):
    async with session.post(url, data=json.dumps(book)) as response:
        return await response.json()


async def create_dumps_wrong_header(session, url, book):
    headers = {"Content-Type": "text/json"}
    async with session.post(url, data=json.dumps(book), headers=headers) as response:
        return await response.json()


async def create_double_encoded(session, url, book):
    async with session.post(url, json=json.dumps(book)) as response:
        return await response.json()


async def create_with_put(session, url, book):
    async with session.put(url, json=book) as response:
        return await response.json()


async def create_in_query(session, url, book):
    params = {key: str(value) for key, value in book.items() if not isinstance(value, list)}
    async with session.post(url, params=params) as response:
        return await response.json()


async def create_changed_book(session, url, book):
    book.pop("isbn")
    return await create_json(session, url, book)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (create_with_data, "data-instead-of-json"),
        (create_with_formdata, "data-instead-of-json"),
        (create_dumps_without_header, "missing-content-type"),
        (create_dumps_wrong_header, "wrong-content-type"),
        (create_double_encoded, "double-encoded-json"),
        (create_with_put, "wrong-method"),
        (create_in_query, "no-body"),
        (create_changed_book, "wrong-body"),
    ],
)
def test_create_book_diagnoses_each_mistake(answer, problem):
    verdict = check.create_book.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_create_book_names_the_form_content_type():
    verdict = check.create_book.diagnose(create_with_data)
    assert "application/x-www-form-urlencoded" in verdict.message
    assert "json=book" in verdict.hint


# --- Task 3: send_feedback ---------------------------------------------------------------------


async def feedback_dict(session, url, name, message):
    async with session.post(url, data={"name": name, "message": message}) as response:
        return await response.json()


async def feedback_pairs(session, url, name, message):
    async with session.post(url, data=[("name", name), ("message", message)]) as response:
        return await response.json()


async def feedback_formdata_fields(session, url, name, message):
    """FormData without files stays urlencoded."""
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("message", message)
    async with session.post(url, data=form) as response:
        return await response.json()


async def feedback_urlencode_by_hand(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@pytest.mark.parametrize(
    "answer",
    [feedback_dict, feedback_pairs, feedback_formdata_fields, feedback_urlencode_by_hand],
)
def test_send_feedback_accepts_correct_alternatives(answer):
    verdict = check.send_feedback.diagnose(answer)
    assert verdict.passed, verdict.render()


async def feedback_json(session, url, name, message):
    async with session.post(url, json={"name": name, "message": message}) as response:
        return await response.json()


async def feedback_multipart(session, url, name, message):
    form = aiohttp.FormData({"name": name, "message": message}, default_to_multipart=True)
    async with session.post(url, data=form) as response:
        return await response.json()


async def feedback_body_by_hand(session, url, name, message):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"name={name}&message={message}"
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


async def feedback_body_without_type(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    async with session.post(url, data=body) as response:
        return await response.json()


async def feedback_body_wrong_type(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    async with session.post(url, data=body, headers={"Content-Type": "text/html"}) as response:
        return await response.json()


async def feedback_in_query(session, url, name, message):
    async with session.post(url, params={"name": name, "message": message}) as response:
        return await response.json()


async def feedback_get(session, url, name, message):
    async with session.get(url, params={"name": name, "message": message}) as response:
        return await response.json()


async def feedback_swapped(session, url, name, message):
    return await feedback_dict(session, url, message, name)


async def feedback_name_only(session, url, name, message):
    async with session.post(url, data={"name": name}) as response:
        return await response.json()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (feedback_json, "json-instead-of-data"),
        (feedback_multipart, "multipart-instead-of-urlencoded"),
        (feedback_body_by_hand, "unencoded-form-body"),
        (feedback_body_without_type, "missing-content-type"),
        (feedback_body_wrong_type, "wrong-content-type"),
        (feedback_in_query, "fields-in-query"),
        (feedback_get, "wrong-method"),
        (feedback_swapped, "wrong-fields"),
        (feedback_name_only, "wrong-fields"),
    ],
)
def test_send_feedback_diagnoses_each_mistake(answer, problem):
    verdict = check.send_feedback.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 4: rename_book -----------------------------------------------------------------------


async def rename_headers(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password), "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_merge_patch(session, url, title, etag, user, password):
    """Correct too: a JSON merge patch says so in its content type."""
    headers = {
        "authorization": aiohttp.encode_basic_auth(user, password),
        "if-match": etag,
        "Content-Type": "application/merge-patch+json",
    }
    async with session.request("PATCH", url, json={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_own_base64(session, url, title, etag, user, password):
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@pytest.mark.parametrize("answer", [rename_headers, rename_merge_patch, rename_own_base64])
def test_rename_book_accepts_correct_alternatives(answer):
    verdict = check.rename_book.diagnose(answer)
    assert verdict.passed, verdict.render()


def _auth(user, password):
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def rename_put(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.put(url, json={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_deprecated_auth(session, url, title, etag, user, password):
    auth = aiohttp.BasicAuth(user, password)
    async with session.patch(
        url, json={"title": title}, headers={"If-Match": etag}, auth=auth
    ) as response:
        return await response.json()


async def rename_no_auth(session, url, title, etag, user, password):
    async with session.patch(url, json={"title": title}, headers={"If-Match": etag}) as response:
        return await response.json()


async def rename_plain_credentials(session, url, title, etag, user, password):
    headers = {"Authorization": f"Basic {user}:{password}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_bearer(session, url, title, etag, user, password):
    headers = {"Authorization": f"Bearer {password}", "If-Match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_swapped_credentials(session, url, title, etag, user, password):
    return await rename_headers(session, url, title, etag, user.upper(), password)


async def rename_no_if_match(session, url, title, etag, user, password):
    async with session.patch(url, json={"title": title}, headers=_auth(user, password)) as resp:
        return await resp.json()


async def rename_etag_unquoted(session, url, title, etag, user, password):
    return await rename_headers(session, url, title, etag.strip('"'), user, password)


async def rename_with_data(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    async with session.patch(url, data={"title": title}, headers=headers) as response:
        return await response.json()


async def rename_whole_book(session, url, title, etag, user, password):
    headers = {**_auth(user, password), "If-Match": etag}
    body = {"title": title, "year": 2024}
    async with session.patch(url, json=body, headers=headers) as response:
        return await response.json()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (rename_put, "wrong-method"),
        (rename_deprecated_auth, "deprecated-basic-auth"),
        (rename_no_auth, "missing-auth"),
        (rename_plain_credentials, "basic-not-base64"),
        (rename_bearer, "wrong-auth-scheme"),
        (rename_swapped_credentials, "wrong-credentials"),
        (rename_no_if_match, "missing-header"),
        (rename_etag_unquoted, "wrong-header"),
        (rename_with_data, "data-instead-of-json"),
        (rename_whole_book, "wrong-body"),
    ],
)
def test_rename_book_diagnoses_each_mistake(answer, problem):
    verdict = check.rename_book.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_rename_book_hint_names_the_json_body():
    verdict = check.rename_book.diagnose(rename_with_data)
    assert "json={'title': title}" in verdict.hint
