"""The ``polartep`` command: catalogue tables, configuration checks, and a hub that refuses a bad catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from polartep_hub.settings import REPO_ROOT

POLARTEP = str(Path(sys.executable).parent / "polartep")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def bad_catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    text = (
        (REPO_ROOT / "spawner_profiles" / "catalogue.yaml").read_text().replace("memory: 8G", "memory: eight")
    )
    path.write_text(text)
    return path


def test_catalogue_prints_profiles_plans_and_prices():
    result = run(POLARTEP, "catalogue")
    assert result.returncode == 0, result.stderr
    assert "Medium" in result.stdout and "32G" in result.stdout
    assert "1,500 EUR" in result.stdout  # the ML environment
    assert "Trial" in result.stdout and "3 months" in result.stdout


def test_catalogue_json_is_the_loaders_view():
    result = run(POLARTEP, "catalogue", "--json")
    data = json.loads(result.stdout)
    assert data["profiles"]["large"]["cpu"] == 8 and data["plans"]["large"]["cpu_hours_per_month"] == 1000


def test_check_passes_on_the_shipped_configuration(tmp_path):
    result = run(POLARTEP, "check", env={"POLARTEP_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "Catalogue and settings are valid." in result.stdout
    assert not (tmp_path / "admin-password").exists()  # checking generates no secret


def test_check_names_the_file_and_key_of_a_catalogue_mistake(tmp_path):
    path = bad_catalogue(tmp_path)
    result = run(
        POLARTEP, "check", env={"POLARTEP_CATALOGUE": str(path), "POLARTEP_STATE_DIR": str(tmp_path)}
    )
    assert result.returncode == 1
    assert f"{path}: at profiles.small.memory: 'eight' does not match" in result.stderr


def test_check_refuses_an_unknown_default_plan(tmp_path):
    result = run(
        POLARTEP, "check", env={"POLARTEP_DEFAULT_PLAN": "gold", "POLARTEP_STATE_DIR": str(tmp_path)}
    )
    assert result.returncode == 1
    assert "POLARTEP_DEFAULT_PLAN='gold' is not a plan" in result.stderr


def test_check_refuses_a_malformed_public_url(tmp_path):
    result = run(
        POLARTEP, "check", env={"POLARTEP_PUBLIC_URL": "localhost", "POLARTEP_STATE_DIR": str(tmp_path)}
    )
    assert result.returncode != 0
    assert "public_url must look like http://HOST:PORT" in result.stderr


def test_the_hub_does_not_start_with_a_bad_catalogue(tmp_path):
    path = bad_catalogue(tmp_path)
    result = run(
        sys.executable, "-m", "jupyterhub", "-f", str(REPO_ROOT / "jupyterhub_config.py"),
        env={"POLARTEP_CATALOGUE": str(path), "POLARTEP_STATE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode != 0
    assert f"{path}: at profiles.small.memory" in result.stdout + result.stderr


def test_the_configuration_reference_in_docs_is_up_to_date():
    result = run(POLARTEP, "config-reference")
    assert result.returncode == 0
    assert (REPO_ROOT / "docs" / "configuration.md").read_text() == result.stdout, (
        "regenerate with: .venv/bin/polartep config-reference > docs/configuration.md"
    )
