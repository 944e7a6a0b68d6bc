"""Wire Polar TEP into a JupyterHub configuration object from ``PlatformSettings``.

``jupyterhub_config.py`` calls ``configure_hub(c)`` and nothing else. Rules this module guarantees:

* The catalogue is loaded and validated here, so a bad catalogue stops the hub before it serves anything, with a
  message naming the file and the key.
* The hub keeps user servers running across its own restarts: ``cleanup_servers`` is off and the proxy runs on its
  own (started by ``polartep up`` or the test harness), so the hub neither starts nor stops it.
* The platform service is a hub-managed service at ``/services/platform/``; the hub talks to it with the token of the
  internal service ``polartep-hub``, which alone holds the custom scope ``custom:polartep:hub``.
* Login is the platform's password login, or (``auth=oidc``) an OpenID Connect provider through
  ``auth/oidc.py``, whose endpoints are discovered while this runs: an unreachable provider stops the hub here.
* Users' tokens may reach the platform service (``access:services!service=platform`` in the ``user`` role).
* Idle servers are stopped by jupyterhub-idle-culler, a hub-managed service holding only the scopes it needs,
  after ``idle_timeout`` seconds without activity (unless that is 0).
* Docker and Swarm modes: hardened containers (swarm: services) on the platform's own Docker networks
  (``spawners/networks.py``), never the host's: the hub's API listens on the platform network's gateway address
  (``settings.container_host``), the proxy's REST API and the platform service stay on 127.0.0.1, out of every
  container's reach. Containers are removed when they stop; each user's home is the named volume
  ``polartep-home-{username}``; images are never pulled (no registry: ``images/build.sh`` builds them here).
* The hub's login page links to the platform service's sign-up page while sign-up is open (``signup``).
* Dask Gateway runs as the managed service ``dask-gateway`` (``gateway/config.py``); users' tokens may reach it
  (``access:services!service=dask-gateway``) and every user server gets its addresses, so ``Gateway()`` needs no
  arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .auth.oidc import configure_oidc
from .catalogue import load_catalogue
from .gateway.config import (
    GATEWAY_SERVICE_NAME,
    gateway_db_url,
    gateway_service_definition,
    user_environment,
)
from .platform_client import HUB_CLIENT_SERVICE_NAME, HUB_SCOPE, SERVICE_NAME
from .settings import PlatformSettings


def spawner_class_for(mode: str) -> str:
    """The spawner class path for a settings mode."""
    return {
        "local": "polartep_hub.spawners.local.LocalProfileSpawner",
        "docker": "polartep_hub.spawners.docker.DockerProfileSpawner",
        "swarm": "polartep_hub.spawners.swarm.SwarmProfileSpawner",
    }[mode]


def platform_service_definition(settings: PlatformSettings) -> dict[str, Any]:
    """The managed-service entry for the platform service."""
    return {
        "name": SERVICE_NAME,
        "url": settings.service_url,
        "command": [sys.executable, "-m", "polartep_hub.service"],
        "display": True,
        "oauth_no_confirm": True,
        "environment": {
            "POLARTEP_SERVICE_DB_URL": settings.service_db_url,
            "POLARTEP_CATALOGUE": settings.catalogue_path,
            "POLARTEP_ADMIN_USER": settings.admin_user,
            "POLARTEP_ADMIN_PASSWORD": settings.admin_password,
            "POLARTEP_DEFAULT_PLAN": settings.default_plan,
            "POLARTEP_LOG_LEVEL": settings.log_level,
            "POLARTEP_LEGAL_DIR": settings.legal_dir,
            # With OIDC the identity provider registers people; an open local sign-up could reserve their names.
            "POLARTEP_SIGNUP": "1" if settings.signup and settings.auth == "platform" else "0",
            "POLARTEP_SIGNUP_PER_HOUR": str(settings.signup_per_hour),
            "POLARTEP_SIGNUP_MAX_PENDING": str(settings.signup_max_pending),
            "POLARTEP_PASSWORD_MIN_LENGTH": str(settings.password_min_length),
            "POLARTEP_LOGIN_ATTEMPTS": str(settings.login_attempts),
            "POLARTEP_LOGIN_LOCKOUT_SECONDS": str(settings.login_lockout_seconds),
            # The gateway meter (accounting/gateway_meter.py) reads the gateway's database into the usage ledger.
            "POLARTEP_GATEWAY_DB_URL": gateway_db_url(settings),
            "POLARTEP_GATEWAY_METER_INTERVAL": str(settings.gateway_meter_interval),
            "PYTHONUNBUFFERED": "1",
        },
    }


IDLE_CULLER_SERVICE_NAME = "idle-culler"


def idle_culler_service_definition(settings: PlatformSettings) -> dict[str, Any]:
    """The managed-service entry for jupyterhub-idle-culler, checking a few times per timeout."""
    cull_every = max(5, min(300, settings.idle_timeout // 3))
    return {
        "name": IDLE_CULLER_SERVICE_NAME,
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={settings.idle_timeout}",
            f"--cull-every={cull_every}",
        ],
    }


def configure_docker_spawner(c, settings: PlatformSettings) -> None:
    """DockerSpawner settings for ``mode=docker`` and ``swarm`` (the profile supplies image and limits per server)."""
    # Each user's servers join the user's own network ({prefix}-u-{user}); the hub reaches them at their address
    # there, they reach the hub at the platform network's gateway (the hub's bind address, hence its connect URL).
    c.DockerProfileSpawner.network_prefix = settings.docker_network_prefix
    c.DockerProfileSpawner.subnet_pool = settings.docker_subnet_pool
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.remove = True  # containers are disposable; the home volume is what persists
    # The images' own command, named here so a spawn need not inspect the image to find it.
    c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
    c.DockerSpawner.pull_policy = "never"  # no registry is reachable; a missing image is a build problem
    c.DockerSpawner.prefix = "polartep"  # containers: polartep-{username}[--{servername}]
    c.DockerProfileSpawner.home_volume_template = "polartep-home-{username}"
    # A container that died (e.g. killed for memory) is noticed within this many seconds.
    c.Spawner.poll_interval = 10


HUB_TEMPLATES_DIR = Path(__file__).with_name("templates")


def configure_signup_link(c, settings: PlatformSettings) -> None:
    """A "Sign up" link under the hub's login form (``templates/login.html``), while sign-up is open."""
    c.JupyterHub.template_paths = [str(HUB_TEMPLATES_DIR), *c.JupyterHub.get("template_paths", [])]
    if settings.signup:
        c.JupyterHub.template_vars["polartep_signup_url"] = f"/services/{SERVICE_NAME}/signup"


def configure_hub(c, settings: PlatformSettings | None = None) -> PlatformSettings:
    """Apply the platform to JupyterHub's config ``c``; returns the settings used."""
    settings = settings or PlatformSettings(config=c)
    problems = settings.problems()
    if problems:
        raise SystemExit("invalid settings:\n  " + "\n  ".join(problems))
    catalogue = load_catalogue(settings.catalogue_path)
    if settings.default_plan not in catalogue.plans:
        raise SystemExit(
            f"POLARTEP_DEFAULT_PLAN={settings.default_plan!r} is not a plan in {catalogue.source}; "
            f"choose one of: {', '.join(catalogue.plans)}"
        )
    state = settings.state_path
    state.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = settings.public_url
    c.JupyterHub.hub_bind_url = settings.hub_url
    c.JupyterHub.db_url = settings.hub_db_url
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.log_level = settings.log_level

    # Survive hub restarts: servers keep running and the proxy is not ours to start or stop.
    c.JupyterHub.cleanup_servers = False
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = settings.proxy_api_url
    c.ConfigurableHTTPProxy.auth_token = settings.proxy_auth_token

    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 4
    c.JupyterHub.authenticate_prometheus = True

    c.JupyterHub.authenticator_class = "polartep_hub.auth.platform_password.PlatformPasswordAuthenticator"
    c.PlatformPasswordAuthenticator.platform_service_url = settings.service_url
    c.PlatformPasswordAuthenticator.platform_service_token = settings.hub_service_token
    c.Authenticator.admin_users = {settings.admin_user}
    if settings.auth == "oidc":
        configure_oidc(
            c, settings
        )  # discovers the provider's endpoints now: an unusable issuer stops start-up

    c.JupyterHub.spawner_class = spawner_class_for(settings.mode)
    c.Spawner.catalogue_path = str(catalogue.source)
    c.Spawner.platform_service_url = settings.service_url
    c.Spawner.platform_service_token = settings.hub_service_token
    c.Spawner.default_url = "/lab"
    c.Spawner.environment = {**user_environment(settings)}
    # The server's own token ($JUPYTERHUB_API_TOKEN, which dask-gateway's client sends) keeps JupyterHub's default
    # `server` role scopes and may also reach the gateway.
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={GATEWAY_SERVICE_NAME}",
    ]
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    c.LocalProfileSpawner.home_dir_template = str(Path(state) / "users" / "{username}")
    c.LocalProfileSpawner.enforce_memory_limit = settings.local_memory_limit
    if settings.mode in ("docker", "swarm"):
        configure_docker_spawner(c, settings)

    c.JupyterHub.custom_scopes = {
        HUB_SCOPE: {
            "description": "Act for the hub towards the platform service (password checks, entitlements)."
        }
    }
    c.JupyterHub.services = [
        platform_service_definition(settings),
        {"name": HUB_CLIENT_SERVICE_NAME, "api_token": settings.hub_service_token},
        gateway_service_definition(settings),
    ]
    if settings.idle_timeout:
        c.JupyterHub.services.append(idle_culler_service_definition(settings))
    c.JupyterHub.load_roles = [
        {
            "name": "user",
            "scopes": [
                "self",
                f"access:services!service={SERVICE_NAME}",
                f"access:services!service={GATEWAY_SERVICE_NAME}",
            ],
        },
        {"name": "polartep-hub-client", "scopes": [HUB_SCOPE], "services": [HUB_CLIENT_SERVICE_NAME]},
        {
            "name": "platform-service",
            # Groups: projects are JupyterHub groups the service keeps in sync. Users and servers: erasure deletes
            # the hub user (stopping servers, deleting homes through the spawner's delete_forever).
            "scopes": [
                "read:users",
                "list:users",
                "read:groups",
                "list:groups",
                "admin:groups",
                "admin:users",
                "admin:servers",
            ],
            "services": [SERVICE_NAME],
        },
    ]
    if settings.idle_timeout:
        c.JupyterHub.load_roles.append(
            {
                "name": "idle-culler",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": [IDLE_CULLER_SERVICE_NAME],
            }
        )
    c.JupyterHub.template_vars = {
        "announcement_login": "Polar TEP: sign in to pick an environment and start working.",
    }
    configure_signup_link(c, settings)
    return settings
