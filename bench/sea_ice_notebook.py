"""The sea-ice climatology notebook's computation on a 2-worker Dask Gateway cluster vs. serial, on 2 years of sample.

A platform (local mode) is started, ``polartep data sample --years 2`` writes 731 days (netCDF files and the Zarr
store) into a project of a user, whose server is spawned. In that server's environment the computation cell of
``notebooks/sea-ice-climatology.ipynb`` (open the Zarr store, extent series, monthly concentration climatology,
daily climatology of the extent) runs once as written on a fresh 2-worker gateway cluster (1 core each), and once
with Dask's synchronous scheduler in the same process (serial). ``--rounds`` runs of each (default 3), alternated
(serial, cluster, serial, ...) on one cluster, so a change of a shared machine's load hits both sides alike; the
cluster's start is timed apart and not counted (its workers import their libraries during the first round). Prints
every round, the medians and, on the last line, the speed-up of the medians and its target. The load average
(``os.getloadavg``) is printed before and after. Target: speed-up >= 1.5 (two workers, each doing half of the chunks).

    .venv/bin/python bench/sea_ice_notebook.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform  # noqa: E402
from tests.helpers.servers import process_environment, server_state  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.5

MEASURE = r"""
import json, statistics, sys, time
import dask
from dask_gateway import Gateway

store, cell, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Serial:  # the notebook's `client.compute(..., sync=True)`, on the synchronous scheduler instead
    def compute(self, collections, sync=True):
        return list(dask.compute(*collections, scheduler="synchronous"))

def run(client):
    names = {"store": store, "client": client}
    started = time.perf_counter()
    exec(cell, names)
    return time.perf_counter() - started, int(names["extent"].sizes["time"])

started = time.perf_counter()
gateway = Gateway()
cluster = gateway.new_cluster()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=120)
cluster_start = time.perf_counter() - started
serial, parallel = [], []
for _ in range(rounds):  # alternated, so that a change of the shared machine's load hits both sides alike
    seconds, days = run(Serial())
    serial.append(seconds)
    seconds, _ = run(client)
    parallel.append(seconds)
client.close(); cluster.shutdown()
print(json.dumps({"serial": serial, "gateway": parallel, "cluster_start": cluster_start, "days": days}))
"""


def notebook_cell() -> str:
    """The notebook's computation cell, as shipped, with the imports it uses."""
    book = json.loads((REPO / "notebooks" / "sea-ice-climatology.ipynb").read_text())
    [cell] = [c for c in book["cells"] if "xr.open_zarr(store" in "".join(c["source"])]
    return "import xarray as xr\nfrom xarray.groupers import TimeResampler\n" + "".join(cell["source"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="serial and cluster runs, alternated (default 3)"
    )
    rounds = parser.parse_args().rounds
    print("load before:", os.getloadavg())
    with tempfile.TemporaryDirectory() as root:
        platform = RunningPlatform(Path(root)).start(timeout=240)  # the machine is shared
        try:
            token = platform.create_user("bench", plan="large")
            env = {key: value for key, value in os.environ.items() if not key.startswith("POLARTEP_")}
            env.update(
                POLARTEP_STATE_DIR=platform.env["POLARTEP_STATE_DIR"],
                POLARTEP_PUBLIC_URL=platform.env["POLARTEP_PUBLIC_URL"],
            )
            sample = subprocess.run(
                [str(Path(sys.executable).parent / "polartep"), "data", "sample", "--project", "bench",
                 "--owner", "bench", "--years", "2", "--chips", "0"],
                env=env, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            if sample.returncode:
                raise SystemExit(sample.stderr[-4000:])
            print(sample.stdout.strip())
            platform.spawn("bench", token)
            server_env = process_environment(server_state(platform, "bench")["pid"])
            folder = Path(server_env["HOME"], "datasets", "bench", "seaice-sample").resolve()
            [store] = sorted(folder.glob("*.zarr"))
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(store), notebook_cell(), str(rounds)],
                env=server_env, cwd=root, capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(done.stderr[-4000:])
            m = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            platform.stop()
    serial, gateway = statistics.median(m["serial"]), statistics.median(m["gateway"])
    print("load after:", os.getloadavg())
    print(f"{m['days']} days; 2-worker gateway cluster started in {m['cluster_start']:.1f} s (not counted)")
    for number, (one, two) in enumerate(zip(m["serial"], m["gateway"], strict=True), 1):
        print(
            f"round {number}: serial {one:.2f} s, gateway cluster (2 workers) {two:.2f} s, ratio {one / two:.2f}"
        )
    print(f"medians: serial {serial:.2f} s, gateway cluster (2 workers) {gateway:.2f} s")
    print(f"speed-up {serial / gateway:.2f} (target >= {TARGET})")


if __name__ == "__main__":
    main()
