"""Security headers on every response of the platform service.

Rules this module guarantees:

* Every HTTP response carries ``Content-Security-Policy`` (``default-src 'none'; frame-ancestors 'none'`` unless the
  route set a policy of its own, as the API docs page does), ``X-Content-Type-Options: nosniff`` and
  ``Referrer-Policy: no-referrer``.
* Responses built outside the middleware stack (the last-resort 500 handler) use ``SECURITY_HEADERS`` directly.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": STRICT_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    """ASGI middleware that adds ``SECURITY_HEADERS`` to each response, keeping any the route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
