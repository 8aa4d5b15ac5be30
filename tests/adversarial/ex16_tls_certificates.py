"""Learner answers to exercise 16 (TLS and certificates), right and wrong, from the task text.

Written from the exercise notebook's task cells alone, before the checks were finished.
"""

from __future__ import annotations

import os
import ssl

import aiohttp
import certifi
import truststore

from adversarial import correct, wrong
from local_server.checks import tls_certificates as check

# --- Task 1 · fetch_items --------------------------------------------------------------------


@correct(check.fetch_items, "one context, given to the connector; a while loop over next")
async def fetch_items_connector(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    items = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        while url:
            async with session.get(url) as response:
                response.raise_for_status()
                page = await response.json()
            items.extend(page["items"])
            url = page["next"]
    return items


@correct(check.fetch_items, "one context passed as ssl= on every request")
async def fetch_items_per_request_ssl(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    items: list = []
    async with aiohttp.ClientSession() as session:
        next_url = url
        while next_url is not None:
            async with session.get(next_url, ssl=context) as response:
                page = await response.json()
            items += page["items"]
            next_url = page.get("next")
    return items


@correct(check.fetch_items, "the system store (truststore) plus the private CA")
async def fetch_items_truststore_plus_ca(url, ca_pem):
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca_pem)
    out = []
    async with aiohttp.ClientSession() as session:
        while url:
            async with session.get(url, ssl=context) as response:
                data = await response.json()
            out.extend(data["items"])
            url = data["next"]
    return out


@correct(check.fetch_items, "the default context with the CA added, a recursive helper")
async def fetch_items_recursive(url, ca_pem):
    context = ssl.create_default_context()
    context.load_verify_locations(ca_pem)

    async def pages(session, page_url):
        async with session.get(page_url, ssl=context) as response:
            data = await response.json()
        rest = await pages(session, data["next"]) if data["next"] else []
        return data["items"] + rest

    async with aiohttp.ClientSession() as session:
        return await pages(session, url)


@wrong(check.fetch_items, "ssl=False: no verification at all", problem="verification-off")
async def fetch_items_ssl_false(url, ca_pem):
    items = []
    async with aiohttp.ClientSession() as session:
        while url:
            async with session.get(url, ssl=False) as response:
                page = await response.json()
            items.extend(page["items"])
            url = page["next"]
    return items


@wrong(check.fetch_items, "CERT_NONE and no hostname check", problem="verification-off")
async def fetch_items_cert_none(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return await _pages(url, context)


async def _pages(url, context):
    items = []
    async with aiohttp.ClientSession() as session:
        while url:
            async with session.get(url, ssl=context) as response:
                page = await response.json()
            items.extend(page["items"])
            url = page["next"]
    return items


@wrong(check.fetch_items, "hostname check turned off", problem="hostname-unchecked")
async def fetch_items_no_hostname(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.check_hostname = False
    return await _pages(url, context)


@wrong(check.fetch_items, "SSL_CERT_FILE set for the whole process", problem="process-wide")
async def fetch_items_env_var(url, ca_pem):
    os.environ["SSL_CERT_FILE"] = ca_pem
    return await _pages(url, ssl.create_default_context())


@wrong(check.fetch_items, "ssl.create_default_context patched", problem="process-wide")
async def fetch_items_patched_ssl(url, ca_pem):
    original = ssl.create_default_context

    def trusting(*args, **kwargs):
        context = original(*args, **kwargs)
        context.load_verify_locations(ca_pem)
        return context

    ssl.create_default_context = trusting
    return await _pages(url, ssl.create_default_context())


@wrong(check.fetch_items, "the CA appended to certifi's bundle", problem="process-wide")
async def fetch_items_certifi_edited(url, ca_pem):
    with open(ca_pem) as source:
        pem = source.read()
    with open(certifi.where(), "a") as bundle:
        bundle.write("\n" + pem)
    return await _pages(url, ssl.create_default_context(cafile=certifi.where()))


@wrong(check.fetch_items, "a new context for every page", problem="context-per-request")
async def fetch_items_context_per_page(url, ca_pem):
    items = []
    async with aiohttp.ClientSession() as session:
        while url:
            context = ssl.create_default_context(cafile=ca_pem)
            async with session.get(url, ssl=context) as response:
                page = await response.json()
            items.extend(page["items"])
            url = page["next"]
    return items


@wrong(check.fetch_items, "a new session for every page", problem="session-per-request")
async def fetch_items_session_per_page(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    items = []
    while url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=context) as response:
                page = await response.json()
        items.extend(page["items"])
        url = page["next"]
    return items


@wrong(check.fetch_items, "returns what it has when a certificate fails", problem="error-swallowed")
async def fetch_items_swallows(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    items = []
    async with aiohttp.ClientSession() as session:
        try:
            while url:
                async with session.get(url, ssl=context) as response:
                    page = await response.json()
                items.extend(page["items"])
                url = page["next"]
        except aiohttp.ClientError:
            pass
    return items


@wrong(check.fetch_items, "closes the session only when every page worked",
       problem="session-left-open-on-error")
async def fetch_items_close_on_success(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    session = aiohttp.ClientSession()
    items = []
    while url:
        async with session.get(url, ssl=context) as response:
            page = await response.json()
        items.extend(page["items"])
        url = page["next"]
    await session.close()
    return items


@wrong(check.fetch_items, "only the first page", problem="wrong-data")
async def fetch_items_first_page(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return (await response.json())["items"]


@wrong(check.fetch_items, "the system store only: the private CA is not trusted",
       problem="not-trusted")
async def fetch_items_truststore_only(url, ca_pem):
    return await _pages(url, truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


@wrong(check.fetch_items, "retries with ssl=False when verification fails",
       problem="verification-off")
async def fetch_items_falls_back(url, ca_pem):
    try:
        return await _pages(url, ssl.create_default_context(cafile=ca_pem))
    except aiohttp.ClientConnectorCertificateError:
        return await _pages(url, False)


# --- Task 2 · fetch_with_client_cert ----------------------------------------------------------


@correct(check.fetch_with_client_cert, "context on the connector, load_cert_chain(cert, key)")
async def client_cert_connector(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as response:
            return await response.json()


@correct(check.fetch_with_client_cert, "keywords, ssl= per request, raise_for_status")
async def client_cert_keywords(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_pem)
    context.load_cert_chain(certfile=cert_pem, keyfile=key_pem)
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@correct(check.fetch_with_client_cert, "truststore with the CA and the client certificate")
async def client_cert_truststore(url, ca_pem, cert_pem, key_pem):
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_pem)
    context.load_cert_chain(cert_pem, keyfile=key_pem)
    session = aiohttp.ClientSession()
    try:
        async with session.get(url, ssl=context) as response:
            return await response.json()
    finally:
        await session.close()


@wrong(check.fetch_with_client_cert, "never loads the client certificate",
       problem="no-client-cert")
async def client_cert_missing(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_with_client_cert, "loads the certificate but turns verification off",
       problem="verification-off")
async def client_cert_no_verify(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_with_client_cert, "the CA via SSL_CERT_FILE", problem="process-wide")
async def client_cert_env_var(url, ca_pem, cert_pem, key_pem):
    os.environ["SSL_CERT_FILE"] = ca_pem
    context = ssl.create_default_context()
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_with_client_cert, "never closes the session", problem="session-left-open")
async def client_cert_leaks(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    session = aiohttp.ClientSession()
    async with session.get(url, ssl=context) as response:
        return await response.json()


@wrong(check.fetch_with_client_cert, "closes the session after a successful request only",
       problem="session-left-open-on-error")
async def client_cert_close_on_success(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    session = aiohttp.ClientSession()
    async with session.get(url, ssl=context) as response:
        data = await response.json()
    await session.close()
    return data


@wrong(check.fetch_with_client_cert, "returns {} when the request fails",
       problem="error-swallowed")
async def client_cert_swallows(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.load_cert_chain(cert_pem, key_pem)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=context) as response:
                return await response.json()
    except aiohttp.ClientError:
        return {}


@wrong(check.fetch_with_client_cert, "a client certificate but no CA to verify the server",
       problem="not-trusted")
async def client_cert_no_ca(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context()
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_with_client_cert, "hostname check off", problem="hostname-unchecked")
async def client_cert_no_hostname(url, ca_pem, cert_pem, key_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    context.check_hostname = False
    context.load_cert_chain(cert_pem, key_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


# --- Task 3 · classify_tls --------------------------------------------------------------------


@correct(check.classify_tls, "verify_code: 10 expired, 62/64 wrong host, else untrusted")
async def classify_by_code(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            if code == 10:
                return "expired"
            if code in (62, 64):
                return "wrong-host"
            return "untrusted"


@correct(check.classify_tls, "reads verify_message")
async def classify_by_message(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    try:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            await response.read()
    except aiohttp.ClientConnectorCertificateError as error:
        message = error.certificate_error.verify_message
        if "expired" in message:
            return "expired"
        if "mismatch" in message:
            return "wrong-host"
        return "untrusted"
    return "ok"


@correct(check.classify_tls, "a second try without the hostname check tells a wrong host")
async def classify_two_tries(url, ca_pem):
    strict = ssl.create_default_context(cafile=ca_pem)
    lax = ssl.create_default_context(cafile=ca_pem)
    lax.check_hostname = False
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=strict):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            if "expired" in str(error):
                return "expired"
            try:
                async with session.get(url, ssl=lax):
                    return "wrong-host"
            except aiohttp.ClientConnectorCertificateError:
                return "untrusted"


@wrong(check.classify_tls, "every ClientError is 'untrusted'", problem="not-a-certificate-error")
async def classify_client_error(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            return {10: "expired", 62: "wrong-host", 64: "wrong-host"}.get(code, "untrusted")
        except aiohttp.ClientError:
            return "untrusted"


@wrong(check.classify_tls, "ClientSSLError taken for a certificate error",
       problem="not-a-certificate-error")
async def classify_ssl_error(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientSSLError as error:
            text = str(error)
            if "expired" in text:
                return "expired"
            if "mismatch" in text:
                return "wrong-host"
            return "untrusted"


@wrong(check.classify_tls, "'not valid' read as expired: a hostname error reported as expiry",
       problem="hostname-as-expired")
async def classify_not_valid_is_expired(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            message = error.certificate_error.verify_message
            if "expired" in message or "not valid" in message:
                return "expired"
            return "untrusted"


@wrong(check.classify_tls, "only 'Hostname mismatch': the IP address case is missed",
       problem="misclassified")
async def classify_hostname_only(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            text = str(error)
            if "expired" in text:
                return "expired"
            if "Hostname mismatch" in text:
                return "wrong-host"
            return "untrusted"


@wrong(check.classify_tls, "ssl=False: everything is 'ok'", problem="verification-off")
async def classify_ssl_false(url, ca_pem):
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=False):
                return "ok"
        except aiohttp.ClientConnectorCertificateError:
            return "untrusted"


@wrong(check.classify_tls, "raise_for_status makes a 503 fail", problem="status-not-ok")
async def classify_raises_for_status(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            return {10: "expired", 62: "wrong-host", 64: "wrong-host"}.get(code, "untrusted")


@wrong(check.classify_tls, "the session is never closed", problem="session-left-open")
async def classify_leaks(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    session = aiohttp.ClientSession()
    try:
        async with session.get(url, ssl=context):
            return "ok"
    except aiohttp.ClientConnectorCertificateError as error:
        code = error.certificate_error.verify_code
        return {10: "expired", 62: "wrong-host", 64: "wrong-host"}.get(code, "untrusted")


@wrong(check.classify_tls, "no CA: even the good server is 'untrusted'", problem="not-trusted")
async def classify_without_ca(url, ca_pem):
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            code = error.certificate_error.verify_code
            return {10: "expired", 62: "wrong-host", 64: "wrong-host"}.get(code, "untrusted")


@wrong(check.classify_tls, "returns the verify message itself", problem="wrong-label")
async def classify_returns_message(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url, ssl=context):
                return "ok"
        except aiohttp.ClientConnectorCertificateError as error:
            return error.certificate_error.verify_message


@wrong(check.classify_tls, "catches Exception: a refused port is 'untrusted'",
       problem="not-a-certificate-error")
async def classify_catches_everything(url, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    try:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context):
            return "ok"
    except Exception as error:  # the mistake under test
        text = str(error)
        if "expired" in text:
            return "expired"
        if "mismatch" in text:
            return "wrong-host"
        return "untrusted"
