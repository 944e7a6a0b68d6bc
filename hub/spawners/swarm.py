"""``SwarmProfileSpawner``: one Docker Swarm service per server, with the same profiles, homes and rules as Docker mode.

Rules it guarantees (beyond ``DockerProfileSpawner``'s, which it inherits: catalogue images only, profile limits,
host networking with a guarded port per server, readiness wait):

* The profile's CPU and memory become the service's resource limits (``NanoCPUs``, ``MemoryBytes``).
* The user's home is the same named volume, ``polartep-home-{username}``, mounted as a volume (SwarmSpawner's
  default would bind-mount a host path).
* A task that exits is not restarted by the swarm: the hub sees the server stopped, as in Docker mode.
* Deleting the user (erasure) removes the home volume through the inherited ``delete_forever``, which waits for
  the swarm to remove the stopped task's container that still holds the volume.

One machine is enough (``docker swarm init --advertise-addr 127.0.0.1``); past one machine the home volumes need a
volume driver that reaches every node (``DockerSpawner.volume_driver``).
"""

from __future__ import annotations

from docker.types import Mount, RestartPolicy
from dockerspawner import SwarmSpawner
from traitlets import default

from polartep_hub.spawners.docker import DockerProfileSpawner


class SwarmProfileSpawner(DockerProfileSpawner, SwarmSpawner):
    """A swarm service per server, sized by the profile."""

    @default("extra_task_spec")
    def _extra_task_spec_default(self) -> dict:
        return {"restart_policy": RestartPolicy(condition="none")}

    @property
    def mounts(self) -> list[Mount]:
        driver = self.mount_driver_config
        return [
            Mount(
                target=bind["bind"],
                source=source,
                type="volume",
                read_only=bind["mode"] == "ro",
                driver_config=driver,
            )
            for source, bind in self.volume_binds.items()
        ]
