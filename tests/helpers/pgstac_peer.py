"""A real, independent STAC API for the federation tests and the catalogue bench: stac-fastapi-pgstac on PostgreSQL.

``PgstacPeer`` runs the reference STAC server of the STAC community, not a second copy of the platform:

* the database is a PostgreSQL cluster in a temporary folder (``tests/postgres_server.py``: Debian's binaries,
  127.0.0.1 only), with PostGIS from Debian's ``postgresql-15-postgis-3``; ``pypgstac migrate`` makes the pgstac
  schema in it;
* collections and items are loaded with ``pypgstac load`` (the loader pgstac ships), from newline-delimited JSON;
* the API is stac-fastapi-pgstac served by uvicorn on 127.0.0.1 and a free port, as a child process of its own.

stac-fastapi-pgstac and pypgstac live in their own virtual environment (``.venv-pgstac``, built by ``make install``
from ``tests/helpers/pgstac-requirements.txt``): stac-fastapi-pgstac's ``server`` extra pins uvicorn exactly, and
pypgstac pins cachetools, below what the platform's environment holds, so sharing one environment would change the
platform's own server. Nothing of the platform is imported into the peer's process.

Rules this module guarantees:

* ``missing_reason()`` says what is not installed (the environment, PostgreSQL, PostGIS) and how to install it, or
  None; ``start()`` raises ``PgstacUnavailable`` with that message.
* ``stop_api()`` stops the API process only (a dead peer: its port refuses connections); ``start_api()`` starts it
  again on the same port. ``slowed()`` holds an exclusive lock on pgstac's items table, so every search of the real
  server waits on its database until the block ends (a slow peer). ``stop()`` stops everything and deletes the
  cluster; it is safe to call twice. Every process started here is stopped by its own id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.postgres_server import INSTALL_HINT as POSTGRES_HINT
from tests.postgres_server import PostgresServer, find_bin_dir

REPO = Path(__file__).resolve().parents[2]
# The peer's own environment; POLARTEP_PGSTAC_VENV points elsewhere (e.g. one shared by several checkouts).
VENV = Path(os.environ.get("POLARTEP_PGSTAC_VENV") or REPO / ".venv-pgstac")
REQUIREMENTS = REPO / "tests" / "helpers" / "pgstac-requirements.txt"
INSTALL_HINT = (
    "the pgstac peer needs PostGIS for PostgreSQL 15 (Debian's postgresql-15-postgis-3: `make test-deps` installs "
    f"it) and the environment {VENV} with stac-fastapi-pgstac and pypgstac (`make install` builds it); set "
    "POLARTEP_SKIP_PGSTAC=1 to skip these tests (not honoured when CI is set)"
)


class PgstacUnavailable(RuntimeError):
    """PostgreSQL, PostGIS or the peer's environment is missing, or the peer did not start."""


def _postgis_installed(bin_dir: Path) -> bool:
    # Debian keeps the extension's control file beside the server's version: /usr/share/postgresql/<v>/extension/.
    return (Path("/usr/share/postgresql") / bin_dir.parent.name / "extension" / "postgis.control").exists()


def missing_reason() -> str | None:
    """What is missing for ``PgstacPeer`` and how to install it, or None when everything is there."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return POSTGRES_HINT
    if not _postgis_installed(bin_dir):
        return f"no PostGIS for PostgreSQL {bin_dir.parent.name}: {INSTALL_HINT}"
    for program in ("pypgstac", "uvicorn"):
        if not (VENV / "bin" / program).exists():
            return f"{VENV / 'bin' / program} is missing: {INSTALL_HINT}"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PgstacPeer:
    """stac-fastapi-pgstac on its own PostgreSQL database; ``url`` is the API's root once started."""

    def __init__(self, postgres: PostgresServer | None = None, database: str = "pgstac") -> None:
        self._own_postgres = postgres is None
        self.postgres = postgres
        self.database = database
        self.folder: Path | None = None
        self.port: int | None = None
        self._api: subprocess.Popen[bytes] | None = None

    # -- life cycle ------------------------------------------------------------------------------------------------

    def start(self) -> PgstacPeer:
        """Start PostgreSQL (unless one was given), make the pgstac schema, and start the API; returns self."""
        reason = missing_reason()
        if reason is not None:
            raise PgstacUnavailable(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="polartep-pgstac-"))
        try:
            if self.postgres is None:
                self.postgres = PostgresServer().start()
            self.postgres.create_database(self.database)
            self._pypgstac("migrate")
            self.port = _free_port()
            self.start_api()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the API and, when this peer started it, the PostgreSQL cluster; delete the temporary folder."""
        self.stop_api()
        if self.postgres is not None and self._own_postgres:
            self.postgres.stop()
        elif self.postgres is not None and self.postgres.port is not None:
            self.postgres.drop_database(self.database)
        self.postgres = None if self._own_postgres else self.postgres
        if self.folder is not None:
            for path in sorted(self.folder.glob("*"), reverse=True):
                path.unlink(missing_ok=True)
            self.folder.rmdir()
            self.folder = None

    def __enter__(self) -> PgstacPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_api(self, timeout: float = 60.0) -> None:
        """Start stac-fastapi-pgstac (uvicorn, one process) on ``self.port`` and wait until it answers."""
        assert self.folder is not None and self.postgres is not None and self.port is not None
        environment = {
            "PATH": f"{VENV / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.folder),
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.postgres.port),
            "PGUSER": self.postgres.superuser,
            "PGPASSWORD": "unused",  # the test cluster trusts local connections; the setting is required
            "PGDATABASE": self.database,
            "STAC_FASTAPI_TITLE": "pgstac peer",
            "STAC_FASTAPI_DESCRIPTION": "stac-fastapi-pgstac started by the Polar TEP tests",
            "STAC_FASTAPI_LANDING_ID": "pgstac-peer",
            "STAC_FASTAPI_VERSION": "test",
        }
        log = open(self.folder / "api.log", "ab")  # noqa: SIM115 (the child writes to it until it ends)
        with log:
            self._api = subprocess.Popen(
                [
                    str(VENV / "bin" / "uvicorn"),
                    "stac_fastapi.pgstac.app:create_app",
                    "--factory",
                    "--host=127.0.0.1",
                    f"--port={self.port}",
                    "--log-level=warning",
                    "--no-access-log",
                ],
                # Its own folder as working directory: pydantic-settings would read a stray ``.env`` elsewhere.
                cwd=self.folder,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._api.poll() is not None:
                raise PgstacUnavailable(
                    f"stac-fastapi-pgstac exited ({self._api.returncode}):\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}_mgmt/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise PgstacUnavailable(
            f"stac-fastapi-pgstac did not answer within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop_api(self) -> None:
        """Stop the API process (its port then refuses connections); the database stays."""
        if self._api is None:
            return
        if self._api.poll() is None:
            os.killpg(self._api.pid, signal.SIGTERM)  # the session of the uvicorn process this peer started
            try:
                self._api.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._api.pid, signal.SIGKILL)
                self._api.wait(10)
        self._api = None

    # -- use -------------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API's root, ending in ``/``."""
        assert self.port is not None, "peer not started"
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_pid(self) -> int:
        """The process id of the running API (uvicorn, one process)."""
        assert self._api is not None, "API not running"
        return self._api.pid

    @property
    def dsn(self) -> str:
        assert self.postgres is not None and self.postgres.port is not None, "peer not started"
        return f"postgresql://{self.postgres.superuser}@127.0.0.1:{self.postgres.port}/{self.database}"

    def load(self, collections: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]]) -> None:
        """Load STAC collections, then items (which name their ``collection``), with ``pypgstac load``."""
        assert self.folder is not None, "peer not started"
        for kind, documents in (("collections", collections), ("items", items)):
            path = self.folder / f"{kind}.ndjson"
            with path.open("w") as out:
                for document in documents:
                    out.write(json.dumps(document) + "\n")
            self._pypgstac("load", kind, str(path), "--method=upsert")
            path.unlink()

    @contextlib.contextmanager
    def slowed(self) -> Iterator[None]:
        """While inside, every item search of the running API waits for pgstac's items table (an exclusive lock)."""
        import psycopg

        with psycopg.connect(self.dsn) as connection:
            connection.execute("LOCK TABLE pgstac.items IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                connection.rollback()

    def log_tail(self) -> str:
        try:
            return (self.folder / "api.log").read_text(errors="replace")[-3000:]  # type: ignore[operator]
        except (OSError, TypeError):
            return ""

    def _pypgstac(self, *args: str) -> None:
        result = subprocess.run(
            [str(VENV / "bin" / "pypgstac"), *args, f"--dsn={self.dsn}"],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.folder,
        )
        if result.returncode != 0:
            raise PgstacUnavailable(
                f"pypgstac {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
