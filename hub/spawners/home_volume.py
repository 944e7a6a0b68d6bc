"""The name of a user's home volume in Docker and Swarm modes, defined once for everything that touches it.

The volume is ``polartep-home-<escaped user name>``: created and mounted by the user servers' spawners
(``spawners/docker.py``, ``spawners/swarm.py``), mounted in the user's Dask containers (``gateway/docker_backend.py``)
and removed or checked on erasure (``service/homes.py``). Every one of them takes the template and the escaping from
here, so a home can never be mounted under one name and erased under another.

This module imports nothing heavy (DockerSpawner only inside ``escape_name``), so the hub, the platform service and
the gateway may all import it; the hub side must never import ``dask_gateway_server`` (``tests/test_hub_config.py``).
"""

from __future__ import annotations

# DockerSpawner's volume-name template: ``{username}`` is DockerSpawner's escaped user name.
HOME_VOLUME_TEMPLATE = "polartep-home-{username}"


def escape_name(text: str) -> str:
    """A user name made safe for Docker object names, exactly as DockerSpawner escapes it (so volumes match)."""
    from dockerspawner import DockerSpawner  # the `docker` extra; not needed to import this module

    return DockerSpawner._escape(text)


def home_volume_name(username: str) -> str:
    """The home volume of ``username`` (the name DockerSpawner gives ``HOME_VOLUME_TEMPLATE`` for that user)."""
    return HOME_VOLUME_TEMPLATE.format(username=escape_name(username))
