"""Monthly statements (``usage/statements.py``) and their routes, on SQLite and PostgreSQL.

Specification: a synthetic November 2026 (30 days) whose numbers are computed here by hand: alice held Standard
(500 EUR) until the 10th at 15:00 and Large (1000 EUR) from then, the subscription dev-small (550 EUR) until the 5th
at noon and ml (1500 EUR) from the 20th at noon; each day is charged to what is held at its end, so Standard 9
days, Large 21, dev-small 4, ml 11. Her server ran 4 cores for 4 hours, her Dask worker 2 cores for the 2 hours of
November of its 3, her scheduler 1 core for the 1 hour of November of its 2: 16 server and 5 Dask CPU-hours, which
equal the ledger's month total. An administrator's top-up of 50 CPU-hours is listed, and 1.5 days of data
management (1000 EUR a day) are priced 1500.00. Storage classes are listed
at 0 TB-months. Money is exact: 550 x 4 / 30 = 73.333... is 73.33, and the total 2973.33 EUR is the sum of the
lines. An erased account's pseudonym with usage gets a statement of CPU-hours only. Users read their own
statement only; everyone's (JSON or CSV) is for administrators and the hub.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import delete, select

from polartep_hub.accounts.models import Account, AccountSubscription, PlanPeriod
from polartep_hub.usage.models import QuotaTopUp, SupportCharge, UsageInterval, UsageMonthTotal
from polartep_hub.usage.statements import account_statement
from tests.helpers.service_accounts import create


def at(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def synthetic_november(app) -> None:
    with app.state.context.session() as session:
        alice = session.scalar(select(Account).where(Account.name == "alice"))
        session.execute(delete(PlanPeriod).where(PlanPeriod.account_id == alice.id))
        session.add_all(
            [
                PlanPeriod(account_id=alice.id, plan="standard", started_at=at(15, month=10), ended_at=at(10, 15)),
                PlanPeriod(account_id=alice.id, plan="large", started_at=at(10, 15), ended_at=None),
                AccountSubscription(account_id=alice.id, subscription="dev-small", started_at=at(1, month=10),
                                    ended_at=at(5, 12)),
                AccountSubscription(account_id=alice.id, subscription="ml", started_at=at(20, 12)),
            ]
        )  # fmt: skip
        for key, kind, cores, start, stop in (
            ("s", "server", 4, at(3, 10), at(3, 14)),
            ("w", "dask-worker", 2, datetime(2026, 10, 31, 23, tzinfo=UTC), at(1, 2)),
            ("c", "dask-scheduler", 1, at(30, 23), at(1, 1, month=12)),
        ):
            session.add(UsageInterval(account_name="alice", kind=kind, source_key=key, cores=cores,
                                      memory_bytes=0, started_at=start, stopped_at=stop))  # fmt: skip
        session.add(UsageInterval(account_name="erased-0123456789ab", kind="server", source_key="e", cores=1,
                                  memory_bytes=0, started_at=at(2), stopped_at=at(2, 1)))  # fmt: skip
        session.add(QuotaTopUp(account_name="alice", month="2026-11", cpu_hours=50, reason="deadline",
                               granted_by="ada", granted_at=at(12, 9)))  # fmt: skip
        session.add(SupportCharge(account_name="alice", month="2026-11", service="data-management", quantity=1.5,
                                  note="catalogue import", recorded_by="ada", recorded_at=at(13)))  # fmt: skip
        session.commit()


def test_a_synthetic_month_gives_the_hand_computed_hours_and_euros(api, app):
    create(api, "alice", plan="standard")
    create(api, "bob")  # since December: not on November's statements
    synthetic_november(app)
    with app.state.context.session() as session:
        statement = account_statement(session, app.state.context.catalogue, "alice", "2026-11")
        ledger = session.get(UsageMonthTotal, ("alice", "2026-11")).core_seconds
    lines = [(line.kind, line.item, line.quantity, line.amount) for line in statement.lines]
    assert lines == [
        ("plan", "standard", Decimal(9), Decimal("150.00")),
        ("plan", "large", Decimal(21), Decimal("700.00")),
        ("subscription", "dev-small", Decimal(4), Decimal("73.33")),
        ("subscription", "ml", Decimal(11), Decimal("550.00")),
        ("cpu", "dask", Decimal("5.000"), Decimal("0.00")),
        ("cpu", "server", Decimal("16.000"), Decimal("0.00")),
        ("top_up", "top-up 2026-11-12", Decimal("50.000"), Decimal("0.00")),
        ("storage", "ssd", Decimal("0.000"), Decimal("0.00")),
        ("storage", "hdd", Decimal("0.000"), Decimal("0.00")),
        ("storage", "object", Decimal("0.000"), Decimal("0.00")),
        ("support", "data-management", Decimal("1.500"), Decimal("1500.00")),
    ]
    assert statement.total == Decimal("2973.33")
    assert (
        statement.cpu_hours == Decimal("21.000") == (Decimal(repr(ledger)) / 3600).quantize(Decimal("0.001"))
    )

    own = api.get("api/v1/users/alice/statements/2026-11", token="alice-token")
    assert own.status_code == 200, own.text
    assert (own.json()["total_eur"], own.json()["cpu_hours"]) == ("2973.33", "21.000")
    assert own.json()["lines"][6]["description"] == "deadline (granted by ada)"
    assert api.get("api/v1/users/alice/statements/2026-11", token="bob-token").status_code == 403
    assert api.get("api/v1/users/alice/statements/2026-13", token="alice-token").status_code == 422
    assert api.get("api/v1/users/alice/statements/2027-01", token="alice-token").status_code == 422
    assert api.get("api/v1/statements", token="alice-token", params={"month": "2026-11"}).status_code == 403

    everyone = api.get("api/v1/statements", token="ada-token", params={"month": "2026-11"})
    assert everyone.status_code == 200, everyone.text
    assert [(s["account"], s["total_eur"], s["cpu_hours"]) for s in everyone.json()] == [
        ("alice", "2973.33", "21.000"),
        ("erased-0123456789ab", "0.00", "1.000"),
    ]
    as_csv = api.get("api/v1/statements", token="hub-token", params={"month": "2026-11", "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    totals = {r["account"]: r["amount_eur"] for r in rows if r["kind"] == "total"}
    assert totals == {"alice": "2973.33", "erased-0123456789ab": "0.00"}
    alice_lines = [r for r in rows if r["account"] == "alice" and r["kind"] != "total"]
    assert sum(Decimal(r["amount_eur"]) for r in alice_lines) == Decimal("2973.33")
    assert [r["unit_price_eur"] for r in alice_lines[:4]] == ["500.0", "1000.0", "550.0", "1500.0"]


def test_the_statements_page_shows_everyone_to_an_administrator_and_a_user_their_own(api, app):
    create(api, "alice", plan="standard")
    create(api, "bob")
    synthetic_november(app)
    page = api.get("statements", token="ada-token", params={"month": "2026-11"})
    assert page.status_code == 200, page.text
    assert 'data-account="alice"' in page.text and 'data-account="erased-0123456789ab"' in page.text
    assert '<td class="text-end total">2973.33</td>' in page.text
    own = api.get("statements", token="bob-token", params={"month": "2026-11"})
    assert own.status_code == 200
    assert 'data-account="bob"' in own.text and 'data-account="alice"' not in own.text
    assert '<td class="text-end total">0.00</td>' in own.text
    bad = api.get("statements", token="bob-token", params={"month": "2026-13"})
    assert bad.status_code == 422 and "month must be YYYY-MM" in bad.text
    assert api.get("statements", follow_redirects=False).status_code == 302


def test_only_an_administrator_records_a_support_charge(api, app):
    create(api, "alice")
    body = {"service": "integration-small", "quantity": 1, "note": "processor X"}
    assert api.post("api/v1/users/alice/support-charges", token="alice-token", json=body).status_code == 403
    for bad, message in (
        ({**body, "service": "nope"}, "unknown support service 'nope'"),
        ({**body, "quantity": 1.5}, "integration-small is priced once per item: give a whole number"),
    ):
        r = api.post("api/v1/users/alice/support-charges", token="ada-token", json=bad)
        assert r.status_code == 422 and r.json()["detail"].startswith(message), r.text
    r = api.post("api/v1/users/alice/support-charges", token="ada-token", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["service"], r.json()["quantity"], r.json()["recorded_by"]) == (
        "integration-small",
        1,
        "ada",
    )
    month = r.json()["month"]
    statement = api.get(f"api/v1/users/alice/statements/{month}", token="alice-token").json()
    support = [line for line in statement["lines"] if line["kind"] == "support"]
    assert [(x["item"], x["quantity"], x["amount_eur"]) for x in support] == [
        ("integration-small", "1.000", "5000.00")
    ]
