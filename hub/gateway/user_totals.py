"""Per-user totals over all of a user's Dask clusters: dask-gateway only bounds each cluster, the plan bounds the user.

``UserTotalsMixin`` goes in front of a database-backed dask-gateway backend (``DBBackendBase``). What a cluster
*reserves* is what the meter charges: its scheduler's cores and memory plus those of each worker that is not yet gone.
A worker (or cluster) is *gone* only once the gateway has recorded its ``status`` as STOPPED or FAILED, that is once
its process or container has been stopped; until then it counts, also while it is being stopped (``target`` already
STOPPED, ``status`` still RUNNING or CLOSING), because it still holds its cores and memory and the meter still
charges it (its interval closes at the recorded ``stop_time``). dask-gateway's ``JobStatus`` orders CREATED <
SUBMITTED < RUNNING < CLOSING < STOPPED < FAILED, so the rule is ``status < STOPPED``. The plan's ``dask`` block
bounds the sum over all the user's clusters that are not gone: workers (``max_workers``), cores (``max_cores``, schedulers included, as dask-gateway's own
``cluster_max_cores`` counts them) and memory (``max_workers x max_worker_memory``). Rules it guarantees:

* **Creating** a cluster is refused (HTTP 422, the client raises ``ValueError``) when its scheduler does not fit in
  what the user's other clusters leave; the message names the bound.
* **scale(n)** is refused (HTTP 409, ``GatewayClusterError``) when ``n`` workers would take the user past a bound,
  naming the bound and how many this cluster may have. (A request beyond the per-cluster bound is first clipped by
  dask-gateway itself, with a ``GatewayWarning`` naming that limit.)
* **adapt(minimum, maximum)**: a maximum beyond the per-cluster bound is clipped by dask-gateway with a warning; the
  workers adaptive scaling asks for are started only while the user's totals stay inside the plan (the rest wait
  until the user's other clusters free room). This is the hard guard for every path: no worker is ever created that
  would take the user past a bound, whatever the scheduler asks in its heartbeats.
* The bounds applied are those stored with the cluster being created or scaled (its plan when it was created), so
  a plan change applies to new clusters; clusters from before these totals existed carry none and stay bounded
  per cluster only.
* All checks read the gateway's in-memory state and create or refuse without awaiting in between, so two
  concurrent requests of one user cannot both take the last room (the gateway is one asyncio process).
* With a ``quota_allowances`` client (``quota_allowance.py``), the month's CPU-hour allowance bounds creation,
  ``scale`` and every new worker too, by the platform's one quota rule, checked in the same synchronous section.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.db_base import JobStatus

from polartep_hub.gateway.quota_allowance import AllowanceUnavailable

GIB = 2**30


@dataclass(frozen=True)
class Reservation:
    """What one or more clusters hold: worker count, cores and memory (schedulers' included)."""

    workers: int = 0
    cores: float = 0.0
    memory: int = 0

    def __add__(self, other: Reservation) -> Reservation:
        return Reservation(self.workers + other.workers, self.cores + other.cores, self.memory + other.memory)


@dataclass(frozen=True)
class UserBounds:
    """The plan's totals over all of one user's clusters (``None``: not bounded, e.g. a cluster from before)."""

    plan: str
    max_workers: int | None
    max_cores: float | None
    max_memory: int | None

    @classmethod
    def from_config(cls, config: Any) -> UserBounds:
        get = config.get if hasattr(config, "get") else lambda k, d=None: getattr(config, k, d)
        return cls(
            plan=get("plan", "") or "",
            max_workers=get("user_max_workers", None),
            max_cores=get("user_max_cores", None),
            max_memory=get("user_max_memory", None),
        )


@dataclass(frozen=True)
class Room:
    """How many more workers of one size fit, and which bound stops the next one."""

    workers: int
    bound: str  # e.g. "max_workers=4"
    detail: str  # e.g. "your other clusters hold 3 workers"


def _config_value(config: Any, key: str) -> Any:
    return config.get(key) if hasattr(config, "get") else getattr(config, key)


def cluster_reservation(config: Any, active_workers: int) -> Reservation:
    """A cluster's reservation: its scheduler plus ``active_workers`` workers of its size."""
    return Reservation(
        workers=active_workers,
        cores=float(_config_value(config, "scheduler_cores"))
        + active_workers * float(_config_value(config, "worker_cores")),
        memory=int(_config_value(config, "scheduler_memory"))
        + active_workers * int(_config_value(config, "worker_memory")),
    )


def total(reservations: Iterable[Reservation]) -> Reservation:
    result = Reservation()
    for r in reservations:
        result = result + r
    return result


def room_for_workers(bounds: UserBounds, others: Reservation, config: Any) -> Room:
    """How many workers a cluster with ``config`` may have, given what the user's other clusters reserve."""
    sched_cores = float(_config_value(config, "scheduler_cores"))
    sched_memory = int(_config_value(config, "scheduler_memory"))
    worker_cores = float(_config_value(config, "worker_cores"))
    worker_memory = int(_config_value(config, "worker_memory"))
    candidates: list[Room] = []
    if bounds.max_workers is not None:
        candidates.append(
            Room(
                bounds.max_workers - others.workers,
                f"max_workers={bounds.max_workers}",
                f"your other clusters hold {others.workers} workers",
            )
        )
    if bounds.max_cores is not None:
        candidates.append(
            Room(
                math.floor((bounds.max_cores - others.cores - sched_cores) / worker_cores + 1e-9),
                f"max_cores={bounds.max_cores:g}",
                f"your other clusters reserve {others.cores:g} cores and this cluster's scheduler "
                f"{sched_cores:g}, workers here have {worker_cores:g}",
            )
        )
    if bounds.max_memory is not None:
        candidates.append(
            Room(
                math.floor((bounds.max_memory - others.memory - sched_memory) / worker_memory + 1e-9),
                f"memory {bounds.max_memory / GIB:g} GiB (max_workers x max_worker_memory)",
                f"your other clusters reserve {others.memory / GIB:g} GiB and this cluster's scheduler "
                f"{sched_memory / GIB:g} GiB, workers here have {worker_memory / GIB:g} GiB",
            )
        )
    if not candidates:
        return Room(workers=10**9, bound="", detail="")
    tightest = min(candidates, key=lambda r: r.workers)
    return Room(max(0, tightest.workers), tightest.bound, tightest.detail)


def scheduler_fits(bounds: UserBounds, others: Reservation, config: Any) -> str | None:
    """``None`` when a new cluster's scheduler fits beside the user's other clusters, else why not."""
    sched_cores = float(_config_value(config, "scheduler_cores"))
    sched_memory = int(_config_value(config, "scheduler_memory"))
    if bounds.max_cores is not None and others.cores + sched_cores > bounds.max_cores + 1e-9:
        return (
            f"A new cluster needs {sched_cores:g} core(s) for its scheduler, but your clusters already reserve "
            f"{others.cores:g} of the max_cores={bounds.max_cores:g} your plan {bounds.plan!r} allows across all "
            "your clusters; stop a cluster or scale one down first."
        )
    if bounds.max_memory is not None and others.memory + sched_memory > bounds.max_memory:
        return (
            f"A new cluster needs {sched_memory / GIB:g} GiB for its scheduler, but your clusters already reserve "
            f"{others.memory / GIB:g} GiB of the {bounds.max_memory / GIB:g} GiB (max_workers x "
            f"max_worker_memory) your plan {bounds.plan!r} allows across all your clusters; stop a cluster or "
            "scale one down first."
        )
    return None


def not_gone(record: Any) -> bool:
    """Whether a cluster or worker record still holds its resources: its process or container is not yet known to
    be stopped (``status`` below STOPPED), whatever its ``target``; being stopped still counts."""
    return record.status < JobStatus.STOPPED


def holding_workers(cluster: Any) -> list[Any]:
    """The workers of ``cluster`` that count in the totals: wanted, starting, running or being stopped."""
    return [w for w in cluster.workers.values() if not_gone(w)]


class UserTotalsMixin:
    """Bounds a user's total over all their clusters; mix in before a ``DBBackendBase`` subclass."""

    def _other_reservations(self, username: str, except_name: str | None) -> Reservation:
        clusters = self.db.username_to_clusters.get(username, {})  # type: ignore[attr-defined]
        return total(
            cluster_reservation(c.config, len(holding_workers(c)))
            for c in clusters.values()
            if not_gone(c) and c.name != except_name
        )

    def room_in(self, cluster) -> Room:
        """How many workers ``cluster`` (the gateway's in-memory record) may have beside the user's others."""
        bounds = UserBounds.from_config(cluster.config)
        return room_for_workers(
            bounds, self._other_reservations(cluster.username, cluster.name), cluster.config
        )

    async def _fetch_allowance(self, username: str):
        """The user's allowance, fetched now (the one await before a check); None without a quota client."""
        client = getattr(self, "quota_allowances", None)
        if client is None:
            return None
        try:
            return await client.fetch(username)
        except AllowanceUnavailable as error:
            # The last allowance fetched is still a sound bound (what ran since is taken off, and no server can
            # start while the service is down): use it; without one, refuse.
            cached = client.cached.get(username)
            if cached is None:
                raise PublicException(str(error)) from None
            return cached

    def _quota_refusal(self, allowance, username: str, cores: float, what: str) -> str | None:
        if allowance is None:
            return None
        dask_cores = self._other_reservations(username, None).cores
        return allowance.refusal(dask_cores, cores, what, time.monotonic())

    async def start_cluster(self, user, cluster_options):
        options, config = await self.process_cluster_options(user, cluster_options)  # type: ignore[attr-defined]
        allowance = await self._fetch_allowance(user.name)
        # No await from here on: the check and the creation see the same state.
        refusal = scheduler_fits(
            UserBounds.from_config(config), self._other_reservations(user.name, None), config
        ) or self._quota_refusal(
            allowance, user.name, float(_config_value(config, "scheduler_cores")), "a new cluster's scheduler"
        )
        if refusal:
            raise PublicException(refusal)
        cluster = self.db.create_cluster(user.name, options, config.to_dict())  # type: ignore[attr-defined]
        self.log.info("Created cluster %s for user %s", cluster.name, user.name)  # type: ignore[attr-defined]
        self.queue.put(cluster)  # type: ignore[attr-defined]
        return cluster.name

    async def forward_message_to_scheduler(self, cluster, msg):
        if msg.get("op") == "scale":
            record = self.db.get_cluster(cluster.name)  # type: ignore[attr-defined]
            allowance = await self._fetch_allowance(record.username) if record is not None else None
            if record is not None:
                more = max(0, msg.get("count", 0) - len(holding_workers(record)))
                worker_cores = float(_config_value(record.config, "worker_cores"))
                refusal = (
                    self._quota_refusal(
                        allowance,
                        record.username,
                        more * worker_cores,
                        f"scale({msg['count']}) ({more} more workers)",
                    )
                    if more
                    else None
                )
                if refusal:
                    raise PublicException(refusal)
                room = self.room_in(record)
                if msg.get("count", 0) > room.workers:
                    raise PublicException(
                        f"scale({msg['count']}) would take you past the {room.bound} your plan "
                        f"{UserBounds.from_config(record.config).plan!r} allows across all your clusters "
                        f"({room.detail}): this cluster may have at most {room.workers} workers now."
                    )
        return await super().forward_message_to_scheduler(cluster, msg)  # type: ignore[misc]

    async def on_cluster_heartbeat(self, cluster_name, msg):
        await super().on_cluster_heartbeat(cluster_name, msg)  # type: ignore[misc]
        cluster = self.db.get_cluster(cluster_name)  # type: ignore[attr-defined]
        # Workers held back by the totals: look again at each heartbeat, in case other clusters freed room.
        if cluster is not None and cluster.is_active() and cluster.count > len(cluster.active_workers()):
            self.queue.put(cluster)  # type: ignore[attr-defined]

    async def _check_cluster_scale(self, cluster):
        # Upstream creates ``count - active`` workers here, for scale, adapt and heartbeats alike; this is the one
        # place every new worker passes, so the user's totals are enforced here.
        if cluster.worker_start_failure_count >= self.worker_start_failure_limit:  # type: ignore[attr-defined]
            return await super()._check_cluster_scale(cluster)  # type: ignore[misc]
        active = cluster.active_workers()
        wanted = cluster.count - len(active)
        if wanted <= 0:
            return
        room = self.room_in(cluster)
        # Workers of this cluster that are being stopped still hold their share until they are gone: new ones wait
        # (the next heartbeat looks again) rather than run beside them past the plan.
        allowed = max(0, room.workers - len(holding_workers(cluster)))
        client = getattr(self, "quota_allowances", None)
        if client is not None:
            # The CPU-hour allowance, from the last fetch (no await here): without one, nothing is added yet.
            allowance = client.cached.get(cluster.username)
            client.refresh_soon(cluster.username)
            if allowance is None:
                allowed = 0
            else:
                dask_cores = self._other_reservations(cluster.username, None).cores
                fits = allowance.room(dask_cores, time.monotonic())
                worker_cores = float(_config_value(cluster.config, "worker_cores"))
                if fits < math.inf:
                    allowed = min(allowed, max(0, math.floor(fits / worker_cores + 1e-9)) if fits > 0 else 0)
        if wanted > allowed:
            self.log.debug(  # type: ignore[attr-defined]
                "Cluster %s of %s wants %d more workers; %d fit in the plan's %s across the user's clusters",
                cluster.name,
                cluster.username,
                wanted,
                allowed,
                room.bound,
            )
        for _ in range(min(wanted, allowed)):
            worker = self.db.create_worker(cluster)  # type: ignore[attr-defined]
            self.log.info("Created worker %s for cluster %s", worker.name, cluster.name)  # type: ignore[attr-defined]
            self.queue.put(worker)  # type: ignore[attr-defined]
