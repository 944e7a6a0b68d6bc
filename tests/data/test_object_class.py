"""The object storage class on an S3-compatible endpoint (a real S3-protocol server that checks Signature Version 4
and presigned expiry like a real store: ``tests/helpers/s3_server.py``, on 127.0.0.1).

Specification: with an object store configured, a dataset of the ``object`` class has no folder; its objects live
under ``datasets/<storage key>/`` in the platform's bucket. Readers list them and get presigned GET URLs; only
members get presigned PUT URLs (signed for the upload's exact size) and delete objects; a granted reader gets 403
for writes, a stranger 404 for everything, and after revocation the former reader gets 404 at once. Keys with path
tricks answer 400 and nothing is stored. Deleting the dataset deletes its prefix; its bytes are the sum of its
objects (``store.dataset_bytes``, the storage meter's input). The platform's key pair is never in an answer.
The store itself refuses a URL that was changed after signing (another key, another size, another signature, no
signature) or that has expired (``object_store_url_seconds``), with S3's own error codes.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account
from polartep_hub.data.models import Dataset
from polartep_hub.data.object_store import ObjectStoreSettings, check_object_key, read_credentials_file
from polartep_hub.data.store import dataset_bytes, sweep_orphans
from polartep_hub.service.config import ConfigError, ServiceConfig
from polartep_hub.settings import PlatformSettings
from polartep_hub.usage.storage import quota_bytes, record_sample
from tests.helpers.s3_server import BUCKET, SECRET_ACCESS_KEY, S3Server, running_s3_server
from tests.helpers.service_fakes import user

DATASETS = "api/v1/datasets"
CHIPS = f"{DATASETS}/sea-ice/chips"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


# The shortest presigned-URL lifetime the setting object_store_url_seconds accepts.
URL_SECONDS_MIN = PlatformSettings.class_traits()["object_store_url_seconds"].min


@pytest.fixture
def url_seconds() -> int:
    return 300  # the setting's default; a test parametrizes it to change it


@pytest.fixture
def service_config(service_config: ServiceConfig, s3: S3Server, url_seconds: int) -> ServiceConfig:
    s3.empty()
    return dataclasses.replace(service_config, object_store=s3.settings(url_seconds=url_seconds))


@pytest.fixture
def projects(api, fake_hub) -> None:
    """sea-ice: alice (owner), bob (member). glaciers: eve (owner). carol belongs to nothing."""
    for name in ("eve", "carol"):
        fake_hub.tokens[f"{name}-token"] = user(name)
    for name in ("alice", "bob", "eve", "carol"):
        assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200
    assert api.post("api/v1/projects", token="alice-token", json={"name": "sea-ice"}).status_code == 201
    added = api.post("api/v1/projects/sea-ice/members", token="alice-token", json={"user": "bob"})
    assert added.status_code == 201
    assert api.post("api/v1/projects", token="eve-token", json={"name": "glaciers"}).status_code == 201


@pytest.fixture
def chips(api, projects) -> dict:
    response = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "chips", "storage_class": "object"}
    )
    assert response.status_code == 201, response.text
    return response.json()


def storage_key(app, name: str = "chips") -> str:
    with app.state.context.session() as session:
        return session.scalar(select(Dataset.storage_key).where(Dataset.name == name))


def put(api, key: str, data: bytes, token: str = "bob-token") -> None:
    answer = api.post(
        f"{CHIPS}/object-urls", token=token, json={"key": key, "method": "PUT", "bytes": len(data)}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["headers"] == {"Content-Length": str(len(data))}
    uploaded = httpx.put(body["url"], content=data, headers=body["headers"])
    assert uploaded.status_code == 200, uploaded.text


def get(api, key: str, token: str) -> bytes:
    answer = api.post(f"{CHIPS}/object-urls", token=token, json={"key": key})
    assert answer.status_code == 200, answer.text
    fetched = httpx.get(answer.json()["url"])
    assert fetched.status_code == 200
    return fetched.content


def test_a_dataset_of_the_object_class_lives_under_its_own_prefix_in_the_bucket(
    api, app, s3, chips, tmp_path
):
    assert (chips["storage_class"], chips["in_object_store"], chips["mount_path"]) == ("object", True, None)
    assert not (tmp_path / "data" / "object").exists()  # no folder: the store holds it
    put(api, "2026/01/chip-001.bin", b"x" * 1000)
    put(api, "readme.txt", b"synthetic chips")
    key = storage_key(app)
    assert s3.bucket_keys() == [f"datasets/{key}/2026/01/chip-001.bin", f"datasets/{key}/readme.txt"]

    listed = api.get(f"{CHIPS}/objects", token="alice-token")
    assert listed.status_code == 200
    assert [(o["key"], o["bytes"]) for o in listed.json()["objects"]] == [
        ("2026/01/chip-001.bin", 1000),
        ("readme.txt", 15),
    ]
    assert listed.json()["next"] is None
    only = api.get(f"{CHIPS}/objects", token="alice-token", params={"prefix": "2026/"})
    assert [o["key"] for o in only.json()["objects"]] == ["2026/01/chip-001.bin"]
    paged = api.get(f"{CHIPS}/objects", token="alice-token", params={"limit": 1})
    assert [o["key"] for o in paged.json()["objects"]] == ["2026/01/chip-001.bin"]
    assert paged.json()["next"] == "2026/01/chip-001.bin"
    rest = api.get(
        f"{CHIPS}/objects", token="alice-token", params={"limit": 1, "after": paged.json()["next"]}
    )
    assert [o["key"] for o in rest.json()["objects"]] == ["readme.txt"]

    assert get(api, "readme.txt", "alice-token") == b"synthetic chips"
    assert api.get(CHIPS, token="bob-token").json()["bytes"] == 1015
    with app.state.context.session() as session:
        assert dataset_bytes(session, app.state.context.storage_roots) == {"sea-ice/chips": 1015}

    removed = api.request("DELETE", f"{CHIPS}/objects", token="bob-token", params={"key": "readme.txt"})
    assert removed.status_code == 204
    assert s3.bucket_keys() == [f"datasets/{key}/2026/01/chip-001.bin"]
    missing = api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "readme.txt"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "dataset sea-ice/chips has no object 'readme.txt'"


def test_a_granted_reader_reads_but_gets_no_put_url_and_nothing_after_revocation(api, s3, chips):
    put(api, "a.bin", b"abc")
    assert api.request("PUT", f"{CHIPS}/grants/glaciers", token="alice-token").status_code == 200
    assert [o["key"] for o in api.get(f"{CHIPS}/objects", token="eve-token").json()["objects"]] == ["a.bin"]
    assert get(api, "a.bin", "eve-token") == b"abc"

    refused = api.post(
        f"{CHIPS}/object-urls", token="eve-token", json={"key": "b.bin", "method": "PUT", "bytes": 3}
    )
    assert refused.status_code == 403
    assert (
        refused.json()["detail"] == "read-only access to sea-ice/chips: only members of 'sea-ice' may write"
    )
    deleting = api.request("DELETE", f"{CHIPS}/objects", token="eve-token", params={"key": "a.bin"})
    assert deleting.status_code == 403
    assert len(s3.bucket_keys()) == 1

    assert api.request("DELETE", f"{CHIPS}/grants/glaciers", token="alice-token").status_code == 200
    assert api.get(f"{CHIPS}/objects", token="eve-token").status_code == 404
    assert api.post(f"{CHIPS}/object-urls", token="eve-token", json={"key": "a.bin"}).status_code == 404


def test_a_stranger_gets_404_for_every_object_call(api, s3, chips):
    put(api, "a.bin", b"abc")
    for response in (
        api.get(f"{CHIPS}/objects", token="carol-token"),
        api.post(f"{CHIPS}/object-urls", token="carol-token", json={"key": "a.bin"}),
        api.post(f"{CHIPS}/object-urls", token="carol-token", json={"key": "b", "method": "PUT", "bytes": 1}),
        api.request("DELETE", f"{CHIPS}/objects", token="carol-token", params={"key": "a.bin"}),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == "no dataset 'chips' in project 'sea-ice' that you may see"
    assert len(s3.bucket_keys()) == 1


BAD_KEYS = [
    "..",
    "../other/x",
    "a/../../b",
    "/etc/passwd",
    "%2e%2e/x",
    "a/%2E%2E/%2e%2e/b",
    "%252e%252e/x",
    "a%2f..%2fb",
    "a\x00b",
    "a\nb",
    "a\\..\\b",
    "a//b",
    "./a",
    "dir/",
    "",
    "k" * 901,
    "%ff%fe",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=range(len(BAD_KEYS)))
def test_object_keys_with_path_tricks_answer_400_and_store_nothing(api, s3, chips, key):
    for method in ("PUT", "GET"):
        answer = api.post(
            f"{CHIPS}/object-urls", token="bob-token", json={"key": key, "method": method, "bytes": 1}
        )
        assert answer.status_code == 400, (method, answer.text)
        assert "use a relative path of 1-900 UTF-8 bytes" in answer.json()["detail"]
    deleting = api.request("DELETE", f"{CHIPS}/objects", token="bob-token", params={"key": key})
    assert deleting.status_code == 400
    assert s3.bucket_keys() == []


def test_a_put_url_needs_the_upload_size_and_fits_one_put(api, chips):
    unsized = api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "a", "method": "PUT"})
    assert unsized.status_code == 400
    assert unsized.json()["detail"] == "bytes: the upload's size, 0 to 5368709120 (one PUT)"
    huge = api.post(
        f"{CHIPS}/object-urls", token="bob-token", json={"key": "a", "method": "PUT", "bytes": 6 << 30}
    )
    assert huge.status_code == 422


def test_a_put_url_past_the_paying_owners_object_quota_answers_413_and_signs_nothing(api, app, chips):
    # alice created sea-ice, so she pays for its datasets; fill her object storage to 100 bytes under its quota.
    with app.state.context.session() as session:
        alice = session.scalar(select(Account).where(Account.name == "alice"))
        limit = quota_bytes(app.state.context.catalogue, alice, "object")
        record_sample(session, "alice", "object", "home", limit - 100)
        session.commit()
    asked = {"key": "a.bin", "method": "PUT"}
    fits = api.post(f"{CHIPS}/object-urls", token="bob-token", json={**asked, "bytes": 100})
    assert fits.status_code == 200, fits.text
    over = api.post(f"{CHIPS}/object-urls", token="bob-token", json={**asked, "bytes": 101})
    assert over.status_code == 413
    assert set(over.json()) == {"detail"}  # no URL
    assert over.json()["detail"].startswith(
        "Dataset 'chips' is charged to alice, the paying owner of its project. Your Object storage is full"
    )


def test_deleting_the_dataset_deletes_its_prefix(api, s3, chips):
    other = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "kept", "storage_class": "object"}
    )
    assert other.status_code == 201
    put(api, "a.bin", b"abc")
    put(api, "b/c.bin", b"defg")
    kept = api.post(
        f"{DATASETS}/sea-ice/kept/object-urls",
        token="bob-token",
        json={"key": "k", "method": "PUT", "bytes": 1},
    )
    assert httpx.put(kept.json()["url"], content=b"k", headers=kept.json()["headers"]).status_code == 200
    assert len(s3.bucket_keys()) == 3
    assert api.request("DELETE", CHIPS, token="alice-token").status_code == 204
    assert [k.rsplit("/", 1)[1] for k in s3.bucket_keys()] == ["k"]  # only the other dataset's object is left


def test_prefixes_without_a_dataset_are_swept(api, app, s3, chips):
    put(api, "a.bin", b"abc")
    orphan = "0123456789abcdef0123456789abcdef"
    s3.client.put_object(Bucket=BUCKET, Key=f"datasets/{orphan}/x", Body=b"1")
    s3.client.put_object(Bucket=BUCKET, Key="not-ours/x", Body=b"1")
    with app.state.context.session() as session:
        removed = sweep_orphans(session, app.state.context.storage_roots)
    assert removed == [f"s3://{BUCKET}/datasets/{orphan}/"]
    assert sorted(s3.bucket_keys()) == [f"datasets/{storage_key(app)}/a.bin", "not-ours/x"]


def test_datasets_of_other_classes_have_no_objects_and_keep_their_mounts(api, app, chips):
    made = api.post(
        DATASETS, token="bob-token", json={"project": "sea-ice", "name": "daily", "storage_class": "hdd"}
    )
    assert made.status_code == 201 and made.json()["mount_path"] == "datasets/sea-ice/daily"
    refused = api.get(f"{DATASETS}/sea-ice/daily/objects", token="bob-token")
    assert refused.status_code == 409
    assert "its files are in your server at datasets/sea-ice/daily" in refused.json()["detail"]
    mounts = api.get("api/v1/users/bob/dataset-mounts", token="hub-token").json()["mounts"]
    assert [(m["project"], m["name"]) for m in mounts] == [("sea-ice", "daily")]  # nothing to mount for chips


def test_the_platform_key_pair_is_in_no_answer(api, chips):
    put(api, "a.bin", b"abc")
    answers = [
        api.get(DATASETS, token="bob-token"),
        api.get(CHIPS, token="bob-token"),
        api.get(f"{CHIPS}/objects", token="bob-token"),
        api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "a.bin"}),
        api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "b", "method": "PUT", "bytes": 1}),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert SECRET_ACCESS_KEY not in answer.text
    url = answers[3].json()
    assert url["expires_in"] == 300 and "X-Amz-Expires=300" in url["url"]


def test_the_settings_never_show_the_secret_and_the_file_is_read(tmp_path: Path):
    settings = ObjectStoreSettings(
        endpoint="http://127.0.0.1:1", bucket="b", access_key_id="id", secret_access_key="s3cr3t"
    )
    assert "s3cr3t" not in repr(settings)
    good = tmp_path / "keys"
    good.write_text("# the platform's pair\naccess_key_id = AKIA1\nsecret_access_key = abc=def\n")
    assert read_credentials_file(good) == ("AKIA1", "abc=def")
    bad = tmp_path / "bad"
    bad.write_text("access_key_id = AKIA1\n")
    with pytest.raises(ValueError, match="lacks secret_access_key"):
        read_credentials_file(bad)


def test_the_service_reads_the_store_settings_from_its_environment(tmp_path: Path):
    base = {"POLARTEP_OBJECT_STORE_ENDPOINT": "http://127.0.0.1:9000", "POLARTEP_OBJECT_STORE_BUCKET": "b"}
    with pytest.raises(ConfigError, match="needs its key pair"):
        ServiceConfig.from_env(base)
    keys = tmp_path / "keys"
    keys.write_text("access_key_id=A\nsecret_access_key=S\n")
    config = ServiceConfig.from_env({**base, "POLARTEP_OBJECT_STORE_CREDENTIALS_FILE": str(keys)})
    assert config.object_store is not None
    assert (config.object_store.access_key_id, config.object_store.secret_access_key) == ("A", "S")
    from_env = ServiceConfig.from_env(
        {**base, "POLARTEP_OBJECT_STORE_ACCESS_KEY_ID": "A2", "POLARTEP_OBJECT_STORE_SECRET_ACCESS_KEY": "S2"}
    )
    assert from_env.object_store.secret_access_key == "S2"
    assert ServiceConfig.from_env({}).object_store is None  # the embedded default: the object class on disk


def test_check_object_key_accepts_ordinary_keys():
    for key in ("a", "2026/01/chip-001.npy", "sea ice/ä ö.nc", "a..b/c.d", "x" * 900):
        assert check_object_key(key) == key
    # Percent signs that decode to safe text are kept as they are.
    assert check_object_key("weird%20name") == "weird%20name"


def test_the_cli_says_where_an_object_dataset_is(api, chips):
    from polartep_hub.cli.datasets import render_dataset

    shown = render_dataset(api.get(CHIPS, token="bob-token").json())
    assert (
        "in servers at:  the object store (polartep_lab.datasets.ObjectDataset('sea-ice', 'chips'))" in shown
    )
    assert "bytes:          0" in shown


def store_refusal(response: httpx.Response) -> tuple[int, str]:
    """The store's status and S3 error code (``<Code>`` of its XML answer)."""
    found = re.search(r"<Code>([^<]+)</Code>", response.text)
    return response.status_code, found.group(1) if found else ""


def test_the_store_refuses_urls_changed_after_signing(api, s3, chips):
    put(api, "kept.bin", b"kept")
    key = s3.bucket_keys()[0].rsplit("/", 1)[0]  # datasets/<storage key>
    signed = api.post(
        f"{CHIPS}/object-urls", token="bob-token", json={"key": "a.bin", "method": "PUT", "bytes": 3}
    )
    url, headers = signed.json()["url"], signed.json()["headers"]
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == [
        "content-length;host"
    ]  # the size is signed

    other_key = httpx.put(url.replace("/a.bin?", "/planted.bin?"), content=b"abc", headers=headers)
    assert store_refusal(other_key) == (403, "SignatureDoesNotMatch")
    other_size = httpx.put(url, content=b"abcd", headers={"Content-Length": "4"})
    assert store_refusal(other_size) == (403, "SignatureDoesNotMatch")
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    other_signature = httpx.put(url.replace(signature, forged), content=b"abc", headers=headers)
    assert store_refusal(other_signature) == (403, "SignatureDoesNotMatch")
    longer = httpx.put(
        url.replace("X-Amz-Expires=300", "X-Amz-Expires=3600"), content=b"abc", headers=headers
    )
    assert store_refusal(longer) == (403, "SignatureDoesNotMatch")
    unsigned = httpx.put(url.split("?")[0], content=b"abc", headers=headers)
    assert store_refusal(unsigned) == (403, "AccessDenied")
    assert s3.bucket_keys() == [f"{key}/kept.bin"]  # none of them stored anything

    assert httpx.put(url, content=b"abc", headers=headers).status_code == 200  # the URL as signed works
    assert sorted(s3.bucket_keys()) == [f"{key}/a.bin", f"{key}/kept.bin"]

    # A GET URL for one object opens no other.
    read = api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "a.bin"}).json()["url"]
    assert httpx.get(read).content == b"abc"
    assert store_refusal(httpx.get(read.replace("/a.bin?", "/kept.bin?"))) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("url_seconds", [URL_SECONDS_MIN])
def test_the_store_refuses_a_url_once_it_has_expired(api, s3, chips, url_seconds):
    put(api, "a.bin", b"abc")
    answer = api.post(f"{CHIPS}/object-urls", token="bob-token", json={"key": "a.bin"}).json()
    assert answer["expires_in"] == URL_SECONDS_MIN and f"X-Amz-Expires={URL_SECONDS_MIN}" in answer["url"]
    issued = time.monotonic()
    assert httpx.get(answer["url"]).content == b"abc"  # works while it lives ...
    time.sleep(max(0.0, issued + URL_SECONDS_MIN + 1.5 - time.monotonic()))
    assert store_refusal(httpx.get(answer["url"])) == (
        403,
        "AccessDenied",
    )  # ... and not after ("Request has expired")
    assert "Request has expired" in httpx.get(answer["url"]).text
