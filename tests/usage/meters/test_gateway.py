"""The Dask Gateway meter against a gateway database written by dask-gateway-server's own ``DataManager``.

Specification: each scheduler and worker becomes one usage interval with the account, the reserved cores and
memory and the gateway's start time; it is closed with the gateway's stop time; a pass is idempotent; after the
meter was down, one pass opens what started meanwhile (also what already stopped) and closes what ended, exactly;
a cluster's shutdown closes its workers at the cluster's stop time; records that vanished are closed at the last
pass, never later; an unreadable gateway database closes nothing; failures back off.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from dask_gateway_server.backends.db_base import DataManager, JobStatus
from dask_gateway_server.utils import timestamp
from sqlalchemy import select

from polartep_hub.gateway.gateway_db import use_write_ahead_log
from polartep_hub.service.db import make_engine, make_sessionmaker, upgrade_to_head
from polartep_hub.usage.meters.gateway import GatewayDatabaseUnavailable, GatewayMeter
from polartep_hub.usage.models import MeterCheckpoint, UsageInterval

GIB = 2**30
CONFIG = {"scheduler_cores": 1, "scheduler_memory": 2 * GIB, "worker_cores": 2, "worker_memory": 4 * GIB}


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


@pytest.fixture
def gateway_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'dask-gateway.sqlite'}"


@pytest.fixture
def gateway(gateway_url) -> DataManager:
    """The gateway's state manager, writing the real schema (what the running gateway does)."""
    return DataManager(url=gateway_url, encrypt_keys=[Fernet.generate_key()])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sessions(request, tmp_path):
    """The platform database (the ledger), once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'platform.sqlite'}"
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"meter_{uuid.uuid4().hex[:12]}"
        url = server.create_database(name)
    upgrade_to_head(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()
    if request.param == "postgres":
        server.drop_database(name)


@pytest.fixture
def meter(gateway_url, sessions):
    meter = GatewayMeter(gateway_url, sessions, interval=1)
    yield meter
    meter.close()


def intervals(sessions) -> dict[str, UsageInterval]:
    with sessions() as session:
        rows = session.scalars(select(UsageInterval)).all()
        session.expunge_all()
    assert len(rows) == len({(r.kind, r.source_key) for r in rows})
    return {r.source_key: r for r in rows}


def stop_worker(gateway: DataManager, worker) -> None:
    gateway.update_worker(worker, status=JobStatus.STOPPED, target=JobStatus.STOPPED, stop_time=timestamp())


def stop_cluster(gateway: DataManager, cluster) -> None:
    """As ``DBBackendBase._cluster_to_stopped`` does: workers marked stopped (no time), then the cluster's stop."""
    gateway.update_workers(
        [(w, {"status": JobStatus.STOPPED, "target": JobStatus.STOPPED}) for w in cluster.workers.values()]
    )
    gateway.update_cluster(cluster, status=JobStatus.STOPPED, target=JobStatus.STOPPED, stop_time=timestamp())


async def test_a_scheduler_and_two_workers_become_three_open_intervals(gateway, meter, sessions):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    w1, w2 = gateway.create_worker(cluster), gateway.create_worker(cluster)

    result = meter.reconcile_once()

    assert sorted(result.opened) == sorted(
        [cluster.name, f"{cluster.name}/{w1.name}", f"{cluster.name}/{w2.name}"]
    )
    rows = intervals(sessions)
    scheduler = rows[cluster.name]
    assert (scheduler.kind, scheduler.account_name, scheduler.cores, scheduler.memory_bytes) == (
        "dask-scheduler",
        "alice",
        1,
        2 * GIB,
    )
    assert scheduler.started_at == ms(cluster.start_time)
    worker = rows[f"{cluster.name}/{w1.name}"]
    assert (worker.kind, worker.cores, worker.memory_bytes) == ("dask-worker", 2, 4 * GIB)
    assert worker.started_at == ms(w1.start_time)
    assert all(r.stopped_at is None for r in rows.values())


async def test_a_stopped_worker_is_closed_at_the_gateways_stop_time_once(gateway, meter, sessions):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    worker = gateway.create_worker(cluster)
    meter.reconcile_once()
    stop_worker(gateway, worker)

    assert meter.reconcile_once().closed == [f"{cluster.name}/{worker.name}"]
    assert intervals(sessions)[f"{cluster.name}/{worker.name}"].stopped_at == ms(worker.stop_time)
    again = meter.reconcile_once()
    assert not again.changed
    assert len(intervals(sessions)) == 2


async def test_after_the_meter_was_down_nothing_is_missing_or_counted_twice(gateway, meter, sessions):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    first = gateway.create_worker(cluster)
    meter.reconcile_once()
    # The meter is down: one worker stops, one starts and stops, one starts and keeps running.
    stop_worker(gateway, first)
    short = gateway.create_worker(cluster)
    stop_worker(gateway, short)
    running = gateway.create_worker(cluster)

    result = meter.reconcile_once()

    rows = intervals(sessions)
    assert len(rows) == 4
    assert rows[f"{cluster.name}/{first.name}"].stopped_at == ms(first.stop_time)
    assert rows[f"{cluster.name}/{short.name}"].started_at == ms(short.start_time)
    assert rows[f"{cluster.name}/{short.name}"].stopped_at == ms(short.stop_time)
    assert rows[f"{cluster.name}/{running.name}"].stopped_at is None
    assert sorted(result.opened) == sorted([f"{cluster.name}/{short.name}", f"{cluster.name}/{running.name}"])


async def test_a_cluster_shutdown_closes_its_workers_at_the_clusters_stop_time(gateway, meter, sessions):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    worker = gateway.create_worker(cluster)
    meter.reconcile_once()
    # Between the gateway's two writes the workers are stopped but no stop time is known yet: nothing is closed.
    gateway.update_workers([(worker, {"status": JobStatus.STOPPED, "target": JobStatus.STOPPED})])
    assert not meter.reconcile_once().closed
    gateway.update_cluster(cluster, status=JobStatus.STOPPED, target=JobStatus.STOPPED, stop_time=timestamp())

    meter.reconcile_once()

    rows = intervals(sessions)
    assert rows[cluster.name].stopped_at == ms(cluster.stop_time)
    assert rows[f"{cluster.name}/{worker.name}"].stopped_at == ms(cluster.stop_time)


async def test_a_cluster_that_ran_entirely_while_the_meter_was_down_is_still_charged(
    gateway, meter, sessions
):
    meter.reconcile_once()
    cluster = gateway.create_cluster("bob", {}, CONFIG)
    worker = gateway.create_worker(cluster)
    stop_cluster(gateway, cluster)

    meter.reconcile_once()

    rows = intervals(sessions)
    assert rows[cluster.name].account_name == "bob"
    assert rows[f"{cluster.name}/{worker.name}"].stopped_at == ms(cluster.stop_time)


async def test_a_vanished_record_is_closed_at_the_last_pass_never_later(
    gateway, gateway_url, meter, sessions
):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    gateway.create_worker(cluster)
    meter.reconcile_once()
    with sessions() as session:
        last_pass = session.get(MeterCheckpoint, "dask-gateway").last_pass_at
    # The meter is down longer than the gateway keeps stopped records: the records are gone when it returns.
    stop_cluster(gateway, cluster)
    await asyncio.sleep(0.01)
    gateway.cleanup_expired(0)

    result = meter.reconcile_once()

    assert len(result.vanished) == 2
    assert {r.stopped_at for r in intervals(sessions).values()} == {last_pass}


async def test_an_unreadable_gateway_database_closes_nothing(tmp_path, gateway, meter, sessions):
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    meter.reconcile_once()
    (tmp_path / "dask-gateway.sqlite").rename(tmp_path / "moved.sqlite")

    with pytest.raises(GatewayDatabaseUnavailable):
        meter.reconcile_once()

    assert intervals(sessions)[cluster.name].stopped_at is None


async def test_a_gateway_database_in_write_ahead_log_mode_is_read_while_the_gateway_is_down(
    gateway, meter, sessions
):
    use_write_ahead_log(gateway.db)
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    gateway.db.dispose()  # the gateway stopped: no connection of its own is open any more

    assert meter.reconcile_once().opened == [cluster.name]


def test_a_meter_whose_gateway_has_not_started_yet_waits(tmp_path, sessions):
    meter = GatewayMeter(f"sqlite:///{tmp_path / 'none.sqlite'}", sessions)
    with pytest.raises(GatewayDatabaseUnavailable, match="does not exist"):
        meter.reconcile_once()
    assert not (tmp_path / "none.sqlite").exists()  # read-only: never created by the meter


def test_failures_back_off_exponentially_up_to_the_maximum_and_reset(gateway_url, sessions):
    meter = GatewayMeter(gateway_url, sessions, interval=2, max_backoff=30)
    assert [meter.next_delay(failed=True) for _ in range(6)] == [4, 8, 16, 30, 30, 30]
    assert meter.next_delay(failed=False) == 2
    assert meter.next_delay(failed=True) == 4


async def test_old_stopped_records_are_not_read_again(gateway, meter, sessions):
    """A pass reads only what runs or stopped since shortly before the last pass (the ledger does not grow)."""
    cluster = gateway.create_cluster("alice", {}, CONFIG)
    stop_cluster(gateway, cluster)
    meter.reconcile_once()
    with sessions() as session:
        session.get(MeterCheckpoint, "dask-gateway").last_pass_at = datetime.now(UTC) + timedelta(hours=1)
        session.commit()
    with sessions() as session:
        session.execute(UsageInterval.__table__.delete())
        session.commit()

    assert not meter.reconcile_once().changed


def test_the_meters_job_status_is_dask_gateway_servers():
    from polartep_hub.usage.meters.gateway import JobStatus as MeterJobStatus

    assert {m.name: m.value for m in MeterJobStatus} == {m.name: m.value for m in JobStatus}


def test_the_platform_service_never_imports_dask_gateway_server():
    """Its import patches traitlets' Application logging for the whole process (see ``gateway_meter.JobStatus``);
    the service, its meter and erasure's home check (``service/homes.py``) do without it."""
    import subprocess
    import sys

    code = (
        "import sys, polartep_hub.service.__main__, polartep_hub.service.app, polartep_hub.accounts.homes, "
        "polartep_hub.usage.meters.gateway; "
        "print(sorted(m for m in sys.modules if m.startswith('dask_gateway_server')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
