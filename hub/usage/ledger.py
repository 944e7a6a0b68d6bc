"""Keeps the ledger's running month totals (``usage_month_totals``) in step with every usage interval.

**Charging rule** (the README's "Quotas"): what is charged is reserved cores x wall time, from an interval's start
to its stop; each interval is one scheduler, worker, server or run, and each thing is one interval (``(kind,
source_key)`` is unique), so every core-second is charged once. A processor run is charged through the intervals of
the cluster it runs on, never as an interval of its own kind that would count the same cores again.

**Mechanism**: a ``before_flush`` listener on every ORM session. When a session flushes a new interval that is
already closed, or an interval whose ``stopped_at`` went from empty to a time, the interval's core-seconds are
added to the totals of each month they fall in, by an atomic ``UPDATE ... SET core_seconds = core_seconds + x``
(inserting the row first where it is missing, ``ON CONFLICT DO NOTHING``), in the same transaction as the
interval's change. So the totals can never disagree with the ledger: both commit or neither does, and concurrent
writers add, never overwrite. Rejected: recomputing totals from the ledger per decision (the decision must stay O(1)
in the ledger's size, ``bench/quota.py``), and a periodic job (a decision between two runs would see stale totals).

Open intervals are not in the totals: what they used so far is cores x (now - max(start, month start)), computed
from the few open rows an account has (``ix_usage_intervals_open``).

Bulk ``UPDATE`` statements bypass the listener: code that closes intervals uses ``close_open_intervals`` (or the
ORM), never a bulk update.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from polartep_hub.usage.models import UsageInterval, UsageMonthTotal
from polartep_hub.usage.periods import split_by_month


def _add_to_totals(
    session: Session, account: str, cores: float, started: datetime, stopped: datetime
) -> None:
    connection = session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    table = UsageMonthTotal.__table__
    for month, seconds in split_by_month(started, stopped):
        if seconds <= 0:
            continue
        connection.execute(
            insert(table)
            .values(account_name=account, month=month, core_seconds=0.0)
            .on_conflict_do_nothing(index_elements=["account_name", "month"])
        )
        connection.execute(
            update(table)
            .where(table.c.account_name == account, table.c.month == month)
            .values(core_seconds=table.c.core_seconds + cores * seconds)
        )


def _closed_now(interval: UsageInterval) -> bool:
    state = inspect(interval)
    if state.pending:
        return interval.stopped_at is not None
    history = state.attrs.stopped_at.history
    return bool(history.added) and history.added[0] is not None and not any(history.deleted)


@event.listens_for(Session, "before_flush")
def _keep_month_totals(session: Session, flush_context: object, instances: object) -> None:
    for instance in [*session.new, *session.dirty]:
        if isinstance(instance, UsageInterval) and _closed_now(instance):
            _add_to_totals(
                session, instance.account_name, instance.cores, instance.started_at, instance.stopped_at
            )


def close_open_intervals(session: Session, account: str, at: datetime) -> int:
    """Close every open interval of ``account`` at ``at`` (never before its start), through the ORM so the month
    totals follow; returns how many. Flushes, does not commit."""
    rows = session.scalars(
        select(UsageInterval).where(UsageInterval.account_name == account, UsageInterval.stopped_at.is_(None))
    ).all()
    for row in rows:
        row.stopped_at = max(at, row.started_at)
    session.flush()
    return len(rows)


def rename_account_totals(session: Session, name: str, pseudonym: str) -> None:
    """Erasure: the month totals of ``name`` go to ``pseudonym`` with its ledger rows (merged where both exist)."""
    rows = session.scalars(select(UsageMonthTotal).where(UsageMonthTotal.account_name == name)).all()
    for row in rows:
        _add_core_seconds(session, pseudonym, row.month, row.core_seconds)
        session.delete(row)
    session.flush()


def _add_core_seconds(session: Session, account: str, month: str, core_seconds: float) -> None:
    existing = session.get(UsageMonthTotal, (account, month))
    if existing is None:
        session.add(UsageMonthTotal(account_name=account, month=month, core_seconds=core_seconds))
    else:
        existing.core_seconds += core_seconds
