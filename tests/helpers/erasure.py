"""Helpers for erasure tests: a Dask cluster left running from inside a user's server, and what the gateway's and
the platform's databases say about it afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

START_CLUSTER_AND_LEAVE_IT = """
import json
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster(shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
client.close()
print(json.dumps({"name": cluster.name}))
"""


def gateway_records(state: Path, cluster: str) -> dict:
    """The gateway's database about ``cluster``: its owner, status and the pids of its scheduler and workers."""
    with sqlite3.connect(f"file:{state / 'dask-gateway.sqlite'}?mode=ro", uri=True) as connection:
        cid, username, status, raw_state = connection.execute(
            "SELECT id, username, status, state FROM clusters WHERE name = ?", (cluster,)
        ).fetchone()
        workers = connection.execute(
            "SELECT state, status FROM workers WHERE cluster_id = ?", (cid,)
        ).fetchall()

    def pid(raw) -> int | None:
        value = json.loads(raw.decode() if isinstance(raw, bytes) else raw or "{}").get("pid")
        return int(value) if value else None

    return {
        "username": username,
        "status": status,
        "pids": [p for p in [pid(raw_state), *(pid(w[0]) for w in workers)] if p],
        "worker_statuses": [w[1] for w in workers],
    }


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, the gateway, reaps it later).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def ledger_rows(state: Path, cluster: str) -> list[tuple[str, str, str | None]]:
    """(account name, kind, stopped_at) of the usage intervals of ``cluster``'s scheduler and workers."""
    with sqlite3.connect(f"file:{state / 'platform.sqlite'}?mode=ro", uri=True) as connection:
        return connection.execute(
            "SELECT account_name, kind, stopped_at FROM usage_intervals WHERE source_key = ? OR source_key LIKE ?",
            (cluster, f"{cluster}/%"),
        ).fetchall()


def erase_me(platform, user: str, token: str):
    return platform.api(
        "DELETE",
        "/services/platform/api/v1/me",
        token,
        json={"confirm": user, "processors": "withdraw"},
        timeout=180,
    )
