"""Dashboards in the platform service (SQLite and PostgreSQL, fake hub): publishing, limits, who sees what.

Specification: a user publishes a notebook (nbformat 4, at most 10 MiB, plots included) with a title; it is stored byte for byte as
a version addressed by its SHA-256. Bad notebooks, titles and descriptions are 400 with the rule, nothing stored.
Without a hosting subscription an owner may have 1 dashboard (the smallest profile of their plan); each hosting
subscription allows 5, at its profile. Only the owner and administrators see or change a dashboard (others: 404);
only the hub asks what a dashboard server should run.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from sqlalchemy import func, select

from polartep_hub.catalogue import load_catalogue
from polartep_hub.dashboards.hosting import DASHBOARDS_PER_HOSTING, hosting_allowance
from polartep_hub.dashboards.models import Dashboard, DashboardVersion
from tests.helpers.dashboards import marker_notebook, notebook

DASHBOARDS = "api/v1/dashboards"


def _publish(api, token="alice-token", **body):
    return api.post(
        DASHBOARDS,
        token=token,
        json={"title": "Sea ice", "description": "Extent", "notebook": marker_notebook(), **body},
    )


def _count(app, model) -> int:
    with app.state.context.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_publish_stores_the_notebook_as_a_content_addressed_version(api, app):
    r = _publish(api)
    assert r.status_code == 201, r.text
    dashboard = r.json()
    assert dashboard["owner"] == "alice"
    assert dashboard["title"] == "Sea ice"
    assert dashboard["server"] == f"dash-{dashboard['id']}"
    assert dashboard["url"] == f"/user/alice/dash-{dashboard['id']}/"
    assert dashboard["start"] == "not asked"  # no hub in these tests
    r = api.get(
        f"{DASHBOARDS}/{dashboard['id']}/versions/{dashboard['version']}/notebook", token="alice-token"
    )
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == dashboard["version"]
    assert r.json() == marker_notebook()
    assert [d["id"] for d in api.get(DASHBOARDS, token="alice-token").json()["dashboards"]] == [
        dashboard["id"]
    ]
    assert api.get(DASHBOARDS, token="bob-token").json() == {"dashboards": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"notebook": {"cells": "no"}}, "notebook: a Jupyter notebook"),
        ({"notebook": {**notebook("1"), "nbformat": 3}}, "notebook: nbformat must be 4"),
        ({"title": "   "}, "title: 1-200 characters"),
        ({"title": "t" * 201}, "title: 1-200 characters"),
        ({"description": "d" * 2001}, "description: at most 2000 characters"),
    ],
)
def test_bad_input_is_refused_with_the_rule_and_nothing_is_stored(api, app, body, message):
    r = _publish(api, **body)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(message), r.json()
    assert _count(app, Dashboard) == 0
    assert _count(app, DashboardVersion) == 0


def _with_plot(png_bytes: int) -> dict:
    """A notebook whose one cell shows a PNG of about ``png_bytes`` (base64 in the output, as Jupyter saves it)."""
    nb = notebook("plot()")
    nb["cells"][0]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/png": base64.b64encode(PNG_HEADER + b"\0" * png_bytes).decode()},
        }
    ]
    return nb


PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def test_a_notebook_with_plots_of_several_mib_publishes(api, app):
    r = _publish(api, notebook=_with_plot(4 * 1024 * 1024))
    assert r.status_code == 201, r.text[:300]
    dashboard = r.json()
    r = api.get(f"{DASHBOARDS}/{dashboard['id']}/thumbnail.png", token="alice-token")
    assert r.status_code == 200
    assert r.content.startswith(PNG_HEADER)
    # A new version of the same size goes through the per-dashboard route's limit as well.
    r = api.post(
        f"{DASHBOARDS}/{dashboard['id']}/versions",
        token="alice-token",
        json={"notebook": _with_plot(5 * 1024 * 1024)},
    )
    assert r.status_code == 201, r.text[:300]


def test_a_notebook_over_10_mib_is_refused_413_with_the_limit_and_nothing_is_stored(api, app):
    # Under the body limit (11 MiB) but over the notebook's: the store says both sizes.
    r = _publish(api, notebook=_with_plot(8 * 1024 * 1024))
    assert r.status_code == 413
    assert r.json()["detail"].startswith("notebook: 1118")
    assert "bytes; at most 10485760 (clear large outputs" in r.json()["detail"]
    # Over the body limit: refused before the body is read.
    r = _publish(api, notebook=_with_plot(9 * 1024 * 1024))
    assert r.status_code == 413
    assert r.json()["detail"] == "request body too large (the limit is 11534336 bytes)"
    assert _count(app, Dashboard) == 0
    assert _count(app, DashboardVersion) == 0


def test_other_dashboard_routes_keep_the_services_64_kib_limit(api):
    dashboard = _publish(api).json()
    r = api.post(f"{DASHBOARDS}/{dashboard['id']}/shares", token="alice-token", json={"user": "b" * 70_000})
    assert r.status_code == 413
    assert r.json()["detail"] == "request body too large (the limit is 65536 bytes)"


def test_a_plain_plan_allows_one_dashboard(api, app):
    assert _publish(api).status_code == 201
    r = _publish(api)
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "you have 1 dashboard(s), the most your plan allows (1); delete one, or take a hosting subscription"
    )
    assert _count(app, Dashboard) == 1


def test_hosting_subscriptions_set_the_limit_and_the_size():
    catalogue = load_catalogue()
    plain = hosting_allowance(catalogue, ("interactive", "small", "medium"), ())
    assert (plain.limit, plain.profile, plain.source) == (1, "interactive", "plan")
    one = hosting_allowance(catalogue, ("interactive", "small"), ("hosting-small",))
    assert (one.limit, one.profile) == (DASHBOARDS_PER_HOSTING, "small")
    two = hosting_allowance(catalogue, ("interactive",), ("hosting-large", "hosting-small", "dev-medium"))
    assert (two.limit, two.profile, two.source) == (
        2 * DASHBOARDS_PER_HOSTING,
        "large",
        "hosting-large, hosting-small",
    )
    assert hosting_allowance(catalogue, (), ()).limit == 0


def test_only_the_owner_and_administrators_see_a_dashboard(api):
    dashboard = _publish(api).json()
    path = f"{DASHBOARDS}/{dashboard['id']}"
    assert api.get(path, token="bob-token").status_code == 404
    assert api.get(f"{path}/versions/{dashboard['version']}/notebook", token="bob-token").status_code == 404
    assert (
        api.post(f"{path}/versions", token="bob-token", json={"notebook": notebook("2")}).status_code == 404
    )
    assert api.get(path, token="ada-token").status_code == 200
    assert api.get(f"{DASHBOARDS}/0000000000", token="alice-token").status_code == 404


def test_a_new_version_becomes_current_and_the_old_one_is_kept(api):
    dashboard = _publish(api).json()
    r = api.post(
        f"{DASHBOARDS}/{dashboard['id']}/versions", token="alice-token", json={"notebook": notebook("2")}
    )
    assert r.status_code == 201
    assert r.json()["version"] != dashboard["version"]
    old = api.get(
        f"{DASHBOARDS}/{dashboard['id']}/versions/{dashboard['version']}/notebook", token="alice-token"
    )
    assert old.json() == marker_notebook()


def test_only_the_hub_asks_how_to_launch_a_dashboard(api):
    dashboard = _publish(api).json()
    path = f"api/v1/users/alice/dashboards/{dashboard['id']}/launch"
    r = api.get(path, token="hub-token")
    assert r.status_code == 200
    assert r.json() == {
        "id": dashboard["id"],
        "owner": "alice",
        "version": dashboard["version"],
        "profile": "interactive",
        "title": "Sea ice",
        "kind": "voila",
    }
    assert api.get(path, token="alice-token").status_code == 403
    # Another user's server may not run alice's dashboard.
    assert (
        api.get(f"api/v1/users/bob/dashboards/{dashboard['id']}/launch", token="hub-token").status_code == 404
    )


def test_sharing_needs_a_hub(api):
    dashboard = _publish(api).json()
    r = api.post(f"{DASHBOARDS}/{dashboard['id']}/shares", token="alice-token", json={"user": "bob"})
    assert r.status_code == 503


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_the_gallery_shows_title_description_and_thumbnail(api):
    pictured = notebook("plot()")
    pictured["cells"][0]["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG}}
    ]
    dashboard = _publish(api, notebook=pictured, title="Ice <b>extent</b>").json()
    r = api.get("dashboards", token="alice-token")
    assert r.status_code == 200
    assert "Ice &lt;b&gt;extent&lt;/b&gt;" in r.text
    assert f'href="/user/alice/dash-{dashboard["id"]}/"' in r.text
    thumbnail = f"api/v1/dashboards/{dashboard['id']}/thumbnail.png"
    assert f'src="/services/platform/{thumbnail}"' in r.text
    image = api.get(thumbnail, token="alice-token")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    # Not bob's to see (no share: the fake hub has none).
    assert api.get(thumbnail, token="bob-token").status_code == 404
    assert 'id="no-dashboards"' in api.get("dashboards", token="bob-token").text
