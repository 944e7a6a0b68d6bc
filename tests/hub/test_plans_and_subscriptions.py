"""Plans and subscriptions with the real hub: the spawn form and the REST API follow every change at once.

Specification: the spawn form lists exactly the profiles the account may start (its plan's, plus its active
subscriptions'), before and after a plan change and after adding the ``ml`` subscription; a REST spawn of a profile
neither allows is refused with 400 naming it, and allowed as soon as an administrator subscribes the account; an
ended Trial allows nothing (no server, no Dask cluster) and says so. Administrators change accounts on ``/services/platform/admin/accounts``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from polartep_hub.accounts.models import Account
from polartep_hub.catalogue import load_catalogue
from polartep_hub.gateway.options import PlanLookup
from polartep_hub.service.db import make_engine
from tests.helpers.browser_session import form_xsrf, logged_in_session

PASSWORD = "a-long-password-3"
ACCOUNTS_API = "/services/platform/api/v1/accounts"
TRIAL = ["interactive", "small", "medium"]
STANDARD = ["interactive", "small", "medium", "large"]
ALL = ["interactive", "small", "medium", "large", "ml"]


def form_profiles(platform, session) -> tuple[list[str], str]:
    page = session.get(f"{platform.url}/hub/spawn")
    assert page.status_code == 200, page.text[:300]
    return re.findall(r'name="profile" value="([^"]+)"', page.text), page.text


def admin(platform, method: str, path: str, **kwargs):
    response = platform.api(method, ACCOUNTS_API + path, platform.admin_token, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_the_spawn_form_lists_exactly_the_allowed_profiles_through_changes(platform, new_user):
    user, _ = new_user(plan="trial", password=PASSWORD)
    with logged_in_session(platform, user, PASSWORD) as session:
        profiles, page = form_profiles(platform, session)
        assert profiles == TRIAL
        assert re.search(r"Your plan: Trial \(500 CPU-hours a month\) until \d{4}-\d\d-\d\d</p>", page)

        admin(platform, "PUT", f"/{user}/plan", json={"plan": "standard"})
        assert form_profiles(platform, session)[0] == STANDARD

        admin(platform, "POST", f"/{user}/subscriptions/ml")
        profiles, page = form_profiles(platform, session)
        assert profiles == ALL
        assert "Your subscriptions: ML environment" in page

        admin(platform, "DELETE", f"/{user}/subscriptions/ml")
        assert form_profiles(platform, session)[0] == STANDARD


def test_a_rest_spawn_is_refused_then_allowed_by_a_subscription(platform, new_user):
    user, token = new_user(plan="trial")
    path = f"/hub/api/users/{user}/servers/gpu"
    refused = platform.api("POST", path, token, json={"profile": "ml"})
    assert refused.status_code == 400
    assert "does not include the profile 'ml'" in refused.json()["message"]
    assert platform.server_model(user, "gpu") is None

    admin(platform, "POST", f"/{user}/subscriptions/ml")
    model = platform.spawn(user, token, {"profile": "ml"}, server="gpu")
    assert model["ready"] and model["user_options"] == {"profile": "ml"}
    platform.stop_server(user, "gpu")

    admin(platform, "DELETE", f"/{user}/subscriptions/ml")
    again = platform.api("POST", path, token, json={"profile": "ml"})
    assert again.status_code == 400 and "'ml'" in again.json()["message"]


def test_a_plan_change_allows_a_profile_at_once(platform, new_user):
    user, token = new_user(plan="trial")
    path = f"/hub/api/users/{user}/servers/big"
    assert platform.api("POST", path, token, json={"profile": "large"}).status_code == 400
    admin(platform, "PUT", f"/{user}/plan", json={"plan": "standard"})
    assert platform.spawn(user, token, {"profile": "large"}, server="big")["ready"]
    platform.stop_server(user, "big")


def test_an_ended_trial_allows_nothing_and_says_why(platform, new_user):
    user, token = new_user(plan="trial", password=PASSWORD)
    engine = make_engine(platform.settings.service_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Account)
                .where(Account.name == user)
                .values(plan_started_at=datetime.now(UTC) - timedelta(days=120))
            )
    finally:
        engine.dispose()
    refused = platform.api("POST", f"/hub/api/users/{user}/server", token, json={})
    assert refused.status_code == 400
    assert "Your Trial plan ended on" in refused.json()["message"]
    with logged_in_session(platform, user, PASSWORD) as session:
        profiles, page = form_profiles(platform, session)
        assert profiles == [] and "Your Trial plan ended on" in page

    def dask_plan(name: str):
        # A lookup per call: its HTTP client belongs to the event loop it first ran in.
        return asyncio.run(PlanLookup(platform.settings, load_catalogue()).user_plan(name))

    with pytest.raises(ValueError, match="Your Trial plan ended on"):
        dask_plan(user)  # no Dask cluster either

    admin(platform, "PUT", f"/{user}/plan", json={"plan": "standard"})
    entitled = platform.api("GET", f"/services/platform/api/v1/users/{user}/entitlements", token).json()
    assert entitled["profiles"] == STANDARD
    assert dask_plan(user).plan == "standard"


def test_admins_change_plans_on_the_admin_page(platform, new_user):
    user, _ = new_user(plan="trial")
    password = platform.env["POLARTEP_ADMIN_PASSWORD"]
    with logged_in_session(platform, "admin", password) as session:
        listing = session.get(f"{platform.url}/services/platform/admin/accounts")
        assert listing.status_code == 200, listing.text[:500]
        assert f'/services/platform/admin/accounts/{user}"' in listing.text

        page = session.get(f"{platform.url}/services/platform/admin/accounts/{user}")
        xsrf = form_xsrf(page.text)
        forged = session.post(
            f"{platform.url}/services/platform/admin/accounts/{user}/plan", data={"plan": "large"}
        )
        assert forged.status_code == 403
        assert admin(platform, "GET", f"/{user}")["plan"] == "trial"

        changed = session.post(
            f"{platform.url}/services/platform/admin/accounts/{user}/plan",
            data={"plan": "large", "_xsrf": xsrf},
        )
        assert changed.status_code == 200 and "The plan was changed." in changed.text
        assert admin(platform, "GET", f"/{user}")["plan"] == "large"

        added = session.post(
            f"{platform.url}/services/platform/admin/accounts/{user}/subscriptions",
            data={"subscription": "dev-large", "_xsrf": xsrf},
        )
        assert added.status_code == 200
        assert admin(platform, "GET", f"/{user}")["subscriptions"] == ["dev-large"]


def test_non_admins_are_refused_the_admin_page(platform, new_user):
    user, _ = new_user(plan="trial", password=PASSWORD)
    with logged_in_session(platform, user, PASSWORD) as session:
        page = session.get(f"{platform.url}/services/platform/admin/accounts")
        assert page.status_code == 403
    user_token = new_user()[1]
    assert platform.api("GET", ACCOUNTS_API, user_token).status_code == 403
