"""Exercise 01's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. The answers marked "own" were written from the
exercise notebook alone, before the checks were rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import client_sessions as check

# --- Task 1: fetch_all -------------------------------------------------------------------


async def _read(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


@correct(check.fetch_all, "gather over one session")
async def fetch_all_gather(urls):
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_read(session, url) for url in urls))


@correct(check.fetch_all, "tasks and asyncio.wait, results read in order")
async def fetch_all_taskgroup(urls):
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(_read(session, url)) for url in urls]
        await asyncio.wait(tasks)
        return [task.result() for task in tasks]


@correct(check.fetch_all, "concurrency bounded by a semaphore of 5, not one at a time")
async def fetch_all_bounded(urls):
    limit = asyncio.Semaphore(5)

    async def bounded(session, url):
        async with limit:
            return await _read(session, url)

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(bounded(session, url) for url in urls)))


@correct(check.fetch_all, "explicit close in a finally")
async def fetch_all_explicit_close(urls):
    session = aiohttp.ClientSession()
    try:
        return await asyncio.gather(*(_read(session, url) for url in urls))
    finally:
        await session.close()


@correct(check.fetch_all, "own: a TaskGroup, results read from the tasks")
async def own_fetch_all_taskgroup(urls):
    async with aiohttp.ClientSession() as session:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_read(session, url)) for url in urls]
        return [task.result() for task in tasks]


@correct(check.fetch_all, "own: bytes decoded with the response's own charset")
async def own_fetch_all_decode(urls):
    session = aiohttp.ClientSession()
    try:

        async def one(url):
            async with session.get(url) as response:
                body = await response.read()
                return body.decode(response.get_encoding())

        return list(await asyncio.gather(*(one(url) for url in urls)))
    finally:
        await session.close()


@correct(check.fetch_all, "own: as_completed, each body put back in its place by index")
async def own_fetch_all_as_completed(urls):
    async with aiohttp.ClientSession() as session:

        async def one(index, url):
            return index, await _read(session, url)

        bodies = [None] * len(urls)
        for job in asyncio.as_completed([one(i, url) for i, url in enumerate(urls)]):
            index, text = await job
            bodies[index] = text
        return bodies


@wrong(check.fetch_all, "a session per request", problem="session-per-request")
async def fetch_all_session_per_request(urls):
    async def one(url):
        async with aiohttp.ClientSession() as session:
            return await _read(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "awaits each request in turn", problem="sequential")
async def fetch_all_sequential(urls):
    async with aiohttp.ClientSession() as session:
        return [await _read(session, url) for url in urls]


@wrong(check.fetch_all, "own: a semaphore of 1 around gather", problem="sequential")
async def own_fetch_all_semaphore_of_one(urls):
    one_at_a_time = asyncio.Semaphore(1)

    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with one_at_a_time:
                return await _read(session, url)

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "never closes the session", problem="session-left-open")
async def fetch_all_never_closed(urls):
    session = aiohttp.ClientSession()
    return await asyncio.gather(*(_read(session, url) for url in urls))


@wrong(check.fetch_all, "own: connector_owner=False, and the connector is never closed",
       problem="session-left-open")  # fmt: skip
async def own_fetch_all_connector_not_owned(urls):
    connector = aiohttp.TCPConnector()
    async with aiohttp.ClientSession(connector=connector, connector_owner=False) as session:
        return await asyncio.gather(*(_read(session, url) for url in urls))


@wrong(check.fetch_all, "results in completion order", problem="wrong-order")
async def fetch_all_as_completed(urls):
    async with aiohttp.ClientSession() as session:
        return [await done for done in asyncio.as_completed([_read(session, u) for u in urls])]


@wrong(check.fetch_all, "returns bytes", problem="bytes-not-text")
async def fetch_all_bytes(urls):
    async with aiohttp.ClientSession() as session:

        async def raw(url):
            async with session.get(url) as response:
                return await response.read()

        return await asyncio.gather(*(raw(url) for url in urls))


@wrong(check.fetch_all, "returns the response objects", problem="not-text")
async def fetch_all_responses(urls):
    async with aiohttp.ClientSession() as session:

        async def response_of(url):
            async with session.get(url) as response:
                await response.read()
                return response

        return await asyncio.gather(*(response_of(url) for url in urls))


@wrong(check.fetch_all, "parses the bodies as JSON (they are text/plain)", problem="not-text")
async def fetch_all_json(urls):
    async with aiohttp.ClientSession() as session:

        async def parsed(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(*(parsed(url) for url in urls))


@wrong(check.fetch_all, "returns each body split into lines", problem="not-text")
async def fetch_all_lines(urls):
    return [text.splitlines() for text in await fetch_all_gather(urls)]


@wrong(check.fetch_all, "forgets to return", problem="wrong-return-type")
async def fetch_all_forgot_return(urls):
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(_read(session, url) for url in urls))


@wrong(check.fetch_all, "returns only the first body", problem="wrong-count")
async def fetch_all_first_only(urls):
    async with aiohttp.ClientSession() as session:
        return [await _read(session, urls[0])]


@wrong(check.fetch_all, "own: decodes every body as Latin-1", problem="wrong-text")
async def own_fetch_all_latin1(urls):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with session.get(url) as response:
                return (await response.read()).decode("latin-1")

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "decodes every body as UTF-8 (fails on the ISO-8859-1 one)",
       problem="wrong-text")  # fmt: skip
async def fetch_all_utf8_always(urls):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            async with session.get(url) as response:
                return (await response.read()).decode()

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "gathers the responses, reads them after the session closed",
       problem="read-after-close")  # fmt: skip
async def fetch_all_reads_after_close(urls):
    async with aiohttp.ClientSession() as session:
        responses = await asyncio.gather(*(session.get(url) for url in urls))
    return [await response.text() for response in responses]


@wrong(check.fetch_all, "fetches with urllib in threads: no ClientSession at all",
       problem="no-session-created")  # fmt: skip
async def fetch_all_urllib_threads(urls):
    def blocking(url):
        with urllib.request.urlopen(url) as response:
            return response.read().decode(response.headers.get_content_charset())

    return await asyncio.gather(*(asyncio.to_thread(blocking, url) for url in urls))


@wrong(check.fetch_all, "own: a failed request becomes ''", problem="error-swallowed")
async def own_fetch_all_swallow(urls):
    async with aiohttp.ClientSession() as session:

        async def one(url):
            try:
                return await _read(session, url)
            except aiohttp.ClientError:
                return ""

        return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_all, "own: close() after gather, skipped when a request raises",
       problem="session-left-open-on-error")  # fmt: skip
async def own_fetch_all_close_on_success(urls):
    session = aiohttp.ClientSession()
    bodies = await asyncio.gather(*(_read(session, url) for url in urls))
    await session.close()
    return bodies


@wrong(check.fetch_all, "own: session.close() without await", problem="missing-await")
async def own_fetch_all_close_not_awaited(urls):
    session = aiohttp.ClientSession()
    bodies = await asyncio.gather(*(_read(session, url) for url in urls))
    session.close()  # the mistake under test
    return bodies


@wrong(check.fetch_all, "returns the gather future without awaiting it", problem="missing-await")
async def fetch_all_gather_not_awaited(urls):
    session = aiohttp.ClientSession()
    return asyncio.gather(*(_read(session, url) for url in urls))


@wrong(check.fetch_all, "the seed's `except aiohttp.ClientTimeout:` (not an exception class)",
       problem="raised")  # fmt: skip
async def fetch_all_except_client_timeout(urls):
    async with aiohttp.ClientSession() as session:
        try:
            return await asyncio.gather(*(_read(session, url) for url in urls))
        except aiohttp.ClientTimeout:
            return []


@wrong(check.fetch_all, "return_exceptions=True, and the exceptions filtered out",
       problem="error-swallowed")  # fmt: skip
async def fetch_all_filters_errors(urls):
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(_read(session, u) for u in urls), return_exceptions=True)
        return [r for r in results if not isinstance(r, BaseException)]


@correct(check.fetch_all, "the error wrapped in the caller's own exception, `from` the original")
async def fetch_all_wraps_errors(urls):
    async with aiohttp.ClientSession() as session:
        try:
            return await asyncio.gather(*(_read(session, url) for url in urls))
        except aiohttp.ClientError as error:
            raise RuntimeError(f"fetch_all failed: {error}") from error


@wrong(check.fetch_all, "a plain def", problem="not-async")
def fetch_all_not_async(urls):
    return ["not fetched"] * len(urls)


@wrong(check.fetch_all, "time.sleep between requests", problem="blocked-loop")
async def fetch_all_time_sleep(urls):
    time.sleep(0.02)
    return await fetch_all_gather(urls)


@wrong(check.fetch_all, "the stub", problem="not-implemented")
async def fetch_all_stub(urls):
    raise NotImplementedError("your code here")


def test_fetch_all_names_the_session_count():
    verdict = check.fetch_all.diagnose(fetch_all_session_per_request)
    assert verdict.message == "20 sessions were created for 20 URLs."
    assert "one ClientSession" in verdict.hint


def test_sequential_names_the_loop_or_the_semaphore():
    loop = check.fetch_all.diagnose(fetch_all_sequential)
    assert "no other request of yours had started" in loop.message
    assert "`async with session.get(url) as response:`" in loop.message
    assert "gather" in loop.hint
    semaphore = check.fetch_all.diagnose(own_fetch_all_semaphore_of_one)
    assert "19 tasks of yours waited on a semaphore" in semaphore.message
    assert "`async with one_at_a_time:`" in semaphore.message
    assert "gather" not in semaphore.hint


def test_a_failure_closed_only_on_success_is_named():
    verdict = check.fetch_all.diagnose(own_fetch_all_close_on_success)
    assert "cut off mid-body" in verdict.message
    assert "ClientPayloadError (rightly)" in verdict.message


def test_a_hanging_answer_is_stopped_and_diagnosed():
    async def hangs(urls):
        await asyncio.Event().wait()

    started = time.perf_counter()
    verdict = check.fetch_all.diagnose(hangs, timeout=0.5)
    assert verdict.problem == "timeout"
    assert time.perf_counter() - started < 5


def test_a_blocked_event_loop_is_reported_without_waiting_forever(monkeypatch):
    from local_server.checks import harness

    monkeypatch.setattr(harness, "BLOCKED_LOOP_GRACE_SECONDS", 0.2)

    async def blocks(urls):
        time.sleep(1.0)

    verdict = check.fetch_all.diagnose(blocks, timeout=0.2)
    assert verdict.problem == "blocked-loop"
    time.sleep(1.0)  # let the blocked worker finish before the next test


def test_an_unexpected_error_is_reported_not_raised():
    async def raises(urls):
        return {}["missing"]

    verdict = check.fetch_all.diagnose(raises)
    assert verdict.problem == "raised"
    assert "KeyError" in verdict.message
    assert 'of raises(): `return {}["missing"]`' in verdict.message


def test_check_prints_a_verdict_and_returns_none(capsys):
    assert check.fetch_all(fetch_all_stub) is None
    assert capsys.readouterr().out.startswith("⏳ TO DO fetch_all: not implemented yet")


def test_something_not_callable_is_named():
    verdict = check.fetch_all.diagnose(None)
    assert verdict.problem == "not-callable"


# --- Task 2: make_api_session ------------------------------------------------------------

HEADERS = {"Accept": "application/json"}


@correct(check.make_api_session, "a dict of headers")
def session_with_dict(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


@correct(check.make_api_session, "a list of pairs, lower-case names")
def session_with_tuples(base_url, token):
    headers = [("authorization", "Bearer " + token), ("accept", "application/json")]
    return aiohttp.ClientSession(base_url=base_url, headers=headers)


@correct(check.make_api_session, "own: headers set after creating the session")
def own_session_headers_update(base_url, token):
    session = aiohttp.ClientSession(base_url=base_url)
    session.headers.update({"Authorization": "Bearer " + token, "Accept": "application/json"})
    return session


@correct(check.make_api_session, "own: a client middleware adds the headers")
def own_session_middleware(base_url, token):
    async def auth(request, handler):
        request.headers["Authorization"] = f"Bearer {token}"
        request.headers["Accept"] = "application/json"
        return await handler(request)

    return aiohttp.ClientSession(base_url=base_url, middlewares=(auth,))


@correct(check.make_api_session, "a module-level dict of shared headers, copied per call")
def session_with_shared_defaults(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url, headers={**HEADERS, "Authorization": f"Bearer {token}"}
    )


@wrong(check.make_api_session, "an async def: a coroutine in `async with`", problem="async-def")
async def session_from_async_def(base_url, token):
    return session_with_dict(base_url, token)


@wrong(check.make_api_session, "an async def that returns a session it closed",
       problem="async-def")  # fmt: skip
async def session_already_closed(base_url, token):
    async with session_with_dict(base_url, token) as session:
        return session


@wrong(check.make_api_session, "no base_url", problem="no-base-url")
def session_without_base_url(base_url, token):
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )


@wrong(check.make_api_session, "no Authorization header", problem="no-auth-header")
def session_without_auth(base_url, token):
    return aiohttp.ClientSession(base_url=base_url, headers={"Accept": "application/json"})


@wrong(check.make_api_session, "the token without 'Bearer '", problem="wrong-auth-header")
def session_without_bearer(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url, headers={"Authorization": token, "Accept": "application/json"}
    )


@wrong(check.make_api_session, "a hard-coded token", problem="wrong-auth-header")
def session_with_hard_coded_token(base_url, token):
    return session_with_dict(base_url, "s3cr3t")


@wrong(check.make_api_session, "own: basic auth instead of a bearer token",
       problem="wrong-auth-header")  # fmt: skip
def own_session_basic_auth(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={
            "Authorization": aiohttp.encode_basic_auth("user", token),
            "Accept": "application/json",
        },
    )


@wrong(check.make_api_session, "no Accept header", problem="wrong-accept-header")
def session_without_accept(base_url, token):
    return aiohttp.ClientSession(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


@wrong(check.make_api_session, "own: Content-Type where Accept was asked",
       problem="wrong-accept-header")  # fmt: skip
def own_session_content_type(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@wrong(check.make_api_session, "returns the headers, not a session", problem="not-a-session")
def returns_headers_not_session(base_url, token):
    return {"Authorization": f"Bearer {token}"}


_shared: list[aiohttp.ClientSession] = []


@wrong(check.make_api_session, "own: keeps the first session in a global and returns it again",
       problem="same-session-twice")  # fmt: skip
def own_session_cached(base_url, token):
    if not _shared:
        _shared.append(session_with_dict(base_url, token))
    return _shared[0]


@wrong(check.make_api_session, "own: a base URL copied from the docs instead of base_url",
       problem="wrong-url")  # fmt: skip
def own_session_hard_coded_base(base_url, token):
    return session_with_dict("http://127.0.0.1:1", token)


@wrong(check.make_api_session, "own: makes a spare session it never closes",
       problem="spare-session")  # fmt: skip
def own_session_spare(base_url, token):
    probe = aiohttp.ClientSession()
    assert not probe.closed
    return session_with_dict(base_url, token)


@wrong(check.make_api_session, "the stub", problem="not-implemented")
def make_api_session_stub(base_url, token):
    raise NotImplementedError("your code here")


# --- Task 3: ApiClient ---------------------------------------------------------------------


@correct(check.ApiClient, "the session opened in __aenter__")
class ClientOpeningInAenter:
    def __init__(self, base_url):
        self.base_url = base_url

    async def __aenter__(self):
        self.session = aiohttp.ClientSession(base_url=self.base_url)
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()

    async def get_json(self, path):
        async with self.session.get(path) as response:
            return await response.json()


@correct(check.ApiClient, "the session opened in __init__")
class ClientOpeningInInit(ClientOpeningInAenter):
    def __init__(self, base_url):
        self.session = aiohttp.ClientSession(base_url=base_url)

    async def __aenter__(self):
        return self


@correct(check.ApiClient, "an AsyncExitStack, URL joined by hand")
class ClientWithExitStack:
    def __init__(self, base_url):
        self.base_url = base_url

    async def __aenter__(self):
        self.stack = contextlib.AsyncExitStack()
        self.session = await self.stack.enter_async_context(aiohttp.ClientSession())
        return self

    async def __aexit__(self, *exc_info):
        return await self.stack.__aexit__(*exc_info)

    async def get_json(self, path):
        async with self.session.get(self.base_url + path) as response:
            return await response.json()


@correct(check.ApiClient, "own: the response read without async with (json() reads it all)")
class OwnClientPlainAwait(ClientOpeningInAenter):
    async def __aexit__(self, exc_type, exc, tb):
        await self.session.close()
        return False

    async def get_json(self, path):
        response = await self.session.get(path)
        return await response.json()


@correct(check.ApiClient, "own: raise_for_status and a close() method used by __aexit__")
class OwnClientWithClose(ClientOpeningInAenter):
    async def close(self):
        await self.session.close()

    async def __aexit__(self, *exc_info):
        await self.close()

    async def get_json(self, path):
        async with self.session.get(path, raise_for_status=True) as response:
            return await response.json()


@wrong(check.ApiClient, "never closes", problem="not-closed-on-exit")
class ClientNeverClosing(ClientOpeningInAenter):
    async def __aexit__(self, *exc_info):
        pass


@wrong(check.ApiClient, "closes only on success", problem="not-closed-on-error")
class ClientClosingOnlyOnSuccess(ClientOpeningInAenter):
    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self.session.close()


@wrong(check.ApiClient, "__aexit__ returns True", problem="swallowed-exception")
class ClientSwallowingErrors(ClientOpeningInAenter):
    async def __aexit__(self, *exc_info):
        await self.session.close()
        return True


@wrong(check.ApiClient, "a session per get_json call", problem="session-per-call")
class ClientWithSessionPerCall(ClientOpeningInAenter):
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        pass

    async def get_json(self, path):
        async with aiohttp.ClientSession(base_url=self.base_url) as session:
            async with session.get(path) as response:
                return await response.json()


@wrong(check.ApiClient, "__aenter__ forgets to return self", problem="aenter-not-self")
class ClientForgettingReturnSelf(ClientOpeningInAenter):
    async def __aenter__(self):
        self.session = aiohttp.ClientSession(base_url=self.base_url)


@wrong(check.ApiClient, "own: __aenter__ returns the session", problem="aenter-not-self")
class OwnClientReturningSession(ClientOpeningInAenter):
    async def __aenter__(self):
        await super().__aenter__()
        return self.session


@wrong(check.ApiClient, "force_close=True", problem="connections-not-reused")
class ClientWithoutKeepAlive(ClientOpeningInAenter):
    async def __aenter__(self):
        connector = aiohttp.TCPConnector(force_close=True)
        self.session = aiohttp.ClientSession(base_url=self.base_url, connector=connector)
        return self


@wrong(check.ApiClient, "own: sends Connection: close", problem="connections-not-reused")
class OwnClientConnectionClose(ClientOpeningInAenter):
    async def get_json(self, path):
        async with self.session.get(path, headers={"Connection": "close"}) as response:
            return await response.json()


@wrong(check.ApiClient, "own: connector_owner=False, the connector never closed",
       problem="not-closed-on-exit")  # fmt: skip
class OwnClientConnectorNotOwned(ClientOpeningInAenter):
    async def __aenter__(self):
        connector = aiohttp.TCPConnector()
        self.session = aiohttp.ClientSession(
            base_url=self.base_url, connector=connector, connector_owner=False
        )
        return self


@wrong(check.ApiClient, "returns the text", problem="wrong-json")
class ClientReturningText(ClientOpeningInAenter):
    async def get_json(self, path):
        async with self.session.get(path) as response:
            return await response.text()


@wrong(check.ApiClient, "own: returns json() without await", problem="missing-await")
class OwnClientJsonNotAwaited(ClientOpeningInAenter):
    async def get_json(self, path):
        async with self.session.get(path) as response:
            await response.read()
            return response.json()


@wrong(check.ApiClient, "own: the session and base URL kept on the class",
       problem="clients-share-state")  # fmt: skip
class OwnClientClassState:
    session = None
    base_url = ""

    def __init__(self, base_url):
        OwnClientClassState.base_url = base_url

    async def __aenter__(self):
        if OwnClientClassState.session is None or OwnClientClassState.session.closed:
            OwnClientClassState.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info):
        await OwnClientClassState.session.close()

    async def get_json(self, path):
        url = OwnClientClassState.base_url + path
        async with OwnClientClassState.session.get(url) as response:
            return await response.json()


@wrong(check.ApiClient, "fetches with urllib in a thread: no session at all",
       problem="no-session-created")  # fmt: skip
class ClientWithUrllib:
    def __init__(self, base_url):
        self.base_url = base_url

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return None

    async def get_json(self, path):
        def blocking():
            with urllib.request.urlopen(self.base_url + path) as response:
                return json.loads(response.read())

        return await asyncio.to_thread(blocking)


@wrong(check.ApiClient, "the stub", problem="not-implemented")
class ApiClientStub:
    def __init__(self, base_url):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.fetch_all.diagnose(fetch_all_as_completed)
    assert first == check.fetch_all.diagnose(fetch_all_as_completed)
    assert "shuffled order" in first.message
