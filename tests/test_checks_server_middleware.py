"""Exercise 12's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import sys
import time
import traceback
import uuid
import warnings

import pytest
from aiohttp import web

from local_server.checks import server_middleware as check

errors_log = logging.getLogger("test12.errors")
access_log = logging.getLogger("test12.access")
START = web.RequestKey("start", float)
GENERIC = {"error": "Internal Server Error"}


def crash_response(request: web.Request, error_id: str) -> web.Response:
    errors_log.exception("error %s on %s %s", error_id, request.method, request.path)
    return web.json_response({**GENERIC, "error_id": error_id}, status=500)


# --- Task 1: error_middleware ----------------------------------------------------------------


@web.middleware
async def reraising(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def converting(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k != "Content-Type"}
        return web.json_response(
            {"error": exc.reason, "detail": exc.text}, status=exc.status, headers=headers
        )
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


_counter = itertools.count(1)


@web.middleware
async def counter_id_with_extra(request, handler):
    """An integer id, logged as an extra attribute and in the message."""
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = next(_counter)
        errors_log.error(
            "unhandled %s: error id %s",
            type(exc).__name__,
            error_id,
            exc_info=True,
            extra={"error_id": error_id},
        )
        return web.json_response({"error": "oops", "error_id": error_id}, status=500)
    return response


@web.middleware
async def traceback_in_message(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = secrets.token_hex(8)
        errors_log.error("error %s\n%s", error_id, traceback.format_exc())
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@pytest.mark.parametrize(
    "answer", [reraising, converting, counter_id_with_extra, traceback_in_message]
)
def test_error_middleware_accepts_correct_alternatives(answer):
    verdict = check.error_middleware.diagnose(answer)
    assert verdict.passed, verdict.render()


def test_error_middleware_passes_when_a_notebook_configured_logging(capsys):
    """A stdout handler on the learner's logger must neither break the check nor print."""
    handler = logging.StreamHandler()
    errors_log.addHandler(handler)
    try:
        verdict = check.error_middleware.diagnose(reraising)
    finally:
        errors_log.removeHandler(handler)
    assert verdict.passed, verdict.render()
    captured = capsys.readouterr()
    assert "LedgerOutOfSync" not in captured.out + captured.err


@web.middleware
async def seed(request, handler):
    try:
        response = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception as e:
        return web.json_response({"error": str(e)}, status=500)


@web.middleware
async def catch_all(request, handler):
    try:
        return await handler(request)
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def reraise_http_error_only(request, handler):
    try:
        return await handler(request)
    except web.HTTPError:
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def converting_without_headers(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def converting_everything(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def type_in_body(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": type(exc).__name__, "error_id": error_id}, status=500)


@web.middleware
async def traceback_in_body(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response(
            {**GENERIC, "error_id": error_id, "trace": traceback.format_exc().splitlines()[0]},
            status=500,
        )


@web.middleware
async def plain_text_500(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.Response(text=f"Internal Server Error ({error_id})", status=500)


@web.middleware
async def no_log(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return web.json_response({**GENERIC, "error_id": uuid.uuid4().hex}, status=500)


@web.middleware
async def logs_without_traceback(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.error("error %s on %s", error_id, request.path)
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@web.middleware
async def prints_traceback(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        print(error_id, traceback.format_exc())
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@web.middleware
async def no_error_id(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("unhandled error")
        return web.json_response(GENERIC, status=500)


@web.middleware
async def constant_error_id(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return crash_response(request, "E500")


@web.middleware
async def id_not_in_log(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("unhandled error on %s", request.path)
        return web.json_response({**GENERIC, "error_id": uuid.uuid4().hex}, status=500)


@web.middleware
async def catches_nothing(request, handler):
    return await handler(request)


@web.middleware
async def crash_as_400(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({**GENERIC, "error_id": error_id}, status=400)


@web.middleware
async def forgets_return(request, handler):
    try:
        await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


async def undecorated(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (seed, "leaks-details"),
        (catch_all, "http-error-to-500"),
        (reraise_http_error_only, "redirect-broken"),
        (converting_without_headers, "lost-headers"),
        (converting_everything, "redirect-broken"),
        (type_in_body, "leaks-details"),
        (traceback_in_body, "leaks-details"),
        (plain_text_500, "not-json-500"),
        (no_log, "not-logged"),
        (logs_without_traceback, "not-logged"),
        (prints_traceback, "printed-not-logged"),
        (no_error_id, "no-error-id"),
        (constant_error_id, "same-error-id"),
        (id_not_in_log, "id-not-logged"),
        (catches_nothing, "exception-escaped"),
        (crash_as_400, "crash-status"),
        (forgets_return, "breaks-success"),
        (undecorated, "not-decorated"),
    ],
)
def test_error_middleware_diagnoses_each_mistake(answer, problem):
    verdict = check.error_middleware.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


@pytest.mark.parametrize("task", [check.error_middleware, check.timing_middleware])
def test_a_stub_middleware_is_not_implemented(task):
    @web.middleware
    async def stub(request, handler):
        raise NotImplementedError("your code here")

    verdict = task.diagnose(stub)
    assert verdict.problem == "not-implemented", verdict.render()


def test_a_stub_create_app_is_not_implemented():
    def stub():
        raise NotImplementedError("your code here")

    verdict = check.create_app.diagnose(stub)
    assert verdict.problem == "not-implemented", verdict.render()


# --- Task 2: timing_middleware ---------------------------------------------------------------


@web.middleware
async def timing_finally(request, handler):
    request[START] = time.perf_counter()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
        if response is not None and not response.prepared:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        status = response.status if response is not None else "unhandled"
        access_log.info("%s %s %s %.1f ms", request.method, request.path, status, ms)


@web.middleware
async def timing_x_response_time(request, handler):
    """A local variable instead of request state, X-Response-Time, and a dict-style log."""
    started = time.monotonic()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        elapsed = (time.monotonic() - started) * 1000
        exc.headers["X-Response-Time"] = f"{elapsed:.2f}ms"
        access_log.warning(
            "method=%s path=%s status=%d duration_ms=%.2f",
            request.method,
            request.path,
            exc.status,
            elapsed,
        )
        raise
    elapsed = (time.monotonic() - started) * 1000
    response.headers["X-Response-Time"] = f"{elapsed:.2f}ms"
    access_log.info(
        "method=%s path=%s status=%d duration_ms=%.2f",
        request.method,
        request.path,
        response.status,
        elapsed,
    )
    return response


@web.middleware
async def timing_seconds_with_unit(request, handler):
    """X-Response-Time in seconds with an explicit unit, logged in seconds: also correct."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        seconds = time.perf_counter() - started
        exc.headers["X-Response-Time"] = f"{seconds:.4f}s"
        access_log.info("%s %s -> %s in %.4fs", request.method, request.path, exc.status, seconds)
        raise
    seconds = time.perf_counter() - started
    response.headers["X-Response-Time"] = f"{seconds:.4f}s"
    access_log.info("%s %s -> %s in %.4fs", request.method, request.path, response.status, seconds)
    return response


@pytest.mark.parametrize(
    "answer", [timing_finally, timing_x_response_time, timing_seconds_with_unit]
)
def test_timing_middleware_accepts_correct_alternatives(answer):
    verdict = check.timing_middleware.diagnose(answer)
    assert verdict.passed, verdict.render()


@web.middleware
async def seed_logging(request, handler):
    print(f"{request.method} {request.path}")
    response = await handler(request)
    print(f"Response: {response.status}")
    return response


@web.middleware
async def success_only(request, handler):
    request[START] = time.perf_counter()
    response = await handler(request)
    ms = (time.perf_counter() - request[START]) * 1000
    response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
    access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)
    return response


def _timing_everywhere(header, log=True, key=START):
    @web.middleware
    async def middleware(request, handler):
        request[key] = time.perf_counter()
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as exc:
            response = exc
            raise
        finally:
            seconds = time.perf_counter() - request[key]
            if response is not None:
                response.headers["Server-Timing"] = header(seconds)
            if log:
                access_log.info(
                    "%s %s %s %.1f ms",
                    request.method,
                    request.path,
                    response.status if response is not None else "?",
                    seconds * 1000,
                )

    return middleware


not_a_number = _timing_everywhere(lambda s: "app;desc=fast")
seconds_not_ms = _timing_everywhere(lambda s: f"app;dur={s:.4f}")
timestamp = _timing_everywhere(lambda s: f"app;dur={time.perf_counter() * 1000:.1f}")
no_log_at_all = _timing_everywhere(lambda s: f"app;dur={s * 1000:.1f}", log=False)
string_key = _timing_everywhere(lambda s: f"app;dur={s * 1000:.1f}", key="start")


@web.middleware
async def measures_nothing(request, handler):
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        started = time.perf_counter()  # too late: the handler already ran
        ms = (time.perf_counter() - started) * 1000
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.3f}"
        access_log.info("%s %s %s %.3f ms", request.method, request.path, response.status, ms)


@web.middleware
async def log_without_status(request, handler):
    started = time.perf_counter()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s took %.1f ms", request.method, request.path, ms)


@web.middleware
async def log_without_duration(request, handler):
    started = time.perf_counter()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s", request.method, request.path, response.status)


@web.middleware
async def header_only_on_errors_no(request, handler):
    """Logs every request, but sets the header only on success."""
    started = time.perf_counter()
    status = "?"
    try:
        response = await handler(request)
        status = response.status
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000}"
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        access_log.info("%s %s %s %.1f ms", request.method, request.path, status, ms)


async def timing_undecorated(request, handler):
    return await handler(request)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (seed_logging, "no-header"),
        (success_only, "no-header-on-errors"),
        (header_only_on_errors_no, "no-header-on-errors"),
        (not_a_number, "not-a-number"),
        (seconds_not_ms, "seconds-not-ms"),
        (timestamp, "wrong-value"),
        (measures_nothing, "measures-nothing"),
        (no_log_at_all, "not-logged"),
        (log_without_status, "log-missing-status"),
        (log_without_duration, "log-missing-duration"),
        (string_key, "string-key"),
        (timing_undecorated, "not-decorated"),
    ],
)
def test_timing_middleware_diagnoses_each_mistake(answer, problem):
    verdict = check.timing_middleware.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_timing_middleware_diagnoses_unlogged_failures():
    """Header everywhere, but the log line written only after a successful handler."""

    @web.middleware
    async def logs_successes_only(request, handler):
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000}"
            raise
        ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)
        return response

    verdict = check.timing_middleware.diagnose(logs_successes_only)
    assert verdict.problem == "not-logged-on-error", verdict.render()


def test_timing_middleware_diagnoses_print_instead_of_logging():
    @web.middleware
    async def prints(request, handler):
        started = time.perf_counter()
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as exc:
            response = exc
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
            print(request.method, request.path, response.status, f"{ms:.1f} ms")

    verdict = check.timing_middleware.diagnose(prints)
    assert verdict.problem == "printed-not-logged", verdict.render()


def test_string_key_is_diagnosed_on_every_run():
    """aiohttp warns once per key per process: the check must not depend on being first."""
    for _ in range(2):
        verdict = check.timing_middleware.diagnose(string_key)
        assert verdict.problem == "string-key", verdict.render()


# --- Task 3: create_app ----------------------------------------------------------------------


def app_right_order():
    return web.Application(middlewares=[timing_finally, reraising])


def app_converting():
    return web.Application(middlewares=[timing_x_response_time, converting])


def app_with_extra_middleware():
    @web.middleware
    async def request_id(request, handler):
        response = await handler(request)
        response.headers["X-Request-Id"] = uuid.uuid4().hex
        return response

    return web.Application(middlewares=[timing_finally, reraising, request_id])


@pytest.mark.parametrize("answer", [app_right_order, app_converting, app_with_extra_middleware])
def test_create_app_accepts_correct_alternatives(answer):
    verdict = check.create_app.diagnose(answer)
    assert verdict.passed, verdict.render()


def app_wrong_order():
    return web.Application(middlewares=[reraising, timing_finally])


def app_without_error_middleware():
    return web.Application(middlewares=[timing_finally])


def app_without_timing():
    return web.Application(middlewares=[reraising])


def app_with_catch_all():
    return web.Application(middlewares=[timing_finally, catch_all])


def app_with_undecorated():
    return web.Application(middlewares=[timing_finally, undecorated])


def app_returns_list():
    return [timing_finally, reraising]


async def app_async():
    return app_right_order()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (app_wrong_order, "wrong-order"),
        (app_without_error_middleware, "missing-error-middleware"),
        (app_without_timing, "missing-timing-middleware"),
        (app_with_catch_all, "http-error-to-500"),
        (app_with_undecorated, "not-decorated"),
        (app_returns_list, "not-an-application"),
        (app_async, "not-an-application"),
    ],
)
def test_create_app_diagnoses_each_mistake(answer, problem):
    verdict = check.create_app.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- answers found in review: unusual but correct, and more mistakes ---------------------------


@web.middleware
async def raises_json_500(request, handler):
    """Raises the 500 as an HTTPException with a JSON body, logs with exc_info=exc."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.error("error %s", error_id, exc_info=exc)
        raise web.HTTPInternalServerError(
            text=json.dumps({**GENERIC, "error_id": error_id}), content_type="application/json"
        ) from None


@web.middleware
async def logs_on_root_logger(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = str(uuid.uuid4())
        logging.getLogger().exception("error %s", error_id)
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


def test_error_middleware_accepts_unusual_correct_answers():
    for answer in (raises_json_500, logs_on_root_logger):
        verdict = check.error_middleware.diagnose(answer)
        assert verdict.passed, verdict.render()


@web.middleware
async def http_error_to_200(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return web.json_response({"error": exc.reason})  # no status=exc.status
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def id_under_another_name(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({**GENERIC, "id": error_id}, status=500)


@web.middleware
async def logs_message_not_traceback(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.warning("error %s: %s", error_id, exc)
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@web.middleware
async def raises_text_500(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        raise web.HTTPInternalServerError(
            text=json.dumps({**GENERIC, "error_id": error_id})
        ) from None


@web.middleware
async def returns_http_exception(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc  # deprecated: aiohttp wants it raised
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (http_error_to_200, "http-error-status"),
        (id_under_another_name, "no-error-id"),
        (logs_message_not_traceback, "not-logged"),
        (raises_text_500, "not-json-500"),
        (returns_http_exception, "returns-http-exception"),
    ],
)
def test_error_middleware_diagnoses_more_mistakes(answer, problem):
    verdict = check.error_middleware.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


@web.middleware
async def timing_ns_and_dict_log(request, handler):
    """A local start in nanoseconds, a Server-Timing with desc, a dict as the log message."""
    started = time.monotonic_ns()
    status = None
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["Server-Timing"] = f"total;dur={(time.monotonic_ns() - started) / 1e6:.3f}"
        raise
    finally:
        ms = round((time.monotonic_ns() - started) / 1e6, 3)
        access_log.info(
            "%s", {"method": request.method, "path": request.path, "status": status, "ms": ms}
        )
    response.headers["Server-Timing"] = f'total;dur={ms};desc="App"'
    return response


def test_timing_middleware_accepts_an_unusual_correct_answer():
    verdict = check.timing_middleware.diagnose(timing_ns_and_dict_log)
    assert verdict.passed, verdict.render()


@web.middleware
async def float_header_value(request, handler):
    request[START] = time.perf_counter()
    response = await handler(request)
    response.headers["X-Response-Time"] = (time.perf_counter() - request[START]) * 1000
    return response


@web.middleware
async def logs_before_the_handler(request, handler):
    request[START] = time.perf_counter()
    access_log.info("%s %s", request.method, request.path)
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"


@web.middleware
async def returns_exception_after_finally(request, handler):
    request[START] = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
    response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
    access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)
    return response


microseconds = _timing_everywhere(lambda s: f"app;dur={s * 1e6:.0f}")


@web.middleware
async def string_key_after_handler(request, handler):
    """A typed start key, but the duration left on the request under a plain key."""
    request[START] = time.perf_counter()
    try:
        return await timing_finally(request, handler)
    finally:
        request["ms"] = (time.perf_counter() - request[START]) * 1000


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (float_header_value, "no-answer"),
        (logs_before_the_handler, "log-missing-status"),
        (returns_exception_after_finally, "returns-http-exception"),
        (microseconds, "microseconds-not-ms"),
        (string_key_after_handler, "string-key"),
    ],
)
def test_timing_middleware_diagnoses_more_mistakes(answer, problem):
    verdict = check.timing_middleware.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def app_extended_after_creation():
    app = web.Application()
    app.middlewares.extend([timing_finally, reraising])
    return app


def app_appended_in_wrong_order():
    app = web.Application(middlewares=[reraising])
    app.middlewares.append(timing_finally)
    return app


def app_returning_exceptions():
    return web.Application(middlewares=[timing_finally, returns_http_exception])


def test_create_app_accepts_middlewares_added_after_creation():
    verdict = check.create_app.diagnose(app_extended_after_creation)
    assert verdict.passed, verdict.render()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (app_appended_in_wrong_order, "wrong-order"),
        (app_returning_exceptions, "returns-http-exception"),
    ],
)
def test_create_app_diagnoses_more_mistakes(answer, problem):
    verdict = check.create_app.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


# --- the checks' patches are undone, whatever the learner's code did ----------------------------


@web.middleware
async def middleware_that_raises(request, handler):
    raise RuntimeError("the learner's middleware broke")


@web.middleware
async def middleware_that_hangs(request, handler):
    await asyncio.Event().wait()


def create_app_that_raises():
    raise RuntimeError("the learner's create_app broke")


@pytest.mark.parametrize(
    ("task", "answer", "problem", "timeout"),
    [
        (check.timing_middleware, timing_finally, None, 10),
        (check.error_middleware, middleware_that_raises, "breaks-success", 10),
        (check.timing_middleware, float_header_value, "no-answer", 10),
        (check.error_middleware, middleware_that_hangs, "timeout", 1),
        (check.create_app, create_app_that_raises, "raised", 10),
    ],
)
def test_checks_leave_logging_stdout_and_warnings_as_they_found_them(
    task, answer, problem, timeout
):
    root = logging.getLogger()
    level, handle, stdout = root.level, logging.Logger.handle, sys.stdout
    filters, showwarning = list(warnings.filters), warnings.showwarning

    verdict = task.diagnose(answer, timeout=timeout)

    assert verdict.problem == problem, verdict.render()
    assert logging.Logger.handle is handle
    assert root.level == level
    assert sys.stdout is stdout
    assert warnings.filters == filters and warnings.showwarning is showwarning
    # And logging works again: a record reaches the handlers it is meant for.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    errors_log.addHandler(handler)
    try:
        errors_log.error("after the check")
    finally:
        errors_log.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["after the check"]


def test_a_slow_loop_does_not_fail_a_correct_answer():
    """Under load every request is slower: the timing thresholds only have a lower bound."""

    @web.middleware
    async def slow_but_correct(request, handler):
        await asyncio.sleep(0.05)
        return await timing_finally(request, handler)

    verdict = check.timing_middleware.diagnose(slow_but_correct)
    assert verdict.passed, verdict.render()
