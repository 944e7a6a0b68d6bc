"""Per-user origins: every user's server on a host of its own (JupyterHub's ``subdomain_host``).

A single-user server is untrusted code: its owner controls it completely and can serve any page, with any script,
on its proxy route, even to visitors who never logged in to it. If that page shares an origin with the hub and the
platform service, its script runs with the visitor's cookies there and can drive the platform as the visitor
(read their data, erase their account, and for an administrator approve sign-ups or change plans).

With ``subdomain_host`` on, ``configure_user_origins`` guarantees:

* Alice's servers are at ``<scheme>://alice.<host>:<port>/user/alice/`` (JupyterHub's 'idna' naming, so every name
  gives a valid, distinct label); the hub, the platform service and every other hub-managed service stay on the
  public URL's own host (``platform_subdomain_hook``). JupyterHub 6 would otherwise put each service on a host of
  its own (``platform--service.<host>``); keeping them on the hub's host keeps their links, OAuth callbacks and
  cookies (host-only, on the hub's host) where users and the platform's pages expect them, and no user can ever be
  given a service's host, since user hosts always have one label more than the hub's.
* The proxy routes by host (``--host-routing``, ``proxy_process.py``): a request for ``alice.<host>`` reaches only
  Alice's server, anything else the hub, which redirects ``<host>/user/alice/...`` to Alice's host.
* Browsers keep each origin's cookies apart: the hub's login cookie and the platform service's session cookie are
  host-only on the hub's host, so no user server ever receives them, and neither the hub nor the service answers a
  cross-origin request with CORS headers, so a script on a user's host cannot read their answers. State-changing
  requests need a token or an ``_xsrf`` value that only the hub's and the service's own pages carry.
* Logins happen on the hub's host only (``login_only_on_hub_host``, JupyterHub's ``post_auth_hook``). The proxy
  hands the hub every request for a host it has no route for, so the hub's login page also answers on a user's
  host (``http://mallory.<host>/hub/login``); a password typed there would put the hub's login cookie on
  Mallory's origin, where her pages could use it. Such a login is refused, naming the address to use instead.
* The hub's "Services" menu links to services by path (``templates/page.html``): JupyterHub's own links name the
  service's host without the port, which would lead nowhere on any port but 80/443.

* Behind TLS (an ``https`` public URL) the hub's cookies carry the ``__Host-`` prefix
  (``cookie_host_prefix_enabled``), which browsers accept only from the hub's own host, so a user's server cannot
  plant a hub cookie of that name (JupyterHub recommends it exactly together with per-user domains).

What it does not do: a user's host and the hub's host are the same *site* (``alice.hub.example.org`` and
``hub.example.org``), so a user's server can set cookies for the parent domain ("cookie tossing"); JupyterHub's
XSRF checks and the service's signed cookies make a tossed cookie useless for acting as someone else, but an
operator who wants the strongest separation serves user content from a domain of its own. JupyterHub's
``jupyterhub-session-id`` cookie (not a credential: it only groups a browser's tokens for logout) is set for the
parent domain by JupyterHub itself.

Rejected: a separate proxy or domain per user (JupyterHub's subdomain_host already gives per-user origins with one
wildcard DNS record and one wildcard certificate); CORS allow-lists (no user origin may ever be trusted).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from jupyterhub.utils import subdomain_hook_idna
from tornado import web

from polartep_hub.settings import PlatformSettings


def platform_subdomain_hook(name: str, domain: str, kind: str) -> str:
    """JupyterHub's ``subdomain_hook``: users on ``<label>.<domain>``, services on the hub's own ``domain``."""
    if kind == "service":
        return domain
    return subdomain_hook_idna(name, domain, kind)


def is_loopback_name(host: str | None) -> bool:
    """True for ``localhost`` and its subdomains, which browsers resolve to loopback without any DNS."""
    host = (host or "").lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def login_only_on_hub_host(hub_host: str):
    """A ``post_auth_hook`` refusing (403) a login whose request came to any host but ``hub_host`` (host:port)."""

    def hook(authenticator: Any, handler: web.RequestHandler, authentication: Any) -> Any:
        if handler.request.host.lower() != hub_host.lower():
            raise web.HTTPError(
                403,
                reason="Log in on the platform's own address",
                log_message=f"This address belongs to a user's server; log in at //{hub_host}/hub/login instead",
            )
        return authentication

    return hook


def configure_user_origins(c, settings: PlatformSettings) -> None:
    """Turn on per-user origins in JupyterHub's config ``c`` when ``settings.subdomain_host`` asks for them."""
    subdomain_host = settings.user_subdomain_host
    if not subdomain_host:
        return
    c.JupyterHub.subdomain_host = subdomain_host
    c.JupyterHub.subdomain_hook = platform_subdomain_hook
    c.Authenticator.post_auth_hook = login_only_on_hub_host(urlparse(subdomain_host).netloc)
    if urlparse(subdomain_host).scheme == "https":
        # Behind TLS the hub's cookies get the __Host- prefix: no user host can toss a cookie of that name.
        c.JupyterHub.cookie_host_prefix_enabled = True
