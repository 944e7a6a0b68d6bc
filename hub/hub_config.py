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
* Managed services (platform service, gateway, idle culler) end when the hub process ends, however it ends
  (``parent_death.py``): a killed hub leaves none of them running, and its restart starts exactly one of each.
* Idle servers are stopped by jupyterhub-idle-culler, a hub-managed service holding only the scopes it needs,
  after ``idle_timeout`` seconds without activity (unless that is 0).
* Local mode (``configure_local_isolation``): as root each user runs as their own system user
  (``spawners/system_users.py``), the state folder is 0700 and its files 0600, the hub runs with umask 077, homes
  and Dask working directories live outside the state folder (``platform_files.py``), and start-up stops if users' accounts
  could not run the platform's Python environment (``platform_files.py``). Without root (or with
  ``local_isolation=single-user``) it is single-user: start-up stops while sign-up is open or accounts other than
  the administrator exist, and the platform service creates no other account (``spawners/single_user.py``).
* Docker and Swarm modes: hardened containers (swarm: services) on the platform's own Docker networks
  (``spawners/networks.py``), never the host's: the hub's API listens on the platform network's gateway address
  (``settings.container_host``), the proxy's REST API and the platform service stay on 127.0.0.1, out of every
  container's reach; servers reach the platform service's route through the proxy's public port, which also
  listens on that address (``server_service_url``). Containers are removed when they stop; each user's home is the
  named volume ``polartep-home-{username}``; images are never pulled (no registry: ``images/build.sh`` builds them
  here).
* The hub's login page links to the platform service's sign-up page while sign-up is open (``signup``).
* With ``subdomain_host`` on, every user's server has an origin of its own and the hub and services stay on the
  public URL's host (``user_origins.py``).
* Dask Gateway runs as the managed service ``dask-gateway`` (``gateway/config.py``); users' tokens may reach it
  (``access:services!service=dask-gateway``) and every user server gets its addresses, so ``Gateway()`` needs no
  arguments.
* A user server's own token may reach the platform service as its user (for the JupyterLab extension, which gets
  the service's address as ``POLARTEP_SERVICE_URL``); it never holds the hub's token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from polartep_hub.auth.oidc import configure_oidc
from polartep_hub.catalogue import load_catalogue
from polartep_hub.gateway.config import (
    GATEWAY_PREFIX,
    GATEWAY_SERVICE_NAME,
    gateway_db_url,
    gateway_service_definition,
    user_environment,
)
from polartep_hub.gateway.scopes import GATEWAY_ADMIN_SCOPE
from polartep_hub.parent_death import guarded_command
from polartep_hub.platform_client import HUB_CLIENT_SERVICE_NAME, HUB_SCOPE, SERVICE_NAME, SERVICE_PREFIX
from polartep_hub.platform_files import environment_problem, secure_state_dir
from polartep_hub.settings import PlatformSettings
from polartep_hub.spawners.dashboard_servers import named_server_limit
from polartep_hub.spawners.home_volume import HOME_VOLUME_TEMPLATE
from polartep_hub.spawners.single_user import local_mode_refusal
from polartep_hub.usage.hub_home import usage_handler
from polartep_hub.user_origins import configure_user_origins


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
            # Passwords and mail (service/password_reset.py, service/mail_outbox.py).
            "POLARTEP_AUTH": settings.auth,
            "POLARTEP_PASSWORD_RESET_MINUTES": str(settings.password_reset_minutes),
            "POLARTEP_PASSWORD_RESET_PER_HOUR": str(settings.password_reset_per_hour),
            "POLARTEP_SMTP_HOST": settings.smtp_host,
            "POLARTEP_SMTP_PORT": str(settings.smtp_port or ""),
            "POLARTEP_SMTP_SECURITY": settings.smtp_security,
            "POLARTEP_SMTP_USER": settings.smtp_user,
            "POLARTEP_SMTP_PASSWORD_FILE": settings.smtp_password_file,
            "POLARTEP_MAIL_FROM": settings.mail_from,
            "POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS": str(settings.login_attempts_per_address),
            "POLARTEP_LOGIN_MAX_CONCURRENT_HASHES": str(settings.login_max_concurrent_hashes),
            # Cookies are Secure when the public URL is https; forwarded headers are believed only from the proxy.
            "POLARTEP_PUBLIC_URL": settings.public_url,
            "POLARTEP_PROXY_PID_FILE": str(settings.proxy_pid_path),
            # The identity provider's group prefix is reserved for its groups, whatever the auth mode.
            "POLARTEP_OIDC_GROUP_PREFIX": settings.oidc_group_prefix,
            # The gateway meter (accounting/gateway_meter.py) reads the gateway's database into the usage ledger.
            "POLARTEP_GATEWAY_DB_URL": gateway_db_url(settings),
            "POLARTEP_GATEWAY_METER_INTERVAL": str(settings.gateway_meter_interval),
            # Quota decisions (usage/quota.py): what is left must cover what runs plus the request this long.
            "POLARTEP_QUOTA_HORIZON_MINUTES": str(settings.quota_horizon_minutes),
            # Storage (usage/storage.py): how often homes are sampled, and the class they count in.
            "POLARTEP_STORAGE_SAMPLE_INTERVAL": str(settings.storage_sample_interval),
            "POLARTEP_HOME_STORAGE_CLASS": settings.home_storage_class,
            # Single-user local mode (spawners/single_user.py): no account but the administrator's is created.
            "POLARTEP_SINGLE_USER": "1" if settings.mode == "local" and not settings.isolates_users else "0",
            # Erasure stops the user's clusters through the gateway's platform routes (gateway/admin_api.py) and
            # checks that the home is gone (service/homes.py).
            "POLARTEP_GATEWAY_API_URL": f"http://127.0.0.1:{settings.gateway_api_port}",
            "POLARTEP_MODE": settings.mode,
            "POLARTEP_HOMES_ROOT": settings.homes_dir,
            # Local homes are <homes root>/<system user name> with system users, <homes root>/<name> without.
            "POLARTEP_HOME_FOLDER_PREFIX": (
                settings.system_user_prefix if settings.mode == "local" and settings.isolates_users else ""
            ),
            # Processor runs (processors/execution.py): the notebook store, and the gateway as the service reaches it
            # (its HTTP proxy on loopback, schedulers through its TLS proxy) with each run's short-lived user token.
            "POLARTEP_PROCESSORS_DIR": settings.processors_dir,
            "POLARTEP_PROCESSOR_GATEWAY_URL": f"http://{settings.container_host}:{settings.gateway_port}{GATEWAY_PREFIX}",
            "POLARTEP_PROCESSOR_GATEWAY_PROXY": f"gateway://{settings.container_host}:{settings.gateway_tcp_port}",
            "POLARTEP_PROCESSOR_RUN_WARM_SECONDS": str(settings.processor_run_warm_seconds),
            # Datasets (data/storage.py): the root of each storage class; with system users, the prefix of the
            # datasets' system groups.
            "POLARTEP_DATASETS_DIR": settings.datasets_dir,
            "POLARTEP_DATASET_ROOTS": settings.dataset_roots,
            # The object class on an S3-compatible store (data/object_store.py). The key pair goes to the service
            # only (a file it reads, or the two variables passed on from the hub's environment); servers get
            # presigned URLs.
            "POLARTEP_OBJECT_STORE_ENDPOINT": settings.object_store_endpoint,
            "POLARTEP_OBJECT_STORE_PUBLIC_ENDPOINT": settings.object_store_public_endpoint,
            "POLARTEP_OBJECT_STORE_BUCKET": settings.object_store_bucket,
            "POLARTEP_OBJECT_STORE_REGION": settings.object_store_region,
            "POLARTEP_OBJECT_STORE_CREDENTIALS_FILE": settings.object_store_credentials_file,
            "POLARTEP_OBJECT_STORE_URL_SECONDS": str(settings.object_store_url_seconds),
            **{
                name: os.environ[name]
                for name in ("POLARTEP_OBJECT_STORE_ACCESS_KEY_ID", "POLARTEP_OBJECT_STORE_SECRET_ACCESS_KEY")
                if settings.object_store_endpoint and os.environ.get(name)
            },
            # Federated STAC search (data/federation.py).
            "POLARTEP_STAC_PEERS": settings.stac_peers,
            "POLARTEP_STAC_PEER_TIMEOUT": str(settings.stac_peer_timeout),
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


def server_service_url(settings: PlatformSettings) -> str:
    """The platform service's route as a user server reaches it (``POLARTEP_SERVICE_URL``): through the proxy.

    Local mode: the public URL. Docker and Swarm modes: the proxy's public port on the platform network's gateway
    address (``proxy_process.also_listen``), since a container's loopback is its own and the public URL's host is
    often a loopback name; never the service's own port, which stays on the host's 127.0.0.1.
    """
    if settings.mode not in ("docker", "swarm"):
        return settings.public_url + SERVICE_PREFIX
    return f"http://{settings.container_host}:{settings.public_port}{SERVICE_PREFIX}"


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
    c.DockerProfileSpawner.home_volume_template = HOME_VOLUME_TEMPLATE
    # A container that died (e.g. killed for memory) is noticed within this many seconds.
    c.Spawner.poll_interval = 10
    if settings.user_subdomain_host:
        # The proxy routes by host: a request for the gateway address (the extension's, server_service_url) needs a
        # route of its own to the platform service; nothing else is routed for that host (the hub answers).
        c.ConfigurableHTTPProxy.extra_routes = {
            f"{settings.container_host}{SERVICE_PREFIX}": settings.service_url
        }


HUB_TEMPLATES_DIR = Path(__file__).with_name("templates")


def configure_signup_link(c, settings: PlatformSettings) -> None:
    """A "Sign up" link under the hub's login form (``templates/login.html``), while sign-up is open."""
    c.JupyterHub.template_paths = [str(HUB_TEMPLATES_DIR), *c.JupyterHub.get("template_paths", [])]
    if settings.signup:
        c.JupyterHub.template_vars["polartep_signup_url"] = f"/services/{SERVICE_NAME}/signup"
    if settings.auth == "platform":
        c.JupyterHub.template_vars["polartep_forgot_url"] = f"/services/{SERVICE_NAME}/password/forgot"


def existing_account_names(settings: PlatformSettings) -> set[str]:
    """Names of the platform's accounts and the hub's users, read from their databases (empty before first start)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    names: set[str] = set()
    for url, query in (
        (settings.service_db_url, "SELECT name FROM accounts"),
        (settings.hub_db_url, "SELECT name FROM users"),
    ):
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            continue  # not created yet; do not create an empty file here
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                names.update(row[0] for row in connection.execute(text(query)))
        except SQLAlchemyError:
            continue  # no such table yet: the service's migrations have not run
        finally:
            engine.dispose()
    return names


def configure_local_isolation(c, settings: PlatformSettings) -> None:
    """Local mode: system users per platform user (as root), or single-user; refuses to start when unsafe."""
    c.LocalProfileSpawner.homes_root = settings.homes_dir
    c.LocalProfileSpawner.system_user_prefix = settings.system_user_prefix
    c.LocalProfileSpawner.single_user_name = settings.admin_user
    c.LocalProfileSpawner.isolate = settings.isolates_users
    if settings.isolates_users:
        problem = environment_problem()
        if problem:
            raise SystemExit(f"polartep: cannot start local mode with system users: {problem}")
        return
    refusal = local_mode_refusal(
        signup=settings.signup and settings.auth == "platform",
        account_names=existing_account_names(settings),
        admin_user=settings.admin_user,
    )
    if refusal:
        raise SystemExit(f"polartep: local mode is single-user here and cannot start: {refusal}")


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
    # What the hub and its services create (databases, logs, secrets) is the platform's alone (platform_files.py).
    os.umask(0o077)
    state = settings.state_path
    secure_state_dir(state)

    c.JupyterHub.bind_url = settings.public_url
    c.JupyterHub.hub_bind_url = settings.hub_url
    c.JupyterHub.db_url = settings.hub_db_url
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.log_level = settings.log_level
    configure_user_origins(c, settings)  # per-user origins (subdomain_host), when on

    # Survive hub restarts: servers keep running and the proxy is not ours to start or stop.
    c.JupyterHub.cleanup_servers = False
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = settings.proxy_api_url
    c.ConfigurableHTTPProxy.auth_token = settings.proxy_auth_token

    c.JupyterHub.allow_named_servers = True
    # Development servers (four by default); dashboards' servers (dash-<id>) are not counted
    # (spawners/dashboard_servers.py).
    c.JupyterHub.named_server_limit_per_user = named_server_limit(settings.named_servers_per_user)
    c.JupyterHub.authenticate_prometheus = True

    c.JupyterHub.authenticator_class = "polartep_hub.auth.platform_password.PlatformPasswordAuthenticator"
    c.PlatformPasswordAuthenticator.platform_service_url = settings.service_url
    c.PlatformPasswordAuthenticator.platform_service_token = settings.hub_service_token
    c.PlatformPasswordAuthenticator.proxy_pid_file = str(settings.proxy_pid_path)
    c.Authenticator.admin_users = {settings.admin_user}
    if settings.auth == "oidc":
        configure_oidc(
            c, settings
        )  # discovers the provider's endpoints now: an unusable issuer stops start-up

    c.JupyterHub.spawner_class = spawner_class_for(settings.mode)
    c.Spawner.catalogue_path = str(catalogue.source)
    c.Spawner.platform_service_url = settings.service_url
    c.Spawner.platform_service_token = settings.hub_service_token
    # This month's CPU-hours on the home page (hub/usage/hub_home.py, hub/templates/home.html).
    c.JupyterHub.extra_handlers = [usage_handler(settings.service_url, settings.hub_service_token)]
    c.Spawner.default_url = "/lab"
    c.Spawner.environment = {
        **user_environment(settings),
        # The JupyterLab extension (extensions/polartep_lab) asks the platform service here, with the server's token.
        "POLARTEP_SERVICE_URL": server_service_url(settings),
    }
    # The server's own token ($JUPYTERHUB_API_TOKEN, which dask-gateway's client sends) keeps JupyterHub's default
    # `server` role scopes and may also reach the gateway and the platform service (as the user, for the JupyterLab
    # extension's panel; the service decides what the user may see or do).
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={GATEWAY_SERVICE_NAME}",
        f"access:services!service={SERVICE_NAME}",
    ]
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = settings.spawn_start_timeout
    c.LocalProfileSpawner.enforce_memory_limit = settings.local_memory_limit
    c.LocalProfileSpawner.use_launcher = settings.local_launcher
    if settings.mode == "local":
        configure_local_isolation(c, settings)
    if settings.mode in ("docker", "swarm"):
        configure_docker_spawner(c, settings)

    c.JupyterHub.custom_scopes = {
        HUB_SCOPE: {
            "description": "Act for the hub towards the platform service (password checks, entitlements)."
        },
        GATEWAY_ADMIN_SCOPE: {
            "description": "List and stop any user's Dask clusters on the gateway (erasure)."
        },
    }
    c.JupyterHub.services = [
        platform_service_definition(settings),
        {"name": HUB_CLIENT_SERVICE_NAME, "api_token": settings.hub_service_token},
        gateway_service_definition(settings),
    ]
    if settings.idle_timeout:
        c.JupyterHub.services.append(idle_culler_service_definition(settings))
    for service in c.JupyterHub.services:
        if "command" in service:
            service["command"] = guarded_command(service["command"])
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
                # Erasure stops every cluster of the user first (gateway/admin_api.py).
                GATEWAY_ADMIN_SCOPE,
                # Processor runs: a short-lived token of the invoker, scoped to the gateway alone, made for each
                # run and revoked at its end (processors/execution.py); `tokens` is the only scope that can do that.
                "tokens",
                # Dashboards (dashboards/api.py): the owner's shares of a dashboard server are granted, listed and
                # revoked by the service; JupyterHub lets only a holder of the shared scopes grant them, hence
                # access:servers (start:servers is part of admin:servers).
                "shares",
                "read:shares",
                "access:servers",
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
