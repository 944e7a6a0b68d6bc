"""The accounts' HTTP routes: the caller's account, entitlements, password checks, and creating or changing accounts.

Paths are relative to ``<prefix>api/v1`` (``service/app.py`` mounts ``router`` there).

Rules this module guarantees:

* Each route states who may call it through its access dependency (``service/web/access.py``); the rules are in the
  docstrings and in the OpenAPI document.
* Routes that touch the database are plain ``def`` (run in FastAPI's thread pool) and finish their transaction before
  returning; nothing awaits while a transaction is open.
* Accounts are created lazily for any valid user name JupyterHub vouches for, on the default plan.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from polartep_hub.accounts import entitlements as subscriptions
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import (
    AccountCreate,
    AccountNamePath,
    AccountOut,
    AccountUpdate,
    Entitlements,
    LoginResult,
    Me,
    PasswordLogin,
)
from polartep_hub.accounts.login import LoginThrottlePolicy, attempt_login
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import AdminOrHubCaller, Context, HubCaller, ServiceCaller, UserCaller

PathName = AccountNamePath  # schemas.py: with the name rule in the document

router = APIRouter()


@router.get(
    "/me",
    response_model=Me,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        409: {"description": "single-user mode: only the administrator has an account"},
    },
)
def me(caller: UserCaller, context: Context) -> Me:
    """The calling user's account (created on the default plan at first sight) and the profiles it allows."""
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        admin = caller.admin or account.is_admin
        return Me(
            name=account.name,
            admin=admin,
            plan=account.plan,
            plan_started_at=account.plan_started_at,
            profiles=subscriptions.allowed_profiles(context.catalogue, account, admin=admin),
        )


@router.get(
    "/users/{name}/entitlements",
    response_model=Entitlements,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        403: {"description": "not yours"},
        409: {"description": "single-user mode: only the administrator has an account"},
    },
)
def entitlements(
    name: PathName,
    caller: ServiceCaller,
    context: Context,
    admin: Annotated[bool, Query(description="hub only: JupyterHub says this user is an admin")] = False,
) -> Entitlements:
    """The profiles ``name`` may start now (plan + active subscriptions, see ``subscriptions.py``), with the plan, its
    start and (Trial) end, and the active subscriptions. The hub, an admin user, or the user themself."""
    is_self = caller.is_user and caller.name == name
    if not (caller.is_hub or (caller.is_user and caller.admin) or is_self):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may only read your own entitlements")
    accounts.check_account_name(name)
    with context.session() as session:
        account = accounts.get_or_create_account(session, name, default_plan=context.config.default_plan)
        # Only the hub may vouch for admin status by parameter; a user's own token says it for itself.
        is_admin = (caller.is_hub and admin) or (is_self and caller.admin)
        if accounts.is_being_erased(session, account):
            # Nothing starts for an account being erased: no server (hub), no cluster (gateway).
            return Entitlements(
                name=account.name,
                plan=account.plan,
                profiles=[],
                plan_started_at=account.plan_started_at,
                being_erased=True,
                message=accounts.BEING_ERASED_MESSAGE[0].upper() + accounts.BEING_ERASED_MESSAGE[1:] + ".",
            )
        granted = subscriptions.entitlement(session, context.catalogue, account, admin=is_admin)
        return Entitlements(
            name=granted.name,
            plan=granted.plan,
            profiles=list(granted.profiles),
            plan_display_name=granted.plan_display_name,
            plan_started_at=granted.plan_started_at,
            plan_ends_at=granted.plan_ends_at,
            plan_expired=granted.plan_expired,
            subscriptions=list(granted.subscriptions),
            message=granted.message,
        )


@router.post(
    "/auth/password",
    response_model=LoginResult,
    responses={
        401: {"description": "invalid username or password (also for unknown names)"},
        403: {"description": "the password is right but the account awaits approval"},
        429: {
            "description": "too many failed logins from the client's address; Retry-After says when to retry"
        },
        503: {"description": "too many passwords are being checked at once; Retry-After says when to retry"},
    },
)
def password_login(body: PasswordLogin, caller: HubCaller, context: Context) -> Any:
    """Check a user name and password for the embedded login, throttled per client address
    (``login_throttle.py``). Hub only; the hub sends the client's address as ``client_address``."""
    policy = LoginThrottlePolicy.from_config(context.config)
    with context.session() as session:
        # Refusals (pending approval, being erased, reset required: 403; throttled: 429; busy: 503) go to the
        # app-wide handler (errors.py), with their reason, Retry-After and retry_at.
        result = attempt_login(
            session, context.passwords, body.username, body.password, body.client_address or "hub", policy
        )
    if result is None:
        # One message for every failure, so callers cannot tell unknown users from wrong passwords.
        return JSONResponse(
            {"detail": "invalid username or password"}, status_code=status.HTTP_401_UNAUTHORIZED
        )
    return LoginResult(name=result.name, admin=result.admin)


def _account_out(account: Any) -> AccountOut:
    return AccountOut(
        name=account.name,
        admin=account.is_admin,
        approved=account.approved,
        plan=account.plan,
        plan_started_at=account.plan_started_at,
        created_at=account.created_at,
    )


@router.post(
    "/accounts",
    response_model=AccountOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "unknown plan"},
        409: {"description": "the account exists, or single-user mode"},
    },
)
def create_account(body: AccountCreate, caller: AdminOrHubCaller, context: Context) -> AccountOut:
    """Create an account (approved; on the default plan unless ``plan`` is given). Admin users or the hub."""
    plan = accounts.check_plan(context.catalogue, body.plan or context.config.default_plan)
    # Hash outside the transaction: argon2 takes tens of milliseconds and needs no database.
    password_hash = context.passwords.hash(body.password) if body.password is not None else None
    with context.session() as session:
        account = accounts.create_account(
            session, context.catalogue, body.name, plan=plan, password_hash=password_hash, admin=body.admin
        )
        return _account_out(account)


@router.patch(
    "/accounts/{name}",
    response_model=AccountOut,
    responses={400: {"description": "unknown plan"}, 404: {"description": "no such account"}},
)
def update_account(
    name: PathName, body: AccountUpdate, caller: AdminOrHubCaller, context: Context
) -> AccountOut:
    """Change an account's plan (its plan period restarts). Admin users or the hub."""
    with context.session() as session:
        account = accounts.change_plan(session, context.catalogue, name, body.plan)
        return _account_out(account)


def refresh_metrics(context: ServiceContext) -> None:
    """The accounts' gauges of the service's metrics: how many accounts, and the password hasher's load."""
    with context.session() as session:
        context.metrics.accounts.set(accounts.count_accounts(session))
    hashing = context.passwords
    context.metrics.password_hash_slots.set(hashing.max_concurrent)
    context.metrics.password_hashes_in_flight.set(hashing.in_flight)
    context.metrics.password_hashes_peak.set(hashing.peak_in_flight)
    context.metrics.password_hash_busy_refusals.set(hashing.busy_refusals)
