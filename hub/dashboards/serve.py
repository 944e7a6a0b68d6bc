"""The program of a dashboard server: fetch the frozen notebook, check it, and serve it with Voila behind the hub's
login. The spawner runs it as the owner's server (``spawners/dashboard_servers.py``), as the owner's system user.

Route chosen, and why:

* **jupyter-server-proxy's standalone proxy** (``jupyter-standaloneproxy``, 4.6) listens on the server's address
  and does JupyterHub's OAuth itself (``HubOAuthenticated``, with the server's ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``,
  so exactly the owner and those the server is shared with get in; others get 403). Behind it, **Voila** serves the
  one notebook on 127.0.0.1 at a port the proxy chooses. Voila's application has no contents, terminals, kernel
  list or JupyterLab handlers at all: its routes are the notebook page, its own kernels' websocket and
  ``/api/kernels/<id>`` (UUIDs it handed out), its static assets and ``/voila/files/`` (images below the dashboard's
  own folder). Rejected: Voila as an extension of ``jupyterhub-singleuser`` (a jupyter_server carries
  ``/lab``, ``/api/contents``, ``/terminals`` and ``/api/kernels``: a share would hand them all to viewers); jhub-apps
  (see ARCHITECTURE.md).
* Voila's port is reachable by every local process, so Voila requires a token that only the proxy knows (it adds
  ``Authorization: token ...`` to every proxied request, replacing the viewer's); the token is made here, at random,
  and never reaches a browser.
* The hub's answers about a viewer are not cached (``FreshHubOAuth``; upstream caches them for 5 minutes): a
  revoked share is refused at the viewer's next request. An open websocket (the kernel's channels, which carry the
  widgets' messages) asks the hub again before forwarding a viewer's message once ``RECHECK_SECONDS`` have passed
  since the last answer, and closes with 1008 (policy violation) when the viewer has lost access, so a revoked viewer
  can move no widget after that (``revocation_aware``). The hub is asked at most once a second per connection,
  not for each of a dragged slider's many messages; a hub that does not answer closes the connection (fail closed).
* Activity: the proxy does not report any itself (its reporter says "active" on a timer, which would keep an idle
  dashboard from ever being culled); the hub sees the dashboard's traffic through its proxy, so the idle culler stops
  a dashboard nobody looks at.
* The notebook is fetched with the server's own token (the owner's) from the platform service, its SHA-256 compared
  with the version the hub admitted, and written read-only into a fresh private folder, which is Voila's root: no
  file of the owner's home is below it, and Voila's file handler serves only below its root. The files frozen with
  the version (a processor run's output files) are written beside it at their relative paths, for the notebook's
  code to read; Voila's empty file allow-list serves none of them to viewers.
* When the dashboard cannot be served (the version cannot be fetched or does not match), the reason is appended to
  ``~/.polartep-dashboards/<id>.log`` in the owner's home, and the program ends; the spawner then fails the start
  with that reason, which the viewer who started it sees on the hub's progress page.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

NOTEBOOK_NAME = "dashboard.ipynb"
RECHECK_SECONDS = 1.0
REVOKED_CLOSE_CODE = 1008  # RFC 6455: policy violation
FAILURE_LOG_FOLDER = ".polartep-dashboards"


def fetch_notebook(service_url: str, token: str, dashboard_id: str, version: str) -> bytes:
    """The frozen notebook's bytes, checked against ``version`` (its SHA-256); ``SystemExit`` with the reason."""
    url = f"{service_url.rstrip('/')}/api/v1/dashboards/{dashboard_id}/versions/{version}/notebook"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the platform's own URL)
            content = response.read()
    except OSError as error:
        raise SystemExit(
            f"polartep dashboard: cannot fetch dashboard {dashboard_id} version {version}: {error}"
        ) from None
    if hashlib.sha256(content).hexdigest() != version:
        raise SystemExit(
            f"polartep dashboard: dashboard {dashboard_id}: the notebook does not match its version"
        )
    return content


def fetch_files(service_url: str, token: str, dashboard_id: str, version: str) -> dict[str, bytes]:
    """The files frozen with the version (a run's output files), by relative path; ``SystemExit`` with the reason."""
    base = f"{service_url.rstrip('/')}/api/v1/dashboards/{dashboard_id}/versions/{version}/files"

    def get(url: str) -> bytes:
        request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (the platform's own URL)
            return response.read()

    try:
        listing = json.loads(get(base))["files"]
        return {item["path"]: get(f"{base}/{urllib.parse.quote(item['path'])}") for item in listing}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"polartep dashboard: cannot fetch the files of dashboard {dashboard_id} version {version}: {error}"
        ) from None


def write_dashboard(content: bytes, files: dict[str, bytes] | None = None) -> Path:
    """A new private folder holding only the notebook and its frozen files (at their relative paths), read-only.
    A path that would leave the folder is refused (the service allows only plain relative paths anyway)."""
    folder = Path(tempfile.mkdtemp(prefix="polartep-dashboard-"))
    for relative, data in (files or {}).items():
        target = (folder / relative).resolve()
        if folder.resolve() not in target.parents or target.name == NOTEBOOK_NAME:
            raise SystemExit(f"polartep dashboard: refusing the file path {relative[:120]!r}")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o400)
    notebook = folder / NOTEBOOK_NAME
    notebook.write_bytes(content)
    notebook.chmod(0o400)
    return folder


def voila_command(folder: Path, base_url: str, token: str) -> list[str]:
    """Voila on 127.0.0.1 at the proxy's ``{port}``, serving the one notebook under the server's prefix."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(folder / NOTEBOOK_NAME),
        "--no-browser",
        "--port={port}",
        "--Voila.ip=127.0.0.1",
        f"--Voila.root_dir={folder}",
        f"--Voila.base_url={base_url}",
        f"--Voila.token={token}",
        # Tracebacks may show paths and values of the owner's: viewers see that an error happened, not its details.
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.file_allowlist=[]",
    ]


def failure_log(home: str, dashboard_id: str) -> Path:
    """Where a dashboard server writes why it could not start, in its owner's home (the owner reads it there; the
    spawner shows its last line to whoever started it: ``spawners/dashboard_servers.py``)."""
    return Path(home) / FAILURE_LOG_FOLDER / f"{dashboard_id}.log"


def record_failure(dashboard_id: str, reason: str) -> None:
    """Append ``reason`` to the failure log (best effort: a full disk must not hide the reason from the log)."""
    try:
        path = failure_log(os.environ.get("HOME", "/nonexistent"), dashboard_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {reason[:500]}\n")
    except OSError:
        pass


def prepare(environment) -> tuple[Path, str]:
    """Fetch and check the frozen notebook; write it into its folder. ``SystemExit`` with the reason otherwise."""
    dashboard_id = environment["POLARTEP_DASHBOARD_ID"]
    version = environment["POLARTEP_DASHBOARD_VERSION"]
    content = fetch_notebook(
        environment["POLARTEP_SERVICE_URL"], environment["JUPYTERHUB_API_TOKEN"], dashboard_id, version
    )
    try:
        json.loads(content)
    except ValueError:
        raise SystemExit(f"polartep dashboard: dashboard {dashboard_id}: the notebook is not JSON") from None
    files = fetch_files(
        environment["POLARTEP_SERVICE_URL"], environment["JUPYTERHUB_API_TOKEN"], dashboard_id, version
    )
    return write_dashboard(content, files), dashboard_id


def revocation_aware(handler_class: type) -> type:
    """The standalone proxy's handler class, whose websockets re-check the viewer's access (rule above)."""

    from jupyterhub.services.auth import UserNotAllowed

    class RevocationAwareProxyHandler(handler_class):
        _access_checked_at = 0.0

        async def open(self, *args, **kwargs):
            self._access_checked_at = time.monotonic()  # the upgrade request was authorised just now
            return await super().open(*args, **kwargs)

        async def on_message(self, message):
            # Tornado awaits this before it reads the next message: messages stay in order.
            if time.monotonic() - self._access_checked_at >= RECHECK_SECONDS:
                if not await self.viewer_still_allowed():
                    self.log.info("Closing the websocket of a viewer who lost access: %s", self.request.path)
                    self.close(REVOKED_CLOSE_CODE, "your access to this dashboard was revoked")
                    return
                self._access_checked_at = time.monotonic()
            super().on_message(message)

        async def viewer_still_allowed(self) -> bool:
            """Ask the hub again (no cache) whether the connection's token or cookie still grants access."""
            for cached in ("_cached_hub_user", "_hub_auth_user_cache"):
                self.__dict__.pop(cached, None)
            try:
                model = await self.hub_auth.get_user(self, sync=False)
                if not model:
                    return False
                self.check_hub_user(model)
            except UserNotAllowed:
                return False
            except Exception:
                self.log.exception("The hub did not answer whether a viewer may still use the dashboard")
                return False
            return True

    return RevocationAwareProxyHandler


def main() -> None:
    environment = os.environ
    try:
        folder, _ = prepare(environment)
    except SystemExit as failure:
        record_failure(environment.get("POLARTEP_DASHBOARD_ID", "unknown"), str(failure))
        raise
    base_url = environment.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    voila_token = secrets.token_urlsafe(32)

    # Imported late: the checks above should not pay for the imports when they fail.
    from jupyter_server_proxy.standalone.app import StandaloneProxyServer
    from jupyterhub.services.auth import HubOAuth

    class FreshHubOAuth(HubOAuth):
        """Asks the hub about the viewer at every request: a revoked share is refused at once."""

        def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
            return super().user_for_token(token, use_cache=False, session_id=session_id, sync=sync)

    # The singleton the proxy's handlers get from HubOAuth.instance() (a SingletonConfigurable: the first instance
    # of a subclass is every parent's instance too).
    class DashboardProxyServer(StandaloneProxyServer):
        def get_proxy_base_class(self):
            handler_class, kwargs = super().get_proxy_base_class()
            return (revocation_aware(handler_class) if handler_class else None), kwargs

    FreshHubOAuth.instance()
    DashboardProxyServer.launch_instance(
        argv=["--", *voila_command(folder, base_url, voila_token)],
        absolute_url=True,
        activity_interval=0,
        timeout=90,
        request_headers_override={"Authorization": f"token {voila_token}"},
    )


if __name__ == "__main__":
    main()
