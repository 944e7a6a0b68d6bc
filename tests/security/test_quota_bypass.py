"""Attack: raise one's own allowance, or start work past it, from inside one's own running server (issue 11).

carol (Trial, 500 CPU-hours) has spent 499.9 of them. From inside her JupyterLab server, with her server's token and
with an API token of hers that can start servers, she tries: to change her own plan to Large in the platform
service; to admit a server herself (the hub's decision route); to close her own running server's interval early (the
hub's stop report); and to spawn new named servers straight through the hub's REST API, six times (more than the
hub's bound of four named servers). Each must fail: the first three with 403 (only administrators or the hub), every
spawn with 403 and the quota's message (never the hub's "maximum named servers"), and nothing is admitted, changed,
closed or left behind in the hub.
"""

from __future__ import annotations

import pytest

from tests.harness import wait_for
from tests.helpers.inside_server import run_inside_server
from tests.helpers.quota import spend

pytestmark = pytest.mark.hub

ATTACKS = """
import json, os, httpx
base = os.environ["ATTACK_URL"]
service = base + "/services/platform/api/v1/users/carol"
server_token = {"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}
user_token = {"Authorization": "token " + os.environ["CAROL_TOKEN"]}
out = {}
for label, headers in (("server", server_token), ("user", user_token)):
    out[label + "_plan"] = httpx.put(base + "/services/platform/api/v1/accounts/carol/plan", json={"plan": "large"},
                                     headers=headers, timeout=60).status_code
    out[label + "_admit"] = httpx.post(service + "/server-admissions", json={"server": "x", "profile": "large"},
                                       headers=headers, timeout=60).status_code
    out[label + "_stop"] = httpx.post(service + "/server-stops", json={"server": "", "crashed": True},
                                      headers=headers, timeout=60).status_code
# More tries of new named servers than named_servers_per_user (4 here): each must get the quota's refusal, none
# the hub's "maximum named servers" (a refused try left its entry behind, and the fifth met the hub's bound).
out["spawns"] = []
for name in ("more", "more2", "more3", "more4", "more5", "more6"):
    r = httpx.post(base + "/hub/api/users/carol/servers/" + name, json={"profile": "interactive"},
                   headers=user_token, timeout=120)
    out["spawns"].append([r.status_code, r.json().get("message", "")])
print(json.dumps(out))
"""


def test_a_user_can_neither_raise_their_allowance_nor_spawn_past_it(platform):
    token = platform.create_user("carol", plan="trial")
    platform.spawn("carol", token, {"profile": "interactive"})
    spend(platform, "carol", 499.9)

    def open_server_intervals() -> list:
        usage = platform.api("GET", "/services/platform/api/v1/users/carol/usage", token).json()
        return [i for i in usage["intervals"] if i["kind"] == "server" and i["stopped_at"] is None]

    # The server meter's pass opens the running server's interval (on a loaded machine a few seconds after the
    # spawn); the attack below must not be able to close it.
    wait_for(open_server_intervals, 60, interval=0.5, what="the server meter to open carol's interval")
    before = platform.api("GET", "/services/platform/api/v1/users/carol/usage", token).json()

    result = run_inside_server(
        platform, "carol", ATTACKS, env={"ATTACK_URL": platform.url, "CAROL_TOKEN": token}
    )

    assert result["server_plan"] == 403 and result["user_plan"] == 403  # changing one's own plan
    assert result["server_admit"] == 403 and result["user_admit"] == 403  # deciding one's own admission
    assert result["server_stop"] == 403 and result["user_stop"] == 403  # closing one's own interval early
    assert len(result["spawns"]) == 6
    for status, message in result["spawns"]:
        assert status == 403
        assert message.startswith("Your CPU-hours are exhausted:")
        assert "Your allowance renews on " in message
    # No refused try left an entry in the hub: only the default server (running).
    hub_user = platform.api(
        "GET", "/hub/api/users/carol?include_stopped_servers", platform.admin_token
    ).json()
    assert sorted(hub_user["servers"]) == [""]
    after = platform.api("GET", "/services/platform/api/v1/users/carol/usage", token).json()
    assert after["plan"] == "trial" and after["allowance"] == 500
    assert platform.server_model("carol", "more") is None
    open_servers = [i for i in after["intervals"] if i["kind"] == "server" and i["stopped_at"] is None]
    assert len(open_servers) == 1 and before["allowance"] == 500
    platform.stop_server("carol")
