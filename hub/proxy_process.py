"""Run configurable-http-proxy on its own, outside the hub, so hub restarts keep users connected.

Rules it guarantees:

* The proxy listens only where settings say (127.0.0.1 by default, and for ``localhost`` names), its REST API on
  127.0.0.1 with the settings' auth token, and it sends unknown routes to the hub. With per-user origins
  (``subdomain_host``) it routes by host.
* In Docker and Swarm modes the public port also listens on the platform network's gateway address
  (``settings.container_host``, ``proxy_also_listen.js``): a container's 127.0.0.1 is its own, and that is where the
  JupyterLab extension in a user's container reaches the platform service's route (``/services/platform/``). The
  REST API never leaves 127.0.0.1. Start-up fails, naming the address, when that listener does not answer.
* It runs in its own session (no signal from the hub's terminal reaches it) and writes its PID to the state folder,
  so ``polartep up`` reuses a proxy that is already running and ``polartep down`` stops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from polartep_hub.settings import REPO_ROOT, PlatformSettings
from polartep_hub.user_origins import is_loopback_name


def proxy_executable() -> str:
    """The npm configurable-http-proxy installed in the repository, else one on PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise FileNotFoundError(
            "configurable-http-proxy not found: run `make install` (npm install configurable-http-proxy)"
        )
    return found


def proxy_command(settings: PlatformSettings) -> list[str]:
    public = urlparse(settings.public_url)
    # localhost names (localhost, *.localhost) listen on 127.0.0.1: node would pick one of localhost's addresses
    # (possibly ::1 only), and *.localhost resolves nowhere but in browsers.
    bind_ip = "127.0.0.1" if is_loopback_name(public.hostname) else public.hostname or "127.0.0.1"
    command = [
        proxy_executable(),
        "--ip", bind_ip,
        "--port", str(public.port),
        "--api-ip", "127.0.0.1",
        "--api-port", str(settings.proxy_api_port),
        "--default-target", settings.hub_url,
        "--error-target", f"{settings.hub_url}/hub/error",
        "--log-level", "warn",
    ]  # fmt: skip
    if settings.user_subdomain_host:
        # Per-user origins: JupyterHub's routes then start with the host (user_origins.py).
        command.append("--host-routing")
    return command


def also_listen(settings: PlatformSettings) -> list[tuple[str, int]]:
    """Where the public port listens besides the public URL's address: the platform network's gateway address in
    Docker and Swarm modes (containers' way to the public routes), nowhere else in local mode."""
    if settings.mode not in ("docker", "swarm"):
        return []
    return [(settings.container_host, settings.public_port)]


def proxy_environment(settings: PlatformSettings) -> dict[str, str]:
    """What the proxy's environment adds: the hook that opens the second listener (``proxy_also_listen.js``)."""
    extra = also_listen(settings)
    if not extra:
        return {}
    hook = Path(__file__).with_name("proxy_also_listen.js")
    node_options = " ".join(filter(None, [os.environ.get("NODE_OPTIONS", ""), f"--require={hook}"]))
    host, port = extra[0]
    return {"NODE_OPTIONS": node_options, "POLARTEP_PROXY_ALSO_LISTEN": f"{host}:{port}"}


def answers(address: tuple[str, int], timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection at ``address``."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def proxy_is_up(settings: PlatformSettings, timeout: float = 1.0) -> bool:
    """True when a proxy answers on the API port with our token."""
    request = urllib.request.Request(
        f"{settings.proxy_api_url}/api/routes",
        headers={"Authorization": f"token {settings.proxy_auth_token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_proxy(
    settings: PlatformSettings, log_path: Path | None = None, wait: float = 15.0
) -> subprocess.Popen:
    """Start the proxy detached from the caller and wait until its API answers."""
    log_path = log_path or settings.state_path / "proxy.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": settings.proxy_auth_token, **proxy_environment(settings)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            proxy_command(settings), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    # The hub and the platform service believe X-Forwarded-For only on connections from this PID (proxy_peer.py).
    settings.proxy_pid_path.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"configurable-http-proxy exited with {process.returncode}; see {log_path}")
        if proxy_is_up(settings, timeout=0.5) and all(answers(address) for address in also_listen(settings)):
            return process
        time.sleep(0.1)
    process.terminate()
    where = " and ".join([settings.proxy_api_url, *(f"{h}:{p}" for h, p in also_listen(settings))])
    raise TimeoutError(
        f"configurable-http-proxy did not answer on {where} within {wait:.0f} s; see {log_path} (the second address "
        "needs the npm configurable-http-proxy: `make install`)"
    )


def stop_proxy(settings: PlatformSettings) -> bool:
    """Stop the proxy whose PID the state folder records; False when none was running."""
    pid_file = settings.state_path / "proxy.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    finally:
        pid_file.unlink(missing_ok=True)
    return True
