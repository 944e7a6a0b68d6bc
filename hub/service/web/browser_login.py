"""Browser login to the platform service through the hub's OAuth (authorization code with PKCE).

``GET <prefix>login?next=<path>`` sends the browser to the hub; the hub sends it back to ``<prefix>oauth_callback``,
which trades the code for a token and keeps it in a signed, HttpOnly session cookie scoped to the prefix.
``GET <prefix>logout`` forgets it.

Rules this module guarantees:

* The OAuth state and PKCE verifier travel in a signed cookie that lives 10 minutes; the callback accepts only the
  state it issued (compared in constant time), so a login cannot be injected from another site, and a service
  restart in the middle of a login loses nothing but that login.
* ``next`` only ever leads to a path under this service's prefix: absolute URLs, ``//host``, backslashes, ``..``
  and control characters fall back to the prefix (no open redirect).
* The session cookie only identifies ``GET``/``HEAD`` requests (``access.py``); cookies are ``Secure`` when the
  configured public URL (``POLARTEP_PUBLIC_URL``) is https, whatever a request's forwarded headers say, and
  ``SameSite=Lax``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, RedirectResponse
from tornado.web import create_signed_value, decode_signed_value

from polartep_hub.service.context import ServiceContext, get_context
from polartep_hub.service.web.identity import HubUnavailable

log = logging.getLogger(__name__)

_STATE_MAX_AGE_S = 600
_SESSION_MAX_AGE_DAYS = 7


def session_cookie_name(context: ServiceContext) -> str:
    return f"polartep-{context.config.service_name}-session"


def _state_cookie_name(context: ServiceContext) -> str:
    return f"polartep-{context.config.service_name}-oauth-state"


def _sign(context: ServiceContext, name: str, value: str) -> str:
    return create_signed_value(context.config.cookie_secret, name, value).decode("ascii")


def _unsign(context: ServiceContext, name: str, value: str | None, max_age_days: float) -> str | None:
    if not value:
        return None
    decoded = decode_signed_value(context.config.cookie_secret, name, value, max_age_days=max_age_days)
    return decoded.decode("utf-8", "replace") if decoded else None


def session_token(request: Request, context: ServiceContext) -> str | None:
    """The JupyterHub token kept in this browser's session cookie, if any (and if the signature holds)."""
    name = session_cookie_name(context)
    return _unsign(context, name, request.cookies.get(name), _SESSION_MAX_AGE_DAYS)


def safe_next_url(next_url: str | None, prefix: str) -> str:
    """``next_url`` if it is a plain path under ``prefix``, else ``prefix``."""
    if not next_url or not next_url.startswith(prefix):
        return prefix
    if "\\" in next_url or "//" in next_url or any(ord(c) < 0x20 or c == "\x7f" for c in next_url):
        return prefix
    if any(segment in ("..", ".") for segment in next_url.split("?", 1)[0].split("/")) or "%" in next_url:
        # Percent-escapes could hide "..", "/" or "\" from the checks above; paths here never need them.
        return prefix
    return next_url


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest())
        .decode("ascii")
        .rstrip("=")
    )
    return verifier, challenge


def _cookie_options(request: Request, context: ServiceContext) -> dict[str, object]:
    return {
        "path": context.config.prefix,
        "httponly": True,
        "samesite": "lax",
        # From the configured public URL, never from the request: behind TLS the proxy's forwarded scheme reads
        # "https,http", and a client can send any X-Forwarded-Proto it likes.
        "secure": context.config.cookies_secure,
    }


router = APIRouter()
ContextDep = Annotated[ServiceContext, Depends(get_context)]


@router.get("/login", include_in_schema=False)
async def login(
    request: Request, context: ContextDep, next: Annotated[str | None, Query(max_length=2048)] = None
):
    """Start a browser login with the hub."""
    verifier, challenge = _pkce_pair()
    state = secrets.token_urlsafe(24)
    payload = json.dumps(
        {"state": state, "verifier": verifier, "next": safe_next_url(next, context.config.prefix)}
    )
    response = RedirectResponse(context.identity_provider.authorize_url(state, challenge), status_code=302)
    response.set_cookie(
        _state_cookie_name(context),
        _sign(context, _state_cookie_name(context), payload),
        max_age=_STATE_MAX_AGE_S,
        **_cookie_options(request, context),
    )
    return response


@router.get("/oauth_callback", include_in_schema=False)
async def oauth_callback(
    request: Request,
    context: ContextDep,
    code: Annotated[str | None, Query(max_length=1024)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
):
    """Finish a browser login: check the state, trade the code for a token, keep it in the session cookie."""
    if error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"login refused by JupyterHub: {error[:100]}")
    if not code or not state:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="OAuth callback without code or state; log in again"
        )
    name = _state_cookie_name(context)
    raw = _unsign(context, name, request.cookies.get(name), _STATE_MAX_AGE_S / 86400)
    try:
        saved = json.loads(raw) if raw else None
    except ValueError:
        saved = None
    if not isinstance(saved, dict) or not hmac.compare_digest(str(saved.get("state", "")), state):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="OAuth state does not match; log in again")
    try:
        token = await context.identity_provider.token_for_code(code, str(saved["verifier"]))
        identity = await context.identity_provider.identify(token)
    except HubUnavailable:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail="JupyterHub did not complete the login; try again"
        ) from None
    if identity is None:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, detail="JupyterHub issued a token it does not recognise"
        )
    log.info("browser login for %s", identity.name[:80])
    response = RedirectResponse(safe_next_url(saved.get("next"), context.config.prefix), status_code=302)
    response.delete_cookie(name, path=context.config.prefix)
    response.set_cookie(
        session_cookie_name(context),
        _sign(context, session_cookie_name(context), token),
        max_age=_SESSION_MAX_AGE_DAYS * 86400,
        **_cookie_options(request, context),
    )
    return response


@router.get("/logout", include_in_schema=False)
async def logout(context: ContextDep) -> JSONResponse:
    """Forget this browser's session (the hub's own session is the hub's business)."""
    response = JSONResponse({"detail": "logged out of the platform service"})
    response.delete_cookie(session_cookie_name(context), path=context.config.prefix)
    return response
