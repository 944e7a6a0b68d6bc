"""Accounts of identity-provider logins (``POST api/v1/auth/oidc``, hub only).

Specification: the first login creates an approved OIDC account with the valid profile claims; later logins of
the same identity update them; invalid claims are skipped and named (never stored, never echoed); an account is
bound to one identity, so a second identity whose name maps to it, an identity renamed at the provider, or a name
that belongs to a password account is refused with 409 and nothing changes; only the hub may call the route.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account, OIDCIdentity

ISSUER = "http://127.0.0.1:9/idp"


def login(api, name="olivia", subject="sub-1", **claims):
    return api.post(
        "api/v1/auth/oidc",
        token="hub-token",
        json={"name": name, "issuer": ISSUER, "subject": subject, **claims},
    )


def account(app, name) -> Account | None:
    with app.state.context.session() as session:
        return session.scalar(select(Account).where(Account.name == name))


def identities(app) -> list[tuple[str, str]]:
    with app.state.context.session() as session:
        rows = session.execute(
            select(Account.name, OIDCIdentity.subject).join(Account, Account.id == OIDCIdentity.account_id)
        )
        return sorted(tuple(row) for row in rows)


def test_the_first_login_creates_an_approved_oidc_account_with_the_claims(api, app):
    r = login(api, full_name="Olivia Ice", email="Olivia@Example.org", organisation="Polar Institute")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "olivia", "admin": False, "created": True, "rejected_claims": []}
    stored = account(app, "olivia")
    assert stored.auth_source == "oidc" and stored.approved and stored.approved_at is not None
    assert stored.password_hash is None and stored.plan == "trial"
    assert (stored.full_name, stored.email, stored.organisation) == (
        "Olivia Ice",
        "Olivia@example.org",
        "Polar Institute",
    )
    assert identities(app) == [("olivia", "sub-1")]


def test_a_later_login_updates_the_claims_and_keeps_the_rest(api, app):
    login(api, full_name="Olivia Ice", email="olivia@example.org", organisation="Polar Institute")
    r = login(api, email="olivia@new.example.org")
    assert r.status_code == 200 and r.json()["created"] is False
    stored = account(app, "olivia")
    assert stored.email == "olivia@new.example.org"
    assert stored.full_name == "Olivia Ice" and stored.organisation == "Polar Institute"


def test_invalid_claims_are_skipped_and_named_but_never_logged(api, app, caplog):
    with caplog.at_level(logging.WARNING):
        r = login(api, full_name="Olivia\u0000Ice", email="not-an-address", organisation="Polar Institute")
    assert r.status_code == 200
    assert r.json()["rejected_claims"] == ["full_name", "email"]
    stored = account(app, "olivia")
    assert stored.full_name is None and stored.email is None and stored.organisation == "Polar Institute"
    assert "full_name, email" in caplog.text and "not-an-address" not in caplog.text


def test_a_second_identity_with_the_same_name_is_refused(api, app):
    login(api, email="olivia@example.org")
    r = login(api, subject="someone-else", email="impostor@example.org")
    assert r.status_code == 409
    assert "another identity" in r.json()["detail"]
    assert account(app, "olivia").email == "olivia@example.org"
    assert identities(app) == [("olivia", "sub-1")]


def test_an_identity_renamed_at_the_provider_is_refused(api, app):
    login(api)
    r = login(api, name="olivia2")
    assert r.status_code == 409 and "'olivia'" in r.json()["detail"]
    assert account(app, "olivia2") is None


def test_a_password_account_cannot_be_taken_over(api, app):
    assert (
        api.post("api/v1/accounts", token="hub-token", json={"name": "admin2", "admin": True}).status_code
        == 201
    )
    r = login(api, name="admin2")
    assert r.status_code == 409 and "password" in r.json()["detail"]
    assert account(app, "admin2").auth_source == "local"
    assert identities(app) == []


@pytest.mark.parametrize("name", ["Olivia", "o livia", "x" * 65, ""])
def test_names_that_are_not_account_names_are_refused(api, app, name):
    assert login(api, name=name).status_code in (400, 422)
    assert identities(app) == []


def test_only_the_hub_may_record_logins(api, app):
    r = api.post(
        "api/v1/auth/oidc", token="alice-token", json={"name": "alice", "issuer": ISSUER, "subject": "x"}
    )
    assert r.status_code == 403
    assert identities(app) == []
