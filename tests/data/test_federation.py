"""Federated STAC search: the platform's search also asks configured STAC APIs, merges, marks origins, never stalls.

Specification: with peers configured, the first page of a search holds the platform's own items (marked ``local``)
and each peer's items (marked with the peer's name); ``polartep:peers`` says how each peer answered; a peer that does
not answer in time is left out and named ``timeout``, one that refuses connections ``error: ...``; the answer comes
within the per-peer timeout. Pages after the first are the platform's own. The peer here is a second, independent
instance of the platform service (its own database and data) served over HTTP by uvicorn.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
import uvicorn

from polartep_hub.catalogue import load_catalogue
from polartep_hub.data.federation import parse_peers
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import upgrade_to_head
from tests.helpers.service_fakes import PREFIX, ApiClient, FakeIdentityProvider

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its test client; httpx (a declared dependency) works the same.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PEER_TIMEOUT = 1.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def item(item_id: str, day: int) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "bbox": [0.0, 70.0, 10.0, 80.0],
        "geometry": {"type": "Polygon", "coordinates": [[[0, 70], [10, 70], [10, 80], [0, 80], [0, 70]]]},
        "properties": {"datetime": f"2024-01-{day:02d}T00:00:00Z"},
        "links": [],
        "assets": {},
    }


def fill(api: ApiClient, project: str, token: str, items: list[dict]) -> None:
    assert (
        api.get(f"api/v1/users/{token.removesuffix('-token')}/entitlements", token="hub-token").status_code
        == 200
    )
    assert api.post("api/v1/projects", token=token, json={"name": project}).status_code == 201
    body = {"project": project, "name": "scenes", "storage_class": "hdd"}
    assert api.post("api/v1/datasets", token=token, json=body).status_code == 201
    written = api.post(
        f"api/v1/datasets/{project}/scenes/items",
        token=token,
        json={"type": "FeatureCollection", "features": items},
    )
    assert written.status_code == 200, written.text


@pytest.fixture
def peer(tmp_path) -> Iterator[str]:
    """A second platform service with two items in project ``remote``, on HTTP; yields its STAC root with a token."""
    url = f"sqlite:///{tmp_path / 'peer.sqlite'}"
    upgrade_to_head(url)
    config = ServiceConfig(
        prefix=PREFIX, database_url=url, default_plan="trial", datasets_dir=str(tmp_path / "peer")
    )
    app = create_app(config, load_catalogue(), identity_provider=FakeIdentityProvider())
    with TestClient(app) as client:
        fill(ApiClient(client), "remote", "bob-token", [item("remote-1", 2), item("remote-2", 3)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://bob-token@127.0.0.1:{port}{PREFIX}stac/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A peer that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stac/"
    listener.close()


@pytest.fixture
def service_config(service_config, peer, silent_peer):
    closed = free_port()  # nothing listens there
    peers = f"twin={peer},silent={silent_peer},closed=http://127.0.0.1:{closed}/stac/"
    return dataclasses.replace(service_config, stac_peers=peers, stac_peer_timeout=PEER_TIMEOUT)


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


def test_search_merges_the_peers_items_marked_with_their_origin_and_survives_dead_peers(api):
    fill(api, "sea-ice", "alice-token", [item("local-1", 1), item("local-2", 2)])
    started = time.monotonic()
    response = api.get("stac/search", token="alice-token", params={"bbox": "0,60,20,85", "limit": "10"})
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    body = response.json()
    origins = {f["id"]: f["properties"]["polartep:origin"] for f in body["features"]}
    assert origins == {"local-1": "local", "local-2": "local", "remote-1": "twin", "remote-2": "twin"}
    assert body["polartep:peers"]["twin"] == "ok"
    assert body["polartep:peers"]["silent"] == "timeout"
    assert body["polartep:peers"]["closed"].startswith("error: ")
    assert took < PEER_TIMEOUT + 1.0  # the silent peer stalls nothing beyond its timeout

    posted = api.post("stac/search", token="alice-token", json={"datetime": "2024-01-02T00:00:00Z"})
    assert sorted(f["id"] for f in posted.json()["features"]) == ["local-2", "remote-1"]


def test_later_pages_are_the_platforms_own(api):
    fill(api, "sea-ice", "alice-token", [item("local-1", 1), item("local-2", 2)])
    first = api.get("stac/search", token="alice-token", params={"limit": "1"}).json()
    assert sorted(f["id"] for f in first["features"]) == ["local-1", "remote-1"]
    nxt = next(link for link in first["links"] if link["rel"] == "next")["href"]
    second = api.get(nxt.removeprefix(f"http://testserver{PREFIX}"), token="alice-token").json()
    assert [f["id"] for f in second["features"]] == ["local-2"] and "polartep:peers" not in second


def test_peer_urls_keep_their_token_out_of_the_url():
    [peer] = parse_peers("twin=https://secret@example.org/stac")
    assert (peer.name, peer.url, peer.token) == ("twin", "https://example.org/stac/", "secret")
    with pytest.raises(ValueError, match="is not an http"):
        parse_peers("x=ftp://example.org/")
