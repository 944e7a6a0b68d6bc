"""The processor definition: schema errors field by field, the checks beyond the schema, semver, the draft."""

from __future__ import annotations

import json

import pytest

from polartep_hub.catalogue import load_catalogue
from polartep_hub.processors import definition as definitions
from polartep_hub.processors.definition import DefinitionInvalid, validate_definition
from tests.helpers.processor_registry import definition, notebook_bytes

PROFILES = list(load_catalogue().profiles)
DECLARED = ["threshold", "days", "start", "region", "smooth", "area", "years", "label"]


def problems_of(document, **kwargs) -> list[str]:
    kwargs.setdefault("profiles", PROFILES)
    kwargs.setdefault("declared_parameters", DECLARED)
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(document, **kwargs)
    return caught.value.problems


def with_input(name, spec, **fields):
    document = definition(**fields)
    document["inputs"][name] = spec
    return document


def test_a_valid_definition_gets_its_defaults_filled_in():
    document = definition()
    del document["profile"], document["timeout"], document["visibility"]
    valid = validate_definition(document, profiles=PROFILES, declared_parameters=DECLARED)
    assert (valid["profile"], valid["timeout"], valid["visibility"]) == ("interactive", 3600, "private")
    assert valid["inputs"] == definition()["inputs"]


def test_the_contract_example_is_valid():
    document = definition(visibility="projects", projects=["glaciology"])
    document["inputs"].update(
        {
            "when": {"type": "datetime"},
            "data": {"type": "path"},
            "item": {"type": "stac-item"},
            "collection": {"type": "stac-collection"},
        }
    )
    validate_definition(document, profiles=PROFILES)  # names not checked without a notebook


@pytest.mark.parametrize(
    "document,expected",
    [
        (
            with_input("threshold", {"type": "number", "maximum": "100"}),
            "inputs.threshold.maximum: must be a number",
        ),
        ({**definition(), "id": "Sea Ice"}, "id: must match ^[a-z][a-z0-9-]{1,62}$"),
        ({**definition(), "title": ""}, "title: must have at least 1 character"),
        ({**definition(), "title": "x" * 201}, "title: must have at most 200 characters"),
        ({**definition(), "keywords": ["a"] * 21}, "keywords: must have at most 20 items"),
        ({**definition(), "keywords": [""]}, "keywords.0: must have at least 1 character"),
        ({**definition(), "timeout": 5}, "timeout: must be at least 10"),
        ({**definition(), "timeout": 86401}, "timeout: must be at most 86400"),
        ({**definition(), "timeout": 1.5}, "timeout: must be an integer"),
        (
            {**definition(), "visibility": "everyone"},
            'visibility: must be one of "private", "projects", "public"',
        ),
        ({**definition(), "colour": "red"}, "colour: is not a known field"),
        ({k: v for k, v in definition().items() if k != "title"}, "title: is required"),
        (
            with_input("x", {"type": "text"}),
            "inputs.x.type: must be one of " + ", ".join(definitions.INPUT_TYPES),
        ),
        (with_input("days", {"type": "integer", "default": 2.5}), "inputs.days.default: must be an integer"),
        (
            with_input("smooth", {"type": "boolean", "default": "yes"}),
            "inputs.smooth.default: must be true or false",
        ),
        (
            with_input("start", {"type": "date", "default": "1 Jan"}),
            "inputs.start.default: must match ^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        ),
        (with_input("years", {"type": "array"}), "inputs.years.items: is required"),
        (
            with_input("threshold", {"type": "number", "unit": "%"}),
            "inputs.threshold.unit: is not a known field",
        ),
        ({**definition(), "outputs": {"plot": {"type": "file"}}}, "outputs.plot.path: is required"),
        ({**definition(), "outputs": {"v": {"type": "value"}}}, "outputs.v.schema: is required"),
        ({**definition(), "version": "1.0"}, "version: must match"),
        ({**definition(), "version": "1.0.0+build"}, "version: must match"),
        ({**definition(), "version": "01.0.0"}, "version: must match"),
    ],
)
def test_schema_errors_name_the_field_and_the_rule(document, expected):
    problems = problems_of(document)
    assert any(
        p == expected or (expected.endswith("must match") and p.startswith(expected)) for p in problems
    ), problems


def test_every_problem_is_reported_at_once_and_values_are_not_echoed():
    document = definition(title="", timeout="soon-SECRET")
    document["inputs"]["threshold"]["maximum"] = "SECRET"
    problems = problems_of(document)
    assert problems == [
        "inputs.threshold.maximum: must be a number",
        "timeout: must be an integer",
        "title: must have at least 1 character",
    ]
    assert "SECRET" not in str(DefinitionInvalid(problems))
    assert str(DefinitionInvalid(problems)).startswith(
        "invalid processor definition: inputs.threshold.maximum"
    )


@pytest.mark.parametrize(
    "name,spec,expected",
    [
        (
            "threshold",
            {"type": "number", "minimum": 0, "maximum": 100, "default": 150},
            "inputs.threshold.default: must be at most 100",
        ),
        (
            "threshold",
            {"type": "number", "minimum": 0, "default": -1},
            "inputs.threshold.default: must be at least 0",
        ),
        (
            "threshold",
            {"type": "number", "minimum": 10, "maximum": 5},
            "inputs.threshold.maximum: must not be less than minimum",
        ),
        (
            "region",
            {"type": "string", "enum": ["arctic", "antarctic"], "default": "tropics"},
            'inputs.region.default: must be one of "arctic", "antarctic"',
        ),
        ("region", {"type": "string", "enum": [1, 2]}, "inputs.region.enum.0: must be a string"),
        (
            "label",
            {"type": "string", "maxLength": 3, "default": "long"},
            "inputs.label.default: must have at most 3 characters",
        ),
        (
            "area",
            {"type": "bbox", "default": [-200, 60, 180, 90]},
            "inputs.area.default: west and east must lie in -180..180",
        ),
        (
            "area",
            {"type": "bbox", "default": [-180, 80, 180, 60]},
            "inputs.area.default: south and north must lie in -90..90, south <= north",
        ),
        (
            "start",
            {"type": "date", "default": "2025-02-30"},
            "inputs.start.default: must be a date YYYY-MM-DD",
        ),
        (
            "when",
            {"type": "datetime", "default": "2025-01-01T00:00:00"},
            "inputs.when.default: must match ^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
        ),
        (
            "data",
            {"type": "path", "default": "../etc/passwd"},
            "inputs.data.default: must be a relative path without '..' (a file or dataset path)",
        ),
        (
            "data",
            {"type": "path", "default": "/etc/passwd"},
            "inputs.data.default: must be a relative path without '..' (a file or dataset path)",
        ),
        (
            "years",
            {"type": "array", "items": {"type": "integer", "minimum": 1979}, "default": [1970]},
            "inputs.years.default: item 0 must be at least 1979",
        ),
        (
            "years",
            {"type": "array", "items": {"type": "integer"}, "maxItems": 1, "default": [1, 2]},
            "inputs.years.default: must have at most 1 items",
        ),
        (
            "smooth",
            {"type": "boolean", "minimum": 1},
            "inputs.smooth.minimum: does not apply to inputs of type boolean",
        ),
        (
            "years",
            {"type": "array", "items": {"type": "boolean", "maximum": 3}},
            "inputs.years.items.maximum: does not apply to items of type boolean",
        ),
        (
            "days",
            {"type": "integer", "default": 3, "required": True},
            "inputs.days.required: an input with a default cannot be required",
        ),
    ],
)
def test_defaults_fit_their_type_and_bounds(name, spec, expected):
    problems = problems_of(with_input(name, spec), declared_parameters=None)
    assert expected in problems, problems


def test_input_names_are_identifiers_declared_in_the_parameters_cell():
    document = definition()
    document["inputs"]["undeclared"] = {"type": "string", "default": ""}
    document["inputs"]["class"] = {"type": "string", "default": ""}
    document["inputs"]["import os"] = {"type": "string", "default": ""}
    problems = problems_of(document)
    assert "inputs.undeclared: is not declared in the notebook's parameters cell" in problems
    assert "inputs.class: the name must be a Python identifier and not a keyword" in problems
    assert "inputs.import os: the name must be a Python identifier of at most 64 characters" in problems
    assert len(problems) == 3


def test_the_profile_must_be_in_the_catalogue():
    assert problems_of(definition(profile="huge")) == [
        "profile: must be a profile of the catalogue: " + ", ".join(PROFILES)
    ]


def test_projects_go_with_visibility_projects():
    assert problems_of(definition(visibility="projects")) == [
        "projects: is required (at least one project) with visibility projects"
    ]
    assert problems_of(definition(projects=["glaciology"])) == [
        "projects: applies only with visibility projects"
    ]


def test_outputs_paths_stay_in_the_run_folder():
    document = definition(
        outputs={"plot": {"type": "file", "path": "../x.png"}, "v": {"type": "value", "schema": {"type": 3}}}
    )
    assert problems_of(document) == [
        "outputs.plot.path: must be a relative path inside the run folder, without '..'",
        "outputs.v.schema: must be a valid JSON Schema",
    ]


def test_not_an_object():
    assert problems_of([1, 2]) == ["(definition): must be a JSON object"]


def test_semver_precedence():
    ordered = [
        "0.9.9",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    assert sorted(ordered, key=definitions.semver_key) == ordered
    with pytest.raises(ValueError):
        definitions.semver_key("1.0")


def test_the_shipped_schema_is_a_valid_json_schema_and_served_as_is():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(definitions.schema())
    assert definitions.schema() == json.loads(definitions.SCHEMA_PATH.read_text())


def test_the_draft_is_inferred_from_the_parameters_cell():
    draft = definitions.draft_from_notebook(notebook_bytes(), "Sea_ice extent.ipynb")
    assert draft["id"] == "sea-ice-extent"
    assert draft["title"] == "Sea ice extent"
    assert draft["notebook"] == "Sea_ice extent.ipynb"
    assert draft["inputs"] == {
        "threshold": {
            "type": "integer",
            "description": "sea-ice concentration threshold, percent",
            "default": 15,
        },
        "days": {"type": "integer", "default": 30},
        "start": {"type": "date", "description": "first day", "default": "2025-01-01"},
        "region": {"type": "string", "default": "arctic"},
        "smooth": {"type": "boolean", "default": True},
        "area": {"type": "bbox", "default": [-180.0, 60.0, 180.0, 90.0]},
        "years": {"type": "array", "items": {"type": "integer"}, "default": [1979, 1980]},
        "label": {"type": "string", "required": False},
    }
    # The draft is itself a valid definition of its notebook.
    validate_definition(draft, profiles=PROFILES, declared_parameters=draft["inputs"])


def test_annotations_win_and_expressions_leave_no_default():
    source = 'ratio: float = 1\nwhen = date.today()  # today\nname: str = "x"\n'
    draft = definitions.draft_from_notebook(notebook_bytes(parameters=source))
    assert draft["inputs"] == {
        "ratio": {"type": "number", "default": 1.0},
        "when": {"type": "string", "description": "today"},
        "name": {"type": "string", "default": "x"},
    }


def test_a_notebook_without_parameters_cell_gives_no_inputs_and_garbage_is_refused():
    notebook = json.loads(notebook_bytes())
    notebook["cells"][0]["metadata"]["tags"] = []
    assert definitions.draft_from_notebook(json.dumps(notebook).encode())["inputs"] == {}
    with pytest.raises(definitions.NotebookInvalid, match="^notebook: is not a JSON notebook file"):
        definitions.notebook_parameters(b"\xff\xfe")
    with pytest.raises(definitions.NotebookInvalid, match="^notebook: must be an nbformat 4 notebook"):
        definitions.notebook_parameters(b'{"cells": []}')
