"""The mail outbox against a real SMTP server (aiosmtpd on 127.0.0.1): a message exists only if its transaction
committed, it survives a restart of the deliverer, a server that is down is retried with backoff, and a message is
deleted only once the server took it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from polartep_hub.service.config import MailSettings
from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.service.mail_outbox import RETRY_BASE_S, InvalidMail, MailOutbox, enqueue_mail
from polartep_hub.service.models import OutboxMail
from polartep_hub.service.orm import utcnow
from tests.mail_server import SMTPTestServer


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def settings_for(server: SMTPTestServer) -> MailSettings:
    return MailSettings(
        host="127.0.0.1", port=server.port, security="none", from_address="noreply@polartep.test"
    )


def test_a_committed_message_is_delivered_and_removed(sessions):
    with SMTPTestServer() as server, sessions() as session:
        enqueue_mail(session, "ada@polar.example", "Hello", "A body with a link https://x/reset?token=abc\n")
        session.commit()
        assert MailOutbox(sessions, settings_for(server)).deliver_due() == 1
        mail = server.wait_for("ada@polar.example")
        assert (mail.subject, mail.mail_from) == ("Hello", "noreply@polartep.test")
        assert "token=abc" in mail.body
        assert session.scalars(select(OutboxMail)).all() == []


def test_a_rolled_back_message_is_never_sent(sessions):
    with SMTPTestServer() as server, sessions() as session:
        enqueue_mail(session, "bob@polar.example", "Never", "body")
        session.rollback()
        assert MailOutbox(sessions, settings_for(server)).deliver_due() == 0
        assert server.messages == []


def test_a_server_that_is_down_is_retried_with_backoff_and_nothing_is_lost(sessions):
    server = SMTPTestServer()  # not started: connections are refused
    with sessions() as session:
        enqueue_mail(session, "cy@polar.example", "Later", "body")
        session.commit()
    first = MailOutbox(sessions, settings_for(server))
    assert first.deliver_due() == 1
    with sessions() as session:
        row = session.scalars(select(OutboxMail)).one()
        assert row.attempts == 1
        assert row.last_error.startswith("ConnectionRefusedError")
        wait = (row.next_attempt_at - utcnow()).total_seconds()
        assert RETRY_BASE_S - 5 < wait <= RETRY_BASE_S
        assert first.deliver_due() == 0  # not due yet
        row.next_attempt_at = utcnow() - timedelta(seconds=1)  # as if the backoff had passed
        session.commit()
    with server:
        # A new deliverer (a restarted service) finds the message in the database and sends it.
        assert MailOutbox(sessions, settings_for(server)).deliver_due() == 1
        assert server.wait_for("cy@polar.example").subject == "Later"
    with sessions() as session:
        assert session.scalars(select(OutboxMail)).all() == []


def test_without_an_smtp_host_mail_stays_in_the_outbox_and_the_log_has_no_body(sessions, caplog):
    with sessions() as session:
        enqueue_mail(session, "di@polar.example", "Reset", "secret link https://x/reset?token=s3cr3t")
        session.commit()
    outbox = MailOutbox(sessions, MailSettings())
    assert outbox.deliver_due() == 0
    assert outbox.deliver_due() == 0
    with sessions() as session:
        assert session.scalars(select(OutboxMail.to_address)).all() == ["di@polar.example"]
    kept = [r.getMessage() for r in caplog.records if "kept in the outbox" in r.getMessage()]
    assert len(kept) == 1  # announced once, not at every pass
    assert "di@polar.example" in kept[0] and "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    "to, subject", [("a@b\r\nBcc: x@y", "s"), ("no-at-sign", "s"), ("a@b.c", "x\nBcc: y")]
)
def test_header_injection_and_bad_addresses_are_refused(sessions, to, subject):
    with sessions() as session, pytest.raises(InvalidMail):
        enqueue_mail(session, to, subject, "body")
