"""Accounts and passwords below the HTTP layer: the admin account at start-up, lazy creation races, equal-work checks."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.passwords import Passwords
from polartep_hub.service.db import make_engine, make_sessionmaker


class CountingHasher(PasswordHasher):
    """argon2 with the cheapest parameters, counting the verifications it does."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verifications = 0

    def verify(self, hash, password):  # noqa: A002 (argon2's own signature)
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def session(database_url) -> Session:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def passwords(hasher) -> Passwords:
    return Passwords(hasher)


def test_ensure_admin_creates_an_approved_admin(session, passwords):
    account = accounts.ensure_admin_account(session, passwords, "admin", "first-password", plan="trial")
    assert account.is_admin and account.approved and account.plan == "trial"
    assert accounts.check_password(session, passwords, "admin", "first-password") == accounts.LoginResult(
        "admin", True
    )


def test_ensure_admin_keeps_the_hash_while_the_password_is_unchanged(session, passwords):
    first = accounts.ensure_admin_account(
        session, passwords, "admin", "first-password", plan="trial"
    ).password_hash
    again = accounts.ensure_admin_account(
        session, passwords, "admin", "first-password", plan="trial"
    ).password_hash
    assert again == first


def test_ensure_admin_follows_a_changed_password(session, passwords):
    accounts.ensure_admin_account(session, passwords, "admin", "first-password", plan="trial")
    accounts.ensure_admin_account(session, passwords, "admin", "second-password", plan="trial")
    assert accounts.check_password(session, passwords, "admin", "first-password") is None
    assert accounts.check_password(session, passwords, "admin", "second-password") is not None


def test_ensure_admin_promotes_an_existing_account(session, passwords, catalogue):
    accounts.create_account(session, catalogue, "boss", plan="standard")
    account = accounts.get_account(session, "boss")
    account.approved = False
    session.commit()
    account = accounts.ensure_admin_account(session, passwords, "boss", "the-password", plan="trial")
    assert account.is_admin and account.approved
    assert account.plan == "standard"  # an existing plan is kept


def test_concurrent_first_sight_creates_one_account(session, database_url, monkeypatch):
    # Another request inserts "eve" between our SELECT and our INSERT.
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as other:
        accounts.get_or_create_account(other, "eve", default_plan="standard")
    engine.dispose()
    real_get_account = accounts.get_account
    calls = []

    def get_account_missing_once(session, name):
        calls.append(name)
        return None if len(calls) == 1 else real_get_account(session, name)

    monkeypatch.setattr(accounts, "get_account", get_account_missing_once)

    account = accounts.get_or_create_account(session, "eve", default_plan="trial")

    # The race branch ran: the first look-up missed, the insert hit the constraint, the second look-up found eve.
    assert calls == ["eve", "eve"]
    assert account.plan == "standard"
    assert accounts.count_accounts(session) == 1


@pytest.mark.parametrize("case", ["unknown", "unapproved", "no password", "wrong password", "right password"])
def test_every_password_check_costs_one_argon2_verification(session, passwords, hasher, catalogue, case):
    accounts.create_account(session, catalogue, "erin", plan="trial", password_hash=passwords.hash("right"))
    accounts.create_account(session, catalogue, "frank", plan="trial", password_hash=passwords.hash("right"))
    accounts.get_account(session, "frank").approved = False
    accounts.create_account(session, catalogue, "gina", plan="trial")
    session.commit()
    passwords.verify(None, "warm up the dummy hash")
    hasher.verifications = 0

    name, password = {
        "unknown": ("nobody", "right"),
        "unapproved": ("frank", "right"),
        "no password": ("gina", "right"),
        "wrong password": ("erin", "wrong"),
        "right password": ("erin", "right"),
    }[case]
    if case == "unapproved":
        # The right password of an account awaiting approval: said so, since the caller knows the password.
        with pytest.raises(accounts.AccountPendingApproval):
            accounts.check_password(session, passwords, name, password)
    else:
        result = accounts.check_password(session, passwords, name, password)
        assert (result is not None) == (case == "right password")
    assert hasher.verifications == 1


def test_a_corrupt_stored_hash_fails_the_login_without_raising(session, passwords, catalogue):
    accounts.create_account(session, catalogue, "erin", plan="trial", password_hash="$argon2id$garbage")
    assert accounts.check_password(session, passwords, "erin", "anything") is None


def test_names_outside_the_rule_are_refused_before_touching_the_database(session):
    for name in ["", "Alice", "a b", "x" * 65, "al/ice", "ali\x00ce", "élise"]:
        with pytest.raises(accounts.InvalidAccountName, match="lower-case letters"):
            accounts.get_or_create_account(session, name, default_plan="trial")
    assert accounts.count_accounts(session) == 0


def test_new_account_is_the_one_builder_every_account_starts_from():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    local = accounts.new_account("alice", plan="trial", now=now, password_hash="h", approved=False)
    assert (local.name, local.plan, local.plan_started_at, local.created_at) == ("alice", "trial", now, now)
    assert (local.auth_source, local.password_hash, local.is_admin, local.approved) == (
        "local",
        "h",
        False,
        False,
    )
    assert (local.approved_at, local.approved_by) == (None, None)
    oidc = accounts.new_account("bob", plan="standard", now=now, auth_source="oidc", approved_by="oidc")
    assert (oidc.auth_source, oidc.approved, oidc.approved_at, oidc.approved_by) == (
        "oidc",
        True,
        now,
        "oidc",
    )
    with pytest.raises(accounts.InvalidAccountName, match="invalid account name 'Bad Name'"):
        accounts.new_account("Bad Name", plan="trial")
    with pytest.raises(accounts.InvalidAccountName, match="names starting with 'erased-' are reserved"):
        accounts.new_account("erased-123", plan="trial")
