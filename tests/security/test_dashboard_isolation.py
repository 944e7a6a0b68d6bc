"""Attacks on a shared dashboard: a viewer (and a stranger's server) try to get beyond the dashboard.

A share grants ``access:servers`` on the whole dashboard server (JupyterHub's sharing has no finer grain), so the
server itself must offer nothing but the dashboard (``dashboards/serve.py``): no JupyterLab, contents, terminals or
kernel list; no file outside the dashboard's folder through Voila's static or file routes (``..``, absolute paths,
encoded separators, symlinks planted by the notebook); Voila's own port refuses whoever does not hold the proxy's
token, also other users' processes on the same machine. A revoked viewer's open kernel websocket is closed at
their next message. The proxy's one-second reuse of a viewer's "yes" for Voila's own scripts lets no one else in
and outlives a revocation by at most that second.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.helpers.dashboards import MARKER, notebook, open_page, publish, share
from tests.helpers.inside_server import run_as_user_server, server_pid

pytestmark = pytest.mark.timeout(600)

SECRET = "OWNER-SECRET-5dd1"

# The notebook plants a symlink to a file of the owner's home next to itself (in the dashboard's folder), and an
# image-looking one, as a careless or hostile notebook could.
PLANTING = notebook(
    "import os, pathlib\n"
    "home = pathlib.Path(os.environ['HOME'])\n"
    f"(home / 'secret.txt').write_text('{SECRET}')\n"
    "for name in ('leak.txt', 'leak.png'):\n"
    "    link = pathlib.Path(name)\n"
    "    link.unlink(missing_ok=True)\n"
    "    link.symlink_to(home / 'secret.txt')\n"
    f"print('{MARKER}-' + str(6 * 7))"
)


@pytest.fixture(scope="module")
def shared(platform):
    owner = "dashvictim"
    owner_token = platform.create_user(owner)
    viewer = "dashviewer"
    viewer_token = platform.create_user(viewer)
    dashboard = publish(platform, owner_token, nb=PLANTING)
    platform.wait_ready(owner, dashboard["server"], timeout=120)
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    page = open_page(platform, owner, dashboard["server"], viewer_token)
    assert page.status_code == 200 and f"{MARKER}-42" in page.text, (page.status_code, page.text[:300])
    return owner, dashboard, viewer, viewer_token, page


@pytest.mark.parametrize(
    "path",
    [
        "lab",
        "lab/tree/secret.txt",
        "tree",
        "api/contents",
        "api/contents/secret.txt",
        "files/secret.txt",
        "terminals/1",
        "api/terminals",
        "api/kernels",
        "api/sessions",
        "api/kernelspecs",
        "api/status",
        "edit/x",
        "notebooks/dashboard.ipynb",
        "api/nbconvert",
    ],
)
def test_a_viewer_reaches_no_jupyter_server_route(platform, shared, path):
    owner, dashboard, _viewer, viewer_token, _page = shared
    r = open_page(platform, owner, dashboard["server"], viewer_token, path, follow_redirects=True)
    # Voila's catch-all sends any other path to its file route, which serves nothing (an empty allow-list).
    assert r.status_code == 403
    assert r.url.path == f"/user/{owner}/{dashboard['server']}/voila/files/{path}"
    assert SECRET not in r.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # Symlinks the notebook planted next to itself, and the notebook itself: the file route serves nothing.
        ("voila/files/leak.txt", 403),
        ("voila/files/leak.png", 403),
        ("voila/files/dashboard.ipynb", 403),
        ("voila/files/..%2f..%2f..%2fetc%2fpasswd", 403),
        ("voila/files/%2fetc%2fpasswd", 403),
        ("voila/files//etc/passwd", 403),
        ("voila/files/..%5c..%5cetc%5cpasswd", 403),
        # Static and template routes: tornado's root check (resolved paths) refuses or finds nothing.
        ("voila/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", 403),
        ("voila/static//etc/passwd", 403),
        ("voila/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 302),
        # Voila's template handler fails on these (no file is read: 500 without a traceback in the answer).
        ("voila/templates/..%2f..%2f..%2f..%2fetc%2fpasswd", 500),
        ("voila/templates/lab/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", 500),
        ("voila/labextensions/..%2f..%2f..%2f..%2fetc%2fpasswd", 404),
        ("voila/api/themes/..%2f..%2f..%2fetc%2fpasswd", 404),
    ],
)
def test_voila_serves_no_file_outside_the_dashboard(platform, shared, path, status):
    owner, dashboard, _viewer, viewer_token, _page = shared
    r = open_page(platform, owner, dashboard["server"], viewer_token, path)
    assert r.status_code == status
    if status == 302:
        # The dots are resolved before routing (/user/etc/passwd): the request never reaches the dashboard server,
        # the hub answers with its own redirect.
        assert r.headers["location"] == "/hub/user/etc/passwd"
    assert "Traceback" not in r.text
    assert SECRET not in r.text
    assert "root:x:0:0" not in r.text


def test_the_page_carries_no_token(platform, shared):
    _owner, _dashboard, _viewer, viewer_token, page = shared
    assert viewer_token not in page.text
    assert "Voila.token" not in page.text


def _listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its sockets' inodes in /proc/net/tcp; read as root)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def _voila_port(proxy_pid: int) -> int:
    """The port of the Voila process the dashboard server's proxy started."""
    for child in Path(f"/proc/{proxy_pid}/task/{proxy_pid}/children").read_text().split():
        if b"voila" in Path(f"/proc/{child}/cmdline").read_bytes():
            (port,) = _listening_ports(int(child))
            return port
    raise AssertionError("no Voila process under the dashboard server")


def test_another_users_process_cannot_use_voilas_own_port(platform, shared):
    """Voila listens on 127.0.0.1, which every local process reaches: it must refuse all but the proxy."""
    owner, dashboard, _viewer, _viewer_token, _page = shared
    port = _voila_port(server_pid(platform, owner, dashboard["server"]))
    intruder = "dashintruder"
    intruder_token = platform.create_user(intruder)
    found = run_as_user_server(
        platform,
        intruder,
        intruder_token,
        f"""
        import http.client, json
        results = {{}}
        for path in ("/user/{owner}/{dashboard["server"]}/", "/user/{owner}/{dashboard["server"]}/api/kernels/x"):
            connection = http.client.HTTPConnection("127.0.0.1", {port}, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            results[path] = [response.status, response.getheader("Location"), response.read().decode(errors="replace")]
        print(json.dumps(results))
        """,
    )
    prefix = f"/user/{owner}/{dashboard['server']}/"
    # Without Voila's token (only the dashboard's proxy holds it) Voila sends everyone to its login form.
    for status, location, body in found.values():
        assert status == 302
        assert location.startswith(f"{prefix}login?next="), location
        assert body == ""
    assert set(found) == {prefix, f"{prefix}api/kernels/x"}


def _kernel_id(page: str) -> str:
    match = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page)
    assert match, "no kernel id in the dashboard page"
    return match.group(1)


async def _send_on_kernel(platform, owner, server, token, kernel_id, messages) -> list[dict]:
    """Open the kernel's websocket through the proxy as ``token``, send ``messages``, collect replies for 5 s."""
    url = (
        platform.user_origin(owner).replace("http", "ws", 1)
        + f"/user/{owner}/{server}/api/kernels/{kernel_id}/channels"
    )
    request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
    connection = await websocket_connect(request)
    for message in messages:
        connection.write_message(json.dumps(message))
    replies = []
    deadline = asyncio.get_running_loop().time() + 5
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            raw = await asyncio.wait_for(connection.read_message(), left)
        except TimeoutError:
            break
        if raw is None:
            break
        if isinstance(raw, str):
            replies.append(json.loads(raw))
    connection.close()
    return replies


def _message(msg_type: str, content: dict) -> dict:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "",
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}


def test_a_viewer_cannot_run_code_in_the_dashboards_kernel(platform, shared):
    """Voila forwards only widget (comm) and kernel-info messages to the kernel: an execute_request is dropped."""
    owner, dashboard, _viewer, viewer_token, page = shared
    planted = "/tmp/polartep-dashboard-attack-ran"
    execute = {
        "code": f"open({planted!r}, 'w').write('ran')",
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    messages = [_message("kernel_info_request", {}), _message("execute_request", execute)]
    replies = asyncio.run(
        _send_on_kernel(platform, owner, dashboard["server"], viewer_token, _kernel_id(page.text), messages)
    )
    kinds = [reply.get("msg_type") for reply in replies]
    assert "kernel_info_reply" in kinds  # the channel works: what a viewer may send gets through
    assert "execute_reply" not in kinds
    assert "execute_input" not in kinds
    assert not Path(planted).exists()


async def _revoked_while_connected(platform, owner, owner_token, dashboard, viewer, viewer_token, kernel_id):
    """Open the kernel's websocket as the viewer, revoke the share, then send again: what comes back."""
    url = (
        platform.user_origin(owner).replace("http", "ws", 1)
        + f"/user/{owner}/{dashboard['server']}/api/kernels/{kernel_id}/channels"
    )
    connection = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {viewer_token}"}))

    async def kinds_until_reply() -> list[str | None]:
        kinds: list[str | None] = []
        while "kernel_info_reply" not in kinds:
            raw = await asyncio.wait_for(connection.read_message(), 30)
            if raw is None:
                kinds.append(None)
                break
            if isinstance(raw, str):
                kinds.append(json.loads(raw).get("msg_type"))
        return kinds

    connection.write_message(json.dumps(_message("kernel_info_request", {})))
    before = await kinds_until_reply()
    # Drain what follows the reply (the kernel's "idle" status), so that what comes after is the new message's.
    while True:
        try:
            if await asyncio.wait_for(connection.read_message(), 1.0) is None:
                break
        except TimeoutError:
            break
    r = platform.api(
        "DELETE",
        f"/services/platform/api/v1/dashboards/{dashboard['id']}/shares/users/{viewer}",
        owner_token,
    )
    assert r.status_code == 204
    await asyncio.sleep(1.5)  # past the proxy's re-check interval (RECHECK_SECONDS)
    connection.write_message(json.dumps(_message("kernel_info_request", {})))
    after = await kinds_until_reply()
    return before, after, connection.close_code, connection.close_reason


def _shared_with_new_viewer(platform, owner: str, dashboard: dict, viewer: str) -> tuple[str, str]:
    """A new user ``viewer`` the dashboard is shared with: a token of the owner's (to revoke with) and the viewer's."""
    r = platform.api("POST", f"/hub/api/users/{owner}/tokens", platform.admin_token, json={"note": "revoke"})
    assert r.status_code == 201, r.text
    owner_token = r.json()["token"]
    viewer_token = platform.create_user(viewer)
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    return owner_token, viewer_token


def test_revocation_closes_the_viewers_open_kernel_websocket_at_its_next_message(platform, shared):
    owner, dashboard, _viewer, _viewer_token, page = shared
    revoked = "dashrevoked"
    owner_token, revoked_token = _shared_with_new_viewer(platform, owner, dashboard, revoked)
    before, after, code, reason = asyncio.run(
        _revoked_while_connected(
            platform, owner, owner_token, dashboard, revoked, revoked_token, _kernel_id(page.text)
        )
    )
    assert "kernel_info_reply" in before  # while shared, the channel works
    assert after == [None]  # the next message closes it: nothing reaches the kernel, no reply comes back
    assert code == 1008
    assert reason == "your access to this dashboard was revoked"


# One of Voila's own scripts, for which the proxy reuses a viewer's "yes" for a second.
SCRIPT = "voila/static/voila.js"


def test_a_viewers_fresh_yes_for_voilas_scripts_lets_no_one_else_in(platform, shared):
    owner, dashboard, _viewer, viewer_token, _page = shared
    assert open_page(platform, owner, dashboard["server"], viewer_token, SCRIPT).status_code == 200
    intruder = "dashscriptintruder"
    intruder_token = platform.create_user(intruder)
    # At once, from inside the intruder's own server, with their own token and with none.
    found = run_as_user_server(
        platform,
        intruder,
        intruder_token,
        f"""
        import json, urllib.error, urllib.request
        statuses = []
        for headers in ({{"Authorization": "token {intruder_token}"}}, {{}}):
            request = urllib.request.Request("{platform.url}/user/{owner}/{dashboard["server"]}/{SCRIPT}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append([response.status, response.url])
            except urllib.error.HTTPError as error:
                statuses.append([error.code, error.url])
        print(json.dumps(statuses))
        """,
    )
    assert found[0][0] == 403  # the intruder is asked about, and refused
    assert found[1][0] == 200 and "/hub/login" in found[1][1]  # no credentials: sent to the hub's login page


def test_a_revoked_viewer_loses_voilas_scripts_within_a_second_and_all_else_at_once(platform, shared):
    owner, dashboard, _viewer, _viewer_token, _page = shared
    late = "dashlateviewer"
    owner_token, late_token = _shared_with_new_viewer(platform, owner, dashboard, late)
    server = dashboard["server"]
    assert open_page(platform, owner, server, late_token, SCRIPT).status_code == 200
    r = platform.api(
        "DELETE", f"/services/platform/api/v1/dashboards/{dashboard['id']}/shares/users/{late}", owner_token
    )
    assert r.status_code == 204, r.text
    assert open_page(platform, owner, server, late_token).status_code == 403
    time.sleep(1.1)
    assert open_page(platform, owner, server, late_token, SCRIPT).status_code == 403
