"""Passwords of the embedded login after sign-up: change, an administrator's forced reset, and "forgot password".

Rules this module guarantees:

* **Change** needs the current password, checked by ``login_throttle.attempt_login`` (so wrong guesses count
  towards the client address's login throttle like failed logins), and a new one that passes the sign-up rules (``password_rules``) and differs from it.
* **Forced reset** (administrators): the old password is refused from then on (a login with it is told to use the
  link or "forgot password"; only someone who knew it learns that), and a reset link is e-mailed to the account.
* **Forgot password** answers the same whatever it is given (``request_reset`` returns nothing and raises only for
  the caller's own rate limit): a link is mailed only when the user name or e-mail belongs to an account with a
  platform password. Mail goes through the outbox (``mail_outbox``) at its next poll, so no answer waits for SMTP
  or shares the CPU with a delivery it caused.
* A reset link carries ``RESET_TOKEN_BYTES`` random bytes; only their SHA-256 is stored. It expires after
  ``POLARTEP_PASSWORD_RESET_MINUTES`` and works once: it is claimed by one conditional ``UPDATE`` in the transaction
  that sets the password, so two uses at the same moment cannot both succeed. Setting a password (any way)
  invalidates every other outstanding link of the account.
* Rate limits live in the database (``password_reset_requests``): per client address ``config.password_reset_per_hour``
  requests (``POLARTEP_PASSWORD_RESET_PER_HOUR``; over it: 429, which says nothing about accounts), per account ``PER_ACCOUNT_PER_HOUR`` mails (over it:
  the same answer, no mail).
* **Every** password change or reset ends all of the user's login sessions: in the transaction that sets the
  password, ``end_sessions_pending`` is set; ``end_sessions`` then has JupyterHub rotate the user's login-cookie id
  (every hub browser session ends at once) and delete every API and OAuth token of the user (the hub's
  ``POST /hub/api/polartep/users/{name}/end-sessions``, ``auth/platform_password.py``), asks it to stop the user's
  servers (their tokens are gone), and forgets the service's own cached identities. Only then is the flag cleared,
  so a crash or a hub outage only delays the step (``reconcile_session_ends`` retries it). This includes the
  session that made the change: the user logs in again with the new password.
* The configured administrator (``POLARTEP_ADMIN_USER``) keeps the password of ``POLARTEP_ADMIN_PASSWORD`` (restored
  at every start), so none of this applies to it; nor to accounts that log in through an identity provider.

Rejected: ``Authenticator.refresh_user`` returning False for sessions older than the change. JupyterHub 6 refreshes
per *user*, at most every ``auth_refresh_age`` seconds, and only refuses cookie-authenticated requests; its login
cookie holds the user's ``cookie_id``, shared by every browser session of the user. So after the user logs in again
(or any request refreshed the user), old sessions pass again until the next refresh, and a stolen session has that
window to create a fresh API token. Rotating ``cookie_id`` ends them all at one moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.login import LoginThrottled, LoginThrottlePolicy, attempt_login
from polartep_hub.accounts.models import Account, PasswordResetRequest, PasswordResetToken
from polartep_hub.accounts.password_rules import PasswordPolicy, password_message, password_problems
from polartep_hub.accounts.passwords import PasswordHashBusy
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.mail_outbox import InvalidMail, enqueue_mail
from polartep_hub.service.orm import utcnow

log = logging.getLogger(__name__)

RESET_TOKEN_BYTES = 32
PER_ACCOUNT_PER_HOUR = 3
_HOUR = timedelta(hours=1)
MAX_ACCOUNTS_PER_ADDRESS = 5  # accounts sharing one e-mail address that a single request mails


class PasswordError(accounts.AccountError):
    """A password request cannot be done; the message is safe to show. Its HTTP status is ``errors.status_for``: the
    ``status_code`` given here where one class covers several answers, else the table's."""

    def __init__(self, message: str, status_code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}


class ResetLinkInvalid(PasswordError):
    """The link's token is not one of ours (400)."""


class ResetLinkSpent(PasswordError):
    """The link was used already, or expired (410)."""


def token_hash(token: str) -> str:
    """What is stored for a reset token (the token is random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def reset_url(context: ServiceContext, token: str) -> str:
    return f"{context.config.public_url}{context.config.prefix}password/reset?token={token}"


def forgot_url(context: ServiceContext) -> str:
    return f"{context.config.prefix}password/forgot"


def _policy(context: ServiceContext) -> PasswordPolicy:
    return PasswordPolicy(min_length=context.config.password_min_length)


def _check_new_password(context: ServiceContext, name: str, password: str) -> None:
    problems = password_problems(password, name, _policy(context))
    if problems:
        raise PasswordError(
            "new_password: " + password_message(problems).removeprefix("password: "), status_code=422
        )


def _managed_here(context: ServiceContext, account: Account | None) -> bool:
    """Whether the account's password is the platform's to change (not OIDC, not the configured administrator)."""
    return (
        account is not None
        and context.config.auth == "platform"
        and account.auth_source == "local"
        and account.name != context.config.admin_user
    )


def can_reset_password(context: ServiceContext, account: Account) -> bool:
    """Whether an administrator may force a reset of ``account``'s password (shown on the admin page)."""
    return _managed_here(context, account)


def _refuse_unmanaged(context: ServiceContext, account: Account) -> None:
    if account.name == context.config.admin_user:
        raise PasswordError(
            f"the password of {account.name!r} is set by POLARTEP_ADMIN_PASSWORD (restored at every start); "
            "change it there",
            status_code=409,
        )
    raise PasswordError(
        "this account logs in through the identity provider; change the password there", status_code=409
    )


def _new_token(
    session: Session, context: ServiceContext, account: Account, reason: str, now: datetime
) -> str:
    token = secrets.token_urlsafe(RESET_TOKEN_BYTES)
    session.add(
        PasswordResetToken(
            account_id=account.id,
            token_hash=token_hash(token),
            reason=reason,
            created_at=now,
            expires_at=now + timedelta(minutes=context.config.password_reset_minutes),
        )
    )
    return token


def _reset_mail(context: ServiceContext, account: Account, token: str, *, forced: bool) -> tuple[str, str]:
    minutes = context.config.password_reset_minutes
    why = (
        "An administrator has reset the password of your Polar TEP account; your old password no longer works."
        if forced
        else "Someone (hopefully you) asked to reset the password of your Polar TEP account."
    )
    body = (
        f"Hello {account.name},\n\n{why}\n\n"
        f"To choose a new password, open this link within {minutes} minutes (it works once):\n\n"
        f"  {reset_url(context, token)}\n\n"
        "Setting the new password ends every session logged in as you.\n"
        + (
            ""
            if forced
            else "If you did not ask for this, ignore this message: your password stays as it is.\n"
        )
        + f"\nAfter the link expires you can ask for a new one at {context.config.public_url}{forgot_url(context)}\n"
    )
    return "Polar TEP: reset your password", body


def _spend_other_links(session: Session, account_id: int, now: datetime) -> None:
    session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.account_id == account_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )


def _mark_credentials_changed(session: Session, account: Account, now: datetime) -> None:
    account.credentials_changed_at = now
    account.end_sessions_pending = True
    _spend_other_links(session, account.id, now)


# --- change ---------------------------------------------------------------------------------------------------


def change_password(context: ServiceContext, name: str, current: str, new: str, address: str) -> bool:
    """Set ``name``'s password to ``new`` after checking ``current`` (throttled like a login from ``address``, the
    client's address); then end every session of the user.

    Returns whether the sessions were ended already (False: JupyterHub did not answer; it is retried).
    """
    with context.session() as session:
        account = accounts.require_account(session, name)
        if not _managed_here(context, account) or account.password_hash is None:
            _refuse_unmanaged(context, account)
    _check_new_password(context, name, new)
    if new == current:
        raise PasswordError("new_password: choose a password different from the current one", status_code=422)
    policy = LoginThrottlePolicy.from_config(context.config)
    with context.session() as session:
        try:
            matched = attempt_login(session, context.passwords, name, current, address, policy)
        except LoginThrottled as throttled:
            raise PasswordError(str(throttled), status_code=429) from None
        except PasswordHashBusy as busy:
            raise PasswordError(str(busy), status_code=503) from None
        except (accounts.AccountPendingApproval, accounts.AccountPasswordResetRequired) as error:
            raise PasswordError(str(error), status_code=409) from None
        if matched is None:
            raise PasswordError("current_password: this is not your current password", status_code=403)
    new_hash = context.passwords.hash(new)  # outside any transaction: argon2 needs no database
    with context.session() as session:
        account = accounts.require_account(session, name)
        account.password_hash = new_hash
        _mark_credentials_changed(session, account, utcnow())
        session.commit()
    log.info("account %s changed its password; ending its sessions", name)
    return end_sessions(context, name)


# --- forced reset -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForcedReset:
    name: str
    mailed_to: str | None  # None: the account has no e-mail address, so no link could be sent
    sessions_ended: bool


def force_reset(context: ServiceContext, name: str, by: str) -> ForcedReset:
    """An administrator's reset: the old password stops working, sessions end, a reset link is mailed."""
    now = utcnow()
    with context.session() as session:
        account = accounts.require_account(session, name)
        if not _managed_here(context, account):
            _refuse_unmanaged(context, account)
        account.password_reset_required = True
        _mark_credentials_changed(session, account, now)
        mailed_to = None
        if account.email:
            token = _new_token(session, context, account, "admin", now)
            subject, body = _reset_mail(context, account, token, forced=True)
            try:
                enqueue_mail(session, account.email, subject, body, account_id=account.id)
                mailed_to = account.email
            except InvalidMail:
                log.warning("account %s: its e-mail address cannot be used; no reset link sent", name)
        session.commit()
    _wake_outbox(context)
    log.info(
        "password of %s reset by %s (link %s)", name, by, "mailed" if mailed_to else "not sent: no e-mail"
    )
    return ForcedReset(name=name, mailed_to=mailed_to, sessions_ended=end_sessions(context, name))


# --- forgot password ----------------------------------------------------------------------------------------------


def _recent(session: Session, key: str, now: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(PasswordResetRequest)
            .where(PasswordResetRequest.key == key, PasswordResetRequest.requested_at > now - _HOUR)
        )
        or 0
    )


def _oldest_recent(session: Session, key: str, now: datetime) -> datetime | None:
    return session.scalar(
        select(func.min(PasswordResetRequest.requested_at)).where(
            PasswordResetRequest.key == key, PasswordResetRequest.requested_at > now - _HOUR
        )
    )


def _accounts_for(session: Session, login: str) -> list[Account]:
    login = login.strip()
    if "@" in login:
        return list(
            session.scalars(
                select(Account)
                .where(func.lower(Account.email) == login.casefold())
                .order_by(Account.id)
                .limit(MAX_ACCOUNTS_PER_ADDRESS)
            )
        )
    try:
        name = accounts.canonical_account_name(login)
    except accounts.InvalidAccountName:
        return []
    account = accounts.get_account(session, name)
    return [account] if account is not None else []


def request_reset(context: ServiceContext, login: str, address: str) -> None:
    """Mail a reset link to the account(s) ``login`` (a user name or an e-mail address) names, if any.

    Returns nothing whatever happened; raises only ``PasswordError`` (429) when ``address`` asked too often.
    """
    now = utcnow()
    address_key = f"address:{address[:100]}"
    with context.session() as session:
        # Old rows are no use to any limit; deleting them here keeps the table small without another task.
        session.execute(
            PasswordResetRequest.__table__.delete().where(
                PasswordResetRequest.requested_at < now - 24 * _HOUR
            )
        )
        limit = context.config.password_reset_per_hour
        if limit and _recent(session, address_key, now) >= limit:
            oldest = _oldest_recent(session, address_key, now) or now
            wait = max(1, int((oldest + _HOUR - now).total_seconds()) + 1)
            session.commit()
            raise PasswordError(
                f"too many password-reset requests from your address; try again in {wait // 60 + 1} minutes",
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        session.add(PasswordResetRequest(key=address_key, requested_at=now))
        mailed = 0
        for account in _accounts_for(session, login[:300]):
            if not _managed_here(context, account) or not account.email:
                continue
            account_key = f"account:{account.id}"
            if _recent(session, account_key, now) >= PER_ACCOUNT_PER_HOUR:
                log.warning(
                    "password reset for %s not mailed: %d requests in the last hour",
                    account.name,
                    PER_ACCOUNT_PER_HOUR,
                )
                continue
            session.add(PasswordResetRequest(key=account_key, requested_at=now))
            token = _new_token(session, context, account, "forgot", now)
            subject, body = _reset_mail(context, account, token, forced=False)
            try:
                enqueue_mail(session, account.email, subject, body, account_id=account.id)
            except InvalidMail:
                continue
            mailed += 1
        session.commit()
    if mailed:
        # No wake-up of the outbox here: delivering at once would compete with this very answer for the CPU and
        # the database and make a known name measurably slower; the outbox's next poll (seconds) sends it.
        log.info("password reset requested: %d link(s) queued", mailed)


@dataclass(frozen=True)
class LinkStatus:
    name: str
    expires_at: datetime


def check_link(context: ServiceContext, token: str) -> LinkStatus:
    """The account a reset link belongs to, if it can still be used; ``ResetLinkInvalid``/``ResetLinkSpent``."""
    with context.session() as session:
        row = session.scalar(
            select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash(token))
        )
        if row is None:
            raise ResetLinkInvalid(
                f"this password-reset link is not valid; ask for a new one at {forgot_url(context)}"
            )
        if row.used_at is not None:
            raise ResetLinkSpent(
                "this password-reset link was used already (each link works once); "
                f"ask for a new one at {forgot_url(context)}"
            )
        if row.expires_at <= utcnow():
            raise ResetLinkSpent(
                f"this password-reset link has expired; ask for a new one at {forgot_url(context)}"
            )
        account = session.get(Account, row.account_id)
        assert account is not None  # the foreign key deletes links with their account
        return LinkStatus(name=account.name, expires_at=row.expires_at)


def complete_reset(context: ServiceContext, token: str, new: str) -> str:
    """Set the password of the link's account (rules apply), spend the link, end every session; the account name."""
    link = check_link(context, token)
    _check_new_password(context, link.name, new)
    new_hash = context.passwords.hash(new)
    now = utcnow()
    with context.session() as session:
        # The claim: only one transaction can turn this link from unused to used.
        claimed = session.execute(
            update(PasswordResetToken)
            .where(
                PasswordResetToken.token_hash == token_hash(token),
                PasswordResetToken.used_at.is_(None),
                PasswordResetToken.expires_at > now,
            )
            .values(used_at=now)
        ).rowcount
        if claimed != 1:
            session.rollback()
            check_link(context, token)  # says why (used meanwhile, or just expired)
            raise ResetLinkSpent("this password-reset link cannot be used any more")
        account = accounts.require_account(session, link.name)
        account.password_hash = new_hash
        account.password_reset_required = False
        account.failed_logins = 0
        account.locked_until = None
        _mark_credentials_changed(session, account, now)
        session.commit()
    log.info("account %s set a new password with a reset link; ending its sessions", link.name)
    end_sessions(context, link.name)
    return link.name


# --- ending sessions ----------------------------------------------------------------------------------------------


def end_sessions(context: ServiceContext, name: str) -> bool:
    """Have JupyterHub end every session and token of ``name`` and stop its servers; clear the pending flag.

    True when done; False when JupyterHub could not be asked (the flag stays, ``reconcile_session_ends`` retries).
    """
    with context.session() as session:
        account = accounts.get_account(session, name)
        if account is None or not account.end_sessions_pending:
            return True
        changed_at = account.credentials_changed_at
        account_id = account.id
    if context.hub_api is not None:
        try:
            context.hub_api.end_sessions(name)
            context.hub_api.request_stop_servers(name)
        except HubApiError as error:
            log.warning("could not end the sessions of %s yet (%s); will retry", name, error)
            return False
    forget = getattr(context.identity_provider, "forget_cached_identities", None)
    if forget is not None:
        forget()
    with context.session() as session:
        # Only if no newer change came in meanwhile: that one needs its own round.
        session.execute(
            update(Account)
            .where(Account.id == account_id, Account.credentials_changed_at == changed_at)
            .values(end_sessions_pending=False)
        )
        session.commit()
    log.info("ended every session and token of %s", name)
    return True


def pending_session_ends(context: ServiceContext) -> list[str]:
    with context.session() as session:
        return list(session.scalars(select(Account.name).where(Account.end_sessions_pending.is_(True))))


async def reconcile_session_ends(context: ServiceContext, *, interval: float = 10.0) -> None:
    """Forever: end the sessions of accounts whose password changed but whose sessions JupyterHub did not end yet."""
    while True:
        try:
            for name in await asyncio.to_thread(pending_session_ends, context):
                await asyncio.to_thread(end_sessions, context, name)
        except Exception:  # the loop must outlive a database hiccup; the next round tries again
            log.exception("ending pending sessions failed")
        await asyncio.sleep(interval)


def _wake_outbox(context: ServiceContext) -> None:
    outbox = getattr(context, "outbox", None)
    if outbox is not None:
        outbox.wake()
