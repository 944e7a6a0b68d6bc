"""Plans and subscriptions: the allowed-profiles rule, the Trial's end, and the admin API that changes them.

Specification: an account has one plan (new accounts start on Trial, with its start date) and any subscriptions;
it may start the plan's profiles plus those of its active subscriptions (admins: all), in catalogue order; a Trial
older than its duration allows nothing and says so; ending a subscription keeps its row with the end date. Admins
(and the hub) change plans and subscriptions through ``/api/v1/accounts/...``; everyone else is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from polartep_hub.accounts.entitlements import add_months
from polartep_hub.accounts.models import Account, AccountSubscription

TRIAL = ["interactive", "small", "medium"]
STANDARD = ["interactive", "small", "medium", "large"]
ALL = ["interactive", "small", "medium", "large", "ml"]


def entitlements(api, name: str = "alice") -> dict:
    response = api.get(f"api/v1/users/{name}/entitlements", token="hub-token")
    assert response.status_code == 200, response.text
    return response.json()


def seen(api, name: str = "alice") -> dict:
    """Make the account exist (first sight) and return its entitlements."""
    return entitlements(api, name)


def set_plan(api, name: str, plan: str, token: str = "ada-token"):
    return api.request("PUT", f"api/v1/accounts/{name}/plan", token=token, json={"plan": plan})


def subscribe(api, name: str, subscription: str, token: str = "ada-token"):
    return api.post(f"api/v1/accounts/{name}/subscriptions/{subscription}", token=token)


def unsubscribe(api, name: str, subscription: str, token: str = "ada-token"):
    return api.request("DELETE", f"api/v1/accounts/{name}/subscriptions/{subscription}", token=token)


def backdate_plan(app, name: str, days: int) -> None:
    with app.state.context.session() as session:
        account = session.scalar(select(Account).where(Account.name == name))
        account.plan_started_at = datetime.now(UTC) - timedelta(days=days)
        session.commit()


def subscription_rows(app, name: str) -> list[AccountSubscription]:
    with app.state.context.session() as session:
        return list(
            session.scalars(
                select(AccountSubscription)
                .join(Account)
                .where(Account.name == name)
                .order_by(AccountSubscription.id)
            )
        )


# --- the rule ----------------------------------------------------------------------------------------------------


def test_a_new_account_starts_on_trial_with_its_start_and_end_dates(api):
    before = datetime.now(UTC)
    body = seen(api)
    started = datetime.fromisoformat(body["plan_started_at"])
    assert body["plan"] == "trial" and body["plan_display_name"] == "Trial"
    assert before - timedelta(seconds=5) <= started <= datetime.now(UTC)
    assert datetime.fromisoformat(body["plan_ends_at"]) == add_months(started, 3)
    assert body["plan_expired"] is False and body["message"] is None
    assert body["subscriptions"] == [] and body["profiles"] == TRIAL


def test_plans_without_a_duration_have_no_end(api):
    seen(api)
    set_plan(api, "alice", "standard")
    body = entitlements(api)
    assert body["plan_ends_at"] is None and body["profiles"] == STANDARD


def test_a_subscription_adds_its_profile_in_catalogue_order(api):
    seen(api)
    assert subscribe(api, "alice", "ml").status_code == 201
    body = entitlements(api)
    assert body["subscriptions"] == ["ml"]
    assert body["profiles"] == ["interactive", "small", "medium", "ml"]


def test_a_subscription_for_a_profile_the_plan_has_changes_nothing_twice(api):
    seen(api)
    subscribe(api, "alice", "dev-small")
    subscribe(api, "alice", "hosting-large")
    assert entitlements(api)["profiles"] == STANDARD


def test_ending_a_subscription_removes_its_profile_and_keeps_the_row(api, app):
    seen(api)
    subscribe(api, "alice", "ml")
    response = unsubscribe(api, "alice", "ml")
    assert response.status_code == 200
    assert entitlements(api)["profiles"] == TRIAL
    rows = subscription_rows(app, "alice")
    assert [(r.subscription, r.ended_at is not None) for r in rows] == [("ml", True)]
    history = response.json()["subscription_history"]
    assert history[0]["subscription"] == "ml" and history[0]["ended_at"] is not None


def test_a_subscription_can_be_taken_again_after_it_ended(api, app):
    seen(api)
    subscribe(api, "alice", "ml")
    unsubscribe(api, "alice", "ml")
    assert subscribe(api, "alice", "ml").status_code == 201
    assert [r.ended_at is None for r in subscription_rows(app, "alice")] == [False, True]
    assert "ml" in entitlements(api)["profiles"]


def test_an_expired_trial_allows_nothing_and_says_when_it_ended(api, app):
    seen(api)
    subscribe(api, "alice", "ml")
    backdate_plan(app, "alice", days=100)
    body = entitlements(api)
    assert body["plan_expired"] is True
    assert body["profiles"] == []  # subscriptions too: servers run on the plan's allowance, which is over
    assert body["message"].startswith("Your Trial plan ended on ")
    assert body["plan_ends_at"][:10] in body["message"]


def test_a_trial_within_its_duration_still_allows_its_profiles(api, app):
    seen(api)
    backdate_plan(app, "alice", days=85)
    assert entitlements(api)["profiles"] == TRIAL


def test_moving_an_expired_trial_to_a_paid_plan_restores_the_profiles(api, app):
    seen(api)
    subscribe(api, "alice", "ml")
    backdate_plan(app, "alice", days=200)
    set_plan(api, "alice", "standard")
    body = entitlements(api)
    assert body["plan_expired"] is False and body["profiles"] == ALL


def test_restarting_a_trial_restarts_its_clock(api, app):
    seen(api)
    set_plan(api, "alice", "standard")
    backdate_plan(app, "alice", days=200)
    set_plan(api, "alice", "trial")
    assert entitlements(api)["profiles"] == TRIAL


def test_admins_may_start_everything_even_on_an_expired_trial(api, app):
    seen(api, "ada")
    backdate_plan(app, "ada", days=400)
    body = api.get("api/v1/users/ada/entitlements", token="ada-token").json()
    assert body["profiles"] == ALL and body["plan_expired"] is False


def test_me_follows_the_same_rule(api):
    api.get("api/v1/me", token="alice-token")
    subscribe(api, "alice", "ml")
    assert api.get("api/v1/me", token="alice-token").json()["profiles"] == [
        "interactive",
        "small",
        "medium",
        "ml",
    ]


@pytest.mark.parametrize(
    "start, months, end",
    [
        (datetime(2026, 11, 25, 9, tzinfo=UTC), 3, datetime(2027, 2, 25, 9, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2027, 11, 30, tzinfo=UTC), 3, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 1, 31, tzinfo=UTC), 12, datetime(2027, 1, 31, tzinfo=UTC)),
    ],
)
def test_plan_durations_are_calendar_months(start, months, end):
    assert add_months(start, months) == end


# --- the admin API ------------------------------------------------------------------------------------------------


def test_admins_list_accounts_with_plans_and_subscriptions(api):
    seen(api, "alice")
    seen(api, "bob")
    subscribe(api, "bob", "dev-large")
    body = api.get("api/v1/accounts", token="ada-token").json()
    rows = {a["name"]: a for a in body["accounts"]}
    assert list(rows) == ["alice", "bob"]
    assert rows["bob"]["subscriptions"] == ["dev-large"] and rows["alice"]["plan"] == "trial"


def test_admins_read_one_account(api):
    seen(api)
    subscribe(api, "alice", "ml")
    body = api.get("api/v1/accounts/alice", token="ada-token").json()
    assert body["name"] == "alice" and body["plan"] == "trial"
    assert body["profiles"] == ["interactive", "small", "medium", "ml"]
    assert body["subscription_history"][0]["profile"] == "ml"
    assert "password_hash" not in body


def test_the_hub_may_change_plans_and_subscriptions(api):
    seen(api)
    assert set_plan(api, "alice", "large", token="hub-token").status_code == 200
    assert subscribe(api, "alice", "ml", token="hub-token").status_code == 201
    assert entitlements(api)["plan"] == "large"


def test_a_plan_change_answers_the_new_state_and_restarts_the_period(api, app):
    seen(api)
    backdate_plan(app, "alice", days=10)
    body = set_plan(api, "alice", "standard").json()
    assert body["plan"] == "standard" and body["profiles"] == STANDARD
    assert datetime.now(UTC) - datetime.fromisoformat(body["plan_started_at"]) < timedelta(minutes=1)


def test_setting_the_same_plan_keeps_its_start(api, app):
    seen(api)
    backdate_plan(app, "alice", days=10)
    body = set_plan(api, "alice", "trial").json()
    assert datetime.now(UTC) - datetime.fromisoformat(body["plan_started_at"]) > timedelta(days=9)


def test_an_unknown_plan_is_400_naming_the_known_ones(api):
    seen(api)
    response = set_plan(api, "alice", "platinum")
    assert response.status_code == 400
    assert "unknown plan 'platinum'" in response.json()["detail"]
    assert "trial, standard, large" in response.json()["detail"]
    assert entitlements(api)["plan"] == "trial"


def test_an_unknown_subscription_is_400_naming_the_known_ones(api, app):
    seen(api)
    response = subscribe(api, "alice", "gpu-farm")
    assert response.status_code == 400
    assert "unknown subscription 'gpu-farm'" in response.json()["detail"]
    assert "dev-small" in response.json()["detail"] and "ml" in response.json()["detail"]
    assert subscription_rows(app, "alice") == []


def test_subscribing_twice_is_409_and_stores_one_row(api, app):
    seen(api)
    subscribe(api, "alice", "ml")
    response = subscribe(api, "alice", "ml")
    assert response.status_code == 409
    assert "already holds the subscription 'ml'" in response.json()["detail"]
    assert len(subscription_rows(app, "alice")) == 1


def test_ending_a_subscription_not_held_is_404(api):
    seen(api)
    response = unsubscribe(api, "alice", "ml")
    assert response.status_code == 404
    assert "no active subscription 'ml'" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "api/v1/accounts/ghost", None),
        ("PUT", "api/v1/accounts/ghost/plan", {"plan": "standard"}),
        ("POST", "api/v1/accounts/ghost/subscriptions/ml", None),
        ("DELETE", "api/v1/accounts/ghost/subscriptions/ml", None),
    ],
)
def test_an_unknown_account_is_404(api, method, path, body):
    response = api.request(method, path, token="ada-token", json=body)
    assert response.status_code == 404
    assert "no account 'ghost'" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "api/v1/accounts", None),
        ("GET", "api/v1/accounts/alice", None),
        ("PUT", "api/v1/accounts/alice/plan", {"plan": "large"}),
        ("POST", "api/v1/accounts/alice/subscriptions/ml", None),
        ("DELETE", "api/v1/accounts/alice/subscriptions/ml", None),
    ],
)
def test_non_admins_are_refused(api, method, path, body):
    seen(api)
    response = api.request(method, path, token="alice-token", json=body)
    assert response.status_code == 403
    assert "only administrators" in response.json()["detail"]
    assert entitlements(api)["profiles"] == TRIAL


def test_a_plan_body_with_other_fields_is_refused(api):
    seen(api)
    response = api.request(
        "PUT", "api/v1/accounts/alice/plan", token="ada-token", json={"plan": "large", "price": 0}
    )
    assert response.status_code == 422
    assert entitlements(api)["plan"] == "trial"
