"""Processor runs against a real hub, gateway and platform service: the REST API end to end.

Processors are written with the models (``tests/helpers/processors.py``); each run executes on the invoker's own
Dask Gateway run cluster, as the invoker's system user, with papermill.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.harness import wait_for
from tests.helpers.processors import create_processor, echo_notebook, notebook

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"
FINAL = ("successful", "failed", "dismissed")


def add_processor(platform, name, owner, content=None, **changes):
    return create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        name,
        owner,
        content or echo_notebook(),
        **changes,
    )


def start(platform, token, name, inputs=None, **extra):
    return platform.api(
        "POST", f"{API}/processors/{name}/runs", token, json={"inputs": inputs or {}, **extra}
    )


def wait_final(platform, token, run_id, timeout=240):
    def done():
        r = platform.api("GET", f"{API}/runs/{run_id}", token)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] in FINAL else None

    return wait_for(done, timeout, interval=0.5, what=f"run {run_id} to end")


@pytest.fixture(scope="module")
def alice(platform):
    """One invoker for the module, so its warm run cluster serves every test."""
    return "runsalice", platform.create_user("runsalice", plan="trial")


def test_a_run_with_defaults_and_one_with_overrides_inject_exactly_the_validated_values(platform, alice):
    user, token = alice
    add_processor(platform, "echo-defaults", user)
    r = start(platform, token, "echo-defaults")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "accepted"
    assert first["inputs"] == {"threshold": 15, "days": 30, "label": "default-label", "smooth": True}
    done = wait_final(platform, token, first["id"])
    assert done["status"] == "successful", done
    assert done["results"] == {"total": 450, "label": "default-label"}
    assert done["progress"]["cells_done"] == done["progress"]["cells_total"] >= 2

    crafted = "\"; import os; os.system('touch /tmp/pwned') #\n'''\\"
    r = start(platform, token, "echo-defaults", {"threshold": 2.5, "days": 4, "label": crafted})
    assert r.status_code == 201, r.text
    second = wait_final(platform, token, r.json()["id"])
    assert second["status"] == "successful", second
    assert second["results"] == {"total": 10.0, "label": crafted}
    r = platform.api("GET", f"{API}/runs/{second['id']}/notebook", token)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{second["id"]}.ipynb"'
    cells = json.loads(r.content)["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    source = "".join(injected[0]["source"])
    assert "threshold = 2.5\n" in source and "days = 4\n" in source
    # The second run used the first one's warm run cluster.
    engine = create_engine(platform.settings.service_db_url)
    with engine.connect() as connection:
        clusters = (
            connection.execute(
                text("SELECT cluster_name FROM processor_runs WHERE id IN (:a, :b)"),
                {"a": first["id"], "b": second["id"]},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(clusters) == 2 and clusters[0] is not None and len(set(clusters)) == 1
    r = platform.api("GET", f"{API}/runs/{second['id']}/outputs/labelfile", token)
    assert r.status_code == 200 and r.content.decode() == f"{crafted}:4"
    assert not Path("/tmp/pwned").exists()
    # The files are in the invoker's home, theirs.
    folder = platform.home_of(user) / "processor-runs" / second["id"]
    home_owner = (platform.home_of(user)).stat().st_uid
    assert folder.stat().st_uid == home_owner and (folder / "output.ipynb").stat().st_uid == home_owner
    log = platform.api("GET", f"{API}/runs/{second['id']}/log", token)
    assert log.status_code == 200
    listed = platform.api("GET", f"{API}/runs?limit=1", token).json()
    assert listed["total"] == 2 and [run["id"] for run in listed["runs"]] == [second["id"]]


def test_wrong_inputs_are_refused_with_400_naming_each_and_nothing_is_stored(platform, alice):
    user, token = alice
    add_processor(platform, "echo-typed", user)
    before = platform.api("GET", f"{API}/runs", token).json()["total"]
    r = start(
        platform, token, "echo-typed", {"threshold": "high", "days": 0, "smooth": "yes", "x\nimport os": 1}
    )
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("invalid inputs: ")
    for fragment in ("threshold: must be a number", "days: must be at least 1", "smooth: must be true or false",
                     "'x\\nimport os': is not an input of this processor"):  # fmt: skip
        assert fragment in detail
    assert platform.api("GET", f"{API}/runs", token).json()["total"] == before


def test_an_input_the_parameters_cell_does_not_assign_is_never_injected(platform, alice):
    user, token = alice
    definition_extra = {"inputs": {"ghost": {"type": "integer", "default": 1}}}
    add_processor(platform, "echo-ghost", user, notebook("x = 1\n"), **definition_extra)
    r = start(platform, token, "echo-ghost")
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "invalid inputs: ghost: is not assigned in the notebook's parameters cell; it is never injected"
    )


def test_another_user_can_neither_see_nor_run_a_private_processor_nor_read_its_runs(
    platform, alice, new_user
):
    user, token = alice
    add_processor(platform, "echo-private", user)
    run = start(platform, token, "echo-private").json()
    bob, bob_token = new_user(plan="trial")
    r = start(platform, bob_token, "echo-private")
    assert (r.status_code, r.json()["detail"]) == (404, "no processor 'echo-private'")
    for path in ("", "/log", "/notebook", "/outputs/labelfile"):
        r = platform.api("GET", f"{API}/runs/{run['id']}{path}", bob_token)
        assert (r.status_code, r.json()["detail"]) == (404, f"no run {run['id']!r}")
    r = platform.api("POST", f"{API}/runs/{run['id']}/cancel", bob_token)
    assert r.status_code == 404
    assert platform.api("GET", f"{API}/runs", bob_token).json()["total"] == 0
    assert wait_final(platform, token, run["id"])["status"] == "successful"


def test_a_public_processor_runs_as_the_invoker_and_its_owner_cannot_read_the_results(
    platform, alice, new_user
):
    user, token = alice
    add_processor(platform, "echo-public", user, visibility="public")
    bob, bob_token = new_user(plan="trial")
    r = start(platform, bob_token, "echo-public", {"label": "bob's"})
    assert r.status_code == 201, r.text
    run = wait_final(platform, bob_token, r.json()["id"])
    assert run["status"] == "successful"
    folder = platform.home_of(bob) / "processor-runs" / run["id"]
    assert folder.is_dir() and folder.stat().st_uid == platform.home_of(bob).stat().st_uid
    assert platform.api("GET", f"{API}/runs/{run['id']}", token).status_code == 404


def _kernel_pid(platform, user, token, run_id):
    path = platform.home_of(user) / "processor-runs" / run_id / "kernel.pid"

    def written():
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        assert run["status"] not in FINAL, (run["status"], run["message"])
        return None

    return int(wait_for(written, 120, interval=0.3, what="the kernel's pid"))


SLEEPER = notebook(
    "seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(seconds)"
)
SLEEPER_DEFINITION = {"inputs": {"seconds": {"type": "integer", "default": 600}}, "outputs": {}}


def test_cancel_stops_the_kernel_and_dismisses_the_run(platform, alice):
    user, token = alice
    add_processor(platform, "sleeper", user, SLEEPER, **SLEEPER_DEFINITION)
    run_id = start(platform, token, "sleeper").json()["id"]
    pid = _kernel_pid(platform, user, token, run_id)
    # The run's token: the invoker's, only the gateway's access scope, expiring after the timeout plus 15 minutes.
    r = platform.api("GET", f"/hub/api/users/{user}/tokens", platform.admin_token)
    tokens = [t for t in r.json()["api_tokens"] if t["note"].startswith(f"processor run {run_id}")]
    # (JupyterHub adds reading the owner's own name and groups to every token, so a service can tell whose it is.)
    assert [sorted(t["scopes"]) for t in tokens] == [
        [
            "access:services!service=dask-gateway",
            f"read:users:groups!user={user}",
            f"read:users:name!user={user}",
        ]
    ]
    assert tokens[0]["expires_at"] is not None
    r = platform.api("POST", f"{API}/runs/{run_id}/cancel", token)
    assert r.status_code == 202
    done = wait_final(platform, token, run_id, timeout=60)
    assert (done["status"], done["message"]) == ("dismissed", "cancelled; the kernel was stopped")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")
    r = platform.api("POST", f"{API}/runs/{run_id}/cancel", token)
    assert (r.status_code, r.json()["detail"]) == (409, f"run {run_id} already ended (dismissed)")


def test_a_run_past_its_timeout_fails_cleanly_and_its_kernel_is_gone(platform, alice):
    user, token = alice
    add_processor(platform, "sleeper-timeout", user, SLEEPER, timeout=25, **SLEEPER_DEFINITION)
    run_id = start(platform, token, "sleeper-timeout").json()["id"]
    pid = _kernel_pid(platform, user, token, run_id)
    started = time.monotonic()
    done = wait_final(platform, token, run_id, timeout=90)
    assert time.monotonic() - started < 45
    assert (done["status"], done["message"]) == (
        "failed",
        "the run passed its timeout of 25 s and was stopped",
    )
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")


COUNTED = notebook(
    "seconds = 10\n",
    "import os, time\nopen('executions.txt', 'a').write('once\\n')\nopen('kernel.pid', 'w').write(str(os.getpid()))\n"
    "time.sleep(seconds)",
)


def test_killing_the_service_mid_run_loses_no_run_and_repeats_none(platform, alice):
    from tests.helpers.quota import service_pid

    user, token = alice
    add_processor(platform, "counted", user, COUNTED, inputs={"seconds": {"type": "integer", "default": 10}},
                  outputs={})  # fmt: skip
    run_id = start(platform, token, "counted").json()["id"]
    _kernel_pid(platform, user, token, run_id)
    old_service = service_pid(platform)
    os.kill(old_service, signal.SIGKILL)
    wait_for(
        lambda: service_pid(platform) not in (None, old_service), 120, interval=0.5, what="a new service"
    )
    wait_for(lambda: platform.api("GET", "/services/platform/health").status_code == 200, 60, what="health")
    done = wait_final(platform, token, run_id, timeout=180)
    assert (done["status"], done["message"]) == ("successful", "")
    folder = platform.home_of(user) / "processor-runs" / run_id
    assert (folder / "executions.txt").read_text() == "once\n"
    # The run's token was revoked: only the module's own token of the user is left.
    r = platform.api("GET", f"/hub/api/users/{user}/tokens", platform.admin_token)
    assert [t["note"] for t in r.json()["api_tokens"] if t["note"].startswith("processor run")] == []


def test_a_run_beyond_the_quota_fails_with_the_gateways_refusal_and_starts_nothing(platform, new_user):
    from tests.helpers.quota import spend

    user, token = new_user(plan="trial")
    spend(platform, user, 100_000)
    add_processor(platform, "echo-broke", user)
    run_id = start(platform, token, "echo-broke").json()["id"]
    done = wait_final(platform, token, run_id, timeout=120)
    assert done["status"] == "failed"
    assert done["message"].startswith("the run cluster could not start: ")
    assert "Your CPU-hours are exhausted" in done["message"]
    assert not (platform.home_of(user) / "processor-runs" / run_id).exists()


def test_runs_of_one_invoker_beyond_their_turns_wait_accepted_without_a_token(platform, alice):
    """RUNS_DRIVEN_AT_ONCE (2): a third run of the same invoker and profile holds no hub token (nor a connection)
    until a turn is free; cancelling it while it waits dismisses it at once; a later run gets the freed turn."""
    user, token = alice
    add_processor(platform, "sleeper-turns", user, SLEEPER, **SLEEPER_DEFINITION)
    first, second = (start(platform, token, "sleeper-turns", {"seconds": 8}).json()["id"] for _ in range(2))
    third = start(platform, token, "sleeper-turns", {"seconds": 1}).json()["id"]

    def run_tokens():
        r = platform.api("GET", f"/hub/api/users/{user}/tokens", platform.admin_token)
        return sorted(t["note"] for t in r.json()["api_tokens"] if t["note"].startswith("processor run "))

    expected = sorted(f"processor run {run_id}" for run_id in (first, second))
    wait_for(lambda: run_tokens() == expected, 120, interval=0.2, what="the first two runs' tokens")
    _kernel_pid(platform, user, token, first)  # the first one sleeps 8 s on the worker from now on
    time.sleep(2)  # a driver that did not wait for its turn would have made its token by now
    assert run_tokens() == expected
    assert platform.api("GET", f"{API}/runs/{third}", token).json()["status"] == "accepted"
    r = platform.api("POST", f"{API}/runs/{third}/cancel", token)
    assert (r.status_code, r.json()["status"], r.json()["message"]) == (
        202,
        "dismissed",
        "cancelled before it started",
    )
    fourth = start(platform, token, "sleeper-turns", {"seconds": 1}).json()["id"]
    assert [wait_final(platform, token, run_id)["status"] for run_id in (first, second, fourth)] == [
        "successful"
    ] * 3
    assert platform.api("GET", f"{API}/runs/{third}", token).json()["status"] == "dismissed"
