"""Shared by several test modules (moved from ``tests/hub/test_spawn_profiles.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
    # A run that outlives its limit says where it waited: papermill dumps its threads' stacks on SIGABRT (to the stderr
    # read here), the kernel on SIGUSR1 to a file (its own stderr is a pipe that its output thread forwards to
    # papermill, and that thread is one of those that may be stuck), registered by a startup file of its IPYTHONDIR.
    env["PYTHONFAULTHANDLER"] = "1"
    kernel_stacks = workdir / "kernel-stacks.txt"
    startup = workdir / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-stacks-on-sigusr1.py").write_text(KERNEL_STACKS_ON_SIGUSR1.format(path=str(kernel_stacks)))
    command = [
        # papermill as the platform's runs use it: kernel replies are waited for in slices (hub/kernel_replies.py;
        # without it the results dashboard's widget cell waited out its whole limit in about one run of three). A
        # cell's own limit below the run's: a cell that hangs fails naming itself instead of the run timing out.
        sys.executable, "-m", "polartep_hub.kernel_replies", "papermill",
        "--no-progress-bar", "--log-level", "WARNING", "-k", "python3",
        "--execution-timeout", "240", "--cwd", str(workdir),
        str(REPO_ROOT / "notebooks" / notebook), str(workdir / "out.ipynb"), *options,
    ]  # fmt: skip
    with subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            stdout, stderr = _abort_with_stacks(run)
            kernel = (
                kernel_stacks.read_text() if kernel_stacks.exists() else "(none: the kernel had not started)"
            )
            raise AssertionError(
                f"papermill ran {notebook} past 300 s. The kernel's stacks at that moment:\n{kernel[-12000:]}\n"
                f"--- papermill's stderr (its stacks last) ---\n{stderr[-12000:]}\n--- stdout ---\n{stdout[-2000:]}"
            ) from None
    return subprocess.CompletedProcess(command, run.returncode, stdout, stderr)


KERNEL_STACKS_ON_SIGUSR1 = """
def _stacks_on_sigusr1():  # a function, so that the notebook's namespace gets no names from this file
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, file=open({path!r}, "w"), all_threads=True)


_stacks_on_sigusr1()
del _stacks_on_sigusr1
"""


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (the kernel runs in a session of its own, so its process group is not papermill's)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                # The parent is the 2nd field after the command name, which may hold spaces: read after its ")".
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _abort_with_stacks(run: subprocess.Popen) -> tuple[str, str]:
    """SIGUSR1 to the processes below papermill (the kernel writes its stacks to its file), SIGABRT to papermill (it
    dumps its stacks and ends), then SIGKILL to those below (they hold papermill's output pipes open) and to papermill
    if it is still there; returns papermill's output."""
    below = _descendants(run.pid)
    for pid in below:
        _signal(pid, signal.SIGUSR1)
    time.sleep(2)  # the kernel's dump is written by its signal handler: a moment
    _signal(run.pid, signal.SIGABRT)
    time.sleep(2)
    for pid in below:
        _signal(pid, signal.SIGKILL)
    try:
        return run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _signal(run.pid, signal.SIGKILL)
        return run.communicate()


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


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
