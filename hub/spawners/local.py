"""``LocalProfileSpawner``: the embedded default, user servers as local processes sized by their profile.

Rules it guarantees:

* **System users** (``isolate``, on whenever the platform runs as root; see ``settings.local_isolation``): each
  platform user's server, and every kernel and terminal it starts, runs as that user's own system account
  (``system_users.py``: ``<prefix><name>``, created on first spawn, no login shell, no password) with its groups
  (setgid, initgroups, setuid before ``exec``) and umask 077, in its home ``<homes_root>/<system user>`` (mode 0700,
  its own). No ``--allow-root``. The server's files, the platform's state folder (0700) and other users' homes are
  then kept apart by the kernel's own permission checks.
* **Single-user** (``isolate`` off: the platform runs without root, or ``local_isolation=single-user``): servers run
  as the hub's own system user, so only the configured administrator may start one (``single_user_name``); anyone
  else is refused (403, before the spawn) with a message that says to use ``POLARTEP_MODE=docker`` or start as
  root. The home is ``<homes_root>/<name>``. If that user is root the server needs ``--allow-root``, added with a warning.
* The profile's memory is enforced where the OS allows: an address-space limit (``RLIMIT_AS``) on the server and
  everything it starts (kernels, terminals). CPU is advertised (``CPU_LIMIT``, thread counts), not enforced: local
  processes have no CPU quota without cgroups, which Docker mode provides.
* ``delete_forever`` of the default server (JupyterHub calls it when the user is deleted, e.g. on erasure) removes
  the user's home, and only a folder strictly inside ``homes_root``: never the root itself, nothing reached through
  a symlink; with system users it first ends every process of the account and afterwards removes the account.
  Removing one named server (``{"remove": true}``) also calls ``delete_forever``, on that server's spawner only;
  the home is the user's, shared by all their servers, so it stays.
* **Datasets**: the server's processes get the system groups of the datasets the user may use, as the platform
  service says at this spawn, and ``~/datasets/<project>/<dataset>`` links to them (``dataset_mounts.py``); a
  revoked grant is gone at the next spawn.
* The server answers before ``start`` returns (``readiness.py``), polled briskly rather than with the hub's backoff.

Rejected: ``SimpleLocalProcessSpawner`` (no user switching: every server as the hub's user, root here);
``sudospawner`` (a second privileged helper and sudoers rules for what the hub, running as root, can do itself).
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado.web import HTTPError
from traitlets import Bool, Unicode, default

from polartep_hub.catalogue import Profile
from polartep_hub.spawners.dashboard_servers import DashboardServerMixin
from polartep_hub.spawners.dataset_mounts import (
    DatasetMount,
    link_datasets,
    mount_read_only,
    switch_user_with_groups,
)
from polartep_hub.spawners.profiles import ProfileSpawnerMixin
from polartep_hub.spawners.readiness import wait_until_answering
from polartep_hub.spawners.single_user import single_user_refusal
from polartep_hub.spawners.system_users import (
    SystemUser,
    delete_system_user,
    ensure_system_user,
    home_for,
    safe_home_to_delete,
    system_user_name,
)


class LocalProfileSpawner(DashboardServerMixin, ProfileSpawnerMixin, LocalProcessSpawner):
    """Local processes, one per server, as the user's own system account, with the profile's limits."""

    enforce_memory_limit = Bool(
        True, help="Apply the profile's memory as RLIMIT_AS to the server's process tree.", config=True
    )

    isolate = Bool(
        True,
        help="Run each user as their own system user (needs root); off: single-user, servers run as the hub's "
        "user and only single_user_name may start one. Set by polartep_hub.hub_config from settings.",
        config=True,
    )

    system_user_prefix = Unicode(
        "jupyter-", help="System user of platform user NAME: <prefix>NAME (see system_users.py).", config=True
    )

    homes_root = Unicode(
        "/home",
        help="The folder that holds every user's home; delete_forever removes a home only strictly inside it.",
        config=True,
    )

    single_user_name = Unicode(
        "admin",
        help="Without isolation: the one user who may start a server (the administrator).",
        config=True,
    )

    @property
    def system_user(self) -> str:
        """The account the server runs as (the platform user's own one when isolating)."""
        return system_user_name(self.user.name, self.system_user_prefix) if self.isolate else ""

    @property
    def home_dir(self) -> str:
        if self.isolate:
            return str(home_for(self.system_user, self.homes_root))
        return str(Path(self.homes_root) / self.user.name)

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # The single-user server comes from the hub's own environment, so versions always match.
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    @default("args")
    def _args_default(self) -> list[str]:
        if not self.isolate and os.geteuid() == 0:
            self.log.warning(
                "Single-user local mode as root: the server runs as root (--allow-root). Start the platform "
                "with system users (the default as root) or use Docker mode for isolation."
            )
            return ["--allow-root"]
        return []

    def apply_profile(self, profile: Profile) -> None:
        super().apply_profile(profile)
        if not self.gpu_count(profile):
            # Hide any GPU from the ML profile when the catalogue says this host should not use one.
            self.environment = {**self.environment, "CUDA_VISIBLE_DEVICES": ""}

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # The mixin names its own function (JupyterHub calls it as hook(spawner, options)); name ours instead.
        return LocalProfileSpawner._apply_profile_options

    async def _apply_profile_options(self, user_options: dict | None) -> None:
        # Before anything else (the consent check would ask the platform service, which has no such account).
        if not self.isolate:
            refusal = single_user_refusal(self.user.name, self.single_user_name)
            if refusal:
                raise HTTPError(403, refusal)
        await super()._apply_profile_options(user_options)

    async def prepare_account(self) -> SystemUser | None:
        """Create (first spawn) the system user and its home; without isolation, check who may start."""
        if not self.isolate:
            refusal = single_user_refusal(self.user.name, self.single_user_name)
            if refusal:
                raise PermissionError(refusal)
            os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
            return None
        loop = asyncio.get_running_loop()
        # useradd takes tens of milliseconds and locks /etc/passwd: keep it off the hub's event loop.
        return await loop.run_in_executor(
            None, ensure_system_user, self.user.name, self.system_user_prefix, self.homes_root
        )

    async def fetch_dataset_mounts(self) -> None:
        """Ask the platform service which datasets this server may use (``dataset_mounts.py``), for the preexec."""
        answer = await self.platform.dataset_mounts(self.user.name)
        self.note_dataset_mounts(answer["mounts"])
        self.dataset_mounts = [DatasetMount.from_json(item) for item in answer["mounts"]]
        self.dataset_roots = [str(root) for root in answer.get("roots", [])]

    async def start(self):
        await self.prepare_account()
        await self.fetch_dataset_mounts()
        ip, port = await super().start()
        answering = await wait_until_answering(
            f"http://{ip}:{port}{self.server.base_url}api",
            within=self.start_timeout,
            alive=lambda: self.proc is not None and self.proc.poll() is None,
        )
        if not answering and self.dashboard_id and self.proc is not None and self.proc.poll() is not None:
            # A dashboard server says why it ended (spawners/dashboard_servers.py); the viewer sees it.
            raise HTTPError(500, self.dashboard_failure(self.home_dir))
        return ip, port

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["USER"] = self.system_user or self.user.name
        env["HOME"] = self.home_dir
        # The account's login shell is nologin; terminals in JupyterLab still get a shell.
        env["SHELL"] = "/bin/bash"
        return env

    def make_preexec_fn(self, name):
        limit = int(self.mem_limit) if (self.enforce_memory_limit and self.mem_limit) else None
        home = self.home_dir
        mounts = list(getattr(self, "dataset_mounts", []))
        roots = list(getattr(self, "dataset_roots", []))
        gids = [m.gid for m in mounts if m.gid is not None]
        switch_user = switch_user_with_groups(self.system_user, gids) if self.isolate else None
        # Over quota: read-only for the owner of the files too (needs root, as the user switch does).
        read_only = mount_read_only([m.path for m in mounts if m.reason]) if self.isolate else None

        def preexec() -> None:
            if read_only:
                read_only()
            if switch_user:
                switch_user()  # setgid, setgroups (initgroups' list), setuid: the kernel checks from here on
            os.chdir(home)
            os.umask(0o077)  # what the user writes to /tmp or /dev/shm is theirs alone
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            link_datasets(home, mounts, roots)  # as the user, in the user's home

        return preexec

    async def move_certs(self, paths):
        # Upstream copies the certificates into the home as root and chowns what it finds there, which a user who
        # planted symbolic links could point elsewhere. Nothing here turns internal_ssl on; refuse rather than risk.
        raise RuntimeError("JupyterHub internal_ssl is not supported with LocalProfileSpawner")

    def home_to_delete(self) -> Path | None:
        """The user's home if it may be deleted (``system_users.safe_home_to_delete``); None if absent."""
        return safe_home_to_delete(Path(self.home_dir), self.homes_root)

    async def delete_forever(self) -> None:
        """Delete the user's home and everything in it, and the system user (JupyterHub calls this on deletion)."""
        if self.name:
            # A named server being removed, not the user: the home belongs to all their servers.
            return
        try:
            home = self.home_to_delete()
        except ValueError as error:
            self.log.error("Not deleting the home of %s: %s", self._log_name, error)
            raise
        loop = asyncio.get_running_loop()
        if self.isolate:
            removed = await loop.run_in_executor(
                None, delete_system_user, self.user.name, self.system_user_prefix, self.homes_root
            )
            if removed:
                self.log.info("Deleted the system user %s and its home", self.system_user)
        if home is not None and home.exists():
            # rmtree removes symlinks inside the home without following them.
            await loop.run_in_executor(None, shutil.rmtree, home)
            self.log.info("Deleted the home of %s", self._log_name)
