"""Learner answers to exercise 17 (proxies and the environment), right and wrong, from the task
text.

Written from the exercise notebook's task cells (and lesson 17) alone, as a learner would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import urllib.request
from urllib.parse import quote, urlsplit

import aiohttp

from adversarial import correct, wrong
from local_server.checks import proxies as check

# --- Task 1 · fetch_through --------------------------------------------------------------


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@correct(check.fetch_through, "the lesson's proxy_credentials helper, ssl= on the request")
async def through_lesson_helper(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    if url.startswith(("https://", "wss://")):
        options = {"proxy_headers": {"Proxy-Authorization": value}}
    else:
        options = {"headers": {"Proxy-Authorization": value}}
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context, **options) as response:
            response.raise_for_status()
            return await response.json()


@correct(check.fetch_through, "the proxy on the session, the context on the connector, base64")
async def through_session_proxy(url, proxy, user, password, ca_pem):
    header = {"Proxy-Authorization": _basic(user, password)}
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_pem))
    async with aiohttp.ClientSession(proxy=proxy, connector=connector) as session:
        if urlsplit(url).scheme == "https":
            request = session.get(url, proxy_headers=header)
        else:
            request = session.get(url, headers=header)
        async with request as response:
            if response.status == 407:
                response.raise_for_status()
            response.raise_for_status()
            return await response.json()


@correct(check.fetch_through, "raise_for_status=True on the session, the default context + CA")
async def through_raise_for_status_session(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context()
    context.load_verify_locations(ca_pem)
    creds = aiohttp.encode_basic_auth(user, password)
    key = "proxy_headers" if url.startswith("https") else "headers"
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with session.get(
            url, proxy=proxy, ssl=context, **{key: {"Proxy-Authorization": creds}}
        ) as response:
            return await response.json()


@wrong(check.fetch_through, "proxy_headers= for both schemes", problem="http-without-credentials")
async def through_proxy_headers_always(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, proxy_headers=headers, ssl=context) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "headers= for both schemes", problem="connect-without-credentials")
async def through_headers_always(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, headers=headers, ssl=context) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "both headers= and proxy_headers=, to be safe",
       problem="header-leaked-to-origin")
async def through_both_places(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, headers=headers, proxy_headers=headers, ssl=context
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "the deprecated proxy_auth=BasicAuth(...)",
       problem="proxy-auth-deprecated")
async def through_proxy_auth(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, proxy_auth=aiohttp.BasicAuth(user, password), ssl=context
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "credentials in the proxy URL, percent-encoded",
       problem="credentials-in-url")
async def through_url_encoded(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    with_creds = proxy.replace("http://", f"http://{quote(user)}:{quote(password, safe='')}@")
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=with_creds, ssl=context) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "credentials in the proxy URL, as they are",
       problem="credentials-in-url")
async def through_url_raw(url, proxy, user, password, ca_pem):
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy.replace("//", f"//{user}:{password}@"), ssl=context
        ) as response:
            return await response.json()


@wrong(check.fetch_through, "no status check: the 407 body is returned as data",
       problem="407-swallowed")
async def through_no_status_check(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    options = (
        {"proxy_headers": {"Proxy-Authorization": value}}
        if url.startswith("https://")
        else {"headers": {"Proxy-Authorization": value}}
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, ssl=ssl.create_default_context(cafile=ca_pem), **options
        ) as response:
            return await response.json()


@wrong(check.fetch_through, "catches the ClientResponseError and returns None",
       problem="407-swallowed")
async def through_catches_errors(url, proxy, user, password, ca_pem):
    try:
        return await through_lesson_helper(url, proxy, user, password, ca_pem)
    except aiohttp.ClientResponseError:
        return None


@wrong(check.fetch_through, "retries three times on any ClientResponseError",
       problem="407-retried")
async def through_retries(url, proxy, user, password, ca_pem):
    for attempt in range(3):
        try:
            return await through_lesson_helper(url, proxy, user, password, ca_pem)
        except aiohttp.ClientResponseError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.01)


@wrong(check.fetch_through, "forgot proxy=: straight to the origin", problem="not-through-proxy")
async def through_no_proxy(url, proxy, user, password, ca_pem):
    headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, headers=headers, ssl=ssl.create_default_context(cafile=ca_pem)
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "aiohttp's default trust for https://: ca_pem unused",
       problem="not-trusted")
async def through_default_trust(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    key = "proxy_headers" if url.startswith("https://") else "headers"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, **{key: {"Proxy-Authorization": value}}) as r:
            r.raise_for_status()
            return await r.json()


@wrong(check.fetch_through, "ssl=False for https://, the CA unused", problem="verification-off")
async def through_ssl_false(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    key = "proxy_headers" if url.startswith("https://") else "headers"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, ssl=False, **{key: {"Proxy-Authorization": value}}
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "returns None on any aiohttp.ClientError", problem="error-swallowed")
async def through_none_on_client_error(url, proxy, user, password, ca_pem):
    try:
        return await through_lesson_helper(url, proxy, user, password, ca_pem)
    except aiohttp.ClientResponseError:
        raise
    except aiohttp.ClientError:
        return None


@wrong(check.fetch_through, "returns the text, not the JSON", problem="wrong-data")
async def through_text(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    key = "proxy_headers" if url.startswith("https://") else "headers"
    context = ssl.create_default_context(cafile=ca_pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, ssl=context, **{key: {"Proxy-Authorization": value}}
        ) as response:
            response.raise_for_status()
            return await response.text()


@wrong(check.fetch_through, "closes the session only when the request succeeds",
       problem="session-left-open")
async def through_close_on_success(url, proxy, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    key = "proxy_headers" if url.startswith("https://") else "headers"
    session = aiohttp.ClientSession()
    response = await session.get(
        url, proxy=proxy, ssl=ssl.create_default_context(cafile=ca_pem),
        **{key: {"Proxy-Authorization": value}},
    )
    response.raise_for_status()
    body = await response.json()
    await session.close()
    return body


# --- Task 2 · fetch_from_environment ----------------------------------------------------


@correct(check.fetch_from_environment, "trust_env=True, one request after another")
async def env_loop(urls):
    out = []
    async with aiohttp.ClientSession(trust_env=True) as session:
        for url in urls:
            async with session.get(url) as response:
                response.raise_for_status()
                out.append(await response.json())
    return out


@correct(check.fetch_from_environment, "trust_env=True and raise_for_status=True, gathered")
async def env_gather(urls):
    async with aiohttp.ClientSession(trust_env=True, raise_for_status=True) as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(*(one(url) for url in urls))


@correct(check.fetch_from_environment, "by hand: urllib's getproxies() and proxy_bypass()")
async def env_by_hand(urls):
    proxies = urllib.request.getproxies()
    bodies = []
    async with aiohttp.ClientSession() as session:
        for url in urls:
            host = urlsplit(url).hostname
            proxy = None if urllib.request.proxy_bypass(host) else proxies.get("http")
            async with session.get(url, proxy=proxy) as response:
                response.raise_for_status()
                bodies.append(await response.json())
    return bodies


@wrong(check.fetch_from_environment, "trust_env forgotten", problem="trust-env-off")
async def env_no_trust(urls):
    out = []
    async with aiohttp.ClientSession() as session:
        for url in urls:
            async with session.get(url) as response:
                response.raise_for_status()
                out.append(await response.json())
    return out


@wrong(check.fetch_from_environment, "the proxy read from the environment, passed as proxy=",
       problem="no-proxy-ignored")
async def env_explicit_proxy(urls):
    proxy = os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy")
    out = []
    async with aiohttp.ClientSession() as session:
        for url in urls:
            async with session.get(url, proxy=proxy) as response:
                response.raise_for_status()
                out.append(await response.json())
    return out


@wrong(check.fetch_from_environment, "only the upper-case HTTP_PROXY, NO_PROXY honoured by hand",
       problem="trust-env-off")
async def env_upper_case_only(urls):
    proxy = os.environ.get("HTTP_PROXY")
    skip = [h.strip() for h in os.environ.get("NO_PROXY", "").split(",") if h.strip()]
    out = []
    async with aiohttp.ClientSession() as session:
        for url in urls:
            use = None if urlsplit(url).hostname in skip else proxy
            async with session.get(url, proxy=use) as response:
                response.raise_for_status()
                out.append(await response.json())
    return out


@wrong(check.fetch_from_environment, "copies http_proxy into HTTP_PROXY first",
       problem="env-changed")
async def env_normalises(urls):
    if "http_proxy" in os.environ:
        os.environ["HTTP_PROXY"] = os.environ["http_proxy"]
    return await env_loop(urls)


@wrong(check.fetch_from_environment, "a session per URL", problem="session-per-url")
async def env_session_per_url(urls):
    out = []
    for url in urls:
        async with aiohttp.ClientSession(trust_env=True) as session:
            async with session.get(url) as response:
                response.raise_for_status()
                out.append(await response.json())
    return out


@wrong(check.fetch_from_environment, "no status check: the 500 body is kept",
       problem="error-swallowed")
async def env_no_status(urls):
    async with aiohttp.ClientSession(trust_env=True) as session:
        out = []
        for url in urls:
            async with session.get(url) as response:
                out.append(await response.json())
        return out


@wrong(check.fetch_from_environment, "gather(return_exceptions=True): the error sits in the list",
       problem="error-swallowed")
async def env_return_exceptions(urls):
    async with aiohttp.ClientSession(trust_env=True, raise_for_status=True) as session:

        async def one(url):
            async with session.get(url) as response:
                return await response.json()

        return await asyncio.gather(*(one(url) for url in urls), return_exceptions=True)


@wrong(check.fetch_from_environment, "a dict by URL instead of a list", problem="wrong-data")
async def env_dict(urls):
    bodies = await env_loop(urls)
    return dict(zip(urls, bodies, strict=True))


@wrong(check.fetch_from_environment, "the session is never closed", problem="session-left-open")
async def env_never_closed(urls):
    session = aiohttp.ClientSession(trust_env=True)
    out = []
    for url in urls:
        async with session.get(url) as response:
            response.raise_for_status()
            out.append(await response.json())
    return out


# --- Task 3 · fetch_via_inspecting_proxy ------------------------------------------------


@correct(check.fetch_via_inspecting_proxy, "cafile= context passed as ssl= on the request")
async def inspect_cafile(url, proxy, company_ca):
    context = ssl.create_default_context(cafile=company_ca)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            response.raise_for_status()
            return await response.json()


@correct(check.fetch_via_inspecting_proxy, "system CAs plus the company CA, proxy on the session")
async def inspect_default_plus_ca(url, proxy, company_ca):
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=company_ca)
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(proxy=proxy, connector=connector) as session:
        async with session.get(url) as response:
            return await response.json()


@correct(check.fetch_via_inspecting_proxy, "cadata= from the file, an SSLContext by hand")
async def inspect_cadata(url, proxy, company_ca):
    with open(company_ca) as file:
        pem = file.read()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=pem)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "ssl=False to get past the proxy",
       problem="verification-off")
async def inspect_ssl_false(url, proxy, company_ca):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=False) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "the company CA, but CERT_NONE",
       problem="verification-off")
async def inspect_cert_none(url, proxy, company_ca):
    context = ssl.create_default_context(cafile=company_ca)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "on a certificate error, tries again with ssl=False",
       problem="verification-off")
async def inspect_fallback(url, proxy, company_ca):
    try:
        return await inspect_cafile(url, proxy, company_ca)
    except aiohttp.ClientConnectorCertificateError:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, proxy=proxy, ssl=False) as response:
                return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "aiohttp's default trust: company_ca unused",
       problem="not-trusted")
async def inspect_default(url, proxy, company_ca):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "SSL_CERT_FILE set to the company CA",
       problem="process-wide")
async def inspect_env_var(url, proxy, company_ca):
    os.environ["SSL_CERT_FILE"] = company_ca
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=ssl.create_default_context()) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "ssl.create_default_context patched to add the CA",
       problem="process-wide")
async def inspect_patched(url, proxy, company_ca):
    original = ssl.create_default_context

    def with_company(*args, **kwargs):
        context = original(*args, **kwargs)
        context.load_verify_locations(cafile=company_ca)
        return context

    ssl.create_default_context = with_company
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=ssl.create_default_context()) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "catches the certificate error and returns {}",
       problem="error-swallowed")
async def inspect_swallows(url, proxy, company_ca):
    try:
        return await inspect_cafile(url, proxy, company_ca)
    except aiohttp.ClientConnectorCertificateError:
        return {}


@wrong(check.fetch_via_inspecting_proxy, "forgot proxy=", problem="not-through-proxy")
async def inspect_no_proxy(url, proxy, company_ca):
    context = ssl.create_default_context(cafile=company_ca)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "returns the response object's status and text",
       problem="wrong-data")
async def inspect_text(url, proxy, company_ca):
    context = ssl.create_default_context(cafile=company_ca)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            return {"status": response.status, "text": await response.text()}


@wrong(check.fetch_via_inspecting_proxy, "close() after the request: skipped when it raises",
       problem="session-left-open")
async def inspect_close_after(url, proxy, company_ca):
    session = aiohttp.ClientSession()
    context = ssl.create_default_context(cafile=company_ca)
    async with session.get(url, proxy=proxy, ssl=context) as response:
        body = await response.json()
    await session.close()
    return body
