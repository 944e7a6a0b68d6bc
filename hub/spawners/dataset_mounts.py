"""Datasets in users' servers: the groups that open them and the links that show them, applied at each spawn.

Local mode (``local.py``). The platform service says which datasets the user's next server may use
(``GET /users/{name}/dataset-mounts``: folder, ``rw`` or ``ro``, and the dataset's system group,
``data/storage.py``). The server's process is then started with exactly those gids added to the system user's own
groups (``os.setgroups`` between ``setgid`` and ``setuid``), so its kernels, terminals and everything they start
carry them; the folders' modes and ACLs do the rest. Nobody is ever put into these groups in ``/etc/group``: a
revoked grant or a left project is simply not given at the next spawn (a running server keeps what it started with
until it stops). ``~/datasets/<project>/<dataset>`` are symbolic links to the folders, made by the server's own
process *after* it became the user: root never writes into a user's home, where a planted link could redirect it.
The links are conveniences, not permissions: a link to a folder the process cannot enter opens nothing. Links that
point into a dataset root but are no longer granted are removed at the next spawn; anything else the user put
under ``~/datasets`` is left alone.

Docker mode (``docker.py``): the same list becomes bind mounts at ``/home/jovyan/datasets/<project>/<dataset>``,
read-only where the access is ``ro``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DATASETS_FOLDER = "datasets"


@dataclass(frozen=True)
class DatasetMount:
    """One dataset a server may use (the service's ``MountOut``)."""

    project: str
    name: str
    mode: str  # "rw" or "ro"
    path: str
    gid: int | None

    @classmethod
    def from_json(cls, item: dict) -> DatasetMount:
        return cls(
            project=str(item["project"]),
            name=str(item["name"]),
            mode="rw" if item.get("mode") == "rw" else "ro",
            path=str(item["path"]),
            gid=int(item["gid"]) if item.get("gid") is not None else None,
        )


def user_ids_with_groups(system_user: str, extra_gids: Sequence[int]) -> tuple[int, int, list[int]]:
    """``system_user``'s uid, primary gid and groups: its own (``initgroups``' list) plus ``extra_gids``."""
    entry = pwd.getpwnam(system_user)
    uid, gid = entry.pw_uid, entry.pw_gid
    return uid, gid, sorted(set(os.getgrouplist(system_user, gid)) | set(extra_gids))


def switch_user_with_groups(system_user: str, extra_gids: Sequence[int]) -> Callable[[], None]:
    """A ``preexec_fn`` part that becomes ``system_user`` with its own groups plus ``extra_gids`` (or fails)."""
    uid, gid, groups = user_ids_with_groups(system_user, extra_gids)

    def switch() -> None:
        os.setgid(gid)
        os.setgroups(
            groups
        )  # unlike JupyterHub's helper, a failure here stops the spawn: never run with root's groups
        os.setuid(uid)

    return switch


def link_datasets(home: str, mounts: Sequence[DatasetMount], roots: Sequence[str]) -> None:
    """Make ``home/datasets/<project>/<name>`` link to each mount's folder; remove links into ``roots`` that are no
    longer granted. Runs in the server's process after the user switch; never raises (a user may have put a file
    where the folder should be: the server still starts)."""
    wanted = {(m.project, m.name): m.path for m in mounts}
    base = os.path.join(home, DATASETS_FOLDER)
    if wanted:  # a user with no datasets gets no empty folder in their home
        with contextlib.suppress(OSError):
            os.makedirs(base, mode=0o755, exist_ok=True)
    with contextlib.suppress(OSError):
        for project in os.listdir(base):
            folder = os.path.join(base, project)
            if os.path.islink(folder) or not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                link = os.path.join(folder, name)
                if not os.path.islink(link) or (project, name) in wanted:
                    continue
                target = os.readlink(link)
                if any(target.startswith(root.rstrip("/") + "/") for root in roots):
                    with contextlib.suppress(OSError):
                        os.unlink(link)
    for (project, name), path in wanted.items():
        with contextlib.suppress(OSError):
            folder = os.path.join(base, project)
            os.makedirs(folder, mode=0o755, exist_ok=True)
            link = os.path.join(folder, name)
            if os.path.islink(link):
                if os.readlink(link) == path:
                    continue
                os.unlink(link)
            os.symlink(path, link)


def docker_binds(mounts: Sequence[DatasetMount], home_in_container: str) -> dict[str, dict[str, str]]:
    """DockerSpawner ``volumes`` entries: each folder at ``<home>/datasets/<project>/<name>``, ro where granted."""
    return {
        m.path: {"bind": f"{home_in_container}/{DATASETS_FOLDER}/{m.project}/{m.name}", "mode": m.mode}
        for m in mounts
    }
