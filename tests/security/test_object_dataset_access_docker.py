"""Datasets of the object class in Docker mode, tried from inside real user containers.

The scene: the platform's own network (``{prefix}-platform``) is made first, with the platform's own function, so
that the S3 server of the tests (one that checks signatures and expiry, ``tests/helpers/s3_server.py``) can listen
on the host's address there, where containers reach the host, and on a port of 127.0.0.1, where the platform reaches
it. The platform then starts in Docker mode with ``object_store_endpoint`` on loopback and
``object_store_public_endpoint`` on the network's address, its key pair in a file only the platform reads. Project
``own`` (an owner, and a member with a server) has a dataset ``chips`` in the object class; project ``read`` was
granted read access (its owner has a server); a stranger with a server belongs to neither.

Each attempt runs in the user's container with its Python, environment and token (``docker exec``), through the
notebook helper ``polartep_lab.datasets.ObjectDataset``, and asserts the exact answer: the member writes through a
presigned PUT URL and reads back (the bytes go straight between the container and the store), the reader reads but
gets no PUT URL, the stranger gets 404, and a URL changed inside the container is refused by the store. No container
holds the platform's keys, in its configuration or its environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from polartep_hub.spawners.networks import ensure_platform_network
from tests.docker.conftest import docker_engine, test_catalogue  # noqa: F401  (fixtures)
from tests.docker.engine import container_name, inspect, network_prefix, remove_run_objects, unique_user_name
from tests.helpers.docker_platform import exec_in_server, start_docker_platform
from tests.helpers.s3_server import ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY, running_s3_server

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.timeout(900)]

DATASETS = "/services/platform/api/v1/datasets"

ATTEMPT = """
import json, os, re, urllib.error, urllib.request
from polartep_lab.datasets import DatasetRequestError, ObjectDataset

def attempt(action):
    try:
        result = action()
    except DatasetRequestError as e:
        return {"status": e.status, "message": e.message}
    return {"status": None, "result": result}

def store(url, method="GET", data=None):
    # The store's own answer to a (changed) URL: its status and S3 error code.
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return [answer.status, answer.read().decode()]
    except urllib.error.HTTPError as e:
        found = re.search(r"<Code>([^<]+)</Code>", e.read().decode())
        return [e.code, found.group(1) if found else ""]

ds = ObjectDataset(PROJECT, "chips")
"""


def attack(scene, user: str, expression: str):
    code = ATTEMPT.replace("PROJECT", repr(scene["own"])) + f"\nprint(json.dumps({expression}))\n"
    return exec_in_server(user, code)


@pytest.fixture(scope="module")
def s3_and_platform(docker_engine, test_catalogue, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("objdocker")
    # The platform's own network, made before the platform (which adopts it) so the store can listen on it.
    gateway = ensure_platform_network(network_prefix(root.name))
    keys = Path("/tmp") / f"polartep-s3-keys-docker-{os.getpid()}"
    keys.write_text(f"access_key_id = {ACCESS_KEY_ID}\nsecret_access_key = {SECRET_ACCESS_KEY}\n")
    keys.chmod(0o600)
    try:
        with running_s3_server(gateway, also_loopback=True) as s3:
            platform = start_docker_platform(
                root,
                test_catalogue,
                extra_env={
                    "POLARTEP_OBJECT_STORE_ENDPOINT": s3.loopback_endpoint,
                    "POLARTEP_OBJECT_STORE_PUBLIC_ENDPOINT": s3.endpoint,
                    "POLARTEP_OBJECT_STORE_BUCKET": BUCKET,
                    "POLARTEP_OBJECT_STORE_CREDENTIALS_FILE": str(keys),
                },
            )
            try:
                yield s3, platform
            finally:
                platform.stop()
        # The store stopped first: a network whose address something still listens on is kept by the clean-up.
    finally:
        remove_run_objects()
        keys.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def scene(s3_and_platform):
    _, platform = s3_and_platform
    tag = os.getpid()
    owner, member, reader, stranger = (
        unique_user_name(r) for r in ("oowner", "omember", "oreader", "ostranger")
    )
    tokens = {name: platform.create_user(name, plan="large") for name in (owner, member, reader, stranger)}
    own, read = f"dobj{tag}", f"dobjr{tag}"
    for project, founder in ((own, owner), (read, reader)):
        r = platform.api(
            "POST", "/services/platform/api/v1/projects", tokens[founder], json={"name": project}
        )
        assert r.status_code == 201, r.text
    r = platform.api(
        "POST", f"/services/platform/api/v1/projects/{own}/members", tokens[owner], json={"user": member}
    )
    assert r.status_code == 201, r.text
    r = platform.api(
        "POST", DATASETS, tokens[owner], json={"project": own, "name": "chips", "storage_class": "object"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["in_object_store"] is True
    assert platform.api("PUT", f"{DATASETS}/{own}/chips/grants/{read}", tokens[owner]).status_code == 200
    for name in (member, reader, stranger):
        platform.spawn(name, tokens[name], {"profile": "interactive"})
    try:
        yield {"member": member, "reader": reader, "stranger": stranger, "own": own, "read": read}
    finally:
        for name in (member, reader, stranger):
            platform.stop_server(name)


def test_a_member_writes_through_a_presigned_url_and_reads_back_from_a_container(s3_and_platform, scene):
    s3, _ = s3_and_platform
    member = scene["member"]
    written = attack(scene, member, "attempt(lambda: ds.write_bytes('2026/chip-001.bin', b'ice' * 100))")
    assert written == {"status": None, "result": None}
    assert attack(scene, member, "attempt(lambda: [(o['key'], o['bytes']) for o in ds.ls()])") == {
        "status": None,
        "result": [["2026/chip-001.bin", 300]],
    }
    assert attack(scene, member, "attempt(lambda: ds.read_bytes('2026/chip-001.bin').decode())") == {
        "status": None,
        "result": "ice" * 100,
    }
    assert [k.split("/", 2)[2] for k in s3.bucket_keys()] == ["2026/chip-001.bin"]
    # The URLs a container gets are signed for the public endpoint (the platform itself uses loopback).
    url = attack(scene, member, "attempt(lambda: ds.url('2026/chip-001.bin'))")["result"]
    assert url.startswith(f"{s3.endpoint}/{BUCKET}/datasets/")


def test_the_store_refuses_a_url_changed_inside_a_container(s3_and_platform, scene):
    s3, _ = s3_and_platform
    before = s3.bucket_keys()
    answers = attack(
        scene,
        scene["member"],
        """{
            "other_key": store(ds.url("a.bin", "PUT", 3).replace("/a.bin?", "/planted.bin?"), "PUT", b"abc"),
            "other_size": store(ds.url("a.bin", "PUT", 3), "PUT", b"abcdef"),
            "unsigned": store(ds.url("a.bin", "PUT", 3).split("?")[0], "PUT", b"abc"),
        }""",
    )
    assert answers == {
        "other_key": [403, "SignatureDoesNotMatch"],
        "other_size": [403, "SignatureDoesNotMatch"],
        "unsigned": [403, "AccessDenied"],
    }
    assert s3.bucket_keys() == before


def test_a_granted_reader_reads_but_gets_no_put_url(s3_and_platform, scene):
    s3, _ = s3_and_platform
    assert attack(scene, scene["member"], "attempt(lambda: ds.write_bytes('shared.txt', b'shared'))") == {
        "status": None,
        "result": None,
    }
    reader = scene["reader"]
    assert attack(scene, reader, "attempt(lambda: ds.read_bytes('shared.txt').decode())") == {
        "status": None,
        "result": "shared",
    }
    own = scene["own"]
    read_only = {
        "status": 403,
        "message": f"read-only access to {own}/chips: only members of {own!r} may write",
    }
    assert attack(scene, reader, "attempt(lambda: ds.url('planted.txt', 'PUT', 1))") == read_only
    assert attack(scene, reader, "attempt(lambda: ds.write_bytes('planted.txt', b'x'))") == read_only
    assert attack(scene, reader, "attempt(lambda: ds.rm('shared.txt'))") == {
        "status": 403,
        "message": f"read-only access to {own}/chips: only members of {own!r} may delete",
    }
    assert not any(k.endswith("planted.txt") for k in s3.bucket_keys())
    assert any(k.endswith("shared.txt") for k in s3.bucket_keys())


def test_a_stranger_gets_404_for_listing_reading_and_writing(s3_and_platform, scene):
    s3, _ = s3_and_platform
    before = s3.bucket_keys()
    missing = {"status": 404, "message": f"no dataset 'chips' in project {scene['own']!r} that you may see"}
    for expression in (
        "attempt(lambda: ds.ls())",
        "attempt(lambda: ds.url('shared.txt'))",
        "attempt(lambda: ds.url('planted.txt', 'PUT', 1))",
        "attempt(lambda: ds.write_bytes('planted.txt', b'x'))",
        "attempt(lambda: ds.rm('shared.txt'))",
    ):
        assert attack(scene, scene["stranger"], expression) == missing
    assert s3.bucket_keys() == before


def test_no_container_holds_the_platforms_keys(s3_and_platform, scene):
    probe = "attempt(lambda: sorted(k for k, v in os.environ.items() if SECRET in v or KEY_ID in v))".replace(
        "SECRET", repr(SECRET_ACCESS_KEY)
    ).replace("KEY_ID", repr(ACCESS_KEY_ID))
    for user in (scene["member"], scene["reader"], scene["stranger"]):
        assert attack(scene, user, probe) == {"status": None, "result": []}
        container = inspect("container", container_name(user))
        configuration = json.dumps(container["Config"]) + json.dumps(container["Mounts"])
        assert SECRET_ACCESS_KEY not in configuration and ACCESS_KEY_ID not in configuration
        assert "polartep-s3-keys" not in configuration  # the key file is not mounted
