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
  no container runs). The hub's API and the Dask Gateway's HTTP and TLS proxies listen there, and only what a
  single-user server needs is there. Nothing of the platform ever listens on ``0.0.0.0``.
* Containers of different bridges cannot reach each other (Docker's ``DOCKER-ISOLATION`` chains drop forwarded
  traffic between bridges: a connection times out). Each user gets a **user network** (``{prefix}-u-{user}``)
  that carries that user's servers, Dask schedulers and workers and nothing else: workers reach their scheduler,
  nobody else's. The hub, the proxy and the gateway reach containers at their addresses on these networks.
* A user network's subnet is a /26 carved from ``docker_subnet_pool`` (Docker's own default pools hold only about
  30 networks of /16, shared with everything else on the engine); the first /26 tried is chosen from a hash of the
  user name and the next ones are tried while the engine answers that a pool overlaps, so the hub and the gateway
  (two processes) creating the same user's network at once end up with one network, whichever wins.
* Swarm services cannot join a local bridge: in Swarm mode servers run on one swarm-scoped bridge
  (``{prefix}-swarm``) with inter-container traffic disabled (``enable_icc=false``), so they cannot reach each other
  either; Dask containers still use the user networks.
* Every network carries the label ``org.polartep.network.prefix={prefix}`` (and a role, and the user), is created
  idempotently (found by name first; a concurrent creator's network is adopted), and ``remove_networks`` removes
  them all (the tests' teardown).

Rejected: host networking (a container could bind the hub's or the service's port while it restarts and receive
tokens, and reach every loopback port); one shared bridge with inter-container traffic disabled for everything
(a user's workers could not reach their own scheduler, and a stopped server's address would be reused at once by
another user's server); a separate network for the gateway's private API (any container reaches any host address,
so it would isolate nothing: the schedulers reach the gateway through its proxy instead).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from dataclasses import dataclass
from typing import Any

LABEL_PREFIX = "org.polartep.network.prefix"
LABEL_ROLE = "org.polartep.network.role"
LABEL_USER = "org.polartep.network.user"
USER_SUBNET_PREFIXLEN = 26  # 62 addresses: a user's servers, schedulers and workers
ICC_OFF = {"com.docker.network.bridge.enable_icc": "false"}


@dataclass(frozen=True)
class NetworkNames:
    """Names of the platform's networks for one ``prefix`` (``docker_network_prefix``)."""

    prefix: str

    @property
    def platform(self) -> str:
        return f"{self.prefix}-platform"

    @property
    def swarm(self) -> str:
        return f"{self.prefix}-swarm"

    def user(self, escaped_name: str) -> str:
        return f"{self.prefix}-u-{escaped_name}"


def _api(client=None):
    """The low-level API client: DockerSpawner holds a ``docker.APIClient``, the gateway a ``docker.DockerClient``."""
    if client is None:
        import docker

        client = docker.from_env(timeout=60)
    return getattr(client, "api", client)


_lock = threading.Lock()


def ensure_network(
    client,
    name: str,
    labels: dict[str, str],
    *,
    icc: bool = True,
    subnet: str | None = None,
    swarm: bool = False,
) -> dict[str, Any]:
    """The network ``name`` (its ``docker network inspect``), created with these properties when missing."""
    import docker

    api = _api(client)
    with _lock:
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
                scope="swarm" if swarm else None,
                attachable=True if swarm else None,
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


def ensure_swarm_network(prefix: str, client=None) -> str:
    """Create the swarm-scoped servers' network ``{prefix}-swarm`` if needed; returns its name."""
    names = NetworkNames(prefix)
    ensure_network(client, names.swarm, {LABEL_PREFIX: prefix, LABEL_ROLE: "swarm"}, icc=False, swarm=True)
    return names.swarm


def user_subnets(pool: str, username: str) -> list[str]:
    """The /26 subnets of ``pool`` in the order they are tried for ``username`` (hash first, then onwards)."""
    network = ipaddress.ip_network(pool)
    if network.prefixlen > USER_SUBNET_PREFIXLEN:
        raise ValueError(f"docker_subnet_pool {pool} must be /{USER_SUBNET_PREFIXLEN} or larger")
    subnets = list(network.subnets(new_prefix=USER_SUBNET_PREFIXLEN))
    start = int.from_bytes(hashlib.sha256(username.encode()).digest()[:4], "big") % len(subnets)
    return [str(s) for s in subnets[start:] + subnets[:start]]


def ensure_user_network(prefix: str, pool: str, username: str, escaped_name: str, client=None) -> str:
    """Create the user's network (a /26 of ``pool``) if needed; returns its name."""
    import docker

    client = _api(client)
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


def remove_user_network(prefix: str, escaped_name: str, client=None) -> bool:
    """Remove the user's network (erasure); False when it is missing or still in use."""
    import docker

    api = _api(client)
    try:
        api.remove_network(NetworkNames(prefix).user(escaped_name))
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        if error.status_code in (403, 409):  # still has endpoints (e.g. a cluster being stopped)
            return False
        raise
    return True


def remove_networks(prefix: str, client=None) -> list[str]:
    """Remove every network labelled with ``prefix`` that nothing uses any more; returns the removed names."""
    import docker

    api = _api(client)
    removed = []
    for info in api.networks(filters={"label": f"{LABEL_PREFIX}={prefix}"}):
        try:
            api.remove_network(info["Id"])
            removed.append(info["Name"])
        except docker.errors.APIError:
            continue
    return removed
