"""Password hashing for the embedded login, with argon2id (argon2-cffi).

Rules this module guarantees:

* Only argon2id hashes are written; the encoded hash carries its own salt and parameters.
* ``verify`` takes the same time whether or not there is a hash to check against: for unknown users, accounts
  without a password and unapproved accounts, callers pass ``None`` and a dummy hash is verified instead, so response
  timing does not reveal which user names exist.
* ``verify`` never raises for a wrong password or a corrupt hash; it returns False (and logs nothing secret).
"""

from __future__ import annotations

import logging
import secrets
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)


class Passwords:
    """Hash and check passwords; one instance per process (the argon2 parameters are fixed at construction)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults follow RFC 9106's recommended low-memory profile (argon2id, 64 MiB, t=3, p=4).
        self._hasher = hasher or PasswordHasher()

    @cached_property
    def _dummy_hash(self) -> str:
        # Made with the same parameters as real hashes, so verifying it costs the same.
        return self._hasher.hash(secrets.token_urlsafe(24))

    def warm_up(self) -> None:
        """Make the dummy hash now, so the first unknown-user login does not pay for it (and stand out)."""
        _ = self._dummy_hash

    def hash(self, password: str) -> str:
        """The encoded argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, encoded_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``encoded_hash``; with ``None``, spend the same time and return False."""
        if encoded_hash is None:
            self._check(self._dummy_hash, password)
            return False
        return self._check(encoded_hash, password)

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
