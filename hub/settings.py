"""Typed platform settings, read from ``POLARTEP_*`` environment variables with defaults.

Every setting is a traitlet with ``help=`` and ``config=True`` (so it can also be set in ``jupyterhub_config.py`` as
``c.PlatformSettings.<name>``); environment defaults are read only inside ``@default`` methods, as JupyterHub does.
Secrets that are not given are generated once and kept in files under the state directory (mode 0600), so restarts
keep the same proxy token, cookie secret and internal service token.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from traitlets import Bool, Enum, Integer, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .catalogue import DEFAULT_CATALOGUE_PATH
from .spawners.single_user import isolates_users
from .spawners.system_users import check_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, fallback: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else fallback


def _env_int(name: str, fallback: int) -> int:
    value = _env(name, str(fallback))
    try:
        return int(value)
    except ValueError:
        raise TraitError(f"{name} must be a whole number, got {value!r}") from None


def _public_url_problem(value: str) -> str | None:
    url = urlparse(value)
    if url.scheme not in ("http", "https") or not url.hostname or not url.port:
        return f"public_url must look like http://HOST:PORT, got {value!r}"
    return None


def _is_ip_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return False
    return True


def _subdomain_host_problem(value: str, public_url: str) -> str | None:
    if value.strip().lower() in ("on", "off", ""):
        if value.strip().lower() == "on" and _is_ip_address(urlparse(public_url).hostname):
            return (
                f"subdomain_host=on needs a public URL whose host is a name, got {public_url!r}: use e.g. "
                "http://localhost:PORT on one machine, or a DNS name with a wildcard record in production"
            )
        return None
    url, public = urlparse(value.rstrip("/")), urlparse(public_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.path:
        return f"subdomain_host must be 'on', 'off' or a URL like http://HOST:PORT, got {value!r}"
    if (url.scheme, url.hostname, url.port) != (public.scheme, public.hostname, public.port):
        return (
            f"subdomain_host {value!r} must have the public URL's scheme, host and port ({public_url!r}): "
            "JupyterHub serves the hub on that host and users on its subdomains"
        )
    if _is_ip_address(url.hostname):
        return f"subdomain_host needs a host name, not an IP address: {value!r}"
    return None


class PlatformSettings(Configurable):
    """Everything an operator sets to run Polar TEP. See the README's configuration table."""

    mode = Enum(
        ["local", "docker", "swarm"],
        help="How user servers run: 'local' (processes on this machine, the embedded default), 'docker' "
        "(containers on this machine's engine) or 'swarm' (Docker Swarm services). "
        "Env: POLARTEP_MODE.",
        config=True,
    )

    @default("mode")
    def _mode_default(self) -> str:
        return _env("POLARTEP_MODE", "local")

    state_dir = Unicode(
        help="Folder for databases, secrets, logs and (local mode) users' homes. Env: POLARTEP_STATE_DIR.",
        config=True,
    )

    @default("state_dir")
    def _state_dir_default(self) -> str:
        return str(Path(_env("POLARTEP_STATE_DIR", str(REPO_ROOT / "state"))).resolve())

    public_url = Unicode(
        help="Where users reach the platform (the proxy's public address); the hub and the platform service are "
        "served on its host. Default: http://127.0.0.1:8000, in docker mode http://localhost:8000 (per-user origins, "
        "see subdomain_host, need a host name). Env: POLARTEP_PUBLIC_URL.",
        config=True,
    )

    @default("public_url")
    def _public_url_default(self) -> str:
        # Docker mode serves each user's server on its own origin (subdomain_host), which needs a host *name*:
        # localhost, whose subdomains browsers resolve to loopback themselves.
        fallback = "http://localhost:8000" if self.mode == "docker" else "http://127.0.0.1:8000"
        return _env("POLARTEP_PUBLIC_URL", fallback)

    @validate("public_url")
    def _check_public_url(self, proposal):
        problem = _public_url_problem(proposal["value"])
        if problem:
            raise TraitError(problem)
        return proposal["value"].rstrip("/")

    subdomain_host = Unicode(
        help="Serve every user's server on an origin of its own, http(s)://<user>.<host>:<port>/user/<user>/ "
        "(JupyterHub's subdomain_host), so that no page from a user's server shares an origin with the hub or the "
        "platform service (which stay on the public URL's host). 'on': on the public URL's host; 'off': user "
        "servers under the public URL (only for a platform whose users all trust each other); or the URL itself, "
        "which must equal the public URL's scheme, host and port. The host must be a name, not an IP address; "
        "production needs wildcard DNS (*.<host>) and a wildcard TLS certificate. Default: 'on' in docker mode "
        "when the public URL's host is a name, else 'off'. Env: POLARTEP_SUBDOMAIN_HOST.",
        config=True,
    )

    @default("subdomain_host")
    def _subdomain_host_default(self) -> str:
        fallback = (
            "on"
            if self.mode == "docker" and not _is_ip_address(urlparse(self.public_url).hostname)
            else "off"
        )
        return _env("POLARTEP_SUBDOMAIN_HOST", fallback)

    proxy_api_port = Integer(
        help="Port of the proxy's REST API (127.0.0.1). Env: POLARTEP_PROXY_API_PORT.", config=True
    )

    @default("proxy_api_port")
    def _proxy_api_port_default(self) -> int:
        return _env_int("POLARTEP_PROXY_API_PORT", 8001)

    hub_port = Integer(
        help="Port the hub listens on (127.0.0.1; in Docker and Swarm modes the platform network's gateway address "
        "instead, see docker_network_prefix). Env: POLARTEP_HUB_PORT.",
        config=True,
    )

    @default("hub_port")
    def _hub_port_default(self) -> int:
        return _env_int("POLARTEP_HUB_PORT", 8081)

    service_port = Integer(
        help="Port of the platform service (127.0.0.1). Env: POLARTEP_SERVICE_PORT.", config=True
    )

    @default("service_port")
    def _service_port_default(self) -> int:
        return _env_int("POLARTEP_SERVICE_PORT", 8090)

    hub_db_url = Unicode(help="JupyterHub's database URL. Env: POLARTEP_HUB_DB_URL.", config=True)

    @default("hub_db_url")
    def _hub_db_url_default(self) -> str:
        return _env("POLARTEP_HUB_DB_URL", f"sqlite:///{self.state_path / 'jupyterhub.sqlite'}")

    service_db_url = Unicode(
        help="The platform service's database URL (SQLite file or postgresql+psycopg://...). "
        "Env: POLARTEP_SERVICE_DB_URL.",
        config=True,
    )

    @default("service_db_url")
    def _service_db_url_default(self) -> str:
        return _env("POLARTEP_SERVICE_DB_URL", f"sqlite:///{self.state_path / 'platform.sqlite'}")

    catalogue_path = Unicode(help="The catalogue YAML file. Env: POLARTEP_CATALOGUE.", config=True)

    @default("catalogue_path")
    def _catalogue_path_default(self) -> str:
        return _env("POLARTEP_CATALOGUE", str(DEFAULT_CATALOGUE_PATH))

    admin_user = Unicode(help="The first administrator's username. Env: POLARTEP_ADMIN_USER.", config=True)

    @default("admin_user")
    def _admin_user_default(self) -> str:
        return _env("POLARTEP_ADMIN_USER", "admin")

    admin_password = Unicode(
        help="The first administrator's password; generated into STATE_DIR/admin-password when not given. "
        "Env: POLARTEP_ADMIN_PASSWORD.",
        config=True,
    )

    @default("admin_password")
    def _admin_password_default(self) -> str:
        return _env("POLARTEP_ADMIN_PASSWORD", "") or self.secret("admin-password", nbytes=12)

    default_plan = Unicode(help="The plan new accounts start on. Env: POLARTEP_DEFAULT_PLAN.", config=True)

    @default("default_plan")
    def _default_plan_default(self) -> str:
        return _env("POLARTEP_DEFAULT_PLAN", "trial")

    legal_dir = Unicode(
        help="Folder of the versioned legal documents, <dir>/terms/<version>.md and <dir>/privacy/<version>.md; the "
        "version that sorts last is current, and publishing a new one makes every user accept it again before "
        "their next spawn. Empty: the shipped documents. Env: POLARTEP_LEGAL_DIR.",
        config=True,
    )

    @default("legal_dir")
    def _legal_dir_default(self) -> str:
        return _env("POLARTEP_LEGAL_DIR", "")

    # Login -------------------------------------------------------------------------------------------------------

    auth = Enum(
        ["platform", "oidc"],
        help="How users log in: 'platform' (the embedded username/password login checked by the platform service, "
        "the default) or 'oidc' (an OpenID Connect identity provider such as Keycloak, through oauthenticator's "
        "GenericOAuthenticator). Env: POLARTEP_AUTH.",
        config=True,
    )

    @default("auth")
    def _auth_default(self) -> str:
        return _env("POLARTEP_AUTH", "platform")

    oidc_issuer = Unicode(
        help="OIDC: the identity provider's issuer URL; its endpoints are discovered from "
        "<issuer>/.well-known/openid-configuration when the hub starts, and the hub refuses to start if that "
        "fails. Env: POLARTEP_OIDC_ISSUER.",
        config=True,
    )

    @default("oidc_issuer")
    def _oidc_issuer_default(self) -> str:
        return _env("POLARTEP_OIDC_ISSUER", "").rstrip("/")

    oidc_client_id = Unicode(
        help="OIDC: the client id registered for the platform at the identity provider. "
        "Env: POLARTEP_OIDC_CLIENT_ID.",
        config=True,
    )

    @default("oidc_client_id")
    def _oidc_client_id_default(self) -> str:
        return _env("POLARTEP_OIDC_CLIENT_ID", "")

    oidc_client_secret = Unicode(
        help="OIDC: the client secret (prefer oidc_client_secret_file). Env: POLARTEP_OIDC_CLIENT_SECRET.",
        config=True,
    )

    @default("oidc_client_secret")
    def _oidc_client_secret_default(self) -> str:
        return _env("POLARTEP_OIDC_CLIENT_SECRET", "")

    oidc_client_secret_file = Unicode(
        help="OIDC: a file holding the client secret (read at start-up; used when oidc_client_secret is empty). "
        "Env: POLARTEP_OIDC_CLIENT_SECRET_FILE.",
        config=True,
    )

    @default("oidc_client_secret_file")
    def _oidc_client_secret_file_default(self) -> str:
        return _env("POLARTEP_OIDC_CLIENT_SECRET_FILE", "")

    oidc_scopes = Unicode(
        help="OIDC: the scopes to request, separated by spaces. Env: POLARTEP_OIDC_SCOPES.", config=True
    )

    @default("oidc_scopes")
    def _oidc_scopes_default(self) -> str:
        return _env("POLARTEP_OIDC_SCOPES", "openid profile email groups")

    oidc_username_claim = Unicode(
        help="OIDC: the claim that becomes the username (case-folded and NFKC-normalised; a login whose value is "
        "no valid account name is refused). Env: POLARTEP_OIDC_USERNAME_CLAIM.",
        config=True,
    )

    @default("oidc_username_claim")
    def _oidc_username_claim_default(self) -> str:
        return _env("POLARTEP_OIDC_USERNAME_CLAIM", "preferred_username")

    oidc_groups_claim = Unicode(
        help="OIDC: the claim listing the user's groups at the identity provider. Env: POLARTEP_OIDC_GROUPS_CLAIM.",
        config=True,
    )

    @default("oidc_groups_claim")
    def _oidc_groups_claim_default(self) -> str:
        return _env("POLARTEP_OIDC_GROUPS_CLAIM", "groups")

    oidc_allowed_groups = Unicode(
        help="OIDC: if set, only members of one of these identity-provider groups (comma-separated, as the "
        "provider names them) may log in. Env: POLARTEP_OIDC_ALLOWED_GROUPS.",
        config=True,
    )

    @default("oidc_allowed_groups")
    def _oidc_allowed_groups_default(self) -> str:
        return _env("POLARTEP_OIDC_ALLOWED_GROUPS", "")

    oidc_admin_groups = Unicode(
        help="OIDC: members of these identity-provider groups (comma-separated) are JupyterHub admins; when set, "
        "admin status follows the provider at every login. Env: POLARTEP_OIDC_ADMIN_GROUPS.",
        config=True,
    )

    @default("oidc_admin_groups")
    def _oidc_admin_groups_default(self) -> str:
        return _env("POLARTEP_OIDC_ADMIN_GROUPS", "")

    oidc_group_prefix = Unicode(
        help="OIDC: identity-provider groups become JupyterHub groups named <prefix><group>, so that a provider "
        "can never put a user into a platform project's group. Env: POLARTEP_OIDC_GROUP_PREFIX.",
        config=True,
    )

    @default("oidc_group_prefix")
    def _oidc_group_prefix_default(self) -> str:
        return _env("POLARTEP_OIDC_GROUP_PREFIX", "oidc-")

    signup = Bool(
        help="Open sign-up for the embedded login: anyone may register at /services/platform/signup (accepting the "
        "terms and privacy statement); an administrator approves each account before it can log in. "
        "Always off with auth=oidc (the identity provider registers people). Env: POLARTEP_SIGNUP (1/0).",
        config=True,
    )

    @default("signup")
    def _signup_default(self) -> bool:
        return _env("POLARTEP_SIGNUP", "1").strip().lower() not in ("0", "false", "no", "off")

    signup_per_hour = Integer(
        help="Sign-ups accepted per client address in an hour's window (counted in the platform database, in the "
        "transaction that stores the account); 0: no limit. Env: POLARTEP_SIGNUP_PER_HOUR.",
        config=True,
    )

    @default("signup_per_hour")
    def _signup_per_hour_default(self) -> int:
        return _env_int("POLARTEP_SIGNUP_PER_HOUR", 5)

    signup_max_pending = Integer(
        help="No more sign-ups are taken while this many accounts await approval (bounds what a flood of sign-ups "
        "can store); 0: no bound. Env: POLARTEP_SIGNUP_MAX_PENDING.",
        config=True,
    )

    @default("signup_max_pending")
    def _signup_max_pending_default(self) -> int:
        return _env_int("POLARTEP_SIGNUP_MAX_PENDING", 100)

    password_min_length = Integer(
        help="Shortest password accepted at sign-up (which also refuses the 10,000 most common passwords and "
        "passwords containing the user name). Env: POLARTEP_PASSWORD_MIN_LENGTH.",
        config=True,
    )

    @default("password_min_length")
    def _password_min_length_default(self) -> int:
        return _env_int("POLARTEP_PASSWORD_MIN_LENGTH", 10)

    login_attempts = Integer(
        help="Login throttle: failed logins allowed for one user name from one client address in a window of "
        "login_lockout_seconds; further attempts of that pair wait for the window's end (other addresses are not "
        "affected, so nobody can lock a user out); 0 turns this bound off. Env: POLARTEP_LOGIN_ATTEMPTS.",
        config=True,
    )

    @default("login_attempts")
    def _login_attempts_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_ATTEMPTS", 5)

    login_lockout_seconds = Integer(
        help="Login throttle: the window (seconds, from the first failure) in which login_attempts and "
        "login_attempts_per_address count failures. Env: POLARTEP_LOGIN_LOCKOUT_SECONDS.",
        config=True,
    )

    @default("login_lockout_seconds")
    def _login_lockout_seconds_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_LOCKOUT_SECONDS", 600)

    password_reset_minutes = Integer(
        help='How long a password-reset link ("forgot password" or an administrator\'s forced reset) works; each '
        "link works once. Env: POLARTEP_PASSWORD_RESET_MINUTES.",
        config=True,
    )

    @default("password_reset_minutes")
    def _password_reset_minutes_default(self) -> int:
        return _env_int("POLARTEP_PASSWORD_RESET_MINUTES", 30)

    password_reset_per_hour = Integer(
        help='"Forgot password" requests accepted per client address per hour (counted in the platform '
        "service's database); each account is also mailed at most 3 links an hour. 0: no limit per address. "
        "Env: POLARTEP_PASSWORD_RESET_PER_HOUR.",
        config=True,
    )

    @default("password_reset_per_hour")
    def _password_reset_per_hour_default(self) -> int:
        return _env_int("POLARTEP_PASSWORD_RESET_PER_HOUR", 10)

    # Mail (the platform service's outbox: password-reset links, later quota notifications) -----------------------

    smtp_host = Unicode(
        help="SMTP server the platform sends e-mail through. Empty: no mail is sent; messages (such as "
        "password-reset links) stay in the service's outbox table and are logged without their content, and "
        "`polartep check` warns. Env: POLARTEP_SMTP_HOST.",
        config=True,
    )

    @default("smtp_host")
    def _smtp_host_default(self) -> str:
        return _env("POLARTEP_SMTP_HOST", "").strip()

    smtp_security = Enum(
        ["starttls", "ssl", "none"],
        help="How to secure the SMTP connection: 'starttls' (upgrade a plain connection, port 587 by default), "
        "'ssl' (TLS from the start, port 465) or 'none' (plain text, port 25: only for a relay on this machine). "
        "Env: POLARTEP_SMTP_SECURITY.",
        config=True,
    )

    @default("smtp_security")
    def _smtp_security_default(self) -> str:
        return _env("POLARTEP_SMTP_SECURITY", "starttls").strip().lower()

    smtp_port = Integer(
        help="SMTP port; 0: the usual port for smtp_security (587, 465 or 25). Env: POLARTEP_SMTP_PORT.",
        config=True,
    )

    @default("smtp_port")
    def _smtp_port_default(self) -> int:
        return _env_int("POLARTEP_SMTP_PORT", 0)

    smtp_user = Unicode(
        help="User name for SMTP authentication; empty: no authentication. Env: POLARTEP_SMTP_USER.",
        config=True,
    )

    @default("smtp_user")
    def _smtp_user_default(self) -> str:
        return _env("POLARTEP_SMTP_USER", "").strip()

    smtp_password_file = Unicode(
        help="File holding the SMTP password (read by the platform service at start-up; never put the password "
        "itself in the environment). Env: POLARTEP_SMTP_PASSWORD_FILE.",
        config=True,
    )

    @default("smtp_password_file")
    def _smtp_password_file_default(self) -> str:
        return _env("POLARTEP_SMTP_PASSWORD_FILE", "").strip()

    mail_from = Unicode(
        help="The From address of the platform's e-mail. Env: POLARTEP_MAIL_FROM.", config=True
    )

    @default("mail_from")
    def _mail_from_default(self) -> str:
        return _env("POLARTEP_MAIL_FROM", "polartep@localhost").strip()

    login_attempts_per_address = Integer(
        help="Login throttle: failed logins allowed from one client address across all user names in a window of "
        "login_lockout_seconds; then that address waits for the window's end; 0 turns this bound off. "
        "Env: POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS.",
        config=True,
    )

    @default("login_attempts_per_address")
    def _login_attempts_per_address_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS", 20)

    login_max_concurrent_hashes = Integer(
        help="Password hashes (argon2, 64 MiB each) the platform service runs at once; a login or sign-up that "
        "finds every slot taken is refused at once with 503 and Retry-After. "
        "Env: POLARTEP_LOGIN_MAX_CONCURRENT_HASHES.",
        config=True,
    )

    @default("login_max_concurrent_hashes")
    def _login_max_concurrent_hashes_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_MAX_CONCURRENT_HASHES", 4)

    local_memory_limit = Bool(
        help="Local mode: enforce the profile's memory as an address-space limit (RLIMIT_AS) on the user's server "
        "and its kernels. Env: POLARTEP_LOCAL_MEMORY_LIMIT (1/0).",
        config=True,
    )

    @default("local_memory_limit")
    def _local_memory_limit_default(self) -> bool:
        return _env("POLARTEP_LOCAL_MEMORY_LIMIT", "1") not in ("0", "false", "no")

    local_isolation = Enum(
        ["auto", "system-users", "single-user"],
        help="Local mode: 'system-users' runs each user's server, kernels and Dask processes as their own system "
        "user (<system_user_prefix><name>, created on first spawn; needs root); 'single-user' runs them as the "
        "platform's own user, so only admin_user may have an account or a server and the hub refuses to start with "
        "sign-up open or other accounts (what a start without root gets; tests set it to simulate that); 'auto' "
        "(default): system-users when started as root, single-user otherwise. Env: POLARTEP_LOCAL_ISOLATION.",
        config=True,
    )

    @default("local_isolation")
    def _local_isolation_default(self) -> str:
        return _env("POLARTEP_LOCAL_ISOLATION", "auto")

    system_user_prefix = Unicode(
        help="Local mode with system users: platform user NAME runs as the system user <prefix>NAME (Linux allows "
        "32 characters: a longer name is cut and ends in '-' and 8 hex digits of its hash). Platforms sharing a "
        "machine need different prefixes. Env: POLARTEP_SYSTEM_USER_PREFIX.",
        config=True,
    )

    @default("system_user_prefix")
    def _system_user_prefix_default(self) -> str:
        return _env("POLARTEP_SYSTEM_USER_PREFIX", "jupyter-")

    homes_dir = Unicode(
        help="Local mode: the folder of users' homes, <homes_dir>/<system user> (mode 0700, the user's own). It "
        "must lie outside state_dir (which users cannot enter). Default: /home with system users, "
        "STATE_DIR/users in single-user mode. Env: POLARTEP_HOMES_DIR.",
        config=True,
    )

    @default("homes_dir")
    def _homes_dir_default(self) -> str:
        fallback = "/home" if self.isolates_users else str(self.state_path / "users")
        return str(Path(_env("POLARTEP_HOMES_DIR", fallback)).resolve())

    dask_clusters_dir = Unicode(
        help="Local mode: the folder of the Dask clusters' working directories (certificates, logs), one per "
        "cluster, mode 0700 and owned by the cluster's user. Outside state_dir with system users. Default: "
        "HOMES_DIR/.dask-clusters with system users, STATE_DIR/dask-clusters in single-user mode. "
        "Env: POLARTEP_DASK_CLUSTERS_DIR.",
        config=True,
    )

    @default("dask_clusters_dir")
    def _dask_clusters_dir_default(self) -> str:
        fallback = (
            str(Path(self.homes_dir) / ".dask-clusters")
            if self.isolates_users
            else str(self.state_path / "dask-clusters")
        )
        return str(Path(_env("POLARTEP_DASK_CLUSTERS_DIR", fallback)).resolve())

    idle_timeout = Integer(
        help="Stop a user's server after this many seconds without activity (jupyterhub-idle-culler, a "
        "hub-managed service); 0 turns culling off. Env: POLARTEP_IDLE_TIMEOUT.",
        config=True,
    )

    @default("idle_timeout")
    def _idle_timeout_default(self) -> int:
        return _env_int("POLARTEP_IDLE_TIMEOUT", 3600)

    log_level = Unicode(help="Log level of the hub and services. Env: POLARTEP_LOG_LEVEL.", config=True)

    @default("log_level")
    def _log_level_default(self) -> str:
        return _env("POLARTEP_LOG_LEVEL", "INFO").upper()

    gateway_port = Integer(
        help="Port of the Dask Gateway's HTTP proxy (127.0.0.1; Docker/Swarm: the platform network's gateway), which the hub's proxy serves at "
        "/services/dask-gateway/. Env: POLARTEP_GATEWAY_PORT.",
        config=True,
    )

    @default("gateway_port")
    def _gateway_port_default(self) -> int:
        return _env_int("POLARTEP_GATEWAY_PORT", 8092)

    gateway_tcp_port = Integer(
        help="Port of the Dask Gateway's TLS proxy for Dask clients (127.0.0.1; Docker/Swarm: the platform network's "
        "gateway). Env: POLARTEP_GATEWAY_TCP_PORT.",
        config=True,
    )

    @default("gateway_tcp_port")
    def _gateway_tcp_port_default(self) -> int:
        return _env_int("POLARTEP_GATEWAY_TCP_PORT", 8093)

    gateway_api_port = Integer(
        help="Port of the Dask Gateway's private API, used by schedulers (127.0.0.1). "
        "Env: POLARTEP_GATEWAY_API_PORT.",
        config=True,
    )

    @default("gateway_api_port")
    def _gateway_api_port_default(self) -> int:
        return _env_int("POLARTEP_GATEWAY_API_PORT", 8094)

    dask_idle_timeout = Integer(
        help="Seconds a Dask cluster may sit idle (no client, no tasks) before the gateway stops it; 0 never. "
        "Env: POLARTEP_DASK_IDLE_TIMEOUT.",
        config=True,
    )

    @default("dask_idle_timeout")
    def _dask_idle_timeout_default(self) -> int:
        return _env_int("POLARTEP_DASK_IDLE_TIMEOUT", 1800)

    gateway_meter_interval = Integer(
        help="Seconds between two passes of the platform service's Dask Gateway meter, which copies every "
        "scheduler's and worker's start and stop from the gateway's database into the usage ledger. "
        "Env: POLARTEP_GATEWAY_METER_INTERVAL.",
        config=True,
    )

    @default("gateway_meter_interval")
    def _gateway_meter_interval_default(self) -> int:
        return _env_int("POLARTEP_GATEWAY_METER_INTERVAL", 10)

    docker_network_prefix = Unicode(
        help="Docker and Swarm modes: the platform's Docker networks are named {prefix}-platform (whose gateway "
        "address on this host is where containers reach the hub, the Dask Gateway and the proxy's public port) and "
        "{prefix}-u-{user} (each user's servers and Dask containers; in Swarm mode a swarm-scoped bridge configured "
        "from {prefix}-u-{user}-config). "
        "Env: POLARTEP_DOCKER_NETWORK_PREFIX.",
        config=True,
    )

    @default("docker_network_prefix")
    def _docker_network_prefix_default(self) -> str:
        return _env("POLARTEP_DOCKER_NETWORK_PREFIX", "polartep")

    docker_subnet_pool = Unicode(
        help="Docker and Swarm modes: the IPv4 range each user's network (a /26) is carved from; pick one that no "
        "network of this host or its LAN uses (a /16 serves 1024 users). Env: POLARTEP_DOCKER_SUBNET_POOL.",
        config=True,
    )

    @default("docker_subnet_pool")
    def _docker_subnet_pool_default(self) -> str:
        return _env("POLARTEP_DOCKER_SUBNET_POOL", "10.213.0.0/16")

    def problems(self) -> list[str]:
        """What is wrong with the settings in force (defaults from the environment are not validated on read)."""
        found = []
        problem = _public_url_problem(self.public_url)
        if problem:
            found.append(problem)
        ports = {
            "proxy_api_port": self.proxy_api_port,
            "hub_port": self.hub_port,
            "service_port": self.service_port,
            "gateway_port": self.gateway_port,
            "gateway_tcp_port": self.gateway_tcp_port,
            "gateway_api_port": self.gateway_api_port,
        }
        if not problem:
            ports["public_url port"] = self.public_port
            subdomain_problem = _subdomain_host_problem(self.subdomain_host, self.public_url)
            if subdomain_problem:
                found.append(subdomain_problem)
        for name, port in ports.items():
            if not 0 < port < 65536:
                found.append(f"{name} must be a port number (1-65535), got {port}")
        if self.idle_timeout < 0:
            found.append(f"idle_timeout must be 0 (off) or a number of seconds, got {self.idle_timeout}")
        if self.dask_idle_timeout < 0:
            found.append(f"dask_idle_timeout must be 0 or more seconds, got {self.dask_idle_timeout}")
        if self.auth == "oidc":
            found.extend(self.oidc_problems())
        if self.signup_per_hour < 0 or self.signup_max_pending < 0:
            found.append("signup_per_hour and signup_max_pending must be 0 (no limit) or more")
        if not 1 <= self.password_min_length <= 128:
            found.append(f"password_min_length must be 1-128, got {self.password_min_length}")
        if not 0 <= self.login_attempts <= 1000:
            found.append(f"login_attempts must be 0 (no lock-out) to 1000, got {self.login_attempts}")
        if not 0 <= self.login_attempts_per_address <= 100_000:
            found.append(
                f"login_attempts_per_address must be 0 (no bound) to 100000, got {self.login_attempts_per_address}"
            )
        if not 1 <= self.login_max_concurrent_hashes <= 256:
            found.append(
                f"login_max_concurrent_hashes must be 1 to 256, got {self.login_max_concurrent_hashes}"
            )
        if not 1 <= self.login_lockout_seconds <= 30 * 86400:
            found.append(
                f"login_lockout_seconds must be 1 to 2592000 (30 days), got {self.login_lockout_seconds}"
            )
        if not 1 <= self.gateway_meter_interval <= 3600:
            found.append(
                f"gateway_meter_interval must be 1 to 3600 seconds, got {self.gateway_meter_interval}"
            )
        if not 1 <= self.password_reset_minutes <= 7 * 24 * 60:
            found.append(
                f"password_reset_minutes must be 1 to 10080 (a week), got {self.password_reset_minutes}"
            )
        if self.password_reset_per_hour < 0:
            found.append(
                f"password_reset_per_hour must be 0 (no limit) or more, got {self.password_reset_per_hour}"
            )
        if not 0 <= self.smtp_port < 65536:
            found.append(f"smtp_port must be 0 (the usual port) or a port number, got {self.smtp_port}")
        if self.smtp_password_file and not Path(self.smtp_password_file).is_file():
            found.append(f"smtp_password_file {self.smtp_password_file!r} does not exist")
        if "@" not in self.mail_from:
            found.append(f"mail_from must be an e-mail address, got {self.mail_from[:200]!r}")
        found.extend(self.local_isolation_problems())
        if self.mode in ("docker", "swarm"):
            found.extend(self.docker_network_problems())
        if len(set(ports.values())) != len(ports):
            found.append(f"the ports must differ: {ports}")
        return found

    def warnings(self) -> list[str]:
        """What works but deserves the operator's attention (``polartep check`` prints these without failing)."""
        found = []
        if not self.smtp_host and self.auth == "platform":
            found.append(
                "smtp_host (POLARTEP_SMTP_HOST) is not set: password-reset links are not e-mailed; they stay in the "
                "platform service's outbox (table mail_outbox) and the service logs each one without its content"
            )
        return found

    def local_isolation_problems(self) -> list[str]:
        """What keeps local mode's system users from working (``spawners/system_users.py``)."""
        if self.mode != "local":
            return []
        found = []
        try:
            check_prefix(self.system_user_prefix)
        except ValueError as e:
            found.append(str(e))
        if self.local_isolation == "system-users" and os.geteuid() != 0:
            found.append(
                "local_isolation=system-users needs root (it creates system users): start the platform as root, "
                "or set POLARTEP_LOCAL_ISOLATION=single-user (only the administrator), or use POLARTEP_MODE=docker"
            )
        if self.isolates_users:
            state = self.state_path.resolve()
            for name in ("homes_dir", "dask_clusters_dir"):
                path = Path(getattr(self, name)).resolve()
                if path == state or state in path.parents:
                    found.append(
                        f"{name} {str(path)!r} lies inside state_dir, which users cannot enter (mode 0700): "
                        "choose a folder outside it"
                    )
        return found

    def docker_network_problems(self) -> list[str]:
        """What is wrong with the Docker network settings (asked in Docker and Swarm modes)."""
        found = []
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}", self.docker_network_prefix):
            found.append(
                "docker_network_prefix must be 1-40 letters, digits, '.', '_' or '-', got "
                f"{self.docker_network_prefix[:60]!r}"
            )
        try:
            pool = ipaddress.ip_network(self.docker_subnet_pool)
        except ValueError:
            found.append(
                f"docker_subnet_pool must be an IPv4 network like 10.213.0.0/16, got {self.docker_subnet_pool!r}"
            )
        else:
            if pool.version != 4 or pool.prefixlen > 26:
                found.append(f"docker_subnet_pool must be an IPv4 network of /26 or larger, got {pool}")
        return found

    def oidc_problems(self) -> list[str]:
        """What keeps the OIDC login from working (only asked when ``auth`` is ``oidc``)."""
        found = []
        issuer = urlparse(self.oidc_issuer)
        if issuer.scheme not in ("http", "https") or not issuer.hostname:
            found.append(
                f"oidc_issuer (POLARTEP_OIDC_ISSUER) must be the identity provider's http(s) issuer URL, got "
                f"{self.oidc_issuer[:200]!r}"
            )
        if not self.oidc_client_id:
            found.append("oidc_client_id (POLARTEP_OIDC_CLIENT_ID) must be set for POLARTEP_AUTH=oidc")
        if not self.oidc_client_secret and not self.oidc_client_secret_file:
            found.append(
                "set POLARTEP_OIDC_CLIENT_SECRET_FILE (or POLARTEP_OIDC_CLIENT_SECRET) for POLARTEP_AUTH=oidc"
            )
        elif not self.oidc_client_secret and not Path(self.oidc_client_secret_file).is_file():
            found.append(f"oidc_client_secret_file {self.oidc_client_secret_file!r} does not exist")
        if "openid" not in self.oidc_scopes.split():
            found.append(f"oidc_scopes must include 'openid', got {self.oidc_scopes!r}")
        return found

    @property
    def oidc_secret(self) -> str:
        """The OIDC client secret, from the setting or its file."""
        if self.oidc_client_secret:
            return self.oidc_client_secret
        return Path(self.oidc_client_secret_file).read_text().strip() if self.oidc_client_secret_file else ""

    # Derived values ---------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def user_subdomain_host(self) -> str:
        """The ``JupyterHub.subdomain_host`` in force (``scheme://host:port``), or "" when users share the hub's
        origin."""
        value = self.subdomain_host.strip()
        if value.lower() in ("off", ""):
            return ""
        url = urlparse(self.public_url)
        return f"{url.scheme}://{url.netloc}"

    def user_origin(self, username: str) -> str:
        """Where ``username``'s servers are served (``scheme://host:port``): their own origin with subdomains, the
        public URL's otherwise. Follows JupyterHub's default ('idna') naming of subdomains."""
        url = urlparse(self.public_url)
        if not self.user_subdomain_host:
            return f"{url.scheme}://{url.netloc}"
        from jupyterhub.utils import subdomain_hook_idna

        return f"{url.scheme}://{subdomain_hook_idna(username, url.hostname, 'user')}:{url.port}"

    @property
    def isolates_users(self) -> bool:
        """Local mode runs each user as their own system user (``spawners/single_user.py``)."""
        return isolates_users(self.local_isolation, running_as_root=os.geteuid() == 0)

    @property
    def public_port(self) -> int:
        return urlparse(self.public_url).port or 8000

    @property
    def proxy_pid_path(self) -> Path:
        """Where the proxy's PID is written (``proxy_process.start_proxy``); the hub and service trust only it."""
        return self.state_path / "proxy.pid"

    @property
    def proxy_api_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_api_port}"

    @property
    def container_host(self) -> str:
        """The one host address besides 127.0.0.1 that the platform listens on: in Docker and Swarm modes the
        gateway of the platform's Docker network (created here if missing), where containers reach the hub's API and
        the Dask Gateway's proxies; 127.0.0.1 in local mode."""
        if self.mode not in ("docker", "swarm"):
            return "127.0.0.1"
        if not getattr(self, "_container_host", None):
            from .spawners.networks import ensure_platform_network

            self._container_host = ensure_platform_network(self.docker_network_prefix)
        return self._container_host

    @property
    def hub_url(self) -> str:
        return f"http://{self.container_host}:{self.hub_port}"

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def proxy_auth_token(self) -> str:
        return _env("POLARTEP_PROXY_AUTH_TOKEN", "") or self.secret("proxy-auth-token")

    @property
    def hub_service_token(self) -> str:
        """The token the hub's own hooks use to call the platform service (service ``polartep-hub``)."""
        return _env("POLARTEP_HUB_SERVICE_TOKEN", "") or self.secret("hub-service-token")

    def secret(self, name: str, nbytes: int = 32, generate: Callable[[], str] | None = None) -> str:
        """Read ``STATE_DIR/<name>``, creating it (0600) the first time with ``generate()`` (random text by default)."""
        path = self.state_path / name
        if path.exists():
            return path.read_text().strip()
        self.state_path.mkdir(parents=True, exist_ok=True)
        value = generate() if generate else secrets.token_urlsafe(nbytes)
        # O_EXCL: two processes starting together must not overwrite each other's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value, help) rows for ``polartep check`` and the README's table; secrets are masked."""
        rows = []
        for name, trait in sorted(self.traits(config=True).items()):
            # Reading a secret would generate it as a side effect: only say whether it was given.
            if name == "oidc_client_secret":
                shown = "(given)" if self.oidc_client_secret else "(not set)"
            elif name.endswith("password"):
                shown = "(given)" if self._trait_values.get(name) else "(generated on first start)"
            else:
                shown = str(getattr(self, name))
            rows.append((name, shown, trait.help))
        return rows
