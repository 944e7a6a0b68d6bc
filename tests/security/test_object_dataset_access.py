"""Attacks on datasets of the object class (an S3-compatible store) from inside real user servers in local mode.

The scene: a platform whose object class lives in a real S3-protocol server (one that checks signatures and expiry,
``tests/helpers/s3_server.py``, on 127.0.0.1), its key pair in a file only the platform reads. Project ``own`` (its
owner, and a member with a server) has a dataset ``chips`` in the object class; project ``read`` (its owner has a
server) was granted read access; a stranger with a server belongs to neither. Each attempt runs as the server's process runs (``tests/helpers/inside_server.py``), through
the notebook helper ``polartep_lab.datasets.ObjectDataset`` with the server's own token, and asserts the exact
refusal. No server ever holds the platform's keys: not in its environment, not readable on disk.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from tests.harness import RunningPlatform
from tests.helpers.dataset_projects import DATASETS, granted_dataset_scene
from tests.helpers.inside_server import run_inside_server
from tests.helpers.s3_server import ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY, running_s3_server

pytestmark = pytest.mark.hub


ATTEMPT = """
import json, os
from polartep_lab.datasets import DatasetRequestError, ObjectDataset

def attempt(action):
    try:
        result = action()
    except DatasetRequestError as e:
        return {"status": e.status, "message": e.message}
    except OSError as e:
        return {"error": type(e).__name__}
    return {"status": None, "result": result}

ds = ObjectDataset(PROJECT, "chips")
"""


def attack(platform, scene, user: str, expression: str) -> dict:
    code = ATTEMPT.replace("PROJECT", repr(scene["own"])) + f"\nprint(json.dumps({expression}))\n"
    return run_inside_server(platform, user, code)


@pytest.fixture(scope="module")
def s3():
    with running_s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def object_platform(tmp_path_factory, s3):
    root = tmp_path_factory.mktemp("object-platform")
    # Outside pytest's 0700 folders, so only the file's own mode keeps users out.
    keys = Path("/tmp") / f"polartep-s3-keys-{os.getpid()}"
    keys.write_text(f"access_key_id = {ACCESS_KEY_ID}\nsecret_access_key = {SECRET_ACCESS_KEY}\n")
    keys.chmod(0o600)
    env = {
        "POLARTEP_OBJECT_STORE_ENDPOINT": s3.endpoint,
        "POLARTEP_OBJECT_STORE_BUCKET": BUCKET,
        "POLARTEP_OBJECT_STORE_CREDENTIALS_FILE": str(keys),
    }
    try:
        with RunningPlatform(root, extra_env=env).running() as running:
            running.keys_file = keys
            yield running
    finally:
        keys.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def scene(object_platform, s3):
    platform = object_platform
    made = granted_dataset_scene(platform, "o", "chips", "object")
    assert made.dataset["in_object_store"] is True
    servers = (made.member, made.reader, made.stranger)
    for name in servers:
        platform.spawn(name, made.tokens[name])
    try:
        yield dataclasses.asdict(made)
    finally:
        for name in servers:
            platform.stop_server(name)


def test_a_member_writes_lists_and_reads_objects_from_a_notebook(object_platform, scene, s3):
    written = attack(
        object_platform, scene, scene["member"], "attempt(lambda: ds.write_bytes('a/one.bin', b'ice' * 10))"
    )
    assert written == {"status": None, "result": None}
    listed = attack(
        object_platform, scene, scene["member"], "attempt(lambda: [(o['key'], o['bytes']) for o in ds.ls()])"
    )
    assert listed == {"status": None, "result": [["a/one.bin", 30]]}
    read = attack(
        object_platform, scene, scene["member"], "attempt(lambda: ds.read_bytes('a/one.bin').decode())"
    )
    assert read == {"status": None, "result": "ice" * 10}
    assert [k.split("/", 2)[2] for k in s3.bucket_keys()] == ["a/one.bin"]


def test_a_granted_reader_reads_but_gets_no_put_url(object_platform, scene, s3):
    attack(
        object_platform, scene, scene["member"], "attempt(lambda: ds.write_bytes('shared.txt', b'shared'))"
    )
    reader = scene["reader"]
    assert attack(
        object_platform, scene, reader, "attempt(lambda: ds.read_bytes('shared.txt').decode())"
    ) == {
        "status": None,
        "result": "shared",
    }
    refused = attack(object_platform, scene, reader, "attempt(lambda: ds.write_bytes('planted.txt', b'x'))")
    assert refused == {
        "status": 403,
        "message": f"read-only access to {scene['own']}/chips: only members of {scene['own']!r} may write",
    }
    assert attack(object_platform, scene, reader, "attempt(lambda: ds.rm('shared.txt'))")["status"] == 403
    assert not any(k.endswith("planted.txt") for k in s3.bucket_keys())
    assert any(k.endswith("shared.txt") for k in s3.bucket_keys())


def test_a_stranger_gets_404_for_listing_reading_and_writing(object_platform, scene, s3):
    before = s3.bucket_keys()
    missing = {"status": 404, "message": f"no dataset 'chips' in project {scene['own']!r} that you may see"}
    for expression in (
        "attempt(lambda: ds.ls())",
        "attempt(lambda: ds.url('shared.txt'))",
        "attempt(lambda: ds.write_bytes('planted.txt', b'x'))",
        "attempt(lambda: ds.rm('shared.txt'))",
    ):
        assert attack(object_platform, scene, scene["stranger"], expression) == missing
    assert s3.bucket_keys() == before


def test_path_tricks_in_object_keys_answer_400_and_store_nothing(object_platform, scene, s3):
    before = s3.bucket_keys()
    for key in ("../escape.bin", "/abs.bin", "%2e%2e/escape.bin", "a\x00b", "k" * 5000):
        answer = attack(
            object_platform, scene, scene["member"], f"attempt(lambda: ds.write_bytes({key!r}, b'x'))"
        )
        assert answer["status"] == 400, (key[:20], answer)
        assert "use a relative path of 1-900 UTF-8 bytes" in answer["message"]
    assert s3.bucket_keys() == before


def test_no_server_holds_the_platforms_keys(object_platform, scene):
    probe = "attempt(lambda: [k for k, v in os.environ.items() if SECRET in v or KEY_ID in v])".replace(
        "SECRET", repr(SECRET_ACCESS_KEY)
    ).replace("KEY_ID", repr(ACCESS_KEY_ID))
    for user in (scene["member"], scene["reader"], scene["stranger"]):
        assert attack(object_platform, scene, user, probe) == {"status": None, "result": []}
        keys = str(object_platform.keys_file)
        assert attack(object_platform, scene, user, f"attempt(lambda: open({keys!r}).read())") == {
            "error": "PermissionError"
        }


def test_revocation_refuses_new_urls_at_once(object_platform, scene):
    owner_token = scene["tokens"][scene["owner"]]
    r = object_platform.api("DELETE", f"{DATASETS}/{scene['own']}/chips/grants/{scene['read']}", owner_token)
    assert r.status_code == 200, r.text
    answer = attack(object_platform, scene, scene["reader"], "attempt(lambda: ds.url('shared.txt'))")
    assert answer == {
        "status": 404,
        "message": f"no dataset 'chips' in project {scene['own']!r} that you may see",
    }
