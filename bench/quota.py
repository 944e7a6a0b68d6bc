"""The spawn decision over HTTP, as the hub makes it, with a large ledger: p50 and p99.

Builds a platform-service database with ``--accounts`` accounts (Standard plan) and ``--rows`` closed usage intervals
spread over them and over the last three months (bulk inserts, month totals as the ledger keeps them), serves the
real service app with uvicorn on 127.0.0.1, and asks ``--decisions`` spawn decisions
(``POST .../users/<name>/server-admissions``) through the hub's own client (``PlatformClient.admit_server``, tornado,
with the hub's token), one at a time, each for a random account. The hub's identity is the test suite's fake (the
service caches token look-ups for a minute in production too), so what is timed is the HTTP round trip and the
decision. ``--database postgres`` runs it on a PostgreSQL server started for the bench (``tests/postgres_server.py``);
with ``--interleave`` it then times PostgreSQL's one-call decision (migration 0014_quota), the separate statements
it replaced and the HTTP floor in alternating blocks of 100, so that a shared machine's load falls on all three
(since the service runs in its own process the switch to the statements is made in the bench's process and no longer
reaches the service: both modes time the one call).

``--diagnose`` says where the time of each decision goes: the service records, on the monotonic clock that all
processes share, when each decision request entered its app and when its answer left, when the decision ran in its
worker thread, and every garbage collection; the client records its own collections. The slow decisions (over the
target) are split into client and HTTP, routing and hand-off to the thread, the decision, hand-back and answer, and
GC pauses inside. Then, in alternating blocks of 100: the shipped route, the same endpoint run on the event loop
(no thread pool), and the shipped route through a client that keeps its connection open (httpx).

    .venv/bin/python bench/quota.py [--accounts 10000] [--rows 1000000] [--decisions 2000] [--database sqlite]
                                    [--interleave] [--diagnose]

The last line states the headline figure and the target (p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import inspect
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import typing
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
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


class _GcPauses:
    """Every garbage collection of this process as (start, stop, generation) on the shared monotonic clock."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter(), info["generation"]))

    def install(self) -> _GcPauses:
        gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        gc.callbacks.remove(self)


DIAGNOSIS_PATH = "/bench-diagnosis"


class _StampRequests:
    """ASGI wrapper (``--diagnose``): when each decision request entered and left the service's app; ``GET
    /bench-diagnosis`` writes what was recorded (``write``) to the file (uvicorn ends the process on SIGTERM before
    ``run`` returns)."""

    def __init__(self, app, stamps: list[tuple[float, float]], write) -> None:
        self.app, self.stamps, self.write = app, stamps, write

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == DIAGNOSIS_PATH:
            self.write()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            return await send({"type": "http.response.body", "body": b""})
        if scope["type"] != "http" or not scope["path"].endswith("/server-admissions"):
            return await self.app(scope, receive, send)
        entered = time.perf_counter()

        async def stamped_send(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.stamps.append((entered, time.perf_counter()))  # the answer's last byte is on its way

        await self.app(scope, receive, stamped_send)


INLINE_SUFFIX = "-inline"


def _add_inline_admission_route(app) -> None:
    """``--diagnose``: the decision's route once more at ``.../server-admissions-inline``, the same endpoint with the
    same dependencies and answer, but run on the event loop instead of handed to the thread pool (FastAPI runs an
    ``async def`` endpoint in the loop), next to the shipped route in the routing table: what the two hand-offs
    between the loop and the thread cost, measured in one run."""
    (shipped,) = [r for r in app.router.routes if getattr(r, "path", "").endswith("/server-admissions")]
    hints = typing.get_type_hints(shipped.endpoint, include_extras=True)
    signature = inspect.signature(shipped.endpoint)
    endpoint = shipped.endpoint

    async def inline_endpoint(**kwargs):
        return endpoint(**kwargs)

    inline_endpoint.__signature__ = signature.replace(
        parameters=[p.replace(annotation=hints[p.name]) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    app.router.add_api_route(
        shipped.path + INLINE_SUFFIX,
        inline_endpoint,
        methods=["POST"],
        status_code=shipped.status_code,
        response_model=shipped.response_model,
    )
    routes = app.router.routes
    routes.insert(routes.index(shipped) + 1, routes.pop())


def _serve_forever(url: str, port: int, diagnose_to: str | None = None) -> None:
    """The service as ``python -m polartep_hub.service`` runs it: its own process, the same GIL switch interval.

    ``diagnose_to``: a file that gets, at shutdown, the process's GC pauses, when each decision request entered and
    left the app, and when each decision ran (``quota.admit_server``, in its worker thread), all on the monotonic
    clock that the client's times use too (``time.perf_counter`` is ``CLOCK_MONOTONIC``, one clock for all processes).
    """
    config = ServiceConfig(prefix="/services/platform/", database_url=url, default_plan="trial", port=port)
    app = create_app(
        config,
        load_catalogue(),
        identity_provider=FakeIdentityProvider(),
        passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)),
    )
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if diagnose_to is None:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
        return
    gc_pauses = _GcPauses().install()
    requests: list[tuple[float, float]] = []
    decisions: list[tuple[float, float]] = []
    decide_in_process = quota.admit_server

    # SQLite in WAL mode writes the database file only when it checkpoints the log (by default in the commit that
    # takes the log past 1000 pages): a change of the file's mtime during a decision says that it checkpointed.
    database_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None

    def written() -> int:
        return database_file.stat().st_mtime_ns if database_file is not None else 0

    def timed_admit_server(*args, **kwargs):
        before = written()
        started = time.perf_counter()
        try:
            return decide_in_process(*args, **kwargs)
        finally:
            decisions.append((started, time.perf_counter(), written() != before))

    def write() -> None:
        Path(diagnose_to).write_text(
            json.dumps({"gc": gc_pauses.pauses, "requests": requests, "decisions": decisions})
        )

    quota.admit_server = timed_admit_server  # the route calls quota.admit_server at request time
    _add_inline_admission_route(app)
    uvicorn.run(_StampRequests(app, requests, write), host="127.0.0.1", port=port, log_level="warning")


def serve(url: str, port: int, diagnose_to: str | None = None) -> multiprocessing.Process:
    """Start the service in a child process (the hub and the service are two processes in production: a server thread
    in the bench's own process would share its interpreter lock with the client it is timed by) and wait until it
    answers."""
    process = multiprocessing.get_context("fork").Process(
        target=_serve_forever, args=(url, port, diagnose_to), daemon=True
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


async def decide(
    port: int, accounts: int, decisions: int, stamps: list[tuple[float, float]] | None = None
) -> tuple[list[float], dict[str, int]]:
    """Time ``decisions`` spawn decisions after 50 warm-up ones; ``stamps`` (if given) gets each timed one's
    (start, stop) on the monotonic clock."""
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
        stopped = time.perf_counter()
        if index >= 50:  # warm-up
            times.append(stopped - started)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if stamps is not None:
                stamps.append((started, stopped))
    return times, outcomes


async def compare_paths(port: int, accounts: int, decisions: int, block: int = 100) -> dict[str, list[float]]:
    """``--diagnose``: in alternating blocks of ``block`` decisions, so all see the same load: the shipped route
    through the hub's client (tornado: a new connection per request), the same endpoint run on the event loop instead
    of the thread pool, and the shipped route through a client that keeps its connection open (httpx)."""
    client = PlatformClient(f"http://127.0.0.1:{port}", "hub-token")
    headers = {"Authorization": "token hub-token"}
    rng = random.Random(9)
    modes = {
        "hub's client, thread pool (shipped)": "",
        "hub's client, on the event loop": INLINE_SUFFIX,
        "keep-alive client (httpx), thread pool": None,
    }
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    async with httpx.AsyncClient(base_url=client.api_url, headers=headers) as kept:
        for _ in range(max(1, decisions // block)):
            for mode, suffix in modes.items():
                for _ in range(block):
                    path = f"users/bench{rng.randrange(accounts):05d}/server-admissions"
                    body = {"server": "bench", "profile": "small"}
                    started = time.perf_counter()
                    if suffix is None:
                        code = (await kept.post(path, json=body)).status_code
                    else:
                        code, _payload = await client._request("POST", path + suffix, body)
                    times[mode].append(time.perf_counter() - started)
                    assert code == 201, (mode, code)
    return times


def _within(spans: list[tuple[float, float]], start: float, stop: float) -> list[tuple[float, float]]:
    """The spans of ``spans`` (sorted by start) that lie inside [start, stop]."""
    first = bisect.bisect_left(spans, (start, start))
    found = []
    for span in spans[first:]:
        if span[0] > stop:
            break
        if span[1] <= stop:
            found.append(span)
    return found


def _overlaps(pauses: list[tuple[float, float, int]], start: float, stop: float) -> float:
    """Seconds of ``pauses`` inside [start, stop]."""
    return sum(max(0.0, min(stop, b) - max(start, a)) for a, b, _ in pauses if a < stop and b > start)


def diagnose(
    client: list[tuple[float, float]], client_gc: list, server: dict, threshold_s: float
) -> list[str]:
    """Where each decision's time went (``--diagnose``), and what the slow ones (over ``threshold_s``) had in common:
    lines to print."""
    served = sorted(map(tuple, server["requests"]))
    decided = sorted(map(tuple, server["decisions"]))
    server_gc = [tuple(p) for p in server["gc"]]
    # (total, outside the app, app to the decision's start, the decision, its end to the answer, server GC, client GC)
    rows = []
    with_checkpoint: list[float] = []
    without_checkpoint: list[float] = []
    slow_checkpoints = 0
    for start, stop in client:
        inside = _within(served, start, stop)
        if len(inside) != 1:
            continue
        entered, left = inside[0]
        decision = _within(decided, entered, left)
        if len(decision) != 1:
            continue
        began, ended, checkpointed = decision[0]
        (with_checkpoint if checkpointed else without_checkpoint).append(ended - began)
        slow_checkpoints += checkpointed and stop - start > threshold_s
        rows.append(
            (stop - start, (stop - start) - (left - entered), began - entered, ended - began, left - ended,
             _overlaps(server_gc, start, stop), _overlaps(client_gc, start, stop))
        )  # fmt: skip
    names = ("total", "client and HTTP (outside the app)", "app: routing, dependencies, hand-off to the thread",
             "decision (in the thread)", "app: hand-back from the thread and the answer", "server GC inside",
             "client GC inside")  # fmt: skip
    lines = [f"diagnose: {len(rows)} of {len(client)} decisions matched to the service's stamps"]
    for column, name in enumerate(names):
        values = [r[column] for r in rows]
        lines.append(
            f"  {name}: p50 {percentile(values, 0.5) * 1000:.2f} ms, p99 {percentile(values, 0.99) * 1000:.2f} ms, "
            f"max {max(values) * 1000:.2f} ms"
        )
    slow = [r for r in rows if r[0] > threshold_s]
    lines.append(
        f"  over {threshold_s * 1000:g} ms: {len(slow)} decisions ({len(slow) / max(1, len(rows)):.1%})"
    )
    for column, name in enumerate(names[1:5], start=1):
        largest = sum(1 for r in slow if max((1, 2, 3, 4), key=lambda c, r=r: r[c]) == column)
        lines.append(
            f"    {name}: median {statistics.median(r[column] for r in slow or [rows[0]]) * 1000:.2f} ms, "
            f"the largest part in {largest}"
        )
    for column, name in enumerate(names[5:], start=5):
        lines.append(
            f"    {name}: in {sum(1 for r in slow if r[column] > 0)} of them, "
            f"{sum(r[column] for r in slow) * 1000:.1f} ms in all"
        )
    if with_checkpoint:
        lines.append(
            f"  SQLite checkpoints: in {len(with_checkpoint)} decisions, which took p50 "
            f"{statistics.median(with_checkpoint) * 1000:.2f} ms (max {max(with_checkpoint) * 1000:.2f} ms); the "
            f"{len(without_checkpoint)} others p50 {statistics.median(without_checkpoint) * 1000:.2f} ms, p99 "
            f"{percentile(without_checkpoint, 0.99) * 1000:.2f} ms; of the slow decisions {slow_checkpoints} checkpointed"
        )
    by_generation = {}
    window = (client[0][0], client[-1][1]) if client else (0.0, 0.0)
    for a, b, generation in server_gc:
        if not window[0] <= a <= window[1]:
            continue  # start-up and the floor's requests: not the timed decisions'

        count, total, longest = by_generation.get(generation, (0, 0.0, 0.0))
        by_generation[generation] = (count + 1, total + (b - a), max(longest, b - a))
    lines.append(
        "  server GC while the decisions were timed: "
        + ", ".join(
            f"gen {g}: {c} x, {t * 1000:.1f} ms, longest {m * 1000:.2f} ms"
            for g, (c, t, m) in sorted(by_generation.items())
        )  # fmt: skip
    )
    return lines


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
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also say where each decision's time went (client and HTTP, the app, the decision, GC of either side)",
    )
    args = parser.parse_args()
    diagnosis: list[str] = []
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
            diagnose_to = str(Path(root) / "diagnosis.json") if args.diagnose else None
            server = serve(url, port, diagnose_to)
            health = asyncio.run(floor(port, min(args.decisions, 1000)))
            stamps: list[tuple[float, float]] | None = [] if args.diagnose else None
            client_gc = _GcPauses().install() if args.diagnose else None
            times, outcomes = asyncio.run(decide(port, args.accounts, args.decisions, stamps))
            if client_gc is not None:
                client_gc.remove()
                urllib.request.urlopen(f"http://127.0.0.1:{port}{DIAGNOSIS_PATH}", timeout=30).close()
            if args.interleave and args.database == "postgres":
                compared = asyncio.run(interleaved(port, args.accounts, args.decisions))
            if diagnose_to is not None:
                compared = asyncio.run(compare_paths(port, args.accounts, args.decisions))
            server.terminate()
            server.join(10)
            if diagnose_to is not None:
                diagnosis = diagnose(
                    stamps, client_gc.pauses, json.loads(Path(diagnose_to).read_text()), TARGET_P99_MS / 1000
                )
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
    for line in diagnosis:
        print(line)
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(
        f"spawn decision over HTTP ({args.database}, {args.accounts} accounts, {args.rows} ledger rows): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; target p99 <= {TARGET_P99_MS:g} ms: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
