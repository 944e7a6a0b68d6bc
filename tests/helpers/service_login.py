"""Shared by several test modules (moved from ``tests/service/web/test_browser_login.py``)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit


def start_login(api, next_url: str | None = None) -> str:
    """Follow ``login`` to the hub's authorize URL; returns the state the hub would send back."""
    response = api.get("login", params={} if next_url is None else {"next": next_url}, follow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["code_challenge"][0]
    return query["state"][0]


def finish_login(api, fake_hub, state: str, token: str = "alice-token"):
    fake_hub.grant("the-code", token)
    return api.get("oauth_callback", params={"code": "the-code", "state": state}, follow_redirects=False)


def browser_login(api, fake_hub, token: str = "ada-token") -> None:
    response = finish_login(api, fake_hub, start_login(api), token=token)
    assert response.status_code == 302


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)
