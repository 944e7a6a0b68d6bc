"""System users for local mode: one Linux account per platform user, as The Littlest JupyterHub does.

Local mode with system users (the default when the platform runs as root) runs each user's server, kernels,
terminals and Dask processes as that user's own system account, so the kernel's file permissions and signal rules
keep users apart from each other and from the platform. This module creates, finds and removes those accounts; the
spawner (``local.py``) and the gateway backend (``gateway/backend.py``) both use it.

Rules it guarantees:

* The system user of platform user ``alice`` is ``<prefix>alice`` (prefix ``jupyter-`` by default, a setting so that
  platforms sharing a machine never share system users). Linux allows at most 32 characters: a longer name keeps as
  much of itself as fits and ends in ``-`` plus 8 hex digits of its SHA-256, so it stays unique and stable
  (``system_user_name``). Account names (``[a-z0-9._-]{1,64}``) are valid Linux names after a prefix that starts
  with a letter.
* An account is created on first need with ``useradd``: no login shell (``/usr/sbin/nologin``), no password (locked),
  its own group, and the comment ``polartep <platform name>``. Its home, ``<homes root>/<system user>``, is created
  mode 0700 and owned by it. The comment is checked every time the account is used: a system user that exists
  without naming this platform user (an operator's own ``jupyter-bob``, or a hashed long name that happens to
  collide) is never used, so two platform users can never share a uid.
* Removal (``delete_system_user``) kills every process still running under the account's uid, deletes the home (only
  a real folder strictly inside the homes root, never through a symbolic link) and then the account and its group.
  uid 0 and accounts without the platform's comment are never touched.
* Creation and removal are idempotent and safe when two processes (the hub and the gateway) race: the loser of a
  ``useradd`` race re-reads the account and checks it like any other.

Rejected: ``useradd --create-home`` (copies ``/etc/skel`` and uses login.defs' mode, 0755 on Debian); ``userdel -r``
(follows the home path as given, and also removes the mail spool); a shared group for all users (a group-readable
file of one user would be readable by all).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MAX_SYSTEM_USER_NAME = 32  # Linux (useradd) limit
HASH_DIGITS = 8
COMMENT_PREFIX = "polartep "  # GECOS: no colons
NO_LOGIN_SHELL = "/usr/sbin/nologin"
# A prefix must start with a letter (so that a name such as "-x" or "1" still gives a valid account name) and leave
# room for at least a few characters of the user's name plus the hash suffix.
PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,15}")

_create_lock = threading.Lock()


class SystemUserError(RuntimeError):
    """A system user cannot be created, used or removed; the message says why and what to do."""


@dataclass(frozen=True)
class SystemUser:
    """A platform user's Linux account."""

    name: str
    uid: int
    gid: int
    home: Path


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is usable; ``ValueError`` saying the rule otherwise."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"system_user_prefix must be 1-16 characters of a-z 0-9 _ -, starting with a letter; got {prefix!r}"
        )
    return prefix


def system_user_name(username: str, prefix: str) -> str:
    """The Linux account name of platform user ``username``: ``prefix + username``, at most 32 characters."""
    check_prefix(prefix)
    full = prefix + username
    if len(full) <= MAX_SYSTEM_USER_NAME:
        return full
    digest = hashlib.sha256(username.encode()).hexdigest()[:HASH_DIGITS]
    keep = MAX_SYSTEM_USER_NAME - len(prefix) - 1 - HASH_DIGITS
    return f"{prefix}{username[:keep]}-{digest}"


def comment_for(username: str) -> str:
    return COMMENT_PREFIX + username


def home_for(system_name: str, homes_root: str | Path) -> Path:
    return Path(homes_root) / system_name


def find_system_user(username: str, prefix: str, homes_root: str | Path) -> SystemUser | None:
    """The platform's account for ``username`` if it exists; ``SystemUserError`` if the name is someone else's."""
    name = system_user_name(username, prefix)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_gecos != comment_for(username) or entry.pw_uid == 0:
        raise SystemUserError(
            f"the system user {name!r} exists but was not created by the platform for {username!r} (its comment "
            f"is {entry.pw_gecos[:80]!r}); refusing to run anything as it. Remove or rename that account, or set "
            "another system_user_prefix (POLARTEP_SYSTEM_USER_PREFIX)."
        )
    home = home_for(name, homes_root)
    if Path(entry.pw_dir) != home:
        raise SystemUserError(
            f"the system user {name!r} has the home {entry.pw_dir!r}, not {str(home)!r}: it belongs to a platform "
            "with another homes_dir (POLARTEP_HOMES_DIR)"
        )
    return SystemUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=home)


def make_shared_root(path: Path) -> None:
    """``path`` exists; created 0711 (enterable, not listable) when missing. An existing folder (``/home``) keeps
    its mode, but one that others may write to is refused: a user could plant a link where a home will be made."""
    if path.is_symlink():
        raise SystemUserError(f"{path} is a symbolic link; give the real folder instead")
    if not path.exists():
        path.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(path, 0o711)  # mkdir's mode is filtered by the umask (077 in the hub)
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise SystemUserError(
            f"{path} is writable by other users (mode {oct(stat.S_IMODE(mode))}): chmod go-w it"
        )


def _make_home(user: SystemUser) -> None:
    """Create the home 0700 owned by the user, or bring an existing one back to that (never through a symlink)."""
    make_shared_root(user.home.parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(user.home, 0o700)
    fd = os.open(user.home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def ensure_system_user(username: str, prefix: str, homes_root: str | Path) -> SystemUser:
    """The platform's account for ``username`` with its home (0700, its own), created if needed (needs root)."""
    existing = find_system_user(username, prefix, homes_root)
    if existing is None:
        name = system_user_name(username, prefix)
        home = home_for(name, homes_root)
        with _create_lock:
            existing = find_system_user(username, prefix, homes_root)
            if existing is None:
                done = subprocess.run(
                    [
                        "useradd",
                        "--no-create-home",
                        "--home-dir",
                        str(home),
                        "--shell",
                        NO_LOGIN_SHELL,
                        "--comment",
                        comment_for(username),
                        "--user-group",
                        name,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                # Another process (the gateway, a second hub spawner) may have created it a moment earlier.
                existing = find_system_user(username, prefix, homes_root)
                if existing is None:
                    raise SystemUserError(
                        f"could not create the system user {name!r} for {username!r}: useradd exited "
                        f"{done.returncode}: {done.stderr.strip()[:300]}"
                    )
    _make_home(existing)
    return existing


def processes_of(uid: int) -> list[int]:
    """Process ids whose real or effective uid is ``uid`` (zombies excluded: they hold nothing any more)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(
                line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line
            )
            if fields["State"].split()[0] == "Z":
                continue  # already dead, waiting for its parent to reap it
            real, effective = (int(v) for v in fields["Uid"].split()[:2])
            if uid in (real, effective):
                found.append(int(entry.name))
        except (OSError, ValueError, KeyError):
            continue
    return found


def kill_processes_of(uid: int, within: float = 10) -> None:
    """SIGKILL every process of ``uid`` until none is left (a process may fork while we look)."""
    if uid == 0:
        raise SystemUserError("refusing to kill the processes of uid 0")
    deadline = time.monotonic() + within
    while pids := processes_of(uid):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise SystemUserError(f"processes {pids[:10]} of uid {uid} did not end within {within:.0f} s")
        time.sleep(0.05)


def safe_home_to_delete(home: Path, homes_root: str | Path) -> Path | None:
    """``home`` if it may be deleted: a real folder strictly inside ``homes_root``; None if absent.

    ``ValueError`` for anything else (a symlink, a path outside the root, the root itself), so a name that points
    elsewhere can never delete someone else's files.
    """
    root = Path(homes_root).resolve()
    if not home.is_absolute() or ".." in home.parts:
        raise ValueError("the home path must be absolute and contain no '..'")
    if home.is_symlink():
        raise ValueError("the home is a symbolic link; refusing to follow it")
    resolved = home.resolve()
    if resolved == root or root not in resolved.parents:
        raise ValueError(f"the home is not strictly inside the homes root {root}")
    if not resolved.exists():
        return None
    if not resolved.is_dir():
        raise ValueError("the home is not a folder")
    return resolved


def delete_system_user(username: str, prefix: str, homes_root: str | Path) -> bool:
    """Remove the platform's account for ``username``: its processes, its home, the account. False if absent."""
    user = find_system_user(username, prefix, homes_root)
    if user is None:
        return False
    kill_processes_of(user.uid)
    home = safe_home_to_delete(user.home, homes_root)
    if home is not None:
        shutil.rmtree(home)  # removes symlinks inside without following them (fd-based on Linux)
    done = subprocess.run(["userdel", user.name], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemUserError(
            f"could not remove the system user {user.name!r}: userdel exited {done.returncode}: "
            f"{done.stderr.strip()[:300]}"
        )
    return True


def system_users_with_prefix(prefix: str) -> list[str]:
    """Names of the platform-made accounts (comment ``polartep ...``) whose name starts with ``prefix``."""
    return [
        entry.pw_name
        for entry in pwd.getpwall()
        if entry.pw_name.startswith(prefix) and entry.pw_gecos.startswith(COMMENT_PREFIX)
    ]
