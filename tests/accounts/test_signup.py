"""Sign-up for the embedded login, through the HTML form and the JSON API, and the legal documents' pages.

Specification: anyone may sign up (unless sign-up is closed) with a user name, a password (twice on the form), full
name, e-mail, organisation and its location, an optional phone, and an explicit acceptance of the current terms and
privacy statement. An accepted sign-up stores, in one transaction, a pending local account on the default plan and
one consent per document. Every refusal names the field and what to fix, re-shows what was typed (escaped), answers
422/409/403/429/503 and stores nothing. The legal documents are public pages, shown as escaped text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts import legal as legal_module
from polartep_hub.accounts.legal import LegalLibrary
from polartep_hub.accounts.models import Account
from polartep_hub.service.web.pages import THEME_SCRIPT
from tests.helpers.form_errors import field_error
from tests.helpers.service_fakes import without_theme_script
from tests.helpers.signup import (
    CURRENT,
    GOOD,
    MARKUP,
    PASSWORD,
    api_signup,
    configure,
    form_signup,
    stored,
)

# --- the page ---------------------------------------------------------------------------------------------------


def test_the_signup_page_is_public_with_every_field_and_two_unticked_boxes_linking_to_the_documents(api):
    page = api.get("signup")
    assert page.status_code == 200
    for name in ("username", "password", "password_confirm", "full_name", "email", "organisation"):
        assert f'name="{name}"' in page.text
    assert 'name="organisation_location"' in page.text and 'name="phone"' in page.text
    for kind, box in (("terms", "accept_terms"), ("privacy", "accept_privacy")):
        checkbox = re.search(rf'<input [^>]*type="checkbox" id="{box}"[^>]*>', page.text).group(0)
        assert "checked" not in checkbox
        assert f'href="/services/platform/legal/{kind}/{CURRENT[kind]}"' in page.text
        assert f'name="{kind}_version" value="{CURRENT[kind]}"' in page.text
    # No script but the theme script, which the page's CSP allows by its hash.
    assert page.text.count("<script") == 1 and f"<script>{THEME_SCRIPT}</script>" in page.text
    # The user-name rule shown is the one sign-up enforces (accounts.PASSWORD_LOGIN_NAME_RULE), not a copy.
    assert (
        '<div class="form-text" id="username-help">1-64 characters of lower-case letters, digits, &#39;.&#39;, '
        "&#39;_&#39; and &#39;-&#39;, starting with a letter or digit.</div>"
    ) in page.text


# --- accepted sign-ups ------------------------------------------------------------------------------------------


def test_the_form_creates_a_pending_local_account_on_the_default_plan_with_both_consents(api, app):
    response = form_signup(api, phone="+47 123 45 678")
    assert response.status_code == 201, response.text
    assert "awaits approval" in response.text
    with app.state.context.session() as session:
        account = session.scalar(select(Account).where(Account.name == "alice"))
        assert account.approved is False and account.approved_at is None
        assert account.auth_source == "local" and account.plan == "trial" and not account.is_admin
        assert (account.full_name, account.email, account.organisation) == (
            "Alice Liddell",
            "alice@example.org",
            "Polar Institute",
        )
        assert account.organisation_location == "Tromsø, Norway" and account.phone == "+47 123 45 678"
        assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
        consents = {(c.document, c.version) for c in account.consents}
        assert consents == {("terms", CURRENT["terms"]), ("privacy", CURRENT["privacy"])}


def test_the_api_creates_the_same_pending_account_and_needs_no_token(api, app):
    response = api_signup(api)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "alice",
        "approved": False,
        "plan": "trial",
        "consents": [
            {"document": "terms", "version": CURRENT["terms"]},
            {"document": "privacy", "version": CURRENT["privacy"]},
        ],
    }
    assert stored(app) == (1, 2)


def test_the_phone_is_optional(api, app):
    assert api_signup(api, phone=None).status_code == 201
    assert form_signup(api, username="bob", email="bob@example.org", phone="").status_code == 201
    assert stored(app) == (2, 4)


# --- consent ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", [["accept_terms"], ["accept_privacy"], ["accept_terms", "accept_privacy"]]
)
def test_without_either_consent_box_the_form_is_refused_and_nothing_is_stored(api, app, missing):
    response = form_signup(api, **dict.fromkeys(missing))
    assert response.status_code == 422
    for box in missing:
        assert "tick the box" in field_error(response.text, box)
    assert 'value="Alice Liddell"' in response.text  # what was typed is kept
    assert PASSWORD not in response.text  # passwords are never sent back
    assert stored(app) == (0, 0)


@pytest.mark.parametrize("field", ["accept_terms_version", "accept_privacy_version"])
def test_the_api_without_a_consent_is_refused(api, app, field):
    response = api_signup(api, **{field: None})
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert stored(app) == (0, 0)


@pytest.mark.parametrize("version", ["2000-01-01", "no-such-version", ""])
def test_a_consent_to_another_version_than_the_current_one_is_refused(api, app, version):
    response = api_signup(api, accept_terms_version=version)
    assert response.status_code in (409, 422)
    detail = response.json()["detail"]
    assert "accept_terms_version" in detail
    if version:
        assert response.status_code == 409 and CURRENT["terms"] in detail  # says which version to accept
    assert stored(app) == (0, 0)


def _two_versions(tmp_path: Path) -> LegalLibrary:
    for kind in ("terms", "privacy"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "2026-01-01.md").write_text(f"# Old {kind}\n", encoding="utf-8")
        (tmp_path / kind / "2026-12-01.md").write_text(f"# New {kind}\n", encoding="utf-8")
    return LegalLibrary.load(tmp_path)


def test_an_old_version_is_refused_once_a_new_one_is_published(api, app, tmp_path):
    app.state.context.legal = _two_versions(tmp_path)
    response = api_signup(api, accept_terms_version="2026-01-01", accept_privacy_version="2026-12-01")
    assert response.status_code == 409
    assert "2026-12-01" in response.json()["detail"]
    assert stored(app) == (0, 0)
    assert (
        api_signup(api, accept_terms_version="2026-12-01", accept_privacy_version="2026-12-01").status_code
        == 201
    )


def test_documents_updated_while_the_form_was_open_are_shown_again_unticked(api, app, tmp_path):
    app.state.context.legal = _two_versions(tmp_path)
    response = form_signup(api, terms_version="2026-01-01", privacy_version="2026-12-01")
    assert response.status_code == 409
    assert "were updated" in response.text and "2026-12-01" in field_error(response.text, "accept_terms")
    assert 'name="terms_version" value="2026-12-01"' in response.text  # the new version is the one shown now
    for box in ("accept_terms", "accept_privacy"):
        assert "checked" not in re.search(
            rf'<input [^>]*type="checkbox" id="{box}"[^>]*>', response.text
        ).group(0)
    assert 'value="Alice Liddell"' in response.text
    assert stored(app) == (0, 0)


def test_a_failure_while_recording_consents_stores_no_account(api, app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("polartep_hub.accounts.signup.record_consents", broken)
    assert api_signup(api).status_code == 500
    assert stored(app) == (0, 0)
    monkeypatch.setattr("polartep_hub.accounts.signup.record_consents", legal_module.record_consents)
    assert api_signup(api).status_code == 201


# --- bad input --------------------------------------------------------------------------------------------------

BAD_FIELDS = [
    ("email", "alice@", "not a valid e-mail address"),
    ("email", "alice example.org", "not a valid e-mail address"),
    ("email", "", "must not be empty"),
    ("full_name", "A" * 201, "at most 200 characters"),
    ("full_name", "A" * 5000, "at most"),
    ("organisation", "O" * 201, "at most 200 characters"),
    ("organisation_location", "L" * 201, "at most 200 characters"),
    ("email", "a" * 250 + "@example.org", "at most 254 characters"),
    ("phone", "1" * 41, "at most 40 characters"),
    ("phone", "call me maybe", "digits"),
    ("full_name", "Alice\x07Liddell", "control or invisible formatting characters"),
    ("organisation", "Polar\u200bInstitute", "control or invisible formatting characters"),
    ("organisation_location", "Tromsø\nNorway", "control or invisible formatting characters"),
    ("full_name", "   ", "must not be empty"),
    ("username", "Alice Smith", "lower-case letters"),
    ("username", "-alice", "starting with a letter or digit"),
    ("username", "a" * 65, "lower-case letters"),
    ("username", "al<i>ce", "lower-case letters"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_a_bad_field_in_the_api_is_422_naming_it_and_nothing_is_stored(api, app, field, value, message):
    response = api_signup(api, **{field: value})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert field in detail and message in detail
    if len(value) > 3:
        assert value not in detail  # messages never repeat the input
    assert stored(app) == (0, 0)


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_a_bad_field_on_the_form_is_shown_next_to_it_with_the_typed_text_kept(
    api, app, field, value, message
):
    response = form_signup(api, **{field: value})
    assert response.status_code == 422
    assert message in field_error(response.text, field)
    if "\n" not in value and len(value) <= 300:
        assert f'value="{value}"' in response.text.replace("&lt;", "<").replace("&gt;", ">")
    assert stored(app) == (0, 0)


def test_a_missing_field_is_named(api, app):
    response = api_signup(api, organisation=None)
    assert response.status_code == 422 and "organisation" in response.json()["detail"]
    response = form_signup(api, organisation=None)
    assert response.status_code == 422 and "must not be empty" in field_error(response.text, "organisation")
    assert stored(app) == (0, 0)


def test_the_two_passwords_on_the_form_must_match(api, app):
    response = form_signup(api, password_confirm=PASSWORD + "x")
    assert response.status_code == 422
    assert "differ" in field_error(response.text, "password_confirm")
    assert stored(app) == (0, 0)


def test_the_form_shows_every_problem_at_once_in_field_order(api, app):
    response = form_signup(
        api, username="Bad Name", password="short", password_confirm="other", email="a@", accept_privacy=None
    )
    assert response.status_code == 422
    shown = re.findall(r'class="invalid-feedback d-block field-error" id="(\w+)-error"', response.text)
    assert shown == ["username", "password", "password_confirm", "email", "accept_privacy"]
    assert stored(app) == (0, 0)


def test_unknown_api_fields_are_refused(api, app):
    response = api_signup(api, admin=True)
    assert response.status_code == 422 and "admin" in response.json()["detail"]
    assert stored(app) == (0, 0)


def test_markup_in_names_is_stored_as_text_and_escaped_when_the_form_is_shown_again(api, app):
    response = form_signup(api, full_name=MARKUP, organisation=MARKUP, email="not-an-address")
    assert response.status_code == 422
    assert "<script>" not in without_theme_script(response.text) and "<b>" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in response.text

    assert form_signup(api, full_name=MARKUP, organisation=MARKUP).status_code == 201
    with app.state.context.session() as session:
        account = session.scalar(select(Account).where(Account.name == "alice"))
        assert account.full_name == MARKUP and account.organisation == MARKUP  # text, as typed


def test_markup_in_json_stays_json(api):
    assert api_signup(api, full_name=MARKUP).status_code == 201
    listed = api.get("api/v1/signups", token="ada-token")
    assert listed.json()[0]["full_name"] == MARKUP
    assert listed.headers["content-type"] == "application/json"


@pytest.mark.parametrize("variant", ["alice", "Alice", "ALICE", "ａｌｉｃｅ", "Ａｌｉｃｅ", " alice "])
def test_a_user_name_differing_only_in_case_or_unicode_form_is_taken(api, app, variant):
    assert api_signup(api).status_code == 201
    response = api_signup(api, username=variant, email="other@example.org")
    assert response.status_code == 409
    assert "'alice' is taken" in response.json()["detail"] and "choose another" in response.json()["detail"]
    page = form_signup(api, username=variant, email="other@example.org")
    assert page.status_code == 409
    assert "is taken" in field_error(page.text, "username")
    assert stored(app) == (1, 2)


def test_a_name_typed_in_another_form_is_stored_in_its_canonical_form(api, app):
    assert api_signup(api, username="Ａｌｉｃｅ").json()["name"] == "alice"


def test_an_existing_admin_or_hub_made_account_name_is_taken_too(api):
    assert api.post("api/v1/accounts", token="hub-token", json={"name": "carol"}).status_code == 201
    assert api_signup(api, username="CAROL").status_code == 409


# --- anti-abuse -------------------------------------------------------------------------------------------------


def test_closed_signup_refuses_the_page_the_form_and_the_api(api, app):
    configure(app, signup_enabled=False)
    page = api.get("signup")
    assert page.status_code == 403 and "closed" in page.text and 'name="password"' not in page.text
    assert form_signup(api).status_code == 403
    response = api_signup(api)
    assert response.status_code == 403 and "closed" in response.json()["detail"]
    assert stored(app) == (0, 0)


def test_each_address_gets_a_bounded_number_of_signups_per_hour(api, app):
    configure(app, signup_per_hour=2)
    assert api_signup(api, username="u1").status_code == 201
    assert api_signup(api, username="u2").status_code == 201
    response = api_signup(api, username="u3")
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 3600
    assert "too many sign-ups" in response.json()["detail"]
    assert form_signup(api, username="u4").status_code == 429
    assert stored(app) == (2, 4)


def test_the_signup_limit_is_kept_in_the_database_and_holds_for_concurrent_signups(api, app):
    import threading

    from polartep_hub.service.models import RateCounter

    configure(app, signup_per_hour=3)
    answers: list[int] = []
    start = threading.Barrier(8)

    def sign_up(i: int) -> None:
        start.wait()
        answers.append(api_signup(api, username=f"racer{i}", email=f"racer{i}@example.org").status_code)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] * 3 + [429] * 5
    assert stored(app)[0] == 3
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(RateCounter)) == 1


def test_refused_signups_do_not_count_against_the_address(api, app):
    configure(app, signup_per_hour=1)
    for _ in range(3):
        assert api_signup(api, email="broken").status_code == 422
    assert api_signup(api).status_code == 201


def test_no_more_signups_are_taken_while_too_many_await_approval(api, app):
    configure(app, signup_max_pending=2)
    assert api_signup(api, username="u1").status_code == 201
    assert api_signup(api, username="u2").status_code == 201
    response = api_signup(api, username="u3")
    assert response.status_code == 503 and "await approval" in response.json()["detail"]
    assert api.post("api/v1/accounts/u1/approve", token="ada-token").status_code == 200
    assert api_signup(api, username="u3").status_code == 201


# --- legal documents --------------------------------------------------------------------------------------------


def test_the_current_documents_are_public_pages_rendered_as_formatted_text(api):
    for kind in ("terms", "privacy"):
        page = api.get(f"legal/{kind}")
        assert page.status_code == 200
        assert f"Version {CURRENT[kind]} (current)" in page.text
        # The document's "# Title" is the page's heading; its Markdown source is not shown.
        article = page.text.split('<article class="legal-document" id="legal-document">', 1)[1].split(
            "</article>"
        )[0]
        assert article.lstrip().startswith("<h1>Polar TEP ")
        assert "<p>" in article and ("<li>" in article or "<strong>" in article)
        assert "# " not in article and "**" not in article and "<pre" not in page.text
        assert page.text.count("<h1>") == 1


def test_documents_never_bring_markup_of_their_own(api, app, tmp_path):
    for kind in ("terms", "privacy"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "1.md").write_text('# Old\n<script>alert("x")</script>', encoding="utf-8")
        (tmp_path / kind / "2.md").write_text(
            "# New\n<img src=x onerror=alert(1)> **bold** [click](javascript:alert(1)) "
            '<a href="https://evil.example" onclick="x()">a</a>\n\n[fine](https://polar.example/terms)',
            encoding="utf-8",
        )
    app.state.context.legal = LegalLibrary.load(tmp_path)
    current = api.get("legal/terms")
    assert "Version 2 (current)" in current.text
    body = without_theme_script(current.text)
    # Raw HTML in the file is text; Markdown is formatted; a javascript: link is not made a link.
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt; <strong>bold</strong>" in body
    assert not re.search(r"<[^>]*\bonclick", body) and "&lt;a href=" in body  # the tag is text
    assert 'href="javascript' not in body and "[click](javascript:alert(1))" in body
    assert '<a href="https://evil.example"' not in body
    assert '<a href="https://polar.example/terms" rel="noopener noreferrer nofollow">fine</a>' in body
    old = api.get("legal/privacy/1")
    assert old.status_code == 200 and "(superseded)" in old.text
    assert "<script>" not in without_theme_script(old.text) and "&lt;script&gt;" in old.text


@pytest.mark.parametrize("path", ["legal/cookies", "legal/terms/1999-01-01", "legal/terms/<b>x</b>"])
def test_unknown_documents_and_versions_are_404(api, path):
    page = api.get(path)
    assert page.status_code == 404
    assert "<b>" not in page.text


# --- names the hub or a concurrent sign-up already holds ----------------------------------------------------------


class HubWithUsers:
    """JupyterHub's user list as ``HubAPI.user`` sees it; ``down`` makes it fail like an unreachable hub."""

    def __init__(self, *names: str, down: bool = False) -> None:
        self.names = set(names)
        self.down = down

    def user(self, name: str):
        from polartep_hub.service.hub_api import HubApiError

        if self.down:
            raise HubApiError("hub unreachable", status=0)
        return {"name": name} if name in self.names else None


def test_a_name_jupyterhub_already_has_is_taken_even_without_an_account(api, app):
    app.state.context.hub_api = HubWithUsers("alice")
    response = api_signup(api, username="Alice")
    assert response.status_code == 409 and "is taken" in response.json()["detail"]
    assert stored(app) == (0, 0)
    assert api_signup(api, username="bob").status_code == 201


def test_when_jupyterhub_cannot_be_asked_the_signup_is_refused_for_now(api, app):
    app.state.context.hub_api = HubWithUsers(down=True)
    response = api_signup(api)
    assert response.status_code == 503 and "try again" in response.json()["detail"]
    assert stored(app) == (0, 0)


def test_a_concurrent_signup_of_the_same_name_gets_409_and_stores_one_account(api, app, monkeypatch):
    assert api_signup(api).status_code == 201
    # The other sign-up checked before ours committed: its check sees no account, its insert hits the constraint.
    looked_up = []
    monkeypatch.setattr(
        "polartep_hub.accounts.store.get_account", lambda session, name: looked_up.append(name)
    )
    app.state.context.hub_api = HubWithUsers()  # JupyterHub has no such user: only the constraint can refuse
    response = api_signup(api, email="other@example.org")
    assert looked_up == [GOOD["username"]], "the name check before the insert did not run (or ran twice)"
    assert response.status_code == 409 and "is taken" in response.json()["detail"]
    assert stored(app) == (1, 2)


# --- settings -----------------------------------------------------------------------------------------------------


def test_the_registration_settings_are_read_from_the_environment():
    from polartep_hub.service.config import ServiceConfig

    config = ServiceConfig.from_env(
        {
            "POLARTEP_SIGNUP": "0",
            "POLARTEP_SIGNUP_PER_HOUR": "7",
            "POLARTEP_SIGNUP_MAX_PENDING": "0",
            "POLARTEP_PASSWORD_MIN_LENGTH": "12",
            "POLARTEP_LOGIN_ATTEMPTS": "3",
            "POLARTEP_LOGIN_LOCKOUT_SECONDS": "60",
        }
    )
    assert (config.signup_enabled, config.signup_per_hour, config.signup_max_pending) == (False, 7, 0)
    assert (config.password_min_length, config.login_attempts, config.login_lockout_seconds) == (12, 3, 60)
    defaults = ServiceConfig.from_env({})
    assert defaults.signup_enabled and defaults.login_attempts == 5 and defaults.password_min_length == 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POLARTEP_SIGNUP", "maybe"),
        ("POLARTEP_SIGNUP_PER_HOUR", "-1"),
        ("POLARTEP_PASSWORD_MIN_LENGTH", "0"),
        ("POLARTEP_LOGIN_ATTEMPTS", "many"),
        ("POLARTEP_LOGIN_LOCKOUT_SECONDS", "0"),
    ],
)
def test_bad_registration_settings_name_the_variable(variable, value):
    from polartep_hub.service.config import ConfigError, ServiceConfig

    with pytest.raises(ConfigError, match=variable):
        ServiceConfig.from_env({variable: value})
