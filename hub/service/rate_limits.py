"""Fixed-window rate counters in the platform database, shared by the login throttle and the sign-up limit.

A counter is identified by a scope (``login-pair``, ``login-address``, ``signup``) and its subject (a client address,
an account name); it admits at most ``limit`` events in a window of ``window_seconds`` that opens with the first
event, and refuses further events until the window ends. Refused events are not counted, so a client that keeps
trying does not extend its own window.

Rules this module guarantees:

* **Atomic.** ``take`` is one conditional ``INSERT ... ON CONFLICT DO NOTHING`` followed, if the row exists, by one
  conditional ``UPDATE ... WHERE count < limit OR window over``: the database decides admission, so concurrent
  requests (threads, processes) can never be admitted more than ``limit`` times per window. SQLite serialises the
  writes (the first statement of the transaction is a write, so WAL never hands it a stale snapshot);
  PostgreSQL re-checks the ``WHERE`` on the locked row.
* **Part of the caller's transaction.** Nothing here commits: a caller takes a counter and stores what it guards
  (an account, a consent) in one transaction, so either both are kept or neither (sign-up), or commits before
  slow work so that concurrent attempts see each other (login).
* **Durable.** Counters live in ``rate_counters``, so limits survive restarts and hold across processes.
* **Nothing personal in the clear.** A row is keyed by a SHA-256 digest of scope and subject; rows whose window
  has ended are deleted (``purge_expired``).

Rejected: in-memory counters (lost at each restart, per process, and checked apart from the write they guard);
sliding-window logs (one row per event: more rows and a range count for the same protection).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import case, delete, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from polartep_hub.service.models import RateCounter
from polartep_hub.service.orm import UTCDateTime, utcnow


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events per ``window_seconds`` for each subject of ``scope``; ``limit == 0``: no limit."""

    scope: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class Admission:
    """The answer of ``take``: admitted, or refused until ``until`` (``retry_after`` seconds from now)."""

    admitted: bool
    until: datetime | None = None
    retry_after: int = 0


def key_digest(scope: str, *subject: str) -> str:
    """The stored key of a counter: SHA-256 over the scope and the subject's parts (unit-separated)."""
    return hashlib.sha256("\x1f".join((scope, *subject)).encode("utf-8")).hexdigest()


def take(session: Session, rule: RateLimit, *subject: str, now: datetime | None = None) -> Admission:
    """Count one event for ``subject`` unless its window is full (atomic; does not commit)."""
    if rule.limit <= 0:
        return Admission(True)
    now = now or utcnow()
    ends = now + timedelta(seconds=rule.window_seconds)
    digest = key_digest(rule.scope, *subject)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING rather than rowcount, which drivers do not report reliably for ON CONFLICT DO NOTHING.
    created = session.execute(
        insert(RateCounter)
        .values(key_digest=digest, count=1, window_ends_at=ends)
        .on_conflict_do_nothing(index_elements=["key_digest"])
        .returning(RateCounter.key_digest)
    ).first()
    if created is not None:
        return Admission(True)
    window_over = RateCounter.window_ends_at <= now
    bumped = session.execute(
        update(RateCounter)
        .where(RateCounter.key_digest == digest, or_(window_over, RateCounter.count < rule.limit))
        .values(
            count=case((window_over, 1), else_=RateCounter.count + 1),
            window_ends_at=case(
                (window_over, literal(ends, UTCDateTime())), else_=RateCounter.window_ends_at
            ),
        )
        .returning(RateCounter.count)
        .execution_options(synchronize_session=False)
    ).first()
    if bumped is not None:
        return Admission(True)
    until = session.scalar(select(RateCounter.window_ends_at).where(RateCounter.key_digest == digest)) or ends
    return Admission(False, until=until, retry_after=max(1, ceil((until - now).total_seconds())))


def peek(session: Session, rule: RateLimit, *subject: str, now: datetime | None = None) -> Admission:
    """Whether ``take`` would admit now, without counting (a cheap early refusal; ``take`` stays the authority)."""
    if rule.limit <= 0:
        return Admission(True)
    now = now or utcnow()
    row = session.execute(
        select(RateCounter.count, RateCounter.window_ends_at).where(
            RateCounter.key_digest == key_digest(rule.scope, *subject)
        )
    ).first()
    if row is None or row.window_ends_at <= now or row.count < rule.limit:
        return Admission(True)
    return Admission(
        False, until=row.window_ends_at, retry_after=max(1, ceil((row.window_ends_at - now).total_seconds()))
    )


def give_back(session: Session, rule: RateLimit, *subject: str) -> None:
    """Uncount one event (a login that turned out right, a hash refused as busy); does not commit."""
    if rule.limit <= 0:
        return
    session.execute(
        update(RateCounter)
        .where(RateCounter.key_digest == key_digest(rule.scope, *subject), RateCounter.count > 0)
        .values(count=RateCounter.count - 1)
        .execution_options(synchronize_session=False)
    )


def clear(session: Session, rule: RateLimit, *subject: str) -> None:
    """Forget ``subject``'s counter (a successful login clears its (account, address) failures); no commit."""
    session.execute(
        delete(RateCounter)
        .where(RateCounter.key_digest == key_digest(rule.scope, *subject))
        .execution_options(synchronize_session=False)
    )


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete every counter whose window has ended; returns how many. Does not commit."""
    result = session.execute(
        delete(RateCounter)
        .where(RateCounter.window_ends_at <= (now or utcnow()))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
