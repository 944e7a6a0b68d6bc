"""``python -m polartep_hub.service`` as the hub runs it: start-up checks, and a real server behind the env contract.

The real server checks tokens with the real ``HubOAuth`` against ``fakes.FakeHubAPI`` over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PREFIX = "/services/platform/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(tmp_path: Path, hub_url: str = "http://127.0.0.1:9", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "POLARTEP_"))}
    env.update(
        {
            "JUPYTERHUB_SERVICE_NAME": "platform",
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            "JUPYTERHUB_API_URL": f"{hub_url}/hub/api",
            "JUPYTERHUB_API_TOKEN": "service-api-token",
            "JUPYTERHUB_CLIENT_ID": "service-platform",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
            "JUPYTERHUB_BASE_URL": "/",
            "POLARTEP_SERVICE_DB_URL": f"sqlite:///{tmp_path / 'platform.sqlite'}",
        }
    )
    env.update(extra)
    return env


def run_to_exit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polartep_hub.service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class RunningService:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.url = env["JUPYTERHUB_SERVICE_URL"] + PREFIX
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "polartep_hub.service"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited {self.process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(self.url + "health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"service did not answer within 30 s:\n{log.read_text()}")
            time.sleep(0.1)

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def stop(self) -> None:
        """SIGTERM, as the hub sends it; the service must shut down cleanly and promptly."""
        self.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after a graceful shutdown, so the status is -SIGTERM rather than 0.
        assert self.process.wait(timeout=15) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in self.log.read_text()


def test_a_bad_catalogue_stops_start_up_with_its_message(tmp_path):
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text("profiles: [unclosed\n")
    result = run_to_exit(service_env(tmp_path, POLARTEP_CATALOGUE=str(catalogue)))
    assert result.returncode == 1
    assert f"{catalogue}: not valid YAML at line" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "platform.sqlite").exists()


def test_a_default_plan_missing_from_the_catalogue_stops_start_up(tmp_path):
    result = run_to_exit(service_env(tmp_path, POLARTEP_DEFAULT_PLAN="platinum"))
    assert result.returncode == 1
    assert "POLARTEP_DEFAULT_PLAN='platinum'" in result.stderr
    assert "known plans: trial, standard, large" in result.stderr


def test_missing_hub_variables_stop_start_up(tmp_path):
    env = service_env(tmp_path)
    del env["JUPYTERHUB_API_TOKEN"]
    result = run_to_exit(env)
    assert result.returncode == 1
    assert "JUPYTERHUB_API_TOKEN" in result.stderr


def test_an_unusable_database_stops_start_up_without_showing_its_password(tmp_path):
    port = free_port()  # nothing listens there
    result = run_to_exit(
        service_env(tmp_path, POLARTEP_SERVICE_DB_URL=f"postgresql+psycopg://u:db-secret@127.0.0.1:{port}/x")
    )
    assert result.returncode == 1
    assert "cannot prepare the database" in result.stderr
    assert "db-secret" not in result.stderr


def test_arguments_are_refused(tmp_path):
    result = run_to_exit(service_env(tmp_path), "--port", "1")
    assert result.returncode == 1
    assert "environment variables" in result.stderr


def test_the_service_serves_under_its_prefix_and_keeps_state_across_restarts(tmp_path, hub_url):
    env = service_env(tmp_path, hub_url, POLARTEP_ADMIN_PASSWORD="first-admin-password")
    service = RunningService(env, tmp_path / "first.log")
    try:
        health = service.request("GET", "health")
        assert health.json()["database"] == "ok"
        assert health.headers["x-content-type-options"] == "nosniff"
        assert "/services/platform/api/v1/me" in service.request("GET", "api/v1/openapi.json").json()["paths"]

        # Tokens are checked by the real HubOAuth against the (fake) hub over HTTP.
        me = service.request("GET", "api/v1/me", "alice-token")
        assert me.status_code == 200 and me.json()["plan"] == "trial"
        assert service.request("GET", "api/v1/me", "forged-token").status_code == 401
        assert service.request("GET", "api/v1/me", "broken-hub-token").status_code == 503

        login = service.request(
            "POST",
            "api/v1/auth/password",
            "hub-token",
            json={"username": "admin", "password": "first-admin-password"},
        )
        assert login.json() == {"name": "admin", "admin": True}
    finally:
        service.stop()

    env["POLARTEP_ADMIN_PASSWORD"] = "second-admin-password"
    service = RunningService(env, tmp_path / "second.log")
    try:
        for password, status in (("first-admin-password", 401), ("second-admin-password", 200)):
            login = service.request(
                "POST", "api/v1/auth/password", "hub-token", json={"username": "admin", "password": password}
            )
            assert login.status_code == status
        assert (
            service.request("GET", "api/v1/me", "alice-token").json()["plan_started_at"]
            == me.json()["plan_started_at"]
        )
    finally:
        service.stop()

    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    for secret in (
        "alice-token",
        "hub-token",
        "first-admin-password",
        "second-admin-password",
        "service-api-token",
    ):
        assert secret not in logs
    assert "Traceback" not in logs


@pytest.mark.postgres
def test_the_service_starts_on_postgresql(tmp_path, hub_url, postgres_server):
    url = postgres_server.create_database("main_start")
    service = RunningService(service_env(tmp_path, hub_url, POLARTEP_SERVICE_DB_URL=url), tmp_path / "pg.log")
    try:
        assert service.request("GET", "health").json()["database"] == "ok"
        assert service.request("GET", "api/v1/me", "alice-token").status_code == 200
    finally:
        service.stop()
