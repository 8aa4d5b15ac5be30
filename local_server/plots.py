"""Pictures of what the server saw, for the lessons (matplotlib is imported on first use).

``show(fig, alt)`` displays a figure with its alternative text: as an HTML ``<img alt=...>``
(JupyterLab shows that one; its own image renderer has no alt text) and as PNG data with the
alt text in its metadata (for nbconvert and the course website), then closes it, so the
inline backend does not show it a second time.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from .stats import RequestRecord


def show(fig: Any, alt: str) -> None:
    """Display ``fig`` with ``alt`` as its alternative text (what the plot shows), then close it."""
    from IPython.display import display
    from matplotlib import pyplot

    if not alt.strip():
        raise ValueError("a plot needs alternative text that says what it shows")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    pyplot.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = html.escape(alt, quote=True)
    display(
        {
            "text/html": f'<img src="data:image/png;base64,{png}" alt="{text}">',
            "image/png": png,
            "text/plain": f"<plot: {alt}>",
        },
        metadata={"image/png": {"alt": alt}},
        raw=True,
    )


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
