"""Login through an OpenID Connect identity provider (``POLARTEP_AUTH=oidc``): ``PlatformOIDCAuthenticator``.

Built on oauthenticator's ``GenericOAuthenticator`` (authorization-code flow with PKCE, the provider's userinfo
endpoint for the claims). ``configure_oidc`` wires it from settings; the provider's endpoints are discovered from
``<issuer>/.well-known/openid-configuration`` while the hub loads its configuration, so a provider that cannot be
reached, or answers something that is not a discovery document for that issuer, stops the hub with a message
naming the URL and the problem.

Rules it guarantees:

* The username claim becomes the account name by ``canonical_account_name`` (NFKC, case-folded, stripped, then
  ``[a-z0-9._-]{1,64}``). A value that cannot be mapped is refused with 403 and a message; nothing is created.
* Every login is recorded by the platform service (``POST api/v1/auth/oidc``), which binds the account to the
  provider's subject: two identities are never merged into one account, and a name that belongs to a password
  account (e.g. the embedded administrator) cannot be taken over from the provider (403 with the reason).
* ``allowed_groups`` / ``admin_groups`` are matched against the provider's own group names, before anything is
  stored. Provider groups become JupyterHub groups named ``<group_prefix><group>`` (invalid names are dropped and
  logged); the user's project groups, owned by the platform service, are kept, so a login never drops a project.
* Password accounts of the platform (the embedded administrator) keep the REST API's password path
  (``POST /hub/api/users/<name>/tokens`` with ``auth``), checked by the platform service as in ``platform`` mode;
  identity-provider accounts have no password and cannot use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from oauthenticator.generic import GenericOAuthenticator
from tornado.web import HTTPError
from traitlets import Set, Unicode, default

from polartep_hub.accounts.store import (
    ACCOUNT_NAME_PATTERN,
    ACCOUNT_NAME_RULE,
    AccountError,
    canonical_account_name,
)
from polartep_hub.platform_client import PlatformClient
from polartep_hub.settings import setting_default

DISCOVERY_PATH = "/.well-known/openid-configuration"
GROUP_NAME_PATTERN = re.compile(r"[a-z0-9._-]{1,64}")
# Where the mapped groups travel from update_auth_model to get_user_groups inside one login.
_GROUPS_KEY = "polartep_groups"


class OIDCDiscoveryError(RuntimeError):
    """The identity provider's discovery document could not be used; the message names the URL and the problem."""


@dataclass(frozen=True)
class OIDCEndpoints:
    """What the hub needs from the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    # How the token endpoint takes the client's credentials; the spec's default is HTTP Basic.
    token_auth_methods: tuple[str, ...] = ("client_secret_basic",)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    url = urlparse(value)
    return url.scheme in ("http", "https") and bool(url.hostname)


def discover(issuer: str, timeout: float = 10.0) -> OIDCEndpoints:
    """Read ``<issuer>/.well-known/openid-configuration``; ``OIDCDiscoveryError`` saying what is wrong otherwise."""
    issuer = issuer.rstrip("/")
    url = issuer + DISCOVERY_PATH
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as error:
        raise OIDCDiscoveryError(
            f"cannot reach the OIDC identity provider at {url} ({type(error).__name__}: {error}); check "
            "POLARTEP_OIDC_ISSUER and that the provider is running"
        ) from None
    if response.status_code != 200:
        raise OIDCDiscoveryError(
            f"the OIDC identity provider answered HTTP {response.status_code} for {url}; check POLARTEP_OIDC_ISSUER"
        )
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise OIDCDiscoveryError(f"{url} is not an OpenID Connect discovery document (not a JSON object)")
    missing = [
        key
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
        if not _is_http_url(document.get(key))
    ]
    if missing:
        raise OIDCDiscoveryError(f"{url} lacks the http(s) URL(s) {', '.join(missing)}")
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise OIDCDiscoveryError(
            f"{url} names the issuer {str(document.get('issuer'))[:200]!r}, not {issuer!r}; set "
            "POLARTEP_OIDC_ISSUER to the provider's issuer exactly"
        )
    return OIDCEndpoints(
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        userinfo_endpoint=document["userinfo_endpoint"],
        token_auth_methods=tuple(
            str(m) for m in document.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)
        ),
    )


def account_name_from_claim(value: Any, claim: str) -> str:
    """The account name for the username claim ``value``; ``HTTPError(403)`` with a message when it has none."""
    if not isinstance(value, str) or not value.strip():
        raise HTTPError(
            403,
            f"Login refused: the identity provider sent no {claim!r} claim to use as your username; ask its "
            "administrator to release it to this platform",
        )
    try:
        return canonical_account_name(value)
    except AccountError:
        raise HTTPError(
            403,
            f"Login refused: your username at the identity provider ({claim!r}) cannot be used as a platform "
            f"account name, which must be {ACCOUNT_NAME_RULE}; ask an administrator",
        ) from None


def group_names(raw: Iterable[Any], prefix: str) -> tuple[list[str], int]:
    """JupyterHub group names for the provider's groups (``/a/b`` paths become ``a.b``) and how many were dropped."""
    names: set[str] = set()
    dropped = 0
    for group in raw:
        if not isinstance(group, str):
            dropped += 1
            continue
        name = prefix + unicodedata.normalize("NFKC", group).casefold().strip().strip("/").replace("/", ".")
        if GROUP_NAME_PATTERN.fullmatch(name) and name != prefix:
            names.add(name)
        else:
            dropped += 1
    return sorted(names), dropped


class PlatformOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with platform accounts, provider-subject binding and project-preserving groups."""

    platform_service_url = Unicode(help="Internal URL of the platform service.", config=True)
    platform_service_token = Unicode(
        help="Token of the hub's internal client of the platform service.", config=True
    )
    issuer = Unicode(help="The identity provider's issuer URL (recorded with each account).", config=True)
    groups_claim = Unicode(
        "groups", help="The userinfo claim listing the user's provider groups.", config=True
    )
    group_prefix = Unicode(
        setting_default("oidc_group_prefix"),
        help="Prefix of the JupyterHub groups made from provider groups.",
        config=True,
    )
    provider_allowed_groups = Set(
        Unicode(), help="If not empty, only members of these provider groups may log in.", config=True
    )
    provider_admin_groups = Set(
        Unicode(), help="Members of these provider groups are admins (decided at each login).", config=True
    )

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # provider_allowed_groups is checked in update_auth_model, before the platform records anything.
        return True

    @default("username_pattern")
    def _username_pattern_default(self) -> str:
        return f"^{ACCOUNT_NAME_PATTERN}$"

    @default("login_service")
    def _login_service_default(self) -> str:
        return "your organisation's account"

    @property
    def platform(self) -> PlatformClient:
        return PlatformClient(self.platform_service_url, self.platform_service_token)

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        return account_name_from_claim(user_info.get(str(self.username_claim)), str(self.username_claim))

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        name = auth_model["name"]
        user_info = auth_model["auth_state"][self.user_auth_state_key]
        raw_groups = user_info.get(self.groups_claim) or []
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        if not isinstance(raw_groups, list):
            self.log.warning("OIDC login of %s: the %s claim is not a list; ignored", name, self.groups_claim)
            raw_groups = []
        provider_groups = {g for g in raw_groups if isinstance(g, str)}
        if self.provider_allowed_groups and not provider_groups & self.provider_allowed_groups:
            raise HTTPError(
                403,
                "Login refused: your account at the identity provider is not in a group allowed to use this "
                "platform; ask an administrator",
            )
        if self.provider_admin_groups and auth_model["admin"] is None:
            auth_model["admin"] = bool(provider_groups & self.provider_admin_groups)

        subject = user_info.get("sub")
        if not isinstance(subject, str) or not subject:
            raise HTTPError(403, "Login refused: the identity provider sent no subject ('sub') for you")
        claims = {
            key: user_info[claim]
            for key, claim in (("full_name", "name"), ("email", "email"), ("organisation", "organisation"))
            if isinstance(user_info.get(claim), str)
        }
        if "organisation" not in claims and isinstance(user_info.get("organization"), str):
            claims["organisation"] = user_info["organization"]
        if user_info.get("email_verified") is False:
            # The provider says it has not checked this address: the account keeps what it has (or none).
            claims.pop("email", None)
        await self.platform.oidc_login({"name": name, "issuer": self.issuer, "subject": subject, **claims})

        mapped, dropped = group_names(provider_groups, self.group_prefix)
        if dropped:
            self.log.warning(
                "OIDC login of %s: %d provider group(s) with unusable names ignored", name, dropped
            )
        projects = await self.platform.project_groups(name)
        auth_model["auth_state"][_GROUPS_KEY] = sorted({*mapped, *projects})
        return auth_model

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        return set(auth_state.get(_GROUPS_KEY, ()))

    async def authenticate(self, handler, data=None, **kwargs):
        if data and "username" in data and "password" in data and not handler.get_argument("code", ""):
            return await self._password_login(data)
        return await super().authenticate(handler, data, **kwargs)

    async def _password_login(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """A platform password account (the embedded administrator) asking for an API token with its password."""
        username = str(data.get("username", "")).strip().lower()
        password = str(data.get("password", ""))
        if not username or not password or not self.validate_username(username):
            return None
        account = await self.platform.verify_password(username, password)
        if account is None:
            self.log.warning("Failed password login for %s", username[:64])
            return None
        # manage_groups: the groups are exactly the account's project groups (it has no provider groups).
        return {
            "name": account["name"],
            "admin": bool(account.get("admin")),
            "groups": sorted(await self.platform.project_groups(account["name"])),
        }


def configure_oidc(c, settings) -> None:
    """Use ``PlatformOIDCAuthenticator`` in JupyterHub's config ``c``; ``SystemExit`` when discovery fails."""
    try:
        endpoints = discover(settings.oidc_issuer)
    except OIDCDiscoveryError as error:
        raise SystemExit(f"POLARTEP_AUTH=oidc: {error}") from None
    c.JupyterHub.authenticator_class = "polartep_hub.auth.oidc.PlatformOIDCAuthenticator"
    auth = c.PlatformOIDCAuthenticator
    auth.issuer = endpoints.issuer
    auth.authorize_url = endpoints.authorization_endpoint
    auth.token_url = endpoints.token_endpoint
    auth.userdata_url = endpoints.userinfo_endpoint
    # Client credentials in an HTTP Basic header unless the provider only takes them in the form.
    auth.basic_auth = "client_secret_basic" in endpoints.token_auth_methods
    auth.client_id = settings.oidc_client_id
    auth.client_secret = settings.oidc_secret
    auth.scope = settings.oidc_scopes.split()
    auth.username_claim = settings.oidc_username_claim
    auth.groups_claim = settings.oidc_groups_claim
    auth.group_prefix = settings.oidc_group_prefix
    auth.provider_allowed_groups = _comma_list(settings.oidc_allowed_groups)
    auth.provider_admin_groups = _comma_list(settings.oidc_admin_groups)
    auth.oauth_callback_url = f"{settings.public_url}/hub/oauth_callback"
    auth.platform_service_url = settings.service_url
    auth.platform_service_token = settings.hub_service_token


def _comma_list(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}
