"""Processor runs in Docker mode, against the real engine, hub, gateway and service.

Specification:

* a run executes papermill in a worker *container* of the invoker's own cluster (the processor's profile image, the
  invoker's home volume at ``/home/jovyan``), so the output notebook, outputs and log land in the invoker's volume,
  owned by the volume's user; the run API reads them through the engine (``run_files.DockerRunFiles``);
* defaults and overrides are injected as validated values; cancel kills the kernel process inside the worker
  container; a run past its timeout fails cleanly; another user reads none of it (404);
* the engine-side reader refuses links, FIFOs and files of another owner exactly as local mode does, and never
  creates a volume that is not there;
* datasets: the invoker's scheduler and worker containers get the datasets their servers get (read-write for
  members, read-only for a granted project, nothing for a stranger), so a run's Dask task writes, reads or gets EROFS.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from polartep_hub.gateway.backends.docker import LABEL_ROLE, LABEL_USER
from polartep_hub.processors.run_files import MAX_FILE_BYTES, DockerRunFiles
from polartep_hub.processors.runs import RunFileUnavailable
from tests.docker.engine import docker, home_volume, inspect, unique_user_name
from tests.harness import wait_for
from tests.helpers.docker_platform import containers
from tests.helpers.processors import create_processor, echo_notebook, notebook

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]

API = "/services/platform/api/v1"
FINAL = ("successful", "failed", "dismissed")


def add_processor(platform, name, owner, content=None, **changes):
    from pathlib import Path

    return create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        name,
        owner,
        content or echo_notebook(),
        **changes,
    )


def start(platform, token, name, inputs=None):
    r = platform.api("POST", f"{API}/processors/{name}/runs", token, json={"inputs": inputs or {}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_final(platform, token, run_id, timeout=300):
    def done():
        r = platform.api("GET", f"{API}/runs/{run_id}", token)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] in FINAL else None

    return wait_for(done, timeout, interval=0.5, what=f"run {run_id} to end")


def worker_of(user: str) -> str:
    """The name of the user's (one) running worker container."""
    found = wait_for(
        lambda: [c for c in containers(**{LABEL_USER: user, LABEL_ROLE: "worker"}) if c["State"]["Running"]],
        120,
        interval=0.5,
        what=f"a worker container of {user}",
    )
    return found[0]["Name"].lstrip("/")


def in_container(name: str, *command: str):
    return docker("exec", name, *command, check=False)


def kernel_pid(platform, user, token, run_id) -> tuple[str, int]:
    """(worker container, the kernel's pid inside it), once the kernel wrote it."""

    def written():
        worker = worker_of(user)
        done = in_container(worker, "cat", f"/home/jovyan/processor-runs/{run_id}/kernel.pid")
        if done.returncode == 0 and done.stdout.strip():
            return worker, int(done.stdout.strip())
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        assert run["status"] not in FINAL, (run["status"], run["message"])
        return None

    return wait_for(written, 180, interval=0.5, what="the kernel's pid")


def process_alive(container: str, pid: int) -> bool:
    return in_container(container, "test", "-d", f"/proc/{pid}").returncode == 0


SLEEPER = notebook(
    "seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(seconds)"
)
SLEEPER_DEFINITION = {"inputs": {"seconds": {"type": "integer", "default": 600}}, "outputs": {}}


@pytest.fixture(scope="module")
def alice(docker_platform):
    """One invoker for the module's run tests, so its warm run cluster serves them all."""
    name = unique_user_name("runalice")
    return name, docker_platform.create_user(name, plan="large")


def test_the_reader_refuses_links_fifos_foreign_files_and_missing_volumes(docker_engine):
    volume = f"polartep-t-runfiles-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume)
    try:
        setup = (
            "set -e; cd /v; mkdir -p processor-runs/r1/sub; echo -n plain > processor-runs/r1/ok.txt; "
            "echo -n secret > secret.txt; ln -s /v/secret.txt processor-runs/r1/link.txt; "
            "mkfifo processor-runs/r1/fifo; ln -s r1 processor-runs/r2; ln -s /etc processor-runs/r1/etc; "
            "echo -n big > processor-runs/r1/sub/deep.txt; chown -R 1000:1000 /v; "
            "echo -n root > processor-runs/r1/root.txt; chmod 644 processor-runs/r1/root.txt"
        )
        docker(
            "run",
            "--rm",
            "--user",
            "0",
            "--network",
            "none",
            "-v",
            f"{volume}:/v",
            "polartep/base",
            "sh",
            "-c",
            setup,
        )
        reader = DockerRunFiles("polartep/base")
        assert reader.read_run_file(volume, "r1", "ok.txt") == b"plain"
        assert reader.read_run_file(volume, "r1", "sub/deep.txt") == b"big"
        not_there = "the file is not there (or not a plain file)"
        not_plain = f"the file is not a plain file of the run's owner within {MAX_FILE_BYTES // 2**20} MiB"
        for run_id, relative, message in (
            ("r1", "link.txt", not_there),  # a link to the owner's own file: refused all the same
            ("r1", "etc/passwd", not_there),  # a link as a folder
            ("r2", "ok.txt", not_there),  # the run folder itself a link
            ("r1", "fifo", not_plain),  # would block a reader that opened it plainly
            ("r1", "root.txt", not_plain),  # another owner's file
            ("r1", "missing.txt", not_there),
            ("r1", "../secret.txt", "not a file of the run"),
        ):
            with pytest.raises(RunFileUnavailable) as refused:
                reader.read_run_file(volume, run_id, relative)
            assert str(refused.value) == message, (run_id, relative)
        started = time.monotonic()
        with pytest.raises(RunFileUnavailable):
            reader.read_run_file(volume, "r1", "fifo")
        assert time.monotonic() - started < 15
        missing = f"polartep-t-nothing-{uuid.uuid4().hex[:8]}"
        with pytest.raises(RunFileUnavailable) as refused:
            reader.read_run_file(missing, "r1", "ok.txt")
        assert str(refused.value) == "the run's folder is not there"
        assert inspect("volume", missing) is None
        # No reader container is left behind.
        left = docker("ps", "-aq", "--filter", "label=org.polartep.run-files").stdout.split()
        assert left == []
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_runs_with_defaults_and_overrides_write_into_the_invokers_volume(docker_platform, alice, docker_user):
    user, token = alice
    add_processor(docker_platform, "decho", user)
    first = start(docker_platform, token, "decho")
    done = wait_final(docker_platform, token, first)
    assert (done["status"], done["message"]) == ("successful", ""), done
    assert done["results"] == {"total": 450, "label": "default-label"}
    assert done["progress"]["cells_done"] == done["progress"]["cells_total"] >= 2

    crafted = "\"; import os; os.system('touch /tmp/pwned') #\n'''\\"
    second = start(docker_platform, token, "decho", {"threshold": 2.5, "days": 4, "label": crafted})
    done = wait_final(docker_platform, token, second)
    assert done["status"] == "successful", done
    assert done["results"] == {"total": 10.0, "label": crafted}
    r = docker_platform.api("GET", f"{API}/runs/{second}/notebook", token)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{second}.ipynb"'
    cells = json.loads(r.content)["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    source = "".join(injected[0]["source"])
    assert "threshold = 2.5\n" in source and "days = 4\n" in source
    r = docker_platform.api("GET", f"{API}/runs/{second}/outputs/labelfile", token)
    assert (r.status_code, r.content.decode()) == (200, f"{crafted}:4")
    log = docker_platform.api("GET", f"{API}/runs/{second}/log", token)
    assert log.status_code == 200
    # The worker was a container of the profile's image with the invoker's volume, and wrote there as its user.
    worker = worker_of(user)
    info = inspect("container", worker)
    assert info["Config"]["Image"] == "polartep/base"
    assert info["Config"]["User"] == "1000:1000"
    volumes = [(m["Name"], m["Destination"]) for m in info["Mounts"] if m["Type"] == "volume"]
    assert volumes == [(home_volume(user), "/home/jovyan")]
    listing = in_container(
        worker, "stat", "-c", "%u %F", f"/home/jovyan/processor-runs/{second}/output.ipynb"
    )
    assert listing.stdout.strip() == "1000 regular file"
    assert in_container(worker, "test", "-e", "/tmp/pwned").returncode == 1
    # Both runs used the same warm cluster: one worker container.
    assert len(containers(**{LABEL_USER: user, LABEL_ROLE: "worker"})) == 1

    bob, bob_token = docker_user("runbob")
    for path in ("", "/log", "/notebook", "/outputs/labelfile"):
        r = docker_platform.api("GET", f"{API}/runs/{second}{path}", bob_token)
        assert (r.status_code, r.json()["detail"]) == (404, f"no run {second!r}")


def test_cancel_kills_the_kernel_in_the_worker_container(docker_platform, alice):
    user, token = alice
    add_processor(docker_platform, "dsleeper", user, SLEEPER, **SLEEPER_DEFINITION)
    run_id = start(docker_platform, token, "dsleeper")
    worker, pid = kernel_pid(docker_platform, user, token, run_id)
    assert process_alive(worker, pid)
    r = docker_platform.api("POST", f"{API}/runs/{run_id}/cancel", token)
    assert r.status_code == 202
    done = wait_final(docker_platform, token, run_id, timeout=60)
    assert (done["status"], done["message"]) == ("dismissed", "cancelled; the kernel was stopped")
    wait_for(lambda: not process_alive(worker, pid), 15, what="the kernel to be gone")


def test_a_run_past_its_timeout_fails_and_its_kernel_is_gone(docker_platform, alice):
    user, token = alice
    add_processor(docker_platform, "dsleeper-timeout", user, SLEEPER, timeout=20, **SLEEPER_DEFINITION)
    run_id = start(docker_platform, token, "dsleeper-timeout")
    worker, pid = kernel_pid(docker_platform, user, token, run_id)
    began = time.monotonic()
    done = wait_final(docker_platform, token, run_id, timeout=90)
    assert time.monotonic() - began < 40
    assert (done["status"], done["message"]) == (
        "failed",
        "the run passed its timeout of 20 s and was stopped",
    )
    wait_for(lambda: not process_alive(worker, pid), 15, what="the kernel to be gone")


DATASET_PROBE = notebook(
    'path = "x"\nwrite = False\n',
    """
import errno, json, os
result = {}
try:
    if write:
        with open(os.path.expanduser(path), "w") as f:
            f.write("ice from a task")
        result["wrote"] = True
    with open(os.path.expanduser(path)) as f:
        result["read"] = f.read()
except OSError as e:
    result["error"] = errno.errorcode.get(e.errno)
json.dump({"probe": json.dumps(result)}, open("outputs.json", "w"))
""",
)
DATASET_PROBE_DEFINITION = {
    "inputs": {
        "path": {"type": "string", "maxLength": 300, "default": "x"},
        "write": {"type": "boolean", "default": False},
    },
    "outputs": {"probe": {"type": "value", "schema": {"type": "string"}}},
    "visibility": "public",
}


def test_dask_workers_of_runs_get_the_datasets_of_their_servers(docker_platform, docker_user):
    owner, owner_token = docker_user("dsowner")
    reader, reader_token = docker_user("dsreader")
    stranger, stranger_token = docker_user("dsstranger")
    own, read = f"dso{os.getpid()}", f"dsr{os.getpid()}"
    for project, token in ((own, owner_token), (read, reader_token)):
        r = docker_platform.api("POST", f"{API}/projects", token, json={"name": project})
        assert r.status_code == 201, r.text
    r = docker_platform.api(
        "POST", f"{API}/datasets", owner_token, json={"project": own, "name": "ice", "storage_class": "hdd"}
    )
    assert r.status_code == 201, r.text
    assert (
        docker_platform.api("PUT", f"{API}/datasets/{own}/ice/grants/{read}", owner_token).status_code == 200
    )
    add_processor(docker_platform, "dsprobe", owner, DATASET_PROBE, **DATASET_PROBE_DEFINITION)
    target = f"~/datasets/{own}/ice/day1.txt"

    def probe(token, write):
        run_id = start(docker_platform, token, "dsprobe", {"path": target, "write": write})
        done = wait_final(docker_platform, token, run_id)
        assert done["status"] == "successful", done
        return json.loads(done["results"]["probe"])

    assert probe(owner_token, True) == {"wrote": True, "read": "ice from a task"}
    assert probe(reader_token, False) == {"read": "ice from a task"}
    assert probe(reader_token, True) == {"error": "EROFS"}
    assert probe(stranger_token, False) == {"error": "ENOENT"}

    # The same mounts on scheduler and worker containers, decided by the service.
    bind = f"/home/jovyan/datasets/{own}/ice"
    for user, expected in ((owner, [(bind, True)]), (reader, [(bind, False)]), (stranger, [])):
        for role in ("scheduler", "worker"):
            found = containers(**{LABEL_USER: user, LABEL_ROLE: role})
            assert found, (user, role)
            for info in found:
                binds = sorted((m["Destination"], m["RW"]) for m in info["Mounts"] if m["Type"] == "bind")
                assert binds == expected, (user, role)
