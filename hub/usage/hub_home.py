"""The usage on the hub's home page: ``GET /hub/polartep/usage`` for the signed-in user, read by the home page's
script (``hub/templates/home.html``).

Why a hub route: the home page is the hub's, signed in with the hub's cookie, which the platform service does not
accept; the hub asks the service (``GET .../users/{name}/usage?with_intervals=false``) with its own internal token
and passes on this month's numbers. Rules: only the signed-in user's own usage (the name comes from the hub's
session, never from the request); no intervals; ``Cache-Control: no-store``; a service that cannot answer gives 503
with the message.
"""

from __future__ import annotations

import json

from jupyterhub.handlers import BaseHandler
from tornado import web

from polartep_hub.platform_client import PlatformClient

ROUTE = r"/polartep/usage"
FIELDS = (
    "plan",
    "allowance",
    "used",
    "left",
    "renews_at",
    "plan_ends_at",
    "running_cores",
    "top_up",
    "top_ups",
    "cpu_hours_by_day",
    "notifications",
)


class UsageSummaryHandler(BaseHandler):
    """This month's CPU-hours of the signed-in user (JSON)."""

    def initialize(self, service_url: str, token: str) -> None:
        self._client = PlatformClient(service_url, token)

    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")
        try:
            usage = await self._client.usage_summary(user.name)
        except web.HTTPError as error:
            self.set_status(error.status_code)
            self.finish(json.dumps({"message": error.log_message or "the platform service did not answer"}))
            return
        self.finish(json.dumps({"name": user.name, **{key: usage.get(key) for key in FIELDS}}))


def usage_handler(service_url: str, token: str) -> tuple[str, type[BaseHandler], dict[str, str]]:
    """The entry for ``JupyterHub.extra_handlers``."""
    return (ROUTE, UsageSummaryHandler, {"service_url": service_url, "token": token})
