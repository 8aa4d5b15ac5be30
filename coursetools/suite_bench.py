"""The test suite against its own floor: ``make bench`` runs it once and reports how close.

The floor is the suite's CPU time divided by the machine's cores: no schedule can finish
sooner. The ratio of the wall time to it says how much of the run is spent waiting (sleeps
and timeouts a test needs, servers answering, a worker idle at the end). For the ten slowest
tests, each test's own CPU time beside its wall time says why it is slow: mostly CPU, or mostly
waiting. ``python -m coursetools.suite_bench [pytest args]``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .notebooks import ROOT

PLUGIN = "coursetools.suite_timing"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_suite(args: list[str]) -> dict:
    """Run pytest once; wall and CPU time (every process it started), and per-test timings."""
    with tempfile.TemporaryDirectory() as scratch:
        timings = Path(scratch) / "timings"
        env = dict(os.environ, COURSE_TIMINGS=str(timings))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", PLUGIN, *args], cwd=ROOT, env=env
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        tests = [
            json.loads(line)
            for path in timings.glob("*.jsonl")
            for line in path.read_text().splitlines()
        ]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "tests": tests, "returncode": completed.returncode}


def why(test: dict) -> str:
    share = test["cpu"] / test["wall"] if test["wall"] else 0.0
    if share >= 0.6:
        return f"CPU ({share:.0%} of its time on a core)"
    return f"waiting ({share:.0%} on a core: deliberate delays, timeouts, servers answering)"


def report(result: dict) -> None:
    floor = result["cpu"] / cores()
    print(
        f"test suite: {result['wall']:.0f} s wall, {result['cpu']:.0f} s CPU on {cores()} cores "
        f"(floor {floor:.0f} s): {result['wall'] / floor:.2f}x its floor"
        + ("" if result["returncode"] == 0 else f"  [pytest exited {result['returncode']}]")
    )
    print("the ten slowest tests (wall s, own CPU s, why):")
    for test in sorted(result["tests"], key=lambda t: t["wall"], reverse=True)[:10]:
        print(f"  {test['wall']:6.1f} {test['cpu']:6.1f}  {test['id'][:90]}  {why(test)}")


def main(args: list[str]) -> int:
    result = run_suite(args)
    report(result)
    return result["returncode"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
