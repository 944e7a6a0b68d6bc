"""Shared by several test modules (moved from ``tests/hub/test_spawn_profiles.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from polartep_hub.settings import REPO_ROOT


def server_state(platform, user: str, server: str = "") -> dict:
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    return r.json()["servers"][server]["state"]


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def run_example_notebook(
    platform, user: str, notebook: str, workdir: Path, parameters: dict[str, str]
) -> subprocess.CompletedProcess:
    """papermill runs ``notebooks/<notebook>`` in ``workdir`` with the environment (variables, token) of ``user``'s
    running default server, as a notebook in that server would run; string ``parameters`` given with ``-p``."""
    options = [arg for name, value in parameters.items() for arg in ("-p", name, value)]
    env = process_environment(server_state(platform, user)["pid"])
    # papermill runs as root with the user's HOME: keep its IPython, Jupyter runtime and cache files out of that
    # home, where root-owned folders would make the user's next server fail (PermissionError on its secrets).
    for variable, folder in (("IPYTHONDIR", ".ipython"), ("JUPYTER_RUNTIME_DIR", ".runtime"),
                             ("XDG_CACHE_HOME", ".cache"), ("MPLCONFIGDIR", ".matplotlib")):  # fmt: skip
        env[variable] = str(workdir / folder)
    # Fatal-signal stack dumps in papermill and its kernel (they inherit the variable): a run past its limit is
    # sent SIGABRT below, so its output says where every thread of both processes waited.
    env["PYTHONFAULTHANDLER"] = "1"
    command = [
        # A cell's own limit below the run's: a cell that hangs (results-dashboard did, in three full runs, never
        # alone) fails naming itself instead of the whole run timing out silently.
        sys.executable, "-m", "papermill", "--no-progress-bar", "--log-level", "WARNING", "-k", "python3",
        "--execution-timeout", "240",
        "--cwd", str(workdir), str(REPO_ROOT / "notebooks" / notebook), str(workdir / "out.ipynb"), *options,
    ]  # fmt: skip
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            stacks = dump_stacks_and_kill(run)
            raise AssertionError(
                f"papermill ran past 300 s on {notebook}; the stacks of its processes:\n{stacks}"
            ) from None
    return subprocess.CompletedProcess(command, run.returncode, stdout, stderr)


def dump_stacks_and_kill(run: subprocess.Popen) -> str:
    """Send SIGABRT to ``run`` and every process below it (papermill and its kernel, which jupyter_client starts in
    a session of its own; ``PYTHONFAULTHANDLER`` is set), so each prints every thread's stack; return the output."""
    for pid in [run.pid, *descendants(run.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGABRT)
    try:
        stdout, stderr = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        run.kill()
        stdout, stderr = run.communicate()
    return f"{stderr[-20000:]}\n--- stdout ---\n{stdout[-4000:]}"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in map(int, children.read_text().split()):
                found += [child, *descendants(child)]
    return found


def put_file(platform, user: str, token: str, path: str, content: str, server: str = "") -> None:
    """Write a text file into the user's (named) server through the Jupyter contents API."""
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    r = platform.api(
        "PUT",
        f"{prefix}api/contents/{path}",
        token,
        json={"type": "file", "format": "text", "content": content},
    )
    assert r.status_code in (200, 201), r.text
