"""The spawn decision over HTTP, as the hub makes it, with a large ledger: p50 and p99.

Builds a platform-service database with ``--accounts`` accounts (Standard plan) and ``--rows`` closed usage intervals
spread over them and over the last three months (bulk inserts, month totals as the ledger keeps them), serves the
real service app with uvicorn on 127.0.0.1, and asks ``--decisions`` spawn decisions
(``POST .../users/<name>/server-admissions``) through the hub's own client (``PlatformClient.admit_server``, tornado,
with the hub's token), one at a time, each for a random account. The hub's identity is the test suite's fake (the
service caches token look-ups for a minute in production too), so what is timed is the HTTP round trip and the
decision. ``--database postgres`` runs it on a PostgreSQL server started for the bench (``tests/postgres_server.py``);
with ``--interleave`` it then times PostgreSQL's one-call decision (migration 0014_quota), the separate statements
it replaced and the HTTP floor in alternating blocks of 100, so that a shared machine's load falls on all three.

    .venv/bin/python bench/quota.py [--accounts 10000] [--rows 1000000] [--decisions 2000] [--database sqlite]
                                    [--interleave]

The last line states the headline figure and the target (p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from polartep_hub.accounts.passwords import Passwords  # noqa: E402
from polartep_hub.catalogue import load_catalogue  # noqa: E402
from polartep_hub.platform_client import PlatformClient  # noqa: E402
from polartep_hub.service.__main__ import GIL_SWITCH_INTERVAL_S  # noqa: E402
from polartep_hub.service.app import create_app  # noqa: E402
from polartep_hub.service.config import ServiceConfig  # noqa: E402
from polartep_hub.service.db import make_engine, upgrade_to_head  # noqa: E402
from polartep_hub.usage import quota  # noqa: E402
from polartep_hub.usage.models import UsageInterval, UsageMonthTotal  # noqa: E402
from polartep_hub.usage.periods import split_by_month  # noqa: E402
from tests.helpers.bench_fill import insert_accounts  # noqa: E402
from tests.helpers.service_fakes import FakeIdentityProvider  # noqa: E402

TARGET_P99_MS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(url: str, accounts: int, rows: int) -> float:
    """Accounts, plan periods, ``rows`` closed intervals and their month totals; returns the seconds it took."""
    started = time.perf_counter()
    engine = make_engine(url)
    now = datetime.now(UTC)
    rng = random.Random(11)
    names = [f"bench{i:05d}" for i in range(accounts)]
    totals: dict[tuple[str, str], float] = {}
    with engine.begin() as conn:
        insert_accounts(
            conn, names, plan="standard", plan_started_at=now - timedelta(days=200), created_at=now
        )
        batch = []
        for index in range(rows):
            name = names[index % accounts]
            start = now - timedelta(seconds=rng.uniform(60, 90 * 86400))
            stop = min(start + timedelta(seconds=rng.uniform(10, 3600)), now - timedelta(seconds=1))
            batch.append(
                {"account_name": name, "kind": "dask-worker", "source_key": f"bench/{index}", "cores": 1.0,
                 "memory_bytes": 2**31, "started_at": start, "stopped_at": stop, "profile": "small",
                 "charged_to": "plan:standard"}
            )  # fmt: skip
            for month, seconds in split_by_month(start, stop):
                totals[(name, month)] = totals.get((name, month), 0.0) + seconds
            if len(batch) == 20000:
                conn.execute(insert(UsageInterval.__table__), batch)  # core insert: no ORM events
                batch = []
        if batch:
            conn.execute(insert(UsageInterval.__table__), batch)
        conn.execute(
            insert(UsageMonthTotal.__table__),
            [{"account_name": n, "month": m, "core_seconds": v} for (n, m), v in totals.items()],
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def _serve_forever(url: str, port: int) -> None:
    """The service as ``python -m polartep_hub.service`` runs it: its own process, the same GIL switch interval."""
    config = ServiceConfig(prefix="/services/platform/", database_url=url, default_plan="trial", port=port)
    app = create_app(
        config,
        load_catalogue(),
        identity_provider=FakeIdentityProvider(),
        passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)),
    )
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve(url: str, port: int) -> multiprocessing.Process:
    """Start the service in a child process (the hub and the service are two processes in production: a server thread
    in the bench's own process would share its interpreter lock with the client it is timed by) and wait until it
    answers."""
    process = multiprocessing.get_context("fork").Process(
        target=_serve_forever, args=(url, port), daemon=True
    )
    process.start()
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the platform service did not start") from None
            time.sleep(0.05)


async def floor(port: int, requests: int) -> list[float]:
    """The same client's round trip to the service's health page: what HTTP alone costs on this machine now."""
    client = PlatformClient.http_client()
    times = []
    for index in range(requests + 50):
        started = time.perf_counter()
        await client.fetch(f"http://127.0.0.1:{port}/services/platform/health")
        if index >= 50:
            times.append(time.perf_counter() - started)
    return times


async def decide(port: int, accounts: int, decisions: int) -> tuple[list[float], dict[str, int]]:
    client = PlatformClient(f"http://127.0.0.1:{port}", "hub-token")
    rng = random.Random(5)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    for index in range(decisions + 50):
        name = f"bench{rng.randrange(accounts):05d}"
        started = time.perf_counter()
        try:
            await client.admit_server(name, "bench", "small")
            outcome = "admitted"
        except Exception as error:  # a refusal (403) is a decision too
            outcome = f"refused {getattr(error, 'status_code', '?')}"
        elapsed = time.perf_counter() - started
        if index >= 50:  # warm-up
            times.append(elapsed)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return times, outcomes


async def interleaved(port: int, accounts: int, decisions: int, block: int = 100) -> dict[str, list[float]]:
    """PostgreSQL's one-call decision, the separate statements it replaced and the HTTP floor, in alternating blocks
    of ``block`` requests, so the three see the same load on a shared machine (``--interleave``)."""
    one_call = quota._admit_in_one_call
    client = PlatformClient(f"http://127.0.0.1:{port}", "hub-token")
    http = PlatformClient.http_client()
    rng = random.Random(7)
    times: dict[str, list[float]] = {"one call": [], "statements": [], "HTTP floor": []}
    try:
        for _ in range(max(1, decisions // block)):
            for mode in times:
                # The service runs in this process: the statements are what admit_server does when the one call
                # gives no answer (quota.py).
                quota._admit_in_one_call = one_call if mode == "one call" else (lambda *a, **k: None)
                for _ in range(block):
                    started = time.perf_counter()
                    if mode == "HTTP floor":
                        await http.fetch(f"http://127.0.0.1:{port}/services/platform/health")
                    else:
                        await client.admit_server(f"bench{rng.randrange(accounts):05d}", "bench", "small")
                    times[mode].append(time.perf_counter() - started)
    finally:
        quota._admit_in_one_call = one_call
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="PostgreSQL: also time the one call, the separate statements and the floor in alternating blocks",
    )
    args = parser.parse_args()
    compared: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        postgres = None
        if args.database == "postgres":
            from tests.postgres_server import PostgresServer

            postgres = PostgresServer().start()
            url = postgres.create_database("bench_quota")
        else:
            url = f"sqlite:///{Path(root) / 'platform.sqlite'}"
        try:
            upgrade_to_head(url)
            filled = fill(url, args.accounts, args.rows)
            print(
                f"filled {args.accounts} accounts and {args.rows} ledger rows in {filled:.1f} s ({args.database})"
            )
            port = free_port()
            server = serve(url, port)
            health = asyncio.run(floor(port, min(args.decisions, 1000)))
            times, outcomes = asyncio.run(decide(port, args.accounts, args.decisions))
            if args.interleave and args.database == "postgres":
                compared = asyncio.run(interleaved(port, args.accounts, args.decisions))
            server.terminate()
            server.join(10)
        finally:
            if postgres is not None:
                postgres.stop()
    p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
    print(
        f"HTTP floor (GET health, same client): p50 {percentile(health, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(health, 0.99) * 1000:.2f} ms; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"decisions: {len(times)} ({outcomes}); mean {statistics.mean(times) * 1000:.2f} ms")
    for mode, values in compared.items():
        print(
            f"interleaved, {mode}: p50 {percentile(values, 0.5) * 1000:.2f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:.2f} ms ({len(values)} requests)"
        )
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(
        f"spawn decision over HTTP ({args.database}, {args.accounts} accounts, {args.rows} ledger rows): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; target p99 <= {TARGET_P99_MS:g} ms: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
