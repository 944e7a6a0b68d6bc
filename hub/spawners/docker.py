"""``DockerProfileSpawner``: one container per server, sized by the profile, on the host's network.

Rules it guarantees:

* Only images named in the catalogue can be started (CVE-2023-48311): the image comes from the profile and
  ``allowed_images`` is the catalogue's set, so neither the form nor the API can pick another (an ``image`` user
  option is refused by the profile validation before DockerSpawner ever sees it).
* ``cpu_limit``/``mem_limit`` come from the profile and reach the engine (``NanoCpus``-equivalent CPU quota and
  ``Memory`` in ``docker inspect``); a GPU device request is added only for profiles with GPUs and only where the
  host has one. A server that outgrows its memory is killed by the kernel's OOM killer and the hub reports it
  stopped (its container is gone), not hung.
* Each user has one persistent named volume, ``polartep-home-{username}``, mounted at ``/home/jovyan`` in every
  server of that user; containers are removed when they stop, volumes never are, so homes survive stop/start and
  hub restarts. No other user's volume is mounted. ``delete_forever`` of the default server (JupyterHub calls it
  when the user is deleted, e.g. on erasure) removes that volume, and only that one; removing a named server
  (``{"remove": true}``) keeps it, since all the user's servers share it.
* Host networking (all traffic stays on 127.0.0.1, and containers reach the hub's API there). Every server gets its
  own port: ports are chosen under a process-wide asyncio lock, reserved until the server stops and recorded in the
  spawner's state, so two concurrent spawns (or a server found again after a hub restart) never share one.
* ``start()`` returns only once the server answers HTTP (``wait_until_answering``), or once its container is gone.
"""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from traitlets import Float, Unicode, default

from polartep_hub.catalogue import Profile
from polartep_hub.spawners.home_volume import HOME_VOLUME_TEMPLATE
from polartep_hub.spawners.profiles import ProfileSpawnerMixin
from polartep_hub.spawners.readiness import wait_until_answering

HOME_IN_CONTAINER = "/home/jovyan"


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DockerProfileSpawner(ProfileSpawnerMixin, DockerSpawner):
    """One container per server, from the profile's image, with the profile's limits."""

    home_volume_template = Unicode(
        HOME_VOLUME_TEMPLATE,
        help="Name of the user's persistent Docker volume, mounted at /home/jovyan. DockerSpawner's templates "
        "apply ({username} is the escaped user name).",
        config=True,
    )

    volume_removal_timeout = Float(
        15.0,
        help="Seconds delete_forever keeps retrying to remove a home volume that a stopping container still holds "
        "(JupyterHub ignores a failure here; erasure checks the volume afterwards and stays pending until it is "
        "gone, so a longer wait here only delays the answer).",
        config=True,
    )

    # Ports handed out by this hub process and not yet given back (port -> server). Host networking means a
    # container binds the host's port itself: a port that is merely free now may be taken by a concurrent spawn
    # before its container starts, so the choice is made and recorded under one lock.
    _ports_in_use: ClassVar[dict[int, str]] = {}
    _port_lock: ClassVar[asyncio.Lock | None] = None

    @default("allowed_images")
    def _allowed_images_default(self) -> list[str]:
        return sorted({p.image for p in self.catalogue.profiles.values()})

    @default("volumes")
    def _volumes_default(self) -> dict[str, str]:
        return {self.home_volume_template: HOME_IN_CONTAINER}

    @default("notebook_dir")
    def _notebook_dir_default(self) -> str:
        return HOME_IN_CONTAINER

    def apply_profile(self, profile: Profile) -> None:
        super().apply_profile(profile)
        self.image = profile.image
        gpus = self.gpu_count(profile)
        # Memory means memory: no swap on top (Docker's default would allow as much swap again).
        extra = {**self.extra_host_config, "memswap_limit": profile.memory}
        if gpus:
            extra["device_requests"] = [{"Driver": "nvidia", "Count": gpus, "Capabilities": [["gpu"]]}]
        else:
            extra.pop("device_requests", None)
        self.extra_host_config = extra

    # Host networking: a port of our own per server ------------------------------------------------------------

    @property
    def _host_network(self) -> bool:
        return self.network_name == "host"

    @classmethod
    def _lock(cls) -> asyncio.Lock:
        # Created lazily: the lock must belong to the hub's running event loop.
        if cls._port_lock is None:
            cls._port_lock = asyncio.Lock()
        return cls._port_lock

    async def _reserve_port(self) -> int:
        async with self._lock():
            for _ in range(100):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                if port not in self._ports_in_use:
                    self._ports_in_use[port] = self._log_name
                    return port
        raise RuntimeError("no free port found for a new server")

    def _release_port(self) -> None:
        if self._host_network and self._ports_in_use.get(self.port) == self._log_name:
            del self._ports_in_use[self.port]

    def get_args(self) -> list[str]:
        args = list(super().get_args())
        if self._host_network:
            # The hub also passes the bind address in JUPYTERHUB_SERVICE_URL; the flags make it explicit.
            args += ["--ip=127.0.0.1", f"--port={self.port}"]
        return args

    async def get_ip_and_port(self) -> tuple[str, int]:
        if self._host_network:
            return "127.0.0.1", self.port
        return await super().get_ip_and_port()

    async def start(self):
        if self._host_network:
            self.ip = "127.0.0.1"
            # A server found again after a hub restart keeps its recorded port (load_state reserved it); a new one
            # gets a fresh port, which must also be free on the host right now.
            if not (self.port and self._ports_in_use.get(self.port) == self._log_name and self.object_id):
                self._release_port()
                self.port = await self._reserve_port()
                while not _port_is_free(self.port):
                    self._release_port()
                    self.port = await self._reserve_port()
        try:
            ip, port = await super().start()
            await wait_until_answering(
                f"http://{ip}:{port}{self.server.base_url}api",
                within=self.start_timeout,
                alive=self._container_running,
                alive_every=1.0,
            )
        except BaseException:
            self._release_port()
            raise
        return ip, port

    async def _container_running(self) -> bool:
        return await self.poll() is None

    async def stop(self, now: bool = False) -> None:
        port_owned = self.port
        await super().stop(now=now)
        self.port = port_owned
        self._release_port()
        self.port = 0

    # State: the port survives hub restarts with the container ----------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self._host_network and self.port:
            state["port"] = self.port
        return state

    def load_state(self, state):
        super().load_state(state)
        port = state.get("port")
        if self._host_network and port:
            self.port = int(port)
            self._ports_in_use[self.port] = self._log_name

    # Deleting the user: the home volume goes too ---------------------------------------------------------------

    @property
    def home_volume_name(self) -> str:
        return self.format_volume_name(self.home_volume_template, self)

    async def delete_forever(self) -> None:
        """Remove the user's home volume (JupyterHub calls this after stopping every server of a deleted user).

        A container that has just stopped may still hold the volume for a moment (a swarm task is removed
        asynchronously), so removal is retried for up to ``volume_removal_timeout`` seconds.
        """
        if self.name:
            # A named server being removed, not the user: the volume belongs to all their servers.
            return
        name = self.home_volume_name
        deadline = asyncio.get_running_loop().time() + self.volume_removal_timeout
        while True:
            try:
                await self.docker("remove_volume", name)
            except NotFound:
                return
            except APIError as error:
                if error.status_code == 409 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(1)  # in use: wait for the stopped container to go
                    continue
                self.log.error("Could not remove the home volume of %s: %s", self._log_name, error)
                raise
            self.log.info("Removed the home volume of %s", self._log_name)
            return
