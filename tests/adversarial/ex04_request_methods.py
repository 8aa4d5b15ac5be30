"""Learner answers to exercise 04 (request methods), right and wrong, from the task text."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

import aiohttp
from multidict import CIMultiDict, MultiDict
from yarl import URL

from adversarial import correct, wrong
from local_server.checks import request_methods as check


async def _echo(session, method, url, **kwargs):
    async with session.request(method, url, **kwargs) as response:
        return await response.json()


# --- Task 1 · search -----------------------------------------------------------------------


@correct(check.search, "a list of (key, value) pairs")
async def search_pairs(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    async with session.get(url, params=params) as response:
        return await response.json()


@correct(check.search, "a MultiDict built with add()")
async def search_multidict(session, url, query, tags):
    params = MultiDict(q=query)
    for tag in tags:
        params.add("tag", tag)
    return await _echo(session, "GET", url, params=params)


@correct(check.search, "a dict with a list as the tag value")
async def search_dict_of_list(session, url, query, tags):
    async with session.get(url, params={"q": query, "tag": list(tags)}) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.search, "the URL built with yarl's with_query, passed as a URL object")
async def search_yarl(session, url, query, tags):
    target = URL(url).with_query([("q", query), *(("tag", t) for t in tags)])
    async with session.get(target) as response:
        return await response.json()


@correct(check.search, "urllib.parse.urlencode pasted onto the URL")
async def search_urlencode(session, url, query, tags):
    query_string = urlencode({"q": query, "tag": tags}, doseq=True)
    async with session.get(f"{url}?{query_string}") as response:
        return await response.json()


@correct(check.search, "each value quoted with quote(safe='') by hand")
async def search_quote_by_hand(session, url, query, tags):
    parts = [f"q={quote(query, safe='')}"] + [f"tag={quote(tag, safe='')}" for tag in tags]
    async with session.get(url + "?" + "&".join(parts)) as response:
        return await response.json()


@wrong(check.search, "pastes the query into an f-string: & + # keep their URL meaning",
       rule="`q`: the search text, exactly as given",
       problem="unencoded-query")
async def search_fstring(session, url, query, tags):
    tag_part = "".join(f"&tag={tag}" for tag in tags)
    async with session.get(f"{url}?q={query}{tag_part}") as response:
        return await response.json()


@wrong(check.search, "quotes the text and then passes it to params=: encoded twice",
       rule="`q`: the search text, exactly as given",
       problem="double-encoded-query")
async def search_double_encoded(session, url, query, tags):
    params = [("q", quote(query))] + [("tag", tag) for tag in tags]
    return await _echo(session, "GET", url, params=params)


@wrong(check.search, "joins the tags with commas into one value",
       rule="`tag`: once **per tag**",
       problem="tags-not-repeated")
async def search_comma_tags(session, url, query, tags):
    return await _echo(session, "GET", url, params={"q": query, "tag": ",".join(tags)})


@wrong(check.search, "sets params['tag'] in a loop: only the last tag survives",
       rule="`tag`: once **per tag**",
       problem="tags-not-repeated")
async def search_dict_last_tag(session, url, query, tags):
    params = {"q": query}
    for tag in tags:
        params["tag"] = tag
    return await _echo(session, "GET", url, params=params)


@wrong(check.search, "names the key 'tags' instead of 'tag'",
       rule="`tag`: once **per tag**",
       problem="missing-tags")
async def search_key_tags(session, url, query, tags):
    return await _echo(session, "GET", url, params={"q": query, "tags": tags})


@wrong(check.search, "dedupes the tags with set(): order (and repeats) lost",
       rule="in the order given",
       problem="wrong-tags")
async def search_set_tags(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in set(tags)]
    return await _echo(session, "GET", url, params=params)


@wrong(check.search, "strips the search text before sending it",
       rule="`q`: the search text, exactly as given",
       problem="wrong-query")
async def search_strips_query(session, url, query, tags):
    params = [("q", query.strip())] + [("tag", tag) for tag in tags]
    return await _echo(session, "GET", url, params=params)


@wrong(check.search, "sends a POST with the params",
       rule="It sends a **GET** to `url`",
       problem="wrong-method")
async def search_post(session, url, query, tags):
    params = [("q", query)] + [("tag", tag) for tag in tags]
    return await _echo(session, "POST", url, params=params)


@wrong(check.search, "replaces spaces by + by hand and pastes the rest",
       rule="`q`: the search text, exactly as given",
       problem="unencoded-query")
async def search_plus_for_space(session, url, query, tags):
    text = query.replace(" ", "+")
    tag_part = "".join(f"&tag={tag}" for tag in tags)
    return await _echo(session, "GET", f"{url}?q={text}{tag_part}")


# --- Task 2 · create_book ------------------------------------------------------------------


@correct(check.create_book, "encoded with json.dumps, sent with data= and the Content-Type")
async def create_book_dumps_with_header(session, url, book):
    body = json.dumps(book)
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as response:
        return await response.json()


@correct(check.create_book, "session.request('POST', ..., json=) with a status check")
async def create_book_request(session, url, book):
    async with session.request("POST", url, json=book) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.create_book, "UTF-8 bytes, lower-case content-type header")
async def create_book_bytes(session, url, book):
    body = json.dumps(book, ensure_ascii=False).encode("utf-8")
    return await _echo(
        session, "POST", url, data=body, headers={"content-type": "application/json"}
    )


@correct(check.create_book, "aiohttp.JsonPayload as the body")
async def create_book_json_payload(session, url, book):
    async with session.post(url, data=aiohttp.JsonPayload(book)) as response:
        return await response.json()


@wrong(check.create_book, "data=book sends a form: True and None become text",
       rule="as a JSON body (`Content-Type: application/json`)",
       problem="data-instead-of-json")
async def create_book_form(session, url, book):
    async with session.post(url, data=book) as response:
        return await response.json()


@wrong(check.create_book, "json=json.dumps(book): encoded twice, a JSON string",
       rule="the server must read each back with its type",
       problem="double-encoded-json")
async def create_book_double_json(session, url, book):
    async with session.post(url, json=json.dumps(book)) as response:
        return await response.json()


@wrong(check.create_book, "data=json.dumps(book) without a Content-Type: sent as text/plain",
       rule="`Content-Type: application/json`",
       problem="missing-content-type")
async def create_book_dumps_no_header(session, url, book):
    async with session.post(url, data=json.dumps(book)) as response:
        return await response.json()


@wrong(check.create_book, "PUT instead of POST", rule="It **POST**s the dict `book`",
       problem="wrong-method")
async def create_book_put(session, url, book):
    async with session.put(url, json=book) as response:
        return await response.json()


@wrong(check.create_book, "str(book) is a Python repr, not JSON",
       rule="as a JSON body",
       problem="not-json-body")
async def create_book_repr(session, url, book):
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=str(book), headers=headers) as response:
        return await response.json()


@wrong(check.create_book, "drops the None values before sending",
       rule="The book holds ... `None`: the server must read each back with its type",
       problem="wrong-body")
async def create_book_drops_none(session, url, book):
    cleaned = {key: value for key, value in book.items() if value is not None}
    async with session.post(url, json=cleaned) as response:
        return await response.json()


@wrong(check.create_book, "returns the echo as text instead of the parsed JSON",
       rule="returns the echo, `await response.json()`",
       problem="not-the-echo")
async def create_book_returns_text(session, url, book):
    async with session.post(url, json=book) as response:
        return await response.text()


@wrong(check.create_book, "stringifies every value 'to be safe'",
       rule="the server must read each back with its type",
       problem="wrong-body")
async def create_book_stringified(session, url, book):
    async with session.post(url, json={k: str(v) for k, v in book.items()}) as response:
        return await response.json()


@wrong(check.create_book, "data=book with a JSON Content-Type: a form body labelled as JSON",
       rule="as a JSON body (`Content-Type: application/json`)",
       problem="data-instead-of-json")
async def create_book_form_labelled_json(session, url, book):
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=book, headers=headers) as response:
        return await response.json()


# --- Task 3 · send_feedback ----------------------------------------------------------------


@correct(check.send_feedback, "a FormData without files (sent urlencoded)")
async def send_feedback_formdata(session, url, name, message):
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("message", message)
    async with session.post(url, data=form) as response:
        return await response.json()


@correct(check.send_feedback, "urlencode by hand, with the Content-Type header")
async def send_feedback_urlencode(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await _echo(session, "POST", url, data=body, headers=headers)


@correct(check.send_feedback, "a list of pairs")
async def send_feedback_pairs(session, url, name, message):
    async with session.post(url, data=[("name", name), ("message", message)]) as response:
        response.raise_for_status()
        return await response.json()


@correct(check.send_feedback, "a MultiDict via session.request")
async def send_feedback_multidict(session, url, name, message):
    return await _echo(session, "POST", url, data=MultiDict(name=name, message=message))


@wrong(check.send_feedback, "json= instead of a form",
       rule="`Content-Type: application/x-www-form-urlencoded`",
       problem="json-instead-of-data")
async def send_feedback_json(session, url, name, message):
    return await _echo(session, "POST", url, json={"name": name, "message": message})


@wrong(check.send_feedback, "forces multipart with default_to_multipart=True",
       rule="encoded as an HTML form without files sends them",
       problem="multipart-instead-of-urlencoded")
async def send_feedback_multipart(session, url, name, message):
    form = aiohttp.FormData({"name": name, "message": message}, default_to_multipart=True)
    return await _echo(session, "POST", url, data=form)


@wrong(check.send_feedback, "pastes the body by hand: & and = in the message split it",
       rule="The message contains `+`, `=`, `&`, `%`",
       problem="unencoded-form-body")
async def send_feedback_pasted_body(session, url, name, message):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"name={name}&message={message}"
    return await _echo(session, "POST", url, data=body, headers=headers)


@wrong(check.send_feedback, "urlencode()d string without a Content-Type: sent as text/plain",
       rule="`Content-Type: application/x-www-form-urlencoded`",
       problem="missing-content-type")
async def send_feedback_urlencode_no_header(session, url, name, message):
    body = urlencode({"name": name, "message": message})
    return await _echo(session, "POST", url, data=body)


@wrong(check.send_feedback, "sends the fields in the query string, not the body",
       rule="It **POST**s two fields ... encoded as an HTML form",
       problem="fields-in-query")
async def send_feedback_in_query(session, url, name, message):
    return await _echo(session, "POST", url, params={"name": name, "message": message})


@wrong(check.send_feedback, "flattens the line break to a space",
       rule="The message contains ... a line break",
       problem="wrong-fields")
async def send_feedback_no_newline(session, url, name, message):
    data = {"name": name, "message": message.replace("\n", " ")}
    return await _echo(session, "POST", url, data=data)


@wrong(check.send_feedback, "quotes the values before data=: encoded twice",
       rule="The message contains `+`, `=`, `&`, `%`",
       problem="double-encoded-form")
async def send_feedback_double_encoded(session, url, name, message):
    data = {"name": quote(name), "message": quote(message)}
    return await _echo(session, "POST", url, data=data)


@wrong(check.send_feedback, "PUT instead of POST", rule="It **POST**s two fields",
       problem="wrong-method")
async def send_feedback_put(session, url, name, message):
    return await _echo(session, "PUT", url, data={"name": name, "message": message})


# --- Task 4 · rename_book ------------------------------------------------------------------


@correct(check.rename_book, "lower-case header names")
async def rename_book_lowercase(session, url, title, etag, user, password):
    headers = {"authorization": aiohttp.encode_basic_auth(user, password), "if-match": etag}
    async with session.patch(url, json={"title": title}, headers=headers) as response:
        return await response.json()


@correct(check.rename_book, "CIMultiDict with aiohttp.hdrs names, via session.request")
async def rename_book_hdrs(session, url, title, etag, user, password):
    headers = CIMultiDict()
    headers[aiohttp.hdrs.AUTHORIZATION] = aiohttp.encode_basic_auth(user, password)
    headers[aiohttp.hdrs.IF_MATCH] = etag
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@correct(check.rename_book, "JSON encoded by hand with its Content-Type")
async def rename_book_dumps(session, url, title, etag, user, password):
    headers = {
        "Authorization": aiohttp.encode_basic_auth(user, password),
        "If-Match": etag,
        "Content-Type": "application/json",
    }
    async with session.patch(url, data=json.dumps({"title": title}), headers=headers) as r:
        r.raise_for_status()
        return await r.json()


@wrong(check.rename_book, "deprecated auth=aiohttp.BasicAuth(user, password)",
       rule="`Authorization: Basic ...` for `user` and `password`, built the aiohttp 3.14 way",
       problem="deprecated-basic-auth")
async def rename_book_basic_auth(session, url, title, etag, user, password):
    async with session.patch(
        url, json={"title": title}, auth=aiohttp.BasicAuth(user, password),
        headers={"If-Match": etag},
    ) as response:
        return await response.json()


@wrong(check.rename_book, "credentials not base64-encoded: f'Basic {user}:{password}'",
       rule="`Authorization: Basic ...` for `user` and `password`",
       problem="basic-not-base64")
async def rename_book_plain_credentials(session, url, title, etag, user, password):
    headers = {"Authorization": f"Basic {user}:{password}", "If-Match": etag}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "adds 'Basic ' in front of encode_basic_auth, which already has it",
       rule="`Authorization: Basic ...`, built the aiohttp 3.14 way",
       problem="auth-scheme-doubled")
async def rename_book_basic_twice(session, url, title, etag, user, password):
    headers = {"Authorization": "Basic " + aiohttp.encode_basic_auth(user, password),
               "If-Match": etag}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "PUT instead of PATCH", rule="it is a **PATCH** to `url`",
       problem="wrong-method")
async def rename_book_put(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password), "If-Match": etag}
    return await _echo(session, "PUT", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "POST instead of PATCH", rule="it is a **PATCH** to `url`",
       problem="wrong-method")
async def rename_book_post(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password), "If-Match": etag}
    return await _echo(session, "POST", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "strips the quotes from the etag",
       rule="`If-Match: <etag>`, the etag exactly as given (quotes included)",
       problem="wrong-header")
async def rename_book_unquoted_etag(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password),
               "If-Match": etag.strip('"')}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "If-None-Match instead of If-Match",
       rule="`If-Match: <etag>`",
       problem="missing-header")
async def rename_book_if_none_match(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password),
               "If-None-Match": etag}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "sends the title as a form (data=) instead of JSON",
       rule="the JSON body `{\"title\": title}`",
       problem="data-instead-of-json")
async def rename_book_form_body(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password), "If-Match": etag}
    return await _echo(session, "PATCH", url, data={"title": title}, headers=headers)


@wrong(check.rename_book, "base64 of user:password by hand, in Latin-1 (BasicAuth's default)",
       rule="built the aiohttp 3.14 way",
       problem="credentials-not-utf8")
async def rename_book_manual_latin1(session, url, title, etag, user, password):
    token = base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")
    headers = {"Authorization": f"Basic {token}", "If-Match": etag}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "user and password swapped in encode_basic_auth",
       rule="`Authorization: Basic ...` for `user` and `password`",
       problem="wrong-credentials")
async def rename_book_swapped_credentials(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(password, user), "If-Match": etag}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)


@wrong(check.rename_book, "wraps the etag in another pair of quotes",
       rule="`If-Match: <etag>`, the etag exactly as given (quotes included)",
       problem="wrong-header")
async def rename_book_extra_quotes(session, url, title, etag, user, password):
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password),
               "If-Match": f'"{etag}"'}
    return await _echo(session, "PATCH", url, json={"title": title}, headers=headers)
