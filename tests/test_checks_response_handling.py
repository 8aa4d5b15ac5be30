"""Exercise 05's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. A few more tests look at what a message says.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import response_handling as check

# --- Task 1: stream_records --------------------------------------------------------------


@correct(check.stream_records, "async for over the content, empty lines skipped")
async def records_by_line(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            if line.strip():
                yield json.loads(line)


@correct(check.stream_records, "readline() in a walrus loop")
async def records_by_readline(session, url):
    async with session.get(url) as response:
        while line := await response.content.readline():
            if line.strip():
                yield json.loads(line)


@correct(check.stream_records, "chunks joined in a buffer of bytes and cut at newlines")
async def records_from_buffered_chunks(session, url):
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


@correct(check.stream_records, "readuntil(b'\\n') until the stream is at its end")
async def records_by_readuntil(session, url):
    async with session.get(url) as response:
        while not response.content.at_eof():
            line = await response.content.readuntil(b"\n")
            if line.strip():
                yield json.loads(line.decode("utf-8"))


@correct(check.stream_records, "async for over the content, no blank-line test at all")
async def records_plainly(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        async for line in response.content:
            yield json.loads(line)


@correct(check.stream_records, "released by hand in a finally block")
async def records_released_in_finally(session, url):
    response = await session.get(url)
    try:
        async for line in response.content:
            if line.strip():
                yield json.loads(line)
    finally:
        response.release()


@correct(check.stream_records, "iter_any() into a bytearray, partitioned at each newline")
async def records_partitioned(session, url):
    buffer = bytearray()
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            buffer += chunk
            while (newline := buffer.find(b"\n")) >= 0:
                line, buffer = bytes(buffer[:newline]), buffer[newline + 1 :]
                if line.strip():
                    yield json.loads(line)
    if buffer.strip():
        yield json.loads(bytes(buffer))


@wrong(check.stream_records, "text(), then the lines", problem="read-whole-stream")
async def records_after_whole_text(session, url):
    async with session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        yield json.loads(line)


@wrong(check.stream_records, "text().split('\\n'), then the lines", problem="read-whole-stream")
async def records_split_with_blank(session, url):
    async with session.get(url) as response:
        text = await response.text()
    for line in text.split("\n"):
        yield json.loads(line)


@wrong(check.stream_records, "response.json() on NDJSON", problem="json-on-ndjson")
async def records_from_response_json(session, url):
    async with session.get(url) as response:
        for record in await response.json():
            yield record


@wrong(check.stream_records, "json(content_type=None) on NDJSON", problem="json-on-ndjson")
async def records_from_response_json_any_type(session, url):
    async with session.get(url) as response:
        for record in await response.json(content_type=None):
            yield record


@wrong(check.stream_records, "json.loads on iter_chunked(1024) chunks", problem="not-line-by-line")
async def records_from_raw_chunks(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024):
            yield json.loads(chunk)


@wrong(check.stream_records, "json.loads on iter_any() chunks", problem="not-line-by-line")
async def records_from_iter_any(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            yield json.loads(chunk)


@wrong(check.stream_records, "decodes each chunk, then splits the text",
       problem="not-line-by-line")
async def records_decoding_chunks(session, url):
    pending = ""
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            pending += chunk.decode()
            *lines, pending = pending.split("\n")
            for line in lines:
                yield json.loads(line)
    if pending:
        yield json.loads(pending)


@wrong(check.stream_records, "returns a list", problem="not-a-generator")
async def records_as_a_list(session, url):
    async with session.get(url) as response:
        return [json.loads(line) async for line in response.content]


@wrong(check.stream_records, "yields the lines unparsed", problem="not-parsed")
async def records_unparsed(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            yield line


@wrong(check.stream_records, "reads every line first, yields all but the last",
       problem="read-whole-stream")
async def records_without_the_last(session, url):
    async with session.get(url) as response:
        lines = [line async for line in response.content]
    for line in lines[:-1]:
        yield json.loads(line)


@wrong(check.stream_records, "a plain def returning an iterator", problem="not-async")
def records_not_async(session, url):
    return iter([])


@wrong(check.stream_records, "the stub, as an async generator", problem="not-implemented")
async def records_stub(session, url):
    raise NotImplementedError("your code here")
    yield  # an async generator, as the exercise's stub is not; both must say so


@wrong(check.stream_records, "the exercise's stub", problem="not-implemented")
async def records_exercise_stub(session, url):
    raise NotImplementedError("your code here")


@wrong(check.stream_records, "a buffer that parses what is left even when it is empty",
       problem="blank-line")
async def records_parses_the_empty_tail(session, url):
    pending = b""
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield json.loads(line)
    yield json.loads(pending)


@wrong(check.stream_records, "a buffer that drops a last line without a newline",
       problem="wrong-records")
async def records_drop_the_tail(session, url):
    pending = b""
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)


_shared_buffer = [b""]


@wrong(check.stream_records, "one buffer shared by every generator (a global)",
       problem="wrong-records")
async def records_with_a_global_buffer(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            _shared_buffer[0] += chunk
            *lines, _shared_buffer[0] = _shared_buffer[0].split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)
    if _shared_buffer[0].strip():
        line, _shared_buffer[0] = _shared_buffer[0], b""
        yield json.loads(line)


@wrong(check.stream_records, "opens a session of its own", problem="own-session")
async def records_own_session(session, url):
    async with aiohttp.ClientSession() as own, own.get(url) as response:
        async for line in response.content:
            yield json.loads(line)


@wrong(check.stream_records, "closes the session it was given", problem="closed-session")
async def records_closing_the_session(session, url):
    async with session, session.get(url) as response:
        async for line in response.content:
            yield json.loads(line)


@wrong(check.stream_records, "never releases the response", problem="not-released")
async def records_never_released(session, url):
    response = await session.get(url)
    async for line in response.content:
        yield json.loads(line)


@wrong(check.stream_records, "releases the response only after the last line",
       problem="not-released")
async def records_released_at_the_end(session, url):
    response = await session.get(url)
    async for line in response.content:
        yield json.loads(line)
    response.release()


@wrong(check.stream_records, "stops quietly when the feed breaks off", problem="error-swallowed")
async def records_swallowing_errors(session, url):
    try:
        async with session.get(url) as response:
            async for line in response.content:
                yield json.loads(line)
    except aiohttp.ClientError:
        return


@wrong(check.stream_records, "skips the first record, taken for a header", problem="wrong-records")
async def records_without_the_first(session, url):
    first = True
    async with session.get(url) as response:
        async for line in response.content:
            if first:
                first = False
                continue
            yield json.loads(line)


@wrong(check.stream_records, "decodes each line as Latin-1", problem="wrong-records")
async def records_decoded_as_latin1(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            yield json.loads(line.decode("latin-1"))


# --- Task 2: sha256_of -------------------------------------------------------------------


@correct(check.sha256_of, "iter_chunked(64 KiB)")
async def sha_iter_chunked(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@correct(check.sha256_of, "iter_any(), raise_for_status first")
async def sha_iter_any(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            digest.update(chunk)
    return digest.hexdigest()


@correct(check.sha256_of, "read(n) in a walrus loop, upper-case hex")
async def sha_read_n(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while chunk := await response.content.read(256 * 1024):
            digest.update(chunk)
    return digest.hexdigest().upper()


@correct(check.sha256_of, "readexactly(1 MiB) until IncompleteReadError")
async def sha_exact_pieces(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while True:
            try:
                digest.update(await response.content.readexactly(1024 * 1024))
            except asyncio.IncompleteReadError as end:
                digest.update(end.partial)
                return digest.hexdigest()


@correct(check.sha256_of, "1 MiB chunks and a slow loop, so the stream's buffer fills up")
async def sha_slow_large_chunks(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024 * 1024):
            digest.update(chunk)
            await asyncio.sleep(0.005)
    return digest.hexdigest()


@correct(check.sha256_of, "each chunk hashed in a worker thread")
async def sha_in_a_thread(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(128 * 1024):
            await asyncio.to_thread(digest.update, chunk)
    return digest.hexdigest()


@correct(check.sha256_of, "readany() until it returns nothing, hashlib.new")
async def sha_readany(session, url):
    digest = hashlib.new("sha256")
    async with session.get(url) as response:
        while chunk := await response.content.readany():
            digest.update(chunk)
    return digest.hexdigest()


@wrong(check.sha256_of, "hashes read(): the whole body", problem="read-whole-body")
async def sha_read_whole(session, url):
    async with session.get(url) as response:
        return hashlib.sha256(await response.read()).hexdigest()


@wrong(check.sha256_of, "keeps every chunk in a list", problem="read-whole-body")
async def sha_chunks_kept(session, url):
    chunks = []
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            chunks.append(chunk)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


@wrong(check.sha256_of, "read() first, then streams an empty body", problem="digest-of-nothing")
async def sha_read_then_stream(session, url):
    """The seed's order: the body is read first, so the stream is empty."""
    digest = hashlib.sha256()
    async with session.get(url) as response:
        await response.read()
        async for chunk in response.content.iter_chunked(1024):
            digest.update(chunk)
    return digest.hexdigest()


@wrong(check.sha256_of, "a hash of each chunk, the last one kept", problem="wrong-digest")
async def sha_of_each_chunk(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            last = hashlib.sha256(chunk).hexdigest()
    return last


@wrong(check.sha256_of, "returns digest() bytes", problem="digest-not-hex")
async def sha_raw_bytes(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest.digest()


@wrong(check.sha256_of, "returns the hash object", problem="wrong-type")
async def sha_hash_object(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest


@wrong(check.sha256_of, "round-trips each chunk through Latin-1 and UTF-8", problem="wrong-digest")
async def sha_latin1_round_trip(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk.decode("latin-1").encode("utf-8"))
    return digest.hexdigest()


@wrong(check.sha256_of, "hashes the text of the body", problem="wrong-digest")
async def sha_of_the_text(session, url):
    async with session.get(url) as response:
        return hashlib.sha256((await response.text()).encode()).hexdigest()


@wrong(check.sha256_of, "hashes only the first MiB", problem="wrong-digest")
async def sha_first_mib(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        digest.update(await response.content.read(1024 * 1024))
    return digest.hexdigest()


@wrong(check.sha256_of, "returns the digest of what came before a break",
       problem="error-swallowed")
async def sha_swallowing_errors(session, url):
    digest = hashlib.sha256()
    try:
        async with session.get(url) as response:
            async for chunk in response.content.iter_chunked(64 * 1024):
                digest.update(chunk)
    except aiohttp.ClientPayloadError:
        pass
    return digest.hexdigest()


@wrong(check.sha256_of, "opens a session of its own", problem="own-session")
async def sha_own_session(session, url):
    async with aiohttp.ClientSession() as own:
        return await sha_iter_chunked(own, url)


@wrong(check.sha256_of, "closes the session it was given", problem="closed-session")
async def sha_closing_the_session(session, url):
    async with session:
        return await sha_iter_chunked(session, url)


# --- Task 3: fetch_json ------------------------------------------------------------------


@correct(check.fetch_json, "json(encoding=encoding, content_type=None)")
async def json_skipping_the_check(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding, content_type=None)


@correct(check.fetch_json, "json.loads(text(encoding=encoding))")
async def json_from_text(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding))


@correct(check.fetch_json, "read() decoded with encoding or get_encoding()")
async def json_from_bytes(session, url, encoding=None):
    async with session.get(url) as response:
        body = await response.read()
        return json.loads(body.decode(encoding or response.get_encoding()))


@correct(check.fetch_json, "the charset or UTF-8, by hand, raise_for_status first")
async def json_charset_by_hand(session, url, encoding=None):
    async with session.get(url) as response:
        response.raise_for_status()
        raw = await response.read()
    return json.loads(raw.decode(encoding or response.charset or "utf-8"))


@correct(check.fetch_json, "content_type='' also skips the check")
async def json_empty_content_type(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding, content_type="")


@wrong(check.fetch_json, "plain json(): the Content-Type check", problem="content-type-crash")
async def json_strict_content_type(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding)


@wrong(check.fetch_json, "returns None on ContentTypeError", problem="gave-up")
async def json_swallowing_the_error(session, url, encoding=None):
    async with session.get(url) as response:
        try:
            return await response.json(encoding=encoding)
        except aiohttp.ContentTypeError:
            return None


@wrong(check.fetch_json, "ignores the encoding argument", problem="wrong-charset")
async def json_ignoring_encoding(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(content_type=None)


@wrong(check.fetch_json, "text(errors='replace')", problem="wrong-charset")
async def json_with_replacement_characters(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(errors="replace"))


@wrong(check.fetch_json, "UTF-8 when no encoding is given", problem="ignored-charset-label")
async def json_always_utf8(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding or "utf-8"))


@wrong(check.fetch_json, "json.loads on the raw bytes", problem="ignored-charset-label")
async def json_from_raw_bytes(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.read())


@wrong(check.fetch_json, "returns the text", problem="not-parsed")
async def json_returns_text(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.text(encoding=encoding)


@wrong(check.fetch_json, "always Latin-1", problem="ignored-charset-label")
async def json_latin1_always(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads((await response.read()).decode("latin-1"))


@wrong(check.fetch_json, "returns {} on any error", problem="gave-up")
async def json_empty_on_error(session, url, encoding=None):
    async with session.get(url) as response:
        with contextlib.suppress(Exception):
            return await response.json(encoding=encoding)
    return {}


@wrong(check.fetch_json, "returns None when the connection breaks", problem="error-swallowed")
async def json_none_on_client_error(session, url, encoding=None):
    try:
        async with session.get(url) as response:
            return await response.json(encoding=encoding, content_type=None)
    except aiohttp.ClientError:
        return None


@wrong(check.fetch_json, "opens a session of its own", problem="own-session")
async def json_own_session(session, url, encoding=None):
    async with aiohttp.ClientSession() as own:
        return await json_skipping_the_check(own, url, encoding)


@wrong(check.fetch_json, "closes the session it was given", problem="closed-session")
async def json_closing_the_session(session, url, encoding=None):
    async with session:
        return await json_skipping_the_check(session, url, encoding)


@wrong(check.fetch_json, "returns the values, not the document", problem="wrong-data")
async def json_values_only(session, url, encoding=None):
    data = await json_skipping_the_check(session, url, encoding)
    return list(data.values())


# --- every answer, then what some messages say ------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_a_plain_stub_is_not_implemented():
    def stub(session, url):
        raise NotImplementedError("your code here")

    assert check.stream_records.diagnose(stub).problem == "not-implemented"


def test_reading_the_whole_stream_is_seen_waiting():
    verdict = check.stream_records.diagnose(records_after_whole_text)
    assert verdict.problem == "read-whole-stream", verdict.render()
    assert "yielded nothing while the stream was open" in verdict.message
    assert "async for line in response.content" in verdict.hint


def test_a_character_split_between_pieces_is_named():
    verdict = check.stream_records.diagnose(records_decoding_chunks)
    assert "your code decoded a piece of data that ends in the middle of a character" in (
        verdict.message
    ), verdict.render()
    assert "chunk.decode()" in verdict.message


def test_a_global_buffer_is_seen_when_two_feeds_are_read_in_turns():
    _shared_buffer[0] = b""  # what an earlier run left there
    verdict = check.stream_records.diagnose(records_with_a_global_buffer)
    assert "The generators share state" in verdict.message, verdict.render()


def test_a_record_decoded_wrongly_is_shown():
    verdict = check.stream_records.diagnose(records_decoded_as_latin1)
    assert "where the server sent" in verdict.message, verdict.render()
    assert "decoded some other way" in verdict.message


def test_memory_is_measured_even_when_tracemalloc_already_runs():
    import tracemalloc

    tracemalloc.start()
    try:
        assert check.sha256_of.diagnose(sha_read_whole).problem == "read-whole-body"
        assert tracemalloc.is_tracing(), "the check must leave the learner's tracing on"
    finally:
        tracemalloc.stop()
    assert check.sha256_of.diagnose(sha_iter_chunked).passed


def test_a_wrong_digest_says_what_was_hashed():
    verdict = check.sha256_of.diagnose(sha_first_mib)
    assert "of its first" in verdict.message, verdict.render()
    verdict = check.sha256_of.diagnose(sha_latin1_round_trip)
    assert "though it was right for text bodies" in verdict.message, verdict.render()


def test_mojibake_is_shown_to_the_learner():
    verdict = check.fetch_json.diagnose(json_latin1_always)
    assert verdict.problem == "ignored-charset-label"
    assert " as '" in verdict.message and "Ã" in verdict.message, verdict.render()


def test_correct_answers_pass():
    for task_check, answer in (
        (check.stream_records, records_by_line),
        (check.sha256_of, sha_iter_chunked),
        (check.fetch_json, json_skipping_the_check),
    ):
        assert task_check.diagnose(answer).passed, task_check.task


def test_verdicts_repeat():
    first = check.fetch_json.diagnose(json_always_utf8)
    assert first == check.fetch_json.diagnose(json_always_utf8)
