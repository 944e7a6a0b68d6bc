"""JupyterHub configuration for Polar TEP: everything comes from ``polartep_hub`` and the POLARTEP_* settings."""

from polartep_hub.hub_config import configure_hub

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)
configure_hub(c)
