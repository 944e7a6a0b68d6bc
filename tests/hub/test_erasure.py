"""Erasing an account on the real platform (local mode): the user's servers stop, the hub user is deleted with every
token, the home folder and its files are gone, and the platform holds no account of that name any more."""

from __future__ import annotations

from pathlib import Path

from ..harness import wait_for


def put_file(platform, user: str, token: str, path: str, content: str, server: str = "") -> None:
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    r = platform.api(
        "PUT", f"{prefix}api/contents/{path}", token, json={"type": "file", "format": "text", "content": content}
    )
    assert r.status_code in (200, 201), r.text


def erase_me(platform, user: str, token: str):
    return platform.api(
        "DELETE",
        "/services/platform/api/v1/me",
        token,
        json={"confirm": user, "processors": "withdraw"},
        timeout=180,
    )


def test_a_user_erases_their_account_with_running_servers(platform, new_user):
    user, token = new_user(plan="standard")
    platform.spawn(user, token, {"profile": "interactive"})
    platform.spawn(user, token, {"profile": "interactive"}, server="second")
    put_file(platform, user, token, "results.txt", "sea ice extent: 4.2 million km2")
    home = Path(platform.settings.state_path) / "users" / user
    assert (home / "results.txt").read_text().startswith("sea ice")
    assert platform.api("GET", "/services/platform/api/v1/me/export", token).json()["account_name"] == user

    response = erase_me(platform, user, token)

    assert response.status_code == 200, f"{response.text}\n{platform.log_tail()}"
    assert response.json()["requested_by"] == "self"
    # The hub user is gone, so are its servers (both), its home and every token of it.
    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    assert not home.exists()
    assert platform.api("GET", "/hub/api/user", token).status_code == 403
    assert platform.api("GET", "/services/platform/api/v1/me", token).status_code == 401
    assert platform.api("GET", f"/user/{user}/api/contents/results.txt", token).status_code != 200
    # The platform has no account of that name (the admin's view), and an erasure of it again is 404.
    export = platform.api("GET", f"/services/platform/api/v1/accounts/{user}/export", platform.admin_token)
    assert export.status_code == 404
    again = platform.api("DELETE", f"/services/platform/api/v1/accounts/{user}", platform.admin_token)
    assert again.status_code == 404


def test_an_admin_erases_an_account_and_the_configured_admin_is_refused(platform, new_user):
    user, token = new_user()
    platform.spawn(user, token, {"profile": "interactive"})
    home = Path(platform.settings.state_path) / "users" / user
    wait_for(home.exists, 10, what="the home folder")

    response = platform.api(
        "DELETE", f"/services/platform/api/v1/accounts/{user}", platform.admin_token, timeout=180
    )

    assert response.status_code == 200, f"{response.text}\n{platform.log_tail()}"
    assert response.json()["requested_by"] == "admin"
    assert not home.exists()
    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    refused = platform.api("DELETE", "/services/platform/api/v1/accounts/admin", platform.admin_token)
    assert refused.status_code == 409
    assert "POLARTEP_ADMIN_USER" in refused.json()["detail"]
