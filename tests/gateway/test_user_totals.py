"""The plan bounds a user's total over all their Dask clusters, and ``adapt`` stays inside the bounds.

Specification (trial plan: max_workers=4, max_cores=8, max_worker_memory=8 GiB): a second cluster gets only what
the first leaves; ``scale(n)`` beyond that is refused naming the bound; a new cluster whose scheduler does not fit
is refused naming the bound; ``adapt(minimum, maximum)`` with a maximum beyond the plan is clipped with a warning
naming the limit, and under load never runs more workers than the plan leaves, in one cluster or across clusters.
"""

from __future__ import annotations

import pytest
from dask_gateway_server.backends.db_base import JobStatus

from polartep_hub.gateway.user_totals import (
    Reservation,
    UserBounds,
    cluster_reservation,
    room_for_workers,
    scheduler_fits,
)
from tests.helpers.gateway import GIB, SMALL_WORKERS, TRIAL_CONFIG, _Backend, _cluster, gateway_api
from tests.helpers.inside_server import run_as_user_server

TRIAL = UserBounds(plan="trial", max_workers=4, max_cores=8, max_memory=4 * 8 * GIB)


# --- the arithmetic -------------------------------------------------------------------------------------------------


def test_a_cluster_reserves_its_scheduler_and_its_workers():
    assert cluster_reservation(SMALL_WORKERS, 3) == Reservation(workers=3, cores=4, memory=8 * GIB)


def test_the_room_left_is_the_tightest_bound_and_names_it():
    others = cluster_reservation(SMALL_WORKERS, 3)
    room = room_for_workers(TRIAL, others, SMALL_WORKERS)
    assert (room.workers, room.bound) == (1, "max_workers=4")

    big = {**SMALL_WORKERS, "worker_cores": 3}
    room = room_for_workers(TRIAL, Reservation(), big)
    assert (room.workers, room.bound) == (2, "max_cores=8")  # (8 - 1 scheduler) // 3

    fat = {**SMALL_WORKERS, "worker_memory": 8 * GIB}
    room = room_for_workers(TRIAL, Reservation(), fat)
    assert room.workers == 3 and "max_workers x max_worker_memory" in room.bound  # (32 - 2) // 8


def test_no_room_is_zero_never_negative():
    full = Reservation(workers=6, cores=9, memory=40 * GIB)
    assert room_for_workers(TRIAL, full, SMALL_WORKERS).workers == 0


def test_a_scheduler_that_does_not_fit_is_refused_naming_the_bound():
    assert scheduler_fits(TRIAL, Reservation(workers=3, cores=7, memory=8 * GIB), SMALL_WORKERS) is None
    message = scheduler_fits(TRIAL, Reservation(workers=1, cores=8, memory=9 * GIB), SMALL_WORKERS)
    assert "max_cores=8" in message and "'trial'" in message


def test_clusters_from_before_the_totals_are_not_bounded():
    unbounded = UserBounds.from_config({"plan": ""})
    assert room_for_workers(unbounded, Reservation(workers=100), SMALL_WORKERS).workers > 100


# --- what counts: everything not yet gone, being stopped included ----------------------------------------------------


RUN, STOP, CLOSING = JobStatus.RUNNING, JobStatus.STOPPED, JobStatus.CLOSING


async def test_a_worker_being_stopped_still_counts_until_it_is_gone():
    # Worker 0 runs; worker 1 is being stopped (target STOPPED, status still RUNNING); worker 2 is gone.
    other = _cluster("other", RUN, RUN, [(RUN, RUN), (RUN, STOP), (STOP, STOP)])
    backend = _Backend([other])
    assert backend._other_reservations("alice", None) == cluster_reservation(TRIAL_CONFIG, 2)
    # So a second cluster has room for 4 - 2 workers, not 3.
    second = _cluster("second", RUN, RUN, [])
    backend.db.username_to_clusters["alice"]["second"] = second
    assert backend.room_in(second).workers == 2


async def test_a_cluster_being_stopped_still_counts_with_its_workers_until_it_is_gone():
    closing = _cluster("closing", CLOSING, STOP, [(RUN, STOP), (CLOSING, CLOSING)])
    gone = _cluster("gone", STOP, STOP, [(STOP, STOP)])
    backend = _Backend([closing, gone])
    assert backend._other_reservations("alice", None) == cluster_reservation(TRIAL_CONFIG, 2)


async def test_scaling_up_waits_for_this_clusters_stopping_workers_to_be_gone():
    # scale(4) -> scale(1) -> scale(4): three workers are still being stopped when the cluster wants 4 again.
    cluster = _cluster("c", RUN, RUN, [(RUN, RUN), (RUN, STOP), (RUN, STOP), (RUN, STOP)])
    cluster.count = 4
    backend = _Backend([cluster])
    await backend._check_cluster_scale(cluster)
    assert backend.db.created == []  # 4 still hold the plan's max_workers=4
    for worker in list(cluster.workers.values())[1:]:
        worker.status = STOP  # the three are gone now
    await backend._check_cluster_scale(cluster)
    assert backend.db.created == ["new0", "new1", "new2"]


# --- with the real gateway --------------------------------------------------------------------------------------------


def start_cluster(platform, token: str, options: dict | None = None):
    return gateway_api(platform, "POST", "clusters/", token, json={"cluster_options": options or {}})


HOLD_THREE = """
import json
from dask_gateway import Gateway
gateway = Gateway()
first = gateway.new_cluster(shutdown_on_close=False)
first.scale(3)
first.get_client().wait_for_workers(3, timeout=90)
print(json.dumps({"first": first.name}))
"""


@pytest.mark.hub
def test_a_second_cluster_gets_only_what_the_first_leaves(platform, new_user):
    user, token = new_user(plan="trial")
    first = run_as_user_server(platform, user, token, HOLD_THREE)["first"]
    try:
        result = run_as_user_server(
            platform,
            user,
            token,
            """
            import json
            from dask_gateway import Gateway
            second = Gateway().new_cluster()
            try:
                second.scale(2)
                refused = None
            except Exception as e:
                refused = f"{type(e).__name__}: {e}"
            second.scale(1)
            client = second.get_client()
            client.wait_for_workers(1, timeout=90)
            workers = len(client.scheduler_info()["workers"])
            second.shutdown()
            print(json.dumps({"refused": refused, "workers": workers}))
            """,
        )
        assert result["refused"] and result["refused"].startswith("GatewayClusterError")
        assert "max_workers=4" in result["refused"] and "at most 1" in result["refused"]
        assert result["workers"] == 1
    finally:
        gateway_api(platform, "DELETE", f"clusters/{first}", token)


@pytest.mark.hub
def test_a_new_cluster_whose_scheduler_does_not_fit_is_refused_naming_the_bound(platform, new_user):
    user, token = new_user(plan="trial")
    # One worker of 7 cores plus the scheduler's core: the plan's 8 cores are all reserved.
    first = run_as_user_server(
        platform,
        user,
        token,
        """
        import json
        from dask_gateway import Gateway
        cluster = Gateway().new_cluster(worker_cores=7, shutdown_on_close=False)
        cluster.scale(1)
        cluster.get_client().wait_for_workers(1, timeout=90)
        print(json.dumps({"name": cluster.name}))
        """,
    )["name"]
    try:
        r = start_cluster(platform, token)
        assert r.status_code == 422
        assert "max_cores=8" in r.json()["error"] and "'trial'" in r.json()["error"]
    finally:
        gateway_api(platform, "DELETE", f"clusters/{first}", token)


ADAPT_UNDER_LOAD = """
import json, time, warnings
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cluster.adapt(minimum=0, maximum=MAXIMUM)
client = cluster.get_client()
futures = client.map(lambda i: time.sleep(1.5) or i, range(60))
most = 0
deadline = time.time() + 30
while time.time() < deadline:
    most = max(most, len(client.scheduler_info()["workers"]))
    time.sleep(0.25)
total = sum(client.gather(futures))
client.close()
cluster.shutdown()
print(json.dumps({"most": most, "total": total, "warnings": [str(w.message) for w in caught]}))
"""


@pytest.mark.hub
def test_adapt_beyond_the_plan_is_clipped_with_a_warning_and_stays_inside(platform, new_user):
    user, token = new_user(plan="trial")
    result = run_as_user_server(platform, user, token, ADAPT_UNDER_LOAD.replace("MAXIMUM", "10"), timeout=240)
    assert any("limit of 4 workers" in w for w in result["warnings"]), result["warnings"]
    assert result["total"] == sum(range(60))
    assert 2 <= result["most"] <= 4  # it did scale up under load, and not past the plan


@pytest.mark.hub
def test_adapt_across_clusters_never_runs_more_than_the_plan_leaves(platform, new_user):
    user, token = new_user(plan="trial")
    first = run_as_user_server(platform, user, token, HOLD_THREE)["first"]
    try:
        result = run_as_user_server(
            platform, user, token, ADAPT_UNDER_LOAD.replace("MAXIMUM", "4"), timeout=240
        )
        assert result["total"] == sum(range(60))
        assert result["most"] == 1  # 4 workers in the plan, 3 held by the first cluster
    finally:
        gateway_api(platform, "DELETE", f"clusters/{first}", token)
