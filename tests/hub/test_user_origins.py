"""Per-user origins (``subdomain_host``): each user's server on a host of its own, the hub and services on theirs.

Local mode with ``subdomain_host`` on and the hub at ``localhost``: Olive's server answers at
``http://olive.localhost:<port>/user/olive/`` (Python reaches ``*.localhost`` names through
``tests/helpers/localhost_names.py``; Chromium resolves them itself). The attack these origins stop is in
``tests/security/test_user_origin_xsrf.py``.
"""

from __future__ import annotations

import pytest

from tests.harness import RunningPlatform
from tests.helpers import localhost_names
from tests.helpers.browser import login, wait_until

pytestmark = pytest.mark.timeout(420)  # one platform start and two spawns on a loaded machine

USER = "olive"
PASSWORD = "olive-long-password-3"  # noqa: S105 (throw-away test platform)


@pytest.fixture(scope="module")
def origins_platform(tmp_path_factory):
    with RunningPlatform(tmp_path_factory.mktemp("origins"), subdomains=True).running(timeout=240) as running:
        yield running


@pytest.fixture(scope="module")
def olive(origins_platform):
    """Olive, with a running server; her token."""
    token = origins_platform.create_user(USER, password=PASSWORD)
    origins_platform.spawn(USER, token, timeout=180)
    return token


def test_a_spawned_server_answers_on_its_users_own_host(origins_platform, olive):
    platform = origins_platform
    port = platform.settings.public_port
    assert platform.server_model(USER)["url"] == f"http://olive.localhost:{port}/user/olive/"

    r = localhost_names.request(
        "GET",
        f"http://olive.localhost:{port}/user/olive/api/status",
        headers={"Authorization": f"token {olive}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["kernels"] == 0


def test_the_hub_host_sends_user_paths_to_the_users_host(origins_platform, olive):
    port = origins_platform.settings.public_port
    r = localhost_names.request("GET", f"http://localhost:{port}/user/olive/lab")
    assert r.status_code == 302
    assert r.headers["location"] == f"http://localhost:{port}/hub/user/olive/lab"
    r = localhost_names.request("GET", r.headers["location"], headers={"Authorization": f"token {olive}"})
    assert r.status_code == 302
    assert r.headers["location"] == f"http://olive.localhost:{port}/user/olive/lab?redirects=1"


def test_the_hub_and_the_platform_service_stay_on_the_hub_host(origins_platform, olive):
    port = origins_platform.settings.public_port
    hub = f"http://localhost:{port}"
    assert localhost_names.request("GET", f"{hub}/hub/api").status_code == 200
    assert localhost_names.request("GET", f"{hub}/services/platform/health").json()["status"] == "ok"
    # On a user's host the service is not there: the proxy hands the request to the hub, which sends it home.
    r = localhost_names.request("GET", f"http://olive.localhost:{port}/services/platform/health")
    assert r.status_code == 302
    assert r.headers["location"] == f"{hub}/hub/services/platform/health"
    # Neither answers other origins with CORS permissions.
    for path in ("/services/platform/api/v1/me", "/hub/api/user"):
        r = localhost_names.request(
            "GET",
            hub + path,
            headers={"Authorization": f"token {olive}", "Origin": f"http://olive.localhost:{port}"},
        )
        assert r.status_code == 200, (path, r.text)
        assert "access-control-allow-origin" not in r.headers, path
        assert "access-control-allow-credentials" not in r.headers, path


def test_a_password_login_on_a_users_host_is_refused(origins_platform, olive):
    """The hub's login page also answers on a user's host; logging in there would give that origin the hub's
    login cookie, so the login is refused (and works on the hub's host)."""
    port = origins_platform.settings.public_port
    for host, expected in ((f"olive.localhost:{port}", 403), (f"localhost:{port}", 302)):
        with localhost_names.localhost_names_client(timeout=60) as client:
            page = client.get(f"http://{host}/hub/login")
            xsrf = client.cookies.get("_xsrf")
            r = client.post(
                f"http://{host}/hub/login",
                data={"username": USER, "password": PASSWORD, "_xsrf": xsrf},
            )
            assert page.status_code == 200
            assert r.status_code == expected, (host, r.status_code, r.text[:300])
            if expected == 403:
                assert f"log in at //localhost:{port}/hub/login instead" in r.text
                assert "jupyterhub-hub-login" not in client.cookies


def test_the_gateway_address_is_on_the_hub_host(origins_platform):
    env = origins_platform.settings
    from polartep_hub.gateway.config import user_environment

    assert user_environment(env)["DASK_GATEWAY__ADDRESS"] == f"{env.public_url}/services/dask-gateway"
    assert user_environment(env)["DASK_GATEWAY__PUBLIC_ADDRESS"] == f"{env.public_url}/services/dask-gateway"


def test_in_a_browser_login_spawn_and_jupyterlab_load_at_the_users_origin(origins_platform, olive, browser):
    """A person's path: log in on the hub, open the server, land in JupyterLab on the user's own origin, where the
    server's OAuth with the hub (across origins) gave the browser a cookie for that origin only."""
    platform = origins_platform
    port = platform.settings.public_port
    driver = browser()
    login(driver, platform, USER, PASSWORD)
    driver.get(f"{platform.url}/hub/home")
    # The "Services" menu links by path, on the hub's host (JupyterHub's own link would drop the port).
    assert 'href="/services/platform/"' in driver.page_source
    driver.get(f"{platform.url}/hub/user/{USER}/lab")
    wait_until(
        driver,
        lambda d: (
            d.current_url.startswith(f"http://olive.localhost:{port}/user/olive/lab")
            and d.execute_script("return !!document.querySelector('#jp-main-dock-panel, .jp-LabShell')")
        ),
        120,
        "JupyterLab at Olive's origin",
    )
    assert driver.title.endswith("JupyterLab")
    at_user = driver.execute_cdp_cmd(
        "Network.getCookies", {"urls": [f"http://olive.localhost:{port}/user/olive/"]}
    )
    names = sorted(cookie["name"] for cookie in at_user["cookies"])
    assert "jupyterhub-user-olive" in names
    assert "jupyterhub-hub-login" not in names
    # API calls from the page work on its origin, as JupyterLab makes them (cookie + the server's XSRF token).
    specs = driver.execute_async_script(
        "const done = arguments[0];"
        "const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '';"
        "fetch('/user/olive/api/kernelspecs', {headers: {'X-XSRFToken': decodeURIComponent(xsrf)}})"
        ".then(r => done(r.status)).catch(e => done(String(e)));"
    )
    assert specs == 200
