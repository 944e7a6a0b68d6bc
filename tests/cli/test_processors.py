"""``polartep processors …`` as a user against a running platform: draft, publish, list, show, versions, share.

Specification: with the user's token (``POLARTEP_TOKEN``) the commands print the service's answers; a refused publish
exits 1 with the service's message on one line; without a token the command says where to get one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processor_registry import notebook_bytes

pytestmark = pytest.mark.hub

POLARTEP = str(Path(sys.executable).parent / "polartep")


def polartep(platform, token: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("POLARTEP_", "JUPYTERHUB_"))
    }
    env["POLARTEP_STATE_DIR"] = platform.env["POLARTEP_STATE_DIR"]
    env["POLARTEP_PUBLIC_URL"] = platform.env["POLARTEP_PUBLIC_URL"]
    if token:
        env["POLARTEP_TOKEN"] = token
    return subprocess.run(
        [POLARTEP, "processors", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_publish_list_show_versions_share(platform, new_user, tmp_path):
    user, token = new_user(plan="standard")
    _, other = new_user()
    notebook = tmp_path / "extent.ipynb"
    notebook.write_bytes(notebook_bytes())

    draft = polartep(platform, token, "draft", str(notebook))
    assert draft.returncode == 0, draft.stderr
    definition = json.loads(draft.stdout)
    assert definition["inputs"]["days"] == {"type": "integer", "default": 30}
    definition["id"] = pid = f"cli-{user}"
    (tmp_path / "processor.json").write_text(json.dumps(definition))

    published = polartep(platform, token, "publish", str(notebook), str(tmp_path / "processor.json"))
    assert (published.returncode, published.stdout.strip()) == (
        0,
        f"published {pid} 0.1.0 (version 1, new processor)",
    )
    again = polartep(platform, token, "publish", str(notebook), str(tmp_path / "processor.json"))
    assert (again.returncode, again.stderr.strip()) == (
        1,
        "polartep processors: version: 0.1.0 is already published; versions are immutable: "
        "publish a version greater than 0.1.0",
    )
    definition["version"], definition["timeout"] = "0.2.0", 1
    (tmp_path / "processor.json").write_text(json.dumps(definition))
    invalid = polartep(platform, token, "publish", str(notebook), str(tmp_path / "processor.json"))
    assert (invalid.returncode, invalid.stderr.strip()) == (
        1,
        "polartep processors: invalid request: invalid processor definition: timeout: must be at least 10",
    )

    listed = polartep(platform, token, "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith(pid))
    assert row.split()[:4] == [pid, "0.1.0", "private", user]
    shown = polartep(platform, token, "show", pid)
    assert "version:     0.1.0 (version 1 of 1)" in shown.stdout
    assert "input:       days: integer = 30" in shown.stdout
    versions = polartep(platform, token, "versions", pid, "--json")
    assert [v["version"] for v in json.loads(versions.stdout)["versions"]] == ["0.1.0"]

    assert polartep(platform, other, "show", pid).returncode == 1
    shared = polartep(platform, token, "share", pid, "--visibility", "public")
    assert shared.returncode == 0 and "visibility:  public" in shared.stdout
    assert polartep(platform, other, "show", pid).returncode == 0

    no_token = polartep(platform, None, "list")
    assert no_token.returncode == 1
    assert no_token.stderr.startswith("polartep processors: no token: set POLARTEP_TOKEN")
