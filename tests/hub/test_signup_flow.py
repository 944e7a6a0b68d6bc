"""Registration end to end against the real hub: sign up, wait for approval, log in, spawn; throttling on the login page.

A platform of its own, with a short throttle window (2 wrong passwords, 10 s), so the throttle test can wait it out and no
other test's users are affected. Everything goes through the proxy, as a browser would: the sign-up page of the
platform service, the hub's login form, the admin's approval through the service API, and the hub's spawn form.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.harness import RunningPlatform
from tests.helpers.browser_session import form_xsrf, logged_in_session

pytestmark = pytest.mark.hub

PASSWORD = "Glacier-Moraine-42"
LOCKOUT_S = 10


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    env = {"POLARTEP_LOGIN_ATTEMPTS": "2", "POLARTEP_LOGIN_LOCKOUT_SECONDS": str(LOCKOUT_S)}
    with RunningPlatform(tmp_path_factory.mktemp("signup"), extra_env=env).running() as running:
        yield running


def sign_up(platform: RunningPlatform, username: str, **changes: str) -> httpx.Response:
    """Fill in and post the sign-up page as a browser does (the versions are the ones the page shows)."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(f"{platform.url}/services/platform/signup")
        assert page.status_code == 200
        versions = dict(re.findall(r'name="(terms_version|privacy_version)" value="([^"]+)"', page.text))
        data = {
            "username": username,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": "Ada Lovelace",
            "email": f"{username}@example.org",
            "organisation": "Polar Institute",
            "organisation_location": "Longyearbyen, Svalbard",
            "phone": "",
            "accept_terms": "yes",
            "accept_privacy": "yes",
            **versions,
            **changes,
        }
        return browser.post(f"{platform.url}/services/platform/signup", data=data)


def hub_login(platform: RunningPlatform, username: str, password: str) -> httpx.Response:
    """Post the hub's login form; returns the answer (302 on success, the form again otherwise)."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(f"{platform.url}/hub/login")
        return browser.post(
            f"{platform.url}/hub/login",
            data={"username": username, "password": password, "_xsrf": form_xsrf(page.text)},
            follow_redirects=False,
        )


def login_error(response: httpx.Response) -> str:
    match = re.search(r'<p class="login_error">([^<]*)</p>', response.text)
    assert match, f"no login error on the page ({response.status_code})"
    return match.group(1)


def approve(platform: RunningPlatform, username: str) -> None:
    r = platform.api("POST", f"/services/platform/api/v1/accounts/{username}/approve", platform.admin_token)
    assert r.status_code == 200, r.text


def test_the_login_page_links_to_signup(hub):
    page = httpx.get(f"{hub.url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert 'href="/services/platform/signup"' in page.text
    assert 'name="password"' in page.text  # still JupyterHub's own login form


def test_signup_then_approval_then_login_then_spawn(hub):
    response = sign_up(hub, "Nansen")  # typed with a capital: the account is "nansen"
    assert response.status_code == 201, response.text
    assert "nansen" in response.text and "awaits approval" in response.text

    # Before approval the right password is told the account awaits approval; a wrong one learns nothing.
    pending = hub_login(hub, "nansen", PASSWORD)
    assert pending.status_code == 403
    assert "awaits approval" in login_error(pending)
    wrong = hub_login(hub, "nansen", "Not-The-Password-1")
    assert wrong.status_code == 403 and login_error(wrong) == "Invalid username or password"

    listed = hub.api("GET", "/services/platform/api/v1/signups", hub.admin_token).json()
    assert [a["name"] for a in listed] == ["nansen"]
    approve(hub, "nansen")

    with logged_in_session(hub, "Nansen", PASSWORD) as session:
        form = session.get(f"{hub.url}/hub/spawn")
        assert 'value="interactive"' in form.text
        session.post(f"{hub.url}/hub/spawn", data={"profile": "interactive", "_xsrf": form_xsrf(form.text)})
        hub.wait_ready("nansen")
        lab = session.get(f"{hub.url}/user/nansen/lab")
        assert lab.status_code == 200 and "JupyterLab" in lab.text
    hub.stop_server("nansen")


def test_a_signup_with_bad_input_is_refused_through_the_proxy_and_nothing_is_stored(hub):
    response = sign_up(hub, "amundsen", email="amundsen@", full_name="<script>alert(1)</script>")
    assert response.status_code == 422
    assert "not a valid e-mail address" in response.text
    assert "<script>alert(1)</script>" not in response.text and "&lt;script&gt;" in response.text
    without_consent = sign_up(hub, "amundsen", accept_privacy="")
    assert without_consent.status_code == 422
    pending = hub.api("GET", "/services/platform/api/v1/signups", hub.admin_token).json()
    assert "amundsen" not in {a["name"] for a in pending}


def test_a_throttled_address_is_told_when_to_try_again_on_the_login_page(hub):
    assert sign_up(hub, "scott").status_code == 201
    approve(hub, "scott")
    for _ in range(2):
        assert login_error(hub_login(hub, "scott", "Not-The-Password-1")) == "Invalid username or password"
    locked = hub_login(hub, "scott", PASSWORD)
    assert locked.status_code == 429
    message = login_error(locked)
    assert (
        message.startswith("too many login attempts from your address; try again after ") and "UTC" in message
    )
    time.sleep(LOCKOUT_S + 0.5)
    assert hub_login(hub, "scott", PASSWORD).status_code == 302


def test_a_name_the_hub_already_has_cannot_be_signed_up(hub):
    # A hub user made through JupyterHub's API, without a platform account: signing up under its name would
    # inherit its servers and files.
    r = hub.api("POST", "/hub/api/users/peary", hub.admin_token)
    assert r.status_code == 201, r.text
    response = sign_up(hub, "Peary")
    assert response.status_code == 409 and "is taken" in response.text
