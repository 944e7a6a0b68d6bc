"""Where a user's home lives, whether it is still there, and removing it: so that erasure says "erased" only once the
home is really gone.

JupyterHub deletes a user's home through the spawner's ``delete_forever`` when the hub user is deleted, but it logs
and swallows any error there (``User._delete_spawner``): a home volume still mounted by a container, a folder that
could not be removed, and the hub user is gone all the same. So erasure checks the home itself afterwards, and
removes what is left (``remove_home``); whatever still cannot go keeps the erasure pending, to be finished by the
service's reconciliation loop.

Rules this module guarantees:

* Local mode: the home is the folder ``<homes_root>/<name>`` (``LocalProfileSpawner.home_dir_template``); it is
  removed only when it is a real folder strictly inside ``homes_root`` (never the root, never through a symlink).
* Docker and Swarm modes: the home is the volume ``polartep-home-<escaped name>`` (DockerSpawner's escaping, as
  ``DockerProfileSpawner`` names it). A volume in use is not forced: that would pull it from under a running
  container; the erasure stays pending instead.
* ``remove_home`` returns whether the home is gone; it raises nothing for "still there", only for a home that
  cannot be checked (``HomeCheckError``: Docker unreachable, a home that is not a plain folder inside the root).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from polartep_hub.spawners.home_volume import home_volume_name

log = logging.getLogger(__name__)


class HomeCheckError(RuntimeError):
    """The home cannot be checked (no homes root configured, Docker unreachable); the message says what to fix."""


def local_home(homes_root: str, name: str) -> Path | None:
    """The user's home folder if it exists and may be deleted; None when there is none.

    ``HomeCheckError`` for a home that is not a real folder strictly inside ``homes_root``.
    """
    if not homes_root:
        raise HomeCheckError("POLARTEP_HOMES_ROOT is not set: the service cannot check that the home is gone")
    root = Path(homes_root).resolve()
    home = Path(homes_root) / name
    if "/" in name or name in ("", ".", ".."):
        raise HomeCheckError("the account name cannot name a home folder")
    if home.is_symlink():
        raise HomeCheckError("the home is a symbolic link; refusing to follow it")
    if not home.exists():
        return None
    resolved = home.resolve()
    if resolved == root or root not in resolved.parents or not resolved.is_dir():
        raise HomeCheckError(f"the home is not a folder strictly inside {root}")
    return resolved


def _remove_volume(name: str, within: float) -> bool:
    try:
        import docker
        from docker.errors import APIError, DockerException, NotFound
    except ImportError as error:  # the `docker` extra is missing
        raise HomeCheckError("the Python package docker is needed to check home volumes") from error
    try:
        client = docker.from_env(timeout=30)
    except DockerException as error:
        raise HomeCheckError(f"the Docker engine is not reachable: {type(error).__name__}") from None
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                client.api.remove_volume(home_volume_name(name))
                return True
            except NotFound:
                return True
            except APIError as error:
                # 409: in use, e.g. by a container whose removal is still in progress. Wait a little, never force.
                if error.status_code == 409 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                if error.status_code == 409:
                    return False
                raise HomeCheckError(
                    f"the Docker engine refused to remove the home volume: {error.status_code}"
                ) from None
    finally:
        client.close()


def remove_home(mode: str, homes_root: str, name: str, *, within: float = 10.0) -> bool:
    """Remove what is left of the user's home; True when it is gone (or never existed).

    Local mode without ``homes_root`` (a service not started by the platform's hub configuration, e.g. in unit tests)
    has no home to look at: True.
    """
    if mode in ("docker", "swarm"):
        return _remove_volume(name, within)
    if not homes_root:
        log.debug("no homes root configured: the home is not checked")
        return True
    home = local_home(homes_root, name)
    if home is None:
        return True
    shutil.rmtree(home, ignore_errors=True)  # symlinks inside are removed, never followed
    return not home.exists()
