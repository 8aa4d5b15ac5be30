"""Learner answers to exercise 12 (server middleware), right and wrong, from the task text."""

from __future__ import annotations

import logging
import secrets
import time
import traceback
import uuid

from aiohttp import web

from adversarial import correct, wrong
from local_server.checks import server_middleware as check

errors_log = logging.getLogger("exercise12.errors")
access_log = logging.getLogger("exercise12.access")
START = web.RequestKey("start", float)

GENERIC = "Internal Server Error"


# --- Task 1 · error_middleware ---------------------------------------------------------------


@correct(check.error_middleware, "the lesson's re-raising middleware, uuid4 hex id")
@web.middleware
async def error_middleware_reraise(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s on %s %s", error_id, request.method, request.path)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@correct(check.error_middleware, "converts 4xx to JSON keeping status and headers; 3xx re-raised")
@web.middleware
async def error_middleware_json_api(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        error_id = str(uuid.uuid4())
        errors_log.exception(f"unhandled error, id={error_id}")
        return web.json_response({"error": "something went wrong", "error_id": error_id},
                                 status=500)


def make_error_middleware(logger: logging.Logger, name: str = "error_middleware_factory"):
    @web.middleware
    async def middleware(request, handler):
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            error_id = secrets.token_hex(8)
            logger.error("request failed [%s]", error_id, exc_info=True)
            return web.json_response({"error": "internal error", "error_id": error_id},
                                     status=500)
        return response

    middleware.__name__ = middleware.__qualname__ = name
    return middleware


error_middleware_factory = correct(
    check.error_middleware, "a factory returning the middleware; logger.error(exc_info=True)"
)(make_error_middleware(errors_log))


@correct(check.error_middleware, "logs with request.app.logger, aiohttp's application logger")
@web.middleware
async def error_middleware_app_logger(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        request.app.logger.exception("error %s while handling %s", error_id, request.path)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@correct(check.error_middleware, "HTTPError → JSON with the exception's headers, else re-raise; "
         "the exception object passed to exc_info")
@web.middleware
async def error_middleware_httperror_branch(request, handler):
    try:
        return await handler(request)
    except web.HTTPError as exc:
        headers = dict(exc.headers)
        headers.pop("Content-Type", None)
        return web.json_response({"error": exc.text}, status=exc.status, headers=headers)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.error("error_id=%s", error_id, exc_info=exc)
        return web.json_response({"error": "server error", "error_id": error_id}, status=500)


@wrong(check.error_middleware, "catches every exception: a 404, 400 or 405 becomes a 500",
       rule="lets every `web.HTTPException` keep its status",
       problem="http-error-to-500")
@web.middleware
async def error_middleware_catches_everything(request, handler):
    try:
        return await handler(request)
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "re-raises only web.HTTPError: a redirect becomes a 500",
       rule="and a redirect too (`HTTPFound` is an `HTTPException` with status 302)",
       problem="redirect-broken")
@web.middleware
async def error_middleware_reraises_httperror_only(request, handler):
    try:
        return await handler(request)
    except web.HTTPError:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "puts str(exc) in the 500's body",
       rule="a generic message that says nothing about the exception (no message, ...)",
       problem="leaks-details")
@web.middleware
async def error_middleware_leaks_message(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": str(exc), "error_id": error_id}, status=500)


@wrong(check.error_middleware, "names the exception's type in the body",
       rule="a generic message that says nothing about the exception (... no type ...)",
       problem="leaks-details")
@web.middleware
async def error_middleware_leaks_type(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response(
            {"error": f"{type(exc).__name__} occurred", "error_id": error_id}, status=500
        )


@wrong(check.error_middleware, "sends the traceback in an X-Debug header",
       rule="says nothing about the exception (no message, no type, no traceback)",
       problem="leaks-details")
@web.middleware
async def error_middleware_traceback_header(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        last = traceback.format_exc().strip().splitlines()[-1]
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500,
                                 headers={"X-Debug": last})


@wrong(check.error_middleware, "answers the JSON 500 but logs nothing",
       rule="logs the traceback on the server with that id: `errors_log.exception(...)`",
       problem="traceback-not-logged")
@web.middleware
async def error_middleware_logs_nothing(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return web.json_response({"error": GENERIC, "error_id": uuid.uuid4().hex}, status=500)


@wrong(check.error_middleware, "logs with errors_log.error(...): the traceback is not attached",
       rule="logs the traceback on the server with that id: `errors_log.exception(...)`",
       problem="traceback-not-logged")
@web.middleware
async def error_middleware_logs_without_traceback(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.error("error %s on %s", error_id, request.path)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "logs the traceback, but without the error id in the message",
       rule="with the id in the message",
       problem="id-not-logged")
@web.middleware
async def error_middleware_log_without_id(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": GENERIC, "error_id": uuid.uuid4().hex}, status=500)


@wrong(check.error_middleware, "logs one uuid and sends another: the two ids differ",
       rule="logs the traceback on the server with that id",
       problem="id-not-logged")
@web.middleware
async def error_middleware_two_different_ids(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("error %s", uuid.uuid4().hex)
        return web.json_response({"error": GENERIC, "error_id": uuid.uuid4().hex}, status=500)


_ERROR_ID = uuid.uuid4().hex


@wrong(check.error_middleware, "the error id is made once, at import: every error has the same",
       rule="an `error_id` that is new for each error",
       problem="same-error-id")
@web.middleware
async def error_middleware_constant_id(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("error %s", _ERROR_ID)
        return web.json_response({"error": GENERIC, "error_id": _ERROR_ID}, status=500)


@wrong(check.error_middleware, "returns the HTTPException instead of re-raising it",
       rule="Re-raise it with `raise` ... (returning the exception object instead is deprecated",
       problem="returns-http-exception")
@web.middleware
async def error_middleware_returns_http_exception(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "converts HTTP errors to JSON and drops their headers: no Allow",
       rule="return a JSON response with the exception's status **and its headers**",
       problem="lost-headers")
@web.middleware
async def error_middleware_converts_without_headers(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "converts with headers=exc.headers, Content-Type included: "
       "json_response raises ValueError for every HTTP error",
       rule="return a JSON response with the exception's status **and its headers**",
       problem="middleware-crashed")
@web.middleware
async def error_middleware_copies_content_type(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status, headers=exc.headers)
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "converts every HTTPException to JSON, redirects too: the 302 "
       "gets a JSON error body", rule="leave statuses below 400 as they are",
       problem="redirect-converted")
@web.middleware
async def error_middleware_converts_redirects(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k != "Content-Type"}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


@wrong(check.error_middleware, "raises web.HTTPInternalServerError(): a text/plain 500, no id",
       rule='turns any other exception into `web.json_response({"error": ..., "error_id": ...}, '
       'status=500)`',
       problem="not-json-500")
@web.middleware
async def error_middleware_plain_500(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        errors_log.exception("error")
        raise web.HTTPInternalServerError() from None


@wrong(check.error_middleware, "forgets `return`: the handler's response is dropped",
       rule="returns the handler's response unchanged when it succeeds",
       problem="breaks-success")
@web.middleware
async def error_middleware_forgets_return(request, handler):
    try:
        await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC, "error_id": error_id}, status=500)


# --- Task 2 · timing_middleware --------------------------------------------------------------


@correct(check.timing_middleware, "the lesson's finally block, Server-Timing")
@web.middleware
async def timing_middleware_finally(request, handler):
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
        status = response.status if response is not None else "-"
        access_log.info("%s %s %s %.1f ms", request.method, request.path, status, ms)


def _stamp(response, ms: float) -> None:
    response.headers["X-Response-Time"] = f"{ms:.2f}ms"


@correct(check.timing_middleware, "X-Response-Time, a helper, the log in each branch, no finally")
@web.middleware
async def timing_middleware_x_response_time(request, handler):
    request[START] = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        ms = (time.perf_counter() - request[START]) * 1000
        _stamp(exc, ms)
        access_log.info(f"{request.method} {request.path} {exc.status} {ms:.2f}ms")
        raise
    except BaseException:
        ms = (time.perf_counter() - request[START]) * 1000
        access_log.info(f"{request.method} {request.path} 500 {ms:.2f}ms")
        raise
    ms = (time.perf_counter() - request[START]) * 1000
    _stamp(response, ms)
    access_log.info(f"{request.method} {request.path} {response.status} {ms:.2f}ms")
    return response


def make_timing_middleware(logger: logging.Logger, header: str = "Server-Timing",
                           name: str = "timing_middleware_factory"):
    @web.middleware
    async def timing(request, handler):
        request[START] = time.perf_counter()
        status: int | str = "error"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[header] = f"app;dur={(time.perf_counter() - request[START]) * 1e3:.3f}"
            raise
        else:
            status = response.status
            response.headers[header] = (
                f"app;dur={(time.perf_counter() - request[START]) * 1e3:.3f}"
            )
            return response
        finally:
            elapsed = (time.perf_counter() - request[START]) * 1e3
            logger.info("method=%s path=%s status=%s dur_ms=%.3f",
                        request.method, request.path, status, elapsed)

    timing.__name__ = timing.__qualname__ = name
    return timing


timing_middleware_factory = correct(
    check.timing_middleware, "a factory returning the middleware, try/except/else/finally"
)(make_timing_middleware(access_log))


@correct(check.timing_middleware, "duration from perf_counter_ns, stored start as a float")
@web.middleware
async def timing_middleware_ns(request, handler):
    started_ns = time.perf_counter_ns()
    request[START] = started_ns / 1e9
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter_ns() - started_ns) / 1e6
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s -> %s in %.1f ms", request.method, request.path,
                        getattr(response, "status", 500), ms)
    return response


@wrong(check.timing_middleware, "sets the header only on successes: a raised 404/405 has none",
       rule="adds a timing header ... to every response it can ... the errors included",
       problem="no-header-on-errors")
@web.middleware
async def timing_middleware_header_on_success_only(request, handler):
    request[START] = time.perf_counter()
    status = "-"
    try:
        response = await handler(request)
        status = response.status
        ms = (time.perf_counter() - request[START]) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
        access_log.info("%s %s %s %.1f ms", request.method, request.path, status, ms)


@wrong(check.timing_middleware, "logs after `await handler` with no finally: failures not logged",
       rule="for failed requests too (a `finally:` block runs in every case)",
       problem="not-logged-on-error")
@web.middleware
async def timing_middleware_logs_success_only(request, handler):
    request[START] = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        ms = (time.perf_counter() - request[START]) * 1000
        exc.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        raise
    ms = (time.perf_counter() - request[START]) * 1000
    response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
    access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)
    return response


def _timed_with(name: str, clock, key, scale: float = 1000.0, header_unit: str = ""):
    @web.middleware
    async def middleware(request, handler):
        request[key] = clock()
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as exc:
            response = exc
            raise
        finally:
            duration = (clock() - request[key]) * scale
            if response is not None and not response.prepared:
                response.headers["Server-Timing"] = f"app;dur={duration:.3f}{header_unit}"
            status = response.status if response is not None else "-"
            access_log.info("%s %s %s %.3f", request.method, request.path, status, duration)

    middleware.__name__ = middleware.__qualname__ = name
    return middleware


timing_middleware_seconds = wrong(
    check.timing_middleware, "reports seconds, not milliseconds: dur=0.031 for 31 ms",
    rule="adds a timing header in **milliseconds**", problem="seconds-not-ms",
)(_timed_with("timing_middleware_seconds", time.perf_counter, START, scale=1.0))

timing_middleware_wall_clock = wrong(
    check.timing_middleware, "times with time.time(), the adjustable wall clock",
    rule="`request[START] = time.perf_counter()`", problem="wall-clock",
)(_timed_with("timing_middleware_wall_clock", time.time, START))

timing_middleware_string_key = wrong(
    check.timing_middleware, "stores the start under the string key request['start']",
    rule="stores the start time on the request with the typed key `START` ... not with a "
    "string key", problem="string-key",
)(_timed_with("timing_middleware_string_key", time.perf_counter, "start"))


@wrong(check.timing_middleware, "operator precedence: perf_counter() - start * 1000",
       rule="adds a timing header in **milliseconds**",
       problem="wrong-value")
@web.middleware
async def timing_middleware_precedence_bug(request, handler):
    request[START] = time.perf_counter()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = time.perf_counter() - request[START] * 1000
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        status = getattr(response, "status", "-")
        access_log.info("%s %s %s %.1f ms", request.method, request.path, status, ms)


@wrong(check.timing_middleware, "logs method, path and duration, but not the status",
       rule="logs one line per request ... holding the method, the path, the status and the "
       "duration",
       problem="log-missing-status")
@web.middleware
async def timing_middleware_log_without_status(request, handler):
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
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s took %.1f ms", request.method, request.path, ms)


@wrong(check.timing_middleware, "logs a line on the way in and one on the way out",
       rule="logs one line per request",
       problem="logged-twice")
@web.middleware
async def timing_middleware_two_lines(request, handler):
    request[START] = time.perf_counter()
    access_log.info("-> %s %s", request.method, request.path)
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        status = getattr(response, "status", "-")
        access_log.info("<- %s %s %s %.1f ms", request.method, request.path, status, ms)


@wrong(check.timing_middleware, "prints the access line instead of logging it with access_log",
       rule="logs one line per request with `access_log`",
       problem="printed-not-logged")
@web.middleware
async def timing_middleware_prints(request, handler):
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
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        print(request.method, request.path, getattr(response, "status", "-"), f"{ms:.1f} ms")


@wrong(check.timing_middleware, "returns the HTTPException instead of re-raising it",
       rule="set the header on it and re-raise it",
       problem="returns-http-exception")
@web.middleware
async def timing_middleware_returns_exception(request, handler):
    request[START] = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    ms = (time.perf_counter() - request[START]) * 1000
    response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
    access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)
    return response


@wrong(check.timing_middleware, "takes the start time after the handler returned: ~0 ms",
       rule="stores the start time on the request ... (`request[START] = time.perf_counter()`)",
       problem="measures-nothing")
@web.middleware
async def timing_middleware_starts_late(request, handler):
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        request[START] = time.perf_counter()
        ms = (time.perf_counter() - request[START]) * 1000
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f ms", request.method, request.path,
                        getattr(response, "status", "-"), ms)


# --- Task 3 · create_app ---------------------------------------------------------------------


@correct(check.create_app, "[timing, error] in the constructor")
def create_app_timing_outside():
    return web.Application(middlewares=[timing_middleware_finally, error_middleware_reraise])


@correct(check.create_app, "a tuple, the factory-made middlewares, JSON-converting errors")
def create_app_tuple_of_factories():
    return web.Application(
        middlewares=(make_timing_middleware(access_log, name="timing"), error_middleware_json_api)
    )


@correct(check.create_app, "appended to app.middlewares after construction")
def create_app_appended():
    app = web.Application()
    app.middlewares.append(timing_middleware_x_response_time)
    app.middlewares.append(make_error_middleware(errors_log, name="errors"))
    return app


@wrong(check.create_app, "the error middleware outside timing: a crash's 500 is not timed",
       rule="Choose the order so that the 500 the error middleware makes of a crash is still "
       "timed and logged with its status",
       problem="wrong-order")
def create_app_reversed():
    return web.Application(middlewares=[error_middleware_reraise, timing_middleware_finally])


@wrong(check.create_app, "installs only the error middleware",
       rule="returns a `web.Application` with your two middlewares installed",
       problem="missing-timing-middleware")
def create_app_error_only():
    return web.Application(middlewares=[error_middleware_reraise])


@wrong(check.create_app, "installs only the timing middleware",
       rule="returns a `web.Application` with your two middlewares installed",
       problem="missing-error-middleware")
def create_app_timing_only():
    return web.Application(middlewares=[timing_middleware_finally])


async def _undecorated_timing(request, handler):
    request[START] = time.perf_counter()
    response = await handler(request)
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - request[START]) * 1e3}"
    return response


@wrong(check.create_app, "a timing middleware without @web.middleware: taken for a factory",
       rule="The `@web.middleware` line ... keep it",
       problem="not-decorated")
def create_app_undecorated():
    return web.Application(middlewares=[_undecorated_timing, error_middleware_reraise])


@wrong(check.create_app, "right order, but the timing middleware skips raised HTTP errors",
       rule="timed and logged with its status (task 2: the errors included)",
       problem="not-logged-on-error")
def create_app_timing_skips_errors():
    return web.Application(
        middlewares=[timing_middleware_logs_success_only, error_middleware_reraise]
    )


@wrong(check.create_app, "right order, but the error middleware turns a 404 into a 500",
       rule="your two middlewares (task 1: every HTTPException keeps its status)",
       problem="http-error-to-500")
def create_app_error_catches_all():
    return web.Application(
        middlewares=[timing_middleware_finally, error_middleware_catches_everything]
    )


@wrong(check.create_app, "timing listed twice, before and after the error middleware",
       rule="the 500 ... is still timed and logged with its status (one line per request)",
       problem="logged-twice")
def create_app_timing_twice():
    return web.Application(
        middlewares=[timing_middleware_finally, error_middleware_reraise,
                     timing_middleware_finally]
    )


# --- more probes -----------------------------------------------------------------------------


@wrong(check.error_middleware, "puts the formatted traceback in the 500's body, as 'detail'",
       rule="says nothing about the exception (no message, no type, no traceback)",
       problem="leaks-details")
@web.middleware
async def error_middleware_traceback_in_body(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response(
            {"error": GENERIC, "error_id": error_id, "detail": traceback.format_exc()}, status=500
        )


@wrong(check.error_middleware, "sends the error id in an X-Error-Id header, not in the JSON body",
       rule='`web.json_response({"error": ..., "error_id": ...}, status=500)`',
       problem="no-error-id")
@web.middleware
async def error_middleware_id_in_header(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({"error": GENERIC}, status=500,
                                 headers={"X-Error-Id": error_id})


@correct(check.timing_middleware, "logs request.rel_url (path and query), Server-Timing with a "
         "description")
@web.middleware
async def timing_middleware_rel_url(request, handler):
    request[START] = time.perf_counter()
    status = None
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["Server-Timing"] = (
            f'app;dur={(time.perf_counter() - request[START]) * 1000:.2f};desc="handler"'
        )
        raise
    finally:
        ms = (time.perf_counter() - request[START]) * 1000
        access_log.info("%s %s %s %.2fms", request.method, request.rel_url, status or 500, ms)
    response.headers["Server-Timing"] = f'app;dur={ms:.2f};desc="handler"'
    return response


@wrong(check.timing_middleware, "logs at DEBUG: an INFO-level logger drops every line",
       rule="logs one line per request with `access_log` (lesson: a server logs at INFO)",
       problem="logged-at-debug")
@web.middleware
async def timing_middleware_debug_level(request, handler):
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
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.debug("%s %s %s %.1f ms", request.method, request.path,
                         getattr(response, "status", "-"), ms)
