"""Accepting the terms and privacy statement: the consent API, the consent page and what the hub asks before a spawn.

Specification: a new account misses the current version of each document; accepting names the versions, and only
current versions are accepted (a stale one is 409, an unknown one 400, nothing recorded); the hub, an admin or the
user reads a user's status; publishing a new version makes it missing again. The page shows the missing documents
escaped with links to their own pages, records acceptance only from a form carrying the session's XSRF token, and
sends the browser on only to paths on this platform.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts.consents import safe_consent_next
from polartep_hub.accounts.models import Consent
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from tests.helpers.service_fakes import PREFIX, ApiClient, without_theme_script
from tests.helpers.service_login import finish_login, start_login

OLD, CURRENT = "2026-01-01", "2026-06-01"


def write_document(directory: Path, kind: str, version: str, text: str | None = None) -> None:
    (directory / kind).mkdir(parents=True, exist_ok=True)
    (directory / kind / f"{version}.md").write_text(
        text or f"# {kind} {version}\n\nBe nice.\n", encoding="utf-8"
    )


@pytest.fixture
def legal_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "legal"
    write_document(directory, "terms", OLD)
    write_document(directory, "terms", CURRENT, "# Terms\n\n<script>alert('x')</script> & more\n")
    write_document(directory, "privacy", CURRENT)
    return directory


@pytest.fixture
def service_config(database_url: str, legal_dir: Path) -> ServiceConfig:
    return ServiceConfig(prefix=PREFIX, database_url=database_url, default_plan="trial", legal_dir=legal_dir)


def consent_rows(app) -> int:
    with app.state.context.session() as session:
        return session.scalar(select(func.count()).select_from(Consent))


def test_a_new_account_misses_the_current_version_of_every_document(api):
    status = api.get("api/v1/me/consents", token="alice-token").json()
    assert status["name"] == "alice"
    assert status["current"] == {"terms": CURRENT, "privacy": CURRENT}
    assert status["accepted"] == []
    assert [(d["kind"], d["version"]) for d in status["missing"]] == [
        ("terms", CURRENT),
        ("privacy", CURRENT),
    ]
    assert status["missing"][0]["url"] == f"{PREFIX}legal/terms/{CURRENT}"
    assert status["consent_url"] == f"{PREFIX}consent"


def test_accepting_the_current_versions_leaves_nothing_missing(api):
    r = api.post("api/v1/me/consents", token="alice-token", json={"terms": CURRENT, "privacy": CURRENT})
    assert r.status_code == 200, r.text
    assert r.json()["missing"] == []
    assert {(c["kind"], c["version"]) for c in r.json()["accepted"]} == {
        ("terms", CURRENT),
        ("privacy", CURRENT),
    }
    # Accepting again is harmless and stores nothing new.
    again = api.post("api/v1/me/consents", token="alice-token", json={"terms": CURRENT, "privacy": CURRENT})
    assert again.status_code == 200 and len(again.json()["accepted"]) == 2


def test_accepting_one_document_leaves_the_other_missing(api):
    r = api.post("api/v1/me/consents", token="alice-token", json={"terms": CURRENT})
    assert [d["kind"] for d in r.json()["missing"]] == ["privacy"]


def test_a_stale_version_is_refused_and_nothing_is_recorded(api, app):
    r = api.post("api/v1/me/consents", token="alice-token", json={"privacy": CURRENT, "terms": OLD})
    assert r.status_code == 409
    assert f"{OLD!r} is no longer current" in r.json()["detail"]
    assert f"legal/terms/{CURRENT}" in r.json()["detail"]
    assert consent_rows(app) == 0


def test_an_unknown_version_is_a_400_naming_the_current_one(api, app):
    r = api.post("api/v1/me/consents", token="alice-token", json={"terms": "1999-01-01"})
    assert r.status_code == 400
    assert CURRENT in r.json()["detail"]
    assert consent_rows(app) == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"cookies": CURRENT}, {"terms": "x" * 33}, {"terms": 5}],
    ids=["nothing", "unknown-kind", "too-long", "not-text"],
)
def test_malformed_acceptances_are_refused(api, app, body):
    r = api.post("api/v1/me/consents", token="alice-token", json=body)
    assert r.status_code == 422, r.text
    assert consent_rows(app) == 0


def test_only_the_hub_an_admin_or_the_user_reads_a_users_consents(api):
    assert api.get("api/v1/users/alice/consents", token="hub-token").status_code == 200
    assert api.get("api/v1/users/alice/consents", token="ada-token").status_code == 200
    assert api.get("api/v1/users/alice/consents", token="alice-token").status_code == 200
    refused = api.get("api/v1/users/alice/consents", token="bob-token")
    assert refused.status_code == 403 and "your own" in refused.json()["detail"]
    assert api.get("api/v1/users/alice/consents").status_code == 401


def test_services_cannot_accept_for_a_user(api):
    r = api.post("api/v1/me/consents", token="hub-token", json={"terms": CURRENT})
    assert r.status_code == 403


def test_publishing_a_new_version_makes_it_missing_again(
    api, service_config, catalogue, fake_hub, fast_passwords, legal_dir
):
    api.post("api/v1/me/consents", token="alice-token", json={"terms": CURRENT, "privacy": CURRENT})
    write_document(legal_dir, "terms", "2026-12-01")
    # The service reads the folder at start-up: a restarted service sees the new version.
    restarted = create_app(service_config, catalogue, identity_provider=fake_hub, passwords=fast_passwords)
    try:
        from fastapi.testclient import TestClient

        with TestClient(restarted) as client:
            status = ApiClient(client).get("api/v1/users/alice/consents", token="hub-token").json()
    finally:
        restarted.state.context.engine.dispose()
    assert [(d["kind"], d["version"]) for d in status["missing"]] == [("terms", "2026-12-01")]
    assert ("terms", CURRENT) in {(c["kind"], c["version"]) for c in status["accepted"]}


# --- the page ---------------------------------------------------------------------------------------------------


def log_in(api, fake_hub, next_url: str) -> str:
    """Log the test browser in; returns where the login sends it."""
    response = finish_login(api, fake_hub, start_login(api, next_url=next_url))
    assert response.status_code == 302
    return response.headers["location"]


def test_the_page_sends_a_browser_without_a_session_to_log_in_and_back(api, fake_hub):
    r = api.get("consent", params={"next": "/hub/spawn"}, follow_redirects=False)
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert location.path == f"{PREFIX}login"
    back = parse_qs(location.query)["next"][0]
    assert back == f"{PREFIX}consent?next=/hub/spawn"
    # The whole round trip ends on the consent page with the original destination.
    assert log_in(api, fake_hub, back) == back


def test_the_page_shows_the_missing_documents_escaped_with_links(api, fake_hub):
    log_in(api, fake_hub, f"{PREFIX}consent")
    page = api.get("consent", params={"next": "/hub/spawn"})
    assert page.status_code == 200
    assert "<script>" not in without_theme_script(page.text) and "&lt;script&gt;" in page.text
    assert f'href="{PREFIX}legal/terms/{CURRENT}"' in page.text
    assert f'href="{PREFIX}legal/privacy/{CURRENT}"' in page.text
    assert 'name="accept_terms"' in page.text and 'name="accept_privacy"' in page.text
    assert 'name="next" value="/hub/spawn"' in page.text


def _form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_accepting_in_the_page_records_consent_and_goes_on_to_next(api, fake_hub, app):
    log_in(api, fake_hub, f"{PREFIX}consent")
    page = api.get("consent", params={"next": "/hub/spawn/alice/work"})
    fields = {**_form_fields(page.text), "accept_terms": "yes", "accept_privacy": "yes"}
    r = api.post("consent", data=fields, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/hub/spawn/alice/work"
    assert api.get("api/v1/me/consents", token="alice-token").json()["missing"] == []
    # With nothing left to accept, the page itself moves on.
    again = api.get("consent", params={"next": "/hub/home"}, follow_redirects=False)
    assert again.status_code == 302 and again.headers["location"] == "/hub/home"


def test_the_form_needs_every_box_ticked(api, fake_hub, app):
    log_in(api, fake_hub, f"{PREFIX}consent")
    fields = {**_form_fields(api.get("consent").text), "accept_terms": "yes"}
    r = api.post("consent", data=fields, follow_redirects=False)
    assert r.status_code == 400
    assert "privacy statement" in r.text
    assert consent_rows(app) == 0


def test_a_form_for_a_version_that_is_no_longer_current_records_nothing(api, fake_hub, app):
    log_in(api, fake_hub, f"{PREFIX}consent")
    fields = {**_form_fields(api.get("consent").text), "accept_terms": "yes", "accept_privacy": "yes"}
    fields["version_terms"] = OLD
    r = api.post("consent", data=fields, follow_redirects=False)
    assert r.status_code == 409 and "changed while you were reading" in r.text
    assert consent_rows(app) == 0


def test_the_form_without_the_xsrf_token_is_refused(api, fake_hub, app):
    log_in(api, fake_hub, f"{PREFIX}consent")
    fields = {**_form_fields(api.get("consent").text), "accept_terms": "yes", "accept_privacy": "yes"}
    for forged in ({k: v for k, v in fields.items() if k != "_xsrf"}, {**fields, "_xsrf": "0" * 64}):
        r = api.post("consent", data=forged, follow_redirects=False)
        assert r.status_code == 403 and "another site" in r.json()["detail"]
    assert consent_rows(app) == 0


def test_the_form_without_a_session_is_refused(api, app):
    r = api.post("consent", data={"accept_terms": "yes", "accept_privacy": "yes"}, follow_redirects=False)
    assert r.status_code == 401
    assert consent_rows(app) == 0


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/hub/",
        "/hub/../../evil",
        "/hub/%2e%2e/x",
        "/hub\\evil",
        "/other/place",
        "javascript:alert(1)",
        "",
        None,
    ],
)
def test_next_never_leaves_the_platform(next_url):
    assert safe_consent_next(next_url, PREFIX) == "/hub/home"


@pytest.mark.parametrize(
    "next_url", ["/hub/spawn", "/hub/spawn/alice/work", "/user/alice/lab", f"{PREFIX}account"]
)
def test_next_may_be_the_hub_a_user_server_or_this_service(next_url):
    assert safe_consent_next(next_url, PREFIX) == next_url
