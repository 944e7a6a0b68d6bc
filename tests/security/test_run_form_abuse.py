"""Attacks on the run form's routes (the JupyterLab extension's and the service's pages) from inside a real user server,
and from a logged-in browser session of the attacker.

The attacker is code in mallory's real (local-mode) server, with the server's own token and environment. Each attempt
must fail with the one right answer, and start nothing:

* through the extension: the form, the versions and a run of the victim's private processor, the victim's run, its
  log and its cancel: 404 with the service's own message (the extension decides nothing, it passes the service's
  refusal on); the victim's run ends ``successful``, never dismissed;
* through the extension, ids crafted to change the service URL (``..``, ``%2F``, a query, a cancel aimed through
  another route): 404 naming the extension's routes (they match no route's pattern), nothing forwarded;
* the service's form and cancel form with the server's token and no browser session: 401; with a made-up (unsigned)
  session cookie: 401; nothing started or cancelled;
* from mallory's logged-in browser session: the victim's form and run page 404, a post to the victim's form or to
  the victim run's cancel with a valid ``_xsrf`` 404, a post to her own form with a forged ``_xsrf`` 403.
The baseline proves the set-up is real: the same routes serve mallory's own processor and run (her own ended run's
cancel is forwarded and answered 409 by the service).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.inside_server import run_as_user_server
from tests.helpers.processors import create_processor, echo_notebook

pytestmark = pytest.mark.hub

API = "/services/platform/api/v1"
PASSWORD = "run-form-abuse-pw-1"  # noqa: S105 (throw-away test platform)

ATTACK = r"""
import json, os, httpx
service = os.environ["POLARTEP_SERVICE_URL"]
server = os.environ["JUPYTERHUB_SERVICE_URL"] + "polartep/api/"
h = {"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}
victim_run, own_run = os.environ["VICTIM_RUN"], os.environ["OWN_RUN"]

def answer(r):
    try:
        return [r.status_code, r.json()]
    except ValueError:
        return [r.status_code, r.text[:200]]

with httpx.Client(headers=h, timeout=60, follow_redirects=False) as c:
    out = {
        "own_form": c.get(server + "processors/form-mallorys-echo/form").status_code,
        "own_run": c.get(server + "runs/" + own_run).json()["status"],
        "victim_form": answer(c.get(server + "processors/form-victims-echo/form")),
        "victim_start": answer(c.post(server + "processors/form-victims-echo/runs", json={"inputs": {}})),
        "victim_run": answer(c.get(server + "runs/" + victim_run)),
        "victim_log": answer(c.get(server + "runs/" + victim_run + "/log")),
        "victim_cancel": answer(c.post(server + "runs/" + victim_run + "/cancel")),
        "victim_versions": answer(c.get(server + "processors/form-victims-echo/versions")),
        "own_cancel": answer(c.post(server + "runs/" + own_run + "/cancel")),
        "own_versions": c.get(server + "processors/form-mallorys-echo/versions").json(),
        "cancel_dotdot": answer(c.post(server + "runs/" + own_run + "/..%2F" + victim_run + "/cancel")),
        "cancel_slash": answer(c.post(server + "runs/" + victim_run + "%2Fcancel")),
        "cancel_query": answer(c.post(server + "runs/" + victim_run + "%3F/cancel")),
        "versions_dotdot": answer(c.get(server + "processors/..%2Fruns/versions")),
        "page_cancel_with_token": answer(c.post(service + "processors/runs/" + victim_run + "/cancel", data={"_xsrf": "x"})),
        "dotdot": answer(c.get(server + "processors/..%2F..%2Faccounts/form")),
        "slash": answer(c.get(server + "processors/form-victims-echo%2Fruns/form")),
        "query": answer(c.get(server + "runs/" + victim_run + "%3Fx=1")),
        "page_with_token": answer(c.post(service + "processors/form-victims-echo", data={"_xsrf": "x", "days": "3"})),
        "page_forged_cookie": answer(
            c.post(
                service + "processors/form-mallorys-echo",
                data={"_xsrf": "x"},
                headers={"Cookie": os.environ["COOKIE_NAME"] + "=" + os.environ["JUPYTERHUB_API_TOKEN"]},
            )
        ),
    }
print(json.dumps(out))
"""


def _runs(platform, token) -> int:
    return platform.api("GET", f"{API}/runs", token).json()["total"]


def test_the_run_form_routes_refuse_what_a_user_server_or_session_must_not_do(platform, new_user):
    mallory, mallory_token = new_user(plan="trial", password=PASSWORD)
    victim, victim_token = new_user(plan="trial")
    processors_dir = Path(platform.settings.processors_dir)
    create_processor(
        platform.settings.service_db_url, processors_dir, "form-victims-echo", victim, echo_notebook()
    )
    create_processor(
        platform.settings.service_db_url, processors_dir, "form-mallorys-echo", mallory, echo_notebook()
    )
    victim_run = platform.api(
        "POST", f"{API}/processors/form-victims-echo/runs", victim_token, json={}
    ).json()["id"]
    own_run = platform.api(
        "POST", f"{API}/processors/form-mallorys-echo/runs", mallory_token, json={}
    ).json()["id"]
    wait_for(
        lambda: platform.api("GET", f"{API}/runs/{own_run}", mallory_token).json()["status"] == "successful",
        240,
        interval=0.5,
        what="mallory's own run",
    )
    victim_runs, mallory_runs = _runs(platform, victim_token), _runs(platform, mallory_token)

    code = f"import os\nos.environ.update({json.dumps({'VICTIM_RUN': victim_run, 'OWN_RUN': own_run, 'COOKIE_NAME': 'polartep-platform-session'})})\n"  # noqa: E501
    try:
        out = run_as_user_server(platform, mallory, mallory_token, code + ATTACK)
    finally:
        platform.stop_server(mallory)

    assert (out["own_form"], out["own_run"]) == (200, "successful")
    no_processor = [404, {"message": "no processor 'form-victims-echo'", "service_status": 404}]
    no_run = [404, {"message": f"no run {victim_run!r}", "service_status": 404}]
    assert out["victim_form"] == no_processor
    assert out["victim_start"] == no_processor
    assert out["victim_run"] == no_run
    assert out["victim_log"] == no_run
    assert out["victim_cancel"] == no_run
    # The registry's own wording (api/v1/processors/<id>/versions), passed on as it is.
    assert out["victim_versions"] == [
        404,
        {"message": "no processor 'form-victims-echo' (or it is not shared with you)", "service_status": 404},
    ]
    assert out["own_cancel"] == [
        409,
        {"message": f"run {own_run} already ended (successful)", "service_status": 409},
    ]
    assert [v["version"] for v in out["own_versions"]["versions"]] == ["1.0.0"]
    for crafted in (
        "dotdot",
        "slash",
        "query",
        "cancel_dotdot",
        "cancel_slash",
        "cancel_query",
        "versions_dotdot",
    ):
        status, body = out[crafted]
        assert status == 404, (crafted, out[crafted])
        assert "is not a route of the Polar TEP extension" in body["message"], (crafted, body)
    login_first = [401, {"detail": "log in first: open /services/platform/login in your browser"}]
    assert out["page_with_token"] == login_first
    assert out["page_cancel_with_token"] == login_first
    assert out["page_forged_cookie"] == login_first

    base = f"{platform.url}/services/platform"
    with logged_in_session(platform, mallory, PASSWORD) as browser:
        own_page = browser.get(f"{base}/processors/form-mallorys-echo")
        assert own_page.status_code == 200
        xsrf = form_xsrf(own_page.text)
        page = browser.get(f"{base}/processors/form-victims-echo")
        assert (page.status_code, page.json()) == (404, {"detail": "no processor 'form-victims-echo'"})
        posted = browser.post(f"{base}/processors/form-victims-echo", data={"_xsrf": xsrf})
        assert (posted.status_code, posted.json()) == (404, {"detail": "no processor 'form-victims-echo'"})
        run_page = browser.get(f"{base}/processors/runs/{victim_run}")
        assert (run_page.status_code, run_page.json()) == (404, {"detail": f"no run {victim_run!r}"})
        cancel = browser.post(f"{base}/processors/runs/{victim_run}/cancel", data={"_xsrf": xsrf})
        assert (cancel.status_code, cancel.json()) == (404, {"detail": f"no run {victim_run!r}"})
        forged = browser.post(f"{base}/processors/form-mallorys-echo", data={"_xsrf": "f" * 64})
        assert (forged.status_code, forged.json()) == (
            403,
            {"detail": "the form has expired or came from another site; reload the page"},
        )
    assert (_runs(platform, victim_token), _runs(platform, mallory_token)) == (victim_runs, mallory_runs)
    victims = wait_for(
        lambda: (
            (r := platform.api("GET", f"{API}/runs/{victim_run}", victim_token).json())["status"]
            in ("successful", "failed", "dismissed")
            and r
        ),
        240,
        interval=0.5,
        what="the victim's run to end",
    )
    assert victims["status"] == "successful", victims
