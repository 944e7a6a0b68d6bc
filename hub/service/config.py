"""The platform service's settings, read from the environment the hub gives it.

Rules this module guarantees:

* This is the only place in ``polartep_hub.service`` that reads environment variables (``HubOAuth`` reads the
  standard ``JUPYTERHUB_*`` OAuth variables itself; see ``hubauth.py``). The full list is in ``__main__.py``.
* Every value is checked here, once, at start-up; a bad value raises ``ConfigError`` naming the variable.
* A value the hub also has is not declared here a second time: its default, bounds and parsing come from its trait
  in ``polartep_hub.settings`` (``env_setting``), which the hub's ``platform_service_definition`` passes on under
  the same variable. What is declared here is the service's own (its URL, cookie secret, the hub's API) and what
  the hub derives for it (``POLARTEP_SINGLE_USER``, ``POLARTEP_HOMES_ROOT``, ...).
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
from typing import Any
from urllib.parse import urlsplit

from polartep_hub.account_names import ACCOUNT_NAME_PATTERN, ACCOUNT_NAME_RULE
from polartep_hub.data.object_store import ObjectStoreSettings, read_credentials_file

DEFAULT_DATABASE_URL = "sqlite:///./platform.sqlite"  # the hub's default lies in its state folder
DEFAULT_SERVICE_NAME = "platform"
DEFAULT_SERVICE_URL = "http://127.0.0.1:8090"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the environment variable and what to fix."""


def hub_setting(name: str, environ: Mapping[str, str]) -> Any:
    """The hub's setting ``name`` as the hub passed it in ``environ`` (its trait's default when not passed), parsed
    and bounded by its trait in ``polartep_hub.settings``; a bad value raises ``ConfigError`` naming the variable."""
    from traitlets import TraitError

    from polartep_hub.settings import env_setting

    try:
        return env_setting(name, environ)
    except TraitError as error:
        raise ConfigError(str(error)) from None


def _default_of(name: str) -> Any:
    """The hub setting ``name``'s declared default (imported late: the migrations import this module)."""
    from polartep_hub.settings import setting_default

    return setting_default(name)


def _hub_default(name: str) -> Any:
    """A dataclass field whose default is the hub setting ``name``'s declared default."""
    return field(default_factory=lambda: _default_of(name))


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
    port: int = field(default_factory=lambda: USUAL_SMTP_PORTS[_default_of("smtp_security")])
    security: str = _hub_default("smtp_security")  # "starttls", "ssl" or "none"
    user: str = ""
    password: str = field(default="", repr=False)
    from_address: str = _hub_default("mail_from")

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
    admin_user: str = _hub_default("admin_user")
    admin_password: str | None = field(default=None, repr=False)
    default_plan: str = _hub_default("default_plan")
    cookie_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    cookie_secret_from_env: bool = False
    log_level: str = _hub_default("log_level")
    legal_dir: Path | None = None  # None: the shipped terms and privacy statement
    hub_api_url: str = ""  # JupyterHub's REST API, for group sync and erasure ("" when not run by a hub)
    hub_api_token: str = field(default="", repr=False)
    # Registration (signup.py) and password login (accounts.check_password); see hub/settings.py for each.
    signup_enabled: bool = _hub_default("signup")
    signup_per_hour: int = _hub_default("signup_per_hour")
    signup_max_pending: int = _hub_default("signup_max_pending")
    password_min_length: int = _hub_default("password_min_length")
    login_attempts: int = _hub_default("login_attempts")
    login_attempts_per_address: int = _hub_default("login_attempts_per_address")
    login_lockout_seconds: int = _hub_default("login_lockout_seconds")
    login_max_concurrent_hashes: int = _hub_default("login_max_concurrent_hashes")
    # Where users reach the platform (links in e-mails point there); cookies are Secure when it is https (never
    # guessed from forwarded headers).
    public_url: str = field(default_factory=lambda: _public_url({}, _default_of("mode")))
    # The proxy's PID file: X-Forwarded-For is trusted only on connections from that process (proxy_peer.py).
    proxy_pid_file: Path | None = None
    # The identity provider's group prefix, reserved for its groups whatever the auth mode (projects.py).
    oidc_group_prefix: str = _hub_default("oidc_group_prefix")
    # The Dask Gateway's database, read by the gateway meter (``accounting/gateway_meter.py``); None: no meter.
    gateway_db_url: str | None = field(default=None, repr=False)
    gateway_meter_interval: float = _hub_default("gateway_meter_interval")
    # Quota decisions (usage/quota.py): what is left must cover what runs plus the request for this long.
    quota_horizon_minutes: int = _hub_default("quota_horizon_minutes")
    # Storage (usage/storage.py): how often homes are sampled, and the storage class they count in.
    storage_sample_interval: float = _hub_default("storage_sample_interval")
    home_storage_class: str = _hub_default("home_storage_class")
    # Passwords and mail (password_reset.py, mail_outbox.py); see hub/settings.py for each.
    auth: str = _hub_default(
        "auth"
    )  # "platform" (passwords here) or "oidc" (the identity provider owns them)
    password_reset_minutes: int = _hub_default("password_reset_minutes")
    password_reset_per_hour: int = _hub_default("password_reset_per_hour")  # per client address; 0: no limit
    mail: MailSettings = field(default_factory=lambda: MailSettings())
    # Single-user local mode (polartep_hub.spawners.single_user): no account but admin_user's is ever created.
    single_user: bool = False
    # Erasure (personal_data.py): the gateway's private API, whose platform routes stop a user's clusters ("" when
    # no gateway runs), and where homes live: the mode ("local": folders under homes_root; "docker"/"swarm": the
    # volume polartep-home-<name>) so that "erased" is said only once the home is really gone.
    gateway_api_url: str = ""
    mode: str = _hub_default("mode")
    homes_root: str = ""
    home_folder_prefix: str = ""  # local homes are <homes_root>/<system user name> when set
    # Processors (processors/): where published notebooks are kept, and how runs reach the invoker's Dask Gateway
    # cluster (the gateway's HTTP proxy and its TLS proxy for schedulers; "" when no gateway runs).
    processors_dir: Path | None = None
    gateway_url: str = ""
    gateway_proxy_address: str = ""
    processor_run_warm_seconds: int = _hub_default("processor_run_warm_seconds")
    # Datasets (data/storage.py): where each storage class keeps them ("" datasets_dir: STATE/data under the
    # working directory, as in tests) and the per-class roots (class=/path,...).
    datasets_dir: str = ""
    dataset_roots: str = ""
    # The object class on an S3-compatible store (data/object_store.py); None: the object class is a folder root.
    object_store: ObjectStoreSettings | None = None
    # Federated STAC search (data/federation.py): name=URL,... and the wait for each peer.
    stac_peers: str = _hub_default("stac_peers")
    stac_peer_timeout: float = _hub_default("stac_peer_timeout")

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

        admin_user = hub_setting("admin_user", environ)
        if not re.fullmatch(ACCOUNT_NAME_PATTERN, admin_user):
            raise ConfigError(
                f"POLARTEP_ADMIN_USER={shlex.quote(admin_user[:80])} is not a valid account name "
                f"({ACCOUNT_NAME_RULE})"
            )

        default_plan = hub_setting("default_plan", environ)

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

        log_level = hub_setting("log_level", environ)
        registration = _registration_settings(environ)
        gateway_db_url = environ.get("POLARTEP_GATEWAY_DB_URL", "").strip() or None

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
            gateway_meter_interval=hub_setting("gateway_meter_interval", environ),
            quota_horizon_minutes=hub_setting("quota_horizon_minutes", environ),
            storage_sample_interval=hub_setting("storage_sample_interval", environ),
            home_storage_class=hub_setting("home_storage_class", environ),
            auth=hub_setting("auth", environ),
            password_reset_minutes=hub_setting("password_reset_minutes", environ),
            password_reset_per_hour=hub_setting("password_reset_per_hour", environ),
            mail=mail_settings_from_env(environ),
            single_user=_flag(environ, "POLARTEP_SINGLE_USER"),
            public_url=_public_url(environ, hub_setting("mode", environ)),
            proxy_pid_file=Path(pid) if (pid := environ.get("POLARTEP_PROXY_PID_FILE", "").strip()) else None,
            oidc_group_prefix=hub_setting("oidc_group_prefix", environ),
            gateway_api_url=environ.get("POLARTEP_GATEWAY_API_URL", "").strip().rstrip("/"),
            mode=hub_setting("mode", environ),
            homes_root=environ.get("POLARTEP_HOMES_ROOT", "").strip(),
            home_folder_prefix=environ.get("POLARTEP_HOME_FOLDER_PREFIX", "").strip(),
            processors_dir=Path(pd) if (pd := environ.get("POLARTEP_PROCESSORS_DIR", "").strip()) else None,
            gateway_url=environ.get("POLARTEP_PROCESSOR_GATEWAY_URL", "").strip().rstrip("/"),
            gateway_proxy_address=environ.get("POLARTEP_PROCESSOR_GATEWAY_PROXY", "").strip(),
            processor_run_warm_seconds=hub_setting("processor_run_warm_seconds", environ),
            datasets_dir=environ.get("POLARTEP_DATASETS_DIR", "").strip(),
            dataset_roots=hub_setting("dataset_roots", environ),
            object_store=_object_store_settings(environ),
            stac_peers=hub_setting("stac_peers", environ),
            stac_peer_timeout=hub_setting("stac_peer_timeout", environ),
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


def _object_store_settings(environ: Mapping[str, str]) -> ObjectStoreSettings | None:
    """The object store's settings with its key pair (from the credentials file, else the two variables); None when
    no endpoint is set. ``ConfigError`` names what is missing, never a key."""
    endpoint = hub_setting("object_store_endpoint", environ)
    if not endpoint:
        return None
    bucket = hub_setting("object_store_bucket", environ)
    if not bucket:
        raise ConfigError(
            "POLARTEP_OBJECT_STORE_BUCKET must name the bucket when POLARTEP_OBJECT_STORE_ENDPOINT is set"
        )
    credentials_file = hub_setting("object_store_credentials_file", environ)
    if credentials_file:
        try:
            key_id, secret = read_credentials_file(Path(credentials_file))
        except ValueError as error:
            raise ConfigError(f"POLARTEP_OBJECT_STORE_CREDENTIALS_FILE: {error}") from None
    else:
        key_id = environ.get("POLARTEP_OBJECT_STORE_ACCESS_KEY_ID", "").strip()
        secret = environ.get("POLARTEP_OBJECT_STORE_SECRET_ACCESS_KEY", "").strip()
        if not key_id or not secret:
            raise ConfigError(
                "the object store needs its key pair: set POLARTEP_OBJECT_STORE_CREDENTIALS_FILE, or both "
                "POLARTEP_OBJECT_STORE_ACCESS_KEY_ID and POLARTEP_OBJECT_STORE_SECRET_ACCESS_KEY"
            )
    return ObjectStoreSettings(
        endpoint=endpoint,
        bucket=bucket,
        region=hub_setting("object_store_region", environ),
        public_endpoint=hub_setting("object_store_public_endpoint", environ),
        access_key_id=key_id,
        secret_access_key=secret,
        url_seconds=hub_setting("object_store_url_seconds", environ),
    )


def _public_url(environ: Mapping[str, str], mode: str) -> str:
    from polartep_hub.settings import default_public_url

    raw = environ.get("POLARTEP_PUBLIC_URL", "").strip()
    if raw and urlsplit(raw).scheme not in ("http", "https"):
        raise ConfigError(f"POLARTEP_PUBLIC_URL={raw[:200]!r} must be an http:// or https:// URL")
    return (raw or default_public_url(mode)).rstrip("/")


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """A boolean the hub derives for the service (off when not passed), read by the platform's one parser."""
    from traitlets import TraitError

    from polartep_hub.settings import parse_env_bool

    raw = environ.get(name, "")
    try:
        return parse_env_bool(name, raw) if raw.strip() else False
    except TraitError as error:
        raise ConfigError(str(error)) from None


def _registration_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """Sign-up, password-rule and lock-out settings (``POLARTEP_SIGNUP`` ... ``POLARTEP_LOGIN_LOCKOUT_SECONDS``)."""
    return {
        "signup_enabled": hub_setting("signup", environ),
        **{
            name: hub_setting(name, environ)
            for name in (
                "signup_per_hour",
                "signup_max_pending",
                "password_min_length",
                "login_attempts",
                "login_attempts_per_address",
                "login_max_concurrent_hashes",
                "login_lockout_seconds",
            )
        },
    }


# The port each ``smtp_security`` uses when ``smtp_port`` is 0 (the hub then passes POLARTEP_SMTP_PORT empty).
USUAL_SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def mail_settings_from_env(environ: Mapping[str, str]) -> MailSettings:
    """The outbox's SMTP settings (``POLARTEP_SMTP_*``, ``POLARTEP_MAIL_FROM``); the password is read from its file."""
    security = hub_setting("smtp_security", environ)
    password = ""
    password_file = hub_setting("smtp_password_file", environ)
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"POLARTEP_SMTP_PASSWORD_FILE={password_file[:200]!r} cannot be read: {error.strerror}"
            ) from None
    from_address = hub_setting("mail_from", environ)
    if "@" not in from_address or any(c in from_address for c in "\r\n"):
        raise ConfigError(f"POLARTEP_MAIL_FROM={from_address[:200]!r} must be one e-mail address")
    return MailSettings(
        host=hub_setting("smtp_host", environ),
        port=hub_setting("smtp_port", environ) or USUAL_SMTP_PORTS[security],
        security=security,
        user=hub_setting("smtp_user", environ),
        password=password,
        from_address=from_address,
    )
