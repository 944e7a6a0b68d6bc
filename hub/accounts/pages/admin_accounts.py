"""Administrators' pages for accounts' plans and subscriptions, at ``<prefix>admin/accounts``.

* ``GET admin/accounts`` — every account: plan, Trial end, active subscriptions;
* ``GET admin/accounts/{name}`` — one account, with a plan select, a form to add a subscription and a button to end
  each active one; the forms post to ``…/plan``, ``…/subscriptions`` and ``…/subscriptions/{subscription}/end``.

Rules this module guarantees:

* Reading needs a logged-in browser (``<prefix>login``, the hub's OAuth) or a token of a JupyterHub administrator;
  a browser without a session is sent to log in, a non-administrator gets 403.
* Every form carries the ``_xsrf`` token of ``pages.py`` and is accepted only with it (``BrowserFormCaller``), so
  another site cannot submit it; changes go through ``subscriptions.py`` exactly as the API's do.
* Everything shown is rendered by the autoescaping templates: names and full names typed by users are text.
* After a change the browser is redirected (303) to the account's page, so reloading does not repeat it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from polartep_hub.accounts import entitlements as subscriptions
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.plans import detail, list_accounts, load_account, summary
from polartep_hub.accounts.password_reset import can_reset_password
from polartep_hub.accounts.store import AccountError, AccountNotFound
from polartep_hub.projects import store as projects
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import Context, optional_identity
from polartep_hub.service.web.errors import status_for
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import BrowserFormCaller, page_xsrf, read_form, render_page

router = APIRouter(include_in_schema=False)

AccountNamePath = Annotated[str, Path(max_length=64)]
SubscriptionPath = Annotated[str, Path(max_length=64)]
OptionalCaller = Annotated[Identity | None, Depends(optional_identity)]

_NOTICES = {
    "plan": "The plan was changed.",
    "subscribed": "The subscription was added.",
    "ended": "The subscription was ended.",
    "password-reset": "The password was reset: the account's sessions were ended and a reset link was e-mailed.",
    "password-reset-no-mail": "The password was reset and the sessions were ended, but the account has no e-mail "
    "address: no reset link could be sent.",
}


def _admin_or_login(
    request: Request, context: ServiceContext, caller: Identity | None
) -> Identity | Response:
    if caller is None:
        target = f"{context.config.prefix}login?next={quote(request.url.path, safe='/')}"
        return RedirectResponse(target, status_code=status.HTTP_302_FOUND)
    if not (caller.is_user and caller.admin):
        return render_page(
            context,
            "admin_forbidden.html",
            title="Administrators only",
            user=caller.name,
            admin=caller.admin,
            status_code=status.HTTP_403_FORBIDDEN,
        )
    return caller


def _require_admin_form(caller: Identity) -> None:
    if not caller.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only administrators may change accounts")


def _account_page(
    request: Request,
    context: ServiceContext,
    caller: Identity,
    name: str,
    *,
    error: str | None = None,
    problems: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with context.session() as session:
        loaded = load_account(session, name)
        account = detail(session, context.catalogue, loaded)
        password_reset = can_reset_password(context, loaded)
        account_email = loaded.email
        memberships = [
            (project.display_name, project.name, projects.role_of(project, name))
            for project in projects.visible_projects(session, projects.Actor(name=name, admin=False))
        ]
    held = set(account.subscriptions)
    return render_page(
        context,
        "admin_account.html",
        title=f"Account {account.name}",
        user=caller.name,
        admin=True,
        nav="accounts",
        account=account,
        memberships=memberships,
        plans=list(context.catalogue.plans.values()),
        offered=[s for s in context.catalogue.subscriptions.values() if s.name not in held],
        password_reset=password_reset,
        account_email=account_email,
        xsrf=page_xsrf(request, context),
        base=f"{context.config.prefix}admin/accounts",
        error=error,
        problems=problems or {},
        notice=notice,
        status_code=status_code,
    )


@router.get("/admin/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, caller: OptionalCaller, context: Context) -> Response:
    """Every account with its plan and subscriptions."""
    allowed = _admin_or_login(request, context, caller)
    if isinstance(allowed, Response):
        return allowed
    with context.session() as session:
        rows = [summary(session, context.catalogue, a) for a in list_accounts(session)]
    return render_page(
        context,
        "admin_accounts.html",
        title="Accounts",
        user=allowed.name,
        admin=True,
        nav="accounts",
        accounts=rows,
        base=f"{context.config.prefix}admin/accounts",
    )


@router.get("/admin/accounts/{name}", response_class=HTMLResponse)
def account_page(
    request: Request, name: AccountNamePath, caller: OptionalCaller, context: Context, done: str | None = None
) -> Response:
    """One account's plan and subscriptions, with the forms to change them."""
    allowed = _admin_or_login(request, context, caller)
    if isinstance(allowed, Response):
        return allowed
    return _account_page(request, context, allowed, name, notice=_NOTICES.get(done or ""))


async def _change(
    request: Request,
    context: ServiceContext,
    caller: Identity,
    name: str,
    change,
    done: str,
    field: str | None = None,
) -> Response:
    """Run ``change(session)`` in the thread pool; redirect on success, show the page with the reason otherwise
    (beside the form's ``field`` when it has one)."""
    _require_admin_form(caller)

    def run() -> None:
        with context.session() as session:
            change(session)

    try:
        await run_in_threadpool(run)
    except AccountNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    except AccountError as error:
        code = status_for(error)
        message = str(error)
        problems = {field: message} if field else {}
        top = "Please fix the field marked below." if field else message
        return await run_in_threadpool(
            lambda: _account_page(
                request, context, caller, name, error=top, problems=problems, status_code=code
            )
        )
    target = f"{context.config.prefix}admin/accounts/{quote(name, safe='')}?done={done}"
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


@router.post("/admin/accounts/{name}/plan")
async def change_plan_form(
    request: Request, name: AccountNamePath, caller: BrowserFormCaller, context: Context
) -> Response:
    """The plan select's form."""
    plan = (await read_form(request)).get("plan", "")
    return await _change(
        request,
        context,
        caller,
        name,
        lambda s: accounts.change_plan(s, context.catalogue, name, plan),
        "plan",
        field="plan",
    )


@router.post("/admin/accounts/{name}/subscriptions")
async def add_subscription_form(
    request: Request, name: AccountNamePath, caller: BrowserFormCaller, context: Context
) -> Response:
    """The form that adds a subscription."""
    subscription = (await read_form(request)).get("subscription", "")
    return await _change(
        request,
        context,
        caller,
        name,
        lambda s: subscriptions.subscribe(s, context.catalogue, name, subscription),
        "subscribed",
        field="subscription",
    )


@router.post("/admin/accounts/{name}/subscriptions/{subscription}/end")
async def end_subscription_form(
    request: Request,
    name: AccountNamePath,
    subscription: SubscriptionPath,
    caller: BrowserFormCaller,
    context: Context,
) -> Response:
    """The button that ends an active subscription."""
    return await _change(
        request,
        context,
        caller,
        name,
        lambda s: subscriptions.unsubscribe(s, context.catalogue, name, subscription),
        "ended",
    )
