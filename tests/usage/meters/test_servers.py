"""The server meter's reconciliation (``usage/meters/servers.py``) against a scripted list of the hub's servers, on
SQLite and PostgreSQL (the real hub is in ``tests/hub/test_server_metering.py``).

Specification: a listed server opens one interval at the hub's ``started`` with its profile's cores and memory
and what it is charged to, and its quota reservation ends; a server no longer listed closes at the last pass that
saw it; the hub's stop report closes at the exact stop time, a crash at the last observation; passes and reports
repeated, or by a new meter (a restarted service), change nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from polartep_hub.usage.meters.servers import ServerMeter, record_stop, server_source_key
from polartep_hub.usage.models import QuotaReservation, UsageInterval
from tests.helpers.service_accounts import create

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class ScriptedHub:
    """``active_servers()`` as ``HubAPI`` answers it, from a list the test edits."""

    def __init__(self) -> None:
        self.servers: list[dict] = []

    def active_servers(self) -> list[dict]:
        return list(self.servers)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def intervals(app) -> dict[str, UsageInterval]:
    with app.state.context.session() as session:
        return {r.source_key: r for r in session.scalars(select(UsageInterval))}


def meter(app, hub, clock) -> ServerMeter:
    context = app.state.context
    return ServerMeter(hub, context.sessions, context.catalogue, clock=clock)


def test_servers_are_metered_from_start_to_stop_once(app, api):
    create(api, "alice", plan="trial")
    assert (
        api.post(
            "api/v1/users/alice/server-admissions", token="hub-token", json={"server": "", "profile": "small"}
        ).status_code
        == 201
    )
    hub, clock = ScriptedHub(), Clock(T0 + timedelta(seconds=5))
    started = "2026-12-01T09:00:00.250000Z"
    hub.servers = [
        {
            "user": "alice",
            "name": "",
            "started": started,
            "profile": None,
            "pending": "spawn",
        },  # from reservation
        {
            "user": "alice",
            "name": "gpu",
            "started": "2026-12-01T09:00:01Z",
            "profile": "medium",
            "pending": None,
        },
    ]
    first = meter(app, hub, clock)
    assert len(first.reconcile_once().opened) == 2
    key = server_source_key("alice", "", T0 + timedelta(milliseconds=250))
    rows = intervals(app)
    assert rows[key].started_at == T0 + timedelta(milliseconds=250)
    assert (rows[key].cores, rows[key].memory_bytes, rows[key].profile) == (2, 8 * 2**30, "small")
    assert rows[key].charged_to == "plan:trial" and rows[key].kind == "server"
    with app.state.context.session() as session:
        assert session.scalars(select(QuotaReservation)).all() == []  # committed: the interval counts now

    # A restarted service (a new meter) passes again: nothing new.
    clock.now = T0 + timedelta(seconds=15)
    again = meter(app, hub, clock).reconcile_once()
    assert (again.opened, again.closed) == ([], [])

    # The hub stops the default server (exact time); the named one vanishes unreported (closes at the last pass).
    stop = T0 + timedelta(seconds=20)
    context = app.state.context
    record_stop(
        context.sessions,
        context.catalogue,
        "alice",
        "",
        profile="small",
        started_at=T0 + timedelta(milliseconds=250),
        stopped_at=stop,
        clock=lambda: stop,
    )
    hub.servers = []
    clock.now = T0 + timedelta(seconds=25)
    result = meter(app, hub, clock).reconcile_once()
    assert result.closed == [server_source_key("alice", "gpu", T0 + timedelta(seconds=1))]
    rows = intervals(app)
    assert rows[key].stopped_at == stop
    assert rows[server_source_key("alice", "gpu", T0 + timedelta(seconds=1))].stopped_at == T0 + timedelta(
        seconds=15
    )
    # Reported twice: nothing changes.
    record_stop(
        context.sessions,
        context.catalogue,
        "alice",
        "",
        profile="small",
        started_at=T0 + timedelta(milliseconds=250),
        stopped_at=stop + timedelta(seconds=30),
    )
    assert len(intervals(app)) == 2
    assert intervals(app)[key].stopped_at == stop


def test_a_crash_closes_at_the_last_observation_and_a_short_run_is_still_charged(app, api):
    create(api, "bob", plan="standard")
    hub, clock = ScriptedHub(), Clock(T0 + timedelta(seconds=10))
    hub.servers = [{"user": "bob", "name": "", "started": "2026-12-01T09:00:00Z", "profile": "large"}]
    meter(app, hub, clock).reconcile_once()
    context = app.state.context
    record_stop(
        context.sessions,
        context.catalogue,
        "bob",
        "",
        profile="large",
        started_at=T0,
        stopped_at=None,  # crashed
        clock=lambda: T0 + timedelta(seconds=40),
    )
    assert intervals(app)[server_source_key("bob", "", T0)].stopped_at == T0 + timedelta(seconds=10)
    # A run no pass ever saw, stopped by the hub: opened and closed with the exact times.
    record_stop(
        context.sessions,
        context.catalogue,
        "bob",
        "quick",
        profile="interactive",
        started_at=T0 + timedelta(seconds=50),
        stopped_at=T0 + timedelta(seconds=53),
        clock=lambda: T0 + timedelta(seconds=60),
    )
    row = intervals(app)[server_source_key("bob", "quick", T0 + timedelta(seconds=50))]
    assert (row.started_at, row.stopped_at, row.cores) == (
        T0 + timedelta(seconds=50),
        T0 + timedelta(seconds=53),
        1,
    )
