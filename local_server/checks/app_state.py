"""Checks for exercise 13, app state and lifecycle: ``from local_server.checks import app_state``.

The learner writes application factories, ``create_app(upstream_url)``, whose handlers call an
upstream (the course server) through one ``ClientSession`` that the application owns. A check
builds the application, serves it with ``serve()`` on its own loop, calls it, and judges from
what it observed: the sessions the ``SessionSpy`` saw created (and still open after clean-up),
the upstream's connection count, the warnings aiohttp emitted, the errors the handlers raised,
and, for a start-up that must fail, what clean-up did afterwards.
"""

from __future__ import annotations

import inspect
import json
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ..runner import LocalServer
from ..serving import captured_server_errors, refused_url, serve
from .harness import Mistake, SessionSpy, check, learner_frame, plural

REQUESTS = 8
SHUTDOWN_SECONDS = 0.5
CROSS_LOOP_SIGNS = ("different loop", "inside a task", "attached to a different")


@dataclass
class Observed:
    """What one run of the learner's application showed."""

    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    made_in_factory: int = 0
    warned: list[str] = field(default_factory=list)
    str_keys: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answers: list[tuple[str, int, Any]] = field(default_factory=list)
    in_state: bool = False
    closed_at_shutdown: int = 0

    @property
    def left_open(self) -> int:
        return sum(not session.closed for session in self.sessions)


async def _build(learner: Callable[[str], Any], upstream_url: str) -> Any:
    """Call the factory (awaiting it if it is async); the result must be an Application."""
    result = learner(upstream_url)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, web.Application):
        raise Mistake(
            "not-an-application",
            f"create_app returned {type(result).__name__}; expected a web.Application.",
            "build `app = web.Application()`, add the routes and the start-up steps, `return app`.",
        )
    await _check_hook_shapes(result)
    return result


def _step_name(step: Any) -> str:
    return getattr(step, "__name__", type(step).__name__)


async def _check_hook_shapes(app: web.Application) -> None:
    """Name a hook aiohttp cannot run, before start-up fails on it with a bare TypeError."""
    for step in app.cleanup_ctx:
        if not callable(step):
            raise Mistake(
                "called-the-step",
                f"cleanup_ctx holds {type(step).__name__} object {_step_name(step)!r}: the "
                "result of calling the function, not the function.",
                f"append the function itself, `app.cleanup_ctx.append({_step_name(step)})`, "
                "without `(app)`: aiohttp calls it with the app at start-up.",
            )
        if inspect.iscoroutinefunction(step):
            await _raise_if_stub(step, app)
            raise Mistake(
                "no-yield",
                f"{_step_name(step)} is in cleanup_ctx but is a plain `async def` with no "
                "`yield`: aiohttp cannot start it (TypeError: 'coroutine' object is not an "
                "async iterator).",
                "a cleanup_ctx step does its start-up work, then `yield`s once while the app "
                "serves, then cleans up: add the `yield` after the start-up code.",
            )
    for signal in ("on_startup", "on_shutdown", "on_cleanup"):
        for step in getattr(app, signal):
            if inspect.isasyncgenfunction(step):
                raise Mistake(
                    "generator-in-signal",
                    f"{_step_name(step)} has a `yield`, yet it is in {signal}, which awaits "
                    "plain coroutines: start-up fails with TypeError.",
                    "append it to cleanup_ctx instead: "
                    f"`app.cleanup_ctx.append({_step_name(step)})`.",
                )


async def _raise_if_stub(step: Callable[[web.Application], Any], app: web.Application) -> None:
    """Re-raise the exercise stub's NotImplementedError; any other outcome is not ours to judge."""
    try:
        await step(app)
    except NotImplementedError:
        raise
    except Exception:
        pass


def _warning_names(records: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(record.message).splitlines()[0]
        for record in records
        if record.category is web.NotAppKeyWarning
    ]


async def _run(
    learner: Callable[[str], Any],
    server: LocalServer,
    spy: SessionSpy,
    paths: list[str],
) -> Observed:
    """Build and serve the learner's app, GET each path in turn, and record what happened."""
    seen = Observed()
    already = len(spy.sessions)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", web.NotAppKeyWarning)
        app = await _build(learner, server.url)
        seen.made_in_factory = len(spy.sessions) - already
        mine: list[aiohttp.ClientSession] = []

        def learner_sessions() -> list[aiohttp.ClientSession]:
            return [session for session in spy.sessions[already:] if session not in mine]

        async def count_closed_at_shutdown(app: web.Application) -> None:
            # Appended last, so it runs after the learner's own on_shutdown callbacks.
            seen.closed_at_shutdown = sum(session.closed for session in learner_sessions())

        app.on_shutdown.append(count_closed_at_shutdown)
        with captured_server_errors() as logged:
            try:
                async with serve(app, shutdown_timeout=SHUTDOWN_SECONDS) as url:
                    async with aiohttp.ClientSession(url) as client:
                        mine.append(client)
                        for path in paths:
                            async with client.get(path) as response:
                                body = _parsed(await response.text())
                                seen.answers.append((path, response.status, body))
                    seen.in_state = any(
                        value is session
                        for value in app.values()
                        for session in learner_sessions()
                    )
            except (NotImplementedError, Mistake):
                raise
            except Exception as error:
                if mine:  # the app started: not a start-up failure
                    raise
                raise Mistake(
                    "start-up-failed",
                    f"the application did not start: {_named(error)}.",
                    f"a start-up step (on_startup or cleanup_ctx) raised it{_where(error)}.",
                ) from None
    seen.sessions = learner_sessions()
    seen.warned = _warning_names(records)
    seen.str_keys = sorted(key for key in app if isinstance(key, str))
    seen.errors = [_describe(record) for record in logged]
    return seen


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _describe(record: Any) -> str:
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        return f"{type(error).__name__}: {error}"
    return record.getMessage()


def _judge_common(seen: Observed, what: str) -> None:
    """The mistakes every task can show, most specific first."""
    if any(error.startswith("NotImplementedError") for error in seen.errors):
        raise NotImplementedError  # a handler still holds the exercise's stub
    if seen.warned or seen.str_keys:
        keys = ", ".join(repr(key) for key in seen.str_keys) or "a string key"
        raise Mistake(
            "string-keys",
            f"the application stores state under {keys}: aiohttp emitted NotAppKeyWarning.",
            'define a typed key once, `SESSION = web.AppKey("session", aiohttp.ClientSession)`, '
            "and use `app[SESSION]` / `request.app[SESSION]`.",
        )
    if seen.made_in_factory:
        raise Mistake(
            "session-in-factory",
            f"create_app itself created {plural(seen.made_in_factory, 'ClientSession')}, "
            "before the application started.",
            "create_app usually runs before any event loop (`web.run_app(create_app())`), "
            "where ClientSession() raises 'no running event loop'. Create the session at "
            "start-up, in a cleanup_ctx, and close it there.",
        )
    cross_loop = [error for error in seen.errors if any(s in error for s in CROSS_LOOP_SIGNS)]
    if cross_loop or (seen.errors and not seen.sessions):
        raise Mistake(
            "session-from-elsewhere",
            f"{what} failed with {(cross_loop or seen.errors)[0]}, and the application created "
            "no session of its own while it ran.",
            "a session made at module level (or in another cell) belongs to the loop that "
            "made it, and a script has no loop at import time. Let the application create it "
            "at start-up, in a cleanup_ctx, and store it under a web.AppKey.",
        )
    if seen.errors:
        raise Mistake(
            "handler-raised",
            f"a handler raised {seen.errors[0]} → the client got 500.",
            "read the session with `request.app[SESSION]`, call the upstream inside "
            "`async with session.get(...) as response:` and return "
            "`web.json_response(await response.json())`.",
        )


def _judge_sessions(seen: Observed, requests: int) -> None:
    count = len(seen.sessions)
    if count >= requests:
        raise Mistake(
            "session-per-request",
            f"{plural(count, 'ClientSession')} were created for {requests} requests to your "
            "application.",
            "a handler must not create a session: create one at start-up (cleanup_ctx), store "
            "it under a web.AppKey, and read it with `request.app[KEY]` in every handler.",
        )
    if count > 1:
        raise Mistake(
            "several-sessions",
            f"the application created {count} ClientSessions; one is enough for the whole "
            "application, its start-up steps and its handlers.",
            "create the session once, at start-up, and let every handler use `request.app[KEY]`.",
        )
    if count == 0:
        raise Mistake(
            "no-session-created",
            "the application never created a ClientSession while it ran.",
            "create it at start-up: `async with aiohttp.ClientSession(base_url=...) as "
            "session: app[KEY] = session; yield` in a cleanup_ctx.",
        )
    if seen.closed_at_shutdown:
        raise Mistake(
            "closed-at-shutdown",
            "the application's ClientSession was already closed by the end of on_shutdown, "
            "which runs before aiohttp waits for the requests still in flight.",
            "a handler still running at shutdown would find its session closed. Close it at "
            "clean-up, which runs after the last request: in a cleanup_ctx, or in on_cleanup.",
        )
    if seen.left_open:
        raise Mistake(
            "session-left-open",
            "the application's ClientSession was still open after the application was cleaned up.",
            "close it at clean-up: in a cleanup_ctx, `async with aiohttp.ClientSession(...) as "
            "session:` around the `yield` closes it when the application stops.",
        )
    if not seen.in_state:
        raise Mistake(
            "session-not-in-app",
            "the session is not stored in the application's state.",
            "store it under a typed key, `app[SESSION] = session`, so each application owns "
            "its own session and handlers find it with `request.app[SESSION]`.",
        )


def _judge_answers(seen: Observed, expected: Callable[[str, Any], str | None]) -> None:
    for path, status, body in seen.answers:
        if status != 200:
            raise Mistake(
                "bad-status",
                f"GET {path} answered {status}: {str(body)[:120]}",
                "register the route with `app.router.add_get(path, handler)` and return "
                "`web.json_response(...)`.",
            )
        problem = expected(path, body)
        if problem:
            raise Mistake(
                "wrong-body",
                f"GET {path} returned {str(body)[:120]}: {problem}",
                "return the upstream's document as it came: "
                "`web.json_response(await response.json())`.",
            )


async def _upstream_json(server: LocalServer) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/json") as response:
        return await response.json()


# --- task 1: one shared session -------------------------------------------------------------


@check("shared_session")
async def shared_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``create_app(url)`` serves GET /proxy/json through one app-owned, closed session."""
    document = await _upstream_json(server)
    server.reset_stats()
    seen = await _run(learner, server, spy, ["/proxy/json"] * REQUESTS)
    _judge_common(seen, "GET /proxy/json")
    _judge_answers(
        seen,
        lambda path, body: (
            None if body == document else "expected the upstream's /json document, unchanged."
        ),
    )
    _judge_sessions(seen, REQUESTS)
    opened = server.stats().connections_opened
    if opened >= REQUESTS:
        raise Mistake(
            "no-reuse",
            f"the upstream saw {opened} connections for {REQUESTS} requests.",
            "read each upstream response inside `async with` so its connection goes back to "
            "the session's pool, and keep the default connector.",
        )
    return (
        f"{REQUESTS} requests went through one ClientSession, created at start-up and stored "
        f"under a web.AppKey; the upstream saw {plural(opened, 'connection')}; the session was "
        "closed at clean-up."
    )


# --- task 2: a second handler, the same session ----------------------------------------------


def _uuid_problem(path: str, body: Any) -> str | None:
    if path != "/proxy/uuid":
        return None
    value = body.get("uuid") if isinstance(body, dict) else None
    try:
        uuid.UUID(str(value))
    except ValueError:
        return 'expected the upstream\'s /uuid document, {"uuid": "..."}.'
    return None


@check("second_route")
async def second_route(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """GET /proxy/json and GET /proxy/uuid both use the one session the app owns."""
    paths = ["/proxy/json", "/proxy/uuid"] * (REQUESTS // 2)
    seen = await _run(learner, server, spy, paths)
    _judge_common(seen, "GET /proxy/uuid")
    _judge_answers(seen, _uuid_problem)
    uuids = {body["uuid"] for path, _, body in seen.answers if path == "/proxy/uuid"}
    if len(uuids) < REQUESTS // 2:
        raise Mistake(
            "cached-answer",
            f"{REQUESTS // 2} calls to GET /proxy/uuid returned {len(uuids)} distinct UUIDs.",
            "call the upstream on every request; do not keep its first answer.",
        )
    if len(seen.sessions) == 2:
        raise Mistake(
            "not-shared",
            "the two handlers used two different ClientSessions.",
            "one session per application, not per handler: read the same key, "
            "`request.app[SESSION]`, in both.",
        )
    _judge_sessions(seen, REQUESTS // 2)
    return "both routes answered through the same ClientSession, closed at clean-up."


# --- task 3: fail fast at start-up, and clean up what did start -----------------------------


def _sick_upstream() -> web.Application:
    """An upstream whose /get answers 503 while everything else is fine."""

    async def sick(request: web.Request) -> web.Response:
        return web.json_response({"error": "Service Unavailable"}, status=503)

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"uuid": str(uuid.uuid4())})

    app = web.Application()
    app.router.add_get("/get", sick)
    app.router.add_get("/{tail:.*}", fine)
    return app


@dataclass
class StartAttempt:
    start_error: BaseException | None
    cleanup_error: BaseException | None
    sessions: list[aiohttp.ClientSession]
    on_cleanup_callbacks: int

    @property
    def started(self) -> bool:
        return self.start_error is None

    @property
    def left_open(self) -> int:
        return sum(not session.closed for session in self.sessions)


async def _try_to_start(
    learner: Callable[[str], Any], upstream_url: str, spy: SessionSpy
) -> StartAttempt:
    """Start the app as a careful host does (``try: setup() finally: cleanup()``)."""
    already = len(spy.sessions)
    start_error = cleanup_error = None
    with warnings.catch_warnings(record=True), captured_server_errors():
        app = await _build(learner, upstream_url)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        try:
            await runner.setup()
        except Exception as error:
            start_error = error
        finally:
            try:
                await runner.cleanup()
            except Exception as error:
                cleanup_error = error
    own = len(app.on_cleanup) - 1  # aiohttp's own entry runs the cleanup contexts
    return StartAttempt(start_error, cleanup_error, spy.sessions[already:], own)


def _named(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ")


def _where(error: BaseException) -> str:
    """', at line N of f()' for the learner's innermost frame of ``error``, or ''."""
    frame = learner_frame(error)
    return f", at line {frame.lineno} of {frame.name}()" if frame else ""


def _why_healthy_start_failed(error: BaseException | None) -> str:
    if isinstance(error, KeyError):
        return (
            "the health check must run after the session exists: cleanup_ctx contexts start "
            "in order, before every on_startup callback. Append the health check to "
            "cleanup_ctx after the session's context (or await it in the same context)."
        )
    return (
        'a healthy upstream answers 200 to GET upstream_url + "/get": send that request with '
        "the app's session and raise only when the answer is not 2xx "
        "(`response.raise_for_status()`)."
    )


@check("fail_fast")
async def fail_fast(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Healthy upstream: starts and serves. Sick or absent upstream: start-up fails, no leak."""
    healthy = await _try_to_start(learner, server.url, spy)
    if isinstance(healthy.start_error, NotImplementedError):
        raise healthy.start_error
    if not healthy.started:
        raise Mistake(
            "refuses-healthy-upstream",
            f"start-up failed with a healthy upstream: {_named(healthy.start_error)}"
            f"{_where(healthy.start_error)}.",
            _why_healthy_start_failed(healthy.start_error),
        )
    seen = await _run(learner, server, spy, ["/proxy/json", "/proxy/uuid"] * (REQUESTS // 2))
    _judge_common(seen, "GET /proxy/json")
    _judge_sessions(seen, REQUESTS)
    sick_app = _sick_upstream()
    async with serve(sick_app) as sick_url:
        for label, url in (("answered 503 to GET /get", sick_url), ("refused", refused_url())):
            attempt = await _try_to_start(learner, url, spy)
            if attempt.started:
                raise Mistake(
                    "starts-anyway",
                    f"the application started although its upstream {label}.",
                    "at start-up, GET the upstream's /get with the shared session and call "
                    "`response.raise_for_status()`: an exception there stops the start-up.",
                )
            if attempt.cleanup_error is not None:
                raise Mistake(
                    "cleanup-crashed",
                    f"after the failed start-up (upstream {label}), clean-up raised "
                    f"{_named(attempt.cleanup_error)}.",
                    "each clean-up step must close only what its own start-up step opened: open "
                    "and close in the same cleanup_ctx (`async with ...: app[KEY] = session; "
                    "yield`), so a step that never ran is never cleaned up.",
                )
            left = attempt.left_open
            if left:
                why = (
                    "aiohttp runs no on_cleanup callback when start-up fails, so the session "
                    "an on_startup callback opened is never closed. "
                    if attempt.on_cleanup_callbacks
                    else ""
                )
                raise Mistake(
                    "leak-after-failed-start",
                    f"start-up failed (upstream {label}: {_named(attempt.start_error)}), and "
                    f"{plural(left, 'ClientSession')} opened before the failure stayed open "
                    "after clean-up.",
                    f"{why}Open the session in a cleanup_ctx (`async with "
                    "aiohttp.ClientSession(...) as session:` around the `yield`): a context that "
                    "started is exited even when a later step fails.",
                )
    return (
        "it starts and serves with a healthy upstream; with a sick or absent upstream "
        "start-up fails, clean-up does not crash, and no session is left open."
    )
