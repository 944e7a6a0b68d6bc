"""Erasing an account in Docker mode (and Swarm mode) removes the user's containers or services and their home volume
with its files."""

from __future__ import annotations

from tests.docker.engine import container_name, docker, home_volume, inspect, unique_user_name
from tests.helpers.erasure import erase_me
from tests.helpers.servers import put_file


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


def test_erasure_stops_the_cluster_waits_for_the_volume_and_keeps_the_name_until_everything_is_gone(
    docker_platform, docker_user
):
    """Docker mode: the user's Dask cluster containers (which mount the home volume) go first; while something else
    still holds the volume the erasure is pending (202) and the name stays taken; once the volume could go the
    erasure finishes, and a namesake gets an empty home and no cluster."""
    from polartep_hub.gateway.backends.docker import LABEL_USER
    from tests.helpers.docker_platform import containers, exec_in_server
    from tests.helpers.erasure import START_CLUSTER_AND_LEAVE_IT, ledger_rows
    from tests.helpers.signup import sign_up, token_by_password

    user, token = docker_user("erdask")
    docker_platform.spawn(user, token, {"profile": "interactive"})
    put_file(docker_platform, user, token, "private.txt", "to be erased")
    old_cluster = exec_in_server(user, START_CLUSTER_AND_LEAVE_IT)["name"]
    assert len(containers(**{LABEL_USER: user})) == 2  # scheduler and worker, both mounting the home volume
    # Something the platform does not run holds the volume (as a cluster did before this fix).
    holder = f"polartep-{user}-holder"
    docker(
        "run",
        "-d",
        "--rm",
        "--name",
        holder,
        "-v",
        f"{home_volume(user)}:/x",
        "polartep/base",
        "sleep",
        "600",
    )
    try:
        response = erase_me(docker_platform, user, token)

        assert response.status_code == 202, f"{response.text}\n{docker_platform.log_tail()}"
        assert response.json()["status"] == "pending" and response.json()["remaining"] == ["home volume"]
        # Clusters and the server went first; the volume is still there, so the name is still taken.
        assert containers(**{LABEL_USER: user}) == []
        assert inspect("container", container_name(user)) is None
        assert inspect("volume", home_volume(user)) is not None
        refused = sign_up(docker_platform, user)
        assert refused.status_code == 409 and "is being erased" in refused.text, refused.text
        # The hub user is gone already (so are its tokens): nothing can start a server for the name meanwhile.
        again = docker_platform.api(
            "POST", f"/hub/api/users/{user}/server", docker_platform.admin_token, json={}
        )
        assert again.status_code == 404, again.text
    finally:
        docker("rm", "-f", holder, check=False)

    finished = docker_platform.api(
        "DELETE", f"/services/platform/api/v1/accounts/{user}", docker_platform.admin_token, timeout=180
    )
    assert finished.status_code == 200, finished.text
    assert inspect("volume", home_volume(user)) is None
    # The cluster's scheduler and worker are in the ledger, closed, under the pseudonym only.
    rows = ledger_rows(docker_platform.settings.state_path, old_cluster)
    assert sorted(kind for _, kind, _ in rows) == ["dask-scheduler", "dask-worker"]
    assert all(name.startswith("erased-") and stopped is not None for name, _, stopped in rows), rows

    # Now the name is free: a namesake signs up, is approved, and finds an empty home and no cluster.
    assert sign_up(docker_platform, user).status_code == 201
    approved = docker_platform.api(
        "POST", f"/services/platform/api/v1/accounts/{user}/approve", docker_platform.admin_token
    )
    assert approved.status_code == 200, approved.text
    new_token = token_by_password(docker_platform, user)
    docker_platform.accept_current_terms(new_token)
    docker_platform.spawn(user, new_token, {"profile": "interactive"})
    seen = exec_in_server(
        user,
        f"""
        import json, os
        from dask_gateway import Gateway
        gateway = Gateway()
        try:
            gateway.connect({old_cluster!r})
            connect = "connected"
        except Exception as error:
            connect = type(error).__name__
        print(json.dumps({{"listed": [c.name for c in gateway.list_clusters()], "connect": connect,
                          "home": sorted(e for e in os.listdir("/home/jovyan") if not e.startswith("."))}}))
        """,
    )
    # The old cluster's record belongs to the pseudonym now: the namesake is refused (403) and lists nothing; the
    # home is a fresh volume, holding only what the image seeds into every new home (the example notebooks).
    assert seen == {"listed": [], "connect": "ClientResponseError", "home": ["notebooks"]}
    docker_platform.stop_server(user)
