"""Registration for the embedded login: the public sign-up page and API, and the legal documents' pages.

``GET/POST <prefix>signup`` is an HTML form; ``POST <prefix>api/v1/signup`` takes the same fields as JSON;
``GET <prefix>legal/{kind}`` shows the current terms or privacy statement and ``<prefix>legal/{kind}/{version}`` any
published version. None of them needs a login.

Rules this module guarantees:

* One validation for both ways in (``SignupRequest`` plus ``password_rules``): personal details through
  ``personal_details``; the user name through ``accounts.canonical_account_name`` (and it must start with a letter
  or digit, as the hub's login requires); the password through ``PasswordPolicy``; both consents must name the
  current version of their document.
* A name is taken when an account has it or JupyterHub has a user by that name (the sign-up would otherwise
  inherit that user's servers and files).
* A refused sign-up stores nothing. An accepted one stores, in ONE transaction, an account with ``approved=False``,
  ``auth_source="local"``, the default plan and its argon2 hash, and a consent row for each document: either all of
  it or none.
* Each problem is reported with the field it concerns and what to fix, never repeating the input in a message:
  422 for bad fields or a missing consent, 409 for a user name that is taken (also when it differs only in case or
  Unicode form) and for a consent to a version that is not current (the page then shows the new version).
  The form page is re-rendered with what the user typed (escaped; passwords are never sent back).
* Anti-abuse: sign-up can be closed (``POLARTEP_SIGNUP=0``: 403); each client address may create at most
  ``POLARTEP_SIGNUP_PER_HOUR`` accounts in an hour's window (429 with ``Retry-After``). The counter is in the
  database (``rate_limits.py``), taken in the same transaction that stores the account, so concurrent sign-ups from
  one address cannot exceed it and a refused sign-up counts nothing; the address is the proxy's
  ``X-Forwarded-For`` entry only on connections from the proxy process (``proxy_peer.py``); and while ``POLARTEP_SIGNUP_MAX_PENDING`` accounts await approval no
  more are taken (503), so a flood of sign-ups is bounded by what an administrator has to review.
* Legal documents are shown as formatted text, rendered from Markdown by ``markdown_render`` (raw HTML in the
  files is shown as text, the output is sanitised): no markup from the files reaches the browser unsanitised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from polartep_hub import account_names, proxy_peer
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.details import PersonalDetails
from polartep_hub.accounts.legal import DOCUMENT_KINDS, DOCUMENT_TITLES, LegalDocument, record_consents
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.password_rules import (
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    password_message,
    password_problems,
)
from polartep_hub.service import rate_limits
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.orm import utcnow
from polartep_hub.service.web.access import Context
from polartep_hub.service.web.markdown_render import render_markdown
from polartep_hub.service.web.pages import read_form, render_page

log = logging.getLogger(__name__)

SIGNUP_NAME_RULE = account_names.PASSWORD_LOGIN_NAME_RULE
FORM_FIELDS = (
    "username",
    "full_name",
    "email",
    "organisation",
    "organisation_location",
    "phone",
)
FIELD_ORDER = (
    "username",
    "password",
    "password_confirm",
    "full_name",
    "email",
    "organisation",
    "organisation_location",
    "phone",
    "accept_terms",
    "accept_privacy",
)
CONSENT_FIELDS = {"terms": "accept_terms", "privacy": "accept_privacy"}
VERSION_FIELDS = {"terms": "terms_version", "privacy": "privacy_version"}
API_VERSION_FIELDS = {"terms": "accept_terms_version", "privacy": "accept_privacy_version"}


def _in_sentence(title: str) -> str:
    """A title inside a sentence: "Privacy statement (GDPR)" -> "privacy statement (GDPR)"."""
    return title[:1].lower() + title[1:]


def signup_account_name(raw: str) -> str:
    """The canonical account name for a name typed at sign-up; ``ValueError`` (without the input) if unusable."""
    try:
        name = accounts.canonical_account_name(raw)
    except accounts.InvalidAccountName:
        raise ValueError(f"username: use {SIGNUP_NAME_RULE}") from None
    if not re.fullmatch(account_names.PASSWORD_LOGIN_NAME_PATTERN, name):
        raise ValueError(f"username: use {SIGNUP_NAME_RULE}")
    return name


Version = Annotated[str, Field(min_length=1, max_length=32)]


class SignupRequest(PersonalDetails):
    """A sign-up: the account name and password, the personal details, and the versions of the documents accepted."""

    username: Annotated[str, Field(max_length=256, examples=["alice"]), AfterValidator(signup_account_name)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    accept_terms_version: Version = Field(description="the version of the terms shown to the user")
    accept_privacy_version: Version = Field(description="the version of the privacy statement shown")


class ConsentOut(BaseModel):
    document: str
    version: str


class SignupOut(BaseModel):
    name: str
    approved: bool
    plan: str
    consents: list[ConsentOut]


class SignupRefused(Exception):
    """A sign-up was not stored; ``problems`` maps each field to what is wrong with it (safe to show)."""

    def __init__(self, status_code: int, problems: dict[str, str], headers: dict[str, str] | None = None):
        super().__init__("; ".join(problems.values()))
        self.status_code = status_code
        self.problems = problems
        self.headers = headers or {}


# --- anti-abuse -------------------------------------------------------------------------------------------------

SIGNUP_SCOPE = "signup"
SIGNUP_WINDOW_S = 3600


def signup_rule(config) -> rate_limits.RateLimit:
    """At most ``signup_per_hour`` accepted sign-ups per client address in an hour's window (0: no limit)."""
    return rate_limits.RateLimit(SIGNUP_SCOPE, config.signup_per_hour, SIGNUP_WINDOW_S)


def client_address(request: Request, context: ServiceContext) -> str:
    """The client's address: the proxy's ``X-Forwarded-For`` entry on the proxy's connections only (proxy_peer.py)."""
    peer = (request.client.host, request.client.port) if request.client else None
    server = request.scope.get("server")
    local = (str(server[0]), int(server[1])) if server and server[1] is not None else None
    return proxy_peer.client_address(
        peer, local, request.headers.getlist("x-forwarded-for"), context.config.proxy_pid_file
    )


# --- the one sign-up procedure ------------------------------------------------------------------------------------


def _validation_problems(error: ValidationError, field_names: dict[str, str]) -> dict[str, str]:
    """field -> message from pydantic's errors, never with the input; ``field_names`` renames model fields."""
    problems: dict[str, str] = {}
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        model_field = loc[0] if loc else "request"
        field = field_names.get(model_field, model_field)
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        if item.get("type") == "missing":
            message = "this field is required"
        if not message.startswith(f"{model_field}:"):
            message = f"{field}: {message}"
        elif field != model_field:
            message = field + message[len(model_field) :]
        problems.setdefault(field, message)
    return problems


def _stale_consents(context: ServiceContext, request: SignupRequest) -> list[LegalDocument]:
    """The current documents whose version the request did not accept."""
    accepted = {"terms": request.accept_terms_version, "privacy": request.accept_privacy_version}
    return [
        context.legal.current(kind)
        for kind in DOCUMENT_KINDS
        if accepted[kind] != context.legal.current(kind).version
    ]


def register(context: ServiceContext, request: SignupRequest, address: str) -> Account:
    """Create the pending account with its consents, or ``SignupRefused`` having stored nothing."""
    config = context.config
    if not config.signup_enabled:
        raise SignupRefused(
            status.HTTP_403_FORBIDDEN,
            {"signup": "sign-up is closed here; ask an administrator for an account"},
        )
    problems = password_problems(
        request.password, request.username, PasswordPolicy(min_length=config.password_min_length)
    )
    if problems:
        raise SignupRefused(422, {"password": password_message(problems)})
    stale = _stale_consents(context, request)
    if stale:
        raise SignupRefused(
            status.HTTP_409_CONFLICT,
            {
                API_VERSION_FIELDS[document.kind]: (
                    f"{API_VERSION_FIELDS[document.kind]}: the current {_in_sentence(document.title)} is version "
                    f"{document.version} ({config.prefix}legal/{document.kind}); read it and accept that version"
                )
                for document in stale
            },
        )
    with context.session() as session:
        # An early, read-only look at the address's counter, so a refused sign-up costs no argon2 hash; the
        # authoritative count is taken with the account below.
        early = rate_limits.peek(session, signup_rule(config), address)
        if not early.admitted:
            raise _too_many_signups(early)
        existing = accounts.get_account(session, request.username)
        if existing is not None and accounts.is_being_erased(session, existing):
            raise SignupRefused(
                status.HTTP_409_CONFLICT,
                {
                    "username": f"username: the name {request.username!r} belongs to an account that is being "
                    "erased; it stays taken until the erasure has finished (every server, cluster and home of it "
                    "gone); choose another or try again later"
                },
            )
        if existing is not None:
            raise _taken(request.username)
        pending = session.scalar(select(func.count()).select_from(Account).where(Account.approved.is_(False)))
        if config.signup_max_pending and (pending or 0) >= config.signup_max_pending:
            raise SignupRefused(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                {
                    "signup": "too many sign-ups await approval; try again once an administrator has reviewed them"
                },
                headers={"Retry-After": "3600"},
            )
    _check_hub_has_no_such_user(context, request.username)
    # Hash outside any transaction: argon2 takes tens of milliseconds and needs no database.
    password_hash = context.passwords.hash(request.password)
    now = utcnow()
    with context.session() as session:
        # The address's sign-up counter first (a write, so the transaction holds the database's write lock or the
        # row's lock from here on), then the account and its consents: one commit keeps all of it or none of it,
        # so concurrent sign-ups from one address can never exceed the limit.
        admission = rate_limits.take(session, signup_rule(config), address, now=now)
        if not admission.admitted:
            session.rollback()
            raise _too_many_signups(admission)
        account = accounts.new_account(
            request.username,
            plan=config.default_plan,
            now=now,
            password_hash=password_hash,
            approved=False,
            full_name=request.full_name,
            email=request.email,
            organisation=request.organisation,
            organisation_location=request.organisation_location,
            phone=request.phone,
        )
        session.add(account)
        try:
            session.flush()  # the account's id, for the consent rows
            record_consents(session, account, [context.legal.current(kind) for kind in DOCUMENT_KINDS])
            session.commit()
        except IntegrityError:
            # The same name was registered between our check and our insert.
            session.rollback()
            raise _taken(request.username) from None
        session.refresh(account)
        session.expunge(account)
    log.info("sign-up: account %s awaits approval", account.name)
    return account


def _too_many_signups(admission: rate_limits.Admission) -> SignupRefused:
    return SignupRefused(
        status.HTTP_429_TOO_MANY_REQUESTS,
        {
            "signup": f"too many sign-ups from your address; try again in {admission.retry_after // 60 + 1} minutes"
        },
        headers={"Retry-After": str(admission.retry_after)},
    )


def _check_hub_has_no_such_user(context: ServiceContext, name: str) -> None:
    """A JupyterHub user without a platform account (made through the hub's API) keeps its name: whoever signed up
    under it would log in as that user, with its servers and files."""
    if context.hub_api is None:
        return
    try:
        exists = context.hub_api.user(name) is not None
    except HubApiError:
        raise SignupRefused(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            {"signup": "cannot check the user name with JupyterHub right now; try again in a minute"},
            headers={"Retry-After": "60"},
        ) from None
    if exists:
        raise _taken(name)


def _taken(name: str) -> SignupRefused:
    return SignupRefused(
        status.HTTP_409_CONFLICT,
        {
            "username": f"username: the name {name!r} is taken (names that differ only in case or in the form of "
            "their letters count as the same name); choose another"
        },
    )


# --- routes -------------------------------------------------------------------------------------------------------

page_router = APIRouter()
api_router = APIRouter()


@api_router.post(
    "/signup",
    response_model=SignupOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "sign-up is closed"},
        409: {"description": "the user name is taken, or a consent is not to the current version"},
        422: {"description": "a field is missing or invalid; the detail names it"},
        429: {"description": "too many sign-ups from this address"},
        503: {"description": "too many accounts await approval"},
    },
)
def signup_api(body: SignupRequest, request: Request, context: Context) -> Any:
    """Register an account (public, no token): it awaits an administrator's approval before it can log in.

    ``accept_terms_version`` and ``accept_privacy_version`` must be the current versions
    (``GET <prefix>legal/terms``, ``legal/privacy``).
    """
    # SignupRefused goes to the app-wide handler (errors.py): its status, the problems joined, its headers.
    account = register(context, body, client_address(request, context))
    return SignupOut(
        name=account.name,
        approved=account.approved,
        plan=account.plan,
        consents=[
            ConsentOut(document=kind, version=context.legal.current(kind).version) for kind in DOCUMENT_KINDS
        ],
    )


def _form_page(
    context: ServiceContext,
    *,
    values: dict[str, str],
    problems: dict[str, str] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    order = {field: i for i, field in enumerate(FIELD_ORDER)}
    problems = dict(sorted((problems or {}).items(), key=lambda item: order.get(item[0], len(order))))
    documents = {kind: context.legal.current(kind) for kind in DOCUMENT_KINDS}
    return render_page(
        context,
        "signup.html",
        title="Sign up",
        status_code=status_code,
        error=("Please fix the fields marked below." if problems else None),
        notice=notice,
        problems=problems,
        values=values,
        documents=documents,
        consent_fields=CONSENT_FIELDS,
        document_names={kind: _in_sentence(DOCUMENT_TITLES[kind]) for kind in DOCUMENT_KINDS},
        version_fields=VERSION_FIELDS,
        name_rule=SIGNUP_NAME_RULE[:1].upper() + SIGNUP_NAME_RULE[1:] + ".",
        password_rules=PasswordPolicy(min_length=context.config.password_min_length).describe(),
        open=context.config.signup_enabled,
    )


@page_router.get("/signup", include_in_schema=False)
def signup_page(context: Context) -> HTMLResponse:
    """The sign-up form (public)."""
    if not context.config.signup_enabled:
        return _form_page(context, values={}, status_code=status.HTTP_403_FORBIDDEN)
    return _form_page(context, values={})


@page_router.post("/signup", include_in_schema=False)
async def signup_form(request: Request, context: Context) -> HTMLResponse:
    """A posted sign-up form: the confirmation page, or the form again with a message per bad field."""
    form = await read_form(request)
    values = {name: form.get(name, "") for name in FORM_FIELDS}
    # Checkbox states come back to the form as typed (unless the documents changed meanwhile, below).
    for field in CONSENT_FIELDS.values():
        values[field] = "yes" if form.get(field) == "yes" else ""
    if not context.config.signup_enabled:
        return _form_page(context, values=values, status_code=status.HTTP_403_FORBIDDEN)

    problems: dict[str, str] = {}
    renames = {"accept_terms_version": "accept_terms", "accept_privacy_version": "accept_privacy"}
    body: dict[str, Any] = {name: values[name] for name in FORM_FIELDS}
    body["phone"] = values["phone"] or None
    body["password"] = form.get("password", "")
    for kind, field in CONSENT_FIELDS.items():
        title = _in_sentence(DOCUMENT_TITLES[kind])
        if values[field] != "yes":
            problems[field] = f"{field}: tick the box to accept the {title}; you cannot sign up without it"
        body[API_VERSION_FIELDS[kind]] = form.get(VERSION_FIELDS[kind], "")[:64] or "-"
    if body["password"] != form.get("password_confirm", ""):
        problems["password_confirm"] = "password_confirm: the two passwords differ; type the same one twice"
    try:
        signup = SignupRequest.model_validate(body)
    except ValidationError as error:
        for field, message in _validation_problems(error, renames).items():
            problems.setdefault(field, message)
        signup = None
    # The password rules too, so that one round trip shows every problem.
    try:
        rules_name = signup_account_name(values["username"])
    except ValueError:
        rules_name = values["username"].casefold()
    broken = password_problems(
        body["password"], rules_name, PasswordPolicy(min_length=context.config.password_min_length)
    )
    if broken:
        problems.setdefault("password", password_message(broken))
    if problems or signup is None:
        return _form_page(context, values=values, problems=problems, status_code=422)

    try:
        account = await _in_thread(register, context, signup, client_address(request, context))
    except SignupRefused as refused:
        problems = {renames.get(_form_field(k), _form_field(k)): v for k, v in refused.problems.items()}
        notice = None
        if refused.status_code == status.HTTP_409_CONFLICT and any(k in renames for k in refused.problems):
            # The documents changed while the form was open: show the new versions, unticked.
            for field in CONSENT_FIELDS.values():
                values[field] = ""
            notice = (
                "The legal documents were updated while you filled in the form: read them and accept again."
            )
        response = _form_page(
            context, values=values, problems=problems, status_code=refused.status_code, notice=notice
        )
        response.headers.update(refused.headers)
        return response
    return render_page(
        context,
        "signup_done.html",
        title="Sign-up received",
        status_code=status.HTTP_201_CREATED,
        name=account.name,
    )


def _form_field(api_field: str) -> str:
    return {"accept_terms_version": "accept_terms", "accept_privacy_version": "accept_privacy"}.get(
        api_field, api_field
    )


async def _in_thread(function, *args):
    # Database and argon2 work block; run them off the event loop, as FastAPI does for plain ``def`` routes.
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


# --- legal documents ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DocumentLink:
    version: str
    current: bool


def _legal_page(context: ServiceContext, kind: str, version: str | None) -> HTMLResponse:
    if kind not in DOCUMENT_KINDS:
        return render_page(
            context,
            "legal.html",
            title="No such document",
            status_code=status.HTTP_404_NOT_FOUND,
            error=f"There is no such legal document; the documents are: {', '.join(DOCUMENT_KINDS)}.",
            document=None,
            versions=[],
            kind=None,
        )
    current = context.legal.current(kind)
    document = current if version is None else context.legal.get(kind, version)
    versions = [_DocumentLink(v, v == current.version) for v in reversed(context.legal.documents[kind])]
    if document is None:
        return render_page(
            context,
            "legal.html",
            title=DOCUMENT_TITLES[kind],
            status_code=status.HTTP_404_NOT_FOUND,
            error=f"No such version; the current one is {current.version}.",
            document=None,
            versions=versions,
            kind=kind,
        )
    return render_page(
        context,
        "legal.html",
        title=document.title,
        document=document,
        document_html=render_markdown(document.text),
        is_current=document.version == current.version,
        versions=versions,
        kind=kind,
    )


@page_router.get("/legal/{kind}", include_in_schema=False)
def legal_current(kind: str, context: Context) -> HTMLResponse:
    """The current version of a legal document (public)."""
    return _legal_page(context, kind[:32], None)


@page_router.get("/legal/{kind}/{version}", include_in_schema=False)
def legal_version(kind: str, version: str, context: Context) -> HTMLResponse:
    """One published version of a legal document (public)."""
    return _legal_page(context, kind[:32], version[:64])
