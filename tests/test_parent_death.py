"""``parent_death.py``: a guarded command ends when its parent process ends, even when the parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from polartep_hub.parent_death import guarded_command, main
from tests.harness import wait_for


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_guarded_command_ends_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    # The parent starts the guarded child the way JupyterHub starts a managed service, then waits forever.
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from polartep_hub.parent_death import guarded_command
        child = subprocess.Popen(guarded_command(
            [sys.executable, "-c", "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"]
        ), start_new_session=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        child_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, what="the child"))
        assert not _gone(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: _gone(child_pid), 10, what=f"the guarded child {child_pid} to end with its parent")
    finally:
        parent.kill()
        parent.wait()
        if pid_file.exists() and not _gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_guarded_command_is_the_same_process_as_the_wrapper(tmp_path):
    """``execvp``: the hub's process handle is the service itself (its exit status, its signals)."""
    process = subprocess.Popen(
        guarded_command([sys.executable, "-c", "import os, sys; print(os.getpid()); sys.exit(7)"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = process.communicate(timeout=30)
    assert (int(out.strip()), process.returncode) == (process.pid, 7)


def test_the_command_is_not_started_when_the_parent_is_already_gone(capsys):
    # Our parent is not PID 1 (pytest runs under a shell or a runner), so "parent 1" stands for a dead parent.
    assert os.getppid() != 1
    started = time.monotonic()
    assert main(["--parent", "1", "--", "sleep", "30"]) == 1
    assert time.monotonic() - started < 5
    assert "has already ended; not starting sleep" in capsys.readouterr().err


def test_bad_arguments_are_refused_with_the_usage(capsys):
    assert main(["sleep", "1"]) == 2
    assert "usage: python -S parent_death.py --parent PID -- COMMAND" in capsys.readouterr().err
