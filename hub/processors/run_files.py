"""Reading a run's files from the invoker's run folder, as the platform (root in local mode), safely.

Rules this module guarantees:

* Nothing is read through a symbolic link: each component below the home is opened ``O_NOFOLLOW`` relative to its
  parent's descriptor, so a user who swaps a folder or file of their run for a link gets a refusal, never the
  target's bytes.
* Only regular files owned by the home's owner are read (no FIFO that would block, no device, no file of another
  account hard-linked in), at most ``MAX_FILE_BYTES``; ``status.json`` at most ``MAX_STATUS_BYTES`` and only as JSON
  of plain types.
* Refusals are ``RunFileUnavailable`` (404 to the API) with a message that says what is missing.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from polartep_hub.processors.run_task import RUNS_FOLDER, STATUS_FILE
from polartep_hub.processors.runs import RunFileUnavailable

MAX_FILE_BYTES = 64 * 2**20
MAX_STATUS_BYTES = 2 * 2**20


def _open_beneath(home: Path, parts: list[str], limit: int) -> int:
    try:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise RunFileUnavailable("the run's folder is not there") from None
    try:
        owner = os.fstat(fd).st_uid
        for part in parts[:-1]:
            following = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = following
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:
        raise RunFileUnavailable("the file is not there (or not a plain file)") from None
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != owner or info.st_size > limit:
        os.close(file_fd)
        raise RunFileUnavailable(
            f"the file is not a plain file of the run's owner within {limit // 2**20} MiB"
        )
    return file_fd


def read_run_file(home: str, run_id: str, relative: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``relative`` in ``home``'s run folder of ``run_id`` (see the module's rules)."""
    parts = [RUNS_FOLDER, run_id, *relative.split("/")]
    if any(part in ("", ".", "..") for part in parts):
        raise RunFileUnavailable("not a file of the run")
    fd = _open_beneath(Path(home), parts, limit)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit + 1)[:limit]


def read_status(home: str, run_id: str) -> dict[str, Any] | None:
    """The final status the run's worker recorded (``status.json``), None when there is none (yet)."""
    try:
        recorded = json.loads(read_run_file(home, run_id, STATUS_FILE, MAX_STATUS_BYTES))
    except (RunFileUnavailable, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def started(home: str, run_id: str) -> bool:
    """Whether a worker began the run (its ``started`` marker is there)."""
    try:
        read_run_file(home, run_id, "started", 0)
    except RunFileUnavailable:
        return False
    return True
