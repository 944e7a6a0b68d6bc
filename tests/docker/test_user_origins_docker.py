"""Docker mode's default: each user's container is served on the user's own origin (``subdomain_host`` on).

The platform is started as ``polartep up`` starts Docker mode by default (hub on ``localhost``, users on
``<name>.localhost``); Python reaches those names through ``tests/helpers/localhost_names.py``.
"""

from __future__ import annotations

import pytest

from tests.docker.engine import (
    container_name,
    docker,
    inspect,
    network_prefix,
    remove_run_objects,
    unique_user_name,
)
from tests.harness import RunningPlatform
from tests.helpers import localhost_names

pytestmark = pytest.mark.timeout(420)  # its own Docker-mode platform, one container


@pytest.fixture(scope="module")
def docker_origins_platform(docker_engine, test_catalogue, tmp_path_factory):
    root = tmp_path_factory.mktemp("docker-origins")
    # No POLARTEP_SUBDOMAIN_HOST: Docker mode's own default must turn it on.
    platform = RunningPlatform(
        root,
        mode="docker",
        public_host="localhost",
        extra_env={
            "POLARTEP_CATALOGUE": str(test_catalogue),
            "POLARTEP_DOCKER_NETWORK_PREFIX": network_prefix(root.name),  # removed by remove_run_objects
        },
    )
    assert "POLARTEP_SUBDOMAIN_HOST" not in platform.env or platform.env["POLARTEP_SUBDOMAIN_HOST"] == ""
    try:
        with platform.running(timeout=240) as running:
            yield running
    finally:
        remove_run_objects()  # the user's home volume


def test_a_container_answers_on_its_users_own_host_in_docker_mode(docker_origins_platform):
    platform = docker_origins_platform
    user = unique_user_name("origin")
    token = platform.create_user(user, plan="large")
    port = platform.settings.public_port
    model = platform.spawn(user, token, {"profile": "interactive"}, timeout=180)
    assert model["url"] == f"http://{user}.localhost:{port}/user/{user}/"
    assert inspect("container", container_name(user))["State"]["Running"]

    r = localhost_names.request(
        "GET", f"http://{user}.localhost:{port}/user/{user}/api", headers={"Authorization": f"token {token}"}
    )
    assert r.status_code == 200, r.text
    r = localhost_names.request("GET", f"http://localhost:{port}/user/{user}/api")
    assert r.status_code == 302
    assert r.headers["location"] == f"http://localhost:{port}/hub/user/{user}/api"
    platform.stop_server(user)


def test_the_extension_in_a_container_reaches_the_service_with_per_user_origins(docker_origins_platform):
    """The proxy routes by host here: the extension's calls (to the proxy's public port on the platform network's
    address, whose host no user route names) reach the platform service through the route made for that host."""
    platform = docker_origins_platform
    user = unique_user_name("orext")
    token = platform.create_user(user, plan="large")
    port, host = platform.settings.public_port, platform.settings.container_host
    platform.spawn(user, token, {"profile": "interactive"}, timeout=180)
    try:
        service_url = docker("exec", container_name(user), "printenv", "POLARTEP_SERVICE_URL").stdout.strip()
        r = localhost_names.request(
            "GET",
            f"http://{user}.localhost:{port}/user/{user}/polartep/api/me",
            headers={"Authorization": f"token {token}"},
        )
    finally:
        platform.stop_server(user)
    assert service_url == f"http://{host}:{port}/services/platform/"
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["plan"], r.json()["profile"]) == (user, "large", "interactive")
