"""Attack: abuse the embedded login from inside a user's server (issue 9.7), against a real platform.

A platform of its own (3 failures per (name, address), 6 per address, a 10-minute window, 2 argon2 slots). Each
attack runs from mallory's running single-user server (``inside_server.run_inside``: that server's environment,
user and home), going through the public proxy from a loopback source address of its own, as a client on another
machine would. Each test asserts what was attempted and that it failed:

* locking ``admin`` out: a stranger's wrong guesses throttle only the stranger's address (even the right password is
  refused there), and the real administrator, from their own address, still logs in;
* telling accounts apart: wrong passwords and throttled answers are the same page for ``admin`` and for a name that
  does not exist (the time to try again aside), and take about as long;
* exhausting memory with concurrent argon2 hashes: more concurrent logins than slots; the service's own metrics show
  that no more than 2 hashes ever ran at once, and each refused login was answered 503.
"""

from __future__ import annotations

import difflib
import re

import httpx
import pytest

from tests.harness import ADMIN_PASSWORD, RunningPlatform
from tests.helpers.browser_session import form_xsrf
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

ATTEMPTS = 3
PER_ADDRESS = 6
SLOTS = 2

# Shared by the attacks: one browser-like login through the proxy from a chosen source address.
LOGIN = r"""
import json, os, re, sys, time, httpx

URL = os.environ["ATTACK_URL"]

def login(source, username, password):
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=120) as browser:
        page = browser.get(URL + "/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        started = time.monotonic()
        r = browser.post(URL + "/hub/login", data={"username": username, "password": password, "_xsrf": xsrf},
                         follow_redirects=False)
        return {"status": r.status_code, "seconds": time.monotonic() - started, "body": r.text}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    env = {
        "POLARTEP_LOGIN_ATTEMPTS": str(ATTEMPTS),
        "POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS": str(PER_ADDRESS),
        "POLARTEP_LOGIN_LOCKOUT_SECONDS": "600",
        "POLARTEP_LOGIN_MAX_CONCURRENT_HASHES": str(SLOTS),
    }
    with RunningPlatform(tmp_path_factory.mktemp("login-abuse"), extra_env=env).running() as running:
        token = running.create_user("mallory", password="Mallory-Moraine-77")
        running.spawn("mallory", token)
        yield running


def attack(platform: RunningPlatform, code: str):
    return run_inside_server(platform, "mallory", LOGIN + code, env={"ATTACK_URL": platform.url})


def real_login(platform: RunningPlatform, source: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=120) as browser:
        page = browser.get(f"{platform.url}/hub/login")
        return browser.post(
            f"{platform.url}/hub/login",
            data={"username": username, "password": password, "_xsrf": form_xsrf(page.text)},
            follow_redirects=False,
        )


def login_error(body: str) -> str:
    match = re.search(r'<p class="login_error">([^<]*)</p>', body)
    assert match, "no login error on the page"
    return match.group(1)


def test_a_stranger_cannot_lock_out_admin(platform):
    # The stranger guesses admin's password 10 times, then (say it leaked meanwhile) tries the right one.
    result = attack(
        platform,
        f"""
statuses = [login("127.0.0.2", "admin", f"Wrong-Guess-{{i:03d}}")["status"] for i in range(10)]
right = login("127.0.0.2", "admin", {ADMIN_PASSWORD!r})
print(json.dumps({{"statuses": statuses, "right": right["status"], "message": right["body"]}}))
""",
    )
    assert result["statuses"] == [403] * ATTEMPTS + [429] * (10 - ATTEMPTS)
    # Throttled, the stranger's address is refused even with the right password...
    assert result["right"] == 429
    assert login_error(result["message"]).startswith(
        "too many login attempts from your address; try again after"
    )
    # ...and the real administrator, from their own address, logs in at once.
    response = real_login(platform, "127.0.0.3", "admin", ADMIN_PASSWORD)
    assert response.status_code == 302 and response.headers["location"].startswith("/hub/")


def _normalised(body: str, name: str) -> str:
    body = re.sub(r'name="_xsrf" value="[^"]+"', 'name="_xsrf" value="X"', body)
    body = re.sub(r"_xsrf=[^&\"']+", "_xsrf=X", body)
    body = re.sub(r'xsrf_token: "[^"]+"', 'xsrf_token: "X"', body)
    body = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "TIME UTC", body)
    # The form shows back the name that was typed; nothing else may differ.
    return body.replace(f'value="{name}"', 'value="NAME"')


def test_answers_do_not_tell_whether_an_account_exists(platform):
    result = attack(
        platform,
        f"""
out = {{}}
for name in ("admin", "no-such-account"):
    wrong = [login("127.0.0.4", name, f"Wrong-Guess-{{i:03d}}") for i in range({ATTEMPTS})]
    throttled = login("127.0.0.4", name, "Wrong-Guess-999")
    out[name] = {{"wrong": wrong, "throttled": throttled}}
print(json.dumps(out))
""",
    )
    admin, nobody = result["admin"], result["no-such-account"]
    assert [a["status"] for a in admin["wrong"]] == [a["status"] for a in nobody["wrong"]] == [403] * ATTEMPTS
    first_admin, first_nobody = (
        _normalised(admin["wrong"][0]["body"], "admin"),
        _normalised(nobody["wrong"][0]["body"], "no-such-account"),
    )
    assert first_admin == first_nobody, "\n".join(
        difflib.unified_diff(first_admin.splitlines(), first_nobody.splitlines(), lineterm="")
    )
    assert len({_normalised(a["body"], "admin") for a in admin["wrong"]}) == 1
    assert admin["throttled"]["status"] == nobody["throttled"]["status"] == 429
    assert _normalised(admin["throttled"]["body"], "admin") == _normalised(
        nobody["throttled"]["body"], "no-such-account"
    )
    # Both cost one argon2 check: the medians are within a factor of 3 (skipping the hash would be ~50 times faster).
    median = {
        name: sorted(a["seconds"] for a in attempts["wrong"])[ATTEMPTS // 2]
        for name, attempts in (("admin", admin), ("nobody", nobody))
    }
    assert 1 / 3 < median["admin"] / median["nobody"] < 3, median


def _metric(platform: RunningPlatform, name: str) -> float:
    text = platform.api("GET", "/services/platform/metrics", platform.admin_token).text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in the service's metrics"
    return float(match.group(1))


def test_concurrent_logins_never_run_more_hashes_than_the_bound(platform):
    refusals_before = _metric(platform, "polartep_platform_password_hash_busy_refusals")
    # 24 logins at once, each from an address of its own (so the throttle does not refuse them first).
    result = attack(
        platform,
        """
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(24) as pool:
    answers = list(pool.map(lambda i: login(f"127.0.1.{i + 1}", f"flood-{i}", "Wrong-Guess-000"), range(24)))
print(json.dumps({"statuses": sorted(a["status"] for a in answers)}))
""",
    )
    statuses = result["statuses"]
    refused = statuses.count(503)
    assert set(statuses) <= {403, 503} and statuses.count(403) >= SLOTS
    assert refused >= 1, f"the flood never found the slots full: {statuses}"
    # The service's own count: never more than SLOTS hashes at once, and one refusal per 503 answer.
    assert _metric(platform, "polartep_platform_password_hash_slots") == SLOTS
    assert _metric(platform, "polartep_platform_password_hashes_peak") == SLOTS
    assert _metric(platform, "polartep_platform_password_hash_busy_refusals") - refusals_before == refused
