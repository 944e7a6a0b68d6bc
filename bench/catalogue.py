"""STAC search speed over many items, side by side: the platform on SQLite and on PostgreSQL, and stac-fastapi-pgstac.

The same ``--items`` STAC items (``--collections`` collections, 6-hourly over several years, 10 x 5 degree boxes
scattered over the Arctic) are loaded into three catalogues in one run:

* the platform service on SQLite, and on PostgreSQL (one project, a dataset per collection, rows bulk-inserted as
  the service stores them, then ``ANALYZE``);
* stac-fastapi-pgstac 7.2 on pgstac 0.10 (PostgreSQL 15 + PostGIS), loaded with ``pypgstac load`` (which also
  analyses), the STAC community's reference server (``tests/helpers/pgstac_peer.py``).

Each is served over HTTP on 127.0.0.1 by uvicorn in a process of its own (one worker) and gets the same
``--searches`` GET ``/search`` requests (bbox 30 x 10 degrees + a 30-day interval + one collection, limit 10), asked
in turn (query 1 of each, then query 2 of each, ...) by one HTTP client, after 20 warm-up searches, so that load
that changes during the run falls on all three alike. The platform is asked as a member of the project. The number
of items each answer holds is compared (each server orders its pages its own way, but a page holds ``min(limit,
matches)`` items on every one of them). The CPU time each search costs is measured where it is spent (the
API's process and the PostgreSQL backends of its connections), a figure the machine's load changes far less than
wall-clock times. The last line is the headline: the platform's p50/p99 against the peer's
and the targets (p50 <= 25 ms, p99 <= 100 ms, and no slower than the peer).

    PYTHONPATH=. .venv/bin/python bench/catalogue.py --items 100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text

from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import load_catalogue
from polartep_hub.data.models import StacItem
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import upgrade_to_head
from tests.helpers.pgstac_peer import PgstacPeer
from tests.helpers.service_fakes import PREFIX, FakeIdentityProvider
from tests.postgres_server import PostgresServer

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

START = datetime(2015, 1, 1, tzinfo=UTC)
PROJECT = "bench"
TARGET_P50, TARGET_P99 = 25.0, 100.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_items(count: int, collections: int) -> list[dict[str, Any]]:
    """``count`` STAC items round-robin over ``collections`` collections, the same for every catalogue."""
    rng = random.Random(13)
    items = []
    for number in range(count):
        moment = START + timedelta(hours=6 * (number // collections))
        west, south = rng.uniform(-180, 170), rng.uniform(55, 85)
        east, north = west + 10, south + 5
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": [],
                "id": f"item-{number}",
                "collection": f"{PROJECT}:c{number % collections}",
                "bbox": [west, south, east, north],
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "links": [],
                "assets": {},
            }
        )
    return items


def make_searches(count: int, collections: int) -> list[dict[str, str]]:
    rng = random.Random(2026)
    searches = []
    for _ in range(count):
        west, south = rng.uniform(-180, 150), rng.uniform(55, 80)
        day = START + timedelta(days=rng.uniform(0, 365 * 5))
        searches.append(
            {
                "bbox": f"{west},{south},{west + 30},{south + 10}",
                "datetime": f"{day:%Y-%m-%dT%H:%M:%SZ}/{day + timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
                "collections": f"{PROJECT}:c{rng.randrange(collections)}",
                "limit": "10",
            }
        )
    return searches


def service_config(url: str, folder: Path) -> ServiceConfig:
    return ServiceConfig(prefix=PREFIX, database_url=url, default_plan="trial", datasets_dir=str(folder))


def load_platform(url: str, folder: Path, items: list[dict[str, Any]], collections: int) -> float:
    """The platform's schema, project and datasets through its API, then the items as rows in bulk; seconds."""
    upgrade_to_head(url)
    app = create_app(
        service_config(url, folder),
        load_catalogue(),
        identity_provider=FakeIdentityProvider(),
        passwords=Passwords(),
    )
    began = time.monotonic()
    with TestClient(app) as client:

        def api(method: str, path: str, token: str, **kwargs: Any) -> None:
            response = client.request(
                method, PREFIX + path, headers={"Authorization": f"token {token}"}, **kwargs
            )
            assert response.status_code < 300, response.text

        api("GET", "api/v1/users/alice/entitlements", "hub-token")
        api("POST", "api/v1/projects", "alice-token", json={"name": PROJECT})
        for index in range(collections):
            body = {"project": PROJECT, "name": f"c{index}", "storage_class": "hdd"}
            api("POST", "api/v1/datasets", "alice-token", json=body)
    app.state.context.engine.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        dataset_ids = dict(connection.execute(text("SELECT name, id FROM datasets")).all())
        rows = []
        for document in items:
            moment = datetime.fromisoformat(document["properties"]["datetime"].replace("Z", "+00:00"))
            west, south, east, north = document["bbox"]
            rows.append(
                {
                    "dataset_id": dataset_ids[document["collection"].split(":")[1]],
                    "collection_id": document["collection"],
                    "item_id": document["id"],
                    "start_datetime": moment,
                    "end_datetime": moment,
                    "west": west,
                    "south": south,
                    "east": east,
                    "north": north,
                    "search_text": document["id"],
                    "body": json.dumps(document),
                }
            )
            if len(rows) == 10_000:
                connection.execute(insert(StacItem), rows)
                rows = []
        if rows:
            connection.execute(insert(StacItem), rows)
        # What autovacuum (PostgreSQL) or the next ANALYZE would do after a bulk load: fresh planner statistics.
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.monotonic() - began


def serve_platform(url: str, folder: str, port: int) -> None:
    """The platform service on ``url`` over HTTP (the child process's whole life)."""
    import uvicorn

    app = create_app(
        service_config(url, Path(folder)),
        load_catalogue(),
        identity_provider=FakeIdentityProvider(),
        passwords=Passwords(),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (``/proc/<pid>/stat``); processes that ended are left out."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


def backends(postgres: PostgresServer, database: str) -> set[int]:
    """The server processes of the connections to ``database`` (the pools of the API in front of it)."""
    import psycopg

    with psycopg.connect(postgres.url().replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        rows = db.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)).fetchall()
    return {pid for (pid,) in rows}


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--searches", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-catalogue-"))
    items = make_items(args.items, args.collections)
    searches = make_searches(args.searches, args.collections)
    postgres = PostgresServer().start()
    peer = PgstacPeer(postgres, database="pgstac_bench")
    children: list[multiprocessing.Process] = []
    try:
        targets: dict[str, str] = {}
        for label, url in (
            ("polartep SQLite", f"sqlite:///{folder / 'platform.sqlite'}"),
            ("polartep PostgreSQL", postgres.create_database("platform_bench")),
        ):
            took = load_platform(url, folder / "data", items, args.collections)
            print(f"{label}: loaded {args.items} items in {took:.1f} s", flush=True)
            port = free_port()
            child = multiprocessing.get_context("spawn").Process(
                target=serve_platform, args=(url, str(folder / "data"), port), daemon=True
            )
            child.start()
            children.append(child)
            targets[label] = f"http://127.0.0.1:{port}{PREFIX}stac/"
        began = time.monotonic()
        peer.start()
        collections = [
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": f"{PROJECT}:c{index}",
                "description": "bench collection",
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [[-180, 55, 180, 90]]},
                    "temporal": {"interval": [[None, None]]},
                },
                "links": [],
            }
            for index in range(args.collections)
        ]
        peer.load(collections, items)
        print(
            f"stac-fastapi-pgstac: loaded {args.items} items in {time.monotonic() - began:.1f} s", flush=True
        )
        targets["stac-fastapi-pgstac"] = peer.url
        for root in targets.values():
            wait_for(root + "conformance")

        # CPU per search, measured where it is spent (the API's process and its database's backends), so that the
        # comparison holds whatever the machine's load does to the wall-clock times.
        processes = {
            "polartep SQLite": lambda: {children[0].pid},
            "polartep PostgreSQL": lambda: {children[1].pid} | backends(postgres, "platform_bench"),
            "stac-fastapi-pgstac": lambda: {peer.api_pid} | backends(postgres, peer.database),
        }
        times: dict[str, list[float]] = {label: [] for label in targets}
        counts: dict[str, list[int]] = {label: [] for label in targets}
        with httpx.Client(headers={"Authorization": "token alice-token"}, timeout=30) as client:
            for params in searches[:20]:  # warm-up: connections, caches, the planner
                for root in targets.values():
                    client.get(root + "search", params=params).raise_for_status()
            cpu_before = {label: cpu_seconds(pids()) for label, pids in processes.items()}
            for params in searches:
                for label, root in targets.items():
                    started = time.perf_counter()
                    response = client.get(root + "search", params=params)
                    times[label].append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                    counts[label].append(len(response.json()["features"]))
            cpu = {}
            for label, pids in processes.items():
                after = cpu_seconds(pids())
                spent = sum(seconds - cpu_before[label].get(pid, 0.0) for pid, seconds in after.items())
                cpu[label] = spent * 1000 / args.searches
        reference = counts["stac-fastapi-pgstac"]
        for label in targets:
            differ = sum(a != b for a, b in zip(counts[label], reference, strict=True))
            p50, p99 = percentiles(times[label])
            print(
                f"{label}: {args.searches} searches, p50 {p50:.1f} ms, p99 {p99:.1f} ms, CPU {cpu[label]:.1f} ms "
                "per search (API and database), "
                f"mean {statistics.fmean(counts[label]):.2f} items per answer, {differ} answers differ in size from pgstac's"
            )
        peer_p50, peer_p99 = percentiles(times["stac-fastapi-pgstac"])
        parts = []
        met = True
        for label in ("polartep SQLite", "polartep PostgreSQL"):
            p50, p99 = percentiles(times[label])
            met = met and p50 <= min(TARGET_P50, peer_p50) and p99 <= min(TARGET_P99, peer_p99)
            parts.append(
                f"{label.removeprefix('polartep ')} p50 {p50:.1f} / p99 {p99:.1f} ms (CPU {cpu[label]:.1f} ms)"
            )
        print(
            f"HEADLINE {args.items} items, bbox+datetime+collection, {args.searches} searches over HTTP: platform "
            f"{', '.join(parts)}; stac-fastapi-pgstac p50 {peer_p50:.1f} / p99 {peer_p99:.1f} ms "
            f"(CPU {cpu['stac-fastapi-pgstac']:.1f} ms); targets p50 <= "
            f"{TARGET_P50:.0f}, p99 <= {TARGET_P99:.0f} ms and no slower than the peer: {'met' if met else 'MISSED'}"
        )
    finally:
        for child in children:
            child.terminate()
            child.join(10)
        peer.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
