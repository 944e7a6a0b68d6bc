"""Enforcement while running: notices at 80, 95 and 100 percent of the month's CPU-hour allowance, and at 100
percent every server and Dask cluster of the account stopped, within one meter interval.

**Mechanism: a pass of the platform service every meter interval** (``gateway_meter_interval``, the setting that
paces both meters), beside the meters. Each pass takes the accounts that have something running or about to run
(open usage intervals and live quota reservations: the only accounts whose use grows), reads each one's standing
with the quota's own ``quota_status`` (the same numbers a decision uses, open intervals counted until now, top-ups
included), writes the notices it reached, and then, for every account at or past 100 percent (or whose plan
ended), asks JupyterHub to stop each of its servers (``HubAPI.request_stop_servers``) and the Dask Gateway to stop
each of its clusters (``GatewayAdmin.request_stop_clusters``). New work is refused by the quota decision itself
(``quota.py``: the spawn admission and the gateway backend's allowance), so nothing restarts.

**Why clusters are stopped through the gateway's platform routes** (``gateway/admin_api.py``) and not by the
backend: the backend checks its allowance only when a cluster is created or scaled, so a cluster of fixed size that
asks for nothing would never notice the month running out; teaching the backend to poll every user's allowance
would duplicate the decision in a second process. The service already holds the one rule and the ledger, and the
admin routes already stop all clusters of one user for erasure, with a scope only the service's role holds (a
user's token gets 403). Stopping goes through dask-gateway's own ``stop_cluster``, as a user's ``shutdown()`` would,
so the gateway meter closes the intervals at the gateway's exact stop times.

Rules this module guarantees:

* **One notice per account, month and threshold** (``usage_notifications``, unique on the three): inserts use
  ``ON CONFLICT DO NOTHING``, so passes that run again after a restart, or two passes at once, never write a notice
  twice. A threshold is reached when ``used >= threshold% x allowance`` (allowance: the plan's plus this month's
  top-ups); a plan that ended (allowance 0) gets only the 100 percent notice.
* **At 100 percent** (``left <= 0``, or the plan ended) the account's servers and clusters are asked to stop in the
  same pass that saw it, and again in every later pass while anything of the account still runs (a server still
  starting refuses a stop until it is up). A top-up that leaves room again ends the stopping at the next pass; the
  month's notices stay (they are records).
* Accounts being erased are skipped (erasure stops everything itself). A hub or gateway that does not answer is
  logged and asked again at the next pass; it never stops the pass for other accounts.
* Only accounts with running work are read, so a pass costs one small query per running account, never a scan of
  the ledger. An interval that closes and so takes an account over a threshold, with nothing else running, is
  noticed at the account's next run (usage only grows while something runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, union
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.accounts.models import Account, PendingErasure
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.meters.backoff import backoff_delay
from polartep_hub.usage.models import QuotaReservation, UsageInterval, UsageNotification
from polartep_hub.usage.periods import month_key
from polartep_hub.usage.quota import QuotaStatus, quota_status, renewal_message

if TYPE_CHECKING:
    from polartep_hub.gateway.admin_client import GatewayAdmin
    from polartep_hub.service.context import ServiceContext
    from polartep_hub.service.hub_api import HubAPI

log = logging.getLogger(__name__)

THRESHOLDS = (80, 95, 100)


def exhausted(status: QuotaStatus) -> bool:
    """The account may run nothing more: its plan ended, or nothing is left of this month's allowance."""
    return status.period.plan_ended or status.left_core_seconds <= 0


def reached_thresholds(status: QuotaStatus) -> list[int]:
    """The thresholds (percent of this month's allowance) that the account's use has reached."""
    if status.period.plan_ended or status.allowance_core_seconds <= 0:
        return [100] if exhausted(status) else []
    share = status.used_core_seconds / status.allowance_core_seconds
    return [t for t in THRESHOLDS if share * 100 >= t - 1e-9]


def notice_message(threshold: int, status: QuotaStatus) -> str:
    """What the user reads for ``threshold``."""
    used = status.used_core_seconds / 3600
    allowance = status.allowance_core_seconds / 3600
    if threshold >= 100:
        return (
            f"Your CPU-hours are used up: {used:.2f} of {allowance:.2f} CPU-hours this month. Your servers and Dask "
            f"clusters have been stopped and new work is refused. {renewal_message(status)}"
        )
    return (
        f"You have used {threshold}% of your CPU-hours: {used:.2f} of {allowance:.2f} CPU-hours this month, "
        f"{max(allowance - used, 0.0):.2f} left. At 100% your servers and Dask clusters are stopped."
    )


def record_notices(session: Session, status: QuotaStatus, now: datetime) -> list[int]:
    """Write the notices ``status`` has reached this month that are not written yet; returns their thresholds.

    Idempotent and safe beside concurrent writers (``ON CONFLICT DO NOTHING`` on the unique key). Flushes."""
    connection = session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    written = []
    for threshold in reached_thresholds(status):
        result = connection.execute(
            insert(UsageNotification.__table__)
            .values(
                account_name=status.name,
                month=month_key(now),
                threshold=threshold,
                created_at=now,
                used_core_seconds=status.used_core_seconds,
                allowance_core_seconds=status.allowance_core_seconds,
                message=notice_message(threshold, status),
            )
            .on_conflict_do_nothing(index_elements=["account_name", "month", "threshold"])
            # RETURNING, not rowcount: what a driver reports as the rowcount of a skipped insert differs.
            .returning(UsageNotification.__table__.c.id)
        )
        if result.first() is not None:
            written.append(threshold)
    return written


def notices(session: Session, account_name: str, month: str) -> list[UsageNotification]:
    """The account's notices of ``month`` (``YYYY-MM``), lowest threshold first."""
    return list(
        session.scalars(
            select(UsageNotification)
            .where(UsageNotification.account_name == account_name, UsageNotification.month == month)
            .order_by(UsageNotification.threshold)
        )
    )


def accounts_with_running_work(session: Session, now: datetime) -> list[Account]:
    """Accounts (not being erased) with an open usage interval or a live quota reservation."""
    running = union(
        select(UsageInterval.account_name).where(UsageInterval.stopped_at.is_(None)),
        select(QuotaReservation.account_name).where(QuotaReservation.expires_at > now),
    ).subquery()
    return list(
        session.scalars(
            select(Account)
            .outerjoin(PendingErasure, PendingErasure.account_id == Account.id)
            .where(Account.name.in_(select(running.c[0])), PendingErasure.account_id.is_(None))
            .order_by(Account.name)
        )
    )


@dataclass
class EnforcementPass:
    """What one pass did: the notices written (``(account, threshold)``) and the accounts it stopped."""

    noticed: list[tuple[str, int]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the hub or the gateway did not take the stop


class Enforcer:
    """The enforcement pass (``enforce_once``) and its loop (``run``)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalogue: Catalogue,
        hub_api: HubAPI | None,
        gateway_admin: GatewayAdmin | None,
        *,
        interval: float = 10.0,
        max_backoff: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.catalogue = catalogue
        self.hub_api = hub_api
        self.gateway_admin = gateway_admin
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.clock = clock
        self.failures = 0

    def enforce_once(self) -> EnforcementPass:
        """One pass: notices for every account with running work, and stops for every exhausted one."""
        result = EnforcementPass()
        now = self.clock()
        with self.sessions() as session:
            to_stop = []
            for account in accounts_with_running_work(session, now):
                status = quota_status(session, self.catalogue, account, now=now)
                for threshold in record_notices(session, status, now):
                    result.noticed.append((account.name, threshold))
                if exhausted(status):
                    to_stop.append(account.name)
            # Notices are committed before the stops are asked for: a crash in between stops at the next pass.
            session.commit()
        for name in to_stop:
            if self._stop_everything(name):
                result.stopped.append(name)
            else:
                result.failed.append(name)
        if result.noticed or result.stopped:
            log.info(
                "quota enforcement: %d notice(s), %d account(s) stopped",
                len(result.noticed),
                len(result.stopped),
            )
        return result

    def _stop_everything(self, name: str) -> bool:
        ok = True
        if self.hub_api is not None:
            try:
                self.hub_api.request_stop_servers(name)
            except Exception as error:  # the hub's API: asked again at the next pass
                log.warning("quota enforcement: the hub did not stop the servers of an account (%s)", error)
                ok = False
        if self.gateway_admin is not None:
            try:
                self.gateway_admin.request_stop_clusters(name)
            except Exception as error:  # the gateway: asked again at the next pass
                log.warning(
                    "quota enforcement: the gateway did not stop the clusters of an account (%s)", error
                )
                ok = False
        return ok

    def next_delay(self, failed: bool) -> float:
        self.failures = 0 if not failed else self.failures + 1
        return backoff_delay(self.interval, self.max_backoff, self.failures)

    async def run(self) -> None:
        """Enforce now and then every ``interval`` seconds until cancelled; failures back off, never stop it."""
        log.info("quota enforcement started (every %g s)", self.interval)
        while True:
            try:
                await asyncio.to_thread(self.enforce_once)
                delay = self.next_delay(failed=False)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = self.next_delay(failed=True)
                log.warning("quota enforcement pass failed (%s); retry in %g s", error, delay)
            await asyncio.sleep(delay)


def start_enforcement(context: ServiceContext) -> asyncio.Task | None:
    """Start the enforcement loop as a task of the running service when a hub runs it."""
    if context.hub_api is None:
        return None
    enforcer = Enforcer(
        context.sessions,
        context.catalogue,
        context.hub_api,
        context.gateway_admin,
        interval=context.config.gateway_meter_interval,
    )
    return asyncio.create_task(enforcer.run(), name="quota-enforcement")
