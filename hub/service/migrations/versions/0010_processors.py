"""Processors: the registry (processors, their project shares, immutable versions) and their runs.

Revision ID: 0010_processors
Revises: 0009_quotas
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_processors"
down_revision: str | Sequence[str] | None = "0009_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name=op.f("fk_processors_owner_id_accounts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processors")),
    )
    op.create_index(op.f("ix_processors_name"), "processors", ["name"], unique=True)
    op.create_index(op.f("ix_processors_owner_id"), "processors", ["owner_id"])

    op.create_table(
        "processor_shares",
        sa.Column("processor_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["processor_id"],
            ["processors.id"],
            name=op.f("fk_processor_shares_processor_id_processors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_processor_shares_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("processor_id", "project_id", name=op.f("pk_processor_shares")),
    )
    op.create_index(op.f("ix_processor_shares_project_id"), "processor_shares", ["project_id"])

    op.create_table(
        "processor_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("processor_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("notebook_sha256", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["processor_id"],
            ["processors.id"],
            name=op.f("fk_processor_versions_processor_id_processors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"],
            ["accounts.id"],
            name=op.f("fk_processor_versions_published_by_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processor_versions")),
        sa.UniqueConstraint("processor_id", "sequence", name="uq_processor_versions_sequence"),
        sa.UniqueConstraint("processor_id", "version", name="uq_processor_versions_version"),
    )
    op.create_index(op.f("ix_processor_versions_processor_id"), "processor_versions", ["processor_id"])
    op.create_index(op.f("ix_processor_versions_published_by_id"), "processor_versions", ["published_by_id"])

    op.create_table(
        "processor_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("invoker_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("cells_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cells_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cluster_name", sa.String(length=255), nullable=True),
        sa.Column("token_id", sa.String(length=64), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoker_id"],
            ["accounts.id"],
            name=op.f("fk_processor_runs_invoker_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["processor_versions.id"],
            name=op.f("fk_processor_runs_version_id_processor_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processor_runs")),
    )
    op.create_index("ix_processor_runs_invoker_created", "processor_runs", ["invoker_id", "created_at"])
    op.create_index(op.f("ix_processor_runs_status"), "processor_runs", ["status"])
    op.create_index(op.f("ix_processor_runs_version_id"), "processor_runs", ["version_id"])


def downgrade() -> None:
    op.drop_table("processor_runs")
    op.drop_table("processor_versions")
    op.drop_table("processor_shares")
    op.drop_table("processors")
