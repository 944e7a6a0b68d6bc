"""Accounts and plans: who has which plan, which profiles that allows, and password checks for the embedded login.

Rules this module guarantees:

* Account names follow one rule (``ACCOUNT_NAME_PATTERN``: 1-64 characters of ``a-z 0-9 . _ -``); nothing else
  is ever stored.
* JupyterHub is the authority on which users exist: an account is created lazily, on the default plan, the first
  time a valid name is seen (``get_or_create_account``), and concurrent first sights create exactly one row.
* Every plan written is a plan of the catalogue; a bad request stores nothing.
* Each function that changes state commits before returning, so callers never hold a transaction across an await.
* Password checks cost one argon2 verification whatever the outcome; an account awaiting approval is named as such
  only to a caller who gave its right password (``check_password``). Throttling is ``login_throttle.py``'s: there is
  no per-account lock-out, which a stranger could trigger for any account. After an administrator's password reset
  the old password logs nobody in (``AccountPasswordResetRequired``, again only told to whoever typed it).
* In single-user local mode no account but the administrator's is ever stored (``refuse_accounts_but``).
* Allowed profiles follow the one rule of ``subscriptions.py`` (plan + active subscriptions; admins: all).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.account_names import ACCOUNT_NAME_PATTERN, ACCOUNT_NAME_RULE, fold_account_name
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.spawners.single_user import single_user_refusal

_ACCOUNT_NAME = re.compile(ACCOUNT_NAME_PATTERN)

log = logging.getLogger(__name__)


class AccountError(Exception):
    """A request about accounts cannot be done; the message is safe to show to the caller."""


class InvalidAccountName(AccountError):
    pass


class UnknownPlan(AccountError):
    pass


class AccountExists(AccountError):
    pass


class AccountNotFound(AccountError):
    """No account of that name (404)."""

    @classmethod
    def for_name(cls, name: str) -> AccountNotFound:
        """The one "no account" error; the name is bounded in the message (names can be long and end up in logs)."""
        return cls(f"no account {name[:80]!r}")


class SingleUserMode(AccountError):
    """Single-user local mode (no root to create system users): only the administrator has an account."""


def refuse_accounts_but(sessions: sessionmaker[Session], admin_user: str) -> None:
    """Single-user local mode: every session of ``sessions`` refuses to store an account not named ``admin_user``.

    One check at the flush covers every way an account is created (sign-up, admin creation, first sight, OIDC), so
    no new code path can forget it; ``SingleUserMode`` (409) says why and what to do instead.
    """

    def check_new_accounts(session: Session, flush_context: object, instances: object) -> None:
        for instance in session.new:
            if isinstance(instance, Account):
                refusal = single_user_refusal(instance.name, admin_user)
                if refusal:
                    raise SingleUserMode(refusal)

    event.listen(sessions, "before_flush", check_new_accounts)


# Erasure replaces a name in the ledger by ``erased-<random>`` (personal_data.PSEUDONYM_PREFIX), and the meter never
# charges such a name: no account may be called that.
RESERVED_NAME_PREFIX = "erased-"


def check_account_name(name: str) -> str:
    """``name`` if it is a valid account name; ``InvalidAccountName`` (with the rule) otherwise."""
    if not _ACCOUNT_NAME.fullmatch(name):
        # Bounded in the message: user names can be long, and messages end up in logs.
        raise InvalidAccountName(f"invalid account name {name[:80]!r}: use {ACCOUNT_NAME_RULE}")
    if name.startswith(RESERVED_NAME_PREFIX):
        raise InvalidAccountName(
            f"invalid account name {name[:80]!r}: names starting with {RESERVED_NAME_PREFIX!r} are reserved "
            "for erased accounts"
        )
    return name


def is_being_erased(session: Session, account: Account) -> bool:
    """Whether an erasure of ``account`` was requested and has not finished (its resources may still exist)."""
    from polartep_hub.accounts.models import PendingErasure

    return session.get(PendingErasure, account.id) is not None


BEING_ERASED_MESSAGE = (
    "this account is being erased: nothing can start for it, nobody can log in to it, and its name stays taken "
    "until every server, cluster and home of it is gone"
)


def check_plan(catalogue: Catalogue, plan: str) -> str:
    """``plan`` if the catalogue has it; ``UnknownPlan`` naming the known plans otherwise."""
    if plan not in catalogue.plans:
        raise UnknownPlan(f"unknown plan {plan[:80]!r}; known plans: {', '.join(catalogue.plans)}")
    return plan


def new_account(
    name: str,
    *,
    plan: str,
    now: datetime | None = None,
    auth_source: str = "local",
    password_hash: str | None = None,
    is_admin: bool = False,
    approved: bool = True,
    approved_by: str | None = None,
    full_name: str | None = None,
    email: str | None = None,
    organisation: str | None = None,
    organisation_location: str | None = None,
    phone: str | None = None,
) -> Account:
    """A new ``Account`` row, not yet added to a session: the one place an account is built (first sight, admin
    creation, the first administrator, sign-up, OIDC), so that every account starts alike.

    The name is checked (``InvalidAccountName``); the account is created and its plan period starts at ``now``
    (default: this instant); ``auth_source`` is "local" (password) or "oidc"; ``approved_by`` records who approved
    it, at ``now``. Personal details are stored as given: validate them first (``personal_details``)."""
    check_account_name(name)
    now = now or utcnow()
    return Account(
        name=name,
        plan=plan,
        plan_started_at=now,
        created_at=now,
        auth_source=auth_source,
        password_hash=password_hash,
        is_admin=is_admin,
        approved=approved,
        approved_at=now if approved_by is not None else None,
        approved_by=approved_by,
        full_name=full_name,
        email=email,
        organisation=organisation,
        organisation_location=organisation_location,
        phone=phone,
    )


def get_account(session: Session, name: str) -> Account | None:
    """The account ``name``, or None. A name outside the account-name rule has no account and is not looked up:
    PostgreSQL refuses text with NUL bytes (a 500 for ``GET /accounts/a%00b``, found by the OpenAPI contract run)."""
    if not _ACCOUNT_NAME.fullmatch(name):
        return None
    return session.scalar(select(Account).where(Account.name == name))


def require_account(session: Session, name: str) -> Account:
    """The account ``name``; ``AccountNotFound`` (404) if there is none."""
    account = get_account(session, name)
    if account is None:
        raise AccountNotFound.for_name(name)
    return account


def count_accounts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account)) or 0


def get_or_create_account(session: Session, name: str, *, default_plan: str) -> Account:
    """The account called ``name``, created on ``default_plan`` (starting now) if it does not exist yet."""
    check_account_name(name)
    account = get_account(session, name)
    if account is not None:
        return account
    account = new_account(name, plan=default_plan)
    session.add(account)
    try:
        session.commit()
    except IntegrityError:
        # Another request created it between our SELECT and INSERT: use theirs.
        session.rollback()
        account = get_account(session, name)
        if account is None:
            raise
        return account
    log.info("created account %s on plan %s", name, default_plan)
    return account


def create_account(
    session: Session,
    catalogue: Catalogue,
    name: str,
    *,
    plan: str,
    password_hash: str | None = None,
    admin: bool = False,
) -> Account:
    """A new, approved account; ``AccountExists`` if the name is taken, ``UnknownPlan`` for a plan not on offer."""
    check_account_name(name)
    check_plan(catalogue, plan)
    if get_account(session, name) is not None:
        raise AccountExists(f"account {name!r} already exists")
    account = new_account(name, plan=plan, password_hash=password_hash, is_admin=admin)
    session.add(account)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AccountExists(f"account {name!r} already exists") from None
    log.info("created account %s on plan %s (admin=%s)", name, plan, admin)
    return account


def change_plan(session: Session, catalogue: Catalogue, name: str, plan: str) -> Account:
    """Move the account to ``plan``; the plan period restarts now (unless it is already on that plan)."""
    check_plan(catalogue, plan)
    account = require_account(session, name)
    if account.plan != plan:
        log.info("account %s: plan %s -> %s", name, account.plan, plan)
        account.plan = plan
        account.plan_started_at = utcnow()
        session.commit()
    return account


@dataclass(frozen=True)
class LoginResult:
    name: str
    admin: bool


class AccountPendingApproval(AccountError):
    """The password is right but an administrator has not approved the account yet."""


class AccountPasswordResetRequired(AccountError):
    """The password is right but an administrator reset it: only a reset link can set a new one."""


class AccountBeingErased(AccountError):
    """The account's erasure was requested and has not finished: every login is refused."""


def check_password(
    session: Session,
    passwords: Passwords,
    name: str,
    password: str,
    *,
    now: datetime | None = None,
) -> LoginResult | None:
    """The account if ``name`` is approved and ``password`` matches; None for a wrong password or an unknown name,
    after the same amount of work (one argon2 verification in every case).

    ``AccountPendingApproval`` when the password matched an account still awaiting approval (so only someone who
    knows the password learns that). Throttling is the caller's (``login_throttle.attempt_login``). Upgrades the
    stored hash when the hashing parameters changed.
    """
    account = get_account(session, name)
    usable = account is not None and account.password_hash is not None
    # Read, then leave the transaction before argon2: nothing is held open during the hash.
    encoded = account.password_hash if usable and account is not None else None
    session.rollback()
    matched = passwords.verify(encoded, password)
    if account is None or not usable or not matched:
        return None
    account = get_account(session, name)
    if account is None or account.password_hash != encoded:
        return None  # erased or changed while we hashed
    if passwords.needs_rehash(account.password_hash):
        account.password_hash = passwords.hash(password)
    session.commit()
    if is_being_erased(session, account):
        # A login would re-create the hub user, whose next server would re-create the home being deleted.
        raise AccountBeingErased(BEING_ERASED_MESSAGE)
    if account.password_reset_required:
        # After the argon2 check, like the approval below: only someone who knew the old password learns this.
        raise AccountPasswordResetRequired(
            "an administrator has reset your password: set a new one with the link e-mailed to you, or ask for "
            'a new link with "Forgot your password?" (/services/platform/password/forgot)'
        )
    if not account.approved:
        raise AccountPendingApproval(
            "your account awaits approval by an administrator; you can log in once it is approved"
        )
    return LoginResult(name=account.name, admin=account.is_admin)


def ensure_admin_account(
    session: Session, passwords: Passwords, name: str, password: str, *, plan: str
) -> Account:
    """Make ``name`` an approved admin whose password is ``password`` (creating the account if needed)."""
    check_account_name(name)
    account = get_account(session, name)
    if account is None:
        account = new_account(name, plan=plan, password_hash=passwords.hash(password))
        session.add(account)
        log.info("created admin account %s", name)
    elif account.password_hash is None or not passwords.verify(account.password_hash, password):
        account.password_hash = passwords.hash(password)
        log.info("admin account %s: password updated from POLARTEP_ADMIN_PASSWORD", name)
    account.is_admin = True
    account.approved = True
    session.commit()
    return account


def canonical_account_name(raw: str) -> str:
    """The account name a typed user name stands for: Unicode NFKC, case-folded, stripped, then checked.

    Names that differ only in case or Unicode form ("Alice", "ａｌｉｃｅ", "alice") are one name, so a second sign-up
    under such a variant is a duplicate, not a new account.
    """
    return check_account_name(fold_account_name(raw))
