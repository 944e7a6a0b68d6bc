"""Docker mode: a server's start ends as soon as its container answers, or fails at once with why it ended.

``DockerProfileSpawner.start()`` polls the server's address on the user's network until it answers, checking every
``ended_check_interval`` seconds that the container still runs. A container that ends during its start (here: a
profile too small for JupyterLab's imports, killed by the kernel for memory) fails the spawn within seconds, with
its exit code and the reason, and is removed; before, the hub waited its whole ``http_timeout`` (60 s) and then said
only that the server did not respond.
"""

from __future__ import annotations

import time

from tests.docker.engine import container_name, docker, inspect
from tests.harness import wait_for


def test_a_container_that_ends_during_its_start_fails_the_spawn_at_once_saying_why(
    docker_platform, docker_user
):
    user, token = docker_user("ended")
    started = time.monotonic()
    r = docker_platform.api(
        "POST", f"/hub/api/users/{user}/server", token, json={"profile": "starved"}, timeout=120
    )
    if r.status_code == 202:  # the hub's slow-spawn answer: the outcome comes on the progress stream
        r = docker_platform.api("GET", f"/hub/api/users/{user}/server/progress", token, timeout=120)
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    took = time.monotonic() - started
    assert (
        "Your server ended during its start (it was killed for using more memory than its profile allows "
        "(exit code 137))" in r.text
    ), (r.text[-800:], docker_platform.log_tail())
    # Well before the hub's own http_timeout (60 s) would have run out (loaded machine: a generous bound).
    assert took < 45, took
    # Nothing is left running or lying around, and the user may start again.
    assert inspect("container", container_name(user)) is None
    wait_for(lambda: docker_platform.server_model(user) is None, 30, what="the failed server to be gone")


def test_a_server_that_ends_after_its_start_is_reported_stopped_and_its_container_removed(
    docker_platform, docker_user
):
    user, token = docker_user("crashed")
    model = docker_platform.spawn(user, token, {"profile": "interactive"})
    assert model["ready"]
    # The engine does not remove it by itself any more (its output is read when a start fails) ...
    assert inspect("container", container_name(user))["HostConfig"]["AutoRemove"] is False
    docker("kill", container_name(user))
    # ... so the hub's poll (every 10 s) finds it ended, reports the server stopped, and the spawner removes it.
    wait_for(
        lambda: docker_platform.server_model(user) is None, 60, what="the hub to report the server stopped"
    )
    wait_for(
        lambda: inspect("container", container_name(user)) is None, 30, what="the ended container removed"
    )
    # A new start works (no leftover container in the way).
    assert docker_platform.spawn(user, token, {"profile": "interactive"})["ready"]
    docker_platform.stop_server(user)
    assert inspect("container", container_name(user)) is None
