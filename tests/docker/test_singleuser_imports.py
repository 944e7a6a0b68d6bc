"""The image's single-user server never loads the hub's database layer, and hub authentication still works.

Specification (``images/base/patches/README.md``): ``polartep/base`` carries a downstream patch to jupyterhub so that
``jupyterhub-singleuser`` does not import ``jupyterhub.orm``, SQLAlchemy or Alembic, neither at start nor while it
serves hub-authenticated requests; a bare ``jupyter lab`` pays none of them either, and on a quiet machine they were
about 0.3 s of every Docker spawn. Tested on the real program in the real image: alone with ``-X importtime`` up to
its first call to the hub (every module it imports is named; by then every server extension is loaded), and spawned
by the hub, after hub-authenticated requests (the shared libraries mapped into the running server: SQLAlchemy's
compiled modules are mapped as soon as it is imported, and ``jupyterhub.orm`` and Alembic import it).
"""

from __future__ import annotations

import re

import pytest

from tests.docker.conftest import catalogue_with_base_image
from tests.docker.engine import container_name, docker, remove_run_objects, unique_user_name
from tests.harness import wait_for
from tests.helpers.docker_platform import start_docker_platform

pytestmark = pytest.mark.hub
DATABASE_LAYER = re.compile(r"^(sqlalchemy|alembic)(\.|$)|^jupyterhub\.orm$")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)$")


@pytest.fixture(scope="module")
def platform(base_image, test_catalogue, tmp_path_factory):
    """A Docker-mode platform whose servers run this checkout's own ``polartep/base`` build (``base_image``): the
    shared ``polartep/base`` tag may be another checkout's build, with or without the patch."""
    catalogue = catalogue_with_base_image(
        test_catalogue, base_image, tmp_path_factory.mktemp("imports-catalogue")
    )
    running = start_docker_platform(tmp_path_factory.mktemp("imports-platform"), catalogue)
    yield running
    running.stop()
    remove_run_objects()


def imported_modules(output: str) -> set[str]:
    """The modules named by ``python -X importtime`` lines in output."""
    return {match.group(2) for line in output.splitlines() if (match := IMPORT_LINE.match(line))}


def test_the_single_user_program_starts_without_the_hubs_database_layer(base_image):
    name = container_name(unique_user_name("imports"))
    docker(
        "run", "-d", "--name", name, "--network", "none",
        "-e", "PYTHONPROFILEIMPORTTIME=1",
        "-e", "JUPYTERHUB_API_TOKEN=not-a-real-token",
        "-e", "JUPYTERHUB_CLIENT_ID=jupyterhub-user-imports",
        "-e", "JUPYTERHUB_API_URL=http://127.0.0.1:9/hub/api",
        "-e", "JUPYTERHUB_BASE_URL=/",
        "-e", "JUPYTERHUB_SERVICE_PREFIX=/user/imports/",
        "-e", "JUPYTERHUB_SERVICE_URL=http://127.0.0.1:8888/user/imports/",
        "-e", "JUPYTERHUB_USER=imports",
        base_image, "jupyterhub-singleuser",
    )  # fmt: skip
    try:
        # Its start up to the hub: every server extension linked and loaded, then the first call to the hub's API
        # (unreachable here: the container has no network), which a real start waits for before it listens.
        wait_for(
            lambda: (
                "Failed to connect to my Hub at http://127.0.0.1:9/hub/api (attempt 1/5)"
                in docker("logs", name).stderr
            ),
            120,
            what="the single-user server to reach its hub check",
        )
        logs = docker("logs", name).stderr
    finally:
        docker("rm", "-f", name, check=False)
    modules = imported_modules(logs)
    # The output names the server's own imports (so an empty or unparsed log cannot pass) ...
    assert {
        "jupyterhub.singleuser.extension",
        "jupyterhub.services.auth",
        "jupyter_server.serverapp",
    } <= modules
    # ... and none of the hub's database layer.
    assert sorted(m for m in modules if DATABASE_LAYER.match(m)) == []


def test_a_hub_spawned_server_authenticates_requests_without_loading_the_database_layer(platform):
    user = unique_user_name("noorm")
    token = platform.create_user(user, plan="large")
    platform.spawn(user, token, {"profile": "interactive"})
    try:
        # Hub authentication end to end: the server asks the hub who the token belongs to and checks its scopes.
        contents = platform.api("GET", f"/user/{user}/api/contents", token)
        refused = platform.api("GET", f"/user/{user}/api/contents", "not-a-token")
        # Every shared library mapped into the running server (the process whose command is jupyterhub-singleuser).
        mapped = docker(
            "exec", container_name(user), "python", "-c",
            "import pathlib\n"
            "for proc in pathlib.Path('/proc').glob('[0-9]*'):\n"
            "    if b'jupyterhub-singleuser' in (proc / 'cmdline').read_bytes():\n"
            "        print((proc / 'maps').read_text())\n",
        ).stdout  # fmt: skip
    finally:
        platform.stop_server(user)
    assert contents.status_code == 200, contents.text
    assert contents.json()["type"] == "directory"
    assert refused.status_code == 403, refused.text
    libraries = {line.split()[-1] for line in mapped.splitlines() if line.endswith(".so")}
    # The server's maps were read (tornado's compiled speedups are loaded by every Jupyter server) ...
    assert any(path.endswith("tornado/speedups.abi3.so") for path in libraries), sorted(libraries)[:20]
    # ... and SQLAlchemy, which jupyterhub.orm and Alembic need, was never imported.
    assert sorted(path for path in libraries if "/sqlalchemy/" in path) == []
