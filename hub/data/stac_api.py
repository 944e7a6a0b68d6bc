"""The STAC API (1.0.0) of the platform's catalogue, at ``<prefix>stac/``: core, collections, features, item search.

* ``GET /`` landing page (a Catalog with ``conformsTo``), ``GET /conformance``;
* ``GET /collections``, ``GET /collections/{id}``: the datasets the caller may read, as Collections;
* ``GET /collections/{id}/items`` (``limit``, ``bbox``, ``datetime``, ``token``), ``GET /collections/{id}/items/{item}``;
* ``GET /search`` and ``POST /search``: ``bbox``, ``datetime``, ``collections``, ``ids``, ``q`` (free text),
  ``limit``, and paging through ``next`` links (``token``; for POST a link with method and body).

Rules this module guarantees:

* Every answer holds only what the caller may read (``store.readable_dataset_ids``); a collection the caller may
  not read answers 404 like one that does not exist. Callers are identified as by the rest of the service (a
  JupyterHub token, or the browser session for GET); anonymous callers see the landing page and no collection.
* Bad parameters (a malformed or out-of-range bbox or datetime, an unknown field, ``intersects``) answer 400 naming
  the parameter and the rule; ``limit`` above ``stac.MAX_LIMIT`` is lowered to it, as STAC API says.
* **Federated search** (``federation.py``): where peers are configured, every page of a search holds at most
  ``limit`` items taken in turn from the platform and each peer, each marked with its origin, says how each peer
  asked for it answered (``polartep:peers``), and its ``next`` link goes on through all of them.
* Links are absolute, built from the address the request came to, so standard clients (pystac-client) follow them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from polartep_hub.data import stac
from polartep_hub.data import store as datasets
from polartep_hub.data.federation import (
    CURSOR_PREFIX,
    FEDERATED_HEADER,
    ORIGIN,
    Cursor,
    Peer,
    ask_peers,
    interleave,
    peer_search_body,
)
from polartep_hub.service.web.access import Context, optional_identity
from polartep_hub.service.web.identity import Identity

router = APIRouter()


class GeoJSONResponse(JSONResponse):
    """Items and item collections are GeoJSON (``application/geo+json``), as STAC API says."""

    media_type = "application/geo+json"


CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
GEOJSON = "application/geo+json"
_SEARCH_FIELDS = {"bbox", "datetime", "collections", "ids", "q", "limit", "token"}
_BAD = {400: {"description": "a parameter breaks its rule (the message names it)"}}
_NOT_SEEN = {404: {"description": "no such collection or item, or one the caller may not read"}}


async def stac_actor(
    identity: Annotated[Identity | None, Depends(optional_identity)], context: Context
) -> datasets.Actor:
    """Who reads the catalogue: the hub and administrators everything, users their datasets, anonymous nothing."""
    if identity is None:
        return datasets.Actor(name=None, admin=False)
    if identity.is_hub:
        return datasets.Actor(name=None, admin=True)
    if not identity.has_any_scope(context.config.access_scopes):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this token lacks the scope {' or '.join(sorted(context.config.access_scopes))}",
        )
    if not identity.is_user:
        return datasets.Actor(name=None, admin=False)
    return datasets.Actor(name=identity.name, admin=identity.admin)


StacActor = Annotated[datasets.Actor, Depends(stac_actor)]


def _base(request: Request, context: Any) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{context.config.prefix}stac"


def _link(rel: str, href: str, media: str = "application/json", **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "href": href, "type": media, **extra}


def _collection_out(document: dict[str, Any], base: str) -> dict[str, Any]:
    href = f"{base}/collections/{document['id']}"
    return {
        **document,
        "links": [
            _link("self", href),
            _link("root", f"{base}/"),
            _link("parent", f"{base}/"),
            _link("items", f"{href}/items", GEOJSON),
            *document["links"],
        ],
    }


def _item_out(item: dict[str, Any], base: str) -> dict[str, Any]:
    collection = f"{base}/collections/{item['collection']}"
    return {
        **item,
        "links": [
            _link("self", f"{collection}/items/{item['id']}", GEOJSON),
            _link("root", f"{base}/"),
            _link("parent", collection),
            _link("collection", collection),
            *item.get("links", []),
        ],
    }


def _json(body: dict[str, Any], media: str = "application/json") -> JSONResponse:
    return GeoJSONResponse(body) if media == GEOJSON else JSONResponse(body)


@router.get("/", responses=_BAD)
def landing_page(request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """The root Catalog: what the API conforms to, where to search, and a child link per readable collection."""
    base = _base(request, context)
    with context.session() as session:
        collections = stac.visible_collections(session, actor)
    return _json(
        {
            "type": "Catalog",
            "stac_version": stac.STAC_VERSION,
            "id": "polartep",
            "title": "Polar TEP catalogue",
            "description": "Datasets of the Polar TEP platform that you may read.",
            "conformsTo": CONFORMANCE,
            "links": [
                _link("self", f"{base}/"),
                _link("root", f"{base}/"),
                _link("conformance", f"{base}/conformance"),
                _link("data", f"{base}/collections"),
                _link("search", f"{base}/search", GEOJSON, method="GET"),
                _link("search", f"{base}/search", GEOJSON, method="POST"),
                _link(
                    "service-desc",
                    f"{request.url.scheme}://{request.url.netloc}{context.config.prefix}api/v1/openapi.json",
                    "application/vnd.oai.openapi+json;version=3.0",
                ),
                *(_link("child", f"{base}/collections/{c['id']}", title=c["title"]) for c in collections),
            ],
        }
    )


@router.get("/conformance")
def conformance() -> JSONResponse:
    """The conformance classes this API implements."""
    return _json({"conformsTo": CONFORMANCE})


@router.get("/collections")
def collections(request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """Every collection (dataset) the caller may read."""
    base = _base(request, context)
    with context.session() as session:
        found = stac.visible_collections(session, actor)
    return _json(
        {
            "collections": [_collection_out(c, base) for c in found],
            "links": [_link("self", f"{base}/collections"), _link("root", f"{base}/")],
        }
    )


@router.get("/collections/{collection_id}", responses=_NOT_SEEN)
def collection(collection_id: str, request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """One collection; 404 when the caller may not read it."""
    with context.session() as session:
        view = stac.load_collection(session, actor, collection_id)
        document = stac.collection_document(view.dataset, view.project)
    return _json(_collection_out(document, _base(request, context)))


def _parse_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _parse_bbox(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise stac.StacInvalid("bbox: give west,south,east,north as numbers") from None
    return stac.check_bbox(value, "bbox")


def _parse_limit(value: Any) -> int:
    if value is None:
        return stac.DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise stac.StacInvalid("limit: a whole number from 1") from None
    if limit < 1 or isinstance(value, bool):
        raise stac.StacInvalid("limit: a whole number from 1")
    return min(limit, stac.MAX_LIMIT)


def _parse_token(value: Any) -> int:
    if value is None:
        return 0
    try:
        after = int(value)
    except (TypeError, ValueError):
        raise stac.StacInvalid("token: use the token of a next link as given") from None
    if after < 0:
        raise stac.StacInvalid("token: use the token of a next link as given")
    return after


def _parse_query(params: dict[str, Any]) -> stac.Search:
    unknown = set(params) - _SEARCH_FIELDS
    if "intersects" in unknown:
        raise stac.StacInvalid("intersects is not supported; search with bbox")
    if unknown:
        raise stac.StacInvalid(f"unknown search field(s): {', '.join(sorted(unknown))[:200]}")
    start = end = None
    if params.get("datetime") is not None:
        if not isinstance(params["datetime"], str):
            raise stac.StacInvalid("datetime: an RFC 3339 time or interval (start/end, ../end, start/..)")
        start, end = stac.parse_datetime_filter(params["datetime"])
    lists = {}
    for name in ("collections", "ids"):
        value = params.get(name)
        if isinstance(value, str):
            lists[name] = _parse_list(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 1000:
            lists[name] = tuple(value)
        elif value is None:
            lists[name] = ()
        else:
            raise stac.StacInvalid(f"{name}: a list of at most 1000 strings")
    q = params.get("q")
    if isinstance(q, list) and all(isinstance(v, str) for v in q):
        q = " ".join(q)
    if q is not None and not isinstance(q, str):
        raise stac.StacInvalid("q: free text (words that must all appear)")
    terms = tuple(t for t in (q or "").replace(",", " ").split() if t)[:20]
    return stac.Search(
        bbox=_parse_bbox(params.get("bbox")),
        start=start,
        end=end,
        collections=lists["collections"],
        ids=lists["ids"],
        q=terms,
        limit=_parse_limit(params.get("limit")),
        after=_parse_token(params.get("token")),
    )


def _item_collection(
    items: list[dict[str, Any]],
    next_token: int | str | None,
    base: str,
    self_href: str,
    next_link: dict | None,
    peers: dict[str, str] | None = None,
) -> JSONResponse:
    links = [_link("self", self_href, GEOJSON), _link("root", f"{base}/")]
    if next_token is not None and next_link is not None:
        links.append(next_link)
    body: dict[str, Any] = {
        "type": "FeatureCollection",
        # A peer's items keep the peer's own links: they are the peer's to resolve.
        "features": [
            i if i["properties"].get(ORIGIN, "local") != "local" else _item_out(i, base) for i in items
        ],
        "links": links,
        "numberReturned": len(items),
    }
    if peers is not None:
        body["polartep:peers"] = peers
    return _json(body, GEOJSON)


def _get_next_link(request: Request, next_token: int | str | None) -> dict[str, Any] | None:
    if next_token is None:
        return None
    return _link("next", str(request.url.include_query_params(token=str(next_token))), GEOJSON, method="GET")


def _parse_cursor(value: Any, peers: list[Peer]) -> Cursor:
    """Where this page starts: a federated cursor (``f.``), a plain row id (the platform's own pages), or the
    first page of every source."""
    if value is None:
        return Cursor.first(peers)
    if isinstance(value, str) and value.startswith(CURSOR_PREFIX):
        try:
            return Cursor.decode(value, peers, max_skip=stac.MAX_LIMIT)
        except ValueError as error:
            raise stac.StacInvalid(str(error)) from None
    return Cursor(local=_parse_token(value), peers={})


async def _search(
    request: Request, actor: datasets.Actor, context: Any, query: stac.Search, token: Any
) -> tuple[list[dict[str, Any]], str | None, dict[str, str] | None]:
    """One page: the platform's items and (federated, not asked by a peer) the peers' items, taken in turn; the
    next page's token; how each peer asked answered (``federation.py``)."""
    federate = FEDERATED_HEADER not in request.headers
    peers: list[Peer] = context.stac_peers if federate else []
    cursor = _parse_cursor(token, peers)

    def local() -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        if cursor.local is None:
            return [], False
        with context.session() as session:
            return stac.search_rows(session, actor, dataclasses.replace(query, after=cursor.local))

    asked = [(peer, cursor.peers[peer.name]) for peer in peers if peer.name in cursor.peers]
    if not asked:
        rows, more = await run_in_threadpool(local)
        return [item for _, item in rows], (str(rows[-1][0]) if more and rows else None), None
    body = peer_search_body(query.bbox, query.start, query.end, query.collections, query.ids, query.q)
    (rows, more), answers = await asyncio.gather(
        run_in_threadpool(local), ask_peers(asked, body, query.limit, context.config.stac_peer_timeout)
    )
    marked = [
        (row_id, {**item, "properties": {**item["properties"], ORIGIN: "local"}}) for row_id, item in rows
    ]
    page, taken = interleave([marked, *(answer.items for answer in answers)], query.limit)
    # Each source goes on after the last item of it that this page served.
    next_local = None
    if cursor.local is not None:
        if taken[0] < len(rows):
            next_local = rows[taken[0] - 1][0] if taken[0] else cursor.local
        elif more:
            next_local = rows[-1][0]
    next_peers = {}
    for (peer, peer_page), answer, count in zip(asked, answers, taken[1:], strict=True):
        if answer.outcome != "ok":
            continue  # a peer that failed is left out of the later pages (and named on this one)
        if count < len(answer.items):
            skip = answer.items[count - 1][0] + 1 if count else peer_page.skip
            next_peers[peer.name] = dataclasses.replace(peer_page, skip=skip)
        elif answer.next_page is not None:
            next_peers[peer.name] = answer.next_page
    following = Cursor(local=next_local, peers=next_peers)
    if following.done:
        next_token = None
    elif not next_peers:
        next_token = str(next_local)  # only the platform's own items are left: its plain token
    else:
        next_token = following.encode()
    return [item for _, item in page], next_token, {answer.name: answer.outcome for answer in answers}


def _without_token(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key != "token"}


@router.get("/search", responses=_BAD, response_class=GeoJSONResponse)
async def search_get(request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """Item search with query parameters (with the configured peers' items, taken in turn)."""
    params = dict(request.query_params)
    query = _parse_query(_without_token(params))
    items, next_token, peers = await _search(request, actor, context, query, params.get("token"))
    base = _base(request, context)
    return _item_collection(
        items, next_token, base, str(request.url), _get_next_link(request, next_token), peers
    )


@router.post("/search", responses=_BAD, response_class=GeoJSONResponse)
async def search_post(request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """Item search with a JSON body; the next page is a POST of the same body with ``token``."""
    try:
        body = await request.json()
    except ValueError:
        raise stac.StacInvalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise stac.StacInvalid("the body is a JSON object of search fields")
    query = _parse_query(_without_token(body))
    items, next_token, peers = await _search(request, actor, context, query, body.get("token"))
    base = _base(request, context)
    next_link = None
    if next_token is not None:
        next_link = _link(
            "next",
            f"{base}/search",
            GEOJSON,
            method="POST",
            body={**body, "token": next_token},
            merge=False,
        )
    return _item_collection(items, next_token, base, f"{base}/search", next_link, peers)


@router.get(
    "/collections/{collection_id}/items", responses={**_BAD, **_NOT_SEEN}, response_class=GeoJSONResponse
)
def items(collection_id: str, request: Request, actor: StacActor, context: Context) -> JSONResponse:
    """The items of one collection (``limit``, ``bbox``, ``datetime``, ``token``)."""
    params = dict(request.query_params)
    allowed = {"limit", "bbox", "datetime", "token"}
    if set(params) - allowed:
        raise stac.StacInvalid(f"unknown parameter(s): {', '.join(sorted(set(params) - allowed))[:200]}")
    with context.session() as session:
        view = stac.load_collection(session, actor, collection_id)
        query = _parse_query({**params, "collections": [stac.collection_id(view.project, view.dataset.name)]})
        found, next_token = stac.search(session, actor, query)
    base = _base(request, context)
    return _item_collection(found, next_token, base, str(request.url), _get_next_link(request, next_token))


@router.get(
    "/collections/{collection_id}/items/{item_id}", responses=_NOT_SEEN, response_class=GeoJSONResponse
)
def item(
    collection_id: str, item_id: str, request: Request, actor: StacActor, context: Context
) -> JSONResponse:
    """One item; 404 when it does not exist or the caller may not read its collection."""
    with context.session() as session:
        view = stac.load_collection(session, actor, collection_id)
        document = stac.load_item(session, view, item_id)
    return _json(_item_out(document, _base(request, context)), GEOJSON)
