"""Shared by several test modules (moved from ``tests/hub/test_spawn_profiles.py``)."""

from __future__ import annotations

from pathlib import Path


def server_state(platform, user: str, server: str = "") -> dict:
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    return r.json()["servers"][server]["state"]


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)
