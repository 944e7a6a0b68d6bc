"""The hub's event loop is never blocked, and never queued, by the platform look-ups of spawns running at once.

Regression test for the concurrent-spawn benchmark (``bench/spawn.py --users 10``): every spawn asks the platform
service for the user's consents and entitlements. These calls must be asynchronous (a synchronous call would stop
every other spawn, the proxy and the hub's API while it waits) and must not share tornado's default HTTP client,
which lets only 10 requests per event loop be in flight for the whole hub.

How it is checked, without timing anything: a platform service stand-in (a thread) holds every request it receives
until it has seen all of them in flight at once; only then does the test, running on the hub's event loop, release
them. A blocking call would keep the loop from ever sending the rest (the stand-in gives up and the test fails),
and a client queue of 10 would keep the count at 10. The readiness poll's own client is checked the same way.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tornado.httpclient import AsyncHTTPClient

from polartep_hub.platform_client import PlatformClient
from polartep_hub.spawners.readiness import wait_until_answering

USERS = 12  # more than tornado's default of 10 requests in flight per event loop
READINESS_HOLD = 1.5  # seconds; below the readiness poll's 2 s request timeout


class HeldService(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HeldHandler)
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()


class HeldHandler(BaseHTTPRequestHandler):
    server: HeldService

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        # A readiness poll gives up after its 2 s request timeout and polls again; answered 503 ("not yet") before
        # that, a poll is counted only while it is really waiting, so a re-poll cannot push the count past the mark.
        readiness = self.path.startswith("/user/")
        released = self.server.release.wait(READINESS_HOLD if readiness else 30)
        name = self.path.split("/users/")[-1].split("/")[0] if "/users/" in self.path else "x"
        if readiness and not released:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with self.server.lock:
                self.server.in_flight -= 1
            return
        if self.path.endswith("/consents"):
            body = {"missing": [], "consent_url": "/services/platform/consent"}
        else:
            body = {"name": name, "plan": "trial", "profiles": ["interactive"]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.in_flight -= 1


async def _until(predicate, what: str, within_polls: int = 3000) -> None:
    for _ in range(within_polls):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {what}")


async def test_consent_and_entitlement_lookups_of_many_spawns_are_all_in_flight_at_once():
    service = HeldService()
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    try:
        # Each spawner has its own PlatformClient (as ProfileSpawnerMixin.platform is per spawner).
        url = f"http://127.0.0.1:{service.server_address[1]}"
        clients = [PlatformClient(url, "token") for _ in range(USERS)]
        lookups = [
            asyncio.ensure_future(call)
            for i, client in enumerate(clients)
            for call in (client.consents(f"u{i}"), client.entitlements(f"u{i}"))
        ]
        # The hub's own traffic (its proxy and readiness calls use tornado's shared client) is not queued behind.
        hub_own = asyncio.ensure_future(AsyncHTTPClient().fetch(f"{url}/hub-own", raise_error=False))
        await _until(lambda: service.in_flight == 2 * USERS + 1, f"{2 * USERS + 1} requests in flight")
        service.release.set()
        results = await asyncio.gather(*lookups)
        assert (await hub_own).code == 200
    finally:
        service.release.set()
        service.shutdown()
    assert service.most_in_flight == 2 * USERS + 1
    assert [r.missing for r in results[0::2]] == [()] * USERS
    assert [r.name for r in results[1::2]] == [f"u{i}" for i in range(USERS)]


async def test_readiness_polls_of_many_servers_do_not_use_the_hubs_shared_http_client():
    service = HeldService()
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{service.server_address[1]}/user/u/api"
        waits = [asyncio.ensure_future(wait_until_answering(url, within=60)) for _ in range(USERS)]
        hub_own = asyncio.ensure_future(
            AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{service.server_address[1]}/hub-own", raise_error=False
            )
        )
        await _until(lambda: service.in_flight == USERS + 1, f"{USERS + 1} requests in flight")
        service.release.set()
        assert await asyncio.gather(*waits) == [True] * USERS
        assert (await hub_own).code == 200
    finally:
        service.release.set()
        service.shutdown()
