"""Attacks on hosted apps, from inside real user servers (local mode).

A hosted app (a Panel or web app on a dashboard server ``dash-<id>``) runs only the platform's fixed runner for its
kind on the owner's own frozen files (``dashboards/serve.py``). From a notebook of their own, a user tries to make
the platform run something else: an unknown kind, a command, another user's files or another module as the entry
point, a path out of the app's folder, options that pick a command or an image on the app's server. Each is refused
with its one status and nothing is stored or started. Another user's process tries the app's own listening place:
it is a Unix socket in a folder private to the owner, so the proxy's login cannot be bypassed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.dashboards import APP_MARKER, ASGI_APP, app_files, app_owner, open_page, publish_app
from tests.helpers.inside_server import run_as_user_server, run_inside_server, server_pid

pytestmark = pytest.mark.timeout(600)

ATTACK = r"""
import base64, json, os, urllib.error, urllib.request

token = os.environ["JUPYTERHUB_API_TOKEN"]
service = os.environ["POLARTEP_SERVICE_URL"]
hub = os.environ["JUPYTERHUB_API_URL"]
user = os.environ["JUPYTERHUB_USER"]
victim = os.environ["VICTIM"]

def call(method, url, body, token=token):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method, headers={
        "Authorization": "token " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return [response.status, json.loads(response.read() or b"null")]
    except urllib.error.HTTPError as e:
        return [e.code, json.loads(e.read() or b"null")]

def b64(text):
    return base64.b64encode(text.encode()).decode()

def app(kind, entry, files, runner=None, **extra):
    spec = {"entry": entry, "files": {path: b64(text) for path, text in files.items()}}
    if runner:
        spec["runner"] = runner
    return call("POST", service + "api/v1/dashboards", {"title": "attack", "kind": kind, "app": spec, **extra})

ok = {"app.py": "async def app(scope, receive, send):\n    pass\n"}
results = {
    "kind_shell": app("shell", "app.py", ok),
    "runner_bash": app("web", "app:app", ok, runner="bash"),
    "command_field": app("web", "app:app", ok, command="sh -c id"),
    "image_field": app("web", "app:app", ok, image="alpine:latest"),
    "entry_os_system": app("web", "os:system", ok),
    "entry_argument": app("web", "app:app --reload-dir /", ok),
    "entry_victims_file": app("panel", f"/home/{victim}/app.py", {"app.py": "x = 1"}),
    "entry_climbs_out": app("panel", f"../{victim}/app.py", {"app.py": "x = 1"}),
    "file_climbs_out": app("panel", "app.py", {"app.py": "x = 1", "../../tmp/evil.py": "x"}),
    "file_absolute": app("panel", "app.py", {"app.py": "x = 1", "/tmp/evil.py": "x"}),
}
# The app server takes no option that picks what runs on it: the server's own token may start no server at all,
# and the user's full token (pasted into a notebook) is refused by the options' check.
server = os.environ["APP_SERVER"]
start = hub + f"/users/{user}/servers/{server}"
results["server_token_cmd"] = call("POST", start, {"cmd": ["sh", "-c", "id"]})
results["server_cmd"] = call("POST", start, {"cmd": ["sh", "-c", "id"]}, token=os.environ["USER_TOKEN"])
results["server_kind"] = call(
    "POST", start, {"dashboard": server[5:], "kind": "web"}, token=os.environ["USER_TOKEN"])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def apps(platform):
    attacker = "appattacker"
    attacker_token = app_owner(platform, attacker)
    victim = "appvictim"
    victim_token = app_owner(platform, victim)
    r = publish_app(platform, attacker_token, "web", "app:app", app_files({"app.py": ASGI_APP}))
    assert r.status_code == 201, r.text
    own = r.json()
    r = publish_app(platform, victim_token, "web", "app:app", app_files({"app.py": ASGI_APP}))
    assert r.status_code == 201, r.text
    victims = r.json()
    platform.wait_ready(attacker, own["server"], timeout=180)
    platform.wait_ready(victim, victims["server"], timeout=180)
    return attacker, attacker_token, own, victim, victim_token, victims


def test_no_kind_runner_command_image_or_foreign_entry_point_is_accepted(platform, apps):
    attacker, attacker_token, own, victim, _victim_token, _victims = apps
    listed_before = platform.api("GET", "/services/platform/api/v1/dashboards", attacker_token).json()
    if platform.server_model(attacker) is None:
        platform.spawn(attacker, attacker_token)
    # Stopped, as the idle culler leaves it: a start with options is then judged by its options.
    platform.stop_server(attacker, own["server"])
    found = run_inside_server(
        platform,
        attacker,
        ATTACK,
        env={"VICTIM": victim, "APP_SERVER": own["server"], "USER_TOKEN": attacker_token},
    )
    statuses = {name: status for name, (status, _body) in found.items()}
    assert statuses == {
        "kind_shell": 422,
        "runner_bash": 422,
        "command_field": 422,
        "image_field": 422,
        "entry_os_system": 400,
        "entry_argument": 400,
        "entry_victims_file": 400,
        "entry_climbs_out": 400,
        "file_climbs_out": 400,
        "file_absolute": 400,
        "server_token_cmd": 403,
        "server_cmd": 400,
        "server_kind": 400,
    }, json.dumps(found)[:3000]
    assert (
        "must be module:attribute of one of the app's own .py files" in found["entry_os_system"][1]["detail"]
    )
    assert "must be one of the app's .py or .ipynb files" in found["entry_victims_file"][1]["detail"]
    assert "is not a plain relative path" in found["file_climbs_out"][1]["detail"]
    assert "takes no option cmd" in found["server_cmd"][1]["message"]
    assert "takes no option kind" in found["server_kind"][1]["message"]
    # Nothing was stored, and the app server still runs its app.
    listed_after = platform.api("GET", "/services/platform/api/v1/dashboards", attacker_token).json()
    assert listed_after == listed_before
    platform.spawn(attacker, attacker_token, server=own["server"], timeout=180)
    r = open_page(platform, attacker, own["server"], attacker_token, "hello")
    assert r.status_code == 200
    assert r.json()["marker"] == f"{APP_MARKER}-web"


def _app_socket(proxy_pid: int) -> str:
    """The Unix socket the app server's runner (uvicorn) listens on, from its command line."""
    for child in Path(f"/proc/{proxy_pid}/task/{proxy_pid}/children").read_text().split():
        arguments = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        for argument in arguments:
            if argument.startswith("--uds="):
                return argument[len("--uds=") :]
    raise AssertionError("no app runner under the app server")


def test_another_users_process_cannot_reach_the_apps_socket(platform, apps):
    attacker, attacker_token, _own, victim, victim_token, victims = apps
    # The proxy starts the app's runner at the first request.
    assert open_page(platform, victim, victims["server"], victim_token, "hello").status_code == 200
    socket_path = _app_socket(server_pid(platform, victim, victims["server"]))
    found = run_as_user_server(
        platform,
        attacker,
        attacker_token,
        f"""
        import json, socket
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect({socket_path!r})
            client.sendall(b"GET /hello HTTP/1.0\\r\\n\\r\\n")
            print(json.dumps({{"reached": client.recv(4096).decode(errors="replace")}}))
        except OSError as error:
            print(json.dumps({{"refused": error.__class__.__name__}}))
        """,
    )
    assert found == {"refused": "PermissionError"}
