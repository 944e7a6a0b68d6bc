"""Quota decisions in the platform service (``usage/quota.py``), the periods (``usage/periods.py``), the running month
totals (``usage/ledger.py``) and the plan history (``accounts/plan_history.py``), on SQLite and PostgreSQL.

Specification: the allowance renews each calendar month (UTC), a Trial ends 3 months after it started, and
``left = allowance - used this month``, as ``GET .../usage`` says; a spawn is admitted when the plan's bound on
what all servers hold at once is kept and what is left covers what runs plus the request for the horizon, and
otherwise refused with what is exhausted, by how much and when it renews; 20 concurrent spawns of one user admit
exactly what fits; the month totals always equal the ledger; every plan change is in the history.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.entitlements import add_months
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.plan_history import plan_history
from polartep_hub.usage import quota
from polartep_hub.usage.ledger import close_open_intervals
from polartep_hub.usage.models import QuotaReservation, QuotaTopUp, UsageInterval, UsageMonthTotal
from polartep_hub.usage.periods import month_start, next_month_start, split_by_month
from tests.helpers.service_accounts import create, edit_account

HOUR = 3600.0
GIB = 2**30


def add_interval(app, account, key, cores, start, stop, kind="dask-worker"):
    with app.state.context.session() as session:
        session.add(
            UsageInterval(
                account_name=account,
                kind=kind,
                source_key=key,
                cores=cores,
                memory_bytes=2**30,
                started_at=start,
                stopped_at=stop,
            )
        )
        session.commit()


def month_totals(app, account) -> dict[str, float]:
    with app.state.context.session() as session:
        rows = session.scalars(select(UsageMonthTotal).where(UsageMonthTotal.account_name == account))
        return {row.month: row.core_seconds for row in rows}


def admit(api, name, profile, server="", token="hub-token"):
    return api.post(
        f"api/v1/users/{name}/server-admissions", token=token, json={"server": server, "profile": profile}
    )


def test_month_totals_follow_every_closed_interval_split_by_calendar_month(app):
    # 2 cores from 30 Nov 23:00 to 1 Dec 01:00: one hour in each month.
    add_interval(
        app, "alice", "a", 2, datetime(2026, 11, 30, 23, tzinfo=UTC), datetime(2026, 12, 1, 1, tzinfo=UTC)
    )
    # 1 core, opened now and closed later through the ORM (as the meters do).
    add_interval(app, "alice", "b", 1, datetime(2026, 12, 3, 10, tzinfo=UTC), None)
    assert month_totals(app, "alice") == {"2026-11": 2 * HOUR, "2026-12": 2 * HOUR}
    with app.state.context.session() as session:
        row = session.scalar(select(UsageInterval).where(UsageInterval.source_key == "b"))
        row.stopped_at = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
        session.commit()
    assert month_totals(app, "alice") == {"2026-11": 2 * HOUR, "2026-12": 2 * HOUR + 0.5 * HOUR}
    # Erasure closes open rows through close_open_intervals: the totals follow too.
    add_interval(app, "alice", "c", 4, datetime(2026, 12, 4, 0, tzinfo=UTC), None)
    with app.state.context.session() as session:
        assert close_open_intervals(session, "alice", datetime(2026, 12, 4, 0, 15, tzinfo=UTC)) == 1
        session.commit()
    assert month_totals(app, "alice")["2026-12"] == 2 * HOUR + 0.5 * HOUR + 4 * 0.25 * HOUR
    # The totals equal the ledger, summed here row by row and month by month.
    by_month: dict[str, float] = {}
    with app.state.context.session() as session:
        for row in session.scalars(select(UsageInterval).where(UsageInterval.account_name == "alice")):
            for month, seconds in split_by_month(row.started_at, row.stopped_at):
                by_month[month] = by_month.get(month, 0.0) + row.cores * seconds
    assert month_totals(app, "alice") == pytest.approx(by_month)


def test_every_plan_change_is_kept_in_the_plan_history(app, api, catalogue):
    create(api, "carol", plan="trial")
    with app.state.context.session() as session:
        accounts.change_plan(session, catalogue, "carol", "standard")
        accounts.change_plan(session, catalogue, "carol", "standard")  # no change: no new period
        accounts.change_plan(session, catalogue, "carol", "large")
        account = accounts.get_account(session, "carol")
        history = plan_history(session, account)
    assert [p.plan for p in history] == ["trial", "standard", "large"]
    assert history[0].ended_at == history[1].started_at
    assert history[1].ended_at == history[2].started_at
    assert history[2].ended_at is None and history[2].started_at == account.plan_started_at


def test_usage_says_allowance_used_left_and_renewal_this_month(app, api):
    create(api, "alice", plan="standard")
    now = datetime.now(UTC)
    start = month_start(now)
    add_interval(app, "alice", "old", 8, start - timedelta(days=3), start - timedelta(days=2))  # last month
    add_interval(app, "alice", "done", 4, start, start + timedelta(hours=10))  # 40 CPU-hours
    body = api.get("api/v1/users/alice/usage", token="alice-token").json()
    assert body["plan"] == "standard"
    assert body["allowance"] == 500
    assert body["used"] == pytest.approx(40)
    assert body["left"] == pytest.approx(460)
    assert datetime.fromisoformat(body["renews_at"]) == next_month_start(now)
    assert body["plan_ends_at"] is None


def test_a_trial_ends_three_months_after_it_started_and_does_not_renew(app, api):
    create(api, "tina", plan="trial")
    started = datetime.now(UTC) - timedelta(days=100)
    edit_account(app, "tina", plan_started_at=started)
    body = api.get("api/v1/users/tina/usage", token="hub-token").json()
    assert body["allowance"] == 0 and body["renews_at"] is None
    assert datetime.fromisoformat(body["plan_ends_at"]) == add_months(started, 3)
    r = admit(api, "tina", "small")
    assert r.status_code == 403
    assert r.json()["reason"] == "plan_ended"
    assert "Trial plan ended on" in r.json()["detail"]


def test_a_spawn_is_admitted_and_reserved_while_it_fits(app, api):
    create(api, "alice", plan="trial")
    r = admit(api, "alice", "medium", server="big")
    assert r.status_code == 201, r.text
    assert (r.json()["cores"], r.json()["memory_bytes"]) == (4, 32 * 2**30)
    body = api.get("api/v1/users/alice/usage", token="alice-token").json()
    assert body["running_cores"] == 4  # the reservation counts as running
    # Asked again for the same server: its reservation is replaced, not added to.
    assert admit(api, "alice", "medium", server="big").status_code == 201
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(QuotaReservation)) == 1


def test_a_spawn_past_the_running_bound_is_refused_saying_by_how_much(app, api):
    create(api, "alice", plan="trial")  # max_running 8 cores, 64G
    assert admit(api, "alice", "medium", server="a").status_code == 201
    assert admit(api, "alice", "medium", server="b").status_code == 201
    r = admit(api, "alice", "small", server="c")
    assert r.status_code == 403
    assert r.json() == {
        "detail": "Your Trial plan allows 8 cores for all your servers together; they hold 8 and the server 'c' "
        "(Small) needs 2: 2 cores over. Stop a server first, or choose a smaller profile.",
        "reason": "running_cores",
    }


def test_a_spawn_past_the_allowance_is_refused_with_what_is_short_and_the_renewal(app, api):
    create(api, "alice", plan="trial")
    now = datetime.now(UTC)
    start = month_start(now)
    # 499.5 CPU-hours used; 0.5 left; a Small server (2 cores) for 15 minutes needs 0.5: just fits.
    add_interval(app, "alice", "used", 1, start, start + timedelta(hours=499.5))
    assert admit(api, "alice", "small", server="s1").status_code == 201
    # Now 2 cores are reserved: another Small needs (2 + 2) x 0.25 h = 1 CPU-hour, 0.5 short.
    r = admit(api, "alice", "small", server="s2")
    assert r.status_code == 403
    assert r.json()["reason"] == "allowance"
    renews = next_month_start(now)
    assert r.json()["detail"] == (
        "Your CPU-hours are exhausted: 499.50 of the 500.00 CPU-hours of your Trial plan are used this month, "
        "0.50 left. Your running work (2 cores) and the server 's2' (Small) (2 cores) need 1.00 CPU-hours for the "
        f"next 15 minutes: 0.50 CPU-hours short. Your allowance renews on {renews:%Y-%m-%d %H:%M} UTC."
    )


def test_twenty_concurrent_spawns_of_one_user_admit_exactly_what_fits(app, api):
    create(api, "alice", plan="trial")  # 8 cores at once: four Small servers (2 cores, 8G)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: admit(api, "alice", "small", server=f"s{i}"), range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 4 + [403] * 16
    assert {r.json()["reason"] for r in results if r.status_code == 403} == {"running_cores"}
    with app.state.context.session() as session:
        assert session.scalar(select(func.sum(QuotaReservation.cores))) == 8


def test_only_the_hub_may_ask_for_an_admission_or_report_a_stop(app, api):
    create(api, "alice", plan="trial")
    r = admit(api, "alice", "small", token="alice-token")
    assert r.status_code == 403
    assert r.json()["detail"] == "only the hub may call this (scope custom:polartep:hub)"
    r = api.post("api/v1/users/alice/server-stops", token="alice-token", json={"server": ""})
    assert r.status_code == 403
    r = api.get("api/v1/users/alice/allowance", token="alice-token")
    assert r.status_code == 403


def test_an_unknown_profile_or_account_is_refused(app, api):
    create(api, "alice", plan="trial")
    r = admit(api, "alice", "huge")
    assert r.status_code == 422 and "unknown profile 'huge'" in r.json()["detail"]
    r = admit(api, "nobody", "small")
    assert r.status_code == 404 and r.json()["detail"] == "no account 'nobody'"


def test_the_decision_reads_no_history(app, api):
    # Decisions read the account's month total, never its ledger: a month total written alone is what counts.
    create(api, "alice", plan="trial")
    with app.state.context.session() as session:
        session.add(
            UsageMonthTotal(account_name="alice", month=f"{datetime.now(UTC):%Y-%m}", core_seconds=500 * HOUR)
        )
        assert session.scalar(select(Account).where(Account.name == "alice")) is not None
        session.commit()
    r = admit(api, "alice", "interactive")
    assert r.status_code == 403 and r.json()["reason"] == "allowance"


def reservation_id(app, name, server):
    with app.state.context.session() as session:
        return session.scalar(select(QuotaReservation.id).where(
            QuotaReservation.account_name == name, QuotaReservation.kind == "server",
            QuotaReservation.key == server))  # fmt: skip


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_one_call_decision_equals_the_statements_on_a_random_ledger(app, api, catalogue):
    # PostgreSQL decides a spawn in one call (migration 0014_quota); on a random ledger its verdict, and the status
    # Python computes from the rows it read, equal the separate statements' (read first, in a rolled-back
    # transaction, on the same state).
    rng = random.Random(11)
    names = {"trial": "tina", "standard": "sam", "large": "lea"}
    for plan, name in names.items():
        create(api, name, plan=plan)
    with app.state.context.session() as session:
        session.scalar(select(Account).where(Account.name == "lea")).is_admin = True
        session.scalar(select(Account).where(Account.name == "tina")).plan_started_at = datetime.now(
            UTC
        ) - timedelta(days=rng.choice([10, 200]))
        session.commit()
    now = datetime.now(UTC)
    horizon = timedelta(minutes=15)
    kinds = ["server", "dask-scheduler", "dask-worker"]
    outcomes = {True: 0, False: 0}
    for step in range(150):
        name = rng.choice(list(names.values()))
        with app.state.context.session() as session:
            for _ in range(rng.choice([0, 0, 1])):  # what runs, opened this month or before it
                session.add(UsageInterval(account_name=name, kind=rng.choice(kinds), source_key=f"k{step}-{_}",
                                          cores=rng.choice([0.5, 1, 2, 4]), memory_bytes=rng.choice([1, 4, 8]) * GIB,
                                          started_at=now - timedelta(hours=rng.uniform(0, 24 * 40))))  # fmt: skip
            if rng.random() < 0.7:  # a running interval stops
                row = session.scalar(select(UsageInterval).where(UsageInterval.account_name == name,
                                                                 UsageInterval.stopped_at.is_(None)))  # fmt: skip
                if row is not None:
                    row.stopped_at = now - timedelta(minutes=rng.uniform(0, 60))
            if rng.random() < 0.3:
                session.add(QuotaReservation(account_name=name, kind=rng.choice(kinds), key=f"r{step}",
                                             profile=None, cores=rng.choice([1, 2]), memory_bytes=4 * GIB,
                                             created_at=now,
                                             expires_at=now + timedelta(minutes=rng.choice([-1, 5]))))  # fmt: skip
            if rng.random() < 0.2:
                session.add(QuotaTopUp(account_name=name, month=f"{now:%Y-%m}", cpu_hours=rng.choice([10, 100]),
                                       reason="test", granted_by="admin", granted_at=now))  # fmt: skip
            if rng.random() < 0.5:  # this month's use near the allowance, so both verdicts occur
                total = session.get(UsageMonthTotal, (name, f"{now:%Y-%m}"))
                if total is not None:
                    total.core_seconds = rng.uniform(0.0, 1.05) * 500 * HOUR
            session.commit()
        profile = catalogue.profiles[rng.choice(["interactive", "small", "medium", "large"])]
        server = rng.choice(["", "a", "b", f"r{step - 1}"])
        admin = rng.random() < 0.1
        before = reservation_id(app, name, server)
        with app.state.context.session() as session:
            account = session.scalar(select(Account).where(Account.name == name))
            session.execute(quota._RELEASE, {"name": name, "kind": "server", "key": server})
            expected = quota.quota_status(session, catalogue, account, now=now, admin=admin)
            try:
                quota.check_request(expected, profile.cpu, profile.memory, "it", horizon, server=True)
                fits = True
            except quota.QuotaRefused:
                fits = False
            session.rollback()
        with app.state.context.session() as session:
            admitted, status = quota.one_call_decision(
                session, catalogue, name, server, profile, horizon, admin=admin, now=now
            )
        assert (admitted, status) == (fits, expected), f"step {step}"
        outcomes[fits] += 1
        after = reservation_id(app, name, server)
        # Admitted: a new reservation replaces the old; refused: the old one (if any) stays as it was.
        assert (after is not None and after != before) if fits else after == before
    assert min(outcomes.values()) >= 20  # both verdicts were compared, many times
