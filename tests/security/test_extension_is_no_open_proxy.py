"""Attack: use the JupyterLab extension (or the token it uses) from inside a user's server to make the platform
service do what the user may not.

The user's server is untrusted: its owner runs any code there, with the server's environment. The attacker here is
code in mallory's real (local-mode) server, run as the server's system user with the server's own environment (read
from ``/proc/<pid>/environ``), which holds the token the extension forwards with. Each attempt must fail, with the
one right status:

* the service's admin route ``api/v1/accounts`` with the server's token: 403 (the token is mallory's, not the hub's);
* another user's entitlements with the server's token: 403;
* the same admin route, and path traversals towards it, through the extension: 404 (not on the allow-list);
* the hub's token is not in the server's environment at all.
The baseline proves the attacker's set-up is real: the same token, through the extension and directly, reads
mallory's own data (200).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hub

ATTACK = r"""
import json, os, urllib.error, urllib.request

def status(url):
    request = urllib.request.Request(url, headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

service = os.environ["POLARTEP_SERVICE_URL"]
server = os.environ["JUPYTERHUB_SERVICE_URL"]  # this server itself, e.g. http://127.0.0.1:PORT/user/NAME/
print(json.dumps({
    "own_me_direct": status(service + "api/v1/me"),
    "own_me_extension": status(server + "polartep/api/me"),
    "admin_direct": status(service + "api/v1/accounts"),
    "other_entitlements_direct": status(service + "api/v1/users/" + os.environ["VICTIM"] + "/entitlements"),
    "admin_extension": status(server + "polartep/api/accounts"),
    "traversal_extension": status(server + "polartep/api/..%2F..%2F..%2Fservices%2Fplatform%2Fapi%2Fv1%2Faccounts"),
    "dotdot_extension": status(server + "polartep/api/../../../services/platform/api/v1/accounts"),
}))
"""


def server_process(platform, user: str) -> tuple[int, dict[str, str], int]:
    """The pid, environment and uid of ``user``'s running local-mode server."""
    pid = platform.server_model(user)["state"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    uid = os.stat(f"/proc/{pid}").st_uid
    return pid, env, uid


def test_the_extension_and_its_token_cannot_do_what_the_user_may_not(platform, new_user):
    attacker, token = new_user(plan="trial")
    victim, _ = new_user(plan="large")
    platform.spawn(attacker, token, {"profile": "interactive"})
    try:
        _, env, uid = server_process(platform, attacker)
        assert platform.settings.hub_service_token not in env.values(), "the hub's token is in a user server"
        assert env["JUPYTERHUB_API_TOKEN"] != token, "the server has a token of its own"
        done = subprocess.run(
            [sys.executable, "-c", ATTACK],
            env={**env, "VICTIM": victim},
            user=uid,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        results = json.loads(done.stdout)
    finally:
        platform.stop_server(attacker)

    # Baseline: the attacker's token is mallory's own, through the extension and directly.
    assert results["own_me_direct"][0] == 200 and results["own_me_direct"][1]["name"] == attacker
    assert results["own_me_extension"][0] == 200 and results["own_me_extension"][1]["plan"] == "trial"
    # The attempts.
    assert results["admin_direct"][0] == 403, results["admin_direct"]
    assert results["other_entitlements_direct"] == [
        403,
        {"detail": "you may only read your own entitlements"},
    ]
    assert results["admin_extension"][0] == 404, results["admin_extension"]
    assert results["traversal_extension"][0] == 404, results["traversal_extension"]
    assert results["dotdot_extension"][0] == 404, results["dotdot_extension"]
