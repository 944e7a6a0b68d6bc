"""Fixtures for the platform service's tests.

Switch-on fixtures:

* ``database_url``: an empty database at the newest schema, once on SQLite (a fresh file copied from a migrated
  template) and once on PostgreSQL (one database for the session, its tables emptied before each test; the case is
  marked ``postgres``); ``empty_database_url`` is a brand-new database without any schema (for migration tests).
* ``app`` / ``api``: the service assembled by ``create_app`` on that database, with ``FakeIdentityProvider`` as the
  hub (``fake_hub``) and cheap argon2 parameters; ``api`` checks security headers on every response.
* ``postgres_server``: one PostgreSQL server for the whole session (``postgres_server.PostgresServer``). Without the
  server binaries the tests that need it fail with a message saying how to install them, unless
  ``POLARTEP_SKIP_POSTGRES=1`` (ignored when ``CI`` is set), which skips them.
"""

from __future__ import annotations

import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import inspect, text
from sqlalchemy.pool import NullPool

from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import Catalogue, load_catalogue
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import make_engine, upgrade_to_head
from polartep_hub.service.orm import Base
from tests.helpers.service_fakes import PREFIX, ApiClient, FakeHubAPI, FakeIdentityProvider
from tests.postgres_server import PostgresServer

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its test client; httpx (a declared dependency) works the same.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DATABASE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """The URL of one PostgreSQL database at the newest schema, shared by the session's tests (reset before each)."""
    url = postgres_server.create_database("platform_tests")
    upgrade_to_head(url)
    return url


def reset_database(url: str) -> None:
    """Empty every table (fast); rebuild the schema only if a test broke it (e.g. dropped a table)."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        tables = [table.name for table in Base.metadata.sorted_tables]
        with engine.begin() as connection:
            if set(tables) <= set(inspect(connection).get_table_names()):
                connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                return
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        upgrade_to_head(url)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "platform.sqlite"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database at the newest schema. Modules whose tests do not depend on the database kind
    override ``database_url`` with this one."""
    path = tmp_path / "platform.sqlite"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database at the newest schema, once on each kind."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_database_url")
        return
    # One database for the session, emptied before each test: creating a database per test costs ~0.2 s each.
    url = request.getfixturevalue("postgres_database")
    reset_database(url)
    yield url


@pytest.fixture(params=DATABASE_KINDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"empty_{uuid.uuid4().hex[:12]}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(scope="session")
def fast_passwords() -> Passwords:
    """argon2id with the cheapest parameters: the same code paths, a millisecond per hash."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def fake_hub() -> FakeIdentityProvider:
    return FakeIdentityProvider()


@pytest.fixture
def service_config(database_url: str, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        prefix=PREFIX, database_url=database_url, default_plan="trial", datasets_dir=str(tmp_path / "data")
    )


@pytest.fixture
def app(
    service_config: ServiceConfig,
    catalogue: Catalogue,
    fake_hub: FakeIdentityProvider,
    fast_passwords: Passwords,
) -> Iterator[FastAPI]:
    app = create_app(service_config, catalogue, identity_provider=fake_hub, passwords=fast_passwords)
    yield app
    app.state.context.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions=False: see the 500 responses clients would see, instead of the exception.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api(client: TestClient) -> ApiClient:
    return ApiClient(client)


@pytest.fixture(scope="session")
def hub_url() -> Iterator[str]:
    """Base URL of a fake JupyterHub REST API (``fakes.FakeHubAPI``) on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
