"""httpbin's cookie, auth and header endpoints: /user-agent, /ip, /cookies*, /basic-auth,
/hidden-basic-auth, /bearer, /response-headers."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest
from conftest import assert_json_error, json_error_detail

from local_server.httpbin_auth import SANDBOX


def basic(user: str, password: str, encoding: str = "utf-8") -> dict[str, str]:
    """An Authorization header, the 3.14 way (``BasicAuth``/``auth=`` are deprecated)."""
    return {"Authorization": aiohttp.encode_basic_auth(user, password, encoding=encoding)}


def raw_basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


# --- /user-agent, /ip ------------------------------------------------------------------------


async def test_user_agent(server_client):
    resp = await server_client.get("/user-agent", headers={"User-Agent": "course/1.0 (é)"})
    assert resp.status == 200
    assert await resp.json() == {"user-agent": "course/1.0 (é)"}


async def test_user_agent_default_is_aiohttps(server_client):
    data = await (await server_client.get("/user-agent")).json()
    assert data["user-agent"].startswith("Python/") and "aiohttp/" in data["user-agent"]


async def test_user_agent_absent_is_null(server_client):
    resp = await server_client.get("/user-agent", skip_auto_headers=["User-Agent"])
    assert await resp.json() == {"user-agent": None}


async def test_ip(server_client):
    resp = await server_client.get("/ip")
    assert resp.status == 200
    assert await resp.json() == {"origin": "127.0.0.1"}


# --- /cookies --------------------------------------------------------------------------------


async def test_cookies_empty(server_client):
    resp = await server_client.get("/cookies")
    assert resp.status == 200
    assert await resp.json() == {"cookies": {}}


async def test_cookies_shows_what_was_sent(server_client):
    resp = await server_client.get("/cookies", headers={"Cookie": "a=1; b=two; c="})
    assert await resp.json() == {"cookies": {"a": "1", "b": "two", "c": ""}}


async def test_cookies_set_redirects_with_set_cookie(server_client):
    resp = await server_client.get(
        "/cookies/set", params=[("a", "1"), ("b", "x y")], allow_redirects=False
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "/cookies"
    set_cookies = resp.headers.getall("Set-Cookie")
    assert len(set_cookies) == 2
    assert any(c.startswith("a=1;") and "Path=/" in c for c in set_cookies)
    assert resp.cookies["b"].value == "x y"


async def test_cookies_set_then_followed_shows_them(server_client):
    """The test client's jar is ``unsafe`` (it keeps cookies from 127.0.0.1)."""
    resp = await server_client.get("/cookies/set", params={"k1": "v1", "k2": "hello world"})
    assert resp.status == 200
    assert str(resp.url.path) == "/cookies"
    assert await resp.json() == {"cookies": {"k1": "v1", "k2": "hello world"}}
    assert [h.status for h in resp.history] == [302]


async def test_cookies_set_path_form(server_client):
    resp = await server_client.get("/cookies/set/flavour/oat%20meal")
    assert await resp.json() == {"cookies": {"flavour": "oat meal"}}


async def test_cookies_delete_expires_them(server_client):
    await server_client.get("/cookies/set", params={"a": "1", "b": "2", "c": "3"})
    resp = await server_client.get("/cookies/delete?a&c", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/cookies"
    expired = resp.headers.getall("Set-Cookie")
    assert len(expired) == 2
    assert all("Max-Age=0" in c and "1970" in c for c in expired)
    resp = await server_client.get("/cookies")
    assert await resp.json() == {"cookies": {"b": "2"}}


async def test_cookies_delete_nothing_is_fine(server_client):
    resp = await server_client.get("/cookies/delete", allow_redirects=False)
    assert resp.status == 302 and "Set-Cookie" not in resp.headers


async def test_default_cookie_jar_ignores_an_ip_host_and_unsafe_keeps_it(server_client):
    """The lesson's warning, checked: aiohttp's default jar drops cookies from 127.0.0.1."""
    url = server_client.make_url("/cookies/set?seen=yes")
    async with aiohttp.ClientSession() as session:
        data = await (await session.get(url)).json()
    assert data == {"cookies": {}}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        data = await (await session.get(url)).json()
    assert data == {"cookies": {"seen": "yes"}}


@pytest.mark.parametrize(
    "query",
    [
        "a%20b=1",  # a space in the name
        "a%3Bb=1",  # a semicolon in the name
        "%C3%A9=1",  # a non-ASCII name
        "expires=1",  # names the cookie syntax reserves
        "Path=1",
        "max-age=1",
        "a=%0D%0ASet-Cookie:%20evil=1",  # header injection
        "a=%00",
        "a=%C3%A9",  # non-ASCII value
        "&".join(f"c{i}=1" for i in range(21)),  # over the cap
    ],
)
async def test_cookies_set_bad_input_is_400(server_client, query):
    resp = await server_client.get(f"/cookies/set?{query}", allow_redirects=False)
    await assert_json_error(resp, 400)
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(
    "path", ["/cookies/set/a%20b/1", "/cookies/set/expires/1", "/cookies/set/a/%0Dx"]
)
async def test_cookies_set_path_bad_input_is_400(server_client, path):
    resp = await server_client.get(path, allow_redirects=False)
    await assert_json_error(resp, 400)


@pytest.mark.parametrize("query", ["a%20b", "domain", "&".join(f"c{i}" for i in range(21))])
async def test_cookies_delete_bad_input_is_400(server_client, query):
    resp = await server_client.get(f"/cookies/delete?{query}", allow_redirects=False)
    await assert_json_error(resp, 400)


async def test_twenty_cookies_are_allowed(server_client):
    params = {f"c{i}": str(i) for i in range(20)}
    data = await (await server_client.get("/cookies/set", params=params)).json()
    assert data == {"cookies": params}


# --- /basic-auth, /hidden-basic-auth ---------------------------------------------------------


async def test_basic_auth_success(server_client):
    resp = await server_client.get("/basic-auth/ada/s3cret", headers=basic("ada", "s3cret"))
    assert resp.status == 200
    assert await resp.json() == {"authenticated": True, "user": "ada"}


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
async def test_basic_auth_non_ascii_credentials(server_client, encoding):
    """encode_basic_auth sends UTF-8; the old BasicAuth default was Latin-1: both work."""
    headers = basic("zoë", "pässword", encoding)
    resp = await server_client.get("/basic-auth/zoë/pässword", headers=headers)
    assert resp.status == 200
    assert await resp.json() == {"authenticated": True, "user": "zoë"}


async def test_basic_auth_password_may_hold_a_colon_and_be_empty(server_client):
    resp = await server_client.get("/basic-auth/u/a:b", headers=basic("u", "a:b"))
    assert resp.status == 200
    resp = await server_client.get("/basic-auth/u/%20", headers=basic("u", " "))
    assert resp.status == 200


async def test_basic_auth_scheme_is_case_insensitive(server_client):
    header = basic("u", "p")["Authorization"].replace("Basic", "bAsIc")
    resp = await server_client.get("/basic-auth/u/p", headers={"Authorization": header})
    assert resp.status == 200


BAD_BASIC_HEADERS = [
    None,  # no header at all
    basic("ada", "wrong")["Authorization"],
    basic("eve", "s3cret")["Authorization"],
    basic("ada", "s3cret ")["Authorization"],
    "Basic",
    "Basic ",
    "Basic !!!!",  # not base64
    "Basic YWRh",  # base64 of "ada": no colon
    "Basic YWRhOnMzY3JldA",  # missing padding is not valid base64
    "Basic é",  # not even ASCII
    raw_basic(b"\xff\xfe:\x00")["Authorization"],  # neither UTF-8 nor the right Latin-1
    "Bearer YWRhOnMzY3JldA==",  # the right credentials under the wrong scheme
    "Digest username=ada",
]


@pytest.mark.parametrize("header", BAD_BASIC_HEADERS)
async def test_basic_auth_failure_is_401_with_challenge(server_client, header):
    headers = {"Authorization": header} if header is not None else {}
    resp = await server_client.get("/basic-auth/ada/s3cret", headers=headers)
    await assert_json_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="Fake Realm"'


@pytest.mark.parametrize("header", BAD_BASIC_HEADERS)
async def test_hidden_basic_auth_failure_is_404_without_challenge(server_client, header):
    headers = {"Authorization": header} if header is not None else {}
    resp = await server_client.get("/hidden-basic-auth/ada/s3cret", headers=headers)
    await assert_json_error(resp, 404)
    assert "WWW-Authenticate" not in resp.headers


async def test_hidden_basic_auth_success(server_client):
    resp = await server_client.get("/hidden-basic-auth/ada/s3cret", headers=basic("ada", "s3cret"))
    assert resp.status == 200
    assert await resp.json() == {"authenticated": True, "user": "ada"}


async def test_basic_auth_with_credentials_in_the_url(server_client):
    """The client turns user:password@ in the URL into the header (no deprecated auth=)."""
    url = server_client.make_url("/basic-auth/ada/s3cret").with_user("ada").with_password("s3cret")
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert (await resp.json())["user"] == "ada"


# --- /bearer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_bearer_success(server_client, scheme):
    resp = await server_client.get("/bearer", headers={"Authorization": f"{scheme} tok.en-1"})
    assert resp.status == 200
    assert await resp.json() == {"authenticated": True, "token": "tok.en-1"}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dTpw", "Token abc", "Bearerabc"],
)
async def test_bearer_failure_is_401(server_client, header):
    headers = {"Authorization": header} if header is not None else {}
    resp = await server_client.get("/bearer", headers=headers)
    await assert_json_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == "Bearer"


# --- /response-headers -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_response_headers_sets_and_echoes(server_client, method):
    params = [("X-Course", "aiohttp"), ("X-Multi", "1"), ("X-Multi", "2")]
    resp = await server_client.request(method, "/response-headers", params=params)
    assert resp.status == 200
    assert resp.headers["X-Course"] == "aiohttp"
    assert resp.headers.getall("X-Multi") == ["1", "2"]
    raw = await resp.read()
    data = json.loads(raw)
    assert data == {
        "Content-Type": "application/json",
        **SANDBOX,
        "Content-Length": str(len(raw)),
        "X-Course": "aiohttp",
        "X-Multi": ["1", "2"],
    }
    assert resp.headers["Content-Length"] == str(len(raw))


async def test_response_headers_content_type_can_be_chosen(server_client):
    """Useful for the lesson on ContentTypeError: a JSON body that says it is text."""
    resp = await server_client.get(
        "/response-headers", params={"Content-Type": "text/plain; charset=utf-8"}
    )
    assert resp.headers.getall("Content-Type") == ["text/plain; charset=utf-8"]
    with pytest.raises(aiohttp.ContentTypeError):
        await resp.json()
    data = await resp.json(content_type=None)
    assert data["Content-Type"] == "text/plain; charset=utf-8"


async def test_response_headers_can_set_a_cookie(server_client):
    resp = await server_client.get("/response-headers", params={"Set-Cookie": "k=v; Path=/"})
    assert resp.cookies["k"].value == "v"


async def test_response_headers_without_query(server_client):
    resp = await server_client.get("/response-headers")
    raw = await resp.read()
    assert json.loads(raw) == {
        "Content-Type": "application/json", **SANDBOX, "Content-Length": str(len(raw))
    }


@pytest.mark.parametrize(
    "name", ["Refresh", "Content-Security-Policy", "X-Content-Type-Options", "refresh"]
)
async def test_response_headers_refuses_what_would_make_it_act_in_a_browser(server_client, name):
    resp = await server_client.get("/response-headers", params={name: "0;url=http://example"})
    assert "act in a browser" in await json_error_detail(resp, 400)


async def test_response_headers_reflected_html_stays_sandboxed(server_client):
    params = {"Content-Type": "text/html", "X-A": "<script>alert(1)</script>"}
    resp = await server_client.get("/response-headers", params=params)
    assert resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_response_headers_head(server_client):
    resp = await server_client.head("/response-headers", params={"X-A": "1"})
    assert resp.status == 200 and resp.headers["X-A"] == "1"
    assert await resp.read() == b""


@pytest.mark.parametrize(
    "query",
    [
        "X-A=1%0D%0AX-Injected:%201",  # CR LF: header injection
        "X-A=1%0AX-B:%202",
        "X-A=%00",
        "X-A=%7F",
        "X%0D%0AB=1",
        "X%20A=1",  # space in a name
        "X:A=1",
        "=1",  # empty name
        "%C3%A9=1",
        "Content-Length=0",
        "content-length=99",
        "Transfer-Encoding=chunked",
        "Connection=close",
        "Upgrade=websocket",
        "&".join(f"X-{i}=1" for i in range(21)),  # over the cap
    ],
)
async def test_response_headers_bad_input_is_400(server_client, query):
    resp = await server_client.get(f"/response-headers?{query}")
    await assert_json_error(resp, 400)
    assert "X-Injected" not in resp.headers and "X-B" not in resp.headers


async def test_response_headers_tab_and_non_ascii_values_are_fine(server_client):
    resp = await server_client.get("/response-headers", params={"X-A": "a\tb", "X-B": "é"})
    assert resp.status == 200
    assert resp.headers["X-A"] == "a\tb" and resp.headers["X-B"] == "é"
