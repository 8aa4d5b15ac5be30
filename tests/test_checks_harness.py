"""The harness's own behaviour: where a learner's error came from, and verdicts for odd input."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from local_server import start_server
from local_server.checks.harness import check, gaps, learner_frame, peak_overlap, until_idle


def _parse(text: str) -> object:
    return json.loads(text)  # the error is raised inside the standard library


def test_learner_frame_skips_the_standard_library():
    try:
        _parse("{not json")
    except ValueError as error:
        frame = learner_frame(error)
    assert frame is not None
    assert frame.name == "_parse"
    assert frame.filename == __file__


def test_learner_frame_is_none_when_only_library_code_raised():
    try:
        json.loads("{not json")
    except ValueError as error:
        # the only frame outside the stdlib is this test function itself
        assert learner_frame(error).filename == __file__
        error.__traceback__ = error.__traceback__.tb_next  # drop this test's own frame
        assert learner_frame(error) is None


def _call_through_exec(text: str) -> object:
    namespace: dict = {}
    exec("def wrapper(text):\n    return json.loads(text)\n", {"json": json}, namespace)
    return namespace["wrapper"](text)  # the learner's line: exec'd code sits below it


def test_learner_frame_is_the_caller_of_generated_code():
    """unittest.mock's autospec wrappers (Python 3.13) run as "<string>" below the learner."""
    try:
        _call_through_exec("{not json")
    except ValueError as error:
        frame = learner_frame(error)
    assert frame is not None and frame.name == "_call_through_exec"


@check("demo")
async def demo(learner, server, spy) -> str:
    await learner()
    return "fine"


def test_an_unexpected_error_names_the_learners_line():
    async def learner_code():
        return _parse("{not json")

    verdict = demo.diagnose(learner_code)
    assert verdict.problem == "raised"
    assert verdict.message.startswith("demo raised JSONDecodeError")
    assert " of _parse(): `return json.loads(text)" in verdict.message


def test_not_callable_and_not_implemented():
    assert demo.diagnose(42).problem == "not-callable"

    async def stub():
        raise NotImplementedError("your code here")

    assert demo.diagnose(stub).problem == "not-implemented"


async def test_until_idle_waits_for_handlers_still_running():
    server = start_server()
    try:
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(session.get(f"{server.url}/delay/0.2"))
            await asyncio.sleep(0.05)
            assert server.stats().in_flight == 1
            await until_idle(server)
            assert server.stats().in_flight == 0
            (await request).release()
    finally:
        server.stop()


def test_peak_overlap_counts_an_end_before_a_start_at_the_same_moment():
    assert peak_overlap([]) == 0
    assert peak_overlap([(0, 2), (1, 3), (2, 4)]) == 2
    assert peak_overlap([(0, 5), (1, 2), (1, 3)]) == 3


def test_gaps_between_calls():
    assert gaps([{"t": 1.0}, {"t": 1.5}, {"t": 3.0}]) == [0.5, 1.5]
    assert gaps([{"t": 1.0}]) == []
