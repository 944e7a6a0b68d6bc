"""Polar TEP in JupyterLab: a Jupyter server extension and the JupyterLab plugin it ships.

The server extension (``application.PolarTEPLabApp``) runs inside every user's single-user server and answers the
JupyterLab plugin's requests under ``<server base URL>/polartep/api/``. Rules it guarantees:

* It shows and forwards; it decides nothing. The user's server is untrusted (the user runs any code there), so
  every decision stays with the platform service, which the extension asks with the server's own token
  (``JUPYTERHUB_API_TOKEN``: the user's, never the hub's), exactly as the user could.
* It calls only the service routes on its allow-list (``client.SERVICE_ROUTES``); its own routes are the handlers in
  ``handlers.py``, and any other path under ``polartep/api/`` answers 404: it is not a proxy.
* Only a request the single-user server authenticates and authorises (``@tornado.web.authenticated`` and
  jupyter_server's ``@authorized``) reaches the service.

It is enabled by ``etc/jupyter/jupyter_server_config.d/polartep_lab.json`` in the wheel; the built JupyterLab
plugin lies in the wheel under ``share/jupyter/labextensions/polartep-lab`` (see ``extensions/README.md``).

``polartep_lab.nsidc`` (the sea-ice grid and loader) is for notebooks and the platform alike; importing it does not
import the server extension (``PolarTEPLabApp`` is imported on first use).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["PolarTEPLabApp", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazily, so that ``import polartep_lab.nsidc`` (a notebook, the platform's CLI) does not load jupyter_server.
    if name == "PolarTEPLabApp":
        from .application import PolarTEPLabApp

        return PolarTEPLabApp
    raise AttributeError(f"module 'polartep_lab' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter_server finds the extension (the ExtensionApp style)."""
    from .application import PolarTEPLabApp

    return [{"module": "polartep_lab", "app": PolarTEPLabApp}]
