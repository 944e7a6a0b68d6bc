"""Shared by several test modules (moved from ``tests/security/test_docker_network_isolation.py``)."""

from __future__ import annotations

import json
import time

from tests.docker.engine import (
    docker,
)

ALLOWED_PATHS = """
import json, os, sys, urllib.error, urllib.request

def get(url, token=None, host=None):
    headers = {"Authorization": "token " + token} if token else {}
    if host:
        headers["Host"] = host
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # follows no redirect that leaves the host
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None

service, token, user = os.environ["POLARTEP_SERVICE_URL"], os.environ["JUPYTERHUB_API_TOKEN"], os.environ["JUPYTERHUB_USER"]
me_status, me = get(service + "api/v1/me", token)
panel_status, panel = get(f"http://127.0.0.1:8888/user/{user}/polartep/api/me", token)
hub_status, whoami = get(os.environ["JUPYTERHUB_API_URL"] + "/user", token)
other = json.loads(sys.argv[1])
print(json.dumps({
    "service_url": service,
    "service me": [me_status, me and me["name"]],
    "service me without a token": get(service + "api/v1/me")[0],
    "extension panel": [panel_status, panel and panel["name"]],
    "hub API whoami": [hub_status, whoami and whoami["name"]],
    "B's server through the public route": get(other["url"], token, other["host"])[0],
}))
"""


def address_on(container: dict, network: str) -> str:
    return container["NetworkSettings"]["Networks"][network]["IPAddress"]


def listening_ports(container: str, settle: float = 3.0) -> list[int]:
    """The TCP ports ``container`` listens on, once the list has stayed the same for ``settle`` seconds."""

    def read() -> list[int]:
        return json.loads(docker("exec", container, "python", "-c", LISTENING_PORTS, timeout=30).stdout)

    previous, deadline = read(), time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(settle)
        current = read()
        if current and current == previous:
            return current
        previous = current
    raise AssertionError(f"the ports of {container} did not settle: {previous}")


def probe(container: str, targets: list[tuple[str, str, int]]) -> dict[str, str]:
    """Try a TCP connection to each (label, host, port) from inside ``container``; label -> outcome."""
    done = docker("exec", container, "python", "-c", PROBE, json.dumps(targets), check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LISTENING_PORTS = """
import json
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        fields = line.split()
        address, port = fields[1].rsplit(":", 1)
        # LISTEN, and not on the container's own loopback (127.0.0.0/8, e.g. Docker's DNS on 127.0.0.11, or ::1):
        # what its network can be asked for.
        loopback = address.endswith("7F") if len(address) == 8 else address == "00000000000000000000000001000000"
        if fields[3] == "0A" and not loopback:
            ports.add(int(port, 16))
print(json.dumps(sorted(ports)))
"""


PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def attempt(target):
    label, host, port = target
    s = socket.socket()
    s.settimeout(4)
    try:
        s.connect((host, port))
        return label, "connected"
    except ConnectionRefusedError:
        return label, "refused"
    except TimeoutError:
        return label, "timeout"
    except OSError as e:
        return label, f"error {e.errno}"
    finally:
        s.close()

targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(dict(pool.map(attempt, targets))))
"""
