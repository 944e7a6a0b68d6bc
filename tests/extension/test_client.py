"""The extension's service client: only allow-listed routes, the owner's name quoted, errors that say what failed."""

from __future__ import annotations

import asyncio

import pytest
from polartep_lab.client import SERVICE_ROUTES, ServiceClient, ServiceError

from tests.harness import free_port


def test_the_allow_list_holds_the_users_own_data_publishing_and_running_only():
    assert {name: (r.method, r.path) for name, r in SERVICE_ROUTES.items()} == {
        "me": ("GET", "api/v1/me"),
        "entitlements": ("GET", "api/v1/users/{user}/entitlements"),
        "processor_publish": ("POST", "api/v1/processors"),
        "processor_draft": ("POST", "api/v1/processors/draft"),
        "processor_validate": ("POST", "api/v1/processors/validate"),
        "usage": ("GET", "api/v1/users/{user}/usage?with_intervals=false"),
        "datasets": ("GET", "api/v1/datasets"),
        "projects": ("GET", "api/v1/projects"),
        "catalogue": ("GET", "api/v1/catalogue"),
        "dataset": ("GET", "api/v1/datasets/{project}/{dataset}"),
        "dataset_create": ("POST", "api/v1/datasets"),
        "dataset_delete": ("DELETE", "api/v1/datasets/{project}/{dataset}"),
        "dataset_grant": ("PUT", "api/v1/datasets/{project}/{dataset}/grants/{grantee}"),
        "dataset_revoke": ("DELETE", "api/v1/datasets/{project}/{dataset}/grants/{grantee}"),
        "processor_list": ("GET", "api/v1/processors"),
        "processor_form": ("GET", "api/v1/processors/{processor}/form{query}"),
        "processor_run_start": ("POST", "api/v1/processors/{processor}/runs"),
        "run": ("GET", "api/v1/runs/{run}"),
        "run_log": ("GET", "api/v1/runs/{run}/log"),
        "processor_versions": ("GET", "api/v1/processors/{processor}/versions"),
        "run_cancel": ("POST", "api/v1/runs/{run}/cancel"),
        "dashboard_publish": ("POST", "api/v1/dashboards"),
        "dashboard_shares": ("GET", "api/v1/dashboards/{dashboard}/shares"),
        "dashboard_share": ("POST", "api/v1/dashboards/{dashboard}/shares"),
        "dashboard_revoke_user": ("DELETE", "api/v1/dashboards/{dashboard}/shares/users/{name}"),
        "dashboard_revoke_group": ("DELETE", "api/v1/dashboards/{dashboard}/shares/groups/{name}"),
        "dashboard_share_code": ("POST", "api/v1/dashboards/{dashboard}/share-code"),
    }


def test_dataset_routes_take_only_names_that_follow_the_services_rules():
    client = ServiceClient("http://127.0.0.1:1/services/platform/", "t", "alice")
    assert (
        client.url_for("dataset_grant", {"project": "sea.ice", "dataset": "daily_1", "grantee": "glaciers"})
        == "http://127.0.0.1:1/services/platform/api/v1/datasets/sea.ice/daily_1/grants/glaciers"
    )
    for bad in ("..", "a/b", "a%2fb", "A", "", "a\x00", "x" * 65, "-a", "../../accounts"):
        with pytest.raises(ValueError):
            client.url_for("dataset_delete", {"project": bad, "dataset": "daily"})
        with pytest.raises(ValueError):
            client.url_for("dataset_delete", {"project": "sea", "dataset": bad})
    with pytest.raises(ValueError):  # a dot is a project's, never a dataset's
        client.url_for("dataset_delete", {"project": "sea", "dataset": "a.b"})
    with pytest.raises(ValueError):  # a route gets exactly its placeholders
        client.url_for("dataset_delete", {"project": "sea", "dataset": "d", "grantee": "x"})
    with pytest.raises(ValueError):
        client.url_for("datasets", {"project": "sea"})


def test_urls_come_from_the_allow_list_and_the_owner_only():
    client = ServiceClient("http://127.0.0.1:1/services/platform", "t", "a/../b")
    assert (
        client.url_for("entitlements")
        == "http://127.0.0.1:1/services/platform/api/v1/users/a%2F..%2Fb/entitlements"
    )
    with pytest.raises(KeyError):
        client.url_for("accounts")


RUN = "0b7e3c52-5d43-4f0e-9a51-2f1c0d7e9a10"


def test_ids_from_a_request_must_match_their_rule_before_they_become_a_url():
    client = ServiceClient("http://127.0.0.1:1/services/platform/", "t", "alice")
    assert client.url_for("processor_form", {"processor": "sea-ice", "version": "1.0.0"}) == (
        "http://127.0.0.1:1/services/platform/api/v1/processors/sea-ice/form?version=1.0.0"
    )
    assert client.url_for("processor_form", {"processor": "sea-ice"}).endswith("/processors/sea-ice/form")
    assert client.url_for("run_log", {"run": RUN}).endswith(f"/api/v1/runs/{RUN}/log")
    for processor in ("../accounts", "a/b", "sea-ice?x=1", "Sea", "a%2F", None):
        with pytest.raises(ValueError, match="processor must match"):
            client.url_for("processor_run_start", {"processor": processor})
    for run in (RUN + "/../x", RUN.upper(), "1", None):
        with pytest.raises(ValueError, match="run must match"):
            client.url_for("run", {"run": run})
    with pytest.raises(ValueError, match="version must match"):
        client.url_for("processor_form", {"processor": "sea-ice", "version": "1&x=/../"})


def test_dashboard_placeholders_fill_one_segment_of_their_form_only():
    client = ServiceClient("http://127.0.0.1:1/services/platform/", "t", "alice")
    assert (
        client.url_for("dashboard_revoke_user", {"dashboard": "0123456789", "name": "bob"})
        == "http://127.0.0.1:1/services/platform/api/v1/dashboards/0123456789/shares/users/bob"
    )
    for names in (
        {"dashboard": "../../accounts", "name": "bob"},
        {"dashboard": "0123456789", "name": "../x"},
        {"dashboard": "0123456789", "name": "a/b"},
    ):
        with pytest.raises(ValueError):
            client.url_for("dashboard_revoke_user", names)


def test_an_unreachable_service_is_a_service_error_without_status():
    client = ServiceClient(f"http://127.0.0.1:{free_port()}/services/platform/", "t", "alice", timeout=5)
    with pytest.raises(ServiceError) as failed:
        asyncio.run(client.call("me"))
    assert failed.value.status is None
    assert str(failed.value).startswith("the platform service could not be reached to api/v1/me: ")
