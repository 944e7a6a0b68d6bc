"""Dask clusters under the CPU-hour allowance (``gateway/quota_allowance.py``, checked inside the backend).

Specification: with what is left of the month and what runs outside Dask as the service publishes it, a new
cluster's scheduler, ``scale(n)`` and every worker added are admitted only when what is left (less what ran since
the fetch) covers everything running plus the request for the horizon; refusals say what is exhausted, by how much
and when it renews; concurrent scale-ups of one user admit only what fits; with a real hub, gateway and service a
user whose allowance is spent cannot create a cluster.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import JobStatus

from polartep_hub.gateway.quota_allowance import Allowance, AllowanceUnavailable
from tests.harness import wait_for
from tests.helpers.gateway import _Backend, _cluster, gateway_api
from tests.helpers.inside_server import run_inside_server
from tests.helpers.quota import spend

RUN = JobStatus.RUNNING
RENEWS = "Your allowance renews on 2027-01-01 00:00 UTC."


def allowance(
    left_hours: float, other_cores: float = 0, horizon_minutes: float = 15, ended=False
) -> Allowance:
    return Allowance(
        left_core_seconds=left_hours * 3600,
        other_cores=other_cores,
        horizon_seconds=horizon_minutes * 60,
        plan_ended=ended,
        message=RENEWS,
        fetched_at=time.monotonic(),
    )


def test_the_room_is_what_is_left_over_the_horizon_less_what_runs():
    # 2 CPU-hours left, 15 minutes: 8 cores may run; 3 run outside Dask, 1 in Dask: 4 more fit.
    a = allowance(2, other_cores=3)
    assert a.room(1, a.fetched_at) == pytest.approx(4)
    assert a.refusal(1, 4, "scale(4)", a.fetched_at) is None
    message = a.refusal(1, 5, "scale(5) (5 more workers)", a.fetched_at)
    assert message == (
        "Your CPU-hours are exhausted: 2.00 CPU-hours left this month. Your running work (4 cores) and "
        "scale(5) (5 more workers) (5 cores) need 2.25 CPU-hours for the next 15 minutes: 0.25 CPU-hours short. "
        + RENEWS
    )
    # What ran since the fetch is taken off: an hour later at 4 cores, 2 - 4 = nothing left.
    assert a.room(1, a.fetched_at + 3600) < 0


def test_an_ended_plan_admits_nothing():
    a = allowance(100, ended=True)
    assert a.refusal(0, 1, "a new cluster's scheduler", a.fetched_at).startswith(RENEWS)


class _Allowances:
    def __init__(self, value: Allowance) -> None:
        self.cached = {"alice": value}
        self.fetches = 0

    async def fetch(self, username: str) -> Allowance:
        self.fetches += 1
        await asyncio.sleep(
            0
        )  # a real fetch awaits: concurrent requests interleave here, never after the check
        return self.cached[username]

    def refresh_soon(self, username: str) -> None:
        pass


class _QuotaBackend(_Backend):
    def __init__(self, clusters, allowances) -> None:
        super().__init__(clusters)
        self.quota_allowances = allowances
        self.forwarded: list[dict] = []

    async def _forward(self, cluster, msg):
        self.forwarded.append(msg)


async def test_new_workers_stop_at_the_allowance_whatever_the_plan_leaves():
    # The scheduler (1 core) runs; the plan would leave room for 4 one-core workers (max_workers=4),
    # would fit... but the plan's max_workers=4 is tighter; with 1.01 CPU-hours left (4.04 cores) only 3 fit.
    cluster = _cluster("c", RUN, RUN, [])
    cluster.count = 4
    backend = _QuotaBackend([cluster], _Allowances(allowance(1.01)))
    await backend._check_cluster_scale(cluster)
    assert backend.db.created == ["new0", "new1", "new2"]


async def test_concurrent_scale_ups_of_one_user_admit_only_what_fits():
    # Two clusters of alice, each scheduler 1 core; 1.26 CPU-hours left: 5.04 cores for 15 minutes, 3 workers more.
    first, second = _cluster("a", RUN, RUN, []), _cluster("b", RUN, RUN, [])
    backend = _QuotaBackend([first, second], _Allowances(allowance(1.26)))
    first.count = second.count = 3
    await asyncio.gather(backend._check_cluster_scale(first), backend._check_cluster_scale(second))
    assert len(backend.db.created) == 3  # 2 schedulers + 3 workers = 5 cores


class _Unreachable(_Allowances):
    async def fetch(self, username: str) -> Allowance:
        raise AllowanceUnavailable("The platform service is not reachable; try again in a minute.")


async def test_while_the_service_is_down_the_last_allowance_holds_and_a_new_user_is_refused():
    backend = _QuotaBackend([_cluster("c", RUN, RUN, [])], _Unreachable(allowance(0.3)))
    held = await backend._fetch_allowance("alice")
    assert held is backend.quota_allowances.cached["alice"]
    backend.quota_allowances.cached.clear()
    with pytest.raises(
        PublicException, match="^The platform service is not reachable; try again in a minute.$"
    ):
        await backend._fetch_allowance("alice")


@pytest.mark.hub
def test_a_user_whose_allowance_is_spent_cannot_create_a_cluster(platform, new_user):
    user, token = new_user(plan="trial")
    spend(platform, user, 499.9)
    r = gateway_api(platform, "POST", "clusters/", token, json={"cluster_options": {}})
    assert r.status_code == 422, r.text
    message = r.text
    assert "Your CPU-hours are exhausted: 0.10 CPU-hours left this month." in message
    assert "a new cluster's scheduler (1 cores) need 0.25 CPU-hours for the next 15 minutes: 0.15" in message
    assert "Your allowance renews on " in message


TWENTY_AT_ONCE = """
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
from dask_gateway import Gateway
gateway = Gateway()
first = gateway.new_cluster(shutdown_on_close=False)

def create(_):
    try:
        return ["created", gateway.new_cluster(shutdown_on_close=False).name]
    except Exception as e:
        return ["refused", str(e)]

def scale(_):
    try:
        first.scale(1)
        return ["scaled", first.name]
    except Exception as e:
        return ["refused", str(e)]

with ThreadPoolExecutor(20) as pool:
    answers = list(pool.map(lambda i: create(i) if i % 2 else scale(i), range(20)))
print(json.dumps({"answers": answers, "first": first.name}), flush=True)
os._exit(0)  # the clusters live on (shutdown_on_close=False); the test counts and stops them from outside
"""


def open_dask(platform, user: str, token: str) -> list[tuple[str, float]]:
    usage = platform.api("GET", f"/services/platform/api/v1/users/{user}/usage", token).json()
    return sorted(
        (i["kind"], i["cores"])
        for i in usage["intervals"]
        if i["kind"].startswith("dask") and not i["stopped_at"]
    )


@pytest.mark.hub
@pytest.mark.timeout(400)  # up to four schedulers and a worker start on a shared machine
def test_twenty_concurrent_creations_and_scale_ups_through_the_real_gateway_admit_only_what_fits(
    platform, new_user
):
    # 1.30 CPU-hours left: 5.2 cores for the 15-minute horizon. The user's Interactive server holds 1, the first
    # cluster's scheduler 1: 3 more cores fit. Ten new clusters (1 core each) and ten scale(1) of the first cluster
    # (its one worker, 1 core) race for them: exactly 3 are admitted, whatever the order.
    user, token = new_user(plan="trial")
    platform.spawn(user, token, {"profile": "interactive"})
    clusters: list[str] = []
    try:
        spend(platform, user, 500 - 1.30)
        result = run_inside_server(platform, user, TWENTY_AT_ONCE, timeout=300)
        answers = result["answers"]
        clusters = [result["first"]] + [name for kind, name in answers if kind == "created"]
        created = len(clusters) - 1
        scaled = any(kind == "scaled" for kind, _ in answers)
        assert created + int(scaled) == 3, answers
        refused_creations = [message for kind, message in answers[1::2] if kind == "refused"]
        assert len(refused_creations) == 10 - created
        refusals = [message for kind, message in answers if kind == "refused"]
        assert all("Your CPU-hours are exhausted" in message for message in refusals), refusals
        # What runs, as the gateway meter records it: the schedulers and (if scaled) one worker, never more.
        expected = sorted([("dask-scheduler", 1.0)] * len(clusters) + [("dask-worker", 1.0)] * int(scaled))
        wait_for(
            lambda: open_dask(platform, user, token) == expected, 180, interval=1, what="the meter to see it"
        )
        time.sleep(5)
        assert open_dask(platform, user, token) == expected
        listed = gateway_api(platform, "GET", "clusters/", token).json()
        assert sorted(listed) == sorted(clusters)
    finally:
        for name in clusters:
            gateway_api(platform, "DELETE", f"clusters/{name}", token)
        platform.stop_server(user)
