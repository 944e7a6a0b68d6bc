"""HTTP API for administrators to see accounts and change their plan and subscriptions.

Routes (under ``<prefix>api/v1``), each for JupyterHub admin users or the hub (``polartep accounts …`` calls them
with the hub's internal token):

* ``GET /accounts`` — every account with its plan and active subscriptions;
* ``GET /accounts/{name}`` — one account: plan (start, Trial end), subscriptions (history too), allowed profiles;
* ``PUT /accounts/{name}/plan`` ``{"plan": "standard"}`` — move to another plan (its period restarts);
* ``POST /accounts/{name}/subscriptions/{subscription}`` — add a catalogue subscription (201);
* ``DELETE /accounts/{name}/subscriptions/{subscription}`` — end it (the row stays for statements).

Rules this module guarantees:

* Unknown plan or subscription: 400 naming the known ones; unknown account: 404; subscribing twice: 409; ending a
  subscription that is not held: 404. Nothing is stored for a refused request.
* Answers are built from the same ``subscriptions.entitlement`` the spawner asks for, so what an admin sees is what
  the next spawn gets.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from polartep_hub.accounts import entitlements as subscriptions
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath  # with the name rule in the document
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.store import require_account
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.web.access import AdminOrHubCaller, Context
from polartep_hub.service.web.identity import Identity

log = logging.getLogger(__name__)


SubscriptionPath = Annotated[str, Path(max_length=64, description="a subscription of the catalogue, e.g. ml")]

router = APIRouter()


class PlanChange(BaseModel):
    """The plan to move an account to."""

    model_config = ConfigDict(extra="forbid")
    plan: Annotated[str, Field(min_length=1, max_length=64, examples=["standard"])]


class SubscriptionOut(BaseModel):
    subscription: str
    display_name: str
    profile: str | None
    started_at: datetime
    ended_at: datetime | None


class AccountSummary(BaseModel):
    name: str
    admin: bool
    approved: bool
    plan: str
    plan_display_name: str
    plan_started_at: datetime
    plan_ends_at: datetime | None = Field(description="When a plan with a duration (Trial) ends")
    plan_expired: bool
    subscriptions: list[str] = Field(description="Active subscriptions")


class AccountDetail(AccountSummary):
    created_at: datetime
    full_name: str | None
    profiles: list[str] = Field(description="The profiles the account may start now, in catalogue order")
    message: str | None = Field(description="Why nothing (or less) is allowed, when that is so")
    subscription_history: list[SubscriptionOut] = Field(description="Every subscription held, ended ones too")


class AccountList(BaseModel):
    accounts: list[AccountSummary]


def summary(session: Session, catalogue: Catalogue, account: Account) -> AccountSummary:
    granted = subscriptions.entitlement(session, catalogue, account, admin=False)
    return AccountSummary(
        name=account.name,
        admin=account.is_admin,
        approved=account.approved,
        plan=account.plan,
        plan_display_name=granted.plan_display_name,
        plan_started_at=account.plan_started_at,
        plan_ends_at=granted.plan_ends_at,
        plan_expired=granted.plan_expired,
        subscriptions=list(granted.subscriptions),
    )


def detail(session: Session, catalogue: Catalogue, account: Account) -> AccountDetail:
    granted = subscriptions.entitlement(session, catalogue, account, admin=False)
    history = []
    for row in subscriptions.subscription_history(session, account):
        offered = catalogue.subscriptions.get(row.subscription)
        history.append(
            SubscriptionOut(
                subscription=row.subscription,
                display_name=offered.display_name if offered else row.subscription,
                profile=offered.profile if offered else None,
                started_at=row.started_at,
                ended_at=row.ended_at,
            )
        )
    return AccountDetail(
        **summary(session, catalogue, account).model_dump(),
        created_at=account.created_at,
        full_name=account.full_name,
        profiles=list(granted.profiles),
        message=granted.message,
        subscription_history=history,
    )


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.name)))


def load_account(session: Session, name: str) -> Account:
    account = require_account(session, name)
    return account


def _by(caller: Identity) -> str:
    return "the hub" if caller.is_hub else caller.name


@router.get("/accounts", response_model=AccountList)
def get_accounts(caller: AdminOrHubCaller, context: Context) -> AccountList:
    """Every account with its plan and active subscriptions, by name. Admin users or the hub."""
    with context.session() as session:
        return AccountList(accounts=[summary(session, context.catalogue, a) for a in list_accounts(session)])


@router.get(
    "/accounts/{name}", response_model=AccountDetail, responses={404: {"description": "no such account"}}
)
def get_account_detail(name: AccountNamePath, caller: AdminOrHubCaller, context: Context) -> AccountDetail:
    """One account: plan, its start and (Trial) end, subscriptions (ended ones too), allowed profiles."""
    with context.session() as session:
        return detail(session, context.catalogue, load_account(session, name))


@router.put(
    "/accounts/{name}/plan",
    response_model=AccountDetail,
    responses={400: {"description": "unknown plan"}, 404: {"description": "no such account"}},
)
def put_plan(
    name: AccountNamePath, body: PlanChange, caller: AdminOrHubCaller, context: Context
) -> AccountDetail:
    """Move the account to another plan; its period (a Trial's clock) restarts. The same plan changes nothing."""
    with context.session() as session:
        account = accounts.change_plan(session, context.catalogue, name, body.plan)
        log.info("plan of %s set to %s by %s", name, body.plan, _by(caller))
        return detail(session, context.catalogue, account)


@router.post(
    "/accounts/{name}/subscriptions/{subscription}",
    response_model=AccountDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "unknown subscription"},
        404: {"description": "no such account"},
        409: {"description": "already subscribed"},
    },
)
def post_subscription(
    name: AccountNamePath, subscription: SubscriptionPath, caller: AdminOrHubCaller, context: Context
) -> AccountDetail:
    """Give the account a catalogue subscription, starting now; its profile is allowed from the next spawn."""
    with context.session() as session:
        subscriptions.subscribe(session, context.catalogue, name, subscription)
        log.info("%s subscribed to %s by %s", name, subscription, _by(caller))
        return detail(session, context.catalogue, load_account(session, name))


@router.delete(
    "/accounts/{name}/subscriptions/{subscription}",
    response_model=AccountDetail,
    responses={
        400: {"description": "unknown subscription"},
        404: {"description": "no such account, or the subscription is not held"},
    },
)
def delete_subscription(
    name: AccountNamePath, subscription: SubscriptionPath, caller: AdminOrHubCaller, context: Context
) -> AccountDetail:
    """End the account's subscription now (kept, with its end date, for statements)."""
    with context.session() as session:
        subscriptions.unsubscribe(session, context.catalogue, name, subscription)
        log.info("%s unsubscribed from %s by %s", name, subscription, _by(caller))
        return detail(session, context.catalogue, load_account(session, name))
