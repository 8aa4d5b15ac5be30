"""``python -m coursetools.wheels``: does ``requirements.txt`` install from wheels alone everywhere?

For each CPython from 3.11 to 3.15 and each platform a learner may have (Linux x86_64 and
aarch64, macOS arm64 and x86_64, Windows amd64), ``uv pip compile`` resolves the pinned file
for that interpreter and platform with source builds forbidden (``--only-binary :all:``): it
fails when a pinned version has no wheel there, naming the package. Environment markers are
evaluated for the target, which ``pip download --platform`` cannot do. Needs the package index
(network); prints one line per combination and exits 1 if any fails.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PYTHONS = ("3.11", "3.12", "3.13", "3.14", "3.15")
PLATFORMS = {
    "Linux x86_64": "x86_64-manylinux_2_28",
    "Linux aarch64": "aarch64-manylinux_2_28",
    "macOS arm64": "aarch64-apple-darwin",
    "macOS x86_64": "x86_64-apple-darwin",
    "Windows amd64": "x86_64-pc-windows-msvc",
}


def uv() -> str:
    """The uv pinned in requirements.txt, beside this Python."""
    candidate = Path(sys.executable).with_name("uv")
    return str(candidate) if candidate.exists() else "uv"


def check(python: str, platform: str, requirements: Path) -> str:
    """'' if ``requirements`` installs from wheels for that target, else uv's reason."""
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [uv(), "pip", "compile", str(requirements), "--python-version", python,
             "--python-platform", platform, "--only-binary", ":all:", "--no-header", "--quiet",
             "--output-file", str(Path(scratch) / "resolved.txt")],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
    if result.returncode == 0:
        return ""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    reasons = [line for line in lines if "because" in line or line.startswith("hint")]
    return (reasons or lines or ["uv failed"])[0]


def main() -> int:
    requirements = ROOT / "requirements.txt"
    targets = [(python, name) for python in PYTHONS for name in PLATFORMS]
    with ThreadPoolExecutor(max_workers=5) as pool:
        reasons = list(
            pool.map(lambda t: check(t[0], PLATFORMS[t[1]], requirements), targets)
        )
    failures = 0
    for (python, name), reason in zip(targets, reasons, strict=True):
        failures += bool(reason)
        print(f"CPython {python:<5} {name:<14} {'ok' if not reason else reason}")
    total = len(PYTHONS) * len(PLATFORMS)
    print(f"{total - failures} of {total} combinations install from wheels alone")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
