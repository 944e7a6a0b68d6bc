"""The run form as pages of the platform service (real hub, service, gateway; a browser-like session with cookies).

Specification: the processors page lists what the user may run; the form at the processor's stable URL has one field
per input with its default, help and bounds; a wrong value comes back 400 with the service's message beside its
field and starts nothing; a form without the session's ``_xsrf`` is 403 and starts nothing; a good form redirects to
the run's page, which reloads itself until the run ends and then links to the results; the form's API route answers
the same fields; another user gets 404 for a private processor's form, page and run page. A running run's page has
a Cancel form (with ``_xsrf``): posting it stops the kernel and the page then shows ``dismissed`` and no form; a
forged ``_xsrf`` is 403 and another user's valid cancel form is 404, both leaving the run running.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.form_errors import field_error
from tests.helpers.processors import create_processor, echo_notebook, notebook

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"
PASSWORD = "run-form-pages-pw-1"  # noqa: S105 (throw-away test platform)


@pytest.fixture(scope="module")
def owner(platform):
    name = "formowner"
    token = platform.create_user(name, plan="trial", password=PASSWORD)
    create_processor(
        platform.settings.service_db_url,
        Path(platform.settings.processors_dir),
        "echo-form",
        name,
        echo_notebook(),
    )
    return name, token


def runs_total(platform, token) -> int:
    return platform.api("GET", f"{API}/runs", token).json()["total"]


def test_the_form_api_describes_one_field_per_input(platform, owner):
    _, token = owner
    r = platform.api("GET", f"{API}/processors/echo-form/form", token)
    assert r.status_code == 200, r.text
    form = r.json()
    assert (form["id"], form["title"], form["version"], form["sequence"]) == ("echo-form", "Echo", "1.0.0", 1)
    assert [(f["name"], f["widget"], f["value"]) for f in form["fields"]] == [
        ("threshold", "number", "15"),
        ("days", "number", "30"),
        ("label", "text", "default-label"),
        ("smooth", "checkbox", True),
    ]
    assert (form["fields"][1]["min"], form["fields"][1]["max"], form["fields"][1]["step"]) == (1, 366, "1")
    assert form["outputs"] == [
        {"name": "labelfile", "path": "label.txt", "media_type": "text/plain", "description": ""}
    ]
    assert platform.api("GET", f"{API}/processors/echo-form/form?version=2", token).status_code == 404


def test_a_wrong_value_is_shown_beside_its_field_then_a_good_form_runs_to_its_results(platform, owner):
    name, token = owner
    base = f"{platform.url}/services/platform"
    with logged_in_session(platform, name, PASSWORD) as browser:
        listed = browser.get(f"{base}/processors")
        assert listed.status_code == 200, listed.text[:500]
        assert 'href="/services/platform/processors/echo-form">Echo</a>' in listed.text

        page = browser.get(f"{base}/processors/echo-form")
        assert page.status_code == 200, page.text[:500]
        assert re.search(r'<input id="days" name="days" class="form-control" type="number" step="1" min="1" '
                         r'max="366" value="30"', page.text)  # fmt: skip
        assert re.search(r'id="smooth" name="smooth" value="true" checked', page.text)
        before = runs_total(platform, token)

        form = {"_xsrf": form_xsrf(page.text), "threshold": "150", "days": "4", "label": "from the page"}
        refused = browser.post(f"{base}/processors/echo-form", data=form)
        assert refused.status_code == 400
        assert field_error(refused.text, "threshold") == "must be at most 100"
        assert 'value="from the page"' in refused.text  # what was sent stays in the form
        assert runs_total(platform, token) == before

        forged = browser.post(
            f"{base}/processors/echo-form", data={**form, "_xsrf": "0" * 64, "threshold": "2"}
        )
        assert forged.status_code == 403
        assert forged.json() == {"detail": "the form has expired or came from another site; reload the page"}
        assert runs_total(platform, token) == before

        form["threshold"] = "2.5"
        started = browser.post(
            f"{base}/processors/echo-form/versions/1.0.0", data=form, follow_redirects=False
        )
        assert started.status_code == 303, started.text[:500]
        run_page = started.headers["location"]
        run_id = run_page.rsplit("/", 1)[1]
        assert run_page == f"/services/platform/processors/runs/{run_id}"
        got = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        # The unticked checkbox is false, the rest as typed.
        assert got["inputs"] == {"threshold": 2.5, "days": 4, "label": "from the page", "smooth": False}

        def final_page():
            r = browser.get(platform.url + run_page)
            assert r.status_code == 200, r.text[:300]
            return r if 'data-status="successful"' in r.text or 'data-status="failed"' in r.text else None

        first = browser.get(platform.url + run_page)
        if 'data-status="successful"' not in first.text:
            assert '<meta http-equiv="refresh" content="2">' in first.text
        done = wait_for(final_page, 240, interval=1, what="the run page to show the end")
        assert 'data-status="successful"' in done.text, done.text[-3000:]
        assert "http-equiv" not in done.text
        assert re.search(r"<p id=\"run-progress\">(\d+) / \1 cells done</p>", done.text)
        assert f'href="/user/{name}/lab/tree/processor-runs/{run_id}/output.ipynb"' in done.text
        download = browser.get(f"{base}/api/v1/runs/{run_id}/outputs/labelfile")
        assert (download.status_code, download.text) == (200, "from the page:4")


def test_another_user_gets_404_for_the_private_processors_form_and_the_owners_run_page(
    platform, owner, new_user
):
    name, token = owner
    run = platform.api("POST", f"{API}/processors/echo-form/runs", token, json={"inputs": {}}).json()
    other, other_token = new_user(plan="trial", password=PASSWORD)
    assert platform.api("GET", f"{API}/processors/echo-form/form", other_token).json() == {
        "detail": "no processor 'echo-form'"
    }
    base = f"{platform.url}/services/platform"
    with logged_in_session(platform, other, PASSWORD) as browser:
        assert browser.get(f"{base}/processors").text.count("echo-form") == 0
        page = browser.get(f"{base}/processors/echo-form")
        assert (page.status_code, page.json()) == (404, {"detail": "no processor 'echo-form'"})
        theirs = browser.get(f"{base}/processors/runs/{run['id']}")
        assert (theirs.status_code, theirs.json()) == (404, {"detail": f"no run {run['id']!r}"})


# Writes its kernel's pid in the run folder, then sleeps: a run that only a cancel ends.
SLEEPER = notebook(
    "seconds = 600\n", "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(seconds)"
)


def test_a_running_run_is_cancelled_from_its_page_and_its_kernel_stops(platform, new_user):
    name, token = new_user(plan="trial", password=PASSWORD)
    other, _ = new_user(plan="trial", password=PASSWORD)
    processors_dir = Path(platform.settings.processors_dir)
    create_processor(
        platform.settings.service_db_url,
        processors_dir,
        "sleeper-page",
        name,
        SLEEPER,
        inputs={"seconds": {"type": "integer", "default": 600}},
        outputs={},
    )
    create_processor(platform.settings.service_db_url, processors_dir, "echo-other", other, echo_notebook())
    run_id = platform.api("POST", f"{API}/processors/sleeper-page/runs", token, json={}).json()["id"]
    pid_file = platform.home_of(name) / "processor-runs" / run_id / "kernel.pid"

    def kernel_pid():
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        assert run["status"] in ("accepted", "running"), run
        return None

    pid = wait_for(kernel_pid, 120, interval=0.3, what="the sleeper's kernel")
    base = f"{platform.url}/services/platform"
    cancel_url = f"{base}/processors/runs/{run_id}/cancel"

    with logged_in_session(platform, other, PASSWORD) as browser:
        xsrf = form_xsrf(browser.get(f"{base}/processors/echo-other").text)
        theirs = browser.post(cancel_url, data={"_xsrf": xsrf}, follow_redirects=False)
        assert (theirs.status_code, theirs.json()) == (404, {"detail": f"no run {run_id!r}"})

    with logged_in_session(platform, name, PASSWORD) as browser:
        page = browser.get(f"{base}/processors/runs/{run_id}")
        assert 'data-status="running"' in page.text, page.text[:2000]
        assert f'<form method="post" action="/services/platform/processors/runs/{run_id}/cancel"' in page.text
        forged = browser.post(cancel_url, data={"_xsrf": "0" * 64}, follow_redirects=False)
        assert (forged.status_code, forged.json()) == (
            403,
            {"detail": "the form has expired or came from another site; reload the page"},
        )
        assert platform.api("GET", f"{API}/runs/{run_id}", token).json()["status"] == "running"
        assert os.path.exists(f"/proc/{pid}")

        cancelled = browser.post(cancel_url, data={"_xsrf": form_xsrf(page.text)}, follow_redirects=False)
        assert (cancelled.status_code, cancelled.headers["location"]) == (
            303,
            f"/services/platform/processors/runs/{run_id}",
        )

        def dismissed_page():
            r = browser.get(f"{base}/processors/runs/{run_id}")
            return r if 'data-status="dismissed"' in r.text else None

        done = wait_for(dismissed_page, 60, interval=0.5, what="the run page to show dismissed")
        assert "cancelled; the kernel was stopped" in done.text
        assert "run-cancel-form" not in done.text
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="the kernel to be gone")
        # A second click (an old tab) changes nothing: the page shows how the run ended.
        again = browser.post(cancel_url, data={"_xsrf": form_xsrf(page.text)}, follow_redirects=False)
        assert again.status_code == 303
        run = platform.api("GET", f"{API}/runs/{run_id}", token).json()
        assert (run["status"], run["message"]) == ("dismissed", "cancelled; the kernel was stopped")
