"""The one account-name rule, shared by the hub's authenticators, the platform service's settings and the accounts.

It imports nothing of the platform, so the hub side and the service's configuration can read it without loading the
accounts' database models. ``accounts.store`` checks names by it; every other place takes its pattern from here.
"""

from __future__ import annotations

import unicodedata

ACCOUNT_NAME_PATTERN = r"[a-z0-9._-]{1,64}"
ACCOUNT_NAME_RULE = "1-64 characters of lower-case letters, digits, '.', '_' and '-'"
# Names that log in with a password, and so the names sign-up hands out, also start with a letter or digit (the
# platform authenticator's ``username_pattern``); accounts from an identity provider need not.
PASSWORD_LOGIN_NAME_PATTERN = rf"(?=[a-z0-9]){ACCOUNT_NAME_PATTERN}"
PASSWORD_LOGIN_NAME_RULE = f"{ACCOUNT_NAME_RULE}, starting with a letter or digit"


def fold_account_name(raw: str) -> str:
    """A typed user name folded as account names are (NFKC, case-folded, stripped), not yet checked; the hub's
    authenticators fold login names by this too, so the name typed at login is the account's."""
    return unicodedata.normalize("NFKC", raw).casefold().strip()
