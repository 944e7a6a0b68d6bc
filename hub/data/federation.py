"""Federated STAC search: the platform's search also asks other STAC APIs (peers) and merges their items.

Rules this module guarantees:

* Peers are configured (``POLARTEP_STAC_PEERS``: ``name=URL,...``, each URL the root of a STAC API with item search)
  and asked anonymously, or with ``Authorization: token T`` where the URL is written ``https://T@host/...`` (the
  token is taken out of the URL), with ``POST <root>search`` and the search re-written from what the platform
  parsed (``peer_search_body``: ``bbox``, ``datetime`` as RFC 3339 UTC with ``Z``, ``collections``, ``ids``, ``q``,
  ``limit``), never the caller's raw fields; every item that comes back is marked with its origin
  (``properties["polartep:origin"]`` is the peer's name; the platform's own items say ``local``).
* A free-text search (``q``) is sent only to peers whose landing page declares STAC's free-text conformance class:
  other servers ignore ``q`` and would answer every item (stac-fastapi-pgstac does). The others are named
  ``skipped: ...`` in the answer. What a peer declares is remembered for ``CONFORMANCE_SECONDS``.
* All peers are asked at once, each for at most ``POLARTEP_STAC_PEER_TIMEOUT`` seconds in all: a slow, dead or
  broken peer is left out of that page and named in it (``polartep:peers``: ``ok``, ``timeout`` or
  ``error: ...``), so no peer can stall or break a search; a peer that failed is not asked again for later pages.
* Paging goes through every source: a page holds at most ``limit`` items, taken in turn from the platform and each
  peer (``interleave``), and its ``next`` token (``Cursor``) says where each source goes on: the platform after a
  row id, each peer at its own paging token (the ``token`` of its ``next`` link, its GET query or POST body, as
  STAC API servers write it) or its ``next`` URL when it pages otherwise, and how many items at the top of that
  peer page were served already (always fewer than ``limit``, so a page costs a peer one request of ``limit``). The cursor is opaque to callers, checked in full when it comes back, and can only point at the
  configured peers' own search: a next URL outside a peer's root is never followed.
* A request that carries ``X-Polartep-Federated`` (what peers are sent) is never passed on, so two platforms that
  name each other do not ask each other in a loop.
* What a peer answers is data, never trusted: answers over ``MAX_PEER_BYTES``, items that are not JSON objects with
  an ``id`` and ``properties``, and tokens over ``MAX_TOKEN_CHARS`` are dropped, and at most the asked number of
  items is kept per peer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

FEDERATED_HEADER = "X-Polartep-Federated"
ORIGIN = "polartep:origin"
MAX_PEER_BYTES = 4 * 1024 * 1024
MAX_TOKEN_CHARS = 1000
CURSOR_PREFIX = "f."
CONFORMANCE_SECONDS = 600.0
FREE_TEXT = "item-search#free-text"


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


# --- paging across sources -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerPage:
    """Where a peer's next items start: a page of the peer (its first, its ``token``, or its ``href``), and how many
    items at the top of that page were already served."""

    token: str | None = None
    href: str | None = None
    skip: int = 0


@dataclass(frozen=True)
class Cursor:
    """Where a federated search goes on: the platform after row ``local`` (None: no more of its items), and each
    peer still to page."""

    local: int | None
    peers: dict[str, PeerPage]

    @staticmethod
    def first(peers: list[Peer]) -> Cursor:
        return Cursor(local=0, peers={peer.name: PeerPage() for peer in peers})

    @property
    def done(self) -> bool:
        return self.local is None and not self.peers

    def encode(self) -> str:
        """The ``token`` of a next link: ``f.`` and URL-safe base64 of compact JSON."""
        document = {"l": self.local, "p": {n: [p.token, p.href, p.skip] for n, p in self.peers.items()}}
        raw = json.dumps(document, separators=(",", ":")).encode()
        return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str, peers: list[Peer], max_skip: int) -> Cursor:
        """The cursor a token stands for, for the configured ``peers``; ``ValueError`` if it is not one of ours.

        Peers no longer configured are left out; a peer ``href`` outside that peer's root is refused."""
        roots = {peer.name: peer.url for peer in peers}
        try:
            body = text.removeprefix(CURSOR_PREFIX)
            document = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            local, pages = document["l"], document["p"]
            if not (local is None or (type(local) is int and local >= 0)) or not isinstance(pages, dict):
                raise ValueError
            kept = {}
            for name, (token, href, skip) in pages.items():
                if not all(
                    v is None or (isinstance(v, str) and len(v) <= MAX_TOKEN_CHARS) for v in (token, href)
                ):
                    raise ValueError
                if type(skip) is not int or not 0 <= skip <= max_skip:
                    raise ValueError
                if name not in roots:
                    continue
                if href is not None and not _under(href, roots[name]):
                    raise ValueError
                kept[name] = PeerPage(token=token, href=href, skip=skip)
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
            raise ValueError("token: use the token of a next link as given") from None
        return Cursor(local=local, peers=kept)


def _under(href: str, root: str) -> bool:
    """Whether ``href`` is the peer's own item search (same scheme, host and port, the root's path + ``search``)."""
    link, base = urlsplit(href), urlsplit(root)
    return (link.scheme, link.netloc, link.path) == (base.scheme, base.netloc, base.path + "search")


T = TypeVar("T")


def interleave(sources: list[list[T]], limit: int) -> tuple[list[T], list[int]]:
    """At most ``limit`` entries taken in turn from each source (one from each, then the next round), and how many
    were taken from each: no source can crowd the others off a page."""
    page: list[T] = []
    taken = [0] * len(sources)
    while len(page) < limit:
        before = len(page)
        for index, source in enumerate(sources):
            if len(page) < limit and taken[index] < len(source):
                page.append(source[taken[index]])
                taken[index] += 1
        if len(page) == before:
            break
    return page, taken


# --- asking the peers ----------------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, the form every STAC server parses (some refuse ``+00:00`` or a missing ``T``)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def peer_search_body(
    bbox: tuple[float, ...] | None,
    start: datetime | None,
    end: datetime | None,
    collections: tuple[str, ...],
    ids: tuple[str, ...],
    q: tuple[str, ...],
) -> dict[str, Any]:
    """The item search sent to peers, from the validated search (never the caller's raw fields)."""
    body: dict[str, Any] = {}
    if bbox is not None:
        body["bbox"] = list(bbox)
    if start is not None or end is not None:
        if start is not None and start == end:
            body["datetime"] = format_time(start)
        else:
            body["datetime"] = f"{format_time(start) if start else '..'}/{format_time(end) if end else '..'}"
    if collections:
        body["collections"] = list(collections)
    if ids:
        body["ids"] = list(ids)
    if q:
        body["q"] = " ".join(q)
    return body


@dataclass(frozen=True)
class PeerAnswer:
    """What one peer gave for one page: the outcome, its items from the page's ``skip`` on as ``(position in the
    peer's page, item)``, and the peer's next page (None when it has none)."""

    name: str
    outcome: str
    items: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    next_page: PeerPage | None = None


def _headers(peer: Peer) -> dict[str, str]:
    headers = {FEDERATED_HEADER: "1"}
    if peer.token:
        headers["Authorization"] = f"token {peer.token}"
    return headers


_free_text: dict[str, tuple[float, bool]] = {}  # peer root -> (when asked, whether it declares free text)


async def _declares_free_text(client: httpx.AsyncClient, peer: Peer) -> bool:
    known = _free_text.get(peer.url)
    if known is not None and time.monotonic() - known[0] < CONFORMANCE_SECONDS:
        return known[1]
    response = await client.get(peer.url, headers=_headers(peer))
    response.raise_for_status()
    document = response.json() if len(response.content) <= MAX_PEER_BYTES else {}
    classes = document.get("conformsTo") if isinstance(document, dict) else None
    found = isinstance(classes, list) and any(isinstance(c, str) and c.endswith(FREE_TEXT) for c in classes)
    _free_text[peer.url] = (time.monotonic(), found)
    return found


def _next_page(document: dict[str, Any], peer: Peer) -> PeerPage | None:
    """The peer's next page from its answer's ``next`` link: its token where it gives one, else its URL."""
    links = document.get("links")
    link = (
        next((x for x in links if isinstance(x, dict) and x.get("rel") == "next"), None)
        if isinstance(links, list)
        else None
    )
    if link is None:
        return None
    token = link.get("body", {}).get("token") if isinstance(link.get("body"), dict) else None
    href = link.get("href")
    if token is None and isinstance(href, str):
        token = (parse_qs(urlsplit(href).query).get("token") or [None])[0]
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS:
        return PeerPage(token=token)
    if isinstance(href, str) and len(href) <= MAX_TOKEN_CHARS and _under(href, peer.url):
        return PeerPage(href=href)
    return None  # a next page this platform cannot follow safely: the peer's items end here


async def _ask(
    client: httpx.AsyncClient, peer: Peer, page: PeerPage, body: dict[str, Any], limit: int
) -> PeerAnswer:
    if "q" in body and not await _declares_free_text(client, peer):
        return PeerAnswer(peer.name, "skipped: it does not declare free-text search (q)")
    # The page is asked for with ``limit`` items as it was the first time, so a token names the same page; the
    # items before ``skip`` were served already.
    wanted = limit
    if page.href is not None:
        response = await client.get(page.href, headers=_headers(peer))
    else:
        asked = {**body, "limit": wanted, **({"token": page.token} if page.token is not None else {})}
        response = await client.post(peer.url + "search", json=asked, headers=_headers(peer))
    if response.status_code != 200 or len(response.content) > MAX_PEER_BYTES:
        return PeerAnswer(peer.name, f"error: HTTP {response.status_code}")
    try:
        document = response.json()
        features = document.get("features", [])
    except (ValueError, AttributeError):
        return PeerAnswer(peer.name, "error: not a JSON item collection")
    features = features[:wanted] if isinstance(features, list) else []
    items = [
        (position, {**feature, "properties": {**feature["properties"], ORIGIN: peer.name}})
        for position, feature in enumerate(features)
        if position >= page.skip
        and isinstance(feature, dict)
        and isinstance(feature.get("id"), str)
        and isinstance(feature.get("properties"), dict)
    ]
    # A peer that answers an empty page with a next link would be paged for ever: its items end with it.
    return PeerAnswer(peer.name, "ok", items, _next_page(document, peer) if features else None)


async def _ask_in_time(
    client: httpx.AsyncClient,
    peer: Peer,
    page: PeerPage,
    body: dict[str, Any],
    limit: int,
    wait_seconds: float,
) -> PeerAnswer:
    try:
        return await asyncio.wait_for(_ask(client, peer, page, body, limit), wait_seconds)
    except (TimeoutError, httpx.TimeoutException):
        return PeerAnswer(peer.name, "timeout")
    except httpx.HTTPError as error:
        return PeerAnswer(peer.name, f"error: {type(error).__name__}")
    except ValueError:
        return PeerAnswer(peer.name, "error: not JSON")


async def ask_peers(
    pages: list[tuple[Peer, PeerPage]], body: dict[str, Any], limit: int, wait_seconds: float
) -> list[PeerAnswer]:
    """Each peer's answer for its page of the search ``body`` (``peer_search_body``), all asked at once."""
    if not pages:
        return []
    async with httpx.AsyncClient(timeout=wait_seconds, follow_redirects=False) as client:
        return list(
            await asyncio.gather(
                *(_ask_in_time(client, peer, page, body, limit, wait_seconds) for peer, page in pages)
            )
        )
