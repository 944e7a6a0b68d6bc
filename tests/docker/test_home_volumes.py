"""Each user's home is a named volume: it outlives servers and hub restarts, and no other user can reach it."""

from __future__ import annotations

from tests.docker.engine import container_name, docker, home_volume, inspect
from tests.helpers.servers import put_file


def read_file(platform, user: str, token: str, path: str):
    return platform.api("GET", f"/user/{user}/api/contents/{path}", token)


def test_home_survives_stop_start_and_hub_restart(docker_platform, docker_user):
    user, token = docker_user("home")
    docker_platform.spawn(user, token, {"profile": "interactive"})
    put_file(docker_platform, user, token, "results.txt", "sea ice extent: 4.2 million km2")

    docker_platform.stop_server(user)
    assert inspect("volume", home_volume(user)) is not None
    docker_platform.spawn(user, token, {"profile": "small"})
    assert read_file(docker_platform, user, token, "results.txt").json()["content"].startswith("sea ice")

    # A hub restart leaves the container running with the same port, and the home is still there after it.
    port_before = docker_platform.server_model(user)["url"]
    docker_platform.stop_hub()
    assert inspect("container", container_name(user))["State"]["Running"]
    docker_platform.start_hub()
    assert docker_platform.server_model(user)["url"] == port_before
    assert read_file(docker_platform, user, token, "results.txt").status_code == 200
    docker_platform.stop_server(user)
    docker_platform.spawn(user, token, {"profile": "interactive"})
    assert read_file(docker_platform, user, token, "results.txt").json()["content"].startswith("sea ice")
    docker_platform.stop_server(user)


def test_a_new_home_is_seeded_with_the_example_notebooks(docker_platform, docker_user):
    user, token = docker_user("seed")
    docker_platform.spawn(user, token, {"profile": "interactive"})
    listing = read_file(docker_platform, user, token, "notebooks").json()
    assert "xarray-dask-quickstart.ipynb" in {item["name"] for item in listing["content"]}
    docker_platform.stop_server(user)


def test_a_user_cannot_see_another_users_home(docker_platform, docker_user):
    alice, alice_token = docker_user("alice")
    bob, bob_token = docker_user("bob")
    docker_platform.spawn(alice, alice_token, {"profile": "interactive"})
    docker_platform.spawn(bob, bob_token, {"profile": "interactive"})
    put_file(docker_platform, alice, alice_token, "private.txt", "alice only")

    # Through the platform: Bob's token does not open Alice's server.
    assert read_file(docker_platform, alice, bob_token, "private.txt").status_code in (403, 404)
    # Inside Bob's container: only his own volume is mounted, and Alice's file is nowhere to be found.
    bob_container = inspect("container", container_name(bob))
    assert [m["Name"] for m in bob_container["Mounts"]] == [home_volume(bob)]
    found = docker("exec", container_name(bob), "grep", "-rls", "alice only", "/home", "/tmp", check=False)
    assert found.stdout.strip() == ""
    assert read_file(docker_platform, bob, bob_token, "private.txt").status_code == 404

    docker_platform.stop_server(alice)
    docker_platform.stop_server(bob)
