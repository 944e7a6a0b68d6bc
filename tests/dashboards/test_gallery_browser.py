"""The dashboards gallery in headless Chromium (local mode).

Specification: a user a dashboard is shared with opens the gallery (``/services/platform/dashboards``) and sees its
card: the thumbnail (the notebook's first image, loaded), the title linking to the dashboard, "Shared by <owner>";
following the link opens the dashboard. Screenshots are kept in ``build/screenshots/``.
"""

from __future__ import annotations

import base64
import io

import pytest

from tests.helpers.browser import login, save_screenshot, wait_until
from tests.helpers.dashboards import MARKER, marker_notebook, publish, share

pytestmark = pytest.mark.timeout(600)

PASSWORD = "a-long-enough-password-for-tests-7"


def notebook_with_a_plot() -> dict:
    """The marker notebook, saved with a PNG output (as a notebook run in JupyterLab is): its thumbnail."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 3))
    axis.plot([0, 1, 2, 3], [3, 1, 2, 0])
    axis.set_title("thumbnail")
    image = io.BytesIO()
    figure.savefig(image, format="png")
    plt.close(figure)
    nb = marker_notebook()
    nb["cells"][0]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/png": base64.b64encode(image.getvalue()).decode(), "text/plain": "<Figure>"},
        }
    ]
    return nb


def test_a_viewer_finds_the_shared_dashboard_in_the_gallery_with_its_thumbnail(platform, browser, request):
    from selenium.webdriver.common.by import By

    owner = "galleryowner"
    owner_token = platform.create_user(owner)
    viewer = "galleryviewer"
    platform.create_user(viewer, password=PASSWORD)
    dashboard = publish(platform, owner_token, title="Ice plots", nb=notebook_with_a_plot())
    assert share(platform, owner_token, dashboard["id"], user=viewer).status_code == 201
    platform.wait_ready(owner, dashboard["server"], timeout=120)

    driver = browser()
    login(driver, platform, viewer, PASSWORD)
    driver.get(f"{platform.url}/services/platform/dashboards")
    card = wait_until(
        driver,
        lambda d: d.find_element(By.ID, f"dashboard-{dashboard['id']}"),
        timeout=60,
        message="the card",
    )
    thumbnail = card.find_element(By.CSS_SELECTOR, "img.polartep-thumbnail")
    assert thumbnail.get_attribute("src").endswith(f"/api/v1/dashboards/{dashboard['id']}/thumbnail.png")
    wait_until(
        driver,
        lambda d: (
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumbnail) == 400
        ),
        message="the thumbnail (a 400 px wide plot) to load",
    )
    assert f"Shared by {owner}" in card.text
    save_screenshot(driver, request, "gallery")

    card.find_element(By.LINK_TEXT, "Ice plots").click()
    wait_until(driver, lambda d: "oauth2/authorize" in d.current_url or "/user/" in d.current_url, timeout=60)
    if "oauth2/authorize" in driver.current_url:
        driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_until(
        driver,
        lambda d: f"{MARKER}-42" in d.find_element(By.TAG_NAME, "body").text,
        timeout=90,
        message="the dashboard to render",
    )
    assert driver.current_url.startswith(platform.user_url(owner, dashboard["server"]))
    save_screenshot(driver, request, "gallery-dashboard-opened")
