"""A processor's definition (``processor.json``): its JSON Schema, the checks beyond it, and the draft from a notebook.

Rules this module guarantees:

* **One schema.** ``schema/processor.schema.json`` is the definition's format; the service serves it as is
  (``GET api/v1/processors/schema``) so the extension validates against the very document the service uses.
* **Every problem, field by field.** ``validate_definition`` reports all problems at once, each as
  ``<field path>: <rule>`` (``inputs.threshold.maximum: must be a number``), never echoing the value given, and
  raises one ``DefinitionInvalid`` carrying the list; it stores nothing.
* **Checks the schema cannot express** are made here and reported the same way: a default fits its input's type
  and bounds (``minimum`` <= default <= ``maximum``, in ``enum``, within the lengths and item counts), bounds are
  ordered, keys belong to the input's type, input names are Python identifiers (not keywords) declared in the
  notebook's ``parameters`` cell, file outputs are relative paths inside the run folder, the profile exists in the
  catalogue, ``projects`` goes with visibility ``projects``.
* **Versions order as semver** (``semver_key``): pre-releases before their release, numeric identifiers
  numerically; build metadata is not accepted.
* **The draft** (``draft_from_notebook``) comes from the notebook's ``parameters`` cell as papermill reads it
  (``papermill.inspect_notebook``): names, types from the annotation or else from the default's literal, defaults
  (only literals; an expression such as ``date.today()`` leaves the input without default), comments as
  descriptions. It is a starting point for the author, validated like any definition before it is published.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
import tempfile
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "processor.schema.json"

INPUT_TYPES = (
    "string",
    "number",
    "integer",
    "boolean",
    "date",
    "datetime",
    "bbox",
    "path",
    "stac-item",
    "stac-collection",
    "array",
)
DEFAULT_PROFILE = "interactive"
DEFAULT_TIMEOUT = 3600
DEFAULT_VISIBILITY = "private"

# The keys each input type may carry besides type/title/description/required/default.
_TYPE_KEYS: Mapping[str, frozenset[str]] = {
    "string": frozenset({"enum", "minLength", "maxLength"}),
    "number": frozenset({"minimum", "maximum", "enum"}),
    "integer": frozenset({"minimum", "maximum", "enum"}),
    "boolean": frozenset(),
    "date": frozenset(),
    "datetime": frozenset(),
    "bbox": frozenset(),
    "path": frozenset(),
    "stac-item": frozenset(),
    "stac-collection": frozenset(),
    "array": frozenset({"items", "minItems", "maxItems"}),
}
_COMMON_KEYS = frozenset({"type", "title", "description", "required", "default"})

_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


class DefinitionInvalid(ValueError):
    """The definition breaks rules; ``problems`` lists each as ``<field path>: <rule>``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20]
        more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("invalid processor definition: " + "; ".join(shown) + more)


class NotebookInvalid(ValueError):
    """The uploaded file is not a notebook papermill can read; the message says what to fix."""


@cache
def schema() -> dict[str, Any]:
    """The definition's JSON Schema (the shipped file, parsed once)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


# --- semver -----------------------------------------------------------------------------------------------------


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key ordering versions by semver precedence; ``ValueError`` for a string that is not one."""
    match = _SEMVER.fullmatch(version)
    if not match:
        raise ValueError(f"{version[:64]!r} is not a semantic version MAJOR.MINOR.PATCH[-pre]")
    major, minor, patch, pre = match.groups()
    if pre is None:
        # A release sorts after every pre-release of the same numbers.
        return (int(major), int(minor), int(patch), 1, ())
    identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, identifiers)


# --- field-by-field messages ----------------------------------------------------------------------------------


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(definition)"


def _schema_message(error: jsonschema.ValidationError) -> tuple[str, str]:
    """``(field path, rule)`` for one schema error, in words that never repeat the value given."""
    where = list(error.absolute_path)
    rule = error.validator
    value = error.validator_value
    if rule == "type":
        types = [value] if isinstance(value, str) else list(value)
        return _path(where), "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    if rule == "required":
        missing = [name for name in value if isinstance(error.instance, dict) and name not in error.instance]
        return _path([*where, missing[0] if missing else "?"]), "is required"
    if rule == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return _path([*where, extra[0] if extra else "?"]), "is not a known field"
    if "propertyNames" in error.schema_path:
        # The error is about a name (a key), which is the instance here: part of the path, not a value.
        return _path(
            [*where, error.instance]
        ), "the name must be a Python identifier of at most 64 characters"
    if rule == "pattern":
        return _path(where), f"must match {value}"
    if rule in ("enum",):
        return _path(where), "must be one of " + ", ".join(json.dumps(v) for v in value)
    if rule == "const":
        return _path(where), f"must be {json.dumps(value)}"
    if rule == "anyOf" and where and where[-1] == "type":
        return _path(where), "must be one of " + ", ".join(INPUT_TYPES)
    words = {
        "minLength": f"must have at least {value} character{'s' if value != 1 else ''}",
        "maxLength": f"must have at most {value} characters",
        "minItems": f"must have at least {value} item{'s' if value != 1 else ''}",
        "maxItems": f"must have at most {value} items",
        "maxProperties": f"must have at most {value} entries",
        "minimum": f"must be at least {value}",
        "maximum": f"must be at most {value}",
        "uniqueItems": "must not repeat an item",
    }
    return _path(where), words.get(str(rule), f"breaks the rule {rule}")


# --- values ---------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value) is not None


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
        value,
    ):
        return False
    try:
        return datetime.fromisoformat(value.replace("z", "Z")).tzinfo is not None
    except ValueError:
        return False


def is_relative_path(value: Any) -> bool:
    """A relative POSIX path that stays inside its folder: no leading ``/``, no ``..``, no empty or control parts."""
    if not isinstance(value, str) or not value or len(value) > 1024 or value.startswith("/"):
        return False
    if any(ord(c) < 32 for c in value) or "\\" in value:
        return False
    parts = PurePosixPath(value).parts
    return bool(parts) and all(p not in ("..", ".", "") for p in parts) and ".." not in value.split("/")


def _bbox_problem(value: Any) -> str | None:
    if not (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)):
        return "must be a list of 4 numbers [west, south, east, north]"
    west, south, east, north = value
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        return "west and east must lie in -180..180"
    if not (-90 <= south <= north <= 90):
        return "south and north must lie in -90..90, south <= north"
    return None


def value_problem(spec: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for the input ``spec`` (type and bounds), or None when it fits.

    Used here for defaults; the runs check given values with the same rules (``inputs.validate_inputs``)."""
    kind = spec.get("type")
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        if "minLength" in spec and len(value) < spec["minLength"]:
            return f"must have at least {spec['minLength']} characters"
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            return f"must have at most {spec['maxLength']} characters"
    elif kind in ("number", "integer"):
        if not _is_number(value) or (kind == "integer" and not _is_integer(value)):
            return "must be " + _TYPE_WORDS[kind]
        if "minimum" in spec and _is_number(spec["minimum"]) and value < spec["minimum"]:
            return f"must be at least {spec['minimum']}"
        if "maximum" in spec and _is_number(spec["maximum"]) and value > spec["maximum"]:
            return f"must be at most {spec['maximum']}"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "must be true or false"
    elif kind == "date":
        if not _is_date(value):
            return "must be a date YYYY-MM-DD"
    elif kind == "datetime":
        if not _is_datetime(value):
            return "must be an RFC 3339 date and time with a zone, e.g. 2025-01-01T00:00:00Z"
    elif kind == "bbox":
        return _bbox_problem(value)
    elif kind == "path":
        if not is_relative_path(value):
            return "must be a relative path without '..' (a file or dataset path)"
    elif kind in ("stac-item", "stac-collection"):
        if not isinstance(value, str) or not value.strip() or len(value) > 2048:
            return "must be a URL or a reference string of 1-2048 characters"
    elif kind == "array":
        if not isinstance(value, list):
            return "must be a list"
        if "minItems" in spec and len(value) < spec["minItems"]:
            return f"must have at least {spec['minItems']} items"
        if "maxItems" in spec and len(value) > spec["maxItems"]:
            return f"must have at most {spec['maxItems']} items"
        for index, item in enumerate(value):
            problem = value_problem(spec.get("items") or {}, item)
            if problem:
                return f"item {index} {problem}"
        return None
    if "enum" in spec and isinstance(spec["enum"], list) and value not in spec["enum"]:
        return "must be one of " + ", ".join(json.dumps(v) for v in spec["enum"])
    return None


# --- the checks beyond the schema -----------------------------------------------------------------------------


def _input_problems(name: str, spec: Mapping[str, Any], declared: set[str] | None) -> list[tuple[str, str]]:
    where = f"inputs.{name}"
    problems: list[tuple[str, str]] = []
    if not name.isidentifier() or keyword.iskeyword(name):
        problems.append((where, "the name must be a Python identifier and not a keyword"))
    elif declared is not None and name not in declared:
        problems.append((where, "is not declared in the notebook's parameters cell"))
    kind = spec.get("type")
    if kind not in _TYPE_KEYS:
        return problems  # the schema reported the type
    for key in sorted(set(spec) - _COMMON_KEYS - _TYPE_KEYS[kind]):
        problems.append((f"{where}.{key}", f"does not apply to inputs of type {kind}"))
    for low, high in (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems")):
        if _is_number(spec.get(low)) and _is_number(spec.get(high)) and spec[low] > spec[high]:
            problems.append((f"{where}.{high}", f"must not be less than {low}"))
    if isinstance(spec.get("enum"), list):
        for index, option in enumerate(spec["enum"]):
            problem = value_problem({k: v for k, v in spec.items() if k != "enum"}, option)
            if problem:
                problems.append((f"{where}.enum.{index}", problem))
    if kind == "array" and isinstance(spec.get("items"), Mapping):
        item = spec["items"]
        item_kind = item.get("type")
        if item_kind in _TYPE_KEYS:
            for key in sorted(set(item) - {"type"} - _TYPE_KEYS[item_kind]):
                problems.append((f"{where}.items.{key}", f"does not apply to items of type {item_kind}"))
    if "default" in spec:
        if spec.get("required") is True:
            problems.append((f"{where}.required", "an input with a default cannot be required"))
        problem = value_problem(spec, spec["default"])
        if problem:
            problems.append((f"{where}.default", problem))
    return problems


def _semantic_problems(
    document: Mapping[str, Any], profiles: Iterable[str] | None, declared: set[str] | None
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    inputs = document.get("inputs")
    if isinstance(inputs, Mapping):
        for name, spec in inputs.items():
            if isinstance(spec, Mapping):
                problems.extend(_input_problems(str(name), spec, declared))
    outputs = document.get("outputs")
    if isinstance(outputs, Mapping):
        for name, spec in outputs.items():
            if not isinstance(spec, Mapping):
                continue
            where = f"outputs.{name}"
            kind = spec.get("type")
            if kind == "file" and "path" in spec and not is_relative_path(spec["path"]):
                problems.append(
                    (f"{where}.path", "must be a relative path inside the run folder, without '..'")
                )
            if kind == "file" and "schema" in spec:
                problems.append((f"{where}.schema", "does not apply to file outputs"))
            if kind == "value":
                for key in ("path", "mediaType"):
                    if key in spec:
                        problems.append((f"{where}.{key}", "does not apply to value outputs"))
                if isinstance(spec.get("schema"), Mapping):
                    try:
                        jsonschema.Draft202012Validator.check_schema(spec["schema"])
                    except jsonschema.SchemaError:
                        problems.append((f"{where}.schema", "must be a valid JSON Schema"))
    profile = document.get("profile", DEFAULT_PROFILE)
    if profiles is not None and isinstance(profile, str):
        known = list(profiles)
        if profile not in known:
            problems.append(("profile", "must be a profile of the catalogue: " + ", ".join(known)))
    visibility = document.get("visibility", DEFAULT_VISIBILITY)
    if visibility == "projects" and not document.get("projects"):
        problems.append(("projects", "is required (at least one project) with visibility projects"))
    if document.get("projects") and visibility != "projects":
        problems.append(("projects", "applies only with visibility projects"))
    return problems


def validate_definition(
    document: Any,
    *,
    profiles: Iterable[str] | None = None,
    declared_parameters: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Check ``document`` against the schema and the rules above; the definition with its defaults filled in.

    ``profiles``: the catalogue's profile names (None: not checked); ``declared_parameters``: the names of the
    notebook's ``parameters`` cell (None: not checked). Raises ``DefinitionInvalid`` listing every problem."""
    if not isinstance(document, Mapping):
        raise DefinitionInvalid(["(definition): must be a JSON object"])
    seen: list[tuple[str, str]] = []
    for error in sorted(_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator in ("if", "allOf"):
            continue
        item = _schema_message(error)
        if item not in seen:
            seen.append(item)
    declared = set(declared_parameters) if declared_parameters is not None else None
    for item in _semantic_problems(document, profiles, declared):
        # A field the schema already refused is not reported twice.
        if item not in seen and not any(item[0] == where for where, _ in seen):
            seen.append(item)
    if seen:
        raise DefinitionInvalid([f"{where}: {rule}" for where, rule in seen])
    definition = json.loads(json.dumps(document))  # a plain copy, JSON types only
    definition.setdefault("profile", DEFAULT_PROFILE)
    definition.setdefault("timeout", DEFAULT_TIMEOUT)
    definition.setdefault("visibility", DEFAULT_VISIBILITY)
    definition.setdefault("inputs", {})
    definition.setdefault("outputs", {})
    return definition


def is_required(spec: Mapping[str, Any]) -> bool:
    """An input is required when it has no default, unless it says ``"required": false``."""
    return "default" not in spec and spec.get("required", True) is not False


# --- notebooks ------------------------------------------------------------------------------------------------


def read_notebook(content: bytes) -> dict[str, Any]:
    """The notebook's JSON, checked to be an nbformat 4 notebook; ``NotebookInvalid`` otherwise."""
    try:
        notebook = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NotebookInvalid("notebook: is not a JSON notebook file (.ipynb)") from None
    if (
        not isinstance(notebook, dict)
        or notebook.get("nbformat") != 4
        or not isinstance(notebook.get("cells"), list)
    ):
        raise NotebookInvalid("notebook: must be an nbformat 4 notebook (.ipynb)")
    return notebook


def notebook_parameters(content: bytes) -> dict[str, dict[str, Any]]:
    """The ``parameters`` cell as papermill reads it: ``{name: {name, inferred_type_name, default, help}}``.

    Empty when the notebook has no cell tagged ``parameters``."""
    import papermill  # imported here: papermill pulls in nbclient and friends, needed only when publishing

    read_notebook(content)
    with tempfile.TemporaryDirectory(prefix="polartep-inspect-") as folder:
        path = Path(folder) / "notebook.ipynb"
        path.write_bytes(content)
        try:
            return dict(papermill.inspect_notebook(str(path)))
        except Exception as error:  # papermill raises assorted errors for notebooks it cannot read
            raise NotebookInvalid(
                f"notebook: papermill cannot read its parameters ({type(error).__name__})"
            ) from None


_ANNOTATION_TYPES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "list": "array",
}


def _inferred_input(parameter: Mapping[str, Any]) -> dict[str, Any]:
    annotation = str(parameter.get("inferred_type_name") or "None").strip()
    spec: dict[str, Any] = {}
    try:
        default = ast.literal_eval(str(parameter.get("default", "")))
        has_default = True
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        default, has_default = None, False
    kind = _ANNOTATION_TYPES.get(annotation.split("[")[0])
    if kind is None and has_default:
        if isinstance(default, bool):
            kind = "boolean"
        elif isinstance(default, int):
            kind = "integer"
        elif isinstance(default, float):
            kind = "number"
        elif isinstance(default, list | tuple):
            kind = "array"
        elif isinstance(default, str):
            kind = "date" if _is_date(default) else "datetime" if _is_datetime(default) else "string"
    kind = kind or "string"
    spec["type"] = kind
    if kind == "array":
        items = list(default) if has_default and isinstance(default, list | tuple) else []
        item_kind = "number" if items and all(_is_number(i) for i in items) else "string"
        if items and all(_is_integer(i) and not isinstance(i, float) for i in items):
            item_kind = "integer"
        if len(items) == 4 and item_kind in ("number", "integer") and _bbox_problem(items) is None:
            spec = {"type": "bbox"}
            kind = "bbox"
            default = [float(v) for v in items]
        else:
            spec["items"] = {"type": item_kind}
            default = items
    help_text = str(parameter.get("help") or "").strip()
    if help_text:
        spec["description"] = help_text[:10000]
    if has_default and default is not None:
        if kind == "number" and _is_integer(default) and not isinstance(default, bool):
            default = float(default)
        if value_problem(spec, default) is None:
            spec["default"] = default
    if "default" not in spec and has_default and default is None:
        spec["required"] = False  # ``x = None``: optional, papermill injects nothing when it is not given
    return spec


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = "p-" + slug
    return (slug + "-processor")[:63].rstrip("-") if len(slug) < 2 else slug[:63].rstrip("-")


def draft_from_notebook(content: bytes, filename: str = "notebook.ipynb") -> dict[str, Any]:
    """A draft definition for the notebook: id and title from its file name, inputs from its ``parameters`` cell."""
    stem = PurePosixPath(filename).name.removesuffix(".ipynb") or "notebook"
    inputs = {
        name: _inferred_input(parameter)
        for name, parameter in notebook_parameters(content).items()
        if name.isidentifier() and not keyword.iskeyword(name)
    }
    return {
        "id": _slug(stem),
        "title": re.sub(r"[-_]+", " ", stem).strip().capitalize()[:200] or "Notebook",
        "description": "",
        "version": "0.1.0",
        "notebook": PurePosixPath(filename).name[:255],
        "inputs": inputs,
        "outputs": {},
        "profile": DEFAULT_PROFILE,
        "timeout": DEFAULT_TIMEOUT,
        "visibility": DEFAULT_VISIBILITY,
    }
