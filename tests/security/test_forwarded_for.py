"""Attack: pose as other client addresses with a forged ``X-Forwarded-For`` (issue 9.8), against a real platform.

A platform of its own (2 sign-ups per address and hour; 3 failed logins per (name, address)). From inside mallory's
running server (``inside_server.run_inside``) the attacker tries to get past both limits by claiming a fresh address
on every request:

* directly on the platform service's port and the hub's port (no proxy at all), with any ``X-Forwarded-For`` and
  ``X-Real-Ip`` it likes;
* through the proxy, with a forged header that the proxy extends with the real peer address.

Every forged address is ignored: the limits count the address the proxy saw (or, off the proxy, the connection's
own peer), so the third sign-up and the fourth failed login are refused. A different real client address is not
refused, which shows the limit follows the real address rather than one shared value.
"""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

PER_HOUR = 2
ATTEMPTS = 3

CLIENTS = r"""
import json, os, re, httpx

PUBLIC = os.environ["ATTACK_PUBLIC_URL"]
SERVICE = os.environ["ATTACK_SERVICE_URL"]
HUB = os.environ["ATTACK_HUB_URL"]

def client(source):
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=120)

def sign_up(base, source, username, forged):
    headers = {"X-Forwarded-For": forged, "X-Real-Ip": forged.split(",")[-1].strip()}
    with client(source) as browser:
        page = browser.get(base + "/services/platform/signup", headers=headers)
        versions = dict(re.findall(r'name="(terms_version|privacy_version)" value="([^"]+)"', page.text))
        data = {"username": username, "password": "Glacier-Moraine-42", "password_confirm": "Glacier-Moraine-42",
                "full_name": "Mallory Forger", "email": username + "@example.org", "organisation": "Nowhere",
                "organisation_location": "Nowhere", "phone": "", "accept_terms": "yes", "accept_privacy": "yes",
                **versions}
        return browser.post(base + "/services/platform/signup", data=data, headers=headers).status_code

def login(base, source, username, forged):
    headers = {"X-Forwarded-For": forged, "X-Real-Ip": forged.split(",")[-1].strip()}
    with client(source) as browser:
        page = browser.get(base + "/hub/login", headers=headers)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        r = browser.post(base + "/hub/login", headers=headers, follow_redirects=False,
                         data={"username": username, "password": "Wrong-Guess-1", "_xsrf": xsrf})
        return r.status_code
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    env = {
        "POLARTEP_SIGNUP_PER_HOUR": str(PER_HOUR),
        "POLARTEP_LOGIN_ATTEMPTS": str(ATTEMPTS),
        "POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS": "100",
    }
    with RunningPlatform(tmp_path_factory.mktemp("forwarded"), extra_env=env).running() as running:
        token = running.create_user("mallory", password="Mallory-Moraine-77")
        running.spawn("mallory", token)
        yield running


def attack(platform: RunningPlatform, code: str):
    settings = platform.settings
    return run_inside_server(
        platform,
        "mallory",
        CLIENTS + code,
        env={
            "ATTACK_PUBLIC_URL": platform.url,
            "ATTACK_SERVICE_URL": settings.service_url,
            "ATTACK_HUB_URL": settings.hub_url,
        },
    )


def test_forged_addresses_on_the_service_port_do_not_buy_more_signups(platform):
    result = attack(
        platform,
        """
print(json.dumps([sign_up(SERVICE, "127.0.0.1", f"direct{i}", f"10.0.0.{i}") for i in range(4)]))
""",
    )
    assert result == [201] * PER_HOUR + [429] * (4 - PER_HOUR)


def test_forged_addresses_through_the_proxy_do_not_buy_more_signups(platform):
    result = attack(
        platform,
        """
forged = [sign_up(PUBLIC, "127.0.0.7", f"proxied{i}", f"10.1.0.{i}, 10.2.0.{i}") for i in range(4)]
other = sign_up(PUBLIC, "127.0.0.8", "elsewhere", "10.1.0.1")
print(json.dumps({"forged": forged, "other": other}))
""",
    )
    assert result["forged"] == [201] * PER_HOUR + [429] * (4 - PER_HOUR)
    assert result["other"] == 201  # another real address has a budget of its own


def test_forged_addresses_on_the_hub_port_do_not_buy_more_login_guesses(platform):
    result = attack(
        platform,
        """
print(json.dumps([login(HUB, "127.0.0.1", "admin", f"10.3.0.{i}") for i in range(6)]))
""",
    )
    assert result == [403] * ATTEMPTS + [429] * (6 - ATTEMPTS)


def test_forged_addresses_through_the_proxy_do_not_buy_more_login_guesses(platform):
    result = attack(
        platform,
        """
forged = [login(PUBLIC, "127.0.0.9", "admin", f"10.4.0.{i}") for i in range(6)]
other = login(PUBLIC, "127.0.0.10", "admin", "10.4.0.1")
print(json.dumps({"forged": forged, "other": other}))
""",
    )
    assert result["forged"] == [403] * ATTEMPTS + [429] * (6 - ATTEMPTS)
    assert result["other"] == 403  # a wrong password, not throttled: another real address
