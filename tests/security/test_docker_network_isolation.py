"""Attacks from inside a real user's server container (Docker mode): what its network can and cannot reach.

Each test runs its attack with ``docker exec`` in user A's running server container (as the server runs: uid 1000,
its environment) against a real platform in Docker mode, with user B's server and Dask cluster running, and asserts
the exact failure of each attempt:

* the platform's private listeners (the platform service's port, the proxy's REST API, the gateway's private API)
  are on the host's 127.0.0.1, which is not the container's: connection refused, on the container's loopback and on
  the platform network's gateway address alike;
* another user's server, scheduler, dashboard and workers are on another bridge: the connection times out (Docker
  drops forwarded traffic between bridges), while B's own server reaches the same ports (so the timeout is the
  isolation, not a closed port);
* binding the hub's, the service's, the proxy's (API and public) and the gateway's port numbers inside the
  container works (its own namespace) but receives none of the platform's traffic, and the host address the hub
  and the proxy listen on cannot be bound;
* what a server needs works from inside it (the control): the platform service's API through the proxy's public
  port on the platform network's address (the JupyterLab extension's panel call, with the user's own token), the
  hub's API; another user's server only as on the public URL, where it refuses this user's token;
* the container is hardened as ``docker inspect`` and the kernel show it (uid 1000, no capabilities,
  no-new-privileges, read-only image, process limit, no Docker socket).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time

import pytest

from tests.docker.conftest import docker_engine, start_docker_platform, test_catalogue  # noqa: F401  (fixtures)
from tests.docker.engine import (
    container_name,
    docker,
    home_volume,
    inspect,
    remove_run_objects,
    unique_user_name,
)
from tests.harness import ADMIN_PASSWORD
from tests.helpers.docker_platform import start_cluster, stop_cluster, wait_for_containers
from tests.helpers.network_probes import (
    ALLOWED_PATHS,
    address_on,
    listening_ports,
    probe,
)

# The module's set-up starts a platform, two servers and a cluster: on the shared 2-core machine that alone can take
# longer than the suite's default 180 s per test.
pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def scene(docker_engine, test_catalogue, tmp_path_factory):  # noqa: F811
    """A Docker-mode platform with A's server, B's server and B's cluster (scheduler + one worker) running."""
    try:
        platform = start_docker_platform(tmp_path_factory.mktemp("isolation"), test_catalogue)
    except Exception:
        remove_run_objects()  # the platform network the failed start created
        raise
    try:
        a, b = unique_user_name("atk"), unique_user_name("vic")
        tokens = {a: platform.create_user(a, plan="large"), b: platform.create_user(b, plan="large")}
        for user in (a, b):
            platform.spawn(user, tokens[user], {"profile": "interactive"})
        cluster = start_cluster(platform, tokens[b], workers=1)
        scheduler = wait_for_containers(cluster, "scheduler")[0]
        worker = wait_for_containers(cluster, "worker")[0]
        yield {
            "platform": platform,
            "a": a,
            "b": b,
            "tokens": tokens,
            "cluster": cluster,
            "scheduler": scheduler,
            "worker": worker,
        }
        stop_cluster(platform, tokens[b], cluster)
    finally:
        platform.stop()
        remove_run_objects()


def test_the_platforms_private_listeners_are_out_of_a_containers_reach(scene):
    settings = scene["platform"].settings
    host = settings.container_host
    private = {
        "platform service": settings.service_port,
        "proxy REST API": settings.proxy_api_port,
        "gateway private API": settings.gateway_api_port,
    }
    targets = [(f"{name} on 127.0.0.1", "127.0.0.1", port) for name, port in private.items()]
    targets += [(f"{name} on {host}", host, port) for name, port in private.items()]
    # What a server needs, as a check that the probe itself works: the hub's API and the gateway's proxies.
    needed = {"hub API": settings.hub_port, "gateway proxy": settings.gateway_port}
    needed["gateway TLS proxy"] = settings.gateway_tcp_port
    targets += [(name, host, port) for name, port in needed.items()]

    outcome = probe(container_name(scene["a"]), targets)

    assert outcome == {
        **{f"{name} on 127.0.0.1": "refused" for name in private},
        **{f"{name} on {host}": "refused" for name in private},
        **{name: "connected" for name in needed},
    }


def test_another_users_server_scheduler_dashboard_and_workers_cannot_be_reached(scene):
    b_network = f"{scene['platform'].settings.docker_network_prefix}-u-{scene['b']}"
    b_server = inspect("container", container_name(scene["b"]))
    scheduler, worker = scene["scheduler"], scene["worker"]
    scheduler_ports = listening_ports(
        scheduler["Id"]
    )  # scheduler, dashboard, the gateway's scheduler API, ...
    worker_ports = listening_ports(worker["Id"])  # the worker's listener
    assert len(scheduler_ports) >= 3 and worker_ports, (scheduler_ports, worker_ports)
    targets = [("B's server", address_on(b_server, b_network), 8888)]
    targets += [(f"B's scheduler :{p}", address_on(scheduler, b_network), p) for p in scheduler_ports]
    targets += [(f"B's worker :{p}", address_on(worker, b_network), p) for p in worker_ports]

    from_a = probe(container_name(scene["a"]), targets)
    from_b = probe(container_name(scene["b"]), targets)

    assert from_a == {label: "timeout" for label, _, _ in targets}, "another bridge: dropped"
    assert from_b == {label: "connected" for label, _, _ in targets}, "B's own server reaches them all"


BIND_AND_LISTEN = """
import json, select, socket, sys, time
ports, host, seconds = json.loads(sys.argv[1])
listeners, result = [], {"bound": [], "accepted": [], "host_address": None}
for port in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    listeners.append(s)
    result["bound"].append(port)
probe = socket.socket()
try:
    probe.bind((host, ports[0]))
except OSError as e:
    result["host_address"] = e.errno
print("bound", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    ready, _, _ = select.select(listeners + [sys.stdin], [], [], 0.2)
    if sys.stdin in ready:  # the test says its traffic is done
        break
    for s in ready:
        connection, peer = s.accept()
        result["accepted"].append([s.getsockname()[1], peer[0]])
        connection.close()
print(json.dumps(result), flush=True)
"""


def test_binding_the_platforms_ports_inside_a_container_receives_none_of_its_traffic(scene):
    platform, settings = scene["platform"], scene["platform"].settings
    ports = [
        settings.hub_port,
        settings.service_port,
        settings.proxy_api_port,
        settings.gateway_api_port,
        settings.public_port,
    ]
    listener = subprocess.Popen(
        ["docker", "exec", "-i", container_name(scene["a"]), "python", "-c", BIND_AND_LISTEN,
         json.dumps([ports, settings.container_host, 400])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout.readline().strip() == "bound", listener.stderr.read()
        started = time.monotonic()
        # Traffic on every one of those channels while the attacker listens: a password login (proxy -> hub ->
        # platform service), a server started and stopped (hub -> proxy REST API), gateway calls (proxy -> gateway).
        r = platform.api(
            "POST",
            "/hub/api/users/admin/tokens",
            json={"auth": {"username": "admin", "password": ADMIN_PASSWORD}, "note": "bind test"},
        )
        assert r.status_code == 201, r.text
        platform.spawn(scene["a"], scene["tokens"][scene["a"]], {"profile": "interactive"}, server="second")
        platform.stop_server(scene["a"], "second")
        r = platform.api(
            "GET",
            "/services/dask-gateway/api/v1/clusters/",
            headers={"Authorization": f"jupyterhub {scene['tokens'][scene['b']]}"},
        )
        assert r.status_code == 200 and scene["cluster"] in r.json(), r.text
        assert time.monotonic() - started < 400, "the traffic must happen while the listener waits"
        out, err = listener.communicate("done\n", timeout=60)
    finally:
        listener.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"bound": ports, "accepted": [], "host_address": 99}, err  # 99: EADDRNOTAVAIL


def test_the_server_container_is_hardened(scene):
    name = container_name(scene["a"])
    container = inspect("container", name)
    host = container["HostConfig"]
    assert container["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True and host["PidsLimit"] == 4096
    assert host["Privileged"] is False and host["NetworkMode"] != "host"
    assert [(m["Type"], m.get("Name"), m["Destination"]) for m in container["Mounts"]] == [
        ("volume", home_volume(scene["a"]), "/home/jovyan")
    ], "the home volume only: no Docker socket, no host path"

    kernel_view = textwrap.dedent(
        """
        import json, os
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        try:
            open("/opt/polartep-write-test", "w")
            image_writable = True
        except OSError as e:
            image_writable = e.errno
        print(json.dumps({"uid": os.getuid(), "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
                          "NoNewPrivs": status["NoNewPrivs"].strip(), "docker_socket": os.path.exists("/var/run/docker.sock"),
                          "image_writable": image_writable}))
        """
    )
    done = docker("exec", name, "python", "-c", kernel_view)
    assert json.loads(done.stdout) == {
        "uid": 1000,
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "docker_socket": False,
        "image_writable": 30,  # EROFS
    }


def test_the_allowed_paths_work_from_a_container_and_only_through_the_proxy(scene):
    """Control: what a server needs works from inside A's container: the platform service's API through the proxy
    (the JupyterLab extension's panel call, with A's own token), the hub's API; B's server is reachable only as
    on the public URL, where it refuses A's token."""
    settings, a, b = scene["platform"].settings, scene["a"], scene["b"]
    public = f"http://{settings.container_host}:{settings.public_port}"
    other = {"url": f"{public}/user/{b}/api/status", "host": f"127.0.0.1:{settings.public_port}"}

    done = docker("exec", container_name(a), "python", "-c", ALLOWED_PATHS, json.dumps(other), timeout=90)

    assert json.loads(done.stdout) == {
        # Through the proxy's public port on the platform network's address: never the service's own port.
        "service_url": f"{public}/services/platform/",
        "service me": [200, a],
        "service me without a token": 401,
        "extension panel": [200, a],
        "hub API whoami": [200, a],
        "B's server through the public route": 403,
    }
