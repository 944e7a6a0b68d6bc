"""What one running platform service holds: settings, catalogue, database, password hasher, identity provider, metrics,
legal documents.

Rules this module guarantees:

* Built once by ``app.create_app`` and reachable from every request as ``request.app.state.context``; there is no
  module-level state, so several apps (tests) can live in one process.
* Database sessions come only from ``session()``; each request gets its own and closes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from polartep_hub.accounts.legal import LegalLibrary
from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import Catalogue
from polartep_hub.data.federation import Peer
from polartep_hub.data.storage import StorageRoots
from polartep_hub.gateway.admin_client import GatewayAdmin
from polartep_hub.projects.groups import ProjectGroupSync, Reconciler
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.hub_api import HubAPI
from polartep_hub.service.mail_outbox import MailOutbox
from polartep_hub.service.metrics import ServiceMetrics
from polartep_hub.service.web.identity import IdentityProvider


@dataclass
class ServiceContext:
    config: ServiceConfig
    catalogue: Catalogue
    engine: Engine
    sessions: sessionmaker[Session]
    passwords: Passwords
    identity_provider: IdentityProvider
    metrics: ServiceMetrics
    legal: LegalLibrary
    hub_api: HubAPI | None = None  # None where no hub runs the service (unit tests)
    # The gateway's platform routes, through which erasure stops a user's clusters; None where no gateway runs.
    gateway_admin: GatewayAdmin | None = None
    # Projects mirrored into JupyterHub's groups (project_groups.py); None where there is no hub to mirror into.
    project_groups: ProjectGroupSync | None = None
    reconciler: Reconciler | None = None
    # The mail outbox's deliverer (mail_outbox.py); None until the app is assembled.
    outbox: MailOutbox | None = None
    # Processor runs (processors/execution.py); None where no hub or gateway runs (unit tests).
    processor_runs: Any = None
    # The root folder of each storage class, where datasets keep their files (data/storage.py).
    storage_roots: StorageRoots | None = None
    # Other STAC APIs that every search also asks (data/federation.py).
    stac_peers: list[Peer] = field(default_factory=list)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that is always closed; closing discards whatever was not committed."""
        with self.sessions() as session:
            yield session


async def get_context(request: Request) -> ServiceContext:
    """The service context of the app handling ``request`` (a FastAPI dependency; ``async`` so that FastAPI runs it
    on the event loop rather than handing it to its thread pool)."""
    return request.app.state.context
