"""Password hashing for the embedded login, with argon2id (argon2-cffi).

Rules this module guarantees:

* Only argon2id hashes are written; the encoded hash carries its own salt and parameters.
* ``verify`` takes the same time whether or not there is a hash to check against: for unknown users, accounts
  without a password and unapproved accounts, callers pass ``None`` and a dummy hash is verified instead, so response
  timing does not reveal which user names exist.
* ``verify`` never raises for a wrong password or a corrupt hash; it returns False (and logs nothing secret).
* At most ``max_concurrent`` argon2 computations (``hash`` and ``verify``; 64 MiB each) run at once in the process.
  A call that finds every slot taken waits at most ``busy_wait`` seconds, then raises ``PasswordHashBusy`` without
  hashing, so a flood of logins costs bounded memory and CPU and the caller answers at once (503 with
  ``Retry-After``). ``in_flight``, ``peak_in_flight`` and ``busy_refusals`` are exported as metrics.
"""

from __future__ import annotations

import logging
import secrets
import threading
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)


DEFAULT_MAX_CONCURRENT = 4
DEFAULT_BUSY_WAIT = 0.5


class PasswordHashBusy(Exception):
    """Every argon2 slot is taken: the password was neither hashed nor checked; try again in a moment."""

    retry_after = 2

    def __init__(self) -> None:
        super().__init__("the service is checking too many passwords at once; try again in a few seconds")


class Passwords:
    """Hash and check passwords; one instance per process (the argon2 parameters are fixed at construction)."""

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        busy_wait: float = DEFAULT_BUSY_WAIT,
    ) -> None:
        # argon2-cffi's defaults follow RFC 9106's recommended low-memory profile (argon2id, 64 MiB, t=3, p=4).
        self._hasher = hasher or PasswordHasher()
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self.busy_wait = busy_wait
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._count_lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.busy_refusals = 0

    def _run(self, work, *args):
        """``work(*args)`` in one of the ``max_concurrent`` argon2 slots; ``PasswordHashBusy`` if none frees up."""
        if not self._slots.acquire(timeout=self.busy_wait):
            with self._count_lock:
                self.busy_refusals += 1
            raise PasswordHashBusy()
        try:
            with self._count_lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return work(*args)
        finally:
            with self._count_lock:
                self.in_flight -= 1
            self._slots.release()

    @cached_property
    def _dummy_hash(self) -> str:
        # Made with the same parameters as real hashes, so verifying it costs the same (outside the slots: it is
        # made once, at start-up).
        return self._hasher.hash(secrets.token_urlsafe(24))

    def warm_up(self) -> None:
        """Make the dummy hash now, so the first unknown-user login does not pay for it (and stand out)."""
        _ = self._dummy_hash

    def hash(self, password: str) -> str:
        """The encoded argon2id hash of ``password``."""
        return self._run(self._hasher.hash, password)

    def verify(self, encoded_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``encoded_hash``; with ``None``, spend the same time and return False."""
        if encoded_hash is None:
            self._run(self._check, self._dummy_hash, password)
            return False
        return self._run(self._check, encoded_hash, password)

    def needs_rehash(self, encoded_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones (upgrade it on login)."""
        try:
            return self._hasher.check_needs_rehash(encoded_hash)
        except InvalidHashError:
            return True

    def _check(self, encoded_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded_hash, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.warning("a stored password hash could not be read; treating the login as failed")
            return False
