"""A server that outgrows its profile's memory is killed by the engine and reported stopped, not left hanging."""

from __future__ import annotations

import time

from tests.docker.engine import container_name, docker, inspect
from tests.harness import wait_for

# Loaded by the user's own Jupyter server at start (it reads ~/.jupyter): a thread in the server's main process
# waits for a trigger file, then allocates 1 GiB, twice the tiny profile's 512 MB. It waits 2 s after the file
# appears so that the server answers the request that wrote it first (killed mid-answer, the proxy answers 503).
GREEDY_SERVER_CONFIG = """
import os, threading, time

def _grow_when_asked():
    while not os.path.exists(os.path.expanduser("~/grow-now")):
        time.sleep(0.2)
    time.sleep(2)
    hog = b"x" * (1 << 30)
    time.sleep(60)

threading.Thread(target=_grow_when_asked, daemon=True).start()
"""


def test_a_server_exceeding_its_memory_is_killed_and_reported_stopped(docker_platform, docker_user):
    user, token = docker_user("greedy")
    docker_platform.spawn(user, token, {"profile": "tiny"})
    assert inspect("container", container_name(user))["HostConfig"]["Memory"] == 512 * 1024**2
    # The user puts a server config in their home (hidden files are out of the contents API's reach: docker exec).
    docker(
        "exec", container_name(user), "sh", "-c",
        f"mkdir -p ~/.jupyter && cat > ~/.jupyter/jupyter_server_config.py <<'EOF'\n{GREEDY_SERVER_CONFIG}\nEOF",
    )  # fmt: skip
    docker_platform.stop_server(user)
    docker_platform.spawn(user, token, {"profile": "tiny"})

    triggered = int(time.time()) - 1
    r = docker_platform.api(
        "PUT",
        f"/user/{user}/api/contents/grow-now",
        token,
        json={"type": "file", "format": "text", "content": ""},
    )
    assert r.status_code in (200, 201), r.text

    # The hub notices the dead server (poll_interval 10 s) and reports it stopped; the container is gone.
    wait_for(
        lambda: docker_platform.server_model(user) is None, 60, interval=0.5, what="the hub to see it stopped"
    )
    assert inspect("container", container_name(user)) is None
    oom = docker(
        "events", "--since", str(triggered), "--until", str(int(time.time()) + 1),
        "--filter", "event=oom", "--filter", f"container={container_name(user)}", "--format", "{{.Action}}",
    )  # fmt: skip
    assert "oom" in oom.stdout, "the engine's OOM killer stopped it"

    # Nothing is stuck: the user can start again at once.
    r = docker_platform.api("DELETE", f"/user/{user}/api/contents/grow-now", token)
    docker_platform.spawn(user, token, {"profile": "interactive"})
    docker_platform.stop_server(user)
