"""``python -m coursetools.site [OUT]``: build the course website from the stored notebooks.

The lessons, exercises and solutions are rendered as they are stored (outputs included, nothing
executed: ``make test`` proves them), with the README's lesson map as the home page and its
server sections as a reference page. Sphinx (myst-nb, sphinx-book-theme) builds the pages into
``_build/site`` and fails on any warning; then every link and image inside the site is
checked. Configuration: ``site/conf.py``.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat

from .notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, notebooks_in, read

BUILD = ROOT / "_build"
STAGE = BUILD / "site-src"
OUT = BUILD / "site"
SITE = ROOT / "site"
REPOSITORY_BLOB = "https://github.com/aiohttp-course/learn-aiohttp/blob/main/"
# Relative links that stay inside the site: notebooks (every other file, README.md and
# LICENSE-CONTENT.md included, is linked on the repository).
DOCUMENT_SUFFIXES = (".ipynb",)


def readme_section(text: str, heading: str) -> str:
    """The README's ``## heading`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", text, re.M | re.S)
    if match is None:
        raise ValueError(f"README.md has no '## {heading}' section")
    return match.group(1)


def link_outside_the_site(markdown: str, folder: str = "") -> str:
    """Point relative links to files that are not pages (LICENSE, code) at the repository.

    ``folder`` is where the Markdown lives in the repository ("notebooks" for a lesson).
    """

    def rewrite(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        path = target.split("#")[0]
        if "://" in target or target.startswith("#") or path.endswith(DOCUMENT_SUFFIXES):
            return match.group(0)
        in_repository = posixpath.normpath(posixpath.join(folder, path))
        return f"[{label}]({REPOSITORY_BLOB}{in_repository})"

    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", rewrite, markdown)


def home_page(readme: str) -> str:
    """index.md: the README's introduction and lesson map, and the site's table of contents."""
    title, _, rest = readme.partition("\n")
    intro = rest.split("\n## ", 1)[0]
    lessons = readme_section(readme, "Lesson map")
    tocs = [
        ("Lessons", "notebooks"),
        ("Exercises", "exercises"),
        ("Solutions", "solutions"),
    ]
    toctrees = "".join(
        f"\n```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n:hidden:\n\n"
        + "".join(f"{folder}/{path.stem}\n" for path in sorted((STAGE / folder).glob("*.ipynb")))
        + "```\n"
        for caption, folder in tocs
    )
    toctrees += "\n```{toctree}\n:caption: Reference\n:maxdepth: 1\n:hidden:\n\nserver\n```\n"
    return link_outside_the_site(f"{title}\n{intro}\n## Lesson map\n{lessons}{toctrees}")


def server_page(readme: str) -> str:
    """server.md: the README's description of the local server."""
    body = readme_section(readme, "The local server")
    return link_outside_the_site(f"# The local server\n{body}")


def stage() -> None:
    """Copy what the site is built from into ``_build/site-src``."""
    shutil.rmtree(STAGE, ignore_errors=True)
    for folder in (LESSONS, EXERCISES, SOLUTIONS):
        target = STAGE / folder.name
        target.mkdir(parents=True)
        for path in notebooks_in(folder):
            notebook = read(path)
            for cell in notebook.cells:
                if cell.cell_type == "markdown":
                    cell.source = link_outside_the_site(cell.source, folder.name)
            nbformat.write(notebook, target / path.name)
    for path in SITE.glob("*.py"):
        shutil.copy2(path, STAGE / path.name)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (STAGE / "index.md").write_text(home_page(readme), encoding="utf-8")
    (STAGE / "server.md").write_text(server_page(readme), encoding="utf-8")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and ((name == "href" and tag == "a") or (name == "src" and tag == "img")):
                self.targets.append(value)


def broken_links(out: Path) -> list[str]:
    """Links and images inside the built site that point to nothing."""
    broken = []
    for page in out.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            parts = urlparse(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            resolved = (page.parent / unquote(parts.path)).resolve()
            if not resolved.exists():
                broken.append(f"{page.relative_to(out)} -> {target}")
    return broken


class SiteError(Exception):
    """The site did not build cleanly: a warning, or a link to nothing."""


def build(out: Path = OUT) -> Path:
    """Stage, build with every warning an error, check the links; the site's folder."""
    stage()
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(BUILD / "site-doctrees"), str(STAGE), str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=STAGE, capture_output=True, text=True)
    if result.returncode:
        raise SiteError(f"the site has warnings:\n{result.stderr.strip()[-3000:]}")
    broken = broken_links(out)
    if broken:
        raise SiteError("broken links in the site:\n  " + "\n  ".join(broken[:20]))
    return out


if __name__ == "__main__":
    try:
        built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
    except SiteError as error:
        sys.exit(str(error))
    print(f"built the site in {built.relative_to(ROOT) if built.is_relative_to(ROOT) else built}")
