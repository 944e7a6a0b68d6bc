"""Attack: from inside a user's server, forge the federated search's paging token so that the platform sends its
request (and a peer's credentials) somewhere else.

The platform federates with one peer, ``honest``, configured with a credential (``http://peer-secret@...``). A
``next`` token of a federated search holds, per peer, where that peer goes on; mallory, code in her real
(local-mode) server with the server's own token, writes such tokens herself (base64 JSON, as anyone can read them)
and sends them to the service through the proxy:

* a next URL for ``honest`` that points at another service on the machine (``victim``): 400, the token's rule;
* a next URL on the honest peer's host that climbs out of its search (``search/../../hub/api/users``): 400;
* a next URL under a peer name that is not configured: that part is dropped, the search answers 200 with no peer;
* a token far over any real one (50 000 characters): 400.
Afterwards the victim has received no request at all, and every request the honest peer received was its own item
search (``POST /stac/search``), carried the peer's own credential and the federation marker, and never mallory's
token. The baseline proves the set-up is real: mallory's first search holds the honest peer's item, marked with
its origin.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.harness import RunningPlatform
from tests.helpers.inside_server import run_inside_server

pytestmark = pytest.mark.hub

ATTACK = r"""
import base64, json, os, urllib.error, urllib.request

token = os.environ["JUPYTERHUB_API_TOKEN"]
search = os.environ["POLARTEP_SERVICE_URL"] + "stac/search"
honest, victim = os.environ["HONEST"], os.environ["VICTIM"]

def call(body):
    request = urllib.request.Request(search, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": "token " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return [response.status, json.loads(response.read())]
    except urllib.error.HTTPError as e:
        return [e.code, json.loads(e.read() or b"null")]

def forged(peers):
    raw = json.dumps({"l": 0, "p": peers}).encode()
    return "f." + base64.urlsafe_b64encode(raw).decode().rstrip("=")

first = call({"limit": 5})
print(json.dumps({
    "baseline": [first[0], [(f["id"], f["properties"]["polartep:origin"]) for f in first[1]["features"]],
                 first[1].get("polartep:peers")],
    "elsewhere": call({"token": forged({"honest": [None, victim + "search?limit=1", 0]})}),
    "climb_out": call({"token": forged({"honest": [None, honest + "search/../../hub/api/users", 0]})}),
    "unknown_peer": call({"token": forged({"evil": [None, victim + "search", 0]})}),
    "huge": call({"token": "f." + "A" * 50000}),
}))
"""


class Recorder(BaseHTTPRequestHandler):
    """Records every request; as the ``honest`` peer it answers a landing page and one item per search."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if self.path == "/stac/":
            body = {"type": "Catalog", "id": "honest", "conformsTo": [], "links": []}
        else:
            feature = {
                "type": "Feature",
                "id": "honest-1",
                "properties": {"datetime": "2024-01-01T00:00:00Z"},
            }
            body = {"type": "FeatureCollection", "features": [feature], "links": []}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def recorder() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> Iterator[tuple[RunningPlatform, ThreadingHTTPServer, ThreadingHTTPServer]]:
    honest, victim = recorder(), recorder()
    env = {
        "POLARTEP_STAC_PEERS": f"honest=http://peer-secret@127.0.0.1:{honest.server_address[1]}/stac/",
        "POLARTEP_STAC_PEER_TIMEOUT": "5",
    }
    try:
        with RunningPlatform(tmp_path_factory.mktemp("federation"), extra_env=env).running() as running:
            token = running.create_user("mallory", password="Mallory-Moraine-77")
            running.spawn("mallory", token)
            yield running, honest, victim
    finally:
        for server in (honest, victim):
            server.shutdown()
            server.server_close()


def test_forged_paging_tokens_send_nothing_elsewhere_and_no_credential_leaks(setting):
    platform, honest, victim = setting
    env = {
        "HONEST": f"http://127.0.0.1:{honest.server_address[1]}/stac/",
        "VICTIM": f"http://127.0.0.1:{victim.server_address[1]}/stac/",
    }
    found = run_inside_server(platform, "mallory", ATTACK, env=env)
    assert found["baseline"] == [200, [["honest-1", "honest"]], {"honest": "ok"}]
    refused = [400, {"detail": "token: use the token of a next link as given"}]
    assert found["elsewhere"] == refused
    assert found["climb_out"] == refused
    assert found["huge"] == refused
    status, page = found["unknown_peer"]
    assert (status, page["features"], "polartep:peers" in page) == (200, [], False)
    assert victim.seen == []
    assert [(method, path) for method, path, _ in honest.seen] == [("POST", "/stac/search")]
    headers = honest.seen[0][2]
    assert headers["Authorization"] == "token peer-secret"
    assert headers["X-Polartep-Federated"] == "1"
