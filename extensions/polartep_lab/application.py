"""``PolarTEPLabApp``: the server extension's settings and its handlers, in jupyter_server's ExtensionApp style.

Settings (traitlets, ``c.PolarTEPLabApp.<name>`` in a Jupyter server config, defaults from the environment the
spawner gives every user server):

* ``service_url``: the platform service as the server reaches it (``POLARTEP_SERVICE_URL``, set by the hub's
  configuration to ``<public URL>/services/platform/``; in Docker and Swarm modes to the proxy's public port on the
  platform network's address, ``hub_config.server_service_url``). Empty: the extension answers 503 saying so.
* ``api_token``: the server's own token (``JUPYTERHUB_API_TOKEN``); ``user``: its owner (``JUPYTERHUB_USER``);
  ``profile``: the profile the server was started with (``POLARTEP_PROFILE``).
* ``request_timeout``: seconds for one call to the service.

Nothing here is a secret of the platform: the token is the user's own, and the values are what the user's code in
the same server sees in its environment anyway.
"""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Unicode, default

from .client import ServiceClient
from .dashboards import dashboard_routes
from .handlers import handlers


class PolarTEPLabApp(ExtensionApp):
    """The Polar TEP server extension (``polartep_lab``)."""

    name = "polartep_lab"
    # Loaded by jupyterhub-singleuser / jupyter lab as one extension among others; it never runs on its own.
    load_other_extensions = True

    service_url = Unicode(
        help="URL of the platform service as this server reaches it, e.g. http://127.0.0.1:8000/services/platform/ "
        "(default: $POLARTEP_SERVICE_URL).",
        config=True,
    )
    api_token = Unicode(
        help="Token sent to the platform service: this server's own token (default: $JUPYTERHUB_API_TOKEN).",
        config=True,
    )
    user = Unicode(help="The server's owner (default: $JUPYTERHUB_USER).", config=True)
    profile = Unicode(help="The profile this server runs (default: $POLARTEP_PROFILE).", config=True)
    request_timeout = Float(10.0, help="Seconds allowed for one call to the platform service.", config=True)

    @default("service_url")
    def _service_url_default(self) -> str:
        return os.environ.get("POLARTEP_SERVICE_URL", "")

    @default("api_token")
    def _api_token_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("user")
    def _user_default(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @default("profile")
    def _profile_default(self) -> str:
        return os.environ.get("POLARTEP_PROFILE", "")

    def missing_settings(self) -> list[str]:
        """What keeps the extension from reaching the service (names of the variables to set)."""
        missing = []
        if not self.service_url:
            missing.append("POLARTEP_SERVICE_URL")
        if not self.api_token:
            missing.append("JUPYTERHUB_API_TOKEN")
        if not self.user:
            missing.append("JUPYTERHUB_USER")
        return missing

    def service_client(self) -> ServiceClient:
        return ServiceClient(self.service_url, self.api_token, self.user, timeout=self.request_timeout)

    def initialize_handlers(self) -> None:
        self.handlers.extend([*dashboard_routes(), *handlers()])  # handlers() ends with the catch-all 404
        missing = self.missing_settings()
        if missing:
            # Not fatal: JupyterLab works without the panel; the panel says the same as this line.
            self.log.warning("Polar TEP extension: %s not set; its panel shows no plan", ", ".join(missing))
