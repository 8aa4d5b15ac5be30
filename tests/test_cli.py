"""``python -m local_server``: the workshop server from a shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time

import aiohttp
import pytest
from conftest import needs_ipv6_loopback

from local_server import create_app
from local_server.__main__ import DEFAULT_PORT, is_loopback, limits_of, parse_args
from local_server.app import endpoint_index
from local_server.hardening import Limits

URL_LINE = re.compile(r"Course server on (http://(\S+):(\d+))  \(Ctrl-C to stop\)")
TIMEOUT = 15  # seconds; starting takes well under one, this is for a loaded CI machine


class Cli:
    """A running ``python -m local_server`` with its announced URL and endpoint lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.url = ""
        self.host = ""
        self.port = 0
        self.index_lines: list[str] = []

    async def read_banner(self) -> None:
        assert self.proc.stdout is not None
        first = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)).decode()
        match = URL_LINE.fullmatch(first.rstrip("\n"))
        assert match, f"unexpected first line: {first!r}"
        self.url, self.host, self.port = match.group(1), match.group(2), int(match.group(3))
        learner_line = (await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)).decode()
        assert "X-Learner" in learner_line, learner_line
        for _ in endpoint_index(create_app()):
            line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
            self.index_lines.append(line.decode().rstrip("\n"))

    async def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig`` and return the exit code, the rest of stdout and all of stderr."""
        self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def run_cli():
    """Start ``python -m local_server ARGS``; the process is always ended afterwards."""
    started: list[Cli] = []

    async def start(*args: str) -> Cli:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "local_server", *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        cli = Cli(proc)
        started.append(cli)
        await cli.read_banner()
        return cli

    yield start
    for cli in started:
        if cli.proc.returncode is None:
            cli.proc.kill()
            await cli.proc.communicate()


async def _get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_announces_the_real_port_and_serves(run_cli):
    cli = await run_cli("--port", "0")
    assert cli.host == "127.0.0.1"
    assert cli.port != 0  # the port the OS picked, not the 0 that was asked for
    data = await _get_json(cli.url + "/get?a=1")
    assert data["url"] == f"{cli.url}/get?a=1"
    code, out, err = await cli.stop()
    assert code == 0
    assert out.strip().endswith("Course server stopped.")
    assert err == ""  # no traceback, no warning on loopback


async def test_prints_the_endpoint_index(run_cli):
    cli = await run_cli("--port", "0")
    entries = endpoint_index(create_app())
    assert len(cli.index_lines) == len(entries)
    for line, entry in zip(cli.index_lines, entries, strict=True):
        assert line.split()[:2] == [entry["methods"], entry["path"]]
        assert line.endswith(entry["description"])
    assert any(" /get " in line for line in cli.index_lines)
    code, _, err = await cli.stop()
    assert (code, err) == (0, "")


async def test_sigterm_also_stops_cleanly(run_cli):
    cli = await run_cli("--port", "0")
    code, out, err = await cli.stop(signal.SIGTERM)
    assert (code, err) == (0, "")
    assert "Course server stopped." in out


async def test_stopped_server_frees_its_port(run_cli):
    cli = await run_cli("--port", "0")
    await cli.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", cli.port), timeout=2).close()


async def test_seed_option(run_cli):
    """--seed makes /status's random choices repeatable across runs."""
    sequences = []
    for _ in range(2):
        cli = await run_cli("--port", "0", "--seed", "5")
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(12):
                async with session.get(cli.url + "/status/200:0.5,503:0.5") as resp:
                    statuses.append(resp.status)
        sequences.append(statuses)
        await cli.stop()
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 503}


async def test_binding_beyond_loopback_warns(run_cli):
    cli = await run_cli("--host", "0.0.0.0", "--port", "0")
    assert cli.host == "0.0.0.0" and cli.port != 0
    await _get_json(f"http://127.0.0.1:{cli.port}/get")  # only ever reached through loopback
    code, _, err = await cli.stop()
    assert code == 0
    assert err.startswith("WARNING: binding to 0.0.0.0 makes the course server reachable")
    assert "Traceback" not in err


@needs_ipv6_loopback
async def test_ipv6_host_is_bracketed(run_cli):
    cli = await run_cli("--host", "::1", "--port", "0")
    assert cli.url == f"http://[::1]:{cli.port}"
    data = await _get_json(cli.url + "/get")
    assert data["origin"] == "::1"
    code, _, err = await cli.stop()
    assert (code, err) == (0, "")


def test_defaults():
    args = parse_args([])
    assert (args.host, args.port, args.seed) == ("127.0.0.1", DEFAULT_PORT, None)
    args = parse_args(["--host", "::1", "--port", "9000", "--seed", "3"])
    assert (args.host, args.port, args.seed) == ("::1", 9000, 3)


def test_the_bounds_come_from_the_command_line():
    assert limits_of(parse_args([])) == Limits()
    args = parse_args(
        ["--keepalive", "5", "--max-connections-per-client", "10", "--max-connections", "50",
         "--shutdown-timeout", "0"]
    )  # fmt: skip
    assert limits_of(args) == Limits(keepalive=5, per_client=10, total=50, shutdown=0)


@pytest.mark.parametrize(
    "bad", [["--keepalive", "0"], ["--max-connections", "-1"], ["--shutdown-timeout", "-2"]]
)
def test_a_bound_below_its_floor_is_refused(bad, capsys):
    with pytest.raises(SystemExit):
        parse_args(bad)
    assert "must be" in capsys.readouterr().err


async def test_ctrl_c_waits_at_most_the_shutdown_timeout_for_a_slow_download(run_cli):
    cli = await run_cli("--port", "0", "--shutdown-timeout", "0.5")
    async with aiohttp.ClientSession() as session:
        download = asyncio.ensure_future(session.get(f"{cli.url}/files/1000000?rate=1024"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        code, _, err = await cli.stop()
        assert time.monotonic() - started < 5
        download.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            (await download).release()
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("fe80::1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


async def test_a_busy_port_ends_with_a_clear_message_not_a_traceback():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "local_server", "--port", str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in err.decode()
    assert "--port 0" in err.decode()
    assert "Traceback" not in err.decode()


async def test_ctrl_c_closes_connected_websockets_with_going_away(run_cli):
    cli = await run_cli("--port", "0")
    async with aiohttp.ClientSession() as session, session.ws_connect(cli.url + "/ws/echo") as ws:
        receiving = asyncio.ensure_future(ws.receive())
        await asyncio.sleep(0.05)
        cli.proc.send_signal(signal.SIGINT)
        message = await asyncio.wait_for(receiving, TIMEOUT)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == aiohttp.WSCloseCode.GOING_AWAY
    _, err = await asyncio.wait_for(cli.proc.communicate(), TIMEOUT)
    assert cli.proc.returncode == 0
    assert "Traceback" not in err.decode()
