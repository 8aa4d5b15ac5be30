"""Learner answers to exercise 14 (testing aiohttp code): tests, right and wrong, from the task."""

from __future__ import annotations

import json
import re
from http import HTTPStatus

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from adversarial import correct, wrong
from local_server.checks import testing as check

BASE = "http://api.test"
USER_URL = f"{BASE}/users/42"
ADA = {"id": 42, "name": "Ada"}
KEY = ("GET", URL(USER_URL))


# --- Task 1 · test_returns_the_user ----------------------------------------------------------


@correct(check.test_returns_the_user, "m.requests: one call, its headers, and the result")
async def test_returns_the_user_requests_dict(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    assert result == ADA
    assert list(m.requests) == [KEY]
    [call] = m.requests[KEY]
    assert call.kwargs["headers"]["Accept"] == "application/json"


@correct(check.test_returns_the_user, "assert_called_once_with, with the headers keyword")
async def test_returns_the_user_assert_called_once(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, payload=ADA, repeat=True)
            assert await get_user(session, BASE, 42) == ADA
            m.assert_called_once_with(USER_URL, method="GET",
                                      headers={"Accept": "application/json"})


@correct(check.test_returns_the_user, "an aioresponses callback records the headers it was sent")
async def test_returns_the_user_callback(get_user):
    seen = []

    def answer(url, **kwargs):
        seen.append((str(url), kwargs.get("headers") or {}))
        return CallbackResult(payload=ADA)

    with aioresponses() as m:
        m.get(re.compile(r"^http://api\.test/.*$"), callback=answer, repeat=True)
        async with aiohttp.ClientSession() as session:
            user = await get_user(session, BASE, 42)
    assert user == ADA, user
    assert len(seen) == 1, seen
    url, headers = seen[0]
    assert url == USER_URL
    assert headers.get("Accept") == "application/json"


@correct(check.test_returns_the_user, "a fake upstream TestServer on loopback instead of a mock")
async def test_returns_the_user_fake_server(get_user):
    calls = []

    async def user(request):
        calls.append((request.path, request.headers.get("Accept")))
        return web.json_response(ADA)

    app = web.Application()
    app.router.add_get("/{tail:.*}", user)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        result = await get_user(session, base, 42)
    assert result == ADA
    assert calls == [("/users/42", "application/json")]


@wrong(check.test_returns_the_user, "checks the result and the header, never the number of calls",
       rule="it requested exactly that URL, **once**",
       problem="sends-twice")
async def test_returns_the_user_no_call_count(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    assert result == ADA
    assert m.requests[KEY][0].kwargs["headers"] == {"Accept": "application/json"}


@wrong(check.test_returns_the_user, "answers any URL under api.test (a regex) and counts calls "
       "over every URL: the path is never checked", rule="it requested exactly that URL",
       problem="wrong-path")
async def test_returns_the_user_any_url(get_user):
    with aioresponses() as m:
        m.get(re.compile(r"^http://api\.test/.*$"), payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    assert result == ADA
    calls = [call for calls in m.requests.values() for call in calls]
    assert len(calls) == 1
    assert calls[0].kwargs["headers"]["Accept"] == "application/json"


@wrong(check.test_returns_the_user, "never checks the Accept header",
       rule="the request carried the header `Accept: application/json`",
       problem="no-accept-header")
async def test_returns_the_user_no_header_check(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
    assert len(m.requests[KEY]) == 1


@wrong(check.test_returns_the_user, "asserts only that the result is truthy: text passes too",
       rule="the function returns the decoded JSON, equal to the payload",
       problem="returns-text")
async def test_returns_the_user_truthy_result(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    assert result
    assert len(m.requests[KEY]) == 1
    assert m.requests[KEY][0].kwargs["headers"]["Accept"] == "application/json"


@wrong(check.test_returns_the_user, "decodes a str result itself, so a text body passes",
       rule="the function returns the decoded JSON, equal to the payload",
       problem="returns-text")
async def test_returns_the_user_lenient_decode(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    if isinstance(result, str):
        result = json.loads(result)
    assert result == ADA
    assert len(m.requests[KEY]) == 1
    assert m.requests[KEY][0].kwargs["headers"]["Accept"] == "application/json"


@wrong(check.test_returns_the_user, "calls get_user without await and compares the coroutine",
       rule="call `await get_user(session, BASE, 42)`",
       problem="missing-await")
async def test_returns_the_user_no_await(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            result = get_user(session, BASE, 42)
    assert result == ADA
    assert len(m.requests[KEY]) == 1


@wrong(check.test_returns_the_user, "opens a session and never closes it",
       rule="with a session your test opens (and closes)",
       problem="unclosed-session")
async def test_returns_the_user_session_left_open(get_user):
    session = aiohttp.ClientSession()
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        assert await get_user(session, BASE, 42) == ADA
    assert len(m.requests[KEY]) == 1
    assert m.requests[KEY][0].kwargs["headers"]["Accept"] == "application/json"


@wrong(check.test_returns_the_user, "no aioresponses: the request goes to the real network",
       rule="With `aioresponses`, answer `GET http://api.test/users/42`",
       problem="real-network")
async def test_returns_the_user_real_network(get_user):
    async with aiohttp.ClientSession() as session:
        result = await get_user(session, BASE, 42)
    assert result == ADA


@wrong(check.test_returns_the_user, "reads the header as headers['accept']: a KeyError on the "
       "correct code", rule="the request carried the header `Accept: application/json`",
       problem="fails-on-correct-code")
async def test_returns_the_user_header_case(get_user):
    with aioresponses() as m:
        m.get(USER_URL, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
    assert len(m.requests[KEY]) == 1
    assert m.requests[KEY][0].kwargs["headers"]["accept"] == "application/json"


# --- Task 2 · test_errors_are_raised ---------------------------------------------------------


@correct(check.test_errors_are_raised, "pytest.raises in three aioresponses blocks")
async def test_errors_are_raised_pytest_raises(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404, payload={"error": "no such user"})
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


async def _raised(coro):
    try:
        await coro
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


@correct(check.test_errors_are_raised, "try/except/else helper, ServerDisconnectedError, a session "
         "per block")
async def test_errors_are_raised_helper(get_user):
    with aioresponses() as m:
        m.get(USER_URL, status=404)
        async with aiohttp.ClientSession() as session:
            error = await _raised(get_user(session, BASE, 42))
    assert isinstance(error, aiohttp.ClientResponseError) and error.status == 404, error
    with aioresponses() as m:
        m.get(USER_URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
        async with aiohttp.ClientSession() as session:
            error = await _raised(get_user(session, BASE, 42, delay=0))
    assert isinstance(error, aiohttp.ClientConnectionError), error
    with aioresponses() as m:
        m.get(USER_URL, timeout=True)
        async with aiohttp.ClientSession() as session:
            error = await _raised(get_user(session, BASE, 42))
    assert isinstance(error, TimeoutError), error


@correct(check.test_errors_are_raised, "a loop over (options, expected class) cases")
async def test_errors_are_raised_table(get_user):
    cases = [
        ({"status": 404}, aiohttp.ClientResponseError),
        ({"exception": aiohttp.ClientConnectionError("down"), "repeat": True},
         aiohttp.ClientConnectionError),
        ({"timeout": True}, TimeoutError),
    ]
    async with aiohttp.ClientSession() as session:
        for options, expected in cases:
            with aioresponses() as m:
                m.get(USER_URL, **options)
                with pytest.raises(expected) as info:
                    await get_user(session, BASE, 42, delay=0)
                if expected is aiohttp.ClientResponseError:
                    assert info.value.status == 404


@wrong(check.test_errors_are_raised, "checks the 404 raises ClientResponseError, not its status",
       rule="`aiohttp.ClientResponseError` with `.status == 404`",
       problem="wrong-status")
async def test_errors_are_raised_no_status_check(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "try/except with no else: passes when nothing is raised",
       rule="in each `get_user` must **raise**",
       problem="passes-without-raise")
async def test_errors_are_raised_try_without_else(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            try:
                await get_user(session, BASE, 42)
            except aiohttp.ClientResponseError as error:
                assert error.status == 404
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            try:
                await get_user(session, BASE, 42, delay=0)
            except aiohttp.ClientConnectionError:
                pass
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            try:
                await get_user(session, BASE, 42)
            except TimeoutError:
                pass


@wrong(check.test_errors_are_raised, "tests the 404 and the connection error, forgets the timeout",
       rule="the request times out: `TimeoutError`",
       problem="swallows-timeouts")
async def test_errors_are_raised_no_timeout_case(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)


@wrong(check.test_errors_are_raised, "registers all three in one aioresponses block: the repeated "
       "connection error answers the timeout's call too",
       rule="three situations, each in its own `with aioresponses() as m:` block",
       problem="fails-on-correct-code")
async def test_errors_are_raised_one_block(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            m.get(USER_URL, timeout=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "expects aiohttp.ServerTimeoutError for the timeout",
       rule="the request times out: `TimeoutError` (`timeout=True` makes aioresponses raise it)",
       problem="fails-on-correct-code")
async def test_errors_are_raised_wrong_timeout_class(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            with pytest.raises(aiohttp.ServerTimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "forgets await inside pytest.raises: nothing runs",
       rule="in each `get_user` must **raise**",
       problem="missing-await")
async def test_errors_are_raised_no_await(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "no mock for the connection error: relies on api.test not "
       "resolving, a real DNS lookup", rule="each in its own `with aioresponses() as m:` block",
       problem="real-network")
async def test_errors_are_raised_real_network_for_connection(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=404)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(USER_URL, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "opens a session without closing it",
       rule="(lesson 14: a session opened in a test and not closed)",
       problem="unclosed-session")
async def test_errors_are_raised_session_left_open(get_user):
    session = aiohttp.ClientSession()
    with aioresponses() as m:
        m.get(USER_URL, status=404)
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await get_user(session, BASE, 42)
        assert info.value.status == 404
    with aioresponses() as m:
        m.get(USER_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_user(session, BASE, 42, delay=0)
    with aioresponses() as m:
        m.get(USER_URL, timeout=True)
        with pytest.raises(TimeoutError):
            await get_user(session, BASE, 42)


# --- Task 3 · test_retries -------------------------------------------------------------------


@correct(check.test_retries, "the lesson's three blocks, counted with m.requests[key]")
async def test_retries_three_blocks(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert len(m.requests[KEY]) == 2
        with aioresponses() as m:
            m.get(USER_URL, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3, delay=0)
            assert info.value.status == 503
            assert len(m.requests[KEY]) == 3
        with aioresponses() as m:
            m.get(USER_URL, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)
            assert len(m.requests[KEY]) == 1


@correct(check.test_retries, "counts with a callback instead of m.requests")
async def test_retries_callback_counter(get_user):
    def scripted(statuses):
        calls = []

        def answer(url, **kwargs):
            status = statuses[min(len(calls), len(statuses) - 1)]
            calls.append(status)
            return CallbackResult(status=status, reason=HTTPStatus(status).phrase,
                                  payload=ADA if status == 200 else {})

        return answer, calls

    async with aiohttp.ClientSession() as session:
        answer, calls = scripted([503, 200])
        with aioresponses() as m:
            m.get(USER_URL, callback=answer, repeat=True)
            assert await get_user(session, BASE, 42, delay=0) == ADA
        assert len(calls) == 2
        answer, calls = scripted([503])
        with aioresponses() as m:
            m.get(USER_URL, callback=answer, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3, delay=0)
        assert info.value.status == 503 and len(calls) == 3
        answer, calls = scripted([404])
        with aioresponses() as m:
            m.get(USER_URL, callback=answer, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)
        assert calls == [404]


@correct(check.test_retries, "a fake upstream TestServer that scripts statuses and counts calls")
async def test_retries_fake_server(get_user):
    script: list[int] = []
    calls: list[str] = []

    async def user(request):
        calls.append(request.path)
        status = script.pop(0) if len(script) > 1 else script[0]
        if status == 200:
            return web.json_response(ADA)
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        script[:], calls[:] = [503, 200], []
        assert await get_user(session, base, 42, delay=0) == ADA
        assert len(calls) == 2
        script[:], calls[:] = [503], []
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await get_user(session, base, 42, attempts=3, delay=0)
        assert info.value.status == 503 and len(calls) == 3
        script[:], calls[:] = [404], []
        with pytest.raises(aiohttp.ClientResponseError):
            await get_user(session, base, 42, delay=0)
        assert len(calls) == 1


async def _retries(get_user, *, count_first=True, count_forever=True, forever_raises=True,
                   count_404=True, delay=0):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=delay) == ADA
            if count_first:
                assert len(m.requests[KEY]) == 2
        with aioresponses() as m:
            m.get(USER_URL, status=503, repeat=True)
            if forever_raises:
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    await get_user(session, BASE, 42, attempts=3, delay=delay)
                assert info.value.status == 503
            else:
                try:
                    await get_user(session, BASE, 42, attempts=3, delay=delay)
                except aiohttp.ClientResponseError as error:
                    assert error.status == 503
            if count_forever:
                assert len(m.requests[KEY]) == 3
        with aioresponses() as m:
            m.get(USER_URL, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=delay)
            if count_404:
                assert len(m.requests[KEY]) == 1


@wrong(check.test_retries, "never counts the calls of the repeated 404",
       rule="a 404 (registered with `repeat=True`, so a retry would be answered too): **1** call",
       problem="retries-4xx")
async def test_retries_404_not_counted(get_user):
    await _retries(get_user, count_404=False)


@wrong(check.test_retries, "never counts the calls when 503 repeats",
       rule="`ClientResponseError` with status 503, after exactly **3** calls",
       problem="too-many-attempts")
async def test_retries_forever_not_counted(get_user):
    await _retries(get_user, count_forever=False)


@wrong(check.test_retries, "503 forever in try/except without else: a None return passes",
       rule="503 every time, with `attempts=3`: `ClientResponseError` with status 503",
       problem="passes-without-raise")
async def test_retries_forever_try_without_else(get_user):
    await _retries(get_user, forever_raises=False)


@wrong(check.test_retries, "never counts the calls of 503 then 200",
       rule="a 503 then a 200: the 200's payload is returned, after **2** calls",
       problem="keeps-going-after-success")
async def test_retries_first_not_counted(get_user):
    await _retries(get_user, count_first=False)


@wrong(check.test_retries, "counts len(m.requests), the number of distinct URLs, not the calls",
       rule="count the calls in `m.requests[(\"GET\", URL(USER_URL))]`",
       problem="retries-4xx")
async def test_retries_counts_keys(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert len(m.requests) >= 1
        with aioresponses() as m:
            m.get(USER_URL, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3, delay=0)
            assert info.value.status == 503
            assert len(m.requests) == 1
        with aioresponses() as m:
            m.get(USER_URL, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)
            assert len(m.requests) == 1


@wrong(check.test_retries, "indexes m.requests with the str URL: KeyError on the correct code",
       rule="count the calls in `m.requests[(\"GET\", URL(USER_URL))]`",
       problem="fails-on-correct-code")
async def test_retries_str_key(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert len(m.requests[("GET", USER_URL)]) == 2


@wrong(check.test_retries, "leaves delay at its default: the test sleeps between attempts",
       rule="Pass `delay=0` so the test does not sleep",
       problem="test-sleeps")
async def test_retries_default_delay(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA
            assert len(m.requests[KEY]) == 2
        with aioresponses() as m:
            m.get(USER_URL, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3)
            assert info.value.status == 503
            assert len(m.requests[KEY]) == 3
        with aioresponses() as m:
            m.get(USER_URL, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
            assert len(m.requests[KEY]) == 1


@wrong(check.test_retries, "expects 1 call for 503 then 200 (counts successes, not calls)",
       rule="a 503 then a 200: the 200's payload is returned, after **2** calls",
       problem="fails-on-correct-code")
async def test_retries_wrong_expected_count(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert len(m.requests[KEY]) == 1


@wrong(check.test_retries, "registers the 503 once (no repeat=True) and counts <= 3 calls",
       rule="503 every time ... after exactly **3** calls (`repeat=True` answers every call)",
       problem="too-many-attempts")
async def test_retries_forever_not_repeated(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert len(m.requests[KEY]) == 2
        with aioresponses() as m:
            m.get(USER_URL, status=503)
            m.get(USER_URL, status=503)
            m.get(USER_URL, status=503)
            with pytest.raises(aiohttp.ClientError):
                await get_user(session, BASE, 42, attempts=3, delay=0)
            assert len(m.requests[KEY]) <= 4
        with aioresponses() as m:
            m.get(USER_URL, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)
            assert len(m.requests[KEY]) == 1


# --- Task 4 · test_user_api ------------------------------------------------------------------


@correct(check.test_user_api, "each row with async with, status and body")
async def test_user_api_rows(client):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": 1, "name": "Ada"}
    async with client.get("/users/999") as resp:
        assert resp.status == 404
        assert "error" in await resp.json()
    async with client.get("/users/abc") as resp:
        assert resp.status == 400
        assert "error" in await resp.json()
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 201
        assert await resp.json() == {"id": 2, "name": "Grace"}
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()


@correct(check.test_user_api, "table-driven over client.request, error bodies checked by type")
async def test_user_api_table(client):
    rows = [
        ("GET", "/users/1", None, 200, {"id": 1, "name": "Ada"}),
        ("GET", "/users/999", None, 404, "error"),
        ("GET", "/users/abc", None, 400, "error"),
        ("POST", "/users", {"name": "Grace"}, 201, {"id": 2, "name": "Grace"}),
        ("POST", "/users", {"name": ""}, 400, "error"),
    ]
    for method, path, body, status, expected in rows:
        async with client.request(method, path, json=body) as resp:
            data = await resp.json()
            assert resp.status == status, (method, path, resp.status, data)
            if expected == "error":
                assert isinstance(data.get("error"), str), data
            else:
                assert data == expected, data


@correct(check.test_user_api, "awaits the responses without async with and releases them")
async def test_user_api_await_and_release(client):
    resp = await client.get("/users/1")
    try:
        assert (resp.status, await resp.json()) == (200, {"id": 1, "name": "Ada"})
    finally:
        resp.release()
    for path, status in (("/users/999", 404), ("/users/abc", 400)):
        resp = await client.get(path)
        try:
            assert resp.status == status
            assert set(await resp.json()) == {"error"}
        finally:
            resp.release()
    resp = await client.post("/users", json={"name": "Grace"})
    assert resp.status == 201
    assert await resp.json() == {"id": 2, "name": "Grace"}
    resp = await client.post("/users", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "error" in await resp.json()


@correct(check.test_user_api, "through client.session and client.make_url")
async def test_user_api_make_url(client):
    session = client.session
    async with session.get(client.make_url("/users/1")) as resp:
        assert resp.status == 200 and await resp.json() == {"id": 1, "name": "Ada"}
    async with session.get(client.make_url("/users/999")) as resp:
        assert resp.status == 404 and "error" in await resp.json()
    async with session.get(client.make_url("/users/abc")) as resp:
        assert resp.status == 400 and "error" in await resp.json()
    async with session.post(client.make_url("/users"), json={"name": "Grace"}) as resp:
        assert resp.status == 201 and await resp.json() == {"id": 2, "name": "Grace"}
    async with session.post(client.make_url("/users"), json={"nom": "Grace"}) as resp:
        assert resp.status == 400 and "error" in await resp.json()


async def _user_api(client, *, bodies=True, abc=True, post_missing=True, unknown=True,
                    created=(201,)):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        if bodies:
            assert await resp.json() == {"id": 1, "name": "Ada"}
    if unknown:
        async with client.get("/users/999") as resp:
            assert resp.status == 404
            if bodies:
                assert "error" in await resp.json()
    if abc:
        async with client.get("/users/abc") as resp:
            assert resp.status == 400
            if bodies:
                assert "error" in await resp.json()
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status in created
        if bodies:
            assert await resp.json() == {"id": 2, "name": "Grace"}
    if post_missing:
        async with client.post("/users", json={}) as resp:
            assert resp.status == 400
            if bodies:
                assert "error" in await resp.json()


@wrong(check.test_user_api, "checks only the statuses, never a body",
       rule="Check the status **and** the body of each row of the table",
       problem="wrong-shape")
async def test_user_api_status_only(client):
    await _user_api(client, bodies=False)


@wrong(check.test_user_api, "never tries /users/abc",
       rule="`GET /users/abc` (not a number) | 400",
       problem="no-id-validation")
async def test_user_api_skips_abc(client):
    await _user_api(client, abc=False)


@wrong(check.test_user_api, "accepts 200 or 201 for a creation",
       rule="`POST /users` with `{\"name\": \"Grace\"}` | 201",
       problem="created-200")
async def test_user_api_created_200_or_201(client):
    await _user_api(client, created=(200, 201))


@wrong(check.test_user_api, "never sends a POST without a name",
       rule="`POST /users` without a non-empty `name` | 400",
       problem="no-name-validation")
async def test_user_api_skips_missing_name(client):
    await _user_api(client, post_missing=False)


@wrong(check.test_user_api, "for /users/abc asserts only `resp.status >= 400`, no body",
       rule="`GET /users/abc` (not a number) | 400, `{\"error\": ...}`",
       problem="no-id-validation")
async def test_user_api_abc_any_error(client):
    await _user_api(client, abc=False)
    async with client.get("/users/abc") as resp:
        assert resp.status >= 400


@wrong(check.test_user_api, "never tries an unknown user",
       rule="`GET /users/999` (unknown) | 404",
       problem="unknown-user-200")
async def test_user_api_skips_unknown(client):
    await _user_api(client, unknown=False)


@wrong(check.test_user_api, "forgets await on resp.json(): compares a coroutine",
       rule="Check the status **and** the body",
       problem="missing-await")
async def test_user_api_no_await_json(client):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        body = resp.json()
        assert body is not None
    async with client.get("/users/999") as resp:
        assert resp.status == 404
    async with client.get("/users/abc") as resp:
        assert resp.status == 400
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 201
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400


@wrong(check.test_user_api, "builds its own TestClient around make_app(), ignoring `client`: "
       "it tests the real app, never the broken ones",
       rule="`client` is a `TestClient` already started around the app",
       problem="ignores-argument")
async def test_user_api_own_client(client):
    async with TestClient(TestServer(check.make_app())) as own:
        await _user_api(own)


@wrong(check.test_user_api, "for the unknown user checks only that the body has no name",
       rule="`GET /users/999` (unknown) | 404, `{\"error\": ...}`",
       problem="unknown-user-200")
async def test_user_api_unknown_body_only(client):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": 1, "name": "Ada"}
    async with client.get("/users/999") as resp:
        body = await resp.json(content_type=None)
        assert not (isinstance(body, dict) and body.get("name"))
    async with client.get("/users/abc") as resp:
        assert resp.status == 400
        assert "error" in await resp.json()
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 201
        assert await resp.json() == {"id": 2, "name": "Grace"}
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400
        assert "error" in await resp.json()


# --- more probes -----------------------------------------------------------------------------


@wrong(check.test_errors_are_raised, "pytest.raises(Exception) for all three: any error passes",
       rule="`aiohttp.ClientResponseError` with `.status == 404` ... "
       "`aiohttp.ClientConnectionError` ... `TimeoutError`",
       problem="wrong-class-for-404")
async def test_errors_are_raised_any_exception(get_user):
    async with aiohttp.ClientSession() as session:
        for options in ({"status": 404},
                        {"exception": aiohttp.ClientConnectionError("down"), "repeat": True},
                        {"timeout": True}):
            with aioresponses() as m:
                m.get(USER_URL, **options)
                with pytest.raises(Exception):  # noqa: B017
                    await get_user(session, BASE, 42, delay=0)


@wrong(check.test_user_api, "checks the bodies of the successes only; error rows by status",
       rule="Check the status **and** the body of each row of the table",
       problem="unknown-user-body")
async def test_user_api_error_bodies_unchecked(client):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": 1, "name": "Ada"}
    for path, status in (("/users/999", 404), ("/users/abc", 400)):
        async with client.get(path) as resp:
            assert resp.status == status
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 201
        assert await resp.json() == {"id": 2, "name": "Grace"}
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400
