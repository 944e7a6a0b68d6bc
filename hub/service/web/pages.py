"""HTML pages of the platform service: one autoescaping template environment, the hub's look, CSRF-safe forms.

Rules this module guarantees:

* Every page is rendered from ``templates/`` by Jinja2 with autoescaping on, so anything a user typed (names,
  organisations, messages) is shown as text, never as markup. Markdown reaches a page only through
  ``markdown_render.render_markdown`` (sanitised).
* Pages look like the hub's: ``templates/base.html`` follows JupyterHub 6's ``page.html`` (navigation bar with
  Home, Token, Admin for administrators, Account, the user's name and Logout; light or dark) and links the hub's own
  stylesheet at ``/hub/static/css/style.min.css``, which the proxy serves from the same origin as these pages. The
  only extra stylesheet is ``<prefix>static/pages.css`` (served here); the dark theme follows the hub's choice
  (``jupyterhub-bs-theme`` in the origin's localStorage) or the system's, set by one inline script.
* Pages carry ``PAGE_CSP``: styles, fonts and images from this origin only (plus ``data:`` images, which the hub's
  stylesheet uses), no inline style, scripts only the theme script by its SHA-256 hash (no script file, no other
  inline script), forms posting to this origin only, no framing. Other responses keep the strict CSP of
  ``security_headers.py``.
* A form's problems are ``field -> message``; ``templates/forms.html`` shows each beside its input, linked with
  ``aria-describedby`` and ``aria-invalid``, and the page says at the top that fields need fixing.
* A form that changes state and is sent by a logged-in browser carries ``_xsrf``, an HMAC of the browser's session
  token under the service's cookie secret; ``browser_form_identity`` accepts the session cookie on a ``POST`` only
  with the matching value (compared in constant time), so no other site can submit the form for the user.
* ``read_form`` reads at most ``MAX_FORM_FIELDS`` fields (the body itself is capped by ``request_limits.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from polartep_hub.service.context import ServiceContext, get_context
from polartep_hub.service.web.browser_login import session_token
from polartep_hub.service.web.identity import HubUnavailable, Identity

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
MAX_FORM_FIELDS = 64
XSRF_FIELD = "_xsrf"

HUB_PREFIX = "/hub/"  # JupyterHub's pages and static files, on the same origin as this service (the proxy's)
HUB_STATIC = HUB_PREFIX + "static/"
HUB_STYLESHEET = "css/style.min.css"

THEME_SCRIPT = (TEMPLATES_DIR / "theme.js").read_text(encoding="utf-8")
THEME_SCRIPT_HASH = base64.b64encode(hashlib.sha256(THEME_SCRIPT.encode("utf-8")).digest()).decode("ascii")
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self' data:; "
    f"script-src 'sha256-{THEME_SCRIPT_HASH}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGES_CSS = (STATIC_DIR / "pages.css").read_bytes()
PAGES_CSS_VERSION = hashlib.sha256(PAGES_CSS).hexdigest()[:12]


def _hub_static_version(path: str) -> str | None:
    """The ``?v=`` JupyterHub itself puts on ``path`` (the MD5 of the installed file), so browsers fetch the new
    file after an upgrade; None when the hub's files are not installed here."""
    try:
        from jupyterhub._data import DATA_FILES_PATH

        data = (Path(DATA_FILES_PATH) / "static" / path).read_bytes()
    except (ImportError, OSError, TypeError):
        return None
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _hub_static_url(path: str) -> str:
    version = _hub_static_version(path)
    return f"{HUB_STATIC}{path}" + (f"?v={version}" if version else "")


_FIELD_PREFIX = re.compile(r"[a-z][a-z0-9_]*: ")


def field_message(message: str) -> str:
    """A problem's message as shown beside its field: without the leading ``field:`` that the API's messages
    carry (``"email: not a valid e-mail address"`` -> ``"not a valid e-mail address"``)."""
    match = _FIELD_PREFIX.match(message)
    return message[match.end() :] if match else message


def field_problems(messages: Iterable[str], fields: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Split messages into those that name one of ``fields`` (``"field: ..."``) and the others."""
    known = set(fields)
    problems: dict[str, str] = {}
    others: list[str] = []
    for message in messages:
        name = message.split(": ", 1)[0]
        if name in known and ": " in message:
            problems.setdefault(name, message)
        else:
            others.append(message)
    return problems, others


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["field_message"] = field_message
_environment.globals.update(
    hub_prefix=HUB_PREFIX,
    hub_stylesheet=_hub_static_url(HUB_STYLESHEET),
    hub_favicon=_hub_static_url("favicon.ico"),
    theme_script=Markup(THEME_SCRIPT),  # noqa: S704 (our own file; its hash is in PAGE_CSP)
)

static_router = APIRouter(include_in_schema=False)


@static_router.get("/static/pages.css")
def pages_stylesheet() -> Response:
    """The few styles the hub's stylesheet lacks (``static/pages.css``); cached, its version is in the link."""
    return Response(
        PAGES_CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )


def render_page(
    context: ServiceContext,
    template: str,
    *,
    title: str,
    status_code: int = 200,
    user: str | None = None,
    admin: bool = False,
    **variables: Any,
) -> HTMLResponse:
    """``template`` rendered inside the base layout, every value escaped, with ``PAGE_CSP``.

    ``user`` (the signed-in user's name) and ``admin`` choose the navigation bar's items; ``problems`` (field ->
    message) are shown beside their fields by the ``forms.html`` macros.
    """
    variables.setdefault("problems", {})
    variables.setdefault("nav", None)
    html = _environment.get_template(template).render(
        title=title,
        user=user,
        admin=admin,
        prefix=context.config.prefix,
        hub_home=f"{HUB_PREFIX}home",
        pages_css=f"{context.config.prefix}static/pages.css?v={PAGES_CSS_VERSION}",
        xsrf_field=XSRF_FIELD,
        **variables,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": PAGE_CSP})


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
