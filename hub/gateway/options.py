"""Cluster options a user may choose, bounded by their plan: worker environment (profile), worker cores and memory.

dask-gateway-server asks ``cluster_options(user)`` for the options of each request; ``PlanLookup`` answers it from
the platform service's entitlements (the user's plan and the profiles it allows; one HTTP call on a kept-alive
connection) and the catalogue (the plan's ``dask`` limits, the profiles' images). Rules this module guarantees:

* ``profile`` offers exactly the profiles the user's plan allows (admins: every profile), in catalogue order; the
  chosen profile's image becomes the cluster's ``worker_image`` (Docker-style backends run workers from it; the
  local backend runs every profile from the platform's own environment, as local-mode servers do).
* ``worker_cores`` and ``worker_memory`` are bounded by the plan's ``max_cores`` and ``max_worker_memory``; asking
  beyond a bound is refused with a message that names it (``max_cores=8``), before anything starts.
* Each cluster's configuration carries the plan's bounds twice: per cluster (dask-gateway's own
  ``cluster_max_workers/cores/memory``: ``scale``/``adapt`` beyond them are clipped with a warning naming the
  limit) and for the user's total over all their clusters (``user_max_*``, enforced by ``user_totals.py``).
* A plan without a ``dask`` block allows no cluster; an unreachable platform service refuses with "try again".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from dask_gateway_server.backends.local import LocalClusterConfig
from traitlets import Float, Integer, Unicode

from polartep_hub.catalogue import Catalogue, DaskLimits
from polartep_hub.platform_client import SERVICE_PREFIX
from polartep_hub.settings import PlatformSettings

GIB = 2**30


class PlatformClusterConfig(LocalClusterConfig):
    """dask-gateway's cluster configuration plus what the platform needs to know about each cluster."""

    plan = Unicode("", help="The plan the cluster was created under.", config=True)
    worker_profile = Unicode("", help="The catalogue profile the workers run as.", config=True)
    worker_image = Unicode("", help="The profile's image (used by container backends).", config=True)
    user_max_workers = Integer(
        None, allow_none=True, help="The plan's max_workers over all the user's clusters.", config=True
    )
    user_max_cores = Float(
        None, allow_none=True, help="The plan's max_cores over all the user's clusters.", config=True
    )
    user_max_memory = Integer(
        None,
        allow_none=True,
        help="Memory (bytes) over all the user's clusters: max_workers x max_worker_memory.",
        config=True,
    )


@dataclass(frozen=True)
class UserDaskPlan:
    """What one user may ask of the gateway: their plan, its Dask limits and the profiles it allows."""

    username: str
    plan: str
    limits: DaskLimits
    profiles: tuple[str, ...]


class PlanLookup:
    """A user's plan and allowed profiles from the platform service, their Dask limits from the catalogue."""

    def __init__(self, settings: PlatformSettings, catalogue: Catalogue, timeout: float = 10) -> None:
        self.catalogue = catalogue
        self._url = settings.service_url + SERVICE_PREFIX + "api/v1/users/{name}/entitlements"
        self._headers = {"Authorization": f"token {settings.hub_service_token}"}
        self._timeout = timeout
        # One client for the gateway's lifetime: a new client per request costs a TLS context and a connection
        # (measured in bench/gateway.py's start time).
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        return self._client

    async def user_plan(self, username: str, admin: bool = False) -> UserDaskPlan:
        """The user's plan; ``ValueError`` (shown to the user) when it cannot be read or allows no cluster."""
        try:
            r = await self._http().get(
                self._url.format(name=quote(username, safe="")),
                params={"admin": "true" if admin else "false"},
            )
        except httpx.HTTPError:
            raise ValueError("The platform service is not reachable; try again in a minute.") from None
        if r.status_code != 200:
            raise ValueError(f"Could not look up the plan of {username} (HTTP {r.status_code}); try again.")
        body = r.json()
        if body.get("being_erased"):
            raise ValueError(body.get("message") or "This account is being erased; no cluster can start.")
        if body.get("plan_expired"):
            # An ended Trial allows no work at all, clusters included (polartep_hub.accounts.entitlements).
            raise ValueError(body.get("message") or f"Your plan {body['plan']!r} has ended.")
        plan = body["plan"]
        limits = self.catalogue.plan(plan).dask
        if limits is None:
            raise ValueError(f"Your plan {plan!r} does not include Dask clusters.")
        profiles = tuple(p for p in body["profiles"] if p in self.catalogue.profiles)
        if not profiles:
            raise ValueError(f"Your plan {plan!r} allows no profile to run Dask workers with.")
        return UserDaskPlan(username=username, plan=plan, limits=limits, profiles=profiles)


def cluster_configuration(
    user_plan: UserDaskPlan,
    catalogue: Catalogue,
    *,
    profile: str,
    worker_cores: int,
    worker_memory_gib: float,
    idle_timeout: int,
) -> dict[str, Any]:
    """The ``PlatformClusterConfig`` values for validated choices; ``ValueError`` naming the bound otherwise."""
    plan, limits = user_plan.plan, user_plan.limits
    if profile not in user_plan.profiles:
        raise ValueError(
            f"profile={profile!r} is not allowed by your plan {plan!r}; choose one of: "
            f"{', '.join(user_plan.profiles)}."
        )
    if worker_cores > limits.max_cores:
        raise ValueError(
            f"worker_cores={worker_cores} is more than your plan {plan!r} allows "
            f"(max_cores={limits.max_cores:g})."
        )
    if worker_memory_gib * GIB > limits.max_worker_memory:
        raise ValueError(
            f"worker_memory={worker_memory_gib:g} GiB is more than your plan {plan!r} allows "
            f"(max_worker_memory={limits.max_worker_memory / GIB:g} GiB)."
        )
    # Workers per cluster: the plan's count, and never more cores in total than the plan's max_cores.
    max_workers = max(1, min(limits.max_workers, int(limits.max_cores // worker_cores)))
    total_memory = limits.max_workers * limits.max_worker_memory
    return {
        "worker_cores": worker_cores,
        "worker_memory": int(worker_memory_gib * GIB),
        "cluster_max_workers": max_workers,
        "cluster_max_cores": limits.max_cores,
        "cluster_max_memory": total_memory,
        "idle_timeout": idle_timeout,
        "plan": plan,
        "worker_profile": profile,
        "worker_image": catalogue.profile(profile).image,
        "user_max_workers": limits.max_workers,
        "user_max_cores": limits.max_cores,
        "user_max_memory": total_memory,
    }


def bounded_options(user_plan: UserDaskPlan, catalogue: Catalogue, idle_timeout: int):
    """The options form for one user: worker profile and size fields, with a handler enforcing the plan."""
    from dask_gateway_server.options import Float as FloatField
    from dask_gateway_server.options import Integer as IntegerField
    from dask_gateway_server.options import Options, Select

    class ProfileSelect(Select):
        def validate(self, x):
            if isinstance(x, str) and x not in self.options:
                raise ValueError(
                    f"profile={x!r} is not allowed by your plan {user_plan.plan!r}; choose one of: "
                    f"{', '.join(user_plan.profiles)}."
                )
            return super().validate(x)

    def handler(options, user) -> dict[str, Any]:
        return cluster_configuration(
            user_plan,
            catalogue,
            profile=options.profile,
            worker_cores=options.worker_cores,
            worker_memory_gib=options.worker_memory,
            idle_timeout=idle_timeout,
        )

    default_memory = min(2.0, user_plan.limits.max_worker_memory / GIB)
    return Options(
        ProfileSelect(
            "profile",
            list(user_plan.profiles),
            default=user_plan.profiles[0],
            label="Worker environment (profile)",
        ),
        IntegerField("worker_cores", default=1, min=1, label="Worker cores"),
        FloatField("worker_memory", default=default_memory, min=0.25, label="Worker memory (GiB)"),
        handler=handler,
    )
