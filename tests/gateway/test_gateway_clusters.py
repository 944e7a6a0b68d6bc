"""Dask Gateway through the real hub: zero-argument clients from a user server's environment, plan bounds, isolation.

Each scenario runs Python inside a spawned user server (its uid, groups and environment, read from ``/proc``;
``tests/helpers/inside_server.py``), so what passes here is what a notebook sees.
"""

from __future__ import annotations

import pytest

from tests.helpers.gateway import gateway_api
from tests.helpers.inside_server import run_as_user_server

pytestmark = pytest.mark.hub


def test_zero_argument_gateway_creates_scales_computes_and_stops(platform, new_user):
    user, token = new_user(plan="trial")
    result = run_as_user_server(
        platform,
        user,
        token,
        """
        import json
        from dask_gateway import Gateway
        gateway = Gateway()
        cluster = gateway.new_cluster()
        cluster.scale(2)
        client = cluster.get_client()
        client.wait_for_workers(2, timeout=60)
        total = client.submit(sum, range(101)).result()
        workers = len(client.scheduler_info()["workers"])
        listed = [c.name for c in gateway.list_clusters()]
        name = cluster.name
        client.close()
        cluster.shutdown()
        after = [c.name for c in gateway.list_clusters()]
        print(json.dumps({"total": total, "workers": workers, "listed": listed, "name": name, "after": after}))
        """,
    )
    assert result["total"] == 5050
    assert result["workers"] == 2
    assert result["name"] in result["listed"]
    assert result["name"] not in result["after"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"worker_cores": 9}, "max_cores=8"),
        ({"worker_memory": 9}, "max_worker_memory=8 GiB"),
    ],
    ids=["cores", "memory"],
)
def test_options_beyond_the_plan_are_refused_naming_the_bound(platform, new_user, options, message):
    user, token = new_user(plan="trial")
    result = run_as_user_server(
        platform,
        user,
        token,
        f"""
        import json
        from dask_gateway import Gateway
        try:
            Gateway().new_cluster(**{options!r})
            print(json.dumps({{"error": None}}))
        except Exception as e:
            print(json.dumps({{"error": str(e)}}))
        """,
    )
    assert result["error"] and message in result["error"]


def test_a_token_without_gateway_access_is_refused(platform, new_user):
    """A hub token that lacks ``access:services!service=dask-gateway`` gets 401/403 from the gateway."""
    user, _ = new_user(plan="trial")
    r = platform.api(
        "POST",
        f"/hub/api/users/{user}/tokens",
        platform.admin_token,
        json={"note": "no gateway", "scopes": [f"read:users!user={user}"]},
    )
    assert r.status_code == 201, r.text
    r = gateway_api(platform, "GET", "clusters/", r.json()["token"])
    assert r.status_code == 401


def test_user_a_cannot_list_connect_to_or_stop_user_b_cluster(platform, new_user):
    alice, alice_token = new_user(plan="trial")
    bob, bob_token = new_user(plan="trial")
    r = gateway_api(platform, "POST", "clusters/", alice_token, json={"cluster_options": {}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    try:
        listed = gateway_api(platform, "GET", "clusters/", bob_token).json()
        assert name not in listed
        # Without the cluster model Bob has neither its TLS credentials nor its token, so he cannot connect.
        # The gateway answers 403 for a cluster that exists but is not the caller's (404 only when it is gone).
        assert gateway_api(platform, "GET", f"clusters/{name}", bob_token).status_code == 403
        r = gateway_api(platform, "DELETE", f"clusters/{name}", bob_token)
        assert r.status_code == 403
        model = gateway_api(platform, "GET", f"clusters/{name}", alice_token).json()
        assert model["status"] in ("PENDING", "RUNNING")
    finally:
        gateway_api(platform, "DELETE", f"clusters/{name}", alice_token)
