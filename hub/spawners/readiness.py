"""Wait for a just-started server to answer HTTP, polling briskly.

Why: JupyterHub's own readiness check backs off exponentially (0.2 s, 0.4 s, 0.8 s, ... between tries), so a server
that is up after 1.2 s is noticed at about 2 s. Spawners call ``wait_until_answering`` before returning from
``start()``; the hub's first check then succeeds at once. A server that dies while we wait ends the wait early, and
a timeout is not an error here: the hub's own check still decides and reports. ``alive`` may be a coroutine
function (asking Docker whether a container runs); ``alive_every`` keeps such checks rarer than the HTTP polls.

Each wait polls with an HTTP client of its own (``force_instance``), never tornado's shared default client: that one
allows 10 requests in flight for the whole hub, so with 10 servers starting at once the polls (each up to its 2 s
timeout against a server that is listening but still busy) would hold every place and queue the hub's own proxy
and readiness calls behind them. Until the port accepts a TCP connection a poll is only a connect attempt (Jupyter
Server binds its port at the end of its start-up), so ten servers starting at once cost the hub's single event
loop, which shares the cores with them, little CPU while they boot.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


async def wait_until_answering(
    url: str,
    within: float,
    alive: Callable[[], bool | Awaitable[bool]] = lambda: True,
    interval: float = 0.05,
    alive_every: float = 0.0,
) -> bool:
    """Poll ``url`` until any HTTP answer below 500 comes back; False when ``within`` seconds pass or when ``alive()`` turns False."""
    client = AsyncHTTPClient(force_instance=True, max_clients=1)
    try:
        return await _poll(client, url, within, alive, interval, alive_every)
    finally:
        client.close()


async def _accepts_connections(url: str) -> bool:
    """Whether the server's port accepts a TCP connection (a refused connect costs far less than an HTTP try)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout=2)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def _poll(
    client: AsyncHTTPClient,
    url: str,
    within: float,
    alive: Callable[[], bool | Awaitable[bool]],
    interval: float,
    alive_every: float,
) -> bool:
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
        if not await _accepts_connections(url):
            # Jupyter Server binds its port only at the end of its start-up: until then, a cheap TCP try.
            await asyncio.sleep(interval)
            continue
        try:
            response = await client.fetch(HTTPRequest(url, request_timeout=2), raise_error=False)
            if response.code < 500:
                return True
        except (OSError, HTTPClientError):
            pass
        await asyncio.sleep(interval)
    return False
