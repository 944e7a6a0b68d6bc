"""A user's personal data: export everything, rectify the details, erase the account (service API, SQLite and
PostgreSQL).

Completeness is checked against the schema itself: every table of ``Base.metadata`` is scanned for rows that refer
to the user (a foreign key to the account, or a text column holding the account name), independently of how the
export finds them, so a table added later without export support makes these tests fail.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String, Text, func, select

from polartep_hub.accounts import personal_data
from polartep_hub.accounts.models import Account, AccountSubscription, Consent, Erasure, PendingErasure
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.service.orm import Base, utcnow
from polartep_hub.usage.models import UsageInterval
from tests.helpers.service_fakes import RecordingHubAPI, user

T0 = datetime(2026, 10, 30, 22, 0, tzinfo=UTC)

ALICE = {
    "full_name": "Alice Liddell-Snow",
    "email": "alice.snow@polar.example",
    "organisation": "Arctic Sea Ice Lab",
    "organisation_location": "Longyearbyen, Svalbard",
    "phone": "+47 555 0142",
}
BOB = {
    "full_name": "Robert Bobson",
    "email": "rob@glacier.example",
    "organisation": "Glacier Institute",
    "organisation_location": "Reykjavik",
    "phone": "+354 555 0199",
}


@pytest.fixture
def hub_api(app) -> RecordingHubAPI:
    recording = RecordingHubAPI()
    app.state.context.hub_api = recording
    return recording


def _account(session, name: str, *, approved_by: str | None, password_hash: str | None, **details) -> Account:
    account = Account(
        name=name,
        plan="trial",
        plan_started_at=T0 - timedelta(days=40),
        created_at=T0 - timedelta(days=40),
        password_hash=password_hash,
        approved=True,
        approved_at=T0 - timedelta(days=39),
        approved_by=approved_by,
        **details,
    )
    session.add(account)
    session.flush()
    return account


def _usage(session, owner: str, key: str, cores: float, start: datetime, hours: float | None) -> None:
    session.add(
        UsageInterval(
            account_name=owner,
            kind="server",
            source_key=key,
            cores=cores,
            memory_bytes=4 << 30,
            started_at=start,
            stopped_at=None if hours is None else start + timedelta(hours=hours),
        )
    )


@pytest.fixture
def seeded(app) -> dict[str, int]:
    """Alice and Bob with details, consents, subscriptions, common and separate projects, and usage; ada approved
    Alice, Alice approved Bob."""
    with app.state.context.session() as session:
        _account(session, "ada", approved_by=None, password_hash=None, full_name="Ada Admin", is_admin=True)
        alice = _account(
            session, "alice", approved_by="ada", password_hash="$argon2id$v=19$alice-secret", **ALICE
        )
        bob = _account(session, "bob", approved_by="alice", password_hash="$argon2id$v=19$bob-secret", **BOB)
        for account in (alice, bob):
            for document in ("terms", "privacy"):
                session.add(Consent(account=account, document=document, version="2026-11-01", accepted_at=T0))
            session.add(AccountSubscription(account=account, subscription="development", started_at=T0))
        session.add(
            AccountSubscription(
                account=alice,
                subscription="ml",
                started_at=T0 - timedelta(days=30),
                ended_at=T0 - timedelta(days=1),
            )
        )
        shared = Project(name="sea-ice", display_name="Sea ice together", description="common work")
        solo = Project(name="melt-ponds", display_name="Melt ponds", description="a one-person project")
        glacier = Project(name="glaciers", display_name="Glaciers", description="led by the other member")
        session.add_all([shared, solo, glacier])
        session.flush()
        session.add_all(
            [
                ProjectMember(project=shared, account=alice, role="owner", added_at=T0),
                ProjectMember(project=shared, account=bob, role="member", added_at=T0 + timedelta(hours=1)),
                ProjectMember(project=solo, account=alice, role="owner", added_at=T0),
                ProjectMember(project=glacier, account=bob, role="owner", added_at=T0),
                ProjectMember(project=glacier, account=alice, role="member", added_at=T0),
            ]
        )
        # Usage across a month boundary, for both users, one interval still open.
        _usage(session, "alice", "srv/alice/1", 2.0, T0, 5)
        _usage(session, "alice", "srv/alice/2", 4.0, T0 + timedelta(days=3), 1.5)
        _usage(session, "alice", "srv/alice/3", 1.0, T0 + timedelta(days=4), None)
        _usage(session, "bob", "srv/bob/1", 8.0, T0 + timedelta(hours=1), 2)
        session.commit()
        return {"alice": alice.id, "bob": bob.id}


# --- scanning the database, independently of personal_data.py -----------------------------------------------------


def _text_columns(table):
    return [c for c in table.columns if isinstance(c.type, (String, Text))]


def rows_referring_to(session, account_id: int, name: str) -> dict[str, list[dict]]:
    """Every row of every table that refers to the account: by id through a foreign key, or by name in a text
    column (except declared mentions of a name in someone else's row)."""
    found: dict[str, list[dict]] = defaultdict(list)
    for table in Base.metadata.sorted_tables:
        conditions = []
        if table.name == "accounts":
            conditions.append(table.c.id == account_id)
        for fk in table.foreign_keys:
            if fk.column.table.name == "accounts":
                conditions.append(fk.parent == account_id)
        for column in _text_columns(table):
            if (table.name, column.name) not in personal_data.NAME_MENTIONS:
                conditions.append(column == name)
        for condition in conditions:
            for row in session.execute(select(table).where(condition)).mappings():
                if dict(row) not in found[table.name]:
                    found[table.name].append(dict(row))
    return found


def _as_json(value):
    return value.isoformat() if isinstance(value, datetime) else value


def monthly_core_seconds(session, ids: set[int] | None = None) -> dict[str, float]:
    """Cores x seconds per month of the closed intervals (or of the intervals ``ids``)."""
    totals: dict[str, float] = defaultdict(float)
    query = select(UsageInterval).where(UsageInterval.stopped_at.is_not(None))
    if ids is not None:
        query = select(UsageInterval).where(UsageInterval.id.in_(ids))
    for row in session.scalars(query):
        totals[row.started_at.strftime("%Y-%m")] += (
            row.cores * (row.stopped_at - row.started_at).total_seconds()
        )
    return dict(totals)


def text_cells(session) -> list[tuple[str, str, str]]:
    """(table, column, value) for every non-empty text cell of the whole database."""
    cells = []
    for table in Base.metadata.sorted_tables:
        columns = _text_columns(table)
        if not columns:
            continue  # e.g. dataset_grants: ids and a time only
        for row in session.execute(select(*columns)):
            for column, value in zip(columns, row, strict=True):
                if value:
                    cells.append((table.name, column.name, value))
    return cells


def personal_strings(name: str, details: dict[str, str]) -> list[str]:
    return [name, *details.values()]


# --- export ----------------------------------------------------------------------------------------------------------


def test_every_table_is_either_exported_or_declared_free_of_personal_rows():
    exported = {table.name for table in personal_data.personal_tables()}
    declared = set(personal_data.NOT_PERSONAL_TABLES)
    assert exported.isdisjoint(declared)
    assert exported | declared == set(Base.metadata.tables), (
        "a table is neither exported nor declared impersonal"
    )


def test_export_contains_every_record_of_the_user_and_nothing_of_others(api, app, seeded):
    response = api.get("api/v1/me/export", token="alice-token")

    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "alice" in disposition
    document = response.json()
    with app.state.context.session() as session:
        referring = rows_referring_to(session, seeded["alice"], "alice")
    assert set(referring) == {
        "accounts",
        "consents",
        "subscriptions",
        "project_members",
        "usage_intervals",
        "usage_month_totals",  # the ledger's running totals of the closed intervals (usage/ledger.py)
        "plan_periods",  # the plan history (accounts/plan_history.py)
    }
    for table, rows in referring.items():
        section = document[personal_data.SECTIONS.get(table, table)]
        exported = [section] if isinstance(section, dict) else section
        assert len(exported) == len(rows), table
        for row in rows:
            expected = {
                column: _as_json(value)
                for column, value in row.items()
                if (table, column) not in personal_data.SECRET_COLUMNS
                and (table, column) not in personal_data.NAME_MENTIONS
            }
            assert any(expected.items() <= item.items() for item in exported), (table, expected)

    text = response.text.lower()
    for value in personal_strings("bob", BOB):
        assert value.lower() not in text, f"another user's data in the export: {value}"
    assert "ada" not in json.dumps(document["account"]).lower()  # who approved: another account, redacted
    assert document["account"]["approved_by"] == "another account"
    assert "alice-secret" not in text
    assert document["account"]["password_hash_held"] is True
    assert "hash is held" in document["account"]["password"]


def test_export_sections_read_as_the_user_would_expect(api, seeded):
    document = api.get("api/v1/me/export", token="alice-token").json()

    assert document["format"] == personal_data.EXPORT_FORMAT
    assert {k: document["account"][k] for k in ALICE} == ALICE
    assert sorted((s["subscription"], s["active"]) for s in document["subscriptions"]) == [
        ("development", True),
        ("ml", False),
    ]
    assert sorted((m["project"], m["role"]) for m in document["projects"]) == [
        ("glaciers", "member"),
        ("melt-ponds", "owner"),
        ("sea-ice", "owner"),
    ]
    assert sorted(c["document"] for c in document["consents"]) == ["privacy", "terms"]
    assert sorted(u["core_seconds"] or 0 for u in document["usage_intervals"]) == [0, 4.0 * 5400, 2.0 * 18000]
    assert set(document["not_yet_held"]) == {"processors", "runs"}
    assert document["erasure"]["pending"] is False
    fates = {item["project"]: item["on_erasure"] for item in document["erasure"]["projects_you_own"]}
    assert fates["melt-ponds"].startswith("deleted") and fates["sea-ice"].startswith("ownership passes")


def test_an_admin_exports_any_account_and_users_only_their_own(api, seeded):
    by_admin = api.get("api/v1/accounts/bob/export", token="ada-token")
    assert by_admin.status_code == 200
    assert by_admin.json()["account"]["email"] == BOB["email"]
    assert api.get("api/v1/accounts/bob/export", token="alice-token").status_code == 403
    assert api.get("api/v1/accounts/nobody/export", token="ada-token").status_code == 404
    assert api.get("api/v1/me/export").status_code == 401


# --- rectification ---------------------------------------------------------------------------------------------------


def _stored(app, name: str) -> dict[str, str | None]:
    with app.state.context.session() as session:
        account = session.scalar(select(Account).where(Account.name == name))
        return {field: getattr(account, field) for field in ALICE}


def test_rectification_changes_only_the_fields_given(api, app, seeded):
    response = api.patch(
        "api/v1/me",
        token="alice-token",
        json={"email": "Alice.Snow@POLAR.example", "organisation": " Ice Lab "},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organisation"] == "Ice Lab"
    assert body["email"].endswith("@polar.example")  # the domain is normalised
    assert "password_hash" not in body
    stored = _stored(app, "alice")
    assert stored["full_name"] == ALICE["full_name"] and stored["organisation"] == "Ice Lab"


def test_rectification_with_phone_null_removes_the_phone(api, app, seeded):
    assert api.patch("api/v1/me", token="alice-token", json={"phone": None}).status_code == 200
    assert _stored(app, "alice")["phone"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address", "full_name": "Valid Name"}, "email"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"organisation": "   "}, "organisation"),
        ({"phone": "call me maybe"}, "phone"),
        ({"full_name": "Alice\u0000"}, "full_name"),
        ({"full_name": None}, "full_name"),
        ({"password_hash": "x"}, "password_hash"),
        ({}, "nothing to change"),
    ],
)
def test_bad_rectification_is_422_naming_the_field_and_stores_nothing(api, app, seeded, body, field):
    response = api.patch("api/v1/me", token="alice-token", json=body)

    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert "not-an-address" not in response.json()["detail"]
    assert _stored(app, "alice") == ALICE


def test_markup_in_a_name_is_stored_as_text(api, app, seeded):
    name = '<script>alert("x")</script> Alice'
    assert api.patch("api/v1/me", token="alice-token", json={"full_name": name}).status_code == 200
    assert _stored(app, "alice")["full_name"] == name


# --- erasure ---------------------------------------------------------------------------------------------------------

SELF_ERASURE = {"confirm": "alice", "processors": "withdraw"}


def erase_me(api, token: str = "alice-token", **body):
    return api.request("DELETE", "api/v1/me", token=token, json={**SELF_ERASURE, **body})


def test_erasure_leaves_no_personal_field_and_keeps_the_monthly_totals(api, app, seeded, hub_api):
    with app.state.context.session() as session:
        totals_before = monthly_core_seconds(session)
        closed = set(session.scalars(select(UsageInterval.id).where(UsageInterval.stopped_at.is_not(None))))
        intervals_before = session.scalar(select(func.count()).select_from(UsageInterval))
    assert len(totals_before) == 2  # October and November

    response = erase_me(api)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "erased" and body["requested_by"] == "self"
    assert (body["projects_deleted"], body["projects_handed_over"]) == (1, 1)
    assert "erased-" not in response.text  # the pseudonym is not handed out
    with app.state.context.session() as session:
        leftovers = [
            (table, column)
            for table, column, value in text_cells(session)
            for needle in personal_strings("alice", ALICE)
            if needle.lower() in value.lower()
        ]
        assert leftovers == []
        assert monthly_core_seconds(session, closed) == totals_before
        # The interval still open (its server was stopped by the erasure) is closed at the erasure.
        erased_at = session.scalars(select(Erasure.erased_at)).one()
        assert (
            session.scalar(select(UsageInterval.stopped_at).where(UsageInterval.id.not_in(closed)))
            == erased_at
        )
        assert session.scalar(select(func.count()).select_from(UsageInterval)) == intervals_before
        erasure = session.scalars(select(Erasure)).one()
        assert erasure.pseudonym.startswith("erased-") and erasure.requested_by == "self"
        owners = set(session.scalars(select(UsageInterval.account_name)))
        assert owners == {"bob", erasure.pseudonym}
        keys = set(session.scalars(select(UsageInterval.source_key)))
        assert f"srv/{erasure.pseudonym}/1" in keys and "srv/bob/1" in keys
        # Who approved Bob is pseudonymised the same way; Bob's own data is untouched.
        bob = session.scalar(select(Account).where(Account.name == "bob"))
        assert bob.approved_by == erasure.pseudonym and bob.email == BOB["email"]
        assert len(bob.consents) == 2 and len(bob.subscriptions) == 1
        # The shared project passes to Bob; Alice's solo project is gone; Bob's project stays his.
        projects = {
            p.name: {m.account.name: m.role for m in p.members} for p in session.scalars(select(Project))
        }
        assert projects == {"sea-ice": {"bob": "owner"}, "glaciers": {"bob": "owner"}}
        for model in (Consent, AccountSubscription, ProjectMember, PendingErasure):
            owners = session.scalars(select(model.account_id)).all()
            assert seeded["alice"] not in owners, model.__tablename__
    assert hub_api.calls == [
        ("stop_servers", "alice"),
        ("delete_user", "alice"),
        ("delete_group", "melt-ponds"),
    ]


def test_the_erasure_row_holds_no_personal_data(api, app, seeded, hub_api):
    assert erase_me(api).status_code == 200
    with app.state.context.session() as session:
        erasure = session.scalars(select(Erasure)).one()
        row = {c.name: getattr(erasure, c.name) for c in Erasure.__table__.columns}
    assert set(row) == {"id", "pseudonym", "requested_by", "erased_at"}
    assert "alice" not in json.dumps(row, default=str).lower()


def test_erasure_logs_the_pseudonym_never_the_account(api, app, seeded, hub_api, caplog):
    caplog.set_level("DEBUG", logger="polartep_hub.accounts.personal_data")
    assert erase_me(api).status_code == 200
    records = [r.getMessage() for r in caplog.records if r.name == "polartep_hub.accounts.personal_data"]
    assert records and any("erased-" in message for message in records)
    for message in records:
        for needle in personal_strings("alice", ALICE):
            assert needle.lower() not in message.lower(), message


def test_the_erased_users_cached_identity_is_forgotten(api, seeded, hub_api, fake_hub):
    forgotten = []
    fake_hub.forget_cached_identities = lambda: forgotten.append(True)
    assert erase_me(api).status_code == 200
    assert forgotten == [True]


def test_an_admin_erases_any_account(api, app, seeded, hub_api):
    response = api.request("DELETE", "api/v1/accounts/bob", token="ada-token")

    assert response.status_code == 200, response.text
    assert response.json()["requested_by"] == "admin"
    with app.state.context.session() as session:
        assert session.scalar(select(Account).where(Account.name == "bob")) is None
        assert session.scalars(select(Erasure.requested_by)).all() == ["admin"]
    assert ("delete_user", "bob") in hub_api.calls


def test_erasing_an_unknown_account_is_404(api, seeded, hub_api):
    response = api.request("DELETE", "api/v1/accounts/nobody", token="ada-token")
    assert response.status_code == 404
    assert hub_api.calls == []


def test_users_cannot_erase_other_accounts(api, app, seeded, hub_api):
    assert api.request("DELETE", "api/v1/accounts/bob", token="alice-token").status_code == 403
    assert erase_me(api, confirm="bob").status_code == 422
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 3
    assert hub_api.calls == []


def test_the_configured_admin_account_is_refused(api, app, seeded, hub_api, fake_hub):
    with app.state.context.session() as session:
        _account(session, "admin", approved_by=None, password_hash=None, is_admin=True)
        session.commit()
    fake_hub.tokens["root-token"] = user("admin", admin=True)

    by_admin = api.request("DELETE", "api/v1/accounts/admin", token="ada-token")
    by_self = erase_me(api, token="root-token", confirm="admin")

    for response in (by_admin, by_self):
        assert response.status_code == 409
        assert "POLARTEP_ADMIN_USER" in response.json()["detail"]
    assert hub_api.calls == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"confirm": "Alice"}, "confirm"),
        ({"confirm": ""}, "confirm"),
        ({"processors": "keep"}, "processors"),
        ({"processors": "transfer"}, "transfer_to"),
        ({"processors": "transfer", "transfer_to": "nobody"}, "transfer_to"),
        ({"processors": "transfer", "transfer_to": "alice"}, "transfer_to"),
        ({"processors": "withdraw", "transfer_to": "bob"}, "transfer_to"),
    ],
)
def test_a_bad_erasure_request_is_422_and_erases_nothing(api, app, seeded, hub_api, body, message):
    response = erase_me(api, **body)

    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    with app.state.context.session() as session:
        assert session.scalar(select(Account).where(Account.name == "alice")) is not None
    assert hub_api.calls == []


def test_a_missing_processors_choice_is_422(api, seeded, hub_api):
    response = api.request("DELETE", "api/v1/me", token="alice-token", json={"confirm": "alice"})
    assert response.status_code == 422
    assert "processors" in response.json()["detail"]


def test_the_processors_choice_reaches_the_erasure_hooks(api, seeded, hub_api, monkeypatch):
    seen = []
    monkeypatch.setattr(
        personal_data, "ERASURE_HOOKS", [lambda session, ctx: seen.append((ctx.processors, ctx.transfer_to))]
    )
    assert erase_me(api, processors="transfer", transfer_to="bob").status_code == 200
    assert seen == [("transfer", "bob")]


def test_an_interrupted_erasure_is_recorded_and_finished_later(api, app, seeded, hub_api):
    hub_api.failing = True
    response = erase_me(api)

    assert response.status_code == 503
    assert "recorded" in response.json()["detail"]
    with app.state.context.session() as session:
        pending = session.scalars(select(PendingErasure)).one()
        pseudonym = pending.pseudonym
        assert session.scalar(select(Account.email).where(Account.name == "alice")) == ALICE["email"]
        assert session.scalar(select(func.count()).select_from(Erasure)) == 0

    hub_api.failing = False
    assert personal_data.resume_pending_erasures(app.state.context) == 1

    with app.state.context.session() as session:
        assert session.scalar(select(Account).where(Account.name == "alice")) is None
        assert session.scalars(select(Erasure.pseudonym)).all() == [pseudonym]
        assert session.scalar(select(func.count()).select_from(PendingErasure)) == 0
    assert personal_data.resume_pending_erasures(app.state.context) == 0


def test_an_erasure_asked_for_twice_runs_once(api, app, seeded, hub_api):
    assert erase_me(api).status_code == 200
    again = api.request("DELETE", "api/v1/accounts/alice", token="ada-token")
    assert again.status_code == 404
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(Erasure)) == 1


def test_without_the_hubs_api_erasure_is_refused_and_recorded(api, app, seeded):
    assert app.state.context.hub_api is None
    response = erase_me(api)
    assert response.status_code == 503
    with app.state.context.session() as session:
        assert session.scalar(select(Account).where(Account.name == "alice")) is not None


def test_a_pending_erasure_naming_an_erased_transfer_target_falls_back_to_withdrawing(
    api, app, seeded, hub_api
):
    hub_api.failing = True
    assert erase_me(api, processors="transfer", transfer_to="bob").status_code == 503
    hub_api.failing = False
    assert api.request("DELETE", "api/v1/accounts/bob", token="ada-token").status_code == 200
    with app.state.context.session() as session:
        pending = session.scalars(select(PendingErasure)).one()
        assert (pending.processors, pending.transfer_to) == ("withdraw", None)


async def test_the_reconciliation_loop_finishes_interrupted_erasures_at_start_up(api, app, seeded, hub_api):
    hub_api.failing = True
    assert erase_me(api).status_code == 503
    hub_api.failing = False
    context = app.state.context
    # Later rounds leave recent requests alone (a request may still be working on them); the first takes all.
    assert personal_data.resume_pending_erasures(context, older_than=timedelta(minutes=10)) == 0

    task = asyncio.create_task(personal_data.reconcile_erasures(context, first_delay=0, interval=0.05))
    try:
        for _ in range(100):
            if stored_account(app, "alice") is None:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert stored_account(app, "alice") is None
    assert ("delete_user", "alice") in hub_api.calls


def stored_account(app, name: str) -> Account | None:
    with app.state.context.session() as session:
        return session.scalar(select(Account).where(Account.name == name))


def test_while_an_erasure_is_pending_the_account_is_blocked_everywhere(api, app, seeded, hub_api):
    """JupyterHub does not answer, so the erasure stays recorded: meanwhile nothing starts, nobody logs in and an
    OIDC login cannot take the name; once it finishes, the name is gone."""
    hub_api.failing = True
    response = erase_me(api)
    assert response.status_code == 503, response.text

    entitlements = api.get("api/v1/users/alice/entitlements", token="hub-token")
    assert entitlements.status_code == 200
    assert entitlements.json()["profiles"] == [] and entitlements.json()["being_erased"] is True
    assert "being erased" in entitlements.json()["message"]
    oidc = api.post(
        "api/v1/auth/oidc",
        token="hub-token",
        json={"name": "alice", "issuer": "http://127.0.0.1:9/idp", "subject": "sub-alice"},
    )
    assert oidc.status_code == 409 and "being erased" in oidc.json()["detail"]
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(Account).where(Account.name == "alice")) == 1

    hub_api.failing = False
    finished = api.request("DELETE", "api/v1/accounts/alice", token="ada-token")
    assert finished.status_code == 200, finished.text
    with app.state.context.session() as session:
        assert session.scalar(select(func.count()).select_from(Account).where(Account.name == "alice")) == 0


def test_a_password_login_to_an_account_being_erased_is_refused(app, seeded):
    from polartep_hub.accounts import store as accounts
    from polartep_hub.accounts.passwords import Passwords

    passwords = Passwords()
    with app.state.context.session() as session:
        account = accounts.get_account(session, "alice")
        account.password_hash = passwords.hash("Glacier-Moraine-42")
        account.approved = True
        session.add(
            PendingErasure(
                account_id=account.id,
                pseudonym="erased-0000000000000000",
                requested_at=utcnow(),
                requested_by="self",
            )
        )
        session.commit()
        with pytest.raises(accounts.AccountBeingErased):
            accounts.check_password(session, passwords, "alice", "Glacier-Moraine-42")


def test_no_account_may_be_called_like_a_pseudonym():
    from polartep_hub.accounts import store as accounts

    with pytest.raises(accounts.InvalidAccountName, match="reserved for erased accounts"):
        accounts.check_account_name("erased-0123456789abcdef")
