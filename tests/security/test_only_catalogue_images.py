"""CVE-2023-48311 regression: DockerSpawner spawned any image when ``allowed_images`` was unset.

Only images named in the catalogue may start, whatever the form or the API sends (the end-to-end check against a
real engine is in ``tests/docker/test_profiles_in_containers.py``).
"""

from __future__ import annotations

import asyncio
import types

import pytest
from tornado.web import HTTPError

from polartep_hub.spawners.docker import DockerProfileSpawner
from polartep_hub.spawners.swarm import SwarmProfileSpawner


@pytest.mark.parametrize("spawner_class", [DockerProfileSpawner, SwarmProfileSpawner])
def test_an_image_outside_the_catalogue_is_refused(spawner_class):
    spawner = spawner_class(user=types.SimpleNamespace(name="mallory", id=1, url="/user/mallory/"))
    assert spawner.allowed_images == ["polartep/base", "polartep/ml"]
    for image in ("busybox", "polartep/rootfs:bookworm", "polartep/base:evil", "*"):
        with pytest.raises(HTTPError) as refused:
            asyncio.run(spawner.check_allowed(image))
        assert refused.value.status_code == 400


def test_the_form_cannot_smuggle_an_image():
    spawner = DockerProfileSpawner(user=types.SimpleNamespace(name="mallory", id=1, url="/user/mallory/"))
    assert spawner.options_from_form({"profile": ["small"], "image": ["busybox"]}) == {"profile": "small"}
