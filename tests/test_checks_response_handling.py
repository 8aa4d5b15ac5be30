"""Exercise 05's checkers: correct alternatives pass, each typical mistake gets its diagnosis."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest

from local_server.checks import response_handling as check

# --- Task 1: stream_records --------------------------------------------------------------


async def records_by_line(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            if line.strip():
                yield json.loads(line)


async def records_by_readline(session, url):
    async with session.get(url) as response:
        while line := await response.content.readline():
            if line.strip():
                yield json.loads(line)


async def records_from_buffered_chunks(session, url):
    """Correct too: chunks joined in a buffer and cut at newlines."""
    async with session.get(url) as response:
        pending = b""
        async for chunk in response.content.iter_chunked(100):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)
        if pending.strip():
            yield json.loads(pending)


async def records_by_readuntil(session, url):
    async with session.get(url) as response:
        while not response.content.at_eof():
            line = await response.content.readuntil(b"\n")
            if line.strip():
                yield json.loads(line.decode("utf-8"))


@pytest.mark.parametrize(
    "answer",
    [records_by_line, records_by_readline, records_from_buffered_chunks, records_by_readuntil],
)
def test_stream_records_accepts_correct_alternatives(answer):
    verdict = check.stream_records.diagnose(answer)
    assert verdict.passed, verdict.render()


async def records_after_whole_text(session, url):
    async with session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        yield json.loads(line)


async def records_split_with_blank(session, url):
    async with session.get(url) as response:
        text = await response.text()
    for line in text.split("\n"):
        yield json.loads(line)


async def records_from_response_json(session, url):
    async with session.get(url) as response:
        for record in await response.json():
            yield record


async def records_from_raw_chunks(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024):
            yield json.loads(chunk)


async def records_from_iter_any(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            yield json.loads(chunk)


async def records_as_a_list(session, url):
    async with session.get(url) as response:
        return [json.loads(line) async for line in response.content]


async def records_unparsed(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            yield line


async def records_without_the_last(session, url):
    async with session.get(url) as response:
        lines = [line async for line in response.content]
    for line in lines[:-1]:
        yield json.loads(line)


def records_not_async(session, url):
    return iter([])


async def records_stub(session, url):
    raise NotImplementedError("your code here")
    yield  # an async generator, as the exercise's stub is not; both must say so


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (records_split_with_blank, "blank-line"),
        (records_from_response_json, "json-on-ndjson"),
        (records_from_raw_chunks, "not-line-by-line"),
        (records_from_iter_any, "not-line-by-line"),
        (records_as_a_list, "not-a-generator"),
        (records_unparsed, "not-parsed"),
        (records_without_the_last, "wrong-records"),
        (records_not_async, "not-async"),
        (records_stub, "not-implemented"),
    ],
)
def test_stream_records_diagnoses_each_mistake(answer, problem):
    verdict = check.stream_records.diagnose(answer)
    assert verdict.problem == problem, verdict.render()
    assert verdict.message


def test_a_plain_stub_is_not_implemented():
    def stub(session, url):
        raise NotImplementedError("your code here")

    assert check.stream_records.diagnose(stub).problem == "not-implemented"


def test_reading_the_whole_stream_is_seen_waiting():
    verdict = check.stream_records.diagnose(records_after_whole_text)
    assert verdict.problem == "read-whole-stream", verdict.render()
    assert "yielded nothing while the stream was open" in verdict.message
    assert "async for line in response.content" in verdict.hint


# --- Task 2: sha256_of -------------------------------------------------------------------


async def sha_iter_chunked(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def sha_iter_any(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            digest.update(chunk)
    return digest.hexdigest()


async def sha_read_n(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while chunk := await response.content.read(256 * 1024):
            digest.update(chunk)
    return digest.hexdigest().upper()


async def sha_exact_pieces(session, url):
    """Correct too: bounded by 1 MiB pieces, larger than needed but not growing with the file."""
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while True:
            try:
                digest.update(await response.content.readexactly(1024 * 1024))
            except asyncio.IncompleteReadError as end:
                digest.update(end.partial)
                return digest.hexdigest()


async def sha_slow_large_chunks(session, url):
    """Correct too: 1 MiB chunks and a slow loop, so the stream's buffer fills up."""
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024 * 1024):
            digest.update(chunk)
            await asyncio.sleep(0.005)
    return digest.hexdigest()


@pytest.mark.parametrize(
    "answer",
    [sha_iter_chunked, sha_iter_any, sha_read_n, sha_exact_pieces, sha_slow_large_chunks],
)
def test_sha256_of_accepts_correct_alternatives(answer):
    verdict = check.sha256_of.diagnose(answer)
    assert verdict.passed, verdict.render()


async def sha_read_whole(session, url):
    async with session.get(url) as response:
        return hashlib.sha256(await response.read()).hexdigest()


async def sha_chunks_kept(session, url):
    chunks = []
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            chunks.append(chunk)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


async def sha_read_then_stream(session, url):
    """The seed's order: the body is read first, so the stream is empty."""
    digest = hashlib.sha256()
    async with session.get(url) as response:
        await response.read()
        async for chunk in response.content.iter_chunked(1024):
            digest.update(chunk)
    return digest.hexdigest()


async def sha_of_each_chunk(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            last = hashlib.sha256(chunk).hexdigest()
    return last


async def sha_raw_bytes(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest.digest()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (sha_read_whole, "read-whole-body"),
        (sha_chunks_kept, "read-whole-body"),
        (sha_read_then_stream, "digest-of-nothing"),
        (sha_of_each_chunk, "wrong-digest"),
        (sha_raw_bytes, "digest-not-hex"),
    ],
)
def test_sha256_of_diagnoses_each_mistake(answer, problem):
    verdict = check.sha256_of.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_memory_is_measured_even_when_tracemalloc_already_runs():
    import tracemalloc

    tracemalloc.start()
    try:
        assert check.sha256_of.diagnose(sha_read_whole).problem == "read-whole-body"
        assert tracemalloc.is_tracing(), "the check must leave the learner's tracing on"
    finally:
        tracemalloc.stop()
    assert check.sha256_of.diagnose(sha_iter_chunked).passed


# --- Task 3: fetch_json ------------------------------------------------------------------


async def json_skipping_the_check(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding, content_type=None)


async def json_from_text(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding))


async def json_from_bytes(session, url, encoding=None):
    async with session.get(url) as response:
        body = await response.read()
        return json.loads(body.decode(encoding or response.get_encoding()))


@pytest.mark.parametrize(
    "answer", [json_skipping_the_check, json_from_text, json_from_bytes]
)
def test_fetch_json_accepts_correct_alternatives(answer):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.passed, verdict.render()


async def json_strict_content_type(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding)


async def json_swallowing_the_error(session, url, encoding=None):
    async with session.get(url) as response:
        try:
            return await response.json(encoding=encoding)
        except aiohttp.ContentTypeError:
            return None


async def json_ignoring_encoding(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(content_type=None)


async def json_with_replacement_characters(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(errors="replace"))


async def json_always_utf8(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding or "utf-8"))


async def json_from_raw_bytes(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.read())


async def json_returns_text(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.text(encoding=encoding)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (json_strict_content_type, "content-type-crash"),
        (json_swallowing_the_error, "gave-up"),
        (json_ignoring_encoding, "wrong-charset"),
        (json_with_replacement_characters, "wrong-charset"),
        (json_always_utf8, "ignored-charset-label"),
        (json_from_raw_bytes, "ignored-charset-label"),
        (json_returns_text, "not-parsed"),
    ],
)
def test_fetch_json_diagnoses_each_mistake(answer, problem):
    verdict = check.fetch_json.diagnose(answer)
    assert verdict.problem == problem, verdict.render()


def test_mojibake_is_shown_to_the_learner():
    async def latin1_always(session, url, encoding=None):
        async with session.get(url) as response:
            return json.loads((await response.read()).decode("latin-1"))

    verdict = check.fetch_json.diagnose(latin1_always)
    assert verdict.problem == "wrong-charset"
    assert "'Zürich' as 'ZÃ¼rich'" in verdict.message
