"""``python -m coursetools.jupyter_setup``: the course's defaults for this JupyterLab.

Copies ``jupyter/overrides.json`` (no Jupyter-news pop-up, the notebook's kernel started without
a "Select Kernel" dialog) into ``{prefix}/share/jupyter/lab/settings/`` and
``jupyter/jupyter_server_config.json`` (build leftovers hidden from the file browser, lesson 00
opened first) into ``{prefix}/etc/jupyter/``, for the Python running
it: the course's ``.venv``, a Binder image, a devcontainer. A learner's own settings still win.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .notebooks import ROOT

SOURCES = ROOT / "jupyter"
TARGETS = {
    "overrides.json": Path("share/jupyter/lab/settings/overrides.json"),
    # Not the .d folder: Jupyter Server reads only extension switches from there.
    "jupyter_server_config.json": Path("etc/jupyter/jupyter_server_config.json"),
}


def install(prefix: Path = Path(sys.prefix)) -> list[Path]:
    """Copy the course's Jupyter settings under ``prefix``; the files written."""
    written = []
    for name, relative in TARGETS.items():
        target = prefix / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCES / name, target)
        written.append(target)
    return written


if __name__ == "__main__":
    for path in install():
        print(f"wrote {path}")
