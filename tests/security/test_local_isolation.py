"""Attacks from inside a real user server in local mode (the embedded default, as root): each must fail.

The attacker is an approved user with a running server; every attempt runs as that server's process runs (its
system user's uid, gid and groups, its environment: ``tests/helpers/inside_server.py``), which is what a notebook or
a terminal of that user can do. The victim is another user with a running server, a file in their home and a Dask
cluster with a worker. Each test names what it attempts and asserts the exact error the kernel answers.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.inside_server import (
    NOT_PERMITTED,
    REFUSED,
    attempt_inside_server,
    run_inside_server,
    server_pid,
    server_process,
)

pytestmark = pytest.mark.hub

DOCKER_SOCKET = Path("/var/run/docker.sock")

# Every secret and database the platform keeps in its state folder (local mode, SQLite).
STATE_SECRETS = [
    "admin-password",
    "proxy-auth-token",
    "hub-service-token",
    "jupyterhub_cookie_secret",
    "dask-gateway-encrypt-key",
    "platform.sqlite",
    "jupyterhub.sqlite",
    "dask-gateway.sqlite",
    "dask_gateway_config.py",
]


def gateway_api(platform, method: str, path: str, token: str, **kwargs):
    headers = {"Authorization": f"jupyterhub {token}"}
    return platform.api(method, "/services/dask-gateway/api/v1/" + path, headers=headers, **kwargs)


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working directory is ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def scene(platform):
    """An attacker and a victim, both with running servers; the victim has a file and a cluster with a worker."""
    attacker, victim = f"mallory{os.getpid()}", f"victim{os.getpid()}"
    attacker_token = platform.create_user(attacker, plan="trial")
    victim_token = platform.create_user(victim, plan="trial")
    platform.spawn(attacker, attacker_token)
    platform.spawn(victim, victim_token)
    r = platform.api(
        "PUT",
        f"/user/{victim}/api/contents/private.txt",
        victim_token,
        json={"type": "file", "format": "text", "content": "the victim's unpublished results"},
    )
    assert r.status_code == 201, r.text
    r = gateway_api(platform, "POST", "clusters/", victim_token, json={"cluster_options": {}})
    assert r.status_code == 201, r.text
    cluster = r.json()["name"]
    workdir = Path(platform.settings.dask_clusters_dir) / cluster
    wait_for(
        lambda: (
            gateway_api(platform, "GET", f"clusters/{cluster}", victim_token).json()["status"] == "RUNNING"
        ),
        90,
        interval=0.5,
        what="the victim's cluster to run",
    )
    scaled = gateway_api(platform, "POST", f"clusters/{cluster}/scale", victim_token, json={"count": 1})
    assert scaled.status_code == 200, scaled.text
    # The scheduler and one worker run in the cluster's working directory.
    pids = wait_for(
        lambda: len(processes_in(workdir)) >= 2 and processes_in(workdir), 90, what="scheduler+worker"
    )
    try:
        yield {
            "attacker": attacker,
            "victim": victim,
            "victim_home": platform.home_of(victim),
            "victim_server": server_pid(platform, victim),
            "cluster_workdir": workdir,
            "cluster_pids": pids,
            "victim_token": victim_token,
        }
    finally:
        gateway_api(platform, "DELETE", f"clusters/{cluster}", victim_token)
        platform.stop_server(attacker)
        platform.stop_server(victim)


def test_the_attacker_runs_as_their_own_unprivileged_system_user(platform, scene):
    process = server_process(server_pid(platform, scene["attacker"]))
    assert process.uid != 0 and process.gid != 0 and 0 not in process.groups
    assert process.uid != server_process(scene["victim_server"]).uid
    assert process.environment["HOME"] == str(platform.home_of(scene["attacker"]))
    assert "--allow-root" not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()


def test_reading_any_secret_or_database_in_the_state_folder_is_refused(platform, scene):
    state = platform.settings.state_path
    files = sorted(str(path) for path in state.rglob("*") if path.is_file())
    # The harness passes the admin password in the environment, so there is no admin-password file here; reading
    # the hub's environment is attacked below.
    expected = {str(state / name) for name in STATE_SECRETS if name != "admin-password"}
    assert expected <= set(files), f"missing from the state folder: {expected - set(files)}"
    outcome = attempt_inside_server(
        platform, scene["attacker"], f"{{p: attempt(lambda p=p: read(p)) for p in {files!r}}}"
    )
    assert outcome == {path: REFUSED for path in files}


def test_listing_the_state_folder_is_refused(platform, scene):
    state = str(platform.settings.state_path)
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: os.listdir({state!r}))")
        == REFUSED
    )


def test_opening_the_platform_database_for_writing_is_refused(platform, scene):
    database = str(platform.settings.state_path / "platform.sqlite")
    expression = f"attempt(lambda: os.close(os.open({database!r}, os.O_RDWR)))"
    assert attempt_inside_server(platform, scene["attacker"], expression) == REFUSED


def test_rewriting_the_gateway_configuration_is_refused(platform, scene):
    config = platform.settings.state_path / "dask_gateway_config.py"
    before = config.read_bytes()
    expression = f"attempt(lambda: open({str(config)!r}, 'w').write('import os; os.system(\"id\")'))"
    assert attempt_inside_server(platform, scene["attacker"], expression) == REFUSED
    assert config.read_bytes() == before


def test_connecting_to_the_docker_socket_is_refused(platform, scene):
    if not DOCKER_SOCKET.is_socket():
        pytest.skip(f"no Docker engine on this machine ({DOCKER_SOCKET} absent): nothing to attack")
    expression = (
        f"attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect({str(DOCKER_SOCKET)!r}))"
    )
    assert attempt_inside_server(platform, scene["attacker"], expression) == REFUSED


def test_reading_another_users_home_is_refused(platform, scene):
    home = scene["victim_home"]
    assert (home / "private.txt").is_file()
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: os.listdir({str(home)!r}))")
        == REFUSED
    )
    expression = f"attempt(lambda: read({str(home / 'private.txt')!r}))"
    assert attempt_inside_server(platform, scene["attacker"], expression) == REFUSED


def test_reading_another_users_server_environment_is_refused(platform, scene):
    # The environment holds the victim server's hub API token.
    environ = f"/proc/{scene['victim_server']}/environ"
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: read({environ!r}))") == REFUSED
    )


def test_reading_the_hubs_environment_is_refused(platform, scene):
    # The hub and its services hold the admin password, the proxy token and the service tokens.
    environ = f"/proc/{platform.hub_process.pid}/environ"
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: read({environ!r}))") == REFUSED
    )


def test_signalling_another_users_server_and_cluster_processes_is_refused(platform, scene):
    for pid in [scene["victim_server"], *scene["cluster_pids"]]:
        expression = f"attempt(lambda: os.kill({pid}, signal.SIGKILL))"
        assert attempt_inside_server(platform, scene["attacker"], expression) == NOT_PERMITTED, pid
        assert Path(f"/proc/{pid}").exists(), f"process {pid} should still run"


def test_reading_another_users_cluster_working_directory_and_tls_key_is_refused(platform, scene):
    workdir = scene["cluster_workdir"]
    key = workdir / ".certs" / "dask.pem"
    assert key.is_file()
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: os.listdir({str(workdir)!r}))")
        == REFUSED
    )
    assert (
        attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: read({str(key)!r}))") == REFUSED
    )


def test_listing_the_homes_and_clusters_folders_is_refused(platform, scene):
    for folder in (platform.settings.homes_dir, platform.settings.dask_clusters_dir):
        assert (
            attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: os.listdir({folder!r}))")
            == REFUSED
        )


def test_the_victims_cluster_runs_as_the_victim_and_its_files_are_theirs_alone(platform, scene):
    victim_uid = server_process(scene["victim_server"]).uid
    for pid in scene["cluster_pids"]:
        assert server_process(pid).uid == victim_uid
    workdir = scene["cluster_workdir"]
    for path in (workdir, workdir / ".certs", workdir / ".certs" / "dask.pem", workdir / "logs"):
        info = path.lstat()
        assert info.st_uid == victim_uid, path
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0, f"{path} is {oct(info.st_mode)}"


def test_the_state_folder_is_the_platforms_alone(platform, scene):
    state = platform.settings.state_path
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in STATE_SECRETS[1:]:  # no admin-password file: the harness passes it in the environment
        info = (state / name).stat()
        assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077 == 0, (
            name,
            oct(info.st_mode),
        )


def test_the_inside_server_helper_reports_its_own_identity(platform, scene):
    """The helper really runs as the server's account: the attacker's code sees the attacker's uid."""
    code = "import json, os; print(json.dumps([os.getuid(), os.getgid(), os.getcwd()]))"
    seen = run_inside_server(platform, scene["attacker"], code)
    process = server_process(server_pid(platform, scene["attacker"]))
    assert seen == [process.uid, process.gid, str(platform.home_of(scene["attacker"]))]
