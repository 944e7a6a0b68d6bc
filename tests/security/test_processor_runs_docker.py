"""Attacks on Docker-mode processor runs from inside a real Docker user server (its own token, uid 1000).

The run's files are in the user's home volume, which their server mounts read-write; the service reads them through
the engine (``run_files.DockerRunFiles``). A user who swaps files of their own run for a symbolic link (to a file of
their own, to the image's ``/etc/passwd``), a FIFO, or the run folder itself for a link to another run, gets the
exact refusal from the service and never the target's bytes, and the service does not hang; the log falls back to
the lines the service streamed. Another user's run is 404 from inside the server too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker.conftest import (  # noqa: F401  (fixtures)
    docker_engine,
    docker_platform,
    docker_user,
    test_catalogue,
)
from tests.harness import wait_for
from tests.helpers.docker_platform import exec_in_server
from tests.helpers.processors import create_processor, echo_notebook

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.timeout(900)]

API = "/services/platform/api/v1"


def _final(platform, token, run_id):
    def done():
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        return run if run["status"] in ("successful", "failed", "dismissed") else None

    return wait_for(done, 300, interval=0.5, what="the run to end")


def test_links_fifos_and_swapped_folders_in_a_docker_run_folder_are_refused(docker_platform, docker_user):  # noqa: F811
    mallory, mallory_token = docker_user("rmallory")
    victim, victim_token = docker_user("rvictim")
    processors_dir = Path(docker_platform.settings.processors_dir)
    database_url = docker_platform.settings.service_db_url
    create_processor(database_url, processors_dir, "mallory-decho", mallory, echo_notebook())
    create_processor(database_url, processors_dir, "victim-decho", victim, echo_notebook())

    def run(token, name):
        r = docker_platform.api("POST", f"{API}/processors/{name}/runs", token, json={"inputs": {}})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    victim_run = run(victim_token, "victim-decho")
    own, other = run(mallory_token, "mallory-decho"), run(mallory_token, "mallory-decho")
    for token, run_id in ((mallory_token, own), (mallory_token, other), (victim_token, victim_run)):
        assert _final(docker_platform, token, run_id)["status"] == "successful"

    docker_platform.spawn(mallory, mallory_token, {"profile": "interactive"})
    try:
        result = exec_in_server(
            mallory,
            f"""
            import json, os, httpx
            api = os.environ["POLARTEP_SERVICE_URL"].rstrip("/") + "/api/v1"
            h = {{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}}
            out = {{}}
            for path in ("", "/log", "/notebook", "/outputs/labelfile"):
                r = httpx.get(api + "/runs/{victim_run}" + path, headers=h, timeout=60)
                out["victim" + path] = [r.status_code, r.json()["detail"]]
            runs = os.path.expanduser("~/processor-runs")
            folder = os.path.join(runs, "{own}")
            open(os.path.expanduser("~/mine.txt"), "w").write("MINE")
            os.remove(os.path.join(folder, "output.ipynb"))
            os.symlink(os.path.expanduser("~/mine.txt"), os.path.join(folder, "output.ipynb"))
            r = httpx.get(api + "/runs/{own}/notebook", headers=h, timeout=60)
            out["symlink"] = [r.status_code, r.json()["detail"], b"MINE" in r.content]
            os.remove(os.path.join(folder, "label.txt"))
            os.mkfifo(os.path.join(folder, "label.txt"))
            r = httpx.get(api + "/runs/{own}/outputs/labelfile", headers=h, timeout=60)
            out["fifo"] = [r.status_code, r.json()["detail"]]
            os.remove(os.path.join(folder, "run.log"))
            os.symlink("/etc/passwd", os.path.join(folder, "run.log"))
            r = httpx.get(api + "/runs/{own}/log", headers=h, timeout=60)
            out["log_symlink"] = [r.status_code, "root:" in r.text]
            # The other run's folder swapped for a link to the first one's.
            os.rename(os.path.join(runs, "{other}"), os.path.join(runs, "moved"))
            os.symlink(os.path.join(runs, "moved"), os.path.join(runs, "{other}"))
            r = httpx.get(api + "/runs/{other}/notebook", headers=h, timeout=60)
            out["folder_symlink"] = [r.status_code, r.json()["detail"]]
            print(json.dumps(out))
            """,
        )
    finally:
        docker_platform.stop_server(mallory)
    no_run = [404, f"no run {victim_run!r}"]
    assert result["victim"] == result["victim/log"] == result["victim/notebook"] == no_run
    assert result["victim/outputs/labelfile"] == no_run
    assert result["symlink"] == [404, "the file is not there (or not a plain file)", False]
    assert result["fifo"] == [404, "the file is not a plain file of the run's owner within 64 MiB"]
    assert result["log_symlink"] == [200, False]
    assert result["folder_symlink"] == [404, "the file is not there (or not a plain file)"]
