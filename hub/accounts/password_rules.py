"""Rules for new passwords chosen at sign-up, as NativeAuthenticator offers them, switched on.

Rules this module guarantees:

* A new password is at least ``PasswordPolicy.min_length`` characters (``POLARTEP_PASSWORD_MIN_LENGTH``) and at
  most ``MAX_PASSWORD_LENGTH``; it is not one of the 10,000 most common passwords (``data/common-passwords.txt``,
  compared case-insensitively); and it does not contain the user name (case-insensitively; for names of three or
  more characters, since a one- or two-letter name occurs in too many good passwords to be a useful rule).
* ``password_problems`` lists every broken rule; each message starts with ``password:`` and never repeats the
  password or any part of it.
* The list of common passwords is read once per process, lazily, and kept as a frozen set.

The common-password list is NativeAuthenticator 1.3.0's ``common-credentials.txt`` (BSD-3-Clause, Copyright (c)
2018, JupyterHub; itself from SecLists' 10k most common passwords, MIT), unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

COMMON_PASSWORDS_FILE = Path(__file__).with_name("data") / "common-passwords.txt"
MAX_PASSWORD_LENGTH = 1024
DEFAULT_MIN_LENGTH = 10
# Shorter user names are not checked against the password: "ab" is inside too many strong passwords.
MIN_USERNAME_LENGTH_CHECKED = 3


@cache
def common_passwords() -> frozenset[str]:
    """The shipped common passwords, case-folded."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip())


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy."""

    min_length: int = DEFAULT_MIN_LENGTH

    def describe(self) -> str:
        """The rules in one sentence, for forms."""
        return (
            f"At least {self.min_length} characters; not a commonly used password; "
            "must not contain your user name."
        )


def password_problems(password: str, username: str, policy: PasswordPolicy) -> list[str]:
    """Every rule ``password`` breaks for the account ``username`` (empty when it is acceptable)."""
    problems = []
    if len(password) < policy.min_length:
        problems.append(f"password: use at least {policy.min_length} characters")
    elif len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"password: use at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().casefold() in common_passwords():
        problems.append("password: this is one of the most commonly used passwords; choose another")
    name = username.casefold()
    if len(name) >= MIN_USERNAME_LENGTH_CHECKED and name in password.casefold():
        problems.append("password: must not contain your user name")
    return problems


def password_message(problems: list[str]) -> str:
    """Several broken rules as one message naming the field once."""
    return "password: " + "; ".join(problem.removeprefix("password: ") for problem in problems)
