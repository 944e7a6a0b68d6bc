"""``proxy_peer``: X-Forwarded-For is believed only on connections of the proxy process.

Specification: a connection this process made is recognised as this process's, a connection a child process made
is not; on the proxy's connection the last forwarded entry is the client, anywhere else the peer address is; entries
that are not IP addresses are not used; IPv4-mapped IPv6 addresses read as IPv4.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from polartep_hub.proxy_peer import client_address, connection_belongs_to, last_forwarded_entry


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server


def test_a_connection_is_recognised_as_its_owners_and_no_one_elses(tmp_path: Path):
    server = _listener()
    mine = socket.create_connection(server.getsockname())
    accepted, peer = server.accept()
    local = accepted.getsockname()
    assert connection_belongs_to(os.getpid(), peer, local)
    pid_file = tmp_path / "proxy.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert client_address(peer, local, ["10.9.9.9, 192.0.2.5"], pid_file) == "192.0.2.5"

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket, time; s = socket.create_connection({server.getsockname()!r}); time.sleep(30)",
        ]
    )
    try:
        other, other_peer = server.accept()
        other_local = other.getsockname()
        assert not connection_belongs_to(os.getpid(), other_peer, other_local)
        assert connection_belongs_to(child.pid, other_peer, other_local)
        # The forged header is ignored: the client is the connection's own peer.
        assert client_address(other_peer, other_local, ["192.0.2.5"], pid_file) == "127.0.0.1"
        assert client_address(other_peer, other_local, ["192.0.2.5"], None) == "127.0.0.1"
    finally:
        child.kill()
        child.wait()
    for s in (mine, accepted, other, server):
        s.close()
    time.sleep(0)


def test_only_the_last_forwarded_entry_counts_and_it_must_be_an_address():
    assert last_forwarded_entry(["1.2.3.4, 5.6.7.8"]) == "5.6.7.8"
    assert last_forwarded_entry(["1.2.3.4", "::ffff:127.0.0.5"]) == "127.0.0.5"
    assert last_forwarded_entry(["1.2.3.4, not-an-address"]) is None
    assert last_forwarded_entry([]) is None
