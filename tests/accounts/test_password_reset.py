"""Passwords in the service alone (no hub): what is stored, the rate limits, and which accounts are refused.
The end-to-end flows with a real hub and SMTP server are in ``tests/hub/test_passwords.py`` and
``tests/security/test_password_reset.py``."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts.api.passwords import FORGOT_ANSWER
from polartep_hub.accounts.models import Account, PasswordResetToken
from polartep_hub.service.models import OutboxMail
from tests.helpers.service_accounts import create, edit_account

PASSWORD = "an-old-password-for-tests"  # noqa: S105


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


@pytest.fixture
def service_config(service_config):
    return dataclasses.replace(service_config, password_reset_per_hour=4)


def rows(app, model) -> list:
    with app.state.context.session() as session:
        return list(session.scalars(select(model)))


def make(api, app, name: str, email: str | None = None) -> None:
    create(api, name, password=PASSWORD)
    if email:
        edit_account(app, name, email=email)


def forgot(api, login: str):
    return api.post("api/v1/password/forgot", json={"login": login})


def test_a_link_and_its_mail_are_stored_together_and_only_the_token_hash_is_kept(api, app):
    make(api, app, "alice", "alice@polar.example")
    assert forgot(api, "alice").status_code == 202
    [link] = rows(app, PasswordResetToken)
    [mail] = rows(app, OutboxMail)
    token = mail.body.split("token=", 1)[1].split()[0]
    assert len(link.token_hash) == 64 and token not in link.token_hash
    assert mail.to_address == "alice@polar.example"
    assert mail.account_id == link.account_id


def test_each_account_gets_at_most_three_links_an_hour_with_the_same_answer(api, app):
    make(api, app, "bob", "bob@polar.example")
    answers = [forgot(api, login) for login in ("bob", "BOB@polar.example", "bob")]
    assert {(r.status_code, r.json()["detail"]) for r in answers} == {(202, FORGOT_ANSWER)}
    assert len(rows(app, OutboxMail)) == 3
    fourth = forgot(api, "bob")
    assert (fourth.status_code, fourth.json()["detail"]) == (202, FORGOT_ANSWER)
    assert len(rows(app, OutboxMail)) == 3


def test_an_address_that_asks_too_often_gets_429_whatever_it_asks_about(api, app):
    for i in range(4):
        assert forgot(api, f"nobody{i}").status_code == 202
    refused = forgot(api, "nobody-else")
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith(
        "too many password-reset requests from your address; try again in"
    )
    assert 3000 < int(refused.headers["retry-after"]) <= 3601


def test_the_configured_admin_and_oidc_accounts_keep_their_passwords(api, app):
    make(api, app, "admin", "admin@polar.example")
    make(api, app, "olga", "olga@polar.example")
    edit_account(app, "olga", auth_source="oidc")
    for name in ("admin", "olga"):
        assert forgot(api, name).status_code == 202
        r = api.post(f"api/v1/accounts/{name}/password-reset", token="ada-token")
        assert r.status_code == 409
    assert rows(app, OutboxMail) == []
    assert (
        "POLARTEP_ADMIN_PASSWORD"
        in api.post("api/v1/accounts/admin/password-reset", token="ada-token").json()["detail"]
    )


def test_a_forced_reset_without_an_e_mail_address_says_no_link_was_sent(api, app):
    make(api, app, "carl")
    r = api.post("api/v1/accounts/carl/password-reset", token="ada-token")
    assert r.status_code == 200
    assert r.json() == {"name": "carl", "mailed": False, "sessions_ended": True}
    with app.state.context.session() as session:
        account = session.scalar(select(Account).where(Account.name == "carl"))
        assert account.password_reset_required is True
        assert session.scalar(select(func.count()).select_from(OutboxMail)) == 0
    login = api.post(
        "api/v1/auth/password", token="hub-token", json={"username": "carl", "password": PASSWORD}
    )
    assert login.status_code == 403
    assert login.json()["reason"] == "password_reset"
    wrong = api.post(
        "api/v1/auth/password", token="hub-token", json={"username": "carl", "password": "wrong-one"}
    )
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid username or password")


def test_only_administrators_force_resets(api, app):
    make(api, app, "dave", "dave@polar.example")
    assert api.post("api/v1/accounts/dave/password-reset", token="alice-token").status_code == 403
    assert api.post("api/v1/accounts/dave/password-reset").status_code == 401
    assert rows(app, OutboxMail) == []


def test_the_admin_page_button_forces_a_reset_only_with_the_pages_xsrf(api, app, fake_hub):
    from tests.helpers.service_login import browser_login, xsrf_of

    make(api, app, "erin", "erin@polar.example")
    browser_login(api, fake_hub)
    page = api.get("admin/accounts/erin")
    assert (
        page.status_code == 200
        and "Force a password reset" in page.text
        and "erin@polar.example" in page.text
    )
    forged = api.post("admin/accounts/erin/password-reset", data={"_xsrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert rows(app, OutboxMail) == []
    done = api.post(
        "admin/accounts/erin/password-reset", data={"_xsrf": xsrf_of(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith("admin/accounts/erin?done=password-reset")
    assert [m.to_address for m in rows(app, OutboxMail)] == ["erin@polar.example"]
    shown = api.get("admin/accounts/erin?done=password-reset")
    assert "a reset link was e-mailed" in shown.text


def test_the_account_page_offers_the_change_form_only_for_platform_passwords(api, app, fake_hub):
    from tests.helpers.service_login import browser_login

    make(api, app, "alice", "alice@polar.example")
    browser_login(api, fake_hub, token="alice-token")
    assert "Change your password" in api.get("account").text
    edit_account(app, "alice", auth_source="oidc")
    assert "Change your password" not in api.get("account").text
