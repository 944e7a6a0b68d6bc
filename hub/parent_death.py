"""Run a hub-managed service so that it ends when its hub ends, however the hub ends.

``python -S parent_death.py --parent PID -- COMMAND...`` (``guarded_command`` builds it) asks the kernel (``prctl(PR_SET_PDEATHSIG)``) to
send SIGTERM to this process when its parent dies, checks that the parent is still ``PID``, and then becomes
``COMMAND`` (``execvp``: same process, so the hub watches and stops it exactly as before).

Why: JupyterHub starts each managed service (platform service, Dask Gateway, idle culler) in a session of its own
and stops them when it shuts down cleanly. A hub that is killed (``kill -9``, out of memory, a crash) stops nothing:
its services were left running under init, and the restarted hub started a second idle culler beside the orphan,
both culling. With the parent-death signal the kernel ends them with the hub, whatever way it goes.

Rules this module guarantees:

* The signal is armed before ``COMMAND`` starts, and survives ``execve`` (Linux keeps it except for set-user-ID
  programs, which the services are not). If the parent died before it was armed, the parent is no longer ``PID``
  and the wrapper exits with status 1 instead of starting an orphan.
* JupyterHub starts managed services from its main thread (the kernel ties the signal to the thread that forked),
  so the signal comes when the hub process ends, not before.
* On a system without ``prctl`` (not Linux) the command runs unchanged and a line on stderr says it is unguarded.

Rejected alternatives: killing leftovers from the test harness only (the product would still orphan services); a
watchdog thread in each service polling ``getppid()`` (needs changes in third-party services such as the culler).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def guarded_command(command: Sequence[str], parent_pid: int | None = None) -> list[str]:
    """``command`` wrapped so that it ends when the process ``parent_pid`` (default: this one) ends."""
    parent = os.getpid() if parent_pid is None else parent_pid
    # This file by path with -S (no site): it needs the standard library only, so it starts in a few milliseconds
    # instead of loading the venv's site packages before the service loads them again.
    return [sys.executable, "-S", str(Path(__file__).resolve()), "--parent", str(parent), "--", *command]


def arm_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[0] != "--parent" or not args[1].isdigit() or args[2] != "--":
        print("usage: python -S parent_death.py --parent PID -- COMMAND...", file=sys.stderr)
        return 2
    parent, command = int(args[1]), args[3:]
    if arm_parent_death_signal():
        if os.getppid() != parent:
            print(
                f"polartep parent_death: the parent process {parent} has already ended; not starting {command[0]}",
                file=sys.stderr,
            )
            return 1
    else:
        print(f"polartep parent_death: no prctl here; {command[0]} may outlive its hub", file=sys.stderr)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"polartep parent_death: cannot start {command[0]}: {error}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
