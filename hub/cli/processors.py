"""``polartep processors …``: list, show, draft, publish, list versions and share processors from the command line.

The commands call the platform service's processor API (``processors/api.py``) as a user, with a JupyterHub API token
of that user: ``POLARTEP_TOKEN``, else ``JUPYTERHUB_API_TOKEN`` (set inside every user server, so the command works
from a notebook's terminal as its owner). The service is ``POLARTEP_SERVICE_URL`` (set inside user servers), else the
platform's public URL plus the service prefix. Every rule is the service's: the command only shows its answers.

Rules this module guarantees:

* Without a token the command says where to get one; it never falls back to the hub's own token (a publish needs an
  owner, and listing as the hub would show everyone's processors).
* Failures are one line on stderr and exit status 1: the service's own message (e.g. each field of an invalid
  definition, a version that is not greater), or that the platform is not reachable.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from polartep_hub.platform_client import SERVICE_PREFIX


class ProcessorsCommandError(Exception):
    """A command could not be done; the message says why and what to do."""


class ProcessorsClient:
    """Synchronous calls to ``<service>/api/v1/processors`` with a user's token."""

    def __init__(self, service_url: str, token: str, timeout: float = 120.0) -> None:
        self.base = service_url.rstrip("/") + "/api/v1/"
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"token {token}"})

    @classmethod
    def from_environment(cls, public_url: str | None) -> ProcessorsClient:
        token = (
            os.environ.get("POLARTEP_TOKEN", "").strip() or os.environ.get("JUPYTERHUB_API_TOKEN", "").strip()
        )
        if not token:
            raise ProcessorsCommandError(
                "no token: set POLARTEP_TOKEN to a JupyterHub API token of yours (Hub Control Panel > Token), "
                "or run the command in a terminal of your server"
            )
        service = os.environ.get("POLARTEP_SERVICE_URL", "").strip()
        if not service:
            if not public_url:
                raise ProcessorsCommandError("no service: set POLARTEP_SERVICE_URL or POLARTEP_PUBLIC_URL")
            service = public_url.rstrip("/") + SERVICE_PREFIX
        return cls(service, token)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, self.base + path, json=body)
        except httpx.HTTPError as error:
            raise ProcessorsCommandError(
                f"the platform service at {self.base} did not answer ({type(error).__name__})"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            detail = payload.get("detail") if isinstance(payload, dict) else None
            raise ProcessorsCommandError(str(detail) if detail else f"HTTP {response.status_code}")
        return payload


def _table(headers: list[str], rows: list[list[str]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_list(processors: list[dict[str, Any]]) -> str:
    """Processors as a table: id, newest version, visibility, owner, title."""
    return _table(
        ["id", "version", "visibility", "owner", "title"],
        [[p["id"], p["version"], p["visibility"], p["owner"] or "-", p["title"]] for p in processors],
    )


def render_processor(p: dict[str, Any]) -> str:
    """One processor as ``key: value`` lines with its inputs and outputs."""
    definition = p.get("definition", {})
    lines = [
        f"id:          {p['id']}{' (withdrawn)' if p.get('withdrawn') else ''}",
        f"title:       {p['title']}",
        f"version:     {p['version']} (version {p['sequence']} of {p['versions']})",
        f"owner:       {p['owner'] or '-'}",
        f"visibility:  {p['visibility']}" + (f" ({', '.join(p['projects'])})" if p.get("projects") else ""),
        f"profile:     {definition.get('profile', '-')}, timeout {definition.get('timeout', '-')} s",
    ]
    for name, spec in (definition.get("inputs") or {}).items():
        default = f" = {json.dumps(spec['default'])}" if "default" in spec else ""
        lines.append(f"input:       {name}: {spec.get('type')}{default}")
    for name, spec in (definition.get("outputs") or {}).items():
        lines.append(f"output:      {name}: {spec.get('type')} {spec.get('path', '')}".rstrip())
    return "\n".join(lines)


def _notebook64(path: str) -> str:
    try:
        return base64.b64encode(Path(path).read_bytes()).decode()
    except OSError as error:
        raise ProcessorsCommandError(f"cannot read {path}: {error.strerror or error}") from None


def _definition(path: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ProcessorsCommandError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ProcessorsCommandError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ProcessorsCommandError(f"{path} must hold a JSON object (the processor definition)")
    return document


def run(args: argparse.Namespace, client: ProcessorsClient) -> Any:
    """Carry out one action; the service's answer (printed by the caller)."""
    pid = quote(getattr(args, "id", "") or "", safe="")
    if args.action == "list":
        return client.request("GET", "processors")
    if args.action == "show":
        return client.request("GET", f"processors/{pid}")
    if args.action == "versions":
        return client.request("GET", f"processors/{pid}/versions")
    if args.action == "draft":
        return client.request(
            "POST",
            "processors/draft",
            {"notebook": _notebook64(args.notebook), "filename": Path(args.notebook).name},
        )
    if args.action == "publish":
        return client.request(
            "POST",
            "processors",
            {"definition": _definition(args.definition), "notebook": _notebook64(args.notebook)},
        )
    if args.action == "share":
        return client.request(
            "PUT",
            f"processors/{pid}/sharing",
            {"visibility": args.visibility, "projects": args.project or []},
        )
    raise ProcessorsCommandError(f"unknown action {args.action!r}")


def render(action: str, result: Any) -> str:
    if action == "list":
        return render_list(result["processors"])
    if action in ("show", "share"):
        return render_processor(result)
    if action == "versions":
        return _table(
            ["sequence", "version", "published", "notebook sha256"],
            [
                [str(v["sequence"]), v["version"], v["published_at"][:19], v["notebook_sha256"][:12]]
                for v in result["versions"]
            ],
        )
    if action == "publish":
        made = "new processor" if result["created"] else "next version"
        return f"published {result['id']} {result['version']} (version {result['sequence']}, {made})"
    return json.dumps(result, indent=2)  # draft: the definition to edit


def run_processors_command(args: argparse.Namespace, public_url: str | None) -> int:
    """Carry out ``polartep processors <action>``; returns the exit status."""
    try:
        client = ProcessorsClient.from_environment(public_url)
    except ProcessorsCommandError as error:
        print(f"polartep processors: {error}", file=sys.stderr)
        return 1
    try:
        result = run(args, client)
    except ProcessorsCommandError as error:
        print(f"polartep processors: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(result, indent=2) if args.json else render(args.action, result))
    return 0


def add_processors_parser(sub: Any, handler: Any) -> None:
    """Add ``processors`` and its actions to the ``polartep`` parser; ``handler(args)`` runs them."""
    processors = sub.add_parser(
        "processors",
        help="list, publish and share processors (as a user: POLARTEP_TOKEN or JUPYTERHUB_API_TOKEN)",
    )
    actions = processors.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, *arguments: tuple[str, str]) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        for argument, argument_help in arguments:
            parser.add_argument(argument, help=argument_help)
        parser.add_argument("--json", action="store_true", help="print the service's JSON answer")
        parser.set_defaults(func=handler)
        return parser

    action("list", "the processors you may see")
    action("show", "one processor: newest version, inputs, outputs, sharing", ("id", "processor id"))
    action("versions", "every published version of a processor", ("id", "processor id"))
    action(
        "draft",
        "print the definition inferred from a notebook's parameters cell (save it as processor.json and edit)",
        ("notebook", "the .ipynb file"),
    )
    action(
        "publish",
        "publish a notebook with its definition (a new processor or its next version)",
        ("notebook", "the .ipynb file"),
        ("definition", "the processor.json file"),
    )
    share = action("share", "who may see and run a processor", ("id", "processor id"))
    share.add_argument("--visibility", required=True, choices=["private", "projects", "public"])
    share.add_argument(
        "--project", action="append", help="a project to share with (repeat; with --visibility projects)"
    )
