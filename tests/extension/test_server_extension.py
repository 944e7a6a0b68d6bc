"""The server extension in a real user server (local mode): what ``/user/<name>/polartep/api/`` answers.

Specification: with the user's token, ``polartep/api/me`` answers exactly the service's entitlements for that user
(plan, its display name, start and end, profiles, subscriptions) plus the server's own profile; every other path
under ``polartep/api/``, with any method, answers 404 naming the routes; ``me`` takes only GET (405); a request
without credentials, or with another user's token, is refused by the single-user server with 403 before the
extension runs.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.hub

SERVICE = "/services/platform/api/v1"
NOT_LISTED = (
    "is not a route of the Polar TEP extension (routes: me, processors, processors/draft, processors/validate, "
    "usage, processors/list, processors/<id>/form, processors/<id>/runs, runs/<run>, runs/<run>/log, runs/<run>/cancel, "
    "processors/<id>/versions, datasets, "
    "datasets/<name>/<name>, datasets/<name>/<name>/grants/<name>, dashboards, apps)"
)


@pytest.fixture(scope="module")
def running_user(platform):
    """A Trial user with a running ``small`` server, shared by this module's tests: ``(name, token)``."""
    name = "extuser"
    token = platform.create_user(name, plan="trial")
    platform.spawn(name, token, {"profile": "small"})
    yield name, token
    platform.stop_server(name)


def test_me_answers_the_users_plan_profile_and_plan_period(platform, running_user):
    name, token = running_user
    r = platform.api("GET", f"/user/{name}/polartep/api/me", token)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    entitlements = platform.api("GET", f"{SERVICE}/users/{name}/entitlements", token).json()
    assert entitlements["plan_ends_at"] is not None, "a Trial has an end"
    assert r.json() == {
        "name": name,
        "plan": "trial",
        "plan_display_name": "Trial",
        "plan_started_at": entitlements["plan_started_at"],
        "plan_ends_at": entitlements["plan_ends_at"],
        "plan_expired": False,
        "profile": "small",
        "profiles": ["interactive", "small", "medium"],
        "subscriptions": [],
        "message": None,
    }


def test_usage_answers_this_months_cpu_hours_of_the_owner(platform, running_user):
    name, token = running_user
    r = platform.api("GET", f"/user/{name}/polartep/api/usage", token)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    service = platform.api("GET", f"{SERVICE}/users/{name}/usage", token).json()
    assert (body["plan"], body["allowance"], body["renews_at"]) == ("trial", 500, service["renews_at"])
    assert body["used"] == pytest.approx(service["used"], abs=0.05)
    assert body["left"] == pytest.approx(500 - body["used"])
    assert [d["day"] for d in body["cpu_hours_by_day"]] == [d["day"] for d in service["cpu_hours_by_day"]]
    assert (body["top_ups"], body["notifications"]) == ([], [])
    assert [(s["storage_class"], s["quota_bytes"]) for s in body["storage"]] == [
        ("ssd", 10**11),
        ("hdd", 5 * 10**11),
        ("object", 10**12),
    ]
    assert "intervals" not in body
    assert platform.api("POST", f"/user/{name}/polartep/api/usage", token).status_code == 405


def test_a_plan_without_duration_has_no_end(platform, new_user):
    name, token = new_user(plan="standard")
    platform.spawn(name, token, {"profile": "interactive"})
    try:
        r = platform.api("GET", f"/user/{name}/polartep/api/me", token)
        assert r.status_code == 200, r.text
        me = r.json()
        assert (me["plan"], me["plan_display_name"], me["plan_ends_at"], me["profile"]) == (
            "standard",
            "Standard",
            None,
            "interactive",
        )
    finally:
        platform.stop_server(name)


@pytest.mark.parametrize(
    "path",
    [
        "accounts",
        "entitlements",
        "me/consents",
        "service/api/v1/accounts",
        "api/v1/accounts",
        "..%2F..%2Fhub%2Fapi%2Fusers",
        "processors/Echo/form",
        "processors/echo%2F..%2F..%2Faccounts/form",
        "runs/not-a-run",
        "dashboards/..%2F..%2Faccounts/shares",
        "dashboards/0123456789/versions",
        "dashboards/0123456789/shares/users/..%2F..%2Fx",
        "apps/0123456789",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_paths_off_the_allow_list_answer_404(platform, running_user, path, method):
    name, token = running_user
    r = platform.api(method, f"/user/{name}/polartep/api/{path}", token)
    assert r.status_code == 404, r.text
    assert r.json()["message"].endswith(NOT_LISTED)


def test_me_takes_only_get(platform, running_user):
    name, token = running_user
    assert platform.api("POST", f"/user/{name}/polartep/api/me", token).status_code == 405
    assert platform.api("DELETE", f"/user/{name}/polartep/api/me", token).status_code == 405


def test_a_request_without_the_users_token_is_refused(platform, running_user, new_user):
    name, _ = running_user
    _, other_token = new_user()
    no_credentials = platform.api("GET", f"/user/{name}/polartep/api/me", follow_redirects=False)
    assert no_credentials.status_code == 403
    other_user = platform.api("GET", f"/user/{name}/polartep/api/me", other_token, follow_redirects=False)
    assert other_user.status_code == 403
    assert "plan" not in other_user.text


def test_the_run_form_routes_pass_on_the_services_form_run_and_refusals(platform, running_user):
    from pathlib import Path

    from tests.harness import wait_for
    from tests.helpers.processors import create_processor, echo_notebook

    name, token = running_user
    create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        "ext-echo",
        name,
        echo_notebook(),
    )
    ext = f"/user/{name}/polartep/api"
    listed = platform.api("GET", f"{ext}/processors/list", token).json()["processors"]
    assert "ext-echo" in [p["id"] for p in listed]
    form = platform.api("GET", f"{ext}/processors/ext-echo/form?version=1.0.0", token)
    assert form.json() == platform.api("GET", f"{SERVICE}/processors/ext-echo/form", token).json()

    refused = platform.api(
        "POST", f"{ext}/processors/ext-echo/runs", token, json={"inputs": {"days": 0, "smooth": "yes"}}
    )
    assert refused.status_code == 400
    assert refused.json()["problems"] == {"days": "must be at least 1", "smooth": "must be true or false"}
    bad_body = platform.api(
        "POST", f"{ext}/processors/ext-echo/runs", token, json={"inputs": [], "version": None}
    )
    assert bad_body.status_code == 400
    assert bad_body.json() == {
        "message": 'send a JSON object {"inputs": {...}, "version": "<version>" or null}'
    }

    started = platform.api(
        "POST", f"{ext}/processors/ext-echo/runs", token, json={"inputs": {"days": 3}, "version": "1.0.0"}
    )
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["status"], run["inputs"]["days"], run["folder"]) == (
        "accepted",
        3,
        f"processor-runs/{run['id']}",
    )

    def ended():
        got = platform.api("GET", f"{ext}/runs/{run['id']}", token).json()
        return got if got["status"] in ("successful", "failed") else None

    assert wait_for(ended, 240, interval=0.5, what="the run")["status"] == "successful"
    log = platform.api("GET", f"{ext}/runs/{run['id']}/log", token).json()
    assert set(log) == {"log"} and isinstance(log["log"], str)


def test_publish_as_app_sends_a_folders_files_within_the_limits(platform, running_user):
    """``POST polartep/api/apps``: bad requests are refused before the service is asked; a folder over the file limit
    is 413 with nothing published; a folder's files, below it at their relative paths (not ``__pycache__``), become a
    web app of the owner."""
    name, token = running_user
    contents = f"/user/{name}/api/contents"
    route = f"/user/{name}/polartep/api/apps"

    def put(path: str, body: dict) -> None:
        r = platform.api("PUT", f"{contents}/{path}", token, json=body)
        assert r.status_code in (200, 201), r.text

    put("webapp", {"type": "directory"})
    put(
        "webapp/app.py",
        {"type": "file", "format": "text", "content": "async def app(scope, receive, send): pass\n"},
    )
    # Hidden names are not served by the contents API at all; the byte-code cache is skipped by the extension.
    put("webapp/__pycache__", {"type": "directory"})
    put("webapp/__pycache__/app.cpython-311.pyc", {"type": "file", "format": "text", "content": "cache"})
    put("webapp/static", {"type": "directory"})
    put("webapp/static/style.css", {"type": "file", "format": "text", "content": "body {}"})
    put("many", {"type": "directory"})
    for index in range(21):
        put(f"many/f{index:02}.py", {"type": "file", "format": "text", "content": "x = 1\n"})

    r = platform.api("POST", route, token, json={"path": "webapp", "kind": "voila", "title": "t"})
    assert (r.status_code, r.json()["message"]) == (400, '"kind" must be one of panel, web')
    r = platform.api("POST", route, token, json={"path": "webapp", "kind": "web", "title": "t"})
    assert (r.status_code, r.json()["message"]) == (
        400,
        "send \"entry\": which file of 'webapp' runs the app",
    )
    r = platform.api(
        "POST",
        route,
        token,
        json={"path": "webapp", "kind": "panel", "runner": "asgi", "entry": "app.py", "title": "t"},
    )
    assert (r.status_code, r.json()["message"]) == (
        400,
        '"runner" is for web apps only: one of asgi, wsgi, static',
    )
    r = platform.api(
        "POST", route, token, json={"path": "nothere", "kind": "web", "entry": "a:b", "title": "t"}
    )
    assert r.status_code == 404
    r = platform.api(
        "POST", route, token, json={"path": "many", "kind": "web", "entry": "f00:app", "title": "t"}
    )
    assert (r.status_code, r.json()["message"]) == (
        413,
        "'many' holds more than 20 files; an app has at most that many",
    )
    assert platform.api("GET", f"{SERVICE}/dashboards", token).json() == {"dashboards": []}

    r = platform.api(
        "POST", route, token, json={"path": "webapp", "kind": "web", "entry": "app:app", "title": "Web app"}
    )
    assert r.status_code == 201, r.text
    app = r.json()
    try:
        assert (app["kind"], app["title"]) == ("web", "Web app")
        r = platform.api("GET", f"{SERVICE}/dashboards/{app['id']}/versions/{app['version']}/files", token)
        assert [f["path"] for f in r.json()["files"]] == ["app.py", "static/style.css"]
    finally:
        assert platform.api("DELETE", f"{SERVICE}/dashboards/{app['id']}", token).status_code == 204
