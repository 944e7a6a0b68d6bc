"""A real S3-protocol server for the object storage class, one that checks signatures and expiry like a real store.

``running_s3_server()`` starts ``tests/helpers/s3_server.js``: the npm package ``@20minutes/s3rver`` (installed by
``make install``), which verifies AWS Signature Version 4 on every request, signed in headers or presigned, refuses a
presigned URL after its ``X-Amz-Expires``, and keeps objects in a folder of its own. The wrapper makes the tests'
key pair its only one and refuses unsigned requests (a private bucket). So a URL the platform signs for the wrong
host, key, size or lifetime fails here as it would on a real store.

Why not the others (read in their sources and tried, moto 5.2.6 and s3rver 3.7.1): moto's server checks no
presigned URL (neither signature nor expiry); with its authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``) it
verifies header signatures but answers 500 to every presigned URL (it looks for an ``Authorization`` header). npm
``s3rver`` 3.7.1 checks expiry but accepts any Version 4 signature ("Signature version 4 calculation is
unimplemented" in its source).

Known gap of this server: a listing with a delimiter leaves out common prefixes that hold objects only in deeper
folders (``datasets/<key>/a/b`` yields no ``datasets/<key>/``). Tests that list prefixes put an object at the first
level.

``S3Server`` hands out the settings the platform uses (the key pair included); ``bucket_keys`` lists what the bucket
really holds, with a client of its own, so tests see the store and not the service's idea of it. ``address`` is
where it listens: 127.0.0.1, or the host's address on a Docker network the platform or the test created; with
``also_loopback`` it listens on a port of 127.0.0.1 too (``loopback_endpoint``), for a platform that reaches the
store on loopback while its containers use the network address (``object_store_public_endpoint``).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

from polartep_hub.data.object_store import ObjectStoreSettings

ACCESS_KEY_ID = "PLATFORMKEYID0000001"
SECRET_ACCESS_KEY = "platform-secret-never-in-a-user-server-7f3a"
BUCKET = "polartep-datasets"
SCRIPT = Path(__file__).with_name("s3_server.js")
START_WITHIN = 30  # seconds; Node starts the server in about one


class S3Server:
    def __init__(self, address: str, port: int, loopback_port: int | None = None) -> None:
        self.address = address
        self.port = port
        self.endpoint = f"http://{address}:{port}"
        self.loopback_endpoint = f"http://127.0.0.1:{loopback_port}" if loopback_port else None
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def settings(self, url_seconds: int = 300) -> ObjectStoreSettings:
        return ObjectStoreSettings(
            endpoint=self.endpoint,
            bucket=BUCKET,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            url_seconds=url_seconds,
        )

    def bucket_keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def empty(self) -> None:
        for key in self.bucket_keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)


@contextmanager
def running_s3_server(address: str = "127.0.0.1", also_loopback: bool = False) -> Iterator[S3Server]:
    """The checking S3 server on a free port of ``address`` (and of 127.0.0.1 with ``also_loopback``) with the
    bucket ``BUCKET``; stopped on exit."""
    if shutil.which("node") is None:
        raise RuntimeError("the S3 test server needs Node.js (make install installs its package)")
    directory = Path(tempfile.mkdtemp(prefix="polartep-s3-"))
    log = directory.with_suffix(".log")
    env = {
        **os.environ,
        "S3_ADDRESS": address,
        "S3_PORT": "0",
        "S3_DIRECTORY": str(directory),
        "S3_BUCKET": BUCKET,
        "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "S3_ALSO_LOOPBACK": "1" if also_loopback else "0",
    }
    with log.open("wb") as errors:
        process = subprocess.Popen(
            ["node", "--openssl-legacy-provider", str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            cwd=SCRIPT.parents[2],
        )
    try:
        lines = _StartLines(process, log)
        port = lines.port("listening")
        loopback_port = lines.port("also") if also_loopback else None
        yield S3Server(address, port, loopback_port)
    finally:
        process.stdin.close()  # the server exits when its input closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        shutil.rmtree(directory, ignore_errors=True)
        log.unlink(missing_ok=True)


class _StartLines:
    """The server's start lines, ``WORD ADDRESS PORT``, read from its output's descriptor with a buffer of our own:
    both lines often arrive in one write, and a buffered ``readline()`` would take the second one into Python's
    buffer where waiting on the descriptor never sees it."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log
        self.pending = b""

    def port(self, word: str) -> int:
        """The port of the next line, which must start with ``word``; RuntimeError with the server's errors if it
        does not come within ``START_WITHIN`` seconds."""
        deadline = time.monotonic() + START_WITHIN
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([descriptor], [], [], max(left, 0))
            chunk = os.read(descriptor, 4096) if readable else b""
            if not chunk:  # timed out, or the server closed its output (it exited)
                self._fail(f"no '{word}' line")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        fields = line.decode(errors="replace").split()
        if len(fields) != 3 or fields[0] != word:
            self._fail(f"expected '{word} ADDRESS PORT', got {line!r}")
        return int(fields[2])

    def _fail(self, what: str) -> None:
        self.process.kill()
        self.process.wait()
        errors = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the S3 test server did not start ({what}): {errors}")
