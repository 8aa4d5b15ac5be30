"""Exercise 14's checkers: complete test suites pass, each gap and each wrong test is named."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from local_server.checks import testing as check

BASE = "http://api.test"
URL42 = f"{BASE}/users/42"
ACCEPT = {"Accept": "application/json"}
ADA = {"id": 42, "name": "Ada"}


def calls(m: aioresponses, url: str = URL42) -> int:
    return len(m.requests.get(("GET", URL(url)), []))


# --- Task 1: the request and the result ----------------------------------------------------


async def request_complete(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once_with(URL42, headers=ACCEPT)


async def request_complete_with_requests(get_user):
    """Another correct test: repeat=True, then the call log read by hand."""
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            user = await get_user(session, BASE, 42)
        assert user == ADA
        [call] = m.requests[("GET", URL(URL42))]
        assert call.kwargs["headers"]["Accept"] == "application/json"


@pytest.mark.parametrize("answer", [request_complete, request_complete_with_requests])
def test_request_check_accepts_complete_tests(answer):
    verdict = check.test_returns_the_user.diagnose(answer)
    assert verdict.passed, verdict.render()


async def request_no_header_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once()


async def request_no_result_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            await get_user(session, BASE, 42)
        m.assert_called_once_with(URL42, headers=ACCEPT)


async def request_no_count_check(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        assert m.requests[("GET", URL(URL42))][-1].kwargs["headers"] == ACCEPT


async def request_asserts_nothing(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA, repeat=True)
        async with aiohttp.ClientSession() as session:
            try:
                await get_user(session, BASE, 42)
            except Exception:
                pass


async def request_wrong_expectation(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == {"id": 42, "name": "Grace"}


async def request_wrong_url_registered(get_user):
    with aioresponses() as m:
        m.get(f"{BASE}/user/42", payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA


async def request_without_mock(get_user):
    async with aiohttp.ClientSession() as session:
        assert await get_user(session, "http://api.example.com", 42) == ADA


async def request_session_left_open(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        session = aiohttp.ClientSession()
        assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once_with(URL42, headers=ACCEPT)


def request_not_async(get_user):
    return None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (request_no_header_check, "no-accept-header"),
        (request_no_result_check, "returns-text"),
        (request_no_count_check, "sends-twice"),
        (request_asserts_nothing, "asserts-nothing"),
        (request_wrong_expectation, "fails-on-correct-code"),
        (request_wrong_url_registered, "fails-on-correct-code"),
        (request_without_mock, "real-network"),
        (request_session_left_open, "unclosed-session"),
        (request_not_async, "not-async"),
    ],
)
def test_request_check_diagnoses_each_gap(answer, problem):
    verdict = check.test_returns_the_user.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_a_failing_test_is_quoted_with_its_line():
    verdict = check.test_returns_the_user.diagnose(request_wrong_expectation)
    assert "assert await get_user(session, BASE, 42) ==" in verdict.message, verdict.render()
    assert "AssertionError" in verdict.message


def test_a_missing_registration_gets_the_aioresponses_hint():
    verdict = check.test_returns_the_user.diagnose(request_wrong_url_registered)
    assert "Connection refused" in verdict.message and "repeat=True" in verdict.hint


def test_a_failing_test_is_quoted_at_its_own_line():
    verdict = check.test_returns_the_user.diagnose(request_wrong_expectation)
    assert "of request_wrong_expectation(): `assert await get_user(" in verdict.message, (
        verdict.render()
    )


def test_a_stub_is_not_implemented():
    async def stub(get_user):
        raise NotImplementedError("your code here")

    assert check.test_returns_the_user.diagnose(stub).problem == "not-implemented"


# --- Task 2: errors --------------------------------------------------------------------------


async def errors_complete(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404, payload={"error": "not found"})
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42)
            assert info.value.status == 404
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


async def errors_complete_without_pytest(get_user):
    """The same, with try/except and a flag instead of pytest.raises."""
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


@pytest.mark.parametrize("answer", [errors_complete, errors_complete_without_pytest])
def test_errors_check_accepts_complete_tests(answer):
    verdict = check.test_errors_are_raised.diagnose(answer)
    assert verdict.passed, verdict.render()


async def errors_no_404(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, timeout=True)
            with pytest.raises(TimeoutError):
                await get_user(session, BASE, 42)


async def errors_no_timeout(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"), repeat=True)
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42)


async def errors_connection_error_once(get_user):
    """The error registered once: the retries meet unregistered URLs, which raise the same class.

    So it is a valid test of connection errors; it only lacks the timeout.
    """
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
        with aioresponses() as m:
            m.get(URL42, exception=aiohttp.ClientConnectionError("down"))
            with pytest.raises(aiohttp.ClientConnectionError):
                await get_user(session, BASE, 42)


async def errors_expects_wrong_class(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, timeout=True)
            with pytest.raises(aiohttp.ServerTimeoutError):
                await get_user(session, BASE, 42)


async def errors_expects_none(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=404)
            assert await get_user(session, BASE, 42) is None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (errors_no_404, "ignores-status"),
        (errors_no_timeout, "swallows-timeouts"),
        (errors_expects_wrong_class, "fails-on-correct-code"),
        (errors_expects_none, "fails-on-correct-code"),
    ],
)
def test_errors_check_diagnoses_each_gap(answer, problem):
    verdict = check.test_errors_are_raised.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_a_connection_error_registered_once_still_counts():
    verdict = check.test_errors_are_raised.diagnose(errors_connection_error_once)
    assert verdict.problem == "swallows-timeouts", verdict.render()


# --- Task 3: retries -------------------------------------------------------------------------


async def retries_complete(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42, delay=0) == ADA
            assert calls(m) == 2
        with aioresponses() as m:
            m.get(URL42, status=503, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError) as info:
                await get_user(session, BASE, 42, attempts=3, delay=0)
            assert info.value.status == 503
            assert calls(m) == 3
        with aioresponses() as m:
            m.get(URL42, status=404, repeat=True)
            with pytest.raises(aiohttp.ClientResponseError):
                await get_user(session, BASE, 42)
            assert calls(m) == 1


@pytest.mark.parametrize("answer", [retries_complete])
def test_retries_check_accepts_complete_tests(answer):
    verdict = check.test_retries.diagnose(answer)
    assert verdict.passed, verdict.render()


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


async def retries_only_success(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            assert await get_user(session, BASE, 42) == ADA


async def retries_expects_one_call(get_user):
    async with aiohttp.ClientSession() as session:
        with aioresponses() as m:
            m.get(URL42, status=503)
            m.get(URL42, payload=ADA)
            await get_user(session, BASE, 42)
            assert calls(m) == 1


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (retries_no_404, "retries-4xx"),
        (retries_no_count, "too-many-attempts"),
        (retries_only_success, "retries-4xx"),
        (retries_expects_one_call, "fails-on-correct-code"),
    ],
)
def test_retries_check_diagnoses_each_gap(answer, problem):
    verdict = check.test_retries.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_a_missed_bug_is_named_with_the_others():
    verdict = check.test_retries.diagnose(retries_only_success)
    assert "retries a 404" in verdict.message and "makes 5 calls" in verdict.message


# --- Task 4: the users API -------------------------------------------------------------------


async def api_complete(client):
    async with client.get("/users/1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": 1, "name": "Ada"}
    async with client.get("/users/999") as resp:
        assert resp.status == 404
    async with client.get("/users/abc") as resp:
        assert resp.status == 400
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 201
        created = await resp.json()
    async with client.get(f"/users/{created['id']}") as resp:
        assert await resp.json() == {"id": created["id"], "name": "Grace"}
    async with client.post("/users", json={}) as resp:
        assert resp.status == 400


async def api_complete_table(client):
    """Table-driven, reading the status without `async with` bodies (resp is released)."""
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


@pytest.mark.parametrize("answer", [api_complete, api_complete_table])
def test_api_check_accepts_complete_tests(answer):
    verdict = check.test_user_api.diagnose(answer)
    assert verdict.passed, verdict.render()


def _without(skip: str):
    """api_complete minus the requests whose path or method contains ``skip``."""

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

    return partial


async def api_status_only(client):
    async with client.get("/users/1") as resp:
        assert resp.status < 500


async def api_wrong_expectation(client):
    async with client.post("/users", json={"name": "Grace"}) as resp:
        assert resp.status == 200


async def api_outside(client):
    async with aiohttp.ClientSession() as session:
        async with session.get("http://example.com/") as resp:
            assert resp.status == 200


async def api_leaves_session_open(client):
    session = aiohttp.ClientSession()
    async with session.get(client.make_url("/users/1")) as resp:
        assert resp.status == 200
    await api_complete(client)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_without("999"), "unknown-user-200"),
        (_without("abc"), "no-id-validation"),
        (_without("shape"), "wrong-shape"),
        (_without("201"), "created-200"),
        (_without("noname"), "no-name-validation"),
        (api_status_only, "asserts-nothing"),
        (api_wrong_expectation, "fails-on-correct-code"),
        (api_outside, "real-network"),
        (api_leaves_session_open, "unclosed-session"),
    ],
)
def test_api_check_diagnoses_each_gap(answer, problem):
    verdict = check.test_user_api.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_the_server_error_of_a_broken_app_stays_out_of_stderr(capsys):
    verdict = check.test_user_api.diagnose(_without("abc"))
    assert "ValueError" in verdict.message
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


# --- Unusual but correct tests ---------------------------------------------------------------


async def request_regex_and_body(get_user):
    """A regex URL, the JSON as a raw body, and the one call found through m.requests.values()."""
    with aioresponses() as m:
        m.get(re.compile(r"^http://api\.test/users/42$"), body=json.dumps(ADA), repeat=True)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        m.assert_called_once()
        [[call]] = m.requests.values()
        assert call.kwargs["headers"] == ACCEPT


async def errors_with_base_classes(get_user):
    """ClientError and asyncio.TimeoutError, broader names for the same outcomes."""
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


async def retries_registered_one_by_one(get_user):
    """Three 503s registered one by one, and a 404 once: an extra call finds nothing left."""
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


async def api_through_own_session(client):
    """Its own session with base_url, and more bad bodies than the task asks for."""
    async with aiohttp.ClientSession(base_url=client.make_url("/")) as session:
        async with session.get("/users/1") as resp:
            assert (resp.status, await resp.json()) == (200, {"id": 1, "name": "Ada"})
        for path, status in (("/users/999", 404), ("/users/abc", 400)):
            async with session.get(path) as resp:
                assert resp.status == status
        async with session.post("/users", json={"name": "Grace"}) as resp:
            assert resp.status == 201
        for body in ({"data": b"not json"}, {"json": {"name": ""}}, {"json": {}}):
            async with session.post("/users", **body) as resp:
                assert resp.status == 400


@pytest.mark.parametrize(
    ("task", "answer"),
    [
        ("test_returns_the_user", request_regex_and_body),
        ("test_errors_are_raised", errors_with_base_classes),
        ("test_retries", retries_registered_one_by_one),
        ("test_user_api", api_through_own_session),
    ],
)
def test_unusual_but_correct_tests_pass(task, answer):
    verdict = getattr(check, task).diagnose(answer)
    assert verdict.passed, verdict.render()


# --- Mistakes in the test's own code ----------------------------------------------------------


async def request_string_key(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, BASE, 42) == ADA
        assert len(m.requests[("GET", URL42)]) == 1


async def request_wrong_arguments(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            assert await get_user(session, URL42) == ADA


async def request_without_await(get_user):
    with aioresponses() as m:
        m.get(URL42, payload=ADA)
        async with aiohttp.ClientSession() as session:
            user = get_user(session, BASE, 42)
        assert user == ADA


async def api_json_without_await(client):
    async with client.get("/users/1") as resp:
        assert resp.json() == {"id": 1, "name": "Ada"}


async def api_own_url(client):
    async with aiohttp.ClientSession() as session:
        async with session.get("http://localhost:9/users/1") as resp:
            assert resp.status == 200


@pytest.mark.parametrize(
    ("task", "answer", "problem", "in_hint"),
    [
        ("test_returns_the_user", request_string_key, "fails-on-correct-code", "URL(url)"),
        ("test_returns_the_user", request_wrong_arguments, "fails-on-correct-code", "TypeError"),
        ("test_returns_the_user", request_without_await, "missing-await", "await get_user("),
        ("test_user_api", api_json_without_await, "missing-await", "await resp.json()"),
        ("test_user_api", api_own_url, "fails-on-correct-code", "client.get('/users/1')"),
    ],
)
def test_mistakes_in_the_test_itself_get_their_own_hint(task, answer, problem, in_hint, capsys):
    verdict = getattr(check, task).diagnose(answer)
    assert verdict.problem == problem, verdict.render()
    assert in_hint in verdict.hint, verdict.render()
    assert capsys.readouterr().err == ""  # no "never awaited" warning escapes the check


def test_a_missing_await_names_the_coroutine():
    verdict = check.test_user_api.diagnose(api_json_without_await)
    assert "`ClientResponse.json()` without `await`" in verdict.message, verdict.render()


async def errors_in_one_block(get_user):
    """One mock for all three cases: the repeated connection error also answers the last call."""
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


def test_a_reraised_exception_is_quoted_at_the_line_it_escaped_from():
    """aioresponses raises one exception object again and again; the last raise counts."""
    verdict = check.test_errors_are_raised.diagnose(errors_in_one_block)
    assert verdict.problem == "fails-on-correct-code", verdict.render()
    assert "# the timeout case" in verdict.message, verdict.render()
