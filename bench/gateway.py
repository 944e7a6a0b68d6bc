"""Dask Gateway through the platform vs. Dask by hand: time to 2 ready workers, and throughput of one reduction.

Start: ``Gateway().new_cluster(); scale(2)`` from a spawned user server's environment until the client sees 2 workers,
vs. ``dask scheduler`` and two ``dask worker`` processes (same venv, 1 thread each) started by hand until a client
sees 2 workers. Throughput: a fixed xarray reduction (monthly climatology of a 120 x 200 x 200 float64 cube, 12-step
chunks) on the gateway cluster vs. a local distributed cluster of the same size (2 processes x 1 thread).
Each measured ``--runs`` times, interleaved, in one process per side; prints medians and ratios.
Targets: start ratio <= 1.3, throughput ratio >= 0.9.

    .venv/bin/python bench/gateway.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform  # noqa: E402
from tests.hub.test_spawn_profiles import process_environment, server_state  # noqa: E402

MEASURE = r"""
import json, os, statistics, subprocess, sys, time
from pathlib import Path
import dask.array as da, pandas as pd, xarray as xr
from dask.distributed import Client, LocalCluster
from dask_gateway import Gateway

runs = int(sys.argv[1])
bindir = Path(sys.executable).parent

def reduction(client):
    cube = da.random.default_rng(0).random((120, 200, 200), chunks=(12, 200, 200))
    sic = xr.DataArray(cube, dims=("time", "y", "x"),
                       coords={"time": pd.date_range("2010-01-01", periods=120, freq="MS")})
    started = time.perf_counter()
    sic.groupby("time.month").mean().compute()
    return time.perf_counter() - started

def gateway_start():
    gateway = Gateway()
    started = time.perf_counter()
    cluster = gateway.new_cluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=120)
    elapsed = time.perf_counter() - started
    reduction(client)  # warm-up
    seconds = reduction(client)
    client.close(); cluster.shutdown()
    return elapsed, seconds

def by_hand_start():
    started = time.perf_counter()
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", "sched.json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not Path("sched.json").exists():
        time.sleep(0.02)
    workers = [subprocess.Popen([str(bindir / "dask"), "worker", "--scheduler-file", "sched.json",
                                 "--nthreads", "1", "--no-dashboard"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    client = Client(scheduler_file="sched.json")
    client.wait_for_workers(2, timeout=120)
    elapsed = time.perf_counter() - started
    client.close()
    for p in workers + [sched]:
        p.terminate(); p.wait()
    Path("sched.json").unlink(missing_ok=True)  # the scheduler may remove it itself on exit
    return elapsed

def local_throughput():
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        reduction(client)
        return reduction(client)

rows = {"gateway_start": [], "gateway_reduce": [], "hand_start": [], "local_reduce": []}
for _ in range(runs):
    s, r = gateway_start(); rows["gateway_start"].append(s); rows["gateway_reduce"].append(r)
    rows["hand_start"].append(by_hand_start())
    rows["local_reduce"].append(local_throughput())
print(json.dumps({k: statistics.median(v) for k, v in rows.items()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        platform = RunningPlatform(Path(root)).start()
        try:
            token = platform.create_user("bench", plan="trial")
            platform.spawn("bench", token)
            env = process_environment(server_state(platform, "bench")["pid"])
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(args.runs)],
                env=env, cwd=root, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(done.stderr[-4000:])
            m = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            platform.stop()
    start_ratio = m["gateway_start"] / m["hand_start"]
    # Throughput is work per second: the ratio of by-hand time to gateway time.
    throughput_ratio = m["local_reduce"] / m["gateway_reduce"]
    print(f"start to 2 workers: gateway {m['gateway_start']:.3f} s, by hand {m['hand_start']:.3f} s, "
          f"ratio {start_ratio:.2f} (target <= 1.3)")  # fmt: skip
    print(f"reduction: gateway {m['gateway_reduce']:.3f} s, local cluster {m['local_reduce']:.3f} s, "
          f"throughput ratio {throughput_ratio:.2f} (target >= 0.9)")  # fmt: skip


if __name__ == "__main__":
    main()
