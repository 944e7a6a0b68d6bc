"""Run code inside a real user's server in local mode: as the server's uid, gid and groups, with its environment.

What a notebook of that user could do, this helper does: it reads the identity (``/proc/<pid>/status``), the
environment (``/proc/<pid>/environ``) and the working directory of the running server's process and starts
``python -c CODE`` with exactly those, and the umask the spawner sets. The code prints one JSON line as its result.
Attack tests (``tests/security/``) and the gateway tests use it, so what passes there is what a notebook sees.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerProcess:
    """Who a server's process runs as, and with what."""

    pid: int
    uid: int
    gid: int
    groups: list[int]
    environment: dict[str, str]
    cwd: str


def server_pid(platform, user: str, server: str = "") -> int:
    """The pid of the user's running server (the spawner's state in the hub's REST API)."""
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    r.raise_for_status()
    return r.json()["servers"][server]["state"]["pid"]


def server_process(pid: int) -> ServerProcess:
    """The identity, environment and working directory of process ``pid`` (read as root)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    uid = int(status["Uid"].split()[1])  # effective
    gid = int(status["Gid"].split()[1])
    groups = [int(g) for g in status["Groups"].split()]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    environment = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return ServerProcess(pid, uid, gid, groups, environment, os.readlink(f"/proc/{pid}/cwd"))


def _enter_mount_namespace_then_become(process: ServerProcess):
    """A ``preexec_fn``: join ``process``'s mount namespace (as root), then take its gid, groups and uid."""
    namespace = f"/proc/{process.pid}/ns/mnt"

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(namespace, os.O_RDONLY)
        try:
            if libc.setns(fd, 0x00020000) != 0:  # CLONE_NEWNS
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        os.chdir(process.cwd)
        os.setgid(process.gid)
        os.setgroups(process.groups)
        os.setuid(process.uid)
        os.umask(0o077)

    return enter


def run_inside(
    process: ServerProcess, code: str, timeout: float = 120, *, mount_namespace: bool = False
) -> subprocess.CompletedProcess:
    """Run ``code`` as ``process`` runs: same uid, gid, groups, environment and working directory; with
    ``mount_namespace``, also in its mount namespace (where the spawner may have mounted datasets read-only)."""
    if mount_namespace:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=process.environment,
            preexec_fn=_enter_mount_namespace_then_become(process),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=process.environment,
        cwd=process.cwd,
        user=process.uid,
        group=process.gid,
        extra_groups=process.groups,
        umask=0o077,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_inside_server(
    platform,
    user: str,
    code: str,
    server: str = "",
    timeout: float = 300,
    env: dict[str, str] | None = None,
    *,
    mount_namespace: bool = False,
) -> Any:
    """Run ``code`` inside ``user``'s running server (local mode); return the JSON of its last output line.

    ``env`` adds variables (e.g. the address to attack) to the server's own environment.
    """
    process = server_process(server_pid(platform, user, server))
    if env:
        process = dataclasses.replace(process, environment={**process.environment, **env})
    done = run_inside(process, code, timeout, mount_namespace=mount_namespace)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{platform.log_tail()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_as_user_server(platform, user: str, token: str, code: str, timeout: float = 300) -> Any:
    """``run_inside_server`` for the user's default server, spawned first (with ``token``) if it is not running."""
    if platform.server_model(user) is None:
        platform.spawn(user, token)
    return run_inside_server(platform, user, code, timeout=timeout)


ISOLATION_PRELUDE = """
import errno, json, os, signal, socket, sqlite3

def attempt(action):
    try:
        action()
    except OSError as e:
        return {"error": type(e).__name__, "errno": errno.errorcode.get(e.errno)}
    return {"error": None, "errno": None}

def read(path):
    with open(path, "rb") as f:
        f.read(1)
"""
"""What the isolation attacks evaluate their expressions with: ``attempt(action)`` answers the ``OSError`` an
action raised as ``{"error": <class>, "errno": <code>}`` (``{"error": None, "errno": None}``: it worked);
``read(path)`` opens a file and reads a byte of it."""

REFUSED = {"error": "PermissionError", "errno": "EACCES"}
"""``attempt``'s answer when the kernel refuses for lack of permission."""
NOT_PERMITTED = {"error": "PermissionError", "errno": "EPERM"}
"""``attempt``'s answer when the kernel refuses an operation (a signal, a set-id call) outright."""


def attempt_inside_server(platform, user: str, expression: str) -> dict:
    """Evaluate ``expression`` (an ``attempt(...)`` call, or a JSON-ready expression of several) inside ``user``'s
    running server, after ``ISOLATION_PRELUDE``; its outcome as printed JSON."""
    return run_inside_server(platform, user, ISOLATION_PRELUDE + f"\nprint(json.dumps({expression}))\n")
