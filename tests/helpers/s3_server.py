"""A real S3-protocol server on 127.0.0.1 for the object storage class: moto's server, on a free port.

``S3Server`` starts ``ThreadedMotoServer`` (in-memory buckets spoken to over HTTP, the same wire protocol as any
S3-compatible store), makes a bucket, and hands out the settings the platform uses, the key pair included (moto
accepts any pair; what the tests check is who gets a URL, not S3's signature checks). ``bucket_keys`` lists what
the bucket really holds, with a client of its own, so tests see the store and not the service's idea of it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

from polartep_hub.data.object_store import ObjectStoreSettings

ACCESS_KEY_ID = "PLATFORMKEYID0000001"
SECRET_ACCESS_KEY = "platform-secret-never-in-a-user-server-7f3a"
BUCKET = "polartep-datasets"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name="us-east-1",
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
def running_s3_server() -> Iterator[S3Server]:
    """A moto S3 server on a free port of 127.0.0.1 with the bucket ``BUCKET``; stopped on exit."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(port)
        s3.client.create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.stop()
