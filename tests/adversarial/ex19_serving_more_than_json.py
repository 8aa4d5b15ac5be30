"""Learner answers to exercise 19 (serving more than JSON), right and wrong, from the task text.

Written from the exercise notebook alone, before its checks were finished: what a learner who
read lesson 19 would plausibly write for each task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from adversarial import correct, wrong
from local_server.checks import serving_more as check

# --- Task 1 · static_app ------------------------------------------------------------------------


@correct(check.static_app, "add_static, the one-liner")
def static_add_static(root: Path) -> web.Application:
    app = web.Application()
    app.router.add_static("/files", root, show_index=False, follow_symlinks=False)
    return app


@correct(check.static_app, "FileResponse after resolve() and is_relative_to()")
def static_resolve_relative(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.FileResponse:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base):
            raise web.HTTPForbidden()
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


@correct(check.static_app, "realpath + commonpath, a class-based view")
def static_commonpath_view(root: Path) -> web.Application:
    base = os.path.realpath(root)

    class FileView(web.View):
        async def get(self) -> web.StreamResponse:
            wanted = os.path.realpath(os.path.join(base, self.request.match_info["name"]))
            if os.path.commonpath([base, wanted]) != base:
                raise web.HTTPNotFound()
            if not os.path.isfile(wanted):
                raise web.HTTPNotFound()
            return web.FileResponse(wanted)

    app = web.Application()
    app.router.add_view("/files/{name:.*}", FileView)
    return app


@wrong(check.static_app, "joins the URL path onto root and serves it: `..` climbs out",
       problem="traversal")
def static_naive_join(root: Path) -> web.Application:
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / request.match_info["name"])

    app = web.Application()
    app.router.add_get("/files/{name:.*}", handler)
    return app


@wrong(check.static_app, "refuses '..' in the name, but an absolute path replaces root",
       problem="traversal")
def static_dotdot_only(root: Path) -> web.Application:
    async def handler(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if ".." in name:
            raise web.HTTPForbidden()
        return web.FileResponse(root / name)

    app = web.Application()
    app.router.add_get("/files/{name:.*}", handler)
    return app


@wrong(check.static_app, "compares resolved paths as strings: the sibling public-private/ passes",
       problem="traversal")
def static_startswith(root: Path) -> web.Application:
    base = str(root.resolve())

    async def handler(request: web.Request) -> web.FileResponse:
        path = (root / request.match_info["name"]).resolve()
        if not str(path).startswith(base):
            raise web.HTTPForbidden()
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.*}", handler)
    return app


@wrong(check.static_app, "normpath without resolving symlinks: a symlink leads out",
       problem="traversal")
def static_normpath(root: Path) -> web.Application:
    base = os.path.normpath(root)

    async def handler(request: web.Request) -> web.FileResponse:
        path = os.path.normpath(os.path.join(base, request.match_info["name"]))
        if not path.startswith(base + os.sep):
            raise web.HTTPForbidden()
        if not os.path.isfile(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.*}", handler)
    return app


@wrong(check.static_app, "add_static with follow_symlinks=True",
       problem="traversal")
def static_follow_symlinks(root: Path) -> web.Application:
    app = web.Application()
    app.router.add_static("/files", root, follow_symlinks=True)
    return app


@wrong(check.static_app, "a safe path, but the whole file read into a Response",
       problem="no-caching-headers")
def static_read_bytes(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.Response:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise web.HTTPNotFound()
        body = await asyncio.to_thread(path.read_bytes)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        stat = path.stat()
        return web.Response(
            body=body,
            content_type=content_type,
            headers={"ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'},
        )

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


@wrong(check.static_app, "streams in chunks, but reads them on the event loop's thread",
       problem="no-304")
def static_chunks_on_loop(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.StreamResponse:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise web.HTTPNotFound()
        response = web.StreamResponse()
        response.content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response.content_length = path.stat().st_size
        response.last_modified = path.stat().st_mtime
        response.etag = f"{path.stat().st_mtime_ns:x}"
        await response.prepare(request)
        with open(path, "rb") as file:
            while chunk := file.read(64 * 1024):
                await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


@wrong(check.static_app, "remembers the folder in a module-level variable: two apps share it",
       problem="wrong-root")
def static_global_root(root: Path) -> web.Application:
    global STATIC_ROOT
    STATIC_ROOT = root.resolve()

    async def handler(request: web.Request) -> web.FileResponse:
        path = (STATIC_ROOT / request.match_info["name"]).resolve()
        if not path.is_relative_to(STATIC_ROOT) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


STATIC_ROOT = Path(".")


@wrong(check.static_app, "resolve(strict=True): FileNotFoundError escapes, a missing file is 500",
       problem="handler-raised")
def static_strict_resolve(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.FileResponse:
        path = (base / request.match_info["name"]).resolve(strict=True)
        if not path.is_relative_to(base):
            raise web.HTTPForbidden()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


@wrong(check.static_app, "streams the file from a thread but ignores Range and conditional GETs",
       problem="no-304")
def static_stream_no_range(root: Path) -> web.Application:
    base = root.resolve()

    async def handler(request: web.Request) -> web.StreamResponse:
        path = (base / request.match_info["name"]).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise web.HTTPNotFound()
        stat = path.stat()
        response = web.StreamResponse()
        response.content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response.content_length = stat.st_size
        response.last_modified = stat.st_mtime
        response.etag = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
        await response.prepare(request)
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, 64 * 1024):
                await response.write(chunk)
        return response

    app = web.Application()
    app.router.add_get("/files/{name:.+}", handler)
    return app


# --- Task 2 · export_app ------------------------------------------------------------------------


@correct(check.export_app, "await write per record, aclosing the source, ConnectionError caught")
def export_aclosing(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            async with contextlib.aclosing(records()) as source:
                async for record in source:
                    await response.write((json.dumps(record) + "\n").encode("utf-8"))
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@correct(check.export_app, "a producer task and a bounded queue of 16, cancelled on the way out")
def export_bounded_queue(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=16)
        done = object()

        async def produce() -> None:
            async for record in records():
                await queue.put(json.dumps(record, ensure_ascii=False) + "\n")
            await queue.put(done)

        producer = asyncio.create_task(produce())
        try:
            while (line := await queue.get()) is not done:
                await response.write(line.encode())
        except ConnectionError:
            return response
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@correct(check.export_app, "a class-based view with an AppKey for the source")
def export_view(records) -> web.Application:
    source_key = web.AppKey("records", object)

    class Export(web.View):
        async def get(self) -> web.StreamResponse:
            response = web.StreamResponse(status=200)
            response.content_type = "application/x-ndjson"
            response.charset = "utf-8"
            await response.prepare(self.request)
            try:
                async for record in self.request.app[source_key]():
                    await response.write(json.dumps(record).encode() + b"\n")
            except (ConnectionResetError, ConnectionError):
                return response
            return response

    app = web.Application()
    app[source_key] = records
    app.router.add_view("/export", Export)
    return app


@wrong(check.export_app, "collects every record, then answers one Response",
       problem="held-back")
def export_collect_then_respond(records) -> web.Application:
    async def export(request: web.Request) -> web.Response:
        lines = [json.dumps(record) async for record in records()]
        return web.Response(text="\n".join(lines) + "\n", content_type="application/x-ndjson")

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "reads every record into a list first, then streams the list",
       problem="held-back")
def export_list_then_stream(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        all_records = [record async for record in records()]
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        try:
            for record in all_records:
                await response.write(json.dumps(record).encode() + b"\n")
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "a producer task fills an unbounded queue: it pulls ahead of the client",
       problem="no-back-pressure")
def export_unbounded_queue(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()

        async def produce() -> None:
            async for record in records():
                queue.put_nowait(json.dumps(record) + "\n")
            queue.put_nowait(None)

        producer = asyncio.create_task(produce())
        try:
            while (line := await queue.get()) is not None:
                await response.write(line.encode())
        except ConnectionError:
            pass
        finally:
            producer.cancel()
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "does not catch the ConnectionError of a client that went away",
       problem="error-logged")
def export_no_except(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        async for record in records():
            await response.write(json.dumps(record).encode() + b"\n")
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "catches the ConnectionError of each write and carries on pulling",
       problem="keeps-streaming")
def export_continue_after_error(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        async for record in records():
            try:
                await response.write(json.dumps(record).encode() + b"\n")
            except ConnectionError:
                continue
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "labels the stream application/json",
       problem="wrong-content-type")
def export_json_content_type(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            async for record in records():
                await response.write(json.dumps(record).encode() + b"\n")
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "writes str(record): Python's repr, not JSON",
       problem="not-ndjson")
def export_str_record(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        try:
            async for record in records():
                await response.write(f"{record}\n".encode())
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "a newline between records but none after the last",
       problem="not-ndjson")
def export_separator_only(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        first = True
        try:
            async for record in records():
                prefix = b"" if first else b"\n"
                first = False
                await response.write(prefix + json.dumps(record).encode())
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


@wrong(check.export_app, "batches 100 records per write, to save system calls",
       problem="held-back")
def export_batches(records) -> web.Application:
    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        batch: list[bytes] = []
        try:
            async for record in records():
                batch.append(json.dumps(record).encode() + b"\n")
                if len(batch) == 100:
                    await response.write(b"".join(batch))
                    batch.clear()
            await response.write(b"".join(batch))
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


EXPORT_SOURCE = None


@wrong(check.export_app, "keeps the source in a module-level variable: the second app's wins",
       problem="wrong-source")
def export_global_source(records) -> web.Application:
    global EXPORT_SOURCE
    EXPORT_SOURCE = records

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        try:
            async for record in EXPORT_SOURCE():
                await response.write(json.dumps(record).encode() + b"\n")
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/export", export)
    return app


# --- Task 3 · feed_app --------------------------------------------------------------------------


def _after(request: web.Request) -> int:
    value = request.headers.get("Last-Event-ID")
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text="bad Last-Event-ID") from None


@correct(check.feed_app, "sse_response, ConnectionError caught around it")
def feed_sse_response(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@correct(check.feed_app, "a StreamResponse of its own, a data: line for each line")
def feed_manual_stream(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            async for event in feed.subscribe(after=after):
                lines = "".join(f"data: {line}\n" for line in event.data.split("\n"))
                await response.write(f"id: {event.id}\n{lines}\n".encode())
        except ConnectionResetError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@correct(check.feed_app, "EventSourceResponse and its last_event_id; a bad id replays the feed")
def feed_event_source_response(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        stream = EventSourceResponse()
        await stream.prepare(request)
        last = stream.last_event_id
        after = int(last) if last is not None and last.strip().lstrip("-").isdigit() else 0
        try:
            async with stream:
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "ignores Last-Event-ID: every reconnect replays the whole feed",
       problem="not-resumed")
def feed_ignores_last_id(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=0):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "resumes from the last id itself (after=n-1): one event twice",
       problem="resumed-wrong")
def feed_off_by_one(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=max(after - 1, 0)):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "sends the data without an id: a client cannot resume",
       problem="no-ids")
def feed_no_ids(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data)
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "numbers the events it sends 1, 2, 3 per connection, not the feed's ids",
       problem="wrong-ids")
def feed_counter_ids(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        try:
            async with sse_response(request) as stream:
                number = after
                async for event in feed.subscribe(after=after):
                    number += 1
                    await stream.send(event.data, id=str(number))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "int() of the header, unguarded: 'abc' is a 500",
       problem="bad-last-event-id")
def feed_int_unguarded(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = int(request.headers.get("Last-Event-ID", 0))
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "writes the SSE frame by hand with the data as one data: line",
       problem="data-mangled")
def feed_raw_multiline(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            async for event in feed.subscribe(after=after):
                await response.write(f"id: {event.id}\ndata: {event.data}\n\n".encode())
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "lets the ConnectionError of a client that left escape",
       problem="error-logged")
def feed_no_except(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        async with sse_response(request) as stream:
            async for event in feed.subscribe(after=after):
                await stream.send(event.data, id=str(event.id))
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "reads the last id from the query string, as some polyfills send it",
       problem="not-resumed")
def feed_query_last_id(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        last = request.query.get("lastEventId", "0")
        after = int(last) if last.isdigit() else 0
        try:
            async with sse_response(request) as stream:
                async for event in feed.subscribe(after=after):
                    await stream.send(event.data, id=str(event.id))
        except ConnectionError:
            pass
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "a StreamResponse of its own, labelled text/plain",
       problem="wrong-content-type")
def feed_text_plain(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        try:
            async for event in feed.subscribe(after=after):
                lines = "".join(f"data: {line}\n" for line in event.data.split("\n"))
                await response.write(f"id: {event.id}\n{lines}\n".encode())
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    return app


@wrong(check.feed_app, "catches a lost client per event and keeps its subscription going",
       problem="keeps-subscribed")
def feed_keeps_subscription(feed) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        after = _after(request)
        stream = EventSourceResponse()
        await stream.prepare(request)
        async for event in feed.subscribe(after=after):
            try:
                await stream.send(event.data, id=str(event.id))
            except ConnectionError:
                await asyncio.sleep(0.05)
        return stream

    app = web.Application()
    app.router.add_get("/events", events)
    return app


# --- Task 4 · room_app --------------------------------------------------------------------------

MEMBERS = web.AppKey("members", set)


@correct(check.room_app, "bounded outbox and sender task per member; full outbox drops the message")
def room_drop_when_full() -> web.Application:
    class Peer:
        def __init__(self, ws: web.WebSocketResponse) -> None:
            self.ws = ws
            self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
            self.task = asyncio.create_task(self.pump())

        async def pump(self) -> None:
            try:
                while True:
                    await self.ws.send_str(await self.queue.get())
            except (ConnectionError, RuntimeError):
                pass

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        me = Peer(ws)
        request.app[MEMBERS].add(me)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for peer in list(request.app[MEMBERS]):
                        if peer is not me:
                            with contextlib.suppress(asyncio.QueueFull):
                                peer.queue.put_nowait(msg.data)
        finally:
            request.app[MEMBERS].discard(me)
            me.task.cancel()
        return ws

    async def shutdown(app: web.Application) -> None:
        for peer in list(app[MEMBERS]):
            peer.task.cancel()
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(
                    peer.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"bye"), 1
                )

    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


@correct(check.room_app, "a send timeout in each member's task; a member that times out is dropped")
def room_send_timeout() -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=100)

        async def send_loop() -> None:
            try:
                while True:
                    text = await outbox.get()
                    await asyncio.wait_for(ws.send_str(text), 0.5)
            except (TimeoutError, ConnectionError):
                if request.transport is not None:
                    request.transport.abort()

        sender = asyncio.create_task(send_loop())
        members = request.app[MEMBERS]
        members[ws] = outbox
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other, box in list(members.items()):
                        if other is not ws and box.qsize() < 100:
                            box.put_nowait(msg.data)
        finally:
            members.pop(ws, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def shutdown(app: web.Application) -> None:
        async def bye(ws: web.WebSocketResponse) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), 1)

        await asyncio.gather(*(bye(ws) for ws in list(app[MEMBERS])))

    app = web.Application()
    app[MEMBERS] = {}
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


@wrong(check.room_app, "awaits every member's send in the reading loop",
       problem="slow-member-stalls")
def room_await_each() -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        request.app[MEMBERS].add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other in list(request.app[MEMBERS]):
                        if other is not ws:
                            with contextlib.suppress(ConnectionError):
                                await other.send_str(msg.data)
        finally:
            request.app[MEMBERS].discard(ws)
        return ws

    async def shutdown(app: web.Application) -> None:
        for ws in list(app[MEMBERS]):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


@wrong(check.room_app, "sends to all at once with gather, which still waits for the slowest",
       problem="slow-member-stalls")
def room_gather() -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        request.app[MEMBERS].add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    others = [o for o in request.app[MEMBERS] if o is not ws]
                    await asyncio.gather(
                        *(o.send_str(msg.data) for o in others), return_exceptions=True
                    )
        finally:
            request.app[MEMBERS].discard(ws)
        return ws

    async def shutdown(app: web.Application) -> None:
        for ws in list(app[MEMBERS]):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


@wrong(check.room_app, "fires a task per send: nothing waits, but a slow member's pile grows",
       problem="unbounded-outbox")
def room_task_per_send() -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        request.app[MEMBERS].add(ws)
        pending = set()
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other in list(request.app[MEMBERS]):
                        if other is not ws:
                            task = asyncio.create_task(other.send_str(msg.data))
                            pending.add(task)
                            task.add_done_callback(pending.discard)
        finally:
            request.app[MEMBERS].discard(ws)
        return ws

    async def shutdown(app: web.Application) -> None:
        for ws in list(app[MEMBERS]):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/room", handler)
    app.on_shutdown.append(shutdown)
    return app


def _queue_room(*, maxsize: int, on_shutdown: bool = True, close_code: int = 1001,
                suppress_errors: bool = True, echo: bool = False, members=None,
                cancel_sender: bool = True):
    """A per-member queue room with one thing changed, the way a learner varies their code."""
    closing: set = set()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=maxsize)

        async def pump() -> None:
            if suppress_errors:
                with contextlib.suppress(ConnectionError):
                    while True:
                        await ws.send_str(await queue.get())
            else:
                while True:
                    await ws.send_str(await queue.get())

        sender = asyncio.create_task(pump())
        room = members if members is not None else request.app[MEMBERS]
        room[ws] = (queue, sender)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for other, (box, _) in list(room.items()):
                        if other is ws and not echo:
                            continue
                        try:
                            box.put_nowait(msg.data)
                        except asyncio.QueueFull:
                            closing.add(asyncio.ensure_future(other.close(code=1008)))
        finally:
            room.pop(ws, None)
            if cancel_sender:
                sender.cancel()
        return ws

    async def shutdown(app: web.Application) -> None:
        room = members if members is not None else app[MEMBERS]
        for ws, (_, sender) in list(room.items()):
            sender.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=close_code), 1)

    app = web.Application()
    if members is None:
        app[MEMBERS] = {}
    app.router.add_get("/room", handler)
    if on_shutdown:
        app.on_shutdown.append(shutdown)
    return app


@wrong(check.room_app, "an outbox per member, but unbounded: the slow member's grows forever",
       problem="unbounded-outbox")
def room_unbounded_queue() -> web.Application:
    return _queue_room(maxsize=0)


@wrong(check.room_app, "no on_shutdown hook: members are cut, not told",
       problem="not-closed-at-shutdown")
def room_no_shutdown_hook() -> web.Application:
    return _queue_room(maxsize=100, on_shutdown=False)


@wrong(check.room_app, "closes with 1000 at shutdown instead of 1001",
       problem="wrong-shutdown-code")
def room_shutdown_1000() -> web.Application:
    return _queue_room(maxsize=100, close_code=1000)


@wrong(check.room_app, "the sender task, never cancelled, lets a vanished member's error escape",
       problem="error-logged")
def room_sender_raises() -> web.Application:
    return _queue_room(maxsize=100, suppress_errors=False, cancel_sender=False)


@wrong(check.room_app, "sends every message back to its sender too",
       problem="echoes-sender")
def room_echoes_sender() -> web.Application:
    return _queue_room(maxsize=100, echo=True)


SHARED_ROOM: dict = {}


@wrong(check.room_app, "a module-level room: two apps share their members",
       problem="rooms-shared")
def room_module_level() -> web.Application:
    return _queue_room(maxsize=100, members=SHARED_ROOM)
