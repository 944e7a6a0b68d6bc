"""The hub's client for the platform service: entitlements, password checks, consents, OIDC logins and project
groups, over HTTP with a scoped token.

The hub never reads the platform database directly (the service owns platform state). Every call carries the token of
the internal JupyterHub service ``polartep-hub``, whose role holds the custom scope ``custom:polartep:hub``. Failures
become ``tornado.web.HTTPError`` with a message a user can act on: 503 when the service cannot be reached.

Calls never block the hub's event loop and never queue behind the hub's own HTTP traffic: they go through an
``AsyncHTTPClient`` of their own (``force_instance``, up to ``MAX_CONCURRENT`` requests at once), not tornado's
shared default client, which allows 10 requests in flight per event loop for everything the hub does (its proxy API
calls, its readiness checks of new servers). With the shared client, 10 users spawning at once filled those 10
places with entitlement and consent look-ups and readiness polls, and everything else waited in its queue
(``bench/spawn.py --users 10``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.web import HTTPError

SERVICE_NAME = "platform"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
HUB_CLIENT_SERVICE_NAME = "polartep-hub"
HUB_SCOPE = "custom:polartep:hub"


@dataclass(frozen=True)
class Entitlements:
    """What a user may start: their plan, active subscriptions and the profile names they allow, in catalogue order."""

    name: str
    plan: str
    profiles: tuple[str, ...]
    subscriptions: tuple[str, ...] = ()
    plan_ends_at: str | None = None  # ISO 8601, for plans with a duration (Trial)
    plan_expired: bool = False
    message: str | None = None  # why nothing (or less) is allowed, for the user


@dataclass(frozen=True)
class ConsentStatus:
    """Which current legal documents a user has still to accept, and where a browser accepts them."""

    missing: tuple[str, ...]  # e.g. "Terms and conditions (version 2026-11-01)"
    consent_url: str  # the service's consent page, without ``next``


class IdentityRefused(HTTPError):
    """The platform service refused to bind an identity-provider login to an account (a 403 for the user)."""


# The refusals whose message the user should see (the service names them in ``reason``); any other refusal stays
# the generic "invalid username or password".
LOGIN_REFUSAL_REASONS = ("pending_approval", "throttled", "busy", "password_reset", "being_erased")


class LoginRefused(Exception):
    """The platform service refused a login for a reason the user should read (awaiting approval, too many attempts
    from the client's address, too many password checks at once)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MAX_CONCURRENT = 100


class PlatformClient:
    """Async calls from the hub process to the platform service's ``/api/v1``."""

    # One client of our own per event loop, shared by every PlatformClient (spawners, the authenticator).
    _http_clients: ClassVar[dict[int, AsyncHTTPClient]] = {}

    def __init__(self, service_url: str, token: str, request_timeout: float = 10.0) -> None:
        self.api_url = service_url.rstrip("/") + SERVICE_PREFIX + "api/v1/"
        self._token = token
        self._timeout = request_timeout

    @classmethod
    def http_client(cls) -> AsyncHTTPClient:
        """The platform calls' own HTTP client for the running event loop (not tornado's shared default)."""
        loop = asyncio.get_running_loop()
        client = cls._http_clients.get(id(loop))
        if client is None:
            client = AsyncHTTPClient(force_instance=True, max_clients=MAX_CONCURRENT)
            cls._http_clients[id(loop)] = client
        return client

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = HTTPRequest(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {self._token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=self._timeout,
        )
        try:
            response = await self.http_client().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise HTTPError(503, "The platform service is not reachable; try again in a minute.") from e
        if response.code == 599:
            raise HTTPError(503, "The platform service is not reachable; try again in a minute.")
        try:
            payload = json.loads(response.body or b"null")
        except ValueError:
            payload = None
        return response.code, payload

    async def entitlements(self, username: str, admin: bool = False) -> Entitlements:
        """The plan and allowed profiles of ``username`` (admins may use every profile)."""
        code, payload = await self._request(
            "GET", f"users/{quote(username, safe='')}/entitlements?admin={'true' if admin else 'false'}"
        )
        if code != 200 or not isinstance(payload, dict):
            detail = payload.get("detail") if isinstance(payload, dict) else None
            raise HTTPError(503, f"Could not look up the plan of {username}: {detail or f'HTTP {code}'}")
        return Entitlements(
            name=payload["name"],
            plan=payload["plan"],
            profiles=tuple(payload["profiles"]),
            subscriptions=tuple(payload.get("subscriptions") or ()),
            plan_ends_at=payload.get("plan_ends_at"),
            plan_expired=bool(payload.get("plan_expired")),
            message=payload.get("message"),
        )

    async def verify_password(
        self, username: str, password: str, client_address: str | None = None
    ) -> dict[str, Any] | None:
        """The account (``{"name", "admin"}``) when the password is right, ``None`` otherwise.

        ``client_address`` is the browser's address as the hub saw it (the service throttles failures per address).
        ``LoginRefused`` (with the service's message) for an account that awaits approval (the password was right),
        a client address throttled after too many failed logins, or a service busy checking other passwords.
        """
        body = {"username": username, "password": password}
        if client_address:
            body["client_address"] = client_address[:64]
        code, payload = await self._request("POST", "auth/password", body)
        if code == 200 and isinstance(payload, dict):
            return payload
        if isinstance(payload, dict) and payload.get("reason") in LOGIN_REFUSAL_REASONS:
            raise LoginRefused(code, str(payload.get("detail", ""))[:300] or "login refused")
        if code in (400, 401, 403, 422):
            return None
        raise HTTPError(503, f"The platform service could not check the password (HTTP {code}).")

    async def consents(self, username: str) -> ConsentStatus:
        """Which current legal documents ``username`` has still to accept (empty ``missing``: may spawn)."""
        code, payload = await self._request("GET", f"users/{quote(username, safe='')}/consents")
        if code != 200 or not isinstance(payload, dict):
            detail = payload.get("detail") if isinstance(payload, dict) else None
            raise HTTPError(
                503, f"Could not look up the accepted terms of {username}: {detail or f'HTTP {code}'}"
            )
        missing = tuple(f"{d['title']} (version {d['version']})" for d in payload.get("missing", ()))
        return ConsentStatus(missing=missing, consent_url=str(payload["consent_url"]))

    async def oidc_login(self, account: dict[str, Any]) -> dict[str, Any]:
        """Create or update the account of an identity-provider login (``POST auth/oidc``, hub only).

        ``IdentityRefused`` (a 403 with the service's reason) when the login would merge two identities or the
        name is invalid.
        """
        code, payload = await self._request("POST", "auth/oidc", account)
        if code == 200 and isinstance(payload, dict):
            return payload
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if code in (400, 409, 422):
            raise IdentityRefused(403, f"Login refused: {detail or f'HTTP {code}'}")
        raise HTTPError(503, f"The platform service could not record the login (HTTP {code}).")

    async def admit_server(
        self, username: str, server: str, profile: str, admin: bool = False
    ) -> dict[str, Any]:
        """The quota decision for a spawn (``POST users/{name}/server-admissions``): the admission, or
        ``HTTPError(403)`` with the service's message (what is exhausted, by how much, when it renews)."""
        code, payload = await self._request(
            "POST",
            f"users/{quote(username, safe='')}/server-admissions",
            {"server": server, "profile": profile, "admin": admin},
        )
        if code == 201 and isinstance(payload, dict):
            return payload
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if code == 403 and detail:
            raise HTTPError(403, str(detail)[:600])
        raise HTTPError(503, f"Could not check the quota of {username}: {detail or f'HTTP {code}'}")

    async def usage_summary(self, username: str) -> dict[str, Any]:
        """This month's standing of ``username`` (``GET users/{name}/usage`` without the interval list):
        allowance, used, left, renewal, top-ups, CPU-hours per day and notices; ``HTTPError(503)`` otherwise."""
        code, payload = await self._request(
            "GET", f"users/{quote(username, safe='')}/usage?with_intervals=false"
        )
        if code == 200 and isinstance(payload, dict):
            return payload
        detail = payload.get("detail") if isinstance(payload, dict) else None
        raise HTTPError(503, f"Could not read the usage of {username}: {detail or f'HTTP {code}'}")

    async def report_server_stop(
        self,
        username: str,
        server: str,
        *,
        profile: str | None,
        started_at: str | None,
        stopped_at: str | None,
        crashed: bool,
    ) -> None:
        """Tell the service's server meter that a server stopped (``POST users/{name}/server-stops``)."""
        code, payload = await self._request(
            "POST",
            f"users/{quote(username, safe='')}/server-stops",
            {
                "server": server,
                "profile": profile,
                "started_at": started_at,
                "stopped_at": stopped_at,
                "crashed": crashed,
            },
        )
        if code != 204:
            detail = payload.get("detail") if isinstance(payload, dict) else None
            raise HTTPError(
                503, f"Could not report the stop of a server of {username}: {detail or f'HTTP {code}'}"
            )

    async def project_groups(self, username: str) -> list[str]:
        """The JupyterHub group names of the projects ``username`` belongs to (the platform service owns them)."""
        code, payload = await self._request("GET", f"users/{quote(username, safe='')}/projects")
        if code == 404:
            # A platform without the projects route, or no such account yet: no project groups.
            return []
        if code != 200 or not isinstance(payload, dict) or not isinstance(payload.get("projects"), list):
            raise HTTPError(503, f"Could not look up the projects of {username} (HTTP {code}).")
        return [str(name) for name in payload["projects"]]

    async def dataset_mounts(self, username: str) -> dict[str, Any]:
        """The datasets ``username``'s next server may use (``mounts``: folder, ``rw``/``ro``, group) and the
        storage ``roots``: ``data/api.py``."""
        code, payload = await self._request("GET", f"users/{quote(username, safe='')}/dataset-mounts")
        if code != 200 or not isinstance(payload, dict) or not isinstance(payload.get("mounts"), list):
            raise HTTPError(503, f"Could not look up the datasets of {username} (HTTP {code}).")
        return payload

    async def dashboard_launch(self, username: str, dashboard_id: str) -> dict[str, Any]:
        """What the spawner needs to start ``username``'s dashboard server (``dashboards/api.py``, ``launch``):
        ``{"id", "owner", "version", "profile", "title"}``; ``HTTPError(400)`` when it is not theirs."""
        code, payload = await self._request(
            "GET", f"users/{quote(username, safe='')}/dashboards/{quote(dashboard_id, safe='')}/launch"
        )
        if code == 200 and isinstance(payload, dict):
            return payload
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if code == 404:
            raise HTTPError(400, f"{username} has no dashboard {dashboard_id!r}: publish it first")
        raise HTTPError(503, f"Could not look up the dashboard {dashboard_id!r}: {detail or f'HTTP {code}'}")
