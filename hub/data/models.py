"""The data domain's tables: datasets (each owned by a project), read grants to other projects, and STAC items.

A dataset's files live in a storage class of the catalogue (``storage.py``), in a folder named by an opaque
``storage_key`` so that a path says nothing about whose data it is. Its STAC collection is kept with the row
(``stac_collection``, JSON text); its items are rows of ``stac_items`` whose searchable fields (collection, time,
bounding box) are real, indexed columns, so a search never parses JSON.

No table refers to an account: datasets belong to projects (``personal_data.NOT_PERSONAL_TABLES`` says why).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from polartep_hub.projects.models import Project
from polartep_hub.service.orm import Base, UTCDateTime, utcnow


class Dataset(Base):
    """A named folder of data owned by a project, in one storage class, with its STAC collection."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_datasets_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    storage_class: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    stac_collection: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # The longest time span of any of its items (end - start, seconds): searches bound the start time from below
    # with it, so the (collection, start) index is read as a range on both sides (stac.search).
    max_item_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    project: Mapped[Project] = relationship()
    grants: Mapped[list[DatasetGrant]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )


class DatasetGrant(Base):
    """Read access to a dataset for every member of another project."""

    __tablename__ = "dataset_grants"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="grants")
    project: Mapped[Project] = relationship()


class StacItem(Base):
    """One STAC item of a dataset's collection; the searchable fields are columns, the document is ``body``."""

    __tablename__ = "stac_items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "item_id", name="uq_stac_items_dataset_item"),
        Index("ix_stac_items_collection_datetime", "collection_id", "start_datetime"),
        Index("ix_stac_items_datetime", "start_datetime", "end_datetime"),
        Index("ix_stac_items_bbox", "west", "east", "south", "north"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[str] = mapped_column(String(160))
    item_id: Mapped[str] = mapped_column(String(200))
    start_datetime: Mapped[datetime] = mapped_column(UTCDateTime())
    end_datetime: Mapped[datetime] = mapped_column(UTCDateTime())
    west: Mapped[float] = mapped_column(Float)
    south: Mapped[float] = mapped_column(Float)
    east: Mapped[float] = mapped_column(Float)
    north: Mapped[float] = mapped_column(Float)
    # Free-text search (``q``) matches this lower-cased text: title, description and keywords of item and collection.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    body: Mapped[str] = mapped_column(Text)
