"""``polartep statements --month YYYY-MM``: every account's statement of the month as CSV on stdout.

Like ``polartep accounts``, it asks the running platform service (``GET api/v1/statements?month=&format=csv``) with
the hub's internal token, so the numbers are the service's (``usage/statements.py``) and no database is read here.
Failures are one line on stderr and exit status 1; a malformed month is refused before anything is asked.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any
from urllib.parse import urlencode

from polartep_hub.cli.accounts import AccountsCommandError, PlatformAdminClient
from polartep_hub.settings import PlatformSettings

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def run_statements_command(args: argparse.Namespace, settings: PlatformSettings) -> int:
    """Print the month's statements as CSV; 1 with a message on stderr when that cannot be done."""
    if not MONTH.match(args.month):
        print(
            f"polartep statements: --month must be YYYY-MM, e.g. 2026-11 (got {args.month!r})",
            file=sys.stderr,
        )
        return 1
    try:
        client = PlatformAdminClient(settings)
        try:
            body = client.request(
                "GET", "statements?" + urlencode({"month": args.month, "format": "csv"}), text=True
            )
        finally:
            client.close()
    except AccountsCommandError as error:
        print(f"polartep statements: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(body)
    return 0


def add_statements_parser(sub: Any, handler: Any) -> None:
    """Add ``statements`` to the ``polartep`` parser; ``handler(args)`` runs it."""
    parser = sub.add_parser(
        "statements", help="every account's statement of a month as CSV (talks to the running platform)"
    )
    parser.add_argument("--month", required=True, help="YYYY-MM (UTC), e.g. 2026-11")
    parser.set_defaults(func=handler)
