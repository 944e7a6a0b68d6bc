"""Metering of Dask clusters through the real hub, gateway and platform service (meter every second).

Specification: a cluster scaled to 2 workers shows, in the user's usage (``GET .../users/{name}/usage``), one open
scheduler interval and two open worker intervals with the reserved cores and memory; once the cluster stops, all
are closed. When the platform service is killed while workers start and stop, and the gateway is killed too, the
hub restarts both and the ledger then matches the gateway's own records exactly: every scheduler and worker once,
with the gateway's start and stop times, nothing missing, nothing counted twice.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

import pytest

from polartep_hub.usage.meters.gateway import gateway_engine, read_gateway_processes
from tests.harness import RunningPlatform, wait_for
from tests.helpers.gateway import gateway_api, gateway_pid
from tests.helpers.quota import service_pid, usage

pytestmark = pytest.mark.hub

GIB = 2**30


@pytest.fixture(scope="module")
def metered_platform(tmp_path_factory):
    with RunningPlatform(
        tmp_path_factory.mktemp("gateway-meter"), extra_env={"POLARTEP_GATEWAY_METER_INTERVAL": "1"}
    ).running() as running:
        yield running


def by_key(body: dict) -> dict[str, dict]:
    keys = [i["source_key"] for i in body["intervals"]]
    assert len(keys) == len(set(keys)), f"an interval is counted twice: {keys}"
    return {i["source_key"]: i for i in body["intervals"]}


def start_cluster(platform, token: str) -> str:
    r = gateway_api(platform, "POST", "clusters/", token, json={"cluster_options": {}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]

    def running() -> bool:
        return gateway_api(platform, "GET", f"clusters/{name}", token).json()["status"] == "RUNNING"

    wait_for(running, 60, interval=0.2, what="the cluster to run")
    return name


def scale(platform, token: str, name: str, count: int) -> None:
    r = gateway_api(platform, "POST", f"clusters/{name}/scale", token, json={"count": count})
    assert r.status_code == 200, r.text


def gateway_records(platform, cluster: str) -> dict:
    """The gateway's own records of the cluster's scheduler and workers (the ground truth)."""
    engine = gateway_engine(f"sqlite:///{platform.settings.state_path / 'dask-gateway.sqlite'}")
    try:
        found = read_gateway_processes(engine, None)
    finally:
        engine.dispose()
    return {p.source_key: p for p in found if p.source_key.split("/")[0] == cluster}


def running_workers(platform, cluster: str) -> int:
    return sum(1 for k, p in gateway_records(platform, cluster).items() if "/" in k and p.stopped_at is None)


def iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def test_a_cluster_scaled_to_two_workers_is_metered_and_closed_when_it_stops(metered_platform):
    platform = metered_platform
    user = "meter1"
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token)
    scale(platform, token, name, 2)

    def three_open():
        found = by_key(usage(platform, user, token))
        mine = {k: v for k, v in found.items() if k.split("/")[0] == name}
        return mine if len(mine) == 3 and all(i["stopped_at"] is None for i in mine.values()) else None

    mine = wait_for(three_open, 90, interval=0.5, what="a scheduler and two workers in the usage")
    kinds = sorted(i["kind"] for i in mine.values())
    assert kinds == ["dask-scheduler", "dask-worker", "dask-worker"]
    for interval in mine.values():
        assert (interval["cores"], interval["memory_bytes"]) == (
            1,
            2 * GIB,
        )  # default worker, scheduler: 1 core, 2 GiB

    assert gateway_api(platform, "DELETE", f"clusters/{name}", token).status_code == 204

    def all_closed():
        found = by_key(usage(platform, user, token))
        mine = {k: v for k, v in found.items() if k.split("/")[0] == name}
        return mine if all(i["stopped_at"] is not None for i in mine.values()) else None

    closed = wait_for(all_closed, 90, interval=0.5, what="the intervals to close")
    assert len(closed) == 3
    truth = gateway_records(platform, name)
    for key, interval in closed.items():
        assert iso(interval["started_at"]) == truth[key].started_at
        assert iso(interval["stopped_at"]) == truth[key].stopped_at
        assert interval["core_seconds"] > 0


def test_killing_the_service_and_the_gateway_loses_nothing_and_counts_nothing_twice(metered_platform):
    platform = metered_platform
    user = "meter2"
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token)
    scale(platform, token, name, 2)
    wait_for(lambda: len(by_key(usage(platform, user, token))) == 3, 90, interval=0.5, what="3 intervals")

    old_service = service_pid(platform)
    assert old_service
    os.kill(old_service, signal.SIGKILL)
    # While the service is down: two more workers start, then three stop.
    scale(platform, token, name, 4)
    wait_for(lambda: running_workers(platform, name) == 4, 90, interval=0.3, what="4 workers")
    scale(platform, token, name, 1)
    wait_for(lambda: running_workers(platform, name) == 1, 90, interval=0.3, what="1 worker left")
    # And the gateway dies too (its running cluster survives it).
    old_gateway = gateway_pid(platform)
    os.kill(old_gateway, signal.SIGKILL)

    def both_back() -> bool:
        service, gateway = service_pid(platform), gateway_pid(platform)
        return bool(service and gateway and service != old_service and gateway != old_gateway)

    wait_for(both_back, 120, interval=0.5, what="the hub to restart the platform service and the gateway")
    wait_for(
        lambda: platform.api("GET", "/services/platform/health").status_code == 200, 60, what="service health"
    )

    def gateway_reports_the_cluster() -> bool:
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        return r.status_code == 200 and r.json()["status"] == "RUNNING"

    wait_for(
        gateway_reports_the_cluster, 60, interval=0.5, what="the restarted gateway to report the cluster"
    )

    def ledger_matches_gateway():
        truth = gateway_records(platform, name)
        found = {k: v for k, v in by_key(usage(platform, user, token)).items() if k.split("/")[0] == name}
        if set(found) != set(truth):
            return None
        for key, process in truth.items():
            if (iso(found[key]["started_at"]), iso(found[key]["stopped_at"])) != (
                process.started_at,
                process.stopped_at,
            ):
                return None
        return truth

    truth = wait_for(
        ledger_matches_gateway, 60, interval=0.5, what="the ledger to match the gateway's records"
    )
    assert len(truth) == 1 + 4  # the scheduler and every worker that ever ran, each once
    assert sum(1 for p in truth.values() if p.stopped_at is None) == 2  # the scheduler and the last worker

    assert gateway_api(platform, "DELETE", f"clusters/{name}", token).status_code == 204
    wait_for(
        lambda: all(i["stopped_at"] for i in by_key(usage(platform, user, token)).values()),
        90,
        interval=0.5,
        what="every interval to close",
    )
    assert ledger_matches_gateway()
