"""Learner namespaces: one workshop server, separate counters for each learner.

A request names its learner with the ``X-Learner`` header (easiest: a session default header,
``ClientSession(headers={"X-Learner": "ada"})``) or a ``learner`` query parameter. Counters
that lessons rely on (``/stats``, the fail-N-times keys) are kept per learner; requests that
name no learner share the default namespace.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from aiohttp import web

from .errors import bad_request

HEADER = "X-Learner"
QUERY = "learner"
DEFAULT = ""
VALID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# A classroom, not the internet: past this many learners the oldest namespace is forgotten.
MAX_LEARNERS = 256


def learner_of(request: web.Request) -> str:
    """The learner a request belongs to, or ``DEFAULT``; a malformed name is a 400."""
    name = request.headers.get(HEADER)
    if not name and QUERY in request.query_string:  # parse the query only when it may help
        name = request.query.get(QUERY)
    if name is None:
        return DEFAULT
    if not VALID.fullmatch(name):
        bad_request(
            f"a learner name is 1 to 32 letters, digits, '_', '-' or '.', got {name[:40]!r}"
        )
    return name



T = TypeVar("T")


class PerLearner(Generic[T]):
    """One ``T`` per learner, made on first use; the least recently used is dropped past the cap."""

    def __init__(self, factory: Callable[[], T], limit: int = MAX_LEARNERS) -> None:
        self._factory = factory
        self._limit = limit
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, learner: str) -> T:
        item = self._items.get(learner)
        if item is None:
            item = self._items[learner] = self._factory()
            if len(self._items) > self._limit:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(learner)
        return item

    def __contains__(self, learner: object) -> bool:
        return learner in self._items
