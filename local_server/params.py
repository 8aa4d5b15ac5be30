"""Read numbers from paths and query strings, answering 400 with a clear reason when invalid."""

from __future__ import annotations

import math

from aiohttp import web

from .errors import bad_request


def parse_int(text: str, name: str, low: int, high: int) -> int:
    """``text`` as a whole number in ``[low, high]``, or a 400 naming ``name`` and the range."""
    try:
        value = int(text)
    except ValueError:
        bad_request(f"{name} must be a whole number, got {text!r}")
    if not low <= value <= high:
        bad_request(f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_float(text: str, name: str, low: float, high: float) -> float:
    """``text`` as a finite number in ``[low, high]``, or a 400 naming ``name`` and the range."""
    try:
        value = float(text)
    except ValueError:
        bad_request(f"{name} must be a number, got {text!r}")
    if not math.isfinite(value) or not low <= value <= high:
        bad_request(f"{name} must be a number between {low:g} and {high:g}, got {text!r}")
    return value


def path_int(request: web.Request, name: str, low: int, high: int) -> int:
    """The path parameter ``{name}`` as a whole number in range."""
    return parse_int(request.match_info[name], name, low, high)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as a whole number in range, or ``default`` if absent."""
    text = request.query.get(name)
    return default if text is None else parse_int(text, name, low, high)


def query_float(
    request: web.Request, name: str, default: float, low: float, high: float
) -> float:
    """The query parameter ``name`` as a number in range, or ``default`` if absent."""
    text = request.query.get(name)
    return default if text is None else parse_float(text, name, low, high)
