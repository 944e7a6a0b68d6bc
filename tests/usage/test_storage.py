"""Storage (``usage/storage.py``): samples integrated into TB-months, the check before writes, the home sampler, and
storage on the usage answer and the statement; on SQLite and PostgreSQL.

Specification: each sample holds until the next (a step function) and is split by calendar month; 1 TB (10^12
bytes) held for half of November and 2 TB for the other half are 1.5 TB-months, priced 150.00 EUR at 100 EUR per
TB-month of SSD. A write is refused with 413's message when the class's bytes plus the write pass the plan's quota
(Trial: 0.1 TB of SSD), and in a class the plan has no quota for. Homes are measured by allocated blocks, each
inode once, symbolic links not followed.
"""

from __future__ import annotations

import dataclasses
import os
import types
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account
from polartep_hub.usage.statements import account_statement
from polartep_hub.usage.storage import (
    StorageQuotaExceeded,
    StorageSampler,
    check_write,
    folder_bytes,
    record_sample,
    tb_months,
)
from tests.helpers.service_accounts import create

TB = 10**12


def at(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def test_samples_integrate_into_tb_months_split_by_month_and_priced_on_the_statement(api, app):
    create(api, "alice")
    with app.state.context.session() as session:
        record_sample(session, "alice", "hdd", "home", TB, now=at(31, 12, month=10))
        record_sample(session, "alice", "hdd", "home", 0, now=at(1, 12))  # half a day in each month
        record_sample(session, "alice", "ssd", "home", TB, now=at(1))
        record_sample(session, "alice", "ssd", "home", 2 * TB, now=at(16))
        record_sample(session, "alice", "ssd", "home", 5 * TB, now=at(10))  # older than the last: ignored
        session.commit()
        november = tb_months(session, "alice", "2026-11", at(1), at(1, month=12))
        october = tb_months(session, "alice", "2026-10", at(1, month=10), at(1, month=11))
        statement = account_statement(
            session, app.state.context.catalogue, "alice", "2026-11", now=at(1, 0, month=12)
        )
    assert november["ssd"] == pytest.approx(1.5)
    assert november["hdd"] == pytest.approx(0.5 / 30)
    assert october == {"hdd": pytest.approx(0.5 / 31)}
    storage = {line.item: (line.quantity, line.amount) for line in statement.lines if line.kind == "storage"}
    assert storage == {
        "ssd": (Decimal("1.500"), Decimal("150.00")),
        "hdd": (Decimal("0.017"), Decimal("0.83")),
        "object": (Decimal("0.000"), Decimal("0.00")),
    }


def test_a_write_past_the_plans_quota_is_refused_with_the_message(api, app):
    create(api, "alice")  # Trial: 0.1 TB of SSD
    catalogue = app.state.context.catalogue
    with app.state.context.session() as session:
        record_sample(session, "alice", "ssd", "home", 60 * 10**9)
        record_sample(session, "alice", "ssd", "dataset:1", 30 * 10**9)
        session.commit()
        alice = session.scalar(select(Account).where(Account.name == "alice"))
        check_write(session, catalogue, alice, "ssd", 10 * 10**9)  # exactly the quota: fits
        with pytest.raises(StorageQuotaExceeded) as refused:
            check_write(session, catalogue, alice, "ssd", 10 * 10**9 + 1)
        assert refused.value.message == (
            "Your SSD storage is full: 90.00 GB of the 100.00 GB of your Trial plan are used, and writing 10.00 GB "
            "more would pass it by 0.00 GB. Delete files you no longer need, or ask an administrator for a larger "
            "plan."
        )
        with pytest.raises(StorageQuotaExceeded, match="^Your Trial plan includes no nvme; choose another"):
            check_write(session, catalogue, alice, "nvme", 1)
    usage = api.get("api/v1/users/alice/usage", token="alice-token").json()
    assert [(s["storage_class"], s["bytes"], s["quota_bytes"]) for s in usage["storage"]] == [
        ("ssd", 90 * 10**9, 10**11),
        ("hdd", 0, 5 * 10**11),
        ("object", 0, TB),
    ]


def test_homes_are_measured_by_blocks_each_inode_once_without_following_links(api, app, tmp_path):
    create(api, "alice")
    create(api, "bob")
    home = tmp_path / "alice"
    (home / "data").mkdir(parents=True)
    (home / "data" / "big").write_bytes(os.urandom(1 << 20))
    os.link(home / "data" / "big", home / "again")  # a hard link: counted once
    os.symlink("/usr", home / "usr")  # never followed
    expected = sum(
        os.lstat(p).st_blocks * 512 for p in (home, home / "data", home / "data" / "big", home / "usr")
    )
    assert folder_bytes(home) == expected
    assert 1 << 20 <= expected < (1 << 20) + 64 * 1024
    context = app.state.context
    sampler = StorageSampler(
        types.SimpleNamespace(
            config=dataclasses.replace(context.config, mode="local", homes_root=str(tmp_path)),
            session=context.session,
        )
    )
    result = sampler.sample_once()
    assert result.sampled == {"alice": expected} and result.missing == ["bob"]
    usage = api.get("api/v1/users/alice/usage", token="alice-token").json()
    assert usage["storage"][0]["bytes"] == expected and usage["storage"][0]["sampled_at"] is not None
