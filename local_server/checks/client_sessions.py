"""Checks for exercise 01, client sessions: ``from local_server.checks import client_sessions``."""

from __future__ import annotations

import inspect
import json
import secrets
from typing import Any

import aiohttp

from ..runner import LocalServer
from .harness import (
    Mistake,
    SessionSpy,
    call_async,
    check,
    expect_one_result_per_url,
    plural,
)

URL_COUNT = 20
DELAY_SECONDS = 0.1


@check("fetch_all")
async def fetch_all(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``fetch_all(urls)`` returns every body as text, in order, concurrently, with one session."""
    urls = [f"{server.url}/delay/{DELAY_SECONDS}?item={i}" for i in range(URL_COUNT)]
    bodies = await call_async("fetch_all", learner, urls)
    _expect_bodies_in_order(bodies)
    stats = server.stats()
    if spy.created > 1:
        raise Mistake(
            "session-per-request",
            f"{plural(spy.created, 'session')} were created for {URL_COUNT} URLs.",
            "create one ClientSession in fetch_all and pass it to every request: a session "
            "owns the connection pool, so a new one per request starts from nothing each time.",
        )
    if spy.created == 0:
        raise Mistake(
            "no-session-created",
            "fetch_all created no ClientSession: it used one made elsewhere.",
            "open the session inside fetch_all with `async with aiohttp.ClientSession() as "
            "session:` so it is closed when fetch_all is done.",
        )
    if spy.left_open:
        raise Mistake(
            "session-left-open",
            "the session was still open after fetch_all returned.",
            "use `async with aiohttp.ClientSession() as session:` so it is closed even when a "
            "request fails.",
        )
    if stats.max_in_flight == 1:
        raise Mistake(
            "sequential",
            f"the server received the {URL_COUNT} requests one at a time.",
            "awaiting each request in a loop waits for one before starting the next: create "
            "all the coroutines, then `await asyncio.gather(*coroutines)`.",
        )
    return (
        f"{URL_COUNT} bodies in order, fetched concurrently through one session, "
        "which was closed afterwards."
    )


def _expect_bodies_in_order(bodies: Any) -> None:
    bodies = expect_one_result_per_url("fetch_all", bodies, URL_COUNT, "strings")
    first = bodies[0]
    if isinstance(first, (bytes, bytearray)):
        raise Mistake(
            "bytes-not-text",
            "fetch_all returned bytes; the task asks for text.",
            "use `await response.text()`, which decodes with the response's charset.",
        )
    if not isinstance(first, str):
        raise Mistake(
            "not-text",
            f"fetch_all returned a list of {type(first).__name__}; the task asks for the text.",
            "use `await response.text()` (not `.json()`, and not the response object itself).",
        )
    items = [json.loads(body).get("args", {}).get("item") for body in bodies]
    if items != [str(i) for i in range(URL_COUNT)]:
        raise Mistake(
            "wrong-order",
            "the bodies came back in a different order than the URLs.",
            "asyncio.gather returns results in the order of its arguments; "
            "asyncio.as_completed yields them as they finish.",
        )


@check("make_api_session")
async def make_api_session(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``make_api_session(base_url, token)`` returns a session with base_url and default headers."""
    token = secrets.token_hex(4)
    session = learner(server.url, token)
    if inspect.isawaitable(session):
        session = await session
    if not isinstance(session, aiohttp.ClientSession):
        raise Mistake(
            "not-a-session",
            f"make_api_session returned {type(session).__name__}; expected a ClientSession.",
            "return `aiohttp.ClientSession(base_url=..., headers=...)` itself.",
        )
    if session.closed:
        raise Mistake(
            "returned-closed",
            "make_api_session returned a session that is already closed.",
            "`async with` closes the session when its block ends. Return the open session and "
            "let the caller close it (`async with make_api_session(...) as session:`).",
        )
    async with session:
        seen = await _headers_seen_via(session)
    return _judge_default_headers(seen, token)


async def _headers_seen_via(session: aiohttp.ClientSession) -> dict[str, str]:
    try:
        async with session.get("/headers") as response:
            response.raise_for_status()
            return (await response.json())["headers"]
    except aiohttp.InvalidURL as exc:
        raise Mistake(
            "no-base-url",
            f"session.get('/headers') failed with {type(exc).__name__}: a relative path needs "
            "a base URL.",
            "pass `base_url=base_url` to aiohttp.ClientSession.",
        ) from None


def _judge_default_headers(seen: dict[str, str], token: str) -> str:
    expected = f"Bearer {token}"
    authorization = seen.get("Authorization")
    if authorization is None:
        raise Mistake(
            "no-auth-header",
            "the server received no Authorization header.",
            "pass `headers={'Authorization': f'Bearer {token}'}` to ClientSession: session "
            "headers are sent with every request.",
        )
    if authorization != expected:
        raise Mistake(
            "wrong-auth-header",
            f"the server received Authorization: {authorization!r}, expected 'Bearer <token>' "
            "with the token you were given.",
            "the value is the word Bearer, one space, then the token argument.",
        )
    accept = seen.get("Accept")
    if accept != "application/json":
        raise Mistake(
            "wrong-accept-header",
            f"the server received Accept: {accept!r}, expected 'application/json'.",
            "add `'Accept': 'application/json'` to the session's headers.",
        )
    return (
        "a relative path reached the base URL, with Authorization: Bearer <token> and "
        "Accept: application/json sent by the session itself."
    )


class _Probe(Exception):
    """Raised by the check inside the learner's ``async with`` block."""


CALLS = 3


@check("ApiClient")
async def ApiClient(learner: Any, server: LocalServer, spy: SessionSpy) -> str:
    """``async with ApiClient(base_url) as api`` opens one session and always closes it."""
    async with learner(server.url) as api:
        if api is None:
            raise Mistake(
                "aenter-returns-none",
                "`async with ApiClient(...) as api` gave api = None.",
                "__aenter__ must `return self`.",
            )
        replies = [await api.get_json(f"/get?call={i}") for i in range(CALLS)]
    _expect_replies(replies)
    if spy.created > 1:
        raise Mistake(
            "session-per-call",
            f"{CALLS} calls created {plural(spy.created, 'session')}.",
            "create the session once, in __init__ or __aenter__, store it on self, and reuse "
            "it in get_json.",
        )
    if spy.created == 1 and spy.left_open:
        raise Mistake(
            "not-closed-on-exit",
            "the session was still open after the `async with` block ended.",
            "close it in __aexit__: `await self._session.close()`.",
        )
    connections = server.stats().connections_opened
    if connections > 1:
        raise Mistake(
            "connections-not-reused",
            f"{CALLS} sequential calls used {connections} TCP connections instead of 1.",
            "read each body inside `async with session.get(...) as response:` so the "
            "connection goes back to the pool.",
        )
    await _expect_closed_after_error(learner, server, spy)
    return (
        f"{CALLS} calls through one session and one connection; the session was closed on "
        "exit, even when the block raised."
    )


def _expect_replies(replies: list[Any]) -> None:
    for i, reply in enumerate(replies):
        if not isinstance(reply, dict) or reply.get("args", {}).get("call") != str(i):
            raise Mistake(
                "wrong-json",
                f"get_json('/get?call={i}') returned {reply!r:.80}; expected the server's JSON.",
                "return `await response.json()` from a GET to the path, relative to base_url.",
            )


async def _expect_closed_after_error(learner: Any, server: LocalServer, spy: SessionSpy) -> None:
    before = spy.created
    try:
        async with learner(server.url) as api:
            await api.get_json("/get")
            raise _Probe
    except _Probe:
        pass
    else:
        raise Mistake(
            "swallowed-exception",
            "an exception raised inside `async with ApiClient(...)` disappeared.",
            "__aexit__ should return None (or False) so the caller's error propagates.",
        )
    if any(not session.closed for session in spy.sessions[before:]):
        raise Mistake(
            "not-closed-on-error",
            "when the `async with` block raised, the session stayed open.",
            "close the session in __aexit__, which runs on errors too.",
        )
