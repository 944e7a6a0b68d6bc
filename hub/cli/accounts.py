"""``polartep accounts …``: administrators change plans and subscriptions from the command line.

The commands talk to the running platform service through the proxy (``public_url``) with the token of the hub's
internal client ``polartep-hub`` (``POLARTEP_HUB_SERVICE_TOKEN``, or the file ``STATE_DIR/hub-service-token`` the
platform generated on its first start). That token's scope ``custom:polartep:hub`` is what the service's admin
routes accept from the hub, so whoever can read the state folder (the operator) can use these commands, and every
rule of the API applies unchanged (``polartep_hub.accounts.api.plans``).

Rules this module guarantees:

* No command reads or writes the platform database directly; the service stays the one owner of platform state.
* Reading the token never creates it: without a state folder that a platform has run from, the command says so.
* Failures are one line on stderr and exit status 1: the platform not running (with how to start it), the token
  refused, or the service's own message for a refused request (unknown plan, account, subscription; 409s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx

from polartep_hub.platform_client import SERVICE_PREFIX
from polartep_hub.settings import PlatformSettings

TOKEN_FILE = "hub-service-token"


class AccountsCommandError(Exception):
    """A command could not be done; the message says why and what to do."""


class PlatformAdminClient:
    """Synchronous calls to the platform service's admin API through the proxy, as the hub."""

    def __init__(self, settings: PlatformSettings, timeout: float = 30.0) -> None:
        self.base = settings.public_url.rstrip("/") + SERVICE_PREFIX + "api/v1/"
        self.public_url = settings.public_url
        token = os.environ.get("POLARTEP_HUB_SERVICE_TOKEN", "").strip()
        if not token:
            path = settings.state_path / TOKEN_FILE
            if not path.exists():
                raise AccountsCommandError(
                    f"no platform has run from the state folder {settings.state_path} (no {TOKEN_FILE} there): "
                    "start it with `polartep up`, or set POLARTEP_STATE_DIR to the folder it runs from"
                )
            try:
                token = path.read_text().strip()
            except OSError as error:
                raise AccountsCommandError(f"cannot read {path}: {error.strerror or error}") from None
        self._client = httpx.Client(timeout=timeout, headers={"Authorization": f"token {token}"})

    def close(self) -> None:
        self._client.close()

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, text: bool = False
    ) -> Any:
        """The service's JSON answer (``text``: its body as text, e.g. CSV); ``AccountsCommandError`` otherwise."""
        url = self.base + path
        try:
            response = self._client.request(method, url, json=body)
        except httpx.ConnectError:
            raise AccountsCommandError(
                f"the platform is not running at {self.public_url} (nothing answers): start it with `polartep up`"
            ) from None
        except httpx.HTTPError as error:
            raise AccountsCommandError(
                f"the platform at {self.public_url} did not answer: {type(error).__name__}"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if response.status_code in (401, 403):
            raise AccountsCommandError(
                f"the platform service refused the hub's token (HTTP {response.status_code}: {detail}); "
                "is POLARTEP_STATE_DIR the folder this platform runs from?"
            )
        if response.status_code >= 400:
            if detail is None:
                # Not the service's JSON: the proxy answered, so the hub (and with it the service) is down.
                raise AccountsCommandError(
                    f"the platform service is not running behind {self.public_url} (HTTP {response.status_code}): "
                    "is the hub running? Start it with `polartep up`"
                )
            raise AccountsCommandError(str(detail))
        return response.text if text else payload


def _date(value: str | None) -> str:
    return value[:10] if value else "-"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_account(account: dict[str, Any]) -> str:
    """One account as ``key: value`` lines."""
    ends = ""
    if account.get("plan_ends_at"):
        ends = f", {'ended' if account['plan_expired'] else 'ends'} {_date(account['plan_ends_at'])}"
    lines = [
        f"account:        {account['name']}{' (admin)' if account['admin'] else ''}",
        f"plan:           {account['plan']} ({account['plan_display_name']}) since "
        f"{_date(account['plan_started_at'])}{ends}",
        f"subscriptions:  {', '.join(account['subscriptions']) or '-'}",
        f"may start:      {', '.join(account['profiles']) or 'nothing'}",
    ]
    if account.get("message"):
        lines.append(f"note:           {account['message']}")
    ended = [s for s in account.get("subscription_history", []) if s.get("ended_at")]
    if ended:
        lines.append(
            "ended:          "
            + ", ".join(
                f"{s['subscription']} ({_date(s['started_at'])} to {_date(s['ended_at'])})" for s in ended
            )
        )
    return "\n".join(lines)


def render_accounts(accounts: list[dict[str, Any]]) -> str:
    return _table(
        ["name", "plan", "since", "ends", "subscriptions"],
        [
            [
                a["name"] + (" (admin)" if a["admin"] else ""),
                a["plan"],
                _date(a["plan_started_at"]),
                _date(a["plan_ends_at"]) + (" (ended)" if a["plan_expired"] else ""),
                ", ".join(a["subscriptions"]) or "-",
            ]
            for a in accounts
        ],
    )


def run_accounts_command(args: argparse.Namespace, settings: PlatformSettings) -> int:
    """Carry out ``polartep accounts <action>``; returns the exit status."""
    try:
        client = PlatformAdminClient(settings)
    except AccountsCommandError as error:
        print(f"polartep accounts: {error}", file=sys.stderr)
        return 1
    try:
        name = quote(getattr(args, "name", "") or "", safe="")
        if args.action == "list":
            result = client.request("GET", "accounts")
            print(json.dumps(result, indent=2) if args.json else render_accounts(result["accounts"]))
            return 0
        if args.action == "show":
            result = client.request("GET", f"accounts/{name}")
        elif args.action == "set-plan":
            result = client.request("PUT", f"accounts/{name}/plan", {"plan": args.plan})
        elif args.action == "subscribe":
            result = client.request(
                "POST", f"accounts/{name}/subscriptions/{quote(args.subscription, safe='')}"
            )
        elif args.action == "unsubscribe":
            result = client.request(
                "DELETE", f"accounts/{name}/subscriptions/{quote(args.subscription, safe='')}"
            )
        else:  # argparse only lets the actions above through
            raise AccountsCommandError(f"unknown action {args.action!r}")
        print(json.dumps(result, indent=2) if args.json else render_account(result))
        return 0
    except AccountsCommandError as error:
        print(f"polartep accounts: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()


def add_accounts_parser(sub: Any, handler: Any) -> None:
    """Add ``accounts`` and its actions to the ``polartep`` parser; ``handler(args)`` runs them."""
    accounts = sub.add_parser(
        "accounts", help="list accounts and change plans and subscriptions (talks to the running platform)"
    )
    actions = accounts.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, *arguments: tuple[str, str]) -> None:
        parser = actions.add_parser(name, help=help_text)
        for argument, argument_help in arguments:
            parser.add_argument(argument, help=argument_help)
        parser.add_argument("--json", action="store_true", help="print the service's JSON answer")
        parser.set_defaults(func=handler)

    action("list", "every account with its plan and subscriptions")
    action("show", "one account: plan, subscriptions, what it may start", ("name", "account name"))
    action(
        "set-plan",
        "move an account to another plan (its period restarts)",
        ("name", "account name"),
        ("plan", "a plan of the catalogue, e.g. standard"),
    )
    action(
        "subscribe",
        "give an account a subscription",
        ("name", "account name"),
        ("subscription", "a subscription of the catalogue, e.g. ml"),
    )
    action(
        "unsubscribe",
        "end an account's subscription (kept for statements)",
        ("name", "account name"),
        ("subscription", "the subscription to end"),
    )
