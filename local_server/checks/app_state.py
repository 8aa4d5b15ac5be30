"""Checks for exercise 13, app state and lifecycle: ``from local_server.checks import app_state``.

The learner writes application factories, ``create_app(upstream_url)``, whose handlers call an
upstream through one ``ClientSession`` that the application owns. Each task's rules are a
table (``SHARED_SESSION``, ``SECOND_ROUTE``, ``FAIL_FAST``), observed on seeded scenarios the
check serves itself:

- **two apps at once**: two upstreams that answer different documents (non-ASCII text under
  an honest charset) and fresh UUIDs, two apps built before either starts, served together,
  called one request at a time and then in a concurrent burst. State kept anywhere but in the
  app (a module-level URL or session) shows as an app answering the other upstream's data;
- **a start-up that fails after the session opened** (the check appends a failing step):
  what ``cleanup_ctx`` opened is closed, what ``on_startup`` opened leaks;
- for the health check: upstreams answering 200 and 204 (it must start), 503, 500, 404, 401
  and a refused port (it must fail, at once, and leak nothing).

What is observed: sessions (``SessionSpy``: made in ``create_app``, at start-up, in handlers;
open after clean-up; closed by the end of ``on_shutdown``), the app's state, the upstreams'
own record of each request and connection, aiohttp's warnings and the handlers' logged
exceptions, and how long a start-up takes to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from ..runner import LocalServer
from ..serving import captured_server_errors, logged_exceptions, refused_url, serve
from . import observe
from .evidence import clip, exception_text, learner_line
from .harness import SessionSpy, check, plural
from .rules import Rule, Task

SEED = 0
# Requests per app: one at a time (connection reuse is counted on these), then all at once.
SEQUENTIAL, BURST = 4, 4
SHUTDOWN_SECONDS = 0.5
# A start-up against a sick upstream must fail within this long (no waiting for recovery).
START_PATIENCE_SECONDS = 2.0
# A start-up that has not retried (one GET /get at most, no sleep asked) gets this much more:
# a loaded machine, not a loop waiting for the upstream.
LOADED_EXTRA_SECONDS = 6.0
CROSS_LOOP_SIGNS = ("different loop", "inside a task", "attached to a different")
# The statuses a sick upstream answers to GET /get, and the healthy ones.
SICK_STATUSES = (503, 500, 404, 401)
HEALTHY_STATUSES = (200, 204)


class CheckStartupFailure(RuntimeError):
    """Raised by the start-up step the check appends to make a start-up fail on purpose."""


# --- the rules ------------------------------------------------------------------------------

_CTX_HINT = (
    "open it in a cleanup_ctx: `async with aiohttp.ClientSession(...) as session: "
    "app[SESSION] = session; yield`."
)


def _shape_rules(factory: str) -> list[Rule]:
    return [
        Rule(
            "not-an-application",
            f"`{factory}(upstream_url)` returns a `web.Application`",
            "the type of what the factory returned",
            "build `app = web.Application()`, add the routes and the start-up steps, "
            "`return app`.",
        ),
        Rule(
            "called-the-step",
            "append the start-up step itself to `cleanup_ctx`",
            "what cleanup_ctx holds before the app starts",
            "append the function, without `(app)`: aiohttp calls it with the app at start-up.",
        ),
        Rule(
            "no-yield",
            "a `cleanup_ctx` step yields once, between its start-up and its clean-up",
            "a plain `async def` (no yield) found in cleanup_ctx",
            "a cleanup_ctx step does its start-up work, then `yield`s once while the app "
            "serves, then cleans up: add the `yield` after the start-up code.",
        ),
        Rule(
            "generator-in-signal",
            "a step with a `yield` belongs in `cleanup_ctx`",
            "an async generator found in on_startup, on_shutdown or on_cleanup",
            "on_startup and on_cleanup await plain coroutines: append a step with a `yield` "
            "to cleanup_ctx instead.",
        ),
        Rule(
            "string-keys",
            "The application's state keys: use them, and no string keys",
            "NotAppKeyWarning while the apps were built and served, and str keys in the app",
            'define a typed key once, `SESSION = web.AppKey("session", '
            "aiohttp.ClientSession)`, and use `app[SESSION]` / `request.app[SESSION]`.",
        ),
        Rule(
            "url-not-in-app",
            "`create_app` stores `upstream_url` in the app under `UPSTREAM_URL`",
            "the values of each app's state right after the factory returned",
            "`app[UPSTREAM_URL] = upstream_url` in create_app; client_session receives only "
            "the app, so it reads the URL from there.",
        ),
        Rule(
            "session-in-factory",
            "the session is created at start-up, not in `create_app`",
            "sessions created while the factory ran",
            "create_app usually runs before any event loop (`web.run_app(create_app(...))`), "
            f"where ClientSession() fails; {_CTX_HINT}",
        ),
    ]


def _session_rules() -> list[Rule]:
    return [
        Rule(
            "session-from-elsewhere",
            "the session is owned by the application, not made at module level",
            "handlers failing with a 'different loop' error while the app made no session",
            "a session made at module level (or in another cell) belongs to the loop that "
            "made it. Let the application create it at start-up and store it under SESSION.",
        ),
        Rule(
            "handler-raised",
            "the handler answers with the upstream's document",
            "the exception aiohttp logged for a request that answered 500",
            "read the session with `request.app[SESSION]`, call the upstream inside "
            "`async with session.get(...) as response:` and return "
            "`web.json_response(await response.json())`.",
        ),
        Rule(
            "bad-status",
            "the route answers 200",
            "the status each request to the app got",
            "register the route with `app.router.add_get(path, handler)` and return "
            "`web.json_response(...)`.",
        ),
        Rule(
            "wrong-body",
            "answers with that JSON document, unchanged",
            "each answer parsed as JSON and compared with what the upstream sent for it",
            "return the upstream's document as it came: "
            "`web.json_response(await response.json())`.",
        ),
        Rule(
            "wrong-upstream",
            "each app calls its own `upstream_url`",
            "two apps for two upstreams served at once: an answer that came from the other "
            "app's upstream",
            "keep every piece of state in the app (`app[UPSTREAM_URL]`, `app[SESSION]`), "
            "never in a module-level variable that the second app overwrites.",
        ),
        Rule(
            "session-per-request",
            "one `ClientSession` owned by the application ... never one of its own",
            "sessions created while requests were handled, counted against the requests",
            "a handler must not create a session: use the app's, `request.app[SESSION]`, "
            "created once at start-up.",
        ),
        Rule(
            "session-made-lazily",
            "the session is created **at start-up** (not on first use)",
            "a session created while a request was handled, not while the app started",
            f"a session made on first use belongs to no app and is closed by no clean-up: "
            f"{_CTX_HINT}",
        ),
        Rule(
            "several-sessions",
            "**one** `ClientSession` for the whole application",
            "sessions each app created while it started",
            "create the session once, in client_session, and let every handler and start-up "
            "step use `app[SESSION]`.",
        ),
        Rule(
            "no-session-created",
            "the application owns a `ClientSession`",
            "sessions created while the apps started and served: none",
            f"create it at start-up, in client_session: {_CTX_HINT}",
        ),
        Rule(
            "closed-at-shutdown",
            "the session is **closed at clean-up**",
            "the app's session was already closed by the end of on_shutdown",
            "on_shutdown runs before aiohttp waits for the requests still in flight, which "
            "would find the session closed. Close it at clean-up: in the cleanup_ctx.",
        ),
        Rule(
            "session-left-open",
            "the session is **closed at clean-up**",
            "sessions still open after the apps were cleaned up",
            "close it at clean-up: in a cleanup_ctx, `async with aiohttp.ClientSession(...) "
            "as session:` around the `yield` closes it when the app stops.",
        ),
        Rule(
            "session-not-in-app",
            "found under `SESSION` (`request.app[SESSION]`)",
            "the values of each app's state while it served: none is its session",
            "store it in the app, `app[SESSION] = session`, so each app owns its own session "
            "and handlers find it with `request.app[SESSION]`.",
        ),
        Rule(
            "leak-after-failed-start",
            "the session is closed at clean-up, also when start-up fails",
            "a start-up that fails after the session opened; sessions still open after "
            "`runner.cleanup()`",
            "aiohttp skips every on_cleanup callback when start-up fails, but exits each "
            f"cleanup_ctx that reached its yield: {_CTX_HINT}",
        ),
        Rule(
            "no-reuse",
            "one shared session, so connections are reused",
            "the upstream's count of connections for requests sent one at a time",
            "read each upstream response inside `async with` so its connection goes back to "
            "the pool, and keep the session's default connector.",
        ),
    ]


def _start_rule() -> Rule:
    return Rule(
        "start-up-failed",
        "the application starts",
        "the exception its start-up raised, and the learner's line",
        "a start-up step raised: read the message and the line above.",
    )


SHARED_SESSION = Task(
    "shared_session", *_shape_rules("create_app"), _start_rule(), *_session_rules()
)

SECOND_ROUTE = Task(
    "second_route",
    *_shape_rules("create_app_two_routes"),
    _start_rule(),
    *_session_rules(),
    Rule(
        "not-shared",
        "It must use the **same** session as `proxy_json`",
        "each app made two sessions at start-up, one for each route",
        "one session per application, not per handler: read the same key, "
        "`request.app[SESSION]`, in both.",
    ),
    Rule(
        "cached-answer",
        'a fresh `{"uuid": ...}` on every call',
        "the UUIDs the app answered, compared with those its upstream sent",
        "call the upstream on every request; do not keep its first answer.",
    ),
)

FAIL_FAST = Task(
    "fail_fast",
    *_shape_rules("create_checked_app"),
    *_session_rules(),
    Rule(
        "refuses-healthy-upstream",
        "any 2xx is healthy: the app starts and serves",
        "upstreams answering 200 and 204 to GET /get; the exception start-up raised",
        "raise only for an error status, 400 or above (`response.raise_for_status()`), or "
        "when the upstream cannot be reached.",
    ),
    Rule(
        "starts-anyway",
        "raises if the upstream cannot be reached or answers an error status (400 or above)",
        "start-up against upstreams answering 503, 500, 404 and 401 to GET /get, and "
        "against a refused port: the app must not start",
        "at start-up, GET /get with the app's session and call "
        "`response.raise_for_status()`: an exception there stops the start-up.",
    ),
    Rule(
        "waits-for-upstream",
        "refuse to start, loudly (at once)",
        f"a start-up still running after {START_PATIENCE_SECONDS:g} s against an upstream "
        "that answers 503, and the GET /get requests it received meanwhile",
        "do not wait for a sick upstream to recover: raise at the first error, and let "
        "whoever runs the service restart it.",
    ),
    Rule(
        "cleanup-crashed",
        "clean-up after a failed start does not crash",
        "the exception runner.cleanup() raised after a failed start-up",
        "each clean-up step must close only what its own start-up step opened: open and "
        "close in the same cleanup_ctx, so a step that never ran is never cleaned up.",
    ),
)


# --- the upstreams the check serves -------------------------------------------------------


def _utf8_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Upstream:
    """An upstream for one app: its own document, fresh UUIDs, a /get of a chosen status."""

    name: str
    rng: random.Random
    get_status: int = 200
    document: dict[str, Any] = field(default_factory=dict)
    uuids: list[str] = field(default_factory=list)
    # (path, client port) of every request, in order of arrival.
    requests: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.document = {
            "service": f"upstream {self.name}",
            "greeting": "grüß dich, café ☕",
            "n": self.rng.randrange(10**6),
            "items": [self.rng.randrange(100) for _ in range(self.rng.randrange(3, 9))],
        }

    def app(self) -> web.Application:
        async def record(request: web.Request) -> None:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.requests.append((request.path, peer[1] if peer else 0))

        async def document(request: web.Request) -> web.Response:
            await record(request)
            # Raw UTF-8 on the wire (not \u escapes), under an honest charset.
            return web.json_response(self.document, dumps=_utf8_dumps)

        async def fresh_uuid(request: web.Request) -> web.Response:
            await record(request)
            value = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self.uuids.append(value)
            return web.json_response({"uuid": value})

        async def health(request: web.Request) -> web.Response:
            await record(request)
            if self.get_status == 204:
                return web.Response(status=204, content_type="application/json")
            return web.json_response(
                {"status": self.get_status, "upstream": self.name}, status=self.get_status
            )

        async def other(request: web.Request) -> web.Response:
            await record(request)
            return web.json_response({"error": f"no {request.path} here"}, status=404)

        app = web.Application()
        app.router.add_get("/json", document)
        app.router.add_get("/uuid", fresh_uuid)
        app.router.add_get("/get", health)
        app.router.add_route("*", "/{tail:.*}", other)
        return app

    def paths_since(self, start: int) -> list[str]:
        return [path for path, _ in self.requests[start:]]


# --- building and serving the learner's apps ------------------------------------------------


class _StubReached(Exception):
    """The exercise's stub raised NotImplementedError inside a hook the check inspected."""


async def _build(
    table: Task, learner: Callable[[str], Any], upstream_url: str, spy: SessionSpy
) -> tuple[web.Application, int]:
    """Call the factory (awaiting an async one); the app and the sessions it created."""
    before = len(spy.sessions)
    result = learner(upstream_url)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, web.Application):
        raise table.broken(
            "not-an-application",
            f"create_app returned {type(result).__name__}; expected a web.Application.",
        )
    await _check_hook_shapes(table, result)
    return result, len(spy.sessions) - before


def _step_name(step: Any) -> str:
    return getattr(step, "__name__", type(step).__name__)


async def _check_hook_shapes(table: Task, app: web.Application) -> None:
    """Name a hook aiohttp cannot run, before start-up fails on it with a bare TypeError."""
    for step in app.cleanup_ctx:
        if not callable(step):
            raise table.broken(
                "called-the-step",
                f"cleanup_ctx holds {type(step).__name__} object {_step_name(step)!r}: the "
                "result of calling the function, not the function.",
                f"append the function itself, `app.cleanup_ctx.append({_step_name(step)})`, "
                "without `(app)`: aiohttp calls it with the app at start-up.",
            )
        if inspect.iscoroutinefunction(step):
            await _raise_if_stub(step, app)
            raise table.broken(
                "no-yield",
                f"{_step_name(step)} is in cleanup_ctx but is a plain `async def` with no "
                "`yield`: aiohttp cannot start it (TypeError: 'coroutine' object is not an "
                "async iterator).",
            )
    for signal in ("on_startup", "on_shutdown", "on_cleanup"):
        for step in getattr(app, signal):
            if inspect.isasyncgenfunction(step):
                raise table.broken(
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


def _same_url(value: Any, url: str) -> bool:
    """``value`` is ``url`` (a str or a URL, with or without a trailing slash), or holds it."""
    if isinstance(value, (str, URL)):
        return str(value).rstrip("/") == url.rstrip("/")
    if isinstance(value, dict):  # a settings mapping stored under one key
        return any(_same_url(item, url) for item in value.values())
    return False


@dataclass
class AppRun:
    """One of the learner's apps in a scenario: its upstream, state and sessions."""

    label: str
    upstream: Upstream
    app: web.Application
    url_stored: bool
    startup_sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    closed_at_shutdown: int = 0
    in_state: bool = False
    # (path, status, raw body) of each request the check sent to this app.
    answers: list[tuple[str, int, bytes]] = field(default_factory=list)
    # Index into upstream.requests where this app's one-at-a-time requests begin and end.
    sequential: tuple[int, int] = (0, 0)


@dataclass
class Observed:
    """What serving two of the learner's apps showed."""

    runs: list[AppRun]
    made_in_factory: int = 0
    lazy_sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    str_keys: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    start_error: BaseException | None = None
    start_label: str = ""

    @property
    def requests(self) -> int:
        return sum(len(run.answers) for run in self.runs)

    def all_sessions(self) -> list[aiohttp.ClientSession]:
        return [s for run in self.runs for s in run.startup_sessions] + self.lazy_sessions


def _warning_names(records: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(record.message).splitlines()[0]
        for record in records
        if record.category is web.NotAppKeyWarning
    ]


async def _serve_two(
    table: Task,
    learner: Callable[[str], Any],
    spy: SessionSpy,
    upstreams: list[tuple[Upstream, str]],
    paths: list[str],
) -> Observed:
    """Build an app per upstream, serve them together, send each the paths; record it all."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always", web.NotAppKeyWarning)
        runs = []
        made = 0
        for label, (upstream, url) in zip("AB", upstreams, strict=True):
            app, created = await _build(table, learner, url, spy)
            made += created
            stored = any(_same_url(value, url) for value in app.values())
            runs.append(AppRun(label, upstream, app, stored))
        seen = Observed(runs, made_in_factory=made)
        mine: list[aiohttp.ClientSession] = []
        with captured_server_errors() as logged:
            async with contextlib.AsyncExitStack() as stack:
                clients = []
                for run in runs:
                    _count_closed_at_shutdown(run)
                    before = len(spy.sessions)
                    try:
                        url = await stack.enter_async_context(
                            serve(run.app, shutdown_timeout=SHUTDOWN_SECONDS)
                        )
                    except NotImplementedError:
                        raise
                    except Exception as error:
                        seen.start_error, seen.start_label = error, run.label
                        break
                    run.startup_sessions = list(spy.sessions[before:])
                    client = await stack.enter_async_context(aiohttp.ClientSession(url))
                    mine.append(client)
                    clients.append(client)
                if seen.start_error is None:
                    lazy_from = len(spy.sessions)
                    await _send(runs, clients, paths)
                    seen.lazy_sessions = [s for s in spy.sessions[lazy_from:] if s not in mine]
                    for run in runs:
                        run.in_state = any(
                            value is session
                            for value in run.app.values()
                            for session in run.startup_sessions + seen.lazy_sessions
                        )
    seen.warned = _warning_names(records)
    seen.str_keys = sorted({key for run in runs for key in run.app if isinstance(key, str)})
    seen.errors = logged_exceptions(logged)
    return seen


def _count_closed_at_shutdown(run: AppRun) -> None:
    async def count(app: web.Application) -> None:
        # Appended last, so it runs after the learner's own on_shutdown callbacks.
        run.closed_at_shutdown = sum(session.closed for session in run.startup_sessions)

    run.app.on_shutdown.append(count)


async def _send(runs: list[AppRun], clients: list[aiohttp.ClientSession], paths: list[str]) -> None:
    """Each path to each app: the first SEQUENTIAL one at a time, interleaved, then the burst."""

    async def one(run: AppRun, client: aiohttp.ClientSession, path: str) -> None:
        async with client.get(path) as response:
            run.answers.append((path, response.status, await response.read()))

    for run in runs:
        run.sequential = (len(run.upstream.requests), 0)
    for path in paths[:SEQUENTIAL]:
        for run, client in zip(runs, clients, strict=True):
            await one(run, client, path)
    for run in runs:
        run.sequential = (run.sequential[0], len(run.upstream.requests))
    await asyncio.gather(
        *(
            one(run, client, path)
            for path in paths[SEQUENTIAL:]
            for run, client in zip(runs, clients, strict=True)
        )
    )


# --- judging ----------------------------------------------------------------------------------


def _judge_build(table: Task, seen: Observed) -> None:
    """What the factory and the app's state show, before anything was served."""
    if seen.warned or seen.str_keys:
        keys = ", ".join(repr(key) for key in seen.str_keys) or "a string key"
        raise table.broken(
            "string-keys",
            f"the application stores state under {keys}: aiohttp emitted NotAppKeyWarning.",
        )
    if seen.made_in_factory:
        raise table.broken(
            "session-in-factory",
            f"the factory itself created {plural(seen.made_in_factory, 'ClientSession')} "
            f"(for {len(seen.runs)} apps), before any app started.",
        )
    if not all(run.url_stored for run in seen.runs):
        raise table.broken(
            "url-not-in-app",
            "after create_app(upstream_url) returned, no value in the app's state was "
            "upstream_url.",
        )


def _judge_start(table: Task, seen: Observed, problem: str = "start-up-failed") -> None:
    error = seen.start_error
    if error is None:
        return
    where = learner_line(error)
    message = (
        f"app {seen.start_label} did not start, with a healthy upstream: "
        f"{exception_text(error)}{f' ({where})' if where else ''}."
    )
    hint = None
    if isinstance(error, KeyError):
        hint = (
            "a start-up step read a key no earlier step had set: every cleanup_ctx starts "
            "before every on_startup callback, and contexts start in the order appended. "
            "Append the step that needs the session after client_session."
        )
    raise table.broken(problem, message, hint)


def _judge_handlers(table: Task, seen: Observed) -> None:
    errors = seen.errors
    if any(isinstance(error, NotImplementedError) for error in errors):
        raise NotImplementedError  # a handler still holds the exercise's stub
    cross_loop = [e for e in errors if any(sign in str(e) for sign in CROSS_LOOP_SIGNS)]
    if cross_loop or (errors and not seen.all_sessions()):
        error = (cross_loop or errors)[0]
        raise table.broken(
            "session-from-elsewhere",
            f"the handlers failed with {exception_text(error)}"
            f"{_at(error)}, and the application created no session of its own while it ran.",
        )
    if errors:
        raise table.broken(
            "handler-raised",
            f"a handler raised {exception_text(errors[0])}{_at(errors[0])}: the client got 500.",
        )


def _at(error: BaseException) -> str:
    where = learner_line(error)
    return f" ({where})" if where else ""


def _describe_body(raw: bytes) -> tuple[str, Any]:
    """(a short description of an answer's body for a message, its parsed JSON or None)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return f"a body that is not JSON ({clip(raw.decode('utf-8', 'replace'), 60)!r})", None
    if isinstance(value, str):
        return f"a JSON string (str {clip(value, 50)!r}), not an object", value
    if isinstance(value, dict):
        return f"a JSON object with keys {sorted(value)[:5]}", value
    return f"JSON {type(value).__name__} {clip(json.dumps(value), 50)}", value


def _judge_answers(table: Task, seen: Observed) -> None:
    """Each answer: 200, and the document (or a UUID) this app's own upstream sent."""
    others = {run.label: [o for o in seen.runs if o is not run] for run in seen.runs}
    for run in seen.runs:
        for path, status, raw in run.answers:
            if status != 200:
                raise table.broken(
                    "bad-status",
                    f"GET {path} answered {status}: {clip(raw.decode('utf-8', 'replace'), 100)}",
                )
            described, value = _describe_body(raw)
            if path == "/proxy/json":
                expected, elsewhere = run.upstream.document, [
                    o.upstream.document for o in others[run.label]
                ]
                good, foreign = value == expected, value in elsewhere
                what = "the upstream's /json document"
            else:
                sent = value.get("uuid") if isinstance(value, dict) else None
                good = isinstance(value, dict) and list(value) == ["uuid"] and (
                    sent in run.upstream.uuids
                )
                foreign = any(sent in o.upstream.uuids for o in others[run.label])
                what = 'the upstream\'s /uuid document, {"uuid": "..."}'
            if foreign:
                _judge_state(table, seen, f"app {run.label} answered GET {path} with data "
                             "from the other app's upstream")
                raise table.broken(
                    "wrong-upstream",
                    f"app {run.label} (created for upstream {run.label}) answered GET {path} "
                    f"with what the other app's upstream sent: both apps ran at once, and "
                    "state they share was overwritten by the second.",
                )
            if not good:
                if (
                    isinstance(value, dict)
                    and path == "/proxy/json"
                    and set(value) == set(expected)
                ):
                    key = next(k for k in expected if value[k] != expected[k])
                    described = (
                        f"the upstream's keys, but {key!r} was {clip(repr(value[key]), 50)} "
                        f"instead of {clip(repr(expected[key]), 50)}"
                    )
                raise table.broken(
                    "wrong-body",
                    f"GET {path} answered {described}; expected {what}, unchanged.",
                )


def _judge_state(table: Task, seen: Observed, effect: str) -> None:
    """Raise session-not-in-app if an app's session is not in its state (``effect``: seen)."""
    for run in seen.runs:
        if run.startup_sessions and not run.in_state:
            raise table.broken(
                "session-not-in-app",
                f"app {run.label}'s session is not stored in its state (no value of the app "
                f"is the ClientSession it created), and {effect}: a module-level variable "
                "that the second app overwrote?",
            )


def _judge_sessions(table: Task, seen: Observed, *, not_shared: bool = False) -> None:
    lazy = len(seen.lazy_sessions)
    if lazy >= seen.requests // 2:
        raise table.broken(
            "session-per-request",
            f"{plural(lazy, 'ClientSession')} were created while your apps handled "
            f"{seen.requests} requests.",
        )
    for run in seen.runs:
        count = len(run.startup_sessions)
        if count == 2 and not_shared:
            raise table.broken(
                "not-shared",
                f"app {run.label} created 2 ClientSessions at start-up, and its two routes "
                "used one each.",
            )
        if count > 1:
            raise table.broken(
                "several-sessions",
                f"app {run.label} created {count} ClientSessions at start-up; one is enough "
                "for the whole app, its start-up steps and its handlers.",
            )
    if lazy:
        raise table.broken(
            "session-made-lazily",
            f"{plural(lazy, 'ClientSession')} {'was' if lazy == 1 else 'were'} created while "
            "a request was handled (on first use), not while the app started.",
        )
    if not any(run.startup_sessions for run in seen.runs):
        raise table.broken(
            "no-session-created", "the applications never created a ClientSession."
        )
    for run in seen.runs:
        if run.closed_at_shutdown:
            raise table.broken(
                "closed-at-shutdown",
                f"app {run.label}'s ClientSession was already closed by the end of "
                "on_shutdown, before aiohttp waited for the requests still in flight.",
            )
    left = [s for s in seen.all_sessions() if not s.closed]
    if left:
        raise table.broken(
            "session-left-open",
            f"{plural(len(left), 'ClientSession')} of your apps stayed open after the apps "
            "were cleaned up.",
        )
    for run in seen.runs:
        if not run.in_state:
            raise table.broken(
                "session-not-in-app",
                f"app {run.label}'s session is not stored in its state: no value of the app "
                "is a ClientSession it created.",
            )


def _judge_reuse(table: Task, seen: Observed) -> None:
    for run in seen.runs:
        start, end = run.sequential
        ports = {port for _, port in run.upstream.requests[start:end]}
        if end - start >= 2 and len(ports) >= end - start:
            raise table.broken(
                "no-reuse",
                f"upstream {run.label} saw {plural(len(ports), 'connection')} for "
                f"{end - start} requests sent to app {run.label} one at a time.",
            )


async def _expect_no_leak_on_failed_start(
    table: Task, learner: Callable[[str], Any], spy: SessionSpy, url: str
) -> None:
    """A start-up that fails after the learner's steps ran must leave no session open."""

    async def fail(app: web.Application) -> None:
        raise CheckStartupFailure("a start-up step the check added failed")

    app, _ = await _build(table, learner, url, spy)
    app.on_startup.append(fail)  # after every context and every on_startup callback
    before = len(spy.sessions)
    with warnings.catch_warnings(record=True), captured_server_errors():
        with contextlib.suppress(CheckStartupFailure):
            async with serve(app, shutdown_timeout=SHUTDOWN_SECONDS):
                pass
    left = [s for s in spy.sessions[before:] if not s.closed]
    if left:
        via = " (your app closes it in on_cleanup)" if len(app.on_cleanup) > 1 else ""
        raise table.broken(
            "leak-after-failed-start",
            f"the check added a start-up step that fails after yours; then runner.cleanup() "
            f"ran, and {plural(len(left), 'ClientSession')} your app had opened stayed open"
            f"{via}.",
        )


def _scenario(name: str, statuses: tuple[int, int] = (200, 200)) -> list[Upstream]:
    rng = random.Random(f"{SEED}-{name}")
    return [Upstream(label, rng, status) for label, status in zip("AB", statuses, strict=True)]


async def _two_apps(
    table: Task,
    learner: Callable[[str], Any],
    spy: SessionSpy,
    upstreams: list[Upstream],
    paths: list[str],
    start_problem: str = "start-up-failed",
) -> Observed:
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(u.app())) for u in upstreams]
        seen = await _serve_two(
            table, learner, spy, list(zip(upstreams, urls, strict=True)), paths
        )
    _judge_build(table, seen)
    _judge_start(table, seen, start_problem)
    _judge_handlers(table, seen)
    _judge_answers(table, seen)
    return seen


# --- task 1: one shared session -------------------------------------------------------------


@check(SHARED_SESSION)
async def shared_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Two apps, two upstreams: GET /proxy/json through one app-owned session, closed."""
    upstreams = _scenario("shared_session")
    seen = await _two_apps(
        SHARED_SESSION, learner, spy, upstreams, ["/proxy/json"] * (SEQUENTIAL + BURST)
    )
    _judge_sessions(SHARED_SESSION, seen)
    _judge_reuse(SHARED_SESSION, seen)
    async with serve(upstreams[0].app()) as url:
        await _expect_no_leak_on_failed_start(SHARED_SESSION, learner, spy, url)
    return (
        f"two apps served at once each answered its own upstream's document "
        f"{SEQUENTIAL + BURST} times through one session owned by the app, reusing its "
        "connection, closed at clean-up, and closed too when a later start-up step failed."
    )


# --- task 2: a second handler, the same session ----------------------------------------------


@check(SECOND_ROUTE)
async def second_route(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """GET /proxy/json and GET /proxy/uuid, on two apps, through each app's one session."""
    upstreams = _scenario("second_route")
    paths = ["/proxy/uuid", "/proxy/json"] * ((SEQUENTIAL + BURST) // 2)
    seen = await _two_apps(SECOND_ROUTE, learner, spy, upstreams, paths)
    for run in seen.runs:
        answered = [
            json.loads(raw)["uuid"] for path, _, raw in run.answers if path == "/proxy/uuid"
        ]
        if len(set(answered)) < len(answered):
            raise SECOND_ROUTE.broken(
                "cached-answer",
                f"{len(answered)} calls to GET /proxy/uuid on app {run.label} answered "
                f"{plural(len(set(answered)), 'distinct UUID')}; its upstream was asked for "
                f"{plural(run.upstream.paths_since(0).count('/uuid'), 'UUID')}.",
            )
    _judge_sessions(SECOND_ROUTE, seen, not_shared=True)
    _judge_reuse(SECOND_ROUTE, seen)
    async with serve(upstreams[0].app()) as url:
        await _expect_no_leak_on_failed_start(SECOND_ROUTE, learner, spy, url)
    return (
        "on two apps served at once, both routes answered their own upstream's fresh "
        "documents through the same session, closed at clean-up (after a failed start-up "
        "too)."
    )


# --- task 3: fail fast at start-up, and clean up what did start -----------------------------


@dataclass
class StartAttempt:
    label: str
    status: int | None
    start_error: BaseException | None
    cleanup_error: BaseException | None
    sessions: list[aiohttp.ClientSession]
    on_cleanup_callbacks: int
    hung: bool
    health_requests: int
    sleeps: list[observe.Sleep]
    waited: float = 0.0

    @property
    def started(self) -> bool:
        return self.start_error is None and not self.hung

    @property
    def left_open(self) -> int:
        return sum(not session.closed for session in self.sessions)


async def _try_to_start(
    learner: Callable[[str], Any], label: str, url: str, spy: SessionSpy, sick: Upstream | None
) -> StartAttempt:
    """Start the app as a careful host does (``try: setup() finally: cleanup()``)."""
    app, _ = await _build(FAIL_FAST, learner, url, spy)
    before = len(spy.sessions)
    seen_before = len(sick.requests) if sick else 0
    start_error = cleanup_error = None
    hung = False
    waited = 0.0
    obs = observe.current()
    with obs.window() as window, warnings.catch_warnings(record=True), captured_server_errors():
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        setup = asyncio.ensure_future(runner.setup())
        try:
            done, _ = await asyncio.wait({setup}, timeout=START_PATIENCE_SECONDS)
            retried = (sick is not None and sick.paths_since(seen_before).count("/get") > 1) or any(
                s.delay > 0 for s in window.sleeps
            )
            waited = START_PATIENCE_SECONDS
            if not done and not retried:
                done, _ = await asyncio.wait({setup}, timeout=LOADED_EXTRA_SECONDS)
                waited += LOADED_EXTRA_SECONDS
            if not done:
                hung = True
                setup.cancel()
                await asyncio.wait({setup})
            elif setup.exception() is not None:
                start_error = setup.exception()
                if isinstance(start_error, NotImplementedError):
                    raise start_error
        finally:
            try:
                await runner.cleanup()
            except Exception as error:
                cleanup_error = error
    own = len(app.on_cleanup) - 1  # aiohttp's own entry runs the cleanup contexts
    health = sick.paths_since(seen_before).count("/get") if sick else 0
    return StartAttempt(
        label,
        sick.get_status if sick else None,
        start_error,
        cleanup_error,
        spy.sessions[before:],
        own,
        hung,
        health,
        [s for s in window.sleeps if s.delay > 0],
        waited,
    )


def _status_label(status: int) -> str:
    return f"answered {status} {HTTPStatus(status).phrase} to GET /get"


def _labels(attempts: list[StartAttempt]) -> str:
    """"answered 503, 404 to GET /get, and refused connections": the attempts, in short."""
    statuses = [str(a.status) for a in attempts if a.status]
    parts = [f"answered {', '.join(statuses)} to GET /get"] if statuses else []
    parts += ["refused connections" for a in attempts if not a.status]
    return " and ".join(parts)


def _short(error: BaseException | None) -> str:
    if isinstance(error, aiohttp.ClientResponseError):
        return f"ClientResponseError {error.status}"
    return clip(exception_text(error), 70) if error is not None else "?"


@check(FAIL_FAST)
async def fail_fast(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """Healthy upstreams (200, 204): starts and serves. Sick or absent: fails at once, no leak."""
    upstreams = _scenario("fail_fast", HEALTHY_STATUSES)
    paths = ["/proxy/json", "/proxy/uuid"] * ((SEQUENTIAL + BURST) // 2)
    seen = await _two_apps(
        FAIL_FAST, learner, spy, upstreams, paths, start_problem="refuses-healthy-upstream"
    )
    _judge_sessions(FAIL_FAST, seen)
    _judge_reuse(FAIL_FAST, seen)
    rng = random.Random(f"{SEED}-fail_fast-sick")
    statuses = list(SICK_STATUSES)
    rng.shuffle(statuses)
    sick = Upstream("sick", rng)
    attempts = []
    async with serve(sick.app()) as sick_url:
        for status in statuses:
            sick.get_status = status
            attempt = await _try_to_start(learner, _status_label(status), sick_url, spy, sick)
            attempts.append(attempt)
            if attempt.hung:
                break
    if not attempts[-1].hung:
        refused = await _try_to_start(learner, "refused connections", refused_url(), spy, None)
        attempts.append(refused)
    _judge_attempts(attempts)
    return (
        f"it starts and serves with upstreams answering {HEALTHY_STATUSES[0]} and "
        f"{HEALTHY_STATUSES[1]}; against {', '.join(map(str, statuses))} and a refused port "
        "start-up fails at once, clean-up does not crash, and no session is left open."
    )


def _judge_attempts(attempts: list[StartAttempt]) -> None:
    for attempt in attempts:
        if attempt.hung:
            asked = ""
            if attempt.sleeps:
                total = sum(s.delay for s in attempt.sleeps)
                asked = (
                    f", and asked asyncio.sleep for {total:.2g} s in all "
                    f"({attempt.sleeps[0].where})"
                )
            raise FAIL_FAST.broken(
                "waits-for-upstream",
                f"start-up was still running after {attempt.waited:g} s against an "
                f"upstream that {attempt.label}: it sent "
                f"{plural(attempt.health_requests, 'GET /get request')}{asked}.",
            )
    started = [a for a in attempts if a.started]
    if started:
        refused = [a for a in attempts if not a.started]
        hint = None
        if refused and all(a.status and a.status < 500 for a in started):
            hint = (
                "a 4xx is an error status too: raise for every status from 400 up, which "
                "`response.raise_for_status()` does (or `if not response.ok: raise ...`)."
            )
        raise FAIL_FAST.broken(
            "starts-anyway",
            f"the application started although its upstream {_labels(started)}"
            + (f" (start-up did fail when it {_labels(refused)})." if refused else "."),
            hint,
        )
    for attempt in attempts:
        if attempt.cleanup_error is not None:
            raise FAIL_FAST.broken(
                "cleanup-crashed",
                f"after the failed start-up (upstream {attempt.label}), clean-up raised "
                f"{_short(attempt.cleanup_error)}{_at(attempt.cleanup_error)}.",
            )
    for attempt in attempts:
        if attempt.left_open:
            via = (
                " Your app closes it in on_cleanup, which aiohttp skips after a failed "
                "start-up."
                if attempt.on_cleanup_callbacks
                else ""
            )
            raise FAIL_FAST.broken(
                "leak-after-failed-start",
                f"start-up failed (upstream {attempt.label}: {_short(attempt.start_error)}), and "
                f"{plural(attempt.left_open, 'ClientSession')} opened before the failure "
                f"stayed open after runner.cleanup().{via}",
            )
