"""``DockerProfileSpawner``: one hardened container per server, sized by the profile, on its user's Docker network.

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
  hub restarts. No other user's volume is mounted. The datasets the user may use are bind-mounted at
  ``/home/jovyan/datasets/<project>/<dataset>``, read-only where only granted (``dataset_mounts.py``).
  ``delete_forever`` of the default server (JupyterHub calls it
  when the user is deleted, e.g. on erasure) removes that volume, and only that one; removing a named server
  (``{"remove": true}``) keeps it, since all the user's servers share it.
* No host networking: each server runs on its user's network (``{prefix}-u-{user}``, ``networks.py``), created when
  missing, which only that user's servers and Dask containers join; the hub and the proxy reach the server at its
  address there (port 8888 in its own namespace), and the server reaches the hub's API at the platform network's
  gateway address (``JupyterHub.hub_connect_url``). Another user's containers are on other bridges (unreachable),
  and everything private to the platform is on the host's loopback, which a container does not share.
* Hardened like the Dask containers: uid 1000 (``user``), every capability dropped, ``no-new-privileges``, a
  read-only image (``/tmp`` a private tmpfs; the home volume writable), a bounded number of processes, and no Docker
  socket or other host path mounted.
* ``start()`` returns only once the server answers HTTP (``wait_until_answering``, polling its address on the
  user's network every 50 ms), so the hub's own first check succeeds at once instead of after its exponential
  back-off. A container that ends during its start fails the start within about ``ended_check_interval`` seconds
  with its exit code and the last lines of its output (HTTP 500), instead of the hub waiting ``http_timeout``;
  the ended container is removed there.
* Containers are removed when they end, by the spawner (not by the engine's ``auto_remove``, which would take the
  output with it): at ``stop()``, at the failed start above, or when ``poll()`` finds the container ended (the hub
  then reports the server stopped without calling ``stop()``).
* Spawns of different users do not queue behind each other: Docker calls run on ``docker_api_threads`` threads
  (DockerSpawner's default is one for the whole hub), and networks are created under a lock per network name.
* Dashboard servers (``dash-<id>``, ``dashboard_servers.py``) are containers like every other server (the profile's
  image and limits, the user's network, the same hardening, the home volume and dataset mounts, which the notebook
  may read as it would in JupyterLab), running the images' dashboard program instead of ``jupyterhub-singleuser``.
  One that ends during its start fails the start with the reason it printed (the container's output).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, NotFound
from dockerspawner import DockerSpawner
from tornado.web import HTTPError
from traitlets import Bool, Float, Integer, Unicode, default

from polartep_hub.catalogue import Profile
from polartep_hub.spawners.dashboard_servers import DashboardServerMixin
from polartep_hub.spawners.dataset_mounts import DatasetMount, docker_binds
from polartep_hub.spawners.home_volume import HOME_VOLUME_TEMPLATE
from polartep_hub.spawners.networks import NetworkNames
from polartep_hub.spawners.profiles import ProfileSpawnerMixin
from polartep_hub.spawners.readiness import wait_until_answering

HOME_IN_CONTAINER = "/home/jovyan"
DASHBOARD_PROGRAM = "/opt/polartep/dashboard_serve.py"


OUTPUT_LINES_SHOWN = 8


def dashboard_reason(lines: list[str]) -> str | None:
    """The reason the dashboard program printed as it ended (its last ``polartep dashboard:`` line), or None."""
    reasons = [line.strip() for line in lines if line.strip().startswith("polartep dashboard:")]
    return reasons[-1] if reasons else None


def ended_during_start_message(state: dict, lines: list[str]) -> str:
    """What the user reads when their server's container ended during its start: the exit code (and the kernel's
    out-of-memory kill), then the last lines the server printed."""
    if not state:
        how = "its container was removed"
    elif state.get("OOMKilled"):
        how = (
            f"it was killed for using more memory than its profile allows (exit code {state.get('ExitCode')})"
        )
    else:
        how = f"exit code {state.get('ExitCode')}"
    shown = [line[:300] for line in lines if line.strip()][-OUTPUT_LINES_SHOWN:]
    output = ("; its last output:\n" + "\n".join(shown)) if shown else ""
    return f"Your server ended during its start ({how}){output}"


class DockerProfileSpawner(DashboardServerMixin, ProfileSpawnerMixin, DockerSpawner):
    """One container per server, from the profile's image, with the profile's limits."""

    dashboard_program = Unicode(
        DASHBOARD_PROGRAM,
        help="Path, inside the catalogue's images, of the dashboard servers' program (images/base copies "
        "hub/dashboards/serve.py there).",
        config=True,
    )

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

    network_prefix = Unicode(
        "polartep",
        help="Prefix of the platform's Docker networks (PlatformSettings.docker_network_prefix); each user's servers "
        "join {prefix}-u-{username}.",
        config=True,
    )

    subnet_pool = Unicode(
        "10.213.0.0/16",
        help="Where users' networks get their /26 subnets (PlatformSettings.docker_subnet_pool).",
        config=True,
    )

    container_user = Unicode("1000:1000", help="uid:gid the server runs as (never root).", config=True)

    pids_limit = Integer(4096, help="Most processes (and threads) one server container may run.", config=True)

    read_only_image = Bool(
        True,
        help="Mount the image read-only (the home volume and a private /tmp stay writable).",
        config=True,
    )

    docker_api_threads = Integer(
        8,
        min=1,
        help="Threads for calls to the Docker engine, shared by every server of the hub. DockerSpawner's own "
        "default is one, which queues each spawn's create/start/inspect calls behind every other user's: ten users "
        "spawning at once then wait for each other.",
        config=True,
    )

    ended_check_interval = Float(
        1.0,
        min=0.1,
        help="Seconds between the checks, while a server starts, that its container still runs (one inspect call "
        "each, so ten servers starting at once cost the engine ten inspections a second); a container that ended "
        "fails the start after at most about this long.",
        config=True,
    )

    _api_executor: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        cls = DockerProfileSpawner
        if cls._api_executor is None:
            cls._api_executor = ThreadPoolExecutor(self.docker_api_threads, thread_name_prefix="docker-api")
        return cls._api_executor

    def other_servers_resume(self) -> bool:
        """DockerSpawner's own rule: a container that is not removed at a stop is resumed."""
        return not self.remove

    @default("network_name")
    def _network_name_default(self) -> str:
        return NetworkNames(self.network_prefix).user(self.escaped_name)

    @default("use_internal_ip")
    def _use_internal_ip_default(self) -> bool:
        return True

    @default("extra_create_kwargs")
    def _extra_create_kwargs_default(self) -> dict:
        return {"user": self.container_user}

    @default("extra_host_config")
    def _extra_host_config_default(self) -> dict:
        config = {
            # Removed by the spawner when it ends (stop, failed start, poll), so a failed start can say why.
            "auto_remove": False,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.pids_limit,
        }
        if self.read_only_image:
            config["read_only"] = True
            config["tmpfs"] = {"/tmp": "rw,nosuid,nodev,size=1g"}  # noqa: S108 (the container's own /tmp)
        return config

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

    async def ensure_network(self) -> str:
        """Create the user's network when missing (the gateway may have created it already)."""
        from polartep_hub.spawners.networks import ensure_user_network

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: ensure_user_network(
                self.network_prefix, self.subnet_pool, self.user.name, self.escaped_name, client=self.client
            ),
        )

    async def add_dataset_mounts(self) -> None:
        """Bind-mount the datasets this user may use at ``~/datasets/<project>/<dataset>``, read-only where only
        granted (``dataset_mounts.py``); asked again at every spawn, so a revoked grant is gone at the next one."""
        answer = await self.spawn_dataset_mounts()
        self.note_dataset_mounts(answer["mounts"])
        mounts = [DatasetMount.from_json(item) for item in answer["mounts"]]
        home_volumes = {
            source: target for source, target in self.volumes.items() if not isinstance(target, dict)
        }
        self.volumes = {**home_volumes, **docker_binds(mounts, HOME_IN_CONTAINER)}

    def apply_dashboard(self) -> None:
        """Run the image's copy of the dashboard program instead of jupyterhub-singleuser."""
        super().apply_dashboard()
        self.cmd = ["python", self.dashboard_program]

    async def start(self):
        await self.ensure_network()
        await self.add_dataset_mounts()
        ip, port = await super().start()
        if self.object_type != "container":
            # Swarm: a service's task, not a container; the hub's own check decides.
            await wait_until_answering(
                f"http://{ip}:{port}{self.server.base_url}api",
                within=self.start_timeout,
                alive=self._container_running,
                alive_every=1.0,
            )
            return ip, port
        ended: dict[str, dict] = {}

        async def still_running() -> bool:
            state = await self._container_state()
            if state.get("Running"):
                return True
            ended["state"] = state
            return False

        answering = await wait_until_answering(
            f"http://{ip}:{port}{self.server.base_url}api",
            within=self.start_timeout,
            alive=still_running,
            alive_every=self.ended_check_interval,
        )
        if answering or not ended:
            return ip, port  # up, or not yet up at the start timeout (the hub reports that)
        # Ended during its start: say why, then remove it (the hub skips stop() for a server that is not running).
        output = await self._container_output()
        await self.remove_object()
        if self.dashboard_id:
            # A dashboard server says why it ended (spawners/dashboard_servers.py); the viewer sees it.
            raise HTTPError(500, self.dashboard_failure_message(dashboard_reason(output)))
        raise HTTPError(500, ended_during_start_message(ended["state"], output))

    async def _container_state(self) -> dict:
        """The container's ``State`` (``docker inspect``); ``{}`` when it is gone."""
        try:
            container = await self.docker("inspect_container", self.object_id or self.object_name)
        except NotFound:
            return {}
        return container.get("State") or {}

    async def _container_output(self) -> list[str]:
        """The last lines the container printed (stdout and stderr); empty when it is gone."""
        try:
            output = await self.docker(
                "logs", self.object_id or self.object_name, stdout=True, stderr=True, tail=50
            )
        except (APIError, NotFound):
            return []
        return output.decode("utf-8", "replace").splitlines() if isinstance(output, bytes) else []

    async def _container_running(self) -> bool:
        return await self.poll() is None

    async def poll(self):
        """DockerSpawner's poll; a container found ended is removed here (the hub does not call ``stop()`` for a
        server that is no longer running, and the engine does not remove it: ``auto_remove`` is off)."""
        status = await super().poll()
        if status not in (None, 0) and self.object_type == "container" and self.object_id:
            await self.remove_object()
        return status

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
            self.forget_dashboard_oauth_client()
            return
        name = self.home_volume_name
        deadline = asyncio.get_running_loop().time() + self.volume_removal_timeout
        while True:
            try:
                await self.docker("remove_volume", name)
            except NotFound:
                break
            except APIError as error:
                if error.status_code == 409 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(1)  # in use: wait for the stopped container to go
                    continue
                self.log.error("Could not remove the home volume of %s: %s", self._log_name, error)
                raise
            self.log.info("Removed the home volume of %s", self._log_name)
            break
        from polartep_hub.spawners.networks import remove_user_network

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, lambda: remove_user_network(self.network_prefix, self.escaped_name, client=self.client)
        )
