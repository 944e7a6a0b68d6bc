"""The object storage class on an S3-compatible endpoint: one prefix per dataset in the platform's bucket, reached by
users only through short-lived presigned URLs that the service hands out per object.

Rules this module guarantees:

* **Where.** A dataset of the object class lives under ``datasets/<storage key>/`` in the configured bucket (the key
  is the dataset's opaque 32-hex storage key, as for folders: the prefix says nothing about whose data it is). A
  user's object key is always appended to that prefix after ``check_object_key``, so no key leaves its prefix.
* **Keys.** ``check_object_key`` accepts 1-900 UTF-8 bytes of relative ``/``-separated segments, none empty, ``.``
  or ``..``, no control characters (NUL included) and no backslash, and it checks the text once more after
  percent-decoding it (``%2e%2e``, ``%2f``), so no layer that decodes later can turn a key into a path trick.
  Anything else is ``InvalidObjectKey`` and nothing is signed or stored.
* **Secrets.** The platform's access key pair is read from a file or the environment by the service only
  (``ObjectStoreSettings``); it is never logged (``repr`` leaves it out) and never sent to a user server: users get
  presigned URLs for one object and one method, which live ``url_seconds`` (the setting
  ``object_store_url_seconds``). A URL cannot be withdrawn once issued, so revocation refuses every *new* URL at
  once and an issued one works until it expires; that lifetime is the revocation delay users should expect.
* **Bytes.** A dataset's size is the sum of the sizes of the objects under its prefix (``prefix_bytes``), for the
  storage meter (``store.dataset_bytes``).
* Presigned URLs are signed for ``public_endpoint`` (where user servers reach the store), everything else goes to
  ``endpoint`` (where the service reaches it); signing makes no request.

Rejected: giving user servers temporary credentials (STS) scoped to a prefix (S3-compatible stores differ in what
they support; a presigned URL is the one thing they all do); proxying bytes through the service (it would carry
every byte of every dataset); s3fs in the service (it pins fsspec exactly, which the notebooks' stack also pins).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

# The storage class whose datasets go to the object store when an endpoint is configured.
OBJECT_CLASS = "object"
DATASETS_PREFIX = "datasets/"
MAX_OBJECT_KEY_BYTES = 900  # S3 allows 1024 for the whole key; the dataset's prefix takes 42
OBJECT_KEY_RULE = (
    "a relative path of 1-900 UTF-8 bytes: '/'-separated parts, none empty, '.' or '..', "
    "no control characters and no backslash, also once percent-decoded"
)
_STORAGE_KEY = re.compile(r"[0-9a-f]{32}")
MAX_PUT_BYTES = 5 * 1024**3  # S3's limit for one PUT


class ObjectStoreError(RuntimeError):
    """The object store cannot do what was asked (unreachable, refused); the message is for the operator."""


class InvalidObjectKey(ValueError):
    """An object key breaks ``OBJECT_KEY_RULE``; the message says which part."""


def check_object_key(key: object) -> str:
    """``key`` when it is a safe object key within a dataset (see ``OBJECT_KEY_RULE``); ``InvalidObjectKey`` else."""
    if not isinstance(key, str) or not key:
        raise InvalidObjectKey(f"the object key is empty: use {OBJECT_KEY_RULE}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidObjectKey(f"the object key is not valid UTF-8: use {OBJECT_KEY_RULE}") from None
    if size > MAX_OBJECT_KEY_BYTES:
        raise InvalidObjectKey(f"the object key has {size} bytes: use {OBJECT_KEY_RULE}")
    decoded = key
    try:
        for _ in range(3):  # double encodings (%252e) too; three rounds cover any decoder in between
            decoded = unquote(decoded, errors="strict") if "%" in decoded else decoded
    except UnicodeDecodeError:
        raise InvalidObjectKey(
            f"the object key percent-encodes bytes that are not UTF-8: use {OBJECT_KEY_RULE}"
        ) from None
    for text in (key, decoded):
        if any(ord(c) < 32 or ord(c) == 0x7F for c in text):
            raise InvalidObjectKey(f"the object key contains a control character: use {OBJECT_KEY_RULE}")
        if "\\" in text:
            raise InvalidObjectKey(f"the object key contains a backslash: use {OBJECT_KEY_RULE}")
        if text.startswith("/"):
            raise InvalidObjectKey(f"the object key is absolute: use {OBJECT_KEY_RULE}")
        for part in text.split("/"):
            if part in ("", ".", ".."):
                raise InvalidObjectKey(
                    f"the object key has an empty, '.' or '..' part: use {OBJECT_KEY_RULE}"
                )
    return key


def check_key_prefix(prefix: object) -> str:
    """A listing prefix: empty, or the start of a key (the same rule, a trailing ``/`` allowed)."""
    if prefix in ("", None):
        return ""
    if not isinstance(prefix, str):
        raise InvalidObjectKey(f"the prefix is not text: use {OBJECT_KEY_RULE}")
    check_object_key(prefix[:-1] if prefix.endswith("/") and len(prefix) > 1 else prefix)
    return prefix


@dataclass(frozen=True)
class ObjectStoreSettings:
    """Where the object class lives and the key pair that opens it (the platform's; never shown or logged)."""

    endpoint: str
    bucket: str
    region: str = "us-east-1"
    public_endpoint: str = ""  # "" : the same as endpoint
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    url_seconds: int = 300


def read_credentials_file(path: Path) -> tuple[str, str]:
    """``(access_key_id, secret_access_key)`` from a file of ``access_key_id = ...`` and
    ``secret_access_key = ...`` lines (``#`` comments allowed); ``ValueError`` saying what is missing, never what
    the file holds."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip().lower()] = value.strip()
    missing = [n for n in ("access_key_id", "secret_access_key") if not values.get(n)]
    if missing:
        raise ValueError(f"{path} lacks {' and '.join(missing)} (lines name = value)")
    return values["access_key_id"], values["secret_access_key"]


@dataclass(frozen=True)
class ObjectSummary:
    key: str  # relative to the dataset's prefix
    bytes: int
    modified: str


class ObjectStore:
    """The platform's bucket: lists, signs, deletes and sums the objects of datasets' prefixes."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        self.settings = settings
        config = Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}
        )
        credentials = {
            "aws_access_key_id": settings.access_key_id or None,
            "aws_secret_access_key": settings.secret_access_key or None,
            "region_name": settings.region,
        }
        session = boto3.session.Session()
        self._client = session.client("s3", endpoint_url=settings.endpoint, config=config, **credentials)
        self._signer = session.client(
            "s3", endpoint_url=settings.public_endpoint or settings.endpoint, config=config, **credentials
        )

    def __repr__(self) -> str:
        return f"ObjectStore(endpoint={self.settings.endpoint!r}, bucket={self.settings.bucket!r})"

    @staticmethod
    def prefix(storage_key: str) -> str:
        """``datasets/<storage key>/``; ``ObjectStoreError`` for anything but a 32-hex key."""
        if not _STORAGE_KEY.fullmatch(storage_key):
            raise ObjectStoreError("a storage key is 32 lower-case hex digits")
        return f"{DATASETS_PREFIX}{storage_key}/"

    def _full_key(self, storage_key: str, key: str) -> str:
        return self.prefix(storage_key) + check_object_key(key)

    def _call(self, what: str, method: str, **params: Any) -> Any:
        try:
            return getattr(self._client, method)(Bucket=self.settings.bucket, **params)
        except (BotoCoreError, ClientError) as error:
            # botocore's messages name the operation and the error code, never the credentials.
            raise ObjectStoreError(f"{what}: {error}") from None

    def check_reachable(self) -> None:
        """``ObjectStoreError`` unless the bucket answers (a new dataset's prefix needs nothing more)."""
        self._call("the bucket does not answer", "head_bucket")

    def _pages(self, prefix: str, start_after: str = "") -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"Prefix": prefix}
        if start_after:
            params["StartAfter"] = start_after
        while True:
            page = self._call("cannot list the bucket", "list_objects_v2", **params)
            yield page
            if not page.get("IsTruncated"):
                return
            params = {"Prefix": prefix, "ContinuationToken": page["NextContinuationToken"]}

    def list_objects(
        self, storage_key: str, prefix: str = "", after: str = "", limit: int = 1000
    ) -> tuple[list[ObjectSummary], str | None]:
        """Up to ``limit`` objects of the dataset whose keys start with ``prefix``, after key ``after``, by key;
        and the key to pass as ``after`` for the next page (None at the end)."""
        base = self.prefix(storage_key)
        params: dict[str, Any] = {"Prefix": base + prefix, "MaxKeys": limit}
        if after:
            params["StartAfter"] = base + check_object_key(after)
        page = self._call("cannot list the bucket", "list_objects_v2", **params)
        found = [
            ObjectSummary(
                key=item["Key"][len(base) :],
                bytes=int(item["Size"]),
                modified=item["LastModified"].isoformat(),
            )
            for item in page.get("Contents", [])
        ]
        return found, (found[-1].key if page.get("IsTruncated") and found else None)

    def prefix_bytes(self, storage_key: str) -> int:
        """Bytes of every object under the dataset's prefix."""
        return sum(
            int(item["Size"])
            for page in self._pages(self.prefix(storage_key))
            for item in page.get("Contents", [])
        )

    def presign(self, storage_key: str, key: str, method: str, content_length: int | None = None) -> str:
        """A URL that does ``method`` (GET or PUT) on one object for ``url_seconds``. A PUT URL is signed with its
        ``Content-Length``, so the upload must be exactly the size the service was told (and metered)."""
        params: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": self._full_key(storage_key, key)}
        if method == "GET":
            operation = "get_object"
        elif method == "PUT":
            operation = "put_object"
            if content_length is None or not 0 <= content_length <= MAX_PUT_BYTES:
                raise ObjectStoreError("a PUT URL needs the upload's size")
            params["ContentLength"] = content_length
        else:
            raise ObjectStoreError(f"no presigned URL for method {method!r}")
        try:
            return self._signer.generate_presigned_url(
                operation, Params=params, ExpiresIn=self.settings.url_seconds, HttpMethod=method
            )
        except (BotoCoreError, ClientError) as error:
            raise ObjectStoreError(f"cannot sign a URL: {error}") from None

    def exists(self, storage_key: str, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.settings.bucket, Key=self._full_key(storage_key, key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ObjectStoreError(f"cannot look up an object: {error}") from None
        except BotoCoreError as error:
            raise ObjectStoreError(f"cannot look up an object: {error}") from None
        return True

    def delete_object(self, storage_key: str, key: str) -> None:
        self._call("cannot delete an object", "delete_object", Key=self._full_key(storage_key, key))

    def delete_prefix(self, storage_key: str) -> int:
        """Delete every object under the dataset's prefix; returns how many went."""
        removed = 0
        for page in self._pages(self.prefix(storage_key)):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
                self._call(
                    "cannot delete objects", "delete_objects", Delete={"Objects": keys[start : start + 1000]}
                )
                removed += len(keys[start : start + 1000])
        return removed

    def dataset_prefixes(self) -> set[str]:
        """The storage keys that have objects in the bucket."""
        keys: set[str] = set()
        params: dict[str, Any] = {"Prefix": DATASETS_PREFIX, "Delimiter": "/"}
        while True:
            page = self._call("cannot list the bucket", "list_objects_v2", **params)
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(DATASETS_PREFIX) :].rstrip("/")
                if _STORAGE_KEY.fullmatch(name):
                    keys.add(name)
            if not page.get("IsTruncated"):
                return keys
            params = {**params, "ContinuationToken": page["NextContinuationToken"]}

    def sweep(self, keys_in_use: set[str]) -> list[str]:
        """Delete the prefixes of datasets that no longer have a row; returns them as ``s3://bucket/prefix``."""
        removed = []
        for storage_key in sorted(self.dataset_prefixes() - keys_in_use):
            self.delete_prefix(storage_key)
            removed.append(f"s3://{self.settings.bucket}/{self.prefix(storage_key)}")
        return removed
