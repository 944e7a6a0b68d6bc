"""Attack: use the datasets routes of the JupyterLab extension from inside a stranger's real server (local mode).

The extension forwards the datasets panel's calls (list, create, delete, grant, revoke) to the platform service with
the server's own token. Code in mallory's server, run as the server's system user with its environment, tries to use
them against a project mallory is not in, and to bend them into other service routes. Each attempt gets the one
right answer: the service's own refusal passed through (404 for a dataset mallory may not see, 403 for creating in
a project mallory is not in), 404 naming the allow-list for paths that are no route (traversals, encoded slashes),
405 for a method a route does not take, and 400 for a name that breaks the service's rule, which never reaches the
service. The dataset and its grants are unchanged afterwards.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

DATASETS = "/services/platform/api/v1/datasets"

ATTACK = r"""
import http.client, json, os, urllib.parse

server = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])  # this server, e.g. http://127.0.0.1:PORT/user/NAME/
token = os.environ["JUPYTERHUB_API_TOKEN"]
own, victim = os.environ["OWN"], os.environ["VICTIM"]

def call(method, path, body=None):
    # http.client sends the path byte for byte: no client-side normalisation of '..' or '%2F'.
    connection = http.client.HTTPConnection(server.hostname, server.port, timeout=60)
    headers = {"Authorization": "token " + token}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    connection.request(method, server.path + "polartep/api/" + path, body=data, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    return [response.status, answer.get("message") if isinstance(answer, dict) else None]

print(json.dumps({
    "list": call("GET", "datasets"),
    "delete": call("DELETE", f"datasets/{victim}/ice"),
    "grant_self": call("PUT", f"datasets/{victim}/ice/grants/{own}"),
    "revoke": call("DELETE", f"datasets/{victim}/ice/grants/{own}"),
    "create_in_victim": call("POST", "datasets", {"project": victim, "name": "planted", "storage_class": "ssd"}),
    "encoded_traversal": call("PUT", f"datasets/{victim}/ice/grants/..%2F..%2F..%2Faccounts"),
    "dotdot": call("DELETE", f"datasets/{victim}/ice/grants/x/../../../../../accounts"),
    "deeper": call("DELETE", f"datasets/{victim}/ice/items/x"),
    "dotted_dataset": call("DELETE", f"datasets/{victim}/a.b"),
    "get_one": call("GET", f"datasets/{victim}/ice"),
}))
"""


def test_the_datasets_routes_of_the_extension_forward_only_what_they_name(platform, new_user):
    owner, owner_token = new_user(plan="trial")
    mallory, mallory_token = new_user(plan="trial")
    tag = os.getpid()
    victim, own = f"victim{tag}", f"mallory{tag}"
    for project, token in ((victim, owner_token), (own, mallory_token)):
        r = platform.api("POST", "/services/platform/api/v1/projects", token, json={"name": project})
        assert r.status_code == 201, r.text
    r = platform.api(
        "POST", DATASETS, owner_token, json={"project": victim, "name": "ice", "storage_class": "ssd"}
    )
    assert r.status_code == 201, r.text
    platform.spawn(mallory, mallory_token, {"profile": "small"})
    try:
        results = run_inside_server(platform, mallory, ATTACK, env={"OWN": own, "VICTIM": victim})
    finally:
        platform.stop_server(mallory)

    hidden = f"no dataset 'ice' in project {victim!r} that you may see"
    assert results["list"][0] == 200  # the baseline: the route works for mallory's own view
    assert results["delete"] == [404, hidden]
    assert results["grant_self"] == [404, hidden]
    assert results["revoke"] == [404, hidden]
    assert results["create_in_victim"] == [
        403,
        f"only members of project {victim!r} may create datasets in it",
    ]
    for attempt in ("encoded_traversal", "dotdot", "deeper"):
        assert results[attempt][0] == 404, (attempt, results[attempt])
        assert "is not a route of the Polar TEP extension" in results[attempt][1]
    assert results["dotted_dataset"] == [400, "dataset must match [a-z0-9][a-z0-9_-]{0,63}"]
    assert results["get_one"][0] == 405

    # Nothing changed.
    r = platform.api("GET", f"{DATASETS}/{victim}/ice", owner_token)
    assert r.status_code == 200 and r.json()["granted_to"] == []
    assert platform.api("GET", DATASETS, mallory_token).json() == {"datasets": []}
