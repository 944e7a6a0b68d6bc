"""A running platform logs cleanly, and its managed services never outlive its hub.

* Login through the hub's form, a spawn and a stop leave no ``--- Logging error ---`` and no traceback in the
  hub's log (which holds the hub's, the platform service's, the gateway's and the culler's output).
* ``kill -9`` of the hub ends its managed services (platform service, Dask Gateway, idle culler) and its server
  launcher within seconds; the restarted hub then runs exactly one idle culler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import ADMIN_PASSWORD, RunningPlatform, wait_for
from tests.helpers.browser_session import logged_in_session

pytestmark = pytest.mark.hub

SERVICE_NAMES = {"platform", "dask-gateway", "idle-culler"}


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("processes")).running() as running:
        yield running


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by init has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def managed_services(platform: RunningPlatform) -> dict[int, str]:
    """pid -> service name of every process that runs as a managed service of this platform's hub, wherever its
    parent is (an orphan counts too): JupyterHub gives each its name and this hub's API URL."""
    api_url = f"http://127.0.0.1:{platform.settings.hub_port}/hub/api"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        try:
            environ = _environ(int(entry.name))
        except OSError:
            continue
        name = environ.get("JUPYTERHUB_SERVICE_NAME")
        if name in SERVICE_NAMES and environ.get("JUPYTERHUB_API_URL", "").startswith(api_url):
            found[int(entry.name)] = name
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _log_problems(log: str) -> list[str]:
    lines = log.splitlines()
    return [
        "\n".join(lines[max(0, i - 3) : i + 12])
        for i, line in enumerate(lines)
        if "Logging error" in line or "Traceback" in line
    ]


def test_login_spawn_and_stop_log_no_logging_error_and_no_traceback(own_platform):
    with logged_in_session(own_platform, "admin", ADMIN_PASSWORD) as browser:
        assert browser.get(f"{own_platform.url}/hub/home").status_code == 200
        assert browser.get(f"{own_platform.url}/services/platform/account").status_code == 200
    token = own_platform.create_user("quiet", plan="trial")
    own_platform.spawn("quiet", token, {"profile": "interactive"})
    own_platform.stop_server("quiet")

    log = own_platform.hub_log.read_text(errors="replace")
    problems = _log_problems(log)
    assert not problems, f"{len(problems)} logging errors or tracebacks; the first:\n{problems[0]}"
    # The hub's own lines are there (a broken formatter drops them and prints the error instead).
    assert "JupyterHub is now running" in log
    assert "Adding user quiet to proxy" in log


def launchers_of(hub_pid: int) -> list[int]:
    """The hub's pre-imported launcher processes (``spawners/launcher.py``; one once a server was spawned)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            try:
                if (
                    _parent(int(entry.name)) == hub_pid
                    and b"spawners.launcher" in (entry / "cmdline").read_bytes()
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_hub_takes_its_managed_services_along_and_a_restart_runs_one_culler(own_platform):
    hub = own_platform.hub_process
    before = managed_services(own_platform)  # with their children (the gateway runs its own proxy)
    children = {pid: name for pid, name in before.items() if _parent(pid) == hub.pid}
    assert sorted(children.values()) == sorted(SERVICE_NAMES)
    if not launchers_of(hub.pid):
        token = own_platform.create_user("launched", plan="trial")
        own_platform.spawn("launched", token)
        own_platform.stop_server("launched")
    launchers = launchers_of(hub.pid)
    assert len(launchers) == 1, launchers

    hub.kill()  # SIGKILL: the hub cannot stop anything itself
    hub.wait()
    wait_for(
        lambda: not any(_alive(pid) for pid in [*before, *launchers]),
        15,
        what=f"the managed services {before} and the launcher {launchers} to end with their killed hub",
    )
    assert managed_services(own_platform) == {}

    own_platform.start_hub()
    new_hub = own_platform.hub_process.pid

    def hub_children() -> dict[int, str]:
        return {pid: name for pid, name in managed_services(own_platform).items() if _parent(pid) == new_hub}

    # The hub starts the culler last, after the services the harness waits for.
    children = wait_for(
        lambda: (found := hub_children()) and sorted(found.values()) == sorted(SERVICE_NAMES) and found,
        30,
        what="the restarted hub's managed services",
    )
    assert sorted(children.values()) == sorted(SERVICE_NAMES)
    after = managed_services(own_platform)
    assert list(after.values()).count("idle-culler") == 1
    assert not set(after) & set(before)

    problems = _log_problems(own_platform.hub_log.read_text(errors="replace"))
    assert not problems, f"{len(problems)} logging errors or tracebacks; the first:\n{problems[0]}"
