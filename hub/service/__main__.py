"""Run the platform service: ``python -m polartep_hub.service`` (JupyterHub starts it as a managed service).

Start-up, in order: read the settings, load the catalogue, check the default plan, upgrade the database to the newest
schema, make sure the admin account exists (if a password is given), then serve HTTP on the service URL. Any problem
before serving is printed to stderr as one clear message and the process exits with status 1.

Environment (the ``JUPYTERHUB_*`` ones are set by the hub for a managed service):

``JUPYTERHUB_SERVICE_URL``
    Where to listen, e.g. ``http://127.0.0.1:8090`` (plain HTTP; default ``http://127.0.0.1:8090``).
``JUPYTERHUB_SERVICE_PREFIX``
    URL prefix of every route, e.g. ``/services/platform/`` (default ``/services/<service name>/``).
``JUPYTERHUB_SERVICE_NAME``
    The service's name in the hub (default ``platform``); users need ``access:services!service=<name>``.
``JUPYTERHUB_OAUTH_ACCESS_SCOPES``
    JSON list of the scopes that grant access (default: ``["access:services!service=<name>"]``).
``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``, ``JUPYTERHUB_OAUTH_CALLBACK_URL``,
``JUPYTERHUB_BASE_URL``, ``JUPYTERHUB_HOST``
    Read by ``jupyterhub.services.auth.HubOAuth`` to check tokens and log browsers in (the first three are required).
``POLARTEP_SERVICE_DB_URL``
    SQLAlchemy URL of the database (default ``sqlite:///./platform.sqlite``; PostgreSQL as
    ``postgresql+psycopg://user:password@host/db``).
``POLARTEP_CATALOGUE``
    Path of the catalogue YAML (default: the shipped ``spawner_profiles/catalogue.yaml``).
``POLARTEP_DEFAULT_PLAN``
    Plan given to accounts created at first sight (default ``trial``; must be a plan of the catalogue).
``POLARTEP_ADMIN_USER``, ``POLARTEP_ADMIN_PASSWORD``
    When the password is set and not empty, the account ``POLARTEP_ADMIN_USER`` (default ``admin``) is made an
    approved admin with that password at every start.
``POLARTEP_SERVICE_COOKIE_SECRET``
    Optional hex key (at least 32 bytes) signing browser-session cookies; without it a random key is made per start,
    so browser sessions re-login through the hub after a restart.
``POLARTEP_LOG_LEVEL``
    Optional log level (default ``INFO``).
``POLARTEP_SIGNUP``, ``POLARTEP_SIGNUP_PER_HOUR``, ``POLARTEP_SIGNUP_MAX_PENDING``
    Sign-up open (``1``, default) or closed (``0``); accepted sign-ups per client address per hour (default 5; 0: no
    limit); no sign-ups while this many accounts await approval (default 100; 0: no bound).
``POLARTEP_PASSWORD_MIN_LENGTH``, ``POLARTEP_LOGIN_ATTEMPTS``, ``POLARTEP_LOGIN_ATTEMPTS_PER_ADDRESS``,
``POLARTEP_LOGIN_LOCKOUT_SECONDS``, ``POLARTEP_LOGIN_MAX_CONCURRENT_HASHES``
    Shortest password accepted at sign-up (default 10); failed logins allowed per (user name, client address)
    (default 5) and per client address across names (default 20) in a window of ``POLARTEP_LOGIN_LOCKOUT_SECONDS``
    (default 600 s; ``login_throttle.py``); argon2 hashes allowed at once (default 4; more get 503).
``POLARTEP_PUBLIC_URL``
    Where users reach the platform; browser cookies are ``Secure`` when it is https.
``POLARTEP_PROXY_PID_FILE``
    The proxy's PID file: ``X-Forwarded-For`` is trusted only on connections from that process (``proxy_peer.py``).
``POLARTEP_OIDC_GROUP_PREFIX``
    The identity provider's group prefix (default ``oidc-``), reserved: no project name may start with it.
``POLARTEP_AUTH``, ``POLARTEP_PASSWORD_RESET_MINUTES``
    ``oidc`` when the identity provider owns passwords (then none can be changed here); how long a reset link works
    (default 30 minutes; links in e-mails point to ``POLARTEP_PUBLIC_URL``).
``POLARTEP_SMTP_HOST``, ``POLARTEP_SMTP_PORT``, ``POLARTEP_SMTP_SECURITY``, ``POLARTEP_SMTP_USER``, ``POLARTEP_SMTP_PASSWORD_FILE``, ``POLARTEP_MAIL_FROM``
    How the mail outbox delivers (``mail_outbox.py``); without a host, mail stays in the outbox.
``POLARTEP_GATEWAY_DB_URL``, ``POLARTEP_GATEWAY_METER_INTERVAL``
    The Dask Gateway's database, which the gateway meter reads (read-only) into the usage ledger every
    ``POLARTEP_GATEWAY_METER_INTERVAL`` seconds (default 10); without the URL there is no meter.
``POLARTEP_QUOTA_HORIZON_MINUTES``
    Quota decisions (``usage/quota.py``): what is left must cover what runs plus the request for this many minutes
    (default 15). The server meter (``usage/meters/servers.py``) runs every ``POLARTEP_GATEWAY_METER_INTERVAL``.
``POLARTEP_SINGLE_USER``
    ``1`` in single-user local mode (the hub sets it): no account but ``POLARTEP_ADMIN_USER`` is created (409).
``POLARTEP_GATEWAY_API_URL``, ``POLARTEP_MODE``, ``POLARTEP_HOMES_ROOT``, ``POLARTEP_HOME_FOLDER_PREFIX``
    For erasure: the gateway's private API (its platform routes stop a user's clusters; unset: no gateway), and
    where homes live (local: folders under the homes root, named ``<prefix><name>`` as the system users; docker/swarm: the volume ``polartep-home-<name>``).
``POLARTEP_PROCESSORS_DIR``
    Where published processors' notebooks are kept (``<dir>/notebooks``, content-addressed); the hub passes
    ``<state_dir>/processors``. Unset: publishing answers 503.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

from polartep_hub.catalogue import CatalogueError, load_catalogue
from polartep_hub.service.config import ConfigError, ServiceConfig

# How long a thread may hold the interpreter before one that waits gets it: Python's own 5 ms, set explicitly so that
# bench/quota.py serves the service as this module does. It was 1 ms while every submitted run started its own driver
# at once (twenty drivers competed with the requests); since drivers take turns (processors/execution.py,
# RUNS_DRIVEN_AT_ONCE) that contention is gone, and in the cold-run bisect of bench/RESULTS.md ("Processor runs",
# s13) a cold run was faster with 5 ms than with 1 ms in 3 of 4 interleaved rounds (more switching, no gain).
GIL_SWITCH_INTERVAL_S = 0.005

log = logging.getLogger("polartep_hub.service")


class RedactResetTokens(logging.Filter):
    """Keep password-reset tokens (``?token=...`` of the reset link) out of uvicorn's access log."""

    _TOKEN = re.compile(r"(token=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "token=" in a for a in args):
            record.args = tuple(
                self._TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in args
            )
        return True


def _fail(message: str) -> int:
    print(f"polartep platform service: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Start the service from the environment; returns the exit status (1 for any start-up problem)."""
    if argv:
        return _fail(
            f"takes no arguments (got {' '.join(argv)[:200]}); it is configured by environment variables"
        )
    try:
        config = ServiceConfig.from_env()
    except ConfigError as e:
        return _fail(str(e))
    logging.basicConfig(level=config.log_level, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    # Alembic announces each of its plugins at INFO; only the migrations it runs are worth a line.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(RedactResetTokens())
    try:
        catalogue = load_catalogue(config.catalogue_path)
    except CatalogueError as e:
        return _fail(str(e))
    if config.default_plan not in catalogue.plans:
        return _fail(
            f"POLARTEP_DEFAULT_PLAN={config.default_plan!r} is not a plan of {catalogue.source}; "
            f"known plans: {', '.join(catalogue.plans)}"
        )

    # Imported late: the checks above should answer quickly, without loading the web and database stacks.
    import uvicorn

    from polartep_hub.accounts import store as accounts
    from polartep_hub.accounts.passwords import Passwords
    from polartep_hub.service.app import create_app
    from polartep_hub.service.db import make_engine, make_sessionmaker, upgrade_to_head
    from polartep_hub.service.web.hubauth import HubIdentityProvider

    try:
        identity_provider = HubIdentityProvider.from_env()
    except ValueError as e:
        return _fail(str(e))

    try:
        engine = make_engine(config.database_url)
        upgrade_to_head(engine)
    # Any driver or migration error: say what failed, without the URL (it may hold a password).
    except Exception as e:
        return _fail(f"cannot prepare the database: {type(e).__name__}: {str(e)[:500]}")

    passwords = Passwords(max_concurrent=config.login_max_concurrent_hashes)
    passwords.warm_up()
    if config.admin_password:
        try:
            with make_sessionmaker(engine)() as session:
                accounts.ensure_admin_account(
                    session, passwords, config.admin_user, config.admin_password, plan=config.default_plan
                )
        except Exception as e:
            return _fail(
                f"cannot set up the admin account {config.admin_user!r}: {type(e).__name__}: {str(e)[:500]}"
            )

    from polartep_hub.service.hub_api import HubAPI

    hub_api = HubAPI(config.hub_api_url, config.hub_api_token) if config.hub_api_url else None
    app = create_app(
        config,
        catalogue,
        identity_provider=identity_provider,
        passwords=passwords,
        engine=engine,
        hub_api=hub_api,
    )
    if not config.cookie_secret_from_env:
        log.info("POLARTEP_SERVICE_COOKIE_SECRET not set: browser sessions last until the service restarts")
    log.info(
        "platform service %s on http://%s:%d%s (catalogue %s, database %s)",
        config.service_name,
        config.host,
        config.port,
        config.prefix,
        catalogue.fingerprint,
        engine.url.render_as_string(hide_password=True),
    )
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # access_log stays on: uvicorn logs method, path and status only, never headers or cookies.
    uvicorn.run(
        # No proxy_headers: uvicorn would trust X-Forwarded-For from any local process; proxy_peer.py decides.
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
