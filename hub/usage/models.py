"""The usage ledger's tables: usage intervals (what ran, for whom, with which reservation, charged to what), meter
checkpoints, the running per-account, per-month totals and the quota's pending reservations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
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
        # What an account has running, found without reading its history (quota decisions, ``quota.py``).
        Index(
            "ix_usage_intervals_open",
            "account_name",
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    source_key: Mapped[str] = mapped_column(String(255))
    cores: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The catalogue profile it ran as (servers, Dask workers), None where there is none (a scheduler).
    profile: Mapped[str | None] = mapped_column(String(64), default=None)
    # What pays for it: "plan:<plan>" (the CPU-hour allowance) or "subscription:<name>" (a server of a subscription's
    # profile); None for rows from before this was recorded, which the plan history prices (plan_periods).
    charged_to: Mapped[str | None] = mapped_column(String(80), default=None)


class UsageMonthTotal(Base):
    """Core-seconds of the account's *closed* intervals inside one calendar month (UTC), kept up to date with every
    interval that closes (``ledger.py``), so a quota decision reads one row instead of summing the month's ledger.

    ``month`` is the month's first day as ``YYYY-MM``. An interval spanning months adds its share to each.
    ``account_name`` follows the ledger (a plain column; erasure replaces it with the pseudonym).
    """

    __tablename__ = "usage_month_totals"

    account_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    core_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class QuotaReservation(Base):
    """Room a quota decision admitted and that no meter has seen running yet (``quota.py``: reserve, then commit).

    One per account and thing (``kind`` ``server``, ``key`` the server's name); it counts as running until the
    meter opens the thing's interval (which deletes it in the same transaction), the hub reports the spawn ended,
    or it expires.
    """

    __tablename__ = "quota_reservations"
    __table_args__ = (UniqueConstraint("account_name", "kind", "key", name="uq_quota_reservations_thing"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    profile: Mapped[str | None] = mapped_column(String(64), default=None)
    cores: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MeterCheckpoint(Base):
    """A meter's last complete pass: everything it saw open then was running at ``last_pass_at`` (at least).

    When a metered thing vanishes from its source without a stop time (e.g. the gateway's database dropped the
    record while the meter was down), its interval is closed at this time: the latest moment it was known to run,
    so usage is never charged for time nobody saw.
    """

    __tablename__ = "meter_checkpoints"

    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_pass_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageNotification(Base):
    """A threshold of this month's CPU-hour allowance that the account reached (80, 95 or 100 percent;
    ``enforcement.py``): written once per account, month and threshold (the unique constraint makes concurrent and
    repeated passes idempotent), shown to the user until the month ends. ``seen_at`` only hides it from the
    notices; it never lifts the enforcement (that follows the ledger alone).

    ``account_name`` follows the ledger (a plain column; erasure replaces it with the pseudonym).
    """

    __tablename__ = "usage_notifications"
    __table_args__ = (
        UniqueConstraint("account_name", "month", "threshold", name="uq_usage_notifications_threshold"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64), index=True)
    month: Mapped[str] = mapped_column(String(7))
    threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_core_seconds: Mapped[float] = mapped_column(Float)
    allowance_core_seconds: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String(1000))
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class QuotaTopUp(Base):
    """CPU-hours an administrator added to one account's allowance for one calendar month (UTC): who, when, how
    many, why. Read by every quota decision of that month (``quota.py``) and listed on the month's statement.

    ``account_name`` follows the ledger (erasure replaces it with the pseudonym); ``granted_by`` names another
    account (the administrator) and is pseudonymised when that administrator is erased.
    """

    __tablename__ = "quota_top_ups"
    __table_args__ = (Index("ix_quota_top_ups_account_month", "account_name", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    cpu_hours: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(500))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StorageUsage(Base):
    """What one source of stored bytes (``home``, or a dataset the data domain reports) of an account holds in one
    storage class, as last sampled (``storage.py``). ``account_name`` follows the ledger (erasure renames it)."""

    __tablename__ = "storage_usage"

    account_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    storage_class: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StorageMonthTotal(Base):
    """Byte-seconds an account held in one storage class in one calendar month (UTC), integrated sample by sample
    (``storage.py``); statements divide by 10^12 x the month's seconds for TB-months."""

    __tablename__ = "storage_month_totals"

    account_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    storage_class: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    byte_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class SupportCharge(Base):
    """A priced support service (the catalogue's ``services``: processor integration, data management) delivered to
    an account in one calendar month, as an administrator recorded it: which, how many units, why, by whom, when.
    Listed and priced on the month's statement (``statements.py``). ``recorded_by`` names another account (the
    administrator) and is pseudonymised when that administrator is erased."""

    __tablename__ = "support_charges"
    __table_args__ = (Index("ix_support_charges_account_month", "account_name", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_name: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    service: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(String(500))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
