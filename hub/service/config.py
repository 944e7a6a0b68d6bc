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
    login_lockout_seconds: int = 600
    # The Dask Gateway's database, read by the gateway meter (``accounting/gateway_meter.py``); None: no meter.
    gateway_db_url: str | None = field(default=None, repr=False)
    gateway_meter_interval: float = 10.0
    # Erasure (personal_data.py): the gateway's private API, whose platform routes stop a user's clusters ("" when
    # no gateway runs), and where homes live: the mode ("local": folders under homes_root; "docker"/"swarm": the
    # volume polartep-home-<name>) so that "erased" is said only once the home is really gone.
    gateway_api_url: str = ""
    mode: str = "local"
    homes_root: str = ""

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
            gateway_api_url=environ.get("POLARTEP_GATEWAY_API_URL", "").strip().rstrip("/"),
            mode=environ.get("POLARTEP_MODE", "").strip() or "local",
            homes_root=environ.get("POLARTEP_HOMES_ROOT", "").strip(),
        )


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
        "login_lockout_seconds": _int_setting(environ, "POLARTEP_LOGIN_LOCKOUT_SECONDS", 600, 1, 30 * 86400),
    }
