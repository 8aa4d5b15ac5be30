"""Exercise 06's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import aiohttp
import pytest

from local_server.checks import error_handling as check
from local_server.checks.error_handling import ApiError, FetchResult, Outcome

# --- Task 1: safe_fetch ------------------------------------------------------------------


async def safe_fetch_clauses(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, status=error.status, detail=str(error))
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status, detail=error.message)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientPayloadError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, detail=str(error))
    except aiohttp.ClientConnectionError as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


async def safe_fetch_status_check(session, url):
    """Correct too: tests response.ok instead of raise_for_status, payload as connection."""
    try:
        async with session.get(url) as response:
            if not response.ok:
                return FetchResult(Outcome.HTTP_ERROR, status=response.status)
            try:
                data = await response.json()
            except (aiohttp.ContentTypeError, ValueError):
                return FetchResult(Outcome.INVALID_RESPONSE, status=response.status)
            return FetchResult(Outcome.OK, data=data, status=200)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@pytest.mark.parametrize("answer", [safe_fetch_clauses, safe_fetch_status_check])
def test_safe_fetch_accepts_correct_alternatives(answer):
    verdict = check.safe_fetch.diagnose(answer)
    assert verdict.passed, verdict.render()


async def seed_client_timeout_clause(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.ClientConnectionError:
        return FetchResult(Outcome.CONNECTION_ERROR)
    except aiohttp.ClientTimeout:  # the seed's clause
        return FetchResult(Outcome.TIMEOUT)


async def timeout_not_caught(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


async def timeout_after_connection_clause(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)
    except TimeoutError:  # too late: a read timeout is a ClientConnectionError too
        return FetchResult(Outcome.TIMEOUT)


async def http_errors_as_success(session, url):
    try:
        async with session.get(url) as response:
            return FetchResult(Outcome.OK, data=await response.json(content_type=None))
    except ValueError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


async def everything_swallowed(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except Exception as error:
        print(f"Unexpected error: {error}")
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


async def classifies_then_swallows_the_rest(session, url):
    try:
        return await safe_fetch_clauses(session, url)
    except Exception as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


async def content_type_as_http_error(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except aiohttp.ClientResponseError as error:  # catches ContentTypeError too
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


async def returns_none_on_error(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except (aiohttp.ClientError, TimeoutError):
        return None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (seed_client_timeout_clause, "client-timeout-clause"),
        (timeout_not_caught, "timeout-not-caught"),
        (timeout_after_connection_clause, "timeout-as-connection-error"),
        (http_errors_as_success, "http-error-as-success"),
        (everything_swallowed, "one-generic-case"),
        (classifies_then_swallows_the_rest, "swallows-bugs"),
        (content_type_as_http_error, "wrong-outcome"),
        (returns_none_on_error, "wrong-return-type"),
    ],
)
def test_safe_fetch_diagnoses_mistakes(answer, problem):
    verdict = check.safe_fetch.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 2: fetch_json ------------------------------------------------------------------


async def fetch_json_ok_test(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, await response.text())
        return await response.json()


async def fetch_json_catch_raise_for_status(session, url):
    async with session.get(url) as response:
        try:
            response.raise_for_status()
        except aiohttp.ClientResponseError as error:
            raise ApiError(error.status, await response.text()) from error
        return await response.json()


@pytest.mark.parametrize("answer", [fetch_json_ok_test, fetch_json_catch_raise_for_status])
def test_fetch_json_accepts_correct_alternatives(answer):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.passed, verdict.render()


async def fetch_json_raise_for_status_only(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def fetch_json_no_status_check(session, url):
    async with session.get(url) as response:
        return await response.json()


async def fetch_json_body_after_block(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()
    except aiohttp.ClientResponseError as error:
        raise ApiError(error.status, error.message) from error


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (fetch_json_raise_for_status_only, "body-lost"),
        (fetch_json_no_status_check, "http-error-as-success"),
        (fetch_json_body_after_block, "body-lost"),
    ],
)
def test_fetch_json_diagnoses_mistakes(answer, problem):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- Task 3: api_session -----------------------------------------------------------------


def api_session_plain(base_url):
    return aiohttp.ClientSession(base_url=base_url, raise_for_status=True)


async def api_session_async(base_url):
    return aiohttp.ClientSession(
        base_url=base_url, raise_for_status=True, timeout=aiohttp.ClientTimeout(total=5)
    )


@pytest.mark.parametrize("answer", [api_session_plain, api_session_async])
def test_api_session_accepts_correct_alternatives(answer):
    verdict = check.api_session.diagnose(answer)
    assert verdict.passed, verdict.render()


def api_session_without_raise(base_url):
    return aiohttp.ClientSession(base_url=base_url)


def api_session_without_base_url(base_url):
    return aiohttp.ClientSession(raise_for_status=True)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (api_session_without_raise, "session-does-not-raise"),
        (api_session_without_base_url, "no-base-url"),
    ],
)
def test_api_session_diagnoses_mistakes(answer, problem):
    verdict = check.api_session.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
