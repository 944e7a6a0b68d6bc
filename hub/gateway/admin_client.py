"""The platform service's client for the Dask Gateway's platform routes (``gateway/admin_api.py``): stop every
cluster of one user and wait until they are gone, for erasure (or only ask, for quota enforcement).

Rules this module guarantees:

* The service's own JupyterHub token (``JUPYTERHUB_API_TOKEN``) is sent; the gateway accepts it because the
  service's role holds ``custom:polartep:gateway-admin``. Calls are synchronous (erasure runs in FastAPI's thread
  pool or in a thread of its reconciliation loop) and bounded by a timeout.
* ``stop_clusters`` returns only once the gateway lists no cluster of the user that is not gone (their processes or
  containers removed), and raises ``GatewayAdminError`` otherwise: the gateway did not answer (``status`` 0 or its
  HTTP status) or the clusters were still there after ``within`` seconds (``remaining`` names them).
"""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx


class GatewayAdminError(RuntimeError):
    """The gateway did not stop the user's clusters (yet); ``remaining`` lists those still there."""

    def __init__(self, message: str, status: int = 0, remaining: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.remaining = remaining or []


class GatewayAdmin:
    """``GatewayAdmin("http://127.0.0.1:8092", token)``: the gateway's private API with the service's token."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 15.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"token {token}"})

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, name: str, what: str = "clusters", body: dict | None = None) -> list[dict]:
        url = f"{self.api_url}/api/v1/platform/users/{quote(name, safe='')}/{what}"
        try:
            response = self._client.request(method, url, json=body)
        except httpx.HTTPError as error:
            raise GatewayAdminError(f"the Dask Gateway did not answer: {type(error).__name__}") from None
        if response.status_code not in (200, 202):
            raise GatewayAdminError(
                f"the Dask Gateway refused {method} of the user's clusters: {response.status_code} "
                f"{response.reason_phrase}",
                response.status_code,
            )
        return list(response.json().get("clusters") or [])

    def forget(self, name: str, pseudonym: str) -> None:
        """Move the records of the user's stopped clusters to ``pseudonym`` (the gateway forgets the name)."""
        self._call("POST", name, "forget", {"pseudonym": pseudonym})

    def clusters(self, name: str) -> list[dict]:
        """The user's clusters that are not yet gone (``name``, ``status``, ``target``)."""
        return self._call("GET", name)

    def request_stop_clusters(self, name: str) -> list[dict]:
        """Ask the gateway to stop every cluster of the user without waiting (quota enforcement); returns those
        not gone yet."""
        return self._call("DELETE", name)

    def stop_clusters(self, name: str, *, within: float = 90.0, interval: float = 0.5) -> None:
        """Stop every cluster of the user and wait until none is left; idempotent."""
        deadline = time.monotonic() + within
        remaining = self._call("DELETE", name)
        while remaining:
            if time.monotonic() > deadline:
                raise GatewayAdminError(
                    f"{len(remaining)} Dask cluster(s) of the user did not stop within {within:.0f} s",
                    remaining=[c["name"] for c in remaining],
                )
            time.sleep(interval)
            remaining = self.clusters(name)
