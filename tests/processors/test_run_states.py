"""The run records' state machine and access, on SQLite and PostgreSQL (no hub: ``runs.py`` alone)."""

from __future__ import annotations

import time

import pytest

from polartep_hub.accounts import store as accounts
from polartep_hub.processors import runs
from polartep_hub.processors.inputs import InputsInvalid
from polartep_hub.processors.models import Processor, ProcessorRun, ProcessorVersion
from polartep_hub.projects.store import Actor
from polartep_hub.service.db import make_engine, make_sessionmaker
from tests.helpers.processors import ECHO_DEFINITION, echo_notebook

ALICE, BOB = Actor("alice", False), Actor("bob", False)


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        for name in ("alice", "bob"):
            session.add(accounts.new_account(name, plan="standard"))
        session.flush()
        processor = Processor(name="echo-a", owner_id=accounts.get_account(session, "alice").id)
        session.add(processor)
        session.flush()
        session.add(ProcessorVersion(processor_id=processor.id, sequence=1, version="1.0.0",
                                     notebook_sha256="0" * 64, definition={**ECHO_DEFINITION, "timeout": 60}))  # fmt: skip
        session.add(ProcessorVersion(processor_id=processor.id, sequence=2, version="1.1.0",
                                     notebook_sha256="0" * 64, definition=ECHO_DEFINITION))  # fmt: skip
        session.commit()
    yield sessions
    engine.dispose()


def accept(session, actor=ALICE, given=None, version=None):
    return runs.accept_run(
        session,
        processor_name="echo-a",
        actor=actor,
        given=given or {},
        version=version,
        notebook=echo_notebook(),
    )


def test_a_run_is_accepted_with_the_validated_inputs_of_the_chosen_version(sessions):
    with sessions() as session:
        latest = accept(session, given={"days": 3})
        first = accept(session, version="1.0.0")
        by_sequence = accept(session, version=1)
        assert (latest.status, latest.inputs["days"], latest.timeout_seconds) == ("accepted", 3, 3600)
        assert first.timeout_seconds == by_sequence.timeout_seconds == 60
        with pytest.raises(runs.ProcessorVersionNotFound):
            accept(session, version="9.9.9")


def test_refusals_store_nothing(sessions):
    with sessions() as session:
        with pytest.raises(InputsInvalid):
            accept(session, given={"days": "three"})
        with pytest.raises(runs.ProcessorNotFound):
            accept(session, actor=BOB)
        with pytest.raises(runs.ProcessorNotRunnable):
            accept(session, actor=Actor(None, True))
        assert session.query(ProcessorRun).count() == 0


def test_a_final_state_is_final_and_a_dismissed_run_does_not_start(sessions):
    with sessions() as session:
        run_id = accept(session).id
        assert runs.finish(session, run_id, "dismissed", "cancelled before it started") is True
        assert runs.set_running(session, run_id, "cluster") is False
        assert runs.finish(session, run_id, "successful", "") is False
        run = session.get(ProcessorRun, run_id)
        session.refresh(run)
        assert (run.status, run.message, run.cluster_name) == (
            "dismissed",
            "cancelled before it started",
            None,
        )
        other = accept(session).id
        assert runs.set_running(session, other, "c1") is True
        assert runs.set_running(session, other, "c1") is True  # a reconciliation re-attaching
        assert runs.active_run_ids(session) == [other]
        with pytest.raises(ValueError):
            runs.finish(session, other, "running", "")


def test_runs_are_the_invokers_alone_and_listed_newest_first(sessions):
    with sessions() as session:
        ids = []
        for _ in range(3):
            ids.append(accept(session).id)
            time.sleep(0.002)  # distinct creation times: the order is by time
        with pytest.raises(runs.RunNotFound):
            runs.run_of(session, ids[0], BOB)
        with pytest.raises(runs.RunNotFound):
            runs.run_of(session, ids[0], Actor(None, True))
        assert runs.run_of(session, ids[0], ALICE)[0].id == ids[0]
        page = runs.list_runs(session, ALICE, limit=2, offset=0)
        assert [run.id for run, _, _ in page] == ids[::-1][:2]
        assert [run.id for run, _, _ in runs.list_runs(session, ALICE, limit=2, offset=2)] == ids[:1]
        assert runs.list_runs(session, BOB, limit=10, offset=0) == []
        assert (runs.count_runs(session, ALICE), runs.count_runs(session, BOB)) == (3, 0)


def test_the_service_process_refuses_to_unpickle_anything_a_cluster_sends():
    """Users control their clusters' schedulers; the service's Dask client must not unpickle what they send."""
    import subprocess
    import sys

    code = (
        "import pickle, distributed.protocol.core as core, distributed.protocol.pickle as dp\n"
        "from polartep_hub.processors.execution import refuse_unpickling\n"
        "refuse_unpickling()\n"
        "frames = core.dumps({'x': core.ToPickle(object())})\n"
        "try:\n    core.loads(frames)\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (
        done.stdout.strip() == "RunFailed the platform service does not unpickle data from a user's cluster"
    )
