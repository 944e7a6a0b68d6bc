"""The processors' tables: processors, their project shares, their immutable versions, and runs.

Rules the schema guarantees:

* A version is immutable: ``(processor_id, sequence)`` and ``(processor_id, version)`` are unique, and the notebook
  it runs is named by its SHA-256 (``notebook_store.py``), so a version always runs the bytes that were published.
* A run refers to the exact version it executes (never "the latest"), and is the invoker's: its inputs, outputs and
  logs belong to the invoker's account and go with it on erasure (``ondelete=CASCADE``). A processor outlives its
  owner only as a withdrawn or transferred entry (``owner_id`` set to NULL by the database until the erasure hook
  decides), so other users' runs of it keep their history.
* Every state of a run is written before the step it names starts (accepted -> running -> successful / failed /
  dismissed), so a restarted service finds each run where it was and reconciles it with the gateway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from polartep_hub.service.orm import Base, UTCDateTime, utcnow

VISIBILITIES = ("private", "projects", "public")
RUN_STATES = ("accepted", "running", "successful", "failed", "dismissed")
FINAL_RUN_STATES = frozenset({"successful", "failed", "dismissed"})


class Processor(Base):
    """A published processor: its stable id (``name``), owner and who may see and run it."""

    __tablename__ = "processors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when the owner's erasure withdrew it: no new runs, the history of others' runs stays readable to them.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    versions: Mapped[list[ProcessorVersion]] = relationship(
        back_populates="processor", order_by="ProcessorVersion.sequence", passive_deletes=True
    )
    shares: Mapped[list[ProcessorShare]] = relationship(
        back_populates="processor", cascade="all, delete-orphan", passive_deletes=True
    )


class ProcessorShare(Base):
    """A project a ``projects``-visible processor is shared with (its members may see and run it)."""

    __tablename__ = "processor_shares"

    processor_id: Mapped[int] = mapped_column(
        ForeignKey("processors.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    processor: Mapped[Processor] = relationship(back_populates="shares")


class ProcessorVersion(Base):
    """One immutable published version: the definition as validated, and the notebook by its SHA-256."""

    __tablename__ = "processor_versions"
    __table_args__ = (
        UniqueConstraint("processor_id", "sequence", name="uq_processor_versions_sequence"),
        UniqueConstraint("processor_id", "version", name="uq_processor_versions_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    processor_id: Mapped[int] = mapped_column(ForeignKey("processors.id", ondelete="RESTRICT"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 ... in publishing order
    version: Mapped[str] = mapped_column(String(64))  # the definition's semver
    notebook_sha256: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )

    processor: Mapped[Processor] = relationship(back_populates="versions")


class ProcessorRun(Base):
    """One run (an OGC job) of one version, by its invoker, on the invoker's quota and cluster."""

    __tablename__ = "processor_runs"
    __table_args__ = (Index("ix_processor_runs_invoker_created", "invoker_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID: the OGC job id
    version_id: Mapped[int] = mapped_column(
        ForeignKey("processor_versions.id", ondelete="RESTRICT"), index=True
    )
    invoker_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="accepted", index=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    cells_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cells_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The gateway cluster the run executes on, and the id of the short-lived hub token made for it (revoked at the
    # end; the token itself is never stored).
    cluster_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Declared output values (small JSON) once the run succeeded; files live in the run's output folder.
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
