"""The platform service's database tables, as SQLAlchemy 2 ORM classes.

Rules this module guarantees:

* The schema is owned by the Alembic migrations in ``migrations/versions``; these classes must match them, and
  ``tests/service/test_migrations.py`` fails when they drift apart (``alembic check``-style comparison).
* Constraint and index names come from one naming convention, so migrations can refer to them on every database.
* Every timestamp is stored and returned as a timezone-aware UTC ``datetime`` (SQLite keeps no zone; ``UTCDateTime``
  puts it back).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, MetaData, String, TypeDecorator, false, true
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` that only ever holds and returns aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime would be read back as UTC on SQLite and as server-local time on PostgreSQL.
            raise ValueError("naive datetime given to a UTC column; use polartep_hub.service.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A platform account: one per JupyterHub user name, holding the plan and (for embedded login) a password hash."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # argon2 encoded hash; None for accounts that log in through OIDC or have not set a password.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    approved: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    plan: Mapped[str] = mapped_column(String(64))
    plan_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        # No password hash here: reprs end up in logs.
        return f"<Account {self.name!r} plan={self.plan!r} admin={self.is_admin} approved={self.approved}>"
