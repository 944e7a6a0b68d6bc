"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd), collecting every message it accepts.

``with SMTPTestServer() as server: ...``; point the platform at it with ``server.platform_env()``; wait for mail with
``server.wait_for(to=..., timeout=...)``. ``stop()``/``start()`` take it down and up again on the same port (the
outbox's retries are tested that way).
"""

from __future__ import annotations

import email
import re
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller

from tests.harness import free_port


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    to: tuple[str, ...]
    subject: str
    body: str

    def link(self, pattern: str = r"https?://\S+/password/reset\?token=\S+") -> str:
        """The first URL in the body matching ``pattern`` (the reset link, by default)."""
        match = re.search(pattern, self.body)
        assert match, f"no link in the mail: {self.body!r}"
        return match.group(0)


class _Collector:
    def __init__(self, server: SMTPTestServer) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        message: EmailMessage = email.message_from_bytes(envelope.content, policy=default_policy)  # type: ignore[assignment]
        part = message.get_body(preferencelist=("plain",))
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            to=tuple(envelope.rcpt_tos),
            subject=str(message["Subject"]),
            body=part.get_content() if part is not None else "",
        )
        with self.server.arrived:
            self.server.messages.append(mail)
            self.server.arrived.notify_all()
        return "250 Message accepted for delivery"


class SMTPTestServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.arrived = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SMTPTestServer:
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def platform_env(self) -> dict[str, str]:
        return {
            "POLARTEP_SMTP_HOST": "127.0.0.1",
            "POLARTEP_SMTP_PORT": str(self.port),
            "POLARTEP_SMTP_SECURITY": "none",
            "POLARTEP_MAIL_FROM": "noreply@polartep.test",
        }

    def to(self, address: str) -> list[ReceivedMail]:
        with self.arrived:
            return [m for m in self.messages if address in m.to]

    def wait_for(self, to: str, count: int = 1, timeout: float = 30) -> ReceivedMail:
        """The ``count``-th message to ``to`` (waiting up to ``timeout`` seconds for it)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                received = [m for m in self.messages if to in m.to]
                if len(received) >= count:
                    return received[count - 1]
                left = deadline - time.monotonic()
                assert left > 0, f"no mail #{count} to {to} within {timeout} s (got {len(received)})"
                self.arrived.wait(left)
