"""STAC search speed over many items: p50 and p99 of bbox + datetime + collection searches through the service.

Builds the platform service (``create_app``) on a fresh SQLite database (or ``--database-url`` for PostgreSQL),
with one project, ``--collections`` datasets and ``--items`` items spread over them (daily items over several years,
bounding boxes scattered over the Arctic), inserted in bulk; then times ``--searches`` GET ``/stac/search``
requests (bbox + datetime interval + one collection, limit 10) through the ASGI app as a member, and the same as a
user who may read nothing. Not yet: the side-by-side run of stac-fastapi-pgstac that issue 13 asks for.

    .venv/bin/python bench/catalogue.py --items 100000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import load_catalogue
from polartep_hub.data.models import StacItem
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import upgrade_to_head
from tests.helpers.service_fakes import PREFIX, FakeIdentityProvider, user

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-catalogue-"))
    url = args.database_url or f"sqlite:///{folder / 'platform.sqlite'}"
    upgrade_to_head(url)
    hub = FakeIdentityProvider()
    hub.tokens["nobody-token"] = user("nobody")
    config = ServiceConfig(
        prefix=PREFIX, database_url=url, default_plan="trial", datasets_dir=str(folder / "data")
    )
    app = create_app(config, load_catalogue(), identity_provider=hub, passwords=Passwords())
    client = TestClient(app)

    def api(method: str, path: str, token: str, **kwargs):
        response = client.request(
            method, PREFIX + path, headers={"Authorization": f"token {token}"}, **kwargs
        )
        assert response.status_code < 300, response.text
        return response

    for name in ("alice", "nobody"):
        api("GET", f"api/v1/users/{name}/entitlements", "hub-token")
    api("POST", "api/v1/projects", "alice-token", json={"name": "bench"})
    ids = []
    for index in range(args.collections):
        api(
            "POST",
            "api/v1/datasets",
            "alice-token",
            json={"project": "bench", "name": f"c{index}", "storage_class": "hdd"},
        )
        ids.append(index + 1)
    rng = random.Random(13)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    began = time.monotonic()
    rows = []
    for number in range(args.items):
        dataset = ids[number % len(ids)]
        moment = start + timedelta(hours=6 * (number // len(ids)))
        west, south = rng.uniform(-180, 170), rng.uniform(55, 85)
        rows.append(
            {
                "dataset_id": dataset,
                "collection_id": f"bench:c{dataset - 1}",
                "item_id": f"item-{number}",
                "start_datetime": moment,
                "end_datetime": moment,
                "west": west,
                "south": south,
                "east": west + 10,
                "north": south + 5,
                "search_text": f"item-{number}",
                "body": json.dumps(
                    {"id": f"item-{number}", "collection": f"bench:c{dataset - 1}", "type": "Feature"}
                ),
            }
        )
    context = app.state.context
    with context.engine.begin() as connection:
        for first in range(0, len(rows), 10_000):
            connection.execute(insert(StacItem), rows[first : first + 10_000])
        # What autovacuum (PostgreSQL) or the next ANALYZE would do after a bulk load: fresh planner statistics.
        connection.execute(text("ANALYZE"))
    print(f"inserted {args.items} items in {time.monotonic() - began:.1f} s")

    def timed(token: str) -> list[float]:
        times = []
        for _ in range(args.searches):
            west, south = rng.uniform(-180, 150), rng.uniform(55, 80)
            day = start + timedelta(days=rng.uniform(0, 365 * 5))
            params = {
                "bbox": f"{west},{south},{west + 30},{south + 10}",
                "datetime": f"{day:%Y-%m-%dT%H:%M:%SZ}/{day + timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}",
                "collections": f"bench:c{rng.randrange(args.collections)}",
                "limit": "10",
            }
            t = time.perf_counter()
            api("GET", "stac/search", token, params=params)
            times.append((time.perf_counter() - t) * 1000)
        return sorted(times)

    for label, token in (("member", "alice-token"), ("no access", "nobody-token")):
        times = timed(token)
        p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
        print(f"{label}: {args.searches} searches, p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
