"""The STAC 1.0.0 and STAC API 1.0.0 schemas shipped in ``schemas/``, resolvable without a network.

``schemas/`` holds copies of the radiantearth stac-spec JSON Schemas (item, collection, catalog and their parts, v1.0.0,
as shipped inside stac-api-spec v1.0.0), the GeoJSON Feature and Geometry schemas they refer to (geojson/schema,
the published build), and the STAC API OpenAPI documents (core, item search, OGC API - Features, item collection),
each under its licence file, and the STAC label extension's schema (``stac-extensions/label/v1.0.1``, the file its
repository publishes at tag v1.0.1, under its licence: no PyPI or npm package carries it). Every document is registered under the URL it is published at, so every ``$ref``
(relative or absolute) resolves to the local copy; the JSON Schema meta-schemas come with ``jsonschema``.

``validator(uri)`` gives a Draft 7 validator of a JSON Schema; ``api_validator(file, component)`` one of a schema
component of a STAC API OpenAPI document (OpenAPI 3.0 schemas are JSON Schema with a few extra keywords, which
validation ignores). The service validates what users write with the first; the tests validate answers with both.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS = Path(__file__).with_name("schemas")
STAC_BASE = "https://schemas.stacspec.org/v1.0.0/"
STAC_API_BASE = "https://api.stacspec.org/v1.0.0/"
ITEM_SCHEMA = STAC_BASE + "item-spec/json-schema/item.json"
COLLECTION_SCHEMA = STAC_BASE + "collection-spec/json-schema/collection.json"
CATALOG_SCHEMA = STAC_BASE + "catalog-spec/json-schema/catalog.json"
EXTENSIONS_BASE = "https://stac-extensions.github.io/"
LABEL_SCHEMA = EXTENSIONS_BASE + "label/v1.0.1/schema.json"


@cache
def registry() -> Registry:
    """Every shipped document under its published URL."""
    resources: list[tuple[str, Resource]] = []
    for path in sorted((SCHEMAS / "stac-v1.0.0").rglob("*.json")):
        uri = STAC_BASE + path.relative_to(SCHEMAS / "stac-v1.0.0").as_posix()
        resources.append((uri, DRAFT7.create_resource(json.loads(path.read_text()))))
    for path in sorted((SCHEMAS / "geojson").glob("*.json")):
        resources.append(
            ("https://geojson.org/schema/" + path.name, DRAFT7.create_resource(json.loads(path.read_text())))
        )
    for path in sorted((SCHEMAS / "stac-extensions").rglob("*.json")):
        uri = EXTENSIONS_BASE + path.relative_to(SCHEMAS / "stac-extensions").as_posix()
        resources.append((uri, DRAFT7.create_resource(json.loads(path.read_text()))))
    for path in sorted((SCHEMAS / "stac-api-v1.0.0").rglob("*.yaml")):
        uri = STAC_API_BASE + path.relative_to(SCHEMAS / "stac-api-v1.0.0").as_posix()
        resources.append((uri, DRAFT7.create_resource(yaml.safe_load(path.read_text()))))
    return Registry().with_resources(resources)


@cache
def validator(uri: str) -> Draft7Validator:
    """A validator of the JSON Schema published at ``uri`` (e.g. ``ITEM_SCHEMA``)."""
    return Draft7Validator({"$ref": uri}, registry=registry())


@cache
def api_validator(file: str, component: str) -> Draft7Validator:
    """A validator of ``#/components/schemas/<component>`` of the STAC API document ``file`` (e.g.
    ``core/openapi.yaml``, ``landingPage``)."""
    return Draft7Validator(
        {"$ref": f"{STAC_API_BASE}{file}#/components/schemas/{component}"}, registry=registry()
    )


def first_error(uri: str, document: object) -> str | None:
    """The most relevant validation error of ``document`` against ``uri``'s schema as one line, or None."""
    errors = sorted(validator(uri).iter_errors(document), key=lambda e: (len(e.absolute_path), e.message))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(p) for p in error.absolute_path) or "(the document)"
    return f"{where}: {error.message[:300]}"
