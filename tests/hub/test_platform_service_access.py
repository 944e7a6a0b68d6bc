"""The platform service is reachable through the proxy with a user's token, and refused without one."""

from __future__ import annotations


def test_health_is_public_and_reports_the_database(platform):
    r = platform.api("GET", "/services/platform/health")
    assert r.status_code == 200
    assert r.json()["database"] == "ok"


def test_a_user_token_reaches_the_api(platform, new_user):
    user, token = new_user(plan="standard")
    r = platform.api("GET", "/services/platform/api/v1/me", token)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == user and r.json()["plan"] == "standard"


def test_no_token_or_a_bad_token_is_refused(platform):
    assert platform.api("GET", "/services/platform/api/v1/me").status_code == 401
    assert platform.api("GET", "/services/platform/api/v1/me", "not-a-token").status_code == 401


def test_a_user_cannot_act_as_the_hub(platform, new_user):
    user, token = new_user()
    r = platform.api(
        "POST", "/services/platform/api/v1/auth/password", token, json={"username": "admin", "password": "x"}
    )
    assert r.status_code == 403


def test_the_openapi_document_is_served(platform):
    r = platform.api("GET", "/services/platform/api/v1/openapi.json")
    assert r.status_code == 200
    assert "/services/platform/api/v1/me" in r.json()["paths"] or "/api/v1/me" in str(r.json()["paths"])


def test_service_metrics_need_the_metrics_scope_and_hub_metrics_stay_on(platform, new_user):
    user, token = new_user()
    assert platform.api("GET", "/services/platform/metrics", token).status_code == 403
    r = platform.api("GET", "/services/platform/metrics", platform.admin_token)
    assert r.status_code == 200 and "# TYPE" in r.text
    r = platform.api("GET", "/hub/metrics", platform.admin_token)
    assert r.status_code == 200 and "jupyterhub_" in r.text
