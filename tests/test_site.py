"""The course website: it builds with no warning and no broken link, and every page loads in a
real Chromium without console errors, with every plot shown and described (alt text)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from browser import chromium, needs_chromium

from coursetools import site
from coursetools.notebooks import EXERCISES, LESSONS, SOLUTIONS, notebooks_in


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return site.build(tmp_path_factory.mktemp("site") / "html")


def test_every_notebook_has_a_page_with_its_launch_menu_and_download(built):
    for folder in (LESSONS, EXERCISES, SOLUTIONS):
        for path in notebooks_in(folder):
            page = (built / folder.name / f"{path.stem}.html").read_text(encoding="utf-8")
            assert "mybinder.org/v2/gh/" in page, path.name
            assert f"urlpath=lab/tree/{folder.name}/{path.name}" in page, path.name
            assert "git-pull?repo=" in page and "codespaces.new/" in page, path.name
            assert f"_sources/{folder.name}/{path.name}" in page, path.name  # download
    assert (built / "server.html").exists() and (built / "index.html").exists()


def test_no_broken_internal_link(built):
    assert site.broken_links(built) == []


@pytest.fixture(scope="module")
def served(built):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


BLANK_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="88" height="20"/>'


@needs_chromium
def test_every_page_loads_without_console_errors_and_shows_its_plots(built, served):
    pages = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.html"))
    pages = [p for p in pages if not p.startswith(("_", "genindex", "search"))]
    problems: list[str] = []
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # The front page's badges come from their services (mybinder.org, github.com): the
        # tests run offline, so each is answered with a blank SVG. Anything else a page fetches
        # from the network is a problem: the site must work from its own files.
        fetched: list[str] = []

        def stand_in(route):
            if route.request.resource_type == "image":
                route.fulfill(status=200, content_type="image/svg+xml", body=BLANK_SVG)
            else:
                fetched.append(route.request.url)
                route.abort()

        context.route(lambda url: not url.startswith(served), stand_in)
        for name in pages:
            errors.clear()
            page.goto(f"{served}/{name}", wait_until="load")
            for image in page.locator("img").all():
                if image.is_visible():  # the launch menu's logos stay hidden until it opens
                    image.scroll_into_view_if_needed()
                shown = image.evaluate("i => i.decode().then(() => i.naturalWidth, () => 0)")
                alt = image.get_attribute("alt") or ""
                if not shown:
                    problems.append(f"{name}: an image is not shown")
                if "logo" not in (image.get_attribute("class") or "") and not alt.strip():
                    problems.append(f"{name}: an image without alt text")
            problems += [f"{name}: console: {text[:120]}" for text in errors]
            problems += [f"{name}: fetched {url[:100]}" for url in fetched]
            fetched.clear()
        context.close()
    assert not problems, problems[:20]
