"""The run form of a processor, described once from its definition: the fields both forms draw.

``form_fields(definition)`` turns each declared input into one field description (plain JSON): which widget shows it,
its label, help text (the input's description), whether it is required, its bounds, options and the default as the
form shows it. The service's page (``pages.py``, Jinja2) and the JupyterLab run form (``extensions/src/runForm.ts``,
through ``GET api/v1/processors/{id}/form``) both draw exactly these fields; the type-to-widget rules live here and
nowhere else.

``values_from_form(fields, form)`` reads a posted HTML form (text values) back into JSON values by the same fields.
It only converts text to the widget's JSON shape; deciding what is valid stays with ``inputs.validate_inputs``, which
every run goes through (the API's 400 names each input, and the page shows each beside its field).

Widgets (``widget``):

* ``text`` (string, path, stac-item, stac-collection, datetime: a placeholder shows the expected shape),
* ``number`` (number and integer, with ``min``, ``max`` and ``step``: ``1`` for integers, ``any`` otherwise),
* ``checkbox`` (boolean), ``date`` (date),
* ``select`` (any scalar input with ``enum``: ``options`` are ``{"value": <JSON text of the value>, "label"}``),
* ``bbox`` (four number inputs ``<name>.west``, ``.south``, ``.east``, ``.north``),
* ``list`` (arrays: a text area, one item per line, each item of type ``items``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from polartep_hub.processors.inputs import is_required

BBOX_PARTS = ("west", "south", "east", "north")
_PLACEHOLDERS = {
    "datetime": "2025-01-01T12:00:00Z",
    "path": "relative/path/in/your/home",
    "stac-item": "collection/item or https://…",
    "stac-collection": "collection id or https://…",
}
_NUMERIC = ("number", "integer")


def _text(value: Any) -> str:
    """A JSON value as a form shows it in a text input."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _field(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(spec.get("type", "string"))
    field: dict[str, Any] = {
        "name": name,
        "type": kind,
        "label": str(spec.get("title") or name),
        "help": str(spec.get("description") or ""),
        "required": is_required(spec),
        "has_default": "default" in spec,
    }
    default = spec.get("default")
    if spec.get("enum") is not None and kind != "array":
        field["widget"] = "select"
        field["options"] = [{"value": json.dumps(option), "label": _text(option)} for option in spec["enum"]]
        field["value"] = json.dumps(default) if "default" in spec else ""
    elif kind in _NUMERIC:
        field["widget"] = "number"
        field["step"] = "1" if kind == "integer" else "any"
        for bound, key in (("minimum", "min"), ("maximum", "max")):
            if spec.get(bound) is not None:
                field[key] = spec[bound]
        field["value"] = _text(default)
    elif kind == "boolean":
        field["widget"] = "checkbox"
        field["value"] = bool(default)
    elif kind == "date":
        field["widget"] = "date"
        field["value"] = _text(default)
    elif kind == "bbox":
        field["widget"] = "bbox"
        parts = default if isinstance(default, list) and len(default) == 4 else [None] * 4
        field["parts"] = [{"name": f"{name}.{part}", "label": part} for part in BBOX_PARTS]
        field["value"] = [_text(value) for value in parts]
    elif kind == "array":
        items = spec.get("items") or {}
        field["widget"] = "list"
        field["items"] = str(items.get("type", "string"))
        field["value"] = "\n".join(_text(item) for item in default) if isinstance(default, list) else ""
        field["help"] = (field["help"] + " " if field["help"] else "") + (f"One {field['items']} per line.")
    else:
        field["widget"] = "text"
        field["value"] = _text(default)
        if kind in _PLACEHOLDERS:
            field["placeholder"] = _PLACEHOLDERS[kind]
        if kind == "string" and spec.get("maxLength") is not None:
            field["maxlength"] = spec["maxLength"]
    return field


def form_fields(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One field description per declared input, in the definition's order."""
    inputs: Mapping[str, Any] = definition.get("inputs") or {}
    return [_field(str(name), spec if isinstance(spec, Mapping) else {}) for name, spec in inputs.items()]


def file_outputs(definition: Mapping[str, Any]) -> list[dict[str, str]]:
    """The declared file outputs: name, path in the run folder, media type."""
    outputs: Mapping[str, Any] = definition.get("outputs") or {}
    return [
        {
            "name": str(name),
            "path": str(spec.get("path", "")),
            "media_type": str(spec.get("mediaType") or "application/octet-stream"),
            "description": str(spec.get("description") or ""),
        }
        for name, spec in outputs.items()
        if isinstance(spec, Mapping) and spec.get("type") == "file"
    ]


def _scalar_from_text(text: str, kind: str) -> Any:
    """Text of a scalar of type ``kind`` as JSON; ``ValueError`` naming the expected shape."""
    if kind in _NUMERIC:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if kind == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError("must be true or false")
    return text


def values_from_form(
    fields: list[dict[str, Any]], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The inputs a posted form gives (only fields filled in, or required ones), and the fields that cannot be read.

    An empty field is left out, so the processor's default applies (or the service answers that the input is
    required); an emptied string that has a default is sent as ``""``. A checkbox is true when sent.
    """
    given: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field in fields:
        name, widget = field["name"], field["widget"]
        try:
            if widget == "checkbox":
                given[name] = form.get(name) is not None
                continue
            if widget == "bbox":
                texts = [form.get(part["name"], "").strip() for part in field["parts"]]
                if not any(texts):
                    continue
                given[name] = [_scalar_from_text(text, "number") for text in texts]
                continue
            text = form.get(name, "")
            if widget == "list":
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                if lines:
                    given[name] = [_scalar_from_text(line, field["items"]) for line in lines]
                elif field["required"]:
                    given[name] = []
                continue
            if text.strip() == "" and not (field["type"] == "string" and field["has_default"]):
                # Left empty: the default applies, or the service says the input is required.
                continue
            if widget == "select":
                try:
                    given[name] = json.loads(text)
                except ValueError:
                    raise ValueError("choose one of the options") from None
            elif widget == "number":
                given[name] = _scalar_from_text(text.strip(), field["type"])
            else:
                given[name] = text
        except ValueError as problem:
            problems[name] = str(problem)
    return given, problems
