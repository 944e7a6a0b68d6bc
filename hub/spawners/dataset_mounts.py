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

Over quota (``data/metering.py``): a dataset of the user's own project whose storage class is over its paying
owner's quota comes as ``ro`` with a ``reason``. Docker mounts it read-only; local mode gives the read-only group
and, because files the user made there stay writable to their owner, also mounts the folder read-only in a mount
namespace of the server's own (``mount_read_only``). The spawn page shows the reason (``ProfileSpawnerMixin``).
"""

from __future__ import annotations

import contextlib
import ctypes
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
    reason: str | None = None  # read-only because the dataset's storage is over quota (the service says why)

    @classmethod
    def from_json(cls, item: dict) -> DatasetMount:
        return cls(
            project=str(item["project"]),
            name=str(item["name"]),
            mode="rw" if item.get("mode") == "rw" else "ro",
            path=str(item["path"]),
            gid=int(item["gid"]) if item.get("gid") is not None else None,
            reason=str(item["reason"]) if item.get("reason") else None,
        )


# <sys/mount.h> and <sched.h>
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def mount_read_only(paths: Sequence[str]) -> Callable[[], None]:
    """A ``preexec_fn`` part (as root, before the user switch) that gives the server's process a mount namespace of
    its own in which each of ``paths`` is a read-only bind mount of itself, or fails (the spawn fails: never run
    writable what must not be).

    Why: a dataset whose storage is over quota is given with its read-only group instead of its read-write one, but
    files and folders the user made in it are the user's own, and an owner may write them whatever their group.
    A read-only mount refuses every write, the owner's too. Nothing is mounted outside the server's namespace."""
    wanted = [os.fsencode(path) for path in paths]

    def remount() -> None:
        if not wanted:
            return
        libc = ctypes.CDLL(None, use_errno=True)

        def check(result: int, what: str) -> None:
            if result != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"{what}: {os.strerror(error)}")

        check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        # Private first: the bind mounts below must never propagate back to the host's namespace.
        check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
        for path in wanted:
            check(libc.mount(path, path, None, _MS_BIND | _MS_REC, None), f"bind {path!r}")
            check(
                libc.mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None), f"read-only {path!r}"
            )

    return remount


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
