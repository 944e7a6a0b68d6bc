"""Python HTTP clients that reach ``*.localhost`` names, as browsers do, for the per-user origin tests.

Browsers resolve ``localhost`` and every ``*.localhost`` name to loopback by themselves; Python's ``getaddrinfo``
does not know ``alice.localhost``. ``localhost_names_transport()`` is an httpx transport whose connections to such
a name go to 127.0.0.1 while the request keeps its real URL: the ``Host`` header, cookie domains and redirects are
exactly what a browser would see. Every other name is connected to as usual.

Rejected: rewriting URLs to 127.0.0.1 with a ``Host`` header (cookies would be stored for 127.0.0.1, redirects to
the user's host would leave the client), and editing ``/etc/hosts`` (shared by every test on the machine, and
wildcards are impossible there).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


def loopback_address(host: str) -> str:
    """127.0.0.1 for ``localhost`` names (``localhost``, ``*.localhost``), ``host`` itself otherwise."""
    name = host.lower().rstrip(".")
    return "127.0.0.1" if name == "localhost" or name.endswith(".localhost") else host


class LocalhostNamesBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting ``*.localhost`` names to 127.0.0.1."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return super().connect_tcp(loopback_address(host), port, timeout, local_address, socket_options)


def localhost_names_transport() -> httpx.HTTPTransport:
    """An httpx transport that reaches ``*.localhost`` names on 127.0.0.1 (plain HTTP/1.1, no proxy)."""
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx takes no network backend of its own; its pool is replaced by an identical one that has ours.
    transport._pool = httpcore.ConnectionPool(network_backend=LocalhostNamesBackend())
    return transport


def localhost_names_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` (cookies, redirects as asked) that reaches ``*.localhost`` names."""
    return httpx.Client(transport=localhost_names_transport(), trust_env=False, **kwargs)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, like ``httpx.request``, that may go to a ``*.localhost`` name."""
    with localhost_names_client(timeout=kwargs.pop("timeout", 30)) as client:
        return client.request(method, url, **kwargs)
