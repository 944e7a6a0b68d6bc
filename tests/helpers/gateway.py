"""Shared by several test modules (moved from ``tests/gateway/test_gateway_clusters.py``)."""

from __future__ import annotations

from pathlib import Path


def gateway_api(platform, method: str, path: str, token: str, **kwargs):
    """A request to the gateway's REST API through the hub's proxy (its auth header says ``jupyterhub``)."""
    headers = {"Authorization": f"jupyterhub {token}"}
    return platform.api(method, "/services/dask-gateway/api/v1/" + path, headers=headers, **kwargs)


def gateway_pid(platform) -> int | None:
    config = str(platform.settings.state_path / "dask_gateway_config.py")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if config in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    return None
