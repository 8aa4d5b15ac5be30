"""Exercise 19's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here (or in ``adversarial/ex19_serving_more_than_json.py``) that breaks it.
Each wrong answer here changes one thing in a correct one, so that it breaks one rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import random
from pathlib import Path

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong
from aiohttp import web
from aiohttp_sse import sse_response

from local_server.checks import serving_more as check
from local_server.serving import serve

# --- Task 1 · static_app: a safe handler whose way of answering can be swapped ------------------


def _inside(root: Path, name: str) -> Path | None:
    base = root.resolve()
    path = (base / name).resolve()
    return path if path.is_relative_to(base) and path.is_file() else None


def _etag(path: Path) -> str:
    stat = path.stat()
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'  # as web.FileResponse makes it


def _not_modified(request: web.Request, path: Path) -> bool:
    stat = path.stat()
    if request.if_none_match:
        return any(tag.value == _etag(path).strip('"') for tag in request.if_none_match)
    since = request.if_modified_since
    return since is not None and int(stat.st_mtime) <= since.timestamp()


def _headers_for(response: web.StreamResponse, path: Path) -> None:
    response.content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response.last_modified = path.stat().st_mtime
    response.headers["ETag"] = _etag(path)


async def _stream_file(request: web.Request, path: Path, *, in_thread: bool = True,
                       close: bool = True, catch: bool = True) -> web.StreamResponse:  # fmt: skip
    """A file streamed by hand: conditional GETs answered, Range left to FileResponse."""
    if request.http_range.start is not None or request.http_range.stop is not None:
        return web.FileResponse(path)
    if _not_modified(request, path):
        raise web.HTTPNotModified()
    response = web.StreamResponse()
    _headers_for(response, path)
    response.content_length = path.stat().st_size
    await response.prepare(request)
    file = await asyncio.to_thread(open, path, "rb")
    try:
        while True:
            chunk = await asyncio.to_thread(file.read, 65_536) if in_thread else file.read(65_536)
            if not chunk:
                break
            await response.write(chunk)
    except ConnectionError:
        if not catch:
            raise
        if not close:
            return response  # the file stays open
    finally:
        if close or not catch:
            file.close()
    file.close()
    return response


def static_app_with(answer, route: str = "/files/{name:.+}", missing=web.HTTPNotFound):
    """A factory whose handler finds the file safely and lets ``answer`` reply."""

    def factory(root: Path) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            path = _inside(root, request.match_info["name"])
            if path is None:
                raise missing()
            return await answer(request, path)

        app = web.Application()
        app.router.add_get(route, handler)
        return app

    return factory


async def file_response(request: web.Request, path: Path) -> web.StreamResponse:
    return web.FileResponse(path)


@correct(check.static_app, "web.static() in add_routes")
def static_web_static(root: Path) -> web.Application:
    app = web.Application()
    app.add_routes([web.static("/files", root)])
    return app


@correct(check.static_app, "a RouteTableDef handler returning FileResponse, 403 outside")
def static_route_table(root: Path) -> web.Application:
    routes = web.RouteTableDef()
    base = root.resolve()

    @routes.get("/files/{name:.+}")
    async def handler(request: web.Request) -> web.FileResponse:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base):
            raise web.HTTPForbidden(text="outside the folder")
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.add_routes(routes)
    return app


async def _stream_correctly(request: web.Request, path: Path) -> web.StreamResponse:
    return await _stream_file(request, path)


@correct(check.static_app, "streamed by hand: reads in a thread, 304s answered, file closed")
def static_by_hand(root: Path) -> web.Application:
    return static_app_with(_stream_correctly)(root)


@wrong(check.static_app, "forgets to return the app", problem="not-an-application")
def static_no_return(root: Path):
    app = web.Application()
    app.router.add_static("/files", root)


@wrong(check.static_app, "a start-up step that fails", problem="start-up-failed")
def static_failing_startup(root: Path) -> web.Application:
    async def check_root(app: web.Application) -> None:
        raise RuntimeError(f"no index.html in {root.name}")

    app = web.Application()
    app.router.add_static("/files", root)
    app.on_startup.append(check_root)
    return app


@wrong(check.static_app, "a route without subfolders: /files/{name}", problem="bad-status")
def static_no_subfolders(root: Path) -> web.Application:
    return static_app_with(file_response, route="/files/{name}")(root)


async def _text_reply(request: web.Request, path: Path) -> web.StreamResponse:
    if request.if_modified_since or request.if_none_match or request.http_range.start is not None:
        return web.FileResponse(path)
    text = await asyncio.to_thread(path.read_text, errors="replace")
    response = web.Response(text=text)
    _headers_for(response, path)
    return response


@wrong(check.static_app, "reads every file as text: a binary file is changed", problem="wrong-body")
def static_as_text(root: Path) -> web.Application:
    return static_app_with(_text_reply)(root)


async def _octet_stream(request: web.Request, path: Path) -> web.StreamResponse:
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


@wrong(check.static_app, "labels every file application/octet-stream",
       problem="wrong-content-type")  # fmt: skip
def static_octet_stream(root: Path) -> web.Application:
    return static_app_with(_octet_stream)(root)


@wrong(check.static_app, "a missing file is 403, not 404", problem="missing-not-404")
def static_missing_403(root: Path) -> web.Application:
    return _missing_forbidden(root)


def _missing_forbidden(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.StreamResponse:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base):
            raise web.HTTPNotFound()
        if not path.exists():
            raise web.HTTPForbidden(text="no such file")
        if path.is_dir():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


@wrong(check.static_app, "add_static with show_index=True lists folders", problem="folder-listed")
def static_show_index(root: Path) -> web.Application:
    app = web.Application()
    app.router.add_static("/files", root, show_index=True)
    return app


async def _cheap_cache(request: web.Request, path: Path) -> web.StreamResponse:
    if request.if_modified_since is not None or request.if_none_match:
        raise web.HTTPNotModified()  # "the client has it already"
    return web.FileResponse(path)


@wrong(check.static_app, "answers 304 to any conditional GET", problem="wrong-304")
def static_always_304(root: Path) -> web.Application:
    return static_app_with(_cheap_cache)(root)


async def _no_range(request: web.Request, path: Path) -> web.StreamResponse:
    if _not_modified(request, path):
        raise web.HTTPNotModified()
    response = web.StreamResponse()
    _headers_for(response, path)
    response.content_length = path.stat().st_size
    await response.prepare(request)
    with open(path, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, 65_536):
            await response.write(chunk)
    return response


@wrong(check.static_app, "streams by hand, 304s right, but ignores Range", problem="no-range")
def static_ignores_range(root: Path) -> web.Application:
    return static_app_with(_no_range)(root)


async def _whole(request: web.Request, path: Path) -> web.StreamResponse:
    if request.if_modified_since or request.if_none_match or request.http_range.start is not None:
        return web.FileResponse(path)
    response = web.Response(body=await asyncio.to_thread(path.read_bytes))
    _headers_for(response, path)
    return response


@wrong(check.static_app, "reads the whole file (in a thread) into a Response",
       problem="whole-file-in-memory")  # fmt: skip
def static_whole_file(root: Path) -> web.Application:
    return static_app_with(_whole)(root)


async def _on_loop(request: web.Request, path: Path) -> web.StreamResponse:
    return await _stream_file(request, path, in_thread=False)


@wrong(check.static_app, "streams by hand, reading chunks on the loop's thread",
       problem="reads-on-loop")  # fmt: skip
def static_reads_on_loop(root: Path) -> web.Application:
    return static_app_with(_on_loop)(root)


async def _left_open(request: web.Request, path: Path) -> web.StreamResponse:
    return await _stream_file(request, path, close=False)


@wrong(check.static_app, "returns on a lost client without closing the file",
       problem="file-left-open")  # fmt: skip
def static_file_left_open(root: Path) -> web.Application:
    return static_app_with(_left_open)(root)


async def _uncaught(request: web.Request, path: Path) -> web.StreamResponse:
    return await _stream_file(request, path, catch=False)


@wrong(check.static_app, "lets a lost client's ConnectionError escape", problem="error-logged")
def static_error_escapes(root: Path) -> web.Application:
    return static_app_with(_uncaught)(root)


# --- Task 2 · export_app -----------------------------------------------------------------------


def export_app_with(write_all, route: str = "/export", content_type: str = "application/x-ndjson"):
    def factory(records) -> web.Application:
        async def export(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            response.content_type = content_type
            await response.prepare(request)
            try:
                await write_all(response, records)
            except ConnectionError:
                return response
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_get(route, export)
        return app

    return factory


async def one_per_record(response: web.StreamResponse, records) -> None:
    async for record in records():
        await response.write(json.dumps(record).encode() + b"\n")


@correct(check.export_app, "UTF-8 lines (ensure_ascii=False), chunked encoding asked for")
def export_utf8(records) -> web.Application:
    async def write_all(response: web.StreamResponse, records) -> None:
        async for record in records():
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            await response.write(line.encode("utf-8"))

    return export_app_with(write_all, content_type="application/x-ndjson")(records)


@correct(check.export_app, "an async-generator helper that yields lines")
def export_lines_helper(records) -> web.Application:
    async def lines(records):
        async for record in records():
            yield (json.dumps(record) + "\n").encode()

    async def write_all(response: web.StreamResponse, records) -> None:
        async with contextlib.aclosing(lines(records)) as source:
            async for line in source:
                await response.write(line)

    return export_app_with(write_all)(records)


@wrong(check.export_app, "returns the handler, not the app", problem="not-an-application")
def export_returns_handler(records):
    async def export(request: web.Request) -> web.Response:
        return web.Response()

    return export


@wrong(check.export_app, "an on_startup that is a plain function", problem="start-up-failed")
def export_sync_startup(records) -> web.Application:
    app = export_app_with(one_per_record)(records)
    app.on_startup.append(lambda app: None)
    return app


@wrong(check.export_app, "writes str instead of bytes: the handler fails", problem="handler-raised")
def export_writes_str(records) -> web.Application:
    async def write_all(response: web.StreamResponse, records) -> None:
        async for record in records():
            await response.write(json.dumps(record) + "\n")

    return export_app_with(write_all)(records)


@wrong(check.export_app, "the route is /exports", problem="bad-status")
def export_wrong_route(records) -> web.Application:
    return export_app_with(one_per_record, route="/exports")(records)


@wrong(check.export_app, "stops after 30 records, a limit of its own", problem="wrong-records")
def export_limit_30(records) -> web.Application:
    async def write_all(response: web.StreamResponse, records) -> None:
        count = 0
        async for record in records():
            await response.write(json.dumps(record).encode() + b"\n")
            count += 1
            if count == 30:
                break

    return export_app_with(write_all)(records)


@wrong(check.export_app, "labels the export text/plain", problem="wrong-content-type")
def export_text_plain(records) -> web.Application:
    return export_app_with(one_per_record, content_type="text/plain")(records)


# --- Task 3 · feed_app -------------------------------------------------------------------------


def _after(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID", "0")
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest() from None


def feed_app_with(events, route: str = "/events"):
    def factory(feed) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            after = _after(request)
            try:
                async with sse_response(request) as stream:
                    await events(stream, feed, after)
            except ConnectionError:
                pass
            return stream

        app = web.Application()
        app.router.add_get(route, handler)
        return app

    return factory


async def send_events(stream, feed, after: int) -> None:
    async for event in feed.subscribe(after=after):
        await stream.send(event.data, id=str(event.id))


@correct(check.feed_app, "a bad Last-Event-ID replays the whole feed; a retry: sent first")
def feed_replays_on_bad_id(feed) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        value = request.headers.get("Last-Event-ID", "")
        after = int(value) if value.isdigit() else 0
        try:
            async with sse_response(request) as stream:
                first = True
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data, id=str(event.id), retry=2000 if first else None)
                    first = False
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", handler)
    return app


@correct(check.feed_app, "the feed under an AppKey, a class-based view")
def feed_view(feed) -> web.Application:
    feed_key = web.AppKey("feed", check.Feed)

    class Events(web.View):
        async def get(self) -> web.StreamResponse:
            after = _after(self.request)
            try:
                async with sse_response(self.request) as stream:
                    await send_events(stream, self.request.app[feed_key], after)
            except ConnectionError:
                pass
            return stream

    app = web.Application()
    app[feed_key] = feed
    app.router.add_view("/events", Events)
    return app


@wrong(check.feed_app, "forgets to return the app", problem="not-an-application")
def feed_no_return(feed):
    feed_app_with(send_events)(feed)


@wrong(check.feed_app, "a start-up step that fails", problem="start-up-failed")
def feed_failing_startup(feed) -> web.Application:
    async def needs_history(app: web.Application) -> None:
        if len(feed.events) < 100:
            raise RuntimeError("the feed has too little history to start")

    app = feed_app_with(send_events)(feed)
    app.on_startup.append(needs_history)
    return app


async def _send_event_objects(stream, feed, after: int) -> None:
    async for event in feed.subscribe(after=after):
        await stream.send(event, id=str(event.id))


@wrong(check.feed_app, "passes the Event itself to send(): TypeError", problem="handler-raised")
def feed_sends_event_object(feed) -> web.Application:
    return feed_app_with(_send_event_objects)(feed)


@wrong(check.feed_app, "the route is /event", problem="bad-status")
def feed_wrong_route(feed) -> web.Application:
    return feed_app_with(send_events, route="/event")(feed)


async def _only_new(stream, feed, after: int) -> None:
    start = after or (feed.events[-1].id if feed.events else 0)
    await send_events(stream, feed, start)


@wrong(check.feed_app, "without Last-Event-ID, sends only new events", problem="history-missing")
def feed_only_new(feed) -> web.Application:
    return feed_app_with(_only_new)(feed)


async def _history_only(stream, feed, after: int) -> None:
    for event in list(feed.events):
        if event.id > after:
            await stream.send(event.data, id=str(event.id))


@wrong(check.feed_app, "sends the stored events and stops: nothing live", problem="not-live")
def feed_history_only(feed) -> web.Application:
    return feed_app_with(_history_only)(feed)


FEED = None


@wrong(check.feed_app, "keeps the feed in a module-level variable", problem="wrong-feed")
def feed_global(feed) -> web.Application:
    global FEED
    FEED = feed

    async def events(stream, _feed, after: int) -> None:
        await send_events(stream, FEED, after)

    return feed_app_with(events)(feed)


# --- Task 4 · room_app -------------------------------------------------------------------------

MEMBERS = web.AppKey("members", dict)


def room_app_with(
    *,
    maxsize: int = 100,
    on_full: str = "close",
    full_code: int = 1008,
    queue=asyncio.Queue,
    transform=lambda text: text,
    join_late: bool = False,
    tell_raises: bool = False,
    parse_json: bool = False,
) -> web.Application:
    """A bounded-outbox room (correct by default) with one thing changed."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        outbox = queue(maxsize=maxsize)
        members = request.app[MEMBERS]

        async def pump() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await ws.send_str(await outbox.get())

        closing: set[asyncio.Task] = set()

        def tell(other: web.WebSocketResponse, text: str) -> None:
            if tell_raises and other.closed:
                raise ConnectionResetError("member gone")
            box = members[other][0]
            try:
                box.put_nowait(text)
            except asyncio.QueueFull:
                if on_full == "close":
                    task = asyncio.ensure_future(_close(other, full_code))
                    closing.add(task)
                    task.add_done_callback(closing.discard)

        sender = asyncio.create_task(pump())
        if not join_late:
            members[ws] = (outbox, sender)
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                if parse_json:
                    json.loads(message.data)
                members.setdefault(ws, (outbox, sender))
                for other in list(members):
                    if other is not ws:
                        tell(other, transform(message.data))
        except ConnectionError:
            pass
        finally:
            if not tell_raises:
                members.pop(ws, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _close(ws: web.WebSocketResponse, code: int) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(ws.close(code=code, message=b"too slow"), 1)

    async def shutdown(app: web.Application) -> None:
        await asyncio.gather(*(_close_going_away(ws) for ws in list(app[MEMBERS])))

    async def _close_going_away(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1)

    app = web.Application()
    app[MEMBERS] = {}
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


@correct(check.room_app, "the shared pieces: an outbox of 100, closed with 1008 when full")
def room_reference() -> web.Application:
    return room_app_with()


@correct(check.room_app, "an outbox of 20, the smallest the task allows; drops when full")
def room_outbox_20_drops() -> web.Application:
    return room_app_with(maxsize=20, on_full="drop")


@wrong(check.room_app, "returns nothing", problem="not-an-application")
def room_no_return():
    room_app_with()


@wrong(check.room_app, "an on_startup that is a plain function", problem="start-up-failed")
def room_sync_startup() -> web.Application:
    app = room_app_with()
    app.on_startup.append(lambda app: None)
    return app


@wrong(check.room_app, "parses every message as JSON: the handler fails", problem="handler-raised")
def room_parses_json() -> web.Application:
    return room_app_with(parse_json=True)


@wrong(check.room_app, "joins a member only once it has spoken", problem="not-broadcast")
def room_joins_late() -> web.Application:
    return room_app_with(join_late=True)


@wrong(check.room_app, "prefixes each message with 'someone: '", problem="lost-or-reordered")
def room_prefixes() -> web.Application:
    return room_app_with(transform=lambda text: "someone: " + text)


@wrong(check.room_app, "an outbox of 2: a burst gets fast members closed",
       problem="fast-member-dropped")  # fmt: skip
def room_outbox_2() -> web.Application:
    return room_app_with(maxsize=2)


@wrong(check.room_app, "closes a member whose outbox is full with 1000",
       problem="wrong-eviction-code")  # fmt: skip
def room_evicts_1000() -> web.Application:
    return room_app_with(full_code=1000)


@wrong(check.room_app, "never removes members; telling a closed one raises, ending the speaker",
       problem="member-left-breaks")  # fmt: skip
def room_tell_raises() -> web.Application:
    return room_app_with(tell_raises=True)


# --- running them all ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_verdicts_repeat():
    """Seeded scenarios: a wrong answer gets the same verdict each time."""
    first = check.static_app.diagnose(static_ignores_range)
    assert first == check.static_app.diagnose(static_ignores_range)


def test_a_missing_subfolder_route_is_named():
    verdict = check.static_app.diagnose(static_no_subfolders)
    assert verdict.problem == "bad-status" and "subfolder" in verdict.message


def test_a_stub_is_not_implemented():
    def create_static_app(root: Path) -> web.Application:
        raise NotImplementedError

    async def room(request: web.Request) -> web.WebSocketResponse:
        raise NotImplementedError

    def create_room_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/room", room)
        return app

    assert check.static_app.diagnose(create_static_app).problem == "not-implemented"
    assert check.room_app.diagnose(create_room_app).problem == "not-implemented"


async def test_feed_subscribe_history_then_live():
    feed = check.Feed(first_id=50, rng=random.Random(3))
    ids = [feed.publish(f"e{n}") for n in range(3)]
    assert ids[0] == 50 and ids == sorted(ids) and len(set(ids)) == 3
    got: list[check.Event] = []

    async def read() -> None:
        async for event in feed.subscribe(after=ids[0]):
            got.append(event)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    assert feed.subscribers == 1 and [e.id for e in got] == ids[1:]
    feed.publish("live")
    await asyncio.sleep(0.01)
    assert got[-1].data == "live"
    feed.close()
    await asyncio.wait_for(reader, 1)
    assert feed.subscribers == 0


async def test_the_checks_lagging_client_header_shrinks_only_its_buffer():
    """The instrumentation shrinks a lagging client's send buffer, nobody else's."""
    import socket

    sizes: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket")
        sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        return web.Response(text="ok")

    async def record_after(request: web.Request, response: web.StreamResponse) -> None:
        sock = request.transport.get_extra_info("socket")
        sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    app = web.Application()
    app.router.add_get("/", handler)
    check._instrument(app, check.Probe("t"))
    app.on_response_prepare.append(record_after)
    async with serve(app) as url, aiohttp.ClientSession() as client:
        for headers in ({}, {check.LAGGING: "1"}):
            async with client.get(url, headers=headers) as response:
                await response.read()
    assert sizes[1] == sizes[0] and sizes[3] <= 4 * check.SMALL_BUFFER < sizes[2]


def test_no_file_or_folder_is_left_behind(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert check.static_app.diagnose(static_web_static).passed
    assert os.listdir(tmp_path) == []
