"""Who may see, run and change a processor, across owners, project members, strangers and administrators."""

from __future__ import annotations

import pytest

from polartep_hub.accounts import store as accounts
from polartep_hub.processors.access import may_change, may_run, may_see
from polartep_hub.processors.models import Processor, ProcessorShare
from polartep_hub.projects import store as projects
from polartep_hub.projects.store import Actor
from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.service.orm import utcnow


@pytest.fixture
def people(database_url):
    """Owner and member of project glaciology, a stranger (who owns project elsewhere), an administrator."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:  # the project store commits by itself
        for name in ("owner", "member", "stranger", "root"):
            session.add(accounts.new_account(name, plan="standard", is_admin=(name == "root")))
        session.commit()
        projects.create_project(session, "glaciology", owner="owner")
        projects.add_member(session, "glaciology", "member", role="member", actor=Actor("owner", False))
        projects.create_project(session, "elsewhere", owner="stranger")
    yield sessions
    engine.dispose()


def _processor(session, visibility, shared_with=(), withdrawn=False):
    owner = accounts.get_account(session, "owner")
    processor = Processor(
        name=f"p-{visibility}-{len(shared_with)}-{withdrawn}", owner_id=owner.id, visibility=visibility
    )
    if withdrawn:
        processor.owner_id, processor.withdrawn_at = None, utcnow()
    session.add(processor)
    session.flush()
    for name in shared_with:
        session.add(
            ProcessorShare(processor_id=processor.id, project_id=projects.get_project(session, name).id)
        )
    session.flush()
    return processor


CASES = [
    # visibility, shares, withdrawn, {who: (see, run, change)}
    (
        "private",
        (),
        False,
        {"owner": (1, 1, 1), "member": (0, 0, 0), "stranger": (0, 0, 0), "root": (1, 1, 1)},
    ),
    (
        "projects",
        ("glaciology",),
        False,
        {"owner": (1, 1, 1), "member": (1, 1, 0), "stranger": (0, 0, 0), "root": (1, 1, 1)},
    ),
    (
        "projects",
        ("elsewhere",),
        False,
        {"owner": (1, 1, 1), "member": (0, 0, 0), "stranger": (1, 1, 0), "root": (1, 1, 1)},
    ),
    (
        "public",
        (),
        False,
        {"owner": (1, 1, 1), "member": (1, 1, 0), "stranger": (1, 1, 0), "root": (1, 1, 1)},
    ),
    ("public", (), True, {"owner": (0, 0, 0), "member": (0, 0, 0), "stranger": (0, 0, 0), "root": (1, 0, 1)}),
]


@pytest.mark.parametrize("visibility,shares,withdrawn,expected", CASES)
def test_who_may_see_run_and_change(people, visibility, shares, withdrawn, expected):
    with people() as session:
        processor = _processor(session, visibility, shares, withdrawn)
        for who, (see, run, change) in expected.items():
            actor = Actor(who, who == "root")
            got = (
                may_see(session, processor, actor),
                may_run(session, processor, actor),
                may_change(session, processor, actor),
            )
            assert got == (bool(see), bool(run), bool(change)), who
