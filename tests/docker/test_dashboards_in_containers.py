"""Dashboards in Docker mode: a ``dash-<id>`` server is a hardened container of the owner's profile image that runs
Voila behind the standalone proxy, and nothing else; sharing, refusals and a viewer's start work as in local mode.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from polartep_hub.catalogue import load_catalogue
from tests.docker.conftest import catalogue_with_base_image
from tests.docker.engine import (
    container_name,
    home_volume,
    inspect,
    remove_run_objects,
    unique_user_name,
)
from tests.harness import wait_for
from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.dashboards import MARKER, notebook, open_page, publish, share, visit_as_browser
from tests.helpers.docker_platform import start_docker_platform

pytestmark = pytest.mark.timeout(900)

CATALOGUE = load_catalogue()


def dashboard_container(owner: str, server: str) -> str:
    """DockerSpawner's container name of a dashboard server (it escapes the server name's "-" as "-2d")."""
    return container_name(owner, server.replace("-", "-2d"))


@pytest.fixture(scope="module")
def docker_platform(base_image, test_catalogue, tmp_path_factory):
    """A Docker-mode platform of this module whose catalogue names the pinned base image."""
    catalogue = catalogue_with_base_image(
        test_catalogue, base_image, tmp_path_factory.mktemp("dash-catalogue")
    )
    running = start_docker_platform(tmp_path_factory.mktemp("dash-platform"), catalogue)
    yield running
    running.stop()
    remove_run_objects()


@pytest.fixture
def docker_user(docker_platform):
    def make(label: str, plan: str = "large") -> tuple[str, str]:
        name = unique_user_name(label)
        return name, docker_platform.create_user(name, plan=plan)

    return make


@pytest.fixture(scope="module")
def published(docker_platform):
    owner = unique_user_name("dashown")
    owner_token = docker_platform.create_user(owner, plan="large")
    dashboard = publish(docker_platform, owner_token)
    docker_platform.wait_ready(owner, dashboard["server"], timeout=180)
    return owner, owner_token, dashboard


def test_a_dashboard_runs_in_a_hardened_container_of_the_owners_profile(
    docker_platform, published, base_image
):
    owner, token, dashboard = published
    r = open_page(docker_platform, owner, dashboard["server"], token)
    assert r.status_code == 200, (r.status_code, r.text[:500], docker_platform.log_tail())
    assert f"{MARKER}-42" in r.text

    container = inspect("container", dashboard_container(owner, dashboard["server"]))
    assert container is not None
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    profile = CATALOGUE.profile(env["POLARTEP_PROFILE"])
    host = container["HostConfig"]
    assert profile.image == "polartep/base"
    assert container["Config"]["Image"] == base_image  # the profile's image, as this module pinned it
    assert container["Config"]["Cmd"][:2] == ["python", "/opt/polartep/dashboard_serve.py"]
    assert env["POLARTEP_DASHBOARD_ID"] == dashboard["id"]
    assert env["POLARTEP_DASHBOARD_VERSION"] == dashboard["version"]
    assert host["Memory"] == profile.memory
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] == int(profile.cpu * 1e9)
    assert container["Config"]["User"] in ("1000:1000", "1000")
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == f"{docker_platform.settings.docker_network_prefix}-u-{owner}"
    assert [m["Name"] for m in container["Mounts"] if m["Type"] == "volume"] == [home_volume(owner)]


def test_shared_users_open_it_strangers_get_403_and_revocation_shuts_them_out(
    docker_platform, published, docker_user
):
    owner, owner_token, dashboard = published
    viewer, viewer_token = docker_user("dashview")
    _stranger, stranger_token = docker_user("dashstra")
    server = dashboard["server"]
    r = open_page(docker_platform, owner, server, stranger_token)
    assert r.status_code == 403
    assert MARKER not in r.text

    assert share(docker_platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    r = open_page(docker_platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text
    assert open_page(docker_platform, owner, server, stranger_token).status_code == 403

    r = docker_platform.api(
        "DELETE",
        f"/services/platform/api/v1/dashboards/{dashboard['id']}/shares/users/{viewer}",
        owner_token,
    )
    assert r.status_code == 204
    r = open_page(docker_platform, owner, server, viewer_token)
    assert r.status_code == 403
    assert MARKER not in r.text


@pytest.mark.parametrize(
    "path", ["lab", "tree", "api/contents", "api/kernels", "api/sessions", "terminals/1", "api/terminals"]
)
def test_a_viewer_reaches_no_jupyter_server_route(docker_platform, published, docker_user, path):
    owner, owner_token, dashboard = published
    viewer, viewer_token = docker_user("dv" + "".join(c for c in path if c.isalnum())[:8])
    assert share(docker_platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    r = open_page(docker_platform, owner, dashboard["server"], viewer_token, path, follow_redirects=True)
    # Voila's catch-all sends any other path to its file route, which serves nothing (an empty allow-list).
    assert r.status_code == 403
    assert r.url.path == f"/user/{owner}/{dashboard['server']}/voila/files/{path}"


def test_a_viewer_starts_a_stopped_shared_dashboard(docker_platform, published, docker_user):
    owner, owner_token, dashboard = published
    viewer, viewer_token = docker_user("dashstart")
    server = dashboard["server"]
    assert share(docker_platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    docker_platform.stop_server(owner, server)  # as the idle culler would
    assert inspect("container", dashboard_container(owner, server)) is None

    r = docker_platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", viewer_token, json={})
    assert r.status_code in (201, 202), r.text
    docker_platform.wait_ready(owner, server, timeout=180)
    r = open_page(docker_platform, owner, server, viewer_token)
    assert r.status_code == 200
    assert f"{MARKER}-42" in r.text
    # The container is the owner's, started for the viewer: the owner's image, user and volume.
    container = inspect("container", dashboard_container(owner, server))
    assert [m["Name"] for m in container["Mounts"] if m["Type"] == "volume"] == [home_volume(owner)]


def test_a_dashboard_that_fails_to_start_tells_why(docker_platform, docker_user):
    owner, owner_token = docker_user("dashfail")
    # The stored version goes missing (as after a botched restore): the server cannot fetch what it must serve.
    dashboard = publish(docker_platform, owner_token, nb=notebook("print(1)"))
    server = dashboard["server"]
    docker_platform.wait_ready(owner, server, timeout=180)
    docker_platform.stop_server(owner, server)
    engine = create_engine(docker_platform.settings.service_db_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE dashboards SET current_sha256 = :bad WHERE id = :id"),
            {"bad": "0" * 64, "id": dashboard["id"]},
        )
    engine.dispose()
    r = docker_platform.api("POST", f"/hub/api/users/{owner}/servers/{server}", owner_token, json={})
    if r.status_code == 202:
        r = docker_platform.api(
            "GET", f"/hub/api/users/{owner}/servers/{server}/progress", owner_token, timeout=180
        )
        assert r.status_code == 200
    else:
        assert r.status_code == 500, r.text
    assert "The dashboard could not start: polartep dashboard: cannot fetch dashboard" in r.text, (
        r.text[-800:],
        docker_platform.log_tail(),
    )
    assert f"Its owner finds the log in ~/.polartep-dashboards/{dashboard['id']}.log." in r.text
    # The failed container is removed once the hub has stopped the server (the engine no longer auto-removes it).
    wait_for(
        lambda: inspect("container", dashboard_container(owner, server)) is None,
        60,
        what="the failed dashboard container to be removed",
    )


def test_a_viewer_confirms_the_oauth_page_once_across_a_restart(docker_platform, published):
    owner, owner_token, dashboard = published
    server = dashboard["server"]
    viewer = unique_user_name("dashoauth")
    password = "a-long-enough-password-for-tests-7"
    docker_platform.create_user(viewer, plan="large", password=password)
    assert share(docker_platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    if docker_platform.server_model(owner, server) is None:  # stopped by an earlier test
        docker_platform.spawn(owner, owner_token, server=server, timeout=180)
    url = docker_platform.user_url(owner, server)
    with logged_in_session(docker_platform, viewer, password) as browser:
        page, asked = visit_as_browser(browser, url)
        assert asked, (page.status_code, str(page.url), page.text[:300])
        page = browser.post(str(page.url), data={"_xsrf": form_xsrf(page.text)})
        assert f"{MARKER}-42" in page.text
        docker_platform.stop_server(owner, server)
        docker_platform.spawn(owner, owner_token, server=server, timeout=180)
        page, asked = visit_as_browser(browser, url)
        assert not asked, "asked again after a restart"
        assert f"{MARKER}-42" in page.text
