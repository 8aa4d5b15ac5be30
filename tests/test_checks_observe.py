"""What every check observes, whatever API the learner's code uses: blocking calls, runaway
loops, sleeps asked for, files, coroutines never awaited, lost tasks, and no stderr at all."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings

import aiohttp

from local_server.checks import observe
from local_server.checks.harness import Task, check
from local_server.checks.rules import Rule

DEMO = Task("demo", Rule("wrong", "return 'ok'", "the value returned", "return 'ok'."))


@check(DEMO, timeout=6)
async def demo(learner, server, spy) -> str:
    result = await learner(server.url)
    if result != "ok":
        raise DEMO.broken("wrong", f"returned {result!r}.")
    return "fine"


async def sleeps_blocking(url):
    time.sleep(0.05)
    return "ok"


def test_time_sleep_on_the_loop_is_a_blocked_loop_with_the_line():
    verdict = demo.diagnose(sleeps_blocking)
    assert verdict.problem == "blocked-loop", verdict.render()
    # the time it blocked, as measured: 0.05 s, or a little more on a loaded machine
    assert re.search(r"time\.sleep\(\) blocked for 0\.0[5-9] s", verdict.message), verdict.message
    assert "of sleeps_blocking(): `time.sleep(0.05)`" in verdict.message


async def sleeps_in_a_thread(url):
    await asyncio.to_thread(time.sleep, 0.05)
    return "ok"


def test_time_sleep_in_a_worker_thread_blocks_nothing():
    assert demo.diagnose(sleeps_in_a_thread).passed


def test_an_executor_slow_to_start_its_thread_is_not_a_blocked_loop(monkeypatch):
    # On a loaded machine, Thread.start() (inside to_thread) waits on the loop's thread until
    # the new thread runs: 0.19 s was once called "waiting on a thread lock". Delay it here.
    bootstrap = threading.Thread._bootstrap_inner

    def late(thread):
        if thread.name.startswith("asyncio_"):
            time.sleep(0.3)
        bootstrap(thread)

    monkeypatch.setattr(threading.Thread, "_bootstrap_inner", late)
    verdict = demo.diagnose(sleeps_in_a_thread)
    assert verdict.passed, verdict.render()


async def blocking_http(url):
    import urllib.request

    with urllib.request.urlopen(f"{url}/get") as response:
        response.read()
    return "ok"


def test_a_blocking_http_library_is_a_blocked_loop():
    verdict = demo.diagnose(blocking_http)
    assert verdict.problem == "blocked-loop", verdict.render()
    assert "blocking socket call" in verdict.message
    assert "of blocking_http()" in verdict.message


async def spins(url):
    count = 0
    while True:  # never awaits
        count += 1


def test_a_loop_that_never_awaits_is_stopped_and_named():
    started = time.monotonic()
    verdict = demo.diagnose(spins)
    assert verdict.problem == "runaway-loop", verdict.render()
    assert "of spins(): `" in verdict.message
    assert time.monotonic() - started < 30  # stopped, not left spinning
    assert not [t for t in threading.enumerate() if t.name == "check-demo"]


async def spins_on_a_closed_websocket(url):
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws/echo") as ws:
        await ws.close()
        while True:  # a closed socket answers at once: this never waits
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                return message.data


def test_a_receive_loop_that_ignores_closed_is_stopped():
    verdict = demo.diagnose(spins_on_a_closed_websocket)
    assert verdict.problem == "runaway-loop", verdict.render()
    assert "spins_on_a_closed_websocket()" in verdict.message
    assert not [t for t in threading.enumerate() if t.name == "check-demo"]


async def forgets_await(url):
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{url}/get")
        response.text()
        response.release()
    return "ok"


def test_a_coroutine_never_awaited_is_named_with_its_line(capfd):
    verdict = demo.diagnose(forgets_await)
    assert verdict.problem == "missing-await", verdict.render()
    assert "`ClientResponse.text()` was called without `await`" in verdict.message
    assert "of forgets_await(): `response.text()`" in verdict.message
    assert capfd.readouterr().err == ""


async def loses_a_task(url):
    async def fails():
        raise ValueError("lost")

    asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0.01)
    return "ok"


def test_a_task_that_failed_unawaited_is_reported(capfd):
    verdict = demo.diagnose(loses_a_task)
    assert verdict.problem == "task-exception-lost", verdict.render()
    assert "ValueError: lost" in verdict.message
    assert capfd.readouterr().err == ""


async def noisy(url):
    print("to stderr", file=sys.stderr)
    logging.getLogger("learner").error("logged")
    warnings.warn("careful", UserWarning, stacklevel=1)
    return "ok"


def test_nothing_reaches_stderr(capfd):
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        assert demo.diagnose(noisy).passed
    finally:
        logging.getLogger().removeHandler(handler)
    assert capfd.readouterr().err == ""


async def returns_wrong(url):
    return "not ok"


def test_a_declared_problem_keeps_its_hint():
    verdict = demo.diagnose(returns_wrong)
    assert verdict.problem == "wrong"
    assert verdict.hint == "return 'ok'."


@check(DEMO)
async def undeclared(learner, server, spy) -> str:
    from local_server.checks.rules import Mistake

    raise Mistake("made-up", "a problem the table does not have.")


def test_an_undeclared_problem_is_a_loud_bug_in_the_check():
    verdict = undeclared.diagnose(returns_wrong)
    assert verdict.problem == "undeclared:made-up"


def test_long_messages_are_wrapped_at_80_columns_without_breaking_words():
    from local_server.checks.harness import Verdict

    url = "http://127.0.0.1:12345/a/very/long/path/that/must/not/be/broken/anywhere/at/all"
    text = Verdict("demo", "wrong", "word " * 40 + url, "hint " * 30).render()
    lines = text.splitlines()
    assert all(len(line) <= 80 or url in line for line in lines)
    assert any(line.strip() == url or line.endswith(url) for line in lines)
    assert lines[0].startswith("❌ FAIL demo: ")
    assert any(line.startswith("   Hint: ") for line in lines)


# --- the observation itself ----------------------------------------------------------------


@check("observed", timeout=6)
async def observed(learner, server, spy) -> str:
    obs = observe.current()
    with obs.window() as window:
        await learner(server.url)
    files = [(e.action, os.path.basename(e.path), e.on_loop_thread) for e in window.files]
    writes = [(c.kind, os.path.basename(c.target), c.calls, c.bytes) for c in obs.blocking_calls()]
    return repr({"sleeps": [round(s.delay, 3) for s in window.sleeps], "files": files,
                 "writes": writes})  # fmt: skip


_DIR = tempfile.mkdtemp(prefix="observe-test-")  # made at import, in every xdist worker
atexit.register(shutil.rmtree, _DIR, True)


async def sleeps_and_writes(url):
    from asyncio import sleep  # imported by another name: still seen

    await asyncio.sleep(0.02)
    await sleep(0.01)
    with open(os.path.join(_DIR, "a.part"), "wb") as file:
        file.write(b"x" * 1000)
    await asyncio.to_thread(lambda: open(os.path.join(_DIR, "b"), "wb").close())
    fd, temp = tempfile.mkstemp(dir=_DIR)
    os.write(fd, b"abc")
    os.close(fd)
    os.replace(temp, os.path.join(_DIR, "c"))
    os.remove(os.path.join(_DIR, "a.part"))


def test_sleeps_files_and_loop_writes_are_observed_whatever_the_api():
    verdict = observed.diagnose(sleeps_and_writes)
    assert verdict.passed, verdict.render()
    seen = eval(verdict.message)

    assert seen["sleeps"] == [0.02, 0.01]
    actions = [(action, name, loop) for action, name, loop in seen["files"]]
    assert ("open-write", "a.part", True) in actions
    assert ("open-write", "b", False) in actions
    assert ("remove", "a.part", True) in actions
    assert [a for a in actions if a[0] == "rename"]
    assert ("file-write", "a.part", 1, 1000) in seen["writes"]
    assert any(kind == "file-write" and name == "os.write" for kind, name, *_ in seen["writes"])


async def writes_in_a_worker_thread(url):
    import tempfile as tf

    fd, _ = await asyncio.to_thread(tf.mkstemp, dir=_DIR, suffix=".part")
    os.close(fd)
    await asyncio.to_thread(open(os.path.join(_DIR, "flushed"), "wb").close)


def test_files_the_standard_library_opens_in_a_worker_thread_are_the_learners():
    verdict = observed.diagnose(writes_in_a_worker_thread)
    assert verdict.passed, verdict.render()
    seen = eval(verdict.message)
    names = [name for action, name, loop in seen["files"] if action == "open-write"]
    assert any(name.endswith(".part") for name in names)
    assert not [name for _, name, _ in seen["files"] if name.endswith(".pyc")]
