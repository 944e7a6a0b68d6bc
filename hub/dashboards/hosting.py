"""How many dashboards an owner may have, and the size each one runs with: the one rule, from the catalogue.

Rules this module guarantees:

* Each active ``hosting`` subscription of the catalogue (``kind: hosting``) allows ``DASHBOARDS_PER_HOSTING``
  dashboards; they run with the profile of the largest hosting subscription held (catalogue order of profiles).
* An owner without a hosting subscription may have ``DASHBOARDS_WITHOUT_HOSTING`` (1) dashboard, run with the
  smallest profile their plan allows (the first in catalogue order), so a shared result never costs more than the
  cheapest environment; an owner whose plan allows nothing (e.g. an ended Trial) may publish none.
* Administrators are bound like everyone else (they have every profile; they get the smallest).

Dashboards are counted apart from development servers: they never use up the owner's named-server places
(``spawners/dashboard_servers.named_server_limit``).
"""

from __future__ import annotations

from dataclasses import dataclass

from polartep_hub.catalogue import Catalogue

DASHBOARDS_PER_HOSTING = 5
DASHBOARDS_WITHOUT_HOSTING = 1


@dataclass(frozen=True)
class HostingAllowance:
    """How many dashboards an owner may have, the profile they run with, and where that comes from."""

    limit: int
    profile: str | None
    source: str  # the hosting subscriptions' names, or "plan"


def hosting_allowance(
    catalogue: Catalogue, profiles: tuple[str, ...], subscriptions: tuple[str, ...]
) -> HostingAllowance:
    """The allowance of an owner who may start ``profiles`` and holds ``subscriptions`` (entitlements' values)."""
    hosting = [
        catalogue.subscriptions[name]
        for name in subscriptions
        if name in catalogue.subscriptions and catalogue.subscriptions[name].kind == "hosting"
    ]
    if hosting:
        order = list(catalogue.profiles)
        largest = max(hosting, key=lambda item: order.index(item.profile) if item.profile in order else -1)
        return HostingAllowance(
            limit=DASHBOARDS_PER_HOSTING * len(hosting),
            profile=largest.profile,
            source=", ".join(sorted(item.name for item in hosting)),
        )
    if not profiles:
        return HostingAllowance(limit=0, profile=None, source="plan")
    return HostingAllowance(limit=DASHBOARDS_WITHOUT_HOSTING, profile=profiles[0], source="plan")
