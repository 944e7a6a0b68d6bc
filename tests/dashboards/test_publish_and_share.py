"""Dashboards end to end on a real hub (local mode): publish, open, share, revoke.

The owner publishes a notebook through the platform service's API; its server ``dash-<id>`` starts with Voila only;
the owner and the users it is shared with see the rendered page (the kernel's output), others get 403 and nothing
of it; a revoked share is refused at the next request.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import create_engine, text

from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.dashboards import MARKER, notebook, open_page, publish, share

pytestmark = pytest.mark.timeout(600)

API = "/services/platform/api/v1"
HOLDER_PASSWORD = "a-long-enough-password-for-tests-7"


@pytest.fixture(scope="module")
def published(platform):
    owner = "dashowner"
    owner_token = platform.create_user(owner)
    dashboard = publish(platform, owner_token)
    platform.wait_ready(owner, dashboard["server"], timeout=120)
    return owner, owner_token, dashboard


def test_publish_freezes_the_notebook_and_starts_a_voila_server(platform, published):
    owner, token, dashboard = published
    assert dashboard["url"] == f"/user/{owner}/{dashboard['server']}/"
    assert dashboard["server"] == f"dash-{dashboard['id']}"
    assert dashboard["start"] == "asked"
    r = open_page(platform, owner, dashboard["server"], token)
    assert r.status_code == 200, (r.status_code, r.text[:500], platform.log_tail())
    assert f"{MARKER}-42" in r.text
    # The stored version is the notebook's SHA-256; the owner reads it back byte for byte.
    r = platform.api(
        "GET", f"{API}/dashboards/{dashboard['id']}/versions/{dashboard['version']}/notebook", token
    )
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == dashboard["version"]


def test_sharing_with_a_user_lets_them_in_and_revocation_shuts_them_out(platform, published, new_user):
    owner, owner_token, dashboard = published
    viewer, viewer_token = new_user()
    stranger, stranger_token = new_user()
    server = dashboard["server"]

    r = open_page(platform, owner, server, stranger_token)
    assert r.status_code == 403
    assert MARKER not in r.text

    r = share(platform, owner_token, dashboard["id"], user=viewer)
    assert r.status_code == 201, r.text
    assert r.json() == {"kind": "user", "name": viewer, "created_at": r.json()["created_at"]}
    r = platform.api("GET", f"{API}/dashboards/{dashboard['id']}/shares", owner_token)
    assert [(s["kind"], s["name"]) for s in r.json()["shares"]] == [("user", viewer)]

    r = open_page(platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text
    # The viewer's list and gallery show it as shared; the stranger's do not.
    r = platform.api("GET", f"{API}/dashboards", viewer_token, params={"include": "shared"})
    assert [(d["id"], d["access"]) for d in r.json()["dashboards"]] == [(dashboard["id"], "shared")]
    r = platform.api("GET", "/services/platform/dashboards", viewer_token)
    assert r.status_code == 200
    assert f'id="dashboard-{dashboard["id"]}"' in r.text
    assert f"Shared by {owner}" in r.text
    r = platform.api("GET", f"{API}/dashboards", stranger_token, params={"include": "shared"})
    assert r.json() == {"dashboards": []}
    r = open_page(platform, owner, server, stranger_token)
    assert r.status_code == 403
    assert MARKER not in r.text

    # Only the owner manages shares: the viewer is told there is no such dashboard.
    r = share(platform, viewer_token, dashboard["id"], user=stranger)
    assert r.status_code == 404

    r = platform.api("DELETE", f"{API}/dashboards/{dashboard['id']}/shares/users/{viewer}", owner_token)
    assert r.status_code == 204
    r = platform.api("GET", f"{API}/dashboards/{dashboard['id']}/shares", owner_token)
    assert r.json() == {"shares": []}
    r = open_page(platform, owner, server, viewer_token)
    assert r.status_code == 403
    assert MARKER not in r.text


def test_a_viewer_starts_a_stopped_shared_dashboard_and_follows_its_progress(platform, published, new_user):
    owner, owner_token, dashboard = published
    viewer, viewer_token = new_user()
    server = dashboard["server"]
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    platform.stop_server(owner, server)  # as the idle culler would

    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    # The progress the hub's spawn-pending page shows (an event stream that ends when the server is ready).
    r = platform.api("GET", f"/hub/api/users/{owner}/servers/{server}/progress", viewer_token, timeout=120)
    assert r.status_code == 200, r.text[:300]
    assert '"ready": true' in r.text, r.text[-500:]
    platform.wait_ready(owner, server, timeout=120)
    r = open_page(platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text

    # A viewer may start it, not stop it, and may not run anything else on it.
    r = platform.api("DELETE", f"/hub/api/users/{owner}/servers/{server}", viewer_token)
    assert r.status_code == 404  # JupyterHub's answer without the scope
    assert platform.server_model(owner, server)["ready"] is True
    platform.stop_server(owner, server)
    r = platform.api(
        "POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={"profile": "small"}
    )
    assert r.status_code == 400
    assert "takes no option profile" in r.json()["message"]
    # The refused options are forgotten: the next start without options (JupyterHub would reuse them) works.
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    platform.wait_ready(owner, server, timeout=120)


def test_a_dashboard_server_never_runs_anything_else(platform, published):
    owner, owner_token, dashboard = published
    # The owner cannot turn a dashboard's server into JupyterLab (a share grants the whole server).
    r = platform.api(
        "POST",
        f"/hub/api/users/{owner}/servers/{dashboard['server']}",
        owner_token,
        json={"profile": "interactive"},
    )
    assert r.status_code == 400
    # Nor run a dashboard that is not theirs, or a dashboard on a development server.
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/dash-0000000000", owner_token, json={})
    assert r.status_code == 400
    assert "has no dashboard '0000000000'" in r.json()["message"]
    r = platform.api(
        "POST", f"/hub/api/users/{owner}/servers/dev1", owner_token, json={"dashboard": dashboard["id"]}
    )
    assert r.status_code == 400


def test_a_share_code_lets_anyone_with_an_account_in_until_every_share_is_revoked(
    platform, published, new_user
):
    owner, owner_token, dashboard = published
    holder, holder_token = new_user(password=HOLDER_PASSWORD)
    server = dashboard["server"]
    if platform.server_model(owner, server) is None:  # stopped by an earlier test
        platform.spawn(owner, owner_token, server=server, timeout=120)
    r = platform.api("POST", f"{API}/dashboards/{dashboard['id']}/share-code", owner_token, json={})
    assert r.status_code == 201, r.text
    accept_url = r.json()["accept_url"]
    assert open_page(platform, owner, server, holder_token).status_code == 403
    # The holder opens the link in a browser session and confirms (the hub's accept-share form).
    with logged_in_session(platform, holder, HOLDER_PASSWORD) as browser:
        url = accept_url if accept_url.startswith("http") else platform.url + accept_url
        page = browser.get(url)
        assert page.status_code == 200, page.text[:300]
        r = browser.post(url, data={"_xsrf": form_xsrf(page.text)}, follow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text[:300])
    r = open_page(platform, owner, server, holder_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text

    r = platform.api("DELETE", f"{API}/dashboards/{dashboard['id']}/shares", owner_token)
    assert r.status_code == 204
    assert open_page(platform, owner, server, holder_token).status_code == 403


def test_a_broken_dashboard_shows_the_viewer_that_it_failed_without_the_owners_details(platform):
    owner = "dashbroken"
    token = platform.create_user(owner)
    dashboard = publish(
        platform, token, nb=notebook("secret_path = '/home/private/x'\nraise ValueError(secret_path)")
    )
    platform.wait_ready(owner, dashboard["server"], timeout=120)
    r = open_page(platform, owner, dashboard["server"], token)
    assert r.status_code == 200
    assert "There was an error when executing cell" in r.text
    # Neither the code (Voila strips sources) nor the error's message and traceback reach the viewer.
    assert "/home/private/x" not in r.text
    assert "Traceback" not in r.text


def test_a_dashboard_that_fails_to_start_tells_the_viewer_why_and_logs_it_for_the_owner(platform, new_user):
    owner = "dashfailing"
    owner_token = platform.create_user(owner)
    viewer, viewer_token = new_user()
    dashboard = publish(platform, owner_token)
    server = dashboard["server"]
    platform.wait_ready(owner, server, timeout=120)
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    platform.stop_server(owner, server)
    # The stored version goes missing (as after a botched restore): the server cannot fetch what it must serve.
    engine = create_engine(platform.settings.service_db_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE dashboards SET current_sha256 = :bad WHERE id = :id"),
            {"bad": "0" * 64, "id": dashboard["id"]},
        )
    engine.dispose()

    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    if r.status_code == 202:
        # Slower than the hub's slow-spawn wait (10 s): the failure reaches the viewer on the progress stream.
        r = platform.api(
            "GET", f"/hub/api/users/{owner}/servers/{server}/progress", viewer_token, timeout=180
        )
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    assert "The dashboard could not start: polartep dashboard: cannot fetch dashboard" in r.text, r.text[
        -800:
    ]
    assert f"Its owner finds the log in ~/.polartep-dashboards/{dashboard['id']}.log." in r.text
    log = platform.home_of(owner) / ".polartep-dashboards" / f"{dashboard['id']}.log"
    assert "cannot fetch dashboard" in log.read_text()
