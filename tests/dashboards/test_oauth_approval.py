"""A viewer confirms the hub's OAuth page once per dashboard, not after every restart of its server (local mode).

Specification (``spawners/dashboard_servers.py``): the first visit of a viewer a dashboard is shared with asks them
to let the dashboard's server identify them (JupyterHub's authorize page); after the server is stopped (as the idle
culler does) and started again, the same viewer, in the same browser session or in a new one, reaches the dashboard
without that page. The stopped server's own API token does not outlive it, and removing the dashboard removes its
OAuth client and the viewers' tokens for it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.harness import wait_for
from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.dashboards import AUTHORIZE_PATH as AUTHORIZE
from tests.helpers.dashboards import MARKER, publish, share
from tests.helpers.dashboards import visit_as_browser as visit

pytestmark = pytest.mark.timeout(600)

PASSWORD = "a-long-enough-password-for-tests-7"


def hub_rows(platform, query: str, **values) -> list[tuple]:
    engine = create_engine(platform.settings.hub_db_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query), values)]
    finally:
        engine.dispose()


def test_a_viewer_confirms_once_and_reaches_the_restarted_dashboard_without_the_authorize_page(
    platform, new_user
):
    owner, owner_token = new_user()
    viewer, _ = new_user(password=PASSWORD)
    dashboard = publish(platform, owner_token)
    server = dashboard["server"]
    client_id = f"jupyterhub-user-{owner}-{server}"
    platform.wait_ready(owner, server, timeout=120)
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    url = platform.user_url(owner, server)

    with logged_in_session(platform, viewer, PASSWORD) as browser:
        page, asked = visit(browser, url)
        assert asked, (page.status_code, str(page.url), page.text[:300])
        page = browser.post(str(page.url), data={"_xsrf": form_xsrf(page.text)})
        assert page.status_code == 200, (page.status_code, str(page.url), page.text[:300])
        assert f"{MARKER}-42" in page.text

        platform.stop_server(owner, server)  # as the idle culler would
        platform.spawn(owner, owner_token, server=server, timeout=120)

        page, asked = visit(browser, url)
        assert not asked, "the same session was asked again after a restart"
        assert page.status_code == 200, (page.status_code, str(page.url), page.text[:300])
        assert f"{MARKER}-42" in page.text

    # A new session (no cookie of the dashboard's): the hub goes through OAuth again, and skips the page because
    # the viewer's approval (their token for this client) survived the restart.
    with logged_in_session(platform, viewer, PASSWORD) as browser:
        page, asked = visit(browser, url)
        assert not asked, "a new session of the viewer was asked again"
        assert page.status_code == 200
        assert f"{MARKER}-42" in page.text
        assert any(step.url.path == AUTHORIZE for step in page.history), "it went through the hub's OAuth"

    # The server token of the stopped start is gone: one server token, the running server's.
    notes = hub_rows(
        platform,
        "SELECT t.note FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE u.name = :owner AND t.note LIKE :note",
        owner=owner,
        note=f"%{server}%",
    )
    assert len(notes) == 1, notes

    # Removing the dashboard removes its OAuth client and every token issued through it.
    r = platform.api("DELETE", f"/services/platform/api/v1/dashboards/{dashboard['id']}", owner_token)
    assert r.status_code == 204, r.text
    # (The hub removes the server once its stop, which the service asked for, is over.)
    wait_for(
        lambda: hub_rows(platform, "SELECT 1 FROM oauth_clients WHERE identifier = :id", id=client_id) == [],
        60,
        what="the dashboard's OAuth client to be removed",
    )
    assert hub_rows(platform, "SELECT 1 FROM api_tokens WHERE client_id = :id", id=client_id) == []
