"""Quota decisions: one rule, in the platform service, for every request to run something.

**The rule.** A request (a server of a profile, a Dask scheduler or workers) is admitted when

1. the account's plan has not ended (a Trial ends after ``duration_months``; ``periods.py``);
2. for servers: all the account's servers together, with this one, stay within the plan's ``max_running`` cores and
   memory (from the catalogue); and
3. what is left of this month's allowance covers everything the account has running (open intervals and pending
   reservations) plus the request, for the horizon (``quota_horizon_minutes``, default 15):
   ``left >= (running cores + requested cores) x horizon``, with ``left = allowance - used this month``.

Otherwise it is refused with a message that says what is exhausted, by how much, and when it renews
(``QuotaRefused``: ``reason`` is ``plan_ended``, ``running_cores``, ``running_memory`` or ``allowance``).

Rules this module guarantees:

* **O(1) in the ledger's size**: a decision reads the account's row, one month total (``ledger.py`` keeps it), the
  account's open intervals (a partial index; as many as it has running), its reservations and this month's
  top-ups; it never sums history.
* **Top-ups raise this month's allowance**: ``allowance = plan's CPU-hours + this month's top-ups`` (administrators
  grant them, ``enforcement.py``); they do not carry over to the next month and do not revive an ended plan.
* **Reserve, then commit**: an admitted server is written as a ``QuotaReservation`` in the decision's transaction,
  and counts as running from then on. The server meter deletes it in the transaction that opens the server's
  interval (commit), the hub's stop report deletes it (the spawn ended), or it expires after ``RESERVATION_TTL``.
  Asking again for the same server replaces its reservation (a retried spawn is not counted twice).
* **Concurrent requests admit only what fits**: decisions of one account are serialised, by a lock of this process
  (the service is one process) and, on PostgreSQL, by the account row's lock (``SELECT ... FOR UPDATE``), so two
  requests can never both take the last room.
* **One round trip on PostgreSQL**: the function ``polartep_admit_server`` (migration ``0014_quota``) locks the
  account row, reads the standing (without the server's own previous reservation), applies this rule and replaces
  the reservation when it fits, in one autocommitted call. It returns the rows it read; Python recomputes the status
  and the verdict from them with the same code (``_status_from_rows``, ``check_request``), so the answer and its
  message are this module's; should the two verdicts ever differ (a rounding at the very edge), the reservation the
  call made is withdrawn and the separate statements decide (``_admit_in_statements``, SQLite's path). The test
  ``test_the_one_call_decision_equals_the_statements_on_a_random_ledger`` holds them equal.
* The decision is the service's alone: users reach it only through the hub's spawn (hub scope), so a user's token
  can neither call it with other values nor skip it.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal, null, select, text, union_all
from sqlalchemy.orm import Session

from polartep_hub.accounts.entitlements import plan_ends_at
from polartep_hub.accounts.models import Account
from polartep_hub.catalogue import Catalogue, Plan, Profile
from polartep_hub.service.orm import UTCDateTime, utcnow
from polartep_hub.usage.models import QuotaReservation, QuotaTopUp, UsageInterval, UsageMonthTotal
from polartep_hub.usage.periods import AllowancePeriod, allowance_period, month_key, month_start

log = logging.getLogger(__name__)

SERVER_KIND = "server"
DASK_KINDS = ("dask-scheduler", "dask-worker")
# A reservation outlives the spawn's start timeout (120 s) and a few meter passes; a server that never showed up
# stops counting after this.
RESERVATION_TTL = timedelta(minutes=5)
GIB = 2**30

# Decisions of one account never interleave in this process (striped: bounded memory for any number of accounts).
_LOCKS = tuple(threading.Lock() for _ in range(64))


def account_lock(name: str) -> threading.Lock:
    """The lock that serialises the quota decisions (and reservation commits) of account ``name``."""
    return _LOCKS[zlib.crc32(name.encode()) % len(_LOCKS)]


class QuotaRefused(Exception):
    """The request does not fit; ``message`` says what is exhausted, by how much, and when it renews."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class QuotaStatus:
    """Where an account stands now: this month's allowance, use and what runs (core-seconds, cores, bytes)."""

    name: str
    plan: str
    plan_display_name: str
    period: AllowancePeriod
    used_core_seconds: float
    running_cores: float  # everything: servers, Dask, pending reservations
    dask_cores: float  # of which Dask schedulers and workers
    server_cores: float  # servers and pending server reservations
    server_memory: int
    max_running_cores: float | None
    max_running_memory: int | None
    as_of: datetime
    top_up_core_seconds: float = 0.0  # administrators' top-ups for this month (``QuotaTopUp``)

    @property
    def allowance_core_seconds(self) -> float:
        """The plan's allowance this month plus this month's top-ups."""
        return self.period.allowance_core_seconds + self.top_up_core_seconds

    @property
    def left_core_seconds(self) -> float:
        return self.allowance_core_seconds - self.used_core_seconds


def _hours(core_seconds: float) -> str:
    return f"{core_seconds / 3600:.2f}"


def _build_standing_statement():
    """What ``quota_status`` reads, as one ``UNION ALL`` (``source``: open, reserved, total or topup), built once: a
    decision only binds the account, the month and the time (no statement building or cache-key work per call)."""
    name, month, now = bindparam("name"), bindparam("month"), bindparam("now", type_=UTCDateTime())
    opened = select(
        literal("open").label("source"),
        UsageInterval.cores,
        UsageInterval.memory_bytes,
        UsageInterval.kind,
        UsageInterval.started_at,
    ).where(UsageInterval.account_name == name, UsageInterval.stopped_at.is_(None))
    reserved = select(
        literal("reserved"),
        QuotaReservation.cores,
        QuotaReservation.memory_bytes,
        QuotaReservation.kind,
        null(),
    ).where(QuotaReservation.account_name == name, QuotaReservation.expires_at > now)
    total = select(literal("total"), UsageMonthTotal.core_seconds, literal(0), literal(""), null()).where(
        UsageMonthTotal.account_name == name, UsageMonthTotal.month == month
    )
    top_ups = select(literal("topup"), QuotaTopUp.cpu_hours, literal(0), literal(""), null()).where(
        QuotaTopUp.account_name == name, QuotaTopUp.month == month
    )
    return union_all(opened, reserved, total, top_ups)


_STANDING = _build_standing_statement()
_RELEASE = delete(QuotaReservation).where(
    QuotaReservation.account_name == bindparam("name"),
    QuotaReservation.kind == bindparam("kind"),
    QuotaReservation.key == bindparam("key"),
)


def quota_status(
    session: Session,
    catalogue: Catalogue,
    account: Account,
    *,
    now: datetime | None = None,
    admin: bool = False,
) -> QuotaStatus:
    """Apply the periods and read the account's running totals at ``now`` (see the module's rules)."""
    now = now or utcnow()
    # One statement, three index look-ups: the month's total, the open intervals, the live reservations.
    rows = session.execute(_STANDING, {"name": account.name, "month": month_key(now), "now": now})
    return _status_from_rows(
        catalogue, account.name, account.plan, account.plan_started_at, account.is_admin, rows, now, admin
    )


def _status_from_rows(
    catalogue: Catalogue,
    name: str,
    plan_name: str,
    plan_started_at: datetime,
    is_admin: bool,
    rows: Iterable[Sequence[Any]],
    now: datetime,
    admin: bool,
) -> QuotaStatus:
    """The status from the standing rows ``(source, cores, memory, kind, started)`` in the order read. The
    PostgreSQL function of ``admit_server`` repeats these sums, operation for operation (migration 0014)."""
    plan: Plan | None = catalogue.plans.get(plan_name)
    if plan is None:
        period = AllowancePeriod(0.0, now, None, None, True)
    else:
        # Administrators' plans never end (the allowed-profiles rule, accounts/entitlements.py).
        ends = None if admin or is_admin else plan_ends_at(plan, plan_started_at)
        period = allowance_period(plan, ends, now)
    used = top_up = 0.0
    running = dask = server_cores = 0.0
    server_memory = 0
    for source, cores, memory, kind, started in rows:
        if source == "total":
            used += cores
            continue
        if source == "topup":
            top_up += cores * 3600
            continue
        running += cores
        if source == "open":
            used += cores * max(0.0, (now - max(started, period.period_start)).total_seconds())
            if kind in DASK_KINDS:
                dask += cores
                continue
        server_cores += cores
        server_memory += memory
    bounds = plan.max_running if plan is not None else None
    return QuotaStatus(
        name=name,
        plan=plan_name,
        plan_display_name=plan.display_name if plan else plan_name,
        period=period,
        used_core_seconds=used,
        running_cores=running,
        dask_cores=dask,
        server_cores=server_cores,
        server_memory=server_memory,
        max_running_cores=bounds.cores if bounds else None,
        max_running_memory=bounds.memory if bounds else None,
        as_of=now,
        top_up_core_seconds=top_up,
    )


def renewal_message(status: QuotaStatus) -> str:
    """When the allowance renews, or that the plan ends and does not renew."""
    if status.period.renews_at is not None:
        return f"Your allowance renews on {status.period.renews_at:%Y-%m-%d %H:%M} UTC."
    if status.period.plan_ends_at is not None:
        return (
            f"Your {status.plan_display_name} plan ends on {status.period.plan_ends_at:%Y-%m-%d} and does not "
            "renew; ask an administrator to move you to another plan."
        )
    return "Ask an administrator to move you to another plan."


def check_request(
    status: QuotaStatus, cores: float, memory: int, what: str, horizon: timedelta, *, server: bool
) -> None:
    """``QuotaRefused`` unless ``cores``/``memory`` more fit beside what ``status`` shows running (the rule)."""
    if status.period.plan_ended:
        ended = status.period.plan_ends_at
        raise QuotaRefused(
            "plan_ended",
            f"Your {status.plan_display_name} plan "
            + (f"ended on {ended:%Y-%m-%d}" if ended else "is no longer offered")
            + f": nothing can start ({what} refused). Ask an administrator to move you to another plan.",
        )
    if (
        server
        and status.max_running_cores is not None
        and status.server_cores + cores > status.max_running_cores + 1e-9
    ):
        over = status.server_cores + cores - status.max_running_cores
        raise QuotaRefused(
            "running_cores",
            f"Your {status.plan_display_name} plan allows {status.max_running_cores:g} cores for all your servers "
            f"together; they hold {status.server_cores:g} and {what} needs {cores:g}: {over:g} cores over. "
            "Stop a server first, or choose a smaller profile.",
        )
    if (
        server
        and status.max_running_memory is not None
        and status.server_memory + memory > status.max_running_memory
    ):
        over = status.server_memory + memory - status.max_running_memory
        raise QuotaRefused(
            "running_memory",
            f"Your {status.plan_display_name} plan allows {status.max_running_memory / GIB:g} GiB of memory for all "
            f"your servers together; they hold {status.server_memory / GIB:g} GiB and {what} needs "
            f"{memory / GIB:g} GiB: {over / GIB:g} GiB over. Stop a server first, or choose a smaller profile.",
        )
    seconds = horizon.total_seconds()
    needed = (status.running_cores + cores) * seconds
    left = status.left_core_seconds
    if left + 1e-6 < needed:
        raise QuotaRefused(
            "allowance",
            f"Your CPU-hours are exhausted: {_hours(status.used_core_seconds)} of the "
            f"{_hours(status.allowance_core_seconds)} CPU-hours of your {status.plan_display_name} plan are used "
            f"this month, {_hours(max(left, 0.0))} left. Your running work ({status.running_cores:g} cores) and "
            f"{what} ({cores:g} cores) need {_hours(needed)} CPU-hours for the next {seconds / 60:g} minutes: "
            f"{_hours(needed - left)} CPU-hours short. {renewal_message(status)}",
        )


@dataclass(frozen=True)
class Reservation:
    """A reservation as written (``QuotaReservation``'s columns)."""

    account_name: str
    kind: str
    key: str
    profile: str | None
    cores: float
    memory_bytes: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Admission:
    """An admitted server: its reservation and where the account stands with it."""

    reservation: Reservation
    status: QuotaStatus


# The four columns a decision reads, not the whole ORM object: loading an ``Account`` entity (identity map, row
# processors) cost more than the decision's own arithmetic.
_ACCOUNT_COLUMNS = select(Account.name, Account.plan, Account.plan_started_at, Account.is_admin)


def _locked_account(session: Session, name: str) -> Any | None:
    """The account's name, plan, plan start and admin flag (a row), locked on PostgreSQL; None when there is none."""
    statement = _ACCOUNT_COLUMNS.where(Account.name == name)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return session.execute(statement).first()


def admit_server(
    session: Session,
    catalogue: Catalogue,
    account_name: str,
    server_name: str,
    profile: Profile,
    horizon: timedelta,
    *,
    admin: bool = False,
    now: datetime | None = None,
) -> Admission:
    """Decide a server spawn by the rule and reserve it when admitted (committed); ``QuotaRefused`` otherwise.

    ``LookupError`` when there is no such account. On PostgreSQL the decision is one round trip to the database
    (``_admit_in_one_call``); on SQLite, where a round trip is a function call, it is a few statements.
    """
    with account_lock(account_name):
        now = now or utcnow()
        label = f"the server {server_name!r}" if server_name else "your default server"
        what = f"{label} ({profile.display_name})"
        if session.get_bind().dialect.name == "postgresql":
            decided = _admit_in_one_call(session, catalogue, account_name, server_name, profile, what, horizon,
                                         admin=admin, now=now)  # fmt: skip
            if decided is not None:
                return decided
        return _admit_in_statements(session, catalogue, account_name, server_name, profile, what, horizon,
                                    admin=admin, now=now)  # fmt: skip


def _reservation(account_name: str, server_name: str, profile: Profile, now: datetime) -> Reservation:
    return Reservation(
        account_name=account_name,
        kind=SERVER_KIND,
        key=server_name,
        profile=profile.name,
        cores=profile.cpu,
        memory_bytes=profile.memory,
        created_at=now,
        expires_at=now + RESERVATION_TTL,
    )


def _admit_in_statements(
    session: Session,
    catalogue: Catalogue,
    account_name: str,
    server_name: str,
    profile: Profile,
    what: str,
    horizon: timedelta,
    *,
    admin: bool,
    now: datetime,
) -> Admission:
    """The decision as separate statements in one transaction (SQLite; PostgreSQL's fallback). Lock held."""
    account = _locked_account(session, account_name)
    if account is None:
        session.rollback()
        raise LookupError(account_name)
    # A spawn asked again replaces its own reservation rather than adding to it.
    session.execute(_RELEASE, {"name": account_name, "kind": SERVER_KIND, "key": server_name})
    status = quota_status(session, catalogue, account, now=now, admin=admin)
    try:
        check_request(status, profile.cpu, profile.memory, what, horizon, server=True)
    except QuotaRefused:
        session.rollback()
        raise
    reservation = _reservation(account_name, server_name, profile, now)
    session.execute(
        insert(QuotaReservation.__table__), [asdict(reservation)]
    )  # core insert: no ORM bulk path
    session.commit()
    return Admission(reservation=reservation, status=status)


# polartep_admit_server (migration 0014_quota): lock, release, read, decide and reserve in one call, in autocommit.
_ADMIT_CALL = text(
    "SELECT o_source, o_cores, o_memory, o_kind, o_started, o_admitted FROM polartep_admit_server("
    "CAST(:name AS text), CAST(:kind AS text), CAST(:key AS text), CAST(:profile AS text), "
    "CAST(:cores AS double precision), CAST(:memory AS bigint), CAST(:now AS timestamptz), "
    "CAST(:expires AS timestamptz), CAST(:month AS text), CAST(:period_start AS timestamptz), "
    "CAST(:horizon AS double precision), CAST(:admin AS boolean), CAST(:plans AS text[]), "
    "CAST(:allowances AS double precision[]), CAST(:durations AS integer[]), "
    "CAST(:max_cores AS double precision[]), CAST(:max_memory AS bigint[]))"
)


def _plan_arrays(catalogue: Catalogue) -> dict[str, list[Any]]:
    plans = list(catalogue.plans.values())
    return {
        "plans": [p.name for p in plans],
        "allowances": [p.allowance_core_seconds for p in plans],
        "durations": [p.duration_months or 0 for p in plans],
        "max_cores": [p.max_running.cores if p.max_running else None for p in plans],
        "max_memory": [p.max_running.memory if p.max_running else None for p in plans],
    }


def one_call_decision(
    session: Session,
    catalogue: Catalogue,
    account_name: str,
    server_name: str,
    profile: Profile,
    horizon: timedelta,
    *,
    admin: bool = False,
    now: datetime,
) -> tuple[bool, QuotaStatus] | None:
    """PostgreSQL only: call ``polartep_admit_server`` once (autocommit; it reserves when its rule admits) and
    return its verdict with the status computed in Python from the rows it read; None when there is no account.
    Callers hold ``account_lock``."""
    params = {
        "name": account_name,
        "kind": SERVER_KIND,
        "key": server_name,
        "profile": profile.name,
        "cores": profile.cpu,
        "memory": profile.memory,
        "now": now,
        "expires": now + RESERVATION_TTL,
        "month": month_key(now),
        "period_start": month_start(now),
        "horizon": horizon.total_seconds(),
        "admin": admin,
        **_plan_arrays(catalogue),
    }
    with session.get_bind().connect() as connection:
        rows = connection.execution_options(isolation_level="AUTOCOMMIT").execute(_ADMIT_CALL, params).all()
    if not rows:
        return None
    *standing, account_row = rows
    started = account_row.o_started.astimezone(UTC)
    status = _status_from_rows(
        catalogue,
        account_name,
        account_row.o_kind,
        started,
        account_row.o_cores == 1.0,
        [
            (r.o_source, r.o_cores, r.o_memory, r.o_kind, r.o_started and r.o_started.astimezone(UTC))
            for r in standing
        ],  # fmt: skip
        now,
        admin,
    )
    return bool(account_row.o_admitted), status


def _admit_in_one_call(
    session: Session,
    catalogue: Catalogue,
    account_name: str,
    server_name: str,
    profile: Profile,
    what: str,
    horizon: timedelta,
    *,
    admin: bool,
    now: datetime,
) -> Admission | None:
    """The decision in one round trip (PostgreSQL). Python recomputes it from the rows the call read: when both
    agree that is the answer; when they do not (a rounding difference at the very edge), the reservation the call
    may have made is withdrawn and the statements decide (None). Lock held."""
    decided = one_call_decision(session, catalogue, account_name, server_name, profile, horizon,
                                admin=admin, now=now)  # fmt: skip
    if decided is None:
        raise LookupError(account_name)
    admitted_in_sql, status = decided
    try:
        check_request(status, profile.cpu, profile.memory, what, horizon, server=True)
    except QuotaRefused:
        if not admitted_in_sql:
            raise
    else:
        if admitted_in_sql:
            return Admission(reservation=_reservation(account_name, server_name, profile, now), status=status)
    log.warning("quota decision for %s: the database and Python disagree; deciding again", account_name)
    if admitted_in_sql:
        session.execute(_RELEASE, {"name": account_name, "kind": SERVER_KIND, "key": server_name})
        session.commit()
    return None


def release_reservation(session: Session, account_name: str, kind: str, key: str) -> None:
    """The reserved thing runs (its interval is open) or will not: it stops counting as a reservation. Flushes."""
    session.execute(_RELEASE, {"name": account_name, "kind": kind, "key": key})


def delete_expired_reservations(session: Session, now: datetime | None = None) -> int:
    """Forget reservations past their expiry (they no longer count); returns how many. Flushes."""
    result = session.execute(delete(QuotaReservation).where(QuotaReservation.expires_at <= (now or utcnow())))
    return result.rowcount or 0
