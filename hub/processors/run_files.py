"""Reading a run's files from the invoker's run folder, as the platform, safely, in local and in Docker mode.

Rules this module guarantees (both modes, the same code: ``open_beneath``):

* Nothing is read through a symbolic link: each component below the home is opened ``O_NOFOLLOW`` relative to its
  parent's descriptor, so a user who swaps a folder or file of their run for a link gets a refusal, never the
  target's bytes.
* Only regular files owned by the home's owner are read (no FIFO that would block, no device, no file of another
  account hard-linked in), at most ``MAX_FILE_BYTES``; ``status.json`` at most ``MAX_STATUS_BYTES`` and only as JSON
  of plain types.
* Refusals are ``RunFileUnavailable`` (404 to the API) with a message that says what is missing.

**Local mode**: the service (root) opens the files in ``<homes_root>/<home>`` itself.

**Docker mode** (``DockerRunFiles``): the run's files are in the invoker's home *volume* (the worker that ran
papermill mounted it at ``/home/jovyan``). The service reads them through the Docker engine it already talks to, with
a short-lived container per read: the catalogue's base image, the invoker's volume mounted **read-only** at
``/home/jovyan`` (no other volume), as uid 1000 (the volume's user, never root), no network, every capability
dropped, ``no-new-privileges``, bounded memory and processes. In it, ``open_beneath`` (this module's function, sent
as source) walks to the file exactly as in local mode and copies the checked bytes to a file of its own; the service
takes that file out of the stopped container with the engine's archive API, checks the archive holds one regular
file within the limit, and removes the container. Why this and not the alternatives:

* reading the volume's folder on the host (``/var/lib/docker/volumes/...``) needs root on the engine's host and
  breaks with a remote engine or Swarm;
* mounting every home volume into the service would give one process every user's files for its whole life;
* ``get_archive`` straight from a container that mounts the volume follows symbolic links in the path's folders
  (scoped to the container, but still not "refuse links") and cannot check the owner before reading;
* ``docker exec`` into the user's own server would run in a container the user controls (and needs a running
  server).

A missing volume is answered "not there" without creating it (the engine would create an empty one on mount).
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import tarfile
from typing import Any

from polartep_hub.processors.run_task import RUNS_FOLDER, STATUS_FILE
from polartep_hub.processors.runs import RunFileUnavailable

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 2**20
MAX_STATUS_BYTES = 2 * 2**20


def open_beneath(home: str, parts: list[str], limit: int) -> int:
    """A descriptor of ``home/<parts...>`` opened without following any link, a regular file of the home's owner
    within ``limit`` bytes; ``LookupError`` (with the reason) otherwise.

    Standard library only and self-contained: Docker mode sends this function's source into the reading container.
    """
    import os
    import stat

    try:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise LookupError("the run's folder is not there") from None
    try:
        owner = os.fstat(fd).st_uid
        for part in parts[:-1]:
            following = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = following
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        raise LookupError("the file is not there (or not a plain file)") from None
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != owner or info.st_size > limit:
        os.close(file_fd)
        raise LookupError(f"the file is not a plain file of the run's owner within {limit // 2**20} MiB")
    return file_fd


def _parts_of(run_id: str, relative: str) -> list[str]:
    parts = [RUNS_FOLDER, run_id, *relative.split("/")]
    if any(part in ("", ".", "..") for part in parts):
        raise RunFileUnavailable("not a file of the run")
    return parts


def read_run_file(home: str, run_id: str, relative: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``relative`` in ``home``'s run folder of ``run_id`` (see the module's rules)."""
    parts = _parts_of(run_id, relative)
    try:
        fd = open_beneath(home, parts, limit)
    except LookupError as refusal:
        raise RunFileUnavailable(str(refusal)) from None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit + 1)[:limit]


def status_from(data: bytes) -> dict[str, Any] | None:
    """``status.json``'s content as a dict, None when it is not a JSON object."""
    try:
        recorded = json.loads(data)
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) else None


def read_status(home: str, run_id: str) -> dict[str, Any] | None:
    """The final status the run's worker recorded (``status.json``), None when there is none (yet)."""
    try:
        return status_from(read_run_file(home, run_id, STATUS_FILE, MAX_STATUS_BYTES))
    except RunFileUnavailable:
        return None


def started(home: str, run_id: str) -> bool:
    """Whether a worker began the run (its ``started`` marker is there)."""
    try:
        read_run_file(home, run_id, "started", 0)
    except RunFileUnavailable:
        return False
    return True


# --- Docker mode ----------------------------------------------------------------------------------------------------

HOME_IN_CONTAINER = "/home/jovyan"
READER_USER = "1000:1000"  # the home volume's user in every catalogue image (images/base/Dockerfile)
READER_PYTHON = "/opt/venv/bin/python"
COPY_PATH = "/tmp/run-file"  # noqa: S108 (inside the reading container's own file system)
READER_LABEL = "org.polartep.run-files"
REFUSED_EXIT = 3

# The reading container's program: open_beneath's own source, then a copy of the checked bytes to COPY_PATH.
_READER_PROGRAM = (
    inspect.getsource(open_beneath)
    + f"REFUSED_EXIT, COPY_PATH = {REFUSED_EXIT!r}, {COPY_PATH!r}\n"
    + """
import os, sys
home, limit, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
try:
    fd = open_beneath(home, parts, limit)
except LookupError as refusal:
    sys.stderr.write(str(refusal))
    sys.exit(REFUSED_EXIT)
out = os.fdopen(os.open(COPY_PATH, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
left = limit
while left > 0:
    chunk = os.read(fd, min(1 << 20, left))
    if not chunk:
        break
    out.write(chunk)
    left -= len(chunk)
out.close()
"""
)


class DockerRunFiles:
    """Reads run files from users' home volumes through the Docker engine (see the module's Docker-mode rules)."""

    def __init__(self, image: str, timeout: float = 60.0) -> None:
        self.image = image
        self.timeout = timeout

    def read_run_file(self, volume: str, run_id: str, relative: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """The bytes of ``relative`` in the run folder of ``run_id`` in the home volume ``volume``."""
        parts = _parts_of(run_id, relative)
        try:
            import docker
            from docker.errors import DockerException, NotFound
        except ImportError:
            raise RunFileUnavailable(
                "the run's files cannot be read: the docker package is missing"
            ) from None
        try:
            client = docker.from_env(timeout=self.timeout)
        except DockerException:
            raise RunFileUnavailable(
                "the run's files cannot be read now: the Docker engine is not reachable"
            ) from None
        container = None
        try:
            try:
                client.api.inspect_volume(volume)  # never let the engine create an empty one
            except NotFound:
                raise RunFileUnavailable("the run's folder is not there") from None
            container = client.containers.create(
                self.image,
                command=[READER_PYTHON, "-I", "-c", _READER_PROGRAM, HOME_IN_CONTAINER, str(limit), *parts],
                user=READER_USER,
                volumes={volume: {"bind": HOME_IN_CONTAINER, "mode": "ro"}},
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=256 * 2**20 + 2 * limit,
                pids_limit=32,
                labels={READER_LABEL: "1"},
                working_dir="/",
                detach=True,
            )
            container.start()
            exit_code = container.wait(timeout=self.timeout).get("StatusCode")
            if exit_code == REFUSED_EXIT:
                message = container.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip()
                raise RunFileUnavailable(message[:300] or "the file is not there (or not a plain file)")
            if exit_code != 0:
                log.warning("run-file reader for %s exited %s", volume, exit_code)
                raise RunFileUnavailable("the run's file could not be read")
            stream, _ = container.get_archive(COPY_PATH)
            return _single_file(b"".join(stream), limit)
        except DockerException as error:
            log.warning("run-file reader for %s failed: %s", volume, error)
            raise RunFileUnavailable("the run's file could not be read") from None
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except DockerException:
                    log.warning("could not remove run-file reader %s", container.id)
            client.close()

    def read_status(self, volume: str, run_id: str) -> dict[str, Any] | None:
        """``status.json`` of the run, None when there is none (yet)."""
        try:
            return status_from(self.read_run_file(volume, run_id, STATUS_FILE, MAX_STATUS_BYTES))
        except RunFileUnavailable:
            return None


def _single_file(archive: bytes, limit: int) -> bytes:
    """The content of the one regular file in a tar ``archive`` of at most ``limit`` bytes."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
        if len(members) != 1 or not members[0].isreg() or members[0].size > limit:
            raise RunFileUnavailable("the run's file could not be read")
        extracted = tar.extractfile(members[0])
        assert extracted is not None  # a regular member
        return extracted.read(limit)


__all__ = [
    "DockerRunFiles",
    "MAX_FILE_BYTES",
    "MAX_STATUS_BYTES",
    "open_beneath",
    "read_run_file",
    "read_status",
    "started",
    "status_from",
]
