"""How ``subdomain_host`` becomes JupyterHub, proxy and gateway configuration (pure, no hub started)."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from polartep_hub.gateway.config import user_environment
from polartep_hub.hub_config import configure_hub
from polartep_hub.proxy_process import proxy_command
from polartep_hub.settings import PlatformSettings
from polartep_hub.user_origins import platform_subdomain_hook


@pytest.fixture(autouse=True)
def _no_origin_environment(monkeypatch):
    for name in ("POLARTEP_PUBLIC_URL", "POLARTEP_SUBDOMAIN_HOST", "POLARTEP_MODE"):
        monkeypatch.delenv(name, raising=False)
    # The platform network's gateway address, fixed: these pure tests create no network on the engine.
    monkeypatch.setattr(
        PlatformSettings,
        "container_host",
        property(lambda self: "10.99.0.1" if self.mode in ("docker", "swarm") else "127.0.0.1"),
    )


def settings(tmp_path, **values) -> PlatformSettings:
    return PlatformSettings(state_dir=str(tmp_path), **values)


def test_docker_mode_serves_users_on_subdomains_of_localhost_by_default(tmp_path):
    s = settings(tmp_path, mode="docker")
    assert s.public_url == "http://localhost:8000"
    assert s.user_subdomain_host == "http://localhost:8000"
    assert s.user_origin("alice") == "http://alice.localhost:8000"
    c = Config()
    configure_hub(c, s)
    assert c.JupyterHub.subdomain_host == "http://localhost:8000"
    assert c.JupyterHub.subdomain_hook is platform_subdomain_hook
    assert "--host-routing" in proxy_command(s)
    assert proxy_command(s)[proxy_command(s).index("--ip") + 1] == "127.0.0.1"


def test_local_mode_keeps_one_origin_unless_asked(tmp_path):
    s = settings(tmp_path)
    assert (s.public_url, s.user_subdomain_host) == ("http://127.0.0.1:8000", "")
    c = Config()
    configure_hub(c, s)
    assert "subdomain_host" not in c.JupyterHub
    assert "--host-routing" not in proxy_command(s)
    on = settings(tmp_path, public_url="http://tep.localhost:8000", subdomain_host="on")
    assert on.problems() == []
    assert on.user_origin("élise") == "http://xn--lise-9oa.tep.localhost:8000"


def test_docker_mode_with_an_ip_address_falls_back_to_one_origin(tmp_path):
    s = settings(tmp_path, mode="docker", public_url="http://10.0.0.5:8000")
    assert s.user_subdomain_host == ""


@pytest.mark.parametrize(
    ("public_url", "value", "problem"),
    [
        ("http://127.0.0.1:8000", "on", "subdomain_host=on needs a public URL whose host is a name"),
        (
            "http://localhost:8000",
            "http://localhost:9000",
            "must have the public URL's scheme, host and port",
        ),
        (
            "http://localhost:8000",
            "https://localhost:8000",
            "must have the public URL's scheme, host and port",
        ),
        ("http://localhost:8000", "yes", "subdomain_host must be 'on', 'off' or a URL"),
    ],
)
def test_a_subdomain_host_that_cannot_work_is_a_settings_problem(tmp_path, public_url, value, problem):
    problems = settings(tmp_path, public_url=public_url, subdomain_host=value).problems()
    assert len(problems) == 1 and problem in problems[0], problems


def test_services_stay_on_the_hubs_host_and_users_get_one_label_more():
    assert platform_subdomain_hook("platform", "hub.example.org", "service") == "hub.example.org"
    assert platform_subdomain_hook("alice", "hub.example.org", "user") == "alice.hub.example.org"
    assert platform_subdomain_hook("a.b", "hub.example.org", "user").endswith(".hub.example.org")
    assert platform_subdomain_hook("a.b", "hub.example.org", "user").count(".") == 3


def test_servers_reach_the_gateway_on_the_hub_host_or_directly_for_localhost_subdomains(tmp_path):
    s = settings(tmp_path, public_url="https://hub.example.org:443", subdomain_host="on")
    assert user_environment(s)["DASK_GATEWAY__ADDRESS"] == "https://hub.example.org:443/services/dask-gateway"
    s = settings(tmp_path, public_url="http://tep.localhost:8000", subdomain_host="on", gateway_port=8192)
    assert user_environment(s)["DASK_GATEWAY__ADDRESS"] == "http://127.0.0.1:8192/services/dask-gateway"
    assert (
        user_environment(s)["DASK_GATEWAY__PUBLIC_ADDRESS"]
        == "http://tep.localhost:8000/services/dask-gateway"
    )


def test_behind_tls_the_hubs_cookies_get_the_host_prefix(tmp_path):
    c = Config()
    configure_hub(c, settings(tmp_path, public_url="https://tep.example.org:443", subdomain_host="on"))
    assert c.JupyterHub.subdomain_host == "https://tep.example.org:443"
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    c = Config()
    configure_hub(c, settings(tmp_path, mode="docker"))
    assert "cookie_host_prefix_enabled" not in c.JupyterHub
