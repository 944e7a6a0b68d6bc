"""Datasets in the platform's object store, from a notebook: list, read, write and delete objects as yourself.

    from polartep_lab.datasets import ObjectDataset
    ds = ObjectDataset("sea-ice", "chips")
    ds.write_bytes("2026/01/chip-001.npy", data)      # members only
    ds.ls("2026/")                                      # [{"key", "bytes", "modified"}, ...]
    raw = ds.read_bytes("2026/01/chip-001.npy")         # members and granted projects
    xr.open_dataset(ds.open("sic.nc"))                  # a file-like object (read into memory)
    ds.url("sic.nc")                                    # a presigned GET URL (for fsspec's HTTP filesystem)

Rules this module guarantees:

* It holds no secret of the platform: it calls the platform service with this server's own token
  (``JUPYTERHUB_API_TOKEN``) at ``POLARTEP_SERVICE_URL``, and the service answers only what its owner may do (a
  dataset they may not see is 404; a PUT URL with read-only access is 403). The bytes then go straight between
  this server and the object store through the presigned URL the service handed out, which works for one object,
  one method and a few minutes (``expires_in``); no token is ever sent to the object store.
* A refusal raises ``DatasetRequestError`` with the service's status and its message (what to fix).
* Object keys travel in request bodies and queries, never in URL paths, so nothing on the way normalises them.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_TIMEOUT = 60.0


class DatasetRequestError(RuntimeError):
    """The service or the object store refused a request; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}" if status is not None else message)


class ObjectDataset:
    """One dataset of the object storage class, as this server's owner may use it."""

    def __init__(
        self, project: str, name: str, *, service_url: str | None = None, token: str | None = None
    ) -> None:
        self.project = project
        self.name = name
        base = service_url if service_url is not None else os.environ.get("POLARTEP_SERVICE_URL", "")
        self._token = token if token is not None else os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not base or not self._token:
            raise DatasetRequestError(None, "POLARTEP_SERVICE_URL and JUPYTERHUB_API_TOKEN must be set")
        quoted = "/".join(urllib.parse.quote(part, safe="") for part in (project, name))
        self._base = base.rstrip("/") + f"/api/v1/datasets/{quoted}"

    def __repr__(self) -> str:
        return f"ObjectDataset({self.project!r}, {self.name!r})"

    def _service(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"token {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise DatasetRequestError(error.code, _detail(error.read())) from None
        except OSError as error:
            raise DatasetRequestError(None, f"the platform service could not be reached: {error}") from None
        return json.loads(raw) if raw else None

    def ls(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every object whose key starts with ``prefix``, by key."""
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, "after": after})
            page = self._service("GET", f"/objects?{query}")
            found.extend(page["objects"])
            after = page.get("next") or ""
            if not after:
                return found

    def url(self, key: str, method: str = "GET", size: int | None = None) -> str:
        """A presigned URL for one object (GET; PUT needs the upload's exact ``size``)."""
        body: dict[str, Any] = {"key": key, "method": method}
        if size is not None:
            body["bytes"] = size
        return self._service("POST", "/object-urls", body)["url"]

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes."""
        return _transfer(urllib.request.Request(self.url(key), method="GET"))

    def open(self, key: str) -> io.BytesIO:
        """The object as a seekable file-like object (read whole into memory)."""
        return io.BytesIO(self.read_bytes(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` as the object ``key`` (replacing it); members of the dataset's project only."""
        request = urllib.request.Request(self.url(key, "PUT", len(data)), data=data, method="PUT")
        request.add_header("Content-Length", str(len(data)))
        # urllib would say form-encoded, which some stores (and proxies) parse as a form instead of storing it.
        request.add_header("Content-Type", "application/octet-stream")
        _transfer(request)

    def rm(self, key: str) -> None:
        """Delete the object ``key``; members only."""
        self._service("DELETE", "/objects?" + urllib.parse.urlencode({"key": key}))


def _transfer(request: urllib.request.Request) -> bytes:
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise DatasetRequestError(error.code, f"the object store refused: {error.read()[:300]!r}") from None
    except OSError as error:
        raise DatasetRequestError(None, f"the object store could not be reached: {error}") from None


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return body[:200].decode("utf-8", "replace") or "no detail"
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
