"""The platform service's HTTP routes: health, metrics, catalogue, accounts, entitlements and password checks.

Route paths here are relative; ``app.create_app`` mounts ``service_router`` at the service prefix
(``/services/platform/``) and ``api_router`` at ``<prefix>api/v1``, because requests arrive through the proxy with the
prefix intact.

Rules this module guarantees:

* Each route states who may call it through its access dependency (``access.py``); the rules are in the docstrings
  and in the OpenAPI document.
* Routes that touch the database are plain ``def`` (run in FastAPI's thread pool) and finish their transaction before
  returning; nothing awaits while a transaction is open.
* Accounts are created lazily for any valid user name JupyterHub vouches for, on the default plan.
"""

from __future__ import annotations

import secrets
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from . import accounts, subscriptions
from .access import AdminOrHubCaller, Caller, Context, HubCaller, ServiceCaller, UserCaller
from .db import database_is_available
from .identity import METRICS_SCOPE
from .login_throttle import LoginThrottlePolicy, attempt_login
from .schemas import (
    AccountCreate,
    AccountNamePath,
    AccountOut,
    AccountUpdate,
    Entitlements,
    Health,
    LoginResult,
    Me,
    PasswordLogin,
)

try:
    SERVICE_VERSION = version("polartep")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVICE_VERSION = "0.0.0"

PathName = AccountNamePath  # schemas.py: with the name rule in the document

service_router = APIRouter()
api_router = APIRouter()


# --- service-level routes: <prefix>... ---------------------------------------------------------------------------


@service_router.get("/", include_in_schema=False)
def index(context: Context) -> dict[str, Any]:
    """Where things are (no authentication)."""
    prefix = context.config.prefix
    return {
        "service": context.config.service_name,
        "version": SERVICE_VERSION,
        "health": f"{prefix}health",
        "openapi": f"{prefix}api/v1/openapi.json",
        "docs": f"{prefix}api/v1/docs",
        "login": f"{prefix}login",
    }


@service_router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(context: Context) -> Any:
    """Liveness and database reachability (no authentication): 503 while the database does not answer."""
    database_ok = database_is_available(context.engine)
    body = Health(
        status="ok" if database_ok else "degraded",
        database="ok" if database_ok else "unavailable",
        catalogue=context.catalogue.fingerprint,
        version=SERVICE_VERSION,
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)


@service_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        403: {"description": "the token has neither the read:metrics scope nor is an admin's"},
    },
)
def metrics(caller: Caller, context: Context) -> Response:
    """Prometheus metrics; needs JupyterHub's ``read:metrics`` scope or an admin user."""
    if not (caller.has_scope(METRICS_SCOPE) or (caller.is_user and caller.admin)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="reading metrics needs the read:metrics scope")
    with context.session() as session:
        context.metrics.accounts.set(accounts.count_accounts(session))
    hashing = context.passwords
    context.metrics.password_hash_slots.set(hashing.max_concurrent)
    context.metrics.password_hashes_in_flight.set(hashing.in_flight)
    context.metrics.password_hashes_peak.set(hashing.peak_in_flight)
    context.metrics.password_hash_busy_refusals.set(hashing.busy_refusals)
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


# --- API routes: <prefix>api/v1/... ------------------------------------------------------------------------------


@api_router.get("/docs", include_in_schema=False)
def docs(context: Context) -> HTMLResponse:
    """Swagger UI for the OpenAPI document (its assets come from a CDN, so the page needs a looser CSP)."""
    nonce = secrets.token_urlsafe(16)
    page = get_swagger_ui_html(
        openapi_url=f"{context.config.prefix}api/v1/openapi.json", title="Polar TEP platform service API"
    )
    html = page.body.decode("utf-8").replace("<script", f'<script nonce="{nonce}"')
    cdn = "https://cdn.jsdelivr.net"
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}' {cdn}; style-src {cdn} 'unsafe-inline'; "
        f"img-src 'self' data: {cdn} https://fastapi.tiangolo.com; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})


@api_router.get("/catalogue")
def catalogue(caller: ServiceCaller, context: Context) -> dict[str, Any]:
    """The whole service catalogue: profiles, plans, subscriptions, storage and prices. Any user of the service."""
    return context.catalogue.as_dict()


@api_router.get(
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
            profiles=accounts.allowed_profiles(context.catalogue, account, admin=admin),
        )


@api_router.get(
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


@api_router.post(
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


@api_router.post(
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


@api_router.patch(
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
