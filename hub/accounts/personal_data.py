"""A user's personal data: export everything the platform holds about them, rectify it, erase the account.

Rules this module guarantees:

* **Export is complete by construction.** ``owned_rows`` finds a user's rows in every table of the schema
  (``Base.metadata``) that refers to an account: through a foreign key to ``accounts.id``, or through a column
  registered in ``OWNER_NAME_COLUMNS`` (tables whose rows outlive the account, such as the usage ledger). A table
  added later (processors, runs, datasets) is exported as soon as it has such a reference; ``SECTIONS`` and
  ``ROW_DETAILS`` only give it a friendlier name or extra context. Secret columns (``SECRET_COLUMNS``: the password
  hash) are never exported, only whether one is held; names of other accounts (``NAME_MENTIONS``, e.g. who approved
  the account) are replaced by ``"another account"``, so an export carries nothing of anyone else.
* **Rectification** goes through ``PersonalDetailsUpdate`` (``personal_details.py``), the one validation of
  personal details; a bad field stores nothing.
* **Erasure** is recorded first (``pending_erasures``, with the pseudonym chosen once) and then runs its steps in
  this order, each idempotent, so that nothing of the user is left running or stored when it says "erased":

  1. stop every Dask cluster of the user through the gateway's platform routes (``gateway/admin_api.py``) and wait
     until the gateway records them stopped (their processes or containers removed);
  2. stop every server and delete the JupyterHub user (JupyterHub calls each spawner's ``delete_forever``, which
     deletes the home, but swallows its errors);
  3. check that the home is really gone, removing what is left (``homes.py``);
  4. ONE database transaction that settles the user's Dask records into the ledger (``gateway_meter.settle_account``,
     under ``LEDGER_LOCK``), pseudonymises the ledger (``OWNER_NAME_COLUMNS``) and mentions of the name
     (``NAME_MENTIONS``), hands over or deletes the projects the user owns, runs the registered ``ERASURE_HOOKS``,
     deletes the account (consents, subscriptions, memberships and the pending record cascade) and writes the
     ``erasures`` row (pseudonym, who asked, when; nothing personal).

  A step that cannot be done now stops the erasure before step 4: ``ErasureIncomplete`` when JupyterHub or the gateway
  did not answer, ``ErasurePending`` (naming what is left) when a cluster or the home is still there. The request
  stays recorded and ``reconcile_erasures`` finishes it later (also after a crash, at start-up).
* **The name stays blocked until every resource is gone**: the account row (with its pending record) exists until
  step 4, so sign-up answers 409 saying the name is being erased, account creation finds the name taken, an OIDC
  first login or a password login is refused, and entitlements allow nothing (no server, no cluster) meanwhile.
* **An erased user is never metered**: the gateway meter opens no interval for an account being erased or for a
  pseudonym; step 4 closes what is open (at the gateway's stop times where known).
* The configured administrator (``POLARTEP_ADMIN_USER``) is never erased. Log lines of erasure name the pseudonym,
  never the account.
* Nothing here awaits while a transaction is open; functions that talk to JupyterHub are synchronous and are run
  from plain ``def`` routes (FastAPI's thread pool).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from polartep_hub.accounts.details import PersonalDetailsUpdate
from polartep_hub.accounts.homes import HomeCheckError, remove_home
from polartep_hub.accounts.models import Account, Erasure, PendingErasure
from polartep_hub.accounts.store import (
    RESERVED_NAME_PREFIX,
    AccountError,
    AccountNotFound,
    get_account,
    require_account,
)
from polartep_hub.gateway.admin_client import GatewayAdminError
from polartep_hub.projects.models import Project, ProjectMember
from polartep_hub.service.context import ServiceContext
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.orm import Base, utcnow
from polartep_hub.usage.ledger import close_open_intervals
from polartep_hub.usage.meters.gateway import (
    LEDGER_LOCK,
    GatewayDatabaseMissing,
    GatewayDatabaseUnavailable,
    gateway_engine,
    settle_account,
)
from polartep_hub.usage.storage import forget_account

log = logging.getLogger(__name__)

EXPORT_FORMAT = "polartep-personal-data/1"
PSEUDONYM_PREFIX = RESERVED_NAME_PREFIX  # no account may be called erased-...
REDACTED_NAME = "another account"

# Tables whose rows belong to an account by name rather than by foreign key (they outlive the account): the column
# holding the owner's name. Erasure replaces that name with the pseudonym; export includes the rows.
OWNER_NAME_COLUMNS: dict[str, str] = {
    "usage_intervals": "account_name",
    # The ledger's running month totals and pending quota reservations follow the ledger's rows.
    "usage_month_totals": "account_name",
    "quota_reservations": "account_name",
    # Quota notices and administrators' top-ups: statement material, kept under the pseudonym.
    "usage_notifications": "account_name",
    "quota_top_ups": "account_name",
    # Stored bytes and TB-months (statements).
    "storage_usage": "account_name",
    "storage_month_totals": "account_name",
    "support_charges": "account_name",
}

# Text columns of those rows that may contain the owner's name as a token (e.g. ``source_key`` = ``server:alice/``):
# erasure replaces each whole-name occurrence (not part of a longer name) by the pseudonym.
OWNER_KEY_COLUMNS: dict[str, list[str]] = {"usage_intervals": ["source_key"]}

# Columns that mention an account by name in rows that are not that account's own (e.g. the administrator who
# approved someone). Export shows them as REDACTED_NAME; erasure either pseudonymises or clears them.
NAME_MENTIONS: dict[tuple[str, str], Literal["pseudonymise", "clear"]] = {
    ("accounts", "approved_by"): "pseudonymise",
    # The administrator who granted a top-up (the top-up stays on the statement).
    ("quota_top_ups", "granted_by"): "pseudonymise",
    ("support_charges", "recorded_by"): "pseudonymise",
    # A pending erasure that would transfer processors to an account being erased falls back to withdrawing them.
    ("pending_erasures", "transfer_to"): "clear",
}

# Secret columns: exported only as whether a value is held.
SECRET_COLUMNS: set[tuple[str, str]] = {
    ("accounts", "password_hash"),
    # A reset link's hash, and unsent mail, whose body may hold a live reset link: held, not shown.
    ("password_reset_tokens", "token_hash"),
    ("mail_outbox", "body"),
}

# Tables that hold no row of any one account, and why (tests check that every table is accounted for).
NOT_PERSONAL_TABLES: dict[str, str] = {
    "projects": "a project belongs to its members together; each member's export shows it with their membership",
    "processor_shares": "a share links a processor to a project; the owner's export shows the processor itself",
    "erasures": "the erasure log holds only pseudonyms, who asked (self or admin) and when",
    "datasets": "a dataset belongs to its project, not to an account (data/models.py); its files are the project's",
    "dataset_grants": "read access of one project to another project's dataset",
    "stac_items": "catalogue entries of a project's dataset (data/models.py)",
    "meter_checkpoints": "one row per meter (e.g. the gateway meter): when its last complete pass ran",
    "password_reset_requests": 'rate-limit counters of "forgot password": a key (an account id or a client '
    "address) and a time, deleted after a day",
    "rate_counters": "login and sign-up rate counters keyed by a SHA-256 digest (no name or address in the clear), "
    "deleted once their window (at most an hour) has ended",
    "dashboard_versions": "the frozen notebooks of a dashboard (the user's own files, as published); each dashboard "
    "is exported (section dashboards) with the SHA-256 of its current notebook, and every version is deleted with "
    "its dashboard on erasure",
    "dashboard_files": "files frozen with a dashboard version (a processor run's output files, the user's own "
    "results); deleted with their dashboard on erasure",
}

# Where a table's rows go in the export document (the table's own name when not listed).
SECTIONS: dict[str, str] = {
    "accounts": "account",
    "project_members": "projects",
    "pending_erasures": "erasure_requests",
}

# What the platform will hold once later releases add it; said in every export so that absence is explained.
# (Processors and their runs are held now: the sections "processors", "processor_versions" and "processor_runs".)
NOT_YET_HELD: dict[str, str] = {}


# --- export ------------------------------------------------------------------------------------------------------


def _owner_conditions(table: Table, account_id: int, name: str) -> list[ColumnElement[bool]]:
    """The conditions under which a row of ``table`` belongs to the account (empty: the table holds none)."""
    conditions: list[ColumnElement[bool]] = []
    if table.name == "accounts":
        conditions.append(table.c.id == account_id)
    for fk in table.foreign_keys:
        if fk.column.table.name == "accounts" and fk.column.name == "id":
            conditions.append(fk.parent == account_id)
    owner_column = OWNER_NAME_COLUMNS.get(table.name)
    if owner_column is not None:
        conditions.append(table.c[owner_column] == name)
    return conditions


def personal_tables() -> list[Table]:
    """Every table of the schema that can hold rows of one account."""
    return [t for t in Base.metadata.sorted_tables if _owner_conditions(t, 0, "")]


def owned_rows(session: Session, account: Account) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table that belongs to ``account``, as column -> value, by table name."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in Base.metadata.sorted_tables:
        conditions = _owner_conditions(table, account.id, account.name)
        if not conditions:
            continue
        query = select(table).where(or_(*conditions)).order_by(*table.primary_key.columns)
        rows[table.name] = [dict(row) for row in session.execute(query).mappings()]
    return rows


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _export_row(session: Session, table: str, row: dict[str, Any], account: Account) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in row.items():
        if (table, column) in SECRET_COLUMNS:
            out[f"{column}_held"] = value is not None
        elif (table, column) in NAME_MENTIONS and value is not None and value != account.name:
            out[column] = REDACTED_NAME
        else:
            out[column] = _json_value(value)
    details = ROW_DETAILS.get(table)
    if details is not None:
        out.update(details(session, row))
    return out


def _membership_details(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    # The project as the member sees it; never the other members.
    project = session.get(Project, row["project_id"])
    if project is None:
        return {}
    return {
        "project": project.name,
        "project_display_name": project.display_name,
        "project_description": project.description,
        "project_created_at": _json_value(project.created_at),
    }


def _subscription_details(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    return {"active": row["ended_at"] is None}


def _usage_details(session: Session, row: dict[str, Any]) -> dict[str, Any]:
    if row["stopped_at"] is None:
        return {"core_seconds": None}
    seconds = (row["stopped_at"] - row["started_at"]).total_seconds()
    return {"core_seconds": row["cores"] * seconds}


# Extra context for a table's rows in the export (a later table registers its own here).
ROW_DETAILS: dict[str, Callable[[Session, dict[str, Any]], dict[str, Any]]] = {
    "project_members": _membership_details,
    "subscriptions": _subscription_details,
    "usage_intervals": _usage_details,
}


def export_personal_data(session: Session, account: Account) -> dict[str, Any]:
    """The export document: every record of ``account`` by section, and what erasure would do."""
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "account_name": account.name,
    }
    for table, rows in owned_rows(session, account).items():
        exported = [_export_row(session, table, row, account) for row in rows]
        section = SECTIONS.get(table, table)
        document[section] = exported[0] if table == "accounts" else exported
    profile = document["account"]
    profile["password"] = (
        "a password hash is held (the value itself is never exported)"
        if profile.get("password_hash_held")
        else "no password is held (login through an identity provider, or none set)"
    )
    document["not_yet_held"] = dict(NOT_YET_HELD)
    document["erasure"] = {
        "how": "DELETE /services/platform/api/v1/me with your user name as confirmation, or the account page "
        "/services/platform/account",
        "deletes": [
            "the account and every personal detail (name, e-mail, organisation and its location, phone)",
            "consents, subscriptions and project memberships",
            "all your servers (stopped) and your home folder or home volume with its files",
            "your JupyterHub user and every token of it",
            "your dashboards, their frozen notebooks and every share of them",
        ],
        "keeps": [
            "usage intervals, under a random pseudonym instead of your name, so that statements still add up",
            "a record that an erasure happened: the pseudonym, whether you or an administrator asked, and when",
            "projects you own with other members: ownership passes to the longest-standing other member; "
            "projects where you are the only member are deleted with their JupyterHub group",
            "processors you published that others ran: withdrawn (no owner, no new runs) so that their runs keep "
            "their history, or, with the choice transfer, your shared processors pass to the account you name; "
            "processors nobody else ran are deleted",
        ],
        "pending": bool(document.get("erasure_requests")),
        "projects_you_own": _owned_project_fates(session, account),
    }
    return document


def _owned_project_fates(session: Session, account: Account) -> list[dict[str, str]]:
    """What erasing ``account`` would do to each project it owns (without naming the other members)."""
    fates = []
    for project in _projects_owned(session, account):
        others = [m for m in project.members if m.account_id != account.id]
        if not others:
            fate = "deleted with its JupyterHub group (you are its only member)"
        elif any(m.role == "owner" for m in others):
            fate = "stays with its other owners"
        else:
            fate = "ownership passes to the longest-standing other member"
        fates.append({"project": project.name, "on_erasure": fate})
    return fates


# --- rectification -----------------------------------------------------------------------------------------------

_REQUIRED_DETAILS = ("full_name", "email", "organisation", "organisation_location")


class RectificationError(AccountError):
    """The rectification cannot be applied; the message names the field."""


def rectify(session: Session, account: Account, update: PersonalDetailsUpdate) -> Account:
    """Apply the fields given in ``update`` (already validated) and commit; ``phone: null`` removes the phone."""
    given = update.model_fields_set
    if not given:
        raise RectificationError(
            "nothing to change: give at least one of full_name, email, organisation, organisation_location, phone"
        )
    for field in _REQUIRED_DETAILS:
        if field in given and getattr(update, field) is None:
            raise RectificationError(
                f"{field}: cannot be removed, only corrected (to remove it, erase the account)"
            )
    for field in given:
        setattr(account, field, getattr(update, field))
    session.commit()
    log.info("account %s: personal details rectified (%s)", account.name, ", ".join(sorted(given)))
    return account


# --- erasure -----------------------------------------------------------------------------------------------------

ProcessorsChoice = Literal["withdraw", "transfer"]


class ErasureRefused(AccountError):
    """This erasure may not be done (the configured administrator); the message says why."""


class ErasureInvalid(AccountError):
    """The erasure request is malformed (confirmation, transfer target); the message names the field."""


class ErasureIncomplete(AccountError):
    """A step talking to JupyterHub or the gateway failed; the request is recorded and is finished by a retry or at
    start-up."""


class ErasurePending(AccountError):
    """Something of the user is still there (a Dask cluster, the home); the request is recorded, the name stays
    blocked, and the reconciliation loop finishes the erasure once it is gone. ``remaining`` names what is left."""

    def __init__(self, message: str, remaining: list[str]) -> None:
        super().__init__(message)
        self.remaining = remaining


@dataclass(frozen=True)
class ErasureContext:
    """What the final transaction's hooks are told: the account being erased and the user's choices."""

    account: Account
    pseudonym: str
    requested_by: str
    processors: ProcessorsChoice
    transfer_to: str | None


# Steps of other features that must run inside the final transaction, before the account row is deleted. The
# processors feature registers here what it does with the processors the user shared (``processors`` = withdraw:
# unpublish them; transfer: give them to ``transfer_to``): ``processors/personal_data.py``.
ERASURE_HOOKS: list[Callable[[Session, ErasureContext], None]] = []


@dataclass(frozen=True)
class ErasureResult:
    pseudonym: str
    requested_by: str
    erased_at: datetime
    projects_deleted: int
    projects_handed_over: int


def new_pseudonym() -> str:
    """A fresh, unguessable stand-in for an erased account name in the ledger."""
    return PSEUDONYM_PREFIX + secrets.token_hex(8)


def request_erasure(
    session: Session,
    name: str,
    *,
    requested_by: Literal["self", "admin"],
    processors: ProcessorsChoice,
    transfer_to: str | None,
    protected_admin: str,
) -> PendingErasure:
    """Record that ``name`` is to be erased (checked, committed); the steps are run by ``run_erasure``.

    A second request for the same account updates the choices and keeps the pseudonym.
    """
    account = require_account(session, name)
    if name == protected_admin:
        raise ErasureRefused(
            f"the account {name!r} is the platform's configured administrator (POLARTEP_ADMIN_USER) and cannot be "
            "erased; make another account the administrator first"
        )
    if processors == "transfer":
        if not transfer_to:
            raise ErasureInvalid("transfer_to: name the account that takes over your shared processors")
        if transfer_to == name:
            raise ErasureInvalid("transfer_to: must be another account than the one being erased")
        if get_account(session, transfer_to) is None:
            raise ErasureInvalid("transfer_to: there is no account of that name")
    elif transfer_to:
        raise ErasureInvalid('transfer_to: only allowed with "processors": "transfer"')
    pending = session.get(PendingErasure, account.id)
    if pending is None:
        pending = PendingErasure(account_id=account.id, pseudonym=new_pseudonym(), requested_at=utcnow())
        session.add(pending)
    pending.requested_by = requested_by
    pending.processors = processors
    pending.transfer_to = transfer_to if processors == "transfer" else None
    session.commit()
    log.info(
        "erasure requested (pseudonym %s, by %s, processors: %s)", pending.pseudonym, requested_by, processors
    )
    return pending


def _projects_owned(session: Session, account: Account) -> list[Project]:
    query = (
        select(Project)
        .join(ProjectMember)
        .where(ProjectMember.account_id == account.id, ProjectMember.role == "owner")
        .order_by(Project.id)
    )
    return list(session.scalars(query))


def _hand_over_or_delete(session: Session, account: Account) -> tuple[list[str], int]:
    """Projects owned by ``account``: another owner stays, or the longest-standing member becomes owner, or (alone)
    the project is deleted. Returns the names of deleted projects and the number handed over."""
    deleted: list[str] = []
    handed_over = 0
    for project in _projects_owned(session, account):
        others = sorted(
            (m for m in project.members if m.account_id != account.id),
            key=lambda m: (m.added_at, m.account.name),
        )
        if not others:
            deleted.append(project.name)
            session.delete(project)
        elif not any(m.role == "owner" for m in others):
            others[0].role = "owner"
            handed_over += 1
    return deleted, handed_over


def _name_token(name: str) -> re.Pattern[str]:
    # Account names are made of [a-z0-9._-]: an occurrence bounded by anything else is the name itself.
    return re.compile(rf"(?<![a-z0-9._-]){re.escape(name)}(?![a-z0-9._-])")


def _pseudonymise_owned_rows(session: Session, name: str, pseudonym: str, now: datetime) -> None:
    tables = Base.metadata.tables
    token = _name_token(name)
    for table_name, column in OWNER_NAME_COLUMNS.items():
        table = tables[table_name]
        owner = table.c[column]
        for key_column in OWNER_KEY_COLUMNS.get(table_name, []):
            key = table.c[key_column]
            pk = list(table.primary_key.columns)
            rows = session.execute(
                select(*pk, key).where(owner == name, key.contains(name, autoescape=True))
            ).all()
            if rows:
                # One executemany, keyed by primary key: a ledger of many thousand rows is rewritten in well under
                # a second.
                statement = (
                    update(table)
                    .where(*[c == bindparam(f"pk_{c.name}") for c in pk])
                    .values({key_column: bindparam("new_key")})
                )
                params = [
                    {
                        **{f"pk_{c.name}": v for c, v in zip(pk, row[:-1], strict=True)},
                        "new_key": token.sub(pseudonym, row[-1]),
                    }
                    for row in rows
                ]
                session.connection().execute(statement, params)
        if table_name == "usage_intervals":
            # The user's servers and clusters were stopped a moment ago (first steps) and their Dask records settled
            # with exact stop times: close what is still open (servers) now, because a meter closing it later by
            # its source key would no longer find it.
            # Through the ORM, so the ledger's month totals follow (usage/ledger.py).
            close_open_intervals(session, name, now)
        session.execute(update(table).where(owner == name).values({column: pseudonym}))


def _finish_in_one_transaction(
    session: Session, account: Account, pending: PendingErasure
) -> tuple[ErasureResult, list[str]]:
    """The database part of an erasure, committed at once; returns the result and the names of deleted projects."""
    pseudonym = pending.pseudonym
    name = account.name
    now = utcnow()
    tables = Base.metadata.tables
    _pseudonymise_owned_rows(session, name, pseudonym, now)
    # Nothing is held for the account from now on (its home is gone, its dashboards and its share of the processors'
    # notebooks go below): every storage source stops here, what was held until now stays on the month's statement
    # under the pseudonym. Without this a home's last sample would be integrated under the pseudonym for ever.
    forget_account(session, pseudonym, now=now)
    for (table_name, column), action in NAME_MENTIONS.items():
        table = tables[table_name]
        if action == "pseudonymise":
            session.execute(update(table).where(table.c[column] == name).values({column: pseudonym}))
        else:
            values: dict[str, Any] = {column: None}
            if table_name == "pending_erasures":
                values["processors"] = "withdraw"
            session.execute(update(table).where(table.c[column] == name).values(values))
    deleted, handed_over = _hand_over_or_delete(session, account)
    erasure_context = ErasureContext(
        account=account,
        pseudonym=pseudonym,
        requested_by=pending.requested_by,
        processors=pending.processors,  # type: ignore[arg-type]
        transfer_to=pending.transfer_to,
    )
    for hook in ERASURE_HOOKS:
        hook(session, erasure_context)
    erasure = Erasure(pseudonym=pseudonym, requested_by=pending.requested_by, erased_at=now)
    session.delete(account)  # consents, subscriptions, memberships and the pending record cascade
    session.add(erasure)
    session.commit()
    result = ErasureResult(
        pseudonym=pseudonym,
        requested_by=erasure.requested_by,
        erased_at=erasure.erased_at,
        projects_deleted=len(deleted),
        projects_handed_over=handed_over,
    )
    return result, deleted


def _stop_clusters(context: ServiceContext, name: str, pseudonym: str) -> None:
    """Step 1: every Dask cluster of the user stopped and gone (no gateway configured: nothing can run)."""
    if context.gateway_admin is None:
        return
    try:
        context.gateway_admin.stop_clusters(name)
        # The gateway keeps stopped clusters' records for days (for the meter); under the name they would show to
        # whoever takes it next. Moved to the pseudonym, they stay metered by key.
        context.gateway_admin.forget(name, pseudonym)
    except GatewayAdminError as error:
        log.warning("erasure %s: Dask clusters not stopped yet (%s)", pseudonym, error)
        if error.remaining:
            raise ErasurePending(
                f"{len(error.remaining)} Dask cluster(s) of the account are still stopping; the erasure is recorded "
                "and finishes once they are gone",
                ["dask clusters"],
            ) from None
        raise ErasureIncomplete(
            f"the Dask Gateway could not stop the account's clusters yet ({error.status or 'no answer'}); the "
            "erasure is recorded and will be finished on a retry or when the service restarts"
        ) from None


def _remove_home(context: ServiceContext, name: str, pseudonym: str) -> None:
    """Step 3: the home (folder or volume) is gone, or ``ErasurePending``."""
    what = "home volume" if context.config.mode in ("docker", "swarm") else "home folder"
    try:
        gone = remove_home(context.config.mode, context.config.homes_root, context.config.home_folder(name))
    except (HomeCheckError, OSError) as error:
        log.warning("erasure %s: the home could not be checked (%s)", pseudonym, error)
        gone = False
    if not gone:
        log.warning("erasure %s: the %s is still there; will be retried", pseudonym, what)
        raise ErasurePending(
            f"the account's {what} could not be removed yet (still in use); the erasure is recorded, the name stays "
            "taken, and the erasure finishes once the home is gone",
            [what],
        )


def _settle_dask_usage(context: ServiceContext, session: Session, name: str, pseudonym: str) -> None:
    """Step 4's first part: the user's gateway records in the ledger, so that no meter pass opens one later."""
    if not context.config.gateway_db_url:
        return
    engine = gateway_engine(context.config.gateway_db_url)
    try:
        settle_account(session, engine, name, pseudonym)
    except GatewayDatabaseMissing:
        return  # no gateway has ever recorded a cluster here
    except GatewayDatabaseUnavailable as error:
        log.warning("erasure %s: the gateway's database cannot be read (%s)", pseudonym, error)
        raise ErasureIncomplete(
            "the Dask Gateway's records cannot be read right now, so the account's usage cannot be settled; the "
            "erasure is recorded and will be finished on a retry or when the service restarts"
        ) from None
    finally:
        engine.dispose()


def run_erasure(context: ServiceContext, name: str) -> ErasureResult:
    """Run (or resume) the recorded erasure of ``name``: clusters, servers and hub user, home, then the one database
    transaction (see the module's rules).

    ``ErasureIncomplete`` when JupyterHub or the gateway could not do its part, ``ErasurePending`` while a cluster or
    the home is still there; nothing in the database has changed then, and the request stays recorded.
    """
    with context.session() as session:
        account = require_account(session, name)
        pending = session.get(PendingErasure, account.id)
        if pending is None:
            raise ErasureInvalid("no erasure was requested for this account")
        pseudonym = pending.pseudonym
    if context.hub_api is None:
        raise ErasureIncomplete(
            "this platform service runs without JupyterHub's API, so it cannot stop the servers and delete the "
            "user; the erasure is recorded and will be finished when the service runs under the hub"
        )
    # Clusters first: in Docker mode they mount the home volume, and the gateway authorises by name, so a cluster
    # left running would belong to whoever takes the name next.
    _stop_clusters(context, name, pseudonym)
    try:
        # Servers next: JupyterHub deletes a user only once no server of theirs runs. Deleting the user removes
        # their tokens and makes JupyterHub call every spawner's delete_forever (home folder, home volume).
        context.hub_api.stop_servers(name)
        context.hub_api.delete_user(name)
    except HubApiError as error:
        log.warning(
            "erasure %s: JupyterHub step failed (status %s); will be retried", pseudonym, error.status
        )
        raise ErasureIncomplete(
            f"JupyterHub could not stop the servers or delete the user yet ({error.status or 'no answer'}); the "
            "erasure is recorded and will be finished on a retry or when the service restarts"
        ) from None
    # JupyterHub logs and swallows a failed delete_forever: check (and finish) the home ourselves.
    _remove_home(context, name, pseudonym)
    with LEDGER_LOCK, context.session() as session:
        account = get_account(session, name)
        pending = session.get(PendingErasure, account.id) if account is not None else None
        if account is None or pending is None:
            # Another request finished it meanwhile.
            raise AccountNotFound.for_name(name)
        _settle_dask_usage(context, session, name, pseudonym)
        result, deleted_projects = _finish_in_one_transaction(session, account, pending)
    # After the commit: deleting the hub group of a project that is gone. A crash here leaves at worst an empty
    # group (its only member was deleted from the hub), never a group missing for a live project.
    for project in deleted_projects:
        try:
            context.hub_api.delete_group(project)
        except HubApiError as error:
            log.warning(
                "erasure %s: could not delete a project's hub group (status %s)", pseudonym, error.status
            )
    forget = getattr(context.identity_provider, "forget_cached_identities", None)
    if forget is not None:
        # The service caches who owns a token for a minute; the erased user's token must stop working now.
        forget()
    log.info(
        "erasure %s finished (requested by %s; projects deleted: %d, handed over: %d)",
        pseudonym,
        result.requested_by,
        result.projects_deleted,
        result.projects_handed_over,
    )
    return result


def resume_pending_erasures(context: ServiceContext, *, older_than: timedelta = timedelta(0)) -> int:
    """Finish every erasure requested at least ``older_than`` ago and not completed (a crash, JupyterHub down);
    returns how many were finished."""
    cutoff = utcnow() - older_than
    with context.session() as session:
        query = (
            select(Account.name)
            .join(PendingErasure)
            .where(PendingErasure.requested_at <= cutoff)
            .order_by(PendingErasure.requested_at)
        )
        names = list(session.scalars(query))
    finished = 0
    for name in names:
        try:
            run_erasure(context, name)
            finished += 1
        except AccountError as error:
            log.warning("a pending erasure could not be finished yet: %s", type(error).__name__)
    return finished


async def reconcile_erasures(
    context: ServiceContext,
    *,
    first_delay: float = 5.0,
    interval: float = 300.0,
    grace: timedelta = timedelta(minutes=10),
) -> None:
    """Forever: finish pending erasures, all of them shortly after start-up (nothing else can be running them), then
    every ``interval`` seconds those older than ``grace`` (so as not to race a request still working on one).

    Runs as a task of the service (``app.py``); JupyterHub calls go through the thread pool, never on the loop.
    """
    import asyncio

    await asyncio.sleep(first_delay)
    older_than = timedelta(0)
    while True:
        try:
            finished = await asyncio.to_thread(resume_pending_erasures, context, older_than=older_than)
            if finished:
                log.info("finished %d pending erasure(s)", finished)
        except Exception:  # the loop must outlive a database hiccup; the next round tries again
            log.exception("looking for pending erasures failed")
        older_than = grace
        await asyncio.sleep(interval)
