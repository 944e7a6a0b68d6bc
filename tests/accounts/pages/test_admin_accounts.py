"""The administrators' accounts pages: list, per-account page with plan and subscription forms, CSRF-safe posts.

Specification: a logged-in admin browser sees every account and, per account, a plan select and subscription
forms; a post without the page's ``_xsrf`` is refused and changes nothing; a good post changes the account through
the same rules as the API and redirects back; non-admins get 403; a browser without a session is sent to log in;
whatever users typed (full names) is shown escaped.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from polartep_hub.accounts.models import Account
from polartep_hub.service.web.pages import THEME_SCRIPT
from tests.helpers.service_fakes import PREFIX, without_theme_script
from tests.helpers.service_login import browser_login, xsrf_of

PAGES = "admin/accounts"


@pytest.fixture
def database_url(sqlite_database_url):
    """Pages do not depend on the database kind (the API tests cover both): SQLite only."""
    return sqlite_database_url


def make_account(api, name: str) -> None:
    assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200


def entitlements(api, name: str) -> dict:
    return api.get(f"api/v1/users/{name}/entitlements", token="hub-token").json()


def test_a_browser_without_a_session_is_sent_to_log_in(api):
    response = api.get(PAGES, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == f"{PREFIX}login?next={PREFIX}{PAGES}"


def test_admins_see_every_account_with_plan_and_subscriptions(api, fake_hub):
    make_account(api, "alice")
    make_account(api, "bob")
    api.post("api/v1/accounts/bob/subscriptions/ml", token="hub-token")
    browser_login(api, fake_hub)
    page = api.get(PAGES)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'href="{PREFIX}{PAGES}/alice"' in page.text and f'href="{PREFIX}{PAGES}/bob"' in page.text
    assert "<td>ml</td>" in page.text
    # No script but the theme script, which the page's CSP allows by its hash.
    assert page.text.count("<script") == 1 and f"<script>{THEME_SCRIPT}</script>" in page.text


def test_non_admins_get_403(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub, token="alice-token")
    assert api.get(PAGES).status_code == 403
    assert api.get(f"{PAGES}/alice").status_code == 403


def test_the_account_page_offers_the_plans_and_the_subscriptions_not_held(api, fake_hub):
    make_account(api, "alice")
    api.post("api/v1/accounts/alice/subscriptions/ml", token="hub-token")
    browser_login(api, fake_hub)
    page = api.get(f"{PAGES}/alice").text
    assert '<option value="trial" selected>' in page
    assert '<option value="standard">' in page and '<option value="large">' in page
    assert '<option value="dev-small">' in page and '<option value="ml">' not in page
    assert f'action="{PREFIX}{PAGES}/alice/subscriptions/ml/end"' in page
    assert page.count('name="_xsrf"') == 4  # plan, password reset, add, end ml


def test_a_plan_change_through_the_form_is_applied_and_redirects(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub)
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    response = api.post(
        f"{PAGES}/alice/plan", data={"plan": "standard", "_xsrf": xsrf}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"{PREFIX}{PAGES}/alice?done=plan"
    assert entitlements(api, "alice")["plan"] == "standard"
    assert "The plan was changed." in api.client.get(response.headers["location"]).text


def test_subscriptions_are_added_and_ended_through_the_forms(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub)
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    added = api.post(
        f"{PAGES}/alice/subscriptions", data={"subscription": "ml", "_xsrf": xsrf}, follow_redirects=False
    )
    assert added.status_code == 303
    assert "ml" in entitlements(api, "alice")["profiles"]
    ended = api.post(f"{PAGES}/alice/subscriptions/ml/end", data={"_xsrf": xsrf}, follow_redirects=False)
    assert ended.status_code == 303
    assert "ml" not in entitlements(api, "alice")["profiles"]


@pytest.mark.parametrize("xsrf", [None, "", "forged"])
def test_a_post_without_the_pages_token_is_refused_and_changes_nothing(api, fake_hub, xsrf):
    make_account(api, "alice")
    browser_login(api, fake_hub)
    data = {"plan": "large"} if xsrf is None else {"plan": "large", "_xsrf": xsrf}
    response = api.post(f"{PAGES}/alice/plan", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert "another site" in response.json()["detail"]
    assert entitlements(api, "alice")["plan"] == "trial"


def test_a_post_without_a_session_is_401(api):
    make_account(api, "alice")
    response = api.post(f"{PAGES}/alice/plan", data={"plan": "large", "_xsrf": "x"})
    assert response.status_code == 401
    assert entitlements(api, "alice")["plan"] == "trial"


def test_a_non_admin_with_a_valid_form_token_is_refused(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub)
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    fake_hub.tokens["ada-token"] = fake_hub.tokens["alice-token"]  # ada's session now belongs to a non-admin
    response = api.post(f"{PAGES}/alice/plan", data={"plan": "large", "_xsrf": xsrf})
    assert response.status_code == 403
    assert entitlements(api, "alice")["plan"] == "trial"


def test_an_unknown_plan_in_the_form_shows_the_reason_and_changes_nothing(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub)
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    response = api.post(f"{PAGES}/alice/plan", data={"plan": "<b>gold</b>", "_xsrf": xsrf})
    assert response.status_code == 400
    assert (
        "unknown plan &#39;&lt;b&gt;gold&lt;/b&gt;&#39;; known plans: trial, standard, large" in response.text
    )
    assert "<b>gold</b>" not in response.text
    assert entitlements(api, "alice")["plan"] == "trial"


def test_subscribing_twice_through_the_form_is_409_with_the_reason(api, fake_hub):
    make_account(api, "alice")
    api.post("api/v1/accounts/alice/subscriptions/ml", token="hub-token")
    browser_login(api, fake_hub)
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    response = api.post(f"{PAGES}/alice/subscriptions", data={"subscription": "ml", "_xsrf": xsrf})
    assert response.status_code == 409
    assert "already holds the subscription" in response.text


def test_an_unknown_account_is_404(api, fake_hub):
    browser_login(api, fake_hub)
    make_account(api, "alice")
    xsrf = xsrf_of(api.get(f"{PAGES}/alice").text)
    assert api.get(f"{PAGES}/ghost").status_code == 404
    assert api.post(f"{PAGES}/ghost/plan", data={"plan": "large", "_xsrf": xsrf}).status_code == 404


def test_names_users_typed_are_shown_escaped(api, app, fake_hub):
    make_account(api, "alice")
    with app.state.context.session() as session:
        session.scalar(
            select(Account).where(Account.name == "alice")
        ).full_name = '<script>alert("x")</script>'
        session.commit()
    browser_login(api, fake_hub)
    page = api.get(f"{PAGES}/alice").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<script>" not in without_theme_script(page)


def test_the_account_page_lists_projects_with_display_names_escaped(api, fake_hub):
    make_account(api, "alice")
    created = api.post(
        "api/v1/projects",
        token="alice-token",
        json={"name": "ice", "display_name": "<img src=x onerror=alert(1)>"},
    )
    assert created.status_code == 201
    browser_login(api, fake_hub)
    page = api.get(f"{PAGES}/alice").text
    assert "&lt;img src=x onerror=alert(1)&gt; (ice, owner)" in page
    assert "<img src=x" not in page
