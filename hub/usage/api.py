"""Read API of the usage ledger: ``GET <prefix>api/v1/users/{name}/usage?since=...&until=...``.

Rules this module guarantees:

* Who may read: the user themself, an admin user, or the hub (``custom:polartep:hub``); anyone else gets 403.
* The period is ``[since, until)``: ISO 8601 times *with* a time zone (e.g. ``2026-11-01T00:00:00Z``); by default
  from the start of the current month (UTC) until now. ``since`` must come before ``until`` and the period may be at
  most 400 days; otherwise 422 with a message that says so. Nothing is written.
* The answer lists every interval of the account that overlaps the period (as recorded, oldest first) and, per
  interval and in total, the **core-seconds inside the period**: cores x the overlap of the interval with the
  period, where an interval still open counts until ``until`` or now, whichever is earlier. So the totals of two
  adjacent periods add up to the total of both, and nothing is counted twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.service.orm import utcnow
from polartep_hub.service.web.access import Context, ServiceCaller
from polartep_hub.usage.models import UsageInterval

MAX_PERIOD = timedelta(days=400)

router = APIRouter()


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
    by_kind: dict[str, float] = {}
    for interval in intervals:
        by_kind[interval.kind] = by_kind.get(interval.kind, 0.0) + interval.core_seconds
    return UsageOut(
        name=name,
        since=since,
        until=until,
        core_seconds=sum(i.core_seconds for i in intervals),
        core_seconds_by_kind=by_kind,
        intervals=intervals,
    )
