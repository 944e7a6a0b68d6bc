"""The Docker engine as the tests see it: ``docker`` CLI calls, readiness of engine and images, and clean-up.

Rules: every container and volume a test run creates carries the run's id in its name (through the test users'
names), so concurrent runs on one engine never collide and clean-up removes exactly this run's objects.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
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

    remove_run_networks()


def listening_addresses() -> set[str]:
    """The IPv4 addresses that something on this host listens on (TCP), from ``/proc/net/tcp``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(fields[1].split(":")[0])[::-1]))
    return found


def remove_run_networks(wait: float = 120) -> None:
    """Remove this run's networks (``docker_network_prefix`` carries the run id, see ``network_prefix()``), except
    the platform network of a platform still running (its hub listens on that network's gateway address: removing
    the network would take the address away from under the session's platform, as happened before).

    Swarm mode's user networks leave the node some seconds after their last task: they are retried for up to
    ``wait`` seconds (120 s: under load a stopped task takes that long), and their config-only networks go last and
    only once their swarm network is gone (removed first, they would orphan it)."""

    def networks() -> list[tuple[str, str, str]]:
        # Filtered here, not with --filter name=: the engine's filter misses swarm networks without a task here.
        listed = docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", check=False).stdout
        rows = [tuple(line.split()) for line in listed.splitlines() if line.strip()]
        return [row for row in rows if row[0].startswith(network_prefix(""))]

    live = listening_addresses()

    def in_use_by_a_running_platform(name: str) -> bool:
        if not name.endswith("-platform"):
            return False
        info = inspect("network", name) or {}
        gateways = {c.get("Gateway") for c in (info.get("IPAM") or {}).get("Config") or ()}
        return bool(gateways & live)

    local = [n for n, driver, scope in networks() if scope == "local" and driver != "null"]
    local = [n for n in local if not in_use_by_a_running_platform(n)]
    if local:
        docker("network", "rm", *local, check=False)
    deadline = time.monotonic() + wait
    while (swarm := [n for n, _, scope in networks() if scope == "swarm"]) and time.monotonic() < deadline:
        docker("network", "rm", *swarm, check=False)
        if any(scope == "swarm" for _, _, scope in networks()):
            time.sleep(2)
    # A config-only network goes only once its swarm network is gone (removed first, it would orphan it).
    left = {n for n, driver, _ in networks() if driver != "null"}
    if configs := [n for n, d, _ in networks() if d == "null" and n.removesuffix("-config") not in left]:
        docker("network", "rm", *configs, check=False)


SWARM_LEASE = Path(tempfile.gettempdir()) / "polartep-swarm-lease"


def swarm_state() -> str:
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()


@contextlib.contextmanager
def swarm_mode() -> Iterator[None]:
    """Hold the engine in swarm mode while the block runs.

    Every holder on this machine (xdist workers, other checkouts' runs) shares one lease: a holder file per process
    under ``SWARM_LEASE``, changed under an exclusive lock. The engine joins a swarm when the first holder arrives
    and the swarm is inactive; the last holder to go leaves it only if a holder joined it. Before, each module joined
    and left on its own, and one worker's leave took the swarm from under another worker's running platform."""
    SWARM_LEASE.mkdir(exist_ok=True)
    me = SWARM_LEASE / f"holder-{os.getpid()}-{secrets.token_hex(4)}"
    with _lease_lock():
        if not _live_holders() and swarm_state() == "inactive":
            docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
            (SWARM_LEASE / "joined").touch()
        me.touch()
    try:
        yield
    finally:
        with _lease_lock():
            me.unlink(missing_ok=True)
            if not _live_holders() and (SWARM_LEASE / "joined").exists():
                docker("swarm", "leave", "--force", check=False)
                # Leaving leaves the swarm's bridge network behind.
                docker("network", "rm", "docker_gwbridge", check=False)
                (SWARM_LEASE / "joined").unlink(missing_ok=True)


@contextlib.contextmanager
def _lease_lock() -> Iterator[None]:
    with open(SWARM_LEASE / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_holders() -> list[Path]:
    """The holder files whose process still runs (a killed run's files are dropped, so its lease does not stick)."""
    live = []
    for holder in SWARM_LEASE.glob("holder-*"):
        pid = int(holder.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            holder.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass
        live.append(holder)
    return live
