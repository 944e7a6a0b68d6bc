"""Prometheus metrics of the platform service, in a registry of its own.

Rules this module guarantees:

* Metrics live in a per-app ``CollectorRegistry``, never prometheus_client's global one, so several apps (tests)
  in one process do not collide.
* Requests are counted and timed by route *template* (``/services/platform/api/v1/users/{name}/entitlements``),
  never by raw path, so label cardinality stays bounded; unrouted requests share the label ``unmatched``.
* A request that raises is counted as a 500 before the error propagates.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"


class ServiceMetrics:
    """The service's metrics and their registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "polartep_platform_requests",
            "HTTP requests answered by the platform service",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "polartep_platform_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.accounts = Gauge(
            "polartep_platform_accounts",
            "Accounts in the platform database (updated at each scrape)",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_duration.labels(method=method, route=route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that handled ``scope`` (set by the router), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """ASGI middleware that feeds ``ServiceMetrics`` with every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_and_record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        except BaseException:
            status["code"] = 500
            raise
        finally:
            self.metrics.observe(scope["method"], route_template(scope), status["code"], time.perf_counter() - started)
