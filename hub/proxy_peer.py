"""Which client a request came from: ``X-Forwarded-For`` is believed only on a connection made by the proxy process.

configurable-http-proxy (CHP) appends the address of the peer it accepted to ``X-Forwarded-For`` and passes on
whatever the client sent before it, so only the LAST entry is what the proxy saw. The hub and the platform service
listen on loopback ports that every local process (and, in host-network Docker mode, every container) can connect to
directly with any header it likes; so the header is only evidence when the connection itself is the proxy's.

Rules this module guarantees:

* ``client_address`` returns the last ``X-Forwarded-For`` entry only when the TCP connection the request arrived on
  belongs to the proxy process (its PID from the proxy's PID file, ``state/proxy.pid``): the connection's socket is
  looked up in ``/proc/net/tcp[6]`` by its two endpoints and must be one of the proxy's open file descriptors
  (``/proc/<pid>/fd``). Otherwise (another process, no PID file, no ``/proc``) the connection's own peer address is
  the client, and forwarded headers, ``X-Real-Ip`` included, are ignored.
* A forwarded entry that is not an IP address is not used (the peer address is). IPv4-mapped IPv6 addresses are
  given as IPv4.

Rejected alternatives:

* CHP's ``--custom-header`` with a secret: CHP adds it to EVERY proxied request, user servers included, so every
  user would receive the secret; and a command-line secret is readable by any local user in ``/proc/<pid>/cmdline``.
* A dedicated source address for the proxy: any process may bind any 127.0.0.0/8 address as its source.
* A Unix socket for the service: it would cover the service but not the hub, whose TCP port user servers and
  containers need for its API, and the hub rewrites the proxy's route targets to the service's TCP URL.
* Trusting loopback peers (uvicorn's ``forwarded_allow_ips`` default, tornado's ``xheaders``): that is the hole.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def normalise_address(value: str) -> str | None:
    """``value`` as a canonical IP address text (IPv4-mapped IPv6 as IPv4), or None if it is no IP address."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def last_forwarded_entry(values: Iterable[str]) -> str | None:
    """The last address of the ``X-Forwarded-For`` header(s) ``values`` (the one the proxy appended), if valid."""
    entries = [entry.strip() for value in values for entry in value.split(",") if entry.strip()]
    return normalise_address(entries[-1]) if entries else None


def read_pid(pid_file: Path | None) -> int | None:
    """The PID in ``pid_file``, None if there is none (or it cannot be read)."""
    if pid_file is None:
        return None
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _proc_hex(ip: str, port: int) -> tuple[str, str]:
    """(``/proc/net`` table, ``ADDR:PORT``) as the kernel prints an endpoint there (the address in host byte order)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        (word,) = struct.unpack("=I", socket.inet_aton(str(address)))
        return "tcp", f"{word:08X}:{port:04X}"
    words = struct.unpack("=4I", address.packed)
    return "tcp6", "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _socket_inode(peer: tuple[str, int], local: tuple[str, int]) -> str | None:
    """The inode of the socket whose own endpoint is ``peer`` and whose remote endpoint is ``local``."""
    try:
        table, peer_hex = _proc_hex(*peer)
        table_local, local_hex = _proc_hex(*local)
    except ValueError:
        return None
    tables = {table, table_local}
    for name in sorted(tables):
        try:
            with open(f"/proc/net/{name}") as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split()
                    if len(fields) > 9 and fields[1] == peer_hex and fields[2] == local_hex:
                        return fields[9]
        except OSError:
            continue
    return None


def connection_belongs_to(pid: int, peer: tuple[str, int], local: tuple[str, int]) -> bool:
    """True when the TCP connection ``peer`` -> ``local`` (seen from our side) was made by process ``pid``."""
    inode = _socket_inode(peer, local)
    if inode is None or inode == "0":
        return False
    wanted = f"socket:[{inode}]"
    try:
        with os.scandir(f"/proc/{pid}/fd") as fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == wanted:
                        return True
                except OSError:
                    continue
    except OSError:
        return False
    return False


def client_address(
    peer: tuple[str, int] | None,
    local: tuple[str, int] | None,
    forwarded_for: Iterable[str],
    proxy_pid_file: Path | None,
) -> str:
    """The client a request stands for: the proxy's ``X-Forwarded-For`` entry on the proxy's connections, else the
    connection's peer (``"unknown"`` without one)."""
    if peer is None:
        return "unknown"
    peer_ip = normalise_address(peer[0]) or peer[0]
    values = list(forwarded_for)
    if not values or local is None:
        return peer_ip
    pid = read_pid(proxy_pid_file)
    if pid is not None and connection_belongs_to(pid, (peer_ip, int(peer[1])), (local[0], int(local[1]))):
        return last_forwarded_entry(values) or peer_ip
    log.warning(
        "ignored X-Forwarded-For on a connection from %s:%s, which is not the proxy's", peer_ip, peer[1]
    )
    return peer_ip
