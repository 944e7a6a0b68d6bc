"""The platform service's HTTP API, through FastAPI's test client, on SQLite and on PostgreSQL.

JupyterHub is replaced at the single identity seam by ``FakeIdentityProvider`` (tokens in ``fakes.TOKENS``); every
response is checked for the security headers by ``ApiClient``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.models import Account
from polartep_hub.service.db import make_engine
from tests.helpers.service_accounts import create, edit_account
from tests.helpers.service_fakes import ApiClient

TRIAL_PROFILES = ["interactive", "small", "medium"]
ALL_PROFILES = ["interactive", "small", "medium", "large", "ml"]


def account(app, name: str) -> Account | None:
    with app.state.context.session() as session:
        return session.scalar(select(Account).where(Account.name == name))


def account_count(app) -> int:
    with app.state.context.session() as session:
        return accounts.count_accounts(session)


# --- health, index, OpenAPI --------------------------------------------------------------------------------------


def test_health_needs_no_auth_and_names_the_catalogue(api, catalogue):
    response = api.get("health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "catalogue": catalogue.fingerprint,
        "version": "0.1.0",
    }


def test_health_is_503_when_the_database_does_not_answer(api, app, tmp_path):
    app.state.context.engine = make_engine(f"sqlite:///{tmp_path}/missing-dir/x.sqlite")
    response = api.get("health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_prefix_root_says_where_things_are(api):
    body = api.get("").json()
    assert body["openapi"] == "/services/platform/api/v1/openapi.json"
    assert body["health"] == "/services/platform/health"


def test_openapi_document_is_served_under_the_prefix(api):
    response = api.get("api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/services/platform/health",
        "/services/platform/metrics",
        "/services/platform/api/v1/catalogue",
        "/services/platform/api/v1/me",
        "/services/platform/api/v1/users/{name}/entitlements",
        "/services/platform/api/v1/auth/password",
        "/services/platform/api/v1/accounts",
        "/services/platform/api/v1/accounts/{name}",
    ]:
        assert path in paths


def test_docs_page_gets_a_nonce_csp_of_its_own(api):
    response = api.get("api/v1/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}"' in response.text
    assert "unsafe-inline" not in csp.split("style-src")[0]  # scripts run only with the nonce
    assert "/services/platform/api/v1/openapi.json" in response.text


def test_paths_outside_the_prefix_are_404_json(client):
    response = ApiClient(client, prefix="/").get("health")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --- authentication ----------------------------------------------------------------------------------------------


def test_no_credentials_is_401_with_a_clear_detail(api):
    response = api.get("api/v1/me")
    assert response.status_code == 401
    assert "Authorization: token" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "token"


def test_unknown_token_is_401(api):
    response = api.get("api/v1/me", token="forged")
    assert response.status_code == 401
    assert "not valid" in response.json()["detail"]


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cHc=", "token", "token a b", "alice-token"])
def test_malformed_authorization_header_is_401(api, header):
    response = api.get("api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert "malformed Authorization header" in response.json()["detail"]


def test_bearer_and_token_schemes_both_work(api):
    assert api.get("api/v1/me", headers={"Authorization": "Bearer alice-token"}).status_code == 200
    assert api.get("api/v1/me", headers={"Authorization": "token alice-token"}).status_code == 200


def test_token_without_the_access_scope_is_403(api, app):
    response = api.get("api/v1/me", token="other-service-token")
    assert response.status_code == 403
    assert "access:services!service=platform" in response.json()["detail"]
    assert account(app, "carol") is None


def test_unfiltered_access_services_scope_is_enough(api):
    assert api.get("api/v1/me", token="all-services-token").status_code == 200


def test_hub_down_is_503_not_401(api, fake_hub):
    fake_hub.down = True
    response = api.get("api/v1/me", token="alice-token")
    assert response.status_code == 503
    assert "JupyterHub" in response.json()["detail"]


def test_tokens_never_reach_the_log(api, caplog):
    caplog.set_level(logging.DEBUG)
    api.get("api/v1/me", token="alice-token")
    api.get("api/v1/me", token="forged")
    assert "alice-token" not in caplog.text
    assert "forged" not in caplog.text


# --- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_need_read_metrics_or_an_admin(api):
    assert api.get("metrics").status_code == 401
    assert api.get("metrics", token="alice-token").status_code == 403
    assert api.get("metrics", token="prometheus-token").status_code == 200
    assert api.get("metrics", token="ada-token").status_code == 200


def test_metrics_count_requests_by_route_template_and_accounts(api):
    api.get("api/v1/users/alice/entitlements", token="alice-token")
    api.get("api/v1/users/bob/entitlements", token="bob-token")
    api.get("api/v1/users/alice/entitlements", token="bob-token")  # 403

    body = api.get("metrics", token="prometheus-token").text

    template = "/services/platform/api/v1/users/{name}/entitlements"
    assert f'polartep_platform_requests_total{{method="GET",route="{template}",status="200"}} 2.0' in body
    assert f'polartep_platform_requests_total{{method="GET",route="{template}",status="403"}} 1.0' in body
    assert "/users/alice/" not in body  # raw paths never become labels
    assert f'polartep_platform_request_duration_seconds_count{{method="GET",route="{template}"}} 3.0' in body
    assert "polartep_platform_accounts 2.0" in body


# --- catalogue and me --------------------------------------------------------------------------------------------


def test_catalogue_for_any_service_user(api, catalogue):
    response = api.get("api/v1/catalogue", token="alice-token")
    assert response.status_code == 200
    assert response.json() == catalogue.as_dict()


def test_catalogue_needs_the_access_scope(api):
    assert api.get("api/v1/catalogue", token="prometheus-token").status_code == 403


def test_me_creates_the_account_on_the_default_plan(api, app):
    before = datetime.now(UTC)
    response = api.get("api/v1/me", token="alice-token")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "alice"
    assert body["admin"] is False
    assert body["plan"] == "trial"
    assert body["profiles"] == TRIAL_PROFILES
    started = datetime.fromisoformat(body["plan_started_at"])
    assert started.tzinfo is not None
    assert before - timedelta(seconds=5) <= started <= datetime.now(UTC)

    stored = account(app, "alice")
    assert stored.plan == "trial" and stored.plan_started_at == started

    again = api.get("api/v1/me", token="alice-token").json()
    assert again["plan_started_at"] == body["plan_started_at"]
    assert account_count(app) == 1


def test_me_for_a_hub_admin_lists_every_profile(api):
    body = api.get("api/v1/me", token="ada-token").json()
    assert body["admin"] is True
    assert body["profiles"] == ALL_PROFILES


def test_me_is_for_users_not_services(api):
    response = api.get("api/v1/me", token="hub-token")
    assert response.status_code == 403
    assert "only users" in response.json()["detail"]


def test_me_refuses_names_outside_the_account_rule(api, app):
    response = api.get("api/v1/me", token="odd-name-token")
    assert response.status_code == 400
    assert "lower-case letters" in response.json()["detail"]
    assert account_count(app) == 0


# --- entitlements ------------------------------------------------------------------------------------------------


def core(entitlements: dict) -> dict:
    """Who, which plan, which profiles (the rest of the answer is tests/service/test_subscriptions.py's)."""
    return {key: entitlements[key] for key in ("name", "plan", "profiles")}


def test_user_reads_own_entitlements(api):
    response = api.get("api/v1/users/alice/entitlements", token="alice-token")
    assert response.status_code == 200
    assert core(response.json()) == {"name": "alice", "plan": "trial", "profiles": TRIAL_PROFILES}


def test_user_may_not_read_someone_elses_entitlements(api, app):
    response = api.get("api/v1/users/bob/entitlements", token="alice-token")
    assert response.status_code == 403
    assert account(app, "bob") is None


def test_hub_reads_entitlements_of_a_user_never_seen_before(api, app):
    response = api.get("api/v1/users/newcomer/entitlements", token="hub-token")
    assert core(response.json()) == {"name": "newcomer", "plan": "trial", "profiles": TRIAL_PROFILES}
    assert account(app, "newcomer").plan == "trial"


def test_hub_vouches_for_admins_with_the_admin_parameter(api):
    body = api.get("api/v1/users/root/entitlements", token="hub-token", params={"admin": "true"}).json()
    assert body["profiles"] == ALL_PROFILES


def test_only_the_hub_can_vouch_for_admin_status(api):
    body = api.get("api/v1/users/alice/entitlements", token="alice-token", params={"admin": "true"}).json()
    assert body["profiles"] == TRIAL_PROFILES


def test_admin_user_reads_anyones_entitlements(api):
    body = api.get("api/v1/users/bob/entitlements", token="ada-token").json()
    assert core(body) == {"name": "bob", "plan": "trial", "profiles": TRIAL_PROFILES}


def test_platform_admin_accounts_get_every_profile(api, app):
    create(api, "boss", admin=True)
    body = api.get("api/v1/users/boss/entitlements", token="hub-token").json()
    assert body["profiles"] == ALL_PROFILES


def test_profiles_follow_the_plan_in_catalogue_order(api):
    create(api, "carl", plan="large")
    body = api.get("api/v1/users/carl/entitlements", token="hub-token").json()
    assert core(body) == {"name": "carl", "plan": "large", "profiles": ALL_PROFILES}


def test_a_plan_dropped_from_the_catalogue_allows_nothing(api, app):
    api.get("api/v1/me", token="alice-token")
    edit_account(app, "alice", plan="retired")
    body = api.get("api/v1/users/alice/entitlements", token="hub-token").json()
    assert core(body) == {"name": "alice", "plan": "retired", "profiles": []}


def test_entitlements_refuse_invalid_names(api, app):
    response = api.get("api/v1/users/Bad.Name/entitlements", token="hub-token")
    assert response.status_code == 400
    assert "invalid account name" in response.json()["detail"]
    assert account_count(app) == 0


# --- password login ----------------------------------------------------------------------------------------------


def login(api: ApiClient, username: str, password: str, token: str = "hub-token"):
    return api.post("api/v1/auth/password", token=token, json={"username": username, "password": password})


def test_password_login_with_the_right_password(api):
    create(api, "erin", password="correct horse")
    response = login(api, "erin", "correct horse")
    assert response.status_code == 200
    assert response.json() == {"name": "erin", "admin": False}


def test_password_login_lower_cases_the_user_name(api):
    create(api, "erin", password="correct horse", admin=True)
    assert login(api, "ERIN", "correct horse").json() == {"name": "erin", "admin": True}


def test_wrong_password_unknown_user_unapproved_and_passwordless_all_look_the_same(api, app):
    create(api, "erin", password="correct horse")
    create(api, "frank", password="correct horse")
    edit_account(app, "frank", approved=False)
    create(api, "gina")  # no password: logs in through OIDC, say

    responses = [
        login(api, "erin", "wrong horse"),
        login(api, "nobody", "correct horse"),
        login(
            api, "frank", "wrong horse"
        ),  # unapproved: only the right password learns that (test_password_rules)
        login(api, "gina", "anything at all"),
    ]
    for response in responses:
        assert response.status_code == 401
        assert response.json() == {"detail": "invalid username or password"}
    assert account(app, "nobody") is None


def test_password_login_is_hub_only(api):
    create(api, "erin", password="correct horse")
    # An unknown token is no caller (401); a user, an admin or another service is a caller without the right (403).
    expected = {"erin-token": 401, "alice-token": 403, "ada-token": 403, "prometheus-token": 403}
    for token, status in expected.items():
        response = login(api, "erin", "correct horse", token=token)
        assert response.status_code == status, (token, response.text)
    assert login(api, "erin", "correct horse", token="ada-token").json()["detail"].startswith("only the hub")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "erin"}, "password"),
        ({"password": "pw"}, "username"),
        ({"username": "erin smith", "password": "pw"}, "username"),
        ({"username": "", "password": "pw"}, "username"),
        ({"username": "x" * 65, "password": "pw"}, "username"),
        ({"username": "erin", "password": "p" * 1025}, "password"),
        ({"username": "erin", "password": ""}, "password"),
        ({"username": "erin", "password": 12345678}, "password"),
        ({"username": "erin", "password": "pw", "remember": True}, "remember"),
    ],
)
def test_bad_login_bodies_are_422_naming_the_field_without_echoing_it(api, app, body, field):
    response = login_raw = api.post("api/v1/auth/password", token="hub-token", json=body)
    assert login_raw.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and field in detail
    for value in body.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in detail  # never echo input: it may be a password
    assert account_count(app) == 0


def test_login_body_that_is_not_json_is_422(api):
    response = api.post(
        "api/v1/auth/password",
        token="hub-token",
        content=b'{"username": "erin", ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


def test_login_body_that_is_not_utf8_is_400(api):
    response = api.post(
        "api/v1/auth/password",
        token="hub-token",
        content=b"\xff\xfe{",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "There was an error parsing the body"}


def test_login_upgrades_a_hash_made_with_old_parameters(api, app):
    from argon2 import PasswordHasher

    old_hash = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1).hash("correct horse")
    create(api, "erin")
    edit_account(app, "erin", password_hash=old_hash)

    assert login(api, "erin", "correct horse").status_code == 200

    new_hash = account(app, "erin").password_hash
    assert new_hash != old_hash and new_hash.startswith("$argon2id$")
    assert login(api, "erin", "correct horse").status_code == 200


# --- accounts ----------------------------------------------------------------------------------------------------


def test_admin_creates_an_account(api, app):
    response = api.post(
        "api/v1/accounts", token="ada-token", json={"name": "hank", "password": "a long password"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "hank" and body["plan"] == "trial"
    assert body["admin"] is False and body["approved"] is True
    assert "password" not in response.text and "hash" not in response.text
    assert account(app, "hank").password_hash.startswith("$argon2id$")
    assert login(api, "hank", "a long password").status_code == 200


def test_hub_creates_an_account_with_a_plan(api):
    assert create(api, "ivy", plan="standard")["plan"] == "standard"


def test_duplicate_account_is_409_and_leaves_the_original(api, app):
    create(api, "hank", password="first password")
    response = api.post(
        "api/v1/accounts",
        token="ada-token",
        json={"name": "hank", "password": "second password", "plan": "large"},
    )
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert account(app, "hank").plan == "trial"
    assert login(api, "hank", "first password").status_code == 200


def test_unknown_plan_is_400_naming_the_known_plans_and_stores_nothing(api, app):
    response = api.post("api/v1/accounts", token="ada-token", json={"name": "hank", "plan": "platinum"})
    assert response.status_code == 400
    assert response.json()["detail"] == "unknown plan 'platinum'; known plans: trial, standard, large"
    assert account_count(app) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Hank"},
        {"name": "hank", "password": "short"},
        {"name": "hank", "admin": "maybe"},
        {"name": "hank", "is_admin": True},
    ],
)
def test_bad_account_bodies_are_422_and_store_nothing(api, app, body):
    response = api.post("api/v1/accounts", token="ada-token", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid request: ")
    assert account_count(app) == 0


def test_only_admins_and_the_hub_create_accounts(api, app):
    response = api.post("api/v1/accounts", token="alice-token", json={"name": "hank"})
    assert response.status_code == 403
    assert response.json()["detail"] == "only administrators may do this"
    assert api.post("api/v1/accounts", json={"name": "hank"}).status_code == 401
    assert account_count(app) == 0


def test_admin_changes_a_plan(api, app):
    created = create(api, "jo")
    response = api.patch("api/v1/accounts/jo", token="ada-token", json={"plan": "standard"})
    assert response.status_code == 200
    body = response.json()
    assert body["plan"] == "standard"
    assert body["plan_started_at"] > created["plan_started_at"]
    assert api.get("api/v1/users/jo/entitlements", token="hub-token").json()["profiles"] == [
        "interactive",
        "small",
        "medium",
        "large",
    ]


def test_plan_change_to_an_unknown_plan_is_400_and_changes_nothing(api, app):
    create(api, "jo")
    response = api.patch("api/v1/accounts/jo", token="ada-token", json={"plan": "platinum"})
    assert response.status_code == 400
    assert "known plans: trial, standard, large" in response.json()["detail"]
    assert account(app, "jo").plan == "trial"


def test_plan_change_of_a_missing_account_is_404(api):
    response = api.patch("api/v1/accounts/nobody", token="ada-token", json={"plan": "standard"})
    assert response.status_code == 404


def test_plan_change_is_for_admins(api, app):
    create(api, "jo")
    assert api.patch("api/v1/accounts/jo", token="alice-token", json={"plan": "large"}).status_code == 403
    assert api.patch("api/v1/accounts/jo", token="ada-token", json={"admin": True}).status_code == 422
    assert account(app, "jo").plan == "trial"


# --- errors ------------------------------------------------------------------------------------------------------


def test_an_internal_error_is_a_plain_500_without_traceback(api, app):
    with app.state.context.engine.begin() as connection:
        connection.execute(
            text(
                "DROP TABLE accounts CASCADE"
                if connection.dialect.name == "postgresql"
                else "DROP TABLE accounts"
            )
        )
    response = api.get("api/v1/me", token="alice-token")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    for leak in ("Traceback", "accounts", "sqlalchemy", "File "):
        assert leak not in response.text


def test_oversized_bodies_are_413(api, app):
    response = api.post(
        "api/v1/auth/password", token="hub-token", json={"username": "erin", "password": "p" * 100_000}
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_chunked_oversized_bodies_are_413(api):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = api.post(
        "api/v1/auth/password",
        token="hub-token",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
