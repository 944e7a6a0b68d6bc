"""``LocalProfileSpawner``: the embedded default, user servers as local processes sized by their profile.

Rules it guarantees:

* Each user gets a home folder under the platform's state directory (``users/<name>``), created on first start.
* The profile's memory is enforced where the OS allows: an address-space limit (``RLIMIT_AS``) on the server and
  everything it starts (kernels, terminals). CPU is advertised (``CPU_LIMIT``, thread counts), not enforced: local
  processes have no CPU quota without cgroups, which Docker mode provides.
* ``delete_forever`` of the default server (JupyterHub calls it when the user is deleted, e.g. on erasure) removes
  the user's home, and only a folder strictly inside ``homes_root``: never the root itself, nothing reached through
  a symlink. Removing one named server (``{"remove": true}``) also calls ``delete_forever``, on that server's
  spawner only; the home is the user's, shared by all their servers, so it stays.
* All servers run as the hub's own system user. That is no isolation between users, which is why this is the
  embedded default for one machine and development; Docker mode isolates. When that user is root the server needs
  ``--allow-root``, which is added here with a warning in the log.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Unicode, default

from ..catalogue import Profile
from .profiles import ProfileSpawnerMixin
from .readiness import wait_until_answering


class LocalProfileSpawner(ProfileSpawnerMixin, SimpleLocalProcessSpawner):
    """Local processes, one per server, with the profile's limits."""

    enforce_memory_limit = Bool(
        True, help="Apply the profile's memory as RLIMIT_AS to the server's process tree.", config=True
    )

    homes_root = Unicode(
        help="The folder that holds every user's home (default: the part of home_dir_template before {username}). "
        "delete_forever removes a home only strictly inside it.",
        config=True,
    )

    @default("homes_root")
    def _homes_root_default(self) -> str:
        return self.home_dir_template.split("{", 1)[0]

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # The single-user server comes from the hub's own environment, so versions always match.
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    @default("args")
    def _args_default(self) -> list[str]:
        if os.geteuid() == 0:
            self.log.warning(
                "Single-user servers run as root in local mode (--allow-root). Use Docker mode for isolation."
            )
            return ["--allow-root"]
        return []

    def apply_profile(self, profile: Profile) -> None:
        super().apply_profile(profile)
        if not self.gpu_count(profile):
            # Hide any GPU from the ML profile when the catalogue says this host should not use one.
            self.environment = {**self.environment, "CUDA_VISIBLE_DEVICES": ""}

    async def start(self):
        ip, port = await super().start()
        await wait_until_answering(
            f"http://{ip}:{port}{self.server.base_url}api",
            within=self.start_timeout,
            alive=lambda: self.proc is not None and self.proc.poll() is None,
        )
        return ip, port

    def make_preexec_fn(self, name):
        make_home = super().make_preexec_fn(name)
        limit = int(self.mem_limit) if (self.enforce_memory_limit and self.mem_limit) else None

        def preexec() -> None:
            make_home()
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        return preexec

    def home_to_delete(self) -> Path | None:
        """The user's home if it may be deleted: a real folder strictly inside ``homes_root``; None if absent.

        ``ValueError`` for anything else (a symlink, a path outside the root, the root itself), so a template or a
        user name that points elsewhere can never delete someone else's files.
        """
        root = Path(self.homes_root).resolve()
        home = Path(self.home_dir)
        if not home.is_absolute() or ".." in home.parts:
            raise ValueError("the home path must be absolute and contain no '..'")
        if home.is_symlink():
            raise ValueError("the home is a symbolic link; refusing to follow it")
        resolved = home.resolve()
        if resolved == root or root not in resolved.parents:
            raise ValueError(f"the home is not strictly inside the homes root {root}")
        if not resolved.exists():
            return None
        if not resolved.is_dir():
            raise ValueError("the home is not a folder")
        return resolved

    async def delete_forever(self) -> None:
        """Delete the user's home and everything in it (JupyterHub calls this when it deletes the user)."""
        if self.name:
            # A named server being removed, not the user: the home belongs to all their servers.
            return
        try:
            home = self.home_to_delete()
        except ValueError as error:
            self.log.error("Not deleting the home of %s: %s", self._log_name, error)
            raise
        if home is None:
            return
        # rmtree removes symlinks inside the home without following them.
        shutil.rmtree(home)
        self.log.info("Deleted the home of %s", self._log_name)
