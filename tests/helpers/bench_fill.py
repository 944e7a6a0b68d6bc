"""Bulk rows for the benchmarks' databases (``bench/quota.py``, ``bench/server_meter.py``, ``bench/processors.py``,
``bench/processors_inprocess.py``): many accounts with their plan periods, many finished processor runs, written the
way the benchmarks need them (core inserts in one statement each, no ORM events, no API calls)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account, PlanPeriod
from polartep_hub.processors.models import ProcessorRun
from polartep_hub.service.orm import utcnow


def insert_accounts(
    conn: Connection, names: list[str], *, plan: str, plan_started_at: datetime, created_at: datetime
) -> dict[str, int]:
    """Approved, non-admin accounts ``names`` on ``plan`` since ``plan_started_at``, each with its one plan period
    (what statements and decisions read); returns name -> account id. The caller's transaction commits."""
    conn.execute(
        insert(Account),
        [
            {
                "name": name,
                "plan": plan,
                "plan_started_at": plan_started_at,
                "created_at": created_at,
                "is_admin": False,
                "approved": True,
            }
            for name in names
        ],
    )
    wanted = set(names)
    ids = {name: id_ for name, id_ in conn.execute(select(Account.name, Account.id)) if name in wanted}
    conn.execute(
        insert(PlanPeriod),
        [{"account_id": ids[name], "plan": plan, "started_at": plan_started_at} for name in names],
    )
    return ids


def add_successful_runs(session: Session, version_id: int, invoker_id: int, count: int) -> None:
    """``count`` successful runs of processor version ``version_id`` by account ``invoker_id``, created now, with
    inputs ``{"days": 3}`` and results ``{"total": 45}`` (the echo processor's); the caller commits."""
    now = utcnow()
    session.add_all(
        ProcessorRun(
            id=str(uuid.uuid4()),
            version_id=version_id,
            invoker_id=invoker_id,
            status="successful",
            inputs={"days": 3},
            created_at=now,
            updated_at=now,
            timeout_seconds=60,
            results={"total": 45},
        )
        for _ in range(count)
    )
