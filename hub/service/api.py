"""The platform service's own HTTP routes: index, health, metrics, the API's documentation page and the catalogue.

Route paths here are relative; ``app.create_app`` mounts ``service_router`` at the service prefix
(``/services/platform/``) and ``api_router`` at ``<prefix>api/v1``, because requests arrive through the proxy with the
prefix intact. The domains' routes are in their packages (``accounts/api/``, ``projects/api.py``, ``usage/api.py``).

Rules this module guarantees:

* Each route states who may call it through its access dependency (``web/access.py``).
* The health check answers without a caller, and says 503 while the database cannot be reached.
"""

from __future__ import annotations

import secrets
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from polartep_hub.service.db import database_is_available
from polartep_hub.service.web.access import Caller, Context, ServiceCaller
from polartep_hub.service.web.identity import METRICS_SCOPE

try:
    SERVICE_VERSION = version("polartep")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVICE_VERSION = "0.0.0"


class Health(BaseModel):
    status: str
    database: str
    catalogue: str = Field(description="Fingerprint of the catalogue file the service loaded")
    version: str


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
    for refresh in context.metrics.refreshers:
        refresh(context)
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
