"""The scope of the platform's own routes on the Dask Gateway (``admin_api.py``), readable without importing the gateway.

The hub grants it to the platform service; the gateway checks it. Kept apart from ``config.py`` and ``admin_api.py``
so the hub never imports ``dask_gateway_server`` (its colorlog set-up breaks the hub's log lines) and no module of
the gateway package imports another in a circle.
"""

GATEWAY_ADMIN_SCOPE = "custom:polartep:gateway-admin"
