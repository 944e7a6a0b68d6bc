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
* **Launcher** (``use_launcher``, with system users only): the server is forked from a process that has already
  imported Jupyter Server, JupyterLab and the extensions (``launcher.py``, where the security argument is), and
  becomes the user there exactly as above (groups, gid, uid, home, umask 077, memory limit, dataset links), with the
  environment this spawner computed. The first spawn after the hub starts starts the launcher and waits for it
  (about one server's imports). Dashboard servers, a changed ``cmd`` or a launcher that failed take the ordinary
  ``Popen`` path.

Rejected: ``SimpleLocalProcessSpawner`` (no user switching: every server as the hub's user, root here);
``sudospawner`` (a second privileged helper and sudoers rules for what the hub, running as root, can do itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import shlex
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from tornado.web import HTTPError
from traitlets import Any, Bool, Unicode, default

from polartep_hub.catalogue import Profile
from polartep_hub.spawners.dashboard_servers import DashboardServerMixin
from polartep_hub.spawners.dataset_mounts import (
    DatasetMount,
    link_datasets,
    mount_read_only,
    switch_user_with_groups,
    user_ids_with_groups,
)
from polartep_hub.spawners.launcher import LauncherError, fits_launcher, shared_launcher
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

    use_launcher = Bool(
        True,
        help="With system users: fork servers from the pre-imported launcher (launcher.py). Set by "
        "polartep_hub.hub_config from settings.local_launcher.",
        config=True,
    )

    # Upstream's trait takes only a Popen; a server from the launcher is followed by a launcher.LaunchedServer.
    proc = Any(allow_none=True, help="The server's Popen, or its launcher.LaunchedServer.")

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
        answer = await self.spawn_dataset_mounts()
        self.note_dataset_mounts(answer["mounts"])
        self.dataset_mounts = [DatasetMount.from_json(item) for item in answer["mounts"]]
        self.dataset_roots = [str(root) for root in answer.get("roots", [])]

    async def start(self):
        if self._launcher_applies():
            shared_launcher().start_in_background()  # the first spawn: while the account is prepared
        await self.prepare_account()
        await self.fetch_dataset_mounts()
        ip, port = await self._start_from_launcher() or await super().start()
        answering = await wait_until_answering(
            f"http://{ip}:{port}{self.server.base_url}api",
            within=self.start_timeout,
            alive=lambda: self.proc is not None and self.proc.poll() is None,
        )
        if not answering and self.dashboard_id and self.proc is not None and self.proc.poll() is not None:
            # A dashboard server says why it ended (spawners/dashboard_servers.py); the viewer sees it.
            raise HTTPError(500, self.dashboard_failure(self.home_dir))
        return ip, port

    def _launcher_applies(self) -> bool:
        """Whether this server is the plain single-user server of an isolated user (what the launcher runs)."""
        return bool(
            self.use_launcher
            and self.isolate
            and not getattr(self, "dashboard_id", None)
            and list(self.cmd) == self._cmd_default()
            and not self.shell_cmd
            and not self.popen_kwargs
        )

    async def _start_from_launcher(self) -> tuple[str, int] | None:
        """Start the server from the launcher as ``LocalProcessSpawner.start`` would with ``Popen``; None where the
        launcher does not apply or is not running (the caller then uses ``Popen``)."""
        if not self._launcher_applies():
            return None
        launcher = shared_launcher()
        try:
            await launcher.start()
        except LauncherError as error:
            self.log.warning("Starting %s as a new process: %s", self._log_name, error)
            return None
        if self.port == 0:
            self.port = random_port()  # before get_env: $JUPYTERHUB_SERVICE_URL carries it
        env = self.get_env()
        if not fits_launcher(env):
            return None
        argv = [*self.cmd, *self.get_args()]
        mounts = list(getattr(self, "dataset_mounts", []))
        if any(m.reason for m in mounts):
            # Over quota, a dataset is bind-mounted read-only in a mount namespace of the server's own, made before
            # the user switch (make_preexec_fn); the launcher's children do not do that, so take the Popen path.
            return None
        uid, gid, groups = user_ids_with_groups(
            self.system_user, [m.gid for m in mounts if m.gid is not None]
        )
        limit = int(self.mem_limit) if (self.enforce_memory_limit and self.mem_limit) else None
        spec = {
            "uid": uid,
            "gid": gid,
            "groups": groups,
            "home": self.home_dir,
            "env": env,
            "argv": argv,
            "memory_limit": limit,
            "mounts": [dataclasses.asdict(m) for m in mounts],
            "roots": list(getattr(self, "dataset_roots", [])),
        }
        self.log.info(
            "Spawning %s from the launcher as %s", " ".join(map(shlex.quote, argv)), self.system_user
        )
        try:
            self.proc = await launcher.spawn(spec)
        except LauncherError as error:
            self.log.warning(
                "Launcher failed for %s (%s); starting it as a new process", self._log_name, error
            )
            return None
        self.pid = self.proc.pid
        return (self.ip or "127.0.0.1", self.port)

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
            self.forget_dashboard_oauth_client()
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
