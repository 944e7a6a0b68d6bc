"""Dask Gateway in Docker mode vs. local mode: time from ``new_cluster()`` to 2 ready workers, and one reduction.

For each mode a platform is started, a trial user spawns an Interactive server, and the same client code runs with
that server's environment and token (local mode: a process with the server's environment; Docker mode: ``docker
exec`` in the server's container, so the client is where a notebook's would be). Both platforms run at once and
the sides take turns, ``--runs`` times each, so both see the same load; prints medians and the Docker/local ratio.
Worker size: the trial plan's default (1 core, 2 GiB).

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
from tests.docker.engine import container_name, docker, engine_problem, home_volume  # noqa: E402
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


class Side:
    """One platform in ``mode`` with a trial user's Interactive server, ready to run the client code."""

    def __init__(self, mode: str, root: Path) -> None:
        self.mode, self.root = mode, root
        self.platform = RunningPlatform(root, mode=mode, extra_env={"POLARTEP_IDLE_TIMEOUT": "0"}).start()
        self.user = f"benchgw{mode}"
        token = self.platform.create_user(self.user, plan="trial")
        self.platform.spawn(self.user, token, {"profile": "interactive"})

    def run(self, runs: int) -> dict[str, list[float]]:
        if self.mode == "docker":
            done = docker(
                "exec",
                container_name(self.user),
                "python",
                "-c",
                MEASURE,
                str(runs),
                check=False,
                timeout=1800,
            )
        else:
            env = process_environment(server_state(self.platform, self.user)["pid"])
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(runs)],
                env=env, cwd=self.root, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
        if done.returncode:
            raise SystemExit(f"{self.mode}: {done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        raise SystemExit(f"no Docker engine: {problem}")
    results: dict[str, dict[str, list[float]]] = {m: {"start": [], "reduce": []} for m in ("local", "docker")}
    with tempfile.TemporaryDirectory() as root:
        sides = []
        try:
            for mode in results:
                sides.append(Side(mode, Path(root) / mode))
            # Interleaved, one run at a time per side, so both see the same load on a shared machine.
            for _ in range(args.runs):
                for side in sides:
                    for key, values in side.run(1).items():
                        results[side.mode][key] += values
        finally:
            for side in sides:
                side.platform.stop()
            docker("volume", "rm", "-f", home_volume("benchgwdocker"), check=False)  # the bench user's home
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
