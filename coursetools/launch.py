"""``python -m coursetools.launch``: write the one-click launch files from what CI tests.

Binder (repo2docker) builds the course from ``binder/``: ``runtime.txt`` (a Python that
``make test`` passes on), ``requirements.txt`` (written here: ``requirements.txt`` without
the course's own ``-e .``, so repo2docker can build and cache the dependency layer before it
copies the repository, plus the ``notebook`` release that matches the pinned JupyterLab, since
the image ships its own), ``postBuild`` (installs the course package and its Jupyter settings)
and ``start`` (the environment ``make`` exports). A test fails when the file is stale.
"""

from __future__ import annotations

import sys

from .notebooks import ROOT

BINDER = ROOT / "binder"
# repo2docker's image ships notebook 7.4, which needs JupyterLab 4.4; notebook 7.6 goes with
# the JupyterLab 4.6 pinned in requirements.txt.
NOTEBOOK = "notebook==7.6.5"
HEADER = """\
# Written by `python -m coursetools.launch` from ../requirements.txt (do not edit): the same
# pins without the course's own `-e .` (binder/postBuild installs it), plus the notebook
# release that matches the pinned JupyterLab.
"""


def binder_requirements() -> str:
    """binder/requirements.txt: every pin of requirements.txt but the local package."""
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    kept: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("-e "):
            skipping = True
            continue
        if skipping and line.startswith("    #"):
            continue
        skipping = False
        if line.startswith("#"):
            continue
        kept.append(line)
    return HEADER + "\n".join(kept).strip() + f"\n{NOTEBOOK}\n"


def main() -> None:
    target = BINDER / "requirements.txt"
    text = binder_requirements()
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
