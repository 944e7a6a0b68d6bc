"""Datasets over storage quota at spawn (``spawners/dataset_mounts.py``, ``ProfileSpawnerMixin``): read-only mounts
in Docker, a read-only bind mount in the server's own mount namespace in local mode, and the reason on the spawn
page.

Specification: a mount the service answers as ``ro`` with a ``reason`` becomes a read-only Docker bind; in local
mode ``mount_read_only`` makes the folder read-only for the process (its owner too: EROFS) and for nothing outside
it; the spawn page's events carry the reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from polartep_hub.spawners.dataset_mounts import DatasetMount, docker_binds
from polartep_hub.spawners.profiles import ProfileSpawnerMixin

REASON = "dataset p/d is mounted read-only: the ssd storage of its project's paying owner is over quota"


def test_an_over_quota_mount_is_a_read_only_docker_bind_with_its_reason():
    mount = DatasetMount.from_json(
        {"project": "p", "name": "d", "mode": "ro", "path": "/data/ssd/k", "gid": None, "reason": REASON}
    )
    assert mount.reason == REASON
    assert docker_binds([mount], "/home/jovyan") == {
        "/data/ssd/k": {"bind": "/home/jovyan/datasets/p/d", "mode": "ro"}
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root, as local mode's isolation does")
def test_mount_read_only_refuses_every_write_in_the_process_and_nothing_outside(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "mine.txt").write_text("ice")
    code = f"""
import errno, os
from polartep_hub.spawners.dataset_mounts import mount_read_only
mount_read_only([{str(folder)!r}])()
out = []
for path in ("mine.txt", "new.txt"):
    try:
        open(os.path.join({str(folder)!r}, path), "w").write("x")
        out.append("written")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(" ".join(out), open(os.path.join({str(folder)!r}, "mine.txt")).read())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "EROFS EROFS ice"), done.stderr
    (folder / "outside.txt").write_text("still writable here")  # the host's namespace is untouched
    assert (folder / "mine.txt").read_text() == "ice"


class _Spawner(ProfileSpawnerMixin):
    _log_name = "alice"
    _spawn_pending = False


def test_the_spawn_page_shows_why_a_dataset_is_read_only():
    spawner = _Spawner()
    spawner.note_dataset_mounts(
        [{"project": "p", "name": "d", "mode": "ro", "reason": REASON}, {"mode": "rw"}]
    )

    async def events():
        return [event async for event in spawner.progress()]

    assert asyncio.run(events()) == [
        {"progress": 50, "message": "Spawning server..."},
        {"message": f"Note: {REASON}."},
    ]
