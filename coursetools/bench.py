"""``make bench``: the server's start time, throughput and memory; each notebook's run time.

A benchmark, not a test: it prints figures and asserts nothing. Throughput is measured by a
load generator in its own process (wrk if it is installed, else ``coursetools.loadgen``)
against each server in its own process: a bare aiohttp hello-world, the course server, and the
course's endpoints without their middlewares. Notebooks are executed in a fresh kernel each
(kernel start-up included, as a learner or CI pays it) and not written back.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local_server import start_server

from . import check_timing, suite_bench, workshop
from .notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, execute, notebooks_in, read

SERVER_STARTS = 20
LOAD_CONNECTIONS = 64
LOAD_SECONDS = 3
WARM_UP_SECONDS = 1


def server_start_seconds(repeats: int = SERVER_STARTS) -> list[float]:
    """Wall time of ``start_server()`` (bound and answering) and of ``stop()``, per run."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        server = start_server()
        timings.append(time.perf_counter() - started)
        server.stop()
    return timings


@contextmanager
def server_process(kind: str) -> Iterator[tuple[str, int]]:
    """Run ``coursetools.bench_servers KIND``; yield its base URL and process id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "coursetools.bench_servers", kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[-1])
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def requests_per_second(url: str, seconds: int = LOAD_SECONDS) -> float:
    """Completed keep-alive requests per second against ``url``."""
    wrk = shutil.which("wrk")
    if wrk:
        command = [wrk, "-t1", f"-c{LOAD_CONNECTIONS}", f"-d{seconds}s", url]
        pattern = r"Requests/sec:\s*([\d.]+)"
    else:
        command = [sys.executable, "-m", "coursetools.loadgen", url,
                   str(LOAD_CONNECTIONS), str(seconds)]  # fmt: skip
        pattern = r"requests/s:\s*([\d.]+)"
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"could not read the load generator's output:\n{output}")
    return float(match.group(1))


def resident_mib(pid: int) -> float:
    """The process's resident memory (VmRSS), in MiB; NaN where /proc is not available."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return float("nan")
    kib = re.search(r"VmRSS:\s*(\d+)", status.read_text())
    return int(kib.group(1)) / 1024 if kib else float("nan")


def throughput() -> None:
    generator = "wrk" if shutil.which("wrk") else (
        "coursetools.loadgen, in Python: it, not the server, is likely the limit, so the ratios "
        "below say little; install wrk for real figures"
    )
    print(f"throughput on GET /get, {LOAD_CONNECTIONS} keep-alive connections, "
          f"{LOAD_SECONDS} s each, load from {generator}:")
    results = {}
    for kind in ("bare", "uninstrumented", "course"):
        with server_process(kind) as (url, pid):
            requests_per_second(url + "/get", WARM_UP_SECONDS)
            results[kind] = requests_per_second(url + "/get")
            memory = resident_mib(pid)
        print(f"  {kind:<15} {results[kind]:9.0f} requests/s   resident memory {memory:6.1f} MiB")
    course = results["course"]
    print(f"  course / bare hello-world:         {course / results['bare']:.2f}")
    print(f"  course / same endpoints, no stats: {course / results['uninstrumented']:.2f}")


def notebook_seconds() -> list[tuple[str, float]]:
    rows = []
    for folder in (LESSONS, SOLUTIONS, EXERCISES):
        for path in notebooks_in(folder):
            started = time.perf_counter()
            execute(read(path), path.parent)
            rows.append((str(path.relative_to(ROOT)), time.perf_counter() - started))
    return rows


def main() -> None:
    starts = server_start_seconds()
    print(f"server start in a notebook (start_server), {len(starts)} runs: "
          f"median {statistics.median(starts) * 1000:.1f} ms, max {max(starts) * 1000:.1f} ms")
    print()
    throughput()
    print()
    print("workshop: the course server (python -m local_server) on one core, the room on another")
    workshop.report()
    print()
    print("each check on the correct answers tests/adversarial holds for it:")
    check_timing.report()
    print()
    print("the test suite, once, against its CPU floor:")
    suite_bench.report(suite_bench.run_suite([]))
    print()
    rows = notebook_seconds()
    width = max(len(name) for name, _ in rows)
    print(f"{'notebook (fresh kernel each)':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print(f"{'total':<{width}}  {sum(seconds for _, seconds in rows):7.2f}")


if __name__ == "__main__":
    main()
