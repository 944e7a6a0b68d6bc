"""``SwarmProfileSpawner``: one Docker Swarm service per server, with the same profiles, homes and rules as Docker mode.

Rules it guarantees (beyond ``DockerProfileSpawner``'s, which it inherits: catalogue images only, profile limits,
readiness wait):

* Services join their user's network ``{prefix}-u-{user}``, in Swarm mode a swarm-scoped attachable bridge
  configured from a config-only network (``networks.py``; a swarm service cannot join a local bridge), created when
  missing. The user's Dask containers join the same network, as in Docker mode; another user's servers and
  clusters are on other bridges, which Docker keeps apart. The hub and the proxy reach a server at its task's
  address there, and the server reaches the hub's API at the platform network's gateway address.
* The task runs as uid 1000 with every capability dropped. Docker 20.10's swarm API has no ``no-new-privileges``,
  read-only root or process limit for services: those are missing in Swarm mode (the images have no setuid
  programs that matter without capabilities).

* The profile's CPU and memory become the service's resource limits (``NanoCPUs``, ``MemoryBytes``).
* The user's home is the same named volume, ``polartep-home-{username}``, mounted as a volume (SwarmSpawner's
  default would bind-mount a host path). The datasets the user may use are bind mounts of their folders at
  ``/home/jovyan/datasets/<project>/<dataset>``, read-only where only granted, as in Docker mode
  (``dataset_mounts.py``); a single node reaches the folders, several need them on shared storage at the same path.
* A task that exits is not restarted by the swarm: the hub sees the server stopped, as in Docker mode.
* Dashboard servers (``dash-<id>``, ``dashboard_servers.py``) are services like every other server: the profile's
  image and limits, the user's network, uid 1000 without capabilities, the home volume and dataset mounts, running
  the images' dashboard program as in Docker mode. One that ends during its start (before or after its task was
  reported running) fails the start with the reason the program printed, read from the service's log, and its
  service is removed.
* Deleting the user (erasure) removes the home volume through the inherited ``delete_forever``, which waits for
  the swarm to remove the stopped task's container that still holds the volume.

One machine is enough (``docker swarm init --advertise-addr 127.0.0.1``); past one machine the home volumes need a
volume driver that reaches every node (``DockerSpawner.volume_driver``).
"""

from __future__ import annotations

import asyncio

from docker.errors import APIError, NotFound
from docker.types import Mount, RestartPolicy
from dockerspawner import SwarmSpawner
from tornado.web import HTTPError
from traitlets import default

from polartep_hub.spawners.docker import DockerProfileSpawner


class SwarmProfileSpawner(DockerProfileSpawner, SwarmSpawner):
    """A swarm service per server, sized by the profile."""

    @default("extra_task_spec")
    def _extra_task_spec_default(self) -> dict:
        return {"restart_policy": RestartPolicy(condition="none")}

    @default("extra_create_kwargs")
    def _extra_create_kwargs_default(self) -> dict:
        # SwarmSpawner passes these to create_service, which has no `user`: the user is in the container spec.
        return {}

    @default("extra_container_spec")
    def _extra_container_spec_default(self) -> dict:
        return {"user": self.container_user, "cap_drop": ["ALL"]}

    async def start_object(self) -> None:
        """Wait for the task to run (SwarmSpawner's); a dashboard whose task ended first fails with its reason."""
        try:
            await super().start_object()
        except RuntimeError:
            if not self.dashboard_id:
                raise
            reason = await self.dashboard_exit_reason()
            await self.remove_object()
            raise HTTPError(500, self.dashboard_failure_message(reason)) from None

    async def dashboard_exit_reason(self) -> str | None:
        """The last ``polartep dashboard:`` line of the service's log (its one task's output), or None."""

        def read_log() -> bytes:
            chunks = self.client.service_logs(
                self.object_id or self.service_name, stdout=True, stderr=True, tail=50
            )
            return b"".join(chunks) if not isinstance(chunks, bytes) else chunks

        try:
            output = await asyncio.get_running_loop().run_in_executor(self.executor, read_log)
        except (APIError, NotFound):
            return None
        lines = output.decode("utf-8", "replace").splitlines()
        reasons = [line.strip() for line in lines if line.strip().startswith("polartep dashboard:")]
        return reasons[-1] if reasons else None

    async def ensure_network(self) -> str:
        """Create the user's swarm-scoped network when missing (the gateway may have created it already)."""
        from polartep_hub.spawners.networks import ensure_user_network

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: ensure_user_network(
                self.network_prefix,
                self.subnet_pool,
                self.user.name,
                self.escaped_name,
                client=self.client,
                swarm=True,
            ),
        )

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The running task's address on the servers' network (the hub does not resolve swarm service names).

        A dashboard server whose one task ended after it was reported running (an app that raises at import ends
        within seconds) fails the start at once with the reason from its log, as one that ended before; before, the
        hub waited 30 s here and showed "no address of service" instead of the reason."""
        for _ in range(60):
            tasks = await self.docker(
                "tasks", filters={"service": self.service_name, "desired-state": "running"}
            )
            if not tasks and self.dashboard_id:
                break  # its task ended (restart policy none: none follows)
            for task in tasks:
                # A swarm-scoped *bridge* gets its addresses from the node's local IPAM (its config-only network),
                # so the task's attachment carries none: read the address from the task's container on this node.
                container = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
                if container:
                    info = await self.docker("inspect_container", container)
                    network = (info["NetworkSettings"].get("Networks") or {}).get(self.network_name) or {}
                    if network.get("IPAddress"):
                        return network["IPAddress"], self.port
            await asyncio.sleep(0.5)
        if self.dashboard_id:
            reason = await self.dashboard_exit_reason()
            await self.remove_object()
            raise HTTPError(500, self.dashboard_failure_message(reason))
        raise RuntimeError(f"no address of service {self.service_name} on network {self.network_name}")

    @property
    def mounts(self) -> list[Mount]:
        """The home volume as a named volume, each dataset folder (an absolute host path) as a bind mount.

        SwarmSpawner makes every entry a volume mount; the engine refuses a volume whose source is a path, so the
        service of a user with any dataset could not be created. Read-only datasets are read-only binds, as in
        Docker mode."""
        driver = self.mount_driver_config
        return [
            Mount(
                target=bind["bind"],
                source=source,
                type="bind" if source.startswith("/") else "volume",
                read_only=bind["mode"] == "ro",
                driver_config=None if source.startswith("/") else driver,
            )
            for source, bind in self.volume_binds.items()
        ]
