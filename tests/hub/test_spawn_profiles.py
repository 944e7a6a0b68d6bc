"""Spawning sized profiles in local mode through the REST API, and refusing what the plan does not allow."""

from __future__ import annotations

from pathlib import Path

import pytest

from polartep_hub.catalogue import load_catalogue
from tests.helpers.servers import process_environment, server_state

CATALOGUE = load_catalogue()
NON_GPU_PROFILES = [name for name, p in CATALOGUE.profiles.items() if not p.gpu]


def address_space_limit(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft)
    return None


@pytest.mark.parametrize("profile", NON_GPU_PROFILES)
def test_each_profile_starts_with_its_limits(platform, new_user, profile):
    user, token = new_user(plan="large")
    expected = CATALOGUE.profile(profile)

    model = platform.spawn(user, token, {"profile": profile}, server=profile)
    assert model["ready"] and model["user_options"] == {"profile": profile}

    state = server_state(platform, user, profile)
    assert state["profile"] == profile
    env = process_environment(state["pid"])
    assert env["MEM_LIMIT"] == str(expected.memory)
    assert float(env["CPU_LIMIT"]) == expected.cpu
    assert env["POLARTEP_PROFILE"] == profile
    assert env["OMP_NUM_THREADS"] == str(int(expected.cpu))
    assert address_space_limit(state["pid"]) == expected.memory

    # The server answers through the proxy with the user's token.
    r = platform.api("GET", f"/user/{user}/{profile}/api/status", token)
    assert r.status_code == 200, r.text
    platform.stop_server(user, profile)


def test_without_options_the_first_allowed_profile_starts(platform, new_user):
    user, token = new_user()
    platform.spawn(user, token)
    assert server_state(platform, user)["profile"] == CATALOGUE.plan("trial").profiles[0]
    platform.stop_server(user)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"profile": "gigantic"}, "Unknown profile 'gigantic'"),
        ({"profile": "ml"}, "Your plan does not include the profile 'ml'"),
        ({"profile": "large"}, "Your plan does not include the profile 'large'"),
        ({"profile": 7}, "Unknown profile '7'"),
        ({"profile": "small", "image": "evil/image"}, "Unknown server option(s): image"),
    ],
    ids=["unknown", "forbidden-ml", "forbidden-large", "not-a-string", "extra-option"],
)
def test_unknown_or_forbidden_profiles_are_refused_before_anything_starts(
    platform, new_user, options, message
):
    user, token = new_user(plan="trial")
    r = platform.api("POST", f"/hub/api/users/{user}/server", token, json=options)
    assert r.status_code == 400
    assert message in r.json()["message"]
    assert platform.server_model(user) is None


def test_named_servers_let_a_user_run_two_profiles(platform, new_user):
    user, token = new_user(plan="large")
    platform.spawn(user, token, {"profile": "interactive"}, server="light")
    platform.spawn(user, token, {"profile": "small"}, server="work")
    r = platform.api("GET", f"/hub/api/users/{user}", platform.admin_token)
    servers = r.json()["servers"]
    assert {name: s["user_options"]["profile"] for name, s in servers.items()} == {
        "light": "interactive",
        "work": "small",
    }
    platform.stop_server(user, "light")
    platform.stop_server(user, "work")


def test_the_spawn_form_lists_exactly_the_plan_profiles_with_sizes(platform, new_user):
    from tests.helpers.browser_session import logged_in_session

    user, _ = new_user(plan="trial", password="a-long-password-1")
    with logged_in_session(platform, user, "a-long-password-1") as session:
        page = session.get(f"{platform.url}/hub/spawn")
        assert page.status_code == 200
        for name in CATALOGUE.plan("trial").profiles:
            assert f'value="{name}"' in page.text
            assert CATALOGUE.profile(name).summary() in page.text
        assert 'value="large"' not in page.text and 'value="ml"' not in page.text
        assert "Your plan: Trial (500 CPU-hours a month)" in page.text
