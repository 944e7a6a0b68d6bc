"""Dask Gateway in Docker mode vs. local mode: time from ``new_cluster()`` to 2 ready workers, and one reduction.

For each mode a platform is started, a trial user spawns an Interactive server, and the same client code runs with
that server's environment and token (local mode: a process with the server's environment; Docker mode: ``docker
exec`` in the server's container, so the client is where a notebook's would be). Each side runs ``--runs`` times;
prints medians and the Docker/local ratio. Worker size: the trial plan's default (1 core, 2 GiB).

    .venv/bin/python bench/gateway_docker.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.docker.engine import container_name, docker, engine_problem  # noqa: E402
from tests.harness import RunningPlatform  # noqa: E402
from tests.hub.test_spawn_profiles import process_environment, server_state  # noqa: E402

MEASURE = r"""
import json, sys, time
import dask.array as da, pandas as pd, xarray as xr
from dask_gateway import Gateway

def reduction(client):
    cube = da.random.default_rng(0).random((120, 200, 200), chunks=(12, 200, 200))
    sic = xr.DataArray(cube, dims=("time", "y", "x"),
                       coords={"time": pd.date_range("2010-01-01", periods=120, freq="MS")})
    started = time.perf_counter()
    sic.groupby("time.month").mean().compute()
    return time.perf_counter() - started

rows = {"start": [], "reduce": []}
for _ in range(int(sys.argv[1])):
    gateway = Gateway()
    started = time.perf_counter()
    cluster = gateway.new_cluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=120)
    rows["start"].append(time.perf_counter() - started)
    reduction(client)  # warm-up
    rows["reduce"].append(reduction(client))
    client.close(); cluster.shutdown()
print(json.dumps(rows))
"""


def measure(mode: str, runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as root:
        platform = RunningPlatform(Path(root), mode=mode, extra_env={"POLARTEP_IDLE_TIMEOUT": "0"}).start()
        try:
            user = f"benchgw{mode}"
            token = platform.create_user(user, plan="trial")
            platform.spawn(user, token, {"profile": "interactive"})
            if mode == "docker":
                done = docker(
                    "exec",
                    container_name(user),
                    "python",
                    "-c",
                    MEASURE,
                    str(runs),
                    check=False,
                    timeout=1800,
                )
            else:
                env = process_environment(server_state(platform, user)["pid"])
                done = subprocess.run(
                    [sys.executable, "-c", MEASURE, str(runs)],
                    env=env, cwd=root, capture_output=True, text=True, timeout=1800,
                )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{mode}: {done.stderr[-4000:]}")
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        raise SystemExit(f"no Docker engine: {problem}")
    results = {mode: measure(mode, args.runs) for mode in ("local", "docker")}
    med = {mode: {k: statistics.median(v) for k, v in r.items()} for mode, r in results.items()}
    for mode, r in results.items():
        print(f"{mode:6} start to 2 workers: " + ", ".join(f"{s:.2f}" for s in r["start"]) + " s; reduce: "
              + ", ".join(f"{s:.2f}" for s in r["reduce"]) + " s")  # fmt: skip
    print(f"median start: docker {med['docker']['start']:.2f} s, local {med['local']['start']:.2f} s, "
          f"ratio {med['docker']['start'] / med['local']['start']:.2f}")  # fmt: skip
    print(f"median reduce: docker {med['docker']['reduce']:.3f} s, local {med['local']['reduce']:.3f} s, "
          f"throughput ratio {med['local']['reduce'] / med['docker']['reduce']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
