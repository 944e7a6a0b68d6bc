"""Registration data, consents, subscriptions, projects, usage intervals and the erasure log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACCOUNT_COLUMNS = (
    sa.Column("full_name", sa.String(length=200), nullable=True),
    sa.Column("email", sa.String(length=254), nullable=True),
    sa.Column("organisation", sa.String(length=200), nullable=True),
    sa.Column("organisation_location", sa.String(length=200), nullable=True),
    sa.Column("phone", sa.String(length=40), nullable=True),
    sa.Column("auth_source", sa.String(length=16), server_default="local", nullable=False),
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("approved_by", sa.String(length=64), nullable=True),
    sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
)


def upgrade() -> None:
    # batch mode: SQLite cannot add NOT NULL columns with defaults and indexes in place everywhere.
    with op.batch_alter_table("accounts") as batch:
        for column in _ACCOUNT_COLUMNS:
            batch.add_column(column._copy())
        batch.create_index(op.f("ix_accounts_email"), ["email"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_consents_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("account_id", "document", "version", name="uq_consents_acceptance"),
    )
    op.create_index(op.f("ix_consents_account_id"), "consents", ["account_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("subscription", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_account_id"), "subscriptions", ["account_id"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(op.f("ix_projects_name"), "projects", ["name"], unique=True)

    op.create_table(
        "project_members",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_project_members_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "account_id", name=op.f("pk_project_members")),
    )
    op.create_index(op.f("ix_project_members_account_id"), "project_members", ["account_id"], unique=False)

    op.create_table(
        "usage_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("cores", sa.Float(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_intervals")),
        sa.UniqueConstraint("kind", "source_key", name="uq_usage_intervals_source"),
    )
    op.create_index(
        "ix_usage_intervals_account_started", "usage_intervals", ["account_name", "started_at"], unique=False
    )

    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=16), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_erasures_pseudonym")),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_index("ix_usage_intervals_account_started", table_name="usage_intervals")
    op.drop_table("usage_intervals")
    op.drop_index(op.f("ix_project_members_account_id"), table_name="project_members")
    op.drop_table("project_members")
    op.drop_index(op.f("ix_projects_name"), table_name="projects")
    op.drop_table("projects")
    op.drop_index(op.f("ix_subscriptions_account_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_consents_account_id"), table_name="consents")
    op.drop_table("consents")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_index(op.f("ix_accounts_email"))
        for column in reversed(_ACCOUNT_COLUMNS):
            batch.drop_column(column.name)
