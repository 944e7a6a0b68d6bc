"""Meter checkpoints: per meter, the time of its last complete pass (the Dask Gateway meter's "last seen").

Revision ID: 0006_gateway_meter
Revises: 0005_active_subscriptions
Create Date: 2026-11-25

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_gateway_meter"
down_revision: str | Sequence[str] | None = "0005_active_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "meter_checkpoints",
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter", name=op.f("pk_meter_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("meter_checkpoints")
