"""System users for local mode (``spawners/system_users.py``), created and removed for real (the tests run as root).

Each test uses a prefix of its own, so nothing here can touch another platform's accounts, and removes what it made.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

from polartep_hub.spawners.local import LocalProfileSpawner
from polartep_hub.spawners.system_users import (
    MAX_SYSTEM_USER_NAME,
    SystemUserError,
    check_prefix,
    delete_system_user,
    ensure_system_user,
    processes_of,
    system_user_name,
    system_users_with_prefix,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating system users needs root")


@pytest.fixture
def prefix():
    """A prefix no other account uses; every account made with it is removed afterwards."""
    chosen = f"u{secrets.token_hex(2)}-"
    yield chosen
    for name in system_users_with_prefix(chosen):
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def homes():
    """A homes folder the accounts can reach (pytest's own folders are 0700, as the state folder is)."""
    root = Path(tempfile.mkdtemp(prefix="polartep-test-homes-", dir="/tmp"))
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_system_user_name_is_the_prefix_and_the_name():
    assert system_user_name("alice", "jupyter-") == "jupyter-alice"
    assert system_user_name("a.b_c-1", "jupyter-") == "jupyter-a.b_c-1"


def test_a_long_name_is_cut_to_32_characters_and_ends_in_its_hash():
    first, second = "x" * 40 + "first", "x" * 40 + "second"
    cut = system_user_name(first, "jupyter-")
    assert len(cut) == MAX_SYSTEM_USER_NAME
    assert cut.startswith("jupyter-xxxxxxxxxxxxxxx-") and len(cut.rsplit("-", 1)[1]) == 8
    assert cut == system_user_name(first, "jupyter-")  # stable
    assert cut != system_user_name(second, "jupyter-")  # two long names sharing a start stay apart
    assert len(system_user_name("y" * 24, "jupyter-")) == MAX_SYSTEM_USER_NAME  # exactly 32: kept whole
    assert system_user_name("y" * 24, "jupyter-") == "jupyter-" + "y" * 24


@pytest.mark.parametrize("bad", ["", "Jupyter-", "1x-", "-x", "j" * 17, "jupyter:"])
def test_a_prefix_must_start_with_a_letter_and_be_short(bad):
    with pytest.raises(ValueError, match="system_user_prefix must be 1-16 characters"):
        check_prefix(bad)


def test_first_use_creates_a_locked_account_without_shell_and_a_private_home(prefix, homes):
    user = ensure_system_user("alice", prefix, homes)

    entry = pwd.getpwnam(f"{prefix}alice")
    assert (entry.pw_uid, entry.pw_gid) == (user.uid, user.gid) and user.uid != 0
    assert entry.pw_shell == "/usr/sbin/nologin"
    assert entry.pw_gecos == "polartep alice"
    assert grp.getgrgid(user.gid).gr_name == f"{prefix}alice"  # a group of its own, shared with nobody
    assert grp.getgrgid(user.gid).gr_mem == []
    shadow = subprocess.run(["getent", "shadow", user.name], capture_output=True, text=True).stdout
    assert shadow.split(":")[1].startswith("!")  # no password: locked
    info = user.home.stat()
    assert user.home == homes / f"{prefix}alice"
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (user.uid, user.gid, 0o700)
    assert ensure_system_user("alice", prefix, homes) == user  # idempotent


def test_an_account_the_platform_did_not_make_is_never_used(prefix, homes):
    subprocess.run(["useradd", "--no-create-home", "--comment", "an operator", f"{prefix}bob"], check=True)
    with pytest.raises(SystemUserError, match="was not created by the platform for 'bob'"):
        ensure_system_user("bob", prefix, homes)


def test_removal_ends_the_processes_then_removes_the_home_and_the_account(prefix, homes):
    user = ensure_system_user("carol", prefix, homes)
    (user.home / "notes.txt").write_text("mine")
    sleeper = subprocess.Popen(["sleep", "300"], user=user.uid, group=user.gid)
    assert processes_of(user.uid) == [sleeper.pid]

    assert delete_system_user("carol", prefix, homes) is True

    assert sleeper.wait(10) == -9
    assert not user.home.exists()
    assert f"{prefix}carol" not in {entry.pw_name for entry in pwd.getpwall()}
    assert f"{prefix}carol" not in {entry.gr_name for entry in grp.getgrall()}
    assert delete_system_user("carol", prefix, homes) is False  # already gone: nothing to do


def test_the_spawners_process_runs_as_the_system_user_with_umask_077_and_the_memory_limit(prefix, homes):
    user = types.SimpleNamespace(name="dave", id=1, url="/user/dave/")
    spawner = LocalProfileSpawner(user=user, homes_root=str(homes), system_user_prefix=prefix, isolate=True)
    spawner.mem_limit = 2 * 1024**3
    account = ensure_system_user("dave", prefix, homes)
    code = (
        "import json, os, resource; "
        "print(json.dumps([os.getuid(), os.getgid(), os.getgroups(), os.getcwd(), os.umask(0), "
        "resource.getrlimit(resource.RLIMIT_AS)[0]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=spawner.make_preexec_fn("dave"),
        capture_output=True,
        text=True,
        check=True,
    )
    uid, gid, groups, cwd, umask, limit = json.loads(done.stdout)
    assert (uid, gid, cwd, umask, limit) == (account.uid, account.gid, str(account.home), 0o077, 2 * 1024**3)
    assert groups == [account.gid]
    assert "--allow-root" not in spawner.args
