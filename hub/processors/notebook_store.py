"""Content-addressed storage of published notebooks: each notebook's bytes kept once, under their SHA-256.

Rules this module guarantees:

* ``put`` is atomic and durable: the bytes are written to a temporary file in the same folder, flushed and synced,
  then renamed into place, so a kill at any line leaves either no file or the whole file, never a torn one.
* A stored file is never rewritten: the name is the content's hash, and putting the same bytes again is a no-op.
* Files are the platform's (mode 0600 in a 0700 folder): runs receive the bytes from the service, users never read
  the store directly.
* ``read`` checks the hash, so a corrupted file is reported (``StoredNotebookCorrupt``) instead of being run.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoredNotebookMissing(LookupError):
    """No notebook with that hash is stored."""


class StoredNotebookCorrupt(RuntimeError):
    """The stored file's content no longer matches its hash."""


def sha256_of(content: bytes) -> str:
    """The hex SHA-256 of ``content``: a stored notebook's name."""
    return hashlib.sha256(content).hexdigest()


class NotebookStore:
    """The published notebooks under ``root`` (created 0700 on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the notebook named ``sha256`` is (or would be) kept; refuses anything but a hex SHA-256."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / f"{sha256}.ipynb"

    def put(self, content: bytes) -> str:
        """Store ``content`` (if not stored yet) and return its SHA-256."""
        digest = sha256_of(content)
        target = self.path(digest)
        if target.exists():
            return digest
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        return digest

    def read(self, sha256: str) -> bytes:
        """The stored bytes of ``sha256``, checked against the hash."""
        try:
            content = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise StoredNotebookMissing(f"no stored notebook {sha256}") from None
        if sha256_of(content) != sha256:
            raise StoredNotebookCorrupt(f"stored notebook {sha256} does not match its hash")
        return content

    def size(self, sha256: str) -> int | None:
        """The stored notebook's length in bytes (what its publish was checked for), or None when it is not there.
        Read from the file itself, without reading or checking its content (the storage meter calls this for every
        notebook of every owner on each pass)."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None
