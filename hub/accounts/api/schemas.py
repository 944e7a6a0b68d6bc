"""Request and response bodies of the accounts' API (``accounts/api/accounts.py``) (pydantic models, published in the OpenAPI document).

Rules this module guarantees:

* Every request body is bounded and validated here: unknown fields are refused, account names follow
  ``account_names.ACCOUNT_NAME_PATTERN`` (user names are lower-cased first), passwords are at most 1024 characters.
* No response model has a field for a password or its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from polartep_hub.accounts.store import (
    ACCOUNT_NAME_PATTERN,
    ACCOUNT_NAME_RULE,
    AccountError,
    check_account_name,
)

MAX_PASSWORD_LENGTH = 1024
MIN_NEW_PASSWORD_LENGTH = 8


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _account_name(value: str) -> str:
    try:
        return check_account_name(value)
    except AccountError:
        # pydantic turns ValueError into a 422 entry; keep the message free of the input itself.
        raise ValueError(f"must be {ACCOUNT_NAME_RULE}") from None


AccountName = Annotated[str, Field(max_length=64, examples=["alice"]), AfterValidator(_account_name)]
UserName = Annotated[str, BeforeValidator(_lower), Field(max_length=64), AfterValidator(_account_name)]
PlanName = Annotated[str, Field(min_length=1, max_length=64, examples=["trial"])]

# The account-name rule as the OpenAPI document states it. Where it is only declared (json_schema_extra), the check
# stays the domain's, with its message: 400 naming the rule, or 404 for a name that no account can have.
ACCOUNT_NAME_SCHEMA = {"pattern": f"^{ACCOUNT_NAME_PATTERN}$"}
AccountNamePath = Annotated[
    str,
    Path(
        max_length=64, description="an account (JupyterHub user) name", json_schema_extra=ACCOUNT_NAME_SCHEMA
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PasswordLogin(_Body):
    """A user name and password to check (sent by the hub's authenticator)."""

    username: UserName
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    client_address: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="the address of the browser or client that is logging in, as the hub saw it (the throttle counts "
        "failures per address); without it the failures count against the hub's own address 'hub'",
    )


class LoginResult(BaseModel):
    name: str
    admin: bool


class AccountCreate(_Body):
    """A new account; without ``plan`` it gets the service's default plan."""

    name: AccountName
    password: Annotated[
        str | None, Field(min_length=MIN_NEW_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    ] = None
    admin: bool = False
    plan: PlanName | None = None


class AccountUpdate(_Body):
    """Changes to an account (only the plan, for now)."""

    plan: PlanName


class AccountOut(BaseModel):
    name: str
    admin: bool
    approved: bool
    plan: str
    plan_started_at: datetime
    created_at: datetime


class Me(BaseModel):
    name: str
    admin: bool
    plan: str
    plan_started_at: datetime
    profiles: list[str] = Field(description="The profiles this user may start, in catalogue order")


class Entitlements(BaseModel):
    name: str
    plan: str
    profiles: list[str] = Field(description="The profiles this user may start, in catalogue order")
    plan_display_name: str = ""
    plan_started_at: datetime | None = None
    plan_ends_at: datetime | None = Field(
        default=None, description="When a plan with a duration (Trial) ends"
    )
    plan_expired: bool = Field(default=False, description="The plan's duration is over: nothing may start")
    subscriptions: list[str] = Field(default_factory=list, description="Active subscriptions")
    message: str | None = Field(default=None, description="Why nothing (or less) is allowed, for the user")
    being_erased: bool = Field(
        default=False, description="The account's erasure has not finished: nothing may start"
    )
