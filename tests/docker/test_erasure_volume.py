"""Erasing an account in Docker mode (and Swarm mode) removes the user's containers or services and their home volume
with its files."""

from __future__ import annotations

from .engine import container_name, docker, home_volume, inspect, unique_user_name
from .test_home_volumes import put_file
from .test_swarm import swarm_platform  # noqa: F401 (fixture)


def erase_me(platform, user: str, token: str):
    return platform.api(
        "DELETE",
        "/services/platform/api/v1/me",
        token,
        json={"confirm": user, "processors": "withdraw"},
        timeout=180,
    )


def test_erasure_removes_the_container_and_the_home_volume(docker_platform, docker_user):
    user, token = docker_user("erase")
    other, other_token = docker_user("keep")
    docker_platform.spawn(user, token, {"profile": "interactive"})
    docker_platform.spawn(other, other_token, {"profile": "interactive"})
    put_file(docker_platform, user, token, "private.txt", "to be erased")
    assert inspect("volume", home_volume(user)) is not None

    response = erase_me(docker_platform, user, token)

    assert response.status_code == 200, f"{response.text}\n{docker_platform.log_tail()}"
    assert inspect("container", container_name(user)) is None
    assert inspect("volume", home_volume(user)) is None
    assert (
        docker_platform.api("GET", f"/hub/api/users/{user}", docker_platform.admin_token).status_code == 404
    )
    assert docker_platform.api("GET", "/services/platform/api/v1/me", token).status_code == 401
    # Another user's server and home are untouched.
    assert inspect("container", container_name(other))["State"]["Running"]
    assert inspect("volume", home_volume(other)) is not None
    docker_platform.stop_server(other)


def test_erasure_in_swarm_mode_removes_the_service_and_the_home_volume(swarm_platform):  # noqa: F811
    user = unique_user_name("swerase")
    token = swarm_platform.create_user(user, plan="large")
    swarm_platform.spawn(user, token, {"profile": "interactive"})
    put_file(swarm_platform, user, token, "private.txt", "to be erased")

    response = erase_me(swarm_platform, user, token)

    assert response.status_code == 200, f"{response.text}\n{swarm_platform.log_tail()}"
    assert docker("service", "inspect", f"polartep-{user}", check=False).returncode != 0
    assert inspect("volume", home_volume(user)) is None
