"""The worker environment option: only the profiles the user's plan allows, their image recorded per cluster.

Specification: the gateway's options offer ``profile`` with exactly the plan's profiles (catalogue order); a profile
outside the plan is refused with a message naming the plan and the allowed choices, before anything starts; the
chosen profile and its image are in the cluster's configuration (container backends start workers from it).
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.helpers.gateway import gateway_api

pytestmark = pytest.mark.hub


def cluster_config(platform, name: str) -> dict:
    """The cluster's configuration as the gateway stored it (not encrypted: only credentials are)."""
    path = platform.settings.state_path / "dask-gateway.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (raw,) = db.execute("SELECT config FROM clusters WHERE name = ?", (name,)).fetchone()
    return json.loads(raw)


def test_the_profile_option_offers_only_the_plans_profiles(platform, new_user):
    _, trial_token = new_user(plan="trial")
    _, large_token = new_user(plan="large")
    for token, expected in [
        (trial_token, ["interactive", "small", "medium"]),
        (large_token, ["interactive", "small", "medium", "large", "ml"]),
    ]:
        r = gateway_api(platform, "GET", "options", token)
        assert r.status_code == 200, r.text
        fields = {f["field"]: f for f in r.json()["cluster_options"]}
        assert fields["profile"]["spec"] == {"type": "select", "options": expected}
        assert fields["profile"]["default"] == "interactive"


def test_a_profile_outside_the_plan_is_refused_naming_the_plan(platform, new_user):
    _, token = new_user(plan="trial")
    r = gateway_api(platform, "POST", "clusters/", token, json={"cluster_options": {"profile": "ml"}})
    assert r.status_code == 422
    error = r.json()["error"]
    assert "profile='ml'" in error and "'trial'" in error and "interactive, small, medium" in error
    assert gateway_api(platform, "GET", "clusters/", token).json() == {}


@pytest.mark.parametrize(
    "plan, profile, image", [("trial", "medium", "polartep/base"), ("large", "ml", "polartep/ml")]
)
def test_the_chosen_profile_and_its_image_are_the_clusters(platform, new_user, plan, profile, image):
    _, token = new_user(plan=plan)
    r = gateway_api(
        platform,
        "POST",
        "clusters/",
        token,
        json={"cluster_options": {"profile": profile, "worker_cores": 2}},
    )
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    try:
        assert gateway_api(platform, "GET", f"clusters/{name}", token).json()["options"]["profile"] == profile
        config = cluster_config(platform, name)
        assert (config["worker_profile"], config["worker_image"], config["plan"]) == (profile, image, plan)
        assert config["worker_cores"] == 2
    finally:
        gateway_api(platform, "DELETE", f"clusters/{name}", token)
