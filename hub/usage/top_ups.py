"""Administrators' top-ups: extra CPU-hours for one account in the current calendar month (UTC).

Rules this module guarantees:

* A top-up is recorded with who granted it, when, how many CPU-hours (more than 0, at most ``MAX_TOP_UP_HOURS``,
  to 3 decimals) and why (a non-blank reason); nothing is ever changed or deleted afterwards (a mistaken top-up is
  corrected by none, not by editing: the statement lists every grant as made).
* It raises the allowance of the month it was granted in (``quota.py`` adds the month's top-ups to the plan's
  allowance), from the next decision and enforcement pass on; it does not carry over to the next month.
* Only administrators grant (the route checks the hub's admin flag of the caller); a user cannot top themself up.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.service.orm import utcnow
from polartep_hub.usage.models import QuotaTopUp
from polartep_hub.usage.periods import month_key

MAX_TOP_UP_HOURS = 100_000.0


def grant_top_up(
    session: Session,
    account_name: str,
    cpu_hours: float,
    reason: str,
    granted_by: str,
    *,
    now: datetime | None = None,
) -> QuotaTopUp:
    """Record a top-up of ``cpu_hours`` for this month (``ValueError`` for a bad amount or reason). Flushes."""
    if not 0 < cpu_hours <= MAX_TOP_UP_HOURS:
        raise ValueError(f"cpu_hours must be more than 0 and at most {MAX_TOP_UP_HOURS:g}")
    if not reason.strip():
        raise ValueError("reason must say why the top-up is granted")
    now = now or utcnow()
    row = QuotaTopUp(
        account_name=account_name,
        month=month_key(now),
        cpu_hours=round(cpu_hours, 3),
        reason=reason.strip(),
        granted_by=granted_by,
        granted_at=now,
    )
    session.add(row)
    session.flush()
    return row


def top_ups(session: Session, account_name: str, month: str) -> list[QuotaTopUp]:
    """The account's top-ups of ``month`` (``YYYY-MM``), oldest first."""
    return list(
        session.scalars(
            select(QuotaTopUp)
            .where(QuotaTopUp.account_name == account_name, QuotaTopUp.month == month)
            .order_by(QuotaTopUp.granted_at, QuotaTopUp.id)
        )
    )
