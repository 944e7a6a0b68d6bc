"""The platform's own files and what users' system accounts must still reach (local mode with system users).

Rules it guarantees (``hub_config.configure_hub`` applies them when the hub starts):

* The state folder (databases, secrets, the gateway's configuration, logs) is mode 0700 and every file directly in
  it 0600 (``secure_state_dir``); the hub runs with umask 077, so what it and its services create later is the
  platform's alone too. Users' homes and Dask working directories therefore live outside it.
* The folder of homes and the folder of Dask working directories are created 0711 when missing (users can enter
  their own entry but cannot list the others); an existing one (``/home``) keeps its mode but must not be writable
  by others (``spawners.system_users.make_shared_root``). The spawner and the gateway create them when they first need them, not the
  hub's configuration, so reading the configuration changes nothing on the machine.
* Servers run ``jupyterhub-singleuser`` from the platform's virtual environment as the users' own accounts, so every
  folder from ``/`` down to that environment must be enterable by others (``x`` for others) and the environment
  readable. ``untraversable_folders`` names each folder in the way; start-up stops with a message that says what to
  run (``chmod o+x``) or where to install instead, since CI and operators clone into folders of their own choosing.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path


def secure_state_dir(state: Path) -> None:
    """State folder 0700 (created if missing), each plain file directly in it 0600; symlinks are left alone."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    for entry in state.iterdir():
        if entry.is_file() and not entry.is_symlink():
            os.chmod(entry, 0o600)


def untraversable_folders(target: Path) -> list[Path]:
    """The folders from ``/`` down to ``target`` (included) that other users cannot enter (no ``x`` for others)."""
    blocked = []
    resolved = target.resolve()
    for folder in [*reversed(resolved.parents), resolved]:
        try:
            mode = folder.stat().st_mode
        except OSError:
            blocked.append(folder)
            continue
        if not mode & stat.S_IXOTH:
            blocked.append(folder)
    return blocked


def environment_problem(prefix: Path | None = None) -> str | None:
    """Why users' accounts cannot run the platform's Python environment; None if they can.

    Checked: the venv (``sys.prefix``) and this package's own folder (an editable install imports it from the
    clone, e.g. for a server extension); each must be reachable from ``/`` and readable.
    """
    targets = [Path(prefix or sys.prefix), Path(__file__).resolve().parent]
    blocked: list[Path] = []
    for target in targets:
        blocked.extend(p for p in untraversable_folders(target) if p not in blocked)
    unreadable = [t for t in targets if t not in blocked and not t.stat().st_mode & stat.S_IROTH]
    if not blocked and not unreadable:
        return None
    where = ", ".join(str(p) for p in blocked + unreadable)
    fixes = []
    if blocked:
        fixes.append(f"`chmod o+x {' '.join(str(p) for p in blocked)}`")
    if unreadable:
        fixes.append(f"`chmod o+rx {' '.join(str(p) for p in unreadable)}`")
    return (
        f"users' system accounts cannot reach the platform's Python environment {targets[0]} (in the way: {where}). "
        "Single-user servers run from it as each user's own account, so every folder from / down to it must be "
        f"enterable by others: run {' and '.join(fixes)}, or clone and install the platform in a folder such as "
        "/opt/polartep (a venv built on /usr/bin/python3; not under /root). Or set "
        "POLARTEP_LOCAL_ISOLATION=single-user (only the administrator), or use POLARTEP_MODE=docker."
    )
