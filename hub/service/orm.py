"""The ORM's base for every table of the platform database, and its timestamp type.

Rules this module guarantees:

* The schema is owned by the Alembic migrations in ``service/migrations/versions``; the domains' model classes
  (``accounts/models.py``, ``projects/models.py``, ``usage/models.py``, ``service/models.py``) must match them, and
  ``tests/service/test_migrations.py`` fails when they drift apart (``alembic check``-style comparison). Every model
  module is imported by ``service/tables.py``, so ``Base.metadata`` always holds the whole schema.
* Constraint and index names come from one naming convention, so migrations can refer to them on every database.
* Every timestamp is stored and returned as a timezone-aware UTC ``datetime`` (SQLite keeps no zone; ``UTCDateTime``
  puts it back).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    MetaData,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

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
