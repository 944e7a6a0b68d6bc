"""The scene of the datasets' attack tests, set up through a real platform's API: two projects, a dataset of one
granted to the other, and users in every role (``tests/security/test_dataset_access.py`` and
``test_object_dataset_access.py`` share it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DATASETS = "/services/platform/api/v1/datasets"
PROJECTS = "/services/platform/api/v1/projects"


@dataclass(frozen=True)
class DatasetScene:
    """Who is who: ``owner`` founded project ``own`` (with ``member``) and its dataset; ``reader`` founded project
    ``read``, which was granted read access to that dataset; ``stranger`` belongs to neither. ``tokens``: each
    user's API token. ``dataset``: the dataset as its creation answered."""

    owner: str
    member: str
    reader: str
    stranger: str
    tokens: dict[str, str]
    own: str
    read: str
    dataset: dict[str, Any]


def granted_dataset_scene(platform, prefix: str, dataset: str, storage_class: str) -> DatasetScene:
    """Create the scene's four Trial users (``<prefix>owner<pid>`` ...), its two projects, the dataset ``dataset``
    of project ``own`` in ``storage_class`` and the grant to project ``read``; each step asserts its status. Servers
    are not started (each test module spawns those it needs)."""
    tag = os.getpid()
    owner, member, reader, stranger = (
        f"{prefix}{role}{tag}" for role in ("owner", "member", "reader", "stranger")
    )
    tokens = {name: platform.create_user(name, plan="trial") for name in (owner, member, reader, stranger)}
    own, read = f"own{tag}", f"read{tag}"
    for project, founder in ((own, owner), (read, reader)):
        r = platform.api("POST", PROJECTS, tokens[founder], json={"name": project})
        assert r.status_code == 201, r.text
    r = platform.api("POST", f"{PROJECTS}/{own}/members", tokens[owner], json={"user": member})
    assert r.status_code == 201, r.text
    r = platform.api(
        "POST",
        DATASETS,
        tokens[owner],
        json={"project": own, "name": dataset, "storage_class": storage_class},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    r = platform.api("PUT", f"{DATASETS}/{own}/{dataset}/grants/{read}", tokens[owner])
    assert r.status_code == 200, r.text
    return DatasetScene(owner, member, reader, stranger, tokens, own, read, created)
