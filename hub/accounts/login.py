"""Password login with throttling that a stranger cannot turn into a lock-out of the real user.

The rule (what the platform guarantees):

* **Per (account, client address):** at most ``per_account_address`` failed logins (``POLARTEP_LOGIN_ATTEMPTS``,
  default 5) for one user name from one client address in a window of ``window_seconds``
  (``POLARTEP_LOGIN_LOCKOUT_SECONDS``, default 600 s) that opens with the first failure; further attempts of that
  pair are refused until the window ends. A successful login clears the pair's count.
* **Per client address, across accounts:** at most ``per_address`` failed logins (``POLARTEP_LOGIN_ATTEMPTS_PER_
  ADDRESS``, default 20) from one address in the same window, whatever the user names; then that address is refused
  for every name until its window ends. This stops one address from spraying guesses over many accounts.
* **Nothing is counted per account alone.** Failures from one address never refuse another address: a stranger who
  guesses ``admin``'s password wrongly a thousand times throttles only their own address, and the real ``admin``
  logs in from theirs. (Why: a per-account lock-out is exactly the denial of service issue 9.7 describes; the
  price is that an attacker with many addresses gets ``per_account_address`` guesses per address and window, which
  argon2, the password rules (10+ characters, not among the 10,000 most common) and the per-address budget keep
  far from useful.)
* **Counted before the hash, in the database.** Each attempt takes one unit of both counters atomically
  (``rate_limits.take``) and commits before argon2 runs, so a burst of concurrent guesses is admitted at most
  ``limit`` times; a right password gives the units back (and clears the pair). Counters survive restarts.
* **One answer whatever the account.** Unknown names, names without a password and wrong passwords cost one argon2
  check and get the same 401 ``invalid username or password``; throttling depends only on what the client address
  did, never on whether the name exists, and its answer (429, ``too many login attempts from your address``, the time
  to try again, ``Retry-After``) says nothing about the account. Only a right password learns that an account
  awaits approval.
* **Bounded hashing.** argon2 runs in at most ``POLARTEP_LOGIN_MAX_CONCURRENT_HASHES`` slots (``passwords.py``);
  an attempt that finds none free is refused at once with 503 and ``Retry-After`` and is not counted.

The client address is the one the hub saw (``proxy_peer.py``: the proxy's ``X-Forwarded-For`` entry, trusted only
on connections from the proxy process); the hub sends it with the check, and only the hub may call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from polartep_hub.accounts.passwords import PasswordHashBusy, Passwords
from polartep_hub.accounts.store import AccountError, LoginResult, check_password
from polartep_hub.service import rate_limits
from polartep_hub.service.orm import utcnow

PAIR_SCOPE = "login-pair"
ADDRESS_SCOPE = "login-address"


@dataclass(frozen=True)
class LoginThrottlePolicy:
    """Failed logins allowed per (account, address) and per address in each window; 0 switches a bound off."""

    per_account_address: int = 5
    per_address: int = 20
    window_seconds: int = 600

    @classmethod
    def from_config(cls, config) -> LoginThrottlePolicy:
        """The policy the service's settings (``ServiceConfig``) ask for."""
        return cls(
            per_account_address=config.login_attempts,
            per_address=config.login_attempts_per_address,
            window_seconds=config.login_lockout_seconds,
        )

    @property
    def pair_rule(self) -> rate_limits.RateLimit:
        return rate_limits.RateLimit(PAIR_SCOPE, self.per_account_address, self.window_seconds)

    @property
    def address_rule(self) -> rate_limits.RateLimit:
        return rate_limits.RateLimit(ADDRESS_SCOPE, self.per_address, self.window_seconds)


class LoginThrottled(AccountError):
    """Too many failed logins from the client's address (for this name, or for all names): try again at ``until``."""

    def __init__(self, until: datetime, retry_after: int) -> None:
        self.until = until
        self.retry_after = retry_after
        super().__init__(
            "too many login attempts from your address; try again after "
            f"{until.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"
        )


def attempt_login(
    session: Session,
    passwords: Passwords,
    name: str,
    password: str,
    address: str,
    policy: LoginThrottlePolicy,
    *,
    now: datetime | None = None,
) -> LoginResult | None:
    """Check ``name``/``password`` for a client at ``address`` under ``policy``.

    The account on success; None for every wrong combination (unknown name included); ``LoginThrottled`` when the
    address has used its failures; ``PasswordHashBusy`` when no argon2 slot is free (nothing counted);
    ``accounts.AccountPendingApproval`` for a right password of an account awaiting approval.
    """
    now = now or utcnow()
    pair, per_address = policy.pair_rule, policy.address_rule
    # Both counters in one short transaction that starts with a write (see rate_limits): either both count or, if
    # one is full, neither does.
    for rule, subject in ((per_address, (address,)), (pair, (address, name))):
        admission = rate_limits.take(session, rule, *subject, now=now)
        if not admission.admitted:
            session.rollback()
            assert admission.until is not None
            raise LoginThrottled(admission.until, admission.retry_after)
    session.commit()  # before argon2: concurrent attempts see each other's units

    try:
        result = check_password(session, passwords, name, password, now=now)
    except PasswordHashBusy:
        session.rollback()
        _give_back(session, policy, name, address, clear_pair=False)
        raise
    except AccountError:
        # A right password (awaiting approval): not a failure.
        session.rollback()
        _give_back(session, policy, name, address, clear_pair=True)
        raise
    if result is not None:
        _give_back(session, policy, name, address, clear_pair=True)
        rate_limits.purge_expired(session, now)  # ended windows hold nothing worth keeping
        session.commit()
    return result


def _give_back(
    session: Session, policy: LoginThrottlePolicy, name: str, address: str, *, clear_pair: bool
) -> None:
    rate_limits.give_back(session, policy.address_rule, address)
    if clear_pair:
        rate_limits.clear(session, policy.pair_rule, address, name)
    else:
        rate_limits.give_back(session, policy.pair_rule, address, name)
    session.commit()
