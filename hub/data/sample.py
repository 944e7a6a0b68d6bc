"""Synthetic sample data: daily Arctic sea-ice concentration on the NSIDC 25 km north grid, clearly labelled.

``write_sample(folder, start, days)`` writes one netCDF-4 file per day, laid out like NSIDC's Sea Ice
Concentration CDR (G02202 v4): ``cdr_seaice_conc`` as an unsigned byte scaled by 0.01 (0-100 = 0-1) with NSIDC's
flag values (251 pole hole, 254 land), ``x``/``y`` in EPSG:3411 metres and the CF grid-mapping variable ``crs``
(latitude and longitude are the grid's, computed by ``nsidc.lonlat``, as NSIDC ships them in separate files) (``nsidc.py``). So ``nsidc.open_sea_ice`` reads these files and the real ones alike.

``write_zarr(folder, start, days)`` writes the same days, same variables and the same CF encoding (one byte, scale
0.01, flags above 250) as one Zarr store (format 2, consolidated metadata, one chunk per ``ZARR_DAYS_PER_CHUNK``
days of the full grid), for Dask: ``nsidc.open_sea_ice`` opens the store with plain xarray too. Each day's STAC
item lists both: the day's netCDF file (asset ``data``) and the store that holds that day (asset ``zarr``).

What is synthetic, and said so in every file (title, ``source``, ``comment``) and catalogue entry: the land mask (a
smooth caricature of the Arctic's coasts, Greenland and the Canadian archipelago, not a real coastline) and the
concentration (an ice edge that follows a seasonal cycle, maximum in March and minimum in September, with
deterministic weather-like noise). The numbers are plausible in size (about 15 million km2 in March, 5 in
September), never observations. Files are deterministic: the same day gives the same bytes of data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import xarray as xr

from polartep_hub.data import nsidc

LABEL = "SYNTHETIC sample data (polartep data sample) - not observations"
POLE_HOLE_LATITUDE = 89.18  # like the SSMIS instruments' pole hole
# A month of full grids per Zarr chunk: about 4 MB raw, a few hundred kB compressed; a year is a dozen tasks.
ZARR_DAYS_PER_CHUNK = 31
ZARR_MEDIA_TYPE = "application/vnd+zarr"


def file_name(day: date) -> str:
    return f"seaice_conc_daily_nh_{day:%Y%m%d}_synthetic_v04r00.nc"


def zarr_name(start: date, days: int) -> str:
    """The Zarr store's name: it holds the days of one run, so runs over other days never overwrite it."""
    end = start + timedelta(days=days - 1)
    return f"seaice_conc_daily_nh_{start:%Y%m%d}-{end:%Y%m%d}_synthetic_v04r00.zarr"


@cache
def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = nsidc.grid_x(), nsidc.grid_y()
    xx, yy = np.meshgrid(x, y)
    lon, lat = nsidc.lonlat(xx, yy)
    return x, y, lon, lat


@cache
def _land() -> np.ndarray:
    # The same every day: computed once (a third of a day's generation time otherwise).
    _, _, lon, lat = _grid()
    return land_mask(lon, lat)


def land_mask(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A synthetic land mask: continents south of a wavy coast, Greenland and an archipelago (True is land)."""
    coast = 68.0 + 4.0 * np.cos(np.radians(2 * (lon + 30))) + 2.0 * np.sin(np.radians(3 * lon))
    land = lat < coast
    greenland = (((lon + 42) / 22) ** 2 + ((lat - 72) / 11) ** 2) < 1
    archipelago = (((lon + 95) / 25) ** 2 + ((lat - 74) / 5) ** 2) < 1
    # The Atlantic gateway and the Bering Strait stay open water.
    atlantic = (lon > -20) & (lon < 20) & (lat > 60)
    bering = (lon > -172) & (lon < -165) & (lat > 60)
    return (land | greenland | archipelago) & ~atlantic & ~bering


def concentration(day: date, lon: np.ndarray, lat: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Raw concentration bytes (0-100, flags 251/254) for ``day``."""
    doy = day.timetuple().tm_yday
    # The ice edge's latitude: furthest south in mid-March (day 75), furthest north in mid-September (day 258).
    edge = 73.5 - 7.5 * np.cos(2 * np.pi * (doy - 75) / 365.25)
    rng = np.random.default_rng(day.toordinal())
    phase = rng.uniform(0, 2 * np.pi, 3)
    wobble = (
        1.5 * np.sin(np.radians(3 * lon) + phase[0])
        + 0.8 * np.sin(np.radians(7 * lon) + phase[1])
        + 0.4 * np.sin(np.radians(lat * 11) + phase[2])
    )
    fraction = np.clip((lat - edge - wobble) / 4.0 + 0.5, 0, 1)
    fraction = np.clip(fraction * rng.normal(1.0, 0.03, lat.shape), 0, 1)
    raw = np.round(fraction * 100).astype(np.uint8)
    raw[land] = 254
    raw[lat > POLE_HOLE_LATITUDE] = 251
    return raw


def day_dataset(day: date) -> xr.Dataset:
    """One day's synthetic file as an xarray Dataset (CF-1.8, NSIDC layout)."""
    x, y, lon, lat = _grid()
    raw = concentration(day, lon, lat, _land())
    scaled = (raw / 100.0).astype("float32")  # flags stay recognisable once scaled: 2.51 ... 2.55
    time = np.array([np.datetime64(datetime(day.year, day.month, day.day), "ns")])
    dataset = xr.Dataset(
        {
            nsidc.CONCENTRATION: (
                ("time", "y", "x"),
                scaled[np.newaxis],
                {
                    "long_name": "SYNTHETIC sea ice concentration (NSIDC CDR layout)",
                    "standard_name": "sea_ice_area_fraction",
                    "units": "1",
                    "grid_mapping": "crs",
                    "valid_range": [0.0, 1.0],
                    "flag_values": list(nsidc.FLAGS),
                    "flag_meanings": " ".join(nsidc.FLAGS.values()),
                },
            ),
            "crs": nsidc.crs_variable(),
        },
        coords={
            "time": ("time", time, {"standard_name": "time", "axis": "T"}),
            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"}),
            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": f"{LABEL}: daily Arctic sea-ice concentration on the NSIDC 25 km grid",
            "source": "synthetic: generated by `polartep data sample` (hub/data/sample.py)",
            "comment": "The land mask and the concentrations are invented for demonstrations and tests. For real "
            "data use NSIDC's Sea Ice Concentration CDR (G02202) or NSIDC-0051 files on the same grid.",
            "grid": "NSIDC Sea Ice Polar Stereographic North 25 km (304 x 448), EPSG:3411; EPSG:3413 on WGS 84",
            "time_coverage_start": f"{day:%Y-%m-%d}T00:00:00Z",
            "time_coverage_end": f"{day:%Y-%m-%d}T23:59:59Z",
        },
    )
    return dataset


_CF_BYTE = {"dtype": "uint8", "scale_factor": 0.01, "_FillValue": 255}
_TIME = {"units": "days since 1970-01-01", "calendar": "standard", "dtype": "float64"}


def _encoding() -> dict[str, dict]:
    # As the CDR stores it: one byte, scaled by 0.01, flags above 250, compressed.
    return {
        nsidc.CONCENTRATION: {
            **_CF_BYTE,
            "zlib": True,
            "complevel": 4,
            "chunksizes": (1, nsidc.ROWS, nsidc.COLUMNS),
        },
        "time": _TIME,
    }


def _zarr_encoding() -> dict[str, dict]:
    # The same byte encoding; zarr's default compressor (zstd in a Blosc container) compresses it.
    return {
        nsidc.CONCENTRATION: {**_CF_BYTE, "chunks": (ZARR_DAYS_PER_CHUNK, nsidc.ROWS, nsidc.COLUMNS)},
        "time": {**_TIME, "chunks": (ZARR_DAYS_PER_CHUNK,)},
    }


def days_from(start: date, count: int) -> Iterator[date]:
    for offset in range(count):
        yield start + timedelta(days=offset)


def write_sample(folder: Path, start: date, days: int) -> list[Path]:
    """Write ``days`` daily files from ``start`` into ``folder``; returns their paths.

    The command runs as root, and the dataset's members may write into ``folder``: a link they plant under a file's
    name must never be written through. So each file is written in a staging folder of our own beside the dataset's
    (in the storage root, where users cannot write; same file system) and then renamed into place: a rename replaces
    a link at the destination instead of following it, and a crash never leaves half a file under a real name.
    """
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    written = []
    try:
        for day in days_from(start, days):
            partial = staging / file_name(day)
            day_dataset(day).to_netcdf(partial, engine="h5netcdf", encoding=_encoding())
            os.chmod(
                partial, 0o664
            )  # readable by the dataset's groups once in place (its ACL applies to new files only)
            path = folder / file_name(day)
            os.replace(partial, path)
            written.append(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _chmod_tree(top: Path) -> None:
    # Readable by the dataset's groups once in place (its default ACL applies to files created there, and these
    # were created in the staging folder); only the platform writes them.
    for path in [top, *top.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644, follow_symlinks=False)


def write_zarr(folder: Path, start: date, days: int) -> Path:
    """Write ``days`` days from ``start`` as one Zarr store in ``folder`` (``zarr_name``); returns its path.

    As for the netCDF files (``write_sample``), the store is built in a staging folder in the storage root and
    renamed into place. A store of an earlier run (or anything a member put under its name: a link, a folder) is
    first renamed away into the staging folder, never entered, and removed with it.
    """
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    name = zarr_name(start, days)
    partial = staging / name
    try:
        all_days = list(days_from(start, days))
        for first in range(0, days, ZARR_DAYS_PER_CHUNK):
            batch = xr.concat(
                [day_dataset(day) for day in all_days[first : first + ZARR_DAYS_PER_CHUNK]],
                "time",
                data_vars="minimal",  # crs stays one scalar
                coords="minimal",
                compat="override",
            )
            if first == 0:
                batch.to_zarr(partial, mode="w", zarr_format=2, consolidated=True, encoding=_zarr_encoding())
            else:
                batch.drop_vars("crs").to_zarr(partial, append_dim="time", zarr_format=2, consolidated=True)
        _chmod_tree(partial)
        path = folder / name
        if os.path.lexists(path):
            os.rename(path, staging / "replaced")
        # A directory renamed onto a path a member re-created meanwhile fails (ENOTEMPTY, ENOTDIR): never written
        # through.
        os.rename(partial, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def stac_item(day: date, project: str, dataset: str, store: str | None = None) -> dict:
    """The STAC item of one day's file; its asset's href is where servers see it (relative to the home).

    ``store``, the name of a Zarr store of ``write_zarr`` that holds the day, is added as the second asset
    ``zarr``."""
    west, south, east, north = nsidc.GRID_BBOX
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"seaice-conc-nh-{day:%Y%m%d}",
        "bbox": [west, south, east, north],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {
            "title": f"Synthetic sea-ice concentration {day:%Y-%m-%d} (Arctic, 25 km)",
            "datetime": f"{day:%Y-%m-%d}T12:00:00Z",
            "start_datetime": f"{start:%Y-%m-%dT%H:%M:%SZ}",
            "end_datetime": f"{day:%Y-%m-%d}T23:59:59Z",
            "description": LABEL,
            "keywords": ["synthetic", "sea ice concentration", "Arctic"],
        },
        "links": [],
        "assets": {
            "data": {
                "href": f"datasets/{project}/{dataset}/{file_name(day)}",
                "type": "application/netcdf",
                "title": "netCDF-4, NSIDC CDR layout (cdr_seaice_conc)",
                "roles": ["data"],
            }
        },
    }
    if store is not None:
        item["assets"]["zarr"] = {
            "href": f"datasets/{project}/{dataset}/{store}",
            "type": ZARR_MEDIA_TYPE,
            "title": "Zarr store (format 2, consolidated) of the whole run, this day included; same variables",
            "roles": ["data"],
        }
    return item


def collection_metadata(start: date, days: int) -> dict:
    end = start + timedelta(days=days - 1)
    return {
        "title": "SYNTHETIC daily Arctic sea-ice concentration (NSIDC 25 km grid)",
        "description": f"{LABEL}. Daily sea-ice concentration on the NSIDC Sea Ice Polar Stereographic North 25 km "
        "grid (304 x 448, EPSG:3411), in the layout of NSIDC's Sea Ice Concentration CDR, for demonstrations, "
        "tutorials and tests. The land mask and the values are invented.",
        "license": "CC0-1.0",
        "keywords": [
            "EARTH SCIENCE > CRYOSPHERE > SEA ICE > SEA ICE CONCENTRATION",
            "EARTH SCIENCE > OCEANS > SEA ICE > SEA ICE CONCENTRATION",
            "Arctic",
            "synthetic",
        ],
        "providers": [{"name": "Polar TEP (synthetic sample)", "roles": ["producer", "host"]}],
        "extent": {
            "spatial": {"bbox": [list(nsidc.GRID_BBOX)]},
            "temporal": {"interval": [[f"{start:%Y-%m-%d}T00:00:00Z", f"{end:%Y-%m-%d}T23:59:59Z"]]},
        },
    }
