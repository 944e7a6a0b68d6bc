"""The registry's REST API through the service app, on SQLite and PostgreSQL: publish, immutability, listing,
sharing, usage, the body limit, nothing stored on refusals, and concurrent publishes."""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from polartep_hub.accounts import store as accounts
from polartep_hub.processors import registry
from polartep_hub.processors.api import NOTEBOOK_BODY_BYTES
from polartep_hub.processors.builtin import BUILTIN_DIR, BUILTIN_PROCESSORS
from polartep_hub.processors.models import Processor, ProcessorRun, ProcessorShare, ProcessorVersion
from polartep_hub.processors.notebook_store import NotebookStore, sha256_of
from polartep_hub.projects import store as projects
from polartep_hub.projects.store import Actor
from polartep_hub.service.config import ServiceConfig
from polartep_hub.service.db import make_engine, make_sessionmaker
from tests.helpers.processor_registry import definition, notebook_bytes, publish_body
from tests.helpers.service_fakes import PREFIX


@pytest.fixture
def service_config(database_url: str, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        prefix=PREFIX, database_url=database_url, default_plan="trial", processors_dir=tmp_path / "processors"
    )


# The platform publishes its built-in processors (echo) at start; these tests count what users published.
BUILTIN_NOTEBOOKS = {sha256_of(path.read_bytes()) for path in BUILTIN_DIR.glob("*.ipynb")}


def counts(app) -> tuple[int, int, int]:
    """Processors, versions and shares that users published (the built-in ones left out)."""
    users = Processor.name.not_in(BUILTIN_PROCESSORS)
    with app.state.context.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Processor).where(users)),
            session.scalar(select(func.count()).select_from(ProcessorVersion).join(Processor).where(users)),
            session.scalar(select(func.count()).select_from(ProcessorShare)),
        )


def stored_files(tmp_path: Path) -> list[Path]:
    """The notebooks users published, in the store (the built-in ones left out)."""
    folder = tmp_path / "processors"
    return (
        sorted(p for p in folder.rglob("*.ipynb") if p.stem not in BUILTIN_NOTEBOOKS)
        if folder.exists()
        else []
    )


def publish(api, token="alice-token", **fields):
    notebook = fields.pop("notebook", None)
    return api.post("api/v1/processors", token=token, json=publish_body(definition(**fields), notebook))


def test_publish_get_list_and_versions(api, tmp_path):
    first = publish(api)
    assert first.status_code == 201, first.text
    assert first.json() == {"id": "sea-ice-extent", "sequence": 1, "version": "1.0.0", "created": True}
    again = publish(api, version="1.0.0")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "version: 1.0.0 is already published; versions are immutable: publish a version greater than 1.0.0"
    )
    lower = publish(api, version="0.9.0")
    assert lower.status_code == 409
    assert lower.json()["detail"].startswith("version: 0.9.0 is lower than the newest, 1.0.0")
    pre = publish(api, version="1.1.0-rc.1", notebook=notebook_bytes(body="result = 3\n"))
    assert pre.status_code == 201 and pre.json()["sequence"] == 2
    second = publish(api, version="1.1.0", title="Sea-ice extent v2")
    assert second.json() == {"id": "sea-ice-extent", "sequence": 3, "version": "1.1.0", "created": False}

    got = api.get("api/v1/processors/sea-ice-extent", token="alice-token").json()
    assert (got["title"], got["version"], got["sequence"], got["versions"], got["owner"]) == (
        "Sea-ice extent v2",
        "1.1.0",
        3,
        3,
        "alice",
    )
    assert (got["visibility"], got["may_change"], got["may_run"], got["definition"]["profile"]) == (
        "private",
        True,
        True,
        "small",
    )
    versions = api.get("api/v1/processors/sea-ice-extent/versions", token="alice-token").json()["versions"]
    assert [(v["sequence"], v["version"]) for v in versions] == [
        (1, "1.0.0"),
        (2, "1.1.0-rc.1"),
        (3, "1.1.0"),
    ]
    assert versions[0]["notebook_sha256"] == sha256_of(notebook_bytes())
    old = api.get("api/v1/processors/sea-ice-extent/versions/1.0.0", token="alice-token").json()
    assert (old["sequence"], old["definition"]["title"]) == (1, "Sea-ice extent")
    assert (
        api.get("api/v1/processors/sea-ice-extent/versions/2", token="alice-token").json()["version"]
        == "1.1.0-rc.1"
    )
    assert (
        api.get("api/v1/processors/sea-ice-extent/versions/latest", token="alice-token").json()["sequence"]
        == 3
    )
    assert api.get("api/v1/processors/sea-ice-extent/versions/9", token="alice-token").status_code == 404
    notebook = api.get("api/v1/processors/sea-ice-extent/versions/2/notebook", token="alice-token")
    assert notebook.status_code == 200
    assert notebook.content == notebook_bytes(body="result = 3\n")
    # Two distinct notebooks stored once each (versions 1 and 3 share their bytes).
    assert len(stored_files(tmp_path)) == 2

    listed = api.get("api/v1/processors", token="alice-token").json()["processors"]
    # echo: the platform's built-in public processor.
    assert [(p["id"], p["version"]) for p in listed] == [("echo", "1.0.0"), ("sea-ice-extent", "1.1.0")]
    # Bob sees nothing of a private processor: not listed, unknown, no notebook.
    assert [p["id"] for p in api.get("api/v1/processors", token="bob-token").json()["processors"]] == ["echo"]
    for path in ("", "/versions", "/versions/1", "/versions/1/notebook", "/usage"):
        answer = api.get(f"api/v1/processors/sea-ice-extent{path}", token="bob-token")
        assert answer.status_code == 404, path
        assert answer.json()["detail"] == "no processor 'sea-ice-extent' (or it is not shared with you)"
    # An administrator sees it.
    assert [p["id"] for p in api.get("api/v1/processors", token="ada-token").json()["processors"]] == [
        "echo",
        "sea-ice-extent",
    ]


def test_refused_publishes_store_nothing(api, app, tmp_path):
    bad = definition(title="")
    bad["inputs"]["threshold"]["maximum"] = "100"
    bad["inputs"]["undeclared"] = {"type": "string", "default": "x"}
    answer = api.post("api/v1/processors", token="alice-token", json=publish_body(bad))
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "invalid request: invalid processor definition: inputs.threshold.maximum: must be a number; "
        "title: must have at least 1 character; inputs.undeclared: is not declared in the notebook's parameters cell"
    )
    cases = [
        (
            {"definition": definition(), "notebook": "not base64!"},
            422,
            "notebook: must be the .ipynb file base64-encoded",
        ),
        (publish_body(definition(), b"hello"), 422, "notebook: is not a JSON notebook file (.ipynb)"),
        (publish_body(definition(profile="huge")), 422, "profile: must be a profile of the catalogue"),
        (
            publish_body(definition(visibility="projects", projects=["nowhere"])),
            422,
            "projects.0: no project 'nowhere' that you are a member of",
        ),
        ({"definition": definition()}, 422, "invalid request: notebook: Field required"),
    ]
    for body, status, detail in cases:
        answer = api.post("api/v1/processors", token="alice-token", json=body)
        assert answer.status_code == status, (detail, answer.text)
        assert detail in answer.json()["detail"]
    assert counts(app) == (0, 0, 0)
    assert stored_files(tmp_path) == []
    # A refused next version leaves the first one alone.
    assert publish(api).status_code == 201
    assert publish(api, version="1.0.1", profile="huge").status_code == 422
    assert publish(api, version="1.0.0", notebook=notebook_bytes(body="other = 1\n")).status_code == 409
    assert counts(app) == (1, 1, 0)
    assert len(stored_files(tmp_path)) == 1


def test_ids_of_others(api):
    assert publish(api).status_code == 201
    taken = publish(api, token="bob-token", version="2.0.0")
    assert taken.status_code == 409
    assert taken.json()["detail"] == "the processor id 'sea-ice-extent' is taken; choose another id"
    assert (
        api.request(
            "PUT",
            "api/v1/processors/sea-ice-extent/sharing",
            token="alice-token",
            json={"visibility": "public"},
        ).status_code
        == 200
    )
    seen = publish(api, token="bob-token", version="2.0.0")
    assert seen.status_code == 403
    assert seen.json()["detail"].startswith("processor 'sea-ice-extent' is another account's")
    # The hub has no account to own a processor.
    assert publish(api, token="hub-token", pid="hubs").status_code == 403


def test_sharing_with_projects_and_public(api, app):
    with app.state.context.session() as session:
        for name in ("alice", "bob"):
            accounts.get_or_create_account(session, name, default_plan="trial")
        session.commit()
        projects.create_project(session, "glaciology", owner="alice")
        projects.create_project(session, "bobs", owner="bob")
    assert publish(api, visibility="projects", projects=["glaciology"]).status_code == 201
    assert api.get("api/v1/processors/sea-ice-extent", token="bob-token").status_code == 404
    # Sharing with a project one is not a member of is refused like an unknown project.
    refused = api.request(
        "PUT",
        "api/v1/processors/sea-ice-extent/sharing",
        token="alice-token",
        json={"visibility": "projects", "projects": ["bobs"]},
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "invalid request: invalid processor definition: projects.0: no project 'bobs' that you are a member of"
    )
    with app.state.context.session() as session:
        projects.add_member(session, "glaciology", "bob", role="member", actor=Actor("alice", False))
    seen = api.get("api/v1/processors/sea-ice-extent", token="bob-token").json()
    assert (seen["may_change"], seen["may_run"], seen["projects"]) == (False, True, [])
    assert api.get("api/v1/processors/sea-ice-extent", token="alice-token").json()["projects"] == [
        "glaciology"
    ]
    # Bob may see it but not change it, nor read its notebook or usage.
    for method, path, body in (
        ("PUT", "/sharing", {"visibility": "public"}),
        ("GET", "/versions/1/notebook", None),
        ("GET", "/usage", None),
    ):
        answer = api.request(method, f"api/v1/processors/sea-ice-extent{path}", token="bob-token", json=body)
        assert answer.status_code == 403, path
        assert (
            answer.json()["detail"]
            == "only the owner of processor 'sea-ice-extent' and administrators may do this"
        )
    mismatched = api.request(
        "PUT",
        "api/v1/processors/sea-ice-extent/sharing",
        token="alice-token",
        json={"visibility": "public", "projects": ["glaciology"]},
    )
    assert mismatched.status_code == 422
    private = api.request(
        "PUT", "api/v1/processors/sea-ice-extent/sharing", token="alice-token", json={"visibility": "private"}
    )
    assert (private.status_code, private.json()["projects"]) == (200, [])
    assert api.get("api/v1/processors/sea-ice-extent", token="bob-token").status_code == 404
    # A next version without "visibility" keeps the current setting; one with it sets it.
    document = definition(version="1.0.1")
    del document["visibility"]
    api.request(
        "PUT", "api/v1/processors/sea-ice-extent/sharing", token="alice-token", json={"visibility": "public"}
    )
    assert api.post("api/v1/processors", token="alice-token", json=publish_body(document)).status_code == 201
    assert api.get("api/v1/processors/sea-ice-extent", token="bob-token").json()["visibility"] == "public"
    assert publish(api, version="1.0.2", visibility="private").status_code == 201
    assert api.get("api/v1/processors/sea-ice-extent", token="bob-token").status_code == 404


def test_usage_counts_runs_and_users_not_their_inputs(api, app):
    assert publish(api).status_code == 201
    assert publish(api, version="1.1.0").status_code == 201
    with app.state.context.session() as session:
        ids = {
            n: accounts.get_or_create_account(session, n, default_plan="trial").id
            for n in ("alice", "bob", "carl")
        }
        v1, v2 = session.scalars(
            select(ProcessorVersion)
            .join(Processor)
            .where(Processor.name == "sea-ice-extent")
            .order_by(ProcessorVersion.sequence)
        ).all()
        for version, invoker, state in (
            (v1, "bob", "successful"),
            (v1, "bob", "failed"),
            (v2, "carl", "successful"),
            (v2, "alice", "running"),
        ):
            session.add(
                ProcessorRun(
                    id=str(uuid.uuid4()),
                    version_id=version.id,
                    invoker_id=ids[invoker],
                    status=state,
                    inputs={"secret": "bob's input"},
                    timeout_seconds=60,
                )
            )
        session.commit()
    usage = api.get("api/v1/processors/sea-ice-extent/usage", token="alice-token")
    assert usage.json() == {
        "runs": 4,
        "users": 3,
        "by_state": {"failed": 1, "running": 1, "successful": 2},
        "by_version": [{"sequence": 1, "runs": 2, "users": 1}, {"sequence": 2, "runs": 2, "users": 2}],
    }
    assert "secret" not in usage.text


def test_schema_draft_and_validate_routes(api):
    schema = api.get("api/v1/processors/schema", token="bob-token").json()
    assert schema["properties"]["id"]["pattern"] == "^[a-z][a-z0-9-]{1,62}$"
    notebook64 = base64.b64encode(notebook_bytes()).decode()
    draft = api.post(
        "api/v1/processors/draft",
        token="bob-token",
        json={"notebook": notebook64, "filename": "extent.ipynb"},
    )
    assert draft.status_code == 200
    assert draft.json()["inputs"]["threshold"] == {
        "type": "integer",
        "description": "sea-ice concentration threshold, percent",
        "default": 15,
    }
    valid = api.post(
        "api/v1/processors/validate",
        token="bob-token",
        json={"definition": draft.json(), "notebook": notebook64},
    )
    assert valid.json() == {"valid": True, "problems": []}
    wrong = dict(draft.json(), timeout=1, inputs={"nope": {"type": "string"}})
    invalid = api.post(
        "api/v1/processors/validate", token="bob-token", json={"definition": wrong, "notebook": notebook64}
    )
    assert invalid.json() == {
        "valid": False,
        "problems": [
            "timeout: must be at least 10",
            "inputs.nope: is not declared in the notebook's parameters cell",
        ],
    }


def test_the_publish_route_takes_notebooks_past_the_default_body_limit(api, app):
    big = notebook_bytes(body="# " + "x" * 2_000_000 + "\n")
    assert publish(api, notebook=big).status_code == 201
    # ... up to its own limit; other routes keep the default (64 KiB).
    too_big = api.post(
        "api/v1/processors",
        token="alice-token",
        content=b"{}",
        headers={"Content-Length": str(NOTEBOOK_BODY_BYTES + 1), "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json() == {"detail": f"request body too large (the limit is {NOTEBOOK_BODY_BYTES} bytes)"}
    other = api.request(
        "PUT",
        "api/v1/processors/sea-ice-extent/sharing",
        token="alice-token",
        json={"visibility": "public", "x": "y" * 70_000},
    )
    assert other.status_code == 413
    assert counts(app) == (1, 1, 0)


def test_without_a_processors_folder_publishing_answers_503(app_without_folder_api):
    answer = publish(app_without_folder_api)
    assert answer.status_code == 503
    assert (
        answer.json()["detail"]
        == "this service has no processors folder (POLARTEP_PROCESSORS_DIR); ask the operator"
    )


@pytest.fixture
def app_without_folder_api(database_url, catalogue, fake_hub, fast_passwords):
    from fastapi.testclient import TestClient

    from polartep_hub.service.app import create_app
    from tests.helpers.service_fakes import ApiClient

    app = create_app(
        ServiceConfig(prefix=PREFIX, database_url=database_url, default_plan="trial"),
        catalogue,
        identity_provider=fake_hub,
        passwords=fast_passwords,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield ApiClient(client)
    app.state.context.engine.dispose()


# --- concurrent publishes ---------------------------------------------------------------------------------------


def _race(database_url, tmp_path, versions, pid="raced"):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        accounts.get_or_create_account(session, "alice", default_plan="trial")
        session.commit()
    store = NotebookStore(tmp_path / "notebooks")
    results: list[object] = []
    barrier = threading.Barrier(len(versions))

    def one(version):
        barrier.wait()
        try:
            results.append(
                registry.publish(
                    sessions,
                    store,
                    actor=Actor("alice", False),
                    document=definition(pid, version),
                    notebook=notebook_bytes(),
                    profiles=["small", "interactive"],
                )
            )
        except registry.RegistryError as error:
            results.append(error)

    threads = [threading.Thread(target=one, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with sessions() as session:
        rows = session.execute(
            select(ProcessorVersion.sequence, ProcessorVersion.version).order_by(ProcessorVersion.sequence)
        ).all()
    engine.dispose()
    return results, rows


def test_concurrent_publishes_get_consecutive_sequences(database_url, tmp_path):
    # Each thread publishes a different version; whichever order they commit in, the sequences are 1..n and the
    # semver order holds in that sequence (a version lower than one committed before it is refused).
    versions = [f"1.0.{i}" for i in range(8)]
    results, rows = _race(database_url, tmp_path, versions)
    published = [r for r in results if isinstance(r, registry.Published)]
    refused = [r for r in results if not isinstance(r, registry.Published)]
    assert all(isinstance(r, registry.VersionConflict) for r in refused), refused
    assert [seq for seq, _ in rows] == list(range(1, len(published) + 1))
    assert sorted(p.sequence for p in published) == list(range(1, len(published) + 1))
    keys = [tuple(int(x) for x in v.split(".")) for _, v in rows]
    assert keys == sorted(keys)
    assert sum(1 for p in published if p.created) == 1


def test_concurrent_publishes_of_the_same_version_make_one(database_url, tmp_path):
    results, rows = _race(database_url, tmp_path, ["2.0.0"] * 6)
    assert rows == [(1, "2.0.0")]
    assert sum(isinstance(r, registry.Published) for r in results) == 1
    assert sum(isinstance(r, registry.VersionConflict) for r in results) == 5


def test_the_list_query_says_what_may_see_says(database_url):
    """``registry.visible`` (one query) agrees with ``access.may_see`` (the rule) for every kind of processor and
    caller: owner, project member, stranger, administrator, the hub, a user without an account yet."""
    from polartep_hub.processors import access
    from polartep_hub.service.orm import utcnow

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        for name in ("owner", "member", "stranger", "root"):
            session.add(accounts.new_account(name, plan="standard", is_admin=(name == "root")))
        session.commit()
        projects.create_project(session, "glaciology", owner="owner")
        projects.add_member(session, "glaciology", "member", role="member", actor=Actor("owner", False))
        projects.create_project(session, "elsewhere", owner="stranger")
        owner = accounts.get_account(session, "owner")
        stranger = accounts.get_account(session, "stranger")
        for index, (visibility, shared, withdrawn, by) in enumerate(
            [
                ("private", (), False, owner),
                ("projects", ("glaciology",), False, owner),
                ("projects", ("elsewhere",), False, owner),
                ("projects", (), False, owner),
                ("public", (), False, owner),
                ("public", (), True, None),
                ("projects", ("glaciology",), True, None),
                ("private", (), False, stranger),
                ("public", (), False, None),  # a built-in processor: no owner
            ]
        ):
            processor = Processor(
                name=f"p{index}-{visibility}",
                owner_id=by.id if by else None,
                visibility=visibility,
                withdrawn_at=utcnow() if withdrawn else None,
            )
            session.add(processor)
            session.flush()
            for project in shared:
                session.add(
                    ProcessorShare(
                        processor_id=processor.id, project_id=projects.get_project(session, project).id
                    )
                )
        session.commit()
        everything = session.scalars(select(Processor).order_by(Processor.name)).all()
        for actor in (
            Actor("owner", False),
            Actor("member", False),
            Actor("stranger", False),
            Actor("root", True),
            Actor(None, True),
            Actor("ghost", False),
        ):
            expected = [p.name for p in everything if access.may_see(session, p, actor)]
            assert [p.name for p in registry.visible(session, actor)] == expected, actor
    engine.dispose()
