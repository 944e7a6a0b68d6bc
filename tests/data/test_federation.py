"""Federated STAC search against real, independent peers: merge, origins, paging across sources, dead and slow peers.

Specification: with peers configured, every page of a search holds at most ``limit`` items taken in turn from the
platform (marked ``local``) and each peer (marked with the peer's name), by GET and by POST, with bbox, datetime and
collections applied by every source; ``polartep:peers`` says how each peer asked for that page answered; the
``next`` links go on through every source until all are exhausted, each item served once. A peer that does not
answer in time is named ``timeout``, one whose server is stopped ``error: ...``, and the page comes within the
per-peer timeout all the same. A free-text search is not sent to a peer that does not declare free text (it would
ignore ``q``). pystac-client pages through the merged search.

The peers: ``pgstac``, stac-fastapi-pgstac on PostgreSQL + PostGIS loaded with ``pypgstac`` (``pgstac_peer``,
required in CI), the STAC server of the STAC community and nothing of this platform; ``twin``, a second instance of
the platform service (its own database, over HTTP); ``silent``, a socket that never answers; ``closed``, a port
where nothing listens.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn

from polartep_hub.catalogue import load_catalogue
from polartep_hub.data.federation import Cursor, Peer, PeerPage, interleave, parse_peers, peer_search_body
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import upgrade_to_head
from tests.helpers.service_fakes import PREFIX, ApiClient, FakeIdentityProvider

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its test client; httpx (a declared dependency) works the same.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PEER_TIMEOUT = 1.5
JANUARY = "2024-01-01T00:00:00Z/2024-01-31T23:59:59Z"
ARCTIC = "0,60,20,85"
LOCAL = [f"local-{d}" for d in range(1, 6)]
PGSTAC = [f"pg-{d}" for d in range(5, 0, -1)]  # pgstac answers newest first
TWIN = ["remote-1", "remote-2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def item(item_id: str, day: int, bbox=(0.0, 70.0, 10.0, 80.0), month: str = "2024-01", **extra) -> dict:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "bbox": list(bbox),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": f"{month}-{day:02d}T00:00:00Z"},
        "links": [],
        "assets": {},
        **extra,
    }


def collection(collection_id: str) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": f"{collection_id}, loaded into pgstac by the federation tests",
        "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        "links": [],
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


@pytest.fixture(scope="module")
def pgstac(pgstac_peer) -> str:
    """The pgstac peer's root, with five January scenes in the Arctic (``pg-1``..``pg-5``), one in the Antarctic,
    one from 2025, and one in another collection (February)."""
    pgstac_peer.load(
        [collection("nsidc-scenes"), collection("other-scenes")],
        [
            *(item(f"pg-{d}", d, collection="nsidc-scenes") for d in range(1, 6)),
            item("pg-south", 3, bbox=(0.0, -80.0, 10.0, -70.0), collection="nsidc-scenes"),
            item("pg-2025", 3, month="2025-01", collection="nsidc-scenes"),
            item("pg-other", 10, month="2024-02", collection="other-scenes"),
        ],
    )
    return pgstac_peer.url


@pytest.fixture
def twin(tmp_path) -> Iterator[str]:
    """A second platform service with two items in project ``remote``, on HTTP; yields its STAC root with a token."""
    url = f"sqlite:///{tmp_path / 'peer.sqlite'}"
    upgrade_to_head(url)
    config = ServiceConfig(
        prefix=PREFIX, database_url=url, default_plan="trial", datasets_dir=str(tmp_path / "peer")
    )
    app = create_app(config, load_catalogue(), identity_provider=FakeIdentityProvider())
    with TestClient(app) as client:
        fill(ApiClient(client), "remote", "bob-token", [item("remote-1", 2), item("remote-2", 3)])
    with serving(app) as root:
        yield root.replace("http://", "http://bob-token@")


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A peer that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stac/"
    listener.close()


@pytest.fixture
def dead_peers(silent_peer) -> str:
    """Two more peers for the tests that ask for them: one never answers, nothing listens at the other."""
    return f"silent={silent_peer},closed=http://127.0.0.1:{free_port()}/stac/"


@pytest.fixture
def service_config(service_config, pgstac, twin, request):
    peers = f"pgstac={pgstac},twin={twin}"
    if "dead_peers" in request.fixturenames:  # each search then waits for the silent peer's timeout
        peers += "," + request.getfixturevalue("dead_peers")
    return dataclasses.replace(service_config, stac_peers=peers, stac_peer_timeout=PEER_TIMEOUT)


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


@pytest.fixture
def local(api) -> None:
    """Alice's five January scenes in the Arctic, and one in the Antarctic."""
    fill(
        api,
        "sea-ice",
        "alice-token",
        [*(item(f"local-{d}", d) for d in range(1, 6)), item("local-south", 3, bbox=(0, -80, 10, -70))],
    )


class serving:
    """The service ``app`` over HTTP (uvicorn in a thread) on a free port; the context's value is its STAC root."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}{PREFIX}stac/"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def pages(api: ApiClient, first, token: str = "alice-token") -> list[dict]:
    """Every page of a search, following ``next`` links (GET: the href; POST: the link's body) to the end."""
    found = [first.json()]
    while True:
        link = next((x for x in found[-1]["links"] if x["rel"] == "next"), None)
        if link is None:
            return found
        if link["method"] == "POST":
            response = api.post("stac/search", token=token, json=link["body"])
        else:
            response = api.get(link["href"].removeprefix(f"http://testserver{PREFIX}"), token=token)
        assert response.status_code == 200, response.text
        found.append(response.json())
        assert len(found) < 50, "paging does not end"


def origins(page: dict) -> list[tuple[str, str]]:
    return [(f["id"], f["properties"]["polartep:origin"]) for f in page["features"]]


def test_search_merges_the_pgstac_peers_items_marked_with_their_origin_and_survives_dead_peers(
    dead_peers, api, local
):
    started = time.monotonic()
    response = api.get(
        "stac/search", token="alice-token", params={"bbox": ARCTIC, "datetime": JANUARY, "limit": "5"}
    )
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    page = response.json()
    # In turn: the platform's first, pgstac's newest, the twin's first, ... at most ``limit`` in all.
    assert origins(page) == [
        ("local-1", "local"),
        ("pg-5", "pgstac"),
        ("remote-1", "twin"),
        ("local-2", "local"),
        ("pg-4", "pgstac"),
    ]
    assert page["polartep:peers"] == {
        "pgstac": "ok",
        "twin": "ok",
        "silent": "timeout",
        "closed": "error: ConnectError",
    }
    assert took < PEER_TIMEOUT + 1.0  # the silent peer stalls nothing beyond its timeout
    # A pgstac item keeps its own links, which lead to the pgstac server.
    pg = page["features"][1]
    assert pg["collection"] == "nsidc-scenes"
    assert next(x["href"] for x in pg["links"] if x["rel"] == "self").startswith(api_root(pg))


def api_root(feature: dict) -> str:
    return next(x["href"] for x in feature["links"] if x["rel"] == "root")


def test_paging_by_get_goes_through_every_source_once(dead_peers, api, local):
    first = api.get(
        "stac/search", token="alice-token", params={"bbox": ARCTIC, "datetime": JANUARY, "limit": "3"}
    )
    found = pages(api, first)
    served = [pair for page in found for pair in origins(page)]
    assert all(0 < len(page["features"]) <= 3 for page in found)
    assert sorted(served) == sorted(
        [(i, "local") for i in LOCAL] + [(i, "pgstac") for i in PGSTAC] + [(i, "twin") for i in TWIN]
    )
    # Each source in its own order, none repeated, none left out (pgstac paged by its own ``next`` tokens).
    assert [i for i, o in served if o == "pgstac"] == PGSTAC
    assert [i for i, o in served if o == "local"] == LOCAL
    # The failed peers are asked on the first page only; the last page says who was still asked.
    assert set(found[0]["polartep:peers"]) == {"pgstac", "twin", "silent", "closed"}
    assert all(set(page.get("polartep:peers", {})) <= {"pgstac", "twin"} for page in found[1:])


def test_paging_by_post_with_collections_and_datetime(api, local):
    body = {"bbox": [0, 60, 20, 85], "datetime": "2024-01-02T00:00:00Z/2024-01-04T00:00:00Z", "limit": 2}
    found = pages(api, api.post("stac/search", token="alice-token", json=body))
    served = [pair for page in found for pair in origins(page)]
    assert sorted(served) == sorted(
        [("local-2", "local"), ("local-3", "local"), ("local-4", "local")]
        + [("pg-4", "pgstac"), ("pg-3", "pgstac"), ("pg-2", "pgstac")]
        + [("remote-1", "twin"), ("remote-2", "twin")]
    )
    assert all(len(page["features"]) <= 2 for page in found)
    # Collections are applied by every source: pgstac's own collection id, and one only the platform has.
    only_pgstac = {**body, "collections": ["nsidc-scenes"], "limit": 10}
    assert origins(api.post("stac/search", token="alice-token", json=only_pgstac).json()) == [
        ("pg-4", "pgstac"),
        ("pg-3", "pgstac"),
        ("pg-2", "pgstac"),
    ]
    other = {"bbox": [0, 60, 20, 85], "collections": ["other-scenes"]}
    assert origins(api.post("stac/search", token="alice-token", json=other).json()) == [
        ("pg-other", "pgstac")
    ]
    only_local = {**body, "collections": ["sea-ice:scenes"], "limit": 10}
    page = api.post("stac/search", token="alice-token", json=only_local).json()
    assert [i for i, _ in origins(page)] == ["local-2", "local-3", "local-4"]
    assert page["polartep:peers"]["pgstac"] == "ok"
    # An instant and an open interval reach pgstac in the form it parses (RFC 3339, Z).
    instant = api.get("stac/search", token="alice-token", params={"datetime": "2024-01-03T00:00:00+00:00"})
    assert sorted(origins(instant.json())) == [
        ("local-3", "local"),
        ("local-south", "local"),
        ("pg-3", "pgstac"),
        ("pg-south", "pgstac"),
        ("remote-2", "twin"),
    ]
    opened = api.get(
        "stac/search", token="alice-token", params={"datetime": "2025-01-01T00:00:00Z/..", "limit": "20"}
    )
    assert origins(opened.json()) == [("pg-2025", "pgstac")]


def test_a_pgstac_server_stopped_between_pages_is_left_out_and_paging_ends(api, local, pgstac_peer):
    first = api.get(
        "stac/search", token="alice-token", params={"bbox": ARCTIC, "datetime": JANUARY, "limit": "4"}
    )
    assert origins(first.json())[:2] == [("local-1", "local"), ("pg-5", "pgstac")]
    pgstac_peer.stop_api()
    try:
        started = time.monotonic()
        found = pages(api, first)
        assert time.monotonic() - started < 5 * (PEER_TIMEOUT + 1)
        assert found[1]["polartep:peers"]["pgstac"] == "error: ConnectError"
        served = [pair for page in found for pair in origins(page)]
        assert [i for i, o in served if o == "pgstac"] == ["pg-5"]  # what came before it stopped
        assert [i for i, o in served if o == "local"] == LOCAL and [
            i for i, o in served if o == "twin"
        ] == TWIN
    finally:
        pgstac_peer.start_api()
    again = api.get("stac/search", token="alice-token", params={"bbox": ARCTIC, "datetime": JANUARY})
    assert again.json()["polartep:peers"]["pgstac"] == "ok"


def test_a_slow_pgstac_server_does_not_stall_the_search(api, local, pgstac_peer):
    with pgstac_peer.slowed():  # its searches wait on a lock in its database
        started = time.monotonic()
        response = api.post("stac/search", token="alice-token", json={"bbox": [0, 60, 20, 85], "limit": 4})
        took = time.monotonic() - started
    assert took < PEER_TIMEOUT + 1.0
    page = response.json()
    assert page["polartep:peers"]["pgstac"] == "timeout"
    assert origins(page) == [
        ("local-1", "local"),
        ("remote-1", "twin"),
        ("local-2", "local"),
        ("remote-2", "twin"),
    ]
    # Once its database answers again, so does the peer.
    after = api.post("stac/search", token="alice-token", json={"bbox": [0, 60, 20, 85], "limit": 4}).json()
    assert after["polartep:peers"]["pgstac"] == "ok" and ("pg-2025", "pgstac") in origins(after)


def test_free_text_is_not_sent_to_a_peer_that_would_ignore_it(api, local):
    page = api.get("stac/search", token="alice-token", params={"q": "remote-2"}).json()
    # pgstac declares no free-text search and answers every item to a ``q``: it is not asked; the twin is.
    assert page["polartep:peers"]["pgstac"] == "skipped: it does not declare free-text search (q)"
    assert origins(page) == [("remote-2", "twin")]


def test_forged_tokens_are_400(api, local, pgstac):
    root = parse_peers(f"x=http://127.0.0.1:{free_port()}/")[0]
    forged = Cursor(local=0, peers={"pgstac": PeerPage(href=f"{root.url}search?limit=1")}).encode()
    # Its own host, but not its item search: a next URL may only ever lead to the peer's ``search``.
    beside = Cursor(local=0, peers={"pgstac": PeerPage(href=f"{pgstac}search/../collections")}).encode()
    for token in ("f.not-base64!", "f.e30", forged, beside, "-1", "abc"):
        response = api.get("stac/search", token="alice-token", params={"token": token})
        assert response.status_code == 400, token
        assert response.json()["detail"] == "token: use the token of a next link as given"


def test_pystac_client_pages_through_the_merged_search(app, local):
    from pystac_client import Client

    with serving(app) as root:
        client = Client.open(root, headers={"Authorization": "token alice-token"})
        for method in ("GET", "POST"):
            search = client.search(
                bbox=[0, 60, 20, 85], datetime=JANUARY, limit=3, max_items=50, method=method
            )
            found = [(i.id, i.properties["polartep:origin"]) for i in search.items()]
            assert sorted(found) == sorted(
                [(i, "local") for i in LOCAL] + [(i, "pgstac") for i in PGSTAC] + [(i, "twin") for i in TWIN]
            ), method


def test_interleave_takes_from_each_source_in_turn():
    assert interleave([[1, 2, 3], ["a"], [], ["x", "y"]], 5) == ([1, "a", "x", 2, "y"], [2, 1, 0, 2])
    assert interleave([[1], [2]], 10) == ([1, 2], [1, 1])


def test_the_search_sent_to_peers_is_rewritten_in_rfc_3339_utc():
    moment = datetime(2024, 1, 3, tzinfo=UTC)
    assert peer_search_body((0.0, 1.0, 2.0, 3.0), moment, moment, ("c",), (), ("a", "b")) == {
        "bbox": [0.0, 1.0, 2.0, 3.0],
        "datetime": "2024-01-03T00:00:00Z",
        "collections": ["c"],
        "q": "a b",
    }
    assert peer_search_body(None, moment, None, (), ("i",), ())["datetime"] == "2024-01-03T00:00:00Z/.."
    assert peer_search_body(None, None, moment.replace(microsecond=5), (), (), ())["datetime"] == (
        "../2024-01-03T00:00:00.000005Z"
    )


def test_cursors_round_trip_and_forget_peers_no_longer_configured():
    peers = [Peer("a", "http://127.0.0.1:1/"), Peer("b", "http://127.0.0.1:2/")]
    cursor = Cursor(local=7, peers={"a": PeerPage(token="next:x", skip=2), "b": PeerPage()})
    assert Cursor.decode(cursor.encode(), peers, max_skip=10) == cursor
    assert Cursor.decode(cursor.encode(), peers[:1], max_skip=10).peers == {
        "a": PeerPage(token="next:x", skip=2)
    }
    with pytest.raises(ValueError, match="token"):
        Cursor.decode(cursor.encode(), peers, max_skip=1)


def test_peer_urls_keep_their_token_out_of_the_url():
    [peer] = parse_peers("twin=https://secret@example.org/stac")
    assert (peer.name, peer.url, peer.token) == ("twin", "https://example.org/stac/", "secret")
    with pytest.raises(ValueError, match="is not an http"):
        parse_peers("x=ftp://example.org/")
