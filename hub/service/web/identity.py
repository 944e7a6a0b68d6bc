"""Who is calling: the identity behind a JupyterHub token, and the one seam through which it is resolved.

Rules this module guarantees:

* ``IdentityProvider`` is the only way the service learns who a caller is; the real one asks JupyterHub
  (``hubauth.HubIdentityProvider``), tests plug in a fake. Everything downstream (access rules, accounts) works on
  ``Identity`` values and never sees a token.
* Scope checks use JupyterHub's own ``check_scopes``, so filtered scopes (``access:services!service=platform``) and
  their unfiltered supersets (``access:services``) are understood exactly as the hub understands them.
* The hub's internal client is recognised by the custom scope ``custom:polartep:hub`` alone: JupyterHub's roles are
  the authority on who holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jupyterhub.services.auth import check_scopes

HUB_SCOPE = "custom:polartep:hub"
METRICS_SCOPE = "read:metrics"


class HubUnavailable(Exception):
    """JupyterHub could not be asked about a token (down, unreachable or erroring); not the caller's fault."""


@dataclass(frozen=True)
class Identity:
    """A caller as JupyterHub describes it: a user or a service, and the scopes of the token it used."""

    kind: str  # "user" or "service"
    name: str
    admin: bool = False
    scopes: frozenset[str] = frozenset()

    @classmethod
    def from_hub_model(cls, model: Mapping[str, Any]) -> Identity:
        """Build from the model JupyterHub's ``GET /hub/api/user`` returns."""
        kind = model.get("kind", "user")
        return cls(
            kind=kind,
            name=model["name"],
            # Only users can be admins; a service model has no such field.
            admin=kind == "user" and bool(model.get("admin", False)),
            scopes=frozenset(model.get("scopes", ())),
        )

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_hub(self) -> bool:
        """The hub's internal client (or anything JupyterHub gave the same custom scope)."""
        return self.has_scope(HUB_SCOPE)

    def has_scope(self, scope: str) -> bool:
        return self.has_any_scope((scope,))

    def has_any_scope(self, scopes: Iterable[str]) -> bool:
        return bool(check_scopes(set(scopes), set(self.scopes)))


class IdentityProvider(Protocol):
    """Resolves tokens to identities and performs the OAuth steps of a browser login."""

    async def identify(self, token: str) -> Identity | None:
        """The identity owning ``token``, None if the token is not valid; ``HubUnavailable`` if that cannot be known."""
        ...

    def authorize_url(self, state: str, code_challenge: str) -> str:
        """Where to send a browser to log in with the hub (OAuth authorization-code flow with PKCE)."""
        ...

    async def token_for_code(self, code: str, code_verifier: str) -> str:
        """Exchange an OAuth code for a token; ``HubUnavailable`` if the hub refuses or cannot be reached."""
        ...
