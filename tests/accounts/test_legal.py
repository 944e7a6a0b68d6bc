"""Versioned legal documents and consents.

Specification: the shipped folder has a terms and a privacy document; the version that sorts last is current;
publishing a newer version makes an account that accepted the old one miss the new one; accepting twice stores one
row; an unusable folder is refused with a message naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts.legal import (
    DOCUMENT_KINDS,
    LegalDocumentsError,
    LegalLibrary,
    missing_consents,
    record_consents,
)
from polartep_hub.accounts.models import Account, Consent
from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.service.orm import utcnow


def _write(directory: Path, kind: str, version: str, text: str = "text") -> None:
    (directory / kind).mkdir(parents=True, exist_ok=True)
    (directory / kind / f"{version}.md").write_text(text, encoding="utf-8")


def test_the_shipped_documents_load_with_a_current_version_of_each_kind():
    library = LegalLibrary.load()
    assert set(library.current_versions()) == set(DOCUMENT_KINDS)
    for kind in DOCUMENT_KINDS:
        assert library.current(kind).text.startswith("# ")


def test_the_version_that_sorts_last_is_current(tmp_path):
    for version in ("2025-01-01", "2026-03-01", "2025-06-30"):
        _write(tmp_path, "terms", version)
    _write(tmp_path, "privacy", "1")
    library = LegalLibrary.load(tmp_path)
    assert library.current("terms").version == "2026-03-01"
    assert library.get("terms", "2025-01-01") is not None
    assert library.get("terms", "1999") is None


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: _write(d, "terms", "1"), "privacy"),
        (lambda d: (_write(d, "terms", "1"), _write(d, "privacy", "has space")), "version"),
        (
            lambda d: (
                _write(d, "terms", "1"),
                (d / "privacy").mkdir(),
                (d / "privacy" / "1.md").write_bytes(b"\xff"),
            ),
            "UTF-8",
        ),
    ],
    ids=["missing-kind", "bad-version-name", "not-utf8"],
)
def test_an_unusable_folder_is_refused_naming_the_fix(tmp_path, setup, fragment):
    setup(tmp_path)
    with pytest.raises(LegalDocumentsError, match=fragment):
        LegalLibrary.load(tmp_path)


def test_a_new_version_must_be_accepted_again_and_acceptance_is_recorded_once(tmp_path, database_url):
    _write(tmp_path, "terms", "1")
    _write(tmp_path, "privacy", "1")
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            account = Account(name="alice", plan="trial", plan_started_at=utcnow())
            session.add(account)
            session.commit()
            library = LegalLibrary.load(tmp_path)
            assert [d.kind for d in missing_consents(session, account, library)] == ["terms", "privacy"]

            record_consents(session, account, missing_consents(session, account, library))
            record_consents(session, account, [library.current("terms")])
            session.commit()
            assert missing_consents(session, account, library) == []
            assert session.scalar(select(func.count()).select_from(Consent)) == 2

            _write(tmp_path, "terms", "2")
            bumped = LegalLibrary.load(tmp_path)
            assert [(d.kind, d.version) for d in missing_consents(session, account, bumped)] == [
                ("terms", "2")
            ]
    finally:
        engine.dispose()
