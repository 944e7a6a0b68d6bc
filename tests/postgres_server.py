"""A throw-away PostgreSQL server for tests, run from the Debian binaries under ``/usr/lib/postgresql/<version>/bin``.

Rules this module guarantees:

* The cluster lives in a fresh directory under ``/tmp`` (mode 0755, so the ``postgres`` user can reach it), listens
  only on 127.0.0.1 (a free port) and on a unix socket inside that directory, trusts local connections, and runs with
  durability off (``fsync=off``): it is for tests only.
* PostgreSQL refuses to run as root: as root, every server command runs as the ``postgres`` system user
  (``runuser``); otherwise as the current user.
* ``stop()`` stops the server and deletes the directory; it is safe to call twice.
* When no binaries are installed, ``find_bin_dir()`` returns None and ``start()`` raises ``PostgresUnavailable``
  with a message saying how to install them.

Reusable outside ``tests/service``: ``PostgresServer().start()`` then ``.create_database(name)`` gives a SQLAlchemy URL.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; run `make test` (it installs Debian's "
    "postgresql package), or `apt-get install -y postgresql`, or set POLARTEP_SKIP_POSTGRES=1 to skip these tests "
    "(not honoured when CI is set)"
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine, or the server did not start."""


def find_bin_dir(root: Path = Path("/usr/lib/postgresql")) -> Path | None:
    """The ``bin`` directory of the highest PostgreSQL version installed, or None."""
    candidates = []
    for path in root.glob("*/bin"):
        version = path.parent.name
        if (
            re.fullmatch(r"[0-9]+(\.[0-9]+)?", version)
            and (path / "initdb").exists()
            and (path / "pg_ctl").exists()
        ):
            candidates.append((tuple(int(p) for p in version.split(".")), path))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster, started on demand and removed by ``stop()``."""

    superuser = "postgres"

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.base_dir: Path | None = None
        self.port: int | None = None
        self._as_postgres = os.geteuid() == 0

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> PostgresServer:
        """Create the cluster and start the server; returns self."""
        if self.bin_dir is None:
            raise PostgresUnavailable(INSTALL_HINT)
        self.base_dir = Path(tempfile.mkdtemp(prefix="polartep-pg-", dir="/tmp"))
        self.base_dir.chmod(0o755)
        (self.base_dir / "sockets").mkdir()
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            for path in (self.base_dir, self.base_dir / "sockets"):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        last_error = ""
        for _ in range(attempts):
            # The port is free now but could be taken before the server binds it: retry with another.
            self.port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {self.port} -k {self.base_dir / 'sockets'} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
            )
            result = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30", "-o", options, "start",
                check=False,
            )  # fmt: skip
            if result.returncode == 0:
                return self
            last_error = result.stdout + result.stderr + self._log_tail()
        self.stop()
        raise PostgresUnavailable(f"PostgreSQL did not start:\n{last_error}")

    def stop(self) -> None:
        """Stop the server (without waiting for clients) and delete the cluster."""
        if self.base_dir is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self.port = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "postgres.log"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL for ``database`` on this server (as the superuser, no password)."""
        assert self.port is not None, "server not started"
        return f"{driver}://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally as a copy of ``template``) and return its SQLAlchemy URL."""
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its clients."""
        from psycopg import sql

        self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- internals -------------------------------------------------------------------------------------------------

    def _execute(self, statement: object) -> None:
        import psycopg

        assert self.port is not None, "server not started"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(statement)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/tmp")
        if check and result.returncode != 0:
            raise PostgresUnavailable(
                f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "\n--- postgres.log ---\n" + self.log_file.read_text(errors="replace")[-3000:]
        except (OSError, AssertionError):
            return ""
