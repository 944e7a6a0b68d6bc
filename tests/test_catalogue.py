"""The catalogue: the shipped offering loads as typed objects, and every kind of mistake stops with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from polartep_hub.catalogue import DEFAULT_CATALOGUE_PATH, CatalogueError, load_catalogue, parse_memory

GiB = 1024**3


def test_shipped_catalogue_holds_the_service_offering():
    c = load_catalogue()
    sizes = {name: (p.cpu, p.memory // GiB) for name, p in c.profiles.items()}
    assert sizes == {
        "interactive": (1, 4),
        "small": (2, 8),
        "medium": (4, 32),
        "large": (8, 64),
        "ml": (4, 32),
    }
    assert c.profiles["ml"].gpu == 1 and c.profiles["ml"].gpu_policy == "if-available"
    assert c.profiles["ml"].image != c.profiles["small"].image
    plans = {name: (p.cpu_hours_per_month, p.price, p.duration_months) for name, p in c.plans.items()}
    assert plans == {"trial": (500, 0, 3), "standard": (500, 500, None), "large": (1000, 1000, None)}
    prices = {name: s.price for name, s in c.subscriptions.items()}
    assert prices["dev-small"] == 550 and prices["dev-medium"] == 650 and prices["dev-large"] == 750
    assert prices["dev-interactive"] == 550 and prices["ml"] == 1500
    assert [prices[f"hosting-{s}"] for s in ("small", "medium", "large")] == [550, 650, 750]
    assert {n: s.price_per_tb_month for n, s in c.storage.items()} == {"ssd": 100, "hdd": 50, "object": 30}
    assert (c.services["integration-small"].price, c.services["integration-large"].price) == (5000, 9000)
    assert (c.services["data-management"].price, c.services["data-management"].unit) == (1000, "day")
    assert c.currency == "EUR"


def test_profile_summary_names_the_sizes():
    assert load_catalogue().profile("medium").summary() == "Medium: 4 CPU, 32 GB"


def test_unknown_profile_lookup_lists_known_names():
    with pytest.raises(KeyError, match="known profiles: interactive, small"):
        load_catalogue().profile("huge")


@pytest.mark.parametrize(
    "text, expected",
    [("512M", 512 * 1024**2), ("8G", 8 * GiB), ("1.5G", int(1.5 * GiB)), ("2T", 2 * 1024**4)],
)
def test_memory_sizes_use_jupyterhub_suffixes(text, expected):
    assert parse_memory(text) == expected


def _shipped() -> dict:
    return yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())


def _write(tmp_path: Path, document) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def _mutate(change):
    def apply(doc):
        change(doc)
        return doc

    return apply


SCHEMA_MISTAKES = [
    (
        "missing-memory",
        _mutate(lambda d: d["profiles"]["small"].pop("memory")),
        "profiles.small",
        "'memory' is a required",
    ),
    (
        "bad-memory",
        _mutate(lambda d: d["profiles"]["small"].update(memory="8GB")),
        "profiles.small.memory",
        "does not match",
    ),
    (
        "negative-cpu",
        _mutate(lambda d: d["profiles"]["small"].update(cpu=-2)),
        "profiles.small.cpu",
        "less than or equal",
    ),
    (
        "cpu-as-text",
        _mutate(lambda d: d["profiles"]["small"].update(cpu="two")),
        "profiles.small.cpu",
        "not of type 'number'",
    ),
    (
        "unknown-key",
        _mutate(lambda d: d["profiles"]["small"].update(colour="blue")),
        "profiles.small",
        "'colour' was unexpected",
    ),
    (
        "bad-name",
        _mutate(lambda d: d["profiles"].update({"Big Box": d["profiles"]["small"]})),
        "profiles",
        "'Big Box' is not a valid name",
    ),
    (
        "negative-price",
        _mutate(lambda d: d["plans"]["standard"].update(price=-1)),
        "plans.standard.price",
        "less than the minimum",
    ),
    (
        "bad-gpu-policy",
        _mutate(lambda d: d["profiles"]["ml"].update(gpu_policy="maybe")),
        "profiles.ml.gpu_policy",
        "is not one of",
    ),
    ("no-plans", _mutate(lambda d: d.pop("plans")), "(top level)", "'plans' is a required"),
    ("bad-currency", _mutate(lambda d: d.update(currency="euro")), "currency", "does not match"),
    (
        "bad-unit",
        _mutate(lambda d: d["services"]["data-management"].update(unit="hour")),
        "services.data-management.unit",
        "is not one of",
    ),
    (
        "bad-image",
        _mutate(lambda d: d["profiles"]["small"].update(image="Polar TEP")),
        "profiles.small.image",
        "does not match",
    ),
]


@pytest.mark.parametrize(
    "change, where, what", [m[1:] for m in SCHEMA_MISTAKES], ids=[m[0] for m in SCHEMA_MISTAKES]
)
def test_schema_mistakes_name_the_file_the_key_and_the_problem(tmp_path, change, where, what):
    path = _write(tmp_path, change(_shipped()))
    with pytest.raises(CatalogueError) as raised:
        load_catalogue(path)
    message = str(raised.value)
    assert str(path) in message
    assert f"at {where}" in message
    assert what in message


def test_a_plan_naming_an_unknown_profile_is_refused(tmp_path):
    doc = _shipped()
    doc["plans"]["trial"]["profiles"].append("gigantic")
    with pytest.raises(CatalogueError, match=r"at plans\.trial\.profiles\.3: unknown profile 'gigantic'"):
        load_catalogue(_write(tmp_path, doc))


def test_a_subscription_naming_an_unknown_profile_is_refused(tmp_path):
    doc = _shipped()
    doc["subscriptions"]["dev-small"]["profile"] = "tiny"
    with pytest.raises(CatalogueError, match=r"at subscriptions\.dev-small\.profile: unknown profile 'tiny'"):
        load_catalogue(_write(tmp_path, doc))


def test_every_problem_is_reported_at_once(tmp_path):
    doc = _shipped()
    doc["profiles"]["small"]["cpu"] = 0
    doc["profiles"]["large"]["memory"] = "lots"
    with pytest.raises(CatalogueError) as raised:
        load_catalogue(_write(tmp_path, doc))
    assert "profiles.small.cpu" in str(raised.value) and "profiles.large.memory" in str(raised.value)


def test_yaml_syntax_errors_give_the_line(tmp_path):
    path = _write(tmp_path, "currency: EUR\nprofiles: [unclosed\n")
    with pytest.raises(CatalogueError, match=rf"{path}: not valid YAML at line \d+, column \d+"):
        load_catalogue(path)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(CatalogueError, match="at \\(top level\\): expected a mapping"):
        load_catalogue(_write(tmp_path, "- just\n- a list\n"))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CatalogueError, match="missing.yaml: cannot read the catalogue"):
        load_catalogue(tmp_path / "missing.yaml")


def test_invalid_utf8_is_refused(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_bytes(b"currency: \xff\xfe\n")
    with pytest.raises(CatalogueError, match="not valid UTF-8"):
        load_catalogue(path)
