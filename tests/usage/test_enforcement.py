"""Enforcement while running (``usage/enforcement.py``) and administrators' top-ups (``usage/top_ups.py``), in the
platform service, on SQLite and PostgreSQL.

Specification: a pass writes the notices at 80, 95 and 100 percent of the month's allowance once per account, month
and threshold (idempotent under repeated and concurrent passes); at 100 percent it asks the hub to stop the
account's servers and the gateway to stop its clusters, and keeps asking while anything runs; a top-up (only an
administrator's) raises this month's allowance, is listed with who, when and why, and ends the stopping; users read
their own notices and top-ups (403 for others'), and marking a notice seen changes nothing else.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from polartep_hub.service.orm import utcnow
from polartep_hub.usage.enforcement import Enforcer
from polartep_hub.usage.models import UsageInterval, UsageNotification
from polartep_hub.usage.periods import month_key, month_start
from tests.helpers.service_accounts import create

HOUR = 3600.0


class Recorder:
    """Stands in for the hub's API and the gateway's admin routes: records whom it was asked to stop."""

    def __init__(self) -> None:
        self.servers: list[str] = []
        self.clusters: list[str] = []
        self.failing = False

    def request_stop_servers(self, name: str) -> None:
        if self.failing:
            raise RuntimeError("JupyterHub did not answer")
        self.servers.append(name)

    def request_stop_clusters(self, name: str) -> list:
        self.clusters.append(name)
        return []


def spend(app, account: str, hours: float, key: str) -> None:
    """``hours`` CPU-hours of closed usage this month (one minute from the month's start, at many cores)."""
    start = month_start(utcnow())
    with app.state.context.session() as session:
        session.add(
            UsageInterval(account_name=account, kind="dask-worker", source_key=key, cores=hours * 60,
                          memory_bytes=0, started_at=start, stopped_at=start + timedelta(minutes=1))
        )  # fmt: skip
        session.commit()


def run_server(app, account: str) -> None:
    """An open server interval of 2 cores, started a second ago."""
    with app.state.context.session() as session:
        session.add(
            UsageInterval(account_name=account, kind="server", source_key=f"{account}/@run", cores=2,
                          memory_bytes=2**30, started_at=utcnow() - timedelta(seconds=1), stopped_at=None)
        )  # fmt: skip
        session.commit()


def enforcer(app, recorder: Recorder) -> Enforcer:
    context = app.state.context
    return Enforcer(context.sessions, context.catalogue, recorder, recorder)


def notices(app, account: str) -> list[int]:
    with app.state.context.session() as session:
        return list(
            session.scalars(
                select(UsageNotification.threshold)
                .where(UsageNotification.account_name == account)
                .order_by(UsageNotification.threshold)
            )
        )


def test_notices_once_per_threshold_and_stops_at_100_percent(api, app):
    create(api, "alice")  # Trial: 500 CPU-hours
    create(api, "bob")
    recorder = Recorder()
    spend(app, "alice", 410, "a")  # 82%
    spend(app, "bob", 499, "b")  # nothing of bob's runs: not read, not stopped
    run_server(app, "alice")
    result = enforcer(app, recorder).enforce_once()
    assert result.noticed == [("alice", 80)] and result.stopped == []
    assert recorder.servers == [] and recorder.clusters == []
    assert enforcer(app, recorder).enforce_once().noticed == []  # a restarted pass writes nothing twice
    spend(app, "alice", 70, "c")  # 96%
    assert enforcer(app, recorder).enforce_once().noticed == [("alice", 95)]
    spend(app, "alice", 20, "d")  # 100% and the running server's second
    result = enforcer(app, recorder).enforce_once()
    assert result.noticed == [("alice", 100)] and result.stopped == ["alice"]
    assert recorder.servers == ["alice"] and recorder.clusters == ["alice"]
    assert notices(app, "alice") == [80, 95, 100] and notices(app, "bob") == []
    # Still running at the next pass: asked again, no new notice.
    result = enforcer(app, recorder).enforce_once()
    assert (result.noticed, result.stopped, recorder.servers) == ([], ["alice"], ["alice", "alice"])

    response = api.get("api/v1/users/alice/notifications", token="alice-token")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["month"] == month_key(utcnow())
    assert [n["threshold"] for n in body["notifications"]] == [80, 95, 100]
    first, _, last = body["notifications"]
    assert first["message"].startswith("You have used 80% of your CPU-hours: 410.00 of 500.00 CPU-hours")
    assert last["message"].startswith(
        "Your CPU-hours are used up: 500.00 of 500.00 CPU-hours this month. Your "
    )
    assert "Your servers and Dask clusters have been stopped and new work is refused." in last["message"]
    assert api.get("api/v1/users/alice/notifications", token="bob-token").status_code == 403
    assert api.get("api/v1/users/alice/notifications", token="ada-token").status_code == 200
    # Marking the 100% notice seen hides it, and lifts nothing.
    seen = api.post(f"api/v1/users/alice/notifications/{last['id']}/seen", token="alice-token")
    assert seen.status_code == 204, seen.text
    assert (
        api.post(f"api/v1/users/alice/notifications/{last['id']}/seen", token="bob-token").status_code == 403
    )
    assert api.post(f"api/v1/users/bob/notifications/{last['id']}/seen", token="bob-token").status_code == 404
    assert enforcer(app, recorder).enforce_once().stopped == ["alice"]


def test_concurrent_passes_write_each_notice_once(api, app):
    create(api, "alice")
    spend(app, "alice", 600, "a")
    run_server(app, "alice")
    recorder = Recorder()
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: enforcer(app, recorder).enforce_once(), range(6)))
    written = sorted(t for r in results for _, t in r.noticed)
    assert written == [80, 95, 100]
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(UsageNotification)) == 3


def test_a_top_up_by_an_administrator_raises_this_months_allowance_and_ends_the_stopping(api, app):
    create(api, "alice")
    spend(app, "alice", 500, "a")
    run_server(app, "alice")
    recorder = Recorder()
    assert enforcer(app, recorder).enforce_once().stopped == ["alice"]
    body = {"cpu_hours": 100, "reason": "conference deadline"}
    assert api.post("api/v1/users/alice/top-ups", token="alice-token", json=body).status_code == 403
    assert api.post("api/v1/users/alice/top-ups", token="hub-token", json=body).status_code == 403
    for bad in ({"cpu_hours": 0, "reason": "x"}, {"cpu_hours": 5, "reason": "  "}, {"cpu_hours": 5}):
        assert api.post("api/v1/users/alice/top-ups", token="ada-token", json=bad).status_code == 422
    assert api.post("api/v1/users/nobody/top-ups", token="ada-token", json=body).status_code == 404
    granted = api.post("api/v1/users/alice/top-ups", token="ada-token", json=body)
    assert granted.status_code == 201, granted.text
    assert granted.json()["granted_by"] == "ada" and granted.json()["cpu_hours"] == 100
    listed = api.get("api/v1/users/alice/top-ups", token="alice-token").json()["top_ups"]
    assert [(t["cpu_hours"], t["reason"], t["granted_by"]) for t in listed] == [
        (100, "conference deadline", "ada")
    ]
    assert api.get("api/v1/users/alice/top-ups", token="bob-token").status_code == 403
    usage = api.get(
        "api/v1/users/alice/usage", token="alice-token", params={"with_intervals": "false"}
    ).json()
    assert usage["allowance"] == 600 and usage["top_up"] == 100 and usage["intervals"] == []
    assert 99.9 < usage["left"] < 100
    assert [(t["cpu_hours"], t["granted_by"]) for t in usage["top_ups"]] == [(100, "ada")]
    assert [n["threshold"] for n in usage["notifications"]] == [80, 95, 100]
    # Each day of the month so far: the 500 spent on the first day, the running server's seconds today.
    days = usage["cpu_hours_by_day"]
    assert [d["day"] for d in days][0] == f"{month_start(utcnow()):%Y-%m-%d}"
    assert len(days) == utcnow().day
    assert sum(d["cpu_hours"] for d in days) == pytest.approx(usage["used"], abs=0.01)
    result = enforcer(app, recorder).enforce_once()
    assert (result.stopped, recorder.servers) == ([], ["alice"])


def test_a_hub_that_does_not_answer_is_asked_again_and_stops_no_other_account(api, app):
    create(api, "alice")
    create(api, "bob")
    for name in ("alice", "bob"):
        spend(app, name, 500, f"{name}-spent")
        run_server(app, name)
    recorder = Recorder()
    recorder.failing = True
    result = enforcer(app, recorder).enforce_once()
    assert result.failed == ["alice", "bob"] and recorder.clusters == ["alice", "bob"]
    recorder.failing = False
    assert enforcer(app, recorder).enforce_once().stopped == ["alice", "bob"]


@pytest.mark.parametrize("month", ["2026-13", "26-11", "x"])
def test_a_bad_month_is_refused(api, month):
    create(api, "alice")
    r = api.get("api/v1/users/alice/notifications", token="alice-token", params={"month": month})
    assert r.status_code == 422
