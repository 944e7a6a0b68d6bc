"""The gateway's SQLite database in write-ahead-log mode, so that starting a cluster does not wait on disk syncs.

dask-gateway-server commits its state a dozen times on the way from ``new_cluster()`` to two running workers (the
cluster, its state, its status, each worker's record, state and status). In SQLite's default rollback-journal mode
with ``synchronous=FULL`` every commit syncs the disk: about 10 ms each on these machines, some 0.1 s on the
critical path of every cluster start (``bench/gateway.py``). Rules this module guarantees:

* ``journal_mode=WAL`` and ``synchronous=NORMAL`` on every connection of the gateway's engine: a commit is durable
  against the gateway process dying at any line (it is in the log before ``commit`` returns); only an operating
  system crash or power loss can lose the last commits, and the database stays consistent even then (after a power
  loss the schedulers and workers those commits describe are gone too, and the gateway reconciles).
* Readers (the platform service's meter) see a consistent snapshot per statement and never block the gateway.
* Only SQLite URLs are touched; any other database is left as configured.
"""

from __future__ import annotations

from sqlalchemy import Engine, event


def _wal_normal(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def use_write_ahead_log(engine: Engine) -> bool:
    """Switch a SQLite ``engine`` (and every connection it opens from now on) to WAL; False for other databases."""
    if engine.dialect.name != "sqlite":
        return False
    event.listen(engine, "connect", _wal_normal)
    # Connections already pooled were opened without the pragmas: drop them, new ones get them.
    engine.dispose()
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    return str(mode).lower() == "wal"
