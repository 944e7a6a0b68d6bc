"""The account page ``<prefix>account``: profile with a rectify form, the export link and the erase form, for a
browser logged in through the hub; CSRF-safe forms, every value escaped, bad input re-shown with the message."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account, Erasure
from polartep_hub.service.web.pages import THEME_SCRIPT
from tests.helpers.form_errors import field_error
from tests.helpers.service_fakes import PREFIX, RecordingHubAPI

SESSION_COOKIE = "polartep-platform-session"
MARKUP = '<script>alert("pwned")</script>'


@pytest.fixture
def database_url(sqlite_database_url):
    """Pages do not depend on the database kind (the API tests run on both): SQLite only."""
    return sqlite_database_url


def log_in(api, fake_hub, token: str = "alice-token") -> None:
    response = api.get("login", params={"next": f"{PREFIX}account"}, follow_redirects=False)
    state = parse_qs(urlsplit(response.headers["location"]).query)["state"][0]
    fake_hub.grant("the-code", token)
    response = api.get("oauth_callback", params={"code": "the-code", "state": state}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == f"{PREFIX}account"


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def stored(app, name: str = "alice") -> Account | None:
    with app.state.context.session() as session:
        return session.scalar(select(Account).where(Account.name == name))


@pytest.fixture
def page(api, app, fake_hub):
    """Alice, logged in, with details that contain markup; returns the account page's HTML."""
    with app.state.context.session() as session:
        session.add(
            Account(
                name="alice",
                plan="trial",
                full_name=f"Alice {MARKUP}",
                email="alice@polar.example",
                organisation="Ice & Snow <Lab>",
                organisation_location="Tromsø",
            )
        )
        session.commit()
    log_in(api, fake_hub)
    response = api.get("account")
    assert response.status_code == 200, response.text
    return response.text


def test_without_a_login_the_page_sends_the_browser_to_log_in(api):
    response = api.get("account", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == f"{PREFIX}login?next={PREFIX}account"


def test_the_page_shows_the_profile_escaped_with_export_and_erase_forms(page):
    assert MARKUP not in page
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert "Ice &amp; Snow &lt;Lab&gt;" in page
    assert f'href="{PREFIX}api/v1/me/export"' in page
    assert f'action="{PREFIX}account/details"' in page and f'action="{PREFIX}account/erase"' in page
    # The only script is the theme script, allowed by its hash in the page's CSP.
    assert page.count("<script") == 1 and f"<script>{THEME_SCRIPT}</script>" in page


def test_the_export_link_downloads_with_the_browser_session(api, page):
    response = api.get("api/v1/me/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.json()["account"]["email"] == "alice@polar.example"


def details_form(page: str, **changes) -> dict[str, str]:
    form = {
        "_xsrf": xsrf_of(page),
        "full_name": "Alice Snow",
        "email": "alice@polar.example",
        "organisation": "Ice Lab",
        "organisation_location": "Tromsø",
        "phone": "",
    }
    return {**form, **changes}


def test_the_details_form_rectifies(api, app, page):
    response = api.post("account/details", data=details_form(page, phone="+47 555 0100"))

    assert response.status_code == 200, response.text
    assert "saved" in response.text
    account = stored(app)
    assert (account.full_name, account.organisation, account.phone) == (
        "Alice Snow",
        "Ice Lab",
        "+47 555 0100",
    )


def test_bad_details_are_shown_again_with_the_message_and_nothing_is_stored(api, app, page):
    response = api.post(
        "account/details", data=details_form(page, full_name="Changed", email=f"not an address {MARKUP}")
    )

    assert response.status_code == 422
    assert (
        field_error(response.text, "email")
        == "not a valid e-mail address (An email address must have an @-sign.)"
    )
    assert "Please fix the fields marked below." in response.text
    assert MARKUP not in response.text  # the typed value is shown again, escaped
    assert stored(app).full_name == f"Alice {MARKUP}"


def test_forms_without_the_xsrf_field_are_refused(api, app, page):
    response = api.post("account/details", data={**details_form(page), "_xsrf": "forged"})
    assert response.status_code == 403
    response = api.post("account/erase", data={"confirm": "alice", "processors": "withdraw"})
    assert response.status_code == 403
    assert stored(app).full_name == f"Alice {MARKUP}"


def test_the_erase_form_needs_the_user_name_typed_again(api, app, page):
    app.state.context.hub_api = RecordingHubAPI()
    response = api.post(
        "account/erase", data={"_xsrf": xsrf_of(page), "confirm": "al", "processors": "withdraw"}
    )
    assert response.status_code == 422
    assert "Type your user name" in response.text
    assert stored(app) is not None


def test_the_erase_form_erases_the_account(api, app, page):
    hub = RecordingHubAPI()
    app.state.context.hub_api = hub
    response = api.post(
        "account/erase", data={"_xsrf": xsrf_of(page), "confirm": "alice", "processors": "withdraw"}
    )

    assert response.status_code == 200, response.text
    assert "has been erased" in response.text
    assert stored(app) is None
    assert ("delete_user", "alice") in hub.calls
    with app.state.context.session() as session:
        assert session.scalars(select(Erasure.requested_by)).all() == ["self"]
    assert SESSION_COOKIE not in api.client.cookies


def test_the_configured_admin_sees_no_erase_form(api, app, fake_hub):
    from tests.helpers.service_fakes import user

    fake_hub.tokens["root-token"] = user("admin", admin=True)
    log_in(api, fake_hub, token="root-token")
    html = api.get("account").text
    assert "cannot be erased" in html
    assert f'action="{PREFIX}account/erase"' not in html
