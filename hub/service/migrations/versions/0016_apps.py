"""Hosted apps: a dashboard's kind (``voila``, ``panel`` or ``web``), which says what serves its frozen version.

* ``dashboards.kind``: ``voila`` for every dashboard published before (a notebook served by Voila).

Revision ID: 0016_apps
Revises: 0015_dashboard_runs
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_apps"
down_revision: str | Sequence[str] | None = "0015_dashboard_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dashboards") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="voila"))


def downgrade() -> None:
    with op.batch_alter_table("dashboards") as batch:
        batch.drop_column("kind")
