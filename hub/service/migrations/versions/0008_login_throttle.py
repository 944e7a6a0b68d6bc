"""Rate counters in the database: login throttling per (account, client address) and per client address, and
sign-ups per client address (``rate_limits.py``), so limits hold across restarts and concurrent requests.

Revision ID: 0008_login_throttle
Revises: 0007_password_reset
Create Date: 2026-12-01

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
The accounts' old lock-out columns (``failed_logins``, ``locked_until``) stay for now and are no longer used.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_login_throttle"
down_revision: str | Sequence[str] | None = "0007_password_reset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_digest", name=op.f("pk_rate_counters")),
    )
    op.create_index(op.f("ix_rate_counters_window_ends_at"), "rate_counters", ["window_ends_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_counters_window_ends_at"), table_name="rate_counters")
    op.drop_table("rate_counters")
