"""Dashboards from a processor run's results: the run a dashboard comes from, and the files frozen with a version.

* ``dashboards.source_run_id``: the run (its id) whose output notebook the dashboard serves, if any.
* ``dashboard_files``: files frozen with a version (the run's output files), by version and relative path.

Revision ID: 0015_dashboard_runs
Revises: 0014_quota
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_dashboard_runs"
down_revision: str | Sequence[str] | None = "0014_quota"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dashboards") as batch:
        batch.add_column(sa.Column("source_run_id", sa.String(36), nullable=True))
        batch.create_index(batch.f("ix_dashboards_source_run_id"), ["source_run_id"])
    op.create_table(
        "dashboard_files",
        sa.Column("dashboard_id", sa.String(16), nullable=False),
        sa.Column("version_sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dashboard_id"],
            ["dashboards.id"],
            name=op.f("fk_dashboard_files_dashboard_id_dashboards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dashboard_id", "version_sha256", "path", name=op.f("pk_dashboard_files")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_files")
    with op.batch_alter_table("dashboards") as batch:
        batch.drop_index(batch.f("ix_dashboards_source_run_id"))
        batch.drop_column("source_run_id")
