"""The STAC catalogue of datasets: each dataset is a collection, its items are indexed rows, searches are SQL.

Rules this module guarantees:

* A dataset's collection id is ``<project>:<dataset>`` (``:`` is in neither name rule, so ids are unambiguous).
  Its metadata (title, description, licence, keywords, providers, DOI, extent) is set by the dataset's members and
  validated as a whole STAC 1.0.0 Collection (``stac_schemas``) before it is stored.
* Items are written by the dataset's members, one or a batch of at most ``MAX_ITEMS_PER_WRITE``, all or nothing:
  each must be a valid STAC 1.0.0 Item (checked against the shipped schema) with a bounding box inside
  [-180, 180] x [-90, 90] (south <= north, west <= east: an item crossing the antimeridian is refused, split it),
  a time (``datetime``, or ``start_datetime`` and ``end_datetime``) between ``EARLIEST`` and ``LATEST``, and at
  most ``MAX_ITEM_BYTES`` of JSON. The ``collection`` field is set to the dataset's; navigation links (self, root,
  parent, collection) are the API's own and replaced when served. Anything else: ``StacInvalid`` (400) naming the
  item and the problem, and nothing of the batch is stored.
* Searches and listings see only the items of datasets the caller may read (``store.readable_dataset_ids``, in
  SQL). Filters run on indexed columns (collection, time range, bounding box); free text ``q`` matches every
  whitespace-separated term, case-insensitively, against a prepared lower-case text (titles, descriptions,
  keywords), never by parsing JSON. Pages are ordered by the item row's id and continue after the last id
  (``token``), so paging is stable while items are added.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from polartep_hub.data import stac_schemas
from polartep_hub.data import store as datasets
from polartep_hub.data.models import Dataset, StacItem
from polartep_hub.projects import store as projects
from polartep_hub.projects.models import Project

STAC_VERSION = "1.0.0"
MAX_ITEMS_PER_WRITE = 500
MAX_ITEM_BYTES = 32 * 1024
MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
EARLIEST = datetime(1800, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
ITEM_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
_ITEM_ID = re.compile(ITEM_ID_PATTERN)
_OWN_LINKS = {"self", "root", "parent", "collection"}
_DOI = re.compile(r"10\.\d{4,9}/[^\s]{1,200}")
SCIENTIFIC_EXTENSION = "https://stac-extensions.github.io/scientific/v1.0.0/schema.json"


class StacInvalid(datasets.DatasetError):
    pass


class StacNotFound(datasets.DatasetError):
    pass


def collection_id(project: str, name: str) -> str:
    return f"{project}:{name}"


def split_collection_id(value: str) -> tuple[str, str]:
    """``(project, dataset)`` of a collection id; ``StacNotFound`` for anything that cannot be one."""
    project, sep, name = value.partition(":")
    try:
        if not sep:
            raise ValueError
        projects.check_project_name(project)
        datasets.check_dataset_name(name)
    except (ValueError, projects.ProjectError, datasets.DatasetError):
        raise StacNotFound(f"no collection {value[:100]!r} that you may see") from None
    return project, name


def parse_time(value: Any, where: str) -> datetime:
    """An RFC 3339 time within [EARLIEST, LATEST), as UTC; ``StacInvalid`` naming ``where`` otherwise."""
    if not isinstance(value, str):
        raise StacInvalid(f"{where}: a time is an RFC 3339 string, e.g. 2024-01-31T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise StacInvalid(
            f"{where}: {value[:40]!r} is not an RFC 3339 time (e.g. 2024-01-31T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise StacInvalid(f"{where}: {value[:40]!r} has no time zone; end it with Z or an offset")
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise StacInvalid(f"{where}: {value[:40]!r} is out of range ({EARLIEST:%Y} to {LATEST:%Y})")
    return moment


def check_bbox(bbox: Any, where: str) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` of a 2D (or 3D) bounding box in range; ``StacInvalid`` otherwise."""
    if not isinstance(bbox, list) or len(bbox) not in (4, 6):
        raise StacInvalid(f"{where}: a bbox is [west, south, east, north] (or 6 numbers with heights)")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise StacInvalid(f"{where}: a bbox holds numbers only")
    if len(bbox) == 4:
        west, south, east, north = (float(v) for v in bbox)
    else:
        west, south, _, east, north, _ = (float(v) for v in bbox)
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise StacInvalid(f"{where}: out of range: longitudes lie in [-180, 180], latitudes in [-90, 90]")
    if south > north:
        raise StacInvalid(f"{where}: south ({south:g}) lies north of north ({north:g})")
    if west > east:
        raise StacInvalid(
            f"{where}: west ({west:g}) > east ({east:g}) crosses the antimeridian; split it in two"
        )
    return west, south, east, north


def _clean_links(links: Any) -> list[dict[str, Any]]:
    if not isinstance(links, list):
        return []
    return [link for link in links if isinstance(link, dict) and link.get("rel") not in _OWN_LINKS]


# --- collections ---------------------------------------------------------------------------------------------------


def collection_document(dataset: Dataset, project: str) -> dict[str, Any]:
    """The dataset's STAC Collection without the API's links (``stac_api`` adds them)."""
    stored = json.loads(dataset.stac_collection or "{}")
    document = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": stored.get("stac_extensions", []),
        "id": collection_id(project, dataset.name),
        "title": stored.get("title") or dataset.title,
        "description": stored.get("description") or dataset.description or dataset.title,
        "keywords": stored.get("keywords", []),
        "license": stored.get("license", "proprietary"),
        "providers": stored.get("providers", []),
        "extent": stored.get(
            "extent",
            {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]}, "temporal": {"interval": [[None, None]]}},
        ),
        "links": _clean_links(stored.get("links", [])),
    }
    if stored.get("sci:doi"):
        document["sci:doi"] = stored["sci:doi"]
    if stored.get("summaries"):
        document["summaries"] = stored["summaries"]
    return document


def set_collection_metadata(session: Session, view: datasets.DatasetView, metadata: dict[str, Any]) -> dict:
    """Store the dataset's collection metadata after validating the whole Collection; members only."""
    if view.access != "rw":
        raise datasets.DatasetForbidden(f"only members of project {view.project!r} may describe its datasets")
    stored: dict[str, Any] = {}
    for key in ("title", "description", "license", "keywords", "providers", "extent", "summaries", "links"):
        if metadata.get(key) is not None:
            stored[key] = metadata[key]
    doi = metadata.get("doi")
    if doi is not None:
        if not isinstance(doi, str) or not _DOI.fullmatch(doi):
            raise StacInvalid("doi: a DOI looks like 10.1234/abc (no https://doi.org/ prefix)")
        stored["sci:doi"] = doi
        stored["stac_extensions"] = [SCIENTIFIC_EXTENSION]
    extent = stored.get("extent")
    if extent is not None:
        try:
            for index, box in enumerate(extent["spatial"]["bbox"]):
                check_bbox(box, f"extent.spatial.bbox[{index}]")
            for index, (start, end) in enumerate(extent["temporal"]["interval"]):
                for edge, value in (("start", start), ("end", end)):
                    if value is not None:
                        parse_time(value, f"extent.temporal.interval[{index}].{edge}")
        except (KeyError, TypeError, ValueError):
            raise StacInvalid(
                "extent: give {'spatial': {'bbox': [[w, s, e, n]]}, 'temporal': {'interval': [[start, end]]}}"
            ) from None
    dataset = view.dataset
    previous = dataset.stac_collection
    dataset.stac_collection = json.dumps(stored)
    document = collection_document(dataset, view.project)
    problem = stac_schemas.first_error(
        stac_schemas.COLLECTION_SCHEMA,
        {**document, "links": document["links"] or [{"rel": "self", "href": "."}]},
    )
    if problem is not None:
        dataset.stac_collection = previous
        session.rollback()
        raise StacInvalid(f"not a valid STAC collection: {problem}")
    text = _collection_text(document)
    for item in session.scalars(select(StacItem).where(StacItem.dataset_id == dataset.id)):
        item.search_text = _item_text(json.loads(item.body), text)
    session.commit()
    return document


def _collection_text(collection: dict[str, Any]) -> str:
    parts = [collection.get("title", ""), collection.get("description", ""), *collection.get("keywords", [])]
    return " ".join(str(p) for p in parts).lower()


def _item_text(item: dict[str, Any], collection_text: str) -> str:
    properties = item.get("properties", {})
    parts = [item.get("id", ""), properties.get("title", ""), properties.get("description", "")]
    parts += [str(k) for k in properties.get("keywords", []) if isinstance(k, str)]
    return (" ".join(str(p) for p in parts).lower() + " " + collection_text)[:20000]


# --- items ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexedItem:
    item_id: str
    start: datetime
    end: datetime
    bbox: tuple[float, float, float, float]
    body: dict[str, Any]


def check_item(item: Any, cid: str, index: int) -> IndexedItem:
    """A valid item of collection ``cid`` with its indexed fields; ``StacInvalid`` naming it otherwise."""
    where = f"item {index}"
    if not isinstance(item, dict):
        raise StacInvalid(f"{where}: an item is a JSON object (a GeoJSON Feature)")
    item_id = item.get("id")
    if not isinstance(item_id, str) or not _ITEM_ID.fullmatch(item_id):
        raise StacInvalid(
            f"{where}: id must be 1-200 characters of letters, digits, '.', '_' and '-', starting with a letter "
            "or digit"
        )
    where = f"item {item_id!r}"
    document = {**item, "collection": cid, "links": _clean_links(item.get("links", []))}
    document.setdefault("stac_version", STAC_VERSION)
    document.setdefault("assets", {})
    if len(json.dumps(document)) > MAX_ITEM_BYTES:
        raise StacInvalid(f"{where}: larger than {MAX_ITEM_BYTES} bytes of JSON")
    if document.get("geometry") is None or "bbox" not in document:
        raise StacInvalid(f"{where}: needs a geometry and a bbox (the catalogue is searched by place)")
    bbox = check_bbox(document["bbox"], f"{where}: bbox")
    # Served items carry the API's collection link, which the schema requires beside a ``collection`` field.
    served_links = [*document["links"], {"rel": "collection", "href": "."}]
    problem = stac_schemas.first_error(stac_schemas.ITEM_SCHEMA, {**document, "links": served_links})
    if problem is not None:
        raise StacInvalid(f"{where}: not a valid STAC item: {problem}")
    properties = document["properties"]
    if properties.get("datetime") is not None:
        start = end = parse_time(properties["datetime"], f"{where}: datetime")
    else:
        start = parse_time(properties.get("start_datetime"), f"{where}: start_datetime")
        end = parse_time(properties.get("end_datetime"), f"{where}: end_datetime")
    if start > end:
        raise StacInvalid(f"{where}: start_datetime is after end_datetime")
    return IndexedItem(item_id, start, end, bbox, document)


def put_items(session: Session, view: datasets.DatasetView, items: list[Any]) -> int:
    """Add or replace ``items`` in the dataset's collection, all or nothing; members only. Returns the count."""
    if view.access != "rw":
        raise datasets.DatasetForbidden(f"only members of project {view.project!r} may add to its catalogue")
    if not items:
        raise StacInvalid("no items: give a STAC item or a FeatureCollection of them")
    if len(items) > MAX_ITEMS_PER_WRITE:
        raise StacInvalid(f"at most {MAX_ITEMS_PER_WRITE} items per request; send them in batches")
    dataset = view.dataset
    cid = collection_id(view.project, dataset.name)
    checked = [check_item(item, cid, index) for index, item in enumerate(items)]
    if len({c.item_id for c in checked}) != len(checked):
        raise StacInvalid("the same item id appears twice in one request")
    text = _collection_text(collection_document(dataset, view.project))
    existing = {
        row.item_id: row
        for row in session.scalars(
            select(StacItem).where(
                StacItem.dataset_id == dataset.id, StacItem.item_id.in_([c.item_id for c in checked])
            )
        )
    }
    longest = max((c.end - c.start).total_seconds() for c in checked)
    if longest > dataset.max_item_seconds:
        dataset.max_item_seconds = longest
    for c in checked:
        row = existing.get(c.item_id) or StacItem(dataset_id=dataset.id, collection_id=cid, item_id=c.item_id)
        row.start_datetime, row.end_datetime = c.start, c.end
        row.west, row.south, row.east, row.north = c.bbox
        row.search_text = _item_text(c.body, text)
        row.body = json.dumps(c.body)
        session.add(row)
    session.commit()
    return len(checked)


def delete_item(session: Session, view: datasets.DatasetView, item_id: str) -> None:
    if view.access != "rw":
        raise datasets.DatasetForbidden(f"only members of project {view.project!r} may change its catalogue")
    done = session.execute(
        delete(StacItem).where(StacItem.dataset_id == view.dataset.id, StacItem.item_id == item_id)
    )
    if not done.rowcount:
        raise StacNotFound(f"no item {item_id[:100]!r} in this collection")
    session.commit()


# --- reading and searching -----------------------------------------------------------------------------------------


def visible_collections(session: Session, actor: datasets.Actor) -> list[dict[str, Any]]:
    return [collection_document(v.dataset, v.project) for v in datasets.visible_datasets(session, actor)]


def load_collection(session: Session, actor: datasets.Actor, cid: str) -> datasets.DatasetView:
    project, name = split_collection_id(cid)
    try:
        return datasets.load_dataset(session, project, name, actor)
    except datasets.DatasetNotFound:
        raise StacNotFound(f"no collection {cid[:100]!r} that you may see") from None


@dataclass(frozen=True)
class Search:
    """A validated search (``stac_api`` parses GET parameters and POST bodies into this)."""

    bbox: tuple[float, float, float, float] | None = None
    start: datetime | None = None
    end: datetime | None = None
    collections: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    q: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    after: int = 0  # the paging token: the last row id of the previous page


def parse_datetime_filter(value: str) -> tuple[datetime | None, datetime | None]:
    """``instant``, ``start/end``, ``../end``, ``start/..`` (RFC 3339); ``StacInvalid`` with the forms otherwise."""
    if "/" in value:
        first, _, second = value.partition("/")
        start = None if first in ("", "..") else parse_time(first, "datetime")
        end = None if second in ("", "..") else parse_time(second, "datetime")
        if start is None and end is None:
            raise StacInvalid("datetime: '../..' is open at both ends; leave datetime out instead")
        if start is not None and end is not None and start > end:
            raise StacInvalid("datetime: the interval's start is after its end")
        return start, end
    moment = parse_time(value, "datetime")
    return moment, moment


def search(session: Session, actor: datasets.Actor, query: Search) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the items ``actor`` may read that match ``query``, and the token of the next page (or None)."""
    rows, more = search_rows(session, actor, query)
    return [body for _, body in rows], (rows[-1][0] if more and rows else None)


def search_rows(
    session: Session, actor: datasets.Actor, query: Search
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """``search`` as ``(row id, item)`` pairs in paging order, and whether more items follow the last one.

    The row ids are the paging positions: a federated page (``stac_api``) that serves only some of them continues
    after the last one it served."""
    # The readable datasets first (a handful of ids), so the item query is a plain IN list the planner sees through;
    # their longest item spans in the same query (one round trip to the database fewer per search).
    spans = session.execute(datasets.readable_dataset_ids(actor).add_columns(Dataset.max_item_seconds)).all()
    readable = [dataset_id for dataset_id, _ in spans]
    if not readable:
        return [], False
    statement = select(StacItem.id, StacItem.body).where(
        StacItem.dataset_id.in_(readable), StacItem.id > query.after
    )
    if query.collections:
        statement = statement.where(StacItem.collection_id.in_(query.collections))
    if query.ids:
        statement = statement.where(StacItem.item_id.in_(query.ids))
    if query.start is not None:
        statement = statement.where(StacItem.end_datetime >= query.start)
        # No item starts earlier than its dataset's longest span before the window: a lower bound on the start
        # time, so the (collection, start) index is read as a closed range instead of from the beginning.
        longest = max((seconds or 0.0 for _, seconds in spans), default=0.0)
        statement = statement.where(StacItem.start_datetime >= query.start - timedelta(seconds=longest))
    if query.end is not None:
        statement = statement.where(StacItem.start_datetime <= query.end)
    if query.bbox is not None:
        west, south, east, north = query.bbox
        statement = statement.where(
            and_(
                StacItem.west <= east, StacItem.east >= west, StacItem.south <= north, StacItem.north >= south
            )
        )
    for term in query.q:
        statement = statement.where(StacItem.search_text.contains(term.lower(), autoescape=True))
    rows = session.execute(statement.order_by(StacItem.id).limit(query.limit + 1)).all()
    return [(row_id, json.loads(body)) for row_id, body in rows[: query.limit]], len(rows) > query.limit


def load_item(session: Session, view: datasets.DatasetView, item_id: str) -> dict[str, Any]:
    body = session.scalar(
        select(StacItem.body).where(StacItem.dataset_id == view.dataset.id, StacItem.item_id == item_id)
    )
    if body is None:
        raise StacNotFound(
            f"no item {item_id[:100]!r} in collection {collection_id(view.project, view.dataset.name)!r}"
        )
    return json.loads(body)


def project_of(session: Session, dataset: Dataset) -> str:
    return session.scalar(select(Project.name).where(Project.id == dataset.project_id)) or ""
