"""The one domain-error -> HTTP table (``service/errors.py``): each error's exact status and body, and the document.

Each domain error is raised from a route of a small app with ``errors.install`` (the handlers the service uses), and
the answer is compared whole: status, body, and the headers that say when to retry.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from polartep_hub.accounts import approvals, password_reset, passwords, personal_data, signup
from polartep_hub.accounts import entitlements as subscriptions
from polartep_hub.accounts import login as login_throttle
from polartep_hub.accounts import oidc as oidc_accounts
from polartep_hub.accounts import store as accounts
from polartep_hub.projects import store as projects
from polartep_hub.service.web import errors

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

UNTIL = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)

# (the error, its status, its body, extra headers)
CASES: list[tuple[Exception, int, dict, dict]] = [
    (accounts.AccountError("cannot"), 400, {"detail": "cannot"}, {}),
    (
        accounts.InvalidAccountName("invalid account name 'X'"),
        400,
        {"detail": "invalid account name 'X'"},
        {},
    ),
    (accounts.UnknownPlan("unknown plan 'gold'"), 400, {"detail": "unknown plan 'gold'"}, {}),
    (
        accounts.AccountExists("account 'bo' already exists"),
        409,
        {"detail": "account 'bo' already exists"},
        {},
    ),
    (accounts.AccountNotFound.for_name("bo"), 404, {"detail": "no account 'bo'"}, {}),
    (accounts.SingleUserMode("only admin"), 409, {"detail": "only admin"}, {}),
    (accounts.AccountPendingApproval("awaits"), 403, {"detail": "awaits", "reason": "pending_approval"}, {}),
    (accounts.AccountBeingErased("erasing"), 403, {"detail": "erasing", "reason": "being_erased"}, {}),
    (
        accounts.AccountPasswordResetRequired("reset"),
        403,
        {"detail": "reset", "reason": "password_reset"},
        {},
    ),
    (
        login_throttle.LoginThrottled(UNTIL, 30),
        429,
        {
            "detail": "too many login attempts from your address; try again after 2026-12-01 12:30:00 UTC",
            "reason": "throttled",
            "retry_at": "2026-12-01T12:30:00+00:00",
        },
        {"retry-after": "30"},
    ),
    (
        passwords.PasswordHashBusy(),
        503,
        {
            "detail": "the service is checking too many passwords at once; try again in a few seconds",
            "reason": "busy",
        },
        {"retry-after": "2"},
    ),
    (subscriptions.UnknownSubscription("unknown ml2"), 400, {"detail": "unknown ml2"}, {}),
    (subscriptions.AlreadySubscribed("has ml"), 409, {"detail": "has ml"}, {}),
    (subscriptions.NotSubscribed("no ml"), 404, {"detail": "no ml"}, {}),
    (projects.ProjectError("owner: required"), 400, {"detail": "owner: required"}, {}),
    (projects.InvalidProjectName("bad name"), 400, {"detail": "bad name"}, {}),
    (projects.ReservedProjectName("name: reserved"), 422, {"detail": "invalid request: name: reserved"}, {}),
    (projects.InvalidProjectField("display_name: long"), 400, {"detail": "display_name: long"}, {}),
    (projects.ProjectNotFound("no project 'p'"), 404, {"detail": "no project 'p'"}, {}),
    (projects.MemberNotFound("not a member"), 404, {"detail": "not a member"}, {}),
    (projects.ProjectExists("taken"), 409, {"detail": "taken"}, {}),
    (projects.AlreadyMember("member"), 409, {"detail": "member"}, {}),
    (projects.LastOwner("last owner"), 409, {"detail": "last owner"}, {}),
    (projects.ProjectForbidden("owners only"), 403, {"detail": "owners only"}, {}),
    (
        projects.UnknownAccount("no account 'x': log in once"),
        404,
        {"detail": "no account 'x': log in once"},
        {},
    ),
    (personal_data.RectificationError("email: gone"), 422, {"detail": "invalid request: email: gone"}, {}),
    (personal_data.ErasureRefused("the administrator"), 409, {"detail": "the administrator"}, {}),
    (
        personal_data.ErasureInvalid("confirm: type it"),
        422,
        {"detail": "invalid request: confirm: type it"},
        {},
    ),
    (personal_data.ErasureIncomplete("hub down"), 503, {"detail": "hub down"}, {}),
    (password_reset.PasswordError("plain"), 400, {"detail": "plain"}, {}),
    (
        password_reset.PasswordError("new_password: short", status_code=422),
        422,
        {"detail": "invalid request: new_password: short"},
        {},
    ),
    (
        password_reset.PasswordError("slow down", status_code=429, headers={"Retry-After": "60"}),
        429,
        {"detail": "slow down"},
        {"retry-after": "60"},
    ),
    (password_reset.ResetLinkInvalid("not a link"), 400, {"detail": "not a link"}, {}),
    (password_reset.ResetLinkSpent("used"), 410, {"detail": "used"}, {}),
    (approvals.NotPending("approved already"), 409, {"detail": "approved already"}, {}),
    (oidc_accounts.IdentityConflict("two identities"), 409, {"detail": "two identities"}, {}),
    (
        signup.SignupRefused(422, {"password": "password: too short", "email": "email: bad"}),
        422,
        {"detail": "invalid request: password: too short; email: bad"},
        {},
    ),
    (
        signup.SignupRefused(429, {"signup": "too many"}, headers={"Retry-After": "600"}),
        429,
        {"detail": "too many"},
        {"retry-after": "600"},
    ),
]


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    return sqlite_database_url  # the document does not depend on the database kind


@pytest.fixture(scope="module")
def raising_client():
    app = FastAPI()
    errors.install(app)
    raised: dict[str, Exception] = {}

    @app.get("/raise/{index}")
    def raise_it(index: str) -> None:
        raise raised[index]

    @app.get("/typed/{number}")
    def typed(number: int) -> dict:
        return {"number": number}

    with TestClient(app, raise_server_exceptions=False) as client:
        client.raised = raised  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize(("error", "status", "body", "headers"), CASES, ids=lambda v: type(v).__name__)
def test_each_domain_error_has_its_status_and_body(raising_client, error, status, body, headers):
    index = str(len(raising_client.raised))
    raising_client.raised[index] = error
    response = raising_client.get(f"/raise/{index}")
    assert (response.status_code, response.json()) == (status, body)
    assert response.headers["content-type"] == "application/json"
    for name, value in headers.items():
        assert response.headers[name] == value
    if not headers:
        assert "retry-after" not in response.headers
    assert errors.status_for(error) == status


def _domain_errors(cls: type[Exception]) -> set[type[Exception]]:
    found = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("polartep_hub."):
            found.add(sub)
        found |= _domain_errors(sub)
    return found


def test_every_domain_error_is_in_the_table_and_in_these_cases():
    import polartep_hub.service.app  # noqa: F401  (imports every module that defines a domain error)

    domain = _domain_errors(accounts.AccountError) | {passwords.PasswordHashBusy, signup.SignupRefused}
    assert domain <= set(errors.ERROR_STATUS), sorted(c.__name__ for c in domain - set(errors.ERROR_STATUS))
    tested = {type(error) for error, *_ in CASES} | {
        personal_data.ErasurePending
    }  # 202: the routes answer it
    assert domain <= tested, sorted(c.__name__ for c in domain - tested)


def test_an_error_outside_the_table_is_a_programming_error():
    with pytest.raises(KeyError, match="ValueError is not in the service's error table"):
        errors.status_for(ValueError("x"))


def test_validation_errors_have_the_same_shape_and_name_the_field(raising_client):
    response = raising_client.get("/typed/seven")
    assert response.status_code == 422
    assert response.json() == {
        "detail": "invalid request: number: Input should be a valid integer, unable to parse string as an integer"
    }


def test_an_unexpected_error_is_a_bare_500(raising_client):
    raising_client.raised["boom"] = RuntimeError("secret internals")
    response = raising_client.get("/raise/boom")
    assert (response.status_code, response.json()) == (500, {"detail": "internal server error"})


def test_the_document_gives_every_error_answer_the_one_error_body(app):
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorOut"]["properties"]) == {"detail", "problems", "reason", "retry_at"}
    assert schemas["ErrorOut"]["required"] == ["detail"]
    operations = [(p, m, op) for p, ops in document["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 40
    for path, method, operation in operations:
        for code, answer in operation["responses"].items():
            if code[0] in "45":
                assert answer["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
                }, (method, path, code)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("get", "api/v1/me", {"200", "400", "401", "403", "409", "503"}),
        ("get", "api/v1/accounts", {"200", "401", "403", "503"}),
        ("post", "api/v1/password/forgot", {"202", "400", "413", "422", "429"}),
        ("get", "health", {"200", "503"}),
        (
            "delete",
            "api/v1/me",
            {"200", "202", "400", "401", "403", "409", "413", "422", "503"},
        ),
    ],
)
def test_the_document_lists_what_the_access_rules_and_the_body_can_answer(app, method, path, codes):
    from tests.helpers.service_fakes import PREFIX

    operation = app.openapi()["paths"][PREFIX + path][method]
    assert set(operation["responses"]) == codes


def test_the_erasure_confirmation_is_declared_in_the_document(app):
    schema = app.openapi()["components"]["schemas"]["SelfErasureRequest"]
    confirm = schema["properties"]["confirm"]
    assert (confirm["minLength"], confirm["maxLength"], confirm["pattern"]) == (1, 64, "^[a-z0-9._-]{1,64}$")
    assert schema["required"] == ["confirm", "processors"]
    assert schema["additionalProperties"] is False
