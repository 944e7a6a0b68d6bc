"""Browser login to the platform service through the hub's OAuth, with a session cookie for reading pages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from polartep_hub.service.web.browser_login import safe_next_url, session_cookie_name
from tests.helpers.service_fakes import PREFIX
from tests.helpers.service_login import finish_login, start_login

STATE_COOKIE = "polartep-platform-oauth-state"
SESSION_COOKIE = "polartep-platform-session"


@pytest.fixture
def database_url(sqlite_database_url):
    """Logins do not depend on the database kind: SQLite only."""
    return sqlite_database_url


def test_login_redirects_to_the_hub_with_state_and_pkce(api, fake_hub):
    response = api.get("login", follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/hub/api/oauth2/authorize?")
    assert parse_qs(urlsplit(location).query)["code_challenge"] == [fake_hub.last_challenge]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{STATE_COOKIE}=")
    assert "HttpOnly" in cookie and f"Path={PREFIX}" in cookie and "SameSite=lax" in cookie


def test_a_completed_login_sets_a_session_cookie_that_reads_pages(api, fake_hub):
    state = start_login(api, next_url=f"{PREFIX}api/v1/me")
    response = finish_login(api, fake_hub, state)
    assert response.status_code == 302
    assert response.headers["location"] == f"{PREFIX}api/v1/me"
    assert api.client.cookies.get(SESSION_COOKIE)
    assert STATE_COOKIE not in api.client.cookies

    me = api.get("api/v1/me")
    assert me.status_code == 200
    assert me.json()["name"] == "alice"


def test_the_session_cookie_does_not_authorise_state_changes(api, fake_hub):
    finish_login(api, fake_hub, start_login(api), token="ada-token")
    assert api.get("api/v1/me").json()["name"] == "ada"
    response = api.post("api/v1/accounts", json={"name": "mallory"})
    assert response.status_code == 401


def test_a_callback_with_another_state_is_refused(api, fake_hub):
    start_login(api)
    response = finish_login(api, fake_hub, "a-state-from-elsewhere")
    assert response.status_code == 403
    assert "state does not match" in response.json()["detail"]
    assert SESSION_COOKIE not in api.client.cookies


def test_a_callback_without_the_state_cookie_is_refused(api, fake_hub):
    state = start_login(api)
    api.client.cookies.clear()
    assert finish_login(api, fake_hub, state).status_code == 403


def test_a_refused_code_is_a_502_with_a_message(api, fake_hub):
    state = start_login(api)
    response = api.get(
        "oauth_callback", params={"code": "never-granted", "state": state}, follow_redirects=False
    )
    assert response.status_code == 502
    assert "try again" in response.json()["detail"]


def test_hub_errors_in_the_callback_are_400(api):
    response = api.get("oauth_callback", params={"error": "access_denied"})
    assert response.status_code == 400
    assert "access_denied" in response.json()["detail"]


def test_a_tampered_session_cookie_is_ignored(api, app):
    api.client.cookies.set(session_cookie_name(app.state.context), "alice-token", path=PREFIX)
    assert api.get("api/v1/me").status_code == 401


def test_logout_forgets_the_session(api, fake_hub):
    finish_login(api, fake_hub, start_login(api))
    assert api.get("logout").status_code == 200
    assert api.get("api/v1/me").status_code == 401


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example/",
        "https://evil.example/services/platform/",
        f"{PREFIX}..//evil",
        f"{PREFIX}../../hub/admin",
        f"{PREFIX}%2e%2e/hub",
        f"{PREFIX}\r\nSet-Cookie: x=y",
        "/services/platform-evil/",
        "/hub/home",
        "",
        None,
    ],
)
def test_next_never_leaves_the_service_prefix(next_url):
    assert safe_next_url(next_url, PREFIX) == PREFIX


@pytest.mark.parametrize("next_url", [f"{PREFIX}api/v1/me", f"{PREFIX}api/v1/docs?x=1", PREFIX])
def test_next_keeps_paths_under_the_prefix(next_url):
    assert safe_next_url(next_url, PREFIX) == next_url


def test_an_open_redirect_through_login_lands_on_the_prefix(api, fake_hub):
    response = finish_login(api, fake_hub, start_login(api, next_url="//evil.example/"))
    assert response.headers["location"] == PREFIX


@pytest.mark.parametrize(
    ("public_url", "forwarded_proto", "secure"),
    [
        ("https://tep.example.org", "https,http", True),  # behind TLS, CHP appends its own scheme
        ("https://tep.example.org", None, True),
        ("http://127.0.0.1:8000", "https", False),  # a client's header does not make it Secure
        ("http://127.0.0.1:8000", None, False),
    ],
)
def test_the_secure_flag_comes_from_the_configured_public_url(api, app, public_url, forwarded_proto, secure):
    import dataclasses

    context = app.state.context
    context.config = dataclasses.replace(context.config, public_url=public_url)
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    response = api.get("login", headers=headers, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert ("; secure" in cookie.lower()) is secure
