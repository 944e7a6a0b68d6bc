"""Attacks on processor runs from inside a real user server (the server's own token and system user).

* another user's private processor cannot be run, and their runs cannot be read, listed or cancelled (404);
* a parameter name crafted as code is refused (400) and nothing runs;
* a user who swaps a file of their own run folder for a symbolic link (to the platform's database) or a FIFO gets
  404 from the service (the log falls back to the lines the service streamed), never the target's bytes, and the
  service does not hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.inside_server import run_as_user_server
from tests.helpers.processors import create_processor, echo_notebook

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"


def _final(platform, token, run_id):
    def done():
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        return run if run["status"] in ("successful", "failed", "dismissed") else None

    return wait_for(done, 240, interval=0.5, what="the run to end")


def test_runs_refuse_what_a_user_server_must_not_do(platform, new_user):
    mallory, mallory_token = new_user(plan="trial")
    victim, victim_token = new_user(plan="trial")
    processors_dir = Path(platform.settings.processors_dir)
    create_processor(
        platform.settings.service_db_url, processors_dir, "victims-echo", victim, echo_notebook()
    )
    create_processor(
        platform.settings.service_db_url, processors_dir, "mallorys-echo", mallory, echo_notebook()
    )
    victim_run = platform.api(
        "POST", f"{API}/processors/victims-echo/runs", victim_token, json={"inputs": {}}
    ).json()
    own_run = platform.api(
        "POST", f"{API}/processors/mallorys-echo/runs", mallory_token, json={"inputs": {}}
    ).json()
    assert _final(platform, mallory_token, own_run["id"])["status"] == "successful"
    database = platform.settings.state_path / "platform.sqlite"

    result = run_as_user_server(
        platform,
        mallory,
        mallory_token,
        f"""
        import json, os, httpx
        api = os.environ["POLARTEP_SERVICE_URL"].rstrip("/") + "/api/v1"
        h = {{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}}
        out = {{}}
        r = httpx.post(api + "/processors/victims-echo/runs", headers=h, json={{"inputs": {{}}}})
        out["run_private"] = [r.status_code, r.json()["detail"]]
        for path in ("", "/log", "/notebook", "/outputs/labelfile"):
            r = httpx.get(api + "/runs/{victim_run["id"]}" + path, headers=h)
            out["read" + path] = [r.status_code, r.json()["detail"]]
        r = httpx.post(api + "/runs/{victim_run["id"]}/cancel", headers=h)
        out["cancel"] = r.status_code
        out["listed"] = [run["id"] for run in httpx.get(api + "/runs", headers=h).json()["runs"]]
        r = httpx.post(api + "/processors/mallorys-echo/runs", headers=h,
                       json={{"inputs": {{"x = 1\\nimport os; os.system('id')\\ny": 1}}}})
        out["crafted_name"] = [r.status_code, r.json()["detail"]]
        folder = os.path.expanduser("~/processor-runs/{own_run["id"]}")
        os.remove(os.path.join(folder, "output.ipynb"))
        os.symlink({str(database)!r}, os.path.join(folder, "output.ipynb"))
        os.remove(os.path.join(folder, "label.txt"))
        os.mkfifo(os.path.join(folder, "label.txt"))
        r = httpx.get(api + "/runs/{own_run["id"]}/notebook", headers=h, timeout=20)
        out["symlink"] = [r.status_code, r.json()["detail"], b"SQLite" in r.content]
        r = httpx.get(api + "/runs/{own_run["id"]}/outputs/labelfile", headers=h, timeout=20)
        out["fifo"] = [r.status_code, r.json()["detail"]]
        os.remove(os.path.join(folder, "run.log"))
        os.symlink("/etc/shadow", os.path.join(folder, "run.log"))
        r = httpx.get(api + "/runs/{own_run["id"]}/log", headers=h, timeout=20)
        out["log_symlink"] = [r.status_code, "root:" in r.text]
        print(json.dumps(out))
        """,
    )
    no_run = [404, f"no run {victim_run['id']!r}"]
    assert result["run_private"] == [404, "no processor 'victims-echo'"]
    assert result["read"] == result["read/log"] == result["read/notebook"] == no_run
    assert result["read/outputs/labelfile"] == no_run
    assert result["cancel"] == 404
    assert result["listed"] == [own_run["id"]]
    crafted = repr("x = 1\nimport os; os.system('id')\ny")
    assert result["crafted_name"] == [
        400,
        f"invalid inputs: {crafted}: is not an input of this processor (its inputs: days, label, smooth, threshold)",
    ]
    assert result["symlink"] == [404, "the file is not there (or not a plain file)", False]
    assert result["fifo"] == [404, "the file is not a plain file of the run's owner within 64 MiB"]
    assert result["log_symlink"] == [200, False]
    assert platform.api("GET", f"{API}/runs", mallory_token).json()["total"] == 1
