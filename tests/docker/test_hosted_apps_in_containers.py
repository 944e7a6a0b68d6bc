"""Hosted apps in Docker mode: a Panel app and an ASGI web app on ``dash-<id>`` servers that are hardened containers
of the owner's profile image, running the image's copy of the dashboard program, which serves the app on a Unix
socket inside the container behind the standalone proxy; sharing and refusals as in local mode, a broken app's
failure shown to the viewer.
"""

from __future__ import annotations

import pytest
import yaml

from tests.docker.engine import container_name, inspect, remove_run_objects, unique_user_name
from tests.harness import wait_for
from tests.helpers.dashboards import (
    APP_MARKER,
    ASGI_APP,
    PANEL_APP,
    app_files,
    app_owner,
    open_page,
    publish_app,
    share,
)
from tests.helpers.docker_platform import start_docker_platform

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def docker_platform(base_image, test_catalogue, tmp_path_factory):
    data = yaml.safe_load(test_catalogue.read_text())
    for profile in data["profiles"].values():
        if profile["image"] == "polartep/base":
            profile["image"] = base_image
    catalogue = tmp_path_factory.mktemp("apps-catalogue") / "catalogue.yaml"
    catalogue.write_text(yaml.safe_dump(data, sort_keys=False))
    running = start_docker_platform(tmp_path_factory.mktemp("apps-platform"), catalogue)
    yield running
    running.stop()
    remove_run_objects()


@pytest.fixture
def docker_user(docker_platform):
    def make(label: str) -> tuple[str, str]:
        name = unique_user_name(label)
        return name, app_owner(docker_platform, name)

    return make


def test_a_panel_app_in_a_container_for_its_owner_a_shared_user_and_not_a_stranger(
    docker_platform, docker_user
):
    owner, token = docker_user("appown")
    viewer, viewer_token = docker_user("appview")
    _stranger, stranger_token = docker_user("appstra")
    r = publish_app(docker_platform, token, "panel", "app.py", app_files({"app.py": PANEL_APP}))
    assert r.status_code == 201, r.text
    app = r.json()
    server = app["server"]
    docker_platform.wait_ready(owner, server, timeout=240)
    r = open_page(docker_platform, owner, server, token, follow_redirects=True)
    assert r.status_code == 200, (r.status_code, r.text[:500], docker_platform.log_tail())
    assert f"{APP_MARKER}-42" in r.text

    container = inspect("container", container_name(owner, server.replace("-", "-2d")))
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert container["Config"]["Cmd"][:2] == ["python", "/opt/polartep/dashboard_serve.py"]
    assert env["POLARTEP_DASHBOARD_KIND"] == "panel"
    assert container["HostConfig"]["ReadonlyRootfs"] is True
    # No port of the container is published on the host.
    assert not container["HostConfig"]["PortBindings"]

    r = open_page(docker_platform, owner, server, stranger_token, follow_redirects=True)
    assert r.status_code == 403
    assert APP_MARKER not in r.text
    assert share(docker_platform, token, app["id"], user=viewer).status_code == 201
    r = open_page(docker_platform, owner, server, viewer_token, follow_redirects=True)
    assert r.status_code == 200
    assert f"{APP_MARKER}-42" in r.text
    for path in ("lab", "api/contents", "terminals/1", "api/kernels"):
        r = open_page(docker_platform, owner, server, viewer_token, path)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
        assert "jupyter" not in r.text.lower()


def test_a_web_app_in_a_container_answers_its_own_route_through_a_share(docker_platform, docker_user):
    owner, token = docker_user("webown")
    viewer, viewer_token = docker_user("webview")
    _stranger, stranger_token = docker_user("webstra")
    r = publish_app(docker_platform, token, "web", "app:app", app_files({"app.py": ASGI_APP}))
    assert r.status_code == 201, r.text
    app = r.json()
    server = app["server"]
    docker_platform.wait_ready(owner, server, timeout=240)
    assert share(docker_platform, token, app["id"], user=viewer).status_code == 201
    r = open_page(docker_platform, owner, server, viewer_token, "hello")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.json() == {
        "marker": f"{APP_MARKER}-web",
        "path": "/hello",
        "prefix": f"/user/{owner}/{server}/",
        "user_token": False,
    }
    r = open_page(docker_platform, owner, server, stranger_token, "hello")
    assert r.status_code == 403
    assert APP_MARKER not in r.text


def test_a_broken_app_in_a_container_tells_the_viewer_why(docker_platform, docker_user):
    owner, token = docker_user("appbrk")
    viewer, viewer_token = docker_user("appbrkv")
    source = "secret = '/home/private/x'\nraise RuntimeError(secret)\n"
    r = publish_app(docker_platform, token, "panel", "app.py", app_files({"app.py": source}))
    assert r.status_code == 201, r.text
    app = r.json()
    server = app["server"]
    assert share(docker_platform, token, app["id"], user=viewer).status_code == 201
    wait_for(lambda: docker_platform.server_model(owner, server) is None, timeout=240)
    r = docker_platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    if r.status_code == 202:
        r = docker_platform.api(
            "GET", f"/hub/api/users/{owner}/servers/{server}/progress", viewer_token, timeout=240
        )
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    assert (
        "The dashboard could not start: polartep dashboard: the app raised RuntimeError at import" in r.text
    )
    assert "/home/private/x" not in r.text
