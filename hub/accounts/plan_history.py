"""The plan history: one ``PlanPeriod`` per stretch of time an account held a plan, so a month can be priced after
the plan changed (``accounts.plan`` holds only the current plan).

**Mechanism**: a ``before_flush`` listener on every ORM session. A new account gets its first period (from
``plan_started_at``); an account whose ``plan`` changed gets its current period ended and a new one started at the
new ``plan_started_at``, in the flush that writes the change, so the history commits in the same transaction as
every plan change, whichever code path makes it (``store.change_plan``, sign-up, OIDC, admin creation). Rejected:
writing the history in each function that changes a plan (one forgotten path loses a period).

Rules it guarantees: periods of one account never overlap and leave no gap (a period ends when the next starts);
at most one is current (``ended_at`` empty: a partial unique index); rows are deleted with the account (they hold
no personal data beyond the account's own plan).
"""

from __future__ import annotations

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account, PlanPeriod
from polartep_hub.service.orm import utcnow


@event.listens_for(Session, "before_flush")
def _record_plan_changes(session: Session, flush_context: object, instances: object) -> None:
    for account in list(session.new):
        if isinstance(account, Account):
            started = account.plan_started_at or utcnow()
            account.plan_started_at = started
            session.add(PlanPeriod(account=account, plan=account.plan, started_at=started))
    for account in list(session.dirty):
        if not isinstance(account, Account):
            continue
        history = inspect(account).attrs.plan.history
        if not history.added or history.added[0] in history.deleted:
            continue
        changed_at = account.plan_started_at or utcnow()
        current = session.scalar(
            select(PlanPeriod).where(PlanPeriod.account_id == account.id, PlanPeriod.ended_at.is_(None))
        )
        if current is not None:
            current.ended_at = max(changed_at, current.started_at)
        session.add(PlanPeriod(account_id=account.id, plan=account.plan, started_at=changed_at))


def plan_history(session: Session, account: Account) -> list[PlanPeriod]:
    """Every plan the account held, oldest first (the current one last, with ``ended_at`` empty)."""
    return list(
        session.scalars(
            select(PlanPeriod)
            .where(PlanPeriod.account_id == account.id)
            .order_by(PlanPeriod.started_at, PlanPeriod.id)
        )
    )
