"""Shared by the quota tests that run a real platform: usage written straight into the platform service's ledger,
the service's process (to kill it), and a user's usage as the API reports it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.usage.models import UsageInterval


def spend(platform, user: str, cpu_hours: float) -> None:
    """Record ``cpu_hours`` of closed usage this month for ``user`` (one core from the month's start), through the
    ORM, as a meter would: the month totals follow."""
    engine = make_engine(platform.settings.service_db_url)
    try:
        now = datetime.now(UTC)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        seconds = cpu_hours * 3600
        cores = max(1.0, seconds / max((now - start).total_seconds() - 60, 1.0))
        with make_sessionmaker(engine)() as session:
            session.add(
                UsageInterval(
                    account_name=user,
                    kind="dask-worker",
                    source_key=f"spent-{user}-{now.timestamp()}",
                    cores=cores,
                    memory_bytes=0,
                    started_at=start,
                    stopped_at=start + timedelta(seconds=seconds / cores),
                )
            )
            session.commit()
    finally:
        engine.dispose()


def service_pid(platform) -> int | None:
    """The platform service of this platform (found by its own URL in its environment)."""
    wanted = f"JUPYTERHUB_SERVICE_URL={platform.settings.service_url}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"polartep_hub.service" in (entry / "cmdline").read_bytes() and wanted in (
                    (entry / "environ").read_bytes().split(b"\0")
                ):
                    return int(entry.name)
            except OSError:
                continue
    return None


def usage(platform, user: str, token: str) -> dict:
    """The user's usage from the service's API over the last 30 days and a day ahead (open intervals count)."""
    r = platform.api(
        "GET",
        f"/services/platform/api/v1/users/{user}/usage",
        token,
        # The last 30 days until a day ahead: open intervals count until now either way.
        params={
            "since": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
            "until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    return r.json()
