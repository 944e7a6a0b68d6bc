"""Plans and subscriptions: what an account holds, and the one rule for which profiles it may start.

An account has exactly one execution plan (``accounts.plan``, since ``accounts.plan_started_at``) and any number of
catalogue subscriptions (table ``subscriptions``). A subscription is active while its ``ended_at`` is empty; ending
it keeps the row, so statements can still charge the months it was held.

**The allowed-profiles rule** (``entitlement``), applied everywhere a profile is offered or checked (spawn form,
REST spawn, ``/api/v1/me``, admin views):

1. Administrators may start every profile.
2. Otherwise, the profiles of the account's plan, plus the profile of each active subscription, listed in catalogue
   order without repeats.
3. A plan with ``duration_months`` (Trial) ends that many calendar months after ``plan_started_at``; from then on the
   account may start **nothing** (not even the profiles of its subscriptions: every server runs on the plan's CPU-hour
   allowance, which has ended) and the entitlement says why, until an administrator moves it to another plan.
4. A plan or subscription the catalogue no longer has grants nothing (logged), rather than a guess.

Rules this module guarantees:

* Every plan and subscription written is one of the catalogue; unknown names are refused with the known ones listed
  (``UnknownPlan``/``UnknownSubscription``), a missing account is ``AccountNotFound``, subscribing twice is
  ``AlreadySubscribed`` (also under concurrency: a partial unique index allows one active row per account and
  subscription) and ending what is not held is ``NotSubscribed``; a refused request stores nothing.
* Each function that changes state commits before returning (no transaction is held across an ``await``).
* The rule above is computed from the database on every call, so a change is in force for the very next spawn.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from polartep_hub.accounts.models import Account, AccountSubscription
from polartep_hub.accounts.store import AccountError, require_account
from polartep_hub.catalogue import Catalogue, Plan
from polartep_hub.service.orm import utcnow

log = logging.getLogger(__name__)


class UnknownSubscription(AccountError):
    """The catalogue has no subscription of that name."""


class AlreadySubscribed(AccountError):
    """The account already holds that subscription (active)."""


class NotSubscribed(AccountError):
    """The account holds no active subscription of that name."""


def check_subscription(catalogue: Catalogue, subscription: str) -> str:
    """``subscription`` if the catalogue has it; ``UnknownSubscription`` naming the known ones otherwise."""
    if subscription not in catalogue.subscriptions:
        raise UnknownSubscription(
            f"unknown subscription {subscription[:80]!r}; known subscriptions: {', '.join(catalogue.subscriptions)}"
        )
    return subscription


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months (the day is clamped to the month's last day: 31 Jan + 1 = 28 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def plan_ends_at(plan: Plan | None, started_at: datetime) -> datetime | None:
    """When a plan with a duration (Trial) ends; None for plans that run until changed."""
    if plan is None or not plan.duration_months:
        return None
    return add_months(started_at, plan.duration_months)


def active_subscriptions(session: Session, account: Account) -> list[AccountSubscription]:
    """The account's active subscriptions, oldest first."""
    return list(
        session.scalars(
            select(AccountSubscription)
            .where(AccountSubscription.account_id == account.id, AccountSubscription.ended_at.is_(None))
            .order_by(AccountSubscription.started_at, AccountSubscription.id)
        )
    )


def subscription_history(session: Session, account: Account) -> list[AccountSubscription]:
    """Every subscription the account holds or held, oldest first (ended ones included, for statements)."""
    return list(
        session.scalars(
            select(AccountSubscription)
            .where(AccountSubscription.account_id == account.id)
            .order_by(AccountSubscription.started_at, AccountSubscription.id)
        )
    )


@dataclass(frozen=True)
class Entitlement:
    """What an account may start now, and why (the allowed-profiles rule of this module)."""

    name: str
    admin: bool
    plan: str
    plan_display_name: str
    plan_started_at: datetime
    plan_ends_at: datetime | None
    plan_expired: bool
    subscriptions: tuple[str, ...]  # active, in the order they were taken
    profiles: tuple[str, ...]  # allowed, in catalogue order
    message: str | None  # why nothing (or less than expected) is allowed; None when all is well


def entitlement(
    session: Session, catalogue: Catalogue, account: Account, *, admin: bool, now: datetime | None = None
) -> Entitlement:
    """Apply the allowed-profiles rule to ``account`` at ``now`` (default: the current time)."""
    now = now or utcnow()
    admin = admin or account.is_admin
    plan = catalogue.plans.get(account.plan)
    ends_at = plan_ends_at(plan, account.plan_started_at)
    expired = ends_at is not None and now >= ends_at
    held = tuple(row.subscription for row in active_subscriptions(session, account))
    message = None
    if admin:
        granted = set(catalogue.profiles)
    elif plan is None:
        log.warning("account %s has plan %r, which the catalogue no longer has", account.name, account.plan)
        granted = set()
        message = f"Your plan {account.plan!r} is no longer offered; ask an administrator to choose another."
    elif expired:
        granted = set()
        message = (
            f"Your {plan.display_name} plan ended on {ends_at:%Y-%m-%d}; "
            "ask an administrator to move you to another plan."
        )
    else:
        granted = set(plan.profiles)
        for name in held:
            subscription = catalogue.subscriptions.get(name)
            if subscription is None:
                log.warning(
                    "account %s holds subscription %r, which the catalogue no longer has", account.name, name
                )
                continue
            granted.add(subscription.profile)
    return Entitlement(
        name=account.name,
        admin=admin,
        plan=account.plan,
        plan_display_name=plan.display_name if plan else account.plan,
        plan_started_at=account.plan_started_at,
        plan_ends_at=ends_at,
        plan_expired=expired and not admin,
        subscriptions=held,
        profiles=tuple(name for name in catalogue.profiles if name in granted),
        message=message,
    )


def _account(session: Session, name: str) -> Account:
    account = require_account(session, name)
    return account


def subscribe(session: Session, catalogue: Catalogue, name: str, subscription: str) -> AccountSubscription:
    """Give ``name`` the catalogue subscription ``subscription``, starting now."""
    check_subscription(catalogue, subscription)
    account = _account(session, name)
    if any(row.subscription == subscription for row in active_subscriptions(session, account)):
        raise AlreadySubscribed(f"account {name!r} already holds the subscription {subscription!r}")
    row = AccountSubscription(account_id=account.id, subscription=subscription, started_at=utcnow())
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request subscribed first (the partial unique index of migration 0003).
        session.rollback()
        raise AlreadySubscribed(f"account {name!r} already holds the subscription {subscription!r}") from None
    log.info("account %s: subscribed to %s", name, subscription)
    return row


def unsubscribe(session: Session, catalogue: Catalogue, name: str, subscription: str) -> AccountSubscription:
    """End ``name``'s active subscription ``subscription`` now; the row stays, with its end date."""
    check_subscription(catalogue, subscription)
    account = _account(session, name)
    for row in active_subscriptions(session, account):
        if row.subscription == subscription:
            row.ended_at = utcnow()
            session.commit()
            log.info("account %s: subscription %s ended", name, subscription)
            return row
    raise NotSubscribed(f"account {name!r} holds no active subscription {subscription!r}")


def allowed_profiles(catalogue: Catalogue, account: Account, *, admin: bool) -> list[str]:
    """The profile names ``account`` may start now, in catalogue order: the rule of ``entitlement``
    (plan profiles plus active subscriptions' profiles; nothing after a Trial ended; every profile for admins)."""
    session = object_session(account)
    if session is None:
        raise ValueError("allowed_profiles needs an account loaded in an open session")
    return list(entitlement(session, catalogue, account, admin=admin).profiles)
