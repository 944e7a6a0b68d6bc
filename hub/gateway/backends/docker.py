"""``PlatformDockerBackend``: Dask Gateway schedulers and workers as Docker containers (Docker mode).

In Docker and Swarm modes every user server is a container of its profile's catalogue image, with the profile's CPU
and memory as hard limits, as uid 1000, on a network of the platform's (``spawners/docker.py``,
``spawners/networks.py``). Dask clusters get the same treatment:
this backend (a ``DBBackendBase`` subclass, the route dask-gateway's maintainers describe in their issue #317 for
backends they do not ship) starts the scheduler and each worker as a container of their own.

*Why containers, and not the process backend inside the user's server container.* The alternative (workers as
processes of the user's server, bounded by its limits) would share one cgroup between the notebook and every
worker: a cluster could never be larger than the server, the plan's Dask bounds (worker size x workers) would be
meaningless, one worker running out of memory would kill the user's notebook with it, a cluster could not outlive a
stopped server, and the gateway would need a way to run commands inside users' containers (``docker exec``, as
root-equivalent as this). With one container per scheduler and worker, each gets exactly the cores and memory the
gateway granted (``docker inspect`` shows them), the kernel enforces them, metering can charge worker cores x time
per container, and the same code maps one-to-one onto the Kubernetes backend's pods.

Rules it guarantees:

* Only catalogue images run: ``DockerClusterConfig.image`` must be one of ``allowed_images`` (the catalogue's set),
  checked when the cluster's configuration is built, so a bad image is refused before anything starts. Images are
  never pulled (containers are created, not ``run``: a missing image is an error, not a registry request).
* Limits as for servers: memory as a hard limit with no swap on top (``Memory`` = ``MemorySwap``), CPU as a CFS quota
  (``CpuQuota``/``CpuPeriod``, which Docker accepts above the host's core count where ``NanoCpus`` is refused). The
  scheduler gets ``scheduler_cores``/``scheduler_memory``, each worker ``worker_cores``/``worker_memory``.
* Containers run as ``container_user`` (uid 1000, never root), with every Linux capability dropped and
  ``no-new-privileges``; the only volume mounted is the cluster owner's home volume (the one their servers mount),
  plus the datasets the platform service says the owner may use now, bind-mounted as in their servers (read-only
  where only granted; ``gateway/dataset_groups.py``), decided by the service, never by cluster options.
* Every scheduler and worker runs on its owner's user network (``{prefix}-u-{user}``, created here when missing),
  never on the host's network: workers reach their own scheduler, no other user's container reaches either (another
  bridge), and they reach the platform only at the platform network's gateway address (the gateway's proxy, where
  the scheduler sends its heartbeats with its cluster's token). They listen on every interface of their own network
  namespace (loopback and the user network), on ports the kernel picks. Traffic between the gateway, scheduler and
  workers is TLS with the cluster's own certificate (dask-gateway's model); the certificate and key reach the
  containers in their environment as PEM text (distributed accepts PEM contents in place of file paths), so the
  gateway writes no credential file; the engine keeps a container's environment in its own root-only state, as it
  does for the hub token DockerSpawner passes to servers.
* Every container carries labels naming this gateway (``instance_id``), the user, the cluster and (workers) the
  worker. State is checkpointed to the gateway's database *before* each container is created, so a gateway killed at
  any line finds its containers again by name or label. At start-up and every ``orphan_check_period`` seconds,
  containers of this gateway whose cluster or worker is unknown or stopped are removed (no orphans). Containers of
  other gateways on the same engine are never touched.
* Stopped means removed: stopping a cluster removes all its containers (found by label, so even a worker whose state
  was lost goes too); stopping a worker removes its container.
* The event loop never blocks: every docker-py call runs in this backend's own thread pool.
* The gateway's SQLite database runs in write-ahead-log mode, as in local mode (``gateway_db.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dask_gateway_server.backends.db_base import Cluster, DBBackendBase, JobStatus, Worker
from dask_gateway_server.traitlets import Type
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Integer, List, TraitError, Unicode, default, validate

from polartep_hub.gateway.admin_api import PlatformAdminRoutesMixin
from polartep_hub.gateway.gateway_db import use_write_ahead_log
from polartep_hub.gateway.options import PlatformClusterConfig
from polartep_hub.gateway.quota_allowance import QuotaAllowanceMixin
from polartep_hub.gateway.user_totals import UserTotalsMixin
from polartep_hub.spawners.home_volume import HOME_VOLUME_TEMPLATE, escape_name

LABEL_PREFIX = "org.polartep.dask"
LABEL_GATEWAY = f"{LABEL_PREFIX}.gateway"
LABEL_USER = f"{LABEL_PREFIX}.user"
LABEL_CLUSTER = f"{LABEL_PREFIX}.cluster"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
LABEL_WORKER = f"{LABEL_PREFIX}.worker"

HOME_IN_CONTAINER = "/home/jovyan"
# The images' venv (images/base/Dockerfile); distributed >= 2026.8 has only the `dask` CLI, no dask-scheduler script.
IMAGE_DASK = "/opt/venv/bin/dask"


def instance_id_for(db_url: str) -> str:
    """A stable id of one gateway installation (its database), to tell its containers from other gateways'."""
    return hashlib.sha256(db_url.encode()).hexdigest()[:16]


def container_spec(
    *,
    name: str,
    image: str,
    command: list[str],
    environment: dict[str, str],
    labels: dict[str, str],
    cores: float,
    memory: int,
    user: str,
    home_volume: str | None,
    network: str,
    cpu_period: int = 100_000,
    pids_limit: int = 4096,
    dataset_binds: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``docker.containers.create`` for one scheduler or worker container.

    A pure function (tested without an engine): memory is a hard limit without swap, CPU a CFS quota of ``cores``
    periods, on ``network`` (the user's network), no capabilities, no privilege escalation, a bounded number of
    processes; the home volume and ``dataset_binds`` (``spawners/dataset_mounts.docker_binds``) are its only mounts.
    """
    if cores <= 0 or memory <= 0:
        raise ValueError(f"container {name}: cores and memory must be positive (got {cores}, {memory})")
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": command,
        "environment": environment,
        "labels": labels,
        "detach": True,
        "network": network,
        "user": user,
        "mem_limit": int(memory),
        "memswap_limit": int(memory),
        "cpu_period": cpu_period,
        "cpu_quota": int(round(cores * cpu_period)),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": pids_limit,
        "working_dir": HOME_IN_CONTAINER if home_volume else "/tmp",
    }
    volumes: dict[str, dict[str, str]] = {}
    if home_volume:
        volumes[home_volume] = {"bind": HOME_IN_CONTAINER, "mode": "rw"}
    for source, target in (dataset_binds or {}).items():
        if source in volumes or target.get("mode") not in ("rw", "ro"):
            raise ValueError(f"container {name}: bad dataset mount {source!r}")
        volumes[source] = {"bind": target["bind"], "mode": target["mode"]}
    if volumes:
        spec["volumes"] = volumes
    return spec


class DockerClusterConfig(PlatformClusterConfig):
    """A cluster's configuration in Docker mode: the platform's (plan bounds, worker profile) plus the scheduler's
    (catalogue) image; workers run the chosen profile's ``worker_image`` when there is one."""

    image = Unicode(
        "polartep/base",
        help="Image of the scheduler and worker containers; must be one of the backend's allowed_images "
        "(the catalogue's images).",
        config=True,
    )

    @validate("image", "worker_image")
    def _image_from_the_catalogue(self, proposal) -> str:
        image = proposal["value"]
        allowed = getattr(self.parent, "allowed_images", None)
        if image and allowed is not None and image not in allowed:
            raise TraitError(
                f"image {image!r} is not a catalogue image; allowed: {', '.join(sorted(allowed))}"
            )
        return image


class PlatformDockerBackend(PlatformAdminRoutesMixin, UserTotalsMixin, QuotaAllowanceMixin, DBBackendBase):
    """Schedulers and workers as containers on this machine's Docker engine; the plan bounds each user's total over
    all their clusters (``UserTotalsMixin``), as in local mode."""

    cluster_config_class = Type(
        "polartep_hub.gateway.backends.docker.DockerClusterConfig",
        klass="dask_gateway_server.backends.base.ClusterConfig",
        help="The cluster config class to use",
        config=True,
    )

    allowed_images = List(
        Unicode(),
        help="The only images clusters may use (the catalogue's images).",
        config=True,
    )

    instance_id = Unicode(
        help="Labels this gateway's containers, so that it finds (and cleans up) only its own on a shared engine. "
        "Defaults to a hash of db_url; set it explicitly before moving the database.",
        config=True,
    )

    @default("instance_id")
    def _instance_id_default(self) -> str:
        return instance_id_for(self.db_url)

    container_user = Unicode("1000:1000", help="uid:gid of scheduler and worker processes.", config=True)

    container_prefix = Unicode("polartep", help="Container names start with this.", config=True)

    home_volume_template = Unicode(
        HOME_VOLUME_TEMPLATE,
        help="The user's home volume (as DockerProfileSpawner names it), mounted at /home/jovyan in their cluster's "
        "containers; empty: none.",
        config=True,
    )

    cpu_period = Integer(100_000, help="CFS period (µs) of the CPU quota.", config=True)

    dataset_mounts = AnyTrait(
        None,
        allow_none=True,
        help="A DatasetGroupsClient (gateway/dataset_groups.py): the datasets bind-mounted into a user's scheduler "
        "and workers at /home/jovyan/datasets/<project>/<dataset>, read-only where only granted (None: none). Asked "
        "of the platform service at each container start, never taken from cluster options.",
        config=True,
    )

    pids_limit = Integer(
        4096, help="Most processes (and threads) one scheduler or worker container may run.", config=True
    )

    network_prefix = Unicode(
        "polartep",
        help="Prefix of the platform's Docker networks (PlatformSettings.docker_network_prefix): each user's "
        "containers join {prefix}-u-{user}.",
        config=True,
    )

    subnet_pool = Unicode(
        "10.213.0.0/16",
        help="Where users' networks get their /26 subnets (PlatformSettings.docker_subnet_pool).",
        config=True,
    )

    swarm_networks = Bool(
        False,
        help="Swarm mode: users' networks are swarm-scoped attachable bridges (spawners/networks.py), which the "
        "users' server services join too.",
        config=True,
    )

    orphan_check_period = Float(
        60, help="Seconds between sweeps for containers of this gateway that no cluster owns.", config=True
    )

    docker_threads = Integer(8, help="Threads for blocking Docker API calls.", config=True)

    stop_timeout = Integer(
        0,
        help="Seconds a container is given to exit after SIGTERM when it is stopped (0: killed at once).",
        config=True,
    )

    # Every interface of the container's own network namespace: its loopback and its user network. distributed
    # advertises the user-network address (the one its default route leaves by).
    default_host = "0.0.0.0"  # noqa: S104 (inside the container's own namespace, never the host's)
    # Stopping a cluster removes all of its containers at once (by label).
    supports_bulk_shutdown = True

    # Docker client and thread pool ----------------------------------------------------------------------------------

    _client = None
    _client_lock = threading.Lock()
    _executor: ThreadPoolExecutor | None = None
    _orphan_task: asyncio.Task | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="docker-backend")
        return self._executor

    def _docker_client(self):
        # Created on first use inside a pool thread (from_env() asks the engine for its API version), once.
        with self._client_lock:
            if self._client is None:
                import docker

                self._client = docker.from_env(timeout=120)
        return self._client

    async def _docker(self, fn, *args: Any) -> Any:
        """Run ``fn(client, *args)`` in the pool, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), lambda: fn(self._docker_client(), *args))

    # Names, labels, environment ------------------------------------------------------------------------------------

    def scheduler_container_name(self, cluster: Cluster) -> str:
        return f"{self.container_prefix}-{escape_name(cluster.username)}-dask-scheduler-{cluster.name}"

    def worker_container_name(self, worker: Worker) -> str:
        return f"{self.container_prefix}-{escape_name(worker.cluster.username)}-dask-worker-{worker.name}"

    def home_volume(self, username: str) -> str | None:
        if not self.home_volume_template:
            return None
        return self.home_volume_template.format(username=escape_name(username))

    def labels(self, cluster: Cluster, role: str, worker: str | None = None) -> dict[str, str]:
        labels = {
            LABEL_GATEWAY: self.instance_id,
            LABEL_USER: cluster.username,
            LABEL_CLUSTER: cluster.name,
            LABEL_ROLE: role,
        }
        if worker:
            labels[LABEL_WORKER] = worker
        return labels

    def _tls_environment(self, cluster: Cluster, role: str) -> dict[str, str]:
        cert, key = cluster.tls_cert.decode(), cluster.tls_key.decode()
        return {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert,
            f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__CERT": cert,
            f"DASK_DISTRIBUTED__COMM__TLS__{role.upper()}__KEY": key,
        }

    def get_env(self, cluster: Cluster) -> dict[str, str]:
        env = super().get_env(cluster)
        env["USER"] = "jovyan"
        return env

    def get_scheduler_env(self, cluster: Cluster) -> dict[str, str]:
        return {**self.get_env(cluster), **self._tls_environment(cluster, "scheduler")}

    def get_worker_env(self, cluster: Cluster) -> dict[str, str]:
        return {**self.get_env(cluster), **self._tls_environment(cluster, "worker")}

    # Containers -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _create_and_start(client, spec: dict[str, Any]) -> str:
        import docker

        try:
            container = client.containers.create(**spec)
        except docker.errors.APIError as e:
            if (
                getattr(e, "status_code", None) != 409
            ):  # 409: a container of that name exists (a retried start)
                raise
            container = client.containers.get(spec["name"])
        container.start()
        return container.id

    def _remove(self, client, ref: str) -> bool:
        """Remove a container by name or id; False when there was none. Logs the output of one that failed."""
        import docker

        try:
            info = client.api.inspect_container(ref)
        except docker.errors.NotFound:
            return False
        state = info.get("State", {})
        if state.get("Status") in ("exited", "dead") and state.get("ExitCode"):
            try:
                tail = client.api.logs(ref, tail=20).decode(errors="replace")
            except docker.errors.APIError:
                tail = "(no logs)"
            self.log.warning("Container %s exited with %s:\n%s", ref, state.get("ExitCode"), tail)
        try:
            if self.stop_timeout and state.get("Running"):
                client.api.stop(ref, timeout=self.stop_timeout)
            client.api.remove_container(ref, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as e:
            if e.status_code == 409 and "already in progress" in str(e):
                return True  # removed by a concurrent call (e.g. a scale-down meeting the orphan sweep)
            raise
        return True

    def _list_ours(self, client, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        wanted = [f"{LABEL_GATEWAY}={self.instance_id}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        return client.api.containers(all=True, filters={"label": wanted})

    @staticmethod
    def _alive(client, ref: str | None) -> bool:
        import docker

        if not ref:
            return False
        try:
            state = client.api.inspect_container(ref)["State"]
        except docker.errors.NotFound:
            return False
        return state.get("Status") in ("created", "running", "restarting")

    async def _start_container(self, spec: dict[str, Any]) -> str:
        return await self._docker(self._create_and_start, spec)

    async def user_network(self, username: str) -> str:
        """The user's network, created when missing (the hub's spawner may not have created it yet)."""
        from polartep_hub.spawners.networks import ensure_user_network

        return await self._docker(
            lambda client: ensure_user_network(
                self.network_prefix,
                self.subnet_pool,
                username,
                escape_name(username),
                client=client,
                swarm=self.swarm_networks,
            )
        )

    async def dataset_binds(self, username: str) -> dict[str, dict[str, str]]:
        """The user's datasets as bind mounts, as their servers get them (``spawners/dataset_mounts.py``)."""
        if self.dataset_mounts is None:
            return {}
        from polartep_hub.spawners.dataset_mounts import DatasetMount, docker_binds

        mounts = []
        for item in await self.dataset_mounts.mounts(username):
            try:
                mounts.append(DatasetMount.from_json(item))
            except (KeyError, TypeError, ValueError):
                self.log.warning("ignoring a malformed dataset mount for %s", username)
        return docker_binds(mounts, HOME_IN_CONTAINER)

    async def _remove_all(self, refs: list[str]) -> None:
        await asyncio.gather(*(self._docker(self._remove, ref) for ref in refs))

    # DBBackendBase -------------------------------------------------------------------------------------------------

    async def setup(self, app) -> None:
        await super().setup(app)
        if use_write_ahead_log(self.db.db):
            self.log.info("Gateway database in write-ahead-log mode")

    async def do_setup(self) -> None:
        self.log.info(
            "Docker backend %s: allowed images %s", self.instance_id, ", ".join(self.allowed_images)
        )
        # Without an engine nothing can run: fail now, with the reason, rather than on every cluster.
        version = await self._docker(lambda client: client.version()["ApiVersion"])
        self.log.info("Docker engine reachable (API %s)", version)
        await self.remove_orphans()
        self._orphan_task = asyncio.ensure_future(self._orphan_loop())

    async def do_cleanup(self) -> None:
        if self._orphan_task is not None:
            self._orphan_task.cancel()
            await asyncio.gather(self._orphan_task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def do_start_cluster(self, cluster: Cluster):
        name = self.scheduler_container_name(cluster)
        # Checkpoint the name before the container exists: a gateway killed mid-start still finds and removes it.
        yield {"container": name}
        spec = container_spec(
            name=name,
            image=cluster.config.image,
            command=self.get_scheduler_command(cluster),
            environment=self.get_scheduler_env(cluster),
            labels=self.labels(cluster, "scheduler"),
            cores=cluster.config.scheduler_cores,
            memory=cluster.config.scheduler_memory,
            user=self.container_user,
            home_volume=self.home_volume(cluster.username),
            network=await self.user_network(cluster.username),
            cpu_period=self.cpu_period,
            pids_limit=self.pids_limit,
            dataset_binds=await self.dataset_binds(cluster.username),
        )
        container_id = await self._start_container(spec)
        self.log.info("Scheduler container %s of cluster %s started", name, cluster.name)
        yield {"container": name, "id": container_id}

    async def do_stop_cluster(self, cluster: Cluster) -> None:
        listed = await self._docker(self._list_ours, {LABEL_CLUSTER: cluster.name})
        refs = {c["Id"] for c in listed}
        names = {n.lstrip("/") for c in listed for n in c.get("Names") or ()}
        # Names from the checkpointed state too, in case a container lost its labels' match; each container once.
        for state in [cluster.state, *(w.state for w in cluster.workers.values())]:
            if state.get("container") and state["container"] not in names:
                refs.add(state["container"])
        await self._remove_all(sorted(refs))
        self.log.info("Removed the containers of cluster %s", cluster.name)

    async def do_check_clusters(self, clusters: list[Cluster]) -> list[bool]:
        return list(
            await asyncio.gather(*(self._docker(self._alive, c.state.get("container")) for c in clusters))
        )

    async def do_start_worker(self, worker: Worker):
        cluster = worker.cluster
        name = self.worker_container_name(worker)
        yield {"container": name}
        spec = container_spec(
            name=name,
            # The worker profile's image (e.g. the ML image) when the user chose one; the cluster's otherwise.
            image=cluster.config.worker_image or cluster.config.image,
            command=self.get_worker_command(cluster, worker.name),
            environment=self.get_worker_env(cluster),
            labels=self.labels(cluster, "worker", worker.name),
            cores=cluster.config.worker_cores,
            memory=cluster.config.worker_memory,
            user=self.container_user,
            home_volume=self.home_volume(cluster.username),
            network=await self.user_network(cluster.username),
            cpu_period=self.cpu_period,
            pids_limit=self.pids_limit,
            dataset_binds=await self.dataset_binds(cluster.username),
        )
        container_id = await self._start_container(spec)
        yield {"container": name, "id": container_id}

    async def do_stop_worker(self, worker: Worker) -> None:
        if worker.state.get("container"):
            await self._docker(self._remove, worker.state["container"])

    async def do_check_workers(self, workers: list[Worker]) -> list[bool]:
        return list(
            await asyncio.gather(*(self._docker(self._alive, w.state.get("container")) for w in workers))
        )

    # Orphans -------------------------------------------------------------------------------------------------------

    def is_orphan(self, labels: dict[str, str]) -> bool:
        """Whether a container of this gateway belongs to no cluster or worker that is still meant to exist."""
        cluster = self.db.get_cluster(labels.get(LABEL_CLUSTER, ""))
        if cluster is None or cluster.status >= JobStatus.STOPPED:
            return True
        if labels.get(LABEL_ROLE) == "worker":
            worker = cluster.workers.get(labels.get(LABEL_WORKER, ""))
            return worker is None or worker.status >= JobStatus.STOPPED
        return False

    async def remove_orphans(self) -> list[str]:
        """Remove this gateway's containers that no active cluster or worker owns; returns their names."""
        containers = await self._docker(self._list_ours)
        orphans = [c for c in containers if self.is_orphan(c.get("Labels") or {})]
        if orphans:
            names = [c["Names"][0].lstrip("/") if c.get("Names") else c["Id"] for c in orphans]
            self.log.warning("Removing %d orphaned container(s): %s", len(orphans), ", ".join(names))
            await self._remove_all([c["Id"] for c in orphans])
            return names
        return []

    async def _orphan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.orphan_check_period)
            try:
                await self.remove_orphans()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("Exception while looking for orphaned containers", exc_info=exc)


# Configuration ---------------------------------------------------------------------------------------------------


def default_cluster_image(catalogue) -> str:
    """The image of clusters that ask for none: the catalogue's first profile's (the base image)."""
    return next(iter(catalogue.profiles.values())).image


def configure_docker_backend(c, settings, catalogue) -> None:
    """Switch dask-gateway-server's config ``c`` (already set up for the local backend) to containers.

    Everything ``config.py`` set on ``PlatformLocalBackend`` that the Docker backend also has (database, shutdown
    policy, cluster options and whatever else is added there later) is carried over, so the two modes never drift.
    """
    local = c.PlatformLocalBackend
    shared = PlatformDockerBackend.class_traits(config=True)
    for key, value in local.items():
        if key in shared:
            c.PlatformDockerBackend[key] = value
    c.DaskGateway.backend_class = "polartep_hub.gateway.backends.docker.PlatformDockerBackend"
    # Not carried over: the local cluster config class has no image.
    c.PlatformDockerBackend.cluster_config_class = "polartep_hub.gateway.backends.docker.DockerClusterConfig"
    c.PlatformDockerBackend.allowed_images = sorted({p.image for p in catalogue.profiles.values()})
    c.PlatformDockerBackend.home_volume_template = HOME_VOLUME_TEMPLATE
    c.PlatformDockerBackend.network_prefix = settings.docker_network_prefix
    c.PlatformDockerBackend.subnet_pool = settings.docker_subnet_pool
    c.PlatformDockerBackend.swarm_networks = settings.mode == "swarm"
    c.DockerClusterConfig.image = default_cluster_image(catalogue)
    # The cluster runs the image's dask, not the gateway's (the host's venv path means nothing in a container).
    c.DockerClusterConfig.scheduler_cmd = [IMAGE_DASK, "scheduler"]
    c.DockerClusterConfig.worker_cmd = [IMAGE_DASK, "worker"]
