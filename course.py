"""The course's commands, on any system with Python 3.11+: ``python course.py lab`` and friends.

``make lab`` and ``make test`` run this file; on Windows (no ``make``), run it directly:
``py course.py lab``. Every command first builds ``.venv`` from ``requirements.txt`` (and
again whenever the requirements, ``pyproject.toml`` or the Jupyter settings are newer than it).

    python course.py lab [ARGS]      open the course in JupyterLab (lesson 00 first)
    python course.py test [ARGS]     lint, then every test (pytest ARGS)
    python course.py outputs         re-execute lessons and solutions, regenerate exercises
    python course.py exercises       regenerate exercises from solutions
    python course.py site            build the course website into _build/site
    python course.py bench           the benchmark (not a test)
    python course.py setup           only build (or refresh) .venv
    python course.py clean           remove .venv and caches

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".requirements-installed"
INPUTS = [
    ROOT / "requirements.txt",
    ROOT / "pyproject.toml",
    ROOT / "jupyter" / "overrides.json",
    ROOT / "jupyter" / "jupyter_server_config.json",
]
MINIMUM = (3, 11)


def run(*command: str | os.PathLike[str]) -> None:
    """Run ``command`` in the repository; stop with its exit code if it fails."""
    completed = subprocess.run([str(part) for part in command], cwd=ROOT, env=environment())
    if completed.returncode:
        sys.exit(completed.returncode)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # The kernel's debugger otherwise warns about frozen modules on every start.
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def ensure_venv() -> None:
    """Build or refresh ``.venv`` when it is missing or older than what it is built from."""
    if sys.version_info < MINIMUM:
        sys.exit(
            f"This course needs Python {MINIMUM[0]}.{MINIMUM[1]} or newer, and this is "
            f"{sys.version.split()[0]}. Run this file with a newer Python "
            "(make PYTHON=python3.12 ..., or py -3.12 course.py ... on Windows)."
        )
    if STAMP.exists() and all(path.stat().st_mtime <= STAMP.stat().st_mtime for path in INPUTS):
        return
    if not PYTHON.exists():
        print(f"creating {VENV.name} with Python {sys.version.split()[0]}")
        venv.create(VENV, with_pip=True)
    run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements.txt")
    run(PYTHON, "-m", "coursetools.jupyter_setup")
    STAMP.touch()


def lab(args: list[str]) -> None:
    extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    command = [str(BIN / "jupyter"), "lab", "--notebook-dir=.", *extra, *args]
    if os.name == "posix":  # become JupyterLab: Ctrl-C and signals reach it, nothing is left
        os.chdir(ROOT)
        os.execve(command[0], command, environment())
    run(*command)


def test(args: list[str]) -> None:
    run(BIN / "ruff", "check", ".")
    run(PYTHON, "-m", "pytest", *args)


COMMANDS = {
    "lab": lab,
    "test": test,
    "lint": lambda args: run(BIN / "ruff", "check", ".", *args),
    "outputs": lambda args: (
        run(PYTHON, "-m", "coursetools.execute", "notebooks", "solutions", *args),
        run(PYTHON, "-m", "coursetools.make_exercises"),
    ),
    "exercises": lambda args: run(PYTHON, "-m", "coursetools.make_exercises", *args),
    "site": lambda args: run(PYTHON, "-m", "coursetools.site", *args),
    "bench": lambda args: run(PYTHON, "-m", "coursetools.bench", *args),
    "setup": lambda args: None,
}


def clean() -> None:
    for path in (VENV, ROOT / ".pytest_cache", ROOT / ".ruff_cache", ROOT / "_build"):
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    command, args = argv[0], argv[1:]
    if command == "clean":
        clean()
        return
    if command not in COMMANDS:
        sys.exit(f"unknown command {command!r}; try: python course.py help")
    ensure_venv()
    COMMANDS[command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
