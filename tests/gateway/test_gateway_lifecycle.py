"""Cluster lifecycle on a platform of its own with a short idle timeout: idle clusters stop; a gateway killed and
restarted by the hub finds its running clusters again and leaves no worker process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import RunningPlatform, wait_for
from tests.helpers.gateway import gateway_api, gateway_pid
from tests.helpers.inside_server import run_as_user_server, server_pid, server_process

pytestmark = pytest.mark.hub

IDLE_TIMEOUT = 6


@pytest.fixture(scope="module")
def short_idle_platform(tmp_path_factory):
    with RunningPlatform(
        tmp_path_factory.mktemp("gateway-idle"), extra_env={"POLARTEP_DASK_IDLE_TIMEOUT": str(IDLE_TIMEOUT)}
    ).running() as running:
        yield running


def processes_in(folder: Path) -> set[int]:
    """Pids of processes whose working directory lies in ``folder`` (cluster processes run in their workdir)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


START_TWO_WORKERS = """
import json
from dask_gateway import Gateway
cluster = Gateway().new_cluster(shutdown_on_close=False)
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=60)
print(json.dumps({"name": cluster.name}))
"""


def test_a_cluster_left_idle_is_stopped(short_idle_platform):
    platform = short_idle_platform
    user = "idle1"
    token = platform.create_user(user, plan="trial")
    name = run_as_user_server(platform, user, token, START_TWO_WORKERS)["name"]
    workdir = Path(platform.settings.dask_clusters_dir) / name

    def stopped() -> bool:
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        return r.status_code == 404 or r.json()["status"] in ("STOPPED", "FAILED")

    wait_for(stopped, IDLE_TIMEOUT + 40, interval=1, what="the idle cluster to stop")
    wait_for(lambda: not processes_in(workdir), 30, interval=0.5, what="the cluster's processes to exit")


def test_a_gateway_restart_does_not_orphan_running_workers(short_idle_platform):
    platform = short_idle_platform
    user = "restart1"
    token = platform.create_user(user, plan="trial")
    platform.spawn(user, token)
    # A client stays connected (as a notebook's would), so the short idle timeout does not stop the cluster.
    server = server_process(server_pid(platform, user))  # the client runs as the user's server does
    holder = subprocess.Popen(
        [sys.executable, "-c", START_TWO_WORKERS + "import sys, time; sys.stdout.flush(); time.sleep(300)\n"],
        env=server.environment,
        cwd=server.cwd,
        user=server.uid,
        group=server.gid,
        extra_groups=server.groups,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        name = json.loads(holder.stdout.readline())["name"]
        check_restart_keeps_workers(platform, token, name)
    finally:
        holder.kill()
        holder.wait()


def check_restart_keeps_workers(platform, token: str, name: str) -> None:
    workdir = Path(platform.settings.dask_clusters_dir) / name
    before = processes_in(workdir)
    assert len(before) >= 3, before  # scheduler, two workers (each with its nanny)

    old = gateway_pid(platform)
    assert old
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (gateway_pid(platform) or old) != old, 60, interval=0.5, what="the hub to restart the gateway"
    )

    def running_again() -> bool:
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        return r.status_code == 200 and r.json()["status"] == "RUNNING"

    # The restarted gateway reads its database and checks each cluster's scheduler before it says RUNNING; on the
    # shared 2-core machine under a full suite that took over 60 s once (alone: under 10 s).
    wait_for(running_again, 180, interval=0.5, what="the restarted gateway to report the cluster")
    assert processes_in(workdir) == before  # the same processes, none started twice, none lost

    r = gateway_api(platform, "DELETE", f"clusters/{name}", token)
    assert r.status_code == 204, r.text
    wait_for(lambda: not processes_in(workdir), 60, interval=0.5, what="every cluster process to exit")
