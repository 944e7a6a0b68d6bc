"""Monthly statements in EUR: each account's plan and subscriptions, CPU-hours by kind, storage, top-ups and total.

**Pro-rating rule (by day).** A month has ``D`` days (UTC). Each day is charged to what the account holds at the
day's end (its last instant, i.e. held from before ``24:00`` until at least ``24:00``); for the month in progress,
at the time the statement is made. So a plan changed on the 10th at 15:00 is charged the old plan for days 1-9 and
the new one from the 10th; a subscription ended on the 20th at noon is charged for days 1-19; one started on the
20th for days 20-D. A plan or subscription held for ``d`` days costs ``price x d / D``.

**Money rule.** Prices are read from the catalogue as ``Decimal`` (from their text, never through binary floats);
each line's amount is computed exactly and rounded once, to the cent, half up (``ROUND_HALF_UP``); the total is the
sum of the rounded lines. Quantities of CPU-hours and TB-months are shown to 3 decimals (also rounded once).

**What is on it**, one line each:

* ``plan``: each plan held in the month (days held, the plan's monthly price, the pro-rated amount);
* ``subscription``: each subscription held (the same);
* ``cpu``: CPU-hours by kind (``server``, ``dask`` = schedulers and workers, and any other kind of the ledger; a
  processor run is charged through its cluster's intervals, never again), from the usage ledger: cores x the
  seconds of each interval inside the month (open ones until now). They are paid by the plan's allowance: no
  amount. Their sum equals the ledger's core-seconds of the month.
* ``top_up``: each top-up (CPU-hours, by whom, why): granted, no amount (the catalogue has no top-up price);
* ``support``: each support service an administrator recorded (``top_ups.record_support_charge``): quantity of the
  catalogue's unit (``once``, ``day``) x its price;
* ``storage``: TB-months of each storage class of the catalogue (``storage.py``: the sampled bytes integrated over
  the month, 1 TB = 10^12 bytes) x its price per TB-month.

Accounts on a month's statement: every account that held a plan in the month, and every name (also an erased
account's pseudonym) with usage in it.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account, AccountSubscription, PlanPeriod
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.orm import utcnow
from polartep_hub.usage import storage
from polartep_hub.usage.models import QuotaTopUp, SupportCharge, UsageInterval

CENT = Decimal("0.01")
MILLI = Decimal("0.001")
DASK_KINDS = ("dask-scheduler", "dask-worker")
CSV_COLUMNS = (
    "month",
    "account",
    "kind",
    "item",
    "description",
    "quantity",
    "unit",
    "unit_price_eur",
    "amount_eur",
)


class BadMonth(ValueError):
    """A month that is not ``YYYY-MM``, or lies in the future."""


def parse_month(text: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the month ``YYYY-MM`` (UTC); ``BadMonth`` for another shape or a month not begun."""
    try:
        year, month = (int(part) for part in text.split("-"))
        if len(text) != 7 or not 1 <= month <= 12:
            raise ValueError
        start = datetime(year, month, 1, tzinfo=UTC)
    except ValueError:
        raise BadMonth(f"month must be YYYY-MM, e.g. 2026-11 (got {text[:20]!r})") from None
    if start > (now or utcnow()):
        raise BadMonth(f"{text} has not begun; statements cover months up to the current one")
    days = calendar.monthrange(year, month)[1]
    return start, start + timedelta(days=days)


def money(value: float | Decimal) -> Decimal:
    """A catalogue price as an exact ``Decimal`` (from its shortest text form)."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


@dataclass(frozen=True)
class StatementLine:
    kind: str  # plan, subscription, cpu, top_up, storage, support
    item: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal  # EUR per unit (plans, subscriptions: per month)
    amount: Decimal  # EUR, rounded once to the cent


@dataclass
class Statement:
    account: str
    month: str
    until: datetime  # the month's end, or now for the month in progress
    lines: list[StatementLine] = field(default_factory=list)
    core_seconds_by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def cpu_hours(self) -> Decimal:
        """All CPU-hours of the month, from the ledger's core-seconds, rounded once to 3 decimals."""
        return (Decimal(repr(sum(self.core_seconds_by_kind.values()))) / 3600).quantize(MILLI, ROUND_HALF_UP)


def _days(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """The instant each day of the month is charged at: its end, or ``now`` for the day in progress."""
    instants = []
    day = start
    while day < end and day < now:
        instants.append(min(day + timedelta(days=1), now))
        day += timedelta(days=1)
    return instants


def _held(started_at: datetime, ended_at: datetime | None, at: datetime) -> bool:
    return started_at < at and (ended_at is None or ended_at >= at)


def _pro_rated(
    kind: str, item: str, description: str, price: Decimal, days: int, days_in_month: int
) -> StatementLine:
    amount = (price * days / days_in_month).quantize(CENT, ROUND_HALF_UP)
    return StatementLine(kind, item, description, Decimal(days), f"day of {days_in_month}", price, amount)


def _cpu_kind(kind: str) -> str:
    return "dask" if kind in DASK_KINDS else kind


def account_statement(
    session: Session,
    catalogue: Catalogue,
    name: str,
    month: str,
    *,
    now: datetime | None = None,
    storage_tb_months: dict[str, Decimal] | None = None,
) -> Statement:
    """The statement of account ``name`` (or an erased account's pseudonym) for ``month`` (``YYYY-MM``)."""
    now = now or utcnow()
    start, end = parse_month(month, now)
    until = min(end, now)
    days_in_month = (end - start).days
    instants = _days(start, end, now)
    statement = Statement(account=name, month=month, until=until)
    account = session.scalar(select(Account).where(Account.name == name))
    if account is not None:
        periods = session.scalars(
            select(PlanPeriod)
            .where(PlanPeriod.account_id == account.id, PlanPeriod.started_at < until)
            .where(or_(PlanPeriod.ended_at.is_(None), PlanPeriod.ended_at >= start))
            .order_by(PlanPeriod.started_at, PlanPeriod.id)
        ).all()
        plan_days: dict[str, int] = {}
        for at in instants:
            for period in periods:
                if _held(period.started_at, period.ended_at, at):
                    plan_days[period.plan] = plan_days.get(period.plan, 0) + 1
                    break
        for plan_name, days in plan_days.items():
            plan = catalogue.plans.get(plan_name)
            price = money(plan.price) if plan else Decimal(0)
            label = plan.display_name if plan else plan_name
            statement.lines.append(_pro_rated("plan", plan_name, f"{label} plan", price, days, days_in_month))
        subscriptions = session.scalars(
            select(AccountSubscription)
            .where(AccountSubscription.account_id == account.id, AccountSubscription.started_at < until)
            .where(or_(AccountSubscription.ended_at.is_(None), AccountSubscription.ended_at >= start))
            .order_by(AccountSubscription.started_at, AccountSubscription.id)
        ).all()
        subscription_days: dict[str, int] = {}
        for row in subscriptions:
            days = sum(1 for at in instants if _held(row.started_at, row.ended_at, at))
            if days:
                subscription_days[row.subscription] = subscription_days.get(row.subscription, 0) + days
        for item, days in subscription_days.items():
            subscription = catalogue.subscriptions.get(item)
            price = money(subscription.price) if subscription else Decimal(0)
            label = subscription.display_name if subscription else item
            statement.lines.append(
                _pro_rated("subscription", item, label, price, min(days, days_in_month), days_in_month)
            )
    for kind, cores, started, stopped in session.execute(
        select(UsageInterval.kind, UsageInterval.cores, UsageInterval.started_at, UsageInterval.stopped_at)
        .where(UsageInterval.account_name == name, UsageInterval.started_at < until)
        .where(or_(UsageInterval.stopped_at.is_(None), UsageInterval.stopped_at > start))
    ):
        seconds = (min(stopped or until, until) - max(started, start)).total_seconds()
        if seconds > 0:
            group = _cpu_kind(kind)
            statement.core_seconds_by_kind[group] = (
                statement.core_seconds_by_kind.get(group, 0.0) + cores * seconds
            )
    for kind in sorted(statement.core_seconds_by_kind):
        hours = (Decimal(repr(statement.core_seconds_by_kind[kind])) / 3600).quantize(MILLI, ROUND_HALF_UP)
        statement.lines.append(
            StatementLine(
                "cpu", kind, f"CPU-hours ({kind}), paid by the plan's allowance", hours, "CPU-hour", Decimal(0),
                Decimal("0.00"),
            )
        )  # fmt: skip
    for top_up in session.scalars(
        select(QuotaTopUp)
        .where(QuotaTopUp.account_name == name, QuotaTopUp.month == month)
        .order_by(QuotaTopUp.granted_at, QuotaTopUp.id)
    ):
        statement.lines.append(
            StatementLine(
                "top_up",
                f"top-up {top_up.granted_at:%Y-%m-%d}",
                f"{top_up.reason} (granted by {top_up.granted_by})",
                Decimal(repr(top_up.cpu_hours)).quantize(MILLI, ROUND_HALF_UP),
                "CPU-hour",
                Decimal(0),
                Decimal("0.00"),
            )
        )
    stored = (
        storage_tb_months
        if storage_tb_months is not None
        else {k: Decimal(repr(v)) for k, v in storage.tb_months(session, name, month, start, until).items()}
    )
    for tier_name, tier in catalogue.storage.items():
        tb_months = Decimal(stored.get(tier_name, 0))
        price = money(tier.price_per_tb_month)
        statement.lines.append(
            StatementLine(
                "storage",
                tier_name,
                tier.display_name,
                tb_months.quantize(MILLI, ROUND_HALF_UP),
                "TB-month",
                price,
                (tb_months * price).quantize(CENT, ROUND_HALF_UP),
            )
        )
    for charge in session.scalars(
        select(SupportCharge)
        .where(SupportCharge.account_name == name, SupportCharge.month == month)
        .order_by(SupportCharge.recorded_at, SupportCharge.id)
    ):
        offered = catalogue.services.get(charge.service)
        price = money(offered.price) if offered else Decimal(0)
        quantity = Decimal(repr(charge.quantity)).quantize(MILLI, ROUND_HALF_UP)
        statement.lines.append(
            StatementLine(
                "support",
                charge.service,
                f"{offered.display_name if offered else charge.service}: {charge.note} "
                f"(recorded by {charge.recorded_by})",
                quantity,
                offered.unit if offered else "",
                price,
                (quantity * price).quantize(CENT, ROUND_HALF_UP),
            )
        )
    return statement


def accounts_in_month(session: Session, month: str, now: datetime | None = None) -> list[str]:
    """Every account that held a plan in ``month``, and every name with usage in it, sorted."""
    start, end = parse_month(month, now)
    names = set(
        session.scalars(
            select(Account.name)
            .join(PlanPeriod, PlanPeriod.account_id == Account.id)
            .where(
                PlanPeriod.started_at < end, or_(PlanPeriod.ended_at.is_(None), PlanPeriod.ended_at >= start)
            )
        )
    )
    names.update(
        session.scalars(
            select(UsageInterval.account_name)
            .where(UsageInterval.started_at < end)
            .where(or_(UsageInterval.stopped_at.is_(None), UsageInterval.stopped_at > start))
            .distinct()
        )
    )
    return sorted(names)


def month_statements(
    session: Session, catalogue: Catalogue, month: str, *, now: datetime | None = None
) -> list[Statement]:
    """Every account's statement of ``month``."""
    now = now or utcnow()
    return [
        account_statement(session, catalogue, name, month, now=now)
        for name in accounts_in_month(session, month, now)
    ]


def statements_csv(statements: Iterable[Statement]) -> str:
    """The statements as CSV (``CSV_COLUMNS``): one row per line and a ``total`` row per account."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for statement in statements:
        for line in statement.lines:
            writer.writerow(
                [
                    statement.month,
                    statement.account,
                    line.kind,
                    line.item,
                    line.description,
                    f"{line.quantity}",
                    line.unit,
                    f"{line.unit_price}",
                    f"{line.amount}",
                ]
            )
        writer.writerow(
            [statement.month, statement.account, "total", "", "", "", "", "", f"{statement.total}"]
        )
    return out.getvalue()
