"""Dask Gateway in Docker mode: schedulers and workers are containers of the catalogue image, with the cluster's limits.

Against the real Docker engine and a real platform in ``mode=docker``: a user's ``Gateway().new_cluster()`` runs from
inside their spawned server container (``docker exec`` with the container's own environment and token); worker
limits are read back with ``docker inspect``; stopping removes the containers; a gateway killed with SIGKILL and
restarted by the hub finds its running containers again and removes orphaned ones; a worker container that dies is
removed and replaced; an idle cluster's containers go with it. The engine tests never skip in CI (the ``docker``
fixtures of ``tests/docker``).
"""

from __future__ import annotations

import os
import signal

import pytest
from traitlets.config import Config

from polartep_hub.gateway.backends.docker import (
    IMAGE_DASK,
    LABEL_CLUSTER,
    LABEL_GATEWAY,
    LABEL_ROLE,
    LABEL_USER,
    DockerClusterConfig,
    PlatformDockerBackend,
    container_spec,
    instance_id_for,
)
from polartep_hub.gateway.config import configure_gateway, gateway_service_definition
from polartep_hub.gateway.options import PlatformClusterConfig
from polartep_hub.settings import PlatformSettings
from tests.docker.conftest import (  # noqa: F401  (fixtures)
    docker_engine,
    docker_platform,
    start_docker_platform,
    test_catalogue,
)
from tests.docker.engine import (
    docker,
    home_volume,
    inspect,
    network_prefix,
    remove_run_objects,
    unique_user_name,
)
from tests.harness import RunningPlatform, wait_for
from tests.helpers.docker_platform import (
    STOP_WITHIN,
    containers,
    exec_in_server,
    start_cluster,
    stop_cluster,
    wait_for_containers,
)
from tests.helpers.gateway import gateway_api, gateway_pid

GIB = 2**30


# Pure parts: the container a cluster gets, and the image check ------------------------------------------------------


def test_container_spec_has_hard_limits_no_swap_the_users_network_and_no_privileges():
    spec = container_spec(
        name="polartep-alice-dask-worker-w1",
        image="polartep/base",
        command=["/opt/venv/bin/dask", "worker"],
        environment={"A": "1"},
        labels={LABEL_CLUSTER: "c1"},
        cores=3,
        memory=6 * GIB,
        user="1000:1000",
        home_volume="polartep-home-alice",
        network="polartep-u-alice",
    )
    assert spec["mem_limit"] == spec["memswap_limit"] == 6 * GIB
    assert spec["cpu_quota"] / spec["cpu_period"] == 3
    assert (
        spec["network"] == "polartep-u-alice" and "network_mode" not in spec and spec["user"] == "1000:1000"
    )
    assert spec["pids_limit"] == 4096
    assert spec["cap_drop"] == ["ALL"] and spec["security_opt"] == ["no-new-privileges"]
    assert spec["volumes"] == {"polartep-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}
    with pytest.raises(ValueError, match="positive"):
        container_spec(**{**spec_args(), "memory": 0})


def test_dataset_binds_join_the_home_volume_read_only_where_granted():
    from polartep_hub.spawners.dataset_mounts import DatasetMount, docker_binds

    mounts = [
        DatasetMount(project="ice", name="sic", mode="rw", path="/data/hdd/" + "a" * 32, gid=None),
        DatasetMount(project="sar", name="chips", mode="ro", path="/data/ssd/" + "b" * 32, gid=None),
    ]
    spec = container_spec(
        **{**spec_args(), "home_volume": "polartep-home-n"},
        dataset_binds=docker_binds(mounts, "/home/jovyan"),
    )
    assert spec["volumes"] == {
        "polartep-home-n": {"bind": "/home/jovyan", "mode": "rw"},
        "/data/hdd/" + "a" * 32: {"bind": "/home/jovyan/datasets/ice/sic", "mode": "rw"},
        "/data/ssd/" + "b" * 32: {"bind": "/home/jovyan/datasets/sar/chips", "mode": "ro"},
    }
    with pytest.raises(ValueError, match="bad dataset mount"):
        container_spec(
            **spec_args(), dataset_binds={"/x": {"bind": "/home/jovyan/datasets/p/d", "mode": "z"}}
        )
    assert "volumes" not in container_spec(**spec_args())


async def test_the_backend_asks_the_service_for_dataset_mounts_never_the_cluster_options():
    class Service:
        asked: list[str] = []

        async def mounts(self, username):
            self.asked.append(username)
            return [
                {"project": "ice", "name": "sic", "mode": "ro", "path": "/data/x", "gid": 5},
                {"project": "bad"},  # malformed: ignored, never mounted
            ]

    service = Service()
    backend = PlatformDockerBackend(dataset_mounts=service)
    assert await backend.dataset_binds("alice") == {
        "/data/x": {"bind": "/home/jovyan/datasets/ice/sic", "mode": "ro"}
    }
    assert service.asked == ["alice"]
    assert await PlatformDockerBackend().dataset_binds("alice") == {}


def spec_args() -> dict:
    return dict(
        name="n",
        image="polartep/base",
        command=[],
        environment={},
        labels={},
        cores=1,
        memory=GIB,
        user="1000:1000",
        home_volume=None,
        network="polartep-u-n",
    )


def test_only_catalogue_images_are_accepted_for_a_cluster():
    backend = PlatformDockerBackend(allowed_images=["polartep/base", "polartep/ml"])
    assert DockerClusterConfig(parent=backend, image="polartep/ml").image == "polartep/ml"
    assert DockerClusterConfig(parent=backend, worker_image="polartep/ml").worker_image == "polartep/ml"
    with pytest.raises(Exception, match="not a catalogue image"):
        DockerClusterConfig(parent=backend, image="busybox")
    with pytest.raises(Exception, match="not a catalogue image"):
        DockerClusterConfig(parent=backend, worker_image="busybox")


def docker_backend_network_prefix(c: Config) -> str:
    return c.PlatformDockerBackend.network_prefix


def test_docker_mode_uses_the_container_backend_with_the_same_database_options_and_policy(
    tmp_path, monkeypatch
):
    # The platform network's gateway address (found or created through the engine; fixed here, no engine needed).
    monkeypatch.setattr(PlatformSettings, "container_host", property(lambda self: "10.99.0.1"))
    c = Config()
    settings = configure_gateway(c, PlatformSettings(mode="docker", state_dir=str(tmp_path)))
    assert c.DaskGateway.backend_class == "polartep_hub.gateway.backends.docker.PlatformDockerBackend"
    # The proxies on the platform network's address (servers and schedulers reach them), the private API on loopback.
    assert c.Proxy.address.startswith("10.99.0.1:") and c.Proxy.tcp_address.startswith("10.99.0.1:")
    assert c.DaskGateway.address.startswith("127.0.0.1:")
    assert docker_backend_network_prefix(c) == settings.docker_network_prefix
    docker_backend, local_backend = c.PlatformDockerBackend, c.PlatformLocalBackend
    # Plan bounds and the worker profile travel with each cluster, as in local mode; the image is Docker's own.
    assert docker_backend.cluster_config_class == "polartep_hub.gateway.backends.docker.DockerClusterConfig"
    assert issubclass(DockerClusterConfig, PlatformClusterConfig)
    assert docker_backend.db_url == local_backend.db_url
    assert docker_backend.stop_clusters_on_shutdown is False
    assert docker_backend.cluster_options is local_backend.cluster_options
    assert docker_backend.allowed_images == ["polartep/base", "polartep/ml"]
    assert "clusters_directory" not in docker_backend  # local-only settings stay local
    assert c.DockerClusterConfig.image == "polartep/base"
    assert c.DockerClusterConfig.scheduler_cmd == [IMAGE_DASK, "scheduler"]
    # The gateway process learns the mode from the hub, and reaches the hub's engine.
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    environment = gateway_service_definition(settings)["environment"]
    assert environment["POLARTEP_MODE"] == "docker"
    assert environment["DOCKER_HOST"] == "unix:///run/user/1000/docker.sock"

    local = Config()
    configure_gateway(local, PlatformSettings(mode="local", state_dir=str(tmp_path / "local")))
    assert local.DaskGateway.backend_class == "polartep_hub.gateway.backends.local.PlatformLocalBackend"


@pytest.mark.docker
@pytest.mark.usefixtures("docker_engine")
@pytest.mark.parametrize("image", ["polartep/base", "polartep/ml"])
def test_catalogue_images_have_the_dask_cli_and_the_hub_versions_of_dask_and_dask_gateway(image):
    import dask
    import dask_gateway
    import distributed

    code = (
        "import subprocess, dask, distributed, dask_gateway, dask_gateway.scheduler_preload;"
        f"subprocess.run([{IMAGE_DASK!r}, 'worker', '--help'], check=True, capture_output=True);"
        "print(dask.__version__, distributed.__version__, dask_gateway.__version__)"
    )
    done = docker("run", "--rm", "--network", "none", image, "python", "-c", code, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [dask.__version__, distributed.__version__, dask_gateway.__version__]


# A platform in Docker mode ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_docker_platform(docker_engine, test_catalogue, tmp_path_factory):  # noqa: F811
    running = start_docker_platform(tmp_path_factory.mktemp("gateway-docker"), test_catalogue)
    yield running
    running.stop()
    remove_run_objects()


def instance_id(platform) -> str:
    return instance_id_for(f"sqlite:///{platform.settings.state_path / 'dask-gateway.sqlite'}")


NEW_CLUSTER_TWO_WORKERS = """
import json, time
from dask_gateway import Gateway
gateway = Gateway()
started = time.perf_counter()
cluster = gateway.new_cluster(shutdown_on_close=False)
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout=120)
ready = time.perf_counter() - started
import dask.array as da
total = client.submit(sum, range(101)).result()
ones = float(da.ones((2000, 2000), chunks=500).sum().compute())
workers = len(client.scheduler_info()["workers"])
client.close()
print(json.dumps({"name": cluster.name, "ready_s": ready, "total": total, "ones": ones, "workers": workers}))
"""


@pytest.mark.docker
@pytest.mark.hub
def test_the_docker_mode_gateway_database_runs_in_write_ahead_log_mode(docker_platform):  # noqa: F811
    import sqlite3

    path = docker_platform.settings.state_path / "dask-gateway.sqlite"
    wait_for(path.exists, 30, what="the gateway's database")
    # WAL is a property of the database file: any connection reads the mode the gateway set (only the gateway's
    # backend switches it; the meter reads without changing it).
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.docker
@pytest.mark.hub
def test_clusters_run_as_containers_of_the_catalogue_image_with_the_cluster_limits(
    gateway_docker_platform, capsys
):
    platform = gateway_docker_platform
    user = unique_user_name("gwd1")
    token = platform.create_user(user, plan="trial")
    platform.spawn(user, token, {"profile": "interactive"})

    result = exec_in_server(user, NEW_CLUSTER_TWO_WORKERS)
    name = result["name"]
    assert result["total"] == 5050 and result["ones"] == 4_000_000.0 and result["workers"] == 2
    with capsys.disabled():
        print(f"\n[docker mode] new_cluster() to 2 ready workers: {result['ready_s']:.2f} s")

    ours = containers(**{LABEL_CLUSTER: name})
    roles = sorted(c["Config"]["Labels"][LABEL_ROLE] for c in ours)
    assert roles == ["scheduler", "worker", "worker"]
    for container in ours:
        config, host = container["Config"], container["HostConfig"]
        assert config["Labels"][LABEL_USER] == user
        assert config["Labels"][LABEL_GATEWAY] == instance_id(platform)
        assert config["Image"] == "polartep/base"
        assert config["User"] == "1000:1000", "never root"
        assert host["NetworkMode"] == f"{platform.settings.docker_network_prefix}-u-{user}"
        assert list(container["NetworkSettings"]["Networks"]) == [host["NetworkMode"]], (
            "the user's network only"
        )
        assert host["MemorySwap"] == host["Memory"], "no swap beyond the memory limit"
        assert host["CapDrop"] == ["ALL"]
        assert [m["Name"] for m in container["Mounts"] if m["Type"] == "volume"] == [home_volume(user)]
        assert container["State"]["Running"]
        cores = host["CpuQuota"] / host["CpuPeriod"]
        if config["Labels"][LABEL_ROLE] == "worker":
            # The trial plan's defaults: 1 core, 2 GiB per worker (bounded options in gateway/config.py).
            assert (cores, host["Memory"]) == (1, 2 * GIB)
        else:
            assert (cores, host["Memory"]) == (1, 2 * GIB)  # dask-gateway's scheduler defaults

    r = stop_cluster(platform, token, name)
    assert r.status_code == 204, r.text
    platform.stop_server(user)


@pytest.mark.docker
@pytest.mark.hub
def test_worker_size_from_the_options_reaches_the_container(gateway_docker_platform):
    platform = gateway_docker_platform
    user = unique_user_name("gwd2")
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token, {"worker_cores": 2, "worker_memory": 3}, workers=1)
    try:
        (worker,) = wait_for_containers(name, "worker")
        host = worker["HostConfig"]
        assert host["CpuQuota"] / host["CpuPeriod"] == 2
        assert host["Memory"] == host["MemorySwap"] == 3 * GIB
    finally:
        stop_cluster(platform, token, name)


@pytest.mark.docker
@pytest.mark.hub
def test_workers_run_the_image_of_the_chosen_profile(gateway_docker_platform):
    platform = gateway_docker_platform
    user = unique_user_name("gwd5")
    token = platform.create_user(user, plan="large")  # the Large plan allows the ML profile
    name = start_cluster(platform, token, {"profile": "ml", "worker_cores": 1, "worker_memory": 2}, workers=1)
    try:
        (worker,) = wait_for_containers(name, "worker")
        (scheduler,) = containers(**{LABEL_CLUSTER: name, LABEL_ROLE: "scheduler"})
        assert worker["Config"]["Image"] == "polartep/ml"
        assert scheduler["Config"]["Image"] == "polartep/base"
    finally:
        stop_cluster(platform, token, name)


@pytest.mark.docker
@pytest.mark.hub
def test_user_a_cannot_list_or_stop_user_b_cluster(gateway_docker_platform):
    platform = gateway_docker_platform
    alice, bob = unique_user_name("gwda"), unique_user_name("gwdb")
    alice_token = platform.create_user(alice, plan="trial")
    bob_token = platform.create_user(bob, plan="trial")
    r = gateway_api(platform, "POST", "clusters/", alice_token, json={"cluster_options": {}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    try:
        assert name not in gateway_api(platform, "GET", "clusters/", bob_token).json()
        assert gateway_api(platform, "GET", f"clusters/{name}", bob_token).status_code == 403
        assert gateway_api(platform, "DELETE", f"clusters/{name}", bob_token).status_code == 403
        wait_for(
            lambda: containers(**{LABEL_CLUSTER: name, LABEL_ROLE: "scheduler"}),
            60,
            interval=0.5,
            what="the scheduler container",
        )
        (scheduler,) = containers(**{LABEL_CLUSTER: name})
        assert scheduler["Config"]["Labels"][LABEL_USER] == alice
        # Bob's home is never mounted into Alice's cluster.
        assert [m["Name"] for m in scheduler["Mounts"] if m["Type"] == "volume"] == [home_volume(alice)]
        assert gateway_api(platform, "GET", f"clusters/{name}", alice_token).json()["status"] in (
            "PENDING",
            "RUNNING",
        )
    finally:
        stop_cluster(platform, alice_token, name)


@pytest.mark.docker
@pytest.mark.hub
def test_a_gateway_killed_and_restarted_keeps_running_containers_and_removes_orphans(gateway_docker_platform):
    platform = gateway_docker_platform
    user = unique_user_name("gwdk")
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token, workers=2)

    def two_running_workers() -> bool:
        workers = containers(**{LABEL_CLUSTER: name, LABEL_ROLE: "worker"})
        return len(workers) == 2 and all(w["State"]["Running"] for w in workers)

    wait_for(two_running_workers, 90, interval=0.5, what="two worker containers")
    before = {c["Id"] for c in containers(**{LABEL_CLUSTER: name})}
    assert len(before) == 3

    # An orphan of this gateway (its cluster is unknown), and a container of another gateway on the same engine.
    orphan, foreign = unique_user_name("orphan"), unique_user_name("foreign")
    for container, gateway in ((orphan, instance_id(platform)), (foreign, "another-gateway")):
        docker(
            "run", "-d", "--name", f"polartep-{container}", "--network", "none", "--user", "1000:1000",
            "--label", f"{LABEL_GATEWAY}={gateway}", "--label", f"{LABEL_CLUSTER}=no-such-cluster",
            "--label", f"{LABEL_ROLE}=worker", "polartep/base", "sleep", "300",
        )  # fmt: skip

    try:
        old = gateway_pid(platform)
        assert old
        os.kill(old, signal.SIGKILL)
        wait_for(
            lambda: (gateway_pid(platform) or old) != old,
            60,
            interval=0.5,
            what="the hub to restart the gateway",
        )

        def running_again() -> bool:
            r = gateway_api(platform, "GET", f"clusters/{name}", token)
            return r.status_code == 200 and r.json()["status"] == "RUNNING"

        wait_for(running_again, 60, interval=0.5, what="the restarted gateway to report the cluster")
        wait_for(
            lambda: inspect("container", f"polartep-{orphan}") is None,
            30,
            interval=0.5,
            what="the orphan to be removed",
        )
        # The same containers, none started twice, none lost; another gateway's container is not ours to remove.
        assert {c["Id"] for c in containers(**{LABEL_CLUSTER: name}) if c["State"]["Running"]} == before
        assert inspect("container", f"polartep-{foreign}") is not None

        # The restarted gateway still controls the cluster: scaling down removes a worker container.
        r = gateway_api(platform, "POST", f"clusters/{name}/scale", token, json={"count": 1})
        assert r.status_code == 200 and r.json()["ok"], r.text
        wait_for(
            lambda: len(containers(**{LABEL_CLUSTER: name, LABEL_ROLE: "worker"})) == 1,
            60,
            interval=0.5,
            what="scale-down to remove one worker container",
        )
    finally:
        docker("rm", "-f", f"polartep-{foreign}", f"polartep-{orphan}", check=False)
        r = stop_cluster(platform, token, name)
    assert r.status_code == 204, r.text


def running_workers(name: str) -> list[dict]:
    return [w for w in containers(**{LABEL_CLUSTER: name, LABEL_ROLE: "worker"}) if w["State"]["Running"]]


@pytest.mark.docker
@pytest.mark.hub
def test_a_worker_container_that_dies_is_removed_and_replaced(gateway_docker_platform):
    platform = gateway_docker_platform
    user = unique_user_name("gwdr")
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token, workers=2)
    try:
        wait_for(lambda: len(running_workers(name)) == 2, 90, interval=0.5, what="two worker containers")
        victim = running_workers(name)[0]["Id"]
        docker("kill", victim)  # as the kernel's OOM killer or a crash would

        def replaced() -> bool:
            workers = running_workers(name)
            return len(workers) == 2 and victim not in {w["Id"] for w in workers}

        wait_for(replaced, 90, interval=0.5, what="a replacement worker container")
        wait_for(
            lambda: inspect("container", victim) is None,
            STOP_WITHIN,
            interval=0.5,
            what="the dead one removed",
        )
    finally:
        stop_cluster(platform, token, name)


DASK_IDLE_TIMEOUT = 8


@pytest.fixture(scope="module")
def short_idle_docker_platform(docker_engine, test_catalogue, tmp_path_factory):  # noqa: F811
    running = RunningPlatform(
        tmp_path_factory.mktemp("gateway-docker-idle"),
        mode="docker",
        extra_env={
            "POLARTEP_DOCKER_NETWORK_PREFIX": network_prefix("idle"),
            "POLARTEP_CATALOGUE": str(test_catalogue),
            "POLARTEP_IDLE_TIMEOUT": "0",
            "POLARTEP_DASK_IDLE_TIMEOUT": str(DASK_IDLE_TIMEOUT),
        },
    )
    with running.running():
        yield running
    remove_run_objects()


@pytest.mark.docker
@pytest.mark.hub
def test_an_idle_cluster_stops_and_its_containers_are_removed(short_idle_docker_platform):
    platform = short_idle_docker_platform
    user = unique_user_name("gwdi")
    token = platform.create_user(user, plan="trial")
    name = start_cluster(platform, token, workers=1)
    wait_for(lambda: running_workers(name), 90, interval=0.5, what="a worker container")

    def stopped() -> bool:
        r = gateway_api(platform, "GET", f"clusters/{name}", token)
        return r.status_code == 404 or r.json()["status"] in ("STOPPED", "FAILED")

    wait_for(stopped, DASK_IDLE_TIMEOUT + 40, interval=1, what="the idle cluster to stop")
    wait_for(
        lambda: not containers(**{LABEL_CLUSTER: name}),
        STOP_WITHIN,
        interval=0.5,
        what="every container to go",
    )
