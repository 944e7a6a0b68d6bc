"""Attack: escape the enforcement of an exhausted CPU-hour allowance, from inside one's own server (issue 11, item 5).

dave (Trial, 500 CPU-hours) has 0.5 CPU-hours left and runs his default server (2 cores). From inside it, with the
server's token and with an API token of his, he tries to grant himself a top-up (403: administrators only) and to
start a second server past what is left (403 with the quota's message). Then his month runs out: the enforcement
stops his server. A process of his that outlived the server (same uid, groups and environment, his own API token)
marks the 100% notice seen, which is allowed and changes nothing else, tries the top-up again (403), restarts his
server (403 with the quota's message) and a named one (403). Nothing is granted or started.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.harness import wait_for
from tests.helpers.inside_server import run_inside, server_pid, server_process
from tests.helpers.quota import spend

pytestmark = pytest.mark.hub

BEFORE = """
import json, os, httpx
base = os.environ["ATTACK_URL"]
service = base + "/services/platform/api/v1/users/dave"
out = {}
for label, token in (("server", os.environ["JUPYTERHUB_API_TOKEN"]), ("user", os.environ["DAVE_TOKEN"])):
    headers = {"Authorization": "token " + token}
    out[label + "_top_up"] = httpx.post(service + "/top-ups", json={"cpu_hours": 1000, "reason": "mine"},
                                        headers=headers, timeout=60).status_code
r = httpx.post(base + "/hub/api/users/dave/servers/more", json={"profile": "small"},
               headers={"Authorization": "token " + os.environ["DAVE_TOKEN"]}, timeout=120)
out["spawn"] = [r.status_code, r.json().get("message", "")]
print(json.dumps(out))
"""

AFTER = """
import json, os, httpx
base = os.environ["ATTACK_URL"]
service = base + "/services/platform/api/v1/users/dave"
headers = {"Authorization": "token " + os.environ["DAVE_TOKEN"]}
out = {}
notices = httpx.get(service + "/notifications", headers=headers, timeout=60).json()["notifications"]
last = [n for n in notices if n["threshold"] == 100][0]
out["seen"] = httpx.post(service + f"/notifications/{last['id']}/seen", headers=headers, timeout=60).status_code
out["top_up"] = httpx.post(service + "/top-ups", json={"cpu_hours": 1000, "reason": "mine"}, headers=headers,
                           timeout=60).status_code
for label, path in (("restart", "server"), ("named", "servers/again")):
    r = httpx.post(base + "/hub/api/users/dave/" + path, json={"profile": "small"}, headers=headers, timeout=120)
    out[label] = [r.status_code, r.json().get("message", "")]
print(json.dumps(out))
"""


def test_a_user_can_neither_top_up_nor_dismiss_the_enforcement_nor_restart_past_it(platform):
    token = platform.create_user("dave", plan="trial")
    platform.spawn("dave", token, {"profile": "small"})
    wait_for(
        lambda: any(
            i["kind"] == "server" and i["stopped_at"] is None
            for i in platform.api("GET", "/services/platform/api/v1/users/dave/usage", token).json()[
                "intervals"
            ]
        ),
        60,
        interval=0.5,
        what="the server meter to open dave's interval",
    )
    spend(platform, "dave", 499.5)
    process = server_process(server_pid(platform, "dave"))
    process = dataclasses.replace(
        process, environment={**process.environment, "ATTACK_URL": platform.url, "DAVE_TOKEN": token}
    )
    done = run_inside(process, BEFORE)
    assert done.returncode == 0, done.stderr
    before = json.loads(done.stdout.strip().splitlines()[-1])
    assert before["server_top_up"] == 403 and before["user_top_up"] == 403
    status, message = before["spawn"]
    assert status == 403 and message.startswith("Your CPU-hours are exhausted:")
    assert platform.server_model("dave", "more") is None

    spend(platform, "dave", 1)  # the month runs out: the enforcement stops the server
    wait_for(
        lambda: platform.server_model("dave") is None, 90, interval=0.5, what="the enforcement to stop it"
    )

    done = run_inside(process, AFTER)
    assert done.returncode == 0, done.stderr
    after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after["seen"] == 204  # allowed: it only hides the notice
    assert after["top_up"] == 403
    for label in ("restart", "named"):
        status, message = after[label]
        assert status == 403, (label, message)
        assert message.startswith("Your CPU-hours are exhausted:"), (label, message)
    assert platform.server_model("dave") is None and platform.server_model("dave", "again") is None
    top_ups = platform.api("GET", "/services/platform/api/v1/users/dave/top-ups", token).json()["top_ups"]
    assert top_ups == []
    usage = platform.api("GET", "/services/platform/api/v1/users/dave/usage", token).json()
    assert usage["allowance"] == 500 and usage["left"] < 0
