"""Publishing from inside a real user server (local mode, real hub and service): through the extension's HTTP API
(``polartep/api/processors``, ``.../draft``, ``.../validate``) and through the service API with the server's own token.

Specification: the draft comes from the notebook's parameters cell; validation names each field and stores nothing;
a refused publish stores nothing; a publish makes version 1, a publish from the server's code with its token makes
version 2; another user sees neither.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.inside_server import run_inside_server
from tests.helpers.processor_registry import definition, notebook_bytes

pytestmark = pytest.mark.hub

SERVICE = "/services/platform/api/v1"


@pytest.fixture(scope="module")
def publisher(platform):
    """A user with a running server holding ``extent.ipynb``: ``(name, token)``."""
    name = "procpub"
    token = platform.create_user(name, plan="standard")
    platform.spawn(name, token, {"profile": "interactive"})
    put = platform.api(
        "PUT",
        f"/user/{name}/api/contents/extent.ipynb",
        token,
        json={"type": "file", "format": "text", "content": notebook_bytes().decode()},
    )
    assert put.status_code in (200, 201), put.text
    yield name, token
    platform.stop_server(name)


def test_publish_through_the_extension_and_from_the_servers_code(platform, publisher, new_user):
    name, token = publisher
    pid = f"extent-{name}"
    ext = f"/user/{name}/polartep/api/processors"

    draft = platform.api("POST", f"{ext}/draft", token, json={"path": "extent.ipynb"})
    assert draft.status_code == 200, draft.text
    assert draft.json()["id"] == "extent"
    assert draft.json()["inputs"]["start"] == {
        "type": "date",
        "description": "first day",
        "default": "2025-01-01",
    }

    wrong = definition(pid, profile="huge")
    wrong["inputs"]["undeclared"] = {"type": "string", "default": ""}
    checked = platform.api(
        "POST", f"{ext}/validate", token, json={"path": "extent.ipynb", "definition": wrong}
    )
    assert checked.json() == {
        "valid": False,
        "problems": [
            "inputs.undeclared: is not declared in the notebook's parameters cell",
            "profile: must be a profile of the catalogue: interactive, small, medium, large, ml",
        ],
    }
    refused = platform.api("POST", ext, token, json={"path": "extent.ipynb", "definition": wrong})
    assert refused.status_code == 422
    assert refused.json()["message"].startswith(
        "invalid request: invalid processor definition: inputs.undeclared: is not declared"
    )
    assert platform.api("GET", f"{SERVICE}/processors/{pid}", token).status_code == 404

    published = platform.api("POST", ext, token, json={"path": "extent.ipynb", "definition": definition(pid)})
    assert published.status_code == 201, published.text
    assert published.json() == {"id": pid, "sequence": 1, "version": "1.0.0", "created": True}
    again = platform.api("POST", ext, token, json={"path": "extent.ipynb", "definition": definition(pid)})
    assert again.status_code == 409
    assert "versions are immutable" in again.json()["message"]

    # From the server's own code, with the server's token, straight to the service.
    body = json.dumps({"definition": definition(pid, "1.1.0"), "notebook": ""})
    answer = run_inside_server(
        platform,
        name,
        f"""
        import base64, json, os, urllib.request, urllib.error
        body = json.loads({body!r})
        body["notebook"] = base64.b64encode(open("extent.ipynb", "rb").read()).decode()
        request = urllib.request.Request(
            os.environ["POLARTEP_SERVICE_URL"].rstrip("/") + "/api/v1/processors",
            data=json.dumps(body).encode(),
            headers={{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"],
                     "Content-Type": "application/json"}},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                print(json.dumps({{"status": response.status, "body": json.load(response)}}))
        except urllib.error.HTTPError as error:
            print(json.dumps({{"status": error.code, "body": error.read().decode()}}))
        """,
    )
    assert answer == {"status": 201, "body": {"id": pid, "sequence": 2, "version": "1.1.0", "created": False}}

    versions = platform.api("GET", f"{SERVICE}/processors/{pid}/versions", token).json()["versions"]
    assert [(v["sequence"], v["version"]) for v in versions] == [(1, "1.0.0"), (2, "1.1.0")]
    _, other = new_user()
    assert platform.api("GET", f"{SERVICE}/processors/{pid}", other).status_code == 404
    assert pid not in platform.api("GET", f"{SERVICE}/processors", other).text


def test_the_extension_reads_only_notebooks_of_this_server(platform, publisher):
    name, token = publisher
    ext = f"/user/{name}/polartep/api/processors/draft"
    not_notebook = platform.api("POST", ext, token, json={"path": "../../etc/passwd"})
    assert (not_notebook.status_code, not_notebook.json()["message"]) == (
        400,
        "'../../etc/passwd' is not a notebook (.ipynb)",
    )
    outside = platform.api("POST", ext, token, json={"path": "../../etc/x.ipynb"})
    assert outside.status_code == 404, outside.text
    missing = platform.api("POST", ext, token, json={"path": "none.ipynb"})
    assert missing.status_code == 404
    no_path = platform.api("POST", ext, token, json={"definition": {}})
    assert (no_path.status_code, no_path.json()["message"]) == (
        400,
        'send a JSON object with "path": the notebook\'s path',
    )
