"""The dashboard program's proxy (hub/dashboards/serve.py) does not slow the viewer's page down.

* It notices its program listening at once (``poll_briskly``): measured against a real process supervised by
  simpervisor, as jupyter-server-proxy supervises Voila, which binds its port after a delay that simpervisor's
  doubling back-off (checks at 0.01, 0.03, 0.07, ... 2.55, 5.11 s) would notice only at 5.1 s.
* It asks the hub about concurrent viewers side by side (``viewer_login``), against a stand-in hub that
  takes its time over each question; for Voila's shared scripts once a second per viewer, for all else every time.
* On a real hub: Voila starts with the dashboard server, before any viewer asks; a page reaches the viewer's browser
  while its cells still run, as bare Voila sends it; an extension's script whose URL names its content is kept by
  the browser.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from jupyter_server_proxy.handlers import SuperviseAndProxyHandler
from simpervisor import SupervisedProcess

from polartep_hub.dashboards.serve import (
    READY_CHECK_SECONDS,
    SHARED_ASSET_ANSWER_SECONDS,
    VOILA_SHARED_ASSETS,
    briskly_ready,
    poll_briskly,
    viewer_login,
)
from tests.harness import wait_for
from tests.helpers.dashboards import MARKER, notebook, open_page, publish

LISTEN_AFTER = 2.7  # just past simpervisor's check at 2.55 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def port_accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def late_listener(port: int, bound_file: Path, delay: float) -> list[str]:
    code = textwrap.dedent(
        f"""
        import socket, time
        time.sleep({delay})
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", {port}))
        s.listen()
        open({str(bound_file)!r}, "w").write(repr(time.time()))
        time.sleep(60)
        """
    )
    return [sys.executable, "-c", code]


async def supervised(command: list[str], ready) -> SupervisedProcess:
    process = SupervisedProcess("late", *command, ready_func=ready, ready_timeout=30)
    await process.start()
    return process


def test_a_program_that_binds_late_is_noticed_within_a_tenth_of_a_second(tmp_path):
    port, bound_file = free_port(), tmp_path / "bound"

    async def scenario() -> float:
        process = await supervised(
            late_listener(port, bound_file, LISTEN_AFTER),
            lambda p: poll_briskly(lambda _: port_accepts(port), p),
        )
        try:
            assert await process.ready()
            return time.time() - float(bound_file.read_text())
        finally:
            await process.kill()

    assert asyncio.run(scenario()) < 0.1


def test_a_program_that_ends_before_it_listens_ends_the_check_at_once():
    async def scenario() -> tuple[bool, float]:
        process = await supervised([sys.executable, "-c", "import time; time.sleep(0.3)"], None)
        started = time.monotonic()
        ready = await poll_briskly(lambda _: port_accepts(free_port()), process)
        return ready, time.monotonic() - started

    ready, waited = asyncio.run(scenario())
    assert ready is False
    assert waited < 1.0


def test_a_program_that_never_listens_fails_one_check_after_its_limit():
    async def scenario() -> tuple[bool, float]:
        process = await supervised([sys.executable, "-c", "import time; time.sleep(60)"], None)
        try:
            started = time.monotonic()
            ready = await poll_briskly(lambda _: port_accepts(free_port()), process)
            return ready, time.monotonic() - started
        finally:
            await process.kill()

    ready, waited = asyncio.run(scenario())
    assert ready is False
    assert READY_CHECK_SECONDS <= waited < READY_CHECK_SECONDS + 1


def test_the_proxy_handler_polls_its_own_readiness_check_briskly():
    calls: list[object] = []

    class Counting(SuperviseAndProxyHandler):
        async def _http_ready_func(self, p):
            calls.append(p)
            return len(calls) >= 3

    class Process:
        returncode = None

    handler_instance = object.__new__(briskly_ready(Counting))
    started = time.monotonic()
    assert asyncio.run(handler_instance._http_ready_func(Process())) is True
    assert len(calls) == 3
    assert time.monotonic() - started < 0.5


# The proxy's login --------------------------------------------------------------------------------------------------

HUB_DELAY = 1.0
STAND_IN_HUB = """
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

delay, asked, lock = float(sys.argv[1]), [], threading.Lock()

class Hub(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/asked":
            body = json.dumps(asked).encode()
        else:
            with lock:
                asked.append(self.headers.get("Authorization", ""))
            time.sleep(delay)  # a hub that takes its time over each question
            body = json.dumps({"kind": "user", "name": "viewer", "admin": False, "groups": [], "scopes": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def stand_in_hub(delay: float):
    """A hub's user API that answers "viewer" to every token after ``delay`` s; ``GET /asked`` lists the questions."""
    process = subprocess.Popen(
        [sys.executable, "-c", STAND_IN_HUB, str(delay)], stdout=subprocess.PIPE, text=True
    )
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.kill()
        process.wait()


def protected_handler(hub_url: str, shared_assets=None) -> type:
    """A handler behind the hub's login as the proxy's, wrapped in ``viewer_login``; it answers the viewer's name."""
    from jupyterhub.services.auth import HubAuth, HubAuthenticated
    from tornado import web

    class FreshHubAuth(HubAuth):
        """As the dashboard program's ``FreshHubOAuth``: the hub is asked at every request."""

        def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
            return super().user_for_token(token, use_cache=False, session_id=session_id, sync=sync)

    class Protected(HubAuthenticated, web.RequestHandler):
        allow_all = True
        _hub_auth = FreshHubAuth(api_url=f"{hub_url}/hub/api", api_token="proxy-token")

        @web.authenticated
        def get(self, path=""):
            self.write(self.current_user["name"])

    return viewer_login(Protected, shared_assets)


async def serving(handler: type, requests):
    """Serve ``handler`` on a free port and run ``requests(client, url)``; its result."""
    from tornado import httpclient, web

    server = web.Application([(r"/(.*)", handler)], base_url="/").listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    client = httpclient.AsyncHTTPClient(force_instance=True, max_clients=10)
    try:
        return await requests(client, f"http://127.0.0.1:{port}")
    finally:
        client.close()
        server.stop()


def test_the_proxy_asks_the_hub_about_concurrent_viewers_side_by_side():
    async def four_at_once(client, url):
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.fetch(f"{url}/", headers={"Authorization": f"token viewer-{n}"}) for n in range(4))
        )
        return [a.body.decode() for a in answers], time.monotonic() - started

    with stand_in_hub(HUB_DELAY) as hub:
        names, took = asyncio.run(serving(protected_handler(hub), four_at_once))
    assert names == ["viewer"] * 4
    # One after another, four questions to this hub take 4 s; side by side, one question's time.
    assert took < 2.5 * HUB_DELAY


def test_voilas_shared_scripts_ask_the_hub_once_a_second_per_viewer_and_everything_else_every_time():
    async def page_load(client, url):
        def get(path: str, token: str):
            return client.fetch(f"{url}/{path}", headers={"Authorization": f"token {token}"})

        for _ in range(3):
            await get("voila/static/voila.js", "alice")
        await get("voila/labextensions/@jupyter-widgets/jupyterlab-manager/static/7.js", "alice")
        await get("voila/static/voila.js", "bob")  # another viewer: asked for them
        await get("", "alice")  # the page
        await get("api/kernels/0b4b2c1e-2f0c-4a5e-9e0b-1c1d1e1f1a1b", "alice")  # the kernel
        await get("voila/files/data.csv", "alice")  # a file of the dashboard's folder
        await get("voila/static/../../api/kernels", "alice")  # below the scripts' prefix only by name
        await get("voila/static/%2e%2e/%2e%2e/api/kernels", "alice")
        await asyncio.sleep(SHARED_ASSET_ANSWER_SECONDS + 0.1)
        await get("voila/static/voila.js", "alice")  # the answer is a second old: asked again
        return [a.body.decode() for a in [await get("voila/static/voila.js", "alice")]]

    with stand_in_hub(0) as hub:
        assert asyncio.run(serving(protected_handler(hub, VOILA_SHARED_ASSETS), page_load)) == ["viewer"]
        asked = httpx.get(f"{hub}/asked").json()
    assert asked == ["token alice", "token bob"] + ["token alice"] * 6


def test_without_shared_assets_every_request_asks_the_hub():
    async def twice(client, url):
        for _ in range(2):
            await client.fetch(f"{url}/voila/static/voila.js", headers={"Authorization": "token alice"})

    with stand_in_hub(0) as hub:
        asyncio.run(serving(protected_handler(hub), twice))
        assert httpx.get(f"{hub}/asked").json() == ["token alice", "token alice"]


# On a real hub (local mode) ----------------------------------------------------------------------------------------

CELL_SECONDS = 6
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # as a browser asks for a page
)


def voila_processes(owner: str, server: str) -> list[int]:
    """The pids of the Voila serving ``owner``'s dashboard server ``server`` (found by its base URL)."""
    wanted = f"--Voila.base_url=/user/{owner}/{server}/"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted.encode() in arguments:
            found.append(int(entry.name))
    return found


def running_dashboard(platform, owner: str, nb: dict | None = None) -> tuple[str, str]:
    """A new user ``owner`` publishes ``nb`` (the marker notebook by default): their token and the server's name."""
    token = platform.create_user(owner)
    server = publish(platform, token, nb=nb)["server"]
    platform.wait_ready(owner, server, timeout=120)
    return token, server


@pytest.mark.hub
def test_voila_starts_with_the_dashboard_server_before_any_viewer_asks(platform):
    owner = "earlyowner"
    token, server = running_dashboard(platform, owner)
    # No page was requested: Voila runs (and the first page does not wait for it to start).
    wait_for(lambda: voila_processes(owner, server), 60, interval=0.2, what="Voila to start with its proxy")
    r = open_page(platform, owner, server, token)
    assert r.status_code == 200 and f"{MARKER}-42" in r.text
    assert len(voila_processes(owner, server)) == 1  # the viewer's request started no second one


@pytest.mark.hub
def test_the_page_reaches_the_viewer_while_its_cells_still_run(platform):
    owner = "streamowner"
    slow = notebook(f"import time\ntime.sleep({CELL_SECONDS})\nprint('{MARKER}-' + str(6 * 7))")
    token, server = running_dashboard(platform, owner, slow)
    started = time.monotonic()
    first_bytes_at, page = None, b""
    with httpx.stream(
        "GET",
        f"{platform.url}/user/{owner}/{server}/",
        headers={"Authorization": f"token {token}", "Accept": BROWSER_ACCEPT},
        timeout=90,
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            if first_bytes_at is None and chunk:
                first_bytes_at = time.monotonic() - started
            page += chunk
    finished_at = time.monotonic() - started
    assert f"{MARKER}-42".encode() in page
    # The page's head (its scripts) came while the cell slept, not with the cell's output at the end.
    assert first_bytes_at is not None and first_bytes_at < finished_at - CELL_SECONDS / 2


@pytest.mark.hub
def test_the_browser_keeps_an_extensions_script_whose_url_names_its_content(platform):
    owner = "cacheowner"
    token, server = running_dashboard(platform, owner)
    extension = "@jupyter-widgets/jupyterlab-manager"
    script = sorted((Path(sys.prefix) / "share/jupyter/labextensions" / extension / "static").glob("*.js"))[0]
    path = f"voila/labextensions/{extension}/static/{script.name}"

    versioned = open_page(platform, owner, server, token, f"{path}?v=0123abcd")
    assert versioned.status_code == 200 and versioned.content == script.read_bytes()
    assert versioned.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    # Without the version in its URL, the browser asks again as Voila says (the file may change at that URL).
    assert open_page(platform, owner, server, token, path).headers["Cache-Control"] == "no-cache"
