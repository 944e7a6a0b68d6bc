"""``LocalProfileSpawner``: the embedded default, user servers as local processes sized by their profile.

Rules it guarantees:

* Each user gets a home folder under the platform's state directory (``users/<name>``), created on first start.
* The profile's memory is enforced where the OS allows: an address-space limit (``RLIMIT_AS``) on the server and
  everything it starts (kernels, terminals). CPU is advertised (``CPU_LIMIT``, thread counts), not enforced: local
  processes have no CPU quota without cgroups, which Docker mode provides.
* All servers run as the hub's own system user. That is no isolation between users, which is why this is the
  embedded default for one machine and development; Docker mode isolates. When that user is root the server needs
  ``--allow-root``, which is added here with a warning in the log.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, default

from ..catalogue import Profile
from .profiles import ProfileSpawnerMixin
from .readiness import wait_until_answering


class LocalProfileSpawner(ProfileSpawnerMixin, SimpleLocalProcessSpawner):
    """Local processes, one per server, with the profile's limits."""

    enforce_memory_limit = Bool(
        True, help="Apply the profile's memory as RLIMIT_AS to the server's process tree.", config=True
    )

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
