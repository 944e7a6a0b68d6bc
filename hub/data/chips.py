"""SYNTHETIC SAR-like image chips with ice/water labels, for machine-learning examples and tests.

``make_chips(count, seed)`` returns ``count`` chips of 64 x 64 pixels, half of them ice and half open water, as an
xarray Dataset; ``write_chips`` writes it as one netCDF-4 file (``FILE_NAME``), ``stac_item`` describes that file
with the STAC label extension. Each chip is a caricature of a C-band HH backscatter (sigma0) scene, in dB, float32:

- an ice mask from a smooth random field, thresholded so that an ice chip is 80-100 % ice and a water chip 0-20 %;
- open water dark (a base of -25 to -19 dB with a smooth wind-like modulation of +-1 dB), ice brighter (-13 to
  -8 dB, floe-scale variation of +-1.5 dB and a few bright ridges), an incidence-angle gradient of up to 1 dB across
  the chip;
- multiplicative speckle of a 4-look intensity image (Gamma-distributed, mean 1; about 2.7 dB of noise per pixel),
  so single pixels of the two classes overlap (the best single threshold gets a few per cent of them wrong) while
  neighbourhoods separate.

Guaranteed by construction (and checked by the tests): the classes are balanced exactly (``count`` even), the
per-chip ``label`` is the majority of the per-pixel ``ice_mask``, and a fixed rule (the share of pixels whose 5 x 5
mean is above -16 dB is over one half) labels every chip correctly, so a classifier that learns anything near
that reaches well over 90 % accuracy. The same ``(count, seed)`` gives the same bytes of data. Nothing here is an
observation: every file and catalogue entry says SYNTHETIC.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr

LABEL = "SYNTHETIC SAR-like image chips (polartep data sample) - not observations"
SIZE = 64
LOOKS = 4
DEFAULT_COUNT = 400
FILE_NAME = "sar_chips_synthetic.nc"
CLASSES = {0: "water", 1: "ice"}
# The rule that the design guarantees to label every chip correctly (see the module docstring).
RULE_THRESHOLD_DB, RULE_WINDOW = -16.0, 5
LABEL_EXTENSION = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
# The chips are not from anywhere; the catalogue needs a place, so they are filed under the Fram Strait.
FRAM_STRAIT_BBOX = (-20.0, 76.0, 10.0, 82.0)


def _smooth_field(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Zero-mean, unit-variance noise low-passed in the Fourier domain (features of about ``scale`` pixels)."""
    noise = rng.standard_normal((SIZE, SIZE))
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(SIZE), np.fft.fftfreq(SIZE)))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-((frequency * scale) ** 2))))
    return (field - field.mean()) / field.std()


def _chip(rng: np.random.Generator, ice: bool) -> tuple[np.ndarray, np.ndarray]:
    """One chip: sigma0 in dB (float32) and its ice mask (uint8)."""
    fraction = rng.uniform(0.8, 1.0) if ice else rng.uniform(0.0, 0.2)
    field = _smooth_field(rng, scale=rng.uniform(6, 14))
    mask = field >= np.quantile(field, 1 - fraction) if fraction > 0 else np.zeros((SIZE, SIZE), bool)
    water_db = rng.uniform(-25, -19) + 1.0 * _smooth_field(rng, scale=20) / 3
    ice_db = rng.uniform(-13, -8) + 1.5 * np.clip(_smooth_field(rng, scale=4) / 2, -1, 1)
    ridges = np.zeros((SIZE, SIZE))
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    for _ in range(rng.integers(0, 4)):  # bright pressure ridges: thin lines across the ice
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-SIZE / 2, SIZE / 2)
        distance = np.abs((cols - SIZE / 2) * np.cos(angle) + (rows - SIZE / 2) * np.sin(angle) - offset)
        ridges = np.maximum(ridges, 3.0 * (distance < 1.0))
    gradient = rng.uniform(-1, 1) * (cols / (SIZE - 1) - 0.5)  # the incidence angle changes across the swath
    sigma0_db = np.where(mask, ice_db + ridges, water_db) + gradient
    speckle = rng.gamma(LOOKS, 1 / LOOKS, (SIZE, SIZE))
    backscatter = 10 * np.log10(10 ** (sigma0_db / 10) * speckle)
    return backscatter.astype(np.float32), mask.astype(np.uint8)


def make_chips(count: int = DEFAULT_COUNT, seed: int = 0) -> xr.Dataset:
    """``count`` (even) chips, half ice and half water in a seeded random order, labelled SYNTHETIC."""
    if count < 2 or count % 2:
        raise ValueError("give an even number of chips, at least 2 (half ice, half water)")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.array([0, 1], np.uint8), count // 2))
    images, masks = zip(*(_chip(rng, bool(label)) for label in labels), strict=True)
    masks_array = np.stack(masks)
    classes = " ".join(CLASSES.values())
    return xr.Dataset(
        {
            "backscatter": (
                ("chip", "y", "x"),
                np.stack(images),
                {
                    "long_name": "SYNTHETIC C-band HH-like backscatter (sigma0), 4-look speckle",
                    "units": "dB",
                },
            ),
            "ice_mask": (
                ("chip", "y", "x"),
                masks_array,
                {"long_name": "per-pixel class", "flag_values": [0, 1], "flag_meanings": classes},
            ),
            "label": (
                ("chip",),
                labels,
                {
                    "long_name": "per-chip class (majority of ice_mask)",
                    "flag_values": [0, 1],
                    "flag_meanings": classes,
                },
            ),
            "ice_fraction": (
                ("chip",),
                masks_array.mean(axis=(1, 2)).astype(np.float32),
                {"long_name": "share of the chip's pixels that are ice", "units": "1"},
            ),
        },
        coords={"chip": np.arange(count), "y": np.arange(SIZE), "x": np.arange(SIZE)},
        attrs={
            "title": f"{LABEL}: {count} chips of {SIZE} x {SIZE} pixels with ice/water labels",
            "source": "synthetic: generated by `polartep data sample` (hub/data/chips.py)",
            "comment": "Backscatter, masks and labels are invented for demonstrations and tests (seed "
            f"{seed}). For real data use labelled SAR scenes, e.g. Sentinel-1 EW with ice charts.",
            "seed": seed,
        },
    )


def rule_labels(chips: xr.Dataset) -> np.ndarray:
    """The labels of the design's fixed rule: over half of the pixels' ``RULE_WINDOW`` box mean above
    ``RULE_THRESHOLD_DB``. It is right for every chip ``make_chips`` makes (the tests check it)."""
    image = chips["backscatter"].values
    padded = np.pad(image, ((0, 0), (RULE_WINDOW // 2,) * 2, (RULE_WINDOW // 2,) * 2), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (RULE_WINDOW, RULE_WINDOW), axis=(1, 2))
    bright = windows.mean(axis=(-2, -1)) > RULE_THRESHOLD_DB
    return (bright.mean(axis=(1, 2)) > 0.5).astype(np.uint8)


def write_chips(folder: Path, count: int = DEFAULT_COUNT, seed: int = 0) -> Path:
    """Write the chips as ``folder/FILE_NAME`` (staged in the storage root and renamed into place, as
    ``sample.write_sample`` does, so a link a member planted there is replaced, never written through)."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        partial = staging / FILE_NAME
        encoding = {"backscatter": {"zlib": True, "complevel": 1}, "ice_mask": {"zlib": True, "complevel": 4}}
        make_chips(count, seed).to_netcdf(partial, engine="h5netcdf", encoding=encoding)
        os.chmod(partial, 0o664)
        path = folder / FILE_NAME
        os.replace(partial, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def stac_item(project: str, dataset: str, count: int, seed: int, when: datetime) -> dict:
    """The chips file's STAC item, with the label extension: raster labels, classification and segmentation."""
    west, south, east, north = FRAM_STRAIT_BBOX
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [LABEL_EXTENSION],
        "id": f"sar-chips-synthetic-seed{seed}",
        "bbox": [west, south, east, north],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {
            "title": f"SYNTHETIC SAR-like ice/water chips ({count} x {SIZE} x {SIZE}, seed {seed})",
            "datetime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "description": LABEL,
            "keywords": ["synthetic", "SAR", "sea ice", "machine learning"],
            "label:description": "ice_mask: the class of each pixel (0 water, 1 ice); label: the class of each "
            "chip, the majority of its pixels (ice chips are 80-100 % ice, water chips 0-20 %)",
            "label:type": "raster",
            "label:properties": None,
            "label:classes": [{"name": None, "classes": list(CLASSES)}],
            "label:tasks": ["classification", "segmentation"],
            "label:methods": ["automated"],
            "label:overviews": [
                {
                    # No property_key: raster labels have no property (the extension's schema wants a string when
                    # present, so null is invalid).
                    "counts": [{"name": name, "count": count // 2} for name in CLASSES.values()],
                }
            ],
        },
        "links": [],
        "assets": {
            "labels": {
                "href": f"datasets/{project}/{dataset}/{FILE_NAME}",
                "type": "application/netcdf",
                "title": "netCDF-4: backscatter (chip, y, x) in dB with ice_mask, label and ice_fraction",
                "roles": ["labels", "labels-raster", "data"],
            }
        },
    }


def collection_metadata(count: int, when: datetime) -> dict:
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "title": "SYNTHETIC SAR-like ice/water image chips",
        "description": f"{LABEL}. {count} chips of {SIZE} x {SIZE} pixels of C-band-like backscatter in dB with "
        "4-look speckle, half sea ice and half open water, with per-pixel masks and per-chip labels, for "
        "machine-learning tutorials and tests (notebooks/sar-ice-water-classifier.ipynb). Invented, not observed.",
        "license": "CC0-1.0",
        "keywords": [
            "EARTH SCIENCE > CRYOSPHERE > SEA ICE > SEA ICE EXTENT",
            "EARTH SCIENCE > SPECTRAL/ENGINEERING > RADAR > RADAR BACKSCATTER",
            "synthetic",
            "machine learning",
        ],
        "providers": [{"name": "Polar TEP (synthetic sample)", "roles": ["producer", "host"]}],
        "extent": {
            "spatial": {"bbox": [list(FRAM_STRAIT_BBOX)]},
            "temporal": {"interval": [[stamp, stamp]]},
        },
    }
