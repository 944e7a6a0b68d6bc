"""How settings become JupyterHub configuration: idle culling and Docker mode (pure, no hub started)."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from polartep_hub.hub_config import configure_hub
from polartep_hub.settings import PlatformSettings


def configured(tmp_path, **settings) -> Config:
    c = Config()
    configure_hub(c, PlatformSettings(state_dir=str(tmp_path), **settings))
    return c


def test_idle_servers_are_culled_after_an_hour_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("POLARTEP_IDLE_TIMEOUT", raising=False)
    c = configured(tmp_path)
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert "--timeout=3600" in culler["command"]
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def test_idle_timeout_zero_turns_culling_off(tmp_path):
    c = configured(tmp_path, idle_timeout=0)
    assert "idle-culler" not in {s["name"] for s in c.JupyterHub.services}


def test_a_negative_idle_timeout_is_refused_by_its_trait(tmp_path):
    with pytest.raises(
        TraitError, match="'idle_timeout' trait .* should not be less than 0, but a value of -5"
    ):
        PlatformSettings(state_dir=str(tmp_path), idle_timeout=-5)


def test_docker_mode_uses_the_platforms_networks_home_volumes_and_never_pulls(tmp_path, monkeypatch):
    # The platform network's gateway address (found or created through the engine at start-up; fixed here).
    monkeypatch.setattr(PlatformSettings, "container_host", property(lambda self: "10.99.0.1"))
    c = configured(tmp_path, mode="docker", docker_network_prefix="ptest")
    assert c.JupyterHub.spawner_class == "polartep_hub.spawners.docker.DockerProfileSpawner"
    assert c.JupyterHub.hub_bind_url.startswith("http://10.99.0.1:")
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:"), (
        "the proxy's API stays on loopback"
    )
    assert c.DockerProfileSpawner.network_prefix == "ptest" and c.DockerSpawner.use_internal_ip is True
    assert "network_name" not in c.DockerSpawner, "never the host's network: each user's own"
    gateway = next(s for s in c.JupyterHub.services if s["name"] == "dask-gateway")
    platform = next(s for s in c.JupyterHub.services if s["name"] == "platform")
    assert gateway["url"].startswith("http://10.99.0.1:") and platform["url"].startswith("http://127.0.0.1:")
    assert c.Spawner.environment["DASK_GATEWAY__PROXY_ADDRESS"].startswith("gateway://10.99.0.1:")
    assert c.DockerSpawner.remove is True and c.DockerSpawner.pull_policy == "never"
    assert c.DockerProfileSpawner.home_volume_template == "polartep-home-{username}"
    port = PlatformSettings(state_dir=str(tmp_path), mode="docker").public_port
    # The extension reaches the service through the proxy's public port on the platform network's address.
    assert c.Spawner.environment["POLARTEP_SERVICE_URL"] == f"http://10.99.0.1:{port}/services/platform/"


def test_per_user_origins_in_docker_mode_route_the_platform_network_address_to_the_service(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(PlatformSettings, "container_host", property(lambda self: "10.99.0.1"))
    settings = PlatformSettings(
        state_dir=str(tmp_path), mode="docker", public_url="http://localhost:8000", subdomain_host="on"
    )
    c = Config()
    configure_hub(c, settings)
    assert c.JupyterHub.subdomain_host == "http://localhost:8000"
    assert c.ConfigurableHTTPProxy.extra_routes == {"10.99.0.1/services/platform/": settings.service_url}
    assert settings.service_url.startswith("http://127.0.0.1:")


def test_local_mode_points_the_extension_at_the_public_url_and_adds_no_route(tmp_path):
    c = configured(tmp_path, mode="local", public_url="http://127.0.0.1:8000")
    assert c.Spawner.environment["POLARTEP_SERVICE_URL"] == "http://127.0.0.1:8000/services/platform/"
    assert "extra_routes" not in c.ConfigurableHTTPProxy


def test_registration_settings_reach_the_platform_service_and_the_login_page_links_to_signup(tmp_path):
    c = configured(tmp_path, password_min_length=12, login_attempts=3, login_lockout_seconds=60)
    env = next(s for s in c.JupyterHub.services if s["name"] == "platform")["environment"]
    assert env["POLARTEP_SIGNUP"] == "1" and env["POLARTEP_PASSWORD_MIN_LENGTH"] == "12"
    assert env["POLARTEP_LOGIN_ATTEMPTS"] == "3" and env["POLARTEP_LOGIN_LOCKOUT_SECONDS"] == "60"
    assert c.JupyterHub.template_vars["polartep_signup_url"] == "/services/platform/signup"
    assert (Path(c.JupyterHub.template_paths[0]) / "login.html").is_file()


def test_closed_signup_drops_the_link(tmp_path):
    c = configured(tmp_path, signup=False)
    env = next(s for s in c.JupyterHub.services if s["name"] == "platform")["environment"]
    assert env["POLARTEP_SIGNUP"] == "0"
    assert "polartep_signup_url" not in c.JupyterHub.template_vars


@pytest.mark.parametrize(
    ("setting", "value", "bound"),
    [
        ("password_min_length", 0, "should not be less than 1"),
        ("password_min_length", 129, "should not be greater than 128"),
        ("login_attempts", -1, "should not be less than 0"),
        ("login_lockout_seconds", 0, "should not be less than 1"),
    ],
)
def test_bad_registration_settings_are_refused_naming_the_setting_and_bound(tmp_path, setting, value, bound):
    with pytest.raises(TraitError, match=f"'{setting}' trait .* {bound}, but a value of {value} was"):
        PlatformSettings(state_dir=str(tmp_path), **{setting: value})


def test_polartep_check_shows_the_password_rules_but_never_the_admin_password(tmp_path, monkeypatch):
    monkeypatch.delenv("POLARTEP_PASSWORD_MIN_LENGTH", raising=False)
    rows = {name: shown for name, shown, _ in PlatformSettings(state_dir=str(tmp_path)).describe()}
    assert rows["password_min_length"] == "10"
    assert rows["admin_password"] in ("(given)", "(generated on first start)")


def test_the_platform_service_meters_the_gateways_database(tmp_path):
    c = configured(tmp_path, gateway_meter_interval=3)
    service = next(s for s in c.JupyterHub.services if s["name"] == "platform")
    assert (
        service["environment"]["POLARTEP_GATEWAY_DB_URL"] == f"sqlite:///{tmp_path / 'dask-gateway.sqlite'}"
    )
    assert service["environment"]["POLARTEP_GATEWAY_METER_INTERVAL"] == "3.0"


def test_a_meter_interval_out_of_range_is_refused_by_its_trait(tmp_path):
    with pytest.raises(TraitError, match="'gateway_meter_interval' trait .* should not be less than 1"):
        PlatformSettings(state_dir=str(tmp_path), gateway_meter_interval=0)


def test_mail_and_reset_settings_reach_the_platform_service_and_the_login_page_links_to_forgot(tmp_path):
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    c = configured(
        tmp_path,
        smtp_host="mail.polar.example",
        smtp_security="ssl",
        smtp_user="polartep",
        smtp_password_file=str(secret),
        mail_from="noreply@polar.example",
        password_reset_minutes=15,
    )
    env = next(s for s in c.JupyterHub.services if s["name"] == "platform")["environment"]
    assert {
        k: v
        for k, v in env.items()
        if k.startswith(("POLARTEP_SMTP", "POLARTEP_MAIL", "POLARTEP_PASSWORD_R"))
    } == {
        "POLARTEP_SMTP_HOST": "mail.polar.example",
        "POLARTEP_SMTP_PORT": "",
        "POLARTEP_SMTP_SECURITY": "ssl",
        "POLARTEP_SMTP_USER": "polartep",
        "POLARTEP_SMTP_PASSWORD_FILE": str(secret),
        "POLARTEP_MAIL_FROM": "noreply@polar.example",
        "POLARTEP_PASSWORD_RESET_MINUTES": "15",
        "POLARTEP_PASSWORD_RESET_PER_HOUR": "10",
    }
    assert "s3cret" not in str(env)  # the service reads the file itself
    assert c.JupyterHub.template_vars["polartep_forgot_url"] == "/services/platform/password/forgot"
    assert PlatformSettings(state_dir=str(tmp_path), smtp_host="mail.polar.example").warnings() == []


def test_no_smtp_host_is_a_warning_not_a_problem(tmp_path):
    settings = PlatformSettings(state_dir=str(tmp_path), smtp_host="")
    assert settings.problems() == []
    [warning] = settings.warnings()
    assert warning.startswith(
        "smtp_host (POLARTEP_SMTP_HOST) is not set: password-reset links are not e-mailed"
    )
    bad = PlatformSettings(
        state_dir=str(tmp_path), smtp_password_file=str(tmp_path / "missing"), mail_from="x"
    )
    assert bad.problems() == [
        f"smtp_password_file {str(tmp_path / 'missing')!r} does not exist",
        "mail_from must be an e-mail address, got 'x'",
    ]


def test_the_hub_process_never_imports_dask_gateway_server():
    """Importing it swaps traitlets' logging config for colorlog's, which breaks every hub log line
    (``KeyError: 'color'``); only the gateway's own process may import it."""
    import subprocess
    import sys

    code = (
        "import sys, polartep_hub.hub_config, polartep_hub.spawners.local, polartep_hub.spawners.docker, "
        "polartep_hub.auth.platform_password, polartep_hub.auth.oidc; "
        "print(sorted(m for m in sys.modules if m.startswith('dask_gateway_server')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
