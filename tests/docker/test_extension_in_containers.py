"""The Polar TEP extension in Docker mode: the image carries it, and the panel shows the plan in Chromium.

Specification: ``polartep/base`` holds the built plugin (``share/jupyter/labextensions/polartep-lab``) and the
server-extension switch; in a user's container ``polartep/api/me`` answers the user's plan and the container's
profile with the user's token (so the server extension is loaded); and a person who logs in through the hub and
spawns from the spawn page sees the Polar TEP panel with the plan, profile and plan period.
"""

from __future__ import annotations

import json

import pytest

from tests.docker.engine import container_name, docker, unique_user_name
from tests.helpers.browser import login, save_screenshot
from tests.helpers.jupyterlab import open_polartep_panel, spawn_in_browser

pytestmark = pytest.mark.hub
LAB = "/opt/venv/share/jupyter/labextensions/polartep-lab"
SWITCH = "/opt/venv/etc/jupyter/jupyter_server_config.d/polartep_lab.json"
PASSWORD = "docker-panel-pw-1"


def test_the_image_has_the_extension_and_the_container_answers_the_plan(docker_platform, docker_user):
    # polartep/base:latest is shared by every checkout on this engine: say so if another build replaced it.
    built = docker("run", "--rm", "--entrypoint", "cat", "polartep/base", f"{LAB}/package.json", check=False)
    assert built.returncode == 0, (
        f"polartep/base lacks the extension (rebuild: images/build.sh): {built.stderr}"
    )
    assert json.loads(built.stdout)["name"] == "polartep-lab"
    user, token = docker_user("extapi", plan="large")
    docker_platform.spawn(user, token, {"profile": "interactive"})
    try:
        switch = docker("exec", container_name(user), "cat", SWITCH)
        r = docker_platform.api("GET", f"/user/{user}/polartep/api/me", token)
    finally:
        docker_platform.stop_server(user)
    assert json.loads(switch.stdout) == {"ServerApp": {"jpserver_extensions": {"polartep_lab": True}}}
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["name"], me["plan"], me["plan_display_name"], me["plan_ends_at"], me["profile"]) == (
        user,
        "large",
        "Large",
        None,
        "interactive",
    )


def test_jupyterlab_in_a_container_shows_the_panel(docker_platform, browser, request):
    user = unique_user_name("extui")
    docker_platform.create_user(user, plan="large", password=PASSWORD)
    driver = browser()
    login(driver, docker_platform, user, PASSWORD, next_path="/hub/spawn")
    try:
        spawn_in_browser(driver, docker_platform, user, "interactive")
        view = open_polartep_panel(driver)
        save_screenshot(driver, request, "jupyterlab-polartep-panel-docker")
    finally:
        docker_platform.stop_server(user)
    assert (view.state, view.user, view.plan, view.plan_name, view.profile, view.period) == (
        "loaded",
        user,
        "large",
        "Large",
        "interactive",
        "no end date",
    ), view
    assert view.status_bar == "Polar TEP: Large · interactive · no end date"
