"""HTML pages of the platform service: one autoescaping template environment and CSRF-safe browser forms.

Rules this module guarantees:

* Every page is rendered from ``templates/`` by Jinja2 with autoescaping on, so anything a user typed (names,
  organisations, messages) is shown as text, never as markup. Pages load no scripts; the strict CSP of
  ``security_headers.py`` stays in force.
* A form that changes state and is sent by a logged-in browser carries ``_xsrf``, an HMAC of the browser's session
  token under the service's cookie secret; ``browser_form_identity`` accepts the session cookie on a ``POST`` only
  with the matching value (compared in constant time), so no other site can submit the form for the user.
* ``read_form`` reads at most ``MAX_FORM_FIELDS`` fields (the body itself is capped by ``request_limits.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .browser_login import session_token
from .context import ServiceContext, get_context
from .identity import HubUnavailable, Identity

TEMPLATES_DIR = Path(__file__).with_name("templates")
MAX_FORM_FIELDS = 64
XSRF_FIELD = "_xsrf"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    context: ServiceContext,
    template: str,
    *,
    title: str,
    status_code: int = 200,
    user: str | None = None,
    **variables: Any,
) -> HTMLResponse:
    """``template`` rendered inside the base layout, every value escaped."""
    html = _environment.get_template(template).render(
        title=title,
        user=user,
        prefix=context.config.prefix,
        hub_home="/hub/home",
        xsrf_field=XSRF_FIELD,
        **variables,
    )
    return HTMLResponse(html, status_code=status_code)


def xsrf_token(context: ServiceContext, session: str) -> str:
    """The form token that belongs to the browser session ``session``."""
    key = hashlib.sha256(b"polartep-xsrf:" + context.config.cookie_secret).digest()
    return hmac.new(key, session.encode("utf-8"), hashlib.sha256).hexdigest()


def page_xsrf(request: Request, context: ServiceContext) -> str | None:
    """The form token for the browser session of ``request`` (None when it has no session)."""
    session = session_token(request, context)
    return xsrf_token(context, session) if session else None


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (the last value wins for repeated names)."""
    form = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def identify_session(context: ServiceContext, session: str) -> Identity | None:
    """The user whose browser session token ``session`` is (None if it is no longer valid or not a user's); 503 while
    JupyterHub cannot be asked."""
    try:
        identity = await context.identity_provider.identify(session)
    except HubUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="cannot check your login with JupyterHub right now"
        ) from None
    return identity if identity is not None and identity.is_user else None


async def browser_form_identity(
    request: Request, context: Annotated[ServiceContext, Depends(get_context)]
) -> Identity:
    """The logged-in browser user posting a form: session cookie plus a matching ``_xsrf`` field; 401/403 otherwise."""
    session = session_token(request, context)
    if session is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"log in first: open {context.config.prefix}login in your browser",
        )
    form = await read_form(request)
    sent = form.get(XSRF_FIELD, "")
    if not hmac.compare_digest(sent.encode("utf-8"), xsrf_token(context, session).encode("utf-8")):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="the form has expired or came from another site; reload the page",
        )
    identity = await identify_session(context, session)
    if identity is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=f"your login has expired: open {context.config.prefix}login"
        )
    return identity


BrowserFormCaller = Annotated[Identity, Depends(browser_form_identity)]
