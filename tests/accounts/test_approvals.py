"""Administrators review sign-ups: the accounts API and the page ``admin/signups``.

Specification: admins (and the hub) list pending accounts with their details and consents, approve them (recording
who and when) or reject them (deleting the pending account and its consents); everyone else gets 403 and changes
nothing. The page shows every user-typed text escaped, and its buttons work only with the admin's browser session
and the matching ``_xsrf`` field.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account
from polartep_hub.service.orm import utcnow
from tests.helpers.service_fakes import without_theme_script
from tests.helpers.service_login import finish_login, start_login
from tests.helpers.signup import CURRENT, MARKUP, api_signup, stored


def account(app, name: str) -> Account | None:
    with app.state.context.session() as session:
        return session.scalar(select(Account).where(Account.name == name))


@pytest.fixture
def pending(api):
    """Two sign-ups awaiting approval: alice and bob."""
    assert api_signup(api).status_code == 201
    assert api_signup(api, username="bob", email="bob@example.org").status_code == 201


# --- API --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["ada-token", "hub-token"])
def test_admins_and_the_hub_list_sign_ups_with_details_and_consents(api, pending, token):
    api.post("api/v1/accounts", token="hub-token", json={"name": "carol"})  # approved: not pending
    response = api.get("api/v1/signups", token=token)
    assert response.status_code == 200
    listed = response.json()
    assert [a["name"] for a in listed] == ["alice", "bob"]
    alice = listed[0]
    assert alice["approved"] is False and alice["email"] == "alice@example.org"
    assert alice["organisation_location"] == "Tromsø, Norway" and alice["auth_source"] == "local"
    assert sorted((c["document"], c["version"]) for c in alice["consents"]) == [
        ("privacy", CURRENT["privacy"]),
        ("terms", CURRENT["terms"]),
    ]
    assert "password_hash" not in alice and "password" not in str(alice)
    everyone = api.get("api/v1/accounts", token=token).json()["accounts"]
    assert {a["name"] for a in everyone} == {"alice", "bob", "carol"}


@pytest.mark.parametrize("token", ["ada-token", "hub-token"])
def test_signups_lists_exactly_the_pending_accounts(api, pending, token):
    api.post("api/v1/accounts", token="hub-token", json={"name": "carol"})
    response = api.get("api/v1/signups", token=token)
    assert response.status_code == 200
    assert [a["name"] for a in response.json()] == ["alice", "bob"]
    api.post("api/v1/accounts/alice/approve", token=token)
    assert [a["name"] for a in api.get("api/v1/signups", token=token).json()] == ["bob"]


def test_approving_records_who_and_when(api, app, pending):
    before = utcnow()
    response = api.post("api/v1/accounts/alice/approve", token="ada-token")
    assert response.status_code == 200
    body = response.json()
    assert body["approved"] is True and body["approved_by"] == "ada"
    row = account(app, "alice")
    assert row.approved and row.approved_by == "ada" and row.approved_at >= before
    assert account(app, "bob").approved is False
    # Approving again changes nothing.
    again = api.post("api/v1/accounts/alice/approve", token="hub-token").json()
    assert again["approved_by"] == "ada" and again["approved_at"] == body["approved_at"]


@pytest.mark.parametrize("token", ["alice-token", "bob-token", "other-service-token", "prometheus-token"])
def test_non_admins_cannot_list_approve_or_reject(api, app, pending, token):
    assert api.get("api/v1/accounts", token=token).status_code == 403
    assert api.get("api/v1/signups", token=token).status_code == 403
    assert api.post("api/v1/accounts/alice/approve", token=token).status_code == 403
    assert api.post("api/v1/accounts/bob/reject", token=token).status_code == 403
    assert account(app, "alice").approved is False and account(app, "bob") is not None


def test_without_a_token_approval_is_401(api, app, pending):
    assert api.post("api/v1/accounts/alice/approve").status_code == 401
    assert account(app, "alice").approved is False


def test_rejecting_deletes_the_pending_account_and_its_consents(api, app, pending):
    assert api.post("api/v1/accounts/bob/reject", token="ada-token").status_code == 204
    assert account(app, "bob") is None
    assert stored(app) == (1, 2)  # alice and her two consents remain


def test_approved_accounts_cannot_be_rejected_and_unknown_ones_are_404(api, app, pending):
    api.post("api/v1/accounts/alice/approve", token="ada-token")
    response = api.post("api/v1/accounts/alice/reject", token="ada-token")
    assert response.status_code == 409 and "approved already" in response.json()["detail"]
    assert account(app, "alice") is not None
    assert api.post("api/v1/accounts/nobody/approve", token="ada-token").status_code == 404
    assert api.post("api/v1/accounts/nobody/reject", token="ada-token").status_code == 404


# --- the admin page ---------------------------------------------------------------------------------------------


def browser_login(api, fake_hub, token: str) -> None:
    assert finish_login(api, fake_hub, start_login(api), token=token).status_code == 302


def page_xsrf(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def test_the_page_sends_a_browser_without_a_session_to_log_in(api):
    response = api.get("admin/signups", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/services/platform/login?next=")


def test_the_page_lists_pending_accounts_with_every_user_text_escaped(api, fake_hub):
    assert api_signup(api, username="mallory", full_name=MARKUP, organisation=MARKUP).status_code == 201
    browser_login(api, fake_hub, "ada-token")
    page = api.get("admin/signups")
    assert page.status_code == 200
    assert '<td class="user">mallory</td>' in page.text
    assert "<script>" not in without_theme_script(page.text) and "<b>" not in page.text
    assert (
        page.text.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Bold&lt;/b&gt; &amp; Co")
        == 2
    )
    assert 'action="/services/platform/admin/signups/mallory/approve"' in page.text


def test_the_page_is_for_admins_only(api, fake_hub, pending):
    browser_login(api, fake_hub, "alice-token")
    page = api.get("admin/signups")
    assert page.status_code == 403 and "bob@example.org" not in page.text


def test_the_approve_button_approves_with_the_session_and_its_xsrf(api, app, fake_hub, pending):
    browser_login(api, fake_hub, "ada-token")
    xsrf = page_xsrf(api.get("admin/signups").text)
    response = api.post("admin/signups/alice/approve", data={"_xsrf": xsrf}, follow_redirects=False)
    assert response.status_code == 303
    assert account(app, "alice").approved and account(app, "alice").approved_by == "ada"
    after = api.client.get(response.headers["location"])
    assert "Account alice approved." in after.text and "alice@example.org" not in after.text


def test_the_reject_button_deletes_the_pending_account(api, app, fake_hub, pending):
    browser_login(api, fake_hub, "ada-token")
    xsrf = page_xsrf(api.get("admin/signups").text)
    assert (
        api.post("admin/signups/bob/reject", data={"_xsrf": xsrf}, follow_redirects=False).status_code == 303
    )
    assert account(app, "bob") is None


@pytest.mark.parametrize("xsrf", [None, "", "0" * 64])
def test_approving_without_or_with_a_wrong_xsrf_is_refused(api, app, fake_hub, pending, xsrf):
    browser_login(api, fake_hub, "ada-token")
    data = {} if xsrf is None else {"_xsrf": xsrf}
    response = api.post("admin/signups/alice/approve", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert account(app, "alice").approved is False


def test_approving_without_a_session_is_refused(api, app, pending):
    response = api.post("admin/signups/alice/approve", data={"_xsrf": "anything"}, follow_redirects=False)
    assert response.status_code == 401
    assert account(app, "alice").approved is False


def test_a_non_admin_browser_cannot_approve_even_with_its_own_xsrf(api, app, fake_hub, pending):
    from polartep_hub.service.web.pages import xsrf_token

    browser_login(api, fake_hub, "alice-token")  # the session holds alice's token
    response = api.post(
        "admin/signups/bob/approve",
        data={"_xsrf": xsrf_token(app.state.context, "alice-token")},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert account(app, "bob").approved is False
