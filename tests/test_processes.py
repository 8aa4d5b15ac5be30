"""``local_server.processes``: child servers started on a free port, read back, stopped, reaped."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

import aiohttp
import psutil
import pytest

from local_server import processes

posix_only = pytest.mark.skipif(not processes.POSIX, reason="signals and gunicorn are POSIX")

SCRIPT = textwrap.dedent(
    """\
    import os
    from aiohttp import web

    async def pid(request):
        return web.json_response({"pid": os.getpid()})

    async def create_app():
        app = web.Application()
        app.router.add_get("/pid", pid)
        return app

    if __name__ == "__main__":
        print("starting", flush=True)
        web.run_app(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "0")))
    """
)


@pytest.fixture
def app_folder(tmp_path):
    (tmp_path / "tiny.py").write_text(SCRIPT, encoding="utf-8")
    return tmp_path


def test_gunicorn_command_has_the_worker_class_a_free_port_and_no_control_socket():
    command = processes.gunicorn_command("shop:create_app", workers=3, options=["--x", "1"])
    assert command[:4] == [sys.executable, "-m", "gunicorn", "shop:create_app"]
    assert command[command.index("--worker-class") + 1] == "aiohttp.GunicornWebWorker"
    assert command[command.index("--workers") + 1] == "3"
    assert command[command.index("--bind") + 1] == "127.0.0.1:0"
    assert "--no-control-socket" in command
    assert command[-2:] == ["--x", "1"]


def test_child_environment_sets_unbuffered_only_when_asked(monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    assert processes.child_environment({"A": "b"})["PYTHONUNBUFFERED"] == "1"
    assert processes.child_environment({"A": "b"})["A"] == "b"
    assert "PYTHONUNBUFFERED" not in processes.child_environment(unbuffered=False)


def test_ready_patterns_read_the_url_from_the_banners():
    run_app = processes.RUN_APP_READY.search("======== Running on http://127.0.0.1:4321 ========")
    assert run_app and run_app.group("url") == "http://127.0.0.1:4321"
    master = "[2026] [1] [INFO] Listening at: http://127.0.0.1:5555 (1)"
    found = processes.GUNICORN_READY.search(master)
    assert found and found.group("url") == "http://127.0.0.1:5555"


@posix_only
async def test_run_script_serves_reports_its_url_and_leaves_nothing(app_folder):
    async with processes.run_script("tiny.py", cwd=app_folder) as server:
        assert server.url and server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(server.url + "/pid") as r:
            assert (await r.json())["pid"] == server.pid
        assert "starting" in server.output
        pid = server.pid
    assert server.returncode == 0  # SIGTERM: run_app shuts down and returns
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@posix_only
async def test_a_failing_block_still_kills_the_child(app_folder):
    with pytest.raises(ZeroDivisionError):
        async with processes.run_script("tiny.py", cwd=app_folder) as server:
            pid = server.pid
            raise ZeroDivisionError("a failing cell")
    assert server.returncode is not None
    assert pid not in [child.pid for child in psutil.Process().children(recursive=True)]


@posix_only
async def test_a_script_that_exits_before_listening_is_a_server_failed(tmp_path):
    (tmp_path / "broken.py").write_text("print('no luck')\nraise SystemExit(3)\n")
    with pytest.raises(processes.ServerFailed, match="no luck"):
        async with processes.run_script("broken.py", cwd=tmp_path):
            pass


@posix_only
async def test_send_signal_and_wait_report_the_exit_status(app_folder):
    async with processes.run_script("tiny.py", cwd=app_folder) as server:
        server.send_signal(signal.SIGKILL)
        assert await server.wait(timeout=10) == -signal.SIGKILL


@posix_only
async def test_run_gunicorn_forks_workers_and_stops_them_all(app_folder):
    async with processes.run_gunicorn("tiny:create_app", workers=2, cwd=app_folder) as server:
        assert server.url and server.url.startswith("http://127.0.0.1:")
        for _ in range(300):  # the master forks its workers after it listens
            if len(server.workers()) == 2:
                break
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(server.url + "/pid") as r:
            assert r.status == 200
        workers = server.workers()
        assert len(workers) == 2
        assert "python -m gunicorn tiny:create_app" in server.describe()
    assert not [pid for pid in workers if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not psutil.Process().children(recursive=True)


async def test_run_gunicorn_on_windows_raises_posix_only(monkeypatch):
    monkeypatch.setattr(processes, "POSIX", False)
    with pytest.raises(processes.PosixOnly):
        processes.run_gunicorn("tiny:create_app")
