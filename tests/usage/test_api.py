"""``GET api/v1/users/{name}/usage``: who may read it, how the period is validated, how core-seconds are counted.

Specification: the user themself, an admin or the hub may read an account's usage; the period ``[since, until)``
needs times with a zone, ``since`` before ``until``, at most 400 days; intervals overlapping the period are listed
and only their time inside the period counts (an open interval up to now); adjacent periods add up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polartep_hub.usage.models import UsageInterval


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def add_interval(
    app, account: str, key: str, cores: float, start: datetime, stop: datetime | None, kind="dask-worker"
):
    with app.state.context.session() as session:
        session.add(
            UsageInterval(
                account_name=account,
                kind=kind,
                source_key=key,
                cores=cores,
                memory_bytes=2**31,
                started_at=start,
                stopped_at=stop,
            )
        )
        session.commit()


def usage(api, name: str, token: str, **params):
    return api.get(f"api/v1/users/{name}/usage", token=token, params=params)


@pytest.fixture
def alice_usage(app):
    add_interval(app, "alice", "c1", 1, T0, T0 + timedelta(hours=1), kind="dask-scheduler")
    add_interval(app, "alice", "c1/w1", 2, T0, T0 + timedelta(hours=1))
    add_interval(app, "alice", "c1/w2", 2, T0 + timedelta(minutes=30), T0 + timedelta(hours=2))
    add_interval(app, "bob", "c2/w1", 4, T0, T0 + timedelta(hours=1))


def test_a_user_reads_their_intervals_and_core_seconds(api, alice_usage):
    r = usage(api, "alice", "alice-token", since="2026-11-01T00:00:00Z", until="2026-12-01T00:00:00Z")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["source_key"] for i in body["intervals"]] == ["c1", "c1/w1", "c1/w2"]
    # scheduler 1 core x 1 h, worker 2 x 1 h, worker 2 x 1.5 h
    assert body["core_seconds"] == pytest.approx(3600 + 7200 + 10800)
    assert body["core_seconds_by_kind"] == {"dask-scheduler": 3600, "dask-worker": 18000}
    assert body["intervals"][1]["cores"] == 2 and body["intervals"][1]["memory_bytes"] == 2**31


def test_only_the_time_inside_the_period_counts_and_adjacent_periods_add_up(api, alice_usage):
    cut = "2026-11-02T10:45:00Z"
    first = usage(api, "alice", "alice-token", since="2026-11-02T00:00:00Z", until=cut).json()
    second = usage(api, "alice", "alice-token", since=cut, until="2026-11-03T00:00:00Z").json()
    whole = usage(
        api, "alice", "alice-token", since="2026-11-02T00:00:00Z", until="2026-11-03T00:00:00Z"
    ).json()
    # before 10:45: scheduler 45 min x 1, w1 45 min x 2, w2 15 min x 2
    assert first["core_seconds"] == pytest.approx(45 * 60 * (1 + 2) + 15 * 60 * 2)
    assert first["core_seconds"] + second["core_seconds"] == pytest.approx(whole["core_seconds"])


def test_an_open_interval_counts_until_now_and_never_into_the_future(api, app):
    started = datetime.now(UTC) - timedelta(minutes=10)
    add_interval(app, "alice", "c9/w1", 3, started, None)
    body = usage(
        api,
        "alice",
        "alice-token",
        since=(started - timedelta(hours=1)).isoformat(),
        until=(started + timedelta(days=30)).isoformat(),
    ).json()
    assert body["intervals"][0]["stopped_at"] is None
    assert 3 * 600 <= body["core_seconds"] < 3 * 660


def test_an_admin_and_the_hub_may_read_anyones_usage(api, alice_usage):
    for token in ("ada-token", "hub-token"):
        r = usage(api, "alice", token, since="2026-11-01T00:00:00Z")
        assert r.status_code == 200, r.text
        assert len(r.json()["intervals"]) == 3


def test_another_user_may_not_read_my_usage(api, alice_usage):
    r = usage(api, "alice", "bob-token", since="2026-11-01T00:00:00Z")
    assert r.status_code == 403
    assert "your own usage" in r.json()["detail"]


def test_no_token_is_401(api):
    assert usage(api, "alice", None).status_code == 401


@pytest.mark.parametrize(
    "params, message",
    [
        ({"since": "2026-11-02T00:00:00"}, "since needs a time zone"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "since must be before until"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-02T00:00:00Z"}, "since must be before until"),
        ({"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "at most 400 days"),
        ({"since": "yesterday"}, "since:"),
    ],
    ids=["naive", "reversed", "empty", "too-long", "not-a-time"],
)
def test_a_bad_period_is_refused_saying_what_to_fix(api, alice_usage, params, message):
    r = usage(api, "alice", "alice-token", **params)
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_the_default_period_is_this_month_until_now(api, app):
    now = datetime.now(UTC)
    add_interval(app, "alice", "old/w1", 1, now - timedelta(days=70), now - timedelta(days=69))
    add_interval(app, "alice", "new/w1", 1, now - timedelta(seconds=30), now - timedelta(seconds=10))
    body = usage(api, "alice", "alice-token").json()
    assert [i["source_key"] for i in body["intervals"]] == ["new/w1"]
    assert datetime.fromisoformat(body["since"]) == now.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    assert body["core_seconds"] == pytest.approx(20, abs=0.01)


def test_an_invalid_account_name_is_400(api):
    r = usage(api, "Bad.Name", "hub-token")
    assert r.status_code == 400
