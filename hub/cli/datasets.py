"""``polartep datasets …``: operators list, create, grant, revoke and delete datasets from the command line.

The commands go through the running platform service exactly like ``polartep accounts`` (``accounts.py``: the
hub's internal token, through the proxy), so every rule of the datasets API applies unchanged
(``polartep_hub.data.api``); the hub acts as an administrator there. Failures are one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from polartep_hub.cli.accounts import AccountsCommandError, PlatformAdminClient
from polartep_hub.settings import PlatformSettings


def render_dataset(dataset: dict[str, Any]) -> str:
    lines = [
        f"dataset:        {dataset['project']}/{dataset['name']}",
        f"title:          {dataset['title']}",
        f"storage class:  {dataset['storage_class']}",
        f"granted to:     {', '.join(dataset['granted_to']) or '-'}",
        # A dataset in the object store has no folder in servers: its objects are reached by presigned URLs.
        f"in servers at:  ~/{dataset['mount_path']}"
        if dataset.get("mount_path")
        else f"in servers at:  the object store (polartep_lab.datasets.ObjectDataset({dataset['project']!r}, "
        f"{dataset['name']!r}))",
    ]
    if dataset.get("bytes") is not None:
        lines.append(f"bytes:          {dataset['bytes']}")
    return "\n".join(lines)


def _path(args: argparse.Namespace) -> str:
    return f"datasets/{quote(args.project, safe='')}/{quote(args.name, safe='')}"


def run_datasets_command(args: argparse.Namespace, settings: PlatformSettings) -> int:
    """Carry out ``polartep datasets <action>``; returns the exit status."""
    try:
        client = PlatformAdminClient(settings)
    except AccountsCommandError as error:
        print(f"polartep datasets: {error}", file=sys.stderr)
        return 1
    try:
        if args.action == "list":
            result = client.request("GET", "datasets")
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                for d in result["datasets"]:
                    print(f"{d['project']}/{d['name']}  {d['storage_class']}  {d['title']}")
            return 0
        if args.action == "delete":
            client.request("DELETE", _path(args))
            print(f"deleted {args.project}/{args.name}")
            return 0
        if args.action == "show":
            result = client.request("GET", _path(args))
        elif args.action == "create":
            body = {"project": args.project, "name": args.name, "storage_class": args.storage_class}
            if args.title:
                body["title"] = args.title
            result = client.request("POST", "datasets", body)
        elif args.action == "grant":
            result = client.request("PUT", f"{_path(args)}/grants/{quote(args.grantee, safe='')}")
        elif args.action == "revoke":
            result = client.request("DELETE", f"{_path(args)}/grants/{quote(args.grantee, safe='')}")
        else:  # argparse only lets the actions above through
            raise AccountsCommandError(f"unknown action {args.action!r}")
        print(json.dumps(result, indent=2) if args.json else render_dataset(result))
        return 0
    except AccountsCommandError as error:
        print(f"polartep datasets: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()


def add_datasets_parser(sub: Any, handler: Any) -> None:
    """Add ``datasets`` and its actions to the ``polartep`` parser; ``handler(args)`` runs them."""
    parser = sub.add_parser(
        "datasets", help="list, create, grant, revoke and delete datasets (running platform)"
    )
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, *arguments: str) -> argparse.ArgumentParser:
        command = actions.add_parser(name, help=help_text)
        for argument in arguments:
            command.add_argument(argument)
        command.add_argument("--json", action="store_true", help="print the service's JSON answer")
        command.set_defaults(func=handler)
        return command

    action("list", "every dataset")
    action("show", "one dataset with its grants and size", "project", "name")
    create = action("create", "a new, empty dataset of a project", "project", "name")
    create.add_argument("--class", dest="storage_class", default="hdd", help="storage class (default hdd)")
    create.add_argument("--title", help="a title (default: the name)")
    action("delete", "delete a dataset and its files", "project", "name")
    action("grant", "give another project read access", "project", "name", "grantee")
    action("revoke", "withdraw a project's read access", "project", "name", "grantee")
