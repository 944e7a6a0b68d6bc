"""The service's OpenAPI document is its contract: schemathesis finds no server error and no answer that contradicts it.

Each test runs schemathesis 4 (``tests/helpers/openapi_contract.py``: phases examples, coverage, fuzzing and stateful,
a fixed seed, deterministic generation, a time budget) over ``<prefix>api/v1/openapi.json`` of the service assembled
by ``create_app`` on a real PostgreSQL database, as one caller, with the checks not_a_server_error,
status_code_conformance, content_type_conformance, response_schema_conformance and response_headers_conformance.
A failure lists each contradiction with a curl line that reproduces it.

* As a user (``alice``): every operation. Self-erasure (``DELETE /me``) is exercised too: it needs the user name typed
  again as ``confirm``, which generated data does not hit, so alice stays for the whole run (asserted at the end).
* As an administrator (``ada``, the configured administrator, whom erasure refuses with 409): every operation;
  ``DELETE /accounts/{name}`` erases the throwaway accounts the run creates.
* As the hub: the hub-only and per-user routes (``/auth/...``, ``/users/{name}/...``).

The hub's REST API is an in-memory stand-in (``ContractHub``), so erasure, project groups and sign-up checks run
their real code paths; the identity seam is ``FakeIdentityProvider`` as in every service test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from polartep_hub.accounts import store as accounts
from polartep_hub.accounts.models import Account
from polartep_hub.accounts.passwords import Passwords
from polartep_hub.catalogue import Catalogue
from polartep_hub.service.app import create_app
from polartep_hub.service.config import ServiceConfig
from tests.helpers.fake_hub_groups import FakeHubGroups
from tests.helpers.openapi_contract import contract_failures
from tests.helpers.service_fakes import PREFIX, FakeIdentityProvider

pytestmark = pytest.mark.postgres

OPENAPI = f"{PREFIX}api/v1/openapi.json"
SEED = 20261201


class ContractHub(FakeHubGroups):
    """JupyterHub's REST API as the service uses it (groups, users, servers, sessions), in memory."""

    def user(self, name: str) -> dict[str, Any] | None:
        self._call("user", name)
        return {"name": name, "servers": {}} if name in self.users else None

    def stop_servers(self, name: str, *, within: float = 120.0) -> None:
        self._call("stop_servers", name)

    def request_stop_servers(self, name: str) -> None:
        self._call("request_stop_servers", name)

    def delete_user(self, name: str) -> None:
        self._call("delete_user", name)
        self.users.discard(name)

    def end_sessions(self, name: str) -> None:
        self._call("end_sessions", name)

    # Shares and servers of dashboards (dashboards/api.py): every server exists, nothing is shared.
    def shared_with(self, name: str) -> list[dict[str, Any]]:
        self._call("shared_with", name)
        return []

    def shares(self, owner: str, server: str) -> list[dict[str, Any]]:
        return []

    def grant_share(self, owner: str, server: str, *, user=None, group=None, scopes) -> dict[str, Any]:
        target = {"user": {"name": user}, "group": None} if user else {"user": None, "group": {"name": group}}
        return {**target, "scopes": scopes, "created_at": "2026-12-07T00:00:00Z"}

    def revoke_share(self, owner: str, server: str, *, user=None, group=None) -> None:
        self._call("revoke_share", owner)

    def revoke_all_shares(self, owner: str, server: str) -> None:
        self._call("revoke_all_shares", owner)

    def create_share_code(self, owner: str, server: str, *, scopes, expires_in: int) -> dict[str, Any]:
        return {"accept_url": "/hub/accept-share?code=x", "expires_at": "2026-12-14T00:00:00Z"}

    def start_server(self, owner: str, server: str, options: dict[str, Any]) -> int:
        return 202

    def remove_server(self, owner: str, server: str) -> None:
        self._call("remove_server", owner)

    def close(self) -> None:
        pass


@pytest.fixture
def database_url(postgres_database: str) -> Iterator[str]:
    from tests.helpers.service_app import reset_database

    reset_database(postgres_database)
    yield postgres_database


@pytest.fixture
def contract_app(
    database_url: str,
    catalogue: Catalogue,
    fake_hub: FakeIdentityProvider,
    fast_passwords: Passwords,
    tmp_path: Path,
) -> Iterator[FastAPI]:
    config = ServiceConfig(
        prefix=PREFIX,
        database_url=database_url,
        default_plan="trial",
        admin_user="ada",
        processors_dir=tmp_path / "processors",  # publishing is exercised too
        datasets_dir=str(tmp_path / "data"),
    )
    hub = ContractHub()
    hub.users.update({"alice", "bob", "ada", "dora"})
    app = create_app(config, catalogue, identity_provider=fake_hub, passwords=fast_passwords, hub_api=hub)  # type: ignore[arg-type]
    yield app
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()  # the run started the app's lifespan (background loops); end it with the test
    app.state.context.engine.dispose()


def _assert_no_contradictions(
    app: FastAPI, token: str, *, max_time: int, max_examples: int, **kwargs: Any
) -> None:
    run = contract_failures(
        app, OPENAPI, token=token, max_time=max_time, max_examples=max_examples, seed=SEED, **kwargs
    )
    print(run.report())
    assert run.operations > 0 and run.cases > 0, run.report()
    assert not run.failures and not run.errors, run.report()


def test_the_document_holds_for_a_user(contract_app: FastAPI) -> None:
    _assert_no_contradictions(contract_app, "alice-token", max_time=50, max_examples=25)
    with contract_app.state.context.session() as session:
        alice = session.scalar(select(Account).where(Account.name == "alice"))
        assert alice is not None and not accounts.is_being_erased(session, alice), (
            "the run erased its own user"
        )


def test_the_document_holds_for_an_administrator(contract_app: FastAPI) -> None:
    _assert_no_contradictions(contract_app, "ada-token", max_time=30, max_examples=15)


def test_the_document_holds_for_the_hub(contract_app: FastAPI) -> None:
    _assert_no_contradictions(
        contract_app, "hub-token", max_time=15, max_examples=15, include_path_regex=r"/api/v1/(auth|users)/"
    )


# --- what the contract runs found (exact answers, on PostgreSQL, which refuses NUL bytes in text) -----------------


def test_an_account_name_with_a_nul_byte_is_no_account_not_a_server_error(api) -> None:
    for path in ("api/v1/accounts/a%00b", "api/v1/accounts/a%00b/export"):
        response = api.get(path, token="ada-token")
        assert (response.status_code, response.json()) == (404, {"detail": "no account 'a\\x00b'"}), path


def test_an_oidc_subject_with_a_nul_byte_is_refused_by_the_schema(api) -> None:
    body = {"name": "olga", "issuer": "https://idp.example", "subject": "a\x00"}
    response = api.post("api/v1/auth/oidc", token="hub-token", json=body)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "invalid request: subject: String should match pattern '^[^\\x00-\\x1f\\x7f]+$'"},
    )
