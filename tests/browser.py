"""Driving a real Chromium for the browser tests (JupyterLab as a learner uses it, the website).

Playwright (from PyPI) drives Debian's ``chromium`` package: Playwright cannot download its own
browsers here. Without a Chromium the tests are skipped with one line saying how to enable
them; ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    """Debian's chromium (or $COURSE_CHROMIUM), if installed."""
    candidate = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium")
    return candidate if candidate and Path(candidate).exists() else None


needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="browser tests need Chromium: apt install chromium fonts-noto-color-emoji "
    "(or set COURSE_CHROMIUM to a Chromium binary); .ci/run installs it",
)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot_on_failure(page: object, folder: Path, name: str) -> Path:
    """Save what the page shows, for a failure to be looked at; the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
