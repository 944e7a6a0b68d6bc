"""``validate_inputs``: every input type, its bounds, unknown and missing names, one error naming every problem."""

from __future__ import annotations

import pytest

from polartep_hub.processors.inputs import InputsInvalid, injectable_names, validate_inputs

DEFINITION = {
    "id": "sea-ice-extent",
    "inputs": {
        "start": {"type": "date", "default": "2025-01-01", "required": False},
        "threshold": {"type": "number", "minimum": 0, "maximum": 100, "default": 15},
        "days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
        "region": {"type": "string", "enum": ["arctic", "antarctic"], "default": "arctic"},
        "label": {"type": "string", "maxLength": 20, "default": ""},
        "smooth": {"type": "boolean", "default": True},
        "when": {"type": "datetime", "required": False},
        "area": {"type": "bbox", "default": [-180, 60, 180, 90]},
        "data": {"type": "path", "required": False},
        "item": {"type": "stac-item", "required": False},
        "collection": {"type": "stac-collection", "required": False},
        "years": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1979},
            "minItems": 1,
            "maxItems": 3,
            "default": [2020],
        },  # fmt: skip
    },
}
DEFAULTS = {
    "start": "2025-01-01",
    "threshold": 15,
    "days": 30,
    "region": "arctic",
    "label": "",
    "smooth": True,
    "area": [-180.0, 60.0, 180.0, 90.0],
    "years": [2020],
}


def problems_of(given: dict, definition: dict = DEFINITION) -> dict[str, str]:
    with pytest.raises(InputsInvalid) as caught:
        validate_inputs(definition, given)
    for name in caught.value.problems:
        assert name in str(caught.value)
    return caught.value.problems


def test_nothing_given_gives_every_default_and_leaves_optional_inputs_without_default_out():
    assert validate_inputs(DEFINITION, {}) == DEFAULTS


def test_every_type_accepts_a_good_value_and_returns_it_as_papermill_injects_it():
    given = {
        "start": "2024-02-29",
        "threshold": 99.5,
        "days": 366,
        "region": "antarctic",
        "label": "x" * 20,
        "smooth": False,
        "when": "2025-03-01T12:30:00Z",
        "area": [-10, -90, 10.5, 90],
        "data": "folder/file.nc",
        "item": "sentinel-1/S1A_2025",
        "collection": "https://stac.example.org/collections/s1",
        "years": [1979, 2024.0],
    }
    values = validate_inputs(DEFINITION, given)
    assert values == {
        **given,
        "when": "2025-03-01T12:30:00+00:00",
        "area": [-10.0, -90.0, 10.5, 90.0],
        "years": [1979, 2024],
    }
    assert type(values["years"][1]) is int
    assert all(type(v) is float for v in values["area"])


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("threshold", "15", "must be a number"),
        ("threshold", True, "must be a number"),
        ("threshold", -0.1, "must be at least 0"),
        ("threshold", 100.01, "must be at most 100"),
        ("threshold", float("nan"), "must be a finite number"),
        ("threshold", float("inf"), "must be a finite number"),
        ("days", 1.5, "must be an integer"),
        ("days", False, "must be an integer"),
        ("days", 0, "must be at least 1"),
        ("days", 367, "must be at most 366"),
        ("region", "tropics", "must be one of: arctic, antarctic"),
        ("region", 3, "must be a string"),
        ("label", "x" * 21, "must be at most 20 characters"),
        ("label", "a\x00b", "must not contain NUL characters"),
        ("smooth", 1, "must be true or false"),
        ("smooth", "true", "must be true or false"),
        ("start", "2025-02-30", "must be a real calendar date YYYY-MM-DD"),
        ("start", "01/02/2025", "must be a date YYYY-MM-DD"),
        (
            "when",
            "2025-03-01T12:30:00",
            "must be an RFC 3339 date and time with a zone, e.g. 2025-01-01T12:00:00Z",
        ),
        ("when", "2025-13-01T12:30:00Z", "must be a real date and time (RFC 3339, with a zone)"),
        ("area", [0, 0, 1], "must be a list of 4 numbers [west, south, east, north]"),
        ("area", [0, 0, 1, "2"], "must be a list of 4 finite numbers [west, south, east, north]"),
        ("area", [-181, 0, 1, 2], "west and east must be within -180 .. 180 degrees"),
        ("area", [0, -91, 1, 2], "south and north must be within -90 .. 90 degrees"),
        ("area", [0, 10, 1, 2], "south must not be greater than north"),
        ("data", "/etc/passwd", "must be a relative path (no leading / or ~)"),
        ("data", "~/x", "must be a relative path (no leading / or ~)"),
        ("data", "a/../../b", "must not contain '..', '.' or empty parts"),
        ("data", "a//b", "must not contain '..', '.' or empty parts"),
        ("data", "a\\..\\b", "must not contain control characters or backslashes"),
        ("data", "a\nb", "must not contain control characters or backslashes"),
        ("item", "file:///etc/passwd", "must be an http(s) URL or a 'collection/item' reference"),
        ("item", "justone", "must be an http(s) URL or a 'collection/item' reference"),
        ("collection", "a b", "must be an http(s) URL or a collection id"),
        ("years", 2020, "must be a list"),
        ("years", [], "must have at least 1 items"),
        ("years", [2000, 2001, 2002, 2003], "must have at most 3 items"),
        ("years", [2000, 1900], "item 1 must be at least 1979"),
        ("years", [2000, "2001"], "item 1 must be an integer"),
    ],
)
def test_a_wrong_value_is_refused_with_its_problem(name, value, problem):
    assert problems_of({name: value}) == {name: problem}


def test_one_error_names_every_input_at_once():
    problems = problems_of({"threshold": "high", "days": 0, "smooth": "yes", "color": "red"})
    assert set(problems) == {"threshold", "days", "smooth", "color"}
    assert problems["color"].startswith(
        "is not an input of this processor (its inputs: area, collection, data,"
    )


def test_a_missing_required_input_is_refused():
    definition = {
        "inputs": {"a": {"type": "integer"}, "b": {"type": "string", "required": True, "default": "x"}}
    }
    assert problems_of({}, definition) == {"a": "is required"}
    assert validate_inputs(definition, {"a": 1}) == {"a": 1, "b": "x"}


def test_a_bad_default_is_reported_as_the_default():
    definition = {"inputs": {"a": {"type": "integer", "maximum": 3, "default": 9}}}
    assert problems_of({}, definition) == {"a": "must be at most 3 (its default)"}


@pytest.mark.parametrize(
    "name",
    ["x\nimport os", "x = 1; import os #", "__import__('os')", "1abc", "class", "a b", ""],
)
def test_a_name_crafted_as_code_is_refused_and_not_echoed_raw(name):
    problems = problems_of({name: 1})
    assert list(problems) == [repr(name[:64])]
    assert problems[repr(name[:64])].startswith("is not an input of this processor")


def test_a_declared_name_that_is_no_identifier_makes_the_processor_unrunnable():
    definition = {"inputs": {"x\nimport os": {"type": "integer", "default": 1}}}
    assert problems_of({}, definition) == {
        repr("x\nimport os"): "is not a Python identifier; the processor cannot be run"
    }


def test_a_value_crafted_as_code_stays_a_string_value():
    crafted = "\"; import os; os.system('touch /tmp/pwned') #\n'''\\"
    definition = {"inputs": {"label": {"type": "string", "default": ""}}}
    assert validate_inputs(definition, {"label": crafted}) == {"label": crafted}


def test_papermill_writes_a_crafted_string_as_a_literal_that_evaluates_to_the_same_string():
    from papermill.translators import PythonTranslator

    crafted = "\"; import os; os.system('touch /tmp/pwned') #\n'''\\ é \\\""
    source = PythonTranslator.codify({"label": crafted})
    namespace: dict = {}
    exec(compile(source, "<parameters>", "exec"), {"__builtins__": {}}, namespace)  # literals only
    assert namespace == {"label": crafted}


def test_inputs_must_be_an_object():
    with pytest.raises(InputsInvalid) as caught:
        validate_inputs(DEFINITION, ["threshold"])  # type: ignore[arg-type]
    assert caught.value.problems == {"inputs": "must be a JSON object of input names and values"}


def test_injectable_names_lists_what_the_parameters_cell_does_not_assign():
    assert injectable_names({"a", "b"}, {"a": 1, "c": 2}) == ["c"]
    assert injectable_names({"a"}, {"a": 1}) == []
