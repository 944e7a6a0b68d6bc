"""The run form described once (``processors/form.py``): one field per input by type, and a posted form read back.

Specification: each input type gets its widget (enum as select, numbers with bounds and step, boolean as checkbox,
date, bbox as four numbers, arrays as one item per line, the other strings as text with a placeholder), defaults
filled, descriptions as help, required marked; a form posted with the defaults shown gives exactly the defaults once
validated; what cannot be read is named per field; empty fields are left to the defaults.
"""

from __future__ import annotations

import json

from polartep_hub.processors.form import file_outputs, form_fields, values_from_form
from polartep_hub.processors.inputs import validate_inputs

DEFINITION = {
    "inputs": {
        "start": {"type": "date", "title": "First day", "description": "first day", "default": "2025-01-01"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.15},
        "days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
        "region": {"type": "string", "enum": ["arctic", "antarctic"], "default": "arctic"},
        "label": {"type": "string", "maxLength": 20, "default": "x"},
        "smooth": {"type": "boolean", "default": True},
        "when": {"type": "datetime", "required": False},
        "area": {"type": "bbox", "default": [-180, 60, 180, 90]},
        "data": {"type": "path"},
        "years": {"type": "array", "items": {"type": "integer"}, "default": [2020, 2021]},
        "level": {"type": "integer", "enum": [1, 2, 3], "default": 2},
    },
    "outputs": {
        "table": {"type": "file", "path": "extent.csv", "mediaType": "text/csv"},
        "mean": {"type": "value", "schema": {"type": "number"}},
    },
}


def by_name():
    return {field["name"]: field for field in form_fields(DEFINITION)}


def test_each_type_gets_its_widget_with_defaults_help_bounds_and_required_marked():
    fields = by_name()
    assert list(fields) == list(DEFINITION["inputs"])
    assert {name: field["widget"] for name, field in fields.items()} == {
        "start": "date",
        "threshold": "number",
        "days": "number",
        "region": "select",
        "label": "text",
        "smooth": "checkbox",
        "when": "text",
        "area": "bbox",
        "data": "text",
        "years": "list",
        "level": "select",
    }
    assert fields["start"] == {
        "name": "start",
        "type": "date",
        "label": "First day",
        "help": "first day",
        "required": False,
        "has_default": True,
        "widget": "date",
        "value": "2025-01-01",
    }
    assert (fields["threshold"]["min"], fields["threshold"]["max"], fields["threshold"]["step"]) == (
        0,
        1,
        "any",
    )
    assert (fields["days"]["step"], fields["days"]["value"]) == ("1", "30")
    assert fields["region"]["options"] == [
        {"value": '"arctic"', "label": "arctic"},
        {"value": '"antarctic"', "label": "antarctic"},
    ]
    assert fields["level"]["value"] == "2"
    assert fields["area"]["value"] == ["-180", "60", "180", "90"]
    assert [part["name"] for part in fields["area"]["parts"]] == [
        "area.west",
        "area.south",
        "area.east",
        "area.north",
    ]
    assert fields["years"]["value"] == "2020\n2021"
    assert fields["years"]["help"] == "One integer per line."
    assert fields["when"]["placeholder"] == "2025-01-01T12:00:00Z"
    assert fields["label"]["maxlength"] == 20
    assert (fields["data"]["required"], fields["when"]["required"]) == (True, False)
    assert file_outputs(DEFINITION) == [
        {"name": "table", "path": "extent.csv", "media_type": "text/csv", "description": ""}
    ]


def posted_defaults() -> dict[str, str]:
    """What a browser posts for the form as drawn (a checked checkbox sends its value)."""
    form: dict[str, str] = {}
    for field in form_fields(DEFINITION):
        if field["widget"] == "checkbox":
            if field["value"]:
                form[field["name"]] = "true"
        elif field["widget"] == "bbox":
            form.update(
                {part["name"]: value for part, value in zip(field["parts"], field["value"], strict=True)}
            )
        else:
            form[field["name"]] = field["value"]
    return form


def test_the_form_as_drawn_reads_back_to_the_defaults():
    form = posted_defaults()
    form["data"] = "datasets/p/d"
    given, problems = values_from_form(form_fields(DEFINITION), form)
    assert problems == {}
    definition_defaults = validate_inputs(DEFINITION, {"data": "datasets/p/d"})
    assert validate_inputs(DEFINITION, given) == definition_defaults
    assert given["smooth"] is True and given["level"] == 2 and given["years"] == [2020, 2021]


def test_changed_values_are_read_as_their_types_and_unreadable_ones_are_named():
    form = posted_defaults()
    del form["smooth"]  # an unticked checkbox is not sent
    form.update(
        {"threshold": "0.5", "days": "abc", "years": "1990\nx", "area.west": "", "region": '"antarctic"'}
    )
    given, problems = values_from_form(form_fields(DEFINITION), form)
    assert problems == {"days": "must be a number", "years": "must be a number", "area": "must be a number"}
    assert (given["smooth"], given["threshold"], given["region"]) == (False, 0.5, "antarctic")
    assert "data" not in given  # empty: the service answers that it is required
    assert json.dumps(given["start"]) == '"2025-01-01"'


def test_an_emptied_string_with_a_default_is_sent_empty_and_other_empty_fields_are_left_out():
    form = posted_defaults()
    form.update({"label": "", "threshold": " ", "start": "", "years": ""})
    given, problems = values_from_form(form_fields(DEFINITION), form)
    assert problems == {}
    assert given["label"] == ""
    assert not {"threshold", "start", "years"} & set(given)
