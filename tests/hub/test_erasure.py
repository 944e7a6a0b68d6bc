"""Erasing an account on the real platform (local mode): the user's servers stop, the hub user is deleted with every
token, the home folder and its files are gone, so is the user's system user, and the platform holds no account of
that name any more."""

from __future__ import annotations

import pwd
import secrets
import sqlite3
from pathlib import Path

from tests.harness import wait_for
from tests.helpers.erasure import erase_me
from tests.helpers.servers import put_file


def text_cells_mentioning(database: Path, needle: str) -> list[tuple[str, str]]:
    """(table, column) of every text cell of an SQLite database that contains ``needle`` (case-insensitive)."""
    found = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                query = f'SELECT count(*) FROM "{table}" WHERE lower(CAST("{column}" AS TEXT)) LIKE ?'
                if connection.execute(query, (f"%{needle.lower()}%",)).fetchone()[0]:
                    found.append((table, column))
    return found


def test_a_user_erases_their_account_with_running_servers(platform):
    # A name no other test's user contains, so that scanning the databases for it finds only this user.
    user = f"gdpr{secrets.token_hex(4)}"
    token = platform.create_user(user, plan="standard")
    platform.spawn(user, token, {"profile": "interactive"})
    platform.spawn(user, token, {"profile": "interactive"}, server="second")
    put_file(platform, user, token, "results.txt", "sea ice extent: 4.2 million km2")
    home = platform.home_of(user)
    assert (home / "results.txt").read_text().startswith("sea ice")
    system_user = home.name  # local mode as root: <prefix><user>, its home <homes>/<system user>
    assert pwd.getpwnam(system_user).pw_uid == home.stat().st_uid != 0
    assert platform.api("GET", "/services/platform/api/v1/me/export", token).json()["account_name"] == user
    # Removing one named server for good is not erasure: the home, shared by all servers, stays.
    platform.spawn(user, token, {"profile": "interactive"}, server="scratch")
    platform.stop_server(user, "scratch")
    removed = platform.api("DELETE", f"/hub/api/users/{user}/servers/scratch", token, json={"remove": True})
    assert removed.status_code in (202, 204), removed.text
    assert (home / "results.txt").exists()

    response = erase_me(platform, user, token)

    assert response.status_code == 200, f"{response.text}\n{platform.log_tail()}"
    assert response.json()["requested_by"] == "self"
    # The hub user is gone, so are its servers (both), its home, its system user and every token of it.
    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    assert not home.exists()
    assert system_user not in {entry.pw_name for entry in pwd.getpwall()}
    assert platform.api("GET", "/hub/api/user", token).status_code == 403
    assert platform.api("GET", "/services/platform/api/v1/me", token).status_code == 401
    assert platform.api("GET", f"/user/{user}/api/contents/results.txt", token).status_code != 200
    # The platform has no account of that name (the admin's view), and an erasure of it again is 404.
    export = platform.api("GET", f"/services/platform/api/v1/accounts/{user}/export", platform.admin_token)
    assert export.status_code == 404
    again = platform.api("DELETE", f"/services/platform/api/v1/accounts/{user}", platform.admin_token)
    assert again.status_code == 404
    # Neither the platform's database nor JupyterHub's holds the name any more.
    state = Path(platform.settings.state_path)
    assert text_cells_mentioning(state / "platform.sqlite", user) == []
    assert text_cells_mentioning(state / "jupyterhub.sqlite", user) == []


def test_an_admin_erases_an_account_and_the_configured_admin_is_refused(platform, new_user):
    user, token = new_user()
    platform.spawn(user, token, {"profile": "interactive"})
    home = platform.home_of(user)
    wait_for(home.exists, 10, what="the home folder")

    response = platform.api(
        "DELETE", f"/services/platform/api/v1/accounts/{user}", platform.admin_token, timeout=180
    )

    assert response.status_code == 200, f"{response.text}\n{platform.log_tail()}"
    assert response.json()["requested_by"] == "admin"
    assert not home.exists()
    assert home.name not in {entry.pw_name for entry in pwd.getpwall()}
    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    refused = platform.api("DELETE", "/services/platform/api/v1/accounts/admin", platform.admin_token)
    assert refused.status_code == 409
    assert "POLARTEP_ADMIN_USER" in refused.json()["detail"]


def test_erasure_stops_the_users_dask_cluster_and_server_first_and_closes_the_ledger(platform):
    from tests.helpers.erasure import START_CLUSTER_AND_LEAVE_IT, gateway_records, ledger_rows, running
    from tests.helpers.gateway import gateway_api
    from tests.helpers.inside_server import run_as_user_server

    user = f"gdprdask{secrets.token_hex(3)}"
    token = platform.create_user(user, plan="trial")
    platform.spawn(user, token, {"profile": "interactive"})
    cluster = run_as_user_server(platform, user, token, START_CLUSTER_AND_LEAVE_IT)["name"]
    state = Path(platform.settings.state_path)
    before = gateway_records(state, cluster)
    assert before["username"] == user and len(before["pids"]) == 2  # scheduler and one worker
    assert all(running(pid) for pid in before["pids"])
    home = platform.home_of(user)
    assert home.exists()

    response = erase_me(platform, user, token)

    assert response.status_code == 200, f"{response.text}\n{platform.log_tail()}"
    # The cluster was stopped by the erasure, before anything else: its processes are gone.
    after = gateway_records(state, cluster)
    assert after["status"] == 5  # dask-gateway's JobStatus.STOPPED
    assert [pid for pid in before["pids"] if running(pid)] == []
    # The gateway forgot the name: its records of the stopped cluster are under the pseudonym now.
    assert after["username"].startswith("erased-")
    assert text_cells_mentioning(state / "dask-gateway.sqlite", user) == []
    # Servers and home are gone; the ledger holds the cluster's scheduler and worker, closed, under the pseudonym.
    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    assert not home.exists()
    rows = ledger_rows(state, cluster)
    assert sorted(kind for _, kind, _ in rows) == ["dask-scheduler", "dask-worker"]
    assert {name for name, _, _ in rows} == {after["username"]}
    assert all(stopped is not None for _, _, stopped in rows)
    # The old token reaches no cluster any more: the hub no longer knows it (403 to the gateway), which dask-gateway
    # answers with its own 500 ("Permission failure verifying user's JupyterHub API token", in its log).
    assert gateway_api(platform, "GET", "clusters/", token).status_code == 500
