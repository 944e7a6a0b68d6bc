"""The accounts' tables: accounts, consents, subscriptions, OIDC identities, erasures and password resets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from polartep_hub.service.orm import Base, UTCDateTime, utcnow


class Account(Base):
    """A platform account: one per JupyterHub user name, holding the plan and (for embedded login) a password hash."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # argon2 encoded hash; None for accounts that log in through OIDC or have not set a password.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    approved: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    plan: Mapped[str] = mapped_column(String(64))
    plan_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Personal data collected at registration (GDPR statement): all erased with the account.
    full_name: Mapped[str | None] = mapped_column(String(200), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None, index=True)
    organisation: Mapped[str | None] = mapped_column(String(200), default=None)
    organisation_location: Mapped[str | None] = mapped_column(String(200), default=None)
    phone: Mapped[str | None] = mapped_column(String(40), default=None)
    # "local" (embedded registration and password) or "oidc" (an identity provider vouches for the user).
    auth_source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(64), default=None)
    # Brute-force lock-out: consecutive failed logins and, once over the limit, until when logins are refused.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Passwords (password_reset.py): when the password last changed or was reset (every login session from before
    # is ended); an administrator's forced reset refuses the old password until the user sets a new one; and a
    # flag that stays set until JupyterHub has ended the sessions (so a crash or hub outage only delays that).
    credentials_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    password_reset_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    end_sessions_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    consents: Mapped[list[Consent]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )
    subscriptions: Mapped[list[AccountSubscription]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )
    plan_periods: Mapped[list[PlanPeriod]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        # No password hash here: reprs end up in logs.
        return f"<Account {self.name!r} plan={self.plan!r} admin={self.is_admin} approved={self.approved}>"


class Consent(Base):
    """One acceptance of one version of a legal document (``terms`` or ``privacy``) by an account."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "document", "version", name="uq_consents_acceptance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    document: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    account: Mapped[Account] = relationship(back_populates="consents")


class AccountSubscription(Base):
    """A catalogue subscription (development environment, ML, hosting) held by an account; ``ended_at`` once dropped.

    Rows are kept after they end, so statements can charge the months a subscription was held.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        # At most one active row per account and subscription (migration 0003); ended rows are history.
        Index(
            "uq_subscriptions_active",
            "account_id",
            "subscription",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    subscription: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    account: Mapped[Account] = relationship(back_populates="subscriptions")


class PlanPeriod(Base):
    """One stretch of time an account held one plan: written in the same transaction as every plan change
    (``plan_history.py``), so a month can be priced after the plan changed. ``ended_at`` is None for the current one.
    """

    __tablename__ = "plan_periods"
    __table_args__ = (
        # At most one current period per account.
        Index(
            "uq_plan_periods_current",
            "account_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    plan: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    account: Mapped[Account] = relationship(back_populates="plan_periods")


class Erasure(Base):
    """That an account was erased, when and at whose request; holds no personal data, only the ledger pseudonym."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    # "self" when the user erased their own account, "admin" when an administrator did.
    requested_by: Mapped[str] = mapped_column(String(16))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OIDCIdentity(Base):
    """The identity-provider subject (``iss``, ``sub``) an OIDC account belongs to: one per account and per subject.

    Binding the account to the subject is what keeps two identities from ever sharing an account when their
    usernames map to the same account name. Deleted with the account (personal data).
    """

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_oidc_identities_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PendingErasure(Base):
    """An erasure that was asked for and has not finished yet (``personal_data.py`` runs and resumes it).

    Written before any step runs and deleted with the account in the final transaction, so a service that dies half
    way finishes the erasure when it starts again. ``processors`` is the user's choice for processors they shared
    (``withdraw`` or ``transfer``, then to the account ``transfer_to``).
    """

    __tablename__ = "pending_erasures"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    # "self" or "admin", copied into the erasure log.
    requested_by: Mapped[str] = mapped_column(String(16))
    processors: Mapped[str] = mapped_column(String(16), default="withdraw")
    transfer_to: Mapped[str | None] = mapped_column(String(64), default=None)
    # Chosen at the request so that every log line of every attempt names the same pseudonym, never the account.
    pseudonym: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PasswordResetToken(Base):
    """A password-reset link: only the SHA-256 of its token is stored; single use (``used_at``), expiring."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "forgot" (asked for by the user) or "admin" (an administrator forced the reset).
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PasswordResetRequest(Base):
    """One "forgot password" request, by account and by client address, for the rate limits (kept a day)."""

    __tablename__ = "password_reset_requests"
    __table_args__ = (Index("ix_password_reset_requests_key_at", "key", "requested_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "account:<id>" or "address:<client address>".
    key: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
