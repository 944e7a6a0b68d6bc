"""Validate answers against the OGC API - Processes 1.0 schemas shipped in ``tests/processors/ogc_schemas/``.

The files are the OGC's YAML schema objects (OpenAPI 3.0 flavour: boolean ``exclusiveMinimum``, ``nullable``), which
refer to each other by file name; they are loaded into one registry and checked with Draft 4 semantics, which is what
OpenAPI 3.0 schema objects follow for the keywords these files use.

One in-memory erratum, nothing else changed: ``inputValueNoObject.yaml`` (the inline values of execute requests and
results documents) is a ``oneOf`` of ``string``, ``number``, ``integer``, ``boolean``, ``array``,
``binaryInputValue`` (a string of ``format: byte``) and ``bbox``. Every integer is also a number, and every string is
also a ``binaryInputValue`` for a validator (``format`` is an annotation in Draft 4), so under ``oneOf`` no integer and
no plain string could ever be a valid result, whatever a server answers. The helper reads that one ``oneOf`` as
``anyOf``: still only these kinds of values (no ``null``, no bare object), as the schema's authors meant.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMAS = Path(__file__).resolve().parent.parent / "processors" / "ogc_schemas"
AMBIGUOUS_ONE_OF = "inputValueNoObject.yaml"  # the erratum above


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.yaml")):
        contents = yaml.safe_load(path.read_text())
        if path.name == AMBIGUOUS_ONE_OF:
            contents = {"anyOf": contents.pop("oneOf"), **contents}
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT4)))
    return Registry().with_resources(resources)


def ogc_problems(instance: Any, schema_file: str) -> list[str]:
    """Every way ``instance`` breaks the OGC schema ``schema_file`` (e.g. ``process.yaml``); empty when valid."""
    validator = jsonschema.Draft4Validator({"$ref": schema_file}, registry=_registry())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
