"""The platform service's client for JupyterHub's REST API (groups, users, servers), with the service's own token.

Rules this module guarantees:

* Only this module talks to ``/hub/api`` on the service's behalf; the token is the one JupyterHub gave the managed
  service (``JUPYTERHUB_API_TOKEN``), whose role (``hub_config.py``, ``platform-service``) holds exactly the scopes
  these methods need.
* Calls are synchronous (routes that use them are plain ``def``, run in FastAPI's thread pool) and bounded by a
  timeout; any failure is ``HubApiError`` with the status and JupyterHub's message, never the token.
* Every method is idempotent: creating what exists, adding a member twice, removing what is gone, or deleting a
  deleted user succeeds, so an interrupted multi-step change can simply be run again.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx


class HubApiError(RuntimeError):
    """JupyterHub refused or did not answer; ``status`` is its HTTP status (0 when it did not answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class HubAPI:
    """A small JupyterHub REST client: ``HubAPI("http://127.0.0.1:8081/hub/api", token)``."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"token {token}"})

    def close(self) -> None:
        self._client.close()

    def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        ok: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self._client.request(method, f"{self.api_url}{path}", json=json, headers=headers)
        except httpx.HTTPError as error:
            raise HubApiError(f"JupyterHub did not answer {method} {path}: {type(error).__name__}") from None
        if response.status_code in ok:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text[:200]
            raise HubApiError(
                f"JupyterHub refused {method} {path}: {response.status_code} {message}", response.status_code
            )
        return response.json() if response.content else None

    # --- groups --------------------------------------------------------------------------------------------------

    def group(self, name: str) -> dict[str, Any] | None:
        """The group model (with ``users``), or None if there is no such group."""
        try:
            return self._request("GET", f"/groups/{quote(name, safe='')}")
        except HubApiError as error:
            if error.status == 404:
                return None
            raise

    def create_group(self, name: str) -> bool:
        """Create the group: True if this call created it, False if it existed already (409; not ours)."""
        try:
            self._request("POST", f"/groups/{quote(name, safe='')}", {})
        except HubApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def groups(self) -> list[dict[str, Any]]:
        """Every group model (with ``users`` and ``properties``), all pages."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._request(
                "GET",
                f"/groups?offset={offset}&limit=200",
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            found.extend(page["items"])
            following = (page.get("_pagination") or {}).get("next")
            if not following or not page["items"]:
                return found
            offset = following["offset"]

    def set_group_properties(self, name: str, properties: dict[str, Any]) -> None:
        """Replace the group's properties (JupyterHub keeps them as free-form JSON)."""
        self._request("PUT", f"/groups/{quote(name, safe='')}/properties", properties)

    def delete_group(self, name: str) -> None:
        self._request("DELETE", f"/groups/{quote(name, safe='')}", ok=(404,))

    def add_group_members(self, name: str, users: list[str]) -> None:
        if users:
            self._request("POST", f"/groups/{quote(name, safe='')}/users", {"users": users})

    def remove_group_members(self, name: str, users: list[str]) -> None:
        if users:
            self._request("DELETE", f"/groups/{quote(name, safe='')}/users", {"users": users}, ok=(404,))

    # --- users and servers ---------------------------------------------------------------------------------------

    def user(self, name: str) -> dict[str, Any] | None:
        """The user model (with ``servers``), or None if JupyterHub has no such user."""
        try:
            return self._request("GET", f"/users/{quote(name, safe='')}")
        except HubApiError as error:
            if error.status == 404:
                return None
            raise

    def stop_servers(self, name: str, *, within: float = 120.0) -> None:
        """Stop every server of the user (default and named) and wait until none is left; idempotent.

        JupyterHub's ``DELETE /users/{name}`` stops only the default server and refuses a user whose named servers
        still run, so erasure stops them all here first. ``HubApiError`` when they are still there after ``within``.
        """
        deadline = time.monotonic() + within
        asked_at: dict[str, float] = {}
        while True:
            model = self.user(name)
            servers = (model or {}).get("servers") or {}
            if not servers:
                return
            now = time.monotonic()
            for server in servers:
                # Ask again every few seconds: a server still starting refuses the stop (400) until it is up.
                if now - asked_at.get(server, -60.0) >= 5.0:
                    path = f"/users/{quote(name, safe='')}/servers/{quote(server, safe='')}"
                    self._request("DELETE", path, ok=(400, 404))
                    asked_at[server] = now
            if now > deadline:
                raise HubApiError(f"the servers of the user did not stop within {within:.0f} s")
            time.sleep(0.5)

    def active_servers(self) -> list[dict[str, Any]]:
        """Every server that runs or is starting, of every user, as ``{"user", "name", "started", "profile",
        "pending"}`` (all pages of ``GET /users?state=active``).

        ``started`` is JupyterHub's start time of the server (ISO 8601; set when the spawn begins, before the quota
        decision); ``profile`` the catalogue profile from the spawner's state (``admin:server_state``, part of
        ``admin:servers``), None until the spawner has saved it.
        """
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._request(
                "GET",
                f"/users?state=active&offset={offset}&limit=200",
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            for user in page["items"]:
                for name, server in (user.get("servers") or {}).items():
                    # From the spawner's state only, which holds the profile once the quota admitted it; the user's
                    # options name what was *asked* for, also by spawns the quota then refuses.
                    profile = (server.get("state") or {}).get("profile")
                    found.append(
                        {
                            "user": user["name"],
                            "name": name,
                            "started": server.get("started"),
                            "profile": profile if isinstance(profile, str) else None,
                            "pending": server.get("pending"),
                        }
                    )
            following = (page.get("_pagination") or {}).get("next")
            if not following or not page["items"]:
                return found
            offset = following["offset"]

    def ensure_user(self, name: str) -> None:
        """Create the hub user unless it exists (JupyterHub only puts users it knows into groups)."""
        self._request("POST", f"/users/{quote(name, safe='')}", ok=(409,))

    def delete_user(self, name: str) -> None:
        """Delete the user: JupyterHub stops their servers and calls each spawner's ``delete_forever`` first."""
        self._request("DELETE", f"/users/{quote(name, safe='')}", ok=(404,))

    def end_sessions(self, name: str) -> None:
        """End every login session of the user: JupyterHub rotates its login-cookie id and deletes all its API and
        OAuth tokens (``POST /hub/api/polartep/users/{name}/end-sessions``, served by the platform's authenticator).
        A user JupyterHub does not know has no sessions: that is success."""
        self._request("POST", f"/polartep/users/{quote(name, safe='')}/end-sessions", {}, ok=(404,))

    def request_stop_servers(self, name: str) -> None:
        """Ask JupyterHub to stop every server of the user, without waiting for them to be gone."""
        model = self.user(name)
        for server in (model or {}).get("servers") or {}:
            path = f"/users/{quote(name, safe='')}/servers/{quote(server, safe='')}"
            self._request("DELETE", path, ok=(400, 404))

    # --- tokens --------------------------------------------------------------------------------------------------

    def create_token(self, name: str, *, scopes: list[str], expires_in: int, note: str) -> tuple[str, str]:
        """A new API token of user ``name`` with exactly ``scopes``, expiring after ``expires_in`` seconds: ``(id,
        token)``. The caller keeps the token in memory only and the id to revoke it."""
        model = self._request(
            "POST",
            f"/users/{quote(name, safe='')}/tokens",
            {"scopes": scopes, "expires_in": expires_in, "note": note},
        )
        return model["id"], model["token"]

    def revoke_token(self, name: str, token_id: str) -> None:
        """Revoke the token ``token_id`` of user ``name``; revoking a revoked or expired token succeeds."""
        self._request("DELETE", f"/users/{quote(name, safe='')}/tokens/{quote(token_id, safe='')}", ok=(404,))

    # --- shares of a server (dashboards/api.py) ------------------------------------------------------------------

    def _server_path(self, owner: str, server: str) -> str:
        return f"{quote(owner, safe='')}/{quote(server, safe='')}"

    def shares(self, owner: str, server: str) -> list[dict[str, Any]]:
        """Every share of the server (``{"user": {"name"}|None, "group": {"name"}|None, "scopes", ...}``); [] when
        JupyterHub has no such server yet."""
        try:
            page = self._request(
                "GET",
                f"/shares/{self._server_path(owner, server)}?limit=200",
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
        except HubApiError as error:
            if error.status == 404:
                return []
            raise
        return page["items"] if isinstance(page, dict) else page

    def grant_share(
        self, owner: str, server: str, *, user: str | None = None, group: str | None = None, scopes: list[str]
    ) -> dict[str, Any]:
        """Share the server with one user or one group, with exactly ``scopes`` (idempotent: granting again keeps
        one share)."""
        body: dict[str, Any] = {"scopes": scopes, **({"user": user} if user else {"group": group})}
        return self._request("POST", f"/shares/{self._server_path(owner, server)}", body)

    def revoke_share(
        self, owner: str, server: str, *, user: str | None = None, group: str | None = None
    ) -> None:
        """Remove the share of one user or group entirely (idempotent)."""
        body: dict[str, Any] = {"user": user} if user else {"group": group}
        self._request("PATCH", f"/shares/{self._server_path(owner, server)}", body, ok=(404,))

    def revoke_all_shares(self, owner: str, server: str) -> None:
        """Remove every share and every share code of the server (idempotent)."""
        path = self._server_path(owner, server)
        self._request("DELETE", f"/shares/{path}", ok=(404,))
        self._request("DELETE", f"/share-codes/{path}", ok=(404,))

    def create_share_code(
        self, owner: str, server: str, *, scopes: list[str], expires_in: int
    ) -> dict[str, Any]:
        """A share code (``{"code", "accept_url", "expires_at", ...}``): whoever holds a hub account and opens the
        accept URL gets ``scopes`` on the server."""
        return self._request(
            "POST",
            f"/share-codes/{self._server_path(owner, server)}",
            {"scopes": scopes, "expires_in": expires_in},
        )

    def start_server(self, owner: str, server: str, options: dict[str, Any]) -> int:
        """Ask JupyterHub to start the owner's named server; returns its status (201 started, 202 starting, 400
        already running or pending). JupyterHub keeps the server's record from then on, which shares need."""
        path = f"/users/{quote(owner, safe='')}/servers/{quote(server, safe='')}"
        try:
            response = self._client.request("POST", f"{self.api_url}{path}", json=options)
        except httpx.HTTPError as error:
            raise HubApiError(f"JupyterHub did not answer POST {path}: {type(error).__name__}") from None
        if response.status_code in (201, 202, 400):
            return response.status_code
        raise HubApiError(
            f"JupyterHub refused POST {path}: {response.status_code} {response.text[:200]}",
            response.status_code,
        )

    def remove_server(self, owner: str, server: str) -> None:
        """Stop the named server and delete JupyterHub's record of it (and with it its shares); idempotent."""
        self._request(
            "DELETE",
            f"/users/{quote(owner, safe='')}/servers/{quote(server, safe='')}",
            {"remove": True},
            ok=(404,),
        )

    def shared_with(self, name: str) -> list[dict[str, Any]]:
        """Every server shared with the user directly or through one of their groups (``{"user", "name"}`` of each
        server's owner and name), as JupyterHub records it now."""
        found: list[dict[str, Any]] = []
        model = self.user(name)
        if model is None:
            return found
        paths = [f"/users/{quote(name, safe='')}/shared"] + [
            f"/groups/{quote(group, safe='')}/shared" for group in model.get("groups") or []
        ]
        for path in paths:
            page = self._request(
                "GET", f"{path}?limit=200", headers={"Accept": "application/jupyterhub-pagination+json"}
            )
            for share in page["items"] if isinstance(page, dict) else page:
                server = share.get("server") or {}
                owner = (server.get("user") or {}).get("name")
                if owner:
                    found.append({"user": owner, "name": server.get("name", "")})
        return found
