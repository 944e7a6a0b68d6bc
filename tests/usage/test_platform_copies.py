"""The platform's own copies on the storage meter (``processors/metering.py``, ``dashboards/metering.py``): published
processors' notebooks and dashboards' frozen versions, charged to their owners in the class of homes; on SQLite and
PostgreSQL, through the real publishing routes, with the notebooks' real files in the store.

Specification (a synthetic November, 30 days, SSD priced 3 EUR per kB-month here, i.e. 3 x 10^9 EUR per TB-month, so
that notebooks of a few kB give amounts in whole cents): alice publishes a processor with a 3000-byte notebook on
the 1st, its next version with a 6000-byte notebook on the 11th, and a second processor with the first notebook
again (one content, counted once per owner: still 9000 bytes); bob publishes a processor with that same first
notebook (he holds it too: 3000 bytes for him). On the 11th alice publishes a dashboard of 12000 bytes, on the 16th
its next version of 15000 bytes, and deletes it on the 21st (its charge stops at once). bob is erased on the 21st:
his charge stops then and stays on his month under the pseudonym.

By hand: alice's notebooks 3000 x 10 + 9000 x 20 = 210000 byte-days = 7 x 10^-9 TB-months = 21.00 EUR; her dashboard
12000 x 5 + 27000 x 5 = 195000 byte-days = 6.5 x 10^-9 TB-months = 19.50 EUR; SSD together 40.50 EUR. bob:
3000 x 20 = 60000 byte-days = 2 x 10^-9 TB-months = 6.00 EUR.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from polartep_hub.catalogue import Catalogue, load_catalogue
from polartep_hub.dashboards import metering as dashboard_metering
from polartep_hub.processors import metering as processor_metering
from polartep_hub.processors.notebook_store import NotebookStore, sha256_of
from polartep_hub.service.config import ServiceConfig
from polartep_hub.usage.models import StorageMonthTotal, StorageUsage
from polartep_hub.usage.statements import account_statement
from polartep_hub.usage.storage import record_sample, tb_months
from tests.helpers.dashboards import notebook
from tests.helpers.processor_registry import definition, notebook_bytes, publish_body
from tests.helpers.service_accounts import create
from tests.helpers.service_fakes import PREFIX, RecordingHubAPI

TB = 10**12
KB_MONTH_EUR = 3  # EUR per 1000 bytes held for a whole month
DAY = 86400


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """The shipped catalogue with SSD at 3 EUR per kB-month (3 x 10^9 EUR per TB-month)."""
    shipped = load_catalogue()
    ssd = dataclasses.replace(shipped.storage["ssd"], price_per_tb_month=KB_MONTH_EUR * TB / 1000)
    return dataclasses.replace(shipped, storage={**shipped.storage, "ssd": ssd})


@pytest.fixture
def service_config(database_url: str, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        prefix=PREFIX,
        database_url=database_url,
        default_plan="trial",
        processors_dir=tmp_path / "processors",
        home_storage_class="ssd",
    )


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


class Clock:
    """The meters' clock (the erasure's too), moved by the test through the synthetic month."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = at(1)
        for module in (processor_metering, dashboard_metering):
            monkeypatch.setattr(module, "utcnow", lambda: self.now)
        from polartep_hub.accounts import personal_data

        monkeypatch.setattr(personal_data, "utcnow", lambda: self.now)


def processor_notebook(size: int, label: str) -> bytes:
    """A publishable notebook of exactly ``size`` bytes (its body cell padded with a comment)."""
    base = notebook_bytes(body=f"result = threshold * 2  # {label} \n")
    padded = notebook_bytes(body=f"result = threshold * 2  # {label} {'x' * (size - len(base))}\n")
    assert len(padded) == size
    return padded


def frozen_size(nb: dict) -> int:
    """The bytes a dashboard version is frozen as (canonical JSON, dashboards/store.py)."""
    return len(json.dumps(nb, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())


def dashboard_notebook(size: int, label: str) -> dict:
    """A dashboard notebook frozen as exactly ``size`` bytes."""
    base = frozen_size(notebook(f"# {label} "))
    nb = notebook(f"# {label} {'x' * (size - base)}")
    assert frozen_size(nb) == size
    return nb


def publish_processor(api, token: str, pid: str, version: str, content: bytes) -> None:
    r = api.post(
        "api/v1/processors", token=token, json=publish_body(definition(pid=pid, version=version), content)
    )
    assert r.status_code == 201, r.text


def ssd_month(app, name: str) -> tuple[float, Decimal]:
    """``name``'s SSD TB-months of November and the statement's amount for them."""
    with app.state.context.session() as session:
        months = tb_months(session, name, "2026-11", at(1), at(1, 12)).get("ssd", 0.0)
        statement = account_statement(session, app.state.context.catalogue, name, "2026-11", now=at(1, 12))
    [amount] = [line.amount for line in statement.lines if line.kind == "storage" and line.item == "ssd"]
    return months, amount


def sources(app) -> list[tuple[str, str, str, int]]:
    with app.state.context.session() as session:
        rows = session.execute(
            select(
                StorageUsage.account_name, StorageUsage.storage_class, StorageUsage.source, StorageUsage.bytes
            )
            .where(StorageUsage.source.in_([processor_metering.SOURCE, dashboard_metering.SOURCE]))
            .order_by(StorageUsage.account_name, StorageUsage.source)
        ).all()
    return [tuple(row) for row in rows]


def test_published_notebooks_and_dashboards_are_charged_to_their_owners_by_tb_month(
    api, app, tmp_path, monkeypatch
):
    clock = Clock(monkeypatch)
    create(api, "alice", plan="standard")
    create(api, "bob", plan="trial")
    first, second = processor_notebook(3000, "first"), processor_notebook(6000, "second")

    # The 1st: alice's processor (3000 bytes); bob's, with the same notebook (his own copy to pay for).
    publish_processor(api, "alice-token", "sea-ice-extent", "1.0.0", first)
    publish_processor(api, "bob-token", "bob-extent", "1.0.0", first)
    store = NotebookStore(tmp_path / "processors" / "notebooks")
    assert store.path(sha256_of(first)).stat().st_size == 3000  # the real file the meter measures
    assert sources(app) == [
        ("alice", "ssd", "processor-notebooks", 3000),
        ("bob", "ssd", "processor-notebooks", 3000),
    ]

    # The 6th: a sampler pass changes nothing (level-triggered: the same bytes again).
    clock.now = at(6)
    with app.state.context.session() as session:
        assert processor_metering.sample_processor_notebooks(session, store, "ssd") == {
            "alice": 3000,
            "bob": 3000,
        }
        assert dashboard_metering.sample_dashboards(session, "ssd") == {}
        session.commit()

    # The 11th: the next version (6000 bytes more), and a second processor with the first notebook (no more).
    clock.now = at(11)
    publish_processor(api, "alice-token", "sea-ice-extent", "1.1.0", second)
    publish_processor(api, "alice-token", "sea-ice-copy", "1.0.0", first)
    r = api.post(
        "api/v1/dashboards",
        token="alice-token",
        json={"title": "Sea ice", "notebook": dashboard_notebook(12000, "v1")},
    )
    assert r.status_code == 201, r.text
    dashboard = r.json()["id"]
    assert sources(app) == [
        ("alice", "ssd", "dashboards", 12000),
        ("alice", "ssd", "processor-notebooks", 9000),
        ("bob", "ssd", "processor-notebooks", 3000),
    ]

    # The 16th: the dashboard's next version (both versions are kept).
    clock.now = at(16)
    r = api.post(
        f"api/v1/dashboards/{dashboard}/versions",
        token="alice-token",
        json={"notebook": dashboard_notebook(15000, "v2")},
    )
    assert r.status_code == 201, r.text
    assert ("alice", "ssd", "dashboards", 27000) in sources(app)

    # The 21st: alice deletes the dashboard (charged no further), bob is erased (likewise, under his pseudonym).
    clock.now = at(21)
    assert api.request("DELETE", f"api/v1/dashboards/{dashboard}", token="alice-token").status_code == 204
    app.state.context.hub_api = RecordingHubAPI()
    r = api.request(
        "DELETE", "api/v1/me", token="bob-token", json={"confirm": "bob", "processors": "withdraw"}
    )
    assert r.status_code == 200, r.text
    assert sources(app) == [("alice", "ssd", "processor-notebooks", 9000)]

    # A pass at the month's end finds nothing else to charge.
    clock.now = at(30)
    with app.state.context.session() as session:
        assert processor_metering.sample_processor_notebooks(session, store, "ssd") == {"alice": 9000}
        assert dashboard_metering.sample_dashboards(session, "ssd") == {}
        session.commit()

    alice_months, alice_eur = ssd_month(app, "alice")
    assert alice_months == pytest.approx(((3000 * 10 + 9000 * 20) + (12000 * 5 + 27000 * 5)) / 30 / TB)
    assert alice_eur == Decimal("40.50")  # 21.00 for the notebooks + 19.50 for the dashboard
    with app.state.context.session() as session:
        # Nothing of bob's is sampled any more; what he held until his erasure is his month's, under the pseudonym.
        assert session.scalar(select(StorageUsage).where(StorageUsage.account_name.like("erased-%"))) is None
        [bob] = session.scalars(
            select(StorageMonthTotal.account_name).where(StorageMonthTotal.account_name.like("erased-%"))
        ).all()
    bob_months, bob_eur = ssd_month(app, bob)
    assert bob_months == pytest.approx(3000 * 20 / 30 / TB)
    assert bob_eur == Decimal("6.00")
    usage = api.get("api/v1/users/alice/usage", token="alice-token").json()
    assert {s["storage_class"]: s["bytes"] for s in usage["storage"]}["ssd"] == 9000


def test_the_owners_copies_count_against_the_quota_they_are_checked_against(api, app, monkeypatch):
    # A publish is refused once the owner's published copies fill the class: here the home holds a Trial plan's
    # 0.1 TB of SSD less 4000 bytes; a first 3000-byte notebook fits and is charged, a second does not (1000 left).
    create(api, "bob", plan="trial")
    with app.state.context.session() as session:
        record_sample(session, "bob", "ssd", "home", TB // 10 - 3000 - 1000)
        session.commit()
    publish_processor(api, "bob-token", "bob-one", "1.0.0", processor_notebook(3000, "one"))
    assert ("bob", "ssd", "processor-notebooks", 3000) in sources(app)
    r = api.post(
        "api/v1/processors",
        token="bob-token",
        json=publish_body(definition(pid="bob-two", version="1.0.0"), processor_notebook(3000, "two")),
    )
    assert r.status_code == 413
    assert r.json()["detail"].startswith("Your SSD storage is full: 100.00 GB of the 100.00 GB")
    assert sources(app) == [("bob", "ssd", "processor-notebooks", 3000)]
