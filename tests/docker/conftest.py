"""Docker end-to-end fixtures: a real engine, the real images, and a platform in ``mode=docker``.

These tests never skip in CI (``CI=true``): there a missing engine is a failure. Elsewhere, on a machine where Docker
truly cannot start, they skip with the reason in the summary.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

from polartep_hub.catalogue import DEFAULT_CATALOGUE_PATH
from polartep_hub.settings import REPO_ROOT
from tests.docker.engine import (
    RUN_ID,
    docker,
    engine_problem,
    remove_run_objects,
    swarm_mode,
    unique_user_name,
)
from tests.helpers.docker_platform import start_docker_platform

# A test-only profile small enough to exceed on purpose (added to a copy of the real catalogue).
TINY_PROFILE = {
    "display_name": "Tiny (tests)",
    "description": "512 MB, for the memory-limit test.",
    "cpu": 0.5,
    "memory": "512M",
    "image": "polartep/base",
}

# A test-only profile too small for a server to start at all: the kernel kills it for memory during its start.
STARVED_PROFILE = {
    "display_name": "Starved (tests)",
    "description": "40 MB: JupyterLab cannot even finish its imports.",
    "cpu": 0.5,
    "memory": "40M",
    "image": "polartep/base",
}


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"Docker tests must run in CI, but the engine is not usable: {problem}")
    message = f"DOCKER TESTS SKIPPED: the Docker engine cannot be used on this machine: {problem}"
    warnings.warn(message, stacklevel=1)
    pytest.skip(message)


@pytest.fixture(scope="session")
def test_catalogue(tmp_path_factory) -> Path:
    """The real catalogue plus the ``tiny`` and ``starved`` profiles, which the ``large`` plan allows."""
    data = yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())
    data["profiles"]["tiny"] = TINY_PROFILE
    data["profiles"]["starved"] = STARVED_PROFILE
    data["plans"]["large"]["profiles"] += ["tiny", "starved"]
    path = tmp_path_factory.mktemp("catalogue") / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def docker_platform(docker_engine, test_catalogue, tmp_path_factory):
    """One platform in Docker mode for the session (no idle culling: tests hold servers as long as they need)."""
    running = start_docker_platform(tmp_path_factory.mktemp("docker-platform"), test_catalogue)
    yield running
    running.stop()
    remove_run_objects()


@pytest.fixture
def docker_user(docker_platform):
    """A factory for fresh users on the Docker platform: ``docker_user(label, plan=...) -> (name, token)``."""

    def make(label: str, plan: str = "large") -> tuple[str, str]:
        name = unique_user_name(label)
        return name, docker_platform.create_user(name, plan=plan)

    return make


@pytest.fixture(scope="module")
def swarm_platform(docker_engine, test_catalogue, tmp_path_factory):
    with swarm_mode():
        platform = start_docker_platform(tmp_path_factory.mktemp("swarm"), test_catalogue, mode="swarm")
        yield platform
        platform.stop()
        remove_run_objects()


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> str:
    """This checkout's ``polartep/base`` build under a tag of this run's own.

    The engine is shared: another checkout's ``images/build.sh`` retags ``polartep/base`` (and drops other content
    hashes), so the module pins the image its own sources built (with the dashboard program) for its platform.
    """
    for step in (["images/ensure-docker.sh"], ["images/build.sh", "base"]):
        done = subprocess.run(step, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"
    built = re.findall(r"polartep/base:([0-9a-f]{12})", done.stderr)
    assert built, done.stderr[-2000:]
    tag = f"polartep-test/base:{RUN_ID}"
    docker("tag", f"polartep/base:{built[-1]}", tag)
    yield tag
    docker("rmi", tag, check=False)


def catalogue_with_base_image(catalogue: Path, image: str, folder: Path) -> Path:
    """A copy of ``catalogue`` in ``folder`` whose ``polartep/base`` profiles name ``image`` instead."""
    data = yaml.safe_load(catalogue.read_text())
    for profile in data["profiles"].values():
        if profile["image"] == "polartep/base":
            profile["image"] = image
    path = folder / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
