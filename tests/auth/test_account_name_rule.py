"""One account-name rule (``service/accounts.py``): the hub's authenticators, sign-up and the service's settings
accept exactly the names it accepts (pure, no hub started)."""

from __future__ import annotations

import re

import pytest

from polartep_hub import account_names
from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.signup import signup_account_name
from polartep_hub.auth.oidc import PlatformOIDCAuthenticator
from polartep_hub.auth.platform_password import PlatformPasswordAuthenticator
from polartep_hub.service.config import ConfigError, ServiceConfig

NAMES = [
    "alice",
    "a",
    "a" * 64,
    "a" * 65,
    "ana.lima",
    "x_y-z",
    ".dot",
    "-dash",
    "_under",
    "Alice",
    "al ice",
    "zoë",
    "",
]


def account_name_ok(name: str) -> bool:
    try:
        accounts.check_account_name(name)
    except accounts.InvalidAccountName:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_the_oidc_login_accepts_exactly_the_account_names(name):
    assert bool(re.fullmatch(PlatformOIDCAuthenticator().username_pattern, name)) is account_name_ok(name)


@pytest.mark.parametrize("name", NAMES)
def test_the_password_login_and_signup_accept_exactly_the_account_names_starting_with_a_letter_or_digit(name):
    expected = account_name_ok(name) and name[:1].isalnum()
    assert bool(re.fullmatch(PlatformPasswordAuthenticator().username_pattern, name)) is expected
    try:
        signed_up = signup_account_name(name) == name
    except ValueError as error:
        assert str(error) == f"username: use {account_names.PASSWORD_LOGIN_NAME_RULE}"
        signed_up = False
    assert signed_up is expected


def test_login_names_are_folded_as_account_names():
    assert PlatformPasswordAuthenticator().normalize_username(" ＡＬＩＣＥ ") == "alice"
    assert accounts.canonical_account_name(" ＡＬＩＣＥ ") == "alice"


@pytest.mark.parametrize("name", [n for n in NAMES if n])  # empty: the default administrator name
def test_the_service_admin_user_setting_follows_the_rule(name):
    if account_name_ok(name):
        assert ServiceConfig.from_env({"POLARTEP_ADMIN_USER": name}).admin_user == name
    else:
        with pytest.raises(
            ConfigError, match=f"is not a valid account name \\({account_names.ACCOUNT_NAME_RULE}\\)"
        ):
            ServiceConfig.from_env({"POLARTEP_ADMIN_USER": name})
