"""Attack: from inside a user's server, use the processor registry to take over, change, read or spam another user's
processors.

The attacker is code in mallory's real (local-mode) server with the server's own token (``JUPYTERHUB_API_TOKEN``),
talking to the service directly and through the extension. The victim alice has a private processor and a public
one, and a project mallory is not in. Each attempt must fail with the one right status and message:

* publish a version under alice's private id: 409 "taken" (its existence is not disclosed as hers);
* publish a version of alice's public processor: 403; change its sharing: 403; read its notebook or usage: 403;
* read alice's private processor, its versions or notebook: 404;
* share one's own processor with alice's project (spamming its members' lists): 422, like an unknown project;
* an input name written as code (``__import__('os')...``): 422 naming the rule; nothing published;
* a body past the publish route's limit: 413 before it is read.
The baseline proves the set-up is real: mallory publishes and reads her own processor (201, 200).
"""

from __future__ import annotations

import json

import pytest

from polartep_hub.processors.api import NOTEBOOK_BODY_BYTES
from tests.helpers.inside_server import run_inside_server
from tests.helpers.processor_registry import definition, notebook_bytes, publish_body

pytestmark = pytest.mark.hub

SERVICE = "/services/platform/api/v1"

ATTACK = r"""
import base64, json, os, urllib.error, urllib.request

token = os.environ["JUPYTERHUB_API_TOKEN"]
service = os.environ["POLARTEP_SERVICE_URL"] + "api/v1/"
victim = json.loads(os.environ["VICTIM"])
body = json.loads(os.environ["BODY"])

def call(method, path, payload=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    request = urllib.request.Request(service + path, data=data, method=method, headers={
        "Authorization": "token " + token, "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return [response.status, json.loads(response.read() or b"null")]
    except urllib.error.HTTPError as e:
        return [e.code, json.loads(e.read() or b"null")]
    except (ConnectionError, urllib.error.URLError) as e:
        return [0, str(e)]

def publishing(pid, version="9.0.0", **fields):
    return {"definition": {**body["definition"], "id": pid, "version": version, **fields}, "notebook": body["notebook"]}

code_name = dict(body["definition"]["inputs"])
code_name["__import__('os').system('id')"] = {"type": "string", "default": ""}
print(json.dumps({
    "own_publish": call("POST", "processors", publishing(victim["own"], "1.0.0")),
    "own_read": call("GET", "processors/" + victim["own"])[0],
    "take_private_id": call("POST", "processors", publishing(victim["private"])),
    "version_public": call("POST", "processors", publishing(victim["public"])),
    "share_public": call("PUT", "processors/" + victim["public"] + "/sharing", {"visibility": "private"}),
    "notebook_public": call("GET", "processors/" + victim["public"] + "/versions/1/notebook"),
    "usage_public": call("GET", "processors/" + victim["public"] + "/usage"),
    "read_private": call("GET", "processors/" + victim["private"]),
    "versions_private": call("GET", "processors/" + victim["private"] + "/versions"),
    "notebook_private": call("GET", "processors/" + victim["private"] + "/versions/1/notebook"),
    "spam_project": call("PUT", "processors/" + victim["own"] + "/sharing",
                         {"visibility": "projects", "projects": [victim["project"]]}),
    "code_as_name": call("POST", "processors", publishing(victim["own"], "2.0.0", inputs=code_name)),
    "too_large": call("POST", "processors", raw=b"{}", headers={"Content-Length": str(16 * 1024 * 1024)}),
    "own_versions": [v["version"] for v in call("GET", "processors/" + victim["own"] + "/versions")[1]["versions"]],
}))
"""


def test_another_users_processors_cannot_be_taken_changed_or_read(platform, new_user):
    alice, alice_token = new_user(plan="standard")
    mallory, mallory_token = new_user(plan="standard")
    private, public, own, project = f"p-{alice}", f"pub-{alice}", f"m-{mallory}", f"proj-{alice}"
    assert platform.api("POST", f"{SERVICE}/projects", alice_token, json={"name": project}).status_code == 201
    for pid, visibility in ((private, "private"), (public, "public")):
        answer = platform.api(
            "POST",
            f"{SERVICE}/processors",
            alice_token,
            json=publish_body(definition(pid, visibility=visibility)),
        )
        assert answer.status_code == 201, answer.text
    platform.spawn(mallory, mallory_token, {"profile": "interactive"})
    try:
        body = publish_body(definition("x", visibility="private"), notebook_bytes())
        got = run_inside_server(
            platform,
            mallory,
            ATTACK,
            env={
                "VICTIM": json.dumps({"private": private, "public": public, "own": own, "project": project}),
                "BODY": json.dumps(body),
            },
        )
    finally:
        platform.stop_server(mallory)
    assert got["own_publish"] == [201, {"id": own, "sequence": 1, "version": "1.0.0", "created": True}]
    assert got["own_read"] == 200
    assert got["take_private_id"] == [
        409,
        {"detail": f"the processor id {private!r} is taken; choose another id"},
    ]
    assert got["version_public"][0] == 403
    assert got["version_public"][1]["detail"].startswith(f"processor {public!r} is another account's")
    owner_only = {"detail": f"only the owner of processor {public!r} and administrators may do this"}
    for attempt in ("share_public", "notebook_public", "usage_public"):
        assert got[attempt] == [403, owner_only], attempt
    unknown = {"detail": f"no processor {private!r} (or it is not shared with you)"}
    for attempt in ("read_private", "versions_private", "notebook_private"):
        assert got[attempt] == [404, unknown], attempt
    assert got["spam_project"] == [
        422,
        {
            "detail": "invalid request: invalid processor definition: "
            f"projects.0: no project {project!r} that you are a member of"
        },
    ]
    assert got["code_as_name"][0] == 422
    assert got["code_as_name"][1]["detail"] == (
        "invalid request: invalid processor definition: inputs.__import__('os').system('id'): "
        "the name must be a Python identifier of at most 64 characters"
    )
    assert got["too_large"] == [
        413,
        {"detail": f"request body too large (the limit is {NOTEBOOK_BODY_BYTES} bytes)"},
    ]
    assert got["own_versions"] == ["1.0.0"]
    # Alice's processors are as she left them.
    mine = platform.api("GET", f"{SERVICE}/processors/{public}", alice_token).json()
    assert (mine["visibility"], mine["versions"], mine["owner"]) == ("public", 1, alice)
