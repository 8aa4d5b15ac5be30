"""Learner answers to exercise 06 (error handling), right and wrong, written from the task text."""

from __future__ import annotations

import json

import aiohttp

from adversarial import correct, wrong
from local_server.checks import error_handling as check
from local_server.checks.error_handling import ApiError, FetchResult, Outcome

# --- Task 1 · safe_fetch -------------------------------------------------------------------


@correct(check.safe_fetch, "the lesson's clause order, status kept whenever a response arrived")
async def safe_fetch_ordered_clauses(session, url):
    status = None
    try:
        async with session.get(url) as response:
            status = response.status
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=status)
    except aiohttp.ContentTypeError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, status=status, detail=str(error))
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status, detail=error.message)
    except TimeoutError as error:
        return FetchResult(Outcome.TIMEOUT, status=status, detail=type(error).__name__)
    except aiohttp.ClientConnectionError as error:
        return FetchResult(Outcome.CONNECTION_ERROR, status=status, detail=str(error))
    except aiohttp.ClientPayloadError as error:
        return FetchResult(Outcome.INVALID_RESPONSE, status=status, detail=str(error))


@correct(check.safe_fetch, "checks response.ok by hand, isinstance() classification helper")
async def safe_fetch_isinstance_helper(session, url):
    try:
        async with session.get(url) as response:
            if not response.ok:
                return FetchResult(Outcome.HTTP_ERROR, status=response.status)
            try:
                data = await response.json()
            except aiohttp.ContentTypeError as error:
                return FetchResult(Outcome.INVALID_RESPONSE, status=response.status,
                                   detail=error.message)
            return FetchResult(Outcome.OK, data=data, status=response.status)
    except (TimeoutError, aiohttp.ClientError) as error:
        return FetchResult(_outcome_of(error), detail=repr(error))


def _outcome_of(error):
    if isinstance(error, TimeoutError):
        return Outcome.TIMEOUT
    if isinstance(error, aiohttp.ClientPayloadError):
        return Outcome.INVALID_RESPONSE
    return Outcome.CONNECTION_ERROR


@correct(check.safe_fetch, "a match statement over the error, re-raising what it does not know")
async def safe_fetch_match(session, url):
    try:
        async with session.get(url, raise_for_status=True) as response:
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except Exception as error:
        match error:
            case aiohttp.ContentTypeError():
                return FetchResult(Outcome.INVALID_RESPONSE, status=error.status)
            case aiohttp.ClientResponseError():
                return FetchResult(Outcome.HTTP_ERROR, status=error.status)
            case TimeoutError():
                return FetchResult(Outcome.TIMEOUT, detail="timed out")
            case aiohttp.ClientConnectionError() | aiohttp.ClientPayloadError():
                return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))
            case _:
                raise


@correct(check.safe_fetch, "only the fields the task bullets name (no status for OK)")
async def safe_fetch_minimal_fields(session, url):
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
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "seed bug: except aiohttp.ClientTimeout raises TypeError for a total "
       "timeout", rule="`Outcome.TIMEOUT` for any timeout ... It must not raise",
       problem="client-timeout-clause")
async def safe_fetch_except_client_timeout(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.ClientConnectionError:
        return FetchResult(Outcome.CONNECTION_ERROR)
    except aiohttp.ClientPayloadError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientTimeout:
        return FetchResult(Outcome.TIMEOUT)


@wrong(check.safe_fetch, "ClientConnectionError before TimeoutError: a sock_read timeout is "
       "reported as a connection error",
       rule="`Outcome.TIMEOUT` for any timeout, whichever `ClientTimeout` field fired",
       problem="timeout-as-connection-error")
async def safe_fetch_connection_before_timeout(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.ClientConnectionError:
        return FetchResult(Outcome.CONNECTION_ERROR)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except aiohttp.ClientPayloadError:
        return FetchResult(Outcome.INVALID_RESPONSE)


@wrong(check.safe_fetch, "ClientResponseError before ContentTypeError: JSON labelled text/html "
       "becomes an HTTP error 200",
       rule="`Outcome.INVALID_RESPONSE` when a 2xx arrived but its body is not JSON",
       problem="content-type-as-http-error")
async def safe_fetch_response_error_before_content_type(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "a final except Exception hides bugs as connection errors",
       rule="must not hide anything else: a bug in your code should still raise",
       problem="swallows-bugs")
async def safe_fetch_catch_all(session, url):
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
    except Exception as error:
        return FetchResult(Outcome.CONNECTION_ERROR, detail=str(error))


@wrong(check.safe_fetch, "catches timeouts through ClientError only: the total timeout escapes",
       rule="`Outcome.TIMEOUT` for any timeout, whichever `ClientTimeout` field fired",
       problem="timeout-not-caught")
async def safe_fetch_timeouts_via_client_error(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except aiohttp.ServerTimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "no clause for ClientPayloadError: a body cut short raises",
       rule="It must not raise for any of those ... a body cut short",
       problem="not-caught")
async def safe_fetch_no_payload_clause(session, url):
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
    except aiohttp.ClientConnectionError:
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "never checks the status: a 4xx/5xx is judged by its body",
       rule="`Outcome.HTTP_ERROR` with `status=` the status, for a 4xx or 5xx",
       problem="http-error-as-success")
async def safe_fetch_no_status_check(session, url):
    try:
        async with session.get(url) as response:
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "HTTP_ERROR without the status",
       rule="`Outcome.HTTP_ERROR` with `status=` the status",
       problem="no-status")
async def safe_fetch_http_error_without_status(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, detail=f"HTTP {error.status}")
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "lumps timeouts and connection errors together as TIMEOUT",
       rule="`Outcome.CONNECTION_ERROR` when no connection could be made, or it broke",
       problem="connection-error-misclassified")
async def safe_fetch_lumps_network_errors(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.json(), status=response.status)
    except aiohttp.ContentTypeError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.TIMEOUT)


@wrong(check.safe_fetch, "OK carries the body as text, not the parsed JSON",
       rule="`Outcome.OK` with `data=` the parsed JSON body",
       problem="no-data")
async def safe_fetch_data_as_text(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return FetchResult(Outcome.OK, data=await response.text(), status=response.status)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


@wrong(check.safe_fetch, "skips the Content-Type check: JSON labelled text/html counts as OK",
       rule="`Outcome.INVALID_RESPONSE` when a 2xx arrived but its body is not JSON",
       problem="content-type-not-checked")
async def safe_fetch_content_type_none(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            data = await response.json(content_type=None)
            return FetchResult(Outcome.OK, data=data, status=response.status)
    except ValueError:
        return FetchResult(Outcome.INVALID_RESPONSE)
    except aiohttp.ClientResponseError as error:
        return FetchResult(Outcome.HTTP_ERROR, status=error.status)
    except TimeoutError:
        return FetchResult(Outcome.TIMEOUT)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
        return FetchResult(Outcome.CONNECTION_ERROR)


# --- Task 2 · fetch_json -------------------------------------------------------------------


@correct(check.fetch_json, "status >= 400 test, body read once as text")
async def fetch_json_status_test(session, url):
    async with session.get(url) as response:
        if response.status >= 400:
            raise ApiError(response.status, await response.text())
        return await response.json()


@correct(check.fetch_json, "raise_for_status() inside the block, ApiError raised from it")
async def fetch_json_from_client_response_error(session, url):
    async with session.get(url) as response:
        try:
            response.raise_for_status()
        except aiohttp.ClientResponseError as error:
            raise ApiError(error.status, await response.text()) from error
        return await response.json()


@correct(check.fetch_json, "a per-request raise_for_status= callback that reads the body")
async def fetch_json_callback(session, url):
    async def raise_api_error(response):
        if not response.ok:
            raise ApiError(response.status, await response.text())

    async with session.get(url, raise_for_status=raise_api_error) as response:
        return await response.json()


@correct(check.fetch_json, "text first, then json.loads for a 2xx")
async def fetch_json_text_first(session, url):
    async with session.get(url) as response:
        body = await response.text()
        status = response.status
    if not 200 <= status < 300:
        raise ApiError(status, body)
    return json.loads(body)


@wrong(check.fetch_json, "raises ApiError with the reason phrase, not the body",
       rule="raises `ApiError(status, body)` with the body as text",
       problem="body-lost")
async def fetch_json_reason_as_body(session, url):
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()
    except aiohttp.ClientResponseError as error:
        raise ApiError(error.status, error.message) from error


@wrong(check.fetch_json, "reads the error body after the block has released the response",
       rule="raises `ApiError(status, body)` with the body as text",
       problem="body-read-after-block")
async def fetch_json_body_after_block(session, url):
    async with session.get(url) as response:
        if response.ok:
            return await response.json()
    raise ApiError(response.status, await response.text())


@wrong(check.fetch_json, "puts str() of the parsed JSON in the error, not the body text",
       rule="with the body as text",
       problem="body-not-text")
async def fetch_json_str_of_dict(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, str(await response.json()))
        return await response.json()


@wrong(check.fetch_json, "treats only 5xx as an error: a 422 is returned as data",
       rule="for a 4xx or 5xx raises `ApiError(status, body)`",
       problem="http-error-as-success")
async def fetch_json_only_5xx(session, url):
    async with session.get(url) as response:
        if response.status >= 500:
            raise ApiError(response.status, await response.text())
        return await response.json()


@wrong(check.fetch_json, "raises ClientResponseError from raise_for_status(), no ApiError",
       rule="raises `ApiError(status, body)`",
       problem="body-lost")
async def fetch_json_plain_raise_for_status(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


@wrong(check.fetch_json, "ApiError arguments swapped (body, status)",
       rule="raises `ApiError(status, body)`",
       problem="api-error-arguments")
async def fetch_json_swapped_arguments(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(await response.text(), response.status)
        return await response.json()


@wrong(check.fetch_json, "body passed as bytes from read()", rule="with the body as text",
       problem="body-not-text")
async def fetch_json_body_bytes(session, url):
    async with session.get(url) as response:
        if not response.ok:
            raise ApiError(response.status, await response.read())
        return await response.json()


@wrong(check.fetch_json, "returns the ApiError instead of raising it",
       rule="for a 4xx or 5xx raises `ApiError(status, body)`",
       problem="http-error-as-success")
async def fetch_json_returns_error(session, url):
    async with session.get(url) as response:
        if not response.ok:
            return ApiError(response.status, await response.text())
        return await response.json()


@wrong(check.fetch_json, "returns the text of a 2xx, not the parsed JSON",
       rule="returns the parsed JSON of a 2xx",
       problem="no-data")
async def fetch_json_returns_text(session, url):
    async with session.get(url) as response:
        body = await response.text()
        if not response.ok:
            raise ApiError(response.status, body)
        return body


# --- Task 3 · api_session ------------------------------------------------------------------


@correct(check.api_session, "base_url and raise_for_status as keywords")
def api_session_keywords(base_url):
    return aiohttp.ClientSession(base_url=base_url, raise_for_status=True)


@correct(check.api_session, "an async raise_for_status callback that calls raise_for_status()")
def api_session_callback(base_url):
    async def check_status(response):
        response.raise_for_status()

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@correct(check.api_session, "a client middleware that raises for a bad status")
def api_session_middleware(base_url):
    async def raising(request, handler):
        response = await handler(request)
        response.raise_for_status()
        return response

    return aiohttp.ClientSession(base_url, middlewares=(raising,))


@correct(check.api_session, "a callback that builds ClientResponseError itself")
def api_session_manual_error(base_url):
    async def check_status(response):
        if response.status >= 400:
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status,
                message=response.reason or "", headers=response.headers,
            )

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@wrong(check.api_session, "forgets raise_for_status: a session like any other",
       rule="**every** 4xx or 5xx raises `ClientResponseError`",
       problem="session-does-not-raise")
def api_session_forgets_raise(base_url):
    return aiohttp.ClientSession(base_url)


@wrong(check.api_session, "callback raises only for 5xx",
       rule="**every** 4xx or 5xx raises",
       problem="session-does-not-raise")
def api_session_only_5xx(base_url):
    async def check_status(response):
        if response.status >= 500:
            response.raise_for_status()

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@wrong(check.api_session, "a plain (sync) callback: aiohttp awaits its None for a 2xx",
       rule="returns a new `aiohttp.ClientSession` ... in which every 4xx or 5xx raises",
       problem="sync-callback")
def api_session_sync_callback(base_url):
    def check_status(response):
        response.raise_for_status()

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@wrong(check.api_session, "ignores base_url", rule="a new `aiohttp.ClientSession` for `base_url`",
       problem="no-base-url")
def api_session_ignores_base_url(base_url):
    return aiohttp.ClientSession(raise_for_status=True)


@wrong(check.api_session, "returns a session already closed by its async with",
       rule="returns a new `aiohttp.ClientSession` (The check closes the session)",
       problem="session-closed")
async def api_session_closed(base_url):
    async with aiohttp.ClientSession(base_url, raise_for_status=True) as session:
        return session


@wrong(check.api_session, "callback raises ApiError instead of ClientResponseError",
       rule="raises `ClientResponseError`",
       problem="wrong-exception")
def api_session_raises_api_error(base_url):
    async def check_status(response):
        if not response.ok:
            raise ApiError(response.status, await response.text())

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@wrong(check.api_session, "callback raises for anything but 200, a 201 or 204 included",
       rule="every 4xx or 5xx raises",
       problem="raises-for-success")
def api_session_not_200(base_url):
    async def check_status(response):
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status,
                message=response.reason or "",
            )

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)


@wrong(check.api_session, "callback lets a 404 through as a normal 'not found'",
       rule="**every** 4xx or 5xx raises",
       problem="session-does-not-raise")
def api_session_lets_404_through(base_url):
    async def check_status(response):
        if response.status >= 400 and response.status != 404:
            response.raise_for_status()

    return aiohttp.ClientSession(base_url, raise_for_status=check_status)
