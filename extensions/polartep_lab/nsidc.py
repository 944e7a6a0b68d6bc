"""The NSIDC 25 km polar-stereographic north grid, and reading sea-ice concentration files laid out as NSIDC's.

The grid is that of NSIDC's passive-microwave sea-ice products (e.g. the Sea Ice Concentration CDR, G02202, and
NSIDC-0051): 304 columns x 448 rows of 25 km cells, EPSG:3411 (NSIDC Sea Ice Polar Stereographic North: Hughes 1980
ellipsoid, true scale at 70 N, central meridian 45 W). EPSG:3413 is its WGS 84 twin with the same grid numbers; the
two differ by the ellipsoid only (well under a cell). Cell edges run from x = -3 850 000 m to 3 750 000 m and
y = 5 850 000 m down to -5 350 000 m.

``open_sea_ice(folder)`` is the one loading function: plain ``xarray.open_mfdataset`` over the daily files
(``seaice_conc_daily_nh_*.nc``), concentration as a fraction 0-1 with NSIDC's flag values (pole hole, lakes, coast,
land, missing: raw 251-255, 2.51-2.55 once scaled) turned into NaN and kept as a ``surface_flag`` mask. Files of the
real CDR (G02202 version 4, variable ``cdr_seaice_conc`` on the same grid) are read the same way; its ``tdim``
time dimension, where present, is renamed ``time``. Given a Zarr store (a path ending in ``.zarr``, as ``polartep data
sample`` writes beside the files) it opens that with ``xarray.open_zarr`` instead, with the same result.

This module is the one copy of the grid and the loader. It lives in ``polartep_lab`` because every user image carries
that package (the extension's wheel) and the user images have no ``polartep_hub``: so a notebook run as a processor
in Docker or Swarm mode imports it exactly as a local-mode one does. ``polartep_hub.data.nsidc`` re-exports it for the
platform's own code (``polartep data sample``, the catalogue). It needs only numpy and xarray (h5netcdf for the files,
zarr for a store), never the server extension's own modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

COLUMNS, ROWS = 304, 448
CELL = 25_000.0
X_EDGE_WEST, Y_EDGE_NORTH = -3_850_000.0, 5_850_000.0
# EPSG:3411: Hughes 1980 ellipsoid, standard parallel 70 N, central meridian -45.
SEMI_MAJOR, SEMI_MINOR = 6_378_273.0, 6_356_889.449
STANDARD_PARALLEL, CENTRAL_MERIDIAN = 70.0, -45.0
CONCENTRATION = "cdr_seaice_conc"
FILE_PATTERN = "seaice_conc_daily_nh_*.nc"
# NSIDC's flag values of the raw (unscaled) concentration byte.
FLAGS = {251: "pole_hole_mask", 252: "lakemask", 253: "coastmask", 254: "landmask", 255: "missing_data"}
# The grid's outline in longitude/latitude (for catalogue entries): it reaches about 31 N at its corners.
GRID_BBOX = (-180.0, 30.98, 180.0, 90.0)


def grid_x() -> np.ndarray:
    """Cell-centre x (metres, EPSG:3411), west to east."""
    return X_EDGE_WEST + CELL / 2 + CELL * np.arange(COLUMNS)


def grid_y() -> np.ndarray:
    """Cell-centre y (metres, EPSG:3411), north to south, as NSIDC's files store rows."""
    return Y_EDGE_NORTH - CELL / 2 - CELL * np.arange(ROWS)


def lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of EPSG:3411 coordinates: the inverse ellipsoidal polar stereographic
    projection (Snyder 1987, eqs. 21-38 and 7-9), so no projection library is needed."""
    e = np.sqrt(1 - (SEMI_MINOR / SEMI_MAJOR) ** 2)
    phi_c = np.radians(STANDARD_PARALLEL)
    t_c = np.tan(np.pi / 4 - phi_c / 2) / ((1 - e * np.sin(phi_c)) / (1 + e * np.sin(phi_c))) ** (e / 2)
    m_c = np.cos(phi_c) / np.sqrt(1 - e**2 * np.sin(phi_c) ** 2)
    rho = np.hypot(x, y)
    t = rho * t_c / (SEMI_MAJOR * m_c)
    chi = np.pi / 2 - 2 * np.arctan(t)
    phi = (
        chi
        + (e**2 / 2 + 5 * e**4 / 24 + e**6 / 12 + 13 * e**8 / 360) * np.sin(2 * chi)
        + (7 * e**4 / 48 + 29 * e**6 / 240 + 811 * e**8 / 11520) * np.sin(4 * chi)
        + (7 * e**6 / 120 + 81 * e**8 / 1120) * np.sin(6 * chi)
        + (4279 * e**8 / 161280) * np.sin(8 * chi)
    )
    lam = np.radians(CENTRAL_MERIDIAN) + np.arctan2(x, -y)
    lon = (np.degrees(lam) + 180) % 360 - 180
    return lon, np.degrees(phi)


def crs_variable() -> xr.DataArray:
    """The CF grid-mapping variable of EPSG:3411 (EPSG:3413, its WGS 84 twin, noted)."""
    return xr.DataArray(
        np.int32(0),
        attrs={
            "grid_mapping_name": "polar_stereographic",
            "straight_vertical_longitude_from_pole": CENTRAL_MERIDIAN,
            "latitude_of_projection_origin": 90.0,
            "standard_parallel": STANDARD_PARALLEL,
            "false_easting": 0.0,
            "false_northing": 0.0,
            "semi_major_axis": SEMI_MAJOR,
            "semi_minor_axis": SEMI_MINOR,
            "long_name": "NSIDC Sea Ice Polar Stereographic North",
            "epsg_code": "EPSG:3411",
            "comment": "EPSG:3413 (WGS 84 NSIDC Sea Ice Polar Stereographic North) is the same grid on the WGS 84 "
            "ellipsoid; the difference is well under one 25 km cell.",
        },
    )


def _normalise(dataset: xr.Dataset) -> xr.Dataset:
    if "tdim" in dataset.dims:  # the CDR's files name their time dimension tdim
        dataset = dataset.rename({"tdim": "time"})
    return dataset


def open_sea_ice(folder: str | Path, pattern: str = FILE_PATTERN, **open_kwargs) -> xr.Dataset:
    """Every daily file under ``folder`` (or the Zarr store ``folder``, a path ending in ``.zarr``) as one dataset:
    ``sea_ice_concentration`` (fraction 0-1, NaN where NSIDC flags a cell), ``surface_flag`` (the flag value, 0
    where none), ``x``/``y`` (EPSG:3411 metres), ``time``, and ``latitude``/``longitude`` (the files' own, or
    computed from x and y). Extra keyword arguments go to ``xarray.open_mfdataset`` or ``xarray.open_zarr``."""
    folder = Path(folder).expanduser()
    if folder.suffix == ".zarr":
        dataset = _normalise(xr.open_zarr(folder, **open_kwargs))
    else:
        files = sorted(folder.glob(pattern))
        if not files:
            raise FileNotFoundError(f"no files matching {pattern} in {folder}")
        dataset = xr.open_mfdataset(
            files,
            combine="by_coords",
            preprocess=_normalise,
            engine="h5netcdf",
            data_vars="minimal",
            coords="minimal",
            compat="override",
            **open_kwargs,
        )
    concentration = dataset[CONCENTRATION]
    flagged = concentration > 1.0
    flags = xr.where(flagged, np.round(concentration * 100), 0).astype("uint8")
    dataset["sea_ice_concentration"] = concentration.where(~flagged)
    dataset["sea_ice_concentration"].attrs = {"units": "1", "standard_name": "sea_ice_area_fraction"}
    dataset["surface_flag"] = flags
    if "latitude" not in dataset:
        lon, lat = lonlat(*np.meshgrid(dataset["x"].values, dataset["y"].values))
        dataset = dataset.assign_coords(latitude=(("y", "x"), lat), longitude=(("y", "x"), lon))
    dataset["surface_flag"].attrs = {
        "flag_values": list(FLAGS),
        "flag_meanings": " ".join(FLAGS.values()),
    }
    return dataset


def extent_km2(concentration: xr.DataArray, threshold: float = 0.15) -> xr.DataArray:
    """Sea-ice extent: the area of cells with at least ``threshold`` concentration (25 km x 25 km each), in km2."""
    return (concentration >= threshold).sum(dim=("y", "x")) * (CELL / 1000) ** 2
