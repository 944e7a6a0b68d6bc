"""The platform service's settings, read from the environment the hub gives it.

Rules this module guarantees:

* This is the only place in ``polartep_hub.service`` that reads environment variables (``HubOAuth`` reads the
  standard ``JUPYTERHUB_*`` OAuth variables itself; see ``hubauth.py``). The full list is in ``__main__.py``.
* Every value is checked here, once, at start-up; a bad value raises ``ConfigError`` naming the variable.
* Secrets (the admin password, the cookie secret) never appear in ``repr()`` and so never in logs.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "sqlite:///./platform.sqlite"
DEFAULT_SERVICE_NAME = "platform"
DEFAULT_SERVICE_URL = "http://127.0.0.1:8090"

# The same rule as the account names in ``accounts.py``; repeated as a pattern here so that this module stays
# import-light (the migrations' env.py imports it).
_ACCOUNT_NAME = re.compile(r"[a-z0-9._-]{1,64}")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable and what to fix."""


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The SQLAlchemy URL from ``POLARTEP_SERVICE_DB_URL`` (SQLite in the working directory by default)."""
    environ = os.environ if environ is None else environ
    return environ.get("POLARTEP_SERVICE_DB_URL", "").strip() or DEFAULT_DATABASE_URL


def _normalise_prefix(prefix: str) -> str:
    """A URL path that starts and ends with exactly one slash."""
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


def _access_scopes(environ: Mapping[str, str], service_name: str) -> frozenset[str]:
    """The scopes a user token needs to use this service, read the way ``HubAuth.access_scopes`` reads them."""
    import json

    raw = environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES") or environ.get("JUPYTERHUB_OAUTH_SCOPES")
    if raw:
        try:
            scopes = json.loads(raw)
        except ValueError:
            raise ConfigError(
                f"JUPYTERHUB_OAUTH_ACCESS_SCOPES is not a JSON list of scopes: {raw[:200]!r}"
            ) from None
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigError("JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of strings")
        return frozenset(scopes)
    return frozenset({f"access:services!service={service_name}"})


@dataclass(frozen=True)
class MailSettings:
    """How the outbox delivers mail; no ``host``: messages stay in the outbox (and are logged without their body)."""

    host: str = ""
    port: int = 587
    security: str = "starttls"  # "starttls", "ssl" or "none"
    user: str = ""
    password: str = field(default="", repr=False)
    from_address: str = "polartep@localhost"

    @property
    def configured(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the service needs to start, already validated."""

    prefix: str = f"/services/{DEFAULT_SERVICE_NAME}/"
    host: str = "127.0.0.1"
    port: int = 8090
    service_name: str = DEFAULT_SERVICE_NAME
    access_scopes: frozenset[str] = frozenset({f"access:services!service={DEFAULT_SERVICE_NAME}"})
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a database password
    catalogue_path: Path | None = None  # None: the shipped catalogue
    admin_user: str = "admin"
    admin_password: str | None = field(default=None, repr=False)
    default_plan: str = "trial"
    cookie_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    cookie_secret_from_env: bool = False
    log_level: str = "INFO"
    legal_dir: Path | None = None  # None: the shipped terms and privacy statement
    hub_api_url: str = ""  # JupyterHub's REST API, for group sync and erasure ("" when not run by a hub)
    hub_api_token: str = field(default="", repr=False)
    # Registration (signup.py) and password login (accounts.check_password); see hub/settings.py for each.
    signup_enabled: bool = True
    signup_per_hour: int = 5
    signup_max_pending: int = 100
    password_min_length: int = 10
    login_attempts: int = 5
    login_attempts_per_address: int = 20
    login_lockout_seconds: int = 600
    login_max_concurrent_hashes: int = 4
    # Where users reach the platform (links in e-mails point there); cookies are Secure when it is https (never
    # guessed from forwarded headers).
    public_url: str = "http://127.0.0.1:8000"
    # The proxy's PID file: X-Forwarded-For is trusted only on connections from that process (proxy_peer.py).
    proxy_pid_file: Path | None = None
    # The identity provider's group prefix, reserved for its groups whatever the auth mode (projects.py).
    oidc_group_prefix: str = "oidc-"
    # The Dask Gateway's database, read by the gateway meter (``accounting/gateway_meter.py``); None: no meter.
    gateway_db_url: str | None = field(default=None, repr=False)
    gateway_meter_interval: float = 10.0
    # Quota decisions (usage/quota.py): what is left must cover what runs plus the request for this long.
    quota_horizon_minutes: int = 15
    # Passwords and mail (password_reset.py, mail_outbox.py); see hub/settings.py for each.
    auth: str = "platform"  # "platform" (passwords here) or "oidc" (the identity provider owns passwords)
    password_reset_minutes: int = 30
    password_reset_per_hour: int = 10  # "forgot password" requests per client address per hour; 0: no limit
    mail: MailSettings = field(default_factory=lambda: MailSettings())
    # Single-user local mode (polartep_hub.spawners.single_user): no account but admin_user's is ever created.
    single_user: bool = False
    # Erasure (personal_data.py): the gateway's private API, whose platform routes stop a user's clusters ("" when
    # no gateway runs), and where homes live: the mode ("local": folders under homes_root; "docker"/"swarm": the
    # volume polartep-home-<name>) so that "erased" is said only once the home is really gone.
    gateway_api_url: str = ""
    mode: str = "local"
    homes_root: str = ""
    home_folder_prefix: str = ""  # local homes are <homes_root>/<system user name> when set

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Read and check the environment contract (see ``polartep_hub.service.__main__``)."""
        environ = os.environ if environ is None else environ

        service_name = environ.get("JUPYTERHUB_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME

        service_url = environ.get("JUPYTERHUB_SERVICE_URL", "").strip() or DEFAULT_SERVICE_URL
        parts = urlsplit(service_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                f"JUPYTERHUB_SERVICE_URL={service_url!r} must be an http:// URL with a host, e.g. http://127.0.0.1:8090 "
                "(the service binds plain HTTP; TLS is the proxy's job)"
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise ConfigError(f"JUPYTERHUB_SERVICE_URL={service_url!r} has an invalid port") from None

        prefix = _normalise_prefix(
            environ.get("JUPYTERHUB_SERVICE_PREFIX", "") or f"/services/{service_name}/"
        )

        catalogue = environ.get("POLARTEP_CATALOGUE", "").strip()

        admin_user = environ.get("POLARTEP_ADMIN_USER", "").strip() or "admin"
        if not _ACCOUNT_NAME.fullmatch(admin_user):
            raise ConfigError(
                f"POLARTEP_ADMIN_USER={shlex.quote(admin_user[:80])} is not a valid account name "
                "(1-64 characters of a-z, 0-9, '.', '_' and '-')"
            )

        default_plan = environ.get("POLARTEP_DEFAULT_PLAN", "").strip() or "trial"

        secret_hex = environ.get("POLARTEP_SERVICE_COOKIE_SECRET", "").strip()
        if secret_hex:
            try:
                cookie_secret = bytes.fromhex(secret_hex)
            except ValueError:
                raise ConfigError(
                    "POLARTEP_SERVICE_COOKIE_SECRET must be hex (e.g. `openssl rand -hex 32`)"
                ) from None
            if len(cookie_secret) < 32:
                raise ConfigError(
                    "POLARTEP_SERVICE_COOKIE_SECRET must hold at least 32 bytes (64 hex digits)"
                )
        else:
            # A fresh secret per start: browser sessions end with a restart and silently log in again through
            # the hub, which is harmless; tokens in Authorization headers are unaffected.
            cookie_secret = secrets.token_bytes(32)

        log_level = environ.get("POLARTEP_LOG_LEVEL", "").strip().upper() or "INFO"
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"POLARTEP_LOG_LEVEL={log_level[:40]!r} must be DEBUG, INFO, WARNING or ERROR")

        registration = _registration_settings(environ)
        gateway_db_url = environ.get("POLARTEP_GATEWAY_DB_URL", "").strip() or None
        raw_interval = environ.get("POLARTEP_GATEWAY_METER_INTERVAL", "").strip() or "10"
        try:
            gateway_meter_interval = float(raw_interval)
        except ValueError:
            gateway_meter_interval = -1.0
        if not 1 <= gateway_meter_interval <= 3600:
            raise ConfigError(
                f"POLARTEP_GATEWAY_METER_INTERVAL={raw_interval[:40]!r} must be a number of seconds from 1 to 3600"
            )

        return cls(
            prefix=prefix,
            host=parts.hostname,
            port=port,
            service_name=service_name,
            access_scopes=_access_scopes(environ, service_name),
            database_url=database_url_from_env(environ),
            catalogue_path=Path(catalogue) if catalogue else None,
            admin_user=admin_user,
            admin_password=environ.get("POLARTEP_ADMIN_PASSWORD") or None,
            default_plan=default_plan,
            cookie_secret=cookie_secret,
            cookie_secret_from_env=bool(secret_hex),
            log_level=log_level,
            hub_api_url=environ.get("JUPYTERHUB_API_URL", "").strip(),
            hub_api_token=environ.get("JUPYTERHUB_API_TOKEN", "").strip(),
            legal_dir=Path(legal) if (legal := environ.get("POLARTEP_LEGAL_DIR", "").strip()) else None,
            **registration,
            gateway_db_url=gateway_db_url,
            gateway_meter_interval=gateway_meter_interval,
            quota_horizon_minutes=_int_setting(environ, "POLARTEP_QUOTA_HORIZON_MINUTES", 15, 0, 24 * 60),
            auth="oidc" if environ.get("POLARTEP_AUTH", "").strip() == "oidc" else "platform",
            password_reset_minutes=_int_setting(
                environ, "POLARTEP_PASSWORD_RESET_MINUTES", 30, 1, 7 * 24 * 60
            ),
            password_reset_per_hour=_int_setting(
                environ, "POLARTEP_PASSWORD_RESET_PER_HOUR", 10, 0, 1_000_000
            ),
            mail=mail_settings_from_env(environ),
            single_user=environ.get("POLARTEP_SINGLE_USER", "").strip() == "1",
            public_url=_public_url(environ),
            proxy_pid_file=Path(pid) if (pid := environ.get("POLARTEP_PROXY_PID_FILE", "").strip()) else None,
            oidc_group_prefix=environ.get("POLARTEP_OIDC_GROUP_PREFIX", "oidc-").strip(),
            gateway_api_url=environ.get("POLARTEP_GATEWAY_API_URL", "").strip().rstrip("/"),
            mode=environ.get("POLARTEP_MODE", "").strip() or "local",
            homes_root=environ.get("POLARTEP_HOMES_ROOT", "").strip(),
            home_folder_prefix=environ.get("POLARTEP_HOME_FOLDER_PREFIX", "").strip(),
        )

    def home_folder(self, name: str) -> str:
        """The name of ``name``'s local home folder under ``homes_root``: the system user's name when local mode
        runs users as system users (``spawners/system_users.py``), else the account name (Docker and Swarm homes
        are volumes named after the account)."""
        if self.mode != "local" or not self.home_folder_prefix:
            return name
        from polartep_hub.spawners.system_users import system_user_name

        return system_user_name(name, self.home_folder_prefix)

    @property
    def cookies_secure(self) -> bool:
        """Browser cookies carry ``Secure`` when users reach the platform over https (the configured public URL)."""
        return self.public_url.startswith("https://")


def _public_url(environ: Mapping[str, str]) -> str:
    raw = environ.get("POLARTEP_PUBLIC_URL", "").strip()
    if raw and urlsplit(raw).scheme not in ("http", "https"):
        raise ConfigError(f"POLARTEP_PUBLIC_URL={raw[:200]!r} must be an http:// or https:// URL")
    return (raw or "http://127.0.0.1:8000").rstrip("/")


def _int_setting(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} must be a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def _registration_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """Sign-up, password-rule and lock-out settings (``POLARTEP_SIGNUP`` ... ``POLARTEP_LOGIN_LOCKOUT_SECONDS``)."""
    signup = environ.get("POLARTEP_SIGNUP", "").strip().lower() or "1"
    if signup not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"POLARTEP_SIGNUP={signup[:40]!r} must be 1 (sign-up open) or 0 (closed)")
    return {
        "signup_enabled": signup in ("1", "true", "yes", "on"),
        "signup_per_hour": _int_setting(environ, "POLARTEP_SIGNUP_PER_HOUR", 5, 0, 100_000),
        "signup_max_pending": _int_setting(environ, "POLARTEP_SIGNUP_MAX_PENDING", 100, 0, 1_000_000),
        "password_min_length": _int_setting(environ, "POLARTEP_PASSWORD_MIN_LENGTH", 10, 1, 128),
        "login_attempts": _int_setting(environ, "POLARTEP_LOGIN_ATTEMPTS", 5, 0, 1000),
        "login_attempts_per_address": _int_setting(
            environ, "POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS", 20, 0, 100_000
        ),
        "login_max_concurrent_hashes": _int_setting(
            environ, "POLARTEP_LOGIN_MAX_CONCURRENT_HASHES", 4, 1, 256
        ),
        "login_lockout_seconds": _int_setting(environ, "POLARTEP_LOGIN_LOCKOUT_SECONDS", 600, 1, 30 * 86400),
    }


SMTP_SECURITY = ("starttls", "ssl", "none")


def mail_settings_from_env(environ: Mapping[str, str]) -> MailSettings:
    """The outbox's SMTP settings (``POLARTEP_SMTP_*``, ``POLARTEP_MAIL_FROM``); the password is read from its file."""
    security = environ.get("POLARTEP_SMTP_SECURITY", "").strip().lower() or "starttls"
    if security not in SMTP_SECURITY:
        raise ConfigError(
            f"POLARTEP_SMTP_SECURITY={security[:40]!r} must be one of {', '.join(SMTP_SECURITY)}"
        )
    default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
    password = ""
    password_file = environ.get("POLARTEP_SMTP_PASSWORD_FILE", "").strip()
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"POLARTEP_SMTP_PASSWORD_FILE={password_file[:200]!r} cannot be read: {error.strerror}"
            ) from None
    from_address = environ.get("POLARTEP_MAIL_FROM", "").strip() or "polartep@localhost"
    if "@" not in from_address or any(c in from_address for c in "\r\n"):
        raise ConfigError(f"POLARTEP_MAIL_FROM={from_address[:200]!r} must be one e-mail address")
    return MailSettings(
        host=environ.get("POLARTEP_SMTP_HOST", "").strip(),
        port=_int_setting(environ, "POLARTEP_SMTP_PORT", default_port, 1, 65535),
        security=security,
        user=environ.get("POLARTEP_SMTP_USER", "").strip(),
        password=password,
        from_address=from_address,
    )
