"""What exercise 20's checks see of a learner's app module, from inside the processes running it.

The checks start it in child processes, by its path (it imports only the standard library and
aiohttp, so it starts fast, and nothing of the course shadows the learner's module)::

    python app_probe.py main                     runs the module as ``python module.py`` does
    gunicorn app_probe:gunicorn_app ...          each worker imports the module, awaits its
                                                 factory, and serves what it returns

The module comes from ``PROBE_MODULE`` (a .py file) and its factory from ``PROBE_FACTORY``.
Each process appends what it saw to ``PROBE_REPORT``, one JSON object a line (a single write,
so processes never interleave): what importing the module did (ports bound, connections
opened, sessions made, threads started, each with the module's line), what the factory did,
when and where the module's sessions were closed,
every ERROR record logged while it served (with the module's line of its exception), and the
sessions the module's code left open. Under gunicorn a port the module binds at import time is
refused (``PermissionError``), so a ``web.run_app()`` at module level fails at once instead of
serving on port 8080, and every response carries ``X-Probe-Pid``, the PID that answered it.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import errno
import importlib.util
import inspect
import json
import linecache
import logging
import os
import runpy
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

PID_HEADER = "X-Probe-Pid"
MODULE = Path(os.environ["PROBE_MODULE"]).resolve() if os.environ.get("PROBE_MODULE") else None
FACTORY = os.environ.get("PROBE_FACTORY", "create_app")
REPORT = os.environ.get("PROBE_REPORT")
QUOTE = 120

_phase: str | None = None  # "import" while the module is imported under gunicorn
_refuse_binds = False
_imported: dict[str, list[dict[str, Any]]] = {"binds": [], "connects": [], "sessions": []}
_sessions: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()
_session_lines: dict[int, dict[str, Any] | None] = {}
_waiting: dict[int, set[asyncio.Task[Any] | None]] = {}  # a session's requests in flight


def report(event: str, **fields: Any) -> None:
    """Append one event to the report file."""
    if not REPORT:
        return
    record = {"event": event, "pid": os.getpid(), **fields}
    data = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(REPORT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _is_module(filename: str) -> bool:
    return MODULE is not None and filename == str(MODULE)


def _line(filename: str, lineno: int, function: str) -> dict[str, Any]:
    text = linecache.getline(filename, lineno).strip()
    return {"line": lineno, "function": function, "text": text[:QUOTE]}


def module_line_of_stack() -> dict[str, Any] | None:
    """The innermost line of the learner's module on the current stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if _is_module(frame.f_code.co_filename):
            return _line(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return None


def module_line_of(exc: BaseException) -> dict[str, Any] | None:
    """The innermost line of the learner's module in ``exc``'s traceback, or its causes'."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        frames = [f for f in traceback.extract_tb(error.__traceback__) if _is_module(f.filename)]
        if frames:
            return _line(frames[-1].filename, frames[-1].lineno or 0, frames[-1].name)
        error = error.__cause__ or error.__context__
    return None


def describe(exc: BaseException) -> dict[str, Any]:
    """An exception as the check quotes it: type, text, the module's line."""
    detail = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return {
        "type": type(exc).__name__,
        "text": text[:QUOTE],
        "where": module_line_of(exc),
        "not_implemented": isinstance(exc, NotImplementedError),
    }


def _address(value: Any) -> str:
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(value)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _phase != "import" or event not in ("socket.bind", "socket.connect"):
        return
    where = module_line_of_stack()
    if where is None:
        return
    kind = "binds" if event == "socket.bind" else "connects"
    _imported[kind].append({"address": _address(args[1]), "where": where})
    if kind == "binds" and _refuse_binds:
        raise PermissionError(errno.EACCES, "the check lets no module bind a port at import")


class _Errors(logging.Handler):
    """Every ERROR record: aiohttp's "Error handling request", asyncio's "Unclosed ..."."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            error = None
            if record.exc_info and record.exc_info[1] is not None:
                error = describe(record.exc_info[1])
            message = " ".join(record.getMessage().split())[:200]
            report("logged", logger=record.name, message=message, error=error)
        except Exception:  # a report that fails must not break the app it watches
            pass


def _watch() -> None:
    """Install the hooks: the audit hook, the log handler, the session recorder."""
    sys.addaudithook(_audit)
    handler = _Errors()
    for name in ("", "gunicorn.error"):
        logging.getLogger(name).addHandler(handler)
    original = aiohttp.ClientSession.__init__

    def recording_init(session: Any, *args: Any, **kwargs: Any) -> None:
        where = module_line_of_stack()
        if where is not None:  # made by the module's code, not by aiohttp or the probe
            _sessions.add(session)
            _session_lines[id(session)] = where
            if _phase == "import":
                _imported["sessions"].append({"where": where})
        original(session, *args, **kwargs)

    aiohttp.ClientSession.__init__ = recording_init  # type: ignore[method-assign]
    original_request = aiohttp.ClientSession._request

    async def recording_request(session: Any, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        waiting = _waiting.setdefault(id(session), set())
        waiting.add(task)
        try:
            return await original_request(session, *args, **kwargs)
        finally:
            waiting.discard(task)

    aiohttp.ClientSession._request = recording_request  # type: ignore[method-assign]
    original_close = aiohttp.ClientSession.close

    async def recording_close(session: Any) -> None:
        if session in _sessions and not session.closed:
            # Requests still waiting for their answer, but for those already being cancelled
            # (a handler cut at shutdown_timeout): closing the session cuts them.
            waiting = [t for t in _waiting.get(id(session), ()) if t and not t.done()
                       and not t.cancelling()]  # fmt: skip
            report("session-closed", at=time.time(), cut=len(waiting),
                   where=module_line_of_stack())  # fmt: skip
        await original_close(session)

    aiohttp.ClientSession.close = recording_close  # type: ignore[method-assign]


def report_open_sessions(when: str) -> None:
    """Report the sessions the module made and never closed (none: an empty list)."""
    still_open = [_session_lines.get(id(s)) for s in list(_sessions) if not s.closed]
    report("sessions", when=when, open=still_open)


_module: Any = None


def load_module() -> Any:
    """Import the learner's module once in this process, recording what the import did."""
    global _module, _phase
    if _module is not None or MODULE is None:
        return _module
    threads_before = {t.ident for t in threading.enumerate()}
    _phase = "import"
    error = None
    module = None
    try:
        spec = importlib.util.spec_from_file_location(MODULE.stem, MODULE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE.stem] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit or KeyboardInterrupt at import time too
        error = describe(exc)
        module = None
    finally:
        _phase = None
    threads = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    report("import", ok=error is None, error=error, threads=threads, **_imported)
    _module = module
    return module


async def gunicorn_app() -> web.Application:
    """``gunicorn app_probe:gunicorn_app --worker-class aiohttp.GunicornWebWorker``."""
    module = load_module()
    if module is None:
        raise RuntimeError("the module could not be imported (see the import report)")
    factory = getattr(module, FACTORY, None)
    error = None
    app: Any = None
    if isinstance(factory, web.Application):
        kind = "application"
        app = factory
    elif inspect.iscoroutinefunction(factory):
        kind = "coroutine-function"
        try:
            app = await factory()
        except BaseException as exc:
            error = describe(exc)
    else:
        kind = "missing" if factory is None else type(factory).__name__
    returned = type(app).__name__ if error is None and kind != "application" else None
    report("factory", kind=kind, ok=isinstance(app, web.Application), returned=returned,
           error=error)  # fmt: skip
    if not isinstance(app, web.Application):
        raise RuntimeError(f"{FACTORY} gave no web.Application (see the factory report)")
    app.on_response_prepare.append(_stamp)
    app.on_startup.append(_started)
    app.on_cleanup.append(_cleaned_up)  # after the module's own clean-up, which came first
    return app


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[PID_HEADER] = str(os.getpid())


async def _started(app: web.Application) -> None:
    report("started")


async def _cleaned_up(app: web.Application) -> None:
    report_open_sessions("cleanup")


def _main() -> int:
    """Run the module as ``python module.py`` would, with the hooks installed."""
    assert MODULE is not None
    atexit.register(report_open_sessions, "exit")
    sys.argv = [str(MODULE)]
    sys.path.insert(0, str(MODULE.parent))
    try:
        runpy.run_path(str(MODULE), run_name="__main__")
    except SystemExit as exc:
        report("main", error=None, code=exc.code)
        raise
    except BaseException as exc:
        report("main", error=describe(exc), code=None)
        return 3
    report("main", error=None, code=0)
    return 0


if MODULE is not None:  # only in a check's child process: the hooks stay for its lifetime
    _watch()
    if __name__ == "__main__":
        parser = argparse.ArgumentParser(prog="app_probe")
        parser.add_argument("mode", choices=["main"])
        parser.parse_args()
        sys.exit(_main())
    _refuse_binds = True
    load_module()  # gunicorn imports this file in each worker: import the module then
