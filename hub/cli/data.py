"""``polartep data sample``: write the synthetic sea-ice sample into a dataset and catalogue it.

The command works through the running platform service as the hub (like ``polartep accounts``): it creates the
dataset (or reuses it), learns its folder, writes one netCDF file per day there and the same days as one Zarr store
(``data/sample.py``; each file and the store written under a temporary name and renamed), then sets the
collection's metadata and posts the STAC items in batches (each with two assets: the day's file and the store).
Then the same for the SAR-like ice/water chips (``data/chips.py``) in a second dataset of the project, catalogued
with the STAC label extension (``--chips 0`` leaves them out). Run again, it rewrites the same files and replaces the
same items (idempotent). It runs on the platform's machine, as the operator who can read the state folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from polartep_hub.cli.accounts import AccountsCommandError, PlatformAdminClient
from polartep_hub.settings import PlatformSettings

ITEMS_PER_REQUEST = 25  # about 1 KB each: well inside the service's 64 KiB body limit
DEFAULT_DAYS = 91  # January to March: about 4 MB


def _ensure_dataset(
    client: PlatformAdminClient, args: argparse.Namespace, name: str, title: str
) -> dict[str, Any]:
    path = f"datasets/{quote(args.project, safe='')}/{quote(name, safe='')}"
    try:
        return client.request("GET", path)
    except AccountsCommandError as error:
        if "no dataset" not in str(error):
            raise
    if args.owner:
        try:
            client.request("GET", f"projects/{quote(args.project, safe='')}")
        except AccountsCommandError:
            client.request("POST", "projects", {"name": args.project, "owner": args.owner})
    client.request(
        "POST",
        "datasets",
        {
            "project": args.project,
            "name": name,
            "storage_class": args.storage_class,
            "title": title,
        },
    )
    return client.request("GET", path)


def run_sample_command(args: argparse.Namespace, settings: PlatformSettings) -> int:
    from polartep_hub.data import sample

    days = (
        args.days if args.days is not None else (args.years * 365 + (1 if args.years else 0)) or DEFAULT_DAYS
    )
    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        print(f"polartep data sample: --start {args.start!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    if not 1 <= days <= 3660:
        print("polartep data sample: give between 1 and 3660 days", file=sys.stderr)
        return 2
    if args.chips and (args.chips % 2 or not 2 <= args.chips <= 20_000):
        print(
            "polartep data sample: --chips takes an even number from 2 to 20000 (or 0: none)", file=sys.stderr
        )
        return 2
    try:
        client = PlatformAdminClient(settings)
    except AccountsCommandError as error:
        print(f"polartep data sample: {error}", file=sys.stderr)
        return 1
    try:
        dataset = _ensure_dataset(client, args, args.dataset, "SYNTHETIC daily Arctic sea-ice concentration")
        folder = Path(dataset["folder"])
        began = time.monotonic()
        files = sample.write_sample(folder, start, days)
        store = sample.write_zarr(folder, start, days)
        path = f"datasets/{quote(args.project, safe='')}/{quote(args.dataset, safe='')}"
        client.request("PUT", f"{path}/collection", sample.collection_metadata(start, days))
        items = [
            sample.stac_item(day, args.project, args.dataset, store.name)
            for day in sample.days_from(start, days)
        ]
        for first in range(0, len(items), ITEMS_PER_REQUEST):
            batch = items[first : first + ITEMS_PER_REQUEST]
            client.request("POST", f"{path}/items", {"type": "FeatureCollection", "features": batch})
        size = sum(f.stat().st_size for f in files)
        print(
            f"wrote {len(files)} daily files ({size / 1e6:.1f} MB) and the Zarr store {store.name} of SYNTHETIC "
            f"sea-ice concentration into {args.project}/{args.dataset} and catalogued them as STAC collection "
            f"{args.project}:{args.dataset} in {time.monotonic() - began:.1f} s; servers see them in "
            f"~/datasets/{args.project}/{args.dataset}"
        )
        if args.chips:
            _write_chips(client, args, start)
        return 0
    except AccountsCommandError as error:
        print(f"polartep data sample: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _write_chips(client: PlatformAdminClient, args: argparse.Namespace, start: date) -> None:
    from polartep_hub.data import chips

    dataset = _ensure_dataset(client, args, args.chips_dataset, "SYNTHETIC SAR-like ice/water image chips")
    began = time.monotonic()
    written = chips.write_chips(Path(dataset["folder"]), args.chips, args.seed)
    when = datetime(start.year, start.month, start.day, 12, tzinfo=UTC)  # fixed: reruns give the same item
    path = f"datasets/{quote(args.project, safe='')}/{quote(args.chips_dataset, safe='')}"
    client.request("PUT", f"{path}/collection", chips.collection_metadata(args.chips, when))
    item = chips.stac_item(args.project, args.chips_dataset, args.chips, args.seed, when)
    client.request("POST", f"{path}/items", {"type": "FeatureCollection", "features": [item]})
    print(
        f"wrote {args.chips} SYNTHETIC SAR-like ice/water chips ({written.stat().st_size / 1e6:.1f} MB, seed "
        f"{args.seed}) into {args.project}/{args.chips_dataset} and catalogued them with the STAC label extension "
        f"in {time.monotonic() - began:.1f} s; servers see them in ~/datasets/{args.project}/{args.chips_dataset}"
    )


def add_data_parser(sub: Any, handler: Any) -> None:
    """Add ``data sample`` to the ``polartep`` parser; ``handler(args)`` runs it."""
    data = sub.add_parser("data", help="sample data for the catalogue (talks to the running platform)")
    actions = data.add_subparsers(dest="action", required=True)
    sample = actions.add_parser(
        "sample",
        help="write SYNTHETIC daily Arctic sea-ice concentration (NSIDC 25 km grid) into a dataset and catalogue it",
    )
    sample.add_argument("--project", required=True, help="the project that owns the dataset")
    sample.add_argument(
        "--dataset", default="seaice-sample", help="the dataset's name (default seaice-sample)"
    )
    sample.add_argument("--owner", help="create the project with this owner when it does not exist")
    sample.add_argument("--class", dest="storage_class", default="hdd", help="storage class (default hdd)")
    sample.add_argument("--start", default="2024-01-01", help="the first day (default 2024-01-01)")
    length = sample.add_mutually_exclusive_group()
    length.add_argument("--days", type=int, help=f"how many days (default {DEFAULT_DAYS})")
    length.add_argument("--years", type=int, default=0, help="how many years (2: 731 days, about 32 MB)")
    sample.add_argument(
        "--chips",
        type=int,
        default=400,
        help="how many SAR-like 64 x 64 ice/water chips to write (even; default 400, about 8 MB; 0: none)",
    )
    sample.add_argument(
        "--chips-dataset",
        default="sar-chips-sample",
        help="the chips' dataset, in the same project (default sar-chips-sample)",
    )
    sample.add_argument("--seed", type=int, default=0, help="the chips' random seed (default 0)")
    sample.set_defaults(func=handler)
