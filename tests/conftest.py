"""Fixtures shared by the whole suite: a real platform (proxy, hub, platform service) on free loopback ports."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from .harness import RunningPlatform
from .postgres_server import INSTALL_HINT, PostgresServer, find_bin_dir

# Browser fixtures (headless Chromium through Selenium) and the failure-screenshot hook.
pytest_plugins = ["tests.helpers.browser"]

_names = itertools.count(1)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform for the session; tests use their own users so they do not interfere."""
    with RunningPlatform(tmp_path_factory.mktemp("platform")).running() as running:
        yield running


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
