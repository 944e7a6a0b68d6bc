"""The platform look-ups of one spawn overlap where the order cannot matter, and every refusal stays what it was.

``ProfileSpawnerMixin._apply_profile_options`` asks the platform service (a real ``PlatformClient`` over HTTP, against
a stand-in service in a thread) for the consents and the entitlements at once, then for the quota decision while
the dataset mounts are read; ``start()`` takes that mounts answer instead of asking again.

How overlap is checked without timing anything: the stand-in holds each request of a pair (consents and
entitlements; admission and mounts) until the other one has arrived, up to a few seconds. A client that asked one
after the other would leave each held request alone; the test then never sees both in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tornado.web import HTTPError

from polartep_hub.platform_client import PlatformClient
from polartep_hub.spawners.docker import DockerProfileSpawner

CONSENT_OK = {"missing": [], "consent_url": "/services/platform/consent"}
CONSENT_MISSING = {
    "missing": [{"title": "Terms and conditions", "version": "2026-11-01"}],
    "consent_url": "/services/platform/consent",
}
ENTITLED = {"name": "alice", "plan": "large", "profiles": ["interactive"]}
ADMITTED = {
    "admitted": True,
    "server": "",
    "profile": "interactive",
    "cores": 1.0,
    "memory_bytes": 4 * 1024**3,
    "reserved_until": "2026-12-07T17:00:00+00:00",
    "left": 10.0,
    "renews_at": None,
}
MOUNTS = {"mounts": [], "roots": ["/srv/datasets"]}
# Each request of a pair is held until the other one has arrived too (whichever the client sends first).
PAIRS = (("consents", "entitlements"), ("server-admissions", "dataset-mounts"))
PARTNERS = {a: b for pair in PAIRS for a, b in (pair, pair[::-1])}


def route(path: str) -> str:
    return path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


class StandInService(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: dict[str, tuple[int, dict]]) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.answers = answers
        self.lock = threading.Lock()
        self.arrived: dict[str, threading.Event] = {name: threading.Event() for name in answers}
        self.seen: list[str] = []
        self.in_flight: set[str] = set()
        self.together: list[set[str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class StandInHandler(BaseHTTPRequestHandler):
    server: StandInService

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self) -> None:
        name = route(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.seen.append(name)
            self.server.in_flight.add(name)
            self.server.together.append(set(self.server.in_flight))
            self.server.arrived[name].set()
        partner = PARTNERS.get(name)
        if partner:
            self.server.arrived[partner].wait(5)
            with self.server.lock:
                self.server.together.append(set(self.server.in_flight))
        code, body = self.server.answers[name]
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.in_flight.discard(name)

    do_GET = _answer  # noqa: N815 (http.server's naming)
    do_POST = _answer  # noqa: N815


@pytest.fixture
def service(request):
    answers = {
        "consents": (200, CONSENT_OK),
        "entitlements": (200, ENTITLED),
        "server-admissions": (201, ADMITTED),
        "dataset-mounts": (200, MOUNTS),
        **getattr(request, "param", {}),
    }
    running = StandInService(answers)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    # Each test has its own event loop: no HTTP client of an earlier test's loop (keyed by the loop's id).
    PlatformClient._http_clients.clear()
    yield running
    running.shutdown()
    PlatformClient._http_clients.clear()


def spawner(service: StandInService) -> DockerProfileSpawner:
    user = types.SimpleNamespace(name="alice", id=1, url="/user/alice/", admin=False)
    s = DockerProfileSpawner(user=user, network_name="host")
    s.platform = PlatformClient(service.url, "hub-token")
    return s


def were_in_flight_together(service: StandInService, first: str, second: str) -> bool:
    return any({first, second} <= moment for moment in service.together)


async def test_consents_with_entitlements_and_mounts_with_the_admission_are_asked_at_once(service):
    s = spawner(service)
    await s._apply_profile_options({"profile": "interactive"})
    assert were_in_flight_together(service, "consents", "entitlements")
    assert were_in_flight_together(service, "server-admissions", "dataset-mounts")
    assert s.profile_name == "interactive"
    # start() takes the answer read during the admission: no second request.
    assert await s.spawn_dataset_mounts() == MOUNTS
    assert sorted(service.seen) == ["consents", "dataset-mounts", "entitlements", "server-admissions"]
    # A later spawn of the same spawner object asks afresh (the answer is used once).
    assert await s.spawn_dataset_mounts() == MOUNTS
    assert service.seen.count("dataset-mounts") == 2


@pytest.mark.parametrize(
    "service",
    [{"consents": (200, CONSENT_MISSING), "entitlements": (500, {"detail": "boom"})}],
    indirect=True,
)
async def test_a_missing_consent_is_the_refusal_even_when_the_entitlements_fail(service):
    with pytest.raises(HTTPError) as refused:
        await spawner(service)._apply_profile_options({"profile": "interactive"})
    assert refused.value.status_code == 403
    assert refused.value.log_message.startswith(
        "alice has not accepted the current Terms and conditions (version 2026-11-01): no server starts before that."
    )
    assert "server-admissions" not in service.seen
    assert "dataset-mounts" not in service.seen


@pytest.mark.parametrize("service", [{"entitlements": (500, {"detail": "database down"})}], indirect=True)
async def test_failing_entitlements_refuse_the_spawn_before_any_admission(service):
    with pytest.raises(HTTPError) as refused:
        await spawner(service)._apply_profile_options({"profile": "interactive"})
    assert refused.value.status_code == 503
    assert refused.value.log_message == "Could not look up the plan of alice: database down"
    assert "server-admissions" not in service.seen


async def test_a_profile_the_plan_lacks_is_refused_before_any_admission(service):
    with pytest.raises(HTTPError) as refused:
        await spawner(service)._apply_profile_options({"profile": "ml"})
    assert refused.value.status_code == 400
    assert refused.value.log_message == (
        "Your plan does not include the profile 'ml', nor do your subscriptions. Profiles you may use: interactive."
    )
    assert sorted(service.seen) == ["consents", "entitlements"]


@pytest.mark.parametrize(
    "service",
    [{"server-admissions": (403, {"detail": "No CPU-hours left this month.", "reason": "cpu_hours"})}],
    indirect=True,
)
async def test_a_refused_admission_is_the_services_message_and_leaves_no_lookup_behind(service):
    s = spawner(service)
    with pytest.raises(HTTPError) as refused:
        await s._apply_profile_options({"profile": "interactive"})
    assert refused.value.status_code == 403
    assert refused.value.log_message == "No CPU-hours left this month."
    assert s.profile_name == ""
    # No lookup of the refused spawn is left for a later start to take.
    assert getattr(s, "_dataset_mounts_lookup", None) is None
    # ... nor a task still running it (tornado's own connection may finish in the background).
    assert [t for t in asyncio.all_tasks() if "dataset_mounts" in repr(t.get_coro())] == []
