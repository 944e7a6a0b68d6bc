"""Accounts of users who log in through an OpenID Connect identity provider (``POLARTEP_AUTH=oidc``).

The hub's ``PlatformOIDCAuthenticator`` calls ``POST <prefix>api/v1/auth/oidc`` (hub only) after every successful
login at the provider, with the account name it mapped from the username claim, the provider's issuer and subject,
and the profile claims. Rules this module guarantees:

* An account is bound to one identity (issuer, subject) in ``oidc_identities``. Two identities are never merged:
  a login whose name maps to an account bound to another subject, or to a password account (``auth_source``
  ``local``, e.g. the embedded administrator), is refused with 409 and a message; so is an identity already bound
  to an account of another name (the provider renamed the user).
* A new account is created approved, with ``auth_source="oidc"``, on the default plan.
* Profile claims (name, e-mail, organisation) go through ``personal_details``, one field at a time: valid fields
  are stored, invalid ones are skipped and logged by field name only (never the value); a claim that is absent
  leaves the stored value alone.
* Nothing is stored half-way: one transaction per login.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.details import PersonalDetailError, clean_email, clean_text
from polartep_hub.accounts.models import Account, OIDCIdentity
from polartep_hub.service.web.access import Context, HubCaller

log = logging.getLogger(__name__)

MAX_CLAIM_LENGTH = 2048  # raw claims are bounded here, then validated field by field


class IdentityConflict(accounts.AccountError):
    """The login would merge two identities into one account; the message says what to do."""


_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"


class OIDCLogin(BaseModel):
    """What the hub learned from the identity provider about a user who just logged in."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, description="the mapped account name")]
    # No control characters (NUL included: PostgreSQL refuses it in text, a 500 found by the OpenAPI contract run).
    issuer: Annotated[str, Field(min_length=1, max_length=255, pattern=_NO_CONTROL)]
    subject: Annotated[
        str,
        Field(min_length=1, max_length=255, pattern=_NO_CONTROL, description="the provider's `sub` claim"),
    ]
    full_name: Annotated[str | None, Field(max_length=MAX_CLAIM_LENGTH)] = None
    email: Annotated[str | None, Field(max_length=MAX_CLAIM_LENGTH)] = None
    organisation: Annotated[str | None, Field(max_length=MAX_CLAIM_LENGTH)] = None


class OIDCLoginResult(BaseModel):
    name: str
    admin: bool
    created: bool
    rejected_claims: list[str] = Field(
        description="profile claims that were not stored because they are invalid"
    )


def _apply_claims(account: Account, body: OIDCLogin) -> list[str]:
    """Store the valid profile claims on ``account``; return the names of the invalid ones."""
    rejected = []
    cleaners = {
        "full_name": lambda v: clean_text(v, "full_name"),
        "email": clean_email,
        "organisation": lambda v: clean_text(v, "organisation"),
    }
    for field, clean in cleaners.items():
        raw = getattr(body, field)
        if raw is None:
            continue
        try:
            setattr(account, field, clean(raw))
        except PersonalDetailError:
            rejected.append(field)
    if rejected:
        # Field names only: the values are personal data and possibly hostile.
        log.warning("OIDC login of %s: claims not stored (invalid): %s", account.name, ", ".join(rejected))
    return rejected


def link_oidc_account(
    session: Session, body: OIDCLogin, *, default_plan: str
) -> tuple[Account, bool, list[str]]:
    """The account for this identity (created if new) with its claims applied; ``IdentityConflict`` if it would
    merge identities. Commits."""
    name = accounts.check_account_name(body.name)
    identity = session.scalar(
        select(OIDCIdentity).where(OIDCIdentity.issuer == body.issuer, OIDCIdentity.subject == body.subject)
    )
    account = accounts.get_account(session, name)
    if identity is not None and (account is None or identity.account_id != account.id):
        linked = session.get(Account, identity.account_id)
        raise IdentityConflict(
            f"your identity is already linked to the account {linked.name if linked else '?'!r}, but the identity "
            f"provider now calls you {name!r}; ask an administrator to rename or merge the accounts"
        )
    if account is not None and accounts.is_being_erased(session, account):
        # Until the erasure has finished, the name is not free: neither the old identity nor a new one gets it.
        raise IdentityConflict(accounts.BEING_ERASED_MESSAGE)
    created = False
    if account is None:
        account = accounts.new_account(name, plan=default_plan, auth_source="oidc", approved_by="oidc")
        session.add(account)
        session.flush()
        created = True
    elif identity is None:
        if account.auth_source != "oidc":
            raise IdentityConflict(
                f"the account name {name!r} belongs to a platform account that logs in with a password; "
                "ask an administrator (the identity provider's username must differ)"
            )
        other = session.scalar(select(OIDCIdentity).where(OIDCIdentity.account_id == account.id))
        if other is not None:
            raise IdentityConflict(
                f"the account name {name!r} already belongs to another identity at the identity provider "
                "(usernames that differ only in case or Unicode form are one account name); ask an administrator"
            )
    if identity is None:
        session.add(OIDCIdentity(account_id=account.id, issuer=body.issuer, subject=body.subject))
    rejected = _apply_claims(account, body)
    session.commit()
    if created:
        log.info("created OIDC account %s on plan %s", name, default_plan)
    return account, created, rejected


router = APIRouter()


@router.post(
    "/auth/oidc",
    response_model=OIDCLoginResult,
    responses={409: {"description": "the login would merge two identities"}},
)
def oidc_login(body: OIDCLogin, caller: HubCaller, context: Context) -> Any:
    """Create or update the account of a user the identity provider vouched for. Hub only."""
    for attempt in range(2):
        with context.session() as session:
            try:
                # IdentityConflict (409) goes to the app-wide handler (errors.py).
                account, created, rejected = link_oidc_account(
                    session, body, default_plan=context.config.default_plan
                )
            except IntegrityError:
                # Two first logins of the same identity at once: the second sees the first's rows on retry.
                session.rollback()
                if attempt:
                    raise
                continue
            return OIDCLoginResult(
                name=account.name, admin=account.is_admin, created=created, rejected_claims=rejected
            )
    raise AssertionError("unreachable")
