"""Fixtures shared by the whole suite: a real platform (proxy, hub, platform service) on free loopback ports."""

from __future__ import annotations

import itertools

import pytest

from .harness import RunningPlatform

_names = itertools.count(1)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    """One running platform for the session; tests use their own users so they do not interfere."""
    running = RunningPlatform(tmp_path_factory.mktemp("platform"))
    try:
        running.start()
    except Exception:
        print(running.log_tail())
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture
def new_user(platform):
    """A factory for fresh users on the session platform: ``new_user(plan=...) -> (name, token)``."""

    def make(plan: str | None = None, password: str | None = None) -> tuple[str, str]:
        name = f"user{next(_names)}"
        return name, platform.create_user(name, plan=plan, password=password)

    return make
