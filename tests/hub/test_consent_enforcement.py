"""No server before the current terms and privacy statement are accepted, on the real hub and platform service.

Specification: a user who has not accepted the current documents cannot start a server through the REST API (403
with a message naming the consent page) and a browser opening the spawn page is redirected to the consent page;
after accepting there, the browser is back on the spawn page and the server starts. Publishing a new version (a
new file in ``POLARTEP_LEGAL_DIR``, read when the hub restarts its service) makes everyone accept again; a stale
version is refused.
"""

from __future__ import annotations

import re

import httpx
import pytest

from polartep_hub.accounts.legal import SHIPPED_LEGAL_DIR
from tests.harness import RunningPlatform
from tests.helpers.browser_session import form_xsrf, logged_in_session

pytestmark = pytest.mark.hub

CONSENTS = "/services/platform/api/v1/me/consents"


def spawn_request(platform: RunningPlatform, user: str, token: str) -> httpx.Response:
    return platform.api("POST", f"/hub/api/users/{user}/server", token, json={"profile": "interactive"})


def test_the_rest_api_refuses_to_spawn_before_the_terms_are_accepted(platform, new_user):
    user, token = new_user(plan="trial", accept_terms=False)
    r = spawn_request(platform, user, token)
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert f"{user} has not accepted the current Terms and conditions" in message
    assert "/services/platform/consent?next=/hub/spawn" in message
    assert platform.server_model(user) is None

    platform.accept_current_terms(token)
    assert spawn_request(platform, user, token).status_code in (201, 202)
    platform.wait_ready(user)
    platform.stop_server(user)


def test_the_browser_is_sent_to_accept_the_terms_and_then_spawns(platform, new_user):
    user, _ = new_user(plan="trial", password="a-long-password-3", accept_terms=False)
    with logged_in_session(platform, user, "a-long-password-3") as browser:
        r = browser.get(f"{platform.url}/hub/spawn", follow_redirects=False)
        assert r.status_code == 302
        assert r.headers["location"] == "/services/platform/consent?next=/hub/spawn"

        # Through the service's own login (the hub's OAuth) to the consent page.
        page = browser.get(f"{platform.url}{r.headers['location']}")
        assert page.status_code == 200 and str(page.url).startswith(
            f"{platform.url}/services/platform/consent"
        )
        assert 'href="/services/platform/legal/terms/' in page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        assert fields["next"] == "/hub/spawn"

        # A forged form (no XSRF token) records nothing.
        forged = browser.post(
            f"{platform.url}/services/platform/consent",
            data={k: v for k, v in fields.items() if k != "_xsrf"}
            | {"accept_terms": "yes", "accept_privacy": "yes"},
        )
        assert forged.status_code == 403
        assert browser.get(f"{platform.url}/hub/spawn", follow_redirects=False).status_code == 302

        accepted = browser.post(
            f"{platform.url}/services/platform/consent",
            data=fields | {"accept_terms": "yes", "accept_privacy": "yes"},
        )
        assert accepted.status_code == 200 and str(accepted.url) == f"{platform.url}/hub/spawn"
        assert 'value="interactive"' in accepted.text  # the spawn form itself now
        browser.post(
            f"{platform.url}/hub/spawn", data={"profile": "interactive", "_xsrf": form_xsrf(accepted.text)}
        )
        platform.wait_ready(user)
    platform.stop_server(user)


def test_an_admin_opening_the_spawn_page_of_such_a_user_is_told_why(platform, new_user):
    user, _ = new_user(plan="trial", accept_terms=False)
    with logged_in_session(platform, "admin", platform.env["POLARTEP_ADMIN_PASSWORD"]) as browser:
        # Not redirected (only the user can accept, so a redirect would bounce back forever): a notice instead.
        page = browser.get(f"{platform.url}/hub/spawn/{user}", follow_redirects=False)
        assert page.status_code == 200
        assert f"{user} has not accepted the current Terms and conditions" in page.text
    assert platform.server_model(user) is None


def test_a_new_terms_version_forces_everyone_to_accept_again(tmp_path):
    legal = tmp_path / "legal"
    shipped = SHIPPED_LEGAL_DIR
    for kind in ("terms", "privacy"):
        (legal / kind).mkdir(parents=True)
        for document in (shipped / kind).glob("*.md"):
            (legal / kind / document.name).write_text(document.read_text())
    platform = RunningPlatform(
        tmp_path / "platform", extra_env={"POLARTEP_LEGAL_DIR": str(legal), "POLARTEP_IDLE_TIMEOUT": "0"}
    )
    with platform.running():
        token = platform.create_user("vera", plan="trial")
        old = platform.api("GET", CONSENTS, token).json()["current"]["terms"]
        assert platform.api("GET", CONSENTS, token).json()["missing"] == []

        (legal / "terms" / "2099-01-01.md").write_text("# Terms\n\nVersion 2099-01-01: new rules.\n")
        platform.stop_hub()
        platform.start_hub()  # the hub restarts the platform service, which reads the folder again

        status = platform.api("GET", CONSENTS, token).json()
        assert [(d["kind"], d["version"]) for d in status["missing"]] == [("terms", "2099-01-01")]
        refused = spawn_request(platform, "vera", token)
        assert refused.status_code == 403 and "Terms and conditions (version 2099-01-01)" in refused.text

        stale = platform.api("POST", CONSENTS, token, json={"terms": old})
        assert stale.status_code == 409 and "no longer current" in stale.json()["detail"]

        accepted = platform.api("POST", CONSENTS, token, json={"terms": "2099-01-01"})
        assert accepted.status_code == 200 and accepted.json()["missing"] == []
        assert spawn_request(platform, "vera", token).status_code in (201, 202)
        platform.wait_ready("vera")
