"""Exercise 06's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. The answers marked "mine" were written from the
task text before the checks were rebuilt.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import error_handling as check
from local_server.checks.error_handling import ApiError, FetchResult, Outcome

# --- Task 1: safe_fetch ------------------------------------------------------------------


@correct(check.safe_fetch, "the lesson's clauses, a payload error as an invalid response")
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


@correct(check.safe_fetch, "response.ok instead of raise_for_status, payload as connection")
async def safe_fetch_status_check(session, url):
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


@correct(check.safe_fetch, "mine: a per-request raise_for_status=True")
async def safe_fetch_per_request(session, url):
    try:
        async with session.get(url, raise_for_status=True) as response:
            data = await response.json()
            return FetchResult(Outcome.OK, data=data, status=response.status)
    except aiohttp.ContentTypeError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, status=error.status, detail=error.message)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status, detail=error.message)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT, detail="timed out")
    except aiohttp.ClientPayloadError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, detail=str(error))
    except aiohttp.ClientConnectionError as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


@correct(check.safe_fetch, "mine: one ClientError clause sorted with isinstance, the rest raised")
async def safe_fetch_isinstance(session, url):
    try:
        async with session.get(url) as response:
            if response.status >= 400:
                return FetchResult(Outcome.HTTP_ERROR, status=response.status)
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientError as error:
        if isinstance(error, aiohttp.ContentTypeError):
            return FetchResult(Outcome.INVALID_RESPONSE, status=error.status)
        if isinstance(error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
            return FetchResult(Outcome.CONNECTION_ERROR, detail=repr(error))
        raise


def _classify(ok_test, *, on_timeout=Outcome.TIMEOUT, on_payload=Outcome.CONNECTION_ERROR):
    """A safe_fetch with the right clauses, whose success test and two mappings vary."""

    async def safe_fetch(session, url):
        status = None
        try:
            async with session.get(url) as response:
                status = response.status
                if not ok_test(response.status):
                    return FetchResult(Outcome.HTTP_ERROR, status=response.status)
                return FetchResult(Outcome.OK, data=await response.json(), status=status)
        except aiohttp.ContentTypeError:
            return FetchResult(Outcome.INVALID_RESPONSE)
        except TimeoutError:
            return FetchResult(on_timeout, status=408 if on_timeout is Outcome.HTTP_ERROR else None)
        except aiohttp.ClientPayloadError:
            return FetchResult(on_payload, status=status)
        except aiohttp.ClientConnectionError:
            return FetchResult(Outcome.CONNECTION_ERROR)

    return safe_fetch


@wrong(check.safe_fetch, "the seed's except aiohttp.ClientTimeout", problem="client-timeout-clause")
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


@wrong(check.safe_fetch, "no clause for the builtin TimeoutError", problem="timeout-not-caught")
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


@wrong(check.safe_fetch, "TimeoutError after ClientConnectionError",
       problem="timeout-as-connection-error")
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


@wrong(check.safe_fetch, "never checks the status", problem="http-error-as-success")
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


@wrong(check.safe_fetch, "except Exception for everything", problem="one-generic-case")
async def everything_swallowed(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except Exception as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


@wrong(check.safe_fetch, "classifies, then swallows the rest", problem="swallows-bugs")
async def classifies_then_swallows_the_rest(session, url):
    try:
        return await safe_fetch_clauses(session, url)
    except Exception as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


@wrong(check.safe_fetch, "ClientResponseError catches ContentTypeError",
       problem="content-type-as-http-error")
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


@wrong(check.safe_fetch, "returns None for a failure", problem="wrong-return-type")
async def returns_none_on_error(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except (aiohttp.ClientError, TimeoutError):
        return None


@wrong(check.safe_fetch, "no clause for ClientPayloadError", problem="not-caught")
async def safe_fetch_no_payload_clause(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json())
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientConnectionError:
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "HTTP_ERROR without its status", problem="no-status")
async def safe_fetch_no_status(session, url):
    result = await safe_fetch_clauses(session, url)
    if result.outcome is Outcome.HTTP_ERROR:
        return FetchResult(Outcome.HTTP_ERROR, detail=f"HTTP {result.status}")
    return result


@wrong(check.safe_fetch, "the status as a string", problem="wrong-status")
async def safe_fetch_status_as_text(session, url):
    result = await safe_fetch_clauses(session, url)
    if result.outcome is Outcome.HTTP_ERROR:
        return FetchResult(Outcome.HTTP_ERROR, status=str(result.status))
    return result


@wrong(check.safe_fetch, "a timeout reported as HTTP 408", problem="timeout-misclassified")
async def safe_fetch_timeout_as_408(session, url):
    return await _classify(lambda s: s < 400, on_timeout=Outcome.HTTP_ERROR)(session, url)


@wrong(check.safe_fetch, "a body cut short reported as an HTTP error", problem="wrong-outcome")
async def safe_fetch_payload_as_http_error(session, url):
    return await _classify(lambda s: s < 400, on_payload=Outcome.HTTP_ERROR)(session, url)


@wrong(check.safe_fetch, "mine: only status 200 is a success", problem="success-as-error")
async def safe_fetch_only_200(session, url):
    return await _classify(lambda status: status == 200)(session, url)


@wrong(check.safe_fetch, "mine: only the statuses the text names are errors",
       problem="http-error-as-success")
async def safe_fetch_named_statuses(session, url):
    return await _classify(lambda status: status not in (404, 503))(session, url)


@wrong(check.safe_fetch, "mine: SocketTimeoutError caught before ClientConnectionError only",
       problem="timeout-as-connection-error")
async def safe_fetch_socket_timeout_only(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.SocketTimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)


@wrong(check.safe_fetch, "mine: text() then json.loads, the label never checked",
       problem="content-type-not-checked")
async def safe_fetch_loads(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            text = await response.text()
        try:
            return FetchResult(Outcome.OK, data=json.loads(text), status=200)
        except ValueError:
            return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "mine: an unknown host as an invalid response, its own clause",
       problem="connection-error-misclassified")
async def safe_fetch_dns_clause(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientConnectorDNSError:
        return FetchResult(Outcome.INVALID_RESPONSE, detail="bad host name")
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "mine: returns a dict, not a FetchResult", problem="wrong-return-type")
async def safe_fetch_dict(session, url):
    result = await safe_fetch_clauses(session, url)
    return {"outcome": result.outcome, "data": result.data, "status": result.status}


@wrong(check.safe_fetch, "mine: OK without the data", problem="no-data")
async def safe_fetch_no_data(session, url):
    result = await safe_fetch_clauses(session, url)
    if result.outcome is Outcome.OK:
        return FetchResult(Outcome.OK, status=result.status)
    return result


@wrong(check.safe_fetch, "mine: returns the coroutine of an inner helper", problem="missing-await")
async def safe_fetch_forgets_await(session, url):
    return safe_fetch_clauses(session, url)


@wrong(check.safe_fetch, "except OSError with the connection errors, before TimeoutError",
       problem="timeout-as-connection-error")
async def safe_fetch_oserror_first(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except (OSError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)
    except TimeoutError:  # never reached: TimeoutError is an OSError
        return FetchResult(Outcome.TIMEOUT)


@wrong(check.safe_fetch, "every ClientError counted as a timeout",
       problem="connection-error-misclassified")
async def safe_fetch_all_timeouts(session, url):
    try:
        async with session.get(url) as response:
            if not response.ok:
                return FetchResult(Outcome.HTTP_ERROR, status=response.status)
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except (TimeoutError, aiohttp.ClientError):
        return FetchResult(Outcome.TIMEOUT)


def test_safe_fetch_names_a_broad_clause_before_timeout_error():
    verdict = check.safe_fetch.diagnose(safe_fetch_oserror_first)
    assert "for the total timeout, the sock_read timeout and the connect timeout" in (
        verdict.message
    )
    assert "OSError" in verdict.message


@wrong(check.safe_fetch, "a broad ClientError clause before ClientResponseError",
       problem="wrong-outcome")
async def safe_fetch_client_error_first(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientError as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


# --- Task 2: fetch_json ------------------------------------------------------------------


@correct(check.fetch_json, "response.ok tested, the body read before raising")
async def fetch_json_ok_test(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, await response.text())
        return await response.json()


@correct(check.fetch_json, "raise_for_status() caught inside the block")
async def fetch_json_catch_raise_for_status(session, url):
    async with session.get(url) as response:
        try:
            response.raise_for_status()
        except aiohttp.ClientResponseError as error:
            raise ApiError(error.status, await response.text()) from error
        return await response.json()


@correct(check.fetch_json, "mine: read() decoded with the response's charset")
async def fetch_json_read_decode(session, url):
    async with session.get(url) as response:
        raw = await response.read()
        if not response.ok:
            raise ApiError(response.status, raw.decode(response.get_encoding()))
        return json.loads(raw)


@correct(check.fetch_json, "mine: the body read first, ApiError raised from None")
async def fetch_json_from_none(session, url):
    async with session.get(url) as response:
        if response.status >= 400:
            body = await response.text()
            raise ApiError(response.status, body) from None
        return await response.json()


@wrong(check.fetch_json, "raise_for_status() only", problem="body-lost")
async def fetch_json_raise_for_status_only(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


@wrong(check.fetch_json, "no status check", problem="http-error-as-success")
async def fetch_json_no_status_check(session, url):
    async with session.get(url) as response:
        return await response.json()


@wrong(check.fetch_json, "the reason phrase as the body", problem="body-lost")
async def fetch_json_reason_as_body(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()
    except aiohttp.ClientResponseError as error:
        raise ApiError(error.status, error.message) from error


@wrong(check.fetch_json, "the body read after the block", problem="body-read-after-block")
async def fetch_json_body_after_block(session, url):
    async with session.get(url) as response:
        if response.ok:
            return await response.json()
    raise ApiError(response.status, await response.text())


@wrong(check.fetch_json, "ApiError(body, status)", problem="api-error-arguments")
async def fetch_json_swapped(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(await response.text(), response.status)
        return await response.json()


@wrong(check.fetch_json, "the status as a string", problem="wrong-status")
async def fetch_json_status_text(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(str(response.status), await response.text())
        return await response.json()


@wrong(check.fetch_json, "returns the text of a 2xx", problem="no-data")
async def fetch_json_returns_text(session, url):
    async with session.get(url) as response:
        body = await response.text()
        if not response.ok:
            raise ApiError(response.status, body)
        return body


@wrong(check.fetch_json, "the body as bytes", problem="body-not-text")
async def fetch_json_body_bytes(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, await response.read())
        return await response.json()


@wrong(check.fetch_json, "mine: only status 200 is a success", problem="success-as-error")
async def fetch_json_only_200(session, url):
    async with session.get(url) as response:
        if response.status != 200:
            raise ApiError(response.status, await response.text())
        return await response.json()


@wrong(check.fetch_json, "mine: the error body re-encoded with json.dumps",
       problem="body-not-text")
async def fetch_json_redumped(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, json.dumps(await response.json(content_type=None)))
        return await response.json()


@wrong(check.fetch_json, "mine: a connection error returns None", problem="error-swallowed")
async def fetch_json_swallows(session, url):
    try:
        return await fetch_json_ok_test(session, url)
    except aiohttp.ClientConnectionError:
        return None


@wrong(check.fetch_json, "mine: the body stripped", problem="body-not-text")
async def fetch_json_stripped(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, (await response.text()).strip())
        return await response.json()


@wrong(check.fetch_json, "mine: a plain Exception(status, body)", problem="wrong-exception")
async def fetch_json_plain_exception(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise Exception(response.status, await response.text())
        return await response.json()


@wrong(check.fetch_json, "mine: the parsed JSON as the body", problem="body-not-text")
async def fetch_json_parsed_body(session, url):
    async with session.get(url) as response:
        if not response.ok:
            body = await response.json(content_type=None)
            error = ApiError(response.status, "")
            error.body = body
            raise error
        return await response.json()


@wrong(check.fetch_json, "mine: json() on every error body", problem="body-not-text")
async def fetch_json_error_as_json(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, json.dumps(await response.json()))
        return await response.json()


# --- Task 3: api_session -----------------------------------------------------------------


@correct(check.api_session, "raise_for_status=True")
def api_session_plain(base_url):
    return aiohttp.ClientSession(base_url=base_url, raise_for_status=True)


@correct(check.api_session, "an async def, with a timeout")
async def api_session_async(base_url):
    return aiohttp.ClientSession(
        base_url=base_url, raise_for_status=True, timeout=aiohttp.ClientTimeout(total=5)
    )


@correct(check.api_session, "mine: an async def with its own connector")
async def api_session_connector(base_url):
    return aiohttp.ClientSession(
        base_url=base_url, raise_for_status=True, connector=aiohttp.TCPConnector(limit=10)
    )


@correct(check.api_session, "mine: an async callback testing status >= 400")
def api_session_ge_400(base_url):
    async def check_status(response):
        if response.status >= 400:
            response.raise_for_status()

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "no raise_for_status", problem="session-does-not-raise")
def api_session_without_raise(base_url):
    return aiohttp.ClientSession(base_url=base_url)


@wrong(check.api_session, "no base_url", problem="no-base-url")
def api_session_without_base_url(base_url):
    return aiohttp.ClientSession(raise_for_status=True)


@wrong(check.api_session, "returns the class, not a session", problem="not-a-session")
def api_session_class(base_url):
    return aiohttp.ClientSession


@wrong(check.api_session, "a session closed by its async with", problem="session-closed")
async def api_session_closed_by_block(base_url):
    async with aiohttp.ClientSession(base_url=base_url, raise_for_status=True) as session:
        return session


@wrong(check.api_session, "a ClientResponseError without its status", problem="wrong-status")
def api_session_error_without_status(base_url):
    async def check_status(response):
        if not response.ok:
            raise aiohttp.ClientResponseError(response.request_info, response.history)

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "mine: a callback for the statuses the text names",
       problem="session-does-not-raise")
def api_session_named(base_url):
    async def check_status(response):
        if response.status in (404, 500):
            response.raise_for_status()

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "mine: a 429 let through for a retry layer",
       problem="session-does-not-raise")
def api_session_429(base_url):
    async def check_status(response):
        if response.status != 429:
            response.raise_for_status()

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "mine: a sync lambda as the callback", problem="sync-callback")
def api_session_lambda(base_url):
    return aiohttp.ClientSession(
        base_url=base_url, raise_for_status=lambda response: response.raise_for_status()
    )


@wrong(check.api_session, "mine: a callback raising ValueError", problem="wrong-exception")
def api_session_value_error(base_url):
    async def check_status(response):
        if not response.ok:
            raise ValueError(f"HTTP {response.status}")

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "mine: status > 400, so a 400 passes", problem="session-does-not-raise")
def api_session_gt_400(base_url):
    async def check_status(response):
        if response.status > 400:
            response.raise_for_status()

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


@wrong(check.api_session, "mine: raises for a 3xx too", problem="raises-for-success")
def api_session_ge_300(base_url):
    async def check_status(response):
        if response.status >= 300:
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status,
                message=response.reason or "",
            )

    return aiohttp.ClientSession(base_url=base_url, raise_for_status=check_status)


# --- the stubs: "not implemented yet", whatever the check catches on the way ----------------


@wrong(check.safe_fetch, "the stub", problem="not-implemented")
async def safe_fetch_stub(session, url):
    raise NotImplementedError("your code here")


@wrong(check.fetch_json, "the stub", problem="not-implemented")
async def fetch_json_stub(session, url):
    raise NotImplementedError("your code here")


@wrong(check.api_session, "the stub", problem="not-implemented")
def api_session_stub(base_url):
    raise NotImplementedError("your code here")


# --- every answer, and the messages that matter -------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_safe_fetch_names_the_seed_clause():
    verdict = check.safe_fetch.diagnose(seed_client_timeout_clause)
    assert "except aiohttp.ClientTimeout" in verdict.message


def test_safe_fetch_names_the_skipped_label_check():
    verdict = check.safe_fetch.diagnose(safe_fetch_loads)
    assert "labelled text/html" in verdict.message
    assert "content_type=None" in verdict.hint


def test_fetch_json_names_the_swapped_arguments():
    verdict = check.fetch_json.diagnose(fetch_json_swapped)
    assert "(status, body)" in verdict.message
    assert "raise ApiError(await response.text(), response.status)" in verdict.message


def test_fetch_json_says_the_body_was_read_after_the_block():
    verdict = check.fetch_json.diagnose(fetch_json_body_after_block)
    assert "after the `async with` block" in verdict.message


def test_api_session_names_the_sync_callback():
    verdict = check.api_session.diagnose(api_session_lambda)
    assert "`<lambda>`" in verdict.message
    assert "async def" in verdict.hint


def test_api_session_lists_the_statuses_that_did_not_raise():
    verdict = check.api_session.diagnose(api_session_429)
    assert "a 429" in verdict.message
    assert "other error statuses did raise" in verdict.message


def test_verdicts_repeat():
    first = check.safe_fetch.diagnose(safe_fetch_socket_timeout_only)
    assert first == check.safe_fetch.diagnose(safe_fetch_socket_timeout_only)

