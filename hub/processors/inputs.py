"""A run's inputs checked against its processor's definition: the only values a run ever injects into a notebook.

``validate_inputs(definition, given)`` returns the complete parameters of a run (every declared input: the given
value or the default) or raises ``InputsInvalid`` listing every input's problem at once.

Rules this module guarantees:

* **Only declared names.** A name that the definition's ``inputs`` do not declare is refused; so is a declared name
  that is not a plain Python identifier (or is a keyword): papermill writes names into the notebook's code unescaped
  (``name = value``), so a name with a newline or ``=`` would be code. ``injectable_names`` is the second fence: the
  runs inject only names that the notebook's own ``parameters`` cell assigns.
* **Only values of the declared type.** Every value is checked against its input's type and bounds; booleans are
  never numbers (``True`` is no integer), numbers are finite, strings have a length bound (``maxLength``, at most
  ``MAX_STRING_LENGTH``) and no NUL. What comes out is plain JSON data (``str``, ``int``, ``float``, ``bool``,
  ``list``), which papermill translates into Python literals (strings are escaped), never code. Dates and datetimes
  come out as ISO strings, bounding boxes as four floats, arrays as lists.
* **Missing required inputs** (no default and not ``"required": false``) are refused; an optional input without a
  default that is not given is left out, so the notebook's own value applies.
* **One error for everything**: ``InputsInvalid.problems`` maps each offending input to what is wrong with it, and
  its message names each of them, so a form can mark every field at once.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

MAX_STRING_LENGTH = 10_000
MAX_ARRAY_ITEMS = 10_000
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# RFC 3339: date, "T" (or space), time, optional fraction, and a zone ("Z" or an offset) that must be there.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_COLLECTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_STAC_ITEM_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}/[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_PATH_PART = re.compile(r"[^\x00-\x1f\\]+")
SCALAR_TYPES = (
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
)
INPUT_TYPES = (*SCALAR_TYPES, "array")


class InputsInvalid(ValueError):
    """The given inputs do not fit the definition; ``problems`` maps each input's name to what is wrong."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        listed = "; ".join(f"{name}: {problem}" for name, problem in sorted(self.problems.items()))
        super().__init__(f"invalid inputs: {listed}")


class _Invalid(Exception):
    """One value's problem (internal: collected into ``InputsInvalid``)."""


def is_injectable_name(name: object) -> bool:
    """Whether ``name`` may be written by papermill as ``name = value`` without being more than a name."""
    return isinstance(name, str) and bool(_IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name)


def is_required(spec: Mapping[str, Any]) -> bool:
    """An input is required when it has no default, unless it says ``"required": false``."""
    if "required" in spec:
        return bool(spec["required"])
    return "default" not in spec


def _number(value: Any, spec: Mapping[str, Any], *, integer: bool) -> int | float:
    # bool is a subclass of int in Python, and JSON's true is no number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("must be an integer" if integer else "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid("must be a finite number")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise _Invalid("must be an integer")
            value = int(value)
    else:
        value = float(value) if isinstance(value, float) else value
    minimum, maximum = spec.get("minimum"), spec.get("maximum")
    if minimum is not None and value < minimum:
        raise _Invalid(f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise _Invalid(f"must be at most {maximum}")
    return value


def _string(value: Any, spec: Mapping[str, Any]) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    if "\x00" in value:
        raise _Invalid("must not contain NUL characters")
    limit = min(int(spec.get("maxLength", MAX_STRING_LENGTH)), MAX_STRING_LENGTH)
    if len(value) > limit:
        raise _Invalid(f"must be at most {limit} characters")
    if len(value) < int(spec.get("minLength", 0)):
        raise _Invalid(f"must be at least {spec['minLength']} characters")
    return value


def _date(value: Any) -> str:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _Invalid("must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _Invalid("must be a real calendar date YYYY-MM-DD") from None


def _datetime(value: Any) -> str:
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise _Invalid("must be an RFC 3339 date and time with a zone, e.g. 2025-01-01T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise _Invalid("must be a real date and time (RFC 3339, with a zone)") from None
    return parsed.isoformat()


def _bbox(value: Any) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise _Invalid("must be a list of 4 numbers [west, south, east, north]")
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise _Invalid("must be a list of 4 finite numbers [west, south, east, north]")
        numbers.append(float(item))
    west, south, east, north = numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise _Invalid("west and east must be within -180 .. 180 degrees")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise _Invalid("south and north must be within -90 .. 90 degrees")
    if south > north:
        raise _Invalid("south must not be greater than north")
    return numbers


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise _Invalid("must be a relative path of 1 to 1024 characters")
    if value.startswith("/") or value.startswith("~"):
        raise _Invalid("must be a relative path (no leading / or ~)")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise _Invalid("must not contain '..', '.' or empty parts")
        if not _PATH_PART.fullmatch(part):
            raise _Invalid("must not contain control characters or backslashes")
    return value


def _url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in value)


def _stac(value: Any, *, item: bool) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise _Invalid("must be a string of at most 2048 characters")
    if _url(value):
        return value
    if item and _STAC_ITEM_REF.fullmatch(value):
        return value
    if not item and _COLLECTION_ID.fullmatch(value):
        return value
    raise _Invalid(
        "must be an http(s) URL or a 'collection/item' reference"
        if item
        else "must be an http(s) URL or a collection id"
    )


def _scalar(value: Any, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type")
    if kind == "string":
        checked: Any = _string(value, spec)
    elif kind in ("number", "integer"):
        checked = _number(value, spec, integer=kind == "integer")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _Invalid("must be true or false")
        checked = value
    elif kind == "date":
        checked = _date(value)
    elif kind == "datetime":
        checked = _datetime(value)
    elif kind == "bbox":
        checked = _bbox(value)
    elif kind == "path":
        checked = _path(value)
    elif kind == "stac-item":
        checked = _stac(value, item=True)
    elif kind == "stac-collection":
        checked = _stac(value, item=False)
    else:
        raise _Invalid(f"has an unknown type {str(kind)[:40]!r} in the definition; it cannot be run")
    enum = spec.get("enum")
    if enum is not None and checked not in enum:
        raise _Invalid("must be one of: " + ", ".join(str(option) for option in enum))
    return checked


def check_value(value: Any, spec: Mapping[str, Any]) -> Any:
    """``value`` as it is injected, if it fits ``spec`` (one input's definition); ``ValueError`` otherwise."""
    try:
        return _check(value, spec)
    except _Invalid as problem:
        raise ValueError(str(problem)) from None


def _check(value: Any, spec: Mapping[str, Any]) -> Any:
    if spec.get("type") != "array":
        return _scalar(value, spec)
    if not isinstance(value, list):
        raise _Invalid("must be a list")
    items = spec.get("items") or {}
    if items.get("type") not in SCALAR_TYPES:
        raise _Invalid("has array items of an unknown type in the definition; it cannot be run")
    low, high = int(spec.get("minItems", 0)), min(int(spec.get("maxItems", MAX_ARRAY_ITEMS)), MAX_ARRAY_ITEMS)
    if len(value) < low:
        raise _Invalid(f"must have at least {low} items")
    if len(value) > high:
        raise _Invalid(f"must have at most {high} items")
    checked = []
    for index, item in enumerate(value):
        try:
            checked.append(_scalar(item, items))
        except _Invalid as problem:
            raise _Invalid(f"item {index} {problem}") from None
    return checked


def validate_inputs(definition: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared input's value for a run: ``given``'s, else the default; ``InputsInvalid`` naming each problem.

    Inputs that are optional, have no default and are not given are left out (the notebook's own value applies).
    """
    if not isinstance(given, Mapping):
        raise InputsInvalid({"inputs": "must be a JSON object of input names and values"})
    declared: Mapping[str, Any] = definition.get("inputs") or {}
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            shown = name if is_injectable_name(name) else repr(str(name)[:64])
            problems[shown] = "is not an input of this processor" + (
                f" (its inputs: {', '.join(sorted(declared))})" if declared else " (it takes no inputs)"
            )
    for name, spec in declared.items():
        if not is_injectable_name(name):
            problems[repr(str(name)[:64])] = "is not a Python identifier; the processor cannot be run"
            continue
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        elif is_required(spec):
            problems[name] = "is required"
            continue
        else:
            continue
        try:
            values[name] = _check(value, spec)
        except _Invalid as problem:
            where = "" if name in given else " (its default)"
            problems[name] = f"{problem}{where}"
    if problems:
        raise InputsInvalid(problems)
    return values


def injectable_names(parameters_cell_names: set[str], values: Mapping[str, Any]) -> list[str]:
    """The names of ``values`` that the notebook's ``parameters`` cell does not assign (must be empty to run)."""
    return sorted(name for name in values if name not in parameters_cell_names)
