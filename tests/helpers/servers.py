"""Shared by several test modules (moved from ``tests/hub/test_spawn_profiles.py``)."""

from __future__ import annotations

from pathlib import Path


def server_state(platform, user: str, server: str = "") -> dict:
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    return r.json()["servers"][server]["state"]


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def put_file(platform, user: str, token: str, path: str, content: str, server: str = "") -> None:
    """Write a text file into the user's (named) server through the Jupyter contents API."""
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    r = platform.api(
        "PUT",
        f"{prefix}api/contents/{path}",
        token,
        json={"type": "file", "format": "text", "content": content},
    )
    assert r.status_code in (200, 201), r.text
