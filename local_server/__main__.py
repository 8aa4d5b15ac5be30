"""``python -m local_server [--host H] [--port P]``: the course server for a workshop."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from aiohttp import web

from .app import create_app, endpoint_index
from .runner import LOOPBACK

DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: addresses other machines cannot reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not is_loopback(args.host):
        print(
            f"WARNING: binding to {args.host} makes the course server reachable from other "
            "machines. Do this only on a network you trust (a classroom).",
            file=sys.stderr,
        )
    app = create_app(seed=args.seed)

    async def announce(app: web.Application) -> None:
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"Course server on http://{shown_host}:{args.port}  (Ctrl-C to stop)")
        for entry in endpoint_index(app):
            print(f"  {entry['methods']:<28} {entry['path']:<26} {entry['description']}")
        sys.stdout.flush()

    app.on_startup.append(announce)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    print("Course server stopped.")


if __name__ == "__main__":
    main()
