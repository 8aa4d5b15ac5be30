"""A pytest plugin for ``coursetools.suite_bench``: each test's wall and CPU time.

CPU time counts the test's process and every process it has running (a notebook's kernel, a
browser, a subprocess). Written as JSON lines to ``$COURSE_TIMINGS/<pid>.jsonl``; does
nothing when that variable is unset.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest


def _cpu_seconds() -> float:
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get("COURSE_TIMINGS")
    if not folder:
        yield
        return
    started, cpu = time.perf_counter(), _cpu_seconds()
    yield
    record = {
        "id": item.nodeid,
        "wall": time.perf_counter() - started,
        "cpu": max(0.0, _cpu_seconds() - cpu),
    }
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
