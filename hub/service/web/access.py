"""Access rules of the platform service's HTTP API, as FastAPI dependencies.

Rules this module guarantees:

* A caller is identified by ``Authorization: token <t>`` or ``Authorization: Bearer <t>`` (a JupyterHub API token);
  browsers may instead use the session cookie set by the OAuth login (``browser_login.py``), but only for
  ``GET``/``HEAD`` requests, so no state-changing request can be forged cross-site.
* No caller: 401. A caller without the right: 403. The hub cannot be asked: 503. Each with a JSON ``detail``
  saying what is missing.
* Using the service needs the service's access scope (``access:services!service=platform`` or a superset) or the
  hub's scope ``custom:polartep:hub``; "hub only" routes need the latter; admin routes need a JupyterHub admin
  user (with access) or the hub.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from polartep_hub.service.context import ServiceContext, get_context
from polartep_hub.service.web.browser_login import session_token
from polartep_hub.service.web.identity import HubUnavailable, Identity

_AUTH_HEADER = re.compile(r"(?:token|bearer)\s+(\S+)\s*", re.IGNORECASE)
_MAX_TOKEN_LENGTH = 4096

Context = Annotated[ServiceContext, Depends(get_context)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "token"})


def _token_from_request(request: Request, context: ServiceContext) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        match = _AUTH_HEADER.fullmatch(header)
        if not match or len(match.group(1)) > _MAX_TOKEN_LENGTH:
            raise _unauthorized(
                "malformed Authorization header: use 'token <JupyterHub API token>' or 'Bearer <token>'"
            )
        return match.group(1)
    if request.method in ("GET", "HEAD"):
        return session_token(request, context)
    return None


async def optional_identity(request: Request, context: Context) -> Identity | None:
    """The caller, or None when the request carries no credentials at all. An invalid token is a 401."""
    token = _token_from_request(request, context)
    if token is None:
        return None
    try:
        identity = await context.identity_provider.identify(token)
    except HubUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="cannot check credentials with JupyterHub right now; try again",
        ) from None
    if identity is None:
        raise _unauthorized("the token is not valid (expired or revoked?); get a new one from JupyterHub")
    return identity


def require_identity(identity: Identity | None) -> Identity:
    """``identity``, or 401 when there are no credentials."""
    if identity is None:
        raise _unauthorized("authentication required: send 'Authorization: token <JupyterHub API token>'")
    return identity


def require_service_access(identity: Identity, context: ServiceContext) -> Identity:
    """``identity`` when it may use this service at all; 403 otherwise."""
    if identity.is_hub or identity.has_any_scope(context.config.access_scopes):
        return identity
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail=f"this token lacks the scope {' or '.join(sorted(context.config.access_scopes))} needed to use the "
        f"{context.config.service_name} service",
    )


# The dependencies below are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in its
# thread pool, a hand-off to a worker thread and back for each one (about 0.1 ms of CPU each, measured with
# bench/quota.py's set-up; more in waiting on a loaded machine). They do no I/O, so they run on the event loop.


async def required_identity(identity: Annotated[Identity | None, Depends(optional_identity)]) -> Identity:
    """The caller; 401 when there are no credentials."""
    return require_identity(identity)


async def service_caller(
    identity: Annotated[Identity, Depends(required_identity)], context: Context
) -> Identity:
    """A caller allowed to use this service at all."""
    return require_service_access(identity, context)


async def user_caller(identity: Annotated[Identity, Depends(service_caller)]) -> Identity:
    """A JupyterHub user (not a service) allowed to use this service."""
    if not identity.is_user:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only users have platform accounts; this token is a service's"
        )
    return identity


async def hub_caller(identity: Annotated[Identity, Depends(required_identity)]) -> Identity:
    """The hub's internal client (scope ``custom:polartep:hub``)."""
    if not identity.is_hub:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="only the hub may call this (scope custom:polartep:hub)"
        )
    return identity


async def admin_or_hub_caller(identity: Annotated[Identity, Depends(service_caller)]) -> Identity:
    """A JupyterHub admin user, or the hub."""
    if identity.is_hub or (identity.is_user and identity.admin):
        return identity
    raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators may do this")


Caller = Annotated[Identity, Depends(required_identity)]
ServiceCaller = Annotated[Identity, Depends(service_caller)]
UserCaller = Annotated[Identity, Depends(user_caller)]
HubCaller = Annotated[Identity, Depends(hub_caller)]
AdminOrHubCaller = Annotated[Identity, Depends(admin_or_hub_caller)]
