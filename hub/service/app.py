"""Assembles the platform service's FastAPI application from its parts.

Rules this module guarantees:

* ``create_app`` is pure assembly: it does not read the environment, migrate the database or start a server
  (``__main__`` does those), so tests build apps with fakes at the two seams, ``identity_provider`` and ``passwords``.
* Every route lives under the service prefix, exactly as requests arrive through the proxy; the OpenAPI document is
  ``<prefix>api/v1/openapi.json``.
* Every error is JSON ``{"detail": "..."}`` (``errors.ErrorOut``), its status from the one table in ``errors.py``:
  validation errors name the field and the rule but never echo the input (it may be a password), and unexpected
  errors answer 500 without a traceback (which goes to the log only). The OpenAPI document lists every answer.
* Every response, errors included, carries the security headers of ``security_headers.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from polartep_hub.accounts import approvals, consents, password_reset, personal_data, signup
from polartep_hub.accounts import oidc as oidc_accounts
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.api import accounts as accounts_api
from polartep_hub.accounts.api import passwords as password_routes
from polartep_hub.accounts.api import personal_data as personal_data_routes
from polartep_hub.accounts.api import plans as plans_api
from polartep_hub.accounts.legal import LegalDocumentsError, LegalLibrary
from polartep_hub.accounts.pages import admin_accounts as admin_accounts_pages
from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import Catalogue
from polartep_hub.dashboards import api as dashboards_api
from polartep_hub.dashboards import metering as dashboard_metering
from polartep_hub.dashboards import pages as dashboards_pages
from polartep_hub.data import api as datasets_api
from polartep_hub.data import metering as dataset_metering
from polartep_hub.data import stac_api
from polartep_hub.data import store as datasets_store
from polartep_hub.data.federation import parse_peers
from polartep_hub.data.object_store import OBJECT_CLASS, ObjectStore
from polartep_hub.data.storage import CONTAINER_OWNER, StorageRoots
from polartep_hub.gateway.admin_client import GatewayAdmin
from polartep_hub.processors import api as processors_api
from polartep_hub.processors import metering as processor_metering
from polartep_hub.processors import ogc_jobs, ogc_processes
from polartep_hub.processors import pages as processor_pages
from polartep_hub.processors import runs_api as processor_runs_api
from polartep_hub.processors.builtin import ensure_builtin_processors
from polartep_hub.processors.execution import RunExecutor
from polartep_hub.projects import api as projects_api
from polartep_hub.projects.groups import ProjectGroupSync, Reconciler
from polartep_hub.service import api
from polartep_hub.service.config import ConfigError, ServiceConfig
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.service.hub_api import HubAPI
from polartep_hub.service.mail_outbox import MailOutbox
from polartep_hub.service.metrics import MetricsMiddleware, ServiceMetrics, full_route_templates
from polartep_hub.service.web import browser_login, errors, pages
from polartep_hub.service.web.flat_routes import mount_flat
from polartep_hub.service.web.identity import IdentityProvider
from polartep_hub.service.web.request_limits import BodyLimitMiddleware
from polartep_hub.service.web.security_headers import SecurityHeadersMiddleware
from polartep_hub.usage import api as usage_api
from polartep_hub.usage import pages as usage_pages
from polartep_hub.usage.enforcement import start_enforcement
from polartep_hub.usage.meters.gateway import start_gateway_meter
from polartep_hub.usage.meters.servers import start_server_meter
from polartep_hub.usage.storage import start_storage_sampler

log = logging.getLogger(__name__)


def _object_store(config: ServiceConfig, catalogue: Catalogue) -> ObjectStore | None:
    if config.object_store is None:
        return None
    if OBJECT_CLASS not in catalogue.storage:
        raise ConfigError(
            f"POLARTEP_OBJECT_STORE_ENDPOINT is set, but {catalogue.source} has no storage class {OBJECT_CLASS!r}"
        )
    return ObjectStore(config.object_store)


def dataset_storage_roots(config: ServiceConfig, catalogue: Catalogue) -> StorageRoots:
    """Each storage class's root folder from the settings; ``ConfigError`` naming the variable when malformed."""
    try:
        return StorageRoots.from_settings(
            list(catalogue.storage),
            config.datasets_dir or "data",  # the service runs in the platform's state folder
            config.dataset_roots,
            # With system users each dataset gets its system groups (local mode only: containers get mounts).
            group_prefix=config.home_folder_prefix if config.mode == "local" else "",
            container_owner=CONTAINER_OWNER if config.mode in ("docker", "swarm") else None,
            objects=_object_store(config, catalogue),
        )
    except ValueError as error:
        raise ConfigError(f"POLARTEP_DATASET_ROOTS: {error}") from None


def _storage_sources(context: ServiceContext) -> list[Callable[[Session, datetime], object]]:
    """What the storage sampler measures besides homes, in the same samples: the platform's own copies (published
    processors' notebooks and dashboards, charged to their owners in the class of homes: processors/metering.py,
    dashboards/metering.py) and datasets (charged to their projects' paying owners: data/metering.py)."""
    home_class = context.config.home_storage_class
    sources: list[Callable[[Session, datetime], object]] = [
        lambda session, now: dashboard_metering.sample_dashboards(session, home_class, now=now)
    ]
    if context.config.processors_dir is not None:
        notebooks = processors_api.notebook_store(context)
        sources.append(
            lambda session, now: processor_metering.sample_processor_notebooks(
                session, notebooks, home_class, now=now
            )
        )
    roots = context.storage_roots
    if roots:
        sources.append(lambda session, now: dataset_metering.sample_datasets(session, roots, now=now))
    return sources


def create_app(
    config: ServiceConfig,
    catalogue: Catalogue,
    *,
    identity_provider: IdentityProvider,
    passwords: Passwords | None = None,
    engine: Engine | None = None,
    hub_api: HubAPI | None = None,
) -> FastAPI:
    """The platform service as an ASGI app. The database must already be at the newest schema (``db.upgrade_to_head``)."""
    if config.default_plan not in catalogue.plans:
        raise ConfigError(
            f"POLARTEP_DEFAULT_PLAN={config.default_plan!r} is not a plan of {catalogue.source}; "
            f"known plans: {', '.join(catalogue.plans)}"
        )
    try:
        legal = LegalLibrary.load(config.legal_dir)
    except LegalDocumentsError as error:
        raise ConfigError(f"POLARTEP_LEGAL_DIR: {error}") from None
    engine = engine or make_engine(config.database_url)
    context = ServiceContext(
        config=config,
        catalogue=catalogue,
        engine=engine,
        sessions=make_sessionmaker(engine),
        passwords=passwords or Passwords(max_concurrent=config.login_max_concurrent_hashes),
        identity_provider=identity_provider,
        metrics=ServiceMetrics(),
        legal=legal,
        hub_api=hub_api,
    )
    context.outbox = MailOutbox(context.sessions, config.mail)
    context.storage_roots = dataset_storage_roots(config, catalogue)
    try:
        context.stac_peers = parse_peers(config.stac_peers)
    except ValueError as error:
        raise ConfigError(f"POLARTEP_STAC_PEERS: {error}") from None
    if config.single_user:
        accounts.refuse_accounts_but(context.sessions, config.admin_user)
    if config.gateway_api_url and config.hub_api_token:
        context.gateway_admin = GatewayAdmin(config.gateway_api_url, config.hub_api_token)
    if config.processors_dir is not None:
        # The built-in processors (the OGC test suite's echo), published once through the models.
        ensure_builtin_processors(context.sessions, config.processors_dir)
    if hub_api is not None and config.gateway_url and config.processors_dir is not None:
        # Processor runs on the invokers' gateway clusters, each with a short-lived token of its invoker.
        context.processor_runs = RunExecutor(
            config,
            context.sessions,
            hub_api,
            # Docker mode reads run files with a container of the catalogue's first (base) image (run_files.py).
            reader_image=next(iter(context.catalogue.profiles.values())).image,
        )
    if hub_api is not None:
        context.project_groups = ProjectGroupSync(hub_api, context.sessions)
        context.reconciler = Reconciler(context.project_groups)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before the first request: folders and groups of datasets deleted with their project (data/storage.py).
        with context.session() as session:
            try:
                datasets_store.sweep_orphans(session, context.storage_roots)
            except OSError as error:
                log.error("could not sweep the datasets' folders: %s", error)
        # Erasures interrupted by a crash or a hub outage are finished by this loop (personal_data.py).
        reconciler = asyncio.create_task(personal_data.reconcile_erasures(context)) if hub_api else None
        if context.reconciler is not None:
            context.reconciler.start()  # brings the hub's project groups in line with the database
        meter_task = start_gateway_meter(config, context)
        server_meter_task = start_server_meter(context)
        enforcement_task = start_enforcement(context)
        storage_task = start_storage_sampler(context, _storage_sources(context))
        outbox_task = asyncio.create_task(context.outbox.run())
        session_ends = asyncio.create_task(password_reset.reconcile_session_ends(context))
        # Runs left unfinished by a previous process are found again and driven to their end (execution.py).
        runs_task = (
            asyncio.create_task(context.processor_runs.run_forever()) if context.processor_runs else None
        )
        yield
        if runs_task is not None:
            runs_task.cancel()
        outbox_task.cancel()
        session_ends.cancel()
        if meter_task is not None:
            meter_task.cancel()
        if server_meter_task is not None:
            server_meter_task.cancel()
        if enforcement_task is not None:
            enforcement_task.cancel()
        if storage_task is not None:
            storage_task.cancel()
        if reconciler is not None:
            reconciler.cancel()
        if context.reconciler is not None:
            context.reconciler.stop()
        close = getattr(identity_provider, "aclose", None)
        if close is not None:
            await close()
        if hub_api is not None:
            hub_api.close()
        if context.gateway_admin is not None:
            context.gateway_admin.close()

    prefix = config.prefix.rstrip("/")
    app = FastAPI(
        title="Polar TEP platform service",
        version=api.SERVICE_VERSION,
        description="Accounts, plans and entitlements of the Polar TEP platform. "
        "Authenticate with `Authorization: token <JupyterHub API token>`.",
        openapi_url=f"{prefix}/api/v1/openapi.json",
        docs_url=None,  # served by api.docs, with a CSP of its own
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.context = context
    context.metrics.refreshers.append(accounts_api.refresh_metrics)

    route_templates: dict[int, str] = {}
    for router, router_prefix in (
        (api.service_router, prefix),
        (browser_login.router, prefix),
        (api.api_router, f"{prefix}/api/v1"),
        (accounts_api.router, f"{prefix}/api/v1"),
        (consents.page_router, prefix),
        (consents.api_router, f"{prefix}/api/v1"),
        (oidc_accounts.router, f"{prefix}/api/v1"),
        (signup.page_router, prefix),
        (signup.api_router, f"{prefix}/api/v1"),
        (approvals.page_router, prefix),
        (approvals.api_router, f"{prefix}/api/v1"),
        (personal_data_routes.api_router, f"{prefix}/api/v1"),
        (personal_data_routes.page_router, prefix),
        (plans_api.router, f"{prefix}/api/v1"),
        (projects_api.router, f"{prefix}/api/v1"),
        (processors_api.router, f"{prefix}/api/v1"),
        (ogc_processes.router, f"{prefix}/ogcapi"),
        (datasets_api.router, f"{prefix}/api/v1"),
        (stac_api.router, f"{prefix}/stac"),
        (admin_accounts_pages.router, prefix),
        (pages.static_router, prefix),
        (usage_api.router, f"{prefix}/api/v1"),
        (usage_pages.router, prefix),
        (processor_runs_api.router, f"{prefix}/api/v1"),
        (ogc_jobs.router, f"{prefix}/ogcapi"),
        (password_routes.api_router, f"{prefix}/api/v1"),
        (password_routes.page_router, prefix),
        (dashboards_api.router, f"{prefix}/api/v1"),
        (dashboards_pages.page_router, prefix),
        (processor_pages.page_router, prefix),
    ):
        # Flat, as older FastAPI mounted routers: nested routers cost about 1 ms per request (flat_routes.py).
        route_templates.update(full_route_templates("", mount_flat(app, router, router_prefix)))

    errors.install(
        app
    )  # the one domain-error -> HTTP table, and the OpenAPI document that lists every answer

    # Added innermost first: metrics see every response, security headers cover the 413s of the body limit.
    # Routes whose body carries a notebook (processors/api.py) may be larger than the default.
    app.add_middleware(
        BodyLimitMiddleware,
        path_limits={
            **{
                f"{prefix}/api/v1{path}": processors_api.NOTEBOOK_BODY_BYTES
                for path in processors_api.LARGE_BODY_PATHS
            },
            **{
                f"{prefix}/api/v1{path}": dashboards_api.NOTEBOOK_BODY_BYTES
                for path in dashboards_api.LARGE_BODY_PATHS
            },
        },
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=context.metrics, route_templates=route_templates)
    return app
