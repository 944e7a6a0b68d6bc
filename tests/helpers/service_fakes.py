"""Named fakes for the platform service's tests.

* ``FakeIdentityProvider`` stands in for JupyterHub at the service's one identity seam
  (``polartep_hub.service.web.identity.IdentityProvider``): it knows a fixed set of tokens, can act as a hub that is
  down, and completes OAuth logins for codes it issued.
* ``FakeHubAPI`` is the hub's REST API for tests of the real provider and the real service process: an HTTP handler
  answering ``GET /hub/api/user`` and ``POST /hub/api/oauth2/token`` like JupyterHub (fixture ``hub_url``).
* ``ApiClient`` is the one request helper: it prefixes paths with the service prefix, sends a token, and checks the
  security headers on every response it returns.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from httpx import Response

from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.web.identity import HUB_SCOPE, HubUnavailable, Identity
from polartep_hub.service.web.pages import PAGE_CSP

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

PREFIX = "/services/platform/"
ACCESS_SCOPE = "access:services!service=platform"


def user(name: str, *, admin: bool = False, scopes: set[str] | None = None) -> Identity:
    """A JupyterHub user identity; by default with access to the platform service."""
    return Identity(
        kind="user", name=name, admin=admin, scopes=frozenset({ACCESS_SCOPE} if scopes is None else scopes)
    )


def service(name: str, scopes: set[str]) -> Identity:
    return Identity(kind="service", name=name, scopes=frozenset(scopes))


HUB = service("polartep-hub", {HUB_SCOPE})

# The tokens every test's fake hub knows.
TOKENS: dict[str, Identity] = {
    "alice-token": user("alice"),
    "bob-token": user("bob"),
    "ada-token": user("ada", admin=True),  # a JupyterHub admin
    "all-services-token": user("dora", scopes={"access:services"}),  # unfiltered superset of the access scope
    "other-service-token": user("carol", scopes={"access:services!service=other"}),
    "hub-token": HUB,
    "prometheus-token": service("prometheus", {"read:metrics"}),
    "odd-name-token": user("Not Valid!"),
}


class FakeIdentityProvider:
    """A JupyterHub that knows ``tokens``; set ``down = True`` to make every question fail as if unreachable."""

    def __init__(self, tokens: dict[str, Identity] | None = None) -> None:
        self.tokens = dict(TOKENS if tokens is None else tokens)
        self.down = False
        self.questions: list[str] = []
        # OAuth: code -> (token, expected PKCE verifier); filled by ``grant``.
        self._codes: dict[str, tuple[str, str | None]] = {}
        self.last_challenge: str | None = None

    async def identify(self, token: str) -> Identity | None:
        self.questions.append(token)
        if self.down:
            raise HubUnavailable("fake hub is down")
        return self.tokens.get(token)

    def authorize_url(self, state: str, code_challenge: str) -> str:
        self.last_challenge = code_challenge
        return "/hub/api/oauth2/authorize?" + urlencode({"state": state, "code_challenge": code_challenge})

    def grant(self, code: str, token: str) -> None:
        """Let ``code`` be traded for ``token`` (what the hub does after the user approves)."""
        self._codes[code] = (token, None)

    async def token_for_code(self, code: str, code_verifier: str) -> str:
        if self.down or code not in self._codes:
            raise HubUnavailable("fake hub refused the code")
        import base64
        import hashlib

        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).decode().rstrip("=")
        )
        if challenge != self.last_challenge:
            raise HubUnavailable("PKCE verifier does not match the challenge")
        return self._codes.pop(code)[0]


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def check_security_headers(response: Response) -> None:
    """Every response of the service carries these, errors included."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (
            f"{name} missing on {response.request.url}: {response.headers}"
        )
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, f"CSP missing on {response.request.url}"
    if response.request.url.path.endswith("/docs"):
        return
    if response.headers.get("content-type", "").startswith("text/html"):
        assert csp == PAGE_CSP, csp  # the service's pages: the hub's stylesheet and the theme script only
    else:
        assert csp == "default-src 'none'; frame-ancestors 'none'", csp


class ApiClient:
    """Requests to the service under test: ``api.get("api/v1/me", token="alice-token")``."""

    def __init__(self, client: TestClient, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"token {token}"
        response = self.client.request(method, self.prefix + path, headers=headers, **kwargs)
        check_security_headers(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.request("PATCH", path, **kwargs)


# --- a fake JupyterHub REST API, over real HTTP ---------------------------------------------------------------

HUB_MODELS = {
    "alice-token": {
        "kind": "user",
        "name": "alice",
        "admin": False,
        "scopes": ["access:services!service=platform", "read:users:name!user=alice"],
    },
    "root-token": {"kind": "user", "name": "root", "admin": True, "scopes": ["access:services"]},
    "hub-token": {"kind": "service", "name": "polartep-hub", "scopes": [HUB_SCOPE]},
}


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler that answers JSON: the base of the fake HTTP servers in tests."""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeHubAPI(JsonHandler):
    """JupyterHub's ``/hub/api/user`` and OAuth token endpoint for the tokens in ``HUB_MODELS``."""

    questions: list[str] = []  # the tokens asked about, in order

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("token ")
        self.questions.append(token)
        if self.path != "/hub/api/user":
            self._reply(404, {"message": "not found"})
        elif token == "broken-hub-token":
            self._reply(500, {"message": "boom"})
        elif token in HUB_MODELS:
            self._reply(200, {**HUB_MODELS[token], "session_id": None, "token_id": "a1"})
        else:
            self._reply(403, {"message": "not authorized"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        expected = {
            "code": ["good-code"],
            "client_secret": ["service-api-token"],
            "code_verifier": ["the-verifier"],
        }
        if self.path == "/hub/api/oauth2/token" and all(form.get(k) == v for k, v in expected.items()):
            self._reply(200, {"access_token": "alice-token", "token_type": "Bearer"})
        else:
            self._reply(400, {"error": "invalid_grant"})


def without_theme_script(html: str) -> str:
    """A page without its one allowed script (the theme script, allowed by its hash in the page's CSP), so a test
    can check that nothing else on the page is a script."""
    from polartep_hub.service.web.pages import THEME_SCRIPT

    allowed = f"<script>{THEME_SCRIPT}</script>"
    assert html.count(allowed) == 1, "the page lacks the theme script"
    return html.replace(allowed, "")


class RecordingHubAPI:
    """Stands in for ``HubAPI`` (JupyterHub's REST API): records calls; ``failing`` makes them fail like a down hub."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.failing = False

    def _call(self, method: str, name: str) -> None:
        if self.failing:
            raise HubApiError(f"JupyterHub did not answer {method}", 0)
        self.calls.append((method, name))

    def stop_servers(self, name: str) -> None:
        self._call("stop_servers", name)

    def delete_user(self, name: str) -> None:
        self._call("delete_user", name)

    def delete_group(self, name: str) -> None:
        self._call("delete_group", name)

    def close(self) -> None:
        pass
