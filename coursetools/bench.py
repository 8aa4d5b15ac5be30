"""``make bench``: how long each notebook takes to execute, and how fast the server starts.

A benchmark, not a test: it prints figures and asserts nothing. Notebooks are executed in a
fresh kernel each (kernel start-up included, as a learner or CI pays it) and not written back.
"""

from __future__ import annotations

import statistics
import time

from local_server import start_server

from .notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, execute, notebooks_in, read

SERVER_STARTS = 20


def server_start_seconds(repeats: int = SERVER_STARTS) -> list[float]:
    """Wall time of ``start_server()`` (bound and answering) and of ``stop()``, per run."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        server = start_server()
        timings.append(time.perf_counter() - started)
        server.stop()
    return timings


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
    print(f"server start, {len(starts)} runs: median {statistics.median(starts) * 1000:.1f} ms, "
          f"max {max(starts) * 1000:.1f} ms")
    print()
    rows = notebook_seconds()
    width = max(len(name) for name, _ in rows)
    print(f"{'notebook (fresh kernel each)':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    print(f"{'total':<{width}}  {sum(seconds for _, seconds in rows):7.2f}")


if __name__ == "__main__":
    main()
