"""Sphinx configuration of the course website, built by ``python -m coursetools.site``.

The notebooks are rendered from their stored outputs (never executed here: ``make test`` has
already proved them). Each page has a launch menu (Binder, a JupyterHub through nbgitpuller,
Codespaces) and a download button.
"""

from __future__ import annotations

import os

project = "Learn aiohttp"
author = "The aiohttp course authors"
copyright = "2026, the aiohttp course authors (code MIT, prose CC BY 4.0)"

# Where the course is published; one place to change when the repository moves.
REPOSITORY = os.environ.get("COURSE_REPOSITORY", "https://github.com/aiohttp-course/learn-aiohttp")
BRANCH = os.environ.get("COURSE_BRANCH", "main")
JUPYTERHUB = os.environ.get("COURSE_JUPYTERHUB", "https://hub.example.org")

extensions = ["myst_nb", "course_launch"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"
nb_merge_streams = True
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header"]  # lessons start with an H1 then jump to H2 sections by design

html_theme = "sphinx_book_theme"
html_title = "Learn aiohttp"
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "jupyterhub_url": JUPYTERHUB,
        "notebook_interface": "jupyterlab",
    },
    "show_toc_level": 2,
}
# The theme's colour mode on a first visit: without it the page logs "Got invalid theme mode"
# as a console error until a mode has been stored.
html_context = {"default_mode": "auto"}
html_static_path: list[str] = []
