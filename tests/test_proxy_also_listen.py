"""The proxy's second listener in Docker and Swarm modes (``proxy_also_listen.js``), with the real npm proxy.

Specification: with ``mode=docker`` the public port also answers on the platform network's gateway address (here a
second loopback address, 127.0.0.2, stands in for it), through the same routes and with the connecting client's own
address in ``X-Forwarded-For`` (so the service's per-client limits see the container, not the proxy); the REST API
does not listen there; local mode opens no second listener.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from polartep_hub.proxy_process import also_listen, proxy_environment, start_proxy
from polartep_hub.settings import PlatformSettings
from tests.harness import free_ports

SECOND_ADDRESS = "127.0.0.2"


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps(
            {"path": self.path, "x-forwarded-for": self.headers.get("X-Forwarded-For")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def get(host: str, port: int, path: str, source: str) -> tuple[int, dict | None]:
    connection = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if response.status == 200 else None
    finally:
        connection.close()


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def docker_mode_proxy(tmp_path, monkeypatch):
    monkeypatch.setattr(PlatformSettings, "container_host", property(lambda self: SECOND_ADDRESS))
    public, api, hub = free_ports(3)
    settings = PlatformSettings(
        state_dir=str(tmp_path / "state"),
        mode="docker",
        public_url=f"http://127.0.0.1:{public}",
        subdomain_host="off",
        proxy_api_port=api,
        hub_port=hub,
    )
    echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    process = start_proxy(settings, log_path=tmp_path / "proxy.log")
    try:
        route = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
        route.request(
            "POST",
            "/api/routes/services/platform",
            body=json.dumps({"target": f"http://127.0.0.1:{echo.server_address[1]}"}),
            headers={"Authorization": f"token {settings.proxy_auth_token}"},
        )
        assert route.getresponse().status == 201
        yield settings
    finally:
        process.terminate()
        process.wait(10)
        echo.shutdown()


def test_the_public_port_also_answers_on_the_platform_networks_address(docker_mode_proxy):
    settings = docker_mode_proxy
    port = settings.public_port
    assert also_listen(settings) == [(SECOND_ADDRESS, port)]

    on_public = get("127.0.0.1", port, "/services/platform/api/v1/me", source="127.0.0.1")
    on_second = get(SECOND_ADDRESS, port, "/services/platform/api/v1/me", source="127.0.0.3")

    assert on_public == (200, {"path": "/services/platform/api/v1/me", "x-forwarded-for": "127.0.0.1"})
    # The same routes, and the connecting client's own address (not the proxy's) in X-Forwarded-For.
    assert on_second == (200, {"path": "/services/platform/api/v1/me", "x-forwarded-for": "127.0.0.3"})
    assert refused(SECOND_ADDRESS, settings.proxy_api_port), "the REST API stays on 127.0.0.1"


def test_local_mode_opens_no_second_listener(tmp_path):
    settings = PlatformSettings(state_dir=str(tmp_path), mode="local", public_url="http://127.0.0.1:8000")
    assert also_listen(settings) == [] and proxy_environment(settings) == {}
