"""Run attack code from inside a real user server: a process with that server's environment, user and home.

``run_inside(platform, user, code)`` finds the single-user server's process (the local spawner's ``pid`` in the
server's state, which the administrator's token may read), and runs ``python -c code`` with exactly that process's
environment (its ``JUPYTERHUB_API_TOKEN`` and every other variable a notebook sees), as the process's own uid and
gid, in its working directory, as a notebook cell's ``!python ...`` would. The code prints one JSON document as its
last line; that is returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def server_process(platform, user: str) -> int:
    """The PID of ``user``'s running default server (local mode)."""
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    r.raise_for_status()
    server = r.json()["servers"][""]
    return int(server["state"]["pid"])


def run_inside(
    platform, user: str, code: str, timeout: float = 300, env: dict[str, str] | None = None
) -> Any:
    """Run ``code`` as ``user``'s server would run a notebook's subprocess; its last output line, parsed as JSON."""
    pid = server_process(platform, user)
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    environ.update(env or {})
    owner = os.stat(f"/proc/{pid}")
    cwd = os.readlink(f"/proc/{pid}/cwd")
    switch = {} if owner.st_uid == os.getuid() else {"user": owner.st_uid, "group": owner.st_gid}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **switch,
    )
    assert result.returncode == 0, f"attack code failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
