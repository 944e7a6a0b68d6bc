"""The dashboard program's proxy (hub/dashboards/serve.py) does not slow the viewer's page down.

* It notices its program listening at once (``poll_briskly``): measured against a real process supervised by
  simpervisor, as jupyter-server-proxy supervises Voila, which binds its port after a delay that simpervisor's
  doubling back-off (checks at 0.01, 0.03, 0.07, ... 2.55, 5.11 s) would notice only at 5.1 s.
* It asks the hub about concurrent viewers side by side (``login_without_blocking``), against a stand-in hub that
  takes its time over each question.
* On a real hub: Voila starts with the dashboard server, before any viewer asks; a page reaches the viewer's browser
  while its cells still run, as bare Voila sends it.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from jupyter_server_proxy.handlers import SuperviseAndProxyHandler
from simpervisor import SupervisedProcess

from polartep_hub.dashboards.serve import (
    READY_CHECK_SECONDS,
    briskly_ready,
    login_without_blocking,
    poll_briskly,
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
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Hub(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(DELAY)  # a hub that takes its time over each question
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
""".replace("DELAY", repr(HUB_DELAY))


@pytest.fixture
def slow_hub():
    process = subprocess.Popen([sys.executable, "-c", STAND_IN_HUB], stdout=subprocess.PIPE, text=True)
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}/hub/api"
    finally:
        process.kill()
        process.wait()


def test_the_proxy_asks_the_hub_about_concurrent_viewers_side_by_side(slow_hub):
    from jupyterhub.services.auth import HubAuth, HubAuthenticated
    from tornado import httpclient, web

    hub_auth = HubAuth(api_url=slow_hub, api_token="proxy-token", cache_max_age=0)

    class Protected(HubAuthenticated, web.RequestHandler):
        allow_all = True
        _hub_auth = hub_auth

        @web.authenticated
        def get(self):
            self.write(self.current_user["name"])

    async def scenario() -> tuple[list[str], float]:
        application = web.Application([(r"/", login_without_blocking(Protected))])
        server = application.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        client = httpclient.AsyncHTTPClient(force_instance=True, max_clients=10)
        try:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(
                    client.fetch(f"http://127.0.0.1:{port}/", headers={"Authorization": f"token viewer-{n}"})
                    for n in range(4)
                )
            )
            return [a.body.decode() for a in answers], time.monotonic() - started
        finally:
            client.close()
            server.stop()

    names, took = asyncio.run(scenario())
    assert names == ["viewer"] * 4
    # One after another, four questions to this hub take 4 s; side by side, one question's time.
    assert took < 2.5 * HUB_DELAY


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


@pytest.mark.hub
def test_voila_starts_with_the_dashboard_server_before_any_viewer_asks(platform):
    owner = "earlyowner"
    token = platform.create_user(owner)
    dashboard = publish(platform, token)
    server = dashboard["server"]
    platform.wait_ready(owner, server, timeout=120)
    # No page was requested: Voila runs (and the first page does not wait for it to start).
    wait_for(lambda: voila_processes(owner, server), 60, interval=0.2, what="Voila to start with its proxy")
    r = open_page(platform, owner, server, token)
    assert r.status_code == 200 and f"{MARKER}-42" in r.text
    assert len(voila_processes(owner, server)) == 1  # the viewer's request started no second one


@pytest.mark.hub
def test_the_page_reaches_the_viewer_while_its_cells_still_run(platform):
    owner = "streamowner"
    token = platform.create_user(owner)
    slow = notebook(f"import time\ntime.sleep({CELL_SECONDS})\nprint('{MARKER}-' + str(6 * 7))")
    dashboard = publish(platform, token, nb=slow)
    server = dashboard["server"]
    platform.wait_ready(owner, server, timeout=120)
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
