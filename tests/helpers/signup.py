"""Signing up in tests: the sign-up body and form of the service's tests, and the public sign-up of a running hub."""

from __future__ import annotations

import dataclasses

import httpx
from sqlalchemy import func, select

from polartep_hub.accounts.legal import LegalLibrary
from polartep_hub.accounts.models import Account, Consent


def sign_up(platform, name: str) -> httpx.Response:
    """The public sign-up API, as anyone can call it (no token)."""
    return platform.api(
        "POST",
        "/services/platform/api/v1/signup",
        json={
            "username": name,
            "password": PASSWORD,
            "full_name": "Mallory Namesake",
            "email": f"{name}@example.org",
            "organisation": "Elsewhere",
            "organisation_location": "Nowhere",
            "accept_terms_version": CURRENT["terms"],
            "accept_privacy_version": CURRENT["privacy"],
        },
    )


def token_by_password(platform, name: str) -> str:
    """A token of the (new) user, asked for with their password; the hub user is made first, as for every account
    the test harness creates."""
    r = platform.api("POST", f"/hub/api/users/{name}", platform.admin_token)
    assert r.status_code == 201, r.text
    r = platform.api(
        "POST",
        f"/hub/api/users/{name}/tokens",
        json={"auth": {"username": name, "password": PASSWORD}, "note": "attacker"},
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


CURRENT = LegalLibrary.load().current_versions()


MARKUP = '<script>alert("x")</script><b>Bold</b> & Co'


def api_signup(api, **changes):
    body = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return api.post("api/v1/signup", json=body)


def stored(app) -> tuple[int, int]:
    """(accounts, consents) in the database."""
    with app.state.context.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Account)),
            session.scalar(select(func.count()).select_from(Consent)),
        )


def configure(app, **changes) -> None:
    """Change the running app's settings (e.g. ``signup_per_hour=2``)."""
    context = app.state.context
    context.config = dataclasses.replace(context.config, **changes)


def form_signup(api, **changes):
    return api.post("signup", data=form(**changes))


PASSWORD = "Glacier-Moraine-42"


GOOD = {
    "username": "alice",
    "password": PASSWORD,
    "full_name": "Alice Liddell",
    "email": "alice@example.org",
    "organisation": "Polar Institute",
    "organisation_location": "Tromsø, Norway",
    "phone": "+47 123 45 678",
    "accept_terms_version": CURRENT["terms"],
    "accept_privacy_version": CURRENT["privacy"],
}


def form(**changes: str | None) -> dict[str, str]:
    """The sign-up form as a browser posts it (boxes ticked), with ``changes``; None leaves a field out."""
    data = {
        "username": "alice",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "full_name": "Alice Liddell",
        "email": "alice@example.org",
        "organisation": "Polar Institute",
        "organisation_location": "Tromsø, Norway",
        "phone": "",
        "terms_version": CURRENT["terms"],
        "privacy_version": CURRENT["privacy"],
        "accept_terms": "yes",
        "accept_privacy": "yes",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}
