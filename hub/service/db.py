"""Database engines, sessions and schema upgrades for the platform service.

Rules this module guarantees:

* One way to build an engine for every URL the service accepts (SQLite files, PostgreSQL through psycopg 3); SQLite
  engines may be used from any thread (FastAPI runs plain ``def`` endpoints in a thread pool) and use WAL journaling,
  so readers never block the writer.
* The schema only changes through Alembic: ``upgrade_to_head`` runs the shipped migrations programmatically, with
  no ``alembic.ini`` needed (operators may still run ``alembic -c hub/service/alembic.ini``).
* The database URL is passed to Alembic as a live connection, never through ini interpolation, so passwords with
  ``%`` or other special characters work and are never written anywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Every domain's tables, so that any session can use any mapped class and migrations see the whole schema.
from polartep_hub.service import tables  # noqa: F401

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger(__name__)


def _enable_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL with synchronous=NORMAL is durable across application crashes (not power loss); that is the
        # usual, documented trade-off for WAL mode.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings the service relies on (see the module docstring)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # Each connection would get its own empty database: migrations and requests would not see each other.
            raise ValueError(
                "in-memory SQLite is not supported; use a file, e.g. sqlite:///./platform.sqlite"
            )
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _enable_sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (responses are built after committing)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Any | None = None) -> Config:
    """An Alembic ``Config`` for the shipped migrations; ``connection`` (if given) is the one migrations run on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(url_or_engine: str | Engine) -> None:
    """Bring the database at ``url_or_engine`` to the newest schema (a no-op when it is already there)."""
    _run_migration(url_or_engine, lambda cfg: command.upgrade(cfg, "head"))


def downgrade_to(url_or_engine: str | Engine, revision: str = "base") -> None:
    """Step the database down to ``revision`` (``base`` drops every table the migrations made)."""
    _run_migration(url_or_engine, lambda cfg: command.downgrade(cfg, revision))


def current_revision(url_or_engine: str | Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def _run_migration(url_or_engine: str | Engine, step: Any) -> None:
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as connection:
            step(alembic_config(connection))
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def database_is_available(engine: Engine) -> bool:
    """True when ``SELECT 1`` succeeds; used by the health check, so it never raises."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception as e:  # any driver error means "unavailable"; the reason goes to the log, not the client
        log.warning("database check failed: %s: %.300s", type(e).__name__, e)
        return False
