"""Pending erasures: an erasure request is recorded before its steps run, so a restart finishes it.

Revision ID: 0004_pending_erasures
Revises: 0003_oidc_identities
Create Date: 2026-11-25

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_pending_erasures"
down_revision: str | Sequence[str] | None = "0003_oidc_identities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_erasures",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=16), nullable=False),
        sa.Column("processors", sa.String(length=16), nullable=False),
        sa.Column("transfer_to", sa.String(length=64), nullable=True),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_pending_erasures_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_pending_erasures")),
    )


def downgrade() -> None:
    op.drop_table("pending_erasures")
