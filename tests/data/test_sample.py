"""Synthetic sample data: the NSIDC 25 km north grid, CF/NSIDC file layout, clear labels, and one loader for all.

Specification: ``write_sample`` writes one small netCDF-4 file per day on the 304 x 448 EPSG:3411 grid, in the layout
of NSIDC's sea-ice concentration CDR (scaled byte, flags for land and the pole hole), labelled SYNTHETIC in its
attributes; ``nsidc.open_sea_ice`` reads them with plain xarray, turning flags into NaN; the seasonal cycle is
plausible (more ice in March than in September); each day's STAC item is a valid STAC 1.0.0 item.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from polartep_hub.data import nsidc, sample, stac_schemas


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
