"""The acceptance path in a browser's shoes: log in as the admin, pick Medium, land in JupyterLab."""

from __future__ import annotations

from tests.helpers.browser_session import form_xsrf, logged_in_session
from tests.helpers.servers import server_state


def test_admin_logs_in_picks_medium_and_lands_in_jupyterlab(platform):
    with logged_in_session(platform, "admin", platform.env["POLARTEP_ADMIN_PASSWORD"]) as session:
        form = session.get(f"{platform.url}/hub/spawn")
        assert 'value="medium"' in form.text and 'value="ml"' in form.text  # the admin may use every profile
        r = session.post(
            f"{platform.url}/hub/spawn", data={"profile": "medium", "_xsrf": form_xsrf(form.text)}
        )
        platform.wait_ready("admin")
        lab = session.get(f"{platform.url}/user/admin/lab")
        assert lab.status_code == 200, r.text[:300]
        assert "JupyterLab" in lab.text
    assert server_state(platform, "admin")["profile"] == "medium"
    platform.stop_server("admin")


def test_a_wrong_password_does_not_log_in(platform):
    import httpx

    with httpx.Client(timeout=30) as session:
        page = session.get(f"{platform.url}/hub/login")
        r = session.post(
            f"{platform.url}/hub/login",
            data={"username": "admin", "password": "wrong", "_xsrf": form_xsrf(page.text)},
        )
        assert r.status_code == 403
        assert "Invalid username or password" in r.text


def test_a_forbidden_profile_in_the_form_shows_the_reason(platform, new_user):
    user, _ = new_user(plan="trial", password="a-long-password-2")
    with logged_in_session(platform, user, "a-long-password-2") as session:
        form = session.get(f"{platform.url}/hub/spawn")
        r = session.post(f"{platform.url}/hub/spawn", data={"profile": "ml", "_xsrf": form_xsrf(form.text)})
        assert "Your plan does not include the profile" in r.text
    assert platform.server_model(user) is None
