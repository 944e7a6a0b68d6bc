"""Attacks on the pre-imported launcher (``spawners/launcher.py``), from inside a real user server in local mode.

The launcher is a root process that forks every user's server after importing Jupyter. Its promise: it holds no
platform secret and no user's data (so a forked server, a copy of its memory, holds none either), nobody but the
hub can ask it for anything, and every child has shed every root id before it runs. The victim spawns first, so the
attacker's server is forked from a launcher that has already served the victim.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers.inside_server import (
    NOT_PERMITTED,
    REFUSED,
    attempt_inside_server,
    server_pid,
    server_process,
)

pytestmark = pytest.mark.hub


def status_of(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def launcher_pid(hub_pid: int) -> int:
    """The hub's launcher child (there is exactly one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(status_of(int(entry.name))["PPid"]) != hub_pid:
                continue
            if b"polartep_hub.spawners.launcher" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except (OSError, KeyError):
            continue
    assert len(found) == 1, found
    return found[0]


def memory_contains(pid: int, needles: dict[str, bytes]) -> set[str]:
    """Names of the ``needles`` found anywhere in the readable memory of process ``pid`` (read as root)."""
    found: set[str] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(part, 16) for part in fields[0].split("-"))
            try:
                memory.seek(start)
                chunk = memory.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found |= {name for name, needle in needles.items() if needle in chunk}
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


@pytest.fixture(scope="module")
def scene(platform):
    attacker, victim = f"eve{os.getpid()}", f"alice{os.getpid()}"
    attacker_token = platform.create_user(attacker, plan="trial")
    victim_token = platform.create_user(victim, plan="trial")
    platform.spawn(victim, victim_token)
    platform.spawn(attacker, attacker_token)
    try:
        victim_server = server_pid(platform, victim)
        yield {
            "attacker": attacker,
            "victim": victim,
            "attacker_token": attacker_token,
            "victim_token": victim_token,
            "attacker_server": server_pid(platform, attacker),
            "victim_server": victim_server,
            "victim_server_token": server_process(victim_server).environment["JUPYTERHUB_API_TOKEN"],
            "launcher": launcher_pid(platform.hub_process.pid),
        }
    finally:
        platform.stop_server(attacker)
        platform.stop_server(victim)


def test_both_servers_are_children_of_the_launcher(platform, scene):
    for user in ("attacker", "victim"):
        assert int(status_of(scene[f"{user}_server"])["PPid"]) == scene["launcher"], user


def test_the_launchers_environment_holds_nothing_of_the_platform(platform, scene):
    raw = Path(f"/proc/{scene['launcher']}/environ").read_bytes().split(b"\0")
    environment = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    assert set(environment) <= {"PATH", "HOME", "LANG", "LC_ALL", "POLARTEP_LAUNCHER_ROOM"}, sorted(
        environment
    )
    assert environment["HOME"] == "/nonexistent"
    assert set(environment["POLARTEP_LAUNCHER_ROOM"]) == {" "}


def test_no_secret_or_user_data_is_in_the_launchers_or_the_attackers_memory(platform, scene):
    state = platform.settings.state_path
    needles = {
        "victim's token": scene["victim_token"].encode(),
        "victim server's API token": scene["victim_server_token"].encode(),
        "hub->service token": (state / "hub-service-token").read_bytes().strip(),
        "proxy token": (state / "proxy-auth-token").read_bytes().strip(),
        "cookie secret": (state / "jupyterhub_cookie_secret").read_bytes().strip(),
        "admin password": platform.env["POLARTEP_ADMIN_PASSWORD"].encode(),
        "victim's home": str(platform.home_of(scene["victim"])).encode(),
    }
    assert all(len(needle) >= 16 for needle in needles.values()), needles
    assert memory_contains(scene["launcher"], needles) == set()
    # The attacker's server is a copy of the launcher made after the victim's spawn: none of its secrets there
    # either. The victim's home path is left out for this process only: it is public, the system user's line in the
    # world-readable /etc/passwd, which any getpwuid() of the server (glibc reads the file through a buffer, freed
    # but not wiped) may leave in its heap; one full run found it there.
    secrets_only = {name: needle for name, needle in needles.items() if name != "victim's home"}
    assert memory_contains(scene["attacker_server"], secrets_only) == set()
    # The scan finds what is there: the attacker's server holds its own token.
    own = server_process(scene["attacker_server"]).environment["JUPYTERHUB_API_TOKEN"].encode()
    assert memory_contains(scene["attacker_server"], {"own token": own}) == {"own token"}


def test_the_attackers_server_kept_no_root_id_capability_or_group(platform, scene):
    process = server_process(scene["attacker_server"])
    status = status_of(scene["attacker_server"])
    assert status["Uid"].split() == [str(process.uid)] * 4  # real, effective, saved, filesystem
    assert status["Gid"].split() == [str(process.gid)] * 4
    assert process.uid != 0 and process.gid != 0 and 0 not in process.groups
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    # /proc shows the server, not the launcher.
    cmdline = Path(f"/proc/{scene['attacker_server']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].endswith(b"jupyterhub-singleuser"), cmdline
    assert process.environment["JUPYTERHUB_USER"] == scene["attacker"]
    assert process.environment["HOME"] == str(platform.home_of(scene["attacker"]))


def test_the_attackers_server_holds_no_descriptor_of_the_launchers_channel(platform, scene):
    assert socket_inodes(scene["launcher"]), "the launcher holds its end of the hub's socket pair"
    assert socket_inodes(scene["attacker_server"]).isdisjoint(socket_inodes(scene["launcher"]))


def test_regaining_root_is_refused(platform, scene):
    assert (
        attempt_inside_server(platform, scene["attacker"], "attempt(lambda: os.setuid(0))") == NOT_PERMITTED
    )


def test_signalling_the_launcher_is_refused(platform, scene):
    expression = f"attempt(lambda: os.kill({scene['launcher']}, signal.SIGKILL))"
    assert attempt_inside_server(platform, scene["attacker"], expression) == NOT_PERMITTED
    assert Path(f"/proc/{scene['launcher']}").exists()


def test_reading_the_launchers_memory_and_environment_is_refused(platform, scene):
    for name in ("mem", "environ"):
        path = f"/proc/{scene['launcher']}/{name}"
        assert (
            attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: read({path!r}))") == REFUSED
        ), name


def test_reading_the_victims_server_memory_is_refused(platform, scene):
    path = f"/proc/{scene['victim_server']}/mem"
    assert attempt_inside_server(platform, scene["attacker"], f"attempt(lambda: read({path!r}))") == REFUSED


def test_the_attacker_cannot_name_the_launchers_socket(platform, scene):
    # No file to connect to: the launcher's only channel is an unnamed socket pair.
    unix = Path("/proc/net/unix").read_text()
    for inode in socket_inodes(scene["launcher"]):
        number = re.search(r"\[(\d+)\]", inode).group(1)
        lines = [line for line in unix.splitlines() if line.split()[6:7] == [number]]
        assert all(len(line.split()) == 7 for line in lines), lines  # no path column
