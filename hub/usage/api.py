"""The usage ledger's API: ``GET <prefix>api/v1/users/{name}/usage?since=...&until=...`` (read), and the quota's
routes for the hub and the gateway (``quota.py``): server admissions, server stop reports, published allowances.

Rules this module guarantees:

* Who may read: the user themself, an admin user, or the hub (``custom:polartep:hub``); anyone else gets 403.
* The period is ``[since, until)``: ISO 8601 times *with* a time zone (e.g. ``2026-11-01T00:00:00Z``); by default
  from the start of the current month (UTC) until now. ``since`` must come before ``until`` and the period may be at
  most 400 days; otherwise 422 with a message that says so. Nothing is written.
* The answer lists every interval of the account that overlaps the period (as recorded, oldest first) and, per
  interval and in total, the **core-seconds inside the period**: cores x the overlap of the interval with the
  period, where an interval still open counts until ``until`` or now, whichever is earlier. So the totals of two
  adjacent periods add up to the total of both, and nothing is counted twice.
* It also says where the account stands **this month** (whatever the period asked for), in CPU-hours:
  ``allowance``, ``used``, ``left`` (``allowance - used``, negative when overrun) and ``renews_at`` (the next
  month's start, or null when the plan ends first), with ``plan_ends_at`` and ``running_cores``; and, for this
  month, ``top_up`` and ``top_ups`` (part of the allowance), ``cpu_hours_by_day`` (each UTC day until now) and the
  ``notifications`` (80, 95, 100 percent). ``with_intervals=false`` leaves the interval list out (the pages).
* ``GET .../users/{name}/notifications`` and ``.../top-ups`` (the user, an admin, the hub) list a month's notices
  and top-ups; ``POST .../notifications/{id}/seen`` (the user themself) hides a notice and nothing else; ``POST
  .../users/{name}/top-ups`` (administrators only, 403 otherwise) grants CPU-hours for this month.
* ``GET .../users/{name}/statements/{month}`` (the user, an admin, the hub) and ``GET .../statements?month=``
  (administrators and the hub; ``format=csv`` for CSV): statements in EUR (``statements.py``); amounts are decimal
  text, never binary floats. ``POST .../users/{name}/support-charges`` (administrators only) records a priced
  support service delivered this month (it goes on the statement).
* ``POST .../users/{name}/server-admissions`` (hub only): the spawn decision; 201 with the reservation, or 403 with
  the refusal's message and ``reason``. ``POST .../users/{name}/server-stops`` (hub only): the hub stopped a server
  (exact stop time) or found it dead (closed at the server meter's last observation). ``GET
  .../users/{name}/allowance`` (hub scope; the gateway's backend): what is left and what runs outside Dask, for
  the backend's own synchronous check (``gateway/quota_allowance.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.service.orm import utcnow
from polartep_hub.service.web.access import Context, HubCaller, ServiceCaller, UserCaller
from polartep_hub.usage import enforcement, quota, statements, storage, top_ups
from polartep_hub.usage.meters import servers as server_meter
from polartep_hub.usage.models import StorageUsage, UsageInterval, UsageNotification
from polartep_hub.usage.periods import month_key, month_start

MAX_PERIOD = timedelta(days=400)

router = APIRouter()


class NotificationOut(BaseModel):
    id: int
    month: str = Field(description="YYYY-MM (UTC)")
    threshold: int = Field(description="80, 95 or 100 (percent of the month's allowance)")
    created_at: datetime
    used: float = Field(description="CPU-hours used when the threshold was reached")
    allowance: float = Field(description="the month's allowance then (plan plus top-ups), CPU-hours")
    message: str
    seen_at: datetime | None = Field(description="when the user marked it seen; null while it is new")


class TopUpOut(BaseModel):
    id: int
    month: str
    cpu_hours: float
    reason: str
    granted_by: str
    granted_at: datetime


class DayOut(BaseModel):
    day: str = Field(description="YYYY-MM-DD (UTC)")
    cpu_hours: float


class StorageClassOut(BaseModel):
    storage_class: str
    display_name: str
    bytes: int = Field(description="the latest sampled bytes, all sources together")
    quota_bytes: int | None = Field(description="the plan's quota of this class; null: none included")
    sampled_at: datetime | None = Field(description="the latest sample of this class; null: never sampled")


class UsageIntervalOut(BaseModel):
    kind: str = Field(description="what ran: dask-scheduler, dask-worker, ...")
    source_key: str = Field(description="which one, e.g. <cluster>/<worker>")
    cores: float
    memory_bytes: int
    started_at: datetime
    stopped_at: datetime | None = Field(description="null while it runs")
    core_seconds: float = Field(description="cores x seconds of this interval inside the period")


class UsageOut(BaseModel):
    name: str
    since: datetime
    until: datetime
    core_seconds: float = Field(description="total cores x seconds inside the period")
    core_seconds_by_kind: dict[str, float]
    intervals: list[UsageIntervalOut]
    plan: str = Field(description="the account's plan now")
    allowance: float = Field(description="CPU-hours this month (0 once the plan has ended)")
    used: float = Field(description="CPU-hours used this month (UTC), running work until now")
    left: float = Field(description="allowance - used (negative when overrun)")
    renews_at: datetime | None = Field(description="when the allowance renews; null when the plan ends first")
    plan_ends_at: datetime | None = Field(
        description="when the plan ends (Trial); null for plans without an end"
    )
    running_cores: float = Field(
        description="cores of everything running now, pending server starts included"
    )
    top_up: float = Field(0.0, description="CPU-hours of this month's top-ups (part of the allowance)")
    top_ups: list[TopUpOut] = Field(default_factory=list, description="this month's top-ups")
    cpu_hours_by_day: list[DayOut] = Field(
        default_factory=list,
        description="CPU-hours of each day of this month (UTC) so far, the running day until now",
    )
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="this month's notices (80, 95, 100 percent)"
    )
    storage: list[StorageClassOut] = Field(
        default_factory=list,
        description="stored bytes per storage class of the catalogue, with the plan's quota",
    )


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{field} needs a time zone, e.g. 2026-11-01T00:00:00Z",
        )
    return value.astimezone(UTC)


def core_seconds_within(
    cores: float, started_at: datetime, stopped_at: datetime | None, since: datetime, until: datetime
) -> float:
    """Cores x the seconds of ``[started_at, stopped_at)`` inside ``[since, until)`` (open: until ``until``)."""
    end = min(stopped_at or until, until)
    start = max(started_at, since)
    return max(0.0, (end - start).total_seconds()) * cores


@router.get(
    "/users/{name}/usage",
    response_model=UsageOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
        422: {"description": "bad period"},
    },
)
def usage(
    name: AccountNamePath,
    caller: ServiceCaller,
    context: Context,
    since: Annotated[
        datetime | None,
        Query(description="start of the period (ISO 8601 with zone); default: start of the month"),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="end of the period (ISO 8601 with zone); default: now")
    ] = None,
    with_intervals: Annotated[
        bool, Query(description="false: leave the interval list out (the totals are the same)")
    ] = True,
) -> UsageOut:
    """The account's usage intervals and core-seconds in a period. The user themself, an admin, or the hub."""
    if not (caller.is_hub or (caller.is_user and (caller.admin or caller.name == name))):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may only read your own usage")
    accounts.check_account_name(name)
    now = utcnow()
    until = _aware(until, "until") if until is not None else now
    since = (
        _aware(since, "since")
        if since is not None
        else until.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="since must be before until")
    if until - since > MAX_PERIOD:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"the period may be at most {MAX_PERIOD.days} days; ask for shorter periods and add them up",
        )
    # An open interval runs until now, not beyond: a period reaching into the future counts no future time.
    counted_until = min(until, now)
    with context.session() as session:
        account = accounts.get_account(session, name)
        standing = (
            quota.quota_status(session, context.catalogue, account, now=now) if account is not None else None
        )
        rows = session.scalars(
            select(UsageInterval)
            .where(
                UsageInterval.account_name == name,
                UsageInterval.started_at < until,
                or_(UsageInterval.stopped_at.is_(None), UsageInterval.stopped_at > since),
            )
            .order_by(UsageInterval.started_at, UsageInterval.id)
        ).all()
        intervals = [
            UsageIntervalOut(
                kind=row.kind,
                source_key=row.source_key,
                cores=row.cores,
                memory_bytes=row.memory_bytes,
                started_at=row.started_at,
                stopped_at=row.stopped_at,
                core_seconds=core_seconds_within(
                    row.cores, row.started_at, row.stopped_at, since, counted_until
                ),
            )
            for row in rows
        ]
        month = month_key(now)
        this_month = cpu_hours_by_day(session, name, month_start(now), now)
        month_top_ups = [_top_up_out(r) for r in top_ups.top_ups(session, name, month)]
        month_notices = [_notification_out(r) for r in enforcement.notices(session, name, month)]
        by_class = storage_by_class(session, context.catalogue, account) if account is not None else []
    by_kind: dict[str, float] = {}
    for interval in intervals:
        by_kind[interval.kind] = by_kind.get(interval.kind, 0.0) + interval.core_seconds
    return UsageOut(
        name=name,
        since=since,
        until=until,
        core_seconds=sum(i.core_seconds for i in intervals),
        core_seconds_by_kind=by_kind,
        intervals=intervals if with_intervals else [],
        plan=standing.plan if standing else "",
        allowance=standing.allowance_core_seconds / 3600 if standing else 0.0,
        used=standing.used_core_seconds / 3600 if standing else 0.0,
        left=standing.left_core_seconds / 3600 if standing else 0.0,
        renews_at=standing.period.renews_at if standing else None,
        plan_ends_at=standing.period.plan_ends_at if standing else None,
        running_cores=standing.running_cores if standing else 0.0,
        top_up=standing.top_up_core_seconds / 3600 if standing else 0.0,
        top_ups=month_top_ups,
        cpu_hours_by_day=this_month,
        notifications=month_notices,
        storage=by_class,
    )


def storage_by_class(session, catalogue, account) -> list[StorageClassOut]:
    """Every storage class of the catalogue with the account's latest bytes and the plan's quota."""
    latest = dict(
        session.execute(
            select(StorageUsage.storage_class, func.max(StorageUsage.sampled_at))
            .where(StorageUsage.account_name == account.name)
            .group_by(StorageUsage.storage_class)
        ).all()
    )
    held = storage.stored_bytes(session, account.name)
    return [
        StorageClassOut(
            storage_class=name,
            display_name=tier.display_name,
            bytes=held.get(name, 0),
            quota_bytes=storage.quota_bytes(catalogue, account, name),
            sampled_at=latest.get(name),
        )
        for name, tier in catalogue.storage.items()
    ]


def cpu_hours_by_day(session, name: str, since: datetime, now: datetime) -> list[DayOut]:
    """CPU-hours of each UTC day from ``since`` (a day's start) until ``now``, open intervals until ``now``."""
    days: list[DayOut] = []
    rows = session.execute(
        select(UsageInterval.cores, UsageInterval.started_at, UsageInterval.stopped_at).where(
            UsageInterval.account_name == name,
            UsageInterval.started_at < now,
            or_(UsageInterval.stopped_at.is_(None), UsageInterval.stopped_at > since),
        )
    ).all()
    day = since
    while day < now:
        following = day + timedelta(days=1)
        seconds = sum(core_seconds_within(c, a, b, day, min(following, now)) for c, a, b in rows)
        days.append(DayOut(day=f"{day:%Y-%m-%d}", cpu_hours=seconds / 3600))
        day = following
    return days


# --- quota routes (hub and gateway) ------------------------------------------------------------------------------


# A server's name as JupyterHub keeps it: no control characters (PostgreSQL refuses NUL in text, and no name has them).
_SERVER_NAME = r"^[^\x00-\x1f\x7f]*$"


class ServerAdmissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: str = Field(
        "",
        max_length=255,
        pattern=_SERVER_NAME,
        description="the server's name; empty for the default server",
    )
    profile: str = Field(
        max_length=64, pattern=_SERVER_NAME, description="the catalogue profile it starts with"
    )
    admin: bool = Field(False, description="the user is a JupyterHub admin (as the hub knows it)")


class ServerAdmissionOut(BaseModel):
    admitted: bool
    server: str
    profile: str
    cores: float
    memory_bytes: int
    reserved_until: datetime
    left: float = Field(description="CPU-hours left this month before this server")
    renews_at: datetime | None


def _horizon(context) -> timedelta:
    return timedelta(minutes=context.config.quota_horizon_minutes)


@router.post(
    "/users/{name}/server-admissions",
    status_code=201,
    response_model=ServerAdmissionOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "refused: the message says what is exhausted"},
        404: {"description": "no account"},
    },
)
def admit_server(name: AccountNamePath, body: ServerAdmissionIn, caller: HubCaller, context: Context):
    """The spawn decision (hub only): admit and reserve the server, or refuse with what is exhausted."""
    accounts.check_account_name(name)
    profile = context.catalogue.profiles.get(body.profile)
    if profile is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"unknown profile {body.profile[:64]!r}; known profiles: {', '.join(context.catalogue.profiles)}",
        )
    with context.session() as session:
        try:
            admission = quota.admit_server(
                session, context.catalogue, name, body.server, profile, _horizon(context), admin=body.admin
            )
        except LookupError:
            raise accounts.AccountNotFound.for_name(name) from None
        except quota.QuotaRefused as refusal:
            return JSONResponse({"detail": refusal.message, "reason": refusal.reason}, status_code=403)
    return ServerAdmissionOut(
        admitted=True,
        server=body.server,
        profile=profile.name,
        cores=profile.cpu,
        memory_bytes=profile.memory,
        reserved_until=admission.reservation.expires_at,
        left=admission.status.left_core_seconds / 3600,
        renews_at=admission.status.period.renews_at,
    )


class ServerStopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: str = Field("", max_length=255, pattern=_SERVER_NAME)
    profile: str | None = Field(None, max_length=64, pattern=_SERVER_NAME)
    started_at: datetime | None = Field(
        None, description="the hub's start time of the server (its `started`)"
    )
    stopped_at: datetime | None = Field(None, description="when the hub stopped it; ignored when crashed")
    crashed: bool = Field(False, description="the server was found dead: not a stop the hub initiated")


@router.post(
    "/users/{name}/server-stops",
    status_code=204,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        422: {"description": "bad times"},
    },
)
def server_stopped(name: AccountNamePath, body: ServerStopIn, caller: HubCaller, context: Context):
    """The hub reports a server that stopped (hub only): its interval closes at the exact stop time, or at the
    meter's last observation when it crashed; its pending reservation ends."""
    accounts.check_account_name(name)
    for field, value in (("started_at", body.started_at), ("stopped_at", body.stopped_at)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{field} needs a time zone")
    server_meter.record_stop(
        context.sessions,
        context.catalogue,
        name,
        body.server,
        profile=body.profile,
        started_at=body.started_at,
        stopped_at=None if body.crashed else body.stopped_at,
    )


class AllowanceOut(BaseModel):
    name: str
    left_core_seconds: float = Field(description="allowance - used this month, at as_of")
    other_cores: float = Field(description="cores running outside Dask (servers, pending server starts)")
    dask_cores: float = Field(
        description="Dask cores the ledger shows running (the gateway knows its own better)"
    )
    horizon_seconds: float
    plan_ended: bool
    renews_at: datetime | None
    message: str = Field(description="what to tell the user when nothing more fits")
    as_of: datetime


@router.get(
    "/users/{name}/allowance",
    response_model=AllowanceOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        404: {"description": "no account"},
    },
)
def allowance(name: AccountNamePath, caller: HubCaller, context: Context) -> AllowanceOut:
    """What is left for Dask clusters (hub scope): the gateway's backend checks its requests against it itself."""
    accounts.check_account_name(name)
    with context.session() as session:
        account = accounts.require_account(session, name)
        standing = quota.quota_status(session, context.catalogue, account)
    return AllowanceOut(
        name=name,
        left_core_seconds=standing.left_core_seconds,
        other_cores=standing.running_cores - standing.dask_cores,
        dask_cores=standing.dask_cores,
        horizon_seconds=_horizon(context).total_seconds(),
        plan_ended=standing.period.plan_ended,
        renews_at=standing.period.renews_at,
        message=quota.renewal_message(standing),
        as_of=standing.as_of,
    )


# --- notices and top-ups (enforcement.py, top_ups.py) -------------------------------------------------------------


class NotificationsOut(BaseModel):
    name: str
    month: str
    notifications: list[NotificationOut]


def _notification_out(row) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        month=row.month,
        threshold=row.threshold,
        created_at=row.created_at,
        used=row.used_core_seconds / 3600,
        allowance=row.allowance_core_seconds / 3600,
        message=row.message,
        seen_at=row.seen_at,
    )


def _own_or_admin(caller, name: str, what: str) -> None:
    if not (caller.is_hub or (caller.is_user and (caller.admin or caller.name == name))):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"you may only read your own {what}")


_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
MonthQuery = Annotated[str | None, Query(pattern=_MONTH, description="YYYY-MM (UTC); default: this month")]


@router.get(
    "/users/{name}/notifications",
    response_model=NotificationsOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
    },
)
def list_notifications(
    name: AccountNamePath, caller: ServiceCaller, context: Context, month: MonthQuery = None
) -> NotificationsOut:
    """The account's notices of a month (80, 95 and 100 percent of the allowance). The user, an admin, the hub."""
    _own_or_admin(caller, name, "notifications")
    accounts.check_account_name(name)
    month = month or month_key(utcnow())
    with context.session() as session:
        rows = enforcement.notices(session, name, month)
        return NotificationsOut(name=name, month=month, notifications=[_notification_out(r) for r in rows])


@router.post(
    "/users/{name}/notifications/{notification_id}/seen",
    status_code=204,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
        404: {"description": "no such notification of this account"},
    },
)
def mark_notification_seen(
    name: AccountNamePath,
    notification_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    caller: UserCaller,
    context: Context,
) -> None:
    """The user marks one of their own notices seen: it leaves the notices shown, nothing else (the enforcement
    follows the ledger, never this mark). Only the user themself."""
    if caller.name != name:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may only mark your own notifications seen")
    accounts.check_account_name(name)
    with context.session() as session:
        row = session.get(UsageNotification, notification_id)
        if row is None or row.account_name != name:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such notification of yours")
        if row.seen_at is None:
            row.seen_at = utcnow()
            session.commit()


class TopUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu_hours: float = Field(
        gt=0, le=top_ups.MAX_TOP_UP_HOURS, description="CPU-hours added to this month's allowance"
    )
    reason: str = Field(
        min_length=1, max_length=500, pattern=r"\S", description="why (shown on the statement)"
    )


class TopUpsOut(BaseModel):
    name: str
    month: str
    top_ups: list[TopUpOut]


def _top_up_out(row) -> TopUpOut:
    return TopUpOut(
        id=row.id,
        month=row.month,
        cpu_hours=row.cpu_hours,
        reason=row.reason,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
    )


@router.get(
    "/users/{name}/top-ups",
    response_model=TopUpsOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
    },
)
def list_top_ups(
    name: AccountNamePath, caller: ServiceCaller, context: Context, month: MonthQuery = None
) -> TopUpsOut:
    """The account's top-ups of a month. The user, an admin, the hub."""
    _own_or_admin(caller, name, "top-ups")
    accounts.check_account_name(name)
    month = month or month_key(utcnow())
    with context.session() as session:
        return TopUpsOut(
            name=name, month=month, top_ups=[_top_up_out(r) for r in top_ups.top_ups(session, name, month)]
        )


@router.post(
    "/users/{name}/top-ups",
    status_code=201,
    response_model=TopUpOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "administrators only"},
        404: {"description": "no account"},
    },
)
def grant_top_up(name: AccountNamePath, body: TopUpIn, caller: UserCaller, context: Context) -> TopUpOut:
    """An administrator adds CPU-hours to the account's allowance of this month (recorded: who, when, why)."""
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators grant top-ups")
    accounts.check_account_name(name)
    with context.session() as session:
        accounts.require_account(session, name)
        row = top_ups.grant_top_up(session, name, body.cpu_hours, body.reason, caller.name)
        session.commit()
        return _top_up_out(row)


# --- statements (statements.py) ------------------------------------------------------------------------------------


class StatementLineOut(BaseModel):
    kind: str = Field(description="plan, subscription, cpu, top_up, storage or support")
    item: str
    description: str
    quantity: str = Field(description="a decimal number as text (days, CPU-hours, TB-months)")
    unit: str
    unit_price_eur: str = Field(description="EUR per unit as decimal text (plans, subscriptions: per month)")
    amount_eur: str = Field(description="EUR, rounded once to the cent (half up), as decimal text")


class StatementOut(BaseModel):
    account: str
    month: str
    until: datetime = Field(description="the month's end, or now for the month in progress")
    lines: list[StatementLineOut]
    cpu_hours: str = Field(description="all CPU-hours of the month from the ledger (3 decimals)")
    total_eur: str = Field(description="the sum of the lines' amounts")


def statement_out(statement: statements.Statement) -> StatementOut:
    return StatementOut(
        account=statement.account,
        month=statement.month,
        until=statement.until,
        lines=[
            StatementLineOut(
                kind=line.kind,
                item=line.item,
                description=line.description,
                quantity=str(line.quantity),
                unit=line.unit,
                unit_price_eur=str(line.unit_price),
                amount_eur=str(line.amount),
            )
            for line in statement.lines
        ],
        cpu_hours=str(statement.cpu_hours),
        total_eur=str(statement.total),
    )


MonthPath = Annotated[str, Path(pattern=_MONTH, description="YYYY-MM (UTC)")]


def _month_or_422(month: str) -> None:
    try:
        statements.parse_month(month)
    except statements.BadMonth as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None


@router.get(
    "/users/{name}/statements/{month}",
    response_model=StatementOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
        422: {"description": "bad month"},
    },
)
def account_statement(name: AccountNamePath, month: MonthPath, caller: ServiceCaller, context: Context):
    """One account's statement of a month in EUR. The user themself, an admin, or the hub."""
    _own_or_admin(caller, name, "statements")
    accounts.check_account_name(name)
    _month_or_422(month)
    with context.session() as session:
        return statement_out(statements.account_statement(session, context.catalogue, name, month))


@router.get(
    "/statements",
    response_model=list[StatementOut],
    responses={
        200: {"content": {"text/csv": {}}, "description": "every account's statement (JSON, or CSV)"},
        403: {"description": "administrators only"},
        422: {"description": "bad month"},
    },
)
def all_statements(
    caller: ServiceCaller,
    context: Context,
    month: Annotated[str, Query(pattern=_MONTH, description="YYYY-MM (UTC)")],
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv")] = "json",
):
    """Every account's statement of a month (administrators and the hub: `polartep statements`)."""
    if not (caller.is_hub or (caller.is_user and caller.admin)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only administrators read everyone's statements"
        )
    _month_or_422(month)
    with context.session() as session:
        found = statements.month_statements(session, context.catalogue, month)
    if format == "csv":
        return Response(
            statements.statements_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="statements-{month}.csv"'},
        )
    return [statement_out(s) for s in found]


class SupportChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(
        max_length=64, pattern=_SERVER_NAME, description="a support service of the catalogue"
    )
    quantity: float = Field(gt=0, le=top_ups.MAX_SUPPORT_QUANTITY, description="units of the service's unit")
    note: str = Field(min_length=1, max_length=500, pattern=r"\S", description="what was delivered")


class SupportChargeOut(BaseModel):
    id: int
    month: str
    service: str
    quantity: float
    note: str
    recorded_by: str
    recorded_at: datetime


@router.post(
    "/users/{name}/support-charges",
    status_code=201,
    response_model=SupportChargeOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "administrators only"},
        404: {"description": "no account"},
        422: {"description": "unknown service or a bad quantity"},
    },
)
def record_support_charge(
    name: AccountNamePath, body: SupportChargeIn, caller: UserCaller, context: Context
) -> SupportChargeOut:
    """An administrator records a priced support service delivered this month (it goes on the statement)."""
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators record support charges")
    accounts.check_account_name(name)
    with context.session() as session:
        accounts.require_account(session, name)
        try:
            row = top_ups.record_support_charge(
                session, context.catalogue, name, body.service, body.quantity, body.note, caller.name
            )
        except ValueError as error:
            session.rollback()
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None
        session.commit()
        return SupportChargeOut(
            id=row.id,
            month=row.month,
            service=row.service,
            quantity=row.quantity,
            note=row.note,
            recorded_by=row.recorded_by,
            recorded_at=row.recorded_at,
        )
