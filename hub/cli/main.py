"""The ``polartep`` command for operators: start the platform, check its configuration, show the catalogue.

``polartep up`` starts the proxy on its own (reusing one that already runs) and then JupyterHub in the foreground,
which starts the platform service. ``polartep check`` validates the catalogue and settings and exits non-zero with
the problems listed. ``polartep catalogue`` prints profiles, plans and prices as tables (or JSON). ``polartep accounts
…`` lists accounts and changes plans and subscriptions through the running platform service (``accounts_cli.py``).
``polartep processors …`` lists, publishes and shares processors as a user (``cli/processors.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from traitlets import TraitError

from polartep_hub.catalogue import Catalogue, CatalogueError, load_catalogue
from polartep_hub.cli.accounts import add_accounts_parser
from polartep_hub.cli.data import add_data_parser
from polartep_hub.cli.datasets import add_datasets_parser
from polartep_hub.cli.processors import add_processors_parser
from polartep_hub.cli.statements import add_statements_parser
from polartep_hub.gateway.helm_values import add_helm_values_command
from polartep_hub.proxy_process import (
    also_listen,
    answers,
    proxy_executable,
    proxy_is_up,
    start_proxy,
    stop_proxy,
)
from polartep_hub.settings import REPO_ROOT, PlatformSettings


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _money(value: float, currency: str) -> str:
    return f"{value:,.0f} {currency}"


def render_catalogue(catalogue: Catalogue) -> str:
    """The catalogue as plain-text tables."""
    cur = catalogue.currency
    parts = [
        "Profiles\n"
        + _table(
            ["name", "display name", "CPU", "memory", "GPU", "image"],
            [
                [
                    p.name,
                    p.display_name,
                    f"{p.cpu:g}",
                    p.memory_text,
                    f"{p.gpu} ({p.gpu_policy})" if p.gpu else "-",
                    p.image,
                ]
                for p in catalogue.profiles.values()
            ],
        ),
        "Plans\n"
        + _table(
            ["name", "display name", "CPU-hours/month", "price/month", "duration", "profiles"],
            [
                [
                    p.name,
                    p.display_name,
                    f"{p.cpu_hours_per_month:g}",
                    _money(p.price, cur),
                    f"{p.duration_months} months" if p.duration_months else "-",
                    ", ".join(p.profiles),
                ]
                for p in catalogue.plans.values()
            ],
        ),
        "Subscriptions\n"
        + _table(
            ["name", "display name", "kind", "profile", "price/month"],
            [
                [s.name, s.display_name, s.kind, s.profile, _money(s.price, cur)]
                for s in catalogue.subscriptions.values()
            ],
        ),
        "Storage\n"
        + _table(
            ["name", "display name", "price/TB-month"],
            [[s.name, s.display_name, _money(s.price_per_tb_month, cur)] for s in catalogue.storage.values()],
        ),
        "Support services\n"
        + _table(
            ["name", "display name", "price", "per"],
            [[s.name, s.display_name, _money(s.price, cur), s.unit] for s in catalogue.services.values()],
        ),
    ]
    return "\n\n".join(parts)


def check(settings: PlatformSettings) -> list[str]:
    """Problems with the catalogue and settings, as messages; empty when everything is usable."""
    problems = settings.problems()
    try:
        catalogue = load_catalogue(settings.catalogue_path)
    except CatalogueError as e:
        return [*problems, str(e)]
    if settings.default_plan not in catalogue.plans:
        problems.append(
            f"POLARTEP_DEFAULT_PLAN={settings.default_plan!r} is not a plan; choose one of: {', '.join(catalogue.plans)}"
        )
    if settings.mode in ("docker", "swarm"):
        try:
            import dockerspawner  # noqa: F401
        except ImportError:
            problems.append(f"mode '{settings.mode}' needs dockerspawner: pip install 'polartep[docker]'")
    try:
        proxy_executable()
    except FileNotFoundError as e:
        problems.append(str(e))
    return problems


def _load_settings() -> PlatformSettings:
    try:
        return PlatformSettings()
    except (TraitError, ValueError) as e:
        raise SystemExit(f"polartep: invalid setting: {e}") from None


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load_settings()
    problems = check(settings)
    if args.verbose or not problems:
        for name, value, _ in settings.describe():
            print(f"{name:22} {value}")
    warnings = settings.warnings()
    if warnings:
        print("\n".join(["", "Warnings:"] + [f"- {w}" for w in warnings]), file=sys.stderr)
    if problems:
        print("\n".join(["", "Problems:"] + [f"- {p}" for p in problems]), file=sys.stderr)
        return 1
    print("\nCatalogue and settings are valid.")
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    settings = _load_settings()
    try:
        catalogue = load_catalogue(args.file or settings.catalogue_path)
    except CatalogueError as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(catalogue.as_dict(), indent=2) if args.json else render_catalogue(catalogue))
    return 0


def user_servers_line(settings: PlatformSettings) -> str:
    """Where users' servers are served, for ``polartep up``: their own origins, or a warning that they share one."""
    if settings.user_subdomain_host:
        return (
            f"User servers have origins of their own: {settings.user_origin('alice')}/user/alice/ for 'alice' "
            "(subdomain_host; production needs wildcard DNS and a wildcard TLS certificate)."
        )
    return (
        f"User servers share the hub's origin ({settings.public_url}/user/<user>/): a page on any user's server can "
        "act as its visitors. Set POLARTEP_SUBDOMAIN_HOST=on with a host name in POLARTEP_PUBLIC_URL (README: Origins)."
    )


def cmd_up(args: argparse.Namespace) -> int:
    settings = _load_settings()
    problems = check(settings)
    if problems:
        print("\n".join(["polartep: cannot start:"] + [f"- {p}" for p in problems]), file=sys.stderr)
        return 1
    settings.state_path.mkdir(parents=True, exist_ok=True)
    if proxy_is_up(settings):
        print(f"Reusing the proxy already running on {settings.public_url}")
        missing = [f"{host}:{port}" for host, port in also_listen(settings) if not answers((host, port))]
        if missing:
            # Started by an older release or in another mode: containers could not reach the public routes.
            print(
                f"polartep: the running proxy does not listen on {', '.join(missing)}, where user containers reach "
                "it; run `polartep down` and `polartep up` again",
                file=sys.stderr,
            )
            return 1
    else:
        start_proxy(settings)
    password_hint = (
        f"the password in {settings.state_path / 'admin-password'}"
        if not os.environ.get("POLARTEP_ADMIN_PASSWORD")
        else "the password in POLARTEP_ADMIN_PASSWORD"
    )
    settings.admin_password  # noqa: B018  (creates the generated password file before we point at it)
    print(
        f"\nPolar TEP ({settings.mode} mode) is starting.\n"
        f"  Log in at {settings.public_url}/hub/login as '{settings.admin_user}' with {password_hint}.\n"
        f"  {user_servers_line(settings)}\n"
        f"  Stop with Ctrl-C; user servers and the proxy keep running (polartep down stops the proxy).\n",
        flush=True,
    )
    config = str(REPO_ROOT / "jupyterhub_config.py")
    os.chdir(settings.state_path)
    os.execv(sys.executable, [sys.executable, "-m", "jupyterhub", "-f", config])
    return 0  # not reached


def cmd_down(args: argparse.Namespace) -> int:
    settings = _load_settings()
    print("proxy stopped" if stop_proxy(settings) else "no proxy was running")
    return 0


def _bound(value: float | None) -> str:
    return "any" if value is None else f"{value:g}"


def render_settings_reference() -> str:
    """The configuration reference (``docs/configuration.md``), generated from the settings' traits."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `polartep config-reference` from `polartep_hub.settings.PlatformSettings`; do not edit by hand.",
        "Each setting is read from its environment variable, or set as `c.PlatformSettings.<name>` in a config file.",
        "",
        "| setting | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, trait in sorted(PlatformSettings.class_traits(config=True).items()):
        help_text = " ".join(trait.help.split()).replace("|", "\\|")
        kind = type(trait).__name__
        if getattr(trait, "min", None) is not None or getattr(trait, "max", None) is not None:
            kind += f" ({_bound(trait.min)} to {_bound(trait.max)})"
        # Only settings declared with their default (tagged env=) have one that holds whatever else is set.
        shown = f"`{trait.default_value}`" if "env" in trait.metadata else "see meaning"
        lines.append(f"| `{name}` | {kind} | {shown} | {help_text} |")
    return "\n".join(lines) + "\n"


def cmd_config_reference(args: argparse.Namespace) -> int:
    print(render_settings_reference(), end="")
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    from polartep_hub.cli.accounts import run_accounts_command

    return run_accounts_command(args, _load_settings())


def cmd_processors(args: argparse.Namespace) -> int:
    from polartep_hub.cli.processors import run_processors_command

    # Inside a user server POLARTEP_SERVICE_URL is set and the platform's settings are not needed.
    public_url = None if os.environ.get("POLARTEP_SERVICE_URL") else _load_settings().public_url
    return run_processors_command(args, public_url)


def cmd_statements(args: argparse.Namespace) -> int:
    from polartep_hub.cli.statements import run_statements_command

    return run_statements_command(args, _load_settings())


def cmd_datasets(args: argparse.Namespace) -> int:
    from polartep_hub.cli.datasets import run_datasets_command

    return run_datasets_command(args, _load_settings())


def cmd_data(args: argparse.Namespace) -> int:
    from polartep_hub.cli.data import run_sample_command

    return run_sample_command(args, _load_settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polartep", description="Operate the Polar TEP platform.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the proxy (if needed) and the hub with the platform service")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the proxy that `polartep up` started")
    down.set_defaults(func=cmd_down)
    chk = sub.add_parser("check", help="validate the catalogue and settings")
    chk.add_argument(
        "-v", "--verbose", action="store_true", help="print the settings even when there are problems"
    )
    chk.set_defaults(func=cmd_check)
    cat = sub.add_parser("catalogue", help="print profiles, plans and prices")
    cat.add_argument("--json", action="store_true", help="print JSON instead of tables")
    cat.add_argument("--file", help="a catalogue file to show instead of the configured one")
    cat.set_defaults(func=cmd_catalogue)
    ref = sub.add_parser("config-reference", help="print the configuration reference (docs/configuration.md)")
    ref.set_defaults(func=cmd_config_reference)
    add_accounts_parser(sub, cmd_accounts)
    add_processors_parser(sub, cmd_processors)
    add_statements_parser(sub, cmd_statements)
    add_datasets_parser(sub, cmd_datasets)
    add_data_parser(sub, cmd_data)
    add_helm_values_command(sub)  # gateway-helm-values (gateway/kubernetes.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TraitError as e:  # settings are read lazily, so a bad variable can surface here
        print(f"polartep: invalid setting: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
