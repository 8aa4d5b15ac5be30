"""Exercise 16's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here that breaks it alone. A few tests read the message, and make sure a
check puts back what a wrong answer changed for the whole process.
"""

from __future__ import annotations

import asyncio
import os
import ssl

import aiohttp
import certifi
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import tls_certificates as check

# --- Task 1: fetch_items -----------------------------------------------------------------


async def _follow(session, url, **request):
    items = []
    while url:
        async with session.get(url, **request) as response:
            page = await response.json()
        items.extend(page["items"])
        url = page["next"]
    return items


@correct(check.fetch_items, "the context as the session's connector, and base loop in a helper")
async def items_connector(url, ca_pem):
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_pem))
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _follow(session, url)


@correct(check.fetch_items, "cadata= read from the file, response read without async with")
async def items_cadata(url, ca_pem):
    with open(ca_pem) as file:
        context = ssl.create_default_context(cadata=file.read())
    items = []
    async with aiohttp.ClientSession() as session:
        while url is not None:
            response = await session.get(url, ssl=context)
            page = await response.json()
            response.release()
            items += page["items"]
            url = page["next"]
    return items


@correct(check.fetch_items, "an SSLContext built by hand: PROTOCOL_TLS_CLIENT verifies by default")
async def items_by_hand(url, ca_pem):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        return await _follow(session, url, ssl=context)


@wrong(check.fetch_items, "aiohttp's default: the private CA is unknown", problem="not-trusted")
async def items_default_ssl(url, ca_pem):
    async with aiohttp.ClientSession() as session:
        return await _follow(session, url)


@wrong(check.fetch_items, "ssl=False on the connector", problem="verification-off")
async def items_connector_ssl_false(url, ca_pem):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        return await _follow(session, url)


@wrong(check.fetch_items, "no hostname check", problem="hostname-unchecked")
async def items_no_hostname(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.check_hostname = False
    async with aiohttp.ClientSession() as session:
        return await _follow(session, url, ssl=context)


@wrong(check.fetch_items, "SSL_CERT_FILE set, then restored after the session",
       problem="process-wide")
async def items_env_var_restored(url, ca_pem):
    os.environ["SSL_CERT_FILE"] = ca_pem
    try:
        async with aiohttp.ClientSession() as session:
            return await _follow(session, url, ssl=ssl.create_default_context())
    finally:
        del os.environ["SSL_CERT_FILE"]


@wrong(check.fetch_items, "the CA added to aiohttp's shared default context",
       problem="process-wide")
async def items_aiohttp_default(url, ca_pem):
    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(ca_pem)
    async with aiohttp.ClientSession() as session:
        return await _follow(session, url)


@wrong(check.fetch_items, "the pages in reverse", problem="wrong-data")
async def items_reversed(url, ca_pem):
    return list(reversed(await items_connector(url, ca_pem)))


@wrong(check.fetch_items, "a session per page", problem="session-per-request")
async def items_session_per_page(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    items = []
    while url:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            page = await response.json()
        items.extend(page["items"])
        url = page["next"]
    return items


@wrong(check.fetch_items, "a context made per request in a helper", problem="context-per-request")
async def items_context_per_get(url, ca_pem):
    def context():
        return ssl.create_default_context(cafile=ca_pem)

    async with aiohttp.ClientSession() as session:
        items = []
        while url:
            async with session.get(url, ssl=context()) as response:
                page = await response.json()
            items.extend(page["items"])
            url = page["next"]
        return items


@wrong(check.fetch_items, "force_close=True on the connector", problem="context-per-request")
async def items_force_close(url, ca_pem):
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_pem),
                                     force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await _follow(session, url)


@wrong(check.fetch_items, "returns None on any client error", problem="error-swallowed")
async def items_none_on_error(url, ca_pem):
    try:
        return await items_connector(url, ca_pem)
    except aiohttp.ClientConnectorCertificateError:
        return None


@wrong(check.fetch_items, "never closes its session", problem="session-left-open")
async def items_leaks(url, ca_pem):
    session = aiohttp.ClientSession()
    return await _follow(session, url, ssl=ssl.create_default_context(cafile=ca_pem))


@wrong(check.fetch_items, "closes the session after the loop, not in finally",
       problem="session-left-open-on-error")
async def items_close_after_loop(url, ca_pem):
    session = aiohttp.ClientSession()
    items = await _follow(session, url, ssl=ssl.create_default_context(cafile=ca_pem))
    await session.close()
    return items


@wrong(check.fetch_items, "a plain def", problem="not-async")
def items_not_async(url, ca_pem):
    return []


@wrong(check.fetch_items, "the stub", problem="not-implemented")
async def items_stub(url, ca_pem):
    raise NotImplementedError("your code here")


# --- Task 2: fetch_with_client_cert --------------------------------------------------------


@correct(check.fetch_with_client_cert, "one context on the connector, json read by await")
async def mtls_connector(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        response = await session.get(url)
        try:
            return await response.json()
        finally:
            response.release()


@correct(check.fetch_with_client_cert, "the system store plus the CA (load_default_certs)")
async def mtls_system_plus_ca(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context()
    context.load_verify_locations(ca_pem)
    context.load_cert_chain(certfile=cert_pem, keyfile=key_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@correct(check.fetch_with_client_cert, "key and certificate concatenated in one file")
async def mtls_one_file(url, ca_pem, cert_pem, key_pem):
    import tempfile

    with open(cert_pem) as cert, open(key_pem) as key:
        both = key.read() + cert.read()
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as combined:
        combined.write(both)
        combined.flush()
        context = ssl.create_default_context(cafile=ca_pem)
        context.load_cert_chain(combined.name)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "the CA but no client certificate", problem="no-client-cert")
async def mtls_no_cert(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


_CACHED: dict[str, ssl.SSLContext] = {}


@wrong(check.fetch_with_client_cert, "a context cached from the first call",
       problem="wrong-identity")
async def mtls_cached_context(url, ca_pem, cert_pem, key_pem):
    if "context" not in _CACHED:
        _CACHED["context"] = ssl.create_default_context(cafile=ca_pem)
        _CACHED["context"].load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=_CACHED["context"]) as response:
            return await response.json()


@wrong(check.fetch_with_client_cert, "a client certificate but aiohttp's defaults otherwise",
       problem="not-trusted")
async def mtls_certifi_only(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "CERT_NONE with the certificate", problem="verification-off")
async def mtls_cert_none(url, ca_pem, cert_pem, key_pem):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "hostname check off", problem="hostname-unchecked")
async def mtls_no_hostname(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    context.check_hostname = False
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "create_default_context patched to add the CA",
       problem="process-wide")
async def mtls_patched(url, ca_pem, cert_pem, key_pem):
    original = ssl.create_default_context
    ssl.create_default_context = lambda *a, **k: original(*a, **{"cafile": ca_pem, **k})
    context = ssl.create_default_context()
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "returns the text, not the JSON", problem="wrong-data")
async def mtls_text(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.text()


@wrong(check.fetch_with_client_cert, "returns None on a certificate error",
       problem="error-swallowed")
async def mtls_none(url, ca_pem, cert_pem, key_pem):
    try:
        return await mtls_connector(url, ca_pem, cert_pem, key_pem)
    except aiohttp.ClientConnectorCertificateError:
        return None


@wrong(check.fetch_with_client_cert, "never closes the session", problem="session-left-open")
async def mtls_leaks(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    async with session.get(url) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "close() after the request, skipped when it raises",
       problem="session-left-open-on-error")
async def mtls_close_late(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    session = aiohttp.ClientSession()
    response = await session.get(url, ssl=context)
    data = await response.json()
    await session.close()
    return data


# --- Task 3: classify_tls ----------------------------------------------------------------

LABEL_BY_CODE = {10: "expired", 62: "wrong-host", 64: "wrong-host"}


@correct(check.classify_tls, "verify_message words, the context on the connector")
async def classify_words(url, ca_pem):
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_pem))
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.head(url):
                pass
        except aiohttp.ClientConnectorCertificateError as error:
            message = error.certificate_error.verify_message.lower()
            if "expired" in message:
                return "expired"
            if "mismatch" in message:
                return "wrong-host"
            return "untrusted"
    return "ok"


@correct(check.classify_tls, "ssl.SSLCertVerificationError's verify_code, a match statement")
async def classify_match(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=context) as response:
                await response.read()
                return "ok"
    except aiohttp.ClientConnectorCertificateError as error:
        match error.certificate_error:
            case ssl.SSLCertVerificationError(verify_code=10):
                return "expired"
            case ssl.SSLCertVerificationError(verify_code=62 | 64):
                return "wrong-host"
            case _:
                return "untrusted"


@wrong(check.classify_tls, "ssl=False: a self-signed server is 'ok'", problem="verification-off")
async def classify_no_verify(url, ca_pem):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=False):
            return "ok"


@wrong(check.classify_tls, "aiohttp's default context", problem="not-trusted")
async def classify_default(url, ca_pem):
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            return LABEL_BY_CODE.get(error.certificate_error.verify_code, "untrusted")


@wrong(check.classify_tls, "SSL_CERT_FILE for the process", problem="process-wide")
async def classify_env(url, ca_pem):
    os.environ["SSL_CERT_FILE"] = ca_pem
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=ssl.create_default_context()):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            return LABEL_BY_CODE.get(error.certificate_error.verify_code, "untrusted")


@wrong(check.classify_tls, "ClientConnectorError caught: a refused port is 'untrusted'",
       problem="not-a-certificate-error")
async def classify_connector_error(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            return LABEL_BY_CODE.get(error.certificate_error.verify_code, "untrusted")
        except aiohttp.ClientConnectorError:
            return "untrusted"


@wrong(check.classify_tls, "'ok' only for a 2xx", problem="status-not-ok")
async def classify_2xx_only(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context) as response:
                return "ok" if response.ok else "untrusted"
        except aiohttp.ClientConnectorCertificateError as error:
            return LABEL_BY_CODE.get(error.certificate_error.verify_code, "untrusted")


@wrong(check.classify_tls, "62 (Hostname mismatch) taken for expiry",
       problem="hostname-as-expired")
async def classify_swapped(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            return {62: "expired", 64: "wrong-host", 10: "expired"}.get(code, "untrusted")


@wrong(check.classify_tls, "returns the verify code as a number", problem="wrong-label")
async def classify_code_number(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            return error.certificate_error.verify_code


@wrong(check.classify_tls, "an expired certificate called untrusted", problem="misclassified")
async def classify_no_expiry(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            return "wrong-host" if code in (62, 64) else "untrusted"


@wrong(check.classify_tls, "lets the certificate error raise for a missing intermediate",
       problem="misclassified")
async def classify_raises_unknown(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            if code == 20:
                raise
            return LABEL_BY_CODE.get(code, "untrusted")


@wrong(check.classify_tls, "closes the session only when the request worked",
       problem="session-left-open")
async def classify_close_on_success(url, ca_pem):
    session = aiohttp.ClientSession()
    try:
        async with session.get(url, ssl=ssl.create_default_context(cafile=ca_pem)):
            pass
    except aiohttp.ClientConnectorCertificateError as error:
        return LABEL_BY_CODE.get(error.certificate_error.verify_code, "untrusted")
    await session.close()
    return "ok"


@wrong(check.classify_tls, "blocks the loop with a blocking socket", problem="blocked-loop")
async def classify_blocking(url, ca_pem):
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    return await classify_words(url, ca_pem)


# --- running them ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def test_whole_process_changes_are_put_back():
    bundle = certifi.where()
    with open(bundle, "rb") as file:
        before = file.read()
    original = ssl.create_default_context
    env = {name: os.environ.get(name) for name in check.TRUST_ENV}
    from adversarial import ex16_tls_certificates as independent

    for answer in (independent.fetch_items_env_var, independent.fetch_items_patched_ssl,
                   independent.fetch_items_certifi_edited, items_aiohttp_default):
        verdict = check.fetch_items.diagnose(answer)
        assert verdict.problem == "process-wide", verdict.render()
    assert {name: os.environ.get(name) for name in check.TRUST_ENV} == env
    assert ssl.create_default_context is original
    with open(bundle, "rb") as file:
        assert file.read() == before
    # aiohttp's shared default context no longer trusts a test CA
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(_default_get_to_a_test_server())


async def _default_get_to_a_test_server():
    from local_server.tls import start_tls_servers

    with start_tls_servers() as servers:
        async with aiohttp.ClientSession() as session:
            await session.get(servers.good + "/get")


def test_process_wide_names_what_changed():
    from adversarial import ex16_tls_certificates as independent

    env = check.fetch_items.diagnose(independent.fetch_items_env_var)
    assert "SSL_CERT_FILE was set (to the CA's file)" in env.message
    patched = check.fetch_items.diagnose(independent.fetch_items_patched_ssl)
    assert "`ssl.create_default_context` was replaced" in patched.message
    edited = check.fetch_items.diagnose(independent.fetch_items_certifi_edited)
    assert "certifi's bundle now holds the CA" in edited.message


def test_verification_off_names_the_server_that_was_reached():
    verdict = check.fetch_items.diagnose(items_connector_ssl_false)
    assert "self-signed certificate" in verdict.message
    impostor = check.fetch_with_client_cert.diagnose(mtls_cert_none)
    assert "and your certificate (learner@example.test)" in impostor.message


def test_misclassified_quotes_the_error_and_the_label():
    verdict = check.classify_tls.diagnose(classify_no_expiry)
    assert "'untrusted', not 'expired'" in verdict.message
    assert "certificate has expired (verify_code 10)" in verdict.message
