"""The gateway-side costs that ``bench/gateway.py``'s start time includes and the platform can reduce, measured alone.

1. The gateway's database writes for one cluster start with 2 workers, replayed through dask-gateway-server's own
   ``DataManager`` (create the cluster, its state and status updates, 2 workers with theirs): SQLite in its default
   rollback-journal mode vs. write-ahead log with ``synchronous=NORMAL`` (``hub/gateway/gateway_db.py``).
2. A plan look-up's client set-up: a new ``httpx.AsyncClient`` per request (as before) vs. one kept-alive client
   (``hub/gateway/options.py``): the construction alone, which is what each request paid on top.

Each measured ``--runs`` times; prints medians. Less sensitive to other load on the machine than the end-to-end ratio.

    .venv/bin/python bench/gateway_steps.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from dask_gateway_server.backends.db_base import DataManager, JobStatus
from dask_gateway_server.utils import timestamp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from polartep_hub.gateway.gateway_db import use_write_ahead_log  # noqa: E402

CONFIG = {"scheduler_cores": 1, "scheduler_memory": 2**31, "worker_cores": 1, "worker_memory": 2**31}


def cluster_start_writes(db: DataManager) -> None:
    """The commits ``DBBackendBase`` makes from ``new_cluster()`` to 2 running workers (see db_base.py)."""
    cluster = db.create_cluster("bench", {}, CONFIG)
    db.update_cluster(cluster, state={"workdir": "/x"})
    db.update_cluster(cluster, state={"workdir": "/x", "pid": 1})
    db.update_cluster(cluster, status=JobStatus.SUBMITTED)
    db.update_cluster(cluster, api_address="a", scheduler_address="s", dashboard_address="d")
    db.update_cluster(cluster, status=JobStatus.RUNNING)
    db.update_cluster(cluster, count=2)
    workers = [db.create_worker(cluster) for _ in range(2)]
    for w in workers:
        db.update_worker(w, state={"pid": 2})
        db.update_worker(w, status=JobStatus.SUBMITTED)
    db.update_workers([(w, {"status": JobStatus.RUNNING}) for w in workers])
    db.update_workers([(w, {"status": JobStatus.STOPPED, "stop_time": timestamp()}) for w in workers])


async def measure_db(wal: bool, runs: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as root:
        db = DataManager(url=f"sqlite:///{root}/gateway.sqlite", encrypt_keys=[Fernet.generate_key()])
        if wal:
            use_write_ahead_log(db.db)
        for _ in range(runs):
            started = time.perf_counter()
            cluster_start_writes(db)
            times.append(time.perf_counter() - started)
        db.db.dispose()
    return statistics.median(times)


async def measure_client(runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client = httpx.AsyncClient(timeout=10)
        times.append(time.perf_counter() - started)
        await client.aclose()
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    journal = await measure_db(False, args.runs)
    wal = await measure_db(True, args.runs)
    client = await measure_client(args.runs)
    print(f"gateway database writes per cluster start (2 workers): rollback journal {journal * 1000:.1f} ms, "
          f"WAL + synchronous=NORMAL {wal * 1000:.1f} ms")  # fmt: skip
    print(f"httpx.AsyncClient() per plan look-up: {client * 1000:.1f} ms (kept-alive client: paid once)")


if __name__ == "__main__":
    asyncio.run(main())
