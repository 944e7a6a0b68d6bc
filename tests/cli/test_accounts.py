"""``polartep accounts …`` against a running platform: list, show, set-plan, subscribe, unsubscribe, and errors.

Specification: the commands reach the running platform service through the proxy with the hub's internal token
(read from the state folder, never created), print what changed, and exit 1 with one clear line when a request is
refused (the service's own message) or the platform is not running (saying how to start it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import free_port

POLARTEP = str(Path(sys.executable).parent / "polartep")


def polartep(platform, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("POLARTEP_")  # the platform's own settings, not the developer's
    }
    base.update(
        {
            "POLARTEP_STATE_DIR": platform.env["POLARTEP_STATE_DIR"],
            "POLARTEP_PUBLIC_URL": platform.env["POLARTEP_PUBLIC_URL"],
        }
    )
    return subprocess.run(
        [POLARTEP, "accounts", *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60
    )


def entitlements(platform, user: str) -> dict:
    r = platform.api("GET", f"/services/platform/api/v1/users/{user}/entitlements", platform.admin_token)
    return r.json()


def test_list_and_show(platform, new_user):
    user, _ = new_user(plan="standard")
    listed = polartep(platform, "list")
    assert listed.returncode == 0, listed.stderr
    assert "admin (admin)" in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if line.startswith(user + " "))
    assert "standard" in row

    shown = polartep(platform, "show", user)
    assert shown.returncode == 0, shown.stderr
    assert f"account:        {user}" in shown.stdout
    assert "plan:           standard (Standard) since " in shown.stdout
    assert "may start:      interactive, small, medium, large" in shown.stdout

    as_json = json.loads(polartep(platform, "show", user, "--json").stdout)
    assert as_json["name"] == user and as_json["plan"] == "standard"


def test_set_plan_subscribe_and_unsubscribe_change_what_the_user_may_start(platform, new_user):
    user, _ = new_user(plan="trial")
    result = polartep(platform, "set-plan", user, "standard")
    assert result.returncode == 0, result.stderr
    assert "plan:           standard" in result.stdout
    assert entitlements(platform, user)["plan"] == "standard"

    result = polartep(platform, "subscribe", user, "ml")
    assert result.returncode == 0, result.stderr
    assert "subscriptions:  ml" in result.stdout
    assert "ml" in entitlements(platform, user)["profiles"]

    result = polartep(platform, "unsubscribe", user, "ml")
    assert result.returncode == 0, result.stderr
    assert "ended:          ml (" in result.stdout
    assert "ml" not in entitlements(platform, user)["profiles"]


def test_refused_requests_exit_1_with_the_services_message(platform, new_user):
    user, _ = new_user(plan="trial")
    cases = [
        (("set-plan", user, "gold"), "unknown plan 'gold'; known plans: trial, standard, large"),
        (("subscribe", user, "gpu-farm"), "unknown subscription 'gpu-farm'; known subscriptions: dev-small"),
        (("show", "ghost"), "no account 'ghost'"),
        (("unsubscribe", user, "ml"), "no active subscription 'ml'"),
    ]
    for args, message in cases:
        result = polartep(platform, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("polartep accounts: ") and message in result.stderr, result.stderr
    polartep(platform, "subscribe", user, "ml")
    twice = polartep(platform, "subscribe", user, "ml")
    assert twice.returncode == 1 and "already holds the subscription 'ml'" in twice.stderr
    assert entitlements(platform, user)["plan"] == "trial"


def test_a_platform_that_is_not_running_is_named_with_how_to_start_it(platform, tmp_path):
    (tmp_path / "hub-service-token").write_text("some-token\n")
    result = polartep(
        platform,
        "list",
        env={"POLARTEP_STATE_DIR": str(tmp_path), "POLARTEP_PUBLIC_URL": f"http://127.0.0.1:{free_port()}"},
    )
    assert result.returncode == 1
    assert "the platform is not running at http://127.0.0.1:" in result.stderr
    assert "polartep up" in result.stderr


def test_a_state_folder_without_a_platform_is_named_and_no_token_is_made(platform, tmp_path):
    result = polartep(platform, "list", env={"POLARTEP_STATE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert f"no platform has run from the state folder {tmp_path}" in result.stderr
    assert not (tmp_path / "hub-service-token").exists()


def test_a_wrong_token_is_refused_with_a_hint(platform):
    result = polartep(platform, "list", env={"POLARTEP_HUB_SERVICE_TOKEN": "not-the-hubs-token"})
    assert result.returncode == 1
    assert "refused the hub's token" in result.stderr
