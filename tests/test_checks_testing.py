"""Exercise 14's checkers: complete test suites pass, each gap and each wrong test is named.

Every answer (a learner's *test*) is registered with ``correct``/``wrong`` (see
``tests/adversarial``); one parametrized test runs them all, and ``test_rule_tables`` checks
that every rule of every task has a wrong answer here that breaks it alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from local_server.checks import testing as check
from local_server.serving import refused_url

BASE = "http://api.test"
URL42 = f"{BASE}/users/42"
KEY = ("GET", URL(URL42))
ACCEPT = {"Accept": "application/json"}
ADA = {"id": 42, "name": "Ada"}


def calls(m: aioresponses, url: str = URL42) -> int:
    return len(m.requests.get(("GET", URL(url)), []))


# --- Task 1: the request and the result ------------------------------------------------------


@correct(check.test_returns_the_user, "assert_called_once_with and the result")
async def request_complete(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once_with(URL42, headers=ACCEPT)


@correct(check.test_returns_the_user, "repeat=True, then the call log read by hand")
async def request_complete_with_requests(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            user = await get_user(session, BASE, 42)
        assert user == ADA
        [call] = m.requests[("GET", URL(URL42))]
        assert call.kwargs["headers"]["Accept"] == "application/json"


@correct(check.test_returns_the_user, "an exact regex, a raw JSON body, m.requests.values()")
async def request_regex_and_body(get_user):
    with aioresponses() as m:
        m.get(re.compile(r"^http://api\.test/users/42$"), body=json.dumps(ADA), repeat=True)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once()
        [[call]] = m.requests.values()
        assert call.kwargs["headers"] == ACCEPT


@correct(check.test_returns_the_user, "a fake API on TestServer records path and Accept")
async def request_fake_server(get_user):
    seen = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Accept")))
        return web.json_response({"id": 7, "name": "Grace"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        user = await get_user(session, str(server.make_url("")).rstrip("/"), 7)
    assert user == {"id": 7, "name": "Grace"}
    assert seen == [("/users/7", "application/json")]


@correct(check.test_returns_the_user, "a callback that asserts on what it receives, counted")
async def request_asserting_callback(get_user):
    received = []

    def answer(url, **kwargs):
        assert str(url) == URL42, url
        assert kwargs["headers"] == ACCEPT, kwargs["headers"]
        received.append(url)
        return CallbackResult(payload=ADA)

    with aioresponses() as m:
        m.get(re.compile(r".*"), callback=answer, repeat=True)
        async with aiohttp.ClientSession() as session:
            result = await get_user(session, BASE, 42)
    assert received == [URL(URL42)] and result == ADA


@wrong(check.test_returns_the_user, "never checks the header", problem="no-accept-header")
async def request_no_header_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once()


@wrong(check.test_returns_the_user, "checks that an Accept header is there, not its value",
       problem="wrong-accept-header")
async def request_header_present(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        [call] = m.requests[KEY]
        assert "Accept" in call.kwargs["headers"]


@wrong(check.test_returns_the_user, "asserts the headers are truthy", problem="wrong-accept-header")
async def request_headers_truthy(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        [call] = m.requests[KEY]
        assert call.kwargs.get("headers")


@wrong(check.test_returns_the_user, "never checks the result", problem="returns-text")
async def request_no_result_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            await get_user(session, BASE, 42)
        m.assert_called_once_with(URL42, headers=ACCEPT)


@wrong(check.test_returns_the_user, "repeat=True and never counts", problem="sends-twice")
async def request_no_count_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        assert m.requests[("GET", URL(URL42))][-1].kwargs["headers"] == ACCEPT


@wrong(check.test_returns_the_user, "a regex for any user id, counted over every URL",
       problem="wrong-id")
async def request_any_id(get_user):
    with aioresponses() as m:
        m.get(re.compile(r"^http://api\.test/users/.+$"), payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        everything = [call for log in m.requests.values() for call in log]
        assert len(everything) == 1
        assert everything[0].kwargs["headers"] == ACCEPT


@wrong(check.test_returns_the_user, "a fake server with a catch-all route, path never checked",
       problem="wrong-path")
async def request_fake_server_any_path(get_user):
    seen = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept"))
        return web.json_response(ADA)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        assert await get_user(session, str(server.make_url("")).rstrip("/"), 42) == ADA
    assert seen == ["application/json"]


@wrong(check.test_returns_the_user, "swallows every error, asserts nothing",
       problem="asserts-nothing")
async def request_asserts_nothing(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            try:
                await get_user(session, BASE, 42)
            except Exception:
                pass


@wrong(check.test_returns_the_user, "expects the wrong user", problem="fails-on-correct-code")
async def request_wrong_expectation(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == {"id": 42, "name": "Grace"}


@wrong(check.test_returns_the_user, "registers /user/42", problem="fails-on-correct-code")
async def request_wrong_url_registered(get_user):
    with aioresponses() as m:
        m.get(f"{BASE}/user/42", payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA


@wrong(check.test_returns_the_user, "a trailing slash on the base URL: //users/42",
       problem="fails-on-correct-code")
async def request_trailing_slash(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE + "/", 42) == ADA
        m.assert_called_once_with(URL42, headers=ACCEPT)


@wrong(check.test_returns_the_user, "no mock: the real network", problem="real-network")
async def request_without_mock(get_user):
    async with aiohttp.ClientSession() as session:
        assert await get_user(session, "http://api.example.com", 42) == ADA


@wrong(check.test_returns_the_user, "never closes its session", problem="unclosed-session")
async def request_session_left_open(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        session = aiohttp.ClientSession()
        assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once_with(URL42, headers=ACCEPT)


@wrong(check.test_returns_the_user, "a plain def", problem="not-async")
def request_not_async(get_user):
    return None


@wrong(check.test_returns_the_user, "m.requests keyed by a str URL",
       problem="fails-on-correct-code")
async def request_string_key(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        assert len(m.requests[("GET", URL42)]) == 1


@wrong(check.test_returns_the_user, "calls get_user with the wrong arguments",
       problem="fails-on-correct-code")
async def request_wrong_arguments(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, URL42) == ADA


@wrong(check.test_returns_the_user, "calls get_user without await", problem="missing-await")
async def request_without_await(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            user = get_user(session, BASE, 42)
        assert user == ADA


@wrong(check.test_returns_the_user, "tests the imported get_user, not its argument",
       problem="ignores-argument")
async def request_imported_copy(get_user):
    await request_complete(check.get_user)


@wrong(check.test_returns_the_user, "awaits a future nobody sets", problem="test-hangs")
async def request_hangs(get_user):
    await request_complete(get_user)
    await asyncio.get_running_loop().create_future()


@wrong(check.test_returns_the_user, "time.sleep in the test", problem="blocked-loop")
async def request_time_sleep(get_user):
    time.sleep(0.02)
    await request_complete(get_user)


# --- Task 2: errors ---------------------------------------------------------------------------


async def _errors(
    get_user,
    *,
    status=True,
    expect_404=aiohttp.ClientResponseError,
    expect_connection=aiohttp.ClientConnectionError,
    expect_timeout=TimeoutError,
    cases=("404", "connection", "timeout"),
    registered_404=404,
):
    async with aiohttp.ClientSession() as session:
        if "404" in cases:
            with aioresponses() as m:
                m.get(URL42, status=registered_404, payload={"error": "not found"})
                with pytest.raises(expect_404) as info:
                    await get_user(session, BASE, 42)
                if status:
                    assert info.value.status == registered_404
        if "connection" in cases:
            with aioresponses() as m:
                m.get(URL42, exception=aiohttp.ClientConnectionError("down"), repeat=True)
                with pytest.raises(expect_connection):
                    await get_user(session, BASE, 42, delay=0)
        if "timeout" in cases:
            with aioresponses() as m:
                m.get(URL42, timeout=True)
                with pytest.raises(expect_timeout):
                    await get_user(session, BASE, 42)


@correct(check.test_errors_are_raised, "the task's three blocks")
async def errors_complete(get_user):
    await _errors(get_user)


@correct(check.test_errors_are_raised, "the status read from pytest.raises(match=...)")
async def errors_with_match(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError, match=r"^404,"):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ServerDisconnectedError(), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
        with aioresponses() as m:
            m.get(URL42, exception=TimeoutError())
            with pytest.raises(asyncio.TimeoutError):  # the same class since Python 3.11
                await get_user(session, BASE, 42)


@correct(check.test_errors_are_raised, "a fake TestServer for the 404, a refused port, a mock "
         "for the timeout")
async def errors_fake_server(get_user):
    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"error": "no such user"}, status=404)

    app = web.Application()
    app.router.add_get("/users/{id}", missing)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await get_user(session, str(server.make_url("")).rstrip("/"), 42)
        assert info.value.status == 404
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_user(session, refused_url(), 42, delay=0)
    with aioresponses() as m:
        m.get(URL42, timeout=True)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


@correct(check.test_errors_are_raised, "try/except/else with pytest.fail")
async def errors_try_else(get_user):
    async with aiohttp.ClientSession() as session:
        for options, expected in (
            ({"status": 404}, aiohttp.ClientResponseError),
            ({"exception": aiohttp.ClientOSError(), "repeat": True}, aiohttp.ClientConnectionError),
            ({"timeout": True}, TimeoutError),
        ):
            with aioresponses() as m:
                m.get(URL42, **options)
                try:
                    await get_user(session, BASE, 42, delay=0)
                except expected as error:
                    if expected is aiohttp.ClientResponseError:
                        assert error.status == 404
                else:
                    pytest.fail(f"nothing raised for {options}")


@wrong(check.test_errors_are_raised, "compares the exception classes' names, never the status",
       problem="wrong-status")
async def errors_complete_without_pytest(get_user):
    outcomes = []
    async with aiohttp.ClientSession() as session:
        for options in (
            {"status": 404},
            {"exception": aiohttp.ServerDisconnectedError(), "repeat": True},
            {"exception": TimeoutError()},
        ):
            with aioresponses() as m:
                m.get(URL42, **options)
                try:
                    await get_user(session, BASE, 42, delay=0)
                except Exception as error:
                    outcomes.append(type(error).__name__)
                else:
                    outcomes.append("returned")
    assert outcomes == ["ClientResponseError", "ServerDisconnectedError", "TimeoutError"]


@wrong(check.test_errors_are_raised, "base classes, and the 404's status never checked",
       problem="wrong-status")
async def errors_with_base_classes(get_user):
    async with aiohttp.ClientSession() as session:
        for options, expected in (
            ({"status": 404}, aiohttp.ClientResponseError),
            ({"exception": aiohttp.ClientOSError(), "repeat": True}, aiohttp.ClientError),
            ({"timeout": True}, asyncio.TimeoutError),
        ):
            with aioresponses() as m:
                m.get(URL42, **options)
                with pytest.raises(expected):
                    await get_user(session, BASE, 42, delay=0)


@wrong(check.test_errors_are_raised, "never tests a 404", problem="ignores-status")
async def errors_no_404(get_user):
    await _errors(get_user, cases=("connection", "timeout"))


@wrong(check.test_errors_are_raised, "no timeout case, and no status check",
       problem="wrong-status")
async def errors_no_timeout(get_user):
    await _errors(get_user, status=False, cases=("404", "connection"))


@wrong(check.test_errors_are_raised, "no timeout case", problem="swallows-timeouts")
async def errors_no_timeout_only(get_user):
    await _errors(get_user, cases=("404", "connection"))


@wrong(check.test_errors_are_raised, "no connection case", problem="swallows-connection-errors")
async def errors_no_connection(get_user):
    await _errors(get_user, cases=("404", "timeout"))


@wrong(check.test_errors_are_raised, "pytest.raises(Exception) for the 404, status unchecked",
       problem="wrong-class-for-404")
async def errors_any_exception_for_404(get_user):
    await _errors(get_user, status=False, expect_404=Exception)


@wrong(check.test_errors_are_raised, "pytest.raises(Exception) for the connection error",
       problem="wrong-class-for-connection-error")
async def errors_any_exception_for_connection(get_user):
    await _errors(get_user, expect_connection=Exception)


@wrong(check.test_errors_are_raised, "accepts a ClientError as well as a TimeoutError",
       problem="wrong-class-for-timeout")
async def errors_timeout_or_client_error(get_user):
    await _errors(get_user, expect_timeout=(TimeoutError, aiohttp.ClientError))


@wrong(check.test_errors_are_raised, "tests a 500 instead of a 404", problem="wrong-class-for-404")
async def errors_tests_a_500(get_user):
    await _errors(get_user, registered_404=500)


@wrong(check.test_errors_are_raised, "the timeout case in try/except without else",
       problem="passes-without-raise")
async def errors_timeout_try_without_else(get_user):
    await _errors(get_user, cases=("404", "connection"))
    with aioresponses() as m:
        m.get(URL42, timeout=True)
        async with aiohttp.ClientSession() as session:
            try:
                await get_user(session, BASE, 42)
            except TimeoutError:
                pass


@wrong(check.test_errors_are_raised, "a connection error registered once: valid, but no "
       "timeout case and no status check", problem="wrong-status")
async def errors_connection_error_once(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"))
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "expects ServerTimeoutError", problem="fails-on-correct-code")
async def errors_expects_wrong_class(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, timeout=True)
            with pytest.raises(aiohttp.ServerTimeoutError):
                await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "expects None for a 404", problem="fails-on-correct-code")
async def errors_expects_none(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            assert await get_user(session, BASE, 42) is None


@wrong(check.test_errors_are_raised, "one mock for all three: the repeated connection error "
       "answers the timeout's call too", problem="fails-on-correct-code")
async def errors_in_one_block(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"), repeat=True)
            m.get(URL42, timeout=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42, delay=0)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)  # the timeout case


@wrong(check.test_errors_are_raised, "a fake server for the connection case that is really "
       "api.example.com", problem="real-network")
async def errors_real_network(get_user):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_user(session, "http://api.example.com", 42, delay=0)


@wrong(check.test_errors_are_raised, "a session left open", problem="unclosed-session")
async def errors_session_left_open(get_user):
    session = aiohttp.ClientSession()
    with aioresponses() as m:
        m.get(URL42, status=404)
        with pytest.raises(aiohttp.ClientResponseError):
            await get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "waits for an event nobody sets", problem="test-hangs")
async def errors_hangs(get_user):
    await asyncio.Event().wait()


@wrong(check.test_errors_are_raised, "get_user without await inside pytest.raises",
       problem="missing-await")
async def errors_no_await(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                get_user(session, BASE, 42)


@wrong(check.test_errors_are_raised, "tests check.get_user instead of its argument",
       problem="ignores-argument")
async def errors_imported_copy(get_user):
    await errors_complete(check.get_user)


@wrong(check.test_errors_are_raised, "only a success, no error at all", problem="asserts-nothing")
async def errors_only_success(get_user):
    await request_complete(get_user)


@wrong(check.test_errors_are_raised, "accepts any exception or none",
       problem="passes-without-raise")
async def errors_asserts_nothing(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404, repeat=True)
            try:
                await get_user(session, BASE, 42, delay=0)
            except Exception:
                pass


# --- Task 3: retries ----------------------------------------------------------------------------


async def _retries(
    get_user,
    *,
    delay=0,
    count_first=2,
    count_forever=3,
    count_404=1,
    cases=("first", "forever", "404"),
    forever_raises=True,
    compare=lambda seen, expected: seen == expected,
    compare_forever=None,
):
    async with aiohttp.ClientSession() as session:
        if "first" in cases:
            with aioresponses() as m:
                m.get(URL42, status=503)
                m.get(URL42, payload=ADA)
                assert await get_user(session, BASE, 42, delay=delay) == ADA
                if count_first is not None:
                    assert compare(calls(m), count_first)
        if "forever" in cases:
            with aioresponses() as m:
                m.get(URL42, status=503, repeat=True)
                if forever_raises:
                    with pytest.raises(aiohttp.ClientResponseError) as info:
                        await get_user(session, BASE, 42, attempts=3, delay=delay)
                    assert info.value.status == 503
                else:
                    try:
                        await get_user(session, BASE, 42, attempts=3, delay=delay)
                    except aiohttp.ClientResponseError as error:
                        assert error.status == 503
                if count_forever is not None:
                    assert (compare_forever or compare)(calls(m), count_forever)
        if "404" in cases:
            with aioresponses() as m:
                m.get(URL42, status=404, repeat=True)
                with pytest.raises(aiohttp.ClientResponseError):
                    await get_user(session, BASE, 42, delay=delay)
                if count_404 is not None:
                    assert compare(calls(m), count_404)


@correct(check.test_retries, "the task's three blocks, counted")
async def retries_complete(get_user):
    await _retries(get_user)


@correct(check.test_retries, "three 503s registered one by one, a 404 once: an extra call "
         "finds nothing left")
async def retries_registered_one_by_one(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert calls(m) == 2
        with aioresponses() as m:
            for _ in range(3):
                m.get(URL42, status=503)
            with pytest.raises(aiohttp.ClientResponseError, match="503"):
                await get_user(session, BASE, 42, attempts=3, delay=0)
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)


@correct(check.test_retries, "repeat=3 for the 503s, the count read from m.requests")
async def retries_repeat_three(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA, repeat=True)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert calls(m) == 2
        with aioresponses() as m:
            m.get(URL42, status=503, repeat=3)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3, delay=0)
            assert (info.value.status, calls(m)) == (503, 3)
        with aioresponses() as m:
            m.get(URL42, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, delay=0)
            assert calls(m) == 1


@correct(check.test_retries, "a scripted TestServer counts the calls")
async def retries_fake_server(get_user):
    script: list[int] = []
    seen: list[str] = []

    async def user(request: web.Request) -> web.Response:
        seen.append(request.path)
        status = script.pop(0) if len(script) > 1 else script[0]
        if status == 200:
            return web.json_response(ADA)
        return web.json_response({"error": "nope"}, status=status)

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        for statuses, expected_calls in (([503, 200], 2), ([503], 3), ([404], 1)):
            script[:], seen[:] = statuses, []
            if statuses[-1] == 200:
                assert await get_user(session, base, 42, delay=0) == ADA
            else:
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    await get_user(session, base, 42, attempts=3, delay=0)
                assert info.value.status == statuses[-1]
            assert len(seen) == expected_calls, (statuses, seen)


@wrong(check.test_retries, "never tries a 404", problem="retries-4xx")
async def retries_never_404(get_user):
    await _retries(get_user, cases=("first", "forever"))


@wrong(check.test_retries, "the 404 not counted", problem="retries-4xx")
async def retries_404_not_counted(get_user):
    await _retries(get_user, count_404=None)


@wrong(check.test_retries, "the 503s counted as at least 3", problem="too-many-attempts")
async def retries_at_least_three(get_user):
    await _retries(get_user, compare_forever=lambda seen, expected: seen >= expected)


@wrong(check.test_retries, "503 then 200 not counted", problem="keeps-going-after-success")
async def retries_first_not_counted(get_user):
    await _retries(get_user, count_first=None)


@wrong(check.test_retries, "the 503-forever case in try/except without else",
       problem="passes-without-raise")
async def retries_forever_try_without_else(get_user):
    await _retries(get_user, forever_raises=False)


@wrong(check.test_retries, "no 503-forever case", problem="gives-up-silently")
async def retries_no_forever_case(get_user):
    await _retries(get_user, cases=("first", "404"))


@wrong(check.test_retries, "delay=0.001: still sleeps", problem="test-sleeps")
async def retries_small_delay(get_user):
    await _retries(get_user, delay=0.001)


@wrong(check.test_retries, "leaves delay at its default", problem="test-sleeps")
async def retries_default_delay(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA
            assert calls(m) == 2


@wrong(check.test_retries, "only the success, no delay=0", problem="test-sleeps")
async def retries_only_success(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA


@wrong(check.test_retries, "no 503-then-200 case, the 503s not counted", problem="no-retry")
async def retries_no_success_case(get_user):
    await _retries(get_user, cases=("forever", "404"), count_forever=None)


@wrong(check.test_retries, "only the success, with delay=0", problem="retries-4xx")
async def retries_only_success_no_sleep(get_user):
    await _retries(get_user, cases=("first",))


@wrong(check.test_retries, "expects 1 call for 503 then 200", problem="fails-on-correct-code")
async def retries_expects_one_call(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            await get_user(session, BASE, 42, delay=0)
            assert calls(m) == 1


@wrong(check.test_retries, "a CallbackResult(status=503) without reason=",
       problem="fails-on-correct-code")
async def retries_callback_without_reason(get_user):
    def always_503(url, **kwargs):
        return CallbackResult(status=503)

    with aioresponses() as m:
        m.get(URL42, callback=always_503, repeat=True)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, attempts=3, delay=0)


@wrong(check.test_retries, "the imported get_user", problem="ignores-argument")
async def retries_imported_copy(get_user):
    await retries_complete(check.get_user)


@wrong(check.test_retries, "asserts nothing", problem="asserts-nothing")
async def retries_asserts_nothing(get_user):
    with aioresponses() as m:
        m.get(URL42, status=404, repeat=True)
        async with aiohttp.ClientSession() as session:
            try:
                await get_user(session, BASE, 42, delay=0)
            except aiohttp.ClientError:
                pass


@wrong(check.test_retries, "no mock", problem="real-network")
async def retries_real_network(get_user):
    async with aiohttp.ClientSession() as session:
        await get_user(session, "http://api.example.com", 42, delay=0)


@wrong(check.test_retries, "a session left open", problem="unclosed-session")
async def retries_session_left_open(get_user):
    session = aiohttp.ClientSession()
    with aioresponses() as m:
        m.get(URL42, status=404, repeat=True)
        with pytest.raises(aiohttp.ClientResponseError):
            await get_user(session, BASE, 42, delay=0)


@wrong(check.test_retries, "asyncio.sleep forever", problem="test-hangs")
async def retries_hangs(get_user):
    await asyncio.sleep(3600)


@wrong(check.test_retries, "the retry's result without await", problem="missing-await")
async def retries_without_await(get_user):
    with aioresponses() as m:
        m.get(URL42, status=503)
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            result = get_user(session, BASE, 42, delay=0)
            assert result is not None


# kept from the earlier tests: both now let get_user sleep, which is judged first


@wrong(check.test_retries, "no 404 case, no delay=0", problem="test-sleeps")
async def retries_no_404(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA
        with aioresponses() as m:
            m.get(URL42, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42, attempts=3)
            assert calls(m) == 3


@wrong(check.test_retries, "the 503s not counted, no delay=0", problem="test-sleeps")
async def retries_no_count(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA
        with aioresponses() as m:
            m.get(URL42, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
            assert calls(m) == 1


# --- Task 4: the users API -----------------------------------------------------------------------


async def _api(
    client,
    *,
    unknown=True,
    abc=True,
    shape=True,
    created=(201,),
    created_body=True,
    missing_name=True,
    error_bodies=True,
):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        if shape:
            assert await resp.json() == {"id": 1, "name": "Ada"}
    for path, status, run in (("/users/999", 404, unknown), ("/users/abc", 400, abc)):
        if run:
            async with client.get(path) as resp:
                assert resp.status == status, path
                if error_bodies:
                    assert "error" in await resp.json(), path
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status in created
        if created_body:
            assert await resp.json() == {"id": 2, "name": "Grace"}
    if missing_name:
        async with client.post("/users", json={}) as resp:
            assert resp.status == 400
            if error_bodies:
                assert "error" in await resp.json()


@correct(check.test_user_api, "every row: status, and body (error rows: JSON with 'error')")
async def api_every_row(client):
    await _api(client)


@correct(check.test_user_api, "table-driven over client.request, error bodies by their keys")
async def api_table(client):
    rows = [
        ("GET", "/users/1", None, 200, {"id": 1, "name": "Ada"}),
        ("GET", "/users/999", None, 404, None),
        ("GET", "/users/x1", None, 400, None),
        ("POST", "/users", {"name": "Grace"}, 201, {"id": 2, "name": "Grace"}),
        ("POST", "/users", {"nom": "Grace"}, 400, None),
    ]
    for method, path, body, status, expected in rows:
        async with client.request(method, path, json=body) as resp:
            data = await resp.json()
            assert resp.status == status, (method, path)
            if expected is None:
                assert set(data) == {"error"}, data
            else:
                assert data == expected, data


@correct(check.test_user_api, "client.session with client.make_url; raw text parsed by hand")
async def api_make_url(client):
    session = client.session

    async def fetch(method: str, path: str, **kw) -> tuple[int, object]:
        async with session.request(method, client.make_url(path), **kw) as resp:
            return resp.status, json.loads(await resp.text())

    assert await fetch("GET", "/users/1") == (200, {"id": 1, "name": "Ada"})
    for path, status in (("/users/999", 404), ("/users/abc", 400)):
        got, body = await fetch("GET", path)
        assert got == status and isinstance(body["error"], str)
    assert await fetch("POST", "/users", json={"name": "Grace"}) == (
        201,
        {"id": 2, "name": "Grace"},
    )
    got, body = await fetch("POST", "/users", json={"name": ""})
    assert got == 400 and "error" in body


@correct(check.test_user_api, "the client for most rows, make_mocked_request for a handler")
async def api_with_mocked_request(client):
    await _api(client, abc=False)
    app = client.server.app
    request = make_mocked_request("GET", "/users/abc", match_info={"user_id": "abc"}, app=app)
    match = await app.router.resolve(request)
    with pytest.raises(web.HTTPBadRequest) as info:
        await match.handler(request)
    assert "error" in json.loads(info.value.text)


@wrong(check.test_user_api, "no error bodies checked", problem="unknown-user-body")
async def api_complete(client):
    await _api(client, error_bodies=False)


@wrong(check.test_user_api, "never tries an unknown user", problem="unknown-user-200")
async def api_no_unknown(client):
    await _api(client, unknown=False)


@wrong(check.test_user_api, "never tries /users/abc", problem="no-id-validation")
async def api_no_abc(client):
    await _api(client, abc=False)


@wrong(check.test_user_api, "never compares the user's body", problem="wrong-shape")
async def api_no_shape(client):
    await _api(client, shape=False)


@wrong(check.test_user_api, "accepts 200 or 201", problem="created-200")
async def api_200_or_201(client):
    await _api(client, created=(200, 201))


@wrong(check.test_user_api, "never sends a POST without a name", problem="no-name-validation")
async def api_no_missing_name(client):
    await _api(client, missing_name=False)


@wrong(check.test_user_api, "the creation's body is not compared", problem="created-without-id")
async def api_created_body_unchecked(client):
    await _api(client, created_body=False)


@wrong(check.test_user_api, "checks only the name in the created body",
       problem="created-without-id")
async def api_created_name_only(client):
    await _api(client, created_body=False)
    async with client.post("/users", json={"name": "Linus"}) as resp:
        assert (await resp.json())["name"] == "Linus"


@wrong(check.test_user_api, "the user found by substring", problem="wrong-shape")
async def api_user_substring(client):
    await _api(client, shape=False)
    async with client.get("/users/1") as resp:
        assert "Ada" in await resp.text()


@wrong(check.test_user_api, "error rows: only their content type", problem="bad-id-body")
async def api_error_content_type(client):
    await _api(client, error_bodies=False)
    for method, path, body in (("GET", "/users/999", None), ("GET", "/users/abc", None),
                               ("POST", "/users", {})):
        async with client.request(method, path, json=body) as resp:
            assert resp.content_type == "application/json"


@wrong(check.test_user_api, "only the unknown user's body checked", problem="bad-id-body")
async def api_only_404_body(client):
    await _api(client, error_bodies=False)
    async with client.get("/users/999") as resp:
        assert "error" in await resp.json(content_type=None)


@wrong(check.test_user_api, "error bodies of the GET rows only", problem="no-name-body")
async def api_get_error_bodies_only(client):
    await _api(client, missing_name=False)
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400


@wrong(check.test_user_api, "only the status of /users/1", problem="asserts-nothing")
async def api_status_only(client):
    async with client.get("/users/1") as resp:
        assert resp.status < 500


@wrong(check.test_user_api, "expects 200 for a creation", problem="fails-on-correct-code")
async def api_wrong_expectation(client):
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 200


@wrong(check.test_user_api, "a request to example.com", problem="real-network")
async def api_outside(client):
    async with aiohttp.ClientSession() as session:
        async with session.get("http://example.com/") as resp:
            assert resp.status == 200


@wrong(check.test_user_api, "a session of its own, left open", problem="unclosed-session")
async def api_leaves_session_open(client):
    session = aiohttp.ClientSession()
    async with session.get(client.make_url("/users/1")) as resp:
        assert resp.status == 200
    await _api(client)


@wrong(check.test_user_api, "its own server around make_app()", problem="ignores-argument")
async def api_own_server(client):
    from aiohttp.test_utils import TestClient

    async with TestClient(TestServer(check.make_app())) as own:
        await _api(own)


@wrong(check.test_user_api, "resp.json() without await", problem="missing-await")
async def api_json_without_await(client):
    async with client.get("/users/1") as resp:
        assert resp.json() == {"id": 1, "name": "Ada"}


@wrong(check.test_user_api, "its own session to localhost:9", problem="fails-on-correct-code")
async def api_own_url(client):
    async with aiohttp.ClientSession() as session:
        async with session.get("http://localhost:9/users/1") as resp:
            assert resp.status == 200


@wrong(check.test_user_api, "its own session with base_url: error rows by status only",
       problem="unknown-user-body")
async def api_through_own_session(client):
    async with aiohttp.ClientSession(base_url=client.make_url("/")) as session:
        async with session.get("/users/1") as resp:
            assert (resp.status, await resp.json()) == (200, {"id": 1, "name": "Ada"})
        for path, status in (("/users/999", 404), ("/users/abc", 400)):
            async with session.get(path) as resp:
                assert resp.status == status
        async with session.post("/users", json={"name": "Grace"}) as resp:
            assert resp.status == 201
            assert await resp.json() == {"id": 2, "name": "Grace"}
        for body in ({"data": b"not json"}, {"json": {"name": ""}}, {"json": {}}):
            async with session.post("/users", **body) as resp:
                assert resp.status == 400


@wrong(check.test_user_api, "waits forever", problem="test-hangs")
async def api_hangs(client):
    await asyncio.Event().wait()


# --- kept from the earlier tests ---------------------------------------------------------------


@wrong(check.test_user_api, "table-driven, error bodies read but never checked",
       problem="bad-id-body")
async def api_complete_table(client):
    cases = [
        ("GET", "/users/1", None, 200, {"id": 1, "name": "Ada"}),
        ("GET", "/users/999", None, 404, None),
        ("GET", "/users/x1", None, 400, None),
        ("POST", "/users", {"name": "Grace"}, 201, {"id": 2, "name": "Grace"}),
        ("POST", "/users", {"nom": "Grace"}, 400, None),
    ]
    for method, path, body, status, expected in cases:
        resp = await client.request(method, path, json=body)
        data = await resp.json()
        assert resp.status == status, (method, path)
        if expected is not None:
            assert data == expected


def _without(skip: str):
    """The earlier complete test minus the request or check named ``skip``."""

    async def partial(client):
        async with client.get("/users/1") as resp:
            assert resp.status == 200
            if skip != "shape":
                assert await resp.json() == {"id": 1, "name": "Ada"}
        if skip != "999":
            async with client.get("/users/999") as resp:
                assert resp.status == 404
        if skip != "abc":
            async with client.get("/users/abc") as resp:
                assert resp.status == 400
        async with client.post("/users", json={"name": "Grace"}) as resp:
            assert resp.status in ((200, 201) if skip == "201" else (201,))
        if skip != "noname":
            async with client.post("/users", json={}) as resp:
                assert resp.status == 400

    partial.__name__ = f"api_without_{skip}"
    return partial


for _skip, _problem in (
    ("999", "unknown-user-200"),
    ("abc", "no-id-validation"),
    ("shape", "wrong-shape"),
    ("201", "created-200"),
    ("noname", "no-name-validation"),
):
    wrong(check.test_user_api, f"the earlier complete test without {_skip}",
          problem=_problem)(_without(_skip))


# --- the stubs ------------------------------------------------------------------------------------


for _check in (check.test_returns_the_user, check.test_errors_are_raised, check.test_retries,
               check.test_user_api):

    async def _stub(argument):
        raise NotImplementedError("your code here")

    _stub.__name__ = f"stub_{_check.task}"
    wrong(_check, "the exercise's stub", problem="not-implemented")(_stub)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    first = check.test_retries.diagnose(retries_first_not_counted)
    assert first == check.test_retries.diagnose(retries_first_not_counted)


def test_a_failing_test_is_quoted_at_its_own_line():
    verdict = check.test_returns_the_user.diagnose(request_wrong_expectation)
    assert "of request_wrong_expectation(): `assert await get_user(" in verdict.message, (
        verdict.render()
    )
    assert "AssertionError" in verdict.message


def test_a_missing_registration_gets_the_aioresponses_hint():
    verdict = check.test_returns_the_user.diagnose(request_wrong_url_registered)
    assert "Connection refused" in verdict.message and "repeat=True" in verdict.hint


@pytest.mark.parametrize(
    ("task", "answer", "in_hint"),
    [
        ("test_returns_the_user", request_string_key, "URL(url)"),
        ("test_returns_the_user", request_wrong_arguments, "TypeError"),
        ("test_returns_the_user", request_without_await, "await get_user("),
        ("test_user_api", api_json_without_await, "await resp.json()"),
        ("test_user_api", api_own_url, "client.get('/users/1')"),
    ],
)
def test_mistakes_in_the_test_itself_get_their_own_hint(task, answer, in_hint, capsys):
    verdict = getattr(check, task).diagnose(answer)
    assert in_hint in verdict.hint, verdict.render()
    assert capsys.readouterr().err == ""  # no "never awaited" warning escapes the check


def test_a_missing_await_names_the_coroutine():
    verdict = check.test_user_api.diagnose(api_json_without_await)
    assert "`ClientResponse.json()` without `await`" in verdict.message, verdict.render()
    verdict = check.test_returns_the_user.diagnose(request_without_await)
    assert "`get_user()` without `await`" in verdict.message, verdict.render()


def test_a_reraised_exception_is_quoted_at_the_line_it_escaped_from():
    """aioresponses raises one exception object again and again; the last raise counts."""
    verdict = check.test_errors_are_raised.diagnose(errors_in_one_block)
    assert "# the timeout case" in verdict.message, verdict.render()


def test_an_assert_inside_aiohttp_is_not_blamed_on_the_test():
    verdict = check.test_retries.diagnose(retries_callback_without_reason)
    assert "inside aiohttp" in verdict.message and "not one of yours" in verdict.message
    assert "reason=" in verdict.hint, verdict.render()


def test_a_try_without_else_is_named_with_the_call_that_returned():
    verdict = check.test_errors_are_raised.diagnose(errors_timeout_try_without_else)
    assert "returned None where the correct one raised TimeoutError" in verdict.message, (
        verdict.render()
    )


def test_a_missed_bug_is_shown_by_the_call_that_changed():
    verdict = check.test_errors_are_raised.diagnose(errors_any_exception_for_404)
    assert "raised LookupError (the correct one raised ClientResponseError 404)" in (
        verdict.message
    ), verdict.render()


def test_a_missed_app_bug_is_shown_by_the_answer_of_its_row():
    verdict = check.test_user_api.diagnose(api_complete)
    assert "GET /users/999 answered 404 404: Not Found" in verdict.message, verdict.render()
    verdict = check.test_user_api.diagnose(api_no_unknown)
    assert "Your test sent no GET that the correct app answers 404" in verdict.message


def test_sleeps_are_quoted_from_the_line_that_let_get_user_sleep():
    verdict = check.test_retries.diagnose(retries_default_delay)
    assert "`assert await get_user(session, BASE, 42) == ADA`" in verdict.message, (
        verdict.render()
    )


def test_the_server_error_of_a_broken_app_stays_out_of_stderr(capsys):
    verdict = check.test_user_api.diagnose(api_no_abc)
    assert verdict.problem == "no-id-validation"
    assert capsys.readouterr().err == ""


# --- The code under test itself --------------------------------------------------------------


async def test_get_user_and_the_app_behave_as_documented(aiohttp_client):
    client = await aiohttp_client(check.make_app())
    base = f"http://{client.host}:{client.port}"
    async with aiohttp.ClientSession() as session:
        assert await check.get_user(session, base, 1) == {"id": 1, "name": "Ada"}
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await check.get_user(session, base, 2)
        assert info.value.status == 404


def test_the_broken_versions_without_bugs_behave_like_the_correct_code():
    """``_broken_get_user()`` with no bug switched on passes the complete tests."""
    for task, answer in (
        (check.test_returns_the_user, request_complete),
        (check.test_errors_are_raised, errors_complete),
        (check.test_retries, retries_complete),
    ):
        asyncio.run(answer(check._broken_get_user()))
        assert task.diagnose(answer).passed
