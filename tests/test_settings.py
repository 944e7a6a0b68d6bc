"""Settings are declared once (``hub/settings.py``): one boolean parser, bounds on the traits, and a platform
service that reads what the hub passes with the hub's own defaults (pure, no hub started)."""

from __future__ import annotations

import os

import pytest
from traitlets import TraitError
from traitlets.config import Config

from polartep_hub.hub_config import configure_hub, platform_service_definition
from polartep_hub.service.config import ConfigError, MailSettings, ServiceConfig
from polartep_hub.settings import PlatformSettings, env_setting, parse_env_bool

# ServiceConfig field -> the hub setting it comes from.
SHARED = {
    "admin_user": "admin_user",
    "default_plan": "default_plan",
    "log_level": "log_level",
    "signup_enabled": "signup",
    "signup_per_hour": "signup_per_hour",
    "signup_max_pending": "signup_max_pending",
    "password_min_length": "password_min_length",
    "login_attempts": "login_attempts",
    "login_attempts_per_address": "login_attempts_per_address",
    "login_lockout_seconds": "login_lockout_seconds",
    "login_max_concurrent_hashes": "login_max_concurrent_hashes",
    "oidc_group_prefix": "oidc_group_prefix",
    "gateway_meter_interval": "gateway_meter_interval",
    "auth": "auth",
    "password_reset_minutes": "password_reset_minutes",
    "password_reset_per_hour": "password_reset_per_hour",
    "mode": "mode",
}


@pytest.fixture(autouse=True)
def no_platform_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("POLARTEP_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "value"),
    [(t, True) for t in ("1", "true", "TRUE", "yes", "Yes", "on", " ON ")]
    + [(t, False) for t in ("0", "false", "False", "no", "NO", "off", "Off ")],
)
def test_one_boolean_parser_takes_every_usual_word(text, value):
    assert parse_env_bool("POLARTEP_X", text) is value


def test_local_memory_limit_off_turns_the_limit_off(monkeypatch, tmp_path):
    monkeypatch.setenv("POLARTEP_LOCAL_MEMORY_LIMIT", "off")
    settings = PlatformSettings(state_dir=str(tmp_path))
    assert settings.local_memory_limit is False
    c = Config()
    configure_hub(c, settings)
    assert c.LocalProfileSpawner.enforce_memory_limit is False


def test_local_memory_limit_is_on_by_default(tmp_path):
    assert PlatformSettings(state_dir=str(tmp_path)).local_memory_limit is True


@pytest.mark.parametrize("variable", ["POLARTEP_LOCAL_MEMORY_LIMIT", "POLARTEP_SIGNUP"])
def test_a_bad_boolean_names_the_variable_and_the_accepted_words(monkeypatch, tmp_path, variable):
    monkeypatch.setenv(variable, "flase")
    setting = {"POLARTEP_LOCAL_MEMORY_LIMIT": "local_memory_limit", "POLARTEP_SIGNUP": "signup"}[variable]
    message = f"{variable}='flase' is not a boolean: use 1/0, true/false, yes/no or on/off"
    with pytest.raises(TraitError) as hub_error:
        getattr(PlatformSettings(state_dir=str(tmp_path)), setting)
    assert str(hub_error.value) == message


def test_the_service_refuses_a_bad_boolean_with_the_same_message():
    with pytest.raises(ConfigError) as error:
        ServiceConfig.from_env({"POLARTEP_SIGNUP": "maybe"})
    assert (
        str(error.value) == "POLARTEP_SIGNUP='maybe' is not a boolean: use 1/0, true/false, yes/no or on/off"
    )
    with pytest.raises(ConfigError, match="^POLARTEP_SINGLE_USER='2' is not a boolean"):
        ServiceConfig.from_env({"POLARTEP_SINGLE_USER": "2"})


def test_an_out_of_bounds_integer_names_the_variable_the_setting_and_the_bound(monkeypatch, tmp_path):
    monkeypatch.setenv("POLARTEP_SIGNUP_PER_HOUR", "100001")
    expected = (
        "POLARTEP_SIGNUP_PER_HOUR='100001': The value of the 'signup_per_hour' trait of a PlatformSettings "
        "instance should not be greater than 100000, but a value of 100001 was specified"
    )
    with pytest.raises(TraitError) as hub_error:
        _ = PlatformSettings(state_dir=str(tmp_path)).signup_per_hour
    assert str(hub_error.value) == expected
    with pytest.raises(ConfigError) as service_error:
        ServiceConfig.from_env({"POLARTEP_SIGNUP_PER_HOUR": "100001"})
    assert str(service_error.value) == expected


def test_a_config_file_value_out_of_bounds_is_refused_when_set(tmp_path):
    with pytest.raises(TraitError) as error:
        PlatformSettings(state_dir=str(tmp_path), login_max_concurrent_hashes=0)
    assert str(error.value) == (
        "The value of the 'login_max_concurrent_hashes' trait of a PlatformSettings instance should not be less "
        "than 1, but a value of 0 was specified"
    )


def test_a_word_where_a_number_belongs_names_the_variable_and_setting():
    with pytest.raises(TraitError) as error:
        env_setting("login_attempts", {"POLARTEP_LOGIN_ATTEMPTS": "many"})
    assert str(error.value) == "POLARTEP_LOGIN_ATTEMPTS='many' must be a whole number (login_attempts)"


def test_the_service_and_the_hub_see_the_same_defaults(tmp_path):
    hub = PlatformSettings(state_dir=str(tmp_path))
    from_env, constructed = ServiceConfig.from_env({}), ServiceConfig()
    for field, setting in SHARED.items():
        assert getattr(from_env, field) == getattr(hub, setting), field
        assert getattr(constructed, field) == getattr(hub, setting), field
    for mail in (from_env.mail, MailSettings()):
        assert (mail.security, mail.from_address, mail.port) == (hub.smtp_security, hub.mail_from, 587)
    assert from_env.public_url == constructed.public_url == hub.public_url == "http://127.0.0.1:8000"
    docker = PlatformSettings(state_dir=str(tmp_path), mode="docker")
    assert ServiceConfig.from_env({"POLARTEP_MODE": "docker"}).public_url == docker.public_url


def test_the_oidc_authenticator_defaults_to_the_settings_group_prefix(tmp_path):
    from polartep_hub.auth.oidc import PlatformOIDCAuthenticator

    assert (
        PlatformOIDCAuthenticator().group_prefix
        == PlatformSettings(state_dir=str(tmp_path)).oidc_group_prefix
    )


def test_the_service_reads_every_shared_value_the_hub_passes(tmp_path):
    hub = PlatformSettings(
        state_dir=str(tmp_path),
        admin_user="chief",
        default_plan="standard",
        log_level="warning",
        signup=False,
        signup_per_hour=7,
        signup_max_pending=8,
        password_min_length=12,
        login_attempts=3,
        login_attempts_per_address=30,
        login_lockout_seconds=60,
        login_max_concurrent_hashes=2,
        oidc_group_prefix="idp-",
        gateway_meter_interval=2.5,
        password_reset_minutes=15,
        password_reset_per_hour=4,
        mode="docker",
        smtp_security="SSL",
        smtp_port=2465,
        mail_from="noreply@polar.example",
    )
    service = ServiceConfig.from_env(platform_service_definition(hub)["environment"])
    for field, setting in SHARED.items():
        assert getattr(service, field) == getattr(hub, setting), field
    assert (service.log_level, service.gateway_meter_interval, service.signup_enabled) == (
        "WARNING",
        2.5,
        False,
    )
    assert (service.mail.security, service.mail.port, service.mail.from_address) == (
        "ssl",
        2465,
        "noreply@polar.example",
    )


def test_bad_environment_values_are_settings_problems_and_stop_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("POLARTEP_LOCAL_MEMORY_LIMIT", "flase")
    monkeypatch.setenv("POLARTEP_HUB_PORT", "70000")
    problems = PlatformSettings(state_dir=str(tmp_path)).problems()
    assert sorted(problems) == [
        "POLARTEP_HUB_PORT='70000': The value of the 'hub_port' trait of a PlatformSettings instance should not "
        "be greater than 65535, but a value of 70000 was specified",
        "POLARTEP_LOCAL_MEMORY_LIMIT='flase' is not a boolean: use 1/0, true/false, yes/no or on/off",
    ]
    with pytest.raises(SystemExit) as stopped:
        configure_hub(Config(), PlatformSettings(state_dir=str(tmp_path)))
    assert str(stopped.value) == "invalid settings:\n  " + "\n  ".join(
        PlatformSettings(state_dir=str(tmp_path)).problems()
    )


@pytest.mark.parametrize("mode", ["docker", "swarm"])
def test_a_loopback_public_object_store_endpoint_is_refused_in_container_modes(tmp_path, mode):
    """Presigned URLs are signed for the public endpoint, and a container's 127.0.0.1 is its own."""

    def problems(**settings: str) -> list[str]:
        base = {"object_store_endpoint": "http://127.0.0.1:9000", "object_store_bucket": "polartep-datasets"}
        found = PlatformSettings(
            state_dir=str(tmp_path), mode=mode, **{**base, **settings}
        ).object_store_problems()
        return found

    expected = (
        f"object_store_public_endpoint must be an address that user containers reach in {mode} mode, not the "
        "loopback {!r} (a container's 127.0.0.1 is its own): set it to the store's address on a network the "
        "containers reach, e.g. the host's address on the platform network polartep-platform (README, 'Object "
        "datasets in Docker mode')"
    )
    assert problems() == [
        expected.format("http://127.0.0.1:9000")
    ]  # no public endpoint: the endpoint is used
    assert problems(object_store_public_endpoint="http://localhost:9000") == [
        expected.format("http://localhost:9000")
    ]
    assert problems(object_store_public_endpoint="http://[::1]:9000") == [
        expected.format("http://[::1]:9000")
    ]
    assert problems(object_store_public_endpoint="http://172.30.0.1:9000") == []
    assert problems(object_store_public_endpoint="https://s3.polar.example") == []
    # Local mode: servers are processes of this host, loopback is right.
    local = PlatformSettings(
        state_dir=str(tmp_path),
        mode="local",
        object_store_endpoint="http://127.0.0.1:9000",
        object_store_bucket="polartep-datasets",
    )
    assert local.object_store_problems() == []
