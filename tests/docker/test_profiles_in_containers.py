"""Docker mode spawns each profile's catalogue image with the catalogue's CPU and memory, and nothing else."""

from __future__ import annotations

import pytest

from polartep_hub.catalogue import load_catalogue
from tests.docker.engine import container_name, docker, home_volume, inspect

CATALOGUE = load_catalogue()
NON_GPU_PROFILES = [name for name, p in CATALOGUE.profiles.items() if not p.gpu]


@pytest.mark.parametrize("profile", NON_GPU_PROFILES)
def test_each_profile_runs_its_image_with_its_limits(docker_platform, docker_user, profile):
    user, token = docker_user(f"lim{profile[:5]}")
    expected = CATALOGUE.profile(profile)

    model = docker_platform.spawn(user, token, {"profile": profile}, server=profile)
    assert model["ready"]

    container = inspect("container", container_name(user, profile))
    assert container is not None, f"no container for {user}/{profile}"
    host = container["HostConfig"]
    assert container["Config"]["Image"] == expected.image
    assert host["Memory"] == expected.memory
    assert host["MemorySwap"] == expected.memory, "no swap beyond the memory limit"
    # CPU as a CFS quota: the NanoCpus equivalent (cpu * 1e9) that Docker also accepts above the host's core count.
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] == int(expected.cpu * 1e9)
    assert host["NetworkMode"] == f"{docker_platform.settings.docker_network_prefix}-u-{user}", (
        "the user's network"
    )
    assert not host.get("DeviceRequests"), "no GPU on this host, so none requested"
    assert container["Config"]["User"] in ("1000:1000", "1000"), "servers run as jovyan, never root"
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert env["POLARTEP_PROFILE"] == profile and env["MEM_LIMIT"] == str(expected.memory)
    assert [m["Name"] for m in container["Mounts"] if m["Type"] == "volume"] == [home_volume(user)]

    # The server answers through the proxy with the user's token, from inside the container.
    r = docker_platform.api("GET", f"/user/{user}/{profile}/api/status", token)
    assert r.status_code == 200, r.text
    docker_platform.stop_server(user, profile)
    assert inspect("container", container_name(user, profile)) is None, "stopped containers are removed"


def test_two_servers_at_once_get_their_own_addresses(docker_platform, docker_user):
    user, token = docker_user("ports")
    for server in ("one", "two"):
        r = docker_platform.api(
            "POST", f"/hub/api/users/{user}/servers/{server}", token, json={"profile": "interactive"}
        )
        assert r.status_code in (201, 202), r.text
    urls = {docker_platform.wait_ready(user, server)["url"] for server in ("one", "two")}
    assert len(urls) == 2
    for server in ("one", "two"):
        assert docker_platform.api("GET", f"/user/{user}/{server}/api/status", token).status_code == 200
        docker_platform.stop_server(user, server)


@pytest.mark.parametrize(
    "options",
    [{"profile": "small", "image": "busybox"}, {"image": "polartep/rootfs:bookworm"}],
    ids=["image-beside-profile", "image-alone"],
)
def test_an_api_request_cannot_pick_another_image(docker_platform, docker_user, options):
    user, token = docker_user(f"img{len(options)}")
    r = docker_platform.api("POST", f"/hub/api/users/{user}/server", token, json=options)
    assert r.status_code == 400
    assert "Unknown server option(s): image" in r.json()["message"]
    assert docker_platform.server_model(user) is None
    assert inspect("container", container_name(user)) is None


def test_no_registry_is_needed_images_are_never_pulled(docker_platform):
    # Every catalogue image is local; the hub is configured never to pull (no registry is reachable here).
    for image in {p.image for p in CATALOGUE.profiles.values()}:
        assert docker("image", "inspect", image, check=False).returncode == 0, image
