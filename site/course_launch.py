"""A Sphinx extension: adds "Codespaces" to sphinx-book-theme's launch menu of every notebook.

The theme builds the menu (Binder, JupyterHub) in an ``html-page-context`` handler; this one
runs after it and appends a link that opens the repository in a GitHub Codespace, which the
repository's ``.devcontainer/devcontainer.json`` sets up and opens on lesson 00.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse


def add_codespaces(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    repository = urlparse(app.config.html_theme_options.get("repository_url", ""))
    if repository.netloc != "github.com":
        return
    for button in context.get("header_buttons", []):
        if button.get("type") == "group" and button.get("label") == "launch-buttons":
            button["buttons"].append(
                {
                    "type": "link",
                    "text": "Codespaces",
                    "tooltip": "Open the course in a GitHub Codespace",
                    "icon": "fab fa-github",
                    "url": f"https://codespaces.new{repository.path}?quickstart=1",
                    "label": "launch-codespaces-button",
                }
            )


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", add_codespaces, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
