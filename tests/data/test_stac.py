"""The STAC catalogue: collection metadata and items written by members, validated, indexed, served by a STAC API.

Specification: every answer of ``<prefix>stac/`` validates against the STAC 1.0.0 and STAC API 1.0.0 schemas shipped
in the repository and holds only what the caller may read (a collection of a dataset the caller may not read is a
404); searches filter by bbox, datetime, collections, ids and free text, page through ``next`` links (GET and POST)
and are answered from indexed columns; malformed, huge or out-of-range items and metadata are refused with 400 and
nothing of the request is stored; pystac-client, a standard client, reads the API.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from sqlalchemy import func, select

from polartep_hub.data import stac_schemas
from polartep_hub.data.models import StacItem
from tests.helpers.service_fakes import PREFIX, user

DATASETS = "api/v1/datasets"
STAC = "stac"
CID = "sea-ice:daily"


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url


def day_item(day: int, *, bbox=(-180.0, 30.98, 180.0, 90.0), **properties) -> dict:
    west, south, east, north = bbox
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"seaice-conc-2024-01-{day:02d}",
        "bbox": list(bbox),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {"datetime": f"2024-01-{day:02d}T12:00:00Z", **properties},
        "links": [],
        "assets": {
            "data": {
                "href": f"seaice_conc_2024-01-{day:02d}.nc",
                "type": "application/netcdf",
                "roles": ["data"],
            }
        },
    }


@pytest.fixture
def stac_scene(api, fake_hub) -> None:
    """sea-ice (alice owner, bob member) has dataset daily with 5 items; glaciers (eve) has none; carol nothing."""
    for name in ("eve", "carol"):
        fake_hub.tokens[f"{name}-token"] = user(name)
    for name in ("alice", "bob", "eve", "carol"):
        assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200
    assert api.post("api/v1/projects", token="alice-token", json={"name": "sea-ice"}).status_code == 201
    assert (
        api.post("api/v1/projects/sea-ice/members", token="alice-token", json={"user": "bob"}).status_code
        == 201
    )
    assert api.post("api/v1/projects", token="eve-token", json={"name": "glaciers"}).status_code == 201
    body = {"project": "sea-ice", "name": "daily", "storage_class": "ssd", "title": "Daily sea ice"}
    assert api.post(DATASETS, token="bob-token", json=body).status_code == 201
    metadata = {
        "title": "Synthetic daily sea-ice concentration",
        "description": "SYNTHETIC sample data on the NSIDC 25 km north grid",
        "license": "CC-BY-4.0",
        "keywords": ["EARTH SCIENCE > CRYOSPHERE > SEA ICE > SEA ICE CONCENTRATION", "Arctic"],
        "providers": [{"name": "Polar TEP", "roles": ["producer", "host"], "url": "https://example.org"}],
        "doi": "10.5067/MPYG15WAA4WX",
        "extent": {
            "spatial": {"bbox": [[-180, 30.98, 180, 90]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z"]]},
        },
    }
    described = api.request("PUT", f"{DATASETS}/sea-ice/daily/collection", token="bob-token", json=metadata)
    assert described.status_code == 200, described.text
    features = [day_item(d) for d in range(1, 5)] + [
        day_item(5, bbox=(10.0, 70.0, 20.0, 80.0), title="Svalbard")
    ]
    written = api.post(
        f"{DATASETS}/sea-ice/daily/items",
        token="bob-token",
        json={"type": "FeatureCollection", "features": features},
    )
    assert written.status_code == 200, written.text
    assert written.json() == {"collection": CID, "written": 5}


def item_rows(app) -> int:
    with app.state.context.session() as session:
        return session.scalar(select(func.count()).select_from(StacItem)) or 0


def valid(file: str, component: str, document: dict) -> None:
    errors = [e.message for e in stac_schemas.api_validator(file, component).iter_errors(document)]
    assert errors == []


def valid_stac(uri: str, document: dict) -> None:
    assert stac_schemas.first_error(uri, document) is None


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_the_landing_page_and_conformance_validate(api, stac_scene):
    landing = api.get(f"{STAC}/", token="alice-token")
    assert landing.status_code == 200
    body = landing.json()
    valid("core/openapi.yaml", "landingPage", body)
    valid_stac(stac_schemas.CATALOG_SCHEMA, body)
    assert "https://api.stacspec.org/v1.0.0/item-search" in body["conformsTo"]
    children = [link["href"] for link in body["links"] if link["rel"] == "child"]
    assert children == [f"http://testserver{PREFIX}stac/collections/{CID}"]
    conformance = api.get(f"{STAC}/conformance").json()
    valid("core/commons.yaml", "conformanceClasses", conformance)


def test_collections_validate_and_carry_licence_providers_keywords_and_doi(api, stac_scene):
    listed = api.get(f"{STAC}/collections", token="bob-token").json()
    valid("ogcapi-features/openapi-collections.yaml", "collections", listed)
    [collection] = listed["collections"]
    valid_stac(stac_schemas.COLLECTION_SCHEMA, collection)
    assert collection["id"] == CID and collection["license"] == "CC-BY-4.0"
    assert collection["providers"][0]["name"] == "Polar TEP"
    assert collection["sci:doi"] == "10.5067/MPYG15WAA4WX"
    assert "Arctic" in collection["keywords"]
    one = api.get(f"{STAC}/collections/{CID}", token="bob-token")
    assert one.status_code == 200 and one.json()["id"] == CID


def test_items_and_search_answers_validate(api, stac_scene):
    page = api.get(f"{STAC}/collections/{CID}/items", token="alice-token")
    assert page.headers["content-type"] == "application/geo+json"
    valid("fragments/itemcollection/openapi.yaml", "itemCollection", page.json())
    for feature in page.json()["features"]:
        valid_stac(stac_schemas.ITEM_SCHEMA, feature)
    one = api.get(f"{STAC}/collections/{CID}/items/seaice-conc-2024-01-03", token="alice-token")
    assert one.status_code == 200
    valid_stac(stac_schemas.ITEM_SCHEMA, one.json())
    found = api.post(f"{STAC}/search", token="alice-token", json={"collections": [CID]})
    valid("fragments/itemcollection/openapi.yaml", "itemCollection", found.json())


def test_search_filters_by_bbox_datetime_collections_ids_and_text(api, stac_scene):
    def get(**params):
        return ids(api.get(f"{STAC}/search", token="alice-token", params=params))

    everything = [f"seaice-conc-2024-01-0{d}" for d in range(1, 6)]
    assert get(limit=100) == everything
    assert get(bbox="12,72,13,73") == everything  # the whole-Arctic items and the Svalbard one
    assert get(bbox="-60,40,-50,50") == everything[:4]  # not Svalbard
    assert get(datetime="2024-01-02T00:00:00Z/2024-01-03T23:59:59Z") == everything[1:3]
    assert get(datetime="../2024-01-01T23:00:00Z") == everything[:1]
    assert get(datetime="2024-01-05T12:00:00Z") == everything[4:]
    assert get(ids="seaice-conc-2024-01-02,seaice-conc-2024-01-04") == [everything[1], everything[3]]
    assert get(collections="glaciers:nothing") == []
    assert get(q="svalbard") == everything[4:]
    assert get(q="concentration arctic") == everything  # the collection's keywords
    assert get(q="concentration antarctic") == []
    posted = api.post(
        f"{STAC}/search",
        token="alice-token",
        json={"bbox": [-60, 40, -50, 50], "datetime": "2024-01-02T00:00:00Z/.."},
    )
    assert ids(posted) == everything[1:4]


def test_paging_follows_next_links_for_get_and_post(api, stac_scene):
    seen, url = [], f"{STAC}/search?limit=2"
    while url:
        page = api.get(url, token="alice-token").json()
        seen += [f["id"] for f in page["features"]]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        url = nxt[0]["href"].removeprefix(f"http://testserver{PREFIX}") if nxt else None
    assert seen == [f"seaice-conc-2024-01-0{d}" for d in range(1, 6)]
    seen, body = [], {"limit": 2}
    while body is not None:
        page = api.post(f"{STAC}/search", token="alice-token", json=body).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        body = nxt[0]["body"] if nxt else None
        if nxt:
            assert nxt[0]["method"] == "POST"
    assert len(seen) == 5 and len(set(seen)) == 5


def test_every_answer_is_filtered_by_the_callers_access(api, stac_scene):
    for token in ("carol-token", "eve-token", None):
        assert api.get(f"{STAC}/collections", token=token).json()["collections"] == []
        assert ids(api.get(f"{STAC}/search", token=token)) == []
        assert ids(api.post(f"{STAC}/search", token=token, json={"collections": [CID]})) == []
        assert api.get(f"{STAC}/collections/{CID}", token=token).status_code == 404
        assert api.get(f"{STAC}/collections/{CID}/items", token=token).status_code == 404
        assert (
            api.get(f"{STAC}/collections/{CID}/items/seaice-conc-2024-01-01", token=token).status_code == 404
        )
    assert (
        api.request("PUT", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token").status_code
        == 200
    )
    assert len(ids(api.get(f"{STAC}/search", token="eve-token"))) == 5
    # A granted reader reads the catalogue but may not write to it.
    refused = api.post(f"{DATASETS}/sea-ice/daily/items", token="eve-token", json=day_item(9))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "only members of project 'sea-ice' may add to its catalogue"
    assert (
        api.request("DELETE", f"{DATASETS}/sea-ice/daily/grants/glaciers", token="alice-token").status_code
        == 200
    )
    assert ids(api.get(f"{STAC}/search", token="eve-token")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": [-190, 0, 10, 10]}, "out of range: longitudes lie in [-180, 180], latitudes in [-90, 90]"),
        ({"bbox": [0, 60, 10, 50]}, "south (60) lies north of north (50)"),
        ({"bbox": [170, 60, -170, 70]}, "crosses the antimeridian; split it in two"),
        ({"properties": {"datetime": "1700-01-01T00:00:00Z"}}, "is out of range (1800 to 2200)"),
        ({"properties": {"datetime": "2024-13-01T00:00:00Z"}}, "is not an RFC 3339 time"),
        (
            {"properties": {"datetime": "2024-01-01T00:00:00"}},
            "properties/datetime: '2024-01-01T00:00:00' does not match",
        ),
        ({"id": "../etc"}, "id must be 1-200 characters"),
        ({"type": "Point"}, "not a valid STAC item"),
        (
            {"properties": {"datetime": "2024-01-01T00:00:00Z", "blob": "x" * 40000}},
            "larger than 32768 bytes",
        ),
    ],
)
def test_bad_items_are_400_and_nothing_of_the_batch_is_stored(api, app, stac_scene, change, message):
    before = item_rows(app)
    bad = {**day_item(20), **change}
    batch = {"type": "FeatureCollection", "features": [day_item(21), bad]}
    response = api.post(f"{DATASETS}/sea-ice/daily/items", token="bob-token", json=batch)
    assert response.status_code in (400, 413), response.text
    if response.status_code == 400:
        assert message in response.json()["detail"]
    assert item_rows(app) == before


def test_huge_and_malformed_bodies_are_refused(api, app, stac_scene):
    before = item_rows(app)
    huge = {"type": "FeatureCollection", "features": [day_item(1, title="x" * 70000)]}
    assert api.post(f"{DATASETS}/sea-ice/daily/items", token="bob-token", json=huge).status_code == 413
    malformed = api.post(
        f"{DATASETS}/sea-ice/daily/items",
        token="bob-token",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["detail"] == "the body is not JSON"
    assert item_rows(app) == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bbox": "1,2,3"}, "bbox: a bbox is [west, south, east, north]"),
        ({"bbox": "a,b,c,d"}, "bbox: give west,south,east,north as numbers"),
        ({"bbox": "0,-95,10,10"}, "bbox: out of range"),
        ({"datetime": "2024-02-01T00:00:00Z/2024-01-01T00:00:00Z"}, "the interval's start is after its end"),
        ({"datetime": "3000-01-01T00:00:00Z"}, "out of range (1800 to 2200)"),
        ({"limit": "0"}, "limit: a whole number from 1"),
        ({"intersects": "{}"}, "intersects is not supported; search with bbox"),
        ({"token": "-3"}, "token: use the token of a next link as given"),
    ],
)
def test_bad_search_parameters_are_400_naming_the_parameter(api, stac_scene, params, message):
    response = api.get(f"{STAC}/search", token="alice-token", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_bad_collection_metadata_is_400_and_the_old_metadata_stays(api, stac_scene):
    for metadata, message in (
        ({"doi": "https://doi.org/10.1/x"}, "doi: a DOI looks like 10.1234/abc"),
        (
            {"extent": {"spatial": {"bbox": [[0, 0, 200, 10]]}, "temporal": {"interval": [[None, None]]}}},
            "out of range",
        ),
        ({"extent": {"spatial": "everywhere"}}, "extent: give"),
    ):
        response = api.request(
            "PUT", f"{DATASETS}/sea-ice/daily/collection", token="bob-token", json=metadata
        )
        assert response.status_code == 400, response.text
        assert message in response.json()["detail"]
    assert api.get(f"{STAC}/collections/{CID}", token="bob-token").json()["license"] == "CC-BY-4.0"


def test_the_limit_is_capped_at_the_maximum(api, stac_scene):
    assert len(ids(api.get(f"{STAC}/search", token="alice-token", params={"limit": "100000"}))) == 5


def test_pystac_client_reads_the_api(app, stac_scene):
    from pystac_client import Client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        client = Client.open(
            f"http://127.0.0.1:{port}{PREFIX}stac/", headers={"Authorization": "token alice-token"}
        )
        assert [c.id for c in client.get_collections()] == [CID]
        search = client.search(collections=[CID], bbox=[-60, 40, -50, 50], max_items=10, limit=2)
        assert [item.id for item in search.items()] == [f"seaice-conc-2024-01-0{d}" for d in range(1, 5)]
        item = client.get_collection(CID).get_item("seaice-conc-2024-01-05")
        assert item is not None and item.properties["title"] == "Svalbard"
    finally:
        server.should_exit = True
        thread.join(10)
