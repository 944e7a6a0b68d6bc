"""Passwords end to end on a running platform whose outbox delivers to a real SMTP server (``mail_platform``):
change on the account page and over the API, an administrator's forced reset, "forgot password" with the e-mailed
link. Browser sessions are httpx cookie clients that log in through the hub's login form.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import markupsafe
import pytest

from tests.helpers.browser_session import form_xsrf
from tests.helpers.passwords import API, FORGOT_ANSWER, NEW, OLD, hub_login, make_user

pytestmark = pytest.mark.hub


def browser() -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=60)


def logged_in(client: httpx.Client, platform) -> bool:
    """Whether the client's hub cookie is a live session (``/hub/home`` answers instead of sending to the login)."""
    r = client.get(f"{platform.url}/hub/home", follow_redirects=False)
    assert r.status_code in (200, 302), r.status_code
    return r.status_code == 200


def token_works(platform, token: str) -> tuple[int, int]:
    """(hub's /api/user status, platform service's /me status) with ``token``."""
    return (
        platform.api("GET", "/hub/api/user", token).status_code,
        platform.api("GET", f"{API}/me", token).status_code,
    )


def test_changing_the_password_on_the_account_page_ends_every_session_and_token(mail_platform):
    platform = mail_platform
    name, token, _ = make_user(platform)
    assert token_works(platform, token) == (200, 200)
    with browser() as other, browser() as changer:
        assert hub_login(other, platform, name, OLD).status_code == 302
        assert logged_in(other, platform)
        assert hub_login(changer, platform, name, OLD).status_code == 302
        page = changer.get(f"{platform.url}/services/platform/account")
        assert page.status_code == 200 and "Change your password" in page.text

        wrong = changer.post(
            f"{platform.url}/services/platform/account/password",
            data={
                "_xsrf": form_xsrf(page.text),
                "current_password": "not-the-password-at-all",
                "new_password": NEW,
                "new_password_confirm": NEW,
            },
        )
        assert wrong.status_code == 403
        # The problem is shown beside the field it names (the page's field-error element for current_password).
        assert re.search(r'id="current_password-error">\s*this is not your current password', wrong.text), (
            wrong.text[-3000:]
        )
        assert logged_in(other, platform)  # a refused change ends nothing

        done = changer.post(
            f"{platform.url}/services/platform/account/password",
            data={
                "_xsrf": form_xsrf(wrong.text),
                "current_password": OLD,
                "new_password": NEW,
                "new_password_confirm": NEW,
            },
        )
        assert done.status_code == 200, done.text
        assert "Your password was changed." in done.text

        # The other browser, the changing browser and the old token are all logged out.
        assert not logged_in(other, platform)
        assert not logged_in(changer, platform)
        assert token_works(platform, token) == (403, 401)
        again = changer.get(f"{platform.url}/services/platform/account")
        assert str(again.url).startswith(f"{platform.url}/hub/login")

    with browser() as fresh:
        refused = hub_login(fresh, platform, name, OLD)
        assert refused.status_code == 403
        assert "Invalid username or password" in refused.text
        assert hub_login(fresh, platform, name, NEW).status_code == 302
        assert logged_in(fresh, platform)


def test_changing_the_password_over_the_api_checks_both_passwords(mail_platform):
    platform = mail_platform
    name, token, _ = make_user(platform)
    path = f"{API}/me/password"

    wrong = platform.api(
        "POST", path, token, json={"current_password": "nope-nope-nope", "new_password": NEW}
    )
    assert (wrong.status_code, wrong.json()["detail"]) == (
        403,
        "current_password: this is not your current password",
    )
    weak = platform.api("POST", path, token, json={"current_password": OLD, "new_password": "password123"})
    assert weak.status_code == 422
    assert weak.json()["detail"].startswith("invalid request: new_password: ")
    with_name = platform.api(
        "POST", path, token, json={"current_password": OLD, "new_password": f"x{name}-long-1"}
    )
    assert with_name.status_code == 422
    assert "must not contain your user name" in with_name.json()["detail"]
    same = platform.api("POST", path, token, json={"current_password": OLD, "new_password": OLD})
    assert same.status_code == 422
    assert token_works(platform, token) == (200, 200)  # nothing was changed by the refusals

    done = platform.api("POST", path, token, json={"current_password": OLD, "new_password": NEW})
    assert done.status_code == 200, done.text
    assert done.json()["sessions_ended"] is True
    assert token_works(platform, token) == (403, 401)
    with browser() as client:
        assert hub_login(client, platform, name, OLD).status_code == 403
        assert hub_login(client, platform, name, NEW).status_code == 302


def test_an_admin_forced_reset_refuses_the_old_password_and_mails_a_link(mail_platform, mail_server):
    platform = mail_platform
    name, token, address = make_user(platform, "reset")
    with browser() as session:
        assert hub_login(session, platform, name, OLD).status_code == 302

        r = platform.api("POST", f"{API}/accounts/{name}/password-reset", token)
        assert r.status_code == 403  # a user cannot reset anybody, not even themselves this way
        r = platform.api("POST", f"{API}/accounts/{name}/password-reset", platform.admin_token)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": name, "mailed": True, "sessions_ended": True}

        assert not logged_in(session, platform)
        assert token_works(platform, token) == (403, 401)
        refused = hub_login(session, platform, name, OLD)
        assert refused.status_code == 403
        assert "an administrator has reset your password" in refused.text

    mail = mail_server.wait_for(address)
    assert mail.subject == "Polar TEP: reset your password"
    assert mail.mail_from == "noreply@polartep.test"
    assert "An administrator has reset the password" in mail.body
    link = mail.link()
    assert link.startswith(f"{platform.url}/services/platform/password/reset?token=")

    with browser() as client:
        page = client.get(link)
        assert page.status_code == 200 and name in page.text
        token_field = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        done = client.post(
            f"{platform.url}/services/platform/password/reset",
            data={"token": token_field, "new_password": NEW, "new_password_confirm": NEW},
        )
        assert done.status_code == 200, done.text
        assert "Your new password is set." in done.text
        assert hub_login(client, platform, name, OLD).status_code == 403
        assert hub_login(client, platform, name, NEW).status_code == 302


def _expire(platform, token_hash: str) -> None:
    """Move a reset link's expiry into the past (as if its 30 minutes had gone by)."""
    path = platform.settings.service_db_url.removeprefix("sqlite:///")
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(path) as db:
        changed = db.execute(
            "UPDATE password_reset_tokens SET expires_at = ? WHERE token_hash = ?", (past, token_hash)
        ).rowcount
    assert changed == 1


def test_forgot_password_mails_a_single_use_expiring_link(mail_platform, mail_server):
    import hashlib

    platform = mail_platform
    name, token, address = make_user(platform, "forgot")
    unknown = f"nobody{secrets.token_hex(3)}@polar.example"

    answers = [
        platform.api("POST", f"{API}/password/forgot", json={"login": login}) for login in (unknown, name)
    ]
    assert [(a.status_code, a.json()) for a in answers] == [(202, {"detail": FORGOT_ANSWER})] * 2
    mail = mail_server.wait_for(address)
    assert mail_server.to(unknown) == []  # mailed in order: the unknown address's request came first, no mail
    link = mail.link()
    reset_token = link.split("token=", 1)[1]
    assert token_works(platform, token) == (200, 200)  # asking for a link ends nothing

    with browser() as client:
        page = client.get(link)
        assert page.status_code == 200
        assert re.search(r'name="token" value="([^"]+)"', page.text).group(1) == reset_token
    # The link was opened, but its token is in no log (the service's access log redacts it).
    logs = platform.hub_log.read_text(errors="replace") + (platform.root / "proxy.log").read_text(
        errors="replace"
    )
    assert reset_token not in logs
    assert '"GET /services/platform/password/reset?token=[redacted] HTTP/1.1" 200' in logs

    weak = platform.api("POST", f"{API}/password/reset", json={"token": reset_token, "new_password": "short"})
    assert weak.status_code == 422  # the rules apply, and the link is still good afterwards
    done = platform.api("POST", f"{API}/password/reset", json={"token": reset_token, "new_password": NEW})
    assert done.status_code == 200, done.text
    assert done.json()["name"] == name
    assert token_works(platform, token) == (403, 401)

    reuse = platform.api(
        "POST", f"{API}/password/reset", json={"token": reset_token, "new_password": OLD + "x"}
    )
    assert reuse.status_code == 410
    assert reuse.json()["detail"].startswith(
        "this password-reset link was used already (each link works once)"
    )
    with browser() as client:
        page = client.get(link)
        assert page.status_code == 410
        assert "was used already" in page.text
        assert hub_login(client, platform, name, NEW).status_code == 302

    # A second link, expired before use.
    assert platform.api("POST", f"{API}/password/forgot", json={"login": address}).status_code == 202
    second = mail_server.wait_for(address, count=2).link().split("token=", 1)[1]
    _expire(platform, hashlib.sha256(second.encode()).hexdigest())
    expired = platform.api(
        "POST", f"{API}/password/reset", json={"token": second, "new_password": OLD + "-y"}
    )
    assert expired.status_code == 410
    assert expired.json()["detail"].startswith("this password-reset link has expired")
    with browser() as client:
        assert hub_login(client, platform, name, NEW).status_code == 302


def test_the_forgot_password_page_gives_the_same_answer_for_known_and_unknown_names(
    mail_platform, mail_server
):
    platform = mail_platform
    name, _, address = make_user(platform, "fpage")
    pages = []
    with browser() as client:
        form = client.get(f"{platform.url}/services/platform/password/forgot")
        assert form.status_code == 200
        for login in (f"ghost{secrets.token_hex(3)}", name):
            pages.append(
                client.post(f"{platform.url}/services/platform/password/forgot", data={"login": login})
            )
    assert [p.status_code for p in pages] == [202, 202]
    assert pages[0].text == pages[1].text
    assert str(markupsafe.escape(FORGOT_ANSWER)) in pages[0].text
    assert mail_server.wait_for(address).subject == "Polar TEP: reset your password"
    login_page = httpx.get(f"{platform.url}/hub/login", timeout=30)
    assert 'href="/services/platform/password/forgot"' in login_page.text
