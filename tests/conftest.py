"""Fixtures shared by the whole suite: a real platform (proxy, hub, platform service) on free loopback ports."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from polartep_hub.proxy_process import start_proxy

from .harness import RunningPlatform
from .mail_server import SMTPTestServer
from .postgres_server import INSTALL_HINT, PostgresServer, find_bin_dir

# Browser fixtures (headless Chromium through Selenium) and the failure-screenshot hook.
pytest_plugins = ["tests.helpers.browser"]

_names = itertools.count(1)


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
    env = {**mail_server.platform_env(), "POLARTEP_PASSWORD_RESET_PER_HOUR": "1000"}
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
