"""Quotas: what each usage interval ran as and is charged to, the plan history, the running month totals and the
quota's pending reservations.

* ``usage_intervals`` gains ``profile`` and ``charged_to``, and a partial index on the open intervals per account.
* ``plan_periods``: one row per stretch of time an account held a plan; filled here with each account's current plan
  since ``plan_started_at`` (what came before was overwritten and is unknown).
* ``usage_month_totals``: core-seconds of closed intervals per account and calendar month (UTC); filled here from
  the ledger's closed intervals, each split across the months it spans.
* ``quota_reservations``: room admitted by a quota decision that no meter has seen running yet.

Revision ID: 0009_quotas
Revises: 0008_login_throttle
Create Date: 2026-12-01

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009_quotas"
down_revision: str | Sequence[str] | None = "0008_login_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("stopped_at IS NULL")
_CURRENT = sa.text("ended_at IS NULL")


def _aware(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _next_month(moment: datetime) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )


def upgrade() -> None:
    with op.batch_alter_table("usage_intervals") as batch:
        batch.add_column(sa.Column("profile", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("charged_to", sa.String(length=80), nullable=True))
    op.create_index(
        "ix_usage_intervals_open",
        "usage_intervals",
        ["account_name"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_table(
        "plan_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_plan_periods_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_periods")),
    )
    op.create_index(op.f("ix_plan_periods_account_id"), "plan_periods", ["account_id"])
    op.create_index(
        "uq_plan_periods_current",
        "plan_periods",
        ["account_id"],
        unique=True,
        sqlite_where=_CURRENT,
        postgresql_where=_CURRENT,
    )
    op.create_table(
        "usage_month_totals",
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("core_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account_name", "month", name=op.f("pk_usage_month_totals")),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=True),
        sa.Column("cores", sa.Float(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
        sa.UniqueConstraint("account_name", "kind", "key", name="uq_quota_reservations_thing"),
    )
    op.create_index(op.f("ix_quota_reservations_account_name"), "quota_reservations", ["account_name"])

    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO plan_periods (account_id, plan, started_at) SELECT id, plan, plan_started_at FROM accounts"
        )
    )
    totals: dict[tuple[str, str], float] = {}
    for name, cores, started, stopped in bind.execute(
        sa.text(
            "SELECT account_name, cores, started_at, stopped_at FROM usage_intervals WHERE stopped_at IS NOT NULL"
        )
    ):
        start, stop = _aware(started), _aware(stopped)
        while start < stop:
            boundary = min(_next_month(start), stop)
            key = (name, f"{start:%Y-%m}")
            totals[key] = totals.get(key, 0.0) + cores * (boundary - start).total_seconds()
            start = boundary
    if totals:
        table = sa.table(
            "usage_month_totals",
            sa.column("account_name", sa.String),
            sa.column("month", sa.String),
            sa.column("core_seconds", sa.Float),
        )
        op.bulk_insert(
            table, [{"account_name": n, "month": m, "core_seconds": v} for (n, m), v in totals.items()]
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_quota_reservations_account_name"), table_name="quota_reservations")
    op.drop_table("quota_reservations")
    op.drop_table("usage_month_totals")
    op.drop_index("uq_plan_periods_current", table_name="plan_periods")
    op.drop_index(op.f("ix_plan_periods_account_id"), table_name="plan_periods")
    op.drop_table("plan_periods")
    op.drop_index("ix_usage_intervals_open", table_name="usage_intervals")
    with op.batch_alter_table("usage_intervals") as batch:
        batch.drop_column("charged_to")
        batch.drop_column("profile")
