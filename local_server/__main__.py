"""``python -m local_server [--host H] [--port P]``: the course server for a workshop."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from . import hardening
from .app import create_app, endpoint_index
from .runner import LOOPBACK, is_loopback

DEFAULT_PORT = 8080


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_server",
        description="Serve the aiohttp course's local server until Ctrl-C.",
    )
    parser.add_argument("--host", default=LOOPBACK, help=f"address to bind (default {LOOPBACK})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for random status choices")
    defaults = hardening.Limits()
    parser.add_argument(
        "--keepalive",
        type=float,
        default=defaults.keepalive,
        help="seconds an idle connection, or one still sending its request's headers, stays "
        f"open (default {defaults.keepalive:g})",
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=int,
        default=defaults.per_client,
        help=f"open connections one address may have (default {defaults.per_client})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.total,
        help=f"open connections in all (default {defaults.total})",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=defaults.shutdown,
        help="seconds requests in flight get to finish after Ctrl-C "
        f"(default {defaults.shutdown:g})",
    )
    args = parser.parse_args(argv)
    for name in ("keepalive", "max_connections_per_client", "max_connections"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0")
    if args.shutdown_timeout < 0:
        parser.error("--shutdown-timeout must be 0 or more")
    return args


def limits_of(args: argparse.Namespace) -> hardening.Limits:
    """The server's bounds, from the command line."""
    return hardening.Limits(
        keepalive=args.keepalive,
        per_client=args.max_connections_per_client,
        total=args.max_connections,
        shutdown=args.shutdown_timeout,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not is_loopback(args.host):
        print(
            f"WARNING: binding to {args.host} makes the course server reachable from other "
            "machines. Do this only on a network you trust (a classroom).",
            file=sys.stderr,
        )
    app = create_app(seed=args.seed)
    try:
        asyncio.run(serve(app, args.host, args.port, limits_of(args)))
    except (KeyboardInterrupt, web.GracefulExit):
        pass
    except OSError as error:
        sys.exit(
            f"Cannot listen on {args.host}:{args.port}: {error.strerror or error}. "
            "Is another server using that port? Try --port 0 to let the system choose."
        )
    print("Course server stopped.")


async def serve(
    app: web.Application, host: str, port: int, limits: hardening.Limits | None = None
) -> None:
    """Serve ``app`` until Ctrl-C (or SIGTERM), announcing the port actually bound.

    ``web.run_app`` would announce before it binds, so ``--port 0`` would print port 0. The
    signals only set an event, so cleanup runs before any task is cancelled and connected
    WebSocket clients get a proper close (1001) instead of a dropped connection.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signal_number, stop.set)
        except NotImplementedError:  # Windows: Ctrl-C arrives as KeyboardInterrupt instead
            pass
    limits = limits or hardening.Limits()
    runner = web.AppRunner(app, **hardening.runner_options(limits))
    await runner.setup()
    hardening.install(runner, limits)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        announce(app, host, site.port)
        await stop.wait()
    finally:
        await runner.cleanup()


def announce(app: web.Application, host: str, port: int) -> None:
    """Print the server's URL and its endpoints."""
    shown_host = f"[{host}]" if ":" in host else host
    print(f"Course server on http://{shown_host}:{port}  (Ctrl-C to stop)")
    print("  Each learner sends the header 'X-Learner: <name>' to keep their own counters.")
    for entry in endpoint_index(app):
        print(f"  {entry['methods']:<28} {entry['path']:<26} {entry['description']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
