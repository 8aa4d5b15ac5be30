"""The course's local aiohttp server, its in-notebook runner, and the exercise checkers.

In a notebook::

    from local_server import start_server
    server = start_server()          # a free port on 127.0.0.1, in a background thread
    server.url                       # 'http://127.0.0.1:PORT'
    server.stats()                   # what the server saw
    server.stop()                    # or leave it: it stops when the kernel exits
"""

from .app import create_app
from .runner import LocalServer, start_server
from .stats import RequestRecord, ServerStats, StatsSnapshot

__all__ = [
    "LocalServer",
    "RequestRecord",
    "ServerStats",
    "StatsSnapshot",
    "create_app",
    "start_server",
]
