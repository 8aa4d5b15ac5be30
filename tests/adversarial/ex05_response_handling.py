"""Learner answers to exercise 05 (response handling), right and wrong, from the task text."""

from __future__ import annotations

import hashlib
import json

import aiohttp

from adversarial import correct, wrong
from local_server.checks import response_handling as check

# --- Task 1 · stream_records ---------------------------------------------------------------


@correct(check.stream_records, "readline() in a while loop, skipping blank lines")
async def stream_records_readline(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        while True:
            line = await response.content.readline()
            if not line:
                break
            if line.strip():
                yield json.loads(line)


@correct(check.stream_records, "own buffer over iter_any(), split on newlines, tail at EOF")
async def stream_records_buffered_iter_any(session, url):
    buffer = b""
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
        if buffer.strip():
            yield json.loads(buffer)


@correct(check.stream_records, "readuntil(b'\\n') until the stream is at EOF")
async def stream_records_readuntil(session, url):
    async with session.get(url) as response:
        while not response.content.at_eof():
            line = await response.content.readuntil(b"\n")
            if line.strip():
                yield json.loads(line.decode("utf-8"))


@correct(check.stream_records, "async for over the content, decoding to str first")
async def stream_records_decoded(session, url):
    async with session.get(url) as response:
        async for raw in response.content:
            text = raw.decode().strip()
            if text:
                record = json.loads(text)
                yield record


@wrong(check.stream_records, "reads the whole body with text(), then yields the lines",
       rule="yields each record ... **as soon as its line has arrived**",
       problem="read-whole-stream")
async def stream_records_text_then_split(session, url):
    async with session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        if line:
            yield json.loads(line)


@wrong(check.stream_records, "parses each iter_any() chunk as one record",
       rule="it also sends one record in two pieces, a moment apart",
       problem="not-line-by-line")
async def stream_records_iter_any_chunks(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            yield json.loads(chunk)


@wrong(check.stream_records, "splits each chunk on newlines but keeps no buffer across chunks",
       rule="it also sends one record in two pieces, a moment apart",
       problem="not-line-by-line")
async def stream_records_split_chunks_no_buffer(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            for line in chunk.split(b"\n"):
                if line.strip():
                    yield json.loads(line)


@wrong(check.stream_records, "json.loads on iter_chunked(1024) chunks",
       rule="one JSON document per line",
       problem="not-line-by-line")
async def stream_records_iter_chunked(session, url):
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(1024):
            yield json.loads(chunk)


@wrong(check.stream_records, "collects every record in a list and returns it",
       rule="an **async generator** ... yields each record",
       problem="not-a-generator")
async def stream_records_returns_list(session, url):
    records = []
    async with session.get(url) as response:
        async for line in response.content:
            records.append(json.loads(line))
    return records


@wrong(check.stream_records, "yields the raw lines (bytes), never parses them",
       rule="yields each record as a parsed `dict`",
       problem="not-parsed")
async def stream_records_yields_lines(session, url):
    async with session.get(url) as response:
        async for line in response.content:
            yield line


@wrong(check.stream_records, "buffers lines but drops a last record without a trailing newline",
       rule="yields each record ... in order",
       problem="wrong-records")
async def stream_records_drops_tail(session, url):
    buffer = b""
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)


@wrong(check.stream_records, "collects the records inside the block, yields them afterwards",
       rule="**as soon as its line has arrived**",
       problem="read-whole-stream")
async def stream_records_yields_after_block(session, url):
    records = []
    async with session.get(url) as response:
        async for line in response.content:
            records.append(json.loads(line))
    for record in records:
        yield record


@wrong(check.stream_records, "ignores the session it is given and opens its own",
       rule="requests `url` with the given session",
       problem="own-session")
async def stream_records_own_session(session, url):
    async with aiohttp.ClientSession() as own:
        async with own.get(url) as response:
            async for line in response.content:
                yield json.loads(line)


# --- Task 2 · sha256_of --------------------------------------------------------------------


@correct(check.sha256_of, "iter_any(), whatever has arrived")
async def sha256_of_iter_any(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            digest.update(chunk)
    return digest.hexdigest()


@correct(check.sha256_of, "content.read(n) in a walrus loop")
async def sha256_of_read_n(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while chunk := await response.content.read(256 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@correct(check.sha256_of, "readchunk() until it returns no data")
async def sha256_of_readchunk(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while True:
            data, _end_of_http_chunk = await response.content.readchunk()
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


@correct(check.sha256_of, "iter_chunked(8192), smaller chunks, hashlib.new('sha256')")
async def sha256_of_small_chunks(session, url):
    digest = hashlib.new("sha256")
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(8192):
            digest.update(chunk)
    return digest.hexdigest()


@wrong(check.sha256_of, "hashes await response.read(): the whole body in memory",
       rule="**without ever holding the whole body in memory**",
       problem="read-whole-body")
async def sha256_of_read_whole(session, url):
    async with session.get(url) as response:
        return hashlib.sha256(await response.read()).hexdigest()


@wrong(check.sha256_of, "streams the chunks but keeps them all in a list, then joins",
       rule="**without ever holding the whole body in memory**",
       problem="read-whole-body")
async def sha256_of_keeps_chunks(session, url):
    chunks = []
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            chunks.append(chunk)
    return hashlib.sha256(b"".join(chunks)).hexdigest()


@wrong(check.sha256_of, "appends every chunk to a bytearray, hashes at the end",
       rule="**without ever holding the whole body in memory**",
       problem="read-whole-body")
async def sha256_of_bytearray(session, url):
    body = bytearray()
    async with session.get(url) as response:
        async for chunk in response.content.iter_any():
            body += chunk
    return hashlib.sha256(body).hexdigest()


@wrong(check.sha256_of, "content.read() with no size: reads to the end in one go",
       rule="**without ever holding the whole body in memory**",
       problem="read-whole-body")
async def sha256_of_content_read_all(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        while chunk := await response.content.read():
            digest.update(chunk)
    return digest.hexdigest()


@wrong(check.sha256_of, "returns digest() bytes instead of the hex string",
       rule="returns the SHA-256 of the body as a hex string",
       problem="digest-not-hex")
async def sha256_of_returns_bytes(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
    return digest.digest()


@wrong(check.sha256_of, "return inside the loop: hashes only the first chunk",
       rule="the SHA-256 of the body",
       problem="wrong-digest")
async def sha256_of_return_in_loop(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
            return digest.hexdigest()
    return digest.hexdigest()


@wrong(check.sha256_of, "creates a new hash object for every chunk",
       rule="the SHA-256 of the body",
       problem="wrong-digest")
async def sha256_of_new_digest_per_chunk(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest = hashlib.sha256(chunk)
    return digest.hexdigest()


@wrong(check.sha256_of, "decodes each chunk and re-encodes it: hashes altered bytes",
       rule="the SHA-256 of the body",
       problem="wrong-digest")
async def sha256_of_decoded_text(session, url):
    digest = hashlib.sha256()
    async with session.get(url) as response:
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk.decode("utf-8", errors="replace").encode("utf-8"))
    return digest.hexdigest()


# --- Task 3 · fetch_json -------------------------------------------------------------------


@correct(check.fetch_json, "json.loads(await response.text(encoding=encoding))")
async def fetch_json_text_then_loads(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding))


@correct(check.fetch_json, "decodes read() bytes with encoding or get_encoding()")
async def fetch_json_read_and_decode(session, url, encoding=None):
    async with session.get(url) as response:
        body = await response.read()
        return json.loads(body.decode(encoding or response.get_encoding()))


@correct(check.fetch_json, "json(content_type=None) with a loads= argument, kwargs built first")
async def fetch_json_kwargs(session, url, encoding=None):
    options = {"content_type": None, "loads": json.loads}
    if encoding is not None:
        options["encoding"] = encoding
    async with session.get(url) as response:
        return await response.json(**options)


@correct(check.fetch_json, "charset or utf-8 chosen by hand, then json.loads of the str")
async def fetch_json_manual_charset(session, url, encoding=None):
    async with session.get(url) as response:
        raw = await response.read()
        charset = encoding if encoding is not None else (response.charset or "utf-8")
    return json.loads(raw.decode(charset))


@wrong(check.fetch_json, "plain json(): ContentTypeError for text/plain and text/html",
       rule="whatever the `Content-Type` says",
       problem="content-type-crash")
async def fetch_json_plain(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=encoding)


@wrong(check.fetch_json, "skips the Content-Type check but ignores `encoding`",
       rule="decoded with `encoding` when one is given",
       problem="wrong-charset")
async def fetch_json_ignores_encoding(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(content_type=None)


@wrong(check.fetch_json, "json.loads on the raw bytes: always UTF-8, the charset is ignored",
       rule="with the response's own charset when `encoding` is `None`",
       problem="ignored-charset-label")
async def fetch_json_loads_bytes(session, url, encoding=None):
    async with session.get(url) as response:
        body = await response.read()
    if encoding is not None:
        return json.loads(body.decode(encoding))
    return json.loads(body)


@wrong(check.fetch_json, "falls back to UTF-8 instead of the response's charset",
       rule="with the response's own charset when `encoding` is `None`",
       problem="ignored-charset-label")
async def fetch_json_defaults_to_utf8(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(encoding=encoding or "utf-8"))


@wrong(check.fetch_json, "the server's charset label wins over the encoding passed in",
       rule="decoded with `encoding` when one is given (the server's label is wrong then)",
       problem="wrong-charset")
async def fetch_json_label_wins(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.json(encoding=response.charset or encoding, content_type=None)


@wrong(check.fetch_json, "text(errors='replace'): bad bytes become U+FFFD instead of the data",
       rule="decoded with `encoding` when one is given",
       problem="wrong-charset")
async def fetch_json_errors_replace(session, url, encoding=None):
    async with session.get(url) as response:
        return json.loads(await response.text(errors="replace"))


@wrong(check.fetch_json, "accepts text/plain only, still fails on text/html",
       rule="whatever the `Content-Type` says",
       problem="content-type-crash")
async def fetch_json_accepts_text_plain(session, url, encoding=None):
    async with session.get(url) as response:
        if response.content_type == "text/plain":
            return await response.json(encoding=encoding, content_type="text/plain")
        return await response.json(encoding=encoding)


@wrong(check.fetch_json, "returns the decoded text, forgets to parse it",
       rule="returns the parsed JSON body",
       problem="not-parsed")
async def fetch_json_returns_text(session, url, encoding=None):
    async with session.get(url) as response:
        return await response.text(encoding=encoding)
