"""Accepting the current terms and privacy statement: API, browser page, and the answer the hub enforces at spawn.

Routes (``api_router`` at ``<prefix>api/v1``, ``page_router`` at the prefix):

* ``GET api/v1/me/consents``: what the calling user accepted and which current documents are still missing.
* ``POST api/v1/me/consents``: accept current versions; the body names them (``{"terms": "2026-11-01",
  "privacy": "2026-11-01"}``). A version that is not current any more is refused with 409, an unknown one with
  400; nothing is recorded unless every named version is current.
* ``GET api/v1/users/{name}/consents``: the same status for the hub (which refuses to spawn while something is
  missing), an admin, or the user themself.
* ``GET/POST consent?next=<path>``: the browser page showing the missing documents (Markdown rendered and
  sanitised by ``markdown_render``) with links to
  ``legal/{kind}/{version}``, and a CSRF-safe form to accept them; afterwards the browser goes to ``next``, which
  must be a plain path under this service, ``/hub/`` or ``/user/`` (anything else goes to ``/hub/home``).

Rules this module guarantees:

* Only the current version of a document can be accepted, and only by the account itself; accepting is idempotent.
* The consent URL that the hub shows users is ``CONSENT_PATH`` under the prefix; ``missing`` is empty exactly when
  the user may spawn.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.accounts.legal import DOCUMENT_KINDS, LegalDocument, missing_consents, record_consents
from polartep_hub.accounts.models import Account, Consent
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, ServiceCaller, UserCaller
from polartep_hub.service.web.browser_login import safe_next_url, session_token
from polartep_hub.service.web.markdown_render import render_markdown
from polartep_hub.service.web.pages import (
    BrowserFormCaller,
    identify_session,
    page_xsrf,
    read_form,
    render_page,
)

log = logging.getLogger(__name__)

CONSENT_PATH = "consent"
DEFAULT_NEXT = "/hub/home"
# Besides this service's own pages, the consent page may send the browser back to the hub or a user's server.
_NEXT_PREFIXES = ("/hub/", "/user/")

VersionName = Annotated[str, Field(min_length=1, max_length=32, examples=["2026-11-01"])]


class DocumentRef(BaseModel):
    kind: str
    version: str
    title: str
    url: str = Field(description="where the document can be read")


class AcceptedConsent(BaseModel):
    kind: str
    version: str
    accepted_at: datetime


class ConsentStatus(BaseModel):
    name: str
    current: dict[str, str] = Field(description="kind -> the current version")
    accepted: list[AcceptedConsent]
    missing: list[DocumentRef] = Field(description="current documents not accepted yet; empty: may spawn")
    consent_url: str = Field(description="the page where a browser accepts the missing documents")


class ConsentAcceptance(BaseModel):
    """The versions being accepted, by kind (at least one); each must be the current version."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    terms: VersionName | None = None
    privacy: VersionName | None = None


def document_url(context: ServiceContext, document: LegalDocument) -> str:
    return f"{context.config.prefix}legal/{document.kind}/{document.version}"


def safe_consent_next(next_url: str | None, prefix: str) -> str:
    """``next_url`` if it is a plain path under ``prefix``, ``/hub/`` or ``/user/``; ``/hub/home`` otherwise."""
    if next_url:
        for allowed in (prefix, *_NEXT_PREFIXES):
            if safe_next_url(next_url, allowed) == next_url:
                return next_url
    return DEFAULT_NEXT


def consent_status(context: ServiceContext, account: Account, session) -> ConsentStatus:
    accepted = session.scalars(
        select(Consent).where(Consent.account_id == account.id).order_by(Consent.accepted_at, Consent.id)
    )
    return ConsentStatus(
        name=account.name,
        current=context.legal.current_versions(),
        accepted=[
            AcceptedConsent(kind=c.document, version=c.version, accepted_at=c.accepted_at) for c in accepted
        ],
        missing=[
            DocumentRef(kind=d.kind, version=d.version, title=d.title, url=document_url(context, d))
            for d in missing_consents(session, account, context.legal)
        ],
        consent_url=f"{context.config.prefix}{CONSENT_PATH}",
    )


def _documents_to_accept(context: ServiceContext, body: ConsentAcceptance) -> list[LegalDocument]:
    """The documents named in ``body``, all current; 400/409/422 with a message otherwise."""
    named = {kind: getattr(body, kind) for kind in DOCUMENT_KINDS if getattr(body, kind) is not None}
    if not named:
        example = ", ".join(f'"{k}": "{v}"' for k, v in context.legal.current_versions().items())
        raise HTTPException(
            422,
            detail=f"name the versions you accept, e.g. {{{example}}}",
        )
    documents = []
    for kind, version in named.items():
        current = context.legal.current(kind)
        if context.legal.get(kind, version) is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"there is no {kind} version {version!r}; the current one is {current.version!r} "
                f"({document_url(context, current)})",
            )
        if version != current.version:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"{kind} version {version!r} is no longer current: read version {current.version!r} at "
                f"{document_url(context, current)} and accept that one",
            )
        documents.append(current)
    return documents


api_router = APIRouter()
page_router = APIRouter()


@api_router.get(
    "/me/consents",
    response_model=ConsentStatus,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        409: {"description": "single-user mode: only the administrator has an account"},
    },
)
def my_consents(caller: UserCaller, context: Context) -> ConsentStatus:
    """What the calling user has accepted and which current documents they still have to accept."""
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        return consent_status(context, account, session)


@api_router.post(
    "/me/consents",
    response_model=ConsentStatus,
    responses={
        400: {"description": "unknown version"},
        409: {"description": "the version is no longer current"},
    },
)
def accept_consents(body: ConsentAcceptance, caller: UserCaller, context: Context) -> ConsentStatus:
    """Accept the current versions named in the body (with the user's own token)."""
    documents = _documents_to_accept(context, body)
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        record_consents(session, account, documents)
        session.commit()
        log.info("%s accepted %s", account.name, ", ".join(f"{d.kind} {d.version}" for d in documents))
        return consent_status(context, account, session)


@api_router.get(
    "/users/{name}/consents",
    response_model=ConsentStatus,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
        409: {"description": "single-user mode: only the administrator has an account"},
    },
)
def user_consents(name: AccountNamePath, caller: ServiceCaller, context: Context) -> ConsentStatus:
    """The consent status of ``name``: the hub (before a spawn), an admin user, or the user themself."""
    if not (caller.is_hub or (caller.is_user and (caller.admin or caller.name == name))):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may only read your own consents")
    accounts.check_account_name(name)
    with context.session() as session:
        account = accounts.get_or_create_account(session, name, default_plan=context.config.default_plan)
        return consent_status(context, account, session)


# --- the browser page ---------------------------------------------------------------------------------------------


def _login_redirect(context: ServiceContext, next_url: str) -> RedirectResponse:
    # The login's own ``next`` must stay a plain path (browser_login refuses percent-escapes), so the consent
    # page's address is passed decoded; ``next_url`` has already been checked to be a plain path.
    here = f"{context.config.prefix}{CONSENT_PATH}?next={next_url}"
    return RedirectResponse(
        f"{context.config.prefix}login?next={quote(here, safe='/')}", status_code=status.HTTP_302_FOUND
    )


def _render(
    context: ServiceContext,
    request: Request,
    user: str,
    missing: list[LegalDocument],
    next_url: str,
    *,
    error: str | None = None,
    problems: dict[str, str] | None = None,
    status_code: int = 200,
    admin: bool = False,
) -> Response:
    return render_page(
        context,
        "consent.html",
        title="Terms and privacy",
        status_code=status_code,
        user=user,
        admin=admin,
        error=error,
        problems=problems or {},
        # Each document under its card's <h2>: its own headings start at <h3>.
        documents=[(d, document_url(context, d), render_markdown(d.text, heading_offset=2)) for d in missing],
        next_url=next_url,
        xsrf=page_xsrf(request, context),
    )


@page_router.get("/" + CONSENT_PATH, include_in_schema=False)
async def consent_page(
    request: Request, context: Context, next: Annotated[str | None, Query(max_length=2048)] = None
) -> Response:
    """Show the current documents the logged-in user has not accepted yet; go on to ``next`` if there are none."""
    next_url = safe_consent_next(next, context.config.prefix)
    token = session_token(request, context)
    if token is None:
        return _login_redirect(context, next_url)
    identity = await identify_session(context, token)
    if identity is None:
        return _login_redirect(context, next_url)
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, identity.name, default_plan=context.config.default_plan
        )
        missing = missing_consents(session, account, context.legal)
    if not missing:
        return RedirectResponse(next_url, status_code=status.HTTP_302_FOUND)
    return _render(context, request, identity.name, missing, next_url, admin=identity.admin)


@page_router.post("/" + CONSENT_PATH, include_in_schema=False)
async def consent_form(request: Request, caller: BrowserFormCaller, context: Context) -> Response:
    """Record the acceptance ticked in the form, for exactly the versions the form showed, then go to ``next``."""
    form = await read_form(request)
    next_url = safe_consent_next(form.get("next"), context.config.prefix)
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        missing = missing_consents(session, account, context.legal)
        stale = [d for d in missing if form.get(f"version_{d.kind}") != d.version]
        if stale:
            # A new version was published while the page was open: show the new text instead of recording.
            return _render(
                context,
                request,
                caller.name,
                missing,
                next_url,
                error="A document changed while you were reading it: please read the current version below.",
                status_code=status.HTTP_409_CONFLICT,
                admin=caller.admin,
            )
        unticked = [d for d in missing if form.get(f"accept_{d.kind}") != "yes"]
        if unticked:
            return _render(
                context,
                request,
                caller.name,
                missing,
                next_url,
                error="To use the platform, tick the box under "
                + " and ".join(d.title.lower() for d in unticked)
                + ".",
                problems={
                    f"accept_{d.kind}": f"Tick this box to accept the {d.title.lower()}." for d in unticked
                },
                status_code=status.HTTP_400_BAD_REQUEST,
                admin=caller.admin,
            )
        record_consents(session, account, missing)
        session.commit()
        if missing:
            log.info("%s accepted %s", account.name, ", ".join(f"{d.kind} {d.version}" for d in missing))
    return RedirectResponse(next_url, status_code=status.HTTP_303_SEE_OTHER)
