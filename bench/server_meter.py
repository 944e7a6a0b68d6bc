"""One server-meter pass with many running servers (issue 11): what a pass costs beyond asking the hub.

Builds a platform-service database with ``--servers`` accounts (Standard plan), each with one running server, and
serves JupyterHub's ``GET /hub/api/users?state=active`` listing of those servers (paginated by 200, the shape
JupyterHub 6 answers with, each server's profile in its spawner state) from a small HTTP server on 127.0.0.1. The
real ``ServerMeter`` (``hub/usage/meters/servers.py``) then reconciles through the real ``HubAPI`` client:

* **first pass**: every server is new, so the pass opens one interval per server (the ledger's writes);
* **steady passes** (``--passes``): nothing changed, the pass only lists, compares and saves its checkpoint;
* **a pass after 10 % of the servers stopped**: it closes their intervals.

Baseline: the same client listing the same servers (``HubAPI.active_servers``) with no database work; the ratio says
how much a steady pass adds to the listing it cannot avoid. No target is set by the issue; the pass runs every
``gateway_meter_interval`` (default 10 s), so a steady pass must stay far below that.

    .venv/bin/python bench/server_meter.py [--servers 500] [--passes 20] [--database sqlite|postgres]

The last line states the headline figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from polartep_hub.catalogue import load_catalogue  # noqa: E402
from polartep_hub.service.db import make_engine, make_sessionmaker, upgrade_to_head  # noqa: E402
from polartep_hub.service.hub_api import HubAPI  # noqa: E402
from polartep_hub.usage.meters.servers import ServerMeter  # noqa: E402
from polartep_hub.usage.models import UsageInterval  # noqa: E402
from tests.helpers.bench_fill import insert_accounts  # noqa: E402

PAGE = 200


class FakeHubListing:
    """The active servers as JupyterHub lists them; ``running`` is what the next listing shows."""

    def __init__(self, names: list[str], started: datetime) -> None:
        self.running = {name: started for name in names}
        self.lock = threading.Lock()

    def page(self, offset: int, limit: int) -> dict:
        with self.lock:
            names = sorted(self.running)
            items = [
                {
                    "name": name,
                    "servers": {
                        "": {
                            "started": self.running[name].isoformat().replace("+00:00", "Z"),
                            "pending": None,
                            "state": {"profile": "interactive"},
                        }
                    },
                }
                for name in names[offset : offset + limit]
            ]
        following = {"offset": offset + limit} if offset + limit < len(names) else None
        return {"items": items, "_pagination": {"offset": offset, "limit": limit, "next": following}}

    def serve(self) -> ThreadingHTTPServer:
        listing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                if parts.path != "/hub/api/users":
                    self.send_error(404)
                    return
                query = parse_qs(parts.query)
                body = json.dumps(
                    listing.page(int(query.get("offset", ["0"])[0]), int(query.get("limit", [str(PAGE)])[0]))
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def fill(url: str, names: list[str], now: datetime) -> None:
    upgrade_to_head(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        insert_accounts(
            conn, names, plan="standard", plan_started_at=now - timedelta(days=20), created_at=now
        )
    engine.dispose()


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def run(url: str, servers: int, passes: int) -> None:
    now = datetime.now(UTC)
    names = [f"meter{i:05d}" for i in range(servers)]
    fill(url, names, now)
    listing = FakeHubListing(names, now - timedelta(minutes=5))
    http = listing.serve()
    hub_api = HubAPI(f"http://127.0.0.1:{http.server_address[1]}/hub/api", "bench-token")
    engine = make_engine(url)
    meter = ServerMeter(hub_api, make_sessionmaker(engine), load_catalogue())
    try:
        first_ms = timed(lambda: meter.reconcile_once())
        with meter.sessions() as session:
            opened = session.scalar(select(func.count()).select_from(UsageInterval))
        assert opened == servers, f"the first pass opened {opened} intervals, not {servers}"
        listing_ms = [timed(hub_api.active_servers) for _ in range(passes)]
        steady_ms = [timed(lambda: meter.reconcile_once()) for _ in range(passes)]
        with listing.lock:
            for name in names[: servers // 10]:
                del listing.running[name]
        closing_ms = timed(lambda: meter.reconcile_once())
        with meter.sessions() as session:
            closed = session.scalar(
                select(func.count()).select_from(UsageInterval).where(UsageInterval.stopped_at.is_not(None))
            )
        assert closed == servers // 10, f"the closing pass closed {closed} intervals, not {servers // 10}"
    finally:
        hub_api.close()
        http.shutdown()
        engine.dispose()
    listing_p50 = statistics.median(listing_ms)
    steady_p50 = statistics.median(steady_ms)
    print(
        f"listing {servers} servers through HubAPI (baseline): p50 {listing_p50:.1f} ms, max {max(listing_ms):.1f} ms"
    )
    print(f"first pass (opens {servers} intervals): {first_ms:.1f} ms")
    print(f"steady pass: p50 {steady_p50:.1f} ms, max {max(steady_ms):.1f} ms ({passes} passes)")
    print(f"pass closing {servers // 10} intervals: {closing_ms:.1f} ms")
    print(
        f"server meter, {servers} running servers ({engine.dialect.name}): steady pass p50 {steady_p50:.1f} ms = "
        f"{steady_p50 / listing_p50:.2f} x the hub listing alone ({listing_p50:.1f} ms); first pass {first_ms:.0f} ms; "
        "no target set (a pass runs every 10 s by default)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polartep-bench-meter-") as folder:
        postgres = None
        url = f"sqlite:///{folder}/platform.sqlite"
        if args.database == "postgres":
            from tests.postgres_server import PostgresServer

            postgres = PostgresServer().start()
            url = postgres.create_database("bench_meter")
        try:
            run(url, args.servers, args.passes)
        finally:
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
