"""Learner answers to exercise 01 (client sessions), right and wrong, from the task text."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from adversarial import correct, wrong
from local_server.checks import client_sessions as check


async def _text(session, url):
    async with session.get(url) as response:
        return await response.text()


# --- Task 1 · fetch_all --------------------------------------------------------------------


@correct(check.fetch_all, "TaskGroup instead of gather")
async def fetch_all_taskgroup(urls):
    async with aiohttp.ClientSession() as session:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_text(session, url)) for url in urls]
    return [task.result() for task in tasks]


@correct(check.fetch_all, "explicit try/finally close around gather")
async def fetch_all_try_finally(urls):
    session = aiohttp.ClientSession()
    try:
        return list(await asyncio.gather(*(_text(session, url) for url in urls)))
    finally:
        await session.close()


@correct(check.fetch_all, "tasks created up front, then awaited in order")
async def fetch_all_tasks_in_order(urls):
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(_text(session, url)) for url in urls]
        return [await task for task in tasks]


@correct(check.fetch_all, "as_completed with the index carried along, into a preallocated list")
async def fetch_all_as_completed_indexed(urls):
    async with aiohttp.ClientSession() as session:

        async def one(index, url):
            return index, await _text(session, url)

        bodies = [""] * len(urls)
        for next_done in asyncio.as_completed([one(i, url) for i, url in enumerate(urls)]):
            index, body = await next_done
            bodies[index] = body
        return bodies


@wrong(check.fetch_all, "a session per request (the seed's bad_fetch)",
       rule="open **one** `ClientSession`",
       problem="session-per-request")
async def fetch_all_session_per_request(urls):
    async def one(url):
        async with aiohttp.ClientSession() as session:
            return await _text(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "one session, but awaits the requests one by one",
       rule="run the requests **concurrently**, not one after another",
       problem="sequential")
async def fetch_all_sequential(urls):
    async with aiohttp.ClientSession() as session:
        return [await _text(session, url) for url in urls]


@wrong(check.fetch_all, "appends bodies in completion order",
       rule="in the same order as `urls`",
       problem="wrong-order")
async def fetch_all_completion_order(urls):
    bodies = []
    async with aiohttp.ClientSession() as session:
        for next_done in asyncio.as_completed([_text(session, url) for url in urls]):
            bodies.append(await next_done)
    return bodies


@wrong(check.fetch_all, "never closes the session",
       rule="open **one** `ClientSession` and close it before returning",
       problem="session-left-open")
async def fetch_all_never_closed(urls):
    session = aiohttp.ClientSession()
    return await asyncio.gather(*(_text(session, url) for url in urls))


@wrong(check.fetch_all, "closes the session only when every request succeeds",
       rule="open one ClientSession and close it before returning",
       problem="session-left-open-on-error")
async def fetch_all_close_only_on_success(urls):
    session = aiohttp.ClientSession()
    bodies = await asyncio.gather(*(_text(session, url) for url in urls))
    await session.close()
    return bodies


@wrong(check.fetch_all, "returns bytes (read()) instead of text",
       rule="returns the response bodies as text",
       problem="bytes-not-text")
async def fetch_all_bytes(urls):
    async def one(session, url):
        async with session.get(url) as response:
            return await response.read()

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, url) for url in urls))


@wrong(check.fetch_all, "copies a pool setting, TCPConnector(limit=1): requests queue one by one",
       rule="run the requests **concurrently**, not one after another",
       problem="sequential")
async def fetch_all_limit_one(urls):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        return await asyncio.gather(*(_text(session, url) for url in urls))


_shared: dict[str, aiohttp.ClientSession] = {}


@wrong(check.fetch_all, "keeps one module-level session for every call and never closes it",
       rule="open **one** `ClientSession` and close it before returning",
       problem="session-left-open")
async def fetch_all_global_session(urls):
    if "session" not in _shared or _shared["session"].closed:
        _shared["session"] = aiohttp.ClientSession()
    session = _shared["session"]
    return await asyncio.gather(*(_text(session, url) for url in urls))


@wrong(check.fetch_all, "return_exceptions=True: a failed request becomes an exception in the list",
       rule="returns the response bodies as text",
       problem="error-swallowed")
async def fetch_all_return_exceptions(urls):
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_text(session, url) for url in urls),
                                    return_exceptions=True)


# --- Task 2 · make_api_session -------------------------------------------------------------


@correct(check.make_api_session, "lower-case header names")
def make_api_session_lowercase(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"authorization": f"Bearer {token}", "accept": "application/json"},
    )


@correct(check.make_api_session, "CIMultiDict and aiohttp.hdrs constants")
def make_api_session_hdrs(base_url, token):
    headers = CIMultiDict()
    headers[aiohttp.hdrs.AUTHORIZATION] = "Bearer " + token
    headers[aiohttp.hdrs.ACCEPT] = "application/json"
    return aiohttp.ClientSession(base_url, headers=headers)


@correct(check.make_api_session, "base_url as a yarl URL, headers as a list of pairs")
def make_api_session_yarl(base_url, token):
    return aiohttp.ClientSession(
        base_url=URL(base_url),
        headers=[("Authorization", f"Bearer {token}"), ("Accept", "application/json")],
    )


@correct(check.make_api_session, "adds a default timeout as well")
def make_api_session_extras(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=aiohttp.ClientTimeout(total=30),
    )


@wrong(check.make_api_session, "declared async def: returns a coroutine, not a session",
       rule="**returns** (does not close) a `ClientSession`",
       problem="async-def")
async def make_api_session_async(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


@wrong(check.make_api_session, "Authorization carries the token without the Bearer scheme",
       rule="every request carries `Authorization: Bearer <token>`",
       problem="wrong-auth-header")
def make_api_session_no_scheme(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url, headers={"Authorization": token, "Accept": "application/json"}
    )


@wrong(check.make_api_session, "forgot the Accept header",
       rule="every request carries ... `Accept: application/json`",
       problem="wrong-accept-header")
def make_api_session_no_accept(base_url, token):
    return aiohttp.ClientSession(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


@wrong(check.make_api_session, "Content-Type: application/json where Accept was asked",
       rule="every request carries ... `Accept: application/json`",
       problem="wrong-accept-header")
def make_api_session_content_type(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@wrong(check.make_api_session, "hard-codes the lesson's demo token, ignores `token`",
       rule="`Authorization: Bearer <token>`",
       problem="wrong-auth-header")
def make_api_session_demo_token(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": "Bearer demo-token", "Accept": "application/json"},
    )


@wrong(check.make_api_session, "no base_url: relative paths cannot be resolved",
       rule="`session.get(\"/headers\")` goes to `base_url` + `/headers`",
       problem="no-base-url")
def make_api_session_no_base_url(base_url, token):
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )


@wrong(check.make_api_session, "puts the headers in the cookies",
       rule="every request carries `Authorization: Bearer <token>` and `Accept: ...`",
       problem="no-auth-header")
def make_api_session_cookies(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        cookies={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


@wrong(check.make_api_session, "forgot the f of the f-string: sends the literal '{token}'",
       rule="`Authorization: Bearer <token>`",
       problem="wrong-auth-header")
def make_api_session_no_fstring(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": "Bearer {token}", "Accept": "application/json"},
    )


# --- Task 3 · ApiClient --------------------------------------------------------------------


@correct(check.ApiClient, "session created in __aenter__, closed in __aexit__")
class ApiClientPlain:
    def __init__(self, base_url):
        self.base_url = base_url
        self.session = None

    async def __aenter__(self):
        self.session = aiohttp.ClientSession(base_url=self.base_url)
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()

    async def get_json(self, path):
        async with self.session.get(path) as response:
            return await response.json()


@correct(check.ApiClient, "an AsyncExitStack owns the session")
class ApiClientExitStack:
    def __init__(self, base_url):
        self._base_url = base_url
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self):
        self._session = await self._stack.enter_async_context(
            aiohttp.ClientSession(base_url=self._base_url)
        )
        return self

    async def __aexit__(self, *exc_info):
        await self._stack.aclose()
        return False

    async def get_json(self, path):
        async with self._session.get(path) as response:
            response.raise_for_status()
            return await response.json()


@correct(check.ApiClient, "joins the URL itself instead of base_url; close() method")
class ApiClientJoinsUrl:
    def __init__(self, base_url):
        self.base = URL(base_url)
        self.session: aiohttp.ClientSession | None = None

    async def close(self):
        if self.session is not None:
            await self.session.close()

    async def __aenter__(self):
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        await self.close()

    async def get_json(self, path):
        async with self.session.get(self.base.join(URL(path))) as response:
            return await response.json()


@correct(check.ApiClient, "the session is made in __init__ (called inside a coroutine)")
class ApiClientSessionInInit:
    def __init__(self, base_url):
        self.session = aiohttp.ClientSession(base_url)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()

    async def get_json(self, path):
        response = await self.session.get(path)
        async with response:
            return await response.json()


@wrong(check.ApiClient, "a new session in every get_json call",
       rule="all calls share **one** session",
       problem="session-per-call")
class ApiClientSessionPerCall:
    def __init__(self, base_url):
        self.base_url = base_url

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        pass

    async def get_json(self, path):
        async with aiohttp.ClientSession(base_url=self.base_url) as session:
            async with session.get(path) as response:
                return await response.json()


@wrong(check.ApiClient, "__aexit__ returns True: swallows the block's exception",
       rule="Exceptions from the block must not be swallowed",
       problem="swallowed-exception")
class ApiClientSwallows(ApiClientPlain):
    async def __aexit__(self, *exc_info):
        await self.session.close()
        return True


@wrong(check.ApiClient, "closes the session only when the block did not raise",
       rule="closed when the block ends, **also when the block raises**",
       problem="not-closed-on-error")
class ApiClientCloseOnSuccess(ApiClientPlain):
    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self.session.close()


@wrong(check.ApiClient, "__aenter__ forgets to return self",
       rule="`async with ApiClient(base_url) as api: data = await api.get_json(...)`",
       problem="aenter-not-self")
class ApiClientNoReturnSelf(ApiClientPlain):
    async def __aenter__(self):
        self.session = aiohttp.ClientSession(base_url=self.base_url)


@wrong(check.ApiClient, "__aexit__ calls session.close() without await",
       rule="the session is closed when the block ends",
       problem="missing-await")
class ApiClientCloseNotAwaited(ApiClientPlain):
    async def __aexit__(self, *exc_info):
        self.session.close()


@wrong(check.ApiClient, "never closes the session",
       rule="the session is closed when the block ends",
       problem="not-closed-on-exit")
class ApiClientNeverCloses(ApiClientPlain):
    async def __aexit__(self, *exc_info):
        return None


@wrong(check.ApiClient, "force_close=True connector: sequential calls never reuse a connection",
       rule="one pooled connection when the calls are sequential",
       problem="connections-not-reused")
class ApiClientForceClose(ApiClientPlain):
    async def __aenter__(self):
        self.session = aiohttp.ClientSession(
            base_url=self.base_url, connector=aiohttp.TCPConnector(force_close=True)
        )
        return self


@wrong(check.ApiClient, "get_json returns the text, not the parsed JSON",
       rule="`get_json` returns the parsed JSON",
       problem="wrong-json")
class ApiClientReturnsText(ApiClientPlain):
    async def get_json(self, path):
        async with self.session.get(path) as response:
            return await response.text()


@wrong(check.ApiClient, "creates a session in __init__ and another in __aenter__: one leaks",
       rule="all calls share **one** session ... the session is closed",
       problem="not-closed-on-exit")
class ApiClientTwoSessions(ApiClientPlain):
    def __init__(self, base_url):
        self.base_url = base_url
        self.session = aiohttp.ClientSession(base_url=base_url)
