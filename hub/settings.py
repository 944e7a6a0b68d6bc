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
        help="Where users reach the platform (the proxy's public address). Env: POLARTEP_PUBLIC_URL.",
        config=True,
    )

    @default("public_url")
    def _public_url_default(self) -> str:
        return _env("POLARTEP_PUBLIC_URL", "http://127.0.0.1:8000")

    @validate("public_url")
    def _check_public_url(self, proposal):
        problem = _public_url_problem(proposal["value"])
        if problem:
            raise TraitError(problem)
        return proposal["value"].rstrip("/")

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
        help="Sign-ups accepted per client address per hour (counted in the platform service's memory); 0: no "
        "limit. Env: POLARTEP_SIGNUP_PER_HOUR.",
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
        help="Brute-force lock-out: after this many wrong passwords in a row an account refuses every login for "
        "login_lockout_seconds; 0 turns lock-out off. Env: POLARTEP_LOGIN_ATTEMPTS.",
        config=True,
    )

    @default("login_attempts")
    def _login_attempts_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_ATTEMPTS", 5)

    login_lockout_seconds = Integer(
        help="How long a locked account refuses logins. Env: POLARTEP_LOGIN_LOCKOUT_SECONDS.", config=True
    )

    @default("login_lockout_seconds")
    def _login_lockout_seconds_default(self) -> int:
        return _env_int("POLARTEP_LOGIN_LOCKOUT_SECONDS", 600)

    local_memory_limit = Bool(
        help="Local mode: enforce the profile's memory as an address-space limit (RLIMIT_AS) on the user's server "
        "and its kernels. Env: POLARTEP_LOCAL_MEMORY_LIMIT (1/0).",
        config=True,
    )

    @default("local_memory_limit")
    def _local_memory_limit_default(self) -> bool:
        return _env("POLARTEP_LOCAL_MEMORY_LIMIT", "1") not in ("0", "false", "no")

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
        "address on this host is where containers reach the hub and the Dask Gateway), {prefix}-swarm (servers "
        "in Swarm mode) and {prefix}-u-{user} (each user's servers and Dask containers). "
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
        if not 1 <= self.login_lockout_seconds <= 30 * 86400:
            found.append(
                f"login_lockout_seconds must be 1 to 2592000 (30 days), got {self.login_lockout_seconds}"
            )
        if not 1 <= self.gateway_meter_interval <= 3600:
            found.append(
                f"gateway_meter_interval must be 1 to 3600 seconds, got {self.gateway_meter_interval}"
            )
        if self.mode in ("docker", "swarm"):
            found.extend(self.docker_network_problems())
        if len(set(ports.values())) != len(ports):
            found.append(f"the ports must differ: {ports}")
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
    def public_port(self) -> int:
        return urlparse(self.public_url).port or 8000

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
