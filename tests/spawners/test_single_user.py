"""Local mode without root is single-user (``spawners/single_user.py``): the decision, and one real platform; and
the start-up check that users' accounts can reach the platform's venv (``platform_files.py``).

The tests run as root, so the real platform simulates a start without root with ``POLARTEP_LOCAL_ISOLATION=
single-user`` (the setting a start without root gets from ``auto``; ``isolates_users`` is the one place that reads
the euid).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import types
from pathlib import Path

import pytest
from tornado.web import HTTPError

from polartep_hub.hub_config import existing_account_names
from polartep_hub.platform_files import environment_problem, untraversable_folders
from polartep_hub.settings import PlatformSettings
from polartep_hub.spawners.local import LocalProfileSpawner
from polartep_hub.spawners.single_user import (
    HOW_TO_SERVE_MORE_USERS,
    isolates_users,
    local_mode_refusal,
    single_user_refusal,
)
from tests.harness import RunningPlatform


@pytest.mark.parametrize(
    "setting, root, expected",
    [
        ("auto", True, True),
        ("auto", False, False),
        ("system-users", True, True),
        ("system-users", False, True),  # asked for: start-up then fails for want of root (settings.problems)
        ("single-user", True, False),
        ("single-user", False, False),
    ],
)
def test_who_runs_users_as_system_users(setting, root, expected):
    assert isolates_users(setting, running_as_root=root) is expected


def test_single_user_mode_refuses_open_sign_up():
    refusal = local_mode_refusal(signup=True, account_names=["admin"], admin_user="admin")
    assert (
        refusal == f"sign-up is open (POLARTEP_SIGNUP=1). {HOW_TO_SERVE_MORE_USERS} Or set POLARTEP_SIGNUP=0."
    )
    assert "POLARTEP_MODE=docker" in refusal and "start the platform as root" in refusal


def test_single_user_mode_refuses_other_accounts_and_names_them():
    refusal = local_mode_refusal(signup=False, account_names=["admin", "bob", "alice"], admin_user="admin")
    assert refusal.startswith("accounts other than the administrator 'admin' exist (alice, bob). ")
    assert local_mode_refusal(signup=False, account_names=["admin"], admin_user="admin") is None
    assert local_mode_refusal(signup=False, account_names=[], admin_user="admin") is None


def test_only_the_administrator_is_served():
    assert single_user_refusal("admin", "admin") is None
    assert single_user_refusal("bob", "admin") == (
        f"'bob' cannot be served: only the administrator 'admin' can. {HOW_TO_SERVE_MORE_USERS}"
    )


def test_system_users_without_root_is_a_settings_problem(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    settings = PlatformSettings(mode="local", state_dir=str(tmp_path), local_isolation="system-users")
    assert any(p.startswith("local_isolation=system-users needs root") for p in settings.problems())


def test_homes_inside_the_state_folder_are_a_settings_problem(tmp_path):
    settings = PlatformSettings(
        mode="local",
        state_dir=str(tmp_path),
        local_isolation="system-users",
        homes_dir=str(tmp_path / "users"),
    )
    assert f"homes_dir {str(tmp_path / 'users')!r} lies inside state_dir" in " ".join(settings.problems())


def test_existing_accounts_are_read_from_both_databases(tmp_path):
    for name, table, users in (
        ("platform.sqlite", "accounts", ["admin", "bob"]),
        ("hub.sqlite", "users", ["eve"]),
    ):
        with sqlite3.connect(tmp_path / name) as connection:
            connection.execute(f"CREATE TABLE {table} (name TEXT)")
            connection.executemany(f"INSERT INTO {table} VALUES (?)", [(u,) for u in users])
    settings = PlatformSettings(
        state_dir=str(tmp_path),
        service_db_url=f"sqlite:///{tmp_path / 'platform.sqlite'}",
        hub_db_url=f"sqlite:///{tmp_path / 'hub.sqlite'}",
    )
    assert existing_account_names(settings) == {"admin", "bob", "eve"}
    fresh = PlatformSettings(state_dir=str(tmp_path / "fresh"))
    assert existing_account_names(fresh) == set()  # before the first start: no database, none created


@pytest.mark.hub
def test_a_single_user_platform_refuses_sign_up_other_accounts_and_other_users(tmp_path):
    single_user = {"POLARTEP_LOCAL_ISOLATION": "single-user"}
    refused = RunningPlatform(tmp_path / "open", extra_env={**single_user, "POLARTEP_SIGNUP": "1"})
    with pytest.raises(RuntimeError, match="the hub exited with 1") as stopped:
        refused.start()
    refused.stop()
    assert "local mode is single-user here and cannot start: sign-up is open (POLARTEP_SIGNUP=1)" in str(
        stopped.value
    )

    platform = RunningPlatform(tmp_path / "closed", extra_env={**single_user, "POLARTEP_SIGNUP": "0"})
    with platform.running():
        r = platform.api(
            "POST", "/services/platform/api/v1/accounts", platform.admin_token, json={"name": "bob"}
        )
        assert r.status_code == 409
        assert r.json()["detail"].startswith("'bob' cannot be served: only the administrator 'admin' can.")
        # A hub user made behind the service's back gets no server either.
        assert platform.api("POST", "/hub/api/users/eve", platform.admin_token).status_code == 201
        r = platform.api("POST", "/hub/api/users/eve/server", platform.admin_token, json={})
        assert r.status_code == 403
        assert r.json()["message"].startswith("'eve' cannot be served: only the administrator 'admin' can.")
        # The administrator is served, as the platform's own user, with a home in the homes folder.
        platform.spawn("admin", platform.admin_token)
        assert platform.home_of("admin").is_dir()
        platform.stop_server("admin")
        platform.stop_hub()
        # With another account present, the platform refuses to start again.
        with pytest.raises(RuntimeError, match="the hub exited with 1") as stopped:
            platform.start_hub()
        assert "accounts other than the administrator 'admin' exist (eve)" in str(stopped.value)


def test_start_up_names_the_folders_that_keep_users_from_the_venv(tmp_path):
    venv = tmp_path / "clone" / ".venv"
    venv.mkdir(parents=True)
    os.chmod(venv, 0o755)
    os.chmod(tmp_path / "clone", 0o700)  # as a clone under /root, or a CI workspace of mode 0700, would be
    problem = environment_problem(venv)
    assert problem.startswith(f"users' system accounts cannot reach the platform's Python environment {venv}")
    fix = problem.split("run `chmod o+x ", 1)[1].split("`", 1)[0].split()
    assert str(tmp_path / "clone") in fix and str(venv) not in fix  # pytest's own folders are 0700 too
    assert "/opt/polartep" in problem and "POLARTEP_MODE=docker" in problem
    assert untraversable_folders(Path("/usr/bin")) == []


def test_the_spawner_refuses_anyone_but_the_administrator_before_asking_the_service():
    user = types.SimpleNamespace(name="eve", id=2, url="/user/eve/", admin=False)
    spawner = LocalProfileSpawner(user=user, isolate=False, single_user_name="admin")
    with pytest.raises(HTTPError) as refused:
        # No platform service is running: the refusal must come first.
        asyncio.run(spawner.apply_user_options(spawner, {}))
    assert refused.value.status_code == 403
    assert refused.value.log_message == single_user_refusal("eve", "admin")
