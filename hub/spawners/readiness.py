"""Wait for a just-started server to answer HTTP, polling briskly.

Why: JupyterHub's own readiness check backs off exponentially (0.2 s, 0.4 s, 0.8 s, ... between tries), so a server
that is up after 1.2 s is noticed at about 2 s. Spawners call ``wait_until_answering`` before returning from
``start()``; the hub's first check then succeeds at once. A server that dies while we wait ends the wait early, and
a timeout is not an error here: the hub's own check still decides and reports. ``alive`` may be a coroutine
function (asking Docker whether a container runs); ``alive_every`` keeps such checks rarer than the HTTP polls.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


async def wait_until_answering(
    url: str,
    within: float,
    alive: Callable[[], bool | Awaitable[bool]] = lambda: True,
    interval: float = 0.05,
    alive_every: float = 0.0,
) -> bool:
    """Poll ``url`` until any HTTP answer below 500 comes back; False when ``within`` seconds pass or when ``alive()`` turns False."""
    client = AsyncHTTPClient()
    deadline = time.monotonic() + within
    next_alive_check = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_alive_check:
            running = alive()
            if inspect.isawaitable(running):
                running = await running
            if not running:
                return False
            next_alive_check = time.monotonic() + alive_every
        try:
            response = await client.fetch(HTTPRequest(url, request_timeout=2), raise_error=False)
            if response.code < 500:
                return True
        except (OSError, HTTPClientError):
            pass
        await asyncio.sleep(interval)
    return False
