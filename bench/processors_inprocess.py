"""The service's own cost of a run submission and a ``/jobs`` page with 10,000 runs, in process (no HTTP).

``bench/processors.py`` measures submit and ``GET /jobs`` through the hub's proxy, where on a loaded machine the
request path itself (its floor, ``GET /health``) dominates. This measures what the service adds: ``accept_run``
(find the version, validate the inputs, read the notebook's parameters cell, insert and commit) and one page of
``list_runs`` formatted as OGC ``statusInfo``, on a fresh SQLite database migrated to head with 10,000 runs of one
invoker.

    PYTHONPATH=. .venv/bin/python bench/processors_inprocess.py [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import select

from polartep_hub.accounts.models import Account
from polartep_hub.processors import runs
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.processors.ogc_jobs import status_info
from polartep_hub.projects.store import Actor
from polartep_hub.service.db import make_engine, make_sessionmaker, upgrade_to_head
from tests.helpers.bench_fill import add_successful_runs
from tests.helpers.processors import create_processor, echo_notebook


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(1000 * statistics.median(ordered), 2),
        "p99": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-processors-inprocess-"))
    url = f"sqlite:///{folder}/platform.sqlite"
    upgrade_to_head(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as session:
        session.add(Account(name="bench", plan="standard"))
        session.commit()
    create_processor(url, folder, "bench-echo", "bench", echo_notebook())
    actor = Actor(name="bench", admin=False)
    with sessions() as session:
        version = runs.find_version(session, "bench-echo", actor, None)
        invoker = session.scalar(select(Account.id).where(Account.name == "bench"))
        add_successful_runs(session, version.id, invoker, 10_000)
        session.commit()
        notebook = NotebookStore(folder / "notebooks").read(version.notebook_sha256)
    # status_info needs only the public URL and the prefix of the service's context.
    context = SimpleNamespace(
        config=SimpleNamespace(public_url="http://127.0.0.1", prefix="/services/platform/")
    )
    submits, pages = [], []
    for _ in range(args.samples):
        started = time.perf_counter()
        with sessions() as session:
            row = runs.find_version(session, "bench-echo", actor, None)
            runs.accept_run(
                session,
                processor_name="bench-echo",
                actor=actor,
                given={},
                version=None,
                notebook=notebook,
                version_row=row,
            )
        submits.append(time.perf_counter() - started)
        started = time.perf_counter()
        with sessions() as session:
            rows = runs.list_runs(session, actor, limit=11, offset=0)
            page = [status_info(context, run, process) for run, process, _ in rows[:10]]
        assert len(page) == 10
        pages.append(time.perf_counter() - started)
    print(json.dumps({"submit_ms": percentiles_ms(submits), "jobs_page_ms": percentiles_ms(pages)}))


if __name__ == "__main__":
    main()
