"""Datasets on the storage meter (``data/metering.py``): bytes of real files, charged to the project's paying owner,
in the month's TB-months and on the statement; and writes the platform makes to datasets refused over quota. On
SQLite and PostgreSQL.

Specification: a dataset is charged to the owner of its project who joined first; when that owner leaves, the next
owner pays from the next sample on and the first keeps what was held until then. 0.5 TB held for 15 days of
November and 1.5 TB for the next 5 are 0.5 TB-months of SSD (50.00 EUR at 100 EUR per TB-month); 1.5 TB for the
last 10 days are 0.5 TB-months for the next owner. Over quota, creating a dataset in the class and writing a
dataset's collection or items answer 413 with the numbers, nothing is stored, and the dataset is mounted read-only
at the next spawn with the reason; deleting stays allowed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from polartep_hub.data.metering import sample_datasets
from polartep_hub.data.models import Dataset
from polartep_hub.usage.models import StorageUsage
from polartep_hub.usage.statements import account_statement
from polartep_hub.usage.storage import tb_months
from tests.helpers.service_accounts import create

TB = 10**12
DATASETS = "api/v1/datasets"


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def sample(app, now: datetime) -> dict[str, int]:
    with app.state.context.session() as session:
        sizes = sample_datasets(session, app.state.context.storage_roots, now=now)
        session.commit()
    return sizes


def grow(folder: Path, size: int) -> None:
    """A real file of ``size`` bytes in the dataset's folder (sparse: its bytes count, the disk is not used)."""
    with open(folder / "sea_ice.nc", "ab") as handle:
        handle.truncate(size)


def ssd_line(app, name: str) -> tuple[Decimal, Decimal]:
    with app.state.context.session() as session:
        statement = account_statement(session, app.state.context.catalogue, name, "2026-11", now=at(1, 12))
    [line] = [(x.quantity, x.amount) for x in statement.lines if x.kind == "storage" and x.item == "ssd"]
    return line


def make_bob_owner(api) -> None:
    r = api.request(
        "PATCH", "api/v1/projects/sea-ice/members/bob", token="alice-token", json={"role": "owner"}
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def team(api):
    """alice (Standard: 1 TB of SSD) owns project sea-ice with dataset daily (SSD); bob (Trial: 0.1 TB) is a member."""
    create(api, "alice", plan="standard")
    create(api, "bob", plan="trial")
    assert api.post("api/v1/projects", token="alice-token", json={"name": "sea-ice"}).status_code == 201
    r = api.post("api/v1/projects/sea-ice/members", token="alice-token", json={"user": "bob"})
    assert r.status_code == 201
    r = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "daily", "storage_class": "ssd"}
    )
    assert r.status_code == 201, r.text
    return Path(api.get(f"{DATASETS}/sea-ice/daily", token="hub-token").json()["folder"])


def test_a_datasets_bytes_are_charged_to_the_paying_owner_in_tb_months_and_on_the_statement(api, app, team):
    grow(team, TB // 2)
    assert sample(app, at(1)) == {"dataset:1": TB // 2}
    grow(team, 3 * TB // 2)
    sample(app, at(16))
    # alice leaves; bob, made owner first, pays from the next sample on.
    make_bob_owner(api)
    assert (
        api.request("DELETE", "api/v1/projects/sea-ice/members/alice", token="alice-token").status_code == 200
    )
    sample(app, at(21))
    with app.state.context.session() as session:
        alice = tb_months(session, "alice", "2026-11", at(1), at(1, 12))
        bob = tb_months(session, "bob", "2026-11", at(1), at(1, 12))
        rows = session.execute(
            select(StorageUsage.account_name, StorageUsage.source, StorageUsage.bytes)
        ).all()
    assert alice == {"ssd": pytest.approx((0.5 * 15 + 1.5 * 5) / 30)}  # 0.5 TB-months
    assert bob == {"ssd": pytest.approx(1.5 * 10 / 30)}  # 0.5 TB-months
    assert rows == [("bob", "dataset:1", 3 * TB // 2)]
    assert ssd_line(app, "alice") == (Decimal("0.500"), Decimal("50.00"))
    assert ssd_line(app, "bob") == (Decimal("0.500"), Decimal("50.00"))
    usage = api.get("api/v1/users/bob/usage", token="bob-token").json()
    assert [(s["storage_class"], s["bytes"]) for s in usage["storage"]][0] == ("ssd", 3 * TB // 2)
    # Deleting the dataset stops the charge at once.
    assert api.request("DELETE", f"{DATASETS}/sea-ice/daily", token="bob-token").status_code == 204
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(StorageUsage)) == 0


def test_over_quota_writes_to_datasets_are_refused_and_the_mount_becomes_read_only(api, app, team):
    grow(team, 200 * 10**9)  # 0.2 TB: within alice's 1 TB
    sample(app, at(1))
    mounts = api.get("api/v1/users/bob/dataset-mounts", token="hub-token").json()["mounts"]
    assert [(m["mode"], m["reason"]) for m in mounts] == [("rw", None)]
    # bob (Trial, 0.1 TB of SSD) becomes the paying owner: 0.2 TB is over his quota by 0.1 TB.
    make_bob_owner(api)
    assert (
        api.request("DELETE", "api/v1/projects/sea-ice/members/alice", token="alice-token").status_code == 200
    )
    sample(app, at(2))
    refusal = (
        "is charged to bob, the paying owner of its project. Your SSD storage is full: 200.00 GB of the 100.00 GB "
        "of your Trial plan are used, and writing 0.00 GB more would pass it by 100.00 GB. Delete files you no "
        "longer need, or ask an administrator for a larger plan."
    )
    r = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "more", "storage_class": "ssd"}
    )
    assert (r.status_code, r.json()["detail"]) == (413, f"Dataset 'more' {refusal}")
    r = api.request("PUT", f"{DATASETS}/sea-ice/daily/collection", token="bob-token", json={"title": "Daily"})
    assert (r.status_code, r.json()["detail"]) == (413, f"Dataset 'daily' {refusal}")
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {}}
    r = api.post(f"{DATASETS}/sea-ice/daily/items", token="bob-token", json=item)
    assert (r.status_code, r.json()["detail"]) == (413, f"Dataset 'daily' {refusal}")
    with app.state.context.session() as session:  # nothing stored
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1
        assert session.scalar(select(Dataset.title)) == "daily"
    assert sorted(os.listdir(team.parent)) == [team.name]
    [mount] = api.get("api/v1/users/bob/dataset-mounts", token="hub-token").json()["mounts"]
    assert (mount["mode"], mount["reason"]) == (
        "ro",
        "dataset sea-ice/daily is mounted read-only: the ssd storage of its project's paying owner is over quota; "
        "free space (or ask for a larger plan) and restart your server to write to it again",
    )
    # Another class of bob's is not full: creating there works.
    r = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "bulk", "storage_class": "hdd"}
    )
    assert r.status_code == 201
