"""The platform service's environment contract (``ServiceConfig.from_env``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polartep_hub.service.config import DEFAULT_DATABASE_URL, ConfigError, ServiceConfig

HUB_ENV = {
    "JUPYTERHUB_SERVICE_NAME": "platform",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:8090",
    "JUPYTERHUB_SERVICE_PREFIX": "/services/platform/",
}


def test_defaults_with_only_the_hub_variables():
    config = ServiceConfig.from_env(HUB_ENV)
    assert (config.host, config.port, config.prefix) == ("127.0.0.1", 8090, "/services/platform/")
    assert config.access_scopes == frozenset({"access:services!service=platform"})
    assert config.database_url == DEFAULT_DATABASE_URL == "sqlite:///./platform.sqlite"
    assert config.catalogue_path is None
    assert (config.admin_user, config.admin_password, config.default_plan) == ("admin", None, "trial")
    assert len(config.cookie_secret) == 32 and not config.cookie_secret_from_env


def test_every_platform_variable_is_read():
    config = ServiceConfig.from_env(
        {
            **HUB_ENV,
            "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:9999",
            "JUPYTERHUB_SERVICE_PREFIX": "/base/services/platform",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": '["access:services!service=platform", "custom:x"]',
            "POLARTEP_SERVICE_DB_URL": "postgresql+psycopg://u:p%40ss@db/platform",
            "POLARTEP_CATALOGUE": "/etc/polartep/catalogue.yaml",
            "POLARTEP_ADMIN_USER": "root-admin",
            "POLARTEP_ADMIN_PASSWORD": "s3cret pass",
            "POLARTEP_DEFAULT_PLAN": "standard",
            "POLARTEP_SERVICE_COOKIE_SECRET": "ab" * 32,
            "POLARTEP_LOG_LEVEL": "debug",
        }
    )
    assert config.port == 9999
    assert config.prefix == "/base/services/platform/"
    assert config.access_scopes == frozenset({"access:services!service=platform", "custom:x"})
    assert config.database_url == "postgresql+psycopg://u:p%40ss@db/platform"
    assert config.catalogue_path == Path("/etc/polartep/catalogue.yaml")
    assert (config.admin_user, config.admin_password, config.default_plan) == (
        "root-admin",
        "s3cret pass",
        "standard",
    )
    assert config.cookie_secret == bytes.fromhex("ab" * 32) and config.cookie_secret_from_env
    assert config.log_level == "DEBUG"


def test_the_gateway_meter_is_off_without_the_gateways_database_and_reads_it_when_given():
    assert ServiceConfig.from_env(HUB_ENV).gateway_db_url is None
    config = ServiceConfig.from_env(
        {
            **HUB_ENV,
            "POLARTEP_GATEWAY_DB_URL": "sqlite:////state/dask-gateway.sqlite",
            "POLARTEP_GATEWAY_METER_INTERVAL": "2.5",
        }
    )
    assert (config.gateway_db_url, config.gateway_meter_interval) == (
        "sqlite:////state/dask-gateway.sqlite",
        2.5,
    )


def test_secrets_stay_out_of_repr():
    config = ServiceConfig.from_env(
        {
            **HUB_ENV,
            "POLARTEP_ADMIN_PASSWORD": "hunter2-password",
            "POLARTEP_SERVICE_DB_URL": "postgresql+psycopg://u:dbpassword@db/x",
        }
    )
    text = repr(config)
    assert "hunter2-password" not in text and "dbpassword" not in text
    assert config.cookie_secret.hex() not in text


def test_empty_admin_password_means_no_admin_account():
    assert ServiceConfig.from_env({**HUB_ENV, "POLARTEP_ADMIN_PASSWORD": ""}).admin_password is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JUPYTERHUB_SERVICE_URL": "https://127.0.0.1:8090"}, "JUPYTERHUB_SERVICE_URL"),
        ({"JUPYTERHUB_SERVICE_URL": "127.0.0.1:8090"}, "JUPYTERHUB_SERVICE_URL"),
        ({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:99999"}, "JUPYTERHUB_SERVICE_URL"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": "access:services"}, "JUPYTERHUB_OAUTH_ACCESS_SCOPES"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": '{"a": 1}'}, "JUPYTERHUB_OAUTH_ACCESS_SCOPES"),
        ({"POLARTEP_ADMIN_USER": "Admin User"}, "POLARTEP_ADMIN_USER"),
        ({"POLARTEP_SERVICE_COOKIE_SECRET": "not hex"}, "POLARTEP_SERVICE_COOKIE_SECRET"),
        ({"POLARTEP_SERVICE_COOKIE_SECRET": "abcd"}, "POLARTEP_SERVICE_COOKIE_SECRET"),
        ({"POLARTEP_LOG_LEVEL": "loud"}, "POLARTEP_LOG_LEVEL"),
        ({"POLARTEP_GATEWAY_METER_INTERVAL": "0"}, "POLARTEP_GATEWAY_METER_INTERVAL"),
        ({"POLARTEP_GATEWAY_METER_INTERVAL": "often"}, "POLARTEP_GATEWAY_METER_INTERVAL"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        ServiceConfig.from_env({**HUB_ENV, **env})


def test_create_app_refuses_a_default_plan_missing_from_the_catalogue(catalogue, tmp_path):
    from polartep_hub.service.app import create_app
    from tests.helpers.service_fakes import FakeIdentityProvider

    config = ServiceConfig(default_plan="platinum", database_url=f"sqlite:///{tmp_path / 'x.sqlite'}")
    with pytest.raises(ConfigError, match="known plans: trial, standard, large"):
        create_app(config, catalogue, identity_provider=FakeIdentityProvider())


def test_a_local_home_folder_is_named_after_the_system_user_and_a_docker_home_after_the_account():
    from polartep_hub.service.config import ServiceConfig

    local = ServiceConfig.from_env({"POLARTEP_MODE": "local", "POLARTEP_HOME_FOLDER_PREFIX": "jupyter-"})
    docker = ServiceConfig.from_env({"POLARTEP_MODE": "docker", "POLARTEP_HOME_FOLDER_PREFIX": "jupyter-"})
    single_user = ServiceConfig.from_env({"POLARTEP_MODE": "local"})
    assert local.home_folder("alice") == "jupyter-alice"
    assert docker.home_folder("alice") == "alice"  # the volume polartep-home-alice
    assert single_user.home_folder("alice") == "alice"
