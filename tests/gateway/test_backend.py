"""``PlatformLocalBackend`` never changes ownership outside its clusters directory (the stock backend chowned ``/``)."""

from __future__ import annotations

import pytest

from polartep_hub.gateway.backend import PlatformLocalBackend, UnsafeOwnershipChange


def test_ownership_changes_outside_the_clusters_directory_are_refused(tmp_path):
    backend = PlatformLocalBackend(clusters_directory=str(tmp_path / "clusters"))
    inside = tmp_path / "clusters" / "c1"
    backend.set_file_permissions([str(inside)], "bob")  # inside: accepted, and nothing is chowned
    for outside in ["/", str(tmp_path / "clusters-evil"), str(tmp_path / "clusters" / ".." / "x")]:
        with pytest.raises(UnsafeOwnershipChange):
            backend.set_file_permissions([outside], "bob")
    # The upstream bug passed a path's characters one by one: the first, "/", is refused.
    with pytest.raises(UnsafeOwnershipChange):
        backend.set_file_permissions(list(str(inside)), "bob")


def test_the_clusters_directory_must_be_absolute():
    with pytest.raises(Exception, match="absolute"):
        PlatformLocalBackend(clusters_directory="relative/clusters")
