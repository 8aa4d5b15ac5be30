"""What the server saw: TCP connections, requests per connection, concurrency and a timeline.

The server records from its own thread; a notebook reads a consistent copy with
``ServerStats.snapshot()`` from any thread.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections import Counter, deque
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server handled it. Times are seconds since the stats were reset."""

    id: int
    method: str
    path: str
    connection: int
    client_port: int | None
    start: float
    end: float | None = None
    status: int | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from the request's arrival to its handler's return, if it has ended."""
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class StatsSnapshot:
    """A copy of the server's counters at one moment."""

    connections_opened: int
    requests: int
    requests_per_connection: dict[int, int]
    in_flight: int
    max_in_flight: int
    by_path: dict[str, int]
    timeline: list[RequestRecord] = field(repr=False)

    def as_dict(self, timeline_limit: int | None = None) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data (what ``GET /stats`` returns).

        ``timeline_limit`` keeps only the most recent records; ``timeline_omitted`` says how
        many older ones were left out.
        """
        records = self.timeline
        if timeline_limit is not None and len(records) > timeline_limit:
            records = records[len(records) - timeline_limit :]
        return {
            "connections_opened": self.connections_opened,
            "requests": self.requests,
            "requests_per_connection": {
                str(conn): count for conn, count in self.requests_per_connection.items()
            },
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_path": self.by_path,
            "timeline": [
                {name: getattr(record, name) for name in _RECORD_FIELDS} for record in records
            ],
            "timeline_omitted": len(self.timeline) - len(records),
        }


_RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))

# Bounds, so a server left running for a whole workshop keeps its memory flat. A learner's
# own stats (X-Learner) keep less than the server-wide ones: up to 256 learners each have them.
MAX_TIMELINE = 10_000
MAX_DISTINCT_PATHS = 1_000
MAX_TRACKED_CONNECTIONS = 10_000
LEARNER_TIMELINE = 2_000
LEARNER_DISTINCT_PATHS = 200
LEARNER_TRACKED_CONNECTIONS = 2_000
# A path is recorded (in the timeline and by_path) cut to this many characters.
MAX_PATH_CHARS = 100
OTHER_PATHS = "(other paths)"


def recorded_path(path: str) -> str:
    """``path`` as the stats keep it: cut to MAX_PATH_CHARS, and shared between records."""
    if len(path) > MAX_PATH_CHARS:
        path = path[: MAX_PATH_CHARS - 1] + "…"
    return sys.intern(path)


class ServerStats:
    """Thread-safe counters fed by the stats middleware.

    ``max_timeline``, ``max_paths`` and ``max_connections`` bound what it keeps (default: the
    module's MAX_* constants, read when the stats are reset).

    A connection is counted when it carries its first request. The timeline keeps the last
    ``MAX_TIMELINE`` finished requests plus those in flight, and ``requests_per_connection``
    the last ``MAX_TRACKED_CONNECTIONS`` connections.
    """

    def __init__(
        self,
        max_timeline: int | None = None,
        max_paths: int | None = None,
        max_connections: int | None = None,
    ) -> None:
        self._max_timeline = max_timeline
        self._max_paths = max_paths
        self._max_connections = max_connections
        self._lock = threading.Lock()
        # id(transport) -> (a weak reference to it, its connection number). Keyed by id, not
        # by a WeakKeyDictionary, because this lookup runs on every request.
        self._connection_ids: dict[int, tuple[weakref.ref[Any], int]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far and restart the clock."""
        with self._lock:
            self._epoch = time.perf_counter()
            self._connection_ids.clear()
            self._connections_opened = 0
            self._requests_per_connection: Counter[int] = Counter()
            self._by_path: Counter[str] = Counter()
            self._open: dict[int, RequestRecord] = {}
            self._done: deque[RequestRecord] = deque(maxlen=self._max_timeline or MAX_TIMELINE)
            self._next_request = 1
            self._max_in_flight = 0

    def request_started(
        self, transport: Any, method: str, path: str, client_port: int | None
    ) -> int:
        """Record a request's arrival on ``transport``; returns its id for ``request_ended``."""
        now = time.perf_counter()
        with self._lock:
            known = self._connection_ids.get(id(transport))
            if known is not None and known[0]() is transport:
                connection = known[1]
            else:
                self._connections_opened += 1
                connection = self._connections_opened
                self._connection_ids[id(transport)] = (
                    weakref.ref(transport, self._forget(id(transport))),
                    connection,
                )
                tracked = self._max_connections or MAX_TRACKED_CONNECTIONS
                if len(self._requests_per_connection) >= tracked:
                    oldest = next(iter(self._requests_per_connection))
                    del self._requests_per_connection[oldest]
            self._requests_per_connection[connection] += 1
            path = recorded_path(path)
            counted_as = path
            distinct = self._max_paths or MAX_DISTINCT_PATHS
            if path not in self._by_path and len(self._by_path) >= distinct:
                counted_as = OTHER_PATHS
            self._by_path[counted_as] += 1
            request_id = self._next_request
            self._next_request += 1
            self._open[request_id] = RequestRecord(
                request_id, method, path, connection, client_port, now - self._epoch
            )
            self._max_in_flight = max(self._max_in_flight, len(self._open))
            return request_id

    def _forget(self, key: int) -> Any:
        """A weakref callback that drops a closed transport's entry (no lock: GC may run
        while this thread holds it; a dict pop is atomic)."""
        return lambda _ref: self._connection_ids.pop(key, None)

    def request_ended(self, request_id: int, status: int) -> None:
        """Record that the handler for ``request_id`` returned ``status``."""
        now = time.perf_counter()
        with self._lock:
            record = self._open.pop(request_id, None)
            if record is None:  # the stats were reset while this request ran
                return
            # Positional and field by field: this runs on every request (asdict is too slow).
            ended = RequestRecord(
                record.id,
                record.method,
                record.path,
                record.connection,
                record.client_port,
                record.start,
                now - self._epoch,
                status,
            )
            self._done.append(ended)

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of every counter, safe to keep and plot."""
        with self._lock:
            timeline = sorted([*self._done, *self._open.values()], key=lambda r: r.id)
            return StatsSnapshot(
                connections_opened=self._connections_opened,
                requests=self._next_request - 1,
                requests_per_connection=dict(self._requests_per_connection),
                in_flight=len(self._open),
                max_in_flight=self._max_in_flight,
                by_path=dict(self._by_path),
                timeline=timeline,
            )
