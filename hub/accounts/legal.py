"""Versioned legal documents (terms and conditions, GDPR privacy statement) and who has accepted which version.

Rules this module guarantees:

* The documents are files ``<legal dir>/<kind>/<version>.md`` for each kind in ``DOCUMENT_KINDS``; a version is a
  file name without ``.md`` (``YYYY-MM-DD`` or any name that sorts in publication order). The current version of a
  kind is the one that sorts last, so publishing a new version is adding a file, and every account must then accept
  it again before its next spawn.
* A consent is a row (account, kind, version, time) in ``consents``; accepting the same version twice stores one row.
* ``LegalLibrary.load`` checks the folder once, at start-up, and raises ``LegalDocumentsError`` naming what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account, Consent
from polartep_hub.service.orm import utcnow

DOCUMENT_KINDS: tuple[str, ...] = ("terms", "privacy")
DOCUMENT_TITLES = {"terms": "Terms and conditions", "privacy": "Privacy statement (GDPR)"}
SHIPPED_LEGAL_DIR = Path(__file__).with_name("legal")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


class LegalDocumentsError(ValueError):
    """The legal documents folder is unusable; the message names the folder or file and what to fix."""


@dataclass(frozen=True)
class LegalDocument:
    """One version of one legal document."""

    kind: str
    version: str
    text: str  # Markdown source; pages show it escaped, never as raw HTML

    @property
    def title(self) -> str:
        return DOCUMENT_TITLES[self.kind]


@dataclass(frozen=True)
class LegalLibrary:
    """Every version of every legal document, and which one of each is current."""

    documents: dict[str, dict[str, LegalDocument]]  # kind -> version -> document, oldest first

    @classmethod
    def load(cls, directory: Path | None = None) -> LegalLibrary:
        """Read ``directory`` (the shipped documents when None)."""
        directory = directory or SHIPPED_LEGAL_DIR
        documents: dict[str, dict[str, LegalDocument]] = {}
        for kind in DOCUMENT_KINDS:
            folder = directory / kind
            files = sorted(folder.glob("*.md")) if folder.is_dir() else []
            if not files:
                raise LegalDocumentsError(
                    f"{folder}: no {DOCUMENT_TITLES[kind].lower()} found; add a file <version>.md there"
                )
            versions: dict[str, LegalDocument] = {}
            for path in files:
                version = path.name[: -len(".md")]
                if not _VERSION.fullmatch(version):
                    raise LegalDocumentsError(
                        f"{path}: the version (file name without .md) must be 1-32 characters of letters, "
                        "digits, '.', '_' and '-', starting with a letter or digit"
                    )
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as error:
                    raise LegalDocumentsError(f"{path}: cannot be read as UTF-8 text ({error})") from None
                versions[version] = LegalDocument(kind=kind, version=version, text=text)
            documents[kind] = versions
        return cls(documents=documents)

    def current(self, kind: str) -> LegalDocument:
        """The newest version of ``kind``."""
        versions = self.documents[kind]
        return versions[next(reversed(versions))]

    def current_versions(self) -> dict[str, str]:
        """kind -> current version, for every kind."""
        return {kind: self.current(kind).version for kind in DOCUMENT_KINDS}

    def get(self, kind: str, version: str) -> LegalDocument | None:
        return self.documents.get(kind, {}).get(version)


def accepted_versions(session: Session, account: Account) -> dict[str, set[str]]:
    """kind -> the versions ``account`` has accepted."""
    accepted: dict[str, set[str]] = {kind: set() for kind in DOCUMENT_KINDS}
    for consent in session.scalars(select(Consent).where(Consent.account_id == account.id)):
        accepted.setdefault(consent.document, set()).add(consent.version)
    return accepted


def missing_consents(session: Session, account: Account, library: LegalLibrary) -> list[LegalDocument]:
    """The current documents ``account`` has not accepted yet (empty when it may spawn)."""
    accepted = accepted_versions(session, account)
    return [
        library.current(kind)
        for kind in DOCUMENT_KINDS
        if library.current(kind).version not in accepted[kind]
    ]


def record_consents(session: Session, account: Account, documents: list[LegalDocument]) -> None:
    """Record that ``account`` accepts ``documents`` now. Adds to the session; the caller commits."""
    accepted = accepted_versions(session, account)
    now = utcnow()
    for document in documents:
        if document.version not in accepted[document.kind]:
            session.add(
                Consent(
                    account_id=account.id, document=document.kind, version=document.version, accepted_at=now
                )
            )
