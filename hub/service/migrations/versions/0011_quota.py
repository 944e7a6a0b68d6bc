"""Quota enforcement and storage: the notices at 80, 95 and 100 percent of the month's allowance, and administrators' top-ups.

* ``usage_notifications``: one row per account, month and threshold (unique), with the use and allowance then.
* ``quota_top_ups``: CPU-hours granted for one account and month, by whom, when and why.
* ``storage_usage``: the last sampled bytes of each source (home, datasets) per account and storage class.
* ``storage_month_totals``: byte-seconds per account, storage class and month (for TB-months).
* ``support_charges``: priced support services delivered to an account in a month (for statements).

Revision ID: 0011_quota
Revises: 0010_processors
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_quota"
down_revision: str | Sequence[str] | None = "0010_processors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_core_seconds", sa.Float(), nullable=False),
        sa.Column("allowance_core_seconds", sa.Float(), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_notifications")),
        sa.UniqueConstraint("account_name", "month", "threshold", name="uq_usage_notifications_threshold"),
    )
    op.create_index(op.f("ix_usage_notifications_account_name"), "usage_notifications", ["account_name"])
    op.create_table(
        "quota_top_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("cpu_hours", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_top_ups")),
    )
    op.create_index("ix_quota_top_ups_account_month", "quota_top_ups", ["account_name", "month"])
    op.create_table(
        "storage_usage",
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("storage_class", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_name", "storage_class", "source", name=op.f("pk_storage_usage")),
    )
    op.create_table(
        "storage_month_totals",
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("storage_class", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("byte_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_name", "storage_class", "month", name=op.f("pk_storage_month_totals")
        ),
    )

    op.create_table(
        "support_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_charges")),
    )
    op.create_index("ix_support_charges_account_month", "support_charges", ["account_name", "month"])


def downgrade() -> None:
    op.drop_index("ix_support_charges_account_month", table_name="support_charges")
    op.drop_table("support_charges")
    op.drop_table("storage_month_totals")
    op.drop_table("storage_usage")
    op.drop_index("ix_quota_top_ups_account_month", table_name="quota_top_ups")
    op.drop_table("quota_top_ups")
    op.drop_index(op.f("ix_usage_notifications_account_name"), table_name="usage_notifications")
    op.drop_table("usage_notifications")
