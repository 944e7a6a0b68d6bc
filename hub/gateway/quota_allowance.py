"""Dask clusters under the platform's quota rule, decided inside the gateway's backend without awaiting between the
check and the creation.

**Choice: the backend asks once, then checks and reserves locally.** Before a cluster is created or scaled up
(``start_cluster``, ``scale``), the backend fetches the user's allowance from the platform service (``GET
.../users/{name}/allowance``, with the hub's token): what is left this month, what runs outside Dask (servers,
pending server starts) and the horizon. That is the only ``await``. Then, synchronously, it applies the same rule as
the service (``usage/quota.py``) to its *own* in-memory records of the user's clusters, which are exact and
current, and creates the scheduler or workers at once: the gateway is one asyncio process, so two concurrent
requests of one user cannot both take the last room (the records created by the first are the reservation the
second sees). Workers that adaptive scaling and heartbeats ask for (``_check_cluster_scale``, which must not
await) use the last fetched allowance, decremented by what has run since it was fetched; without one, no worker is
added and a fetch is started.

Rejected: asking the service per worker inside ``_check_cluster_scale`` (an await between check and create, and a
request per heartbeat); a service-side reservation per worker (the service learns of workers only through the
meter, a pass later); pushing allowances to the gateway (the service would need a route into the gateway and a
record of whom to push to).

Rules it guarantees: ``left_now = left - (other + dask cores) x seconds since the fetch``; a request of ``n`` cores
is admitted when ``left_now >= (other + dask cores + n) x horizon``; refusals say what is exhausted, by how much and
when it renews (the service's own sentence); an ended plan admits nothing; while the service cannot be reached the
last allowance fetched for the user is used (still a sound bound: what ran since is taken off, and no server can
start without the service), and a user never fetched is refused with "try again" and gets no worker.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from traitlets import Any as AnyTrait
from traitlets.config import LoggingConfigurable


@dataclass(frozen=True)
class Allowance:
    """A user's allowance as the service published it, and when this process fetched it (monotonic seconds)."""

    left_core_seconds: float
    other_cores: float
    horizon_seconds: float
    plan_ended: bool
    message: str
    fetched_at: float

    def left_now(self, dask_cores: float, now: float) -> float:
        """What is left at ``now``: what ran since the fetch (everything at its current size) is taken off."""
        return self.left_core_seconds - (self.other_cores + dask_cores) * max(0.0, now - self.fetched_at)

    def room(self, dask_cores: float, now: float) -> float:
        """How many more cores fit for the horizon beside everything running (may be negative)."""
        left = self.left_now(dask_cores, now)
        if self.plan_ended:
            return -math.inf
        if self.horizon_seconds <= 0:
            return math.inf if left >= 0 else -math.inf
        return left / self.horizon_seconds - (self.other_cores + dask_cores)

    def refusal(self, dask_cores: float, cores: float, what: str, now: float) -> str | None:
        """None when ``cores`` more fit, else the message for the user."""
        if self.plan_ended:
            return f"{self.message} ({what} refused)"
        if cores <= self.room(dask_cores, now) + 1e-9:
            return None
        left = self.left_now(dask_cores, now)
        needed = (self.other_cores + dask_cores + cores) * self.horizon_seconds
        return (
            f"Your CPU-hours are exhausted: {max(left, 0.0) / 3600:.2f} CPU-hours left this month. Your running work "
            f"({self.other_cores + dask_cores:g} cores) and {what} ({cores:g} cores) need {needed / 3600:.2f} "
            f"CPU-hours for the next {self.horizon_seconds / 60:g} minutes: {(needed - left) / 3600:.2f} CPU-hours "
            f"short. {self.message}"
        )


class AllowanceUnavailable(RuntimeError):
    """The platform service could not say what is left (unreachable or refused)."""


class AllowanceClient:
    """Fetches and keeps users' allowances from the platform service (one kept-alive HTTP client)."""

    def __init__(self, service_api_url: str, token: str, timeout: float = 10.0) -> None:
        self._url = service_api_url.rstrip("/") + "/users/{name}/allowance"
        self._headers = {"Authorization": f"token {token}"}
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self.cached: dict[str, Allowance] = {}
        self._fetching: set[str] = set()

    async def fetch(self, username: str) -> Allowance:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        try:
            r = await self._client.get(self._url.format(name=quote(username, safe="")))
        except httpx.HTTPError:
            raise AllowanceUnavailable(
                "The platform service is not reachable; try again in a minute."
            ) from None
        if r.status_code != 200:
            raise AllowanceUnavailable(
                f"Could not look up the CPU-hours left for {username} (HTTP {r.status_code}); try again."
            )
        body = r.json()
        allowance = Allowance(
            left_core_seconds=float(body["left_core_seconds"]),
            other_cores=float(body["other_cores"]),
            horizon_seconds=float(body["horizon_seconds"]),
            plan_ended=bool(body["plan_ended"]),
            message=str(body.get("message") or ""),
            fetched_at=time.monotonic(),
        )
        self.cached[username] = allowance
        return allowance

    def refresh_soon(self, username: str) -> None:
        """Fetch in the background (from code that must not await); one fetch per user at a time."""
        if username in self._fetching:
            return
        self._fetching.add(username)

        async def fetch() -> None:
            try:
                await self.fetch(username)
            except AllowanceUnavailable:
                pass
            finally:
                self._fetching.discard(username)

        asyncio.get_running_loop().create_task(fetch())


class QuotaAllowanceMixin(LoggingConfigurable):
    """Holds the backend's ``AllowanceClient`` (set by ``gateway/config.py``); ``None``: no quota (tests)."""

    quota_allowances = AnyTrait(
        None,
        allow_none=True,
        help="An AllowanceClient for the platform service's per-user allowances (None: clusters are not bounded "
        "by the CPU-hour allowance).",
        config=True,
    )
