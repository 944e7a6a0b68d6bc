"""Storage: bytes per user and storage class, sampled on a schedule, integrated into TB-months, and the one check
before a write that the platform controls.

**Units.** 1 TB = 10^12 bytes (the catalogue's ``storage_quota_tb`` and ``price_per_tb_month``). A TB-month of a
calendar month (UTC) is 10^12 bytes held for the whole month: ``TB-months = byte-seconds / (10^12 x seconds of the
month)``.

**Mechanism.** Each source of stored bytes (``home`` for a user's home; ``dataset:<id>`` for a dataset, charged to
its project's paying owner, ``data/metering.py``; the platform's own copies, charged to their owners in the class of
homes: ``processor-notebooks``, ``processors/metering.py``, and ``dashboards``, ``dashboards/metering.py``) has one
row in ``storage_usage``: its bytes at ``sampled_at``.
Recording a new sample (``record_sample``) first adds the previous sample's bytes x the time since it to ``storage_month_totals`` (split by
calendar month: a step function, each sample holds until the next), then stores the new bytes, in one transaction.
So statements read one running total per account, class and month (plus the part since the last sample), never a
history. The service's sampler (``StorageSampler``) measures every account's home every
``storage_sample_interval`` seconds in the class ``home_storage_class``: in local mode the folder
``<homes_root>/<system user>``, in Docker and Swarm modes the home volume's folder on the engine's host (where the
service can read it). Sizes are allocated blocks (``st_blocks x 512``, what filesystem quotas count), each inode once,
symbolic links never followed. The same pass then records every dataset's bytes in its class (``other_sources``);
a source that ends (a dataset deleted, or charged to another account) is integrated until then and removed
(``forget_source``); an erasure ends every source of the account at once (``forget_account``), so nothing is
integrated under the pseudonym after it.

**The check before writes** (``check_write``, ``check_account_write``): every write the platform makes on a
user's behalf calls it first and stores nothing when refused: datasets (``data/metering.py``: creation, collection,
items; over quota they mount read-only at the next spawn), publishing a processor and a dashboard (the notebook's
bytes) and starting a processor run (its outputs go to the invoker's home; 0 bytes: refused once the class is full),
the last three in the class of homes (``home_storage_class``). A write of ``n`` bytes in a class is refused (``StorageQuotaExceeded``, HTTP 413, with a message that says
how much is used, the quota and by how much the write passes it) when the class's latest bytes of the account (all
sources together) plus ``n`` pass the plan's ``storage_quota_tb`` for that class; a class the plan gives no quota
for admits nothing. What users write themselves inside their servers is not seen until the next sample; hard limits
there are the filesystem's (README: "Storage quotas").
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from polartep_hub.accounts.entitlements import plan_ends_at
from polartep_hub.accounts.models import Account, PendingErasure
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.usage.models import StorageMonthTotal, StorageUsage
from polartep_hub.usage.periods import next_month_start, split_by_month

if TYPE_CHECKING:
    from polartep_hub.service.context import ServiceContext

log = logging.getLogger(__name__)

TB = 10**12
HOME_SOURCE = "home"


class StorageQuotaExceeded(Exception):
    """A write would pass the plan's storage quota of its class; ``message`` says by how much and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _gb(value: float) -> str:
    return f"{value / 10**9:.2f} GB"


def _upsert(session: Session, table, values: dict, keys: list[str], set_: dict) -> None:
    connection = session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(insert(table).values(**values).on_conflict_do_update(index_elements=keys, set_=set_))


def _add_byte_seconds(
    session: Session, account: str, storage_class: str, bytes_: int, since: datetime, until: datetime
) -> None:
    table = StorageMonthTotal.__table__
    for month, seconds in split_by_month(since, until):
        if seconds <= 0 or bytes_ <= 0:
            continue
        amount = float(bytes_) * seconds
        _upsert(
            session,
            table,
            {"account_name": account, "storage_class": storage_class, "month": month, "byte_seconds": amount},
            ["account_name", "storage_class", "month"],
            {"byte_seconds": table.c.byte_seconds + amount},
        )


def record_sample(
    session: Session,
    account: str,
    storage_class: str,
    source: str,
    bytes_: int,
    *,
    now: datetime | None = None,
) -> None:
    """Store ``bytes_`` as what ``source`` of ``account`` holds in ``storage_class`` now, after integrating the
    previous sample until now (see the module). Public: the data domain reports its datasets' sizes here. Flushes;
    the caller commits."""
    now = now or utcnow()
    # Locked (PostgreSQL): two writers of one source (a publish's own sample and the sampler's pass) integrate one
    # after the other, never the same span twice. SQLite serialises writers anyway.
    previous = session.get(StorageUsage, (account, storage_class, source), with_for_update=True)
    if previous is not None:
        if now <= previous.sampled_at:
            return  # an older or equal sample: nothing to integrate, keep the newer one
        _add_byte_seconds(session, account, storage_class, previous.bytes, previous.sampled_at, now)
        session.execute(
            update(StorageUsage)
            .where(
                StorageUsage.account_name == account,
                StorageUsage.storage_class == storage_class,
                StorageUsage.source == source,
            )
            .values(bytes=int(bytes_), sampled_at=now)
        )
        session.expire(previous)
    else:
        session.add(StorageUsage(account_name=account, storage_class=storage_class, source=source,
                                 bytes=int(bytes_), sampled_at=now))  # fmt: skip
    session.flush()


def forget_source(
    session: Session, account: str, storage_class: str, source: str, *, now: datetime | None = None
) -> None:
    """``source`` no longer holds bytes for ``account`` (a dataset deleted, or charged to another account): its
    last sample is integrated until ``now`` and removed. Flushes; the caller commits."""
    now = now or utcnow()
    previous = session.get(StorageUsage, (account, storage_class, source), with_for_update=True)
    if previous is None:
        return
    if now > previous.sampled_at:
        _add_byte_seconds(session, account, storage_class, previous.bytes, previous.sampled_at, now)
    session.delete(previous)
    session.flush()


def set_source(
    session: Session,
    account: str,
    storage_class: str,
    source: str,
    bytes_: int,
    *,
    now: datetime | None = None,
) -> None:
    """``source`` of ``account`` holds ``bytes_`` in ``storage_class`` from ``now`` on: a new sample, or, for 0
    bytes, the source forgotten (integrated until ``now`` and removed, so no empty rows are kept). Public: the
    domains that keep the platform's own copies (published processors' notebooks, dashboards) report their owners'
    bytes here when they change and on each sampler pass. Flushes; the caller commits."""
    if bytes_ > 0:
        record_sample(session, account, storage_class, source, bytes_, now=now)
    else:
        forget_source(session, account, storage_class, source, now=now)


def set_source_of_every_account(
    session: Session, source: str, storage_class: str, sizes: dict[str, int], *, now: datetime | None = None
) -> None:
    """One sampler pass of a source that every account may hold (e.g. ``dashboards``): each account of ``sizes``
    holds its bytes in ``storage_class`` from ``now`` on (``set_source``); the source is forgotten for every other
    account, and where it was charged in another class. Flushes; the caller commits."""
    now = now or utcnow()
    for row in list(session.scalars(select(StorageUsage).where(StorageUsage.source == source))):
        if row.account_name not in sizes or row.storage_class != storage_class:
            forget_source(session, row.account_name, row.storage_class, source, now=now)
    for name, size in sizes.items():
        set_source(session, name, storage_class, source, size, now=now)


def forget_account(session: Session, account: str, *, now: datetime | None = None) -> None:
    """Every source of ``account`` stops being charged at ``now`` (erasure: its home is gone, its dashboards are
    deleted, its processors withdrawn or handed over, its datasets' next payer starts at the next sample). What was
    held until then stays in ``storage_month_totals`` for the month's statement. Flushes; the caller commits."""
    now = now or utcnow()
    for row in list(session.scalars(select(StorageUsage).where(StorageUsage.account_name == account))):
        forget_source(session, account, row.storage_class, row.source, now=now)


def stored_bytes(session: Session, account: str) -> dict[str, int]:
    """The account's latest bytes per storage class (all sources together)."""
    rows = session.execute(
        select(StorageUsage.storage_class, func.sum(StorageUsage.bytes))
        .where(StorageUsage.account_name == account)
        .group_by(StorageUsage.storage_class)
    )
    return {storage_class: int(total or 0) for storage_class, total in rows}


def quota_bytes(catalogue: Catalogue, account: Account, storage_class: str) -> int | None:
    """The plan's quota of ``storage_class`` in bytes; None when the plan gives none (nothing may be written)."""
    plan = catalogue.plans.get(account.plan)
    if plan is None or storage_class not in plan.storage_quota_tb:
        return None
    return int(plan.storage_quota_tb[storage_class] * TB)


def check_write(
    session: Session, catalogue: Catalogue, account: Account, storage_class: str, bytes_: int
) -> None:
    """Refuse (``StorageQuotaExceeded``) a write of ``bytes_`` more in ``storage_class`` that would pass the plan's
    quota, or one in a class the plan gives no quota for, or under an ended plan. Returns None when it fits.

    The one function other domains call before a write the platform controls (e.g. a dataset upload)."""
    if bytes_ < 0:
        raise ValueError("bytes must not be negative")
    tier = catalogue.storage.get(storage_class)
    label = tier.display_name if tier else storage_class
    plan = catalogue.plans.get(account.plan)
    plan_label = plan.display_name if plan else account.plan
    ends = plan_ends_at(plan, account.plan_started_at) if plan is not None and not account.is_admin else None
    if ends is not None and utcnow() >= ends:
        raise StorageQuotaExceeded(
            f"Your {plan_label} plan ended on {ends:%Y-%m-%d}: nothing more can be stored. Ask an administrator to "
            "move you to another plan."
        )
    limit = quota_bytes(catalogue, account, storage_class)
    if limit is None:
        raise StorageQuotaExceeded(
            f"Your {plan_label} plan includes no {label}; choose another storage class."
        )
    used = stored_bytes(session, account.name).get(storage_class, 0)
    if used + bytes_ > limit:
        raise StorageQuotaExceeded(
            f"Your {label} is full: {_gb(used)} of the {_gb(limit)} of your {plan_label} plan are used, and "
            f"writing {_gb(bytes_)} more would pass it by {_gb(used + bytes_ - limit)}. Delete files you no longer "
            "need, or ask an administrator for a larger plan."
        )


def check_account_write(
    session: Session, catalogue: Catalogue, account_name: str, storage_class: str, bytes_: int
) -> None:
    """``check_write`` for the account named ``account_name`` (no such account: nothing to check, the write's own
    rules refuse it)."""
    account = session.scalar(select(Account).where(Account.name == account_name))
    if account is not None:
        check_write(session, catalogue, account, storage_class, bytes_)


def tb_months(
    session: Session, account: str, month: str, start: datetime, until: datetime
) -> dict[str, float]:
    """TB-months per storage class of ``account`` in ``month`` (``[start, month end)``) up to ``until``: the
    integrated totals plus what each source held since its last sample."""
    byte_seconds: dict[str, float] = {}
    for storage_class, amount in session.execute(
        select(StorageMonthTotal.storage_class, StorageMonthTotal.byte_seconds).where(
            StorageMonthTotal.account_name == account, StorageMonthTotal.month == month
        )
    ):
        byte_seconds[storage_class] = byte_seconds.get(storage_class, 0.0) + amount
    for row in session.scalars(select(StorageUsage).where(StorageUsage.account_name == account)):
        for part, seconds in split_by_month(max(row.sampled_at, start), until):
            if part == month and seconds > 0:
                byte_seconds[row.storage_class] = (
                    byte_seconds.get(row.storage_class, 0.0) + row.bytes * seconds
                )
    seconds_in_month = (next_month_start(start) - start).total_seconds()
    return {k: v / (TB * seconds_in_month) for k, v in byte_seconds.items()}


def folder_bytes(path: Path) -> int:
    """Allocated bytes under ``path`` (``st_blocks x 512``), each inode once, never following symbolic links;
    entries that vanish or cannot be read while walking are skipped."""
    root = os.lstat(path)
    seen: set[tuple[int, int]] = {(root.st_dev, root.st_ino)}
    total = root.st_blocks * 512  # the folder itself, as a filesystem quota counts it
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
    return total


def home_path(mode: str, homes_root: str, folder: str) -> Path | None:
    """Where the service can measure the home: the local folder, or the Docker volume's folder on this host."""
    if mode in ("docker", "swarm"):
        try:
            import docker
            from docker.errors import DockerException, NotFound
        except ImportError:
            return None
        from polartep_hub.spawners.home_volume import home_volume_name

        try:
            client = docker.from_env(timeout=30)
        except DockerException:
            return None
        try:
            mountpoint = client.api.inspect_volume(home_volume_name(folder))["Mountpoint"]
        except (NotFound, DockerException, KeyError):
            return None
        finally:
            client.close()
        return Path(mountpoint)
    if not homes_root:
        return None
    home = Path(homes_root) / folder
    return home if home.is_dir() and not home.is_symlink() else None


@dataclass
class SamplePass:
    sampled: dict[str, int]  # account -> bytes of its home
    missing: list[str]  # no home to measure (never started, or not readable here)


class StorageSampler:
    """Samples every account's home (``sample_once``) every ``interval`` seconds (``run``), then the other sources
    (``other_sources``: the data domain's datasets, ``data/metering.sample_datasets``), each in its transaction."""

    def __init__(
        self,
        context: ServiceContext,
        *,
        clock: Callable[[], datetime] = utcnow,
        other_sources: Sequence[Callable[[Session, datetime], object]] = (),
    ) -> None:
        self.context = context
        self.clock = clock
        self.other_sources = tuple(other_sources)

    def sample_once(self) -> SamplePass:
        config = self.context.config
        with self.context.session() as session:
            names = list(
                session.scalars(
                    select(Account.name)
                    .outerjoin(PendingErasure, PendingErasure.account_id == Account.id)
                    .where(PendingErasure.account_id.is_(None))
                    .order_by(Account.name)
                )
            )
        result = SamplePass({}, [])
        for name in names:
            path = home_path(config.mode, config.homes_root, config.home_folder(name))
            # A home this process may not list (another uid's 0700 folder without root) is not measured as 0.
            readable = path is not None and os.access(path, os.R_OK | os.X_OK)
            size = folder_bytes(path) if readable else None
            if size is None:
                result.missing.append(name)
                continue
            # One short transaction per account: a long walk never holds the database.
            with self.context.session() as session:
                if session.scalar(select(Account.id).where(Account.name == name)) is None:
                    continue  # erased meanwhile
                record_sample(session, name, config.home_storage_class, HOME_SOURCE, size, now=self.clock())
                session.commit()
            result.sampled[name] = size
        for sample in self.other_sources:
            with self.context.session() as session:
                sample(session, self.clock())
                session.commit()
        return result

    async def run(self, interval: float) -> None:
        log.info("storage sampler started (every %g s)", interval)
        while True:
            try:
                await asyncio.to_thread(self.sample_once)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("storage sample pass failed (%s); retry in %g s", error, interval)
            await asyncio.sleep(interval)


def start_storage_sampler(
    context: ServiceContext, other_sources: Sequence[Callable[[Session, datetime], object]] = ()
) -> asyncio.Task | None:
    """Sample homes (and ``other_sources``) as a task of the running service when a hub runs it."""
    if context.hub_api is None:
        return None
    sampler = StorageSampler(context, other_sources=other_sources)
    return asyncio.create_task(sampler.run(context.config.storage_sample_interval), name="storage-sampler")
