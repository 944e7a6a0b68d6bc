"""The real ``IdentityProvider``: asks JupyterHub who owns a token, through ``jupyterhub.services.auth.HubOAuth``.

Rules this module guarantees:

* Tokens are checked with the hub's ``GET /hub/api/user`` (``HubOAuth.user_for_token``, its async variant, on the
  service's event loop); answers, including "no such token", are cached for ``TOKEN_CACHE_SECONDS`` (5 s) from the
  moment the hub answered, so a token revoked in the hub is refused by the service at most 5 s (plus the one look-up
  in flight) after the revocation. The cache saves the hub round trip (a request to the hub, its own token hash and
  database read) on all but one request per token per 5 s; a longer cache would save little more and let a revoked
  token (a user server's, which is untrusted) act for longer. Answers that say "admin" are never taken from the
  cache (they are asked again, which also refreshes the cache), so a user demoted in the hub is not an administrator
  at the service's next request; erasure drops the whole cache (``forget_cached_identities``).
* ``HubOAuth`` reads the standard ``JUPYTERHUB_*`` variables itself (API URL and token, client id, callback URL);
  a missing one is reported at start-up, not at the first request.
* A hub that is down or erroring raises ``HubUnavailable``; it is never mistaken for an invalid token.
* Token values are never logged.
"""

from __future__ import annotations

import logging

from jupyterhub.services.auth import HubOAuth
from tornado.httputil import url_concat
from tornado.web import HTTPError
from traitlets import TraitError

from polartep_hub.service.web.identity import HubUnavailable, Identity

log = logging.getLogger(__name__)

# How long the hub's answer about a token is reused: the bound on how long a revoked token keeps working here.
# Must stay > 0: HubAuth's cache treats 0 as "forever".
TOKEN_CACHE_SECONDS = 5


class HubIdentityProvider:
    """Identities and OAuth logins backed by the JupyterHub that started this service."""

    def __init__(self, hub_auth: HubOAuth) -> None:
        self._auth = hub_auth

    @classmethod
    def from_env(cls, cache_max_age: int = TOKEN_CACHE_SECONDS) -> HubIdentityProvider:
        """Build from the hub's environment; ``ValueError`` naming what is missing."""
        if not 0 < cache_max_age <= TOKEN_CACHE_SECONDS:
            # 0 would cache forever (HubAuth's convention); more would let revoked tokens act for longer.
            raise ValueError(f"cache_max_age must be 1..{TOKEN_CACHE_SECONDS} s, not {cache_max_age}")
        try:
            hub_auth = HubOAuth(cache_max_age=cache_max_age)
        except TraitError as e:
            raise ValueError(f"cannot set up JupyterHub authentication: {e}") from None
        # traitlets does not validate environment defaults, so check the required ones here, at start-up.
        missing = [
            name
            for name, value in (
                ("JUPYTERHUB_API_TOKEN", hub_auth.api_token),
                ("JUPYTERHUB_CLIENT_ID", hub_auth.oauth_client_id),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"cannot talk to JupyterHub: {' and '.join(missing)} not set "
                "(the hub sets them for the services it manages)"
            )
        return cls(hub_auth)

    @property
    def hub_auth(self) -> HubOAuth:
        return self._auth

    async def identify(self, token: str) -> Identity | None:
        try:
            model = await self._auth.user_for_token(token, use_cache=True, sync=False)
        except HTTPError as e:
            # HubAuth turns connection failures and hub 5xx into tornado HTTPErrors; its own log says which.
            raise HubUnavailable(f"JupyterHub could not check the token ({e.status_code})") from None
        if model is not None and model.get("admin"):
            # Administrator rights are the ones that must end at once when revoked: never from the cache.
            try:
                model = await self._auth.user_for_token(token, use_cache=False, sync=False)
            except HTTPError as e:
                raise HubUnavailable(f"JupyterHub could not check the token ({e.status_code})") from None
        if model is None:
            return None
        try:
            return Identity.from_hub_model(model)
        except (KeyError, TypeError):
            log.error("JupyterHub answered /api/user with an unexpected model (keys: %s)", sorted(model)[:20])
            raise HubUnavailable("JupyterHub answered with an unexpected user model") from None

    def forget_cached_identities(self) -> None:
        """Drop every cached answer, so a token of a user deleted from the hub stops working now, not in a minute."""
        self._auth.cache.clear()

    def authorize_url(self, state: str, code_challenge: str) -> str:
        return url_concat(
            self._auth.login_url,
            {"state": state, "code_challenge": code_challenge, "code_challenge_method": "S256"},
        )

    async def token_for_code(self, code: str, code_verifier: str) -> str:
        try:
            return await self._auth.token_for_code(code, code_verifier=code_verifier, sync=False)
        except HTTPError as e:
            raise HubUnavailable(f"JupyterHub did not complete the login ({e.status_code})") from None

    async def aclose(self) -> None:
        """Close the HTTP client session JupyterHub's helpers opened on this event loop."""
        from jupyterhub.httpclient import JupyterHubHTTPClient

        if JupyterHubHTTPClient.initialized():
            await JupyterHubHTTPClient.loop_instance().close()
