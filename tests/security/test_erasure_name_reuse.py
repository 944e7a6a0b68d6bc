"""Attack: erase a user and sign up again with the name, to take over what the old user left running or stored.

Before the fix, erasure left the user's Dask clusters running and freed the name at once; the gateway authorises by
name, so whoever signed up under the name next was handed the old user's running cluster (and, in Docker mode, the
old home volume, still mounted by that cluster). Run for real on the local-mode platform: the victim leaves a
cluster running and a file in the home, asks for erasure, and the attacker signs up under the same name (while the
erasure runs and after it has finished) and then, from inside their own new server (the server's environment and
token, as a notebook has them), tries to list, look up and connect to the old cluster and to read the old file.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx
import pytest

from polartep_hub.accounts.legal import LegalLibrary
from tests.helpers.erasure import START_CLUSTER_AND_LEAVE_IT, erase_me, gateway_records, running
from tests.helpers.gateway import gateway_api
from tests.helpers.inside_server import run_as_user_server
from tests.helpers.servers import put_file
from tests.helpers.signup import sign_up, token_by_password

pytestmark = pytest.mark.hub

CURRENT = LegalLibrary.load().current_versions()


FROM_THE_NEW_SERVER = """
import json, os
from dask_gateway import Gateway
old = {old!r}
gateway = Gateway()
out = {{"listed": [c.name for c in gateway.list_clusters()]}}
try:
    gateway.connect(old)
    out["connect"] = "connected"
except Exception as error:
    out["connect"] = type(error).__name__ + ": " + str(error)[:200]
home = os.environ.get("HOME") or os.getcwd()
out["old_file"] = os.path.exists(os.path.join(home, "private.txt"))
out["home_entries"] = sorted(e for e in os.listdir(home) if not e.startswith("."))
print(json.dumps(out))
"""


def test_a_namesake_gets_neither_the_old_cluster_nor_the_old_files(platform):
    name = f"reuse{secrets.token_hex(3)}"
    victim_token = platform.create_user(name, plan="trial")
    platform.spawn(name, victim_token, {"profile": "interactive"})
    put_file(platform, name, victim_token, "private.txt", "the victim's notes")
    old_cluster = run_as_user_server(platform, name, victim_token, START_CLUSTER_AND_LEAVE_IT)["name"]
    state = Path(platform.settings.state_path)
    pids = gateway_records(state, old_cluster)["pids"]

    # The attacker signs up under the name while the erasure runs (it stops the cluster first, which takes a moment).
    erased: dict = {}
    erasure = threading.Thread(
        target=lambda: erased.setdefault("response", erase_me(platform, name, victim_token))
    )
    erasure.start()
    attempts = []
    while erasure.is_alive():
        attempts.append(sign_up(platform, name))
        if attempts[-1].status_code == 201:
            break
    erasure.join()
    assert erased["response"].status_code == 200, f"{erased['response'].text}\n{platform.log_tail()}"
    refused = [r for r in attempts if r.status_code != 201]
    assert refused, "the erasure finished before a sign-up could be tried"
    # Each attempt is refused: "is taken" before the erasure request is recorded, "is being erased" after.
    assert [r.status_code for r in refused] == [409] * len(refused)
    assert all("is taken" in r.text or "is being erased" in r.text for r in refused), [
        r.text for r in refused
    ]
    assert any("is being erased" in r.text for r in refused), [r.text for r in refused]

    # Once the erasure has finished, the name is free: the attacker signs up, is approved and logs in.
    if attempts[-1].status_code != 201:
        r = sign_up(platform, name)
        assert r.status_code == 201, r.text
    export = platform.api("GET", f"/services/platform/api/v1/accounts/{name}/export", platform.admin_token)
    # A sign-up that raced the end of the erasure was taken only after it: the new account is younger.
    assert export.json()["account"]["created_at"] >= erased["response"].json()["erased_at"]
    approved = platform.api(
        "POST", f"/services/platform/api/v1/accounts/{name}/approve", platform.admin_token
    )
    assert approved.status_code == 200, approved.text
    attacker_token = token_by_password(platform, name)
    platform.accept_current_terms(attacker_token)
    platform.spawn(name, attacker_token, {"profile": "interactive"})

    seen = run_as_user_server(platform, name, attacker_token, FROM_THE_NEW_SERVER.format(old=old_cluster))

    # Attempted: list the old cluster, connect to it by name, read the old file, find anything in the home.
    assert seen["listed"] == []
    # The gateway moved the old records to the erased account's pseudonym: the namesake may not touch them.
    assert seen["connect"].startswith("ClientResponseError: 403"), seen["connect"]
    assert seen["old_file"] is False
    assert seen["home_entries"] == []
    # Looked up by name through the gateway's REST API (even stopped clusters' records): not this user's.
    assert gateway_api(platform, "GET", f"clusters/{old_cluster}", attacker_token).status_code == 403
    stopped = gateway_api(platform, "GET", "clusters/?status=STOPPED", attacker_token)
    assert stopped.status_code == 200 and old_cluster not in stopped.json()
    # The old cluster's processes are gone, so nothing is left to reach by address either.
    assert [pid for pid in pids if running(pid)] == []
    assert platform.api("GET", f"/user/{name}/api/contents/private.txt", attacker_token).status_code == 404
    platform.stop_server(name)


def test_the_gateway_platform_routes_refuse_user_tokens(platform, new_user):
    """The admin path that erasure uses to stop another user's clusters: a user's token (admin or not) is refused."""
    user, token = new_user(plan="trial")
    base = f"http://127.0.0.1:{platform.settings.gateway_api_port}/api/v1/platform/users/{user}/clusters"
    for attempt in (token, platform.admin_token):
        r = httpx.delete(base, headers={"Authorization": f"token {attempt}"}, timeout=30)
        assert r.status_code == 403, r.text
    assert httpx.delete(base, timeout=30).status_code == 401
