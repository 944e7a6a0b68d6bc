"""The usage ledger's tables: usage intervals (what ran, for whom, with which reservation) and meter checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from polartep_hub.service.orm import Base, UTCDateTime


class UsageInterval(Base):
    """Reserved resources over time: one row per scheduler, worker, server or run, from its start to its stop.

    The usage ledger's raw material (cores x wall time). ``account_name`` is a plain column, not a foreign key, so
    rows outlive an erased account; erasure replaces it with the account's pseudonym and the totals still add up.
    ``source_key`` identifies the thing metered (e.g. ``<cluster>/<worker>``) so a restarted meter never counts it twice.
    """

    __tablename__ = "usage_intervals"
    __table_args__ = (
        UniqueConstraint("kind", "source_key", name="uq_usage_intervals_source"),
        Index("ix_usage_intervals_account_started", "account_name", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    source_key: Mapped[str] = mapped_column(String(255))
    cores: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class MeterCheckpoint(Base):
    """A meter's last complete pass: everything it saw open then was running at ``last_pass_at`` (at least).

    When a metered thing vanishes from its source without a stop time (e.g. the gateway's database dropped the
    record while the meter was down), its interval is closed at this time: the latest moment it was known to run,
    so usage is never charged for time nobody saw.
    """

    __tablename__ = "meter_checkpoints"

    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_pass_at: Mapped[datetime] = mapped_column(UTCDateTime())
