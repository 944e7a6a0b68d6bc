"""The platform service's one table from domain errors to HTTP answers, and the error responses of its document.

Rules this module guarantees:

* **One table.** ``ERROR_STATUS`` maps every domain error the service raises to its HTTP status; ``status_for``
  resolves an error through its class hierarchy (the most specific entry wins) and is what the JSON handlers, the
  pages and the routes use, so no status is chosen anywhere else. Two kinds of error carry a status chosen where
  they are raised, because one class covers several answers: ``password_reset.PasswordError`` (``status_code=``)
  and ``signup.SignupRefused``; the table gives their default.
* **One body shape.** Every error answer is ``ErrorOut``: ``{"detail": "<what is wrong and what to do>"}``, plus
  ``reason`` (a stable word for programs, e.g. ``throttled``) and ``retry_at`` where they apply. Validation errors
  (FastAPI's ``RequestValidationError``) are converted to it too: ``{"detail": "invalid request: <field>: <rule>"}``,
  naming the field and the rule and never echoing the input (it may be a password); every 422 detail starts with
  ``invalid request: ``. Unexpected errors answer 500 ``{"detail": "internal server error"}`` (traceback in the log).
* **The document says so.** ``openapi_document`` builds the OpenAPI document with ``ErrorOut`` as the body of every
  4xx/5xx answer, adds the answers of the access dependencies (401, 403, 503: ``access.py``) to every route that uses
  them, 400 ("the body is not JSON") to every route with a body, and replaces FastAPI's ``HTTPValidationError``
  with ``ErrorOut``. What a route raises itself it lists in its own ``responses=``
  (``{404: {"description": "no such project"}}``; the body is filled in here).

Rejected: a status on each exception class (the old way: four tables and a ``getattr`` in six places disagreed, e.g.
``AccountPendingApproval`` was 403 at the login and 400 elsewhere); converting everything to HTTPException in the
routes (the pages need the same statuses for their forms).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from polartep_hub.accounts import approvals, password_reset, passwords, personal_data, signup
from polartep_hub.accounts import entitlements as subscriptions
from polartep_hub.accounts import login as login_throttle
from polartep_hub.accounts import oidc as oidc_accounts
from polartep_hub.accounts import store as accounts
from polartep_hub.dashboards import store as dashboards
from polartep_hub.data import stac
from polartep_hub.data import store as datasets
from polartep_hub.processors import definition as processor_definitions
from polartep_hub.processors import inputs as processor_inputs
from polartep_hub.processors import notebook_store
from polartep_hub.processors import registry as processors
from polartep_hub.processors import runs as processor_runs
from polartep_hub.projects import store as projects
from polartep_hub.service.web import access
from polartep_hub.service.web.security_headers import SECURITY_HEADERS
from polartep_hub.usage import storage as usage_storage

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    """Every error answer of the service."""

    detail: str = Field(
        description="what is wrong and what to do about it (422: names the field and the rule)"
    )
    reason: str | None = Field(
        default=None,
        description="where given, a stable word for programs: pending_approval, being_erased, password_reset, "
        "throttled, busy",
    )
    retry_at: datetime | None = Field(default=None, description="with reason throttled: when to try again")
    problems: dict[str, str] | None = Field(
        default=None,
        description="with a run's invalid inputs (400): each input's name and what is wrong with it",
    )


ERROR_STATUS: Mapping[type[Exception], int] = {
    accounts.AccountError: 400,
    accounts.InvalidAccountName: 400,
    accounts.UnknownPlan: 400,
    accounts.AccountExists: 409,
    accounts.AccountNotFound: 404,
    accounts.SingleUserMode: 409,
    accounts.AccountPendingApproval: 403,
    accounts.AccountPasswordResetRequired: 403,
    accounts.AccountBeingErased: 403,
    login_throttle.LoginThrottled: 429,
    passwords.PasswordHashBusy: 503,
    subscriptions.UnknownSubscription: 400,
    subscriptions.AlreadySubscribed: 409,
    subscriptions.NotSubscribed: 404,
    projects.ProjectError: 400,
    projects.InvalidProjectName: 400,
    projects.ReservedProjectName: 422,
    projects.InvalidProjectField: 400,
    projects.ProjectNotFound: 404,
    projects.MemberNotFound: 404,
    projects.ProjectExists: 409,
    projects.AlreadyMember: 409,
    projects.LastOwner: 409,
    projects.ProjectForbidden: 403,
    projects.UnknownAccount: 404,
    dashboards.DashboardError: 400,
    dashboards.InvalidDashboard: 400,
    dashboards.NotebookTooLarge: 413,
    dashboards.RunNotReady: 409,
    dashboards.DashboardNotFound: 404,
    dashboards.DashboardLimit: 409,
    personal_data.RectificationError: 422,
    personal_data.ErasureRefused: 409,
    personal_data.ErasureInvalid: 422,
    personal_data.ErasureIncomplete: 503,
    personal_data.ErasurePending: 202,  # not an error answer: the routes answer ErasurePendingOut
    password_reset.PasswordError: 400,
    password_reset.ResetLinkInvalid: 400,
    password_reset.ResetLinkSpent: 410,
    approvals.NotPending: 409,
    oidc_accounts.IdentityConflict: 409,
    signup.SignupRefused: 422,
    processors.RegistryError: 400,
    processors.ProcessorNotFound: 404,
    processors.VersionNotFound: 404,
    processors.ProcessorForbidden: 403,
    processors.ProcessorIdTaken: 409,
    processors.VersionConflict: 409,
    processors.NotebookTooLarge: 413,
    processors.PublishingUnavailable: 503,
    processor_definitions.DefinitionInvalid: 422,
    processor_definitions.NotebookInvalid: 422,
    usage_storage.StorageQuotaExceeded: 413,
    processor_inputs.InputsInvalid: 400,
    processor_runs.ProcessorNotFound: 404,
    processor_runs.ProcessorVersionNotFound: 404,
    processor_runs.ProcessorNotRunnable: 409,
    processor_runs.RunNotFound: 404,
    processor_runs.RunNotCancellable: 409,
    processor_runs.RunFileUnavailable: 404,
    notebook_store.StoredNotebookMissing: 409,
    notebook_store.StoredNotebookCorrupt: 409,
    datasets.DatasetError: 400,
    datasets.InvalidDatasetName: 400,
    datasets.InvalidDatasetField: 400,
    datasets.DatasetNotFound: 404,
    datasets.DatasetExists: 409,
    datasets.DatasetForbidden: 403,
    datasets.GrantNotFound: 404,
    datasets.StorageUnavailable: 503,
    datasets.InvalidObjectKey: 400,
    datasets.NotInObjectStore: 409,
    datasets.ObjectNotFound: 404,
    stac.StacInvalid: 400,
    stac.StacNotFound: 404,
}

# A stable word for programs beside the message (the hub's login page reads it).
ERROR_REASON: Mapping[type[Exception], str] = {
    accounts.AccountPendingApproval: "pending_approval",
    accounts.AccountBeingErased: "being_erased",
    accounts.AccountPasswordResetRequired: "password_reset",
    login_throttle.LoginThrottled: "throttled",
    passwords.PasswordHashBusy: "busy",
}

# Errors that carry the status chosen where they were raised (see the module docstring).
_OWN_STATUS = (password_reset.PasswordError, signup.SignupRefused)


def status_for(error: Exception) -> int:
    """The HTTP status of a domain error: its own (``_OWN_STATUS``), else the most specific entry of the table."""
    if isinstance(error, _OWN_STATUS) and "status_code" in vars(error):
        return int(error.status_code)
    for cls in type(error).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    raise KeyError(f"{type(error).__name__} is not in the service's error table (errors.ERROR_STATUS)")


def _reason_for(error: Exception) -> str | None:
    for cls in type(error).__mro__:
        if cls in ERROR_REASON:
            return ERROR_REASON[cls]
    return None


def error_body(error: Exception) -> dict[str, Any]:
    """The ``ErrorOut`` body of a domain error (``reason`` and ``retry_at`` only where they apply)."""
    detail = str(error)
    if status_for(error) == 422 and not detail.startswith("invalid request: "):
        detail = "invalid request: " + detail
    body: dict[str, Any] = {"detail": detail}
    reason = _reason_for(error)
    if reason is not None:
        body["reason"] = reason
    if isinstance(error, login_throttle.LoginThrottled):
        body["retry_at"] = error.until.isoformat()
    if isinstance(error, processor_inputs.InputsInvalid):
        body["problems"] = error.problems  # a form shows each beside its field
    return body


def error_headers(error: Exception) -> dict[str, str]:
    """Headers of a domain error's answer: ``Retry-After`` where the error knows when to retry."""
    headers = dict(getattr(error, "headers", None) or {})
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers.setdefault("Retry-After", str(retry_after))
    return headers


def error_response(error: Exception) -> JSONResponse:
    """A domain error as the service's JSON answer."""
    return JSONResponse(
        error_body(error), status_code=status_for(error), headers=error_headers(error) or None
    )


def validation_message(error: RequestValidationError) -> str:
    """``invalid request: <field>: <rule>; ...`` for FastAPI's validation errors, never with the input."""
    parts = []
    for item in error.errors()[:10]:
        # loc is e.g. ("body", "username"); drop the leading "body"/"query"/"path" only when a field follows.
        loc = [str(p) for p in item.get("loc", ())]
        where = ".".join(loc[1:] if len(loc) > 1 else loc) or "request"
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "invalid request: " + "; ".join(parts)


async def _on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_message(error)}, status_code=422)


async def _on_domain_error(request: Request, error: Exception) -> JSONResponse:
    return error_response(error)


async def _on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    # HTTPException raised by the access rules and a few routes: the same shape, its detail as a string.
    return JSONResponse(
        {"detail": error.detail if isinstance(error.detail, str) else str(error.detail)},
        status_code=error.status_code,
        headers=getattr(error, "headers", None),
    )


async def _on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    # This handler runs outside the middleware stack (Starlette's ServerErrorMiddleware), so it sets the security
    # headers itself. The traceback goes to the log (uvicorn logs it too); the client learns nothing about internals.
    log.error(
        "unhandled %s on %s %s", type(error).__name__, request.method, request.url.path[:200], exc_info=error
    )
    return JSONResponse({"detail": "internal server error"}, status_code=500, headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """Install the handlers of the table and the document built by ``openapi_document`` on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(accounts.AccountError, _on_domain_error)
    app.add_exception_handler(passwords.PasswordHashBusy, _on_domain_error)
    app.add_exception_handler(signup.SignupRefused, _on_domain_error)
    app.add_exception_handler(processors.RegistryError, _on_domain_error)
    app.add_exception_handler(processor_definitions.DefinitionInvalid, _on_domain_error)
    app.add_exception_handler(processor_definitions.NotebookInvalid, _on_domain_error)
    app.add_exception_handler(processor_inputs.InputsInvalid, _on_domain_error)
    app.add_exception_handler(processor_runs.RunError, _on_domain_error)
    app.add_exception_handler(notebook_store.StoredNotebookMissing, _on_domain_error)
    app.add_exception_handler(notebook_store.StoredNotebookCorrupt, _on_domain_error)
    app.add_exception_handler(datasets.DatasetError, _on_domain_error)
    app.add_exception_handler(dashboards.DashboardError, _on_domain_error)
    app.add_exception_handler(usage_storage.StorageQuotaExceeded, _on_domain_error)
    app.add_exception_handler(Exception, _on_unexpected_error)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- the document ---------------------------------------------------------------------------------------------------

DESCRIPTIONS: Mapping[int, str] = {
    400: "the request cannot be done as asked; the detail says why",
    401: "no credentials, or the token is not valid: send 'Authorization: token <JupyterHub API token>'",
    403: "the caller may not do this; the detail says what is missing",
    404: "no such resource",
    409: "conflicts with the current state; the detail says what",
    410: "gone: used already or expired",
    413: "the request body is too large",
    422: "a parameter or a field breaks its rule; the detail names it",
    429: "too many requests; Retry-After says when to retry",
    502: "JupyterHub refused a change",
    503: "not possible right now (JupyterHub unreachable, too busy); try again",
}


_ACCESS_RESPONSES: Mapping[Any, tuple[int, ...]] = {
    access.optional_identity: (401, 503),
    access.required_identity: (401, 503),
    access.service_caller: (401, 403, 503),
    access.user_caller: (401, 403, 503),
    access.hub_caller: (401, 403, 503),
    access.admin_or_hub_caller: (401, 403, 503),
}


def _dependency_calls(dependant: Any) -> set[Any]:
    calls = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            calls.add(sub.call)
        calls |= _dependency_calls(sub)
    return calls


def _implied_codes(route: Any) -> set[int]:
    codes: set[int] = set()
    for call in _dependency_calls(route.dependant):
        codes.update(_ACCESS_RESPONSES.get(call, ()))
    if route.body_field is not None:
        codes.update((400, 413))  # a body that is not JSON (or not UTF-8), and one over the size limit
    return codes


def _api_routes(app: FastAPI) -> list[Any]:
    """The app's API routes with their full paths and dependencies, as ``get_openapi`` sees them (FastAPI >= 0.16x
    keeps included routers nested and resolves them through route contexts)."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:
        return [route for route in app.routes if isinstance(route, APIRoute)]
    return [
        context
        for context in iter_contexts(app.routes)
        if isinstance(getattr(context, "original_route", None), APIRoute)
    ]


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with the error answers described in the module docstring."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        openapi_version=app.openapi_version,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        path = document["paths"].get(route.path_format)
        if path is None:
            continue
        for method in route.methods:
            operation = path.get(method.lower())
            if operation is None:
                continue
            answers = operation.setdefault("responses", {})
            for code in sorted(_implied_codes(route)):
                answers.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for code, answer in answers.items():
                if code[0] in "45":
                    # Every error answer has the one error body (FastAPI's 422 default included).
                    answer["content"] = error_content
                    if answer.get("description") == "Validation Error":
                        answer["description"] = DESCRIPTIONS[422]
    return document
