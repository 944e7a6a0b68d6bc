"""``PlatformLocalBackend``: the embedded default Dask Gateway backend, cluster processes on this machine.

Choice (see the README's "Dask" section): the stock ``LocalBackend`` switches to the user's system account, but its
working-directory set-up is broken in dask-gateway-server 2026.3 (it extends a list with a path *string* and then
chowns every character of it, starting with ``/``). This backend keeps upstream's database-backed process
management and replaces the working-directory, ownership and process-start steps. Isolation between users' clusters
comes from two layers: dask-gateway's own (each cluster has its own TLS certificate and token; the gateway's API
only lets a user see and stop their own clusters) and, with system users, the kernel's (each user's scheduler and
workers run as that user's own account, ``spawners/system_users.py``, so no other user can read its key, attach to
or signal its processes).

Rules it guarantees:

* Ownership is only ever changed inside ``clusters_directory`` (never through a symbolic link, ``lchown``): a request
  for any other path is refused with ``UnsafeOwnershipChange``, so the stock bug can never reach ``/``.
* Every cluster's working directory lies inside ``clusters_directory`` (required; created 0711 by the hub in local
  mode with system users, 0700 otherwise) and is mode 0700; its certificate, key and logs are 0600.
* With system users (``isolate``), gateway user ``alice`` maps to system user ``<prefix>alice`` (created if the
  user never spawned a server); the working directory and everything in it belong to that account, and the
  scheduler and workers run as it (uid, gid and its groups set by ``subprocess`` itself, umask 077, ``HOME`` its
  home), plus the system groups of the datasets the user may use (``gateway/dataset_groups.py``). Log files are opened by the gateway relative to a directory handle opened without following links, so a
  user who replaces ``logs/`` with a symbolic link makes the start fail instead of steering a root-owned write.
* Without system users, processes run as the gateway's (the hub's) own user; in single-user local mode only
  ``single_user_name`` gets a cluster (``spawners/single_user.py``).
* Processes start in their working directory from the same Python environment as the user servers, so versions
  match, without a ``preexec_fn``.
* The gateway's SQLite database runs in write-ahead-log mode (``gateway_db.py``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets import Any, Bool, TraitError, Unicode, validate

from polartep_hub.gateway.admin_api import PlatformAdminRoutesMixin
from polartep_hub.gateway.gateway_db import use_write_ahead_log
from polartep_hub.gateway.quota_allowance import QuotaAllowanceMixin
from polartep_hub.gateway.user_totals import UserTotalsMixin
from polartep_hub.spawners.single_user import single_user_refusal
from polartep_hub.spawners.system_users import SystemUser, ensure_system_user


class UnsafeOwnershipChange(RuntimeError):
    """Raised when something asks this backend to change ownership outside its clusters directory."""


class PlatformLocalBackend(
    PlatformAdminRoutesMixin, UserTotalsMixin, QuotaAllowanceMixin, UnsafeLocalBackend
):
    """Local cluster processes as the user's own system account (or the hub's user without isolation), confined to
    ``clusters_directory``; the plan bounds each user's total over all their clusters (``user_totals.py``); the
    platform may stop a user's clusters (``admin_api.py``)."""

    dataset_groups = Any(
        None,
        allow_none=True,
        help="A DatasetGroupsClient (gateway/dataset_groups.py): the dataset gids a user's scheduler and workers get "
        "(None: none).",
        config=True,
    )

    isolate = Bool(
        False,
        help="Run each user's scheduler and workers as their system user (<system_user_prefix><name>; needs root).",
        config=True,
    )
    system_user_prefix = Unicode("jupyter-", help="As the spawner's (spawners/system_users.py).", config=True)
    homes_root = Unicode("/home", help="Where the system users' homes are (as the spawner's).", config=True)
    single_user_name = Unicode(
        "",
        help="Without isolation, in single-user local mode: the one user who may start a cluster.",
        config=True,
    )

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

    def system_user(self, username: str) -> SystemUser:
        """The account cluster processes of ``username`` run as, created on first need."""
        return ensure_system_user(username, self.system_user_prefix, self.homes_root)

    def set_file_permissions(self, paths, username: str) -> None:
        """Give ``paths`` (inside the clusters directory only) to the user's system account; refuse anything else."""
        # ``paths`` may hold single characters (the upstream bug): check each element as given, before changing any.
        for path in paths:
            if not self._inside_clusters_directory(str(path)):
                raise UnsafeOwnershipChange(
                    f"refusing to change ownership of {str(path)!r}: outside {self.clusters_directory}"
                )
        if not self.isolate:
            return
        user = self.system_user(username)
        for path in paths:
            os.lchown(path, user.uid, user.gid)

    def setup_working_directory(self, cluster) -> str:
        if not self.clusters_directory:
            raise UnsafeOwnershipChange("clusters_directory must be set for PlatformLocalBackend")
        if not self.isolate and self.single_user_name:
            refusal = single_user_refusal(cluster.username, self.single_user_name)
            if refusal:
                raise PermissionError(refusal)
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
        # Created as the gateway's user, then handed over (before the user can run anything in it).
        self.set_file_permissions([workdir, certsdir, logsdir, cert_path, key_path], cluster.username)
        self.log.debug("Working directory %s for cluster %s created", workdir, cluster.name)
        return workdir

    async def setup(self, app) -> None:
        if self.isolate:
            # Users must enter their own cluster's folder (0700, theirs) inside it, but not list the others.
            os.chmod(self.clusters_directory, 0o711)
        await super().setup(app)
        if use_write_ahead_log(self.db.db):
            self.log.info("Gateway database in write-ahead-log mode")

    def get_env(self, cluster) -> dict[str, str]:
        env = super().get_env(cluster)
        if self.isolate:
            user = self.system_user(cluster.username)
            env["USER"] = user.name
            env["HOME"] = str(user.home)
        return env

    def _open_log(self, workdir: str, name: str, user: SystemUser | None) -> int:
        """A new log file ``logs/<name>.log`` (0600, the user's), never reached through a symbolic link."""
        dir_fd = os.open(self.get_logs_directory(workdir), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name + ".log", flags, 0o600, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        if user is not None:
            os.fchown(fd, user.uid, user.gid)
        return fd

    async def start_process(self, cluster, cmd, env, name) -> int:
        """Start a scheduler or worker in the cluster's working directory, logging to ``logs/<name>.log``."""
        workdir = cluster.state["workdir"]
        user = self.system_user(cluster.username) if self.isolate else None
        switch = {}
        if user is not None:
            # subprocess sets gid, groups and uid itself between fork and exec (no preexec_fn).
            groups = [g for g in os.getgrouplist(user.name, user.gid) if g != user.gid]
            if self.dataset_groups is not None:
                # The datasets the user may use, as for their servers (gateway/dataset_groups.py).
                groups += [g for g in await self.dataset_groups.gids(cluster.username) if g not in groups]
            switch = {"user": user.uid, "group": user.gid, "extra_groups": groups, "umask": 0o077}
        fd = self._open_log(workdir, name, user)
        try:
            # cwd instead of upstream's preexec_fn(chdir): without a preexec_fn Python can use vfork/posix_spawn
            # where no user switch is needed, instead of copying the gateway's whole address space.
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=workdir,
                start_new_session=True,
                env=env,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
                **switch,
            )
        finally:
            os.close(fd)
        return proc.pid
