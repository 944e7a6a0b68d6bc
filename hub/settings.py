"""Typed platform settings, read from ``POLARTEP_*`` environment variables with defaults.

Every setting is a traitlet with ``help=`` and ``config=True`` (so it can also be set in ``jupyterhub_config.py`` as
``c.PlatformSettings.<name>``); environment defaults are read only inside ``@default`` methods, as JupyterHub does.

Each setting is declared once: its trait carries its default, its bounds (``Integer(min=, max=)``, ``Float``,
``Enum``) and, tagged ``env=``, its environment variable, so that :func:`env_setting` reads it the same way for
the hub and for the platform service (``service/config.py``, which is handed the hub's values as environment
variables). Environment booleans have one parser, :func:`parse_env_bool`. Rejected: re-stating defaults and bounds
in the service (they drifted: three boolean parsers disagreed on ``off``), and checking bounds by hand in
``problems()`` (a trait refuses an out-of-bounds value when it is set, naming the setting and the bound).

Secrets that are not given are generated once and kept in files under the state directory (mode 0600), so restarts
keep the same proxy token, cookie secret and internal service token.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from traitlets import Bool, CaselessStrEnum, Enum, Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from polartep_hub.catalogue import DEFAULT_CATALOGUE_PATH
from polartep_hub.spawners.single_user import isolates_users
from polartep_hub.spawners.system_users import check_prefix

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, fallback: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else fallback


ENV_TRUE = ("1", "true", "yes", "on")
ENV_FALSE = ("0", "false", "no", "off")


def parse_env_bool(variable: str, value: str) -> bool:
    """The boolean an environment variable's text stands for (case-insensitive 1/0, true/false, yes/no, on/off).

    Anything else raises ``TraitError`` naming ``variable`` and the accepted words: a typo such as ``flase`` must
    not silently mean either answer."""
    word = value.strip().lower()
    if word in ENV_TRUE:
        return True
    if word in ENV_FALSE:
        return False
    raise TraitError(
        f"{variable}={value.strip()[:40]!r} is not a boolean: use 1/0, true/false, yes/no or on/off"
    )


def env_setting(
    name: str, environ: Mapping[str, str] | None = None, settings: PlatformSettings | None = None
) -> Any:
    """Setting ``name`` read from its environment variable (the trait's ``env`` tag) in ``environ`` (default:
    ``os.environ``), or the trait's declared default when the variable is unset or blank.

    The text is parsed by the trait's type (booleans by :func:`parse_env_bool`) and checked by the trait itself
    (bounds, allowed values); a bad value raises ``TraitError`` that names the variable, the setting and what it
    accepts. ``settings`` is only the instance named in traitlets' messages."""
    trait = PlatformSettings.class_traits()[name]
    variable = trait.metadata["env"]
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return trait.default_value
    value: Any = raw
    if isinstance(trait, Bool):
        value = parse_env_bool(variable, raw)
    elif isinstance(trait, (Integer, Float)):
        kind, number = ("a whole number", int) if isinstance(trait, Integer) else ("a number", float)
        try:
            value = number(raw)
        except ValueError:
            raise TraitError(f"{variable}={raw[:40]!r} must be {kind} ({name})") from None
    try:
        return trait.validate(settings if settings is not None else PlatformSettings(), value)
    except TraitError as error:
        raise TraitError(f"{variable}={raw[:40]!r}: {error}") from None


def setting_default(name: str) -> Any:
    """The default declared for setting ``name`` (what applies when its environment variable is not set)."""
    return PlatformSettings.class_traits()[name].default_value


def default_public_url(mode: str) -> str:
    """Where users reach the platform when ``public_url`` is not set (the service falls back to the same)."""
    # Docker mode serves each user's server on its own origin (subdomain_host), which needs a host *name*:
    # localhost, whose subdomains browsers resolve to loopback themselves.
    return "http://localhost:8000" if mode == "docker" else "http://127.0.0.1:8000"


def _public_url_problem(value: str) -> str | None:
    url = urlparse(value)
    if url.scheme not in ("http", "https") or not url.hostname or not url.port:
        return f"public_url must look like http://HOST:PORT, got {value!r}"
    return None


def _is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine's loopback (``localhost`` and its subdomains, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        "local",
        help="How user servers run: 'local' (processes on this machine, the embedded default), 'docker' "
        "(containers on this machine's engine) or 'swarm' (Docker Swarm services). "
        "Env: POLARTEP_MODE.",
        config=True,
    ).tag(env="POLARTEP_MODE")

    @default("mode")
    def _mode_default(self) -> str:
        return env_setting("mode", settings=self)

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
        return _env("POLARTEP_PUBLIC_URL", default_public_url(self.mode))

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
        8001,
        min=1,
        max=65535,
        help="Port of the proxy's REST API (127.0.0.1). Env: POLARTEP_PROXY_API_PORT.",
        config=True,
    ).tag(env="POLARTEP_PROXY_API_PORT")

    @default("proxy_api_port")
    def _proxy_api_port_default(self) -> int:
        return env_setting("proxy_api_port", settings=self)

    hub_port = Integer(
        8081,
        min=1,
        max=65535,
        help="Port the hub listens on (127.0.0.1; in Docker and Swarm modes the platform network's gateway address "
        "instead, see docker_network_prefix). Env: POLARTEP_HUB_PORT.",
        config=True,
    ).tag(env="POLARTEP_HUB_PORT")

    @default("hub_port")
    def _hub_port_default(self) -> int:
        return env_setting("hub_port", settings=self)

    service_port = Integer(
        8090,
        min=1,
        max=65535,
        help="Port of the platform service (127.0.0.1). Env: POLARTEP_SERVICE_PORT.",
        config=True,
    ).tag(env="POLARTEP_SERVICE_PORT")

    @default("service_port")
    def _service_port_default(self) -> int:
        return env_setting("service_port", settings=self)

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

    admin_user = Unicode(
        "admin", help="The first administrator's username. Env: POLARTEP_ADMIN_USER.", config=True
    ).tag(env="POLARTEP_ADMIN_USER")

    @default("admin_user")
    def _admin_user_default(self) -> str:
        return env_setting("admin_user", settings=self)

    admin_password = Unicode(
        help="The first administrator's password; generated into STATE_DIR/admin-password when not given. "
        "Env: POLARTEP_ADMIN_PASSWORD.",
        config=True,
    )

    @default("admin_password")
    def _admin_password_default(self) -> str:
        return _env("POLARTEP_ADMIN_PASSWORD", "") or self.secret("admin-password", nbytes=12)

    default_plan = Unicode(
        "trial", help="The plan new accounts start on. Env: POLARTEP_DEFAULT_PLAN.", config=True
    ).tag(env="POLARTEP_DEFAULT_PLAN")

    @default("default_plan")
    def _default_plan_default(self) -> str:
        return env_setting("default_plan", settings=self)

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
        "platform",
        help="How users log in: 'platform' (the embedded username/password login checked by the platform service, "
        "the default) or 'oidc' (an OpenID Connect identity provider such as Keycloak, through oauthenticator's "
        "GenericOAuthenticator). Env: POLARTEP_AUTH.",
        config=True,
    ).tag(env="POLARTEP_AUTH")

    @default("auth")
    def _auth_default(self) -> str:
        return env_setting("auth", settings=self)

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
        "oidc-",
        help="OIDC: identity-provider groups become JupyterHub groups named <prefix><group>, so that a provider "
        "can never put a user into a platform project's group. Env: POLARTEP_OIDC_GROUP_PREFIX.",
        config=True,
    ).tag(env="POLARTEP_OIDC_GROUP_PREFIX")

    @default("oidc_group_prefix")
    def _oidc_group_prefix_default(self) -> str:
        return env_setting("oidc_group_prefix", settings=self)

    signup = Bool(
        True,
        help="Open sign-up for the embedded login: anyone may register at /services/platform/signup (accepting the "
        "terms and privacy statement); an administrator approves each account before it can log in. "
        "Always off with auth=oidc (the identity provider registers people). Env: POLARTEP_SIGNUP (1/0).",
        config=True,
    ).tag(env="POLARTEP_SIGNUP")

    @default("signup")
    def _signup_default(self) -> bool:
        return env_setting("signup", settings=self)

    signup_per_hour = Integer(
        5,
        min=0,
        max=100_000,
        help="Sign-ups accepted per client address in an hour's window (counted in the platform database, in the "
        "transaction that stores the account); 0: no limit. Env: POLARTEP_SIGNUP_PER_HOUR.",
        config=True,
    ).tag(env="POLARTEP_SIGNUP_PER_HOUR")

    @default("signup_per_hour")
    def _signup_per_hour_default(self) -> int:
        return env_setting("signup_per_hour", settings=self)

    signup_max_pending = Integer(
        100,
        min=0,
        max=1_000_000,
        help="No more sign-ups are taken while this many accounts await approval (bounds what a flood of sign-ups "
        "can store); 0: no bound. Env: POLARTEP_SIGNUP_MAX_PENDING.",
        config=True,
    ).tag(env="POLARTEP_SIGNUP_MAX_PENDING")

    @default("signup_max_pending")
    def _signup_max_pending_default(self) -> int:
        return env_setting("signup_max_pending", settings=self)

    password_min_length = Integer(
        10,
        min=1,
        max=128,
        help="Shortest password accepted at sign-up (which also refuses the 10,000 most common passwords and "
        "passwords containing the user name). Env: POLARTEP_PASSWORD_MIN_LENGTH.",
        config=True,
    ).tag(env="POLARTEP_PASSWORD_MIN_LENGTH")

    @default("password_min_length")
    def _password_min_length_default(self) -> int:
        return env_setting("password_min_length", settings=self)

    login_attempts = Integer(
        5,
        min=0,
        max=1000,
        help="Login throttle: failed logins allowed for one user name from one client address in a window of "
        "login_lockout_seconds; further attempts of that pair wait for the window's end (other addresses are not "
        "affected, so nobody can lock a user out); 0 turns this bound off. Env: POLARTEP_LOGIN_ATTEMPTS.",
        config=True,
    ).tag(env="POLARTEP_LOGIN_ATTEMPTS")

    @default("login_attempts")
    def _login_attempts_default(self) -> int:
        return env_setting("login_attempts", settings=self)

    login_lockout_seconds = Integer(
        600,
        min=1,
        max=30 * 86400,
        help="Login throttle: the window (seconds, from the first failure) in which login_attempts and "
        "login_attempts_per_address count failures. Env: POLARTEP_LOGIN_LOCKOUT_SECONDS.",
        config=True,
    ).tag(env="POLARTEP_LOGIN_LOCKOUT_SECONDS")

    @default("login_lockout_seconds")
    def _login_lockout_seconds_default(self) -> int:
        return env_setting("login_lockout_seconds", settings=self)

    password_reset_minutes = Integer(
        30,
        min=1,
        max=7 * 24 * 60,
        help='How long a password-reset link ("forgot password" or an administrator\'s forced reset) works; each '
        "link works once. Env: POLARTEP_PASSWORD_RESET_MINUTES.",
        config=True,
    ).tag(env="POLARTEP_PASSWORD_RESET_MINUTES")

    @default("password_reset_minutes")
    def _password_reset_minutes_default(self) -> int:
        return env_setting("password_reset_minutes", settings=self)

    password_reset_per_hour = Integer(
        10,
        min=0,
        max=1_000_000,
        help='"Forgot password" requests accepted per client address per hour (counted in the platform '
        "service's database); each account is also mailed at most 3 links an hour. 0: no limit per address. "
        "Env: POLARTEP_PASSWORD_RESET_PER_HOUR.",
        config=True,
    ).tag(env="POLARTEP_PASSWORD_RESET_PER_HOUR")

    @default("password_reset_per_hour")
    def _password_reset_per_hour_default(self) -> int:
        return env_setting("password_reset_per_hour", settings=self)

    # Mail (the platform service's outbox: password-reset links, later quota notifications) -----------------------

    smtp_host = Unicode(
        "",
        help="SMTP server the platform sends e-mail through. Empty: no mail is sent; messages (such as "
        "password-reset links) stay in the service's outbox table and are logged without their content, and "
        "`polartep check` warns. Env: POLARTEP_SMTP_HOST.",
        config=True,
    ).tag(env="POLARTEP_SMTP_HOST")

    @default("smtp_host")
    def _smtp_host_default(self) -> str:
        return env_setting("smtp_host", settings=self)

    smtp_security = CaselessStrEnum(
        ["starttls", "ssl", "none"],
        "starttls",
        help="How to secure the SMTP connection: 'starttls' (upgrade a plain connection, port 587 by default), "
        "'ssl' (TLS from the start, port 465) or 'none' (plain text, port 25: only for a relay on this machine). "
        "Env: POLARTEP_SMTP_SECURITY.",
        config=True,
    ).tag(env="POLARTEP_SMTP_SECURITY")

    @default("smtp_security")
    def _smtp_security_default(self) -> str:
        return env_setting("smtp_security", settings=self)

    smtp_port = Integer(
        0,
        min=0,
        max=65535,
        help="SMTP port; 0: the usual port for smtp_security (587, 465 or 25). Env: POLARTEP_SMTP_PORT.",
        config=True,
    ).tag(env="POLARTEP_SMTP_PORT")

    @default("smtp_port")
    def _smtp_port_default(self) -> int:
        return env_setting("smtp_port", settings=self)

    smtp_user = Unicode(
        "",
        help="User name for SMTP authentication; empty: no authentication. Env: POLARTEP_SMTP_USER.",
        config=True,
    ).tag(env="POLARTEP_SMTP_USER")

    @default("smtp_user")
    def _smtp_user_default(self) -> str:
        return env_setting("smtp_user", settings=self)

    smtp_password_file = Unicode(
        "",
        help="File holding the SMTP password (read by the platform service at start-up; never put the password "
        "itself in the environment). Env: POLARTEP_SMTP_PASSWORD_FILE.",
        config=True,
    ).tag(env="POLARTEP_SMTP_PASSWORD_FILE")

    @default("smtp_password_file")
    def _smtp_password_file_default(self) -> str:
        return env_setting("smtp_password_file", settings=self)

    mail_from = Unicode(
        "polartep@localhost",
        help="The From address of the platform's e-mail. Env: POLARTEP_MAIL_FROM.",
        config=True,
    ).tag(env="POLARTEP_MAIL_FROM")

    @default("mail_from")
    def _mail_from_default(self) -> str:
        return env_setting("mail_from", settings=self)

    login_attempts_per_address = Integer(
        20,
        min=0,
        max=100_000,
        help="Login throttle: failed logins allowed from one client address across all user names in a window of "
        "login_lockout_seconds; then that address waits for the window's end; 0 turns this bound off. "
        "Env: POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS.",
        config=True,
    ).tag(env="POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS")

    @default("login_attempts_per_address")
    def _login_attempts_per_address_default(self) -> int:
        return env_setting("login_attempts_per_address", settings=self)

    login_max_concurrent_hashes = Integer(
        4,
        min=1,
        max=256,
        help="Password hashes (argon2, 64 MiB each) the platform service runs at once; a login or sign-up that "
        "finds every slot taken is refused at once with 503 and Retry-After. "
        "Env: POLARTEP_LOGIN_MAX_CONCURRENT_HASHES.",
        config=True,
    ).tag(env="POLARTEP_LOGIN_MAX_CONCURRENT_HASHES")

    @default("login_max_concurrent_hashes")
    def _login_max_concurrent_hashes_default(self) -> int:
        return env_setting("login_max_concurrent_hashes", settings=self)

    local_memory_limit = Bool(
        True,
        help="Local mode: enforce the profile's memory as an address-space limit (RLIMIT_AS) on the user's server "
        "and its kernels. Env: POLARTEP_LOCAL_MEMORY_LIMIT (1/0).",
        config=True,
    ).tag(env="POLARTEP_LOCAL_MEMORY_LIMIT")

    @default("local_memory_limit")
    def _local_memory_limit_default(self) -> bool:
        return env_setting("local_memory_limit", settings=self)

    local_launcher = Bool(
        True,
        help="Local mode with system users: start user servers by forking a launcher that has imported Jupyter "
        "Server, JupyterLab and the extensions once (spawners/launcher.py: no platform secret in it; the child "
        "becomes the user before it reads anything of the spawn); 0 starts each server as a fresh process. "
        "Env: POLARTEP_LOCAL_LAUNCHER (1/0).",
        config=True,
    ).tag(env="POLARTEP_LOCAL_LAUNCHER")

    @default("local_launcher")
    def _local_launcher_default(self) -> bool:
        return env_setting("local_launcher", settings=self)

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

    datasets_dir = Unicode(
        help="The folder under which each storage class of the catalogue keeps its datasets, <datasets_dir>/<class> "
        "(unless dataset_roots names another root for the class). Outside state_dir with system users, whose "
        "servers must reach the datasets they may use. Default: HOMES_DIR/.datasets with system users, "
        "STATE_DIR/data otherwise. Env: POLARTEP_DATASETS_DIR.",
        config=True,
    )

    @default("datasets_dir")
    def _datasets_dir_default(self) -> str:
        fallback = (
            str(Path(self.homes_dir) / ".datasets") if self.isolates_users else str(self.state_path / "data")
        )
        return str(Path(_env("POLARTEP_DATASETS_DIR", fallback)).resolve())

    dataset_roots = Unicode(
        "",
        help="Root folders of single storage classes, as class=/absolute/path separated by commas (e.g. "
        "'ssd=/mnt/ssd/datasets,hdd=/mnt/hdd/datasets'); a class not named keeps its datasets under "
        "datasets_dir. A root belongs to one platform: folders in it that no dataset holds are removed at start-up. "
        "Env: POLARTEP_DATASET_ROOTS.",
        config=True,
    ).tag(env="POLARTEP_DATASET_ROOTS")

    @default("dataset_roots")
    def _dataset_roots_default(self) -> str:
        return env_setting("dataset_roots", settings=self)

    object_store_endpoint = Unicode(
        "",
        help="The S3-compatible endpoint (http(s)://host:port) that holds the datasets of the 'object' storage class, "
        "each under its own prefix datasets/<key>/ of object_store_bucket. Empty (the embedded default): the object "
        "class is a folder root like the others. User servers never get the platform's keys: they ask the service "
        "for presigned URLs per object. Env: POLARTEP_OBJECT_STORE_ENDPOINT.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_ENDPOINT")

    @default("object_store_endpoint")
    def _object_store_endpoint_default(self) -> str:
        return env_setting("object_store_endpoint", settings=self)

    object_store_public_endpoint = Unicode(
        "",
        help="The object store's endpoint as user servers and browsers reach it, for which presigned URLs are signed "
        "(a signature covers the host name, so it must be exactly the address they connect to). Empty: "
        "object_store_endpoint. In Docker and Swarm modes a container's 127.0.0.1 is its own, so a loopback address "
        "is refused here: use the store's address on a network the containers reach, e.g. the host's address on the "
        "platform network {docker_network_prefix}-platform (README, 'Object datasets in Docker mode'). "
        "Env: POLARTEP_OBJECT_STORE_PUBLIC_ENDPOINT.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_PUBLIC_ENDPOINT")

    @default("object_store_public_endpoint")
    def _object_store_public_endpoint_default(self) -> str:
        return env_setting("object_store_public_endpoint", settings=self)

    object_store_bucket = Unicode(
        "",
        help="The bucket of the object class's datasets (it must exist; it belongs to this platform: prefixes under "
        "datasets/ that no dataset holds are deleted at start-up). Env: POLARTEP_OBJECT_STORE_BUCKET.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_BUCKET")

    @default("object_store_bucket")
    def _object_store_bucket_default(self) -> str:
        return env_setting("object_store_bucket", settings=self)

    object_store_region = Unicode(
        "us-east-1",
        help="The object store's region, used in request signatures. Env: POLARTEP_OBJECT_STORE_REGION.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_REGION")

    @default("object_store_region")
    def _object_store_region_default(self) -> str:
        return env_setting("object_store_region", settings=self)

    object_store_credentials_file = Unicode(
        "",
        help="A file (readable by the platform only) of two lines, access_key_id = ... and secret_access_key = ..., "
        "the key pair of the object store; read by the platform service at start-up, never logged. Takes precedence "
        "over the environment variables POLARTEP_OBJECT_STORE_ACCESS_KEY_ID and "
        "POLARTEP_OBJECT_STORE_SECRET_ACCESS_KEY, which the service reads otherwise. "
        "Env: POLARTEP_OBJECT_STORE_CREDENTIALS_FILE.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_CREDENTIALS_FILE")

    @default("object_store_credentials_file")
    def _object_store_credentials_file_default(self) -> str:
        return env_setting("object_store_credentials_file", settings=self)

    object_store_url_seconds = Integer(
        300,
        min=10,
        max=3600,
        help="How long a presigned object URL handed to a user works, in seconds. Revoking a grant refuses new URLs "
        "at once; URLs already issued work until they expire. Env: POLARTEP_OBJECT_STORE_URL_SECONDS.",
        config=True,
    ).tag(env="POLARTEP_OBJECT_STORE_URL_SECONDS")

    @default("object_store_url_seconds")
    def _object_store_url_seconds_default(self) -> int:
        return env_setting("object_store_url_seconds", settings=self)

    stac_peers = Unicode(
        "",
        help="Other STAC APIs that every search of the platform's catalogue also asks (federated search), as "
        "name=URL of the API's root separated by commas (e.g. 'earth-search=https://earth-search.aws.element84.com/v1/'). "
        "They are asked anonymously, or with a token written as https://TOKEN@host/...; their items come back marked "
        "with the peer's name. Env: POLARTEP_STAC_PEERS.",
        config=True,
    ).tag(env="POLARTEP_STAC_PEERS")

    @default("stac_peers")
    def _stac_peers_default(self) -> str:
        return env_setting("stac_peers", settings=self)

    stac_peer_timeout = Float(
        3.0,
        min=0.1,
        max=60.0,
        help="Seconds a federated search waits for each STAC peer; a slower or dead peer is left out of that answer "
        "(and named in it). Env: POLARTEP_STAC_PEER_TIMEOUT.",
        config=True,
    ).tag(env="POLARTEP_STAC_PEER_TIMEOUT")

    @default("stac_peer_timeout")
    def _stac_peer_timeout_default(self) -> float:
        return env_setting("stac_peer_timeout", settings=self)

    idle_timeout = Integer(
        3600,
        min=0,
        help="Stop a user's server after this many seconds without activity (jupyterhub-idle-culler, a "
        "hub-managed service); 0 turns culling off. Env: POLARTEP_IDLE_TIMEOUT.",
        config=True,
    ).tag(env="POLARTEP_IDLE_TIMEOUT")

    @default("idle_timeout")
    def _idle_timeout_default(self) -> int:
        return env_setting("idle_timeout", settings=self)

    spawn_start_timeout = Integer(
        120,
        min=10,
        max=3600,
        help="Seconds a user's server may take from the spawn request until it answers before the hub gives up "
        "(JupyterHub's Spawner.start_timeout). Raise it on a heavily shared machine. Env: POLARTEP_SPAWN_START_TIMEOUT.",
        config=True,
    ).tag(env="POLARTEP_SPAWN_START_TIMEOUT")

    @default("spawn_start_timeout")
    def _spawn_start_timeout_default(self) -> int:
        return env_setting("spawn_start_timeout", settings=self)

    named_servers_per_user = Integer(
        4,
        min=0,
        max=1000,
        help="How many named development servers a user may have (JupyterHub's named_server_limit_per_user); "
        "dashboards' servers are not counted (their number is bounded when they are published). 0: no bound "
        "(the plan's bound on cores and memory running at once still holds). Env: POLARTEP_NAMED_SERVERS_PER_USER.",
        config=True,
    ).tag(env="POLARTEP_NAMED_SERVERS_PER_USER")

    @default("named_servers_per_user")
    def _named_servers_per_user_default(self) -> int:
        return env_setting("named_servers_per_user", settings=self)

    log_level = CaselessStrEnum(
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        "INFO",
        help="Log level of the hub and services. Env: POLARTEP_LOG_LEVEL.",
        config=True,
    ).tag(env="POLARTEP_LOG_LEVEL")

    @default("log_level")
    def _log_level_default(self) -> str:
        return env_setting("log_level", settings=self)

    gateway_port = Integer(
        8092,
        min=1,
        max=65535,
        help="Port of the Dask Gateway's HTTP proxy (127.0.0.1; Docker/Swarm: the platform network's gateway), "
        "which the hub's proxy serves at "
        "/services/dask-gateway/. Env: POLARTEP_GATEWAY_PORT.",
        config=True,
    ).tag(env="POLARTEP_GATEWAY_PORT")

    @default("gateway_port")
    def _gateway_port_default(self) -> int:
        return env_setting("gateway_port", settings=self)

    gateway_tcp_port = Integer(
        8093,
        min=1,
        max=65535,
        help="Port of the Dask Gateway's TLS proxy for Dask clients (127.0.0.1; Docker/Swarm: the platform network's "
        "gateway). Env: POLARTEP_GATEWAY_TCP_PORT.",
        config=True,
    ).tag(env="POLARTEP_GATEWAY_TCP_PORT")

    @default("gateway_tcp_port")
    def _gateway_tcp_port_default(self) -> int:
        return env_setting("gateway_tcp_port", settings=self)

    gateway_api_port = Integer(
        8094,
        min=1,
        max=65535,
        help="Port of the Dask Gateway's private API, used by schedulers (127.0.0.1). "
        "Env: POLARTEP_GATEWAY_API_PORT.",
        config=True,
    ).tag(env="POLARTEP_GATEWAY_API_PORT")

    @default("gateway_api_port")
    def _gateway_api_port_default(self) -> int:
        return env_setting("gateway_api_port", settings=self)

    dask_idle_timeout = Integer(
        1800,
        min=0,
        help="Seconds a Dask cluster may sit idle (no client, no tasks) before the gateway stops it; 0 never. "
        "Env: POLARTEP_DASK_IDLE_TIMEOUT.",
        config=True,
    ).tag(env="POLARTEP_DASK_IDLE_TIMEOUT")

    @default("dask_idle_timeout")
    def _dask_idle_timeout_default(self) -> int:
        return env_setting("dask_idle_timeout", settings=self)

    gateway_meter_interval = Float(
        10.0,
        min=1,
        max=3600,
        help="Seconds between two passes of the platform service's Dask Gateway meter, which copies every "
        "scheduler's and worker's start and stop from the gateway's database into the usage ledger. "
        "Env: POLARTEP_GATEWAY_METER_INTERVAL.",
        config=True,
    ).tag(env="POLARTEP_GATEWAY_METER_INTERVAL")

    @default("gateway_meter_interval")
    def _gateway_meter_interval_default(self) -> float:
        return env_setting("gateway_meter_interval", settings=self)

    quota_horizon_minutes = Integer(
        15,
        min=0,
        max=24 * 60,
        help="Quota decisions (hub/usage/quota.py): a server spawn, a Dask cluster or a scale-up is admitted when "
        "what is left of the month's CPU-hour allowance covers everything the user has running plus the request "
        "for this many minutes (0 to 1440). Env: POLARTEP_QUOTA_HORIZON_MINUTES.",
        config=True,
    ).tag(env="POLARTEP_QUOTA_HORIZON_MINUTES")

    @default("quota_horizon_minutes")
    def _quota_horizon_minutes_default(self) -> int:
        return env_setting("quota_horizon_minutes", settings=self)

    storage_sample_interval = Float(
        3600.0,
        min=1,
        max=86400,
        help="Seconds between two samples of every user's home size by the platform service (hub/usage/storage.py); "
        "the samples are integrated into TB-months per storage class for statements and checked against the plan's "
        "storage quota. Env: POLARTEP_STORAGE_SAMPLE_INTERVAL.",
        config=True,
    ).tag(env="POLARTEP_STORAGE_SAMPLE_INTERVAL")

    @default("storage_sample_interval")
    def _storage_sample_interval_default(self) -> float:
        return env_setting("storage_sample_interval", settings=self)

    home_storage_class = Unicode(
        "ssd",
        help="The catalogue's storage class (storage: in the catalogue) that users' homes are counted and priced "
        "in. Env: POLARTEP_HOME_STORAGE_CLASS.",
        config=True,
    ).tag(env="POLARTEP_HOME_STORAGE_CLASS")

    @default("home_storage_class")
    def _home_storage_class_default(self) -> str:
        return env_setting("home_storage_class", settings=self)

    processors_dir = Unicode(
        help="The platform's processors folder: published notebooks (notebooks/, content-addressed, 0600 in 0700 "
        "folders). Users never read it; runs receive a notebook's bytes from the platform service. Default: "
        "STATE_DIR/processors. Env: POLARTEP_PROCESSORS_DIR.",
        config=True,
    )

    @default("processors_dir")
    def _processors_dir_default(self) -> str:
        return str(Path(_env("POLARTEP_PROCESSORS_DIR", str(self.state_path / "processors"))).resolve())

    processor_run_warm_seconds = Integer(
        120,
        min=0,
        max=3600,
        help="Processor runs: seconds the invoker's run cluster (a Dask Gateway cluster with one worker) is kept "
        "after its last run ends, so the next run does not pay a cluster start (0 to 3600; 0 stops it at once). "
        "The warm time is metered and charged like any cluster's time. Env: POLARTEP_PROCESSOR_RUN_WARM_SECONDS.",
        config=True,
    ).tag(env="POLARTEP_PROCESSOR_RUN_WARM_SECONDS")

    @default("processor_run_warm_seconds")
    def _processor_run_warm_seconds_default(self) -> int:
        return env_setting("processor_run_warm_seconds", settings=self)

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
        """What is wrong with the settings in force beyond each one's own bounds (which its trait enforces when it
        is read or set): how settings fit together, and files that must exist. A value from the environment that
        its trait refuses is listed here too (every declared setting is read once), and alone: the other checks
        need sound values."""
        found = []
        for name, trait in self.traits(config=True).items():
            if "env" in trait.metadata:
                try:
                    getattr(self, name)
                except TraitError as error:
                    found.append(str(error))
        if found:
            return found
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
        if self.auth == "oidc":
            found.extend(self.oidc_problems())
        if self.smtp_password_file and not Path(self.smtp_password_file).is_file():
            found.append(f"smtp_password_file {self.smtp_password_file!r} does not exist")
        if "@" not in self.mail_from:
            found.append(f"mail_from must be an e-mail address, got {self.mail_from[:200]!r}")
        found.extend(self.local_isolation_problems())
        found.extend(self.object_store_problems())
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
            for name in ("homes_dir", "dask_clusters_dir", "datasets_dir"):
                path = Path(getattr(self, name)).resolve()
                if path == state or state in path.parents:
                    found.append(
                        f"{name} {str(path)!r} lies inside state_dir, which users cannot enter (mode 0700): "
                        "choose a folder outside it"
                    )
        return found

    def object_store_problems(self) -> list[str]:
        """What keeps the object class's S3-compatible store from working (asked when an endpoint is set)."""
        if not self.object_store_endpoint:
            return []
        found = []
        for name in ("object_store_endpoint", "object_store_public_endpoint"):
            value = getattr(self, name)
            url = urlparse(value)
            if value and (
                url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/")
            ):
                found.append(f"{name} must look like http(s)://HOST[:PORT], got {value[:200]!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.object_store_bucket):
            found.append(
                "object_store_bucket (POLARTEP_OBJECT_STORE_BUCKET) must be an S3 bucket name (3-63 lower-case "
                f"letters, digits, '.' and '-'), got {self.object_store_bucket[:80]!r}"
            )
        if self.object_store_credentials_file and not Path(self.object_store_credentials_file).is_file():
            found.append(
                f"object_store_credentials_file {self.object_store_credentials_file!r} does not exist"
            )
        public = self.object_store_public_endpoint or self.object_store_endpoint
        if self.mode in ("docker", "swarm") and _is_loopback(urlparse(public).hostname):
            # Presigned URLs are signed for this host, and a container's loopback is its own: every URL would fail.
            found.append(
                f"object_store_public_endpoint must be an address that user containers reach in {self.mode} mode, "
                f"not the loopback {public[:200]!r} (a container's 127.0.0.1 is its own): set it to the store's "
                "address on a network the containers reach, e.g. the host's address on the platform network "
                f"{self.docker_network_prefix}-platform (README, 'Object datasets in Docker mode')"
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
            from polartep_hub.spawners.networks import ensure_platform_network

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
