"""The personal details an account holds (GDPR statement: name, e-mail, phone, organisation and its location).

Rules this module guarantees:

* One validation for every way in (sign-up form, profile rectification, OIDC claims, admin API): text is
  NFC-normalised and stripped; control and format characters are refused; each field has a length bound; e-mails
  are checked for syntax (no DNS lookup) and stored in their normalised form; the phone number is optional and made
  of digits with ``+ ( ) . - /`` and spaces.
* Errors are ``ValueError`` subclasses whose message names the field and the rule but never repeats the input.
* Markup is not refused (a name may contain ``<``); it is escaped wherever it is shown (``pages.py``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_PHONE_LENGTH = 40
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-/]{3,39}")


class PersonalDetailError(ValueError):
    """A personal detail is not acceptable; the message names the field and what to fix."""


def clean_text(value: str, field: str, *, max_length: int = MAX_NAME_LENGTH, required: bool = True) -> str:
    """``value`` NFC-normalised and stripped, or ``PersonalDetailError`` naming ``field``."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        if required:
            raise PersonalDetailError(f"{field}: must not be empty")
        return ""
    if len(text) > max_length:
        raise PersonalDetailError(f"{field}: at most {max_length} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        raise PersonalDetailError(f"{field}: must not contain control or invisible formatting characters")
    return text


def clean_email(value: str, field: str = "email") -> str:
    """The normalised e-mail address, or ``PersonalDetailError`` saying what is wrong with it."""
    text = clean_text(value, field, max_length=MAX_EMAIL_LENGTH)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        # email-validator's messages describe the problem without echoing the whole address.
        raise PersonalDetailError(f"{field}: not a valid e-mail address ({error})") from None
    return result.normalized


def clean_phone(value: str | None, field: str = "phone") -> str | None:
    """The phone number, None when not given, or ``PersonalDetailError``."""
    if value is None:
        return None
    text = clean_text(value, field, max_length=MAX_PHONE_LENGTH, required=False)
    if not text:
        return None
    if not _PHONE.fullmatch(text):
        raise PersonalDetailError(
            f"{field}: use digits, spaces and + ( ) . - / only, 4 to {MAX_PHONE_LENGTH} characters"
        )
    return text


def _named(field: str, max_length: int = MAX_NAME_LENGTH):
    return AfterValidator(lambda value: clean_text(value, field, max_length=max_length))


# The OpenAPI document states the non-empty rule (at least one character that is not white space); the check, with
# its message naming the field, stays clean_text's, so forms and the API say the same thing.
_NOT_BLANK = {"minLength": 1, "pattern": r"\S"}
FullName = Annotated[
    str, Field(max_length=4 * MAX_NAME_LENGTH, json_schema_extra=_NOT_BLANK), _named("full_name")
]
Organisation = Annotated[
    str, Field(max_length=4 * MAX_NAME_LENGTH, json_schema_extra=_NOT_BLANK), _named("organisation")
]
OrganisationLocation = Annotated[
    str, Field(max_length=4 * MAX_NAME_LENGTH, json_schema_extra=_NOT_BLANK), _named("organisation_location")
]
Email = Annotated[
    str,
    Field(max_length=4 * MAX_EMAIL_LENGTH, json_schema_extra={**_NOT_BLANK, "format": "email"}),
    AfterValidator(clean_email),
]
Phone = Annotated[str | None, Field(max_length=4 * MAX_PHONE_LENGTH), AfterValidator(clean_phone)]


class PersonalDetails(BaseModel):
    """Every personal detail of an account, validated (request bodies use it or a part of it)."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName
    email: Email
    organisation: Organisation
    organisation_location: OrganisationLocation
    phone: Phone = None


class PersonalDetailsUpdate(BaseModel):
    """A rectification: only the fields given change (at least one)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    full_name: FullName | None = None
    email: Email | None = None
    organisation: Organisation | None = None
    organisation_location: OrganisationLocation | None = None
    phone: Phone = None
