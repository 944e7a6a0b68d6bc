"""The Docker engine as the tests see it: ``docker`` CLI calls, readiness of engine and images, and clean-up.

Rules: every container and volume a test run creates carries the run's id in its name (through the test users'
names), so concurrent runs on one engine never collide and clean-up removes exactly this run's objects.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from typing import Any

from polartep_hub.settings import REPO_ROOT

RUN_ID = secrets.token_hex(3)  # in every test user's name, hence in every container and volume name
IMAGES = ("polartep/base", "polartep/ml")


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def inspect(kind: str, name: str) -> dict[str, Any] | None:
    """``docker <kind> inspect NAME`` as a dict, or None when there is no such object."""
    result = docker(kind, "inspect", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def container_name(user: str, server: str = "") -> str:
    """The container DockerSpawner gives a server (prefix ``polartep``, see hub_config)."""
    return f"polartep-{user}--{server}" if server else f"polartep-{user}"


def home_volume(user: str) -> str:
    return f"polartep-home-{user}"


def unique_user_name(label: str) -> str:
    """A user name unique to this run (letters and digits only, so Docker names need no escaping)."""
    return f"t{RUN_ID}{label}"


def network_prefix(label: str) -> str:
    """A ``docker_network_prefix`` unique to this run and platform (``polartep-t{run}{label}``)."""
    return f"polartep-t{RUN_ID}n{label}"


def engine_problem() -> str | None:
    """Why Docker tests cannot run here (None when they can): start the engine and build the images if needed."""
    steps = [["images/ensure-docker.sh"], ["images/build.sh", "base", "ml"]]
    for step in steps:
        try:
            result = subprocess.run(
                step, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000, env=dict(os.environ)
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(step)} failed: {e}"
        if result.returncode != 0:
            return f"{' '.join(step)} exited {result.returncode}: {result.stderr[-2000:]}"
    missing = [image for image in IMAGES if inspect("image", image) is None]
    return f"images missing after the build: {missing}" if missing else None


def remove_run_objects() -> None:
    """Remove this run's services, containers and volumes (servers a failed test left behind)."""
    services = docker(
        "service", "ls", "-q", "--filter", f"name=polartep-t{RUN_ID}", check=False
    ).stdout.split()
    if services:
        docker("service", "rm", *services, check=False)
    containers = docker("ps", "-aq", "--filter", f"name=polartep-t{RUN_ID}", check=False).stdout.split()
    if containers:
        docker("rm", "-f", *containers, check=False)
    volumes = docker(
        "volume", "ls", "-q", "--filter", f"name=polartep-home-t{RUN_ID}", check=False
    ).stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)

    # The platforms' networks (docker_network_prefix carries the run id, see network_prefix()). Swarm mode's user
    # networks first: a swarm network leaves the node some seconds after its last task, and removing its config-only
    # network before it would leave it unusable and unremoved.
    def networks(config_only: bool) -> list[str]:
        listed = docker(
            "network", "ls", "--format", "{{.Name}} {{.Driver}}", "--filter", f"name={network_prefix('')}",
            check=False,
        ).stdout.split("\n")  # fmt: skip
        return [
            line.split()[0] for line in listed if line.strip() and (line.split()[1] == "null") == config_only
        ]

    deadline = time.monotonic() + 60
    while (remaining := networks(config_only=False)) and time.monotonic() < deadline:
        docker("network", "rm", *remaining, check=False)
        if networks(config_only=False):
            time.sleep(2)
    if configs := networks(config_only=True):
        docker("network", "rm", *configs, check=False)
