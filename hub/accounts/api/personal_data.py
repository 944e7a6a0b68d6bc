"""Routes for a user's personal data: export, rectification and erasure, over the API and on the account page.

``api_router`` is mounted at ``<prefix>api/v1`` and ``page_router`` at the service prefix (``app.py``).

Rules this module guarantees:

* The user acts on their own account (``/me``); administrators (and the hub) act on any account
  (``/accounts/{name}``). Every check is made here, on the service side.
* The export is a JSON download (``Content-Disposition: attachment``) built by ``personal_data.export_personal_data``.
* Self-erasure needs the user name typed again (``confirm``) and an explicit choice for shared processors; the
  configured administrator is never erased (409). "erased" (200) is answered only once everything of the account is
  gone: its Dask clusters, servers, hub user, home and records. While a cluster or the home is still there the answer
  is **202** ``{"status": "pending", "remaining": [...], "detail": ...}``; when JupyterHub or the gateway does not
  answer, **503**. Either way the erasure stays recorded (the name stays taken) and is finished by a retry (the
  same request again) or the service's reconciliation loop.
* The account page (``GET <prefix>account``) needs a browser login; its forms carry the ``_xsrf`` field that
  ``pages.BrowserFormCaller`` checks, every value is escaped by the templates, and bad input re-shows the form with
  each message beside its field and stores nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polartep_hub import account_names
from polartep_hub.accounts import personal_data
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.accounts.details import PersonalDetailsUpdate
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.password_rules import PasswordPolicy
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import AdminOrHubCaller, Context, UserCaller, optional_identity
from polartep_hub.service.web.browser_login import session_cookie_name
from polartep_hub.service.web.errors import status_for
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import (
    BrowserFormCaller,
    field_problems,
    page_xsrf,
    read_form,
    render_page,
)

api_router = APIRouter()
page_router = APIRouter()

PathName = AccountNamePath  # schemas.py: with the name rule in the document


class PersonalProfile(BaseModel):
    """An account's personal details as the API returns them (never the password hash)."""

    name: str
    full_name: str | None
    email: str | None
    organisation: str | None
    organisation_location: str | None
    phone: str | None
    auth_source: str
    created_at: datetime


class SelfErasureRequest(BaseModel):
    """Erase my account: type the user name again and choose what happens to the processors you shared."""

    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(
        min_length=1,
        max_length=64,
        pattern=f"^{account_names.ACCOUNT_NAME_PATTERN}$",
        description="your user name, typed again exactly (the erasure is refused with 422 unless it is yours)",
    )
    processors: Literal["withdraw", "transfer"] = Field(
        description="withdraw the processors you shared, or transfer them to the account `transfer_to`"
    )
    transfer_to: str | None = Field(default=None, max_length=64, description="with processors=transfer only")


class AdminErasureRequest(BaseModel):
    """Erase an account as an administrator (processors are withdrawn unless transferred)."""

    model_config = ConfigDict(extra="forbid")

    processors: Literal["withdraw", "transfer"] = "withdraw"
    transfer_to: str | None = Field(default=None, max_length=64)


class ErasureOut(BaseModel):
    """What an erasure did; the pseudonym is not returned (it would tie the ledger back to the person)."""

    status: Literal["erased"] = "erased"
    requested_by: Literal["self", "admin"]
    erased_at: datetime
    projects_deleted: int
    projects_handed_over: int


class ErasurePendingOut(BaseModel):
    """The erasure is recorded but not finished: something of the account is still there (202)."""

    status: Literal["pending"] = "pending"
    remaining: list[str] = Field(description='what is still there, e.g. "home volume", "dask clusters"')
    detail: str


_PENDING_RESPONSE = {
    202: {
        "model": ErasurePendingOut,
        "description": "recorded, not finished: a cluster or the home is still there; the name stays taken and the "
        "erasure finishes by itself (or on the same request again)",
    }
}


def _profile(account: Account) -> PersonalProfile:
    return PersonalProfile(
        name=account.name,
        full_name=account.full_name,
        email=account.email,
        organisation=account.organisation,
        organisation_location=account.organisation_location,
        phone=account.phone,
        auth_source=account.auth_source,
        created_at=account.created_at,
    )


def _export_response(context: ServiceContext, name: str) -> Response:
    with context.session() as session:
        account = accounts.require_account(session, name)
        document = personal_data.export_personal_data(session, account)
    filename = f"polartep-{name}-personal-data.json"
    return JSONResponse(document, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _own_account(context: ServiceContext, caller: Identity) -> Account:
    with context.session() as session:
        return accounts.get_or_create_account(session, caller.name, default_plan=context.config.default_plan)


def _erase(
    context: ServiceContext,
    name: str,
    *,
    requested_by: Literal["self", "admin"],
    processors: Literal["withdraw", "transfer"],
    transfer_to: str | None,
) -> ErasureOut | ErasurePendingOut:
    try:
        with context.session() as session:
            personal_data.request_erasure(
                session,
                name,
                requested_by=requested_by,
                processors=processors,
                transfer_to=transfer_to,
                protected_admin=context.config.admin_user,
            )
        result = personal_data.run_erasure(context, name)
    except personal_data.ErasurePending as pending:
        return ErasurePendingOut(remaining=pending.remaining, detail=str(pending))
    return ErasureOut(
        requested_by=result.requested_by,  # type: ignore[arg-type]
        erased_at=result.erased_at,
        projects_deleted=result.projects_deleted,
        projects_handed_over=result.projects_handed_over,
    )


# --- API ---------------------------------------------------------------------------------------------------------


@api_router.get(
    "/me/export",
    responses={
        200: {"content": {"application/json": {}}},
        400: {"description": "the name breaks the account-name rule"},
        409: {"description": "single-user mode: only the administrator has an account"},
    },
)
def export_me(caller: UserCaller, context: Context) -> Response:
    """Everything the platform holds about the calling user, as one JSON document (a download)."""
    return _export_response(context, _own_account(context, caller).name)


@api_router.get(
    "/accounts/{name}/export",
    responses={200: {"content": {"application/json": {}}}, 404: {"description": "no such account"}},
)
def export_account(name: PathName, caller: AdminOrHubCaller, context: Context) -> Response:
    """Everything the platform holds about ``name``. Admin users or the hub."""
    return _export_response(context, name)


@api_router.patch(
    "/me",
    response_model=PersonalProfile,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        409: {"description": "single-user mode: only the administrator has an account"},
        422: {"description": "a field is invalid"},
    },
)
def rectify_me(body: PersonalDetailsUpdate, caller: UserCaller, context: Context) -> PersonalProfile:
    """Correct the calling user's personal details: only the fields given change (``phone: null`` removes it)."""
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        personal_data.rectify(session, account, body)  # refusals: the app-wide handler (errors.py)
        return _profile(account)


@api_router.delete(
    "/me",
    response_model=ErasureOut,
    responses={
        400: {"description": "the name breaks the account-name rule"},
        409: {"description": "the configured administrator cannot be erased"},
        422: {"description": "confirmation or transfer target wrong"},
        503: {"description": "JupyterHub or the gateway could not do its part yet; the erasure is recorded"},
        **_PENDING_RESPONSE,
    },
)
def erase_me(body: SelfErasureRequest, caller: UserCaller, context: Context) -> Any:
    """Erase the calling user's account, servers, home and personal data (irreversible)."""
    if body.confirm != caller.name:
        raise personal_data.ErasureInvalid(
            "confirm: type your user name exactly as it is to confirm the erasure"
        )
    _own_account(context, caller)
    return _api_answer(
        _erase(
            context,
            caller.name,
            requested_by="self",
            processors=body.processors,
            transfer_to=body.transfer_to,
        )
    )


@api_router.delete(
    "/accounts/{name}",
    response_model=ErasureOut,
    responses={
        404: {"description": "no such account"},
        409: {"description": "the configured administrator cannot be erased"},
        503: {"description": "JupyterHub or the gateway could not do its part yet; the erasure is recorded"},
        **_PENDING_RESPONSE,
    },
)
def erase_account(
    name: PathName, caller: AdminOrHubCaller, context: Context, body: AdminErasureRequest | None = None
) -> Any:
    """Erase the account ``name`` with its servers, home and personal data. Admin users or the hub."""
    body = body or AdminErasureRequest()
    return _api_answer(
        _erase(context, name, requested_by="admin", processors=body.processors, transfer_to=body.transfer_to)
    )


def _api_answer(result: ErasureOut | ErasurePendingOut) -> ErasureOut | JSONResponse:
    if isinstance(result, ErasurePendingOut):
        return JSONResponse(result.model_dump(), status_code=status.HTTP_202_ACCEPTED)
    return result


# --- the account page ----------------------------------------------------------------------------------------------

_DETAIL_FIELDS = ("full_name", "email", "organisation", "organisation_location", "phone")
_ERASE_FIELDS = ("processors", "transfer_to", "confirm")
_FIX_BELOW = "Please fix the fields marked below."


def _account_page(
    request: Request,
    context: ServiceContext,
    account: Account,
    *,
    admin: bool = False,
    status_code: int = 200,
    error: str | None = None,
    problems: dict[str, str] | None = None,
    notice: str | None = None,
    values: dict[str, str] | None = None,
    erase: dict[str, str] | None = None,
) -> HTMLResponse:
    shown = {field: getattr(account, field) or "" for field in _DETAIL_FIELDS}
    if values:
        shown.update({k: v for k, v in values.items() if k in _DETAIL_FIELDS})
    return render_page(
        context,
        "account.html",
        title="Your account and personal data",
        status_code=status_code,
        user=account.name,
        admin=admin,
        nav="account",
        account=account,
        details=shown,
        erase=erase or {},
        xsrf=page_xsrf(request, context),
        error=error,
        problems=problems or {},
        notice=notice,
        export_url=f"{context.config.prefix}api/v1/me/export",
        protected=account.name == context.config.admin_user,
        # Passwords (password_routes.py): only the platform's own, never the configured administrator's.
        password_change=context.config.auth == "platform"
        and account.auth_source == "local"
        and account.password_hash is not None
        and account.name != context.config.admin_user,
        password_rules=PasswordPolicy(min_length=context.config.password_min_length).describe(),
    )


render_account_page = (
    _account_page  # the account page with a message, for other modules' forms (password_routes)
)


def _validation_messages(error: ValidationError) -> list[str]:
    """``field: message`` for each of pydantic's errors (never with the input)."""
    messages = []
    for item in error.errors()[:5]:
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        field = ".".join(str(p) for p in item.get("loc", ()))
        messages.append(message if message.startswith(f"{field}:") else f"{field}: {message}")
    return messages


def _form_problems(messages: list[str], fields: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The page's top message and the problems shown beside their fields."""
    problems, others = field_problems(messages, fields)
    return ("; ".join(others) if others else _FIX_BELOW), problems


@page_router.get("/account", include_in_schema=False, response_model=None)
def account_page(
    request: Request, context: Context, identity: Annotated[Identity | None, Depends(optional_identity)]
) -> Response:
    """The signed-in user's profile with a rectify form, the export download and the erase form."""
    if identity is None or not identity.is_user:
        target = f"{context.config.prefix}account"
        return RedirectResponse(
            f"{context.config.prefix}login?next={quote(target, safe='/')}", status_code=302
        )
    return _account_page(request, context, _own_account(context, identity), admin=identity.admin)


@page_router.post("/account/details", include_in_schema=False)
def account_details(
    request: Request,
    caller: BrowserFormCaller,
    context: Context,
    form: Annotated[dict[str, str], Depends(read_form)],
) -> HTMLResponse:
    """Rectify from the page's form; bad input re-shows the form with the message, storing nothing."""
    values = {field: form.get(field, "") for field in _DETAIL_FIELDS}
    with context.session() as session:
        account = accounts.get_or_create_account(
            session, caller.name, default_plan=context.config.default_plan
        )
        try:
            update: dict[str, Any] = {k: v for k, v in values.items() if k != "phone"}
            update["phone"] = values["phone"] or None
            personal_data.rectify(session, account, PersonalDetailsUpdate(**update))
        except (ValidationError, accounts.AccountError) as error:
            messages = _validation_messages(error) if isinstance(error, ValidationError) else [str(error)]
            message, problems = _form_problems(messages, _DETAIL_FIELDS)
            return _account_page(
                request,
                context,
                account,
                admin=caller.admin,
                status_code=422,
                error=message,
                problems=problems,
                values=values,
            )
        return _account_page(
            request, context, account, admin=caller.admin, notice="Your personal details were saved."
        )


@page_router.post("/account/erase", include_in_schema=False)
def account_erase(
    request: Request,
    caller: BrowserFormCaller,
    context: Context,
    form: Annotated[dict[str, str], Depends(read_form)],
) -> HTMLResponse:
    """Erase the signed-in user's account from the page's form (user name typed again, processors choice)."""
    processors = form.get("processors", "")
    transfer_to = form.get("transfer_to", "").strip() or None
    error: str | None = None
    if form.get("confirm", "") != caller.name:
        error = "confirm: Type your user name exactly as it is to confirm the erasure."
    elif processors not in ("withdraw", "transfer"):
        error = "processors: Choose what happens to the processors you shared: withdraw or transfer."
    if error is None:
        try:
            result = _erase(
                context,
                caller.name,
                requested_by="self",
                processors=processors,  # type: ignore[arg-type]
                transfer_to=transfer_to if processors == "transfer" else None,
            )
        except accounts.AccountError as refused:
            error = str(refused)
            status_code = status_for(refused)
        else:
            if isinstance(result, ErasurePendingOut):
                notice = (
                    "Your erasure has started and is recorded, but is not finished yet: "
                    f"{result.detail}. It finishes by itself; nothing can start for this account meanwhile."
                )
                return _account_page(
                    request, context, _own_account(context, caller), status_code=202, notice=notice
                )
            response = render_page(
                context, "account_erased.html", title="Your account has been erased", result=result
            )
            # The session's token died with the hub user; forget the cookie too.
            response.delete_cookie(session_cookie_name(context), path=context.config.prefix)
            return response
    else:
        status_code = 422
    message, problems = _form_problems([error], _ERASE_FIELDS)
    return _account_page(
        request,
        context,
        _own_account(context, caller),
        admin=caller.admin,
        status_code=status_code,
        error=message,
        problems=problems,
        erase={"processors": processors, "transfer_to": transfer_to or ""},
    )
