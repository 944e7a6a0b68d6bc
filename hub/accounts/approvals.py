"""Administrators approve or reject sign-ups: the accounts API and the page ``<prefix>admin/signups``.

Routes: ``GET api/v1/signups`` (the pending accounts with their details and consents; every account is listed by
``GET api/v1/accounts`` in ``plans_api.py``), ``POST api/v1/accounts/{name}/approve`` and
``POST api/v1/accounts/{name}/reject`` (admin users or the hub, by token); ``GET admin/signups`` (a logged-in
admin's browser) with approve/reject buttons posting to ``admin/signups/{name}/approve|reject``.

Rules this module guarantees:

* Only JupyterHub admins (or the hub) list, approve or reject: others get 403. The page's buttons are CSRF-safe:
  the POST needs the browser's session cookie and the matching ``_xsrf`` field (``pages.BrowserFormCaller``).
* Approving records who (``approved_by``) and when (``approved_at``); approving an approved account changes
  nothing. Rejecting deletes a pending account and everything it stored (consents cascade); an approved account
  cannot be rejected (409: erasure is the way to remove it).
* Every text a user typed is shown escaped (``pages.render_page``); JSON is JSON.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.accounts.models import Account
from polartep_hub.service.orm import utcnow
from polartep_hub.service.web.access import AdminOrHubCaller, Context, optional_identity
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import BrowserFormCaller, page_xsrf, render_page

log = logging.getLogger(__name__)

PathName = AccountNamePath  # schemas.py: with the name rule in the document


class ConsentRecord(BaseModel):
    document: str
    version: str
    accepted_at: datetime


class AccountDetails(BaseModel):
    """An account as administrators review it (no password hash, ever)."""

    name: str
    admin: bool
    approved: bool
    approved_at: datetime | None
    approved_by: str | None
    auth_source: str
    plan: str
    created_at: datetime
    full_name: str | None
    email: str | None
    organisation: str | None
    organisation_location: str | None
    phone: str | None
    consents: list[ConsentRecord]


def account_details(account: Account) -> AccountDetails:
    return AccountDetails(
        name=account.name,
        admin=account.is_admin,
        approved=account.approved,
        approved_at=account.approved_at,
        approved_by=account.approved_by,
        auth_source=account.auth_source,
        plan=account.plan,
        created_at=account.created_at,
        full_name=account.full_name,
        email=account.email,
        organisation=account.organisation,
        organisation_location=account.organisation_location,
        phone=account.phone,
        consents=[
            ConsentRecord(document=c.document, version=c.version, accepted_at=c.accepted_at)
            for c in sorted(account.consents, key=lambda c: (c.document, c.accepted_at))
        ],
    )


# --- the operations -----------------------------------------------------------------------------------------------


def list_accounts(session: Session, which: str) -> list[Account]:
    """Accounts by approval status (``pending``, ``approved`` or ``all``), oldest first."""
    query = select(Account).options(selectinload(Account.consents)).order_by(Account.created_at, Account.name)
    if which == "pending":
        query = query.where(Account.approved.is_(False))
    elif which == "approved":
        query = query.where(Account.approved.is_(True))
    return list(session.scalars(query))


def approve_account(session: Session, name: str, by: str) -> Account:
    """Approve ``name`` (recording ``by`` and now); ``AccountNotFound`` if there is no such account."""
    account = accounts.require_account(session, name)
    if not account.approved:
        account.approved = True
        account.approved_at = utcnow()
        account.approved_by = by[:64]
        session.commit()
        log.info("account %s approved by %s", account.name, by[:64])
    return account


class NotPending(accounts.AccountError):
    """The account is approved already, so it cannot be rejected."""


def reject_account(session: Session, name: str, by: str) -> None:
    """Delete the pending account ``name``; ``AccountNotFound`` or ``NotPending`` otherwise."""
    account = accounts.require_account(session, name)
    if account.approved:
        raise NotPending(
            f"account {account.name!r} is approved already; only pending sign-ups can be rejected "
            "(erase the account instead)"
        )
    session.delete(account)
    session.commit()
    log.info("pending account %s rejected (deleted) by %s", name, by[:64])


# --- API ------------------------------------------------------------------------------------------------------------

api_router = APIRouter()


@api_router.get("/signups", response_model=list[AccountDetails])
def signups_list(caller: AdminOrHubCaller, context: Context) -> list[AccountDetails]:
    """Sign-ups awaiting approval, oldest first, with their personal details and consents. Admin users or the hub."""
    with context.session() as session:
        return [account_details(a) for a in list_accounts(session, "pending")]


@api_router.post(
    "/accounts/{name}/approve",
    response_model=AccountDetails,
    responses={404: {"description": "no such account"}},
)
def accounts_approve(name: PathName, caller: AdminOrHubCaller, context: Context) -> AccountDetails:
    """Approve a sign-up, so the account can log in. Admin users or the hub."""
    with context.session() as session:
        account = approve_account(session, name, caller.name)  # refusals: the app-wide handler (errors.py)
        session.refresh(account)
        return account_details(account)


@api_router.post(
    "/accounts/{name}/reject",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such account"}, 409: {"description": "the account is approved"}},
)
def accounts_reject(name: PathName, caller: AdminOrHubCaller, context: Context) -> Response:
    """Reject a pending sign-up: the account and its consents are deleted. Admin users or the hub."""
    with context.session() as session:
        reject_account(session, name, caller.name)  # refusals: the app-wide handler (errors.py)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the admin page -----------------------------------------------------------------------------------------------

page_router = APIRouter()


def _require_admin(identity: Identity) -> None:
    if not (identity.is_user and identity.admin):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators may review sign-ups")


@page_router.get("/admin/signups", include_in_schema=False)
def signups_page(
    request: Request,
    context: Context,
    identity: Annotated[Identity | None, Depends(optional_identity)],
    done: Annotated[str | None, Query(max_length=80)] = None,
) -> Any:
    """Pending sign-ups with approve and reject buttons (a logged-in admin's browser)."""
    if identity is None:
        return RedirectResponse(
            f"{context.config.prefix}login?next={quote(context.config.prefix + 'admin/signups')}",
            status_code=302,
        )
    if not (identity.is_user and identity.admin):
        return render_page(
            context,
            "admin_signups.html",
            title="Sign-ups awaiting approval",
            user=identity.name,
            admin=identity.admin,
            status_code=status.HTTP_403_FORBIDDEN,
            error="Only administrators may review sign-ups.",
            pending=[],
            xsrf=None,
        )
    notice = None
    if done:
        action, _, name = done.partition(":")
        # Only a well-formed name is echoed, so a crafted link cannot put arbitrary text on the page.
        if action in ("approved", "rejected") and accounts._ACCOUNT_NAME.fullmatch(name):
            notice = f"Account {name} {action}."
    with context.session() as session:
        pending = [account_details(a) for a in list_accounts(session, "pending")]
    return render_page(
        context,
        "admin_signups.html",
        title="Sign-ups awaiting approval",
        user=identity.name,
        admin=True,
        nav="signups",
        notice=notice,
        pending=pending,
        xsrf=page_xsrf(request, context),
    )


def _page_action(name: str, caller: Identity, context, action) -> RedirectResponse:
    _require_admin(caller)
    with context.session() as session:
        action(session, name, caller.name)  # refusals: the app-wide handler (errors.py)
    verb = "approved" if action is approve_account else "rejected"
    return RedirectResponse(
        f"{context.config.prefix}admin/signups?done={verb}:{quote(name)}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


@page_router.post("/admin/signups/{name}/approve", include_in_schema=False)
def signups_approve(name: PathName, caller: BrowserFormCaller, context: Context) -> RedirectResponse:
    return _page_action(name, caller, context, approve_account)


@page_router.post("/admin/signups/{name}/reject", include_in_schema=False)
def signups_reject(name: PathName, caller: BrowserFormCaller, context: Context) -> RedirectResponse:
    return _page_action(name, caller, context, reject_account)
