"""Shared by several test modules (moved from ``tests/gateway/test_gateway_clusters.py``)."""

from __future__ import annotations

from pathlib import Path

from dask_gateway_server.backends.db_base import Cluster, JobStatus, Worker

from polartep_hub.gateway.user_totals import (
    UserTotalsMixin,
)

GIB = 2**30
SMALL_WORKERS = {
    "scheduler_cores": 1,
    "scheduler_memory": 2 * GIB,
    "worker_cores": 1,
    "worker_memory": 2 * GIB,
}
TRIAL_CONFIG = {**SMALL_WORKERS, "plan": "trial", "user_max_workers": 4, "user_max_cores": 8,
                "user_max_memory": 4 * 8 * GIB}  # fmt: skip


def gateway_api(platform, method: str, path: str, token: str, **kwargs):
    """A request to the gateway's REST API through the hub's proxy (its auth header says ``jupyterhub``)."""
    headers = {"Authorization": f"jupyterhub {token}"}
    return platform.api(method, "/services/dask-gateway/api/v1/" + path, headers=headers, **kwargs)


def gateway_pid(platform) -> int | None:
    config = str(platform.settings.state_path / "dask_gateway_config.py")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if config in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    return None


class _Backend(UserTotalsMixin):
    worker_start_failure_limit = 3

    def __init__(self, clusters: list[Cluster]) -> None:
        import logging

        self.db = _Records(clusters)
        self.log = logging.getLogger("test")
        self.queue = type("Q", (), {"put": lambda self, item: None})()


def _cluster(
    name: str, status: JobStatus, target: JobStatus, workers: list[tuple[JobStatus, JobStatus]]
) -> Cluster:
    """dask-gateway's own in-memory records (``db_base.Cluster``/``Worker``), as the backend keeps them (they need a
    running event loop, hence the async tests)."""
    cluster = Cluster(name=name, username="alice", config=dict(TRIAL_CONFIG), status=status, target=target)
    cluster.workers = {}
    for index, (w_status, w_target) in enumerate(workers):
        worker = Worker(name=f"{name}-w{index}", cluster=cluster, status=w_status, target=w_target)
        cluster.workers[worker.name] = worker
    return cluster


class _Records:
    def __init__(self, clusters: list[Cluster]) -> None:
        self.username_to_clusters = {"alice": {c.name: c for c in clusters}}
        self.created: list[str] = []

    def create_worker(self, cluster: Cluster) -> Worker:
        worker = Worker(name=f"new{len(self.created)}", cluster=cluster, status=JobStatus.CREATED,
                        target=JobStatus.RUNNING)  # fmt: skip
        self.created.append(worker.name)
        cluster.workers[worker.name] = worker
        return worker
