"""Helm values for dask-gateway on Kubernetes come from the catalogue: images, sizes and every plan's bounds.

The generated ``extraConfig`` is executed here with dask-gateway-server's own option classes, so the bounds a
Kubernetes gateway would enforce are checked, not just printed. (Not run against a Kubernetes cluster.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dask_gateway_server.options import Options
from traitlets.config import Config

from polartep_hub.catalogue import DEFAULT_CATALOGUE_PATH, load_catalogue
from polartep_hub.cli.main import main
from polartep_hub.gateway.helm_values import helm_values

GIB = 2**30


def catalogue_with(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())
    change(data)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_extra_config(values: dict) -> tuple[Config, dict]:
    """Execute the values' extraConfig blocks in key order, as the chart does; returns ``c`` and the namespace."""
    c = Config()
    namespace: dict = {"c": c}
    for _, code in sorted(values["gateway"]["extraConfig"].items()):
        exec(compile(code, "extraConfig", "exec"), namespace)
    return c, namespace


def test_values_use_jupyterhub_auth_the_service_prefix_and_the_catalogue_image():
    values = helm_values(
        load_catalogue(), image_registry="registry.example.org:5000", api_token_secret="gw-token"
    )
    gateway = values["gateway"]
    assert gateway["prefix"] == "/services/dask-gateway"
    assert gateway["auth"]["type"] == "jupyterhub"
    assert gateway["auth"]["jupyterhub"]["apiTokenFromSecretName"] == "gw-token"
    assert gateway["backend"]["image"] == {
        "name": "registry.example.org:5000/polartep/base",
        "tag": "latest",
        "pullPolicy": "IfNotPresent",
    }
    c, _ = run_extra_config(values)
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == "dask-gateway"
    assert c.KubeClusterConfig.scheduler_cmd == ["/opt/venv/bin/dask", "scheduler"]
    assert callable(c.Backend.cluster_options)


def test_every_plan_bound_comes_from_the_catalogue_and_follows_a_change(tmp_path):
    def change(data):
        data["plans"]["trial"]["dask"] = {"max_workers": 3, "max_cores": 6, "max_worker_memory": "5G"}
        data["profiles"]["small"]["image"] = "polartep/ml"
        del data["plans"]["standard"]["dask"]

    catalogue = load_catalogue(catalogue_with(tmp_path, change))
    _, ns = run_extra_config(helm_values(catalogue))
    assert ns["POLARTEP_PLANS"]["trial"] == {
        "max_workers": 3,
        "max_cores": 6,
        "max_worker_memory": 5 * GIB,
        "profiles": ["interactive", "small", "medium"],
    }
    assert "standard" not in ns["POLARTEP_PLANS"]
    assert ns["POLARTEP_PROFILES"]["small"]["image"] == "polartep/ml:latest"

    options: Options = ns["polartep_options_for_plan"]("trial")
    config = options.get_configuration(
        options.parse_options({"worker_cores": 2, "worker_profile": "small"}), None
    )
    assert config["image"] == "polartep/ml:latest"
    assert config["cluster_max_workers"] == 3 and config["cluster_max_cores"] == 6
    assert config["worker_memory"] == config["worker_memory_limit"] == 2 * GIB
    with pytest.raises(ValueError, match="max_cores=6"):
        options.get_configuration(options.parse_options({"worker_cores": 7}), None)
    with pytest.raises(ValueError, match="max_worker_memory=5 GiB"):
        options.get_configuration(options.parse_options({"worker_memory": 6}), None)
    with pytest.raises(ValueError):  # a profile outside the plan
        options.parse_options({"worker_profile": "large"})
    with pytest.raises(ValueError, match="does not include Dask clusters"):
        ns["polartep_options_for_plan"]("standard")


def test_the_cli_prints_the_same_values(tmp_path, capsys):
    path = catalogue_with(tmp_path, lambda data: data["plans"]["large"]["dask"].update(max_workers=5))
    assert main(["gateway-helm-values", "--catalogue", str(path), "--idle-timeout", "600"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == helm_values(load_catalogue(path), idle_timeout=600)
    _, ns = run_extra_config(printed)
    assert ns["POLARTEP_PLANS"]["large"]["max_workers"] == 5
    assert ns["POLARTEP_IDLE_TIMEOUT"] == 600
