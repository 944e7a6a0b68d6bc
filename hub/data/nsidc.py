"""The NSIDC 25 km north grid and the sea-ice loader, for the platform's own code: re-exported from
``polartep_lab.nsidc``, their one copy.

They live in ``polartep_lab`` (the JupyterLab extension's package, which every user image carries and the platform's
environment installs) so that notebooks read the data with the same code in local, Docker and Swarm mode, where the
images have no ``polartep_hub``. See that module for the grid and what ``open_sea_ice`` guarantees.
"""

from __future__ import annotations

from polartep_lab.nsidc import (
    CELL,
    CENTRAL_MERIDIAN,
    COLUMNS,
    CONCENTRATION,
    FILE_PATTERN,
    FLAGS,
    GRID_BBOX,
    ROWS,
    SEMI_MAJOR,
    SEMI_MINOR,
    STANDARD_PARALLEL,
    X_EDGE_WEST,
    Y_EDGE_NORTH,
    crs_variable,
    extent_km2,
    grid_x,
    grid_y,
    lonlat,
    open_sea_ice,
)

__all__ = [
    "CELL",
    "CENTRAL_MERIDIAN",
    "COLUMNS",
    "CONCENTRATION",
    "FILE_PATTERN",
    "FLAGS",
    "GRID_BBOX",
    "ROWS",
    "SEMI_MAJOR",
    "SEMI_MINOR",
    "STANDARD_PARALLEL",
    "X_EDGE_WEST",
    "Y_EDGE_NORTH",
    "crs_variable",
    "extent_km2",
    "grid_x",
    "grid_y",
    "lonlat",
    "open_sea_ice",
]
