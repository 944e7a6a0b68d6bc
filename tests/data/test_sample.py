"""Synthetic sample data: the NSIDC 25 km north grid, CF/NSIDC file layout, clear labels, and one loader for all.

Specification: ``write_sample`` writes one small netCDF-4 file per day on the 304 x 448 EPSG:3411 grid, in the layout
of NSIDC's sea-ice concentration CDR (scaled byte, flags for land and the pole hole), labelled SYNTHETIC in its
attributes; ``nsidc.open_sea_ice`` reads them with plain xarray, turning flags into NaN; the seasonal cycle is
plausible (more ice in March than in September); each day's STAC item is a valid STAC 1.0.0 item. ``write_zarr``
writes the same days as one Zarr store, chunked by month, that the same loader opens to the same values; the item
lists it as its second asset. ``chips.make_chips`` makes balanced, deterministic SAR-like ice/water chips whose
labels agree with their masks and with the design's fixed rule; their STAC item uses the label extension, valid
for the core schema and the label extension's own schema (shipped), and read by pystac's label extension.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest

from polartep_hub.data import chips, nsidc, sample, stac_schemas


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    files = sample.write_sample(folder, date(2024, 3, 14), 3)
    return folder, files


def test_the_grid_is_nsidcs_25_km_north_grid():
    assert (len(nsidc.grid_x()), len(nsidc.grid_y())) == (304, 448)
    assert nsidc.grid_x()[0] == -3_837_500 and nsidc.grid_x()[-1] == 3_737_500
    assert nsidc.grid_y()[0] == 5_837_500 and nsidc.grid_y()[-1] == -5_337_500
    # NSIDC gives the grid's upper-left corner as 30.98 N, 168.35 E: our corner cell's centre lies just inside.
    lon, lat = nsidc.lonlat(np.array([-3_850_000.0]), np.array([5_850_000.0]))
    assert round(float(lat[0]), 2) == 30.98 and round(float(lon[0]), 2) == 168.35
    lon, lat = nsidc.lonlat(np.array([0.0]), np.array([-1_000_000.0]))
    assert round(float(lon[0]), 6) == -45.0  # the central meridian points down the grid


def test_files_are_small_labelled_and_in_the_nsidc_layout(written):
    folder, files = written
    assert [f.name for f in files] == [
        "seaice_conc_daily_nh_20240314_synthetic_v04r00.nc",
        "seaice_conc_daily_nh_20240315_synthetic_v04r00.nc",
        "seaice_conc_daily_nh_20240316_synthetic_v04r00.nc",
    ]
    assert all(f.stat().st_size < 100_000 for f in files)
    assert not list(folder.glob("*.partial"))
    import xarray as xr

    with xr.open_dataset(files[0], engine="h5netcdf", mask_and_scale=False) as raw:
        assert raw.attrs["Conventions"] == "CF-1.8"
        assert raw.attrs["title"].startswith("SYNTHETIC")
        assert raw["cdr_seaice_conc"].dtype == np.uint8 and raw["cdr_seaice_conc"].shape == (1, 448, 304)
        assert raw["cdr_seaice_conc"].attrs["grid_mapping"] == "crs"
        assert raw["crs"].attrs["epsg_code"] == "EPSG:3411" and "EPSG:3413" in raw["crs"].attrs["comment"]
        values = set(np.unique(raw["cdr_seaice_conc"].values).tolist())
        assert {0, 100, 251, 254} <= values and max(v for v in values if v <= 250) == 100


def test_the_loader_reads_the_files_with_flags_as_nan(written):
    folder, _ = written
    dataset = nsidc.open_sea_ice(folder)
    concentration = dataset["sea_ice_concentration"]
    assert concentration.dims == ("time", "y", "x") and concentration.shape == (3, 448, 304)
    assert float(concentration.max()) == 1.0 and float(concentration.min()) == 0.0
    land = dataset["surface_flag"] == 254
    assert bool(land.any()) and bool(concentration.where(land).isnull().all())
    assert float(dataset["latitude"].max()) > 89.8  # the cells nearest the pole (the grid has none on it)


def test_the_seasonal_cycle_is_plausible():
    def extent(day: date) -> float:
        data = sample.day_dataset(day)["cdr_seaice_conc"]
        return float(nsidc.extent_km2(data.where(data <= 1)).values[0]) / 1e6

    march, september = extent(date(2024, 3, 15)), extent(date(2024, 9, 15))
    assert 13 < march < 18 and 3 < september < 7


def test_each_days_stac_item_is_valid():
    item = sample.stac_item(date(2024, 1, 2), "sea-ice", "seaice-sample")
    assert item["assets"]["data"]["href"] == (
        "datasets/sea-ice/seaice-sample/seaice_conc_daily_nh_20240102_synthetic_v04r00.nc"
    )
    served = {**item, "collection": "sea-ice:seaice-sample", "links": [{"rel": "collection", "href": "."}]}
    assert stac_schemas.first_error(stac_schemas.ITEM_SCHEMA, served) is None


def test_a_link_a_member_planted_under_a_files_name_is_replaced_not_written_through(tmp_path):
    root = tmp_path / "root"
    folder = root / ("a" * 32)
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("the platform's secret")
    day = date(2024, 1, 1)
    (folder / sample.file_name(day)).symlink_to(victim)
    (folder / (sample.file_name(day) + ".partial")).symlink_to(victim)
    [written] = sample.write_sample(folder, day, 1)
    assert victim.read_text() == "the platform's secret"
    assert written.is_file() and not written.is_symlink()
    assert [p.name for p in root.iterdir()] == ["a" * 32]  # the staging folder is gone


def test_the_zarr_store_holds_the_same_days_and_values_as_the_files(tmp_path):
    import xarray as xr

    folder = tmp_path / ("b" * 32)
    folder.mkdir()
    start, days = date(2024, 1, 30), 33  # two appended chunks: 31 days and 2
    sample.write_sample(folder, start, days)
    store = sample.write_zarr(folder, start, days)
    assert store == folder / "seaice_conc_daily_nh_20240130-20240302_synthetic_v04r00.zarr"
    assert [p.name for p in tmp_path.iterdir()] == ["b" * 32]  # the staging folder is gone
    with xr.open_zarr(store, mask_and_scale=False) as raw:
        variable = raw["cdr_seaice_conc"]
        assert variable.dtype == np.uint8 and variable.shape == (33, 448, 304)
        assert variable.encoding["chunks"] == (31, 448, 304) and variable.attrs["scale_factor"] == 0.01
        assert raw["crs"].attrs["epsg_code"] == "EPSG:3411" and raw.attrs["title"].startswith("SYNTHETIC")
        assert (raw["x"].values == nsidc.grid_x()).all() and (raw["y"].values == nsidc.grid_y()).all()
    from_zarr, from_files = nsidc.open_sea_ice(store), nsidc.open_sea_ice(folder)
    assert from_zarr["sea_ice_concentration"].shape == (33, 448, 304)
    assert (from_zarr["time"].values == from_files["time"].values).all()
    xr.testing.assert_identical(
        from_zarr["sea_ice_concentration"].reset_coords(drop=True),
        from_files["sea_ice_concentration"].reset_coords(drop=True),
    )
    assert (from_zarr["surface_flag"].values == from_files["surface_flag"].values).all()


def test_a_rerun_replaces_the_store_and_a_planted_link_is_never_entered(tmp_path):
    folder = tmp_path / ("c" * 32)
    folder.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    day = date(2024, 1, 1)
    (folder / sample.zarr_name(day, 2)).symlink_to(victim)
    store = sample.write_zarr(folder, day, 2)
    assert list(victim.iterdir()) == [] and store.is_dir() and not store.is_symlink()
    assert sample.write_zarr(folder, day, 2) == store  # rerun: the old store is renamed away and removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c" * 32, "victim"]
    assert oct(store.stat().st_mode & 0o777) == "0o755"


def test_each_days_item_lists_the_zarr_store_as_its_second_asset():
    item = sample.stac_item(
        date(2024, 1, 2), "sea-ice", "seaice-sample", sample.zarr_name(date(2024, 1, 1), 10)
    )
    assert list(item["assets"]) == ["data", "zarr"]
    assert item["assets"]["zarr"]["href"] == (
        "datasets/sea-ice/seaice-sample/seaice_conc_daily_nh_20240101-20240110_synthetic_v04r00.zarr"
    )
    assert item["assets"]["zarr"]["type"] == "application/vnd+zarr"
    served = {**item, "collection": "sea-ice:seaice-sample", "links": [{"rel": "collection", "href": "."}]}
    assert stac_schemas.first_error(stac_schemas.ITEM_SCHEMA, served) is None


@pytest.fixture(scope="module")
def chip_set():
    return chips.make_chips(400, seed=7)


def test_chips_are_small_float32_images_with_balanced_labels(chip_set):
    assert chip_set["backscatter"].dtype == np.float32 and chip_set["backscatter"].shape == (400, 64, 64)
    assert chip_set["ice_mask"].dtype == np.uint8 and chip_set["ice_mask"].shape == (400, 64, 64)
    labels = chip_set["label"].values
    assert labels.tolist().count(1) == 200 and labels.tolist().count(0) == 200
    assert labels[:20].tolist() != sorted(labels[:20].tolist())  # shuffled, not sorted by class
    fraction = chip_set["ice_fraction"].values
    assert (fraction[labels == 1] >= 0.8).all() and (fraction[labels == 0] <= 0.2).all()
    assert ((fraction > 0.5) == (labels == 1)).all()  # the chip's label is its mask's majority
    assert chip_set.attrs["title"].startswith("SYNTHETIC")


def test_chips_have_speckle_and_separate_only_by_neighbourhood(chip_set):
    image, mask = chip_set["backscatter"].values, chip_set["ice_mask"].values.astype(bool)
    ice, water = image[mask], image[~mask]
    assert -14 < float(np.median(ice)) < -8 and -25 < float(np.median(water)) < -18
    # Single pixels overlap (speckle): the best single-pixel threshold gets a few per cent of them wrong ...
    best = min(float(((image > threshold) != mask).mean()) for threshold in np.arange(-20, -12, 0.5))
    assert 0.01 < best < 0.1
    # ... as 4-look speckle (about 2.7 dB of noise per pixel, in dB) makes it: neighbours in the water differ so.
    both_water = ~mask[:, :, 1:] & ~mask[:, :, :-1]
    assert 2.0 < float(np.std(np.diff(image, axis=2)[both_water])) / np.sqrt(2) < 3.5
    # ... while neighbourhoods separate: the design's fixed rule labels every chip right.
    assert (chips.rule_labels(chip_set) == chip_set["label"].values).all()


def test_chips_are_deterministic_from_their_seed(chip_set):
    again = chips.make_chips(400, seed=7)
    assert (again["backscatter"].values == chip_set["backscatter"].values).all()
    assert (again["label"].values == chip_set["label"].values).all()
    other = chips.make_chips(400, seed=8)
    assert (other["label"].values != chip_set["label"].values).any()
    with pytest.raises(ValueError, match="even number"):
        chips.make_chips(5)


def test_chips_file_and_its_label_extension_item(tmp_path):
    import pystac
    import xarray as xr
    from pystac.extensions.label import LabelExtension, LabelType

    folder = tmp_path / ("d" * 32)
    folder.mkdir()
    path = chips.write_chips(folder, 40, seed=3)
    assert path == folder / "sar_chips_synthetic.nc" and path.stat().st_size < 1_000_000
    with xr.open_dataset(path, engine="h5netcdf") as written:
        assert (written["backscatter"].values == chips.make_chips(40, seed=3)["backscatter"].values).all()
    item = chips.stac_item("sea-ice", "sar-chips-sample", 40, 3, datetime(2024, 1, 1))
    served = {**item, "collection": "sea-ice:sar-chips-sample", "links": [{"rel": "collection", "href": "."}]}
    assert stac_schemas.first_error(stac_schemas.ITEM_SCHEMA, served) is None
    # The label extension's own schema (shipped, as its URL in stac_extensions names it) accepts the item ...
    assert item["stac_extensions"] == [stac_schemas.LABEL_SCHEMA]
    assert stac_schemas.first_error(stac_schemas.LABEL_SCHEMA, served) is None
    # ... and refuses what the extension forbids: a label type it does not define, a missing required field.
    bad_type = {**served, "properties": {**served["properties"], "label:type": "mask"}}
    assert stac_schemas.first_error(stac_schemas.LABEL_SCHEMA, bad_type) is not None
    no_description = {**served, "properties": dict(served["properties"])}
    del no_description["properties"]["label:description"]
    assert stac_schemas.first_error(stac_schemas.LABEL_SCHEMA, no_description) is not None
    read = pystac.Item.from_dict(item)
    labels = LabelExtension.ext(read)
    assert labels.label_type == LabelType.RASTER and labels.label_properties is None
    assert [c.classes for c in labels.label_classes] == [[0, 1]]
    assert labels.label_tasks == ["classification", "segmentation"]
    assert [(c.name, c.count) for c in labels.label_overviews[0].counts] == [("water", 20), ("ice", 20)]
    assert read.assets["labels"].roles == ["labels", "labels-raster", "data"]
