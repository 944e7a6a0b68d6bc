"""The platform service's own tables: the durable mail outbox and the fixed-window rate counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from polartep_hub.service.orm import Base, UTCDateTime, utcnow


class OutboxMail(Base):
    """An e-mail waiting to be delivered by the outbox (``mail_outbox.py``); deleted once the SMTP server took it.

    ``account_id`` ties a message to the account it is about, so erasing the account deletes its unsent mail.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), default=None, index=True
    )
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    # Set when delivery was given up (too many attempts, or the server refused the address for good).
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RateCounter(Base):
    """One fixed-window counter of ``rate_limits.py`` (login throttling, sign-ups per address).

    ``key_digest`` is a SHA-256 digest of the counter's scope and subject (client address, user name), so no
    address or name is stored in the clear; a row is meaningless once ``window_ends_at`` has passed and is deleted.
    """

    __tablename__ = "rate_counters"

    key_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
