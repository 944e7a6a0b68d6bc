"""Federated STAC search: the platform's search also asks other STAC APIs (peers) and merges their items.

Rules this module guarantees:

* Peers are configured (``POLARTEP_STAC_PEERS``: ``name=URL,...``, each URL the root of a STAC API with item search)
  and asked anonymously, or with ``Authorization: token T`` where the URL is written ``https://T@host/...`` (the
  token is taken out of the URL), with ``POST <root>/search`` and the same search fields (``bbox``, ``datetime``,
  ``collections``, ``ids``, ``q``, ``limit``); every item that comes back is marked with its origin
  (``properties["polartep:origin"]`` is the peer's name; the platform's own items say ``local``).
* All peers are asked at once, each for at most ``POLARTEP_STAC_PEER_TIMEOUT`` seconds: a slow, dead or broken peer
  is left out of that answer and named in it (``polartep:peers``: ``ok``, ``timeout`` or ``error: ...``), so no
  peer can stall or break a search.
* Only the first page federates: the ``next`` link pages through the platform's own items. A request that carries
  ``X-Polartep-Federated`` (what peers are sent) is never passed on, so two platforms that name each other do not
  ask each other in a loop.
* What a peer answers is data, never trusted: items that are not JSON objects with an ``id`` and ``properties``
  are dropped, and at most ``limit`` items are kept per peer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

FEDERATED_HEADER = "X-Polartep-Federated"
ORIGIN = "polartep:origin"
MAX_PEER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Peer:
    name: str
    url: str  # the API's root, ending in /
    token: str = field(default="", repr=False)  # sent as ``Authorization: token ...`` when given


def parse_peers(text: str) -> list[Peer]:
    """``name=URL,...`` as peers; ``ValueError`` naming what is wrong."""
    peers = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, url = part.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ValueError(f"{part[:80]!r}: write name=https://host/stac/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {url[:200]!r} is not an http(s) URL")
        token = parts.username or ""
        if token:  # https://TOKEN@host/stac/: the token goes in a header, never in the URL asked
            url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
        peers.append(Peer(name=name, url=url.rstrip("/") + "/", token=token))
    return peers


def _headers(peer: Peer) -> dict[str, str]:
    headers = {FEDERATED_HEADER: "1"}
    if peer.token:
        headers["Authorization"] = f"token {peer.token}"
    return headers


async def _ask(client: httpx.AsyncClient, peer: Peer, body: dict[str, Any], limit: int, wait_seconds: float):
    try:
        response = await asyncio.wait_for(
            client.post(peer.url + "search", json=body, headers=_headers(peer)), wait_seconds
        )
    except (TimeoutError, httpx.TimeoutException):
        return peer.name, "timeout", []
    except httpx.HTTPError as error:
        return peer.name, f"error: {type(error).__name__}", []
    if response.status_code != 200 or len(response.content) > MAX_PEER_BYTES:
        return peer.name, f"error: HTTP {response.status_code}", []
    try:
        features = response.json().get("features", [])
    except (ValueError, AttributeError):
        return peer.name, "error: not a JSON item collection", []
    items = []
    for feature in features if isinstance(features, list) else []:
        if (
            isinstance(feature, dict)
            and isinstance(feature.get("id"), str)
            and isinstance(feature.get("properties"), dict)
        ):
            items.append({**feature, "properties": {**feature["properties"], ORIGIN: peer.name}})
        if len(items) >= limit:
            break
    return peer.name, "ok", items


async def ask_peers(peers: list[Peer], body: dict[str, Any], limit: int, wait_seconds: float):
    """Every peer's items for the search ``body`` (marked with their origin), and each peer's outcome."""
    if not peers:
        return [], {}
    async with httpx.AsyncClient(timeout=wait_seconds, follow_redirects=False) as client:
        answers = await asyncio.gather(*(_ask(client, p, body, limit, wait_seconds) for p in peers))
    items = [item for _, _, found in answers for item in found]
    return items, {name: outcome for name, outcome, _ in answers}
