"""Alembic environment for the platform service's database.

Rules this module guarantees:

* When the service (``polartep_hub.service.db``) runs migrations it hands over a live connection in
  ``config.attributes["connection"]``; migrations run on it, inside the caller's transaction.
* When an operator runs ``alembic -c hub/service/alembic.ini ...``, the URL comes from ``-x db_url=...``, else from
  ``POLARTEP_SERVICE_DB_URL`` (read by ``polartep_hub.service.config``), else the service's SQLite default.
* ``target_metadata`` is the ORM's metadata, so ``alembic check`` and ``alembic revision --autogenerate`` compare
  against the models, with type comparison on.
"""

from __future__ import annotations

from alembic import context

from polartep_hub.service.config import database_url_from_env
from polartep_hub.service.db import make_engine
from polartep_hub.service.tables import metadata

config = context.config
target_metadata = metadata

if config.config_file_name is not None and not config.attributes.get("connection"):
    # Only when run from the command line: the service configures its own logging.
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: write the SQL instead of running it."""
    url = context.get_x_argument(as_dictionary=True).get("db_url") or database_url_from_env()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("db_url") or database_url_from_env()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
