"""The processors in a user's export, and the erasure step: withdraw or transfer (through the service app)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from polartep_hub.accounts import store as accounts
from polartep_hub.processors.builtin import BUILTIN_PROCESSORS
from polartep_hub.processors.models import Processor, ProcessorRun, ProcessorVersion
from polartep_hub.projects import store as projects
from polartep_hub.service.config import ServiceConfig
from tests.helpers.processor_registry import definition, publish_body
from tests.helpers.service_fakes import PREFIX, RecordingHubAPI


@pytest.fixture
def service_config(database_url: str, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        prefix=PREFIX, database_url=database_url, default_plan="trial", processors_dir=tmp_path / "processors"
    )


@pytest.fixture
def processors(api, app):
    """alice owns: mine (private), shared (projects: polar), public (public, run by bob), and a version of nothing
    else; bob ran 'public'."""
    app.state.context.hub_api = RecordingHubAPI()
    with app.state.context.session() as session:
        for name in ("alice", "bob"):
            accounts.get_or_create_account(session, name, default_plan="trial")
        session.commit()
        projects.create_project(session, "polar", owner="alice")
    for pid, fields in (
        ("mine", {"visibility": "private"}),
        ("shared", {"visibility": "projects", "projects": ["polar"]}),
        ("public", {"visibility": "public"}),
        ("unused-public", {"visibility": "public"}),
    ):
        answer = api.post(
            "api/v1/processors", token="alice-token", json=publish_body(definition(pid, **fields))
        )
        assert answer.status_code == 201, answer.text
    with app.state.context.session() as session:
        bob = accounts.get_account(session, "bob")
        alice = accounts.get_account(session, "alice")
        versions = {v.processor.name: v for v in session.scalars(select(ProcessorVersion))}
        for pid, invoker in (("public", bob), ("mine", alice), ("shared", bob)):
            session.add(
                ProcessorRun(
                    id=str(uuid.uuid4()),
                    version_id=versions[pid].id,
                    invoker_id=invoker.id,
                    status="successful",
                    inputs={},
                    timeout_seconds=60,
                )
            )
        session.commit()


def state(app) -> dict[str, tuple[str | None, bool, str]]:
    with app.state.context.session() as session:
        rows = session.execute(
            select(Processor.name, Processor.owner_id, Processor.withdrawn_at, Processor.visibility).where(
                Processor.name.not_in(BUILTIN_PROCESSORS)  # the platform's own (echo): no account's to erase
            )
        ).all()
        names = {a.id: a.name for a in session.scalars(select(accounts.Account))}
        return {
            name: (names.get(owner), withdrawn is not None, visibility)
            for name, owner, withdrawn, visibility in rows
        }


def test_the_export_lists_the_users_processors_and_versions(api, processors):
    document = api.get("api/v1/me/export", token="alice-token").json()
    by_name = {p["processor"]: p for p in document["processors"]}
    assert sorted(by_name) == ["mine", "public", "shared", "unused-public"]
    assert (
        by_name["shared"]["visibility"],
        by_name["shared"]["versions"],
        by_name["shared"]["shared_with_projects"],
    ) == (
        "projects",
        1,
        ["polar"],
    )
    assert sorted(v["processor"] for v in document["processor_versions"]) == [
        "mine",
        "public",
        "shared",
        "unused-public",
    ]
    assert document["not_yet_held"] == {}
    # Bob's export has his runs of alice's processors, not alice's processors.
    bob = api.get("api/v1/me/export", token="bob-token").json()
    assert (bob["processors"], len(bob["processor_runs"])) == ([], 2)


def test_withdraw_keeps_what_others_ran_and_deletes_the_rest(api, app, processors):
    erased = api.request(
        "DELETE", "api/v1/me", token="alice-token", json={"confirm": "alice", "processors": "withdraw"}
    )
    assert erased.status_code == 200, erased.text
    assert state(app) == {"public": (None, True, "private"), "shared": (None, True, "private")}
    with app.state.context.session() as session:
        assert len(session.scalars(select(ProcessorRun)).all()) == 2  # bob's runs keep their history
    # Nobody but administrators sees a withdrawn processor, and nobody may run it.
    assert api.get("api/v1/processors/public", token="bob-token").status_code == 404
    seen = api.get("api/v1/processors/public", token="ada-token").json()
    assert (seen["owner"], seen["withdrawn"], seen["may_run"]) == (None, True, False)


def test_transfer_hands_shared_processors_on_and_withdraws_private_ones(api, app, processors):
    erased = api.request(
        "DELETE",
        "api/v1/me",
        token="alice-token",
        json={"confirm": "alice", "processors": "transfer", "transfer_to": "bob"},
    )
    assert erased.status_code == 200, erased.text
    assert state(app) == {
        "shared": ("bob", False, "projects"),
        "public": ("bob", False, "public"),
        "unused-public": ("bob", False, "public"),
    }
    got = api.get("api/v1/processors/unused-public", token="bob-token").json()
    assert (got["owner"], got["may_change"]) == ("bob", True)
    assert api.post(
        "api/v1/processors", token="bob-token", json=publish_body(definition("public", "2.0.0"))
    ).json() == {"id": "public", "sequence": 2, "version": "2.0.0", "created": False}
