"""Exercise 17's checkers: correct alternatives pass, each typical mistake gets its diagnosis.

Every answer is registered with ``correct``/``wrong`` (see ``tests/adversarial``); one
parametrized test runs them all, and ``test_rule_tables`` checks that every rule of every task
has a wrong answer here or in ``tests/adversarial/ex17_proxies_environment.py`` that breaks it
alone. A few tests read the messages (the evidence they quote, the password they must not),
and make sure a check puts back the environment and stops every proxy it started.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import threading
import time

import aiohttp
import pytest
from adversarial import answer_id, answers_in, correct, judge, wrong

from local_server.checks import proxies as check

# --- Task 1: fetch_through ---------------------------------------------------------------


def _options(url, user, password, ca_pem):
    value = aiohttp.encode_basic_auth(user, password)
    if url.startswith("https://"):
        return {
            "proxy_headers": {"Proxy-Authorization": value},
            "ssl": ssl.create_default_context(cafile=ca_pem),
        }
    return {"headers": {"Proxy-Authorization": value}}


@correct(check.fetch_through, "options from a helper, the response read without async with")
async def through_helper(url, proxy, user, password, ca_pem):
    async with aiohttp.ClientSession() as session:
        response = await session.get(url, proxy=proxy, **_options(url, user, password, ca_pem))
        try:
            response.raise_for_status()
            return await response.json()
        finally:
            response.release()


@correct(check.fetch_through, "a 407 turned into ClientResponseError by hand")
async def through_status_by_hand(url, proxy, user, password, ca_pem):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, **_options(url, user, password, ca_pem)) as r:
            if r.status >= 400:
                raise aiohttp.ClientResponseError(
                    r.request_info, r.history, status=r.status, message=r.reason or ""
                )
            return await r.json()


@wrong(check.fetch_through, "no credentials at all", problem="http-without-credentials")
async def through_no_credentials(url, proxy, user, password, ca_pem):
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=proxy, ssl=ssl.create_default_context(cafile=ca_pem)
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "the credentials swapped: password:user",
       problem="http-without-credentials")
async def through_swapped(url, proxy, user, password, ca_pem):
    return await through_helper(url, proxy, password.replace(":", ""), user, ca_pem)


@wrong(check.fetch_through, "a yarl URL with_user/with_password as the proxy",
       problem="credentials-in-url")
async def through_yarl_url(url, proxy, user, password, ca_pem):
    from yarl import URL

    with_creds = URL(proxy).with_user(user).with_password(password)
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, proxy=with_creds, ssl=ssl.create_default_context(cafile=ca_pem)
        ) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "proxy_auth on the session", problem="proxy-auth-deprecated")
async def through_session_proxy_auth(url, proxy, user, password, ca_pem):
    async with aiohttp.ClientSession(
        proxy=proxy, proxy_auth=aiohttp.BasicAuth(user, password)
    ) as session:
        async with session.get(url, ssl=ssl.create_default_context(cafile=ca_pem)) as response:
            response.raise_for_status()
            return await response.json()


@wrong(check.fetch_through, "on a 407, tries once more", problem="407-retried")
async def through_retry_once(url, proxy, user, password, ca_pem):
    try:
        return await through_helper(url, proxy, user, password, ca_pem)
    except aiohttp.ClientResponseError as error:
        if error.status != 407:
            raise
        return await through_helper(url, proxy, user, password, ca_pem)


@wrong(check.fetch_through, "returns the status, not the body", problem="wrong-data")
async def through_status(url, proxy, user, password, ca_pem):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, **_options(url, user, password, ca_pem)) as r:
            r.raise_for_status()
            return {"status": r.status}


@wrong(check.fetch_through, "the session is never closed", problem="session-left-open")
async def through_never_closed(url, proxy, user, password, ca_pem):
    session = aiohttp.ClientSession()
    async with session.get(url, proxy=proxy, **_options(url, user, password, ca_pem)) as r:
        r.raise_for_status()
        return await r.json()


@wrong(check.fetch_through, "blocks the loop with time.sleep", problem="blocked-loop")
async def through_sleeps(url, proxy, user, password, ca_pem):
    time.sleep(0.02)
    return await through_helper(url, proxy, user, password, ca_pem)


# --- Task 2: fetch_from_environment ------------------------------------------------------


@correct(check.fetch_from_environment, "a TaskGroup over one trust_env session")
async def env_task_group(urls):
    async with aiohttp.ClientSession(trust_env=True) as session:

        async def one(url):
            async with session.get(url) as response:
                response.raise_for_status()
                return await response.json()

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(url)) for url in urls]
    return [task.result() for task in tasks]


@correct(check.fetch_from_environment, "trust_env with a base connector limit of 1")
async def env_one_connection(urls):
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(trust_env=True, connector=connector) as session:
        results = []
        for url in urls:
            async with session.get(url, raise_for_status=True) as response:
                results.append(await response.json())
        return results


@wrong(check.fetch_from_environment, "trust_env=False spelled out", problem="trust-env-off")
async def env_trust_false(urls):
    async with aiohttp.ClientSession(trust_env=False) as session:
        out = []
        for url in urls:
            async with session.get(url) as response:
                response.raise_for_status()
                out.append(await response.json())
        return out


@wrong(check.fetch_from_environment, "clears NO_PROXY 'to be sure everything is proxied'",
       problem="env-changed")
async def env_clears_no_proxy(urls):
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    async with aiohttp.ClientSession(trust_env=True) as session:
        out = []
        for url in urls:
            async with session.get(url) as response:
                response.raise_for_status()
                out.append(await response.json())
        return out


@wrong(check.fetch_from_environment, "the bodies in reverse", problem="wrong-data")
async def env_reversed(urls):
    return list(reversed(await env_task_group(urls)))


@wrong(check.fetch_from_environment, "a session per URL, gathered", problem="session-per-url")
async def env_gathered_sessions(urls):
    async def one(url):
        async with aiohttp.ClientSession(trust_env=True, raise_for_status=True) as session:
            async with session.get(url) as response:
                return await response.json()

    return await asyncio.gather(*(one(url) for url in urls))


@wrong(check.fetch_from_environment, "skips the URLs that fail", problem="error-swallowed")
async def env_skips_failures(urls):
    out = []
    async with aiohttp.ClientSession(trust_env=True) as session:
        for url in urls:
            async with session.get(url) as response:
                if response.ok:
                    out.append(await response.json())
    return out


@wrong(check.fetch_from_environment, "close() skipped when a URL fails",
       problem="session-left-open")
async def env_close_skipped(urls):
    session = aiohttp.ClientSession(trust_env=True, raise_for_status=True)
    out = []
    for url in urls:
        async with session.get(url) as response:
            out.append(await response.json())
    await session.close()
    return out


# --- Task 3: fetch_via_inspecting_proxy --------------------------------------------------


@correct(check.fetch_via_inspecting_proxy, "the context made by a helper, given to the connector")
async def inspect_connector(url, proxy, company_ca):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=company_ca)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        async with session.get(url, proxy=proxy, raise_for_status=True) as response:
            return await response.json()


@correct(check.fetch_via_inspecting_proxy, "the default context plus the CA, response released")
async def inspect_release(url, proxy, company_ca):
    context = ssl.create_default_context()
    context.load_verify_locations(company_ca)
    async with aiohttp.ClientSession() as session:
        response = await session.get(url, proxy=proxy, ssl=context)
        body = await response.json()
        response.release()
        return body


@wrong(check.fetch_via_inspecting_proxy, "the CA added to aiohttp's shared default context",
       problem="process-wide")
async def inspect_shared_default(url, proxy, company_ca):
    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(company_ca)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "SSL_CERT_FILE set, then restored after the call",
       problem="process-wide")
async def inspect_env_restored(url, proxy, company_ca):
    os.environ["SSL_CERT_FILE"] = company_ca
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                url, proxy=proxy, ssl=ssl.create_default_context()
            ) as response:
                return await response.json()
    finally:
        del os.environ["SSL_CERT_FILE"]


@wrong(check.fetch_via_inspecting_proxy, "verify_mode CERT_NONE only, no CA",
       problem="verification-off")
async def inspect_no_check(url, proxy, company_ca):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            return await response.json()


@wrong(check.fetch_via_inspecting_proxy, "returns None on any ClientError",
       problem="error-swallowed")
async def inspect_none_on_error(url, proxy, company_ca):
    try:
        return await inspect_connector(url, proxy, company_ca)
    except aiohttp.ClientError:
        return None


@wrong(check.fetch_via_inspecting_proxy, "returns the raw bytes", problem="wrong-data")
async def inspect_bytes(url, proxy, company_ca):
    context = ssl.create_default_context(cafile=company_ca)
    async with aiohttp.ClientSession() as session:
        async with session.get(url, proxy=proxy, ssl=context) as response:
            return await response.read()


# --- running them ------------------------------------------------------------------------


@pytest.mark.parametrize("answer", answers_in(__name__), ids=answer_id)
def test_answer(answer, capfd):
    judge(answer)
    assert capfd.readouterr().err == ""


def _proxy_threads() -> int:
    return sum(thread.name == "local_server-proxy" for thread in threading.enumerate())


def _course_temp_dirs() -> set[str]:
    folder = tempfile.gettempdir()
    return {name for name in os.listdir(folder) if name.startswith("aiohttp-course-")}


def test_environment_proxies_and_files_are_put_back():
    before_env, before_threads = dict(os.environ), _proxy_threads()
    before_files = _course_temp_dirs()
    for task, answer in (
        (check.fetch_through, through_sleeps),
        (check.fetch_from_environment, env_clears_no_proxy),
        (check.fetch_via_inspecting_proxy, inspect_env_restored),
    ):
        assert not task.diagnose(answer).passed
    assert dict(os.environ) == before_env
    assert _proxy_threads() == before_threads
    assert _course_temp_dirs() <= before_files


def test_a_stub_is_not_implemented_yet():
    async def stub(*args):
        raise NotImplementedError

    for task in (check.fetch_through, check.fetch_from_environment,
                 check.fetch_via_inspecting_proxy):
        assert task.diagnose(stub).problem == "not-implemented"


def test_credentials_in_url_never_shows_the_password():
    from adversarial import ex17_proxies_environment as independent

    for answer in (independent.through_url_encoded, independent.through_url_raw):
        verdict = check.fetch_through.diagnose(answer)
        assert verdict.problem == "credentials-in-url"
        assert "<the password>" in verdict.message
        assert "@" not in verdict.message.split("<the password>")[0].rsplit(":", 1)[-1]


def test_verdicts_quote_what_the_proxy_and_origin_saw():
    from adversarial import ex17_proxies_environment as independent

    http = check.fetch_through.diagnose(independent.through_proxy_headers_always)
    assert "with no Proxy-Authorization header and answered 407" in http.message
    assert "127.0.0.1:PORT" in http.message
    leaked = check.fetch_through.diagnose(independent.through_both_places)
    assert "HTTPS origin received a Proxy-Authorization header (Basic …)" in leaked.message
    deprecated = check.fetch_through.diagnose(independent.through_proxy_auth)
    assert "DeprecationWarning" in deprecated.message and "proxy_auth=" in deprecated.message
    bypassed = check.fetch_from_environment.diagnose(independent.env_explicit_proxy)
    assert "GET http://localhost:PORT/data/" in bypassed.message
    assert "its host is in NO_PROXY" in bypassed.message
    impostor = check.fetch_via_inspecting_proxy.diagnose(independent.inspect_ssl_false)
    assert "decrypted and read GET https://localhost:PORT/data/" in impostor.message


def test_verdicts_are_the_same_on_every_run():
    from adversarial import ex17_proxies_environment as independent

    first = check.fetch_from_environment.diagnose(independent.env_no_trust)
    second = check.fetch_from_environment.diagnose(independent.env_no_trust)
    assert first == second
