"""The account page through the real hub: a browser logs in at the hub, opens ``/services/platform/account`` (OAuth
to the service), corrects its details, downloads its data and erases its account with the page's forms."""

from __future__ import annotations

import secrets

from tests.helpers.browser_session import form_xsrf, logged_in_session

PASSWORD = "a-long-password-gdpr-1"  # noqa: S105 (throw-away test platform)


def test_a_browser_rectifies_exports_and_erases_through_the_page(platform):
    user = f"page{secrets.token_hex(3)}"
    token = platform.create_user(user, password=PASSWORD)
    account = f"{platform.url}/services/platform/account"

    with logged_in_session(platform, user, PASSWORD) as browser:
        page = browser.get(account)
        assert page.status_code == 200, page.text
        assert str(page.url) == account
        details = {
            "_xsrf": form_xsrf(page.text),
            "full_name": "Ingrid <b>Bold</b> Isaksen",
            "email": "ingrid@polar.example",
            "organisation": "Polar Institute",
            "organisation_location": "Tromsø",
            "phone": "",
        }
        saved = browser.post(f"{account}/details", data=details)
        assert saved.status_code == 200, saved.text
        assert "Ingrid &lt;b&gt;Bold&lt;/b&gt; Isaksen" in saved.text

        export = browser.get(f"{platform.url}/services/platform/api/v1/me/export")
        assert export.headers["content-disposition"].startswith("attachment;")
        assert export.json()["account"]["full_name"] == "Ingrid <b>Bold</b> Isaksen"

        erased = browser.post(
            f"{account}/erase",
            data={"_xsrf": form_xsrf(saved.text), "confirm": user, "processors": "withdraw"},
        )
        assert erased.status_code == 200, f"{erased.text}\n{platform.log_tail()}"
        assert "has been erased" in erased.text

    assert platform.api("GET", f"/hub/api/users/{user}", platform.admin_token).status_code == 404
    assert platform.api("GET", "/services/platform/api/v1/me", token).status_code == 401
