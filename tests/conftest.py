"""Fixtures shared by the whole suite: a real platform (proxy, hub, platform service) on free loopback ports."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from polartep_hub.proxy_process import start_proxy
from tests.harness import RunningPlatform
from tests.helpers.pgstac_peer import PgstacPeer, missing_reason
from tests.mail_server import SMTPTestServer
from tests.postgres_server import INSTALL_HINT, PostgresServer, find_bin_dir

# Browser fixtures (headless Chromium through Selenium) and the failure-screenshot hook; the platform service's app
# over a real database (SQLite and PostgreSQL) with a fake hub, for the service's and the domains' tests.
pytest_plugins = ["tests.helpers.browser", "tests.helpers.service_app"]

_names = itertools.count(1)

# The kind of a test is the real parts it uses: ``-m hub``, ``-m docker``, ``-m postgres`` and ``-m browser`` select
# exactly those (markers set in a module are kept; these are added from the fixtures and the harness the test uses).
_HUB_FIXTURES = {"platform", "mail_platform", "new_user", "docker_platform"}
_POSTGRES_FIXTURES = {"postgres_server", "postgres_database", "pgstac_peer"}


def pytest_collection_modifyitems(items):
    starts_platforms: dict[str, bool] = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        path = str(item.fspath)
        if path not in starts_platforms:
            starts_platforms[path] = "RunningPlatform(" in Path(path).read_text()
        if fixtures & _HUB_FIXTURES or starts_platforms[path]:
            item.add_marker(pytest.mark.hub)
        callspec = getattr(item, "callspec", None)
        if fixtures & _POSTGRES_FIXTURES or (callspec is not None and "postgres" in callspec.id.split("-")):
            item.add_marker(pytest.mark.postgres)
        if "docker_engine" in fixtures:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(autouse=True)
def _process_umask_restored():
    """``configure_hub`` sets the hub's umask (077) in the process that calls it; tests that call it in-process must
    not change the modes of what later tests create."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform for the session; tests use their own users so they do not interfere."""
    with RunningPlatform(tmp_path_factory.mktemp("platform")).running() as running:
        yield running


@pytest.fixture(scope="session")
def mail_server():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts."""
    with SMTPTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def mail_platform(tmp_path_factory, mail_server):
    """A running platform whose outbox delivers to ``mail_server`` (its own, so mail tests share no SMTP settings)."""
    # Enough argon2 slots for the six simultaneous uses of one reset link in tests/security/test_password_reset.py:
    # that race is about the link, and on a loaded machine four slots could refuse two with 503 before it is run.
    env = {
        **mail_server.platform_env(),
        "POLARTEP_PASSWORD_RESET_PER_HOUR": "1000",
        "POLARTEP_LOGIN_MAX_CONCURRENT_HASHES": "8",
    }
    running = RunningPlatform(tmp_path_factory.mktemp("mail-platform"), extra_env=env)
    try:
        running.proxy_process = start_proxy(running.settings, log_path=running.root / "proxy.log")
        # Started like RunningPlatform.start, with more patience: on the shared 2-core machine a start measured
        # 57 s under load, against the harness's 60 s.
        running.start_hub(timeout=180)
        running.admin_token  # noqa: B018
    except Exception:
        print(running.log_tail())
        running.stop()
        raise
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def new_user(platform):
    """A factory for fresh users on the session platform: ``new_user(plan=...) -> (name, token)``; they have
    accepted the current terms unless ``accept_terms=False``."""

    def make(
        plan: str | None = None, password: str | None = None, accept_terms: bool = True
    ) -> tuple[str, str]:
        name = f"user{next(_names)}"
        return name, platform.create_user(name, plan=plan, password=password, accept_terms=accept_terms)

    return make


def _postgres_missing() -> None:
    if os.environ.get("POLARTEP_SKIP_POSTGRES") == "1" and not os.environ.get("CI"):
        pytest.skip(f"POLARTEP_SKIP_POSTGRES=1: {INSTALL_HINT}")
    pytest.fail(INSTALL_HINT, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session, from Debian's binaries, in a temporary folder."""
    if find_bin_dir() is None:
        _postgres_missing()
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pgstac_peer(postgres_server: PostgresServer) -> Iterator[PgstacPeer]:
    """stac-fastapi-pgstac, an independent STAC API, on a database of the session's PostgreSQL (with PostGIS), as a
    federation peer (``tests/helpers/pgstac_peer.py``). Like PostgreSQL, it is required in CI."""
    reason = missing_reason()
    if reason is not None:
        if os.environ.get("POLARTEP_SKIP_PGSTAC") == "1" and not os.environ.get("CI"):
            pytest.skip(f"POLARTEP_SKIP_PGSTAC=1: {reason}")
        pytest.fail(reason, pytrace=False)
    peer = PgstacPeer(postgres_server, database="pgstac_peer").start()
    try:
        yield peer
    finally:
        peer.stop()
