"""A bound on request body size, so no client can make the service buffer an arbitrary amount of data.

Rules this module guarantees:

* A request whose ``Content-Length`` exceeds the limit is answered 413 before its body is read.
* A body without ``Content-Length`` (chunked) is counted as it arrives; past the limit, reading it raises
  ``BodyTooLarge``, an ``HTTPException`` that FastAPI passes through and answers with 413.
* The limit is ``max_body_bytes`` for every path but those of ``path_limits`` (exact paths, e.g. the processor
  publish route, whose body carries a notebook, or templates whose ``{name}`` stands for one path segment, e.g.
  ``.../dashboards/{dashboard_id}/versions``), which the app declares once where it mounts the routes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """The request body is larger than the service accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body too large (the limit is {limit} bytes)")
        self.limit = limit


class BodyLimitMiddleware:
    """ASGI middleware enforcing ``max_body_bytes`` on every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default_max_body_bytes = max_body_bytes
        self.path_limits = {path: limit for path, limit in (path_limits or {}).items() if "{" not in path}
        # Templates: each {name} matches exactly one non-empty segment (never a "/"), the rest literally.
        self.template_limits = [
            (
                re.compile(
                    "".join(_template_part(part) for part in re.split(r"(\{[^/{}]+\})", path)) + r"\Z"
                ),
                limit,
            )
            for path, limit in (path_limits or {}).items()
            if "{" in path
        ]

    def limit_for(self, path: str) -> int:
        """The body limit of requests to ``path``."""
        if path in self.path_limits:
            return self.path_limits[path]
        for pattern, limit in self.template_limits:
            if pattern.match(path):
                return limit
        return self.default_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False  # the server rejects malformed lengths itself
                if too_large:
                    response = JSONResponse({"detail": BodyTooLarge(limit).detail}, status_code=413)
                    await response(scope, receive, send)
                    return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


def _template_part(part: str) -> str:
    return "[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part)
