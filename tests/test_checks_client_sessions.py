"""Exercise 01's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from local_server.checks import client_sessions as check

# --- Task 1: fetch_all -------------------------------------------------------------------


async def _read(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


async def fetch_all_gather(urls):
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_read(session, url) for url in urls))


async def fetch_all_taskgroup(urls):
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(_read(session, url)) for url in urls]
        await asyncio.wait(tasks)
        return [task.result() for task in tasks]


async def fetch_all_bounded(urls):
    """Correct too: concurrency bounded by a semaphore, not one at a time."""
    limit = asyncio.Semaphore(5)

    async def bounded(session, url):
        async with limit:
            return await _read(session, url)

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(bounded(session, url) for url in urls)))


async def fetch_all_explicit_close(urls):
    session = aiohttp.ClientSession()
    try:
        return await asyncio.gather(*(_read(session, url) for url in urls))
    finally:
        await session.close()


@pytest.mark.parametrize(
    "answer", [fetch_all_gather, fetch_all_taskgroup, fetch_all_bounded, fetch_all_explicit_close]
)
def test_fetch_all_accepts_correct_alternatives(answer):
    verdict = check.fetch_all.diagnose(answer)
    assert verdict.passed, verdict.render()


async def fetch_all_session_per_request(urls):
    async def one(url):
        async with aiohttp.ClientSession() as session:
            return await _read(session, url)

    return await asyncio.gather(*(one(url) for url in urls))


async def fetch_all_sequential(urls):
    async with aiohttp.ClientSession() as session:
        return [await _read(session, url) for url in urls]


async def fetch_all_never_closed(urls):
    session = aiohttp.ClientSession()
    return await asyncio.gather(*(_read(session, url) for url in urls))


async def fetch_all_as_completed(urls):
    async with aiohttp.ClientSession() as session:
        return [await done for done in asyncio.as_completed([_read(session, u) for u in urls])]


async def fetch_all_bytes(urls):
    async with aiohttp.ClientSession() as session:

        async def raw(url):
            async with session.get(url) as response:
                return await response.read()

        return await asyncio.gather(*(raw(url) for url in urls))


async def fetch_all_json(urls):
    async with aiohttp.ClientSession() as session:

        async def parsed(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(*(parsed(url) for url in urls))


async def fetch_all_forgot_return(urls):
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(_read(session, url) for url in urls))


async def fetch_all_first_only(urls):
    async with aiohttp.ClientSession() as session:
        return [await _read(session, urls[0])]


def fetch_all_not_async(urls):
    return ["not fetched"] * len(urls)


async def fetch_all_stub(urls):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (fetch_all_session_per_request, "session-per-request"),
        (fetch_all_sequential, "sequential"),
        (fetch_all_never_closed, "session-left-open"),
        (fetch_all_as_completed, "wrong-order"),
        (fetch_all_bytes, "bytes-not-text"),
        (fetch_all_json, "not-text"),
        (fetch_all_forgot_return, "wrong-return-type"),
        (fetch_all_first_only, "wrong-count"),
        (fetch_all_not_async, "not-async"),
        (fetch_all_stub, "not-implemented"),
    ],
)
def test_fetch_all_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_all.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
    assert verdict.message


def test_fetch_all_names_the_session_count():
    verdict = check.fetch_all.diagnose(fetch_all_session_per_request)
    assert verdict.message == "20 sessions were created for 20 URLs."
    assert "one ClientSession" in verdict.hint


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
    assert "of raises(): `return {}[\"missing\"]`" in verdict.message


def test_check_prints_a_verdict_and_returns_none(capsys):
    assert check.fetch_all(fetch_all_stub) is None
    assert capsys.readouterr().out.startswith("⏳ TO DO fetch_all: not implemented yet")


def test_something_not_callable_is_named():
    verdict = check.fetch_all.diagnose(None)
    assert verdict.problem == "not-callable"


# --- Task 2: make_api_session ------------------------------------------------------------


def session_with_dict(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )


def session_with_tuples(base_url, token):
    headers = [("authorization", "Bearer " + token), ("accept", "application/json")]
    return aiohttp.ClientSession(base_url=base_url, headers=headers)


async def session_from_async_def(base_url, token):
    return session_with_dict(base_url, token)


@pytest.mark.parametrize(
    "answer", [session_with_dict, session_with_tuples, session_from_async_def]
)
def test_make_api_session_accepts_correct_alternatives(answer):
    verdict = check.make_api_session.diagnose(answer)
    assert verdict.passed, verdict.render()


def session_without_base_url(base_url, token):
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )


def session_without_auth(base_url, token):
    return aiohttp.ClientSession(base_url=base_url, headers={"Accept": "application/json"})


def session_without_bearer(base_url, token):
    return aiohttp.ClientSession(
        base_url=base_url, headers={"Authorization": token, "Accept": "application/json"}
    )


def session_with_hard_coded_token(base_url, token):
    return session_with_dict(base_url, "s3cr3t")


def session_without_accept(base_url, token):
    return aiohttp.ClientSession(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


async def session_already_closed(base_url, token):
    async with session_with_dict(base_url, token) as session:
        return session


def returns_headers_not_session(base_url, token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (session_without_base_url, "no-base-url"),
        (session_without_auth, "no-auth-header"),
        (session_without_bearer, "wrong-auth-header"),
        (session_with_hard_coded_token, "wrong-auth-header"),
        (session_without_accept, "wrong-accept-header"),
        (session_already_closed, "returned-closed"),
        (returns_headers_not_session, "not-a-session"),
    ],
)
def test_make_api_session_diagnoses_each_mistake(answer, problem):
    verdict = check.make_api_session.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: ApiClient ---------------------------------------------------------------------


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


class ClientOpeningInInit(ClientOpeningInAenter):
    def __init__(self, base_url):
        self.session = aiohttp.ClientSession(base_url=base_url)

    async def __aenter__(self):
        return self


class ClientWithExitStack:
    def __init__(self, base_url):
        self.base_url = base_url

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        self.stack = AsyncExitStack()
        self.session = await self.stack.enter_async_context(aiohttp.ClientSession())
        return self

    async def __aexit__(self, *exc_info):
        return await self.stack.__aexit__(*exc_info)

    async def get_json(self, path):
        async with self.session.get(self.base_url + path) as response:
            return await response.json()


@pytest.mark.parametrize(
    "answer", [ClientOpeningInAenter, ClientOpeningInInit, ClientWithExitStack]
)
def test_api_client_accepts_correct_alternatives(answer):
    verdict = check.ApiClient.diagnose(answer)
    assert verdict.passed, verdict.render()


class ClientNeverClosing(ClientOpeningInAenter):
    async def __aexit__(self, *exc_info):
        pass


class ClientClosingOnlyOnSuccess(ClientOpeningInAenter):
    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self.session.close()


class ClientSwallowingErrors(ClientOpeningInAenter):
    async def __aexit__(self, *exc_info):
        await self.session.close()
        return True


class ClientWithSessionPerCall(ClientOpeningInAenter):
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        pass

    async def get_json(self, path):
        async with aiohttp.ClientSession(base_url=self.base_url) as session:
            async with session.get(path) as response:
                return await response.json()


class ClientForgettingReturnSelf(ClientOpeningInAenter):
    async def __aenter__(self):
        self.session = aiohttp.ClientSession(base_url=self.base_url)


class ClientWithoutKeepAlive(ClientOpeningInAenter):
    async def __aenter__(self):
        connector = aiohttp.TCPConnector(force_close=True)
        self.session = aiohttp.ClientSession(base_url=self.base_url, connector=connector)
        return self


class ClientReturningText(ClientOpeningInAenter):
    async def get_json(self, path):
        async with self.session.get(path) as response:
            return await response.text()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (ClientNeverClosing, "not-closed-on-exit"),
        (ClientClosingOnlyOnSuccess, "not-closed-on-error"),
        (ClientSwallowingErrors, "swallowed-exception"),
        (ClientWithSessionPerCall, "session-per-call"),
        (ClientForgettingReturnSelf, "aenter-returns-none"),
        (ClientWithoutKeepAlive, "connections-not-reused"),
        (ClientReturningText, "wrong-json"),
    ],
)
def test_api_client_diagnoses_each_mistake(answer, problem):
    verdict = check.ApiClient.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_api_client_stub_is_not_implemented():
    class Stub:
        def __init__(self, base_url):
            raise NotImplementedError("your code here")

    assert check.ApiClient.diagnose(Stub).problem == "not-implemented"
