"""Processor runs: end to end through the platform vs. the bare papermill CLI, and the API's speed with 10k runs.

Measured in one platform, each ``--runs`` times (medians), on the same trivial notebook (a parameters cell and one
cell writing ``outputs.json``):

* **warm**: ``POST .../processors/<id>/runs`` until the run is ``successful`` (polled every 50 ms), with the
  invoker's run cluster warm, vs. ``papermill in.ipynb out.ipynb -p ...`` as a subprocess. Target <= 1.0.
* **cold**: the same with no run cluster (a second platform with ``processor_run_warm_seconds=0``, so the run
  cluster is stopped after each run) vs. the CLI plus a bare ``dask scheduler`` and one
  ``dask worker`` started by hand until a client sees the worker. Target <= 1.2.
* **submit p50** (``POST .../runs``, the answer only) and **GET /jobs p50** (``ogcapi/jobs?limit=10``) with 10,000
  runs of the invoker in the database (written directly). Targets <= 10 ms and <= 20 ms. Next to them, in the same
  loop, the floors of a request on the same path: ``GET /services/platform/health`` (no token) and
  ``GET api/v1/me/consents`` (the same token check as the runs API, one small query).

    .venv/bin/python bench/processors.py [--runs 5] [--warm-only]

Record the printed JSON in ``bench/RESULTS.md`` with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform, wait_for  # noqa: E402
from tests.helpers.bench_fill import add_successful_runs  # noqa: E402
from tests.helpers.processors import create_processor, echo_notebook  # noqa: E402

API = "/services/platform/api/v1"
OGC = "/services/platform/ogcapi"
BIN = Path(sys.executable).parent


def run_to_end(platform, token: str) -> float:
    started = time.perf_counter()
    r = platform.api("POST", f"{API}/processors/bench-echo/runs", token, json={"inputs": {"days": 3}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    while True:
        status = platform.api("GET", f"{API}/runs/{run_id}", token).json()["status"]
        if status in ("successful", "failed", "dismissed"):
            assert status == "successful", status
            return time.perf_counter() - started
        time.sleep(0.05)


def papermill_cli(folder: Path) -> float:
    source = folder / "in.ipynb"
    source.write_bytes(echo_notebook())
    started = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "papermill"),
            str(source),
            str(folder / "out.ipynb"),
            "-p",
            "days",
            "3",
            "--no-progress-bar",
            "--log-level",
            "WARNING",
            "--cwd",
            str(folder),
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def bare_dask_and_cli(folder: Path) -> float:
    from distributed import Client

    started = time.perf_counter()
    scheduler_file = folder / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    scheduler = subprocess.Popen(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(scheduler_file.exists, 60)
    worker = subprocess.Popen(
        [
            str(BIN / "dask"),
            "worker",
            "--scheduler-file",
            str(scheduler_file),
            "--nthreads",
            "1",
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(scheduler_file=str(scheduler_file)) as client:
            client.wait_for_workers(1, timeout=60)
        papermill_cli(folder)
        return time.perf_counter() - started
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait()
        scheduler.wait()


def fill_runs(platform, user: str, count: int) -> None:
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from polartep_hub.accounts.models import Account
    from polartep_hub.processors.models import Processor, ProcessorVersion

    engine = create_engine(platform.settings.service_db_url)
    with Session(engine) as session:
        invoker = session.scalar(select(Account.id).where(Account.name == user))
        version = session.scalar(
            select(ProcessorVersion.id).join(Processor).where(Processor.name == "bench-echo")
        )
        add_successful_runs(session, version, invoker, count)
        session.commit()
    engine.dispose()


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm-only", action="store_true", help="skip the cold-cluster comparison")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-processors-") as tmp:
        folder = Path(tmp)
        # Warm side: clusters stay 10 minutes; cold side: a second platform that stops them at once.
        sides = (("600", "warm"),) if args.warm_only else (("600", "warm"), ("0", "cold"))
        for warm_seconds, label in sides:
            root = folder / label
            root.mkdir()
            platform = RunningPlatform(root, extra_env={"POLARTEP_PROCESSOR_RUN_WARM_SECONDS": warm_seconds})
            with platform.running():
                token = platform.create_user("bench", plan="standard")
                create_processor(platform.settings.service_db_url, Path(platform.settings.processors_dir),
                                 "bench-echo", "bench", echo_notebook())  # fmt: skip
                if label == "warm":
                    run_to_end(platform, token)  # starts the run cluster
                platform_times, baseline_times = [], []
                for _ in range(args.runs):
                    if label == "cold":
                        # With warm 0 the service stops the cluster within seconds of the run's end.
                        time.sleep(8)
                    platform_times.append(run_to_end(platform, token))
                    baseline_times.append(
                        papermill_cli(folder) if label == "warm" else bare_dask_and_cli(folder)
                    )
                results[f"{label}_run_s"] = p50(platform_times)
                results[f"{label}_baseline_s"] = p50(baseline_times)
                results[f"{label}_ratio"] = p50(platform_times) / p50(baseline_times)
                if label == "warm":
                    fill_runs(platform, "bench", 10_000)
                    submits, lists, health, consents = [], [], [], []
                    # One keep-alive client, as an API client or OWSLib session holds one: a new client per request
                    # (platform.api) adds its own set-up (TLS context, connection) of about 25 ms to every sample.
                    auth = {"Authorization": f"token {token}"}
                    with httpx.Client(base_url=platform.url, timeout=30) as client:
                        for _ in range(max(20, args.runs)):
                            started = time.perf_counter()
                            assert client.get("/services/platform/health").status_code == 200
                            health.append(time.perf_counter() - started)
                            started = time.perf_counter()
                            assert client.get(f"{API}/me/consents", headers=auth).status_code == 200
                            consents.append(time.perf_counter() - started)
                            started = time.perf_counter()
                            r = client.post(
                                f"{API}/processors/bench-echo/runs", headers=auth, json={"inputs": {}}
                            )
                            submits.append(time.perf_counter() - started)
                            assert r.status_code == 201
                            started = time.perf_counter()
                            r = client.get(f"{OGC}/jobs?limit=10", headers=auth)
                            lists.append(time.perf_counter() - started)
                            assert r.status_code == 200
                    results["submit_p50_ms"] = 1000 * p50(submits)
                    results["jobs_p50_ms"] = 1000 * p50(lists)
                    results["health_floor_p50_ms"] = 1000 * p50(health)
                    results["token_floor_p50_ms"] = 1000 * p50(consents)
    print(json.dumps(results, indent=2))
    cold = f"cold {results['cold_ratio']:.2f} (target <= 1.2), " if "cold_ratio" in results else ""
    print(
        f"HEADLINE warm run {results['warm_ratio']:.2f} of the papermill CLI (target <= 1.0), {cold}"
        f"submit p50 {results['submit_p50_ms']:.1f} ms (target <= 10), GET /jobs p50 {results['jobs_p50_ms']:.1f} ms "
        "(target <= 20), with 10,000 runs"
    )


if __name__ == "__main__":
    main()
