"""Exercise 12's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. Task 3's rules from tasks 1 and 2 get their wrong
answers from a wrong middleware of tasks 1 and 2 installed beside a correct one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import sys
import time
import traceback
import uuid
import warnings

import pytest
from adversarial import ANSWERS, answer_id, answers_in, correct, judge, wrong
from aiohttp import web

from local_server.checks import server_middleware as check

errors_log = logging.getLogger("test12.errors")
access_log = logging.getLogger("test12.access")
START = web.RequestKey("start", float)
GENERIC = {"error": "Internal Server Error"}


def named(fn, name):
    fn.__name__ = fn.__qualname__ = name
    return fn


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


not_a_number = named(_timing_everywhere(lambda s: "app;desc=fast"), "not_a_number")
seconds_not_ms = named(_timing_everywhere(lambda s: f"app;dur={s:.4f}"), "seconds_not_ms")
timestamp = named(
    _timing_everywhere(lambda s: f"app;dur={time.perf_counter() * 1000:.1f}"), "timestamp"
)
no_log_at_all = named(
    _timing_everywhere(lambda s: f"app;dur={s * 1000:.1f}", log=False), "no_log_at_all"
)
string_key = named(
    _timing_everywhere(lambda s: f"app;dur={s * 1000:.1f}", key="start"), "string_key"
)


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


microseconds = named(_timing_everywhere(lambda s: f"app;dur={s * 1e6:.0f}"), "microseconds")


@web.middleware
async def string_key_after_handler(request, handler):
    """A typed start key, but the duration left on the request under a plain key."""
    request[START] = time.perf_counter()
    try:
        return await timing_finally(request, handler)
    finally:
        request["ms"] = (time.perf_counter() - request[START]) * 1000


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
        (check.error_middleware, middleware_that_raises, "middleware-crashed", 10),
        (check.timing_middleware, float_header_value, "no-answer", 10),
        (check.error_middleware, middleware_that_hangs, "timeout", 1),
        (check.create_app, create_app_that_raises, "raised", 10),
    ],
)
def test_checks_leave_logging_stdout_and_warnings_as_they_found_them(
    task, answer, problem, timeout
):
    root = logging.getLogger()
    level, handle, stdout, stderr = root.level, logging.Logger.handle, sys.stdout, sys.stderr
    filters, showwarning = list(warnings.filters), warnings.showwarning

    verdict = task.diagnose(answer, timeout=timeout)

    assert verdict.problem == problem, verdict.render()
    assert logging.Logger.handle is handle
    assert root.level == level
    assert sys.stdout is stdout and sys.stderr is stderr
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


# --- answers the old tests checked inside a test function, now registered ---------------------


@web.middleware
async def logs_successes_only(request, handler):
    """Header everywhere, but the log line written only after a successful handler."""
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


@web.middleware
async def prints_access_line(request, handler):
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


@web.middleware
async def stub_middleware(request, handler):
    raise NotImplementedError("your code here")


def stub_create_app():
    raise NotImplementedError("your code here")


# --- Task 1: more correct answers of my own ----------------------------------------------------


@web.middleware
async def app_logger_adapter(request, handler):
    """request.app.logger (aiohttp's "aiohttp.web") through a LoggerAdapter, id as extra."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = secrets.token_urlsafe(12)
        log = logging.LoggerAdapter(request.app.logger, {"error_id": error_id})
        log.exception("unhandled error %s", error_id)
        return web.json_response({"error": "internal error", "error_id": error_id}, status=500)


def make_error_middleware(logger):
    @web.middleware
    async def errors_from_factory(request, handler):
        try:
            return await handler(request)
        except web.HTTPError as exc:
            response = web.json_response({"error": exc.reason}, status=exc.status)
            for key, value in exc.headers.items():
                if key.lower() not in ("content-type", "content-length"):
                    response.headers.add(key, value)
            return response
        except web.HTTPException:
            raise
        except Exception:
            error_id = uuid.uuid4().hex
            logger.error("error_id=%s", error_id, exc_info=sys.exc_info())
            return web.json_response({"error": "oops", "error_id": error_id}, status=500)

    return errors_from_factory


errors_from_factory = make_error_middleware(logging.getLogger("test12.factory"))


@web.middleware
async def module_level_logging_call(request, handler):
    """logging.exception(), the root logger's module-level function."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = f"E{uuid.uuid4().int % 10**12}"
        logging.exception("%s: %s failed", error_id, request.path, exc_info=exc)
        return web.json_response(
            {"error": "Internal Server Error", "error_id": error_id}, status=500
        )


# --- Task 1: more wrong answers of my own ------------------------------------------------------


@web.middleware
async def traceback_at_debug(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.debug("error %s", error_id, exc_info=True)
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@web.middleware
async def catches_runtime_errors_only(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except RuntimeError:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def message_in_a_header(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response(
            {**GENERIC, "error_id": error_id}, status=500, headers={"X-Error": str(exc)}
        )


@web.middleware
async def converts_with_all_headers(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason}, status=exc.status, headers=exc.headers)
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def reraises_two_classes(request, handler):
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPBadRequest, web.HTTPFound, web.HTTPRedirection):
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def typo_in_the_except_block(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        errors_log.exception("error %s", error_id)
        return web.json_response({**GENERIC, "error_id": eror_id}, status=500)  # noqa: F821


@web.middleware
async def converts_redirects_keeping_location(request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        headers = {k: v for k, v in exc.headers.items() if k != "Content-Type"}
        return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


@web.middleware
async def handler_not_awaited(request, handler):
    return handler(request)


@web.middleware
async def sleeps_in_the_middleware(request, handler):
    time.sleep(0.01)
    return await handler(request)


@web.middleware
async def print_exc_to_stderr(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex
        traceback.print_exc()
        return web.json_response({**GENERIC, "error_id": error_id}, status=500)


@web.middleware
async def int_header_on_the_500(request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = next(_counter)
        errors_log.exception("error %s", error_id)
        return web.json_response(
            {**GENERIC, "error_id": error_id}, status=500, headers={"X-Error-Id": error_id}
        )


@web.middleware
async def warns_about_client_errors(request, handler):
    """Logs each 4xx at WARNING (no traceback), re-raises it; a crash as usual."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            errors_log.warning("client error %s on %s %s", exc.status, request.method, request.path)
        raise
    except Exception:
        return crash_response(request, uuid.uuid4().hex)


for _fn, _why in [
    (reraising, "re-raises, a uuid4 id"),
    (converting, "converts errors >= 400 to JSON with their headers"),
    (counter_id_with_extra, "an integer id, logged as an extra attribute and in the message"),
    (traceback_in_message, "the traceback formatted into the message at ERROR"),
    (raises_json_500, "raises the 500 as an HTTPException with a JSON body"),
    (logs_on_root_logger, "logs on the root logger"),
    (app_logger_adapter, "request.app.logger through a LoggerAdapter"),
    (
        errors_from_factory,
        "a factory; HTTPError converted with headers.add, exc_info=sys.exc_info()",
    ),
    (module_level_logging_call, "logging.exception(), exc_info=exc, a prefixed numeric id"),
    (warns_about_client_errors, "logs client errors at WARNING too"),
]:
    correct(check.error_middleware, _why)(_fn)

for _fn, _mistake, _problem in [
    (seed, "the seed: str(e) in the body", "leaks-details"),
    (catch_all, "catches HTTPException too", "http-error-to-500"),
    (reraise_http_error_only, "re-raises only HTTPError", "redirect-broken"),
    (converting_without_headers, "converts without headers", "lost-headers"),
    (converting_everything, "converts redirects too, headers dropped", "redirect-broken"),
    (type_in_body, "the exception's type in the body", "leaks-details"),
    (traceback_in_body, "a traceback line in the body", "leaks-details"),
    (plain_text_500, "a plain-text 500", "not-json-500"),
    (no_log, "logs nothing", "traceback-not-logged"),
    (logs_without_traceback, "logs without the traceback", "traceback-not-logged"),
    (prints_traceback, "prints the traceback", "traceback-printed"),
    (no_error_id, "no error id", "no-error-id"),
    (constant_error_id, "one id for every error", "same-error-id"),
    (id_not_in_log, "the id not in the log", "id-not-logged"),
    (catches_nothing, "catches nothing", "exception-escaped"),
    (crash_as_400, "a crash answered 400", "crash-status"),
    (forgets_return, "forgets return", "breaks-success"),
    (undecorated, "no @web.middleware", "not-decorated"),
    (http_error_to_200, "HTTP errors as 200", "http-error-status"),
    (id_under_another_name, "the id under another key", "no-error-id"),
    (
        logs_message_not_traceback,
        "logs the message at WARNING, no traceback",
        "traceback-not-logged",
    ),
    (raises_text_500, "raises a text/plain 500 with a JSON text", "not-json-500"),
    (returns_http_exception, "returns the HTTPException", "returns-http-exception"),
    (middleware_that_raises, "raises on every request", "middleware-crashed"),
    (stub_middleware, "the stub", "not-implemented"),
    (traceback_at_debug, "the traceback logged at DEBUG", "traceback-not-error"),
    (catches_runtime_errors_only, "catches RuntimeError only", "exception-escaped"),
    (message_in_a_header, "str(exc) in an X-Error header", "leaks-details"),
    (converts_with_all_headers, "headers=exc.headers, Content-Type too", "middleware-crashed"),
    (reraises_two_classes, "re-raises a few HTTP classes only", "http-error-to-500"),
    (typo_in_the_except_block, "a NameError in its except block", "middleware-crashed"),
    (converts_redirects_keeping_location, "a JSON error body on redirects", "redirect-converted"),
    (int_header_on_the_500, "an int header value on the 500", "no-answer"),
    (print_exc_to_stderr, "traceback.print_exc(): the traceback on stderr", "traceback-printed"),
    (handler_not_awaited, "`return handler(request)` without await", "missing-await"),
    (sleeps_in_the_middleware, "time.sleep in the middleware", "blocked-loop"),
]:
    wrong(check.error_middleware, _mistake, problem=_problem)(_fn)


def test_a_header_leak_is_found():
    verdict = check.error_middleware.diagnose(message_in_a_header)
    assert "X-Error header" in verdict.message, verdict.render()


def test_a_crashing_conversion_quotes_the_learners_line_and_the_content_type():
    verdict = check.error_middleware.diagnose(converts_with_all_headers)
    assert "converts_with_all_headers()" in verdict.message, verdict.render()
    assert "Content-Type" in verdict.hint, verdict.render()


def test_the_app_logger_counts_as_logging():
    assert check.error_middleware.diagnose(app_logger_adapter).passed


# --- Task 2: more answers of my own -------------------------------------------------------------


@web.middleware
async def timing_loop_clock_structured(request, handler):
    """The loop's clock, a local start, the status and duration as extra= fields."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        ms = (loop.time() - started) * 1000
        target = response if status == getattr(locals().get("response"), "status", None) else None
        if target is None and sys.exc_info()[1] is not None:
            target = sys.exc_info()[1]
        if isinstance(target, web.StreamResponse) and not target.prepared:
            target.headers["X-Response-Time"] = f"{ms:.2f} ms"
        access_log.info(
            "%s %s", request.method, request.path, extra={"status": status, "duration_ms": ms}
        )


def make_timing(clock):
    @web.middleware
    async def timing_with_clock(request, handler):
        request[START] = clock()
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as exc:
            response = exc
            raise
        finally:
            ms = (clock() - request[START]) * 1000
            if response is not None:
                response.headers["Server-Timing"] = f"total;dur={ms:.2f}, app;dur={ms / 2:.2f}"
            level = logging.INFO if response is None or response.status < 400 else logging.WARNING
            access_log.log(level, "%s %s %s %.2fms", request.method, request.path,
                           getattr(response, "status", 500), ms)  # fmt: skip

    return timing_with_clock


timing_perf_counter_factory = named(make_timing(time.perf_counter), "timing_perf_counter_factory")
timing_monotonic_factory = named(make_timing(time.monotonic), "timing_monotonic_factory")
timing_wall_clock_factory = named(make_timing(time.time), "timing_wall_clock_factory")


_GLOBAL_START = [0.0]


@web.middleware
async def timing_global_start(request, handler):
    _GLOBAL_START[0] = time.perf_counter()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - _GLOBAL_START[0]) * 1000
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f ms", request.method, request.path,
                        getattr(response, "status", 500), ms)  # fmt: skip


@web.middleware
async def timing_time_ns(request, handler):
    started = time.time_ns()
    response = None
    try:
        response = await handler(request)
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.time_ns() - started) / 1e6
        if response is not None:
            response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f ms", request.method, request.path,
                        getattr(response, "status", 500), ms)  # fmt: skip


def _timed(header, log="%s %s %s %.1f ms", fields=("method", "path", "status", "ms"), level=20,
           before=False, clock=time.perf_counter):  # fmt: skip
    @web.middleware
    async def middleware(request, handler):
        started = clock()
        if before:
            access_log.info("-> %s %s", request.method, request.path)
        response = None
        try:
            response = await handler(request)
            return response
        except web.HTTPException as exc:
            response = exc
            raise
        finally:
            ms = (clock() - started) * 1000
            if response is not None:
                response.headers["Server-Timing"] = header(ms)
            values = {"method": request.method, "path": request.path, "ms": ms,
                      "status": getattr(response, "status", 500)}  # fmt: skip
            access_log.log(level, log, *(values[f] for f in fields))

    return middleware


precedence = named(
    _timed(
        lambda ms: f"app;dur={time.perf_counter() - (time.perf_counter() - ms / 1000) * 1000:.1f}"
    ),
    "precedence",
)
constant_header = named(_timed(lambda ms: "app;dur=100"), "constant_header")
process_time = named(
    _timed(lambda ms: f"app;dur={ms:.2f}", clock=time.process_time), "process_time"
)
two_lines = named(_timed(lambda ms: f"app;dur={ms:.1f}", before=True), "two_lines")
at_debug = named(_timed(lambda ms: f"app;dur={ms:.1f}", level=logging.DEBUG), "at_debug")
without_path = named(
    _timed(lambda ms: f"app;dur={ms:.1f}", log="%s %s %.1f ms", fields=("method", "status", "ms")),
    "without_path",
)


@web.middleware
async def response_unbound(request, handler):
    started = time.perf_counter()
    try:
        response = await handler(request)
        return response
    finally:
        ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f", request.method, request.path, response.status, ms)


def _stamped(response, started):
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _timed_converting(convert):
    """A timing middleware that answers raised HTTP exceptions itself, through ``convert``."""

    @web.middleware
    async def middleware(request, handler):
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = convert(exc)
            if response is None:
                _stamped(exc, started)
                access_log.info("%s %s %s", request.method, request.path, exc.status)
                raise
        except Exception:
            response = web.Response(status=500, text="error")
        access_log.info(
            "%s %s %s %.1f ms", request.method, request.path, response.status,
            (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return _stamped(response, started)

    return middleware


def _headers_of(exc):
    return {k: v for k, v in exc.headers.items() if k != "Content-Type"}


@web.middleware
async def timing_forgets_return(request, handler):
    started = time.perf_counter()
    response = None
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.1f}"
        access_log.info("%s %s %s %.1f ms", request.method, request.path, response.status, ms)


timing_catches_everything = named(
    _timed_converting(lambda exc: web.Response(status=500, text="error")),
    "timing_catches_everything",
)
timing_forgets_status = named(
    _timed_converting(lambda exc: web.Response(text=exc.text, headers=_headers_of(exc))),
    "timing_forgets_status",
)
timing_rebuilds_every_exception = named(
    _timed_converting(lambda exc: web.Response(status=exc.status, text=exc.text)),
    "timing_rebuilds_every_exception",
)
timing_json_for_every_exception = named(
    _timed_converting(
        lambda exc: web.json_response(
            {"error": exc.reason}, status=exc.status, headers=_headers_of(exc)
        )
    ),
    "timing_json_for_every_exception",
)
timing_rebuilds_errors = named(
    _timed_converting(
        lambda exc: None if exc.status < 400 else web.Response(status=exc.status, text=exc.text)
    ),
    "timing_rebuilds_errors",
)


for _fn, _why in [
    (timing_finally, "the lesson's finally block"),
    (timing_x_response_time, "X-Response-Time, monotonic, a dict-style log"),
    (timing_seconds_with_unit, "X-Response-Time in seconds with an explicit unit"),
    (timing_ns_and_dict_log, "nanoseconds, a dict as the log message"),
    (timing_loop_clock_structured, "the loop's clock; status and duration as extra= fields"),
    (timing_perf_counter_factory, "a factory given time.perf_counter; WARNING for errors"),
    (timing_monotonic_factory, "a factory given time.monotonic"),
]:
    correct(check.timing_middleware, _why)(_fn)

for _fn, _mistake, _problem in [
    (seed_logging, "the seed: prints, no header", "no-header"),
    (success_only, "header and log on success only", "no-header-on-errors"),
    (header_only_on_errors_no, "header on success only, logged everywhere", "no-header-on-errors"),
    (not_a_number, "a header with no number", "not-a-number"),
    (seconds_not_ms, "seconds", "seconds-not-ms"),
    (timestamp, "a timestamp", "wrong-value"),
    (measures_nothing, "starts the clock after the handler", "measures-nothing"),
    (no_log_at_all, "no log line", "not-logged"),
    (log_without_status, "no status in the line", "log-missing-status"),
    (log_without_duration, "no duration in the line", "log-missing-duration"),
    (string_key, "request['start']", "string-key"),
    (timing_undecorated, "no @web.middleware", "not-decorated"),
    (logs_successes_only, "logs after the handler only", "not-logged-on-error"),
    (prints_access_line, "prints the access line", "printed-not-logged"),
    (float_header_value, "a float header value", "no-answer"),
    (logs_before_the_handler, "logs before the handler only", "log-missing-status"),
    (returns_exception_after_finally, "returns the HTTPException", "returns-http-exception"),
    (microseconds, "microseconds", "microseconds-not-ms"),
    (string_key_after_handler, "the duration under request['ms']", "string-key"),
    (timing_wall_clock_factory, "a factory given time.time", "wall-clock"),
    (timing_time_ns, "time.time_ns()", "wall-clock"),
    (timing_global_start, "the start in a module-level list", "start-shared"),
    (precedence, "`* 1000` on the start alone", "wrong-value"),
    (constant_header, "always dur=100", "wrong-value"),
    (process_time, "time.process_time: CPU time", "measures-nothing"),
    (two_lines, "a line on entry and one on exit", "logged-twice"),
    (at_debug, "the line at DEBUG", "logged-at-debug"),
    (without_path, "the line without the path", "log-missing-request"),
    (response_unbound, "`response` unbound when the handler raised", "middleware-crashed"),
    (stub_middleware, "the stub", "not-implemented"),
    (timing_forgets_return, "never returns the response", "breaks-success"),
    (timing_catches_everything, "answers every exception with its own 500", "http-error-to-500"),
    (timing_forgets_status, "rebuilds an HTTP error without its status", "http-error-status"),
    (
        timing_rebuilds_every_exception,
        "rebuilds every HTTP exception, headers lost",
        "redirect-broken",
    ),
    (timing_json_for_every_exception, "a JSON error body for redirects too", "redirect-converted"),
    (timing_rebuilds_errors, "rebuilds errors without their headers", "lost-headers"),
    (handler_not_awaited, "`return handler(request)` without await", "missing-await"),
    (sleeps_in_the_middleware, "time.sleep in the middleware", "blocked-loop"),
]:
    wrong(check.timing_middleware, _mistake, problem=_problem)(_fn)


def test_the_wall_clock_is_set_back_and_restored():
    real = time.time, time.time_ns
    verdict = check.timing_middleware.diagnose(timing_wall_clock_factory)
    assert verdict.problem == "wall-clock" and "an hour" in verdict.message, verdict.render()
    assert (time.time, time.time_ns) == real
    assert timing_wall_clock_factory.__closure__[0].cell_contents is time.time


def test_a_precedence_slip_is_named():
    verdict = check.timing_middleware.diagnose(precedence)
    assert "negative" in verdict.message and "parentheses" in verdict.message, verdict.render()


# --- Task 3 -----------------------------------------------------------------------------------


def app_factories():
    return web.Application(middlewares=[timing_perf_counter_factory, errors_from_factory])


def app_with_request_id_outermost():
    @web.middleware
    async def request_id(request, handler):
        response = await handler(request)
        response.headers["X-Request-Id"] = uuid.uuid4().hex
        return response

    return web.Application(middlewares=[request_id, timing_finally, app_logger_adapter])


def app_error_middleware_logs_too():
    return web.Application(middlewares=[timing_finally, warns_about_client_errors])


def app_timing_twice():
    return web.Application(middlewares=[timing_finally, reraising, timing_finally])


for _fn, _why in [
    (app_right_order, "[timing, error]"),
    (app_converting, "X-Response-Time timing, a converting error middleware"),
    (app_with_extra_middleware, "a third middleware, innermost"),
    (app_extended_after_creation, "middlewares.extend after creation"),
    (app_factories, "factory-made middlewares, structured"),
    (app_with_request_id_outermost, "a request-id middleware outermost, the app logger"),
    (app_error_middleware_logs_too, "the error middleware logs 4xx lines of its own"),
]:
    correct(check.create_app, _why)(_fn)

for _fn, _mistake, _problem in [
    (app_wrong_order, "[error, timing]", "wrong-order"),
    (app_without_error_middleware, "timing only", "missing-error-middleware"),
    (app_without_timing, "error only", "missing-timing-middleware"),
    (app_with_catch_all, "an error middleware that catches HTTP errors", "http-error-to-500"),
    (app_with_undecorated, "an undecorated middleware", "not-decorated"),
    (app_returns_list, "returns the list", "not-an-application"),
    (app_async, "an async def", "not-an-application"),
    (app_appended_in_wrong_order, "appended in the wrong order", "wrong-order"),
    (
        app_returning_exceptions,
        "an error middleware that returns exceptions",
        "returns-http-exception",
    ),
    (app_timing_twice, "timing listed twice", "logged-twice"),
    (stub_create_app, "the stub", "not-implemented"),
    (create_app_that_raises, "raises", "raised"),
]:
    wrong(check.create_app, _mistake, problem=_problem)(_fn)

# Every other rule of task 3 is a rule of task 1 or 2 kept in the combined app: one wrong answer
# per rule, each a wrong middleware from above beside a correct one.
_covered = {a.problem for a in ANSWERS if a.check is check.create_app and not a.correct}
_MOVED = {"exception-escaped": "missing-error-middleware", "no-header": "missing-timing-middleware"}
for _answer in list(ANSWERS):
    if _answer.correct or _answer.fn.__module__ != __name__:
        continue
    if _answer.check not in (check.error_middleware, check.timing_middleware):
        continue
    _problem = _MOVED.get(_answer.problem, _answer.problem)
    if _problem in _covered or _problem not in check.create_app.rules.rules:
        continue
    _covered.add(_problem)
    if _answer.check is check.error_middleware:
        _middlewares = [timing_finally, _answer.fn]
    else:
        _middlewares = [_answer.fn, reraising]

    def _combined(middlewares=tuple(_middlewares)):
        return web.Application(middlewares=list(middlewares))

    wrong(check.create_app, f"{_answer.mistake}, in the combined app", problem=_problem)(
        named(_combined, f"app_with_{_answer.fn.__name__}")
    )


def test_a_middleware_listed_twice_is_named():
    verdict = check.create_app.diagnose(app_timing_twice)
    assert "listed twice" in verdict.message, verdict.render()


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    """The same code, hint and message, but for the durations measured."""

    def masked(verdict):
        return verdict.problem, verdict.hint, re.sub(r"\d+(\.\d+)?", "<n>", verdict.message)

    first = check.timing_middleware.diagnose(two_lines)
    assert masked(first) == masked(check.timing_middleware.diagnose(two_lines))
