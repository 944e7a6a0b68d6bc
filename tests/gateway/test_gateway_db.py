"""The gateway's SQLite database runs in write-ahead-log mode with ``synchronous=NORMAL``; other databases are
left alone."""

from __future__ import annotations

from sqlalchemy import create_engine

from polartep_hub.gateway.gateway_db import use_write_ahead_log


def test_a_sqlite_gateway_database_switches_to_the_write_ahead_log(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}")
    with engine.connect() as connection:  # a connection pooled before the switch
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.commit()
    try:
        assert use_write_ahead_log(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_other_databases_are_left_as_configured():
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    assert use_write_ahead_log(engine) is False
