"""Routes for passwords (``password_reset.py``): change, an administrator's forced reset, "forgot password" and the
reset link, over the API and as pages.

API (under ``<prefix>api/v1``): ``POST me/password`` (the user's own token), ``POST accounts/{name}/password-reset``
(administrators), ``POST password/forgot`` and ``POST password/reset`` (public). Pages (under the prefix):
``POST account/password`` (the account page's form), ``POST admin/accounts/{name}/password-reset`` (the admin
page's button), ``GET/POST password/forgot`` and ``GET/POST password/reset`` (public; the link in the e-mail).

Rules this module guarantees:

* Page forms of logged-in users carry ``_xsrf`` (``pages.BrowserFormCaller``); the public forms change nothing
  without a secret (the reset token) or only request a mail, which anybody may ask for.
* "Forgot password" gives one answer, ``FORGOT_ANSWER`` with 202, for every user name or address, known or not,
  never sooner than ``FORGOT_MIN_SECONDS`` (so the extra work of queueing a link cannot be timed); only its own
  rate limit per client address (429) differs, and that says nothing about accounts.
* Every refusal names the field and what to fix (422 bad new password, 403 wrong current password, 409 a password
  this platform does not manage or an account awaiting a reset, 429 lock-out or rate limit, 400 an unknown link,
  410 a used or expired one); nothing is stored by a refused request. Passwords and tokens are never echoed.
* After a change or reset the browser's session cookie for this service is deleted: every session, this one
  included, has ended (``password_reset.end_sessions``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from polartep_hub.accounts import password_reset
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api.personal_data import render_account_page
from polartep_hub.accounts.api.schemas import AccountNamePath
from polartep_hub.accounts.password_rules import MAX_PASSWORD_LENGTH, PasswordPolicy
from polartep_hub.accounts.signup import client_address
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.web.access import AdminOrHubCaller, Context, UserCaller
from polartep_hub.service.web.browser_login import session_cookie_name
from polartep_hub.service.web.errors import error_response, status_for
from polartep_hub.service.web.pages import BrowserFormCaller, field_problems, read_form, render_page

api_router = APIRouter()
page_router = APIRouter()

FORGOT_ANSWER = (
    "If this user name or e-mail address belongs to an account with a platform password, a link to choose a new "
    "password has been e-mailed to the account's address. It works once and expires; check your inbox."
)
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
FORGOT_MIN_SECONDS = 0.4  # every "forgot password" answer takes at least this long (see _request_reset)
PathName = AccountNamePath  # schemas.py: with the name rule in the document
MAX_TOKEN_LENGTH = 128


class PasswordChange(BaseModel):
    current_password: Password
    new_password: Password


class PasswordChanged(BaseModel):
    detail: str
    sessions_ended: bool = Field(
        description="every session and token of the user has been ended (false: JupyterHub did not answer; "
        "the service keeps trying)"
    )


class ForcedResetOut(BaseModel):
    name: str
    mailed: bool = Field(description="a reset link was queued for the account's e-mail address")
    sessions_ended: bool


class ForgotRequest(BaseModel):
    login: Annotated[str, Field(min_length=1, max_length=300, description="a user name or an e-mail address")]


class ResetRequest(BaseModel):
    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]
    new_password: Password


class ResetDone(BaseModel):
    detail: str
    name: str


_error = error_response  # a domain error as the service's JSON answer (errors.py)


_CHANGE_DONE = "Your password was changed."
_RESET_DONE = "Your new password is set."


# --- API ----------------------------------------------------------------------------------------------------------


@api_router.post(
    "/me/password",
    response_model=PasswordChanged,
    responses={
        404: {"description": "you have no platform account yet"},
        503: {"description": "too many passwords are being checked at once; Retry-After says when to retry"},
        403: {"description": "current_password is wrong"},
        409: {
            "description": "this account's password is not managed here, or awaits an administrator's reset"
        },
        422: {"description": "the new password breaks a rule; the detail says which"},
        429: {"description": "too many failed password checks from your address; try again later"},
    },
)
def change_my_password(body: PasswordChange, caller: UserCaller, context: Context, request: Request) -> Any:
    """Change your password (the current one is required). Every session and API token of yours ends, the one
    used for this request included, and your servers are stopped: log in again and get new tokens."""
    try:
        ended = password_reset.change_password(
            context, caller.name, body.current_password, body.new_password, client_address(request, context)
        )
    except accounts.AccountError as error:
        return _error(error)
    return PasswordChanged(
        detail=_CHANGE_DONE + " Every session and token of yours has ended.", sessions_ended=ended
    )


@api_router.post(
    "/accounts/{name}/password-reset",
    response_model=ForcedResetOut,
    responses={
        404: {"description": "no such account"},
        409: {"description": "the password is not managed here"},
    },
)
def force_password_reset(name: PathName, caller: AdminOrHubCaller, context: Context) -> Any:
    """Force a password reset (administrators): the password stops working, every session and token of the
    account ends, its servers stop, and a reset link is e-mailed to the account's address."""
    try:
        done = password_reset.force_reset(context, name, by="the hub" if caller.is_hub else caller.name)
    except accounts.AccountError as error:
        return _error(error)
    return ForcedResetOut(
        name=done.name, mailed=done.mailed_to is not None, sessions_ended=done.sessions_ended
    )


@api_router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    responses={429: {"description": "too many requests from this address"}},
)
async def forgot_password(body: ForgotRequest, request: Request, context: Context) -> Any:
    """Ask for a password-reset link (public). The answer is the same whether or not an account matches."""
    try:
        await _request_reset(context, body.login, client_address(request, context))
    except password_reset.PasswordError as error:
        return _error(error)
    return JSONResponse({"detail": FORGOT_ANSWER}, status_code=status.HTTP_202_ACCEPTED)


async def _request_reset(context: ServiceContext, login: str, address: str) -> None:
    """``password_reset.request_reset``, answered no sooner than ``FORGOT_MIN_SECONDS`` after it began: queueing a
    link is more database work than finding nothing (measured: 19 ms against 1.3 ms), which a stranger could time."""
    started = time.monotonic()
    try:
        await run_in_threadpool(password_reset.request_reset, context, login, address)
    finally:
        left = FORGOT_MIN_SECONDS - (time.monotonic() - started)
        if left > 0:
            await asyncio.sleep(left)


@api_router.post(
    "/password/reset",
    response_model=ResetDone,
    responses={
        404: {"description": "the account of the link is gone"},
        400: {"description": "the link is not valid"},
        410: {"description": "the link was used already or has expired"},
        422: {"description": "the new password breaks a rule"},
    },
)
def reset_password(body: ResetRequest, context: Context) -> Any:
    """Set a new password with the token of a reset link (public). The link works once; every session ends."""
    try:
        name = password_reset.complete_reset(context, body.token, body.new_password)
    except accounts.AccountError as error:
        return _error(error)
    return ResetDone(detail=_RESET_DONE + " Every session of the account has ended; log in again.", name=name)


# --- pages ----------------------------------------------------------------------------------------------------------


def _done_page(context: ServiceContext, message: str, name: str) -> HTMLResponse:
    response = render_page(context, "password_done.html", title="Password set", message=message, name=name)
    response.delete_cookie(session_cookie_name(context), path=context.config.prefix)
    return response


@page_router.post("/account/password", include_in_schema=False)
async def account_password_form(
    request: Request, caller: BrowserFormCaller, context: Context
) -> HTMLResponse:
    """The account page's "change your password" form."""
    form = await read_form(request)
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    error: accounts.AccountError | None = None
    if not current or not new:
        error = password_reset.PasswordError("type your current password and the new one", status_code=422)
    elif new != form.get("new_password_confirm", ""):
        error = password_reset.PasswordError(
            "new_password_confirm: the two new passwords differ; type the same one twice", status_code=422
        )
    elif len(current) > MAX_PASSWORD_LENGTH or len(new) > MAX_PASSWORD_LENGTH:
        error = password_reset.PasswordError(f"use at most {MAX_PASSWORD_LENGTH} characters", status_code=422)
    if error is None:
        try:
            await run_in_threadpool(
                password_reset.change_password,
                context,
                caller.name,
                current,
                new,
                client_address(request, context),
            )
        except accounts.AccountError as refused:
            error = refused
        else:
            return _done_page(context, _CHANGE_DONE, caller.name)

    def page() -> HTMLResponse:
        with context.session() as session:
            account = accounts.get_or_create_account(
                session, caller.name, default_plan=context.config.default_plan
            )
            # A problem that names its field ("new_password: ...") is shown beside it, like every form's.
            problems, others = field_problems(
                [str(error)], ("current_password", "new_password", "new_password_confirm")
            )
            return render_account_page(
                request,
                context,
                account,
                status_code=status_for(error),
                error="; ".join(others) if others else "Please fix the fields marked below.",
                problems=problems,
            )

    return await run_in_threadpool(page)


@page_router.post("/admin/accounts/{name}/password-reset", include_in_schema=False)
async def admin_password_reset_form(
    request: Request, name: PathName, caller: BrowserFormCaller, context: Context
) -> Response:
    """The admin page's "force a password reset" button."""
    if not caller.admin:
        return JSONResponse({"detail": "only administrators may reset passwords"}, status_code=403)
    try:
        done = await run_in_threadpool(password_reset.force_reset, context, name, caller.name)
    except accounts.AccountError as error:
        return _error(error)
    notice = "password-reset" if done.mailed_to else "password-reset-no-mail"
    target = f"{context.config.prefix}admin/accounts/{quote(name, safe='')}?done={notice}"
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


def _forgot_page(
    context: ServiceContext, *, notice: str | None = None, error: str | None = None, status_code: int = 200
):
    return render_page(
        context,
        "password_forgot.html",
        title="Forgot your password?",
        notice=notice,
        error=error,
        status_code=status_code,
        minutes=context.config.password_reset_minutes,
    )


@page_router.get("/password/forgot", include_in_schema=False)
def forgot_page(context: Context) -> HTMLResponse:
    return _forgot_page(context)


@page_router.post("/password/forgot", include_in_schema=False)
async def forgot_form(request: Request, context: Context) -> HTMLResponse:
    login = (await read_form(request)).get("login", "").strip()
    if not login:
        return _forgot_page(context, error="login: type your user name or e-mail address", status_code=422)
    try:
        await _request_reset(context, login[:300], client_address(request, context))
    except password_reset.PasswordError as error:
        response = _forgot_page(context, error=str(error), status_code=status_for(error))
        response.headers.update(error.headers)
        return response
    return _forgot_page(context, notice=FORGOT_ANSWER, status_code=status.HTTP_202_ACCEPTED)


def _reset_page(
    context: ServiceContext,
    *,
    token: str | None,
    name: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render_page(
        context,
        "password_reset.html",
        title="Choose a new password",
        token=token,
        name=name,
        error=error,
        status_code=status_code,
        password_rules=PasswordPolicy(min_length=context.config.password_min_length).describe(),
    )


@page_router.get("/password/reset", include_in_schema=False)
def reset_page(
    context: Context, token: Annotated[str, Query(max_length=MAX_TOKEN_LENGTH)] = ""
) -> HTMLResponse:
    """The page a reset link opens: the new-password form, or why the link cannot be used."""
    if not token:
        return _reset_page(
            context, token=None, error="this page needs the link from the e-mail", status_code=400
        )
    try:
        link = password_reset.check_link(context, token)
    except password_reset.PasswordError as error:
        return _reset_page(context, token=None, error=str(error), status_code=status_for(error))
    return _reset_page(context, token=token, name=link.name)


@page_router.post("/password/reset", include_in_schema=False)
async def reset_form(request: Request, context: Context) -> HTMLResponse:
    form = await read_form(request)
    token = form.get("token", "")[:MAX_TOKEN_LENGTH]
    new = form.get("new_password", "")
    try:
        link = await run_in_threadpool(password_reset.check_link, context, token)
    except password_reset.PasswordError as error:
        return _reset_page(context, token=None, error=str(error), status_code=status_for(error))
    if new != form.get("new_password_confirm", ""):
        return _reset_page(
            context,
            token=token,
            name=link.name,
            error="new_password_confirm: the two passwords differ; type the same one twice",
            status_code=422,
        )
    if len(new) > MAX_PASSWORD_LENGTH:
        return _reset_page(
            context,
            token=token,
            name=link.name,
            error=f"use at most {MAX_PASSWORD_LENGTH} characters",
            status_code=422,
        )
    try:
        name = await run_in_threadpool(password_reset.complete_reset, context, token, new)
    except password_reset.PasswordError as error:
        keep = token if status_for(error) == 422 else None
        return _reset_page(
            context, token=keep, name=link.name, error=str(error), status_code=status_for(error)
        )
    return _done_page(context, _RESET_DONE, name)
