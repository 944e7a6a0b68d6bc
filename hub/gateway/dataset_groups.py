"""The datasets a user may use, for that user's Dask schedulers and workers: groups (local), mounts (Docker).

The platform service decides which datasets a user may use (``GET /users/{name}/dataset-mounts``, hub only: the
dataset's folder, ``rw`` or ``ro``, and the gid that opens it; ``data/storage.py``). The local backend adds those
gids to the cluster processes' groups when it starts them, exactly as the spawner does for servers
(``spawners/dataset_mounts.py``), so a worker reads what its user's server reads and nothing more; a revoked grant
is gone for processes started afterwards. The Docker backend bind-mounts the same list into the scheduler and worker
containers (``backends/docker.py``), read-only where only granted, as the spawner does for servers. When the service
cannot be asked, processes start without datasets (the safe side) and the gateway logs why.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)


class DatasetGroupsClient:
    """Asks the platform service (with the hub's token) which dataset gids a user's processes get."""

    def __init__(self, service_api_url: str, token: str, timeout: float = 10.0) -> None:
        self._url = service_api_url.rstrip("/") + "/users/{name}/dataset-mounts"
        self._headers = {"Authorization": f"token {token}"}
        self._timeout = timeout

    async def mounts(self, username: str) -> list[dict]:
        """The datasets ``username`` may use now (the service's ``MountOut`` items); [] when the service cannot say."""
        try:
            async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as client:
                response = await client.get(self._url.format(name=quote(username, safe="")))
        except httpx.HTTPError as error:
            log.warning(
                "no datasets for %s's cluster: the platform service is not reachable (%s)",
                username,
                error,
            )
            return []
        if response.status_code != 200:
            log.warning("no datasets for %s's cluster: HTTP %s", username, response.status_code)
            return []
        return [m for m in response.json().get("mounts", []) if isinstance(m, dict)]

    async def gids(self, username: str) -> list[int]:
        """The gids of the datasets ``username`` may use now; [] when the service cannot say."""
        return sorted({int(m["gid"]) for m in await self.mounts(username) if m.get("gid") is not None})
