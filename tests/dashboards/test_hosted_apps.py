"""Hosted apps end to end on a real hub (local mode): a Panel app and a plain web app (ASGI, static site) on a
dashboard server ``dash-<id>``, behind the same login and sharing as Voila dashboards.

The owner publishes an app's files through the platform service's API; the platform's runner for its kind serves
it on a Unix socket behind jupyter-server-proxy's standalone proxy; the owner and the users it is shared with reach
it, others get 403 and nothing of it; nothing of Jupyter is there; bad file names and entry points are refused
with 400 and nothing is stored; an app that raises at import fails its start and tells the viewer so.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.harness import wait_for
from tests.helpers.dashboards import (
    APP_MARKER,
    ASGI_APP,
    PANEL_APP,
    app_files,
    app_owner,
    open_page,
    publish_app,
    share,
)

pytestmark = pytest.mark.timeout(600)

API = "/services/platform/api/v1"


@pytest.fixture(scope="module")
def owner(platform):
    name = "appowner"
    return name, app_owner(platform, name)


@pytest.fixture(scope="module")
def panel_app(platform, owner):
    name, token = owner
    r = publish_app(platform, token, "panel", "app.py", app_files({"app.py": PANEL_APP}))
    assert r.status_code == 201, r.text
    app = r.json()
    platform.wait_ready(name, app["server"], timeout=180)
    return app


@pytest.fixture(scope="module")
def web_app(platform, owner):
    name, token = owner
    r = publish_app(
        platform,
        token,
        "web",
        "appsite.server:app",
        app_files({"appsite/server.py": ASGI_APP, "appsite/__init__.py": ""}),
    )
    assert r.status_code == 201, r.text
    app = r.json()
    platform.wait_ready(name, app["server"], timeout=180)
    return app


def test_the_owner_opens_the_panel_app_and_a_shared_user_too_but_not_a_stranger(
    platform, owner, panel_app, new_user
):
    name, token = owner
    assert panel_app["kind"] == "panel"
    assert panel_app["url"] == f"/user/{name}/{panel_app['server']}/"
    r = open_page(platform, name, panel_app["server"], token, follow_redirects=True)
    assert r.status_code == 200, (r.status_code, r.text[:500], platform.log_tail())
    # Computed by the app's Python on the server (the slider's value 6 times 7), in Panel's page.
    assert f"{APP_MARKER}-42" in r.text
    assert "Sea ice app" in r.text

    viewer, viewer_token = new_user()
    stranger, stranger_token = new_user()
    r = open_page(platform, name, panel_app["server"], stranger_token, follow_redirects=True)
    assert r.status_code == 403
    assert APP_MARKER not in r.text
    assert share(platform, token, panel_app["id"], user=viewer).status_code == 201
    r = open_page(platform, name, panel_app["server"], viewer_token, follow_redirects=True)
    assert r.status_code == 200
    assert f"{APP_MARKER}-42" in r.text
    # The viewer's list shows it as a shared Panel app, and the gallery names its kind.
    r = platform.api("GET", f"{API}/dashboards", viewer_token, params={"include": "shared"})
    assert [(d["id"], d["kind"], d["access"]) for d in r.json()["dashboards"]] == [
        (panel_app["id"], "panel", "shared")
    ]
    r = platform.api("GET", "/services/platform/dashboards", viewer_token)
    assert f'id="dashboard-{panel_app["id"]}"' in r.text
    assert "Panel app" in r.text
    r = open_page(platform, name, panel_app["server"], stranger_token, follow_redirects=True)
    assert r.status_code == 403


def test_a_web_app_answers_its_own_route_through_a_share(platform, owner, web_app, new_user):
    name, token = owner
    viewer, viewer_token = new_user()
    stranger, stranger_token = new_user()
    assert share(platform, token, web_app["id"], user=viewer).status_code == 201
    r = open_page(platform, name, web_app["server"], viewer_token, "hello")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    # The app sees its own paths (the server's prefix is in X-Forwarded-Prefix), and not the owner's hub token.
    assert r.json() == {
        "marker": f"{APP_MARKER}-web",
        "path": "/hello",
        "prefix": f"/user/{name}/{web_app['server']}/",
        "user_token": False,
    }
    r = open_page(platform, name, web_app["server"], stranger_token, "hello")
    assert r.status_code == 403
    assert APP_MARKER not in r.text


@pytest.mark.parametrize(
    "path", ["lab", "tree", "api/contents", "api/contents/app.py", "terminals/1", "api/kernels"]
)
def test_a_viewer_reaches_nothing_of_jupyter_on_an_app_server(
    platform, owner, panel_app, web_app, new_user, path
):
    name, token = owner
    viewer, viewer_token = new_user()
    for app in (panel_app, web_app):
        assert share(platform, token, app["id"], user=viewer).status_code == 201
        r = open_page(platform, name, app["server"], viewer_token, path)
        # Only the app is behind the proxy: its own "not found" (bokeh's, or the ASGI app's), no Jupyter server.
        assert r.status_code == 404, (app["kind"], r.status_code, r.text[:300])
        assert "jupyter" not in r.text.lower()
        assert "PANEL_APP" not in r.text and "import panel" not in r.text


def test_a_static_site_is_served_and_nothing_outside_it(platform, owner):
    name, token = owner
    files = {"index.html": "<h1>APP-MARKER-static</h1>", "css/site.css": "h1 {color: navy}"}
    r = publish_app(platform, token, "web", "index.html", app_files(files), runner="static")
    assert r.status_code == 201, r.text
    site = r.json()
    platform.wait_ready(name, site["server"], timeout=180)
    r = open_page(platform, name, site["server"], token)
    assert r.status_code == 200
    assert r.text == "<h1>APP-MARKER-static</h1>"
    r = open_page(platform, name, site["server"], token, "css/site.css")
    assert (r.status_code, r.headers["content-type"]) == (200, "text/css")
    for path in ("..%2f..%2fetc%2fpasswd", "css/..%2f..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd", ".hidden"):
        r = open_page(platform, name, site["server"], token, path)
        assert r.status_code == 404, (path, r.status_code)
        assert "root:x:0:0" not in r.text
    r = platform.api("DELETE", f"{API}/dashboards/{site['id']}", token)
    assert r.status_code == 204


def _dashboard_count(platform) -> int:
    engine = create_engine(platform.settings.service_db_url)
    with engine.connect() as connection:
        counted = connection.execute(text("SELECT count(*) FROM dashboards")).scalar_one()
        counted += connection.execute(text("SELECT count(*) FROM dashboard_files")).scalar_one()
    engine.dispose()
    return counted


@pytest.mark.parametrize(
    ("kind", "entry", "files", "runner", "message"),
    [
        ("panel", "app.py", {"../app.py": "x = 1"}, None, "'../app.py' is not a plain relative path"),
        ("panel", "app.py", {"/etc/app.py": "x = 1"}, None, "'/etc/app.py' is not a plain relative path"),
        (
            "panel",
            "app.py",
            {"a/../../app.py": "x = 1"},
            None,
            "'a/../../app.py' is not a plain relative path",
        ),
        (
            "panel",
            "app.py",
            {".bashrc": "x = 1", "app.py": ""},
            None,
            "'.bashrc' is not a plain relative path",
        ),
        (
            "panel",
            "../other/app.py",
            {"app.py": "x = 1"},
            None,
            "must be one of the app's .py or .ipynb files",
        ),
        (
            "panel",
            "/home/other/app.py",
            {"app.py": "x"},
            None,
            "must be one of the app's .py or .ipynb files",
        ),
        ("web", "os:system", {"app.py": "x = 1"}, "asgi", "must be module:attribute of one of the app's own"),
        (
            "web",
            "app:app --reload",
            {"app.py": "x"},
            "asgi",
            "must be module:attribute of one of the app's own",
        ),
        (
            "web",
            "index.html",
            {"index.html": "x"},
            "asgi",
            "must be module:attribute of one of the app's own",
        ),
        ("web", "../../etc/passwd", {"index.html": "x"}, "static", "must be one of the site's .html files"),
        ("panel", "app.py", {"app.py": "x"}, "asgi", "a Panel app has no runner to choose"),
    ],
)
def test_bad_file_names_and_entry_points_are_refused_and_nothing_is_stored(
    platform, owner, kind, entry, files, runner, message
):
    name, token = owner
    before = _dashboard_count(platform)
    r = publish_app(platform, token, kind, entry, app_files(files), runner=runner)
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"]
    assert _dashboard_count(platform) == before


def test_an_unknown_kind_or_a_command_is_refused(platform, owner):
    name, token = owner
    files = app_files({"app.py": "x = 1"})
    for body in (
        {"title": "x", "kind": "shell", "app": {"entry": "app.py", "files": files}},
        {"title": "x", "kind": "web", "app": {"entry": "app:app", "files": files, "command": "sh -c id"}},
        {"title": "x", "kind": "web", "app": {"entry": "app:app", "files": files, "runner": "bash"}},
        {"title": "x", "kind": "web", "app": {"entry": "app:app", "files": files}, "image": "alpine"},
        {"title": "x", "kind": "panel", "notebook": {"cells": []}},
    ):
        r = platform.api("POST", f"{API}/dashboards", token, json=body)
        assert r.status_code == 422, (body, r.text)


def test_a_broken_app_fails_its_start_and_tells_the_viewer(platform, new_user):
    owner = "appbroken"
    token = app_owner(platform, owner)
    viewer, viewer_token = new_user()
    source = "secret = '/home/private/x'\nraise RuntimeError(secret)\n"
    r = publish_app(platform, token, "panel", "app.py", app_files({"app.py": source}))
    assert r.status_code == 201, r.text
    app = r.json()
    server = app["server"]
    assert share(platform, token, app["id"], user=viewer).status_code == 201
    # The start that publishing asked for fails the same way; the viewer starts it again once that one is over.
    wait_for(lambda: platform.server_model(owner, server) is None, timeout=180)
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    if r.status_code == 202:
        r = platform.api(
            "GET", f"/hub/api/users/{owner}/servers/{server}/progress", viewer_token, timeout=180
        )
        assert r.status_code == 200
    elif r.status_code == 400:
        pytest.fail(f"the first start is still running: {r.text}")
    else:
        assert r.status_code == 500, r.text
    assert (
        "The dashboard could not start: polartep dashboard: the app raised RuntimeError at import" in r.text
    )
    assert "/home/private/x" not in r.text
    log = platform.home_of(owner) / ".polartep-dashboards" / f"{app['id']}.log"
    assert "RuntimeError: /home/private/x" in log.read_text()
