"""A real Polar TEP on 127.0.0.1 free ports for tests and benchmarks: proxy, hub and platform service.

``RunningPlatform`` starts the same processes ``polartep up`` starts (the npm proxy on its own, then JupyterHub with
``jupyterhub_config.py``, which starts the platform service) in a private state folder, and offers one
``api`` helper that every test uses. Nothing is faked: logins go through the real authenticator and service.

With ``subdomains=True`` (or in Docker mode with a host name as ``public_host``) the platform serves each user's
server on an origin of its own (``subdomain_host``, ``polartep_hub/user_origins.py``) under ``public_host``
(``localhost`` unless given, e.g. ``tep.localhost``): the hub is at ``http://<public_host>:<port>``, Alice's server
at ``http://alice.<public_host>:<port>/user/alice/``. ``api`` then sends ``/user/<name>/...`` paths to that user's
host, and every request reaches ``*.localhost`` names on 127.0.0.1 (``helpers/localhost_names.py``), so tests call
it exactly as before.
Local mode as root runs each user as a system user: every ``RunningPlatform`` has its own short prefix
(``t<4 hex>-``, so ``t1a2b-alice``) and its own homes folder under ``/tmp``, and ``stop()`` removes both, so platforms
running at once never share a system user and none is left behind.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from polartep_hub.proxy_process import start_proxy
from polartep_hub.settings import REPO_ROOT, PlatformSettings
from polartep_hub.spawners.system_users import (
    COMMENT_PREFIX,
    SystemUserError,
    delete_system_user,
    system_user_name,
    system_users_with_prefix,
)
from tests.helpers import localhost_names

ADMIN_PASSWORD = "admin-test-password-1"  # noqa: S105 (throw-away test platform)


_USER_PATH = re.compile(r"/user/([^/?#]+)(?:[/?#]|$)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together so none is handed out twice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class RunningPlatform:
    """One platform in ``root``; ``start()`` brings it up, ``stop()`` takes everything down."""

    root: Path
    mode: str = "local"
    extra_env: dict[str, str] = field(default_factory=dict)
    # Every user's server on its own origin (subdomain_host); None: the mode's default (as polartep up).
    subdomains: bool | None = None
    public_host: str = ""  # the hub's host name: 127.0.0.1, or localhost with subdomains, unless given
    env: dict[str, str] = field(init=False)
    settings: PlatformSettings = field(init=False)
    hub_process: subprocess.Popen | None = field(default=None, init=False)
    proxy_process: subprocess.Popen | None = field(default=None, init=False)
    _admin_token: str | None = field(default=None, init=False)
    system_user_prefix: str = field(default="", init=False)
    homes: Path = field(default=Path(), init=False)

    def __post_init__(self) -> None:
        public, proxy_api, hub, service, gateway, gateway_tcp, gateway_api = free_ports(7)
        state = self.root / "state"
        public_host = self.public_host or ("localhost" if self.subdomains else "127.0.0.1")
        # Local mode as root: system users of this platform only (concurrent platforms must never share one), with
        # homes in a folder of their own that users can reach (pytest's folders are 0700; the state folder too).
        self.system_user_prefix = f"t{secrets.token_hex(2)}-"
        while any(entry.pw_name.startswith(self.system_user_prefix) for entry in pwd.getpwall()):
            self.system_user_prefix = f"t{secrets.token_hex(2)}-"
        self.homes = Path(tempfile.mkdtemp(prefix=f"polartep-{self.system_user_prefix}homes-", dir="/tmp"))
        self.homes.chmod(0o711)  # as the platform makes a missing homes folder (mkdtemp's is 0700)
        self.env = {
            **os.environ,
            "POLARTEP_MODE": self.mode,
            "POLARTEP_STATE_DIR": str(state),
            "POLARTEP_PUBLIC_URL": f"http://{public_host}:{public}",
            "POLARTEP_PROXY_API_PORT": str(proxy_api),
            "POLARTEP_HUB_PORT": str(hub),
            "POLARTEP_SERVICE_PORT": str(service),
            "POLARTEP_GATEWAY_PORT": str(gateway),
            "POLARTEP_GATEWAY_TCP_PORT": str(gateway_tcp),
            "POLARTEP_GATEWAY_API_PORT": str(gateway_api),
            "POLARTEP_ADMIN_USER": "admin",
            "POLARTEP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "POLARTEP_SYSTEM_USER_PREFIX": self.system_user_prefix,
            "POLARTEP_HOMES_DIR": str(self.homes),
            "PYTHONUNBUFFERED": "1",
            **(
                {}
                if self.subdomains is None
                else {"POLARTEP_SUBDOMAIN_HOST": "on" if self.subdomains else "off"}
            ),
            **self.extra_env,
        }
        # Settings read the same variables the hub process will see.
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            self.settings = PlatformSettings()
            # Defaults are computed lazily: read them now, while the environment is the hub's.
            for name in self.settings.traits(config=True):
                getattr(self.settings, name)
            self.settings.proxy_auth_token  # noqa: B018  (create the shared secret before either process reads it)
            self.system_user_prefix = self.settings.system_user_prefix  # extra_env may choose its own
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def url(self) -> str:
        return self.settings.public_url

    def home_of(self, user: str) -> Path:
        """The user's home folder in local mode (``<homes>/<system user>``, or ``<homes>/<user>`` single-user)."""
        if self.settings.isolates_users:
            return Path(self.settings.homes_dir) / system_user_name(user, self.system_user_prefix)
        return Path(self.settings.homes_dir) / user

    @property
    def hub_log(self) -> Path:
        return self.root / "hub.log"

    # Processes ------------------------------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> RunningPlatform:
        self.proxy_process = start_proxy(self.settings, log_path=self.root / "proxy.log")
        self.start_hub(timeout)
        self.admin_token  # noqa: B018  (the administrator accepts the current terms, so it can spawn)
        return self

    @contextlib.contextmanager
    def running(self, timeout: float = 60) -> Iterator[RunningPlatform]:
        """Start (ready within ``timeout`` seconds), yield, and always stop; the hub's log is printed when start-up
        fails."""
        try:
            self.start(timeout)
        except Exception:
            print(self.log_tail())
            self.stop()
            raise
        try:
            yield self
        finally:
            self.stop()

    def start_hub(self, timeout: float | None = None) -> None:
        # 60 s; POLARTEP_TEST_START_TIMEOUT raises it for one run on a machine busy with other work (the default
        # stays: a slow start is worth seeing).
        timeout = timeout or float(os.environ.get("POLARTEP_TEST_START_TIMEOUT", "60"))
        log = open(self.hub_log, "ab")  # noqa: SIM115 (kept open for the hub's lifetime)
        self.hub_process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(REPO_ROOT / "jupyterhub_config.py")],
            cwd=self.settings.state_path,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            if self.hub_process.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.hub_process.returncode}:\n{self.log_tail()}")
            try:
                hub = self.api("GET", "/hub/api", timeout=2)
                service = self.api("GET", "/services/platform/health", timeout=2)
                # The gateway registers its API route with its own proxy a moment after it starts listening.
                gateway = self.api("GET", "/services/dask-gateway/api/health", timeout=2)
            except httpx.HTTPError:
                return False
            return hub.status_code == 200 and service.status_code == 200 and gateway.status_code == 200

        wait_for(ready, timeout, interval=0.2, what="the hub, the platform service and the Dask Gateway")

    def stop_hub(self, timeout: float = 30) -> None:
        """Stop the hub the way an operator would (SIGTERM); servers and the proxy keep running."""
        if self.hub_process and self.hub_process.poll() is None:
            self.hub_process.send_signal(signal.SIGTERM)
            try:
                self.hub_process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.hub_process.kill()
                self.hub_process.wait()
        self.hub_process = None
        self._admin_token = None

    def stop(self) -> None:
        """Stop every user server, then the hub and the proxy."""
        if self.hub_process and self.hub_process.poll() is None:
            try:
                self.stop_all_servers()
            except Exception as e:  # teardown must go on, but say why servers may be left
                print(f"could not stop all servers: {e}", file=sys.stderr)
        self.stop_hub()
        self.kill_cluster_processes()
        if self.proxy_process:
            self.proxy_process.terminate()
            try:
                self.proxy_process.wait(10)
            except subprocess.TimeoutExpired:
                self.proxy_process.kill()
        self.kill_leftover_processes()
        self.remove_system_users()

    def remove_system_users(self) -> list[str]:
        """Delete this platform's system users (their processes, homes, accounts) and the homes folder."""
        removed = []
        for name in system_users_with_prefix(self.system_user_prefix):
            username = pwd.getpwnam(name).pw_gecos.removeprefix(COMMENT_PREFIX)
            try:
                if delete_system_user(username, self.system_user_prefix, self.settings.homes_dir):
                    removed.append(name)
            except SystemUserError as e:  # teardown goes on; say what is left
                print(f"could not remove the system user {name}: {e}", file=sys.stderr)
        shutil.rmtree(self.homes, ignore_errors=True)
        # The datasets' system groups (data/storage.py: <prefix>ds<id>-rw/-ro) go with the platform.
        for group in grp.getgrall():
            if group.gr_name.startswith(f"{self.system_user_prefix}ds") and group.gr_name.endswith(
                ("-rw", "-ro")
            ):
                subprocess.run(["groupdel", group.gr_name], capture_output=True, check=False)
        return removed

    def kill_leftover_processes(self, grace: float = 5) -> list[int]:
        """Terminate every process still running with this platform's folder in its environment or command line.

        A hub killed by a test (``kill -9``) leaves its managed services (platform service, gateway, culler) and
        local-mode servers running, since each runs in a session of its own; the suite must not leak them.
        """
        markers = [str(self.root).encode(), str(self.homes).encode()]
        leftovers = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                seen = (entry / "environ").read_bytes() + b"\0" + (entry / "cmdline").read_bytes()
                if any(marker in seen for marker in markers):
                    leftovers.append(int(entry.name))
            except OSError:  # gone already, or not ours to read
                continue
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for pid in leftovers:
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return leftovers

    def kill_cluster_processes(self) -> None:
        """End Dask schedulers and workers still running in this platform's clusters folder.

        Clusters outlive the gateway by design (``stop_clusters_on_shutdown`` is off), so a cluster that a test did
        not stop, or whose stop was still under way, would otherwise outlive the test session.
        """
        clusters = Path(self.settings.dask_clusters_dir).resolve()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(clusters):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.hub_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no hub log)"

    # REST ----------------------------------------------------------------------------------------------------------

    def user_origin(self, user: str) -> str:
        """Where ``user``'s servers are served: ``http://<user>.<host>:<port>`` with subdomains, else the hub's."""
        return self.settings.user_origin(user)

    def user_url(self, user: str, server: str = "") -> str:
        """The full URL of ``user``'s server (``.../user/<user>/[<server>/]``), as a browser opens it."""
        return f"{self.user_origin(user)}/user/{user}/" + (f"{server}/" if server else "")

    def api(
        self, method: str, path: str, token: str | None = None, timeout: float = 30, **kwargs: Any
    ) -> httpx.Response:
        """A request to ``path`` through the proxy, with ``token`` if given: on the public URL, except that
        ``/user/<name>/...`` goes to that user's own origin when the platform has per-user origins."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        base = self.url
        user_path = _USER_PATH.match(path)
        if user_path and self.settings.user_subdomain_host:
            base = self.user_origin(user_path.group(1))
        return localhost_names.request(method, base + path, headers=headers, timeout=timeout, **kwargs)

    @property
    def admin_token(self) -> str:
        """An API token of the administrator, obtained with the password (the real login path)."""
        if not self._admin_token:
            r = self.api(
                "POST",
                "/hub/api/users/admin/tokens",
                json={"auth": {"username": "admin", "password": ADMIN_PASSWORD}, "note": "tests"},
            )
            assert r.status_code == 201, (r.status_code, r.text)
            self._admin_token = r.json()["token"]
            self.accept_current_terms(self._admin_token)
        return self._admin_token

    def accept_current_terms(self, token: str) -> dict[str, Any]:
        """Accept, with the user's own token, every current legal document the user has not accepted yet."""
        r = self.api("GET", "/services/platform/api/v1/me/consents", token)
        assert r.status_code == 200, (r.status_code, r.text)
        missing = {document["kind"]: document["version"] for document in r.json()["missing"]}
        if not missing:
            return r.json()
        r = self.api("POST", "/services/platform/api/v1/me/consents", token, json=missing)
        assert r.status_code == 200 and not r.json()["missing"], (r.status_code, r.text)
        return r.json()

    def create_user(
        self, name: str, plan: str | None = None, password: str | None = None, accept_terms: bool = True
    ) -> str:
        """Create the account (platform service) and the hub user; return a token of that user.

        The user accepts the current terms and privacy statement (needed to spawn) unless ``accept_terms`` is off.
        """
        account: dict[str, Any] = {"name": name}
        if plan:
            account["plan"] = plan
        if password:
            account["password"] = password
        r = self.api("POST", "/services/platform/api/v1/accounts", self.admin_token, json=account)
        assert r.status_code == 201, (r.status_code, r.text)
        r = self.api("POST", f"/hub/api/users/{name}", self.admin_token)
        assert r.status_code in (201, 409), (r.status_code, r.text)
        r = self.api("POST", f"/hub/api/users/{name}/tokens", self.admin_token, json={"note": "tests"})
        assert r.status_code == 201, (r.status_code, r.text)
        token = r.json()["token"]
        if accept_terms:
            self.accept_current_terms(token)
        return token

    def server_model(self, user: str, server: str = "") -> dict[str, Any] | None:
        r = self.api("GET", f"/hub/api/users/{user}", self.admin_token)
        r.raise_for_status()
        return r.json().get("servers", {}).get(server)

    def spawn(
        self, user: str, token: str, options: dict | None = None, server: str = "", timeout: float = 90
    ):
        """Ask for a server through the REST API and wait until it is ready; returns the server model."""
        path = f"/hub/api/users/{user}/servers/{server}" if server else f"/hub/api/users/{user}/server"
        r = self.api("POST", path, token, json=options or {})
        assert r.status_code in (201, 202), f"spawn refused: {r.status_code} {r.text}\n{self.log_tail()}"
        return self.wait_ready(user, server, timeout)

    def wait_ready(self, user: str, server: str = "", timeout: float = 90) -> dict[str, Any]:
        def ready():
            model = self.server_model(user, server)
            if model is None:
                raise RuntimeError(f"{user}/{server} stopped while starting:\n{self.log_tail()}")
            return model if model.get("ready") else None

        return wait_for(ready, timeout, interval=0.2, what=f"{user}/{server} to be ready")

    def stop_server(self, user: str, server: str = "", timeout: float = 60) -> None:
        path = f"/hub/api/users/{user}/servers/{server}" if server else f"/hub/api/users/{user}/server"
        r = self.api("DELETE", path, self.admin_token)
        assert r.status_code in (202, 204, 400, 404), (r.status_code, r.text)
        wait_for(
            lambda: self.server_model(user, server) is None, timeout, interval=0.2, what=f"{user} to stop"
        )

    def stop_all_servers(self) -> None:
        r = self.api("GET", "/hub/api/users", self.admin_token, params={"state": "active"})
        for model in r.json():
            for name in model.get("servers", {}):
                self.stop_server(model["name"], name)
