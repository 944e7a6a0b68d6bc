"""``PlatformLocalBackend``: the embedded default Dask Gateway backend, cluster processes on this machine.

Choice (see the README's "Dask" section): the stock ``LocalBackend`` switches to the user's system account, and its
working-directory set-up is broken in dask-gateway-server 2026.3 (it extends a list with a path *string* and then
chowns every character of it, starting with ``/``). Local-mode user servers already run as the hub's own system user
(``spawners/local.py``), so clusters do the same: this backend builds on ``UnsafeLocalBackend`` semantics (no user
switching) and adds one guard. Isolation between users' clusters comes from dask-gateway itself: each cluster has its
own TLS certificate and token, and the gateway's API only lets a user see and stop their own clusters. Docker mode
will run schedulers and workers as containers instead (a database-backed backend, as the maintainers describe in
dask-gateway issue #317).

Rules it guarantees:

* Nothing is ever chowned, and any request to change ownership of a path outside ``clusters_directory`` is refused
  with an error (the stock bug can never reach ``/`` through this class).
* Every cluster's working directory lies inside ``clusters_directory`` (required, created mode 0700).
* Scheduler and worker processes run as the gateway's (that is, the hub's) own user, from the same Python
  environment as the user servers, so versions match. They are started in their working directory with ``cwd``
  rather than a ``preexec_fn`` (which forces a full ``fork`` of the gateway process before each ``exec``).
* The gateway's SQLite database runs in write-ahead-log mode (``gateway_db.py``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets import TraitError, validate

from .admin_api import PlatformAdminRoutesMixin
from .gateway_db import use_write_ahead_log
from .user_totals import UserTotalsMixin


class UnsafeOwnershipChange(RuntimeError):
    """Raised when something asks this backend to change ownership outside its clusters directory."""


class PlatformLocalBackend(PlatformAdminRoutesMixin, UserTotalsMixin, UnsafeLocalBackend):
    """Local cluster processes as the hub's user, confined to ``clusters_directory``; the plan bounds each user's
    total over all their clusters (``user_totals.py``); the platform may stop a user's clusters (``admin_api.py``)."""

    @validate("clusters_directory")
    def _clusters_directory_is_absolute(self, proposal) -> str:
        value = proposal["value"]
        if not value or not os.path.isabs(value):
            raise TraitError(f"clusters_directory must be an absolute path, got {value!r}")
        Path(value).mkdir(mode=0o700, parents=True, exist_ok=True)
        return str(Path(value).resolve())

    def _inside_clusters_directory(self, path: str) -> bool:
        root = Path(self.clusters_directory).resolve()
        # Compare resolved paths, never string prefixes: /state/clusters-evil must not pass for /state/clusters.
        resolved = Path(path).resolve()
        return resolved == root or root in resolved.parents

    def set_file_permissions(self, paths, username: str) -> None:
        """Change nothing; refuse outright if a path lies outside the clusters directory."""
        # ``paths`` may hold single characters (the upstream bug): check each element as given.
        for path in paths:
            if not self._inside_clusters_directory(str(path)):
                raise UnsafeOwnershipChange(
                    f"refusing to change ownership of {str(path)!r}: outside {self.clusters_directory}"
                )

    def setup_working_directory(self, cluster) -> str:
        if not self.clusters_directory:
            raise UnsafeOwnershipChange("clusters_directory must be set for PlatformLocalBackend")
        workdir = os.path.join(self.clusters_directory, cluster.name)
        certsdir = self.get_certs_directory(workdir)
        logsdir = self.get_logs_directory(workdir)
        for path in (workdir, certsdir, logsdir):
            os.makedirs(path, 0o700, exist_ok=True)
        cert_path, key_path = self._get_tls_paths(workdir)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for path, data in [(cert_path, cluster.tls_cert), (key_path, cluster.tls_key)]:
            with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
                f.write(data)
        self.set_file_permissions([workdir, certsdir, logsdir, cert_path, key_path], cluster.username)
        self.log.debug("Working directory %s for cluster %s created", workdir, cluster.name)
        return workdir

    async def setup(self, app) -> None:
        await super().setup(app)
        if use_write_ahead_log(self.db.db):
            self.log.info("Gateway database in write-ahead-log mode")

    async def start_process(self, cluster, cmd, env, name) -> int:
        """Start a scheduler or worker in the cluster's working directory, logging to ``logs/<name>.log``."""
        workdir = cluster.state["workdir"]
        log_path = os.path.join(self.get_logs_directory(workdir), name + ".log")
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # cwd instead of upstream's preexec_fn(chdir): without a preexec_fn Python can use vfork/posix_spawn
            # instead of copying the gateway's whole address space for every process it starts.
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=workdir,
                start_new_session=True,
                env=env,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            os.close(fd)
        return proc.pid
