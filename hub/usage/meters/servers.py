"""The server meter: every single-user server's (default and named) start and stop, as usage intervals, at the
profile's cores and memory.

**Mechanism: level-triggered reconciliation with JupyterHub's REST API**, in the gateway meter's style
(``gateway.py``). Each pass lists every active server (``HubAPI.active_servers``: user, name, the hub's ``started``
and the profile), opens the interval of each server the ledger lacks, closes the open intervals of servers that are
no longer listed, and saves its checkpoint, all in one transaction. The hub also reports each stop it makes, with
its exact time (``record_stop``, from the spawner's ``stop``: ``POST .../server-stops``), and which stops it did not
make (a server found dead). Rejected alternatives: *only* events from the hub (lost while the service is down, and
a hub killed mid-stop never sends one); reading the hub's database (it is the hub's private state, and the
service would need its credentials).

Rules this module guarantees:

* Only admitted servers are metered: JupyterHub lists a spawn (with its ``started``) before the quota decides it, so
  a listed server is opened only once its profile is known from the spawner's state or from its quota reservation;
  a refused spawn never is.
* One interval per server run: kind ``server``, ``source_key`` ``<user>/<server>@<started>`` (the hub's start
  time; a restarted server is a new run), the account, the profile's cores and memory from the catalogue, what it
  is charged to (``plan:<plan>``, or ``subscription:<name>`` when only a subscription grants the profile), and
  ``started_at`` = the hub's ``started`` (exact, also for a run first seen after an outage).
* **Stops**: a stop the hub made closes the interval at the hub's stop time (never before its start, never in the
  future). A stop the hub did not make (a crash, an out-of-memory kill: reported as ``crashed``, or a server that
  vanished from the listing unreported) closes it at the meter's **last observation**: the last complete pass
  before, when it was certainly still listed; so time nobody saw is never charged.
* **Restart-safe, nothing twice**: ``(kind, source_key)`` is unique in the ledger; a run is opened once and closed
  once; a pass and its checkpoint commit together, and passes and stop reports hold ``SERVER_LEDGER_LOCK``. A service
  killed at any line either committed a pass or did not; the next pass repairs the difference (runs started
  meanwhile open at their exact ``started``; runs that ended meanwhile without a report close at the last
  observation before the outage).
* **Reserve, then commit**: opening a server's interval deletes its pending quota reservation in the same
  transaction (``quota.py``), so it is counted once, first as a reservation, then as an interval.
* **An erased user is never metered**: intervals open only for accounts that exist and are not being erased,
  checked in the pass's own transaction (erasure closes what is open and renames it, ``personal_data.py``).
* A hub that cannot be asked closes nothing: the pass fails and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.accounts.entitlements import active_subscriptions
from polartep_hub.accounts.models import Account, PendingErasure
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.meters.backoff import backoff_delay
from polartep_hub.usage.models import MeterCheckpoint, QuotaReservation, UsageInterval
from polartep_hub.usage.quota import (
    SERVER_KIND,
    account_lock,
    delete_expired_reservations,
    release_reservation,
)

if TYPE_CHECKING:
    from polartep_hub.service.context import ServiceContext
    from polartep_hub.service.hub_api import HubAPI

log = logging.getLogger(__name__)

METER_NAME = "servers"
# One pass or one stop report at a time in this (the platform service's) process.
SERVER_LEDGER_LOCK = threading.Lock()
PSEUDONYM_PREFIX = "erased-"


@dataclass(frozen=True)
class RunningServer:
    """One server as JupyterHub lists it."""

    user: str
    name: str
    started_at: datetime
    profile: str | None

    @property
    def source_key(self) -> str:
        return server_source_key(self.user, self.name, self.started_at)


def server_source_key(user: str, server: str, started_at: datetime) -> str:
    """The ledger's key of one run of a server: ``<user>/<server>@<started, ISO 8601 UTC>``."""
    return f"{user}/{server}@{started_at.astimezone(UTC).isoformat(timespec='microseconds')}"


def parse_hub_time(value: str | None) -> datetime | None:
    """A JupyterHub timestamp (ISO 8601, ``Z`` or an offset) as an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class PassResult:
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # listed, profile not known yet: opened by a later pass
    not_metered: list[str] = field(default_factory=list)  # of no account, or of one being erased

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.closed)


def charged_to(session: Session, catalogue: Catalogue, account: Account | None, profile: str) -> str | None:
    """``plan:<plan>`` when the plan grants ``profile`` (or the account is an admin), else the first active
    subscription granting it as ``subscription:<name>``; None for an unknown account."""
    if account is None:
        return None
    plan = catalogue.plans.get(account.plan)
    if account.is_admin or (plan is not None and profile in plan.profiles):
        return f"plan:{account.plan}"
    for row in active_subscriptions(session, account):
        subscription = catalogue.subscriptions.get(row.subscription)
        if subscription is not None and subscription.profile == profile:
            return f"subscription:{row.subscription}"
    return f"plan:{account.plan}"


def _open_interval(
    session: Session,
    catalogue: Catalogue,
    server: RunningServer,
    profile_name: str,
    stopped_at: datetime | None,
) -> UsageInterval | None:
    profile = catalogue.profiles.get(profile_name)
    if profile is None:
        log.warning(
            "server %s runs profile %r, which the catalogue lacks; not metered",
            server.source_key,
            profile_name,
        )
        return None
    account = session.scalar(select(Account).where(Account.name == server.user))
    row = UsageInterval(
        account_name=server.user,
        kind=SERVER_KIND,
        source_key=server.source_key,
        cores=profile.cpu,
        memory_bytes=profile.memory,
        started_at=server.started_at,
        stopped_at=None if stopped_at is None else max(stopped_at, server.started_at),
        profile=profile.name,
        charged_to=charged_to(session, catalogue, account, profile.name),
    )
    session.add(row)
    # Commit of the reservation: from now on the interval counts, the reservation no longer.
    release_reservation(session, server.user, SERVER_KIND, server.name)
    return row


class ServerMeter:
    """Copies the hub's running servers into ``usage_intervals``; ``run()`` is the loop."""

    def __init__(
        self,
        hub_api: HubAPI,
        sessions: sessionmaker[Session],
        catalogue: Catalogue,
        *,
        interval: float = 10.0,
        max_backoff: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.hub_api = hub_api
        self.sessions = sessions
        self.catalogue = catalogue
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.clock = clock
        self.failures = 0

    def list_servers(self) -> list[RunningServer]:
        found = []
        for model in self.hub_api.active_servers():
            started = parse_hub_time(model.get("started"))
            if started is None or model["user"].startswith(PSEUDONYM_PREFIX):
                continue
            found.append(RunningServer(model["user"], model["name"], started, model.get("profile")))
        return found

    def reconcile_once(self) -> PassResult:
        """One pass: list the hub's servers, open missing intervals, close vanished ones, save the checkpoint."""
        with SERVER_LEDGER_LOCK:
            return self._reconcile_once()

    def _reconcile_once(self) -> PassResult:
        result = PassResult()
        # Taken before listing: whatever is listed was running at this moment or later.
        pass_started = self.clock()
        servers = self.list_servers()
        with self.sessions() as session:
            checkpoint = session.get(MeterCheckpoint, METER_NAME)
            seen = {s.source_key: s for s in servers}
            known = {
                row.source_key: row
                for row in session.scalars(
                    select(UsageInterval).where(
                        UsageInterval.kind == SERVER_KIND, UsageInterval.stopped_at.is_(None)
                    )
                )
            }
            missing = [key for key in seen if key not in known]
            for start in range(0, len(missing), 500):
                for row in session.scalars(
                    select(UsageInterval).where(
                        UsageInterval.kind == SERVER_KIND,
                        UsageInterval.source_key.in_(missing[start : start + 500]),
                    )
                ):
                    known[row.source_key] = row
            # Only accounts that exist and are not being erased are charged: an erasure that finished while this
            # pass listed the hub must not find a row opened under the freed name afterwards.
            users = {server.user for key, server in seen.items() if key not in known}
            chargeable = set()
            if users:
                chargeable = set(
                    session.scalars(
                        select(Account.name)
                        .outerjoin(PendingErasure, PendingErasure.account_id == Account.id)
                        .where(Account.name.in_(users), PendingErasure.account_id.is_(None))
                    )
                )
            for key, server in seen.items():
                if key in known:
                    continue
                if server.user not in chargeable:
                    result.not_metered.append(key)
                    continue
                profile = server.profile or session.scalar(
                    select(QuotaReservation.profile).where(
                        QuotaReservation.account_name == server.user,
                        QuotaReservation.kind == SERVER_KIND,
                        QuotaReservation.key == server.name,
                    )
                )
                if profile is None:
                    result.waiting.append(key)
                    continue
                if _open_interval(session, self.catalogue, server, profile, None) is not None:
                    result.opened.append(key)
            for key, row in known.items():
                if row.stopped_at is None and key not in seen:
                    last_seen = checkpoint.last_pass_at if checkpoint is not None else row.started_at
                    row.stopped_at = max(min(last_seen, pass_started), row.started_at)
                    result.closed.append(key)
            delete_expired_reservations(session, pass_started)
            if checkpoint is None:
                session.add(MeterCheckpoint(meter=METER_NAME, last_pass_at=pass_started))
            else:
                checkpoint.last_pass_at = pass_started
            session.commit()
        if result.changed:
            log.info("server meter: %d opened, %d closed", len(result.opened), len(result.closed))
        return result

    def next_delay(self, failed: bool) -> float:
        self.failures = 0 if not failed else self.failures + 1
        return backoff_delay(self.interval, self.max_backoff, self.failures)

    async def run(self) -> None:
        """Reconcile now and then every ``interval`` seconds until cancelled; failures back off, never stop it."""
        log.info("server meter started (every %g s)", self.interval)
        while True:
            try:
                await asyncio.to_thread(self.reconcile_once)
                delay = self.next_delay(failed=False)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = self.next_delay(failed=True)
                log.warning("server meter pass failed (%s); retry in %g s", error, delay)
            await asyncio.sleep(delay)


def record_stop(
    sessions: sessionmaker[Session],
    catalogue: Catalogue,
    user: str,
    server: str,
    *,
    profile: str | None,
    started_at: datetime | None,
    stopped_at: datetime | None,
    clock: Callable[[], datetime] = utcnow,
) -> str | None:
    """The hub stopped ``user``'s ``server`` at ``stopped_at`` (None: found dead, close at the last observation).

    Closes the run's interval (opening it first, closed, when no pass saw the run) and ends its reservation;
    returns the run's source key (None when the run is unknown and cannot be opened). Idempotent.
    """
    now = clock()
    with SERVER_LEDGER_LOCK, account_lock(user), sessions() as session:
        release_reservation(session, user, SERVER_KIND, server)
        if started_at is None:
            session.commit()
            return None
        run = RunningServer(user, server, started_at.astimezone(UTC), profile)
        row = session.scalar(
            select(UsageInterval).where(
                UsageInterval.kind == SERVER_KIND, UsageInterval.source_key == run.source_key
            )
        )
        if stopped_at is None:
            checkpoint = session.get(MeterCheckpoint, METER_NAME)
            stop = checkpoint.last_pass_at if checkpoint is not None else run.started_at
        else:
            stop = stopped_at
        stop = min(stop, now)
        if row is None:
            if profile is not None:
                _open_interval(session, catalogue, run, profile, stop)
        elif row.stopped_at is None:
            row.stopped_at = max(stop, row.started_at)
        session.commit()
        return run.source_key


def start_server_meter(context: ServiceContext) -> asyncio.Task | None:
    """Start the meter as a task of the running service when a hub runs it (every ``gateway_meter_interval``
    seconds: one setting paces both meters)."""
    if context.hub_api is None:
        return None
    meter = ServerMeter(
        context.hub_api, context.sessions, context.catalogue, interval=context.config.gateway_meter_interval
    )
    return asyncio.create_task(meter.run(), name="server-meter")
