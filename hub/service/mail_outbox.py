"""The platform's durable mail outbox: e-mail is stored in the database with the change it belongs to, and a
background task delivers it over SMTP with retries.

Use ``enqueue_mail(session, to, subject, body)`` inside the transaction that decides to write (a reset token, later a
quota warning) and commit; then ``MailOutbox.wake()`` so it goes out at once. Rules this module guarantees:

* A message exists if and only if the transaction that enqueued it committed: nothing is sent for a change that was
  rolled back, and nothing is lost when the service is killed (the row stays until the SMTP server accepted it).
* Delivery is at least once: a row is deleted only after the server accepted the message; a crash between the two
  sends it again at the next start (better than losing a reset link).
* Failures are retried with exponential backoff (``RETRY_BASE_S`` doubling, at most ``RETRY_MAX_S``); after
  ``MAX_ATTEMPTS`` attempts, or when the server refuses the recipient for good (5xx), the row is marked
  ``failed_at`` and kept for the operator (logged once). Requests never wait for SMTP.
* Without an SMTP host (``POLARTEP_SMTP_HOST``) nothing is sent: each message is kept in the outbox and logged once
  with its id, recipient and subject, never its body (which may hold a reset link); setting a host later and
  restarting delivers them. ``polartep check`` warns about this.
* Logs never contain a message body or the SMTP password.

Rejected: sending from the request (a slow or down SMTP server would slow the answer and reveal, by timing, whether
"forgot password" found an account); a queue service (one more moving part, when the database already gives us
transactions and durability).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.service.config import MailSettings
from polartep_hub.service.models import OutboxMail
from polartep_hub.service.orm import utcnow

log = logging.getLogger(__name__)

RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0
MAX_ATTEMPTS = 12
POLL_S = 2.0
BATCH = 20
SMTP_TIMEOUT_S = 30.0


class InvalidMail(ValueError):
    """A message that cannot be sent as given (bad address, header injection); nothing was stored."""


def _check_header(name: str, value: str, limit: int) -> str:
    if not value or len(value) > limit or any(c in value for c in "\r\n\0"):
        raise InvalidMail(f"{name}: one line of at most {limit} characters")
    return value


def enqueue_mail(
    session: Session, to: str, subject: str, body: str, *, account_id: int | None = None
) -> OutboxMail:
    """Add a message to the outbox in ``session``'s transaction (the caller commits). ``account_id`` ties it to the
    account it concerns, so erasing the account deletes it unsent."""
    _check_header("to", to, 254)
    if "@" not in to or " " in to:
        raise InvalidMail("to: one e-mail address")
    _check_header("subject", subject, 200)
    mail = OutboxMail(
        account_id=account_id, to_address=to, subject=subject, body=body, next_attempt_at=utcnow()
    )
    session.add(mail)
    return mail


@dataclass(frozen=True)
class _Due:
    id: int
    to: str
    subject: str
    body: str
    attempts: int


def _backoff(attempts: int) -> float:
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))


def send_smtp(settings: MailSettings, to: str, subject: str, body: str, message_id: int) -> None:
    """Hand one message to the SMTP server (blocking); raises ``smtplib.SMTPException`` or ``OSError``."""
    message = EmailMessage()
    message["From"] = settings.from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(
        idstring=f"outbox-{message_id}", domain=settings.from_address.split("@")[-1]
    )
    message.set_content(body)
    context = ssl.create_default_context()
    if settings.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=SMTP_TIMEOUT_S, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_S)
    with client:
        if settings.security == "starttls":
            client.starttls(context=context)
        if settings.user:
            client.login(settings.user, settings.password)
        client.send_message(message)


class MailOutbox:
    """Delivers the outbox; one per service process (``run`` is its background task)."""

    def __init__(self, sessions: sessionmaker[Session], settings: MailSettings, *, sender=send_smtp) -> None:
        self._sessions = sessions
        self.settings = settings
        self._sender = sender
        self._wake = asyncio.Event()
        self._announced: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Deliver now instead of at the next poll (call after committing an enqueued message; any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Deliver due messages forever: at start, after each ``wake()`` and every ``POLL_S`` seconds."""
        self._loop = asyncio.get_running_loop()
        if not self.settings.configured:
            log.warning(
                "no SMTP host configured (POLARTEP_SMTP_HOST): e-mail such as password-reset links stays in the "
                "outbox table mail_outbox and is not sent"
            )
        while True:
            try:
                while await asyncio.to_thread(self.deliver_due) == BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the mail outbox pass failed; trying again in %.0f s", POLL_S)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
            except TimeoutError:
                pass
            self._wake.clear()

    def deliver_due(self) -> int:
        """One pass (blocking): try every due message once; returns how many were due."""
        now = utcnow()
        with self._sessions() as session:
            rows = session.scalars(
                select(OutboxMail)
                .where(OutboxMail.failed_at.is_(None), OutboxMail.next_attempt_at <= now)
                .order_by(OutboxMail.id)
                .limit(BATCH)
            ).all()
            due = [_Due(r.id, r.to_address, r.subject, r.body, r.attempts) for r in rows]
        if not self.settings.configured:
            for mail in due:
                if mail.id not in self._announced:
                    self._announced.add(mail.id)
                    log.warning(
                        "mail #%d to %s (%r) kept in the outbox: no SMTP host configured",
                        mail.id,
                        mail.to,
                        mail.subject,
                    )
            return 0
        for mail in due:
            self._deliver(mail)
        return len(due)

    def _deliver(self, mail: _Due) -> None:
        try:
            self._sender(self.settings, mail.to, mail.subject, mail.body, mail.id)
        except (smtplib.SMTPException, OSError) as error:
            permanent = isinstance(error, smtplib.SMTPRecipientsRefused) or (
                isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600
            )
            self._failed(mail, f"{type(error).__name__}: {str(error)[:300]}", permanent=permanent)
            return
        with self._sessions() as session:
            row = session.get(OutboxMail, mail.id)
            if row is not None:
                session.delete(row)
                session.commit()
        log.info("mail #%d to %s (%r) delivered", mail.id, mail.to, mail.subject)

    def _failed(self, mail: _Due, reason: str, *, permanent: bool) -> None:
        attempts = mail.attempts + 1
        with self._sessions() as session:
            row = session.get(OutboxMail, mail.id)
            if row is None:
                return
            row.attempts = attempts
            row.last_error = reason[:500]
            if permanent or attempts >= MAX_ATTEMPTS:
                row.failed_at = utcnow()
                log.error(
                    "mail #%d to %s: giving up after %d attempts: %s", mail.id, mail.to, attempts, reason
                )
            else:
                delay = _backoff(attempts)
                row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                log.warning(
                    "mail #%d to %s: attempt %d failed (%s); next in %.0f s",
                    mail.id,
                    mail.to,
                    attempts,
                    reason,
                    delay,
                )
            session.commit()
