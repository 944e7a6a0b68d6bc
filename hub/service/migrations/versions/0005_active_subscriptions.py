"""One active row per account and subscription: a partial unique index on ``subscriptions`` where ``ended_at`` is NULL.

Two admins (or two retries) subscribing an account at the same moment must not leave two active rows; ended rows
stay unconstrained, so a subscription can be held, ended and taken again, and its history is kept for statements.

Revision ID: 0005_active_subscriptions
Revises: 0004_pending_erasures
Create Date: 2026-11-25

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_active_subscriptions"
down_revision: str | Sequence[str] | None = "0004_pending_erasures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "uq_subscriptions_active",
        "subscriptions",
        ["account_id", "subscription"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_subscriptions_active", table_name="subscriptions")
