"""The production configuration: hub and platform service both on PostgreSQL, spawning and surviving a restart."""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform
from tests.helpers.servers import server_state

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_platform(tmp_path_factory, postgres_server):
    env = {
        "POLARTEP_HUB_DB_URL": postgres_server.create_database("hub_production"),
        "POLARTEP_SERVICE_DB_URL": postgres_server.create_database("platform_production"),
    }
    with RunningPlatform(tmp_path_factory.mktemp("postgres"), extra_env=env).running() as running:
        yield running


def test_spawn_and_restart_with_both_databases_on_postgresql(postgres_platform):
    p = postgres_platform
    token = p.create_user("polaris", plan="standard")
    assert p.api("GET", "/services/platform/api/v1/me", token).json()["plan"] == "standard"
    p.spawn("polaris", token, {"profile": "small"})
    pid = server_state(p, "polaris")["pid"]

    p.stop_hub()
    p.start_hub()

    assert server_state(p, "polaris")["pid"] == pid
    assert p.api("GET", "/services/platform/api/v1/me", token).json()["plan"] == "standard"
    assert p.api("GET", "/user/polaris/api/status", token).status_code == 200
