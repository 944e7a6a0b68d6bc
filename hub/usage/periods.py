"""Allowance periods: the CPU-hour allowance renews each calendar month (UTC); a plan with a duration ends.

Rules this module guarantees:

* A period is a calendar month in UTC, ``[first day 00:00, first day of the next month 00:00)``; its key in the
  ledger's running totals is ``YYYY-MM`` (``month_key``).
* The allowance of a month is the plan's ``cpu_hours_per_month`` x 3600 core-seconds, whole, whatever day the plan
  started (pro-rating is a matter of statements, not of what a user may run).
* A plan with ``duration_months`` (Trial) ends that many calendar months after it started
  (``accounts.entitlements.plan_ends_at``); from then on its allowance is 0 and it does not renew.
* ``renews_at`` is the start of the next month, or None when the plan ends before then (it will not renew).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from polartep_hub.catalogue import Plan


def month_start(moment: datetime) -> datetime:
    """The first instant of ``moment``'s calendar month (UTC)."""
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    """The first instant of the month after ``moment``'s."""
    first = month_start(moment)
    return (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )


def month_key(moment: datetime) -> str:
    """``YYYY-MM`` of ``moment``'s month: the key of the ledger's running totals."""
    return f"{moment:%Y-%m}"


def split_by_month(started_at: datetime, stopped_at: datetime) -> Iterator[tuple[str, float]]:
    """``(month key, seconds)`` for each calendar month that ``[started_at, stopped_at)`` overlaps."""
    start = started_at
    while start < stopped_at:
        boundary = min(next_month_start(start), stopped_at)
        yield month_key(start), (boundary - start).total_seconds()
        start = boundary


@dataclass(frozen=True)
class AllowancePeriod:
    """The allowance in force at one moment: how much, since when, until when it renews (or ends)."""

    allowance_core_seconds: float
    period_start: datetime
    renews_at: datetime | None  # None: the plan ends before the next month and will not renew
    plan_ends_at: datetime | None
    plan_ended: bool


def allowance_period(plan: Plan, plan_ends_at: datetime | None, now: datetime) -> AllowancePeriod:
    """The allowance of ``plan`` at ``now`` (see the module's rules)."""
    ended = plan_ends_at is not None and now >= plan_ends_at
    following = next_month_start(now)
    return AllowancePeriod(
        allowance_core_seconds=0.0 if ended else plan.allowance_core_seconds,
        period_start=month_start(now),
        renews_at=None if ended or (plan_ends_at is not None and plan_ends_at <= following) else following,
        plan_ends_at=plan_ends_at,
        plan_ended=ended,
    )
