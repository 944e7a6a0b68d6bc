"""Password rules at sign-up and the login checks of the embedded login: approval and brute-force lock-out.

Specification: a new password has at least ``password_min_length`` characters, is not one of the 10,000 most common
passwords and does not contain the user name; each broken rule is named without repeating the password. At login
(``POST api/v1/auth/password``, the hub's call) an account awaiting approval is refused with a message saying so,
but only when the password was right; after ``login_attempts`` failures for one name from one client address (or
``login_attempts_per_address`` from one address over all names) that address is refused, even with the right
password, until the window ends, while every other address logs in; the answers never depend on whether the name
exists; a successful login clears the pair's count.
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from polartep_hub.accounts.password_rules import PasswordPolicy, common_passwords, password_problems
from tests.helpers.signup import api_signup, configure, stored

POLICY = PasswordPolicy(min_length=10)


# --- the rules --------------------------------------------------------------------------------------------------


def test_a_long_uncommon_password_without_the_name_is_accepted():
    assert password_problems("Glacier-Moraine-42", "alice", POLICY) == []


@pytest.mark.parametrize(
    ("password", "username", "fragment"),
    [
        ("short-pw", "alice", "at least 10 characters"),
        ("password123", "alice", "most commonly used"),
        ("PassWord123", "alice", "most commonly used"),  # case does not make it uncommon
        ("qwertyuiop", "alice", "most commonly used"),
        ("my-alice-password-2026", "alice", "must not contain your user name"),
        ("My-ALICE-Password-2026", "alice", "must not contain your user name"),
        ("x" * 1025, "alice", "at most 1024"),
    ],
)
def test_each_broken_rule_is_named_without_repeating_the_password(password, username, fragment):
    problems = password_problems(password, username, POLICY)
    assert any(fragment in problem for problem in problems)
    assert all(problem.startswith("password: ") and password not in problem for problem in problems)


def test_short_user_names_are_not_searched_for_in_passwords():
    assert password_problems("Glacier-Moraine-ab", "ab", POLICY) == []


def test_the_common_password_list_ships_ten_thousand_entries():
    assert len(common_passwords()) > 9000 and "123456" in common_passwords()


def test_the_minimum_length_is_a_setting():
    assert password_problems("Aurora-1", "alice", PasswordPolicy(min_length=8)) == []
    assert password_problems("Aurora-1", "alice", PasswordPolicy(min_length=12)) != []


@pytest.mark.parametrize(
    ("password", "fragment"),
    [("short-pw", "at least 10"), ("1234567890", "commonly used"), ("alice-in-wonderland", "user name")],
)
def test_signup_refuses_a_password_breaking_a_rule_and_stores_nothing(api, app, password, fragment):
    response = api_signup(api, password=password)
    assert response.status_code == 422
    assert "password" in response.json()["detail"] and fragment in response.json()["detail"]
    assert password not in response.json()["detail"]
    assert stored(app) == (0, 0)


def test_the_form_shows_the_password_problem_next_to_the_field(api, app):
    from tests.helpers.form_errors import field_error
    from tests.helpers.signup import form_signup

    response = form_signup(api, password="1234567890", password_confirm="1234567890")
    assert response.status_code == 422
    assert "commonly used" in field_error(response.text, "password")
    assert "1234567890" not in response.text
    assert stored(app) == (0, 0)


# --- approval at login ------------------------------------------------------------------------------------------

PASSWORD = "Glacier-Moraine-42"


def login(api, username: str, password: str):
    return api.post(
        "api/v1/auth/password", token="hub-token", json={"username": username, "password": password}
    )


def test_a_pending_account_is_told_it_awaits_approval_only_with_the_right_password(api):
    assert api_signup(api).status_code == 201
    right = login(api, "alice", PASSWORD)
    assert right.status_code == 403
    assert right.json()["reason"] == "pending_approval" and "awaits approval" in right.json()["detail"]
    wrong = login(api, "alice", "Not-The-Password-1")
    assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid username or password"}


def test_an_approved_signup_logs_in(api):
    assert api_signup(api).status_code == 201
    assert api.post("api/v1/accounts/alice/approve", token="ada-token").status_code == 200
    response = login(api, "alice", PASSWORD)
    assert response.status_code == 200 and response.json() == {"name": "alice", "admin": False}


# --- throttling (login_throttle.py) ------------------------------------------------------------------------------

STRANGER = "203.0.113.7"
OWN = "198.51.100.20"


def login_from(api, address: str, username: str, password: str):
    return api.post(
        "api/v1/auth/password",
        token="hub-token",
        json={"username": username, "password": password, "client_address": address},
    )


def _approved(api, app, attempts: int, seconds: int, per_address: int = 20) -> None:
    configure(
        app, login_attempts=attempts, login_lockout_seconds=seconds, login_attempts_per_address=per_address
    )
    assert api_signup(api).status_code == 201
    assert api.post("api/v1/accounts/alice/approve", token="ada-token").status_code == 200


def test_after_too_many_failures_from_one_address_that_address_waits_even_with_the_right_password(api, app):
    _approved(api, app, attempts=3, seconds=2)
    for _ in range(3):
        assert login_from(api, STRANGER, "alice", "Wrong-Password-9").status_code == 401
    throttled = login_from(api, STRANGER, "alice", PASSWORD)
    assert throttled.status_code == 429 and throttled.json()["reason"] == "throttled"
    detail = throttled.json()["detail"]
    assert (
        detail.startswith("too many login attempts from your address; try again after ") and "UTC" in detail
    )
    assert 1 <= int(throttled.headers["retry-after"]) <= 3
    time.sleep(2.1)
    assert login_from(api, STRANGER, "alice", PASSWORD).status_code == 200


def test_a_strangers_failures_never_lock_out_the_user_at_their_own_address(api, app):
    _approved(api, app, attempts=3, seconds=600)
    for _ in range(10):
        login_from(api, STRANGER, "alice", "Wrong-Password-9")
    assert login_from(api, STRANGER, "alice", PASSWORD).status_code == 429
    response = login_from(api, OWN, "alice", PASSWORD)
    assert response.status_code == 200 and response.json() == {"name": "alice", "admin": False}


def test_one_address_spraying_many_names_is_stopped_for_every_name(api, app):
    _approved(api, app, attempts=3, seconds=600, per_address=4)
    for name in ("bob", "carol", "dave", "erin"):
        assert login_from(api, STRANGER, name, "Wrong-Password-9").status_code == 401
    assert login_from(api, STRANGER, "alice", PASSWORD).status_code == 429
    assert login_from(api, OWN, "alice", PASSWORD).status_code == 200


def test_throttled_answers_are_the_same_for_existing_and_unknown_names(api, app):
    _approved(api, app, attempts=2, seconds=600)
    answers = {}
    for name in ("alice", "nobody"):
        for _ in range(2):
            wrong = login_from(api, STRANGER, name, "Wrong-Password-9")
            assert (wrong.status_code, wrong.json()) == (401, {"detail": "invalid username or password"})
        throttled = login_from(api, STRANGER, name, "Wrong-Password-9")
        body = throttled.json()
        # The time to try again differs by when each pair's window opened; nothing else may differ.
        answers[name] = (
            throttled.status_code,
            sorted(body),
            body["reason"],
            re.sub(r"[0-9]", "N", body["detail"]),
        )
    assert (
        answers["alice"]
        == answers["nobody"]
        == (
            429,
            ["detail", "reason", "retry_at"],
            "throttled",
            "too many login attempts from your address; try again after NNNN-NN-NN NN:NN:NN UTC",
        )
    )


def test_a_successful_login_clears_the_pair_count(api, app):
    _approved(api, app, attempts=3, seconds=600)
    for _ in range(2):
        assert login_from(api, OWN, "alice", "Wrong-Password-9").status_code == 401
    assert login_from(api, OWN, "alice", PASSWORD).status_code == 200
    for _ in range(2):
        assert login_from(api, OWN, "alice", "Wrong-Password-9").status_code == 401
    assert login_from(api, OWN, "alice", PASSWORD).status_code == 200  # 2 + 2 failures, never 3 in one window


def test_throttling_can_be_switched_off(api, app):
    _approved(api, app, attempts=0, seconds=600, per_address=0)
    for _ in range(10):
        login_from(api, STRANGER, "alice", "Wrong-Password-9")
    assert login_from(api, STRANGER, "alice", PASSWORD).status_code == 200


def test_counters_are_kept_in_the_database_without_names_or_addresses(api, app):
    from polartep_hub.service.models import RateCounter

    _approved(api, app, attempts=3, seconds=600)
    login_from(api, STRANGER, "alice", "Wrong-Password-9")
    with app.state.context.session() as session:
        rows = session.scalars(select(RateCounter)).all()
        keys = [row.key_digest for row in rows]
    assert len(rows) >= 2 and all(len(key) == 64 for key in keys)
    assert not any("alice" in key or STRANGER in key for key in keys)


def test_a_login_without_an_address_counts_against_the_hub(api, app):
    _approved(api, app, attempts=2, seconds=600)
    for _ in range(2):
        login(api, "alice", "Wrong-Password-9")
    assert login(api, "alice", PASSWORD).status_code == 429
    assert login_from(api, OWN, "alice", PASSWORD).status_code == 200
