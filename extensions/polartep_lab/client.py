"""The extension's only way to the platform service: allow-listed routes, called with the user's own token.

Rules this module guarantees:

* ``SERVICE_ROUTES`` is the allow-list: a route name maps to one method and one path template under the service's
  URL. ``ServiceClient.call`` refuses any other name (``KeyError``), so no request path, query or body from the
  browser ever becomes a service URL. The placeholder ``{user}`` is the server owner's name (``JUPYTERHUB_USER``),
  URL-quoted; it is not taken from the request. Every other placeholder comes from a request (``{project}``,
  ``{dataset}``, ``{grantee}``, ``{processor}``, ``{run}``, ``{dashboard}``, ``{name}``) and is filled only with a value that fully matches the
  service's own rule for it (``PARAMETER_PATTERNS``: no ``/``, ``%``, ``?`` or ``..`` can pass), else
  ``ValueError`` before anything is sent: a request can pick which dataset or run, never which route. ``{query}``
  (the optional ``version``) is built here with ``urlencode`` from a checked value.
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
from urllib.parse import quote, urlencode

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
    # The datasets panel: what the user may see, their projects and the storage classes; and what members and
    # owners do (the service decides who may).
    "datasets": ServiceRoute("GET", "api/v1/datasets"),
    "projects": ServiceRoute("GET", "api/v1/projects"),
    "catalogue": ServiceRoute("GET", "api/v1/catalogue"),
    "dataset": ServiceRoute("GET", "api/v1/datasets/{project}/{dataset}"),
    "dataset_create": ServiceRoute("POST", "api/v1/datasets"),
    "dataset_delete": ServiceRoute("DELETE", "api/v1/datasets/{project}/{dataset}"),
    "dataset_grant": ServiceRoute("PUT", "api/v1/datasets/{project}/{dataset}/grants/{grantee}"),
    "dataset_revoke": ServiceRoute("DELETE", "api/v1/datasets/{project}/{dataset}/grants/{grantee}"),
    # The run form: the processors the user may see, one's form, starting a run, and following the user's own run.
    "processor_list": ServiceRoute("GET", "api/v1/processors"),
    "processor_form": ServiceRoute("GET", "api/v1/processors/{processor}/form{query}"),
    "processor_run_start": ServiceRoute("POST", "api/v1/processors/{processor}/runs"),
    "run": ServiceRoute("GET", "api/v1/runs/{run}"),
    "run_log": ServiceRoute("GET", "api/v1/runs/{run}/log"),
    # The form's version selector, and its Cancel button (the service's own cancel: it stops the kernel).
    "processor_versions": ServiceRoute("GET", "api/v1/processors/{processor}/versions"),
    "run_cancel": ServiceRoute("POST", "api/v1/runs/{run}/cancel"),
    # "Publish as dashboard" and the owner's sharing controls (the service lets only the owner share).
    "dashboard_publish": ServiceRoute("POST", "api/v1/dashboards"),
    "dashboard_shares": ServiceRoute("GET", "api/v1/dashboards/{dashboard}/shares"),
    "dashboard_share": ServiceRoute("POST", "api/v1/dashboards/{dashboard}/shares"),
    "dashboard_revoke_user": ServiceRoute("DELETE", "api/v1/dashboards/{dashboard}/shares/users/{name}"),
    "dashboard_revoke_group": ServiceRoute("DELETE", "api/v1/dashboards/{dashboard}/shares/groups/{name}"),
    "dashboard_share_code": ServiceRoute("POST", "api/v1/dashboards/{dashboard}/share-code"),
}

# What a placeholder taken from a request may be: the service's own rules (projects/store.py PROJECT_NAME_PATTERN,
# data/store.py DATASET_NAME_PATTERN, the processor, run and dashboard id rules, JupyterHub's user and group names), restated because the extension does not
# import the hub; the service checks them again. None of them lets a value change a URL's path or query.
PARAMETER_PATTERNS: dict[str, re.Pattern[str]] = {
    "project": re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"),
    "grantee": re.compile(r"[a-z0-9][a-z0-9._-]{0,63}"),
    "dataset": re.compile(r"[a-z0-9][a-z0-9_-]{0,63}"),
    "processor": re.compile(r"[a-z][a-z0-9-]{1,62}"),
    "run": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "version": re.compile(r"[0-9A-Za-z.+-]{1,64}"),
    "dashboard": re.compile(r"[0-9a-f]{10}"),
    "name": re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,255}"),  # a user or group name, for dashboard shares
}


def checked_parameter(kind: str, value: object) -> str:
    """``value`` if it fully matches the rule of ``kind``; ``ValueError`` naming the rule otherwise."""
    if not isinstance(value, str) or not PARAMETER_PATTERNS[kind].fullmatch(value):
        raise ValueError(f"{kind} must match {PARAMETER_PATTERNS[kind].pattern}")
    return value


class ServiceError(Exception):
    """The service could not answer a route; ``status`` is its HTTP status, or None when it was not reached."""

    def __init__(
        self, route: str, status: int | None, detail: str, problems: dict[str, str] | None = None
    ) -> None:
        self.route = route
        self.status = status
        self.detail = detail
        self.problems = problems  # a run's invalid inputs: name -> what is wrong (the service's 400)
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

    def url_for(self, name: str, params: dict[str, str] | None = None) -> str:
        """The service URL of allow-listed route ``name``; ``KeyError`` for anything else, ``ValueError`` for a
        parameter that breaks its rule (or is missing or unexpected). ``version`` is the optional ``{query}``."""
        route = SERVICE_ROUTES[name]
        params = dict(params or {})
        query = ""
        if "{query}" in route.path:
            version = params.pop("version", None)
            if version is not None:
                query = "?" + urlencode({"version": checked_parameter("version", version)})
        wanted = set(re.findall(r"{(\w+)}", route.path)) - {"user", "query"}
        if set(params) != wanted:
            raise ValueError(f"route {name} takes {sorted(wanted)}, got {sorted(params)}")
        checked = {key: quote(checked_parameter(key, value), safe="") for key, value in params.items()}
        values = {"user": quote(self.user, safe=""), **checked}
        if "{query}" in route.path:
            values["query"] = query
        return self.service_url + route.path.format(**values)

    async def call(
        self,
        name: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        *,
        text: bool = False,
    ) -> Any:
        """The JSON answer of allow-listed route ``name`` (``body``: the JSON body of a POST; ``params``: the
        route's placeholders; ``text``: the answer is text, returned as ``str``); ``ServiceError`` when there is
        none. An empty answer (204) is ``{}``."""
        route = SERVICE_ROUTES[name]
        url = self.url_for(name, params)
        headers = {"Authorization": f"token {self._token}", "Accept": "application/json"}
        if route.method == "POST":
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url,
            method=route.method,
            body=json.dumps(body if body is not None else {}) if route.method == "POST" else None,
            allow_nonstandard_methods=route.method in ("PUT", "DELETE"),
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
            body = e.response.body if e.response else b""
            raise ServiceError(route.path, e.code, _detail(body), _problems(body)) from None
        except (
            OSError
        ) as e:  # refused, unreachable, DNS, timeout (tornado raises these as OSError subclasses)
            raise ServiceError(route.path, None, str(e) or type(e).__name__) from None
        if text:
            return response.body.decode("utf-8", "replace")
        if response.code == 204 or not response.body:
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


def _problems(body: bytes) -> dict[str, str] | None:
    """The service's ``problems`` (each invalid input and what is wrong), when its error body has them."""
    try:
        problems = json.loads(body).get("problems")
    except (ValueError, AttributeError):
        return None
    if not isinstance(problems, dict):
        return None
    return {str(name)[:128]: str(message)[:500] for name, message in problems.items()}
