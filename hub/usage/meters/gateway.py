"""The Dask Gateway meter: every scheduler's and worker's start and stop, as usage intervals, with no gaps.

**Mechanism: the meter reads the gateway's own database.** dask-gateway-server's database-backed backends (the
local one here, and container backends built on ``DBBackendBase``) record every cluster and every worker in their
database *before* starting it, with ``start_time``, and write ``stop_time`` when it has stopped; running clusters
survive gateway restarts through that database. It is therefore the one complete, durable record of what ran.
The alternatives were weighed and rejected:

* *Polling the gateway's REST API* cannot see everything: ``GET /api/v1/clusters/`` lists only the calling user's
  clusters (dask-gateway-server filters by the authenticated name, admins included) and reports no workers at all;
  and a JupyterHub token that "sees all users' clusters" does not exist for it.
* *Events pushed by the backend* (a hook calling the platform service) lose whatever happens while the service is
  down, unless they are queued durably, which is what the gateway's database already is.

So the meter is *level-triggered*, in dask-gateway-server's own style: a reconciliation loop compares the gateway's
records with the open intervals and repairs the difference; state lives only in the two databases; each pass is
idempotent; a failing pass is retried with exponential backoff. It runs inside the platform service (a task
started by the FastAPI lifespan, ``service/app.py``): the service owns the ledger, needs no extra credential, and
the hub restarts it when it dies. The meter only ever reads the gateway's database (SQLite ``query_only``).

Rules this module guarantees:

* One interval per scheduler (kind ``dask-scheduler``, ``source_key`` the cluster's name) and per worker (kind
  ``dask-worker``, ``<cluster>/<worker>``), holding the account (the gateway's user name), the cores and memory the
  cluster's configuration reserves for it, and the gateway's start and stop times (the reservation's wall time).
* **No gaps**: a pass after any outage (platform service or gateway restarted or killed) opens the intervals of
  everything that started meanwhile, including what already stopped, and closes what stopped with the gateway's
  exact stop time. Records of stopped clusters stay in the gateway's database for days
  (``gateway/config.py STOPPED_RECORDS_DAYS``), so any shorter outage loses nothing.
* **No double counting**: ``(kind, source_key)`` is unique in the ledger; an interval is inserted once and closed
  once, and a pass and its checkpoint commit in one transaction.
* An interval is closed only with a known stop time. If its record vanished from the gateway's database (an outage
  longer than the retention, or a wiped database), it is closed at the meter's last complete pass before (the last
  moment it was known to run), never later.
* A gateway database that does not exist or cannot be read closes nothing: the pass fails and is retried.
* **An erased user is never metered.** No interval is opened for a name whose erasure is pending (its clusters are
  being stopped; the erasure closes what is open, at the gateway's exact stop times where known) or for a pseudonym
  (``erased-...``, a prefix no account may have). Before the erasure deletes the account it settles the user's
  records (``settle_account``: every scheduler and worker of the user in the gateway's database is in the ledger,
  closed with its stop time), so no later pass finds one unknown and opens it under the erased name (or under a
  new account that took the name). Passes and that settlement hold ``LEDGER_LOCK``, so they never interleave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from polartep_hub.accounts.models import Account, PendingErasure
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.meters.backoff import backoff_delay
from polartep_hub.usage.models import MeterCheckpoint, UsageInterval

if TYPE_CHECKING:
    from polartep_hub.service.config import ServiceConfig
    from polartep_hub.service.context import ServiceContext

log = logging.getLogger(__name__)


class JobStatus(IntEnum):
    """dask-gateway-server's ``JobStatus`` (``dask_gateway_server.backends.db_base``), the ``status`` column of its
    ``clusters`` and ``workers`` tables, mirrored here. Importing the original imports
    ``dask_gateway_server.traitlets``, which swaps the log formatter and format of every traitlets ``Application``
    in the importing process for colorlog's (in the hub: ``KeyError: 'color'`` on every log line); the platform
    service, which runs this meter, has no such Application today, but it keeps out of that global patch (and of
    aiohttp and colorlog). ``tests/accounting`` asserts both enums have the same members and values."""

    CREATED = 1
    SUBMITTED = 2
    RUNNING = 3
    CLOSING = 4
    STOPPED = 5
    FAILED = 6


METER_NAME = "dask-gateway"
SCHEDULER_KIND = "dask-scheduler"
WORKER_KIND = "dask-worker"
KINDS = (SCHEDULER_KIND, WORKER_KIND)
# The gateway takes a stop time and commits it a moment later; records that stopped this long before the last
# complete pass were certainly seen by it and need not be read again.
RECHECK_MARGIN = timedelta(minutes=5)
_ACCOUNT_NAME_LENGTH = 64
# Pseudonyms of erased accounts (personal_data.PSEUDONYM_PREFIX; accounts.RESERVED_NAME_PREFIX).
PSEUDONYM_PREFIX = "erased-"
# One meter pass or one erasure's ledger settlement at a time, in this (the platform service's) process.
LEDGER_LOCK = threading.Lock()


class GatewayDatabaseUnavailable(RuntimeError):
    """The gateway's database does not exist (yet) or cannot be read; nothing is closed on that basis."""


class GatewayDatabaseMissing(GatewayDatabaseUnavailable):
    """The gateway's database file does not exist (yet): no cluster has ever been recorded there."""


@dataclass(frozen=True)
class MeteredProcess:
    """One scheduler or worker as the gateway's database records it."""

    kind: str
    source_key: str
    account_name: str
    cores: float
    memory_bytes: int
    started_at: datetime
    stopped_at: datetime | None
    profile: str | None = None  # the workers' catalogue profile (PlatformClusterConfig.worker_profile)
    plan: str | None = None  # the plan the cluster was created under


def interval_of(process: MeteredProcess, account: str) -> UsageInterval:
    """A new ledger row for ``process``, charged to ``account`` (on the plan the cluster was created under)."""
    return UsageInterval(
        account_name=account,
        kind=process.kind,
        source_key=process.source_key,
        cores=process.cores,
        memory_bytes=process.memory_bytes,
        started_at=process.started_at,
        stopped_at=process.stopped_at,
        profile=process.profile,
        charged_to=f"plan:{process.plan}" if process.plan else None,
    )


@dataclass
class PassResult:
    """What one reconciliation pass changed (for logs and tests)."""

    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    not_metered: list[str] = field(default_factory=list)  # of accounts being erased (or pseudonyms)

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.closed or self.vanished)


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _config(raw: bytes | str | None) -> dict:
    if raw is None:
        return {}
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw)


def gateway_engine(url: str) -> Engine:
    """An engine that only reads the gateway's database (SQLite: ``query_only``, never created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise ValueError(f"the gateway's database must be a file to be metered, got {url!r}")

        def connect() -> sqlite3.Connection:
            if not Path(path).exists():
                raise GatewayDatabaseMissing(f"the gateway's database {path} does not exist (yet)")
            # mode=rw, not ro: the gateway's database is in write-ahead-log mode, whose readers must be able to
            # create the shared-memory index when the gateway is not running. rw never creates the database,
            # and this module only ever reads.
            connection = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, timeout=10, check_same_thread=False
            )
            connection.execute("PRAGMA query_only=ON")
            return connection

        return create_engine("sqlite://", creator=connect, poolclass=NullPool)
    return create_engine(url, poolclass=NullPool)


def read_gateway_processes(engine: Engine, stopped_since: datetime | None) -> list[MeteredProcess]:
    """Schedulers and workers that run, or stopped at or after ``stopped_since`` (``None``: every record)."""
    cutoff = -1 if stopped_since is None else _to_ms(stopped_since)
    found: list[MeteredProcess] = []
    try:
        with engine.connect() as conn:
            clusters = conn.execute(
                text(
                    "SELECT name, username, status, config, start_time, stop_time FROM clusters "
                    "WHERE stop_time IS NULL OR stop_time >= :cutoff"
                ),
                {"cutoff": cutoff},
            ).all()
            # One statement per table: each is a consistent snapshot, and a worker carries its cluster's stop time
            # (a cluster's shutdown marks its workers stopped without a stop time of their own).
            workers = conn.execute(
                text(
                    "SELECT w.name, c.name, c.username, c.config, w.status, w.start_time, w.stop_time, c.stop_time "
                    "FROM workers w JOIN clusters c ON w.cluster_id = c.id "
                    "WHERE COALESCE(w.stop_time, c.stop_time) IS NULL OR COALESCE(w.stop_time, c.stop_time) >= :cutoff"
                ),
                {"cutoff": cutoff},
            ).all()
    except GatewayDatabaseUnavailable:
        raise
    except (SQLAlchemyError, sqlite3.Error) as e:
        raise GatewayDatabaseUnavailable(
            f"cannot read the gateway's database: {type(e).__name__}: {e}"
        ) from e

    for name, username, status, raw_config, start_ms, stop_ms in clusters:
        config = _config(raw_config)
        found.append(
            MeteredProcess(
                kind=SCHEDULER_KIND,
                source_key=name,
                account_name=username,
                cores=float(config.get("scheduler_cores", 1)),
                memory_bytes=int(config.get("scheduler_memory", 0)),
                started_at=_from_ms(start_ms),
                stopped_at=_from_ms(stop_ms) if status >= JobStatus.STOPPED else None,
                plan=config.get("plan") or None,
            )
        )
    for worker, cluster, username, raw_config, status, start_ms, stop_ms, cluster_stop_ms in workers:
        config = _config(raw_config)
        stopped = (
            stop_ms if stop_ms is not None else (cluster_stop_ms if status >= JobStatus.STOPPED else None)
        )
        found.append(
            MeteredProcess(
                kind=WORKER_KIND,
                source_key=f"{cluster}/{worker}",
                account_name=username,
                cores=float(config.get("worker_cores", 1)),
                memory_bytes=int(config.get("worker_memory", 0)),
                started_at=_from_ms(start_ms),
                stopped_at=_from_ms(stopped),
                profile=config.get("worker_profile") or None,
                plan=config.get("plan") or None,
            )
        )
    return found


class GatewayMeter:
    """Copies the gateway's schedulers and workers into ``usage_intervals``; ``run()`` is the loop."""

    def __init__(
        self,
        gateway_db_url: str,
        sessions: sessionmaker[Session],
        *,
        interval: float = 10.0,
        max_backoff: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = gateway_engine(gateway_db_url)
        self.sessions = sessions
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.clock = clock
        self.failures = 0

    def reconcile_once(self) -> PassResult:
        """One pass: read the gateway's records, open missing intervals, close ended ones, save the checkpoint."""
        with LEDGER_LOCK:
            return self._reconcile_once()

    def _reconcile_once(self) -> PassResult:
        result = PassResult()
        with self.sessions() as session:
            being_erased = set(session.scalars(select(Account.name).join(PendingErasure)))
            checkpoint = session.get(MeterCheckpoint, METER_NAME)
            # Taken before reading: anything the gateway commits after this moment is read by the next pass.
            pass_started = self.clock()
            since = None if checkpoint is None else checkpoint.last_pass_at - RECHECK_MARGIN
            processes = read_gateway_processes(self.engine, since)

            seen = {(p.kind, p.source_key): p for p in processes}
            known: dict[tuple[str, str], UsageInterval] = {}
            open_rows = session.scalars(
                select(UsageInterval).where(UsageInterval.kind.in_(KINDS), UsageInterval.stopped_at.is_(None))
            ).all()
            for row in open_rows:
                known[(row.kind, row.source_key)] = row
            for kind in KINDS:
                keys = [key for k, key in seen if k == kind and (k, key) not in known]
                for start in range(0, len(keys), 500):
                    for row in session.scalars(
                        select(UsageInterval).where(
                            UsageInterval.kind == kind,
                            UsageInterval.source_key.in_(keys[start : start + 500]),
                        )
                    ):
                        known[(row.kind, row.source_key)] = row

            for key, process in seen.items():
                row = known.get(key)
                if row is None:
                    account = process.account_name
                    if account in being_erased or account.startswith(PSEUDONYM_PREFIX):
                        result.not_metered.append(process.source_key)
                        continue
                    if len(account) > _ACCOUNT_NAME_LENGTH:
                        log.warning("gateway user %r is longer than an account name; truncated", account)
                        account = account[:_ACCOUNT_NAME_LENGTH]
                    session.add(interval_of(process, account))
                    result.opened.append(process.source_key)
                    if process.stopped_at is not None:
                        result.closed.append(process.source_key)
                elif row.stopped_at is None and process.stopped_at is not None:
                    row.stopped_at = max(process.stopped_at, row.started_at)
                    result.closed.append(process.source_key)

            for key, row in known.items():
                if row.stopped_at is None and key not in seen:
                    last_seen = checkpoint.last_pass_at if checkpoint is not None else row.started_at
                    row.stopped_at = max(last_seen, row.started_at)
                    result.vanished.append(row.source_key)

            if checkpoint is None:
                session.add(MeterCheckpoint(meter=METER_NAME, last_pass_at=pass_started))
            else:
                checkpoint.last_pass_at = pass_started
            session.commit()
        if result.changed:
            log.info(
                "gateway meter: %d opened, %d closed, %d vanished (closed at the last pass)",
                len(result.opened),
                len(result.closed),
                len(result.vanished),
            )
        return result

    def next_delay(self, failed: bool) -> float:
        """The wait before the next pass: the interval, or an exponential backoff after failures."""
        self.failures = 0 if not failed else self.failures + 1
        return backoff_delay(self.interval, self.max_backoff, self.failures)

    async def run(self) -> None:
        """Reconcile now and then every ``interval`` seconds until cancelled; failures back off, never stop it."""
        log.info("gateway meter started (every %g s)", self.interval)
        while True:
            try:
                # Blocking database work runs in a thread, off the service's event loop.
                await asyncio.to_thread(self.reconcile_once)
                delay = self.next_delay(failed=False)
            except asyncio.CancelledError:
                raise
            except GatewayDatabaseUnavailable as e:
                delay = self.next_delay(failed=True)
                log.log(
                    logging.INFO if self.failures == 1 else logging.DEBUG,
                    "gateway meter: %s; retry in %g s",
                    e,
                    delay,
                )
            except Exception:
                delay = self.next_delay(failed=True)
                log.exception("gateway meter pass failed; retry in %g s", delay)
            await asyncio.sleep(delay)

    def close(self) -> None:
        self.engine.dispose()


def settle_account(session: Session, engine: Engine, name: str, pseudonym: str | None = None) -> int:
    """Put every scheduler and worker of ``name`` that the gateway's database records (under the name, or under
    ``pseudonym`` once the gateway has forgotten the name) into the ledger under ``name``, closed with its stop time
    where it has stopped; returns how many rows were added or closed. Flushes, does not commit.

    Run by erasure inside its final transaction, with ``LEDGER_LOCK`` held and the user's clusters already stopped;
    ``GatewayDatabaseUnavailable`` when the database exists but cannot be read (the erasure then stays pending).
    """
    owners = {name, pseudonym} - {None}
    processes = [p for p in read_gateway_processes(engine, None) if p.account_name in owners]
    changed = 0
    for process in processes:
        row = session.scalar(
            select(UsageInterval).where(
                UsageInterval.kind == process.kind, UsageInterval.source_key == process.source_key
            )
        )
        if row is None:
            session.add(interval_of(process, name))
            changed += 1
        elif row.stopped_at is None and process.stopped_at is not None:
            row.stopped_at = max(process.stopped_at, row.started_at)
            changed += 1
    session.flush()
    return changed


def start_gateway_meter(config: ServiceConfig, context: ServiceContext) -> asyncio.Task | None:
    """Start the meter as a task of the running service when ``config`` names the gateway's database."""
    if not config.gateway_db_url:
        return None
    meter = GatewayMeter(config.gateway_db_url, context.sessions, interval=config.gateway_meter_interval)
    task = asyncio.create_task(meter.run(), name="gateway-meter")
    task.add_done_callback(lambda _: meter.close())
    return task
