"""Dashboards in Swarm mode: a ``dash-<id>`` server is a swarm service of the owner's profile image, with the isolation
of every Swarm-mode server, that runs Voila behind the standalone proxy and nothing else.

Specification: the owner opens the dashboard; a user it is shared with opens it; a stranger gets 403 and none of
its content; a viewer reaches no Jupyter server route; a viewer starts it again after a stop; a dashboard that cannot
start tells whoever started it why (read from the service's log) and its service is removed.

Hosted apps in Swarm mode (the same platform): a Panel app and an ASGI web app are services of the owner's profile
image running the image's copy of the dashboard program with their kind, served on a Unix socket inside the task
(no port published on the host); shared users open them, strangers get 403; a viewer starts a stopped app again; an
app that raises at import tells the viewer the exception's type, not its message.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from polartep_hub.catalogue import load_catalogue
from tests.docker.conftest import catalogue_with_base_image
from tests.docker.engine import docker, home_volume, remove_run_objects, swarm_mode, unique_user_name
from tests.harness import wait_for
from tests.helpers.dashboards import (
    APP_MARKER,
    ASGI_APP,
    MARKER,
    PANEL_APP,
    app_files,
    app_owner,
    notebook,
    open_page,
    publish,
    publish_app,
    share,
)
from tests.helpers.docker_platform import start_docker_platform

pytestmark = [pytest.mark.docker, pytest.mark.hub, pytest.mark.timeout(900)]

CATALOGUE = load_catalogue()


def service_name(owner: str, server: str) -> str:
    """SwarmSpawner's service name of a dashboard server (DockerSpawner escapes the server name's "-" as "-2d")."""
    return f"polartep-{owner}--{server.replace('-', '-2d')}"


def service(owner: str, server: str) -> dict | None:
    done = docker("service", "inspect", service_name(owner, server), check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


@pytest.fixture(scope="module")
def swarm_dashboards(docker_engine, base_image, test_catalogue, tmp_path_factory):
    """A Swarm-mode platform of this module whose catalogue names this checkout's base image."""
    catalogue = catalogue_with_base_image(
        test_catalogue, base_image, tmp_path_factory.mktemp("swd-catalogue")
    )
    with swarm_mode():
        platform = start_docker_platform(tmp_path_factory.mktemp("swd-platform"), catalogue, mode="swarm")
        yield platform
        platform.stop()
        remove_run_objects()


@pytest.fixture(scope="module")
def published(swarm_dashboards):
    owner = unique_user_name("swdown")
    token = swarm_dashboards.create_user(owner, plan="large")
    dashboard = publish(swarm_dashboards, token)
    swarm_dashboards.wait_ready(owner, dashboard["server"], timeout=240)
    return owner, token, dashboard


def test_owner_shared_user_and_stranger_in_swarm_mode(swarm_dashboards, published, base_image):
    platform = swarm_dashboards
    owner, owner_token, dashboard = published
    server = dashboard["server"]
    r = open_page(platform, owner, server, owner_token)
    assert r.status_code == 200, (r.status_code, r.text[:500], platform.log_tail())
    assert f"{MARKER}-42" in r.text

    spec = service(owner, server)["Spec"]["TaskTemplate"]
    container = spec["ContainerSpec"]
    env = dict(item.split("=", 1) for item in container["Env"])
    profile = CATALOGUE.profile(env["POLARTEP_PROFILE"])
    assert container["Image"].split("@")[0] == base_image  # the profile's image, as this module pinned it
    assert container["Args"][:2] == ["python", "/opt/polartep/dashboard_serve.py"]
    assert env["POLARTEP_DASHBOARD_ID"] == dashboard["id"]
    assert container["User"] == "1000:1000" and container["CapabilityDrop"] == ["ALL"]
    assert spec["Resources"]["Limits"] == {"NanoCPUs": int(profile.cpu * 1e9), "MemoryBytes": profile.memory}
    assert [(m["Type"], m["Source"]) for m in container["Mounts"]] == [("volume", home_volume(owner))]
    network = json.loads(docker("network", "inspect", spec["Networks"][0]["Target"]).stdout)[0]
    assert network["Name"] == f"{platform.settings.docker_network_prefix}-u-{owner}"

    viewer, stranger = unique_user_name("swdview"), unique_user_name("swdstra")
    viewer_token = platform.create_user(viewer, plan="large")
    stranger_token = platform.create_user(stranger, plan="large")
    r = open_page(platform, owner, server, stranger_token)
    assert r.status_code == 403
    assert MARKER not in r.text
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    r = open_page(platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text
    r = open_page(platform, owner, server, stranger_token)
    assert r.status_code == 403
    assert MARKER not in r.text
    for path in ("lab", "api/contents", "api/kernels", "terminals/1"):
        r = open_page(platform, owner, server, viewer_token, path, follow_redirects=True)
        assert r.status_code == 403, path
        assert r.url.path == f"/user/{owner}/{server}/voila/files/{path}"

    # Stopped (as the idle culler does), the viewer starts it again.
    platform.stop_server(owner, server)
    assert service(owner, server) is None
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    platform.wait_ready(owner, server, timeout=240)
    r = open_page(platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text


def test_a_swarm_dashboard_that_fails_to_start_tells_why(swarm_dashboards):
    platform = swarm_dashboards
    owner = unique_user_name("swdfail")
    token = platform.create_user(owner, plan="large")
    dashboard = publish(platform, token, nb=notebook("print(1)"))
    server = dashboard["server"]
    platform.wait_ready(owner, server, timeout=240)
    platform.stop_server(owner, server)
    # The stored version goes missing (as after a botched restore): the server cannot fetch what it must serve.
    engine = create_engine(platform.settings.service_db_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE dashboards SET current_sha256 = :bad WHERE id = :id"),
            {"bad": "0" * 64, "id": dashboard["id"]},
        )
    engine.dispose()
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", token, json={})
    if r.status_code == 202:
        r = platform.api("GET", f"/hub/api/users/{owner}/servers/{server}/progress", token, timeout=240)
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    assert "The dashboard could not start: polartep dashboard: cannot fetch dashboard" in r.text, (
        r.text[-800:],
        platform.log_tail(),
    )
    wait_for(lambda: service(owner, server) is None, 60, what="the failed dashboard service to be removed")


def test_hosted_apps_in_swarm_mode(swarm_dashboards, base_image):
    platform = swarm_dashboards
    owner, viewer, stranger = (unique_user_name(label) for label in ("swaown", "swaview", "swastra"))
    token, viewer_token, stranger_token = (app_owner(platform, name) for name in (owner, viewer, stranger))
    r = publish_app(platform, token, "panel", "app.py", app_files({"app.py": PANEL_APP}))
    assert r.status_code == 201, r.text
    panel = r.json()
    r = publish_app(platform, token, "web", "app:app", app_files({"app.py": ASGI_APP}))
    assert r.status_code == 201, r.text
    web = r.json()
    for app in (panel, web):
        assert share(platform, token, app["id"], user=viewer).status_code == 201
        platform.wait_ready(owner, app["server"], timeout=240)

    spec = service(owner, panel["server"])["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    env = dict(item.split("=", 1) for item in container["Env"])
    assert container["Image"].split("@")[0] == base_image
    assert container["Args"][:2] == ["python", "/opt/polartep/dashboard_serve.py"]
    assert (env["POLARTEP_DASHBOARD_ID"], env["POLARTEP_DASHBOARD_KIND"]) == (panel["id"], "panel")
    assert container["User"] == "1000:1000" and container["CapabilityDrop"] == ["ALL"]
    # No port of the app's task is published on the host (the app listens on a Unix socket inside it).
    assert not spec.get("EndpointSpec", {}).get("Ports")

    r = open_page(platform, owner, panel["server"], viewer_token, follow_redirects=True)
    assert r.status_code == 200, (r.status_code, r.text[:500], platform.log_tail())
    assert f"{APP_MARKER}-42" in r.text
    r = open_page(platform, owner, panel["server"], stranger_token, follow_redirects=True)
    assert r.status_code == 403
    assert APP_MARKER not in r.text

    r = open_page(platform, owner, web["server"], viewer_token, "hello")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.json() == {
        "marker": f"{APP_MARKER}-web",
        "path": "/hello",
        "prefix": f"/user/{owner}/{web['server']}/",
        "user_token": False,
    }
    r = open_page(platform, owner, web["server"], stranger_token, "hello")
    assert r.status_code == 403
    assert APP_MARKER not in r.text

    # Stopped (as the idle culler does), the viewer starts the web app again.
    platform.stop_server(owner, web["server"])
    assert service(owner, web["server"]) is None
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{web['server']}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    platform.wait_ready(owner, web["server"], timeout=240)
    r = open_page(platform, owner, web["server"], viewer_token, "hello")
    assert r.status_code == 200
    assert r.json()["marker"] == f"{APP_MARKER}-web"


def test_a_broken_app_in_swarm_mode_tells_the_viewer_why(swarm_dashboards):
    platform = swarm_dashboards
    owner, viewer = unique_user_name("swabrk"), unique_user_name("swabrkv")
    token, viewer_token = app_owner(platform, owner), app_owner(platform, viewer)
    source = "secret = '/home/private/x'\nraise RuntimeError(secret)\n"
    r = publish_app(platform, token, "panel", "app.py", app_files({"app.py": source}))
    assert r.status_code == 201, r.text
    app = r.json()
    server = app["server"]
    assert share(platform, token, app["id"], user=viewer).status_code == 201
    wait_for(lambda: platform.server_model(owner, server) is None, timeout=240)
    r = platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    # The hub answers 201 when the service's task ran before its 10 s slow-spawn mark and 202 after; either way the
    # start then fails, and its progress stream ends with the reason. 500 when it failed before the answer.
    if r.status_code in (201, 202):
        r = platform.api(
            "GET", f"/hub/api/users/{owner}/servers/{server}/progress", viewer_token, timeout=240
        )
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    assert (
        "The dashboard could not start: polartep dashboard: the app raised RuntimeError at import" in r.text
    ), (
        r.text[-800:],
        platform.log_tail(),
    )
    assert "/home/private/x" not in r.text
    wait_for(lambda: service(owner, server) is None, 60, what="the failed app's service to be removed")
