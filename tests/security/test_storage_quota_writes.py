"""Attack: keep writing through the platform once one's storage is over quota, from inside one's own server (issue 11).

sq (Trial: 0.1 TB of SSD, the class of homes here) owns a project with an SSD dataset and a published processor, and
writes into the dataset from her server. Then her SSD holds 0.2 TB (a sample written as the meter would). From
inside her running server, with her own token, she tries every write the platform makes for her: create another
dataset, write the dataset's collection and items, publish a new version of her processor, start a run (REST and
OGC API), publish a dashboard. Each answers 413 saying the class, what is used, the quota and by how much it is
over, and nothing is stored. After her next spawn the dataset is mounted read-only: she reads it but cannot write
into it.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import pytest

from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.usage.storage import record_sample
from tests.helpers.inside_server import run_inside_server
from tests.helpers.processor_registry import definition, notebook_bytes, publish_body

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"

FILES = """
import errno, json, os

def attempt(action):
    try:
        return {"error": None, "result": action()}
    except OSError as e:
        return {"error": type(e).__name__, "errno": errno.errorcode.get(e.errno)}

def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return "written"

def read(path):
    with open(path) as f:
        return f.read()
"""

WRITES = """
import json, os, httpx
base = os.environ["ATTACK_URL"] + "/services/platform"
headers = {"Authorization": "token " + os.environ["SQ_TOKEN"]}
project, pid = os.environ["PROJECT"], os.environ["PROCESSOR"]
dataset = base + f"/api/v1/datasets/{project}/obs"
item = {"type": "Feature", "stac_version": "1.0.0", "id": "day1", "geometry": None,
        "properties": {"datetime": "2026-11-01T00:00:00Z"}, "links": [], "assets": {}}
asks = {
    "create dataset": ("POST", base + "/api/v1/datasets", {"project": project, "name": "more", "storage_class": "ssd"}),
    "collection": ("PUT", dataset + "/collection", {"title": "Observations"}),
    "items": ("POST", dataset + "/items", item),
    "publish processor": ("POST", base + "/api/v1/processors", json.loads(os.environ["PUBLISH"])),
    "run": ("POST", base + f"/api/v1/processors/{pid}/runs", {"inputs": {"years": [1979]}}),
    "ogc execute": ("POST", base + f"/ogcapi/processes/{pid}/execution", {"inputs": {"years": [1979]}}),
    "publish dashboard": ("POST", base + "/api/v1/dashboards", {"title": "Ice", "notebook": json.loads(os.environ["NOTEBOOK"])}),
}
out = {}
for label, (method, url, body) in asks.items():
    r = httpx.request(method, url, json=body, headers=headers, timeout=60)
    out[label] = [r.status_code, r.json().get("detail", "")]
print(json.dumps(out))
"""

FULL = re.compile(
    r"Your SSD storage is full: 200\.\d\d GB of the 100\.00 GB of your Trial plan are used, and writing "
    r"\d+\.\d\d GB more would pass it by 100\.\d\d GB\. Delete files you no longer need, or ask an administrator "
    r"for a larger plan\."
)


def test_over_quota_every_platform_write_is_413_and_the_dataset_mounts_read_only(platform):
    tag = os.getpid()
    user, project, pid = f"sq{tag}", f"floe{tag}", f"ext{tag}"
    token = platform.create_user(user, plan="trial")
    r = platform.api("POST", f"{API}/projects", token, json={"name": project})
    assert r.status_code == 201, r.text
    r = platform.api(
        "POST", f"{API}/datasets", token, json={"project": project, "name": "obs", "storage_class": "ssd"}
    )
    assert r.status_code == 201, r.text
    r = platform.api(
        "POST", f"{API}/processors", token, json=publish_body(definition(pid=pid), notebook_bytes())
    )
    assert r.status_code == 201, r.text
    link = f"datasets/{project}/obs"
    platform.spawn(user, token)
    try:
        before = run_inside_server(
            platform, user, FILES + f"print(json.dumps(attempt(lambda: write({link + '/a.txt'!r}, 'ice'))))"
        )
        assert before == {"error": None, "result": "written"}  # within quota the member writes

        engine = make_engine(platform.settings.service_db_url)
        try:
            with make_sessionmaker(engine)() as session:  # 0.2 TB of SSD, as a sample of the meter would say
                record_sample(session, user, "ssd", "test:ballast", 200 * 10**9, now=datetime.now(UTC))
                session.commit()
        finally:
            engine.dispose()

        publish = publish_body(definition(pid=pid, version="1.0.1"), notebook_bytes())
        notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
        result = run_inside_server(
            platform,
            user,
            WRITES,
            env={
                "ATTACK_URL": platform.url,
                "SQ_TOKEN": token,
                "PROJECT": project,
                "PROCESSOR": pid,
                "PUBLISH": json.dumps(publish),
                "NOTEBOOK": json.dumps(notebook),
            },
        )
        assert {label: status for label, (status, _) in result.items()} == {
            "create dataset": 413,
            "collection": 413,
            "items": 413,
            "publish processor": 413,
            "run": 413,
            "ogc execute": 413,
            "publish dashboard": 413,
        }
        charged = f"is charged to {user}, the paying owner of its project. "
        assert result["create dataset"][1].startswith(f"Dataset 'more' {charged}")
        assert result["collection"][1].startswith(f"Dataset 'obs' {charged}")
        for label, (_, message) in result.items():
            assert FULL.search(message), (label, message)
        # Nothing was stored.
        datasets = platform.api("GET", f"{API}/datasets", token).json()["datasets"]
        assert [(d["project"], d["name"], d["title"]) for d in datasets] == [(project, "obs", "obs")]
        versions = platform.api("GET", f"{API}/processors/{pid}/versions", token)
        assert [v["version"] for v in versions.json()["versions"]] == ["1.0.0"], versions.text
        runs = platform.api("GET", f"{API}/runs", token).json()
        assert runs["runs"] == []
        assert platform.api("GET", f"{API}/dashboards", token).json()["dashboards"] == []

        # The next spawn mounts the dataset read-only: readable, not writable.
        platform.stop_server(user)
        platform.spawn(user, token)
        after = run_inside_server(
            platform,
            user,
            FILES + f"print(json.dumps([attempt(lambda: read({link + '/a.txt'!r})), "
            f"attempt(lambda: write({link + '/b.txt'!r}, 'more')), attempt(lambda: write({link + '/a.txt'!r}, 'x'))]))",
            mount_namespace=True,  # as the server's own processes see the files
        )
        assert after == [
            {"error": None, "result": "ice"},
            {"error": "OSError", "errno": "EROFS"},  # a new file
            {"error": "OSError", "errno": "EROFS"},  # her own file, writable to its owner but for the mount
        ]
    finally:
        platform.stop_server(user)
