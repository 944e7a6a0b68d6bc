"""Administrators' top-ups (extra CPU-hours for one account in the current calendar month, UTC) and support charges
(priced support services delivered to an account, for its statement).

Rules this module guarantees:

* A top-up is recorded with who granted it, when, how many CPU-hours (more than 0, at most ``MAX_TOP_UP_HOURS``,
  to 3 decimals) and why (a non-blank reason); nothing is ever changed or deleted afterwards (a mistaken top-up is
  corrected by none, not by editing: the statement lists every grant as made).
* It raises the allowance of the month it was granted in (``quota.py`` adds the month's top-ups to the plan's
  allowance), from the next decision and enforcement pass on; it does not carry over to the next month.
* Only administrators grant (the route checks the hub's admin flag of the caller); a user cannot top themself up.
* A support charge names a service of the catalogue (``services``), a quantity of its unit (more than 0; a whole
  number for ``once``), a note, who recorded it and when; it is priced on the statement of the month it was recorded
  in (``statements.py``) and, like a top-up, never edited afterwards. Only administrators record them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.models import QuotaTopUp, SupportCharge
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


MAX_SUPPORT_QUANTITY = 10_000.0


def record_support_charge(
    session: Session,
    catalogue: Catalogue,
    account_name: str,
    service: str,
    quantity: float,
    note: str,
    recorded_by: str,
    *,
    now: datetime | None = None,
) -> SupportCharge:
    """Record ``quantity`` units of support ``service`` for this month (``ValueError`` naming what is wrong). Flushes."""
    offered = catalogue.services.get(service)
    if offered is None:
        raise ValueError(f"unknown support service {service[:64]!r}; known: {', '.join(catalogue.services)}")
    if not 0 < quantity <= MAX_SUPPORT_QUANTITY:
        raise ValueError(f"quantity must be more than 0 and at most {MAX_SUPPORT_QUANTITY:g}")
    if offered.unit == "once" and quantity != int(quantity):
        raise ValueError(f"{service} is priced once per item: give a whole number")
    if not note.strip():
        raise ValueError("note must say what was delivered")
    now = now or utcnow()
    row = SupportCharge(
        account_name=account_name,
        month=month_key(now),
        service=service,
        quantity=round(quantity, 3),
        note=note.strip(),
        recorded_by=recorded_by,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    return row
