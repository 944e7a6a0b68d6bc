"""The Docker networks the platform creates for itself in Docker and Swarm modes, and the one host address it uses.

Design (facts checked on Docker 20.10 with iptables, as this machine runs it):

* A container on a user-defined bridge has its own network namespace: its ``127.0.0.1`` is its own, so it can
  neither reach nor bind the host's loopback. Everything that must stay private to the platform (the proxy's REST
  API, the platform service, the gateway's private API, the hub's database) therefore listens on the host's
  ``127.0.0.1`` only.
* A container reaches *every* address of the host itself (Linux accepts a packet for any local address on any
  interface, and Docker filters only forwarded traffic), including the gateway address of a bridge it is not on.
  So no host address can be "for some containers only"; the platform binds exactly one host address besides
  loopback, the gateway of its **platform network** (``{prefix}-platform``, a bridge the platform creates, on which
  no container runs). The hub's API, the Dask Gateway's HTTP and TLS proxies and the public proxy's port (the
  route to the platform service's API for the JupyterLab extension, ``proxy_process.py``) listen there, and only
  what a single-user server needs is there. Nothing of the platform ever listens on ``0.0.0.0``.
* Containers of different bridges cannot reach each other (Docker's ``DOCKER-ISOLATION`` chains drop forwarded
  traffic between bridges: a connection times out). Each user gets a **user network** (``{prefix}-u-{user}``)
  that carries that user's servers, Dask schedulers and workers and nothing else: workers reach their scheduler,
  nobody else's. The hub, the proxy and the gateway reach containers at their addresses on these networks.
* A user network's subnet is a /26 carved from ``docker_subnet_pool`` (Docker's own default pools hold only about
  30 networks of /16, shared with everything else on the engine); the first /26 tried is chosen from a hash of the
  user name and the next ones are tried while the engine answers that a pool overlaps, so the hub and the gateway
  (two processes) creating the same user's network at once end up with one network, whichever wins.
* Swarm services cannot join a local bridge, so in Swarm mode each user network is a **swarm-scoped bridge** of the
  same name, created ``--config-from`` a config-only network ``{prefix}-u-{user}-config`` that carries its /26 and
  options, and attachable, so that the user's server (a service task) and the user's Dask containers (plain
  containers, started by the gateway) share it exactly as in Docker mode. Docker 20.10 ignores the subnet and the
  driver options given directly to a swarm-scoped bridge (measured: ``enable_icc=false`` had no effect, so one
  shared swarm bridge let A's server reach B's); taken from a config-only network they hold (measured). The engine
  checks a config-only network's subnet for overlaps only when a container attaches, so the free /26 is chosen here
  from the subnets of every network on the engine. Config-only networks live on one node: past one node, create the
  same ``-config`` networks on every node first.
* Every network carries the label ``org.polartep.network.prefix={prefix}`` (and a role, and the user; in Swarm mode
  the config-only network does, since the engine refuses labels on a network configured from another), is created
  idempotently (found by name first; a concurrent creator's network is adopted), and ``remove_networks`` removes
  them all (the tests' teardown).

Rejected: host networking (a container could bind the hub's or the service's port while it restarts and receive
tokens, and reach every loopback port); one shared bridge with inter-container traffic disabled for everything
(a user's workers could not reach their own scheduler, and a stopped server's address would be reused at once by
another user's server); in Swarm mode an overlay network per user (the host has no interface on an overlay, so the
hub and the proxy, host processes, could not reach the servers on it); a separate network for the gateway's
private API (any container reaches any host address, so it would isolate nothing: the schedulers reach the gateway
through its proxy instead).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any

LABEL_PREFIX = "org.polartep.network.prefix"
LABEL_ROLE = "org.polartep.network.role"
LABEL_USER = "org.polartep.network.user"
USER_SUBNET_PREFIXLEN = 26  # 62 addresses: a user's servers, schedulers and workers
CONFIG_SUFFIX = "-config"
ICC_OFF = {"com.docker.network.bridge.enable_icc": "false"}


@dataclass(frozen=True)
class NetworkNames:
    """Names of the platform's networks for one ``prefix`` (``docker_network_prefix``)."""

    prefix: str

    @property
    def platform(self) -> str:
        return f"{self.prefix}-platform"

    def user(self, escaped_name: str) -> str:
        return f"{self.prefix}-u-{escaped_name}"

    def user_config(self, escaped_name: str) -> str:
        """Swarm mode: the config-only network that holds the user network's subnet and options."""
        return f"{self.prefix}-u-{escaped_name}{CONFIG_SUFFIX}"


def _api(client=None):
    """The low-level API client: DockerSpawner holds a ``docker.APIClient``, the gateway a ``docker.DockerClient``."""
    if client is None:
        import docker

        client = docker.from_env(timeout=60)
    return getattr(client, "api", client)


# Swarm user networks pick their subnet themselves (config-only networks): one at a time, hub-wide.
_lock = threading.Lock()

# One lock per network name: the same network is never created twice at once, while different users' networks
# are inspected and created in parallel (an overlapping subnet is the engine's to refuse; the caller tries the next).
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def ensure_network(
    client,
    name: str,
    labels: dict[str, str],
    *,
    icc: bool = True,
    subnet: str | None = None,
) -> dict[str, Any]:
    """The network ``name`` (its ``docker network inspect``), created with these properties when missing."""
    import docker

    api = _api(client)
    with _lock_for(name):
        try:
            return api.inspect_network(name)
        except docker.errors.NotFound:
            pass
        ipam = None
        if subnet:
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            api.create_network(
                name,
                driver="bridge",
                options=None if icc else ICC_OFF,
                labels=labels,
                ipam=ipam,
                check_duplicate=True,
            )
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: created by a concurrent caller (the hub or the gateway)
                raise
        return api.inspect_network(name)


def network_gateway(info: dict[str, Any]) -> str:
    """The host's own address on a bridge network (its IPAM gateway)."""
    for config in (info.get("IPAM") or {}).get("Config") or ():
        if config.get("Gateway"):
            return config["Gateway"].split("/")[0]
    raise RuntimeError(f"Docker network {info.get('Name')} has no gateway address")


def ensure_platform_network(prefix: str, client=None) -> str:
    """Create ``{prefix}-platform`` if needed and return the host address on it (where containers reach the hub)."""
    names = NetworkNames(prefix)
    info = ensure_network(client, names.platform, {LABEL_PREFIX: prefix, LABEL_ROLE: "platform"}, icc=False)
    return network_gateway(info)


def user_subnets(pool: str, username: str) -> list[str]:
    """The /26 subnets of ``pool`` in the order they are tried for ``username`` (hash first, then onwards)."""
    network = ipaddress.ip_network(pool)
    if network.prefixlen > USER_SUBNET_PREFIXLEN:
        raise ValueError(f"docker_subnet_pool {pool} must be /{USER_SUBNET_PREFIXLEN} or larger")
    subnets = list(network.subnets(new_prefix=USER_SUBNET_PREFIXLEN))
    start = int.from_bytes(hashlib.sha256(username.encode()).digest()[:4], "big") % len(subnets)
    return [str(s) for s in subnets[start:] + subnets[:start]]


def ensure_user_network(
    prefix: str, pool: str, username: str, escaped_name: str, client=None, *, swarm: bool = False
) -> str:
    """Create the user's network (a /26 of ``pool``) if needed; returns its name.

    ``swarm``: a swarm-scoped, attachable bridge configured from a config-only network (see the module's
    docstring), which both swarm services and plain containers can join.
    """
    import docker

    client = _api(client)
    if swarm:
        return _ensure_swarm_user_network(client, prefix, pool, username, escaped_name)
    name = NetworkNames(prefix).user(escaped_name)
    labels = {LABEL_PREFIX: prefix, LABEL_ROLE: "user", LABEL_USER: username}
    last_error: Exception | None = None
    for subnet in user_subnets(pool, username):
        try:
            ensure_network(client, name, labels, subnet=subnet)
            return name
        except docker.errors.APIError as error:
            # Another network (ours or not) holds this subnet: try the next one.
            if "overlap" not in str(error).lower():
                raise
            last_error = error
    raise RuntimeError(f"no free /{USER_SUBNET_PREFIXLEN} left in docker_subnet_pool {pool}: {last_error}")


def subnets_in_use(client) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of every network on the engine (config-only ones included; ``docker network ls`` omits them)."""
    api = _api(client)
    used = []
    for summary in api.networks():
        for config in (summary.get("IPAM") or {}).get("Config") or ():
            if config.get("Subnet"):
                used.append(ipaddress.ip_network(config["Subnet"], strict=False))
    return used


def _ensure_swarm_user_network(api, prefix: str, pool: str, username: str, escaped_name: str) -> str:
    import docker

    names = NetworkNames(prefix)
    name, config_name = names.user(escaped_name), names.user_config(escaped_name)
    labels = {LABEL_PREFIX: prefix, LABEL_ROLE: "user", LABEL_USER: username}
    with _lock:
        try:
            api.inspect_network(name)
            return name
        except docker.errors.NotFound:
            pass
        try:
            api.inspect_network(config_name)
        except docker.errors.NotFound:
            used = subnets_in_use(api)
            free = next(
                (
                    s
                    for s in user_subnets(pool, username)
                    if not any(ipaddress.ip_network(s).overlaps(u) for u in used)
                ),
                None,
            )
            if free is None:
                raise RuntimeError(
                    f"no free /{USER_SUBNET_PREFIXLEN} left in docker_subnet_pool {pool}"
                ) from None
            _create_raw(
                api,
                {
                    "Name": config_name,
                    "ConfigOnly": True,
                    "IPAM": {"Driver": "default", "Config": [{"Subnet": free}]},
                    "Labels": {**labels, LABEL_ROLE: "user-config"},
                    "CheckDuplicate": True,
                },
            )
        _create_raw(
            api,
            {
                "Name": name,
                "Driver": "bridge",
                "Scope": "swarm",
                "Attachable": True,
                "ConfigFrom": {"Network": config_name},
                # No labels: the engine refuses any setting of its own on a network configured from another
                # ("user specified configurations are not supported"); its config-only network carries them.
                "CheckDuplicate": True,
            },
        )
    return name


def _create_raw(api, body: dict[str, Any]) -> None:
    """``POST /networks/create`` with fields docker-py's ``create_network`` lacks (``ConfigOnly``, ``ConfigFrom``);
    a 409 (created meanwhile by the hub or the gateway, two processes) adopts that network."""
    import docker

    try:
        api._result(api._post_json(api._url("/networks/create"), data=body), json=True)
    except docker.errors.APIError as error:
        if error.status_code != 409:
            raise


def remove_user_network(prefix: str, escaped_name: str, client=None, *, wait: float = 30.0) -> bool:
    """Remove the user's network (erasure), and in Swarm mode its config-only network; False when it is missing or
    still in use. A swarm network leaves the node asynchronously: its config is retried for up to ``wait`` seconds."""

    api = _api(client)
    names = NetworkNames(prefix)
    removed = _remove(api, names.user(escaped_name))
    if removed is None:
        return False
    config = names.user_config(escaped_name)
    deadline = time.monotonic() + wait
    while _remove(api, config) is None and _exists(api, config) and time.monotonic() < deadline:
        time.sleep(1)  # "configuration network ... is in use" until the swarm network is gone from this node
    return removed


def _exists(api, name: str) -> bool:
    import docker

    try:
        api.inspect_network(name)
    except docker.errors.NotFound:
        return False
    return True


def _remove(api, name: str) -> bool | None:
    """True when removed, False when there was none, None when it is still in use."""
    import docker

    try:
        api.remove_network(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        if error.status_code in (
            403,
            409,
        ):  # still has endpoints, or a swarm network still configured from it
            return None
        raise
    return True


def remove_networks(prefix: str, client=None, *, wait: float = 30.0) -> list[str]:
    """Remove every network labelled with ``prefix`` that nothing uses any more (config-only ones last, retried for
    up to ``wait`` seconds while swarm networks configured from them leave the node); returns the removed names."""
    api = _api(client)
    removed = []
    found = api.networks(filters={"label": f"{LABEL_PREFIX}={prefix}"})
    # Swarm mode's user networks carry no labels (see _ensure_swarm_user_network): found by their config's name.
    for info in found:
        if info.get("ConfigOnly") and info["Name"].endswith(CONFIG_SUFFIX):
            swarm_name = info["Name"].removesuffix(CONFIG_SUFFIX)
            if _remove(api, swarm_name):
                removed.append(swarm_name)
    for info in sorted(found, key=lambda i: bool(i.get("ConfigOnly"))):
        if info.get("ConfigOnly"):
            deadline = time.monotonic() + wait
            while (done := _remove(api, info["Id"])) is None and time.monotonic() < deadline:
                time.sleep(1)
        else:
            done = _remove(api, info["Id"])
        if done:
            removed.append(info["Name"])
    return removed
