"""The extension's only way to the platform service: allow-listed routes, called with the user's own token.

Rules this module guarantees:

* ``SERVICE_ROUTES`` is the allow-list: a route name maps to one method and one path template under the service's
  URL. ``ServiceClient.call`` refuses any other name (``KeyError``), so no request path, query or body from the
  browser ever becomes a service URL. The placeholder ``{user}`` is the server owner's name (``JUPYTERHUB_USER``),
  URL-quoted; it is not taken from the request. The dashboard routes' ``{dashboard}`` (10 hex digits) and ``{name}``
  (a user or group name) come from the extension's URL, matched by its route patterns (``dashboards.py``), checked
  here again against the same patterns and URL-quoted, so they can only ever fill one path segment.
* Every call carries ``Authorization: token <JUPYTERHUB_API_TOKEN>``: the single-user server's own token, which
  JupyterHub issues for the server's owner with the scopes in ``Spawner.server_token_scopes``. The hub's token is
  never in a user server, so the service answers exactly what that user may see, and refuses what they may not.
* A service that cannot be reached, answers an error or answers something that is not JSON raises
  ``ServiceError`` with the route, the status and the service's own ``detail``; the handler shows it as 502.

Rejected alternative: a generic ``/polartep/api/service/<path>`` forwarder. It would make the user's server an open
proxy to the service (and, through a wrong prefix join, possibly beyond); each new panel adds its route here instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


@dataclass(frozen=True)
class ServiceRoute:
    """One service route the extension may call."""

    method: str
    path: str  # relative to the service URL; "{user}" is the server owner's name


# The allow-list. Keep it to what a panel shows (read-only routes of the calling user's own data) and what the user
# does from JupyterLab as themself (publishing a notebook as a processor: the service decides what they may publish).
SERVICE_ROUTES: dict[str, ServiceRoute] = {
    "me": ServiceRoute("GET", "api/v1/me"),
    "entitlements": ServiceRoute("GET", "api/v1/users/{user}/entitlements"),
    "processor_publish": ServiceRoute("POST", "api/v1/processors"),
    "processor_draft": ServiceRoute("POST", "api/v1/processors/draft"),
    "processor_validate": ServiceRoute("POST", "api/v1/processors/validate"),
    # This month's CPU-hours, per day, top-ups and notices (the usage meter and panel section), without intervals.
    "usage": ServiceRoute("GET", "api/v1/users/{user}/usage?with_intervals=false"),
    # "Publish as dashboard" and the owner's sharing controls (the service lets only the owner share).
    "dashboard_publish": ServiceRoute("POST", "api/v1/dashboards"),
    "dashboard_shares": ServiceRoute("GET", "api/v1/dashboards/{dashboard}/shares"),
    "dashboard_share": ServiceRoute("POST", "api/v1/dashboards/{dashboard}/shares"),
    "dashboard_revoke_user": ServiceRoute("DELETE", "api/v1/dashboards/{dashboard}/shares/users/{name}"),
    "dashboard_revoke_group": ServiceRoute("DELETE", "api/v1/dashboards/{dashboard}/shares/groups/{name}"),
    "dashboard_share_code": ServiceRoute("POST", "api/v1/dashboards/{dashboard}/share-code"),
}
# What the dashboard routes' placeholders may hold (one path segment each; the extension's routes match the same).
PLACEHOLDER_PATTERNS = {
    "dashboard": re.compile(r"[0-9a-f]{10}"),
    "name": re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,255}"),
}


class ServiceError(Exception):
    """The service could not answer a route; ``status`` is its HTTP status, or None when it was not reached."""

    def __init__(self, route: str, status: int | None, detail: str) -> None:
        self.route = route
        self.status = status
        self.detail = detail
        where = f"answered {status}" if status is not None else "could not be reached"
        super().__init__(f"the platform service {where} to {route}: {detail}")


class ServiceClient:
    """Calls allow-listed service routes for the server's owner with the server's own token."""

    def __init__(self, service_url: str, token: str, user: str, timeout: float = 10.0) -> None:
        if not service_url.endswith("/"):
            service_url += "/"
        self.service_url = service_url
        self._token = token
        self.user = user
        self.timeout = timeout

    def url_for(self, route_name: str, /, **names: str) -> str:
        """The service URL of allow-listed route ``route_name``; ``KeyError`` for anything else, ``ValueError`` for
        a placeholder value that is not of its pattern."""
        route = SERVICE_ROUTES[route_name]
        for key, value in names.items():
            if not PLACEHOLDER_PATTERNS[key].fullmatch(value):
                raise ValueError(
                    f"{key} {value[:40]!r} is not of the form {PLACEHOLDER_PATTERNS[key].pattern}"
                )
        quoted = {key: quote(value, safe="") for key, value in names.items()}
        return self.service_url + route.path.format(user=quote(self.user, safe=""), **quoted)

    async def call(
        self, route_name: str, body: dict[str, Any] | None = None, /, **names: str
    ) -> dict[str, Any]:
        """The JSON answer of allow-listed route ``route_name`` (``body``: the JSON body of a POST; ``names``: the
        dashboard routes' placeholders); ``ServiceError`` when there is none. A DELETE's empty answer is ``{}``."""
        route = SERVICE_ROUTES[route_name]
        url = self.url_for(route_name, **names)
        headers = {"Authorization": f"token {self._token}", "Accept": "application/json"}
        if route.method == "POST":
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url,
            method=route.method,
            body=json.dumps(body if body is not None else {}) if route.method == "POST" else None,
            headers=headers,
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=True)
        except HTTPClientError as e:
            if e.code == 599:  # tornado's code for a timeout or a connection that closed: no answer at all
                raise ServiceError(route.path, None, e.message or "no answer") from None
            raise ServiceError(route.path, e.code, _detail(e.response.body if e.response else b"")) from None
        except (
            OSError
        ) as e:  # refused, unreachable, DNS, timeout (tornado raises these as OSError subclasses)
            raise ServiceError(route.path, None, str(e) or type(e).__name__) from None
        if route.method == "DELETE" and not response.body:
            return {}
        try:
            body = json.loads(response.body)
        except ValueError:
            raise ServiceError(route.path, response.code, "the answer is not JSON") from None
        if not isinstance(body, dict):
            raise ServiceError(route.path, response.code, "the answer is not a JSON object")
        return body


def _detail(body: bytes) -> str:
    """The service's ``detail`` (FastAPI's error body), or the start of the body."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return body[:200].decode("utf-8", "replace") or "no detail"
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
