"""Prometheus metrics of the platform service, in a registry of its own.

Rules this module guarantees:

* Metrics live in a per-app ``CollectorRegistry``, never prometheus_client's global one, so several apps (tests)
  in one process do not collide.
* Requests are counted and timed by route *template* (``/services/platform/api/v1/users/{name}/entitlements``),
  never by raw path, so label cardinality stays bounded; unrouted requests share the label ``unmatched``.
  (FastAPI >= 0.160 no longer copies the routes of an included router, so the route in the request scope carries
  only its path *inside* the router; ``route_templates`` maps each such route to its full template.)
* A request that raises is counted as a 500 before the error propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    """The service's metrics and their registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        # Called with the service context before each scrape; the domains that own a gauge's value register here
        # (service/app.py wires them), so the metrics route itself knows no domain.
        self.refreshers: list[Callable[[Any], None]] = []
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
        # argon2 slots (passwords.py), set at each scrape from the process's Passwords.
        self.password_hash_slots = Gauge(
            "polartep_platform_password_hash_slots",
            "Password hashes (argon2) allowed to run at once",
            registry=self.registry,
        )
        self.password_hashes_in_flight = Gauge(
            "polartep_platform_password_hashes_in_flight",
            "Password hashes (argon2) running now",
            registry=self.registry,
        )
        self.password_hashes_peak = Gauge(
            "polartep_platform_password_hashes_peak",
            "Most password hashes (argon2) that ran at once since the service started",
            registry=self.registry,
        )
        self.password_hash_busy_refusals = Gauge(
            "polartep_platform_password_hash_busy_refusals",
            "Logins and sign-ups refused since start because every password-hash slot was taken",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Clients choose the method token freely; fold the unusual ones so they cannot grow the label set.
        method = method if method in _KNOWN_METHODS else "other"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_duration.labels(method=method, route=route).observe(seconds)


def full_route_templates(prefix: str, routes: Iterable[Any]) -> dict[int, str]:
    """``{id(route): prefix + template}`` for the routes of a router included at ``prefix``."""
    return {id(route): prefix + route.path_format for route in routes if hasattr(route, "path_format")}


def route_template(scope: Scope, templates: Mapping[int, str]) -> str:
    """The template of the route that handled ``scope`` (set by the router), or ``unmatched``."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    if id(route) in templates:
        return templates[id(route)]
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """ASGI middleware that feeds ``ServiceMetrics`` with every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, route_templates: Mapping[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_templates = route_templates

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
            self.metrics.observe(
                scope["method"],
                route_template(scope, self.route_templates),
                status["code"],
                time.perf_counter() - started,
            )
