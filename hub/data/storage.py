"""Where datasets' files live: one root folder per storage class, one opaque folder per dataset, and who may enter it.

Rules this module guarantees:

* **Roots.** Each storage class of the catalogue (``ssd``, ``hdd``, ``object``) has one root folder
  (``StorageRoots``): ``POLARTEP_DATASET_ROOTS`` names them (``ssd=/fast,hdd=/bulk``), and a class not named there
  lies at ``<datasets_dir>/<class>``. A root is created mode 0711 (enterable, not listable) and owned by the
  platform; a root that is a symbolic link or writable by others is refused.
* **Folders.** A dataset's folder is ``<root of its class>/<storage key>``, the key 32 random hex digits kept in the
  database: the path says nothing about the project or the name, and nobody who cannot list the root can find it.
  Every path is built from the key alone (never from user input) and checked to lie strictly inside its root after
  resolving it (``Path.parents``, never ``str.startswith``); a folder that is a symbolic link is never used.
* **Permissions (local mode with system users).** Each dataset has two system groups, ``<prefix>ds<id>-rw`` (the
  owning project's members) and ``<prefix>ds<id>-ro`` (members of projects granted read access). The folder is
  owned by root with group ``-rw``, mode 2770, and carries POSIX ACLs (access and default) giving ``-ro`` read and
  enter only. Default ACLs are needed because users' servers run with umask 077: without them a file one member
  writes would be unreadable to the others; with them every new file and folder inherits group read-write for
  members and read for granted projects, whatever the umask. Nobody is added to these groups in ``/etc/group``:
  the spawner gives a server's processes the gids it may use for that spawn (``os.setgroups``), so a revocation
  takes effect at the next spawn and nothing else ever carries the group.
* **Docker and Swarm modes**: folders are 0700 and owned by the containers' user (1000:1000); a container gets a
  folder only as a bind mount, read-only for granted projects (``spawners/dataset_mounts.docker_binds``).
* **Without system users** (single-user local mode) folders are 0700 and the platform's own.
* ``dataset_bytes`` counts the bytes of a dataset's folder without following symbolic links.
* **The object class on an S3-compatible endpoint.** When an object store is configured (``StorageRoots.objects``),
  datasets of the ``object`` class have no folder: they live under their own prefix in the bucket
  (``object_store.py``), ``create_folder`` only checks that the bucket answers, ``remove_folder`` deletes the prefix,
  ``dataset_bytes`` sums it, and nothing of them is mounted. Without one (the embedded default) the object class is
  a folder root like the others.

ACLs are written as the kernel's ``system.posix_acl_*`` extended attributes (the format of ``acl_xattr.h``), so no
``setfacl`` binary is needed. Rejected: a group per project (a dataset's read-only readers would need a second
folder); mode bits alone (one group per folder: rw members and ro readers cannot both be expressed, and umask 077
would hide members' files from each other).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import secrets
import shutil
import stat
import struct
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polartep_hub.data.object_store import OBJECT_CLASS, ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)
_group_lock = threading.Lock()

# acl_xattr.h: version 2, entries of (tag u16, permissions u16, id u32), little-endian.
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x01, 0x04, 0x08, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF
MAX_GROUP_NAME = 32
# The user servers run as in the images (images/*/Dockerfile; DockerProfileSpawner.container_user).
CONTAINER_OWNER = (1000, 1000)


class StorageError(RuntimeError):
    """A dataset folder cannot be made, found or removed; the message says why (for the operator)."""


@dataclass(frozen=True)
class StorageRoots:
    """The root folder of each storage class, and the system-user prefix when users are system users."""

    roots: Mapping[str, Path]
    group_prefix: str = ""  # "" without system users: folders are the platform's own (0700)
    # Docker and Swarm modes: the uid:gid servers run as in their containers (the images' user, 1000:1000), who
    # owns every dataset folder; which container sees which folder, and read-only or not, is the mounts' business.
    container_owner: tuple[int, int] | None = None
    # The S3-compatible store that holds the object class's datasets; None: the object class is a folder root.
    objects: ObjectStore | None = None

    def in_object_store(self, storage_class: str) -> bool:
        """Whether datasets of ``storage_class`` live in the object store (no folder, no mount)."""
        return self.objects is not None and storage_class == OBJECT_CLASS

    @classmethod
    def from_settings(
        cls,
        classes: list[str],
        datasets_dir: str,
        overrides: str = "",
        group_prefix: str = "",
        container_owner: tuple[int, int] | None = None,
        objects: ObjectStore | None = None,
    ) -> StorageRoots:
        """Roots for ``classes``: ``overrides`` (``class=path,...``) first, then ``<datasets_dir>/<class>``."""
        named = parse_roots(overrides, classes)
        roots = {c: named.get(c, Path(datasets_dir) / c) for c in classes}
        return cls(
            roots={c: Path(os.path.abspath(p)) for c, p in roots.items()},
            group_prefix=group_prefix,
            container_owner=container_owner,
            objects=objects,
        )

    def root(self, storage_class: str) -> Path:
        try:
            return self.roots[storage_class]
        except KeyError:
            raise StorageError(f"unknown storage class {storage_class!r}") from None

    def folder(self, storage_class: str, storage_key: str) -> Path:
        """The dataset folder for ``storage_key`` in ``storage_class``'s root, checked to lie strictly inside it."""
        if not (len(storage_key) == 32 and all(c in "0123456789abcdef" for c in storage_key)):
            raise StorageError("a storage key is 32 lower-case hex digits")
        root = self.root(storage_class)
        folder = root / storage_key
        resolved_root = root.resolve()
        resolved = folder.resolve()
        if resolved.parent != resolved_root or resolved_root not in resolved.parents:
            raise StorageError(f"the dataset folder {folder} does not lie directly inside its root {root}")
        return folder


def parse_roots(text: str, classes: list[str]) -> dict[str, Path]:
    """``class=path,class=path`` as a mapping; ``ValueError`` naming what is wrong (unknown class, relative path)."""
    found: dict[str, Path] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, path = part.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"{part[:80]!r}: write class=/absolute/path")
        if name not in classes:
            raise ValueError(f"{name[:40]!r} is not a storage class of the catalogue ({', '.join(classes)})")
        if not os.path.isabs(path):
            raise ValueError(f"{name}: {path[:200]!r} is not an absolute path")
        found[name] = Path(path)
    return found


def new_storage_key() -> str:
    return secrets.token_hex(16)


def group_names(prefix: str, dataset_id: int) -> tuple[str, str]:
    """The read-write and read-only system groups of a dataset."""
    rw, ro = f"{prefix}ds{dataset_id}-rw", f"{prefix}ds{dataset_id}-ro"
    if len(rw) > MAX_GROUP_NAME:
        raise StorageError(f"group name {rw!r} is longer than {MAX_GROUP_NAME} characters")
    return rw, ro


def group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def ensure_group(name: str) -> int:
    """The gid of system group ``name``, created when missing. A *user* of that name (whose private group this
    would be) is refused, so a dataset group can never be someone's own group."""
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        raise StorageError(f"a system user named {name!r} exists; its group cannot be a dataset's group")
    with _group_lock:
        gid = group_id(name)
        if gid is not None:
            return gid
        done = subprocess.run(["groupadd", name], capture_output=True, text=True, check=False)
        gid = group_id(name)
        if gid is None:
            raise StorageError(f"groupadd {name} exited {done.returncode}: {done.stderr.strip()[:300]}")
        return gid


def delete_group(name: str) -> None:
    if group_id(name) is not None:
        subprocess.run(["groupdel", name], capture_output=True, text=True, check=False)


def _acl(rw_perms: int, ro_gid: int | None) -> bytes:
    entries = [(_ACL_USER_OBJ, 7, _ACL_UNDEFINED_ID), (_ACL_GROUP_OBJ, rw_perms, _ACL_UNDEFINED_ID)]
    if ro_gid is not None:
        entries.append((_ACL_GROUP, 5, ro_gid))
    entries += [(_ACL_MASK, 7, _ACL_UNDEFINED_ID), (_ACL_OTHER, 0, _ACL_UNDEFINED_ID)]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _make_root(root: Path) -> None:
    if root.is_symlink():
        raise StorageError(f"the storage root {root} is a symbolic link; give the real folder instead")
    missing = [folder for folder in (root, *root.parents) if not folder.exists()]
    for folder in reversed(missing):  # each folder made here is enterable, not listable (the umask is 077)
        folder.mkdir(mode=0o711, exist_ok=True)
        os.chmod(folder, 0o711)
    mode = root.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StorageError(f"the storage root {root} is writable by others (mode {oct(stat.S_IMODE(mode))})")
    os.chmod(root, 0o711)


def create_folder(roots: StorageRoots, storage_class: str, storage_key: str, dataset_id: int) -> Path:
    """Make the dataset's folder with its groups and ACLs (see the module docstring); returns its path. In the
    object store there is nothing to make: the bucket must answer, and the prefix exists once an object is put."""
    if roots.in_object_store(storage_class):
        try:
            roots.objects.check_reachable()  # type: ignore[union-attr]
        except ObjectStoreError as error:
            raise StorageError(str(error)) from None
        return Path(roots.objects.prefix(storage_key))  # type: ignore[union-attr]
    _make_root(roots.root(storage_class))
    folder = roots.folder(storage_class, storage_key)
    os.mkdir(folder, 0o700)  # FileExistsError for a key that is somehow taken: never reuse a folder
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if roots.group_prefix:
            rw, ro = group_names(roots.group_prefix, dataset_id)
            rw_gid, ro_gid = ensure_group(rw), ensure_group(ro)
            os.fchown(fd, 0, rw_gid)
            os.fchmod(fd, 0o2770)
            path = f"/proc/self/fd/{fd}"
            os.setxattr(path, "system.posix_acl_access", _acl(7, ro_gid))
            os.setxattr(path, "system.posix_acl_default", _acl(7, ro_gid))
        elif roots.container_owner is not None:
            os.fchown(fd, *roots.container_owner)
            os.fchmod(fd, 0o700)
        else:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return folder


def remove_folder(roots: StorageRoots, storage_class: str, storage_key: str, dataset_id: int) -> None:
    """Delete the dataset's folder (never through a symbolic link) and its groups, or its prefix in the object
    store; absent parts are skipped."""
    if roots.in_object_store(storage_class):
        try:
            roots.objects.delete_prefix(storage_key)  # type: ignore[union-attr]
        except ObjectStoreError as error:
            raise StorageError(str(error)) from None
        return
    folder = roots.folder(storage_class, storage_key)
    if folder.is_symlink():
        raise StorageError(f"{folder} is a symbolic link; refusing to follow it")
    if folder.exists():
        shutil.rmtree(folder)  # removes links inside without following them
    if roots.group_prefix:
        for name in group_names(roots.group_prefix, dataset_id):
            delete_group(name)


def dataset_gids(roots: StorageRoots, dataset_id: int, mode: str) -> int | None:
    """The gid a server needs to use a dataset with ``mode`` (``rw`` or ``ro``); None without system users."""
    if not roots.group_prefix:
        return None
    rw, ro = group_names(roots.group_prefix, dataset_id)
    return group_id(rw if mode == "rw" else ro)


def dataset_bytes(roots: StorageRoots, storage_class: str, storage_key: str) -> int:
    """Bytes a dataset holds: its folder's files, or its objects in the object store (``StorageError`` when the
    store does not answer)."""
    if roots.in_object_store(storage_class):
        try:
            return roots.objects.prefix_bytes(storage_key)  # type: ignore[union-attr]
        except ObjectStoreError as error:
            raise StorageError(str(error)) from None
    return folder_bytes(roots.folder(storage_class, storage_key))


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symbolic links are not followed, not counted)."""
    total = 0
    stack = [str(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def sweep_orphans(roots: StorageRoots, keys_in_use: set[str], ids_in_use: set[int]) -> list[str]:
    """Remove dataset folders whose key no row holds and dataset groups of ids no row holds; returns what went.

    Rows go without their folders when a project is deleted (the database cascades) or when a crash falls between a
    deletion's commit and its folder's removal. Only entries that look like the platform's own are touched: 32-hex
    folders directly in a root (never through a symbolic link) and groups named ``<prefix>ds<id>-rw|-ro``. Run it
    only while no dataset is being created (the service does at start-up, before it answers), since a new dataset's
    folder exists a moment before its row is committed.
    """
    removed: list[str] = []
    if roots.objects is not None:
        try:
            removed += roots.objects.sweep(keys_in_use)
        except ObjectStoreError as error:
            # A store that is down at start-up must not keep the service from starting; the next start sweeps.
            log.error("could not sweep the object store's dataset prefixes: %s", error)
    for storage_class, root in roots.roots.items():
        if root.is_symlink() or not root.is_dir():
            continue
        for entry in os.scandir(root):
            name = entry.name
            if name in keys_in_use or len(name) != 32 or any(c not in "0123456789abcdef" for c in name):
                continue
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            remove_folder(StorageRoots(roots={storage_class: root}), storage_class, name, -1)
            removed.append(str(root / name))
    if roots.group_prefix:
        stem = f"{roots.group_prefix}ds"
        for group in grp.getgrall():
            rest = group.gr_name.removeprefix(stem)
            if rest == group.gr_name or not rest.endswith(("-rw", "-ro")) or not rest[:-3].isdigit():
                continue
            if int(rest[:-3]) not in ids_in_use:
                delete_group(group.gr_name)
                removed.append(group.gr_name)
    return removed
