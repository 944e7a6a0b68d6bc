"""Rate counters in the database (``rate_limits.py``), on SQLite and PostgreSQL.

Specification: a counter admits ``limit`` events per window and refuses the next with the time its window ends;
refused events are not counted; a new window opens once the old one is over; concurrent takers from many threads
are admitted exactly ``limit`` times; ``give_back`` and ``clear`` undo; rows of ended windows are purged.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from polartep_hub.service import rate_limits
from polartep_hub.service.db import make_engine, make_sessionmaker
from polartep_hub.service.models import RateCounter
from polartep_hub.service.orm import utcnow

RULE = rate_limits.RateLimit("test", 3, 60)


def sessions(database_url):
    return make_sessionmaker(make_engine(database_url))


def test_a_counter_admits_its_limit_then_refuses_until_the_window_ends(database_url):
    make = sessions(database_url)
    now = utcnow()
    with make() as session:
        admitted = [rate_limits.take(session, RULE, "x", now=now).admitted for _ in range(3)]
        refused = rate_limits.take(session, RULE, "x", now=now + timedelta(seconds=10))
        session.commit()
    assert admitted == [True, True, True]
    assert not refused.admitted and refused.retry_after == 50
    assert refused.until == now + timedelta(seconds=60)
    with make() as session:
        assert (
            session.get(RateCounter, rate_limits.key_digest("test", "x")).count == 3
        )  # refusals not counted
        assert rate_limits.take(session, RULE, "y", now=now).admitted  # another subject
        assert rate_limits.take(session, RULE, "x", now=now + timedelta(seconds=60)).admitted  # a new window
        session.commit()
        assert session.get(RateCounter, rate_limits.key_digest("test", "x")).count == 1


def test_give_back_and_clear_undo_and_purge_removes_ended_windows(database_url):
    make = sessions(database_url)
    now = utcnow()
    with make() as session:
        for _ in range(3):
            rate_limits.take(session, RULE, "x", now=now)
        rate_limits.give_back(session, RULE, "x")
        assert rate_limits.take(session, RULE, "x", now=now).admitted
        rate_limits.clear(session, RULE, "x")
        assert rate_limits.take(session, RULE, "x", now=now).admitted
        session.commit()
        assert rate_limits.purge_expired(session, now + timedelta(seconds=61)) == 1
        session.commit()


def test_concurrent_takers_are_admitted_exactly_the_limit(database_url):
    make = sessions(database_url)
    rule = rate_limits.RateLimit("race", 5, 600)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def taker() -> None:
        start.wait()
        with make() as session:
            admitted = rate_limits.take(session, rule, "same").admitted
            session.commit()
        with lock:
            results.append(admitted)

    threads = [threading.Thread(target=taker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True] * 5
