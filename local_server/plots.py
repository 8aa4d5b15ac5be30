"""Pictures of what the server saw, for the lessons (matplotlib is imported on first use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .stats import RequestRecord


def plot_timeline(ax: Any, records: Sequence[RequestRecord], title: str) -> None:
    """Draw one bar per request, from its start to its end, coloured by its TCP connection.

    Requests that share a colour shared a connection; the x axis is milliseconds since the
    first request arrived.
    """
    from matplotlib import colormaps

    colours = colormaps["tab20"]
    first = min((record.start for record in records), default=0.0)
    for row, record in enumerate(records):
        end = record.end if record.end is not None else record.start
        ax.barh(
            row,
            max((end - record.start) * 1000, 0.5),
            left=(record.start - first) * 1000,
            color=colours((record.connection - 1) % 20),
        )
    connections = len({record.connection for record in records})
    ax.set_title(f"{title}\n{len(records)} requests, {connections} TCP connections")
    ax.set_xlabel("ms since the first request")
    ax.set_ylabel("request")
    ax.invert_yaxis()
