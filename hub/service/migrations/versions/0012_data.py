"""Data: datasets owned by projects, read grants to other projects, and the STAC items of their collections.

* ``datasets``: one row per dataset (project, name, storage class, opaque folder key, STAC collection as JSON).
* ``dataset_grants``: read access to a dataset for another project's members.
* ``stac_items``: each item's searchable fields as indexed columns (collection, time range, bounding box, text)
  beside its document, so a STAC search is an index look-up and never parses JSON.

Revision ID: 0012_data
Revises: 0011_quota
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_data"
down_revision: str | Sequence[str] | None = "0011_quota"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("storage_class", sa.String(length=32), nullable=False),
        sa.Column("storage_key", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("stac_collection", sa.Text(), server_default="{}", nullable=False),
        sa.Column("max_item_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),
        sa.UniqueConstraint("storage_key", name=op.f("uq_datasets_storage_key")),
    )
    op.create_index(op.f("ix_datasets_project_id"), "datasets", ["project_id"])
    op.create_table(
        "dataset_grants",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_grants_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dataset_grants_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "project_id", name=op.f("pk_dataset_grants")),
    )
    op.create_index(op.f("ix_dataset_grants_project_id"), "dataset_grants", ["project_id"])
    op.create_table(
        "stac_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.String(length=160), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("start_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("west", sa.Float(), nullable=False),
        sa.Column("south", sa.Float(), nullable=False),
        sa.Column("east", sa.Float(), nullable=False),
        sa.Column("north", sa.Float(), nullable=False),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_stac_items_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stac_items")),
        sa.UniqueConstraint("dataset_id", "item_id", name="uq_stac_items_dataset_item"),
    )
    op.create_index(op.f("ix_stac_items_dataset_id"), "stac_items", ["dataset_id"])
    op.create_index("ix_stac_items_collection_datetime", "stac_items", ["collection_id", "start_datetime"])
    op.create_index("ix_stac_items_datetime", "stac_items", ["start_datetime", "end_datetime"])
    op.create_index("ix_stac_items_bbox", "stac_items", ["west", "east", "south", "north"])


def downgrade() -> None:
    op.drop_table("stac_items")
    op.drop_table("dataset_grants")
    op.drop_table("datasets")
