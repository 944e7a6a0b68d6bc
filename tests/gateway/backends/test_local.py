"""``PlatformLocalBackend`` never changes ownership outside its clusters directory (the stock backend chowned ``/``);
with system users, a cluster's working directory is its user's, and no root-owned write follows a planted link."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import types
from pathlib import Path

import pytest

from polartep_hub.gateway.backends.local import PlatformLocalBackend, UnsafeOwnershipChange
from polartep_hub.spawners.system_users import system_users_with_prefix


def test_ownership_changes_outside_the_clusters_directory_are_refused(tmp_path):
    backend = PlatformLocalBackend(clusters_directory=str(tmp_path / "clusters"))
    inside = tmp_path / "clusters" / "c1"
    # Inside: accepted; without isolation nothing is chowned.
    backend.set_file_permissions([str(inside)], "bob")
    for outside in ["/", str(tmp_path / "clusters-evil"), str(tmp_path / "clusters" / ".." / "x")]:
        with pytest.raises(UnsafeOwnershipChange):
            backend.set_file_permissions([outside], "bob")
    # The upstream bug passed a path's characters one by one: the first, "/", is refused.
    with pytest.raises(UnsafeOwnershipChange):
        backend.set_file_permissions(list(str(inside)), "bob")


def test_the_clusters_directory_must_be_absolute():
    with pytest.raises(Exception, match="absolute"):
        PlatformLocalBackend(clusters_directory="relative/clusters")


@pytest.fixture
def system_user_backend(tmp_path):
    """A backend that runs clusters as system users (a prefix of its own; the accounts are removed afterwards)."""
    prefix = f"g{secrets.token_hex(2)}-"
    homes = Path(tempfile.mkdtemp(prefix="polartep-test-homes-", dir="/tmp"))
    clusters = homes / ".dask-clusters"
    clusters.mkdir(mode=0o711)
    backend = PlatformLocalBackend(
        clusters_directory=str(clusters), isolate=True, system_user_prefix=prefix, homes_root=str(homes)
    )
    yield backend
    for name in system_users_with_prefix(prefix):
        subprocess.run(["userdel", name], check=False)
    shutil.rmtree(homes, ignore_errors=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="system users need root")


@needs_root
def test_a_clusters_working_directory_belongs_to_the_users_system_user(system_user_backend):
    cluster = types.SimpleNamespace(name="c0ffee", username="alice", tls_cert=b"cert", tls_key=b"key")
    workdir = Path(system_user_backend.setup_working_directory(cluster))
    user = system_user_backend.system_user("alice")
    assert workdir.parent == Path(system_user_backend.clusters_directory)
    for path in (workdir, workdir / ".certs", workdir / "logs", *(workdir / ".certs").iterdir()):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (user.uid, user.gid), path
        assert stat.S_IMODE(info.st_mode) in (0o700, 0o600), (path, oct(info.st_mode))
    system_user_backend.api_url = "http://127.0.0.1:1/api"
    cluster.config, cluster.token = types.SimpleNamespace(environment={}), "t"
    env = system_user_backend.get_env(cluster)
    assert (env["USER"], env["HOME"]) == (user.name, str(user.home))


@needs_root
def test_a_log_file_is_never_created_through_a_planted_symbolic_link(system_user_backend, tmp_path):
    cluster = types.SimpleNamespace(name="decaf", username="alice", tls_cert=b"cert", tls_key=b"key")
    workdir = Path(system_user_backend.setup_working_directory(cluster))
    target = tmp_path / "elsewhere"
    target.mkdir()
    # What the user could do inside their own working directory: replace logs/ with a link to a root-owned place.
    shutil.rmtree(workdir / "logs")
    (workdir / "logs").symlink_to(target)
    with pytest.raises(OSError) as refused:
        system_user_backend._open_log(str(workdir), "scheduler", system_user_backend.system_user("alice"))
    assert refused.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert list(target.iterdir()) == []
