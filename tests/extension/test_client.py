"""The extension's service client: only allow-listed routes, the owner's name quoted, errors that say what failed."""

from __future__ import annotations

import asyncio

import pytest
from polartep_lab.client import SERVICE_ROUTES, ServiceClient, ServiceError

from tests.harness import free_port


def test_the_allow_list_holds_the_users_own_data_and_publishing_only():
    assert {name: (r.method, r.path) for name, r in SERVICE_ROUTES.items()} == {
        "me": ("GET", "api/v1/me"),
        "entitlements": ("GET", "api/v1/users/{user}/entitlements"),
        "processor_publish": ("POST", "api/v1/processors"),
        "processor_draft": ("POST", "api/v1/processors/draft"),
        "processor_validate": ("POST", "api/v1/processors/validate"),
        "usage": ("GET", "api/v1/users/{user}/usage?with_intervals=false"),
        "dashboard_publish": ("POST", "api/v1/dashboards"),
        "dashboard_shares": ("GET", "api/v1/dashboards/{dashboard}/shares"),
        "dashboard_share": ("POST", "api/v1/dashboards/{dashboard}/shares"),
        "dashboard_revoke_user": ("DELETE", "api/v1/dashboards/{dashboard}/shares/users/{name}"),
        "dashboard_revoke_group": ("DELETE", "api/v1/dashboards/{dashboard}/shares/groups/{name}"),
        "dashboard_share_code": ("POST", "api/v1/dashboards/{dashboard}/share-code"),
    }


def test_urls_come_from_the_allow_list_and_the_owner_only():
    client = ServiceClient("http://127.0.0.1:1/services/platform", "t", "a/../b")
    assert (
        client.url_for("entitlements")
        == "http://127.0.0.1:1/services/platform/api/v1/users/a%2F..%2Fb/entitlements"
    )
    with pytest.raises(KeyError):
        client.url_for("accounts")


def test_dashboard_placeholders_fill_one_segment_of_their_form_only():
    client = ServiceClient("http://127.0.0.1:1/services/platform/", "t", "alice")
    assert (
        client.url_for("dashboard_revoke_user", dashboard="0123456789", name="bob")
        == "http://127.0.0.1:1/services/platform/api/v1/dashboards/0123456789/shares/users/bob"
    )
    for names in (
        {"dashboard": "../../accounts", "name": "bob"},
        {"dashboard": "0123456789", "name": "../x"},
        {"dashboard": "0123456789", "name": "a/b"},
    ):
        with pytest.raises(ValueError):
            client.url_for("dashboard_revoke_user", **names)


def test_an_unreachable_service_is_a_service_error_without_status():
    client = ServiceClient(f"http://127.0.0.1:{free_port()}/services/platform/", "t", "alice", timeout=5)
    with pytest.raises(ServiceError) as failed:
        asyncio.run(client.call("me"))
    assert failed.value.status is None
    assert str(failed.value).startswith("the platform service could not be reached to api/v1/me: ")
